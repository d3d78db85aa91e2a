//! User keys from files of every common kind and format, and RSA signing through aws-lc-rs.

use super::*;

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
pub struct RsaSigner(pub(crate) Arc<RsaKeyPair>);

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
pub(crate) fn rsa_sign(
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
pub(crate) static KEYS: tokio::sync::Mutex<BTreeMap<PathBuf, Arc<UserKey>>> =
    tokio::sync::Mutex::const_new(BTreeMap::new());

pub(crate) async fn user_key(path: &Path) -> Result<Arc<UserKey>, SshError> {
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
pub(crate) fn passphrase(path: &Path, attempt: u32) -> Result<String, Ask> {
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

pub(crate) const WRONG_PASSPHRASE: &str = "wrong passphrase";

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

pub(crate) enum KeyProblem {
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
pub(crate) struct Pem {
    pub(crate) label: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

pub(crate) fn parse_pem(text: &str) -> Option<Result<Pem, String>> {
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

pub(crate) const RSA_OID: &str = "1.2.840.113549.1.1.1";

pub(crate) fn parse_key(
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
            let mut key = ssh_key::PrivateKey::from_openssh(text).map_err(|e| {
                format!(
                    "an OpenSSH key that does not parse: {e}{}",
                    short_scalar_hint(&e)
                )
            })?;
            if key.is_encrypted() {
                key = key.decrypt(pass()?.as_bytes()).map_err(|e| match e {
                    // The passphrase was right (the check words matched) but the decrypted key
                    // does not parse: not a "wrong passphrase".
                    ssh_key::Error::Encoding(_) => KeyProblem::from(format!(
                        "an OpenSSH key that does not parse once decrypted: {e}{}",
                        short_scalar_hint(&e)
                    )),
                    _ => KeyProblem::Wrong,
                })?;
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

pub(crate) fn pem_encrypted(pem: &Pem) -> bool {
    pem.headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("DEK-Info"))
}

/// OpenSSL's legacy PEM encryption (`Proc-Type: 4,ENCRYPTED`, `DEK-Info: AES-…-CBC,IV`), as
/// `ssh-keygen -m PEM -N …` writes: the key is EVP_BytesToKey(MD5, passphrase, IV[..8]).
pub(crate) fn legacy_decrypt(
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

pub(crate) fn pkcs8_key(der: &[u8]) -> Result<UserKey, KeyProblem> {
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

pub(crate) fn from_ssh_key(key: ssh_key::PrivateKey) -> Result<UserKey, KeyProblem> {
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
pub(crate) fn crt_exponent(d: &[u8], prime: &[u8]) -> Result<Vec<u8>, String> {
    use crypto_bigint::{BoxedUint, NonZero};
    let bits = (d.len().max(prime.len()) * 8) as u32;
    let d = BoxedUint::from_be_slice(d, bits).map_err(|e| format!("RSA d: {e:?}"))?;
    let p = BoxedUint::from_be_slice(prime, bits).map_err(|e| format!("RSA prime: {e:?}"))?;
    let pm1 = p.wrapping_sub(BoxedUint::one_with_precision(bits));
    let modulus = Option::<NonZero<BoxedUint>>::from(NonZero::new(pm1))
        .ok_or_else(|| "an RSA prime of 1".to_string())?;
    Ok(d.rem(&modulus).to_be_bytes().into_vec())
}

pub(crate) fn rsa_key(pair: RsaKeyPair) -> Result<UserKey, KeyProblem> {
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

/// The ssh-key parser refuses an OpenSSH ECDSA key whose private scalar starts with a zero byte
/// (its mpint is shorter than the curve; about 1 key in 256; RustCrypto/SSH#350). Say how to use
/// such a key anyway: the PEM and PKCS#8 readers here take it.
pub(crate) fn short_scalar_hint(e: &ssh_key::Error) -> &'static str {
    match e {
        ssh_key::Error::Encoding(_) => {
            " (if this is an ECDSA key, it may be one whose private number starts with a zero byte, \
             which the OpenSSH-format reader refuses: convert it with `ssh-keygen -p -m PEM -f FILE` \
             or load it into ssh-agent)"
        }
        _ => "",
    }
}
