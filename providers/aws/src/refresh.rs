//! Refresh (converge, #9.3): the cloud compared with the state, one describe per kind, so `plan`
//! shows what changed outside the tool and `up` repairs it. A recorded resource the cloud no
//! longer lists (or an instance terminated) is gone: `up` forgets its record and creates it
//! again, since every creator here finds by name, tags or listing, not by record. An ingress
//! rule of the cluster's own groups that no wanted rule matches and no record holds is extra:
//! `up` revokes it (`ec2::security_group`).

use std::collections::BTreeSet;

use acura_ha_api::model::{Drift, Gone, Kind, Recorded, Status};
use acura_ha_api::provider::ProviderError;
use acura_ha_api::spec::{ClusterSpec, TAG_CLUSTER};
use acura_ha_api::targets::aws::nlb::NLB_GROUP_ADDRESS;
use aws_sdk_ec2::types::{Filter, InstanceStateName};

use crate::{Clients, ec2, error};

/// What the cloud holds of the cluster, by ID or ARN, read once.
#[derive(Default)]
struct Listed {
    /// Instances that are not terminated or shutting down.
    instances: BTreeSet<String>,
    groups: BTreeSet<String>,
    rules: BTreeSet<String>,
    key_pairs: BTreeSet<String>,
    load_balancers: BTreeSet<String>,
    target_groups: BTreeSet<String>,
    listeners: BTreeSet<String>,
}

fn ready_id(recorded: &[Recorded], address: &str) -> Option<String> {
    recorded
        .iter()
        .find(|r| r.address == address && r.status == Status::Ready)
        .and_then(|r| r.id.clone())
}

pub(crate) async fn refresh(
    c: &Clients,
    spec: &ClusterSpec,
    recorded: &[Recorded],
) -> Result<Drift, ProviderError> {
    let tag = Filter::builder()
        .name(format!("tag:{TAG_CLUSTER}"))
        .values(&spec.cluster.name)
        .build();
    let instances = async {
        let out = c
            .ec2
            .describe_instances()
            .filters(tag.clone())
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| error::ec2(e).into_provider("instances of the cluster"))?;
        Ok::<_, ProviderError>(
            out.iter()
                .flat_map(|r| r.instances())
                .filter(|i| {
                    !matches!(
                        i.state().and_then(|s| s.name()),
                        Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown)
                    )
                })
                .filter_map(|i| i.instance_id().map(String::from))
                .collect::<BTreeSet<_>>(),
        )
    };
    let groups = async {
        let out = c
            .ec2
            .describe_security_groups()
            .filters(tag.clone())
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| error::ec2(e).into_provider("security groups of the cluster"))?;
        Ok::<_, ProviderError>(
            out.iter()
                .filter_map(|g| g.group_id().map(String::from))
                .collect::<BTreeSet<_>>(),
        )
    };
    // Only a key pair the tool imported is recorded (one named by `aws.key_name` is not).
    let key_pairs = async {
        if !recorded.iter().any(|r| r.kind == Kind::KeyPair) {
            return Ok(BTreeSet::new());
        }
        let out = c
            .ec2
            .describe_key_pairs()
            .filters(tag.clone())
            .send()
            .await
            .map_err(|e| error::ec2(e).into_provider("key pairs of the cluster"))?;
        Ok::<_, ProviderError>(
            out.key_pairs()
                .iter()
                .flat_map(|k| [k.key_pair_id(), k.key_name()])
                .flatten()
                .map(String::from)
                .collect(),
        )
    };
    let elb = elb(c, recorded);
    let (instances, groups, key_pairs, (load_balancers, target_groups, listeners)) =
        tokio::try_join!(instances, groups, key_pairs, elb)?;
    let desired = acura_ha_api::desired::desired(spec);
    let known: BTreeSet<&str> = recorded.iter().filter_map(|r| r.id.as_deref()).collect();
    let mut drift = Drift::default();
    let nodes_group = ready_id(recorded, "security_group").filter(|g| groups.contains(g));
    let nlb_group = ready_id(recorded, NLB_GROUP_ADDRESS).filter(|g| groups.contains(g));
    let rules = match nodes_group {
        Some(nodes) => {
            let live: Vec<String> = std::iter::once(nodes.clone())
                .chain(nlb_group.clone())
                .collect();
            let g = ec2::Groups {
                nodes,
                nlb: nlb_group,
            };
            let (rules, extra) = ec2::refresh_rules(c, spec, &desired, &g, &live, &known).await?;
            drift.extra = extra;
            rules
        }
        None => BTreeSet::new(),
    };
    let listed = Listed {
        instances,
        groups,
        rules,
        key_pairs,
        load_balancers,
        target_groups,
        listeners,
    };
    drift.gone = gone(recorded, &listed);
    Ok(drift)
}

/// The recorded load balancer, every target group of the region (by ARN; a filter by ARNs fails
/// the whole call when one is missing) and the load balancer's listeners.
async fn elb(
    c: &Clients,
    recorded: &[Recorded],
) -> Result<(BTreeSet<String>, BTreeSet<String>, BTreeSet<String>), ProviderError> {
    let mut lbs = BTreeSet::new();
    let mut listeners = BTreeSet::new();
    let mut tgs = BTreeSet::new();
    if let Some(arn) = ready_id(recorded, "load_balancer") {
        let out = c
            .elb
            .describe_load_balancers()
            .load_balancer_arns(&arn)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await;
        match out {
            Ok(o) => lbs.extend(
                o.iter()
                    .filter_map(|l| l.load_balancer_arn().map(String::from)),
            ),
            Err(e) => {
                let e = error::elb(e);
                // Deleted outside the tool: gone, not an error.
                if !e.is("LoadBalancerNotFound") {
                    return Err(e.into_provider(&format!("load balancer {arn}")));
                }
            }
        }
        if lbs.contains(&arn) {
            let out = c
                .elb
                .describe_listeners()
                .load_balancer_arn(&arn)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| error::elb(e).into_provider(&format!("listeners of {arn}")))?;
            listeners.extend(
                out.iter()
                    .filter_map(|l| l.listener_arn().map(String::from)),
            );
        }
    }
    if recorded.iter().any(|r| r.kind == Kind::TargetGroup) {
        let out = c
            .elb
            .describe_target_groups()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| error::elb(e).into_provider("target groups"))?;
        tgs.extend(
            out.iter()
                .filter_map(|t| t.target_group_arn().map(String::from)),
        );
    }
    Ok((lbs, tgs, listeners))
}

/// Every Ready record of a kind the refresh lists whose ID the cloud no longer has.
fn gone(recorded: &[Recorded], listed: &Listed) -> Vec<Gone> {
    let mut out = Vec::new();
    for r in recorded {
        let Some(id) = &r.id else { continue };
        if r.status != Status::Ready {
            continue;
        }
        let (present, reason) = match r.kind {
            Kind::Instance | Kind::LbInstance => {
                (listed.instances.contains(id), "terminated outside acura-ha")
            }
            Kind::SecurityGroup => (listed.groups.contains(id), "deleted outside acura-ha"),
            Kind::SecurityGroupRule => (listed.rules.contains(id), "deleted outside acura-ha"),
            Kind::KeyPair => (
                listed.key_pairs.contains(id) || listed.key_pairs.contains(&r.name),
                "deleted outside acura-ha",
            ),
            Kind::LoadBalancer => (
                listed.load_balancers.contains(id),
                "deleted outside acura-ha",
            ),
            Kind::TargetGroup => (
                listed.target_groups.contains(id),
                "deleted outside acura-ha",
            ),
            Kind::Listener => (listed.listeners.contains(id), "deleted outside acura-ha"),
            _ => continue,
        };
        if !present {
            out.push(Gone {
                address: r.address.clone(),
                reason: reason.into(),
            });
        }
    }
    out
}
