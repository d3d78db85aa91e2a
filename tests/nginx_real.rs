//! The rendered NGINX config against the real NGINX (Debian `nginx` + `libnginx-mod-stream`):
//! `nginx -t` accepts it, and TCP on all five TCP ports and UDP on 12201 go through it to three
//! node stand-ins on loopback addresses, also after one of them has died.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use acura_ha_api::tables::{LISTENERS, Protocol};
use acura_ha_nginx::{NginxOptions, render};
use common::require;

#[test]
fn production_config_passes_nginx_t() {
    let nginx = require("nginx");
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nginx.conf");
    let nodes: Vec<String> = ["10.0.0.11", "10.0.0.12", "10.0.0.13"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    std::fs::write(
        &conf,
        render("demo", &nodes, &NginxOptions::default()).unwrap(),
    )
    .unwrap();
    let out = Command::new(nginx)
        .arg("-t")
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "nginx -t refused the config:\n{stderr}"
    );
    assert!(stderr.contains("syntax is ok"), "{stderr}");
}

/// A node stand-in: answers `<name>:<port>` on every TCP listener port and echoes
/// `<name>:<port>:<payload>` on UDP, until told to die (then its sockets are closed).
struct Node {
    alive: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Node {
    fn start(name: &'static str, addr: Ipv4Addr) -> Node {
        let alive = Arc::new(AtomicBool::new(true));
        let mut threads = Vec::new();
        for l in LISTENERS {
            let alive = alive.clone();
            let port = l.port;
            let at = SocketAddr::new(IpAddr::V4(addr), port);
            match l.protocol {
                Protocol::Tcp => {
                    let sock = TcpListener::bind(at).unwrap_or_else(|e| panic!("bind {at}: {e}"));
                    sock.set_nonblocking(true).unwrap();
                    threads.push(thread::spawn(move || {
                        while alive.load(Ordering::SeqCst) {
                            match sock.accept() {
                                Ok((mut c, _)) => {
                                    let _ = c.write_all(format!("{name}:{port}\n").as_bytes());
                                }
                                Err(_) => thread::sleep(Duration::from_millis(5)),
                            }
                        }
                    }));
                }
                Protocol::Udp => {
                    let sock = UdpSocket::bind(at).unwrap_or_else(|e| panic!("bind {at}: {e}"));
                    sock.set_read_timeout(Some(Duration::from_millis(20)))
                        .unwrap();
                    threads.push(thread::spawn(move || {
                        let mut buf = [0u8; 2048];
                        while alive.load(Ordering::SeqCst) {
                            if let Ok((n, peer)) = sock.recv_from(&mut buf) {
                                let mut reply = format!("{name}:{port}:").into_bytes();
                                reply.extend_from_slice(&buf[..n]);
                                let _ = sock.send_to(&reply, peer);
                            }
                        }
                    }));
                }
            }
        }
        Node { alive, threads }
    }

    fn die(self) {
        self.alive.store(false, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
    }
}

/// The NGINX under test. Stopped with `nginx -s stop` (SIGTERM through its pid file), so its
/// workers exit with it: killing only the master would leave them holding the ports.
struct Nginx {
    child: Child,
    stop: Command,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.stop.status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tcp_get(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out)
        .unwrap_or_else(|e| panic!("read {addr}: {e}"));
    out.trim().to_string()
}

/// One datagram from a fresh socket (a new NGINX UDP session); `None` on no or an empty reply.
fn udp_ask(addr: SocketAddr, payload: &str) -> Option<String> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    s.send_to(payload.as_bytes(), addr).unwrap();
    let mut buf = [0u8; 2048];
    match s.recv_from(&mut buf) {
        Ok((n, _)) if n > 0 => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        _ => None,
    }
}

#[test]
fn traffic_reaches_every_node_and_survives_one_dying() {
    common::require_root("the listeners use ports 80 and 443");
    let nginx = require("nginx");
    let lb = Ipv4Addr::new(127, 0, 3, 10);
    let names = ["node1", "node2", "node3"];
    let addrs = [
        Ipv4Addr::new(127, 0, 3, 1),
        Ipv4Addr::new(127, 0, 3, 2),
        Ipv4Addr::new(127, 0, 3, 3),
    ];
    let mut nodes: Vec<Option<Node>> = names
        .iter()
        .zip(addrs)
        .map(|(n, a)| Some(Node::start(n, a)))
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let opts = NginxOptions {
        listen_address: Some(IpAddr::V4(lb)),
        user: None,
        pid_file: dir.path().join("nginx.pid").display().to_string(),
        error_log: dir.path().join("error.log").display().to_string(),
        ..NginxOptions::default()
    };
    let upstreams: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, render("test", &upstreams, &opts).unwrap()).unwrap();
    let nginx_cmd = |extra: &[&str]| {
        let mut c = Command::new(&nginx);
        c.arg("-c").arg(&conf).arg("-p").arg(dir.path()).args(extra);
        c
    };
    let child = nginx_cmd(&["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let child_pid = child.id();
    let mut nginx = Nginx {
        child,
        stop: nginx_cmd(&["-s", "stop"]),
    };
    // Ready when its pid file names it (it writes the file after binding every listener); an
    // exit before that (a port taken) fails here rather than testing some other listener.
    let pid_file = dir.path().join("nginx.pid");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = nginx.child.try_wait() {
            panic!("nginx exited at start ({status}); see its messages above");
        }
        let pid = std::fs::read_to_string(&pid_file).unwrap_or_default();
        if pid.trim() == child_pid.to_string() {
            break;
        }
        assert!(Instant::now() < deadline, "nginx did not start");
        thread::sleep(Duration::from_millis(20));
    }

    let all: BTreeSet<&str> = names.iter().copied().collect();
    // All nodes up: each listener reaches each node (round robin over 3 → 3 requests suffice;
    // 6 leaves room for NGINX's own ordering).
    for l in LISTENERS {
        let at = SocketAddr::new(IpAddr::V4(lb), l.port);
        let mut seen = BTreeSet::new();
        for i in 0..6 {
            let reply = match l.protocol {
                Protocol::Tcp => tcp_get(at),
                Protocol::Udp => udp_ask(at, &format!("gelf-{i}"))
                    .unwrap_or_else(|| panic!("no UDP reply through {at}")),
            };
            let (node, rest) = reply.split_once(':').expect("node:port reply");
            assert!(rest.starts_with(&l.port.to_string()), "{reply} from {at}");
            seen.insert(names.iter().copied().find(|n| *n == node).unwrap());
        }
        assert_eq!(seen, all, "listener {} did not reach every node", l.name);
    }

    // node2 dies: every TCP connection still succeeds, on node1 or node3.
    nodes[1].take().unwrap().die();
    let live: BTreeSet<&str> = ["node1", "node3"].into_iter().collect();
    for l in LISTENERS.iter().filter(|l| l.protocol == Protocol::Tcp) {
        let at = SocketAddr::new(IpAddr::V4(lb), l.port);
        let mut seen = BTreeSet::new();
        for _ in 0..6 {
            let reply = tcp_get(at);
            let node = reply.split(':').next().unwrap().to_string();
            assert!(
                live.contains(node.as_str()),
                "{reply} after node2 died ({at})"
            );
            seen.insert(node);
        }
        assert_eq!(
            seen.len(),
            2,
            "port {} should spread over the live nodes",
            l.port
        );
    }
    // UDP: NGINX learns of the dead node from the one datagram it loses (test-lab.md §5.2), so
    // each message is retried; every answer comes from a live node and every message gets one.
    for l in LISTENERS.iter().filter(|l| l.protocol == Protocol::Udp) {
        let at = SocketAddr::new(IpAddr::V4(lb), l.port);
        for i in 0..6 {
            let reply = (0..3)
                .find_map(|_| udp_ask(at, &format!("after-{i}")))
                .unwrap_or_else(|| panic!("message {i} got no UDP reply through {at}"));
            let node = reply.split(':').next().unwrap();
            assert!(live.contains(node), "{reply} after node2 died");
        }
    }
    for n in nodes.into_iter().flatten() {
        n.die();
    }
}
