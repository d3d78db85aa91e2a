//! `acura-ha status -c FILE [--output json]`

use super::{ClusterArgs, EXIT_DEGRADED, EXIT_OK, OutputArgs};
use crate::engine::status::{self, Status};
use crate::error::Error;
use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn exec(args: Args) -> Result<u8, Error> {
    let (cfg, store) = args.cluster.load()?;
    let status = super::block_on(status::status(&cfg, &store))?;
    args.output.ui().render(&status, render);
    Ok(if status.healthy {
        EXIT_OK
    } else {
        EXIT_DEGRADED
    })
}

/// The status as tables: hosts, Kubernetes, listeners.
pub fn render(s: &Status) -> String {
    let mut out = format!("cluster {:?} on {}\n\n", s.cluster, s.provider);
    let rows: Vec<Vec<String>> = s
        .hosts
        .iter()
        .map(|h| {
            vec![
                h.host.clone(),
                h.address.clone(),
                h.role.to_string(),
                h.ssh.clone(),
                h.preflight.clone(),
            ]
        })
        .collect();
    out.push_str(&output::table(
        &["HOST", "ADDRESS", "ROLE", "SSH", "PREFLIGHT"],
        &rows,
    ));
    out.push_str(&format!(
        "\nkubernetes: {}\n\n",
        s.kubernetes
            .as_ref()
            .map(|k| k.describe())
            .unwrap_or_else(|| "no node reachable".into())
    ));
    let rows: Vec<Vec<String>> = s
        .listeners
        .iter()
        .map(|l| vec![l.listener.clone(), l.address.clone(), l.state.clone()])
        .collect();
    out.push_str(&output::table(&["LISTENER", "ADDRESS", "STATE"], &rows));
    out.push_str(&format!(
        "\n{}\n",
        if s.healthy { "healthy" } else { "DEGRADED" }
    ));
    out
}
