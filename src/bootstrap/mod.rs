//! From "we have addresses" to "Acura is installed": what the guide's Steps 4 to 6 do by hand,
//! and what `up` and the day-2 commands share for it — how to log in (key, known_hosts, the
//! hosts), the preflight sequence, the archive's workspace, the become secret, the ready wait.

pub mod ansible;
pub mod error;
pub mod facts;
pub mod ha_env;
pub mod lbhost;
pub mod playbook;
pub mod postcheck;
pub mod preflight;
pub mod ssh;
pub mod sudo;
pub mod workspace;

use std::path::PathBuf;
use std::time::Duration;

use acura_ha_api::model::{Host, Inventory};
use acura_ha_api::spec::ClusterSpec;

pub use error::BootstrapError;

use crate::config::LoadedConfig;
use crate::files::ClusterDir;
use ansible::SecretVars;
use ssh::{Credentials, SshOptions};

/// The private key file the inventory names: the file's, or for the local target without one,
/// the key the local provider generates in the cluster's directory.
pub fn key_file(cfg: &LoadedConfig, dir: &ClusterDir) -> Option<PathBuf> {
    match &cfg.spec.access.ssh_private_key {
        Some(k) => Some(cfg.resolve(k)),
        None if cfg.spec.local.is_some() => Some(dir.generated_key()),
        None => None,
    }
}

/// Where the bootstrap writes: the plan shows these real paths.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The private key the inventory names.
    pub key_file: Option<PathBuf>,
    /// The `ha_env_file` the playbooks read.
    pub inventory: PathBuf,
}

pub fn paths(cfg: &LoadedConfig, dir: &ClusterDir) -> Paths {
    Paths {
        key_file: key_file(cfg, dir),
        inventory: dir.ha_env_file(),
    }
}

/// How to log in to the cluster's hosts: its key (or the agent) and its pinned host keys.
pub fn ssh_options(cfg: &LoadedConfig, dir: &ClusterDir) -> SshOptions {
    SshOptions {
        known_hosts: dir.known_hosts(),
        credentials: Credentials {
            key_file: key_file(cfg, dir),
            agent: cfg.spec.access.ssh_agent,
            agent_socket: None,
        },
        // One attempt never outlasts the whole wait.
        connect_timeout: Duration::from_secs(10.min(cfg.spec.ssh_wait_secs().max(1))),
    }
}

/// The hosts to log in to: the nodes, then the NGINX host.
pub fn ssh_hosts(inv: &Inventory) -> Vec<(Host, &'static str)> {
    let mut hosts: Vec<(Host, &'static str)> =
        inv.nodes.iter().map(|h| (h.clone(), "node")).collect();
    if let Some(lb) = &inv.lb.nginx_host {
        hosts.push((lb.clone(), "nginx-lb"));
    }
    hosts
}

/// The secrets every playbook run gets: the sudo password (the guide's `-K`), if any.
pub fn become_vars(become_password: Option<&str>) -> SecretVars {
    let mut v = SecretVars::default();
    if let Some(pw) = become_password {
        v.0.push(("ansible_become_password".into(), pw.to_string()));
    }
    v
}

/// How long nodes may take to become Ready after a playbook.
pub fn ready_wait(spec: &ClusterSpec) -> Duration {
    Duration::from_secs(spec.preflight.ready_wait_secs.unwrap_or(1800))
}
