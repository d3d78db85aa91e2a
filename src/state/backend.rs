//! Where the state's objects live: a small storage seam between [`StateStore`](super::StateStore)
//! and a directory, an S3 bucket or a Swift container. Every object is read with a version (an
//! ETag) and written with a precondition on it, which is what lets two operators share a state
//! without a lock service: create-only for the lock and the first state, if-match for updates.

use std::fs;
use std::path::{Path, PathBuf};

use crate::files::{FileError, write_atomic};

/// An object's version as its store reports it (an ETag; for a directory, a digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(pub String);

/// An object read with its version.
#[derive(Debug, Clone)]
pub struct Object {
    pub bytes: Vec<u8>,
    pub version: Version,
}

/// When a write may happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// Always (a `.bak` copy, a directory's own lock record).
    None,
    /// Only if there is no such object (`If-None-Match: *`).
    CreateOnly,
    /// Only if the object is still this version (`If-Match`).
    IfMatch(Version),
}

/// What a backend can fail with.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    File(#[from] FileError),

    /// The precondition did not hold: someone else wrote (or removed) the object.
    #[error("{location} was changed by another writer since this run read it")]
    Changed { location: String },

    /// The store refused or failed a call (its code and message are in the text).
    #[error("{0}")]
    Remote(String),

    /// The bucket or container is readable by anyone.
    #[error("{0}")]
    Public(String),

    #[error("the state backend {backend:?} is not available in this acura-ha: {why}")]
    NotInBuild {
        backend: &'static str,
        why: &'static str,
    },
}

/// A place that stores the state's objects by name (`<cluster>.state.json`, `<cluster>.lock`).
pub trait StateBackend: Send + Sync + std::fmt::Debug {
    /// `local`, `s3` or `swift`.
    fn kind(&self) -> &'static str;

    /// Where `name` is, for messages (`/dir/demo.state.json`, `s3://bucket/prefix/demo.lock`).
    fn location(&self, name: &str) -> String;

    /// The object and its version, or `None` when there is none.
    fn get(&self, name: &str) -> Result<Option<Object>, BackendError>;

    /// Writes `bytes` if `when` holds ([`BackendError::Changed`] otherwise); the new version.
    fn put(&self, name: &str, bytes: &[u8], when: Precondition) -> Result<Version, BackendError>;

    /// Removes the object if it is still `version` (any version when `None`). A missing
    /// object is not an error.
    fn delete(&self, name: &str, version: Option<&Version>) -> Result<(), BackendError>;

    /// The store keeps every previous version itself (S3 bucket versioning): no `.bak` object.
    fn keeps_versions(&self) -> Result<bool, BackendError> {
        Ok(false)
    }
}

/// The directory next to the cluster file: files written atomically with mode 0600. Its
/// versions are SHA-256 digests of the content. Preconditions are checked before the rename,
/// which is not atomic against another process; on one machine the lock's kernel gate
/// serialises the writers (a shared network directory needs `s3` or `swift`).
#[derive(Debug, Clone)]
pub struct LocalBackend {
    pub dir: PathBuf,
}

impl LocalBackend {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn ensure_dir(&self) -> Result<(), FileError> {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(FileError::write(&self.dir))
    }
}

pub fn digest(bytes: &[u8]) -> Version {
    use sha2::Digest;
    Version(data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(bytes)))
}

fn read(path: &Path) -> Result<Option<Vec<u8>>, FileError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(FileError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

impl StateBackend for LocalBackend {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn location(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn get(&self, name: &str) -> Result<Option<Object>, BackendError> {
        Ok(read(&self.path(name))?.map(|bytes| Object {
            version: digest(&bytes),
            bytes,
        }))
    }

    fn put(&self, name: &str, bytes: &[u8], when: Precondition) -> Result<Version, BackendError> {
        self.ensure_dir()?;
        let path = self.path(name);
        let holds = match &when {
            Precondition::None => true,
            Precondition::CreateOnly => read(&path)?.is_none(),
            Precondition::IfMatch(v) => read(&path)?.is_some_and(|b| digest(&b) == *v),
        };
        if !holds {
            return Err(BackendError::Changed {
                location: self.location(name),
            });
        }
        write_atomic(&path, bytes)?;
        Ok(digest(bytes))
    }

    fn delete(&self, name: &str, version: Option<&Version>) -> Result<(), BackendError> {
        let path = self.path(name);
        if let Some(v) = version {
            match read(&path)? {
                None => return Ok(()),
                Some(b) if digest(&b) != *v => {
                    return Err(BackendError::Changed {
                        location: self.location(name),
                    });
                }
                Some(_) => {}
            }
        }
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(FileError::write(&path)(e).into()),
        }
    }
}

/// A backend this build leaves out: every call says so.
#[derive(Debug)]
pub struct NotInBuild {
    pub backend: &'static str,
    pub why: &'static str,
}

impl NotInBuild {
    fn err(&self) -> BackendError {
        BackendError::NotInBuild {
            backend: self.backend,
            why: self.why,
        }
    }
}

impl StateBackend for NotInBuild {
    fn kind(&self) -> &'static str {
        self.backend
    }
    fn location(&self, name: &str) -> String {
        format!("{}:{name}", self.backend)
    }
    fn get(&self, _: &str) -> Result<Option<Object>, BackendError> {
        Err(self.err())
    }
    fn put(&self, _: &str, _: &[u8], _: Precondition) -> Result<Version, BackendError> {
        Err(self.err())
    }
    fn delete(&self, _: &str, _: Option<&Version>) -> Result<(), BackendError> {
        Err(self.err())
    }
}
