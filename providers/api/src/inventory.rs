//! The hosts and load-balancer address of a cluster, from the cluster file where they are
//! known offline (`static`, `local`) and from the state's recorded outputs otherwise.

use crate::desired::{LOCAL_LB, local_address, local_node_index};
use crate::model::{Host, Inventory, LbEndpoint, Recorded};
use crate::provider::ProviderError;
use crate::spec::{ClusterSpec, LbKind, ProviderKind};

/// The output key under which providers record the address the deploy host uses.
pub const OUTPUT_ADDRESS: &str = "address";

/// Whether addresses can be known without provisioning.
pub fn known_offline(spec: &ClusterSpec) -> bool {
    matches!(
        spec.provider_kind(),
        ProviderKind::Static | ProviderKind::Local
    )
}

/// The inventory, or which address is not known yet.
pub fn inventory(spec: &ClusterSpec, recorded: &[Recorded]) -> Result<Inventory, ProviderError> {
    match spec.provider_kind() {
        ProviderKind::Static => {
            let s = spec.static_hosts.as_ref().expect("static section");
            let nodes = s
                .nodes
                .iter()
                .map(|h| Host {
                    name: h.name.clone(),
                    address: h.address.to_string(),
                })
                .collect();
            let lb = match (&s.lb, spec.load_balancer.kind) {
                (Some(h), LbKind::Nginx) => LbEndpoint {
                    address: h.address.to_string(),
                    nginx_host: Some(Host {
                        name: h.name.clone(),
                        address: h.address.to_string(),
                    }),
                },
                _ => external(spec),
            };
            Ok(Inventory { nodes, lb })
        }
        ProviderKind::Local => {
            let nodes = spec
                .node_names()
                .into_iter()
                .enumerate()
                .map(|(k, name)| Host {
                    address: local_address(spec, local_node_index(spec, k, &name)).to_string(),
                    name,
                })
                .collect();
            let address = local_address(spec, LOCAL_LB).to_string();
            Ok(Inventory {
                nodes,
                lb: LbEndpoint {
                    address: address.clone(),
                    nginx_host: Some(Host {
                        name: spec.lb_host_name(),
                        address,
                    }),
                },
            })
        }
        ProviderKind::Aws | ProviderKind::OpenStack => {
            let output = |address: &str| -> Result<String, ProviderError> {
                recorded
                    .iter()
                    .find(|r| r.address == address)
                    .and_then(|r| r.outputs.get(OUTPUT_ADDRESS).cloned())
                    .ok_or_else(|| ProviderError::NotKnown {
                        what: format!("the address of {address}"),
                        hint: "the cloud assigns it: run `acura-ha up --only provision` first"
                            .into(),
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
    }
}

fn external(spec: &ClusterSpec) -> LbEndpoint {
    LbEndpoint {
        address: spec.load_balancer.address.clone().unwrap_or_default(),
        nginx_host: None,
    }
}
