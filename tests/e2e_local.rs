//! End to end on this machine: `up` on the local target (hosts are network namespaces with their
//! own sshd), then `status`, `plan`, a second `up`, and `down` leaving nothing behind; and the
//! same bootstrap through `[static]` against hosts the test made itself. The archive is the
//! stand-in in examples/archive, whose playbooks record what they received on each host.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::lab::{Lab, ok, text};
use common::{example, walk};
use serde_json::Value;

fn json_file(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// What the guide's Steps 5 and 6 pass, as the stand-in playbooks recorded it on each node.
fn assert_guide_variables(
    lab: &Lab,
    nodes: &[(String, String)],
    lb_address: &str,
    overlays: &[&str],
) {
    let names: Vec<&str> = nodes.iter().map(|(n, _)| n.as_str()).collect();
    for (name, address) in nodes {
        let k8s = json_file(&lab.home_file(name, ".acura-standin/k8s-master.json"));
        assert_eq!(k8s["inventory_hostname"], name.as_str());
        assert_eq!(
            k8s["fact_hostname"],
            name.as_str(),
            "the host's own hostname"
        );
        assert_eq!(k8s["ansible_host"], address.as_str());
        assert_eq!(k8s["ansible_ssh_user"], "root");
        assert_eq!(k8s["lb_address"], lb_address);
        assert_eq!(k8s["logstash_host"], "");
        assert_eq!(k8s["ansible_python_interpreter"], "/usr/bin/python3");
        assert_eq!(k8s["master_token_given"], false);
        let play: Vec<&str> = k8s["play_hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(play, names);

        let acura = json_file(&lab.home_file(name, ".acura-standin/ha-acura.json"));
        assert_eq!(acura["ansible_ssh_user"], "root");
        let list: Vec<&str> = acura["overlay_list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(list, overlays);
        assert_eq!(acura["copy_patch"], "true");
        assert_eq!(acura["copy_ca"], "true");
        assert_eq!(acura["update_cluster"], Value::Null);
    }
}

const DR_OVERLAYS: &[&str] = &[
    "overlay/ha.yaml",
    "overlay/golden-image.yml",
    "overlay/distr-dr.yaml",
    "overlay/startup_reconfigure.yaml",
];

fn netns_list() -> String {
    String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned()
}

#[test]
fn local_target_up_status_down() {
    let lab = Lab::new("e2e-local", 70, 3);
    // A become password (the guide's -K) reaches Ansible only through a 0600 file deleted after
    // the run: it must appear in no output, log or state.
    let secret = "s3cret-become-7f1c9e";
    let (out, err) = ok(&lab.run_env(&["up", "--yes"], &[("ACURA_HA_BECOME_PASSWORD", secret)]));
    assert!(
        !out.contains(secret) && !err.contains(secret),
        "the become password was printed"
    );
    for entry in walk(&lab.state_dir) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(secret),
            "the become password is in {}",
            entry.display()
        );
    }

    // The preflight table: one line per host, all passing.
    assert!(out.contains("HOST") && out.contains("RESULT"), "{out}");
    for k in 1..=3 {
        let (name, address) = lab.node(k);
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no preflight line for {name}\n{out}"));
        assert!(line.contains(&address) && line.contains(" ok"), "{line}");
    }
    // The NGINX load balancer was proven: every listener, TCP and UDP, reached every node.
    let nodes: Vec<(String, String)> = (1..=3).map(|k| lab.node(k)).collect();
    for listener in [
        "tcp/80",
        "tcp/443",
        "tcp/4443",
        "tcp/6443",
        "udp/12201",
        "tcp/15000",
    ] {
        let line = err
            .lines()
            .find(|l| l.contains(&format!(" {listener} reaches ")))
            .unwrap_or_else(|| panic!("no proof for {listener}\n{err}"));
        for (name, _) in &nodes {
            assert!(
                line.contains(name.as_str()),
                "{listener} did not reach {name}: {line}"
            );
        }
    }
    // Both playbooks ran with exactly the guide's variables.
    let (_, lb_address) = lab.lb();
    assert_guide_variables(&lab, &nodes, &lb_address, DR_OVERLAYS);
    // The summary names the initial-configuration URL.
    assert!(out.contains(&format!("https://{lb_address}:4443")), "{out}");

    // Every step is recorded; plan shows nothing to do; a second up changes nothing.
    let (state_json, _) = ok(&lab.run(&["state", "show", "--output", "json"]));
    let state: Value = serde_json::from_str(&state_json).unwrap();
    let steps: BTreeSet<&str> = state["state"]["steps"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        steps,
        [
            "ha-acura",
            "ha_env_file",
            "k8s-master",
            "nginx",
            "post-checks",
            "preflight"
        ]
        .into_iter()
        .collect()
    );
    let plan = lab.run(&["plan"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan).0);
    let (again, told) = ok(&lab.run(&["up", "--yes", "--output", "json"]));
    assert!(told.contains("Nothing to do"), "{told}");
    // `up --output json` streams one event per line; the closing summary carries the report.
    let last = again.lines().last().unwrap_or_default();
    let summary: Value = serde_json::from_str(last).expect("up --output json: a summary line");
    assert_eq!(summary["type"], "summary", "{again}");
    assert_eq!(summary["exit_code"], 0, "{again}");
    assert_eq!(summary["result"]["changed"], false, "{again}");

    // status: every host answers, Kubernetes (the stand-in) is Ready, every TCP listener accepts.
    let (status_json, _) = ok(&lab.run(&["status", "--output", "json"]));
    let status: Value = serde_json::from_str(&status_json).unwrap();
    assert_eq!(status["healthy"], true, "{status_json}");
    assert_eq!(status["hosts"].as_array().unwrap().len(), 4);
    assert!(
        status["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["ssh"] == "ok")
    );
    assert_eq!(
        status["kubernetes"]["nodes_ready"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // The UDP listener is no longer "not checked": its socket is bound on the NGINX host (#13.9).
    let udp = status["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["listener"].as_str().unwrap().ends_with("udp/12201"))
        .expect("the UDP listener");
    assert!(
        udp["state"]
            .as_str()
            .unwrap()
            .starts_with("listening (NGINX on "),
        "{udp}"
    );

    // down: nothing is left — namespaces, links, the safety route, processes, files.
    let names = {
        let spec = acura_ha::config::load(&lab.config).unwrap().spec;
        acura_ha_local::lab_names(&spec, &lab.cluster_dir())
    };
    let pids: Vec<String> = names
        .hosts
        .iter()
        .filter_map(|h| std::fs::read_to_string(&h.sshd_pid_file).ok())
        .map(|p| p.trim().to_string())
        .collect();
    assert_eq!(pids.len(), 4, "every host had a running sshd");
    ok(&lab.run(&["down", "--yes"]));
    let ns = netns_list();
    assert!(!ns.contains("ah-e2e-local-"), "namespaces left: {ns}");
    let links = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["-o", "link"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(!links.contains(&names.bridge), "bridge left: {links}");
    let routes = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["route", "show", "table", "all"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(!routes.contains("10.213.70."), "routes left: {routes}");
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}/exe")).exists() || pid_is_zombie(&pid),
            "sshd {pid} still runs"
        );
    }
    let left: Vec<String> = std::fs::read_dir(lab.cluster_dir())
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        left.iter().all(|f| f == "logs"),
        "files left in the cluster directory: {left:?}"
    );
    let (state_json, _) = ok(&lab.run(&["state", "show", "--output", "json"]));
    let state: Value = serde_json::from_str(&state_json).unwrap();
    assert_eq!(state["state"]["resources"].as_array().unwrap().len(), 0);
}

fn pid_is_zombie(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.split(") ")
                .nth(1)
                .is_some_and(|rest| rest.starts_with('Z'))
        })
        .unwrap_or(true)
}

#[test]
fn static_provider_bootstraps_hosts_the_test_made() {
    // Bare hosts, made through the local target and then used as "your own VMs".
    let lab = Lab::new("e2e-hosts", 72, 3);
    ok(&lab.run(&["up", "--only", "provision", "--yes"]));
    let nodes: Vec<(String, String)> = (1..=3).map(|k| lab.node(k)).collect();
    let (lb_name, lb_address) = lab.lb();
    let node_lines: String = nodes
        .iter()
        .map(|(n, a)| format!("  {{ name = \"{n}\", address = \"{a}\" }},\n"))
        .collect();
    let file = format!(
        r#"[cluster]
name = "e2e-static"
product = "dr"

[nodes]
count = 3

[load_balancer]
kind = "nginx"

[access]
admin_cidrs = ["10.213.72.1/32"]
public_cidrs = ["10.213.72.0/24"]
ssh_user = "root"
ssh_private_key = "{key}"

[bootstrap]
archive = "{archive}"

[preflight]
dns_name = "{first}"
ssh_wait_secs = 20

[preflight.minimums]
root_gb = 1
ram_gb = 1
vcpus = 1
single_partition = false
os_releases = ["debian 12"]

[static]
nodes = [
{node_lines}]
lb = {{ name = "{lb_name}", address = "{lb_address}" }}
"#,
        key = lab.key().display(),
        archive = example("archive").display(),
        first = nodes[0].0,
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("static.toml");
    std::fs::write(&config, file).unwrap();
    let run = |args: &[&str]| {
        common::acura_ha()
            .args(args)
            .arg("-c")
            .arg(&config)
            .env("ACURA_HA_CACHE", common::tools_venv().parent().unwrap())
            .output()
            .unwrap()
    };
    let (out, _) = ok(&run(&["up", "--yes"]));
    assert!(out.contains("use     existing_host[e2e-hosts-1]"), "{out}");
    assert_guide_variables(&lab, &nodes, &lb_address, DR_OVERLAYS);
    // First contact pinned every host's key in the static cluster's own known_hosts.
    let pinned =
        std::fs::read_to_string(dir.path().join(".acura-ha/e2e-static/known_hosts")).unwrap();
    for (_, a) in nodes.iter().chain([&(lb_name.clone(), lb_address.clone())]) {
        assert!(
            pinned.lines().any(|l| l.starts_with(&format!("{a} "))),
            "{a} not pinned:\n{pinned}"
        );
    }
    let status = run(&["status"]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status).0);
    // The static row of the plan contract (#9): after `up`, `plan` shows no resource change.
    let plan = run(&["plan", "--output", "json"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan).0);
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    for k in ["create", "replace", "delete"] {
        assert_eq!(plan["summary"][k], 0, "{k}: {}", plan["summary"]);
    }

    // down deletes nothing on the user's hosts: they still answer. In the cluster's directory
    // it removes what it wrote, and leaves (and names) a file of the user's (#9.5).
    let cluster_dir = dir.path().join(".acura-ha/e2e-static");
    std::fs::write(cluster_dir.join("my-notes.txt"), "mine").unwrap();
    let (out, err) = ok(&run(&["down", "--yes"]));
    assert!(out.contains("nothing is deleted on them"), "{out}");
    assert!(
        err.contains("kept") && err.contains("my-notes.txt"),
        "{err}"
    );
    let mut left: Vec<String> = std::fs::read_dir(&cluster_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["logs", "my-notes.txt"],
        "only the user's file and the logs stay"
    );
    ok(&lab.run(&["preflight"]));
}
