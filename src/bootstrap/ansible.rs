//! Ansible as the guide runs it (Steps 4 to 6): unpack the archive, a Python virtual environment
//! with the archive's `requirements.txt`, the `ha_env_file`, then `ansible-playbook` with the
//! guide's variables. Each run's whole output goes to a log file; the terminal shows one line per
//! task with the elapsed time, and the PLAY RECAP. On failure: the failed task, host, message
//! and the log's path.
//!
//! Every value the tool did not write itself — the cluster file's user, addresses and overlays,
//! what was read from the cluster, and the secrets (the become password, join tokens) — goes to
//! Ansible as YAML tagged `!unsafe` in an extra-vars document, so Ansible never templates it:
//! never in a command line, the log or the state.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use acura_ha_local::cmd::command;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::playbook::PlaybookRun;
use crate::files::ClusterDir;
use crate::state::now_rfc3339;

#[derive(Debug, thiserror::Error)]
pub enum AnsibleError {
    #[error("archive {}: {message}", path.display())]
    Archive { path: PathBuf, message: String },
    #[error("python virtual environment {}: {message} (log: {})", venv.display(), log.display())]
    Venv {
        venv: PathBuf,
        message: String,
        log: PathBuf,
    },
    #[error("{playbook} failed: {}\n  log: {}{}", summary(.failures), log.display(), mitogen_note(*.mitogen))]
    PlaybookFailed {
        playbook: String,
        failures: Vec<TaskFailure>,
        log: PathBuf,
        /// It ran with Mitogen's strategy: the failure may be Mitogen's own.
        mitogen: bool,
    },
    #[error("{0}")]
    Io(String),
    #[error("Ansible strategy: {0}")]
    Strategy(String),
}

/// After a failure under Mitogen: how to tell whether Mitogen is the cause (the vendor's
/// playbooks are only checked against it where they run, with the customer).
fn mitogen_note(mitogen: bool) -> String {
    if mitogen {
        format!(
            "\n  it ran with Mitogen's strategy (mitogen_linear): if the failure does not happen without it, run again with {STRATEGY_VAR}=linear (Ansible's own, slower)"
        )
    } else {
        String::new()
    }
}

fn summary(failures: &[TaskFailure]) -> String {
    if failures.is_empty() {
        return "ansible-playbook exited with an error before any task failed (see the log)".into();
    }
    failures
        .iter()
        .map(|f| format!("\n  task {:?} on {}: {}", f.task, f.host, f.message))
        .collect()
}

/// A task that failed on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    pub task: String,
    pub host: String,
    pub message: String,
}

/// Where the archive's playbooks run from, and with which Ansible.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The archive's root (holds `requirements.txt`, `ansible/`, `overlay/`).
    pub archive: PathBuf,
    pub venv: PathBuf,
    /// The cluster's private directory: logs, the inventory, pins, Ansible's own files.
    pub dir: ClusterDir,
}

/// The folder to run from: a folder archive as it is; a `.tar.gz` unpacked once into the
/// cluster's directory (again when the archive file changes).
pub async fn prepare_archive(archive: &Path, cluster_dir: &Path) -> Result<PathBuf, AnsibleError> {
    let err = |message: String| AnsibleError::Archive {
        path: archive.to_path_buf(),
        message,
    };
    let meta = std::fs::metadata(archive).map_err(|e| {
        err(format!(
            "{e}: set bootstrap.archive to Hystax's hystax-ha-archive.tar.gz or its unpacked folder"
        ))
    })?;
    let root = if meta.is_dir() {
        archive.to_path_buf()
    } else {
        let dest = cluster_dir.join("archive");
        let stamp = dest.join(".acura-ha-unpacked");
        let id = format!("{}:{:?}", meta.len(), meta.modified().ok());
        if std::fs::read_to_string(&stamp).ok().as_deref() != Some(id.as_str()) {
            let _ = std::fs::remove_dir_all(&dest);
            crate::files::private_dir(&dest).map_err(|e| err(e.to_string()))?;
            let out = command("tar")
                .arg("-xzf")
                .arg(archive)
                .arg("-C")
                .arg(&dest)
                .arg("--no-same-owner")
                .output()
                .await
                .map_err(|e| err(format!("cannot run tar: {e}")))?;
            if !out.status.success() {
                return Err(err(format!(
                    "tar: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            std::fs::write(&stamp, id).map_err(|e| err(e.to_string()))?;
        }
        // The vendor's archive holds one top folder (`hystax_ha_archive/`).
        if dest.join("requirements.txt").exists() {
            dest
        } else {
            let dirs: Vec<PathBuf> = std::fs::read_dir(&dest)
                .map_err(|e| err(e.to_string()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect();
            match dirs.as_slice() {
                [one] => one.clone(),
                _ => dest,
            }
        }
    };
    for needed in [
        "requirements.txt",
        acura_ha_api::tables::K8S_MASTER_PLAYBOOK,
        acura_ha_api::tables::HA_ACURA_PLAYBOOK,
    ] {
        if !root.join(needed).exists() {
            return Err(err(format!(
                "{needed} is missing: is this Hystax's HA archive?"
            )));
        }
    }
    Ok(root)
}

/// The Python the guide asks for on the deploy host (3.11), or the system's python3 with a note.
pub async fn pick_python() -> Result<(String, Option<String>), AnsibleError> {
    for candidate in ["python3.11", "python3"] {
        let out = command(candidate).arg("--version").output().await;
        if let Ok(out) = out
            && out.status.success()
        {
            let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let note = (!version.starts_with("Python 3.11")).then(|| {
                format!("the guide asks for Python 3.11 on the deploy host; using {version} ({candidate})")
            });
            return Ok((candidate.to_string(), note));
        }
    }
    Err(AnsibleError::Io(
        "no python3 on the deploy host: the guide asks for Python 3.11 (apt install python3 python3-venv)".into(),
    ))
}

/// A virtual environment with the archive's requirements, shared by clusters whose requirements
/// and Python are the same (it is only rebuilt when they change).
pub async fn prepare_venv(
    archive: &Path,
    cache_dir: &Path,
    python: &str,
    log_dir: &Path,
) -> Result<PathBuf, AnsibleError> {
    let reqs =
        std::fs::read(archive.join("requirements.txt")).map_err(|e| AnsibleError::Archive {
            path: archive.to_path_buf(),
            message: format!("requirements.txt: {e}"),
        })?;
    let mut h = Sha256::new();
    h.update(&reqs);
    h.update(python.as_bytes());
    h.update(MITOGEN_PIP.as_bytes());
    let key: String = h
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let venv = cache_dir.join("venvs").join(&key);
    if venv.join(".acura-ha-ready").exists() {
        return Ok(venv);
    }
    crate::files::private_dir(log_dir).map_err(|e| AnsibleError::Io(e.to_string()))?;
    let log = log_dir.join("venv.log");
    let fail = |message: String| AnsibleError::Venv {
        venv: venv.clone(),
        message,
        log: log.clone(),
    };
    // Two runs (two clusters, or tests side by side) may need the same venv at once: one builds
    // it while the other waits for the lock, then finds it ready. The kernel drops the lock
    // however the builder ends.
    let lock_path = cache_dir.join("venvs").join(format!("{key}.lock"));
    let _lock = {
        let path = lock_path.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(path.parent().expect("in venvs/"))?;
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)?;
            f.lock()?;
            Ok::<_, std::io::Error>(f)
        })
        .await
        .map_err(|e| fail(e.to_string()))?
        .map_err(|e| fail(format!("{}: {e}", lock_path.display())))?
    };
    // A venv records its own path, so it is built in place; a marker says it is complete.
    let ready = venv.join(".acura-ha-ready");
    if ready.exists() {
        return Ok(venv);
    }
    let _ = std::fs::remove_dir_all(&venv);
    std::fs::create_dir_all(&venv).map_err(|e| fail(e.to_string()))?;
    let logf = crate::files::private_file(&log).map_err(|e| fail(e.to_string()))?;
    let status = command(python)
        .args(["-m", "venv"])
        .arg(&venv)
        .stdout(logf.try_clone().map_err(|e| fail(e.to_string()))?)
        .stderr(logf.try_clone().map_err(|e| fail(e.to_string()))?)
        .status()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if !status.success() {
        return Err(fail(format!(
            "`{python} -m venv` failed (Debian/Ubuntu: apt install python3-venv)"
        )));
    }
    let status = command(venv.join("bin").join("pip"))
        .args(["install", "--disable-pip-version-check", "-r"])
        .arg(archive.join("requirements.txt"))
        .stdout(logf.try_clone().map_err(|e| fail(e.to_string()))?)
        .stderr(logf.try_clone().map_err(|e| fail(e.to_string()))?)
        .status()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if !status.success() {
        return Err(fail(
            "pip install -r requirements.txt failed; the guide suggests `apt install libffi-dev` and trying again".into(),
        ));
    }
    if !venv.join("bin").join("ansible-playbook").exists() {
        return Err(fail(
            "the archive's requirements.txt installs no ansible-playbook".into(),
        ));
    }
    // Mitogen beside the archive's Ansible (see [`Strategy`]): only a speed-up, so a failure
    // leaves Ansible's own strategy, and says so.
    let status = command(venv.join("bin").join("pip"))
        .args(["install", "--disable-pip-version-check", MITOGEN_PIP])
        .stdout(logf.try_clone().map_err(|e| fail(e.to_string()))?)
        .stderr(logf)
        .status()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if !status.success() {
        eprintln!(
            "note: `pip install {MITOGEN_PIP}` failed (log: {}): Ansible runs with its own linear strategy (slower)",
            log.display()
        );
    }
    std::fs::write(&ready, "").map_err(|e| fail(e.to_string()))?;
    Ok(venv)
}

/// Hides the run's secret values in what goes to the log and the terminal: each value as it
/// is, as JSON writes it (Ansible prints results as JSON), and as Python's `json.dumps` writes
/// it with non-ASCII escaped.
pub struct Redactor {
    needles: Vec<String>,
}

/// What stands in for a secret in the log and on the terminal.
pub const REDACTED: &str = "<redacted>";

impl Redactor {
    pub fn new(secrets: &SecretVars) -> Redactor {
        let mut needles: Vec<String> = Vec::new();
        for (_, v) in &secrets.0 {
            let json = serde_json::to_string(v).unwrap_or_default();
            let json = json.trim_matches('"').to_string();
            needles.extend([v.clone(), json, python_ascii_json(v)]);
            // Output is read a line at a time: a value with line breaks, line by line too.
            needles.extend(v.lines().map(str::to_string));
        }
        needles.retain(|n| !n.trim().is_empty());
        // The longest first, so a form that contains another is hidden whole.
        needles.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        needles.dedup();
        Redactor { needles }
    }

    pub fn clean(&self, text: &str) -> String {
        let mut out = text.to_string();
        for n in &self.needles {
            if out.contains(n.as_str()) {
                out = out.replace(n.as_str(), REDACTED);
            }
        }
        out
    }
}

/// `s` inside a string of Python's `json.dumps` (`ensure_ascii`), without the quotes.
fn python_ascii_json(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7f => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Extra variables that must not appear in a command line (become password, tokens).
#[derive(Default)]
pub struct SecretVars(pub Vec<(String, String)>);

impl std::fmt::Debug for SecretVars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<_> = self.0.iter().map(|(k, _)| k.as_str()).collect();
        write!(f, "SecretVars({keys:?})")
    }
}

/// The extra-vars document's way to Ansible: a FIFO in a private (0700) directory of the
/// cluster's, written from memory while `ansible-playbook` reads it. The secrets never rest on
/// the disk, so a run killed at any point (SIGKILL, the OOM killer, a lost VM) leaves none
/// behind: at most an empty FIFO, which the next run removes. (`-e @/dev/fd/N` does not work:
/// Ansible resolves the path and finds no file behind a pipe.)
struct VarsPipe {
    dir: tempfile::TempDir,
}

/// The prefix of a [`VarsPipe`]'s directory: `.acura-ha-vars-<pid>-<random>`.
const VARS_PIPE_PREFIX: &str = ".acura-ha-vars-";
/// The prefix of the 0600 files earlier versions wrote the secrets to (`.secret-vars-<pid>.json`).
const SECRET_FILE_PREFIX: &str = ".secret-vars-";

impl VarsPipe {
    async fn create(cluster_dir: &Path) -> Result<VarsPipe, AnsibleError> {
        let io = |e: std::io::Error| AnsibleError::Io(format!("{}: {e}", cluster_dir.display()));
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .permissions(std::fs::Permissions::from_mode(0o700))
            .prefix(&format!("{VARS_PIPE_PREFIX}{}-", std::process::id()))
            .tempdir_in(cluster_dir)
            .map_err(io)?;
        let pipe = VarsPipe { dir };
        let out = command("mkfifo")
            .args(["-m", "600"])
            .arg(pipe.path())
            .output()
            .await
            .map_err(|e| AnsibleError::Io(format!("cannot run mkfifo: {e}")))?;
        if !out.status.success() {
            return Err(AnsibleError::Io(format!(
                "mkfifo {}: {}",
                pipe.path().display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(pipe)
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("vars.yaml")
    }

    /// Writes `doc` once a reader has opened the FIFO (polling: opening a FIFO for writing
    /// without a reader fails with ENXIO), then closes it, which ends the reader's file.
    async fn feed(path: PathBuf, doc: String) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        const ENXIO: i32 = 6;
        loop {
            match tokio::net::unix::pipe::OpenOptions::new().open_sender(&path) {
                Ok(mut tx) => return tx.write_all(doc.as_bytes()).await,
                Err(e) if e.raw_os_error() == Some(ENXIO) => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Removes what a killed run can leave in the cluster's directory: a secrets file of an earlier
/// version, and the FIFO directory of a process that no longer runs.
pub fn remove_stale_secrets(cluster_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(cluster_dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(SECRET_FILE_PREFIX) {
            let _ = std::fs::remove_file(e.path());
        } else if let Some(rest) = name.strip_prefix(VARS_PIPE_PREFIX) {
            let pid = rest.split('-').next().unwrap_or("");
            if pid.is_empty() || !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// How fast Ansible runs (issue 12 item 4): per-task overhead is mostly SSH round trips, so
/// - **pipelining**: a module goes to the host on the SSH channel's stdin and runs there in one
///   round trip, instead of mkdir + put + chmod + run + rm. It needs sudo without `requiretty`
///   (the module reaches sudo through a pipe, not a terminal) — which the guide's hosts already
///   need, since the tool's own commands run sudo without a terminal; a host found with
///   `requiretty` ([`refuse_pipelining`]) turns it off for the run, and the run says so;
/// - **forks ≥ hosts**: every host of the inventory gets a worker, so a task runs on all of them
///   at once (Ansible's default is 5);
/// - **ControlPersist** long enough to outlive a playbook ([`CONTROL_PERSIST`]): both playbooks of
///   `up` reach a host through the same master (the ControlPath is the cluster's `cp/`
///   directory, the same for every run), so only the first connects and authenticates;
/// - **fact caching** between the playbooks: `gathering = smart` with a jsonfile cache in a 0700
///   directory of this process only ([`ClusterDir::fact_cache`]), so Step 6 reuses what Step 5
///   gathered, but a later command (a day-2 run, hours later) never sees stale facts;
/// - **Mitogen** ([`Strategy`]) where the venv has it: what remains after the above is CPU, a
///   Python started and an AnsiballZ unpacked per task on each host; Mitogen keeps one Python
///   per host (and per become user) for the whole playbook and runs modules in it.
///
/// Every setting is one that ansible-core 2.15 (the archive's floor) to 2.19 reads from the
/// environment.
#[derive(Debug, Clone)]
pub struct AnsibleEnv {
    /// Every variable, as the child gets it.
    pub vars: Vec<(String, std::ffi::OsString)>,
    pub forks: usize,
    pub pipelining: bool,
    pub strategy: Strategy,
    /// What the run should say (pipelining turned off, and why).
    pub note: Option<String>,
}

impl AnsibleEnv {
    /// One line for the run's log.
    pub fn summary(&self) -> String {
        format!(
            "settings: strategy={} forks={} pipelining={} ControlPersist={} gathering=smart fact_cache=jsonfile",
            self.strategy.name(),
            self.forks,
            self.pipelining,
            CONTROL_PERSIST
        )
    }
}

/// What `prepare_venv` installs beside the archive's requirements (and
/// `scripts/setup-test-deps.sh` beside the tools' ansible-core).
pub const MITOGEN_PIP: &str = "mitogen==0.3.54";

/// The newest ansible-core (major, minor) that [`MITOGEN_PIP`] supports (Ansible 14, per its
/// documentation): with a newer one the playbooks run with Ansible's own strategy rather than
/// risk a Mitogen that does not know it.
const MITOGEN_NEWEST_ANSIBLE: (u32, u32) = (2, 21);

/// The variable that chooses the strategy: `linear` (Ansible's own), `mitogen` (Mitogen's, an
/// error when the venv cannot load it), unset or `auto` (Mitogen's when the venv can load it).
pub const STRATEGY_VAR: &str = "ACURA_HA_ANSIBLE_STRATEGY";

/// How `ansible-playbook` runs its tasks.
///
/// `mitogen_linear` keeps Ansible's order (each task on every host before the next task) and
/// semantics; Mitogen starts one Python per host through the same `ssh` command line Ansible
/// would (so `ANSIBLE_SSH_ARGS`: the cluster's `known_hosts` with `StrictHostKeyChecking=yes`;
/// an unknown or changed key is refused), becomes the `become_user` with `sudo` on a terminal
/// (so a `-K` password and `requiretty` both work) and runs each module in that Python instead
/// of shipping and unpacking it per task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// Ansible's own `linear`.
    Linear,
    /// Mitogen's `mitogen_linear`, from its strategy plugins folder.
    Mitogen { plugins: PathBuf },
}

impl Strategy {
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Linear => "linear",
            Strategy::Mitogen { .. } => "mitogen_linear",
        }
    }
}

/// What the Python of an `ansible-playbook` has: Mitogen's package folder, ansible-core's version.
#[derive(Debug, Clone, Default)]
struct Probe {
    mitogen: Option<PathBuf>,
    ansible: Option<(u32, u32)>,
}

/// Asked of the Python of `ansible-playbook` (`import` only: nothing runs).
const PROBE: &str = "import json, os\n\
try:\n    import ansible_mitogen\n    m = os.path.dirname(ansible_mitogen.__file__)\n\
except Exception:\n    m = None\n\
try:\n    from ansible.release import __version__ as a\n\
except Exception:\n    a = None\n\
print(json.dumps({'mitogen': m, 'ansible': a}))\n";

/// The interpreter of a script's `#!` line (`#!/usr/bin/env python3` too).
fn shebang_interpreter(script: &Path) -> Option<PathBuf> {
    let text = std::fs::read(script).ok()?;
    let first = text.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(first).ok()?.strip_prefix("#!")?;
    let mut words = line.split_whitespace();
    let program = words.next()?;
    if Path::new(program).file_name() == Some(std::ffi::OsStr::new("env")) {
        return words.find(|w| !w.starts_with('-')).map(PathBuf::from);
    }
    Some(PathBuf::from(program))
}

/// Asks the Python of `playbook` once per process (every run of a command uses the same venv).
async fn probe(playbook: &Path) -> Probe {
    static SEEN: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<PathBuf, Probe>>> =
        std::sync::OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    if let Some(p) = seen.lock().ok().and_then(|s| s.get(playbook).cloned()) {
        return p;
    }
    let Some(python) = shebang_interpreter(playbook) else {
        return Probe::default();
    };
    let out = command(&python)
        .args(["-c", PROBE])
        .stdin(Stdio::null())
        .output()
        .await;
    let found = match out {
        Ok(out) if out.status.success() => {
            let v: serde_json::Value =
                serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
            Probe {
                mitogen: v["mitogen"].as_str().map(PathBuf::from),
                ansible: v["ansible"].as_str().and_then(major_minor),
            }
        }
        _ => Probe::default(),
    };
    if let Ok(mut s) = seen.lock() {
        s.insert(playbook.to_path_buf(), found.clone());
    }
    found
}

/// `2.19.14` -> (2, 19).
fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor.parse().ok()?))
}

/// The strategy the runs of `playbook` (a venv's `ansible-playbook`) use, given `requested`
/// (the value of [`STRATEGY_VAR`]), and a note when Mitogen is installed but not used.
pub async fn pick_strategy(
    playbook: &Path,
    requested: Option<&str>,
) -> Result<(Strategy, Option<String>), AnsibleError> {
    let forced = match requested.map(str::trim) {
        None | Some("") | Some("auto") => false,
        Some("linear") => return Ok((Strategy::Linear, None)),
        Some("mitogen") => true,
        Some(other) => {
            return Err(AnsibleError::Strategy(format!(
                "{STRATEGY_VAR}={other:?} is not a strategy: set it to `linear` (Ansible's own), \
                 `mitogen` or `auto` (Mitogen when the Ansible environment has it), or unset it"
            )));
        }
    };
    let found = probe(playbook).await;
    let plugins = found
        .mitogen
        .as_ref()
        .map(|m| m.join("plugins").join("strategy"))
        .filter(|p| p.join("mitogen_linear.py").is_file());
    let unusable = |why: String| -> Result<(Strategy, Option<String>), AnsibleError> {
        if forced {
            Err(AnsibleError::Strategy(format!(
                "{STRATEGY_VAR}=mitogen, but {why}: install {MITOGEN_PIP} in that environment, or set {STRATEGY_VAR}=linear"
            )))
        } else {
            Ok((Strategy::Linear, None))
        }
    };
    let Some(plugins) = plugins else {
        return unusable(format!(
            "the Python of {} cannot import ansible_mitogen",
            playbook.display()
        ));
    };
    match found.ansible {
        Some(v) if v <= MITOGEN_NEWEST_ANSIBLE => Ok((Strategy::Mitogen { plugins }, None)),
        v => {
            let version = v.map_or("of an unknown version".to_string(), |(a, b)| {
                format!("{a}.{b}")
            });
            let why = format!(
                "ansible-core {version} is newer than {MITOGEN_PIP} supports (up to {}.{})",
                MITOGEN_NEWEST_ANSIBLE.0, MITOGEN_NEWEST_ANSIBLE.1
            );
            if forced {
                return unusable(why);
            }
            Ok((
                Strategy::Linear,
                Some(format!(
                    "{why}: Ansible runs with its own linear strategy (slower)"
                )),
            ))
        }
    }
}

/// How long an idle SSH master stays up: the gap between Step 5 and Step 6 is seconds, and a
/// master is never idle while a task runs, so two minutes outlive it with room to spare, while
/// masters left behind by the run's end go away soon.
pub const CONTROL_PERSIST: &str = "120s";

/// Ansible's own default number of forks; never fewer.
const MIN_FORKS: usize = 5;

fn no_pipelining() -> &'static std::sync::Mutex<std::collections::BTreeSet<String>> {
    static HOSTS: std::sync::OnceLock<std::sync::Mutex<std::collections::BTreeSet<String>>> =
        std::sync::OnceLock::new();
    HOSTS.get_or_init(Default::default)
}

/// A host whose sudo has `Defaults requiretty`: the run's playbooks go without pipelining.
pub fn refuse_pipelining(host: &str) {
    if let Ok(mut h) = no_pipelining().lock() {
        h.insert(host.to_string());
    }
}

/// The hosts an inventory names (INI: a host line per host; groups, comments and blank lines
/// are not hosts). A missing file counts none.
pub fn inventory_hosts(inventory: &Path) -> usize {
    std::fs::read_to_string(inventory)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(['#', ';', '[']))
        .count()
}

/// The environment `ansible-playbook` runs with (see [`AnsibleEnv`]); creates the directories
/// it names.
pub fn ansible_env(
    ws: &Workspace,
    inventory: &Path,
    strategy: &Strategy,
) -> Result<AnsibleEnv, AnsibleError> {
    let io = |p: &Path, e: std::io::Error| AnsibleError::Io(format!("{}: {e}", p.display()));
    let ansible_home = ws.dir.ansible_home();
    let cp = ws.dir.control_sockets();
    crate::files::private_dir(&cp).map_err(|e| io(&cp, e))?;
    let facts = ws.dir.fact_cache(std::process::id());
    remove_stale_fact_caches(&ws.dir);
    {
        use std::os::unix::fs::DirBuilderExt;
        // Facts describe the hosts (addresses, users' environments): the owner's only.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&facts)
            .map_err(|e| io(&facts, e))?;
    }
    let forks = inventory_hosts(inventory).max(MIN_FORKS);
    let refused: Vec<String> = no_pipelining()
        .lock()
        .map(|h| h.iter().cloned().collect())
        .unwrap_or_default();
    let pipelining = refused.is_empty();
    // Mitogen runs sudo on a terminal: `requiretty` costs it nothing.
    let note = (!pipelining && *strategy == Strategy::Linear).then(|| {
        format!(
            "Ansible runs without pipelining (slower: several SSH round trips per task): sudo on {} has `Defaults requiretty`",
            refused.join(", ")
        )
    });
    let s = |v: &str| std::ffi::OsString::from(v);
    let mut vars = vec![
        ("ANSIBLE_NOCOLOR".into(), s("1")),
        ("ANSIBLE_FORCE_COLOR".into(), s("0")),
        ("ANSIBLE_RETRY_FILES_ENABLED".into(), s("False")),
        ("ANSIBLE_HOME".into(), ansible_home.clone().into()),
        ("ANSIBLE_LOCAL_TEMP".into(), ansible_home.join("tmp").into()),
        ("ANSIBLE_SSH_CONTROL_PATH_DIR".into(), cp.into()),
        // Host keys stay pinned for Ansible too: the cluster's known_hosts, strictly.
        ("ANSIBLE_HOST_KEY_CHECKING".into(), s("True")),
        (
            "ANSIBLE_SSH_ARGS".into(),
            s(&ssh_args(&ws.dir.known_hosts())),
        ),
        (
            "ANSIBLE_PIPELINING".into(),
            s(if pipelining { "True" } else { "False" }),
        ),
        ("ANSIBLE_FORKS".into(), s(&forks.to_string())),
        ("ANSIBLE_GATHERING".into(), s("smart")),
        ("ANSIBLE_CACHE_PLUGIN".into(), s("jsonfile")),
        ("ANSIBLE_CACHE_PLUGIN_CONNECTION".into(), facts.into()),
        // The directory lives as long as this process; within it, facts never expire.
        ("ANSIBLE_CACHE_PLUGIN_TIMEOUT".into(), s("0")),
        ("PYTHONUNBUFFERED".into(), s("1")),
    ];
    if let Strategy::Mitogen { plugins } = strategy {
        vars.push(("ANSIBLE_STRATEGY_PLUGINS".into(), plugins.clone().into()));
        vars.push(("ANSIBLE_STRATEGY".into(), s(strategy.name())));
    }
    Ok(AnsibleEnv {
        vars,
        forks,
        pipelining,
        strategy: strategy.clone(),
        note,
    })
}

/// Removes the fact caches of processes that no longer run.
fn remove_stale_fact_caches(dir: &ClusterDir) {
    let Ok(entries) = std::fs::read_dir(dir.fact_caches()) else {
        return;
    };
    for e in entries.flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if pid.parse::<u32>().is_err() || !Path::new("/proc").join(&pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Runs one playbook. `label` names it in progress lines and the log file.
pub async fn run_playbook(
    ws: &Workspace,
    run: &PlaybookRun,
    secrets: &SecretVars,
    label: &str,
    quiet: bool,
) -> Result<(), AnsibleError> {
    let logs = ws.dir.logs();
    crate::files::private_dir(&logs)
        .map_err(|e| AnsibleError::Io(format!("{}: {e}", logs.display())))?;
    let log_path = logs.join(format!("{}-{label}.log", now_rfc3339().replace(':', "")));
    let mut log = crate::files::private_file(&log_path)
        .map_err(|e| AnsibleError::Io(format!("{}: {e}", log_path.display())))?;
    let (mut argv, data) = run.split();
    let doc = data_document(&data, secrets);
    remove_stale_secrets(ws.dir.root());
    let pipe = if doc.is_empty() {
        None
    } else {
        let pipe = VarsPipe::create(ws.dir.root()).await?;
        // Before the inventory arguments, like any other -e.
        let at = argv.len() - 3;
        argv.insert(at, format!("@{}", pipe.path().display()));
        argv.insert(at, "-e".into());
        Some(pipe)
    };
    let program = ws.venv.join("bin").join(&argv[0]);
    let _ = writeln!(log, "# {} (cwd {})\n", argv.join(" "), ws.archive.display());
    let inventory = ws.archive.join(&run.inventory);
    let requested = std::env::var(STRATEGY_VAR).ok();
    let (strategy, strategy_note) = pick_strategy(&program, requested.as_deref()).await?;
    let env = ansible_env(ws, &inventory, &strategy)?;
    if !quiet {
        for note in [&strategy_note, &env.note].into_iter().flatten() {
            eprintln!("note: {note}");
        }
    }
    let _ = writeln!(log, "# {}\n", env.summary());
    let mut child = command(&program)
        .args(&argv[1..])
        .current_dir(&ws.archive)
        .envs(env.vars.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| AnsibleError::Io(format!("cannot start {}: {e}", program.display())))?;
    // Aborted when the run ends, whether or not Ansible got to read it.
    let feeder = pipe
        .as_ref()
        .map(|p| AbortOnDrop(tokio::spawn(VarsPipe::feed(p.path(), doc))));
    let started = Instant::now();
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let mut err_lines = BufReader::new(stderr).lines();
    let err_task = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Ok(Some(l)) = err_lines.next_line().await {
            all.push(l);
        }
        all
    });
    let redact = Redactor::new(secrets);
    let mut lines = BufReader::new(stdout).lines();
    let mut parser = OutputParser::default();
    let mut in_recap = false;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
    tick.tick().await;
    let mut task_started = Instant::now();
    loop {
        let line = tokio::select! {
            l = lines.next_line() => match l {
                Ok(Some(l)) => l,
                _ => break,
            },
            _ = tick.tick() => {
                // A long task (package installs, image pulls) still shows that it runs.
                if !quiet && !parser.task.is_empty() {
                    eprintln!(
                        "[{:>6.1}s] {label}: still running {:?} ({:.0} s)",
                        started.elapsed().as_secs_f64(),
                        redact.clean(&parser.task),
                        task_started.elapsed().as_secs_f64()
                    );
                }
                continue;
            }
        };
        // Parsed as Ansible wrote it; written with every secret hidden.
        let shown = redact.clean(&line);
        let _ = writeln!(log, "{shown}");
        if line.starts_with("TASK [") {
            task_started = Instant::now();
        }
        if let Some(task) = parser.feed(&line)
            && !quiet
        {
            eprintln!(
                "[{:>6.1}s] {label}: {}",
                started.elapsed().as_secs_f64(),
                redact.clean(&task)
            );
        }
        if line.starts_with("PLAY RECAP") {
            in_recap = true;
        }
        if in_recap && !quiet && !line.trim().is_empty() {
            eprintln!("           {shown}");
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|e| AnsibleError::Io(e.to_string()))?;
    drop(feeder);
    drop(pipe);
    let err_text: Vec<String> = err_task
        .await
        .unwrap_or_default()
        .iter()
        .map(|l| redact.clean(l))
        .collect();
    for l in &err_text {
        let _ = writeln!(log, "stderr: {l}");
    }
    if status.success() {
        return Ok(());
    }
    let mut failures: Vec<TaskFailure> = parser
        .failures
        .into_iter()
        .map(|f| TaskFailure {
            task: redact.clean(&f.task),
            host: f.host,
            message: redact.clean(&f.message),
        })
        .collect();
    if failures.is_empty()
        && let Some(last) = err_text.iter().rev().find(|l| l.contains("ERROR"))
    {
        failures.push(TaskFailure {
            task: "(before any task)".into(),
            host: "localhost".into(),
            message: last.trim().to_string(),
        });
    }
    Err(AnsibleError::PlaybookFailed {
        playbook: run.playbook.to_string(),
        failures,
        log: log_path,
        mitogen: matches!(strategy, Strategy::Mitogen { .. }),
    })
}

/// The extra-vars document of one run: every value the tool did not write itself (the run's
/// [`super::playbook::ExtraVar::Data`] values and the secrets) as YAML tagged `!unsafe`, which
/// Ansible never templates. Empty when there is nothing to pass.
pub fn data_document(data: &[(String, serde_json::Value)], secrets: &SecretVars) -> String {
    let mut out = String::new();
    let all = data.iter().cloned().chain(
        secrets
            .0
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))),
    );
    for (k, v) in all {
        out.push_str(&yaml_quoted(&k));
        out.push_str(": ");
        unsafe_yaml(&v, &mut out);
        out.push('\n');
    }
    out
}

/// `v` as YAML flow text, every string tagged `!unsafe`.
fn unsafe_yaml(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        // Nothing to template in "" (and ansible-core 2.19 reads `!unsafe ""` as null).
        Value::String(s) if s.is_empty() => out.push_str("\"\""),
        Value::String(s) => {
            out.push_str("!unsafe ");
            out.push_str(&yaml_quoted(s));
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                unsafe_yaml(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&yaml_quoted(k));
                out.push_str(": ");
                unsafe_yaml(item, out);
            }
            out.push('}');
        }
    }
}

/// A YAML double-quoted scalar: printable ASCII as it is, everything else escaped (YAML
/// parsers refuse some raw characters, such as DEL and C1 controls).
fn yaml_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c if (c as u32) <= 0xffff => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// `ANSIBLE_SSH_ARGS`: Ansible splits it as a POSIX shell would (`shlex`), then ssh reads each
/// `-o` value as a config line, where a file name with white space needs double quotes (and
/// `\`, `"` and `%` are escaped). So a state directory with a space in its path works.
fn ssh_args(known_hosts: &Path) -> String {
    let path = known_hosts.to_string_lossy();
    let for_ssh = path
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%");
    let option = format!("UserKnownHostsFile=\"{for_ssh}\"");
    format!(
        "-o ControlMaster=auto -o ControlPersist={CONTROL_PERSIST} -o '{}' -o StrictHostKeyChecking=yes -o BatchMode=yes",
        option.replace('\'', r"'\''")
    )
}

/// Aborts a task when dropped (the run returned early, or its future was dropped).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads Ansible's default output: task headers and failures.
#[derive(Default, Debug)]
pub struct OutputParser {
    task: String,
    pub failures: Vec<TaskFailure>,
}

impl OutputParser {
    /// Returns the task's name when `line` starts a task.
    pub fn feed(&mut self, line: &str) -> Option<String> {
        if let Some(rest) = line.strip_prefix("TASK [") {
            let name = rest
                .split("] ")
                .next()
                .unwrap_or(rest)
                .trim_end_matches(']')
                .to_string();
            self.task = name.clone();
            return Some(name);
        }
        // fatal: [host]: FAILED! => {...}   or   fatal: [host]: UNREACHABLE! => {...}
        if let Some(rest) = line.strip_prefix("fatal: [") {
            let (host, tail) = rest.split_once("]: ").unwrap_or((rest, ""));
            let host = host.split(" -> ").next().unwrap_or(host).to_string();
            let json = tail.split_once("=> ").map(|(_, j)| j).unwrap_or(tail);
            let message = serde_json::from_str::<serde_json::Value>(json)
                .ok()
                .and_then(|v| v.get("msg").and_then(|m| m.as_str()).map(String::from))
                .unwrap_or_else(|| tail.trim().to_string());
            self.failures.push(TaskFailure {
                task: self.task.clone(),
                host,
                message,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tasks_and_failures() {
        let mut p = OutputParser::default();
        assert_eq!(
            p.feed("TASK [Record the variables received] ****"),
            Some("Record the variables received".into())
        );
        p.feed("ok: [acura-1]");
        p.feed(r#"fatal: [acura-2]: FAILED! => {"changed": false, "msg": "stand-in failure requested"}"#);
        p.feed(r#"fatal: [acura-3]: UNREACHABLE! => {"changed": false, "msg": "Failed to connect", "unreachable": true}"#);
        assert_eq!(p.failures.len(), 2);
        assert_eq!(p.failures[0].task, "Record the variables received");
        assert_eq!(p.failures[0].host, "acura-2");
        assert_eq!(p.failures[0].message, "stand-in failure requested");
        assert_eq!(p.failures[1].message, "Failed to connect");
    }

    #[test]
    fn data_document_is_unsafe_yaml() {
        let data = vec![
            ("lb_address".to_string(), serde_json::json!("{{ 7*6 }}")),
            ("logstash_host".to_string(), serde_json::json!("")),
            (
                "overlay_list".to_string(),
                serde_json::json!(["overlay/ha.yaml", "a\"b\\c"]),
            ),
        ];
        let secrets = SecretVars(vec![("pw".into(), "é\u{7f}\u{1F600}\n".into())]);
        assert_eq!(
            data_document(&data, &secrets),
            "\"lb_address\": !unsafe \"{{ 7*6 }}\"\n\
             \"logstash_host\": \"\"\n\
             \"overlay_list\": [!unsafe \"overlay/ha.yaml\", !unsafe \"a\\\"b\\\\c\"]\n\
             \"pw\": !unsafe \"\\u00e9\\u007f\\U0001f600\\u000a\"\n"
        );
        assert_eq!(data_document(&[], &SecretVars::default()), "");
    }

    #[test]
    fn every_child_is_started_without_the_secret_variables() {
        // `command` removes them (its own test); nothing here builds a command another way.
        let all = include_str!("ansible.rs");
        let src = all.split(concat!("#[cfg", "(test)]")).next().unwrap();
        assert_eq!(src.matches(concat!("Command", "::new(")).count(), 0);
        assert_eq!(src.matches(concat!("process", "::Command")).count(), 0);
    }

    #[test]
    fn redactor_hides_every_form_of_a_secret() {
        let secret = "p\"w\\é😀\u{1}x";
        let r = Redactor::new(&SecretVars(vec![
            ("a".into(), secret.into()),
            ("b".into(), "".into()),
            ("c".into(), "line-one\nline-two".into()),
        ]));
        let json = serde_json::to_string(secret).unwrap();
        assert_eq!(r.clean(&format!("x {secret} y")), "x <redacted> y");
        assert_eq!(
            r.clean(&format!("{{\"msg\": {json}}}")),
            "{\"msg\": \"<redacted>\"}"
        );
        let ascii = r#"p\"w\\\u00e9\ud83d\ude00\u0001x"#;
        assert_eq!(r.clean(&format!("[{ascii}]")), "[<redacted>]");
        assert_eq!(r.clean("got line-two"), "got <redacted>");
        assert_eq!(r.clean("nothing here"), "nothing here");
    }

    #[test]
    fn interpreter_and_version_of_ansible() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("ansible-playbook");
        for (first, want) in [
            ("#!/venv/bin/python3\n", Some("/venv/bin/python3")),
            ("#! /venv/bin/python3 -E\n", Some("/venv/bin/python3")),
            ("#!/usr/bin/env -S python3.11\n", Some("python3.11")),
            ("import sys\n", None),
        ] {
            std::fs::write(&script, first).unwrap();
            assert_eq!(
                shebang_interpreter(&script),
                want.map(PathBuf::from),
                "{first:?}"
            );
        }
        assert_eq!(major_minor("2.19.14"), Some((2, 19)));
        assert_eq!(major_minor("2.21.0rc1"), Some((2, 21)));
        assert_eq!(major_minor("2.22b1"), Some((2, 22)));
        assert_eq!(major_minor("devel"), None);
    }

    #[test]
    fn known_hosts_path_survives_shlex_and_ssh() {
        // What Ansible does with ANSIBLE_SSH_ARGS (shlex.split), then what ssh makes of it.
        let path = Path::new("/state dir/it's  \"odd\" \\ 100%/known_hosts");
        let args = ssh_args(path);
        let split = std::process::Command::new("python3")
            .args([
                "-c",
                "import json, shlex, sys; print(json.dumps(shlex.split(sys.argv[1])))",
                &args,
            ])
            .output()
            .expect("python3 runs");
        assert!(split.status.success(), "{split:?}");
        let argv: Vec<String> = serde_json::from_slice(&split.stdout).unwrap();
        assert_eq!(argv.len(), 10, "{argv:?}");
        let g = std::process::Command::new("ssh")
            .arg("-G")
            .args(&argv)
            .arg("target.invalid")
            .output()
            .expect("ssh runs");
        let text = String::from_utf8_lossy(&g.stdout);
        assert!(g.status.success(), "{}", String::from_utf8_lossy(&g.stderr));
        let files = text
            .lines()
            .find_map(|l| l.strip_prefix("userknownhostsfile "))
            .expect("ssh -G names the file");
        assert_eq!(files, path.to_str().unwrap());
        assert!(
            text.lines().any(|l| l == "hostname target.invalid"),
            "{text}"
        );
        assert!(
            text.lines().any(|l| l == "stricthostkeychecking true"),
            "{text}"
        );
    }
}
