//! `[static]`: bring your own VMs. Nothing is created or deleted; the hosts and the load balancer
//! come from the cluster file.

pub mod section;

use async_trait::async_trait;

use super::shared::external_lb;
use super::target::{Target, external};
use crate::model::{Host, Inventory, Kind, LbEndpoint, Recorded, Resource};
use crate::provider::{Journal, Provider, ProviderError};
use crate::spec::{ClusterSpec, Invalid, LbKind, ProviderKind, check_hostname, invalid};

pub const TARGET: Target = Target {
    kind: ProviderKind::Static,
    name: "static",
    present: |spec| spec.static_hosts.is_some(),
    validate,
    desired,
    inventory,
    creates_hosts: false,
    known_offline: true,
    cloud_lb: false,
    makes_ssh_key: false,
    ssh_wait_secs: 60,
    node_names: |spec| {
        let s = spec.static_hosts.as_ref()?;
        Some(s.nodes.iter().map(|h| h.name.clone()).collect())
    },
    lb_host_name: |spec| Some(spec.static_hosts.as_ref()?.lb.as_ref()?.name.clone()),
};

fn validate(spec: &ClusterSpec, out: &mut Vec<Invalid>) {
    let s = spec.static_hosts.as_ref().expect("static section");
    if s.nodes.len() != spec.nodes.count as usize {
        out.push(invalid(
            "static.nodes",
            format!(
                "static.nodes lists {} hosts but nodes.count = {}: list exactly nodes.count hosts",
                s.nodes.len(),
                spec.nodes.count
            ),
        ));
    }
    let mut seen_names = std::collections::HashSet::new();
    let mut seen_addrs = std::collections::HashSet::new();
    let lb = s.lb.iter().map(|h| ("static.lb".to_string(), h));
    let nodes = s
        .nodes
        .iter()
        .enumerate()
        .map(|(i, h)| (format!("static.nodes[{i}]"), h));
    for (path, h) in nodes.chain(lb) {
        if let Err(why) = check_hostname(&h.name) {
            out.push(invalid(
                format!("{path}.name"),
                format!(
                    "{path}.name = {:?}: {why}; hostnames must not be FQDNs (no dots)",
                    h.name
                ),
            ));
        }
        if !seen_names.insert(h.name.clone()) {
            out.push(invalid(
                format!("{path}.name"),
                format!("{path}.name = {:?} is listed twice", h.name),
            ));
        }
        if !seen_addrs.insert(h.address) {
            out.push(invalid(
                format!("{path}.address"),
                format!("{path}.address = {} is listed twice", h.address),
            ));
        }
    }
    match (spec.load_balancer.kind, &s.lb) {
        (LbKind::Nginx, None) => out.push(invalid(
            "static",
            "load_balancer.kind = \"nginx\" needs static.lb = { name = \"...\", address = \"...\" }: the host the tool configures NGINX on",
        )),
        (LbKind::External, Some(_)) => out.push(invalid(
            "static.lb",
            "static.lb is only for load_balancer.kind = \"nginx\"; an external load balancer is given by load_balancer.address",
        )),
        _ => {}
    }
    if spec.nodes.hostname_prefix.is_some() {
        out.push(invalid(
            "nodes.hostname_prefix",
            "nodes.hostname_prefix does not apply to [static]: the hosts' names are in static.nodes",
        ));
    }
}

fn desired(spec: &ClusterSpec) -> Vec<Resource> {
    let s = spec.static_hosts.as_ref().expect("static section");
    let mut out: Vec<Resource> = s
        .nodes
        .iter()
        .map(|h| {
            Resource::new(Kind::ExistingHost, Some(&h.name), h.name.clone())
                .attr("address", h.address)
                .attr("role", "node")
                .unmanaged()
        })
        .collect();
    match (&s.lb, spec.load_balancer.kind) {
        (Some(h), LbKind::Nginx) => out.push(
            Resource::new(Kind::ExistingHost, Some(&h.name), h.name.clone())
                .attr("address", h.address)
                .attr("role", "NGINX load balancer (configured by the bootstrap)")
                .unmanaged(),
        ),
        _ => out.push(external_lb(spec)),
    }
    out
}

fn inventory(spec: &ClusterSpec, _recorded: &[Recorded]) -> Result<Inventory, ProviderError> {
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

/// The static target's [`Provider`]: it creates nothing; its hosts are the file's.
pub struct StaticProvider;

#[async_trait]
impl Provider for StaticProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Static
    }

    async fn provision(
        &self,
        spec: &ClusterSpec,
        _journal: &mut dyn Journal,
    ) -> Result<Inventory, ProviderError> {
        inventory(spec, &[])
    }

    async fn destroy(
        &self,
        _spec: &ClusterSpec,
        _journal: &mut dyn Journal,
    ) -> Result<(), ProviderError> {
        // The hosts are the user's: tearing down a static cluster deletes nothing on them.
        Ok(())
    }
}
