//! Discovery: what carries the cluster's tags (instances, the security groups, the key pair).

use std::collections::BTreeMap;

use acura_ha_api::model::{Kind, Recorded};
use acura_ha_api::provider::ProviderError;
use acura_ha_api::spec::{ClusterSpec, TAG_CLUSTER, TAG_ROLE};
use acura_ha_api::targets::aws::nlb::{NLB_GROUP_ADDRESS, NLB_GROUP_ROLE};
use aws_sdk_ec2::types::InstanceStateName;

use super::filter;
use crate::Clients;
use crate::error;

/// What carries the cluster's tags: instances, the security groups, the imported key pair.
pub(crate) async fn discover(
    c: &Clients,
    spec: &ClusterSpec,
) -> Result<Vec<Recorded>, ProviderError> {
    let mut out = Vec::new();
    let tag = format!("tag:{TAG_CLUSTER}");
    // The three describes are independent: sent at once.
    let instances = async {
        c.ec2
            .describe_instances()
            .filters(filter(&tag, &spec.cluster.name))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| error::ec2(e).into_provider("instances of the cluster"))
    };
    let groups = async {
        c.ec2
            .describe_security_groups()
            .filters(filter(&tag, &spec.cluster.name))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| error::ec2(e).into_provider("security groups of the cluster"))
    };
    let keys = async {
        c.ec2
            .describe_key_pairs()
            .filters(filter(&tag, &spec.cluster.name))
            .send()
            .await
            .map_err(|e| error::ec2(e).into_provider("key pairs of the cluster"))
    };
    let (reservations, groups, keys) = tokio::try_join!(instances, groups, keys)?;
    for i in reservations.iter().flat_map(|r| r.instances()) {
        if matches!(
            i.state().and_then(|s| s.name()),
            Some(InstanceStateName::Terminated)
        ) || !super::same_lineage(spec, i.tags())
        {
            continue;
        }
        let tag_of = |k: &str| {
            i.tags()
                .iter()
                .find(|t| t.key() == Some(k))
                .and_then(|t| t.value())
                .unwrap_or("")
                .to_string()
        };
        let name = tag_of("Name");
        let (kind, prefix) = if tag_of(TAG_ROLE) == "lb" {
            (Kind::LbInstance, "lb_instance")
        } else {
            (Kind::Instance, "instance")
        };
        out.push(Recorded::found(
            format!("{prefix}[{name}]"),
            kind,
            name,
            i.instance_id().unwrap_or_default().to_string(),
            BTreeMap::new(),
        ));
    }
    // Another state's cluster of the same name is not ours to delete (#9.4).
    for g in groups
        .iter()
        .filter(|g| super::same_lineage(spec, g.tags()))
    {
        // The nodes' group, or the NLB's (told apart by the role tag).
        let role = g
            .tags()
            .iter()
            .find(|t| t.key() == Some(TAG_ROLE))
            .and_then(|t| t.value());
        let address = if role == Some(NLB_GROUP_ROLE) {
            NLB_GROUP_ADDRESS
        } else {
            "security_group"
        };
        out.push(Recorded::found(
            address.into(),
            Kind::SecurityGroup,
            g.group_name().unwrap_or_default().to_string(),
            g.group_id().unwrap_or_default().to_string(),
            BTreeMap::new(),
        ));
    }
    for k in keys
        .key_pairs()
        .iter()
        .filter(|k| super::same_lineage(spec, k.tags()))
    {
        out.push(Recorded::found(
            "key_pair".into(),
            Kind::KeyPair,
            k.key_name().unwrap_or_default().to_string(),
            k.key_pair_id().unwrap_or_default().to_string(),
            BTreeMap::new(),
        ));
    }
    Ok(out)
}
