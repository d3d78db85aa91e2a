//! The SSH layer (russh): connect with a deadline, authenticate with a key file or the keys of
//! ssh-agent, pin host keys per cluster, and run commands with a deadline while their output
//! streams to the caller.
//!
//! Algorithms are OpenSSH's client defaults as far as russh has them ([`preferred`]): host keys
//! ed25519, ECDSA and RSA (rsa-sha2-512/256); key exchange with the NIST curves after the modern
//! ones, so a FIPS-mode sshd is reached too.
//!
//! Key files of every common kind are read here ([`load_key`]): ed25519, ECDSA and RSA in OpenSSH,
//! PEM (PKCS#1 / SEC1, also with OpenSSL's legacy encryption) and PKCS#8 (plain or encrypted)
//! format. A passphrase comes from `ACURA_HA_SSH_KEY_PASSPHRASE` or is asked for on the terminal;
//! with neither the key is refused at once, saying so. RSA keys sign through aws-lc-rs (a
//! [`russh::Signer`] of our own): no RSA private-key operation runs in the `rsa` crate
//! (RUSTSEC-2023-0071), which russh links only to verify RSA host keys.
//!
//! Host keys: the cluster's `known_hosts` file is filled on first contact (or beforehand, by a
//! provider that knows the keys); a key that differs from the pinned one is a hard error that
//! names the host and both fingerprints. The file fails closed: one that cannot be read, or a
//! line that does not parse, is an error naming the file and line, never "nothing pinned".

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::signature::{KeyPair as _, RsaKeyPair};
use russh::client;
use russh::keys::ssh_key::private::KeypairData;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey, ssh_key};
use russh::{ChannelMsg, Disconnect, MethodKind, MethodSet};

mod algorithms;
mod keys;
mod known_hosts;

pub use algorithms::*;
pub use keys::*;
use known_hosts::*;
pub use known_hosts::{HostKeyTrust, is_pinned};

/// Where a key file's passphrase may come from when there is no terminal to ask on (never a
/// command-line argument: those show in `ps`).
pub const PASSPHRASE_ENV: &str = "ACURA_HA_SSH_KEY_PASSPHRASE";

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
    /// Nothing was pinned and the cloud's console printed other keys than the one offered.
    #[error(
        "{host} ({address}): HOST KEY NOT THE ONE THE CLOUD REPORTED: offered {offered}, the server's console printed {vouched}. Someone may be intercepting the connection (the address leads to another machine), or the server's host keys were regenerated after the boot that printed them; compare with the console log now (`aws ec2 get-console-output --instance-id …` or `openstack console log show …`) and with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the server's own console. Nothing was logged in to"
    )]
    HostKeyNotVouched {
        host: String,
        address: String,
        offered: String,
        /// The console's fingerprints, comma-separated.
        vouched: String,
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
    /// The two sides share no algorithm of one kind: nothing heals this but a configuration change.
    #[error(
        "{host} ({address}): no common {kind}: the server offers {server}; acura-ha offers {ours}"
    )]
    NoCommonAlgorithm {
        host: String,
        address: String,
        /// `&'static str`: with one more `String` this variant would tie the largest and grow
        /// every `Result` that carries an `SshError` (clippy's `result_large_err`).
        kind: &'static str,
        server: String,
        ours: String,
    },
    /// The server's signature over the key exchange does not verify with the host key it sent.
    #[error("{host} ({address}): the host key does not verify: {message}")]
    HostKeyInvalid {
        host: String,
        address: String,
        message: String,
    },
    /// The server does not take key logins at all.
    #[error(
        "{host} ({address}): the server refuses key logins for {user}: it offers only {offered}; acura-ha logs in with a key (publickey)"
    )]
    AuthMethod {
        host: String,
        address: String,
        user: String,
        offered: String,
    },
    /// The known_hosts file cannot be read, written or parsed: nothing is trusted then.
    #[error("{host}: {}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    KnownHosts {
        host: String,
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
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

/// One authenticated connection, reused for every command on that host.
pub struct Session {
    handle: client::Handle<Pinning>,
    pub target: Target,
    /// How the host's key came to be trusted (pinned before, vouched by the cloud, first use).
    pub host_key: HostKeyTrust,
}

impl Session {
    pub async fn connect(target: &Target, opts: &SshOptions) -> Result<Session, SshError> {
        Session::connect_vouched(target, opts, &[]).await
    }

    /// Connects, trusting on first contact only a host key whose `SHA256:…` fingerprint is in
    /// `vouched` (what the cloud's console printed); with `vouched` empty the key is pinned on
    /// first use. A key already pinned is checked against the pin either way.
    pub async fn connect_vouched(
        target: &Target,
        opts: &SshOptions,
        vouched: &[String],
    ) -> Result<Session, SshError> {
        let rejected = Arc::new(Mutex::new(None));
        let trust = Arc::new(Mutex::new(None));
        let handler = Pinning {
            known_hosts: opts.known_hosts.clone(),
            address: target.address.clone(),
            port: target.port,
            vouched: vouched.to_vec(),
            rejected: rejected.clone(),
            trust: trust.clone(),
        };
        let config = Arc::new(client::Config {
            // A dead host is noticed within a minute even in the middle of a long command.
            keepalive_interval: Some(Duration::from_secs(15)),
            keepalive_max: 4,
            nodelay: true,
            preferred: preferred(),
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
                let why = rejected.lock().unwrap_or_else(|e| e.into_inner()).take();
                return Err(match why {
                    Some(Rejection::Changed { pinned, offered }) => SshError::HostKeyChanged {
                        host: target.name.clone(),
                        address: target.address.clone(),
                        pinned,
                        offered,
                        known_hosts: opts.known_hosts.clone(),
                    },
                    Some(Rejection::KnownHosts { line, message }) => SshError::KnownHosts {
                        host: format!("{} ({})", target.name, target.address),
                        path: opts.known_hosts.clone(),
                        line,
                        message,
                    },
                    Some(Rejection::NotVouched { offered, vouched }) => {
                        SshError::HostKeyNotVouched {
                            host: target.name.clone(),
                            address: target.address.clone(),
                            offered,
                            vouched: vouched.join(", "),
                        }
                    }
                    Some(Rejection::Certificate) => SshError::HostKeyInvalid {
                        host: target.name.clone(),
                        address: target.address.clone(),
                        message: "the server sent a host certificate, which acura-ha does not pin"
                            .into(),
                    },
                    None => connect_error(target, e),
                });
            }
        };
        let host_key = trust
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or(HostKeyTrust::Pinned);
        let mut session = Session {
            handle,
            target: target.clone(),
            host_key,
        };
        session.authenticate(&opts.credentials).await?;
        Ok(session)
    }

    async fn authenticate(&mut self, creds: &Credentials) -> Result<(), SshError> {
        let user = self.target.user.clone();
        let mut tried = Vec::new();
        if let Some(path) = &creds.key_file {
            let key = user_key(path).await?;
            let result = match &*key {
                UserKey::Native(k) => self
                    .handle
                    .authenticate_publickey(
                        user.clone(),
                        PrivateKeyWithHashAlg::new(k.clone(), None),
                    )
                    .await
                    .map_err(|e| self.channel_error("authenticate", e))?,
                UserKey::Rsa { public, signer } => {
                    let hash = self.rsa_hash().await;
                    self.handle
                        .authenticate_publickey_with(
                            user.clone(),
                            public.clone(),
                            Some(hash),
                            &mut signer.clone(),
                        )
                        .await
                        .map_err(|e| SshError::Channel {
                            host: self.target.name.clone(),
                            command: "authenticate".into(),
                            message: e.to_string(),
                        })?
                }
            };
            match result {
                client::AuthResult::Success => return Ok(()),
                client::AuthResult::Failure {
                    remaining_methods, ..
                } => self.methods_left(&remaining_methods, &user)?,
            }
            tried.push(format!("key {} ({})", path.display(), key.algorithm()));
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
            let rsa_hash = self.rsa_hash().await;
            for id in identities {
                let russh::keys::agent::AgentIdentity::PublicKey { key, comment } = id else {
                    continue;
                };
                let hash = key.algorithm().is_rsa().then_some(rsa_hash);
                let result = self
                    .handle
                    .authenticate_publickey_with(user.clone(), key.clone(), hash, &mut agent)
                    .await;
                match result {
                    Ok(client::AuthResult::Success) => return Ok(()),
                    Ok(client::AuthResult::Failure {
                        remaining_methods, ..
                    }) => self.methods_left(&remaining_methods, &user)?,
                    Err(_) => {}
                }
                tried.push(format!("agent key {comment:?} ({})", key.algorithm()));
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

    /// RSA keys sign with rsa-sha2-512 unless the server announces only rsa-sha2-256 (OpenSSH
    /// >= 8.8 refuses SHA-1 `ssh-rsa`, which is never used).
    async fn rsa_hash(&self) -> HashAlg {
        match self.handle.best_supported_rsa_hash().await {
            Ok(Some(Some(HashAlg::Sha256))) => HashAlg::Sha256,
            _ => HashAlg::Sha512,
        }
    }

    /// A refused key is worth retrying (cloud-init may not have installed it yet); a server that
    /// takes no key logins at all is not.
    fn methods_left(&self, remaining: &MethodSet, user: &str) -> Result<(), SshError> {
        if remaining.is_empty() || remaining.contains(&MethodKind::PublicKey) {
            return Ok(());
        }
        Err(SshError::AuthMethod {
            host: self.target.name.clone(),
            address: self.target.address.clone(),
            user: user.to_string(),
            offered: remaining
                .iter()
                .map(<&str>::from)
                .collect::<Vec<_>>()
                .join(", "),
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
    match &e {
        russh::Error::IO(io) => match io.kind() {
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
        },
        russh::Error::NoCommonAlgo { kind, ours, theirs } => {
            let kind = match kind {
                russh::AlgorithmKind::Kex => "key exchange algorithm",
                russh::AlgorithmKind::Key => "host key algorithm",
                russh::AlgorithmKind::Cipher => "cipher",
                russh::AlgorithmKind::Mac => "MAC",
                russh::AlgorithmKind::Compression => "compression",
            };
            // The extension pseudo-algorithms (ext-info-c, kex-strict-…) are no choice of anyone's.
            let list = |names: &[String]| {
                let real: Vec<&str> = names
                    .iter()
                    .map(String::as_str)
                    .filter(|n| !n.starts_with("ext-info-") && !n.starts_with("kex-strict-"))
                    .collect();
                if real.is_empty() {
                    "none".to_string()
                } else {
                    real.join(", ")
                }
            };
            return SshError::NoCommonAlgorithm {
                host: target.name.clone(),
                address: target.address.clone(),
                kind,
                server: match list(theirs).as_str() {
                    "none" => "none".to_string(),
                    some => format!("only {some}"),
                },
                ours: list(ours),
            };
        }
        russh::Error::WrongServerSig => {
            return SshError::HostKeyInvalid {
                host: target.name.clone(),
                address: target.address.clone(),
                message: "its signature over the key exchange does not match the host key it sent (a broken server, or someone intercepting the connection)".into(),
            };
        }
        _ => {}
    }
    SshError::Connect {
        host: target.name.clone(),
        address: target.address.clone(),
        message: e.to_string(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const ED2: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIA6rWI3G2sz07DnfFlrouTcysQlj2P+jpNSOEWD9OJ3X";

    fn key(b64: &str) -> PublicKey {
        PublicKey::from_openssh(&format!("ssh-ed25519 {b64}")).unwrap()
    }

    #[test]
    fn known_hosts_lines_that_do_not_parse_are_errors_with_their_line() {
        for (text, line) in [
            (
                format!("# c\n\n10.0.0.1 ssh-ed25519 {ED}\n10.0.0.2 ssh-ed25519 AAAA\n"),
                4,
            ),
            ("10.0.0.1 ssh-ed25519\n".to_string(), 1),
            (format!("10.0.0.1 ssh-rsa {ED}\n"), 1),
            (format!("@bogus 10.0.0.1 ssh-ed25519 {ED}\n"), 1),
            (format!("|1|not-base64|x ssh-ed25519 {ED}\n"), 1),
        ] {
            let (l, why) = KnownHosts::parse(&text).unwrap_err();
            assert_eq!(l, Some(line), "{text}: {why}");
            assert!(why.contains("fix or delete this line"), "{why}");
        }
    }

    #[test]
    fn known_hosts_match_plain_ports_hashed_wildcards_and_negation() {
        // `|1|…` is 10.0.0.9 hashed (HMAC-SHA1 with the salt), as `ssh-keygen -H` writes it.
        let salt = [7u8; 20];
        let mac = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt),
            b"10.0.0.9",
        );
        let b64 = data_encoding::BASE64;
        let hashed = format!("|1|{}|{}", b64.encode(&salt), b64.encode(mac.as_ref()));
        let text = format!(
            "10.0.0.1 ssh-ed25519 {ED}\n[10.0.0.1]:2222 ssh-ed25519 {ED2}\n{hashed} ssh-ed25519 {ED2}\n\
             10.1.*,!10.1.0.5 ssh-ed25519 {ED}\n@cert-authority * ssh-ed25519 {ED2}\n"
        );
        let kh = KnownHosts::parse(&text).unwrap();
        let offered = key(ED);
        let pins = |a: &str, p: u16| kh.pins(a, p, &offered).unwrap();
        assert_eq!(pins("10.0.0.1", 22), vec![key(ED)]);
        assert_eq!(pins("10.0.0.1", 2222), vec![key(ED2)]);
        assert_eq!(pins("10.0.0.9", 22), vec![key(ED2)]);
        assert_eq!(pins("10.1.3.4", 22), vec![key(ED)]);
        assert!(pins("10.1.0.5", 22).is_empty());
        assert!(pins("10.0.0.2", 22).is_empty());
    }

    #[test]
    fn a_revoked_key_is_refused_naming_the_line() {
        let kh = KnownHosts::parse(&format!("@revoked 10.0.0.1 ssh-ed25519 {ED}\n")).unwrap();
        match kh.pins("10.0.0.1", 22, &key(ED)) {
            Err(Rejection::KnownHosts {
                line: Some(1),
                message,
            }) => {
                assert!(message.contains("@revoked"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert!(kh.pins("10.0.0.1", 22, &key(ED2)).unwrap().is_empty());
    }

    #[test]
    fn acura_ha_offers_openssh_defaults_with_nist_kex_after_the_modern_ones() {
        let p = preferred();
        let kex: Vec<&str> = p.kex.iter().map(|k| k.as_ref()).collect();
        let at = |n: &str| kex.iter().position(|k| *k == n).unwrap();
        assert!(at("curve25519-sha256") < at("ecdh-sha2-nistp256"));
        assert!(at("ecdh-sha2-nistp256") < at("ecdh-sha2-nistp384"));
        assert!(at("ecdh-sha2-nistp521") < at("diffie-hellman-group-exchange-sha256"));
        let keys: Vec<String> = p.key.iter().map(|a| a.to_string()).collect();
        assert!(keys.contains(&"rsa-sha2-512".to_string()));
        assert!(
            !keys.contains(&"ssh-rsa".to_string()),
            "no SHA-1 host signatures"
        );
        let ciphers: Vec<&str> = p.cipher.iter().map(|c| c.as_ref()).collect();
        assert_eq!(ciphers[0], "chacha20-poly1305@openssh.com");
        assert!(ciphers.contains(&"aes128-gcm@openssh.com"));
    }

    fn test_rsa() -> RsaKeyPair {
        // Generated at test time by aws-lc itself: no key material in the tree.
        let doc = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        use aws_lc_rs::encoding::AsDer;
        let der = doc.as_der().unwrap();
        RsaKeyPair::from_pkcs8(der.as_ref()).unwrap()
    }

    #[test]
    fn rsa_signatures_are_sha2_and_verify() {
        use aws_lc_rs::signature::{
            RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_2048_8192_SHA512, UnparsedPublicKey,
        };
        let pair = test_rsa();
        for (hash, name, alg) in [
            (
                Some(HashAlg::Sha256),
                "rsa-sha2-256",
                &RSA_PKCS1_2048_8192_SHA256,
            ),
            (
                Some(HashAlg::Sha512),
                "rsa-sha2-512",
                &RSA_PKCS1_2048_8192_SHA512,
            ),
            (None, "rsa-sha2-512", &RSA_PKCS1_2048_8192_SHA512),
        ] {
            let data = b"session id and userauth request".to_vec();
            let out = rsa_sign(&pair, hash, data.clone()).unwrap();
            assert_eq!(&out[..data.len()], &data[..]);
            // string(string(name) string(sig))
            fn take(r: &mut &[u8]) -> Vec<u8> {
                let n = u32::from_be_bytes(r[..4].try_into().unwrap()) as usize;
                let v = r[4..4 + n].to_vec();
                *r = &r[4 + n..];
                v
            }
            let mut rest = &out[data.len()..];
            let blob = take(&mut rest);
            assert!(rest.is_empty());
            let mut b = blob.as_slice();
            assert_eq!(take(&mut b), name.as_bytes());
            let sig = take(&mut b);
            UnparsedPublicKey::new(alg, pair.public_key().as_ref())
                .verify(&data, &sig)
                .expect("the signature verifies");
        }
    }

    #[test]
    fn rsa_public_half_and_crt_exponents() {
        // The public half round-trips into an SSH key, and the CRT exponents computed for
        // OpenSSH-format keys give a key aws-lc accepts (it checks them).
        let pair = test_rsa();
        let UserKey::Rsa { public, .. } = rsa_key(pair).map_err(|_| ()).unwrap() else {
            panic!("not RSA")
        };
        assert!(public.algorithm().is_rsa());
        // 256 mod (11 - 1) = 6, leading zeros allowed.
        let dp = crt_exponent(&[0x01, 0x00], &[0x0b]).unwrap();
        assert_eq!(dp.last(), Some(&6));
        assert!(dp[..dp.len() - 1].iter().all(|b| *b == 0));
    }

    #[test]
    fn permanent_connect_errors_say_which_side_lacks_what() {
        let t = Target {
            name: "node-1".into(),
            address: "10.0.0.5".into(),
            port: 22,
            user: "ubuntu".into(),
        };
        let e = connect_error(
            &t,
            russh::Error::NoCommonAlgo {
                kind: russh::AlgorithmKind::Key,
                ours: vec!["ssh-ed25519".into(), "rsa-sha2-512".into()],
                theirs: vec!["ssh-rsa".into()],
            },
        );
        assert_eq!(
            e.to_string(),
            "node-1 (10.0.0.5): no common host key algorithm: the server offers only ssh-rsa; acura-ha offers ssh-ed25519, rsa-sha2-512"
        );
        let e = connect_error(
            &t,
            russh::Error::NoCommonAlgo {
                kind: russh::AlgorithmKind::Kex,
                ours: vec!["curve25519-sha256".into(), "ext-info-c".into()],
                theirs: vec!["kex-strict-s-v00@openssh.com".into()],
            },
        );
        assert!(
            e.to_string()
                .ends_with("the server offers none; acura-ha offers curve25519-sha256"),
            "{e}"
        );
        let e = connect_error(&t, russh::Error::WrongServerSig);
        assert!(matches!(e, SshError::HostKeyInvalid { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with("node-1 (10.0.0.5): the host key does not verify")
        );
    }

    #[test]
    fn passphrase_problems_are_said_plainly() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k");
        std::fs::write(&f, "ssh-ed25519 AAAA… me@host\n").unwrap();
        let e = load_key(&f, &mut |_| Err(Ask::Stop)).unwrap_err();
        assert!(e.contains(".pub file"), "{e}");
        std::fs::write(&f, "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: DES-EDE3-CBC,0011223344556677\n\nAAAA\n-----END RSA PRIVATE KEY-----\n").unwrap();
        let e = load_key(&f, &mut |_| Ok("x".into())).unwrap_err();
        assert!(
            e.contains("DES-EDE3-CBC") && e.contains("ssh-keygen -p"),
            "{e}"
        );
        let e = load_key(&dir.path().join("missing"), &mut |_| Ok("x".into())).unwrap_err();
        assert!(e.starts_with("cannot read it"), "{e}");
    }
}
