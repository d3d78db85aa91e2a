//! The state file: one JSON document per cluster with a schema version, a lineage (a random ID
//! fixed at creation, so two states of different clusters are never confused), a serial that
//! grows with every write, and every resource. Written atomically (temporary file, fsync,
//! rename) with mode 0600, the previous version kept as `.bak`. A lock file next to it says who
//! is changing the cluster (after Terraform's `statemgr`).

pub mod backend;
#[cfg(any(feature = "aws", feature = "openstack"))]
mod rt;
#[cfg(feature = "aws")]
pub mod s3;
#[cfg(feature = "openstack")]
pub mod swift;

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use acura_ha_api::model::Recorded;
use acura_ha_api::provider::{Journal, ProviderError};
use serde::{Deserialize, Serialize};

use crate::config::LoadedConfig;
use crate::files::write_atomic;
use crate::files::{ClusterDir, FileError};
use backend::{BackendError, LocalBackend, Precondition, StateBackend, Version};

/// What can go wrong with a cluster's state file and its lock.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    File(#[from] FileError),

    #[error("the state file {} is not valid: {message}", path.display())]
    Corrupt { path: PathBuf, message: String },

    #[error("the state file {} has schema version {found}; this acura-ha reads up to {supported}", path.display())]
    TooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },

    #[error("the state file {} belongs to cluster {found:?}, not {expected:?}", path.display())]
    OtherCluster {
        path: PathBuf,
        found: String,
        expected: String,
    },

    #[error("the state of cluster {cluster:?} is locked: {info}")]
    Locked {
        cluster: String,
        info: Box<LockInfo>,
    },

    #[error("the state of cluster {cluster:?} is not locked")]
    NotLocked { cluster: String },

    #[error("lock ID {given:?} does not match the lock held: {info}")]
    LockMismatch { given: String, info: Box<LockInfo> },

    #[error("the lock is held by a running process on this host: {info}")]
    LockHolderAlive { info: Box<LockInfo> },

    #[error("the state backend failed: {0}")]
    Backend(#[from] BackendError),

    #[error(
        "{location} holds the state of another cluster lineage ({found}, serial {serial}), not this one's ({expected})"
    )]
    OtherLineage {
        location: String,
        found: String,
        serial: u64,
        expected: String,
    },

    #[error("cannot migrate the state of cluster {cluster:?}: {why}")]
    Migrate { cluster: String, why: String },
}

impl StateError {
    /// The stable code printed as `error[AH…]`.
    pub fn code(&self) -> &'static str {
        match self {
            StateError::File(e) => e.code(),
            StateError::Corrupt { .. } => "AH200",
            StateError::TooNew { .. } => "AH201",
            StateError::OtherCluster { .. } => "AH202",
            StateError::Locked { .. } => "AH210",
            StateError::NotLocked { .. } => "AH211",
            StateError::LockMismatch { .. } => "AH212",
            StateError::LockHolderAlive { .. } => "AH213",
            StateError::Backend(BackendError::File(e)) => e.code(),
            StateError::Backend(BackendError::Changed { .. }) => "AH214",
            StateError::Backend(BackendError::Remote(_)) => "AH215",
            StateError::Backend(BackendError::Public(_)) => "AH216",
            StateError::Backend(BackendError::NotInBuild { .. }) => "AH217",
            StateError::OtherLineage { .. } => "AH218",
            StateError::Migrate { .. } => "AH219",
        }
    }

    /// What the user can do about it.
    pub fn help(&self) -> Option<String> {
        match self {
            StateError::Corrupt { .. } => Some(
                "restore it from the `.bak` copy next to it, or, if the cluster was deleted, remove the file".into(),
            ),
            StateError::TooNew { .. } => Some("use a newer acura-ha".into()),
            StateError::OtherCluster { .. } => Some(
                "point --state-dir at this cluster's state, or check cluster.name in the cluster file".into(),
            ),
            StateError::Locked { info, .. } => Some(format!(
                "wait for that run to finish; if it died, run {}{}",
                acura_ha_api::hint::command(&format!(
                    "state unlock {}",
                    acura_ha_api::hint::shell_word(&info.id)
                )),
                info.age()
                    .map(|a| format!(" (the lock is {} old)", humantime::format_duration(a)))
                    .unwrap_or_default()
            )),
            StateError::Backend(BackendError::Changed { .. }) => Some(format!(
                "another run wrote the state after this one read it, and nothing was overwritten: run the command again (it starts from the current state; {} shows it)",
                acura_ha_api::hint::command("state show")
            )),
            StateError::Backend(BackendError::Public(_)) => Some(
                "make the bucket private (remove the public grant or policy statement, or turn on Block Public Access) and run again".into(),
            ),
            StateError::Backend(BackendError::Remote(_)) => Some(
                "check the bucket or container named above, your credentials and network, then run again".into(),
            ),
            StateError::Migrate { .. } => Some(
                "add the key to [state] (the backend in use stays as `backend` says until you change it)".into(),
            ),
            StateError::OtherLineage { .. } => Some(
                "that location already holds another state: choose another bucket, container or prefix, or remove that state if it is no longer needed".into(),
            ),
            StateError::LockHolderAlive { info } => Some(format!(
                "process {} is still running: stop it first, or pass --force if you are sure it does not use this state",
                info.pid
            )),
            _ => None,
        }
    }
}

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub schema_version: u32,
    pub lineage: String,
    pub serial: u64,
    pub cluster: String,
    pub provider: String,
    pub resources: Vec<Recorded>,
    /// Bootstrap steps that have completed, by step ID.
    #[serde(default)]
    pub steps: BTreeMap<String, StepRecord>,
    /// What day-2 commands changed: the node set and the overlay list now live here, not in
    /// the cluster file.
    #[serde(default, skip_serializing_if = "Day2::is_empty")]
    pub day2: Day2,
}

/// The cluster as day-2 commands left it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Day2 {
    /// The nodes, once `node remove/add/replace` changed them (the file's list until then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<NodeEntry>>,
    /// Names removed from the cluster: never given to a new node again (their host keys and
    /// addresses belonged to other machines).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<String>,
    /// The overlay list `update` wrote to Acura's store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlays: Option<Vec<String>>,
    /// A `node add`/`replace` that has not finished: re-running it resumes here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
}

impl Day2 {
    pub fn is_empty(&self) -> bool {
        *self == Day2::default()
    }

    /// Every node name it holds (the node set and the pending change) is a hostname
    /// ([`check_hostname`](acura_ha_api::spec::check_hostname)): a name read back from the file
    /// becomes a directory, an inventory line and cloud tags, as one from `node add --name` does.
    pub fn check_names(&self) -> Result<(), String> {
        let nodes = self.nodes.iter().flatten().enumerate();
        let nodes = nodes.map(|(i, n)| (format!("day2.nodes[{i}].name"), &n.name));
        let pending = self.pending.iter().flat_map(|p| {
            std::iter::once(("day2.pending.new".to_string(), &p.new))
                .chain(p.old.iter().map(|o| ("day2.pending.old".to_string(), o)))
        });
        for (key, name) in nodes.chain(pending) {
            if let Err(why) = acura_ha_api::spec::check_hostname(name) {
                return Err(format!(
                    "{key} = {name:?}: {why}; {}",
                    acura_ha_api::spec::HOSTNAME_RULE
                ));
            }
        }
        Ok(())
    }
}

/// One node of the cluster; `address` only for hosts given with `node add --address`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<std::net::IpAddr>,
}

/// An unfinished node change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// `add` or `replace`.
    pub operation: String,
    /// The node being replaced (`replace` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<String>,
    /// The node being added.
    pub new: String,
}

/// A completed bootstrap step and the inputs it ran with (a change of inputs means "run again").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub completed_at: String,
    pub inputs: String,
}

impl State {
    pub fn new(cluster: &str, provider: &str) -> Self {
        State {
            schema_version: SCHEMA_VERSION,
            lineage: uuid::Uuid::new_v4().to_string(),
            serial: 0,
            cluster: cluster.to_string(),
            provider: provider.to_string(),
            resources: Vec::new(),
            steps: BTreeMap::new(),
            day2: Day2::default(),
        }
    }

    pub fn resource(&self, address: &str) -> Option<&Recorded> {
        self.resources.iter().find(|r| r.address == address)
    }

    /// Makes `spec` describe the cluster as day-2 commands left it: their node set (for
    /// `static`, the file's hosts plus those added with an address) and overlay list.
    pub fn apply_day2(&self, spec: &mut acura_ha_api::spec::ClusterSpec) {
        if let Some(nodes) = &self.day2.nodes {
            match spec.static_hosts.as_mut() {
                Some(s) => {
                    let file = std::mem::take(&mut s.nodes);
                    s.nodes = nodes
                        .iter()
                        .filter_map(|n| match n.address {
                            Some(address) => Some(acura_ha_api::spec::StaticHost {
                                name: n.name.clone(),
                                address,
                            }),
                            None => file.iter().find(|h| h.name == n.name).cloned(),
                        })
                        .collect();
                }
                None => spec.nodes.members = Some(nodes.iter().map(|n| n.name.clone()).collect()),
            }
        }
        if let Some(overlays) = &self.day2.overlays {
            spec.bootstrap.overlays = Some(overlays.clone());
        }
    }
}

/// Who holds the lock, written into the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    pub id: String,
    pub operation: String,
    pub owner: String,
    pub host: String,
    pub pid: u32,
    pub started_at: String,
}

impl std::fmt::Display for LockInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` by {}@{} (pid {}) since {}, lock ID {}",
            self.operation, self.owner, self.host, self.pid, self.started_at, self.id
        )
    }
}

impl LockInfo {
    /// How long ago the lock was taken (`None` if its time does not parse).
    pub fn age(&self) -> Option<std::time::Duration> {
        let at = humantime::parse_rfc3339(&self.started_at).ok()?;
        let age = std::time::SystemTime::now().duration_since(at).ok()?;
        Some(std::time::Duration::from_secs(age.as_secs()))
    }
}

/// What this store last saw of the state object: the precondition of its next write.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// Never read: the next write replaces whatever is there (a store that saves without
    /// loading, as before remote backends).
    Unknown,
    /// Read, and there was none: the next write creates it, or fails.
    Absent,
    /// Read or written at this version: the next write needs it unchanged.
    At(Version),
}

/// Where a cluster's state lives: `<cluster>.state.json` and `<cluster>.lock` in its backend
/// (the directory `dir` unless `[state]` names a bucket or container); `dir` also holds the
/// cluster's local files ([`StateStore::cluster_dir`]) and, for a directory, the lock's gate.
#[derive(Debug, Clone)]
pub struct StateStore {
    pub dir: PathBuf,
    pub cluster: String,
    backend: Arc<dyn StateBackend>,
    /// Shared by the store's clones: they are one writer.
    seen: Arc<Mutex<Seen>>,
}

/// The default state directory: `.acura-ha/` next to the cluster file.
pub const DEFAULT_DIR: &str = ".acura-ha";

impl StateStore {
    pub fn new(dir: PathBuf, cluster: &str) -> Self {
        let backend = Arc::new(LocalBackend { dir: dir.clone() });
        StateStore::with_backend(dir, cluster, backend)
    }

    /// A store whose objects live in `backend`; `dir` keeps the cluster's local files.
    pub fn with_backend(dir: PathBuf, cluster: &str, backend: Arc<dyn StateBackend>) -> Self {
        StateStore {
            dir,
            cluster: cluster.to_string(),
            backend,
            seen: Arc::new(Mutex::new(Seen::Unknown)),
        }
    }

    /// The store for a loaded cluster file, in `state_dir` or next to the file, or in the
    /// bucket or container its `[state]` names (connected on first use).
    pub fn for_config(cfg: &LoadedConfig, state_dir: Option<&Path>) -> Self {
        let dir = match state_dir {
            Some(d) => d.to_path_buf(),
            None => cfg.dir.join(DEFAULT_DIR),
        };
        // Absolute: Ansible runs from the archive's folder, where a relative inventory path
        // would name nothing (and its playbooks would match no host and "succeed").
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        let backend = backend_for(cfg, &dir);
        StateStore::with_backend(dir, &cfg.spec.cluster.name, backend)
    }

    /// The same cluster's store in another backend, configured by the file's `[state]` keys
    /// (the local one is the state directory): where `state migrate --to` writes.
    pub fn for_config_as(
        cfg: &LoadedConfig,
        state_dir: Option<&Path>,
        kind: acura_ha_api::spec::StateBackendKind,
    ) -> Result<Self, StateError> {
        use acura_ha_api::spec::StateBackendKind;
        let section = &cfg.spec.state;
        let missing = match kind {
            StateBackendKind::Local => None,
            StateBackendKind::S3 => section.bucket.is_none().then_some("bucket"),
            StateBackendKind::Swift => section.container.is_none().then_some("container"),
        };
        if let Some(key) = missing {
            return Err(StateError::Migrate {
                cluster: cfg.spec.cluster.name.clone(),
                why: format!(
                    "--to {} needs `{key}` in the cluster file's [state] section",
                    kind.as_str()
                ),
            });
        }
        let mut section = section.clone();
        section.backend = kind;
        let mut cfg = cfg.clone();
        cfg.spec.state = section;
        Ok(StateStore::for_config(&cfg, state_dir))
    }

    /// `local`, `s3` or `swift`.
    pub fn backend_kind(&self) -> &'static str {
        self.backend.kind()
    }

    pub fn backend(&self) -> &Arc<dyn StateBackend> {
        &self.backend
    }

    fn is_local(&self) -> bool {
        self.backend.kind() == "local"
    }

    pub fn state_name(&self) -> String {
        format!("{}.state.json", self.cluster)
    }

    fn bak_name(&self) -> String {
        format!("{}.state.json.bak", self.cluster)
    }

    pub fn lock_name(&self) -> String {
        format!("{}.lock", self.cluster)
    }

    /// The state file of a local store (`<dir>/<cluster>.state.json`).
    pub fn state_path(&self) -> PathBuf {
        self.dir.join(self.state_name())
    }

    pub fn lock_path(&self) -> PathBuf {
        self.dir.join(self.lock_name())
    }

    /// Where the state is, for messages: a path or an `s3://`/`swift://` URL.
    pub fn state_location(&self) -> String {
        self.backend.location(&self.state_name())
    }

    /// Files that belong to the cluster but not in the state (keys, logs, known_hosts).
    pub fn cluster_dir(&self) -> ClusterDir {
        ClusterDir::new(self.dir.join(&self.cluster))
    }

    fn set_seen(&self, seen: Seen) {
        *self.seen.lock().expect("not poisoned") = seen;
    }

    /// The state object's bytes as stored, with its version (`None`: there is none).
    pub fn load_raw(&self) -> Result<Option<backend::Object>, StateError> {
        Ok(self.backend.get(&self.state_name())?)
    }

    /// The state, or `None` when the cluster has never been applied.
    pub fn load(&self) -> Result<Option<State>, StateError> {
        let path = PathBuf::from(self.state_location());
        let Some(object) = self.load_raw()? else {
            self.set_seen(Seen::Absent);
            return Ok(None);
        };
        let state = self.parse(&path, &object.bytes)?;
        self.set_seen(Seen::At(object.version));
        Ok(Some(state))
    }

    fn parse(&self, path: &Path, bytes: &[u8]) -> Result<State, StateError> {
        let path = path.to_path_buf();
        let text = std::str::from_utf8(bytes).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        // Read the version first, so a newer schema gets a clear error, not a parse failure.
        let probe: serde_json::Value =
            serde_json::from_str(text).map_err(|e| StateError::Corrupt {
                path: path.clone(),
                message: e.to_string(),
            })?;
        let found = probe
            .get("schema_version")
            .and_then(|v| v.as_u64())
            .unwrap_or(0) as u32;
        if found > SCHEMA_VERSION {
            return Err(StateError::TooNew {
                path,
                found,
                supported: SCHEMA_VERSION,
            });
        }
        let state: State = serde_json::from_value(probe).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if let Err(message) = state.day2.check_names() {
            return Err(StateError::Corrupt { path, message });
        }
        if state.cluster != self.cluster {
            return Err(StateError::OtherCluster {
                path,
                found: state.cluster,
                expected: self.cluster.clone(),
            });
        }
        Ok(state)
    }

    /// The state, or a new one (serial 0, nothing written yet) for a cluster never applied.
    pub fn load_or_new(&self, provider: &str) -> Result<State, StateError> {
        Ok(self
            .load()?
            .unwrap_or_else(|| State::new(&self.cluster, provider)))
    }

    /// Writes the state with the next serial, only over the version this store last read or
    /// wrote (a write by anyone else in between is [`BackendError::Changed`], never silently
    /// replaced); the previous version is kept (`.bak`, or the bucket's own versioning).
    pub fn save(&self, state: &mut State) -> Result<(), StateError> {
        let name = self.state_name();
        state.serial += 1;
        let mut text = serde_json::to_string_pretty(state).expect("state serialises");
        text.push('\n');
        let current = self.backend.get(&name)?;
        let seen = self.seen.lock().expect("not poisoned").clone();
        let when = match (seen, &current) {
            (Seen::Unknown, None) | (Seen::Absent, _) => Precondition::CreateOnly,
            (Seen::Unknown, Some(o)) => Precondition::IfMatch(o.version.clone()),
            (Seen::At(v), _) => Precondition::IfMatch(v),
        };
        let holds = match (&when, &current) {
            (Precondition::CreateOnly, c) => c.is_none(),
            (Precondition::IfMatch(v), Some(c)) => c.version == *v,
            _ => false,
        };
        if !holds {
            return Err(BackendError::Changed {
                location: self.state_location(),
            }
            .into());
        }
        if let Some(previous) = &current
            && !self.backend.keeps_versions()?
        {
            self.backend
                .put(&self.bak_name(), &previous.bytes, Precondition::None)?;
        }
        let version = self.backend.put(&name, text.as_bytes(), when)?;
        self.set_seen(Seen::At(version));
        Ok(())
    }

    /// Writes `bytes` as the state object of a store that holds none, or holds this lineage
    /// (`state migrate`): another lineage there is refused.
    pub fn import(&self, bytes: &[u8]) -> Result<(), StateError> {
        let incoming = self.parse(&PathBuf::from("(migrated state)"), bytes)?;
        let name = self.state_name();
        let when = match self.backend.get(&name)? {
            None => Precondition::CreateOnly,
            Some(o) => {
                let there = self.parse(&PathBuf::from(self.state_location()), &o.bytes)?;
                if there.lineage != incoming.lineage {
                    return Err(StateError::OtherLineage {
                        location: self.state_location(),
                        found: there.lineage,
                        serial: there.serial,
                        expected: incoming.lineage,
                    });
                }
                if !self.backend.keeps_versions()? {
                    self.backend
                        .put(&self.bak_name(), &o.bytes, Precondition::None)?;
                }
                Precondition::IfMatch(o.version)
            }
        };
        let version = self.backend.put(&name, bytes, when)?;
        self.set_seen(Seen::At(version));
        Ok(())
    }

    fn ensure_dir(&self) -> Result<(), StateError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(FileError::write(&self.dir))?;
        Ok(())
    }

    /// The file the kernel lock is taken on. It is never removed (removing a file another run
    /// has open and locked would let a third run lock a new one beside it).
    pub fn gate_path(&self) -> PathBuf {
        self.dir.join(format!("{}.lock.gate", self.cluster))
    }

    fn new_lock_info(operation: &str) -> LockInfo {
        LockInfo {
            id: uuid::Uuid::new_v4().to_string(),
            operation: operation.to_string(),
            owner: std::env::var("USER").unwrap_or_else(|_| format!("uid {}", unsafe_uid())),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            pid: std::process::id(),
            started_at: now_rfc3339(),
        }
    }

    /// Takes the lock for `operation`, or says who holds it.
    ///
    /// In a directory, two parts: a kernel lock (`flock`) on [`StateStore::gate_path`], held
    /// for the whole run and dropped by the kernel however the process ends, so two runs on
    /// this machine can never both be between reading and replacing the record; and the record
    /// (`<cluster>.lock`: who, where, since when), written atomically so a reader sees it whole
    /// or not at all. A record left by a dead run on this host is replaced; one of another host
    /// (a shared state directory) needs `state unlock`.
    ///
    /// In a bucket or container, the record alone, created only if there is none (`If-None-
    /// Match: *`): of two runs exactly one creates it.
    pub fn lock(&self, operation: &str) -> Result<LockGuard, StateError> {
        if !self.is_local() {
            return self.lock_remote(operation);
        }
        self.ensure_dir()?;
        let info = Self::new_lock_info(operation);
        let gate_path = self.gate_path();
        let gate = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&gate_path)
            .map_err(FileError::write(&gate_path))?;
        match gate.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(self.held_by_a_running_run()),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(FileError::write(&gate_path)(e).into());
            }
        }
        // Nobody on this machine is past this point but us until the gate is dropped.
        #[cfg(test)]
        tests::pause_between_read_and_write();
        let path = self.lock_path();
        if let Some(held) = self.read_lock()? {
            if held.host != info.host || process_alive(held.pid) {
                // Another host's run (a shared directory), or a live process that does not use
                // the gate (an older acura-ha): only `state unlock` may remove its record.
                return Err(StateError::Locked {
                    cluster: self.cluster.clone(),
                    info: Box::new(held),
                });
            }
            eprintln!(
                "note: replacing a stale lock of cluster {:?} left by {held}: that process no longer runs",
                self.cluster
            );
        }
        let text = serde_json::to_string_pretty(&info).expect("lock info serialises");
        write_atomic(&path, text.as_bytes())?;
        Ok(LockGuard {
            store: self.clone(),
            info,
            _gate: Some(gate),
        })
    }

    fn lock_remote(&self, operation: &str) -> Result<LockGuard, StateError> {
        let info = Self::new_lock_info(operation);
        let text = serde_json::to_string_pretty(&info).expect("lock info serialises");
        let name = self.lock_name();
        // A second round only after removing a dead local holder's record, or when the record
        // vanished between our create and our read (its holder finished).
        for round in 0..3 {
            match self
                .backend
                .put(&name, text.as_bytes(), Precondition::CreateOnly)
            {
                Ok(_) => {
                    let guard = LockGuard {
                        store: self.clone(),
                        info,
                        _gate: None,
                    };
                    self.pull_pins()?;
                    return Ok(guard);
                }
                Err(BackendError::Changed { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            let Some((held, version)) = self.read_lock_versioned()? else {
                continue;
            };
            if round == 0 && held.host == info.host && !process_alive(held.pid) {
                eprintln!(
                    "note: replacing a stale lock of cluster {:?} left by {held}: that process no longer runs",
                    self.cluster
                );
                match self.backend.delete(&name, Some(&version)) {
                    Ok(()) | Err(BackendError::Changed { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            return Err(StateError::Locked {
                cluster: self.cluster.clone(),
                info: Box::new(held),
            });
        }
        Err(match self.read_lock()? {
            Some(held) => StateError::Locked {
                cluster: self.cluster.clone(),
                info: Box::new(held),
            },
            None => StateError::NotLocked {
                cluster: self.cluster.clone(),
            },
        })
    }

    /// The error for a gate another run holds: its record says who (written atomically, it is
    /// whole; it may not be written yet for a moment after the gate was taken).
    fn held_by_a_running_run(&self) -> StateError {
        for _ in 0..20 {
            if let Ok(Some(held)) = self.read_lock() {
                return StateError::Locked {
                    cluster: self.cluster.clone(),
                    info: Box::new(held),
                };
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        StateError::Locked {
            cluster: self.cluster.clone(),
            info: Box::new(LockInfo {
                id: "(not yet recorded)".into(),
                operation: "?".into(),
                owner: "?".into(),
                host: gethostname::gethostname().to_string_lossy().into_owned(),
                pid: 0,
                started_at: "just now".into(),
            }),
        }
    }

    pub fn read_lock(&self) -> Result<Option<LockInfo>, StateError> {
        Ok(self.read_lock_versioned()?.map(|(info, _)| info))
    }

    fn read_lock_versioned(&self) -> Result<Option<(LockInfo, Version)>, StateError> {
        let name = self.lock_name();
        let Some(object) = self.backend.get(&name)? else {
            return Ok(None);
        };
        serde_json::from_slice(&object.bytes)
            .map(|info| Some((info, object.version)))
            .map_err(|e| StateError::Corrupt {
                path: PathBuf::from(self.backend.location(&name)),
                message: format!("lock file: {e}"),
            })
    }

    /// Removes a lock left by a run that died. The ID must match (as `terraform force-unlock`
    /// asks), and a holder still running on this host is refused unless `force`. The record is
    /// removed only if it is still the one read (another run may have replaced it meanwhile).
    pub fn unlock(&self, id: &str, force: bool) -> Result<LockInfo, StateError> {
        let (info, version) = self
            .read_lock_versioned()?
            .ok_or_else(|| StateError::NotLocked {
                cluster: self.cluster.clone(),
            })?;
        if info.id != id {
            return Err(StateError::LockMismatch {
                given: id.to_string(),
                info: Box::new(info),
            });
        }
        let this_host = gethostname::gethostname().to_string_lossy().into_owned();
        if !force && info.host == this_host && process_alive(info.pid) {
            return Err(StateError::LockHolderAlive {
                info: Box::new(info),
            });
        }
        self.backend.delete(&self.lock_name(), Some(&version))?;
        Ok(info)
    }

    /// Releases `info`'s lock if the record is still its own (someone may have force-unlocked
    /// and re-locked meanwhile).
    fn release(&self, info: &LockInfo) -> Result<(), StateError> {
        if let Some((held, version)) = self.read_lock_versioned()?
            && held.id == info.id
        {
            if !self.is_local() {
                self.push_pins()?;
            }
            self.backend.delete(&self.lock_name(), Some(&version))?;
        }
        Ok(())
    }

    /// The object that shares the cluster's host-key pins (`known_hosts`) with the state.
    /// Private keys are never shared: each operator brings their own (`access.ssh_private_key`
    /// or the agent).
    fn pins_name(&self) -> String {
        format!("{}.known_hosts", self.cluster)
    }

    /// Replaces the local `known_hosts` with the shared one, if there is one: under the lock,
    /// the shared copy is the newest (every run pushes its own when it releases the lock).
    pub fn pull_pins(&self) -> Result<(), StateError> {
        if self.is_local() {
            return Ok(());
        }
        if let Some(object) = self.backend.get(&self.pins_name())? {
            let dir = self.cluster_dir();
            dir.create()?;
            write_atomic(&dir.known_hosts(), &object.bytes)?;
        }
        Ok(())
    }

    /// Shares the local `known_hosts` (if any) beside the state.
    pub fn push_pins(&self) -> Result<(), StateError> {
        let path = self.cluster_dir().known_hosts();
        match fs::read(&path) {
            Ok(bytes) => {
                self.backend
                    .put(&self.pins_name(), &bytes, Precondition::None)?;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(FileError::Read { path, source }.into()),
        }
    }
}

/// The backend `[state]` names (one this build leaves out answers every call with a clear
/// error).
fn backend_for(cfg: &LoadedConfig, dir: &Path) -> Arc<dyn StateBackend> {
    use acura_ha_api::spec::StateBackendKind;
    let section = &cfg.spec.state;
    match section.backend {
        StateBackendKind::Local => Arc::new(LocalBackend {
            dir: dir.to_path_buf(),
        }),
        #[cfg(feature = "aws")]
        StateBackendKind::S3 => Arc::new(s3::S3Backend::new(acura_ha_aws::s3_state::S3Settings {
            bucket: section.bucket.clone().unwrap_or_default(),
            prefix: section.prefix.clone().unwrap_or_default(),
            region: section.region.clone(),
            profile: section.profile.clone(),
            kms_key_id: section.kms_key_id.clone(),
        })),
        #[cfg(not(feature = "aws"))]
        StateBackendKind::S3 => Arc::new(backend::NotInBuild {
            backend: "s3",
            why: "built without the `aws` feature; use a build with it, or `backend = \"local\"`",
        }),
        #[cfg(feature = "openstack")]
        StateBackendKind::Swift => {
            // The OpenStack provider's cloud, unless `[state] cloud` names another.
            let os = cfg.spec.openstack.as_ref();
            Arc::new(swift::SwiftBackend::new(swift::SwiftSettings {
                cloud: acura_ha_openstack::config::Overrides {
                    cloud: section.cloud.clone().or(os.and_then(|o| o.cloud.clone())),
                    region: os.and_then(|o| o.region.clone()),
                    interface: os.and_then(|o| o.interface.clone()),
                    cacert: os.and_then(|o| o.cacert.as_deref()).map(|c| cfg.resolve(c)),
                },
                container: section.container.clone().unwrap_or_default(),
                prefix: section.prefix.clone().unwrap_or_default(),
            }))
        }
        #[cfg(not(feature = "openstack"))]
        StateBackendKind::Swift => Arc::new(backend::NotInBuild {
            backend: "swift",
            why: "built without the `openstack` feature; use a build with it, or `backend = \"local\"`",
        }),
    }
}

/// Holds the lock until dropped.
#[derive(Debug)]
pub struct LockGuard {
    store: StateStore,
    pub info: LockInfo,
    /// A directory's kernel lock: released when this is dropped (after the record is removed)
    /// or when the process dies.
    _gate: Option<fs::File>,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Err(e) = self.store.release(&self.info) {
            eprintln!(
                "note: the lock of cluster {:?} could not be released ({e}); once no run uses it, run {}",
                self.store.cluster,
                acura_ha_api::hint::command(&format!(
                    "state unlock {}",
                    acura_ha_api::hint::shell_word(&self.info.id)
                ))
            );
        }
    }
}

/// The engine's journal: every record is written to disk before the provider goes on.
pub struct StateJournal<'a> {
    pub store: &'a StateStore,
    pub state: &'a mut State,
}

impl Journal for StateJournal<'_> {
    fn record(&mut self, resource: Recorded) -> Result<(), ProviderError> {
        match self
            .state
            .resources
            .iter_mut()
            .find(|r| r.address == resource.address)
        {
            Some(slot) => *slot = resource,
            None => self.state.resources.push(resource),
        }
        self.store
            .save(self.state)
            .map_err(|e| ProviderError::Journal(e.to_string()))
    }

    fn forget(&mut self, address: &str) -> Result<(), ProviderError> {
        self.state.resources.retain(|r| r.address != address);
        self.store
            .save(self.state)
            .map_err(|e| ProviderError::Journal(e.to_string()))
    }

    fn get(&self, address: &str) -> Option<&Recorded> {
        self.state.resource(address)
    }

    fn all(&self) -> Vec<Recorded> {
        self.state.resources.clone()
    }
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn unsafe_uid() -> String {
    // Without libc: the owner of /proc/self is the current user.
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self")
        .map(|m| m.uid().to_string())
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use acura_ha_api::model::{Kind, Status};
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A test may hold every `lock` call between taking the gate and writing the record, to
    /// run the interleavings that matter deterministically.
    static PAUSE_MS: AtomicU64 = AtomicU64::new(0);

    pub(super) fn pause_between_read_and_write() {
        let ms = PAUSE_MS.load(Ordering::SeqCst);
        if ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
    }

    /// Two runs that meet the same stale lock: with the gate, exactly one proceeds and the
    /// other is told who holds it — never both (the record-only lock let both delete the stale
    /// record and one delete the other's fresh one). The pause holds the first run inside the
    /// window for as long as the second needs to arrive.
    #[test]
    fn two_runs_meeting_a_stale_lock_never_both_proceed() {
        let (_d, s) = store();
        s.ensure_dir().unwrap();
        let stale = LockInfo {
            id: "dead".into(),
            operation: "up".into(),
            owner: "x".into(),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            pid: 999_999_999,
            started_at: "2026-11-30T00:00:00Z".into(),
        };
        std::fs::write(s.lock_path(), serde_json::to_string(&stale).unwrap()).unwrap();
        PAUSE_MS.store(400, Ordering::SeqCst);
        let results: Vec<Result<LockGuard, StateError>> = std::thread::scope(|scope| {
            let a = scope.spawn(|| s.lock("up"));
            std::thread::sleep(std::time::Duration::from_millis(100));
            let b = scope.spawn(|| s.lock("up"));
            vec![a.join().unwrap(), b.join().unwrap()]
        });
        PAUSE_MS.store(0, Ordering::SeqCst);
        let won: Vec<&LockGuard> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(won.len(), 1, "{results:?}");
        let record: LockInfo =
            serde_json::from_str(&std::fs::read_to_string(s.lock_path()).unwrap()).unwrap();
        assert_eq!(record.id, won[0].info.id, "the record is the winner's");
        assert!(
            results
                .iter()
                .any(|r| matches!(r, Err(StateError::Locked { .. }))),
            "{results:?}"
        );
    }

    /// A run killed with SIGKILL leaves its record, but the kernel drops its gate: the next run
    /// on this host replaces the record at once.
    #[test]
    fn a_record_whose_gate_is_free_and_holder_dead_is_replaced() {
        let (_d, s) = store();
        let g = s.lock("up").unwrap();
        let id = g.info.id.clone();
        // As if the process died: the record stays (no Drop), the gate's descriptor closes.
        let gate = g._gate.as_ref().unwrap().try_clone().unwrap();
        std::mem::forget(g);
        gate.unlock().unwrap();
        let mut record: LockInfo =
            serde_json::from_str(&std::fs::read_to_string(s.lock_path()).unwrap()).unwrap();
        assert_eq!(record.id, id);
        record.pid = 999_999_999;
        std::fs::write(s.lock_path(), serde_json::to_string(&record).unwrap()).unwrap();
        let again = s.lock("up").unwrap();
        assert_ne!(again.info.id, id);
    }

    fn store() -> (tempfile::TempDir, StateStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::new(dir.path().join("st"), "demo");
        (dir, s)
    }

    #[test]
    fn save_is_private_and_serial_grows() {
        let (_d, s) = store();
        assert!(s.load().unwrap().is_none());
        let mut st = State::new("demo", "aws");
        s.save(&mut st).unwrap();
        s.save(&mut st).unwrap();
        let back = s.load().unwrap().unwrap();
        assert_eq!(back.serial, 2);
        assert_eq!(back.lineage, st.lineage);
        let mode = fs::metadata(s.state_path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let bak = s.state_path().with_extension("json.bak");
        assert_eq!(
            fs::metadata(bak).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(&s.dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn journal_writes_ahead() {
        let (_d, s) = store();
        let mut st = State::new("demo", "aws");
        let mut j = StateJournal {
            store: &s,
            state: &mut st,
        };
        j.record(Recorded {
            address: "security_group".into(),
            kind: Kind::SecurityGroup,
            name: "acura-ha-demo".into(),
            id: None,
            status: Status::Creating,
            attrs: BTreeMap::new(),
            outputs: BTreeMap::new(),
            created_at: now_rfc3339(),
        })
        .unwrap();
        let on_disk = s.load().unwrap().unwrap();
        assert_eq!(on_disk.resources.len(), 1);
        assert_eq!(on_disk.resources[0].status, Status::Creating);
    }

    #[test]
    fn lock_is_exclusive_and_unlock_checks_id() {
        let (_d, s) = store();
        let g = s.lock("up").unwrap();
        match s.lock("down") {
            Err(StateError::Locked { info, .. }) => assert_eq!(info.id, g.info.id),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            s.unlock("wrong", false),
            Err(StateError::LockMismatch { .. })
        ));
        // Our own pid is alive on this host: refused without --force.
        assert!(matches!(
            s.unlock(&g.info.id, false),
            Err(StateError::LockHolderAlive { .. })
        ));
        s.unlock(&g.info.id, true).unwrap();
        assert!(s.read_lock().unwrap().is_none());
        drop(g);
        let _again = s.lock("up").unwrap();
    }

    #[test]
    fn a_stale_lock_of_a_dead_process_on_this_host_is_taken_over() {
        let (_d, s) = store();
        s.ensure_dir().unwrap();
        let this_host = gethostname::gethostname().to_string_lossy().into_owned();
        let dead = |host: &str| LockInfo {
            id: "old".into(),
            operation: "up".into(),
            owner: "x".into(),
            host: host.into(),
            pid: 999_999_999,
            started_at: "2026-11-30T00:00:00Z".into(),
        };
        fs::write(
            s.lock_path(),
            serde_json::to_string(&dead(&this_host)).unwrap(),
        )
        .unwrap();
        let g = s.lock("up").expect("the dead process's lock is taken over");
        assert_ne!(g.info.id, "old");
        drop(g);
        // Another host's lock cannot be judged from here.
        fs::write(
            s.lock_path(),
            serde_json::to_string(&dead("elsewhere")).unwrap(),
        )
        .unwrap();
        assert!(matches!(s.lock("up"), Err(StateError::Locked { .. })));
    }

    #[test]
    fn newer_schema_and_other_cluster_are_refused() {
        let (_d, s) = store();
        fs::create_dir_all(&s.dir).unwrap();
        fs::write(s.state_path(), r#"{"schema_version": 99}"#).unwrap();
        assert!(matches!(
            s.load(),
            Err(StateError::TooNew { found: 99, .. })
        ));
        let mut other = State::new("other", "aws");
        other.serial = 1;
        fs::write(s.state_path(), serde_json::to_string(&other).unwrap()).unwrap();
        assert!(matches!(s.load(), Err(StateError::OtherCluster { .. })));
        fs::write(s.state_path(), "{not json").unwrap();
        assert!(matches!(s.load(), Err(StateError::Corrupt { .. })));
    }
}
