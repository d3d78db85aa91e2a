//! The lab network (`lab_network`): the safety route, the bridge and the lab resolver.
//!
//! Order matters for safety. The route `unreachable <subnet> metric 4000` goes in before the
//! bridge and comes out after it: while the bridge exists its connected route (metric 0) wins;
//! before and after, a packet for a lab address is rejected here instead of following the
//! default route off the machine. The resolver (dnsmasq) answers the lab's names from a hosts
//! file and NXDOMAIN for everything else (`--no-resolv --local=/#/`): no lookup ever leaves.

use std::path::Path;
use std::time::{Duration, Instant};

use acura_ha_api::provider::ProviderError;
use rustix::process::Signal;

use crate::cmd::{self, cloud};
use crate::files;
use crate::names::{LabNames, safety_route};
use crate::preflight::{DNSMASQ, IP};
use crate::process;
use ipnet::Ipv4Net;

/// Whether the safety route of `subnet` is in the main table.
pub async fn safety_route_present(resource: &str, subnet: Ipv4Net) -> Result<bool, ProviderError> {
    let net = subnet.trunc().to_string();
    let out = cmd::run(
        resource,
        IP,
        ["-4", "route", "show", "table", "main", "exact", &net],
    )
    .await?;
    let want = safety_route(subnet).join(" ");
    Ok(out.stdout.lines().any(|l| l.trim() == want))
}

/// `ip route replace unreachable <subnet> metric 4000` (idempotent).
pub async fn safety_route_up(resource: &str, subnet: Ipv4Net) -> Result<(), ProviderError> {
    let mut args = vec!["route".to_string(), "replace".to_string()];
    args.extend(safety_route(subnet));
    cmd::run(resource, IP, &args).await.map(|_| ())
}

/// Removes the safety route of `subnet`; one that is already gone is fine.
pub async fn safety_route_down(resource: &str, subnet: Ipv4Net) -> Result<(), ProviderError> {
    let mut args = vec!["route".to_string(), "del".to_string()];
    args.extend(safety_route(subnet));
    let out = cmd::probe(resource, IP, &args, cmd::DEFAULT_TIMEOUT).await?;
    if out.success() || !safety_route_present(resource, subnet).await? {
        Ok(())
    } else {
        Err(out.error(resource))
    }
}

/// Whether an interface of that name exists in this namespace.
pub fn link_exists(name: &str) -> bool {
    !name.is_empty() && Path::new("/sys/class/net").join(name).exists()
}

fn is_bridge(name: &str) -> bool {
    Path::new("/sys/class/net")
        .join(name)
        .join("bridge")
        .exists()
}

/// The bridge with the gateway address, up. Returns whether it had to be created.
pub async fn bridge_up(resource: &str, n: &LabNames) -> Result<bool, ProviderError> {
    let created = if link_exists(&n.bridge) {
        if !is_bridge(&n.bridge) {
            return Err(cloud(
                resource,
                format!(
                    "interface {} exists but is not a bridge: it is not the lab's; rename or \
                     remove it",
                    n.bridge
                ),
            ));
        }
        false
    } else {
        cmd::run(
            resource,
            IP,
            [
                "link",
                "add",
                "name",
                &n.bridge,
                "address",
                &n.bridge_mac,
                "type",
                "bridge",
            ],
        )
        .await?;
        true
    };
    // A bridge otherwise takes the lowest MAC of its ports, which changes with them.
    cmd::run(
        resource,
        IP,
        ["link", "set", "dev", &n.bridge, "address", &n.bridge_mac],
    )
    .await?;
    let cidr = format!("{}/{}", n.gateway, n.subnet.prefix_len());
    cmd::run(resource, IP, ["addr", "replace", &cidr, "dev", &n.bridge]).await?;
    cmd::run(resource, IP, ["link", "set", "dev", &n.bridge, "up"]).await?;
    Ok(created)
}

/// Deletes the bridge; a missing one is fine.
pub async fn bridge_down(resource: &str, n: &LabNames) -> Result<(), ProviderError> {
    if !link_exists(&n.bridge) {
        return Ok(());
    }
    let out = cmd::probe(
        resource,
        IP,
        ["link", "del", "dev", &n.bridge],
        cmd::DEFAULT_TIMEOUT,
    )
    .await?;
    if out.success() || !link_exists(&n.bridge) {
        Ok(())
    } else {
        Err(out.error(resource))
    }
}

/// The resolver's arguments. It runs as root (`--user=root`) because dnsmasq reads its hosts
/// files after dropping privileges and the file sits in the 0700 cluster directory; it listens
/// on the lab bridge's address only, and the lab hosts are root on this machine anyway.
pub fn resolver_args(n: &LabNames) -> Vec<String> {
    vec![
        "--conf-file=/dev/null".into(),
        "--no-resolv".into(),
        "--no-hosts".into(),
        format!("--addn-hosts={}", n.resolver_hosts.display()),
        "--local=/#/".into(),
        "--bind-interfaces".into(),
        format!("--listen-address={}", n.gateway),
        "--port=53".into(),
        format!("--pid-file={}", n.resolver_pid_file.display()),
        format!("--log-facility={}", n.resolver_log.display()),
        "--user=root".into(),
    ]
}

/// The PID of the lab's resolver if it runs with exactly the wanted arguments.
pub fn resolver_running(n: &LabNames) -> Option<i32> {
    let pid = process::read_pid_file(&n.resolver_pid_file)?;
    let ok = process::alive(pid)
        && process::exe(pid).is_some_and(|e| e == Path::new(DNSMASQ))
        && process::cmdline(pid).get(1..) == Some(&resolver_args(n)[..]);
    ok.then_some(pid)
}

/// PIDs of any dnsmasq started with this lab's pid file, whatever its other arguments (an
/// older run's, or one whose pid file was lost), and of any lab resolver left on this lab's
/// gateway address by a run whose state directory is gone: it would hold the address and keep
/// the next resolver from starting.
fn resolver_pids(n: &LabNames) -> Vec<i32> {
    let marker = format!("--pid-file={}", n.resolver_pid_file.display());
    let listen = format!("--listen-address={}", n.gateway);
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let cmdline = process::cmdline(pid);
        let ours = cmdline.contains(&marker)
            || (cmdline.contains(&listen) && cmdline.iter().any(|a| a == "--local=/#/"));
        if process::exe(pid).is_some_and(|x| x == Path::new(DNSMASQ)) && ours && process::alive(pid)
        {
            pids.push(pid);
        }
    }
    pids
}

/// Writes the hosts file and makes the resolver run with it: adopted when it already runs as
/// wanted (re-read on SIGHUP if the file changed), (re)started otherwise. Returns its PID and
/// whether it was started now.
pub async fn resolver_up(
    resource: &str,
    n: &LabNames,
    lab_hosts: &str,
) -> Result<(i32, bool), ProviderError> {
    files::dir(resource, &n.network_dir, 0o700)?;
    let changed = files::write_if_changed(resource, &n.resolver_hosts, lab_hosts, 0o600)?;
    if let Some(pid) = resolver_running(n) {
        if changed {
            process::signal(pid, Signal::HUP);
        }
        return Ok((pid, false));
    }
    resolver_down(resource, n).await?;
    cmd::run(resource, DNSMASQ, resolver_args(n)).await?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(pid) = resolver_running(n) {
            return Ok((pid, true));
        }
        if Instant::now() >= deadline {
            let log = std::fs::read_to_string(&n.resolver_log).unwrap_or_default();
            return Err(cloud(
                resource,
                format!(
                    "dnsmasq started but does not run (pid file {}); its log: {}",
                    n.resolver_pid_file.display(),
                    log.trim()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stops the lab's resolver (found by its pid file argument) and removes its pid file.
pub async fn resolver_down(resource: &str, n: &LabNames) -> Result<(), ProviderError> {
    let pids = resolver_pids(n);
    let left = process::stop_all(&pids).await;
    if !left.is_empty() {
        return Err(cloud(
            resource,
            format!("dnsmasq (PID {left:?}) did not exit after SIGKILL"),
        ));
    }
    files::remove_file(resource, &n.cluster_dir, &n.resolver_pid_file)
}

/// The resolver's hosts file: every lab host's address and name.
pub fn resolver_hosts(lab: &[(String, std::net::Ipv4Addr)]) -> String {
    lab.iter()
        .map(|(name, addr)| format!("{addr} {name}\n"))
        .collect()
}
