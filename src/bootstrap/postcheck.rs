//! Post-checks: on a node, every Kubernetes node Ready and every pod Running, polled with a
//! deadline and a progress line.

use std::time::Duration;

use serde::Serialize;

use super::ssh::{Session, SshError};
use super::sudo::{self, Sudo, SudoError};
use crate::progress::Progress;

#[derive(Debug, thiserror::Error)]
pub enum PostCheckError {
    #[error("{0}")]
    Ssh(#[from] SshError),
    /// sudo refused the password, or needs one that was not given: no wait heals this.
    #[error("{0}")]
    Sudo(Box<SudoError>),
    #[error("after {secs:.0} s: {state} (asked {host})")]
    NotReady {
        host: String,
        secs: f64,
        state: String,
    },
}

/// Boxed: an SSH error inside would make every `Result` of this stage large.
impl From<SudoError> for PostCheckError {
    fn from(e: SudoError) -> Self {
        PostCheckError::Sudo(Box::new(e))
    }
}

/// What the cluster looked like at the last poll.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ClusterHealth {
    pub nodes_ready: Vec<String>,
    pub nodes_not_ready: Vec<String>,
    pub pods_running: usize,
    pub pods_not_running: Vec<String>,
    /// Why the last poll could not tell (kubectl missing or failing).
    pub error: Option<String>,
}

impl ClusterHealth {
    pub fn ready(&self, expected_nodes: &[String]) -> bool {
        self.error.is_none()
            && self.nodes_not_ready.is_empty()
            && expected_nodes.iter().all(|n| self.nodes_ready.contains(n))
            && self.pods_running > 0
            && self.pods_not_running.is_empty()
    }

    pub fn describe(&self) -> String {
        if let Some(e) = &self.error {
            return e.clone();
        }
        let mut s = format!(
            "{} node(s) Ready{}, {} pod(s) Running",
            self.nodes_ready.len(),
            if self.nodes_not_ready.is_empty() {
                String::new()
            } else {
                format!(", not Ready: {}", self.nodes_not_ready.join(", "))
            },
            self.pods_running
        );
        if !self.pods_not_running.is_empty() {
            s.push_str(&format!(
                ", not Running: {}",
                self.pods_not_running.join(", ")
            ));
        }
        s
    }
}

fn kubectl(root: &Sudo<'_>, args: &str) -> String {
    // ~/.local/bin holds user-installed tools (Ubuntu's profile adds it too); SSH commands do
    // not read the profile. `$HOME` is the login user's: the login shell expands it first.
    root.command(&format!(
        "env PATH=\"$HOME/.local/bin:$PATH\" kubectl {args}"
    ))
}

/// One look at the cluster from `session`. A sudo that refuses (wrong or missing become
/// password) is an error, not a state to poll.
pub async fn health(session: &Session) -> Result<ClusterHealth, PostCheckError> {
    let become_ = sudo::current();
    let root = become_.prepare(session).await?;
    let mut h = ClusterHealth::default();
    let nodes = root
        .run(
            session,
            &kubectl(&root, "get nodes -o json"),
            Duration::from_secs(60),
        )
        .await?;
    if nodes.status != 0 {
        h.error = Some(format!("kubectl get nodes: {}", nodes.stderr_text().trim()));
        return Ok(h);
    }
    let v: serde_json::Value = serde_json::from_slice(&nodes.stdout).unwrap_or_default();
    for item in v["items"].as_array().into_iter().flatten() {
        let name = item["metadata"]["name"].as_str().unwrap_or("?").to_string();
        let ready = item["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        if ready {
            h.nodes_ready.push(name);
        } else {
            h.nodes_not_ready.push(name);
        }
    }
    let pods = root
        .run(
            session,
            &kubectl(&root, "get pods -A -o json"),
            Duration::from_secs(60),
        )
        .await?;
    if pods.status != 0 {
        h.error = Some(format!("kubectl get pods: {}", pods.stderr_text().trim()));
        return Ok(h);
    }
    let v: serde_json::Value = serde_json::from_slice(&pods.stdout).unwrap_or_default();
    for item in v["items"].as_array().into_iter().flatten() {
        let phase = item["status"]["phase"].as_str().unwrap_or("");
        match phase {
            "Running" => h.pods_running += 1,
            "Succeeded" => {}
            other => h.pods_not_running.push(format!(
                "{}/{} ({})",
                item["metadata"]["namespace"].as_str().unwrap_or("?"),
                item["metadata"]["name"].as_str().unwrap_or("?"),
                if other.is_empty() { "unknown" } else { other }
            )),
        }
    }
    Ok(h)
}

/// Polls until every expected node is Ready and every pod Running, or `deadline` passes.
pub async fn wait_ready(
    session: &Session,
    expected_nodes: &[String],
    deadline: Duration,
    progress: &mut Progress,
) -> Result<ClusterHealth, PostCheckError> {
    let started = std::time::Instant::now();
    let mut delay = Duration::from_secs(2);
    loop {
        let h = health(session).await?;
        if h.ready(expected_nodes) {
            progress.done(h.describe());
            return Ok(h);
        }
        progress.update(h.describe());
        if started.elapsed() + delay > deadline {
            return Err(PostCheckError::NotReady {
                host: session.target.name.clone(),
                secs: started.elapsed().as_secs_f64(),
                state: h.describe(),
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(15));
    }
}
