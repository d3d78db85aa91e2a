//! The fake OpenStack cloud (tests/fake-openstack) as the binary's tests drive it: started on
//! 127.0.0.1 with two items a page, its `clouds.yaml` (cloud `fake`) in the test's directory,
//! cluster files made from examples/openstack.toml pointed at it, and runs of the binary that
//! read that `clouds.yaml`.

use std::path::Path;
use std::process::Output;

use fake_openstack::{Config, FakeCloud};

use super::{acura_ha, example};

/// The fake cloud, two items a page, with its `clouds.yaml` written in `dir`.
pub fn start(dir: &Path) -> FakeCloud {
    let fake = FakeCloud::start(Config {
        page_size: Some(2),
        ..Config::default()
    });
    std::fs::write(dir.join("clouds.yaml"), fake.clouds_yaml("fake")).unwrap();
    fake
}

/// examples/openstack.toml pointed at cloud `fake`, its nodes' key a fresh ed25519 key pair made
/// at `key` (and `key`.pub).
pub fn cluster_text(key: &Path) -> String {
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(key)
        .output()
        .unwrap_or_else(|e| {
            panic!("ssh-keygen: {e} (install openssh-client: scripts/setup-test-deps.sh)")
        });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(example("openstack.toml"))
        .unwrap()
        .replace("cloud = \"mycloud\"", "cloud = \"fake\"")
        .replace(
            "public_key_file = \"~/.ssh/id_ed25519.pub\"",
            &format!("public_key_file = \"{}.pub\"", key.display()),
        )
}

/// `acura-ha <args> -c <config> --state-dir <state_dir>`, with the `clouds.yaml` in `dir`.
pub fn run(dir: &Path, state_dir: &Path, config: &Path, args: &[&str]) -> Output {
    acura_ha()
        .args(args)
        .arg("-c")
        .arg(config)
        .arg("--state-dir")
        .arg(state_dir)
        .env("OS_CLIENT_CONFIG_FILE", dir.join("clouds.yaml"))
        .output()
        .unwrap()
}
