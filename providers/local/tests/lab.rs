//! The local target against the real machine (run as root): namespaces, bridge, dnsmasq,
//! nftables and sshd. Each test has its own cluster name and subnet (10.213.61–65.0/24) and
//! tears its lab down in a guard, so the tests run in parallel and leave nothing behind.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use acura_ha_api::desired::desired;
use acura_ha_api::model::{Kind, Status};
use acura_ha_api::provider::{Journal, Provider};
use acura_ha_local::{LocalProvider, require_root};
use common::*;

/// (a) Login with the pinned host key, each host's own hostname, resolver and hosts file; the
/// lab resolver answers lab names and NXDOMAIN for the rest, quickly, without forwarding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_answer_ssh_with_own_identity_and_lab_dns() {
    let lab = Lab::new("lt-ssh", "10.213.61.0/24", 3);
    let mut j = MemJournal::default();
    lab.provision(&mut j).await;
    let names = lab.names();
    assert_eq!(names.hosts.len(), 4);
    let gw = names.gateway.to_string();

    for h in &names.hosts {
        let (rc, out, err) = ssh(&lab, &h.address.to_string(), "hostname").await;
        assert_eq!(rc, 0, "ssh {}: {err}", h.name);
        assert_eq!(out.trim(), h.name);
    }
    let node1 = names.hosts[0].address.to_string();
    let node2 = &names.hosts[1];

    let (rc, out, _) = ssh(&lab, &node1, "cat /etc/resolv.conf").await;
    assert_eq!(rc, 0);
    assert!(out.contains(&format!("nameserver {gw}")), "{out}");

    let (rc, out, err) = ssh(&lab, &node1, &format!("getent hosts {}", node2.name)).await;
    assert_eq!(rc, 0, "{err}");
    assert!(out.starts_with(&node2.address.to_string()), "{out}");

    // Through the resolver itself, not the hosts file.
    let (rc, out, err) = ssh(&lab, &node1, &format!("dig +short {}", node2.name)).await;
    assert_eq!(rc, 0, "{err}");
    assert_eq!(out.trim(), node2.address.to_string());

    let started = Instant::now();
    let (_, out, _) = ssh(&lab, &node1, "dig +time=2 +tries=1 example.com").await;
    let took = started.elapsed();
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    assert!(out.contains(&format!("SERVER: {gw}#53")), "{out}");
    assert!(took < Duration::from_secs(2), "NXDOMAIN took {took:?}");
    let (rc, _, _) = ssh(&lab, &node1, "getent hosts example.com").await;
    assert_eq!(rc, 2, "example.com must not resolve");

    // The host sees its private files, not the machine's.
    let (rc, out, _) = ssh(&lab, &node1, "echo $HOME; ls -A /root; ls /run").await;
    assert_eq!(rc, 0);
    assert!(out.contains(".bashrc"), "{out}");
    assert!(out.contains("sshd.pid"), "{out}");

    // The recorded resources are exactly desired()'s, all Ready.
    let want = desired(&lab.spec);
    assert_eq!(j.records.len(), want.len(), "{:#?}", j.records);
    for w in &want {
        let r = j.get(&w.address).expect("recorded");
        assert_eq!(r.status, Status::Ready);
        assert_eq!((r.kind, &r.name, &r.attrs), (w.kind, &w.name, &w.attrs));
    }
    for h in &names.hosts {
        assert_eq!(j.output(&h.resource, "address"), h.address.to_string());
        assert_eq!(j.output(&h.resource, "namespace"), h.namespace);
        // Write-ahead: Creating before Ready.
        let seen: Vec<Status> = j
            .history
            .iter()
            .filter(|(a, _)| *a == h.resource)
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(seen, [Status::Creating, Status::Ready]);
    }
    let net: Vec<Status> = j
        .history
        .iter()
        .filter(|(a, _)| a == "lab_network")
        .map(|(_, s)| *s)
        .collect();
    assert_eq!(net, [Status::Creating, Status::Ready]);
    assert_eq!(
        j.get("key_pair").and_then(|r| r.id.clone()),
        Some(lab.provider.key_file().display().to_string())
    );
    let kh = std::fs::read_to_string(&names.known_hosts).expect("known_hosts");
    assert_eq!(kh.lines().count(), 4);
}

/// (b) The guide's security group inside each namespace: the lab hosts reach each other on any
/// TCP port; the deploy side only on SSH, the admin and the public ports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firewall_admits_the_group_and_the_admin_ports_only() {
    let lab = Lab::new("lt-fw", "10.213.62.0/24", 3);
    let mut j = MemJournal::default();
    lab.provision(&mut j).await;
    let names = lab.names();
    let (n1, n2) = (&names.hosts[0], &names.hosts[1]);

    // A listener on an unlisted port inside node 1 (stopped with the namespace).
    let _listener = tokio::process::Command::new("/usr/sbin/ip")
        .args(["netns", "exec", &n1.namespace, "/usr/bin/python3", "-c"])
        .arg(
            "import socket\n\
             s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('0.0.0.0', 9999)); s.listen(16)\n\
             while True:\n    c, _ = s.accept(); c.close()\n",
        )
        .kill_on_drop(true)
        .spawn()
        .expect("python3 listener");

    let connect_from_node2 = format!(
        "import socket; socket.create_connection(('{}', 9999), timeout=3).close()",
        n1.address
    );
    let mut ok = false;
    for _ in 0..50 {
        let (rc, _, _) = sh(
            "/usr/sbin/ip",
            &[
                "netns",
                "exec",
                &n2.namespace,
                "/usr/bin/python3",
                "-c",
                &connect_from_node2,
            ],
        )
        .await;
        if rc == 0 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ok,
        "node 2 cannot reach node 1:9999 (the group's all-TCP rule)"
    );

    let addr = SocketAddr::from((n1.address, 9999));
    let started = Instant::now();
    let r =
        tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr)).await;
    assert!(
        r.is_err(),
        "the deploy side reached {addr} (must be dropped, not answered): {r:?} after {:?}",
        started.elapsed()
    );

    for port in [22u16] {
        let s = tokio::time::timeout(
            Duration::from_secs(3),
            tokio::net::TcpStream::connect((n1.address, port)),
        )
        .await;
        assert!(
            matches!(s, Ok(Ok(_))),
            "port {port} from the deploy side: {s:?}"
        );
    }
    // A public port with nothing listening is admitted, so refused (not dropped).
    let s = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect((n1.address, 443)),
    )
    .await;
    assert!(
        matches!(&s, Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused),
        "443 from the deploy side: {s:?}"
    );
    let ruleset = sh(
        "/usr/sbin/ip",
        &[
            "netns",
            "exec",
            &n1.namespace,
            "/usr/sbin/nft",
            "list",
            "ruleset",
        ],
    )
    .await
    .1;
    assert!(ruleset.contains("policy drop"), "{ruleset}");
}

/// (c) Provisioning again changes nothing; destroy leaves nothing and can run twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_is_idempotent_and_destroy_leaves_nothing() {
    let lab = Lab::new("lt-idem", "10.213.63.0/24", 3);
    let names = lab.names();
    let mut j = MemJournal::default();
    let t = Instant::now();
    lab.provision(&mut j).await;
    eprintln!("provision of 4 hosts: {:?}", t.elapsed());
    let first = by_address(&j);

    let drift = lab
        .provider
        .refresh(&lab.spec, &j.all())
        .await
        .unwrap()
        .unwrap();
    assert!(drift.is_empty(), "right after provision: {drift:#?}");

    let t = Instant::now();
    lab.provision(&mut j).await;
    eprintln!("provision again (adopt): {:?}", t.elapsed());
    assert_eq!(
        by_address(&j),
        first,
        "a second provision changed the records"
    );
    assert_eq!(j.records.len(), first.len());

    let (_, netns, _) = sh("/usr/sbin/ip", &["netns", "list"]).await;
    for h in &names.hosts {
        let n = netns
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(&h.namespace))
            .count();
        assert_eq!(n, 1, "{netns}");
        let (_, addrs, _) = sh(
            "/usr/sbin/ip",
            &[
                "-n",
                &h.namespace,
                "-4",
                "-o",
                "addr",
                "show",
                "dev",
                "eth0",
            ],
        )
        .await;
        assert_eq!(addrs.lines().count(), 1, "{addrs}");
        let (_, tables, _) = sh(
            "/usr/sbin/ip",
            &[
                "netns",
                "exec",
                &h.namespace,
                "/usr/sbin/nft",
                "list",
                "tables",
            ],
        )
        .await;
        assert_eq!(tables.trim(), "table inet acura_ha");
    }
    let (_, routes, _) = sh("/usr/sbin/ip", &["route", "show", "type", "unreachable"]).await;
    let subnet = names.subnet.to_string();
    assert_eq!(
        routes.lines().filter(|l| l.contains(&subnet)).count(),
        1,
        "{routes}"
    );

    // Broken pieces are repaired, the rest kept: node 2's sshd dies, node 3 loses its link.
    let (n1, n2, n3) = (&names.hosts[0], &names.hosts[1], &names.hosts[2]);
    let old2: i32 = j.output(&n2.resource, "sshd_pid").parse().expect("pid");
    let (rc, _, err) = sh("/usr/bin/kill", &["-KILL", &old2.to_string()]).await;
    assert_eq!(rc, 0, "{err}");
    let (rc, _, err) = sh("/usr/sbin/ip", &["link", "del", "dev", &n3.veth]).await;
    assert_eq!(rc, 0, "{err}");
    // Refresh (issue 9, item 3) sees exactly the two broken hosts, as what `up` will remake.
    let drift = lab
        .provider
        .refresh(&lab.spec, &j.all())
        .await
        .expect("refresh")
        .expect("the local target refreshes");
    let gone: Vec<&str> = drift.gone.iter().map(|g| g.address.as_str()).collect();
    assert_eq!(
        gone,
        [n2.resource.as_str(), n3.resource.as_str()],
        "{drift:#?}"
    );
    assert!(drift.extra.is_empty(), "{drift:#?}");
    j.history.clear();
    lab.provision(&mut j).await;
    let after = lab
        .provider
        .refresh(&lab.spec, &j.all())
        .await
        .unwrap()
        .unwrap();
    assert!(after.is_empty(), "after the repair: {after:#?}");
    assert_ne!(j.output(&n2.resource, "sshd_pid"), old2.to_string());
    assert_eq!(
        j.output(&n1.resource, "sshd_pid"),
        first[&n1.resource].outputs["sshd_pid"]
    );
    for h in [n2, n3] {
        let seen: Vec<Status> = j
            .history
            .iter()
            .filter(|(a, _)| *a == h.resource)
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(seen, [Status::Creating, Status::Ready], "{}", h.name);
        let (rc, out, err) = ssh(&lab, &h.address.to_string(), "hostname").await;
        assert_eq!((rc, out.trim()), (0, h.name.as_str()), "{err}");
    }
    assert!(
        !j.history
            .iter()
            .any(|(a, s)| *a == n1.resource && *s == Status::Creating),
        "a healthy host was re-created"
    );

    // Something the bootstrap would start on a host: stopped by destroy with the namespace.
    let lb = names.hosts.last().expect("lb");
    let (rc, _, err) = ssh(
        &lab,
        &lb.address.to_string(),
        "nohup sleep 300 >/dev/null 2>&1 &",
    )
    .await;
    assert_eq!(rc, 0, "{err}");

    let mut pids = recorded_pids(&j);
    assert_eq!(pids.len(), 5);
    let (_, extra, _) = sh("/usr/sbin/ip", &["netns", "pids", &lb.namespace]).await;
    pids.extend(
        extra
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok()),
    );

    let t = Instant::now();
    lab.provider
        .destroy(&lab.spec, &mut j)
        .await
        .expect("destroy");
    eprintln!("destroy of 4 hosts: {:?}", t.elapsed());
    assert!(j.records.is_empty(), "{:#?}", j.records);
    assert_nothing_left(&names, &pids).await;

    lab.provider
        .destroy(&lab.spec, &mut j)
        .await
        .expect("a second destroy");
    assert_nothing_left(&names, &pids).await;
}

/// A crash of the engine mid-provision: destroy with a journal that knows nothing still
/// removes everything, and a key of the user's is never deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_after_a_crash_cleans_what_the_journal_never_saw() {
    let dir = tempfile::tempdir().expect("tempdir");
    let user_key = dir.path().join("user_key");
    let (rc, _, err) = sh(
        "/usr/bin/ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            &user_key.display().to_string(),
        ],
    )
    .await;
    assert_eq!(rc, 0, "{err}");
    let mut lab = Lab::new("lt-crash", "10.213.64.0/24", 3);
    lab.spec = spec("lt-crash", "10.213.64.0/24", 3, Some(&user_key));
    lab.provider = LocalProvider::new(lab.cluster_dir(), user_key.clone());
    let names = lab.names();

    // lab_network Creating + Ready, then lab_host[lt-crash-1] Creating, then the crash.
    let mut j = MemJournal {
        fail_after: Some(3),
        ..Default::default()
    };
    let err = lab
        .provider
        .provision(&lab.spec, &mut j)
        .await
        .expect_err("the journal fails");
    assert!(err.to_string().contains("simulated crash"), "{err}");
    assert!(
        j.get("key_pair").is_none(),
        "a user key is not a key_pair resource"
    );
    let pids = recorded_pids(&j);
    let first = &names.hosts[0];
    assert!(
        std::path::Path::new("/run/netns")
            .join(&first.namespace)
            .exists(),
        "the crash left a host half made"
    );

    lab.provider
        .destroy(&lab.spec, &mut MemJournal::default())
        .await
        .expect("destroy");
    assert_nothing_left(&names, &pids).await;
    assert!(user_key.exists(), "the user's key was deleted");
}

/// (d) Without root the provider refuses, saying why and what to do.
#[test]
fn refuses_without_root() {
    let err = require_root(1000).expect_err("not root");
    let msg = err.to_string();
    assert!(msg.contains("must run as root"), "{msg}");
    assert!(msg.contains("sudo"), "{msg}");
    assert!(require_root(0).is_ok());
}

/// Names the kernel accepts, and the addresses `desired()` uses.
#[test]
fn names_fit_the_kernel_and_match_desired() {
    let s = spec("a-twenty-char-name-x", "10.213.65.0/24", 5, None);
    let names = acura_ha_local::lab_names(&s, std::path::Path::new("/tmp/x"));
    assert!(names.bridge.len() <= 15);
    for h in &names.hosts {
        assert!(h.veth.len() <= 15, "{}", h.veth);
    }
    let want: Vec<(String, String)> = desired(&s)
        .into_iter()
        .filter(|r| r.kind == Kind::LabHost)
        .map(|r| (r.address, r.attrs["address"].clone()))
        .collect();
    let got: Vec<(String, String)> = names
        .hosts
        .iter()
        .map(|h| (h.resource.clone(), h.address.to_string()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(names.gateway, Ipv4Addr::new(10, 213, 65, 1));
}

/// The cluster directory under `/root` (which every host sees replaced by its own home) still
/// works; NGINX started on the NGINX host over SSH writes only that host's private files and
/// is stopped by destroy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_on_the_lb_host_stays_private_even_with_the_lab_under_root() {
    require_tools();
    let home = tempfile::Builder::new()
        .prefix(".acura-ha-local-test-")
        .tempdir_in("/root")
        .expect("a directory under /root");
    let mut lab = Lab::new("lt-nginx", "10.213.65.0/24", 3);
    let cluster_dir = home.path().join("lt-nginx");
    lab.provider = LocalProvider::new(cluster_dir.clone(), cluster_dir.join("id_ed25519"));
    let mut j = MemJournal::default();
    lab.provision(&mut j).await;
    let names = lab.names();
    let lb = names.hosts.last().expect("lb");
    let lb_addr = lb.address.to_string();

    let machine_pid = std::fs::read_to_string("/run/nginx.pid").ok();
    let (rc, out, err) = ssh(&lab, &lb_addr, "nginx -t 2>&1 && nginx && echo started").await;
    assert_eq!(rc, 0, "{out}{err}");
    let pid_file = lb.dir.join("run/nginx.pid");
    let mut nginx_pid = None;
    for _ in 0..100 {
        nginx_pid = std::fs::read_to_string(&pid_file).ok();
        if nginx_pid.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let nginx_pid: i32 = nginx_pid
        .expect("nginx wrote its pid into the host's own /run")
        .trim()
        .parse()
        .expect("a pid");
    assert_eq!(
        std::fs::read_to_string("/run/nginx.pid").ok(),
        machine_pid,
        "the machine's /run/nginx.pid changed"
    );
    assert!(lb.dir.join("log-nginx/error.log").exists());

    // Port 80 is a public port: the deploy side gets NGINX's answer (a raw socket: no proxy
    // from the environment may take the request elsewhere).
    let (rc, out, _) = sh(
        "/usr/bin/python3",
        &[
            "-c",
            &format!(
                "import socket; s = socket.create_connection(('{lb_addr}', 80), timeout=3); \
                 s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); print(s.recv(12).decode()[9:12])"
            ),
        ],
    )
    .await;
    assert_eq!((rc, out.trim()), (0, "200"));

    let mut pids = recorded_pids(&j);
    pids.push(nginx_pid);
    lab.provider
        .destroy(&lab.spec, &mut j)
        .await
        .expect("destroy");
    assert_nothing_left(&names, &pids).await;
}
