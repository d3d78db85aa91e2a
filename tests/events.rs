//! `--output json` on the commands that change a cluster streams JSON Lines (README, "Machine-
//! readable runs"): every stdout line is one event with `v` = 1, an RFC 3339 `@timestamp` and a
//! `type`; the first is `run_start`, the last `summary` whose `exit_code` is the process's; a
//! failed run ends with `error` then `summary`; the human account is on stderr. Against loopback
//! hosts that refuse logins (the static target, as tests/cli.rs) and on the local target.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::lab::{Lab, ok};
use common::{acura_ha, example};
use serde_json::Value;

/// Every stdout line as an event, checked against the envelope and the sequence rules.
fn events(out: &Output) -> Vec<Value> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}\n--- stderr\n{stderr}"))
        })
        .collect();
    assert!(events.len() >= 2, "stdout:\n{stdout}\n--- stderr\n{stderr}");
    for e in &events {
        assert_eq!(e["v"], 1, "{e}");
        let ts = e["@timestamp"].as_str().unwrap_or_else(|| panic!("{e}"));
        humantime::parse_rfc3339(ts).unwrap_or_else(|err| panic!("{ts}: {err}"));
        assert!(e["type"].is_string(), "{e}");
    }
    assert_eq!(events[0]["type"], "run_start", "{}", events[0]);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "summary", "{last}");
    assert_eq!(
        last["exit_code"].as_i64(),
        out.status.code().map(i64::from),
        "{last}\n--- stderr\n{stderr}"
    );
    assert_eq!(
        events.iter().filter(|e| e["type"] == "summary").count(),
        1,
        "one summary"
    );
    events
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

/// The static example on loopback hosts that refuse logins, with its own state directory.
fn refusing_cluster(dir: &Path) -> (PathBuf, PathBuf) {
    let cfg = dir.join("static.toml");
    let text = std::fs::read_to_string(example("static.toml"))
        .unwrap()
        .replace("192.0.2.", "127.0.0.")
        + "\n[preflight]\nssh_wait_secs = 2\n";
    std::fs::write(&cfg, text).unwrap();
    (cfg, dir.join("state"))
}

fn run(args: &[&str], cfg: &Path, st: &Path, env: &[(&str, &str)]) -> Output {
    acura_ha()
        .args(args)
        .arg("-c")
        .arg(cfg)
        .arg("--state-dir")
        .arg(st)
        .args(["--output", "json"])
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn a_failed_up_ends_with_error_then_summary_and_hides_the_become_password() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, st) = refusing_cluster(dir.path());
    // A become password that also happens to be an address the run prints: every event line
    // must hide it wherever it turns up (the human text on stderr is the tool's own account).
    let secret = "127.0.0.12";
    let out = run(
        &["up", "--yes"],
        &cfg,
        &st,
        &[("ACURA_HA_BECOME_PASSWORD", secret)],
    );
    assert_eq!(out.status.code(), Some(1));
    let ev = events(&out);
    assert_eq!(ev[0]["command"], "up");
    assert!(!of_type(&ev, "wait").is_empty(), "the SSH wait is streamed");
    assert!(
        of_type(&ev, "wait").iter().any(|w| w["what"] == "ssh"),
        "{ev:?}"
    );
    let error = &ev[ev.len() - 2];
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["code"], "AH500", "{error}");
    assert!(error["help"].is_string(), "{error}");
    assert!(ev.last().unwrap().get("result").is_none());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains(secret), "{stdout}");
    assert!(stdout.contains("<redacted>"), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Plan for cluster"), "{stderr}");
    assert!(stderr.contains("error[AH500]"), "{stderr}");
}

#[test]
fn down_streams_its_report_in_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, st) = refusing_cluster(dir.path());
    let out = run(&["down", "--yes"], &cfg, &st, &[]);
    let ev = events(&out);
    assert_eq!(out.status.code(), Some(0));
    let summary = ev.last().unwrap();
    assert_eq!(summary["command"], "down");
    assert_eq!(summary["result"]["cluster"], "acura-static", "{summary}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("uses your own hosts"),
        "the account is on stderr"
    );
}

#[test]
fn janitor_and_day2_commands_stream_their_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, st) = refusing_cluster(dir.path());
    let runs: [(&[&str], &str, &str); 3] = [
        (&["janitor", "--older-than", "1h", "--yes"], "janitor", "AH"),
        (&["update", "--yes"], "update", "AH003"),
        (
            &["node", "remove", "acura-2", "--yes"],
            "node remove",
            "AH003",
        ),
    ];
    for (args, command, code) in runs {
        let out = run(args, &cfg, &st, &[]);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let ev = events(&out);
        assert_eq!(ev[0]["command"], command);
        let error = &ev[ev.len() - 2];
        assert_eq!(error["type"], "error", "{error}");
        assert!(error["code"].as_str().unwrap().starts_with(code), "{error}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("error[AH"),
            "{args:?}"
        );
    }
}

/// Queries stay one document.
#[test]
fn plan_stays_one_document() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, st) = refusing_cluster(dir.path());
    let out = run(&["plan"], &cfg, &st, &[]);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("one document");
    assert!(doc.get("v").is_none(), "{doc}");
}

/// On the local target: each lab host's resource lines, each bootstrap step started then done,
/// the waits, and the report in the summary; `down` streams the deletions.
#[test]
fn local_up_and_down_stream_resources_steps_and_waits() {
    let lab = Lab::new("events", 133, 3);
    let out = lab.run(&["up", "--yes", "--output", "json"]);
    ok(&out);
    let ev = events(&out);
    let resources = of_type(&ev, "resource");
    let created: Vec<&str> = resources
        .iter()
        .filter(|r| r["action"] == "create" && r["state"] == "done")
        .map(|r| r["address"].as_str().unwrap())
        .collect();
    for k in 1..=3 {
        let host = lab.node(k).0;
        assert!(
            created.iter().any(|a| a.ends_with(&format!("[{host}]"))),
            "{host} created: {created:?}"
        );
        assert!(
            resources.iter().any(|r| r["state"] == "started"
                && r["address"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("[{host}]"))),
            "{host} started"
        );
    }
    for r in resources.iter().filter(|r| r["state"] == "done") {
        assert!(r["elapsed"].is_number(), "{r}");
    }
    for id in [
        "preflight",
        "nginx",
        "ha_env_file",
        "k8s-master",
        "ha-acura",
        "post-checks",
    ] {
        let states: Vec<&str> = of_type(&ev, "step")
            .iter()
            .filter(|s| s["id"] == id)
            .map(|s| s["state"].as_str().unwrap())
            .collect();
        assert_eq!(states, ["started", "done"], "step {id}");
    }
    assert!(of_type(&ev, "wait").iter().any(|w| w["what"] == "ssh"));
    let summary = ev.last().unwrap();
    assert!(
        summary["result"]["ui_url"]
            .as_str()
            .unwrap()
            .starts_with("https://"),
        "{summary}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is up."), "{stderr}");

    let out = lab.run(&["down", "--yes", "--output", "json"]);
    ok(&out);
    let ev = events(&out);
    let deleted: Vec<&str> = of_type(&ev, "resource")
        .iter()
        .filter(|r| r["action"] == "delete" && r["state"] == "done")
        .map(|r| r["address"].as_str().unwrap())
        .collect();
    let host = lab.node(1).0;
    assert!(
        deleted.iter().any(|a| a.ends_with(&format!("[{host}]"))),
        "{deleted:?}"
    );
    let summary = ev.last().unwrap();
    assert!(
        summary["result"]["deleted"]
            .as_array()
            .is_some_and(|d| d.len() >= deleted.len()),
        "{summary}"
    );
}

/// Interrupted (SIGTERM, as a cancelled CI job): the stream still ends with `error` and a
/// `summary` whose exit code is 130.
#[test]
fn an_interrupted_run_still_ends_with_its_summary() {
    let dir = tempfile::tempdir().unwrap();
    let (cfg, st) = refusing_cluster(dir.path());
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("ssh_wait_secs = 2", "ssh_wait_secs = 300");
    std::fs::write(&cfg, text).unwrap();
    let child = common::acura_ha_std()
        .args(["up", "--yes", "--output", "json", "-c"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(&st)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The run holds its lock while it waits for SSH.
    let lock = st.join("acura-static.lock");
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
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let ev = events(&out);
    let error = &ev[ev.len() - 2];
    assert_eq!(error["type"], "error", "{error}");
}
