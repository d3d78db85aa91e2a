//! The engine: runs `up`, `status`, `down` and `janitor` step by step, recording every resource
//! and every completed step in the state, so a re-run skips what is done and resumes where a run
//! stopped. What `up` shares with the day-2 commands lives in `bootstrap/`; prompts and
//! renderers live in `cli/`.

pub mod down;
pub mod janitor;
pub mod status;
pub mod up;

use std::path::Path;

use acura_ha_api::hint::{Invocation, shell_word};
use acura_ha_api::inventory;
use acura_ha_api::model::Inventory;
use acura_ha_api::provider::ProviderError;

use crate::config::LoadedConfig;
use crate::error::Error;
use crate::state::StateStore;

/// How to run this tool again, for the hints printed: `acura-ha` when that name on the PATH is
/// this program, else this program's path (e.g. `target/release/acura-ha` after a build), so a
/// suggested command works as typed.
pub fn program() -> String {
    let me = std::env::current_exe().ok();
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("acura-ha"))
            .find(|p| p.is_file())
    });
    match (me, on_path) {
        (Some(me), Some(p)) if std::fs::canonicalize(&p).ok().as_ref() == Some(&me) => {
            "acura-ha".into()
        }
        (Some(me), _) => shell_word(&me.display().to_string()),
        (None, _) => "acura-ha".into(),
    }
}

/// `-c FILE` (and `--state-dir DIR` when it is not the default), for the hints printed.
pub fn command_args(cfg: &LoadedConfig, store: &StateStore) -> String {
    let default = cfg.dir.join(crate::state::DEFAULT_DIR);
    let state_dir = (store.dir != std::path::absolute(&default).unwrap_or(default))
        .then_some(store.dir.as_path());
    cluster_args(&cfg.path, state_dir)
}

/// `-c FILE [--state-dir DIR]`, each path one shell word.
pub fn cluster_args(config: &Path, state_dir: Option<&Path>) -> String {
    let mut args = format!("-c {}", shell_word(&config.display().to_string()));
    if let Some(dir) = state_dir {
        args.push_str(&format!(
            " --state-dir {}",
            shell_word(&dir.display().to_string())
        ));
    }
    args
}

/// What every hint's command starts and ends with ([`acura_ha_api::hint`]): this program and,
/// for a command on a cluster, the cluster file and state directory this run was given (as
/// given: the hint is run from where this run was); a command without one suggests `-c FILE`.
pub fn invocation(config: Option<&Path>, state_dir: Option<&Path>) -> Invocation {
    Invocation {
        program: program(),
        cluster_args: config
            .map(|c| cluster_args(c, state_dir))
            .unwrap_or_else(|| "-c FILE".into()),
    }
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
