//! ELBv2: the internet-facing Network Load Balancer, a target group and a listener for each of
//! the guide's listeners, target registration (each node in each target group is a
//! `member[<node>:<key>]` of the desired model, recorded once registered), and teardown. Checks
//! AWS makes and moto does not are made here first: one load balancer per name (adopted only when
//! it is this cluster's), no UDP health checks, one listener per port. What no wanted resource
//! accounts for (a listener of a port no longer wanted, a target group or a registration added
//! by hand) is in [`unwanted`].

pub(crate) mod unwanted;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use acura_ha_api::inventory::OUTPUT_ADDRESS;
use acura_ha_api::model::{Kind, Recorded, Resource, Status};
use acura_ha_api::provider::ProviderError;
use acura_ha_api::spec::{ClusterSpec, TAG_CLUSTER, TAG_LINEAGE};
use acura_ha_api::targets::shared::member_parts;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, LoadBalancerSchemeEnum, LoadBalancerStateEnum, LoadBalancerTypeEnum,
    ProtocolEnum, Tag, TargetDescription, TargetGroup, TargetTypeEnum,
};
use backon::{ExponentialBuilder, Retryable};

use crate::ec2::Net;
use crate::error::{self, CloudError};
use crate::{Clients, SharedJournal, forget, progress, record};

/// The wanted target groups, made or adopted.
pub(crate) struct TargetGroups {
    /// Target group ARN by listener key (`tcp-443`).
    pub arns: BTreeMap<String, String>,
    /// The keys of the groups this run created: nothing is registered in them yet, so their
    /// registrations need no describe.
    pub fresh: BTreeSet<String>,
}

/// What the lookups found on the ELBv2 side, before anything is created.
pub(crate) struct Found {
    /// The cluster's load balancer, by its name.
    lb: Option<FoundLb>,
    /// Every target group of the region (one paged list, not one lookup per name): the wanted
    /// ones by name, and the cluster's others for the prune.
    groups: Vec<TargetGroup>,
}

/// The lookups, concurrently: the load balancer by name, and the region's target groups.
pub(crate) async fn find(
    c: &Clients,
    spec: &ClusterSpec,
    desired: &[Resource],
) -> Result<Found, ProviderError> {
    let name = &one(desired, "load_balancer").name;
    let (lb, groups) = tokio::try_join!(find_lb(c, spec, name), unwanted::list_groups(c))?;
    Ok(Found { lb, groups })
}

fn protocol(p: &str) -> ProtocolEnum {
    ProtocolEnum::from(p)
}

fn elb_tags(spec: &ClusterSpec, role: &str) -> Vec<Tag> {
    spec.cloud_tags(role)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Refuses what AWS would refuse and moto accepts.
pub(crate) fn validate(_spec: &ClusterSpec, desired: &[Resource]) -> Result<(), ProviderError> {
    let mut ports = BTreeSet::new();
    for l in desired.iter().filter(|r| r.kind == Kind::Listener) {
        let port = l.attrs.get("port").cloned().unwrap_or_default();
        if !ports.insert(port.clone()) {
            return Err(ProviderError::Unsupported(format!(
                "{}: port {port} has a listener already; an NLB listens once per port",
                l.address
            )));
        }
    }
    for tg in desired.iter().filter(|r| r.kind == Kind::TargetGroup) {
        let check = tg.attrs.get("health_check").cloned().unwrap_or_default();
        if !check.starts_with("TCP") && !check.starts_with("HTTP") {
            return Err(ProviderError::Unsupported(format!(
                "{}: health check {check:?}: NLB target groups check over TCP, HTTP or HTTPS only",
                tg.address
            )));
        }
    }
    Ok(())
}

fn one<'a>(desired: &'a [Resource], address: &str) -> &'a Resource {
    desired
        .iter()
        .find(|r| r.address == address)
        .expect("planned")
}

/// The cluster's tag value on a load balancer or target group, if any; refuses (naming
/// `what`) one of this cluster's name whose lineage tag names another state (#9.4).
async fn cluster_tag(
    c: &Clients,
    spec: &ClusterSpec,
    what: &str,
    arn: &str,
) -> Result<Option<String>, ProviderError> {
    let out = c
        .elb
        .describe_tags()
        .resource_arns(arn)
        .send()
        .await
        .map_err(|e| error::elb(e).into_provider(arn))?;
    let tag = |k: &str| {
        out.tag_descriptions()
            .iter()
            .flat_map(|d| d.tags())
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
            .map(String::from)
    };
    let cluster = tag(TAG_CLUSTER);
    if cluster.as_deref() == Some(spec.cluster.name.as_str()) {
        spec.check_lineage(what, tag(TAG_LINEAGE).as_deref())
            .map_err(|message| ProviderError::Cloud {
                resource: what.to_string(),
                message,
                request_id: None,
            })?;
    }
    Ok(cluster)
}

/// Finds the load balancer by its name: this cluster's is adopted, anyone else's refused.
/// A load balancer found by name: its ARN, DNS name and security groups.
struct FoundLb {
    arn: String,
    dns: String,
    security_groups: Vec<String>,
}

async fn find_lb(
    c: &Clients,
    spec: &ClusterSpec,
    name: &str,
) -> Result<Option<FoundLb>, ProviderError> {
    let out = c
        .elb
        .describe_load_balancers()
        .names(name)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await;
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            let e = error::elb(e);
            if e.is("LoadBalancerNotFound") {
                return Ok(None);
            }
            return Err(e.into_provider(&format!("load balancer {name}")));
        }
    };
    let mut ours = None;
    for lb in &out {
        let arn = lb.load_balancer_arn().unwrap_or_default().to_string();
        match cluster_tag(c, spec, &format!("load_balancer ({name})"), &arn).await? {
            Some(owner) if owner == spec.cluster.name => {
                ours.get_or_insert(FoundLb {
                    arn,
                    dns: lb.dns_name().unwrap_or_default().to_string(),
                    security_groups: lb.security_groups().to_vec(),
                });
            }
            other => {
                return Err(ProviderError::Cloud {
                    resource: format!("load balancer {name}"),
                    message: format!(
                        "exists and belongs to {}: pick another cluster.name, or delete it",
                        other
                            .map(|o| format!("cluster {o:?}"))
                            .unwrap_or_else(|| "no acura-ha cluster".into())
                    ),
                    request_id: None,
                });
            }
        }
    }
    if ours.is_some() {
        return Ok(ours);
    }
    Ok(None)
}

/// The wanted target groups, each adopted from the lookups' list or created, concurrently (they
/// need only the VPC).
pub(crate) async fn target_groups(
    c: &Clients,
    spec: &ClusterSpec,
    desired: &[Resource],
    vpc_id: &str,
    found: &Found,
    journal: &SharedJournal<'_>,
) -> Result<TargetGroups, ProviderError> {
    let groups = desired
        .iter()
        .filter(|r| r.kind == Kind::TargetGroup)
        .map(|tg| async move {
            let key = tg
                .address
                .trim_start_matches("target_group[")
                .trim_end_matches(']')
                .to_string();
            let (arn, fresh) = target_group(c, spec, tg, vpc_id, &found.groups, journal).await?;
            Ok::<_, ProviderError>((key, arn, fresh))
        });
    let mut out = TargetGroups {
        arns: BTreeMap::new(),
        fresh: BTreeSet::new(),
    };
    for (key, arn, fresh) in futures::future::try_join_all(groups).await? {
        if fresh {
            out.fresh.insert(key.clone());
        }
        out.arns.insert(key, arn);
    }
    Ok(out)
}

/// Creates (or adopts) the NLB and its listeners (forwarding to the target groups `tgs` yields,
/// awaited only once the NLB exists), waiting until it is active beside the listeners'
/// creates; then removes what is not wanted.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn load_balancer(
    c: &Clients,
    spec: &ClusterSpec,
    desired: &[Resource],
    net: &Net,
    nlb_group: &str,
    found: &Found,
    tgs: impl std::future::Future<Output = Result<std::sync::Arc<TargetGroups>, ProviderError>>,
    journal: &SharedJournal<'_>,
    quiet: bool,
) -> Result<(), ProviderError> {
    let r = one(desired, "load_balancer");
    let name = r.name.clone();
    let mut found_lb = found.lb.as_ref();
    // The lookups' list of target groups serves the prune, unless the load balancer is
    // replaced: its old one's groups are then attached to nothing, so they are listed again.
    let mut listed = Some(found.groups.as_slice());
    if let Some(lb) = &found_lb
        && lb.security_groups.is_empty()
    {
        // Made before the NLB had a group of its own (#11.11): an NLB created without one can
        // never get one, and without it the nodes would have to admit the VPC's CIDR. The plan
        // showed this replace (`security_groups: (unset) -> ...`); the new NLB has a new DNS
        // name.
        progress(
            quiet,
            &format!(
                "replace load balancer {name}: created without a security group, which an NLB gets only at creation"
            ),
        );
        let old = crate::ec2::journal_records(journal)
            .await
            .into_iter()
            .find(|x| x.address == r.address);
        if let Some(mut old) = old {
            old.status = Status::Deleting;
            journal.lock().await.record(old)?;
        }
        delete_lb(c, &lb.arn, &name, quiet).await?;
        for l in desired.iter().filter(|x| x.kind == Kind::Listener) {
            journal.lock().await.forget(&l.address)?;
        }
        found_lb = None;
        listed = None;
    } else if let Some(lb) = &found_lb
        && lb.security_groups != [nlb_group.to_string()]
    {
        // Created with a group, so it can change them: exactly the NLB's own group.
        c.elb
            .set_security_groups()
            .load_balancer_arn(&lb.arn)
            .security_groups(nlb_group)
            .send()
            .await
            .map_err(|e| error::elb(e).into_provider(&r.address))?;
    }
    let (arn, dns, fresh) = match found_lb {
        Some(found) => (found.arn.clone(), found.dns.clone(), false),
        None => {
            record(journal, r, Status::Creating, None, BTreeMap::new()).await?;
            // One subnet per availability zone.
            let mut zones = BTreeSet::new();
            let subnets: Vec<String> = net
                .subnets
                .iter()
                .filter(|(_, az)| zones.insert(az.clone()))
                .map(|(s, _)| s.clone())
                .collect();
            progress(quiet, &format!("create network load balancer {name}"));
            let out = c
                .elb
                .create_load_balancer()
                .name(&name)
                .r#type(LoadBalancerTypeEnum::Network)
                .scheme(LoadBalancerSchemeEnum::InternetFacing)
                .set_subnets(Some(subnets))
                .security_groups(nlb_group)
                .set_tags(Some(elb_tags(spec, "load-balancer")))
                .send()
                .await
                .map_err(|e| error::elb(e).into_provider(&r.address))?;
            let lb = out
                .load_balancers()
                .first()
                .ok_or_else(|| ProviderError::Cloud {
                    resource: r.address.clone(),
                    message: "CreateLoadBalancer returned no load balancer".into(),
                    request_id: None,
                })?;
            (
                lb.load_balancer_arn().unwrap_or_default().to_string(),
                lb.dns_name().unwrap_or_default().to_string(),
                true,
            )
        }
    };
    let mut outputs = BTreeMap::new();
    outputs.insert(OUTPUT_ADDRESS.to_string(), dns.clone());
    outputs.insert("dns_name".to_string(), dns);
    // A load balancer this run created is `Creating` until it is active; one adopted that the
    // state already holds as ready stays so: a failure later in this run (a listener, the
    // prune) must not make the next plan announce its replacement (review finding 4).
    let adopted_ready = !fresh
        && crate::recorded(journal, &r.address)
            .await
            .is_some_and(|old| old.status == Status::Ready && old.id.as_deref() == Some(&arn));
    let status = if adopted_ready {
        Status::Ready
    } else {
        Status::Creating
    };
    record(journal, r, status, Some(arn.clone()), outputs.clone()).await?;

    // A load balancer this run created has no listener yet: nothing to describe.
    let current = if fresh {
        Vec::new()
    } else {
        c.elb
            .describe_listeners()
            .load_balancer_arn(&arn)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| error::elb(e).into_provider(&format!("listeners of {name}")))?
    };
    // One listener per port, made concurrently.
    let tgs = tgs.await?;
    let (current, groups_ref, arn_ref) = (&current, &tgs.arns, &arn);
    let listeners = desired
        .iter()
        .filter(|r| r.kind == Kind::Listener)
        .map(|l| async move {
            let key = l
                .address
                .trim_start_matches("listener[")
                .trim_end_matches(']')
                .to_string();
            let port: i32 = l
                .attrs
                .get("port")
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            let proto = l.attrs.get("protocol").cloned().unwrap_or_default();
            let existing = current
                .iter()
                .find(|x| x.port() == Some(port))
                .and_then(|x| x.listener_arn())
                .map(String::from);
            let listener_arn = match existing {
                Some(a) => a,
                None => {
                    record(journal, l, Status::Creating, None, BTreeMap::new()).await?;
                    let out = c
                        .elb
                        .create_listener()
                        .load_balancer_arn(arn_ref)
                        .protocol(protocol(&proto))
                        .port(port)
                        .default_actions(
                            Action::builder()
                                .r#type(ActionTypeEnum::Forward)
                                .target_group_arn(&groups_ref[&key])
                                .build(),
                        )
                        .set_tags(Some(elb_tags(spec, "load-balancer")))
                        .send()
                        .await
                        .map_err(|e| error::elb(e).into_provider(&l.address))?;
                    out.listeners()
                        .first()
                        .and_then(|x| x.listener_arn())
                        .unwrap_or_default()
                        .to_string()
                }
            };
            record(
                journal,
                l,
                Status::Ready,
                Some(listener_arn),
                BTreeMap::new(),
            )
            .await
        });
    // The listeners are made while the load balancer provisions: ELBv2 takes them at once.
    let active_what = format!("load balancer {name} active");
    let active = crate::wait::until(&active_what, Duration::from_secs(900), quiet, || {
        let arn = arn.clone();
        async move {
            let out = c
                .elb
                .describe_load_balancers()
                .load_balancer_arns(&arn)
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| error::elb(e).into_provider(&arn))?;
            let state = out
                .first()
                .and_then(|l| l.state())
                .and_then(|s| s.code())
                .cloned();
            Ok(match state {
                Some(LoadBalancerStateEnum::Active) => Ok(()),
                Some(LoadBalancerStateEnum::Failed) => {
                    return Err(ProviderError::Cloud {
                        resource: arn.clone(),
                        message: "the load balancer failed to provision".into(),
                        request_id: None,
                    });
                }
                other => Err(other
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|| "unknown".into())),
            })
        }
    });
    tokio::try_join!(futures::future::try_join_all(listeners), active)?;
    // Only now that every wanted listener exists: the ones of ports no longer wanted, then the
    // target groups nothing forwards to any more.
    unwanted::prune(c, spec, desired, &arn, current, listed, journal, quiet).await?;
    record(journal, r, Status::Ready, Some(arn.clone()), outputs).await?;
    Ok(())
}

/// One wanted target group: the one of its name in `listed` (when it is this cluster's), or
/// created (recorded `Creating` first). Its ARN, and whether it was created now.
async fn target_group(
    c: &Clients,
    spec: &ClusterSpec,
    tg: &Resource,
    vpc_id: &str,
    listed: &[TargetGroup],
    journal: &SharedJournal<'_>,
) -> Result<(String, bool), ProviderError> {
    let name = tg.name.clone();
    let existing = listed
        .iter()
        .find(|g| g.target_group_name() == Some(name.as_str()))
        .and_then(|g| g.target_group_arn());
    let arn = match existing {
        Some(arn) => {
            match cluster_tag(c, spec, &format!("{} ({name})", tg.address), arn).await? {
                Some(owner) if owner == spec.cluster.name => arn.to_string(),
                _ => {
                    return Err(ProviderError::Cloud {
                        resource: format!("target group {name}"),
                        message: "exists and is not this cluster's: pick another cluster.name, or delete it".into(),
                        request_id: None,
                    });
                }
            }
        }
        None => String::new(),
    };
    let fresh = arn.is_empty();
    let arn = if arn.is_empty() {
        record(journal, tg, Status::Creating, None, BTreeMap::new()).await?;
        let proto = tg.attrs.get("protocol").cloned().unwrap_or_default();
        let port: i32 = tg
            .attrs
            .get("port")
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        // "TCP 6443": the health check's protocol and port (UDP groups check over TCP).
        let check = tg.attrs.get("health_check").cloned().unwrap_or_default();
        let mut parts = check.split(' ');
        let (check_proto, check_port) = (
            parts.next().unwrap_or("TCP"),
            parts.next().unwrap_or("traffic-port"),
        );
        let out = c
            .elb
            .create_target_group()
            .name(&name)
            .protocol(protocol(&proto))
            .port(port)
            .vpc_id(vpc_id)
            .target_type(TargetTypeEnum::Instance)
            .health_check_protocol(protocol(check_proto))
            .health_check_port(check_port)
            .set_tags(Some(elb_tags(spec, "load-balancer")))
            .send()
            .await
            .map_err(|e| error::elb(e).into_provider(&tg.address))?;
        out.target_groups()
            .first()
            .and_then(|t| t.target_group_arn())
            .unwrap_or_default()
            .to_string()
    } else {
        arn
    };
    record(
        journal,
        tg,
        Status::Ready,
        Some(arn.clone()),
        BTreeMap::new(),
    )
    .await?;
    Ok((arn, fresh))
}

/// The output of a registration's record (`member[<node>:<key>]`) that names its target group
/// (its ID is the instance's).
pub(crate) const TARGET_GROUP_ARN: &str = "target_group_arn";

/// The desired registrations in the target group of listener `key`, each with its node's
/// instance ID (`instance_ids`, by instance address).
fn wanted_registrations<'a>(
    desired: &'a [Resource],
    key: &str,
    instance_ids: &BTreeMap<String, String>,
) -> Vec<(&'a Resource, String)> {
    desired
        .iter()
        .filter(|r| r.kind == Kind::Member)
        .filter_map(|r| {
            let (node, k) = member_parts(&r.address)?;
            let id = instance_ids.get(&format!("{}[{node}]", Kind::Instance.as_str()))?;
            (k == key).then(|| (r, id.clone()))
        })
        .collect()
}

/// Records the registration `r` of instance `id` in the target group `arn` (`Ready`, the
/// instance as its ID); a record that says so already is not written again.
async fn record_registration(
    journal: &SharedJournal<'_>,
    r: &Resource,
    arn: &str,
    id: &str,
) -> Result<(), ProviderError> {
    let outputs = BTreeMap::from([(TARGET_GROUP_ARN.to_string(), arn.to_string())]);
    if let Some(old) = crate::recorded(journal, &r.address).await
        && old.status == Status::Ready
        && old.id.as_deref() == Some(id)
        && old.outputs == outputs
        && old.attrs == r.attrs
    {
        return Ok(());
    }
    record(journal, r, Status::Ready, Some(id.to_string()), outputs).await
}

/// A record of a registration (`member[…]`, not an extra one found by refresh).
fn is_registration(r: &Recorded) -> bool {
    r.kind == Kind::Member && member_parts(&r.address).is_some()
}

/// Forgets the records of the registrations in the target group `arn` that are not among
/// `kept` (addresses): the group's registrations of instances no longer nodes, or of a group
/// deleted.
pub(crate) async fn forget_registrations_in(
    journal: &SharedJournal<'_>,
    arn: &str,
    kept: &[&str],
) -> Result<(), ProviderError> {
    forget_registrations_where(journal, |r| {
        r.outputs.get(TARGET_GROUP_ARN).map(String::as_str) == Some(arn)
            && !kept.contains(&r.address.as_str())
    })
    .await
}

/// Forgets the records of the named nodes' registrations, in every target group (node removal:
/// their instances were deregistered, or are gone).
pub(crate) async fn forget_registrations_of(
    journal: &SharedJournal<'_>,
    names: &[String],
) -> Result<(), ProviderError> {
    forget_registrations_where(journal, |r| {
        member_parts(&r.address).is_some_and(|(node, _)| names.iter().any(|n| n == node))
    })
    .await
}

/// Forgets every registration record `which` picks.
async fn forget_registrations_where(
    journal: &SharedJournal<'_>,
    which: impl Fn(&Recorded) -> bool,
) -> Result<(), ProviderError> {
    let picked: Vec<String> = crate::ec2::journal_records(journal)
        .await
        .into_iter()
        .filter(|r| is_registration(r) && which(r))
        .map(|r| r.address)
        .collect();
    for a in picked {
        forget(journal, &a).await?;
    }
    Ok(())
}

/// Registers every desired registration (`member[<node>:<key>]`) that is not registered yet, then
/// takes out every instance that is not a node of the cluster (one describe per group; a
/// register or deregister call only for what differs, so a second `up` makes none). A group this
/// run created has nothing registered: its nodes are registered without a describe. Each wanted
/// registration is recorded once it is registered (made now or found there), and the records of
/// the group's other registrations are forgotten. Concurrently.
pub(crate) async fn register_targets(
    c: &Clients,
    desired: &[Resource],
    tgs: &TargetGroups,
    instance_ids: &BTreeMap<String, String>,
    journal: &SharedJournal<'_>,
) -> Result<(), ProviderError> {
    let calls = tgs.arns.iter().map(|(key, arn)| async move {
        let wanted = wanted_registrations(desired, key, instance_ids);
        let ids: BTreeSet<String> = wanted.iter().map(|(_, id)| id.clone()).collect();
        if !tgs.fresh.contains(key) {
            unwanted::converge_targets(c, key, arn, &ids).await?;
        } else if !ids.is_empty() {
            let mut req = c.elb.register_targets().target_group_arn(arn);
            for id in &ids {
                req = req.targets(TargetDescription::builder().id(id.as_str()).build());
            }
            req.send().await.map_err(|e| {
                error::elb(e).into_provider(&format!("targets of target_group[{key}]"))
            })?;
        }
        for (r, id) in &wanted {
            record_registration(journal, r, arn, id).await?;
        }
        let kept: Vec<&str> = wanted.iter().map(|(r, _)| r.address.as_str()).collect();
        forget_registrations_in(journal, arn, &kept).await
    });
    futures::future::try_join_all(calls).await?;
    Ok(())
}

/// Takes the instances out of every target group of the cluster: the recorded ones, or (no
/// record) those its names and tags find. A target that is not registered (`InvalidTarget`)
/// and a group that is gone count as done. One call per group, concurrently.
pub(crate) async fn deregister_targets(
    c: &Clients,
    spec: &ClusterSpec,
    instance_ids: &[String],
    journal: &SharedJournal<'_>,
    quiet: bool,
) -> Result<(), ProviderError> {
    if instance_ids.is_empty() {
        return Ok(());
    }
    let recorded: Vec<Recorded> = crate::ec2::journal_records(journal)
        .await
        .into_iter()
        .filter(|r| r.kind == Kind::TargetGroup && r.id.is_some())
        .collect();
    let groups = if recorded.is_empty() {
        discover(c, spec)
            .await?
            .into_iter()
            .filter(|r| r.kind == Kind::TargetGroup && r.id.is_some())
            .collect()
    } else {
        recorded
    };
    progress(
        quiet,
        &format!(
            "deregister {} from {} target groups",
            instance_ids.join(", "),
            groups.len()
        ),
    );
    let calls = groups.iter().map(|tg| async move {
        let arn = tg.id.clone().unwrap_or_default();
        unwanted::deregister(c, &arn, instance_ids, &tg.address).await
    });
    futures::future::try_join_all(calls).await?;
    Ok(())
}

/// The load balancer, its target groups and listeners, by their deterministic names.
pub(crate) async fn discover(
    c: &Clients,
    spec: &ClusterSpec,
) -> Result<Vec<Recorded>, ProviderError> {
    let mut out = Vec::new();
    let desired = acura_ha_api::desired::desired(spec);
    let lb_name = format!("{}-nlb", spec.cluster.name);
    // The load balancer by name and every target group of the region (every page, kept by
    // name: a name filter fails the whole call when one name is missing), at once.
    let (lbs, tgs) = tokio::join!(
        c.elb
            .describe_load_balancers()
            .names(&lb_name)
            .into_paginator()
            .items()
            .send()
            .try_collect(),
        unwanted::list_groups(c)
    );
    let lbs = match lbs {
        Ok(o) => o
            .iter()
            .map(|l| {
                (
                    l.load_balancer_arn().unwrap_or_default().to_string(),
                    l.dns_name().unwrap_or_default().to_string(),
                )
            })
            .collect::<Vec<_>>(),
        Err(e) => {
            let e = error::elb(e);
            if !e.is("LoadBalancerNotFound") {
                return Err(e.into_provider(&format!("load balancer {lb_name}")));
            }
            Vec::new()
        }
    };
    let names: BTreeMap<&str, &Resource> = desired
        .iter()
        .filter(|r| r.kind == Kind::TargetGroup)
        .map(|r| (r.name.as_str(), r))
        .collect();
    let tgs = tgs?;
    let tgs: Vec<(String, &Resource)> = tgs
        .iter()
        .filter_map(|t| {
            let r = names.get(t.target_group_name()?)?;
            Some((t.target_group_arn()?.to_string(), *r))
        })
        .collect();
    // Ownership from the tags, in batches of 20 ARNs (the API's limit).
    let arns: Vec<String> = lbs
        .iter()
        .map(|(a, _)| a.clone())
        .chain(tgs.iter().map(|(a, _)| a.clone()))
        .collect();
    let mut ours = BTreeSet::new();
    for chunk in arns.chunks(20) {
        let tags = c
            .elb
            .describe_tags()
            .set_resource_arns(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| error::elb(e).into_provider("tags of the load balancer"))?;
        for d in tags.tag_descriptions() {
            let lineage = d
                .tags()
                .iter()
                .find(|t| t.key() == Some(TAG_LINEAGE))
                .and_then(|t| t.value());
            // Another state's cluster of the same name is not ours to delete (#9.4).
            if d.tags().iter().any(|t| {
                t.key() == Some(TAG_CLUSTER) && t.value() == Some(spec.cluster.name.as_str())
            }) && spec.check_lineage("", lineage).is_ok()
            {
                ours.insert(d.resource_arn().unwrap_or_default().to_string());
            }
        }
    }
    // Duplicates (a create whose reply was lost, then made again) get addresses of their own.
    let mut taken = BTreeSet::new();
    let mut address = |base: &str, arn: &str| {
        let a = if taken.contains(base) {
            format!("{base}~{}", arn.rsplit('/').next().unwrap_or(arn))
        } else {
            base.to_string()
        };
        taken.insert(a.clone());
        a
    };
    for (arn, dns) in lbs.into_iter().filter(|(a, _)| ours.contains(a)) {
        let mut o = BTreeMap::new();
        o.insert(OUTPUT_ADDRESS.to_string(), dns);
        out.push(Recorded::found(
            address("load_balancer", &arn),
            Kind::LoadBalancer,
            lb_name.clone(),
            arn,
            o,
        ));
    }
    for (arn, r) in tgs.into_iter().filter(|(a, _)| ours.contains(a)) {
        out.push(Recorded::found(
            address(&r.address, &arn),
            Kind::TargetGroup,
            r.name.clone(),
            arn,
            BTreeMap::new(),
        ));
    }
    Ok(out)
}

/// Deletes the load balancer `arn` (its listeners go with it) and waits until it is gone;
/// NotFound is done.
async fn delete_lb(c: &Clients, arn: &str, name: &str, quiet: bool) -> Result<(), ProviderError> {
    progress(quiet, &format!("delete load balancer {name}"));
    let out = c
        .elb
        .delete_load_balancer()
        .load_balancer_arn(arn)
        .send()
        .await;
    if let Err(e) = out {
        let e = error::elb(e);
        if !e.is("LoadBalancerNotFound") {
            return Err(e.into_provider(&format!("load balancer {name}")));
        }
    }
    crate::wait::until(
        &format!("load balancer {name} deleted"),
        Duration::from_secs(600),
        quiet,
        || {
            let arn = arn.to_string();
            async move {
                match c
                    .elb
                    .describe_load_balancers()
                    .load_balancer_arns(&arn)
                    .into_paginator()
                    .items()
                    .send()
                    .try_collect()
                    .await
                {
                    Ok(o) if o.is_empty() => Ok(Ok(())),
                    Ok(_) => Ok(Err("still there".into())),
                    Err(e) => {
                        let e = error::elb(e);
                        if e.is("LoadBalancerNotFound") {
                            Ok(Ok(()))
                        } else {
                            Err(e.into_provider(&arn))
                        }
                    }
                }
            }
        },
    )
    .await
}

/// Deletes the load balancer (its listeners go with it), waits until it is gone, says so on
/// `lb_gone` (the security groups wait for that, not for the target groups), then deletes the
/// target groups, retrying `ResourceInUse` while the deletion settles.
pub(crate) async fn destroy(
    c: &Clients,
    _spec: &ClusterSpec,
    journal: &SharedJournal<'_>,
    quiet: bool,
    lb_gone: tokio::sync::watch::Sender<bool>,
) -> Result<(), ProviderError> {
    let all = crate::ec2::journal_records(journal).await;
    // The listeners' records, and the registrations' (they go with their target groups and
    // instances), are forgotten while the load balancer is deleted.
    let listeners = async {
        for l in all
            .iter()
            .filter(|r| r.kind == Kind::Listener || is_registration(r))
        {
            forget(journal, &l.address).await?;
        }
        Ok::<_, ProviderError>(())
    };
    let lbs = async {
        for lb in all.iter().filter(|r| r.kind == Kind::LoadBalancer) {
            if let Some(arn) = &lb.id {
                delete_lb(c, arn, &lb.name, quiet).await?;
            }
            forget(journal, &lb.address).await?;
        }
        Ok(())
    };
    tokio::try_join!(listeners, lbs)?;
    // No receiver left is no one waiting.
    let _ = lb_gone.send(true);
    // The target groups are independent: deleted concurrently.
    let deletes = all
        .iter()
        .filter(|r| r.kind == Kind::TargetGroup)
        .map(|tg| async move {
            if let Some(arn) = &tg.id {
                let delete = || async {
                    match c
                        .elb
                        .delete_target_group()
                        .target_group_arn(arn)
                        .send()
                        .await
                    {
                        Ok(_) => Ok(()),
                        Err(e) => {
                            let e = error::elb(e);
                            if e.is("TargetGroupNotFound") {
                                Ok(())
                            } else {
                                Err(e)
                            }
                        }
                    }
                };
                delete
                    .retry(
                        ExponentialBuilder::default()
                            .with_min_delay(Duration::from_secs(1))
                            .with_max_times(20),
                    )
                    .when(|e: &CloudError| e.is("ResourceInUse"))
                    .await
                    .map_err(|e| e.into_provider(&tg.address))?;
            }
            forget(journal, &tg.address).await
        });
    futures::future::try_join_all(deletes).await?;
    Ok(())
}
