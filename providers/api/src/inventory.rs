//! The hosts and load-balancer address of a cluster, from the cluster file where they are
//! known offline (`static`, `local`) and from the state's recorded outputs otherwise. Each
//! target's arm is its [`Target::inventory`](crate::targets::Target::inventory).

use crate::model::{Inventory, Recorded};
use crate::provider::ProviderError;
use crate::spec::ClusterSpec;

pub use crate::model::OUTPUT_ADDRESS;

/// Whether addresses can be known without provisioning.
pub fn known_offline(spec: &ClusterSpec) -> bool {
    spec.target().known_offline
}

/// The inventory, or which address is not known yet.
pub fn inventory(spec: &ClusterSpec, recorded: &[Recorded]) -> Result<Inventory, ProviderError> {
    (spec.target().inventory)(spec, recorded)
}
