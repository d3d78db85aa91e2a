//! `up`: shows the plan, asks, provisions through the provider (every resource recorded as the
//! cloud returns it), then runs the bootstrap steps the plan says are pending: SSH, preflight,
//! the NGINX host, the `ha_env_file`, both playbooks, the post-checks. Last, the nodes whose
//! instance type, flavor, image or volume size changed are replaced one at a time through the
//! `node replace` path (#9.2).

use std::sync::Arc;

use acura_ha_api::inventory;
use acura_ha_api::model::Inventory;
use acura_ha_api::tables;
use serde::Serialize;

use crate::bootstrap::preflight::{self, Pool};
use crate::bootstrap::ssh::Session;
use crate::bootstrap::{
    self, BootstrapError, ansible, ha_env, lbhost, playbook, postcheck, workspace,
};
use crate::config::LoadedConfig;
use crate::day2::node::{self, NodeOptions};
use crate::error::Error;
use crate::events::{Observed, StepGuard};
use crate::files::write_atomic;
use crate::output::Ui;
use crate::plan::{self, Plan, StepAction};
use crate::progress::Progress;
use crate::state::{State, StateJournal, StateStore, StepRecord, now_rfc3339};

/// Which part of `up` to run (`up --only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stages {
    #[default]
    All,
    /// The cloud resources (or lab hosts), then stop.
    ProvisionOnly,
    /// Everything after provisioning.
    BootstrapOnly,
}

#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    pub stages: Stages,
    /// The sudo password for users without passwordless sudo (the guide's `-K`).
    pub become_password: Option<String>,
    /// Read the cloud before planning (`--refresh=false`: the state only).
    pub refresh: crate::refresh::Mode,
    /// `--no-replace`: refuse (AH004) a plan that replaces changed nodes, naming the
    /// `node replace` commands, instead of replacing them one at a time.
    pub no_replace: bool,
}

/// What `up` did, for the summary and `--output json`.
#[derive(Debug, Serialize)]
pub struct UpReport {
    pub cluster: String,
    /// False when the plan had nothing to do.
    pub changed: bool,
    pub initial_config_url: Option<String>,
    pub ui_url: Option<String>,
    pub steps_run: Vec<String>,
    /// Nodes replaced for attributes the cloud cannot change in place, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replaced: Vec<Replaced>,
}

/// One node replaced by `up`: the old name and the new node's.
#[derive(Debug, Serialize)]
pub struct Replaced {
    pub old: String,
    pub new: String,
}

pub async fn up(
    cfg: &LoadedConfig,
    store: &StateStore,
    opts: &UpOptions,
    ui: &Ui,
) -> Result<UpReport, Error> {
    let spec = &cfg.spec;
    // A provider that cannot provision fails before anything is shown or asked.
    let provider = crate::targets::provider(cfg, store)?;
    let _lock = store.lock("up")?;
    let mut state = store.load_or_new(spec.provider_kind().as_str())?;
    // What the provider creates carries this state's lineage; what it finds with another's is
    // not adopted (#9.4).
    // A state never written has a lineage this run made: nothing can carry it yet.
    let owned = if state.serial == 0 {
        cfg.spec.with_new_lineage(state.lineage.clone())
    } else {
        cfg.spec.with_lineage(Some(state.lineage.clone()))
    };
    let spec = &owned;
    let dir = store.cluster_dir();
    let paths = bootstrap::paths(cfg, &dir);
    let before = (state.serial > 0).then_some(&state);
    // What changed outside the tool is part of the plan, and `up` repairs it.
    let drift = crate::refresh::drift(provider.as_ref(), spec, before, opts.refresh, false).await?;
    let mut first = plan::build_with(spec, before, &paths, drift.as_ref());
    crate::refresh::note(&mut first, before, opts.refresh);
    ui.text(plan::render_text(&first));
    let mut report = UpReport {
        cluster: spec.cluster.name.clone(),
        changed: false,
        initial_config_url: None,
        ui_url: None,
        steps_run: Vec::new(),
        replaced: Vec::new(),
    };
    if !first.has_changes() {
        ui.say("\nNothing to do: the cluster matches the file.");
        return Ok(report);
    }
    let replacements = node_replacements(&first);
    if opts.no_replace {
        refuse_node_replacements(cfg, store, &first)?;
    }
    if !replacements.is_empty() {
        // A node change left half-done comes first: its finishing command, then `up` again.
        if let Some(p) = &state.day2.pending {
            return Err(Error::refused(format!(
                "the unfinished `node {}` of {} comes first: finish it with `{} node add {}`, then run `up` again to replace {}",
                p.operation,
                p.new,
                super::program(),
                super::command_args(cfg, store),
                names(&replacements)
            )));
        }
        ui.say(format_args!(
            "\n{} node(s) will be replaced after everything else, one at a time (each out of etcd and Kubernetes, its VM deleted, a new one created and joined, Ready before the next): {}",
            replacements.len(),
            names(&replacements)
        ));
    }
    ui.confirm("\nApply this plan?")?;
    report.changed = true;

    // A first run writes its state (and so its lineage) before the cloud is touched: a run that
    // is refused or fails at once still leaves a state whose `down --discover` knows which
    // cluster of this name is its own (#9.4).
    if state.serial == 0 {
        store.save(&mut state)?;
    }
    let inv = if opts.stages == Stages::BootstrapOnly {
        inventory::inventory(spec, &state.resources)?
    } else {
        let mut progress = Progress::new("provision");
        progress.update(format!("{} resources", provider.kind().as_str()));
        // Nodes still to replace are adopted as they stand: their records keep the attributes
        // the cloud has until their replacement.
        let mut journal = Observed::new(crate::day2::KeepsBuilt(StateJournal {
            store,
            state: &mut state,
        }));
        // What the cloud no longer has is created again, under a new ID.
        crate::refresh::forget_gone(&mut journal, drift.as_ref())?;
        let inv = provider.provision(spec, &mut journal).await?;
        progress.done(format!(
            "{} hosts ready to log in",
            inv.nodes.len() + usize::from(inv.lb.nginx_host.is_some())
        ));
        inv
    };
    if opts.stages == Stages::ProvisionOnly {
        left_to_replace(cfg, store, &replacements, ui);
        ui.say(format_args!(
            "Provisioned. Continue with `{} up --only bootstrap {}`.",
            super::program(),
            super::command_args(cfg, store)
        ));
        return Ok(report);
    }

    // Host keys the cloud vouches for (each server's console): pinned instead of trusted on
    // first use.
    let console = preflight::console_keys(&*provider, spec, &inv, &state.resources, false).await;

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
        ui,
        console,
    };
    runner.run(&mut report).await?;
    if opts.stages == Stages::All {
        let nodes: Vec<(String, String)> = replacements
            .iter()
            .map(|c| (c.resource.name.clone(), changed(c)))
            .collect();
        replace_nodes(cfg, store, provider.as_ref(), &nodes, opts, ui, &mut report).await?;
    } else {
        left_to_replace(cfg, store, &replacements, ui);
    }
    let lb = &inv.lb.address;
    report.initial_config_url = Some(tables::initial_config_url(lb));
    report.ui_url = Some(tables::ui_url(lb));
    let args = super::command_args(cfg, store);
    let me = super::program();
    ui.say(format_args!(
        "\nAcura HA cluster {:?} is up.\n  Initial configuration: {}\n  Acura UI:              {}\n  Status:   {me} status {args}\n  Teardown: {me} down {args}",
        spec.cluster.name,
        tables::initial_config_url(lb),
        tables::ui_url(lb),
    ));
    Ok(report)
}

/// The nodes whose attributes the cloud cannot change in place, in the plan's order.
fn node_replacements(plan: &Plan) -> Vec<&plan::ResourceChange> {
    plan.resources
        .iter()
        .filter(|c| plan::node_replacement(c))
        .collect()
}

fn names(nodes: &[&plan::ResourceChange]) -> String {
    nodes
        .iter()
        .map(|c| c.resource.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What changed on a node (its reasons without the plan's note).
fn changed(c: &plan::ResourceChange) -> String {
    c.reasons
        .iter()
        .map(String::as_str)
        .filter(|r| *r != plan::NODE_REPLACE_NOTE)
        .collect::<Vec<_>>()
        .join("; ")
}

/// `up --only …` leaves the node replacements (they join a node): says so.
fn left_to_replace(
    cfg: &LoadedConfig,
    store: &StateStore,
    nodes: &[&plan::ResourceChange],
    ui: &Ui,
) {
    if nodes.is_empty() {
        return;
    }
    ui.say(format_args!(
        "{} node(s) still to replace ({}): `{} up {}` replaces them one at a time.",
        nodes.len(),
        names(nodes),
        super::program(),
        super::command_args(cfg, store)
    ));
}

/// Replaces `nodes` (name, what changed) one at a time through the `node replace` path: the
/// old node out of Kubernetes and etcd, its VM deleted, a new one created, joined and Ready,
/// and only then the next, so etcd is never more than one member short. Stops at the first
/// failure: the day-2 error says how the cluster stands and the command that finishes that
/// node; a note names the nodes not reached, which the next `up` replaces.
async fn replace_nodes(
    cfg: &LoadedConfig,
    store: &StateStore,
    provider: &dyn acura_ha_api::provider::Provider,
    nodes: &[(String, String)],
    opts: &UpOptions,
    ui: &Ui,
    report: &mut UpReport,
) -> Result<(), Error> {
    // `up`'s plan, which named these replacements, was confirmed: the day-2 path asks no more.
    let confirmed = Ui::unattended(ui.format());
    let node_opts = NodeOptions {
        // The node is Ready: it is replaced for its attributes, not because it died.
        force: true,
        others_ready: true,
        become_password: opts.become_password.clone(),
        ..NodeOptions::default()
    };
    let total = nodes.len();
    for (k, (name, why)) in nodes.iter().enumerate() {
        ui.say(format_args!(
            "\nReplacing node {} of {total}: {name} ({why})",
            k + 1
        ));
        let step = StepGuard::start(format!("replace {name}"), None);
        match node::replace_for_up(cfg, store, provider, name, &node_opts, &confirmed).await {
            Ok(r) => {
                step.done();
                if let Some(new) = r.added.first() {
                    report.replaced.push(Replaced {
                        old: name.clone(),
                        new: new.clone(),
                    });
                }
            }
            Err(e) => {
                let rest: Vec<&str> = nodes[k + 1..].iter().map(|(n, _)| n.as_str()).collect();
                if !rest.is_empty() {
                    ui.note(format!(
                        "note: up stopped at {name}: {} {} old attributes until `{} up {}` runs again, once the job below is finished",
                        rest.join(", "),
                        if rest.len() == 1 { "keeps its" } else { "keep their" },
                        super::program(),
                        super::command_args(cfg, store)
                    ));
                }
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// `--no-replace`: nodes whose instance type, flavor, image or volume size changed cannot be
/// changed in place, and replacing them all at once would cost etcd its quorum: `up` changes
/// nothing and names the `node replace` commands that do it one node at a time.
fn refuse_node_replacements(
    cfg: &LoadedConfig,
    store: &StateStore,
    plan: &Plan,
) -> Result<(), Error> {
    let nodes = node_replacements(plan);
    if nodes.is_empty() {
        return Ok(());
    }
    let me = super::program();
    let args = super::command_args(cfg, store);
    let why: Vec<String> = nodes
        .iter()
        .map(|c| format!("  {} ({})", c.resource.name, changed(c)))
        .collect();
    let commands: Vec<String> = nodes
        .iter()
        .map(|c| format!("  {me} node replace {} {args}", c.resource.name))
        .collect();
    Err(Error::refused(format!(
        "--no-replace: {} node(s) have attributes the cloud cannot change in place:\n{}\n\
         Nothing was changed. `{me} up {args}` without --no-replace replaces them one at a time \
         after everything else; or replace them yourself, one at a time, each after the cluster \
         is healthy again (`{me} status {args}`):\n{}",
        nodes.len(),
        why.join("\n"),
        commands.join("\n")
    )))
}

/// The bootstrap steps of one `up`, each recorded in the state when it completes.
struct Bootstrap<'a> {
    cfg: &'a LoadedConfig,
    store: &'a StateStore,
    state: &'a mut State,
    plan: &'a Plan,
    inv: &'a Inventory,
    pool: Pool,
    become_password: Option<String>,
    ui: &'a Ui,
    console: acura_ha_api::model::ConsoleHostKeys,
}

impl Bootstrap<'_> {
    fn pending(&self, id: &str) -> bool {
        self.plan
            .bootstrap
            .iter()
            .any(|s| s.id == id && s.action == StepAction::Run)
    }

    fn record(&mut self, id: &str, report: &mut UpReport) -> Result<(), Error> {
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
        self.store.save(self.state)?;
        report.steps_run.push(id.into());
        Ok(())
    }

    async fn run(&mut self, report: &mut UpReport) -> Result<(), Error> {
        let spec = &self.cfg.spec;
        let dir = self.store.cluster_dir();
        let hosts = bootstrap::ssh_hosts(self.inv);
        // Every command run on a host from here on becomes root with this password (-K).
        bootstrap::sudo::install(self.become_password.as_deref());
        let opts = bootstrap::ssh_options(self.cfg, &dir);
        self.pool = preflight::login_vouched(spec, &hosts, &opts, &self.console, false).await?;

        if self.pending("preflight") {
            let step = StepGuard::start("preflight", None);
            preflight::gate(
                &self.pool,
                spec,
                &hosts,
                self.become_password.is_some(),
                self.ui,
            )
            .await?;
            self.record("preflight", report)?;
            step.done();
        }

        if let Some(lb) = &self.inv.lb.nginx_host
            && self.pending("nginx")
        {
            let step = StepGuard::start("nginx", Some(format!("NGINX on {}", lb.name)));
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
            self.record("nginx", report)?;
            step.done();
        }

        let inventory_path = dir.ha_env_file();
        if self.pending("ha_env_file") || !inventory_path.exists() {
            let step = StepGuard::start("ha_env_file", None);
            let key = bootstrap::key_file(self.cfg, &dir);
            let text = ha_env::render(&spec.cluster.name, &self.inv.nodes, key.as_deref());
            dir.create()?;
            write_atomic(&inventory_path, text.as_bytes())?;
            self.record("ha_env_file", report)?;
            step.done();
        }

        if self.pending("k8s-master") || self.pending("ha-acura") {
            let ws = workspace::prepare(self.cfg, &dir).await?;
            let secrets = bootstrap::become_vars(self.become_password.as_deref());
            let inv_path = inventory_path.display().to_string();
            if self.pending("k8s-master") {
                let run = playbook::k8s_master(spec, &self.inv.lb.address, &inv_path);
                let step = StepGuard::start("k8s-master", Some(run.command_line()));
                eprintln!("[   run] k8s-master: {}", run.command_line());
                ansible::run_playbook(&ws, &run, &secrets, "k8s-master", false).await?;
                self.record("k8s-master", report)?;
                step.done();
            }
            if self.pending("ha-acura") {
                let run = playbook::ha_acura(spec, &spec.overlays(), false, &inv_path);
                let step = StepGuard::start("ha-acura", Some(run.command_line()));
                eprintln!("[   run] ha-acura: {}", run.command_line());
                ansible::run_playbook(&ws, &run, &secrets, "ha-acura", false).await?;
                self.record("ha-acura", report)?;
                step.done();
            }
        }

        if self.pending("post-checks") {
            let step = StepGuard::start("post-checks", None);
            let first = self
                .inv
                .nodes
                .first()
                .map(|h| h.name.clone())
                .unwrap_or_default();
            let session = self.session(&first)?;
            let names: Vec<String> = self.inv.nodes.iter().map(|h| h.name.clone()).collect();
            let mut progress = Progress::new("post-checks");
            postcheck::wait_ready(&session, &names, bootstrap::ready_wait(spec), &mut progress)
                .await?;
            self.record("post-checks", report)?;
            step.done();
        }
        Ok(())
    }

    fn session(&self, host: &str) -> Result<Arc<Session>, BootstrapError> {
        self.pool
            .get(host)
            .ok_or_else(|| BootstrapError::NoSession(host.to_string()))
    }
}
