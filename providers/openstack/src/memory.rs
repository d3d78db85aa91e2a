//! What the waits remember of a cloud between runs (issue 12 item 2): how long each kind of
//! transition took on it the last few times, so that the next wait of that kind polls around
//! that time instead of all the way up to it.
//!
//! A wait knows two things about a transition it watched: the last poll that saw it not done
//! yet (`lo`; none when the first poll already saw it done) and the poll that saw it done
//! (`hi`). The transition took between the two. The memory keeps the last few pairs per kind
//! and per cloud (the service's endpoint) and offers their intersection, the latest `lo` and
//! the earliest `hi` (the latest pair alone when they disagree: the cloud changed speed). Each
//! run that polls inside that bracket narrows it. A cloud that became faster is seen done at
//! the first poll, which is remembered as the new `hi`; one that became slower costs the polls
//! of the ordinary schedule after the bracket. Nothing here is secret: endpoints and seconds.
//!
//! Beside the waits it keeps capabilities a run saw, for a day: that Octavia offered the API
//! version this provider needs, so the next runs do not read its version document again.
//!
//! The file is a cache: unreadable or malformed means empty, and a write that fails is
//! ignored (the waits then behave as on a cloud seen for the first time).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::Env;

/// Pairs kept per kind: a `lo` learnt once narrows the next runs' brackets for this many.
const KEPT: usize = 5;
/// How long a capability seen on a cloud is taken for granted (a cloud is upgraded, rarely
/// downgraded; a day bounds the surprise).
const FACT_SECS: u64 = 24 * 3600;
/// Kinds kept in the file (the least recently seen go first): every test's fake cloud has an
/// endpoint of its own.
const KEYS: usize = 200;

/// One transition seen: not done at `lo` seconds (if a poll saw it so), done at `hi`, when
/// (Unix seconds).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
struct Seen {
    lo: Option<f64>,
    hi: f64,
    at: u64,
}

/// What a kind of transition took on a cloud: more than `lo` (zero when unknown), at most `hi`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bracket {
    pub lo: Duration,
    pub hi: Duration,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    #[serde(default)]
    waits: BTreeMap<String, Vec<Seen>>,
    /// Capabilities seen (as "Octavia at … offers v2.5"): when, in Unix seconds.
    #[serde(default)]
    facts: BTreeMap<String, u64>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The remembered durations, read once per operation and written after each wait that learnt
/// something.
#[derive(Debug, Default)]
pub struct Memory {
    path: Option<PathBuf>,
    file: Mutex<File>,
}

/// `$XDG_CACHE_HOME/acura-ha/openstack-waits.json` (or under `~/.cache`), where the Ansible
/// environments are cached too; none without a home.
pub fn default_path(env: &dyn Env) -> Option<PathBuf> {
    let base = env
        .var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| env.home().map(|h| h.join(".cache")))?;
    Some(base.join("acura-ha").join("openstack-waits.json"))
}

impl Memory {
    /// The memory kept at `path` (none: remembers within this operation only).
    pub fn load(path: Option<PathBuf>) -> Memory {
        let file = path
            .as_deref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Memory {
            path,
            file: Mutex::new(file),
        }
    }

    /// What a transition of `key` took on this cloud: the intersection of the last pairs, or
    /// the latest pair when they disagree; none before one was seen.
    pub fn expected(&self, key: &str) -> Option<Bracket> {
        let f = self.file.lock().ok()?;
        let seen = f.waits.get(key)?;
        let ok = |x: f64| x.is_finite() && x >= 0.0;
        let latest = seen.last().filter(|s| ok(s.hi))?;
        let lo = seen
            .iter()
            .filter_map(|s| s.lo)
            .filter(|x| ok(*x))
            .fold(0.0, f64::max);
        let hi = seen
            .iter()
            .map(|s| s.hi)
            .filter(|x| ok(*x))
            .fold(f64::INFINITY, f64::min);
        let (lo, hi) = if lo < hi {
            (lo, hi)
        } else {
            (latest.lo.filter(|x| ok(*x)).unwrap_or(0.0), latest.hi)
        };
        Some(Bracket {
            lo: Duration::from_secs_f64(lo.min(hi)),
            hi: Duration::from_secs_f64(hi),
        })
    }

    /// Keeps what a wait of `key` saw (`lo`: its last "not yet", if any; `hi`: "done"), and
    /// writes the file.
    pub fn learn(&self, key: &str, lo: Option<Duration>, hi: Duration) {
        let Ok(mut f) = self.file.lock() else {
            return;
        };
        let at = now();
        let seen = f.waits.entry(key.to_string()).or_default();
        seen.push(Seen {
            lo: lo.map(|d| d.as_secs_f64()),
            hi: hi.as_secs_f64(),
            at,
        });
        let extra = seen.len().saturating_sub(KEPT);
        seen.drain(..extra);
        while f.waits.len() > KEYS {
            let oldest = f
                .waits
                .iter()
                .min_by_key(|(_, v)| v.last().map(|s| s.at).unwrap_or_default())
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => f.waits.remove(&k),
                None => break,
            };
        }
        if let Some(path) = &self.path {
            // Best effort (a cache): a failed write only means a cold schedule next time.
            let _ = write(path, &f);
        }
    }

    /// Whether `fact` was seen on this cloud within the last day.
    pub fn knows(&self, fact: &str) -> bool {
        let Ok(f) = self.file.lock() else {
            return false;
        };
        f.facts
            .get(fact)
            .is_some_and(|&at| now().saturating_sub(at) < FACT_SECS)
    }

    /// Keeps that `fact` was seen now, and writes the file.
    pub fn remember(&self, fact: &str) {
        let Ok(mut f) = self.file.lock() else {
            return;
        };
        let at = now();
        f.facts.insert(fact.to_string(), at);
        f.facts.retain(|_, t| at.saturating_sub(*t) < FACT_SECS);
        if let Some(path) = &self.path {
            let _ = write(path, &f);
        }
    }
}

/// Writes the file whole through a sibling and a rename, so a reader never sees half of it.
fn write(path: &Path, f: &File) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("json.{}", std::process::id()));
    let body = serde_json::to_vec_pretty(f).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: f64) -> Duration {
        Duration::from_secs_f64(x)
    }

    fn b(lo: f64, hi: f64) -> Option<Bracket> {
        Some(Bracket {
            lo: s(lo),
            hi: s(hi),
        })
    }

    #[test]
    fn the_bracket_narrows_run_by_run_and_survives_a_reload() {
        let dir = std::env::temp_dir().join(format!("acura-ha-memory-{}", std::process::id()));
        let path = dir.join("w.json");
        let m = Memory::load(Some(path.clone()));
        assert_eq!(m.expected("k"), None);
        m.learn("k", Some(s(2.3)), s(3.05));
        m.learn("k", None, s(3.02)); // the first poll saw it done
        let again = Memory::load(Some(path.clone()));
        assert_eq!(again.expected("k"), b(2.3, 3.02));
        again.learn("k", Some(s(2.99)), s(3.02));
        assert_eq!(again.expected("k"), b(2.99, 3.02));
        assert_eq!(again.expected("other"), None);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_cloud_that_changed_speed_is_taken_from_its_latest_run() {
        let m = Memory::load(None);
        m.learn("k", Some(s(2.9)), s(3.0));
        // Slower now: not done at 3.5 s, the bracket's intersection is empty.
        m.learn("k", Some(s(5.8)), s(6.1));
        assert_eq!(m.expected("k"), b(5.8, 6.1));
        // Faster again: seen done at the first poll.
        m.learn("k", None, s(1.0));
        assert_eq!(m.expected("k"), b(0.0, 1.0));
    }

    #[test]
    fn facts_are_kept_for_a_day() {
        let dir =
            std::env::temp_dir().join(format!("acura-ha-memory-facts-{}", std::process::id()));
        let path = dir.join("w.json");
        let m = Memory::load(Some(path.clone()));
        assert!(!m.knows("octavia"));
        m.remember("octavia");
        assert!(Memory::load(Some(path.clone())).knows("octavia"));
        // Seen more than a day ago: not taken for granted.
        let text = std::fs::read_to_string(&path).unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["facts"]["octavia"] = serde_json::json!(now() - FACT_SECS - 1);
        std::fs::write(&path, v.to_string()).unwrap();
        assert!(!Memory::load(Some(path)).knows("octavia"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_malformed_file_is_an_empty_memory() {
        let dir = std::env::temp_dir().join(format!("acura-ha-memory-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("w.json");
        std::fs::write(&path, "{not json").unwrap();
        let m = Memory::load(Some(path.clone()));
        assert_eq!(m.expected("k"), None);
        m.learn("k", Some(s(1.0)), s(2.0));
        assert_eq!(Memory::load(Some(path)).expected("k"), b(1.0, 2.0));
        let _ = std::fs::remove_dir_all(dir);
    }
}
