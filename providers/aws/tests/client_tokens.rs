//! Hardening (#11.9): with the longest cluster name and hostname prefix the file allows, every
//! RunInstances gets a ClientToken of its own. The fault proxy checks tokens as EC2 does (moto
//! does not): a token sent again with other parameters is IdempotentParameterMismatch, which
//! `<cluster>-<name>-<nanos>` cut to 64 characters gave every node after the first.
//! `cargo test -p acura-ha-aws --test client_tokens`.

mod common;
mod driver;

use acura_ha_api::provider::Provider;
use acura_ha_api::spec::MAX_CLUSTER_NAME;
use acura_ha_aws::AwsProvider;
use common::{Moto, Proxy, items};
use driver::{MemJournal, point_sdk_at, spec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_names_get_a_token_per_instance() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    point_sdk_at(&proxy.url());
    let dir = std::env::temp_dir().join(format!("acura-ha-aws-tokens-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cluster = format!("t{}", "o".repeat(MAX_CLUSTER_NAME - 1));
    let mut spec = spec(&dir, &cluster);
    spec.nodes.hostname_prefix = Some(format!("n{}", "o".repeat(59)));
    let problems = spec.validate();
    assert!(problems.is_empty(), "{problems:?}");
    let provider = AwsProvider::new(dir.clone()).quiet(true);
    let mut journal = MemJournal::default();

    let inv = provider.provision(&spec, &mut journal).await;
    let stats = proxy.stats();
    let inv = inv.unwrap_or_else(|e| panic!("{e}; proxy faults: {:#}", stats["faults_by_action"]));
    assert_eq!(inv.nodes.len(), 3);
    assert_eq!(
        stats["faults_injected"], 0,
        "{:#}",
        stats["faults_by_action"]
    );
    assert_eq!(stats["mutating_by_action"]["RunInstances"], 3, "{stats:#}");
    let created = common::inventory(&moto.url());
    assert_eq!(items(&created["instances"]).len(), 3, "{created:#}");

    provider.destroy(&spec, &mut journal).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
