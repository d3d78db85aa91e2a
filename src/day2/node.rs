//! `acura-ha node remove | add | replace`: the guide's "remove a dead node" and "add a new node"
//! as one command each.
//!
//! Order matters for a consistent state: Kubernetes and etcd first (on a live node), then the
//! state's node set, then the load balancer, then the host itself; a new node is recorded as
//! pending *before* anything is created for it, so a re-run resumes with the same name.

use std::time::Duration;

use acura_ha_api::model::{Host, Inventory};
use acura_ha_api::provider::Provider;
use acura_ha_api::spec::{LbKind, ProviderKind};
use serde::Serialize;

use super::{Ctx, Day2Error, Live, kube, live_node, unpin};
use crate::bootstrap::{self, ansible, ha_env, lbhost, playbook, postcheck, preflight, workspace};
use crate::config::LoadedConfig;
use crate::events::{Event, Observed, StepGuard};
use crate::files::write_atomic;
use crate::output::Ui;
use crate::progress::Progress;
use crate::state::{LockGuard, NodeEntry, Pending, StateJournal, StateStore};

#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// Remove a node that is still Ready.
    pub force: bool,
    /// `node add`: the host to take (static).
    pub address: Option<std::net::IpAddr>,
    /// `node add`: the new node's name (static: its hostname).
    pub name: Option<String>,
    pub become_password: Option<String>,
    /// Refuse, rather than remove, when another node is not Ready: `up`'s replacements change
    /// one node at a time and never while etcd is already a member short (#9.2).
    pub others_ready: bool,
}

/// What a node command did.
#[derive(Debug, Default, Serialize)]
pub struct NodeReport {
    pub removed: Vec<String>,
    pub added: Vec<String>,
    pub nodes: Vec<String>,
}

/// Prints one step's line (`[   k8s] kubectl delete node …`), and streams it as a note of that
/// step (`update` uses it too).
pub(super) fn say(step: &str, message: impl AsRef<str>) {
    super::say(step, message.as_ref());
    crate::events::emit(Event::Note {
        message: message.as_ref().to_string(),
        step: Some(step.to_string()),
    });
}

/// A `note: …` or `warning: …` beside the account: stderr, and its event.
fn notice(line: String) {
    eprintln!("{line}");
    crate::events::notice(&line);
}

/// Refuses what etcd cannot survive, and says what an even count means.
fn check_count(remaining: usize, name: &str) -> Result<(), Day2Error> {
    if remaining == 0 {
        return Err(Day2Error::Refused(format!(
            "removing {name} would remove the last etcd member: the cluster would be gone. Use {} to delete the whole cluster",
            acura_ha_api::hint::command("down")
        )));
    }
    if remaining.is_multiple_of(2) {
        notice(format!(
            "warning: without {name} the cluster has {remaining} members, an even count: etcd's quorum is then {} and it survives no more failures than with {}; run {} to return to an odd count",
            remaining / 2 + 1,
            remaining - 1,
            acura_ha_api::hint::command("node add")
        ));
    }
    Ok(())
}

/// The recorded host resource of `name` (`instance[..]`, `lab_host[..]`), if any is left.
fn host_left(ctx: &Ctx, name: &str) -> bool {
    let suffix = format!("[{name}]");
    ctx.state
        .resources
        .iter()
        .any(|r| r.address.ends_with(&suffix))
}

/// Re-renders and reloads NGINX for the current nodes (load balancer kind `nginx`).
async fn reconfigure_nginx(ctx: &Ctx<'_>, inv: &Inventory) -> Result<(), Day2Error> {
    let Some(lb) = &inv.lb.nginx_host else {
        return Ok(());
    };
    let cfg = ctx.cfg();
    let (pool, failed) = super::connect_some(
        std::slice::from_ref(lb),
        &cfg.spec.access.ssh_user,
        &ctx.ssh_options(),
        Duration::from_secs(30),
    )
    .await;
    let Some(session) = pool.get(&lb.name) else {
        return Err(Day2Error::Command {
            host: lb.name.clone(),
            step: "reconfigure NGINX".into(),
            message: failed.first().map(|(_, e)| e.clone()).unwrap_or_default(),
        });
    };
    say(
        "lb",
        format!(
            "NGINX upstreams on {} -> {}",
            lb.name,
            inv.nodes
                .iter()
                .map(|h| format!("{} ({})", h.name, h.address))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    let mut progress = Progress::new("nginx");
    lbhost::configure(&session, &cfg.spec.cluster.name, &inv.nodes, &mut progress).await?;
    progress.done(format!("{} reloaded", lb.name));
    Ok(())
}

/// Takes `name` out of Kubernetes, etcd, the state's node set, the load balancer, and deletes
/// its host. Each part is skipped when already done, so a re-run finishes an interrupted one.
async fn remove_one(
    ctx: &mut Ctx<'_>,
    provider: &dyn Provider,
    live: &Live,
    name: &str,
) -> Result<(), Day2Error> {
    let step = StepGuard::start(format!("remove {name}"), None);
    let host_before = ctx.inventory()?.nodes.into_iter().find(|h| h.name == name);
    say(
        "k8s",
        format!("kubectl delete node {name} (on {})", live.name()),
    );
    if !kube::delete_node(&live.session, name).await? {
        say("k8s", format!("{name} was already gone from Kubernetes"));
    }
    say(
        "etcd",
        format!(
            "member list through etcd-{} (on {})",
            live.name(),
            live.name()
        ),
    );
    let members = kube::member_list(&live.session, live.name()).await?;
    match members.iter().find(|m| m.name == name) {
        Some(m) => {
            say(
                "etcd",
                format!("member remove {} ({name}, on {})", m.id, live.name()),
            );
            kube::member_remove(&live.session, live.name(), &m.id).await?;
        }
        None => say("etcd", format!("{name} was already not an etcd member")),
    }
    let mut nodes = ctx.members();
    nodes.retain(|n| n.name != name);
    ctx.set_members(nodes);
    if !ctx.state.day2.retired.iter().any(|r| r == name) {
        ctx.state.day2.retired.push(name.to_string());
    }
    ctx.save()?;

    let cfg = ctx.cfg();
    match cfg.spec.load_balancer.kind {
        LbKind::Nginx => reconfigure_nginx(ctx, &ctx.inventory()?).await?,
        LbKind::Cloud => say(
            "lb",
            format!("{name} leaves the cloud load balancer with its host"),
        ),
        LbKind::External => notice(format!(
            "note: the load balancer at {} is yours: take {name} out of its pools",
            cfg.spec.load_balancer.address.as_deref().unwrap_or("?")
        )),
    }
    if ctx.creates_hosts() {
        say(
            "host",
            format!("deleting {name} ({} provider)", provider.kind().as_str()),
        );
        let mut journal = Observed::new(StateJournal {
            store: ctx.store,
            state: &mut ctx.state,
        });
        provider
            .remove_nodes(&cfg.spec, &[name.to_string()], &mut journal)
            .await?;
    } else {
        say("host", format!("{name} is your host: it is left as it is"));
    }
    if let Some(h) = host_before {
        unpin(&ctx.store.cluster_dir().known_hosts(), &h.address)?;
    }
    ctx.settle()?;
    step.done();
    Ok(())
}

/// Resolves the node to remove for `remove`/`replace`: a member, or one whose removal was
/// interrupted (its host is still recorded).
fn removable(ctx: &Ctx, name: &str) -> bool {
    ctx.members().iter().any(|n| n.name == name) || host_left(ctx, name)
}

/// The provider (first: one that cannot work fails before anything is locked), the lock, and
/// the state to change.
fn open<'a>(
    loaded: &LoadedConfig,
    store: &'a StateStore,
    operation: &str,
) -> Result<(Box<dyn Provider>, LockGuard, Ctx<'a>), Day2Error> {
    let provider = crate::targets::provider(loaded, store)?;
    let lock = store.lock(operation)?;
    let ctx = Ctx::open(loaded, store)?;
    Ok((provider, lock, ctx))
}

/// `node remove NAME`.
pub async fn remove(
    loaded: &LoadedConfig,
    store: &StateStore,
    name: &str,
    opts: &NodeOptions,
    ui: &Ui,
) -> Result<NodeReport, Day2Error> {
    let (provider, _lock, mut ctx) = open(loaded, store, "node remove")?;
    let mut report = NodeReport::default();
    if !removable(&ctx, name) {
        return Ok(not_a_node(&ctx, name, "nothing to do", ui));
    }
    let remaining = ctx.members().iter().filter(|n| n.name != name).count();
    check_count(remaining, name)?;
    let now = ctx.cfg();
    let inv = ctx.inventory()?;
    let (live, unreachable) = live_node(
        &inv.nodes,
        &[name.to_string()],
        &now.spec.access.ssh_user,
        &ctx.ssh_options(),
    )
    .await?;
    for (h, why) in &unreachable {
        notice(format!("note: {h} does not answer either: {why}"));
    }
    if live.health.nodes_ready.iter().any(|n| n == name) && !opts.force {
        return Err(Day2Error::Refused(format!(
            "{name} is still Ready (asked {}): it is not dead. Pass --force to remove a live node",
            live.name()
        )));
    }
    print_removal(&ctx, &live, name, ui);
    ui.confirm(&format!("\nRemove {name}?"))?;
    remove_one(&mut ctx, provider.as_ref(), &live, name).await?;
    report.removed.push(name.to_string());
    report.nodes = ctx.members().into_iter().map(|n| n.name).collect();
    ui.say(format_args!(
        "\n{name} removed. Nodes now: {}.",
        report.nodes.join(", ")
    ));
    Ok(report)
}

/// Says `name` is not a node (a re-run of a finished command) and reports the nodes.
fn not_a_node(ctx: &Ctx, name: &str, what: &str, ui: &Ui) -> NodeReport {
    ui.say(format_args!(
        "{name} is not a node of cluster {:?} (nodes: {}): {what}.",
        ctx.cfg().spec.cluster.name,
        names(&ctx.members())
    ));
    NodeReport {
        nodes: ctx.members().into_iter().map(|n| n.name).collect(),
        ..NodeReport::default()
    }
}

fn names(nodes: &[NodeEntry]) -> String {
    nodes
        .iter()
        .map(|n| n.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_removal(ctx: &Ctx, live: &Live, name: &str, ui: &Ui) {
    let cfg = ctx.cfg();
    ui.say(format_args!(
        "Remove node {name} (live node: {}):",
        live.name()
    ));
    ui.say(format_args!("  - kubectl delete node {name}"));
    ui.say(format_args!("  - etcdctl member remove <the ID of {name}>"));
    match cfg.spec.load_balancer.kind {
        LbKind::Nginx => ui.say(format_args!(
            "  - NGINX upstreams re-rendered without it, and reloaded"
        )),
        LbKind::Cloud => ui.say(format_args!("  - out of the cloud load balancer")),
        LbKind::External => ui.say(format_args!(
            "  - (your load balancer: take it out yourself)"
        )),
    }
    if ctx.creates_hosts() {
        ui.say(format_args!("  - delete its host (VM and volume)"));
    }
}

/// `node add`.
pub async fn add(
    loaded: &LoadedConfig,
    store: &StateStore,
    opts: &NodeOptions,
    ui: &Ui,
) -> Result<NodeReport, Day2Error> {
    let (provider, _lock, mut ctx) = open(loaded, store, "node add")?;
    let new = match &ctx.state.day2.pending {
        Some(p) => {
            notice(format!(
                "note: resuming the unfinished `node {}` of {}",
                p.operation, p.new
            ));
            p.new.clone()
        }
        None => new_name(&ctx, opts)?,
    };
    let mut report = NodeReport::default();
    let old = ctx.state.day2.pending.as_ref().and_then(|p| p.old.clone());
    add_flow(
        &mut ctx,
        provider.as_ref(),
        &new,
        old,
        opts,
        &mut report,
        ui,
    )
    .await?;
    Ok(report)
}

/// `node replace NAME`.
pub async fn replace(
    loaded: &LoadedConfig,
    store: &StateStore,
    name: &str,
    opts: &NodeOptions,
    ui: &Ui,
) -> Result<NodeReport, Day2Error> {
    let (provider, _lock, mut ctx) = open(loaded, store, "node replace")?;
    replace_with(&mut ctx, provider.as_ref(), name, opts, ui).await
}

/// `up`'s replacement of a node whose attributes the cloud cannot change in place (#9.2): the
/// same path as `node replace`, under the lock `up` holds, with the provider it made, on the
/// state as `up` saved it.
pub async fn replace_for_up(
    loaded: &LoadedConfig,
    store: &StateStore,
    provider: &dyn Provider,
    name: &str,
    opts: &NodeOptions,
    ui: &Ui,
) -> Result<NodeReport, Day2Error> {
    let mut ctx = Ctx::open(loaded, store)?;
    replace_with(&mut ctx, provider, name, opts, ui).await
}

async fn replace_with(
    ctx: &mut Ctx<'_>,
    provider: &dyn Provider,
    name: &str,
    opts: &NodeOptions,
    ui: &Ui,
) -> Result<NodeReport, Day2Error> {
    let mut report = NodeReport::default();
    let new = match &ctx.state.day2.pending {
        Some(p) if p.old.as_deref() == Some(name) => {
            notice(format!(
                "note: resuming the unfinished replacement of {name} by {}",
                p.new
            ));
            p.new.clone()
        }
        Some(p) => {
            return Err(Day2Error::Refused(format!(
                "an unfinished `node {}` of {} comes first: run it again to finish it",
                p.operation, p.new
            )));
        }
        None if !removable(ctx, name) => {
            return Ok(not_a_node(ctx, name, "nothing to replace", ui));
        }
        None => new_name(ctx, opts)?,
    };
    add_flow(
        ctx,
        provider,
        &new,
        Some(name.to_string()),
        opts,
        &mut report,
        ui,
    )
    .await?;
    Ok(report)
}

/// The new node's name: `--name`, or one past the highest number ever used.
fn new_name(ctx: &Ctx, opts: &NodeOptions) -> Result<String, Day2Error> {
    let cfg = ctx.cfg();
    let spec = &cfg.spec;
    match (spec.provider_kind(), &opts.address) {
        (ProviderKind::Static, None) => {
            return Err(Day2Error::Usage(
                "the static provider takes a host you made: give --address IP (and --name HOSTNAME)".into(),
            ));
        }
        (ProviderKind::Static, Some(_)) => {}
        (kind, Some(_)) => {
            return Err(Day2Error::Usage(format!(
                "--address is for the static provider; the {} provider creates the new host itself",
                kind.as_str()
            )));
        }
        _ => {}
    }
    let name = match &opts.name {
        Some(n) => n.clone(),
        None => spec.next_node_name(&ctx.state.day2.retired),
    };
    if let Err(why) = acura_ha_api::spec::check_hostname(&name) {
        return Err(Day2Error::Usage(format!(
            "node name {name:?}: {why}; {}",
            acura_ha_api::spec::HOSTNAME_RULE
        )));
    }
    if ctx.members().iter().any(|n| n.name == name) || ctx.state.day2.retired.contains(&name) {
        return Err(Day2Error::Usage(format!(
            "{name} is (or was) a node of this cluster: choose another --name"
        )));
    }
    Ok(name)
}

/// Removes `old` (replace) and the dead nodes, then adds `new`, then joins it.
async fn add_flow(
    ctx: &mut Ctx<'_>,
    provider: &dyn Provider,
    new: &str,
    old: Option<String>,
    opts: &NodeOptions,
    report: &mut NodeReport,
    ui: &Ui,
) -> Result<(), Day2Error> {
    let cfg = ctx.cfg();
    let spec = &cfg.spec;
    let inv = ctx.inventory()?;
    let mut exclude = vec![new.to_string()];
    exclude.extend(old.clone());
    let (live, unreachable) = live_node(
        &inv.nodes,
        &exclude,
        &spec.access.ssh_user,
        &ctx.ssh_options(),
    )
    .await?;
    let new_is_member = ctx.members().iter().any(|n| n.name == new);
    // The guide's first step: dead nodes go before a new one joins.
    let mut dead: Vec<String> = ctx
        .members()
        .iter()
        .map(|n| n.name.clone())
        .filter(|n| n != new && Some(n) != old.as_ref())
        .filter(|n| !live.health.nodes_ready.contains(n))
        .collect();
    for (h, _) in &unreachable {
        if !dead.contains(h) && h != new && Some(h) != old.as_ref() {
            dead.push(h.clone());
        }
    }
    if opts.others_ready && !dead.is_empty() {
        let me = crate::engine::program();
        return Err(Day2Error::Refused(format!(
            "{} not Ready (asked {}): `up` replaces a node only while every other node is Ready, so etcd is never two members short; bring it back, or take it out with `{me} node remove {} {}`, then run `up` again",
            dead.join(", "),
            live.name(),
            dead[0],
            crate::engine::command_args(&cfg, ctx.store)
        )));
    }
    let mut removals: Vec<String> = Vec::new();
    if let Some(o) = &old
        && removable(ctx, o)
    {
        if live.health.nodes_ready.contains(o) && !opts.force {
            return Err(Day2Error::Refused(format!(
                "{o} is still Ready (asked {}): pass --force to replace a live node",
                live.name()
            )));
        }
        removals.push(o.clone());
    }
    removals.extend(dead.iter().cloned());
    let remaining = ctx
        .members()
        .iter()
        .filter(|n| !removals.contains(&n.name) && n.name != new)
        .count();
    if remaining == 0 {
        return Err(Day2Error::Refused(
            "no live node would be left to join the new one to".into(),
        ));
    }

    ui.say(format_args!(
        "Node change on cluster {:?} (live node: {}):",
        spec.cluster.name,
        live.name()
    ));
    for r in &removals {
        let why = if Some(r) == old.as_ref() {
            "replaced"
        } else {
            "dead"
        };
        ui.say(format_args!(
            "  - remove {r} ({why}): kubectl delete node, etcd member remove, out of the load balancer{}",
            if ctx.creates_hosts() {
                ", delete its host"
            } else {
                ""
            }
        ));
    }
    let how = match spec.provider_kind() {
        ProviderKind::Static => format!(
            "take your host at {}",
            opts.address
                .map(|a| a.to_string())
                .or_else(|| ctx
                    .members()
                    .iter()
                    .find(|n| n.name == new)
                    .and_then(|n| n.address.map(|a| a.to_string())))
                .unwrap_or_else(|| "?".into())
        ),
        kind => format!("create it ({} provider)", kind.as_str()),
    };
    ui.say(format_args!(
        "  + add {new}: {how}, check it, then join it with a fresh join token and certificate key from {} (ansible/k8s-master.yaml on {new} only), add it to the load balancer, wait until it is Ready",
        live.name()
    ));
    ui.confirm("\nApply this change?")?;

    // Write-ahead: the new name is fixed before anything happens, so a re-run resumes with it.
    if ctx.state.day2.pending.is_none() {
        ctx.state.day2.pending = Some(Pending {
            operation: if old.is_some() { "replace" } else { "add" }.into(),
            old: old.clone(),
            new: new.to_string(),
        });
        ctx.save()?;
    }
    let done = finish_add(
        ctx,
        provider,
        &live,
        new,
        &removals,
        new_is_member,
        opts,
        report,
        ui,
    )
    .await;
    // Failed once a node is gone (this run or the interrupted one it resumes): say how the
    // cluster stands and the command that finishes the job.
    let old_gone = old
        .as_ref()
        .is_some_and(|o| !ctx.members().iter().any(|n| &n.name == o));
    match done {
        Err(cause) if !report.removed.is_empty() || old_gone => {
            let mut removed = report.removed.clone();
            if removed.is_empty() {
                removed.extend(old);
            }
            Err(unfinished(ctx, cause, removed, new))
        }
        other => other,
    }
}

/// The error of a node command that failed after removing `removed`: the nodes that stand,
/// and the command that adds `new` (the pending record makes `node add` resume with it).
fn unfinished(ctx: &Ctx, cause: Day2Error, removed: Vec<String>, new: &str) -> Day2Error {
    let cfg = ctx.cfg();
    Day2Error::Unfinished(Box::new(super::error::Unfinished {
        cause,
        cluster: cfg.spec.cluster.name.clone(),
        standing: ctx
            .members()
            .into_iter()
            .map(|n| n.name)
            .filter(|n| n != new)
            .collect(),
        removed,
        new: new.to_string(),
        finish: format!(
            "{} node add {}",
            crate::engine::program(),
            crate::engine::command_args(&cfg, ctx.store)
        ),
    }))
}

/// After the change was confirmed and the new name written ahead: the removals, the new host,
/// the join.
#[allow(clippy::too_many_arguments)]
async fn finish_add(
    ctx: &mut Ctx<'_>,
    provider: &dyn Provider,
    live: &Live,
    new: &str,
    removals: &[String],
    new_is_member: bool,
    opts: &NodeOptions,
    report: &mut NodeReport,
    ui: &Ui,
) -> Result<(), Day2Error> {
    for r in removals {
        remove_one(ctx, provider, live, r).await?;
        report.removed.push(r.clone());
    }
    if !new_is_member {
        let mut nodes = ctx.members();
        nodes.push(NodeEntry {
            name: new.to_string(),
            address: opts.address,
        });
        ctx.set_members(nodes);
        ctx.save()?;
    }
    let cfg = ctx.cfg();
    // The new node carries the state's lineage, as everything `up` made (#9.4).
    let spec = &cfg.spec.with_lineage(Some(ctx.state.lineage.clone()));
    let inv = if ctx.creates_hosts() {
        let step = StepGuard::start(format!("provision {new}"), None);
        let mut progress = Progress::new("provision");
        progress.update(format!("{new} ({} provider)", provider.kind().as_str()));
        // The other nodes are adopted as they are: a changed flavor stays recorded as the old
        // one until their own replacement.
        let mut journal = Observed::new(super::KeepsBuilt(StateJournal {
            store: ctx.store,
            state: &mut ctx.state,
        }));
        let inv = provider.provision(spec, &mut journal).await?;
        progress.done(format!("{new} created"));
        step.done();
        // Addresses the provider knows only after creation come from the state.
        ctx.inventory().unwrap_or(inv)
    } else {
        ctx.inventory()?
    };
    let host = inv
        .nodes
        .iter()
        .find(|h| h.name == new)
        .cloned()
        .ok_or_else(|| Day2Error::Usage(format!("{new}: no address known after provisioning")))?;
    // The new server's host keys from its console (the others are pinned already).
    let only_new = Inventory {
        nodes: vec![host.clone()],
        lb: acura_ha_api::model::LbEndpoint {
            nginx_host: None,
            ..inv.lb.clone()
        },
    };
    let console =
        preflight::console_keys(provider, spec, &only_new, &ctx.state.resources, false).await;
    let step = StepGuard::start(format!("join {new}"), None);
    join(ctx, live, &host, &inv, &console, opts, ui).await?;
    step.done();
    ctx.state.day2.pending = None;
    ctx.settle()?;
    report.added.push(new.to_string());
    report.nodes = ctx.members().into_iter().map(|n| n.name).collect();
    ui.say(format_args!(
        "\n{new} joined the cluster. Nodes now: {}.",
        report.nodes.join(", ")
    ));
    Ok(())
}

/// Logs in to the new host, checks it, joins it with fresh secrets, puts it behind the load
/// balancer and waits until it is Ready.
async fn join(
    ctx: &mut Ctx<'_>,
    live: &Live,
    host: &Host,
    inv: &Inventory,
    console: &acura_ha_api::model::ConsoleHostKeys,
    opts: &NodeOptions,
    ui: &Ui,
) -> Result<(), Day2Error> {
    let cfg = ctx.cfg();
    let spec = &cfg.spec;
    let hosts = [(host.clone(), "node")];
    let pool = preflight::login_vouched(spec, &hosts, &ctx.ssh_options(), console, false).await?;
    preflight::gate(&pool, spec, &hosts, opts.become_password.is_some(), ui).await?;

    let already = postcheck::health(&live.session)
        .await
        .map(|h| h.nodes_ready.contains(&host.name))
        .unwrap_or(false);
    if already {
        say(
            "join",
            format!("{} is already Ready: no join needed", host.name),
        );
    } else {
        say(
            "token",
            format!(
                "kubeadm token create --print-join-command and kubeadm init phase upload-certs --upload-certs (on {}; values not shown)",
                live.name()
            ),
        );
        let secrets = kube::join_secrets(&live.session).await?;
        let dir = ctx.store.cluster_dir();
        let join_inv = dir.join_inventory();
        let key = bootstrap::key_file(&cfg, &dir);
        write_atomic(
            &join_inv,
            ha_env::render(
                &spec.cluster.name,
                std::slice::from_ref(host),
                key.as_deref(),
            )
            .as_bytes(),
        )?;
        let run = playbook::k8s_join(spec, &inv.lb.address, &join_inv.display().to_string());
        let mut vars = bootstrap::become_vars(opts.become_password.as_deref());
        vars.0.push(("master_token".into(), secrets.master_token));
        vars.0.push((
            "master_discovery_token".into(),
            secrets.master_discovery_token,
        ));
        vars.0
            .push(("master_cert_key".into(), secrets.master_cert_key));
        let ws = workspace::prepare(&cfg, &dir).await?;
        say(
            "join",
            format!(
                "{} (+ master_token, master_discovery_token, master_cert_key from memory, never on disk)",
                run.command_line()
            ),
        );
        let result = ansible::run_playbook(&ws, &run, &vars, "k8s-master-join", false).await;
        drop(vars);
        let _ = std::fs::remove_file(&join_inv);
        result?;
    }
    match spec.load_balancer.kind {
        LbKind::Nginx => reconfigure_nginx(ctx, inv).await?,
        LbKind::Cloud => say(
            "lb",
            format!("{} is a member of the cloud load balancer", host.name),
        ),
        LbKind::External => notice(format!(
            "note: the load balancer at {} is yours: add {} ({}) to its pools",
            spec.load_balancer.address.as_deref().unwrap_or("?"),
            host.name,
            host.address
        )),
    }
    let names: Vec<String> = inv.nodes.iter().map(|h| h.name.clone()).collect();
    let mut progress = Progress::new("ready");
    postcheck::wait_ready(
        &live.session,
        &names,
        bootstrap::ready_wait(spec),
        &mut progress,
    )
    .await?;
    Ok(())
}
