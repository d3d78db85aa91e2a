//! The state in S3 (`[state] backend = "s3"`) against a real moto_server: the lock is an object
//! created with `If-None-Match: *` (two writers, exactly one proceeds), updates carry
//! `If-Match` on the ETag read (a stale writer is refused and overwrites nothing), a dead run's
//! lock is shown and removed by `state unlock`, `state migrate` round-trips local → s3 → local
//! byte for byte, every write asks for SSE, and a public bucket is refused.
//!
//! One moto for the whole binary: the SDK reads its endpoint and credentials from the
//! process environment, which is set once, before any test talks to it.

#[path = "../providers/aws/tests/common/mod.rs"]
#[allow(dead_code, clippy::all)]
mod aws;
mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, OnceLock};

use acura_ha::state::backend::{BackendError, Precondition, Version};
use acura_ha::state::{LockGuard, LockInfo, StateError, StateStore};
use common::acura_ha;
use predicates::str::contains;

/// moto's URL; the environment points the SDK (here and in the binaries run) at it.
fn moto() -> &'static str {
    static MOTO: OnceLock<(aws::Moto, String)> = OnceLock::new();
    &MOTO
        .get_or_init(|| {
            let m = aws::Moto::start();
            let url = m.url();
            // SAFETY: inside the OnceLock's initialiser every other test thread that needs
            // the environment is waiting here; nothing else in this binary reads AWS_*.
            unsafe {
                for k in aws::aws_env_remove() {
                    std::env::remove_var(k);
                }
                for (k, v) in aws::aws_env(&url) {
                    std::env::set_var(k, v);
                }
                std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
            }
            (m, url)
        })
        .1
}

fn make_bucket(name: &str) {
    let r = aws::http("PUT", &format!("{}/{name}", moto()), &[], b"").unwrap();
    assert_eq!(r.status, 200, "CreateBucket {name}: {}", r.body);
}

/// examples/static.toml (cluster `acura-static`) with `[state]` appended.
fn cluster(dir: &Path, state: &str) -> PathBuf {
    let text = std::fs::read_to_string(common::example("static.toml")).unwrap();
    let cfg = dir.join("cluster.toml");
    std::fs::write(&cfg, format!("{text}\n[state]\n{state}\n")).unwrap();
    cfg
}

fn store(cfg: &Path, state_dir: &Path) -> StateStore {
    let loaded = acura_ha::config::load(cfg).unwrap();
    StateStore::for_config(&loaded, Some(state_dir))
}

/// A GetObject as the bucket's owner (moto checks no signature, but refuses anonymous reads of
/// a private object).
fn s3_object(bucket: &str, key: &str) -> aws::HttpResponse {
    let auth = aws::fake_sigv4("s3", aws::REGION);
    let url = format!("{}/{bucket}/{key}", moto());
    aws::http("GET", &url, &[("Authorization", &auth)], b"").unwrap()
}

/// Both stores ask for the lock at the same moment (a barrier); their answers.
fn race_for_the_lock(stores: &[StateStore; 2]) -> Vec<Result<LockGuard, StateError>> {
    let start = Arc::new(Barrier::new(2));
    std::thread::scope(|scope| {
        let handles: Vec<_> = stores
            .iter()
            .map(|s| {
                let start = start.clone();
                scope.spawn(move || {
                    start.wait();
                    s.lock("up")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// The backend's conditional writes themselves refuse a stale writer (not only our
/// read-before-write): an If-Match on `old`, an older version, and a create-only write over an
/// existing object.
fn conditional_writes_are_refused(b: &StateStore, old: Version) {
    let stale = b
        .backend()
        .put("acura-static.state.json", b"{}", Precondition::IfMatch(old));
    assert!(
        matches!(stale, Err(BackendError::Changed { .. })),
        "{stale:?}"
    );
    let create = b
        .backend()
        .put("acura-static.state.json", b"{}", Precondition::CreateOnly);
    assert!(
        matches!(create, Err(BackendError::Changed { .. })),
        "{create:?}"
    );
}

#[test]
fn two_writers_exactly_one_takes_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    make_bucket("lock-race");
    let cfg = cluster(
        dir.path(),
        "backend = \"s3\"\nbucket = \"lock-race\"\nprefix = \"team/\"",
    );
    let stores = [
        store(&cfg, &dir.path().join("a")),
        store(&cfg, &dir.path().join("b")),
    ];
    // Connected first, so both lock calls are the PutObject alone.
    for s in &stores {
        assert!(s.read_lock().unwrap().is_none());
    }
    let results = race_for_the_lock(&stores);
    let won: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    let lost = results.iter().find_map(|r| r.as_ref().err()).unwrap();
    match lost {
        StateError::Locked { info, .. } => assert_eq!(info.id, won[0].info.id),
        other => panic!("{other:?}"),
    }
    assert_eq!(lost.code(), "AH210");
    let held = stores[0].read_lock().unwrap().expect("the lock object");
    assert_eq!(held.id, won[0].info.id);
    assert_eq!(s3_object("lock-race", "team/acura-static.lock").status, 200);
    drop(results);
    // Released by the winner (its own record only): the next run gets it.
    assert!(stores[1].read_lock().unwrap().is_none());
    let again = stores[1].lock("down").unwrap();
    assert!(matches!(
        stores[0].lock("up"),
        Err(StateError::Locked { .. })
    ));
    drop(again);
}

#[test]
fn a_writer_with_a_stale_etag_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    make_bucket("stale-etag");
    let cfg = cluster(dir.path(), "backend = \"s3\"\nbucket = \"stale-etag\"");
    let a = store(&cfg, &dir.path().join("a"));
    let b = store(&cfg, &dir.path().join("b"));
    let mut sa = a.load_or_new("static").unwrap();
    a.save(&mut sa).unwrap();
    let mut sb = b.load().unwrap().expect("b reads a's first state");
    a.save(&mut sa).unwrap();
    // b still holds serial 1's ETag: refused, nothing written.
    sb.steps.insert(
        "stale".into(),
        acura_ha::state::StepRecord {
            completed_at: "now".into(),
            inputs: String::new(),
        },
    );
    let err = b.save(&mut sb).unwrap_err();
    assert!(
        matches!(err, StateError::Backend(BackendError::Changed { .. })),
        "{err:?}"
    );
    assert_eq!(err.code(), "AH214");
    assert!(
        err.to_string()
            .contains("s3://stale-etag/acura-static.state.json"),
        "{err}"
    );
    assert!(err.help().unwrap().contains("nothing was overwritten"));
    let now = a.load().unwrap().unwrap();
    assert_eq!(now.serial, 2);
    assert!(now.steps.is_empty());
    // The conditional write itself is refused too (not only our read-before-write): an
    // If-Match on an old ETag.
    let old = b.backend().get("acura-static.state.json.bak").unwrap();
    let old = old.expect("the previous version is kept as .bak (versioning is off)");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&old.bytes).unwrap()["serial"],
        1
    );
    conditional_writes_are_refused(&b, old.version);
    // Encrypted at rest, as asked, and not readable anonymously.
    let got = s3_object("stale-etag", "acura-static.state.json");
    assert_eq!(got.header("x-amz-server-side-encryption"), Some("AES256"));
    let url = format!("{}/stale-etag/acura-static.state.json", moto());
    assert_eq!(aws::http("GET", &url, &[], b"").unwrap().status, 403);
}

#[test]
fn a_dead_runs_lock_is_shown_and_state_unlock_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    make_bucket("dead-lock");
    let cfg = cluster(dir.path(), "backend = \"s3\"\nbucket = \"dead-lock\"");
    let st = dir.path().join("st");
    let s = store(&cfg, &st);
    // What a run killed with SIGKILL on another machine leaves: its record.
    let dead = LockInfo {
        id: "c0ffee".into(),
        operation: "up".into(),
        owner: "someone".into(),
        host: "elsewhere".into(),
        pid: 4242,
        started_at: "2026-11-30T00:00:00Z".into(),
    };
    s.backend()
        .put(
            "acura-static.lock",
            serde_json::to_string(&dead).unwrap().as_bytes(),
            Precondition::CreateOnly,
        )
        .unwrap();
    let refused = s.lock("up").unwrap_err();
    assert!(
        refused.help().unwrap().contains("state unlock c0ffee"),
        "{refused:?}"
    );
    assert!(refused.help().unwrap().contains("old"), "{refused:?}");
    acura_ha()
        .args(["state", "show", "-c"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(&st)
        .assert()
        .code(0)
        .stdout(contains("locked: `up` by someone@elsewhere"))
        .stdout(contains("c0ffee"));
    acura_ha()
        .args(["state", "unlock", "-c"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(&st)
        .arg("wrong-id")
        .assert()
        .code(1)
        .stderr(contains("error[AH212]"));
    acura_ha()
        .args(["state", "unlock", "-c"])
        .arg(&cfg)
        .arg("--state-dir")
        .arg(&st)
        .arg("c0ffee")
        .assert()
        .code(0)
        .stdout(contains("unlocked"));
    assert!(s.read_lock().unwrap().is_none());
    assert_eq!(s3_object("dead-lock", "acura-static.lock").status, 404);
    // A dead process's record on this host is replaced by the next run.
    let mut here = dead.clone();
    here.host = gethostname();
    here.pid = 999_999_999;
    s.backend()
        .put(
            "acura-static.lock",
            serde_json::to_string(&here).unwrap().as_bytes(),
            Precondition::CreateOnly,
        )
        .unwrap();
    let g = s.lock("up").unwrap();
    assert_ne!(g.info.id, "c0ffee");
}

fn gethostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn migrate_round_trips_local_s3_local() {
    let dir = tempfile::tempdir().unwrap();
    make_bucket("migrate");
    let keys = "bucket = \"migrate\"\nprefix = \"ci/\"";
    let cfg = cluster(dir.path(), &format!("backend = \"local\"\n{keys}"));
    let st = dir.path().join("st");
    let local = store(&cfg, &st);
    let mut state = local.load_or_new("static").unwrap();
    local.save(&mut state).unwrap();
    local.save(&mut state).unwrap();
    let original = std::fs::read(local.state_path()).unwrap();
    let migrate = |to: &str| {
        let mut c = acura_ha();
        c.args(["state", "migrate", "--to", to, "-c"])
            .arg(&cfg)
            .arg("--state-dir")
            .arg(&st);
        c
    };
    migrate("s3")
        .assert()
        .code(0)
        .stdout(contains("serial 2"))
        .stdout(contains("s3://migrate/ci/acura-static.state.json"));
    let in_s3 = s3_object("migrate", "ci/acura-static.state.json");
    assert_eq!(in_s3.status, 200);
    assert_eq!(in_s3.body.as_bytes(), original.as_slice());
    // Now the file says s3; the local copy is gone (as if on another machine).
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("backend = \"local\"", "backend = \"s3\""),
    )
    .unwrap();
    std::fs::remove_file(local.state_path()).unwrap();
    migrate("s3")
        .assert()
        .code(1)
        .stderr(contains("error[AH219]"))
        .stderr(contains("already in s3"));
    migrate("local")
        .assert()
        .code(0)
        .stdout(contains("serial 2"));
    assert_eq!(std::fs::read(local.state_path()).unwrap(), original);
    let back = local.load().unwrap().unwrap();
    assert_eq!((back.serial, &back.lineage), (2, &state.lineage));
    // A target holding another lineage is refused, and left as it was.
    let mut other = acura_ha::state::State::new("acura-static", "static");
    other.serial = 7;
    let other_text = serde_json::to_string_pretty(&other).unwrap();
    std::fs::write(local.state_path(), &other_text).unwrap();
    migrate("local")
        .assert()
        .code(1)
        .stderr(contains("error[AH218]"))
        .stderr(contains(other.lineage.as_str()));
    assert_eq!(
        std::fs::read_to_string(local.state_path()).unwrap(),
        other_text
    );
}

/// The host-key pins travel with the state: pushed when a run releases the lock, pulled when
/// the next run (another operator's machine: another state directory) takes it.
#[test]
fn pins_are_shared_beside_the_state() {
    let dir = tempfile::tempdir().unwrap();
    make_bucket("pins");
    let cfg = cluster(dir.path(), "backend = \"s3\"\nbucket = \"pins\"");
    let first = store(&cfg, &dir.path().join("alice"));
    let g = first.lock("up").unwrap();
    let pins = "acura-static-1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ5w7ZQ0f1xVbqYzjH8Vt2Gz3QbXbXbXbXbXbXbXbXbX\n";
    first.cluster_dir().create().unwrap();
    std::fs::write(first.cluster_dir().known_hosts(), pins).unwrap();
    drop(g);
    assert_eq!(s3_object("pins", "acura-static.known_hosts").body, pins);
    let second = store(&cfg, &dir.path().join("bob"));
    assert!(!second.cluster_dir().known_hosts().exists());
    let _g = second.lock("node add").unwrap();
    assert_eq!(
        std::fs::read_to_string(second.cluster_dir().known_hosts()).unwrap(),
        pins
    );
    // Never a private key: only the pins object and the state's own objects are written.
    let list = aws::http(
        "GET",
        &format!("{}/pins", moto()),
        &[("Authorization", &aws::fake_sigv4("s3", aws::REGION))],
        b"",
    )
    .unwrap();
    assert!(
        list.body.contains("acura-static.known_hosts"),
        "{}",
        list.body
    );
    assert!(!list.body.contains("id_ed25519"), "{}", list.body);
}

/// The lifecycle with the state in S3: `up --only provision`, `plan` shows no
/// resource change, `down`; no state file is written next to the cluster file, and the
/// account (moto's EC2/ELBv2) is left as it was.
#[test]
fn lifecycle_with_the_state_in_s3() {
    let url = moto();
    make_bucket("life");
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("id.pub");
    std::fs::write(&public, format!("{}\n", aws::TEST_PUBLIC_KEY)).unwrap();
    let text = std::fs::read_to_string(common::example("aws.toml"))
        .unwrap()
        .replace("name = \"acura-aws\"", "name = \"s3life\"")
        .replace(
            "region = \"eu-central-1\"",
            &format!("region = \"{}\"", aws::REGION),
        )
        .replace(
            "public_key_file = \"~/.ssh/id_ed25519.pub\"",
            "public_key_file = \"id.pub\"",
        );
    let cfg = dir.path().join("cluster.toml");
    std::fs::write(
        &cfg,
        format!("{text}\n[state]\nbackend = \"s3\"\nbucket = \"life\"\nprefix = \"ci/\"\n"),
    )
    .unwrap();
    let before = aws::inventory(url);
    let run = |args: &[&str]| {
        let o = std::process::Command::new(assert_cmd::cargo::cargo_bin("acura-ha"))
            .args(args)
            .arg("-c")
            .arg(&cfg)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&["up", "--only", "provision", "--yes"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let state = s3_object("life", "ci/s3life.state.json");
    assert_eq!(state.status, 200);
    let v: serde_json::Value = serde_json::from_str(&state.body).unwrap();
    assert!(v["resources"].as_array().unwrap().len() > 3, "{v}");
    assert!(
        !dir.path().join(".acura-ha/s3life.state.json").exists(),
        "the state lives in the bucket only"
    );
    assert_eq!(s3_object("life", "ci/s3life.lock").status, 404, "released");
    let (code, out, err) = run(&["plan", "--output", "json"]);
    assert_eq!(code, Some(2), "bootstrap steps are still pending: {err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let s = &plan["summary"];
    assert_eq!(
        (
            s["create"].as_u64(),
            s["replace"].as_u64(),
            s["delete"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{s}"
    );
    // The janitor sees the lock where the state is (the bucket), not only in the state
    // directory: while a run holds it, the cluster is left and named (review finding).
    let held = store(&cfg, &dir.path().join(".acura-ha"))
        .lock("node add")
        .unwrap();
    let cloud = aws::inventory(url);
    let janitor = [
        "janitor",
        "--older-than",
        "0s",
        "--tag",
        "acura-ha/cluster=s3life",
        "--yes",
    ];
    let (code, out, err) = run(&janitor);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        err.contains("cluster \"s3life\" is left: its state is locked by"),
        "{err}"
    );
    let diff = aws::inventory_diff(&cloud, &aws::inventory(url));
    assert!(
        diff["added"].as_object().unwrap().is_empty()
            && diff["removed"].as_object().unwrap().is_empty(),
        "the janitor changed a locked cluster: {diff:#}"
    );
    drop(held);
    let (code, out, err) = run(&["down", "--yes"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let diff = aws::inventory_diff(&before, &aws::inventory(url));
    assert!(
        diff["added"].as_object().unwrap().is_empty()
            && diff["removed"].as_object().unwrap().is_empty(),
        "the account changed: {diff:#}"
    );
}

/// Two real `up` runs on one state in S3: the first holds the lock (its EC2 calls go through
/// the fault proxy, which holds them unanswered), the second is refused naming it; the first is
/// killed with SIGKILL, its lock stays, `state show` names its owner and `state unlock` removes
/// it.
#[test]
fn a_second_up_is_refused_and_a_killed_runs_lock_is_unlocked() {
    let url = moto();
    make_bucket("kill");
    let proxy = aws::Proxy::start(url);
    proxy.set_rules(serde_json::json!([{"action": "*", "fault": "hang"}]));
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("id.pub");
    std::fs::write(&public, format!("{}\n", aws::TEST_PUBLIC_KEY)).unwrap();
    let text = std::fs::read_to_string(common::example("aws.toml"))
        .unwrap()
        .replace("name = \"acura-aws\"", "name = \"s3kill\"")
        .replace(
            "region = \"eu-central-1\"",
            &format!("region = \"{}\"", aws::REGION),
        )
        .replace(
            "public_key_file = \"~/.ssh/id_ed25519.pub\"",
            "public_key_file = \"id.pub\"",
        );
    let cfg = dir.path().join("cluster.toml");
    std::fs::write(
        &cfg,
        format!("{text}\n[state]\nbackend = \"s3\"\nbucket = \"kill\"\n"),
    )
    .unwrap();
    let up = || {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("acura-ha"));
        c.args(["up", "--only", "provision", "--yes", "-c"])
            .arg(&cfg)
            .env("AWS_ENDPOINT_URL_EC2", proxy.url())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        c
    };
    let mut first = up().spawn().unwrap();
    // Wait (not a timing assertion: the deadline only turns a hang into a failure) until the
    // first run holds the lock and is stuck inside the run.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while s3_object("kill", "s3kill.lock").status != 200
        || proxy.rules()[0]["fired"].as_u64().unwrap_or(0) == 0
    {
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first run ended before it was stuck"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the first run never held the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let second = up().stderr(std::process::Stdio::piped()).output().unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(err.contains("error[AH210]"), "{err}");
    assert!(err.contains(&format!("(pid {})", first.id())), "{err}");
    first.kill().unwrap();
    first.wait().unwrap();
    let shown = acura_ha()
        .args(["state", "show", "--output", "json", "-c"])
        .arg(&cfg)
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let shown: serde_json::Value = serde_json::from_slice(&shown).unwrap();
    assert_eq!(shown["lock"]["pid"], first.id());
    assert_eq!(shown["lock"]["operation"], "up");
    let id = shown["lock"]["id"].as_str().unwrap().to_string();
    acura_ha()
        .args(["state", "unlock", "-c"])
        .arg(&cfg)
        .arg(&id)
        .assert()
        .code(0)
        .stdout(contains("unlocked"));
    assert_eq!(s3_object("kill", "s3kill.lock").status, 404);
}

#[test]
fn a_public_bucket_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    make_bucket("public-one");
    let r = aws::http(
        "PUT",
        &format!("{}/public-one?acl", moto()),
        &[("x-amz-acl", "public-read")],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200, "PutBucketAcl: {}", r.body);
    let cfg = cluster(dir.path(), "backend = \"s3\"\nbucket = \"public-one\"");
    let err = store(&cfg, &dir.path().join("st")).load().unwrap_err();
    assert_eq!(err.code(), "AH216", "{err:?}");
    assert!(err.to_string().contains("AllUsers"), "{err}");
}

#[test]
fn s3_without_a_bucket_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cluster(dir.path(), "backend = \"s3\"");
    acura_ha()
        .args(["state", "show", "-c"])
        .arg(&cfg)
        .assert()
        .code(1)
        .stderr(contains("cluster.toml:"))
        .stderr(contains("needs state.bucket"));
}

// ---------------------------------------------------------------------------------------------
// Swift, against the fake cloud's object store (`tests/fake-openstack/src/swift.rs`).

/// The fake cloud; `OS_CLIENT_CONFIG_FILE` points at its `clouds.yaml` (cloud `fake`) for the
/// stores made here and the binaries run.
fn fake_cloud() -> &'static fake_openstack::FakeCloud {
    static FAKE: OnceLock<(fake_openstack::FakeCloud, tempfile::TempDir)> = OnceLock::new();
    &FAKE
        .get_or_init(|| {
            let fake = fake_openstack::FakeCloud::start(fake_openstack::Config::default());
            let dir = tempfile::tempdir().unwrap();
            let clouds = dir.path().join("clouds.yaml");
            std::fs::write(&clouds, fake.clouds_yaml("fake")).unwrap();
            // SAFETY: as in `moto()`: set once, inside the initialiser, before any reader.
            unsafe {
                std::env::set_var("OS_CLIENT_CONFIG_FILE", &clouds);
                std::env::remove_var("OS_CLOUD");
                std::env::remove_var("OS_AUTH_URL");
            }
            (fake, dir)
        })
        .0
}

fn swift_cluster(dir: &Path, container: &str, backend: &str) -> PathBuf {
    fake_cloud();
    cluster(
        dir,
        &format!(
            "backend = \"{backend}\"\ncontainer = \"{container}\"\ncloud = \"fake\"\nprefix = \"p/\""
        ),
    )
}

#[test]
fn swift_two_writers_one_lock_and_a_stale_writer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = swift_cluster(dir.path(), "race", "swift");
    let stores = [
        store(&cfg, &dir.path().join("a")),
        store(&cfg, &dir.path().join("b")),
    ];
    for s in &stores {
        assert!(s.read_lock().unwrap().is_none());
    }
    let results = race_for_the_lock(&stores);
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .any(|r| matches!(r, Err(StateError::Locked { .. }))),
        "{results:?}"
    );
    drop(results);
    assert!(stores[0].read_lock().unwrap().is_none(), "released");

    let (a, b) = (&stores[0], &stores[1]);
    let mut sa = a.load_or_new("static").unwrap();
    a.save(&mut sa).unwrap();
    let mut sb = b.load().unwrap().unwrap();
    a.save(&mut sa).unwrap();
    let err = b.save(&mut sb).unwrap_err();
    assert_eq!(err.code(), "AH214", "{err:?}");
    assert!(
        err.to_string()
            .contains("swift://race/p/acura-static.state.json"),
        "{err}"
    );
    assert_eq!(a.load().unwrap().unwrap().serial, 2);
    // The fake honours If-Match itself, as the backend asks.
    let old = b
        .backend()
        .get("acura-static.state.json.bak")
        .unwrap()
        .expect(".bak kept");
    conditional_writes_are_refused(b, old.version);
}

#[test]
fn swift_dead_lock_unlock_and_migrate_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = swift_cluster(dir.path(), "mig", "local");
    let st = dir.path().join("st");
    let local = store(&cfg, &st);
    let mut state = local.load_or_new("static").unwrap();
    local.save(&mut state).unwrap();
    let original = std::fs::read(local.state_path()).unwrap();
    let run = |args: &[&str]| {
        let mut c = acura_ha();
        c.args(args).arg("-c").arg(&cfg).arg("--state-dir").arg(&st);
        c
    };
    run(&["state", "migrate", "--to", "swift"])
        .assert()
        .code(0)
        .stdout(contains("swift://mig/p/acura-static.state.json"));
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("backend = \"local\"", "backend = \"swift\""),
    )
    .unwrap();
    let remote = store(&cfg, &st);
    let got = remote.load_raw().unwrap().unwrap();
    assert_eq!(got.bytes, original);
    // A dead run's lock: shown, refused with its ID, removed by `state unlock`.
    let dead = LockInfo {
        id: "dead-swift".into(),
        operation: "up".into(),
        owner: "someone".into(),
        host: "elsewhere".into(),
        pid: 4242,
        started_at: "2026-11-30T00:00:00Z".into(),
    };
    remote
        .backend()
        .put(
            "acura-static.lock",
            serde_json::to_string(&dead).unwrap().as_bytes(),
            Precondition::CreateOnly,
        )
        .unwrap();
    run(&["state", "show"])
        .assert()
        .code(0)
        .stdout(contains("locked: `up` by someone@elsewhere"));
    run(&["state", "unlock", "dead-swift"])
        .assert()
        .code(0)
        .stdout(contains("unlocked"));
    assert!(remote.read_lock().unwrap().is_none());
    std::fs::remove_file(local.state_path()).unwrap();
    run(&["state", "migrate", "--to", "local"])
        .assert()
        .code(0)
        .stdout(contains("serial 1"));
    assert_eq!(std::fs::read(local.state_path()).unwrap(), original);
}

/// A container anyone can read (`X-Container-Read: .r:*`, which Swift shows on GET, not on the
/// PUT's answer) is refused before the state goes there.
#[test]
fn swift_a_public_container_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = swift_cluster(dir.path(), "public-box", "swift");
    fake_cloud().set_container_read_acl("public-box", Some(".r:*,.rlistings"));
    let err = store(&cfg, &dir.path().join("st")).load().unwrap_err();
    assert_eq!(err.code(), "AH216", "{err:?}");
    assert!(err.to_string().contains(".r:*"), "{err}");
    fake_cloud().set_container_read_acl("public-box", None);
    assert!(store(&cfg, &dir.path().join("st2")).load().is_ok());
}
