//! The yes/no prompt before a destructive or costly change: on a terminal the user types `yes`;
//! without one, only `--yes` proceeds.

use std::io::{BufRead, IsTerminal, Write};

use crate::output::{Prompt, Refused};

pub struct TerminalPrompt {
    /// `--yes`: every question is answered yes.
    pub yes: bool,
}

impl Prompt for TerminalPrompt {
    fn confirm(&self, question: &str) -> Result<(), Refused> {
        if self.yes {
            return Ok(());
        }
        if !std::io::stdin().is_terminal() {
            return Err(Refused(format!(
                "{} — there is no terminal to confirm on: pass --yes to proceed",
                question.trim()
            )));
        }
        eprint!("{question} Only 'yes' is accepted: ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .map_err(|e| Refused(e.to_string()))?;
        if answer.trim() == "yes" {
            Ok(())
        } else {
            Err(Refused("not confirmed: nothing was changed".into()))
        }
    }
}
