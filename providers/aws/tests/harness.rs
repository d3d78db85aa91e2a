//! Proves the AWS test harness (tests/common): a real moto_server with our AMI catalogue, the
//! fault proxy's forwarding, counting and injected errors, and the inventory. No SDK here, so this
//! compiles fast: `cargo test -p acura-ha-aws --test harness`.

mod common;

use common::{Moto, Proxy, amis, ec2, ec2_ok, elbv2, elbv2_ok, items, text};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn image_ids(reply: &Value) -> Vec<String> {
    let mut ids: Vec<String> = items(&reply["imagesSet"])
        .into_iter()
        .map(|i| text(i, "imageId").to_string())
        .collect();
    ids.sort();
    ids
}

fn describe_images(url: &str, owner: Option<&str>, name: &str) -> Value {
    let mut params = vec![("Filter.1.Name", "name"), ("Filter.1.Value.1", name)];
    if let Some(o) = owner {
        params.push(("Owner.1", o));
    }
    ec2_ok(url, "DescribeImages", &params)
}

fn create_group(url: &str, name: &str) -> String {
    let r = ec2_ok(
        url,
        "CreateSecurityGroup",
        &[("GroupName", name), ("GroupDescription", "harness test")],
    );
    let id = text(&r, "groupId").to_string();
    assert!(id.starts_with("sg-"), "CreateSecurityGroup: {r}");
    id
}

#[test]
fn moto_starts_answers_and_resets() {
    let moto = Moto::start();
    eprintln!(
        "moto_server on {} (pid {}) ready, warm-up call included, in {:?}",
        moto.url(),
        moto.pid(),
        moto.started_in()
    );
    let vpcs = ec2_ok(&moto.url(), "DescribeVpcs", &[]);
    let default: Vec<&Value> = items(&vpcs["vpcSet"])
        .into_iter()
        .filter(|v| text(v, "isDefault") == "true")
        .collect();
    assert_eq!(default.len(), 1, "one default VPC: {vpcs}");
    assert_eq!(text(default[0], "cidrBlock"), "172.31.0.0/16");

    let lbs = elbv2_ok(&moto.url(), "DescribeLoadBalancers", &[]);
    assert!(items(&lbs["LoadBalancers"]).is_empty(), "{lbs}");

    // moto's own errors have the AWS shape; the helper reads the code.
    let dup = ec2(
        &moto.url(),
        "DescribeSecurityGroups",
        &[("GroupId.1", "sg-0000000000nope")],
    )
    .unwrap();
    assert_eq!(dup.status, 400, "{}", dup.body);
    assert_eq!(dup.error_code().as_deref(), Some("InvalidGroup.NotFound"));

    let empty = common::inventory(&moto.url());
    assert_eq!(common::inventory_len(&empty), 0, "fresh moto: {empty:#}");

    create_group(&moto.url(), "before-reset");
    assert_eq!(
        common::inventory(&moto.url())["security_groups"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    moto.reset();
    assert_eq!(common::inventory(&moto.url()), empty);
    // The AMI catalogue comes back after a reset.
    let focal = describe_images(
        &moto.url(),
        Some(common::CANONICAL),
        amis::FOCAL_NAME_PATTERN,
    );
    assert_eq!(image_ids(&focal).len(), 2, "{focal}");
}

#[test]
fn ami_catalogue_has_canonical_focal_and_noble() {
    let moto = Moto::start();
    let url = moto.url();

    let focal = describe_images(&url, Some(common::CANONICAL), amis::FOCAL_NAME_PATTERN);
    assert_eq!(
        image_ids(&focal),
        vec![amis::FOCAL_OLD.to_string(), amis::FOCAL_NEW.to_string()]
    );
    // "Pick the newest" has two candidates to choose from, and CreationDate is reported.
    let newest = items(&focal["imagesSet"])
        .into_iter()
        .max_by_key(|i| text(i, "creationDate").to_string())
        .unwrap();
    assert_eq!(text(newest, "imageId"), amis::FOCAL_NEW);
    assert_eq!(text(newest, "creationDate"), "2024-02-28T00:00:00.000Z");
    assert_eq!(text(newest, "imageOwnerId"), common::CANONICAL);

    let noble = describe_images(&url, Some(common::CANONICAL), amis::NOBLE_NAME_PATTERN);
    assert_eq!(image_ids(&noble), vec![amis::NOBLE.to_string()]);

    // Without the owner filter the impostor (newest date of all) matches too.
    let anyone = describe_images(&url, None, amis::FOCAL_NAME_PATTERN);
    assert_eq!(image_ids(&anyone).len(), 3, "{anyone}");
    assert!(image_ids(&anyone).contains(&amis::IMPOSTOR.to_string()));
    let impostor = describe_images(&url, Some(amis::IMPOSTOR_OWNER), amis::FOCAL_NAME_PATTERN);
    assert_eq!(image_ids(&impostor), vec![amis::IMPOSTOR.to_string()]);

    // With MOTO_AMIS_PATH, moto's own catalogue is gone: no other Canonical images.
    let all_canonical = ec2_ok(&url, "DescribeImages", &[("Owner.1", common::CANONICAL)]);
    assert_eq!(image_ids(&all_canonical).len(), 3, "{all_canonical}");
}

#[test]
fn proxy_forwards_and_counts() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    let via = proxy.url();

    let direct = ec2(&moto.url(), "DescribeVpcs", &[]).unwrap();
    let proxied = ec2(&via, "DescribeVpcs", &[]).unwrap();
    assert_eq!(proxied.status, 200);
    assert_eq!(
        proxied.body, direct.body,
        "the proxy passes replies through unchanged"
    );

    let sg = create_group(&via, "counted");
    let lbs = elbv2_ok(&via, "DescribeLoadBalancers", &[]);
    assert!(items(&lbs["LoadBalancers"]).is_empty());
    // Action from the query string works too.
    let auth = common::fake_sigv4(common::EC2, common::REGION);
    let get = common::http(
        "GET",
        &format!("{via}/?Action=DescribeSecurityGroups&Version=2016-11-15&GroupId.1={sg}"),
        &[("Authorization", &auth)],
        b"",
    )
    .unwrap();
    assert_eq!(get.status, 200, "{}", get.body);
    assert!(get.body.contains(&sg));
    // A pure latency rule changes nothing but the timing (not asserted).
    proxy.set_rules(json!([{ "action": "*", "delay_ms": 20 }]));
    ec2_ok(&via, "DeleteSecurityGroup", &[("GroupId", &sg)]);

    let stats = proxy.stats();
    assert_eq!(stats["total"], 5, "{stats:#}");
    assert_eq!(
        stats["by_action"],
        json!({"DescribeVpcs": 1, "CreateSecurityGroup": 1, "DescribeLoadBalancers": 1,
               "DescribeSecurityGroups": 1, "DeleteSecurityGroup": 1})
    );
    assert_eq!(
        stats["by_service"],
        json!({"ec2": 4, "elasticloadbalancing": 1})
    );
    assert_eq!(stats["mutating"], 2);
    assert_eq!(
        stats["mutating_by_action"],
        json!({"CreateSecurityGroup": 1, "DeleteSecurityGroup": 1})
    );
    assert_eq!(stats["faults_injected"], 0);
    let order: Vec<&str> = stats["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "DescribeVpcs",
            "CreateSecurityGroup",
            "DescribeLoadBalancers",
            "DescribeSecurityGroups",
            "DeleteSecurityGroup"
        ]
    );

    proxy.reset_stats();
    let stats = proxy.stats();
    assert_eq!(stats["total"], 0);
    assert_eq!(stats["log"], json!([]));
    assert_eq!(common::inventory_len(&common::inventory(&moto.url())), 0);
    assert_eq!(
        proxy.stats()["total"],
        0,
        "the inventory read moto directly"
    );
}

#[test]
fn injected_dependency_violation_then_success() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    let sg = create_group(&moto.url(), "in-use");
    proxy.set_rules(json!([
        {
            "action": "DeleteSecurityGroup",
            "times": 1,
            "fault": "DependencyViolation",
            "delay_ms": 0
        }
    ]));

    let first = ec2(&proxy.url(), "DeleteSecurityGroup", &[("GroupId", &sg)]).unwrap();
    assert_eq!(first.status, 400, "{}", first.body);
    assert_eq!(first.error_code().as_deref(), Some("DependencyViolation"));
    assert!(
        first
            .header("Content-Type")
            .unwrap()
            .starts_with("text/xml")
    );
    let xml = first.xml();
    let error = &xml["Response"]["Errors"]["Error"];
    assert_eq!(error["Code"], "DependencyViolation", "{xml}");
    assert_eq!(
        error["Message"],
        format!("resource {sg} has a dependent object")
    );
    assert!(!text(&xml["Response"], "RequestID").is_empty(), "{xml}");
    // The fault was not forwarded: the group is still there.
    assert_eq!(
        common::inventory(&moto.url())["security_groups"][0]["id"],
        sg.as_str()
    );

    let second = ec2(&proxy.url(), "DeleteSecurityGroup", &[("GroupId", &sg)]).unwrap();
    assert_eq!(second.status, 200, "{}", second.body);
    assert!(
        common::inventory(&moto.url())["security_groups"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let stats = proxy.stats();
    assert_eq!(stats["faults_injected"], 1, "{stats:#}");
    assert_eq!(stats["by_action"]["DeleteSecurityGroup"], 2);
    assert_eq!(stats["log"][0]["fault"], "DependencyViolation");
    assert_eq!(stats["log"][1]["fault"], Value::Null);
    assert_eq!(proxy.rules()[0]["remaining"], 0);
}

#[test]
fn throttling_and_server_errors_have_the_aws_shapes_and_stop_after_times() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    let via = proxy.url();
    proxy.set_rules(json!([
        { "action": "DescribeVpcs", "times": 2, "fault": "Throttling" },
        { "action": "DescribeLoadBalancers", "fault": "Throttling" },
        { "action": "DescribeTargetGroups", "fault": "InternalError500" },
        { "action": "DescribeInstances", "fault": "InternalError500" },
        { "action": "TerminateInstances", "fault": "InvalidInstanceID.NotFound" },
        { "action": "DeleteLoadBalancer", "service": "ec2", "fault": "Throttling" },
    ]));

    // EC2 throttling: HTTP 503 RequestLimitExceeded, twice, then the real reply.
    for _ in 0..2 {
        let r = ec2(&via, "DescribeVpcs", &[]).unwrap();
        assert_eq!(r.status, 503, "{}", r.body);
        assert_eq!(r.error_code().as_deref(), Some("RequestLimitExceeded"));
        assert_eq!(
            r.xml()["Response"]["Errors"]["Error"]["Code"],
            "RequestLimitExceeded"
        );
    }
    assert_eq!(ec2(&via, "DescribeVpcs", &[]).unwrap().status, 200);

    // ELBv2 throttling: HTTP 400 Throttling in an <ErrorResponse>, Type Sender.
    let r = elbv2(&via, "DescribeLoadBalancers", &[]).unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
    let e = &r.xml()["ErrorResponse"];
    assert_eq!(e["Error"]["Code"], "Throttling", "{}", r.body);
    assert_eq!(e["Error"]["Type"], "Sender");
    assert!(!text(e, "RequestId").is_empty());
    assert_eq!(
        elbv2(&via, "DescribeLoadBalancers", &[]).unwrap().status,
        200
    );

    let r = elbv2(&via, "DescribeTargetGroups", &[]).unwrap();
    assert_eq!(r.status, 500);
    assert_eq!(r.xml()["ErrorResponse"]["Error"]["Code"], "InternalFailure");
    assert_eq!(r.xml()["ErrorResponse"]["Error"]["Type"], "Receiver");
    let r = ec2(&via, "DescribeInstances", &[]).unwrap();
    assert_eq!(r.status, 500);
    assert_eq!(r.error_code().as_deref(), Some("InternalError"));

    let r = ec2(
        &via,
        "TerminateInstances",
        &[("InstanceId.1", "i-0123456789abcdef0")],
    )
    .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(
        r.error_code().as_deref(),
        Some("InvalidInstanceID.NotFound")
    );
    assert!(r.body.contains("i-0123456789abcdef0"), "{}", r.body);

    // A rule for another service does not fire: this DeleteLoadBalancer reaches moto.
    let r = elbv2(
        &via,
        "DeleteLoadBalancer",
        &[(
            "LoadBalancerArn",
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/none/0",
        )],
    )
    .unwrap();
    assert_ne!(
        r.error_code().as_deref(),
        Some("RequestLimitExceeded"),
        "{}",
        r.body
    );

    let stats = proxy.stats();
    assert_eq!(stats["faults_injected"], 6, "{stats:#}");
    assert_eq!(
        stats["faults_by_action"],
        json!({"DescribeVpcs": 2, "DescribeLoadBalancers": 1, "DescribeTargetGroups": 1,
               "DescribeInstances": 1, "TerminateInstances": 1})
    );

    // Bad rules are refused, naming the problem; the old rules stay.
    let bad = common::http(
        "POST",
        &format!("{via}/__proxy/rules"),
        &[],
        br#"[{"action": "DeleteSecurityGroup", "fault": "DependencyViolaton"}]"#,
    )
    .unwrap();
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("unknown fault"), "{}", bad.body);
    assert_eq!(proxy.rules().as_array().unwrap().len(), 6);
}

#[test]
fn reset_fault_closes_the_connection_without_a_reply() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    proxy.set_rules(json!([{ "action": "DescribeKeyPairs", "times": 1, "fault": "reset" }]));

    // By hand, to see exactly what comes back: no byte of a reply.
    let mut s = describe_key_pairs_by_hand(&proxy, Duration::from_secs(60));
    let mut reply = Vec::new();
    let read = s.read_to_end(&mut reply);
    assert!(
        reply.is_empty(),
        "got {:?}",
        String::from_utf8_lossy(&reply)
    );
    if let Err(e) = read {
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    }

    // The helper reports it as an error; the rule has fired its one time, so the next call works.
    proxy.set_rules(json!([{ "action": "DescribeKeyPairs", "times": 1, "fault": "reset" }]));
    assert!(ec2(&proxy.url(), "DescribeKeyPairs", &[]).is_err());
    let ok = ec2(&proxy.url(), "DescribeKeyPairs", &[]).unwrap();
    assert_eq!(ok.status, 200, "{}", ok.body);
    let stats = proxy.stats();
    assert_eq!(stats["faults_injected"], 2, "{stats:#}");
    assert_eq!(stats["total"], 3);
}

/// A DescribeKeyPairs request written by hand on a new connection to the proxy, whose reads
/// time out after `read_timeout`.
fn describe_key_pairs_by_hand(proxy: &Proxy, read_timeout: Duration) -> TcpStream {
    let body = "Action=DescribeKeyPairs&Version=2016-11-15";
    let auth = common::fake_sigv4(common::EC2, common::REGION);
    let mut s = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
    s.set_read_timeout(Some(read_timeout)).unwrap();
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    s
}

/// `hang` reads the request and holds the connection open without a byte of reply; `every: 2`
/// picks the second matching call, and the rule's one time is then used up.
#[test]
fn hang_fault_holds_the_connection_open_without_a_reply() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    proxy.set_rules(json!([
        { "action": "DescribeKeyPairs", "fault": "hang", "every": 2, "times": 1 }
    ]));
    let first = ec2(&proxy.url(), "DescribeKeyPairs", &[]).unwrap();
    assert_eq!(first.status, 200, "{}", first.body);

    let mut s = describe_key_pairs_by_hand(&proxy, Duration::from_secs(2));
    let mut byte = [0u8; 1];
    let e = s
        .read(&mut byte)
        .expect_err("no reply, and the connection stays open");
    assert!(
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{e}"
    );
    drop(s);

    for _ in 0..3 {
        let ok = ec2(&proxy.url(), "DescribeKeyPairs", &[]).unwrap();
        assert_eq!(ok.status, 200, "{}", ok.body);
    }
    let stats = proxy.stats();
    assert_eq!(stats["faults_injected"], 1, "{stats:#}");
    assert_eq!(
        stats["faults_by_action"]["DescribeKeyPairs"], 1,
        "{stats:#}"
    );
    assert_eq!(proxy.rules()[0]["fired"], 1);
}

#[test]
fn proxy_refuses_an_upstream_off_loopback() {
    let out = std::process::Command::new(common::python())
        .arg(common::fault_proxy_script())
        .args(["--upstream", "http://10.0.0.1:5000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("127.0.0.0/8"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The inventory sees every kind of resource the tool creates, and a teardown brings it back.
#[test]
fn inventory_lists_each_resource_kind_and_sees_teardown() {
    let moto = Moto::start();
    let url = moto.url();
    let before = common::inventory(&url);
    assert_eq!(common::inventory_len(&before), 0, "{before:#}");

    let sg = create_group(&url, "inv-nodes");
    let material = base64(common::TEST_PUBLIC_KEY.as_bytes());
    ec2_ok(
        &url,
        "ImportKeyPair",
        &[("KeyName", "inv-key"), ("PublicKeyMaterial", &material)],
    );
    let subnets = ec2_ok(&url, "DescribeSubnets", &[]);
    let subnet_ids: Vec<&str> = items(&subnets["subnetSet"])
        .into_iter()
        .map(|s| text(s, "subnetId"))
        .collect();
    let run = ec2_ok(
        &url,
        "RunInstances",
        &[
            ("ImageId", amis::FOCAL_NEW),
            ("InstanceType", "m5.2xlarge"),
            ("MinCount", "2"),
            ("MaxCount", "2"),
            ("KeyName", "inv-key"),
            ("SecurityGroupId.1", &sg),
            ("SubnetId", subnet_ids[0]),
            ("BlockDeviceMapping.1.DeviceName", "/dev/sda1"),
            ("BlockDeviceMapping.1.Ebs.VolumeSize", "200"),
            ("BlockDeviceMapping.1.Ebs.VolumeType", "gp3"),
            ("BlockDeviceMapping.1.Ebs.DeleteOnTermination", "true"),
            ("TagSpecification.1.ResourceType", "instance"),
            ("TagSpecification.1.Tag.1.Key", "cluster"),
            ("TagSpecification.1.Tag.1.Value", "inv"),
        ],
    );
    let ids: Vec<String> = items(&run["instancesSet"])
        .into_iter()
        .map(|i| text(i, "instanceId").to_string())
        .collect();
    assert_eq!(ids.len(), 2, "{run}");
    let eip = ec2_ok(&url, "AllocateAddress", &[("Domain", "vpc")]);
    let alloc = text(&eip, "allocationId").to_string();
    let lb = elbv2_ok(
        &url,
        "CreateLoadBalancer",
        &[
            ("Name", "inv-nlb"),
            ("Type", "network"),
            ("Scheme", "internet-facing"),
            ("Subnets.member.1", subnet_ids[0]),
            ("Subnets.member.2", subnet_ids[1]),
            ("Tags.member.1.Key", "cluster"),
            ("Tags.member.1.Value", "inv"),
        ],
    );
    let lb_arn = text(&lb["LoadBalancers"][0], "LoadBalancerArn").to_string();
    let vpc = text(&subnets["subnetSet"][0], "vpcId").to_string();
    let tg = elbv2_ok(
        &url,
        "CreateTargetGroup",
        &[
            ("Name", "inv-tcp-6443"),
            ("Protocol", "TCP"),
            ("Port", "6443"),
            ("VpcId", &vpc),
            ("TargetType", "instance"),
        ],
    );
    let tg_arn = text(&tg["TargetGroups"][0], "TargetGroupArn").to_string();
    elbv2_ok(
        &url,
        "RegisterTargets",
        &[
            ("TargetGroupArn", &tg_arn),
            ("Targets.member.1.Id", &ids[0]),
            ("Targets.member.1.Port", "6443"),
            ("Targets.member.2.Id", &ids[1]),
            ("Targets.member.2.Port", "6443"),
        ],
    );
    let listener = elbv2_ok(
        &url,
        "CreateListener",
        &[
            ("LoadBalancerArn", &lb_arn),
            ("Protocol", "TCP"),
            ("Port", "6443"),
            ("DefaultActions.member.1.Type", "forward"),
            ("DefaultActions.member.1.TargetGroupArn", &tg_arn),
        ],
    );
    let listener_arn = text(&listener["Listeners"][0], "ListenerArn").to_string();

    let during = common::inventory(&url);
    let count = |kind: &str| during[kind].as_array().unwrap().len();
    assert_eq!(count("instances"), 2, "{during:#}");
    assert_eq!(count("security_groups"), 1);
    assert_eq!(count("key_pairs"), 1);
    assert_eq!(
        count("volumes"),
        2,
        "one 200 GiB root volume per instance: {during:#}"
    );
    assert_eq!(count("addresses"), 1);
    assert_eq!(count("load_balancers"), 1);
    assert_eq!(count("target_groups"), 1);
    assert_eq!(count("listeners"), 1);
    let i0 = &during["instances"][0];
    assert_eq!(i0["type"], "m5.2xlarge");
    assert_eq!(i0["image"], amis::FOCAL_NEW);
    assert_eq!(i0["key"], "inv-key");
    assert_eq!(i0["security_groups"], json!([sg]));
    assert_eq!(i0["tags"], json!({"cluster": "inv"}));
    assert_eq!(during["volumes"][0]["size"], "200");
    assert_eq!(during["volumes"][0]["type"], "gp3");
    assert_eq!(during["key_pairs"][0]["name"], "inv-key");
    assert_eq!(during["addresses"][0]["allocation_id"], alloc.as_str());
    assert_eq!(during["load_balancers"][0]["name"], "inv-nlb");
    assert_eq!(during["load_balancers"][0]["type"], "network");
    assert_eq!(
        during["load_balancers"][0]["tags"],
        json!({"cluster": "inv"})
    );
    assert_eq!(during["listeners"][0]["port"], "6443");
    assert_eq!(during["listeners"][0]["target_groups"], json!([tg_arn]));
    let mut targets: Vec<String> = ids.iter().map(|i| format!("{i}:6443")).collect();
    targets.sort();
    assert_eq!(during["target_groups"][0]["targets"], json!(targets));
    let diff = common::inventory_diff(&before, &during);
    assert_eq!(diff["removed"], json!({}));
    assert_eq!(diff["added"].as_object().unwrap().len(), 8, "{diff:#}");

    // Teardown, in the tool's order.
    elbv2_ok(&url, "DeleteListener", &[("ListenerArn", &listener_arn)]);
    elbv2_ok(&url, "DeleteLoadBalancer", &[("LoadBalancerArn", &lb_arn)]);
    elbv2_ok(&url, "DeleteTargetGroup", &[("TargetGroupArn", &tg_arn)]);
    ec2_ok(
        &url,
        "TerminateInstances",
        &[("InstanceId.1", &ids[0]), ("InstanceId.2", &ids[1])],
    );
    ec2_ok(&url, "ReleaseAddress", &[("AllocationId", &alloc)]);
    ec2_ok(&url, "DeleteSecurityGroup", &[("GroupId", &sg)]);
    ec2_ok(&url, "DeleteKeyPair", &[("KeyName", "inv-key")]);

    let after = common::inventory(&url);
    assert_eq!(
        after,
        before,
        "left behind: {:#}",
        common::inventory_diff(&before, &after)
    );
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(A[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The list `key` of an ELBv2 answer, with or without its `<Action>Result` wrapper.
fn elb_list<'a>(v: &'a Value, action: &str, key: &str) -> Vec<&'a Value> {
    let inner = &v[format!("{action}Result")][key];
    items(if inner.is_null() { &v[key] } else { inner })
}

/// #13.7: with a page size, the proxy cuts paged Describe* answers into pages of N items with a
/// token of its own, serves the following pages when the token comes back, and the pages add up
/// to moto's whole answer — EC2 (`nextToken`) and ELBv2 (`NextMarker`) alike.
#[test]
fn proxy_cuts_describe_answers_into_pages() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    proxy.set_page_size(Some(2));
    for i in 0..5 {
        create_group(&moto.url(), &format!("paged-{i}"));
    }
    let ids = |v: &Value| -> Vec<String> {
        items(&v["securityGroupInfo"])
            .into_iter()
            .map(|g| text(g, "groupId").to_string())
            .collect()
    };
    let mut whole = ids(&ec2_ok(&moto.url(), "DescribeSecurityGroups", &[]));
    assert!(whole.len() >= 6, "five groups and the default: {whole:?}");
    let mut paged = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let params: Vec<(&str, &str)> = if token.is_empty() {
            vec![]
        } else {
            vec![("NextToken", token.as_str())]
        };
        let page = ec2_ok(&proxy.url(), "DescribeSecurityGroups", &params);
        let got = ids(&page);
        pages += 1;
        token = text(&page, "nextToken").to_string();
        if !token.is_empty() {
            assert_eq!(got.len(), 2, "a full page: {page}");
        }
        paged.extend(got);
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(pages, whole.len().div_ceil(2));
    whole.sort();
    paged.sort();
    assert_eq!(paged, whole);
    // A spent token is refused, as AWS refuses a stale one.
    let first = ec2_ok(&proxy.url(), "DescribeSecurityGroups", &[]);
    let t = text(&first, "nextToken").to_string();
    ec2_ok(&proxy.url(), "DescribeSecurityGroups", &[("NextToken", &t)]);
    let again = ec2(&proxy.url(), "DescribeSecurityGroups", &[("NextToken", &t)]).unwrap();
    assert_eq!(again.status, 400, "{}", again.body);

    // ELBv2: three target groups, pages of 2 with a NextMarker.
    let vpcs = ec2_ok(&moto.url(), "DescribeVpcs", &[]);
    let vpc = text(items(&vpcs["vpcSet"])[0], "vpcId").to_string();
    for i in 0..3 {
        let name = format!("paged-tg-{i}");
        elbv2_ok(
            &moto.url(),
            "CreateTargetGroup",
            &[
                ("Name", &name),
                ("Protocol", "TCP"),
                ("Port", "443"),
                ("VpcId", &vpc),
            ],
        );
    }
    let first = elbv2_ok(&proxy.url(), "DescribeTargetGroups", &[]);
    assert_eq!(
        elb_list(&first, "DescribeTargetGroups", "TargetGroups").len(),
        2,
        "{first}"
    );
    let marker = text(&first, "NextMarker").to_string();
    assert!(!marker.is_empty(), "{first}");
    let second = elbv2_ok(&proxy.url(), "DescribeTargetGroups", &[("Marker", &marker)]);
    assert_eq!(
        elb_list(&second, "DescribeTargetGroups", "TargetGroups").len(),
        1,
        "{second}"
    );
    assert_eq!(text(&second, "NextMarker"), "");
    let served = proxy.paging();
    assert_eq!(
        served["pages_served"]["DescribeTargetGroups"], 2,
        "{served}"
    );

    // Paging off: whole answers again.
    proxy.set_page_size(None);
    let all = elbv2_ok(&proxy.url(), "DescribeTargetGroups", &[]);
    assert_eq!(
        elb_list(&all, "DescribeTargetGroups", "TargetGroups").len(),
        3,
        "{all}"
    );
}
