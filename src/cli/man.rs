//! `acura-ha man`: the manual page (roff), generated from the same clap definition as `--help`
//! and the completions, so the three never disagree. `acura-ha man | man -l -` reads it.

use super::EXIT_OK;
use crate::error::Error;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn exec(_: Args) -> Result<u8, Error> {
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(super::command())
        .render(&mut out)
        .map_err(|e| Error::Usage(format!("cannot write the manual page: {e}")))?;
    Ok(EXIT_OK)
}
