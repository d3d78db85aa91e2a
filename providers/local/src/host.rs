//! One lab host (`lab_host[<name>]`): a network namespace joined to the bridge by a veth pair,
//! the guide's firewall inside it, and an sshd in its own UTS and mount namespace that sees the
//! host's private files (see [`crate::node`]). Converging is idempotent: what exists and works
//! is kept (same sshd, same host key), what is missing or broken is made again.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use acura_ha_api::provider::ProviderError;
use tokio::io::AsyncReadExt;

use crate::cmd::{self, cloud};
use crate::names::{HostNames, LabNames};
use crate::network::link_exists;
use crate::preflight::{IP, NFT, SSHD, UNSHARE};
use crate::{files, keys, lineage, node, process};

/// How long a started sshd gets to answer on port 22.
const SSH_READY: Duration = Duration::from_secs(15);

/// What the host-wide pieces of a host are made from.
pub struct HostInputs<'a> {
    pub lab: &'a LabNames,
    /// The deploy side's public key line.
    pub client_key: &'a str,
    /// `/etc/hosts` of every host.
    pub hosts_file: &'a str,
    pub resolv_conf: &'a str,
    /// This host's nftables ruleset.
    pub firewall: String,
    /// The login user when it is not root: it gets its home on the host.
    pub login: Option<&'a node::LoginUser>,
}

/// A converged host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostUp {
    pub sshd_pid: i32,
    /// `ssh-ed25519 AAAA…`.
    pub host_key: String,
}

fn namespace_exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

/// The PID of the host's sshd, if one runs in its namespace from the pid file.
pub fn sshd_running(h: &HostNames) -> Option<i32> {
    let pid = process::read_pid_file(&h.sshd_pid_file)?;
    let ok = process::alive(pid)
        && process::in_namespace(pid, &h.namespace)
        && process::exe(pid).is_some_and(|e| e == Path::new(SSHD));
    ok.then_some(pid)
}

async fn eth0_exists(resource: &str, h: &HostNames) -> Result<bool, ProviderError> {
    let out = cmd::probe(
        resource,
        IP,
        ["-n", &h.namespace, "link", "show", "dev", "eth0"],
        cmd::DEFAULT_TIMEOUT,
    )
    .await?;
    Ok(out.success())
}

/// Whether the host exists and runs as it should: its namespace, both ends of its veth and its
/// sshd. (Files and firewall are rewritten on every run anyway.)
pub async fn healthy(h: &HostNames) -> Result<bool, ProviderError> {
    Ok(namespace_exists(&h.namespace)
        && link_exists(&h.veth)
        && eth0_exists(&h.resource, h).await?
        && sshd_running(h).is_some())
}

/// Writes the host's directory. Returns the host's public key and whether sshd must be
/// (re)started to see a change.
async fn write_files(h: &HostNames, inp: &HostInputs<'_>) -> Result<(String, bool), ProviderError> {
    let r = &h.resource;
    files::dir(r, &inp.lab.hosts_dir, 0o700)?;
    files::dir(r, &h.dir, 0o700)?;
    let etc_ssh = h.etc_ssh();
    files::dir(r, &etc_ssh, 0o755)?;
    // The client side's defaults for sessions on the host; never the machine's host keys.
    for f in ["ssh_config", "moduli"] {
        let (src, dst) = (Path::new("/etc/ssh").join(f), etc_ssh.join(f));
        if src.exists() && !dst.exists() {
            std::fs::copy(&src, &dst)
                .map_err(|e| cloud(r, format!("cannot copy {}: {e}", src.display())))?;
        }
    }
    files::dir(r, &etc_ssh.join("ssh_config.d"), 0o755)?;
    let (host_key, new_key) =
        keys::ensure_host_key(r, &h.hosts_dir, &h.host_key(), &h.name).await?;
    let new_config =
        files::write_if_changed(r, &h.sshd_config(), &node::sshd_config(h.address), 0o644)?;
    // sshd reads it as the user logging in: world-readable (a public key only), so a lab host
    // admits non-root users too.
    files::write_if_changed(
        r,
        &h.authorized_keys(),
        &format!("{}\n", inp.client_key),
        0o644,
    )?;
    files::write_if_changed(r, &h.dir.join("hosts"), inp.hosts_file, 0o644)?;
    files::write_if_changed(r, &h.dir.join("resolv.conf"), inp.resolv_conf, 0o644)?;
    files::write_if_changed(r, &h.firewall(), &inp.firewall, 0o600)?;
    let home = h.dir.join("root");
    files::dir(r, &home, 0o700)?;
    files::touch(r, &home.join(".bashrc"), 0o644)?;
    files::dir(r, &h.dir.join("home"), 0o755)?;
    if let Some(user) = inp.login
        && let Some(home) = user.home_in(&h.dir)
    {
        files::dir(r, &home, 0o700)?;
        std::os::unix::fs::chown(&home, Some(user.uid), Some(user.gid)).map_err(|e| {
            cloud(
                r,
                format!("cannot give {} to {}: {e}", home.display(), user.name),
            )
        })?;
    }
    // sshd's privilege separation directory must be root's and not writable by others.
    files::dir(r, &h.run_dir(), 0o755)?;
    files::dir(r, &h.run_dir().join("sshd"), 0o755)?;
    files::dir(r, &h.dir.join("log-nginx"), 0o755)?;
    let nginx = h.dir.join("etc-nginx");
    if !nginx.join("nginx.conf").exists() {
        // Kept across runs once complete: the bootstrap writes the host's NGINX config there.
        files::remove_tree(r, &h.hosts_dir, &nginx)?;
        let mut args: Vec<std::ffi::OsString> = vec!["-a".into(), "/etc/nginx".into()];
        args.push(nginx.into_os_string());
        cmd::run(r, "/usr/bin/cp", &args).await?;
    }
    Ok((host_key, new_key || new_config))
}

/// The namespace and the veth pair, with the host's address; made again if half there.
async fn plumb(h: &HostNames, lab: &LabNames) -> Result<(), ProviderError> {
    let r = &h.resource;
    if !namespace_exists(&h.namespace) {
        cmd::run(r, IP, ["netns", "add", &h.namespace]).await?;
    }
    let pair_ok = link_exists(&h.veth) && eth0_exists(r, h).await?;
    if !pair_ok {
        if link_exists(&h.veth) {
            cmd::run(r, IP, ["link", "del", "dev", &h.veth]).await?;
        }
        if eth0_exists(r, h).await? {
            cmd::run(r, IP, ["-n", &h.namespace, "link", "del", "dev", "eth0"]).await?;
        }
        cmd::run(
            r,
            IP,
            [
                "link",
                "add",
                "name",
                &h.veth,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "address",
                &h.mac,
                "netns",
                &h.namespace,
            ],
        )
        .await?;
    }
    // Both ends carry the state's lineage: the root side for the bridge's ports, `eth0` for
    // the namespace, which has no alias of its own (see [`crate::lineage`]).
    if let Some(alias) = &lab.alias {
        lineage::write(r, None, &h.veth, alias).await?;
        lineage::write(r, Some(&h.namespace), "eth0", alias).await?;
    }
    cmd::run(
        r,
        IP,
        ["link", "set", "dev", &h.veth, "master", &lab.bridge, "up"],
    )
    .await?;
    let cidr = format!("{}/{}", h.address, lab.subnet.prefix_len());
    let ns = h.namespace.as_str();
    cmd::run(r, IP, ["-n", ns, "addr", "replace", &cidr, "dev", "eth0"]).await?;
    cmd::run(r, IP, ["-n", ns, "link", "set", "dev", "eth0", "up"]).await?;
    cmd::run(r, IP, ["-n", ns, "link", "set", "dev", "lo", "up"]).await?;
    Ok(())
}

/// Loads the host's ruleset into its namespace (atomic replace of the lab's table).
async fn load_firewall(h: &HostNames) -> Result<(), ProviderError> {
    let mut args: Vec<std::ffi::OsString> =
        vec!["netns".into(), "exec".into(), h.namespace.clone().into()];
    args.extend([NFT.into(), "-f".into(), h.firewall().into_os_string()]);
    cmd::run(&h.resource, IP, &args).await.map(|_| ())
}

/// Starts sshd in the host's namespace, UTS and mount namespace; waits for its pid file.
async fn start_sshd(h: &HostNames, lab: &LabNames) -> Result<i32, ProviderError> {
    let r = &h.resource;
    files::remove_file(r, &h.hosts_dir, &h.sshd_pid_file)?;
    let mut args: Vec<std::ffi::OsString> = vec![
        "netns".into(),
        "exec".into(),
        h.namespace.clone().into(),
        UNSHARE.into(),
    ];
    args.extend(node::launch_args(h, &lab.cluster_dir));
    cmd::run(r, IP, &args).await?;
    let deadline = Instant::now() + SSH_READY;
    loop {
        if let Some(pid) = sshd_running(h) {
            return Ok(pid);
        }
        if Instant::now() >= deadline {
            return Err(cloud(
                r,
                format!(
                    "sshd started but wrote no pid file to {} within {} s",
                    h.sshd_pid_file.display(),
                    SSH_READY.as_secs()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until port 22 of the host answers with an SSH banner, from this (the root) namespace.
pub async fn wait_ssh(resource: &str, address: Ipv4Addr) -> Result<(), ProviderError> {
    let deadline = Instant::now() + SSH_READY;
    let mut last = String::new();
    while Instant::now() < deadline {
        match banner(address).await {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(cloud(
        resource,
        format!(
            "sshd does not answer on {address}:22 within {} s ({last})",
            SSH_READY.as_secs()
        ),
    ))
}

async fn banner(address: Ipv4Addr) -> Result<(), String> {
    let step = Duration::from_secs(2);
    let mut s = tokio::time::timeout(step, tokio::net::TcpStream::connect((address, 22)))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4];
    tokio::time::timeout(step, s.read_exact(&mut buf))
        .await
        .map_err(|_| "no banner".to_string())?
        .map_err(|e| e.to_string())?;
    if &buf == b"SSH-" {
        Ok(())
    } else {
        Err("not an SSH banner".into())
    }
}

/// Makes the host exist and answer SSH. The firewall is loaded before sshd starts, so the
/// host is never reachable unfiltered.
pub async fn up(h: &HostNames, inp: &HostInputs<'_>) -> Result<HostUp, ProviderError> {
    let (host_key, restart) = write_files(h, inp).await?;
    plumb(h, inp.lab).await?;
    load_firewall(h).await?;
    let sshd_pid = match sshd_running(h) {
        Some(pid) if !restart => pid,
        running => {
            if let Some(old) = running {
                stop(&h.resource, &[old]).await?;
            }
            start_sshd(h, inp.lab).await?
        }
    };
    wait_ssh(&h.resource, h.address).await?;
    Ok(HostUp { sshd_pid, host_key })
}

async fn stop(resource: &str, pids: &[i32]) -> Result<(), ProviderError> {
    let left = process::stop_all(pids).await;
    if left.is_empty() {
        Ok(())
    } else {
        Err(cloud(
            resource,
            format!("processes {left:?} did not exit after SIGKILL"),
        ))
    }
}

/// Stops everything in the host's namespace (sshd, and whatever the bootstrap started there,
/// such as NGINX), deletes the namespace and its veth, and removes the host's directory.
/// Whatever is already gone counts as done.
pub async fn down(h: &HostNames) -> Result<(), ProviderError> {
    let r = &h.resource;
    if namespace_exists(&h.namespace) {
        let mut pids: Vec<i32> = sshd_running(h).into_iter().collect();
        let out = cmd::run(r, IP, ["netns", "pids", &h.namespace]).await?;
        for pid in out
            .stdout
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            if pid > 1 && !pids.contains(&pid) {
                pids.push(pid);
            }
        }
        stop(r, &pids).await?;
        let out = cmd::probe(r, IP, ["netns", "del", &h.namespace], cmd::DEFAULT_TIMEOUT).await?;
        if !out.success() && namespace_exists(&h.namespace) {
            return Err(out.error(r));
        }
    }
    // The kernel destroys a namespace's interfaces asynchronously: make sure the root side of
    // the pair is gone before the bridge goes.
    if link_exists(&h.veth) {
        let out = cmd::probe(r, IP, ["link", "del", "dev", &h.veth], cmd::DEFAULT_TIMEOUT).await?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while link_exists(&h.veth) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if link_exists(&h.veth) {
            return Err(out.error(r));
        }
    }
    files::remove_tree(r, &h.hosts_dir, &h.dir)
}
