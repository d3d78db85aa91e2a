//! `acura-ha plan -c FILE [--output json]`

use super::{ClusterArgs, EXIT_CHANGES, EXIT_OK, OutputArgs};
use crate::error::Error;
use crate::{bootstrap, plan};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn exec(args: Args) -> Result<u8, Error> {
    let (cfg, store) = args.cluster.load()?;
    let state = store.load()?;
    let plan = plan::build(
        &cfg.spec,
        state.as_ref(),
        &bootstrap::paths(&cfg, &store.cluster_dir()),
    );
    args.output.ui().render(&plan, plan::render_text);
    // Detailed exit codes compare against a state; a first plan is a preview.
    Ok(if state.is_some() && plan.has_changes() {
        EXIT_CHANGES
    } else {
        EXIT_OK
    })
}
