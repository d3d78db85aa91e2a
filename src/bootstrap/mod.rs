//! From "we have addresses" to "Acura is installed": what the guide's Steps 4 to 6 do by hand.
//! This issue builds the parts the plan and `render` need: the inventory file and the playbook
//! invocations.

pub mod ansible;
pub mod facts;
pub mod inventory;
pub mod lbhost;
pub mod playbook;
pub mod postcheck;
pub mod preflight;
pub mod ssh;

use std::path::PathBuf;

use crate::config::LoadedConfig;
use crate::state::StateStore;

/// The private key file the inventory names: the file's, or for the local target without one,
/// the key the local provider generates in the cluster's state directory.
pub fn key_file(cfg: &LoadedConfig, store: &StateStore) -> Option<PathBuf> {
    match &cfg.spec.access.ssh_private_key {
        Some(k) => Some(cfg.resolve(k)),
        None if cfg.spec.local.is_some() => Some(store.cluster_dir().join(GENERATED_KEY)),
        None => None,
    }
}

/// The key the local target generates when the cluster file names none.
pub const GENERATED_KEY: &str = "id_ed25519";

/// The plan's view of where the bootstrap writes.
pub fn paths(cfg: &LoadedConfig, store: &StateStore) -> crate::plan::Paths {
    crate::plan::Paths {
        key_file: key_file(cfg, store),
        inventory: store.cluster_dir().join(acura_ha_api::tables::HA_ENV_FILE),
    }
}
