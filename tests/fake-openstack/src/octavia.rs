//! Octavia (load-balancer v2, `/load-balancer/v2/lbaas/...`, `/v2.0` alias): load
//! balancers, listeners, pools, members (single and batch), health monitors, status tree,
//! quotas.
//!
//! The state machine is the point: every child create/update/delete moves the child and
//! the parent LB to PENDING_* for `Delays::lb_update` ms, and any mutation while the LB is
//! PENDING_* answers 409 "... is immutable and cannot be updated." as Octavia does.

use crate::paging::{self, Style, by_id};
use crate::server::{App, Ctx, More, g};
use crate::state::{Child, Inner, Lb, Prov};
use crate::util::{self, Query, filter_list, json_resp, octavia_err, s};
use axum::Router;
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::time::Instant;

pub fn routes(mut r: Router<App>) -> Router<App> {
    for v in ["v2", "v2.0"] {
        let p = format!("/load-balancer/{v}/lbaas");
        r = r
            .route(&format!("{p}/loadbalancers"), g(list_lbs).po(create_lb))
            .route(
                &format!("{p}/loadbalancers/{{id}}"),
                g(show_lb).pu(update_lb).de(delete_lb),
            )
            .route(&format!("{p}/loadbalancers/{{id}}/status"), g(status_tree))
            .route(
                &format!("{p}/listeners"),
                g(list_listeners).po(create_listener),
            )
            .route(
                &format!("{p}/listeners/{{id}}"),
                g(show_listener).pu(update_listener).de(delete_listener),
            )
            .route(&format!("{p}/pools"), g(list_pools).po(create_pool))
            .route(
                &format!("{p}/pools/{{id}}"),
                g(show_pool).pu(update_pool).de(delete_pool),
            )
            .route(
                &format!("{p}/pools/{{id}}/members"),
                g(list_members).po(create_member).pu(batch_members),
            )
            .route(
                &format!("{p}/pools/{{id}}/members/{{member_id}}"),
                g(show_member).pu(update_member).de(delete_member),
            )
            .route(&format!("{p}/healthmonitors"), g(list_hms).po(create_hm))
            .route(
                &format!("{p}/healthmonitors/{{id}}"),
                g(show_hm).pu(update_hm).de(delete_hm),
            )
            .route(&format!("{p}/quotas"), g(list_quotas))
            .route(&format!("{p}/quotas/{{project}}"), g(quota));
    }
    r
}

pub fn listener_key(l: &Child) -> String {
    format!(
        "{}:{}",
        l.fields
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        l.fields
            .get("protocol_port")
            .cloned()
            .unwrap_or(Value::Null)
    )
}

fn bad(msg: &str) -> Response {
    octavia_err(400, &format!("Validation failure: {msg}"))
}

fn not_found(kind: &str, id: &str) -> Response {
    octavia_err(404, &format!("{kind} {id} not found."))
}

fn immutable(kind: &str, id: &str) -> Response {
    octavia_err(
        409,
        &format!("{kind} {id} is immutable and cannot be updated."),
    )
}

fn body(c: &Ctx) -> Result<Value, Response> {
    util::parse_body(&c.body).map_err(|e| octavia_err(400, &e))
}

fn quota_hit(limit: i64, used: usize, what: &str) -> Option<Response> {
    (limit >= 0 && used as i64 >= limit)
        .then(|| octavia_err(403, &format!("Quota has been met for resources: {what}")))
}

/// Common fields of every Octavia object.
fn base_fields(inner: &Inner, req: &Value, keys: &[&str]) -> Map<String, Value> {
    let now = util::now_plain();
    let mut f = Map::new();
    f.insert("id".into(), json!(util::uuid()));
    f.insert("project_id".into(), json!(inner.cfg.project_id));
    f.insert("name".into(), json!(s(req, "name").unwrap_or_default()));
    f.insert(
        "description".into(),
        json!(s(req, "description").unwrap_or_default()),
    );
    f.insert(
        "admin_state_up".into(),
        json!(req["admin_state_up"].as_bool().unwrap_or(true)),
    );
    f.insert("tags".into(), json!(util::str_list(req.get("tags"))));
    f.insert("created_at".into(), json!(now));
    f.insert("updated_at".into(), Value::Null);
    for k in keys {
        if let Some(v) = req.get(*k) {
            f.insert(k.to_string(), v.clone());
        }
    }
    f
}

fn merge(fields: &mut Map<String, Value>, req: &Value, allowed: &[&str]) {
    for k in ["name", "description", "admin_state_up", "tags"]
        .iter()
        .chain(allowed)
    {
        if let Some(v) = req.get(*k) {
            fields.insert(k.to_string(), v.clone());
        }
    }
    fields.insert("updated_at".into(), json!(util::now_plain()));
}

fn lb<'a>(inner: &'a Inner, id: &str) -> Option<&'a Lb> {
    inner.lbs.iter().find(|l| l.id == id)
}

/// 409 unless the LB is ACTIVE (Octavia's test-and-set on the LB before any child change).
fn check_lb_mutable(inner: &Inner, lb_id: &str) -> Result<(), Response> {
    match lb(inner, lb_id) {
        None => Err(not_found("Load Balancer", lb_id)),
        Some(l) if l.prov.pending(Instant::now()) => Err(immutable("Load Balancer", lb_id)),
        Some(_) => Ok(()),
    }
}

fn touch_lb(inner: &mut Inner, lb_id: &str) {
    let ms = inner.delays.lb_update;
    if let Some(l) = inner.lbs.iter_mut().find(|l| l.id == lb_id) {
        l.prov = Prov::new("PENDING_UPDATE", ms);
    }
}

fn touch(list: &mut [Child], id: &str, state: &'static str, ms: u64) {
    if let Some(c) = list.iter_mut().find(|c| c.id == id) {
        c.prov = Prov::new(state, ms);
    }
}

fn ids(v: impl Iterator<Item = String>) -> Value {
    Value::Array(v.map(|id| json!({ "id": id })).collect())
}

// ---- load balancers ----------------------------------------------------------------------

fn lb_json(inner: &Inner, l: &Lb) -> Value {
    let now = Instant::now();
    let st = l.prov.status(now);
    let mut v = Value::Object(l.fields.clone());
    v["provisioning_status"] = json!(st);
    v["operating_status"] = json!(if st == "PENDING_CREATE" || st == "PENDING_DELETE" {
        "OFFLINE"
    } else {
        "ONLINE"
    });
    v["listeners"] = ids(inner
        .listeners
        .iter()
        .filter(|c| c.lb_id == l.id)
        .map(|c| c.id.clone()));
    v["pools"] = ids(inner
        .lb_pools
        .iter()
        .filter(|c| c.lb_id == l.id)
        .map(|c| c.id.clone()));
    v
}

fn list_lbs(inner: &mut Inner, c: &Ctx) -> Response {
    let all: Vec<Value> = inner.lbs.iter().map(|l| lb_json(inner, l)).collect();
    let items = filter_list(all, &c.q);
    paging::respond(inner, c, "loadbalancers", items, Style::Octavia, by_id)
}

fn show_lb(inner: &mut Inner, c: &Ctx) -> Response {
    match lb(inner, c.p("id")) {
        Some(l) => json_resp(200, &json!({"loadbalancer": lb_json(inner, l)})),
        None => not_found("Load Balancer", c.p("id")),
    }
}

fn create_lb(inner: &mut Inner, c: &Ctx) -> Response {
    let b = match body(c) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let req = &b["loadbalancer"];
    let graph = req.get("listeners").is_some() || req.get("pools").is_some();
    if graph && inner.cfg.cloud.octavia_refuses_full_create {
        return octavia_err(
            501,
            "Provider 'amphora' does not support a requested action: This provider does not support creating a fully populated load balancer.",
        );
    }
    let (subnet, network) = if let Some(sid) = s(req, "vip_subnet_id") {
        match inner.subnets.iter().find(|x| x["id"] == sid.as_str()) {
            Some(sn) => (
                sid,
                sn["network_id"].as_str().unwrap_or_default().to_string(),
            ),
            None => return bad(&format!("Subnet {sid} not found.")),
        }
    } else if let Some(nid) = s(req, "vip_network_id") {
        match inner
            .subnets
            .iter()
            .find(|x| x["network_id"] == nid.as_str())
        {
            Some(sn) => (sn["id"].as_str().unwrap_or_default().to_string(), nid),
            None => return bad(&format!("Network {nid} not found.")),
        }
    } else {
        return bad("VIP must contain one of: vip_port_id, vip_network_id, vip_subnet_id.");
    };
    if let Some(r) = quota_hit(
        inner.cfg.quotas.load_balancer,
        inner.lbs.len(),
        "Load Balancer",
    ) {
        return r;
    }
    let mut fields = base_fields(inner, req, &[]);
    let id = fields["id"].as_str().unwrap().to_string();
    let port = match inner.create_port(
        &network,
        &format!("octavia-lb-{id}"),
        &format!("lb-{id}"),
        "Octavia",
        vec![],
        None,
    ) {
        Ok(p) => p,
        Err(e) => return octavia_err(500, &e),
    };
    let port_id = port["id"].as_str().unwrap_or_default().to_string();
    for (k, v) in [
        ("vip_subnet_id", json!(subnet)),
        ("vip_network_id", json!(network)),
        ("vip_port_id", json!(port_id)),
        ("vip_address", port["fixed_ips"][0]["ip_address"].clone()),
        ("vip_qos_policy_id", Value::Null),
        ("additional_vips", json!([])),
        (
            "provider",
            json!(s(req, "provider").unwrap_or_else(|| "amphora".into())),
        ),
        ("flavor_id", json!(s(req, "flavor_id").unwrap_or_default())),
        (
            "availability_zone",
            req.get("availability_zone").cloned().unwrap_or(Value::Null),
        ),
        ("vip_vnic_type", json!("normal")),
    ] {
        fields.insert(k.into(), v);
    }
    let l = Lb {
        id,
        fields,
        port_id,
        prov: Prov::new("PENDING_CREATE", inner.delays.lb_create),
    };
    if !graph {
        let out = lb_json(inner, &l);
        inner.lbs.push(l);
        return json_resp(201, &json!({ "loadbalancer": out }));
    }
    let lb_id = l.id.clone();
    inner.lbs.push(l);
    match full_graph(inner, c, &lb_id, req) {
        Ok(()) => {
            // Everything is PENDING_CREATE until the load balancer is ACTIVE, as in Octavia.
            let ms = inner.delays.lb_create;
            for list in [
                &mut inner.listeners,
                &mut inner.lb_pools,
                &mut inner.members,
                &mut inner.monitors,
            ] {
                for ch in list.iter_mut().filter(|ch| ch.lb_id == lb_id) {
                    ch.prov = Prov::new("PENDING_CREATE", ms);
                }
            }
            if let Some(l) = inner.lbs.iter_mut().find(|l| l.id == lb_id) {
                l.prov = Prov::new("PENDING_CREATE", ms);
            }
            json_resp(201, &json!({ "loadbalancer": graph_json(inner, &lb_id) }))
        }
        Err(r) => {
            // One transaction: nothing of a refused graph stays.
            let port = lb(inner, &lb_id).map(|l| l.port_id.clone());
            inner.lbs.retain(|l| l.id != lb_id);
            inner.listeners.retain(|c| c.lb_id != lb_id);
            inner.lb_pools.retain(|c| c.lb_id != lb_id);
            inner.members.retain(|c| c.lb_id != lb_id);
            inner.monitors.retain(|c| c.lb_id != lb_id);
            if let Some(p) = port {
                inner.delete_port(&p);
            }
            r
        }
    }
}

/// The load balancer and all its children as the fully populated create answers: listeners
/// with their `default_pool` by ID, pools with their members and health monitor in full.
fn graph_json(inner: &Inner, lb_id: &str) -> Value {
    let l = lb(inner, lb_id).expect("created");
    let mut v = lb_json(inner, l);
    v["listeners"] = Value::Array(
        inner
            .listeners
            .iter()
            .filter(|c| c.lb_id == lb_id)
            .map(|c| {
                let mut x = child_json(inner, c, "listener");
                x["default_pool"] = match x["default_pool_id"].as_str() {
                    Some(p) => json!({ "id": p }),
                    None => Value::Null,
                };
                x
            })
            .collect(),
    );
    v["pools"] = Value::Array(
        inner
            .lb_pools
            .iter()
            .filter(|c| c.lb_id == lb_id)
            .map(|p| {
                let mut x = child_json(inner, p, "pool");
                x["members"] = Value::Array(
                    inner
                        .members
                        .iter()
                        .filter(|m| m.parent.as_deref() == Some(p.id.as_str()))
                        .map(|m| child_json(inner, m, "member"))
                        .collect(),
                );
                x["healthmonitor"] = inner
                    .monitors
                    .iter()
                    .find(|m| m.parent.as_deref() == Some(p.id.as_str()))
                    .map(|m| child_json(inner, m, "healthmonitor"))
                    .unwrap_or(Value::Null);
                x
            })
            .collect(),
    );
    v
}

/// The load balancer and its children made ACTIVE for a moment, so that each child of the
/// graph goes through the single create's own checks (one transaction in Octavia).
fn settle(inner: &mut Inner, lb_id: &str) {
    for list in [
        &mut inner.listeners,
        &mut inner.lb_pools,
        &mut inner.members,
        &mut inner.monitors,
    ] {
        for ch in list.iter_mut().filter(|ch| ch.lb_id == lb_id) {
            ch.prov = Prov::new("ACTIVE", 0);
        }
    }
    if let Some(l) = inner.lbs.iter_mut().find(|l| l.id == lb_id) {
        l.prov = Prov::new("ACTIVE", 0);
    }
}

/// One child create of the graph through its own handler; the new child's ID.
fn sub_create(
    inner: &mut Inner,
    c: &Ctx,
    lb_id: &str,
    h: fn(&mut Inner, &Ctx) -> Response,
    kind: &str,
    body: Value,
    pool: Option<&str>,
) -> Result<String, Response> {
    settle(inner, lb_id);
    let mut params = std::collections::HashMap::new();
    if let Some(p) = pool {
        params.insert("id".to_string(), p.to_string());
    }
    let sub = Ctx {
        method: c.method.clone(),
        path: c.path.clone(),
        params,
        q: Vec::new(),
        headers: c.headers.clone(),
        body: body.to_string().into(),
        base: c.base.clone(),
    };
    let r = h(inner, &sub);
    if r.status().as_u16() != 201 {
        return Err(r);
    }
    Ok(list_of(inner, kind)
        .last()
        .map(|ch| ch.id.clone())
        .unwrap_or_default())
}

/// A pool of the graph with its health monitor and members (`listener`: its default pool's).
fn graph_pool(
    inner: &mut Inner,
    c: &Ctx,
    lb_id: &str,
    req: &Value,
    listener: Option<&str>,
) -> Result<(), Response> {
    let mut p = req.clone();
    let hm = p.as_object_mut().and_then(|o| o.remove("healthmonitor"));
    let members = p.as_object_mut().and_then(|o| o.remove("members"));
    match listener {
        Some(l) => p["listener_id"] = json!(l),
        None => p["loadbalancer_id"] = json!(lb_id),
    }
    let pid = sub_create(
        inner,
        c,
        lb_id,
        create_pool,
        "pool",
        json!({ "pool": p }),
        None,
    )?;
    if let Some(mut hm) = hm.filter(|v| !v.is_null()) {
        hm["pool_id"] = json!(pid);
        let body = json!({ "healthmonitor": hm });
        sub_create(inner, c, lb_id, create_hm, "healthmonitor", body, None)?;
    }
    for m in members.iter().filter_map(Value::as_array).flatten() {
        let body = json!({ "member": m });
        sub_create(inner, c, lb_id, create_member, "member", body, Some(&pid))?;
    }
    Ok(())
}

/// Listeners (each with its default pool), then the pools of the graph's `pools` list.
fn full_graph(inner: &mut Inner, c: &Ctx, lb_id: &str, req: &Value) -> Result<(), Response> {
    let mut named: Vec<(String, String)> = Vec::new();
    for l in req["listeners"].as_array().into_iter().flatten() {
        let mut body = l.clone();
        let pool = body.as_object_mut().and_then(|o| o.remove("default_pool"));
        body["loadbalancer_id"] = json!(lb_id);
        let body = json!({ "listener": body });
        let lid = sub_create(inner, c, lb_id, create_listener, "listener", body, None)?;
        // A default pool given in full is made here; one named only is in `pools`.
        match pool {
            Some(p) if p.get("protocol").is_some() => graph_pool(inner, c, lb_id, &p, Some(&lid))?,
            Some(p) => named.push((s(&p, "name").unwrap_or_default(), lid)),
            None => {}
        }
    }
    for p in req["pools"].as_array().into_iter().flatten() {
        let name = s(p, "name").unwrap_or_default();
        let listener = named.iter().find(|(n, _)| *n == name).map(|x| x.1.clone());
        graph_pool(inner, c, lb_id, p, listener.as_deref())?;
    }
    Ok(())
}

fn lb_state_guard(inner: &Inner, id: &str) -> Result<(), Response> {
    let Some(l) = lb(inner, id) else {
        return Err(not_found("Load Balancer", id));
    };
    let st = l.prov.status(Instant::now());
    if st.starts_with("PENDING") {
        return Err(octavia_err(
            409,
            &format!("Invalid state {st} of loadbalancer resource {id}"),
        ));
    }
    Ok(())
}

fn update_lb(inner: &mut Inner, c: &Ctx) -> Response {
    let b = match body(c) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let id = c.p("id");
    if let Err(r) = lb_state_guard(inner, id) {
        return r;
    }
    let ms = inner.delays.lb_update;
    let l = inner.lbs.iter_mut().find(|l| l.id == id).unwrap();
    merge(&mut l.fields, &b["loadbalancer"], &["vip_qos_policy_id"]);
    l.prov = Prov::new("PENDING_UPDATE", ms);
    let l = lb(inner, id).unwrap();
    json_resp(200, &json!({"loadbalancer": lb_json(inner, l)}))
}

fn delete_lb(inner: &mut Inner, c: &Ctx) -> Response {
    let id = c.p("id").to_string();
    if let Err(r) = lb_state_guard(inner, &id) {
        return r;
    }
    let cascade =
        c.q.iter()
            .any(|(k, v)| k == "cascade" && v.eq_ignore_ascii_case("true"));
    let has_children = inner.listeners.iter().any(|x| x.lb_id == id)
        || inner.lb_pools.iter().any(|x| x.lb_id == id);
    if has_children && !cascade {
        return bad(&format!(
            "Cannot delete Load Balancer {id} - it has children"
        ));
    }
    let ms = inner.delays.lb_delete;
    for list in [
        &mut inner.listeners,
        &mut inner.lb_pools,
        &mut inner.members,
        &mut inner.monitors,
    ] {
        for ch in list.iter_mut().filter(|x| x.lb_id == id) {
            ch.prov = Prov::new("PENDING_DELETE", ms);
        }
    }
    if let Some(l) = inner.lbs.iter_mut().find(|l| l.id == id) {
        l.prov = Prov::new("PENDING_DELETE", ms);
    }
    util::empty(204)
}

fn status_tree(inner: &mut Inner, c: &Ctx) -> Response {
    let id = c.p("id");
    let Some(l) = lb(inner, id) else {
        return not_found("Load Balancer", id);
    };
    let now = Instant::now();
    let pool_tree = |p: &Child| {
        let hm = inner
            .monitors
            .iter()
            .find(|m| m.parent.as_deref() == Some(&p.id))
            .map(|m| json!({"type": m.fields["type"], "id": m.id, "name": m.fields["name"], "provisioning_status": m.prov.status(now)}))
            .unwrap_or(json!({}));
        let members: Vec<Value> = inner
            .members
            .iter()
            .filter(|m| m.parent.as_deref() == Some(&p.id))
            .map(|m| {
                let j = child_json(inner, m, "member");
                json!({"name": j["name"], "provisioning_status": j["provisioning_status"], "address": j["address"],
                       "protocol_port": j["protocol_port"], "id": m.id, "operating_status": j["operating_status"]})
            })
            .collect();
        let op = rollup(&members);
        json!({"name": p.fields["name"], "provisioning_status": p.prov.status(now), "healthmonitor": hm,
               "members": members, "id": p.id, "operating_status": op})
    };
    let listeners: Vec<Value> = inner
        .listeners
        .iter()
        .filter(|x| x.lb_id == id)
        .map(|ls| {
            let pools: Vec<Value> = inner.lb_pools.iter().filter(|p| p.parent.as_deref() == Some(&ls.id)).map(pool_tree).collect();
            let op = rollup(&pools);
            json!({"name": ls.fields["name"], "provisioning_status": ls.prov.status(now), "pools": pools,
                   "l7policies": [], "id": ls.id, "operating_status": op})
        })
        .collect();
    let pools: Vec<Value> = inner
        .lb_pools
        .iter()
        .filter(|p| p.lb_id == id)
        .map(pool_tree)
        .collect();
    let j = lb_json(inner, l);
    let mut op = j["operating_status"].clone();
    if op == "ONLINE" && rollup(&listeners) != "ONLINE" {
        op = json!("DEGRADED");
    }
    json_resp(
        200,
        &json!({"statuses": {"loadbalancer": {"name": j["name"], "provisioning_status": j["provisioning_status"],
        "listeners": listeners, "pools": pools, "id": id, "operating_status": op}}}),
    )
}

/// What a test said the health monitor sees of this member (`address:port`, else `address`).
fn member_override(inner: &Inner, member: &Value) -> Option<String> {
    let map = &inner.cfg.cloud.member_operating_status;
    let addr = member["address"].as_str().unwrap_or_default();
    let port = member["protocol_port"].as_u64().unwrap_or_default();
    map.get(&format!("{addr}:{port}"))
        .or_else(|| map.get(addr))
        .cloned()
}

/// A parent's `operating_status` from its children's, as Octavia's health manager rolls them
/// up: all ONLINE (or no monitor) is ONLINE, none is ERROR, some is DEGRADED.
fn rollup(children: &[Value]) -> &'static str {
    let ok = |v: &&Value| {
        matches!(
            v["operating_status"].as_str(),
            Some("ONLINE" | "NO_MONITOR")
        )
    };
    let good = children.iter().filter(ok).count();
    if good == children.len() {
        "ONLINE"
    } else if good == 0 {
        "ERROR"
    } else {
        "DEGRADED"
    }
}

// ---- children: rendering and listing -----------------------------------------------------

fn child_json(inner: &Inner, ch: &Child, kind: &str) -> Value {
    let now = Instant::now();
    let st = ch.prov.status(now);
    let mut v = Value::Object(ch.fields.clone());
    v["provisioning_status"] = json!(st);
    let online = if st == "PENDING_CREATE" {
        "OFFLINE"
    } else {
        "ONLINE"
    };
    v["operating_status"] = json!(online);
    match kind {
        "listener" => {
            v["loadbalancers"] = json!([{ "id": ch.lb_id }]);
            v["l7policies"] = json!([]);
            let dp = inner
                .lb_pools
                .iter()
                .find(|p| p.parent.as_deref() == Some(&ch.id))
                .map(|p| p.id.clone());
            v["default_pool_id"] = json!(dp);
        }
        "pool" => {
            v["loadbalancers"] = json!([{ "id": ch.lb_id }]);
            v["listeners"] = ids(ch.parent.iter().cloned());
            v["members"] = ids(inner
                .members
                .iter()
                .filter(|m| m.parent.as_deref() == Some(&ch.id))
                .map(|m| m.id.clone()));
            v["healthmonitor_id"] = json!(
                inner
                    .monitors
                    .iter()
                    .find(|m| m.parent.as_deref() == Some(&ch.id))
                    .map(|m| m.id.clone())
            );
        }
        "member" => {
            let has_hm = inner.monitors.iter().any(|m| m.parent == ch.parent);
            if st != "PENDING_CREATE" || !has_hm {
                v["operating_status"] = json!(if has_hm { "ONLINE" } else { "NO_MONITOR" });
            }
            if has_hm
                && st != "PENDING_CREATE"
                && let Some(o) = member_override(inner, &v)
            {
                v["operating_status"] = json!(o);
            }
        }
        _ => {
            v["pools"] = ids(ch.parent.iter().cloned());
        }
    }
    v
}

/// List with Octavia filters; `loadbalancer_id` / `pool_id` are relations, not fields.
fn list_children(
    inner: &Inner,
    list: &[Child],
    kind: &str,
    c: &Ctx,
    pool: Option<&str>,
) -> Vec<Value> {
    let lb_filter: Vec<&str> = util::q_all(&c.q, "loadbalancer_id");
    let pool_filter: Vec<&str> = util::q_all(&c.q, "pool_id");
    let q: Query =
        c.q.iter()
            .filter(|(k, _)| k != "loadbalancer_id" && k != "pool_id")
            .cloned()
            .collect();
    let items: Vec<Value> = list
        .iter()
        .filter(|ch| lb_filter.is_empty() || lb_filter.contains(&ch.lb_id.as_str()))
        .filter(|ch| {
            pool_filter.is_empty()
                || ch
                    .parent
                    .as_deref()
                    .is_some_and(|p| pool_filter.contains(&p))
        })
        .filter(|ch| pool.is_none_or(|p| ch.parent.as_deref() == Some(p)))
        .map(|ch| child_json(inner, ch, kind))
        .collect();
    filter_list(items, &q)
}

fn show_child(inner: &Inner, list: &[Child], kind: &str, label: &str, id: &str) -> Response {
    match list.iter().find(|x| x.id == id) {
        Some(ch) => json_resp(200, &json!({ kind: child_json(inner, ch, kind) })),
        None => not_found(label, id),
    }
}

// ---- listeners ---------------------------------------------------------------------------

const TCP_FAMILY: &[&str] = &["TCP", "HTTP", "HTTPS", "TERMINATED_HTTPS", "PROMETHEUS"];

fn l4(proto: &str) -> &str {
    if TCP_FAMILY.contains(&proto) {
        "TCP"
    } else {
        proto
    }
}

fn list_listeners(inner: &mut Inner, c: &Ctx) -> Response {
    let items = list_children(inner, &inner.listeners, "listener", c, None);
    paging::respond(inner, c, "listeners", items, Style::Octavia, by_id)
}

fn show_listener(inner: &mut Inner, c: &Ctx) -> Response {
    show_child(inner, &inner.listeners, "listener", "Listener", c.p("id"))
}

fn create_listener(inner: &mut Inner, c: &Ctx) -> Response {
    let b = match body(c) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let req = &b["listener"];
    let Some(lb_id) = s(req, "loadbalancer_id") else {
        return octavia_err(
            400,
            "Invalid input for field/attribute loadbalancer_id. Value: 'None'. Mandatory field missing.",
        );
    };
    let proto = s(req, "protocol").unwrap_or_default();
    if ![
        "TCP",
        "UDP",
        "HTTP",
        "HTTPS",
        "TERMINATED_HTTPS",
        "SCTP",
        "PROMETHEUS",
    ]
    .contains(&proto.as_str())
    {
        return octavia_err(
            400,
            &format!(
                "Invalid input for field/attribute protocol. Value: '{proto}'. Value should be one of: HTTP, HTTPS, PROMETHEUS, SCTP, TCP, TERMINATED_HTTPS, UDP"
            ),
        );
    }
    let port = match util::int_field(req.get("protocol_port")) {
        Ok(Some(p)) if (1..=65535).contains(&p) => p,
        _ => {
            return octavia_err(
                400,
                "Invalid input for field/attribute protocol_port. Value: 'None'. Mandatory field missing.",
            );
        }
    };
    if proto == "UDP" {
        for k in [
            "insert_headers",
            "default_tls_container_ref",
            "sni_container_refs",
            "client_ca_tls_container_ref",
            "tls_ciphers",
            "tls_versions",
            "alpn_protocols",
        ] {
            if req.get(k).is_some_and(|v| !v.is_null()) {
                return bad(&format!(
                    "The following parameters are not valid for a UDP listener: {k}"
                ));
            }
        }
    }
    if let Err(r) = check_lb_mutable(inner, &lb_id) {
        return r;
    }
    if inner.listeners.iter().any(|l| {
        l.lb_id == lb_id
            && l4(l.fields["protocol"].as_str().unwrap_or_default()) == l4(&proto)
            && l.fields["protocol_port"] == json!(port)
    }) {
        return octavia_err(
            409,
            &format!(
                "Another Listener on this Load Balancer is already using protocol {proto} and protocol_port {port}"
            ),
        );
    }
    if let Some(r) = quota_hit(inner.cfg.quotas.listener, inner.listeners.len(), "Listener") {
        return r;
    }
    let mut fields = base_fields(
        inner,
        req,
        &[
            "connection_limit",
            "allowed_cidrs",
            "timeout_client_data",
            "timeout_member_connect",
            "timeout_member_data",
            "timeout_tcp_inspect",
            "insert_headers",
        ],
    );
    fields.insert("protocol".into(), json!(proto));
    fields.insert("protocol_port".into(), json!(port));
    for (k, d) in [
        ("connection_limit", json!(-1)),
        ("timeout_client_data", json!(50000)),
        ("timeout_member_connect", json!(5000)),
        ("timeout_member_data", json!(50000)),
        ("timeout_tcp_inspect", json!(0)),
        ("allowed_cidrs", Value::Null),
    ] {
        fields.entry(k).or_insert(d);
    }
    let ms = inner.delays.lb_update;
    let ch = Child {
        id: fields["id"].as_str().unwrap().to_string(),
        lb_id: lb_id.clone(),
        parent: None,
        fields,
        prov: Prov::new("PENDING_CREATE", ms),
    };
    // `default_pool_id` on create: attach that pool to this listener.
    if let Some(pid) = s(req, "default_pool_id")
        && let Some(p) = inner.lb_pools.iter_mut().find(|p| p.id == pid)
    {
        p.parent = Some(ch.id.clone());
    }
    let out = child_json(inner, &ch, "listener");
    inner.listeners.push(ch);
    touch_lb(inner, &lb_id);
    json_resp(201, &json!({ "listener": out }))
}

fn update_listener(inner: &mut Inner, c: &Ctx) -> Response {
    update_child(inner, c, "listener")
}

fn delete_listener(inner: &mut Inner, c: &Ctx) -> Response {
    delete_child(inner, c, "listener")
}

// ---- pools -------------------------------------------------------------------------------

fn list_pools(inner: &mut Inner, c: &Ctx) -> Response {
    let items = list_children(inner, &inner.lb_pools, "pool", c, None);
    paging::respond(inner, c, "pools", items, Style::Octavia, by_id)
}

fn show_pool(inner: &mut Inner, c: &Ctx) -> Response {
    show_child(inner, &inner.lb_pools, "pool", "Pool", c.p("id"))
}

fn create_pool(inner: &mut Inner, c: &Ctx) -> Response {
    let b = match body(c) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let req = &b["pool"];
    let proto = s(req, "protocol").unwrap_or_default();
    if !["TCP", "UDP", "HTTP", "HTTPS", "PROXY", "PROXYV2", "SCTP"].contains(&proto.as_str()) {
        return octavia_err(
            400,
            &format!(
                "Invalid input for field/attribute protocol. Value: '{proto}'. Value should be one of: HTTP, HTTPS, PROXY, PROXYV2, SCTP, TCP, UDP"
            ),
        );
    }
    let algo = s(req, "lb_algorithm").unwrap_or_default();
    if ![
        "ROUND_ROBIN",
        "LEAST_CONNECTIONS",
        "SOURCE_IP",
        "SOURCE_IP_PORT",
    ]
    .contains(&algo.as_str())
    {
        return octavia_err(
            400,
            &format!(
                "Invalid input for field/attribute lb_algorithm. Value: '{algo}'. Value should be one of: LEAST_CONNECTIONS, ROUND_ROBIN, SOURCE_IP, SOURCE_IP_PORT"
            ),
        );
    }
    let listener_id = s(req, "listener_id");
    let lb_id = match (&listener_id, s(req, "loadbalancer_id")) {
        (Some(lid), _) => match inner.listeners.iter().find(|l| &l.id == lid) {
            Some(l) => {
                let lp = l.fields["protocol"].as_str().unwrap_or_default();
                let ok = match lp {
                    "UDP" => proto == "UDP",
                    "SCTP" => proto == "SCTP",
                    "TCP" => ["TCP", "HTTP", "HTTPS", "PROXY", "PROXYV2"].contains(&proto.as_str()),
                    "HTTP" | "TERMINATED_HTTPS" => {
                        ["HTTP", "PROXY", "PROXYV2"].contains(&proto.as_str())
                    }
                    _ => ["HTTPS", "TCP", "PROXY", "PROXYV2"].contains(&proto.as_str()),
                };
                if !ok {
                    return bad(&format!(
                        "The pool protocol '{proto}' is invalid while the listener protocol is '{lp}'."
                    ));
                }
                if inner
                    .lb_pools
                    .iter()
                    .any(|p| p.parent.as_deref() == Some(lid.as_str()))
                {
                    return octavia_err(
                        409,
                        &format!("Listener {lid} is already using a default pool"),
                    );
                }
                l.lb_id.clone()
            }
            None => return not_found("Listener", lid),
        },
        (None, Some(l)) => l,
        (None, None) => return bad("loadbalancer_id or listener_id must be specified."),
    };
    if let Err(r) = check_lb_mutable(inner, &lb_id) {
        return r;
    }
    if let Some(r) = quota_hit(inner.cfg.quotas.pool, inner.lb_pools.len(), "Pool") {
        return r;
    }
    let mut fields = base_fields(inner, req, &["session_persistence"]);
    fields.insert("protocol".into(), json!(proto));
    fields.insert("lb_algorithm".into(), json!(algo));
    fields.entry("session_persistence").or_insert(Value::Null);
    fields.insert("tls_enabled".into(), json!(false));
    let ms = inner.delays.lb_update;
    let ch = Child {
        id: fields["id"].as_str().unwrap().to_string(),
        lb_id: lb_id.clone(),
        parent: listener_id.clone(),
        fields,
        prov: Prov::new("PENDING_CREATE", ms),
    };
    let out = child_json(inner, &ch, "pool");
    inner.lb_pools.push(ch);
    if let Some(lid) = &listener_id {
        touch(&mut inner.listeners, lid, "PENDING_UPDATE", ms);
    }
    touch_lb(inner, &lb_id);
    json_resp(201, &json!({ "pool": out }))
}

fn update_pool(inner: &mut Inner, c: &Ctx) -> Response {
    update_child(inner, c, "pool")
}

fn delete_pool(inner: &mut Inner, c: &Ctx) -> Response {
    delete_child(inner, c, "pool")
}

// ---- members -----------------------------------------------------------------------------

/// The pool (and its LB) must exist and be mutable: LB first, then the pool, as Octavia.
fn check_pool(inner: &Inner, pool_id: &str) -> Result<String, Response> {
    let Some(p) = inner.lb_pools.iter().find(|p| p.id == pool_id) else {
        return Err(not_found("Pool", pool_id));
    };
    check_lb_mutable(inner, &p.lb_id)?;
    if p.prov.pending(Instant::now()) {
        return Err(immutable("Pool", pool_id));
    }
    Ok(p.lb_id.clone())
}

fn list_members(inner: &mut Inner, c: &Ctx) -> Response {
    let pool = c.p("id");
    if !inner.lb_pools.iter().any(|p| p.id == pool) {
        return not_found("Pool", pool);
    }
    let items = list_children(inner, &inner.members, "member", c, Some(pool));
    paging::respond(inner, c, "members", items, Style::Octavia, by_id)
}

fn show_member(inner: &mut Inner, c: &Ctx) -> Response {
    show_child(inner, &inner.members, "member", "Member", c.p("member_id"))
}

const MEMBER_KEYS: &[&str] = &[
    "weight",
    "backup",
    "monitor_address",
    "monitor_port",
    "subnet_id",
];

fn member_fields(inner: &Inner, req: &Value) -> Result<Map<String, Value>, Response> {
    let Some(addr) = s(req, "address") else {
        return Err(octavia_err(
            400,
            "Invalid input for field/attribute address. Value: 'None'. Mandatory field missing.",
        ));
    };
    let port = match util::int_field(req.get("protocol_port")) {
        Ok(Some(p)) if (1..=65535).contains(&p) => p,
        _ => {
            return Err(octavia_err(
                400,
                "Invalid input for field/attribute protocol_port. Value: 'None'. Mandatory field missing.",
            ));
        }
    };
    if let Some(sid) = s(req, "subnet_id")
        && !inner.subnets.iter().any(|x| x["id"] == sid.as_str())
    {
        return Err(bad(&format!("Subnet {sid} not found.")));
    }
    let mut f = base_fields(inner, req, MEMBER_KEYS);
    f.insert("address".into(), json!(addr));
    f.insert("protocol_port".into(), json!(port));
    for (k, d) in [
        ("weight", json!(1)),
        ("backup", json!(false)),
        ("monitor_address", Value::Null),
        ("monitor_port", Value::Null),
        ("subnet_id", Value::Null),
    ] {
        f.entry(k).or_insert(d);
    }
    f.insert("vnic_type".into(), json!("normal"));
    Ok(f)
}

fn create_member(inner: &mut Inner, c: &Ctx) -> Response {
    let b = match body(c) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let pool = c.p("id").to_string();
    let lb_id = match check_pool(inner, &pool) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let fields = match member_fields(inner, &b["member"]) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if inner.members.iter().any(|m| {
        m.parent.as_deref() == Some(&pool)
            && m.fields["address"] == fields["address"]
            && m.fields["protocol_port"] == fields["protocol_port"]
    }) {
        return octavia_err(
            409,
            &format!(
                "Another member on this pool is already using ip {} on protocol_port {}",
                fields["address"].as_str().unwrap_or_default(),
                fields["protocol_port"]
            ),
        );
    }
    if let Some(r) = quota_hit(inner.cfg.quotas.member, inner.members.len(), "Member") {
        return r;
    }
    let ms = inner.delays.lb_update;
    let ch = Child {
        id: fields["id"].as_str().unwrap().to_string(),
        lb_id: lb_id.clone(),
        parent: Some(pool.clone()),
        fields,
        prov: Prov::new("PENDING_CREATE", ms),
    };
    let out = child_json(inner, &ch, "member");
    inner.members.push(ch);
    touch(&mut inner.lb_pools, &pool, "PENDING_UPDATE", ms);
    touch_lb(inner, &lb_id);
    json_resp(201, &json!({ "member": out }))
}

/// `PUT /pools/{id}/members`: the list replaces the pool's members (matched by
/// address + port); answers 202 with no body.
fn batch_members(inner: &mut Inner, c: &Ctx) -> Response {
    let b = match body(c) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let pool = c.p("id").to_string();
    let lb_id = match check_pool(inner, &pool) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let mut wanted = vec![];
    for m in b["members"].as_array().into_iter().flatten() {
        match member_fields(inner, m) {
            Ok(f) => wanted.push((m.clone(), f)),
            Err(r) => return r,
        }
    }
    let ms = inner.delays.lb_update;
    let key = |f: &Map<String, Value>| (f["address"].clone(), f["protocol_port"].clone());
    let wanted_keys: Vec<_> = wanted.iter().map(|(_, f)| key(f)).collect();
    for m in inner
        .members
        .iter_mut()
        .filter(|m| m.parent.as_deref() == Some(&pool))
    {
        if wanted_keys.contains(&key(&m.fields)) {
            let req = &wanted
                .iter()
                .find(|(_, f)| key(f) == key(&m.fields))
                .unwrap()
                .0;
            merge(&mut m.fields, req, MEMBER_KEYS);
            m.prov = Prov::new("PENDING_UPDATE", ms);
        } else {
            m.prov = Prov::new("PENDING_DELETE", ms);
        }
    }
    for (_, f) in wanted {
        let exists = inner
            .members
            .iter()
            .any(|m| m.parent.as_deref() == Some(&pool) && key(&m.fields) == key(&f));
        if !exists {
            inner.members.push(Child {
                id: f["id"].as_str().unwrap().to_string(),
                lb_id: lb_id.clone(),
                parent: Some(pool.clone()),
                fields: f,
                prov: Prov::new("PENDING_CREATE", ms),
            });
        }
    }
    touch(&mut inner.lb_pools, &pool, "PENDING_UPDATE", ms);
    touch_lb(inner, &lb_id);
    util::empty(202)
}

fn update_member(inner: &mut Inner, c: &Ctx) -> Response {
    update_child(inner, c, "member")
}

fn delete_member(inner: &mut Inner, c: &Ctx) -> Response {
    delete_child(inner, c, "member")
}

// ---- health monitors ---------------------------------------------------------------------

fn list_hms(inner: &mut Inner, c: &Ctx) -> Response {
    let items = list_children(inner, &inner.monitors, "healthmonitor", c, None);
    paging::respond(inner, c, "healthmonitors", items, Style::Octavia, by_id)
}

fn show_hm(inner: &mut Inner, c: &Ctx) -> Response {
    show_child(
        inner,
        &inner.monitors,
        "healthmonitor",
        "Health Monitor",
        c.p("id"),
    )
}

const HM_KEYS: &[&str] = &[
    "delay",
    "timeout",
    "max_retries",
    "max_retries_down",
    "http_method",
    "url_path",
    "expected_codes",
    "http_version",
    "domain_name",
];

fn create_hm(inner: &mut Inner, c: &Ctx) -> Response {
    let b = match body(c) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let req = &b["healthmonitor"];
    let Some(pool) = s(req, "pool_id") else {
        return octavia_err(
            400,
            "Invalid input for field/attribute pool_id. Value: 'None'. Mandatory field missing.",
        );
    };
    let kind = s(req, "type").unwrap_or_default();
    if ![
        "HTTP",
        "HTTPS",
        "PING",
        "TCP",
        "TLS-HELLO",
        "UDP-CONNECT",
        "SCTP",
    ]
    .contains(&kind.as_str())
    {
        return octavia_err(
            400,
            &format!(
                "Invalid input for field/attribute type. Value: '{kind}'. Value should be one of: HTTP, HTTPS, PING, SCTP, TCP, TLS-HELLO, UDP-CONNECT"
            ),
        );
    }
    let mut nums = vec![];
    for k in ["delay", "timeout", "max_retries"] {
        match util::int_field(req.get(k)) {
            Ok(Some(n)) if n >= 0 => nums.push(n),
            _ => {
                return octavia_err(
                    400,
                    &format!(
                        "Invalid input for field/attribute {k}. Value: 'None'. Mandatory field missing."
                    ),
                );
            }
        }
    }
    let Some(p) = inner.lb_pools.iter().find(|p| p.id == pool) else {
        return not_found("Pool", &pool);
    };
    let pool_proto = p.fields["protocol"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if pool_proto == "UDP" && !["UDP-CONNECT", "SCTP", "TCP", "HTTP"].contains(&kind.as_str()) {
        return bad(&format!(
            "The associated pool protocol is UDP, so only a UDP-CONNECT, SCTP, TCP or HTTP type health monitor is supported, not {kind}."
        ));
    }
    if kind == "UDP-CONNECT" && pool_proto != "UDP" && pool_proto != "SCTP" {
        return bad(
            "The associated pool protocol is not UDP or SCTP, so a UDP-CONNECT type health monitor is not supported.",
        );
    }
    if kind == "UDP-CONNECT" && nums[0] < 3 {
        return bad(&format!(
            "The request delay value {} should be larger than 3 for UDP-CONNECT health monitor type.",
            nums[0]
        ));
    }
    let lb_id = match check_pool(inner, &pool) {
        Ok(l) => l,
        Err(r) => return r,
    };
    if inner
        .monitors
        .iter()
        .any(|m| m.parent.as_deref() == Some(&pool))
    {
        return octavia_err(409, "This pool already has a health monitor");
    }
    if let Some(r) = quota_hit(
        inner.cfg.quotas.health_monitor,
        inner.monitors.len(),
        "Health Monitor",
    ) {
        return r;
    }
    let mut fields = base_fields(inner, req, HM_KEYS);
    fields.insert("type".into(), json!(kind));
    fields.insert("delay".into(), json!(nums[0]));
    fields.insert("timeout".into(), json!(nums[1]));
    fields.insert("max_retries".into(), json!(nums[2]));
    fields.entry("max_retries_down").or_insert(json!(3));
    if kind == "HTTP" || kind == "HTTPS" {
        fields.entry("http_method").or_insert(json!("GET"));
        fields.entry("url_path").or_insert(json!("/"));
        fields.entry("expected_codes").or_insert(json!("200"));
    }
    let ms = inner.delays.lb_update;
    let ch = Child {
        id: fields["id"].as_str().unwrap().to_string(),
        lb_id: lb_id.clone(),
        parent: Some(pool.clone()),
        fields,
        prov: Prov::new("PENDING_CREATE", ms),
    };
    let out = child_json(inner, &ch, "healthmonitor");
    inner.monitors.push(ch);
    touch(&mut inner.lb_pools, &pool, "PENDING_UPDATE", ms);
    touch_lb(inner, &lb_id);
    json_resp(201, &json!({ "healthmonitor": out }))
}

fn update_hm(inner: &mut Inner, c: &Ctx) -> Response {
    update_child(inner, c, "healthmonitor")
}

fn delete_hm(inner: &mut Inner, c: &Ctx) -> Response {
    delete_child(inner, c, "healthmonitor")
}

// ---- generic child update/delete ---------------------------------------------------------

fn list_of<'a>(inner: &'a mut Inner, kind: &str) -> &'a mut Vec<Child> {
    match kind {
        "listener" => &mut inner.listeners,
        "pool" => &mut inner.lb_pools,
        "member" => &mut inner.members,
        _ => &mut inner.monitors,
    }
}

fn label(kind: &str) -> &'static str {
    match kind {
        "listener" => "Listener",
        "pool" => "Pool",
        "member" => "Member",
        _ => "Health Monitor",
    }
}

fn child_id<'a>(c: &'a Ctx, kind: &str) -> &'a str {
    if kind == "member" {
        c.p("member_id")
    } else {
        c.p("id")
    }
}

/// Mutability check for a child: its LB, and for members/monitors also their pool.
fn check_child(
    inner: &mut Inner,
    kind: &str,
    id: &str,
) -> Result<(String, Option<String>), Response> {
    let Some(ch) = list_of(inner, kind).iter().find(|x| x.id == id) else {
        return Err(not_found(label(kind), id));
    };
    let (lb_id, parent) = (ch.lb_id.clone(), ch.parent.clone());
    if kind == "member" || kind == "healthmonitor" {
        check_pool(inner, parent.as_deref().unwrap_or_default())?;
    } else {
        check_lb_mutable(inner, &lb_id)?;
    }
    Ok((lb_id, parent))
}

fn update_child(inner: &mut Inner, c: &Ctx, kind: &str) -> Response {
    let b = match body(c) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let id = child_id(c, kind).to_string();
    let (lb_id, parent) = match check_child(inner, kind, &id) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let allowed: &[&str] = match kind {
        "listener" => &[
            "connection_limit",
            "allowed_cidrs",
            "timeout_client_data",
            "timeout_member_connect",
            "timeout_member_data",
            "timeout_tcp_inspect",
        ],
        "pool" => &["lb_algorithm", "session_persistence"],
        "member" => MEMBER_KEYS,
        _ => HM_KEYS,
    };
    let ms = inner.delays.lb_update;
    let ch = list_of(inner, kind)
        .iter_mut()
        .find(|x| x.id == id)
        .unwrap();
    merge(&mut ch.fields, &b[kind], allowed);
    ch.prov = Prov::new("PENDING_UPDATE", ms);
    if let Some(p) = parent.filter(|_| kind == "member" || kind == "healthmonitor") {
        touch(&mut inner.lb_pools, &p, "PENDING_UPDATE", ms);
    }
    touch_lb(inner, &lb_id);
    let inner: &Inner = inner;
    let list: &[Child] = match kind {
        "listener" => &inner.listeners,
        "pool" => &inner.lb_pools,
        "member" => &inner.members,
        _ => &inner.monitors,
    };
    let ch = list.iter().find(|x| x.id == id).unwrap();
    let out = child_json(inner, ch, kind);
    json_resp(200, &json!({ kind: out }))
}

fn delete_child(inner: &mut Inner, c: &Ctx, kind: &str) -> Response {
    let id = child_id(c, kind).to_string();
    let (lb_id, parent) = match check_child(inner, kind, &id) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let ms = inner.delays.lb_update;
    touch(list_of(inner, kind), &id, "PENDING_DELETE", ms);
    if kind == "pool" {
        // A pool's members and monitor go with it.
        for list in [&mut inner.members, &mut inner.monitors] {
            for ch in list.iter_mut().filter(|x| x.parent.as_deref() == Some(&id)) {
                ch.prov = Prov::new("PENDING_DELETE", ms);
            }
        }
    }
    if let Some(p) = parent.filter(|_| kind == "member" || kind == "healthmonitor") {
        touch(&mut inner.lb_pools, &p, "PENDING_UPDATE", ms);
    }
    touch_lb(inner, &lb_id);
    util::empty(204)
}

// ---- quotas ------------------------------------------------------------------------------

fn quota_json(inner: &Inner, project: &str) -> Value {
    let q = &inner.cfg.quotas;
    json!({"project_id": project, "load_balancer": q.load_balancer, "loadbalancer": q.load_balancer,
           "listener": q.listener, "pool": q.pool, "member": q.member,
           "health_monitor": q.health_monitor, "healthmonitor": q.health_monitor,
           "l7policy": -1, "l7rule": -1})
}

fn quota(inner: &mut Inner, c: &Ctx) -> Response {
    json_resp(200, &json!({"quota": quota_json(inner, c.p("project"))}))
}

fn list_quotas(inner: &mut Inner, _: &Ctx) -> Response {
    let p = inner.cfg.project_id.clone();
    json_resp(
        200,
        &json!({"quotas": [quota_json(inner, &p)], "quotas_links": []}),
    )
}
