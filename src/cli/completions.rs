//! `acura-ha completions bash|zsh|fish|elvish|powershell`

use clap_complete::Shell;

use super::EXIT_OK;
use crate::error::Error;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to generate for
    pub shell: Shell,
}

pub fn exec(args: Args) -> Result<u8, Error> {
    let mut cmd = super::command();
    clap_complete::generate(args.shell, &mut cmd, "acura-ha", &mut std::io::stdout());
    Ok(EXIT_OK)
}
