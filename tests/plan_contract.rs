//! `plan` is a contract: after `up`, it shows no resource change — for every kind a provider
//! records (pool members, floating IPs, …), on every load-balancer kind, and a second `up` makes
//! no mutating request (the fake cloud counts them). Driven through the
//! binary against the fake OpenStack cloud (127.0.0.1, two items a page); `down` then returns
//! the cloud to where it started.

mod common;

use common::fake_cloud;
use serde_json::Value;

/// examples/openstack.toml pointed at the fake cloud, edited by `edit`.
fn cluster_file(dir: &std::path::Path, edit: impl Fn(String) -> String) -> std::path::PathBuf {
    let text = fake_cloud::cluster_text(&dir.join("id"));
    let path = dir.join("cluster.toml");
    std::fs::write(&path, edit(text)).unwrap();
    path
}

fn run(dir: &std::path::Path, config: &std::path::Path, args: &[&str]) -> std::process::Output {
    fake_cloud::run(dir, &dir.join("state"), config, args)
}

/// What a variant is, and how it edits the example.
type Variant = (&'static str, fn(String) -> String);

#[test]
fn openstack_plan_after_up_shows_no_change_on_every_lb_kind() {
    let variants: [Variant; 3] = [
        ("octavia with floating IPs (the example)", |t| t),
        ("octavia without floating IPs", |t| {
            t.replace("floating_ip_network = \"public\"\n", "")
        }),
        ("an NGINX server with floating IPs", |t| {
            t.replace("kind = \"cloud\"", "kind = \"nginx\"")
                .replace("anti_affinity", "lb_flavor = \"m1.small\"\nanti_affinity")
        }),
    ];
    // The variants are independent clouds: run them side by side.
    std::thread::scope(|scope| {
        for (what, edit) in variants {
            scope.spawn(move || check_variant(what, edit));
        }
    });
}

fn check_variant(what: &str, edit: fn(String) -> String) {
    {
        let dir = tempfile::tempdir().unwrap();
        let fake = fake_cloud::start(dir.path());
        let before = fake.inventory();
        let config = cluster_file(dir.path(), edit);
        let up = run(dir.path(), &config, &["up", "--only", "provision", "--yes"]);
        assert!(
            up.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&up.stderr)
        );
        let plan = run(dir.path(), &config, &["plan", "--output", "json"]);
        let doc: Value = serde_json::from_slice(&plan.stdout).unwrap();
        let changed: Vec<String> = doc["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| !matches!(r["action"].as_str(), Some("keep" | "use")))
            .map(|r| format!("{} {}", r["action"], r["address"]))
            .collect();
        assert!(changed.is_empty(), "{what}: plan after up: {changed:#?}");
        assert_eq!(doc["summary"]["create"], 0, "{what}");
        assert_eq!(doc["summary"]["delete"], 0, "{what}");
        assert_eq!(doc["summary"]["replace"], 0, "{what}");
        // A second `up` makes no mutating call at all (#9: the matrix): it reads the cloud,
        // finds everything as wanted, and creates, updates and deletes nothing.
        fake.reset_stats();
        let again = run(dir.path(), &config, &["up", "--only", "provision", "--yes"]);
        assert!(
            again.status.success(),
            "{what}: the second up: {}",
            String::from_utf8_lossy(&again.stderr)
        );
        let stats = fake.stats();
        assert!(stats.total > 0, "{what}: the second up read nothing");
        let mutating: Vec<(&String, &u64)> = stats
            .per_route
            .iter()
            .filter(|(route, _)| !route.starts_with("GET ") && !route.starts_with("HEAD "))
            .filter(|(route, _)| route.as_str() != "POST /identity/v3/auth/tokens")
            .collect();
        assert_eq!(
            stats.mutating, 0,
            "{what}: the second up changed the cloud: {mutating:?}"
        );
        let down = run(dir.path(), &config, &["down", "--yes"]);
        assert!(
            down.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&down.stderr)
        );
        assert_eq!(
            fake.inventory(),
            before,
            "{what}: down leaves what was there"
        );
        assert!(
            fake.unhandled().is_empty(),
            "{what}: {:?}",
            fake.unhandled()
        );
    }
}

/// Refresh (issue 9, item 3): after `up`, a listener deleted and an SSH rule from anywhere added
/// by hand outside the tool show in `plan` (exit 2) with their reasons; `--refresh=false` does
/// not see them and says so; `up` repairs both and the next `plan` is clean.
#[test]
fn drift_outside_the_tool_shows_in_plan_and_up_repairs_it() {
    use acura_ha_openstack::client::{Service, Session};
    let dir = tempfile::tempdir().unwrap();
    // Kept to the end of the test: the cloud stops when it is dropped.
    let _fake = fake_cloud::start(dir.path());
    let config = cluster_file(dir.path(), |t| {
        t.replace("floating_ip_network = \"public\"\n", "")
    });
    let up = run(dir.path(), &config, &["up", "--only", "provision", "--yes"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );

    // Outside the tool, as an operator's openstack CLI would.
    let state: Value = serde_json::from_slice(
        &std::fs::read(
            std::fs::read_dir(dir.path().join("state"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.to_string_lossy().ends_with(".state.json"))
                .expect("a state file"),
        )
        .unwrap(),
    )
    .unwrap();
    let id_of = |kind: &str| {
        let r = state["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == kind)
            .unwrap();
        (
            r["address"].as_str().unwrap().to_string(),
            r["id"].as_str().unwrap().to_string(),
        )
    };
    let (listener, listener_id) = id_of("listener");
    let (_, group) = id_of("security_group");
    let spec = acura_ha::config::load(&config).unwrap().spec;
    let env: std::collections::BTreeMap<String, String> = [(
        "OS_CLIENT_CONFIG_FILE".to_string(),
        dir.path().join("clouds.yaml").display().to_string(),
    )]
    .into_iter()
    .collect();
    let cfg = acura_ha_openstack::OpenStackProvider::new(dir.path().to_path_buf())
        .env(env)
        .cloud_config(&spec)
        .unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let s = Session::connect(&cfg).await.unwrap();
        s.delete(
            Service::LoadBalancer,
            &format!("/lbaas/listeners/{listener_id}"),
        )
        .await
        .unwrap();
        s.send(
            reqwest::Method::POST,
            Service::Network,
            "/security-group-rules",
            &serde_json::json!({"security_group_rule": {
                "security_group_id": group, "direction": "ingress", "ethertype": "IPv4",
                "protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
                "remote_ip_prefix": "0.0.0.0/0"}}),
        )
        .await
        .unwrap();
    });

    let plan = run(dir.path(), &config, &["plan", "--output", "json"]);
    assert_eq!(
        plan.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    let doc: Value = serde_json::from_slice(&plan.stdout).unwrap();
    let changed: Vec<(String, String, String)> = doc["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !matches!(r["action"].as_str(), Some("keep" | "use")))
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_string(),
                r["address"].as_str().unwrap().to_string(),
                r["reasons"][0].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        changed.contains(&(
            "create".into(),
            listener.clone(),
            "deleted outside acura-ha".into()
        )),
        "{changed:#?}"
    );
    assert!(
        changed.iter().any(|(a, addr, why)| a == "delete"
            && addr.starts_with("security_group_rule[outside-")
            && why == "added outside acura-ha"),
        "{changed:#?}"
    );

    let offline = run(
        dir.path(),
        &config,
        &["plan", "--output", "json", "--refresh=false"],
    );
    let doc: Value = serde_json::from_slice(&offline.stdout).unwrap();
    // The state alone sees no resource change (the bootstrap steps are pending either way).
    assert_eq!(resource_changes(&doc), 0, "{doc:#}");
    assert!(
        doc["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("--refresh=false")),
        "{doc:#}"
    );

    let up = run(dir.path(), &config, &["up", "--only", "provision", "--yes"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let plan = run(dir.path(), &config, &["plan", "--output", "json"]);
    let doc: Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(resource_changes(&doc), 0, "after the repair: {doc:#}");
    let down = run(dir.path(), &config, &["down", "--yes"]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
}

/// Creates, replaces and deletes in a JSON plan.
fn resource_changes(plan: &Value) -> u64 {
    let s = &plan["summary"];
    ["create", "replace", "delete"]
        .iter()
        .map(|k| s[k].as_u64().unwrap())
        .sum()
}

/// A changed flavor (issue 9, item 2): the plan replaces each node and says `up` does it one
/// at a time through the `node replace` path. `up --no-replace` keeps the old refusal (AH004,
/// naming the commands) and changes nothing; `up --only provision` converges everything else,
/// changes nothing either, and leaves the nodes recorded as they are in the cloud, so the plan
/// still shows them (their replacement joins a node: a full `up` does it, tests/up_replace.rs).
#[test]
fn a_changed_flavor_is_replaced_by_up_one_node_at_a_time_and_no_replace_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_cloud::start(dir.path());
    let config = cluster_file(dir.path(), |t| t);
    let up = run(dir.path(), &config, &["up", "--only", "provision", "--yes"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );

    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("flavor = \"m1.xlarge\""), "{text}");
    std::fs::write(
        &config,
        text.replace("flavor = \"m1.xlarge\"", "flavor = \"m1.2xlarge\""),
    )
    .unwrap();
    let replaced_nodes = || {
        let plan = run(dir.path(), &config, &["plan", "--output", "json"]);
        let doc: Value = serde_json::from_slice(&plan.stdout).unwrap();
        let mut names = Vec::new();
        for r in doc["resources"].as_array().unwrap() {
            if r["action"] != "replace" {
                continue;
            }
            assert_eq!(r["kind"], "instance", "{r:#}");
            assert_eq!(r["replace_cause"], "changed", "{r:#}");
            let reasons = r["reasons"].to_string();
            assert!(reasons.contains("m1.2xlarge"), "{reasons}");
            assert!(
                reasons.contains("up replaces it one node at a time"),
                "{reasons}"
            );
            names.push(r["name"].as_str().unwrap().to_string());
        }
        names
    };
    let names = replaced_nodes();
    assert_eq!(names.len(), 3, "{names:?}");

    fake.reset_stats();
    let up = run(dir.path(), &config, &["up", "--no-replace", "--yes"]);
    let err = String::from_utf8_lossy(&up.stderr);
    assert!(!up.status.success(), "{err}");
    assert!(err.contains("AH004"), "{err}");
    for n in &names {
        assert!(err.contains(&format!("node replace {n} -c")), "{n}: {err}");
    }
    assert_eq!(
        fake.stats().mutating,
        0,
        "up --no-replace changed the cloud: {err}"
    );

    let up = run(dir.path(), &config, &["up", "--only", "provision", "--yes"]);
    let (out, err) = (
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr),
    );
    assert!(up.status.success(), "{out}\n{err}");
    assert!(out.contains("3 node(s) still to replace"), "{out}");
    assert_eq!(
        fake.stats().mutating,
        0,
        "provisioning replaced a node: {err}"
    );
    assert_eq!(
        replaced_nodes(),
        names,
        "the state must not claim the new flavor for servers that still run the old one"
    );

    std::fs::write(&config, text).unwrap();
    let down = run(dir.path(), &config, &["down", "--yes"]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
}

/// Ownership (issue 9, item 4): a second state with the same cluster file in the same project
/// is refused at `up` before it changes anything, naming a resource of the first; its
/// `down --discover` leaves the first cluster untouched, which then still plans clean.
#[test]
fn a_second_state_of_the_same_cluster_name_is_refused_and_its_down_leaves_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_cloud::start(dir.path());
    let config = cluster_file(dir.path(), |t| t);
    let up = run(dir.path(), &config, &["up", "--only", "provision", "--yes"]);
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let first = fake.inventory();

    // The same file from another state directory: another operator, another lineage.
    let other = tempfile::tempdir().unwrap();
    let run_other =
        |args: &[&str]| fake_cloud::run(dir.path(), &other.path().join("state"), &config, args);
    fake.reset_stats();
    let refused = run_other(&["up", "--only", "provision", "--yes"]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{err}");
    assert!(err.contains("acura-ha/lineage"), "{err}");
    assert!(err.contains("another state owns a cluster"), "{err}");
    assert_eq!(
        fake.stats().mutating,
        0,
        "the refused up changed the cloud: {err}"
    );

    let down = run_other(&["down", "--discover", "--yes"]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert_eq!(
        fake.inventory(),
        first,
        "the second state's down touched the first cluster"
    );

    let plan = run(dir.path(), &config, &["plan", "--output", "json"]);
    let doc: Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(resource_changes(&doc), 0, "{doc:#}");
    let down = run(dir.path(), &config, &["down", "--yes"]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
}
