//! Refresh (converge, #9.3): the cloud compared with the state, one list call per kind (members:
//! one per pool, as Octavia lists them), so `plan` shows what changed outside the tool and `up`
//! repairs it. A recorded resource whose ID the cloud no longer lists is gone (`up` creates it
//! again: every creator here finds by listing, not by record); an ingress rule of the cluster's
//! own group that no wanted rule matches and no record holds is extra (`up` revokes it). A
//! recorded server that is SHUTOFF (stopped outside the tool) is changed, not gone: `up` starts
//! it, same ID (`compute::create_servers`).

use std::collections::{BTreeMap, BTreeSet};

use acura_ha_api::model::{Changed, Drift, Gone, Kind, Recorded, Status};
use acura_ha_api::provider::ProviderError;
use acura_ha_api::spec::ClusterSpec;
use serde_json::Value;

use crate::client::{Service, Session, q};
use crate::network::{rule_label, rule_source, same_rule, wanted_rules};
use crate::{Seen, js};

/// What `refresh` needs of the cloud, read once.
struct Listed {
    /// IDs of everything the cloud holds of the cluster, of every kind it can list.
    ids: BTreeSet<String>,
    /// The cluster's security group ID and its rules, if the group exists.
    group: Option<(String, Vec<Value>)>,
    /// The load balancer's live listeners, and its members with their pool's ID (what `up`
    /// removes when no listener of the guide or node of the cluster wants it).
    listeners: Vec<Value>,
    members: Vec<(String, Value)>,
    /// IDs of the cluster's servers that are SHUTOFF (from the same server list).
    stopped: BTreeSet<String>,
}

/// Why `plan` shows a server stopped outside the tool as an in-place change.
pub(crate) const STOPPED_OUTSIDE: &str = "stopped outside acura-ha: up starts it";

pub(crate) async fn refresh(
    s: &Session,
    spec: &ClusterSpec,
    recorded: &[Recorded],
) -> Result<Drift, ProviderError> {
    let own_key_pair = spec
        .openstack
        .as_ref()
        .is_some_and(|o| o.key_name.is_none());
    let seen = Seen::read(s, spec, own_key_pair).await?;
    let listed = list(s, &seen).await?;
    Ok(compare(spec, recorded, &listed, seen.foreign))
}

async fn list(s: &Session, seen: &Seen) -> Result<Listed, ProviderError> {
    let mut ids: BTreeSet<String> = seen.records.iter().filter_map(|r| r.id.clone()).collect();
    let group = seen
        .records
        .iter()
        .find(|r| r.kind == Kind::SecurityGroup)
        .and_then(|r| r.id.clone());
    let rules = async {
        match &group {
            Some(g) => s
                .list(
                    Service::Network,
                    &format!("/security-group-rules?security_group_id={}", q(g)),
                    "security_group_rules",
                )
                .await
                .map(Some)
                .map_err(|e| e.into_provider(&format!("rules of security group {g}"))),
            None => Ok(None),
        }
    };
    let octavia = async {
        let Some(lb) = &seen.lb else {
            return Ok((Vec::new(), Vec::new(), Vec::new()));
        };
        let lb = js(lb, "id");
        let what = format!("children of load balancer {lb}");
        let listeners_path = format!("/lbaas/listeners?loadbalancer_id={}", q(&lb));
        let pools_path = format!("/lbaas/pools?loadbalancer_id={}", q(&lb));
        let (listeners, pools) = tokio::try_join!(
            s.list(Service::LoadBalancer, &listeners_path, "listeners"),
            s.list(Service::LoadBalancer, &pools_path, "pools"),
        )
        .map_err(|e| e.into_provider(&what))?;
        let members = futures::future::try_join_all(pools.iter().map(|p| {
            let id = js(p, "id");
            async move {
                s.list(
                    Service::LoadBalancer,
                    &format!("/lbaas/pools/{id}/members"),
                    "members",
                )
                .await
                .map_err(|e| e.into_provider(&format!("members of pool {id}")))
            }
        }))
        .await?;
        // Octavia lists a child it is deleting (PENDING_DELETE) until it is gone: already gone.
        let live = |v: &&Value| {
            !js(v, "provisioning_status").ends_with("DELETE")
                && js(v, "provisioning_status") != "DELETED"
        };
        let mut out: Vec<String> = Vec::new();
        out.extend(listeners.iter().filter(live).map(|l| js(l, "id")));
        out.extend(pools.iter().filter(live).map(|p| js(p, "id")));
        // A pool names its monitor: no list call of their own.
        out.extend(pools.iter().map(|p| js(p, "healthmonitor_id")));
        out.extend(members.iter().flatten().filter(live).map(|m| js(m, "id")));
        let by_pool = pools
            .iter()
            .zip(&members)
            .flat_map(|(p, ms)| ms.iter().filter(live).map(|m| (js(p, "id"), m.clone())))
            .collect();
        let listeners = listeners.iter().filter(live).cloned().collect();
        Ok::<_, ProviderError>((out, listeners, by_pool))
    };
    let (rules, (children, listeners, members)) = tokio::try_join!(rules, octavia)?;
    ids.extend(children.into_iter().filter(|i| !i.is_empty()));
    if let Some(rules) = &rules {
        ids.extend(rules.iter().map(|r| js(r, "id")));
    }
    let stopped = seen
        .servers
        .values()
        .filter(|sv| js(sv, "status") == "SHUTOFF")
        .map(|sv| js(sv, "id"))
        .collect();
    Ok(Listed {
        ids,
        group: group.zip(rules),
        listeners,
        members,
        stopped,
    })
}

/// The kinds a refresh can see; others (existing hosts, …) are never reported gone.
fn listed_kind(k: Kind) -> bool {
    matches!(
        k,
        Kind::KeyPair
            | Kind::SecurityGroup
            | Kind::SecurityGroupRule
            | Kind::ServerGroup
            | Kind::Instance
            | Kind::LbInstance
            | Kind::LoadBalancer
            | Kind::Listener
            | Kind::Pool
            | Kind::HealthMonitor
            | Kind::Member
            | Kind::FloatingIp
    )
}

/// `foreign`: another state's cluster of the same name is in the project; what is known only
/// by the name both share (the server group, the imported key pair) cannot be told gone.
fn compare(spec: &ClusterSpec, recorded: &[Recorded], listed: &Listed, foreign: bool) -> Drift {
    let mut drift = Drift::default();
    let own_key_pair = spec
        .openstack
        .as_ref()
        .is_some_and(|o| o.key_name.is_none());
    for r in recorded {
        if r.status != Status::Ready || !listed_kind(r.kind) {
            continue;
        }
        // A member is known by its node's name in its pool: the batch update that sets a
        // pool's members answers no IDs, so a member's record may hold none, or the ID of one
        // deleted outside the tool and made again by the last `up`.
        let present = match (r.kind, r.outputs.get("pool_id"), &r.id) {
            (Kind::Member, Some(pool), _) => listed
                .members
                .iter()
                .any(|(p, m)| p == pool && js(m, "name") == r.name),
            (_, _, Some(id)) => listed.ids.contains(id),
            (_, _, None) => continue,
        };
        if r.kind == Kind::KeyPair && !own_key_pair {
            continue;
        }
        if foreign && matches!(r.kind, Kind::KeyPair | Kind::ServerGroup) {
            continue;
        }
        // Children of a group or load balancer that is itself gone go with it: the parent's
        // line says so, and `up` makes them again with it.
        let parent_gone = match r.kind {
            Kind::SecurityGroupRule => listed.group.is_none(),
            _ => false,
        };
        if present
            && matches!(r.kind, Kind::Instance | Kind::LbInstance)
            && r.id.as_ref().is_some_and(|id| listed.stopped.contains(id))
        {
            drift.changed.push(Changed {
                address: r.address.clone(),
                reason: STOPPED_OUTSIDE.into(),
            });
        }
        if parent_gone || !present {
            let reason = match r.kind {
                Kind::Instance | Kind::LbInstance => {
                    "deleted outside acura-ha (the server is gone)"
                }
                _ => "deleted outside acura-ha",
            };
            drift.gone.push(Gone {
                address: r.address.clone(),
                reason: reason.into(),
            });
        }
    }
    lb_extras(recorded, listed, &mut drift);
    if let Some((group, rules)) = &listed.group {
        let wanted = wanted_rules(spec, group);
        let known: BTreeSet<&str> = recorded.iter().filter_map(|r| r.id.as_deref()).collect();
        for h in rules {
            let id = js(h, "id");
            if !js(h, "direction").eq_ignore_ascii_case("ingress")
                || known.contains(id.as_str())
                || wanted.iter().any(|(_, w)| same_rule(h, w))
            {
                continue;
            }
            let mut outputs = BTreeMap::new();
            outputs.insert("source".to_string(), rule_source(h));
            drift.extra.push(Recorded::found(
                format!("security_group_rule[outside-{id}]"),
                Kind::SecurityGroupRule,
                rule_label(h),
                id,
                outputs,
            ));
        }
    }
    drift
}

/// Listeners on a port the guide does not list and members that no node of the state holds in
/// that pool (added by hand): `up` deletes them (issue 9, item 2).
fn lb_extras(recorded: &[Recorded], listed: &Listed, drift: &mut Drift) {
    use acura_ha_api::tables::LISTENERS;
    let known: BTreeSet<&str> = recorded.iter().filter_map(|r| r.id.as_deref()).collect();
    for l in &listed.listeners {
        let id = js(l, "id");
        let wanted = LISTENERS.iter().any(|w| {
            js(l, "protocol").eq_ignore_ascii_case(w.protocol.as_str())
                && l["protocol_port"].as_u64() == Some(u64::from(w.port))
        });
        if !known.contains(id.as_str()) && !wanted {
            let name = format!("{} {}", js(l, "protocol"), l["protocol_port"]);
            let found = Recorded::found(
                format!("listener[outside-{id}]"),
                Kind::Listener,
                name,
                id,
                BTreeMap::new(),
            );
            drift.extra.push(found);
        }
    }
    for (pool, m) in &listed.members {
        let id = js(m, "id");
        let name = js(m, "name");
        let ours = recorded.iter().any(|r| {
            r.kind == Kind::Member
                && r.name == name
                && r.outputs.get("pool_id").map(String::as_str) == Some(pool.as_str())
        });
        if !known.contains(id.as_str()) && !ours {
            let mut outputs = BTreeMap::new();
            outputs.insert("pool_id".to_string(), pool.clone());
            drift.extra.push(Recorded::found(
                format!("member[outside-{id}]"),
                Kind::Member,
                format!("{}:{}", js(m, "address"), m["protocol_port"]),
                id,
                outputs,
            ));
        }
    }
}
