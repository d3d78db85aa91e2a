//! EC2: the network the cluster lands in, the instance type and image checks, the key pair, the
//! security group and its rules, the instances, and their teardown.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use acura_ha_api::desired::{RuleSource, ingress_rules};
use acura_ha_api::inventory::OUTPUT_ADDRESS;
use acura_ha_api::model::{Kind, Recorded, Resource, Status};
use acura_ha_api::provider::ProviderError;
use acura_ha_api::spec::{ClusterSpec, TAG_CLUSTER, TAG_ROLE};
use acura_ha_api::tables::GUIDE_MINIMUMS;
use aws_sdk_ec2::primitives::Blob;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, InstanceNetworkInterfaceSpecification,
    InstanceStateName, InstanceType, IpPermission, IpRange, ResourceType, Tag, TagSpecification,
    UserIdGroupPair, VolumeType,
};
use backon::{ExponentialBuilder, Retryable};

use crate::error::{self, CloudError};
use crate::{Clients, SharedJournal, progress, record, recorded};

/// Canonical's account, the owner of the official Ubuntu images.
const CANONICAL: &str = "099720109477";

pub(crate) struct Net {
    pub vpc_id: String,
    pub vpc_cidr: String,
    /// (subnet, availability zone), in the order nodes are spread over them.
    pub subnets: Vec<(String, String)>,
}

fn filter(name: &str, value: impl Into<String>) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn tags(spec: &ClusterSpec, role: &str, name: &str, rt: ResourceType) -> TagSpecification {
    let mut b = TagSpecification::builder().resource_type(rt);
    for (k, v) in spec.tags(role) {
        b = b.tags(Tag::builder().key(k).value(v).build());
    }
    b.tags(Tag::builder().key("Name").value(name).build())
        .build()
}

/// The VPC (the file's or the region's default) and its subnets (the file's or the default ones).
pub(crate) async fn network(c: &Clients, spec: &ClusterSpec) -> Result<Net, ProviderError> {
    let aws = spec.aws.as_ref().expect("aws section");
    let mut req = c.ec2.describe_vpcs();
    req = match &aws.vpc_id {
        Some(id) => req.vpc_ids(id),
        None => req.filters(filter("is-default", "true")),
    };
    let what = aws
        .vpc_id
        .clone()
        .unwrap_or_else(|| "the default VPC".into());
    let vpcs = req
        .send()
        .await
        .map_err(|e| error::ec2(e).into_provider(&what))?;
    let vpc = vpcs.vpcs().first().ok_or_else(|| ProviderError::Cloud {
        resource: what.clone(),
        message: "not found: set aws.vpc_id (this region has no default VPC)".into(),
        request_id: None,
    })?;
    let vpc_id = vpc.vpc_id().unwrap_or_default().to_string();
    let vpc_cidr = vpc.cidr_block().unwrap_or_default().to_string();
    let mut req = c.ec2.describe_subnets();
    req = if aws.subnet_ids.is_empty() {
        req.filters(filter("vpc-id", &vpc_id))
            .filters(filter("default-for-az", "true"))
    } else {
        aws.subnet_ids.iter().fold(req, |r, s| r.subnet_ids(s))
    };
    let out = req
        .send()
        .await
        .map_err(|e| error::ec2(e).into_provider("subnets"))?;
    let mut subnets: Vec<(String, String)> = out
        .subnets()
        .iter()
        .map(|s| {
            (
                s.subnet_id().unwrap_or_default().to_string(),
                s.availability_zone().unwrap_or_default().to_string(),
            )
        })
        .collect();
    if aws.subnet_ids.is_empty() {
        subnets.sort_by(|a, b| a.1.cmp(&b.1));
    } else {
        // The file's order.
        subnets.sort_by_key(|(id, _)| aws.subnet_ids.iter().position(|s| s == id));
    }
    if subnets.is_empty() {
        return Err(ProviderError::Cloud {
            resource: vpc_id,
            message: "no subnet to place the nodes in: set aws.subnet_ids".into(),
            request_id: None,
        });
    }
    Ok(Net {
        vpc_id,
        vpc_cidr,
        subnets,
    })
}

/// The node instance type must have what the guide asks of a node (8 vCPU, 16 GiB); returns
/// its vCPUs (the quota preflight counts them).
pub(crate) async fn check_instance_types(
    c: &Clients,
    spec: &ClusterSpec,
) -> Result<u32, ProviderError> {
    let aws = spec.aws.as_ref().expect("aws section");
    let t = &aws.instance_type;
    let out = c
        .ec2
        .describe_instance_types()
        .instance_types(InstanceType::from(t.as_str()))
        .send()
        .await
        .map_err(|e| error::ec2(e).into_provider(&format!("aws.instance_type = {t}")))?;
    let info = out
        .instance_types()
        .first()
        .ok_or_else(|| ProviderError::Cloud {
            resource: format!("aws.instance_type = {t}"),
            message: "unknown in this region".into(),
            request_id: None,
        })?;
    let vcpus = info
        .v_cpu_info()
        .and_then(|v| v.default_v_cpus())
        .unwrap_or(0);
    let mib = info
        .memory_info()
        .and_then(|m| m.size_in_mib())
        .unwrap_or(0);
    let min = &GUIDE_MINIMUMS;
    if (vcpus as u32) < min.vcpus || (mib as u64) < min.ram_gb as u64 * 1024 {
        return Err(ProviderError::Cloud {
            resource: format!("aws.instance_type = {t}"),
            message: format!(
                "{vcpus} vCPU and {:.1} GiB: the guide asks for at least {} vCPU and {} GiB (e.g. m5.2xlarge)",
                mib as f64 / 1024.0,
                min.vcpus,
                min.ram_gb
            ),
            request_id: None,
        });
    }
    Ok(vcpus as u32)
}

pub(crate) struct Image {
    pub id: String,
    pub root_device: String,
}

/// The file's AMI, or the newest Canonical image of the configured Ubuntu release.
pub(crate) async fn image(c: &Clients, spec: &ClusterSpec) -> Result<Image, ProviderError> {
    let aws = spec.aws.as_ref().expect("aws section");
    let release = spec.nodes.os_version.release();
    let pattern = format!(
        "ubuntu/images/*ubuntu-{}-{}-amd64-server-*",
        release.codename(),
        release.version()
    );
    let req = match &aws.ami {
        Some(ami) => c.ec2.describe_images().image_ids(ami),
        None => c
            .ec2
            .describe_images()
            .owners(CANONICAL)
            .filters(filter("name", &pattern))
            .filters(filter("state", "available"))
            .filters(filter("architecture", "x86_64")),
    };
    let what = aws
        .ami
        .clone()
        .unwrap_or_else(|| format!("image {pattern} (owner {CANONICAL})"));
    let out = req
        .send()
        .await
        .map_err(|e| error::ec2(e).into_provider(&what))?;
    let newest = out
        .images()
        .iter()
        .filter(|i| aws.ami.is_some() || i.owner_id() == Some(CANONICAL))
        .max_by(|a, b| a.creation_date().cmp(&b.creation_date()))
        .ok_or_else(|| ProviderError::Cloud {
            resource: what.clone(),
            message: "no such image in this region: set aws.ami".into(),
            request_id: None,
        })?;
    Ok(Image {
        id: newest.image_id().unwrap_or_default().to_string(),
        root_device: newest.root_device_name().unwrap_or("/dev/sda1").to_string(),
    })
}

fn desired_one<'a>(desired: &'a [Resource], address: &str) -> Option<&'a Resource> {
    desired.iter().find(|r| r.address == address)
}

/// The key pair: an existing one by name, or the user's public key imported (or adopted when a
/// key pair of the cluster's name already exists).
pub(crate) async fn key_pair(
    c: &Clients,
    spec: &ClusterSpec,
    desired: &[Resource],
    base_dir: &Path,
    journal: &SharedJournal<'_>,
) -> Result<String, ProviderError> {
    let aws = spec.aws.as_ref().expect("aws section");
    let r = desired_one(desired, "key_pair").expect("a key pair is planned");
    let name = r.name.clone();
    let existing = c.ec2.describe_key_pairs().key_names(&name).send().await;
    match existing {
        Ok(out) if !out.key_pairs().is_empty() => {
            if r.managed {
                let id = out.key_pairs()[0]
                    .key_pair_id()
                    .unwrap_or(&name)
                    .to_string();
                record(journal, r, Status::Ready, Some(id), BTreeMap::new()).await?;
            }
            return Ok(name);
        }
        Ok(_) => {}
        Err(e) => {
            let e = error::ec2(e);
            if !e.not_found() {
                return Err(e.into_provider(&format!("key pair {name}")));
            }
        }
    }
    if !r.managed {
        return Err(ProviderError::Cloud {
            resource: format!("aws.key_name = {name}"),
            message: "no such key pair in this region: create it, or set aws.public_key_file to import one".into(),
            request_id: None,
        });
    }
    let file = aws.public_key_file.as_deref().unwrap_or_default();
    let path = expand(base_dir, file);
    let material = std::fs::read(&path).map_err(|e| ProviderError::Cloud {
        resource: format!("aws.public_key_file = {}", path.display()),
        message: e.to_string(),
        request_id: None,
    })?;
    record(journal, r, Status::Creating, None, BTreeMap::new()).await?;
    let out = c
        .ec2
        .import_key_pair()
        .key_name(&name)
        .public_key_material(Blob::new(material))
        .tag_specifications(tags(spec, "key-pair", &name, ResourceType::KeyPair))
        .send()
        .await;
    let id = match out {
        Ok(o) => o.key_pair_id().unwrap_or(&name).to_string(),
        Err(e) => {
            let e = error::ec2(e);
            if !e.is("InvalidKeyPair.Duplicate") {
                return Err(e.into_provider(&format!("key pair {name}")));
            }
            name.clone()
        }
    };
    record(journal, r, Status::Ready, Some(id), BTreeMap::new()).await?;
    Ok(name)
}

fn expand(base: &Path, p: &str) -> std::path::PathBuf {
    if let Some(rest) = p.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return std::path::PathBuf::from(home).join(rest);
    }
    let path = Path::new(p);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

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

fn user_data(hostname: &str) -> String {
    // The guide wants short hostnames (no dots) that the inventory can name.
    let cloud_config = format!(
        "#cloud-config\nhostname: {hostname}\nfqdn: {hostname}\nprefer_fqdn_over_hostname: false\nmanage_etc_hosts: true\n"
    );
    aws_smithy_types::base64::encode(cloud_config)
}

/// Every instance (nodes, and the NGINX VM): adopted when the state or the tags know it,
/// otherwise run with a client token recorded first, so a crash between the call and the
/// record cannot make a second one. Then one describe per poll until all are running.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn instances(
    c: &Clients,
    spec: &ClusterSpec,
    desired: &[Resource],
    net: &Net,
    image: &Image,
    key_name: &str,
    sg: &str,
    journal: &SharedJournal<'_>,
    quiet: bool,
) -> Result<BTreeMap<String, String>, ProviderError> {
    let aws = spec.aws.as_ref().expect("aws section");
    let wanted: Vec<&Resource> = desired
        .iter()
        .filter(|r| matches!(r.kind, Kind::Instance | Kind::LbInstance))
        .collect();
    let live = live_instances(c, spec).await?;
    let subnets = placement(&wanted, &live, net);
    // The instances are independent: run them concurrently.
    let runs = wanted.iter().zip(subnets).map(|(r, subnet)| {
        let live = &live;
        async move {
            if let Some((id, _)) = live.get(&r.name) {
                return Ok::<_, ProviderError>((r.address.clone(), id.clone()));
            }
            let previous = recorded(journal, &r.address).await;
            let token = previous
                .as_ref()
                .filter(|p| p.status == Status::Creating)
                .and_then(|p| p.outputs.get("client_token").cloned())
                .unwrap_or_else(|| client_token(&spec.cluster.name, &r.name));
            let mut outputs = BTreeMap::new();
            outputs.insert("client_token".to_string(), token.clone());
            record(journal, r, Status::Creating, None, outputs.clone()).await?;
            let (itype, root_gb, role) = match r.kind {
                Kind::LbInstance => (aws.lb_instance_type.as_str(), 20, "lb"),
                _ => (
                    aws.instance_type.as_str(),
                    spec.nodes.volume_size_gb as i32,
                    "node",
                ),
            };
            progress(quiet, &format!("run instance {} ({itype})", r.name));
            let out = c
                .ec2
                .run_instances()
                .image_id(&image.id)
                .instance_type(InstanceType::from(itype))
                .min_count(1)
                .max_count(1)
                .key_name(key_name)
                .client_token(&token)
                .user_data(user_data(&r.name))
                .block_device_mappings(
                    BlockDeviceMapping::builder()
                        .device_name(&image.root_device)
                        .ebs(
                            EbsBlockDevice::builder()
                                .volume_size(root_gb)
                                .volume_type(VolumeType::Gp3)
                                .delete_on_termination(true)
                                .build(),
                        )
                        .build(),
                )
                .network_interfaces(
                    InstanceNetworkInterfaceSpecification::builder()
                        .device_index(0)
                        .subnet_id(subnet)
                        .groups(sg)
                        .associate_public_ip_address(aws.associate_public_ip)
                        .delete_on_termination(true)
                        .build(),
                )
                .tag_specifications(tags(spec, role, &r.name, ResourceType::Instance))
                .tag_specifications(tags(spec, role, &r.name, ResourceType::Volume))
                .send()
                .await
                .map_err(|e| error::ec2(e).into_provider(&r.address))?;
            let id = out
                .instances()
                .first()
                .and_then(|i| i.instance_id())
                .unwrap_or_default()
                .to_string();
            record(journal, r, Status::Creating, Some(id.clone()), outputs).await?;
            Ok((r.address.clone(), id))
        }
    });
    let ids: BTreeMap<String, String> = futures::future::try_join_all(runs)
        .await?
        .into_iter()
        .collect();
    // One DescribeInstances for all of them per poll; NotFound right after RunInstances is
    // eventual consistency, not an error.
    let all: Vec<String> = ids.values().cloned().collect();
    let states = crate::wait::until("instances running", Duration::from_secs(900), quiet, || {
        let all = all.clone();
        async move {
            let out = c
                .ec2
                .describe_instances()
                .set_instance_ids(Some(all.clone()))
                .send()
                .await;
            let out = match out {
                Ok(o) => o,
                Err(e) => {
                    let e = error::ec2(e);
                    if e.is("InvalidInstanceID.NotFound") {
                        return Ok(Err("not visible yet".into()));
                    }
                    return Err(e.into_provider("instances"));
                }
            };
            let mut seen = BTreeMap::new();
            for i in out.reservations().iter().flat_map(|r| r.instances()) {
                seen.insert(i.instance_id().unwrap_or_default().to_string(), i.clone());
            }
            let pending: Vec<String> = all
                .iter()
                .filter(|id| {
                    seen.get(*id).and_then(|i| i.state()).and_then(|s| s.name())
                        != Some(&InstanceStateName::Running)
                })
                .cloned()
                .collect();
            if let Some(bad) = seen.values().find(|i| {
                matches!(
                    i.state().and_then(|s| s.name()),
                    Some(InstanceStateName::Terminated | InstanceStateName::ShuttingDown)
                )
            }) {
                return Err(ProviderError::Cloud {
                    resource: bad.instance_id().unwrap_or_default().to_string(),
                    message: format!(
                        "terminated while starting: {}",
                        bad.state_reason()
                            .and_then(|r| r.message())
                            .unwrap_or("no reason given")
                    ),
                    request_id: None,
                });
            }
            if pending.is_empty() {
                Ok(Ok(seen))
            } else {
                Ok(Err(format!(
                    "{} of {} running",
                    all.len() - pending.len(),
                    all.len()
                )))
            }
        }
    })
    .await?;
    for r in &wanted {
        let id = &ids[&r.address];
        let i = &states[id];
        let mut outputs = recorded(journal, &r.address)
            .await
            .map(|p| p.outputs)
            .unwrap_or_default();
        let private = i.private_ip_address().unwrap_or_default().to_string();
        let address = if aws.associate_public_ip {
            i.public_ip_address()
                .map(String::from)
                .unwrap_or_else(|| private.clone())
        } else {
            private.clone()
        };
        outputs.insert(OUTPUT_ADDRESS.to_string(), address);
        outputs.insert("private_ip".to_string(), private);
        record(journal, r, Status::Ready, Some(id.clone()), outputs).await?;
    }
    Ok(ids)
}

/// The subnet of each wanted instance: a live one's own; a new one goes to the subnet with the
/// fewest of the cluster's instances (the first such in the spread order), so that a node added
/// after a removal fills the zone the removed one left. A new cluster gets the subnets in turn.
fn placement<'a>(
    wanted: &[&Resource],
    live: &BTreeMap<String, (String, String)>,
    net: &'a Net,
) -> Vec<&'a str> {
    let mut used = vec![0usize; net.subnets.len()];
    for r in wanted {
        if let Some((_, subnet)) = live.get(&r.name)
            && let Some(k) = net.subnets.iter().position(|(s, _)| s == subnet)
        {
            used[k] += 1;
        }
    }
    wanted
        .iter()
        .map(|r| {
            if live.contains_key(&r.name) {
                // Adopted, not run: no subnet to pick.
                return "";
            }
            let k = (0..used.len()).min_by_key(|&k| used[k]).unwrap_or(0);
            used[k] += 1;
            net.subnets[k].0.as_str()
        })
        .collect()
}

fn client_token(cluster: &str, name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut t = format!("{cluster}-{name}-{nanos:x}");
    t.truncate(64);
    t
}

/// The cluster's instances that are not terminated, by their Name tag: (ID, subnet).
async fn live_instances(
    c: &Clients,
    spec: &ClusterSpec,
) -> Result<BTreeMap<String, (String, String)>, ProviderError> {
    // EC2 is eventually consistent: right after a create, a describe may answer NotFound for a
    // moment. Retry that a few times.
    let describe = || async {
        c.ec2
            .describe_instances()
            .filters(filter(&format!("tag:{TAG_CLUSTER}"), &spec.cluster.name))
            .filters(
                Filter::builder()
                    .name("instance-state-name")
                    .values("pending")
                    .values("running")
                    .values("stopping")
                    .values("stopped")
                    .build(),
            )
            .send()
            .await
            .map_err(error::ec2)
    };
    let out = describe
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(300))
                .with_max_times(5),
        )
        .when(|e: &CloudError| e.is("InvalidInstanceID.NotFound"))
        .await
        .map_err(|e| e.into_provider("instances of the cluster"))?;
    let mut by_name = BTreeMap::new();
    for i in out.reservations().iter().flat_map(|r| r.instances()) {
        if let Some(name) = i
            .tags()
            .iter()
            .find(|t| t.key() == Some("Name"))
            .and_then(|t| t.value())
        {
            by_name.insert(
                name.to_string(),
                (
                    i.instance_id().unwrap_or_default().to_string(),
                    i.subnet_id().unwrap_or_default().to_string(),
                ),
            );
        }
    }
    Ok(by_name)
}

/// What carries the cluster's tags: instances, the security group, the imported key pair.
pub(crate) async fn discover(
    c: &Clients,
    spec: &ClusterSpec,
) -> Result<Vec<Recorded>, ProviderError> {
    let mut out = Vec::new();
    let tag = format!("tag:{TAG_CLUSTER}");
    let instances = c
        .ec2
        .describe_instances()
        .filters(filter(&tag, &spec.cluster.name))
        .send()
        .await
        .map_err(|e| error::ec2(e).into_provider("instances of the cluster"))?;
    for i in instances.reservations().iter().flat_map(|r| r.instances()) {
        if matches!(
            i.state().and_then(|s| s.name()),
            Some(InstanceStateName::Terminated)
        ) {
            continue;
        }
        let tag_of = |k: &str| {
            i.tags()
                .iter()
                .find(|t| t.key() == Some(k))
                .and_then(|t| t.value())
                .unwrap_or("")
                .to_string()
        };
        let name = tag_of("Name");
        let (kind, prefix) = if tag_of(TAG_ROLE) == "lb" {
            (Kind::LbInstance, "lb_instance")
        } else {
            (Kind::Instance, "instance")
        };
        out.push(Recorded::found(
            format!("{prefix}[{name}]"),
            kind,
            name,
            i.instance_id().unwrap_or_default().to_string(),
            BTreeMap::new(),
        ));
    }
    let groups = c
        .ec2
        .describe_security_groups()
        .filters(filter(&tag, &spec.cluster.name))
        .send()
        .await
        .map_err(|e| error::ec2(e).into_provider("security groups of the cluster"))?;
    for g in groups.security_groups() {
        out.push(Recorded::found(
            "security_group".into(),
            Kind::SecurityGroup,
            g.group_name().unwrap_or_default().to_string(),
            g.group_id().unwrap_or_default().to_string(),
            BTreeMap::new(),
        ));
    }
    let keys = c
        .ec2
        .describe_key_pairs()
        .filters(filter(&tag, &spec.cluster.name))
        .send()
        .await
        .map_err(|e| error::ec2(e).into_provider("key pairs of the cluster"))?;
    for k in keys.key_pairs() {
        out.push(Recorded::found(
            "key_pair".into(),
            Kind::KeyPair,
            k.key_name().unwrap_or_default().to_string(),
            k.key_pair_id().unwrap_or_default().to_string(),
            BTreeMap::new(),
        ));
    }
    Ok(out)
}

/// Terminates the instances (one call), waits until they are gone (one describe per poll),
/// then deletes the security group — retrying `DependencyViolation` while network interfaces
/// are released — and the imported key pair. NotFound is done.
pub(crate) async fn destroy(
    c: &Clients,
    _spec: &ClusterSpec,
    journal: &SharedJournal<'_>,
    quiet: bool,
) -> Result<(), ProviderError> {
    let all = journal_records(journal).await;
    let instances: Vec<&Recorded> = all
        .iter()
        .filter(|r| matches!(r.kind, Kind::Instance | Kind::LbInstance) && r.id.is_some())
        .collect();
    let ids: Vec<String> = instances.iter().filter_map(|r| r.id.clone()).collect();
    terminate(c, &ids, quiet).await?;
    for r in &instances {
        journal.lock().await.forget(&r.address)?;
    }
    // Rules go with their group.
    for r in all.iter().filter(|r| r.kind == Kind::SecurityGroupRule) {
        journal.lock().await.forget(&r.address)?;
    }
    if let Some(sg) = all.iter().find(|r| r.kind == Kind::SecurityGroup) {
        if let Some(id) = &sg.id {
            progress(quiet, &format!("delete security group {id}"));
            let delete = || async {
                match c.ec2.delete_security_group().group_id(id).send().await {
                    Ok(_) => Ok(()),
                    Err(e) => {
                        let e = error::ec2(e);
                        if e.not_found() { Ok(()) } else { Err(e) }
                    }
                }
            };
            delete
                .retry(
                    ExponentialBuilder::default()
                        .with_min_delay(Duration::from_secs(1))
                        .with_max_delay(Duration::from_secs(20))
                        .with_max_times(40),
                )
                .when(|e: &CloudError| e.is("DependencyViolation") || e.is("InvalidGroup.InUse"))
                .await
                .map_err(|e| e.into_provider(&format!("security group {id}")))?;
        }
        journal.lock().await.forget(&sg.address)?;
    }
    if let Some(k) = all.iter().find(|r| r.kind == Kind::KeyPair) {
        let out = c.ec2.delete_key_pair().key_name(&k.name).send().await;
        if let Err(e) = out {
            let e = error::ec2(e);
            if !e.not_found() {
                return Err(e.into_provider(&format!("key pair {}", k.name)));
            }
        }
        journal.lock().await.forget(&k.address)?;
    }
    Ok(())
}

/// Terminates the instances (one call; NotFound is done) and waits until all are terminated:
/// one describe for all of them per poll, with a progress line.
async fn terminate(c: &Clients, ids: &[String], quiet: bool) -> Result<(), ProviderError> {
    if ids.is_empty() {
        return Ok(());
    }
    progress(quiet, &format!("terminate {} instances", ids.len()));
    let call = |ids: Vec<String>| async move {
        match c
            .ec2
            .terminate_instances()
            .set_instance_ids(Some(ids))
            .send()
            .await
        {
            Ok(_) => Ok(false),
            Err(e) => {
                let e = error::ec2(e);
                if e.not_found() {
                    Ok(true)
                } else {
                    Err(e.into_provider("instances"))
                }
            }
        }
    };
    // One unknown ID fails the whole call: then each on its own, so the others still go.
    if call(ids.to_vec()).await? && ids.len() > 1 {
        for id in ids {
            call(vec![id.clone()]).await?;
        }
    }
    crate::wait::until(
        "instances terminated",
        Duration::from_secs(900),
        quiet,
        || {
            let ids = ids.to_vec();
            async move {
                let out = c
                    .ec2
                    .describe_instances()
                    .filters(
                        Filter::builder()
                            .name("instance-id")
                            .set_values(Some(ids))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| error::ec2(e).into_provider("instances"))?;
                let left = out
                    .reservations()
                    .iter()
                    .flat_map(|r| r.instances())
                    .filter(|i| {
                        !matches!(
                            i.state().and_then(|s| s.name()),
                            Some(InstanceStateName::Terminated)
                        )
                    })
                    .count();
                Ok(if left == 0 {
                    Ok(())
                } else {
                    Err(format!("{left} still shutting down"))
                })
            }
        },
    )
    .await
}

/// A node instance `remove_nodes` takes away, and the record it goes by.
pub(crate) struct Leaving {
    /// `instance[<name>]`, or `instance[<name>]~<id>` for another instance of the same name.
    pub address: String,
    pub name: String,
    /// The instance, unless only a stale record is left (then there is only a record to forget).
    pub id: Option<String>,
    /// Its EBS volumes, as the describe listed them.
    pub volumes: Vec<String>,
}

fn node_address(name: &str) -> String {
    format!("instance[{name}]")
}

fn name_tag(i: &aws_sdk_ec2::types::Instance) -> Option<&str> {
    i.tags()
        .iter()
        .find(|t| t.key() == Some("Name"))
        .and_then(|t| t.value())
}

fn volumes_of(i: &aws_sdk_ec2::types::Instance) -> Vec<String> {
    i.block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs().and_then(|e| e.volume_id()))
        .map(String::from)
        .collect()
}

/// The named nodes' instances: one describe by the cluster's tag and the Name tags; a recorded
/// ID that this describe does not show (tags changed by hand) is described by its ID. A record
/// whose instance is gone or terminated is stale: the Name tag decides, and the record is only
/// forgotten. Terminated instances are done already.
pub(crate) async fn leaving_nodes(
    c: &Clients,
    spec: &ClusterSpec,
    names: &[String],
    journal: &SharedJournal<'_>,
) -> Result<Vec<Leaving>, ProviderError> {
    let is_node_record = |r: &Recorded, name: &str| {
        let main = node_address(name);
        r.kind == Kind::Instance
            && (r.address == main || r.address.starts_with(&format!("{main}~")))
    };
    let records: Vec<Recorded> = journal_records(journal)
        .await
        .into_iter()
        .filter(|r| names.iter().any(|n| is_node_record(r, n)))
        .collect();
    let not_terminated = Filter::builder()
        .name("instance-state-name")
        .values("pending")
        .values("running")
        .values("stopping")
        .values("stopped")
        .values("shutting-down")
        .build();
    let out = c
        .ec2
        .describe_instances()
        .filters(filter(&format!("tag:{TAG_CLUSTER}"), &spec.cluster.name))
        .filters(filter(&format!("tag:{TAG_ROLE}"), "node"))
        .filters(
            Filter::builder()
                .name("tag:Name")
                .set_values(Some(names.to_vec()))
                .build(),
        )
        .filters(not_terminated.clone())
        .send()
        .await
        .map_err(|e| error::ec2(e).into_provider("instances of the removed nodes"))?;
    // (name, instance), in the describe's order.
    let mut live: Vec<(String, aws_sdk_ec2::types::Instance)> = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| Some((name_tag(i)?.to_string(), i.clone())))
        .collect();
    let unseen: Vec<String> = records
        .iter()
        .filter_map(|r| r.id.clone())
        .filter(|id| {
            !live
                .iter()
                .any(|(_, i)| i.instance_id() == Some(id.as_str()))
        })
        .collect();
    if !unseen.is_empty() {
        let out = c
            .ec2
            .describe_instances()
            .filters(
                Filter::builder()
                    .name("instance-id")
                    .set_values(Some(unseen))
                    .build(),
            )
            .filters(not_terminated)
            .send()
            .await
            .map_err(|e| error::ec2(e).into_provider("instances of the removed nodes"))?;
        for i in out.reservations().iter().flat_map(|r| r.instances()) {
            let id = i.instance_id().unwrap_or_default();
            if let Some(r) = records.iter().find(|r| r.id.as_deref() == Some(id)) {
                live.push((r.name.clone(), i.clone()));
            }
        }
    }
    let mut leaving = Vec::new();
    for name in names {
        let mut mine: Vec<aws_sdk_ec2::types::Instance> = live
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, i)| i.clone())
            .collect();
        let mut stale = Vec::new();
        for r in records.iter().filter(|r| is_node_record(r, name)) {
            let at = mine
                .iter()
                .position(|i| i.instance_id().is_some() && i.instance_id() == r.id.as_deref());
            match at {
                Some(k) => {
                    let i = mine.remove(k);
                    leaving.push(Leaving {
                        address: r.address.clone(),
                        name: name.clone(),
                        id: r.id.clone(),
                        volumes: volumes_of(&i),
                    });
                }
                None => stale.push(r.address.clone()),
            }
        }
        // Instances no record names take over the stale records, the main address first.
        stale.sort_by_key(|a| *a != node_address(name));
        let mut stale = stale.into_iter();
        for i in mine {
            let id = i.instance_id().unwrap_or_default().to_string();
            let address = stale.next().unwrap_or_else(|| {
                let main = node_address(name);
                if leaving.iter().any(|l: &Leaving| l.address == main) {
                    format!("{main}~{id}")
                } else {
                    main
                }
            });
            leaving.push(Leaving {
                address,
                name: name.clone(),
                id: Some(id),
                volumes: volumes_of(&i),
            });
        }
        for address in stale {
            leaving.push(Leaving {
                address,
                name: name.clone(),
                id: None,
                volumes: Vec::new(),
            });
        }
    }
    Ok(leaving)
}

/// Terminates the leaving nodes' instances, each marked `Deleting` first (write-ahead), waits
/// until all are terminated (one describe per poll), checks that no volume of theirs is left
/// (root volumes are DeleteOnTermination; a leftover one is deleted), then forgets each record.
pub(crate) async fn remove_nodes(
    c: &Clients,
    spec: &ClusterSpec,
    leaving: &[Leaving],
    journal: &SharedJournal<'_>,
    quiet: bool,
) -> Result<(), ProviderError> {
    if leaving.is_empty() {
        return Ok(());
    }
    for l in leaving.iter().filter(|l| l.id.is_some()) {
        let mut j = journal.lock().await;
        let r = match j.get(&l.address).cloned() {
            Some(mut r) => {
                r.id = l.id.clone();
                r.status = Status::Deleting;
                r
            }
            None => {
                let mut r = Recorded::found(
                    l.address.clone(),
                    Kind::Instance,
                    l.name.clone(),
                    l.id.clone().unwrap_or_default(),
                    BTreeMap::new(),
                );
                r.status = Status::Deleting;
                r
            }
        };
        j.record(r)?;
    }
    let ids: Vec<String> = leaving.iter().filter_map(|l| l.id.clone()).collect();
    for l in leaving {
        match &l.id {
            Some(id) => progress(quiet, &format!("remove node {} ({id})", l.name)),
            None => progress(
                quiet,
                &format!(
                    "node {}: no instance left, forgetting {}",
                    l.name, l.address
                ),
            ),
        }
    }
    terminate(c, &ids, quiet).await?;
    let mut names: Vec<String> = leaving.iter().map(|l| l.name.clone()).collect();
    names.dedup();
    let volumes: Vec<String> = leaving.iter().flat_map(|l| l.volumes.clone()).collect();
    leftover_volumes(c, spec, &names, &volumes, &ids, quiet).await?;
    for l in leaving {
        journal.lock().await.forget(&l.address)?;
    }
    Ok(())
}

/// Waits until no volume of the removed nodes is left — those their instances listed, and those
/// carrying the cluster's tag and a removed node's Name — deleting any that is `available` (not
/// DeleteOnTermination). A volume attached to another instance is not theirs to delete.
async fn leftover_volumes(
    c: &Clients,
    spec: &ClusterSpec,
    names: &[String],
    volume_ids: &[String],
    instance_ids: &[String],
    quiet: bool,
) -> Result<(), ProviderError> {
    use aws_sdk_ec2::types::VolumeState;
    crate::wait::until(
        "volumes of the removed nodes deleted",
        Duration::from_secs(600),
        quiet,
        || async move {
            let by_tag = c
                .ec2
                .describe_volumes()
                .filters(filter(&format!("tag:{TAG_CLUSTER}"), &spec.cluster.name))
                .filters(
                    Filter::builder()
                        .name("tag:Name")
                        .set_values(Some(names.to_vec()))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| error::ec2(e).into_provider("volumes of the removed nodes"))?;
            let mut volumes: Vec<aws_sdk_ec2::types::Volume> = by_tag.volumes().to_vec();
            if !volume_ids.is_empty() {
                let by_id = c
                    .ec2
                    .describe_volumes()
                    .filters(
                        Filter::builder()
                            .name("volume-id")
                            .set_values(Some(volume_ids.to_vec()))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| error::ec2(e).into_provider("volumes of the removed nodes"))?;
                for v in by_id.volumes() {
                    if !volumes.iter().any(|x| x.volume_id() == v.volume_id()) {
                        volumes.push(v.clone());
                    }
                }
            }
            let left: Vec<&aws_sdk_ec2::types::Volume> = volumes
                .iter()
                .filter(|v| v.state() != Some(&VolumeState::Deleted))
                .filter(|v| {
                    v.attachments().iter().all(|a| {
                        a.instance_id()
                            .is_none_or(|i| instance_ids.iter().any(|x| x == i))
                    })
                })
                .collect();
            for v in &left {
                if v.state() != Some(&VolumeState::Available) {
                    continue;
                }
                let id = v.volume_id().unwrap_or_default();
                progress(quiet, &format!("delete leftover volume {id}"));
                if let Err(e) = c.ec2.delete_volume().volume_id(id).send().await {
                    let e = error::ec2(e);
                    if !e.not_found() && !e.is("VolumeInUse") {
                        return Err(e.into_provider(&format!("volume {id}")));
                    }
                }
            }
            Ok(if left.is_empty() {
                Ok(())
            } else {
                Err(format!("{} left", left.len()))
            })
        },
    )
    .await
}

/// Every record the journal holds.
pub(crate) async fn journal_records(journal: &SharedJournal<'_>) -> Vec<Recorded> {
    journal.lock().await.all()
}
