//! `plan`: every resource `up` would create, in dependency order, then the bootstrap steps — or,
//! when a state exists, only the difference (create / update / keep / replace / delete).

use std::fmt::Write as _;

use acura_ha_api::desired;
use acura_ha_api::inventory;
use acura_ha_api::model::{Drift, Host, Resource, Status};
use acura_ha_api::spec::{ClusterSpec, LbKind};
use acura_ha_api::tables::{self, GUIDE_MINIMUMS, LISTENERS};
use serde::Serialize;

use crate::bootstrap::{Paths, ha_env, playbook};
use crate::state::State;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    /// Changed in place by `up`, same ID (an instance stopped outside acura-ha: started).
    Update,
    Keep,
    Replace,
    Delete,
    /// Used as it is (an existing host, key pair or load balancer): never a change.
    Use,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Keep => "keep",
            Action::Replace => "replace",
            Action::Delete => "delete",
            Action::Use => "use",
        }
    }
}

/// Why a resource is replaced. What `up` does about it depends on this mark, never on the
/// wording of the reasons: a tainted or interrupted one is made again by the provider, a changed
/// node goes through the `node replace` path, one at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplaceCause {
    /// A recorded, ready resource whose attributes changed (instance type, flavor, image,
    /// volume size, …): the cloud cannot change them in place.
    Changed,
    /// Recorded as failed or half-made.
    Tainted,
    /// Its creation was interrupted (still recorded as `creating`).
    Interrupted,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResourceChange {
    pub action: Action,
    #[serde(flatten)]
    pub resource: Resource,
    /// For `replace`: why (`attr: old -> new`, or `tainted`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// For `replace`: what made it one (set by the state's record, not read from `reasons`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replace_cause: Option<ReplaceCause>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepAction {
    Run,
    Done,
}

#[derive(Debug, Clone, Serialize)]
pub struct BootstrapStep {
    pub id: &'static str,
    pub action: StepAction,
    pub summary: String,
    /// What the step writes or runs, verbatim (file text or command line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// What decides whether a completed step must run again.
    #[serde(skip)]
    pub inputs: String,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub create: usize,
    /// In-place changes (only in the JSON when there are some).
    #[serde(skip_serializing_if = "is_zero")]
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
    pub keep: usize,
    pub used: usize,
    pub steps_to_run: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub format_version: u32,
    pub cluster: String,
    pub provider: &'static str,
    /// The serial of the state compared against, if one exists.
    pub state_serial: Option<u64>,
    pub resources: Vec<ResourceChange>,
    pub bootstrap: Vec<BootstrapStep>,
    pub warnings: Vec<String>,
    pub summary: Summary,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        let s = &self.summary;
        s.create + s.update + s.replace + s.delete + s.steps_to_run > 0
    }
}

/// Placeholder for what the cloud assigns.
pub const UNKNOWN: &str = "(known after apply)";

/// Builds the plan for `spec` against `state` (if any), without reading the cloud.
pub fn build(spec: &ClusterSpec, state: Option<&State>, paths: &Paths) -> Plan {
    build_with(spec, state, paths, None)
}

/// Builds the plan for `spec` against `state` and what the provider's refresh found in the
/// cloud: a recorded resource the cloud no longer has is created again, one the cloud has in a
/// state `up` changes in place (a stopped instance) is updated, and what was added to the
/// cluster's own containers outside the tool is deleted.
pub fn build_with(
    spec: &ClusterSpec,
    state: Option<&State>,
    paths: &Paths,
    drift: Option<&Drift>,
) -> Plan {
    let mut resources = Vec::new();
    let wanted = desired::desired(spec);
    for r in &wanted {
        let gone = drift.and_then(|d| d.gone.iter().find(|g| g.address == r.address));
        let changed = drift.and_then(|d| d.changed.iter().find(|c| c.address == r.address));
        resources.push(match gone {
            Some(g) if r.managed => ResourceChange {
                action: Action::Create,
                resource: r.clone(),
                reasons: vec![g.reason.clone()],
                replace_cause: None,
            },
            _ => match (diff_one(r, state), changed) {
                // A replacement makes it anew anyway: only a kept one is changed in place.
                (c, Some(ch)) if c.action == Action::Keep => ResourceChange {
                    action: Action::Update,
                    reasons: vec![ch.reason.clone()],
                    ..c
                },
                (c, _) => c,
            },
        });
    }
    for extra in drift.map(|d| d.extra.as_slice()).unwrap_or_default() {
        let known = state.is_some_and(|s| s.resource(&extra.address).is_some());
        if known || wanted.iter().any(|w| w.address == extra.address) {
            continue;
        }
        let mut r = Resource::new(extra.kind, None, extra.name.clone());
        r.address = extra.address.clone();
        r.attrs = extra.attrs.clone();
        resources.push(ResourceChange {
            action: Action::Delete,
            resource: r,
            reasons: vec!["added outside acura-ha".into()],
            replace_cause: None,
        });
    }
    for c in &mut resources {
        if node_replacement(c) {
            c.reasons.push(NODE_REPLACE_NOTE.into());
        }
    }
    if let Some(st) = state {
        // What the state has and the file no longer wants goes last, newest first.
        for rec in st.resources.iter().rev() {
            if !wanted.iter().any(|w| w.address == rec.address) {
                let mut r = Resource::new(rec.kind, None, rec.name.clone());
                r.address = rec.address.clone();
                r.attrs = rec.attrs.clone();
                resources.push(ResourceChange {
                    action: Action::Delete,
                    resource: r,
                    reasons: vec!["no longer in the cluster file".into()],
                    replace_cause: None,
                });
            }
        }
    }
    let mut bootstrap = bootstrap_steps(spec, state, paths);
    // New, replaced or removed resources change the hosts the steps ran on: run them all again.
    // Not for a changed node: `up` replaces it through the `node replace` path, which joins the
    // new node alone and brings the recorded steps up to date itself.
    if resources.iter().any(|c| {
        matches!(c.action, Action::Create | Action::Replace | Action::Delete)
            && !node_replacement(c)
    }) {
        for s in &mut bootstrap {
            s.action = StepAction::Run;
        }
    }
    let mut summary = Summary::default();
    for c in &resources {
        match c.action {
            Action::Create => summary.create += 1,
            Action::Update => summary.update += 1,
            Action::Replace => summary.replace += 1,
            Action::Delete => summary.delete += 1,
            Action::Keep => summary.keep += 1,
            Action::Use => summary.used += 1,
        }
    }
    summary.steps_to_run = bootstrap
        .iter()
        .filter(|s| s.action == StepAction::Run)
        .count();
    Plan {
        format_version: 1,
        cluster: spec.cluster.name.clone(),
        provider: spec.provider_kind().as_str(),
        state_serial: state.map(|s| s.serial),
        resources,
        bootstrap,
        warnings: warnings(spec),
        summary,
    }
}

/// Said of every node that must be replaced for an attribute a cloud cannot change in place.
pub const NODE_REPLACE_NOTE: &str = "up replaces it one node at a time, after everything else, through the `node replace` path (out of etcd and Kubernetes, its VM deleted, a new one created, joined and Ready before the next); all at once, etcd would lose quorum";

/// A running node whose attributes changed (instance type, flavor, image, volume size): not a
/// tainted or half-made one, which the provider makes again itself. `up` replaces such nodes
/// after everything else, one at a time through the `node replace` path, so etcd keeps its
/// quorum. Decided by the change's mark ([`ReplaceCause`]), which only the state's record sets.
pub fn node_replacement(c: &ResourceChange) -> bool {
    c.action == Action::Replace
        && c.resource.kind == acura_ha_api::model::Kind::Instance
        && c.replace_cause == Some(ReplaceCause::Changed)
}

fn diff_one(want: &Resource, state: Option<&State>) -> ResourceChange {
    let change = |action, reasons| ResourceChange {
        action,
        resource: want.clone(),
        reasons,
        replace_cause: None,
    };
    if !want.managed {
        return change(Action::Use, vec![]);
    }
    let Some(rec) = state.and_then(|s| s.resource(&want.address)) else {
        return change(Action::Create, vec![]);
    };
    if matches!(rec.status, Status::Tainted | Status::Creating) {
        let (why, cause) = match rec.status {
            Status::Creating => ("its creation was interrupted", ReplaceCause::Interrupted),
            _ => (
                "tainted: it failed or was half-created",
                ReplaceCause::Tainted,
            ),
        };
        return ResourceChange {
            replace_cause: Some(cause),
            ..change(Action::Replace, vec![why.into()])
        };
    }
    let mut reasons = Vec::new();
    for (k, v) in &want.attrs {
        match rec.attrs.get(k) {
            Some(old) if old == v => {}
            Some(old) => reasons.push(format!("{k}: {old} -> {v}")),
            None => reasons.push(format!("{k}: (unset) -> {v}")),
        }
    }
    for k in rec.attrs.keys().filter(|k| !want.attrs.contains_key(*k)) {
        reasons.push(format!("{k}: removed"));
    }
    if reasons.is_empty() {
        change(Action::Keep, vec![])
    } else {
        ResourceChange {
            replace_cause: Some(ReplaceCause::Changed),
            ..change(Action::Replace, reasons)
        }
    }
}

fn bootstrap_steps(spec: &ClusterSpec, state: Option<&State>, paths: &Paths) -> Vec<BootstrapStep> {
    let key_file = paths.key_file.as_deref();
    let inventory_path = paths.inventory.display().to_string();
    let recorded = state.map(|s| s.resources.as_slice()).unwrap_or(&[]);
    let (nodes, lb_address, nginx_host) = match inventory::inventory(spec, recorded) {
        Ok(inv) => (inv.nodes, inv.lb.address, inv.lb.nginx_host),
        Err(_) => {
            let nodes = spec
                .node_names()
                .into_iter()
                .map(|name| Host {
                    name,
                    address: UNKNOWN.into(),
                })
                .collect();
            let lb = match spec.load_balancer.kind {
                LbKind::External => spec.load_balancer.address.clone().unwrap_or_default(),
                _ => UNKNOWN.into(),
            };
            let nginx = (spec.load_balancer.kind == LbKind::Nginx).then(|| Host {
                name: spec.lb_host_name(),
                address: UNKNOWN.into(),
            });
            (nodes, lb, nginx)
        }
    };
    let min = spec.minimums();
    let mut steps = Vec::new();
    let hosts = nodes.len() + usize::from(nginx_host.is_some());
    steps.push(step(
        "preflight",
        format!(
            "wait for SSH logins on {hosts} hosts, then check each node: {}, root filesystem >= {} GB{}, RAM >= {} GB, >= {} vCPU, hostname without dots, DNS, sudo, time sync",
            spec.accepted_os().join(" or "),
            min.root_gb,
            if min.single_partition { " as one partition" } else { "" },
            min.ram_gb,
            min.vcpus
        ),
        None,
        None,
    ));
    if let Some(h) = &nginx_host {
        steps.push(step(
            "nginx",
            format!(
                "install NGINX and its stream module on {} ({}), upload the rendered config, `nginx -t`, reload, then prove all {} listeners reach a node",
                h.name,
                h.address,
                LISTENERS.len()
            ),
            None,
            None,
        ));
    }
    let env_file = ha_env::render(&spec.cluster.name, &nodes, key_file);
    steps.push(step(
        "ha_env_file",
        format!("write {inventory_path} ({} nodes)", nodes.len()),
        Some(env_file),
        None,
    ));
    let step5 = playbook::k8s_master(spec, &lb_address, &inventory_path);
    steps.push(step(
        "k8s-master",
        "the guide's Step 5: install the Kubernetes HA masters".into(),
        Some(step5.command_line()),
        Some(step5.argv()),
    ));
    let step6 = playbook::ha_acura(spec, &spec.overlays(), false, &inventory_path);
    steps.push(step(
        "ha-acura",
        "the guide's Step 6: deploy Acura".into(),
        Some(step6.command_line()),
        Some(step6.argv()),
    ));
    let url_host = if lb_address == UNKNOWN {
        "<load balancer address>"
    } else {
        lb_address.as_str()
    };
    steps.push(step(
        "post-checks",
        format!(
            "wait until every node is Ready and every pod Running, then print {} and {}",
            tables::initial_config_url(url_host),
            tables::ui_url(url_host)
        ),
        None,
        None,
    ));
    for s in &mut steps {
        let done = state
            .and_then(|st| st.steps.get(s.id))
            .is_some_and(|rec| rec.inputs == s.inputs);
        if done {
            s.action = StepAction::Done;
        }
    }
    steps
}

fn step(
    id: &'static str,
    summary: String,
    detail: Option<String>,
    argv: Option<Vec<String>>,
) -> BootstrapStep {
    let inputs = format!("{summary}\n{}", detail.as_deref().unwrap_or(""));
    BootstrapStep {
        id,
        action: StepAction::Run,
        summary,
        detail,
        argv,
        inputs,
    }
}

fn warnings(spec: &ClusterSpec) -> Vec<String> {
    let mut out = Vec::new();
    let m = spec.minimums();
    let g = GUIDE_MINIMUMS;
    let mut relaxed = Vec::new();
    if m.root_gb < g.root_gb {
        relaxed.push(format!("root filesystem {} -> {} GB", g.root_gb, m.root_gb));
    }
    if m.ram_gb < g.ram_gb {
        relaxed.push(format!("RAM {} -> {} GB", g.ram_gb, m.ram_gb));
    }
    if m.vcpus < g.vcpus {
        relaxed.push(format!("vCPU {} -> {}", g.vcpus, m.vcpus));
    }
    if g.single_partition && !m.single_partition {
        relaxed.push("single root partition no longer required".into());
    }
    if let Some(os) = spec
        .preflight
        .minimums
        .as_ref()
        .and_then(|m| m.os_releases.as_ref())
    {
        relaxed.push(format!(
            "Ubuntu {} -> {}",
            spec.nodes.os_version.release().version(),
            os.join(" or ")
        ));
    }
    if !relaxed.is_empty() {
        out.push(format!(
            "preflight minimums are relaxed from the guide's by [preflight.minimums]: {}",
            relaxed.join(", ")
        ));
    }
    for c in &spec.access.admin_cidrs {
        if c.prefix_len() == 0 {
            out.push(format!(
                "access.admin_cidrs has {c}: SSH and the MariaDB/Kibana/Grafana ports will be open to everyone"
            ));
        }
    }
    out
}

/// The plan as text, for a terminal.
pub fn render_text(plan: &Plan) -> String {
    let mut w = String::new();
    let state = match plan.state_serial {
        Some(serial) => format!("compared with the state (serial {serial})"),
        None => "no state yet: everything is new".into(),
    };
    let _ = writeln!(
        w,
        "Plan for cluster {:?} on {} ({state})",
        plan.cluster, plan.provider
    );
    for warning in &plan.warnings {
        let _ = writeln!(w, "warning: {warning}");
    }
    let _ = writeln!(w, "\nResources, in the order `up` handles them:");
    let width = plan
        .resources
        .iter()
        .map(|c| c.resource.address.len())
        .max()
        .unwrap_or(0);
    for c in &plan.resources {
        let _ = writeln!(
            w,
            "  {:<7} {:<width$}  {}",
            c.action.as_str(),
            c.resource.address,
            c.resource.name
        );
        if matches!(c.action, Action::Keep) {
            continue;
        }
        let kw = c.resource.attrs.keys().map(|k| k.len()).max().unwrap_or(0);
        for (k, v) in &c.resource.attrs {
            let _ = writeln!(w, "            {k:<kw$} = {v}");
        }
        for reason in &c.reasons {
            let _ = writeln!(w, "            because {reason}");
        }
    }
    let _ = writeln!(w, "\nBootstrap:");
    for s in &plan.bootstrap {
        let action = match s.action {
            StepAction::Run => "run",
            StepAction::Done => "done",
        };
        let _ = writeln!(w, "  {action:<7} {:<12} {}", s.id, s.summary);
        if s.action == StepAction::Run
            && let Some(d) = &s.detail
        {
            for line in d.lines() {
                let _ = writeln!(w, "            | {line}");
            }
        }
    }
    let s = &plan.summary;
    let update = if s.update > 0 {
        format!(" {} to update in place,", s.update)
    } else {
        String::new()
    };
    let _ = writeln!(
        w,
        "\nPlan: {} to create,{update} {} to replace, {} to delete, {} kept, {} used as they are; {} bootstrap steps to run.",
        s.create, s.replace, s.delete, s.keep, s.used, s.steps_to_run
    );
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use acura_ha_api::model::{Gone, Kind, Recorded};

    fn spec() -> ClusterSpec {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/openstack.toml"),
        )
        .unwrap();
        crate::config::parse("openstack.toml", &text).unwrap()
    }

    fn paths() -> Paths {
        Paths {
            key_file: None,
            inventory: "/tmp/ha_env_file".into(),
        }
    }

    /// A state that holds every desired resource as created: the plan without drift is clean.
    fn applied(spec: &ClusterSpec) -> State {
        let mut st = State::new(&spec.cluster.name, "openstack");
        st.serial = 1;
        for r in desired::desired(spec) {
            st.resources.push(Recorded {
                address: r.address.clone(),
                kind: r.kind,
                name: r.name.clone(),
                id: Some(format!("id-{}", r.address)),
                status: Status::Ready,
                attrs: r.attrs.clone(),
                outputs: Default::default(),
                created_at: "2026-12-07T00:00:00Z".into(),
            });
        }
        st
    }

    fn changes(p: &Plan) -> Vec<(Action, String, Vec<String>)> {
        p.resources
            .iter()
            .filter(|c| !matches!(c.action, Action::Keep | Action::Use))
            .map(|c| (c.action, c.resource.address.clone(), c.reasons.clone()))
            .collect()
    }

    #[test]
    fn without_drift_an_applied_state_plans_no_resource_change() {
        let spec = spec();
        let st = applied(&spec);
        let p = build_with(&spec, Some(&st), &paths(), Some(&Drift::default()));
        assert_eq!(changes(&p), vec![]);
    }

    #[test]
    fn a_resource_deleted_outside_is_created_again_with_the_reason() {
        let spec = spec();
        let st = applied(&spec);
        let listener = st
            .resources
            .iter()
            .find(|r| r.kind == Kind::Listener)
            .unwrap()
            .address
            .clone();
        let drift = Drift {
            gone: vec![Gone {
                address: listener.clone(),
                reason: "deleted outside acura-ha".into(),
            }],
            extra: vec![],
            changed: vec![],
        };
        let p = build_with(&spec, Some(&st), &paths(), Some(&drift));
        assert_eq!(
            changes(&p),
            vec![(
                Action::Create,
                listener,
                vec!["deleted outside acura-ha".to_string()]
            )]
        );
        assert_eq!(p.summary.create, 1);
        // A changed resource set runs the bootstrap again, as for any other change.
        assert!(p.has_changes());
    }

    /// An instance stopped outside the tool is an in-place change `up` makes (it starts it): an
    /// `update` with the reason, counted in the summary (and its JSON), a change for the exit
    /// code; without one, the JSON summary has no `update` key (plans read as before).
    #[test]
    fn an_instance_stopped_outside_is_an_update_counted_in_the_summary() {
        let spec = spec();
        let mut st = applied(&spec);
        for s in build(&spec, Some(&st), &paths()).bootstrap {
            st.steps.insert(
                s.id.to_string(),
                crate::state::StepRecord {
                    completed_at: "2026-12-07T00:00:00Z".into(),
                    inputs: s.inputs.clone(),
                },
            );
        }
        let clean = build_with(&spec, Some(&st), &paths(), Some(&Drift::default()));
        assert!(!clean.has_changes(), "{:?}", clean.summary);
        let doc = serde_json::to_value(&clean.summary).unwrap();
        assert!(doc.get("update").is_none(), "{doc}");
        let node = st
            .resources
            .iter()
            .find(|r| r.kind == Kind::Instance)
            .unwrap()
            .address
            .clone();
        let reason = "stopped outside acura-ha: up starts it";
        let drift = Drift {
            changed: vec![acura_ha_api::model::Changed {
                address: node.clone(),
                reason: reason.into(),
            }],
            ..Drift::default()
        };
        let p = build_with(&spec, Some(&st), &paths(), Some(&drift));
        assert_eq!(
            changes(&p),
            vec![(Action::Update, node.clone(), vec![reason.to_string()])]
        );
        assert_eq!(p.summary.update, 1);
        assert_eq!(p.summary.create + p.summary.replace + p.summary.delete, 0);
        assert!(p.has_changes(), "the plan exits 2");
        assert_eq!(p.summary.steps_to_run, 0, "the hosts stay the same");
        let doc = serde_json::to_value(&p).unwrap();
        assert_eq!(doc["summary"]["update"], 1, "{doc}");
        let text = render_text(&p);
        assert!(text.contains(&format!("  update  {node}")), "{text}");
        assert!(text.contains(&format!("because {reason}")), "{text}");
        assert!(text.contains("1 to update in place"), "{text}");
        // A node also to be replaced is a replacement, not an update.
        for r in st.resources.iter_mut().filter(|r| r.address == node) {
            r.attrs.insert("flavor".into(), "m1.large".into());
        }
        let p = build_with(&spec, Some(&st), &paths(), Some(&drift));
        assert_eq!(p.summary.update, 0);
        assert_eq!(p.summary.replace, 1);
    }

    #[test]
    fn a_rule_added_by_hand_is_deleted_and_a_known_one_is_not_listed_twice() {
        let spec = spec();
        let st = applied(&spec);
        let by_hand = Recorded::found(
            "security_group_rule[by-hand-tcp-8443-0.0.0.0/0]".into(),
            Kind::SecurityGroupRule,
            "tcp 8443 from 0.0.0.0/0".into(),
            "rule-1".into(),
            Default::default(),
        );
        let known = st.resources[0].clone();
        let drift = Drift {
            gone: vec![],
            extra: vec![by_hand.clone(), known],
            changed: vec![],
        };
        let p = build_with(&spec, Some(&st), &paths(), Some(&drift));
        assert_eq!(
            changes(&p),
            vec![(
                Action::Delete,
                by_hand.address,
                vec!["added outside acura-ha".to_string()]
            )]
        );
    }

    /// Ownership (#9.4): the lineage rides on the tags sent to the cloud only, never on the
    /// plan's `tags` attribute (so a plan before the first state, and clusters made before
    /// lineage tags, read the same), and a resource of another state is refused by name.
    #[test]
    fn lineage_rides_on_the_cloud_tags_only_and_another_state_is_refused() {
        use acura_ha_api::spec::TAG_LINEAGE;
        let mut spec = spec();
        let plain = spec.tags("node");
        assert_eq!(
            spec.cloud_tags("node"),
            plain,
            "no state yet: no lineage tag"
        );
        let before = build(&spec, None, &paths());
        spec.lineage = Some("L1".into());
        assert_eq!(
            spec.tags("node"),
            plain,
            "the plan's attribute never carries it"
        );
        assert!(
            spec.cloud_tags("node")
                .contains(&(TAG_LINEAGE.to_string(), "L1".to_string()))
        );
        let after = build(&spec, None, &paths());
        assert_eq!(
            serde_json::to_value(&before.resources).unwrap(),
            serde_json::to_value(&after.resources).unwrap()
        );
        assert!(spec.check_lineage("instance[a-1]", Some("L1")).is_ok());
        assert!(spec.check_lineage("instance[a-1]", None).is_ok());
        let e = spec.check_lineage("instance[a-1]", Some("L2")).unwrap_err();
        assert!(
            e.contains("instance[a-1]") && e.contains("L2") && e.contains("L1"),
            "{e}"
        );
    }

    /// A changed flavor is a replace of every node, each said to go one at a time through
    /// `node replace`; a tainted node is not (up remakes it).
    #[test]
    fn a_changed_flavor_replaces_nodes_one_at_a_time_through_node_replace() {
        let spec = spec();
        let mut st = applied(&spec);
        let mut tainted = None;
        for r in st.resources.iter_mut().filter(|r| r.kind == Kind::Instance) {
            r.attrs.insert("flavor".into(), "m1.large".into());
            if tainted.is_none() {
                r.status = Status::Tainted;
                tainted = Some(r.address.clone());
            }
        }
        let p = build(&spec, Some(&st), &paths());
        let nodes: Vec<&ResourceChange> = p
            .resources
            .iter()
            .filter(|c| c.resource.kind == Kind::Instance)
            .collect();
        assert_eq!(nodes.len(), 3);
        for c in nodes {
            assert_eq!(c.action, Action::Replace);
            let said = c.reasons.iter().any(|r| r == NODE_REPLACE_NOTE);
            if Some(&c.resource.address) == tainted.as_ref() {
                assert!(!said && !node_replacement(c), "{c:?}");
            } else {
                assert!(said && node_replacement(c), "{c:?}");
                assert!(c.reasons.iter().any(|r| r.contains("m1.large")), "{c:?}");
            }
        }
    }

    /// The review of #9.2: the mark on the change decides what `up` does, never the wording of
    /// its reasons. A tainted node whose reasons read otherwise stays the provider's to make
    /// again, and a changed node is a replacement whatever a reason looks like.
    #[test]
    fn a_node_replacement_is_told_by_the_mark_not_by_the_reasons_text() {
        let spec = spec();
        let mut st = applied(&spec);
        let nodes: Vec<String> = st
            .resources
            .iter()
            .filter(|r| r.kind == Kind::Instance)
            .map(|r| r.address.clone())
            .collect();
        assert_eq!(nodes.len(), 3);
        for r in st.resources.iter_mut() {
            if r.address == nodes[0] {
                r.status = Status::Tainted;
            } else if r.address == nodes[1] {
                r.status = Status::Creating;
            } else if r.address == nodes[2] {
                r.attrs.insert("flavor".into(), "m1.large".into());
            }
        }
        let p = build(&spec, Some(&st), &paths());
        let change = |a: &str| {
            p.resources
                .iter()
                .find(|c| c.resource.address == a)
                .unwrap()
                .clone()
        };
        let (tainted, interrupted, changed) =
            (change(&nodes[0]), change(&nodes[1]), change(&nodes[2]));
        assert_eq!(tainted.replace_cause, Some(ReplaceCause::Tainted));
        assert_eq!(interrupted.replace_cause, Some(ReplaceCause::Interrupted));
        assert_eq!(changed.replace_cause, Some(ReplaceCause::Changed));
        assert!(!node_replacement(&tainted) && !node_replacement(&interrupted));
        assert!(node_replacement(&changed));

        // Reworded (a new wording, a translation): the same answers.
        for mut c in [tainted, interrupted] {
            c.reasons = vec!["failed half-way; made again by the provider".into()];
            assert!(!node_replacement(&c), "{c:?}");
        }
        let mut c = changed;
        c.reasons
            .insert(0, "tainted_by: (unset) -> an attribute of that name".into());
        assert!(node_replacement(&c), "{c:?}");
        // The mark is in the JSON plan too, for scripts.
        let doc = serde_json::to_value(&c).unwrap();
        assert_eq!(doc["replace_cause"], "changed", "{doc}");
    }

    /// Changed nodes alone do not run the bootstrap steps again: `up` joins each new node
    /// through the `node replace` path, which records the steps for the new node set itself.
    #[test]
    fn changed_nodes_alone_leave_the_recorded_steps_done() {
        let spec = spec();
        let mut st = applied(&spec);
        for s in build(&spec, Some(&st), &paths()).bootstrap {
            st.steps.insert(
                s.id.to_string(),
                crate::state::StepRecord {
                    completed_at: "2026-12-07T00:00:00Z".into(),
                    inputs: s.inputs.clone(),
                },
            );
        }
        let clean = build(&spec, Some(&st), &paths());
        assert!(!clean.has_changes(), "{:?}", clean.summary);
        for r in st.resources.iter_mut().filter(|r| r.kind == Kind::Instance) {
            r.attrs.insert("flavor".into(), "m1.large".into());
        }
        let p = build(&spec, Some(&st), &paths());
        assert_eq!(p.summary.replace, 3);
        assert_eq!(p.summary.steps_to_run, 0, "{:?}", p.bootstrap);
        assert!(p.has_changes());
        // A tainted node is the provider's to make again: every step runs, as before.
        st.resources
            .iter_mut()
            .find(|r| r.kind == Kind::Instance)
            .unwrap()
            .status = Status::Tainted;
        let p = build(&spec, Some(&st), &paths());
        assert!(p.bootstrap.iter().all(|s| s.action == StepAction::Run));
    }
}
