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
    /// Nothing pinned yet, the cloud's console vouched for other keys than the one offered.
    NotVouched {
        offered: String,
        vouched: Vec<String>,
    },
}

/// Why a host key was accepted, for the note on keys trusted on first use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyTrust {
    /// The key matched one already pinned in the cluster's known_hosts.
    Pinned,
    /// Nothing was pinned; the key is one the cloud printed on the server's console, now pinned.
    Vouched,
    /// Nothing was pinned and nothing vouched for it: pinned on first use (TOFU).
    FirstUse,
}

/// The russh handler: checks the offered host key against the pinned one.
pub(crate) struct Pinning {
    pub(crate) known_hosts: PathBuf,
    pub(crate) address: String,
    pub(crate) port: u16,
    /// The `SHA256:…` fingerprints the cloud's console printed for this host; empty when
    /// there was no console (static hosts, a refused call): then the key is trusted on first use.
    pub(crate) vouched: Vec<String>,
    /// Set when the key is refused, so `connect` can say why.
    pub(crate) rejected: Arc<Mutex<Option<Rejection>>>,
    /// Set when the key is accepted, so `connect` can say how.
    pub(crate) trust: Arc<Mutex<Option<HostKeyTrust>>>,
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
            Ok(how) => {
                *self.trust.lock().unwrap_or_else(|e| e.into_inner()) = Some(how);
                Ok(true)
            }
            Err(r) => {
                *self.rejected.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                Ok(false)
            }
        }
    }
}

impl Pinning {
    /// An existing pin wins over everything (a changed key stays an error); with nothing pinned
    /// a key the console vouched for is pinned, one it did not vouch for is refused before any
    /// login, and without a console the key is pinned on first use.
    pub(crate) fn verdict(&self, offered: &PublicKey) -> Result<HostKeyTrust, Rejection> {
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
                let offered_fp = fingerprint(offered);
                let how = if self.vouched.is_empty() {
                    HostKeyTrust::FirstUse
                } else if self.vouched.contains(&offered_fp) {
                    HostKeyTrust::Vouched
                } else {
                    return Err(Rejection::NotVouched {
                        offered: offered_fp,
                        vouched: self.vouched.clone(),
                    });
                };
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
                return Ok(how);
            }
        }
        if pins.iter().any(|k| k.key_data() == offered.key_data()) {
            return Ok(HostKeyTrust::Pinned);
        }
        Err(Rejection::Changed {
            pinned: fingerprint(&pins[0]),
            offered: fingerprint(offered),
        })
    }
}

/// Whether `known_hosts` pins any key for `address:port` now (a file that cannot be read counts
/// as pinned: the connection fails on it anyway, and nothing is then called "first use").
pub fn is_pinned(known_hosts: &Path, address: &str, port: u16) -> bool {
    let name = if port == 22 {
        address.to_string()
    } else {
        format!("[{address}]:{port}")
    };
    match KnownHosts::read(known_hosts) {
        Ok(kh) => {
            kh.0.iter()
                .any(|e| e.marker.is_none() && host_matches(&e.patterns, &name))
        }
        Err(_) => true,
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

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const ED2: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIA6rWI3G2sz07DnfFlrouTcysQlj2P+jpNSOEWD9OJ3X";

    fn key(b64: &str) -> PublicKey {
        PublicKey::from_openssh(&format!("ssh-ed25519 {b64}")).unwrap()
    }

    fn handler(dir: &Path, vouched: &[&str]) -> Pinning {
        Pinning {
            known_hosts: dir.join("known_hosts"),
            address: "10.0.0.5".into(),
            port: 22,
            vouched: vouched.iter().map(|s| s.to_string()).collect(),
            rejected: Arc::default(),
            trust: Arc::default(),
        }
    }

    #[test]
    fn a_vouched_key_is_pinned_and_another_refused_without_pinning() {
        let dir = tempfile::tempdir().unwrap();
        let good = fingerprint(&key(ED));
        let h = handler(
            dir.path(),
            &["SHA256:Yw5ZUeCexhJ8yF4Hx2f4HdWQZ3XqJ3Cp3qg3xvB0v1c", &good],
        );
        // Another key than the console printed: refused, nothing written.
        match h.verdict(&key(ED2)) {
            Err(Rejection::NotVouched { offered, vouched }) => {
                assert_eq!(offered, fingerprint(&key(ED2)));
                assert!(vouched.contains(&good));
            }
            other => panic!("{other:?}"),
        }
        assert!(!h.known_hosts.exists());
        // The console's key: pinned, not "first use".
        assert_eq!(h.verdict(&key(ED)).unwrap(), HostKeyTrust::Vouched);
        assert!(is_pinned(&h.known_hosts, "10.0.0.5", 22));
        assert!(!is_pinned(&h.known_hosts, "10.0.0.5", 2222));
        assert_eq!(h.verdict(&key(ED)).unwrap(), HostKeyTrust::Pinned);
    }

    #[test]
    fn without_console_keys_first_use_and_an_existing_pin_wins_over_the_console() {
        let dir = tempfile::tempdir().unwrap();
        let tofu = handler(dir.path(), &[]);
        assert_eq!(tofu.verdict(&key(ED)).unwrap(), HostKeyTrust::FirstUse);
        // Pinned ED; the console vouches for ED2 only: the pin decides both ways.
        let h = handler(dir.path(), &[&fingerprint(&key(ED2))]);
        assert_eq!(h.verdict(&key(ED)).unwrap(), HostKeyTrust::Pinned);
        match h.verdict(&key(ED2)) {
            Err(Rejection::Changed { pinned, offered }) => {
                assert_eq!(pinned, fingerprint(&key(ED)));
                assert_eq!(offered, fingerprint(&key(ED2)));
            }
            other => panic!("{other:?}"),
        }
    }
}
