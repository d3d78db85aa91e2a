//! Waits: a condition polled with backon's exponential backoff until a deadline, with a
//! progress line on stderr that says what is still awaited and for how long.

use std::future::Future;
use std::time::{Duration, Instant};

use acura_ha_api::provider::ProviderError;
use backon::BackoffBuilder;

/// How waits poll: the first delay (then doubling up to `max`).
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub min: Duration,
    pub max: Duration,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            min: Duration::from_millis(500),
            max: Duration::from_secs(15),
        }
    }
}

/// Polls `check` until it returns `Ok(Ok(v))`; `Ok(Err(status))` means not yet, and `status`
/// names what is still awaited. Fails naming `what` when `deadline` passes.
pub async fn until<T, F, Fut>(
    what: &str,
    deadline: Duration,
    pace: Pace,
    quiet: bool,
    mut check: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Result<T, String>, ProviderError>>,
{
    let started = Instant::now();
    let mut delays = backon::ExponentialBuilder::default()
        .with_min_delay(pace.min)
        .with_max_delay(pace.max)
        .without_max_times()
        .build();
    let mut last_print = None::<Instant>;
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
                        "[{:>6.1}s] openstack: waiting for {what}: {status}",
                        started.elapsed().as_secs_f64()
                    );
                    last_print = Some(Instant::now());
                }
            }
        }
        tokio::time::sleep(delays.next().unwrap_or(pace.max)).await;
    }
}
