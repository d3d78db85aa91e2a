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

/// Where a key file's passphrase may come from when there is no terminal to ask on (never a
/// command-line argument: those show in `ps`).
pub const PASSPHRASE_ENV: &str = "ACURA_HA_SSH_KEY_PASSPHRASE";

/// Key exchange: OpenSSH's client order (post-quantum and curve25519 first, then the NIST curves
/// a FIPS-mode server is limited to, then finite-field Diffie-Hellman), plus the extension names.
const KEX_ORDER: &[russh::kex::Name] = &[
    russh::kex::MLKEM768X25519_SHA256,
    russh::kex::CURVE25519,
    russh::kex::CURVE25519_PRE_RFC_8731,
    russh::kex::ECDH_SHA2_NISTP256,
    russh::kex::ECDH_SHA2_NISTP384,
    russh::kex::ECDH_SHA2_NISTP521,
    russh::kex::DH_GEX_SHA256,
    russh::kex::DH_G16_SHA512,
    russh::kex::DH_G18_SHA512,
    russh::kex::DH_G14_SHA256,
    russh::kex::DH_G17_SHA512,
    russh::kex::DH_G15_SHA512,
    russh::kex::EXTENSION_SUPPORT_AS_CLIENT,
    russh::kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
];

/// Host-key algorithms: OpenSSH's (>= 8.8) client defaults; SHA-1 `ssh-rsa` is not offered.
const HOST_KEY_ORDER: &[ssh_key::Algorithm] = &[
    ssh_key::Algorithm::Ed25519,
    ssh_key::Algorithm::Ecdsa {
        curve: ssh_key::EcdsaCurve::NistP256,
    },
    ssh_key::Algorithm::Ecdsa {
        curve: ssh_key::EcdsaCurve::NistP384,
    },
    ssh_key::Algorithm::Ecdsa {
        curve: ssh_key::EcdsaCurve::NistP521,
    },
    ssh_key::Algorithm::Rsa {
        hash: Some(HashAlg::Sha512),
    },
    ssh_key::Algorithm::Rsa {
        hash: Some(HashAlg::Sha256),
    },
];

/// Ciphers: OpenSSH's client defaults, in its order.
const CIPHER_ORDER: &[russh::cipher::Name] = &[
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_128_CTR,
    russh::cipher::AES_192_CTR,
    russh::cipher::AES_256_CTR,
    russh::cipher::AES_128_GCM,
    russh::cipher::AES_256_GCM,
];

/// MACs: OpenSSH's client defaults that russh implements (it has no UMAC), in OpenSSH's order.
const MAC_ORDER: &[russh::mac::Name] = &[
    russh::mac::HMAC_SHA256_ETM,
    russh::mac::HMAC_SHA512_ETM,
    russh::mac::HMAC_SHA1_ETM,
    russh::mac::HMAC_SHA256,
    russh::mac::HMAC_SHA512,
    russh::mac::HMAC_SHA1,
];

/// The algorithms acura-ha offers.
pub fn preferred() -> russh::Preferred {
    russh::Preferred {
        kex: KEX_ORDER.into(),
        key: HOST_KEY_ORDER.into(),
        cipher: CIPHER_ORDER.into(),
        mac: MAC_ORDER.into(),
        ..russh::Preferred::DEFAULT
    }
}

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

/// Serialises appends to known_hosts files across parallel connections.
static LEARN: Mutex<()> = Mutex::new(());

/// Why the handler refused the host's key, for `connect` to report.
#[derive(Debug)]
enum Rejection {
    Changed {
        pinned: String,
        offered: String,
    },
    KnownHosts {
        line: Option<usize>,
        message: String,
    },
    Certificate,
}

/// The russh handler: checks the offered host key against the pinned one.
struct Pinning {
    known_hosts: PathBuf,
    address: String,
    port: u16,
    /// Set when the key is refused, so `connect` can say why.
    rejected: Arc<Mutex<Option<Rejection>>>,
}

impl client::Handler for Pinning {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let verdict = match offered {
            russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } => self.verdict(key),
            // Host certificates are not pinned here; refuse rather than trust blindly.
            _ => Err(Rejection::Certificate),
        };
        match verdict {
            Ok(()) => Ok(true),
            Err(r) => {
                *self.rejected.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                Ok(false)
            }
        }
    }
}

impl Pinning {
    fn verdict(&self, offered: &PublicKey) -> Result<(), Rejection> {
        let known = |file: &Path| {
            KnownHosts::read(file)
                .map_err(|(line, message)| Rejection::KnownHosts { line, message })
        };
        let mut pins = known(&self.known_hosts)?.pins(&self.address, self.port, offered)?;
        if pins.is_empty() {
            // First contact: pin it, unless another connection to the same host did meanwhile.
            let _guard = LEARN.lock().unwrap_or_else(|e| e.into_inner());
            pins = known(&self.known_hosts)?.pins(&self.address, self.port, offered)?;
            if pins.is_empty() {
                russh::keys::known_hosts::learn_known_hosts_path(
                    &self.address,
                    self.port,
                    offered,
                    &self.known_hosts,
                )
                .map_err(|e| Rejection::KnownHosts {
                    line: None,
                    message: format!("cannot record the host key of {}: {e}", self.address),
                })?;
                return Ok(());
            }
        }
        if pins.iter().any(|k| k.key_data() == offered.key_data()) {
            return Ok(());
        }
        Err(Rejection::Changed {
            pinned: fingerprint(&pins[0]),
            offered: fingerprint(offered),
        })
    }
}

fn fingerprint(k: &PublicKey) -> String {
    k.fingerprint(HashAlg::Sha256).to_string()
}

/// One line of a known_hosts file.
#[derive(Debug)]
struct KnownHost {
    line: usize,
    marker: Option<String>,
    patterns: String,
    key: PublicKey,
}

/// A parsed known_hosts file (OpenSSH's format: plain, `[host]:port`, hashed `|1|` names,
/// `*`/`?` wildcards and `!` negation; `@revoked` and `@cert-authority` markers).
#[derive(Debug, Default)]
struct KnownHosts(Vec<KnownHost>);

impl KnownHosts {
    /// Reads every line: a missing file is empty, anything else that fails is `(line, why)`.
    fn read(file: &Path) -> Result<KnownHosts, (Option<usize>, String)> {
        let text = match std::fs::read(file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(KnownHosts::default()),
            Err(e) => {
                return Err((
                    None,
                    format!(
                        "cannot read the pinned host keys: {e}; no host key is trusted until it can be read"
                    ),
                ));
            }
        };
        let text = String::from_utf8(text).map_err(|e| {
            (
                None,
                format!("not text (UTF-8): {e}; fix or delete the file"),
            )
        })?;
        KnownHosts::parse(&text)
    }

    fn parse(text: &str) -> Result<KnownHosts, (Option<usize>, String)> {
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let content = raw.trim();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let bad = |why: String| {
                (
                    Some(line),
                    format!("{why}: fix or delete this line (a pinned host key is never skipped)"),
                )
            };
            let mut fields = content.split_whitespace();
            let mut first = fields.next().unwrap_or_default();
            let marker = if first.starts_with('@') {
                if first != "@revoked" && first != "@cert-authority" {
                    return Err(bad(format!("unknown marker {first:?}")));
                }
                let m = first.to_string();
                first = fields.next().unwrap_or_default();
                Some(m)
            } else {
                None
            };
            let (Some(kind), Some(blob)) = (fields.next(), fields.next()) else {
                return Err(bad("not `HOSTS KEY-TYPE BASE64-KEY`".into()));
            };
            for pattern in first.split(',') {
                if let Some(hashed) = pattern.strip_prefix("|1|") {
                    if parse_hashed(hashed).is_none() {
                        return Err(bad(format!(
                            "a hashed host name that does not parse ({pattern:?})"
                        )));
                    }
                } else if pattern.is_empty() {
                    return Err(bad("an empty host name".into()));
                }
            }
            let key = PublicKey::from_openssh(&format!("{kind} {blob}"))
                .map_err(|e| bad(format!("the {kind} key does not parse ({e})")))?;
            entries.push(KnownHost {
                line,
                marker,
                patterns: first.to_string(),
                key,
            });
        }
        Ok(KnownHosts(entries))
    }

    /// The keys pinned for `address:port`; a pinned key marked `@revoked` that is offered is
    /// refused outright.
    fn pins(
        &self,
        address: &str,
        port: u16,
        offered: &PublicKey,
    ) -> Result<Vec<PublicKey>, Rejection> {
        let name = if port == 22 {
            address.to_string()
        } else {
            format!("[{address}]:{port}")
        };
        let mut pins = Vec::new();
        for e in self.0.iter().filter(|e| host_matches(&e.patterns, &name)) {
            match e.marker.as_deref() {
                Some("@revoked") if e.key.key_data() == offered.key_data() => {
                    return Err(Rejection::KnownHosts {
                        line: Some(e.line),
                        message: format!(
                            "the key {address} offers ({}) is marked @revoked here",
                            fingerprint(offered)
                        ),
                    });
                }
                Some(_) => {}
                None => pins.push(e.key.clone()),
            }
        }
        Ok(pins)
    }
}

/// `salt|hash` of a hashed name, both base64.
fn parse_hashed(s: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    let (salt, hash) = s.split_once('|')?;
    let b64 = data_encoding::BASE64;
    Some((
        b64.decode(salt.as_bytes()).ok()?,
        b64.decode(hash.as_bytes()).ok()?,
    ))
}

/// OpenSSH's host matching: any positive pattern matches and no negated one does.
fn host_matches(patterns: &str, name: &str) -> bool {
    let mut matched = false;
    for p in patterns.split(',') {
        let (negated, p) = match p.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, p),
        };
        let hit = match p.strip_prefix("|1|").and_then(parse_hashed) {
            Some((salt, hash)) => {
                let key = aws_lc_rs::hmac::Key::new(
                    aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
                    &salt,
                );
                aws_lc_rs::hmac::verify(&key, name.as_bytes(), &hash).is_ok()
            }
            None => glob(p.as_bytes(), name.as_bytes()),
        };
        if hit && negated {
            return false;
        }
        matched |= hit;
    }
    matched
}

/// `*` and `?` wildcards, case-insensitively as OpenSSH does for host names.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
        (Some(b'?'), Some(_)) => glob(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => glob(&p[1..], &s[1..]),
        _ => false,
    }
}

/// One authenticated connection, reused for every command on that host.
pub struct Session {
    handle: client::Handle<Pinning>,
    pub target: Target,
}

impl Session {
    pub async fn connect(target: &Target, opts: &SshOptions) -> Result<Session, SshError> {
        let rejected = Arc::new(Mutex::new(None));
        let handler = Pinning {
            known_hosts: opts.known_hosts.clone(),
            address: target.address.clone(),
            port: target.port,
            rejected: rejected.clone(),
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

/// A user key ready to sign.
pub enum UserKey {
    /// ed25519 and ECDSA: russh signs (RustCrypto).
    Native(Arc<russh::keys::PrivateKey>),
    /// RSA: aws-lc-rs signs; russh sees only the public half.
    Rsa {
        public: PublicKey,
        signer: RsaSigner,
    },
}

impl UserKey {
    pub fn algorithm(&self) -> String {
        match self {
            UserKey::Native(k) => k.algorithm().to_string(),
            UserKey::Rsa { .. } => "ssh-rsa".into(),
        }
    }

    pub fn public_key(&self) -> PublicKey {
        match self {
            UserKey::Native(k) => k.public_key().clone(),
            UserKey::Rsa { public, .. } => public.clone(),
        }
    }
}

impl std::fmt::Debug for UserKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "UserKey({} {})",
            self.algorithm(),
            fingerprint(&self.public_key())
        )
    }
}

/// Signs rsa-sha2-256/512 with aws-lc-rs, for russh's `authenticate_publickey_with`.
#[derive(Clone)]
pub struct RsaSigner(Arc<RsaKeyPair>);

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error(transparent)]
    Send(#[from] russh::SendError),
    #[error("the RSA signature failed")]
    Sign,
}

impl russh::Signer for RsaSigner {
    type Error = SignError;

    #[allow(clippy::manual_async_fn)]
    fn auth_sign(
        &mut self,
        _key: &russh::keys::agent::AgentIdentity,
        hash_alg: Option<HashAlg>,
        to_sign: Vec<u8>,
    ) -> impl std::future::Future<Output = Result<Vec<u8>, SignError>> + Send {
        let key = self.0.clone();
        async move { rsa_sign(&key, hash_alg, to_sign) }
    }
}

/// Appends the SSH signature blob (`string(string(name) string(signature))`) to `data`, as an
/// agent does.
fn rsa_sign(
    key: &RsaKeyPair,
    hash: Option<HashAlg>,
    mut data: Vec<u8>,
) -> Result<Vec<u8>, SignError> {
    use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RSA_PKCS1_SHA512};
    let (encoding, name) = match hash {
        Some(HashAlg::Sha256) => (&RSA_PKCS1_SHA256, "rsa-sha2-256"),
        _ => (&RSA_PKCS1_SHA512, "rsa-sha2-512"),
    };
    let mut sig = vec![0; key.public_modulus_len()];
    key.sign(
        encoding,
        &aws_lc_rs::rand::SystemRandom::new(),
        &data,
        &mut sig,
    )
    .map_err(|_| SignError::Sign)?;
    let put = |out: &mut Vec<u8>, bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(bytes);
    };
    let mut blob = Vec::with_capacity(8 + name.len() + sig.len());
    put(&mut blob, name.as_bytes());
    put(&mut blob, &sig);
    put(&mut data, &blob);
    Ok(data)
}

/// Decrypted keys, by path: the passphrase is asked for once per run, and parallel connections
/// wait for that one prompt.
static KEYS: tokio::sync::Mutex<BTreeMap<PathBuf, Arc<UserKey>>> =
    tokio::sync::Mutex::const_new(BTreeMap::new());

async fn user_key(path: &Path) -> Result<Arc<UserKey>, SshError> {
    let expanded = expand_home(path);
    let mut keys = KEYS.lock().await;
    if let Some(k) = keys.get(&expanded) {
        return Ok(k.clone());
    }
    let p = expanded.clone();
    let loaded =
        tokio::task::spawn_blocking(move || load_key(&p, &mut |attempt| passphrase(&p, attempt)))
            .await
            .map_err(|e| SshError::Key {
                path: expanded.clone(),
                message: e.to_string(),
            })?;
    let key = Arc::new(loaded.map_err(|message| SshError::Key {
        path: expanded.clone(),
        message,
    })?);
    keys.insert(expanded, key.clone());
    Ok(key)
}

/// Where a passphrase comes from: the environment, else the terminal (up to three tries), else
/// nowhere — refused at once with what to do.
fn passphrase(path: &Path, attempt: u32) -> Result<String, Ask> {
    if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
        return if attempt == 0 { Ok(p) } else { Err(Ask::Stop) };
    }
    if !std::io::stdin().is_terminal() {
        return Err(Ask::Refused(format!(
            "it is protected by a passphrase and there is no terminal to ask for it: set {PASSPHRASE_ENV}, or load the key into ssh-agent (`ssh-add`) and set access.ssh_agent = true"
        )));
    }
    if attempt >= 3 {
        return Err(Ask::Stop);
    }
    rpassword::prompt_password(format!("Passphrase for {}: ", path.display()))
        .map_err(|e| Ask::Refused(format!("cannot read the passphrase: {e}")))
}

/// Why no (further) passphrase is available.
pub enum Ask {
    /// No more tries: the last one was wrong.
    Stop,
    Refused(String),
}

const WRONG_PASSPHRASE: &str = "wrong passphrase";

/// Reads a private key file of any common kind; `ask(n)` gives the passphrase for try `n` when
/// the key is encrypted.
pub fn load_key(
    path: &Path,
    ask: &mut dyn FnMut(u32) -> Result<String, Ask>,
) -> Result<UserKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    let mut attempt = 0;
    loop {
        let mut asked = false;
        let mut once = || {
            asked = true;
            ask(attempt)
        };
        match parse_key(&text, &mut once) {
            Err(KeyProblem::Wrong) if asked => attempt += 1,
            Err(KeyProblem::Wrong) => return Err(WRONG_PASSPHRASE.into()),
            Err(KeyProblem::Stop) => {
                return Err(format!(
                    "{WRONG_PASSPHRASE} (from {})",
                    if std::env::var_os(PASSPHRASE_ENV).is_some() {
                        PASSPHRASE_ENV
                    } else {
                        "the terminal"
                    }
                ));
            }
            Err(KeyProblem::Other(m)) => return Err(m),
            Ok(k) => return Ok(k),
        }
    }
}

enum KeyProblem {
    Wrong,
    Stop,
    Other(String),
}

impl From<String> for KeyProblem {
    fn from(s: String) -> Self {
        KeyProblem::Other(s)
    }
}

/// The PEM block of a key file: its label, headers (legacy encryption) and body.
struct Pem {
    label: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn parse_pem(text: &str) -> Option<Result<Pem, String>> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN "));
    let label = lines
        .next()?
        .strip_prefix("-----BEGIN ")?
        .strip_suffix("-----")?
        .to_string();
    let mut headers = Vec::new();
    let mut b64 = String::new();
    for l in lines {
        if l.starts_with("-----END ") {
            return Some(match data_encoding::BASE64.decode(b64.as_bytes()) {
                Ok(body) => Ok(Pem {
                    label,
                    headers,
                    body,
                }),
                Err(e) => Err(format!("the {label} block is not valid base64: {e}")),
            });
        }
        match l.split_once(':') {
            Some((k, v)) if b64.is_empty() => {
                headers.push((k.trim().to_string(), v.trim().to_string()))
            }
            _ => b64.push_str(l),
        }
    }
    Some(Err(format!("the {label} block has no END line")))
}

const RSA_OID: &str = "1.2.840.113549.1.1.1";

fn parse_key(
    text: &str,
    ask: &mut dyn FnMut() -> Result<String, Ask>,
) -> Result<UserKey, KeyProblem> {
    let mut pass = || match ask() {
        Ok(p) => Ok(p),
        Err(Ask::Stop) => Err(KeyProblem::Stop),
        Err(Ask::Refused(m)) => Err(KeyProblem::Other(m)),
    };
    if text.trim_start().starts_with("PuTTY-User-Key-File-") {
        return Err(
            "a PuTTY key: convert it with `puttygen KEY -O private-openssh -o KEY.pem`"
                .to_string()
                .into(),
        );
    }
    let pem =
        match parse_pem(text) {
            None => return Err(
                "not a private key (no -----BEGIN … PRIVATE KEY----- block): is it the .pub file?"
                    .to_string()
                    .into(),
            ),
            Some(p) => p?,
        };
    match pem.label.as_str() {
        "OPENSSH PRIVATE KEY" => {
            let mut key = ssh_key::PrivateKey::from_openssh(text)
                .map_err(|e| format!("an OpenSSH key that does not parse: {e}"))?;
            if key.is_encrypted() {
                key = key
                    .decrypt(pass()?.as_bytes())
                    .map_err(|_| KeyProblem::Wrong)?;
            }
            from_ssh_key(key)
        }
        "RSA PRIVATE KEY" => {
            let der = legacy_decrypt(&pem, &mut pass)?;
            let pair = RsaKeyPair::from_der(&der).map_err(|e| {
                if pem_encrypted(&pem) {
                    KeyProblem::Wrong
                } else {
                    format!("a PKCS#1 RSA key that aws-lc rejects: {e}").into()
                }
            })?;
            rsa_key(pair)
        }
        "EC PRIVATE KEY" => {
            let der = legacy_decrypt(&pem, &mut pass)?;
            russh::keys::pkcs8::decode_pkcs8(&der, None)
                .map(|k| UserKey::Native(Arc::new(k)))
                .map_err(|e| {
                    if pem_encrypted(&pem) {
                        KeyProblem::Wrong
                    } else {
                        format!("a SEC1 EC key that does not parse: {e}").into()
                    }
                })
        }
        "PRIVATE KEY" => pkcs8_key(&pem.body),
        "ENCRYPTED PRIVATE KEY" => {
            let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(pem.body.as_slice())
                .map_err(|e| format!("an encrypted PKCS#8 key that does not parse: {e}"))?;
            let doc = info
                .decrypt(pass()?.as_bytes())
                .map_err(|_| KeyProblem::Wrong)?;
            pkcs8_key(doc.as_bytes())
        }
        other => Err(format!(
            "a {other} block, not a private key acura-ha reads (OpenSSH, PEM or PKCS#8)"
        )
        .into()),
    }
}

fn pem_encrypted(pem: &Pem) -> bool {
    pem.headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("DEK-Info"))
}

/// OpenSSL's legacy PEM encryption (`Proc-Type: 4,ENCRYPTED`, `DEK-Info: AES-…-CBC,IV`), as
/// `ssh-keygen -m PEM -N …` writes: the key is EVP_BytesToKey(MD5, passphrase, IV[..8]).
fn legacy_decrypt(
    pem: &Pem,
    pass: &mut dyn FnMut() -> Result<String, KeyProblem>,
) -> Result<Vec<u8>, KeyProblem> {
    use aws_lc_rs::cipher::{
        AES_128, AES_192, AES_256, DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey,
    };
    let Some((_, dek)) = pem
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("DEK-Info"))
    else {
        return Ok(pem.body.clone());
    };
    let (cipher, iv) = dek.split_once(',').unwrap_or((dek, ""));
    let (alg, len) = match cipher.trim() {
        "AES-128-CBC" => (&AES_128, 16),
        "AES-192-CBC" => (&AES_192, 24),
        "AES-256-CBC" => (&AES_256, 32),
        other => {
            return Err(format!(
                "it is encrypted with {other}, which acura-ha does not read: re-encrypt it with `ssh-keygen -p -f FILE` (OpenSSH format)"
            )
            .into());
        }
    };
    let iv: [u8; 16] = data_encoding::HEXUPPER_PERMISSIVE
        .decode(iv.trim().as_bytes())
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| "its DEK-Info IV is not 16 hex bytes".to_string())?;
    let passphrase = pass()?;
    let mut key = Vec::with_capacity(len + 16);
    let mut prev: Vec<u8> = Vec::new();
    while key.len() < len {
        let mut md = md5::Context::new();
        md.consume(&prev);
        md.consume(passphrase.as_bytes());
        md.consume(&iv[..8]);
        prev = md.finalize().0.to_vec();
        key.extend_from_slice(&prev);
    }
    key.truncate(len);
    let cipher = UnboundCipherKey::new(alg, &key)
        .and_then(PaddedBlockDecryptingKey::cbc_pkcs7)
        .map_err(|_| "cannot set up AES".to_string())?;
    let mut buf = pem.body.clone();
    let plain = cipher
        .decrypt(&mut buf, DecryptionContext::Iv128(iv.into()))
        .map_err(|_| KeyProblem::Wrong)?;
    Ok(plain.to_vec())
}

fn pkcs8_key(der: &[u8]) -> Result<UserKey, KeyProblem> {
    let info = pkcs8::PrivateKeyInfoRef::try_from(der)
        .map_err(|e| format!("a PKCS#8 key that does not parse: {e}"))?;
    if info.algorithm.oid.to_string() == RSA_OID {
        let pair = RsaKeyPair::from_pkcs8(der)
            .map_err(|e| format!("a PKCS#8 RSA key that aws-lc rejects: {e}"))?;
        return rsa_key(pair);
    }
    russh::keys::pkcs8::decode_pkcs8(der, None)
        .map(|k| UserKey::Native(Arc::new(k)))
        .map_err(|e| format!("a PKCS#8 key of a kind acura-ha does not read: {e}").into())
}

fn from_ssh_key(key: ssh_key::PrivateKey) -> Result<UserKey, KeyProblem> {
    match key.key_data() {
        KeypairData::Rsa(rsa) => {
            let bytes = |m: &ssh_key::Mpint| m.as_positive_bytes().map(<[u8]>::to_vec).ok_or_else(|| "an RSA key with a negative component".to_string());
            let (n, e) = (bytes(rsa.public().n())?, bytes(rsa.public().e())?);
            let private = rsa.private();
            let (d, p, q, iqmp) = (bytes(private.d())?, bytes(private.p())?, bytes(private.q())?, bytes(private.iqmp())?);
            let (dp, dq) = (crt_exponent(&d, &p)?, crt_exponent(&d, &q)?);
            let components = aws_lc_rs::rsa::KeyPairComponents {
                public_key: aws_lc_rs::rsa::PublicKeyComponents { n: n.as_slice(), e: e.as_slice() },
                d: d.as_slice(),
                dP: dp.as_slice(),
                dQ: dq.as_slice(),
                p: p.as_slice(),
                q: q.as_slice(),
                qInv: iqmp.as_slice(),
            };
            let pair = RsaKeyPair::from_components(&components).map_err(|e| format!("an RSA key that aws-lc rejects: {e}"))?;
            rsa_key(pair)
        }
        KeypairData::Ed25519(_) | KeypairData::Ecdsa(_) => Ok(UserKey::Native(Arc::new(key))),
        _ => Err(format!(
            "a {} key: acura-ha signs with ed25519, ECDSA and RSA key files (security keys work through ssh-agent)",
            key.algorithm()
        )
        .into()),
    }
}

/// `d mod (prime - 1)`, in constant time (crypto-bigint), for a key from the OpenSSH format,
/// which stores no CRT exponents.
fn crt_exponent(d: &[u8], prime: &[u8]) -> Result<Vec<u8>, String> {
    use crypto_bigint::{BoxedUint, NonZero};
    let bits = (d.len().max(prime.len()) * 8) as u32;
    let d = BoxedUint::from_be_slice(d, bits).map_err(|e| format!("RSA d: {e:?}"))?;
    let p = BoxedUint::from_be_slice(prime, bits).map_err(|e| format!("RSA prime: {e:?}"))?;
    let pm1 = p.wrapping_sub(BoxedUint::one_with_precision(bits));
    let modulus = Option::<NonZero<BoxedUint>>::from(NonZero::new(pm1))
        .ok_or_else(|| "an RSA prime of 1".to_string())?;
    Ok(d.rem(&modulus).to_be_bytes().into_vec())
}

fn rsa_key(pair: RsaKeyPair) -> Result<UserKey, KeyProblem> {
    // The public half as PKCS#1 `RSAPublicKey ::= SEQUENCE { n INTEGER, e INTEGER }`.
    use pkcs8::der::{Reader, SliceReader, asn1::UintRef};
    let (n, e) = SliceReader::new(pair.public_key().as_ref())
        .and_then(|mut r| {
            r.sequence(|s| {
                let n: UintRef<'_> = s.decode()?;
                let e: UintRef<'_> = s.decode()?;
                Ok((n.as_bytes().to_vec(), e.as_bytes().to_vec()))
            })
        })
        .map_err(|e| format!("an RSA public key that does not parse: {e}"))?;
    let mpint = |b: &[u8]| ssh_key::Mpint::from_positive_bytes(b);
    let rsa = ssh_key::public::RsaPublicKey::new(mpint(&e), mpint(&n))
        .map_err(|e| format!("an RSA public key that does not encode: {e}"))?;
    Ok(UserKey::Rsa {
        public: PublicKey::new(ssh_key::public::KeyData::Rsa(rsa), ""),
        signer: RsaSigner(Arc::new(pair)),
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
