//! The tool's errors. Each has a stable code (`AH…`, listed in the README), a message that names
//! the file, resource or host concerned, and where it helps, what to do next. Every error exits 1;
//! see `cli::exit` for the other exit codes.

use std::path::PathBuf;

use acura_ha_api::provider::ProviderError;

use crate::config::ConfigError;
use crate::state::LockInfo;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Config(#[from] ConfigError),

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

    #[error("the state file {} is not valid: {message}", path.display())]
    StateCorrupt { path: PathBuf, message: String },

    #[error("the state file {} has schema version {found}; this acura-ha reads up to {supported}", path.display())]
    StateTooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },

    #[error("the state file {} belongs to cluster {found:?}, not {expected:?}", path.display())]
    StateOtherCluster {
        path: PathBuf,
        found: String,
        expected: String,
    },

    #[error("the state of cluster {cluster:?} is locked: {info}")]
    Locked {
        cluster: String,
        info: Box<LockInfo>,
    },

    #[error("the state of cluster {cluster:?} is not locked")]
    NotLocked { cluster: String },

    #[error("lock ID {given:?} does not match the lock held: {info}")]
    LockMismatch { given: String, info: Box<LockInfo> },

    #[error("the lock is held by a running process on this host: {info}")]
    LockHolderAlive { info: Box<LockInfo> },

    #[error("{0}")]
    Provider(#[from] ProviderError),

    #[error("cannot render the NGINX config: {0}")]
    Render(#[from] acura_ha_nginx::RenderError),

    #[error("{0}")]
    Usage(String),

    #[error("refused: {0}")]
    Refused(String),

    #[error(
        "interrupted: the state holds everything done so far; run the same command again to continue"
    )]
    Interrupted,

    #[error("cannot log in to every host:\n{0}")]
    Unreachable(crate::bootstrap::preflight::Unreachable),

    #[error("preflight failed on {0} (the table above says why)")]
    Preflight(String),

    #[error("NGINX load balancer: {0}")]
    Lb(#[from] crate::bootstrap::lbhost::LbError),

    #[error("{0}")]
    Ansible(#[from] crate::bootstrap::ansible::AnsibleError),

    #[error("post-checks: {0}")]
    PostCheck(#[from] crate::bootstrap::postcheck::PostCheckError),

    #[error("{0}")]
    Day2(#[from] crate::day2::Day2Error),
}

/// What to do depends on why the hosts could not be reached.
fn unreachable_help(u: &crate::bootstrap::preflight::Unreachable) -> String {
    use crate::bootstrap::ssh::SshError;
    let any = |f: fn(&SshError) -> bool| u.failures.iter().any(f);
    let mut help = Vec::new();
    if any(|e| matches!(e, SshError::HostKeyChanged { .. })) {
        help.push("a changed host key is never accepted: if the host was rebuilt, delete its line from the known_hosts file named above and run `up` again");
    }
    if any(|e| matches!(e, SshError::AuthFailed { .. } | SshError::Key { .. })) {
        help.push("check access.ssh_user and the key (access.ssh_private_key, or ssh-agent with access.ssh_agent = true)");
    }
    if any(|e| {
        matches!(
            e,
            SshError::Refused { .. }
                | SshError::Timeout { .. }
                | SshError::Connect { .. }
                | SshError::Channel { .. }
        )
    }) {
        help.push("check that the hosts are up and that the security group admits port 22 from this host (access.admin_cidrs); `acura-ha status` shows each host");
    }
    help.join("; ")
}

impl Error {
    /// The stable code printed as `error[AH…]`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Config(e) => e.code(),
            Error::Read { .. } => "AH001",
            Error::Write { .. } => "AH002",
            Error::Usage(_) => "AH003",
            Error::StateCorrupt { .. } => "AH200",
            Error::StateTooNew { .. } => "AH201",
            Error::StateOtherCluster { .. } => "AH202",
            Error::Locked { .. } => "AH210",
            Error::NotLocked { .. } => "AH211",
            Error::LockMismatch { .. } => "AH212",
            Error::LockHolderAlive { .. } => "AH213",
            Error::Provider(ProviderError::NotKnown { .. }) => "AH300",
            Error::Provider(ProviderError::Cloud { .. }) => "AH301",
            Error::Provider(ProviderError::Journal(_)) => "AH302",
            Error::Provider(ProviderError::Unsupported(_)) => "AH303",
            Error::Render(_) => "AH400",
            Error::Refused(_) => "AH004",
            Error::Interrupted => "AH005",
            Error::Unreachable(_) => "AH500",
            Error::Preflight(_) => "AH501",
            Error::Lb(_) => "AH502",
            Error::Ansible(_) => "AH503",
            Error::PostCheck(_) => "AH504",
            Error::Day2(crate::day2::Day2Error::Ssh(_)) => "AH500",
            Error::Day2(crate::day2::Day2Error::NoLiveNode { .. }) => "AH600",
            Error::Day2(crate::day2::Day2Error::Command { .. }) => "AH601",
            Error::Day2(crate::day2::Day2Error::Parse { .. }) => "AH602",
        }
    }

    /// What the user can do about it.
    pub fn help(&self) -> Option<String> {
        match self {
            Error::Config(e) => e.help(),
            Error::StateCorrupt { .. } => Some(
                "restore it from the `.bak` copy next to it, or, if the cluster was deleted, remove the file".into(),
            ),
            Error::StateTooNew { .. } => Some("use a newer acura-ha".into()),
            Error::StateOtherCluster { .. } => Some(
                "point --state-dir at this cluster's state, or check cluster.name in the cluster file".into(),
            ),
            Error::Locked { info, .. } => Some(format!(
                "wait for that run to finish; if it died, run `acura-ha state unlock {}`",
                info.id
            )),
            Error::LockHolderAlive { info } => Some(format!(
                "process {} is still running: stop it first, or pass --force if you are sure it does not use this state",
                info.pid
            )),
            Error::Unreachable(u) => Some(unreachable_help(u)),
            Error::Preflight(_) => Some("fix the hosts (or the cluster file) and run `acura-ha up` again: what is done is kept".into()),
            Error::Day2(crate::day2::Day2Error::NoLiveNode { .. }) => Some("a day-2 command needs one node that answers SSH and runs kubectl: check the hosts with `acura-ha status`".into()),
            Error::Day2(_) => Some("what was done is recorded in the state: fix the cause and run the same command again to continue".into()),
            Error::Ansible(_) => Some("the log has the playbook's whole output; fix the cause and run `acura-ha up` again: completed steps are skipped".into()),
            _ => None,
        }
    }
}
