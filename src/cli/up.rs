//! `acura-ha up -c FILE [--yes] [--only provision|bootstrap] [--no-replace] [-K] [--output json] [--refresh=false] [--timings]`

use super::{BecomeArgs, ClusterArgs, EXIT_OK, OutputArgs, YesArg};
use crate::engine::up::{self, Stages, UpOptions};
use crate::error::Error;

/// `up --only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Only {
    /// The cloud resources (or lab hosts), then stop.
    Provision,
    /// Everything after provisioning: SSH, preflight, NGINX, playbooks, post-checks.
    Bootstrap,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub yes: YesArg,
    /// Do only the cloud resources, or only what comes after them
    #[arg(long, value_enum)]
    pub only: Option<Only>,
    /// Refuse (AH004) a plan that replaces nodes whose instance type, flavor, image or volume size changed, naming the `node replace` commands; by default `up` replaces them one at a time after everything else
    #[arg(long)]
    pub no_replace: bool,
    #[command(flatten)]
    pub become_: BecomeArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub refresh: super::plan::RefreshArg,
    #[command(flatten)]
    pub timings: super::TimingsArg,
}

pub fn exec(args: Args) -> Result<u8, Error> {
    let (cfg, store) = args.cluster.load()?;
    let opts = UpOptions {
        stages: match args.only {
            None => Stages::All,
            Some(Only::Provision) => Stages::ProvisionOnly,
            Some(Only::Bootstrap) => Stages::BootstrapOnly,
        },
        become_password: args.become_.password()?,
        refresh: args.refresh.mode(),
        no_replace: args.no_replace,
    };
    let ui = args.output.ui_asking(args.yes);
    let report = super::block_on(up::up(&cfg, &store, &opts, &ui))?;
    ui.result(&report);
    Ok(EXIT_OK)
}
