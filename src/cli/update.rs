//! `acura-ha update -c FILE [--add-overlay X]... [--remove-overlay Y]... [--yes] [-K] [--output json] [--timings]`

use super::{ChangeArgs, EXIT_OK};
use crate::day2::update::{self, UpdateOptions};
use crate::error::Error;

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
    let become_password = args.common.become_.password()?;
    let ui = args.common.ui();
    let opts = UpdateOptions {
        add: args.add,
        remove: args.remove,
    };
    let report = super::block_on(async {
        Ok(update::update(&cfg, &store, &opts, become_password, &ui).await?)
    })?;
    ui.result(&report);
    Ok(EXIT_OK)
}
