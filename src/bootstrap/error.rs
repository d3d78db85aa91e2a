//! The bootstrap's errors: one per stage (SSH reach, preflight, the NGINX host, Ansible, the
//! post-checks), each with its stable code. The app-wide error only wraps this.

use super::ssh::SshError;
use crate::files::FileError;

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("cannot log in to every host:\n{0}")]
    Unreachable(super::preflight::Unreachable),

    #[error("preflight failed on {0} (the table above says why)")]
    Preflight(String),

    #[error("NGINX load balancer: {0}")]
    Lb(#[from] super::lbhost::LbError),

    #[error("{0}")]
    Ansible(#[from] super::ansible::AnsibleError),

    #[error("post-checks: {0}")]
    PostCheck(#[from] super::postcheck::PostCheckError),

    #[error("bootstrap.archive is not set: name Hystax's hystax-ha-archive.tar.gz (or its folder)")]
    NoArchive,

    #[error("no SSH connection to {0}")]
    NoSession(String),

    #[error(transparent)]
    File(#[from] FileError),
}

impl BootstrapError {
    /// The stable code printed as `error[AH…]`.
    pub fn code(&self) -> &'static str {
        match self {
            BootstrapError::Unreachable(_) => "AH500",
            BootstrapError::Preflight(_) => "AH501",
            // A sudo refusal is the same failure wherever it surfaces: its own code (AH505
            // wrong password, AH506 password required), not the stage's.
            BootstrapError::Lb(super::lbhost::LbError::Sudo(e)) => e.code(),
            BootstrapError::PostCheck(super::postcheck::PostCheckError::Sudo(e)) => e.code(),
            BootstrapError::Lb(_) => "AH502",
            BootstrapError::Ansible(_) => "AH503",
            BootstrapError::PostCheck(_) => "AH504",
            BootstrapError::NoArchive | BootstrapError::NoSession(_) => "AH003",
            BootstrapError::File(e) => e.code(),
        }
    }

    /// What the user can do about it.
    pub fn help(&self) -> Option<String> {
        match self {
            BootstrapError::Unreachable(u) => Some(unreachable_help(&u.failures)),
            BootstrapError::Preflight(_) => Some(format!("fix the hosts (or the cluster file) and run {} again: what is done is kept", acura_ha_api::hint::command("up"))),
            BootstrapError::Lb(super::lbhost::LbError::Sudo(_))
            | BootstrapError::PostCheck(super::postcheck::PostCheckError::Sudo(_)) => Some(
                "pass the login user's sudo password with -K (or ACURA_HA_BECOME_PASSWORD), or give the user passwordless sudo".into(),
            ),
            BootstrapError::Ansible(_) => Some(format!("the log has the playbook's whole output; fix the cause and run {} again: completed steps are skipped", acura_ha_api::hint::command("up"))),
            _ => None,
        }
    }
}

/// What to do depends on why the hosts could not be reached.
pub fn unreachable_help(failures: &[SshError]) -> String {
    let any = |f: fn(&SshError) -> bool| failures.iter().any(f);
    let rebuilt = format!(
        "a changed host key is never accepted: if the host was rebuilt, delete its line from the known_hosts file named above and run {} again",
        acura_ha_api::hint::command("up")
    );
    let reach = format!(
        "check that the hosts are up and that the security group admits port 22 from this host (access.admin_cidrs); {} shows each host",
        acura_ha_api::hint::command("status")
    );
    let mut help = Vec::new();
    if any(|e| matches!(e, SshError::HostKeyChanged { .. })) {
        help.push(rebuilt.as_str());
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
        help.push(reach.as_str());
    }
    if any(|e| matches!(e, SshError::NoCommonAlgorithm { .. })) {
        help.push("the server and acura-ha share no algorithm of the kind named: enable one of acura-ha's in the server's sshd_config (KexAlgorithms, HostKeyAlgorithms, Ciphers, MACs)");
    }
    if any(|e| matches!(e, SshError::HostKeyInvalid { .. })) {
        help.push("the host's key exchange signature does not verify: something between this host and the server is not the server; do not proceed until you know why");
    }
    if any(|e| matches!(e, SshError::AuthMethod { .. })) {
        help.push(
            "enable key logins for the user in the server's sshd_config (PubkeyAuthentication yes)",
        );
    }
    if any(|e| matches!(e, SshError::KnownHosts { .. })) {
        help.push("fix or remove the known_hosts line named above (nothing is trusted while it cannot be read)");
    }
    help.join("; ")
}

/// Lets a layer above take each bootstrap stage's own error (`LbError`, `AnsibleError`,
/// `PostCheckError`) with `?`, as its `BootstrapError` variant.
#[macro_export]
macro_rules! from_bootstrap_stages {
    ($target:ty) => {
        $crate::from_bootstrap_stages!(
            @each $target,
            $crate::bootstrap::lbhost::LbError,
            $crate::bootstrap::ansible::AnsibleError,
            $crate::bootstrap::postcheck::PostCheckError
        );
    };
    (@each $target:ty, $($stage:ty),*) => {$(
        impl From<$stage> for $target {
            fn from(e: $stage) -> Self {
                <$target>::from($crate::bootstrap::BootstrapError::from(e))
            }
        }
    )*};
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of login failure that stops the wait says what to do (an empty help line was
    /// printed for the kinds added with the SSH algorithm work).
    #[test]
    fn every_permanent_login_failure_has_help() {
        let failures = [
            SshError::NoCommonAlgorithm {
                host: "n1".into(),
                address: "10.0.0.1".into(),
                kind: "key exchange algorithm",
                server: "x".into(),
                ours: "y".into(),
            },
            SshError::HostKeyInvalid {
                host: "n1".into(),
                address: "10.0.0.1".into(),
                message: "bad".into(),
            },
            SshError::AuthMethod {
                host: "n1".into(),
                address: "10.0.0.1".into(),
                user: "ubuntu".into(),
                offered: "password".into(),
            },
            SshError::KnownHosts {
                host: "n1".into(),
                path: "/k".into(),
                line: Some(3),
                message: "bad".into(),
            },
        ];
        for f in failures {
            let text = f.to_string();
            assert!(!unreachable_help(&[f]).is_empty(), "{text}");
        }
    }

    /// A sudo refusal on the NGINX host or in the post-checks keeps its own code and says to
    /// pass -K, instead of the stage's generic AH502/AH504.
    #[test]
    fn a_sudo_refusal_keeps_its_code_in_every_stage() {
        use crate::bootstrap::lbhost::LbError;
        use crate::bootstrap::postcheck::PostCheckError;
        use crate::bootstrap::sudo::SudoError;
        let wrong = || {
            Box::new(SudoError::WrongPassword {
                host: "n1".into(),
                user: "deploy".into(),
                message: "sudo: 1 incorrect password attempt".into(),
            })
        };
        let required = || {
            Box::new(SudoError::PasswordRequired {
                host: "n1".into(),
                user: "deploy".into(),
            })
        };
        let cases = [
            (BootstrapError::Lb(LbError::Sudo(wrong())), "AH505"),
            (BootstrapError::Lb(LbError::Sudo(required())), "AH506"),
            (
                BootstrapError::PostCheck(PostCheckError::Sudo(wrong())),
                "AH505",
            ),
            (
                BootstrapError::PostCheck(PostCheckError::Sudo(required())),
                "AH506",
            ),
        ];
        for (e, code) in cases {
            assert_eq!(e.code(), code, "{e}");
            assert!(e.help().unwrap().contains("-K"), "{e}");
        }
    }
}
