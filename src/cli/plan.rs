//! `acura-ha plan -c FILE [--output json]`

use super::{ClusterArgs, EXIT_CHANGES, EXIT_OK};
use crate::error::Error;
use crate::output::{self, Format};
use crate::{bootstrap, plan};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[arg(long, value_enum, default_value_t)]
    pub output: Format,
}

pub fn exec(args: Args) -> Result<u8, Error> {
    let (cfg, store) = args.cluster.load()?;
    let state = store.load()?;
    let plan = plan::build(&cfg.spec, state.as_ref(), &bootstrap::paths(&cfg, &store));
    match args.output {
        Format::Text => print!("{}", plan::render_text(&plan)),
        Format::Json => print!("{}", output::json(&plan)),
    }
    // Detailed exit codes compare against a state; a first plan is a preview.
    Ok(if state.is_some() && plan.has_changes() {
        EXIT_CHANGES
    } else {
        EXIT_OK
    })
}
