//! The wait every provider shares: a condition polled on a schedule until a deadline, with a
//! progress line that says what is awaited and for how long.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::provider::ProviderError;

/// Polls `check` until it returns `Ok(Ok(v))`; `Ok(Err(status))` means not yet, `status` naming
/// what is still awaited. Sleeps the next of `delays` between polls (the last one once they run
/// out), prints `[  12.3s] <label>: waiting for <what>: <status>` at most every 10 s unless
/// `quiet`, and fails naming `what` when `deadline` passes.
pub async fn until<T, F, Fut>(
    label: &str,
    what: &str,
    deadline: Duration,
    quiet: bool,
    mut delays: impl Iterator<Item = Duration>,
    mut check: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Result<T, String>, ProviderError>>,
{
    let started = Instant::now();
    let mut last_print = None::<Instant>;
    let mut delay = Duration::from_secs(1);
    loop {
        match check().await? {
            Ok(v) => return Ok(v),
            Err(status) => {
                if started.elapsed() >= deadline {
                    return Err(ProviderError::Cloud {
                        resource: what.to_string(),
                        message: format!(
                            "not done after {:.0} s: {status}",
                            started.elapsed().as_secs_f64()
                        ),
                        request_id: None,
                    });
                }
                if !quiet && last_print.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                    eprintln!(
                        "[{:>6.1}s] {label}: waiting for {what}: {status}",
                        started.elapsed().as_secs_f64()
                    );
                    last_print = Some(Instant::now());
                }
            }
        }
        delay = delays.next().unwrap_or(delay);
        tokio::time::sleep(delay).await;
    }
}
