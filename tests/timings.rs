//! `--timings` (issue 12 item 5): `up`, `down` and the day-2 commands write the run's timeline —
//! every resource, step and wait from the run's event stream, with when it was sent and when it
//! was ready — as JSON and a self-contained HTML page in the cluster's logs directory (0600),
//! and print the path; with or without `--output json`, and without any secret.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::lab::{Lab, ok};
use common::{acura_ha, example};
use serde_json::Value;

/// The timeline files a run wrote (the path printed on stderr), parsed.
fn timeline(out: &Output, logs: &Path) -> (Value, String, PathBuf, PathBuf) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("timings: "))
        .unwrap_or_else(|| panic!("no timings path printed:\n{stderr}"));
    let (html, json) = line
        .split_once(" (JSON: ")
        .unwrap_or_else(|| panic!("{line}"));
    let (html, json) = (
        PathBuf::from(html),
        PathBuf::from(json.trim_end_matches(')')),
    );
    for p in [&html, &json] {
        assert_eq!(
            p.parent(),
            Some(logs),
            "{} is next to the logs",
            p.display()
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", p.display());
    }
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", json.display()));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    for external in ["<script", "src=", "href=", "@import", "url("] {
        assert!(!page.contains(external), "the page loads {external}");
    }
    for e in doc["entries"].as_array().unwrap() {
        let (s, end) = (e["start"].as_f64().unwrap(), e["end"].as_f64().unwrap());
        assert!(0.0 <= s && s <= end, "{e}");
        assert!(end <= doc["elapsed"].as_f64().unwrap() + 1e-9, "{e}");
    }
    (doc, page, html, json)
}

fn has(doc: &Value, kind: &str, id: &str) -> bool {
    doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == kind && e["id"] == id)
}

/// Without `--output json`: the collector still listens, stdout carries no event line, and the
/// become password (also an address the run prints) is in neither file.
#[test]
fn a_failed_up_writes_its_timeline_without_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("static.toml");
    let text = std::fs::read_to_string(example("static.toml"))
        .unwrap()
        .replace("192.0.2.", "127.0.0.")
        + "\n[preflight]\nssh_wait_secs = 2\n";
    std::fs::write(&cfg, text).unwrap();
    let st = dir.path().join("state");
    let secret = "127.0.0.12";
    let out = acura_ha()
        .args(["up", "--yes", "--timings", "-c"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(&st)
        .env("ACURA_HA_BECOME_PASSWORD", secret)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.lines().any(|l| l.starts_with("{\"v\"")),
        "no event stream without --output json:\n{stdout}"
    );
    let (doc, page, ..) = timeline(&out, &st.join("acura-static").join("logs"));
    assert_eq!(doc["command"], "up");
    assert_eq!(doc["exit_code"], 1);
    assert!(has(&doc, "wait", "ssh"), "{doc:#}");
    assert!(page.contains("ssh"), "{page}");
    let json = doc.to_string();
    assert!(!json.contains(secret), "{json}");
    assert!(!page.contains(secret), "{page}");
}

/// On the local target, against the event stream of the same run: every resource, step and
/// wait the stream shows is in the timeline and on the page; `down` times its deletions.
#[test]
fn local_provision_and_down_timelines_hold_what_the_stream_showed() {
    let lab = Lab::new("timings", 187, 3);
    let logs = lab.cluster_dir().join("logs");
    let out = lab.run(&[
        "up",
        "--only",
        "provision",
        "--yes",
        "--output",
        "json",
        "--timings",
    ]);
    ok(&out);
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let (doc, page, ..) = timeline(&out, &logs);
    let mut seen = 0;
    for e in &events {
        let (kind, id) = match e["type"].as_str().unwrap() {
            "resource" => ("resource", &e["address"]),
            "step" => ("step", &e["id"]),
            "wait" => ("wait", &e["what"]),
            _ => continue,
        };
        let id = id.as_str().unwrap();
        seen += 1;
        assert!(
            has(&doc, kind, id),
            "{kind} {id} is not in the timeline:\n{doc:#}"
        );
        assert!(page.contains(id), "{id} is not on the page");
    }
    assert!(seen >= 4, "the run showed resources: {events:?}");
    for k in 1..=3 {
        let host = lab.node(k).0;
        let entry = doc["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| {
                e["kind"] == "resource" && e["id"].as_str().unwrap().ends_with(&format!("[{host}]"))
            })
            .unwrap_or_else(|| panic!("{host}: {doc:#}"));
        assert_eq!(entry["state"], "done", "{entry}");
        assert_eq!(entry["detail"], "create lab_host", "{entry}");
    }

    let out = lab.run(&["down", "--yes", "--timings"]);
    ok(&out);
    let (doc, ..) = timeline(&out, &logs);
    assert_eq!(doc["command"], "down");
    let deleted = doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "resource" && e["detail"].as_str().unwrap().starts_with("delete"))
        .count();
    assert!(deleted >= 4, "{doc:#}");
}
