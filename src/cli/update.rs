//! `acura-ha update -c FILE [--add-overlay X]... [--remove-overlay Y]... [--yes] [-K]`

use super::{ClusterArgs, EXIT_OK};
use crate::day2::update::{self, UpdateOptions};
use crate::error::Error;
use crate::output::{self, Format};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Add an overlay to /overlay_list (e.g. overlay/big-heat-stack-timeout.yaml); repeatable
    #[arg(long = "add-overlay", value_name = "OVERLAY")]
    pub add: Vec<String>,
    /// Remove an overlay from /overlay_list; repeatable
    #[arg(long = "remove-overlay", value_name = "OVERLAY")]
    pub remove: Vec<String>,
    /// Apply without asking (required when there is no terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Ask for the sudo password of the SSH user (the guide's -K); or set ACURA_HA_BECOME_PASSWORD
    #[arg(short = 'K', long)]
    pub ask_become_pass: bool,
    #[arg(long, value_enum, default_value_t)]
    pub output: Format,
}

pub fn exec(args: Args) -> Result<u8, Error> {
    let (cfg, store) = args.cluster.load()?;
    let become_password = super::become_password(args.ask_become_pass)?;
    let opts = UpdateOptions {
        add: args.add,
        remove: args.remove,
        yes: args.yes,
    };
    let report = super::block_on(update::update(&cfg, &store, &opts, become_password))?;
    if args.output == Format::Json {
        print!("{}", output::json(&report));
    }
    Ok(EXIT_OK)
}
