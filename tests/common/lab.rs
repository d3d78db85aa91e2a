//! A local-target lab made by the test itself, through the tool: `up` (all of it, or
//! `--only provision` for bare hosts) on a cluster file with the test's own name and subnet, and
//! `down` when dropped, whatever happened. Every lab of a test run uses its own subnet
//! (10.213.<octet>.0/24), so tests run in parallel.

use std::path::{Path, PathBuf};
use std::process::Output;

use super::{acura_ha, example};

pub struct Lab {
    pub dir: tempfile::TempDir,
    pub name: String,
    pub octet: u8,
    pub config: PathBuf,
    pub state_dir: PathBuf,
}

impl Lab {
    /// A cluster file like examples/local.toml, with its own name, subnet and node count.
    pub fn new(name: &str, octet: u8, nodes: u32) -> Lab {
        super::require_root("the local target makes network namespaces");
        let dir = tempfile::tempdir().unwrap();
        let net = format!("10.213.{octet}");
        let text = std::fs::read_to_string(example("local.toml"))
            .unwrap()
            .replace("name = \"acura-lab\"", &format!("name = \"{name}\""))
            .replace("count = 3", &format!("count = {nodes}"))
            .replace("10.213.0.", &format!("{net}."))
            .replace(
                "dns_name = \"acura-lab-lb\"",
                &format!("dns_name = \"{name}-lb\""),
            )
            .replace(
                "archive = \"archive\"",
                &format!("archive = \"{}\"", example("archive").display()),
            );
        let config = dir.path().join("local.toml");
        std::fs::write(&config, text).unwrap();
        let state_dir = dir.path().join("state");
        Lab {
            dir,
            name: name.to_string(),
            octet,
            config,
            state_dir,
        }
    }

    /// Runs `acura-ha <args> -c <file> --state-dir <dir>`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[])
    }

    /// The same with extra environment variables.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        acura_ha()
            .envs(env.iter().copied())
            .args(args)
            .arg("-c")
            .arg(&self.config)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .env("ACURA_HA_CACHE", super::tools_venv().parent().unwrap())
            .output()
            .unwrap()
    }

    pub fn cluster_dir(&self) -> PathBuf {
        self.state_dir.join(&self.name)
    }

    pub fn key(&self) -> PathBuf {
        self.cluster_dir().join("id_ed25519")
    }

    pub fn node(&self, k: u32) -> (String, String) {
        (
            format!("{}-{k}", self.name),
            format!("10.213.{}.{}", self.octet, 10 + k),
        )
    }

    pub fn lb(&self) -> (String, String) {
        (
            format!("{}-lb", self.name),
            format!("10.213.{}.10", self.octet),
        )
    }

    /// A file in a host's private home (what the stand-in playbooks write).
    pub fn home_file(&self, host: &str, rel: &str) -> PathBuf {
        self.cluster_dir()
            .join("hosts")
            .join(host)
            .join("root")
            .join(rel)
    }

    pub fn namespace(&self, host: &str) -> String {
        acura_ha_local::names::namespace_name(&self.name, host)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = self.run(&["down", "--yes"]);
        if !out.status.success() {
            eprintln!(
                "lab {} teardown: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Panics with both streams when the command failed.
pub fn ok(o: &Output) -> (String, String) {
    let (out, err) = text(o);
    assert!(
        o.status.success(),
        "exit {:?}\n--- stdout\n{out}\n--- stderr\n{err}",
        o.status.code()
    );
    (out, err)
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}
