//! Tests of the fake cloud itself, over real HTTP (blocking reqwest).

use fake_openstack::{Config, Delays, FakeCloud, FaultAction, FaultRule, Quotas};
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

struct Session {
    http: Client,
    token: String,
    catalog: Value,
    /// The token body's `issued_at` and `expires_at`.
    times: (String, String),
}

impl Session {
    fn new(cloud: &FakeCloud) -> Session {
        let http = Client::new();
        let resp = http
            .post(format!("{}/auth/tokens", cloud.auth_url()))
            .json(
                &json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": "acura", "domain": {"name": "Default"}, "password": "secret"}}},
                "scope": {"project": {"name": "acura", "domain": {"id": "default"}}}}}),
            )
            .send()
            .unwrap();
        assert_eq!(resp.status(), 201);
        let token = resp.headers()["x-subject-token"]
            .to_str()
            .unwrap()
            .to_string();
        let body: Value = resp.json().unwrap();
        let time = |k: &str| body["token"][k].as_str().unwrap_or_default().to_string();
        Session {
            http,
            token,
            catalog: body["token"]["catalog"].clone(),
            times: (time("issued_at"), time("expires_at")),
        }
    }

    fn url(&self, kind: &str) -> String {
        let svc = self
            .catalog
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in catalog"));
        let ep = svc["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["interface"] == "public")
            .unwrap();
        ep["url"].as_str().unwrap().to_string()
    }

    fn req(&self, method: &str, url: &str, body: Option<Value>) -> reqwest::Result<Response> {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self
            .http
            .request(m, url)
            .header("x-auth-token", &self.token)
            .header("openstack-api-version", "compute 2.67");
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send()
    }

    /// (status, JSON body or Null)
    fn call(&self, method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
        let resp = self.req(method, url, body).unwrap();
        assert!(resp.headers().contains_key("x-openstack-request-id"));
        let status = resp.status().as_u16();
        let text = resp.text().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn token_catalog_and_auth_errors() {
    let cloud = FakeCloud::start(Config::default());
    let s = Session::new(&cloud);
    for kind in [
        "identity",
        "compute",
        "network",
        "volumev3",
        "block-storage",
        "image",
        "load-balancer",
    ] {
        let svc = s
            .catalog
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["type"] == kind)
            .unwrap();
        let eps = svc["endpoints"].as_array().unwrap();
        for iface in ["public", "internal"] {
            let ep = eps.iter().find(|e| e["interface"] == iface).unwrap();
            assert_eq!(ep["region_id"], "RegionOne");
            assert!(ep["url"].as_str().unwrap().starts_with(&cloud.base_url()));
        }
    }
    // Version discovery needs no token.
    let (st, v) = s.call("GET", &format!("{}/", s.url("compute")), None);
    assert_eq!(st, 200);
    assert_eq!(v["version"]["min_version"], "2.1");

    // Wrong password: Keystone's 401.
    let resp = s
        .http
        .post(format!("{}/auth/tokens", cloud.auth_url()))
        .json(
            &json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "acura", "domain": {"name": "Default"}, "password": "wrong"}}}}}),
        )
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["error"]["code"], 401);
    assert_eq!(body["error"]["title"], "Unauthorized");

    // Application credential by id.
    let resp = s
        .http
        .post(format!("{}/auth/tokens", cloud.auth_url()))
        .json(&json!({"auth": {"identity": {"methods": ["application_credential"],
            "application_credential": {"id": "423f19a4ac1e4f48bbb4180756e6eb6c", "secret": "appcred-secret"}}}}))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["token"]["application_credential"]["name"], "acura-ha");
    assert!(body["token"]["catalog"].as_array().unwrap().len() >= 6);

    // No token on a service call.
    let resp = s
        .http
        .get(format!("{}/servers", s.url("compute")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["x-compute-request-id"],
        resp.headers()["x-openstack-request-id"]
    );

    let yaml = cloud.clouds_yaml("fake");
    assert!(yaml.contains(&cloud.auth_url()) && yaml.contains("region_name: \"RegionOne\""));
    assert!(cloud.unhandled().is_empty());
}

/// Boot one server the way the provider will; returns its id.
fn boot(s: &Session, cloud: &FakeCloud, name: &str) -> (u16, Value) {
    let image = {
        let (_, v) = s.call(
            "GET",
            &format!("{}/v2/images?name=ubuntu-20.04", s.url("image")),
            None,
        );
        assert_eq!(v["images"].as_array().unwrap().len(), 1);
        v["images"][0]["id"].as_str().unwrap().to_string()
    };
    let net = cloud.network_id("acura-net").unwrap();
    s.call(
        "POST",
        &format!("{}/servers", s.url("compute")),
        Some(json!({"server": {
            "name": name, "flavorRef": "5", "key_name": "acura", "security_groups": [{"name": "acura-nodes"}],
            "networks": [{"uuid": net}], "user_data": "IyEvYmluL3NoCg==", "metadata": {"acura-ha/cluster": "c1"},
            // Nova refuses '/' and ',' in tags (unlike Neutron).
            "tags": ["acura-ha-cluster=c1"],
            "block_device_mapping_v2": [{"uuid": image, "source_type": "image", "destination_type": "volume",
                "boot_index": 0, "volume_size": 200, "delete_on_termination": true}]}})),
    )
}

#[test]
fn server_boots_with_pool_address_and_volume_then_deletes() {
    let cloud = FakeCloud::start(Config::default());
    let s = Session::new(&cloud);
    let before = cloud.inventory();
    let (st, _) = s.call(
        "POST",
        &format!("{}/os-keypairs", s.url("compute")),
        Some(json!({"keypair": {"name": "acura", "public_key": "ssh-ed25519 AAAA test"}})),
    );
    assert_eq!(st, 201);
    let (st, _) = s.call(
        "POST",
        &format!("{}/os-keypairs", s.url("compute")),
        Some(json!({"keypair": {"name": "acura", "public_key": "ssh-ed25519 AAAA test"}})),
    );
    assert_eq!(st, 409);
    let (st, sg) = s.call(
        "POST",
        &format!("{}/v2.0/security-groups", s.url("network")),
        Some(json!({"security_group": {"name": "acura-nodes", "description": "nodes"}})),
    );
    assert_eq!(st, 201);
    assert_eq!(
        sg["security_group"]["security_group_rules"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let (st, created) = boot(&s, &cloud, "c1-node-1");
    assert_eq!(st, 202, "{created}");
    let id = created["server"]["id"].as_str().unwrap().to_string();
    assert!(created["server"]["adminPass"].is_string());
    let url = format!("{}/servers/{id}", s.url("compute"));
    let (_, v) = s.call("GET", &url, None);
    assert_eq!(v["server"]["status"], "BUILD");
    assert_eq!(v["server"]["addresses"], json!({}));
    wait_for("ACTIVE", || {
        s.call("GET", &url, None).1["server"]["status"] == "ACTIVE"
    });
    let (_, v) = s.call("GET", &url, None);
    let addr = &v["server"]["addresses"]["acura-net"][0];
    assert_eq!(addr["addr"], "10.0.0.10");
    assert_eq!(addr["OS-EXT-IPS:type"], "fixed");
    assert_eq!(v["server"]["tags"], json!(["acura-ha-cluster=c1"]));
    assert_eq!(v["server"]["image"], "");

    // Filters: name is a regex, tags are exact.
    let (_, l) = s.call(
        "GET",
        &format!(
            "{}/servers/detail?name=^c1-node-&tags=acura-ha-cluster=c1",
            s.url("compute")
        ),
        None,
    );
    assert_eq!(l["servers"].as_array().unwrap().len(), 1);
    let (_, l) = s.call(
        "GET",
        &format!("{}/servers/detail?tags=other", s.url("compute")),
        None,
    );
    assert_eq!(l["servers"].as_array().unwrap().len(), 0);

    // Its port and 200 GB bootable volume.
    let (_, ports) = s.call(
        "GET",
        &format!("{}/v2.0/ports?device_id={id}", s.url("network")),
        None,
    );
    assert_eq!(ports["ports"].as_array().unwrap().len(), 1);
    let (_, vols) = s.call(
        "GET",
        &format!("{}/volumes/detail", s.url("volumev3")),
        None,
    );
    let vol = &vols["volumes"][0];
    assert_eq!(vol["size"], 200);
    assert_eq!(vol["status"], "in-use");
    assert_eq!(vol["bootable"], "true");
    assert_eq!(vol["attachments"][0]["server_id"], id.as_str());

    // SG in use by the port: 409.
    let sg_id = sg["security_group"]["id"].as_str().unwrap();
    let (st, e) = s.call(
        "DELETE",
        &format!("{}/v2.0/security-groups/{sg_id}", s.url("network")),
        None,
    );
    assert_eq!(st, 409);
    assert_eq!(e["NeutronError"]["type"], "SecurityGroupInUse");

    // Quotas reflect it.
    let (_, q) = s.call(
        "GET",
        &format!("{}/os-quota-sets/x/detail", s.url("compute")),
        None,
    );
    assert_eq!(q["quota_set"]["cores"]["in_use"], 8);

    let (st, _) = s.call("DELETE", &url, None);
    assert_eq!(st, 204);
    let (_, v) = s.call("GET", &url, None);
    assert_eq!(v["server"]["OS-EXT-STS:task_state"], "deleting");
    wait_for("server gone", || s.call("GET", &url, None).0 == 404);
    let (_, e) = s.call("GET", &url, None);
    assert_eq!(e["itemNotFound"]["code"], 404);
    let (_, vols) = s.call("GET", &format!("{}/volumes", s.url("volumev3")), None);
    assert_eq!(vols["volumes"].as_array().unwrap().len(), 0);
    assert_eq!(
        s.call(
            "DELETE",
            &format!("{}/v2.0/security-groups/{sg_id}", s.url("network")),
            None
        )
        .0,
        204
    );
    assert_eq!(
        s.call(
            "DELETE",
            &format!("{}/os-keypairs/acura", s.url("compute")),
            None
        )
        .0,
        204
    );
    assert_eq!(cloud.inventory(), before);
    assert!(cloud.unhandled().is_empty(), "{:?}", cloud.unhandled());
    assert!(cloud.stats().mutating >= 6);
}

#[test]
fn boot_fault_puts_server_in_error() {
    let cloud = FakeCloud::start(Config::default());
    let s = Session::new(&cloud);
    cloud.add_keypair("acura", "ssh-ed25519 AAAA k");
    cloud.add_security_group("acura-nodes", "");
    cloud.add_fault(FaultRule::new(
        "POST",
        "/compute/v2.1/servers$",
        FaultAction::BootFails,
    ));
    let (st, created) = boot(&s, &cloud, "n1");
    assert_eq!(st, 202);
    let url = format!(
        "{}/servers/{}",
        s.url("compute"),
        created["server"]["id"].as_str().unwrap()
    );
    wait_for("ERROR", || {
        s.call("GET", &url, None).1["server"]["status"] == "ERROR"
    });
    let (_, v) = s.call("GET", &url, None);
    assert_eq!(v["server"]["fault"]["code"], 500);
    assert!(
        v["server"]["fault"]["message"]
            .as_str()
            .unwrap()
            .starts_with("No valid host was found")
    );
}

/// `os-stop` and `os-start` as Nova does them: ACTIVE → SHUTOFF → ACTIVE (same server, its
/// address kept), each refused with 409 from the other status; `reboot` stays a no-op.
#[test]
fn stop_and_start_change_the_status_and_refuse_the_wrong_one() {
    let cloud = FakeCloud::start(Config::default());
    let s = Session::new(&cloud);
    cloud.add_keypair("acura", "ssh-ed25519 AAAA k");
    cloud.add_security_group("acura-nodes", "");
    let (st, created) = boot(&s, &cloud, "n1");
    assert_eq!(st, 202, "{created}");
    let id = created["server"]["id"].as_str().unwrap().to_string();
    let url = format!("{}/servers/{id}", s.url("compute"));
    let action = format!("{url}/action");
    let status = || s.call("GET", &url, None).1["server"]["status"].clone();
    // Still building: neither stop nor start.
    let (st, v) = s.call("POST", &action, Some(json!({"os-stop": null})));
    assert_eq!(st, 409, "{v}");
    assert_eq!(
        v["conflictingRequest"]["message"],
        format!("Cannot 'stop' instance {id} while it is in vm_state building")
    );
    wait_for("ACTIVE", || status() == "ACTIVE");
    let (st, v) = s.call("POST", &action, Some(json!({"os-start": null})));
    assert_eq!(st, 409, "{v}");
    assert_eq!(v["conflictingRequest"]["code"], 409);
    assert_eq!(
        v["conflictingRequest"]["message"],
        format!("Cannot 'start' instance {id} while it is in vm_state active")
    );
    assert_eq!(status(), "ACTIVE");

    let (st, _) = s.call("POST", &action, Some(json!({"os-stop": null})));
    assert_eq!(st, 202);
    let (_, v) = s.call("GET", &url, None);
    assert_eq!(v["server"]["status"], "SHUTOFF");
    assert_eq!(v["server"]["OS-EXT-STS:vm_state"], "stopped");
    assert_eq!(v["server"]["OS-EXT-STS:power_state"], 4);
    assert_eq!(
        v["server"]["addresses"]["acura-net"][0]["addr"],
        "10.0.0.10"
    );
    let (_, listed) = s.call(
        "GET",
        &format!("{}/servers/detail?status=SHUTOFF", s.url("compute")),
        None,
    );
    assert_eq!(listed["servers"].as_array().unwrap().len(), 1, "{listed}");
    let (st, v) = s.call("POST", &action, Some(json!({"os-stop": null})));
    assert_eq!(st, 409, "{v}");
    assert_eq!(
        v["conflictingRequest"]["message"],
        format!("Cannot 'stop' instance {id} while it is in vm_state stopped")
    );
    let (st, _) = s.call("POST", &action, Some(json!({"reboot": {"type": "SOFT"}})));
    assert_eq!(st, 202);
    assert_eq!(status(), "SHUTOFF", "reboot changes nothing");

    let (st, _) = s.call("POST", &action, Some(json!({"os-start": null})));
    assert_eq!(st, 202);
    let (_, v) = s.call("GET", &url, None);
    assert_eq!(v["server"]["status"], "ACTIVE");
    assert_eq!(v["server"]["id"], json!(id));
    assert_eq!(v["server"]["OS-EXT-STS:power_state"], 1);
    assert!(cloud.unhandled().is_empty(), "{:?}", cloud.unhandled());
}

#[test]
fn octavia_children_wait_for_active() {
    let cfg = Config {
        delays: Delays {
            lb_create: 150,
            lb_update: 100,
            lb_delete: 50,
            ..Delays::default()
        },
        ..Config::default()
    };
    let cloud = FakeCloud::start(cfg);
    let s = Session::new(&cloud);
    let lb_root = format!("{}/v2/lbaas", s.url("load-balancer"));
    let (st, lb) = s.call(
        "POST",
        &format!("{lb_root}/loadbalancers"),
        Some(json!({"loadbalancer": {"name": "c1-lb", "vip_subnet_id": cloud.subnet_id("acura-subnet").unwrap(), "tags": ["acura-ha/cluster=c1"]}})),
    );
    assert_eq!(st, 201);
    assert_eq!(lb["loadbalancer"]["provisioning_status"], "PENDING_CREATE");
    let lb_id = lb["loadbalancer"]["id"].as_str().unwrap().to_string();
    let listener = |port: u16, proto: &str| {
        s.call(
            "POST",
            &format!("{lb_root}/listeners"),
            Some(json!({"listener": {"name": format!("l{port}"), "protocol": proto, "protocol_port": port, "loadbalancer_id": lb_id}})),
        )
    };
    let (st, e) = listener(80, "TCP");
    assert_eq!(st, 409);
    assert_eq!(
        e["faultstring"],
        format!("Load Balancer {lb_id} is immutable and cannot be updated.")
    );
    assert_eq!(e["faultcode"], "Client");
    let lb_url = format!("{lb_root}/loadbalancers/{lb_id}");
    let active =
        || s.call("GET", &lb_url, None).1["loadbalancer"]["provisioning_status"] == "ACTIVE";
    wait_for("LB ACTIVE", active);
    let (st, l) = listener(80, "TCP");
    assert_eq!(st, 201);
    assert_eq!(l["listener"]["provisioning_status"], "PENDING_CREATE");
    assert_eq!(
        s.call("GET", &lb_url, None).1["loadbalancer"]["provisioning_status"],
        "PENDING_UPDATE"
    );
    assert_eq!(listener(443, "TCP").0, 409);
    wait_for("LB ACTIVE", active);
    assert_eq!(listener(80, "TCP").0, 409, "duplicate port");
    wait_for("LB ACTIVE", active);
    assert_eq!(listener(80, "UDP").0, 201, "TCP 80 and UDP 80 coexist");
    wait_for("LB ACTIVE", active);
    let (st, pool) = s.call(
        "POST",
        &format!("{lb_root}/pools"),
        Some(json!({"pool": {"name": "p80", "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN", "listener_id": l["listener"]["id"]}})),
    );
    assert_eq!(st, 201);
    let pool_id = pool["pool"]["id"].as_str().unwrap().to_string();
    wait_for("LB ACTIVE", active);
    let member = json!({"member": {"address": "10.0.0.10", "protocol_port": 80, "subnet_id": cloud.subnet_id("acura-subnet")}});
    let (st, m) = s.call(
        "POST",
        &format!("{lb_root}/pools/{pool_id}/members"),
        Some(member.clone()),
    );
    assert_eq!(st, 201);
    assert_eq!(m["member"]["operating_status"], "NO_MONITOR");
    wait_for("LB ACTIVE", active);
    let (st, e) = s.call(
        "POST",
        &format!("{lb_root}/pools/{pool_id}/members"),
        Some(member),
    );
    assert_eq!(st, 409);
    assert!(
        e["faultstring"]
            .as_str()
            .unwrap()
            .contains("already using ip 10.0.0.10 on protocol_port 80")
    );
    let hm = |kind: &str| {
        s.call(
            "POST",
            &format!("{lb_root}/healthmonitors"),
            Some(json!({"healthmonitor": {"pool_id": pool_id, "type": kind, "delay": 5, "timeout": 3, "max_retries": 3}})),
        )
    };
    assert_eq!(hm("UDP-CONNECT").0, 400, "UDP-CONNECT on a TCP pool");
    assert_eq!(hm("TCP").0, 201);
    wait_for("LB ACTIVE", active);
    assert_eq!(hm("TCP").0, 409, "one monitor per pool");

    let (_, tree) = s.call("GET", &format!("{lb_url}/status"), None);
    assert_eq!(
        tree["statuses"]["loadbalancer"]["listeners"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (_, ls) = s.call(
        "GET",
        &format!("{lb_root}/listeners?loadbalancer_id={lb_id}"),
        None,
    );
    assert_eq!(ls["listeners"].as_array().unwrap().len(), 2);

    // Delete: non-cascade refused, cascade removes everything and the VIP port.
    wait_for("LB ACTIVE", active);
    let (st, e) = s.call("DELETE", &lb_url, None);
    assert_eq!(st, 400);
    assert!(
        e["faultstring"]
            .as_str()
            .unwrap()
            .contains("it has children")
    );
    assert_eq!(
        s.call("DELETE", &format!("{lb_url}?cascade=true"), None).0,
        204
    );
    assert_eq!(
        s.call("GET", &lb_url, None).1["loadbalancer"]["provisioning_status"],
        "PENDING_DELETE"
    );
    wait_for("LB gone", || s.call("GET", &lb_url, None).0 == 404);
    let inv = cloud.inventory();
    for kind in [
        "load_balancers",
        "listeners",
        "pools",
        "members",
        "health_monitors",
        "ports",
    ] {
        assert_eq!(inv.count(kind), 0, "{kind}");
    }
    assert!(cloud.unhandled().is_empty(), "{:?}", cloud.unhandled());
}

#[test]
fn security_group_rules_duplicates_and_bulk() {
    let cloud = FakeCloud::start(Config::default());
    let s = Session::new(&cloud);
    let net = s.url("network");
    let sg = cloud.add_security_group("acura-nodes", "");
    let rule = json!({"security_group_rule": {"security_group_id": sg, "direction": "ingress", "ethertype": "IPv4",
        "protocol": "tcp", "port_range_min": 22, "port_range_max": "22", "remote_ip_prefix": "0.0.0.0/0"}});
    let (st, r) = s.call(
        "POST",
        &format!("{net}/v2.0/security-group-rules"),
        Some(rule.clone()),
    );
    assert_eq!(st, 201);
    let rid = r["security_group_rule"]["id"].as_str().unwrap().to_string();
    assert_eq!(r["security_group_rule"]["port_range_max"], 22);
    // Same rule, protocol by number and no prefix: still a duplicate.
    let dup = json!({"security_group_rule": {"security_group_id": sg, "direction": "ingress", "ethertype": "IPv4",
        "protocol": "6", "port_range_min": 22, "port_range_max": 22, "description": "other"}});
    let (st, e) = s.call(
        "POST",
        &format!("{net}/v2.0/security-group-rules"),
        Some(dup),
    );
    assert_eq!(st, 409);
    assert_eq!(e["NeutronError"]["type"], "SecurityGroupRuleExists");
    assert_eq!(
        e["NeutronError"]["message"],
        format!("Security group rule already exists. Rule id is {rid}.")
    );
    assert_eq!(e["NeutronError"]["detail"], "");
    // Two remotes: 400.
    let both = json!({"security_group_rule": {"security_group_id": sg, "direction": "ingress",
        "remote_group_id": sg, "remote_ip_prefix": "10.0.0.0/24"}});
    let (st, e) = s.call(
        "POST",
        &format!("{net}/v2.0/security-group-rules"),
        Some(both),
    );
    assert_eq!(st, 400);
    assert_eq!(
        e["NeutronError"]["type"],
        "SecurityGroupMultipleRemoteEntites"
    );
    // Bulk.
    let bulk = json!({"security_group_rules": [
        {"security_group_id": sg, "direction": "ingress", "protocol": "tcp", "port_range_min": 443, "port_range_max": 443, "remote_group_id": sg},
        {"security_group_id": sg, "direction": "ingress", "protocol": "udp", "port_range_min": 12201, "port_range_max": 12201, "remote_ip_prefix": "10.0.0.5"}]});
    let (st, r) = s.call(
        "POST",
        &format!("{net}/v2.0/security-group-rules"),
        Some(bulk),
    );
    assert_eq!(st, 201);
    assert_eq!(r["security_group_rules"].as_array().unwrap().len(), 2);
    assert_eq!(
        r["security_group_rules"][1]["remote_ip_prefix"],
        "10.0.0.5/32"
    );
    let (_, l) = s.call(
        "GET",
        &format!("{net}/v2.0/security-group-rules?security_group_id={sg}"),
        None,
    );
    assert_eq!(l["security_group_rules"].as_array().unwrap().len(), 5);
    // Tags and the tag filter.
    assert_eq!(
        s.call(
            "PUT",
            &format!("{net}/v2.0/security-groups/{sg}/tags/acura-ha%2Fcluster%3Dc1"),
            None
        )
        .0,
        201
    );
    let (_, l) = s.call(
        "GET",
        &format!("{net}/v2.0/security-groups?tags=acura-ha/cluster=c1"),
        None,
    );
    assert_eq!(l["security_groups"].as_array().unwrap().len(), 1);
    assert!(cloud.unhandled().is_empty(), "{:?}", cloud.unhandled());
}

#[test]
fn lost_response_creates_but_client_sees_connection_error() {
    let cloud = FakeCloud::start(Config::default());
    let s = Session::new(&cloud);
    cloud.add_fault(FaultRule::new(
        "POST",
        "/v2.0/security-groups$",
        FaultAction::LostResponse,
    ));
    let url = format!("{}/v2.0/security-groups", s.url("network"));
    let err = s
        .req(
            "POST",
            &url,
            Some(json!({"security_group": {"name": "lost"}})),
        )
        .expect_err("the response must be lost");
    assert!(!err.is_status(), "{err:?}");
    let (_, l) = s.call("GET", &format!("{url}?name=lost"), None);
    assert_eq!(
        l["security_groups"].as_array().unwrap().len(),
        1,
        "created anyway"
    );
    // The rule fired once: the next create answers.
    assert_eq!(
        s.call(
            "POST",
            &url,
            Some(json!({"security_group": {"name": "ok"}}))
        )
        .0,
        201
    );
}

#[test]
fn status_faults_delay_and_unhandled() {
    let cloud = FakeCloud::start(Config::default());
    let s = Session::new(&cloud);
    let compute = s.url("compute");
    cloud.add_fault(
        FaultRule::new(
            "GET",
            "/flavors/detail$",
            FaultAction::Status {
                status: 429,
                retry_after: Some(2.into()),
                body: None,
            },
        )
        .skip(1)
        .times(1),
    );
    assert_eq!(
        s.call("GET", &format!("{compute}/flavors/detail"), None).0,
        200
    );
    let resp = s
        .req("GET", &format!("{compute}/flavors/detail"), None)
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "2");
    let body: Value = resp.json().unwrap();
    assert_eq!(body["overLimit"]["code"], 429);
    assert_eq!(
        s.call("GET", &format!("{compute}/flavors/detail"), None).0,
        200
    );

    cloud.add_fault(FaultRule::new(
        "GET",
        "/os-keypairs$",
        FaultAction::Delay { ms: 200 },
    ));
    let t = Instant::now();
    assert_eq!(
        s.call("GET", &format!("{compute}/os-keypairs"), None).0,
        200
    );
    assert!(t.elapsed() >= Duration::from_millis(200));
    cloud.clear_faults();

    // The admin routes drive the same state.
    let admin = Client::new();
    let rules = json!([{"method": "POST", "path": "/v2\\.0/floatingips$", "times": 1,
        "action": {"type": "status", "status": 503}}]);
    let r = admin
        .post(format!("{}/__fake/faults", cloud.base_url()))
        .json(&rules)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    let net = cloud.network_id("public").unwrap();
    let fip = json!({"floatingip": {"floating_network_id": net}});
    let (st, e) = s.call(
        "POST",
        &format!("{}/v2.0/floatingips", s.url("network")),
        Some(fip.clone()),
    );
    assert_eq!(st, 503);
    assert_eq!(e["NeutronError"]["type"], "ServiceUnavailable");
    let (st, f) = s.call(
        "POST",
        &format!("{}/v2.0/floatingips", s.url("network")),
        Some(fip),
    );
    assert_eq!(st, 201);
    assert_eq!(f["floatingip"]["floating_ip_address"], "172.24.4.10");
    let inv: Value = admin
        .get(format!("{}/__fake/inventory", cloud.base_url()))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(inv["kinds"]["floating_ips"], json!(["172.24.4.10"]));
    let st: Value = admin
        .get(format!("{}/__fake/stats", cloud.base_url()))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(st["mutating"].as_u64().unwrap() >= 2);

    let (st, body) = s.call("GET", &format!("{compute}/os-hypervisors"), None);
    assert_eq!(st, 501);
    assert!(
        body.to_string()
            .contains("GET /compute/v2.1/os-hypervisors")
    );
    assert_eq!(
        cloud.unhandled(),
        vec!["GET /compute/v2.1/os-hypervisors".to_string()]
    );
    let stats = cloud.stats();
    assert_eq!(stats.per_route["GET /compute/v2.1/flavors/detail"], 3);
    assert_eq!(stats.token_requests, 1);
}

#[test]
fn quota_exceeded_shapes() {
    let cfg = Config {
        quotas: Quotas {
            instances: 1,
            security_group: 2,
            load_balancer: 0,
            ..Quotas::default()
        },
        ..Config::default()
    };
    let cloud = FakeCloud::start(cfg);
    let s = Session::new(&cloud);
    cloud.add_keypair("acura", "ssh-ed25519 AAAA k");
    cloud.add_security_group("acura-nodes", "");
    assert_eq!(boot(&s, &cloud, "n1").0, 202);
    let (st, e) = boot(&s, &cloud, "n2");
    assert_eq!(st, 403);
    assert_eq!(
        e["forbidden"]["message"],
        "Quota exceeded for instances: Requested 1, but already used 1 of 1 instances"
    );

    let (st, e) = s.call(
        "POST",
        &format!("{}/v2.0/security-groups", s.url("network")),
        Some(json!({"security_group": {"name": "third"}})),
    );
    assert_eq!(st, 409);
    assert_eq!(e["NeutronError"]["type"], "OverQuota");

    let (st, e) = s.call(
        "POST",
        &format!("{}/v2/lbaas/loadbalancers", s.url("load-balancer")),
        Some(json!({"loadbalancer": {"name": "lb", "vip_network_id": cloud.network_id("acura-net")}})),
    );
    assert_eq!(st, 403);
    assert_eq!(
        e["faultstring"],
        "Quota has been met for resources: Load Balancer"
    );

    cloud.add_fault(FaultRule::new(
        "POST",
        "/volumes$",
        FaultAction::QuotaExceeded,
    ));
    let (st, e) = s.call(
        "POST",
        &format!("{}/volumes", s.url("volumev3")),
        Some(json!({"volume": {"size": 200}})),
    );
    assert_eq!(st, 413);
    assert_eq!(e["overLimit"]["code"], 413);

    let (_, q) = s.call(
        "GET",
        &format!("{}/v2.0/quotas/p/details.json", s.url("network")),
        None,
    );
    assert_eq!(q["quota"]["security_group"]["used"], 2);
    assert_eq!(q["quota"]["security_group"]["limit"], 2);
    let (_, q) = s.call(
        "GET",
        &format!("{}/os-quota-sets/p?usage=true", s.url("volumev3")),
        None,
    );
    assert_eq!(q["quota_set"]["gigabytes"]["in_use"], 200);
    let (_, q) = s.call(
        "GET",
        &format!("{}/v2/lbaas/quotas/p", s.url("load-balancer")),
        None,
    );
    assert_eq!(q["quota"]["load_balancer"], 0);
    assert!(cloud.unhandled().is_empty(), "{:?}", cloud.unhandled());
}

/// Follows `next` (a `*_links` entry or Glance's top-level `next`) to the end; returns every
/// page's body.
fn all_pages(s: &Session, first: &str, key: &str, image_base: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut url = first.to_string();
    loop {
        let (st, v) = s.call("GET", &url, None);
        assert_eq!(st, 200, "{url}: {v}");
        pages.push(v.clone());
        let linked = v[format!("{key}_links")]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| l["rel"] == "next")
            .map(|l| l["href"].as_str().unwrap().to_string());
        let glance = v["next"].as_str().map(|p| format!("{image_base}{p}"));
        match linked.or(glance) {
            Some(next) => url = next,
            None => return pages,
        }
        assert!(pages.len() < 20, "no end to the pages of {first}");
    }
}

fn ids_of(pages: &[Value], key: &str, id: &str) -> Vec<String> {
    pages
        .iter()
        .flat_map(|p| p[key].as_array().unwrap().clone())
        .map(|x| x.pointer(id).unwrap().as_str().unwrap().to_string())
        .collect()
}

#[test]
fn lists_are_paged_as_each_service_pages_them() {
    let cloud = FakeCloud::start(Config {
        page_size: Some(2),
        ..Config::default()
    });
    let s = Session::new(&cloud);
    let compute = s.url("compute");
    let image = s.url("image");

    // Nova: 4 flavors, 2 a page; a full page has a `next` link (absolute), so the last full
    // page is followed by an empty one without links.
    let pages = all_pages(&s, &format!("{compute}/flavors/detail"), "flavors", "");
    assert_eq!(
        pages
            .iter()
            .map(|p| p["flavors"].as_array().unwrap().len())
            .collect::<Vec<_>>(),
        vec![2, 2, 0]
    );
    assert_eq!(
        ids_of(&pages, "flavors", "/name"),
        ["m1.small", "m1.large", "m1.xlarge", "m1.2xlarge"]
    );
    let next = pages[0]["flavors_links"][0]["href"].as_str().unwrap();
    assert!(
        next.starts_with(&format!("{compute}/flavors/detail?")),
        "{next}"
    );
    assert!(
        next.contains("limit=2") && next.contains("marker=4"),
        "{next}"
    );
    assert!(pages[2].get("flavors_links").is_none(), "{}", pages[2]);
    // `limit` asks for less, never more than the page size.
    let (_, one) = s.call("GET", &format!("{compute}/flavors/detail?limit=1"), None);
    assert_eq!(one["flavors"].as_array().unwrap().len(), 1);
    let (_, many) = s.call("GET", &format!("{compute}/flavors/detail?limit=1000"), None);
    assert_eq!(many["flavors"].as_array().unwrap().len(), 2);
    let (st, _) = s.call("GET", &format!("{compute}/flavors/detail?limit=x"), None);
    assert_eq!(st, 400);

    // Glance: a top-level `next` path under the image endpoint that keeps the query.
    let pages = all_pages(
        &s,
        &format!("{image}/v2/images?visibility=public"),
        "images",
        &image,
    );
    assert_eq!(ids_of(&pages, "images", "/id").len(), 5);
    assert_eq!(pages.len(), 3);
    let next = pages[0]["next"].as_str().unwrap();
    assert!(
        next.starts_with("/v2/images?visibility=public&limit=2&marker="),
        "{next}"
    );
    assert!(pages[2].get("next").is_none());

    // Neutron: `next` and, after a marker, `previous`; filters stay in the links.
    for i in 0..3 {
        cloud.add_security_group(&format!("sg-{i}"), "");
    }
    let network = s.url("network");
    let pages = all_pages(
        &s,
        &format!("{network}/v2.0/security-groups?description="),
        "security_groups",
        "",
    );
    let mut names = ids_of(&pages, "security_groups", "/name");
    names.sort();
    assert_eq!(names, ["sg-0", "sg-1", "sg-2"]); // "default" has a description
    let next = pages[0]["security_groups_links"][0]["href"]
        .as_str()
        .unwrap();
    assert!(next.contains("description=&"), "{next}");
    assert!(
        pages[1]["security_groups_links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["rel"] == "previous"),
        "{}",
        pages[1]
    );

    // Nova key pairs: the marker is the name.
    for n in ["kp-a", "kp-b", "kp-c"] {
        cloud.add_keypair(n, "ssh-ed25519 AAAA x");
    }
    let pages = all_pages(&s, &format!("{compute}/os-keypairs"), "keypairs", "");
    assert_eq!(
        ids_of(&pages, "keypairs", "/keypair/name"),
        ["kp-a", "kp-b", "kp-c"]
    );
    assert!(
        pages[0]["keypairs_links"][0]["href"]
            .as_str()
            .unwrap()
            .contains("marker=kp-b")
    );

    // Nova server groups: `limit` and `offset`, no links.
    for n in ["g1", "g2", "g3"] {
        let (st, _) = s.call(
            "POST",
            &format!("{compute}/os-server-groups"),
            Some(json!({"server_group": {"name": n, "policy": "soft-anti-affinity"}})),
        );
        assert_eq!(st, 200);
    }
    let (_, p1) = s.call("GET", &format!("{compute}/os-server-groups"), None);
    let (_, p2) = s.call("GET", &format!("{compute}/os-server-groups?offset=2"), None);
    assert_eq!(p1["server_groups"].as_array().unwrap().len(), 2);
    assert_eq!(p2["server_groups"][0]["name"], "g3");
    assert!(p1.get("server_groups_links").is_none());

    // Octavia: `*_links` always, empty on the last page.
    let (_, lbs) = s.call(
        "GET",
        &format!("{}/v2/lbaas/loadbalancers", s.url("load-balancer")),
        None,
    );
    assert_eq!(lbs["loadbalancers_links"], json!([]));

    // The admin route changes the page size at run time; `null` is unlimited.
    let admin = Client::new();
    let r = admin
        .put(format!("{}/__fake/page_size", cloud.base_url()))
        .json(&json!({"page_size": null}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    let (_, all) = s.call("GET", &format!("{compute}/flavors/detail"), None);
    assert_eq!(all["flavors"].as_array().unwrap().len(), 4);
    assert!(all.get("flavors_links").is_none());
    assert!(cloud.unhandled().is_empty());
}

#[test]
fn tokens_expire_and_can_be_revoked() {
    let cloud = FakeCloud::start(Config {
        token_lifetime_ms: 90_000,
        ..Config::default()
    });
    let s = Session::new(&cloud);
    let compute = s.url("compute");
    assert_eq!(s.call("GET", &format!("{compute}/flavors"), None).0, 200);
    // expires_at - issued_at is the configured lifetime.
    let (issued, expires) = (s.times.0.as_str(), s.times.1.as_str());
    assert!(issued.ends_with('Z') && issued.len() == "2015-08-26T19:49:58.000000Z".len());
    let secs = |t: &str| -> f64 {
        let hms = &t[11..t.len() - 1];
        let p: Vec<f64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
        p[0] * 3600.0 + p[1] * 60.0 + p[2]
    };
    let lifetime = (secs(expires) - secs(issued)).rem_euclid(86400.0);
    assert!((lifetime - 90.0).abs() < 0.001, "{issued} {expires}");

    // An expired token: 401 in Keystone's envelope.
    cloud.set_token_lifetime(Duration::ZERO);
    let expired = Session::new(&cloud);
    let (st, e) = expired.call("GET", &format!("{compute}/flavors"), None);
    assert_eq!(st, 401);
    assert_eq!(e["error"]["code"], 401);
    // The first token still works; a revoked one does not.
    assert_eq!(s.call("GET", &format!("{compute}/flavors"), None).0, 200);
    cloud.set_token_lifetime(Duration::from_secs(3600));
    let fresh = Session::new(&cloud);
    cloud.add_fault(FaultRule::new(
        "GET",
        "/flavors$",
        FaultAction::TokenRevoked,
    ));
    assert_eq!(
        fresh.call("GET", &format!("{compute}/flavors"), None).0,
        401
    );
    assert_eq!(
        fresh.call("GET", &format!("{compute}/flavors"), None).0,
        401
    );
    assert_eq!(s.call("GET", &format!("{compute}/flavors"), None).0, 200);
    cloud.revoke_tokens();
    assert_eq!(s.call("GET", &format!("{compute}/flavors"), None).0, 401);
    assert_eq!(cloud.stats().unauthorized, 4);

    // A Retry-After given as text is sent as it is.
    let s = Session::new(&cloud);
    cloud.add_fault(FaultRule::new(
        "GET",
        "/flavors$",
        FaultAction::Status {
            status: 503,
            retry_after: Some("Wed, 21 Oct 2015 07:28:00 GMT".to_string().into()),
            body: None,
        },
    ));
    let resp = s.req("GET", &format!("{compute}/flavors"), None).unwrap();
    assert_eq!(
        resp.headers()["retry-after"],
        "Wed, 21 Oct 2015 07:28:00 GMT"
    );
}

/// Octavia's fully populated create: one POST makes the load balancer with its listeners,
/// pools, health monitors and members, all PENDING_CREATE with their IDs in the answer's graph,
/// then ACTIVE with the load balancer; a graph with a bad child makes nothing; a cloud set to
/// refuse it answers 501 and makes nothing.
#[test]
fn octavia_full_create_makes_the_graph_in_one_call() {
    let delays = Delays {
        lb_create: 300,
        ..Delays::default()
    };
    let cloud = FakeCloud::start(Config {
        delays,
        ..Config::default()
    });
    let s = Session::new(&cloud);
    let lbs = format!("{}/v2/lbaas/loadbalancers", s.url("load-balancer"));
    let subnet = cloud.subnet_id("acura-subnet").unwrap();
    let graph = |udp_monitor: &str| {
        json!({"loadbalancer": {"name": "full", "vip_subnet_id": subnet, "listeners": [
            {"name": "l80", "protocol": "TCP", "protocol_port": 80, "default_pool": {
                "name": "p80", "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN",
                "healthmonitor": {"type": "TCP", "delay": 5, "timeout": 3, "max_retries": 3},
                "members": [{"name": "n1", "address": "10.0.0.10", "protocol_port": 80},
                            {"name": "n2", "address": "10.0.0.11", "protocol_port": 80}]}},
            {"name": "l12201", "protocol": "UDP", "protocol_port": 12201, "default_pool": {
                "name": "p12201", "protocol": "UDP", "lb_algorithm": "ROUND_ROBIN",
                "healthmonitor": {"type": udp_monitor, "delay": 5, "timeout": 3, "max_retries": 3},
                "members": [{"name": "n1", "address": "10.0.0.10", "protocol_port": 12201}]}}
        ]}})
    };
    // A health monitor Octavia refuses for a UDP pool: nothing of the graph stays.
    let (st, _) = s.call("POST", &lbs, Some(graph("HTTPS")));
    assert_eq!(st, 400);
    assert_eq!(cloud.inventory().count("load_balancers"), 0);

    let (st, v) = s.call("POST", &lbs, Some(graph("UDP-CONNECT")));
    assert_eq!(st, 201, "{v}");
    let lb = &v["loadbalancer"];
    assert_eq!(lb["provisioning_status"], "PENDING_CREATE");
    let listeners = lb["listeners"].as_array().unwrap();
    let pools = lb["pools"].as_array().unwrap();
    assert_eq!((listeners.len(), pools.len()), (2, 2), "{v:#}");
    for l in listeners {
        assert_eq!(l["provisioning_status"], "PENDING_CREATE");
        let pool = l["default_pool"]["id"].as_str().unwrap();
        assert!(pools.iter().any(|p| p["id"] == pool), "{v:#}");
    }
    let p80 = pools.iter().find(|p| p["name"] == "p80").unwrap();
    assert_eq!(p80["members"].as_array().unwrap().len(), 2, "{v:#}");
    assert!(p80["healthmonitor"]["id"].as_str().is_some(), "{v:#}");
    let pid = p80["id"].as_str().unwrap();
    let id = lb["id"].as_str().unwrap();
    // A child change while the graph is PENDING_CREATE: 409, as Octavia.
    let (st, _) = s.call(
        "POST",
        &format!("{}/v2/lbaas/pools/{pid}/members", s.url("load-balancer")),
        Some(json!({"member": {"address": "10.0.0.12", "protocol_port": 80}})),
    );
    assert_eq!(st, 409);
    wait_for("the load balancer ACTIVE", || {
        s.call("GET", &format!("{lbs}/{id}"), None).1["loadbalancer"]["provisioning_status"]
            == "ACTIVE"
    });
    let (_, m) = s.call(
        "GET",
        &format!("{}/v2/lbaas/pools/{pid}/members", s.url("load-balancer")),
        None,
    );
    let members = m["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    assert!(
        members.iter().all(|x| x["provisioning_status"] == "ACTIVE"),
        "{m:#}"
    );

    // A cloud whose Octavia refuses the graph: 501, nothing made; a plain create still works.
    let refusing = FakeCloud::start(Config {
        cloud: fake_openstack::CloudTraits {
            octavia_refuses_full_create: true,
            ..Default::default()
        },
        ..Config::default()
    });
    let r = Session::new(&refusing);
    let lbs = format!("{}/v2/lbaas/loadbalancers", r.url("load-balancer"));
    let (st, e) = r.call("POST", &lbs, Some(graph("UDP-CONNECT")));
    assert_eq!(st, 501, "{e}");
    assert_eq!(refusing.inventory().count("load_balancers"), 0);
    let subnet = refusing.subnet_id("acura-subnet").unwrap();
    let plain = json!({"loadbalancer": {"name": "plain", "vip_subnet_id": subnet}});
    assert_eq!(r.call("POST", &lbs, Some(plain)).0, 201);
}
