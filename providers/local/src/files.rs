//! Writing the lab's files. Files a running host has bind-mounted (`/etc/hosts`,
//! `/etc/resolv.conf`) must keep their inode, so they are rewritten in place, and only when
//! their content changes: the caller learns whether it did (a changed sshd_config means a
//! restart). Errors name the path and the resource.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

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

/// Where a removal may happen: `path` if it lies strictly inside `root` (the lab's own
/// directory), checked on the real file system — no `..`, and the parent directory resolved
/// through its symlinks must still be inside the resolved `root` — so neither a hostile name
/// (`/`, `../..`) nor a symlink planted in the lab can turn a removal on the machine's files.
/// `Ok(None)`: the parent does not exist, so there is nothing to remove.
pub fn inside(resource: &str, root: &Path, path: &Path) -> Result<Option<PathBuf>, ProviderError> {
    let refuse = |why: &str| {
        cloud(
            resource,
            format!(
                "refusing to remove {}: {why}, and the local target removes only what lies inside its lab directory {}",
                path.display(),
                root.display()
            ),
        )
    };
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return Err(refuse("the path is relative or has `..`"));
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(refuse("it has no parent directory"));
    };
    let real_root = match fs::canonicalize(root) {
        Ok(r) => r,
        // No lab directory: nothing of the lab exists to remove.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && path.starts_with(root) => {
            return Ok(None);
        }
        Err(e) => {
            return Err(refuse(&format!(
                "the lab directory cannot be resolved ({e})"
            )));
        }
    };
    let real_parent = match fs::canonicalize(parent) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && path.starts_with(root) => {
            return Ok(None);
        }
        Err(e) => return Err(refuse(&format!("its directory cannot be resolved ({e})"))),
    };
    let real = real_parent.join(name);
    if real.starts_with(&real_root) && real != real_root {
        Ok(Some(real))
    } else {
        Err(refuse(&format!("it resolves to {}", real.display())))
    }
}

/// Removes a file inside `root` (see [`inside`]); one that does not exist is already removed.
pub fn remove_file(resource: &str, root: &Path, path: &Path) -> Result<(), ProviderError> {
    let Some(real) = inside(resource, root, path)? else {
        return Ok(());
    };
    match fs::remove_file(&real) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(resource, "remove", path, e)),
    }
}

/// Removes a directory tree inside `root` (see [`inside`]; symlinks inside the tree are
/// removed, not followed); a missing one is already removed.
pub fn remove_tree(resource: &str, root: &Path, path: &Path) -> Result<(), ProviderError> {
    let Some(real) = inside(resource, root, path)? else {
        return Ok(());
    };
    match fs::remove_dir_all(&real) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(resource, "remove", path, e)),
    }
}

/// Removes an empty directory inside `root`; a missing or non-empty one is left as it is.
pub fn remove_dir_if_empty(root: &Path, path: &Path) {
    // Non-empty means something else (the engine's logs) lives there: keep it.
    if let Ok(Some(real)) = inside("lab", root, path) {
        let _ = fs::remove_dir(real);
    }
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

    /// A removal outside the lab directory is refused whatever the path looks like: a host
    /// named `/` or `../..`, or a symlink in the lab pointing out of it. Without the check
    /// each of these deletes the victim.
    #[test]
    fn removals_stay_inside_the_lab_directory() {
        let d = tempfile::tempdir().expect("tempdir");
        let lab = d.path().join("lab");
        let hosts = lab.join("hosts");
        fs::create_dir_all(&hosts).expect("mkdir");
        let victim = d.path().join("victim");
        fs::create_dir_all(victim.join("sub")).expect("mkdir");
        fs::write(victim.join("keep"), "x").expect("write");
        std::os::unix::fs::symlink(&victim, hosts.join("escape")).expect("symlink");

        // Only ever checked, never handed to a removal: if the check broke, this test must not
        // take the machine with it.
        for bad in [Path::new("/"), Path::new("/etc"), Path::new("relative")] {
            assert!(
                inside("lab_host[x]", &lab, bad).is_err(),
                "{}",
                bad.display()
            );
        }
        // Each of these points at the victim in the test's own directory.
        for bad in [
            hosts.join("../../victim"),
            hosts.join(&victim),
            hosts.join("escape").join("sub"),
            lab.clone(),
        ] {
            let e = remove_tree("lab_host[x]", &lab, &bad).expect_err("refused");
            assert!(e.to_string().contains("refusing to remove"), "{e}");
        }
        let e = remove_file("lab_host[x]", &lab, &hosts.join("escape/keep")).expect_err("refused");
        assert!(e.to_string().contains("lab directory"), "{e}");
        remove_dir_if_empty(&lab, &hosts.join("escape/sub"));
        assert!(victim.join("keep").exists() && victim.join("sub").exists());

        // The symlink itself lies inside: removing it removes the link, never its target.
        remove_tree("lab_host[x]", &lab, &hosts.join("escape")).expect("remove the link");
        assert!(!hosts.join("escape").exists() && victim.join("keep").exists());
        // What is inside goes; what is missing is already gone.
        fs::create_dir_all(hosts.join("n1/run")).expect("mkdir");
        remove_tree("lab_host[n1]", &lab, &hosts.join("n1")).expect("remove");
        assert!(!hosts.join("n1").exists());
        remove_tree("lab_host[n1]", &lab, &hosts.join("n1")).expect("gone already");
        remove_file("lab_host[n1]", &lab, &hosts.join("n1/run/sshd.pid")).expect("gone already");
    }
}
