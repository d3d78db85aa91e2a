//! Node removal: the named nodes' instances found (records and tags), terminated, their leftover
//! volumes deleted, and their records forgotten.

use std::collections::BTreeMap;
use std::time::Duration;

use acura_ha_api::model::{Kind, Recorded, Status};
use acura_ha_api::provider::ProviderError;
use acura_ha_api::spec::{ClusterSpec, TAG_CLUSTER, TAG_ROLE};
use aws_sdk_ec2::types::Filter;

use super::teardown::terminate;
use super::{filter, journal_records};
use crate::error;
use crate::{Clients, SharedJournal, progress};

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
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| error::ec2(e).into_provider("instances of the removed nodes"))?;
    // (name, instance), in the describe's order.
    let mut live: Vec<(String, aws_sdk_ec2::types::Instance)> = out
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
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| error::ec2(e).into_provider("instances of the removed nodes"))?;
        for i in out.iter().flat_map(|r| r.instances()) {
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
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(|e| error::ec2(e).into_provider("volumes of the removed nodes"))?;
            let mut volumes: Vec<aws_sdk_ec2::types::Volume> = by_tag;
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
                    .into_paginator()
                    .items()
                    .send()
                    .try_collect()
                    .await
                    .map_err(|e| error::ec2(e).into_provider("volumes of the removed nodes"))?;
                for v in &by_id {
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
