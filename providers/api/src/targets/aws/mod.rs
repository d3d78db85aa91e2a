//! `[aws]`: EC2 instances, a security group and a Network Load Balancer (or an NGINX instance),
//! created by the `acura-ha-aws` crate.

pub mod nlb;
pub mod section;

use super::shared::{external_lb, key_pair, lb_vm, listener_key, member, security_group};
use super::target::Target;
use crate::model::{Kind, Resource};
use crate::spec::{ClusterSpec, Invalid, LbKind, ProviderKind, invalid};
use crate::tables::{self, LISTENERS, Listener, Protocol};

pub const TARGET: Target = Target::cloud(
    ProviderKind::Aws,
    "aws",
    |spec| spec.aws.is_some(),
    validate,
    desired,
);

fn validate(spec: &ClusterSpec, out: &mut Vec<Invalid>) {
    let aws = spec.aws.as_ref().expect("aws section");
    if aws.key_name.is_some() && aws.public_key_file.is_some() {
        out.push(invalid(
            "aws.public_key_file",
            "aws.key_name and aws.public_key_file are both set: use an existing key pair or import one, not both",
        ));
    }
    if aws.key_name.is_none() && aws.public_key_file.is_none() {
        out.push(invalid(
            "aws",
            "[aws] needs key_name = \"<existing key pair>\" or public_key_file = \"<file.pub>\"",
        ));
    }
    if let Some(ami) = &aws.ami
        && !ami.starts_with("ami-")
    {
        out.push(invalid(
            "aws.ami",
            format!("aws.ami = {ami:?}: an AMI ID starts with \"ami-\"; or remove it to use the newest Canonical image"),
        ));
    }
    for (i, s) in aws.subnet_ids.iter().enumerate() {
        if !s.starts_with("subnet-") {
            out.push(invalid(
                format!("aws.subnet_ids[{i}]"),
                format!("aws.subnet_ids[{i}] = {s:?}: a subnet ID starts with \"subnet-\""),
            ));
        }
    }
    if let Some(v) = &aws.vpc_id
        && !v.starts_with("vpc-")
    {
        out.push(invalid(
            "aws.vpc_id",
            format!("aws.vpc_id = {v:?}: a VPC ID starts with \"vpc-\""),
        ));
    }
    for (key, t) in [
        ("instance_type", &aws.instance_type),
        ("lb_instance_type", &aws.lb_instance_type),
    ] {
        if !t.contains('.') || t.contains(char::is_whitespace) {
            out.push(invalid(
                format!("aws.{key}"),
                format!("aws.{key} = {t:?}: not an EC2 instance type such as \"m5.2xlarge\""),
            ));
        }
    }
}

fn desired(spec: &ClusterSpec) -> Vec<Resource> {
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
        // The NLB's own group (#11.11): the nodes admit its traffic and health checks from it,
        // never from the VPC's CIDR.
        out.push(
            Resource::new(Kind::SecurityGroup, Some("nlb"), nlb::nlb_group_name(spec))
                .attr("vpc", &vpc)
                .attr(
                    "description",
                    "the Network Load Balancer's (each listener from the guide's sources)",
                )
                .tags(&spec.tags(nlb::NLB_GROUP_ROLE)),
        );
        for r in nlb::nlb_rules(spec) {
            let group = match r.group {
                nlb::Group::Nodes => "security_group",
                nlb::Group::Nlb => nlb::NLB_GROUP_ADDRESS,
            };
            let mut res = Resource::new(Kind::SecurityGroupRule, Some(&r.key()), r.key())
                .attr("protocol", r.protocol)
                .attr("ports", r.port)
                .attr("source", r.source_text())
                .attr("description", r.description)
                .after(group);
            // A rule naming the other group needs that group first.
            if let nlb::NlbRuleSource::Group(source) = r.source
                && source != r.group
            {
                res = res.after(match source {
                    nlb::Group::Nodes => "security_group",
                    nlb::Group::Nlb => nlb::NLB_GROUP_ADDRESS,
                });
            }
            out.push(res);
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
                    // An NLB takes its security group only at creation: an NLB recorded without
                    // one shows as a replace, this attribute its reason.
                    .attr("security_groups", nlb::nlb_group_name(spec))
                    .tags(&spec.tags("load-balancer"))
                    .after(nlb::NLB_GROUP_ADDRESS),
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
                out.extend(names.iter().map(|n| registration(n, &key, l.port)));
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

/// Node `node`'s registration in the target group of listener `key` (`member[<node>:<key>]`,
/// named as an Octavia pool member is): what `plan` expects and what the provider records once
/// RegisterTargets succeeded (or found it registered), from this one constructor.
pub fn registration(node: &str, key: &str, port: u16) -> Resource {
    member(node, key, port)
        .after(&format!("target_group[{key}]"))
        .after(&format!("{}[{node}]", Kind::Instance.as_str()))
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
