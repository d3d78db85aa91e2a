//! The contract every target implements: one crate per cloud, one `impl Provider`.

use async_trait::async_trait;

use crate::model::{ConsoleHostKeys, Drift, Inventory, LbHealth, Recorded, Resource, Status};
use crate::spec::{ClusterSpec, ProviderKind};

/// How a provider reports what it creates, the moment it knows: the engine writes each record to
/// the state file before the provider makes its next call (write-ahead), so a crash leaves
/// nothing unknown.
pub trait Journal: Send {
    fn record(&mut self, resource: Recorded) -> Result<(), ProviderError>;
    fn forget(&mut self, address: &str) -> Result<(), ProviderError>;
    fn get(&self, address: &str) -> Option<&Recorded>;
    /// Everything recorded, in the order it was first recorded.
    fn all(&self) -> Vec<Recorded>;
}

/// Records the desired resource `r` with `status`, the cloud's `id` and `outputs`, keeping the
/// `created_at` of an earlier record of the same address (the janitor's age is the first one).
pub fn record_desired(
    journal: &mut dyn Journal,
    r: &Resource,
    status: Status,
    id: Option<String>,
    outputs: std::collections::BTreeMap<String, String>,
) -> Result<(), ProviderError> {
    let created_at = journal
        .get(&r.address)
        .map(|old| old.created_at.clone())
        .unwrap_or_else(|| {
            humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
        });
    journal.record(Recorded {
        address: r.address.clone(),
        kind: r.kind,
        name: r.name.clone(),
        id,
        status,
        attrs: r.attrs.clone(),
        outputs,
        created_at,
    })
}

/// A provider's failure: which resource, what the cloud said, and its request ID.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{resource}: {message}{}", request_id.as_ref().map(|r| format!(" (request ID {r})")).unwrap_or_default())]
    Cloud {
        resource: String,
        message: String,
        request_id: Option<String>,
    },
    #[error("{0}")]
    Journal(String),
    #[error("{what}: not known yet ({hint})")]
    NotKnown { what: String, hint: String },
    #[error("{0}")]
    Unsupported(String),
}

#[async_trait]
pub trait Provider: Send + Sync {
    fn kind(&self) -> ProviderKind;

    /// Creates (or finds and adopts) every resource of [`desired`](crate::desired::desired), recording each
    /// one in the journal, and returns the hosts to bootstrap.
    async fn provision(
        &self,
        spec: &ClusterSpec,
        journal: &mut dyn Journal,
    ) -> Result<Inventory, ProviderError>;

    /// Everything in the cloud that carries the cluster's tags (or its deterministic names), as
    /// records `destroy` can delete: for `down --discover` when the state is lost.
    async fn discover(&self, _spec: &ClusterSpec) -> Result<Vec<Recorded>, ProviderError> {
        Ok(Vec::new())
    }

    /// Every cluster this tool made in the provider's account and region (for `janitor`), with
    /// the Unix time of its oldest resource, optionally only those carrying all `tags`.
    async fn clusters(
        &self,
        _spec: &ClusterSpec,
        _tags: &[(String, String)],
    ) -> Result<Vec<(String, u64)>, ProviderError> {
        Err(ProviderError::Unsupported(format!(
            "janitor does not apply to the {} provider",
            self.kind().as_str()
        )))
    }

    /// Day 2 (`node remove`/`replace`): takes the named nodes out of the load balancer and
    /// deletes their hosts (VM and volume, or lab host), forgetting each record as it goes.
    /// `spec.node_names()` no longer lists them. NotFound counts as done.
    async fn remove_nodes(
        &self,
        _spec: &ClusterSpec,
        _names: &[String],
        _journal: &mut dyn Journal,
    ) -> Result<(), ProviderError> {
        Err(ProviderError::Unsupported(format!(
            "the {} provider cannot remove nodes yet",
            self.kind().as_str()
        )))
    }

    /// Compares the cloud with what the state records (batched: one list or describe per kind)
    /// for `plan` and `up`: what was deleted outside the tool, what was added to the
    /// cluster's own containers, and what `up` changes in place (an instance stopped outside). `None` when the provider cannot tell (the plan then says it
    /// was made without a refresh). Takes the records rather than the journal so the future
    /// stays `Send` (a `&dyn Journal` is not).
    async fn refresh(
        &self,
        _spec: &ClusterSpec,
        _recorded: &[Recorded],
    ) -> Result<Option<Drift>, ProviderError> {
        Ok(None)
    }

    /// The host keys the cloud vouches for (each server's console output), for the nodes and
    /// the NGINX host of `inventory`. Providers without a console (static hosts, the local
    /// target) return none: those hosts are pinned on first use. A cloud that refuses the call
    /// for a host leaves it out rather than failing the run.
    async fn console_host_keys(
        &self,
        _spec: &ClusterSpec,
        _inventory: &Inventory,
        _recorded: &[Recorded],
    ) -> Result<ConsoleHostKeys, ProviderError> {
        Ok(ConsoleHostKeys::default())
    }

    /// The cloud load balancer's view of its targets (`status`). `None` for load balancers that
    /// are not the cloud's own (NGINX hosts, static, local): the bootstrap checks those itself.
    async fn lb_health(
        &self,
        _spec: &ClusterSpec,
        _recorded: &[Recorded],
    ) -> Result<Option<LbHealth>, ProviderError> {
        Ok(None)
    }

    /// Deletes everything the journal holds, in reverse order; NotFound counts as done.
    async fn destroy(
        &self,
        spec: &ClusterSpec,
        journal: &mut dyn Journal,
    ) -> Result<(), ProviderError>;
}
