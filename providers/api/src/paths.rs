//! Paths as users write them in cluster files and flags.

use std::path::{Path, PathBuf};

/// `~/x` → `$HOME/x`; any other path (and `~/x` when `HOME` is unset) unchanged.
pub fn expand_home(p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    PathBuf::from(p)
}

/// A path from a cluster file: `~/x` in the home directory, a relative one next to the file
/// (`base`), an absolute one as it is.
pub fn resolve(base: &Path, p: &str) -> PathBuf {
    let path = expand_home(p);
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_only_for_a_leading_tilde_slash() {
        let home = PathBuf::from(std::env::var_os("HOME").expect("HOME is set in tests"));
        assert_eq!(
            expand_home("~/.ssh/id_ed25519"),
            home.join(".ssh/id_ed25519")
        );
        for p in ["/etc/key", "key.pub", "~user/key", "a/~/b", "~"] {
            assert_eq!(expand_home(p), PathBuf::from(p));
        }
    }

    #[test]
    fn relative_paths_are_next_to_the_file() {
        let base = Path::new("/clusters/a");
        assert_eq!(resolve(base, "id.pub"), base.join("id.pub"));
        assert_eq!(resolve(base, "/etc/id.pub"), PathBuf::from("/etc/id.pub"));
        assert!(resolve(base, "~/.ssh/id.pub").ends_with(".ssh/id.pub"));
        assert!(!resolve(base, "~/.ssh/id.pub").starts_with(base));
    }
}
