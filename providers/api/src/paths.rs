//! Paths as users write them in cluster files and flags.

use std::path::PathBuf;

/// `~/x` → `$HOME/x`; any other path (and `~/x` when `HOME` is unset) unchanged.
pub fn expand_home(p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    PathBuf::from(p)
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
}
