//! `acura-ha up -c FILE [--yes] [--only provision|bootstrap] [-K]`

use super::{ClusterArgs, EXIT_OK};
use crate::engine::{self, Only, UpOptions};
use crate::error::Error;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Apply without asking (required when there is no terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Do only the cloud resources, or only what comes after them
    #[arg(long, value_enum)]
    pub only: Option<Only>,
    /// Ask for the sudo password of the SSH user (the guide's -K); or set ACURA_HA_BECOME_PASSWORD
    #[arg(short = 'K', long)]
    pub ask_become_pass: bool,
}

pub fn exec(args: Args) -> Result<u8, Error> {
    let (cfg, store) = args.cluster.load()?;
    let become_password = super::become_password(args.ask_become_pass)?;
    let opts = UpOptions {
        yes: args.yes,
        only: args.only,
        become_password,
    };
    super::block_on(async { engine::up(&cfg, &store, &opts).await.map(|_| EXIT_OK) })
}
