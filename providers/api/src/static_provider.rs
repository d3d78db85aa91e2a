//! `provider = static`: bring your own VMs. Nothing is created or deleted; the hosts and the
//! load balancer come from the cluster file.

use async_trait::async_trait;

use crate::model::Inventory;
use crate::provider::{Journal, Provider, ProviderError};
use crate::spec::{ClusterSpec, ProviderKind};

pub struct StaticProvider;

#[async_trait]
impl Provider for StaticProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Static
    }

    async fn provision(
        &self,
        spec: &ClusterSpec,
        _journal: &mut dyn Journal,
    ) -> Result<Inventory, ProviderError> {
        crate::inventory::inventory(spec, &[])
    }

    async fn destroy(
        &self,
        _spec: &ClusterSpec,
        _journal: &mut dyn Journal,
    ) -> Result<(), ProviderError> {
        // The hosts are the user's: tearing down a static cluster deletes nothing on them.
        Ok(())
    }
}
