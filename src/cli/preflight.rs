//! `acura-ha preflight -c FILE [--output json]`: log in to every host and check it against the
//! guide's minimums (or the file's), changing nothing.

use super::{ClusterArgs, EXIT_ERROR, EXIT_OK};
use crate::bootstrap::preflight;
use crate::engine;
use crate::error::Error;
use crate::output::{self, Format};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[arg(long, value_enum, default_value_t)]
    pub output: Format,
    /// Accept hosts whose sudo asks for a password (as `up -K` will supply it)
    #[arg(short = 'K', long)]
    pub ask_become_pass: bool,
}

pub fn exec(args: Args) -> Result<u8, Error> {
    let (cfg, store) = args.cluster.load()?;
    let quiet = args.output == Format::Json;
    let reports = super::block_on(engine::preflight_only(
        &cfg,
        &store,
        args.ask_become_pass,
        quiet,
    ))?;
    match args.output {
        Format::Text => print!("{}", preflight::table(&reports)),
        Format::Json => print!("{}", output::json(&reports)),
    }
    Ok(if reports.iter().all(|r| r.ok()) {
        EXIT_OK
    } else {
        EXIT_ERROR
    })
}
