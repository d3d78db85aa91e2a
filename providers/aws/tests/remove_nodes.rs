//! Day 2 on AWS against a real moto_server (behind the fault proxy, which counts the calls):
//! provision three nodes behind an NLB, `remove_nodes` one of them, provision again with a new
//! member, and destroy. `cargo test -p acura-ha-aws --test remove_nodes`.

mod common;
mod driver;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use acura_ha_api::model::{Recorded, Status};
use acura_ha_api::provider::{Journal, Provider};
use acura_ha_aws::AwsProvider;
use common::{Moto, Proxy, items, text};
use driver::{MemJournal, point_sdk_at, spec};
use serde_json::{Value, json};

/// Instance ID → state, for every instance moto knows (terminated ones included).
fn states(url: &str) -> BTreeMap<String, String> {
    let out = common::ec2_ok(url, "DescribeInstances", &[]);
    items(&out["reservationSet"])
        .into_iter()
        .flat_map(|r| items(&r["instancesSet"]))
        .map(|i| {
            (
                text(i, "instanceId").to_string(),
                text(&i["instanceState"], "name").to_string(),
            )
        })
        .collect()
}

/// Target group name → the instance IDs registered in it.
fn targets(inv: &Value) -> BTreeMap<String, BTreeSet<String>> {
    items(&inv["target_groups"])
        .into_iter()
        .map(|tg| {
            let ids = items(&tg["targets"])
                .into_iter()
                .map(|t| {
                    let t = t.as_str().unwrap();
                    t.split(':').next().unwrap().to_string()
                })
                .collect();
            (text(tg, "name").to_string(), ids)
        })
        .collect()
}

fn live_ids(inv: &Value) -> BTreeSet<String> {
    items(&inv["instances"])
        .into_iter()
        .map(|i| text(i, "id").to_string())
        .collect()
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn mutating(proxy: &Proxy) -> Value {
    proxy.stats()["mutating_by_action"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_a_node_then_add_one_then_destroy() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    let url = moto.url();
    point_sdk_at(&proxy.url());
    let dir: PathBuf = std::env::temp_dir().join(format!("acura-ha-aws-rm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut spec = spec(&dir, "rmnode");
    let provider = AwsProvider::new(dir.clone()).quiet(true);
    let mut journal = MemJournal::default();
    let before = common::inventory(&url);

    // Three nodes behind the NLB.
    provider.provision(&spec, &mut journal).await.unwrap();
    let (n1, n2, n3) = (
        journal.id("instance[acura-1]"),
        journal.id("instance[acura-2]"),
        journal.id("instance[acura-3]"),
    );
    let created = common::inventory(&url);
    assert_eq!(live_ids(&created), set(&[&n1, &n2, &n3]), "{created:#}");
    assert_eq!(items(&created["volumes"]).len(), 3);
    let tgs = targets(&created);
    assert_eq!(tgs.len(), 6, "{created:#}");
    for (tg, ids) in &tgs {
        assert_eq!(ids, &set(&[&n1, &n2, &n3]), "{tg}");
    }
    let untouched: Vec<Recorded> = journal
        .all()
        .into_iter()
        .filter(|r| r.address != "instance[acura-2]" && !r.address.starts_with("member[acura-2:"))
        .collect();

    // Remove acura-2.
    proxy.reset_stats();
    journal.history.clear();
    provider
        .remove_nodes(&spec, &["acura-2".to_string()], &mut journal)
        .await
        .unwrap();
    assert_eq!(states(&url)[&n2], "terminated");
    let after_remove = common::inventory(&url);
    assert_eq!(
        live_ids(&after_remove),
        set(&[&n1, &n3]),
        "{after_remove:#}"
    );
    let tgs = targets(&after_remove);
    assert_eq!(tgs.len(), 6);
    for (tg, ids) in &tgs {
        assert_eq!(ids, &set(&[&n1, &n3]), "{tg}: {after_remove:#}");
    }
    // Its root volume went with it; the others' stay.
    assert_eq!(items(&after_remove["volumes"]).len(), 2, "{after_remove:#}");
    assert!(journal.get("instance[acura-2]").is_none());
    assert_eq!(journal.all(), untouched, "the other records are untouched");
    // Its registrations' records are forgotten once it is deregistered (#9.1); write-ahead:
    // Deleting was recorded before the instance's record was forgotten.
    let mut expected: Vec<(String, Option<Status>)> = acura_ha_api::tables::LISTENERS
        .iter()
        .map(|l| {
            let key = acura_ha_api::targets::shared::listener_key(l);
            (format!("member[acura-2:{key}]"), None)
        })
        .collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    let (mut members, rest): (Vec<_>, Vec<_>) = journal
        .history
        .iter()
        .cloned()
        .partition(|(a, _)| a.starts_with("member["));
    members.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(members, expected, "{:?}", journal.history);
    assert_eq!(
        rest,
        [
            ("instance[acura-2]".to_string(), Some(Status::Deleting)),
            ("instance[acura-2]".to_string(), None),
        ]
    );
    let calls = mutating(&proxy);
    assert_eq!(calls["DeregisterTargets"], 6, "{calls:#}");
    assert_eq!(calls["TerminateInstances"], 1, "{calls:#}");
    assert!(calls.get("RegisterTargets").is_none(), "{calls:#}");

    // The same call again: nothing to do, and success.
    proxy.reset_stats();
    let journal_before = journal.all();
    provider
        .remove_nodes(&spec, &["acura-2".to_string()], &mut journal)
        .await
        .unwrap();
    assert_eq!(journal.all(), journal_before);
    assert_eq!(mutating(&proxy), json!({}), "a no-op makes no change");
    assert_eq!(common::inventory(&url), after_remove);

    // The engine adds acura-4: provision creates only its instance and registers it everywhere.
    spec.nodes.members = Some(vec![
        "acura-1".to_string(),
        "acura-3".to_string(),
        "acura-4".to_string(),
    ]);
    proxy.reset_stats();
    provider.provision(&spec, &mut journal).await.unwrap();
    let calls = mutating(&proxy);
    assert_eq!(calls["RunInstances"], 1, "{calls:#}");
    for none in [
        "CreateLoadBalancer",
        "CreateTargetGroup",
        "CreateListener",
        "CreateSecurityGroup",
        "ImportKeyPair",
    ] {
        assert!(calls.get(none).is_none(), "{none}: {calls:#}");
    }
    let n4 = journal.id("instance[acura-4]");
    assert!(![&n1, &n2, &n3].contains(&&n4));
    assert_eq!(
        journal.get("instance[acura-4]").unwrap().status,
        Status::Ready
    );
    assert_eq!(journal.id("instance[acura-1]"), n1);
    assert_eq!(journal.id("instance[acura-3]"), n3);
    assert!(journal.get("instance[acura-2]").is_none());
    // Its registrations are recorded, acura-2's are not.
    let members: Vec<(String, String)> = journal
        .all()
        .into_iter()
        .filter(|r| r.address.starts_with("member["))
        .map(|r| (r.address, r.id.unwrap_or_default()))
        .collect();
    assert_eq!(members.len(), 18, "{members:?}");
    assert_eq!(
        members
            .iter()
            .filter(|(a, id)| a.starts_with("member[acura-4:") && id == &n4)
            .count(),
        6,
        "{members:?}"
    );
    assert!(
        !members
            .iter()
            .any(|(a, _)| a.starts_with("member[acura-2:")),
        "{members:?}"
    );
    let grown = common::inventory(&url);
    assert_eq!(live_ids(&grown), set(&[&n1, &n3, &n4]), "{grown:#}");
    assert_eq!(items(&grown["volumes"]).len(), 3);
    let tgs = targets(&grown);
    assert_eq!(tgs.len(), 6);
    for (tg, ids) in &tgs {
        assert_eq!(ids, &set(&[&n1, &n3, &n4]), "{tg}: {grown:#}");
    }
    // The new node fills the subnet acura-2 left.
    let subnet_of = |inv: &Value, id: &str| {
        items(&inv["instances"])
            .into_iter()
            .find(|i| text(i, "id") == id)
            .map(|i| text(i, "subnet").to_string())
    };
    let left = subnet_of(&created, &n2);
    assert!(left.as_ref().is_some_and(|s| !s.is_empty()), "{created:#}");
    assert_eq!(subnet_of(&grown, &n4), left);

    // down leaves the account as it was.
    provider.destroy(&spec, &mut journal).await.unwrap();
    assert!(journal.all().is_empty(), "{:#?}", journal.all());
    let after = common::inventory(&url);
    assert_eq!(
        after,
        before,
        "left behind: {:#}",
        common::inventory_diff(&before, &after)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
