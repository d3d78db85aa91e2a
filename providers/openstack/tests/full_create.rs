//! Issue 12 item 1 and issue 9 item 2 (OpenStack), against the stateful fake cloud serving 2
//! items a page: the servers' ports are made first and the load balancer fully populated in one
//! call (members from the ports' addresses); a cloud whose Octavia refuses that gets the
//! children one at a time; on an existing load balancer, a member and a listener added by hand
//! show in the refresh and the next `provision` deletes them.

mod common;

use std::time::Duration;

use acura_ha_api::model::{Kind, Recorded};
use acura_ha_api::provider::{Journal, Provider};
use acura_ha_api::spec::ClusterSpec;
use acura_ha_openstack::OpenStackProvider;
use acura_ha_openstack::client::{Service, Session};
use common::{Cloud, Records, parse_spec};
use fake_openstack::{CloudTraits, FaultAction, FaultRule, StatsSnapshot};
use serde_json::{Value, json};

impl Cloud {
    /// A 3-node cluster behind Octavia with floating IPs.
    fn spec() -> ClusterSpec {
        Cloud::spec_of(3)
    }

    fn spec_of(nodes: usize) -> ClusterSpec {
        let text = format!(
            "[cluster]\nname = \"acura-full\"\n\
             [nodes]\ncount = {nodes}\nhostname_prefix = \"full\"\nvolume_size_gb = 200\n\
             [load_balancer]\nkind = \"cloud\"\n\
             [access]\nadmin_cidrs = [\"198.51.100.7/32\"]\npublic_cidrs = [\"0.0.0.0/0\"]\nssh_agent = true\n\
             [openstack]\ncloud = \"fake\"\nflavor = \"m1.xlarge\"\nimage = \"ubuntu-20.04\"\n\
             network = \"acura-net\"\nfloating_ip_network = \"public\"\npublic_key_file = \"id.pub\"\n"
        );
        parse_spec(&text)
    }
}

fn calls(st: &StatsSnapshot, route: &str) -> u64 {
    st.per_route.get(route).copied().unwrap_or(0)
}

const LBS: &str = "POST /load-balancer/v2/lbaas/loadbalancers";
const CHILD_CREATES: [&str; 4] = [
    "POST /load-balancer/v2/lbaas/listeners",
    "POST /load-balancer/v2/lbaas/pools",
    "POST /load-balancer/v2/lbaas/healthmonitors",
    "PUT /load-balancer/v2/lbaas/pools/{id}/members",
];

/// Every child of the load balancer and every port recorded with its ID; refresh clean.
async fn assert_recorded(p: &OpenStackProvider, spec: &ClusterSpec, j: &Records) {
    let members: Vec<&Recorded> = j.0.values().filter(|r| r.kind == Kind::Member).collect();
    assert_eq!(members.len(), 18, "{members:#?}");
    for r in j.0.values().filter(|r| {
        matches!(
            r.kind,
            Kind::Listener | Kind::Pool | Kind::HealthMonitor | Kind::Member
        )
    }) {
        assert!(r.id.is_some(), "{} has no ID: {r:?}", r.address);
    }
    for r in j.0.values().filter(|r| r.kind == Kind::Instance) {
        assert!(r.outputs.contains_key("port_id"), "{r:?}");
    }
    let drift = p.refresh(spec, &j.all()).await.unwrap().unwrap();
    assert!(drift.is_empty(), "right after provision: {drift:#?}");
}

/// One `POST /loadbalancers` holds the whole graph, the servers boot on ports made first, a
/// second `provision` changes nothing, and `destroy` deletes the ports too.
#[tokio::test]
async fn the_load_balancer_is_made_in_one_call_on_the_ports_addresses() {
    let cloud = Cloud::start();
    let before = cloud.fake.inventory();
    let spec = Cloud::spec();
    let p = cloud.provider();
    let mut j = Records::default();
    cloud.fake.reset_stats();
    p.provision(&spec, &mut j).await.expect("provision");
    let st = cloud.fake.stats();
    assert_eq!(calls(&st, LBS), 1, "{st:#?}");
    for route in CHILD_CREATES {
        assert_eq!(calls(&st, route), 0, "{route}: {st:#?}");
    }
    assert_eq!(calls(&st, "POST /network/v2.0/ports"), 3, "{st:#?}");
    // Each lookup once a run (issue 12): the nodes' and the floating IPs' networks in one
    // list, the security group (read by the ownership check, not again by its create), the
    // project's floating IPs (for both branches), the ports (the servers' from their
    // records). A list of 2 (a full page at 2 a page) is followed by an empty page.
    for (route, n) in [
        ("GET /network/v2.0/networks", 2),
        ("GET /network/v2.0/security-groups", 1),
        ("GET /network/v2.0/floatingips", 1),
        ("GET /network/v2.0/ports", 1),
    ] {
        assert_eq!(calls(&st, route), n, "{route}: {st:#?}");
    }
    assert_recorded(&p, &spec, &j).await;

    // The members are the ports' addresses, which are the servers' addresses.
    let s = cloud.session(&spec).await;
    let pool = j.0["pool[tcp-6443]"].id.clone().unwrap();
    let members = s
        .list(
            Service::LoadBalancer,
            &format!("/lbaas/pools/{pool}/members"),
            "members",
        )
        .await
        .unwrap();
    for r in j.0.values().filter(|r| r.kind == Kind::Instance) {
        let ip = &r.outputs["fixed_ip"];
        assert!(
            members.iter().any(|m| m["address"] == json!(ip)),
            "{ip} of {}: {members:#?}",
            r.name
        );
    }

    cloud.fake.reset_stats();
    p.provision(&spec, &mut j).await.expect("provision again");
    assert_eq!(cloud.fake.stats().mutating, 0, "{:#?}", cloud.fake.stats());

    p.destroy(&spec, &mut j).await.expect("destroy");
    assert_eq!(cloud.fake.inventory(), before);
    assert!(j.0.is_empty(), "{:#?}", j.0.keys());
}

/// An Octavia that answers the full create 501: said once, then the load balancer and its
/// children one at a time, recorded alike.
#[tokio::test]
async fn a_cloud_that_refuses_the_full_create_gets_the_children_one_at_a_time() {
    let cloud = Cloud::with(CloudTraits {
        octavia_refuses_full_create: true,
        ..CloudTraits::default()
    });
    let before = cloud.fake.inventory();
    let spec = Cloud::spec();
    let p = cloud.provider();
    let mut j = Records::default();
    cloud.fake.reset_stats();
    p.provision(&spec, &mut j).await.expect("provision");
    let st = cloud.fake.stats();
    assert_eq!(
        calls(&st, LBS),
        2,
        "the refused one and the plain one: {st:#?}"
    );
    for route in &CHILD_CREATES[..3] {
        assert_eq!(calls(&st, route), 6, "{route}: {st:#?}");
    }
    assert_eq!(calls(&st, CHILD_CREATES[3]), 6, "{st:#?}");
    assert!(
        cloud.fake.unhandled().is_empty(),
        "{:?}",
        cloud.fake.unhandled()
    );
    let drift = p.refresh(&spec, &j.all()).await.unwrap().unwrap();
    assert!(drift.is_empty(), "{drift:#?}");
    cloud.fake.reset_stats();
    p.provision(&spec, &mut j).await.expect("provision again");
    assert_eq!(cloud.fake.stats().mutating, 0, "{:#?}", cloud.fake.stats());
    p.destroy(&spec, &mut j).await.expect("destroy");
    assert_eq!(cloud.fake.inventory(), before);
}

/// A POST on the load balancer's children, sent again while it is busy (409).
async fn post_when_active(s: &Session, path: &str, body: &Value) -> Value {
    for _ in 0..400 {
        match s
            .send(reqwest::Method::POST, Service::LoadBalancer, path, body)
            .await
        {
            Ok(v) => return v,
            Err(e) if e.conflict() => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("{path}: {e:?}"),
        }
    }
    panic!("{path}: the load balancer never became ACTIVE");
}

/// Converge (issue 9, item 2): a member and a listener added by hand to the cluster's load
/// balancer are shown by the refresh, deleted by the next `provision`, and the refresh after
/// it is clean.
#[tokio::test]
async fn a_member_and_a_listener_added_by_hand_are_removed() {
    let cloud = Cloud::start();
    let spec = Cloud::spec();
    let p = cloud.provider();
    let mut j = Records::default();
    p.provision(&spec, &mut j).await.expect("provision");
    let s = cloud.session(&spec).await;
    let pool = j.0["pool[tcp-443]"].id.clone().unwrap();
    let lb = j.0["load_balancer"].id.clone().unwrap();
    let member = post_when_active(
        &s,
        &format!("/lbaas/pools/{pool}/members"),
        &json!({"member": {"address": "10.0.0.99", "protocol_port": 443}}),
    )
    .await["member"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let listener = post_when_active(
        &s,
        "/lbaas/listeners",
        &json!({"listener": {"loadbalancer_id": lb, "protocol": "TCP", "protocol_port": 8081}}),
    )
    .await["listener"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let drift = p.refresh(&spec, &j.all()).await.unwrap().unwrap();
    let extra: Vec<(Kind, String)> = drift
        .extra
        .iter()
        .map(|r| (r.kind, r.id.clone().unwrap()))
        .collect();
    assert!(
        extra.contains(&(Kind::Member, member.clone())),
        "{drift:#?}"
    );
    assert!(
        extra.contains(&(Kind::Listener, listener.clone())),
        "{drift:#?}"
    );
    assert_eq!(extra.len(), 2, "{drift:#?}");
    assert!(drift.gone.is_empty(), "{drift:#?}");

    p.provision(&spec, &mut j).await.expect("provision again");
    let drift = p.refresh(&spec, &j.all()).await.unwrap().unwrap();
    assert!(drift.is_empty(), "after up: {drift:#?}");
    let members = s
        .list(
            Service::LoadBalancer,
            &format!("/lbaas/pools/{pool}/members"),
            "members",
        )
        .await
        .unwrap();
    assert!(
        members
            .iter()
            .all(|m| m["id"] != json!(member) || m["provisioning_status"] == "PENDING_DELETE"),
        "{members:#?}"
    );
    assert_eq!(members.len(), 3, "{members:#?}");
    let listeners = s
        .list(
            Service::LoadBalancer,
            &format!("/lbaas/listeners?loadbalancer_id={lb}"),
            "listeners",
        )
        .await
        .unwrap();
    assert!(
        listeners
            .iter()
            .all(|l| l["protocol_port"] != json!(8081)
                || l["provisioning_status"] == "PENDING_DELETE"),
        "{listeners:#?}"
    );
    p.destroy(&spec, &mut j).await.expect("destroy");
}

/// The full create performed but its reply lost: the load balancer is found by name (not made
/// twice), its children listed and recorded with their IDs, and nothing is left to do.
#[tokio::test]
async fn a_lost_reply_of_the_full_create_finds_the_graph() {
    let cloud = Cloud::start();
    let spec = Cloud::spec();
    let p = cloud.provider();
    let mut j = Records::default();
    cloud.fake.add_fault(
        FaultRule::new("POST", "/lbaas/loadbalancers$", FaultAction::LostResponse).times(1),
    );
    cloud.fake.reset_stats();
    p.provision(&spec, &mut j).await.expect("provision");
    let st = cloud.fake.stats();
    assert_eq!(calls(&st, LBS), 1, "{st:#?}");
    assert_eq!(cloud.fake.inventory().count("load_balancers"), 1);
    assert_recorded(&p, &spec, &j).await;
    cloud.fake.reset_stats();
    p.provision(&spec, &mut j).await.expect("provision again");
    assert_eq!(cloud.fake.stats().mutating, 0, "{:#?}", cloud.fake.stats());
    p.destroy(&spec, &mut j).await.expect("destroy");
}

/// Converge (issue 9, item 2): with a node fewer in the cluster file, `provision` takes its
/// members out of every pool of the existing load balancer and forgets their records.
#[tokio::test]
async fn members_of_a_node_no_longer_in_the_cluster_are_removed() {
    let cloud = Cloud::start();
    let p = cloud.provider();
    let mut j = Records::default();
    let (five, smaller) = (Cloud::spec_of(5), Cloud::spec_of(3));
    p.provision(&five, &mut j).await.expect("provision 5 nodes");
    let kept = smaller.node_names();
    let gone: Vec<String> = five
        .node_names()
        .into_iter()
        .filter(|n| !kept.contains(n))
        .collect();
    assert_eq!(gone.len(), 2);
    p.provision(&smaller, &mut j)
        .await
        .expect("provision 3 nodes");
    let members: Vec<&Recorded> = j.0.values().filter(|r| r.kind == Kind::Member).collect();
    assert_eq!(members.len(), 18, "{members:#?}");
    assert!(
        members.iter().all(|r| !gone.contains(&r.name)),
        "{members:#?}"
    );
    let s = cloud.session(&smaller).await;
    for pool in j.0.values().filter(|r| r.kind == Kind::Pool) {
        let id = pool.id.clone().unwrap();
        let listed = s
            .list(
                Service::LoadBalancer,
                &format!("/lbaas/pools/{id}/members"),
                "members",
            )
            .await
            .unwrap();
        let names: Vec<&str> = listed
            .iter()
            .filter(|m| m["provisioning_status"] != "PENDING_DELETE")
            .map(|m| m["name"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(names.len(), 3, "{}: {listed:#?}", pool.address);
        assert!(
            names.iter().all(|n| !gone.iter().any(|g| g == n)),
            "{}: {names:?}",
            pool.address
        );
    }
    // The two servers no longer in the file are the engine's to remove (`node remove`).
    p.destroy(&five, &mut j).await.expect("destroy");
}
