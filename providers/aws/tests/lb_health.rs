//! #13.9 (AWS): `Provider::lb_health` — the NLB's own view of its targets — against moto behind
//! the fault proxy (answers in pages of 2). moto reports a registered running instance
//! `healthy` and a stopped one `unused` with reason `Target.InvalidState` (it runs no health
//! checks). `cargo test -p acura-ha-aws --test lb_health`.

mod common;
mod driver;

use acura_ha_api::provider::Provider;
use acura_ha_aws::AwsProvider;
use common::{Moto, Proxy};
use driver::{MemJournal, point_sdk_at, spec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lb_health_names_every_target_of_every_listener() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    proxy.set_page_size(Some(2));
    point_sdk_at(&proxy.url());
    let dir = std::env::temp_dir().join(format!("acura-ha-aws-health-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = spec(&dir, "health");
    let provider = AwsProvider::new(dir.clone()).quiet(true);
    let mut journal = MemJournal::default();

    // Nothing made yet: the NLB is not known, and the error says what to do.
    let err = provider
        .lb_health(&spec, &acura_ha_api::provider::Journal::all(&journal))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("acura-ha up"), "{err}");

    provider.provision(&spec, &mut journal).await.unwrap();
    let h = provider
        .lb_health(&spec, &acura_ha_api::provider::Journal::all(&journal))
        .await
        .unwrap()
        .expect("an NLB has a view of its targets");
    assert_eq!(h.state, "active", "{h:#?}");
    let listeners: Vec<(u16, &str)> = h
        .listeners
        .iter()
        .map(|l| (l.port, l.protocol.as_str()))
        .collect();
    assert_eq!(
        listeners,
        [
            (80, "TCP"),
            (443, "TCP"),
            (4443, "TCP"),
            (6443, "TCP"),
            (12201, "UDP"),
            (15000, "TCP")
        ]
    );
    for l in &h.listeners {
        let names: Vec<&str> = l.targets.iter().map(|t| t.target.as_str()).collect();
        assert_eq!(names, ["acura-1", "acura-2", "acura-3"], "{l:#?}");
        assert!(
            l.targets
                .iter()
                .all(|t| t.state == "healthy" && t.reason.is_none()),
            "{l:#?}"
        );
    }
    assert!(h.healthy());

    // A stopped node: moto says `unused`, `Target.InvalidState`, on every listener.
    let id = journal.id("instance[acura-2]");
    common::ec2_ok(&moto.url(), "StopInstances", &[("InstanceId.1", &id)]);
    let h = provider
        .lb_health(&spec, &acura_ha_api::provider::Journal::all(&journal))
        .await
        .unwrap()
        .unwrap();
    for l in &h.listeners {
        let t = l.targets.iter().find(|t| t.target == "acura-2").unwrap();
        assert_eq!(t.state, "unused", "{l:#?}");
        assert_eq!(t.reason.as_deref(), Some("Target.InvalidState"), "{l:#?}");
    }
    assert!(!h.healthy());

    // Not the cloud's load balancer: nothing to report.
    let mut nginx = spec.clone();
    nginx.load_balancer.kind = acura_ha_api::spec::LbKind::Nginx;
    assert!(
        provider
            .lb_health(&nginx, &acura_ha_api::provider::Journal::all(&journal))
            .await
            .unwrap()
            .is_none()
    );

    provider.destroy(&spec, &mut journal).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
