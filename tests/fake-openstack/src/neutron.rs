//! Neutron (network v2.0): networks, subnets, ports, security groups and rules (single and
//! bulk, with Neutron's duplicate detection), floating IPs, tags and quotas. Neutron is
//! synchronous: creates answer 201 with the full object, deletes 204.

use crate::paging::{self, Style, by_id};
use crate::server::{App, Ctx, More, g};
use crate::state::Inner;
use crate::util::{self, filter_list, json_resp, neutron_err, s};
use axum::Router;
use axum::response::Response;
use serde_json::{Value, json};
use std::net::IpAddr;

pub fn routes(mut r: Router<App>) -> Router<App> {
    let p = "/network/v2.0";
    r = r
        .route(&format!("{p}/networks"), g(list_networks))
        .route(&format!("{p}/networks/{{id}}"), g(show_network))
        .route(&format!("{p}/subnets"), g(list_subnets))
        .route(&format!("{p}/subnets/{{id}}"), g(show_subnet))
        .route(&format!("{p}/ports"), g(list_ports).po(create_port))
        .route(
            &format!("{p}/ports/{{id}}"),
            g(show_port).de(delete_port).pu(update_port),
        )
        .route(&format!("{p}/security-groups"), g(list_sgs).po(create_sg))
        .route(
            &format!("{p}/security-groups/{{id}}"),
            g(show_sg).de(delete_sg).pu(update_sg),
        )
        .route(
            &format!("{p}/security-group-rules"),
            g(list_rules).po(create_rules),
        )
        .route(
            &format!("{p}/security-group-rules/{{id}}"),
            g(show_rule).de(delete_rule),
        )
        .route(&format!("{p}/floatingips"), g(list_fips).po(create_fip))
        .route(
            &format!("{p}/floatingips/{{id}}"),
            g(show_fip).de(delete_fip).pu(update_fip),
        )
        .route(&format!("{p}/extensions"), g(list_extensions))
        .route(&format!("{p}/quotas/{{project}}"), g(quota))
        .route(
            &format!("{p}/quotas/{{project}}/details.json"),
            g(quota_details),
        )
        .route(&format!("{p}/quotas/{{project}}/details"), g(quota_details));
    // Tags on every taggable resource (registered per collection: route templates with a
    // parameter in the collection position would clash with the routes above).
    for coll in [
        "networks",
        "subnets",
        "ports",
        "security-groups",
        "floatingips",
    ] {
        r = r
            .route(
                &format!("{p}/{coll}/{{id}}/tags"),
                g(get_tags).pu(replace_tags).de(clear_tags),
            )
            .route(
                &format!("{p}/{coll}/{{id}}/tags/{{tag}}"),
                g(check_tag).pu(add_tag).de(remove_tag),
            );
    }
    r
}

/// The collection a path names (`security-groups`, `ports`, ...).
fn collection<'a>(inner: &'a mut Inner, path: &str) -> (&'a mut Vec<Value>, &'static str) {
    let coll = path.split('/').nth(3).unwrap_or_default();
    match coll {
        "networks" => (&mut inner.networks, "Network"),
        "subnets" => (&mut inner.subnets, "Subnet"),
        "ports" => (&mut inner.ports, "Port"),
        "security-groups" => (&mut inner.sgs, "SecurityGroup"),
        _ => (&mut inner.fips, "FloatingIP"),
    }
}

fn not_found(kind: &str, id: &str) -> Response {
    let msg = match kind {
        "SecurityGroup" => format!("Security group {id} does not exist"),
        "SecurityGroupRule" => format!("Security group rule {id} does not exist"),
        "FloatingIP" => format!("Floating IP {id} could not be found"),
        k => format!("{k} {id} could not be found."),
    };
    neutron_err(404, &format!("{kind}NotFound"), &msg)
}

fn bad(kind: &str, msg: &str) -> Response {
    neutron_err(400, kind, msg)
}

fn body(c: &Ctx) -> Result<Value, Response> {
    util::parse_body(&c.body).map_err(|e| bad("HTTPBadRequest", &e))
}

fn over_quota(res: &str) -> Response {
    neutron_err(
        409,
        "OverQuota",
        &format!("Quota exceeded for resources: ['{res}']."),
    )
}

// ---- networks, subnets -------------------------------------------------------------------

fn list_networks(inner: &mut Inner, c: &Ctx) -> Response {
    let items = filter_list(inner.networks.clone(), &c.q);
    paging::respond(inner, c, "networks", items, Style::Neutron, by_id)
}
fn show_network(inner: &mut Inner, c: &Ctx) -> Response {
    show_in(&inner.networks, "network", "Network", c.p("id"))
}
fn list_subnets(inner: &mut Inner, c: &Ctx) -> Response {
    let items = filter_list(inner.subnets.clone(), &c.q);
    paging::respond(inner, c, "subnets", items, Style::Neutron, by_id)
}
fn show_subnet(inner: &mut Inner, c: &Ctx) -> Response {
    show_in(&inner.subnets, "subnet", "Subnet", c.p("id"))
}

fn show_in(list: &[Value], key: &str, kind: &str, id: &str) -> Response {
    match list.iter().find(|x| x["id"] == id) {
        Some(v) => json_resp(200, &json!({ key: v })),
        None => not_found(kind, id),
    }
}

// ---- ports -------------------------------------------------------------------------------

fn list_ports(inner: &mut Inner, c: &Ctx) -> Response {
    let items = filter_list(inner.ports.clone(), &c.q);
    paging::respond(inner, c, "ports", items, Style::Neutron, by_id)
}
fn show_port(inner: &mut Inner, c: &Ctx) -> Response {
    show_in(&inner.ports, "port", "Port", c.p("id"))
}

fn create_port(inner: &mut Inner, c: &Ctx) -> Response {
    let b = match body(c) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let p = &b["port"];
    let Some(net) = s(p, "network_id") else {
        return bad(
            "HTTPBadRequest",
            "Failed to parse request. Required attribute 'network_id' not specified",
        );
    };
    if inner.network(&net).is_none() {
        return not_found("Network", &net);
    }
    let q = inner.cfg.quotas.port;
    if q >= 0 && inner.ports.len() as i64 >= q {
        return over_quota("port");
    }
    let sgs = match p.get("security_groups") {
        Some(v) => util::str_list(Some(v)),
        None => inner
            .sgs
            .iter()
            .filter(|g| g["name"] == "default")
            .filter_map(|g| s(g, "id"))
            .collect(),
    };
    for sg in &sgs {
        if !inner.sgs.iter().any(|g| g["id"] == sg.as_str()) {
            return not_found("SecurityGroup", sg);
        }
    }
    let name = s(p, "name").unwrap_or_default();
    let device_id = s(p, "device_id").unwrap_or_default();
    let owner = s(p, "device_owner").unwrap_or_default();
    // A port named for a server gets the address reserved for that server, as Nova's do.
    inner.reserve_for(&net, &name);
    match inner.create_port(&net, &name, &device_id, &owner, sgs, p.as_object()) {
        Ok(port) => json_resp(201, &json!({ "port": port })),
        Err(e) => neutron_err(409, "IpAddressGenerationFailure", &e),
    }
}

fn update_port(inner: &mut Inner, c: &Ctx) -> Response {
    let b = match body(c) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let id = c.p("id");
    let Some(port) = inner.ports.iter_mut().find(|p| p["id"] == id) else {
        return not_found("Port", id);
    };
    for k in [
        "name",
        "description",
        "security_groups",
        "device_id",
        "device_owner",
        "admin_state_up",
        "port_security_enabled",
        "allowed_address_pairs",
    ] {
        if let Some(v) = b["port"].get(k) {
            port[k] = v.clone();
        }
    }
    bump(port);
    json_resp(200, &json!({ "port": port }))
}

fn delete_port(inner: &mut Inner, c: &Ctx) -> Response {
    let id = c.p("id");
    if !inner.ports.iter().any(|p| p["id"] == id) {
        return not_found("Port", id);
    }
    inner.delete_port(id);
    util::empty(204)
}

fn bump(v: &mut Value) {
    let n = v["revision_number"].as_i64().unwrap_or(0) + 1;
    v["revision_number"] = json!(n);
    v["updated_at"] = json!(util::now_z());
}

// ---- security groups ---------------------------------------------------------------------

/// A rule object, not yet stored.
fn new_rule(inner: &Inner, sg_id: &str, direction: &str, ethertype: &str) -> Value {
    let now = util::now_z();
    json!({
        "direction": direction, "ethertype": ethertype, "id": util::uuid(),
        "port_range_max": null, "port_range_min": null, "protocol": null,
        "remote_group_id": null, "remote_address_group_id": null, "remote_ip_prefix": null,
        "security_group_id": sg_id, "project_id": inner.cfg.project_id, "tenant_id": inner.cfg.project_id,
        "created_at": now, "updated_at": now, "revision_number": 0, "tags": [], "description": "",
        "belongs_to_default_sg": false, "normalized_cidr": null
    })
}

/// Create a group with Neutron's two default egress rules (the rules are stored here).
pub fn new_sg(inner: &mut Inner, name: &str, description: &str, tags: Vec<String>) -> Value {
    let id = util::uuid();
    let now = util::now_z();
    let is_default = name == "default";
    for eth in ["IPv4", "IPv6"] {
        let mut r = new_rule(inner, &id, "egress", eth);
        r["belongs_to_default_sg"] = json!(is_default);
        inner.rules.push(r);
    }
    if is_default {
        // The default group also lets its members talk to each other.
        for eth in ["IPv4", "IPv6"] {
            let mut r = new_rule(inner, &id, "ingress", eth);
            r["remote_group_id"] = json!(id);
            r["belongs_to_default_sg"] = json!(true);
            inner.rules.push(r);
        }
    }
    json!({
        "description": description, "id": id, "name": name,
        "project_id": inner.cfg.project_id, "tenant_id": inner.cfg.project_id,
        "created_at": now, "updated_at": now, "revision_number": 1, "tags": tags,
        "stateful": true, "shared": false
    })
}

// ---- extensions ----------------------------------------------------------------------------

/// The extensions a current ML2/OVN Neutron lists that matter to clients of this fake.
const EXTENSIONS: &[(&str, &str)] = &[
    ("security-group", "security-group"),
    ("external-net", "Neutron external network"),
    ("router", "Neutron L3 Router"),
    ("quotas", "Quota management support"),
    ("quota_details", "Quota details management support"),
    ("standard-attr-description", "standard-attr-description"),
    ("standard-attr-revisions", "Resource revision numbers"),
    ("standard-attr-timestamp", "Resource timestamps"),
    (
        "standard-attr-tag",
        "Tag support for resources with standard attribute: subnet, trunk, network_segment_range, router, network, policy, subnetpool, port, security_group, floatingip",
    ),
    ("tag-creation", "Tag support for resources during creation"),
    ("pagination", "Pagination support"),
    ("sorting", "Sorting support"),
];

/// Whether this cloud's Neutron has the extension `alias`.
pub fn has_extension(inner: &Inner, alias: &str) -> bool {
    !inner
        .cfg
        .cloud
        .neutron_without_extensions
        .iter()
        .any(|a| a == alias)
        && (alias != "tag-creation" || has_extension(inner, "standard-attr-tag"))
}

fn list_extensions(inner: &mut Inner, _: &Ctx) -> Response {
    let ext: Vec<Value> = EXTENSIONS
        .iter()
        .filter(|(alias, _)| has_extension(inner, alias))
        .map(|(alias, name)| {
            json!({"alias": alias, "name": name, "description": name,
                   "updated": "2017-01-01T10:00:00-00:00", "links": []})
        })
        .collect();
    json_resp(200, &json!({ "extensions": ext }))
}

/// A create body with `tags` on a Neutron without `tag-creation` answers as the API layer does
/// for any attribute it does not know.
fn refuse_unknown_tags(inner: &Inner, obj: &Value) -> Result<(), Response> {
    if obj.get("tags").is_some() && !has_extension(inner, "tag-creation") {
        return Err(neutron_err(
            400,
            "HTTPBadRequest",
            "Unrecognized attribute(s) 'tags'",
        ));
    }
    Ok(())
}

/// Without `standard-attr-tag` objects have no `tags` attribute.
fn untag(inner: &Inner, mut v: Value) -> Value {
    if !has_extension(inner, "standard-attr-tag")
        && let Some(o) = v.as_object_mut()
    {
        o.remove("tags");
    }
    v
}

fn sg_view(inner: &Inner, sg: &Value) -> Value {
    let mut v = untag(inner, sg.clone());
    v["security_group_rules"] = json!(
        inner
            .rules
            .iter()
            .filter(|r| r["security_group_id"] == sg["id"])
            .collect::<Vec<_>>()
    );
    v
}

fn list_sgs(inner: &mut Inner, c: &Ctx) -> Response {
    let all: Vec<Value> = inner.sgs.iter().map(|g| sg_view(inner, g)).collect();
    let items = filter_list(all, &c.q);
    paging::respond(inner, c, "security_groups", items, Style::Neutron, by_id)
}

fn show_sg(inner: &mut Inner, c: &Ctx) -> Response {
    match inner.sgs.iter().find(|g| g["id"] == c.p("id")) {
        Some(g) => json_resp(200, &json!({"security_group": sg_view(inner, g)})),
        None => not_found("SecurityGroup", c.p("id")),
    }
}

fn create_sg(inner: &mut Inner, c: &Ctx) -> Response {
    let b = match body(c) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let g = &b["security_group"];
    if let Err(r) = refuse_unknown_tags(inner, g) {
        return r;
    }
    let name = s(g, "name").unwrap_or_default();
    if name == "default" {
        return neutron_err(
            409,
            "SecurityGroupDefaultAlreadyExists",
            "Default security group already exists.",
        );
    }
    let q = &inner.cfg.quotas;
    if q.security_group >= 0 && inner.sgs.len() as i64 >= q.security_group {
        return over_quota("security_group");
    }
    if q.security_group_rule >= 0 && inner.rules.len() as i64 + 2 > q.security_group_rule {
        return over_quota("security_group_rule");
    }
    let sg = new_sg(
        inner,
        &name,
        &s(g, "description").unwrap_or_default(),
        util::str_list(g.get("tags")),
    );
    let out = sg_view(inner, &sg);
    inner.sgs.push(sg);
    json_resp(201, &json!({ "security_group": out }))
}

fn update_sg(inner: &mut Inner, c: &Ctx) -> Response {
    let b = match body(c) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let id = c.p("id");
    let Some(sg) = inner.sgs.iter_mut().find(|g| g["id"] == id) else {
        return not_found("SecurityGroup", id);
    };
    for k in ["name", "description"] {
        if let Some(v) = b["security_group"].get(k) {
            sg[k] = v.clone();
        }
    }
    bump(sg);
    let sg = sg.clone();
    json_resp(200, &json!({"security_group": sg_view(inner, &sg)}))
}

fn delete_sg(inner: &mut Inner, c: &Ctx) -> Response {
    let id = c.p("id");
    let Some(sg) = inner.sgs.iter().find(|g| g["id"] == id) else {
        return not_found("SecurityGroup", id);
    };
    if sg["name"] == "default" {
        return neutron_err(
            409,
            "SecurityGroupCannotRemoveDefault",
            "Removing default security group not allowed.",
        );
    }
    let in_use = inner.ports.iter().any(|p| {
        p["security_groups"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == id))
    });
    if in_use {
        return neutron_err(
            409,
            "SecurityGroupInUse",
            &format!("Security Group {id} in use."),
        );
    }
    inner.sgs.retain(|g| g["id"] != id);
    // Its own rules go with it, and so do rules elsewhere that name it as remote group.
    inner
        .rules
        .retain(|r| r["security_group_id"] != id && r["remote_group_id"] != id);
    util::empty(204)
}

// ---- security group rules ----------------------------------------------------------------

fn proto_number(p: &Value) -> Option<String> {
    let s = match p {
        Value::Null => return None,
        Value::Number(n) => return Some(n.to_string()),
        Value::String(s) => s.to_ascii_lowercase(),
        _ => return None,
    };
    let n = match s.as_str() {
        "any" | "" => return None,
        "tcp" => "6",
        "udp" => "17",
        "icmp" => "1",
        "icmpv6" | "ipv6-icmp" => "58",
        "sctp" => "132",
        "gre" => "47",
        "vrrp" => "112",
        other => other,
    };
    Some(n.to_string())
}

fn is_any_prefix(p: &Value) -> bool {
    p.is_null() || p == "0.0.0.0/0" || p == "::/0"
}

/// Neutron's `_rule_to_key`: what makes two rules the same (description is not compared).
fn rule_key(r: &Value) -> String {
    let prefix = if is_any_prefix(&r["remote_ip_prefix"]) {
        Value::Null
    } else {
        r["remote_ip_prefix"].clone()
    };
    json!([
        r["direction"],
        r["ethertype"],
        proto_number(&r["protocol"]),
        r["port_range_min"],
        r["port_range_max"],
        prefix,
        r["remote_group_id"],
        r["remote_address_group_id"],
        r["security_group_id"]
    ])
    .to_string()
}

/// A readable key for the inventory: `group direction proto ports remote`.
pub fn rule_label(inner: &Inner, r: &Value) -> String {
    let group = inner
        .sgs
        .iter()
        .find(|g| g["id"] == r["security_group_id"])
        .and_then(|g| g["name"].as_str())
        .unwrap_or("?");
    let remote = if let Some(gid) = r["remote_group_id"].as_str() {
        let n = inner
            .sgs
            .iter()
            .find(|g| g["id"] == gid)
            .and_then(|g| g["name"].as_str())
            .unwrap_or(gid);
        format!("group:{n}")
    } else {
        r["remote_ip_prefix"].as_str().unwrap_or("any").to_string()
    };
    format!(
        "{group} {} {} {} {}-{} {remote}",
        r["direction"].as_str().unwrap_or_default(),
        r["ethertype"].as_str().unwrap_or_default(),
        r["protocol"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| r["protocol"].to_string()),
        r["port_range_min"],
        r["port_range_max"]
    )
}

/// Normalise `addr[/len]` to its network; returns (cidr, is_v6).
fn normalize_cidr(p: &str) -> Option<(String, bool)> {
    let (addr, len) = match p.split_once('/') {
        Some((a, l)) => (a, Some(l.parse::<u32>().ok()?)),
        None => (p, None),
    };
    match addr.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => {
            let len = len.unwrap_or(32);
            if len > 32 {
                return None;
            }
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            Some((
                format!("{}/{len}", std::net::Ipv4Addr::from(u32::from(a) & mask)),
                false,
            ))
        }
        IpAddr::V6(a) => {
            let len = len.unwrap_or(128);
            if len > 128 {
                return None;
            }
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            Some((
                format!("{}/{len}", std::net::Ipv6Addr::from(u128::from(a) & mask)),
                true,
            ))
        }
    }
}

/// Validate one requested rule and build the stored object.
fn build_rule(inner: &Inner, req: &Value) -> Result<Value, Response> {
    let Some(sg_id) = s(req, "security_group_id") else {
        return Err(bad(
            "HTTPBadRequest",
            "Failed to parse request. Required attribute 'security_group_id' not specified",
        ));
    };
    if !inner.sgs.iter().any(|g| g["id"] == sg_id.as_str()) {
        return Err(not_found("SecurityGroup", &sg_id));
    }
    let direction = s(req, "direction").unwrap_or_default();
    if direction != "ingress" && direction != "egress" {
        return Err(bad(
            "InvalidInput",
            &format!(
                "Invalid input for direction. Reason: '{direction}' is not in ['ingress', 'egress']."
            ),
        ));
    }
    let ethertype = s(req, "ethertype").unwrap_or_else(|| "IPv4".into());
    if ethertype != "IPv4" && ethertype != "IPv6" {
        return Err(bad(
            "SecurityGroupRuleInvalidEtherType",
            &format!(
                "Security group rule for ethertype '{ethertype}' not supported. Allowed values are ['IPv4', 'IPv6']."
            ),
        ));
    }
    let remotes = [
        "remote_ip_prefix",
        "remote_group_id",
        "remote_address_group_id",
    ]
    .iter()
    .filter(|k| !req[**k].is_null())
    .count();
    if remotes > 1 {
        return Err(bad(
            "SecurityGroupMultipleRemoteEntites",
            "Only one of remote_ip_prefix or remote_group_id or remote_address_group_id may be provided.",
        ));
    }
    if let Some(rg) = s(req, "remote_group_id")
        && !inner.sgs.iter().any(|g| g["id"] == rg.as_str())
    {
        return Err(not_found("SecurityGroup", &rg));
    }
    let min = util::int_field(req.get("port_range_min")).map_err(|e| {
        bad(
            "InvalidInput",
            &format!("Invalid input for port_range_min. Reason: {e}."),
        )
    })?;
    let max = util::int_field(req.get("port_range_max")).map_err(|e| {
        bad(
            "InvalidInput",
            &format!("Invalid input for port_range_max. Reason: {e}."),
        )
    })?;
    let proto = proto_number(&req["protocol"]);
    if (min.is_some() || max.is_some()) && proto.is_none() {
        return Err(bad(
            "SecurityGroupProtocolRequiredWithPorts",
            "Must also specify protocol if port range is given.",
        ));
    }
    if matches!(proto.as_deref(), Some("6") | Some("17") | Some("132")) {
        if min == Some(0) || max == Some(0) {
            return Err(bad(
                "SecurityGroupInvalidPortValue",
                "Invalid value for port 0.",
            ));
        }
        if let (Some(a), Some(b)) = (min, max)
            && a > b
        {
            return Err(bad(
                "SecurityGroupInvalidPortRange",
                "For TCP/UDP protocols, port_range_min must be <= port_range_max",
            ));
        }
        if min.is_some_and(|p| !(1..=65535).contains(&p))
            || max.is_some_and(|p| !(1..=65535).contains(&p))
        {
            return Err(bad(
                "SecurityGroupInvalidPortValue",
                &format!("Invalid value for port {}.", min.or(max).unwrap_or(0)),
            ));
        }
    }
    let mut rule = new_rule(inner, &sg_id, &direction, &ethertype);
    if let Some(p) = s(req, "remote_ip_prefix") {
        let Some((cidr, v6)) = normalize_cidr(&p) else {
            return Err(bad(
                "InvalidInput",
                &format!(
                    "Invalid input for remote_ip_prefix. Reason: '{p}' is not a valid IP subnet."
                ),
            ));
        };
        if v6 != (ethertype == "IPv6") {
            return Err(bad(
                "SecurityGroupRuleParameterConflict",
                &format!("Conflicting value ethertype {ethertype} for CIDR {p}"),
            ));
        }
        rule["remote_ip_prefix"] = json!(cidr);
        rule["normalized_cidr"] = json!(cidr);
    }
    rule["protocol"] = req["protocol"].clone();
    rule["port_range_min"] = json!(min);
    rule["port_range_max"] = json!(max);
    rule["remote_group_id"] = req["remote_group_id"].clone();
    rule["description"] = json!(s(req, "description").unwrap_or_default());
    rule["belongs_to_default_sg"] = json!(
        inner
            .sgs
            .iter()
            .any(|g| g["id"] == sg_id.as_str() && g["name"] == "default")
    );
    Ok(rule)
}

fn create_rules(inner: &mut Inner, c: &Ctx) -> Response {
    let b = match body(c) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (reqs, bulk) = match (b.get("security_group_rules"), b.get("security_group_rule")) {
        (Some(Value::Array(list)), _) => (list.clone(), true),
        (_, Some(one)) => (vec![one.clone()], false),
        _ => return bad("HTTPBadRequest", "Resource body required"),
    };
    let mut built = vec![];
    for r in &reqs {
        match build_rule(inner, r) {
            Ok(v) => built.push(v),
            Err(resp) => return resp,
        }
    }
    // Duplicates inside one POST, then against what exists.
    let keys: Vec<String> = built.iter().map(rule_key).collect();
    for (i, k) in keys.iter().enumerate() {
        if keys[..i].contains(k) {
            return neutron_err(
                409,
                "DuplicateSecurityGroupRuleInPost",
                "Duplicate Security Group Rule in POST.",
            );
        }
        if let Some(existing) = inner.rules.iter().find(|r| &rule_key(r) == k) {
            let id = existing["id"].as_str().unwrap_or_default();
            return neutron_err(
                409,
                "SecurityGroupRuleExists",
                &format!("Security group rule already exists. Rule id is {id}."),
            );
        }
    }
    let q = inner.cfg.quotas.security_group_rule;
    if q >= 0 && (inner.rules.len() + built.len()) as i64 > q {
        return over_quota("security_group_rule");
    }
    inner.rules.extend(built.iter().cloned());
    if bulk {
        json_resp(201, &json!({ "security_group_rules": built }))
    } else {
        json_resp(201, &json!({ "security_group_rule": built[0] }))
    }
}

fn list_rules(inner: &mut Inner, c: &Ctx) -> Response {
    let items = filter_list(inner.rules.clone(), &c.q);
    paging::respond(
        inner,
        c,
        "security_group_rules",
        items,
        Style::Neutron,
        by_id,
    )
}

fn show_rule(inner: &mut Inner, c: &Ctx) -> Response {
    show_in(
        &inner.rules,
        "security_group_rule",
        "SecurityGroupRule",
        c.p("id"),
    )
}

fn delete_rule(inner: &mut Inner, c: &Ctx) -> Response {
    let id = c.p("id");
    if !inner.rules.iter().any(|r| r["id"] == id) {
        return not_found("SecurityGroupRule", id);
    }
    inner.rules.retain(|r| r["id"] != id);
    util::empty(204)
}

// ---- floating IPs ------------------------------------------------------------------------

fn port_details(p: &Value) -> Value {
    json!({"status": p["status"], "name": p["name"], "admin_state_up": true, "network_id": p["network_id"],
           "device_owner": p["device_owner"], "mac_address": p["mac_address"], "device_id": p["device_id"]})
}

fn list_fips(inner: &mut Inner, c: &Ctx) -> Response {
    let all: Vec<Value> = inner.fips.iter().map(|f| untag(inner, f.clone())).collect();
    let items = filter_list(all, &c.q);
    paging::respond(inner, c, "floatingips", items, Style::Neutron, by_id)
}

fn show_fip(inner: &mut Inner, c: &Ctx) -> Response {
    show_in(&inner.fips, "floatingip", "FloatingIP", c.p("id"))
}

/// Attach `fip` to `port_id` (or detach with None). Err: the port does not exist.
fn associate(inner: &Inner, fip: &mut Value, port_id: Option<&str>) -> Result<(), Response> {
    match port_id {
        None => {
            fip["port_id"] = Value::Null;
            fip["fixed_ip_address"] = Value::Null;
            fip["status"] = json!("DOWN");
            fip["port_details"] = Value::Null;
            fip["router_id"] = Value::Null;
        }
        Some(pid) => {
            let Some(port) = inner.ports.iter().find(|p| p["id"] == pid) else {
                return Err(not_found("Port", pid));
            };
            fip["port_id"] = json!(pid);
            fip["fixed_ip_address"] = port["fixed_ips"][0]["ip_address"].clone();
            fip["status"] = json!("ACTIVE");
            fip["port_details"] = port_details(port);
            fip["router_id"] = json!("d23abc8d-2991-4a55-ba98-2aaea84cc72f");
        }
    }
    Ok(())
}

fn create_fip(inner: &mut Inner, c: &Ctx) -> Response {
    let b = match body(c) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let f = &b["floatingip"];
    if let Err(r) = refuse_unknown_tags(inner, f) {
        return r;
    }
    let Some(net) = s(f, "floating_network_id") else {
        return bad(
            "HTTPBadRequest",
            "Failed to parse request. Required attribute 'floating_network_id' not specified",
        );
    };
    match inner.network(&net) {
        None => return not_found("Network", &net),
        Some(n) if n["router:external"] != true => {
            return bad(
                "BadRequest",
                &format!("Bad floatingip request: Network {net} is not a valid external network."),
            );
        }
        _ => {}
    }
    let q = inner.cfg.quotas.floatingip;
    if q >= 0 && inner.fips.len() as i64 >= q {
        return over_quota("floatingip");
    }
    let Some(addr) = inner.pools.get_mut(&net).and_then(|p| p.pop_front()) else {
        return neutron_err(
            409,
            "IpAddressGenerationFailure",
            &format!("No more IP addresses available on network {net}."),
        );
    };
    let now = util::now_z();
    let mut fip = json!({
        "fixed_ip_address": null, "floating_ip_address": addr, "floating_network_id": net,
        "id": util::uuid(), "port_id": null, "router_id": null, "status": "DOWN",
        "project_id": inner.cfg.project_id, "tenant_id": inner.cfg.project_id,
        "description": s(f, "description").unwrap_or_default(), "dns_domain": "", "dns_name": "",
        "created_at": now, "updated_at": now, "revision_number": 0, "port_details": null,
        "tags": util::str_list(f.get("tags")), "port_forwardings": [], "qos_policy_id": null
    });
    if let Err(r) = associate(inner, &mut fip, f["port_id"].as_str()) {
        inner.pools.entry(net).or_default().push_front(addr);
        return r;
    }
    inner.fips.push(fip.clone());
    json_resp(201, &json!({ "floatingip": fip }))
}

fn update_fip(inner: &mut Inner, c: &Ctx) -> Response {
    let b = match body(c) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let id = c.p("id");
    let Some(idx) = inner.fips.iter().position(|f| f["id"] == id) else {
        return not_found("FloatingIP", id);
    };
    let mut fip = inner.fips[idx].clone();
    let f = &b["floatingip"];
    if f.get("port_id").is_some()
        && let Err(r) = associate(inner, &mut fip, f["port_id"].as_str())
    {
        return r;
    }
    if let Some(d) = f.get("description") {
        fip["description"] = d.clone();
    }
    bump(&mut fip);
    inner.fips[idx] = fip.clone();
    json_resp(200, &json!({ "floatingip": fip }))
}

fn delete_fip(inner: &mut Inner, c: &Ctx) -> Response {
    let id = c.p("id");
    let Some(idx) = inner.fips.iter().position(|f| f["id"] == id) else {
        return not_found("FloatingIP", id);
    };
    let fip = inner.fips.remove(idx);
    if let (Some(net), Some(addr)) = (
        fip["floating_network_id"].as_str(),
        fip["floating_ip_address"].as_str(),
    ) {
        inner
            .pools
            .entry(net.to_string())
            .or_default()
            .push_back(addr.to_string());
    }
    util::empty(204)
}

// ---- tags --------------------------------------------------------------------------------

fn with_tags(inner: &mut Inner, c: &Ctx, f: impl FnOnce(&mut Vec<String>) -> Response) -> Response {
    if !has_extension(inner, "standard-attr-tag") {
        // No such resource without the extension (Neutron's router answers 404).
        return neutron_err(404, "HTTPNotFound", "The resource could not be found.");
    }
    let id = c.p("id").to_string();
    let (list, kind) = collection(inner, &c.path);
    let Some(obj) = list.iter_mut().find(|x| x["id"] == id.as_str()) else {
        return not_found(kind, &id);
    };
    let mut tags = util::str_list(obj.get("tags"));
    let resp = f(&mut tags);
    if obj["tags"] != json!(tags) {
        obj["tags"] = json!(tags);
        bump(obj);
    }
    resp
}

fn get_tags(inner: &mut Inner, c: &Ctx) -> Response {
    with_tags(inner, c, |t| json_resp(200, &json!({ "tags": t })))
}

fn replace_tags(inner: &mut Inner, c: &Ctx) -> Response {
    let b = match body(c) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let new = util::str_list(b.get("tags"));
    with_tags(inner, c, |t| {
        *t = new;
        json_resp(200, &json!({ "tags": t }))
    })
}

fn clear_tags(inner: &mut Inner, c: &Ctx) -> Response {
    with_tags(inner, c, |t| {
        t.clear();
        util::empty(204)
    })
}

fn check_tag(inner: &mut Inner, c: &Ctx) -> Response {
    let tag = c.p("tag").to_string();
    with_tags(inner, c, |t| {
        if t.contains(&tag) {
            util::empty(204)
        } else {
            neutron_err(
                404,
                "TagNotFound",
                &format!("Tag {tag} could not be found."),
            )
        }
    })
}

fn add_tag(inner: &mut Inner, c: &Ctx) -> Response {
    let tag = c.p("tag").to_string();
    with_tags(inner, c, |t| {
        if !t.contains(&tag) {
            t.push(tag);
        }
        util::empty(201)
    })
}

fn remove_tag(inner: &mut Inner, c: &Ctx) -> Response {
    let tag = c.p("tag").to_string();
    with_tags(inner, c, |t| {
        if let Some(i) = t.iter().position(|x| x == &tag) {
            t.remove(i);
            util::empty(204)
        } else {
            neutron_err(
                404,
                "TagNotFound",
                &format!("Tag {tag} could not be found."),
            )
        }
    })
}

// ---- quotas ------------------------------------------------------------------------------

fn quota_values(inner: &Inner) -> Vec<(&'static str, i64, usize)> {
    let q = &inner.cfg.quotas;
    vec![
        ("security_group", q.security_group, inner.sgs.len()),
        (
            "security_group_rule",
            q.security_group_rule,
            inner.rules.len(),
        ),
        ("port", q.port, inner.ports.len()),
        ("floatingip", q.floatingip, inner.fips.len()),
        ("network", 100, inner.networks.len()),
        ("subnet", 100, inner.subnets.len()),
        ("router", 10, 0),
    ]
}

fn quota(inner: &mut Inner, _: &Ctx) -> Response {
    let m: serde_json::Map<String, Value> = quota_values(inner)
        .into_iter()
        .map(|(k, l, _)| (k.to_string(), json!(l)))
        .collect();
    json_resp(200, &json!({ "quota": m }))
}

fn quota_details(inner: &mut Inner, _: &Ctx) -> Response {
    let m: serde_json::Map<String, Value> = quota_values(inner)
        .into_iter()
        .map(|(k, l, u)| (k.to_string(), json!({"used": u, "limit": l, "reserved": 0})))
        .collect();
    json_resp(200, &json!({ "quota": m }))
}
