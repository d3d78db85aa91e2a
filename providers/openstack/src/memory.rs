//! What the waits remember of a cloud between runs (issue 12 item 2): how long each kind of
//! transition took on it the last time, so that the next wait of that kind polls around that
//! time instead of all the way up to it.
//!
//! A wait knows two things about a transition it watched: the last poll that saw it not done
//! yet (`lo`; none when the first poll already saw it done) and the poll that saw it done
//! (`hi`). The transition took between the two. The next wait of that kind polls inside that
//! bracket (`crate::wait`). A bracket about a poll step wide is polled once, at its end, and its
//! `lo` carried into the next record without a poll below it — three times at most; the next
//! wait polls at that `lo` again, so a cloud that became faster is noticed within four runs.
//! Without a `lo` (the first poll saw it done: the cloud may have become faster) the next wait
//! first probes at half of `hi`, so the bracket halves run by run until a poll sees the
//! transition not done. One slower than
//! remembered costs the ordinary polls after the bracket. Nothing here is secret: endpoints,
//! project IDs and seconds (the file is still private, 0600).
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

/// One transition seen: not done at `lo` seconds (if a poll saw it so, or carried), done at
/// `hi`, when (Unix seconds); `carried`: how many runs `lo` was carried without a poll below.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
struct Seen {
    lo: Option<f64>,
    hi: f64,
    at: u64,
    #[serde(default)]
    carried: u8,
}

/// What a kind of transition took on a cloud the last time: more than `lo` (zero when
/// unknown), at most `hi`; `carried` as in the record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bracket {
    pub lo: Duration,
    pub hi: Duration,
    pub carried: u8,
}

/// Runs a `lo` is carried without a poll below it (then the next wait polls at it again).
pub const CARRY: u8 = 3;
/// The longest duration taken from the file (a day): a larger one is not a transition.
const LONGEST: f64 = 86_400.0;

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

    /// What a transition of `key` took on this cloud the last time; none before one was seen
    /// (or when the record makes no sense).
    pub fn expected(&self, key: &str) -> Option<Bracket> {
        let f = self.file.lock().ok()?;
        let last = f.waits.get(key)?.last()?;
        let ok = |x: f64| x.is_finite() && (0.0..=LONGEST).contains(&x);
        if !ok(last.hi) || last.hi <= 0.0 {
            return None;
        }
        let lo = last.lo.filter(|x| ok(*x)).unwrap_or(0.0).min(last.hi);
        Some(Bracket {
            lo: Duration::from_secs_f64(lo),
            hi: Duration::from_secs_f64(last.hi),
            carried: last.carried,
        })
    }

    /// Keeps what a wait of `key` saw (`lo`: its last "not yet", if any, or the one carried
    /// `carried` times; `hi`: "done"), and writes the file.
    pub fn learn(&self, key: &str, lo: Option<Duration>, hi: Duration, carried: u8) {
        let Ok(mut f) = self.file.lock() else {
            return;
        };
        let at = now();
        let seen = f.waits.entry(key.to_string()).or_default();
        seen.push(Seen {
            lo: lo.map(|d| d.as_secs_f64()),
            hi: hi.as_secs_f64(),
            at,
            carried,
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
        self.save(&f);
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
        self.save(&f);
    }

    /// Writes the file, best effort (a cache): a failed write only means a cold run next time.
    fn save(&self, f: &File) {
        if let Some(path) = &self.path {
            let _ = write(path, f);
        }
    }
}

/// Writes the file whole through a private sibling and a rename, so a reader never sees half
/// of it (the sibling's name is this process's and this write's own).
fn write(path: &Path, f: &File) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    static WRITES: AtomicU64 = AtomicU64::new(0);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("json.{}.{n}", std::process::id()));
    let body = serde_json::to_vec_pretty(f).map_err(std::io::Error::other)?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let written = out
        .write_all(&body)
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: f64) -> Duration {
        Duration::from_secs_f64(x)
    }

    fn b(lo: f64, hi: f64, carried: u8) -> Option<Bracket> {
        Some(Bracket {
            lo: s(lo),
            hi: s(hi),
            carried,
        })
    }

    #[test]
    fn the_last_bracket_survives_a_reload_privately() {
        let dir = std::env::temp_dir().join(format!("acura-ha-memory-{}", std::process::id()));
        let path = dir.join("w.json");
        let m = Memory::load(Some(path.clone()));
        assert_eq!(m.expected("k"), None);
        m.learn("k", Some(s(2.3)), s(3.05), 0);
        m.learn("k", Some(s(2.99)), s(3.02), 1);
        let again = Memory::load(Some(path.clone()));
        assert_eq!(again.expected("k"), b(2.99, 3.02, 1));
        assert_eq!(again.expected("other"), None);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // The first poll saw it done: no lo.
        again.learn("k", None, s(1.0), 0);
        assert_eq!(again.expected("k"), b(0.0, 1.0, 0));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn nonsense_in_the_file_is_no_expectation() {
        let dir = std::env::temp_dir().join(format!("acura-ha-memory-odd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("w.json");
        for hi in ["1e300", "-3", "0"] {
            std::fs::write(
                &path,
                format!("{{\"waits\": {{\"k\": [{{\"lo\": null, \"hi\": {hi}, \"at\": 1}}]}}}}"),
            )
            .unwrap();
            assert_eq!(Memory::load(Some(path.clone())).expected("k"), None, "{hi}");
        }
        let _ = std::fs::remove_dir_all(dir);
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
        m.learn("k", Some(s(1.0)), s(2.0), 0);
        assert_eq!(Memory::load(Some(path)).expected("k"), b(1.0, 2.0, 0));
        let _ = std::fs::remove_dir_all(dir);
    }
}
