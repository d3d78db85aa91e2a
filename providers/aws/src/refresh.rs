//! Refresh (converge, #9.3): the cloud compared with the state, one describe per kind, so `plan`
//! shows what changed outside the tool and `up` repairs it. A recorded resource the cloud no
//! longer lists (or an instance terminated) is gone: `up` forgets its record and creates it
//! again, since every creator here finds by name, tags or listing, not by record; a node's
//! recorded registration (`member[<node>:<key>]`) its target group no longer lists is gone
//! ("deregistered outside acura-ha"), and `up` registers it again. An ingress
//! rule of the cluster's own groups that no wanted rule matches and no record holds is extra:
//! `up` revokes it (`ec2::security_group`); so are a listener of the NLB on a port not wanted, a
//! target group of the cluster nothing kept forwards to and a registration of an instance that
//! is not a node: `up` deletes or deregisters them (`elb::unwanted`). A recorded instance that
//! is stopped (or stopping) outside the tool is changed, not gone: `up` starts it, same ID
//! (`ec2::instances`).

use std::collections::BTreeSet;

use acura_ha_api::model::{Changed, Drift, Gone, Kind, Recorded, Resource, Status};
use acura_ha_api::provider::ProviderError;
use acura_ha_api::spec::{ClusterSpec, TAG_CLUSTER};
use acura_ha_api::targets::aws::nlb::NLB_GROUP_ADDRESS;
use acura_ha_api::targets::shared::member_parts;
use aws_sdk_ec2::types::{Filter, InstanceStateName};

use crate::elb::{TARGET_GROUP_ARN, unwanted};
use crate::{Clients, ec2, error};

/// What the cloud holds of the cluster, by ID or ARN, read once.
#[derive(Default)]
struct Listed {
    /// Instances that are not terminated or shutting down.
    instances: BTreeSet<String>,
    /// Of those, the ones stopped or stopping.
    stopped: BTreeSet<String>,
    groups: BTreeSet<String>,
    rules: BTreeSet<String>,
    key_pairs: BTreeSet<String>,
    load_balancers: BTreeSet<String>,
    target_groups: BTreeSet<String>,
    listeners: BTreeSet<String>,
    /// The target groups whose registrations were described, and what is registered in them
    /// (group ARN, instance ID).
    described: BTreeSet<String>,
    registrations: BTreeSet<(String, String)>,
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
        let (mut present, mut stopped) = (BTreeSet::new(), BTreeSet::new());
        for i in out.iter().flat_map(|r| r.instances()) {
            let Some(id) = i.instance_id().map(String::from) else {
                continue;
            };
            match i.state().and_then(|s| s.name()) {
                Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown) => {}
                Some(InstanceStateName::Stopped | InstanceStateName::Stopping) => {
                    stopped.insert(id.clone());
                    present.insert(id);
                }
                _ => {
                    present.insert(id);
                }
            }
        }
        Ok::<_, ProviderError>((present, stopped))
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
    let desired = acura_ha_api::desired::desired(spec);
    let elb = elb(c, spec, &desired, recorded);
    let ((instances, stopped), groups, key_pairs, elb) =
        tokio::try_join!(instances, groups, key_pairs, elb)?;
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
    drift.extra.extend(elb.extra);
    let listed = Listed {
        instances,
        stopped,
        groups,
        rules,
        key_pairs,
        load_balancers: elb.load_balancers,
        target_groups: elb.target_groups,
        listeners: elb.listeners,
        described: elb.described,
        registrations: elb.registrations,
    };
    drift.gone = gone(recorded, &listed);
    drift.changed = stopped_outside(recorded, &listed);
    Ok(drift)
}

/// Why `plan` shows an instance stopped outside the tool as an in-place change.
pub(crate) const STOPPED_OUTSIDE: &str = "stopped outside acura-ha: up starts it";

/// Every Ready instance record whose instance is stopped or stopping: `up` starts it (its
/// records kept, same ID), so it is an in-place change, not gone.
fn stopped_outside(recorded: &[Recorded], listed: &Listed) -> Vec<Changed> {
    recorded
        .iter()
        .filter(|r| matches!(r.kind, Kind::Instance | Kind::LbInstance))
        .filter(|r| r.status == Status::Ready)
        .filter(|r| r.id.as_ref().is_some_and(|id| listed.stopped.contains(id)))
        .map(|r| Changed {
            address: r.address.clone(),
            reason: STOPPED_OUTSIDE.into(),
        })
        .collect()
}

/// What ELBv2 holds of the cluster: the IDs refresh compares the records with, and what `up`
/// would remove (`elb::unwanted`).
#[derive(Default)]
struct ElbListed {
    load_balancers: BTreeSet<String>,
    target_groups: BTreeSet<String>,
    listeners: BTreeSet<String>,
    described: BTreeSet<String>,
    registrations: BTreeSet<(String, String)>,
    extra: Vec<Recorded>,
}

/// The recorded load balancer and its listeners, every target group of the region (by ARN; a
/// filter by ARNs fails the whole call when one is missing) and, for each recorded target group
/// still there, its registered targets (one DescribeTargetHealth per group), against which the
/// recorded registrations are judged. Extra, unless a
/// record holds it (the plan deletes those as no longer in the cluster file): a listener on a
/// port no desired listener has, a target group of the cluster's (tags and lineage) nothing kept
/// forwards to, an instance registered that is not a node of the state.
async fn elb(
    c: &Clients,
    spec: &ClusterSpec,
    desired: &[Resource],
    recorded: &[Recorded],
) -> Result<ElbListed, ProviderError> {
    let mut out = ElbListed::default();
    let known: BTreeSet<&str> = recorded.iter().filter_map(|r| r.id.as_deref()).collect();
    let mut listeners = Vec::new();
    let lb = ready_id(recorded, "load_balancer");
    if let Some(arn) = &lb {
        let found = c
            .elb
            .describe_load_balancers()
            .load_balancer_arns(arn)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await;
        match found {
            Ok(o) => out.load_balancers.extend(
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
        if out.load_balancers.contains(arn) {
            listeners = c
                .elb
                .describe_listeners()
                .load_balancer_arn(arn)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| error::elb(e).into_provider(&format!("listeners of {arn}")))?;
        }
    }
    out.listeners.extend(
        listeners
            .iter()
            .filter_map(|l| l.listener_arn().map(String::from)),
    );
    let nlb = lb.filter(|a| out.load_balancers.contains(a));
    // With an NLB wanted, `up` prunes the cluster's target groups nothing uses even when it has
    // to make the NLB again (deleted outside, or a kind changed to `cloud`): the plan shows the
    // same groups, read against no load balancer (review finding 3).
    let nlb_wanted = spec.load_balancer.kind == acura_ha_api::spec::LbKind::Cloud;
    if nlb.is_none() && !nlb_wanted && !recorded.iter().any(|r| r.kind == Kind::TargetGroup) {
        return Ok(out);
    }
    let groups = c
        .elb
        .describe_target_groups()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| error::elb(e).into_provider("target groups"))?;
    out.target_groups.extend(
        groups
            .iter()
            .filter_map(|t| t.target_group_arn().map(String::from)),
    );
    let unwanted = unwanted::unwanted_listeners(desired, &listeners);
    out.extra.extend(
        unwanted
            .iter()
            .filter(|l| !known.contains(l.listener_arn().unwrap_or_default()))
            .map(|l| unwanted::listener_extra(l)),
    );
    if nlb.is_some() || nlb_wanted {
        let nlb = nlb.as_deref().unwrap_or_default();
        let kept: Vec<_> = listeners
            .iter()
            .filter(|l| {
                !unwanted
                    .iter()
                    .any(|u| u.listener_arn() == l.listener_arn())
            })
            .collect();
        let outside = unwanted::outside_groups(c, spec, desired, nlb, &groups, &kept).await?;
        out.extra.extend(
            outside
                .into_iter()
                .filter(|g| !known.contains(g.target_group_arn().unwrap_or_default()))
                .map(unwanted::group_extra),
        );
    }
    // The nodes' instances, as recorded: a registration of any other instance is extra.
    let nodes: BTreeSet<&str> = desired
        .iter()
        .filter(|d| d.kind == Kind::Instance)
        .filter_map(|d| recorded.iter().find(|r| r.address == d.address))
        .filter_map(|r| r.id.as_deref())
        .collect();
    let wanted_groups: Vec<(String, String, String)> = desired
        .iter()
        .filter(|d| d.kind == Kind::TargetGroup)
        .filter_map(|d| {
            let arn = ready_id(recorded, &d.address)?;
            let key = d
                .address
                .trim_start_matches("target_group[")
                .trim_end_matches(']')
                .to_string();
            out.target_groups
                .contains(&arn)
                .then(|| (key, arn, d.name.clone()))
        })
        .collect();
    let registered = futures::future::try_join_all(
        wanted_groups
            .iter()
            .map(|(_, arn, name)| unwanted::registered(c, arn, name)),
    )
    .await?;
    for ((key, arn, name), ids) in wanted_groups.iter().zip(registered) {
        out.described.insert(arn.clone());
        out.registrations
            .extend(ids.iter().map(|i| (arn.clone(), i.clone())));
        out.extra.extend(
            ids.iter()
                .filter(|i| !nodes.contains(i.as_str()))
                .map(|i| unwanted::target_extra(key, arn, name, i)),
        );
    }
    Ok(out)
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
            // A node's registration (`member[<node>:<key>]`, its ID the instance's): missing
            // from its target group's DescribeTargetHealth, or its group gone. Registrations
            // of a group not described (not wanted) are not judged.
            Kind::Member if member_parts(&r.address).is_some() => {
                let Some(group) = r.outputs.get(TARGET_GROUP_ARN) else {
                    continue;
                };
                if !listed.target_groups.contains(group) {
                    (false, "its target group was deleted outside acura-ha")
                } else if listed.described.contains(group) {
                    (
                        listed.registrations.contains(&(group.clone(), id.clone())),
                        "deregistered outside acura-ha",
                    )
                } else {
                    continue;
                }
            }
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
