//! The security group and the guide's ingress rules (plus the NLB's health checks from the VPC).

use std::collections::BTreeMap;

use acura_ha_api::desired::{RuleSource, ingress_rules};
use acura_ha_api::model::{Kind, Resource, Status};
use acura_ha_api::provider::ProviderError;
use acura_ha_api::spec::ClusterSpec;
use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType, UserIdGroupPair};

use super::{Net, desired_one, filter, tags};
use crate::error;
use crate::{Clients, SharedJournal, record};

/// The security group (found by name in the VPC, or created) and every rule of the guide's table.
pub(crate) async fn security_group(
    c: &Clients,
    spec: &ClusterSpec,
    desired: &[Resource],
    net: &Net,
    journal: &SharedJournal<'_>,
) -> Result<String, ProviderError> {
    let r = desired_one(desired, "security_group").expect("a security group is planned");
    let name = r.name.clone();
    let existing = c
        .ec2
        .describe_security_groups()
        .filters(filter("group-name", &name))
        .filters(filter("vpc-id", &net.vpc_id))
        .send()
        .await
        .map_err(|e| error::ec2(e).into_provider(&format!("security group {name}")))?;
    let group_id = match existing
        .security_groups()
        .first()
        .and_then(|g| g.group_id())
    {
        Some(id) => id.to_string(),
        None => {
            record(journal, r, Status::Creating, None, BTreeMap::new()).await?;
            let out = c
                .ec2
                .create_security_group()
                .group_name(&name)
                .description("Acura HA cluster (acura-ha)")
                .vpc_id(&net.vpc_id)
                .tag_specifications(tags(
                    spec,
                    "security-group",
                    &name,
                    ResourceType::SecurityGroup,
                ))
                .send()
                .await
                .map_err(|e| error::ec2(e).into_provider(&format!("security group {name}")))?;
            out.group_id().unwrap_or_default().to_string()
        }
    };
    let mut outputs = BTreeMap::new();
    outputs.insert("vpc_id".to_string(), net.vpc_id.clone());
    record(journal, r, Status::Ready, Some(group_id.clone()), outputs).await?;
    rules(c, spec, desired, &group_id, net, journal).await?;
    Ok(group_id)
}

/// A rule as EC2 sees it: protocol, ports, and the CIDR or group it admits.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RuleKey {
    protocol: String,
    from: i32,
    to: i32,
    source: String,
}

fn wanted_rules(
    spec: &ClusterSpec,
    desired: &[Resource],
    group_id: &str,
    net: &Net,
) -> Vec<(String, RuleKey, IpPermission)> {
    let mut out = Vec::new();
    for rule in ingress_rules(spec) {
        let address = format!("security_group_rule[{}]", rule.key());
        if desired_one(desired, &address).is_none() {
            continue;
        }
        let (source, perm) = permission(
            rule.rule.protocol.as_str(),
            rule.rule.from_port,
            rule.rule.to_port,
            match rule.source {
                RuleSource::SelfGroup => Err(group_id),
                RuleSource::Cidr(c) => Ok(c.to_string()),
            },
            rule.rule.description,
        );
        out.push((
            address,
            RuleKey {
                protocol: rule.rule.protocol.as_str().into(),
                from: rule.rule.from_port as i32,
                to: rule.rule.to_port as i32,
                source,
            },
            perm,
        ));
    }
    // The NLB's health checks come from its addresses in the VPC.
    for r in desired
        .iter()
        .filter(|r| r.kind == Kind::SecurityGroupRule && r.address.ends_with("-vpc]"))
    {
        let port: u16 = r
            .attrs
            .get("ports")
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let (source, perm) = permission(
            "tcp",
            port,
            port,
            Ok(net.vpc_cidr.clone()),
            "NLB health checks from the VPC",
        );
        out.push((
            r.address.clone(),
            RuleKey {
                protocol: "tcp".into(),
                from: port as i32,
                to: port as i32,
                source,
            },
            perm,
        ));
    }
    out
}

fn permission(
    protocol: &str,
    from: u16,
    to: u16,
    source: Result<String, &str>,
    description: &str,
) -> (String, IpPermission) {
    let b = IpPermission::builder()
        .ip_protocol(protocol)
        .from_port(from as i32)
        .to_port(to as i32);
    match source {
        Ok(cidr) => (
            cidr.clone(),
            b.ip_ranges(
                IpRange::builder()
                    .cidr_ip(cidr)
                    .description(description)
                    .build(),
            )
            .build(),
        ),
        Err(group) => (
            group.to_string(),
            b.user_id_group_pairs(
                UserIdGroupPair::builder()
                    .group_id(group)
                    .description(description)
                    .build(),
            )
            .build(),
        ),
    }
}

async fn existing_rules(
    c: &Clients,
    group_id: &str,
) -> Result<Vec<(RuleKey, String)>, ProviderError> {
    let out = c
        .ec2
        .describe_security_group_rules()
        .filters(filter("group-id", group_id))
        .send()
        .await
        .map_err(|e| error::ec2(e).into_provider(&format!("rules of {group_id}")))?;
    Ok(out
        .security_group_rules()
        .iter()
        .filter(|r| r.is_egress() != Some(true))
        .map(|r| {
            let source = r
                .cidr_ipv4()
                .or(r.cidr_ipv6())
                .map(String::from)
                .or_else(|| {
                    r.referenced_group_info()
                        .and_then(|g| g.group_id())
                        .map(String::from)
                })
                .unwrap_or_default();
            (
                RuleKey {
                    protocol: r.ip_protocol().unwrap_or_default().to_string(),
                    from: r.from_port().unwrap_or(-1),
                    to: r.to_port().unwrap_or(-1),
                    source,
                },
                r.security_group_rule_id().unwrap_or_default().to_string(),
            )
        })
        .collect())
}

/// One describe, then one authorize for every rule missing. A rule that exists already
/// (`InvalidPermission.Duplicate`, e.g. a race with another run) counts as created.
async fn rules(
    c: &Clients,
    spec: &ClusterSpec,
    desired: &[Resource],
    group_id: &str,
    net: &Net,
    journal: &SharedJournal<'_>,
) -> Result<(), ProviderError> {
    let wanted = wanted_rules(spec, desired, group_id, net);
    let mut have = existing_rules(c, group_id).await?;
    let missing: Vec<&(String, RuleKey, IpPermission)> = wanted
        .iter()
        .filter(|(_, k, _)| !have.iter().any(|(h, _)| h == k))
        .collect();
    if !missing.is_empty() {
        let mut req = c.ec2.authorize_security_group_ingress().group_id(group_id);
        for (_, _, p) in &missing {
            req = req.ip_permissions(p.clone());
        }
        match req.send().await {
            Ok(_) => {}
            Err(e) => {
                let e = error::ec2(e);
                if !e.is("InvalidPermission.Duplicate") {
                    return Err(e.into_provider(&format!("ingress rules of {group_id}")));
                }
                // Some exist: add the others one by one.
                for (address, _, p) in &missing {
                    let one = c
                        .ec2
                        .authorize_security_group_ingress()
                        .group_id(group_id)
                        .ip_permissions(p.clone())
                        .send()
                        .await;
                    if let Err(e) = one {
                        let e = error::ec2(e);
                        if !e.is("InvalidPermission.Duplicate") {
                            return Err(e.into_provider(address));
                        }
                    }
                }
            }
        }
        have = existing_rules(c, group_id).await?;
    }
    for (address, key, _) in &wanted {
        let r = desired_one(desired, address).expect("wanted rules are planned");
        let id = have
            .iter()
            .find(|(h, _)| h == key)
            .map(|(_, id)| id.clone());
        record(journal, r, Status::Ready, id, BTreeMap::new()).await?;
    }
    Ok(())
}
