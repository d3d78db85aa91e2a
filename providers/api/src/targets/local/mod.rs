//! `[local]`: the lab target. Every "VM" is a network namespace on the deploy machine with its own
//! address on a lab bridge, created by the `acura-ha-local` crate; the addresses follow from
//! `local.subnet`, so they are known offline.

pub mod section;

use super::shared::ingress_rules;
use super::target::Target;
use crate::model::{Host, Inventory, Kind, LbEndpoint, Recorded, Resource};
use crate::provider::ProviderError;
use crate::spec::{ClusterSpec, Invalid, LbKind, ProviderKind, invalid};

pub const TARGET: Target = Target {
    kind: ProviderKind::Local,
    name: "local",
    present: |spec| spec.local.is_some(),
    validate,
    desired,
    inventory,
    creates_hosts: true,
    known_offline: true,
    cloud_lb: false,
    makes_ssh_key: true,
    ssh_wait_secs: 60,
    node_names: |_| None,
    lb_host_name: |_| None,
};

fn validate(spec: &ClusterSpec, out: &mut Vec<Invalid>) {
    if spec.load_balancer.kind == LbKind::External {
        out.push(invalid(
            "load_balancer.kind",
            "load_balancer.kind = \"external\": the local target makes its own NGINX host; use \"nginx\"",
        ));
    }
    let l = spec.local.as_ref().expect("local section");
    let net = l.subnet;
    if !net.addr().is_private() {
        out.push(invalid(
            "local.subnet",
            format!("local.subnet = \"{net}\": the lab must use a private range (10/8, 172.16/12, 192.168/16) so no real address is ever shadowed"),
        ));
    }
    if !(16..=26).contains(&net.prefix_len()) {
        out.push(invalid(
            "local.subnet",
            format!("local.subnet = \"{net}\": use a prefix from /16 to /26"),
        ));
    } else if (net.hosts().count() as u32) < 11 + spec.nodes.count {
        out.push(invalid(
            "local.subnet",
            format!(
                "local.subnet = \"{net}\" is too small for {} nodes (node k is .10+k): use a larger subnet",
                spec.nodes.count
            ),
        ));
    }
    if net.network() != net.addr() {
        out.push(invalid(
            "local.subnet",
            format!(
                "local.subnet = \"{net}\": not a network address; use \"{}\"",
                net.trunc()
            ),
        ));
    }
}

/// The local target's addresses: the deploy side `.1`, the NGINX host `.10`, node k `.10+k`.
pub fn local_address(spec: &ClusterSpec, host_index: u32) -> std::net::Ipv4Addr {
    let net = spec.local.as_ref().expect("local section").subnet;
    let base = u32::from(net.network());
    std::net::Ipv4Addr::from(base + host_index)
}

/// Index (in [`local_address`]) of the `k`-th node (0-based) named `name`: by the name's
/// number, not its position, so `node remove` never moves the other nodes.
pub fn local_node_index(spec: &ClusterSpec, k: usize, name: &str) -> u32 {
    LOCAL_LB + spec.node_number(name).unwrap_or(k as u32 + 1)
}

/// Index (in [`local_address`]) of the deploy side of the lab bridge.
pub const LOCAL_GATEWAY: u32 = 1;
/// Index of the NGINX host.
pub const LOCAL_LB: u32 = 10;

fn desired(spec: &ClusterSpec) -> Vec<Resource> {
    let l = spec.local.as_ref().expect("local section");
    let gw = local_address(spec, LOCAL_GATEWAY);
    let mut out = vec![
        Resource::new(Kind::LabNetwork, None, format!("ah-{}", spec.cluster.name))
            .attr("subnet", l.subnet)
            .attr("deploy_address", gw)
            .attr(
                "safety_route",
                format!("unreachable {} metric 4000", l.subnet),
            )
            .attr(
                "resolver",
                format!("{gw}:53, answers lab names only, never forwards"),
            ),
    ];
    if spec.access.ssh_private_key.is_none() {
        out.push(
            Resource::new(Kind::KeyPair, None, "id_ed25519")
                .attr("type", "ed25519, generated into the state directory"),
        );
    }
    let rules = ingress_rules(spec).len();
    let names = spec.node_names();
    for (k, name) in names.iter().enumerate() {
        let mut r = Resource::new(Kind::LabHost, Some(name), name.clone())
            .attr(
                "address",
                local_address(spec, local_node_index(spec, k, name)),
            )
            .attr("hostname", name)
            .attr("sshd", "own host key, key-only login")
            .attr("firewall", format!("nftables: the guide's {rules} rules"))
            .after("lab_network");
        if out.iter().any(|r| r.kind == Kind::KeyPair) {
            r = r.after("key_pair");
        }
        out.push(r);
    }
    let lb = spec.lb_host_name();
    let mut r = Resource::new(Kind::LabHost, Some(&lb), lb.clone())
        .attr("address", local_address(spec, LOCAL_LB))
        .attr("hostname", &lb)
        .attr("sshd", "own host key, key-only login")
        .attr("firewall", format!("nftables: the guide's {rules} rules"))
        .attr("role", "NGINX load balancer")
        .after("lab_network");
    if out.iter().any(|r| r.kind == Kind::KeyPair) {
        r = r.after("key_pair");
    }
    out.push(r);
    out
}

fn inventory(spec: &ClusterSpec, _recorded: &[Recorded]) -> Result<Inventory, ProviderError> {
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
