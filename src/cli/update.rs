//! `acura-ha update -c FILE [--add-overlay X]... [--remove-overlay Y]... [--yes] [-K]`

use super::{ChangeArgs, EXIT_OK};
use crate::day2::update::{self, UpdateOptions};
use crate::error::Error;
use crate::output::{self, Format};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Add an overlay to /overlay_list (e.g. overlay/big-heat-stack-timeout.yaml); repeatable
    #[arg(long = "add-overlay", value_name = "OVERLAY")]
    pub add: Vec<String>,
    /// Remove an overlay from /overlay_list; repeatable
    #[arg(long = "remove-overlay", value_name = "OVERLAY")]
    pub remove: Vec<String>,
    #[command(flatten)]
    pub common: ChangeArgs,
}

pub fn exec(args: Args) -> Result<u8, Error> {
    let (cfg, store) = args.common.cluster.load()?;
    let become_password = super::become_password(args.common.ask_become_pass)?;
    let opts = UpdateOptions {
        add: args.add,
        remove: args.remove,
        yes: args.common.yes,
    };
    let report = super::block_on(update::update(&cfg, &store, &opts, become_password))?;
    if args.common.output == Format::Json {
        print!("{}", output::json(&report));
    }
    Ok(EXIT_OK)
}
