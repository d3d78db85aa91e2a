//! One target's row in the registry ([`TARGETS`](super::TARGETS)): what the shared code asks of
//! it, and the inventory the clouds share.

use crate::model::{Host, Inventory, LbEndpoint, OUTPUT_ADDRESS, Recorded, Resource};
use crate::provider::ProviderError;
use crate::spec::{ClusterSpec, Invalid, LbKind, ProviderKind};

/// One target: what the shared code asks of it.
pub struct Target {
    pub kind: ProviderKind,
    /// Its section's key in the cluster file (`[aws]`) and its name in messages and the state.
    pub name: &'static str,
    /// Whether the file has its section.
    pub present: fn(&ClusterSpec) -> bool,
    /// Its section's checks, run after the shared ones when it is the file's only section.
    pub validate: fn(&ClusterSpec, &mut Vec<Invalid>),
    /// What `up` converges to, in dependency order. Offline: no cloud calls.
    pub desired: fn(&ClusterSpec) -> Vec<Resource>,
    /// The hosts and the load balancer's address, from the file or the recorded outputs.
    pub inventory: fn(&ClusterSpec, &[Recorded]) -> Result<Inventory, ProviderError>,
    /// Whether the provider creates the hosts (and so can create a load balancer VM).
    pub creates_hosts: bool,
    /// Whether the addresses are known without provisioning.
    pub known_offline: bool,
    /// Whether `load_balancer.kind = "cloud"` is possible.
    pub cloud_lb: bool,
    /// Whether it makes an SSH key when `[access]` gives none.
    pub makes_ssh_key: bool,
    /// How long `up` waits for SSH logins unless `preflight.ssh_wait_secs` says.
    pub ssh_wait_secs: u64,
    /// The node names when the file lists them; `None`: `<prefix>-<k>`.
    pub node_names: fn(&ClusterSpec) -> Option<Vec<String>>,
    /// The NGINX host's name when the file gives it; `None`: `<prefix>-lb`.
    pub lb_host_name: fn(&ClusterSpec) -> Option<String>,
}

impl Target {
    /// A cloud: it creates VMs (which boot slowly) and has its own load balancer service; the
    /// hosts' addresses are the outputs the provider records.
    pub const fn cloud(
        kind: ProviderKind,
        name: &'static str,
        present: fn(&ClusterSpec) -> bool,
        validate: fn(&ClusterSpec, &mut Vec<Invalid>),
        desired: fn(&ClusterSpec) -> Vec<Resource>,
    ) -> Target {
        Target {
            kind,
            name,
            present,
            validate,
            desired,
            inventory: from_outputs,
            creates_hosts: true,
            known_offline: false,
            cloud_lb: true,
            makes_ssh_key: false,
            ssh_wait_secs: 900,
            node_names: |_| None,
            lb_host_name: |_| None,
        }
    }
}

/// The clouds' inventory: every address is a recorded output of the resource it belongs to.
pub(crate) fn from_outputs(
    spec: &ClusterSpec,
    recorded: &[Recorded],
) -> Result<Inventory, ProviderError> {
    let output = |address: &str| -> Result<String, ProviderError> {
        recorded
            .iter()
            .find(|r| r.address == address)
            .and_then(|r| r.outputs.get(OUTPUT_ADDRESS).cloned())
            .ok_or_else(|| ProviderError::NotKnown {
                what: format!("the address of {address}"),
                hint: format!(
                    "the cloud assigns it: run {} first",
                    crate::hint::command("up --only provision")
                ),
            })
    };
    let nodes = spec
        .node_names()
        .into_iter()
        .map(|name| {
            Ok(Host {
                address: output(&format!("instance[{name}]"))?,
                name,
            })
        })
        .collect::<Result<Vec<_>, ProviderError>>()?;
    let lb = match spec.load_balancer.kind {
        LbKind::External => external(spec),
        LbKind::Cloud => LbEndpoint {
            address: output("load_balancer")?,
            nginx_host: None,
        },
        LbKind::Nginx => {
            let name = spec.lb_host_name();
            let address = output(&format!("lb_instance[{name}]"))?;
            LbEndpoint {
                address: address.clone(),
                nginx_host: Some(Host { name, address }),
            }
        }
    };
    Ok(Inventory { nodes, lb })
}

/// An external load balancer: the file's address, nothing to configure.
pub(crate) fn external(spec: &ClusterSpec) -> LbEndpoint {
    LbEndpoint {
        address: spec.load_balancer.address.clone().unwrap_or_default(),
        nginx_host: None,
    }
}
