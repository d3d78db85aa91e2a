//! The guide's "How to ..." commands, run on a live node over SSH, and the parsers for what they
//! print: Acura's overlay list in `etcd-0`, node deletion, the control-plane etcd's members, and
//! the join token and certificate key for a new master.

use std::time::Duration;

use acura_ha_api::tables::{
    ACURA_STORE_POD, CONTROL_PLANE_NAMESPACE, ETCD_CACERT, ETCD_CERT, ETCD_KEY, ETCD_POD_PREFIX,
    OVERLAY_LIST_KEY,
};

use super::Day2Error;
use crate::bootstrap::ssh::{Output, Session, shell_quote};
use crate::bootstrap::sudo::{self, SudoError};

const DEADLINE: Duration = Duration::from_secs(120);

/// A command for the node, with the login user's `~/.local/bin` on the PATH (SSH commands do
/// not read the login profile that would add it); [`as_root`] runs it through sudo.
fn on_node(program: &str, args: &[&str]) -> String {
    let quoted: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
    format!(
        "env PATH=\"$HOME/.local/bin:$PATH\" {program} {}",
        quoted.join(" ")
    )
}

/// Runs `command` (one simple command) as root: sudo, with the become password on its
/// standard input where the node's sudo asks for one. A refused password fails here, once.
async fn as_root(session: &Session, command: &str) -> Result<Output, Day2Error> {
    let become_ = sudo::current();
    let root = become_.prepare(session).await.map_err(|e| match e {
        SudoError::Ssh(e) => Day2Error::from(e),
        other => Day2Error::Command {
            host: session.target.name.clone(),
            step: "sudo".into(),
            message: other.to_string(),
        },
    })?;
    Ok(root.run(session, &root.command(command), DEADLINE).await?)
}

/// Runs `command` as root; a non-zero exit is an error naming `step` and the host.
async fn run(session: &Session, step: &str, command: &str) -> Result<String, Day2Error> {
    let out = as_root(session, command).await?;
    if out.status != 0 {
        return Err(Day2Error::Command {
            host: session.target.name.clone(),
            step: step.to_string(),
            message: format!("exit {}: {}", out.status, out.stderr_text().trim()),
        });
    }
    Ok(out.stdout_text())
}

fn parse_error(session: &Session, step: &str, message: impl Into<String>) -> Day2Error {
    Day2Error::Parse {
        host: session.target.name.clone(),
        step: step.to_string(),
        message: message.into(),
    }
}

/// `kubectl exec etcd-0 -- etcdctl ARGS…`: Acura's own store, as the guide writes it.
fn store_etcdctl(args: &[&str]) -> String {
    let mut argv = vec!["exec", ACURA_STORE_POD, "--", "etcdctl"];
    argv.extend_from_slice(args);
    on_node("kubectl", &argv)
}

/// `kubectl exec etcd-0 -- etcdctl get /overlay_list`.
pub async fn overlay_get(session: &Session) -> Result<Vec<String>, Day2Error> {
    let step = "read /overlay_list";
    let out = run(session, step, &store_etcdctl(&["get", OVERLAY_LIST_KEY])).await?;
    parse_overlay_list(&out).map_err(|m| parse_error(session, step, m))
}

/// The value `etcdctl get` printed: v2 prints the value alone, v3 the key and then the value,
/// so the last non-empty line is the value either way.
pub fn parse_overlay_list(out: &str) -> Result<Vec<String>, String> {
    let value = out
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .ok_or("etcdctl printed nothing")?;
    serde_json::from_str(value)
        .map_err(|e| format!("the stored value {value:?} is not a JSON list of overlays: {e}"))
}

/// `kubectl exec etcd-0 -- etcdctl set /overlay_list '[…]'`, then reads it back.
pub async fn overlay_set(session: &Session, overlays: &[String]) -> Result<(), Day2Error> {
    let step = "write /overlay_list";
    let value = serde_json::to_string(overlays).unwrap_or_default();
    let cmd = store_etcdctl(&["set", OVERLAY_LIST_KEY, &value]);
    run(session, step, &cmd).await?;
    let back = overlay_get(session).await?;
    if back != overlays {
        return Err(parse_error(
            session,
            step,
            format!("wrote {value} but read back {back:?}"),
        ));
    }
    Ok(())
}

/// `kubectl delete node NAME`: `Ok(false)` when Kubernetes no longer knows it.
pub async fn delete_node(session: &Session, name: &str) -> Result<bool, Day2Error> {
    let cmd = on_node("kubectl", &["delete", "node", name]);
    let out = as_root(session, &cmd).await?;
    if out.status == 0 {
        return Ok(true);
    }
    let err = out.stderr_text();
    if err.contains("NotFound") || err.contains("not found") {
        return Ok(false);
    }
    Err(Day2Error::Command {
        host: session.target.name.clone(),
        step: format!("kubectl delete node {name}"),
        message: format!("exit {}: {}", out.status, err.trim()),
    })
}

/// One line of `etcdctl member list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdMember {
    pub id: String,
    pub status: String,
    pub name: String,
    pub peer_urls: String,
}

/// `etcdctl` inside the control-plane etcd pod of `live`, with the guide's certificates.
fn etcdctl(live: &str, args: &[&str]) -> String {
    let pod = format!("{ETCD_POD_PREFIX}{live}");
    let mut argv = vec![
        "exec",
        pod.as_str(),
        "-n",
        CONTROL_PLANE_NAMESPACE,
        "--",
        "etcdctl",
        "--cacert",
        ETCD_CACERT,
        "--cert",
        ETCD_CERT,
        "--key",
        ETCD_KEY,
    ];
    argv.extend_from_slice(args);
    on_node("kubectl", &argv)
}

/// `etcdctl member list` through the pod on `live`.
pub async fn member_list(session: &Session, live: &str) -> Result<Vec<EtcdMember>, Day2Error> {
    let step = "etcdctl member list";
    let out = run(session, step, &etcdctl(live, &["member", "list"])).await?;
    parse_member_list(&out).map_err(|m| parse_error(session, step, m))
}

/// `8e9e05c52164694d, started, node-1, https://10.0.0.11:2380, https://10.0.0.11:2379, false`
pub fn parse_member_list(out: &str) -> Result<Vec<EtcdMember>, String> {
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            if f.len() < 4 || u64::from_str_radix(f[0], 16).is_err() {
                return Err(format!("unexpected line {l:?}"));
            }
            Ok(EtcdMember {
                id: f[0].to_string(),
                status: f[1].to_string(),
                name: f[2].to_string(),
                peer_urls: f[3].to_string(),
            })
        })
        .collect()
}

/// `etcdctl member remove ID` through the pod on `live`. etcd refuses a removal while it
/// counts too few members as active ("unhealthy cluster": a member that joined seconds ago
/// counts only after etcd's health interval), so that answer is retried for up to a minute.
pub async fn member_remove(session: &Session, live: &str, id: &str) -> Result<(), Day2Error> {
    let step = format!("etcdctl member remove {id}");
    let cmd = etcdctl(live, &["member", "remove", id]);
    let started = std::time::Instant::now();
    let mut delay = Duration::from_secs(1);
    loop {
        match run(session, &step, &cmd).await {
            Err(Day2Error::Command { message, .. })
                if message.contains("unhealthy cluster")
                    && started.elapsed() < Duration::from_secs(60) =>
            {
                super::say(
                    "etcd",
                    format!(
                        "etcd answers \"unhealthy cluster\" (a member joined moments ago): retrying in {} s",
                        delay.as_secs()
                    ),
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            other => return other.map(|_| ()),
        }
    }
}

/// What a new master needs to join. Never printed: `Debug` shows only that values are present.
pub struct JoinSecrets {
    pub master_token: String,
    pub master_discovery_token: String,
    pub master_cert_key: String,
}

impl std::fmt::Debug for JoinSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JoinSecrets(<redacted>)")
    }
}

/// `kubeadm token create` for a join: a short-lived token (kubeadm's default lives 24 h; the
/// join needs minutes), with the join command printed.
pub const TOKEN_CREATE: &[&str] = &["token", "create", "--ttl", "15m", "--print-join-command"];

/// `kubeadm token create --ttl 15m --print-join-command` and `sudo kubeadm init phase
/// upload-certs --upload-certs` on a live node; their output stays in memory.
pub async fn join_secrets(session: &Session) -> Result<JoinSecrets, Day2Error> {
    let step = "kubeadm token create --ttl 15m --print-join-command";
    let out = run(session, step, &on_node("kubeadm", TOKEN_CREATE)).await?;
    let (token, hash) = parse_join_command(&out).map_err(|m| parse_error(session, step, m))?;
    let step = "kubeadm init phase upload-certs --upload-certs";
    let out = run(
        session,
        step,
        &on_node(
            "kubeadm",
            &["init", "phase", "upload-certs", "--upload-certs"],
        ),
    )
    .await?;
    let key = parse_cert_key(&out).map_err(|m| parse_error(session, step, m))?;
    Ok(JoinSecrets {
        master_token: token,
        master_discovery_token: hash,
        master_cert_key: key,
    })
}

/// `kubeadm join LB:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash
/// sha256:<hex>` → the token and the hash's hex (the guide's `master_discovery_token` is the
/// bare hex). Messages never quote the values.
pub fn parse_join_command(out: &str) -> Result<(String, String), String> {
    let words: Vec<&str> = out.split_whitespace().collect();
    let after = |flag: &str| {
        words
            .iter()
            .position(|w| *w == flag)
            .and_then(|i| words.get(i + 1))
            .map(|s| s.to_string())
    };
    let token = after("--token").ok_or("no --token in the join command")?;
    let valid_token = token.split_once('.').is_some_and(|(id, secret)| {
        id.len() == 6
            && secret.len() == 16
            && token
                .chars()
                .all(|c| c == '.' || c.is_ascii_lowercase() || c.is_ascii_digit())
    });
    if !valid_token {
        return Err(
            "the --token value is not shaped like a kubeadm token ([a-z0-9]{6}.[a-z0-9]{16})"
                .into(),
        );
    }
    let hash = after("--discovery-token-ca-cert-hash")
        .ok_or("no --discovery-token-ca-cert-hash in the join command")?;
    let hex = hash.strip_prefix("sha256:").unwrap_or(&hash).to_string();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("the discovery hash is not sha256:<64 hex digits>".into());
    }
    Ok((token, hex))
}

/// The line after `[upload-certs] Using certificate key:`: 64 hex digits.
pub fn parse_cert_key(out: &str) -> Result<String, String> {
    out.lines()
        .map(str::trim)
        .rfind(|l| l.len() == 64 && l.chars().all(|c| c.is_ascii_hexdigit()))
        .map(str::to_string)
        .ok_or_else(|| "no certificate key (64 hex digits) in the output".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_list_from_v2_and_v3_output() {
        let l = r#"["overlay/ha.yaml","overlay/distr-dr.yaml"]"#;
        assert_eq!(parse_overlay_list(l).unwrap().len(), 2);
        assert_eq!(
            parse_overlay_list(&format!("/overlay_list\n{l}\n")).unwrap()[1],
            "overlay/distr-dr.yaml"
        );
        assert!(parse_overlay_list("").is_err());
        assert!(parse_overlay_list("not json").is_err());
    }

    #[test]
    fn member_list_lines() {
        let out = "8e9e05c52164694d, started, acura-1, https://10.0.0.11:2380, https://10.0.0.11:2379, false\n\
                   91bc3c398fb3c146, started, acura-2, https://10.0.0.12:2380, https://10.0.0.12:2379, false\n";
        let m = parse_member_list(out).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].id, "91bc3c398fb3c146");
        assert_eq!(m[1].name, "acura-2");
        assert!(parse_member_list("Error: context deadline exceeded").is_err());
    }

    #[test]
    fn join_command_and_cert_key() {
        let hash = "a".repeat(64);
        let out = format!(
            "kubeadm join 10.0.0.10:6443 --token ae9wnx.0123456789abcdef --discovery-token-ca-cert-hash sha256:{hash} \n"
        );
        let (t, h) = parse_join_command(&out).unwrap();
        assert_eq!(t, "ae9wnx.0123456789abcdef");
        assert_eq!(h, hash);
        let bad = parse_join_command("kubeadm join x --token short.x").unwrap_err();
        assert!(!bad.contains("short"), "the message must not quote a value");
        let key = "4cc2c".to_string() + &"0".repeat(59);
        let out = format!(
            "[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace\n[upload-certs] Using certificate key:\n{key}\n"
        );
        assert_eq!(parse_cert_key(&out).unwrap(), key);
        assert!(parse_cert_key("nothing").is_err());
        assert!(
            format!(
                "{:?}",
                JoinSecrets {
                    master_token: t,
                    master_discovery_token: h,
                    master_cert_key: key
                }
            )
            .contains("redacted")
        );
    }

    #[test]
    fn the_join_token_is_short_lived() {
        let at = TOKEN_CREATE
            .iter()
            .position(|a| *a == "--ttl")
            .expect("--ttl");
        assert_eq!(TOKEN_CREATE.get(at + 1), Some(&"15m"));
        assert!(TOKEN_CREATE.contains(&"--print-join-command"));
    }
}
