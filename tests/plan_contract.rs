//! `plan` is a contract: after `up`, it shows no resource change — for every kind a provider
//! records (pool members, floating IPs, …), on every load-balancer kind. Driven through the
//! binary against the fake OpenStack cloud (127.0.0.1, two items a page); `down` then returns
//! the cloud to where it started.

mod common;

use common::acura_ha;
use fake_openstack::{Config, FakeCloud};
use serde_json::Value;

/// examples/openstack.toml pointed at the fake cloud, edited by `edit`.
fn cluster_file(dir: &std::path::Path, edit: impl Fn(String) -> String) -> std::path::PathBuf {
    let public = dir.join("id.pub");
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(dir.join("id"))
        .output()
        .unwrap_or_else(|e| {
            panic!("ssh-keygen: {e} (install openssh-client: scripts/setup-test-deps.sh)")
        });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(common::example("openstack.toml"))
        .unwrap()
        .replace("cloud = \"mycloud\"", "cloud = \"fake\"")
        .replace(
            "public_key_file = \"~/.ssh/id_ed25519.pub\"",
            &format!("public_key_file = \"{}\"", public.display()),
        );
    let path = dir.join("cluster.toml");
    std::fs::write(&path, edit(text)).unwrap();
    path
}

fn run(dir: &std::path::Path, config: &std::path::Path, args: &[&str]) -> std::process::Output {
    acura_ha()
        .args(args)
        .arg("-c")
        .arg(config)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .env("OS_CLIENT_CONFIG_FILE", dir.join("clouds.yaml"))
        .output()
        .unwrap()
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
        let fake = FakeCloud::start(Config {
            page_size: Some(2),
            ..Config::default()
        });
        let before = fake.inventory();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("clouds.yaml"), fake.clouds_yaml("fake")).unwrap();
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
