//! The command surface: exit codes, errors that point at the file, plan against a state, the
//! state commands, completions.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use acura_ha::config::load;
use acura_ha::plan::{self, Action, StepAction};
use acura_ha::state::{State, StateStore, StepRecord};
use acura_ha_api::model::{Recorded, Status};
use common::{acura_ha, example};
use predicates::str::contains;

/// A state as `up` would leave it after applying `plan` completely.
fn applied_state(config: &Path, state_dir: &Path) -> (StateStore, State) {
    let cfg = load(config).unwrap();
    let store = StateStore::for_config(&cfg, Some(state_dir));
    let p = plan::build(
        &cfg.spec,
        None,
        &acura_ha::bootstrap::paths(&cfg, &store.cluster_dir()),
    );
    let mut st = State::new(&cfg.spec.cluster.name, p.provider);
    for c in p.resources.iter().filter(|c| c.action == Action::Create) {
        st.resources.push(Recorded {
            address: c.resource.address.clone(),
            kind: c.resource.kind,
            name: c.resource.name.clone(),
            id: Some(format!("id-{}", c.resource.address)),
            status: Status::Ready,
            attrs: c.resource.attrs.clone(),
            outputs: BTreeMap::new(),
            created_at: "2026-11-30T00:00:00Z".into(),
        });
    }
    for s in &p.bootstrap {
        st.steps.insert(
            s.id.to_string(),
            StepRecord {
                completed_at: "2026-11-30T00:00:00Z".into(),
                inputs: s.inputs.clone(),
            },
        );
    }
    store.save(&mut st).unwrap();
    (store, st)
}

fn copy_example(name: &str, dir: &Path) -> std::path::PathBuf {
    let to = dir.join(name);
    std::fs::copy(example(name), &to).unwrap();
    to
}

#[test]
fn plan_without_changes_exits_0_and_with_changes_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = copy_example("static.toml", dir.path());
    let st = dir.path().join("state");
    applied_state(&cfg, &st);
    acura_ha()
        .args(["plan", "-c"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(&st)
        .assert()
        .code(0)
        .stdout(contains("0 bootstrap steps to run"));

    // Switching the product changes Step 6's overlay list: that step must run again.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("product = \"migration\"", "product = \"dr\"");
    std::fs::write(&cfg, text).unwrap();
    let out = acura_ha()
        .args(["plan", "-c"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(&st)
        .args(["--output", "json"])
        .assert()
        .code(2)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let steps: Vec<(&str, &str)> = v["bootstrap"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["action"].as_str().unwrap()))
        .collect();
    assert!(steps.contains(&("ha-acura", "run")), "{steps:?}");
    assert!(steps.contains(&("k8s-master", "done")), "{steps:?}");
}

#[test]
fn plan_diff_shows_replace_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = copy_example("aws.toml", dir.path());
    let st_dir = dir.path().join("state");
    let (store, mut st) = applied_state(&cfg_path, &st_dir);
    // A tainted node, and a resource the file no longer wants.
    st.resources
        .iter_mut()
        .find(|r| r.address == "instance[acura-2]")
        .unwrap()
        .status = Status::Tainted;
    let mut extra = st.resources[0].clone();
    extra.address = "instance[acura-9]".into();
    st.resources.push(extra);
    store.save(&mut st).unwrap();
    // And a changed instance type.
    let text = std::fs::read_to_string(&cfg_path)
        .unwrap()
        .replace("m5.2xlarge", "m5.4xlarge");
    std::fs::write(&cfg_path, text).unwrap();

    let cfg = load(&cfg_path).unwrap();
    let paths = acura_ha::bootstrap::paths(&cfg, &store.cluster_dir());
    let p = plan::build(&cfg.spec, store.load().unwrap().as_ref(), &paths);
    let action = |addr: &str| {
        p.resources
            .iter()
            .find(|c| c.resource.address == addr)
            .unwrap()
    };
    assert_eq!(action("instance[acura-1]").action, Action::Replace);
    // A running node is replaced one at a time through `node replace` (issue 9): the plan says so.
    assert_eq!(
        action("instance[acura-1]").reasons,
        [
            "instance_type: m5.2xlarge -> m5.4xlarge",
            acura_ha::plan::NODE_REPLACE_NOTE
        ]
    );
    assert!(action("instance[acura-2]").reasons[0].contains("tainted"));
    assert_eq!(action("instance[acura-9]").action, Action::Delete);
    assert_eq!(action("security_group").action, Action::Keep);
    assert_eq!(p.summary.replace, 3);
    assert_eq!(p.summary.delete, 1);
    // Hosts change, so every bootstrap step runs again.
    assert!(p.bootstrap.iter().all(|s| s.action == StepAction::Run));
    // The state alone: no AWS account here to read (and tests talk to loopback only).
    acura_ha()
        .args(["plan", "--refresh=false", "-c"])
        .arg(&cfg_path)
        .arg("--state-dir")
        .arg(&st_dir)
        .assert()
        .code(2)
        .stdout(contains("replace instance[acura-1]"))
        .stdout(contains("because instance_type: m5.2xlarge -> m5.4xlarge"))
        .stdout(contains("delete  instance[acura-9]"));
}

#[test]
fn config_errors_point_at_file_line_col_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = copy_example("aws.toml", dir.path());
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("count = 3", "count = 4");
    std::fs::write(&cfg, &text).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("count = 4"))
        .unwrap()
        + 1;
    acura_ha()
        .args(["plan", "-c"])
        .arg(&cfg)
        .assert()
        .code(1)
        .stderr(contains(format!("error[AH103]: {}:{line}:9: nodes.count = 4: etcd needs an odd number of members; use 3 or 5", cfg.display())));
}

#[test]
fn credentials_in_the_file_are_refused_with_help() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = copy_example("aws.toml", dir.path());
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[aws]\n", "[aws]\naws_secret_access_key = \"abc\"\n");
    std::fs::write(&cfg, text).unwrap();
    acura_ha()
        .args(["plan", "-c"])
        .arg(&cfg)
        .assert()
        .code(1)
        .stderr(contains("error[AH102]"))
        .stderr(contains("unknown field `aws_secret_access_key`"))
        .stderr(contains("help: credentials never go in the cluster file"));
}

#[test]
fn missing_file_and_usage_errors() {
    acura_ha()
        .args(["plan", "-c", "/nonexistent/cluster.toml"])
        .assert()
        .code(1)
        .stderr(contains(
            "error[AH001]: cannot read /nonexistent/cluster.toml",
        ));
    acura_ha().args(["plan", "--bogus"]).assert().code(64);
    acura_ha().assert().code(64);
    acura_ha().arg("--help").assert().code(0);
}

#[test]
fn help_lists_only_working_commands() {
    let out = acura_ha()
        .arg("--help")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let help = String::from_utf8(out).unwrap();
    for cmd in [
        "plan",
        "up",
        "status",
        "preflight",
        "down",
        "janitor",
        "render",
        "state",
        "completions",
        "update",
        "node",
        "init",
        "man",
    ] {
        assert!(
            help.contains(&format!("  {cmd} ")),
            "{cmd} missing from --help"
        );
    }
}

#[test]
fn state_show_and_unlock() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = copy_example("static.toml", dir.path());
    let st_dir = dir.path().join("state");
    acura_ha()
        .args(["state", "show", "-c"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(&st_dir)
        .assert()
        .code(0)
        .stdout(contains("has no state"));
    let (store, _) = applied_state(&cfg, &st_dir);
    // A lock left by a dead run: a pid that cannot exist.
    let lock = acura_ha::state::LockInfo {
        id: "c0ffee".into(),
        operation: "up".into(),
        owner: "someone".into(),
        host: "elsewhere".into(),
        pid: 999_999_999,
        started_at: "2026-11-30T00:00:00Z".into(),
    };
    std::fs::write(store.lock_path(), serde_json::to_string(&lock).unwrap()).unwrap();
    let out = acura_ha()
        .args(["state", "show", "-c"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(&st_dir)
        .args(["--output", "json"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["state"]["cluster"], "acura-static");
    assert_eq!(v["state"]["schema_version"], 1);
    assert_eq!(v["lock"]["id"], "c0ffee");
    acura_ha()
        .args(["state", "unlock", "-c"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(&st_dir)
        .arg("wrong-id")
        .assert()
        .code(1)
        .stderr(contains("error[AH212]"));
    acura_ha()
        .args(["state", "unlock", "-c"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(&st_dir)
        .arg("c0ffee")
        .assert()
        .code(0)
        .stdout(contains("unlocked"));
    assert!(!store.lock_path().exists());
}

#[test]
fn security_group_audit_is_the_guides_table() {
    let out = acura_ha()
        .args(["render", "security-group", "--output", "json", "-c"])
        .arg(example("aws.toml"))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
    let admin: Vec<String> = rows
        .iter()
        .filter(|r| r["source"] == "198.51.100.7/32")
        .map(|r| r["ports"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(admin, ["22", "30080", "30081", "30082"]);
    let public: Vec<String> = rows
        .iter()
        .filter(|r| r["source"] == "0.0.0.0/0")
        .map(|r| {
            format!(
                "{}/{}",
                r["protocol"].as_str().unwrap(),
                r["ports"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        public,
        ["tcp/80", "tcp/443", "tcp/4443", "tcp/6443", "udp/12201"]
    );
    assert_eq!(rows[0]["source"], "security group itself");
    assert_eq!(rows[0]["ports"], "1-65535");
    assert_eq!(rows.len(), 10);
}

#[test]
fn render_nginx_for_static_and_refusal_for_cloud_lb() {
    acura_ha()
        .args(["render", "nginx", "-c"])
        .arg(example("static.toml"))
        .assert()
        .success()
        .stdout(contains("server 192.0.2.13:15000;"))
        .stdout(contains("listen 12201 udp;"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = copy_example("openstack.toml", dir.path());
    let st = dir.path().join("state");
    applied_state(&cfg, &st);
    acura_ha()
        .args(["render", "nginx", "-c"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(&st)
        .assert()
        .code(1)
        .stderr(contains("error[AH300]"));
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish"] {
        acura_ha()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(contains("acura-ha"))
            .stdout(contains("security-group"));
    }
}

#[test]
fn day2_commands_need_a_state_and_follow_the_node_set_it_records() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = copy_example("static.toml", dir.path());
    let st = dir.path().join("state");
    // Without a state there is no cluster to change.
    let out = acura_ha()
        .args(["node", "remove", "whatever", "--yes", "-c"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(&st)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("AH003") && err.contains("acura-ha up"),
        "{err}"
    );

    let (store, mut state) = applied_state(&cfg, &st);
    let spec = load(&cfg).unwrap().spec;
    let names = spec.node_names();
    // A name that is not a node: nothing to do, success.
    let out = acura_ha()
        .args(["node", "remove", "not-a-node", "--yes", "-c"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(&st)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to do"));
    // The static provider takes a host you made: an address is needed.
    let out = acura_ha()
        .args(["node", "add", "--yes", "-c"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(&st)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--address"));

    // Once day-2 commands changed the node set, every command sees the state's set.
    state.day2.nodes = Some(
        names[..2]
            .iter()
            .map(|n| acura_ha::state::NodeEntry {
                name: n.clone(),
                address: None,
            })
            .chain(std::iter::once(acura_ha::state::NodeEntry {
                name: "added-4".into(),
                address: Some("192.0.2.44".parse().unwrap()),
            }))
            .collect(),
    );
    store.save(&mut state).unwrap();
    let out = acura_ha()
        .args(["render", "inventory", "-c"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(&st)
        .output()
        .unwrap();
    let inv = String::from_utf8_lossy(&out.stdout);
    assert!(inv.contains(&names[0]) && inv.contains(&names[1]), "{inv}");
    assert!(!inv.contains(&names[2]), "{inv}");
    assert!(inv.contains("added-4 ansible_ssh_host=192.0.2.44"), "{inv}");
}

/// Every query with `--output json` writes exactly one JSON document to stdout, whatever it
/// also tells the human (that goes to stderr): `acura-ha … --output json | jq` always parses.
/// The commands that change a cluster stream one event per line instead (tests/events.rs).
#[test]
fn every_json_output_is_one_document_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = copy_example("static.toml", dir.path());
    // Loopback addresses: `status` may knock, and tests only send traffic to loopback.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("192.0.2.", "127.0.0.");
    std::fs::write(&cfg, text).unwrap();
    let st_dir = dir.path().join("state");
    applied_state(&cfg, &st_dir);
    let runs: [(&[&str], i32); 4] = [
        (&["plan"], 0),
        (&["render", "security-group"], 0),
        (&["state", "show"], 0),
        (&["status"], 3),
    ];
    for (args, code) in runs {
        let out = acura_ha()
            .args(args)
            .arg("-c")
            .arg(&cfg)
            .arg("--state-dir")
            .arg(&st_dir)
            .args(["--output", "json"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        let parsed: Result<serde_json::Value, _> = serde_json::from_slice(&out.stdout);
        assert!(
            parsed.is_ok(),
            "{args:?}: stdout is not one JSON document: {:?}\nstdout:\n{}",
            parsed.err(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// `init` writes a file `plan` accepts for every target, fills in what the machine knows (the
/// aws CLI's region and profile, the SSH key), and never overwrites.
#[test]
fn init_writes_a_valid_file_per_target_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::create_dir_all(home.join(".aws")).unwrap();
    std::fs::write(home.join(".ssh/id_ecdsa"), "not read").unwrap();
    std::fs::write(
        home.join(".aws/config"),
        "[default]\nregion = us-east-1\n[profile team]\nregion = ap-south-1\n",
    )
    .unwrap();
    for provider in ["aws", "openstack", "static", "local"] {
        let file = dir.path().join(format!("{provider}.toml"));
        acura_ha()
            .current_dir(dir.path())
            .env("HOME", &home)
            .env("AWS_PROFILE", "team")
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .env_remove("AWS_CONFIG_FILE")
            .env("OS_CLOUD", "lab-cloud")
            .args(["init", "--provider", provider, "--name", "first-try"])
            .arg(&file)
            .assert()
            .code(0);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("name = \"first-try\""), "{provider}: {text}");
        acura_ha()
            .args(["plan", "-c"])
            .arg(&file)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .assert()
            .code(0);
        if provider == "aws" {
            assert!(text.contains("region = \"ap-south-1\""), "{text}");
            assert!(text.contains("profile = \"team\""), "{text}");
            assert!(text.contains("~/.ssh/id_ecdsa"), "{text}");
        }
        if provider == "openstack" {
            assert!(text.contains("cloud = \"lab-cloud\""), "{text}");
        }
        if provider == "local" {
            assert!(text.contains("dns_name = \"first-try-lb\""), "{text}");
        }
        // Never overwritten: the second init fails and the file is as it was.
        acura_ha()
            .args(["init", "--provider", provider])
            .arg(&file)
            .assert()
            .code(1)
            .stderr(contains("never overwrites"));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    }
}

/// The manual page comes from the same definition as `--help`.
#[test]
fn man_page_names_every_command() {
    let out = acura_ha()
        .arg("man")
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let page = String::from_utf8(out).unwrap();
    assert!(page.starts_with(".ie") || page.contains(".TH"), "{page}");
    for cmd in ["plan", "up", "status", "down", "node", "init"] {
        assert!(page.contains(cmd), "{cmd} missing from the man page");
    }
}

/// SIGTERM (a cancelled CI job) and SIGHUP (a dropped SSH session) end a run as Ctrl-C does:
/// exit 130, the lock released, the state kept — not a process killed mid-write.
#[test]
fn sigterm_and_sighup_end_a_run_like_ctrl_c() {
    for signal in ["TERM", "HUP"] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = copy_example("static.toml", dir.path());
        // Loopback hosts that never accept a login: `up` waits for SSH until it is stopped.
        let text = std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("192.0.2.", "127.0.0.")
            + "\n[preflight]\nssh_wait_secs = 300\n";
        std::fs::write(&cfg, text).unwrap();
        let st_dir = dir.path().join("state");
        let child = common::acura_ha_std()
            .args(["up", "--yes", "-c"])
            .arg(&cfg)
            .arg("--state-dir")
            .arg(&st_dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The run holds its lock while it waits for SSH.
        let lock = st_dir.join("acura-static.lock");
        let started = std::time::Instant::now();
        while !lock.exists() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "up never took its lock"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        let killed = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(killed.success());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "SIG{signal}: {err}");
        assert!(err.contains("interrupted"), "SIG{signal}: {err}");
        assert!(!lock.exists(), "SIG{signal}: the lock is released");
    }
}
