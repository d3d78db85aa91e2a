//! The local target (`[local]`): every cluster host is a network namespace on this machine.
//!
//! `provision` builds, idempotently, what `desired()` lists for a local cluster:
//!
//! * `lab_network` — after a check that the subnet overlaps none of the machine's own
//!   addresses and routes ([`overlap`]), the safety route `unreachable <subnet> metric 4000`
//!   (first in, last out, so no lab packet can ever follow the default route off the
//!   machine), a bridge with the deploy side's address (`.1`), and a dnsmasq that answers the
//!   lab's names there and never forwards ([`network`]);
//! * `key_pair` — the deploy side's key, generated into the cluster directory when the cluster
//!   file names none ([`keys`]);
//! * `lab_host[<name>]` — per host a namespace, a veth on the bridge, the guide's security
//!   group as nftables rules ([`firewall`]), and an sshd with the host's own hostname, host
//!   key, `/etc/hosts`, resolver, home, `/etc/nginx` and `/run` ([`host`], [`node`]);
//!
//! then pins every host key in `known_hosts`. `destroy` undoes it in reverse, deriving every
//! name from the cluster file ([`names`]), so it also cleans up after a crash that the journal
//! never heard about. What is the subnet's rather than the cluster's (the safety route, a
//! resolver on `.1`) it removes only when this lab made it and no other lab holds the subnet:
//! another cluster's `up` on the same subnet is refused, but its `down` still runs.
//!
//! Every lab interface carries the state's lineage in its alias ([`lineage`]): another state's
//! lab of the same cluster name (another cluster directory) is refused by `provision` before it
//! makes anything, and left alone by `destroy`.

pub mod cmd;
pub mod files;
pub mod firewall;
pub mod host;
pub mod keys;
pub mod lineage;
pub mod names;
pub mod network;
pub mod node;
pub mod overlap;
pub mod preflight;
pub mod process;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use acura_ha_api::desired::{self, ingress_rules};
use acura_ha_api::inventory::{self, OUTPUT_ADDRESS};
use acura_ha_api::model::{Drift, Gone, Inventory, Kind, Recorded, Resource, Status};
use acura_ha_api::provider::{Journal, Provider, ProviderError};
use acura_ha_api::spec::{ClusterSpec, ProviderKind};
use async_trait::async_trait;

pub use names::{HostNames, LabNames, lab_names};
pub use preflight::{current_euid, require_root};

/// Output keys of the recorded resources.
pub const OUTPUT_NAMESPACE: &str = "namespace";
pub const OUTPUT_HOST_KEY: &str = "host_key";
pub const OUTPUT_SSHD_PID: &str = "sshd_pid";
pub const OUTPUT_BRIDGE: &str = "bridge";
pub const OUTPUT_RESOLVER_PID: &str = "resolver_pid";
pub const OUTPUT_PUBLIC_KEY_FILE: &str = "public_key_file";

/// The local target's provider.
#[derive(Debug, Clone)]
pub struct LocalProvider {
    cluster_dir: PathBuf,
    key_file: PathBuf,
}

impl LocalProvider {
    /// `cluster_dir`: the cluster's private directory (created 0700), where every lab file
    /// lives. `key_file`: the private key the deploy side logs in with; generated when it is
    /// `cluster_dir/id_ed25519` and missing, otherwise `<key_file>.pub` must exist. Relative
    /// paths are taken from the current directory now, because daemons later run from `/`.
    pub fn new(cluster_dir: PathBuf, key_file: PathBuf) -> Self {
        let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
        LocalProvider {
            cluster_dir: absolute(cluster_dir),
            key_file: absolute(key_file),
        }
    }

    pub fn cluster_dir(&self) -> &Path {
        &self.cluster_dir
    }

    pub fn key_file(&self) -> &Path {
        &self.key_file
    }

    /// Every name and path of `spec`'s lab (what tests check is gone after `destroy`).
    pub fn names(&self, spec: &ClusterSpec) -> LabNames {
        lab_names(spec, &self.resolved_dir())
    }

    /// The cluster directory with symlinks resolved, when it exists: the bind-mount order of
    /// the hosts depends on where it really is (see [`node::binds`]).
    fn resolved_dir(&self) -> PathBuf {
        std::fs::canonicalize(&self.cluster_dir).unwrap_or_else(|_| self.cluster_dir.clone())
    }

    fn key_is_generated(&self, spec: &ClusterSpec) -> bool {
        keys::is_generated_path(spec, &self.cluster_dir, &self.key_file)
    }
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Records `res` with `id` and `status`, keeping the creation time of an earlier record of the
/// same object so that re-running on a healthy lab changes nothing.
fn record(
    journal: &mut dyn Journal,
    res: &Resource,
    id: &str,
    status: Status,
    outputs: BTreeMap<String, String>,
) -> Result<(), ProviderError> {
    let created_at = journal
        .get(&res.address)
        .filter(|r| r.id.as_deref() == Some(id))
        .map(|r| r.created_at.clone())
        .unwrap_or_else(now);
    journal.record(Recorded {
        address: res.address.clone(),
        kind: res.kind,
        name: res.name.clone(),
        id: Some(id.to_string()),
        status,
        attrs: res.attrs.clone(),
        outputs,
        created_at,
    })
}

/// Marks a recorded resource as being deleted (write-ahead), if the journal has it.
fn mark_deleting(journal: &mut dyn Journal, address: &str) -> Result<bool, ProviderError> {
    match journal.get(address).cloned() {
        Some(mut r) => {
            r.status = Status::Deleting;
            journal.record(r)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

fn outputs(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// Host directories under `hosts/` whose host the spec no longer lists.
fn orphan_hosts(spec: &ClusterSpec, lab: &LabNames) -> Vec<HostNames> {
    let Ok(entries) = std::fs::read_dir(&lab.hosts_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| !lab.hosts.iter().any(|h| &h.name == n))
        .collect();
    names.sort();
    names
        .iter()
        .map(|n| names::orphan_host(spec, &lab.hosts_dir, n))
        .collect()
}

/// Stops and removes one host, with write-ahead `Deleting` and `forget`. A host whose veth or
/// namespace another state made (another lineage, see [`lineage`]) is not touched: only this
/// state's files and record of it go.
async fn remove_host(
    journal: &mut dyn Journal,
    lab: &LabNames,
    h: &HostNames,
) -> Result<(), ProviderError> {
    let known = mark_deleting(journal, &h.resource)?;
    match lineage::foreign_host(lab, h).await? {
        Some(found) => {
            lineage::say_left_alone(&found);
            files::remove_tree(&h.resource, &h.hosts_dir, &h.dir)?;
        }
        None => host::down(h).await?,
    }
    if known {
        journal.forget(&h.resource)?;
    }
    Ok(())
}

impl LocalProvider {
    async fn provision_network(
        &self,
        lab: &LabNames,
        res: &Resource,
        journal: &mut dyn Journal,
    ) -> Result<(), ProviderError> {
        let r = res.address.as_str();
        if let Some(old) = recorded_subnet(journal, r).filter(|old| *old != lab.subnet) {
            return Err(ProviderError::Unsupported(format!(
                "{r}: the lab's subnet changed from {old} to {}: run {} first (it removes the \
                 lab on the old subnet too), then {}",
                lab.subnet,
                acura_ha_api::hint::command("down"),
                acura_ha_api::hint::command("up")
            )));
        }
        // Before anything is made: the subnet must not be the machine's own LAN, VPC or route.
        overlap::require_free_subnet(r, lab.subnet, &lab.bridge).await?;
        let healthy = network::safety_route_present(r, lab.subnet).await?
            && network::link_exists(&lab.bridge)
            && network::resolver_running(lab).is_some();
        if !healthy {
            record(journal, res, &lab.bridge, Status::Creating, BTreeMap::new())?;
        }
        // Safety route first: from here on no lab address can leave the machine.
        network::safety_route_up(r, lab).await?;
        let bridge_created = network::bridge_up(r, lab).await?;
        if bridge_created {
            // A resolver bound to the address of a bridge that was replaced listens nowhere.
            network::resolver_down(r, lab).await?;
        }
        let (pid, _) =
            network::resolver_up(r, lab, &network::resolver_hosts(&lab_hosts(lab))).await?;
        record(
            journal,
            res,
            &lab.bridge,
            Status::Ready,
            outputs(&[
                (OUTPUT_BRIDGE, lab.bridge.clone()),
                (OUTPUT_RESOLVER_PID, pid.to_string()),
            ]),
        )
    }

    /// The resolver, the bridge and, last, the safety route of this state's own lab.
    async fn destroy_network(
        &self,
        lab: &LabNames,
        journal: &mut dyn Journal,
    ) -> Result<(), ProviderError> {
        let net = "lab_network";
        network::resolver_down(net, lab).await?;
        network::bridge_down(net, lab).await?;
        // Last: until the bridge is gone, the route keeps lab packets on this machine. Only
        // the routes this lab made, and only while no other lab holds the subnet: the route
        // is the subnet's, and another cluster's refused `up` shares the subnet.
        let recorded = recorded_subnet(journal, net).map(|s| s.trunc());
        let mut subnets = vec![lab.subnet.trunc()];
        subnets.extend(recorded);
        subnets.extend(network::claimed_subnets(lab));
        subnets.sort();
        subnets.dedup();
        for subnet in subnets {
            network::safety_route_release(net, lab, subnet, recorded == Some(subnet)).await?;
        }
        Ok(())
    }

    /// The deploy side's key; recorded as `key_pair` when `desired()` lists one.
    async fn provision_key(
        &self,
        spec: &ClusterSpec,
        res: Option<&Resource>,
        journal: &mut dyn Journal,
    ) -> Result<String, ProviderError> {
        let generated = self.key_is_generated(spec);
        let id = self.key_file.display().to_string();
        let resource = res.map(|r| r.address.as_str()).unwrap_or("key_pair");
        let missing = !self.key_file.exists();
        if let (Some(res), true, true) = (res, generated, missing) {
            record(journal, res, &id, Status::Creating, BTreeMap::new())?;
        }
        let (line, _) =
            keys::ensure_client_key(resource, &self.cluster_dir, generated, &self.key_file).await?;
        if let Some(res) = res {
            let pub_file = keys::pub_path(&self.key_file).display().to_string();
            record(
                journal,
                res,
                &id,
                Status::Ready,
                outputs(&[(OUTPUT_PUBLIC_KEY_FILE, pub_file)]),
            )?;
        }
        Ok(line)
    }
}

/// The subnet a recorded `lab_network` was made for (the file may have changed since).
fn recorded_subnet(journal: &dyn Journal, address: &str) -> Option<ipnet::Ipv4Net> {
    journal
        .get(address)
        .and_then(|r| r.attrs.get("subnet"))
        .and_then(|s| s.parse().ok())
}

/// Writes the deploy side's known_hosts: exactly these hosts' keys.
fn pin(lab: &LabNames, pinned: &[(Ipv4Addr, String)]) -> Result<(), ProviderError> {
    files::write_if_changed(
        "lab_network",
        &lab.known_hosts,
        &keys::known_hosts(pinned),
        0o600,
    )
    .map(|_| ())
}

/// Every lab host's name and address, nodes first.
fn lab_hosts(lab: &LabNames) -> Vec<(String, Ipv4Addr)> {
    lab.hosts
        .iter()
        .map(|h| (h.name.clone(), h.address))
        .collect()
}

#[async_trait]
impl Provider for LocalProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Local
    }

    async fn provision(
        &self,
        spec: &ClusterSpec,
        journal: &mut dyn Journal,
    ) -> Result<Inventory, ProviderError> {
        require_root(current_euid())?;
        preflight::require_components()?;
        if spec.local.is_none() {
            return Err(ProviderError::Unsupported(
                "the local provider needs a [local] section in the cluster file".into(),
            ));
        }
        // Before anything is made, even this state's directory: no interface of the lab's names
        // is another state's (#9.4).
        lineage::require_owned(&self.names(spec)).await?;
        files::dir("lab_network", &self.cluster_dir, 0o700)?;
        let lab = self.names(spec);
        preflight::require_local_spec(spec, &lab)?;
        let wanted = desired::desired(spec);

        let net = wanted
            .iter()
            .find(|r| r.kind == Kind::LabNetwork)
            .ok_or_else(|| ProviderError::Unsupported("desired() lists no lab_network".into()))?;
        self.provision_network(&lab, net, journal).await?;

        let key_res = wanted.iter().find(|r| r.kind == Kind::KeyPair);
        let client_key = self.provision_key(spec, key_res, journal).await?;

        let all = lab_hosts(&lab);
        let hosts_file = node::hosts_file(&all);
        let resolv = node::resolv_conf(lab.gateway);
        let rules = ingress_rules(spec);
        let addresses: Vec<Ipv4Addr> = all.iter().map(|(_, a)| *a).collect();
        let login = std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|p| node::login_user(&p, &spec.access.ssh_user));
        let mut pinned = Vec::new();
        for res in wanted.iter().filter(|r| r.kind == Kind::LabHost) {
            let h = lab
                .hosts
                .iter()
                .find(|h| h.resource == res.address)
                .ok_or_else(|| {
                    ProviderError::Unsupported(format!("{}: not a lab host", res.address))
                })?;
            if !host::healthy(h).await? {
                record(
                    journal,
                    res,
                    &h.namespace,
                    Status::Creating,
                    BTreeMap::new(),
                )?;
            }
            let inputs = host::HostInputs {
                lab: &lab,
                client_key: &client_key,
                hosts_file: &hosts_file,
                resolv_conf: &resolv,
                firewall: firewall::ruleset(&h.name, &rules, &addresses),
                login: login.as_ref(),
            };
            let up = host::up(h, &inputs).await?;
            record(
                journal,
                res,
                &h.namespace,
                Status::Ready,
                outputs(&[
                    (OUTPUT_ADDRESS, h.address.to_string()),
                    (OUTPUT_NAMESPACE, h.namespace.clone()),
                    (OUTPUT_HOST_KEY, up.host_key.clone()),
                    (OUTPUT_SSHD_PID, up.sshd_pid.to_string()),
                ]),
            )?;
            pinned.push((h.address, up.host_key));
        }
        // Hosts of a larger cluster than the file now describes.
        for h in orphan_hosts(spec, &lab) {
            remove_host(journal, &lab, &h).await?;
        }
        pin(&lab, &pinned)?;
        inventory::inventory(spec, &[])
    }

    /// What was stopped or removed outside the tool: a lab host whose namespace, veth or sshd
    /// is gone, a lab network without its safety route, bridge or resolver. `up` makes them
    /// again (provisioning heals what it finds broken). Not root: nothing can be looked at,
    /// and the plan is the state's.
    async fn refresh(
        &self,
        spec: &ClusterSpec,
        recorded: &[Recorded],
    ) -> Result<Option<Drift>, ProviderError> {
        if spec.local.is_none() || current_euid() != 0 {
            return Ok(None);
        }
        let lab = self.names(spec);
        let mut drift = Drift::default();
        for r in recorded.iter().filter(|r| r.status == Status::Ready) {
            let gone = match r.kind {
                Kind::LabHost => match lab.hosts.iter().find(|h| h.resource == r.address) {
                    Some(h) => !host::healthy(h).await?,
                    None => false,
                },
                Kind::LabNetwork => {
                    !(network::safety_route_present(&r.address, lab.subnet).await?
                        && network::link_exists(&lab.bridge)
                        && network::resolver_running(&lab).is_some())
                }
                _ => false,
            };
            if gone {
                drift.gone.push(Gone {
                    address: r.address.clone(),
                    reason: "stopped or removed outside acura-ha".into(),
                });
            }
        }
        Ok(Some(drift))
    }

    /// Stops and removes the named hosts (every process in their namespaces, their veths and
    /// files) and un-pins their keys; the other hosts are not touched.
    async fn remove_nodes(
        &self,
        spec: &ClusterSpec,
        names: &[String],
        journal: &mut dyn Journal,
    ) -> Result<(), ProviderError> {
        require_root(current_euid())?;
        let lab = self.names(spec);
        for name in names {
            let h = names::orphan_host(spec, &lab.hosts_dir, name);
            remove_host(journal, &lab, &h).await?;
        }
        // The pins of the hosts that remain, from their records.
        let pinned: Vec<(Ipv4Addr, String)> = lab
            .hosts
            .iter()
            .filter_map(|h| {
                let r = journal.get(&h.resource)?;
                Some((h.address, r.outputs.get(OUTPUT_HOST_KEY)?.clone()))
            })
            .collect();
        pin(&lab, &pinned)?;
        Ok(())
    }

    async fn destroy(
        &self,
        spec: &ClusterSpec,
        journal: &mut dyn Journal,
    ) -> Result<(), ProviderError> {
        require_root(current_euid())?;
        if spec.local.is_none() {
            return Err(ProviderError::Unsupported(
                "the local provider needs a [local] section in the cluster file".into(),
            ));
        }
        let lab = self.names(spec);
        let mut hosts: Vec<HostNames> = lab.hosts.iter().rev().cloned().collect();
        hosts.extend(orphan_hosts(spec, &lab));
        for h in &hosts {
            remove_host(journal, &lab, h).await?;
        }
        files::remove_file("lab_network", &lab.cluster_dir, &lab.known_hosts)?;
        files::remove_dir_if_empty(&lab.cluster_dir, &lab.hosts_dir);

        if self.key_is_generated(spec) && keys::carries_lab_comment(&self.key_file) {
            let known = mark_deleting(journal, "key_pair")?;
            files::remove_file("key_pair", &lab.cluster_dir, &self.key_file)?;
            files::remove_file(
                "key_pair",
                &lab.cluster_dir,
                &keys::pub_path(&self.key_file),
            )?;
            if known {
                journal.forget("key_pair")?;
            }
        }

        let net = "lab_network";
        let known = mark_deleting(journal, net)?;
        if let Some(found) = lineage::foreign_bridge(&lab, net).await? {
            // Another state's lab of this cluster name: its bridge, the resolver on its
            // gateway and the subnet's safety route are its own. Only this state's files go.
            lineage::say_left_alone(&found);
            network::resolver_down_own(net, &lab).await?;
        } else {
            self.destroy_network(&lab, journal).await?;
        }
        files::remove_tree(net, &lab.cluster_dir, &lab.network_dir)?;
        if known {
            journal.forget(net)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// The overlap check runs before the lab network makes anything (the check itself is
    /// tested in [`crate::overlap`]; making a real lab on an overlapping subnet would touch the
    /// machine's network, which tests must not).
    #[test]
    fn the_subnet_is_checked_before_the_lab_network_is_made() {
        let src = include_str!("lib.rs");
        let body = &src[src
            .find("async fn provision_network(")
            .expect("provision_network")..];
        let at = |what: &str| {
            body.find(what)
                .unwrap_or_else(|| panic!("{what} not found"))
        };
        let check = at(concat!(
            "overlap::require_free_subnet",
            "(r, lab.subnet, &lab.bridge)"
        ));
        assert!(check < at(concat!("Status::", "Creating")));
        assert!(check < at(concat!("network::safety_route_up", "(")));
        assert!(check < at(concat!("network::bridge_up", "(")));
    }

    /// The lineage check runs before `provision` makes anything, even the cluster directory.
    #[test]
    fn ownership_is_checked_before_anything_is_made() {
        let src = include_str!("lib.rs");
        let body = &src[src.find("async fn provision(").expect("provision")..];
        let at = |what: &str| {
            body.find(what)
                .unwrap_or_else(|| panic!("{what} not found"))
        };
        let check = at(concat!("lineage::require_owned", "("));
        assert!(check < at(concat!("files::dir", "(")));
        assert!(check < at(concat!("self.provision_network", "(")));
    }
}
