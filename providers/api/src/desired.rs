//! What `up` converges to, per provider, computed offline from the cluster file and the guide's
//! tables: the plan shows it, the providers create it, and the state is compared against it.

use ipnet::IpNet;

use crate::model::{Kind, Resource};
use crate::spec::{ClusterSpec, LbKind, ProviderKind};
use crate::tables::{self, INGRESS_RULES, IngressRule, LISTENERS, Listener, Protocol, Source};

/// Where one concrete ingress rule admits traffic from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleSource {
    SelfGroup,
    Cidr(IpNet),
}

impl std::fmt::Display for RuleSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuleSource::SelfGroup => f.write_str("self"),
            RuleSource::Cidr(net) => write!(f, "{net}"),
        }
    }
}

/// One row of the guide's table applied to one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConcreteRule {
    pub rule: &'static IngressRule,
    pub source: RuleSource,
}

impl ConcreteRule {
    /// `tcp-22-198.51.100.7/32`, `tcp-1-65535-self`: the rule's key in resource addresses.
    pub fn key(&self) -> String {
        format!(
            "{}-{}-{}",
            self.rule.protocol,
            self.rule.ports(),
            self.source
        )
    }
}

/// The guide's Step 1 table expanded over the file's admin and public CIDRs, in table order.
pub fn ingress_rules(spec: &ClusterSpec) -> Vec<ConcreteRule> {
    let mut out = Vec::new();
    for rule in INGRESS_RULES {
        let sources: Vec<RuleSource> = match rule.source {
            Source::SelfGroup => vec![RuleSource::SelfGroup],
            Source::Admin => spec
                .access
                .admin_cidrs
                .iter()
                .map(|c| RuleSource::Cidr(*c))
                .collect(),
            Source::Public => spec
                .access
                .public_cidrs
                .iter()
                .map(|c| RuleSource::Cidr(*c))
                .collect(),
        };
        out.extend(
            sources
                .into_iter()
                .map(|source| ConcreteRule { rule, source }),
        );
    }
    out
}

/// `tcp-443`, `udp-12201`: a listener's key in resource addresses and cloud names.
pub fn listener_key(l: &Listener) -> String {
    format!("{}-{}", l.protocol, l.port)
}

/// Every resource the provider would create or use, in dependency order.
pub fn desired(spec: &ClusterSpec) -> Vec<Resource> {
    match spec.provider_kind() {
        ProviderKind::Aws => aws(spec),
        ProviderKind::OpenStack => openstack(spec),
        ProviderKind::Static => static_hosts(spec),
        ProviderKind::Local => local(spec),
    }
}

/// The prefix of every cloud name the cluster owns.
pub fn cloud_name(spec: &ClusterSpec) -> String {
    format!("acura-ha-{}", spec.cluster.name)
}

fn security_group(spec: &ClusterSpec, network_attr: (&str, String)) -> Vec<Resource> {
    let sg = Resource::new(Kind::SecurityGroup, None, cloud_name(spec))
        .attr(network_attr.0, network_attr.1)
        .attr("description", "Acura HA cluster (the guide's Step 1)")
        .tags(&spec.tags("security-group"));
    let mut out = vec![sg];
    for r in ingress_rules(spec) {
        let source_attr = match r.source {
            RuleSource::SelfGroup => "the group itself".to_string(),
            RuleSource::Cidr(net) => net.to_string(),
        };
        out.push(
            Resource::new(Kind::SecurityGroupRule, Some(&r.key()), r.key())
                .attr("protocol", r.rule.protocol)
                .attr("ports", r.rule.ports())
                .attr("source", source_attr)
                .attr("description", r.rule.description)
                .after("security_group"),
        );
    }
    out
}

fn key_pair(spec: &ClusterSpec, key_name: Option<&str>, public_key_file: Option<&str>) -> Resource {
    match (key_name, public_key_file) {
        (Some(existing), _) => Resource::new(Kind::KeyPair, None, existing)
            .attr("source", "existing key pair")
            .unmanaged(),
        (None, file) => Resource::new(Kind::KeyPair, None, cloud_name(spec))
            .attr("public_key_file", file.unwrap_or("-"))
            .tags(&spec.tags("key-pair")),
    }
}

fn aws(spec: &ClusterSpec) -> Vec<Resource> {
    let aws = spec.aws.as_ref().expect("aws section");
    let release = spec.nodes.os_version.release();
    let image = match &aws.ami {
        Some(ami) => ami.clone(),
        None => format!(
            "newest Canonical ubuntu-{}-{}-amd64-server-* (owner 099720109477)",
            release.codename(),
            release.version()
        ),
    };
    let vpc = aws.vpc_id.clone().unwrap_or_else(|| "default VPC".into());
    let subnet = |k: usize| -> String {
        if aws.subnet_ids.is_empty() {
            "a default subnet (spread over AZs)".into()
        } else {
            aws.subnet_ids[k % aws.subnet_ids.len()].clone()
        }
    };
    let mut out = vec![key_pair(
        spec,
        aws.key_name.as_deref(),
        aws.public_key_file.as_deref(),
    )];
    out.extend(security_group(spec, ("vpc", vpc.clone())));
    if spec.load_balancer.kind == LbKind::Cloud {
        // The NLB health-checks the nodes from its own addresses in the VPC, on every port a
        // target group checks.
        let mut ports: Vec<u16> = LISTENERS
            .iter()
            .map(|l| match l.protocol {
                Protocol::Tcp => l.port,
                Protocol::Udp => tables::kubernetes_listener().port,
            })
            .collect();
        ports.sort_unstable();
        ports.dedup();
        for port in ports {
            let key = format!("tcp-{port}-vpc");
            out.push(
                Resource::new(Kind::SecurityGroupRule, Some(&key), key.clone())
                    .attr("protocol", "tcp")
                    .attr("ports", port)
                    .attr("source", "the VPC's CIDR")
                    .attr("description", "NLB health checks")
                    .after("security_group"),
            );
        }
    }
    let names = spec.node_names();
    for (k, name) in names.iter().enumerate() {
        out.push(
            Resource::new(Kind::Instance, Some(name), name.clone())
                .attr("instance_type", &aws.instance_type)
                .attr("image", &image)
                .attr(
                    "root_volume",
                    format!(
                        "{} GiB gp3, one partition, deleted with the instance",
                        spec.nodes.volume_size_gb
                    ),
                )
                .attr("subnet", subnet(k))
                .attr("hostname", name)
                .attr("public_ip", aws.associate_public_ip)
                .tags(&spec.tags("node"))
                .after("key_pair")
                .after("security_group"),
        );
    }
    match spec.load_balancer.kind {
        LbKind::Cloud => {
            let lb_name = format!("{}-nlb", spec.cluster.name);
            out.push(
                Resource::new(Kind::LoadBalancer, None, lb_name)
                    .attr("type", "network")
                    .attr("scheme", "internet-facing")
                    .attr("subnets", subnet_summary(&aws.subnet_ids))
                    .tags(&spec.tags("load-balancer"))
                    .after("security_group"),
            );
            for l in LISTENERS {
                let key = listener_key(l);
                let tg = format!("target_group[{key}]");
                out.push(
                    Resource::new(
                        Kind::TargetGroup,
                        Some(&key),
                        format!("{}-{key}", spec.cluster.name),
                    )
                    .attr("protocol", l.protocol.as_str().to_uppercase())
                    .attr("port", l.port)
                    .attr("target_type", "instance")
                    .attr("health_check", health_check(l))
                    .attr("targets", names.join(", "))
                    .tags(&spec.tags("load-balancer"))
                    .after("load_balancer"),
                );
                out.push(
                    Resource::new(Kind::Listener, Some(&key), format!("{} {}", l.name, key))
                        .attr("protocol", l.protocol.as_str().to_uppercase())
                        .attr("port", l.port)
                        .attr("forward_to", &tg)
                        .after("load_balancer")
                        .after(&tg),
                );
            }
        }
        LbKind::Nginx => out.push(
            lb_vm(spec, "instance_type", &aws.lb_instance_type)
                .attr("image", &image)
                .attr("root_volume", "20 GiB gp3")
                .attr("subnet", subnet(0))
                .attr("public_ip", aws.associate_public_ip),
        ),
        LbKind::External => out.push(external_lb(spec)),
    }
    out
}

/// NLB and Octavia health checks: TCP on TCP listeners; UDP listeners are checked over TCP on
/// the Kubernetes API port on AWS (NLB health checks cannot be UDP), UDP-CONNECT on Octavia.
fn health_check(l: &Listener) -> String {
    match l.protocol {
        Protocol::Tcp => format!("TCP {}", l.port),
        Protocol::Udp => format!("TCP {}", tables::kubernetes_listener().port),
    }
}

fn subnet_summary(ids: &[String]) -> String {
    if ids.is_empty() {
        "the default subnets".into()
    } else {
        ids.join(", ")
    }
}

fn lb_vm(spec: &ClusterSpec, size_key: &str, size: &str) -> Resource {
    let name = spec.lb_host_name();
    Resource::new(Kind::LbInstance, Some(&name), name.clone())
        .attr(size_key, size)
        .attr("hostname", &name)
        .attr(
            "nginx_listeners",
            LISTENERS
                .iter()
                .map(listener_key)
                .collect::<Vec<_>>()
                .join(", "),
        )
        .tags(&spec.tags("lb"))
        .after("key_pair")
        .after("security_group")
}

fn external_lb(spec: &ClusterSpec) -> Resource {
    let address = spec.load_balancer.address.clone().unwrap_or_default();
    Resource::new(Kind::ExistingHost, Some("load-balancer"), address.clone())
        .attr("address", address)
        .attr(
            "role",
            "external load balancer (yours: the tool configures nothing on it)",
        )
        .unmanaged()
}

fn openstack(spec: &ClusterSpec) -> Vec<Resource> {
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
    out
}

fn static_hosts(spec: &ClusterSpec) -> Vec<Resource> {
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

fn local(spec: &ClusterSpec) -> Vec<Resource> {
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
