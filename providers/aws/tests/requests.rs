//! Requests of `provision` and `destroy` (#12): what an answer already gave is not read again,
//! and nothing is created before the quota preflight's reads. Against a real moto_server behind
//! the fault proxy, which logs every request in arrival order.
//!
//! A fresh cluster: no DescribeTargetHealth (target groups made by this run have no
//! registrations), no DescribeListeners (a load balancer made by this run has no listener), one
//! DescribeTargetGroups (the region's list serves the lookups and the prune), no rule describe
//! before an authorize (a group made by this run has no rule); requests ≤ 2 × mutating calls. A
//! second provision makes no mutating call. `destroy` leaves nothing.
//! `cargo test -p acura-ha-aws --test requests`.

mod common;
mod driver;

use acura_ha_api::provider::Provider;
use acura_ha_aws::AwsProvider;
use common::{Moto, Proxy, items};
use driver::{MemJournal, point_sdk_at, spec};
use serde_json::Value;

fn count(stats: &Value, action: &str) -> u64 {
    stats["by_action"][action].as_u64().unwrap_or(0)
}

fn actions(stats: &Value) -> Vec<(String, bool)> {
    stats["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["action"]
                    .as_str()
                    .unwrap_or(l["service"].as_str().unwrap_or("?"))
                    .to_string(),
                l["mutating"] == true,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_reads_nothing_an_answer_gave() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    point_sdk_at(&proxy.url());
    let dir = std::env::temp_dir().join(format!("acura-ha-aws-requests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = spec(&dir, "reqs");
    let provider = AwsProvider::new(dir.clone()).quiet(true);
    let mut journal = MemJournal::default();

    proxy.reset_stats();
    let inv = provider
        .provision(&spec, &mut journal)
        .await
        .expect("provision");
    assert_eq!(inv.nodes.len(), 3, "{inv:?}");
    let stats = proxy.stats();
    let log = actions(&stats);
    eprintln!("fresh provision: {log:?}");
    for action in ["DescribeTargetHealth", "DescribeListeners"] {
        assert_eq!(count(&stats, action), 0, "{action}: {log:?}");
    }
    assert_eq!(count(&stats, "DescribeTargetGroups"), 1, "{log:?}");
    assert_eq!(count(&stats, "RegisterTargets"), 6, "{log:?}");
    // Before each group's authorize, no describe of its rules (after it, moto's answer lists only
    // the last permission's rules, so the provider reads the rest; AWS's answer lists all).
    let first_authorize = log
        .iter()
        .position(|(a, _)| a == "AuthorizeSecurityGroupIngress")
        .expect("rules authorized");
    assert!(
        !log[..first_authorize]
            .iter()
            .any(|(a, _)| a == "DescribeSecurityGroupRules"),
        "{log:?}"
    );
    // The quota verdict gates every create: each create arrives after the last quota read.
    let last_quota_read = log
        .iter()
        .rposition(|(a, _)| a == "servicequotas" || a == "DescribeInstanceTypes")
        .expect("quotas read");
    let first_create = log.iter().position(|(_, m)| *m).expect("creates");
    assert!(last_quota_read < first_create, "{log:?}");
    let (total, mutating) = (
        stats["total"].as_u64().unwrap(),
        stats["mutating"].as_u64().unwrap(),
    );
    assert!(
        total <= 2 * mutating,
        "{total} requests for {mutating} mutating: {log:?}"
    );

    proxy.reset_stats();
    provider
        .provision(&spec, &mut journal)
        .await
        .expect("second provision");
    let stats = proxy.stats();
    assert_eq!(stats["mutating"], 0, "{:?}", actions(&stats));

    provider
        .destroy(&spec, &mut journal)
        .await
        .expect("destroy");
    let left = common::inventory(&moto.url());
    for kind in [
        "instances",
        "security_groups",
        "key_pairs",
        "load_balancers",
        "target_groups",
    ] {
        assert!(items(&left[kind]).is_empty(), "{kind} left: {left:#}");
    }
}
