//! The SSH layer (russh, built ed25519-only): connect with a deadline, authenticate with a key
//! file or the keys of ssh-agent (which also signs RSA keys, with rsa-sha2), pin host keys per
//! cluster, and run commands with a deadline while their output streams to the caller.
//!
//! Host keys: the cluster's `known_hosts` file is filled on first contact (or beforehand, by a
//! provider that knows the keys); a key that differs from the pinned one is a hard error that
//! names the host and both fingerprints. Nothing here ever accepts an unknown key silently for a
//! host that has one pinned.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey};
use russh::{ChannelMsg, Disconnect};

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host's name, for messages.
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: String,
}

/// How to authenticate: the key file first, then every key of the agent.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub key_file: Option<PathBuf>,
    pub agent: bool,
    /// The agent's socket; `None` reads `SSH_AUTH_SOCK` as ssh does.
    pub agent_socket: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct SshOptions {
    pub known_hosts: PathBuf,
    pub credentials: Credentials,
    /// For the TCP connect and the SSH handshake together.
    pub connect_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("{host} ({address}): connection refused: nothing listens on port {port}")]
    Refused {
        host: String,
        address: String,
        port: u16,
    },
    #[error("{host} ({address}): no answer within {secs:.0} s on port {port}")]
    Timeout {
        host: String,
        address: String,
        port: u16,
        secs: f64,
    },
    #[error("{host} ({address}): cannot connect: {message}")]
    Connect {
        host: String,
        address: String,
        message: String,
    },
    #[error(
        "{host} ({address}): HOST KEY CHANGED: pinned {pinned} in {}, offered {offered}. Someone may be intercepting the connection, or the host was rebuilt; if you know it was rebuilt, delete its line from that file",
        known_hosts.display()
    )]
    HostKeyChanged {
        host: String,
        address: String,
        pinned: String,
        offered: String,
        known_hosts: PathBuf,
    },
    #[error("{host} ({address}): login as {user} refused (tried: {tried})")]
    AuthFailed {
        host: String,
        address: String,
        user: String,
        tried: String,
    },
    #[error("cannot use the key {}: {message}", path.display())]
    Key { path: PathBuf, message: String },
    #[error("{host}: `{command}` did not finish within {secs:.0} s")]
    CommandTimeout {
        host: String,
        command: String,
        secs: f64,
    },
    #[error("{host}: `{command}`: {message}")]
    Channel {
        host: String,
        command: String,
        message: String,
    },
}

/// Which stream a chunk of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// What a finished command left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub status: u32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Serialises appends to known_hosts files across parallel connections.
static LEARN: Mutex<()> = Mutex::new(());

/// The russh handler: checks the offered host key against the pinned one.
struct Pinning {
    known_hosts: PathBuf,
    address: String,
    port: u16,
    /// Set when the key does not match, so `connect` can say which keys.
    mismatch: Arc<Mutex<Option<(String, String)>>>,
}

impl client::Handler for Pinning {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } = offered else {
            // Host certificates are not pinned here; refuse rather than trust blindly.
            return Ok(false);
        };
        let pinned = pinned_keys(&self.known_hosts, &self.address, self.port);
        if pinned.is_empty() {
            // First contact: pin it.
            let _guard = LEARN.lock().unwrap_or_else(|e| e.into_inner());
            // Another connection to the same host may have pinned it meanwhile.
            let again = pinned_keys(&self.known_hosts, &self.address, self.port);
            if again.is_empty() {
                if let Some(dir) = self.known_hosts.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                russh::keys::known_hosts::learn_known_hosts_path(
                    &self.address,
                    self.port,
                    key,
                    &self.known_hosts,
                )?;
                return Ok(true);
            }
            return Ok(check(&again, key, &self.mismatch));
        }
        Ok(check(&pinned, key, &self.mismatch))
    }
}

fn check(
    pinned: &[PublicKey],
    offered: &PublicKey,
    mismatch: &Mutex<Option<(String, String)>>,
) -> bool {
    if pinned.iter().any(|k| k.key_data() == offered.key_data()) {
        return true;
    }
    let fp = |k: &PublicKey| k.fingerprint(HashAlg::Sha256).to_string();
    *mismatch.lock().unwrap_or_else(|e| e.into_inner()) = Some((fp(&pinned[0]), fp(offered)));
    false
}

fn pinned_keys(file: &Path, address: &str, port: u16) -> Vec<PublicKey> {
    russh::keys::known_hosts::known_host_keys_path(address, port, file)
        .map(|v| v.into_iter().map(|(_, k)| k).collect())
        .unwrap_or_default()
}

/// One authenticated connection, reused for every command on that host.
pub struct Session {
    handle: client::Handle<Pinning>,
    pub target: Target,
}

impl Session {
    pub async fn connect(target: &Target, opts: &SshOptions) -> Result<Session, SshError> {
        let mismatch = Arc::new(Mutex::new(None));
        let handler = Pinning {
            known_hosts: opts.known_hosts.clone(),
            address: target.address.clone(),
            port: target.port,
            mismatch: mismatch.clone(),
        };
        let config = Arc::new(client::Config {
            // A dead host is noticed within a minute even in the middle of a long command.
            keepalive_interval: Some(Duration::from_secs(15)),
            keepalive_max: 4,
            nodelay: true,
            ..client::Config::default()
        });
        let addr = (target.address.as_str(), target.port);
        let connecting = client::connect(config, addr, handler);
        let handle = match tokio::time::timeout(opts.connect_timeout, connecting).await {
            Err(_) => {
                return Err(SshError::Timeout {
                    host: target.name.clone(),
                    address: target.address.clone(),
                    port: target.port,
                    secs: opts.connect_timeout.as_secs_f64(),
                });
            }
            Ok(Ok(h)) => h,
            Ok(Err(e)) => {
                if let Some((pinned, offered)) =
                    mismatch.lock().unwrap_or_else(|e| e.into_inner()).take()
                {
                    return Err(SshError::HostKeyChanged {
                        host: target.name.clone(),
                        address: target.address.clone(),
                        pinned,
                        offered,
                        known_hosts: opts.known_hosts.clone(),
                    });
                }
                return Err(connect_error(target, e));
            }
        };
        let mut session = Session {
            handle,
            target: target.clone(),
        };
        session.authenticate(&opts.credentials).await?;
        Ok(session)
    }

    async fn authenticate(&mut self, creds: &Credentials) -> Result<(), SshError> {
        let user = self.target.user.clone();
        let mut tried = Vec::new();
        if let Some(path) = &creds.key_file {
            let key = load_key(path)?;
            let result = self
                .handle
                .authenticate_publickey(
                    user.clone(),
                    PrivateKeyWithHashAlg::new(Arc::new(key), None),
                )
                .await
                .map_err(|e| self.channel_error("authenticate", e))?;
            if result.success() {
                return Ok(());
            }
            tried.push(format!("key {}", path.display()));
        }
        if creds.agent {
            let connected = match &creds.agent_socket {
                Some(sock) => russh::keys::agent::client::AgentClient::connect_uds(sock)
                    .await
                    .map(|a| a.dynamic()),
                None => russh::keys::agent::client::AgentClient::connect_env()
                    .await
                    .map(|a| a.dynamic()),
            };
            let mut agent = connected
                .map_err(|e| SshError::Key {
                    path: PathBuf::from("$SSH_AUTH_SOCK"),
                    message: format!("cannot reach ssh-agent: {e}; start it with `eval \"$(ssh-agent -s)\"` and `ssh-add`"),
                })?;
            let identities = agent
                .request_identities()
                .await
                .map_err(|e| SshError::Key {
                    path: PathBuf::from("$SSH_AUTH_SOCK"),
                    message: format!("ssh-agent: {e}"),
                })?;
            // RSA keys sign with rsa-sha2-512/256 as the server announces (OpenSSH >= 8.8
            // refuses SHA-1 `ssh-rsa`).
            let rsa_hash = self
                .handle
                .best_supported_rsa_hash()
                .await
                .ok()
                .flatten()
                .flatten();
            for id in identities {
                let russh::keys::agent::AgentIdentity::PublicKey { key, comment } = id else {
                    continue;
                };
                let hash = if key.algorithm().is_rsa() {
                    rsa_hash.or(Some(HashAlg::Sha512))
                } else {
                    None
                };
                let result = self
                    .handle
                    .authenticate_publickey_with(user.clone(), key.clone(), hash, &mut agent)
                    .await;
                match result {
                    Ok(r) if r.success() => return Ok(()),
                    _ => tried.push(format!("agent key {comment:?} ({})", key.algorithm())),
                }
            }
            if tried.is_empty() {
                tried.push("ssh-agent (it holds no keys: run `ssh-add`)".into());
            }
        }
        Err(SshError::AuthFailed {
            host: self.target.name.clone(),
            address: self.target.address.clone(),
            user,
            tried: if tried.is_empty() {
                "no credentials configured".into()
            } else {
                tried.join(", ")
            },
        })
    }

    /// Runs `command` (through the login user's shell), feeding `stdin` and reporting output as
    /// it arrives, and fails when it has not finished within `deadline`. A command that ends
    /// without an exit status (killed by a signal) is an error, never taken for success.
    pub async fn exec(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
        deadline: Duration,
        mut on_output: impl FnMut(Stream, &[u8]) + Send,
    ) -> Result<Output, SshError> {
        let run = async {
            let mut channel = self
                .handle
                .channel_open_session()
                .await
                .map_err(|e| self.channel_error(command, e))?;
            channel
                .exec(true, command)
                .await
                .map_err(|e| self.channel_error(command, e))?;
            if let Some(input) = stdin {
                channel
                    .data(input)
                    .await
                    .map_err(|e| self.channel_error(command, e))?;
            }
            channel
                .eof()
                .await
                .map_err(|e| self.channel_error(command, e))?;
            let mut out = Output {
                status: 0,
                stdout: Vec::new(),
                stderr: Vec::new(),
            };
            let mut status = None;
            let mut signal = None;
            // OpenSSH sends EOF before the exit status: read until the channel closes.
            while let Some(msg) = channel.wait().await {
                match msg {
                    ChannelMsg::Data { data } => {
                        on_output(Stream::Stdout, &data);
                        out.stdout.extend_from_slice(&data);
                    }
                    ChannelMsg::ExtendedData { data, ext: 1 } => {
                        on_output(Stream::Stderr, &data);
                        out.stderr.extend_from_slice(&data);
                    }
                    ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                    ChannelMsg::ExitSignal { signal_name, .. } => {
                        signal = Some(format!("{signal_name:?}"))
                    }
                    _ => {}
                }
            }
            match (status, signal) {
                (Some(s), _) => {
                    out.status = s;
                    Ok(out)
                }
                (None, Some(sig)) => Err(SshError::Channel {
                    host: self.target.name.clone(),
                    command: command.to_string(),
                    message: format!("killed by signal {sig}"),
                }),
                (None, None) => Err(SshError::Channel {
                    host: self.target.name.clone(),
                    command: command.to_string(),
                    message: "the channel closed without an exit status".into(),
                }),
            }
        };
        match tokio::time::timeout(deadline, run).await {
            Ok(r) => r,
            Err(_) => Err(SshError::CommandTimeout {
                host: self.target.name.clone(),
                command: command.to_string(),
                secs: deadline.as_secs_f64(),
            }),
        }
    }

    /// Runs a command and collects its output.
    pub async fn run(&self, command: &str, deadline: Duration) -> Result<Output, SshError> {
        self.exec(command, None, deadline, |_, _| {}).await
    }

    /// Writes `contents` to `path` on the host atomically (temporary file, then rename) with
    /// `mode`, through the command's standard input: the contents never appear in a command line.
    pub async fn write_file(
        &self,
        path: &str,
        contents: &[u8],
        mode: u32,
        sudo: bool,
        deadline: Duration,
    ) -> Result<(), SshError> {
        let q = shell_quote(path);
        let tmp = shell_quote(&format!("{path}.acura-ha.tmp"));
        let prefix = if sudo { "sudo -n " } else { "" };
        let cmd = format!(
            "{prefix}sh -c 'umask 077 && cat > {tmp} && chmod {mode:o} {tmp} && mv -f {tmp} {q}'",
            tmp = tmp.replace('\'', "'\\''"),
            q = q.replace('\'', "'\\''"),
        );
        let out = self.exec(&cmd, Some(contents), deadline, |_, _| {}).await?;
        if out.status != 0 {
            return Err(SshError::Channel {
                host: self.target.name.clone(),
                command: format!("write {path}"),
                message: format!("exit {}: {}", out.status, out.stderr_text().trim()),
            });
        }
        Ok(())
    }

    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
    }

    fn channel_error(&self, command: &str, e: russh::Error) -> SshError {
        SshError::Channel {
            host: self.target.name.clone(),
            command: command.to_string(),
            message: e.to_string(),
        }
    }
}

fn connect_error(target: &Target, e: russh::Error) -> SshError {
    if let russh::Error::IO(io) = &e {
        match io.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                return SshError::Refused {
                    host: target.name.clone(),
                    address: target.address.clone(),
                    port: target.port,
                };
            }
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::HostUnreachable => {
                return SshError::Connect {
                    host: target.name.clone(),
                    address: target.address.clone(),
                    message: format!(
                        "{io} (is the host up, and does the security group admit port {} from here?)",
                        target.port
                    ),
                };
            }
            _ => {}
        }
    }
    SshError::Connect {
        host: target.name.clone(),
        address: target.address.clone(),
        message: e.to_string(),
    }
}

fn load_key(path: &Path) -> Result<russh::keys::PrivateKey, SshError> {
    let expanded = expand_home(path);
    russh::keys::load_secret_key(&expanded, None).map_err(|e| SshError::Key {
        path: expanded.clone(),
        message: match e {
            russh::keys::Error::KeyIsEncrypted => {
                "it is protected by a password: load it into ssh-agent (`ssh-add`) and set access.ssh_agent = true".into()
            }
            russh::keys::Error::UnsupportedKeyType { .. } => {
                format!("{e}: this build signs with ed25519 key files; load RSA keys into ssh-agent (`ssh-add`) and set access.ssh_agent = true")
            }
            other => other.to_string(),
        },
    })
}

/// `~/x` → `$HOME/x`.
pub fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}

/// Single-quotes for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
