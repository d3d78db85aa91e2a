//! `acura-ha state show | unlock | migrate`

use serde::Serialize;

use super::{ClusterArgs, EXIT_OK, OutputArgs};
use crate::error::Error;
use crate::output::{self, Format};
use crate::state::{LockInfo, State, StateError, StateStore};
use acura_ha_api::spec::StateBackendKind;

#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// Show every recorded resource and completed step, and the lock if one is held
    Show {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Remove the lock a dead run left behind (as `terraform force-unlock`)
    Unlock {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// The lock's ID, as printed by the error that reported it or by `state show`
        lock_id: String,
        /// Unlock even if the process holding the lock still runs on this host
        #[arg(long)]
        force: bool,
    },
    /// Copy the state to another backend: the bucket or container the cluster file's [state]
    /// names, or the local state directory. The source is kept; then set `[state] backend`
    Migrate {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Where to: `s3`, `swift` or `local`
        #[arg(long, value_enum)]
        to: Backend,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Backend {
    Local,
    S3,
    Swift,
}

impl Backend {
    fn kind(self) -> StateBackendKind {
        match self {
            Backend::Local => StateBackendKind::Local,
            Backend::S3 => StateBackendKind::S3,
            Backend::Swift => StateBackendKind::Swift,
        }
    }
}

#[derive(Serialize)]
struct Shown<'a> {
    path: String,
    state: Option<&'a State>,
    lock: Option<&'a LockInfo>,
}

pub fn exec(what: What) -> Result<u8, Error> {
    match what {
        What::Show { cluster, output } => {
            let (_, store) = cluster.load()?;
            let state = store.load()?;
            let lock = store.read_lock()?;
            let path = store.state_location();
            match output.output {
                Format::Json => print!(
                    "{}",
                    output::json(&Shown {
                        path,
                        state: state.as_ref(),
                        lock: lock.as_ref(),
                    })
                ),
                Format::Text => {
                    match &state {
                        None => println!(
                            "cluster {:?} has no state at {path}: nothing has been applied",
                            store.cluster
                        ),
                        Some(s) => print!("{}", render_text(s, &path)),
                    }
                    if let Some(l) = &lock {
                        println!("locked: {l}");
                    }
                }
            }
            Ok(EXIT_OK)
        }
        What::Unlock {
            cluster,
            lock_id,
            force,
        } => {
            let (_, store) = cluster.load()?;
            let info = store.unlock(&lock_id, force)?;
            println!("unlocked cluster {:?} (was {info})", store.cluster);
            Ok(EXIT_OK)
        }
        What::Migrate { cluster, to } => {
            let (cfg, store) = cluster.load()?;
            migrate(&cfg, &store, cluster.state_dir.as_deref(), to.kind())
        }
    }
}

/// Copies the state object byte for byte, both sides locked; the target must hold no state or
/// one of the same lineage (then it is replaced, its previous version kept).
fn migrate(
    cfg: &crate::config::LoadedConfig,
    from: &StateStore,
    state_dir: Option<&std::path::Path>,
    to: StateBackendKind,
) -> Result<u8, Error> {
    let cluster = from.cluster.clone();
    let refuse = |why: String| StateError::Migrate {
        cluster: cluster.clone(),
        why,
    };
    if from.backend_kind() == to.as_str() {
        return Err(refuse(format!(
            "the state is already in {} ({})",
            to.as_str(),
            from.state_location()
        ))
        .into());
    }
    let target = StateStore::for_config_as(cfg, state_dir, to)?;
    let _from_lock = from.lock("state migrate")?;
    let _to_lock = target.lock("state migrate")?;
    let Some(object) = from.load_raw()? else {
        return Err(refuse(format!(
            "there is no state at {}: nothing to migrate",
            from.state_location()
        ))
        .into());
    };
    target.import(&object.bytes)?;
    // The host-key pins go with the state (to a bucket or container; back from one).
    if target.backend_kind() == "local" {
        from.pull_pins()?;
    } else {
        target.push_pins()?;
    }
    let state = target.load()?.expect("just written");
    println!(
        "migrated the state of cluster {cluster:?} (serial {}, lineage {}) from {} to {}",
        state.serial,
        state.lineage,
        from.state_location(),
        target.state_location()
    );
    println!(
        "next: set `backend = \"{}\"` in the cluster file's [state] section; the copy at {} is kept (remove it once every operator uses the new one)",
        to.as_str(),
        from.state_location()
    );
    Ok(EXIT_OK)
}

fn render_text(s: &State, path: &str) -> String {
    let mut out = format!(
        "cluster {:?} on {} — state {path}, serial {}, lineage {}\n\n",
        s.cluster, s.provider, s.serial, s.lineage
    );
    if s.resources.is_empty() {
        out.push_str("no resources recorded\n");
    } else {
        let rows: Vec<Vec<String>> = s
            .resources
            .iter()
            .map(|r| {
                vec![
                    r.address.clone(),
                    r.id.clone().unwrap_or_else(|| "-".into()),
                    format!("{:?}", r.status).to_lowercase(),
                    r.created_at.clone(),
                ]
            })
            .collect();
        out.push_str(&output::table(
            &["ADDRESS", "ID", "STATUS", "CREATED"],
            &rows,
        ));
    }
    if !s.steps.is_empty() {
        out.push('\n');
        let rows: Vec<Vec<String>> = s
            .steps
            .iter()
            .map(|(id, rec)| vec![id.clone(), rec.completed_at.clone()])
            .collect();
        out.push_str(&output::table(&["STEP", "COMPLETED"], &rows));
    }
    out
}
