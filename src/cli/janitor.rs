//! `acura-ha janitor -c FILE --older-than 24h [--tag k=v]... [--yes] [--output json]`: deletes
//! whole test clusters older than an age, found by their tags in the file's account and region.

use std::time::Duration;

use super::{ClusterArgs, EXIT_OK, OutputArgs, YesArg};
use crate::engine::janitor;
use crate::error::Error;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A cluster file of the account and region to clean (its provider section is used)
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Delete clusters whose oldest resource is at least this old (e.g. 24h, 3d, 90m)
    #[arg(long, value_name = "AGE", value_parser = humantime::parse_duration)]
    pub older_than: Duration,
    /// Only clusters whose resources carry this tag (repeatable)
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tag: Vec<(String, String)>,
    #[command(flatten)]
    pub yes: YesArg,
    #[command(flatten)]
    pub output: OutputArgs,
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

pub fn exec(args: Args) -> Result<u8, Error> {
    let (cfg, store) = args.cluster.load()?;
    let ui = args.output.ui_asking(args.yes);
    let found = super::block_on(janitor::janitor(
        &cfg,
        &store,
        args.older_than,
        &args.tag,
        &ui,
    ))?;
    ui.result(&found);
    Ok(EXIT_OK)
}
