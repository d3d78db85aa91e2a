//! The resources several targets' [`desired`](crate::desired) lists share: the security group
//! and its rules (the guide's Step 1 table over the file's CIDRs), key pairs, the NGINX VM, an
//! external load balancer, and the names they go by.

use ipnet::IpNet;

use crate::model::{Kind, Resource};
use crate::spec::ClusterSpec;
use crate::tables::{INGRESS_RULES, IngressRule, LISTENERS, Listener, Source};

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

/// The prefix of every cloud name the cluster owns.
pub fn cloud_name(spec: &ClusterSpec) -> String {
    format!("acura-ha-{}", spec.cluster.name)
}

pub(crate) fn security_group(spec: &ClusterSpec, network_attr: (&str, String)) -> Vec<Resource> {
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

pub(crate) fn key_pair(
    spec: &ClusterSpec,
    key_name: Option<&str>,
    public_key_file: Option<&str>,
) -> Resource {
    match (key_name, public_key_file) {
        (Some(existing), _) => Resource::new(Kind::KeyPair, None, existing)
            .attr("source", "existing key pair")
            .unmanaged(),
        (None, file) => Resource::new(Kind::KeyPair, None, cloud_name(spec))
            .attr("public_key_file", file.unwrap_or("-"))
            .tags(&spec.tags("key-pair")),
    }
}

pub(crate) fn lb_vm(spec: &ClusterSpec, size_key: &str, size: &str) -> Resource {
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

pub(crate) fn external_lb(spec: &ClusterSpec) -> Resource {
    let address = spec.load_balancer.address.clone().unwrap_or_default();
    Resource::new(Kind::ExistingHost, Some("load-balancer"), address.clone())
        .attr("address", address)
        .attr(
            "role",
            "external load balancer (yours: the tool configures nothing on it)",
        )
        .unmanaged()
}

/// `<node>:<listener key>`: the key of node `node`'s membership in the load-balancer group of
/// listener `key` — an Octavia pool member, an NLB target registration — in `member[…]`.
pub fn member_key(node: &str, key: &str) -> String {
    format!("{node}:{key}")
}

/// One node's membership in the group (pool, target group) of listener `key`, on `port`:
/// `member[<node>:<key>]`, named by the node. Each target adds what it comes after.
pub fn member(node: &str, key: &str, port: u16) -> Resource {
    Resource::new(Kind::Member, Some(&member_key(node, key)), node).attr("port", port)
}

/// The node and listener key of a `member[<node>:<key>]` address, as [`member`] builds them.
pub fn member_parts(address: &str) -> Option<(&str, &str)> {
    address
        .strip_prefix("member[")?
        .strip_suffix(']')?
        .rsplit_once(':')
}
