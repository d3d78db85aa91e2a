//! End to end through the OpenStack provider: the fake cloud (tests/fake-openstack, on
//! 127.0.0.1) hands the servers it "creates" the addresses of bare local-target hosts (network
//! namespaces with sshd, made by `up --only provision` of a local lab), so `acura-ha up` on an
//! OpenStack cluster file provisions in the fake cloud, then bootstraps those hosts over SSH with
//! the stand-in archive; `status`, `plan`, and `down` returning the cloud to where it started.
//! Traffic goes only to 127.0.0.0/8 and the lab's namespaces.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::lab::{Lab, ok, text};
use common::{acura_ha, example};
use fake_openstack::{Config, FakeCloud, NetworkSpec};
use serde_json::Value;

fn json_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

struct OsCluster<'a> {
    lab: &'a Lab,
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    clouds: std::path::PathBuf,
}

impl OsCluster<'_> {
    fn run(&self, args: &[&str]) -> std::process::Output {
        acura_ha()
            .args(args)
            .arg("-c")
            .arg(&self.config)
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .env("OS_CLIENT_CONFIG_FILE", &self.clouds)
            .env("ACURA_HA_CACHE", common::tools_venv().parent().unwrap())
            .output()
            .unwrap()
    }
}

/// The local lab's preflight section (relaxed minimums, the lab resolver's name).
fn preflight_section(lab: &Lab) -> String {
    let text = std::fs::read_to_string(&lab.config).unwrap();
    let start = text.find("[preflight]").expect("[preflight] in local.toml");
    let rest = &text[start..];
    let end = rest.find("\n[local]").unwrap_or(rest.len());
    rest[..end].to_string()
}

#[test]
fn openstack_fake_cloud_to_local_hosts_bootstrap() {
    let lab = Lab::new("e2e-os", 120, 3);
    ok(&lab.run(&["up", "--only", "provision", "--yes"]));
    let nodes: Vec<(String, String)> = (1..=3).map(|k| lab.node(k)).collect();
    let (lb_name, lb_address) = lab.lb();

    // The fake cloud's tenant network is the lab's subnet: each server gets its host's address.
    let mut by_server = BTreeMap::new();
    for (name, address) in nodes.iter().chain([&(lb_name.clone(), lb_address.clone())]) {
        by_server.insert(name.clone(), address.clone());
    }
    let mut cfg = Config::default();
    let net = cfg
        .networks
        .iter_mut()
        .find(|n| n.name == "acura-net")
        .expect("acura-net");
    *net = NetworkSpec {
        name: "acura-net".into(),
        subnet_name: "acura-subnet".into(),
        cidr: "10.213.120.0/24".into(),
        external: false,
        address_pool: nodes
            .iter()
            .map(|(_, a)| a.clone())
            .chain([lb_address.clone()])
            .collect(),
        addresses_by_server: by_server,
    };
    let fake = FakeCloud::start(cfg);
    assert!(fake.base_url().starts_with("http://127.0.0.1:"));
    let before = fake.inventory();

    let dir = tempfile::tempdir().unwrap();
    let clouds = dir.path().join("clouds.yaml");
    std::fs::write(&clouds, fake.clouds_yaml("fake")).unwrap();
    let key = lab.key();
    let public = dir.path().join("id_ed25519.pub");
    let pub_beside = key.with_extension("pub");
    if pub_beside.exists() {
        std::fs::copy(&pub_beside, &public).unwrap();
    } else {
        let out = std::process::Command::new("ssh-keygen")
            .arg("-y")
            .arg("-f")
            .arg(&key)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&public, out.stdout).unwrap();
    }
    let file = format!(
        r#"[cluster]
name = "e2e-os"
product = "dr"

[nodes]
count = 3
hostname_prefix = "e2e-os"
volume_size_gb = 200
os_version = "20.04"

[load_balancer]
kind = "nginx"

[access]
admin_cidrs = ["10.213.120.1/32"]
public_cidrs = ["10.213.120.0/24"]
ssh_user = "root"
ssh_private_key = "{key}"

[bootstrap]
archive = "{archive}"
logstash_host = ""
copy_patch = true
copy_ca = true

{preflight}

[openstack]
cloud = "fake"
flavor = "m1.xlarge"
image = "ubuntu-20.04"
network = "acura-net"
public_key_file = "{public}"
lb_flavor = "m1.small"
"#,
        key = key.display(),
        archive = example("archive").display(),
        preflight = preflight_section(&lab),
        public = public.display(),
    );
    let config = dir.path().join("openstack.toml");
    std::fs::write(&config, file).unwrap();
    let os = OsCluster {
        lab: &lab,
        dir,
        config,
        clouds,
    };

    let up = os.run(&["up", "--yes"]);
    let (out, err) = text(&up);
    assert!(up.status.success(), "up failed\n{out}\n{err}");
    // The cloud holds the cluster: three nodes and the NGINX VM, no Octavia.
    let inv = fake.inventory();
    assert_eq!(
        inv.names("servers"),
        vec!["e2e-os-1", "e2e-os-2", "e2e-os-3", "e2e-os-lb"],
        "{inv:?}"
    );
    assert_eq!(inv.count("load_balancers"), 0);
    // The bootstrap ran against the lab's hosts, with the NGINX VM's address as the LB.
    for (name, address) in &nodes {
        let k8s = json_file(&os.lab.home_file(name, ".acura-standin/k8s-master.json"));
        assert_eq!(k8s["inventory_hostname"], name.as_str());
        assert_eq!(k8s["ansible_host"], address.as_str());
        assert_eq!(k8s["lb_address"], lb_address.as_str());
    }

    let (status_json, _) = ok(&os.run(&["status", "--output", "json"]));
    let status: Value = serde_json::from_str(&status_json).unwrap();
    assert_eq!(status["healthy"], true, "{status_json}");
    let plan = os.run(&["plan"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan).0);
    assert!(fake.unhandled().is_empty(), "{:?}", fake.unhandled());

    ok(&os.run(&["down", "--yes"]));
    assert_eq!(fake.inventory(), before);
    assert!(fake.unhandled().is_empty(), "{:?}", fake.unhandled());
}

/// `status` on an Octavia cluster shows the load balancer's own view (#13.9): per listener each
/// node and its health, in `--output json` and in text, and a member the health monitor marks
/// ERROR is unhealthy and the cluster degraded (exit 3). Provisioned in the fake cloud (pages
/// of 2) with `up --only provision`; the tenant network is 127.0.0.0/24, so the SSH and
/// listener checks `status` also makes stay on this machine (they fail: no hosts there).
#[test]
fn status_shows_the_octavia_view_of_each_node() {
    let mut cfg = Config {
        page_size: Some(2),
        ..Config::default()
    };
    let net = cfg
        .networks
        .iter_mut()
        .find(|n| n.name == "acura-net")
        .expect("acura-net");
    net.cidr = "127.0.0.0/24".into();
    net.address_pool = (100..=120).map(|i| format!("127.0.0.{i}")).collect();
    let fake = FakeCloud::start(cfg);
    assert!(fake.base_url().starts_with("http://127.0.0.1:"));
    let dir = tempfile::tempdir().unwrap();
    let clouds = dir.path().join("clouds.yaml");
    std::fs::write(&clouds, fake.clouds_yaml("fake")).unwrap();
    std::fs::write(
        dir.path().join("id.pub"),
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq2bmgO5vLp2Wq5l2B6Cq9a1PZt0W8S8pQ0bW3pH2mL test\n",
    )
    .unwrap();
    let config = dir.path().join("openstack.toml");
    std::fs::write(
        &config,
        r#"[cluster]
name = "st-os"
[nodes]
count = 3
hostname_prefix = "st-os"
volume_size_gb = 200
[load_balancer]
kind = "cloud"
[access]
admin_cidrs = ["127.0.0.1/32"]
ssh_agent = true
[openstack]
cloud = "fake"
flavor = "m1.xlarge"
image = "ubuntu-20.04"
network = "acura-net"
public_key_file = "id.pub"
"#,
    )
    .unwrap();
    let run = |args: &[&str]| {
        acura_ha()
            .args(args)
            .arg("-c")
            .arg(&config)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .env("OS_CLIENT_CONFIG_FILE", &clouds)
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("OS_CLOUD")
            .output()
            .unwrap()
    };
    let status_json = |run: &dyn Fn(&[&str]) -> std::process::Output| {
        let out = run(&["status", "--output", "json"]);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(3), "degraded\n{stdout}\n{stderr}");
        let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
        assert_eq!(v["healthy"], false, "{stdout}");
        v
    };
    ok(&run(&["up", "--only", "provision", "--yes"]));
    let nodes = ["st-os-1", "st-os-2", "st-os-3"];

    let v = status_json(&run);
    let lb = &v["cloud_lb"];
    assert_eq!(lb["healthy"], true, "{v:#}");
    let listeners = lb["health"]["listeners"].as_array().expect("listeners");
    assert_eq!(listeners.len(), 6, "{lb:#}");
    for l in listeners {
        let targets: Vec<(&str, &str)> = l["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["target"].as_str().unwrap(), t["state"].as_str().unwrap()))
            .collect();
        assert_eq!(
            targets,
            nodes.iter().map(|n| (*n, "healthy")).collect::<Vec<_>>(),
            "{l:#}"
        );
    }
    // The UDP listener is the load balancer's to check (its UDP-CONNECT monitor).
    let udp = v["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["listener"].as_str().unwrap_or("").contains("12201"))
        .expect("the UDP listener");
    assert!(
        udp["state"]
            .as_str()
            .unwrap()
            .starts_with("checked by the load balancer: 3 of 3"),
        "{udp:#}"
    );

    // The health monitor marks the second node's members ERROR.
    let sick_address = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "st-os-2")
        .and_then(|h| h["address"].as_str())
        .expect("st-os-2 among the hosts")
        .to_string();
    fake.set_member_status(&sick_address, Some("ERROR"));
    let v = status_json(&run);
    let lb = &v["cloud_lb"];
    assert_eq!(lb["healthy"], false, "{lb:#}");
    for l in lb["health"]["listeners"].as_array().unwrap() {
        for t in l["targets"].as_array().unwrap() {
            let want = if t["target"] == "st-os-2" {
                "unhealthy"
            } else {
                "healthy"
            };
            assert_eq!(t["state"], want, "{l:#}");
        }
    }
    let out = run(&["status"]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(3));
    let row = stdout
        .lines()
        .find(|l| l.contains("tcp/443") && l.contains("st-os-2"))
        .unwrap_or_else(|| panic!("a row for st-os-2 on tcp/443:\n{stdout}"));
    assert!(
        row.contains("unhealthy") && row.contains("ERROR"),
        "{stdout}"
    );
    assert!(
        stdout.contains("cloud load balancer: active/degraded"),
        "{stdout}"
    );

    ok(&run(&["down", "--yes"]));
    assert!(fake.unhandled().is_empty(), "{:?}", fake.unhandled());
}
