//! Issue 12: the reads before the first create. The key pair is imported without a read first
//! (Nova's 409 says when the name is taken), and Nova's and Cinder's version checks ride on
//! their first calls (tests/real_clouds.rs); what those shortcuts must keep is checked here:
//! a key pair of that name holding another key is refused, named, neither recorded nor deleted.
//! A first `up` (its state's lineage made by that run) does not look for ports, floating IPs or
//! a server group of its own to adopt, and still refuses another state's cluster.

mod common;

use acura_ha_api::provider::{Journal, Provider};
use acura_ha_api::spec::ClusterSpec;
use acura_ha_openstack::client::{ApiError, Service, Session};
use common::{Cloud, Records, parse_spec};
use fake_openstack::{FaultAction, FaultRule};
use reqwest::Method;
use serde_json::json;

fn spec() -> ClusterSpec {
    parse_spec(
        "[cluster]\nname = \"acura-reads\"\n\
         [nodes]\ncount = 3\nhostname_prefix = \"reads\"\nvolume_size_gb = 200\n\
         [load_balancer]\nkind = \"cloud\"\n\
         [access]\nadmin_cidrs = [\"198.51.100.7/32\"]\nssh_agent = true\n\
         [openstack]\ncloud = \"fake\"\nflavor = \"m1.xlarge\"\nimage = \"ubuntu-20.04\"\n\
         network = \"acura-net\"\npublic_key_file = \"id.pub\"\n",
    )
}

/// Imports a key pair under the cluster's key pair name, as somebody (or an earlier run) did.
async fn import_key(s: &Session, public_key: &str) -> Result<serde_json::Value, ApiError> {
    s.send(
        Method::POST,
        Service::Compute,
        "/os-keypairs",
        &json!({"keypair": {"name": "acura-ha-acura-reads", "public_key": public_key, "type": "ssh"}}),
    )
    .await
}

const KEY_GET: &str = "GET /compute/v2.1/os-keypairs/{name}";
const KEY_POST: &str = "POST /compute/v2.1/os-keypairs";

#[tokio::test]
async fn the_key_pair_is_imported_without_a_read_first_and_read_when_recorded() {
    let cloud = Cloud::start();
    let before = cloud.fake.inventory();
    let spec = spec();
    let p = cloud.provider();
    let mut j = Records::default();
    cloud.fake.reset_stats();
    p.provision(&spec, &mut j).await.expect("provision");
    let st = cloud.fake.stats();
    assert_eq!(st.per_route.get(KEY_POST), Some(&1), "{:?}", st.per_route);
    assert_eq!(st.per_route.get(KEY_GET), None, "{:?}", st.per_route);
    // Nor any version document of a service that takes a microversion.
    assert!(!st.per_route.contains_key("GET /compute/v2.1/"));
    assert!(!st.per_route.contains_key("GET /volume/v3/"));
    let key = j.get("key_pair").expect("recorded");
    assert_eq!(key.id.as_deref(), Some("acura-ha-acura-reads"));

    // Recorded: the next run reads it back and imports nothing.
    cloud.fake.reset_stats();
    p.provision(&spec, &mut j).await.expect("again");
    let st = cloud.fake.stats();
    assert_eq!(st.per_route.get(KEY_GET), Some(&1), "{:?}", st.per_route);
    assert_eq!(st.mutating, 0, "{:?}", st.per_route);
    p.destroy(&spec, &mut j).await.expect("destroy");
    assert_eq!(cloud.fake.inventory(), before);
}

#[tokio::test]
async fn a_key_pair_of_that_name_with_another_key_is_refused_and_left_alone() {
    let cloud = Cloud::start();
    let spec = spec();
    let s = cloud.session(&spec).await;
    let theirs =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM0000000000000000000000000000000000000000000 someone";
    import_key(&s, theirs).await.expect("somebody's key pair");
    let p = cloud.provider();
    let mut j = Records::default();
    let err = p
        .provision(&spec, &mut j)
        .await
        .expect_err("another key")
        .to_string();
    assert!(
        err.contains("key pair acura-ha-acura-reads") && err.contains("another public key"),
        "{err}"
    );
    assert!(
        j.get("key_pair").is_none(),
        "not ours, not recorded: {:?}",
        j.0
    );
    // What was made before the refusal goes; their key pair stays.
    p.destroy(&spec, &mut j).await.expect("destroy");
    let left = s
        .get(Service::Compute, "/os-keypairs/acura-ha-acura-reads")
        .await
        .expect("their key pair is still there");
    assert_eq!(left["keypair"]["public_key"], theirs);
}

#[tokio::test]
async fn a_key_pair_of_that_name_with_the_same_key_is_adopted() {
    let cloud = Cloud::start();
    let spec = spec();
    let s = cloud.session(&spec).await;
    let ours = std::fs::read_to_string(cloud.dir.path().join("id.pub")).unwrap();
    import_key(&s, ours.trim())
        .await
        .expect("an earlier import");
    let p = cloud.provider();
    let mut j = Records::default();
    p.provision(&spec, &mut j).await.expect("provision");
    assert_eq!(
        j.get("key_pair").and_then(|k| k.id.clone()).as_deref(),
        Some("acura-ha-acura-reads")
    );
    p.destroy(&spec, &mut j).await.expect("destroy");
}

fn spec_with_fips() -> ClusterSpec {
    let mut spec = spec();
    spec.openstack.as_mut().unwrap().floating_ip_network = Some("public".into());
    spec
}

#[tokio::test]
async fn a_new_lineage_looks_for_nothing_of_its_own_to_adopt() {
    let cloud = Cloud::start();
    let before = cloud.fake.inventory();
    let p = cloud.provider();
    let first = spec_with_fips().with_new_lineage("lineage-made-now".into());
    let mut j = Records::default();
    cloud.fake.reset_stats();
    p.provision(&first, &mut j).await.expect("provision");
    let st = cloud.fake.stats();
    for read in [
        "GET /network/v2.0/ports",
        "GET /network/v2.0/floatingips",
        "GET /compute/v2.1/os-server-groups",
    ] {
        assert!(
            !st.per_route.contains_key(read),
            "{read}: {:?}",
            st.per_route
        );
    }
    // The ownership check still reads what carries a lineage under the cluster's names.
    for read in [
        "GET /compute/v2.1/servers/detail",
        "GET /network/v2.0/security-groups",
        "GET /load-balancer/v2/lbaas/loadbalancers",
    ] {
        assert!(
            st.per_route.contains_key(read),
            "{read}: {:?}",
            st.per_route
        );
    }
    // The next run of that state (its lineage no longer new) finds all of it: nothing made.
    let again = spec_with_fips().with_lineage(Some("lineage-made-now".into()));
    assert!(
        p.refresh(&again, &j.all())
            .await
            .unwrap()
            .unwrap()
            .is_empty(),
        "converged"
    );
    let mut lost = Records::default();
    cloud.fake.reset_stats();
    p.provision(&again, &mut lost)
        .await
        .expect("again, records lost");
    let st = cloud.fake.stats();
    // Only the key pair's import is sent (409: it is there), as in any run without its record.
    assert_eq!(st.mutating, 1, "{:?}", st.per_route);

    // Another state's first run under the same names is refused before anything is made.
    let other = spec_with_fips().with_new_lineage("another-state".into());
    let inventory = cloud.fake.inventory();
    cloud.fake.reset_stats();
    let err = p
        .provision(&other, &mut Records::default())
        .await
        .expect_err("another state's cluster")
        .to_string();
    assert!(err.contains("lineage-made-now"), "{err}");
    assert_eq!(cloud.fake.stats().mutating, 0);
    assert_eq!(cloud.fake.inventory(), inventory);

    p.destroy(&again, &mut lost).await.expect("destroy");
    assert_eq!(cloud.fake.inventory(), before);
}

/// The import answers 500 (not performed): the retry's lookup by name finds somebody's key pair
/// of that name, which is refused as a 409 would have been, and left alone by `destroy`.
#[tokio::test]
async fn a_key_pair_found_after_a_lost_import_must_hold_our_key() {
    let cloud = Cloud::start();
    let spec = spec();
    let s = cloud.session(&spec).await;
    let theirs =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM1111111111111111111111111111111111111111111 someone";
    import_key(&s, theirs).await.expect("somebody's key pair");
    cloud.fake.add_fault(FaultRule::new(
        "POST",
        "/os-keypairs$",
        FaultAction::Status {
            status: 500,
            retry_after: None,
            body: None,
        },
    ));
    let p = cloud.provider();
    let mut j = Records::default();
    let err = p
        .provision(&spec, &mut j)
        .await
        .expect_err("another key")
        .to_string();
    assert!(err.contains("another public key"), "{err}");
    assert!(
        j.get("key_pair").is_none(),
        "not ours, not recorded: {:?}",
        j.0
    );
    p.destroy(&spec, &mut j).await.expect("destroy");
    let left = s
        .get(Service::Compute, "/os-keypairs/acura-ha-acura-reads")
        .await
        .expect("their key pair is still there");
    assert_eq!(left["keypair"]["public_key"], theirs);
}
