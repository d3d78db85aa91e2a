//! The provider for a cluster file: one arm per target crate. Everything else about a target
//! (its section, validation, desired resources, inventory) lives in its own file of the
//! contract crate (`providers/api/src/targets/`) and in its provider crate.

use acura_ha_api::provider::{Provider, ProviderError};
use acura_ha_api::spec::ProviderKind;
use acura_ha_api::static_provider::StaticProvider;

use crate::config::LoadedConfig;
use crate::state::StateStore;

/// The cluster file names a cloud this build was made without.
#[derive(Debug, thiserror::Error)]
#[error(
    "the {kind} provider is not in this build of acura-ha (`plan` and `render` work): build with `--features {kind}`"
)]
pub struct NotInBuild {
    pub kind: &'static str,
}

/// The provider for a cluster file.
pub fn provider(cfg: &LoadedConfig, store: &StateStore) -> Result<Box<dyn Provider>, NotInBuild> {
    match cfg.spec.provider_kind() {
        ProviderKind::Static => Ok(Box::new(StaticProvider)),
        ProviderKind::Local => {
            let dir = store.cluster_dir();
            let key = crate::bootstrap::key_file(cfg, &dir)
                .expect("the local target always has a key file");
            Ok(Box::new(acura_ha_local::LocalProvider::new(
                dir.root().to_path_buf(),
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
        other => Err(NotInBuild {
            kind: other.as_str(),
        }),
    }
}

/// The stable code of a provider's error (`error[AH3…]`).
pub fn error_code(e: &ProviderError) -> &'static str {
    match e {
        ProviderError::NotKnown { .. } => "AH300",
        ProviderError::Cloud { .. } => "AH301",
        ProviderError::Journal(_) => "AH302",
        ProviderError::Unsupported(_) => "AH303",
    }
}
