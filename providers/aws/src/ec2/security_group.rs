//! The security groups and their ingress rules: the cluster's group with the guide's table, and
//! (behind an NLB) the NLB's own group, each listener admitted from the table's sources, with the
//! nodes admitting the NLB's traffic and health checks from that group (#11.11).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use acura_ha_api::desired::{RuleSource, ingress_rules};
use acura_ha_api::model::{Kind, Recorded, Resource, Status};
use acura_ha_api::provider::ProviderError;
use acura_ha_api::spec::ClusterSpec;
use acura_ha_api::targets::aws::nlb::{self, Group, NlbRuleSource};
use aws_sdk_ec2::types::{
    IpPermission, IpRange, Ipv6Range, PrefixListId, ResourceType, UserIdGroupPair,
};

use super::{desired_one, filter, tags};
use crate::error;
use crate::{Clients, SharedJournal, record};

/// The cluster's security groups' IDs.
#[derive(Debug, Clone)]
pub(crate) struct Groups {
    /// The nodes' (`security_group`).
    pub nodes: String,
    /// The NLB's (`security_group[nlb]`), when the load balancer is an NLB.
    pub nlb: Option<String>,
}

impl Groups {
    fn id(&self, g: Group) -> Option<&str> {
        match g {
            Group::Nodes => Some(&self.nodes),
            Group::Nlb => self.nlb.as_deref(),
        }
    }
}

/// What the lookups found of the groups before anything is created: each group's ID, when it
/// exists (`nlb` is `None` when no NLB group is wanted).
#[derive(Debug, Clone, Default)]
pub(crate) struct FoundGroups {
    nodes: Option<String>,
    nlb: Option<String>,
}

/// The groups' lookups, concurrently: one DescribeSecurityGroups by name in the VPC each. Only
/// reads: the creates wait for the quota verdict ([`create_groups`]).
pub(crate) async fn find_groups(
    c: &Clients,
    spec: &ClusterSpec,
    desired: &[Resource],
    vpc_id: &str,
) -> Result<FoundGroups, ProviderError> {
    let nlb_wanted = desired_one(desired, nlb::NLB_GROUP_ADDRESS).is_some();
    let (nodes, nlb) = tokio::try_join!(
        find_group(c, spec, desired, vpc_id, "security_group"),
        async {
            if nlb_wanted {
                find_group(c, spec, desired, vpc_id, nlb::NLB_GROUP_ADDRESS).await
            } else {
                Ok(None)
            }
        }
    )?;
    Ok(FoundGroups { nodes, nlb })
}

/// Whether each group was created by this run: a group just made has no ingress rule, so its
/// rules need no describe before the authorize and nothing is revoked.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Fresh {
    nodes: bool,
    nlb: bool,
}

/// The groups `found` does not hold, created concurrently (recorded `Creating` first); every
/// group recorded `Ready` with its ID.
pub(crate) async fn create_groups(
    c: &Clients,
    spec: &ClusterSpec,
    desired: &[Resource],
    vpc_id: &str,
    found: FoundGroups,
    journal: &SharedJournal<'_>,
) -> Result<(Groups, Fresh), ProviderError> {
    let nlb_wanted = desired_one(desired, nlb::NLB_GROUP_ADDRESS).is_some();
    // `join`: one group's failure must not drop the other between its create and its record.
    let (nodes, nlb) = tokio::join!(
        group(
            c,
            spec,
            desired,
            vpc_id,
            found.nodes,
            journal,
            "security_group",
            "security-group"
        ),
        async {
            if nlb_wanted {
                let g = group(
                    c,
                    spec,
                    desired,
                    vpc_id,
                    found.nlb,
                    journal,
                    nlb::NLB_GROUP_ADDRESS,
                    nlb::NLB_GROUP_ROLE,
                )
                .await?;
                Ok::<_, ProviderError>(Some(g))
            } else {
                Ok(None)
            }
        }
    );
    let ((nodes, nodes_fresh), nlb) = (nodes?, nlb?);
    let fresh = Fresh {
        nodes: nodes_fresh,
        nlb: nlb.as_ref().is_some_and(|(_, f)| *f),
    };
    Ok((
        Groups {
            nodes,
            nlb: nlb.map(|(id, _)| id),
        },
        fresh,
    ))
}

/// Every rule of each group, both groups concurrently: a rule may name the other group, so
/// rules come once both exist.
pub(crate) async fn converge_rules(
    c: &Clients,
    spec: &ClusterSpec,
    desired: &[Resource],
    groups: &Groups,
    fresh: Fresh,
    journal: &SharedJournal<'_>,
) -> Result<(), ProviderError> {
    tokio::try_join!(
        rules(c, spec, desired, Group::Nodes, groups, fresh.nodes, journal),
        async {
            if groups.nlb.is_some() {
                rules(c, spec, desired, Group::Nlb, groups, fresh.nlb, journal).await
            } else {
                Ok(())
            }
        }
    )?;
    Ok(())
}

/// One group's ID, found by its name in the VPC (refused when its lineage is another state's).
async fn find_group(
    c: &Clients,
    spec: &ClusterSpec,
    desired: &[Resource],
    vpc_id: &str,
    address: &str,
) -> Result<Option<String>, ProviderError> {
    let r = desired_one(desired, address).expect("the security group is planned");
    let name = &r.name;
    let existing = c
        .ec2
        .describe_security_groups()
        .filters(filter("group-name", name))
        .filters(filter("vpc-id", vpc_id))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| error::ec2(e).into_provider(&format!("security group {name}")))?;
    if let Some(g) = existing.first() {
        super::check_lineage(spec, &format!("{address} ({name})"), g.tags())?;
    }
    Ok(existing
        .first()
        .and_then(|g| g.group_id())
        .map(String::from))
}

/// One group: the one found, or created (recorded `Creating` first). The ID, and whether it was
/// created now.
#[allow(clippy::too_many_arguments)]
async fn group(
    c: &Clients,
    spec: &ClusterSpec,
    desired: &[Resource],
    vpc_id: &str,
    found: Option<String>,
    journal: &SharedJournal<'_>,
    address: &str,
    role: &str,
) -> Result<(String, bool), ProviderError> {
    let r = desired_one(desired, address).expect("the security group is planned");
    let name = r.name.clone();
    let (group_id, fresh) = match found {
        Some(id) => (id, false),
        None => {
            record(journal, r, Status::Creating, None, BTreeMap::new()).await?;
            let description = if address == "security_group" {
                "Acura HA cluster (acura-ha)"
            } else {
                "Acura HA cluster's Network Load Balancer (acura-ha)"
            };
            let out = c
                .ec2
                .create_security_group()
                .group_name(&name)
                .description(description)
                .vpc_id(vpc_id)
                .tag_specifications(tags(spec, role, &name, ResourceType::SecurityGroup))
                .send()
                .await
                .map_err(|e| error::ec2(e).into_provider(&format!("security group {name}")))?;
            (out.group_id().unwrap_or_default().to_string(), true)
        }
    };
    let mut outputs = BTreeMap::new();
    outputs.insert("vpc_id".to_string(), vpc_id.to_string());
    record(journal, r, Status::Ready, Some(group_id.clone()), outputs).await?;
    Ok((group_id, fresh))
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
    which: Group,
    groups: &Groups,
) -> Vec<(String, RuleKey, IpPermission)> {
    let mut out = Vec::new();
    let mut push = |address: String, protocol: &str, from: u16, to: u16, source, description| {
        if desired_one(desired, &address).is_none() {
            return;
        }
        let (source, perm) = permission(protocol, from, to, source, description);
        out.push((
            address,
            RuleKey {
                protocol: protocol.into(),
                from: from as i32,
                to: to as i32,
                source: canonical(&source),
            },
            perm,
        ));
    };
    if which == Group::Nodes {
        for rule in ingress_rules(spec) {
            push(
                format!("security_group_rule[{}]", rule.key()),
                rule.rule.protocol.as_str(),
                rule.rule.from_port,
                rule.rule.to_port,
                match rule.source {
                    RuleSource::SelfGroup => Err(groups.nodes.as_str()),
                    RuleSource::Cidr(c) => Ok(c.to_string()),
                },
                rule.rule.description,
            );
        }
    }
    for rule in nlb::nlb_rules(spec)
        .into_iter()
        .filter(|r| r.group == which)
    {
        let source = match rule.source {
            NlbRuleSource::Cidr(c) => Ok(c.to_string()),
            NlbRuleSource::Group(g) => match groups.id(g) {
                Some(id) => Err(id),
                None => continue,
            },
        };
        push(
            rule.address(),
            rule.protocol.as_str(),
            rule.port,
            rule.port,
            source,
            rule.description,
        );
    }
    out
}

/// A CIDR as EC2 stores it (host bits cleared, IPv6 lower-case and compressed), so that
/// `198.51.100.7/24` in the file matches the rule EC2 lists as `198.51.100.0/24` and is not
/// revoked as unwanted; anything else (a group or prefix-list ID) as it is.
fn canonical(source: &str) -> String {
    let Some((addr, len)) = source.split_once('/') else {
        return source.to_string();
    };
    match (addr.parse::<IpAddr>(), len.parse::<u32>()) {
        (Ok(IpAddr::V4(a)), Ok(len)) if len <= 32 => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            format!("{}/{len}", Ipv4Addr::from(u32::from(a) & mask))
        }
        (Ok(IpAddr::V6(a)), Ok(len)) if len <= 128 => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            format!("{}/{len}", Ipv6Addr::from(u128::from(a) & mask))
        }
        _ => source.to_string(),
    }
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

/// A rule the group holds: what it admits and its security-group rule ID.
#[derive(Debug, Clone)]
struct Existing {
    key: RuleKey,
    id: String,
    /// An IPv6 source (`cidrIpv6`), for a revoke by permission.
    ipv6: bool,
}

/// Every ingress rule of `group_id` itself (never a rule of another group), every page.
async fn existing_rules(c: &Clients, group_id: &str) -> Result<Vec<Existing>, ProviderError> {
    let rules = c
        .ec2
        .describe_security_group_rules()
        .filters(filter("group-id", group_id))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| error::ec2(e).into_provider(&format!("rules of {group_id}")))?;
    Ok(rules
        .iter()
        .filter(|r| r.is_egress() != Some(true))
        .filter(|r| r.group_id().is_none_or(|g| g == group_id))
        .map(existing_rule)
        .collect())
}

/// A rule as EC2 lists it, in the terms the wanted rules are compared in.
fn existing_rule(r: &aws_sdk_ec2::types::SecurityGroupRule) -> Existing {
    let source = r
        .cidr_ipv4()
        .or(r.cidr_ipv6())
        .map(String::from)
        .or_else(|| {
            r.referenced_group_info()
                .and_then(|g| g.group_id())
                .map(String::from)
        })
        .or_else(|| r.prefix_list_id().map(String::from))
        .unwrap_or_default();
    Existing {
        key: RuleKey {
            protocol: r.ip_protocol().unwrap_or_default().to_string(),
            from: r.from_port().unwrap_or(-1),
            to: r.to_port().unwrap_or(-1),
            source: canonical(&source),
        },
        id: r.security_group_rule_id().unwrap_or_default().to_string(),
        ipv6: r.cidr_ipv6().is_some(),
    }
}

/// Refresh (#9.3): every ingress rule of the cluster's live groups `live` (one describe for all
/// of them), as the IDs the cloud holds and the rules `up` would revoke — those no wanted rule
/// matches and no record in `known` holds — as records `security_group_rule[outside-<id>]`
/// named like `tcp 22 from 0.0.0.0/0`.
pub(crate) async fn refresh_rules(
    c: &Clients,
    spec: &ClusterSpec,
    desired: &[Resource],
    groups: &Groups,
    live: &[String],
    known: &std::collections::BTreeSet<&str>,
) -> Result<(std::collections::BTreeSet<String>, Vec<Recorded>), ProviderError> {
    let mut ids = std::collections::BTreeSet::new();
    let mut extra = Vec::new();
    if live.is_empty() {
        return Ok((ids, extra));
    }
    let listed = rules_of(c, live).await?;
    for (which, group_id) in [
        (Group::Nodes, Some(&groups.nodes)),
        (Group::Nlb, groups.nlb.as_ref()),
    ] {
        let Some(group_id) = group_id.filter(|g| live.contains(g)) else {
            continue;
        };
        let wanted = wanted_rules(spec, desired, which, groups);
        for r in listed
            .iter()
            .filter(|r| r.group_id() == Some(group_id.as_str()))
        {
            let id = r.security_group_rule_id().unwrap_or_default().to_string();
            ids.insert(id.clone());
            if r.is_egress() == Some(true) || known.contains(id.as_str()) {
                continue;
            }
            let h = existing_rule(r);
            if wanted.iter().any(|(_, k, _)| k == &h.key) {
                continue;
            }
            let proto = match h.key.protocol.as_str() {
                "-1" => "any".to_string(),
                p => p.to_string(),
            };
            let ports = match (h.key.from, h.key.to) {
                (-1, _) => "all".to_string(),
                (a, b) if a == b => a.to_string(),
                (a, b) => format!("{a}-{b}"),
            };
            let mut outputs = BTreeMap::new();
            outputs.insert("source".to_string(), h.key.source.clone());
            outputs.insert("group_id".to_string(), group_id.clone());
            extra.push(Recorded::found(
                format!("security_group_rule[outside-{id}]"),
                Kind::SecurityGroupRule,
                format!("{proto} {ports} from {}", h.key.source),
                id,
                outputs,
            ));
        }
    }
    Ok((ids, extra))
}

/// Every rule of the groups `group_ids`, in one paged describe (a filter, not IDs: a group
/// already gone has no rules, no error).
async fn rules_of(
    c: &Clients,
    group_ids: &[String],
) -> Result<Vec<aws_sdk_ec2::types::SecurityGroupRule>, ProviderError> {
    c.ec2
        .describe_security_group_rules()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("group-id")
                .set_values(Some(group_ids.to_vec()))
                .build(),
        )
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| error::ec2(e).into_provider("rules of the cluster's security groups"))
}

/// Teardown: revokes every ingress rule of each of `group_ids` that names another of them (the
/// nodes' group admits the NLB's and the NLB's admits the nodes'), since a group another group's
/// rule names cannot be deleted.
pub(crate) async fn revoke_cross_references(
    c: &Clients,
    group_ids: &[String],
) -> Result<(), ProviderError> {
    // One describe for all of them (a filter, not IDs: a group already gone has no rules, no
    // error), then the revokes, concurrently.
    let listed = rules_of(c, group_ids).await?;
    let revokes = group_ids.iter().map(|id| {
        let naming: Vec<Existing> = listed
            .iter()
            .filter(|r| r.is_egress() != Some(true) && r.group_id() == Some(id.as_str()))
            .map(existing_rule)
            .filter(|r| &r.key.source != id && group_ids.contains(&r.key.source))
            .collect();
        async move {
            let naming: Vec<&Existing> = naming.iter().collect();
            revoke(c, id, &naming).await
        }
    });
    futures::future::try_join_all(revokes).await?;
    Ok(())
}

/// One describe, then one authorize for every rule missing. A rule that exists already
/// (`InvalidPermission.Duplicate`, e.g. a race with another run) counts as created. Only then,
/// so access is never briefly lost, every other ingress rule of the group (an old admin or public
/// CIDR, a rule added by hand) is revoked and the records of rules no longer desired are
/// forgotten.
async fn rules(
    c: &Clients,
    spec: &ClusterSpec,
    desired: &[Resource],
    which: Group,
    groups: &Groups,
    fresh: bool,
    journal: &SharedJournal<'_>,
) -> Result<(), ProviderError> {
    let group_id = groups.id(which).expect("the group exists");
    let wanted = wanted_rules(spec, desired, which, groups);
    // A group this run created has no ingress rule yet: nothing to describe.
    let mut have = if fresh {
        Vec::new()
    } else {
        existing_rules(c, group_id).await?
    };
    let missing: Vec<&(String, RuleKey, IpPermission)> = wanted
        .iter()
        .filter(|(_, k, _)| !have.iter().any(|h| &h.key == k))
        .collect();
    if !missing.is_empty() {
        let mut req = c.ec2.authorize_security_group_ingress().group_id(group_id);
        for (_, _, p) in &missing {
            req = req.ip_permissions(p.clone());
        }
        match req.send().await {
            // The answer lists the rules it made, with their IDs: no describe unless one is
            // missing from it (an older API or emulator).
            Ok(out) => {
                have.extend(
                    out.security_group_rules()
                        .iter()
                        .filter(|r| r.is_egress() != Some(true))
                        .map(existing_rule),
                );
                if missing
                    .iter()
                    .any(|(_, k, _)| !have.iter().any(|h| &h.key == k && !h.id.is_empty()))
                {
                    have = existing_rules(c, group_id).await?;
                }
            }
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
                have = existing_rules(c, group_id).await?;
            }
        }
    }
    for (address, key, _) in &wanted {
        let r = desired_one(desired, address).expect("wanted rules are planned");
        let id = have.iter().find(|h| &h.key == key).map(|h| h.id.clone());
        record(journal, r, Status::Ready, id, BTreeMap::new()).await?;
    }
    let unwanted: Vec<&Existing> = have
        .iter()
        .filter(|h| !wanted.iter().any(|(_, k, _)| k == &h.key))
        .collect();
    revoke(c, group_id, &unwanted).await?;
    let stale: Vec<String> = super::journal_records(journal)
        .await
        .into_iter()
        .filter(|r| r.kind == Kind::SecurityGroupRule && desired_one(desired, &r.address).is_none())
        .map(|r| r.address)
        .collect();
    for address in stale {
        journal.lock().await.forget(&address)?;
    }
    Ok(())
}

/// Revokes `rules` of `group_id`: one call by rule ID; if one of them is gone meanwhile (a
/// NotFound fails the whole call), one by one, where a rule already gone counts as revoked. A rule
/// without an ID is revoked by its permission.
async fn revoke(c: &Clients, group_id: &str, rules: &[&Existing]) -> Result<(), ProviderError> {
    if rules.is_empty() {
        return Ok(());
    }
    let what = |r: &Existing| {
        format!(
            "ingress rule {} {}-{} from {} of {group_id}",
            r.key.protocol, r.key.from, r.key.to, r.key.source
        )
    };
    let rules: Vec<&Existing> = rules
        .iter()
        .copied()
        .filter(|r| !r.id.is_empty() || !r.key.source.is_empty())
        .collect();
    let ids: Vec<String> = rules
        .iter()
        .filter(|r| !r.id.is_empty())
        .map(|r| r.id.clone())
        .collect();
    // What is left for one call each: the rules without an ID, or all after a NotFound.
    let mut one_by_one: Vec<&Existing> =
        rules.iter().copied().filter(|r| r.id.is_empty()).collect();
    if !ids.is_empty() {
        let all = c
            .ec2
            .revoke_security_group_ingress()
            .group_id(group_id)
            .set_security_group_rule_ids(Some(ids))
            .send()
            .await;
        if let Err(e) = all {
            let e = error::ec2(e);
            if !e.not_found() {
                return Err(e.into_provider(&format!("ingress rules of {group_id}")));
            }
            one_by_one = rules;
        }
    }
    for r in one_by_one {
        let req = c.ec2.revoke_security_group_ingress().group_id(group_id);
        let req = if r.id.is_empty() {
            req.ip_permissions(revoked_permission(r))
        } else {
            req.security_group_rule_ids(&r.id)
        };
        if let Err(e) = req.send().await {
            let e = error::ec2(e);
            if !e.not_found() {
                return Err(e.into_provider(&what(r)));
            }
        }
    }
    Ok(())
}

/// The permission that names `r` in a revoke (for a rule the cloud gave no ID).
fn revoked_permission(r: &Existing) -> IpPermission {
    let b = IpPermission::builder()
        .ip_protocol(&r.key.protocol)
        .from_port(r.key.from)
        .to_port(r.key.to);
    let source = r.key.source.clone();
    if r.ipv6 {
        b.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(source).build())
    } else if source.starts_with("pl-") {
        b.prefix_list_ids(PrefixListId::builder().prefix_list_id(source).build())
    } else if source.starts_with("sg-") {
        b.user_id_group_pairs(UserIdGroupPair::builder().group_id(source).build())
    } else {
        b.ip_ranges(IpRange::builder().cidr_ip(source).build())
    }
    .build()
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn cidrs_compare_as_ec2_stores_them() {
        assert_eq!(canonical("198.51.100.7/24"), "198.51.100.0/24");
        assert_eq!(canonical("198.51.100.7/32"), "198.51.100.7/32");
        assert_eq!(canonical("10.1.2.3/0"), "0.0.0.0/0");
        assert_eq!(canonical("2001:DB8:0:0::1/32"), "2001:db8::/32");
        assert_eq!(canonical("sg-0123456789abcdef0"), "sg-0123456789abcdef0");
        assert_eq!(canonical("pl-12345678"), "pl-12345678");
    }
}
