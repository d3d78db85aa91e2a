//! The engine: runs `up`, `status` and `down` step by step, recording every resource and every
//! completed step in the state, so a re-run skips what is done and resumes where a run stopped.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use acura_ha_api::inventory;
use acura_ha_api::model::{Host, Inventory};
use acura_ha_api::provider::Provider;
use acura_ha_api::spec::ProviderKind;
use acura_ha_api::static_provider::StaticProvider;
use acura_ha_api::tables::{self, LISTENERS, Protocol};
use serde::Serialize;

use crate::bootstrap::ansible::{self, SecretVars, Workspace};
use crate::bootstrap::facts::Expectations;
use crate::bootstrap::preflight::{self, HostReport, Pool};
use crate::bootstrap::ssh::{Credentials, Session, SshOptions, Target};
use crate::bootstrap::{self, inventory as ha_env, lbhost, playbook, postcheck};
use crate::config::LoadedConfig;
use crate::error::Error;
use crate::plan::{self, Plan, StepAction};
use crate::progress::Progress;
use crate::state::{State, StateJournal, StateStore, StepRecord, now_rfc3339, write_atomic};

/// `up --only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Only {
    /// The cloud resources (or lab hosts), then stop.
    Provision,
    /// Everything after provisioning: SSH, preflight, NGINX, playbooks, post-checks.
    Bootstrap,
}

#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    pub yes: bool,
    pub only: Option<Only>,
    /// The sudo password for users without passwordless sudo (the guide's `-K`).
    pub become_password: Option<String>,
}

/// The provider for a cluster file.
pub fn provider(cfg: &LoadedConfig, store: &StateStore) -> Result<Box<dyn Provider>, Error> {
    match cfg.spec.provider_kind() {
        ProviderKind::Static => Ok(Box::new(StaticProvider)),
        ProviderKind::Local => {
            let key =
                bootstrap::key_file(cfg, store).expect("the local target always has a key file");
            Ok(Box::new(acura_ha_local::LocalProvider::new(
                store.cluster_dir(),
                key,
            )))
        }
        #[cfg(feature = "aws")]
        ProviderKind::Aws => Ok(Box::new(acura_ha_aws::AwsProvider::new(cfg.dir.clone()))),
        #[cfg(feature = "openstack")]
        ProviderKind::OpenStack => Ok(Box::new(acura_ha_openstack::OpenStackProvider::new(
            cfg.dir.clone(),
        ))),
        // Reached only in a build without a cloud's feature.
        #[allow(unreachable_patterns)]
        other => Err(Error::Usage(format!(
            "the {} provider is not in this build of acura-ha (`plan` and `render` work): build with `--features {}`",
            other.as_str(),
            other.as_str()
        ))),
    }
}

/// `-c FILE` (and `--state-dir DIR` when it is not the default), for the hints printed.
fn command_args(cfg: &LoadedConfig, store: &StateStore) -> String {
    let mut args = format!("-c {}", cfg.path.display());
    let default = cfg.dir.join(crate::state::DEFAULT_DIR);
    if store.dir != std::path::absolute(&default).unwrap_or(default) {
        args.push_str(&format!(" --state-dir {}", store.dir.display()));
    }
    args
}

/// Asks before a destructive or costly change: on a terminal, the user types `yes`; without one,
/// only `--yes` proceeds.
pub fn confirm(question: &str, yes: bool) -> Result<(), Error> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::Refused(format!(
            "{} — there is no terminal to confirm on: pass --yes to proceed",
            question.trim()
        )));
    }
    eprint!("{question} Only 'yes' is accepted: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::Refused(e.to_string()))?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(Error::Refused("not confirmed: nothing was changed".into()))
    }
}

pub(crate) fn ssh_options(cfg: &LoadedConfig, store: &StateStore) -> SshOptions {
    SshOptions {
        known_hosts: store.cluster_dir().join("known_hosts"),
        credentials: Credentials {
            key_file: bootstrap::key_file(cfg, store),
            agent: cfg.spec.access.ssh_agent,
            agent_socket: None,
        },
        // One attempt never outlasts the whole wait.
        connect_timeout: Duration::from_secs(10.min(cfg.spec.ssh_wait_secs().max(1))),
    }
}

/// The hosts to log in to: the nodes, then the NGINX host.
fn ssh_hosts(inv: &Inventory) -> Vec<(Host, &'static str)> {
    let mut hosts: Vec<(Host, &'static str)> =
        inv.nodes.iter().map(|h| (h.clone(), "node")).collect();
    if let Some(lb) = &inv.lb.nginx_host {
        hosts.push((lb.clone(), "nginx-lb"));
    }
    hosts
}

/// What `up` did, for the summary.
#[derive(Debug, Serialize)]
pub struct UpReport {
    pub cluster: String,
    pub initial_config_url: Option<String>,
    pub ui_url: Option<String>,
    pub steps_run: Vec<String>,
}

pub async fn up(
    cfg: &LoadedConfig,
    store: &StateStore,
    opts: &UpOptions,
) -> Result<UpReport, Error> {
    let spec = &cfg.spec;
    // A provider that cannot provision fails before anything is shown or asked.
    let provider = provider(cfg, store)?;
    let _lock = store.lock("up")?;
    let mut state = store.load_or_new(spec.provider_kind().as_str())?;
    let paths = bootstrap::paths(cfg, store);
    let first = plan::build(spec, (state.serial > 0).then_some(&state), &paths);
    print!("{}", plan::render_text(&first));
    let mut report = UpReport {
        cluster: spec.cluster.name.clone(),
        initial_config_url: None,
        ui_url: None,
        steps_run: Vec::new(),
    };
    if !first.has_changes() {
        println!("\nNothing to do: the cluster matches the file.");
        return Ok(report);
    }
    confirm("\nApply this plan?", opts.yes)?;

    let inv = if opts.only == Some(Only::Bootstrap) {
        inventory::inventory(spec, &state.resources)?
    } else {
        let mut progress = Progress::new("provision");
        progress.update(format!("{} resources", provider.kind().as_str()));
        let mut journal = StateJournal {
            store,
            state: &mut state,
        };
        let inv = provider.provision(spec, &mut journal).await?;
        progress.done(format!(
            "{} hosts ready to log in",
            inv.nodes.len() + usize::from(inv.lb.nginx_host.is_some())
        ));
        inv
    };
    if opts.only == Some(Only::Provision) {
        println!(
            "Provisioned. Continue with `acura-ha up --only bootstrap {}`.",
            command_args(cfg, store)
        );
        return Ok(report);
    }

    // The steps as they stand now that every address is known.
    let plan = plan::build(spec, Some(&state), &paths);
    let mut runner = Bootstrap {
        cfg,
        store,
        state: &mut state,
        plan: &plan,
        inv: &inv,
        pool: Pool::default(),
        become_password: opts.become_password.clone(),
    };
    runner.run(&mut report).await?;
    let lb = &inv.lb.address;
    report.initial_config_url = Some(tables::initial_config_url(lb));
    report.ui_url = Some(tables::ui_url(lb));
    let args = command_args(cfg, store);
    println!(
        "\nAcura HA cluster {:?} is up.\n  Initial configuration: {}\n  Acura UI:              {}\n  Status:   acura-ha status {args}\n  Teardown: acura-ha down {args}",
        spec.cluster.name,
        tables::initial_config_url(lb),
        tables::ui_url(lb),
    );
    Ok(report)
}

/// What each host is checked against: the node minimums, or next to nothing for the NGINX host.
pub(crate) fn expectations(
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
                tables::NodeMinimums {
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

pub(crate) fn fail_on(reports: &[HostReport]) -> Result<(), Error> {
    let failed: Vec<&HostReport> = reports.iter().filter(|r| !r.ok()).collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Preflight(
            failed
                .iter()
                .map(|r| r.host.clone())
                .collect::<Vec<_>>()
                .join(", "),
        ))
    }
}

/// `preflight`: log in to every host and check it, changing nothing. Returns the reports.
pub async fn preflight_only(
    cfg: &LoadedConfig,
    store: &StateStore,
    become_password: bool,
    quiet: bool,
) -> Result<Vec<HostReport>, Error> {
    let spec = &cfg.spec;
    let inv = known_inventory(cfg, store)?;
    let hosts = ssh_hosts(&inv);
    let users: Vec<(Host, String)> = hosts
        .iter()
        .map(|(h, _)| (h.clone(), spec.access.ssh_user.clone()))
        .collect();
    let mut progress = Progress::new("ssh").quiet(quiet);
    let pool = preflight::connect_all(
        &users,
        &ssh_options(cfg, store),
        Duration::from_secs(spec.ssh_wait_secs()),
        &mut progress,
    )
    .await
    .map_err(Error::Unreachable)?;
    let checks = expectations(spec, &hosts, become_password);
    let mut progress = Progress::new("preflight").quiet(quiet);
    Ok(preflight::run(&pool, &checks, Duration::from_secs(600), &mut progress).await)
}

struct Bootstrap<'a> {
    cfg: &'a LoadedConfig,
    store: &'a StateStore,
    state: &'a mut State,
    plan: &'a Plan,
    inv: &'a Inventory,
    pool: Pool,
    become_password: Option<String>,
}

impl Bootstrap<'_> {
    fn pending(&self, id: &str) -> bool {
        self.plan
            .bootstrap
            .iter()
            .any(|s| s.id == id && s.action == StepAction::Run)
    }

    fn record(&mut self, id: &str) -> Result<(), Error> {
        let inputs = self
            .plan
            .bootstrap
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.inputs.clone())
            .unwrap_or_default();
        self.state.steps.insert(
            id.to_string(),
            StepRecord {
                completed_at: now_rfc3339(),
                inputs,
            },
        );
        self.store.save(self.state)
    }

    async fn run(&mut self, report: &mut UpReport) -> Result<(), Error> {
        let spec = &self.cfg.spec;
        let opts = ssh_options(self.cfg, self.store);
        let hosts = ssh_hosts(self.inv);
        let users: Vec<(Host, String)> = hosts
            .iter()
            .map(|(h, _)| (h.clone(), spec.access.ssh_user.clone()))
            .collect();
        let mut progress = Progress::new("ssh");
        self.pool = preflight::connect_all(
            &users,
            &opts,
            Duration::from_secs(spec.ssh_wait_secs()),
            &mut progress,
        )
        .await
        .map_err(Error::Unreachable)?;

        if self.pending("preflight") {
            let checks = expectations(spec, &hosts, self.become_password.is_some());
            let mut progress = Progress::new("preflight");
            let reports =
                preflight::run(&self.pool, &checks, Duration::from_secs(600), &mut progress).await;
            println!("\n{}", preflight::table(&reports));
            fail_on(&reports)?;
            self.record("preflight")?;
            report.steps_run.push("preflight".into());
        }

        if let Some(lb) = &self.inv.lb.nginx_host
            && self.pending("nginx")
        {
            let session = self.session(&lb.name)?;
            let mut progress = Progress::new("nginx");
            lbhost::configure(&session, &spec.cluster.name, &self.inv.nodes, &mut progress).await?;
            let proof = lbhost::prove(
                &self.pool,
                &self.inv.nodes,
                &self.inv.lb.address,
                &mut progress,
            )
            .await?;
            progress.done(format!(
                "all {} listeners reach the nodes",
                proof.reached.len()
            ));
            self.record("nginx")?;
            report.steps_run.push("nginx".into());
        }

        let cluster_dir = self.store.cluster_dir();
        let inventory_path = cluster_dir.join(tables::HA_ENV_FILE);
        if self.pending("ha_env_file") || !inventory_path.exists() {
            let key = bootstrap::key_file(self.cfg, self.store);
            let text = ha_env::render(&spec.cluster.name, &self.inv.nodes, key.as_deref());
            std::fs::create_dir_all(&cluster_dir).map_err(|source| Error::Write {
                path: cluster_dir.clone(),
                source,
            })?;
            write_atomic(&inventory_path, text.as_bytes())?;
            self.record("ha_env_file")?;
            report.steps_run.push("ha_env_file".into());
        }

        if self.pending("k8s-master") || self.pending("ha-acura") {
            let ws = self.workspace().await?;
            let secrets = self.secrets();
            let inv_path = inventory_path.display().to_string();
            if self.pending("k8s-master") {
                let run = playbook::k8s_master(spec, &self.inv.lb.address, &inv_path);
                eprintln!("[   run] k8s-master: {}", run.command_line());
                ansible::run_playbook(&ws, &run, &secrets, "k8s-master", false).await?;
                self.record("k8s-master")?;
                report.steps_run.push("k8s-master".into());
            }
            if self.pending("ha-acura") {
                let run = playbook::ha_acura(spec, &spec.overlays(), false, &inv_path);
                eprintln!("[   run] ha-acura: {}", run.command_line());
                ansible::run_playbook(&ws, &run, &secrets, "ha-acura", false).await?;
                self.record("ha-acura")?;
                report.steps_run.push("ha-acura".into());
            }
        }

        if self.pending("post-checks") {
            let first = self
                .inv
                .nodes
                .first()
                .map(|h| h.name.clone())
                .unwrap_or_default();
            let session = self.session(&first)?;
            let names: Vec<String> = self.inv.nodes.iter().map(|h| h.name.clone()).collect();
            let mut progress = Progress::new("post-checks");
            let wait = Duration::from_secs(spec.preflight.ready_wait_secs.unwrap_or(1800));
            postcheck::wait_ready(&session, &names, wait, &mut progress).await?;
            self.record("post-checks")?;
            report.steps_run.push("post-checks".into());
        }
        Ok(())
    }

    fn session(&self, host: &str) -> Result<std::sync::Arc<Session>, Error> {
        self.pool
            .get(host)
            .ok_or_else(|| Error::Usage(format!("no SSH connection to {host}")))
    }

    fn secrets(&self) -> SecretVars {
        let mut v = SecretVars::default();
        if let Some(pw) = &self.become_password {
            v.0.push(("ansible_become_password".into(), pw.clone()));
        }
        v
    }

    async fn workspace(&self) -> Result<Workspace, Error> {
        workspace(self.cfg, self.store).await
    }
}

/// The archive unpacked (or its folder) and a Python environment with its requirements.
pub(crate) async fn workspace(cfg: &LoadedConfig, store: &StateStore) -> Result<Workspace, Error> {
    let spec = &cfg.spec;
    let archive = spec
        .bootstrap
        .archive
        .as_deref()
        .map(|a| cfg.resolve(a))
        .ok_or_else(|| Error::Usage("bootstrap.archive is not set: name Hystax's hystax-ha-archive.tar.gz (or its folder)".into()))?;
    let cluster_dir = store.cluster_dir();
    let root = ansible::prepare_archive(&archive, &cluster_dir).await?;
    let (python, note) = ansible::pick_python().await?;
    if let Some(n) = note {
        eprintln!("note: {n}");
    }
    let mut progress = Progress::new("ansible");
    progress.update("python virtual environment with the archive's requirements.txt");
    let venv =
        ansible::prepare_venv(&root, &cache_dir(), &python, &cluster_dir.join("logs")).await?;
    progress.done(format!("ansible ready in {}", venv.display()));
    Ok(Workspace {
        archive: root,
        venv,
        cluster_dir: cluster_dir.clone(),
        known_hosts: cluster_dir.join("known_hosts"),
    })
}

/// Where shared, rebuildable things live (Python environments).
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ACURA_HA_CACHE") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("acura-ha");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".cache").join("acura-ha"),
        None => PathBuf::from("/var/cache/acura-ha"),
    }
}

/// One host's status.
#[derive(Debug, Serialize)]
pub struct HostStatus {
    pub host: String,
    pub address: String,
    pub role: &'static str,
    pub ssh: String,
    pub preflight: String,
}

#[derive(Debug, Serialize)]
pub struct ListenerStatus {
    pub listener: String,
    pub address: String,
    pub state: String,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub cluster: String,
    pub provider: &'static str,
    pub state_serial: Option<u64>,
    pub hosts: Vec<HostStatus>,
    pub kubernetes: Option<postcheck::ClusterHealth>,
    pub listeners: Vec<ListenerStatus>,
    pub healthy: bool,
}

pub async fn status(cfg: &LoadedConfig, store: &StateStore) -> Result<Status, Error> {
    let spec = &cfg.spec;
    let state = store.load()?;
    let inv = known_inventory(cfg, store)?;
    let mut opts = ssh_options(cfg, store);
    opts.connect_timeout = Duration::from_secs(5);
    let hosts = ssh_hosts(&inv);
    let mut hosts_out = Vec::new();
    let mut pool = Pool::default();
    let mut set = tokio::task::JoinSet::new();
    // Status reports sudo as it finds it: a password is not a failure here.
    for (h, role, want) in expectations(spec, &hosts, true) {
        let target = Target {
            name: h.name.clone(),
            address: h.address.clone(),
            port: tables::SSH_PORT,
            user: spec.access.ssh_user.clone(),
        };
        let opts = opts.clone();
        set.spawn(async move {
            match Session::connect(&target, &opts).await {
                Ok(s) => {
                    let cmd = format!(
                        "sh -c {}",
                        bootstrap::ssh::shell_quote(&bootstrap::facts::script(&want.dns_name))
                    );
                    let pre = match s.run(&cmd, Duration::from_secs(30)).await {
                        Ok(out) => {
                            let f = bootstrap::facts::Facts::parse(&out.stdout_text());
                            let findings = bootstrap::facts::check(&f, &want);
                            let fatal: Vec<_> = findings
                                .iter()
                                .filter(|f| f.fatal)
                                .map(|f| format!("{}: {}", f.check, f.message))
                                .collect();
                            if fatal.is_empty() {
                                "ok".to_string()
                            } else {
                                fatal.join("; ")
                            }
                        }
                        Err(e) => e.to_string(),
                    };
                    (h, role, "ok".to_string(), pre, Some(s))
                }
                Err(e) => (h, role, e.to_string(), "-".into(), None),
            }
        });
    }
    while let Some(Ok((h, role, ssh, pre, session))) = set.join_next().await {
        if let Some(s) = session {
            pool.insert(s);
        }
        hosts_out.push(HostStatus {
            host: h.name,
            address: h.address,
            role,
            ssh,
            preflight: pre,
        });
    }
    hosts_out.sort_by_key(|s| hosts.iter().position(|(h, _)| h.name == s.host));
    let mut kubernetes = None;
    for n in &inv.nodes {
        if let Some(s) = pool.get(&n.name) {
            kubernetes = postcheck::health(&s).await.ok();
            break;
        }
    }
    let mut listeners = Vec::new();
    let inside = inv.nodes.iter().find_map(|n| pool.get(&n.name));
    for l in LISTENERS {
        let addr = format!("{}:{}", inv.lb.address, l.port);
        let state = match l.protocol {
            // Not open to the public by the guide's security group: ask from a node.
            Protocol::Tcp if !lbhost::public(l) => match &inside {
                Some(s) => match lbhost::remote_probe(s, l, &inv.lb.address, 1).await {
                    Ok(r) if r.first().is_some_and(|x| x.is_ok()) => "accepting".to_string(),
                    Ok(r) => format!(
                        "not accepting from {}: {}",
                        s.target.name,
                        r.first().and_then(|x| x.clone().err()).unwrap_or_default()
                    ),
                    Err(e) => format!("not checked: {e}"),
                },
                None => "not checked (no node reachable to ask from)".to_string(),
            },
            Protocol::Tcp => {
                let a = tokio::net::lookup_host(&addr)
                    .await
                    .ok()
                    .and_then(|mut i| i.next());
                match a {
                    Some(a) => match tokio::time::timeout(
                        Duration::from_secs(3),
                        tokio::net::TcpStream::connect(a),
                    )
                    .await
                    {
                        Ok(Ok(_)) => "accepting".to_string(),
                        Ok(Err(e)) => format!("not accepting: {e}"),
                        Err(_) => "no answer within 3 s".to_string(),
                    },
                    None => "cannot resolve".to_string(),
                }
            }
            // UDP has no handshake: only the bootstrap's proof (or traffic) can show it works.
            Protocol::Udp => "not checked (UDP)".to_string(),
        };
        listeners.push(ListenerStatus {
            listener: format!("{} {}/{}", l.name, l.protocol, l.port),
            address: addr,
            state,
        });
    }
    let expected: Vec<String> = inv.nodes.iter().map(|h| h.name.clone()).collect();
    let healthy = hosts_out
        .iter()
        .all(|h| h.ssh == "ok" && h.preflight == "ok")
        && kubernetes.as_ref().is_some_and(|k| k.ready(&expected))
        && listeners
            .iter()
            .all(|l| l.state == "accepting" || l.state == "not checked (UDP)");
    Ok(Status {
        cluster: spec.cluster.name.clone(),
        provider: spec.provider_kind().as_str(),
        state_serial: state.as_ref().map(|s| s.serial),
        hosts: hosts_out,
        kubernetes,
        listeners,
        healthy,
    })
}

pub fn render_status(s: &Status) -> String {
    let mut out = format!("cluster {:?} on {}\n\n", s.cluster, s.provider);
    let rows: Vec<Vec<String>> = s
        .hosts
        .iter()
        .map(|h| {
            vec![
                h.host.clone(),
                h.address.clone(),
                h.role.to_string(),
                h.ssh.clone(),
                h.preflight.clone(),
            ]
        })
        .collect();
    out.push_str(&crate::output::table(
        &["HOST", "ADDRESS", "ROLE", "SSH", "PREFLIGHT"],
        &rows,
    ));
    out.push_str(&format!(
        "\nkubernetes: {}\n\n",
        s.kubernetes
            .as_ref()
            .map(|k| k.describe())
            .unwrap_or_else(|| "no node reachable".into())
    ));
    let rows: Vec<Vec<String>> = s
        .listeners
        .iter()
        .map(|l| vec![l.listener.clone(), l.address.clone(), l.state.clone()])
        .collect();
    out.push_str(&crate::output::table(
        &["LISTENER", "ADDRESS", "STATE"],
        &rows,
    ));
    out.push_str(&format!(
        "\n{}\n",
        if s.healthy { "healthy" } else { "DEGRADED" }
    ));
    out
}

/// `down`: deletes what the cluster owns, in reverse order, and the tool's files for it. With
/// `discover`, also what the cloud holds under the cluster's tags (the state was lost).
pub async fn down(
    cfg: &LoadedConfig,
    store: &StateStore,
    yes: bool,
    discover: bool,
) -> Result<(), Error> {
    let spec = &cfg.spec;
    let provider = provider(cfg, store)?;
    let _lock = store.lock("down")?;
    let mut state = store.load_or_new(spec.provider_kind().as_str())?;
    if discover {
        let found = provider.discover(spec).await?;
        for r in found {
            if state.resource(&r.address).is_none() {
                state.resources.push(r);
            }
        }
    }
    let managed: Vec<String> = state
        .resources
        .iter()
        .rev()
        .map(|r| r.address.clone())
        .collect();
    match spec.provider_kind() {
        ProviderKind::Static => println!(
            "Cluster {:?} uses your own hosts: nothing is deleted on them; the tool's state and files for it are removed.",
            spec.cluster.name
        ),
        _ if managed.is_empty() => println!(
            "The state records no resources of cluster {:?}; anything left from an interrupted run is looked for by name.",
            spec.cluster.name
        ),
        _ => {
            println!("Deleting, in this order:");
            for a in &managed {
                println!("  delete  {a}");
            }
        }
    }
    confirm(&format!("\nDelete cluster {:?}?", spec.cluster.name), yes)?;
    close_control_masters(&store.cluster_dir()).await;
    let mut progress = Progress::new("down");
    {
        let mut journal = StateJournal {
            store,
            state: &mut state,
        };
        provider.destroy(spec, &mut journal).await?;
    }
    state.resources.clear();
    state.steps.clear();
    store.save(&mut state)?;
    remove_cluster_files(&store.cluster_dir());
    progress.done(format!("cluster {:?} is gone", spec.cluster.name));
    Ok(())
}

/// Ansible's ssh ControlPersist masters outlive a run; end them so nothing is left.
async fn close_control_masters(cluster_dir: &std::path::Path) {
    let cp = cluster_dir.join("cp");
    let Ok(entries) = std::fs::read_dir(&cp) else {
        return;
    };
    for e in entries.flatten() {
        let _ = tokio::process::Command::new("ssh")
            .arg("-O")
            .arg("exit")
            .arg("-o")
            .arg(format!("ControlPath={}", e.path().display()))
            .arg("acura-ha-control-master")
            .output()
            .await;
    }
}

/// Everything in the cluster's directory but the logs (kept for a post-mortem).
fn remove_cluster_files(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.file_name().is_some_and(|n| n == "logs") {
            continue;
        }
        let _ = if p.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
    }
}

/// A journal that keeps records in memory: `janitor` deletes clusters it has no state for.
#[derive(Default)]
struct MemJournal(Vec<acura_ha_api::model::Recorded>);

impl acura_ha_api::provider::Journal for MemJournal {
    fn record(
        &mut self,
        r: acura_ha_api::model::Recorded,
    ) -> Result<(), acura_ha_api::provider::ProviderError> {
        match self.0.iter_mut().find(|x| x.address == r.address) {
            Some(slot) => *slot = r,
            None => self.0.push(r),
        }
        Ok(())
    }
    fn forget(&mut self, address: &str) -> Result<(), acura_ha_api::provider::ProviderError> {
        self.0.retain(|r| r.address != address);
        Ok(())
    }
    fn get(&self, address: &str) -> Option<&acura_ha_api::model::Recorded> {
        self.0.iter().find(|r| r.address == address)
    }
    fn all(&self) -> Vec<acura_ha_api::model::Recorded> {
        self.0.clone()
    }
}

/// One cluster the janitor found.
#[derive(Debug, Serialize)]
pub struct Found {
    pub cluster: String,
    pub created_unix: u64,
    pub age_secs: u64,
    pub delete: bool,
}

/// `janitor`: every cluster this tool made in the file's account and region, and deletes
/// (after asking, or with `--yes`) those older than `older_than` that carry all `tags`.
pub async fn janitor(
    cfg: &LoadedConfig,
    store: &StateStore,
    older_than: Duration,
    tags: &[(String, String)],
    yes: bool,
) -> Result<Vec<Found>, Error> {
    let provider = provider(cfg, store)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let clusters = provider.clusters(&cfg.spec, tags).await?;
    let found: Vec<Found> = clusters
        .into_iter()
        .map(|(cluster, created_unix)| {
            let age_secs = now.saturating_sub(created_unix);
            Found {
                cluster,
                created_unix,
                age_secs,
                delete: age_secs >= older_than.as_secs(),
            }
        })
        .collect();
    for f in &found {
        eprintln!(
            "  {} {:<20} age {}",
            if f.delete { "delete" } else { "keep  " },
            f.cluster,
            humantime::format_duration(Duration::from_secs(f.age_secs))
        );
    }
    let doomed: Vec<&Found> = found.iter().filter(|f| f.delete).collect();
    if doomed.is_empty() {
        eprintln!(
            "no cluster is older than {}",
            humantime::format_duration(older_than)
        );
        return Ok(found);
    }
    confirm(&format!("\nDelete {} cluster(s)?", doomed.len()), yes)?;
    for f in doomed {
        let mut spec = cfg.spec.clone();
        spec.cluster.name = f.cluster.clone();
        let mut journal = MemJournal::default();
        let mut progress = Progress::new("janitor");
        progress.update(format!("deleting cluster {:?}", f.cluster));
        provider.destroy(&spec, &mut journal).await?;
        progress.done(format!("cluster {:?} is gone", f.cluster));
    }
    Ok(found)
}

/// The inventory from the file (static, local) or from the state (clouds).
pub fn known_inventory(cfg: &LoadedConfig, store: &StateStore) -> Result<Inventory, Error> {
    let state = store.load()?;
    let recorded = state
        .as_ref()
        .map(|s| s.resources.as_slice())
        .unwrap_or(&[]);
    inventory::inventory(&cfg.spec, recorded).map_err(|e| match e {
        acura_ha_api::provider::ProviderError::NotKnown { what, hint } => {
            Error::Provider(acura_ha_api::provider::ProviderError::NotKnown {
                what: format!("{what} (state: {})", store.state_path().display()),
                hint,
            })
        }
        other => other.into(),
    })
}
