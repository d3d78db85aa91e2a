//! The OpenStack provider: Nova (servers booted from new volumes, a server group, a key pair),
//! Neutron (a security group with the guide's rules, floating IPs), Cinder (leftover volumes),
//! Glance (the image) and Octavia (a load balancer with a listener, pool, health monitor and
//! members per listener of the guide), over a thin reqwest (rustls) client.
//!
//! Credentials are resolved as the openstack CLI does ([`config`]). Every resource has a
//! deterministic name and the cluster's tags, is looked up before it is created (and adopted),
//! and is recorded in the journal before the create call and again the moment its ID is known.

mod capabilities;
pub mod client;
mod compute;
pub mod config;
mod image;
pub mod memory;
mod microversion;
mod network;
mod octavia;
mod ports;
pub mod quota;
mod refresh;
mod volume;
pub mod wait;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use acura_ha_api::model::{Inventory, Kind, Recorded, Resource, Status};
use acura_ha_api::provider::{Journal, Provider, ProviderError};
use acura_ha_api::spec::{ClusterSpec, LbKind, ProviderKind, TAG_LINEAGE};
use async_trait::async_trait;
use tokio::sync::Mutex;

use crate::client::Session;
use crate::config::{CloudConfig, Env, Overrides, ProcessEnv};
use crate::wait::Pace;

/// The provider. Credentials are read on each call from clouds.yaml / `OS_*`.
pub struct OpenStackProvider {
    /// Relative paths in the cluster file (`public_key_file`, `cacert`) are relative to this.
    base_dir: PathBuf,
    quiet: bool,
    pace: Pace,
    env: Arc<dyn Env + Send + Sync>,
    /// Where the waits' memory of the cloud is kept: `None` the default path in the cache
    /// directory, `Some(None)` nowhere (each operation starts cold).
    memory: Option<Option<PathBuf>>,
}

impl OpenStackProvider {
    /// Like `AwsProvider::new`: `base_dir` is the cluster file's directory.
    pub fn new(base_dir: PathBuf) -> Self {
        OpenStackProvider {
            base_dir,
            quiet: false,
            pace: Pace::default(),
            env: Arc::new(ProcessEnv),
            memory: None,
        }
    }

    /// Keep the waits' memory of the cloud in this file, or nowhere (`None`); the default is
    /// `openstack-waits.json` in the user's cache directory.
    pub fn wait_memory(mut self, path: Option<PathBuf>) -> Self {
        self.memory = Some(path);
        self
    }

    /// No progress lines (tests, `--output json`).
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    /// How fast waits poll (tests against a fake cloud poll faster).
    pub fn pace(mut self, pace: Pace) -> Self {
        self.pace = pace;
        self
    }

    /// Resolve credentials from this environment instead of the process's (tests).
    pub fn env(mut self, env: impl Env + Send + Sync + 'static) -> Self {
        self.env = Arc::new(env);
        self
    }

    /// The cloud the cluster file (and the environment) points at.
    pub fn cloud_config(&self, spec: &ClusterSpec) -> Result<CloudConfig, ProviderError> {
        let os = spec.openstack.as_ref().expect("openstack section");
        let ov = Overrides {
            cloud: os.cloud.clone(),
            region: os.region.clone(),
            interface: os.interface.clone(),
            cacert: os
                .cacert
                .as_deref()
                .map(|c| acura_ha_api::paths::resolve(&self.base_dir, c)),
        };
        config::resolve(&ov, self.env.as_ref()).map_err(|e| ProviderError::Cloud {
            resource: "OpenStack credentials".into(),
            message: e.0,
            request_id: None,
        })
    }

    /// What every call of one operation shares: the session, the spec, the journal (behind a
    /// lock, for the concurrent branches) and the provider's pace.
    fn ctx<'a>(
        &'a self,
        s: &'a Session,
        spec: &'a ClusterSpec,
        journal: &'a mut dyn Journal,
    ) -> Ctx<'a> {
        Ctx {
            s,
            spec,
            journal: Arc::new(Mutex::new(journal)),
            quiet: self.quiet,
            pace: self.pace,
            memory: Arc::new(memory::Memory::load(match &self.memory {
                Some(p) => p.clone(),
                None => memory::default_path(self.env.as_ref()),
            })),
            base_dir: &self.base_dir,
        }
    }

    async fn session(&self, spec: &ClusterSpec) -> Result<Session, ProviderError> {
        let cfg = self.cloud_config(spec)?;
        Session::connect(&cfg).await
    }
}

/// The journal shared by work that runs concurrently (nodes ∥ load balancer).
pub(crate) type SharedJournal<'a> = Arc<Mutex<&'a mut dyn Journal>>;

/// What every step needs.
pub(crate) struct Ctx<'a> {
    pub s: &'a Session,
    pub spec: &'a ClusterSpec,
    pub journal: SharedJournal<'a>,
    pub quiet: bool,
    pub pace: Pace,
    /// What waits remember of this cloud's speed.
    pub memory: Arc<memory::Memory>,
    /// The cluster file's directory (relative paths in it, as `public_key_file`).
    pub base_dir: &'a std::path::Path,
}

impl Ctx<'_> {
    /// The memory and the key of a kind of transition on `service` of this cloud (its endpoint
    /// tells the cloud and region apart; the project, two clouds behind one address).
    pub(crate) fn learn(
        &self,
        service: crate::client::Service,
        kind: &str,
    ) -> Option<(&memory::Memory, String)> {
        let endpoint = self.s.endpoint(service).ok()?;
        let project = &self.s.project_id;
        Some((&self.memory, format!("{endpoint} {project} {kind}")))
    }

    /// Records `r` with `status`, `id` and `outputs`, keeping its first `created_at`.
    pub async fn record(
        &self,
        r: &Resource,
        status: Status,
        id: Option<String>,
        outputs: BTreeMap<String, String>,
    ) -> Result<(), ProviderError> {
        let mut j = self.journal.lock().await;
        acura_ha_api::provider::record_desired(&mut **j, r, status, id, outputs)
    }

    pub async fn recorded(&self, address: &str) -> Option<Recorded> {
        self.journal.lock().await.get(address).cloned()
    }

    pub async fn forget(&self, address: &str) -> Result<(), ProviderError> {
        self.journal.lock().await.forget(address)
    }

    pub async fn all(&self) -> Vec<Recorded> {
        self.journal.lock().await.all()
    }

    pub fn progress(&self, msg: &str) {
        progress(self.quiet, msg);
    }
}

pub(crate) fn progress(quiet: bool, msg: &str) {
    if !quiet {
        eprintln!("[openstack] {msg}");
    }
}

/// The cluster's tags as OpenStack tag strings (Nova forbids `/` in tags): `acura-ha-cluster=x`,
/// and the state's lineage (`acura-ha-lineage=…`, #9.4).
pub(crate) fn tag_strings(spec: &ClusterSpec, role: &str) -> Vec<String> {
    spec.cloud_tags(role)
        .into_iter()
        .map(|(k, v)| format!("{}={v}", k.replace('/', "-")))
        .collect()
}

/// The lineage a resource carries: a server's metadata, or any resource's tag strings.
pub(crate) fn lineage_of(v: &serde_json::Value) -> Option<String> {
    if let Some(l) = v["metadata"][TAG_LINEAGE].as_str() {
        return Some(l.to_string());
    }
    let prefix = format!("{}=", TAG_LINEAGE.replace('/', "-"));
    v["tags"]
        .as_array()?
        .iter()
        .filter_map(|t| t.as_str())
        .find_map(|t| t.strip_prefix(&prefix).map(str::to_string))
}

/// Whether a resource found under the cluster's names belongs to another state (another
/// lineage): discovery (`down --discover`, destroy's sweep) leaves it alone.
pub(crate) fn another_lineage(spec: &ClusterSpec, v: &serde_json::Value) -> bool {
    matches!((&spec.lineage, lineage_of(v)), (Some(ours), Some(theirs)) if *ours != theirs)
}

/// Ownership (#9.4): before anything is created, every resource found under the cluster's
/// names that another state made (another lineage) stops the run, named; nothing of it is
/// adopted or changed.
pub(crate) fn check_owned<'a>(
    spec: &ClusterSpec,
    found: impl IntoIterator<Item = (String, &'a serde_json::Value)>,
) -> Result<(), ProviderError> {
    for (what, v) in found {
        spec.check_lineage(&what, lineage_of(v).as_deref())
            .map_err(|message| ProviderError::Cloud {
                resource: what.clone(),
                message,
                request_id: None,
            })?;
    }
    Ok(())
}

/// The tag every resource of the cluster carries.
pub(crate) fn cluster_tag(spec: &ClusterSpec) -> String {
    tag_strings(spec, "")[0].clone()
}

pub(crate) fn desired_one<'a>(desired: &'a [Resource], address: &str) -> Option<&'a Resource> {
    desired.iter().find(|r| r.address == address)
}

/// A string field of a JSON object.
pub(crate) fn js(v: &serde_json::Value, k: &str) -> String {
    v.get(k)
        .and_then(|x| x.as_str())
        .unwrap_or_default()
        .to_string()
}

#[async_trait]
impl Provider for OpenStackProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::OpenStack
    }

    async fn provision(
        &self,
        spec: &ClusterSpec,
        journal: &mut dyn Journal,
    ) -> Result<Inventory, ProviderError> {
        let s = self.session(spec).await?;
        // A cloud too old for the API versions this provider speaks is named before anything
        // is created: Nova and Cinder by the 406 their first call (a lookup) gets for our
        // microversion, Octavia (which takes none) by its version document, read beside the
        // lookups, only when the cluster uses it, and not again for a day once it was enough.
        let needed: &[capabilities::Needed] = if spec.load_balancer.kind == LbKind::Cloud {
            &[capabilities::OCTAVIA]
        } else {
            &[]
        };
        let desired = acura_ha_api::desired::desired(spec);
        let cx = self.ctx(&s, spec, journal);
        // Lookups (nothing created yet), then the quota preflight.
        let ((), look, existing) = tokio::try_join!(
            capabilities::check_versions(&s, needed, self.quiet, &cx.memory),
            compute::lookups(&cx),
            compute::cluster_servers(&cx),
        )?;
        let lb_name = acura_ha_api::targets::shared::cloud_name(spec);
        let group = network::find_group(&s, spec)
            .await
            .map_err(|e| e.into_provider("security_group"))?;
        check_owned(
            spec,
            existing
                .iter()
                .map(|(name, sv)| (format!("server {name}"), sv))
                .chain(
                    look.lbs
                        .iter()
                        .flatten()
                        .filter(|l| js(l, "name") == lb_name)
                        .map(|l| (format!("load balancer {lb_name}"), l)),
                )
                .chain(
                    group
                        .iter()
                        .map(|g| (format!("security group {lb_name}"), g)),
                ),
        )?;
        quota::preflight(&cx, &desired, &look, &existing).await?;
        // The servers' ports first (their addresses are known at once), then two chains at
        // once: the servers' builds, and the load balancer made fully populated in one call
        // with those addresses as members. The critical path is max(build, LB create).
        let (key_name, sg, group) = tokio::try_join!(
            compute::key_pair(&cx, &desired),
            network::security_group(&cx, &desired, group.clone()),
            compute::server_group(&cx, &desired),
        )?;
        let ports = ports::ensure(&cx, &desired, &look.net, &existing, &sg.0).await?;
        // Every node's address, from its port or its existing server; without one (a server
        // still without an address) the members wait for the servers.
        let mut fixed = BTreeMap::new();
        for r in desired.iter().filter(|r| r.kind == Kind::Instance) {
            let ip = match ports.get(&r.name) {
                Some(p) => Some(p.ip.clone()),
                None => existing
                    .get(&r.name)
                    .and_then(|sv| compute::fixed_ip(sv, &look.net.name)),
            };
            if let Some(ip) = ip.filter(|ip| !ip.is_empty()) {
                fixed.insert(r.name.clone(), ip);
            }
        }
        let known = fixed.len() == desired.iter().filter(|r| r.kind == Kind::Instance).count();
        let nodes = async {
            let created = compute::create_servers(
                &cx, &desired, &look, &existing, &key_name, &sg, &group, &ports,
            )
            .await?;
            compute::finish_servers(&cx, &desired, &look, &created).await
        };
        let lb = async {
            if spec.load_balancer.kind == LbKind::Cloud {
                octavia::load_balancer(&cx, &desired, &look, known.then_some(&fixed))
                    .await
                    .map(Some)
            } else {
                Ok(None)
            }
        };
        let (servers, lb) = tokio::try_join!(nodes, lb)?;
        if let Some((mut lb, false)) = lb {
            octavia::members(&cx, &desired, &look, &mut lb, &servers).await?;
        }
        let all: Vec<Recorded> = {
            let j = cx.journal.lock().await;
            desired
                .iter()
                .filter_map(|r| j.get(&r.address).cloned())
                .collect()
        };
        acura_ha_api::inventory::inventory(spec, &all)
    }

    /// Every kind listed once (members once per pool), compared with the records.
    async fn refresh(
        &self,
        spec: &ClusterSpec,
        recorded: &[Recorded],
    ) -> Result<Option<acura_ha_api::model::Drift>, ProviderError> {
        let s = self.session(spec).await?;
        refresh::refresh(&s, spec, recorded).await.map(Some)
    }

    async fn discover(&self, spec: &ClusterSpec) -> Result<Vec<Recorded>, ProviderError> {
        let s = self.session(spec).await?;
        discover_with(&s, spec).await
    }

    async fn clusters(
        &self,
        spec: &ClusterSpec,
        tags: &[(String, String)],
    ) -> Result<Vec<(String, u64)>, ProviderError> {
        let s = self.session(spec).await?;
        compute::clusters(&s, tags).await
    }

    async fn remove_nodes(
        &self,
        spec: &ClusterSpec,
        names: &[String],
        journal: &mut dyn Journal,
    ) -> Result<(), ProviderError> {
        let s = self.session(spec).await?;
        let cx = self.ctx(&s, spec, journal);
        octavia::remove_members(&cx, names).await?;
        compute::remove_servers(&cx, names).await
    }

    /// Octavia's status tree, members named by the state's records; `None` when the cluster
    /// has no Octavia load balancer (NGINX, external) or none is recorded yet.
    async fn lb_health(
        &self,
        spec: &ClusterSpec,
        recorded: &[Recorded],
    ) -> Result<Option<acura_ha_api::model::LbHealth>, ProviderError> {
        let has_lb = recorded
            .iter()
            .any(|r| r.kind == acura_ha_api::model::Kind::LoadBalancer && r.id.is_some());
        if spec.load_balancer.kind != LbKind::Cloud || !has_lb {
            return Ok(None);
        }
        let s = self.session(spec).await?;
        octavia::health(&s, recorded).await
    }

    async fn destroy(
        &self,
        spec: &ClusterSpec,
        journal: &mut dyn Journal,
    ) -> Result<(), ProviderError> {
        let s = self.session(spec).await?;
        // Besides what the state holds, whatever carries the cluster's tags or names: a create
        // whose reply was lost (or a crash before its record) leaves resources only they know.
        let seen = Seen::read(&s, spec, false).await?;
        let known: Vec<Option<String>> = journal
            .all()
            .into_iter()
            .filter(|r| r.id.is_some())
            .map(|r| r.id)
            .collect();
        for mut r in seen.records.clone() {
            if known.contains(&r.id) {
                continue;
            }
            if journal.get(&r.address).is_some_and(|old| old.id.is_some()) {
                let id = r.id.clone().unwrap_or_default();
                r.address = format!("{}~{}", r.address, &id[..id.len().min(8)]);
            }
            journal.record(r)?;
        }
        let cx = self.ctx(&s, spec, journal);
        // The reverse of provisioning: the load balancer (its children go with it) and the
        // servers in parallel, then what they used.
        tokio::try_join!(
            octavia::destroy(&cx, &seen),
            compute::destroy_servers(&cx, &seen)
        )?;
        compute::destroy_rest(&cx, seen.foreign).await?;
        Ok(())
    }

    /// Each server's console log (`os-getConsoleOutput`), for the host keys cloud-init printed
    /// there; a server whose log cannot be had is left out.
    async fn console_host_keys(
        &self,
        spec: &ClusterSpec,
        inventory: &Inventory,
        recorded: &[Recorded],
    ) -> Result<acura_ha_api::model::ConsoleHostKeys, ProviderError> {
        let servers = acura_ha_api::console::server_ids(inventory, recorded);
        let s = self.session(spec).await?;
        let logs = servers.into_iter().map(|(host, id)| {
            let s = &s;
            async move { (host, compute::console_output(s, &id).await.ok().flatten()) }
        });
        let outputs = futures::future::join_all(logs).await;
        Ok(acura_ha_api::console::from_outputs(outputs))
    }
}

/// What the cloud holds of the cluster, from one list call per kind: the records of
/// [`discover`](Provider::discover) and the lists they came from (destroy reuses them).
pub(crate) struct Seen {
    pub records: Vec<Recorded>,
    /// The cluster's servers by name.
    pub servers: BTreeMap<String, serde_json::Value>,
    /// The project's floating IPs.
    pub fips: Vec<serde_json::Value>,
    /// The cluster's load balancer.
    pub lb: Option<serde_json::Value>,
    /// Another state's cluster of the same name is here too (#9.4): what is known only by its
    /// name (server group, the imported key pair, floating IPs without our lineage tag) cannot
    /// be told apart, so it is neither found nor deleted by name.
    pub foreign: bool,
}

impl Seen {
    /// `key_pair`: also look up the imported key pair (destroy deletes it by name anyway).
    pub async fn read(
        s: &Session,
        spec: &ClusterSpec,
        key_pair: bool,
    ) -> Result<Seen, ProviderError> {
        let (c, n, o) = tokio::try_join!(
            compute::discover(s, spec, key_pair),
            network::discover(s, spec),
            octavia::discover(s, spec),
        )?;
        // Whether a server, security group or load balancer under the cluster's names
        // carries another state's lineage, from the same lists (without a lineage, the state
        // was lost: everything under the names is ours).
        let foreign = c.2 || n.2 || o.2;
        let mut records = c.0;
        records.extend(n.0);
        records.extend(o.0);
        // With another state's cluster here, a floating IP is ours only by its lineage tag
        // (where Neutron has tags); one known only by its description is left alone.
        let fips: Vec<serde_json::Value> =
            n.1.into_iter()
                .filter(|f| !foreign || network::fip_of_our_lineage(spec, f))
                .collect();
        if foreign {
            records.retain(|r| match r.kind {
                Kind::ServerGroup | Kind::KeyPair => false,
                Kind::FloatingIp => fips.iter().any(|f| Some(js(f, "id")) == r.id),
                _ => true,
            });
        }
        Ok(Seen {
            records,
            servers: c.1,
            fips,
            lb: o.1,
            foreign,
        })
    }
}

async fn discover_with(s: &Session, spec: &ClusterSpec) -> Result<Vec<Recorded>, ProviderError> {
    Ok(Seen::read(s, spec, true).await?.records)
}

#[cfg(test)]
mod tests;
