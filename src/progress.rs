//! Progress lines for every wait: `[ 12.3s] waiting for SSH: 2/4 hosts ready`. A line is printed
//! when the message changes, and at least every few seconds while it does not, so a long wait
//! always shows that it is alive and for how long it has been waiting. A run that streams events
//! (`--output json`) gets each line as a `wait` event too.

use std::io::Write;
use std::time::{Duration, Instant};

pub struct Progress {
    label: String,
    started: Instant,
    last_message: String,
    last_print: Option<Instant>,
    quiet: bool,
}

/// How often an unchanged message is repeated.
const HEARTBEAT: Duration = Duration::from_secs(10);

impl Progress {
    pub fn new(label: impl Into<String>) -> Self {
        Progress {
            label: label.into(),
            started: Instant::now(),
            last_message: String::new(),
            last_print: None,
            quiet: false,
        }
    }

    /// For tests and `--output json`: nothing is printed.
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn update(&mut self, message: impl Into<String>) {
        let message = message.into();
        let due = self.last_print.is_none_or(|t| t.elapsed() >= HEARTBEAT);
        if message != self.last_message || due {
            self.print(&message);
            self.last_message = message;
            self.last_print = Some(Instant::now());
        }
    }

    pub fn done(&mut self, message: impl Into<String>) {
        let message = message.into();
        self.print_as(&message, true);
    }

    fn print(&self, message: &str) {
        self.print_as(message, false);
    }

    fn print_as(&self, message: &str, done: bool) {
        if self.quiet {
            return;
        }
        crate::events::emit(crate::events::Event::Wait {
            what: self.label.clone(),
            elapsed: (self.started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            detail: message.to_string(),
            done,
        });
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "[{:>6.1}s] {}: {message}",
            self.started.elapsed().as_secs_f64(),
            self.label
        );
    }
}
