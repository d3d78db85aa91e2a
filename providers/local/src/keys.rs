//! SSH keys: the deploy side's key (generated into the cluster directory when the cluster file
//! names none), one host key per lab host, and the `known_hosts` file that pins them, so the
//! SSH layer never has to trust a key on first use. The private keys are never read into
//! memory or printed: only `ssh-keygen` touches them.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use acura_ha_api::provider::ProviderError;
use acura_ha_api::spec::ClusterSpec;

use crate::cmd::{self, cloud};
use crate::files;
use crate::preflight::SSH_KEYGEN;

/// The comment of a key the lab generated; `destroy` removes only keys that carry it.
pub const GENERATED_COMMENT: &str = "acura-ha-lab";
/// The file name of the generated key inside the cluster directory.
pub const GENERATED_KEY: &str = "id_ed25519";

/// `<key>.pub`.
pub fn pub_path(key: &Path) -> PathBuf {
    let mut s = key.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// Whether `key_file` is (or would be) the key the lab generates: the default path in the
/// cluster directory, with no key of the user's named in the cluster file.
pub fn is_generated_path(spec: &ClusterSpec, cluster_dir: &Path, key_file: &Path) -> bool {
    spec.access.ssh_private_key.is_none() && key_file == cluster_dir.join(GENERATED_KEY)
}

/// Generates an ed25519 key pair at `path` without a passphrase (ssh-keygen writes the private
/// key with mode 0600). A half-written pair is replaced.
pub async fn generate(
    resource: &str,
    root: &Path,
    path: &Path,
    comment: &str,
) -> Result<(), ProviderError> {
    files::remove_file(resource, root, path)?;
    files::remove_file(resource, root, &pub_path(path))?;
    let mut args: Vec<std::ffi::OsString> = ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"]
        .iter()
        .map(Into::into)
        .collect();
    args.push(path.as_os_str().to_owned());
    cmd::run(resource, SSH_KEYGEN, &args).await?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| cloud(resource, format!("cannot chmod {}: {e}", path.display())))
}

/// The deploy side's key: generated when it is the lab's own and missing; otherwise its
/// `.pub` must exist. Returns the public key line and whether it was generated now.
pub async fn ensure_client_key(
    resource: &str,
    cluster_dir: &Path,
    generated_path: bool,
    key_file: &Path,
) -> Result<(String, bool), ProviderError> {
    let public = pub_path(key_file);
    let mut created = false;
    // Only a missing private key is generated: an existing one is never overwritten.
    if generated_path && !key_file.exists() {
        generate(resource, cluster_dir, key_file, GENERATED_COMMENT).await?;
        created = true;
    }
    if !key_file.exists() {
        return Err(ProviderError::Unsupported(format!(
            "the SSH key {} does not exist (access.ssh_private_key)",
            key_file.display()
        )));
    }
    if !public.exists() {
        return Err(ProviderError::Unsupported(format!(
            "{} is missing: the local target installs the public key on every lab host; \
             create it with `ssh-keygen -y -f {} > {}`",
            public.display(),
            key_file.display(),
            public.display()
        )));
    }
    let line = public_line(resource, &public, false)?;
    Ok((line, created))
}

/// A host's ed25519 key: kept when both halves exist, generated otherwise. Returns the public
/// key as `ssh-ed25519 AAAA…` (no comment) and whether it was generated now.
pub async fn ensure_host_key(
    resource: &str,
    hosts_dir: &Path,
    private: &Path,
    host: &str,
) -> Result<(String, bool), ProviderError> {
    let public = pub_path(private);
    let mut created = false;
    if !(private.exists() && public.exists()) {
        generate(resource, hosts_dir, private, host).await?;
        created = true;
    }
    Ok((public_line(resource, &public, true)?, created))
}

/// The first key line of a `.pub` file; with `strip_comment`, only its type and base64 blob.
fn public_line(resource: &str, path: &Path, strip_comment: bool) -> Result<String, ProviderError> {
    let text = files::read(resource, path)?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| cloud(resource, format!("{} holds no public key", path.display())))?;
    let mut fields = line.split_whitespace();
    match (fields.next(), fields.next()) {
        (Some(kind), Some(blob)) if kind.starts_with("ssh-") || kind.starts_with("ecdsa-") => {
            Ok(if strip_comment {
                format!("{kind} {blob}")
            } else {
                line.to_string()
            })
        }
        _ => Err(cloud(
            resource,
            format!("{} is not an OpenSSH public key", path.display()),
        )),
    }
}

/// Whether the `.pub` next to `key` carries the lab's comment (a missing one counts: then the
/// private key alone was left by an interrupted generation).
pub fn carries_lab_comment(key: &Path) -> bool {
    match std::fs::read_to_string(pub_path(key)) {
        Ok(text) => text.trim_end().ends_with(GENERATED_COMMENT),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// The `known_hosts` file: `<address> <type> <key>` per host (port 22 needs no brackets).
pub fn known_hosts(entries: &[(Ipv4Addr, String)]) -> String {
    entries
        .iter()
        .map(|(addr, key)| format!("{addr} {key}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_lines() {
        let kh = known_hosts(&[
            ("10.0.0.11".parse().expect("ip"), "ssh-ed25519 AAAA1".into()),
            ("10.0.0.10".parse().expect("ip"), "ssh-ed25519 AAAA2".into()),
        ]);
        assert_eq!(
            kh,
            "10.0.0.11 ssh-ed25519 AAAA1\n10.0.0.10 ssh-ed25519 AAAA2\n"
        );
    }

    #[tokio::test]
    async fn host_key_is_generated_once_and_read_without_comment() {
        let d = tempfile::tempdir().expect("tempdir");
        let k = d.path().join("ssh_host_ed25519_key");
        let (line, created) = ensure_host_key("h", d.path(), &k, "node-1")
            .await
            .expect("keygen");
        assert!(created);
        assert!(line.starts_with("ssh-ed25519 AAAA"), "{line}");
        assert_eq!(line.split_whitespace().count(), 2);
        let (again, created) = ensure_host_key("h", d.path(), &k, "node-1")
            .await
            .expect("keygen");
        assert!(!created);
        assert_eq!(again, line);
    }
}
