//! The AWS provider against a real moto_server (with the fault proxy in front of it where a test
//! needs faults or request counts), after kOps' lifecycle test: record the inventory, `up`,
//! `plan` shows no resource change, `up` again creates nothing, `down`, and the inventory is
//! exactly the starting one. Also: lost state (`down --discover`), injected faults, crash and
//! resume, and an audit of what was created. `up --only provision` is used throughout: no VM
//! really boots in moto.

#[path = "../providers/aws/tests/common/mod.rs"]
#[allow(dead_code, clippy::all)]
mod aws;
mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use aws::{Moto, Proxy, apply_aws_env, inventory, inventory_diff, items, text};
use serde_json::{Value, json};

struct Cluster {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Cluster {
    /// examples/aws.toml with a test key and the harness's region; `edit` changes the text.
    fn new(name: &str, edit: impl Fn(String) -> String) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let public = dir.path().join("id.pub");
        std::fs::write(&public, format!("{}\n", aws::TEST_PUBLIC_KEY)).unwrap();
        let text = std::fs::read_to_string(common::example("aws.toml"))
            .unwrap()
            .replace("name = \"acura-aws\"", &format!("name = \"{name}\""))
            .replace(
                "region = \"eu-central-1\"",
                &format!("region = \"{}\"", aws::REGION),
            )
            .replace(
                "public_key_file = \"~/.ssh/id_ed25519.pub\"",
                "public_key_file = \"id.pub\"",
            );
        let config = dir.path().join("cluster.toml");
        std::fs::write(&config, edit(text)).unwrap();
        Cluster { dir, config }
    }

    fn run(&self, url: &str, args: &[&str]) -> Output {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("acura-ha"));
        apply_aws_env(&mut cmd, url);
        cmd.args(args).arg("-c").arg(&self.config).output().unwrap()
    }

    fn state_file(&self) -> PathBuf {
        let name = std::fs::read_to_string(&self.config)
            .unwrap()
            .lines()
            .find_map(|l| {
                l.strip_prefix("name = \"")
                    .map(|r| r.trim_end_matches('"').to_string())
            })
            .unwrap();
        self.dir
            .path()
            .join(".acura-ha")
            .join(format!("{name}.state.json"))
    }
}

fn ok(o: &Output) -> (String, String) {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        o.status.success(),
        "exit {:?}\n--- stdout\n{out}\n--- stderr\n{err}",
        o.status.code()
    );
    (out, err)
}

fn assert_same(before: &Value, after: &Value, when: &str) {
    let diff = inventory_diff(before, after);
    assert!(
        diff["added"].as_object().unwrap().is_empty()
            && diff["removed"].as_object().unwrap().is_empty(),
        "{when}: the inventory changed: {diff:#}"
    );
}

fn plan_summary(c: &Cluster, url: &str) -> Value {
    let o = c.run(url, &["plan", "--output", "json"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "bootstrap steps are still pending"
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["summary"].clone()
}

#[test]
fn lifecycle_leaves_the_account_as_it_was() {
    let moto = Moto::start();
    let url = moto.url();
    let before = inventory(&url);
    let c = Cluster::new("life", |t| t);

    ok(&c.run(&url, &["up", "--only", "provision", "--yes"]));
    let created = inventory(&url);
    assert_eq!(items(&created["instances"]).len(), 3);
    assert_eq!(items(&created["load_balancers"]).len(), 1);
    assert_eq!(items(&created["target_groups"]).len(), 6);
    assert_eq!(items(&created["listeners"]).len(), 6);

    // plan: no resource to create, replace or delete (the bootstrap has not run).
    let s = plan_summary(&c, &url);
    assert_eq!(
        (
            s["create"].as_u64(),
            s["replace"].as_u64(),
            s["delete"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{s}"
    );

    // up again creates nothing.
    ok(&c.run(&url, &["up", "--only", "provision", "--yes"]));
    assert_same(&created, &inventory(&url), "a second up");

    ok(&c.run(&url, &["down", "--yes"]));
    assert_same(&before, &inventory(&url), "after down");
}

#[test]
fn audit_rules_volumes_listeners() {
    let moto = Moto::start();
    let url = moto.url();
    let c = Cluster::new("audit", |t| t);
    ok(&c.run(&url, &["up", "--only", "provision", "--yes"]));
    let inv = inventory(&url);

    // Security group rules: exactly the guide's table, 22 and 30080-30082 only from the admin
    // CIDR, plus the NLB's traffic and health checks from the NLB's own group (#11.11).
    let (sg_id, ingress) = ingress_of(&url, "acura-ha-audit");
    let (nlb_sg, nlb_ingress) = ingress_of(&url, "acura-ha-audit-nlb");
    let from = |rules: &[Ingress], source: &str| -> Vec<String> {
        let mut v: Vec<String> = rules
            .iter()
            .filter(|r| r.3 == source)
            .map(|r| {
                if r.1 == r.2 {
                    format!("{}/{}", r.0, r.1)
                } else {
                    format!("{}/{}-{}", r.0, r.1, r.2)
                }
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        from(&ingress, "198.51.100.7/32"),
        ["tcp/22", "tcp/30080", "tcp/30081", "tcp/30082"],
        "{ingress:?}"
    );
    assert_eq!(
        from(&ingress, "0.0.0.0/0"),
        ["tcp/443", "tcp/4443", "tcp/6443", "tcp/80", "udp/12201"]
    );
    assert_eq!(from(&ingress, "self"), ["tcp/1-65535"], "{ingress:?}");
    assert_eq!(
        from(&ingress, &nlb_sg),
        [
            "tcp/15000",
            "tcp/443",
            "tcp/4443",
            "tcp/6443",
            "tcp/80",
            "udp/12201"
        ],
        "the NLB's traffic and health checks, from its group: {ingress:?}"
    );
    // Nothing else: no rule from the VPC's CIDR (moto's default VPC is 172.31.0.0/16).
    let known = ["198.51.100.7/32", "0.0.0.0/0", "self", nlb_sg.as_str()];
    assert!(
        ingress.iter().all(|r| known.contains(&r.3.as_str())),
        "{ingress:?}"
    );
    // 15000 (the registry) only from the cluster: its own group and the NLB's group, which
    // admits 15000 only from the cluster's group.
    let registry = |rules: &[Ingress]| -> Vec<String> {
        let mut v: Vec<String> = rules
            .iter()
            .filter(|r| r.0 == "tcp" && r.1 <= 15000 && 15000 <= r.2)
            .map(|r| r.3.clone())
            .collect();
        v.sort();
        v
    };
    let mut expect = vec![nlb_sg.clone(), "self".to_string()];
    expect.sort();
    assert_eq!(registry(&ingress), expect, "{ingress:?}");
    assert_eq!(
        registry(&nlb_ingress),
        std::slice::from_ref(&sg_id),
        "{nlb_ingress:?}"
    );
    // The NLB's group: each listener from whom the guide's table admits its port.
    assert_eq!(
        from(&nlb_ingress, "0.0.0.0/0"),
        ["tcp/443", "tcp/4443", "tcp/6443", "tcp/80", "udp/12201"],
        "{nlb_ingress:?}"
    );
    assert_eq!(nlb_ingress.len(), 6, "{nlb_ingress:?}");
    // The NLB carries its group (moto records SecurityGroups of a network load balancer).
    let lbs = items(&inv["load_balancers"]);
    assert_eq!(lbs.len(), 1);
    assert_eq!(lbs[0]["security_groups"], json!([nlb_sg]), "{:#}", lbs[0]);
    // Tagged like the others.
    let nlb_group = items(&inv["security_groups"])
        .into_iter()
        .find(|g| text(g, "id") == nlb_sg)
        .expect("the NLB's group")
        .clone();
    assert_eq!(
        nlb_group["tags"]["acura-ha/cluster"], "audit",
        "{nlb_group:#}"
    );
    assert_eq!(
        nlb_group["tags"]["acura-ha/role"], "load-balancer",
        "{nlb_group:#}"
    );

    // Every node has a 200 GiB gp3 root volume.
    let volumes = items(&inv["volumes"]);
    assert_eq!(volumes.len(), 3, "{volumes:?}");
    for v in volumes {
        assert_eq!(text(v, "size"), "200");
        assert_eq!(text(v, "type"), "gp3");
    }
    // Every listener of the guide, with the right protocol; UDP groups health-check over TCP.
    let mut listeners: Vec<String> = items(&inv["listeners"])
        .into_iter()
        .map(|l| format!("{}/{}", text(l, "protocol"), text(l, "port")))
        .collect();
    listeners.sort();
    assert_eq!(
        listeners,
        [
            "TCP/15000",
            "TCP/443",
            "TCP/4443",
            "TCP/6443",
            "TCP/80",
            "UDP/12201"
        ]
    );
    let tgs = aws::elbv2_ok(&url, "DescribeTargetGroups", &[]);
    for tg in items(&tgs["DescribeTargetGroupsResult"]["TargetGroups"]) {
        if text(tg, "Protocol") == "UDP" {
            assert_eq!(text(tg, "HealthCheckProtocol"), "TCP", "{tg}");
        }
    }
    // The newest Canonical focal image, never the impostor.
    for i in items(&inv["instances"]) {
        assert_eq!(text(i, "image"), aws::amis::FOCAL_NEW);
        assert_eq!(text(i, "type"), "m5.2xlarge");
    }
    ok(&c.run(&url, &["down", "--yes"]));
}

#[test]
fn lost_state_down_discover_leaves_nothing() {
    let moto = Moto::start();
    let url = moto.url();
    let before = inventory(&url);
    let c = Cluster::new("lost", |t| t);
    ok(&c.run(&url, &["up", "--only", "provision", "--yes"]));
    std::fs::remove_file(c.state_file()).unwrap();
    ok(&c.run(&url, &["down", "--discover", "--yes"]));
    assert_same(&before, &inventory(&url), "after down --discover");
}

#[test]
fn faults_moto_never_produces_are_survived() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    let before = inventory(&moto.url());
    let c = Cluster::new("faults", |t| t);
    proxy.set_rules(json!([
        {"action": "RunInstances", "times": 1, "fault": "Throttling"},
        {"action": "CreateTargetGroup", "times": 1, "fault": "InternalError500"},
        {"action": "DescribeInstances", "times": 1, "fault": "reset"},
        {"action": "DescribeInstances", "times": 1, "fault": "InvalidInstanceID.NotFound"},
        {"action": "DeleteSecurityGroup", "times": 2, "fault": "DependencyViolation"}
    ]));
    ok(&c.run(&proxy.url(), &["up", "--only", "provision", "--yes"]));
    let created = inventory(&moto.url());
    assert_eq!(
        items(&created["instances"]).len(),
        3,
        "no duplicate instance"
    );
    assert_eq!(
        items(&created["target_groups"]).len(),
        6,
        "no duplicate target group"
    );
    ok(&c.run(&proxy.url(), &["down", "--yes"]));
    assert_same(&before, &inventory(&moto.url()), "after down with faults");
    let stats = proxy.stats();
    assert!(
        stats["faults_injected"].as_u64().unwrap_or(0) >= 5,
        "{stats:#}"
    );
}

#[test]
fn a_run_that_fails_midway_resumes_without_duplicates() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    let before = inventory(&moto.url());
    let c = Cluster::new("resume", |t| t);
    // Fails (not retryable) after the group and the first instances, in the middle of the
    // load balancer: the state holds what was made.
    proxy.set_rules(
        json!([{"action": "CreateListener", "times": 1, "fault": "AccessDenied", "status": 403}]),
    );
    let o = c.run(&proxy.url(), &["up", "--only", "provision", "--yes"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("error[AH301]") && err.contains("listener["),
        "{err}"
    );
    assert!(
        !inventory(&moto.url())["instances"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    proxy.set_rules(json!([]));
    ok(&c.run(&proxy.url(), &["up", "--only", "provision", "--yes"]));
    let inv = inventory(&moto.url());
    assert_eq!(items(&inv["instances"]).len(), 3);
    assert_eq!(items(&inv["load_balancers"]).len(), 1);
    assert_eq!(items(&inv["listeners"]).len(), 6);
    ok(&c.run(&proxy.url(), &["down", "--yes"]));
    assert_same(&before, &inventory(&moto.url()), "after resume and down");
}

#[test]
fn an_lb_name_taken_by_someone_else_is_refused() {
    let moto = Moto::start();
    let url = moto.url();
    // Someone else's NLB with the name the cluster would use.
    let subnets = aws::ec2_ok(&url, "DescribeSubnets", &[]);
    let subnet = items(&subnets["subnetSet"])[0]["subnetId"]
        .as_str()
        .unwrap()
        .to_string();
    aws::elbv2_ok(
        &url,
        "CreateLoadBalancer",
        &[
            ("Name", "taken-nlb"),
            ("Type", "network"),
            ("Subnets.member.1", &subnet),
        ],
    );
    let c = Cluster::new("taken", |t| t);
    let o = c.run(&url, &["up", "--only", "provision", "--yes"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("load balancer taken-nlb") && err.contains("no acura-ha cluster"),
        "{err}"
    );
    ok(&c.run(&url, &["down", "--yes"]));
    let inv = inventory(&url);
    assert_eq!(
        items(&inv["load_balancers"]).len(),
        1,
        "the other LB is untouched"
    );
    assert!(items(&inv["instances"]).is_empty());
}

#[test]
fn killed_at_several_points_the_next_up_converges() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    let before = inventory(&moto.url());
    // (cluster, the call after which the run is killed, a slow call that keeps it busy meanwhile)
    let points = [
        (
            "crash-sg",
            "AuthorizeSecurityGroupIngress",
            "AuthorizeSecurityGroupIngress",
        ),
        ("crash-vm", "RunInstances", "DescribeInstances"),
        ("crash-lb", "CreateTargetGroup", "CreateTargetGroup"),
    ];
    for (name, after, slow) in points {
        let c = Cluster::new(name, |t| t);
        proxy.set_rules(json!([{"action": slow, "delay_ms": 1500}]));
        proxy.reset_stats();
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("acura-ha"));
        apply_aws_env(&mut cmd, &proxy.url());
        let mut child = cmd
            .args(["up", "--only", "provision", "--yes", "-c"])
            .arg(&c.config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while proxy.stats()["by_action"][after].as_u64().unwrap_or(0) == 0 {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{name}: the run ended ({status}) before {after}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name}: {after} never came"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // Requests the dead run had sent are still held by the proxy: let them reach moto (a
        // create whose reply was lost), so the next run must find what they made.
        std::thread::sleep(std::time::Duration::from_millis(2500));
        proxy.set_rules(json!([]));
        // The next run takes over the dead run's lock, adopts what exists, creates the rest.
        let (_, err) = ok(&c.run(&proxy.url(), &["up", "--only", "provision", "--yes"]));
        assert!(err.contains("stale lock"), "{name}: {err}");
        let inv = inventory(&moto.url());
        let mine = |kind: &str, field: &str| {
            items(&inv[kind])
                .into_iter()
                .filter(|r| r.to_string().contains(name) || text(r, field).contains(name))
                .count()
        };
        assert_eq!(
            mine("instances", "tags"),
            3,
            "{name}: no duplicate instance"
        );
        // The nodes' group and the NLB's.
        assert_eq!(
            mine("security_groups", "name"),
            2,
            "{name}: no duplicate group"
        );
        assert_eq!(
            mine("load_balancers", "name"),
            1,
            "{name}: no duplicate load balancer"
        );
        assert_eq!(
            mine("target_groups", "name"),
            6,
            "{name}: no duplicate target group"
        );
        ok(&c.run(&proxy.url(), &["down", "--yes"]));
        assert_same(
            &before,
            &inventory(&moto.url()),
            &format!("{name}: after the crash and down"),
        );
    }
}

#[test]
fn janitor_deletes_whole_clusters_by_age_and_tag() {
    let moto = Moto::start();
    let url = moto.url();
    let before = inventory(&url);
    let a = Cluster::new("jan-a", |t| t);
    let b = Cluster::new("jan-b", |t| t);
    ok(&a.run(&url, &["up", "--only", "provision", "--yes"]));
    ok(&b.run(&url, &["up", "--only", "provision", "--yes"]));
    let both = inventory(&url);

    // Nothing is a day old yet.
    let (out, _) = ok(&a.run(&url, &common::janitor_json("24h")));
    let found = streamed_report(&out);
    let names: Vec<&str> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["cluster"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["jan-a", "jan-b"]);
    assert!(
        found
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["delete"] == false)
    );
    assert_same(&both, &inventory(&url), "janitor with nothing old enough");

    // Without a terminal and without --yes, it refuses.
    let o = a.run(&url, &["janitor", "--older-than", "0s"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("error[AH004]"));

    // Only the tagged cluster goes; then the other.
    ok(&a.run(
        &url,
        &[
            "janitor",
            "--older-than",
            "0s",
            "--tag",
            "acura-ha/cluster=jan-a",
            "--yes",
        ],
    ));
    let left = inventory(&url);
    assert!(
        items(&left["instances"])
            .iter()
            .all(|i| i.to_string().contains("jan-b"))
    );
    assert_eq!(items(&left["instances"]).len(), 3);
    // A cluster whose state lock is held (someone is working on it) is left alone by a janitor
    // that sees that state directory.
    let b_states = b.dir.path().join(".acura-ha");
    let held = acura_ha::state::StateStore::new(b_states.clone(), "jan-b")
        .lock("node add")
        .unwrap();
    let (out, err) = ok(&a.run(
        &url,
        &[
            "janitor",
            "--older-than",
            "0s",
            "--yes",
            "--output",
            "json",
            "--state-dir",
            b_states.to_str().unwrap(),
        ],
    ));
    assert!(err.contains("is left: its state is locked"), "{err}");
    let found = streamed_report(&out);
    assert!(
        found[0]["skipped"].as_str().unwrap().contains("node add"),
        "{out}"
    );
    assert_same(&left, &inventory(&url), "a locked cluster is not deleted");
    drop(held);
    ok(&a.run(&url, &["janitor", "--older-than", "0s", "--yes"]));
    assert_same(&before, &inventory(&url), "after the janitor");
}

#[test]
fn nginx_load_balancer_is_an_instance_of_its_own() {
    let moto = Moto::start();
    let url = moto.url();
    let before = inventory(&url);
    let c = Cluster::new("ngx", |t| t.replace("kind = \"cloud\"", "kind = \"nginx\""));
    ok(&c.run(&url, &["up", "--only", "provision", "--yes"]));
    let inv = inventory(&url);
    let instances = items(&inv["instances"]);
    assert_eq!(instances.len(), 4, "3 nodes and the NGINX VM");
    let lb: Vec<&&Value> = instances
        .iter()
        .filter(|i| text(i, "type") == "t3.small")
        .collect();
    assert_eq!(lb.len(), 1);
    assert!(items(&inv["load_balancers"]).is_empty());
    let sizes: Vec<&str> = items(&inv["volumes"])
        .into_iter()
        .map(|v| text(v, "size"))
        .collect();
    assert_eq!(
        sizes.iter().filter(|s| **s == "200").count(),
        3,
        "{sizes:?}"
    );
    assert_eq!(sizes.iter().filter(|s| **s == "20").count(), 1, "{sizes:?}");
    // The inventory the bootstrap would use names the NGINX VM.
    let (inv_text, _) = ok(&c.run(&url, &["render", "nginx"]));
    assert!(inv_text.contains("upstream stream_https"), "{inv_text}");
    ok(&c.run(&url, &["down", "--yes"]));
    assert_same(&before, &inventory(&url), "after down");
}

#[test]
fn a_quota_that_is_short_stops_up_before_anything_is_made() {
    let moto = Moto::start();
    let url = moto.url();
    let before = inventory(&url);
    // 15 admin CIDRs: 1 + 15 x 4 + 5 public + 6 from the NLB's group = 72 rules in the nodes' group, over
    // moto's (and AWS's default) 60 rules per security group.
    let cidrs: Vec<String> = (1..=15).map(|i| format!("\"198.51.100.{i}/32\"")).collect();
    let c = Cluster::new("quota", |t| {
        t.replace(
            "admin_cidrs = [\"198.51.100.7/32\"]",
            &format!("admin_cidrs = [{}]", cidrs.join(", ")),
        )
    });
    let o = c.run(&url, &["up", "--only", "provision", "--yes"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("quota Inbound or outbound rules per security group (vpc L-0EA8095F)")
            && err.contains("needs 72, the quota is 60"),
        "{err}"
    );
    // Quotas moto cannot answer are said to be unchecked, not silently passed.
    assert!(err.contains("(L-1216C47A) not checked"), "{err}");
    assert_same(&before, &inventory(&url), "a refused quota");
}

#[allow(dead_code)]
fn unused(_: &Path) {}

/// An ingress rule as (protocol, from port, to port, source).
type Ingress = (String, u16, u16, String);

/// The ingress rules of the group named `group`, sorted; the source is a CIDR, `self` for the
/// group itself, or the other group's ID.
fn ingress_of(url: &str, group: &str) -> (String, Vec<Ingress>) {
    let groups = aws::ec2_ok(
        url,
        "DescribeSecurityGroups",
        &[("Filter.1.Name", "group-name"), ("Filter.1.Value.1", group)],
    );
    let sgs = items(&groups["securityGroupInfo"]);
    assert_eq!(sgs.len(), 1, "one group {group}: {groups}");
    let sg_id = text(sgs[0], "groupId").to_string();
    let rules = aws::ec2_ok(
        url,
        "DescribeSecurityGroupRules",
        &[("Filter.1.Name", "group-id"), ("Filter.1.Value.1", &sg_id)],
    );
    let port = |r: &Value, key: &str| text(r, key).parse::<u16>().unwrap_or(0);
    let mut out: Vec<Ingress> = items(&rules["securityGroupRuleSet"])
        .into_iter()
        .filter(|r| text(r, "isEgress") != "true")
        .map(|r| {
            let referenced = text(&r["referencedGroupInfo"], "groupId");
            let source = if !text(r, "cidrIpv4").is_empty() {
                text(r, "cidrIpv4").to_string()
            } else if referenced == sg_id {
                "self".to_string()
            } else {
                referenced.to_string()
            };
            let protocol = text(r, "ipProtocol").to_string();
            (protocol, port(r, "fromPort"), port(r, "toPort"), source)
        })
        .collect();
    out.sort();
    (sg_id, out)
}

/// The sources of the rules from `ports`, but for the NLB's traffic from its own group.
fn sources_of(rules: &[Ingress], ports: &[u16]) -> Vec<String> {
    let mut s: Vec<String> = rules
        .iter()
        .filter(|r| ports.contains(&r.1) && !r.3.starts_with("sg-"))
        .map(|r| r.3.clone())
        .collect();
    s.sort();
    s.dedup();
    s
}

/// `up --only provision`, then: the plan has no resource change and the state holds exactly the
/// desired rule records; a second `up` makes no mutating call at all (it authorizes, revokes and
/// registers nothing).
fn up_converges(c: &Cluster, proxy: &Proxy, when: &str) {
    ok(&c.run(&proxy.url(), &["up", "--only", "provision", "--yes"]));
    let o = c.run(&proxy.url(), &["plan", "--output", "json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let s = &v["summary"];
    assert!(
        ["create", "replace", "delete"].iter().all(|k| s[k] == 0),
        "{when}: the plan after up: {v:#}"
    );
    // Exit 2 only for the bootstrap steps `--only provision` leaves pending.
    assert!(s["steps_to_run"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(o.status.code(), Some(2), "{when}");
    proxy.reset_stats();
    ok(&c.run(&proxy.url(), &["up", "--only", "provision", "--yes"]));
    let stats = proxy.stats();
    assert_eq!(
        stats["mutating"], 0,
        "{when}: a second up calls {:#}",
        stats["mutating_by_action"]
    );
}

fn set_access(c: &Cluster, key: &str, cidrs: &[&str]) {
    let text = std::fs::read_to_string(&c.config).unwrap();
    let list: Vec<String> = cidrs.iter().map(|c| format!("\"{c}\"")).collect();
    let line = format!("{key} = [{}]", list.join(", "));
    let edited: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{key} = ")) {
                line.clone()
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(&c.config, edited.join("\n") + "\n").unwrap();
}

#[test]
fn narrowed_cidrs_are_revoked_and_the_plan_is_clean() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    let url = moto.url();
    let before = inventory(&url);
    let group = "acura-ha-narrow";
    const ADMIN: [u16; 4] = [22, 30080, 30081, 30082];
    const PUBLIC: [u16; 5] = [80, 443, 4443, 6443, 12201];
    let c = Cluster::new("narrow", |t| t);
    set_access(&c, "admin_cidrs", &["0.0.0.0/0"]);
    set_access(&c, "public_cidrs", &["203.0.113.0/24"]);
    up_converges(&c, &proxy, "admin open to all");
    let (sg_id, rules) = ingress_of(&url, group);
    assert_eq!(sources_of(&rules, &ADMIN), ["0.0.0.0/0"], "{rules:?}");

    // Someone else's group in the same VPC, with the same kind of rule: never touched.
    let other = aws::ec2_ok(
        &url,
        "CreateSecurityGroup",
        &[
            ("GroupName", "someone-else"),
            ("GroupDescription", "not the cluster's"),
        ],
    );
    let other_id = text(&other, "groupId").to_string();
    let open_ssh = |group_id: &str| {
        aws::ec2_ok(
            &url,
            "AuthorizeSecurityGroupIngress",
            &[
                ("GroupId", group_id),
                ("IpPermissions.1.IpProtocol", "tcp"),
                ("IpPermissions.1.FromPort", "22"),
                ("IpPermissions.1.ToPort", "22"),
                ("IpPermissions.1.IpRanges.1.CidrIp", "0.0.0.0/0"),
            ],
        );
    };
    open_ssh(&other_id);

    // Narrowed: 22 and 30080-30082 only from the /32, and the rest as it was.
    set_access(&c, "admin_cidrs", &["198.51.100.7/32"]);
    up_converges(&c, &proxy, "admin narrowed");
    let (_, narrowed) = ingress_of(&url, group);
    assert_eq!(
        sources_of(&narrowed, &ADMIN),
        ["198.51.100.7/32"],
        "{narrowed:?}"
    );
    assert_eq!(
        sources_of(&narrowed, &PUBLIC),
        ["203.0.113.0/24"],
        "{narrowed:?}"
    );
    assert!(
        narrowed
            .iter()
            .any(|r| r == &("tcp".to_string(), 1, 65535, "self".to_string())),
        "the group's own rule stays: {narrowed:?}"
    );
    assert_eq!(narrowed.len(), rules.len(), "{rules:?} -> {narrowed:?}");
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(c.state_file()).unwrap()).unwrap();
    let stale: Vec<&str> = state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["address"].as_str())
        .filter(|a| a.starts_with("security_group_rule[") && a.contains("0.0.0.0/0"))
        .collect();
    assert!(stale.is_empty(), "records of revoked rules: {stale:?}");

    // A rule added by hand to the cluster's group goes too; the other group keeps its own.
    open_ssh(&sg_id);
    up_converges(&c, &proxy, "a rule added by hand");
    let (_, repaired) = ingress_of(&url, group);
    assert_eq!(repaired, narrowed);
    let (_, others) = ingress_of(&url, "someone-else");
    assert_eq!(
        others,
        [("tcp".to_string(), 22, 22, "0.0.0.0/0".to_string())]
    );

    // public_cidrs widened, then narrowed again.
    set_access(&c, "public_cidrs", &["0.0.0.0/0"]);
    up_converges(&c, &proxy, "public widened");
    let (_, widened) = ingress_of(&url, group);
    assert_eq!(sources_of(&widened, &PUBLIC), ["0.0.0.0/0"], "{widened:?}");
    assert_eq!(
        sources_of(&widened, &ADMIN),
        ["198.51.100.7/32"],
        "{widened:?}"
    );
    set_access(&c, "public_cidrs", &["203.0.113.0/24"]);
    up_converges(&c, &proxy, "public narrowed");
    let (_, back) = ingress_of(&url, group);
    assert_eq!(back, narrowed);

    ok(&c.run(&url, &["down", "--yes"]));
    aws::ec2_ok(&url, "DeleteSecurityGroup", &[("GroupId", &other_id)]);
    assert_same(&before, &inventory(&url), "after down");
}

/// #11.11: a cluster made before the NLB had a group of its own — an NLB without a security group
/// (which can never get one) and its state record without the attribute. `plan` says the load
/// balancer is replaced and why; `up` replaces it with one that carries the NLB's group, moves the
/// nodes' rules from the VPC's CIDR to that group, and the plan after it is clean.
#[test]
fn an_nlb_without_a_security_group_is_replaced_and_the_plan_says_why() {
    let moto = Moto::start();
    let url = moto.url();
    let before = inventory(&url);
    let c = Cluster::new("oldnlb", |t| t);
    ok(&c.run(&url, &["up", "--only", "provision", "--yes"]));
    let old_arn = text(items(&inventory(&url)["load_balancers"])[0], "arn").to_string();
    // The old cluster: no group on the NLB (moto lets SetSecurityGroups empty it; AWS would not,
    // which is the point), the rule from the VPC's CIDR on the nodes, the record without it.
    aws::elbv2_ok(&url, "SetSecurityGroups", &[("LoadBalancerArn", &old_arn)]);
    let (sg_id, _) = ingress_of(&url, "acura-ha-oldnlb");
    aws::ec2_ok(
        &url,
        "AuthorizeSecurityGroupIngress",
        &[
            ("GroupId", &sg_id),
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", "15000"),
            ("IpPermissions.1.ToPort", "15000"),
            ("IpPermissions.1.IpRanges.1.CidrIp", "172.31.0.0/16"),
        ],
    );
    let mut state: Value =
        serde_json::from_str(&std::fs::read_to_string(c.state_file()).unwrap()).unwrap();
    for r in state["resources"].as_array_mut().unwrap() {
        if r["address"] == "load_balancer" {
            r["attrs"]
                .as_object_mut()
                .unwrap()
                .remove("security_groups");
        }
    }
    std::fs::write(
        c.state_file(),
        serde_json::to_string_pretty(&state).unwrap(),
    )
    .unwrap();

    let o = c.run(&url, &["plan", "--output", "json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let lb = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"]["address"] == "load_balancer" || r["address"] == "load_balancer")
        .unwrap_or_else(|| panic!("the load balancer in the plan: {v:#}"))
        .clone();
    let shown = lb.to_string();
    assert!(
        shown.contains("\"replace\"")
            && shown.contains("security_groups: (unset) -> acura-ha-oldnlb-nlb"),
        "{lb:#}"
    );
    assert_eq!(v["summary"]["replace"], 1, "{:#}", v["summary"]);

    ok(&c.run(&url, &["up", "--only", "provision", "--yes"]));
    let after = inventory(&url);
    let lbs = items(&after["load_balancers"]);
    assert_eq!(lbs.len(), 1, "{after:#}");
    assert_ne!(text(lbs[0], "arn"), old_arn, "replaced");
    let (nlb_sg, _) = ingress_of(&url, "acura-ha-oldnlb-nlb");
    assert_eq!(lbs[0]["security_groups"], json!([nlb_sg]));
    assert_eq!(items(&after["listeners"]).len(), 6);
    let (_, rules) = ingress_of(&url, "acura-ha-oldnlb");
    assert!(
        !rules.iter().any(|r| r.3 == "172.31.0.0/16"),
        "the VPC's CIDR rule is revoked: {rules:?}"
    );
    let s = plan_summary(&c, &url);
    assert_eq!(
        (
            s["create"].as_u64(),
            s["replace"].as_u64(),
            s["delete"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{s}"
    );
    ok(&c.run(&url, &["down", "--yes"]));
    assert_same(&before, &inventory(&url), "after down");
}

/// #13.7: every answer that AWS pages comes in pages of 2 (the fault proxy cuts moto's): `up
/// --only provision` (3 nodes and an NLB: 6 target groups, 6 listeners, a dozen rules per group;
/// then the NGINX variant), `plan` clean, a second `up` that makes no mutating call, then `down` — and,
/// for the NLB, `down --discover` after the state is lost, which finds everything only by paging
/// through every target group of the region. Without the paginators the first page of listeners
/// or rules hides the rest: duplicates, a plan that is never clean, resources left behind.
#[test]
fn paged_answers_lifecycle_nlb_and_nginx() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    proxy.set_page_size(Some(2));
    let url = moto.url();
    let before = inventory(&url);
    // Someone else's target groups, so that the region's list is pages long.
    let vpcs = aws::ec2_ok(&url, "DescribeVpcs", &[]);
    let vpc = text(items(&vpcs["vpcSet"])[0], "vpcId").to_string();
    let mut others = Vec::new();
    for i in 0..3 {
        let tg = aws::elbv2_ok(
            &url,
            "CreateTargetGroup",
            &[
                ("Name", &format!("other-{i}")),
                ("Protocol", "TCP"),
                ("Port", "80"),
                ("VpcId", &vpc),
            ],
        );
        others.push(text(&items(&tg["TargetGroups"])[0].clone(), "TargetGroupArn").to_string());
    }
    let with_others = inventory(&url);
    for (name, kind, lb) in [("pgnlb", "cloud", true), ("pgngx", "nginx", false)] {
        let c = Cluster::new(name, |t| {
            t.replace("kind = \"cloud\"", &format!("kind = \"{kind}\""))
        });
        ok(&c.run(&proxy.url(), &["up", "--only", "provision", "--yes"]));
        let created = inventory(&url);
        let instances = items(&created["instances"]).len();
        assert_eq!(instances, if lb { 3 } else { 4 }, "{name}: {created:#}");
        if lb {
            assert_eq!(items(&created["load_balancers"]).len(), 1);
            assert_eq!(items(&created["target_groups"]).len(), 6 + 3);
            assert_eq!(items(&created["listeners"]).len(), 6);
        }
        let s = plan_summary(&c, &proxy.url());
        assert_eq!(
            (
                s["create"].as_u64(),
                s["replace"].as_u64(),
                s["delete"].as_u64()
            ),
            (Some(0), Some(0), Some(0)),
            "{name}: {s}"
        );
        // A second `up` makes no mutating call of any kind (#9: the matrix), for the NLB and
        // for the NGINX instance alike: no create, authorize, revoke, register or modify.
        proxy.reset_stats();
        ok(&c.run(&proxy.url(), &["up", "--only", "provision", "--yes"]));
        let stats = proxy.stats();
        assert!(
            stats["total"].as_u64().unwrap_or(0) > 0,
            "{name}: the proxy saw nothing: {stats:#}"
        );
        assert_eq!(
            stats["mutating"], 0,
            "{name}: a second up calls {:#}",
            stats["mutating_by_action"]
        );
        assert_same(&created, &inventory(&url), &format!("{name}: a second up"));
        if lb {
            std::fs::remove_file(c.state_file()).unwrap();
            ok(&c.run(&proxy.url(), &["down", "--discover", "--yes"]));
        } else {
            ok(&c.run(&proxy.url(), &["down", "--yes"]));
        }
        assert_same(
            &with_others,
            &inventory(&url),
            &format!("{name}: after down"),
        );
    }
    let served = proxy.paging();
    for action in [
        "DescribeInstances",
        "DescribeSecurityGroupRules",
        "DescribeTargetGroups",
        "DescribeListeners",
    ] {
        assert!(
            served["pages_served"][action].as_u64().unwrap_or(0) > 0,
            "{action} was never paged: {served:#}"
        );
    }
    for arn in others {
        aws::elbv2_ok(&url, "DeleteTargetGroup", &[("TargetGroupArn", &arn)]);
    }
    assert_same(&before, &inventory(&url), "at the end");
}

/// The report of a run streamed with `--output json` (one event per line): the closing
/// `summary` line's `result`.
fn streamed_report(stdout: &str) -> Value {
    let last = stdout.lines().last().unwrap_or_default();
    let summary: Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last:?}\n{stdout}"));
    assert_eq!(summary["type"], "summary", "{summary}");
    assert_eq!(summary["exit_code"], 0, "{summary}");
    summary["result"].clone()
}

/// The plan's resource changes as one JSON string each (action, address and reasons).
fn plan_changes(c: &Cluster, url: &str) -> (Value, Vec<String>) {
    let o = c.run(url, &["plan", "--output", "json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "plan --output json: {e}: {}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    let lines = v["resources"]
        .as_array()
        .map(|a| a.iter().map(Value::to_string).collect())
        .unwrap_or_default();
    (v, lines)
}

fn assert_clean(v: &Value, when: &str) {
    let s = &v["summary"];
    assert!(
        ["create", "replace", "delete"].iter().all(|k| s[k] == 0),
        "{when}: {v:#}"
    );
    // `update` is in the summary only when there are some.
    assert!(s["update"].is_null(), "{when}: {v:#}");
}

/// #9.3 on AWS: a listener deleted and an SSH rule from anywhere added outside the tool show in
/// `plan` (create again, "deleted outside acura-ha"; delete, "added outside acura-ha"), `up`
/// repairs both, and the plan after it is clean.
#[test]
fn refresh_shows_and_up_repairs_changes_made_outside() {
    let moto = Moto::start();
    let url = moto.url();
    let c = Cluster::new("drift", |t| t);
    ok(&c.run(&url, &["up", "--only", "provision", "--yes"]));
    let (v, _) = plan_changes(&c, &url);
    assert_clean(&v, "right after up");

    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(c.state_file()).unwrap()).unwrap();
    let listener = state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"].as_str().unwrap().starts_with("listener["))
        .unwrap()
        .clone();
    let address = listener["address"].as_str().unwrap().to_string();
    aws::elbv2_ok(
        &url,
        "DeleteListener",
        &[("ListenerArn", listener["id"].as_str().unwrap())],
    );
    let (sg_id, _) = ingress_of(&url, "acura-ha-drift");
    aws::ec2_ok(
        &url,
        "AuthorizeSecurityGroupIngress",
        &[
            ("GroupId", &sg_id),
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", "22"),
            ("IpPermissions.1.ToPort", "22"),
            ("IpPermissions.1.IpRanges.1.CidrIp", "0.0.0.0/0"),
        ],
    );

    let (v, lines) = plan_changes(&c, &url);
    assert!(
        lines.iter().any(|l| l.contains("\"create\"")
            && l.contains(&format!("\"{address}\""))
            && l.contains("deleted outside acura-ha")),
        "{address} to create again: {v:#}"
    );
    assert!(
        lines.iter().any(|l| l.contains("\"delete\"")
            && l.contains("security_group_rule[outside-")
            && l.contains("tcp 22 from 0.0.0.0/0")
            && l.contains("added outside acura-ha")),
        "the SSH rule from anywhere to delete: {v:#}"
    );
    assert_eq!(
        (
            v["summary"]["create"].as_u64(),
            v["summary"]["delete"].as_u64()
        ),
        (Some(1), Some(1)),
        "{:#}",
        v["summary"]
    );

    ok(&c.run(&url, &["up", "--only", "provision", "--yes"]));
    let (v, _) = plan_changes(&c, &url);
    assert_clean(&v, "after up repaired the drift");
    assert_eq!(items(&inventory(&url)["listeners"]).len(), 6);
    let (_, rules) = ingress_of(&url, "acura-ha-drift");
    assert!(
        !rules.iter().any(|r| r.1 == 22 && r.3 == "0.0.0.0/0"),
        "the rule added by hand is revoked: {rules:?}"
    );
    ok(&c.run(&url, &["down", "--yes"]));
}

/// #9.4 on AWS: a second state with the same cluster file (same name, same account) is refused
/// at `up`, naming a resource of the first and the lineage; its `down --discover` leaves the
/// first cluster as it was (its plan clean).
#[test]
fn another_states_cluster_of_the_same_name_is_refused() {
    let moto = Moto::start();
    let url = moto.url();
    let before = inventory(&url);
    let first = Cluster::new("twins", |t| t);
    ok(&first.run(&url, &["up", "--only", "provision", "--yes"]));
    let made = inventory(&url);

    let second = Cluster::new("twins", |t| t);
    let o = second.run(&url, &["up", "--only", "provision", "--yes"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "refused: {err}");
    // Which of the first cluster's resources is named depends on which ownership check answers
    // first (the security group's, the instances', the key pair's run side by side): each is
    // right. What must be there is the first state's lineage, which no other run could print.
    let first_state: Value =
        serde_json::from_str(&std::fs::read_to_string(first.state_file()).unwrap()).unwrap();
    let lineage = first_state["lineage"].as_str().unwrap();
    assert!(
        err.contains("acura-ha/lineage") && err.contains(lineage),
        "names a resource of the first cluster and its lineage {lineage}: {err}"
    );
    assert_same(&made, &inventory(&url), "after the refused up");
    // The second state's `down --discover` (its state holds its lineage): nothing of the first.
    ok(&second.run(&url, &["down", "--discover", "--yes"]));
    assert_same(
        &made,
        &inventory(&url),
        "after the second state's down --discover",
    );
    let (v, _) = plan_changes(&first, &url);
    assert_clean(&v, "the first cluster after the second state's up and down");

    ok(&first.run(&url, &["down", "--yes"]));
    assert_same(&before, &inventory(&url), "after the first cluster's down");
}

/// #9.3 on AWS: a node's instance terminated outside the tool shows in `plan` as created again
/// ("terminated outside acura-ha"); `up` runs a new one under the same name and the plan after
/// it is clean.
#[test]
fn a_terminated_instance_shows_in_the_plan_and_up_runs_it_again() {
    let moto = Moto::start();
    let url = moto.url();
    let c = Cluster::new("gone", |t| t);
    ok(&c.run(&url, &["up", "--only", "provision", "--yes"]));
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(c.state_file()).unwrap()).unwrap();
    let node = state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "instance")
        .unwrap()
        .clone();
    let (address, old_id) = (
        node["address"].as_str().unwrap().to_string(),
        node["id"].as_str().unwrap().to_string(),
    );
    aws::ec2_ok(&url, "TerminateInstances", &[("InstanceId.1", &old_id)]);

    let (v, lines) = plan_changes(&c, &url);
    assert!(
        lines.iter().any(|l| l.contains("\"create\"")
            && l.contains(&format!("\"{address}\""))
            && l.contains("terminated outside acura-ha")),
        "{address} to create again: {v:#}"
    );
    ok(&c.run(&url, &["up", "--only", "provision", "--yes"]));
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(c.state_file()).unwrap()).unwrap();
    let new_id = state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == address.as_str())
        .map(|r| r["id"].as_str().unwrap_or_default().to_string());
    assert!(
        new_id.as_deref().is_some_and(|i| i != old_id),
        "a new instance: {new_id:?}"
    );
    let (v, _) = plan_changes(&c, &url);
    assert_clean(&v, "after up ran the instance again");
    ok(&c.run(&url, &["down", "--yes"]));
}

/// #9 on AWS: a node's instance stopped outside the tool shows in `plan` as an in-place update
/// ("stopped outside acura-ha: up starts it", exit 2); `up --only provision` starts the same
/// instance and the plan after it has no resource change.
#[test]
fn a_stopped_instance_shows_in_the_plan_and_up_starts_it() {
    let moto = Moto::start();
    let url = moto.url();
    let c = Cluster::new("stopped", |t| t);
    ok(&c.run(&url, &["up", "--only", "provision", "--yes"]));
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(c.state_file()).unwrap()).unwrap();
    let node = state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "instance")
        .unwrap()
        .clone();
    let (address, id) = (
        node["address"].as_str().unwrap().to_string(),
        node["id"].as_str().unwrap().to_string(),
    );
    let name = node["name"].as_str().unwrap().to_string();
    let instance_state = || {
        let out = aws::ec2_ok(&url, "DescribeInstances", &[("InstanceId.1", &id)]);
        let r = items(&out["reservationSet"]);
        let i = items(&r[0]["instancesSet"]);
        text(&i[0]["instanceState"], "name").to_string()
    };
    aws::ec2_ok(&url, "StopInstances", &[("InstanceId.1", &id)]);
    assert_eq!(instance_state(), "stopped");

    let reason = "stopped outside acura-ha: up starts it";
    let o = c.run(&url, &["plan"]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(2), "{out}\n{err}");
    assert!(
        out.contains(&format!("  update  {address}")) && out.contains(&format!("because {reason}")),
        "{address} to update in place: {out}"
    );
    let (v, lines) = plan_changes(&c, &url);
    assert!(
        lines.iter().any(|l| l.contains("\"update\"")
            && l.contains(&format!("\"{address}\""))
            && l.contains(reason)),
        "{address} to update: {v:#}"
    );
    let s = &v["summary"];
    assert_eq!(
        (&s["update"], &s["create"], &s["replace"], &s["delete"]),
        (&json!(1), &json!(0), &json!(0), &json!(0)),
        "only the update: {s:#}"
    );

    let o = c.run(&url, &["up", "--only", "provision", "--yes"]);
    let (_, err) = ok(&o);
    assert!(
        err.contains(&format!("starting {name} (stopped outside acura-ha)")),
        "up says it starts {name}: {err}"
    );
    assert_eq!(instance_state(), "running");
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(c.state_file()).unwrap()).unwrap();
    let after = state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == address.as_str())
        .map(|r| r["id"].as_str().unwrap_or_default().to_string());
    assert_eq!(after.as_deref(), Some(id.as_str()), "the same instance");
    let (v, _) = plan_changes(&c, &url);
    assert_clean(&v, "after up started the instance");
    ok(&c.run(&url, &["down", "--yes"]));
}

/// #9.2 and #9.3 on AWS: a listener and its target group added by hand on the cluster's NLB (the
/// group tagged as the cluster's, as a copied console form would) show in `plan` as deletions
/// ("added outside acura-ha"); `up` deletes both by ARN after the wanted listeners exist, the
/// plan after it is clean, and a second `up` makes no mutating call at all.
#[test]
fn a_listener_and_target_group_added_by_hand_are_removed() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    let url = moto.url();
    let before = inventory(&url);
    let c = Cluster::new("byhand", |t| t);
    ok(&c.run(&proxy.url(), &["up", "--only", "provision", "--yes"]));
    let made = inventory(&url);
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(c.state_file()).unwrap()).unwrap();
    let lb = state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == "load_balancer")
        .and_then(|r| r["id"].as_str())
        .unwrap()
        .to_string();
    let vpcs = aws::ec2_ok(&url, "DescribeVpcs", &[]);
    let vpc = text(items(&vpcs["vpcSet"])[0], "vpcId").to_string();
    let tg = aws::elbv2_ok(
        &url,
        "CreateTargetGroup",
        &[
            ("Name", "byhand-extra"),
            ("Protocol", "TCP"),
            ("Port", "9999"),
            ("VpcId", &vpc),
            ("Tags.member.1.Key", "acura-ha/cluster"),
            ("Tags.member.1.Value", "byhand"),
        ],
    );
    let tg = text(items(&tg["TargetGroups"])[0], "TargetGroupArn").to_string();
    aws::elbv2_ok(
        &url,
        "CreateListener",
        &[
            ("LoadBalancerArn", &lb),
            ("Protocol", "TCP"),
            ("Port", "9999"),
            ("DefaultActions.member.1.Type", "forward"),
            ("DefaultActions.member.1.TargetGroupArn", &tg),
        ],
    );

    let (v, lines) = plan_changes(&c, &proxy.url());
    for (address, name) in [
        ("listener[outside-", "TCP 9999"),
        ("target_group[outside-byhand-extra]", "byhand-extra"),
    ] {
        assert!(
            lines.iter().any(|l| l.contains("\"delete\"")
                && l.contains(address)
                && l.contains(name)
                && l.contains("added outside acura-ha")),
            "{address} to delete: {v:#}"
        );
    }
    assert_eq!(
        (
            v["summary"]["create"].as_u64(),
            v["summary"]["delete"].as_u64()
        ),
        (Some(0), Some(2)),
        "{:#}",
        v["summary"]
    );

    ok(&c.run(&proxy.url(), &["up", "--only", "provision", "--yes"]));
    let (v, _) = plan_changes(&c, &proxy.url());
    assert_clean(&v, "after up removed them");
    assert_same(&made, &inventory(&url), "after up removed them");
    proxy.reset_stats();
    ok(&c.run(&proxy.url(), &["up", "--only", "provision", "--yes"]));
    let stats = proxy.stats();
    assert_eq!(
        stats["mutating"], 0,
        "a second up calls {:#}",
        stats["mutating_by_action"]
    );

    ok(&c.run(&url, &["down", "--yes"]));
    assert_same(&before, &inventory(&url), "after down");
}
