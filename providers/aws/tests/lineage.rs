//! Ownership (#9.4) on AWS against a real moto_server: what the provider makes carries the
//! state's lineage; another state's provider (same cluster name, same account) refuses to adopt
//! it, naming the resource, and its discovery and destroy (`down --discover` with a state) leave
//! it alone. `cargo test -p acura-ha-aws --test lineage`.

mod common;
mod driver;

use std::path::PathBuf;

use acura_ha_api::provider::{Provider, ProviderError};
use acura_ha_aws::AwsProvider;
use common::Moto;
use driver::{MemJournal, point_sdk_at, spec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_lineage_is_refused_and_left_alone() {
    let moto = Moto::start();
    let url = moto.url();
    point_sdk_at(&url);
    let dir: PathBuf =
        std::env::temp_dir().join(format!("acura-ha-aws-lineage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let provider = AwsProvider::new(dir.clone()).quiet(true);
    let before = common::inventory(&url);

    let mut ours = spec(&dir, "twin");
    ours.lineage = Some("lineage-A".into());
    let mut journal = MemJournal::default();
    provider.provision(&ours, &mut journal).await.unwrap();
    let made = common::inventory(&url);
    let tagged = made.to_string();
    assert!(
        tagged.contains("lineage-A"),
        "resources carry the lineage: {made:#}"
    );

    let mut theirs = spec(&dir, "twin");
    theirs.lineage = Some("lineage-B".into());
    let mut other = MemJournal::default();
    match provider.provision(&theirs, &mut other).await {
        Err(ProviderError::Cloud {
            resource, message, ..
        }) => {
            // The ownership checks of the lookups run side by side (security group, instances,
            // key pair): whichever answers first is named, and each is right.
            assert!(
                !resource.is_empty()
                    && message.contains(&resource)
                    && message.contains("lineage-A")
                    && message.contains("lineage-B"),
                "names the resource and its lineage: {resource}: {message}"
            );
        }
        other => panic!("another state's cluster is refused: {other:?}"),
    }
    assert_eq!(
        common::inventory_diff(&made, &common::inventory(&url))["added"],
        serde_json::json!({})
    );

    // The other state's `down --discover`: nothing of lineage A is found or deleted.
    let found = provider.discover(&theirs).await.unwrap();
    assert!(
        found.is_empty(),
        "another lineage is not discovered: {found:?}"
    );
    let mut empty = MemJournal::default();
    provider.destroy(&theirs, &mut empty).await.unwrap();
    let after = common::inventory(&url);
    let diff = common::inventory_diff(&made, &after);
    assert!(
        diff["removed"].as_object().unwrap().is_empty(),
        "the first cluster is untouched: {diff:#}"
    );

    // Without a lineage (lost state), discovery finds it all, and the owner deletes it.
    let mut lost = spec(&dir, "twin");
    lost.lineage = None;
    assert!(!provider.discover(&lost).await.unwrap().is_empty());
    provider.destroy(&ours, &mut journal).await.unwrap();
    let diff = common::inventory_diff(&before, &common::inventory(&url));
    assert!(
        diff["added"].as_object().unwrap().is_empty(),
        "the owner's destroy leaves the account as it was: {diff:#}"
    );
}
