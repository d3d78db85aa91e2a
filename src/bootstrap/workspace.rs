//! The archive's workspace: the archive unpacked (or its folder) and a Python virtual
//! environment with its `requirements.txt`, shared by `up` and every day-2 playbook run.

use std::path::PathBuf;

use super::BootstrapError;
use super::ansible::{self, Workspace};
use crate::config::LoadedConfig;
use crate::files::ClusterDir;
use crate::progress::Progress;

/// The archive unpacked (or its folder) and a Python environment with its requirements.
pub async fn prepare(cfg: &LoadedConfig, dir: &ClusterDir) -> Result<Workspace, BootstrapError> {
    let archive = cfg
        .spec
        .bootstrap
        .archive
        .as_deref()
        .map(|a| cfg.resolve(a))
        .ok_or(BootstrapError::NoArchive)?;
    let root = ansible::prepare_archive(&archive, dir.root()).await?;
    let (python, note) = ansible::pick_python().await?;
    if let Some(n) = note {
        eprintln!("note: {n}");
    }
    let mut progress = Progress::new("ansible");
    progress.update("python virtual environment with the archive's requirements.txt");
    let venv = ansible::prepare_venv(&root, &cache_dir(), &python, &dir.logs()).await?;
    progress.done(format!("ansible ready in {}", venv.display()));
    Ok(Workspace {
        archive: root,
        venv,
        dir: dir.clone(),
    })
}

/// Where shared, rebuildable things live (Python environments).
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ACURA_HA_CACHE") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("acura-ha");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".cache").join("acura-ha"),
        None => PathBuf::from("/var/cache/acura-ha"),
    }
}
