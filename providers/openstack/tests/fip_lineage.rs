//! Floating IPs carry the state's lineage (issue 9, item 4), against the stateful fake cloud
//! serving 2 items a page. A floating IP is known by its description (`acura-ha <cluster>
//! <host>`), which another state's cluster of the same name shares; where Neutron has tags,
//! the `acura-ha-lineage=…` tag tells them apart: with another state's cluster in the project,
//! refresh does not take our floating IPs for gone, discovery finds ours and not theirs, and
//! destroy releases ours and leaves theirs.

mod common;

use acura_ha_api::model::Kind;
use acura_ha_api::provider::{Journal, Provider};
use acura_ha_api::spec::ClusterSpec;
use acura_ha_openstack::client::{Service, Session};
use common::{Cloud, Records, parse_spec};
use fake_openstack::CloudTraits;
use serde_json::{Value, json};

const OURS: &str = "0b1e5c1e-ours";
const THEIRS: &str = "7e1e7e1e-theirs";

/// A 3-node cluster behind Octavia with floating IPs, of this state's lineage.
fn spec(lineage: &str) -> ClusterSpec {
    parse_spec(
        "[cluster]\nname = \"acura-fips\"\n\
         [nodes]\ncount = 3\nhostname_prefix = \"fips\"\nvolume_size_gb = 200\n\
         [load_balancer]\nkind = \"cloud\"\n\
         [access]\nadmin_cidrs = [\"198.51.100.7/32\"]\npublic_cidrs = [\"0.0.0.0/0\"]\nssh_agent = true\n\
         [openstack]\ncloud = \"fake\"\nflavor = \"m1.xlarge\"\nimage = \"ubuntu-20.04\"\n\
         network = \"acura-net\"\nfloating_ip_network = \"public\"\npublic_key_file = \"id.pub\"\n",
    )
    .with_lineage(Some(lineage.to_string()))
}

fn lineage_tag(lineage: &str) -> String {
    format!("acura-ha-lineage={lineage}")
}

fn tags(v: &Value) -> Vec<String> {
    v["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(String::from))
        .collect()
}

/// Another state's Neutron object: created, then tagged (`PUT …/tags`, which every Neutron with
/// `standard-attr-tag` takes). Returns its ID.
async fn tagged(s: &Session, collection: &str, key: &str, body: Value, tags: &Value) -> String {
    let v = s
        .send(
            reqwest::Method::POST,
            Service::Network,
            &format!("/{collection}"),
            &json!({ key: body }),
        )
        .await
        .expect("their object");
    let id = v[key]["id"].as_str().unwrap().to_string();
    s.send(
        reqwest::Method::PUT,
        Service::Network,
        &format!("/{collection}/{id}/tags"),
        &json!({ "tags": tags }),
    )
    .await
    .expect("their tags");
    id
}

#[tokio::test]
async fn floating_ips_are_told_apart_by_their_lineage_tag() {
    told_apart(Cloud::start()).await;
}

/// A Neutron with `standard-attr-tag` but without `tag-creation`: the tags are put right after
/// the create.
#[tokio::test]
async fn floating_ips_are_tagged_after_their_create_without_tag_creation() {
    told_apart(Cloud::with(CloudTraits {
        neutron_without_extensions: vec!["tag-creation".into()],
        ..CloudTraits::default()
    }))
    .await;
}

async fn told_apart(cloud: Cloud) {
    let spec = spec(OURS);
    let p = cloud.provider();
    let mut j = Records::default();
    p.provision(&spec, &mut j).await.expect("provision");
    let s = cloud.session(&spec).await;

    // Each of our floating IPs (3 nodes and the load balancer's) carries the cluster and the
    // lineage.
    let ours: Vec<Value> = s
        .list(Service::Network, "/floatingips", "floatingips")
        .await
        .unwrap();
    assert_eq!(ours.len(), 4, "{ours:#?}");
    for f in &ours {
        let t = tags(f);
        assert!(t.contains(&lineage_tag(OURS)), "{f:#}");
        assert!(
            t.contains(&"acura-ha-cluster=acura-fips".to_string()),
            "{f:#}"
        );
    }

    // Another state's cluster of the same name: its security group, and the floating IP of its
    // first node (described as ours is), both tagged with its lineage.
    let theirs_tags = json!([
        "acura-ha-cluster=acura-fips",
        "acura-ha-managed-by=acura-ha",
        lineage_tag(THEIRS)
    ]);
    tagged(
        &s,
        "security-groups",
        "security_group",
        json!({"name": "acura-ha-acura-fips", "description": "theirs"}),
        &theirs_tags,
    )
    .await;
    let host = spec.node_names()[0].clone();
    let public = cloud.fake.network_id("public").expect("public network");
    let theirs_id = tagged(
        &s,
        "floatingips",
        "floatingip",
        json!({"floating_network_id": public, "description": format!("acura-ha acura-fips {host}")}),
        &theirs_tags,
    )
    .await;

    // Refresh: nothing of ours is gone (ours are known by their lineage, not only by name).
    let drift = p.refresh(&spec, &j.all()).await.unwrap().unwrap();
    assert!(drift.is_empty(), "{drift:#?}");

    // Discovery (`down --discover`): our four, not theirs.
    let found = p.discover(&spec).await.unwrap();
    let found_fips: Vec<String> = found
        .iter()
        .filter(|r| r.kind == Kind::FloatingIp)
        .filter_map(|r| r.id.clone())
        .collect();
    let mut our_ids: Vec<String> = ours
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect();
    our_ids.sort();
    let mut got = found_fips.clone();
    got.sort();
    assert_eq!(got, our_ids, "{found:#?}");

    // Destroy: ours released, theirs (and their group) left.
    p.destroy(&spec, &mut j).await.expect("destroy");
    let left: Vec<Value> = s
        .list(Service::Network, "/floatingips", "floatingips")
        .await
        .unwrap();
    let left_ids: Vec<&str> = left.iter().filter_map(|f| f["id"].as_str()).collect();
    assert_eq!(left_ids, vec![theirs_id.as_str()], "{left:#?}");
    assert_eq!(
        cloud.fake.security_group_tags("acura-ha-acura-fips"),
        Some(
            theirs_tags
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
                .collect()
        )
    );
    assert!(
        cloud.fake.unhandled().is_empty(),
        "{:?}",
        cloud.fake.unhandled()
    );
}
