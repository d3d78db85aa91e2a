//! Converge on the NLB (#9.2, #9.3): what on and around the cluster's load balancer no wanted
//! resource accounts for — a listener on a port the guide does not list (left by an older desired
//! model, or added by hand), a target group of the cluster no kept listener forwards to, an
//! instance registered in a target group that is not a node of the cluster. Refresh reports them
//! (`plan` shows `delete`, "added outside acura-ha"); `up` removes them by ARN, after the wanted
//! ones exist, so traffic on the wanted ports never stops.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use acura_ha_api::model::{Kind, Recorded, Resource, Status};
use acura_ha_api::provider::ProviderError;
use acura_ha_api::spec::{ClusterSpec, TAG_CLUSTER, TAG_LINEAGE};
use aws_sdk_elasticloadbalancingv2::types::{
    Listener, TargetDescription, TargetGroup, TargetHealthStateEnum,
};
use backon::{ExponentialBuilder, Retryable};

use crate::error::{self, CloudError};
use crate::{Clients, SharedJournal, progress};

/// The ports the desired listeners listen on (an NLB listens once per port).
fn wanted_ports(desired: &[Resource]) -> BTreeSet<i32> {
    desired
        .iter()
        .filter(|r| r.kind == Kind::Listener)
        .filter_map(|r| r.attrs.get("port")?.parse().ok())
        .collect()
}

/// The listeners among `listeners` on a port no desired listener listens on.
pub(crate) fn unwanted_listeners<'a>(
    desired: &[Resource],
    listeners: &'a [Listener],
) -> Vec<&'a Listener> {
    let ports = wanted_ports(desired);
    listeners
        .iter()
        .filter(|l| !l.port().is_some_and(|p| ports.contains(&p)))
        .collect()
}

/// The target groups `listeners` forward to (their default actions, weighted ones included).
fn forwarded_to<'a>(listeners: impl Iterator<Item = &'a Listener>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for a in listeners.flat_map(|l| l.default_actions()) {
        out.extend(a.target_group_arn().map(String::from));
        if let Some(f) = a.forward_config() {
            out.extend(
                f.target_groups()
                    .iter()
                    .filter_map(|t| t.target_group_arn().map(String::from)),
            );
        }
    }
    out
}

/// The target groups among the region's `groups` that are this cluster's and that no wanted one
/// is: tagged with the cluster's name and this state's lineage (another state's cluster of the
/// same name is never touched, #9.4), used by no load balancer but the cluster's `nlb`, and
/// forwarded to by none of the listeners `kept`. Only the candidates — named like the cluster's
/// (`<cluster>-…`) or attached to its NLB — have their tags read, 20 ARNs a call, so a region
/// full of other target groups costs no more calls.
pub(crate) async fn outside_groups<'a>(
    c: &Clients,
    spec: &ClusterSpec,
    desired: &[Resource],
    nlb: &str,
    groups: &'a [TargetGroup],
    kept: &[&Listener],
) -> Result<Vec<&'a TargetGroup>, ProviderError> {
    let wanted: BTreeSet<&str> = desired
        .iter()
        .filter(|r| r.kind == Kind::TargetGroup)
        .map(|r| r.name.as_str())
        .collect();
    let used = forwarded_to(kept.iter().copied());
    let prefix = format!("{}-", spec.cluster.name);
    let candidates: Vec<&TargetGroup> = groups
        .iter()
        .filter(|g| {
            let name = g.target_group_name().unwrap_or_default();
            let arn = g.target_group_arn().unwrap_or_default();
            let lbs = g.load_balancer_arns();
            !wanted.contains(name)
                && !arn.is_empty()
                && !used.contains(arn)
                && lbs.iter().all(|l| l == nlb)
                && (name.starts_with(&prefix) || lbs.iter().any(|l| l == nlb))
        })
        .collect();
    let arns: Vec<String> = candidates
        .iter()
        .filter_map(|g| g.target_group_arn().map(String::from))
        .collect();
    let mut ours = BTreeSet::new();
    for chunk in arns.chunks(20) {
        let out = c
            .elb
            .describe_tags()
            .set_resource_arns(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| error::elb(e).into_provider("tags of the cluster's target groups"))?;
        for d in out.tag_descriptions() {
            let tag = |k: &str| {
                d.tags()
                    .iter()
                    .find(|t| t.key() == Some(k))
                    .and_then(|t| t.value())
            };
            if tag(TAG_CLUSTER) == Some(spec.cluster.name.as_str())
                && spec.check_lineage("", tag(TAG_LINEAGE)).is_ok()
            {
                ours.insert(d.resource_arn().unwrap_or_default().to_string());
            }
        }
    }
    Ok(candidates
        .into_iter()
        .filter(|g| ours.contains(g.target_group_arn().unwrap_or_default()))
        .collect())
}

/// The instances registered in the target group `arn`, but those draining (deregistered
/// already, on their way out). A group that is gone has none.
pub(crate) async fn registered(
    c: &Clients,
    arn: &str,
    what: &str,
) -> Result<BTreeSet<String>, ProviderError> {
    let out = match c
        .elb
        .describe_target_health()
        .target_group_arn(arn)
        .send()
        .await
    {
        Ok(o) => o,
        Err(e) => {
            let e = error::elb(e);
            if e.is("TargetGroupNotFound") {
                return Ok(BTreeSet::new());
            }
            return Err(e.into_provider(&format!("targets of {what}")));
        }
    };
    Ok(out
        .target_health_descriptions()
        .iter()
        .filter(|d| {
            d.target_health().and_then(|h| h.state()) != Some(&TargetHealthStateEnum::Draining)
        })
        .filter_map(|d| d.target()?.id().map(String::from))
        .collect())
}

/// The last part of an ARN (`…/listener/net/<lb>/<lb-id>/<id>` → `<id>`).
fn arn_tail(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// A listener `up` deletes, as the plan shows it: `listener[outside-<id>]`, `TCP 9999`.
pub(crate) fn listener_extra(l: &Listener) -> Recorded {
    let arn = l.listener_arn().unwrap_or_default();
    let proto = l.protocol().map(|p| p.as_str()).unwrap_or("?");
    let port = l.port().unwrap_or(0);
    let mut outputs = BTreeMap::new();
    outputs.insert("port".to_string(), port.to_string());
    Recorded::found(
        format!("listener[outside-{}]", arn_tail(arn)),
        Kind::Listener,
        format!("{proto} {port}"),
        arn.to_string(),
        outputs,
    )
}

/// A target group `up` deletes: `target_group[outside-<name>]` (names are unique per region).
pub(crate) fn group_extra(g: &TargetGroup) -> Recorded {
    let name = g.target_group_name().unwrap_or_default();
    Recorded::found(
        format!("target_group[outside-{name}]"),
        Kind::TargetGroup,
        name.to_string(),
        g.target_group_arn().unwrap_or_default().to_string(),
        BTreeMap::new(),
    )
}

/// A registration `up` removes: `target[outside-<group key>-<instance>]`, as a membership
/// (`Kind::Member`) whose ID is the instance and whose group is in `target_group_arn`.
pub(crate) fn target_extra(key: &str, group_arn: &str, group: &str, instance: &str) -> Recorded {
    let mut outputs = BTreeMap::new();
    outputs.insert("target_group_arn".to_string(), group_arn.to_string());
    Recorded::found(
        format!("target[outside-{key}-{instance}]"),
        Kind::Member,
        format!("{instance} in {group}"),
        instance.to_string(),
        outputs,
    )
}

/// Writes `r` as being deleted (its record, or a new one for what was found) before the call,
/// so an interrupted run leaves a record the next one finishes.
async fn deleting(journal: &SharedJournal<'_>, r: &Recorded) -> Result<(), ProviderError> {
    let mut j = journal.lock().await;
    let mut rec = j.get(&r.address).cloned().unwrap_or_else(|| r.clone());
    rec.status = Status::Deleting;
    j.record(rec)
}

/// `up`, once the wanted listeners exist: deletes the listeners of the NLB `nlb` on ports no
/// longer wanted (and any recorded listener the desired model no longer has), then the target
/// groups of the cluster no kept listener forwards to (and any recorded one no longer desired),
/// each by ARN, recorded `Deleting` first and forgotten once gone. `current` is the NLB's
/// listeners as listed before the wanted ones were made; `listed`, the region's target groups
/// as the lookups listed them before anything was created (the groups this run creates are
/// wanted ones, never pruned), or `None` to list them now.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn prune(
    c: &Clients,
    spec: &ClusterSpec,
    desired: &[Resource],
    nlb: &str,
    current: &[Listener],
    listed: Option<&[TargetGroup]>,
    journal: &SharedJournal<'_>,
    quiet: bool,
) -> Result<(), ProviderError> {
    let stale: Vec<Recorded> = crate::ec2::journal_records(journal)
        .await
        .into_iter()
        .filter(|r| matches!(r.kind, Kind::Listener | Kind::TargetGroup))
        .filter(|r| !desired.iter().any(|d| d.address == r.address))
        .collect();
    let unwanted = unwanted_listeners(desired, current);
    let mut listeners: Vec<Recorded> = unwanted.iter().map(|l| listener_extra(l)).collect();
    for r in stale.iter().filter(|r| r.kind == Kind::Listener) {
        if !listeners.iter().any(|l| l.id.is_some() && l.id == r.id) {
            listeners.push(r.clone());
        }
    }
    for l in &listeners {
        // A record of the same ARN under its own address is the one written and forgotten.
        let l = stale
            .iter()
            .find(|r| r.id.is_some() && r.id == l.id)
            .unwrap_or(l);
        if let Some(arn) = &l.id {
            progress(
                quiet,
                &format!("delete listener {} ({}): not wanted", l.name, l.address),
            );
            deleting(journal, l).await?;
            if let Err(e) = c.elb.delete_listener().listener_arn(arn).send().await {
                let e = error::elb(e);
                if !e.is("ListenerNotFound") {
                    return Err(e.into_provider(&format!("{} ({arn})", l.address)));
                }
            }
        }
        journal.lock().await.forget(&l.address)?;
    }

    let listed_now;
    let groups: &[TargetGroup] = match listed {
        Some(g) => g,
        None => {
            listed_now = list_groups(c).await?;
            &listed_now
        }
    };
    let kept: Vec<&Listener> = current
        .iter()
        .filter(|l| {
            !unwanted
                .iter()
                .any(|u| u.listener_arn() == l.listener_arn())
        })
        .collect();
    let mut doomed: Vec<Recorded> = outside_groups(c, spec, desired, nlb, groups, &kept)
        .await?
        .into_iter()
        .map(group_extra)
        .collect();
    for r in stale.iter().filter(|r| r.kind == Kind::TargetGroup) {
        match doomed.iter_mut().find(|g| g.id.is_some() && g.id == r.id) {
            Some(g) => *g = r.clone(),
            None => doomed.push(r.clone()),
        }
    }
    for tg in &doomed {
        if let Some(arn) = &tg.id {
            progress(
                quiet,
                &format!(
                    "delete target group {} ({}): not wanted",
                    tg.name, tg.address
                ),
            );
            deleting(journal, tg).await?;
            delete_group(c, arn)
                .await
                .map_err(|e| e.into_provider(&format!("{} ({arn})", tg.address)))?;
            // Its registrations went with it.
            super::forget_registrations_in(journal, arn, &[]).await?;
        }
        journal.lock().await.forget(&tg.address)?;
    }
    Ok(())
}

/// Every target group of the region, every page.
pub(crate) async fn list_groups(c: &Clients) -> Result<Vec<TargetGroup>, ProviderError> {
    c.elb
        .describe_target_groups()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| error::elb(e).into_provider("target groups"))
}

/// Deletes a target group; gone is done. `ResourceInUse` is retried a while: a listener deleted
/// a moment ago still holds it until ELBv2 has settled.
async fn delete_group(c: &Clients, arn: &str) -> Result<(), CloudError> {
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
                .with_max_times(8),
        )
        .when(|e: &CloudError| e.is("ResourceInUse"))
        .await
}

/// `up`, for one wanted target group `arn`: registers the nodes `wanted` that are not
/// registered, then (so the group never has fewer healthy targets than it needs) deregisters
/// every instance that is not one of them. One describe, and a register or deregister call only
/// when something is missing or extra: a second `up` changes nothing.
pub(crate) async fn converge_targets(
    c: &Clients,
    key: &str,
    arn: &str,
    wanted: &BTreeSet<String>,
) -> Result<(), ProviderError> {
    let what = format!("target_group[{key}]");
    let have = registered(c, arn, &what).await?;
    let missing: Vec<&String> = wanted.difference(&have).collect();
    if !missing.is_empty() {
        let mut req = c.elb.register_targets().target_group_arn(arn);
        for id in missing {
            req = req.targets(TargetDescription::builder().id(id.as_str()).build());
        }
        req.send()
            .await
            .map_err(|e| error::elb(e).into_provider(&format!("targets of {what}")))?;
    }
    let extra: Vec<String> = have.difference(wanted).cloned().collect();
    deregister(c, arn, &extra, &what).await
}

/// Takes `ids` out of the target group `arn` in one call; when one of them is not registered
/// (`InvalidTarget` fails the whole call), one by one. Not registered, or the group gone, is done.
pub(crate) async fn deregister(
    c: &Clients,
    arn: &str,
    ids: &[String],
    what: &str,
) -> Result<(), ProviderError> {
    if ids.is_empty() {
        return Ok(());
    }
    let call = |ids: Vec<String>| async move {
        let mut req = c.elb.deregister_targets().target_group_arn(arn);
        for id in ids {
            req = req.targets(TargetDescription::builder().id(id).build());
        }
        req.send().await.map(|_| ()).map_err(error::elb)
    };
    let done = |e: &CloudError| e.is("TargetGroupNotFound") || e.is("InvalidTarget");
    match call(ids.to_vec()).await {
        Ok(()) => Ok(()),
        Err(e) if e.is("InvalidTarget") && ids.len() > 1 => {
            for id in ids {
                if let Err(e) = call(vec![id.clone()]).await
                    && !done(&e)
                {
                    return Err(e.into_provider(&format!("target {id} of {what}")));
                }
            }
            Ok(())
        }
        Err(e) if done(&e) => Ok(()),
        Err(e) => Err(e.into_provider(&format!("targets of {what}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_elasticloadbalancingv2::types::{Action, ActionTypeEnum, ProtocolEnum};

    fn listener(port: i32, tg: &str) -> Listener {
        Listener::builder()
            .listener_arn(format!("arn:l/{port}"))
            .port(port)
            .protocol(ProtocolEnum::Tcp)
            .default_actions(
                Action::builder()
                    .r#type(ActionTypeEnum::Forward)
                    .target_group_arn(tg)
                    .build(),
            )
            .build()
    }

    fn desired_ports(ports: &[u16]) -> Vec<Resource> {
        ports
            .iter()
            .map(|p| {
                Resource::new(Kind::Listener, Some(&format!("tcp-{p}")), format!("l {p}"))
                    .attr("port", p)
            })
            .collect()
    }

    #[test]
    fn a_listener_on_a_port_not_wanted_is_unwanted() {
        let have = [listener(443, "a"), listener(9999, "b")];
        let unwanted = unwanted_listeners(&desired_ports(&[443, 80]), &have);
        assert_eq!(unwanted.len(), 1);
        assert_eq!(unwanted[0].port(), Some(9999));
        let r = listener_extra(unwanted[0]);
        assert_eq!(r.address, "listener[outside-9999]");
        assert_eq!(r.name, "TCP 9999");
        assert_eq!(r.id.as_deref(), Some("arn:l/9999"));
    }

    #[test]
    fn forwarded_to_reads_every_default_action() {
        let have = [listener(443, "a"), listener(80, "b")];
        assert_eq!(
            forwarded_to(have.iter()),
            BTreeSet::from(["a".to_string(), "b".to_string()])
        );
    }
}
