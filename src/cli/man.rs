//! `acura-ha man`: the manual pages (roff), generated from the same clap definition as `--help`
//! and the completions, so the three never disagree. `acura-ha man | man -l -` reads the main
//! page, `acura-ha man node add` one command's page (the main page's SEE ALSO and command list
//! name them as `acura-ha-node-add(1)`), and `acura-ha man --dir DIR` writes every page as
//! `ripgrep`'s and `git`'s packages install them (`acura-ha.1`, `acura-ha-plan.1`, …).

use std::path::PathBuf;

use super::EXIT_OK;
use crate::error::Error;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The command whose page to print (e.g. `plan`, `node add`); the main page without one.
    #[arg(value_name = "COMMAND")]
    command: Vec<String>,
    /// Write every page (the main one and one per command) into this directory instead, and
    /// print their paths: `acura-ha man --dir ~/.local/share/man/man1`.
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    dir: Option<PathBuf>,
}

pub fn exec(args: Args) -> Result<u8, Error> {
    let failed = |e: std::io::Error| Error::Usage(format!("cannot write the manual page: {e}"));
    // Built, so each command carries its page's name (`acura-ha-node-add`), as the main page
    // refers to it.
    let mut cmd = super::command().disable_help_subcommand(true);
    cmd.build();
    if let Some(dir) = args.dir {
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::Usage(format!("cannot make {}: {e}", dir.display())))?;
        clap_mangen::generate_to(cmd.clone(), &dir).map_err(failed)?;
        for page in pages(&cmd) {
            println!("{}", dir.join(format!("{page}.1")).display());
        }
        return Ok(EXIT_OK);
    }
    let mut page = &cmd;
    for (i, name) in args.command.iter().enumerate() {
        page = page
            .get_subcommands()
            .find(|s| {
                !s.is_hide_set() && (s.get_name() == name || s.get_all_aliases().any(|a| a == name))
            })
            .ok_or_else(|| {
                let path = args.command[..=i].join(" ");
                let known: Vec<&str> = page
                    .get_subcommands()
                    .filter(|s| !s.is_hide_set())
                    .map(|s| s.get_name())
                    .collect();
                Error::Usage(format!(
                    "no manual page for `{path}`: the commands there are {}",
                    known.join(", ")
                ))
            })?;
    }
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(page.clone())
        .render(&mut out)
        .map_err(failed)?;
    Ok(EXIT_OK)
}

/// The page names `generate_to` writes: the command's and, depth first, each visible
/// subcommand's.
fn pages(cmd: &clap::Command) -> Vec<String> {
    let mut out: Vec<String> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .flat_map(pages)
        .collect();
    out.push(cmd.get_display_name().unwrap_or(cmd.get_name()).to_string());
    out
}
