//! Waits: a condition polled with backoff until a deadline, with a progress line that says what
//! is awaited and for how long.

use std::future::Future;
use std::time::{Duration, Instant};

use acura_ha_api::provider::ProviderError;

/// Polls `check` until it returns `Some`, backing off from 1 s to 15 s, and fails naming `what`
/// when `deadline` passes. `check` reports progress text when it is not done yet.
pub async fn until<T, F, Fut>(
    what: &str,
    deadline: Duration,
    quiet: bool,
    mut check: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Result<T, String>, ProviderError>>,
{
    let started = Instant::now();
    let mut delay = Duration::from_millis(500);
    let mut last_print = None::<Instant>;
    loop {
        match check().await? {
            Ok(v) => return Ok(v),
            Err(status) => {
                if started.elapsed() >= deadline {
                    return Err(ProviderError::Cloud {
                        resource: what.to_string(),
                        message: format!(
                            "not ready after {:.0} s: {status}",
                            started.elapsed().as_secs_f64()
                        ),
                        request_id: None,
                    });
                }
                if !quiet && last_print.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                    eprintln!(
                        "[{:>6.1}s] aws: waiting for {what}: {status}",
                        started.elapsed().as_secs_f64()
                    );
                    last_print = Some(Instant::now());
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(15));
    }
}
