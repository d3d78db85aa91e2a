//! The instances: the instance type check, then every instance (nodes, and the NGINX VM) adopted
//! or run, spread over the subnets, and awaited until running. An adopted instance stopped
//! outside the tool is started first (same ID, its records kept).

use std::collections::BTreeMap;
use std::time::Duration;

use acura_ha_api::inventory::OUTPUT_ADDRESS;
use acura_ha_api::model::{Kind, Resource, Status};
use acura_ha_api::provider::ProviderError;
use acura_ha_api::spec::{ClusterSpec, TAG_CLUSTER};
use acura_ha_api::tables::GUIDE_MINIMUMS;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, InstanceNetworkInterfaceSpecification,
    InstanceStateName, InstanceType, ResourceType, VolumeType,
};
use backon::{ExponentialBuilder, Retryable};

use super::image::Image;
use super::{Net, filter, tags};
use crate::error::{self, CloudError};
use crate::{Clients, SharedJournal, progress, record, recorded};

/// The node instance type must have what the guide asks of a node (8 vCPU, 16 GiB); returns
/// its vCPUs (the quota preflight counts them).
pub(crate) async fn check_instance_types(
    c: &Clients,
    spec: &ClusterSpec,
) -> Result<u32, ProviderError> {
    let aws = spec.aws.as_ref().expect("aws section");
    let t = &aws.instance_type;
    let types = c
        .ec2
        .describe_instance_types()
        .instance_types(InstanceType::from(t.as_str()))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| error::ec2(e).into_provider(&format!("aws.instance_type = {t}")))?;
    let info = types.first().ok_or_else(|| ProviderError::Cloud {
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

fn user_data(hostname: &str) -> String {
    // The guide wants short hostnames (no dots) that the inventory can name.
    let cloud_config = format!(
        "#cloud-config\nhostname: {hostname}\nfqdn: {hostname}\nprefer_fqdn_over_hostname: false\nmanage_etc_hosts: true\n"
    );
    aws_smithy_types::base64::encode(cloud_config)
}

/// Every instance (nodes, and the NGINX VM): adopted when the state or the tags know it,
/// otherwise run with a client token recorded first, so a crash between the call and the
/// record cannot make a second one. An adopted one that is stopped (or stopping: awaited until
/// stopped) is started, all with one StartInstances. Then one describe per poll until all are
/// running.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn instances(
    c: &Clients,
    spec: &ClusterSpec,
    desired: &[Resource],
    net: &Net,
    image: &Image,
    key_name: &str,
    sg: &str,
    live: &Live,
    journal: &SharedJournal<'_>,
    quiet: bool,
) -> Result<Running, ProviderError> {
    let aws = spec.aws.as_ref().expect("aws section");
    let wanted: Vec<&Resource> = desired
        .iter()
        .filter(|r| matches!(r.kind, Kind::Instance | Kind::LbInstance))
        .collect();
    let subnets = placement(&wanted, live, net);
    // The instances are independent: run them concurrently.
    let runs = wanted.iter().zip(subnets).map(|(r, subnet)| async move {
        if let Some(l) = live.get(&r.name) {
            return Ok::<_, ProviderError>((r.address.clone(), l.id.clone()));
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
    });
    let ids: BTreeMap<String, String> = futures::future::try_join_all(runs)
        .await?
        .into_iter()
        .collect();
    let stopped: Vec<(&str, &LiveInstance)> = wanted
        .iter()
        .filter_map(|r| live.get(&r.name).map(|l| (r.name.as_str(), l)))
        .filter(|(_, l)| {
            matches!(
                l.state,
                Some(InstanceStateName::Stopped | InstanceStateName::Stopping)
            )
        })
        .collect();
    start_stopped(c, &stopped, quiet).await?;
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
                .into_paginator()
                .items()
                .send()
                .try_collect()
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
            for i in out.iter().flat_map(|r| r.instances()) {
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
    Ok(Running { ids, states })
}

/// Starts the adopted instances `stopped` outside the tool (by name): those still stopping are
/// awaited until stopped (EC2 refuses to start them before), then all are started with one
/// StartInstances. Their records stay as they are: the same instances, not replacements.
async fn start_stopped(
    c: &Clients,
    stopped: &[(&str, &LiveInstance)],
    quiet: bool,
) -> Result<(), ProviderError> {
    if stopped.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = stopped.iter().map(|(n, _)| *n).collect();
    let what = format!("instances {}", names.join(", "));
    let stopping: Vec<String> = stopped
        .iter()
        .filter(|(_, l)| l.state == Some(InstanceStateName::Stopping))
        .map(|(_, l)| l.id.clone())
        .collect();
    if !stopping.is_empty() {
        let what = &what;
        crate::wait::until(
            "instances stopped before starting them",
            Duration::from_secs(900),
            quiet,
            || {
                let stopping = stopping.clone();
                async move {
                    let out = c
                        .ec2
                        .describe_instances()
                        .set_instance_ids(Some(stopping.clone()))
                        .into_paginator()
                        .items()
                        .send()
                        .try_collect()
                        .await
                        .map_err(|e| error::ec2(e).into_provider(what))?;
                    let left = out
                        .iter()
                        .flat_map(|r| r.instances())
                        .filter(|i| {
                            i.state().and_then(|s| s.name()) != Some(&InstanceStateName::Stopped)
                        })
                        .count();
                    Ok(if left == 0 {
                        Ok(())
                    } else {
                        Err(format!("{left} of {} still stopping", stopping.len()))
                    })
                }
            },
        )
        .await?;
    }
    for name in &names {
        progress(
            quiet,
            &format!("starting {name} (stopped outside acura-ha)"),
        );
    }
    c.ec2
        .start_instances()
        .set_instance_ids(Some(stopped.iter().map(|(_, l)| l.id.clone()).collect()))
        .send()
        .await
        .map_err(|e| error::ec2(e).into_provider(&what))?;
    Ok(())
}

/// The instances, all running: their IDs by address, and each as the last describe saw it.
pub(crate) struct Running {
    pub ids: BTreeMap<String, String>,
    states: BTreeMap<String, aws_sdk_ec2::types::Instance>,
}

/// Records each running instance `Ready` with its addresses. Apart from [`instances`] so that
/// the target registrations (which need only the IDs) do not wait for these writes.
pub(crate) async fn record_running(
    spec: &ClusterSpec,
    desired: &[Resource],
    running: &Running,
    journal: &SharedJournal<'_>,
) -> Result<(), ProviderError> {
    let aws = spec.aws.as_ref().expect("aws section");
    let wanted = desired
        .iter()
        .filter(|r| matches!(r.kind, Kind::Instance | Kind::LbInstance));
    for r in wanted {
        let id = &running.ids[&r.address];
        let i = &running.states[id];
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
    Ok(())
}

/// The subnet of each wanted instance: a live one's own; a new one goes to the subnet with the
/// fewest of the cluster's instances (the first such in the spread order), so that a node added
/// after a removal fills the zone the removed one left. A new cluster gets the subnets in turn.
fn placement<'a>(wanted: &[&Resource], live: &Live, net: &'a Net) -> Vec<&'a str> {
    let mut used = vec![0usize; net.subnets.len()];
    for r in wanted {
        if let Some(l) = live.get(&r.name)
            && let Some(k) = net.subnets.iter().position(|(s, _)| *s == l.subnet)
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

/// The ClientToken of one RunInstances: `ah-<name, up to 24 characters>-<32 hex digits>`, at
/// most 60 ASCII characters. The hex digits are 128 bits of a hash of the cluster, the name, the
/// time and two process-random keys: unique to this instance *and* this attempt. Unique to the
/// attempt on purpose: EC2 remembers a token after the instance is gone, so a token derived
/// from the names alone would make the `up` after a `down` get the terminated instance back
/// (IdempotentInstanceTerminated). Retries of the same request keep the token: the SDK's retries
/// resend the same input, and [`instances`] records the token (status `Creating`) before the
/// call and takes it from that record on the next run, so a RunInstances whose reply was lost
/// is answered with the instance it made.
fn client_token(cluster: &str, name: &str) -> String {
    use std::hash::BuildHasher;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // Each RandomState has its own random SipHash keys.
    let half = || {
        std::collections::hash_map::RandomState::new().hash_one((
            cluster,
            name,
            nanos,
            std::process::id(),
        ))
    };
    let readable: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(24)
        .collect();
    format!("ah-{readable}-{:016x}{:016x}", half(), half())
}

/// One of the cluster's instances that is not terminated, as [`live_instances`] found it.
pub(crate) struct LiveInstance {
    pub id: String,
    pub subnet: String,
    /// pending, running, stopping or stopped: [`instances`] starts a stopped one.
    pub state: Option<InstanceStateName>,
}

/// The cluster's live instances by their Name tag.
pub(crate) type Live = BTreeMap<String, LiveInstance>;

/// The cluster's instances that are not terminated, by their Name tag. A lookup: [`instances`]
/// takes it, so that it is made beside the other lookups.
pub(crate) async fn live_instances(c: &Clients, spec: &ClusterSpec) -> Result<Live, ProviderError> {
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
            .into_paginator()
            .items()
            .send()
            .try_collect()
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
    for i in out.iter().flat_map(|r| r.instances()) {
        // Adopting by name: only this state's (or an untagged, older) instance (#9.4).
        super::check_lineage(
            spec,
            &format!(
                "instance {} ({})",
                super::tag_value(i.tags(), "Name").unwrap_or_default(),
                i.instance_id().unwrap_or_default()
            ),
            i.tags(),
        )?;
        if let Some(name) = i
            .tags()
            .iter()
            .find(|t| t.key() == Some("Name"))
            .and_then(|t| t.value())
        {
            by_name.insert(
                name.to_string(),
                LiveInstance {
                    id: i.instance_id().unwrap_or_default().to_string(),
                    subnet: i.subnet_id().unwrap_or_default().to_string(),
                    state: i.state().and_then(|s| s.name()).cloned(),
                },
            );
        }
    }
    Ok(by_name)
}

#[cfg(test)]
mod tests {
    use super::client_token;

    /// Every node of a cluster with a 20-character name and a 60-character prefix gets its own
    /// token (`<cluster>-<name>-<time>` cut to 64 was the same for all of them:
    /// IdempotentParameterMismatch on the second RunInstances), of at most 64 ASCII characters.
    #[test]
    fn tokens_are_unique_per_instance_and_fit_64_ascii_characters() {
        let cluster = "a".repeat(20);
        let prefix = "p".repeat(60);
        let names: Vec<String> = (1..=9)
            .map(|k| format!("{prefix}-{k}"))
            .chain([format!("{prefix}-lb")])
            .collect();
        let tokens: Vec<String> = names.iter().map(|n| client_token(&cluster, n)).collect();
        for t in &tokens {
            assert!(t.len() <= 64 && t.is_ascii(), "{t:?}");
            assert!(!t.is_empty());
        }
        let distinct: std::collections::BTreeSet<&String> = tokens.iter().collect();
        assert_eq!(distinct.len(), tokens.len(), "{tokens:#?}");
        // A new attempt (a new run, or after `down`) is a new request: a new token. (A retry of
        // the same request reuses the token the journal recorded before the call.)
        assert_ne!(
            client_token(&cluster, &names[0]),
            client_token(&cluster, &names[0])
        );
    }

    /// Names that are not ASCII (never valid, but the token must not panic on a char boundary).
    #[test]
    fn tokens_of_non_ascii_names_do_not_panic() {
        // `truncate(64)` panicked here: byte 64 is inside a 'ü'.
        let t = client_token(&format!("a{}", "ü".repeat(40)), &"ñ".repeat(40));
        assert!(t.len() <= 64 && t.is_ascii(), "{t:?}");
    }
}
