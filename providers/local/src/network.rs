//! The lab network (`lab_network`): the safety route, the bridge and the lab resolver.
//!
//! Order matters for safety. The route `unreachable <subnet> metric 4000` goes in before the
//! bridge and comes out after it: while the bridge exists its connected route (metric 0) wins;
//! before and after, a packet for a lab address is rejected here instead of following the
//! default route off the machine. The resolver (dnsmasq) answers the lab's names from a hosts
//! file and NXDOMAIN for everything else (`--no-resolv --local=/#/`): no lookup ever leaves.
//!
//! Two objects are the subnet's rather than the cluster's: the safety route (the kernel keeps
//! one `unreachable <subnet> metric 4000`, untagged) and the gateway address `.1` a resolver
//! listens on. Another cluster on the same subnet is refused by the overlap check before it
//! makes anything, but its `down` still runs; so a lab removes the route only when it made it
//! ([`claimed_subnets`] or its record), and stops a resolver found by the gateway alone only
//! when it is this lab's ([`is_orphan_resolver`]); neither while another interface holds an
//! address in the subnet ([`overlap::others_on_subnet`]).

use std::path::Path;
use std::time::{Duration, Instant};

use acura_ha_api::provider::ProviderError;
use rustix::process::Signal;

use crate::cmd::{self, cloud};
use crate::files;
use crate::lineage;
pub use crate::names::link_exists;
use crate::names::{LabNames, safety_route};
use crate::overlap;
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

/// `ip route replace unreachable <subnet> metric 4000` for the lab's subnet (idempotent),
/// claimed first in the lab's own files: `destroy` after a crash right after the route was
/// made still knows that it is this lab's.
pub async fn safety_route_up(resource: &str, n: &LabNames) -> Result<(), ProviderError> {
    let mut claimed = claimed_subnets(n);
    if !claimed.contains(&n.subnet.trunc()) {
        claimed.push(n.subnet.trunc());
        let text: String = claimed.iter().map(|s| format!("{s}\n")).collect();
        files::dir(resource, &n.network_dir, 0o700)?;
        files::write_if_changed(resource, &n.safety_route_claim, &text, 0o600)?;
    }
    let mut args = vec!["route".to_string(), "replace".to_string()];
    args.extend(safety_route(n.subnet));
    cmd::run(resource, IP, &args).await.map(|_| ())
}

/// The subnets whose safety route this lab made (its claim file; none when it never made one,
/// e.g. when the overlap check refused its `up`).
pub fn claimed_subnets(n: &LabNames) -> Vec<Ipv4Net> {
    std::fs::read_to_string(&n.safety_route_claim)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse::<Ipv4Net>().ok())
        .map(|s| s.trunc())
        .collect()
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

/// Removes the safety route of `subnet` when it is this lab's: this lab made it (`recorded`:
/// its `lab_network` record is for that subnet; or its claim file names it) and no other
/// interface holds an address in the subnet. Otherwise it is left as it is: another cluster's
/// lab on the subnet (whose bridge may be up or, broken, gone) keeps its route, and a route
/// that now sits under the machine's own network is shadowed by it (metric 4000).
pub async fn safety_route_release(
    resource: &str,
    n: &LabNames,
    subnet: Ipv4Net,
    recorded: bool,
) -> Result<(), ProviderError> {
    let subnet = subnet.trunc();
    if !(recorded || claimed_subnets(n).contains(&subnet)) {
        return Ok(());
    }
    if !overlap::others_on_subnet(resource, subnet, &n.bridge)
        .await?
        .is_empty()
    {
        return Ok(());
    }
    safety_route_down(resource, subnet).await
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
    // The state's lineage, right after it is made; on a bridge adopted without one (made
    // before lineages), now. `provision` checked before that no other state's alias is there.
    if let Some(alias) = &n.alias {
        lineage::write(resource, None, &n.bridge, alias).await?;
    }
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
/// older run's, or one whose pid file was lost), and, when `orphans`, of any lab resolver left
/// on this lab's gateway address by an earlier run of this lab ([`is_orphan_resolver`]): it
/// would hold the address and keep the next resolver from starting. Not `orphans` while another
/// lab holds the subnet: a resolver on the gateway is then that lab's.
fn resolver_pids(n: &LabNames, orphans: bool) -> Vec<i32> {
    let marker = format!("--pid-file={}", n.resolver_pid_file.display());
    let bridge_here = link_exists(&n.bridge);
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let cmdline = process::cmdline(pid);
        let ours =
            cmdline.contains(&marker) || (orphans && is_orphan_resolver(&cmdline, n, bridge_here));
        if process::exe(pid).is_some_and(|x| x == Path::new(DNSMASQ)) && ours && process::alive(pid)
        {
            pids.push(pid);
        }
    }
    pids
}

/// Whether a dnsmasq with these arguments is a lab resolver (`--local=/#/`) on this lab's
/// gateway address that this lab may stop: its address is on this lab's bridge
/// (`bridge_here`), or the directory of its pid file is gone (a run whose state directory was
/// removed). A resolver whose lab directory still exists while this lab has no bridge is
/// another lab's on the same subnet, broken or not, and is left alone.
pub fn is_orphan_resolver(cmdline: &[String], n: &LabNames, bridge_here: bool) -> bool {
    let listen = format!("--listen-address={}", n.gateway);
    let lab_resolver = cmdline.contains(&listen) && cmdline.iter().any(|a| a == "--local=/#/");
    let state_gone = cmdline
        .iter()
        .find_map(|a| a.strip_prefix("--pid-file="))
        .and_then(|f| Path::new(f).parent())
        .is_some_and(|dir| !dir.exists());
    lab_resolver && (bridge_here || state_gone)
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

/// Stops the lab's resolver (found by its pid file argument, or as an orphan on its gateway
/// address while no other lab holds the subnet) and removes its pid file.
pub async fn resolver_down(resource: &str, n: &LabNames) -> Result<(), ProviderError> {
    let others = overlap::others_on_subnet(resource, n.subnet, &n.bridge).await?;
    stop_resolvers(resource, n, others.is_empty()).await
}

/// Stops only a resolver started with this lab's pid file: when the bridge of this lab's name
/// is another state's ([`crate::lineage`]), a resolver on its gateway is that state's.
pub async fn resolver_down_own(resource: &str, n: &LabNames) -> Result<(), ProviderError> {
    stop_resolvers(resource, n, false).await
}

async fn stop_resolvers(resource: &str, n: &LabNames, orphans: bool) -> Result<(), ProviderError> {
    let pids = resolver_pids(n, orphans);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(dir: &Path) -> LabNames {
        let spec: acura_ha_api::spec::ClusterSpec = serde_json::from_value(serde_json::json!({
            "cluster": { "name": "lt-orphan" },
            "nodes": { "count": 3 },
            "load_balancer": { "kind": "nginx" },
            "access": { "admin_cidrs": ["10.213.147.1/32"], "ssh_user": "root" },
            "local": { "subnet": "10.213.147.0/24" },
        }))
        .expect("a spec");
        crate::names::lab_names(&spec, dir)
    }

    /// A resolver on the gateway that is not this lab's pid file: stopped when it sits on this
    /// lab's bridge or its lab directory is gone, left alone when it is another lab's.
    #[test]
    fn only_a_resolver_of_this_lab_or_of_no_lab_is_an_orphan() {
        let dir = tempfile::tempdir().expect("tempdir");
        let n = lab(&dir.path().join("this"));
        let other = lab(dir.path());
        std::fs::create_dir_all(&other.network_dir).expect("the other lab's directory");
        let mut args = resolver_args(&other);
        args.insert(0, DNSMASQ.to_string());
        // Another lab's directory exists: its resolver, unless this lab's bridge is up.
        assert!(!is_orphan_resolver(&args, &n, false));
        assert!(is_orphan_resolver(&args, &n, true));
        // A run whose directory is gone.
        let gone: Vec<String> = args
            .iter()
            .map(|a| a.replace(&dir.path().display().to_string(), "/nonexistent/acura"))
            .collect();
        assert!(is_orphan_resolver(&gone, &n, false));
        // Not a lab resolver, or not on this gateway.
        let plain: Vec<String> = gone
            .iter()
            .filter(|a| *a != "--local=/#/")
            .cloned()
            .collect();
        assert!(!is_orphan_resolver(&plain, &n, true));
        let elsewhere: Vec<String> = gone
            .iter()
            .map(|a| a.replace("10.213.147.1", "10.213.148.1"))
            .collect();
        assert!(!is_orphan_resolver(&elsewhere, &n, true));
    }
}
