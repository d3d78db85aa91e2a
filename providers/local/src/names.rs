//! Every name and path the lab uses, derived only from the cluster file and the cluster
//! directory. `destroy` relies on this: after a crash mid-provision the journal may not know a
//! namespace or a bridge that exists, so nothing here may depend on what was recorded. The
//! names are the cluster name's alone; which state made them is in their alias (the lineage,
//! see [`crate::lineage`]).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use acura_ha_api::desired::{LOCAL_GATEWAY, LOCAL_LB, local_address, local_node_index};
use acura_ha_api::model::Kind;
use acura_ha_api::spec::ClusterSpec;
use ipnet::Ipv4Net;

/// Linux caps interface names at 15 bytes (IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;

/// The metric of the safety route: above the bridge's connected route (metric 0), so it only
/// matters when the bridge is gone.
pub const SAFETY_METRIC: u32 = 4000;

/// The names and paths of one cluster's lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabNames {
    /// The cluster's name (`cluster.name`).
    pub cluster: String,
    /// The state's lineage (`None` for a state-less teardown): see [`crate::lineage`].
    pub lineage: Option<String>,
    /// The alias every lab interface carries, `acura-ha:<cluster>:<lineage>`; `None` without a
    /// lineage (nothing is labelled then).
    pub alias: Option<String>,
    /// The cluster directory (0700) that holds every lab file.
    pub cluster_dir: PathBuf,
    /// The lab subnet (`[local] subnet`).
    pub subnet: Ipv4Net,
    /// The deploy side of the bridge (`.1`): the lab resolver listens here.
    pub gateway: Ipv4Addr,
    /// The Linux bridge, `ah` + 8 hex digits of a hash of the cluster name.
    pub bridge: String,
    /// The bridge's MAC address, fixed (see [`mac_for`]).
    pub bridge_mac: String,
    /// `ip route` arguments of the safety route: `unreachable <subnet> metric 4000`.
    pub safety_route: Vec<String>,
    /// Files of the bridge and the resolver.
    pub network_dir: PathBuf,
    /// The subnets whose safety route this lab made, one a line, written before the route: a
    /// route is not tagged with its lab, and another cluster's lab on the same subnet (whose
    /// `up` the overlap check refused) must not remove it (see [`crate::network`]).
    pub safety_route_claim: PathBuf,
    /// The resolver's `--addn-hosts` file: every lab host's address and name.
    pub resolver_hosts: PathBuf,
    pub resolver_pid_file: PathBuf,
    pub resolver_log: PathBuf,
    /// One OpenSSH line per host, pinned from the host keys the lab generated.
    pub known_hosts: PathBuf,
    /// The parent of every host directory.
    pub hosts_dir: PathBuf,
    /// The nodes, then the NGINX host, as `desired()` lists them.
    pub hosts: Vec<HostNames>,
}

/// The names and paths of one lab host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostNames {
    /// Its resource address, `lab_host[<name>]`.
    pub resource: String,
    /// Its hostname (no dots).
    pub name: String,
    pub address: Ipv4Addr,
    /// The network namespace, `ah-<cluster>-<name>`.
    pub namespace: String,
    /// The root side of its veth pair (on the bridge); the namespace side is `eth0`.
    pub veth: String,
    /// The MAC address of its `eth0`, fixed (see [`mac_for`]).
    pub mac: String,
    /// `cluster_dir/hosts/<name>`.
    pub dir: PathBuf,
    /// `cluster_dir/hosts`: everything of the host that is ever removed lies inside it.
    pub hosts_dir: PathBuf,
    /// Where its sshd writes its pid (`/run/sshd.pid` as the host sees it).
    pub sshd_pid_file: PathBuf,
}

impl HostNames {
    /// The host's own `/etc/ssh`: sshd_config, host key, authorized keys.
    pub fn etc_ssh(&self) -> PathBuf {
        self.dir.join("etc-ssh")
    }
    pub fn sshd_config(&self) -> PathBuf {
        self.etc_ssh().join("sshd_config")
    }
    pub fn host_key(&self) -> PathBuf {
        self.etc_ssh().join("ssh_host_ed25519_key")
    }
    pub fn host_key_pub(&self) -> PathBuf {
        self.etc_ssh().join("ssh_host_ed25519_key.pub")
    }
    pub fn authorized_keys(&self) -> PathBuf {
        self.etc_ssh().join("authorized_keys")
    }
    /// The nftables ruleset loaded into its namespace.
    pub fn firewall(&self) -> PathBuf {
        self.dir.join("nftables.conf")
    }
    pub fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
    }
}

/// A short, stable hash (FNV-1a, 32 bits): interface names must fit in 15 bytes, cluster names
/// may not. Written out here so the names never change with a library's version.
pub fn short_hash(text: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in text.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

/// The bridge of a cluster: `ah` + the hash of its name (10 bytes).
pub fn bridge_name(cluster: &str) -> String {
    format!("ah{}", short_hash(cluster))
}

/// The namespace of a host: `ah-<cluster>-<host>`. Namespace names are file names under
/// `/run/netns`, so length is no concern; the cluster name keeps clusters apart.
pub fn namespace_name(cluster: &str, host: &str) -> String {
    format!("ah-{cluster}-{host}")
}

/// The root side of a host's veth: the bridge name, `v`, and the host's index in the subnet
/// (`ah1a2b3c4dv11`: at most 15 bytes for indexes below 10000).
pub fn veth_name(cluster: &str, host_index: u32) -> String {
    format!("{}v{host_index}", bridge_name(cluster))
}

/// The MAC address of the interface that holds `address`: locally administered (`02:`), `a8`,
/// then the four bytes of the address. Fixed addresses keep every neighbour cache on the lab
/// valid when a host's veth pair is made again or the bridge's ports change (a random MAC
/// would leave the others sending to the old one for up to a minute), and they are unique
/// wherever the IPv4 addresses are.
pub fn mac_for(address: Ipv4Addr) -> String {
    let [a, b, c, d] = address.octets();
    format!("02:a8:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// `ip route` arguments of the safety route of `subnet`.
pub fn safety_route(subnet: Ipv4Net) -> Vec<String> {
    vec![
        "unreachable".into(),
        subnet.trunc().to_string(),
        "metric".into(),
        SAFETY_METRIC.to_string(),
    ]
}

/// Every name and path of `spec`'s lab under `cluster_dir`. The spec must have a `[local]`
/// section (the provider checks that first).
pub fn lab_names(spec: &ClusterSpec, cluster_dir: &Path) -> LabNames {
    let cluster = &spec.cluster.name;
    let subnet = spec.local.as_ref().map(|l| l.subnet).unwrap_or_default();
    let network_dir = cluster_dir.join("network");
    let hosts_dir = cluster_dir.join("hosts");
    let mut indexed: Vec<(u32, String)> = spec
        .node_names()
        .into_iter()
        .enumerate()
        .map(|(k, name)| (local_node_index(spec, k, &name), name))
        .collect();
    indexed.push((LOCAL_LB, spec.lb_host_name()));
    let hosts = indexed
        .into_iter()
        .map(|(index, name)| host_names(spec, &hosts_dir, index, &name))
        .collect();
    LabNames {
        cluster: cluster.clone(),
        lineage: spec.lineage.clone(),
        alias: spec.lineage.as_deref().map(|l| alias(cluster, l)),
        cluster_dir: cluster_dir.to_path_buf(),
        subnet,
        gateway: local_address(spec, LOCAL_GATEWAY),
        bridge: bridge_name(cluster),
        bridge_mac: mac_for(local_address(spec, LOCAL_GATEWAY)),
        safety_route: safety_route(subnet),
        safety_route_claim: network_dir.join("safety-routes"),
        resolver_hosts: network_dir.join("lab-hosts"),
        resolver_pid_file: network_dir.join("dnsmasq.pid"),
        resolver_log: network_dir.join("dnsmasq.log"),
        network_dir,
        known_hosts: cluster_dir.join("known_hosts"),
        hosts_dir,
        hosts,
    }
}

fn host_names(spec: &ClusterSpec, hosts_dir: &Path, index: u32, name: &str) -> HostNames {
    let dir = hosts_dir.join(name);
    HostNames {
        resource: format!("{}[{name}]", Kind::LabHost.as_str()),
        name: name.to_string(),
        address: local_address(spec, index),
        namespace: namespace_name(&spec.cluster.name, name),
        veth: veth_name(&spec.cluster.name, index),
        mac: mac_for(local_address(spec, index)),
        sshd_pid_file: dir.join("run").join("sshd.pid"),
        dir,
        hosts_dir: hosts_dir.to_path_buf(),
    }
}

/// A host the spec no longer lists but the journal or the hosts directory still knows: only
/// what can be derived from its name (its veth goes with its namespace).
pub fn orphan_host(spec: &ClusterSpec, hosts_dir: &Path, name: &str) -> HostNames {
    let dir = hosts_dir.join(name);
    HostNames {
        resource: format!("{}[{name}]", Kind::LabHost.as_str()),
        name: name.to_string(),
        address: Ipv4Addr::UNSPECIFIED,
        namespace: namespace_name(&spec.cluster.name, name),
        veth: String::new(),
        mac: String::new(),
        sshd_pid_file: dir.join("run").join("sshd.pid"),
        dir,
        hosts_dir: hosts_dir.to_path_buf(),
    }
}

/// Whether an interface of that name exists in this namespace.
pub fn link_exists(name: &str) -> bool {
    !name.is_empty() && Path::new("/sys/class/net").join(name).exists()
}

/// What every lab alias starts with.
pub const ALIAS_PREFIX: &str = "acura-ha:";

/// The alias of every lab interface of `cluster` made by the state of `lineage`.
pub fn alias(cluster: &str, lineage: &str) -> String {
    format!("{ALIAS_PREFIX}{cluster}:{lineage}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_fit_and_are_stable() {
        let long = "a-twenty-char-name-x";
        assert_eq!(bridge_name(long).len(), 10);
        assert!(veth_name(long, 9999).len() <= MAX_IFNAME);
        assert_eq!(bridge_name("acura-lab"), bridge_name("acura-lab"));
        assert_ne!(bridge_name("acura-lab"), bridge_name("acura-lab2"));
        // FNV-1a reference value: a change here would orphan existing labs.
        assert_eq!(short_hash("a"), "e40c292c");
    }
}
