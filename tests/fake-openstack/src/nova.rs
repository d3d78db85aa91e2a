//! Nova (compute v2.1): flavors, keypairs, server groups, servers (boot from volume),
//! quotas and limits. Honours the compute microversion header for tags and the server-group
//! policy shape, and echoes it back (see the middleware).

use crate::paging::{self, Style, by_id};
use crate::server::{App, Ctx, More, g, po};
use crate::state::{Inner, Keypair, Server, ServerGroup, Volume};
use crate::util::empty;
use crate::util::{self, Query, json_resp, nova_err, q_get, s};
use axum::Router;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::time::{Duration, Instant};

pub const MAX_VERSION: &str = "2.104";

#[derive(Clone, Copy, PartialEq, PartialOrd, Debug)]
pub struct V(pub u32, pub u32);

impl std::fmt::Display for V {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// `OpenStack-API-Version: compute 2.x` wins over `X-OpenStack-Nova-API-Version: 2.x`;
/// none means 2.1, `latest` the maximum.
pub fn microversion(h: &HeaderMap) -> V {
    let parse = |s: &str| -> Option<V> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("latest") {
            return Some(V(2, 104));
        }
        let (a, b) = s.split_once('.')?;
        Some(V(a.parse().ok()?, b.parse().ok()?))
    };
    if let Some(v) = h.get("openstack-api-version").and_then(|v| v.to_str().ok()) {
        for part in v.split(',') {
            let mut it = part.split_whitespace();
            if it.next() == Some("compute")
                && let Some(v) = it.next().and_then(parse)
            {
                return v;
            }
        }
    }
    h.get("x-openstack-nova-api-version")
        .and_then(|v| v.to_str().ok())
        .and_then(parse)
        .unwrap_or(V(2, 1))
}

pub fn routes(r: Router<App>) -> Router<App> {
    let p = "/compute/v2.1";
    r.route(&format!("{p}/flavors"), g(list_flavors))
        .route(&format!("{p}/flavors/detail"), g(list_flavors_detail))
        .route(&format!("{p}/flavors/{{id}}"), g(show_flavor))
        .route(
            &format!("{p}/os-keypairs"),
            g(list_keypairs).po(create_keypair),
        )
        .route(
            &format!("{p}/os-keypairs/{{name}}"),
            g(show_keypair).de(delete_keypair),
        )
        .route(
            &format!("{p}/os-server-groups"),
            g(list_groups).po(create_group),
        )
        .route(
            &format!("{p}/os-server-groups/{{id}}"),
            g(show_group).de(delete_group),
        )
        .route(&format!("{p}/servers"), g(list_servers).po(create_server))
        .route(&format!("{p}/servers/detail"), g(list_servers_detail))
        .route(
            &format!("{p}/servers/{{id}}"),
            g(show_server).de(delete_server),
        )
        .route(&format!("{p}/servers/{{id}}/ips"), g(server_ips))
        .route(&format!("{p}/os-quota-sets/{{project}}"), g(quota_set))
        .route(
            &format!("{p}/os-quota-sets/{{project}}/detail"),
            g(quota_set_detail),
        )
        .route(&format!("{p}/limits"), g(limits))
        .route(&format!("{p}/os-availability-zone"), g(azs))
        .route(&format!("{p}/servers/{{id}}/action"), po(server_action))
        .route(
            &format!("{p}/servers/{{id}}/tags"),
            g(server_tags).pu(replace_server_tags),
        )
        .route(
            &format!("{p}/servers/{{id}}/tags/{{tag}}"),
            g(check_server_tag).pu(add_server_tag).de(remove_server_tag),
        )
}

fn links(base: &str, project: &str, kind: &str, id: &str) -> Value {
    json!([
        {"href": format!("{base}/compute/v2.1/{project}/{kind}/{id}"), "rel": "self"},
        {"href": format!("{base}/compute/{project}/{kind}/{id}"), "rel": "bookmark"}
    ])
}

// ---- flavors -----------------------------------------------------------------------------

fn flavor_json(inner: &Inner, c: &Ctx, f: &crate::config::FlavorSpec) -> Value {
    json!({
        "OS-FLV-DISABLED:disabled": false, "disk": f.disk, "OS-FLV-EXT-DATA:ephemeral": 0,
        "os-flavor-access:is_public": true, "id": f.id,
        "links": links(&c.base, &inner.cfg.project_id, "flavors", &f.id),
        "name": f.name, "ram": f.ram, "swap": 0, "vcpus": f.vcpus, "rxtx_factor": 1.0,
        "description": null, "extra_specs": {}
    })
}

fn list_flavors(inner: &mut Inner, c: &Ctx) -> Response {
    let list: Vec<Value> = inner
        .cfg
        .flavors
        .iter()
        .map(|f| json!({"id": f.id, "name": f.name, "links": links(&c.base, &inner.cfg.project_id, "flavors", &f.id), "description": null}))
        .collect();
    paging::respond(inner, c, "flavors", list, Style::Nova, by_id)
}

fn list_flavors_detail(inner: &mut Inner, c: &Ctx) -> Response {
    let list: Vec<Value> = inner
        .cfg
        .flavors
        .iter()
        .map(|f| flavor_json(inner, c, f))
        .collect();
    paging::respond(inner, c, "flavors", list, Style::Nova, by_id)
}

fn show_flavor(inner: &mut Inner, c: &Ctx) -> Response {
    let id = c.p("id");
    match inner.cfg.flavors.iter().find(|f| f.id == id) {
        Some(f) => json_resp(200, &json!({"flavor": flavor_json(inner, c, f)})),
        None => nova_err(404, &format!("Flavor {id} could not be found.")),
    }
}

// ---- keypairs ----------------------------------------------------------------------------

fn fingerprint(key: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut out = Vec::new();
    for salt in 0..2u8 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (salt, key).hash(&mut h);
        out.extend_from_slice(&h.finish().to_be_bytes());
    }
    out.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn keypair_json(k: &Keypair, full: bool, user: &str) -> Value {
    let mut v = json!({"fingerprint": k.fingerprint, "name": k.name, "type": "ssh", "public_key": k.public_key});
    if full {
        v["created_at"] = json!(k.created);
        v["deleted"] = json!(false);
        v["deleted_at"] = Value::Null;
        v["id"] = json!(1);
        v["updated_at"] = Value::Null;
        v["user_id"] = json!(user);
    }
    v
}

fn user_id(inner: &Inner) -> String {
    inner
        .cfg
        .users
        .first()
        .map(|u| u.id.clone())
        .unwrap_or_default()
}

fn list_keypairs(inner: &mut Inner, c: &Ctx) -> Response {
    let uid = user_id(inner);
    let list: Vec<Value> = inner
        .keypairs
        .iter()
        .map(|k| json!({"keypair": keypair_json(k, false, &uid)}))
        .collect();
    // The marker of key pairs is the name.
    let by_name = |v: &Value| {
        v["keypair"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    paging::respond(inner, c, "keypairs", list, Style::Nova, by_name)
}

fn show_keypair(inner: &mut Inner, c: &Ctx) -> Response {
    let name = c.p("name");
    let uid = user_id(inner);
    match inner.keypairs.iter().find(|k| k.name == name) {
        Some(k) => json_resp(200, &json!({"keypair": keypair_json(k, true, &uid)})),
        None => nova_err(404, &format!("Keypair {name} not found for user {uid}")),
    }
}

fn create_keypair(inner: &mut Inner, c: &Ctx) -> Response {
    let v = microversion(&c.headers);
    let body = match util::parse_body(&c.body) {
        Ok(b) => b,
        Err(e) => return nova_err(400, &e),
    };
    let kp = &body["keypair"];
    let Some(name) = s(kp, "name").filter(|n| !n.is_empty()) else {
        return nova_err(
            400,
            "Invalid input for field/attribute keypair. Value: None. 'name' is a required property",
        );
    };
    if inner.keypairs.iter().any(|k| k.name == name) {
        return nova_err(409, &format!("Key pair '{name}' already exists."));
    }
    let q = inner.cfg.quotas.key_pairs;
    if q >= 0 && inner.keypairs.len() as i64 >= q {
        return nova_err(403, "Quota exceeded, too many key pairs.");
    }
    let (public_key, private_key) = match s(kp, "public_key") {
        Some(k) => (k, None),
        None if v >= V(2, 92) => {
            return nova_err(400, "Invalid input for field/attribute keypair. Value: None. 'public_key' is a required property");
        }
        None => (
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFake Generated-by-Nova".to_string(),
            Some("-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n-----END OPENSSH PRIVATE KEY-----\n".to_string()),
        ),
    };
    let k = Keypair {
        fingerprint: fingerprint(&public_key),
        name,
        public_key,
        created: util::now_z(),
    };
    let mut out = keypair_json(&k, false, &user_id(inner));
    out["user_id"] = json!(user_id(inner));
    if let Some(p) = private_key {
        out["private_key"] = json!(p);
    }
    inner.keypairs.push(k);
    json_resp(
        if v >= V(2, 2) { 201 } else { 200 },
        &json!({ "keypair": out }),
    )
}

fn delete_keypair(inner: &mut Inner, c: &Ctx) -> Response {
    let name = c.p("name");
    let before = inner.keypairs.len();
    inner.keypairs.retain(|k| k.name != name);
    if inner.keypairs.len() == before {
        return nova_err(
            404,
            &format!("Keypair {name} not found for user {}", user_id(inner)),
        );
    }
    util::empty(if microversion(&c.headers) >= V(2, 2) {
        204
    } else {
        202
    })
}

// ---- server groups -----------------------------------------------------------------------

const POLICIES: &[&str] = &[
    "anti-affinity",
    "affinity",
    "soft-anti-affinity",
    "soft-affinity",
];

fn group_json(inner: &Inner, g: &ServerGroup, v: V) -> Value {
    let mut out = json!({"id": g.id, "name": g.name, "members": g.members,
        "project_id": inner.cfg.project_id, "user_id": user_id(inner)});
    if v >= V(2, 64) {
        out["policy"] = json!(g.policy);
        out["rules"] = json!({});
    } else {
        out["policies"] = json!([g.policy]);
        out["metadata"] = json!({});
    }
    out
}

fn list_groups(inner: &mut Inner, c: &Ctx) -> Response {
    let v = microversion(&c.headers);
    let list: Vec<Value> = inner
        .server_groups
        .iter()
        .map(|g| group_json(inner, g, v))
        .collect();
    match paging::offset_page(inner, c, list) {
        Ok(list) => json_resp(200, &json!({ "server_groups": list })),
        Err(e) => e,
    }
}

fn show_group(inner: &mut Inner, c: &Ctx) -> Response {
    let v = microversion(&c.headers);
    match inner.server_groups.iter().find(|g| g.id == c.p("id")) {
        Some(g) => json_resp(200, &json!({"server_group": group_json(inner, g, v)})),
        None => nova_err(
            404,
            &format!("Server group {} could not be found.", c.p("id")),
        ),
    }
}

fn create_group(inner: &mut Inner, c: &Ctx) -> Response {
    let v = microversion(&c.headers);
    let body = match util::parse_body(&c.body) {
        Ok(b) => b,
        Err(e) => return nova_err(400, &e),
    };
    let sg = &body["server_group"];
    let Some(name) = s(sg, "name") else {
        return nova_err(
            400,
            "Invalid input for field/attribute server_group. Value: None. 'name' is a required property",
        );
    };
    let policy = if v >= V(2, 64) {
        if sg.get("policies").is_some() {
            return nova_err(
                400,
                "Invalid input for field/attribute server_group. Additional properties are not allowed ('policies' was unexpected)",
            );
        }
        s(sg, "policy")
    } else {
        if sg.get("policy").is_some() {
            return nova_err(
                400,
                "Invalid input for field/attribute server_group. Additional properties are not allowed ('policy' was unexpected)",
            );
        }
        let p = util::str_list(sg.get("policies"));
        if p.len() != 1 {
            return nova_err(
                400,
                "Invalid input for field/attribute policies. Value: []. [] is too short",
            );
        }
        p.into_iter().next()
    };
    let Some(policy) = policy.filter(|p| POLICIES.contains(&p.as_str())) else {
        return nova_err(
            400,
            "Invalid input for field/attribute policy. Value must be one of anti-affinity, affinity, soft-anti-affinity, soft-affinity",
        );
    };
    if policy.starts_with("soft") && v < V(2, 15) {
        return nova_err(
            400,
            "Invalid input for field/attribute 0. Value: soft-anti-affinity. 'soft-anti-affinity' is not one of ['anti-affinity', 'affinity']",
        );
    }
    let q = inner.cfg.quotas.server_groups;
    if q >= 0 && inner.server_groups.len() as i64 >= q {
        return nova_err(403, "Quota exceeded, too many server groups.");
    }
    let g = ServerGroup {
        id: util::uuid(),
        name,
        policy,
        members: vec![],
    };
    let out = group_json(inner, &g, v);
    inner.server_groups.push(g);
    json_resp(200, &json!({ "server_group": out }))
}

fn delete_group(inner: &mut Inner, c: &Ctx) -> Response {
    let before = inner.server_groups.len();
    inner.server_groups.retain(|g| g.id != c.p("id"));
    if before == inner.server_groups.len() {
        return nova_err(
            404,
            &format!("Server group {} could not be found.", c.p("id")),
        );
    }
    util::empty(204)
}

// ---- servers -----------------------------------------------------------------------------

/// Cores, RAM and instances in use by live servers.
pub fn usage(inner: &Inner) -> (i64, i64, i64) {
    inner.servers.iter().fold((0, 0, 0), |(c, r, n), s| {
        (c + s.vcpus as i64, r + s.ram as i64, n + 1)
    })
}

fn bad(msg: &str) -> Response {
    nova_err(400, msg)
}

fn create_server(inner: &mut Inner, c: &Ctx) -> Response {
    let v = microversion(&c.headers);
    let body = match util::parse_body(&c.body) {
        Ok(b) => b,
        Err(e) => return bad(&e),
    };
    let sv = &body["server"];
    let Some(name) = s(sv, "name").filter(|n| !n.is_empty()) else {
        return bad(
            "Invalid input for field/attribute server. Value: None. 'name' is a required property",
        );
    };
    let flavor_ref = sv["flavorRef"]
        .as_str()
        .map(String::from)
        .or_else(|| sv["flavorRef"].as_u64().map(|n| n.to_string()));
    let Some(flavor) =
        flavor_ref.and_then(|f| inner.cfg.flavors.iter().find(|x| x.id == f).cloned())
    else {
        return bad(&format!("Flavor {} could not be found.", sv["flavorRef"]));
    };
    if sv.get("personality").is_some() && v >= V(2, 57) {
        return bad(
            "Invalid input for field/attribute server. Additional properties are not allowed ('personality' was unexpected)",
        );
    }
    let tags = util::str_list(sv.get("tags"));
    if sv.get("tags").is_some() && v < V(2, 52) {
        return bad(
            "Invalid input for field/attribute server. Additional properties are not allowed ('tags' was unexpected)",
        );
    }
    if tags.len() > 50
        || tags
            .iter()
            .any(|t| t.is_empty() || t.len() > 60 || t.contains('/') || t.contains(','))
    {
        return bad("Invalid input for field/attribute tags.");
    }
    if let Some(ud) = sv.get("user_data")
        && (!ud.is_string() || ud.as_str().is_some_and(|u| u.len() > 65535))
    {
        return bad("Invalid input for field/attribute user_data. Value: not a base64 string.");
    }
    let key_name = s(sv, "key_name");
    if let Some(k) = &key_name
        && !inner.keypairs.iter().any(|kp| &kp.name == k)
    {
        return bad("Invalid key_name provided.");
    }
    // Security groups by name or id.
    let mut sg_names = vec![];
    let mut sg_ids = vec![];
    let req_sgs = sv["security_groups"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| vec![json!({"name": "default"})]);
    for g in &req_sgs {
        let want = g["name"].as_str().unwrap_or_default();
        let found = inner
            .sgs
            .iter()
            .filter(|x| x["name"] == want || x["id"] == want)
            .collect::<Vec<_>>();
        match found.as_slice() {
            [one] => {
                sg_names.push(want.to_string());
                sg_ids.push(one["id"].as_str().unwrap_or_default().to_string());
            }
            [] => {
                return bad(&format!(
                    "Unable to find security_group with name or id '{want}'"
                ));
            }
            _ => {
                return nova_err(
                    409,
                    &format!(
                        "Multiple security_group matches found for name '{want}', use an ID to be more specific."
                    ),
                );
            }
        }
    }
    // Networks: a list of {uuid}/{port}, or "none"/"auto".
    let mut nets: Vec<String> = vec![];
    let mut given_ports: Vec<String> = vec![];
    match &sv["networks"] {
        Value::Array(list) => {
            for n in list {
                if let Some(port) = n["port"].as_str() {
                    match inner.ports.iter().find(|p| p["id"] == port) {
                        Some(p) if p["device_id"].as_str().is_some_and(|d| !d.is_empty()) => {
                            return nova_err(409, &format!("Port {port} is still in use."));
                        }
                        Some(_) => given_ports.push(port.to_string()),
                        None => return bad(&format!("Port id {port} could not be found.")),
                    }
                } else if let Some(u) = n["uuid"].as_str() {
                    if inner.network(u).is_none() {
                        return bad(&format!("Network {u} could not be found."));
                    }
                    nets.push(u.to_string());
                } else {
                    return bad("Bad networks format: network uuid is not in proper format");
                }
            }
        }
        Value::String(s) if s == "none" => {}
        Value::String(s) if s == "auto" => {
            if let Some(n) = inner
                .networks
                .iter()
                .find(|n| n["router:external"] == false)
            {
                nets.push(n["id"].as_str().unwrap_or_default().to_string());
            }
        }
        Value::Null if v < V(2, 37) => {}
        _ => {
            return bad(
                "Invalid input for field/attribute server. Value: None. 'networks' is a required property",
            );
        }
    }
    // Boot volume from block_device_mapping_v2.
    let mut image_id = s(sv, "imageRef").filter(|s| !s.is_empty());
    let mut new_volume: Option<(i64, bool, String)> = None;
    let mut attach: Vec<(String, bool)> = vec![];
    for bdm in sv["block_device_mapping_v2"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let src = bdm["source_type"].as_str().unwrap_or_default();
        let dst = bdm["destination_type"].as_str().unwrap_or("local");
        let dot = bdm["delete_on_termination"].as_bool().unwrap_or(false);
        let uuid = bdm["uuid"].as_str().unwrap_or_default().to_string();
        match (src, dst) {
            ("image", "volume") => {
                if !inner.cfg.images.iter().any(|i| i.id == uuid) {
                    return bad(&format!("Image {uuid} could not be found."));
                }
                let size = match util::int_field(bdm.get("volume_size")) {
                    Ok(Some(n)) if n > 0 => n,
                    _ => return bad("Invalid input for field/attribute volume_size."),
                };
                image_id = Some(uuid.clone());
                new_volume = Some((size, dot, uuid));
            }
            ("volume", "volume") => match inner.volumes.iter().find(|x| x.id == uuid) {
                Some(vol) if vol.server_id.is_none() => attach.push((uuid, dot)),
                Some(_) => {
                    return bad(&format!(
                        "Invalid volume: volume {uuid} is already attached"
                    ));
                }
                None => {
                    return bad(&format!(
                        "Block Device Mapping is Invalid: failed to get volume {uuid}."
                    ));
                }
            },
            ("image", "local") => {
                if !inner.cfg.images.iter().any(|i| i.id == uuid) {
                    return bad(&format!("Image {uuid} could not be found."));
                }
                image_id = Some(uuid);
            }
            _ => return bad("Block Device Mapping is Invalid: unsupported source/destination"),
        }
    }
    if image_id.is_none() && attach.is_empty() {
        return bad(
            "Block Device Mapping is Invalid: You specified more local devices than the limit allows",
        );
    }
    let group = s(&body["OS-SCH-HNT:scheduler_hints"], "group")
        .or_else(|| s(&sv["scheduler_hints"], "group"));
    if let Some(g) = &group
        && !inner.server_groups.iter().any(|x| &x.id == g)
    {
        return bad(&format!("Invalid server group {g}"));
    }
    // Nova's quota check, in Nova's words.
    let (cores, ram, instances) = usage(inner);
    let q = inner.cfg.quotas.clone();
    for (res, used, want, limit) in [
        ("instances", instances, 1, q.instances),
        ("cores", cores, flavor.vcpus as i64, q.cores),
        ("ram", ram, flavor.ram as i64, q.ram),
    ] {
        if limit >= 0 && used + want > limit {
            return nova_err(
                403,
                &format!(
                    "Quota exceeded for {res}: Requested {want}, but already used {used} of {limit} {res}"
                ),
            );
        }
    }
    let nports = inner.ports.len() as i64;
    if q.port >= 0 && nports + nets.len() as i64 > q.port {
        return nova_err(403, "Maximum number of ports exceeded");
    }

    let id = util::uuid();
    let now = Instant::now();
    let build = Duration::from_millis(inner.delays.server_build);
    let mut fail = c
        .boot_fails()
        .then(|| "No valid host was found. There are not enough hosts available.".to_string());
    // Ports: one per requested network, with the next pool address.
    // Booted on ports without `security_groups`: the server shows its ports' groups.
    if sv.get("security_groups").is_none() && !given_ports.is_empty() {
        sg_names = given_ports
            .iter()
            .filter_map(|p| inner.ports.iter().find(|x| x["id"] == p.as_str()))
            .flat_map(|p| util::str_list(p.get("security_groups")))
            .filter_map(|g| {
                inner
                    .sgs
                    .iter()
                    .find(|x| x["id"] == g.as_str())
                    .and_then(|x| x["name"].as_str().map(String::from))
            })
            .collect();
        sg_names.dedup();
    }
    let mut port_ids = given_ports.clone();
    for p in &given_ports {
        if let Some(port) = inner.ports.iter_mut().find(|x| x["id"] == p.as_str()) {
            port["device_id"] = json!(id);
            port["device_owner"] = json!("compute:nova");
            port["status"] = json!("ACTIVE");
        }
    }
    for net in &nets {
        // The address reserved for this server's name goes first.
        inner.reserve_for(net, &name);
        match inner.create_port(net, "", &id, "compute:nova", sg_ids.clone(), None) {
            Ok(p) => port_ids.push(p["id"].as_str().unwrap_or_default().to_string()),
            Err(e) => {
                fail.get_or_insert(format!("Build of instance {id} aborted: {e}"));
            }
        }
    }
    let mut volumes = attach.clone();
    if let Some((size, dot, img)) = new_volume {
        let (nvol, gb) = crate::cinder::usage(inner);
        let (qv, qg) = (q.volumes, q.gigabytes);
        if (qv >= 0 && nvol + 1 > qv) || (qg >= 0 && gb + size > qg) {
            fail.get_or_insert(format!(
                "Build of instance {id} aborted: VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. Requested {size}G, quota is {qg}G and {gb}G has been consumed."
            ));
        } else {
            let vol_id = util::uuid();
            inner.volumes.push(Volume {
                id: vol_id.clone(),
                name: Some(String::new()),
                description: Some(String::new()),
                size,
                image_id: Some(img),
                metadata: Map::new(),
                created: util::now_micro(),
                available_at: now + Duration::from_millis(inner.delays.volume_create).min(build),
                server_id: Some(id.clone()),
                attachment_id: util::uuid(),
                gone_at: None,
            });
            volumes.insert(0, (vol_id, dot));
        }
    }
    for (vid, _) in &attach {
        if let Some(vol) = inner.volumes.iter_mut().find(|x| &x.id == vid) {
            vol.server_id = Some(id.clone());
        }
    }
    if let Some(g) = &group
        && let Some(sgp) = inner.server_groups.iter_mut().find(|x| &x.id == g)
    {
        sgp.members.push(id.clone());
    }
    let mut metadata = sv["metadata"].as_object().cloned().unwrap_or_default();
    metadata.retain(|_, v| v.is_string());
    inner.servers.push(Server {
        id: id.clone(),
        name,
        flavor_id: flavor.id.clone(),
        image_id: if new_volume_is_boot(&volumes) {
            None
        } else {
            image_id
        },
        key_name,
        metadata,
        tags,
        sg_names: sg_names.clone(),
        port_ids,
        given_ports,
        volumes,
        group,
        user_data: s(sv, "user_data"),
        created: util::now_z(),
        active_at: now + build,
        fail,
        gone_at: None,
        vcpus: flavor.vcpus,
        ram: flavor.ram,
        stopped: false,
    });
    let project = inner.cfg.project_id.clone();
    let mut out = json!({"server": {
        "id": id, "links": links(&c.base, &project, "servers", &id),
        "OS-DCF:diskConfig": sv["OS-DCF:diskConfig"].as_str().unwrap_or("MANUAL"),
        "security_groups": sg_names.iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
    }});
    out["server"]["adminPass"] = json!(&util::hex_id()[..12]);
    let mut r = json_resp(202, &out);
    r.headers_mut().insert(
        "location",
        HeaderValue::from_str(&format!("{}/compute/v2.1/{project}/servers/{id}", c.base)).unwrap(),
    );
    r
}

/// A server booted from a volume shows `"image": ""`.
fn new_volume_is_boot(volumes: &[(String, bool)]) -> bool {
    !volumes.is_empty()
}

fn addresses(inner: &Inner, srv: &Server) -> Value {
    let mut out = Map::new();
    for pid in &srv.port_ids {
        let Some(port) = inner.ports.iter().find(|p| p["id"] == pid.as_str()) else {
            continue;
        };
        let net_name = port["network_id"]
            .as_str()
            .and_then(|n| inner.network(n))
            .and_then(|n| n["name"].as_str())
            .unwrap_or_default()
            .to_string();
        let mac = port["mac_address"].clone();
        let entry = out.entry(net_name).or_insert_with(|| json!([]));
        for ip in port["fixed_ips"].as_array().into_iter().flatten() {
            entry
                .as_array_mut()
                .unwrap()
                .push(json!({"addr": ip["ip_address"], "version": 4,
                "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": mac}));
        }
        for fip in inner.fips.iter().filter(|f| f["port_id"] == pid.as_str()) {
            entry
                .as_array_mut()
                .unwrap()
                .push(json!({"addr": fip["floating_ip_address"], "version": 4,
                "OS-EXT-IPS:type": "floating", "OS-EXT-IPS-MAC:mac_addr": mac}));
        }
    }
    Value::Object(out)
}

fn server_json(inner: &Inner, c: &Ctx, srv: &Server, v: V) -> Value {
    let now = Instant::now();
    let status = srv.status(now);
    let (vm_state, task_state, power) = match status {
        "BUILD" => {
            let elapsed = now.saturating_duration_since(
                srv.active_at - Duration::from_millis(inner.delays.server_build.max(1)),
            );
            let frac = elapsed.as_millis() * 4 / u128::from(inner.delays.server_build.max(1));
            let task = [
                "scheduling",
                "block_device_mapping",
                "networking",
                "spawning",
            ][(frac as usize).min(3)];
            ("building", json!(task), 0)
        }
        "ERROR" => ("error", Value::Null, 0),
        // Nova's power state 4 is SHUTDOWN.
        "SHUTOFF" => ("stopped", Value::Null, 4),
        _ => ("active", Value::Null, 1),
    };
    let task_state = if srv.gone_at.is_some() {
        json!("deleting")
    } else {
        task_state
    };
    let project = &inner.cfg.project_id;
    let flavor = inner.cfg.flavors.iter().find(|f| f.id == srv.flavor_id);
    let flavor_json = if v >= V(2, 47) {
        flavor
            .map(|f| {
                json!({"disk": f.disk, "ephemeral": 0, "extra_specs": {}, "original_name": f.name,
            "ram": f.ram, "swap": 0, "vcpus": f.vcpus})
            })
            .unwrap_or(Value::Null)
    } else {
        json!({"id": srv.flavor_id, "links": [{"href": format!("{}/compute/{project}/flavors/{}", c.base, srv.flavor_id), "rel": "bookmark"}]})
    };
    let image = match &srv.image_id {
        Some(i) => {
            json!({"id": i, "links": [{"href": format!("{}/compute/{project}/images/{i}", c.base), "rel": "bookmark"}]})
        }
        None => json!(""),
    };
    let built = status != "BUILD";
    let mut out = json!({
        "OS-DCF:diskConfig": "MANUAL",
        "OS-EXT-AZ:availability_zone": if built { "nova" } else { "" },
        "OS-EXT-STS:power_state": power,
        "OS-EXT-STS:task_state": task_state,
        "OS-EXT-STS:vm_state": vm_state,
        "OS-SRV-USG:launched_at": if matches!(status, "ACTIVE" | "SHUTOFF") { json!(srv.created.trim_end_matches('Z')) } else { Value::Null },
        "OS-SRV-USG:terminated_at": null,
        "accessIPv4": "", "accessIPv6": "",
        "addresses": if matches!(status, "ACTIVE" | "SHUTOFF") { addresses(inner, srv) } else { json!({}) },
        "config_drive": "",
        "created": srv.created,
        "description": null,
        "flavor": flavor_json,
        "hostId": if built { format!("{:x}", srv.id.len() * 7919) } else { String::new() },
        "id": srv.id,
        "image": image,
        "key_name": srv.key_name,
        "links": links(&c.base, project, "servers", &srv.id),
        "locked": false,
        "metadata": srv.metadata,
        "name": srv.name,
        "os-extended-volumes:volumes_attached": srv.volumes.iter().map(|(id, dot)| json!({"id": id, "delete_on_termination": dot})).collect::<Vec<_>>(),
        "progress": if status == "ACTIVE" { 100 } else { 0 },
        "security_groups": srv.sg_names.iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
        "status": status,
        "tenant_id": project,
        "updated": util::now_z(),
        "user_id": user_id(inner),
    });
    if v >= V(2, 26) {
        out["tags"] = json!(srv.tags);
    }
    if status == "ERROR"
        && let Some(msg) = &srv.fail
    {
        out["fault"] = json!({"code": 500, "created": srv.created, "message": msg,
            "details": "Traceback (most recent call last):\n  (fake-openstack scripted boot failure)"});
    }
    let _ = &srv.user_data;
    out
}

fn filtered_servers<'a>(inner: &'a Inner, q: &Query) -> Result<Vec<&'a Server>, Response> {
    let name_re = match q_get(q, "name") {
        Some(n) => {
            Some(regex::Regex::new(n).map_err(|_| nova_err(400, &format!("Invalid regex '{n}'")))?)
        }
        None => None,
    };
    let now = Instant::now();
    Ok(inner
        .servers
        .iter()
        .filter(|s| name_re.as_ref().is_none_or(|re| re.is_match(&s.name)))
        .filter(|s| q_get(q, "status").is_none_or(|st| st.eq_ignore_ascii_case(s.status(now))))
        .filter(|s| util::tags_match(&s.tags, q))
        .filter(|s| q_get(q, "key_name").is_none_or(|k| s.key_name.as_deref() == Some(k)))
        .filter(|s| q_get(q, "flavor").is_none_or(|f| s.flavor_id == f))
        .collect())
}

fn list_servers(inner: &mut Inner, c: &Ctx) -> Response {
    let list = match filtered_servers(inner, &c.q) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let project = &inner.cfg.project_id;
    let out: Vec<Value> = list
        .iter()
        .map(|s| json!({"id": s.id, "name": s.name, "links": links(&c.base, project, "servers", &s.id)}))
        .collect();
    paging::respond(inner, c, "servers", out, Style::Nova, by_id)
}

fn list_servers_detail(inner: &mut Inner, c: &Ctx) -> Response {
    let v = microversion(&c.headers);
    let list = match filtered_servers(inner, &c.q) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let out: Vec<Value> = list.iter().map(|s| server_json(inner, c, s, v)).collect();
    paging::respond(inner, c, "servers", out, Style::Nova, by_id)
}

fn server_not_found(id: &str) -> Response {
    nova_err(404, &format!("Instance {id} could not be found."))
}

fn show_server(inner: &mut Inner, c: &Ctx) -> Response {
    let v = microversion(&c.headers);
    match inner.servers.iter().find(|s| s.id == c.p("id")) {
        Some(s) => json_resp(200, &json!({"server": server_json(inner, c, s, v)})),
        None => server_not_found(c.p("id")),
    }
}

fn server_ips(inner: &mut Inner, c: &Ctx) -> Response {
    match inner.servers.iter().find(|s| s.id == c.p("id")) {
        Some(s) => {
            let mut a = addresses(inner, s);
            if let Value::Object(m) = &mut a {
                for list in m.values_mut() {
                    for e in list.as_array_mut().into_iter().flatten() {
                        let o = e.as_object_mut().unwrap();
                        o.retain(|k, _| k == "addr" || k == "version");
                    }
                }
            }
            json_resp(200, &json!({ "addresses": a }))
        }
        None => server_not_found(c.p("id")),
    }
}

fn server_tags(inner: &mut Inner, c: &Ctx) -> Response {
    match inner.servers.iter().find(|s| s.id == c.p("id")) {
        Some(s) => json_resp(200, &json!({ "tags": s.tags })),
        None => server_not_found(c.p("id")),
    }
}

fn tag_ok(t: &str) -> bool {
    !t.is_empty() && t.len() <= 60 && !t.contains('/') && !t.contains(',')
}

fn replace_server_tags(inner: &mut Inner, c: &Ctx) -> Response {
    let tags = util::parse_body(&c.body)
        .map(|b| util::str_list(b.get("tags")))
        .unwrap_or_default();
    if tags.len() > 50 || !tags.iter().all(|t| tag_ok(t)) {
        return bad("Invalid input for field/attribute tags.");
    }
    match inner.servers.iter_mut().find(|s| s.id == c.p("id")) {
        Some(s) => {
            s.tags = tags;
            json_resp(200, &json!({ "tags": s.tags }))
        }
        None => server_not_found(c.p("id")),
    }
}

fn check_server_tag(inner: &mut Inner, c: &Ctx) -> Response {
    match inner.servers.iter().find(|s| s.id == c.p("id")) {
        Some(s) if s.tags.iter().any(|t| t == c.p("tag")) => empty(204),
        Some(_) => nova_err(404, &format!("Tag {} could not be found.", c.p("tag"))),
        None => server_not_found(c.p("id")),
    }
}

fn add_server_tag(inner: &mut Inner, c: &Ctx) -> Response {
    let tag = c.p("tag").to_string();
    if !tag_ok(&tag) {
        return bad("Invalid input for field/attribute tag.");
    }
    match inner.servers.iter_mut().find(|s| s.id == c.p("id")) {
        Some(s) if s.tags.contains(&tag) => empty(204),
        Some(s) => {
            s.tags.push(tag);
            empty(201)
        }
        None => server_not_found(c.p("id")),
    }
}

fn remove_server_tag(inner: &mut Inner, c: &Ctx) -> Response {
    match inner.servers.iter_mut().find(|s| s.id == c.p("id")) {
        Some(s) if s.tags.iter().any(|t| t == c.p("tag")) => {
            s.tags.retain(|t| t != c.p("tag"));
            empty(204)
        }
        Some(_) => nova_err(404, &format!("Tag {} could not be found.", c.p("tag"))),
        None => server_not_found(c.p("id")),
    }
}

fn delete_server(inner: &mut Inner, c: &Ctx) -> Response {
    let ms = inner.delays.server_delete;
    match inner.servers.iter_mut().find(|s| s.id == c.p("id")) {
        Some(s) => {
            if s.gone_at.is_none() {
                s.gone_at = Some(Instant::now() + Duration::from_millis(ms));
            }
            util::empty(204)
        }
        None => server_not_found(c.p("id")),
    }
}

fn server_action(inner: &mut Inner, c: &Ctx) -> Response {
    // Only what a provisioning tool might call: a no-op reboot, and stop/start as Nova does
    // them (os-stop on an ACTIVE server makes it SHUTOFF, os-start on a SHUTOFF one ACTIVE;
    // otherwise 409).
    let id = c.p("id");
    if !inner.servers.iter().any(|s| s.id == id) {
        return server_not_found(id);
    }
    let body = util::parse_body(&c.body).unwrap_or(Value::Null);
    if let Some(ask) = body.get("os-getConsoleOutput") {
        return console_output(inner, id, ask);
    }
    let action = body.as_object().and_then(|o| {
        ["reboot", "os-stop", "os-start"]
            .into_iter()
            .find(|k| o.contains_key(*k))
    });
    match action {
        Some("reboot") => util::empty(202),
        Some(action @ ("os-stop" | "os-start")) => power_action(inner, id, action),
        _ => {
            inner
                .unhandled
                .push(format!("{} {} {}", c.method, c.path, body));
            util::json_resp(
                501,
                &json!({"notImplemented": {"code": 501, "message": "fake-openstack does not handle this server action"}}),
            )
        }
    }
}

/// `os-stop` (ACTIVE → SHUTOFF) or `os-start` (SHUTOFF → ACTIVE), at once; 409 with Nova's
/// message from any other status.
fn power_action(inner: &mut Inner, id: &str, action: &str) -> Response {
    let now = Instant::now();
    let Some(srv) = inner.servers.iter_mut().find(|s| s.id == id) else {
        return server_not_found(id);
    };
    let (from, verb) = match action {
        "os-stop" => ("ACTIVE", "stop"),
        _ => ("SHUTOFF", "start"),
    };
    let status = srv.status(now);
    if status != from || srv.gone_at.is_some() {
        let vm_state = match status {
            "BUILD" => "building",
            "ERROR" => "error",
            "SHUTOFF" => "stopped",
            _ => "active",
        };
        let (field, value) = if srv.gone_at.is_some() {
            ("task_state", "deleting")
        } else {
            ("vm_state", vm_state)
        };
        return nova_err(
            409,
            &format!("Cannot '{verb}' instance {id} while it is in {field} {value}"),
        );
    }
    srv.stopped = action == "os-stop";
    util::empty(202)
}

/// `{"os-getConsoleOutput": {"length": N}}` → `{"output": "…"}`: the last N lines (all of them
/// for a missing, null or negative length), or 404 when the server has no console log.
fn console_output(inner: &Inner, id: &str, ask: &Value) -> Response {
    let name = inner
        .servers
        .iter()
        .find(|s| s.id == id)
        .map(|s| s.name.clone())
        .unwrap_or_default();
    let Some(log) = inner.cfg.console_logs.get(&name) else {
        return nova_err(404, "Guest does not have a console available.");
    };
    let length = match &ask["length"] {
        Value::Number(n) => n.as_i64(),
        Value::String(t) => t.parse().ok(),
        _ => None,
    };
    let output = match length {
        Some(n) if n >= 0 => {
            let lines: Vec<&str> = log.split_inclusive('\n').collect();
            lines[lines.len().saturating_sub(n as usize)..].concat()
        }
        _ => log.clone(),
    };
    json_resp(200, &json!({ "output": output }))
}

fn azs(_: &mut Inner, _: &Ctx) -> Response {
    json_resp(
        200,
        &json!({"availabilityZoneInfo": [{"zoneName": "nova", "zoneState": {"available": true}, "hosts": null}]}),
    )
}

// ---- quotas ------------------------------------------------------------------------------

fn quota_values(inner: &Inner) -> Vec<(&'static str, i64, i64)> {
    let (cores, ram, instances) = usage(inner);
    let q = &inner.cfg.quotas;
    vec![
        ("cores", q.cores, cores),
        ("ram", q.ram, ram),
        ("instances", q.instances, instances),
        (
            "server_groups",
            q.server_groups,
            inner.server_groups.len() as i64,
        ),
        ("key_pairs", q.key_pairs, inner.keypairs.len() as i64),
        ("server_group_members", 10, 0),
        ("metadata_items", 128, 0),
        ("injected_files", 5, 0),
        ("injected_file_content_bytes", 10240, 0),
        ("injected_file_path_bytes", 255, 0),
    ]
}

fn quota_set(inner: &mut Inner, c: &Ctx) -> Response {
    let mut qs = Map::new();
    qs.insert("id".into(), json!(c.p("project")));
    for (k, limit, _) in quota_values(inner) {
        qs.insert(k.into(), json!(limit));
    }
    json_resp(200, &json!({ "quota_set": qs }))
}

fn quota_set_detail(inner: &mut Inner, c: &Ctx) -> Response {
    let mut qs = Map::new();
    qs.insert("id".into(), json!(c.p("project")));
    for (k, limit, used) in quota_values(inner) {
        qs.insert(
            k.into(),
            json!({"in_use": used, "limit": limit, "reserved": 0}),
        );
    }
    json_resp(200, &json!({ "quota_set": qs }))
}

fn limits(inner: &mut Inner, _: &Ctx) -> Response {
    let (cores, ram, instances) = usage(inner);
    let q = &inner.cfg.quotas;
    json_resp(
        200,
        &json!({"limits": {"rate": [], "absolute": {
            "maxTotalCores": q.cores, "totalCoresUsed": cores,
            "maxTotalRAMSize": q.ram, "totalRAMUsed": ram,
            "maxTotalInstances": q.instances, "totalInstancesUsed": instances,
            "maxServerGroups": q.server_groups, "totalServerGroupsUsed": inner.server_groups.len(),
            "maxTotalKeypairs": q.key_pairs, "maxServerMeta": 128, "maxServerGroupMembers": 10,
            "maxPersonality": 5, "maxPersonalitySize": 10240, "maxImageMeta": 128,
            "maxSecurityGroups": -1, "maxSecurityGroupRules": -1, "maxTotalFloatingIps": -1,
            "totalFloatingIpsUsed": 0, "totalSecurityGroupsUsed": 0
        }}}),
    )
}
