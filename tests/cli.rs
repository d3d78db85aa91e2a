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

/// `acura-ha init` with only the variables a test gives: every variable `init` reads is cleared
/// first, and HOME is `home`.
fn init_cmd(dir: &Path, home: &Path) -> assert_cmd::Command {
    let mut cmd = acura_ha();
    cmd.current_dir(dir).env("HOME", home);
    for var in [
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
        "OS_CLOUD",
        "OS_CLIENT_CONFIG_FILE",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Environment variables a case sets.
type Vars = Vec<(&'static str, String)>;

/// `plan` accepts the file `init` wrote.
fn plan_accepts(file: &Path) {
    acura_ha()
        .args(["plan", "-c"])
        .arg(file)
        .arg("--state-dir")
        .arg(file.with_extension("state"))
        .assert()
        .code(0);
}

/// The command in the last `…` of `init`'s closing line.
fn hint(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with("wrote "))
        .unwrap_or_else(|| panic!("no `wrote` line in {text}"));
    let mut parts = line.rsplit('`');
    parts.next();
    parts
        .next()
        .unwrap_or_else(|| panic!("no command in {line}"))
        .to_string()
}

/// `init` writes a file `plan` accepts for every target, fills in what the machine knows (the
/// aws CLI's region and profile, the SSH key), never overwrites, and its closing hint runs as
/// printed.
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
        let out = init_cmd(dir.path(), &home)
            .env("AWS_PROFILE", "team")
            .env("OS_CLOUD", "lab-cloud")
            .args(["init", "--provider", provider, "--name", "first-try"])
            .arg(&file)
            .assert()
            .code(0)
            .get_output()
            .clone();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("name = \"first-try\""), "{provider}: {text}");
        plan_accepts(&file);
        // The hint runs as printed: this binary is not on the PATH, so it names its full path.
        let cmd = hint(&out.stderr);
        assert!(
            cmd.ends_with(&format!("plan -c {}", file.display())),
            "{cmd}"
        );
        assert!(!cmd.starts_with("acura-ha "), "{cmd}");
        let run = std::process::Command::new("sh")
            .args(["-c", &cmd])
            .current_dir(dir.path())
            .env_remove("ACURA_HA_CONFIG")
            .env_remove("ACURA_HA_STATE_DIR")
            .output()
            .unwrap();
        assert_eq!(
            run.status.code(),
            Some(0),
            "{cmd}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        if provider == "aws" {
            assert!(text.contains("region = \"ap-south-1\""), "{text}");
            assert!(text.contains("profile = \"team\""), "{text}");
            assert!(text.contains("~/.ssh/id_ecdsa"), "{text}");
        }
        if provider == "openstack" {
            assert!(text.contains("cloud = \"lab-cloud\""), "{text}");
        }
        if provider == "static" {
            // No terminal, no --interactive: the template's hosts, to edit.
            assert!(text.contains("address = \"192.0.2.11\""), "{text}");
        }
        if provider == "local" {
            assert!(text.contains("dns_name = \"first-try-lb\""), "{text}");
        }
        // Never overwritten: the second init fails and the file is as it was.
        init_cmd(dir.path(), &home)
            .args(["init", "--provider", provider])
            .arg(&file)
            .assert()
            .code(1)
            .stderr(contains("never overwrites"));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    }
    // With the binary on the PATH (a link to it, as an installed copy), the hint says `acura-ha`.
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_acura-ha"), bin.join("acura-ha")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new("acura-ha")
        .args(["init", "--provider", "local", "on-path.toml"])
        .current_dir(dir.path())
        .env("PATH", &path)
        .env("HOME", &home)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cmd = hint(&out.stderr);
    assert_eq!(cmd, "acura-ha plan -c on-path.toml");
    let run = std::process::Command::new("sh")
        .args(["-c", &cmd])
        .current_dir(dir.path())
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// The aws CLI's files: the profile is AWS_PROFILE, else `default`, else the only one, the others
/// are listed in a comment; the region is AWS_REGION, AWS_DEFAULT_REGION, else the chosen
/// profile's. No key or secret of those files reaches the cluster file or the output.
#[test]
fn init_reads_the_aws_cli_profiles_and_region_but_never_a_secret() {
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY";
    const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".aws")).unwrap();
    std::fs::write(
        home.join(".aws/config"),
        format!(
            "[default]\nregion = us-east-1\n\n[profile team]\nregion = ap-south-1\naws_secret_access_key = {SECRET}\n[sso-session corp]\nsso_region = eu-west-3\n"
        ),
    )
    .unwrap();
    std::fs::write(
        home.join(".aws/credentials"),
        format!("[default]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n\n[ci]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\nregion = sa-east-1\n"),
    )
    .unwrap();
    // Elsewhere, named by AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(
        other.join("config"),
        "[profile alpha]\nregion = eu-north-1\n[profile beta]\n",
    )
    .unwrap();
    std::fs::write(
        other.join("credentials"),
        format!("[solo]\naws_secret_access_key = {SECRET}\n"),
    )
    .unwrap();
    let empty = other.join("none");

    let cases: Vec<(&str, Vars, Vec<&str>)> = vec![
        (
            "default",
            vec![],
            vec![
                "region = \"us-east-1\"",
                "profile = \"default\"   # init: the [default] profile of",
                "# init: the aws CLI's other profiles: \"team\", \"ci\"",
            ],
        ),
        (
            "team",
            vec![("AWS_PROFILE", "team".into())],
            vec![
                "region = \"ap-south-1\"   # init: profile \"team\" in",
                "profile = \"team\"   # init: AWS_PROFILE",
                "other profiles: \"default\", \"ci\"",
            ],
        ),
        (
            "region-from-env",
            vec![
                ("AWS_PROFILE", "team".into()),
                ("AWS_DEFAULT_REGION", "ca-central-1".into()),
            ],
            vec![
                "region = \"ca-central-1\"   # init: AWS_DEFAULT_REGION",
                "profile = \"team\"",
            ],
        ),
        (
            "ci-region-in-credentials",
            vec![
                ("AWS_PROFILE", "ci".into()),
                ("AWS_REGION", "eu-west-1".into()),
                ("AWS_DEFAULT_REGION", "ca-central-1".into()),
            ],
            vec![
                "region = \"eu-west-1\"   # init: AWS_REGION",
                "profile = \"ci\"",
            ],
        ),
        (
            "only-profile",
            vec![
                ("AWS_CONFIG_FILE", empty.display().to_string()),
                (
                    "AWS_SHARED_CREDENTIALS_FILE",
                    other.join("credentials").display().to_string(),
                ),
            ],
            vec![
                "profile = \"solo\"   # init: the only profile, in",
                "region = \"eu-central-1\"   # init: no region in AWS_REGION, AWS_DEFAULT_REGION or the profile",
            ],
        ),
        (
            "none-chosen",
            vec![
                (
                    "AWS_CONFIG_FILE",
                    other.join("config").display().to_string(),
                ),
                ("AWS_SHARED_CREDENTIALS_FILE", empty.display().to_string()),
            ],
            vec!["# profile = \"…\"   # init: the aws CLI's profiles are \"alpha\", \"beta\""],
        ),
    ];
    for (case, env, want) in cases {
        let file = dir.path().join(format!("{case}.toml"));
        let mut cmd = init_cmd(dir.path(), &home);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = cmd
            .args(["init", "--provider", "aws"])
            .arg(&file)
            .assert()
            .code(0)
            .get_output()
            .clone();
        let text = std::fs::read_to_string(&file).unwrap();
        for w in want {
            assert!(text.contains(w), "{case}: {w:?} not in\n{text}");
        }
        if case == "none-chosen" {
            assert!(
                !text.lines().any(|l| l.starts_with("profile")),
                "{case}: {text}"
            );
        }
        for shown in [
            text.as_str(),
            &String::from_utf8_lossy(&out.stdout),
            &String::from_utf8_lossy(&out.stderr),
        ] {
            assert!(
                !shown.contains(SECRET) && !shown.contains(KEY_ID),
                "{case}: a secret was copied:\n{shown}"
            );
        }
        plan_accepts(&file);
    }
}

/// `clouds.yaml` (OS_CLIENT_CONFIG_FILE, else ./clouds.yaml): the file names OS_CLOUD or the
/// first cloud and lists the others in a comment; no password is copied.
#[test]
fn init_names_a_cloud_of_clouds_yaml_and_lists_the_others() {
    const PASSWORD: &str = "s3cr3t-Passw0rd";
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let clouds = |first: &str, second: &str| {
        format!(
            "# from the dashboard\nclouds:\n  {first}:\n    auth:\n      auth_url: https://keystone.example:5000/v3\n      username: demo\n      password: {PASSWORD}\n      project_name: demo\n    region_name: RegionOne\n  {second}:\n    auth:\n      application_credential_id: abc\n      application_credential_secret: {PASSWORD}\n    auth_type: v3applicationcredential\n"
        )
    };
    let named = dir.path().join("named.yaml");
    std::fs::write(&named, clouds("lab", "prod")).unwrap();
    // ./clouds.yaml, read when OS_CLIENT_CONFIG_FILE is not set.
    let cwd = dir.path().join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::write(cwd.join("clouds.yaml"), clouds("here", "there")).unwrap();

    let cases: Vec<(&str, Vars, &str, &str)> = vec![
        (
            "first",
            vec![("OS_CLIENT_CONFIG_FILE", named.display().to_string())],
            "cloud = \"lab\"   # init: the first cloud of",
            "\"prod\"",
        ),
        (
            "os-cloud",
            vec![
                ("OS_CLIENT_CONFIG_FILE", named.display().to_string()),
                ("OS_CLOUD", "prod".into()),
            ],
            "cloud = \"prod\"   # init: OS_CLOUD, in",
            "\"lab\"",
        ),
        (
            "cwd",
            vec![],
            "cloud = \"here\"   # init: the first cloud of",
            "\"there\"",
        ),
    ];
    for (case, env, cloud, other) in cases {
        let file = dir.path().join(format!("{case}.toml"));
        let mut cmd = init_cmd(&cwd, &home);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = cmd
            .args(["init", "--provider", "openstack"])
            .arg(&file)
            .assert()
            .code(0)
            .get_output()
            .clone();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains(cloud), "{case}: {cloud:?} not in\n{text}");
        let others = text
            .lines()
            .find(|l| l.starts_with("# init: the other clouds of"))
            .unwrap_or_else(|| panic!("{case}: no list of the other clouds in\n{text}"));
        assert!(others.ends_with(other), "{case}: {others}");
        for shown in [
            text.as_str(),
            &String::from_utf8_lossy(&out.stdout),
            &String::from_utf8_lossy(&out.stderr),
        ] {
            assert!(
                !shown.contains(PASSWORD),
                "{case}: a secret was copied:\n{shown}"
            );
        }
        plan_accepts(&file);
    }
}

/// Drives a program on a pseudo-terminal: argv[1] is the command (JSON), argv[2] the steps,
/// `[[text to wait for, line to type], …]`. Prints everything the terminal showed and exits with
/// the program's code. The 120 s wait only keeps a hung program from hanging the test.
const PTY_DRIVER: &str = r#"
import json, os, pty, select, subprocess, sys
argv, steps = json.loads(sys.argv[1]), json.loads(sys.argv[2])
master, slave = pty.openpty()
p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
os.close(slave)
seen, pos = b"", 0
def more():
    r, _, _ = select.select([master], [], [], 120)
    if not r:
        sys.exit("the program showed nothing for 120 s:\n" + seen.decode(errors="replace"))
    try:
        return os.read(master, 4096)
    except OSError:
        return b""
for expect, reply in steps:
    e = expect.encode()
    while seen.find(e, pos) < 0:
        c = more()
        if not c:
            sys.stdout.write(seen.decode(errors="replace"))
            sys.exit("the program ended before showing %r" % expect)
        seen += c
    pos = seen.find(e, pos) + len(e)
    os.write(master, reply.encode() + b"\n")
while True:
    c = more()
    if not c:
        break
    seen += c
code = p.wait()
sys.stdout.write(seen.decode(errors="replace"))
sys.exit(code)
"#;

/// `init --provider static` on a terminal asks for the nodes and the NGINX host, asks again after
/// a wrong answer, and writes what was typed; `plan` accepts the file.
#[test]
fn init_static_on_a_terminal_asks_for_the_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typed.toml");
    let argv = serde_json::json!([
        env!("CARGO_BIN_EXE_acura-ha"),
        "init",
        "--provider",
        "static",
        file
    ]);
    let steps = serde_json::json!([
        ["node 1: ", "db-1=10.1.0.1"],
        ["node 2: ", "db-2=10.1.0.1"],
        ["node 2: ", "db-2=10.1.0.300"],
        ["node 2: ", "db.2=10.1.0.2"],
        ["node 2: ", "db-2=10.1.0.2"],
        ["node 3: ", "db-3=10.1.0.3"],
        ["node 4: ", "db-4=fd00::4"],
        ["node 5: ", ""],
        ["node 5: ", "db-5=10.1.0.5"],
        ["node 6: ", ""],
        ["The NGINX host", "front=10.1.0.1"],
        ["The NGINX host", "front=10.1.0.10"],
    ]);
    let (code, shown) = on_a_terminal(dir.path(), argv, steps);
    assert_eq!(code, Some(0), "{shown}");
    for said in [
        "10.1.0.1 is already typed (db-1=10.1.0.1)",
        "\"10.1.0.300\" is not an IP address",
        "\"db.2\": ",
        "4 nodes: etcd needs an odd number of members",
        "wrote ",
    ] {
        assert!(shown.contains(said), "{said:?} not shown:\n{shown}");
    }
    let cfg = load(&file).unwrap();
    assert_eq!(cfg.spec.nodes.count, 5);
    let hosts = cfg.spec.static_hosts.unwrap();
    let typed: Vec<String> = hosts
        .nodes
        .iter()
        .map(|h| format!("{}={}", h.name, h.address))
        .collect();
    assert_eq!(
        typed,
        [
            "db-1=10.1.0.1",
            "db-2=10.1.0.2",
            "db-3=10.1.0.3",
            "db-4=fd00::4",
            "db-5=10.1.0.5"
        ]
    );
    let lb = hosts.lb.unwrap();
    assert_eq!(format!("{}={}", lb.name, lb.address), "front=10.1.0.10");
    plan_accepts(&file);

    // An empty first answer keeps the example's hosts, to edit in the file.
    let kept = dir.path().join("kept.toml");
    let argv = serde_json::json!([
        env!("CARGO_BIN_EXE_acura-ha"),
        "init",
        "--provider",
        "static",
        kept
    ]);
    let (code, shown) = on_a_terminal(dir.path(), argv, serde_json::json!([["node 1: ", ""]]));
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("keeping the example's hosts"), "{shown}");
    let text = std::fs::read_to_string(&kept).unwrap();
    assert!(
        text.contains("{ name = \"acura-1\", address = \"192.0.2.11\" }"),
        "{text}"
    );
    plan_accepts(&kept);
}

/// Runs `argv` on a pseudo-terminal (PTY_DRIVER), answering `steps`: its exit code and what the
/// terminal showed.
fn on_a_terminal(
    dir: &Path,
    argv: serde_json::Value,
    steps: serde_json::Value,
) -> (Option<i32>, String) {
    let out = std::process::Command::new(common::require("python3"))
        .args(["-c", PTY_DRIVER])
        .arg(argv.to_string())
        .arg(steps.to_string())
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("ACURA_HA_CONFIG")
        .env_remove("ACURA_HA_STATE_DIR")
        .output()
        .unwrap();
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), shown)
}

/// Without a terminal, `--interactive` reads the same answers from stdin; input that ends before
/// the list is whole writes nothing; `--interactive` is only for `static`.
#[test]
fn init_interactive_reads_stdin_and_writes_nothing_on_a_short_list() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("piped.toml");
    init_cmd(dir.path(), dir.path())
        .args(["init", "--provider", "static", "--interactive"])
        .arg(&file)
        .write_stdin("a=10.0.0.1\nb=10.0.0.2\nc=10.0.0.3\n\n\n")
        .assert()
        .code(0);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("{ name = \"c\", address = \"10.0.0.3\" }"),
        "{text}"
    );
    assert!(
        text.contains(
            "lb = { name = \"acura-lb\", address = \"192.0.2.10\" }   # init: a placeholder"
        ),
        "{text}"
    );
    plan_accepts(&file);

    // Nothing typed: the example's hosts.
    let kept = dir.path().join("kept.toml");
    init_cmd(dir.path(), dir.path())
        .args(["init", "--provider", "static", "--interactive"])
        .arg(&kept)
        .write_stdin("")
        .assert()
        .code(0);
    let text = std::fs::read_to_string(&kept).unwrap();
    assert!(text.contains("address = \"192.0.2.11\""), "{text}");

    let short = dir.path().join("short.toml");
    init_cmd(dir.path(), dir.path())
        .args(["init", "--provider", "static", "--interactive"])
        .arg(&short)
        .write_stdin("a=10.0.0.1\nb=10.0.0.2\n")
        .assert()
        .failure()
        .stderr(contains("ended with 2 node(s)"));
    assert!(!short.exists());

    init_cmd(dir.path(), dir.path())
        .args(["init", "--provider", "aws", "--interactive"])
        .arg(dir.path().join("aws.toml"))
        .assert()
        .failure()
        .stderr(contains(
            "--interactive asks for the nodes of --provider static",
        ));
}

/// The manual page comes from the same definition as `--help`: an entry per subcommand (as
/// clap_mangen writes them: `.TP` then `acura\-ha\-NAME(1)` then its one-line help) under
/// SUBCOMMANDS, and the global options under OPTIONS.
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
    assert!(page.contains("\n.TH acura-ha 1 "), "{page}");
    let section = |name: &str| -> String {
        let start = page
            .find(&format!("\n.SH {name}\n"))
            .unwrap_or_else(|| panic!("no .SH {name} in\n{page}"));
        let rest = &page[start + 1..];
        // Up to and with the newline before the next section.
        let end = rest[1..].find("\n.SH ").map_or(rest.len(), |e| e + 2);
        rest[..end].to_string()
    };
    let roff = |s: &str| s.replace('-', "\\-").replace('\'', "\\*(Aq");
    let subcommands = section("SUBCOMMANDS");
    let definition = acura_ha::cli::command();
    // Every command the tool has (this list fails when one goes missing from the definition) …
    let expected = [
        "plan",
        "up",
        "status",
        "preflight",
        "down",
        "update",
        "node",
        "janitor",
        "render",
        "state",
        "init",
        "completions",
        "man",
    ];
    let defined: Vec<&str> = definition.get_subcommands().map(|c| c.get_name()).collect();
    for cmd in expected {
        assert!(
            defined.contains(&cmd),
            "{cmd} is not a subcommand: {defined:?}"
        );
    }
    // … and every one the definition has is on the page with its help line.
    for sub in definition.get_subcommands() {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        let entry = format!(
            ".TP\n{}(1)\n{}\n",
            roff(&format!("acura-ha-{}", sub.get_name())),
            roff(&about)
        );
        assert!(
            subcommands.contains(&entry),
            "no entry {entry:?} in\n{subcommands}"
        );
    }
    let options = section("OPTIONS");
    for global in definition
        .get_arguments()
        .filter(|a| a.get_long().is_some())
    {
        let flag = match global.get_short() {
            Some(s) => format!(
                "\\fB\\-{s}\\fR, \\fB\\-\\-{}\\fR",
                roff(global.get_long().unwrap())
            ),
            None => format!("\\fB\\-\\-{}\\fR", roff(global.get_long().unwrap())),
        };
        assert!(
            options.contains(&format!(".TP\n{flag}")),
            "no {flag:?} in\n{options}"
        );
    }
    for flag in ["\\fB\\-\\-help\\fR", "\\fB\\-\\-version\\fR"] {
        assert!(options.contains(flag), "no {flag} in\n{options}");
    }
}

/// The main page names each command's own page (`acura-ha-plan(1)`): `man --dir` writes them
/// all, nested commands included, and `man node add` prints one; an unknown command is a usage
/// error naming the commands there.
#[test]
fn man_writes_a_page_per_command_and_prints_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = acura_ha()
        .args(["man", "--dir"])
        .arg(dir.path())
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let listed: Vec<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    fn names(cmd: &clap::Command, prefix: &str, out: &mut Vec<String>) {
        let name = format!("{prefix}{}", cmd.get_name());
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            names(sub, &format!("{name}-"), out);
        }
        out.push(name);
    }
    let mut expected = Vec::new();
    names(&acura_ha::cli::command(), "", &mut expected);
    assert!(
        expected.contains(&"acura-ha-node-add".to_string()),
        "{expected:?}"
    );
    for name in &expected {
        let path = dir.path().join(format!("{name}.1"));
        let page = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (listed: {listed:?})", path.display()));
        assert!(page.contains(&format!("\n.TH {name} 1 ")), "{name}: {page}");
        assert!(listed.contains(&path.display().to_string()), "{listed:?}");
    }
    assert_eq!(listed.len(), expected.len(), "{listed:?}");

    let page = acura_ha()
        .args(["man", "node", "add"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let page = String::from_utf8(page).unwrap();
    assert_eq!(
        page,
        std::fs::read_to_string(dir.path().join("acura-ha-node-add.1")).unwrap()
    );
    acura_ha()
        .args(["man", "nope"])
        .assert()
        .code(1)
        .stderr(contains("no manual page for `nope`"))
        .stderr(contains("plan, up"));
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
