//! Output helpers shared by the subcommands: `--output text|json` and aligned tables.

use clap::ValueEnum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let cols = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate().take(cols) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

/// Pretty JSON with a trailing newline.
pub fn json(value: &impl serde::Serialize) -> String {
    let mut s = serde_json::to_string_pretty(value).expect("output serialises");
    s.push('\n');
    s
}

/// A question was not answered `yes` (or could not be asked): nothing was changed.
#[derive(Debug, thiserror::Error)]
#[error("refused: {0}")]
pub struct Refused(pub String);

/// Asks before a destructive or costly change. The terminal prompt lives in the CLI; tests and
/// `--yes` answer without one.
pub trait Prompt: Send + Sync {
    fn confirm(&self, question: &str) -> Result<(), Refused>;
}

/// Answers every question the same way: `--yes`, or a test's refusal.
pub struct Answer(pub bool);

impl Prompt for Answer {
    fn confirm(&self, question: &str) -> Result<(), Refused> {
        if self.0 {
            Ok(())
        } else {
            Err(Refused(format!("{} — not confirmed", question.trim())))
        }
    }
}

/// The one output path of a command, passed down from the CLI: the human account (plans,
/// tables, summaries) goes to stdout as text — or to stderr when stdout carries JSON, so
/// `acura-ha … --output json | jq` always parses. Progress lines and notes always go to stderr
/// ([`crate::progress`]). A query (`plan`, `status`) prints one JSON document; a run that
/// streams ([`crate::events`]) gets each line of the account, note and warning as an event
/// too, and its result in the closing `summary`.
pub struct Ui {
    format: Format,
    prompt: Box<dyn Prompt>,
}

impl Ui {
    pub fn new(format: Format, prompt: Box<dyn Prompt>) -> Self {
        Ui { format, prompt }
    }

    /// For tests and non-interactive callers: every question answered `yes`.
    pub fn unattended(format: Format) -> Self {
        Ui::new(format, Box::new(Answer(true)))
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// A line of the human account.
    pub fn say(&self, line: impl std::fmt::Display) {
        self.text(format_args!("{line}\n"));
    }

    /// Text of the human account as it is (no newline added).
    pub fn text(&self, text: impl std::fmt::Display) {
        use std::io::Write as _;
        match self.format {
            Format::Text => {
                let mut out = std::io::stdout().lock();
                let _ = write!(out, "{text}");
                let _ = out.flush();
            }
            Format::Json => {
                let text = text.to_string();
                let _ = write!(std::io::stderr().lock(), "{text}");
                let message = text.trim_matches('\n');
                if !message.trim().is_empty() {
                    crate::events::emit(crate::events::Event::Note {
                        message: message.to_string(),
                        step: None,
                    });
                }
            }
        }
    }

    /// A note or warning beside the account (`note: …`, `warning: …`): always stderr, and a
    /// `note` or `warning` event when the run streams.
    pub fn note(&self, line: impl std::fmt::Display) {
        let line = line.to_string();
        eprintln!("{line}");
        crate::events::notice(&line);
    }

    /// The command's result: its JSON document with `--output json` (in the closing `summary`
    /// when the run streams events); in text mode the account already said it.
    pub fn result(&self, value: &impl serde::Serialize) {
        if crate::events::active() {
            crate::events::set_result(value);
        } else if self.format == Format::Json {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(json(value).as_bytes());
            let _ = out.flush();
        }
    }

    /// The command's result, rendered as text or as JSON.
    pub fn render<T: serde::Serialize>(&self, value: &T, text: impl FnOnce(&T) -> String) {
        match self.format {
            Format::Text => self.text(text(value)),
            Format::Json => self.result(value),
        }
    }

    pub fn confirm(&self, question: &str) -> Result<(), Refused> {
        self.prompt.confirm(question)
    }
}
