//! Ownership (issue 9, item 4): `down --discover` never deletes a cluster whose state lock it
//! can see held. Through the binary against the fake OpenStack cloud (127.0.0.1, two items a
//! page): a cluster is up; its lock is held by a live run (the kernel gate and the record, as a
//! running `acura-ha` holds it), then by a live process's record alone (an older acura-ha that
//! takes no gate); `down --discover --yes` refuses both times with AH210 naming the holder, and
//! the cloud is untouched (no mutating request at all). Once the holder is gone, it proceeds and
//! the cloud is as it was before `up`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use acura_ha::state::StateStore;
use common::fake_cloud;
use fake_openstack::FakeCloud;
use serde_json::Value;

/// The example's cluster name (examples/openstack.toml).
const CLUSTER: &str = "acura-os";

/// examples/openstack.toml pointed at the fake cloud, with a fresh key.
fn cluster_file(dir: &Path) -> PathBuf {
    let text = fake_cloud::cluster_text(&dir.join("id"));
    assert!(text.contains(&format!("name = \"{CLUSTER}\"")), "{text}");
    let path = dir.join("cluster.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(dir: &Path, config: &Path, args: &[&str]) -> Output {
    fake_cloud::run(dir, &dir.join("state"), config, args)
}

fn ok(o: &Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        o.status.success(),
        "{what}: exit {:?}\n--- stdout\n{}\n--- stderr\n{err}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout)
    );
    err
}

/// `down --discover --yes` while the lock is held: refused with AH210 naming `holder`, no
/// mutating request reaches the cloud, the cloud and the state's records stay as they were.
fn refused(fake: &FakeCloud, dir: &Path, config: &Path, holder: &str, when: &str) {
    let up = fake.inventory();
    let state_file = dir.join("state").join(format!("{CLUSTER}.state.json"));
    let records = |p: &Path| -> Value {
        let v: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        v["resources"].clone()
    };
    let recorded = records(&state_file);
    assert!(
        recorded.as_array().is_some_and(|a| a.len() > 10),
        "{when}: {recorded:#}"
    );
    fake.reset_stats();
    let o = run(dir, config, &["down", "--discover", "--yes"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "{when}: down --discover went ahead:\n{err}"
    );
    assert!(err.contains("error[AH210]"), "{when}: {err}");
    assert!(err.contains("is locked"), "{when}: {err}");
    assert!(
        err.contains(holder),
        "{when}: the holder is not named: {err}"
    );
    let stats = fake.stats();
    let mutating: Vec<_> = stats
        .per_route
        .iter()
        .filter(|(route, _)| !route.starts_with("GET ") && !route.starts_with("HEAD "))
        .collect();
    assert_eq!(stats.mutating, 0, "{when}: {mutating:?}");
    assert_eq!(fake.inventory(), up, "{when}: the cloud changed");
    assert_eq!(records(&state_file), recorded, "{when}: the state changed");
}

#[test]
fn down_discover_leaves_a_cluster_whose_state_lock_is_held() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_cloud::start(dir.path());
    let before = fake.inventory();
    let config = cluster_file(dir.path());
    ok(
        &run(dir.path(), &config, &["up", "--only", "provision", "--yes"]),
        "up",
    );
    assert_ne!(fake.inventory(), before, "up made nothing");

    // A running acura-ha holds the lock: the kernel gate and the record.
    let store = StateStore::new(dir.path().join("state"), CLUSTER);
    let held = store.lock("node add").expect("the lock is free");
    let record = std::fs::read_to_string(store.lock_path()).unwrap();
    refused(
        &fake,
        dir.path(),
        &config,
        "`node add`",
        "a live run holds the lock",
    );
    drop(held);

    // A live process's record alone (an older acura-ha takes no gate): still held.
    let mut holder = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    let mut info: Value = serde_json::from_str(&record).unwrap();
    info["pid"] = holder.id().into();
    info["operation"] = "up".into();
    std::fs::write(store.lock_path(), info.to_string()).unwrap();
    refused(
        &fake,
        dir.path(),
        &config,
        &format!("(pid {})", holder.id()),
        "a live process's record",
    );

    // The holder is gone: its record is stale, and down --discover deletes everything.
    holder.kill().unwrap();
    holder.wait().unwrap();
    let err = ok(
        &run(dir.path(), &config, &["down", "--discover", "--yes"]),
        "down --discover once the holder is gone",
    );
    assert!(err.contains("replacing a stale lock"), "{err}");
    assert_eq!(fake.inventory(), before, "down --discover left something");
    assert!(fake.unhandled().is_empty(), "{:?}", fake.unhandled());
}
