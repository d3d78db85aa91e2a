//! The commands the tool suggests in its hints ("run `acura-ha up` first"), written so they run
//! as printed: the program as it can be typed (its name when that name on the PATH is this
//! binary, else its full path) and the run's own `-c FILE [--state-dir DIR]`. The command line
//! sets them once ([`set_invocation`]) before any command runs; every layer (the engine, the
//! providers) builds its hints with [`command`], so no hint is left with a bare `acura-ha up`.

use std::sync::OnceLock;

/// What every suggested command starts with and ends with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The program as it can be typed: `acura-ha`, or the binary's full path.
    pub program: String,
    /// `-c FILE [--state-dir DIR]`, shell-quoted; empty for a command without a cluster.
    pub cluster_args: String,
}

static INVOCATION: OnceLock<Invocation> = OnceLock::new();

/// Set once per process, by the command line, before the command runs (a second call is
/// ignored: a process runs one command).
pub fn set_invocation(inv: Invocation) {
    let _ = INVOCATION.set(inv);
}

/// The invocation set by the command line; without one (a library caller, a unit test), the
/// program's name and a `-c FILE` to fill in.
pub fn invocation() -> Invocation {
    INVOCATION.get().cloned().unwrap_or_else(|| Invocation {
        program: "acura-ha".into(),
        cluster_args: "-c FILE".into(),
    })
}

/// `` `PROGRAM SUBCOMMAND -c FILE [--state-dir DIR]` ``: a command on this run's cluster, in
/// backticks, ready to paste. `subcommand` is the rest of the command line (`state unlock ID`,
/// `up --only provision`); the cluster's arguments follow it.
pub fn command(subcommand: &str) -> String {
    let inv = invocation();
    if inv.cluster_args.is_empty() {
        format!("`{} {subcommand}`", inv.program)
    } else {
        format!("`{} {subcommand} {}`", inv.program, inv.cluster_args)
    }
}

/// `` `PROGRAM REST` ``: a command whose arguments the hint spells out itself (another cluster's
/// file: `state show -c FILE`).
pub fn program_command(rest: &str) -> String {
    format!("`{} {rest}`", invocation().program)
}

/// `word` as one shell word: unchanged when it holds only characters no shell treats
/// specially, else in single quotes (a `'` inside as `'\''`).
pub fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_only_when_needed() {
        assert_eq!(shell_word("examples/local.toml"), "examples/local.toml");
        assert_eq!(shell_word("/tmp/my dir/c.toml"), "'/tmp/my dir/c.toml'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn a_command_without_an_invocation_says_where_the_file_goes() {
        // The process-wide invocation is never set in this crate's unit tests.
        assert_eq!(command("up"), "`acura-ha up -c FILE`");
    }
}
