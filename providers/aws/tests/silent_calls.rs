//! Hardening (#11.12): a call the network swallows — the request read, the connection held open,
//! no answer ever (a middlebox that dropped the flow's state) — is given up after the attempt
//! timeout and retried, so `up` finishes instead of waiting for ever. Against moto behind the
//! fault proxy's `hang` fault, with the timeouts shortened through the variables the provider
//! reads (`ACURA_HA_AWS_ATTEMPT_TIMEOUT_SECS`, `ACURA_HA_AWS_READ_TIMEOUT_SECS`).
//! `cargo test -p acura-ha-aws --test silent_calls`.

mod common;
mod driver;

use std::time::{Duration, Instant};

use acura_ha_api::provider::{Journal, Provider};
use acura_ha_aws::AwsProvider;
use common::{Moto, Proxy, items};
use driver::{MemJournal, point_sdk_at, spec};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provision_with_silent_calls_finishes() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    point_sdk_at(&proxy.url());
    for (k, v) in [
        ("ACURA_HA_AWS_ATTEMPT_TIMEOUT_SECS", "2"),
        ("ACURA_HA_AWS_READ_TIMEOUT_SECS", "2"),
        ("ACURA_HA_AWS_CONNECT_TIMEOUT_SECS", "2"),
    ] {
        // SAFETY: the only test in this binary; no other thread reads the environment now.
        unsafe { std::env::set_var(k, v) };
    }
    let dir = std::env::temp_dir().join(format!("acura-ha-aws-silent-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = spec(&dir, "silent");
    let provider = AwsProvider::new(dir.clone()).quiet(true);
    let mut journal = MemJournal::default();

    // The first RunInstances and CreateLoadBalancer, then one call in four, five times, are read
    // and never answered.
    let hung = 5;
    proxy.set_rules(json!([
        { "action": "RunInstances", "fault": "hang", "times": 1 },
        { "action": "CreateLoadBalancer", "fault": "hang", "times": 1 },
        { "action": "*", "fault": "hang", "every": 4, "times": hung }
    ]));
    let t0 = Instant::now();
    // Without timeouts the first silent call waits for ever: the bound makes that a failure.
    let inv = tokio::time::timeout(
        Duration::from_secs(150),
        provider.provision(&spec, &mut journal),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "provision still waiting after {:?}: a silent call was never given up; proxy rules: {:#}",
            t0.elapsed(),
            proxy.rules()
        )
    })
    .expect("provision succeeds once the silent calls are retried");
    eprintln!("provision with {hung} silent calls: {:?}", t0.elapsed());
    let rules = proxy.rules();
    for (k, times) in [(0, 1), (1, 1), (2, hung)] {
        assert_eq!(rules[k]["fired"], times, "every hang fired: {rules:#}");
    }
    let stats = proxy.stats();
    let hung_actions: Vec<&str> = stats["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["fault"] == "hang")
        .map(|l| l["action"].as_str().unwrap_or("(a JSON-protocol call)"))
        .collect();
    eprintln!("silent: {hung_actions:?}");
    assert_eq!(inv.nodes.len(), 3, "{inv:?}");
    // A silent call was not forwarded: no duplicate of anything.
    let created = common::inventory(&moto.url());
    assert_eq!(items(&created["instances"]).len(), 3, "{created:#}");
    assert_eq!(items(&created["load_balancers"]).len(), 1, "{created:#}");

    proxy.set_rules(json!([]));
    provider.destroy(&spec, &mut journal).await.unwrap();
    assert!(journal.all().is_empty(), "{:#?}", journal.all());
    let _ = std::fs::remove_dir_all(&dir);
}
