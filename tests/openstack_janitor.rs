//! `janitor` on OpenStack (issue 13, item 6), through the binary against the fake cloud
//! (tests/fake-openstack, 127.0.0.1, two items a page). Three clusters share one state
//! directory: an old one, an old one whose state lock a live process holds, and a new one.
//! The fake's test-only control `FakeCloud::age_tagged` moves a cluster's creation times back.
//! The janitor lists the clusters with their ages, leaves an old cluster outside its `--tag`
//! filter, deletes only the old, matching, unlocked one (every resource of it, nothing of the
//! others), says why it left the locked one, and streams its report with `--output json`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::fake_cloud;
use fake_openstack::{FakeCloud, Inventory};
use serde_json::Value;

const HOUR: u64 = 3600;

struct Janitorial {
    fake: FakeCloud,
    dir: tempfile::TempDir,
}

impl Janitorial {
    /// examples/openstack.toml for cluster `name` (its own host names), pointed at the fake.
    fn cluster_file(&self, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
        let dir = self.dir.path();
        let text = fake_cloud::cluster_text(&dir.join(format!("{name}-id")))
            .replace("name = \"acura-os\"", &format!("name = \"{name}\""))
            .replace(
                "hostname_prefix = \"acura\"",
                &format!("hostname_prefix = \"{name}\""),
            );
        let text = edit(text);
        assert!(text.contains(&format!("name = \"{name}\"")), "{text}");
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The state directory every cluster here shares.
    fn states(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn run(&self, config: &Path, args: &[&str]) -> Output {
        fake_cloud::run(self.dir.path(), &self.states(), config, args)
    }
}

/// stdout and stderr of a run that must succeed.
fn ok(o: &Output) -> (String, String) {
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(o.status.success(), "exit {:?}\n{err}\n{out}", o.status);
    (out, err)
}

/// The events of a run streamed with `--output json`, one a line.
fn events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}\n{stdout}")))
        .collect()
}

/// The report of a streamed run: the closing `summary` line's `result`, by cluster.
fn streamed_report(stdout: &str) -> BTreeMap<String, Value> {
    let ev = events(stdout);
    let summary = ev.last().expect("a summary line");
    assert_eq!(summary["type"], "summary", "{stdout}");
    assert_eq!(summary["command"], "janitor", "{summary}");
    assert_eq!(summary["exit_code"], 0, "{summary}");
    summary["result"]
        .as_array()
        .unwrap_or_else(|| panic!("a report: {summary}"))
        .iter()
        .map(|f| (f["cluster"].as_str().unwrap().to_string(), f.clone()))
        .collect()
}

/// The `delete cluster NAME` steps a streamed run announced, with their states.
fn delete_steps(stdout: &str) -> Vec<String> {
    events(stdout)
        .iter()
        .filter(|e| e["type"] == "step")
        .filter_map(|e| {
            let id = e["id"].as_str()?;
            id.starts_with("delete cluster ")
                .then(|| format!("{id}: {}", e["state"].as_str().unwrap_or_default()))
        })
        .collect()
}

/// `a` without one of each of `b`'s resources, kind by kind (names sorted).
fn minus(a: &Inventory, b: &Inventory) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for (kind, names) in &a.kinds {
        let mut left = names.clone();
        for n in b.kinds.get(kind).into_iter().flatten() {
            if let Some(i) = left.iter().position(|x| x == n) {
                left.remove(i);
            }
        }
        left.sort();
        if !left.is_empty() {
            out.insert(kind.clone(), left);
        }
    }
    out
}

fn sorted(a: &Inventory) -> BTreeMap<String, Vec<String>> {
    a.kinds
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| {
            let mut v = v.clone();
            v.sort();
            (k.clone(), v)
        })
        .collect()
}

/// Resources by kind (e.g. what `minus` left) as an `Inventory`.
fn inventory_of(m: BTreeMap<String, Vec<String>>) -> Inventory {
    Inventory { kinds: m }
}

fn age(report: &BTreeMap<String, Value>, cluster: &str) -> u64 {
    report[cluster]["age_secs"]
        .as_u64()
        .unwrap_or_else(|| panic!("{cluster}: {:?}", report.get(cluster)))
}

#[test]
fn janitor_deletes_the_old_matching_unlocked_cluster_only() {
    let dir = tempfile::tempdir().unwrap();
    let j = Janitorial {
        fake: fake_cloud::start(dir.path()),
        dir,
    };
    let empty = j.fake.inventory();

    // Three clusters, one after the other so that each one's resources are known: Octavia
    // load balancers for two, an NGINX server for the one whose lock will be held.
    let old = j.cluster_file("jan-old", |t| t);
    let held = j.cluster_file("jan-held", |t| {
        t.replace("kind = \"cloud\"", "kind = \"nginx\"")
            .replace("anti_affinity", "lb_flavor = \"m1.small\"\nanti_affinity")
    });
    let new = j.cluster_file("jan-new", |t| t);
    ok(&j.run(&old, &["up", "--only", "provision", "--yes"]));
    let with_old = j.fake.inventory();
    ok(&j.run(&held, &["up", "--only", "provision", "--yes"]));
    let with_held = j.fake.inventory();
    ok(&j.run(&new, &["up", "--only", "provision", "--yes"]));
    let all = j.fake.inventory();
    let old_res = inventory_of(minus(&with_old, &empty));
    let held_res = inventory_of(minus(&with_held, &with_old));
    let new_res = inventory_of(minus(&all, &with_held));
    for (what, r) in [
        ("jan-old", &old_res),
        ("jan-held", &held_res),
        ("jan-new", &new_res),
    ] {
        assert_eq!(
            r.count("servers"),
            if what == "jan-held" { 4 } else { 3 },
            "{what}: {r:?}"
        );
    }
    assert_eq!(old_res.count("load_balancers"), 1, "{old_res:?}");

    // jan-old was made three days ago, jan-held 30 hours ago; jan-new just now.
    let aged = j
        .fake
        .age_tagged("acura-ha-cluster=jan-old", Duration::from_secs(72 * HOUR));
    assert!(
        aged >= 4,
        "servers and the load balancer of jan-old: {aged}"
    );
    let aged = j
        .fake
        .age_tagged("acura-ha-cluster=jan-held", Duration::from_secs(30 * HOUR));
    assert!(aged >= 4, "the servers of jan-held: {aged}");

    // The clusters with their ages; none is 1000 hours old.
    let (out, err) = ok(&j.run(&new, &common::janitor_json("1000h")));
    let found = streamed_report(&out);
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        ["jan-held", "jan-new", "jan-old"],
        "{out}"
    );
    assert!(
        (72 * HOUR..73 * HOUR).contains(&age(&found, "jan-old")),
        "{found:?}"
    );
    assert!(
        (30 * HOUR..31 * HOUR).contains(&age(&found, "jan-held")),
        "{found:?}"
    );
    assert!(age(&found, "jan-new") < HOUR, "{found:?}");
    assert!(found.values().all(|f| f["delete"] == false), "{found:?}");
    // Said for a human too (on stderr, stdout carrying the events).
    assert!(
        err.lines()
            .any(|l| l.contains("keep") && l.contains("jan-old") && l.contains("age 3days")),
        "{err}"
    );
    assert!(
        err.contains("no cluster is older than 1month 11days"),
        "{err}"
    );
    assert!(delete_steps(&out).is_empty(), "{out}");
    assert_eq!(
        sorted(&j.fake.inventory()),
        sorted(&all),
        "nothing is old enough"
    );

    // Without a terminal and without --yes, it refuses and deletes nothing.
    let o = j.run(&new, &["janitor", "--older-than", "24h"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("error[AH004]"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        sorted(&j.fake.inventory()),
        sorted(&all),
        "a refused janitor"
    );

    // The tag filter: jan-old is old, but outside `--tag acura-ha/cluster=jan-new`.
    let (out, _) = ok(&j.run(
        &new,
        &[
            "janitor",
            "--older-than",
            "24h",
            "--tag",
            "acura-ha/cluster=jan-new",
            "--yes",
            "--output",
            "json",
        ],
    ));
    let found = streamed_report(&out);
    assert_eq!(found.keys().collect::<Vec<_>>(), ["jan-new"], "{out}");
    assert_eq!(found["jan-new"]["delete"], false, "{out}");
    assert_eq!(
        sorted(&j.fake.inventory()),
        sorted(&all),
        "an old cluster outside the filter is left"
    );

    // A live process holds jan-held's state lock (someone is working on it): the janitor
    // leaves it and says why, keeps the new one, and deletes jan-old whole.
    let lock = acura_ha::state::StateStore::new(j.states(), "jan-held")
        .lock("node add")
        .unwrap();
    let (out, err) = ok(&j.run(&new, &common::janitor_json("24h")));
    let found = streamed_report(&out);
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        ["jan-held", "jan-new", "jan-old"],
        "{out}"
    );
    assert_eq!(found["jan-old"]["delete"], true, "{out}");
    assert!(found["jan-old"].get("skipped").is_none(), "{out}");
    assert_eq!(found["jan-held"]["delete"], false, "{out}");
    let why = found["jan-held"]["skipped"].as_str().unwrap_or_default();
    assert!(
        why.contains("locked by") && why.contains("node add"),
        "{out}"
    );
    assert_eq!(found["jan-new"]["delete"], false, "{out}");
    assert!(found["jan-new"].get("skipped").is_none(), "{out}");
    assert!(
        err.contains("cluster \"jan-held\" is left: its state is locked by"),
        "{err}"
    );
    assert_eq!(
        delete_steps(&out),
        [
            "delete cluster jan-old: started",
            "delete cluster jan-old: done"
        ],
        "{out}"
    );
    assert_eq!(
        sorted(&j.fake.inventory()),
        minus(&all, &old_res),
        "the janitor deleted jan-old and nothing else"
    );
    // jan-old's state lives in this state directory: it is emptied as `down` empties it (its
    // lineage kept), so the next `up` of its file starts clean instead of finding each record
    // "deleted outside acura-ha"; jan-held's, skipped, is untouched.
    let state_of = |cluster: &str| {
        acura_ha::state::StateStore::new(j.states(), cluster)
            .load()
            .unwrap()
            .unwrap_or_else(|| panic!("{cluster} keeps its state file"))
    };
    let old_state = state_of("jan-old");
    assert!(
        old_state.resources.is_empty() && old_state.steps.is_empty(),
        "jan-old's state after the janitor: {:#?}",
        old_state.resources
    );
    assert!(!state_of("jan-held").resources.is_empty());
    // Each resource of jan-old is reported deleted, none as created (what the janitor found is
    // not something it made), none of the others'.
    let resources: Vec<(String, String, String)> = events(&out)
        .iter()
        .filter(|e| e["type"] == "resource")
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("action"), s("state"), s("address"))
        })
        .collect();
    assert!(
        resources.iter().all(|(action, _, _)| action == "delete"),
        "{resources:#?}"
    );
    for server in ["jan-old-1", "jan-old-2", "jan-old-3"] {
        let address = format!("instance[{server}]");
        assert!(
            resources
                .iter()
                .any(|(_, state, a)| state == "done" && *a == address),
            "{address}: {resources:#?}"
        );
    }
    assert!(
        !resources
            .iter()
            .any(|(_, _, a)| a.contains("jan-held") || a.contains("jan-new")),
        "{resources:#?}"
    );

    // The lock released, jan-held goes too (its NGINX server with it, from a cluster file
    // whose load balancer is Octavia); jan-new is still too young.
    drop(lock);
    ok(&j.run(&new, &["janitor", "--older-than", "24h", "--yes"]));
    let left = j.fake.inventory();
    assert_eq!(
        sorted(&left),
        minus(&inventory_of(minus(&all, &old_res)), &held_res),
        "jan-held deleted, jan-new left"
    );
    assert_eq!(minus(&left, &empty), sorted(&new_res), "jan-new whole");
    assert!(state_of("jan-held").resources.is_empty());

    ok(&j.run(&new, &["down", "--yes"]));
    assert_eq!(sorted(&j.fake.inventory()), sorted(&empty), "after down");

    // jan-new's state here is now empty but keeps its lineage. A jan-new made later from
    // another state (another lineage: a CI job elsewhere that died) is still the janitor's to
    // delete: an emptied state says nothing about who made what is found now (review finding:
    // the janitor narrowed discovery to the old lineage, found nothing and said "gone").
    let elsewhere = j.dir.path().join("elsewhere");
    ok(&fake_cloud::run(
        j.dir.path(),
        &elsewhere,
        &new,
        &["up", "--only", "provision", "--yes"],
    ));
    assert_ne!(sorted(&j.fake.inventory()), sorted(&empty));
    j.fake
        .age_tagged("acura-ha-cluster=jan-new", Duration::from_secs(30 * HOUR));
    ok(&j.run(&new, &["janitor", "--older-than", "24h", "--yes"]));
    assert_eq!(
        sorted(&j.fake.inventory()),
        sorted(&empty),
        "the orphan of another lineage is deleted"
    );
    assert!(j.fake.unhandled().is_empty(), "{:?}", j.fake.unhandled());
}
