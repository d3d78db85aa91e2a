//! The NGINX load-balancer host (`load_balancer.kind = "nginx"`): install NGINX and its stream
//! module when missing, upload the rendered config next to the old one, `nginx -t` it, move it
//! into place, reload (systemd where the host
//! has it, NGINX's own signals where it does not), then prove that every listener reaches the
//! nodes: a short-lived responder on each node answers on each listener port, and the deploy host
//! sends TCP and UDP through the load balancer until every node has answered on every port.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use acura_ha_api::model::Host;
use acura_ha_api::tables::{INGRESS_RULES, LISTENERS, Listener, Protocol, Source};
use acura_ha_nginx::NginxOptions;
use tokio::task::JoinSet;

use super::preflight::Pool;
use super::ssh::{Session, SshError, shell_quote};
use super::sudo::{self, Sudo, SudoError};
use crate::progress::Progress;

#[derive(Debug, thiserror::Error)]
pub enum LbError {
    #[error("{0}")]
    Ssh(#[from] SshError),
    #[error("{0}")]
    Sudo(Box<SudoError>),
    #[error("{host}: {step} failed: {message}")]
    Step {
        host: String,
        step: &'static str,
        message: String,
    },
    #[error("cannot render the NGINX config: {0}")]
    Render(#[from] acura_ha_nginx::RenderError),
    #[error("listener {listener} on {lb}: {message}")]
    Listener {
        listener: String,
        lb: String,
        message: String,
    },
}

/// Boxed: an SSH error inside would make every `Result` of this stage large.
impl From<SudoError> for LbError {
    fn from(e: SudoError) -> Self {
        LbError::Sudo(Box::new(e))
    }
}

const STEP_TIMEOUT: Duration = Duration::from_secs(600);
const QUICK: Duration = Duration::from_secs(60);

/// Runs `script` on the host as root (one sudo for the whole script, see [`sudo`]); a non-zero
/// exit is an error naming the step and the host.
async fn step(
    session: &Session,
    root: &Sudo<'_>,
    name: &'static str,
    script: &str,
    deadline: Duration,
) -> Result<String, LbError> {
    let out = root.run(session, &root.script(script), deadline).await?;
    if out.status != 0 {
        let detail = format!("{}{}", out.stderr_text(), out.stdout_text());
        return Err(LbError::Step {
            host: session.target.name.clone(),
            step: name,
            message: format!("exit {}: {}", out.status, detail.trim()),
        });
    }
    Ok(out.stdout_text())
}

/// Where NGINX reads its configuration on the LB host.
pub const NGINX_CONF: &str = "/etc/nginx/nginx.conf";

/// Puts `conf` at `path` on the host only when NGINX accepts it: written next to it first
/// (`<path>.acura-ha-new`, same directory, so a relative `include` means the same), checked with
/// `nginx -t -c <new>`, then renamed over `path`. A refused config is removed and the old one
/// stays in place, for the running NGINX and its next restart.
pub async fn install_config(session: &Session, path: &str, conf: &str) -> Result<(), LbError> {
    let become_ = sudo::current();
    let root = become_.prepare(session).await?;
    let new = format!("{path}.acura-ha-new");
    root.write_file(session, &new, conf.as_bytes(), 0o644, QUICK)
        .await?;
    let (new_q, path_q) = (shell_quote(&new), shell_quote(path));
    let check = step(
        session,
        &root,
        "nginx -t",
        &format!("nginx -t -c {new_q} 2>&1"),
        QUICK,
    )
    .await;
    if let Err(e) = check {
        let _ = root
            .run(session, &root.command(&format!("rm -f {new_q}")), QUICK)
            .await;
        return Err(e);
    }
    step(
        session,
        &root,
        "install nginx.conf",
        &format!("mv -f {new_q} {path_q}"),
        QUICK,
    )
    .await?;
    Ok(())
}

/// Installs (when missing), configures and (re)loads NGINX on the LB host.
pub async fn configure(
    session: &Session,
    cluster: &str,
    nodes: &[Host],
    progress: &mut Progress,
) -> Result<(), LbError> {
    let become_ = sudo::current();
    let root = become_.prepare(session).await?;
    let module = NginxOptions::default().stream_module;
    progress.update(format!("checking NGINX on {}", session.target.name));
    // The whole script runs as root under one sudo (one password line serves it).
    let install = format!(
        "if command -v nginx >/dev/null 2>&1 && [ -e {module} ]; then echo present; else \
         env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null && \
         env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx libnginx-mod-stream >/dev/null </dev/null && echo installed; fi"
    );
    let how = step(
        session,
        &root,
        "install nginx and libnginx-mod-stream",
        &install,
        STEP_TIMEOUT,
    )
    .await?;
    progress.update(format!("NGINX {} on {}", how.trim(), session.target.name));
    let addresses: Vec<String> = nodes.iter().map(|h| h.address.clone()).collect();
    let conf = acura_ha_nginx::render(cluster, &addresses, &NginxOptions::default())?;
    install_config(session, NGINX_CONF, &conf).await?;
    // systemd where there is one; otherwise NGINX's own pid file and signals (the local target's
    // hosts have no systemd). Started detached from the session's standard streams.
    // A reload is asynchronous: the command returns before the master has read the new config,
    // and an old worker keeps accepting until it gets to its QUIT. Wait (up to 10 s) until a
    // worker of the new generation runs and every old one is gone or "shutting down" (listeners
    // closed), so the caller's next connection meets the new upstreams: after `node remove`,
    // never the removed node.
    // The whole script as root: reading NGINX's pid file and signalling it need root too.
    let reload = "old=\" $(pgrep -P \"$(cat /run/nginx.pid 2>/dev/null)\" 2>/dev/null | tr '\\n' ' ') \"; \
         if [ -d /run/systemd/system ]; then systemctl enable nginx >/dev/null 2>&1; systemctl reload-or-restart nginx; \
         elif [ -s /run/nginx.pid ] && kill -0 \"$(cat /run/nginx.pid)\" 2>/dev/null; then nginx -s reload; \
         else nginx </dev/null >/dev/null 2>&1; fi; \
         i=0; while [ $i -lt 100 ]; do \
           fresh=0; stale=0; \
           for p in $(pgrep -P \"$(cat /run/nginx.pid 2>/dev/null)\" 2>/dev/null); do \
             case \"$old\" in *\" $p \"*) ;; *) fresh=1;; esac; done; \
           for p in $old; do \
             if [ -r /proc/$p/cmdline ] && ! tr '\\0' ' ' </proc/$p/cmdline | grep -q 'shutting down'; then stale=1; fi; done; \
           [ $fresh = 1 ] && [ $stale = 0 ] && exit 0; \
           sleep 0.1; i=$((i+1)); done; \
         echo 'NGINX did not switch to the new configuration within 10 s' >&2; exit 1";
    step(session, &root, "reload nginx", reload, QUICK).await?;
    progress.update(format!(
        "NGINX configured and running on {}",
        session.target.name
    ));
    Ok(())
}

/// The responder each node runs during the proof: binds what it can of the listener ports,
/// says which, answers `acura-ha-probe <hostname> <port>`, and exits after a few idle seconds.
fn responder_script() -> String {
    let tcp: Vec<String> = LISTENERS
        .iter()
        .filter(|l| l.protocol == Protocol::Tcp)
        .map(|l| l.port.to_string())
        .collect();
    let udp: Vec<String> = LISTENERS
        .iter()
        .filter(|l| l.protocol == Protocol::Udp)
        .map(|l| l.port.to_string())
        .collect();
    format!(
        r#"import select, socket, time
name = socket.gethostname()
socks = {{}}
for p in [{tcp}]:
    try:
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", p)); s.listen(64); socks[s] = ("tcp", p)
    except OSError:
        pass
for p in [{udp}]:
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", p)); socks[s] = ("udp", p)
    except OSError:
        pass
print("ready " + name + " " + ",".join("%s/%d" % v for v in socks.values()), flush=True)
start = last = time.time()
while socks and time.time() - start < 60 and time.time() - last < 5:
    ready, _, _ = select.select(list(socks), [], [], 0.2)
    for s in ready:
        kind, port = socks[s]
        reply = ("acura-ha-probe %s %d\n" % (name, port)).encode()
        if kind == "tcp":
            c, _ = s.accept(); c.sendall(reply); c.close()
        else:
            _, peer = s.recvfrom(2048); s.sendto(reply, peer)
        last = time.time()
"#,
        tcp = tcp.join(", "),
        udp = udp.join(", ")
    )
}

/// What the proof found: for each listener, the nodes that answered through it.
#[derive(Debug, Clone, Default)]
pub struct Proof {
    pub reached: BTreeMap<String, BTreeSet<String>>,
}

/// Starts the responders, sends traffic through every listener, and checks every node answered
/// on every port it could bind (a port a running Acura already serves only has to accept).
pub async fn prove(
    pool: &Pool,
    nodes: &[Host],
    lb_address: &str,
    progress: &mut Progress,
) -> Result<Proof, LbError> {
    let script = responder_script();
    let become_ = sudo::current();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
    let mut responders = JoinSet::new();
    for h in nodes {
        let Some(session) = pool.get(&h.name) else {
            continue;
        };
        // Root binds the listener ports below 1024 too; the password line, when sudo reads
        // one, is the responder's only input.
        let root = become_.prepare(&session).await?;
        let cmd = root.command(&format!("python3 -c {}", shell_quote(&script)));
        let stdin = root.stdin(b"");
        let tx = ready_tx.clone();
        let name = h.name.clone();
        responders.spawn(async move {
            let session: Arc<Session> = session;
            let mut buf = String::new();
            session
                .exec(
                    &cmd,
                    Some(stdin.expose()),
                    Duration::from_secs(90),
                    move |_, data| {
                        buf.push_str(&String::from_utf8_lossy(data));
                        while let Some(i) = buf.find('\n') {
                            let line: String = buf.drain(..=i).collect();
                            let _ = tx.send((name.clone(), line.trim().to_string()));
                        }
                    },
                )
                .await
        });
    }
    drop(ready_tx);
    // Which node (by its own hostname) bound which port.
    let mut bound: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut waiting = nodes.len();
    let wait = tokio::time::timeout(Duration::from_secs(30), async {
        while waiting > 0 {
            match ready_rx.recv().await {
                Some((_, line)) => {
                    if let Some(rest) = line.strip_prefix("ready ") {
                        let mut parts = rest.splitn(2, ' ');
                        let host = parts.next().unwrap_or("").to_string();
                        for p in parts
                            .next()
                            .unwrap_or("")
                            .split(',')
                            .filter(|p| !p.is_empty())
                        {
                            bound.entry(p.to_string()).or_default().insert(host.clone());
                        }
                        waiting -= 1;
                    }
                }
                None => break,
            }
        }
    })
    .await;
    if wait.is_err() || waiting > 0 {
        return Err(LbError::Listener {
            listener: "all".into(),
            lb: lb_address.into(),
            message: format!(
                "{waiting} node(s) did not start the probe responder (python3 missing, or sudo needs a password?)"
            ),
        });
    }
    let mut proof = Proof::default();
    // A listener the guide's security group does not open to the public (the registry, 15000)
    // serves the nodes only: prove it from a node, the others from here.
    let inside = nodes.iter().find_map(|h| pool.get(&h.name));
    for l in LISTENERS {
        let key = format!("{}/{}", l.protocol, l.port);
        let expected = bound.get(&key).cloned().unwrap_or_default();
        let lb = lb_address.to_string();
        let listener = *l;
        let expected2 = expected.clone();
        let seen = if public(l) {
            tokio::task::spawn_blocking(move || {
                probe_listener(&listener, &lb, &expected2, |addr, proto| match proto {
                    Protocol::Tcp => tcp_probe(addr),
                    Protocol::Udp => udp_probe(addr),
                })
            })
            .await
            .map_err(|e| LbError::Listener {
                listener: key.clone(),
                lb: lb_address.into(),
                message: e.to_string(),
            })??
        } else {
            let session = inside.clone().ok_or_else(|| LbError::Listener {
                listener: key.clone(),
                lb: lb_address.into(),
                message: "no node to probe from".into(),
            })?;
            let attempts = 6 * expected.len().max(1);
            let replies = remote_probe(&session, l, lb_address, attempts).await?;
            let mut it = replies.into_iter();
            probe_listener(l, lb_address, &expected, |_, _| {
                it.next().unwrap_or_else(|| Err("no more replies".into()))
            })?
        };
        progress.update(format!(
            "{} {key} reaches {}",
            l.name,
            seen.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
        proof.reached.insert(key, seen);
    }
    // The responders exit by themselves once idle.
    while responders.join_next().await.is_some() {}
    Ok(proof)
}

/// Whether the guide's security group admits this listener's port from the public CIDRs.
pub fn public(l: &Listener) -> bool {
    INGRESS_RULES.iter().any(|r| {
        r.source == Source::Public
            && r.protocol == l.protocol
            && (r.from_port..=r.to_port).contains(&l.port)
    })
}

/// Probes a listener from a node: `attempts` connections (or datagrams), one reply per line.
pub async fn remote_probe(
    session: &Session,
    l: &Listener,
    lb: &str,
    attempts: usize,
) -> Result<Vec<Result<String, String>>, LbError> {
    let script = format!(
        r#"import socket
for _ in range({attempts}):
    try:
        if "{proto}" == "tcp":
            s = socket.create_connection(("{lb}", {port}), timeout=3); s.settimeout(3)
            print("ok " + s.recv(256).decode().strip(), flush=True); s.close()
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
            s.sendto(b"acura-ha-probe", ("{lb}", {port})); print("ok " + s.recv(256).decode().strip(), flush=True); s.close()
    except Exception as e:
        print("error " + str(e), flush=True)
"#,
        proto = l.protocol,
        port = l.port
    );
    let out = session
        .run(
            &format!("python3 -c {}", shell_quote(&script)),
            Duration::from_secs(30 + 6 * attempts as u64),
        )
        .await?;
    Ok(out
        .stdout_text()
        .lines()
        .map(|line| match line.strip_prefix("ok ") {
            Some(reply) => Ok(reply.to_string()),
            None => Err(line.trim_start_matches("error ").to_string()),
        })
        .collect())
}

/// Sends through one listener until every expected node answered (or attempts run out).
fn probe_listener(
    l: &Listener,
    lb: &str,
    expected: &BTreeSet<String>,
    mut once: impl FnMut(SocketAddr, Protocol) -> Result<String, String>,
) -> Result<BTreeSet<String>, LbError> {
    let key = format!("{}/{}", l.protocol, l.port);
    let err = |message: String| LbError::Listener {
        listener: format!("{} ({key})", l.name),
        lb: lb.to_string(),
        message,
    };
    let addr: SocketAddr = (lb, l.port)
        .to_socket_addrs()
        .map_err(|e| err(e.to_string()))?
        .next()
        .ok_or_else(|| err("no address".into()))?;
    let mut seen = BTreeSet::new();
    let mut last_error = String::new();
    let attempts = 6 * expected.len().max(1);
    for _ in 0..attempts {
        match once(addr, l.protocol) {
            Ok(text) => {
                if let Some(rest) = text.strip_prefix("acura-ha-probe ") {
                    let host = rest.split(' ').next().unwrap_or("").to_string();
                    seen.insert(host);
                } else if expected.is_empty() {
                    // Something else (a running Acura) serves this port: accepting is enough.
                    seen.insert("(service already running)".into());
                }
            }
            Err(e) => last_error = e,
        }
        if !expected.is_empty() && expected.is_subset(&seen) {
            return Ok(seen);
        }
        if expected.is_empty() && !seen.is_empty() {
            return Ok(seen);
        }
    }
    if seen.is_empty() {
        return Err(err(format!(
            "no node answered through the load balancer ({}); check NGINX on the LB host and the security group between the LB and the nodes",
            if last_error.is_empty() {
                "no reply".into()
            } else {
                last_error
            }
        )));
    }
    let missing: Vec<_> = expected.difference(&seen).cloned().collect();
    Err(err(format!(
        "{} did not answer through the load balancer (answered: {})",
        missing.join(", "),
        seen.iter().cloned().collect::<Vec<_>>().join(", ")
    )))
}

fn tcp_probe(addr: SocketAddr) -> Result<String, String> {
    use std::io::Read;
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(3)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 256];
    match s.read(&mut buf) {
        Ok(n) => Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string()),
        // Connected, and the service waits for the client to speak first (a TLS server such as
        // kube-apiserver on a re-run): it accepts, like a connection closed without a reply.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Ok(String::new())
        }
        Err(e) => Err(e.to_string()),
    }
}

fn udp_probe(addr: SocketAddr) -> Result<String, String> {
    let bind = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let s = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    s.send_to(b"acura-ha-probe", addr)
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 256];
    let (n, _) = s.recv_from(&mut buf).map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("empty UDP reply (an upstream did not answer)".into());
    }
    Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
}
