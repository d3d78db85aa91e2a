//! Refresh (issue 9, item 3): the cloud compared with the state, against the stateful fake
//! cloud serving 2 items a page. A listener deleted and a rule added by hand outside the tool
//! show as drift; `provision` repairs both and the next refresh finds nothing; a server deleted
//! outside the tool shows as gone; a server stopped outside the tool is changed, started again.

mod common;

use acura_ha_api::model::{Kind, Recorded};
use acura_ha_api::provider::{Journal, Provider};
use acura_ha_api::spec::ClusterSpec;
use acura_ha_openstack::client::Service;
use common::{Cloud, Records, parse_spec};
use fake_openstack::CloudTraits;
use serde_json::json;

impl Cloud {
    /// A 3-node cluster behind Octavia, no floating IPs.
    fn spec() -> ClusterSpec {
        let text = "[cluster]\nname = \"acura-drift\"\n\
             [nodes]\ncount = 3\nhostname_prefix = \"drift\"\nvolume_size_gb = 200\n\
             [load_balancer]\nkind = \"cloud\"\n\
             [access]\nadmin_cidrs = [\"198.51.100.7/32\"]\npublic_cidrs = [\"0.0.0.0/0\"]\nssh_agent = true\n\
             [openstack]\ncloud = \"fake\"\nflavor = \"m1.xlarge\"\nimage = \"ubuntu-20.04\"\n\
             network = \"acura-net\"\npublic_key_file = \"id.pub\"\n";
        parse_spec(text)
    }
}

fn id_of(j: &Records, pred: impl Fn(&Recorded) -> bool) -> (String, String) {
    let r = j.0.values().find(|r| pred(r)).expect("recorded");
    (r.address.clone(), r.id.clone().unwrap())
}

#[tokio::test]
async fn drift_outside_the_tool_is_found_and_repaired() {
    let cloud = Cloud::start();
    let spec = Cloud::spec();
    let p = cloud.provider();
    let mut j = Records::default();
    p.provision(&spec, &mut j).await.expect("provision");
    let drift = p
        .refresh(&spec, &j.all())
        .await
        .unwrap()
        .expect("refreshed");
    assert!(drift.is_empty(), "right after provision: {drift:#?}");

    // Outside the tool: a listener deleted, an SSH rule from anywhere added to the group.
    let s = cloud.session(&spec).await;
    let (listener, listener_id) = id_of(&j, |r| r.kind == Kind::Listener);
    s.delete(
        Service::LoadBalancer,
        &format!("/lbaas/listeners/{listener_id}"),
    )
    .await
    .unwrap();
    let (_, group) = id_of(&j, |r| r.kind == Kind::SecurityGroup);
    let added = s
        .send(
            reqwest::Method::POST,
            Service::Network,
            "/security-group-rules",
            &json!({"security_group_rule": {
                "security_group_id": group, "direction": "ingress", "ethertype": "IPv4",
                "protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
                "remote_ip_prefix": "0.0.0.0/0"}}),
        )
        .await
        .unwrap();
    let rule_id = added["security_group_rule"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let drift = p.refresh(&spec, &j.all()).await.unwrap().unwrap();
    let gone: Vec<&str> = drift.gone.iter().map(|g| g.address.as_str()).collect();
    assert!(gone.contains(&listener.as_str()), "{drift:#?}");
    assert!(
        drift
            .gone
            .iter()
            .all(|g| g.reason.contains("outside acura-ha")),
        "{drift:#?}"
    );
    assert_eq!(
        drift
            .extra
            .iter()
            .map(|r| r.id.clone().unwrap())
            .collect::<Vec<_>>(),
        vec![rule_id.clone()],
        "{drift:#?}"
    );
    assert_eq!(drift.extra[0].name, "tcp 22 from 0.0.0.0/0");

    // `up` repairs both: the listener is made again, the rule revoked; nothing drifts after.
    p.provision(&spec, &mut j).await.expect("provision again");
    let drift = p.refresh(&spec, &j.all()).await.unwrap().unwrap();
    assert!(drift.is_empty(), "after the repair: {drift:#?}");
    let rules = s
        .list(
            Service::Network,
            &format!("/security-group-rules?security_group_id={group}"),
            "security_group_rules",
        )
        .await
        .unwrap();
    assert!(
        rules.iter().all(|r| r["id"] != json!(rule_id)),
        "{rules:#?}"
    );

    // A node's server deleted outside the tool: gone, and said so.
    let (node, server) = id_of(&j, |r| r.kind == Kind::Instance);
    s.delete(Service::Compute, &format!("/servers/{server}"))
        .await
        .unwrap();
    let mut found = false;
    for _ in 0..200 {
        let drift = p.refresh(&spec, &j.all()).await.unwrap().unwrap();
        if let Some(g) = drift.gone.iter().find(|g| g.address == node) {
            assert!(g.reason.contains("server is gone"), "{g:?}");
            found = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(found, "{node} was never reported gone");
    p.destroy(&spec, &mut j).await.expect("destroy");
}

/// A pool member deleted outside the tool (#9.3, "a member removed"): refresh reports it gone
/// ("deleted outside acura-ha") and nothing else; `provision` adds it to its pool again (a
/// member of that node's address in that pool, as before); the next refresh finds nothing.
/// Members are made by the fully populated create (their IDs in its answer) or, where Octavia
/// refuses it, by the batch member update (which answers no IDs): both are checked.
async fn a_member_removed_outside_the_tool(cloud: Cloud) {
    let spec = Cloud::spec();
    let p = cloud.provider();
    let mut j = Records::default();
    p.provision(&spec, &mut j).await.expect("provision");
    let drift = p.refresh(&spec, &j.all()).await.unwrap().unwrap();
    assert!(drift.is_empty(), "right after provision: {drift:#?}");

    let s = cloud.session(&spec).await;
    let member =
        j.0.values()
            .find(|r| r.kind == Kind::Member)
            .expect("a member recorded")
            .clone();
    let members_path = format!("/lbaas/pools/{}/members", member.outputs["pool_id"]);
    let before = s
        .list(Service::LoadBalancer, &members_path, "members")
        .await
        .unwrap();
    let member_id = before
        .iter()
        .find(|m| m["name"] == json!(member.name))
        .map(|m| m["id"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("{} is not in its pool: {before:#?}", member.name));
    s.delete(
        Service::LoadBalancer,
        &format!("{members_path}/{member_id}"),
    )
    .await
    .unwrap();

    // Octavia lists a member it is deleting until it is gone: wait for it to be reported.
    let mut drift = p.refresh(&spec, &j.all()).await.unwrap().unwrap();
    for _ in 0..200 {
        if !drift.gone.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        drift = p.refresh(&spec, &j.all()).await.unwrap().unwrap();
    }
    let gone: Vec<(&str, &str)> = drift
        .gone
        .iter()
        .map(|g| (g.address.as_str(), g.reason.as_str()))
        .collect();
    assert_eq!(
        gone,
        [(member.address.as_str(), "deleted outside acura-ha")],
        "{drift:#?}"
    );
    assert!(drift.extra.is_empty(), "{drift:#?}");

    // `up` adds it again: the pool holds a member of that node's address and port once more.
    p.provision(&spec, &mut j).await.expect("provision again");
    let after = s
        .list(Service::LoadBalancer, &members_path, "members")
        .await
        .unwrap();
    let key =
        |m: &serde_json::Value| format!("{} {} {}", m["name"], m["address"], m["protocol_port"]);
    let mut want: Vec<String> = before.iter().map(key).collect();
    let mut have: Vec<String> = after.iter().map(key).collect();
    want.sort();
    have.sort();
    assert_eq!(have, want, "the pool's members after the repair");
    assert!(
        after.iter().all(|m| m["id"] != json!(member_id)),
        "{after:#?}"
    );
    assert!(j.get(&member.address).is_some(), "the member is recorded");
    let drift = p.refresh(&spec, &j.all()).await.unwrap().unwrap();
    assert!(drift.is_empty(), "after the repair: {drift:#?}");
    p.destroy(&spec, &mut j).await.expect("destroy");
}

#[tokio::test]
async fn a_member_removed_outside_the_tool_is_found_and_added_again() {
    a_member_removed_outside_the_tool(Cloud::start()).await;
}

#[tokio::test]
async fn a_member_made_by_the_batch_update_and_removed_outside_is_found_and_added_again() {
    a_member_removed_outside_the_tool(Cloud::with(CloudTraits {
        octavia_refuses_full_create: true,
        ..CloudTraits::default()
    }))
    .await;
}

/// A node's server stopped outside the tool (Nova's `os-stop`, as `openstack server stop` does):
/// refresh reports exactly that node changed ("stopped outside acura-ha: up starts it"), not
/// gone; `provision` starts it with one `os-start` (no server created or deleted), the same
/// server is ACTIVE again and the next refresh finds nothing.
#[tokio::test]
async fn a_server_stopped_outside_the_tool_is_changed_and_started() {
    let cloud = Cloud::start();
    let spec = Cloud::spec();
    let p = cloud.provider();
    let mut j = Records::default();
    p.provision(&spec, &mut j).await.expect("provision");
    let drift = p.refresh(&spec, &j.all()).await.unwrap().unwrap();
    assert!(drift.is_empty(), "right after provision: {drift:#?}");

    let s = cloud.session(&spec).await;
    let (node, server) = id_of(&j, |r| r.kind == Kind::Instance);
    s.send(
        reqwest::Method::POST,
        Service::Compute,
        &format!("/servers/{server}/action"),
        &json!({"os-stop": null}),
    )
    .await
    .expect("os-stop");
    let status = |v: &serde_json::Value| v["server"]["status"].as_str().unwrap_or("").to_string();
    let shown = s
        .get(Service::Compute, &format!("/servers/{server}"))
        .await
        .unwrap();
    assert_eq!(status(&shown), "SHUTOFF");

    let drift = p.refresh(&spec, &j.all()).await.unwrap().unwrap();
    let changed: Vec<(&str, &str)> = drift
        .changed
        .iter()
        .map(|c| (c.address.as_str(), c.reason.as_str()))
        .collect();
    assert_eq!(
        changed,
        [(node.as_str(), "stopped outside acura-ha: up starts it")],
        "{drift:#?}"
    );
    assert!(drift.gone.is_empty(), "{drift:#?}");
    assert!(drift.extra.is_empty(), "{drift:#?}");

    cloud.fake.reset_stats();
    p.provision(&spec, &mut j).await.expect("provision again");
    let st = cloud.fake.stats();
    let calls = |route: &str| st.per_route.get(route).copied().unwrap_or(0);
    assert_eq!(
        calls("POST /compute/v2.1/servers/{id}/action"),
        1,
        "one os-start: {:#?}",
        st.per_route
    );
    assert_eq!(
        calls("POST /compute/v2.1/servers"),
        0,
        "{:#?}",
        st.per_route
    );
    assert_eq!(
        calls("DELETE /compute/v2.1/servers/{id}"),
        0,
        "{:#?}",
        st.per_route
    );
    assert!(
        cloud.fake.unhandled().is_empty(),
        "{:?}",
        cloud.fake.unhandled()
    );
    let shown = s
        .get(Service::Compute, &format!("/servers/{server}"))
        .await
        .unwrap();
    assert_eq!(status(&shown), "ACTIVE");
    assert_eq!(j.get(&node).and_then(|r| r.id.clone()), Some(server));
    let drift = p.refresh(&spec, &j.all()).await.unwrap().unwrap();
    assert!(drift.is_empty(), "after the start: {drift:#?}");
    p.destroy(&spec, &mut j).await.expect("destroy");
}
