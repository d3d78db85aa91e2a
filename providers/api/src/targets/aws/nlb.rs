//! The Network Load Balancer's own security group (#11.11) and the rules between it and the
//! nodes' group. Without a group of its own the NLB's health checks could only be admitted from
//! the VPC's CIDR — which opened every health-checked port, the registry's 15000 among them, to
//! every instance of the VPC. With one, the nodes admit the NLB's traffic and health checks from
//! that group alone, and the NLB's group admits each listener from whom the guide's Step 1 table
//! admits that port. An NLB takes a security group only at creation.

use ipnet::IpNet;

use crate::spec::ClusterSpec;
use crate::tables::{self, LISTENERS, Protocol, Source};

/// The NLB's security group in the desired list.
pub const NLB_GROUP_ADDRESS: &str = "security_group[nlb]";
/// The `Role` tag of the NLB's group (discovery tells the two groups apart by it).
pub const NLB_GROUP_ROLE: &str = "load-balancer";

/// The NLB's security group's name: the cluster's group's with `-nlb`.
pub fn nlb_group_name(spec: &ClusterSpec) -> String {
    format!("{}-nlb", crate::targets::shared::cloud_name(spec))
}

/// One of the two security groups of a cluster behind an NLB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// The nodes' group (`security_group`).
    Nodes,
    /// The NLB's group (`security_group[nlb]`).
    Nlb,
}

/// Whom a rule admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NlbRuleSource {
    Cidr(IpNet),
    Group(Group),
}

/// One ingress rule that exists because of the NLB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NlbRule {
    /// The group that holds the rule.
    pub group: Group,
    pub protocol: Protocol,
    pub port: u16,
    pub source: NlbRuleSource,
    pub description: &'static str,
}

impl NlbRule {
    /// `nlb-tcp-443-0.0.0.0/0`, `nlb-tcp-15000-nodes` (on the NLB's group); `tcp-443-nlb` (on the
    /// nodes' group).
    pub fn key(&self) -> String {
        let source = match self.source {
            NlbRuleSource::Cidr(net) => net.to_string(),
            NlbRuleSource::Group(Group::Nodes) => "nodes".into(),
            NlbRuleSource::Group(Group::Nlb) => "nlb".into(),
        };
        match self.group {
            Group::Nlb => format!("nlb-{}-{}-{source}", self.protocol, self.port),
            Group::Nodes => format!("{}-{}-{source}", self.protocol, self.port),
        }
    }

    pub fn address(&self) -> String {
        format!("security_group_rule[{}]", self.key())
    }

    /// What the plan shows as the rule's source.
    pub fn source_text(&self) -> String {
        match self.source {
            NlbRuleSource::Cidr(net) => net.to_string(),
            NlbRuleSource::Group(Group::Nodes) => "the cluster's security group".into(),
            NlbRuleSource::Group(Group::Nlb) => "the NLB's security group".into(),
        }
    }
}

/// Every rule the NLB needs, the NLB's group's first: each listener from the sources the Step 1
/// table gives its port ([`tables::lb_listener_source`]); then, on the nodes' group, every
/// listener's traffic port and every health-check port from the NLB's group.
pub fn nlb_rules(spec: &ClusterSpec) -> Vec<NlbRule> {
    let mut out = Vec::new();
    for l in LISTENERS {
        let sources: Vec<NlbRuleSource> = match tables::lb_listener_source(l) {
            Source::SelfGroup => vec![NlbRuleSource::Group(Group::Nodes)],
            Source::Admin => spec
                .access
                .admin_cidrs
                .iter()
                .map(|c| NlbRuleSource::Cidr(*c))
                .collect(),
            Source::Public => spec
                .access
                .public_cidrs
                .iter()
                .map(|c| NlbRuleSource::Cidr(*c))
                .collect(),
        };
        out.extend(sources.into_iter().map(|source| NlbRule {
            group: Group::Nlb,
            protocol: l.protocol,
            port: l.port,
            source,
            description: l.description,
        }));
    }
    // Traffic (client IP preservation keeps the clients' addresses, which a rule naming the
    // NLB's group still admits) and health checks, which NLBs send over TCP (UDP listeners are
    // checked on the Kubernetes API port).
    let mut ports: Vec<(Protocol, u16)> = LISTENERS
        .iter()
        .flat_map(|l| {
            let check = match l.protocol {
                Protocol::Tcp => l.port,
                Protocol::Udp => tables::kubernetes_listener().port,
            };
            [(l.protocol, l.port), (Protocol::Tcp, check)]
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    out.extend(ports.into_iter().map(|(protocol, port)| NlbRule {
        group: Group::Nodes,
        protocol,
        port,
        source: NlbRuleSource::Group(Group::Nlb),
        description: "NLB traffic and health checks, from the NLB's security group",
    }));
    out
}
