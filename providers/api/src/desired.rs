//! What `up` converges to, per provider, computed offline from the cluster file and the guide's
//! tables: the plan shows it, the providers create it, and the state is compared against it.
//! Each target's list is its [`Target::desired`](crate::targets::Target::desired); the pieces
//! several targets share are in [`targets::shared`](crate::targets::shared), re-exported here.

use crate::model::Resource;
use crate::spec::ClusterSpec;

pub use crate::targets::local::{LOCAL_GATEWAY, LOCAL_LB, local_address, local_node_index};
pub use crate::targets::shared::{
    ConcreteRule, RuleSource, cloud_name, ingress_rules, listener_key,
};

/// Every resource the provider would create or use, in dependency order.
pub fn desired(spec: &ClusterSpec) -> Vec<Resource> {
    (spec.target().desired)(spec)
}
