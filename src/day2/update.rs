//! `acura-ha update`: the guide's "update an already deployed Acura" — read `/overlay_list` from
//! Acura's store on a live node, show the change, write the new list, then run
//! `ansible/ha-acura.yaml` with the full list and `update_cluster=true`.

use serde::Serialize;

use super::node::say;
use super::{Ctx, Day2Error, kube, live_node};
use crate::bootstrap::{self, ansible, playbook, workspace};
use crate::config::LoadedConfig;
use crate::events::StepGuard;
use crate::output::Ui;
use crate::state::StateStore;

#[derive(Debug, Default, Clone)]
pub struct UpdateOptions {
    pub add: Vec<String>,
    pub remove: Vec<String>,
}

/// What `update` did.
#[derive(Debug, Serialize)]
pub struct UpdateReport {
    pub live_node: String,
    pub before: Vec<String>,
    pub after: Vec<String>,
    pub written: bool,
}

/// Refuses an overlay that is not an archive path (`overlay/<name>.yaml|yml`): `--add-overlay`
/// values, and the list stored in etcd-0 (data from the cluster, which reaches a playbook).
pub fn check_overlays(list: &[String], from: &str) -> Result<(), Day2Error> {
    for o in list {
        playbook::check_overlay(o).map_err(|why| Day2Error::Usage(format!("{from}: {why}")))?;
    }
    Ok(())
}

/// The new list: `current` without `remove`, then each of `add` not already in it.
pub fn changed_list(current: &[String], add: &[String], remove: &[String]) -> Vec<String> {
    let mut out: Vec<String> = current
        .iter()
        .filter(|o| !remove.contains(o))
        .cloned()
        .collect();
    for a in add {
        if !out.contains(a) {
            out.push(a.clone());
        }
    }
    out
}

pub async fn update(
    cfg: &LoadedConfig,
    store: &StateStore,
    opts: &UpdateOptions,
    become_password: Option<String>,
    ui: &Ui,
) -> Result<UpdateReport, Day2Error> {
    let _lock = store.lock("update")?;
    let mut ctx = Ctx::open(cfg, store)?;
    let now = ctx.cfg();
    let spec = &now.spec;
    for r in &opts.remove {
        if opts.add.contains(r) {
            return Err(Day2Error::Usage(format!(
                "{r:?} is both added and removed: name it once"
            )));
        }
    }
    check_overlays(&opts.add, "--add-overlay")?;
    let inv = ctx.inventory()?;
    let (live, _) = live_node(&inv.nodes, &[], &spec.access.ssh_user, &ctx.ssh_options()).await?;
    say(
        "read",
        format!("/overlay_list from etcd-0 (on {})", live.name()),
    );
    let before = kube::overlay_get(&live.session).await?;
    check_overlays(
        &before,
        &format!(
            "/overlay_list in etcd-0 on {} (fix the stored list with etcdctl set before an update)",
            live.name()
        ),
    )?;
    for r in &opts.remove {
        if !before.contains(r) {
            ui.note(format_args!(
                "note: {r:?} is not in the overlay list: nothing to remove"
            ));
        }
    }
    let after = changed_list(&before, &opts.add, &opts.remove);
    ui.say(format_args!("overlay_list on {}:", live.name()));
    for o in &before {
        let mark = if after.contains(o) { " " } else { "-" };
        ui.say(format_args!("  {mark} {o}"));
    }
    for o in after.iter().filter(|o| !before.contains(o)) {
        ui.say(format_args!("  + {o}"));
    }
    let written = after != before;
    let inventory = store.cluster_dir().ha_env_file().display().to_string();
    let run = playbook::ha_acura(spec, &after, true, &inventory);
    ui.say(format_args!(
        "\n{}then run: {}",
        if written {
            "write the new list to etcd-0, "
        } else {
            "the list is unchanged; "
        },
        run.command_line()
    ));
    ui.confirm("\nApply this update?")?;
    if written {
        let step = StepGuard::start("overlay_list", None);
        say(
            "write",
            format!("/overlay_list in etcd-0 (on {})", live.name()),
        );
        kube::overlay_set(&live.session, &after).await?;
        step.done();
    }
    // The state follows the store at once: a failed playbook below is re-run with this list.
    ctx.state.day2.overlays = Some(after.clone());
    ctx.save()?;
    ctx.settle()?;
    let step = StepGuard::start("ha-acura", Some(run.command_line()));
    let ws = workspace::prepare(&ctx.cfg(), &store.cluster_dir()).await?;
    let secrets = bootstrap::become_vars(become_password.as_deref());
    say("run", format!("ha-acura (update): {}", run.command_line()));
    ansible::run_playbook(&ws, &run, &secrets, "ha-acura-update", false).await?;
    step.done();
    ui.say(format_args!(
        "\nAcura updated with {} overlay(s) (live node {}).",
        after.len(),
        live.name()
    ));
    Ok(UpdateReport {
        live_node: live.name().to_string(),
        before,
        after,
        written,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_append_once_and_removes_keep_order() {
        let cur: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        assert_eq!(
            changed_list(&cur, &["d".into(), "a".into()], &["b".into()]),
            ["a", "c", "d"].map(String::from).to_vec()
        );
        assert_eq!(changed_list(&cur, &[], &[]), cur);
    }

    #[test]
    fn overlays_that_are_not_archive_paths_are_refused() {
        assert!(check_overlays(&["overlay/extra.yaml".into()], "--add-overlay").is_ok());
        let bad = "{{ lookup('pipe', 'id') }}";
        let e = check_overlays(
            &["overlay/ha.yaml".into(), bad.into()],
            "/overlay_list in etcd-0 on acura-1",
        )
        .expect_err("a template is no overlay");
        assert!(matches!(e, Day2Error::Usage(_)), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains(&format!("{bad:?}")), "{msg}");
        assert!(msg.contains("etcd-0 on acura-1"), "{msg}");
        assert!(check_overlays(&["overlay/../x.yaml".into()], "--add-overlay").is_err());
    }
}
