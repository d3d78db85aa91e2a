//! Shared by the integration tests: the binary, the examples, and the real components the tests
//! drive. A missing component fails the test and names the setup command; nothing skips.

#![allow(dead_code)]

pub mod fake_cloud;
pub mod lab;
pub mod sshd;

use std::path::{Path, PathBuf};

/// The command that installs every component the tests use.
pub const SETUP: &str = "sudo scripts/setup-test-deps.sh";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn example(name: &str) -> PathBuf {
    repo().join("examples").join(name)
}

pub fn acura_ha() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("acura-ha").expect("the binary is built");
    cmd.env_remove("ACURA_HA_CONFIG")
        .env_remove("ACURA_HA_STATE_DIR");
    cmd
}

/// `janitor --older-than <older_than> --yes --output json`: a janitor that deletes without
/// asking and streams its report.
pub fn janitor_json(older_than: &str) -> [&str; 6] {
    [
        "janitor",
        "--older-than",
        older_than,
        "--yes",
        "--output",
        "json",
    ]
}

/// The binary as a plain `std::process::Command`, for tests that stream its output or signal it.
pub fn acura_ha_std() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_acura-ha"));
    cmd.env_remove("ACURA_HA_CONFIG")
        .env_remove("ACURA_HA_STATE_DIR");
    cmd
}

/// Where `scripts/setup-test-deps.sh` puts the Python tools (ansible-core, moto).
pub fn tools_venv() -> PathBuf {
    let cache = std::env::var("ACURA_HA_CACHE").unwrap_or_else(|_| "/var/cache/acura-ha".into());
    PathBuf::from(cache).join("venv")
}

/// A program the tests need: from the tools venv, else from the usual system places.
pub fn require(program: &str) -> PathBuf {
    let venv = tools_venv().join("bin").join(program);
    if venv.is_file() {
        return venv;
    }
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join(program);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "`{program}` is not installed: run `{SETUP}` (it installs every component the tests use)"
    );
}

/// Binding ports below 1024 and making namespaces need root; say so instead of failing obscurely.
pub fn require_root(why: &str) {
    let uid = std::fs::metadata("/proc/self").map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid()
    });
    assert_eq!(
        uid.ok(),
        Some(0),
        "this test needs root ({why}); run the suite as root, as .ci/run does"
    );
}

/// Every regular file under `dir`, symbolic links not followed.
pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p);
            if meta.as_ref().is_ok_and(|m| m.is_dir()) {
                stack.push(p);
            } else if meta.as_ref().is_ok_and(|m| m.is_file()) {
                out.push(p);
            }
        }
    }
    out
}
