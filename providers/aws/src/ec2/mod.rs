//! EC2: the network the cluster lands in, the instance type and image checks, the key pair, the
//! security group and its rules, the instances, and their teardown — one module per resource,
//! with the filter, tag and journal helpers they share here.

mod console;
mod discover;
mod image;
mod instances;
mod keypair;
mod network;
mod node_removal;
mod security_group;
mod teardown;

use acura_ha_api::model::{Recorded, Resource};
use acura_ha_api::provider::ProviderError;
use acura_ha_api::spec::{ClusterSpec, TAG_LINEAGE};
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

use crate::SharedJournal;

pub(crate) use console::console_host_keys;
pub(crate) use discover::discover;
pub(crate) use image::image;
pub(crate) use instances::{check_instance_types, instances, live_instances, record_running};
pub(crate) use keypair::{find_key_pair, key_pair};
pub(crate) use network::{Net, subnets, vpc};
pub(crate) use node_removal::{leaving_nodes, remove_nodes};
pub(crate) use security_group::{
    Groups, converge_rules, create_groups, find_groups, refresh_rules,
};
pub(crate) use teardown::destroy;

fn filter(name: &str, value: impl Into<String>) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// The tags EC2 resources are created with: the cluster's and the state's lineage
/// ([`ClusterSpec::cloud_tags`], #9.4), and the Name.
fn tags(spec: &ClusterSpec, role: &str, name: &str, rt: ResourceType) -> TagSpecification {
    let mut b = TagSpecification::builder().resource_type(rt);
    for (k, v) in spec.cloud_tags(role) {
        b = b.tags(Tag::builder().key(k).value(v).build());
    }
    b.tags(Tag::builder().key("Name").value(name).build())
        .build()
}

/// The value of the tag `key` among `tags`.
fn tag_value<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// Refuses to adopt `resource` when its lineage tag names another state (#9.4).
fn check_lineage(spec: &ClusterSpec, resource: &str, tags: &[Tag]) -> Result<(), ProviderError> {
    spec.check_lineage(resource, tag_value(tags, TAG_LINEAGE))
        .map_err(|message| ProviderError::Cloud {
            resource: resource.to_string(),
            message,
            request_id: None,
        })
}

/// Whether a resource found by the cluster's tags is this state's (or carries no lineage):
/// discovery leaves another state's cluster of the same name alone.
fn same_lineage(spec: &ClusterSpec, tags: &[Tag]) -> bool {
    spec.check_lineage("", tag_value(tags, TAG_LINEAGE)).is_ok()
}

fn desired_one<'a>(desired: &'a [Resource], address: &str) -> Option<&'a Resource> {
    desired.iter().find(|r| r.address == address)
}

/// Every record the journal holds.
pub(crate) async fn journal_records(journal: &SharedJournal<'_>) -> Vec<Recorded> {
    journal.lock().await.all()
}
