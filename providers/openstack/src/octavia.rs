//! Octavia: the load balancer (VIP on the nodes' subnet, optional floating IP), then per
//! listener of the guide a listener, a ROUND_ROBIN pool, a health monitor and the nodes as
//! members. Every change waits for the load balancer to be ACTIVE first; a 409 (PENDING_*, or
//! a child that exists) means wait, re-read, then decide — never a blind retry.

use std::collections::BTreeMap;
use std::time::Duration;

use acura_ha_api::desired::{cloud_name, listener_key};
use acura_ha_api::inventory::OUTPUT_ADDRESS;
use acura_ha_api::model::{Kind, Recorded, Resource, Status};
use acura_ha_api::provider::ProviderError;
use acura_ha_api::spec::ClusterSpec;
use acura_ha_api::tables::{LISTENERS, Protocol};
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::{ApiError, Service, Session, q};
use crate::compute::Lookups;
use crate::{Ctx, desired_one, found, js, tag_strings};

pub(crate) struct Lb {
    pub id: String,
}

const LB_DEADLINE: Duration = Duration::from_secs(900);

fn arr(v: &Value, k: &str) -> Vec<Value> {
    v[k].as_array().cloned().unwrap_or_default()
}

async fn find_lb(s: &Session, name: &str) -> Result<Option<Value>, ApiError> {
    let v = s
        .get(
            Service::LoadBalancer,
            &format!("/lbaas/loadbalancers?name={}", q(name)),
        )
        .await?;
    Ok(arr(&v, "loadbalancers")
        .into_iter()
        .find(|l| js(l, "name") == name && js(l, "provisioning_status") != "DELETED"))
}

/// Waits until the load balancer is ACTIVE (what every change needs); returns it.
async fn wait_active(cx: &Ctx<'_>, id: &str) -> Result<Value, ProviderError> {
    let s = cx.s;
    crate::wait::until(
        &format!("load balancer {id} ACTIVE"),
        LB_DEADLINE,
        cx.pace,
        cx.quiet,
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
    .await
}

/// Creates one child: waits ACTIVE, POSTs; on 409 or an unknown outcome waits ACTIVE again
/// and re-reads with `find` (it may exist now) before deciding to send again.
async fn child<F, Fut>(
    cx: &Ctx<'_>,
    lb: &str,
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
        wait_active(cx, lb).await?;
        if attempt > 0
            && let Some(v) = find().await.map_err(|e| e.into_provider(what))?
        {
            return Ok(v);
        }
        match cx
            .s
            .send(Method::POST, Service::LoadBalancer, path, body)
            .await
        {
            Ok(v) => return Ok(v),
            Err(e) if (e.conflict() || e.outcome_unknown()) && attempt < 20 => attempt += 1,
            Err(e) => return Err(e.into_provider(what)),
        }
    }
}

/// A DELETE of a child, gated the same way; NotFound is done.
async fn delete_child(cx: &Ctx<'_>, lb: &str, what: &str, path: &str) -> Result<(), ProviderError> {
    let mut attempt = 0;
    loop {
        wait_active(cx, lb).await?;
        match cx.s.delete(Service::LoadBalancer, path).await {
            Ok(()) => return Ok(()),
            Err(e) if e.conflict() && attempt < 20 => attempt += 1,
            Err(e) => return Err(e.into_provider(what)),
        }
    }
}

fn inner(v: Value, key: &str) -> Value {
    v.get(key).cloned().unwrap_or(v)
}

/// The load balancer and its listeners, pools and health monitors (members come once the
/// servers' addresses are known).
pub(crate) async fn load_balancer(
    cx: &Ctx<'_>,
    desired: &[Resource],
    look: &Lookups,
) -> Result<Option<Lb>, ProviderError> {
    let r = desired_one(desired, "load_balancer").expect("planned");
    let s = cx.s;
    let lb = match find_lb(s, &r.name)
        .await
        .map_err(|e| e.into_provider(&r.address))?
    {
        Some(lb) => lb,
        None => {
            cx.record(r, Status::Creating, None, BTreeMap::new())
                .await?;
            cx.progress(&format!("create load balancer {}", r.name));
            let body = json!({"loadbalancer": {
                "name": r.name,
                "description": "Acura HA cluster",
                "vip_subnet_id": look.net.subnet_id,
                "tags": tag_strings(cx.spec, "load-balancer"),
            }});
            let v = s
                .create(
                    Service::LoadBalancer,
                    "/lbaas/loadbalancers",
                    &body,
                    || async { find_lb(s, &r.name).await },
                )
                .await
                .map_err(|e| e.into_provider(&r.address))?;
            inner(v, "loadbalancer")
        }
    };
    let id = js(&lb, "id");
    let mut outputs = BTreeMap::new();
    outputs.insert("vip_port_id".to_string(), js(&lb, "vip_port_id"));
    cx.record(r, Status::Creating, Some(id.clone()), outputs.clone())
        .await?;
    let lb = wait_active(cx, &id).await?;
    let vip = js(&lb, "vip_address");
    outputs.insert("vip_address".to_string(), vip.clone());
    outputs.insert("vip_port_id".to_string(), js(&lb, "vip_port_id"));
    let mut address = vip.clone();
    if let Some(ext) = &look.fip_net {
        let known = crate::network::floating_ips(s).await?;
        let f = crate::network::ensure_floating_ip(
            cx,
            ext,
            &js(&lb, "vip_port_id"),
            "load-balancer",
            &known,
        )
        .await?;
        address = js(&f, "floating_ip_address");
        outputs.insert("floating_ip".to_string(), address.clone());
        outputs.insert("floating_ip_id".to_string(), js(&f, "id"));
    }
    outputs.insert(OUTPUT_ADDRESS.to_string(), address);
    cx.record(r, Status::Ready, Some(id.clone()), outputs)
        .await?;
    children(cx, desired, &id).await?;
    Ok(Some(Lb { id }))
}

async fn list_listeners(s: &Session, lb: &str) -> Result<Vec<Value>, ApiError> {
    let v = s
        .get(
            Service::LoadBalancer,
            &format!("/lbaas/listeners?loadbalancer_id={}", q(lb)),
        )
        .await?;
    Ok(arr(&v, "listeners"))
}

async fn list_pools(s: &Session, lb: &str) -> Result<Vec<Value>, ApiError> {
    let v = s
        .get(
            Service::LoadBalancer,
            &format!("/lbaas/pools?loadbalancer_id={}", q(lb)),
        )
        .await?;
    Ok(arr(&v, "pools"))
}

async fn list_monitors(s: &Session, pool: &str) -> Result<Vec<Value>, ApiError> {
    let v = s
        .get(
            Service::LoadBalancer,
            &format!("/lbaas/healthmonitors?pool_id={}", q(pool)),
        )
        .await?;
    Ok(arr(&v, "healthmonitors")
        .into_iter()
        .filter(|m| {
            m["pools"]
                .as_array()
                .is_none_or(|p| p.iter().any(|x| js(x, "id") == pool))
        })
        .collect())
}

async fn list_members(s: &Session, pool: &str) -> Result<Vec<Value>, ApiError> {
    let v = s
        .get(
            Service::LoadBalancer,
            &format!("/lbaas/pools/{pool}/members"),
        )
        .await?;
    Ok(arr(&v, "members"))
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

async fn children(cx: &Ctx<'_>, desired: &[Resource], lb: &str) -> Result<(), ProviderError> {
    let s = cx.s;
    let what = format!("children of load balancer {lb}");
    let (listeners, pools) = tokio::try_join!(list_listeners(s, lb), list_pools(s, lb))
        .map_err(|e| e.into_provider(&what))?;
    let tags = tag_strings(cx.spec, "load-balancer");
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
                    "loadbalancer_id": lb,
                    "tags": tags,
                }});
                let v = child(cx, lb, &lr.address, "/lbaas/listeners", &body, || async {
                    Ok(list_listeners(s, lb)
                        .await?
                        .into_iter()
                        .find(|x| listener_match(x, &proto, l.port)))
                })
                .await?;
                inner(v, "listener")
            }
        };
        let lid = js(&listener, "id");
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
                    Ok(list_pools(s, lb)
                        .await?
                        .into_iter()
                        .find(|p| pool_of(p, &lid, &pr.name)))
                })
                .await?;
                inner(v, "pool")
            }
        };
        let pid = js(&pool, "id");
        cx.record(pr, Status::Ready, Some(pid.clone()), BTreeMap::new())
            .await?;

        let mr = desired_one(desired, &format!("health_monitor[{key}]")).expect("planned");
        let hm_id = match pool["healthmonitor_id"].as_str().filter(|x| !x.is_empty()) {
            Some(id) => id.to_string(),
            None => {
                cx.record(mr, Status::Creating, None, BTreeMap::new())
                    .await?;
                let kind = match l.protocol {
                    Protocol::Tcp => "TCP",
                    Protocol::Udp => "UDP-CONNECT",
                };
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
    Ok(())
}

fn member_resource(node: &str, key: &str, port: u16) -> Resource {
    Resource::new(
        Kind::Member,
        Some(&format!("{node}:{key}")),
        node.to_string(),
    )
    .attr("port", port)
    .after(&format!("pool[{key}]"))
}

/// Converges every pool's members to the nodes: adds the missing, removes those of nodes no
/// longer in the cluster.
pub(crate) async fn members(
    cx: &Ctx<'_>,
    desired: &[Resource],
    look: &Lookups,
    lb: &Lb,
    fixed: &BTreeMap<String, String>,
) -> Result<(), ProviderError> {
    let s = cx.s;
    for l in LISTENERS {
        let key = listener_key(l);
        let pr = desired_one(desired, &format!("pool[{key}]")).expect("planned");
        let Some(pid) = cx.recorded(&pr.address).await.and_then(|r| r.id) else {
            continue;
        };
        let what = format!("members of {}", pr.address);
        let have = list_members(s, &pid)
            .await
            .map_err(|e| e.into_provider(&what))?;
        for m in &have {
            let name = js(m, "name");
            let wanted = fixed.get(&name).is_some_and(|ip| *ip == js(m, "address"));
            if !wanted {
                cx.progress(&format!("remove member {name} from {}", pr.address));
                delete_child(
                    cx,
                    &lb.id,
                    &what,
                    &format!("/lbaas/pools/{pid}/members/{}", js(m, "id")),
                )
                .await?;
                cx.forget(&format!("member[{name}:{key}]")).await?;
            }
        }
        for (node, ip) in fixed {
            let mr = member_resource(node, &key, l.port);
            let existing = have
                .iter()
                .find(|m| js(m, "name") == *node && js(m, "address") == *ip);
            let id = match existing {
                Some(m) => js(m, "id"),
                None => {
                    cx.record(&mr, Status::Creating, None, BTreeMap::new())
                        .await?;
                    let body = json!({"member": {
                        "name": node,
                        "address": ip,
                        "protocol_port": l.port,
                        "subnet_id": look.net.subnet_id,
                    }});
                    let path = format!("/lbaas/pools/{pid}/members");
                    let v = child(cx, &lb.id, &mr.address, &path, &body, || async {
                        Ok(list_members(s, &pid).await?.into_iter().find(|m| {
                            js(m, "address") == *ip
                                && m["protocol_port"].as_u64() == Some(u64::from(l.port))
                        }))
                    })
                    .await?;
                    js(&inner(v, "member"), "id")
                }
            };
            let mut out = BTreeMap::new();
            out.insert("pool_id".to_string(), pid.clone());
            cx.record(&mr, Status::Ready, Some(id), out).await?;
        }
    }
    wait_active(cx, &lb.id).await?;
    Ok(())
}

/// Day 2: the named nodes' members, from every pool of the cluster's load balancer.
pub(crate) async fn remove_members(cx: &Ctx<'_>, names: &[String]) -> Result<(), ProviderError> {
    let all = cx.all().await;
    let Some(lb) = all
        .iter()
        .find(|r| r.kind == Kind::LoadBalancer)
        .and_then(|r| r.id.clone())
    else {
        return Ok(());
    };
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
                &lb,
                &what,
                &format!("/lbaas/pools/{pid}/members/{}", js(m, "id")),
            )
            .await?;
        }
    }
    for r in all.iter().filter(|r| r.kind == Kind::Member) {
        if names.contains(&r.name) {
            cx.forget(&r.address).await?;
        }
    }
    Ok(())
}

/// Cascade-deletes the load balancer (after its floating IP), waits until it and its VIP port
/// are gone, and forgets it and its children.
pub(crate) async fn destroy(cx: &Ctx<'_>) -> Result<(), ProviderError> {
    let s = cx.s;
    let all = cx.all().await;
    for r in all.iter().filter(|r| r.kind == Kind::LoadBalancer) {
        let lb = match &r.id {
            Some(id) => Some(id.clone()),
            None => find_lb(s, &r.name)
                .await
                .map_err(|e| e.into_provider(&r.address))?
                .map(|l| js(&l, "id")),
        };
        if let Some(id) = lb {
            delete_lb(cx, &id, r).await?;
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

async fn delete_lb(cx: &Ctx<'_>, id: &str, r: &Recorded) -> Result<(), ProviderError> {
    let s = cx.s;
    let current = match s
        .get(Service::LoadBalancer, &format!("/lbaas/loadbalancers/{id}"))
        .await
    {
        Ok(v) => inner(v, "loadbalancer"),
        Err(e) if e.not_found() => return Ok(()),
        Err(e) => return Err(e.into_provider(&r.address)),
    };
    let vip_port = js(&current, "vip_port_id");
    crate::network::delete_floating_ips(
        cx,
        &["load-balancer".to_string()],
        std::slice::from_ref(&vip_port),
    )
    .await?;
    cx.progress(&format!("delete load balancer {} (cascade)", r.name));
    let path = format!("/lbaas/loadbalancers/{id}?cascade=true");
    let mut attempt = 0;
    loop {
        match s.delete(Service::LoadBalancer, &path).await {
            Ok(()) => break,
            Err(e) if e.conflict() && attempt < 30 => {
                attempt += 1;
                // PENDING_*: wait until it settles, then ask again.
                crate::wait::until(
                    &format!("load balancer {id} to settle"),
                    LB_DEADLINE,
                    cx.pace,
                    cx.quiet,
                    || async {
                        match s
                            .get(Service::LoadBalancer, &format!("/lbaas/loadbalancers/{id}"))
                            .await
                        {
                            Ok(v) => {
                                let st = js(&inner(v, "loadbalancer"), "provisioning_status");
                                Ok(if st.starts_with("PENDING") {
                                    Err(st)
                                } else {
                                    Ok(())
                                })
                            }
                            Err(e) if e.not_found() => Ok(Ok(())),
                            Err(e) => Err(e.into_provider(&format!("load balancer {id}"))),
                        }
                    },
                )
                .await?;
            }
            Err(e) => return Err(e.into_provider(&r.address)),
        }
    }
    crate::wait::until(
        &format!("load balancer {id} and its VIP port deleted"),
        LB_DEADLINE,
        cx.pace,
        cx.quiet,
        || async {
            let lb_gone = match s
                .get(Service::LoadBalancer, &format!("/lbaas/loadbalancers/{id}"))
                .await
            {
                Ok(v) => js(&inner(v, "loadbalancer"), "provisioning_status") == "DELETED",
                Err(e) if e.not_found() => true,
                Err(e) => return Err(e.into_provider(&format!("load balancer {id}"))),
            };
            if !lb_gone {
                return Ok(Err("load balancer still there".to_string()));
            }
            if vip_port.is_empty() {
                return Ok(Ok(()));
            }
            match s.get(Service::Network, &format!("/ports/{vip_port}")).await {
                Ok(_) => Ok(Err(format!("VIP port {vip_port} still there"))),
                Err(e) if e.not_found() => Ok(Ok(())),
                Err(e) => Err(e.into_provider(&format!("port {vip_port}"))),
            }
        },
    )
    .await
}

/// The cluster's load balancer, by name.
pub(crate) async fn discover(
    s: &Session,
    spec: &ClusterSpec,
) -> Result<Vec<Recorded>, ProviderError> {
    if !s.has(Service::LoadBalancer) {
        return Ok(Vec::new());
    }
    let name = cloud_name(spec);
    Ok(find_lb(s, &name)
        .await
        .map_err(|e| e.into_provider("load balancers"))?
        .map(|l| {
            found(
                "load_balancer".into(),
                Kind::LoadBalancer,
                name,
                js(&l, "id"),
                BTreeMap::new(),
            )
        })
        .into_iter()
        .collect())
}
