//! Writing the lab's files. Files a running host has bind-mounted (`/etc/hosts`,
//! `/etc/resolv.conf`) must keep their inode, so they are rewritten in place, and only when
//! their content changes: the caller learns whether it did (a changed sshd_config means a
//! restart). Errors name the path and the resource.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use acura_ha_api::provider::ProviderError;

use crate::cmd::cloud;

fn io_error(resource: &str, what: &str, path: &Path, e: std::io::Error) -> ProviderError {
    cloud(resource, format!("cannot {what} {}: {e}", path.display()))
}

/// Creates `path` and its parents with `mode` on the last component.
pub fn dir(resource: &str, path: &Path, mode: u32) -> Result<(), ProviderError> {
    fs::create_dir_all(path).map_err(|e| io_error(resource, "create", path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| io_error(resource, "set the mode of", path, e))
}

/// Writes `content` to `path` with `mode` unless it already holds exactly that. In place (same
/// inode), so bind mounts of the file see the new content. Returns whether it changed.
pub fn write_if_changed(
    resource: &str,
    path: &Path,
    content: &str,
    mode: u32,
) -> Result<bool, ProviderError> {
    let same = fs::read(path)
        .map(|old| old == content.as_bytes())
        .unwrap_or(false);
    if !same {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)
            .map_err(|e| io_error(resource, "write", path, e))?;
        f.write_all(content.as_bytes())
            .map_err(|e| io_error(resource, "write", path, e))?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| io_error(resource, "set the mode of", path, e))?;
    Ok(!same)
}

/// Creates an empty file unless it exists (a host's `.bashrc`: sessions may have changed it).
pub fn touch(resource: &str, path: &Path, mode: u32) -> Result<(), ProviderError> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(mode)
        .open(path)
        .map(|_| ())
        .map_err(|e| io_error(resource, "create", path, e))
}

/// Removes a file; one that does not exist is already removed.
pub fn remove_file(resource: &str, path: &Path) -> Result<(), ProviderError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(resource, "remove", path, e)),
    }
}

/// Removes a directory tree (symlinks inside are removed, not followed); a missing one is
/// already removed.
pub fn remove_tree(resource: &str, path: &Path) -> Result<(), ProviderError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(resource, "remove", path, e)),
    }
}

/// Removes an empty directory; a missing or non-empty one is left as it is.
pub fn remove_dir_if_empty(path: &Path) {
    // Non-empty means something else (the engine's logs) lives there: keep it.
    let _ = fs::remove_dir(path);
}

/// Reads a file that must exist.
pub fn read(resource: &str, path: &Path) -> Result<String, ProviderError> {
    fs::read_to_string(path).map_err(|e| io_error(resource, "read", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn rewrites_in_place_only_on_change() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("hosts");
        assert!(write_if_changed("r", &p, "a\n", 0o644).expect("write"));
        let ino = fs::metadata(&p).expect("meta").ino();
        assert!(!write_if_changed("r", &p, "a\n", 0o644).expect("write"));
        assert!(write_if_changed("r", &p, "b\n", 0o600).expect("write"));
        let m = fs::metadata(&p).expect("meta");
        assert_eq!(m.ino(), ino);
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_to_string(&p).expect("read"), "b\n");
    }
}
