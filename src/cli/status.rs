//! `acura-ha status -c FILE [--output json]`

use super::{ClusterArgs, EXIT_DEGRADED, EXIT_OK};
use crate::engine;
use crate::error::Error;
use crate::output::{self, Format};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[arg(long, value_enum, default_value_t)]
    pub output: Format,
}

pub fn exec(args: Args) -> Result<u8, Error> {
    let (cfg, store) = args.cluster.load()?;
    let status = super::block_on(engine::status(&cfg, &store))?;
    match args.output {
        Format::Text => print!("{}", engine::render_status(&status)),
        Format::Json => print!("{}", output::json(&status)),
    }
    Ok(if status.healthy {
        EXIT_OK
    } else {
        EXIT_DEGRADED
    })
}
