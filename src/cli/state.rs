//! `acura-ha state show | unlock`

use serde::Serialize;

use super::{ClusterArgs, EXIT_OK, OutputArgs};
use crate::error::Error;
use crate::output::{self, Format};
use crate::state::{LockInfo, State};

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
            let path = store.state_path().display().to_string();
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
    }
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
