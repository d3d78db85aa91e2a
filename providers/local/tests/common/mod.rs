//! Shared parts of the local target's tests: a cluster spec per test (own name, own subnet, so
//! tests run in parallel with each other and with other test binaries), an in-memory journal,
//! a guard that destroys the lab even when the test panics, and checks that nothing is left.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use acura_ha_api::model::Recorded;
use acura_ha_api::provider::{Journal, Provider, ProviderError};
use acura_ha_api::spec::ClusterSpec;
use acura_ha_local::{LabNames, LocalProvider};

/// Tools the tests drive; a missing one fails the test (never skips) and says how to install.
pub const TOOLS: &[&str] = &[
    "/usr/sbin/ip",
    "/usr/sbin/nft",
    "/usr/sbin/dnsmasq",
    "/usr/sbin/sshd",
    "/usr/bin/ssh",
    "/usr/bin/ssh-keygen",
    "/usr/bin/dig",
    "/usr/bin/python3",
    "/etc/nginx",
];

pub fn require_tools() {
    let missing: Vec<&str> = TOOLS
        .iter()
        .copied()
        .filter(|t| !Path::new(t).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "missing {missing:?}: install the test components with `sudo scripts/setup-test-deps.sh`"
    );
    assert_eq!(
        acura_ha_local::current_euid(),
        0,
        "the local target's tests create namespaces: run them as root (sudo scripts/test.sh)"
    );
}

/// A `[local]` cluster of `nodes` nodes plus the NGINX host on `subnet` (`10.213.6x.0/24`).
pub fn spec(name: &str, subnet: &str, nodes: u32, user_key: Option<&Path>) -> ClusterSpec {
    let net: ipnet::Ipv4Net = subnet.parse().expect("subnet");
    let gw = Ipv4Addr::from(u32::from(net.network()) + 1);
    let mut access = serde_json::json!({
        "admin_cidrs": [format!("{gw}/32")],
        "public_cidrs": [subnet],
        "ssh_user": "root",
    });
    if let Some(k) = user_key {
        access["ssh_private_key"] = k.display().to_string().into();
    }
    let spec: ClusterSpec = serde_json::from_value(serde_json::json!({
        "cluster": { "name": name },
        "nodes": { "count": nodes },
        "load_balancer": { "kind": "nginx" },
        "access": access,
        "local": { "subnet": subnet },
    }))
    .expect("a valid spec");
    let problems = spec.validate();
    assert!(problems.is_empty(), "{problems:?}");
    spec
}

/// The journal the engine would be: records by address, in order.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MemJournal {
    pub records: Vec<Recorded>,
    /// Fails every `record` call after this many (a crash of the engine mid-provision).
    pub fail_after: Option<usize>,
    pub calls: usize,
    /// Every status recorded per address, in order (write-ahead checks).
    pub history: Vec<(String, acura_ha_api::model::Status)>,
}

impl Journal for MemJournal {
    fn record(&mut self, resource: Recorded) -> Result<(), ProviderError> {
        self.calls += 1;
        if self.fail_after.is_some_and(|n| self.calls > n) {
            return Err(ProviderError::Journal("simulated crash".into()));
        }
        self.history
            .push((resource.address.clone(), resource.status));
        match self
            .records
            .iter_mut()
            .find(|r| r.address == resource.address)
        {
            Some(r) => *r = resource,
            None => self.records.push(resource),
        }
        Ok(())
    }
    fn forget(&mut self, address: &str) -> Result<(), ProviderError> {
        self.records.retain(|r| r.address != address);
        Ok(())
    }
    fn get(&self, address: &str) -> Option<&Recorded> {
        self.records.iter().find(|r| r.address == address)
    }
    fn all(&self) -> Vec<Recorded> {
        self.records.clone()
    }
}

impl MemJournal {
    pub fn output(&self, address: &str, key: &str) -> String {
        self.get(address)
            .and_then(|r| r.outputs.get(key).cloned())
            .unwrap_or_else(|| panic!("{address} has no output {key}: {:#?}", self.records))
    }
}

/// A provisioned (or about to be) lab that is destroyed when dropped, even on panic.
pub struct Lab {
    pub provider: LocalProvider,
    pub spec: ClusterSpec,
    pub dir: tempfile::TempDir,
}

impl Lab {
    pub fn new(name: &str, subnet: &str, nodes: u32) -> Lab {
        require_tools();
        let dir = tempfile::tempdir().expect("tempdir");
        let cluster_dir = dir.path().join(name);
        let key = cluster_dir.join("id_ed25519");
        Lab {
            provider: LocalProvider::new(cluster_dir, key),
            spec: spec(name, subnet, nodes, None),
            dir,
        }
    }

    pub fn cluster_dir(&self) -> PathBuf {
        self.provider.cluster_dir().to_path_buf()
    }

    pub fn names(&self) -> LabNames {
        self.provider.names(&self.spec)
    }

    pub async fn provision(&self, journal: &mut MemJournal) {
        if let Err(e) = self.provider.provision(&self.spec, journal).await {
            panic!("provision failed: {e}");
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Drop may run inside the test's runtime: destroy on a thread with its own.
        let provider = self.provider.clone();
        let spec = self.spec.clone();
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async { provider.destroy(&spec, &mut MemJournal::default()).await })
        })
        .join();
        if let Ok(Err(e)) = done {
            eprintln!("lab guard: destroy failed: {e}");
        }
    }
}

/// Runs a command and returns (exit code, stdout, stderr).
pub async fn sh(program: &str, args: &[&str]) -> (i32, String, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{program} {args:?} timed out"))
    .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `ssh root@<address> <command>` with the lab's key and pinned known_hosts only.
pub async fn ssh(lab: &Lab, address: &str, command: &str) -> (i32, String, String) {
    let key = lab.provider.key_file().display().to_string();
    let kh = format!(
        "UserKnownHostsFile={}",
        lab.cluster_dir().join("known_hosts").display()
    );
    sh(
        "/usr/bin/ssh",
        &[
            "-F",
            "/dev/null",
            "-i",
            &key,
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            &kh,
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            &format!("root@{address}"),
            command,
        ],
    )
    .await
}

/// Whether a process runs (zombies do not count).
pub fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s
                .rfind(')')
                .and_then(|i| s[i + 1..].split_whitespace().next())
                .unwrap_or("X");
            !matches!(state, "Z" | "X")
        })
        .unwrap_or(false)
}

/// Every regular file and symlink under `dir`.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Nothing of the lab is left: namespaces, bridge, veths, safety route, daemons, files.
pub async fn assert_nothing_left(names: &LabNames, pids: &[i32]) {
    let (_, netns, _) = sh("/usr/sbin/ip", &["netns", "list"]).await;
    for h in &names.hosts {
        assert!(
            !netns
                .lines()
                .any(|l| l.split_whitespace().next() == Some(&h.namespace)),
            "namespace {} left: {netns}",
            h.namespace
        );
    }
    let (_, links, _) = sh("/usr/sbin/ip", &["-o", "link"]).await;
    assert!(
        !links.contains(&names.bridge),
        "bridge or veth left: {links}"
    );
    let subnet = names.subnet.to_string();
    let (_, routes, _) = sh("/usr/sbin/ip", &["route", "show", "table", "all"]).await;
    assert!(
        !routes.contains(&subnet),
        "route for {subnet} left: {routes}"
    );
    for &pid in pids {
        assert!(!running(pid), "process {pid} still runs");
    }
    let left = files_under(&names.cluster_dir);
    assert!(left.is_empty(), "files left: {left:?}");
}

/// The PIDs the journal recorded (every sshd and the resolver).
pub fn recorded_pids(j: &MemJournal) -> Vec<i32> {
    j.records
        .iter()
        .flat_map(|r| {
            ["sshd_pid", "resolver_pid"]
                .iter()
                .filter_map(|k| r.outputs.get(*k).and_then(|p| p.parse().ok()))
                .collect::<Vec<i32>>()
        })
        .collect()
}

pub fn by_address(j: &MemJournal) -> BTreeMap<String, Recorded> {
    j.records
        .iter()
        .map(|r| (r.address.clone(), r.clone()))
        .collect()
}
