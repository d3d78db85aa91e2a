//! The engine: runs `up`, `status`, `down` and `janitor` step by step, recording every resource
//! and every completed step in the state, so a re-run skips what is done and resumes where a run
//! stopped. What `up` shares with the day-2 commands lives in `bootstrap/`; prompts and
//! renderers live in `cli/`.

pub mod down;
pub mod janitor;
pub mod status;
pub mod up;

use acura_ha_api::inventory;
use acura_ha_api::model::Inventory;
use acura_ha_api::provider::ProviderError;

use crate::config::LoadedConfig;
use crate::error::Error;
use crate::state::StateStore;

/// `-c FILE` (and `--state-dir DIR` when it is not the default), for the hints printed.
pub fn command_args(cfg: &LoadedConfig, store: &StateStore) -> String {
    let mut args = format!("-c {}", cfg.path.display());
    let default = cfg.dir.join(crate::state::DEFAULT_DIR);
    if store.dir != std::path::absolute(&default).unwrap_or(default) {
        args.push_str(&format!(" --state-dir {}", store.dir.display()));
    }
    args
}

/// The inventory from the file (static, local) or from the state (clouds).
pub fn known_inventory(cfg: &LoadedConfig, store: &StateStore) -> Result<Inventory, Error> {
    let state = store.load()?;
    let recorded = state
        .as_ref()
        .map(|s| s.resources.as_slice())
        .unwrap_or(&[]);
    inventory::inventory(&cfg.spec, recorded).map_err(|e| match e {
        ProviderError::NotKnown { what, hint } => Error::Provider(ProviderError::NotKnown {
            what: format!("{what} (state: {})", store.state_path().display()),
            hint,
        }),
        other => other.into(),
    })
}
