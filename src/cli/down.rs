//! `acura-ha down -c FILE [--yes]`

use super::{ClusterArgs, EXIT_OK};
use crate::engine;
use crate::error::Error;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Delete without asking (required when there is no terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Also find what the cloud holds under the cluster's tags (when the state file is lost)
    #[arg(long)]
    pub discover: bool,
}

pub fn exec(args: Args) -> Result<u8, Error> {
    let (cfg, store) = args.cluster.load()?;
    super::block_on(async {
        engine::down(&cfg, &store, args.yes, args.discover)
            .await
            .map(|_| EXIT_OK)
    })
}
