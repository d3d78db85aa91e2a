//! Readiness and preflight: wait until every host accepts a real SSH login (port 22 open is not
//! enough), let cloud-init and apt finish, then gather every host's facts in parallel — one
//! command per host — and judge them. The connections stay open for the later steps.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use acura_ha_api::model::{ConsoleHostKeys, Host};
use backon::{ExponentialBuilder, Retryable};
use serde::Serialize;
use tokio::task::JoinSet;

use super::facts::{self, Expectations, Facts, Finding};
use super::ssh::{Session, SshError, SshOptions, Target};
use crate::output;
use crate::progress::Progress;

/// Open connections, one per host, reused by every step.
#[derive(Default, Clone)]
pub struct Pool {
    sessions: BTreeMap<String, Arc<Session>>,
    /// Hosts whose key was pinned on first use by this login (no console vouched for it).
    first_use: Vec<String>,
}

impl Pool {
    pub fn get(&self, host: &str) -> Option<Arc<Session>> {
        self.sessions.get(host).cloned()
    }

    pub fn insert(&mut self, session: Session) {
        self.sessions
            .insert(session.target.name.clone(), Arc::new(session));
    }

    pub fn hosts(&self) -> impl Iterator<Item = &String> {
        self.sessions.keys()
    }

    /// The hosts whose key this login pinned on first use (nothing pinned, no console keys).
    pub fn trusted_on_first_use(&self) -> &[String] {
        &self.first_use
    }
}

/// A host that could not be reached within the deadline, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}", .failures.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct Unreachable {
    pub failures: Vec<SshError>,
}

fn short_reason(e: &SshError) -> String {
    match e {
        SshError::Refused { .. } => "refused".into(),
        SshError::Timeout { .. } => "no answer".into(),
        SshError::AuthFailed { .. } => "login refused".into(),
        SshError::Connect { message, .. } => message.chars().take(60).collect(),
        other => other.to_string().chars().take(60).collect(),
    }
}

/// What no waiting heals: a changed, unverifiable or unreadable host key pin, an unusable key
/// file, no algorithm in common, a server that takes no key logins. Only refused, timed-out and
/// booting hosts (and a key cloud-init has not installed yet) are retried.
fn permanent(e: &SshError) -> bool {
    matches!(
        e,
        SshError::HostKeyChanged { .. }
            | SshError::Key { .. }
            | SshError::NoCommonAlgorithm { .. }
            | SshError::HostKeyInvalid { .. }
            | SshError::AuthMethod { .. }
            | SshError::KnownHosts { .. }
            | SshError::HostKeyNotVouched { .. }
    )
}

/// Connects to every host, retrying with backoff until `deadline`: a host may still be booting
/// (refused, timeout) or cloud-init may not have installed the key yet (login refused). A changed
/// host key or an unusable key file fails at once.
pub async fn connect_all(
    hosts: &[(Host, String)],
    opts: &SshOptions,
    deadline: Duration,
    progress: &mut Progress,
) -> Result<Pool, Unreachable> {
    connect_all_vouched(hosts, opts, &ConsoleHostKeys::default(), deadline, progress).await
}

/// [`connect_all`], pinning on first contact only the keys the cloud's console printed for a
/// host (`console`, by host name); hosts it has nothing for are pinned on first use, and the
/// run says which, once.
pub async fn connect_all_vouched(
    hosts: &[(Host, String)],
    opts: &SshOptions,
    console: &ConsoleHostKeys,
    deadline: Duration,
    progress: &mut Progress,
) -> Result<Pool, Unreachable> {
    let started = Instant::now();
    // The latest reason each host is still waited for, for the progress line.
    let waiting: Arc<std::sync::Mutex<BTreeMap<String, String>>> = Arc::default();
    let mut set = JoinSet::new();
    for (host, user) in hosts {
        let target = Target {
            name: host.name.clone(),
            address: host.address.clone(),
            port: acura_ha_api::tables::SSH_PORT,
            user: user.clone(),
        };
        let opts = opts.clone();
        let vouched = console
            .fingerprints
            .get(&host.name)
            .cloned()
            .unwrap_or_default();
        // Judged before the first attempt: a retry after a refused login finds the key pinned.
        let first_use = vouched.is_empty()
            && !super::ssh::is_pinned(&opts.known_hosts, &target.address, target.port);
        let waiting = waiting.clone();
        waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(host.name.clone(), "connecting".into());
        set.spawn(async move {
            let attempt = || {
                let target = target.clone();
                let opts = opts.clone();
                let vouched = vouched.clone();
                async move { Session::connect_vouched(&target, &opts, &vouched).await }
            };
            let policy = ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(10))
                .with_jitter()
                .with_max_times(usize::MAX)
                .with_total_delay(Some(deadline));
            let name = target.name.clone();
            let result = attempt
                .retry(policy)
                .when(|e| !permanent(e) && started.elapsed() < deadline)
                .notify(|e, _| {
                    let why = short_reason(e);
                    waiting
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(name.clone(), why);
                })
                .await;
            waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&target.name);
            (target.name.clone(), first_use, result)
        });
    }
    let total = hosts.len();
    let mut pool = Pool::default();
    let mut failures = Vec::new();
    progress.update(format!("0/{total} hosts accept a login"));
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        let joined = tokio::select! {
            j = set.join_next() => match j {
                Some(j) => j,
                None => break,
            },
            _ = tick.tick() => {
                let pending = waiting.lock().unwrap_or_else(|e| e.into_inner()).clone();
                if !pending.is_empty() {
                    let list: Vec<String> = pending.iter().map(|(h, why)| format!("{h} ({why})")).collect();
                    progress.update(format!(
                        "{}/{total} hosts accept a login; waiting for {}",
                        pool.sessions.len(),
                        list.join(", ")
                    ));
                }
                continue;
            }
        };
        match joined {
            Ok((name, first_use, Ok(session))) => {
                if first_use {
                    pool.first_use.push(name);
                }
                pool.insert(session);
                progress.update(format!(
                    "{}/{total} hosts accept a login",
                    pool.sessions.len()
                ));
            }
            Ok((_, _, Err(e))) => failures.push(e),
            Err(e) => failures.push(SshError::Channel {
                host: "?".into(),
                command: "connect".into(),
                message: e.to_string(),
            }),
        }
    }
    if failures.is_empty() {
        progress.done(format!("all {total} hosts accept a login"));
        if !pool.first_use.is_empty() {
            pool.first_use.sort();
            progress.done(format!(
                "host keys trusted on first use (no cloud console vouched for them): {}; now pinned in {}",
                pool.first_use.join(", "),
                opts.known_hosts.display()
            ));
        }
        Ok(pool)
    } else {
        Err(Unreachable { failures })
    }
}

/// One host's preflight result.
#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub host: String,
    pub address: String,
    pub role: &'static str,
    pub facts: Option<Facts>,
    pub findings: Vec<Finding>,
}

impl HostReport {
    pub fn ok(&self) -> bool {
        self.facts.is_some() && self.findings.iter().all(|f| !f.fatal)
    }
}

/// Waits for cloud-init and the dpkg lock, then gathers and checks facts on every host in
/// parallel. `expect` gives each host's expectations (the LB host is not held to node minimums).
pub async fn run(
    pool: &Pool,
    hosts: &[(Host, &'static str, Expectations)],
    deadline: Duration,
    progress: &mut Progress,
) -> Vec<HostReport> {
    let mut set = JoinSet::new();
    for (host, role, want) in hosts {
        let session = pool.get(&host.name);
        let host = host.clone();
        let role = *role;
        let want = want.clone();
        set.spawn(async move {
            let Some(session) = session else {
                return HostReport {
                    host: host.name,
                    address: host.address,
                    role,
                    facts: None,
                    findings: vec![Finding {
                        check: "ssh",
                        message: "no connection".into(),
                        fatal: true,
                    }],
                };
            };
            let (facts, mut findings) = match gather(&session, &want, deadline).await {
                Ok(facts) => {
                    let findings = facts::check(&facts, &want);
                    (Some(facts), findings)
                }
                Err(e) => (
                    None,
                    vec![Finding {
                        check: "ssh",
                        message: e.to_string(),
                        fatal: true,
                    }],
                ),
            };
            // `sudo -n true` failed (or the password check did): say why when it is requiretty.
            let sudo_failed = facts.as_ref().is_some_and(|f| f.sudo == "password")
                || findings.iter().any(|f| requiretty(&f.message));
            if sudo_failed && let Some(f) = requiretty_finding(&session).await {
                findings.push(f);
            }
            HostReport {
                host: host.name,
                address: host.address,
                role,
                facts,
                findings,
            }
        });
    }
    let mut reports = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok(r) = r {
            reports.push(r);
            progress.update(format!("{}/{} hosts checked", reports.len(), hosts.len()));
        }
    }
    // Table order: the inventory's.
    reports.sort_by_key(|r| hosts.iter().position(|(h, _, _)| h.name == r.host));
    reports
}

/// Whether sudo refused for want of a terminal (`Defaults requiretty`).
pub fn requiretty(sudo_stderr: &str) -> bool {
    sudo_stderr.contains("you must have a tty to run sudo")
}

/// A host whose sudo has `Defaults requiretty` for the SSH user: the tool's own commands and
/// Ansible's pipelining both run sudo without a terminal (issue 12 item 4). Such a host is named
/// in a fatal finding, and the run's playbooks would go without pipelining
/// ([`super::ansible::refuse_pipelining`]).
async fn requiretty_finding(session: &Session) -> Option<Finding> {
    let out = session
        .run("sudo -n true", Duration::from_secs(30))
        .await
        .ok()?;
    if out.status == 0 || !requiretty(&out.stderr_text()) {
        return None;
    }
    super::ansible::refuse_pipelining(&session.target.name);
    Some(Finding {
        check: "sudo",
        message: format!(
            "sudo has `Defaults requiretty` for {}: acura-ha and Ansible's pipelining run sudo without a terminal; \
             allow it (visudo: `Defaults:{} !requiretty`)",
            session.target.user, session.target.user
        ),
        fatal: true,
    })
}

/// cloud-init first (it may still be writing keys and installing packages), then the dpkg lock,
/// then the facts — all in one round trip.
async fn gather(
    session: &Session,
    want: &Expectations,
    deadline: Duration,
) -> Result<Facts, SshError> {
    // The dpkg lock needs root: the one sudo of this script, whose password line (when the
    // host's sudo asks for one) is the script's only input. A refused password fails here.
    let become_ = super::sudo::current();
    let root = become_
        .prepare_lenient(session)
        .await
        .map_err(|e| match e {
            super::sudo::SudoError::Ssh(e) => e,
            other => SshError::Channel {
                host: session.target.name.clone(),
                command: "sudo".into(),
                message: other.to_string(),
            },
        })?;
    let wait = format!(
        "if command -v cloud-init >/dev/null 2>&1; then cloud-init status --wait </dev/null >/dev/null 2>&1 || true; fi\n\
         if command -v flock >/dev/null 2>&1 && [ -e /var/lib/dpkg/lock-frontend ]; then\n\
           {flock} 2>/dev/null || true\n\
         fi\n",
        flock = root.command(&format!(
            "flock -w {} /var/lib/dpkg/lock-frontend true",
            deadline.as_secs()
        ))
    );
    let cmd = format!(
        "sh -c {}",
        super::ssh::shell_quote(&(wait + &facts::script(&want.dns_name)))
    );
    let out = root
        .run(session, &cmd, deadline + Duration::from_secs(30))
        .await?;
    if out.status != 0 {
        return Err(SshError::Channel {
            host: session.target.name.clone(),
            command: "preflight facts".into(),
            message: format!("exit {}: {}", out.status, out.stderr_text().trim()),
        });
    }
    Ok(Facts::parse(&out.stdout_text()))
}

/// The preflight table: one line per host, then every finding explained.
pub fn table(reports: &[HostReport]) -> String {
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            let f = r.facts.clone().unwrap_or_default();
            let known = r.facts.is_some();
            let v = |s: String| if known { s } else { "-".into() };
            vec![
                r.host.clone(),
                r.address.clone(),
                r.role.to_string(),
                v(format!("{} {}", f.os_id, f.os_version)),
                v(format!("{:.0} GiB", f.root_gib())),
                v(format!("{:.1} GiB", f.ram_gib())),
                v(f.vcpus.to_string()),
                v(if f.dns_ok { "ok".into() } else { "fail".into() }),
                v(f.sudo.clone()),
                v(f.time_sync.clone()),
                if r.ok() {
                    if r.findings.is_empty() {
                        "ok".into()
                    } else {
                        "ok (warnings)".into()
                    }
                } else {
                    "FAIL".into()
                },
            ]
        })
        .collect();
    let mut out = output::table(
        &[
            "HOST", "ADDRESS", "ROLE", "OS", "ROOT", "RAM", "VCPU", "DNS", "SUDO", "TIME", "RESULT",
        ],
        &rows,
    );
    for r in reports {
        for f in &r.findings {
            out.push_str(&format!(
                "  {} {}: {}: {}\n",
                if f.fatal { "error" } else { "warning" },
                r.host,
                f.check,
                f.message
            ));
        }
    }
    out
}

/// Logs in to every host as the cluster's SSH user, waiting up to the file's `ssh_wait_secs`
/// (a host may still be booting), with a progress line.
pub async fn login(
    spec: &acura_ha_api::spec::ClusterSpec,
    hosts: &[(Host, &'static str)],
    opts: &SshOptions,
    quiet: bool,
) -> Result<Pool, super::BootstrapError> {
    login_vouched(spec, hosts, opts, &ConsoleHostKeys::default(), quiet).await
}

/// [`login`] to hosts the provider just made, with the host keys their consoles printed.
pub async fn login_vouched(
    spec: &acura_ha_api::spec::ClusterSpec,
    hosts: &[(Host, &'static str)],
    opts: &SshOptions,
    console: &ConsoleHostKeys,
    quiet: bool,
) -> Result<Pool, super::BootstrapError> {
    let users: Vec<(Host, String)> = hosts
        .iter()
        .map(|(h, _)| (h.clone(), spec.access.ssh_user.clone()))
        .collect();
    let mut progress = Progress::new("ssh").quiet(quiet);
    connect_all_vouched(
        &users,
        opts,
        console,
        Duration::from_secs(spec.ssh_wait_secs()),
        &mut progress,
    )
    .await
    .map_err(super::BootstrapError::Unreachable)
}

/// What each host is checked against: the node minimums, or next to nothing for the NGINX host.
pub fn expectations(
    spec: &acura_ha_api::spec::ClusterSpec,
    hosts: &[(Host, &'static str)],
    become_password: bool,
) -> Vec<(Host, &'static str, Expectations)> {
    let dns_name = spec
        .preflight
        .dns_name
        .clone()
        .unwrap_or_else(|| "archive.ubuntu.com".into());
    hosts
        .iter()
        .map(|(h, role)| {
            let minimums = if *role == "node" {
                spec.minimums()
            } else {
                // The LB host runs NGINX only: the node minimums do not apply to it.
                acura_ha_api::tables::NodeMinimums {
                    root_gb: 1,
                    single_partition: false,
                    ram_gb: 1,
                    vcpus: 1,
                }
            };
            (
                h.clone(),
                *role,
                Expectations {
                    minimums,
                    os: spec.accepted_os(),
                    dns_name: dns_name.clone(),
                    hostname: Some(h.name.clone()),
                    become_password,
                },
            )
        })
        .collect()
}

/// How long the checks of all hosts may take together.
const CHECK_DEADLINE: Duration = Duration::from_secs(600);

/// Checks every host of `pool` against its expectations, changing nothing; the reports.
pub async fn check_all(
    pool: &Pool,
    spec: &acura_ha_api::spec::ClusterSpec,
    hosts: &[(Host, &'static str)],
    become_password: bool,
    quiet: bool,
) -> Vec<HostReport> {
    let checks = expectations(spec, hosts, become_password);
    let mut progress = Progress::new("preflight").quiet(quiet);
    run(pool, &checks, CHECK_DEADLINE, &mut progress).await
}

/// The preflight step of `up` and `node add`: check, show the table, and fail on any host that
/// does not pass.
pub async fn gate(
    pool: &Pool,
    spec: &acura_ha_api::spec::ClusterSpec,
    hosts: &[(Host, &'static str)],
    become_password: bool,
    ui: &crate::output::Ui,
) -> Result<(), super::BootstrapError> {
    let reports = check_all(pool, spec, hosts, become_password, false).await;
    ui.say(format_args!("\n{}", table(&reports)));
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| !r.ok())
        .map(|r| r.host.as_str())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(super::BootstrapError::Preflight(failed.join(", ")))
    }
}

/// The host keys the cloud vouches for (each server's console output, issue 10 item 4), for
/// [`login_vouched`]. A provider without consoles (static, local) has none; a failure to ask is
/// a note, not an error: those hosts are then pinned on first use, and the login says so.
pub async fn console_keys(
    provider: &dyn acura_ha_api::provider::Provider,
    spec: &acura_ha_api::spec::ClusterSpec,
    inventory: &acura_ha_api::model::Inventory,
    recorded: &[acura_ha_api::model::Recorded],
    quiet: bool,
) -> ConsoleHostKeys {
    match provider.console_host_keys(spec, inventory, recorded).await {
        Ok(keys) => keys,
        Err(e) => {
            if !quiet {
                eprintln!(
                    "note: the host keys cannot be read from the servers' consoles ({e}); they are pinned on first use"
                );
            }
            ConsoleHostKeys::default()
        }
    }
}
