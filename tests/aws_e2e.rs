//! The whole `up` on AWS, end to end (#13.8). moto boots no VM, so the instances `up` runs in
//! moto stand for hosts the test makes itself: bare local-target hosts (network namespaces with
//! sshd, made by `up --only provision` of a local lab). The fault proxy in front of moto is told,
//! per instance Name tag, which lab host the instance is (`POST /__proxy/hosts`): it puts that
//! host's address in every DescribeInstances/RunInstances answer, and answers GetConsoleOutput
//! with a cloud-init boot log printing that host's real host-key fingerprint, so the keys `up`
//! pins are vouched by the "cloud", as on EC2. `up` then provisions in moto and runs the real
//! bootstrap over SSH (the NGINX host, both playbooks with the stand-in archive, the
//! post-checks); `status`, `plan` (nothing to do) and `down` (moto as it was) follow.
//! Traffic goes only to 127.0.0.0/8 (moto, the proxy) and the lab's namespaces; moto gets dummy
//! credentials and AWS_EC2_METADATA_DISABLED=true (`aws_env`).
//!
//! Run: `cargo test --test aws_e2e` (as root: the lab makes namespaces).

#[path = "../providers/aws/tests/common/mod.rs"]
#[allow(dead_code, clippy::all)]
mod aws;
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use acura_ha_nginx::{NginxOptions, render};
use aws::{Moto, Proxy, apply_aws_env, inventory, inventory_diff, items};
use common::lab::{Lab, ok, text};
use serde_json::{Value, json};

fn json_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The `SHA256:…` fingerprint of a lab host's ED25519 host key, as `ssh-keygen -l` prints it.
fn host_key_fingerprint(lab: &Lab, host: &str) -> String {
    let public = lab
        .cluster_dir()
        .join("hosts")
        .join(host)
        .join("etc-ssh")
        .join("ssh_host_ed25519_key.pub");
    let out = std::process::Command::new(common::require("ssh-keygen"))
        .arg("-lf")
        .arg(&public)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh-keygen -lf {}: {}",
        public.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    line.split_whitespace()
        .find(|t| t.starts_with("SHA256:"))
        .unwrap_or_else(|| panic!("no fingerprint in {line:?}"))
        .to_string()
}

/// An Ubuntu first boot as EC2's serial console holds it: cloud-init's host key block (with its
/// syslog prefix and CRLF line ends) printing `fingerprint`.
fn boot_log(host: &str, fingerprint: &str) -> String {
    format!(
        "[    0.000000] Linux version 5.15.0-1051-aws (buildd@lcy02-amd64-068)\r\n\
         [    5.912345] cloud-init[611]: Cloud-init v. 23.3.3 running 'modules:final'\r\n\
         <14>Dec  7 07:40:12 ec2: #############################################################\r\n\
         <14>Dec  7 07:40:12 ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----\r\n\
         <14>Dec  7 07:40:12 ec2: 256 {fingerprint} root@{host} (ED25519)\r\n\
         <14>Dec  7 07:40:12 ec2: -----END SSH HOST KEY FINGERPRINTS-----\r\n\
         <14>Dec  7 07:40:12 ec2: #############################################################\r\n\
         \r\nUbuntu 20.04.6 LTS {host} ttyS0\r\n\r\n{host} login: "
    )
}

/// Tells the proxy that the instance named `name` is the lab host at `address`, whose console
/// prints `fingerprint`. Every address of the instance is the lab address (the lab has one
/// network): the public and the private one, and the DNS names too, as the IP literal, so that
/// nothing the tool might resolve could send a lookup off the machine.
fn map_host(proxy: &Proxy, name: &str, address: &str, fingerprint: &str) {
    let body = json!({
        "name": name,
        "private_ip": address,
        "public_ip": address,
        "private_dns": address,
        "public_dns": address,
        "console": boot_log(name, fingerprint),
    })
    .to_string();
    let url = format!("{}/__proxy/hosts", proxy.url());
    let r = aws::http(
        "POST",
        &url,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "fault proxy hosts: {}", r.body);
}

fn proxy_hosts(proxy: &Proxy) -> Value {
    aws::http("GET", &format!("{}/__proxy/hosts", proxy.url()), &[], b"")
        .unwrap()
        .json()
}

/// The lab's public key, for `aws.public_key_file` (imported as the cluster's EC2 key pair).
fn public_key(lab: &Lab, dir: &Path) -> PathBuf {
    let key = lab.key();
    let public = dir.join("id_ed25519.pub");
    let beside = key.with_extension("pub");
    if beside.exists() {
        std::fs::copy(&beside, &public).unwrap();
    } else {
        let out = std::process::Command::new(common::require("ssh-keygen"))
            .arg("-y")
            .arg("-f")
            .arg(&key)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&public, out.stdout).unwrap();
    }
    public
}

/// The local lab's preflight section (relaxed minimums, the lab resolver's name for the LB).
fn preflight_section(lab: &Lab) -> String {
    let text = std::fs::read_to_string(&lab.config).unwrap();
    let start = text.find("[preflight]").expect("[preflight] in local.toml");
    let rest = &text[start..];
    let end = rest.find("\n[local]").unwrap_or(rest.len());
    rest[..end].to_string()
}

/// An AWS cluster file whose names are the lab's (nodes `<lab>-1…`, NGINX host `<lab>-lb`), so
/// each instance has a lab host of its name.
struct AwsCluster {
    dir: tempfile::TempDir,
    config: PathBuf,
    url: String,
}

impl AwsCluster {
    fn new(lab: &Lab, url: &str, lb_kind: &str) -> AwsCluster {
        let dir = tempfile::tempdir().unwrap();
        let public = public_key(lab, dir.path());
        let net = format!("10.213.{}", lab.octet);
        let file = format!(
            r#"[cluster]
name = "{name}"
product = "dr"

[nodes]
count = 3
hostname_prefix = "{name}"
volume_size_gb = 200
os_version = "20.04"

[load_balancer]
kind = "{lb_kind}"

[access]
admin_cidrs = ["{net}.1/32"]
public_cidrs = ["{net}.0/24"]
ssh_user = "root"
ssh_private_key = "{key}"

[bootstrap]
archive = "{archive}"
logstash_host = ""
copy_patch = true
copy_ca = true

{preflight}

[aws]
region = "{region}"
instance_type = "m5.2xlarge"
public_key_file = "{public}"
"#,
            name = lab.name,
            key = lab.key().display(),
            archive = common::example("archive").display(),
            preflight = preflight_section(lab),
            region = aws::REGION,
            public = public.display(),
        );
        let config = dir.path().join("aws.toml");
        std::fs::write(&config, file).unwrap();
        AwsCluster {
            dir,
            config,
            url: url.to_string(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = common::acura_ha_std();
        apply_aws_env(&mut cmd, &self.url);
        cmd.args(args)
            .arg("-c")
            .arg(&self.config)
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .env("ACURA_HA_CACHE", common::tools_venv().parent().unwrap())
            .output()
            .unwrap()
    }
}

fn assert_same(before: &Value, after: &Value, when: &str) {
    let diff = inventory_diff(before, after);
    assert!(
        diff["added"].as_object().unwrap().is_empty()
            && diff["removed"].as_object().unwrap().is_empty(),
        "{when}: the inventory changed: {diff:#}"
    );
}

/// A lab of bare hosts, moto with the proxy in front, and every lab host mapped to the instance
/// of its name (its console vouching for its real host key); the lab's LB host only when the
/// cluster has an NGINX instance (`with_lb_host`).
fn setup(name: &str, octet: u8, with_lb_host: bool) -> (Lab, Moto, Proxy) {
    let lab = Lab::new(name, octet, 3);
    ok(&lab.run(&["up", "--only", "provision", "--yes"]));
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    let lb = with_lb_host.then(|| lab.lb());
    for (host, address) in (1..=3).map(|k| lab.node(k)).chain(lb) {
        let fp = host_key_fingerprint(&lab, &host);
        map_host(&proxy, &host, &address, &fp);
    }
    (lab, moto, proxy)
}

#[test]
fn aws_nginx_up_bootstraps_lab_hosts_then_status_plan_down() {
    let (lab, moto, proxy) = setup("e2e-aws", 231, true);
    let before = inventory(&moto.url());
    let nodes: Vec<(String, String)> = (1..=3).map(|k| lab.node(k)).collect();
    let (lb_name, lb_address) = lab.lb();
    let c = AwsCluster::new(&lab, &proxy.url(), "nginx");

    let up = c.run(&["up", "--yes"]);
    let (out, err) = text(&up);
    assert!(
        up.status.success(),
        "up failed\n{out}\n{err}\nproxy:\n{}",
        proxy.log_tail()
    );
    // Every host key was one the console printed: nothing trusted on first use.
    assert!(
        !out.contains("trusted on first use") && !err.contains("trusted on first use"),
        "{out}\n{err}"
    );
    assert!(
        !err.contains("cannot be read from the servers' consoles"),
        "{err}"
    );

    // moto holds the cluster: three nodes and the NGINX instance, no load balancer.
    let inv = inventory(&moto.url());
    let mut names: Vec<String> = items(&inv["instances"])
        .iter()
        .map(|i| i["tags"]["Name"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    let mut want: Vec<String> = nodes.iter().map(|(n, _)| n.clone()).collect();
    want.push(lb_name.clone());
    assert_eq!(names, want, "{inv:#}");
    assert!(items(&inv["load_balancers"]).is_empty(), "{inv:#}");
    // The proxy saw each instance stand for its lab host, and served each console.
    let hosts = proxy_hosts(&proxy);
    let mut seen: Vec<String> = hosts["instance_ids"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    seen.sort();
    assert_eq!(seen, want, "{hosts:#}");
    let stats = proxy.stats();
    assert!(
        stats["by_action"]["GetConsoleOutput"].as_u64().unwrap_or(0) >= 4,
        "{stats:#}"
    );

    // The bootstrap ran on the lab hosts, with the NGINX instance's address as the LB.
    for (name, address) in &nodes {
        let k8s = json_file(&lab.home_file(name, ".acura-standin/k8s-master.json"));
        assert_eq!(k8s["inventory_hostname"], name.as_str());
        assert_eq!(k8s["ansible_host"], address.as_str());
        assert_eq!(k8s["lb_address"], lb_address.as_str());
    }

    let (status_json, _) = ok(&c.run(&["status", "--output", "json"]));
    let status: Value = serde_json::from_str(&status_json).unwrap();
    assert_eq!(status["healthy"], true, "{status_json}");
    let plan = c.run(&["plan"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan).0);

    ok(&c.run(&["down", "--yes"]));
    assert_same(&before, &inventory(&moto.url()), "after down");
}

/// The NLB's stand-in: an L4 forwarder over the nodes on every listener, which is what an NLB
/// is to the cluster. It is the real NGINX with the tool's own stream config, run by the test
/// in the lab LB host's network namespace (so at that host's address, behind its security-group
/// firewall); the tool configures nothing on it (kind = "cloud"). Stopped by its pid on drop.
struct NlbStandIn {
    child: Child,
    _dir: tempfile::TempDir,
}

impl NlbStandIn {
    fn start(lab: &Lab) -> NlbStandIn {
        let nginx = common::require("nginx");
        let (lb_name, _) = lab.lb();
        let namespace = lab.namespace(&lb_name);
        let dir = tempfile::tempdir().unwrap();
        let opts = NginxOptions {
            user: None,
            pid_file: dir.path().join("nginx.pid").display().to_string(),
            error_log: dir.path().join("error.log").display().to_string(),
            ..NginxOptions::default()
        };
        let nodes: Vec<String> = (1..=3).map(|k| lab.node(k).1).collect();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, render(&lab.name, &nodes, &opts).unwrap()).unwrap();
        let mut child = Command::new(common::require("ip"))
            .args(["netns", "exec", &namespace])
            .arg(&nginx)
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(dir.path())
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // Ready when its pid file exists (NGINX writes it after binding every listener); an exit
        // before that (a port taken) fails here.
        let deadline = Instant::now() + Duration::from_secs(20);
        let pid_file = dir.path().join("nginx.pid");
        while !pid_file.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the NLB stand-in (nginx in {namespace}) exited at start ({status}): {}",
                    std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "the NLB stand-in did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        NlbStandIn { child, _dir: dir }
    }
}

impl Drop for NlbStandIn {
    fn drop(&mut self) {
        // `ip netns exec` execs NGINX: the child's pid is the NGINX master's.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Tells the proxy the NLB named `name` answers at `address` (its DNSName).
fn map_load_balancer(proxy: &Proxy, name: &str, address: &str) {
    let body = json!({ "name": name, "dns_name": address }).to_string();
    let url = format!("{}/__proxy/load-balancers", proxy.url());
    let r = aws::http(
        "POST",
        &url,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "fault proxy load-balancers: {}", r.body);
}

/// The NLB kind: moto's NLB has a DNS name under elb.amazonaws.com, which nothing here may look
/// up, and no data plane. So the proxy gives it the lab LB host's address as its DNSName, and
/// the test runs an L4 forwarder there (the same NGINX stream config, not configured by the
/// tool). `up` provisions the NLB, its target groups and listeners in moto, bootstraps the
/// nodes through that address (the stand-in playbooks join through `lb_address:6443`), and
/// `status` sees the listeners answer and moto's target health.
#[test]
fn aws_nlb_up_bootstraps_lab_hosts_then_status_plan_down() {
    let (lab, moto, proxy) = setup("e2e-awsnlb", 232, false);
    let before = inventory(&moto.url());
    let nodes: Vec<(String, String)> = (1..=3).map(|k| lab.node(k)).collect();
    let (_, lb_address) = lab.lb();
    let nlb_name = format!("{}-nlb", lab.name);
    map_load_balancer(&proxy, &nlb_name, &lb_address);
    let _nlb = NlbStandIn::start(&lab);
    let c = AwsCluster::new(&lab, &proxy.url(), "cloud");

    let up = c.run(&["up", "--yes"]);
    let (out, err) = text(&up);
    assert!(
        up.status.success(),
        "up failed\n{out}\n{err}\nproxy:\n{}",
        proxy.log_tail()
    );
    assert!(
        !out.contains("trusted on first use") && !err.contains("trusted on first use"),
        "{out}\n{err}"
    );

    // moto holds the nodes and the NLB with its six listeners; no NGINX instance.
    let inv = inventory(&moto.url());
    let mut names: Vec<String> = items(&inv["instances"])
        .iter()
        .map(|i| i["tags"]["Name"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        nodes.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        "{inv:#}"
    );
    let lbs = items(&inv["load_balancers"]);
    assert_eq!(lbs.len(), 1, "{inv:#}");
    assert_eq!(lbs[0]["name"], nlb_name.as_str());
    assert_eq!(items(&inv["listeners"]).len(), 6, "{inv:#}");
    let hosts = proxy_hosts(&proxy);
    assert!(
        hosts["rewrites"]["load_balancers"].as_u64().unwrap_or(0) >= 1,
        "{hosts:#}"
    );

    // The nodes were bootstrapped with the NLB's (rewritten) DNS name as the LB address.
    for (name, address) in &nodes {
        let k8s = json_file(&lab.home_file(name, ".acura-standin/k8s-master.json"));
        assert_eq!(k8s["inventory_hostname"], name.as_str());
        assert_eq!(k8s["ansible_host"], address.as_str());
        assert_eq!(k8s["lb_address"], lb_address.as_str());
    }

    let (status_json, _) = ok(&c.run(&["status", "--output", "json"]));
    let status: Value = serde_json::from_str(&status_json).unwrap();
    assert_eq!(status["healthy"], true, "{status_json}");
    // Every TCP listener answers through the NLB's address (the stand-in); the UDP one is the
    // load balancer's to check, and moto's target health has each node healthy on all six.
    for l in status["listeners"].as_array().expect("listeners") {
        assert!(
            l["address"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{lb_address}:")),
            "{l:#}"
        );
        let state = l["state"].as_str().unwrap();
        if l["listener"].as_str().unwrap().contains("udp/") {
            assert!(
                state.starts_with("checked by the load balancer: 3 of 3"),
                "{l:#}"
            );
        } else {
            assert_eq!(state, "accepting", "{l:#}");
        }
    }
    let lb_listeners = status["cloud_lb"]["health"]["listeners"]
        .as_array()
        .expect("the NLB's view");
    assert_eq!(lb_listeners.len(), 6, "{status_json}");
    for l in lb_listeners {
        let targets: Vec<(&str, &str)> = l["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["target"].as_str().unwrap(), t["state"].as_str().unwrap()))
            .collect();
        assert_eq!(
            targets,
            nodes
                .iter()
                .map(|(n, _)| (n.as_str(), "healthy"))
                .collect::<Vec<_>>(),
            "{l:#}"
        );
    }
    let plan = c.run(&["plan"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan).0);

    ok(&c.run(&["down", "--yes"]));
    assert_same(&before, &inventory(&moto.url()), "after down");
}

/// The host keys are vouched, not trusted on first use: a node whose console printed another key
/// than the one its host offers is refused before any login, naming the host, and nothing of the
/// bootstrap ran on any node.
#[test]
fn aws_up_refuses_a_host_key_its_console_did_not_print() {
    let (lab, moto, proxy) = setup("e2e-awskey", 233, true);
    let before = inventory(&moto.url());
    let (victim, address) = lab.node(2);
    // What cloud-init would print for another machine (a key the lab host does not have).
    let other = "SHA256:Yw5ZUeCexhJ8yF4Hx2f4HdWQZ3XqJ3Cp3qg3xvB0v1c";
    assert_ne!(host_key_fingerprint(&lab, &victim), other);
    map_host(&proxy, &victim, &address, other);
    let c = AwsCluster::new(&lab, &proxy.url(), "nginx");

    let up = c.run(&["up", "--yes"]);
    let (out, err) = text(&up);
    assert!(!up.status.success(), "up succeeded\n{out}\n{err}");
    let all = format!("{out}\n{err}");
    assert!(
        all.contains("HOST KEY NOT THE ONE THE CLOUD REPORTED") && all.contains(&victim),
        "{all}"
    );
    assert!(all.contains(other), "{all}");
    for k in 1..=3 {
        let (name, _) = lab.node(k);
        assert!(
            !lab.home_file(&name, ".acura-standin").exists(),
            "the bootstrap ran on {name}"
        );
    }

    ok(&c.run(&["down", "--yes"]));
    assert_same(&before, &inventory(&moto.url()), "after down");
}

fn post_json(url: &str, body: &Value) -> aws::HttpResponse {
    aws::http(
        "POST",
        url,
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .unwrap()
}

/// The proxy's mapping itself, without a lab (no root): a mapped instance shows the test host's
/// addresses in RunInstances and in DescribeInstances cut into pages of one, an unmapped one
/// keeps moto's; GetConsoleOutput of the mapped instance is its console; a mapped NLB's DNSName
/// is the address given; and addresses that could lead off the machine are refused.
#[test]
fn proxy_maps_instances_and_load_balancers_to_test_hosts() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url());
    let url = proxy.url();
    let hosts = format!("{url}/__proxy/hosts");
    let lbs = format!("{url}/__proxy/load-balancers");
    // Refused: a public address, a DNS name for an NLB, an unknown field.
    for (at, body) in [
        (&hosts, json!({"name": "m-1", "public_ip": "8.8.8.8"})),
        (&hosts, json!({"name": "m-1", "address": "10.0.0.1"})),
        (&hosts, json!({"public_ip": "10.0.0.1"})),
        (
            &lbs,
            json!({"name": "nlb", "dns_name": "nlb-1.elb.amazonaws.com"}),
        ),
        (&lbs, json!({"name": "nlb", "dns_name": "203.0.113.9"})),
    ] {
        let r = post_json(at, &body);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
    }
    let r = post_json(
        &hosts,
        &json!({"name": "m-1", "private_ip": "10.213.250.11", "public_ip": "10.213.250.11",
                "private_dns": "10.213.250.11", "public_dns": "10.213.250.11",
                "console": "cloud-init of m-1"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    proxy.set_page_size(Some(1));

    let run = |name: &str| -> Value {
        aws::ec2_ok(
            &url,
            "RunInstances",
            &[
                ("ImageId", aws::amis::FOCAL_NEW),
                ("InstanceType", "t3.small"),
                ("MinCount", "1"),
                ("MaxCount", "1"),
                ("TagSpecification.1.ResourceType", "instance"),
                ("TagSpecification.1.Tag.1.Key", "Name"),
                ("TagSpecification.1.Tag.1.Value", name),
            ],
        )
    };
    let first = run("m-1");
    let first = items(&first["instancesSet"])[0].clone();
    assert_eq!(first["privateIpAddress"], "10.213.250.11", "{first:#}");
    assert_eq!(first["privateDnsName"], "10.213.250.11", "{first:#}");
    run("m-2");

    // Through the proxy, in pages of one: m-1 is the test host, m-2 is moto's.
    let inv = inventory(&url);
    let by_name: std::collections::BTreeMap<String, String> = items(&inv["instances"])
        .iter()
        .map(|i| {
            (
                i["tags"]["Name"].as_str().unwrap().to_string(),
                i["private_ip"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(by_name["m-1"], "10.213.250.11", "{inv:#}");
    let direct = inventory(&moto.url());
    let moto_ip = |name: &str| -> String {
        items(&direct["instances"])
            .iter()
            .find(|i| i["tags"]["Name"] == name)
            .map(|i| i["private_ip"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_ne!(moto_ip("m-1"), "10.213.250.11");
    assert_eq!(by_name["m-2"], moto_ip("m-2"), "{inv:#}");
    assert!(
        proxy.paging()["pages_served"]["DescribeInstances"]
            .as_u64()
            .unwrap_or(0)
            >= 2
    );
    // Every address element of m-1 (the instance's and its interface's) is the host's.
    let raw = aws::ec2(
        &url,
        "DescribeInstances",
        &[("Filter.1.Name", "tag:Name"), ("Filter.1.Value.1", "m-1")],
    )
    .unwrap();
    assert_eq!(raw.status, 200, "{}", raw.body);
    assert!(
        raw.body
            .contains("<privateIpAddress>10.213.250.11</privateIpAddress>")
    );
    for moto_only in [
        moto_ip("m-1").as_str(),
        "compute-1.amazonaws.com",
        "ec2.internal",
    ] {
        assert!(!raw.body.contains(moto_only), "{moto_only}: {}", raw.body);
    }

    let id = first["instanceId"].as_str().unwrap();
    let console = aws::ec2_ok(&url, "GetConsoleOutput", &[("InstanceId", id)]);
    assert_eq!(console["output"], "Y2xvdWQtaW5pdCBvZiBtLTE=", "{console:#}");
    let known = proxy_hosts(&proxy);
    assert_eq!(known["instance_ids"][id], "m-1", "{known:#}");

    // An NLB given the test host's address as its DNSName, in the create answer and after.
    let r = post_json(&lbs, &json!({"name": "t-nlb", "dns_name": "10.213.250.10"}));
    assert_eq!(r.status, 200, "{}", r.body);
    let subnets = aws::ec2_ok(&moto.url(), "DescribeSubnets", &[]);
    let subnet = items(&subnets["subnetSet"])[0]["subnetId"]
        .as_str()
        .unwrap()
        .to_string();
    let created = aws::elbv2_ok(
        &url,
        "CreateLoadBalancer",
        &[
            ("Name", "t-nlb"),
            ("Type", "network"),
            ("Subnets.member.1", &subnet),
        ],
    );
    let lb = items(&created["LoadBalancers"])[0].clone();
    assert_eq!(lb["DNSName"], "10.213.250.10", "{created:#}");
    let inv = inventory(&url);
    assert_eq!(
        items(&inv["load_balancers"])[0]["dns"],
        "10.213.250.10",
        "{inv:#}"
    );
    // moto itself still has its own name: the proxy rewrites answers, never moto's state.
    let direct = inventory(&moto.url());
    assert!(
        items(&direct["load_balancers"])[0]["dns"]
            .as_str()
            .unwrap()
            .contains("amazonaws.com"),
        "{direct:#}"
    );
}
