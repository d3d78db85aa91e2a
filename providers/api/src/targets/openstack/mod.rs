//! `[openstack]`: Nova servers on new volumes in a server group, a security group and an Octavia
//! load balancer (or an NGINX server), created by the `acura-ha-openstack` crate.

pub mod section;

use super::shared::{self, cloud_name, external_lb, key_pair, lb_vm, listener_key, security_group};
use super::target::Target;
use crate::model::{Kind, Resource};
use crate::spec::{ClusterSpec, Invalid, LbKind, ProviderKind, invalid};
use crate::tables::{LISTENERS, Protocol};

pub const TARGET: Target = Target::cloud(
    ProviderKind::OpenStack,
    "openstack",
    |spec| spec.openstack.is_some(),
    validate,
    desired,
);

fn validate(spec: &ClusterSpec, out: &mut Vec<Invalid>) {
    let os = spec.openstack.as_ref().expect("openstack section");
    for (key, v) in [
        ("flavor", &os.flavor),
        ("image", &os.image),
        ("network", &os.network),
    ] {
        if v.trim().is_empty() {
            out.push(invalid(
                format!("openstack.{key}"),
                format!("openstack.{key} is empty: give a name or ID"),
            ));
        }
    }
    if os.key_name.is_some() && os.public_key_file.is_some() {
        out.push(invalid(
            "openstack.public_key_file",
            "openstack.key_name and openstack.public_key_file are both set: use an existing key pair or import one, not both",
        ));
    }
    if os.key_name.is_none() && os.public_key_file.is_none() {
        out.push(invalid(
            "openstack",
            "[openstack] needs key_name = \"<existing key pair>\" or public_key_file = \"<file.pub>\"",
        ));
    }
    if spec.load_balancer.kind == LbKind::Nginx && os.lb_flavor.is_none() {
        out.push(invalid(
            "openstack",
            "load_balancer.kind = \"nginx\" needs openstack.lb_flavor (the NGINX VM's flavor)",
        ));
    }
}

fn desired(spec: &ClusterSpec) -> Vec<Resource> {
    let os = spec.openstack.as_ref().expect("openstack section");
    let mut out = vec![key_pair(
        spec,
        os.key_name.as_deref(),
        os.public_key_file.as_deref(),
    )];
    out.extend(security_group(spec, ("network", os.network.clone())));
    out.push(
        Resource::new(
            Kind::ServerGroup,
            None,
            format!("{}-nodes", cloud_name(spec)),
        )
        .attr("policy", os.anti_affinity.policy()),
    );
    let fip = os
        .floating_ip_network
        .clone()
        .unwrap_or_else(|| "none".into());
    let names = spec.node_names();
    for name in &names {
        out.push(
            Resource::new(Kind::Instance, Some(name), name.clone())
                .attr("flavor", &os.flavor)
                .attr("image", &os.image)
                .attr(
                    "boot_volume",
                    format!(
                        "{} GB new volume from the image, deleted with the server",
                        spec.nodes.volume_size_gb
                    ),
                )
                .attr("network", &os.network)
                .attr("floating_ip", &fip)
                .attr("hostname", name)
                .tags(&spec.tags("node"))
                .after("key_pair")
                .after("security_group")
                .after("server_group"),
        );
    }
    match spec.load_balancer.kind {
        LbKind::Cloud => {
            out.push(
                Resource::new(Kind::LoadBalancer, None, cloud_name(spec))
                    .attr("provider", "octavia")
                    .attr("vip_network", &os.network)
                    .attr("floating_ip", &fip)
                    .tags(&spec.tags("load-balancer")),
            );
            for l in LISTENERS {
                let key = listener_key(l);
                let proto = l.protocol.as_str().to_uppercase();
                out.push(
                    Resource::new(Kind::Listener, Some(&key), format!("{} {}", l.name, key))
                        .attr("protocol", &proto)
                        .attr("port", l.port)
                        .after("load_balancer"),
                );
                out.push(
                    Resource::new(
                        Kind::Pool,
                        Some(&key),
                        format!("{}-{key}", spec.cluster.name),
                    )
                    .attr("protocol", &proto)
                    .attr("algorithm", "ROUND_ROBIN")
                    .attr(
                        "members",
                        names
                            .iter()
                            .map(|n| format!("{n}:{}", l.port))
                            .collect::<Vec<_>>()
                            .join(", "),
                    )
                    .after(&format!("listener[{key}]")),
                );
                let monitor = match l.protocol {
                    Protocol::Tcp => "TCP",
                    Protocol::Udp => "UDP-CONNECT",
                };
                out.push(
                    Resource::new(
                        Kind::HealthMonitor,
                        Some(&key),
                        format!("{}-{key}", spec.cluster.name),
                    )
                    .attr("type", monitor)
                    .after(&format!("pool[{key}]")),
                );
                out.extend(names.iter().map(|n| member(n, &key, l.port)));
            }
        }
        LbKind::Nginx => out.push(
            lb_vm(spec, "flavor", os.lb_flavor.as_deref().unwrap_or("-"))
                .attr("image", &os.image)
                .attr("network", &os.network)
                .attr("floating_ip", &fip),
        ),
        LbKind::External => out.push(external_lb(spec)),
    }
    // A floating IP per server the provider makes (the nodes, and the NGINX server); Octavia's
    // VIP address is an output of the load balancer itself.
    if os.floating_ip_network.is_some() {
        let mut hosts = names.clone();
        if spec.load_balancer.kind == LbKind::Nginx {
            hosts.push(spec.lb_host_name());
        }
        out.extend(hosts.iter().map(|h| floating_ip(spec, h)));
    }
    out
}

/// One node's membership in the pool of listener `key` (the shared [`shared::member`], after
/// `pool[<key>]`): what the provider records as it adds the member and what `plan` expects,
/// from this one constructor.
pub fn member(node: &str, key: &str, port: u16) -> Resource {
    shared::member(node, key, port).after(&format!("pool[{key}]"))
}

/// The description that names a floating IP's owner: `acura-ha <cluster> <host>`.
pub fn fip_description(spec: &ClusterSpec, host: &str) -> String {
    format!("acura-ha {} {host}", spec.cluster.name)
}

/// The floating IP of server `host`, as the provider records it and `plan` expects it.
pub fn floating_ip(spec: &ClusterSpec, host: &str) -> Resource {
    let server = if host == spec.lb_host_name() {
        Kind::LbInstance
    } else {
        Kind::Instance
    };
    Resource::new(Kind::FloatingIp, Some(host), fip_description(spec, host))
        .after(&format!("{}[{host}]", server.as_str()))
}
