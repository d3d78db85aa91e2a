//! `acura-ha plan -c FILE [--output json] [--refresh=false]`

use super::{ClusterArgs, EXIT_CHANGES, EXIT_OK, OutputArgs};
use crate::error::Error;
use crate::refresh::{self, Mode};
use crate::{bootstrap, plan};

/// `--refresh=false`: compare the file with the state only, without reading the cloud.
#[derive(Debug, Clone, clap::Args)]
pub struct RefreshArg {
    /// Read the cloud first, so changes made outside acura-ha show (`--refresh=false`: the
    /// state only, offline and fast, as `terraform plan -refresh=false`)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub refresh: bool,
}

impl RefreshArg {
    pub fn mode(&self) -> Mode {
        if self.refresh {
            Mode::Cloud
        } else {
            Mode::StateOnly
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub refresh: RefreshArg,
}

pub fn exec(args: Args) -> Result<u8, Error> {
    let (cfg, store) = args.cluster.load()?;
    let state = store.load()?;
    let mode = args.refresh.mode();
    // A provider left out of this build cannot read its cloud: the plan is then the state's.
    let drift = match crate::targets::provider(&cfg, &store) {
        Ok(provider) => super::block_on(async {
            refresh::drift(provider.as_ref(), &cfg.spec, state.as_ref(), mode, false)
                .await
                .map_err(Error::from)
        })?,
        Err(_) => None,
    };
    let mut plan = plan::build_with(
        &cfg.spec,
        state.as_ref(),
        &bootstrap::paths(&cfg, &store.cluster_dir()),
        drift.as_ref(),
    );
    refresh::note(&mut plan, state.as_ref(), mode);
    args.output.ui().render(&plan, plan::render_text);
    // Detailed exit codes compare against a state; a first plan is a preview.
    Ok(if state.is_some() && plan.has_changes() {
        EXIT_CHANGES
    } else {
        EXIT_OK
    })
}
