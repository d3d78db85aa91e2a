//! `--timings` (issue 12 item 5, after `cargo build --timings`): the run's timeline — every
//! resource, step and wait, when it was sent, when it was ready, and what it waited for — as a
//! JSON document and a self-contained HTML page (no script, no external asset), written next to
//! the run's logs (0600). Built from the run's own event stream ([`crate::events`]), which a
//! collector records whether or not `--output json` prints it, so the timeline and the stream
//! never disagree, and secrets are already hidden in every line it reads.
//!
//! "What it waited for" is twofold: the waits that ran during an entry (the `[ 12.3s] ssh: 2/4
//! hosts ready` lines), and `after` — the entry that finished last before this one started,
//! which is what it most likely waited for (the stream carries no dependency graph, so this is
//! read from the times and says so). Following `after` back from the entry that ended last
//! gives the run's critical path.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::files::{ClusterDir, FileError, write_atomic};

/// Two entries whose times differ by less than this are taken as one after the other.
const SLACK: f64 = 0.05;

/// The whole timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    pub command: String,
    /// The run's first event (RFC 3339); every `start`/`end` is seconds after it.
    pub started_at: String,
    pub elapsed: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<u64>,
    pub entries: Vec<Entry>,
    /// Indices into `entries`: the chain of `after` links that ends last.
    pub critical_path: Vec<usize>,
}

/// A resource, a step or a wait.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// `resource`, `step` or `wait`.
    pub kind: &'static str,
    /// The resource's address, the step's id, the wait's subject.
    pub id: String,
    /// A resource's action (`create`, `update`, `delete`) and kind; a step's detail; a wait's
    /// last line.
    pub detail: String,
    /// When it was sent (started).
    pub start: f64,
    /// When it was ready (done or failed), or the run's end if it never finished.
    pub end: f64,
    /// `done`, `failed` or `unfinished`.
    pub state: String,
    /// The waits that ran while it did: (subject, start, end).
    pub waits: Vec<(String, f64, f64)>,
    /// The entry (index) that ended last before this one started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<usize>,
}

fn at(line: &Value, t0: std::time::SystemTime) -> f64 {
    line["@timestamp"]
        .as_str()
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .and_then(|t| t.duration_since(t0).ok())
        .map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0)
        .unwrap_or(0.0)
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

/// The timeline of a run's event lines (as [`crate::events::collected`] returns them).
pub fn build(lines: &[Value]) -> Timeline {
    let t0 = lines
        .first()
        .and_then(|l| l["@timestamp"].as_str())
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .unwrap_or(std::time::UNIX_EPOCH);
    let end_of_run = lines.iter().map(|l| at(l, t0)).fold(0.0, f64::max);
    let mut entries: Vec<Entry> = Vec::new();
    // Open entries by (kind, id): the index of the one a later line finishes.
    let mut open: HashMap<(&'static str, String), usize> = HashMap::new();
    let mut command = String::new();
    let mut exit_code = None;
    for l in lines {
        let t = at(l, t0);
        let (kind, id, detail, state, elapsed) = match l["type"].as_str().unwrap_or_default() {
            "run_start" => {
                command = text(l, "command");
                continue;
            }
            "summary" => {
                exit_code = l["exit_code"].as_u64();
                continue;
            }
            "resource" => (
                "resource",
                text(l, "address"),
                format!("{} {}", text(l, "action"), text(l, "kind")),
                text(l, "state"),
                l["elapsed"].as_f64(),
            ),
            "step" => (
                "step",
                text(l, "id"),
                text(l, "detail"),
                text(l, "state"),
                l["elapsed"].as_f64(),
            ),
            "wait" => {
                let state = if l["done"].as_bool() == Some(true) {
                    "done"
                } else {
                    "running"
                };
                (
                    "wait",
                    text(l, "what"),
                    text(l, "detail"),
                    state.to_string(),
                    l["elapsed"].as_f64(),
                )
            }
            _ => continue,
        };
        let key = (kind, id.clone());
        match (state.as_str(), open.get(&key).copied()) {
            ("started", _) | ("running", None) => {
                let start = match (kind, elapsed) {
                    ("wait", Some(e)) => (t - e).max(0.0),
                    _ => t,
                };
                open.insert(key, entries.len());
                entries.push(Entry {
                    kind,
                    id,
                    detail,
                    start,
                    end: t,
                    state: "unfinished".into(),
                    waits: Vec::new(),
                    after: None,
                });
            }
            ("running", Some(i)) => {
                entries[i].end = t;
                entries[i].detail = detail;
            }
            (_, Some(i)) => {
                open.remove(&key);
                let e = &mut entries[i];
                e.end = t;
                e.state = state;
                if !detail.is_empty() && kind != "step" {
                    e.detail = detail;
                }
            }
            (_, None) => {
                // Finished without a `started` line (a record updated, or forgotten): its
                // elapsed time, if any, says when it began.
                entries.push(Entry {
                    kind,
                    id,
                    detail,
                    start: (t - elapsed.unwrap_or(0.0)).max(0.0),
                    end: t,
                    state,
                    waits: Vec::new(),
                    after: None,
                });
            }
        }
    }
    // A step or resource never finished lasts to the run's end; a wait without its last line
    // (some waits end without one) ends at the last line it wrote.
    for e in entries
        .iter_mut()
        .filter(|e| e.state == "unfinished" && e.kind != "wait")
    {
        e.end = e.end.max(end_of_run);
    }
    link(&mut entries);
    let critical_path = critical_path(&entries);
    Timeline {
        command,
        started_at: lines
            .first()
            .map(|l| text(l, "@timestamp"))
            .unwrap_or_default(),
        elapsed: end_of_run,
        exit_code,
        entries,
        critical_path,
    }
}

/// Fills `waits` and `after`.
fn link(entries: &mut [Entry]) {
    let waits: Vec<(String, f64, f64)> = entries
        .iter()
        .filter(|e| e.kind == "wait")
        .map(|e| (e.id.clone(), e.start, e.end))
        .collect();
    let ends: Vec<(usize, bool, f64)> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (i, e.kind == "wait", e.end))
        .collect();
    for (i, e) in entries.iter_mut().enumerate() {
        if e.kind != "wait" {
            e.waits = waits
                .iter()
                .filter(|(_, s, end)| *s + SLACK >= e.start && *end <= e.end + SLACK)
                .cloned()
                .collect();
        }
        // Of entries that ended together, a resource or step before a wait, then the first.
        e.after = ends
            .iter()
            .filter(|(j, _, end)| *j != i && *end <= e.start + SLACK)
            .max_by(|a, b| a.2.total_cmp(&b.2).then(b.1.cmp(&a.1)).then(b.0.cmp(&a.0)))
            .map(|(j, _, _)| *j);
    }
}

/// From the resource or step that ended last (a wait is part of what it waits in), back
/// through `after`.
fn critical_path(entries: &[Entry]) -> Vec<usize> {
    let Some(mut i) = (0..entries.len())
        .filter(|i| entries[*i].kind != "wait")
        .max_by(|a, b| entries[*a].end.total_cmp(&entries[*b].end))
    else {
        return Vec::new();
    };
    let mut path = vec![i];
    while let Some(j) = entries[i].after {
        if path.contains(&j) {
            break;
        }
        path.push(j);
        i = j;
    }
    path.reverse();
    path
}

/// The timeline as a self-contained HTML page: one bar per entry on a shared time axis.
pub fn html(t: &Timeline) -> String {
    let span = t.elapsed.max(0.001);
    let mut rows = String::new();
    for (i, e) in t.entries.iter().enumerate() {
        let left = e.start / span * 100.0;
        let width = ((e.end - e.start) / span * 100.0).max(0.3);
        let critical = if t.critical_path.contains(&i) {
            " critical"
        } else {
            ""
        };
        let after = e
            .after
            .and_then(|j| t.entries.get(j))
            .map(|a| format!("{} {}", a.kind, a.id))
            .unwrap_or_default();
        let waits: Vec<String> = e
            .waits
            .iter()
            .map(|(w, s, end)| format!("{w} {s:.1}–{end:.1} s"))
            .collect();
        let _ = writeln!(
            rows,
            "<tr class=\"{kind}{critical}\"><td>{kind}</td><td class=\"id\">{id}</td><td>{detail}</td>\
             <td class=\"n\">{start:.2}</td><td class=\"n\">{end:.2}</td><td class=\"n\">{len:.2}</td>\
             <td>{state}</td><td>{after}</td><td>{waits}</td>\
             <td class=\"bar\"><div class=\"track\"><div class=\"b {state}\" style=\"left:{left:.3}%;width:{width:.3}%\"></div></div></td></tr>",
            kind = e.kind,
            id = escape(&e.id),
            detail = escape(&e.detail),
            start = e.start,
            end = e.end,
            len = e.end - e.start,
            state = escape(&e.state),
            after = escape(&after),
            waits = escape(&waits.join("; ")),
        );
    }
    let path: Vec<String> = t
        .critical_path
        .iter()
        .filter_map(|i| t.entries.get(*i))
        .map(|e| format!("{} ({:.1}–{:.1} s)", e.id, e.start, e.end))
        .collect();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>acura-ha {command} timings</title>\n<style>\n{STYLE}</style></head><body>\n\
         <h1>acura-ha {command}: {elapsed:.1} s</h1>\n\
         <p>Started {started}{exit}. Times in seconds after the start. <em>after</em>: what finished last \
         before the entry started (read from the times). Bold rows: the critical path.</p>\n\
         <p class=\"path\">Critical path: {path}</p>\n\
         <table><thead><tr><th>kind</th><th>id</th><th>detail</th><th>sent</th><th>ready</th><th>took</th>\
         <th>state</th><th>after</th><th>waits</th><th class=\"bar\">timeline</th></tr></thead>\n<tbody>\n{rows}</tbody></table>\n\
         </body></html>\n",
        command = escape(&t.command),
        elapsed = t.elapsed,
        started = escape(&t.started_at),
        exit = t
            .exit_code
            .map(|c| format!(", exit code {c}"))
            .unwrap_or_default(),
        path = escape(&path.join(" → ")),
    )
}

const STYLE: &str = "body{font:13px system-ui,sans-serif;margin:1em}\
table{border-collapse:collapse;width:100%}td,th{padding:2px 6px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}\
td.n{text-align:right;font-variant-numeric:tabular-nums}td.id{font-family:monospace}\
th.bar,td.bar{width:35%}.track{position:relative;height:12px;background:#f3f3f3}\
.b{position:absolute;top:0;height:12px;background:#4a7bd0}.b.failed{background:#d04a4a}.b.unfinished{background:#999}\
tr.wait .b{background:#c9a227}tr.critical td{font-weight:bold}.path{font-family:monospace}\n";

/// `&`, `<`, `>` and quotes as HTML entities.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Writes `timings-<stamp>.json` and `.html` in the cluster's logs directory (0600) and returns
/// their paths.
pub fn write(dir: &ClusterDir, lines: &[Value]) -> Result<(PathBuf, PathBuf), FileError> {
    let timeline = build(lines);
    let stamp = crate::state::now_rfc3339().replace(':', "");
    let logs = dir.logs();
    create_private_dir(&logs)?;
    let json = dir.timings(&stamp, "json");
    let page = dir.timings(&stamp, "html");
    let doc = serde_json::to_string_pretty(&timeline).unwrap_or_default();
    write_atomic(&json, doc.as_bytes())?;
    write_atomic(&page, html(&timeline).as_bytes())?;
    Ok((json, page))
}

fn create_private_dir(p: &Path) -> Result<(), FileError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .map_err(FileError::write(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(ms: u64, v: Value) -> Value {
        let mut v = v;
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_800_000_000_000 + ms);
        v["@timestamp"] = json!(humantime::format_rfc3339_millis(t).to_string());
        v
    }

    fn sample() -> Vec<Value> {
        vec![
            line(0, json!({"type": "run_start", "command": "up"})),
            line(
                100,
                json!({"type": "resource", "address": "instance[a-1]", "kind": "instance", "action": "create", "state": "started"}),
            ),
            line(
                2100,
                json!({"type": "resource", "address": "instance[a-1]", "kind": "instance", "action": "create", "state": "done", "elapsed": 2.0}),
            ),
            line(
                2200,
                json!({"type": "step", "id": "preflight", "state": "started"}),
            ),
            line(
                3000,
                json!({"type": "wait", "what": "ssh", "elapsed": 0.5, "detail": "1/3", "done": false}),
            ),
            line(
                3500,
                json!({"type": "wait", "what": "ssh", "elapsed": 1.0, "detail": "3/3 <b>", "done": true}),
            ),
            line(
                4000,
                json!({"type": "step", "id": "preflight", "state": "failed", "elapsed": 1.8}),
            ),
            line(4100, json!({"type": "summary", "exit_code": 1})),
        ]
    }

    #[test]
    fn entries_pair_their_lines_and_chain_the_critical_path() {
        let t = build(&sample());
        assert_eq!(t.command, "up");
        assert_eq!(t.exit_code, Some(1));
        let ids: Vec<&str> = t.entries.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["instance[a-1]", "preflight", "ssh"]);
        let [res, step, wait] = &t.entries[..] else {
            panic!()
        };
        assert_eq!((res.start, res.end, res.state.as_str()), (0.1, 2.1, "done"));
        assert_eq!((wait.start, wait.end), (2.5, 3.5));
        assert_eq!(
            (step.start, step.end, step.state.as_str()),
            (2.2, 4.0, "failed")
        );
        assert_eq!(step.after, Some(0));
        assert_eq!(step.waits, vec![("ssh".to_string(), 2.5, 3.5)]);
        assert_eq!(t.critical_path, vec![0, 1]);
        for e in &t.entries {
            assert!(e.start <= e.end, "{e:?}");
        }
    }

    #[test]
    fn the_page_is_self_contained_and_escaped() {
        let page = html(&build(&sample()));
        assert!(page.contains("instance[a-1]") && page.contains("preflight"));
        assert!(page.contains("3/3 &lt;b&gt;"), "{page}");
        assert!(!page.contains("<b>"));
        for external in ["<script", "src=", "href=", "@import", "url("] {
            assert!(!page.contains(external), "{external}");
        }
    }

    #[test]
    fn a_wait_without_its_last_line_ends_at_its_last_line_and_is_not_the_critical_end() {
        let mut lines = sample();
        // The wait's `done` line is lost; the run goes on after it.
        lines.remove(5);
        let t = build(&lines);
        let wait = t.entries.iter().find(|e| e.id == "ssh").unwrap();
        assert_eq!((wait.state.as_str(), wait.end), ("unfinished", 3.0));
        let last = t.critical_path.last().map(|i| t.entries[*i].id.as_str());
        assert_eq!(last, Some("preflight"));
    }

    #[test]
    fn an_unfinished_entry_lasts_to_the_end() {
        let mut lines = sample();
        lines.truncate(5);
        let t = build(&lines);
        let step = t.entries.iter().find(|e| e.id == "preflight").unwrap();
        assert_eq!(step.state, "unfinished");
        assert_eq!(step.end, t.elapsed);
    }
}
