//! What a provision that fails part-way records (review findings 1 and 4 of the speed work):
//! every record must say what the cloud holds, or the next `plan` announces replacements that
//! `up` would never make; and what `up` removes when it makes the NLB again shows in refresh
//! (finding 3). Against a real moto_server behind the fault proxy.
//! `cargo test -p acura-ha-aws --test partial_failures`.

mod common;
mod driver;

use acura_ha_api::model::{Kind, Status};
use acura_ha_api::provider::{Journal, Provider};
use acura_ha_aws::AwsProvider;
use common::{Moto, Proxy, items, text};
use driver::{MemJournal, point_sdk_at, spec};
use serde_json::json;

fn refuse(proxy: &Proxy, action: &str) {
    proxy.set_rules(json!([{
        "action": action,
        "fault": "AccessDenied",
        "status": 403,
        "times": 100,
    }]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provision_that_fails_part_way_records_what_the_cloud_holds() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    let url = moto.url();
    point_sdk_at(&proxy.url());
    let dir = std::env::temp_dir().join(format!("acura-ha-aws-partial-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut spec = spec(&dir, "partial");
    spec.lineage = Some("lineage-P".into());
    let provider = AwsProvider::new(dir.clone()).quiet(true);
    let mut journal = MemJournal::default();

    // 1. The target groups are refused: the instances still run, and each is recorded ready
    //    with its ID — not left `Creating` by a registration that gave up first.
    refuse(&proxy, "CreateTargetGroup");
    let err = provider.provision(&spec, &mut journal).await.unwrap_err();
    assert!(err.to_string().contains("AccessDenied"), "{err}");
    let nodes: Vec<_> = journal
        .all()
        .into_iter()
        .filter(|r| r.kind == Kind::Instance)
        .collect();
    assert_eq!(nodes.len(), 3, "{nodes:#?}");
    for n in &nodes {
        assert_eq!(
            n.status,
            Status::Ready,
            "{} after the refusal: {n:#?}",
            n.address
        );
        assert!(n.id.is_some(), "{}", n.address);
    }

    // 2. A whole provision, then a listener on a port nobody wants, whose removal is refused:
    //    the adopted, ready NLB stays recorded ready (not `Creating`, which the next plan would
    //    show as its replacement).
    proxy.set_rules(json!([]));
    provider.provision(&spec, &mut journal).await.unwrap();
    let lb = journal.id("load_balancer");
    assert_eq!(journal.get("load_balancer").unwrap().status, Status::Ready);
    let tgs = common::elbv2_ok(&url, "DescribeTargetGroups", &[]);
    let tg = text(items(&tgs["TargetGroups"])[0], "TargetGroupArn").to_string();
    common::elbv2_ok(
        &url,
        "CreateListener",
        &[
            ("LoadBalancerArn", lb.as_str()),
            ("Protocol", "TCP"),
            ("Port", "9999"),
            ("DefaultActions.member.1.Type", "forward"),
            ("DefaultActions.member.1.TargetGroupArn", tg.as_str()),
        ],
    );
    refuse(&proxy, "DeleteListener");
    let err = provider.provision(&spec, &mut journal).await.unwrap_err();
    assert!(err.to_string().contains("AccessDenied"), "{err}");
    let rec = journal.get("load_balancer").unwrap();
    assert_eq!(rec.status, Status::Ready, "{rec:#?}");
    assert_eq!(rec.id.as_deref(), Some(lb.as_str()));

    // Then the refusal lifts: the listener goes, and the NLB is the same one.
    proxy.set_rules(json!([]));
    provider.provision(&spec, &mut journal).await.unwrap();
    assert_eq!(journal.id("load_balancer"), lb);

    // 3. The NLB deleted outside the tool, and a target group of this cluster's (its tags and
    //    lineage) that nothing uses: `up` makes the NLB again and removes that group, so the
    //    plan (refresh) must show the group's removal too, not only the NLB's creation.
    let vpcs = common::ec2_ok(&url, "DescribeVpcs", &[]);
    let vpc = text(items(&vpcs["vpcSet"])[0], "vpcId").to_string();
    common::elbv2_ok(
        &url,
        "CreateTargetGroup",
        &[
            ("Name", "partial-tcp-7777"),
            ("Protocol", "TCP"),
            ("Port", "7777"),
            ("VpcId", vpc.as_str()),
            ("Tags.member.1.Key", "acura-ha/cluster"),
            ("Tags.member.1.Value", "partial"),
            ("Tags.member.2.Key", "acura-ha/lineage"),
            ("Tags.member.2.Value", "lineage-P"),
        ],
    );
    common::elbv2_ok(
        &url,
        "DeleteLoadBalancer",
        &[("LoadBalancerArn", lb.as_str())],
    );
    let drift = provider
        .refresh(&spec, &journal.all())
        .await
        .unwrap()
        .expect("AWS refreshes");
    let extra: Vec<&str> = drift.extra.iter().map(|r| r.address.as_str()).collect();
    assert!(
        extra.contains(&"target_group[outside-partial-tcp-7777]"),
        "the plan must show what up removes: {drift:#?}"
    );
    provider.provision(&spec, &mut journal).await.unwrap();
    let names: Vec<String> =
        items(&common::elbv2_ok(&url, "DescribeTargetGroups", &[])["TargetGroups"])
            .iter()
            .map(|g| text(g, "TargetGroupName").to_string())
            .collect();
    assert!(!names.iter().any(|n| n == "partial-tcp-7777"), "{names:?}");
    let drift = provider
        .refresh(&spec, &journal.all())
        .await
        .unwrap()
        .expect("AWS refreshes");
    assert!(drift.is_empty(), "after up: {drift:#?}");
    provider.destroy(&spec, &mut journal).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
