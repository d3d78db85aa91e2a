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
use crate::state::{State, StateJournal, StateStore};

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
    let owned = cfg
        .spec
        .with_lineage((state.serial > 0).then(|| state.lineage.clone()));
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
    forget_cluster(store, &mut state, ui)?;
    progress.done(format!("cluster {:?} is gone", spec.cluster.name));
    Ok(DownReport {
        cluster: spec.cluster.name.clone(),
        deleted: managed,
    })
}

/// Once a cluster is deleted: its state keeps only its lineage and serial, and the tool's files
/// in its directory go (`down`, and `janitor` for a cluster whose state it holds).
pub(super) fn forget_cluster(store: &StateStore, state: &mut State, ui: &Ui) -> Result<(), Error> {
    state.resources.clear();
    state.steps.clear();
    // The day-2 record (node set, retired names, overlays) described the cluster that is gone:
    // the next `up` follows the cluster file again.
    state.day2 = Default::default();
    store.save(state)?;
    remove_cluster_files(&store.cluster_dir(), ui);
    Ok(())
}

/// Ansible's ssh ControlPersist masters outlive a run; end them so nothing is left.
pub(super) async fn close_control_masters(dir: &ClusterDir) {
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

/// What the tool wrote in the cluster's directory, but the logs (kept for a post-mortem).
/// Anything else there is the user's and stays; it is named, so nobody wonders why the
/// directory is still there.
fn remove_cluster_files(dir: &ClusterDir, ui: &Ui) {
    for kept in remove_tools_files(dir) {
        ui.note(format_args!(
            "note: kept {}: acura-ha did not write it",
            kept.display()
        ));
    }
}

/// Removes the tool's entries of `dir` (not `logs`); returns the entries it left.
fn remove_tools_files(dir: &ClusterDir) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir.root()) else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "logs" {
            continue;
        }
        if !ClusterDir::is_tools_own(&name) {
            kept.push(p);
            continue;
        }
        // `symlink_metadata`: a link is removed as a link, never followed into what it names.
        let is_dir = std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir());
        let _ = if is_dir {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
    }
    kept.sort();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `down` removes what the tool wrote in the cluster's directory and nothing else: a file
    /// of the user's there, and what a link points to, stay (#9.5).
    #[test]
    fn down_removes_only_the_tools_files() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("c");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(outside.join("keep")).unwrap();
        let dir = ClusterDir::new(root.clone());
        for d in [
            "ansible/tmp",
            "cp",
            "facts/1",
            "archive",
            "hosts/n1",
            "network",
            "logs",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in [
            "known_hosts",
            "ha_env_file",
            "ha_env_file.join",
            "id_ed25519",
            "id_ed25519.pub",
            ".tmp-abc",
            ".secret-vars-1-x",
            "my-notes.txt",
            "logs/up.log",
        ] {
            std::fs::write(root.join(f), "x").unwrap();
        }
        std::os::unix::fs::symlink(&outside, root.join("archive/link")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("my-link")).unwrap();
        let kept = remove_tools_files(&dir);
        let mut left: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["logs", "my-link", "my-notes.txt"]);
        assert_eq!(kept, [root.join("my-link"), root.join("my-notes.txt")]);
        assert!(root.join("logs/up.log").exists());
        assert!(
            outside.join("keep").exists(),
            "a link's target is never followed"
        );
    }
}
