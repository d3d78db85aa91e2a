//! `down`: deletes what the cluster owns, in reverse order, then the tool's files for it (the
//! logs are kept for a post-mortem).

use acura_ha_api::spec::ProviderKind;
use serde::Serialize;

use crate::config::LoadedConfig;
use crate::error::Error;
use crate::events::Observed;
use crate::files::ClusterDir;
use crate::output::Ui;
use crate::progress::Progress;
use crate::state::{StateJournal, StateStore};

/// What `down` deleted, for `--output json`.
#[derive(Debug, Serialize)]
pub struct DownReport {
    pub cluster: String,
    /// The recorded resources, in the order they were deleted.
    pub deleted: Vec<String>,
}

/// `down`: deletes what the cluster owns, in reverse order, and the tool's files for it. With
/// `discover`, also what the cloud holds under the cluster's tags (the state was lost).
pub async fn down(
    cfg: &LoadedConfig,
    store: &StateStore,
    discover: bool,
    ui: &Ui,
) -> Result<DownReport, Error> {
    let spec = &cfg.spec;
    let provider = crate::targets::provider(cfg, store)?;
    let _lock = store.lock("down")?;
    let mut state = store.load_or_new(spec.provider_kind().as_str())?;
    // With a state, what discovery and destroy find under the cluster's names but another
    // state made (another lineage) is left alone (#9.4); with the state lost, all of it goes.
    let owned = cfg.spec.with_lineage((state.serial > 0).then(|| state.lineage.clone()));
    let spec = &owned;
    if discover {
        let found = provider.discover(spec).await?;
        for r in found {
            if state.resource(&r.address).is_none() {
                state.resources.push(r);
            }
        }
    }
    let managed: Vec<String> = state
        .resources
        .iter()
        .rev()
        .map(|r| r.address.clone())
        .collect();
    match spec.provider_kind() {
        ProviderKind::Static => ui.say(format_args!(
            "Cluster {:?} uses your own hosts: nothing is deleted on them; the tool's state and files for it are removed.",
            spec.cluster.name
        )),
        _ if managed.is_empty() => ui.say(format_args!(
            "The state records no resources of cluster {:?}; anything left from an interrupted run is looked for by name.",
            spec.cluster.name
        )),
        _ => {
            ui.say("Deleting, in this order:");
            for a in &managed {
                ui.say(format_args!("  delete  {a}"));
            }
        }
    }
    ui.confirm(&format!("\nDelete cluster {:?}?", spec.cluster.name))?;
    let dir = store.cluster_dir();
    close_control_masters(&dir).await;
    let mut progress = Progress::new("down");
    {
        let mut journal = Observed::new(StateJournal {
            store,
            state: &mut state,
        });
        provider.destroy(spec, &mut journal).await?;
    }
    state.resources.clear();
    state.steps.clear();
    // The day-2 record (node set, retired names, overlays) described the cluster that is gone:
    // the next `up` follows the cluster file again.
    state.day2 = Default::default();
    store.save(&mut state)?;
    remove_cluster_files(&dir);
    progress.done(format!("cluster {:?} is gone", spec.cluster.name));
    Ok(DownReport {
        cluster: spec.cluster.name.clone(),
        deleted: managed,
    })
}

/// Ansible's ssh ControlPersist masters outlive a run; end them so nothing is left.
async fn close_control_masters(dir: &ClusterDir) {
    let cp = dir.control_sockets();
    let Ok(entries) = std::fs::read_dir(&cp) else {
        return;
    };
    for e in entries.flatten() {
        // Without the tool's secret variables in its environment, as every child.
        let _ = acura_ha_local::cmd::command("ssh")
            .arg("-O")
            .arg("exit")
            .arg("-o")
            .arg(format!("ControlPath={}", e.path().display()))
            .arg("acura-ha-control-master")
            .output()
            .await;
    }
}

/// Everything in the cluster's directory but the logs (kept for a post-mortem).
fn remove_cluster_files(dir: &ClusterDir) {
    let Ok(entries) = std::fs::read_dir(dir.root()) else {
        return;
    };
    let logs = dir.logs();
    for e in entries.flatten() {
        let p = e.path();
        if p == logs {
            continue;
        }
        let _ = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
    }
}
