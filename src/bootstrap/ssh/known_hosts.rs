//! Host-key pinning: the cluster's known_hosts file, read fail-closed, and the handler that checks
//! the key a host offers against it.

use super::*;

/// Serialises appends to known_hosts files across parallel connections.
pub(crate) static LEARN: Mutex<()> = Mutex::new(());

/// Why the handler refused the host's key, for `connect` to report.
#[derive(Debug)]
pub(crate) enum Rejection {
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
pub(crate) struct Pinning {
    pub(crate) known_hosts: PathBuf,
    pub(crate) address: String,
    pub(crate) port: u16,
    /// Set when the key is refused, so `connect` can say why.
    pub(crate) rejected: Arc<Mutex<Option<Rejection>>>,
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
    pub(crate) fn verdict(&self, offered: &PublicKey) -> Result<(), Rejection> {
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

pub(crate) fn fingerprint(k: &PublicKey) -> String {
    k.fingerprint(HashAlg::Sha256).to_string()
}

/// One line of a known_hosts file.
#[derive(Debug)]
pub(crate) struct KnownHost {
    pub(crate) line: usize,
    pub(crate) marker: Option<String>,
    pub(crate) patterns: String,
    pub(crate) key: PublicKey,
}

/// A parsed known_hosts file (OpenSSH's format: plain, `[host]:port`, hashed `|1|` names,
/// `*`/`?` wildcards and `!` negation; `@revoked` and `@cert-authority` markers).
#[derive(Debug, Default)]
pub(crate) struct KnownHosts(pub(crate) Vec<KnownHost>);

impl KnownHosts {
    /// Reads every line: a missing file is empty, anything else that fails is `(line, why)`.
    pub(crate) fn read(file: &Path) -> Result<KnownHosts, (Option<usize>, String)> {
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

    pub(crate) fn parse(text: &str) -> Result<KnownHosts, (Option<usize>, String)> {
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
    pub(crate) fn pins(
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
pub(crate) fn parse_hashed(s: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    let (salt, hash) = s.split_once('|')?;
    let b64 = data_encoding::BASE64;
    Some((
        b64.decode(salt.as_bytes()).ok()?,
        b64.decode(hash.as_bytes()).ok()?,
    ))
}

/// OpenSSH's host matching: any positive pattern matches and no negated one does.
pub(crate) fn host_matches(patterns: &str, name: &str) -> bool {
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
pub(crate) fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
        (Some(b'?'), Some(_)) => glob(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => glob(&p[1..], &s[1..]),
        _ => false,
    }
}
