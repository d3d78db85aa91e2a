//! Refresh (converge, #9.3): before `plan` and `up` compare the file with the state, the
//! provider compares the state with the cloud, so a change made outside the tool shows in the
//! plan and `up` repairs it. `--refresh=false` skips it (as `terraform plan -refresh=false`) for
//! a fast offline plan, and the plan says so.

use acura_ha_api::model::Drift;
use acura_ha_api::provider::{Journal, Provider, ProviderError};
use acura_ha_api::spec::ClusterSpec;

use crate::plan::Plan;
use crate::progress::Progress;
use crate::state::State;

/// What the plan compared against: the cloud (refreshed), or only the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Cloud,
    /// `--refresh=false`.
    StateOnly,
}

/// Reads the cloud's side of `state`, when there is one to read: nothing before a first `up`,
/// nothing with `--refresh=false`, nothing where the provider cannot tell (`None`).
pub async fn drift(
    provider: &dyn Provider,
    spec: &ClusterSpec,
    state: Option<&State>,
    mode: Mode,
    quiet: bool,
) -> Result<Option<Drift>, ProviderError> {
    let Some(state) = state.filter(|s| s.serial > 0 && !s.resources.is_empty()) else {
        return Ok(None);
    };
    if mode == Mode::StateOnly {
        return Ok(None);
    }
    let mut progress = Progress::new("refresh").quiet(quiet);
    progress.update(format!(
        "reading {} recorded resources from the {} cloud",
        state.resources.len(),
        provider.kind().as_str()
    ));
    let drift = provider.refresh(spec, &state.resources).await?;
    match &drift {
        Some(d) if !d.is_empty() => progress.done(format!(
            "{} gone, {} added outside acura-ha{}",
            d.gone.len(),
            d.extra.len(),
            if d.changed.is_empty() {
                String::new()
            } else {
                format!(", {} to change in place", d.changed.len())
            }
        )),
        Some(_) => progress.done("the cloud matches the state"),
        None => progress.done("this provider keeps no drift to compare"),
    }
    Ok(drift)
}

/// Says in the plan that it was made without reading the cloud.
pub fn note(plan: &mut Plan, state: Option<&State>, mode: Mode) {
    if mode == Mode::StateOnly && state.is_some_and(|s| s.serial > 0) {
        plan.warnings.push(
            "made without reading the cloud (--refresh=false): changes made outside acura-ha are not shown"
                .into(),
        );
    }
}

/// Before `up` provisions: forgets the records of what the cloud no longer has, so the provider
/// creates them again (and records their new IDs) instead of trusting a stale ID.
pub fn forget_gone(journal: &mut dyn Journal, drift: Option<&Drift>) -> Result<(), ProviderError> {
    for g in drift.map(|d| d.gone.as_slice()).unwrap_or_default() {
        journal.forget(&g.address)?;
    }
    Ok(())
}
