//! `acura-ha down -c FILE [--yes] [--discover] [--output json] [--timings]`

use super::{ClusterArgs, EXIT_OK, OutputArgs, YesArg};
use crate::engine::down;
use crate::error::Error;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub yes: YesArg,
    /// Also find what the cloud holds under the cluster's tags (when the state file is lost)
    #[arg(long)]
    pub discover: bool,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub timings: super::TimingsArg,
}

pub fn exec(args: Args) -> Result<u8, Error> {
    let (cfg, store) = args.cluster.load()?;
    let ui = args.output.ui_asking(args.yes);
    let report = super::block_on(down::down(&cfg, &store, args.discover, &ui))?;
    ui.result(&report);
    Ok(EXIT_OK)
}
