//! Converge on the NLB (#9.2, #9.3) against a real moto_server behind the fault proxy (which
//! counts every mutating call): what no wanted resource accounts for — a listener and target
//! group added by hand on the cluster's NLB, a listener and target group an older desired model
//! recorded (a port no longer wanted), an instance registered that is not a node — is reported by
//! refresh and removed by `provision`, by ARN, with its records forgotten; someone else's target
//! group and another state's are left alone; listeners and a target group deleted outside the
//! tool are gone and made again (the nodes registered again); a node deregistered by hand is a
//! recorded registration gone, registered again with one call; a node's instance stopped
//! outside the tool is changed, started with one call (same ID); and a provision with nothing
//! to change makes no mutating call at all.
//! `cargo test -p acura-ha-aws --test converge`.

mod common;
mod driver;

use std::collections::BTreeSet;

use acura_ha_api::model::{Drift, Kind, Recorded, Status};
use acura_ha_api::provider::{Journal, Provider};
use acura_ha_aws::AwsProvider;
use common::{Moto, Proxy, amis, items, text};
use driver::{MemJournal, point_sdk_at, spec};
use serde_json::Value;

const CLUSTER: &str = "conv";

fn elb(url: &str, action: &str, params: &[(&str, &str)]) -> Value {
    common::elbv2_ok(url, action, params)
}

/// A target group made by hand, with `tags`; its ARN.
fn target_group(url: &str, vpc: &str, name: &str, port: &str, tags: &[(&str, &str)]) -> String {
    let mut params: Vec<(String, String)> = vec![
        ("Name".into(), name.into()),
        ("Protocol".into(), "TCP".into()),
        ("Port".into(), port.into()),
        ("VpcId".into(), vpc.into()),
    ];
    for (i, (k, v)) in tags.iter().enumerate() {
        params.push((format!("Tags.member.{}.Key", i + 1), k.to_string()));
        params.push((format!("Tags.member.{}.Value", i + 1), v.to_string()));
    }
    let p: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let out = elb(url, "CreateTargetGroup", &p);
    text(items(&out["TargetGroups"])[0], "TargetGroupArn").to_string()
}

/// A TCP listener made by hand on `lb`, forwarding to `tg`; its ARN.
fn listener(url: &str, lb: &str, port: &str, tg: &str) -> String {
    let out = elb(
        url,
        "CreateListener",
        &[
            ("LoadBalancerArn", lb),
            ("Protocol", "TCP"),
            ("Port", port),
            ("DefaultActions.member.1.Type", "forward"),
            ("DefaultActions.member.1.TargetGroupArn", tg),
        ],
    );
    text(items(&out["Listeners"])[0], "ListenerArn").to_string()
}

fn listener_ports(url: &str, lb: &str) -> BTreeSet<String> {
    let out = elb(url, "DescribeListeners", &[("LoadBalancerArn", lb)]);
    items(&out["Listeners"])
        .iter()
        .map(|l| text(l, "Port").to_string())
        .collect()
}

fn group_names(url: &str) -> BTreeSet<String> {
    let out = elb(url, "DescribeTargetGroups", &[]);
    items(&out["TargetGroups"])
        .iter()
        .map(|g| text(g, "TargetGroupName").to_string())
        .collect()
}

fn targets(url: &str, tg: &str) -> BTreeSet<String> {
    let out = elb(url, "DescribeTargetHealth", &[("TargetGroupArn", tg)]);
    items(&out["TargetHealthDescriptions"])
        .iter()
        .map(|d| text(&d["Target"], "Id").to_string())
        .collect()
}

/// What moto says of instance `id`: pending, running, stopped, …
fn instance_state(url: &str, id: &str) -> String {
    let out = common::ec2_ok(url, "DescribeInstances", &[("InstanceId.1", id)]);
    let reservations = items(&out["reservationSet"]);
    let instances = items(&reservations[0]["instancesSet"]);
    text(&instances[0]["instanceState"], "name").to_string()
}

fn addresses(records: &[Recorded]) -> Vec<String> {
    records.iter().map(|r| r.address.clone()).collect()
}

/// A provision that must change nothing: no mutating call reaches the cloud.
async fn provision_changes_nothing(
    provider: &AwsProvider,
    spec: &acura_ha_api::spec::ClusterSpec,
    journal: &mut MemJournal,
    proxy: &Proxy,
    when: &str,
) {
    proxy.reset_stats();
    provider.provision(spec, journal).await.unwrap();
    let stats = proxy.stats();
    assert_eq!(
        stats["mutating"], 0,
        "{when}: a provision with nothing to change calls {:#}",
        stats["mutating_by_action"]
    );
}

async fn refresh(
    provider: &AwsProvider,
    spec: &acura_ha_api::spec::ClusterSpec,
    journal: &MemJournal,
) -> Drift {
    provider
        .refresh(spec, &journal.all())
        .await
        .unwrap()
        .expect("AWS refreshes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_no_wanted_resource_accounts_for_is_reported_and_removed() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    let url = moto.url();
    point_sdk_at(&proxy.url());
    let dir = std::env::temp_dir().join(format!("acura-ha-aws-converge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut spec = spec(&dir, CLUSTER);
    spec.lineage = Some("lineage-A".into());
    let provider = AwsProvider::new(dir.clone()).quiet(true);
    let mut journal = MemJournal::default();

    provider.provision(&spec, &mut journal).await.unwrap();
    // Each node in each target group is a registration of the desired model, recorded as
    // registered (#9.1): the plan and the provider read the same entries.
    let desired = acura_ha_api::desired::desired(&spec);
    let wanted_members: BTreeSet<String> = desired
        .iter()
        .filter(|r| r.kind == Kind::Member)
        .map(|r| r.address.clone())
        .collect();
    assert_eq!(wanted_members.len(), 18, "3 nodes in 6 target groups");
    for address in &wanted_members {
        let node = address
            .trim_start_matches("member[")
            .split(':')
            .next()
            .unwrap();
        let r = journal.get(address).expect("recorded");
        assert_eq!(r.status, Status::Ready, "{address}");
        assert_eq!(
            r.id.as_deref(),
            Some(journal.id(&format!("instance[{node}]")).as_str()),
            "{address}: the instance is its ID"
        );
        let tg = &r.outputs["target_group_arn"];
        assert!(
            targets(&url, tg).contains(r.id.as_ref().unwrap()),
            "{address}"
        );
    }
    let drift = refresh(&provider, &spec, &journal).await;
    assert!(drift.is_empty(), "right after provision: {drift:#?}");
    provision_changes_nothing(&provider, &spec, &mut journal, &proxy, "a second provision").await;

    let lb = journal.id("load_balancer");
    let wanted_ports = listener_ports(&url, &lb);
    let wanted_groups = group_names(&url);
    let vpcs = common::ec2_ok(&url, "DescribeVpcs", &[]);
    let vpc = text(items(&vpcs["vpcSet"])[0], "vpcId").to_string();
    let cluster_tag = ("acura-ha/cluster", CLUSTER);

    // By hand on the cluster's NLB: a listener on 9999 forwarding to a target group of the
    // cluster's (its tag, no lineage: made by hand).
    let hand_tg = target_group(&url, &vpc, "by-hand", "9999", &[cluster_tag]);
    let hand_listener = listener(&url, &lb, "9999", &hand_tg);
    // What an older desired model made and recorded: a listener on 9998 and its target group.
    let old_tg = target_group(
        &url,
        &vpc,
        &format!("{CLUSTER}-tcp-9998"),
        "9998",
        &[cluster_tag, ("acura-ha/lineage", "lineage-A")],
    );
    let old_listener = listener(&url, &lb, "9998", &old_tg);
    for (address, kind, name, arn) in [
        (
            "target_group[tcp-9998]",
            Kind::TargetGroup,
            "conv-tcp-9998",
            &old_tg,
        ),
        (
            "listener[tcp-9998]",
            Kind::Listener,
            "old tcp-9998",
            &old_listener,
        ),
    ] {
        journal
            .record(Recorded::found(
                address.into(),
                kind,
                name.into(),
                arn.clone(),
                Default::default(),
            ))
            .unwrap();
    }
    // Left alone: someone else's target group, and another state's of the same cluster name.
    let theirs = target_group(&url, &vpc, "someone-else", "80", &[]);
    let twin = target_group(
        &url,
        &vpc,
        &format!("{CLUSTER}-tcp-7777"),
        "7777",
        &[cluster_tag, ("acura-ha/lineage", "lineage-B")],
    );
    // An instance that is not a node, registered in a wanted target group.
    let run = common::ec2_ok(
        &url,
        "RunInstances",
        &[
            ("ImageId", amis::NOBLE),
            ("InstanceType", "t3.micro"),
            ("MinCount", "1"),
            ("MaxCount", "1"),
        ],
    );
    let stranger = text(items(&run["instancesSet"])[0], "instanceId").to_string();
    let tg443 = journal.id("target_group[tcp-443]");
    elb(
        &url,
        "RegisterTargets",
        &[
            ("TargetGroupArn", &tg443),
            ("Targets.member.1.Id", &stranger),
        ],
    );

    // Refresh: what is added outside is extra (the recorded old ones are the plan's "no longer
    // in the cluster file", not extra), nothing is gone.
    let drift = refresh(&provider, &spec, &journal).await;
    assert!(drift.gone.is_empty(), "{drift:#?}");
    let mut extra: Vec<(String, Kind, String, String)> = drift
        .extra
        .iter()
        .filter(|r| r.kind != Kind::SecurityGroupRule)
        .map(|r| {
            (
                r.address.clone(),
                r.kind,
                r.name.clone(),
                r.id.clone().unwrap_or_default(),
            )
        })
        .collect();
    extra.sort_by(|a, b| a.0.cmp(&b.0));
    let listener_tail = hand_listener.rsplit('/').next().unwrap();
    assert_eq!(
        extra,
        vec![
            (
                format!("listener[outside-{listener_tail}]"),
                Kind::Listener,
                "TCP 9999".to_string(),
                hand_listener.clone()
            ),
            (
                format!("target[outside-tcp-443-{stranger}]"),
                Kind::Member,
                format!("{stranger} in {CLUSTER}-tcp-443"),
                stranger.clone()
            ),
            (
                "target_group[outside-by-hand]".to_string(),
                Kind::TargetGroup,
                "by-hand".to_string(),
                hand_tg.clone()
            ),
        ],
        "{drift:#?}"
    );

    // Provision removes them, after the wanted ones; their records are written Deleting, then
    // forgotten.
    journal.history.clear();
    provider.provision(&spec, &mut journal).await.unwrap();
    assert_eq!(listener_ports(&url, &lb), wanted_ports);
    let mut expected_groups = wanted_groups.clone();
    expected_groups.extend(["someone-else".to_string(), format!("{CLUSTER}-tcp-7777")]);
    assert_eq!(group_names(&url), expected_groups);
    assert!(
        !targets(&url, &tg443).contains(&stranger),
        "{stranger} deregistered"
    );
    assert_eq!(targets(&url, &tg443).len(), 3, "the nodes stay registered");
    for address in [
        format!("listener[outside-{listener_tail}]"),
        "target_group[outside-by-hand]".to_string(),
        "listener[tcp-9998]".to_string(),
        "target_group[tcp-9998]".to_string(),
    ] {
        let seen: Vec<Option<Status>> = journal
            .history
            .iter()
            .filter(|(a, _)| a == &address)
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(
            seen,
            [Some(Status::Deleting), None],
            "{address}: recorded Deleting, then forgotten: {:?}",
            journal.history
        );
    }
    let left: Vec<String> = addresses(&journal.all())
        .into_iter()
        .filter(|a| a.contains("9998") || a.contains("outside"))
        .collect();
    assert!(left.is_empty(), "records of what was deleted: {left:?}");
    let drift = refresh(&provider, &spec, &journal).await;
    assert!(drift.is_empty(), "after provision removed them: {drift:#?}");
    provision_changes_nothing(&provider, &spec, &mut journal, &proxy, "after the removal").await;

    // A listener deleted outside the tool, and another with its target group (AWS deletes a
    // group only once no listener uses it): gone, made again, and then nothing to change.
    let l443 = journal.id("listener[tcp-443]");
    let (l80, tg80) = (
        journal.id("listener[tcp-80]"),
        journal.id("target_group[tcp-80]"),
    );
    elb(&url, "DeleteListener", &[("ListenerArn", &l443)]);
    elb(&url, "DeleteListener", &[("ListenerArn", &l80)]);
    elb(&url, "DeleteTargetGroup", &[("TargetGroupArn", &tg80)]);
    let drift = refresh(&provider, &spec, &journal).await;
    let mut gone: Vec<(&str, &str)> = drift
        .gone
        .iter()
        .map(|g| (g.address.as_str(), g.reason.as_str()))
        .collect();
    gone.sort();
    // The nodes' registrations went with their target group.
    let with_group = "its target group was deleted outside acura-ha";
    assert_eq!(
        gone,
        [
            ("listener[tcp-443]", "deleted outside acura-ha"),
            ("listener[tcp-80]", "deleted outside acura-ha"),
            ("member[acura-1:tcp-80]", with_group),
            ("member[acura-2:tcp-80]", with_group),
            ("member[acura-3:tcp-80]", with_group),
            ("target_group[tcp-80]", "deleted outside acura-ha"),
        ],
        "{drift:#?}"
    );
    assert!(drift.extra.is_empty(), "{drift:#?}");
    // What the engine does before provisioning (`refresh::forget_gone`).
    for g in &drift.gone {
        journal.forget(&g.address).unwrap();
    }
    provider.provision(&spec, &mut journal).await.unwrap();
    assert_eq!(listener_ports(&url, &lb), wanted_ports);
    assert_eq!(group_names(&url), expected_groups);
    assert_ne!(journal.id("listener[tcp-443]"), l443, "a new listener");
    let tg80 = journal.id("target_group[tcp-80]");
    assert_eq!(targets(&url, &tg80).len(), 3, "the nodes registered again");
    let drift = refresh(&provider, &spec, &journal).await;
    assert!(drift.is_empty(), "after they were made again: {drift:#?}");
    provision_changes_nothing(&provider, &spec, &mut journal, &proxy, "after the repair").await;

    // A node deregistered from a target group by hand (#9.1): its recorded registration is
    // gone, provision registers it again with exactly one call, and then nothing differs.
    let node = journal.id("instance[acura-2]");
    let tg6443 = journal.id("target_group[tcp-6443]");
    assert_eq!(journal.id("member[acura-2:tcp-6443]"), node);
    elb(
        &url,
        "DeregisterTargets",
        &[("TargetGroupArn", &tg6443), ("Targets.member.1.Id", &node)],
    );
    let drift = refresh(&provider, &spec, &journal).await;
    let gone: Vec<(&str, &str)> = drift
        .gone
        .iter()
        .map(|g| (g.address.as_str(), g.reason.as_str()))
        .collect();
    assert_eq!(
        gone,
        [("member[acura-2:tcp-6443]", "deregistered outside acura-ha")],
        "{drift:#?}"
    );
    assert!(drift.extra.is_empty(), "{drift:#?}");
    for g in &drift.gone {
        journal.forget(&g.address).unwrap();
    }
    proxy.reset_stats();
    provider.provision(&spec, &mut journal).await.unwrap();
    let stats = proxy.stats();
    assert_eq!(
        stats["mutating_by_action"],
        serde_json::json!({ "RegisterTargets": 1 }),
        "only the missing registration is made: {stats:#}"
    );
    assert!(targets(&url, &tg6443).contains(&node), "registered again");
    assert_eq!(
        journal.id("member[acura-2:tcp-6443]"),
        node,
        "recorded again"
    );
    let drift = refresh(&provider, &spec, &journal).await;
    assert!(drift.is_empty(), "after the registration: {drift:#?}");
    provision_changes_nothing(
        &provider,
        &spec,
        &mut journal,
        &proxy,
        "after the registration",
    )
    .await;

    // A node's instance stopped outside the tool (#9): refresh reports it changed, not gone;
    // provision starts it with exactly one StartInstances (no instance run or terminated), the
    // same instance, its records kept; then nothing differs.
    let node = journal.id("instance[acura-2]");
    let before = journal.all();
    common::ec2_ok(&url, "StopInstances", &[("InstanceId.1", &node)]);
    assert_eq!(instance_state(&url, &node), "stopped");
    let drift = refresh(&provider, &spec, &journal).await;
    let changed: Vec<(&str, &str)> = drift
        .changed
        .iter()
        .map(|c| (c.address.as_str(), c.reason.as_str()))
        .collect();
    assert_eq!(
        changed,
        [(
            "instance[acura-2]",
            "stopped outside acura-ha: up starts it"
        )],
        "{drift:#?}"
    );
    assert!(
        drift.gone.is_empty() && drift.extra.is_empty(),
        "{drift:#?}"
    );
    proxy.reset_stats();
    provider.provision(&spec, &mut journal).await.unwrap();
    let stats = proxy.stats();
    assert_eq!(
        stats["mutating_by_action"],
        serde_json::json!({ "StartInstances": 1 }),
        "only the stopped instance is started: {stats:#}"
    );
    assert_eq!(instance_state(&url, &node), "running");
    assert_eq!(journal.id("instance[acura-2]"), node, "the same instance");
    assert_eq!(
        addresses(&journal.all()),
        addresses(&before),
        "its records kept"
    );
    let drift = refresh(&provider, &spec, &journal).await;
    assert!(drift.is_empty(), "after it was started: {drift:#?}");
    provision_changes_nothing(&provider, &spec, &mut journal, &proxy, "after the start").await;

    provider.destroy(&spec, &mut journal).await.unwrap();
    assert!(
        journal.all().is_empty(),
        "down forgets every record, the registrations' too: {:#?}",
        journal.all()
    );
    for arn in [&theirs, &twin] {
        elb(&url, "DeleteTargetGroup", &[("TargetGroupArn", arn)]);
    }
    common::ec2_ok(&url, "TerminateInstances", &[("InstanceId.1", &stranger)]);
    let _ = std::fs::remove_dir_all(&dir);
}
