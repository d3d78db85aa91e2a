//! Files the tool writes for a cluster: the I/O error every layer shares (it names the path),
//! the atomic 0600 write, and [`ClusterDir`], which owns every path of a cluster's directory so
//! no caller joins file names by hand.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Reading or writing one of the tool's files failed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl FileError {
    pub fn read(path: &Path) -> impl FnOnce(std::io::Error) -> FileError {
        let path = path.to_path_buf();
        move |source| FileError::Read { path, source }
    }

    pub fn write(path: &Path) -> impl FnOnce(std::io::Error) -> FileError {
        let path = path.to_path_buf();
        move |source| FileError::Write { path, source }
    }

    pub fn code(&self) -> &'static str {
        match self {
            FileError::Read { .. } => "AH001",
            FileError::Write { .. } => "AH002",
        }
    }
}

/// Writes `bytes` to `path` through a 0600 temporary file in the same directory, fsyncs it,
/// renames it over `path` and fsyncs the directory, so a crash leaves the old or the new file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(FileError::write(path))?;
    tmp.write_all(bytes).map_err(FileError::write(path))?;
    tmp.as_file().sync_all().map_err(FileError::write(path))?;
    tmp.persist(path)
        .map_err(|e| FileError::write(path)(e.error))?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Creates `path` (and missing parents) owner-only, 0700, and tightens it if an older run made
/// it wider: the logs, control sockets and unpacked archive beside the state are nobody
/// else's to read.
pub fn private_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
}

/// Creates (or truncates) a log file, 0600.
pub fn private_file(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

/// Makes a file readable by its owner only.
pub fn set_private(path: &Path) -> Result<(), FileError> {
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(FileError::write(path))
}

/// The key the local target generates when the cluster file names none.
pub const GENERATED_KEY: &str = "id_ed25519";

/// A cluster's private directory (`<state dir>/<cluster>/`): what belongs to the cluster but not
/// in the state file — host-key pins, the generated key, the `ha_env_file`, logs, Ansible's
/// control sockets, the unpacked archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDir(PathBuf);

impl ClusterDir {
    pub fn new(root: PathBuf) -> Self {
        ClusterDir(root)
    }

    pub fn root(&self) -> &Path {
        &self.0
    }

    /// Creates the directory (0700: it holds keys and pins).
    pub fn create(&self) -> Result<(), FileError> {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.0)
            .map_err(FileError::write(&self.0))
    }

    /// The pinned host keys of every host of the cluster.
    pub fn known_hosts(&self) -> PathBuf {
        self.0.join("known_hosts")
    }

    /// Playbook and build logs (kept after `down`, for a post-mortem).
    pub fn logs(&self) -> PathBuf {
        self.0.join("logs")
    }

    /// The guide's `ha_env_file` (Ansible's inventory).
    pub fn ha_env_file(&self) -> PathBuf {
        self.0.join(acura_ha_api::tables::HA_ENV_FILE)
    }

    /// The one-host inventory of a `node add` join run.
    pub fn join_inventory(&self) -> PathBuf {
        self.0
            .join(format!("{}.join", acura_ha_api::tables::HA_ENV_FILE))
    }

    /// The key the local target generates.
    pub fn generated_key(&self) -> PathBuf {
        self.0.join(GENERATED_KEY)
    }

    /// Ansible's own home (its temporary files and collections cache).
    pub fn ansible_home(&self) -> PathBuf {
        self.0.join("ansible")
    }

    /// Ansible's ssh ControlPersist sockets.
    pub fn control_sockets(&self) -> PathBuf {
        self.0.join("cp")
    }

    /// Ansible's fact caches, one per process of the tool (see [`Self::fact_cache`]).
    pub fn fact_caches(&self) -> PathBuf {
        self.0.join("facts")
    }

    /// The fact cache of one process: the playbooks of one run share it, a later run does not.
    pub fn fact_cache(&self, pid: u32) -> PathBuf {
        self.fact_caches().join(pid.to_string())
    }

    /// Whether `name`, an entry of the cluster's directory, is one the tool writes there: only
    /// those are removed by `down` (#9.5). A user's own file kept beside them (a note, a key
    /// the cluster file names) stays. `logs` is the tool's too, but kept on purpose.
    pub fn is_tools_own(name: &str) -> bool {
        const NAMES: &[&str] = &[
            "known_hosts",
            acura_ha_api::tables::HA_ENV_FILE,
            GENERATED_KEY,
            "ansible",
            "cp",
            "facts",
            "archive",
            // The local target's lab: its hosts' roots and the network's resolver files.
            "network",
            "hosts",
        ];
        // Atomic writes' temporaries, the Ansible variables pipe and its secret files, the
        // join inventory and the generated key's public half.
        const PREFIXES: &[&str] = &[".tmp-", ".acura-ha-vars-", ".secret-vars-"];
        let derived = [
            format!("{}.join", acura_ha_api::tables::HA_ENV_FILE),
            format!("{GENERATED_KEY}.pub"),
        ];
        NAMES.contains(&name)
            || derived.iter().any(|d| d == name)
            || PREFIXES.iter().any(|p| name.starts_with(p))
    }

    /// A run's timeline (`--timings`): `<logs>/timings-<stamp>.{json,html}`.
    pub fn timings(&self, stamp: &str, ext: &str) -> PathBuf {
        self.logs().join(format!("timings-{stamp}.{ext}"))
    }
}

#[cfg(test)]
mod private_tests {
    use super::*;

    /// The directories and logs the bootstrap keeps beside the state are owner-only, also when
    /// an older run left them wider.
    #[test]
    fn private_dirs_and_files_are_owner_only() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = tmp.path().join("c/logs");
        private_dir(&logs).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&logs), 0o700);
        fs::set_permissions(&logs, fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&logs).unwrap();
        assert_eq!(mode(&logs), 0o700, "an older, wider directory is tightened");
        let log = logs.join("x.log");
        fs::write(&log, "old").unwrap();
        fs::set_permissions(&log, fs::Permissions::from_mode(0o644)).unwrap();
        drop(private_file(&log).unwrap());
        assert_eq!(mode(&log), 0o600);
        assert_eq!(fs::read_to_string(&log).unwrap(), "", "truncated");
    }
}
