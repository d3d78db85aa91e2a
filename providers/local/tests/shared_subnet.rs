//! Two clusters on one subnet (run as root): lab A is made on 10.213.147.0/24, lab B (another
//! cluster name, the same subnet) is refused by the overlap check, and B's `destroy` (what
//! `down --yes` runs after the refused `up`) must leave every piece of A alone: the safety
//! route, the bridge, the resolver and the hosts. Only A's own `destroy` removes them.

mod common;

use acura_ha_api::provider::{Journal, Provider};
use common::*;

const SUBNET: &str = "10.213.147.0/24";

/// Whether `unreachable <subnet> metric 4000` is in the main table.
async fn safety_route_present(subnet: &str) -> bool {
    let (rc, out, err) = sh(
        "/usr/sbin/ip",
        &["-4", "route", "show", "table", "main", "exact", subnet],
    )
    .await;
    assert_eq!(rc, 0, "{err}");
    let want = format!("unreachable {subnet} metric 4000");
    out.lines().any(|l| l.trim() == want)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_lab_on_the_same_subnet_destroys_nothing_of_the_other() {
    let a = Lab::new("lt-share-a", SUBNET, 3);
    let mut ja = MemJournal::default();
    a.provision(&mut ja).await;
    let a_names = a.names();
    let a_records = by_address(&ja);
    let a_pids = recorded_pids(&ja);
    let resolver: i32 = ja
        .output("lab_network", "resolver_pid")
        .parse()
        .expect("pid");
    assert!(
        safety_route_present(SUBNET).await,
        "A made its safety route"
    );

    let b = Lab::new("lt-share-b", SUBNET, 3);
    let b_names = b.names();
    assert_ne!(a_names.bridge, b_names.bridge);
    let mut jb = MemJournal::default();
    let err = b
        .provider
        .provision(&b.spec, &mut jb)
        .await
        .expect_err("B's subnet is A's");
    let msg = err.to_string();
    assert!(msg.contains("overlaps"), "{msg}");
    assert!(msg.contains(&a_names.bridge), "{msg}");
    assert!(jb.records.is_empty(), "{:#?}", jb.records);

    b.provider
        .destroy(&b.spec, &mut jb)
        .await
        .expect("B's destroy after the refusal");

    // Everything of A is still there and still works.
    assert!(
        safety_route_present(SUBNET).await,
        "B's destroy removed A's safety route"
    );
    assert!(
        std::path::Path::new("/sys/class/net")
            .join(&a_names.bridge)
            .exists(),
        "B's destroy removed A's bridge"
    );
    assert!(running(resolver), "B's destroy stopped A's resolver");
    for &pid in &a_pids {
        assert!(running(pid), "B's destroy stopped A's process {pid}");
    }
    for h in &a_names.hosts {
        let (rc, out, err) = ssh(&a, &h.address.to_string(), "hostname").await;
        assert_eq!((rc, out.trim()), (0, h.name.as_str()), "{err}");
    }
    let drift = a
        .provider
        .refresh(&a.spec, &ja.all())
        .await
        .expect("refresh")
        .expect("the local target refreshes");
    assert!(drift.is_empty(), "A after B's destroy: {drift:#?}");
    ja.history.clear();
    a.provision(&mut ja).await;
    assert_eq!(by_address(&ja), a_records, "A's provision again changed A");
    assert!(
        !ja.history
            .iter()
            .any(|(_, s)| *s == acura_ha_api::model::Status::Creating),
        "A's provision again re-made something: {:?}",
        ja.history
    );

    // Nothing of B exists (it never made anything), and B's destroy can run again.
    let (_, links, _) = sh("/usr/sbin/ip", &["-o", "link"]).await;
    assert!(!links.contains(&b_names.bridge), "{links}");
    let (_, netns, _) = sh("/usr/sbin/ip", &["netns", "list"]).await;
    for h in &b_names.hosts {
        assert!(!netns.contains(&h.namespace), "{netns}");
    }
    b.provider
        .destroy(&b.spec, &mut jb)
        .await
        .expect("B's second destroy");
    assert!(safety_route_present(SUBNET).await);

    // A broken (its bridge removed outside the tool): the route and the resolver are still
    // A's, not B's to remove; A's `up` heals it.
    let (rc, _, err) = sh("/usr/sbin/ip", &["link", "del", "dev", &a_names.bridge]).await;
    assert_eq!(rc, 0, "{err}");
    b.provider
        .destroy(&b.spec, &mut jb)
        .await
        .expect("B's destroy with A broken");
    assert!(
        safety_route_present(SUBNET).await,
        "B's destroy removed the safety route of broken A"
    );
    assert!(running(resolver), "B's destroy stopped broken A's resolver");
    a.provision(&mut ja).await;
    let drift = a
        .provider
        .refresh(&a.spec, &ja.all())
        .await
        .expect("refresh")
        .expect("the local target refreshes");
    assert!(drift.is_empty(), "A after its repair: {drift:#?}");
    let a_pids = [a_pids, recorded_pids(&ja)].concat();

    // A's own destroy removes all of A, its safety route last.
    a.provider
        .destroy(&a.spec, &mut ja)
        .await
        .expect("A's destroy");
    assert!(ja.records.is_empty(), "{:#?}", ja.records);
    assert_nothing_left(&a_names, &a_pids).await;
}
