//! `acura-ha preflight -c FILE [--output json]`: log in to every host and check it against the
//! guide's minimums (or the file's), changing nothing.

use super::{BecomeArgs, ClusterArgs, EXIT_ERROR, EXIT_OK, OutputArgs};
use crate::bootstrap::preflight;
use crate::engine::status;
use crate::error::Error;
use crate::output::Format;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    // -K: accept hosts whose sudo asks for a password, as `up -K` will supply it.
    #[command(flatten)]
    pub become_: BecomeArgs,
}

pub fn exec(args: Args) -> Result<u8, Error> {
    let (cfg, store) = args.cluster.load()?;
    let ui = args.output.ui();
    let quiet = ui.format() == Format::Json;
    let reports = super::block_on(status::preflight(
        &cfg,
        &store,
        args.become_.ask_become_pass,
        quiet,
    ))?;
    ui.render(&reports, |r| preflight::table(r));
    Ok(if reports.iter().all(|r| r.ok()) {
        EXIT_OK
    } else {
        EXIT_ERROR
    })
}
