//! Teardown: the instances terminated, then the security group and the key pair deleted; the
//! termination (and its wait) that node removal shares.

use std::time::Duration;

use acura_ha_api::model::{Kind, Recorded};
use acura_ha_api::provider::ProviderError;
use acura_ha_api::spec::ClusterSpec;
use aws_sdk_ec2::types::{Filter, InstanceStateName};
use backon::{ExponentialBuilder, Retryable};

use super::journal_records;
use crate::error::{self, CloudError};
use crate::{Clients, SharedJournal, forget, progress};

/// Terminates the instances (one call) and waits until they are gone (one describe per poll);
/// beside that, revokes the rules by which the cluster's groups name each other and deletes the
/// imported key pair; once the instances are gone and `lb_gone` says the NLB is,
/// deletes the security groups, concurrently, retrying `DependencyViolation` while network
/// interfaces are released. NotFound is done.
pub(crate) async fn destroy(
    c: &Clients,
    _spec: &ClusterSpec,
    journal: &SharedJournal<'_>,
    quiet: bool,
    lb_gone: impl std::future::Future<Output = Result<(), ProviderError>>,
) -> Result<(), ProviderError> {
    let all = journal_records(journal).await;
    let instances: Vec<&Recorded> = all
        .iter()
        .filter(|r| matches!(r.kind, Kind::Instance | Kind::LbInstance) && r.id.is_some())
        .collect();
    let ids: Vec<String> = instances.iter().filter_map(|r| r.id.clone()).collect();
    let terminated = async {
        terminate(c, &ids, quiet).await?;
        for r in &instances {
            forget(journal, &r.address).await?;
        }
        Ok::<_, ProviderError>(())
    };
    // The nodes' group and the NLB's name each other in their rules: those rules go first, or
    // neither group could be deleted. They need only the groups: revoked while the instances
    // and the NLB go.
    let groups: Vec<&Recorded> = all
        .iter()
        .filter(|r| r.kind == Kind::SecurityGroup)
        .collect();
    let group_ids: Vec<String> = groups.iter().filter_map(|g| g.id.clone()).collect();
    // Rules go with their group: their records are forgotten while the calls are on their way
    // (a write each: made after the revoke, they held the group deletes back).
    let forget_rules = async {
        for r in all.iter().filter(|r| r.kind == Kind::SecurityGroupRule) {
            forget(journal, &r.address).await?;
        }
        Ok::<_, ProviderError>(())
    };
    let uncrossed = async {
        if group_ids.len() > 1 {
            super::security_group::revoke_cross_references(c, &group_ids).await?;
        }
        Ok::<_, ProviderError>(())
    };
    // The key pair is only a launch parameter: nothing running depends on it.
    let key = async {
        if let Some(k) = all.iter().find(|r| r.kind == Kind::KeyPair) {
            let out = c.ec2.delete_key_pair().key_name(&k.name).send().await;
            if let Err(e) = out {
                let e = error::ec2(e);
                if !e.not_found() {
                    return Err(e.into_provider(&format!("key pair {}", k.name)));
                }
            }
            forget(journal, &k.address).await?;
        }
        Ok(())
    };
    tokio::try_join!(lb_gone, terminated, uncrossed, forget_rules, key)?;
    // The NLB is gone already; its network interfaces may linger a while, hence the retries.
    let deletes = groups.iter().map(|sg| async move {
        if let Some(id) = &sg.id {
            progress(quiet, &format!("delete security group {id} ({})", sg.name));
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
        forget(journal, &sg.address).await
    });
    futures::future::try_join_all(deletes).await?;
    Ok(())
}

/// Terminates the instances (one call; NotFound is done) and waits until all are terminated:
/// one describe for all of them per poll, with a progress line.
pub(super) async fn terminate(
    c: &Clients,
    ids: &[String],
    quiet: bool,
) -> Result<(), ProviderError> {
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
                    .into_paginator()
                    .items()
                    .send()
                    .try_collect()
                    .await
                    .map_err(|e| error::ec2(e).into_provider("instances"))?;
                let left = out
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
