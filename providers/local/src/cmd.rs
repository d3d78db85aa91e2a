//! Running the machine's tools (`ip`, `nft`, `ssh-keygen`, `dnsmasq`, `sshd`). Every command has
//! a deadline, is killed when it passes, and a failure names the resource it was for, the
//! command line, its exit status and its stderr: the user must be able to tell what broke
//! without re-running anything.

use std::ffi::{OsStr, OsString};
use std::process::Stdio;
use std::time::Duration;

use acura_ha_api::provider::ProviderError;
use tokio::process::Command;

/// Long enough for a loaded 2-core machine, short enough that a hung tool does not hang `up`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Environment variables of the deploy side that hold secrets (`-K`'s password and the SSH key's
/// passphrase, for users who set them instead of answering the prompt). No child the tool
/// starts inherits them: not the lab's long-lived sshd and dnsmasq, not tar, pip or Ansible.
pub const SECRET_ENV: &[&str] = &["ACURA_HA_BECOME_PASSWORD", "ACURA_HA_SSH_KEY_PASSPHRASE"];

/// A command for `program` without the [`SECRET_ENV`] variables in its environment.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new(program);
    for v in SECRET_ENV {
        c.env_remove(v);
    }
    c
}

/// What a finished command reported.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `None` when it was killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The command line, for messages.
    pub line: String,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// An error for `resource` that names the command, its status and its stderr.
    pub fn error(&self, resource: &str) -> ProviderError {
        let status = match self.code {
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".to_string(),
        };
        let stderr = self.stderr.trim();
        let detail = if stderr.is_empty() {
            String::new()
        } else {
            format!(": {stderr}")
        };
        cloud(
            resource,
            format!("`{}` failed with {status}{detail}", self.line),
        )
    }
}

/// A [`ProviderError::Cloud`] for a local resource (there is no request ID on this machine).
pub fn cloud(resource: &str, message: impl Into<String>) -> ProviderError {
    ProviderError::Cloud {
        resource: resource.to_string(),
        message: message.into(),
        request_id: None,
    }
}

/// Runs `program args…` and returns what it reported, whatever its exit status. Errors only
/// when it cannot be started or runs past `timeout`.
pub async fn probe<I, S>(
    resource: &str,
    program: &str,
    args: I,
    timeout: Duration,
) -> Result<Outcome, ProviderError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let line = std::iter::once(program.to_string())
        .chain(args.iter().map(|a| quote(&a.to_string_lossy())))
        .collect::<Vec<_>>()
        .join(" ");
    let child = command(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                " (not installed? the local target needs iproute2, nftables, dnsmasq-base, \
                 openssh-server and nginx: see scripts/setup-test-deps.sh)"
            } else {
                ""
            };
            cloud(resource, format!("cannot run `{line}`: {e}{hint}"))
        })?;
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return Err(cloud(resource, format!("`{line}`: {e}"))),
        Err(_) => {
            return Err(cloud(
                resource,
                format!(
                    "`{line}` did not finish within {} s and was killed",
                    timeout.as_secs()
                ),
            ));
        }
    };
    Ok(Outcome {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        line,
    })
}

/// Runs `program args…` with the default deadline and fails unless it exits 0.
pub async fn run<I, S>(resource: &str, program: &str, args: I) -> Result<Outcome, ProviderError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = probe(resource, program, args, DEFAULT_TIMEOUT).await?;
    if out.success() {
        Ok(out)
    } else {
        Err(out.error(resource))
    }
}

/// Shell-style quoting for messages only (arguments are never passed through a shell).
fn quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failure_names_resource_command_status_and_stderr() {
        let out = probe(
            "lab_network",
            "sh",
            ["-c", "echo boom >&2; exit 3"],
            DEFAULT_TIMEOUT,
        )
        .await
        .expect("sh runs");
        let msg = out.error("lab_network").to_string();
        assert!(msg.starts_with("lab_network: `sh -c"), "{msg}");
        assert!(msg.contains("exit status 3: boom"), "{msg}");
    }

    #[tokio::test]
    async fn deadline_kills() {
        let err = probe("x", "sleep", ["5"], Duration::from_millis(100))
            .await
            .expect_err("times out");
        assert!(err.to_string().contains("did not finish"), "{err}");
    }

    #[tokio::test]
    async fn missing_program_points_at_the_setup_script() {
        let err = run("x", "/nonexistent/tool", ["a"])
            .await
            .expect_err("missing");
        assert!(err.to_string().contains("setup-test-deps.sh"), "{err}");
    }

    #[test]
    fn children_never_inherit_a_secret_variable() {
        let c = command("true");
        let envs: Vec<_> = c.as_std().get_envs().collect();
        for v in SECRET_ENV {
            assert!(envs.contains(&(OsStr::new(v), None)), "{v} is not removed");
        }
        // Every command of the local target is built by `command`.
        let src = include_str!("cmd.rs");
        assert_eq!(src.matches(concat!("Command", "::new(")).count(), 1);
    }
}
