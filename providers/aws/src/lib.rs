//! The AWS provider: EC2 (security group and rules, key pair, Ubuntu instances with 200 GiB gp3
//! root volumes) and ELBv2 (an internet-facing Network Load Balancer with a target group and a
//! listener per listener of the guide), or an NGINX instance, through the AWS SDK for Rust.
//!
//! Credentials, profiles, SSO, regions and `AWS_ENDPOINT_URL*` are resolved by `aws-config`
//! exactly as the aws CLI does. Every resource carries the cluster's tags and a deterministic
//! name, is looked up before it is created (and adopted), and is recorded in the journal the
//! moment its ID is known. Checks moto does not make but AWS does (one load balancer per name,
//! no UDP health checks, one listener per port) are made here before calling.

pub mod credentials;
mod ec2;
mod elb;
mod error;
mod health;
mod quota;
mod refresh;
pub mod s3_state;
mod wait;

use std::collections::BTreeMap;
use std::sync::Arc;

use acura_ha_api::model::{Inventory, Recorded, Resource, Status};
use acura_ha_api::provider::{Journal, Provider, ProviderError};
use acura_ha_api::spec::{ClusterSpec, LbKind, ProviderKind};
use async_trait::async_trait;
use futures::FutureExt;
use tokio::sync::Mutex;

pub use error::CloudError;

/// The provider, with the clients it builds on first use.
pub struct AwsProvider {
    /// Relative paths in the cluster file (`aws.public_key_file`) are relative to this.
    base_dir: std::path::PathBuf,
    quiet: bool,
}

impl AwsProvider {
    pub fn new(base_dir: std::path::PathBuf) -> Self {
        AwsProvider {
            base_dir,
            quiet: false,
        }
    }

    /// No progress lines (tests, `--output json`).
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }
}

/// The two SDK clients, configured as the aws CLI would be.
#[derive(Clone)]
pub(crate) struct Clients {
    pub ec2: aws_sdk_ec2::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub quotas: aws_sdk_servicequotas::Client,
}

/// The timeouts of every AWS call, each overridable in whole or fractional seconds (tests
/// shorten them):
///
/// | variable | what | default |
/// | --- | --- | --- |
/// | `ACURA_HA_AWS_CONNECT_TIMEOUT_SECS` | TCP and TLS connect | 10 |
/// | `ACURA_HA_AWS_READ_TIMEOUT_SECS` | from the request sent to the response's first byte | 30 |
/// | `ACURA_HA_AWS_ATTEMPT_TIMEOUT_SECS` | one attempt, from connect to the whole response | 60 |
///
/// Without them the SDK waits for ever on a connection that was accepted but is never answered
/// (a middlebox that dropped the flow's state): `up` hangs. An attempt that times out is retried
/// like a throttled call ([`RETRY_ATTEMPTS`] attempts in all, exponential backoff). A create
/// whose timed-out attempt did reach AWS is safe to send again: RunInstances carries a
/// ClientToken and ELBv2's creates are idempotent by name; the EC2 creates without a token
/// (security group, key pair) then fail as duplicates — rules and key pairs take that as done,
/// and a re-run adopts a security group by its name and tags.
pub(crate) fn timeouts() -> aws_config::timeout::TimeoutConfig {
    let secs = |var: &str, default: u64| {
        std::env::var(var)
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(std::time::Duration::from_secs_f64)
            .unwrap_or(std::time::Duration::from_secs(default))
    };
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(secs("ACURA_HA_AWS_CONNECT_TIMEOUT_SECS", 10))
        .read_timeout(secs("ACURA_HA_AWS_READ_TIMEOUT_SECS", 30))
        .operation_attempt_timeout(secs("ACURA_HA_AWS_ATTEMPT_TIMEOUT_SECS", 60))
        .build()
}

/// How many times a call is tried (throttling, 5xx, a reset or a timed-out attempt).
pub(crate) const RETRY_ATTEMPTS: u32 = 6;

/// The clients, once the region is known and the credentials resolve
/// ([`credentials::load`]): a run that cannot sign a request stops here, before anything is
/// created or read, with one line saying where the tool looked and the fix.
async fn clients(spec: &ClusterSpec) -> Result<Clients, ProviderError> {
    let aws = spec.aws.as_ref().expect("aws section");
    let conf = credentials::load(&credentials::Wanted {
        region: aws.region.clone(),
        profile: aws.profile.clone(),
        profile_setting: "[aws] profile in the cluster file",
    })
    .await
    .map_err(credentials::CredentialsError::into_provider)?;
    Ok(Clients {
        ec2: aws_sdk_ec2::Client::new(&conf),
        elb: aws_sdk_elasticloadbalancingv2::Client::new(&conf),
        quotas: aws_sdk_servicequotas::Client::new(&conf),
    })
}

/// The journal shared by work that runs concurrently (nodes ∥ load balancer).
pub(crate) type SharedJournal<'a> = Arc<Mutex<&'a mut dyn Journal>>;

/// Records `r` with `status`, the cloud's `id` and `outputs`, keeping its first `created_at`.
///
/// A record is written to disk (and synced) before this returns, which blocks the task for that
/// long; it then yields, so that the branches running beside it (polled by the same task) send
/// their requests between one record and the next instead of after a burst of them.
pub(crate) async fn record(
    journal: &SharedJournal<'_>,
    r: &Resource,
    status: Status,
    id: Option<String>,
    outputs: BTreeMap<String, String>,
) -> Result<(), ProviderError> {
    {
        let mut j = journal.lock().await;
        acura_ha_api::provider::record_desired(&mut **j, r, status, id, outputs)?;
    }
    tokio::task::yield_now().await;
    Ok(())
}

/// Forgets the record at `address`, then yields (as [`record`] does).
pub(crate) async fn forget(
    journal: &SharedJournal<'_>,
    address: &str,
) -> Result<(), ProviderError> {
    journal.lock().await.forget(address)?;
    tokio::task::yield_now().await;
    Ok(())
}

pub(crate) async fn recorded(journal: &SharedJournal<'_>, address: &str) -> Option<Recorded> {
    journal.lock().await.get(address).cloned()
}

pub(crate) fn progress(quiet: bool, msg: &str) {
    if !quiet {
        eprintln!("[  aws ] {msg}");
    }
}

#[async_trait]
impl Provider for AwsProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Aws
    }

    async fn provision(
        &self,
        spec: &ClusterSpec,
        journal: &mut dyn Journal,
    ) -> Result<Inventory, ProviderError> {
        let c = clients(spec).await?;
        let desired = acura_ha_api::desired::desired(spec);
        elb::validate(spec, &desired)?;
        let journal: SharedJournal<'_> = Arc::new(Mutex::new(journal));
        let cloud_lb = spec.load_balancer.kind == LbKind::Cloud;
        // Every branch starts as soon as what it needs exists (the chain is in the README).
        // First the lookups, which only read, all at once and beside the quota preflight: the
        // VPC, then its subnets and the groups by name; the image, the key pair, the cluster's
        // live instances, the NLB by name and the region's target groups. Nothing is created
        // before the preflight's verdict (instance type, quotas).
        let network = async {
            let vpc_id = ec2::vpc(&c, spec).await?;
            tokio::try_join!(
                ec2::subnets(&c, spec, vpc_id.clone()),
                ec2::find_groups(&c, spec, &desired, &vpc_id)
            )
        };
        let elb_found = async {
            if cloud_lb {
                elb::find(&c, spec, &desired).await.map(Some)
            } else {
                Ok(None)
            }
        };
        let ((), (net, found_groups), image, found_key, live, elb_found) = tokio::try_join!(
            quota::preflight(&c, spec, &desired, self.quiet),
            network,
            ec2::image(&c, spec),
            ec2::find_key_pair(&c, spec, &desired),
            ec2::live_instances(&c, spec),
            elb_found,
        )?;
        // Then what needs only the lookups, concurrently: the key pair, both security groups
        // (an NLB takes its group only at creation), and the target groups (they need only the
        // VPC). The target groups are shared: the listeners and the registrations wait for
        // them, nothing else does. Their error, if any, is kept to be returned first.
        let tg_error: std::sync::Mutex<Option<ProviderError>> = std::sync::Mutex::new(None);
        let tgs = async {
            let found = elb_found.as_ref()?;
            match elb::target_groups(&c, spec, &desired, &net.vpc_id, found, &journal).await {
                Ok(t) => Some(Arc::new(t)),
                Err(e) => {
                    *tg_error.lock().expect("not poisoned") = Some(e);
                    None
                }
            }
        }
        .shared();
        let tgs_made = || {
            let tgs = tgs.clone();
            async move {
                tgs.await.ok_or_else(|| ProviderError::Cloud {
                    resource: "target groups".into(),
                    message: "not made (the error above says why)".into(),
                    request_id: None,
                })
            }
        };
        let rest = async {
            // `join`, not `try_join`: a failing key pair must not drop the groups' branch between
            // a CreateSecurityGroup's answer and its record (review finding 5).
            let (key_name, groups) = tokio::join!(
                ec2::key_pair(&c, spec, &desired, &self.base_dir, found_key, &journal),
                ec2::create_groups(&c, spec, &desired, &net.vpc_id, found_groups, &journal),
            );
            let (groups, fresh) = groups?;
            let key_name = key_name?;
            // Then three branches side by side: the groups' rules (a rule may name the other
            // group); the instances, awaited running, then registered in the target groups;
            // the NLB, its listeners (forwarding to the target groups) while it provisions, and
            // the removal of what is not wanted. Each branch runs to its end before an error is
            // returned, so what it made is recorded.
            let rules = ec2::converge_rules(&c, spec, &desired, &groups, fresh, &journal);
            let nodes = async {
                let running = ec2::instances(
                    &c,
                    spec,
                    &desired,
                    &net,
                    &image,
                    &key_name,
                    &groups.nodes,
                    &live,
                    &journal,
                    self.quiet,
                )
                .await?;
                let register = async {
                    if elb_found.is_none() {
                        return Ok(());
                    }
                    let tgs = tgs_made().await?;
                    elb::register_targets(&c, &desired, &tgs, &running.ids, &journal).await
                };
                // `join`, not `try_join`: a registration that fails (no target groups) must not
                // drop the records of instances that run, or the next plan would call them
                // interrupted and replace them (review finding 1).
                let (recorded, registered) = tokio::join!(
                    ec2::record_running(spec, &desired, &running, &journal),
                    register
                );
                recorded?;
                registered
            };
            let lb = async {
                match (&elb_found, &groups.nlb) {
                    (Some(found), Some(nlb_group)) => {
                        elb::load_balancer(
                            &c,
                            spec,
                            &desired,
                            &net,
                            nlb_group,
                            found,
                            tgs_made(),
                            &journal,
                            self.quiet,
                        )
                        .await
                    }
                    _ => Ok(()),
                }
            };
            let (rules, nodes, lb) = tokio::join!(rules, nodes, lb);
            rules?;
            nodes?;
            lb
        };
        let (_, rest) = tokio::join!(tgs.clone(), rest);
        if let Some(e) = tg_error.lock().expect("not poisoned").take() {
            return Err(e);
        }
        rest?;
        let all: Vec<Recorded> = {
            let j = journal.lock().await;
            desired
                .iter()
                .filter_map(|r| j.get(&r.address).cloned())
                .collect()
        };
        acura_ha_api::inventory::inventory(spec, &all)
    }

    async fn clusters(
        &self,
        spec: &ClusterSpec,
        tags: &[(String, String)],
    ) -> Result<Vec<(String, u64)>, ProviderError> {
        let c = clients(spec).await?;
        let mut oldest: BTreeMap<String, u64> = BTreeMap::new();
        let mut note = |name: &str, secs: u64| {
            let e = oldest.entry(name.to_string()).or_insert(secs);
            *e = (*e).min(secs);
        };
        let matches = |t: &dyn Fn(&str) -> Option<String>| {
            t(acura_ha_api::spec::TAG_MANAGED_BY).as_deref() == Some("acura-ha")
                && tags
                    .iter()
                    .all(|(k, v)| t(k).as_deref() == Some(v.as_str()))
        };
        let out = c
            .ec2
            .describe_instances()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("tag-key")
                    .values(acura_ha_api::spec::TAG_CLUSTER)
                    .build(),
            )
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| error::ec2(e).into_provider("instances"))?;
        for i in out.iter().flat_map(|r| r.instances()) {
            if i.state().and_then(|s| s.name())
                == Some(&aws_sdk_ec2::types::InstanceStateName::Terminated)
            {
                continue;
            }
            let tag = |k: &str| {
                i.tags()
                    .iter()
                    .find(|t| t.key() == Some(k))
                    .and_then(|t| t.value())
                    .map(String::from)
            };
            if let (true, Some(name), Some(t)) = (
                matches(&tag),
                tag(acura_ha_api::spec::TAG_CLUSTER),
                i.launch_time(),
            ) {
                note(&name, t.secs().max(0) as u64);
            }
        }
        let lbs = c
            .elb
            .describe_load_balancers()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| error::elb(e).into_provider("load balancers"))?;
        let arns: Vec<(String, u64)> = lbs
            .iter()
            .filter_map(|l| {
                Some((
                    l.load_balancer_arn()?.to_string(),
                    l.created_time()?.secs().max(0) as u64,
                ))
            })
            .collect();
        for chunk in arns.chunks(20) {
            let described = c
                .elb
                .describe_tags()
                .set_resource_arns(Some(chunk.iter().map(|(a, _)| a.clone()).collect()))
                .send()
                .await
                .map_err(|e| error::elb(e).into_provider("tags of load balancers"))?;
            for d in described.tag_descriptions() {
                let tag = |k: &str| {
                    d.tags()
                        .iter()
                        .find(|t| t.key() == Some(k))
                        .and_then(|t| t.value())
                        .map(String::from)
                };
                let created = chunk
                    .iter()
                    .find(|(a, _)| Some(a.as_str()) == d.resource_arn())
                    .map(|(_, t)| *t);
                if let (true, Some(name), Some(t)) =
                    (matches(&tag), tag(acura_ha_api::spec::TAG_CLUSTER), created)
                {
                    note(&name, t);
                }
            }
        }
        Ok(oldest.into_iter().collect())
    }

    /// DescribeLoadBalancers, DescribeListeners and one DescribeTargetHealth per listener's
    /// target group; targets named by the nodes the journal records for their instance IDs.
    async fn lb_health(
        &self,
        spec: &ClusterSpec,
        recorded: &[Recorded],
    ) -> Result<Option<acura_ha_api::model::LbHealth>, ProviderError> {
        if spec.load_balancer.kind != LbKind::Cloud {
            return Ok(None);
        }
        let known = health::Known::from_records(recorded);
        let c = clients(spec).await?;
        health::lb_health(&c, spec, &known).await
    }

    /// DescribeInstances, DescribeSecurityGroups and DescribeKeyPairs by the cluster's tag,
    /// DescribeSecurityGroupRules of its groups, and the recorded NLB's load balancer, target
    /// groups and listeners: what was deleted or added outside the tool (#9.3).
    async fn refresh(
        &self,
        spec: &ClusterSpec,
        recorded: &[Recorded],
    ) -> Result<Option<acura_ha_api::model::Drift>, ProviderError> {
        let c = clients(spec).await?;
        refresh::refresh(&c, spec, recorded).await.map(Some)
    }

    async fn discover(&self, spec: &ClusterSpec) -> Result<Vec<Recorded>, ProviderError> {
        let c = clients(spec).await?;
        discover_with(&c, spec).await
    }

    /// Finds each named node's instance (its record's ID, else the cluster's and Name tags),
    /// takes it out of every target group of the NLB (forgetting its registrations' records),
    /// then terminates it (recorded `Deleting`
    /// first), waits until it is terminated, makes sure no volume of it is left, and forgets its
    /// record. A node with no instance left is done (its stale record is forgotten).
    async fn remove_nodes(
        &self,
        spec: &ClusterSpec,
        names: &[String],
        journal: &mut dyn Journal,
    ) -> Result<(), ProviderError> {
        if names.is_empty() {
            return Ok(());
        }
        let c = clients(spec).await?;
        let journal: SharedJournal<'_> = Arc::new(Mutex::new(journal));
        let leaving = ec2::leaving_nodes(&c, spec, names, &journal).await?;
        let ids: Vec<String> = leaving.iter().filter_map(|l| l.id.clone()).collect();
        if spec.load_balancer.kind == LbKind::Cloud {
            elb::deregister_targets(&c, spec, &ids, &journal, self.quiet).await?;
        }
        // Their registrations (`member[<node>:…]`) are out of the target groups now, or go
        // with the instances.
        elb::forget_registrations_of(&journal, names).await?;
        ec2::remove_nodes(&c, spec, &leaving, &journal, self.quiet).await
    }

    async fn destroy(
        &self,
        spec: &ClusterSpec,
        journal: &mut dyn Journal,
    ) -> Result<(), ProviderError> {
        let c = clients(spec).await?;
        // Besides what the state holds, whatever carries the cluster's tags: a create whose
        // reply was lost (or a crash before its record) leaves resources only the tags know.
        // A few batched describes.
        let known: Vec<Option<String>> = journal.all().into_iter().map(|r| r.id).collect();
        for mut r in discover_with(&c, spec).await? {
            if known.contains(&r.id) {
                continue;
            }
            if journal.get(&r.address).is_some_and(|old| old.id.is_some()) {
                // Another copy under the same name: a separate record.
                let id = r.id.clone().unwrap_or_default();
                let suffix = id.rsplit('/').next().unwrap_or(&id).to_string();
                r.address = format!("{}~{suffix}", r.address);
            }
            journal.record(r)?;
        }
        let journal: SharedJournal<'_> = Arc::new(Mutex::new(journal));
        // The NLB (then its target groups) and the instances go at once; the security groups
        // once the NLB and the instances are gone (ec2::destroy).
        let (gone_tx, mut gone_rx) = tokio::sync::watch::channel(false);
        let elb_side = elb::destroy(&c, spec, &journal, self.quiet, gone_tx);
        let lb_gone = async move {
            // A sender dropped before saying so is an ELB teardown that failed: its own error
            // is the one returned.
            gone_rx
                .wait_for(|gone| *gone)
                .await
                .map(|_| ())
                .map_err(|_| ProviderError::Cloud {
                    resource: "load balancer".into(),
                    message: "not deleted (the error above says why)".into(),
                    request_id: None,
                })
        };
        let (elb_side, ec2_side) = tokio::join!(
            elb_side,
            ec2::destroy(&c, spec, &journal, self.quiet, lb_gone)
        );
        elb_side?;
        ec2_side
    }

    /// Each instance's console output (GetConsoleOutput) for the host keys cloud-init printed.
    async fn console_host_keys(
        &self,
        spec: &ClusterSpec,
        inventory: &acura_ha_api::model::Inventory,
        recorded: &[Recorded],
    ) -> Result<acura_ha_api::model::ConsoleHostKeys, ProviderError> {
        let servers = acura_ha_api::console::server_ids(inventory, recorded);
        let c = clients(spec).await?;
        Ok(ec2::console_host_keys(&c, servers).await)
    }
}

async fn discover_with(c: &Clients, spec: &ClusterSpec) -> Result<Vec<Recorded>, ProviderError> {
    let (mut out, lb) = tokio::try_join!(ec2::discover(c, spec), elb::discover(c, spec))?;
    out.extend(lb);
    Ok(out)
}
