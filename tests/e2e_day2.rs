//! Day 2 end to end on the local target, against the stand-in archive's REAL etcd clusters (a
//! 3-member v3 TLS control plane and Acura's v2 store, see examples/archive/README.md):
//! `update` rewrites `/overlay_list`; a killed host is removed from Kubernetes, etcd and the
//! NGINX upstreams (traffic through the load balancer proves it) and a second `node remove` is
//! a no-op; `node add` joins a new real etcd member without its three secrets appearing in any
//! output, log, state or `/proc/*/cmdline`; an interrupted `node replace` resumes.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::lab::{Lab, ok, text};
use common::walk;
use serde_json::Value;

const DR_OVERLAYS: &[&str] = &[
    "overlay/ha.yaml",
    "overlay/golden-image.yml",
    "overlay/distr-dr.yaml",
    "overlay/startup_reconfigure.yaml",
];
const EXTRA: &str = "overlay/big-heat-stack-timeout.yaml";

/// The report of a run streamed with `--output json`: the closing `summary` line's `result`
/// (every line is an event, tests/events.rs).
fn streamed_report(stdout: &str) -> Value {
    let last = stdout.lines().last().unwrap_or_default();
    let summary: Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last:?}\n{stdout}"));
    assert_eq!(summary["type"], "summary", "{summary}");
    assert_eq!(summary["exit_code"], 0, "{summary}");
    summary["result"].clone()
}

/// A command inside `host`'s network namespace (the etcds listen only on the lab addresses and
/// their ports are open only between cluster hosts).
fn in_ns(lab: &Lab, host: &str, argv: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", &lab.namespace(host), "env"])
        .args(argv)
        .output()
        .unwrap()
}

/// v3 `etcdctl` against `via`'s control-plane member, with the certificates the playbook made.
fn etcdctl(lab: &Lab, via: &(String, String), args: &[&str]) -> Output {
    let pki = |f: &str| {
        lab.home_file(&via.0, &format!(".acura-standin/pki/etcd/{f}"))
            .display()
            .to_string()
    };
    let endpoint = format!("--endpoints=https://{}:2379", via.1);
    let (ca, cert, key) = (pki("ca.crt"), pki("peer.crt"), pki("peer.key"));
    let mut argv = vec![
        "ETCDCTL_API=3",
        "etcdctl",
        endpoint.as_str(),
        "--cacert",
        ca.as_str(),
        "--cert",
        cert.as_str(),
        "--key",
        key.as_str(),
        "--command-timeout=5s",
    ];
    argv.extend_from_slice(args);
    in_ns(lab, &via.0, &argv)
}

/// The control plane's member names, asked through `via`.
fn member_names(lab: &Lab, via: &(String, String)) -> BTreeSet<String> {
    let out = etcdctl(lab, via, &["member", "list"]);
    let (stdout, _) = ok(&out);
    stdout
        .lines()
        .filter_map(|l| l.split(", ").nth(2).map(str::to_string))
        .collect()
}

/// Acura's store, read with the v2 API as the guide's `etcdctl get` does.
fn overlay_list(lab: &Lab, first: &(String, String)) -> Vec<String> {
    let endpoint = format!("--endpoints=http://{}:2479", first.1);
    let (out, _) = ok(&in_ns(
        lab,
        &first.0,
        &[
            "ETCDCTL_API=2",
            "etcdctl",
            endpoint.as_str(),
            "get",
            "/overlay_list",
        ],
    ));
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{out:?}: {e}"))
}

/// Kills every process in the host's namespace: the host "dies" (sshd, etcd, apiserver).
fn kill_host(lab: &Lab, host: &str) {
    let out = Command::new("ip")
        .args(["netns", "pids", &lab.namespace(host)])
        .output()
        .unwrap();
    let pids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert!(!pids.is_empty(), "{host} runs nothing");
    Command::new("kill")
        .arg("-KILL")
        .args(&pids)
        .status()
        .unwrap();
}

/// A TCP responder on `port` in a node's namespace that answers with the node's name.
struct Responder(std::process::Child);

impl Responder {
    fn start(lab: &Lab, node: &(String, String), port: u16) -> Responder {
        let script = format!(
            "import socket\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('{}',{port}));s.listen(64)\nwhile True:\n c,_=s.accept();c.sendall(b'{}\\n');c.close()\n",
            node.1, node.0
        );
        let child = Command::new("ip")
            .args(["netns", "exec", &lab.namespace(&node.0), "python3", "-c"])
            .arg(script)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let probe = in_ns(
                lab,
                &node.0,
                &[
                    "python3",
                    "-c",
                    &format!(
                        "import socket;socket.create_connection(('{}',{port}),1)",
                        node.1
                    ),
                ],
            );
            if probe.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "responder on {} did not start",
                node.0
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Responder(child)
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `n` connections through the load balancer's `port`, from the deploy side: who answered.
fn through_lb(lab: &Lab, port: u16, n: usize) -> Vec<String> {
    let (lb_name, lb) = lab.lb();
    let error_log = || {
        let p = lab
            .cluster_dir()
            .join("hosts")
            .join(&lb_name)
            .join("log-nginx")
            .join("error.log");
        std::fs::read_to_string(&p).unwrap_or_else(|e| format!("{}: {e}", p.display()))
    };
    (0..n)
        .map(|k| {
            let once = || -> std::io::Result<String> {
                let mut s = std::net::TcpStream::connect_timeout(
                    &format!("{lb}:{port}").parse().unwrap(),
                    Duration::from_secs(5),
                )?;
                s.set_read_timeout(Some(Duration::from_secs(15)))?;
                let mut reply = String::new();
                s.read_to_string(&mut reply)?;
                Ok(reply.trim().to_string())
            };
            once().unwrap_or_else(|e| {
                panic!(
                    "connection {k} through {lb}:{port}: {e}\n--- NGINX error.log\n{}",
                    error_log()
                )
            })
        })
        .collect()
}

fn nginx_conf(lab: &Lab) -> String {
    let (lb, _) = lab.lb();
    let p = lab
        .cluster_dir()
        .join("hosts")
        .join(&lb)
        .join("etc-nginx")
        .join("nginx.conf");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Collects every process's command line while a command runs.
struct CmdlineWatch {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<BTreeSet<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CmdlineWatch {
    fn start() -> CmdlineWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Arc<Mutex<BTreeSet<String>>> = Arc::default();
        let (s, w) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                    if let Ok(b) = std::fs::read(e.path().join("cmdline")) {
                        let line = String::from_utf8_lossy(&b).replace('\0', " ");
                        if !line.is_empty() {
                            w.lock().unwrap().insert(line);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        CmdlineWatch {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> BTreeSet<String> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// What the kubeadm stand-in issued (its test-only record on the node that ran it).
fn issued_secrets(lab: &Lab, live: &str) -> Vec<String> {
    let p = lab.home_file(live, ".acura-standin/issued.jsonl");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap();
        for k in ["token", "token_secret", "discovery_hash", "cert_key"] {
            if let Some(s) = v[k].as_str() {
                out.push(s.to_string());
            }
        }
    }
    assert!(out.len() >= 3, "{}: {text}", p.display());
    out
}

#[test]
fn update_remove_add_replace_on_real_etcd() {
    let lab = Lab::new("e2e-day2", 110, 3);
    let n: Vec<(String, String)> = (1..=5).map(|k| lab.node(k)).collect();
    ok(&lab.run(&["up", "--yes"]));
    assert_eq!(
        member_names(&lab, &n[0]),
        n[..3].iter().map(|(h, _)| h.clone()).collect()
    );
    assert_eq!(overlay_list(&lab, &n[0]), DR_OVERLAYS);

    // update: the real store gets the new list, the playbook gets it and update_cluster=true.
    // With --output json, stdout is the event stream ending with the report; the account of the
    // change is on stderr.
    let (out, err) = ok(&lab.run(&[
        "update",
        "--add-overlay",
        EXTRA,
        "--yes",
        "--output",
        "json",
    ]));
    assert!(err.contains(&format!("+ {EXTRA}")), "{err}");
    assert!(err.contains("ha-acura"), "{err}");
    let mut want: Vec<String> = DR_OVERLAYS.iter().map(|s| s.to_string()).collect();
    want.push(EXTRA.into());
    let report = streamed_report(&out);
    assert_eq!(report["after"], serde_json::json!(want), "{out}");
    assert_eq!(report["written"], true, "{out}");
    assert_eq!(overlay_list(&lab, &n[0]), want);
    for (host, _) in &n[..3] {
        let rec: Value = serde_json::from_str(
            &std::fs::read_to_string(lab.home_file(host, ".acura-standin/ha-acura.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(rec["update_cluster"], "true", "{host}: {rec}");
        assert_eq!(rec["overlay_list"], serde_json::json!(want), "{host}");
    }
    let plan = lab.run(&["plan"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan).0);

    // Traffic through the NGINX load balancer reaches all three nodes.
    let mut responders: Vec<Responder> = n[..3]
        .iter()
        .map(|h| Responder::start(&lab, h, 80))
        .collect();
    let seen: BTreeSet<String> = through_lb(&lab, 80, 9).into_iter().collect();
    assert_eq!(seen.len(), 3, "{seen:?}");

    // A host dies; `node remove` takes it out of Kubernetes, etcd and the load balancer.
    kill_host(&lab, &n[1].0);
    responders.remove(1);
    let refused = lab.run(&["node", "remove", &n[0].0]);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "a Ready node is not removed without --force"
    );
    assert!(
        text(&refused).1.contains("still Ready"),
        "{}",
        text(&refused).1
    );
    let (out, err) = ok(&lab.run(&["node", "remove", &n[1].0, "--yes", "--output", "json"]));
    assert!(err.contains("member remove"), "{err}");
    assert!(err.contains("even count"), "2 members left is said: {err}");
    assert!(err.contains("removed"), "{err}");
    let report = streamed_report(&out);
    assert_eq!(report["removed"], serde_json::json!([n[1].0]), "{out}");
    assert_eq!(
        member_names(&lab, &n[0]),
        [n[0].0.clone(), n[2].0.clone()].into_iter().collect()
    );
    ok(&etcdctl(&lab, &n[0], &["endpoint", "health", "--cluster"]));
    let conf = nginx_conf(&lab);
    assert!(!conf.contains(&format!("{}:", n[1].1)), "{conf}");
    let answers = through_lb(&lab, 80, 8);
    assert!(
        answers.iter().all(|a| *a == n[0].0 || *a == n[2].0),
        "{answers:?}"
    );
    // Again: nothing to do.
    let (again, _) = ok(&lab.run(&["node", "remove", &n[1].0, "--yes"]));
    assert!(again.contains("nothing to do"), "{again}");

    // node add: a new host, a new real etcd member, in the load balancer; secrets nowhere.
    let watch = CmdlineWatch::start();
    let added = lab.run(&["node", "add", "--yes", "--output", "json"]);
    let cmdlines = watch.finish();
    let (out, err) = ok(&added);
    assert!(err.contains(&format!("{} joined", n[3].0)), "{err}");
    let report = streamed_report(&out);
    assert_eq!(report["added"], serde_json::json!([n[3].0]), "{out}");
    assert_eq!(
        member_names(&lab, &n[0]),
        [n[0].0.clone(), n[2].0.clone(), n[3].0.clone()]
            .into_iter()
            .collect()
    );
    ok(&etcdctl(&lab, &n[0], &["endpoint", "health", "--cluster"]));
    let secrets = issued_secrets(&lab, &n[0].0);
    // The tool's files: state, logs, inventories, keys. Not `hosts/`: those are the lab hosts'
    // own filesystems (the stand-in's record of what it issued lives on the node that issued it).
    let hosts_dir = lab.cluster_dir().join("hosts");
    let mut files: Vec<_> = walk(&lab.state_dir)
        .into_iter()
        .filter(|f| !f.starts_with(&hosts_dir))
        .collect();
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().contains("k8s-master-join")),
        "the join run's log is among the files checked"
    );
    files.push(lab.config.clone());
    for s in &secrets {
        assert!(
            !out.contains(s) && !err.contains(s),
            "a join secret was printed"
        );
        for f in &files {
            let body = String::from_utf8_lossy(&std::fs::read(f).unwrap_or_default()).into_owned();
            assert!(!body.contains(s), "a join secret is in {}", f.display());
        }
        assert!(
            !cmdlines.iter().any(|c| c.contains(s)),
            "a join secret was on a command line"
        );
    }
    assert!(cmdlines.len() > 20, "the watch saw the run's processes");
    responders.push(Responder::start(&lab, &n[3], 80));
    let seen: BTreeSet<String> = through_lb(&lab, 80, 12).into_iter().collect();
    assert!(
        seen.contains(&n[3].0),
        "the LB sends to the new node: {seen:?}"
    );
    let (status, _) = ok(&lab.run(&["status", "--output", "json"]));
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["healthy"], true, "{status}");
    let plan = lab.run(&["plan"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan).0);

    // node replace, interrupted once the old node is gone, then run again.
    let mut child = common::acura_ha_std()
        .args(["node", "replace", &n[2].0, "--force", "--yes", "-c"])
        .arg(&lab.config)
        .arg("--state-dir")
        .arg(&lab.state_dir)
        .env("ACURA_HA_CACHE", common::tools_venv().parent().unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = String::new();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains("provision:") {
            Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status()
                .unwrap();
            break;
        }
    }
    for line in lines {
        log.push_str(&line.unwrap_or_default());
        log.push('\n');
    }
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(130), "interrupted after the removal:\n{log}");
    let (state, _) = ok(&lab.run(&["state", "show", "--output", "json"]));
    assert!(
        state.contains("\"pending\""),
        "the unfinished replace is recorded"
    );
    let (out, err) = ok(&lab.run(&["node", "replace", &n[2].0, "--force", "--yes"]));
    assert!(err.contains("resuming"), "{err}");
    assert!(out.contains(&format!("{} joined", n[4].0)), "{out}");
    assert_eq!(
        member_names(&lab, &n[0]),
        [n[0].0.clone(), n[3].0.clone(), n[4].0.clone()]
            .into_iter()
            .collect()
    );
    let plan = lab.run(&["plan"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan).0);
    drop(responders);

    // `down` forgets the day-2 record with the cluster: the next `up` follows the file again
    // (its three nodes), not the node set of the cluster that is gone.
    ok(&lab.run(&["down", "--yes"]));
    let (state, _) = ok(&lab.run(&["state", "show", "--output", "json"]));
    assert!(!state.contains("\"day2\""), "{state}");
    let (inventory, _) = ok(&lab.run(&["render", "inventory"]));
    let named: BTreeSet<String> = inventory
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| !w.starts_with('#') && !w.starts_with('['))
        .map(String::from)
        .collect();
    assert_eq!(
        named,
        n[..3].iter().map(|(h, _)| h.clone()).collect(),
        "{inventory}"
    );
    // And the next `up` makes exactly the file's hosts again (bare hosts are enough to tell):
    // the state's lab hosts, their namespaces and the inventory name the file's three nodes, not
    // the day-2 set (node 1, 4 and 5) of the cluster that is gone.
    ok(&lab.run(&["up", "--only", "provision", "--yes"]));
    let file_nodes: BTreeSet<String> = n[..3].iter().map(|(h, _)| h.clone()).collect();
    let (state, _) = ok(&lab.run(&["state", "show", "--output", "json"]));
    let state: Value = serde_json::from_str(&state).unwrap();
    let hosts: BTreeSet<String> = state["state"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "lab_host")
        .map(|r| r["name"].as_str().unwrap().to_string())
        .filter(|h| *h != lab.lb().0)
        .collect();
    assert_eq!(
        hosts, file_nodes,
        "the state's lab hosts after up: {state:#}"
    );
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let netns = String::from_utf8_lossy(&netns.stdout);
    for (host, _) in &n {
        assert_eq!(
            netns.contains(&lab.namespace(host)),
            file_nodes.contains(host),
            "{host}'s namespace after up: {netns}"
        );
    }
    let (inventory, _) = ok(&lab.run(&["render", "inventory"]));
    for (host, _) in &n {
        assert_eq!(
            inventory.contains(host.as_str()),
            file_nodes.contains(host),
            "{host} in the inventory after up: {inventory}"
        );
    }
    ok(&lab.run(&["down", "--yes"]));
    let _ = std::io::stderr().flush();
}

/// The README's local example on day 2 (issue 15.6): `node replace` of the FIRST node succeeds
/// (the example's DNS check names the load-balancer host, which day 2 never removes). Then a
/// replacement whose new host fails its preflight — after the old node is gone — says how the
/// cluster stands and the command that finishes the job; that command, run as printed (plus
/// `--yes`), finishes it.
#[test]
fn replace_the_first_node_then_finish_a_replacement_that_failed_after_the_removal() {
    let lab = Lab::new("e2e-first", 114, 3);
    let n: Vec<(String, String)> = (1..=5).map(|k| lab.node(k)).collect();
    ok(&lab.run(&["up", "--yes"]));
    let (out, err) = ok(&lab.run(&["node", "replace", &n[0].0, "--force", "--yes"]));
    assert!(out.contains(&format!("{} joined", n[3].0)), "{out}\n{err}");
    assert_eq!(
        member_names(&lab, &n[1]),
        [&n[1], &n[2], &n[3]].map(|h| h.0.clone()).into()
    );
    let plan = lab.run(&["plan"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan).0);

    // The new host fails its preflight: the file's minimums are raised after `up` (a day-2
    // command checks only the new host), so the failure comes after the old node's removal.
    let file = std::fs::read_to_string(&lab.config).unwrap();
    assert!(file.contains("ram_gb = 1\n"), "{file}");
    std::fs::write(&lab.config, file.replace("ram_gb = 1\n", "ram_gb = 4096\n")).unwrap();
    let failed = lab.run(&["node", "replace", &n[1].0, "--force", "--yes"]);
    let (out, err) = text(&failed);
    assert_eq!(failed.status.code(), Some(1), "{err}");
    assert!(
        err.contains("error[AH501]"),
        "the cause keeps its code: {err}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with(&format!("{} ", n[4].0)) && l.contains("FAIL")),
        "the preflight table says which host failed: {out}"
    );
    let standing = format!(
        "now stands at 2 node(s): {}, {}; removed: {}; {} is not a member yet",
        n[2].0, n[3].0, n[1].0, n[4].0
    );
    assert!(err.contains(&standing), "{err}");
    let help = err
        .lines()
        .find(|l| l.trim_start().starts_with("help:"))
        .unwrap_or_else(|| panic!("no help line: {err}"));
    let marker = format!("finish the job (it resumes adding {}): ", n[4].0);
    let finish = help
        .split_once(&marker)
        .unwrap_or_else(|| panic!("no finishing command: {help}"))
        .1
        .trim();
    let argv: Vec<&str> = finish.split_whitespace().collect();
    assert_eq!(
        argv[1..3],
        ["node", "add"],
        "the command that finishes the job: {finish}"
    );
    assert!(
        finish.contains(&format!("-c {}", lab.config.display()))
            && finish.contains(&format!("--state-dir {}", lab.state_dir.display())),
        "{finish}"
    );
    assert!(
        std::path::Path::new(argv[0]).is_file() || argv[0] == "acura-ha",
        "the program as it can be run: {finish}"
    );

    // Fixed (the minimums restored), the printed command finishes the job.
    std::fs::write(&lab.config, &file).unwrap();
    let done = Command::new(argv[0])
        .args(&argv[1..])
        .arg("--yes")
        .env("ACURA_HA_CACHE", common::tools_venv().parent().unwrap())
        .output()
        .unwrap();
    let (out, err) = ok(&done);
    assert!(err.contains("resuming"), "{err}");
    assert!(out.contains(&format!("{} joined", n[4].0)), "{out}");
    assert_eq!(
        member_names(&lab, &n[2]),
        [&n[2], &n[3], &n[4]].map(|h| h.0.clone()).into()
    );
    let plan = lab.run(&["plan"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan).0);
}
