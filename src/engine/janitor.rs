//! `janitor`: finds every cluster this tool made in the file's account and region by its tags,
//! and deletes those older than an age.

use std::time::Duration;

use acura_ha_api::model::Recorded;
use acura_ha_api::provider::{Journal, ProviderError};
use serde::Serialize;

use crate::config::LoadedConfig;
use crate::error::Error;
use crate::events::{Observed, StepGuard};
use crate::output::Ui;
use crate::progress::Progress;
use crate::state::{StateError, StateJournal, StateStore};

/// A journal that keeps records in memory: `janitor` deletes clusters it has no state for.
#[derive(Default)]
struct MemJournal(Vec<Recorded>);

impl Journal for MemJournal {
    fn record(&mut self, r: Recorded) -> Result<(), ProviderError> {
        match self.0.iter_mut().find(|x| x.address == r.address) {
            Some(slot) => *slot = r,
            None => self.0.push(r),
        }
        Ok(())
    }
    fn forget(&mut self, address: &str) -> Result<(), ProviderError> {
        self.0.retain(|r| r.address != address);
        Ok(())
    }
    fn get(&self, address: &str) -> Option<&Recorded> {
        self.0.iter().find(|r| r.address == address)
    }
    fn all(&self) -> Vec<Recorded> {
        self.0.clone()
    }
}

/// One cluster the janitor found.
#[derive(Debug, Serialize)]
pub struct Found {
    pub cluster: String,
    pub created_unix: u64,
    pub age_secs: u64,
    pub delete: bool,
    /// Why an old cluster was left (its state is locked: someone is working on it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// `janitor`: every cluster this tool made in the file's account and region, and deletes
/// (after asking, or with `--yes`) those older than `older_than` that carry all `tags`.
pub async fn janitor(
    cfg: &LoadedConfig,
    store: &StateStore,
    older_than: Duration,
    tags: &[(String, String)],
    ui: &Ui,
) -> Result<Vec<Found>, Error> {
    let provider = crate::targets::provider(cfg, store)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let clusters = provider.clusters(&cfg.spec, tags).await?;
    let mut found: Vec<Found> = clusters
        .into_iter()
        .map(|(cluster, created_unix)| {
            let age_secs = now.saturating_sub(created_unix);
            Found {
                cluster,
                created_unix,
                age_secs,
                delete: age_secs >= older_than.as_secs(),
                skipped: None,
            }
        })
        .collect();
    for f in &found {
        ui.say(format_args!(
            "  {} {:<20} age {}",
            if f.delete { "delete" } else { "keep  " },
            f.cluster,
            humantime::format_duration(Duration::from_secs(f.age_secs))
        ));
    }
    let doomed = found.iter().filter(|f| f.delete).count();
    if doomed == 0 {
        ui.say(format_args!(
            "no cluster is older than {}",
            humantime::format_duration(older_than)
        ));
        return Ok(found);
    }
    ui.confirm(&format!("\nDelete {doomed} cluster(s)?"))?;
    for f in found.iter_mut().filter(|f| f.delete) {
        // A cluster whose state lives beside this one (the state directory, or the bucket or
        // container of the file's `[state]`) is deleted under its lock, and skipped while
        // someone holds it (an `up` or a day-2 command is working on it).
        let theirs =
            StateStore::with_backend(store.dir.clone(), &f.cluster, store.backend().clone());
        let has_state = theirs.load()?.is_some();
        let _lock = if has_state || theirs.read_lock()?.is_some() || theirs.gate_path().exists() {
            match theirs.lock("janitor") {
                Ok(g) => Some(g),
                Err(StateError::Locked { info, .. }) => {
                    ui.note(format_args!(
                        "note: cluster {:?} is left: its state is locked by {info}",
                        f.cluster
                    ));
                    f.delete = false;
                    f.skipped = Some(format!("locked by {info}"));
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            None
        };
        let mut spec = cfg.spec.clone();
        spec.cluster.name = f.cluster.clone();
        // A cluster with a state here is deleted as `down --discover` deletes it: its records
        // forgotten as they go, and afterwards its state emptied (day-2 record too) and the
        // tool's files removed, so the next `up` of that file starts clean instead of finding
        // every record "deleted outside acura-ha". Its lineage narrows discovery only while the
        // state records something: an emptied state (a `down` long ago) says nothing about who
        // made the cluster found now under that name, which the janitor was asked to delete.
        let mut state = if has_state { theirs.load()? } else { None };
        let lineage = state
            .as_ref()
            .filter(|s| !s.resources.is_empty())
            .map(|s| s.lineage.clone());
        let spec = spec.with_lineage(lineage);
        // What the cloud holds of it, known before `destroy` starts: the event stream then
        // shows each resource's deletion, not its discovery as a `create` (as `down --discover`).
        let step = StepGuard::start(format!("delete cluster {}", f.cluster), None);
        let mut progress = Progress::new("janitor");
        progress.update(format!("deleting cluster {:?}", f.cluster));
        let held = provider.discover(&spec).await?;
        match state.as_mut() {
            Some(state) => {
                super::down::close_control_masters(&theirs.cluster_dir()).await;
                for r in held {
                    if state.resource(&r.address).is_none() {
                        state.resources.push(r);
                    }
                }
                {
                    let mut journal = Observed::new(StateJournal {
                        store: &theirs,
                        state: &mut *state,
                    });
                    provider.destroy(&spec, &mut journal).await?;
                }
                super::down::forget_cluster(&theirs, state, ui)?;
            }
            None => {
                let mut journal = Observed::new(MemJournal(held));
                provider.destroy(&spec, &mut journal).await?;
            }
        }
        progress.done(format!("cluster {:?} is gone", f.cluster));
        step.done();
    }
    Ok(found)
}
