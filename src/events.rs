//! Machine-readable runs: with `--output json`, `up`, `down`, `update`, `node` and `janitor`
//! write one JSON object per line to stdout (JSON Lines, as `terraform apply -json`) while the
//! human account goes to stderr. Every line carries the schema version `v`, its `type` and an
//! RFC 3339 `@timestamp`; the first line is `run_start`, the last is `summary` with the exit
//! code — also when the run fails (an `error` line comes just before it). The README documents
//! the schema; a change that breaks a reader bumps [`VERSION`].
//!
//! The stream is process-wide, not a field of [`crate::output::Ui`], because waits report
//! through [`crate::progress::Progress`] values made deep in the bootstrap, where no `Ui`
//! reaches; a process runs one command, so one stream is all there is. Nothing is written until
//! the CLI [`start`]s it, so `plan`, `status` and the library's tests are untouched.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use acura_ha_api::model::{Recorded, Status};
use acura_ha_api::provider::{Journal, ProviderError};
use serde::Serialize;
use serde_json::Value;

use crate::bootstrap::ansible::{Redactor, SecretVars};

/// The schema version, `"v"` on every line. Adding a type or a field keeps it; renaming or
/// removing one, or changing a field's meaning, bumps it.
pub const VERSION: u32 = 1;

/// Where a resource or a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Started,
    Done,
    Failed,
}

/// What happens to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Delete,
}

/// One line of the stream (without the envelope: `v` and `@timestamp`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The first line: which command, on which cluster file, by which version of the tool.
    RunStart {
        command: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        config: Option<String>,
        tool_version: &'static str,
        pid: u32,
    },
    /// A cloud resource (or lab host) as the provider records it in the state.
    Resource {
        address: String,
        kind: String,
        name: String,
        action: Action,
        state: Phase,
        /// The cloud's ID once known.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// Seconds since this resource's `started` line (on `done` and `failed`).
        #[serde(skip_serializing_if = "Option::is_none")]
        elapsed: Option<f64>,
    },
    /// A step of the run (`preflight`, `nginx`, `k8s-master`, `remove acura-1`, …).
    Step {
        id: String,
        state: Phase,
        #[serde(skip_serializing_if = "Option::is_none")]
        elapsed: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// A wait's progress (what the `[ 12.3s] ssh: 2/4 hosts ready` lines say).
    Wait {
        what: String,
        elapsed: f64,
        detail: String,
        /// True on the wait's last line.
        done: bool,
    },
    Warning {
        message: String,
    },
    /// A line of the human account (plans, tables, what a day-2 step does).
    Note {
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        step: Option<String>,
    },
    /// Why the run failed: the stable code (`AH…`), the message, what to do.
    Error {
        code: String,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        help: Option<String>,
    },
    /// The last line: the exit code, the run's length and its report (what `--output json`
    /// printed as one document before streaming; absent when the run failed).
    Summary {
        command: String,
        exit_code: u8,
        elapsed: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        result: Option<Value>,
    },
}

/// A line as written: the envelope first (`v`, `@timestamp`, `type`), then the event's fields.
#[derive(Serialize)]
struct Line {
    v: u32,
    #[serde(rename = "@timestamp")]
    timestamp: String,
    #[serde(rename = "type")]
    kind: Value,
    #[serde(flatten)]
    fields: serde_json::Map<String, Value>,
}

struct Stream {
    command: String,
    started: Instant,
    /// Stdout with `--output json`; none when only the collector listens.
    out: Option<Mutex<Box<dyn Write + Send>>>,
    /// Every line as written (secrets already hidden), for `--timings` ([`collected`]).
    collector: Option<Mutex<Vec<Value>>>,
    redactors: Mutex<Vec<Redactor>>,
    result: Mutex<Option<Value>>,
}

static STREAM: OnceLock<Stream> = OnceLock::new();

/// Starts the stream on stdout and writes `run_start`. Once per process; a second call is
/// ignored.
pub fn start(command: &str, config: Option<&std::path::Path>) {
    start_with(command, config, true, false);
}

/// Starts the stream: on stdout when `json` (`--output json`), into the collector [`collected`]
/// reads when `collect` (`--timings`), or both. The lines are the same either way.
pub fn start_with(command: &str, config: Option<&std::path::Path>, json: bool, collect: bool) {
    let out: Option<Box<dyn Write + Send>> = json.then(|| Box::new(std::io::stdout()) as _);
    start_on(command, config, out, collect);
}

fn start_on(
    command: &str,
    config: Option<&std::path::Path>,
    out: Option<Box<dyn Write + Send>>,
    collect: bool,
) {
    let stream = Stream {
        command: command.to_string(),
        started: Instant::now(),
        out: out.map(Mutex::new),
        collector: collect.then(|| Mutex::new(Vec::new())),
        redactors: Mutex::new(Vec::new()),
        result: Mutex::new(None),
    };
    if STREAM.set(stream).is_ok() {
        emit(Event::RunStart {
            command: command.to_string(),
            config: config.map(|p| p.display().to_string()),
            tool_version: env!("CARGO_PKG_VERSION"),
            pid: std::process::id(),
        });
    }
}

/// Whether this run streams events (to stdout, the `--timings` collector, or both).
pub fn active() -> bool {
    STREAM.get().is_some()
}

/// Hides these secrets in every later line, whatever field they turn up in.
pub fn hide(secrets: &SecretVars) {
    if let Some(s) = STREAM.get()
        && let Ok(mut r) = s.redactors.lock()
    {
        r.push(Redactor::new(secrets));
    }
}

/// Writes one line (nothing when the run does not stream).
pub fn emit(event: Event) {
    let Some(s) = STREAM.get() else { return };
    let mut value = serde_json::to_value(&event).unwrap_or(Value::Null);
    if let Ok(r) = s.redactors.lock() {
        clean(&mut value, &r);
    }
    let Value::Object(mut fields) = value else {
        return;
    };
    let kind = fields.remove("type").unwrap_or(Value::Null);
    let line = Line {
        v: VERSION,
        timestamp: timestamp(),
        kind,
        fields,
    };
    if let Some(c) = &s.collector
        && let Ok(mut lines) = c.lock()
        && let Ok(v) = serde_json::to_value(&line)
    {
        lines.push(v);
    }
    let Some(out) = &s.out else { return };
    let Ok(mut text) = serde_json::to_string(&line) else {
        return;
    };
    text.push('\n');
    if let Ok(mut out) = out.lock() {
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}

/// The lines written so far (empty unless the stream was started to collect them).
pub fn collected() -> Vec<Value> {
    STREAM
        .get()
        .and_then(|s| s.collector.as_ref())
        .and_then(|c| c.lock().ok().map(|l| l.clone()))
        .unwrap_or_default()
}

/// The report the summary carries (what `Ui::result` would have printed as a document).
pub fn set_result(value: &impl Serialize) {
    if let Some(s) = STREAM.get()
        && let Ok(mut r) = s.result.lock()
    {
        *r = serde_json::to_value(value).ok();
    }
}

/// The last lines: `error` when the run failed, then `summary` with the exit code.
pub fn finish(exit_code: u8, error: Option<(&str, String, Option<String>)>) {
    let Some(s) = STREAM.get() else { return };
    let failed = error.is_some();
    if let Some((code, message, help)) = error {
        emit(Event::Error {
            code: code.to_string(),
            message,
            help,
        });
    }
    let result = if failed {
        None
    } else {
        s.result.lock().ok().and_then(|mut r| r.take())
    };
    emit(Event::Summary {
        command: s.command.clone(),
        exit_code,
        elapsed: secs(s.started.elapsed()),
        result,
    });
}

/// A warning or note as printed (`warning: …`, `note: …`): its event, without the prefix.
pub fn notice(line: &str) {
    if !active() {
        return;
    }
    let line = line.trim();
    if let Some(w) = line.strip_prefix("warning:") {
        emit(Event::Warning {
            message: w.trim().to_string(),
        });
    } else {
        emit(Event::Note {
            message: line
                .strip_prefix("note:")
                .unwrap_or(line)
                .trim()
                .to_string(),
            step: None,
        });
    }
}

/// A step's line.
pub fn step(id: &str, state: Phase, elapsed: Option<Duration>, detail: Option<String>) {
    emit(Event::Step {
        id: id.to_string(),
        state,
        elapsed: elapsed.map(secs),
        detail,
    });
}

/// A step of a run: `started` now, `done` or `failed` (if never finished) when dropped.
pub struct StepGuard {
    id: String,
    started: Instant,
    finished: bool,
}

impl StepGuard {
    pub fn start(id: impl Into<String>, detail: Option<String>) -> StepGuard {
        let id = id.into();
        step(&id, Phase::Started, None, detail);
        StepGuard {
            id,
            started: Instant::now(),
            finished: false,
        }
    }

    pub fn done(mut self) {
        self.finished = true;
        step(&self.id, Phase::Done, Some(self.started.elapsed()), None);
    }
}

impl Drop for StepGuard {
    fn drop(&mut self) {
        // Dropped unfinished: the step's `?` returned an error (or the run was interrupted).
        if !self.finished {
            step(&self.id, Phase::Failed, Some(self.started.elapsed()), None);
        }
    }
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

fn timestamp() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

fn clean(v: &mut Value, redactors: &[Redactor]) {
    match v {
        Value::String(s) => {
            for r in redactors {
                *s = r.clean(s);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| clean(x, redactors)),
        Value::Object(o) => o.values_mut().for_each(|x| clean(x, redactors)),
        _ => {}
    }
}

/// A journal that reports what it records: every resource the provider creates, changes or
/// deletes becomes a `resource` line as the state file gets it.
pub struct Observed<J> {
    pub inner: J,
    started: HashMap<String, Instant>,
}

impl<J: Journal> Observed<J> {
    pub fn new(inner: J) -> Self {
        Observed {
            inner,
            started: HashMap::new(),
        }
    }

    fn line(&mut self, r: &Recorded, action: Action, state: Phase) {
        let elapsed = match state {
            Phase::Started => {
                self.started.insert(r.address.clone(), Instant::now());
                None
            }
            _ => self.started.remove(&r.address).map(|t| secs(t.elapsed())),
        };
        emit(Event::Resource {
            address: r.address.clone(),
            kind: serde_json::to_value(r.kind)
                .ok()
                .and_then(|k| k.as_str().map(str::to_string))
                .unwrap_or_else(|| format!("{:?}", r.kind)),
            name: r.name.clone(),
            action,
            state,
            id: r.id.clone(),
            elapsed,
        });
    }
}

/// What a new record means, given the one it replaces: `None` when nothing changed.
pub fn classify(before: Option<&Recorded>, after: &Recorded) -> Option<(Action, Phase)> {
    if before == Some(after) {
        return None;
    }
    let was = before.map(|b| b.status);
    Some(match (after.status, was) {
        (Status::Creating, Some(Status::Creating)) => return None,
        (Status::Creating, _) => (Action::Create, Phase::Started),
        (Status::Ready, Some(Status::Ready)) => (Action::Update, Phase::Done),
        (Status::Ready, _) => (Action::Create, Phase::Done),
        (Status::Tainted, Some(Status::Deleting)) => (Action::Delete, Phase::Failed),
        (Status::Tainted, _) => (Action::Create, Phase::Failed),
        (Status::Deleting, Some(Status::Deleting)) => return None,
        (Status::Deleting, _) => (Action::Delete, Phase::Started),
    })
}

impl<J: Journal> Journal for Observed<J> {
    fn record(&mut self, resource: Recorded) -> Result<(), ProviderError> {
        let change = classify(self.inner.get(&resource.address), &resource);
        self.inner.record(resource.clone())?;
        if let Some((action, state)) = change {
            self.line(&resource, action, state);
        }
        Ok(())
    }

    fn forget(&mut self, address: &str) -> Result<(), ProviderError> {
        let gone = self.inner.get(address).cloned();
        self.inner.forget(address)?;
        if let Some(r) = gone {
            self.line(&r, Action::Delete, Phase::Done);
        }
        Ok(())
    }

    fn get(&self, address: &str) -> Option<&Recorded> {
        self.inner.get(address)
    }

    fn all(&self) -> Vec<Recorded> {
        self.inner.all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acura_ha_api::model::Kind;

    fn rec(status: Status) -> Recorded {
        Recorded {
            address: "instance[a-1]".into(),
            kind: Kind::Instance,
            name: "a-1".into(),
            id: None,
            status,
            attrs: Default::default(),
            outputs: Default::default(),
            created_at: "2026-12-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn records_map_to_actions_and_states() {
        use Status::*;
        assert_eq!(
            classify(None, &rec(Creating)),
            Some((Action::Create, Phase::Started))
        );
        assert_eq!(
            classify(Some(&rec(Creating)), &rec(Ready)),
            Some((Action::Create, Phase::Done))
        );
        assert_eq!(
            classify(Some(&rec(Creating)), &rec(Tainted)),
            Some((Action::Create, Phase::Failed))
        );
        assert_eq!(
            classify(Some(&rec(Ready)), &rec(Deleting)),
            Some((Action::Delete, Phase::Started))
        );
        assert_eq!(classify(Some(&rec(Ready)), &rec(Ready)), None);
        let mut changed = rec(Ready);
        changed.id = Some("i-1".into());
        assert_eq!(
            classify(Some(&rec(Ready)), &changed),
            Some((Action::Update, Phase::Done))
        );
    }

    #[test]
    fn secrets_are_hidden_in_every_string() {
        let vars = SecretVars(vec![("ansible_become_password".into(), "s3cr3t".into())]);
        let r = vec![Redactor::new(&vars)];
        let mut v = serde_json::json!({"a": "pw s3cr3t", "b": ["x s3cr3t"], "c": {"d": "s3cr3t"}});
        clean(&mut v, &r);
        assert!(!v.to_string().contains("s3cr3t"), "{v}");
    }
}
