//! `janitor`: finds every cluster this tool made in the file's account and region by its tags,
//! and deletes those older than an age.

use std::time::Duration;

use acura_ha_api::model::Recorded;
use acura_ha_api::provider::{Journal, ProviderError};
use serde::Serialize;

use crate::config::LoadedConfig;
use crate::error::Error;
use crate::output::Ui;
use crate::progress::Progress;
use crate::state::StateStore;

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
    let found: Vec<Found> = clusters
        .into_iter()
        .map(|(cluster, created_unix)| {
            let age_secs = now.saturating_sub(created_unix);
            Found {
                cluster,
                created_unix,
                age_secs,
                delete: age_secs >= older_than.as_secs(),
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
    let doomed: Vec<&Found> = found.iter().filter(|f| f.delete).collect();
    if doomed.is_empty() {
        ui.say(format_args!(
            "no cluster is older than {}",
            humantime::format_duration(older_than)
        ));
        return Ok(found);
    }
    ui.confirm(&format!("\nDelete {} cluster(s)?", doomed.len()))?;
    for f in doomed {
        let mut spec = cfg.spec.clone();
        spec.cluster.name = f.cluster.clone();
        let mut journal = MemJournal::default();
        let mut progress = Progress::new("janitor");
        progress.update(format!("deleting cluster {:?}", f.cluster));
        provider.destroy(&spec, &mut journal).await?;
        progress.done(format!("cluster {:?} is gone", f.cluster));
    }
    Ok(found)
}
