//! Waits: a condition polled with backoff until a deadline, with a progress line that says what
//! is awaited and for how long.

use std::future::Future;
use std::time::Duration;

use acura_ha_api::provider::ProviderError;

/// Polls `check` until it returns `Some`, backing off from 1 s to 15 s, and fails naming `what`
/// when `deadline` passes. `check` reports progress text when it is not done yet.
pub async fn until<T, F, Fut>(
    what: &str,
    deadline: Duration,
    quiet: bool,
    check: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Result<T, String>, ProviderError>>,
{
    let delays = std::iter::successors(Some(Duration::from_millis(500)), |d| {
        Some((*d * 2).min(Duration::from_secs(15)))
    });
    acura_ha_api::wait::until("aws", what, deadline, quiet, delays, check).await
}
