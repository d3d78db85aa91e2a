//! Octavia: the load balancer (VIP on the nodes' subnet, optional floating IP), then per
//! listener of the guide a listener, a ROUND_ROBIN pool, a health monitor and the nodes as
//! members. Every change waits for the load balancer to be ACTIVE first; a 409 (PENDING_*, or
//! a child that exists) means wait, re-read, then decide — never a blind retry.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use acura_ha_api::desired::{cloud_name, listener_key};
use acura_ha_api::inventory::OUTPUT_ADDRESS;
use acura_ha_api::model::{Kind, Recorded, Resource, Status};
use acura_ha_api::provider::ProviderError;
use acura_ha_api::spec::ClusterSpec;
use acura_ha_api::tables::{LISTENERS, Protocol};
use acura_ha_api::targets::openstack as openstack_target;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{ApiError, Service, Session, q};
use crate::compute::Lookups;
use crate::{Ctx, Seen, desired_one, js, tag_strings};

/// The cluster's load balancer and what the provider knows of its state. Every change needs
/// it ACTIVE; after a change of ours it is PENDING_UPDATE until seen ACTIVE again. Seen ACTIVE
/// and not changed since: no need to ask before the next change (if someone else changed it,
/// the change answers 409, and that means wait and re-read).
pub(crate) struct Lb {
    pub id: String,
    /// Its last answer.
    pub body: Value,
    /// Not known ACTIVE: since when (the request of the change, or when it was found so), and
    /// the kind of transition the waits remember (none when it was found so).
    pending: Option<(Instant, Option<&'static str>)>,
    /// Pools created in this run: they have no members yet.
    fresh_pools: Vec<String>,
}

impl Lb {
    fn new(id: String, body: Value, pending: Option<(Instant, Option<&'static str>)>) -> Lb {
        Lb {
            id,
            body,
            pending,
            fresh_pools: Vec::new(),
        }
    }

    /// Not known to be ACTIVE now (someone else's change, or an unknown state).
    fn unknown(id: String) -> Lb {
        Lb::new(id, Value::Null, Some((Instant::now(), None)))
    }

    fn changed(&mut self, sent: Instant) {
        self.pending = Some((sent, Some(LB_CHANGED)));
    }

    /// Busy with another change (a 409, or found PENDING): waited for, not remembered.
    fn busy(&mut self, since: Instant) {
        self.pending = Some((since, None));
    }
}

const LB_DEADLINE: Duration = Duration::from_secs(900);
/// The transitions the waits remember: a load balancer's create (fully populated or bare) and
/// a change of one of its children.
const LB_CREATED: &str = "load balancer ACTIVE after create";
const LB_CHANGED: &str = "load balancer ACTIVE after a change";

fn live_named(l: &Value, name: &str) -> bool {
    js(l, "name") == name && js(l, "provisioning_status") != "DELETED"
}

async fn find_lb(s: &Session, name: &str) -> Result<Option<Value>, ApiError> {
    let v = s
        .list(
            Service::LoadBalancer,
            &format!("/lbaas/loadbalancers?name={}", q(name)),
            "loadbalancers",
        )
        .await?;
    Ok(v.into_iter().find(|l| live_named(l, name)))
}

/// Makes sure the load balancer is ACTIVE (what every change needs): nothing to do when it was
/// last seen ACTIVE and not changed since; else a wait timed from the change.
async fn ready(cx: &Ctx<'_>, lb: &mut Lb) -> Result<(), ProviderError> {
    let Some((since, kind)) = lb.pending else {
        return Ok(());
    };
    let learn = kind.and_then(|k| cx.learn(Service::LoadBalancer, k));
    let s = cx.s;
    let id = lb.id.clone();
    lb.body = crate::wait::transition(
        &format!("load balancer {id} ACTIVE"),
        LB_DEADLINE,
        cx.pace,
        cx.quiet,
        since,
        learn,
        || async {
            let v = s
                .get(Service::LoadBalancer, &format!("/lbaas/loadbalancers/{id}"))
                .await
                .map_err(|e| e.into_provider(&format!("load balancer {id}")))?;
            let lb = v.get("loadbalancer").cloned().unwrap_or(v);
            match js(&lb, "provisioning_status").as_str() {
                "ACTIVE" => Ok(Ok(lb)),
                "ERROR" => Err(ProviderError::Cloud {
                    resource: format!("load balancer {id}"),
                    message: "went to provisioning_status ERROR".into(),
                    request_id: None,
                }),
                other => Ok(Err(other.to_string())),
            }
        },
    )
    .await?;
    lb.pending = None;
    Ok(())
}

/// Creates one child: the load balancer ACTIVE first, then the POST; on 409 or an unknown
/// outcome, waits for ACTIVE again and re-reads with `find` (it may exist now) before deciding
/// to send again.
async fn child<F, Fut>(
    cx: &Ctx<'_>,
    lb: &mut Lb,
    what: &str,
    path: &str,
    body: &Value,
    find: F,
) -> Result<Value, ProviderError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Option<Value>, ApiError>>,
{
    let mut attempt = 0;
    loop {
        ready(cx, lb).await?;
        if attempt > 0
            && let Some(v) = find().await.map_err(|e| e.into_provider(what))?
        {
            return Ok(v);
        }
        let sent = Instant::now();
        match cx
            .s
            .send(Method::POST, Service::LoadBalancer, path, body)
            .await
        {
            Ok(v) => {
                lb.changed(sent);
                return Ok(v);
            }
            Err(e) if (e.conflict() || e.outcome_unknown()) && attempt < 20 => {
                attempt += 1;
                lb.busy(sent);
            }
            Err(e) => return Err(e.into_provider(what)),
        }
    }
}

/// A DELETE of a child, gated the same way; NotFound is done.
async fn delete_child(
    cx: &Ctx<'_>,
    lb: &mut Lb,
    what: &str,
    path: &str,
) -> Result<(), ProviderError> {
    let mut attempt = 0;
    loop {
        ready(cx, lb).await?;
        let sent = Instant::now();
        match cx.s.delete(Service::LoadBalancer, path).await {
            Ok(()) => {
                lb.changed(sent);
                return Ok(());
            }
            Err(e) if e.not_found() => return Ok(()),
            Err(e) if e.conflict() && attempt < 20 => {
                attempt += 1;
                lb.busy(sent);
            }
            Err(e) => return Err(e.into_provider(what)),
        }
    }
}

fn inner(v: Value, key: &str) -> Value {
    v.get(key).cloned().unwrap_or(v)
}

/// The load balancer with its listeners, pools, health monitors and (with `fixed`, node →
/// address) members. A new one is made fully populated in one call (`POST /loadbalancers` with
/// the whole graph, issue 12): everything is recorded before the call and with its ID from the
/// answer. An existing one (day 2), or one on a cloud whose Octavia refuses the full create
/// (said once), is converged child by child: what is missing is created, what is no longer
/// wanted deleted. Returns the load balancer and whether its members were set.
pub(crate) async fn load_balancer(
    cx: &Ctx<'_>,
    desired: &[Resource],
    look: &Lookups,
    fixed: Option<&BTreeMap<String, String>>,
) -> Result<(Lb, bool), ProviderError> {
    let r = desired_one(desired, "load_balancer").expect("planned");
    let s = cx.s;
    let listed = match &look.lbs {
        Some(all) => all.iter().find(|l| live_named(l, &r.name)).cloned(),
        None => find_lb(s, &r.name)
            .await
            .map_err(|e| e.into_provider(&r.address))?,
    };
    let mut graph = None;
    let (mut lb, fresh) = match listed {
        Some(l) => {
            let id = js(&l, "id");
            let active = js(&l, "provisioning_status") == "ACTIVE";
            let pending = (!active).then(|| (Instant::now(), None));
            (Lb::new(id, l, pending), false)
        }
        None => {
            cx.record(r, Status::Creating, None, BTreeMap::new())
                .await?;
            let mut body = json!({"loadbalancer": {
                "name": r.name,
                "description": "Acura HA cluster",
                "vip_subnet_id": look.net.subnet_id,
                "tags": tag_strings(cx.spec, "load-balancer"),
            }});
            let sent = Instant::now();
            let find = || async { find_lb(s, &r.name).await };
            let mut answer = None;
            if let Some(fixed) = fixed {
                for c in graph_children(desired, fixed) {
                    cx.record(&c, Status::Creating, None, BTreeMap::new())
                        .await?;
                }
                body["loadbalancer"]["listeners"] =
                    json!(graph_listeners(cx, desired, look, fixed));
                cx.progress(&format!(
                    "create load balancer {} with its {} listeners, pools, health monitors and members (one call)",
                    r.name,
                    LISTENERS.len()
                ));
                // Sent once by hand: a 501 is a refusal here, not an unknown outcome.
                let sent = match s
                    .send(
                        Method::POST,
                        Service::LoadBalancer,
                        "/lbaas/loadbalancers",
                        &body,
                    )
                    .await
                {
                    Err(e) if e.outcome_unknown() && !refused_graph(&e) => {
                        match find().await.map_err(|e| e.into_provider(&r.address))? {
                            Some(l) => Ok(json!({ "loadbalancer": l })),
                            None => {
                                s.create(Service::LoadBalancer, "/lbaas/loadbalancers", &body, find)
                                    .await
                            }
                        }
                    }
                    other => other,
                };
                match sent {
                    Ok(v) => answer = Some(inner(v, "loadbalancer")),
                    Err(e) if refused_graph(&e) => {
                        cx.progress(&format!(
                            "this Octavia refused the fully populated create (HTTP {}: {}): creating load balancer {} first, then its children one at a time",
                            e.status.unwrap_or_default(),
                            e.message,
                            r.name
                        ));
                        body["loadbalancer"]
                            .as_object_mut()
                            .map(|o| o.remove("listeners"));
                    }
                    Err(e) => return Err(e.into_provider(&r.address)),
                }
            }
            let l = match answer {
                Some(l) => {
                    graph = Some(l.clone());
                    l
                }
                None => {
                    cx.progress(&format!("create load balancer {}", r.name));
                    let v = s
                        .create(Service::LoadBalancer, "/lbaas/loadbalancers", &body, find)
                        .await
                        .map_err(|e| e.into_provider(&r.address))?;
                    inner(v, "loadbalancer")
                }
            };
            (
                Lb::new(js(&l, "id"), l, Some((sent, Some(LB_CREATED)))),
                true,
            )
        }
    };
    let id = lb.id.clone();
    let mut outputs = BTreeMap::new();
    outputs.insert("vip_port_id".to_string(), js(&lb.body, "vip_port_id"));
    cx.record(r, Status::Creating, Some(id.clone()), outputs.clone())
        .await?;
    // The graph's IDs, from the create's answer (an answer found by name after a lost reply has
    // none: then the children are listed as on day 2).
    let from_graph = match (&graph, fixed) {
        (Some(g), Some(fixed)) => record_graph(cx, desired, g, fixed, Status::Creating).await?,
        _ => false,
    };
    ready(cx, &mut lb).await?;
    let vip = js(&lb.body, "vip_address");
    outputs.insert("vip_address".to_string(), vip.clone());
    outputs.insert("vip_port_id".to_string(), js(&lb.body, "vip_port_id"));
    let mut address = vip.clone();
    if let Some(ext) = &look.fip_net {
        let f = crate::network::ensure_floating_ip(
            cx,
            ext,
            &js(&lb.body, "vip_port_id"),
            "load-balancer",
            &look.fips,
        )
        .await?;
        address = js(&f, "floating_ip_address");
        outputs.insert("floating_ip".to_string(), address.clone());
        outputs.insert("floating_ip_id".to_string(), js(&f, "id"));
    }
    outputs.insert(OUTPUT_ADDRESS.to_string(), address);
    cx.record(r, Status::Ready, Some(id.clone()), outputs)
        .await?;
    if from_graph {
        let (g, fixed) = (graph.as_ref().expect("graph"), fixed.expect("fixed"));
        record_graph(cx, desired, g, fixed, Status::Ready).await?;
        return Ok((lb, true));
    }
    children(cx, desired, &mut lb, fresh && graph.is_none()).await?;
    if let Some(fixed) = fixed {
        members(cx, desired, look, &mut lb, fixed).await?;
    }
    Ok((lb, fixed.is_some()))
}

/// Octavia (or a provider driver) that does not take the whole graph in one call: 501
/// (`ProviderNotImplementedError`), or 400/404/405 from an API that does not know the
/// fields. Nothing was created; the single creates follow (and name any real fault).
fn refused_graph(e: &ApiError) -> bool {
    matches!(e.status, Some(400 | 404 | 405 | 501))
}

/// The records the graph makes besides the load balancer: listeners, pools, monitors, members.
fn graph_children(desired: &[Resource], fixed: &BTreeMap<String, String>) -> Vec<Resource> {
    let mut out = Vec::new();
    for l in LISTENERS {
        let key = listener_key(l);
        for a in ["listener", "pool", "health_monitor"] {
            out.push(
                desired_one(desired, &format!("{a}[{key}]"))
                    .expect("planned")
                    .clone(),
            );
        }
        out.extend(
            fixed
                .keys()
                .map(|node| openstack_target::member(node, &key, l.port)),
        );
    }
    out
}

fn monitor_type(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP-CONNECT",
    }
}

/// The listeners of the fully populated create, each with its default pool, health monitor
/// and members: the same bodies as the single creates.
fn graph_listeners(
    cx: &Ctx<'_>,
    desired: &[Resource],
    look: &Lookups,
    fixed: &BTreeMap<String, String>,
) -> Vec<Value> {
    let tags = tag_strings(cx.spec, "load-balancer");
    LISTENERS
        .iter()
        .map(|l| {
            let key = listener_key(l);
            let proto = l.protocol.as_str().to_uppercase();
            let pr = desired_one(desired, &format!("pool[{key}]")).expect("planned");
            let mr = desired_one(desired, &format!("health_monitor[{key}]")).expect("planned");
            json!({
                "name": format!("{}-{key}", cloud_name(cx.spec)),
                "protocol": proto,
                "protocol_port": l.port,
                "tags": tags,
                "default_pool": {
                    "name": pr.name,
                    "protocol": proto,
                    "lb_algorithm": "ROUND_ROBIN",
                    "tags": tags,
                    "healthmonitor": {
                        "name": mr.name,
                        "type": monitor_type(l.protocol),
                        "delay": 5,
                        "timeout": 3,
                        "max_retries": 3,
                        "tags": tags,
                    },
                    "members": member_bodies(look, fixed, l.port),
                },
            })
        })
        .collect()
}

fn member_bodies(look: &Lookups, fixed: &BTreeMap<String, String>, port: u16) -> Vec<Value> {
    fixed
        .iter()
        .map(|(node, ip)| {
            json!({
                "name": node,
                "address": ip,
                "protocol_port": port,
                "subnet_id": look.net.subnet_id,
            })
        })
        .collect()
}

/// Records every child of the create's answer with its ID; `false` (nothing recorded) when the
/// answer does not hold the whole graph.
async fn record_graph(
    cx: &Ctx<'_>,
    desired: &[Resource],
    g: &Value,
    fixed: &BTreeMap<String, String>,
    status: Status,
) -> Result<bool, ProviderError> {
    let listeners = g["listeners"].as_array().cloned().unwrap_or_default();
    let pools = g["pools"].as_array().cloned().unwrap_or_default();
    let mut rows: Vec<(Resource, String, BTreeMap<String, String>)> = Vec::new();
    for l in LISTENERS {
        let key = listener_key(l);
        let proto = l.protocol.as_str().to_uppercase();
        let Some(listener) = listeners.iter().find(|x| listener_match(x, &proto, l.port)) else {
            return Ok(false);
        };
        let lid = js(listener, "id");
        let pr = desired_one(desired, &format!("pool[{key}]")).expect("planned");
        let Some(pool) = pools.iter().find(|p| pool_of(p, &lid, &pr.name)) else {
            return Ok(false);
        };
        let pid = js(pool, "id");
        let hm = match js(&pool["healthmonitor"], "id") {
            id if id.is_empty() => js(pool, "healthmonitor_id"),
            id => id,
        };
        if lid.is_empty() || pid.is_empty() || hm.is_empty() {
            return Ok(false);
        }
        for (a, id) in [("listener", &lid), ("pool", &pid), ("health_monitor", &hm)] {
            let r = desired_one(desired, &format!("{a}[{key}]")).expect("planned");
            rows.push((r.clone(), id.clone(), BTreeMap::new()));
        }
        let have = pool["members"].as_array().cloned().unwrap_or_default();
        for (node, ip) in fixed {
            let Some(m) = have.iter().find(|m| {
                js(m, "name") == *node
                    || (js(m, "address") == *ip
                        && m["protocol_port"].as_u64() == Some(u64::from(l.port)))
            }) else {
                return Ok(false);
            };
            let mut out = BTreeMap::new();
            out.insert("pool_id".to_string(), pid.clone());
            rows.push((
                openstack_target::member(node, &key, l.port),
                js(m, "id"),
                out,
            ));
        }
    }
    for (r, id, out) in rows {
        cx.record(&r, status, Some(id), out).await?;
    }
    Ok(true)
}

async fn list_listeners(s: &Session, lb: &str) -> Result<Vec<Value>, ApiError> {
    s.list(
        Service::LoadBalancer,
        &format!("/lbaas/listeners?loadbalancer_id={}", q(lb)),
        "listeners",
    )
    .await
}

async fn list_pools(s: &Session, lb: &str) -> Result<Vec<Value>, ApiError> {
    s.list(
        Service::LoadBalancer,
        &format!("/lbaas/pools?loadbalancer_id={}", q(lb)),
        "pools",
    )
    .await
}

async fn list_monitors(s: &Session, pool: &str) -> Result<Vec<Value>, ApiError> {
    let v = s
        .list(
            Service::LoadBalancer,
            &format!("/lbaas/healthmonitors?pool_id={}", q(pool)),
            "healthmonitors",
        )
        .await?;
    Ok(v.into_iter()
        .filter(|m| {
            m["pools"]
                .as_array()
                .is_none_or(|p| p.iter().any(|x| js(x, "id") == pool))
        })
        .collect())
}

async fn list_members(s: &Session, pool: &str) -> Result<Vec<Value>, ApiError> {
    s.list(
        Service::LoadBalancer,
        &format!("/lbaas/pools/{pool}/members"),
        "members",
    )
    .await
}

fn listener_match(l: &Value, proto: &str, port: u16) -> bool {
    js(l, "protocol") == proto && l["protocol_port"].as_u64() == Some(u64::from(port))
}

fn pool_of(p: &Value, listener: &str, name: &str) -> bool {
    js(p, "name") == name
        || p["listeners"]
            .as_array()
            .is_some_and(|ls| ls.iter().any(|x| js(x, "id") == listener))
        || js(p, "listener_id") == listener
}

/// Listeners, pools and health monitors, one at a time. A load balancer created in this run
/// has none yet: nothing to list.
async fn children(
    cx: &Ctx<'_>,
    desired: &[Resource],
    lb: &mut Lb,
    fresh: bool,
) -> Result<(), ProviderError> {
    let s = cx.s;
    let lb_id = lb.id.clone();
    let lb_id = lb_id.as_str();
    let what = format!("children of load balancer {lb_id}");
    let (listeners, pools) = if fresh {
        (Vec::new(), Vec::new())
    } else {
        tokio::try_join!(list_listeners(s, lb_id), list_pools(s, lb_id))
            .map_err(|e| e.into_provider(&what))?
    };
    let tags = tag_strings(cx.spec, "load-balancer");
    let mut kept: Vec<String> = Vec::new();
    for l in LISTENERS {
        let key = listener_key(l);
        let proto = l.protocol.as_str().to_uppercase();
        let lr = desired_one(desired, &format!("listener[{key}]")).expect("planned");
        let listener = match listeners.iter().find(|x| listener_match(x, &proto, l.port)) {
            Some(x) => x.clone(),
            None => {
                cx.record(lr, Status::Creating, None, BTreeMap::new())
                    .await?;
                cx.progress(&format!("create listener {proto} {}", l.port));
                let body = json!({"listener": {
                    "name": format!("{}-{key}", cloud_name(cx.spec)),
                    "protocol": proto,
                    "protocol_port": l.port,
                    "loadbalancer_id": lb_id,
                    "tags": tags,
                }});
                let v = child(cx, lb, &lr.address, "/lbaas/listeners", &body, || async {
                    Ok(list_listeners(s, lb_id)
                        .await?
                        .into_iter()
                        .find(|x| listener_match(x, &proto, l.port)))
                })
                .await?;
                inner(v, "listener")
            }
        };
        let lid = js(&listener, "id");
        kept.push(lid.clone());
        cx.record(lr, Status::Ready, Some(lid.clone()), BTreeMap::new())
            .await?;

        let pr = desired_one(desired, &format!("pool[{key}]")).expect("planned");
        let pool = match pools.iter().find(|p| pool_of(p, &lid, &pr.name)) {
            Some(p) => p.clone(),
            None => {
                cx.record(pr, Status::Creating, None, BTreeMap::new())
                    .await?;
                let body = json!({"pool": {
                    "name": pr.name,
                    "protocol": proto,
                    "lb_algorithm": "ROUND_ROBIN",
                    "listener_id": lid,
                    "tags": tags,
                }});
                let v = child(cx, lb, &pr.address, "/lbaas/pools", &body, || async {
                    Ok(list_pools(s, lb_id)
                        .await?
                        .into_iter()
                        .find(|p| pool_of(p, &lid, &pr.name)))
                })
                .await?;
                let p = inner(v, "pool");
                if p["members"].as_array().is_none_or(|m| m.is_empty()) {
                    lb.fresh_pools.push(js(&p, "id"));
                }
                p
            }
        };
        let pid = js(&pool, "id");
        kept.push(pid.clone());
        cx.record(pr, Status::Ready, Some(pid.clone()), BTreeMap::new())
            .await?;

        let mr = desired_one(desired, &format!("health_monitor[{key}]")).expect("planned");
        let hm_id = match pool["healthmonitor_id"].as_str().filter(|x| !x.is_empty()) {
            Some(id) => id.to_string(),
            None => {
                cx.record(mr, Status::Creating, None, BTreeMap::new())
                    .await?;
                let kind = monitor_type(l.protocol);
                let body = json!({"healthmonitor": {
                    "name": mr.name,
                    "pool_id": pid,
                    "type": kind,
                    "delay": 5,
                    "timeout": 3,
                    "max_retries": 3,
                    "tags": tags,
                }});
                let v = child(
                    cx,
                    lb,
                    &mr.address,
                    "/lbaas/healthmonitors",
                    &body,
                    || async { Ok(list_monitors(s, &pid).await?.into_iter().next()) },
                )
                .await?;
                js(&inner(v, "healthmonitor"), "id")
            }
        };
        cx.record(mr, Status::Ready, Some(hm_id), BTreeMap::new())
            .await?;
    }
    prune(cx, desired, lb, &listeners, &pools, &kept).await
}

/// Converge (issue 9): pools and listeners of the cluster's load balancer that no listener of
/// the guide wants (a port no longer in the table, or added by hand) are deleted, pools first
/// (Octavia deletes their members and health monitor with them); records of children no longer
/// desired are forgotten.
async fn prune(
    cx: &Ctx<'_>,
    desired: &[Resource],
    lb: &mut Lb,
    listeners: &[Value],
    pools: &[Value],
    kept: &[String],
) -> Result<(), ProviderError> {
    let unwanted = |v: &&Value| {
        !kept.contains(&js(v, "id")) && !js(v, "provisioning_status").contains("DELETE")
    };
    for (what, path, list) in [
        ("pool", "pools", pools),
        ("listener", "listeners", listeners),
    ] {
        for v in list.iter().filter(unwanted) {
            let id = js(v, "id");
            cx.progress(&format!(
                "delete {what} {} ({id}): the cluster no longer wants it",
                js(v, "name")
            ));
            delete_child(
                cx,
                lb,
                &format!("{what} {id}"),
                &format!("/lbaas/{path}/{id}"),
            )
            .await?;
        }
    }
    for r in cx.all().await {
        let child = matches!(
            r.kind,
            Kind::Listener | Kind::Pool | Kind::HealthMonitor | Kind::Member
        );
        if child && desired_one(desired, &r.address).is_none() {
            cx.forget(&r.address).await?;
        }
    }
    Ok(())
}

fn same_members(have: &[Value], fixed: &BTreeMap<String, String>, port: u16) -> bool {
    have.len() == fixed.len()
        && fixed.iter().all(|(node, ip)| {
            have.iter().any(|m| {
                js(m, "name") == *node
                    && js(m, "address") == *ip
                    && m["protocol_port"].as_u64() == Some(u64::from(port))
            })
        })
}

/// Converges every pool's members to the nodes with one batch update per pool
/// (`PUT /pools/{id}/members`: the list replaces the pool's members, so sending it again is
/// harmless): adds the missing, removes those of nodes no longer in the cluster.
pub(crate) async fn members(
    cx: &Ctx<'_>,
    desired: &[Resource],
    look: &Lookups,
    lb: &mut Lb,
    fixed: &BTreeMap<String, String>,
) -> Result<(), ProviderError> {
    let s = cx.s;
    let recorded = cx.all().await;
    for l in LISTENERS {
        let key = listener_key(l);
        let pr = desired_one(desired, &format!("pool[{key}]")).expect("planned");
        let Some(pid) = cx.recorded(&pr.address).await.and_then(|r| r.id) else {
            continue;
        };
        let what = format!("members of {}", pr.address);
        let list = || async {
            list_members(s, &pid)
                .await
                .map_err(|e| e.into_provider(&what))
        };
        let mut have = if lb.fresh_pools.contains(&pid) {
            Vec::new()
        } else {
            list().await?
        };
        if !same_members(&have, fixed, l.port) {
            for node in fixed.keys() {
                let mr = openstack_target::member(node, &key, l.port);
                if cx.recorded(&mr.address).await.is_none() {
                    cx.record(&mr, Status::Creating, None, BTreeMap::new())
                        .await?;
                }
            }
            cx.progress(&format!(
                "set the members of {} to {}",
                pr.address,
                fixed.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
            let body = json!({"members": fixed.iter().map(|(node, ip)| json!({
                "name": node,
                "address": ip,
                "protocol_port": l.port,
                "subnet_id": look.net.subnet_id,
            })).collect::<Vec<_>>()});
            let path = format!("/lbaas/pools/{pid}/members");
            let mut attempt = 0;
            loop {
                ready(cx, lb).await?;
                if attempt > 0 {
                    have = list().await?;
                    if same_members(&have, fixed, l.port) {
                        break;
                    }
                }
                let sent = Instant::now();
                match s
                    .send(Method::PUT, Service::LoadBalancer, &path, &body)
                    .await
                {
                    Ok(_) => {
                        lb.changed(sent);
                        have.clear();
                        break;
                    }
                    Err(e) if (e.conflict() || e.outcome_unknown()) && attempt < 20 => {
                        attempt += 1;
                        lb.busy(sent);
                    }
                    Err(e) => return Err(e.into_provider(&what)),
                }
            }
        }
        for r in recorded.iter().filter(|r| r.kind == Kind::Member) {
            if r.address.ends_with(&format!(":{key}]")) && !fixed.contains_key(&r.name) {
                cx.forget(&r.address).await?;
            }
        }
        for node in fixed.keys() {
            let mr = openstack_target::member(node, &key, l.port);
            let id = have
                .iter()
                .find(|m| js(m, "name") == *node)
                .map(|m| js(m, "id"))
                .or_else(|| {
                    recorded
                        .iter()
                        .find(|r| r.address == mr.address)
                        .and_then(|r| r.id.clone())
                });
            let mut out = BTreeMap::new();
            out.insert("pool_id".to_string(), pid.clone());
            cx.record(&mr, Status::Ready, id, out).await?;
        }
    }
    ready(cx, lb).await?;
    Ok(())
}

/// Day 2: the named nodes' members, from every pool of the cluster's load balancer.
pub(crate) async fn remove_members(cx: &Ctx<'_>, names: &[String]) -> Result<(), ProviderError> {
    let all = cx.all().await;
    let Some(lb_id) = all
        .iter()
        .find(|r| r.kind == Kind::LoadBalancer)
        .and_then(|r| r.id.clone())
    else {
        return Ok(());
    };
    let mut lb = Lb::unknown(lb_id);
    for pool in all.iter().filter(|r| r.kind == Kind::Pool) {
        let Some(pid) = &pool.id else { continue };
        let what = format!("members of {}", pool.address);
        let have = match list_members(cx.s, pid).await {
            Ok(h) => h,
            Err(e) if e.not_found() => continue,
            Err(e) => return Err(e.into_provider(&what)),
        };
        for m in have.iter().filter(|m| names.contains(&js(m, "name"))) {
            cx.progress(&format!(
                "remove member {} from {}",
                js(m, "name"),
                pool.address
            ));
            delete_child(
                cx,
                &mut lb,
                &what,
                &format!("/lbaas/pools/{pid}/members/{}", js(m, "id")),
            )
            .await?;
        }
    }
    ready(cx, &mut lb).await?;
    for r in all.iter().filter(|r| r.kind == Kind::Member) {
        if names.contains(&r.name) {
            cx.forget(&r.address).await?;
        }
    }
    Ok(())
}

/// Cascade-deletes the load balancer (after its floating IP), waits until it and its VIP port
/// are gone, and forgets it and its children.
pub(crate) async fn destroy(cx: &Ctx<'_>, seen: &Seen) -> Result<(), ProviderError> {
    let all = cx.all().await;
    for r in all.iter().filter(|r| r.kind == Kind::LoadBalancer) {
        let listed = seen
            .lb
            .as_ref()
            .filter(|l| r.id.as_ref().is_none_or(|id| *id == js(l, "id")));
        let id = r.id.clone().or_else(|| listed.map(|l| js(l, "id")));
        if let Some(id) = id {
            delete_lb(cx, &id, listed, seen, r).await?;
        }
        cx.forget(&r.address).await?;
    }
    for r in all.iter().filter(|r| {
        matches!(
            r.kind,
            Kind::Listener | Kind::Pool | Kind::HealthMonitor | Kind::Member
        )
    }) {
        cx.forget(&r.address).await?;
    }
    Ok(())
}

async fn delete_lb(
    cx: &Ctx<'_>,
    id: &str,
    listed: Option<&Value>,
    seen: &Seen,
    r: &Recorded,
) -> Result<(), ProviderError> {
    let s = cx.s;
    let current = match listed {
        Some(l) => l.clone(),
        None => match s
            .get(Service::LoadBalancer, &format!("/lbaas/loadbalancers/{id}"))
            .await
        {
            Ok(v) => inner(v, "loadbalancer"),
            Err(e) if e.not_found() => return Ok(()),
            Err(e) => return Err(e.into_provider(&r.address)),
        },
    };
    let vip_port = js(&current, "vip_port_id");
    crate::network::delete_floating_ips(
        cx,
        &seen.fips,
        &["load-balancer".to_string()],
        std::slice::from_ref(&vip_port),
    )
    .await?;
    cx.progress(&format!("delete load balancer {} (cascade)", r.name));
    let path = format!("/lbaas/loadbalancers/{id}?cascade=true");
    let mut lb = Lb::new(id.to_string(), current.clone(), None);
    if js(&current, "provisioning_status").starts_with("PENDING") {
        lb.busy(Instant::now());
    }
    let mut attempt = 0;
    let sent = loop {
        if lb.pending.is_some() {
            // PENDING_*: wait until it settles, then ask again.
            match ready(cx, &mut lb).await {
                Ok(()) => {}
                Err(_) if attempt > 0 => {} // ERROR (or gone): the DELETE tells
                Err(e) => return Err(e),
            }
        }
        let sent = Instant::now();
        match s.delete(Service::LoadBalancer, &path).await {
            Ok(()) => break sent,
            Err(e) if e.conflict() && attempt < 30 => {
                attempt += 1;
                lb.busy(sent);
            }
            Err(e) => return Err(e.into_provider(&r.address)),
        }
    };
    crate::wait::transition(
        &format!("load balancer {id} deleted"),
        LB_DEADLINE,
        cx.pace,
        cx.quiet,
        sent,
        cx.learn(Service::LoadBalancer, "load balancer deleted"),
        || async {
            match s
                .get(Service::LoadBalancer, &format!("/lbaas/loadbalancers/{id}"))
                .await
            {
                Ok(v)
                    if js(&inner(v.clone(), "loadbalancer"), "provisioning_status")
                        == "DELETED" =>
                {
                    Ok(Ok(()))
                }
                Ok(_) => Ok(Err("load balancer still there".to_string())),
                Err(e) if e.not_found() => Ok(Ok(())),
                Err(e) => Err(e.into_provider(&format!("load balancer {id}"))),
            }
        },
    )
    .await?;
    if vip_port.is_empty() {
        return Ok(());
    }
    // Octavia releases the VIP port as part of the delete: normally gone already.
    crate::wait::until(
        &format!("VIP port {vip_port} of load balancer {id} deleted"),
        LB_DEADLINE,
        cx.pace,
        cx.quiet,
        || async {
            match s.get(Service::Network, &format!("/ports/{vip_port}")).await {
                Ok(_) => Ok(Err(format!("VIP port {vip_port} still there"))),
                Err(e) if e.not_found() => Ok(Ok(())),
                Err(e) => Err(e.into_provider(&format!("port {vip_port}"))),
            }
        },
    )
    .await
}

/// The cluster's load balancer, by name (its record, and its last answer), and whether one of
/// that name carries another state's lineage (#9.4).
pub(crate) async fn discover(
    s: &Session,
    spec: &ClusterSpec,
) -> Result<(Vec<Recorded>, Option<Value>, bool), ProviderError> {
    if !s.has(Service::LoadBalancer) {
        return Ok((Vec::new(), None, false));
    }
    let name = cloud_name(spec);
    let live: Vec<Value> = s
        .list(
            Service::LoadBalancer,
            &format!("/lbaas/loadbalancers?name={}", q(&name)),
            "loadbalancers",
        )
        .await
        .map_err(|e| e.into_provider("load balancers"))?
        .into_iter()
        .filter(|l| live_named(l, &name))
        .collect();
    let foreign = live.iter().any(|l| crate::another_lineage(spec, l));
    let lb = live.into_iter().find(|l| !crate::another_lineage(spec, l));
    let records = lb
        .iter()
        .map(|l| {
            Recorded::found(
                "load_balancer".into(),
                Kind::LoadBalancer,
                name.clone(),
                js(l, "id"),
                BTreeMap::new(),
            )
        })
        .collect();
    Ok((records, lb, foreign))
}

/// Octavia's `operating_status` of a member as the contract's target state: `ONLINE` is
/// healthy, `ERROR` unhealthy, a member still being added is `initial`, the rest lower-cased
/// (`offline` — administratively down —, `draining`, `no_monitor`).
fn member_state(m: &Value) -> String {
    let op = js(m, "operating_status");
    let prov = js(m, "provisioning_status");
    match op.as_str() {
        "ONLINE" => "healthy".into(),
        "ERROR" => "unhealthy".into(),
        _ if prov.starts_with("PENDING_CREATE") => "initial".into(),
        "" => "unavailable".into(),
        other => other.to_ascii_lowercase(),
    }
}

/// The load balancer's view of its members (`GET /lbaas/loadbalancers/{id}/status`), per
/// listener the journal knows: each member named by the node it was recorded for (else its
/// name, else `address:port`). A listener the tree does not hold shows with no targets (so it
/// is not healthy). `None` without a recorded Octavia load balancer.
pub(crate) async fn health(
    s: &Session,
    recorded: &[Recorded],
) -> Result<Option<acura_ha_api::model::LbHealth>, ProviderError> {
    use acura_ha_api::model::{LbHealth, ListenerHealth, TargetHealth};
    let Some(lb) = recorded
        .iter()
        .find(|r| r.kind == Kind::LoadBalancer && r.id.is_some())
    else {
        return Ok(None);
    };
    let lb_id = lb.id.clone().unwrap_or_default();
    let what = format!("status tree of load balancer {lb_id}");
    let tree = match s
        .get(
            Service::LoadBalancer,
            &format!("/lbaas/loadbalancers/{lb_id}/status"),
        )
        .await
    {
        Ok(v) => v,
        Err(e) if e.not_found() => {
            return Ok(Some(LbHealth {
                state: "not found (deleted outside acura-ha? `up` creates it again)".into(),
                listeners: Vec::new(),
            }));
        }
        Err(e) => return Err(e.into_provider(&what)),
    };
    let root = &tree["statuses"]["loadbalancer"];
    let node_of = |m: &Value| {
        let id = js(m, "id");
        recorded
            .iter()
            .find(|r| r.kind == Kind::Member && r.id.as_deref() == Some(id.as_str()))
            .map(|r| r.name.clone())
            .or_else(|| Some(js(m, "name")).filter(|n| !n.is_empty()))
            .unwrap_or_else(|| format!("{}:{}", js(m, "address"), m["protocol_port"]))
    };
    let in_tree: Vec<&Value> = root["listeners"].as_array().into_iter().flatten().collect();
    let mut listeners = Vec::new();
    for l in LISTENERS {
        let key = listener_key(l);
        let rec_id = recorded
            .iter()
            .find(|r| r.address == format!("listener[{key}]"))
            .and_then(|r| r.id.clone());
        let found = in_tree
            .iter()
            .find(|x| rec_id.as_deref().is_some_and(|id| js(x, "id") == id));
        let mut targets = Vec::new();
        if let Some(found) = found {
            for p in found["pools"].as_array().into_iter().flatten() {
                for m in p["members"].as_array().into_iter().flatten() {
                    let state = member_state(m);
                    let reason = (state != "healthy").then(|| {
                        format!(
                            "operating_status {}, provisioning_status {}",
                            js(m, "operating_status"),
                            js(m, "provisioning_status")
                        )
                    });
                    targets.push(TargetHealth {
                        target: node_of(m),
                        state,
                        reason,
                    });
                }
            }
        }
        targets.sort_by(|a, b| a.target.cmp(&b.target));
        listeners.push(ListenerHealth {
            port: l.port,
            protocol: l.protocol.as_str().to_uppercase(),
            targets,
        });
    }
    Ok(Some(LbHealth {
        state: format!(
            "{}/{}",
            js(root, "provisioning_status"),
            js(root, "operating_status")
        )
        .to_ascii_lowercase(),
        listeners,
    }))
}
