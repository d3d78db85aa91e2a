//! Test harness for the AWS provider, shared by its integration tests (`mod common;`).
//!
//! * [`Moto`]: a real `moto_server` (moto 5.2.5 from the tools venv that
//!   `scripts/setup-test-deps.sh` installs) on a free port of 127.0.0.1, with the AMI catalogue
//!   `tests/fixtures/amis.json` and moto's validation of instance types, AMIs and key pairs on.
//! * [`Proxy`]: `tests/fault_proxy.py` in front of moto: counts requests by service and Action and
//!   injects scripted AWS errors, latency, connection resets and silent calls (held open, never
//!   answered), on every Nth matching call if asked.
//! * [`aws_env`]: the environment that points the AWS SDK at moto (or at the proxy) and keeps the
//!   machine's own AWS configuration out.
//! * Raw EC2/ELBv2 query calls ([`ec2`], [`elbv2`], [`ec2_ok`], [`elbv2_ok`]) with a fake SigV4
//!   header (moto routes by it and checks no signature), an XML-to-JSON reader ([`xml_to_json`]),
//!   and [`inventory`]: every kind of resource the tool creates, for before/after comparisons.
//!
//! No SDK here, so the harness compiles in seconds. All traffic goes to 127.0.0.1: every URL
//! these helpers take must be on 127.0.0.0/8. A missing component fails the test and names the
//! setup command; nothing skips. Processes are stopped by their pid when their handle drops, and a
//! watchdog stops them too if the test binary dies without unwinding.

#![allow(dead_code)]

use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The command that installs every component the tests use.
pub const SETUP: &str = "sudo scripts/setup-test-deps.sh";
/// The region of [`aws_env`] and of the raw calls.
pub const REGION: &str = "us-east-1";
/// Canonical's account: the owner of the Ubuntu images in `fixtures/amis.json`.
pub const CANONICAL: &str = "099720109477";
pub const EC2_VERSION: &str = "2016-11-15";
pub const ELBV2_VERSION: &str = "2015-12-01";
/// SigV4 credential-scope service names (what moto routes by, and what the proxy counts by).
pub const EC2: &str = "ec2";
pub const ELBV2: &str = "elasticloadbalancing";

/// The AMIs in `fixtures/amis.json`.
pub mod amis {
    /// Canonical focal 20.04, built 2023-01-12 (the older one).
    pub const FOCAL_OLD: &str = "ami-0f0c0a1f0c0a10001";
    /// Canonical focal 20.04, built 2024-02-28 (the newest Canonical focal).
    pub const FOCAL_NEW: &str = "ami-0f0c0a1f0c0a10002";
    /// Canonical noble 24.04 (hvm-ssd-gp3).
    pub const NOBLE: &str = "ami-0a0b1e2400a000001";
    /// Another owner (679593333241), a focal name and the newest date of all: must never be picked.
    pub const IMPOSTOR: &str = "ami-0bad0bad0bad00001";
    pub const IMPOSTOR_OWNER: &str = "679593333241";
    pub const FOCAL_NAME_PATTERN: &str = "ubuntu/images/hvm-ssd/ubuntu-focal-20.04-amd64-server-*";
    pub const NOBLE_NAME_PATTERN: &str =
        "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*";
}

/// A valid ed25519 public key (OpenSSH format) for ImportKeyPair; its private half was discarded.
pub const TEST_PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPp3QFc9tLNsMvxGYAAb88ZETLEByubCMmwWd0qA72Qu harness";

// ---------------------------------------------------------------------------------------------
// Paths and components

pub fn crate_dir() -> PathBuf {
    // This module is also included by the workspace root's tests (`#[path]`): find the AWS crate
    // from either manifest directory.
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let nested = here.join("providers").join("aws");
    if nested.join("tests").join("fixtures").is_dir() {
        nested
    } else {
        here
    }
}

pub fn fixtures() -> PathBuf {
    crate_dir().join("tests").join("fixtures")
}

/// The `MOTO_AMIS_PATH` catalogue.
pub fn amis_json() -> PathBuf {
    fixtures().join("amis.json")
}

pub fn fault_proxy_script() -> PathBuf {
    crate_dir().join("tests").join("fault_proxy.py")
}

/// Where `scripts/setup-test-deps.sh` puts the Python tools (ansible-core, moto).
pub fn tools_venv() -> PathBuf {
    let cache = std::env::var("ACURA_HA_CACHE").unwrap_or_else(|_| "/var/cache/acura-ha".into());
    PathBuf::from(cache).join("venv")
}

/// A program from the tools venv; fails naming the setup command when it is missing.
pub fn venv_tool(program: &str) -> PathBuf {
    let p = tools_venv().join("bin").join(program);
    assert!(
        p.is_file(),
        "`{program}` is not installed in {}: run `{SETUP}` \
         (it installs every component the tests use)",
        tools_venv().display()
    );
    p
}

/// The Python that runs `fault_proxy.py` (standard library only): the venv's, else the system's.
pub fn python() -> PathBuf {
    let venv = tools_venv().join("bin").join("python3");
    if venv.is_file() {
        return venv;
    }
    let system = PathBuf::from("/usr/bin/python3");
    assert!(
        system.is_file(),
        "python3 is not installed: run `{SETUP}` (it installs every component the tests use)"
    );
    system
}

// ---------------------------------------------------------------------------------------------
// Child processes

static LOG_SEQ: AtomicUsize = AtomicUsize::new(0);

fn log_path(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join("acura-ha-aws-tests");
    std::fs::create_dir_all(&dir).expect("create the test log folder");
    let n = LOG_SEQ.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{what}-{}-{n}.log", std::process::id()))
}

fn tail(path: &Path, max: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(max);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].to_string()
}

/// A child process stopped by its pid on drop, plus a watchdog (`sh`, reading a pipe from us) that
/// sends it SIGTERM if this test process goes away without dropping it (abort, SIGKILL).
struct Spawned {
    name: &'static str,
    child: Child,
    watchdog: Option<(Child, ChildStdin)>,
    log: PathBuf,
}

impl Spawned {
    fn new(name: &'static str, child: Child, log: PathBuf) -> Spawned {
        let pid = child.id();
        let watchdog = Command::new("/bin/sh")
            .arg("-c")
            .arg(r#"while read -r _; do :; done; kill "$0" 2>/dev/null"#)
            .arg(pid.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
            .and_then(|mut w| {
                let stdin = w.stdin.take()?;
                Some((w, stdin))
            });
        Spawned {
            name,
            child,
            watchdog,
            log,
        }
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn log_tail(&self) -> String {
        tail(&self.log, 4000)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // The watchdog first, so that it never signals a pid that is no longer ours.
        if let Some((mut w, stdin)) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
            drop(stdin);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("{} log kept: {}", self.name, self.log.display());
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

// ---------------------------------------------------------------------------------------------
// moto

/// A `moto_server` of its own, on 127.0.0.1 and a free port; stopped (by pid) on drop.
pub struct Moto {
    proc: Spawned,
    port: u16,
    started_in: Duration,
}

impl Moto {
    /// Starts moto, waits until it answers and makes one warm-up EC2 call (the first call in a
    /// region builds the default VPC and loads the AMIs: about a second).
    pub fn start() -> Moto {
        let moto_server = venv_tool("moto_server");
        let amis = amis_json();
        assert!(amis.is_file(), "{} is missing", amis.display());
        let t0 = Instant::now();
        let mut failures = Vec::new();
        // The free port is only free until moto binds it: try again on a race.
        for _ in 0..3 {
            let port = free_port();
            let log = log_path("moto");
            let out = File::create(&log).expect("create the moto log");
            let child = Command::new(&moto_server)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("MOTO_AMIS_PATH", &amis)
                .env("MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION", "1")
                .env("MOTO_ENABLE_AMI_VALIDATION", "1")
                .env("MOTO_ENABLE_KEYPAIR_VALIDATION", "1")
                .env("PYTHONUNBUFFERED", "1")
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("dup the moto log"))
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot run {}: {e}; run `{SETUP}`", moto_server.display())
                });
            let mut proc = Spawned::new("moto_server", child, log);
            let url = format!("http://127.0.0.1:{port}");
            let deadline = Instant::now() + Duration::from_secs(90);
            let ready = loop {
                let probe = http("GET", &format!("{url}/moto-api/data.json"), &[], b"");
                if probe.is_ok_and(|r| r.status == 200) {
                    break true;
                }
                if let Some(status) = proc.exited() {
                    failures.push(format!("exited ({status}):\n{}", proc.log_tail()));
                    break false;
                }
                assert!(
                    Instant::now() < deadline,
                    "moto_server did not answer on {url} within 90 s; its log:\n{}",
                    proc.log_tail()
                );
                std::thread::sleep(Duration::from_millis(50));
            };
            if !ready {
                continue;
            }
            let warm = ec2(&url, "DescribeVpcs", &[]).expect("the warm-up call to moto");
            assert_eq!(
                warm.status,
                200,
                "warm-up DescribeVpcs: {}\nmoto log:\n{}",
                warm.body,
                proc.log_tail()
            );
            return Moto {
                proc,
                port,
                started_in: t0.elapsed(),
            };
        }
        panic!(
            "moto_server failed to start 3 times:\n{}",
            failures.join("\n---\n")
        );
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.proc.child.id()
    }

    /// From spawn to the end of the warm-up call.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// [`aws_env`] for this moto.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        aws_env(&self.url())
    }

    /// Forgets every resource (`POST /moto-api/reset`); the AMI catalogue comes back.
    pub fn reset(&self) {
        let r = http("POST", &format!("{}/moto-api/reset", self.url()), &[], b"")
            .expect("POST /moto-api/reset");
        assert_eq!(r.status, 200, "moto reset: {}", r.body);
    }

    /// The tail of moto's log (stdout and stderr), for failure messages.
    pub fn log_tail(&self) -> String {
        self.proc.log_tail()
    }
}

// ---------------------------------------------------------------------------------------------
// fault proxy

/// `tests/fault_proxy.py` on 127.0.0.1 and a free port, forwarding to `upstream`; stopped (by pid)
/// on drop. See the script's docstring for the rule format.
pub struct Proxy {
    proc: Spawned,
    port: u16,
    stdin: Option<ChildStdin>,
    _stdout: BufReader<ChildStdout>,
}

impl Proxy {
    pub fn start(upstream_url: &str) -> Proxy {
        loopback_addr(upstream_url);
        let python = python();
        let script = fault_proxy_script();
        let log = log_path("fault-proxy");
        let err = File::create(&log).expect("create the proxy log");
        let mut cmd = Command::new(&python);
        cmd.arg(&script).args([
            "--upstream",
            upstream_url,
            "--port",
            "0",
            "--exit-on-stdin-eof",
        ]);
        // The whole suite through pages of N: `ACURA_HA_TEST_AWS_PAGE_SIZE=2 cargo test ...`.
        if let Ok(n) = std::env::var("ACURA_HA_TEST_AWS_PAGE_SIZE") {
            cmd.args(["--page-size", n.trim()]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {} {}: {e}", python.display(), script.display())
            });
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("proxy stdout"));
        let proc = Spawned::new("fault_proxy", child, log);
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse::<u16>().ok())
            .unwrap_or_else(|| {
                panic!(
                    "fault_proxy.py did not say `listening <port>` (got {line:?}); its log:\n{}",
                    proc.log_tail()
                )
            });
        Proxy {
            proc,
            port,
            stdin,
            _stdout: stdout,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.proc.child.id()
    }

    /// Replaces the rules, e.g.
    /// `json!([{"action": "DeleteSecurityGroup", "times": 2, "fault": "DependencyViolation"}])`.
    pub fn set_rules(&self, rules: Value) {
        let r = self.control("POST", "rules", rules.to_string().as_bytes());
        assert_eq!(
            r.status, 200,
            "fault proxy refused the rules {rules}: {}",
            r.body
        );
    }

    /// The current rules, each with `remaining` and `fired`.
    pub fn rules(&self) -> Value {
        self.control("GET", "rules", b"").json()
    }

    /// `{total, by_action, by_service, mutating, mutating_by_action, faults_injected,
    /// faults_by_action, log: [{t, service, action, mutating, fault}]}`.
    pub fn stats(&self) -> Value {
        self.control("GET", "stats", b"").json()
    }

    /// Cuts the answers of paged Describe* calls into pages of `size` items (`None`: whole), as
    /// AWS pages and moto mostly does not.
    pub fn set_page_size(&self, size: Option<usize>) {
        let body = serde_json::json!({ "page_size": size }).to_string();
        let r = self.control("POST", "paging", body.as_bytes());
        assert_eq!(r.status, 200, "fault proxy paging: {}", r.body);
    }

    /// `{page_size, pages_served: {Action: pages}}`.
    pub fn paging(&self) -> Value {
        self.control("GET", "paging", b"").json()
    }

    pub fn reset_stats(&self) {
        let r = self.control("POST", "reset-stats", b"");
        assert_eq!(r.status, 200, "fault proxy reset-stats: {}", r.body);
    }

    /// The proxy's stderr (tracebacks, if any).
    pub fn log_tail(&self) -> String {
        self.proc.log_tail()
    }

    fn control(&self, method: &str, what: &str, body: &[u8]) -> HttpResponse {
        let url = format!("{}/__proxy/{what}", self.url());
        http(method, &url, &[("Content-Type", "application/json")], body)
            .unwrap_or_else(|e| panic!("{method} {url}: {e}; proxy log:\n{}", self.log_tail()))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        drop(self.stdin.take());
    }
}

// ---------------------------------------------------------------------------------------------
// Environment for the SDK

/// Points the AWS SDK (the tool's real client construction) at `url` with static test
/// credentials, and keeps the machine's own AWS config and credentials files and the instance
/// metadata service out of it. The per-service endpoint variables are set too, so that a
/// machine-wide `AWS_ENDPOINT_URL_EC2` cannot win.
pub fn aws_env(url: &str) -> Vec<(&'static str, String)> {
    loopback_addr(url);
    vec![
        ("AWS_ENDPOINT_URL", url.to_string()),
        ("AWS_ENDPOINT_URL_EC2", url.to_string()),
        (
            "AWS_ENDPOINT_URL_ELASTIC_LOAD_BALANCING_V2",
            url.to_string(),
        ),
        ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "false".to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
        ("AWS_REGION", REGION.to_string()),
        ("AWS_DEFAULT_REGION", REGION.to_string()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ("AWS_CONFIG_FILE", "/dev/null".to_string()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".to_string()),
    ]
}

/// The `AWS_*` variables of this process that [`aws_env`] does not set (`AWS_PROFILE`,
/// `AWS_SESSION_TOKEN`, `AWS_CA_BUNDLE`, …): remove them from a child's environment.
pub fn aws_env_remove() -> Vec<String> {
    let set: BTreeSet<&str> = aws_env("http://127.0.0.1:1")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("AWS_") && !set.contains(k.as_str()))
        .collect()
}

/// [`aws_env_remove`] then [`aws_env`] on a command.
pub fn apply_aws_env<'a>(cmd: &'a mut Command, url: &str) -> &'a mut Command {
    for k in aws_env_remove() {
        cmd.env_remove(k);
    }
    cmd.envs(aws_env(url))
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 over TcpStream (127.0.0.0/8 only)

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}), HTTP {}: {}", self.status, self.body))
    }

    /// The body as JSON, through [`xml_to_json`].
    pub fn xml(&self) -> Value {
        xml_to_json(&self.body)
    }

    /// The AWS error code of an error reply (EC2 or ELBv2 shape).
    pub fn error_code(&self) -> Option<String> {
        aws_error_code(&self.body)
    }
}

/// (host, port, path) of an `http://127.x.y.z:port/path` URL; panics for anything else, so that
/// no test can send traffic off the machine.
fn loopback_addr(url: &str) -> (SocketAddr, String) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("only http:// URLs on 127.0.0.0/8 here, not {url:?}"));
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = authority
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("URL without a port: {url:?}"));
    let ip: Ipv4Addr = if host == "localhost" {
        Ipv4Addr::LOCALHOST
    } else {
        host.parse()
            .unwrap_or_else(|_| panic!("only 127.0.0.0/8 addresses here, not {host:?}"))
    };
    assert!(
        ip.is_loopback(),
        "only 127.0.0.0/8 addresses here, not {ip}"
    );
    let port: u16 = port
        .parse()
        .unwrap_or_else(|_| panic!("bad port in {url:?}"));
    (SocketAddr::from((ip, port)), path.to_string())
}

/// One HTTP/1.1 request with `Connection: close`. An `Err` means no (complete) response: refused,
/// reset, or closed before the headers.
pub fn http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<HttpResponse> {
    let (addr, path) = loopback_addr(url);
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    s.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    s.write_all(&bytes)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> io::Result<HttpResponse> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::UnexpectedEof, what.to_string());
    if raw.is_empty() {
        return Err(bad("the connection closed without a response"));
    }
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("the connection closed inside the response headers"))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad("no HTTP status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let rest = &raw[end + 4..];
    let body = if find("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest).ok_or_else(|| bad("truncated chunked body"))?
    } else if let Some(len) = find("Content-Length").and_then(|v| v.parse::<usize>().ok()) {
        if rest.len() < len {
            return Err(bad("the connection closed inside the body"));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let nl = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(&rest[..nl]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[nl + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A signed-looking SigV4 header: moto picks the service from its credential scope and checks
/// no signature.
pub fn fake_sigv4(service: &str, region: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/{service}/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date, Signature=0000"
    )
}

/// A raw AWS query-protocol call (form-encoded POST), as the SDK sends it.
pub fn query(
    url: &str,
    service: &str,
    version: &str,
    region: &str,
    action: &str,
    params: &[(&str, &str)],
) -> io::Result<HttpResponse> {
    let mut body = format!(
        "Action={}&Version={}",
        form_encode(action),
        form_encode(version)
    );
    for (k, v) in params {
        body.push_str(&format!("&{}={}", form_encode(k), form_encode(v)));
    }
    let auth = fake_sigv4(service, region);
    let target = format!("{}/", url.trim_end_matches('/'));
    http(
        "POST",
        &target,
        &[
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("X-Amz-Date", "20260101T000000Z"),
            ("Authorization", &auth),
        ],
        body.as_bytes(),
    )
}

/// A raw EC2 call in [`REGION`].
pub fn ec2(url: &str, action: &str, params: &[(&str, &str)]) -> io::Result<HttpResponse> {
    query(url, EC2, EC2_VERSION, REGION, action, params)
}

/// A raw ELBv2 call in [`REGION`].
pub fn elbv2(url: &str, action: &str, params: &[(&str, &str)]) -> io::Result<HttpResponse> {
    query(url, ELBV2, ELBV2_VERSION, REGION, action, params)
}

fn query_ok(
    url: &str,
    service: &str,
    version: &str,
    region: &str,
    action: &str,
    params: &[(&str, &str)],
) -> Value {
    let r = query(url, service, version, region, action, params)
        .unwrap_or_else(|e| panic!("{action} on {url}: {e}"));
    assert_eq!(
        r.status, 200,
        "{action} {params:?}: HTTP {}: {}",
        r.status, r.body
    );
    let mut v = r.xml();
    let root = format!("{action}Response");
    let mut content = v
        .get_mut(&root)
        .map(Value::take)
        .unwrap_or_else(|| panic!("{action}: no <{root}> in {}", r.body));
    // ELBv2 wraps its payload in <ActionResult>.
    match content.get_mut(format!("{action}Result")) {
        Some(result) => result.take(),
        None => content,
    }
}

/// An EC2 call that must succeed; its reply's content as JSON (see [`xml_to_json`]).
pub fn ec2_ok(url: &str, action: &str, params: &[(&str, &str)]) -> Value {
    query_ok(url, EC2, EC2_VERSION, REGION, action, params)
}

/// An ELBv2 call that must succeed; the content of its `<ActionResult>` as JSON.
pub fn elbv2_ok(url: &str, action: &str, params: &[(&str, &str)]) -> Value {
    query_ok(url, ELBV2, ELBV2_VERSION, REGION, action, params)
}

/// The `<Code>` of an AWS error body (EC2 `<Response><Errors><Error>` or ELBv2 `<ErrorResponse>`).
pub fn aws_error_code(body: &str) -> Option<String> {
    let start = body.find("<Code>")? + "<Code>".len();
    let end = body[start..].find("</Code>")? + start;
    Some(decode_entities(&body[start..end]))
}

// ---------------------------------------------------------------------------------------------
// XML → JSON (enough for AWS query-protocol replies)

#[derive(Debug, Default)]
struct XmlNode {
    name: String,
    children: Vec<XmlNode>,
    text: String,
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';') else { break };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn parse_xml(src: &str) -> Result<XmlNode, String> {
    fn skip_past<'a>(s: &'a str, end: &str) -> Result<&'a str, String> {
        s.find(end)
            .map(|i| &s[i + end.len()..])
            .ok_or_else(|| format!("unterminated markup, expected {end:?}"))
    }
    // The `>` that ends a tag, outside quoted attribute values.
    fn tag_end(s: &str) -> Result<usize, String> {
        let mut quote = None;
        for (i, c) in s.char_indices() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '>') => return Ok(i),
                _ => {}
            }
        }
        Err("unterminated tag".into())
    }
    fn local(name: &str) -> String {
        name.rsplit(':').next().unwrap_or(name).to_string()
    }

    let mut stack = vec![XmlNode::default()];
    let mut rest = src;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("<?") {
            rest = skip_past(after, "?>")?;
        } else if let Some(after) = rest.strip_prefix("<!--") {
            rest = skip_past(after, "-->")?;
        } else if let Some(after) = rest.strip_prefix("<![CDATA[") {
            let end = after.find("]]>").ok_or("unterminated CDATA")?;
            stack.last_mut().unwrap().text.push_str(&after[..end]);
            rest = &after[end + 3..];
        } else if let Some(after) = rest.strip_prefix("<!") {
            rest = skip_past(after, ">")?;
        } else if let Some(after) = rest.strip_prefix("</") {
            let end = after.find('>').ok_or("unterminated end tag")?;
            let name = local(after[..end].trim());
            if stack.len() < 2 {
                return Err(format!("stray </{name}>"));
            }
            let node = stack.pop().unwrap();
            if node.name != name {
                return Err(format!("</{name}> closes <{}>", node.name));
            }
            stack.last_mut().unwrap().children.push(node);
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix('<') {
            let end = tag_end(after)?;
            let inner = &after[..end];
            let (inner, empty) = match inner.strip_suffix('/') {
                Some(i) => (i, true),
                None => (inner, false),
            };
            let name = local(inner.split_whitespace().next().unwrap_or_default());
            let node = XmlNode {
                name,
                ..XmlNode::default()
            };
            if empty {
                stack.last_mut().unwrap().children.push(node);
            } else {
                stack.push(node);
            }
            rest = &after[end + 1..];
        } else {
            let end = rest.find('<').unwrap_or(rest.len());
            stack
                .last_mut()
                .unwrap()
                .text
                .push_str(&decode_entities(&rest[..end]));
            rest = &rest[end..];
        }
    }
    if stack.len() != 1 {
        return Err(format!("<{}> is not closed", stack.last().unwrap().name));
    }
    let mut doc = stack.pop().unwrap();
    match doc.children.len() {
        1 => Ok(doc.children.pop().unwrap()),
        n => Err(format!("{n} root elements")),
    }
}

fn node_to_json(n: &XmlNode) -> Value {
    if n.children.is_empty() {
        return Value::String(n.text.trim().to_string());
    }
    if n.children
        .iter()
        .all(|c| c.name == "item" || c.name == "member")
    {
        return Value::Array(n.children.iter().map(node_to_json).collect());
    }
    let mut map = Map::new();
    let mut repeated = BTreeSet::new();
    for c in &n.children {
        let v = node_to_json(c);
        match map.get_mut(&c.name) {
            None => {
                map.insert(c.name.clone(), v);
            }
            Some(Value::Array(a)) if repeated.contains(&c.name) => a.push(v),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, v]);
                repeated.insert(c.name.clone());
            }
        }
    }
    Value::Object(map)
}

/// An AWS XML reply as JSON: `{RootName: content}`. A leaf is its trimmed text (so an empty
/// list, `<tagSet/>`, is `""`); an element whose children are all `<item>` or `<member>` is an
/// array; other elements are objects (a repeated child name becomes an array). Attributes and
/// namespaces are dropped. Panics on malformed XML, showing it.
pub fn xml_to_json(xml: &str) -> Value {
    let root = parse_xml(xml).unwrap_or_else(|e| panic!("bad XML ({e}):\n{xml}"));
    json!({ root.name.clone(): node_to_json(&root) })
}

/// The elements of a list from [`xml_to_json`]: an array's items, nothing for `""`/null/absent.
pub fn items(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![v],
        _ => Vec::new(),
    }
}

/// A string field of an [`xml_to_json`] object ("" when absent).
pub fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// `<tagSet>` (EC2) or `Tags` (ELBv2) as a `{key: value}` object.
fn tag_map(list: &Value) -> Value {
    let mut tags = BTreeMap::new();
    for t in items(list) {
        let (k, v) = if t.get("key").is_some() {
            (text(t, "key"), text(t, "value"))
        } else {
            (text(t, "Key"), text(t, "Value"))
        };
        tags.insert(k.to_string(), Value::String(v.to_string()));
    }
    Value::Object(tags.into_iter().collect())
}

// ---------------------------------------------------------------------------------------------
// Inventory

fn ec2_all(url: &str, region: &str, action: &str, list: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut params: Vec<(&str, &str)> = Vec::new();
        if let Some(t) = &token {
            params.push(("NextToken", t));
        }
        let r = query_ok(url, EC2, EC2_VERSION, region, action, &params);
        out.extend(items(&r[list]).into_iter().cloned());
        match r.get("nextToken").and_then(Value::as_str) {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return out,
        }
    }
}

fn elbv2_all(
    url: &str,
    region: &str,
    action: &str,
    params: &[(&str, &str)],
    list: &str,
) -> Vec<Value> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut p = params.to_vec();
        if let Some(m) = &marker {
            p.push(("Marker", m));
        }
        let r = query_ok(url, ELBV2, ELBV2_VERSION, region, action, &p);
        out.extend(items(&r[list]).into_iter().cloned());
        match r.get("NextMarker").and_then(Value::as_str) {
            Some(m) if !m.is_empty() => marker = Some(m.to_string()),
            _ => return out,
        }
    }
}

fn elbv2_tags(url: &str, region: &str, arns: &[String]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for chunk in arns.chunks(20) {
        let keys: Vec<String> = (1..=chunk.len())
            .map(|i| format!("ResourceArns.member.{i}"))
            .collect();
        let params: Vec<(&str, &str)> = keys
            .iter()
            .map(String::as_str)
            .zip(chunk.iter().map(String::as_str))
            .collect();
        let r = query_ok(url, ELBV2, ELBV2_VERSION, region, "DescribeTags", &params);
        for d in items(&r["TagDescriptions"]) {
            out.insert(text(d, "ResourceArn").to_string(), tag_map(&d["Tags"]));
        }
    }
    out
}

fn sorted_strings<'a>(it: impl Iterator<Item = &'a str>) -> Value {
    let set: BTreeSet<&str> = it.filter(|s| !s.is_empty()).collect();
    Value::Array(set.into_iter().map(|s| Value::String(s.into())).collect())
}

/// The `key` field of each element of a list, sorted.
fn field_list(list: &Value, key: &str) -> Value {
    sorted_strings(items(list).into_iter().map(|x| text(x, key)))
}

/// A list of strings, sorted.
fn string_list(list: &Value) -> Value {
    sorted_strings(items(list).into_iter().filter_map(Value::as_str))
}

fn listeners_of(url: &str, region: &str, lb_arn: &str) -> Vec<Value> {
    let params = [("LoadBalancerArn", lb_arn)];
    elbv2_all(url, region, "DescribeListeners", &params, "Listeners")
        .iter()
        .map(|li| {
            let mut groups = Vec::new();
            for a in items(&li["DefaultActions"]) {
                groups.push(text(a, "TargetGroupArn"));
                for t in items(&a["ForwardConfig"]["TargetGroups"]) {
                    groups.push(text(t, "TargetGroupArn"));
                }
            }
            json!({
                "arn": text(li, "ListenerArn"),
                "load_balancer": lb_arn,
                "protocol": text(li, "Protocol"),
                "port": text(li, "Port"),
                "target_groups": sorted_strings(groups.into_iter()),
            })
        })
        .collect()
}

fn sorted_by(mut v: Vec<Value>, key: &str) -> Value {
    v.sort_by(|a, b| text(a, key).cmp(text(b, key)));
    Value::Array(v)
}

/// The kinds in an [`inventory`], each a list of objects identified by this key.
pub const INVENTORY_KINDS: &[(&str, &str)] = &[
    ("instances", "id"),
    ("security_groups", "id"),
    ("key_pairs", "name"),
    ("volumes", "id"),
    ("addresses", "public_ip"),
    ("vpcs", "id"),
    ("subnets", "id"),
    ("internet_gateways", "id"),
    ("load_balancers", "arn"),
    ("target_groups", "arn"),
    ("listeners", "arn"),
];

/// Every kind of resource the tool creates, in [`REGION`], read with plain Describe* calls
/// (never DescribeTags on EC2: moto keeps the tags of deleted resources):
///
/// * `instances`: not terminated (`{id, state, type, image, key, subnet, private_ip,
///   security_groups, tags}`);
/// * `security_groups`: all but the VPCs' `default` groups (`{id, name, vpc, tags}`);
/// * `key_pairs` (`{name, id, fingerprint, tags}`), `volumes` (`{id, size, type, state,
///   attached_to, tags}`), `addresses` (Elastic IPs: `{public_ip, allocation_id, instance, tags}`);
/// * `vpcs`, `subnets`: all but the default ones; `internet_gateways`: all;
/// * `load_balancers` (`{arn, name, type, scheme, state, dns, security_groups, tags}`),
///   `target_groups` (`{arn, name, protocol, port, target_type, load_balancers, targets:
///   ["i-…:port"], tags}`), `listeners` (`{arn, load_balancer, protocol, port, target_groups}`).
///
/// Each list is sorted by its key in [`INVENTORY_KINDS`]. Read moto directly (not through a
/// [`Proxy`]), or the reads show up in the proxy's stats.
pub fn inventory(url: &str) -> Value {
    inventory_in(url, REGION)
}

/// [`inventory`] in another region.
pub fn inventory_in(url: &str, region: &str) -> Value {
    let mut instances = Vec::new();
    for r in ec2_all(url, region, "DescribeInstances", "reservationSet") {
        for i in items(&r["instancesSet"]) {
            let state = text(&i["instanceState"], "name");
            if state == "terminated" {
                continue;
            }
            instances.push(json!({
                "id": text(i, "instanceId"),
                "state": state,
                "type": text(i, "instanceType"),
                "image": text(i, "imageId"),
                "key": text(i, "keyName"),
                "subnet": text(i, "subnetId"),
                "private_ip": text(i, "privateIpAddress"),
                "security_groups": field_list(&i["groupSet"], "groupId"),
                "tags": tag_map(&i["tagSet"]),
            }));
        }
    }

    let security_groups: Vec<Value> =
        ec2_all(url, region, "DescribeSecurityGroups", "securityGroupInfo")
            .iter()
            .filter(|g| text(g, "groupName") != "default")
            .map(|g| {
                json!({
                    "id": text(g, "groupId"),
                    "name": text(g, "groupName"),
                    "vpc": text(g, "vpcId"),
                    "tags": tag_map(&g["tagSet"]),
                })
            })
            .collect();

    let key_pairs: Vec<Value> = ec2_all(url, region, "DescribeKeyPairs", "keySet")
        .iter()
        .map(|k| {
            json!({
                "name": text(k, "keyName"),
                "id": text(k, "keyPairId"),
                "fingerprint": text(k, "keyFingerprint"),
                "tags": tag_map(&k["tagSet"]),
            })
        })
        .collect();

    let volumes: Vec<Value> = ec2_all(url, region, "DescribeVolumes", "volumeSet")
        .iter()
        .map(|v| {
            json!({
                "id": text(v, "volumeId"),
                "size": text(v, "size"),
                "type": text(v, "volumeType"),
                "state": text(v, "status"),
                "attached_to": field_list(&v["attachmentSet"], "instanceId"),
                "tags": tag_map(&v["tagSet"]),
            })
        })
        .collect();

    let addresses: Vec<Value> = ec2_all(url, region, "DescribeAddresses", "addressesSet")
        .iter()
        .map(|a| {
            json!({
                "public_ip": text(a, "publicIp"),
                "allocation_id": text(a, "allocationId"),
                "instance": text(a, "instanceId"),
                "tags": tag_map(&a["tagSet"]),
            })
        })
        .collect();

    let vpcs: Vec<Value> = ec2_all(url, region, "DescribeVpcs", "vpcSet")
        .iter()
        .filter(|v| text(v, "isDefault") != "true")
        .map(|v| {
            json!({
                "id": text(v, "vpcId"),
                "cidr": text(v, "cidrBlock"),
                "tags": tag_map(&v["tagSet"]),
            })
        })
        .collect();

    let subnets: Vec<Value> = ec2_all(url, region, "DescribeSubnets", "subnetSet")
        .iter()
        .filter(|s| text(s, "defaultForAz") != "true")
        .map(|s| {
            json!({
                "id": text(s, "subnetId"),
                "vpc": text(s, "vpcId"),
                "cidr": text(s, "cidrBlock"),
                "az": text(s, "availabilityZone"),
                "tags": tag_map(&s["tagSet"]),
            })
        })
        .collect();

    let internet_gateways: Vec<Value> = ec2_all(
        url,
        region,
        "DescribeInternetGateways",
        "internetGatewaySet",
    )
    .iter()
    .map(|g| {
        json!({
            "id": text(g, "internetGatewayId"),
            "attached_to": field_list(&g["attachmentSet"], "vpcId"),
            "tags": tag_map(&g["tagSet"]),
        })
    })
    .collect();

    let lbs = elbv2_all(url, region, "DescribeLoadBalancers", &[], "LoadBalancers");
    let tgs = elbv2_all(url, region, "DescribeTargetGroups", &[], "TargetGroups");
    let arns: Vec<String> = lbs
        .iter()
        .map(|l| text(l, "LoadBalancerArn"))
        .chain(tgs.iter().map(|t| text(t, "TargetGroupArn")))
        .map(String::from)
        .collect();
    let tags = elbv2_tags(url, region, &arns);
    let tags_of = |arn: &str| tags.get(arn).cloned().unwrap_or_else(|| json!({}));

    let mut listeners = Vec::new();
    let load_balancers: Vec<Value> = lbs
        .iter()
        .map(|l| {
            let arn = text(l, "LoadBalancerArn");
            listeners.extend(listeners_of(url, region, arn));
            json!({
                "arn": arn,
                "name": text(l, "LoadBalancerName"),
                "type": text(l, "Type"),
                "scheme": text(l, "Scheme"),
                "state": text(&l["State"], "Code"),
                "dns": text(l, "DNSName"),
                "security_groups": string_list(&l["SecurityGroups"]),
                "tags": tags_of(arn),
            })
        })
        .collect();

    let target_groups: Vec<Value> = tgs
        .iter()
        .map(|t| {
            let arn = text(t, "TargetGroupArn");
            let health = query_ok(
                url,
                ELBV2,
                ELBV2_VERSION,
                region,
                "DescribeTargetHealth",
                &[("TargetGroupArn", arn)],
            );
            let targets: Vec<String> = items(&health["TargetHealthDescriptions"])
                .into_iter()
                .map(|d| {
                    format!(
                        "{}:{}",
                        text(&d["Target"], "Id"),
                        text(&d["Target"], "Port")
                    )
                })
                .collect();
            json!({
                "arn": arn,
                "name": text(t, "TargetGroupName"),
                "protocol": text(t, "Protocol"),
                "port": text(t, "Port"),
                "target_type": text(t, "TargetType"),
                "load_balancers": string_list(&t["LoadBalancerArns"]),
                "targets": sorted_strings(targets.iter().map(String::as_str)),
                "tags": tags_of(arn),
            })
        })
        .collect();

    json!({
        "instances": sorted_by(instances, "id"),
        "security_groups": sorted_by(security_groups, "id"),
        "key_pairs": sorted_by(key_pairs, "name"),
        "volumes": sorted_by(volumes, "id"),
        "addresses": sorted_by(addresses, "public_ip"),
        "vpcs": sorted_by(vpcs, "id"),
        "subnets": sorted_by(subnets, "id"),
        "internet_gateways": sorted_by(internet_gateways, "id"),
        "load_balancers": sorted_by(load_balancers, "arn"),
        "target_groups": sorted_by(target_groups, "arn"),
        "listeners": sorted_by(listeners, "arn"),
    })
}

/// How many resources an [`inventory`] lists.
pub fn inventory_len(inv: &Value) -> usize {
    INVENTORY_KINDS
        .iter()
        .map(|(kind, _)| items(&inv[*kind]).len())
        .sum()
}

/// What changed between two [`inventory`]s, by identity: `{"added": {kind: [..]}, "removed":
/// {kind: [..]}}`, listing only kinds with a difference. Both empty: nothing was left behind
/// (or created).
pub fn inventory_diff(before: &Value, after: &Value) -> Value {
    let mut added = Map::new();
    let mut removed = Map::new();
    for (kind, key) in INVENTORY_KINDS {
        let ids = |inv: &Value| -> BTreeSet<String> {
            items(&inv[*kind])
                .into_iter()
                .map(|r| text(r, key).to_string())
                .collect()
        };
        let (b, a) = (ids(before), ids(after));
        let pick = |inv: &Value, set: &BTreeSet<String>| -> Vec<Value> {
            items(&inv[*kind])
                .into_iter()
                .filter(|r| set.contains(text(r, key)))
                .cloned()
                .collect()
        };
        let new: BTreeSet<String> = a.difference(&b).cloned().collect();
        let gone: BTreeSet<String> = b.difference(&a).cloned().collect();
        if !new.is_empty() {
            added.insert(kind.to_string(), Value::Array(pick(after, &new)));
        }
        if !gone.is_empty() {
            removed.insert(kind.to_string(), Value::Array(pick(before, &gone)));
        }
    }
    json!({"added": added, "removed": removed})
}
