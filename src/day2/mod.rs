//! Day 2: the guide's "How to ..." section as one command each — `update` (the overlay list),
//! `node remove`, `node add`, `node replace` — run on a live node over SSH, with the load
//! balancer kept in step and every change recorded in the state so an interrupted command
//! resumes where it stopped.

pub mod error;
pub mod kube;
pub mod node;
pub mod update;

pub use error::Day2Error;

use std::sync::Arc;
use std::time::Duration;

use acura_ha_api::model::{Host, Kind, Recorded};
use acura_ha_api::provider::{Journal, ProviderError};
use acura_ha_api::tables;

use crate::bootstrap::postcheck::{self, ClusterHealth};
use crate::bootstrap::preflight::Pool;
use crate::bootstrap::ssh::{Session, SshOptions, Target};
use crate::bootstrap::{self, ha_env};
use crate::config::LoadedConfig;
use crate::files::write_atomic;
use crate::plan::{self, StepAction};
use crate::state::{NodeEntry, State, StateStore, StepRecord, now_rfc3339};

/// Prints one step: what, and on which host.
pub fn say(step: &str, message: impl AsRef<str>) {
    eprintln!("[{step:>6}] {}", message.as_ref());
}

/// The state being changed and the cluster file it is applied to.
pub struct Ctx<'a> {
    pub store: &'a StateStore,
    /// The cluster file as loaded; [`Ctx::cfg`] applies the state's day-2 changes again after
    /// each change (applying them is idempotent, so a file that had them already is fine).
    file: LoadedConfig,
    pub state: State,
}

impl<'a> Ctx<'a> {
    /// Loads the state under the caller's lock. A cluster never applied has nothing to change.
    pub fn open(cfg: &LoadedConfig, store: &'a StateStore) -> Result<Self, Day2Error> {
        let state = store.load()?.ok_or_else(|| {
            Day2Error::Usage(format!(
                "cluster {:?} has no state in {}: run {} first",
                cfg.spec.cluster.name,
                store.dir.display(),
                acura_ha_api::hint::command("up")
            ))
        })?;
        Ok(Ctx {
            store,
            file: cfg.clone(),
            state,
        })
    }

    /// The cluster file with the day-2 changes applied: what the cluster is now.
    pub fn cfg(&self) -> LoadedConfig {
        let mut c = self.file.clone();
        self.state.apply_day2(&mut c.spec);
        c
    }

    /// The node set, as the state will record it.
    pub fn members(&self) -> Vec<NodeEntry> {
        if let Some(n) = &self.state.day2.nodes {
            return n.clone();
        }
        // No day-2 node change yet: the file's nodes.
        self.file
            .spec
            .node_names()
            .into_iter()
            .map(|name| NodeEntry {
                name,
                address: None,
            })
            .collect()
    }

    pub fn set_members(&mut self, nodes: Vec<NodeEntry>) {
        self.state.day2.nodes = Some(nodes);
    }

    pub fn save(&mut self) -> Result<(), Day2Error> {
        Ok(self.store.save(&mut self.state)?)
    }

    /// The hosts as the state knows them now. The node being added is a member before its
    /// host exists: on a cloud, where only the created server has an address, a creation that
    /// failed or was interrupted leaves it without one, and the hosts are then the others until
    /// the command that finishes the job creates it.
    pub fn inventory(&self) -> Result<acura_ha_api::model::Inventory, Day2Error> {
        match acura_ha_api::inventory::inventory(&self.cfg().spec, &self.state.resources) {
            Ok(inv) => Ok(inv),
            Err(e) => match &self.state.day2.pending {
                Some(p) => {
                    let mut without = self.state.clone();
                    without.day2.nodes = Some(
                        self.members()
                            .into_iter()
                            .filter(|n| n.name != p.new)
                            .collect(),
                    );
                    let mut c = self.file.clone();
                    without.apply_day2(&mut c.spec);
                    acura_ha_api::inventory::inventory(&c.spec, &self.state.resources)
                        .map_err(|_| e.into())
                }
                None => Err(e.into()),
            },
        }
    }

    /// Whether the provider made the hosts (then it deletes them) or they are the user's.
    pub fn creates_hosts(&self) -> bool {
        self.file.spec.provider_kind() != acura_ha_api::spec::ProviderKind::Static
    }

    pub fn ssh_options(&self) -> SshOptions {
        bootstrap::ssh_options(&self.cfg(), &self.store.cluster_dir())
    }

    /// After a change: rewrites the `ha_env_file` for the current nodes and brings the recorded
    /// bootstrap steps up to date, so `plan` shows no change for what this command did.
    pub fn settle(&mut self) -> Result<(), Day2Error> {
        let cfg = self.cfg();
        let inv = self.inventory()?;
        let dir = self.store.cluster_dir();
        let key = bootstrap::key_file(&cfg, &dir);
        dir.create()?;
        write_atomic(
            &dir.ha_env_file(),
            ha_env::render(&cfg.spec.cluster.name, &inv.nodes, key.as_deref()).as_bytes(),
        )?;
        let p = plan::build(&cfg.spec, Some(&self.state), &bootstrap::paths(&cfg, &dir));
        for s in &p.bootstrap {
            if s.action == StepAction::Run && self.state.steps.contains_key(s.id) {
                self.state.steps.insert(
                    s.id.to_string(),
                    StepRecord {
                        completed_at: now_rfc3339(),
                        inputs: s.inputs.clone(),
                    },
                );
            }
        }
        self.save()
    }
}

/// A journal that keeps, for a node the provider adopted as it stands (the same cloud ID, whatever
/// its recorded status: an interrupted create with its ID is the same server), the attributes it
/// was built with. A provider finds a node's server
/// by name and records the file's attributes for it; but a server whose instance type, flavor,
/// image or volume size changed in the file still has the old ones until `up` replaces it, one
/// node at a time (#9.2). Recording the new ones would make the state claim what the cloud does
/// not have, and the plan would stop showing the replacements still to do. A node made anew (a
/// new ID: tainted, interrupted, deleted outside, or new) records what it was made with.
pub struct KeepsBuilt<J>(pub J);

impl<J: Journal> Journal for KeepsBuilt<J> {
    fn record(&mut self, mut resource: Recorded) -> Result<(), ProviderError> {
        if resource.kind == Kind::Instance
            && let Some(old) = self.0.get(&resource.address)
            && old.id.is_some()
            && old.id == resource.id
        {
            resource.attrs = old.attrs.clone();
        }
        self.0.record(resource)
    }

    fn forget(&mut self, address: &str) -> Result<(), ProviderError> {
        self.0.forget(address)
    }

    fn get(&self, address: &str) -> Option<&Recorded> {
        self.0.get(address)
    }

    fn all(&self) -> Vec<Recorded> {
        self.0.all()
    }
}

/// Connects to each host it can within `wait`, in parallel; the others are returned with why.
pub async fn connect_some(
    hosts: &[Host],
    user: &str,
    opts: &SshOptions,
    wait: Duration,
) -> (Pool, Vec<(String, String)>) {
    let mut opts = opts.clone();
    opts.connect_timeout = wait;
    let mut set = tokio::task::JoinSet::new();
    for h in hosts {
        let target = Target {
            name: h.name.clone(),
            address: h.address.clone(),
            port: tables::SSH_PORT,
            user: user.to_string(),
        };
        let opts = opts.clone();
        set.spawn(async move {
            let r = Session::connect(&target, &opts).await;
            (target.name, r)
        });
    }
    let mut pool = Pool::default();
    let mut failed = Vec::new();
    while let Some(Ok((name, r))) = set.join_next().await {
        match r {
            Ok(s) => pool.insert(s),
            Err(e) => failed.push((name, e.to_string())),
        }
    }
    failed.sort();
    (pool, failed)
}

/// A node that answers SSH and whose `kubectl` works, and what it sees of the cluster.
pub struct Live {
    pub session: Arc<Session>,
    pub health: ClusterHealth,
}

impl Live {
    pub fn name(&self) -> &str {
        &self.session.target.name
    }
}

/// The first of `nodes` (in order, skipping `exclude`) that answers and can run `kubectl`.
pub async fn live_node(
    nodes: &[Host],
    exclude: &[String],
    user: &str,
    opts: &SshOptions,
) -> Result<(Live, Vec<(String, String)>), Day2Error> {
    let candidates: Vec<Host> = nodes
        .iter()
        .filter(|h| !exclude.contains(&h.name))
        .cloned()
        .collect();
    let (pool, mut unreachable) =
        connect_some(&candidates, user, opts, Duration::from_secs(10)).await;
    let mut why = Vec::new();
    for h in &candidates {
        let Some(s) = pool.get(&h.name) else { continue };
        match postcheck::health(&s).await {
            Ok(health) if health.error.is_none() => {
                return Ok((Live { session: s, health }, unreachable));
            }
            Ok(health) => why.push(format!("{}: {}", h.name, health.error.unwrap_or_default())),
            Err(e) => why.push(e.to_string()),
        }
    }
    why.extend(unreachable.drain(..).map(|(h, e)| format!("{h}: {e}")));
    Err(Day2Error::NoLiveNode {
        tried: candidates
            .iter()
            .map(|h| h.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        why: why.join("; "),
    })
}

/// Removes `address`'s lines from a known_hosts file: a host that is gone must not pin the key
/// of the next machine that gets its address.
pub fn unpin(known_hosts: &std::path::Path, address: &str) -> Result<(), Day2Error> {
    let Ok(text) = std::fs::read_to_string(known_hosts) else {
        return Ok(());
    };
    let bracketed = format!("[{address}]:");
    let kept: String = text
        .lines()
        .filter(|l| {
            let hosts = l.split_whitespace().next().unwrap_or("");
            !hosts
                .split(',')
                .any(|h| h == address || h.starts_with(&bracketed))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    if kept != text {
        write_atomic(known_hosts, kept.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use acura_ha_api::model::Status;

    /// A journal in memory, as the state keeps one.
    #[derive(Default)]
    struct Mem(Vec<Recorded>);

    impl Journal for Mem {
        fn record(&mut self, r: Recorded) -> Result<(), ProviderError> {
            self.0.retain(|x| x.address != r.address);
            self.0.push(r);
            Ok(())
        }
        fn forget(&mut self, address: &str) -> Result<(), ProviderError> {
            self.0.retain(|x| x.address != address);
            Ok(())
        }
        fn get(&self, address: &str) -> Option<&Recorded> {
            self.0.iter().find(|x| x.address == address)
        }
        fn all(&self) -> Vec<Recorded> {
            self.0.clone()
        }
    }

    fn node(name: &str, id: &str, status: Status, flavor: &str) -> Recorded {
        Recorded {
            address: format!("instance[{name}]"),
            kind: Kind::Instance,
            name: name.into(),
            id: Some(id.into()),
            status,
            attrs: [("flavor".to_string(), flavor.to_string())].into(),
            outputs: Default::default(),
            created_at: "2026-12-07T00:00:00Z".into(),
        }
    }

    /// A server adopted under its ID keeps the flavor it runs; one made anew records its own.
    #[test]
    fn an_adopted_node_keeps_the_attributes_it_was_built_with() {
        let mut j = KeepsBuilt(Mem::default());
        j.record(node("a-1", "s1", Status::Ready, "m1.xlarge"))
            .unwrap();
        j.record(node("a-2", "s2", Status::Tainted, "m1.xlarge"))
            .unwrap();
        // The provider adopts a-1 by name and records the file's new flavor: kept as built.
        j.record(node("a-1", "s1", Status::Ready, "m1.2xlarge"))
            .unwrap();
        assert_eq!(j.get("instance[a-1]").unwrap().attrs["flavor"], "m1.xlarge");
        // a-2 was tainted and is made again (a new server): its new flavor is recorded.
        j.record(node("a-2", "s9", Status::Ready, "m1.2xlarge"))
            .unwrap();
        assert_eq!(
            j.get("instance[a-2]").unwrap().attrs["flavor"],
            "m1.2xlarge"
        );
        // a-1 replaced under a new ID (deleted outside, made again): its new flavor.
        j.record(node("a-1", "s7", Status::Ready, "m1.2xlarge"))
            .unwrap();
        assert_eq!(
            j.get("instance[a-1]").unwrap().attrs["flavor"],
            "m1.2xlarge"
        );
        // a-4's create was interrupted after the server existed (recorded Creating with its
        // ID); adopted by that ID, it keeps what it was made with (review finding 2).
        j.record(node("a-4", "s4", Status::Creating, "m1.xlarge"))
            .unwrap();
        j.record(node("a-4", "s4", Status::Ready, "m1.2xlarge"))
            .unwrap();
        assert_eq!(j.get("instance[a-4]").unwrap().attrs["flavor"], "m1.xlarge");
        // A new node records what it was made with.
        j.record(node("a-3", "s3", Status::Ready, "m1.2xlarge"))
            .unwrap();
        assert_eq!(
            j.get("instance[a-3]").unwrap().attrs["flavor"],
            "m1.2xlarge"
        );
    }

    #[test]
    fn unpin_drops_only_that_address() {
        let dir = tempfile::tempdir().unwrap();
        let kh = dir.path().join("known_hosts");
        std::fs::write(
            &kh,
            "10.0.0.11 ssh-ed25519 AAA1\n10.0.0.12 ssh-ed25519 AAA2\n[10.0.0.12]:2222 ssh-ed25519 AAA3\n10.0.0.121 ssh-ed25519 AAA4\n",
        )
        .unwrap();
        unpin(&kh, "10.0.0.12").unwrap();
        assert_eq!(
            std::fs::read_to_string(&kh).unwrap(),
            "10.0.0.11 ssh-ed25519 AAA1\n10.0.0.121 ssh-ed25519 AAA4\n"
        );
    }
}
