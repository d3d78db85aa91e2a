//! `up` carries out the node replacements its plan shows (issue 9, item 2): a changed flavor
//! replaces every node, one at a time, through the `node replace` path — out of Kubernetes and
//! the REAL etcd of the stand-in archive, its VM deleted, a new one created, joined and Ready —
//! and only then the next. Stopped at the first failure, it says how the cluster stands and the
//! command that finishes the job; that command, then `up` again, finishes all of it.
//!
//! Through the OpenStack provider against the fake cloud (tests/fake-openstack, 127.0.0.1),
//! whose servers get the addresses of bare local-target hosts (network namespaces with sshd,
//! made by `up --only provision` of a local lab), as tests/e2e_openstack.rs does. Traffic goes
//! only to 127.0.0.0/8 and the lab's namespaces.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::acura_ha;
use common::lab::{Lab, ok, text};
use fake_openstack::{Config, FakeCloud, FaultAction, FaultRule, NetworkSpec};
use serde_json::Value;

const NAME: &str = "e2e-upr";

struct OsCluster {
    dir: tempfile::TempDir,
    config: PathBuf,
    clouds: PathBuf,
}

impl OsCluster {
    fn run(&self, args: &[&str]) -> Output {
        acura_ha()
            .args(args)
            .arg("-c")
            .arg(&self.config)
            .arg("--state-dir")
            .arg(self.state_dir())
            .env("OS_CLIENT_CONFIG_FILE", &self.clouds)
            .env("ACURA_HA_CACHE", common::tools_venv().parent().unwrap())
            .output()
            .unwrap()
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
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

/// The public half of the lab's key, for the cloud's key pair.
fn public_key(lab: &Lab, dir: &Path) -> PathBuf {
    let key = lab.key();
    let public = dir.join("id_ed25519.pub");
    let out = Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&key)
        .output()
        .unwrap_or_else(|e| panic!("ssh-keygen: {e} (run sudo scripts/setup-test-deps.sh)"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&public, out.stdout).unwrap();
    public
}

fn cluster_file(lab: &Lab, public: &Path, flavor: &str) -> String {
    format!(
        r#"[cluster]
name = "{NAME}"
product = "dr"

[nodes]
count = 3
hostname_prefix = "{NAME}"
volume_size_gb = 200
os_version = "20.04"

[load_balancer]
kind = "nginx"

[access]
admin_cidrs = ["10.213.124.1/32"]
public_cidrs = ["10.213.124.0/24"]
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
flavor = "{flavor}"
image = "ubuntu-20.04"
network = "acura-net"
public_key_file = "{public}"
lb_flavor = "m1.small"
"#,
        key = lab.key().display(),
        archive = common::example("archive").display(),
        preflight = preflight_section(lab),
        public = public.display(),
    )
}

/// The control plane's etcd member names, asked through `via` with the certificates the
/// stand-in playbook made there (the etcds listen only on the lab addresses).
fn members(lab: &Lab, via: &(String, String)) -> BTreeSet<String> {
    let pki = |f: &str| {
        lab.home_file(&via.0, &format!(".acura-standin/pki/etcd/{f}"))
            .display()
            .to_string()
    };
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.namespace(&via.0),
            "env",
            "ETCDCTL_API=3",
        ])
        .arg("etcdctl")
        .arg(format!("--endpoints=https://{}:2379", via.1))
        .args(["--cacert", &pki("ca.crt"), "--cert", &pki("peer.crt")])
        .args(["--key", &pki("peer.key"), "--command-timeout=5s"])
        .args(["member", "list"])
        .output()
        .unwrap();
    let (stdout, _) = ok(&out);
    stdout
        .lines()
        .filter_map(|l| l.split(", ").nth(2).map(str::to_string))
        .collect()
}

fn names(hosts: &[&(String, String)]) -> BTreeSet<String> {
    hosts.iter().map(|h| h.0.clone()).collect()
}

/// The events of a run streamed with `--output json` (one JSON object a line).
fn events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}\n{stdout}")))
        .collect()
}

/// The day-2 steps of a run, in order: `remove X started`, `join Y done`, …
fn node_steps(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "step")
        .filter_map(|e| {
            let id = e["id"].as_str()?;
            (id.starts_with("remove ") || id.starts_with("join "))
                .then(|| format!("{id} {}", e["state"].as_str().unwrap_or("?")))
        })
        .collect()
}

fn steps_of(pairs: &[(&str, &str)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(old, new)| {
            [
                format!("remove {old} started"),
                format!("remove {old} done"),
                format!("join {new} started"),
                format!("join {new} done"),
            ]
        })
        .collect()
}

/// The recorded instances: name -> flavor.
fn recorded_flavors(os: &OsCluster) -> BTreeMap<String, String> {
    let (state, _) = ok(&os.run(&["state", "show", "--output", "json"]));
    let v: Value = serde_json::from_str(&state).unwrap_or_else(|e| panic!("{e}: {state}"));
    v["state"]["resources"]
        .as_array()
        .unwrap_or_else(|| panic!("no resources: {v:#}"))
        .iter()
        .filter(|r| r["kind"] == "instance")
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["attrs"]["flavor"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// What a failed run leaves to read: the stand-in's logs on `hosts`, the run's own logs.
fn diagnostics(lab: &Lab, os: &OsCluster, hosts: &[(String, String)]) -> String {
    let mut out = String::new();
    for (h, _) in hosts {
        for f in ["apiserver.log", "etcd.log"] {
            let p = lab.home_file(h, &format!(".acura-standin/{f}"));
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            out.push_str(&format!("--- {h} {f}\n"));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
    }
    let logs = os.state_dir().join(NAME).join("logs");
    for f in common::walk(&logs) {
        if f.to_string_lossy().contains("join") {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            out.push_str(&format!("--- {}\n{text}\n", f.display()));
        }
    }
    out
}

#[test]
fn up_replaces_changed_nodes_one_at_a_time_through_the_node_replace_path() {
    // Seven bare lab hosts: the cluster's three, and three for their replacements.
    let lab = Lab::new(NAME, 124, 7);
    ok(&lab.run(&["up", "--only", "provision", "--yes"]));
    let n: Vec<(String, String)> = (1..=7).map(|k| lab.node(k)).collect();
    let (lb_name, lb_address) = lab.lb();

    // The fake cloud's tenant network is the lab's subnet: each server gets its host's address.
    let mut by_server: BTreeMap<String, String> = n[..6].iter().cloned().collect();
    by_server.insert(lb_name.clone(), lb_address.clone());
    let mut cfg = Config::default();
    let net = cfg
        .networks
        .iter_mut()
        .find(|x| x.name == "acura-net")
        .expect("acura-net");
    *net = NetworkSpec {
        name: "acura-net".into(),
        subnet_name: "acura-subnet".into(),
        cidr: "10.213.124.0/24".into(),
        external: false,
        address_pool: by_server.values().cloned().collect(),
        addresses_by_server: by_server,
    };
    let fake = FakeCloud::start(cfg);
    assert!(fake.base_url().starts_with("http://127.0.0.1:"));
    let before = fake.inventory();

    let dir = tempfile::tempdir().unwrap();
    let clouds = dir.path().join("clouds.yaml");
    std::fs::write(&clouds, fake.clouds_yaml("fake")).unwrap();
    let public = public_key(&lab, dir.path());
    let config = dir.path().join("openstack.toml");
    std::fs::write(&config, cluster_file(&lab, &public, "m1.xlarge")).unwrap();
    let os = OsCluster {
        dir,
        config: config.clone(),
        clouds,
    };
    ok(&os.run(&["up", "--yes"]));
    assert_eq!(members(&lab, &n[0]), names(&[&n[0], &n[1], &n[2]]));

    // A bigger flavor: the plan replaces each node, says how, and runs no bootstrap step again.
    std::fs::write(&config, cluster_file(&lab, &public, "m1.2xlarge")).unwrap();
    let plan = os.run(&["plan", "--output", "json"]);
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan).1);
    let doc: Value = serde_json::from_slice(&plan.stdout).unwrap();
    let replaced: Vec<&Value> = doc["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "replace")
        .collect();
    assert_eq!(replaced.len(), 3, "{doc:#}");
    for r in &replaced {
        assert_eq!(r["kind"], "instance", "{r:#}");
        assert_eq!(r["replace_cause"], "changed", "{r:#}");
        let reasons = r["reasons"].to_string();
        assert!(reasons.contains("m1.xlarge -> m1.2xlarge"), "{reasons}");
        assert!(reasons.contains("one node at a time"), "{reasons}");
    }
    assert_eq!(doc["summary"]["steps_to_run"], 0, "{doc:#}");

    // The old behaviour on request: refused, every command named, nothing changed.
    fake.reset_stats();
    let refused = os.run(&["up", "--no-replace", "--yes"]);
    let (_, err) = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(err.contains("AH004"), "{err}");
    for h in &n[..3] {
        assert!(err.contains(&format!("node replace {} -c", h.0)), "{err}");
    }
    assert_eq!(
        fake.stats().mutating,
        0,
        "up --no-replace changed the cloud"
    );

    // The stand-in keeps its "pods" per node, on the nodes where ha-acura ran; a real cluster
    // shows them from every control-plane node. Once the file's nodes are all replaced, the
    // live node that waits for them is a joined one: the spare hosts get the same list.
    let pods = std::fs::read(lab.home_file(&n[0].0, ".acura-standin/pods.json")).unwrap();
    for h in &n[3..6] {
        let p = lab.home_file(&h.0, ".acura-standin/pods.json");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &pods).unwrap();
    }

    // The second new server does not fit the project's quota (a bigger flavor): `up` replaces
    // the first node, removes the second, fails to create its successor and stops there.
    fake.add_fault(FaultRule {
        method: Some("POST".into()),
        path: "/servers$".into(),
        body_contains: Some(format!("\"{}\"", n[4].0)),
        skip: 0,
        times: None,
        action: FaultAction::QuotaExceeded,
    });
    let failed = os.run(&["up", "--yes", "--output", "json"]);
    let (out, err) = text(&failed);
    assert_eq!(failed.status.code(), Some(1), "{out}\n{err}");
    let ev = events(&out);
    let mut want = steps_of(&[(&n[0].0, &n[3].0)]);
    want.push(format!("remove {} started", n[1].0));
    want.push(format!("remove {} done", n[1].0));
    assert_eq!(node_steps(&ev), want, "{err}");
    let error = ev
        .iter()
        .find(|e| e["type"] == "error")
        .unwrap_or_else(|| panic!("no error event: {out}"));
    let standing = format!(
        "now stands at 2 node(s): {}, {}; removed: {}; {} is not a member yet",
        n[2].0, n[3].0, n[1].0, n[4].0
    );
    let message = error["message"].as_str().unwrap();
    assert!(message.contains(&standing), "{error:#}");
    let help = error["help"].as_str().unwrap_or_default();
    let finish = help
        .split_once("): ")
        .unwrap_or_else(|| panic!("no finishing command: {help}"))
        .1
        .trim();
    // The program's path is left aside: a test binary rebuilt meanwhile in a shared target
    // directory reads as "… (deleted)".
    let args: Vec<&str> = finish
        .split_once(" node add ")
        .unwrap_or_else(|| panic!("the command that finishes the job adds a node: {finish}"))
        .1
        .split_whitespace()
        .collect();
    assert_eq!(
        args,
        [
            "-c",
            &config.display().to_string(),
            "--state-dir",
            &os.state_dir().display().to_string()
        ],
        "{finish}"
    );
    assert!(
        err.contains(&format!("{} keeps its old attributes", n[2].0)),
        "up says what is left: {err}"
    );
    // The third node was not touched: still a member, its server still there.
    assert_eq!(members(&lab, &n[2]), names(&[&n[2], &n[3]]));
    assert_eq!(
        fake.inventory().names("servers"),
        vec![n[2].0.clone(), n[3].0.clone(), lb_name.clone()]
    );

    // The quota raised: the printed command finishes the job, and `up` then replaces the rest.
    fake.clear_faults();
    let done = common::acura_ha_std()
        .args(["node", "add"])
        .args(&args)
        .arg("--yes")
        .env("OS_CLIENT_CONFIG_FILE", &os.clouds)
        .env("ACURA_HA_CACHE", common::tools_venv().parent().unwrap())
        .output()
        .unwrap();
    let (out, err) = ok(&done);
    assert!(out.contains(&format!("{} joined", n[4].0)), "{out}\n{err}");
    assert_eq!(members(&lab, &n[2]), names(&[&n[2], &n[3], &n[4]]));

    let last = os.run(&["up", "--yes", "--output", "json"]);
    if !last.status.success() {
        eprintln!("{}", diagnostics(&lab, &os, &n[2..6]));
    }
    let (out, err) = ok(&last);
    let ev = events(&out);
    assert_eq!(
        node_steps(&ev),
        steps_of(&[(&n[2].0, &n[5].0)]),
        "only the node left: {err}"
    );
    let summary = ev.last().unwrap();
    assert_eq!(summary["type"], "summary", "{summary:#}");
    assert_eq!(
        summary["result"]["replaced"],
        serde_json::json!([{"old": n[2].0, "new": n[5].0}]),
        "{summary:#}"
    );
    assert_eq!(members(&lab, &n[3]), names(&[&n[3], &n[4], &n[5]]));
    assert_eq!(
        fake.inventory().names("servers"),
        vec![n[3].0.clone(), n[4].0.clone(), n[5].0.clone(), lb_name]
    );
    let flavors = recorded_flavors(&os);
    assert_eq!(
        flavors,
        n[3..6]
            .iter()
            .map(|h| (h.0.clone(), "m1.2xlarge".to_string()))
            .collect(),
        "the state records what the cloud has"
    );
    let plan = os.run(&["plan"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan).0);
    let (status, _) = ok(&os.run(&["status", "--output", "json"]));
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["healthy"], true, "{status:#}");
    assert!(fake.unhandled().is_empty(), "{:?}", fake.unhandled());

    ok(&os.run(&["down", "--yes"]));
    assert_eq!(fake.inventory(), before);
}
