//! Waits: a condition polled until a deadline, with a progress line on stderr that says what is
//! still awaited and for how long.
//!
//! Waits for a cloud transition ([`Op`]) adapt to the cloud: until one has been observed, the
//! first poll comes after `pace.min` and the delays grow with the time elapsed (half of it, up to
//! `pace.max`), so a fast cloud is seen fast and a slow one is asked a logarithmic number of
//! times; once one has been observed, the first poll comes when the last one was done and later
//! polls follow at 5 % of the time elapsed, asking the cloud about once per transition.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use acura_ha_api::provider::ProviderError;
use backon::BackoffBuilder;

/// How waits poll: the shortest and longest delay between polls, and `scale`, the factor
/// applied to the typical durations of [`Op`] (1.0 for a real cloud; a fake cloud whose delays
/// are scaled down 10× uses 0.1).
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub min: Duration,
    pub max: Duration,
    pub scale: f64,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            min: Duration::from_millis(500),
            max: Duration::from_secs(15),
            scale: 1.0,
        }
    }
}

impl Pace {
    /// The default pace with every duration multiplied by `scale`.
    pub fn scaled(scale: f64) -> Pace {
        let d = Pace::default();
        Pace {
            min: d.min.mul_f64(scale),
            max: d.max.mul_f64(scale),
            scale,
        }
    }
}

/// A cloud transition that is waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Nova: BUILD → ACTIVE (a boot volume included).
    ServerBuild,
    /// Nova: a deleted server is no longer listed.
    ServerDelete,
    /// Octavia: PENDING_CREATE → ACTIVE.
    LbCreate,
    /// Octavia: PENDING_UPDATE → ACTIVE after a child change.
    LbUpdate,
    /// Octavia: PENDING_DELETE → gone.
    LbDelete,
}

/// What transitions have been seen to take (per provider, so per command).
#[derive(Debug, Default)]
pub struct Tempo {
    seen: Mutex<HashMap<Op, Duration>>,
}

impl Tempo {
    pub fn seen(&self, op: Op) -> Option<Duration> {
        self.seen.lock().expect("tempo").get(&op).copied()
    }
    fn set(&self, op: Op, d: Duration) {
        self.seen.lock().expect("tempo").insert(op, d);
    }
}

/// How long a check of `op` started at `started` waits before its first poll, and the
/// fraction of the elapsed time between later polls.
fn schedule(tempo: &Tempo, pace: Pace, op: Op) -> (Duration, f64) {
    match tempo.seen(op) {
        Some(d) => (d, 0.05),
        // Never seen: no guess at a "typical" duration (a cloud faster than the guess would pay
        // for it); poll soon, then back off geometrically (each delay half the time elapsed, so
        // the wait overshoots the transition by at most half of it, capped at `pace.max`).
        None => (pace.min, 0.5),
    }
}

/// Waits for `op`, begun at `started` (the request that set it off): polls `check` on the
/// adaptive schedule until it returns `Ok(Ok(v))`; `Ok(Err(status))` means not yet. When
/// `learn` is set (the transition was ours and was timed from its start), what it took is
/// remembered for the next wait of the same kind.
#[allow(clippy::too_many_arguments)]
pub async fn transition<T, F, Fut>(
    what: &str,
    deadline: Duration,
    pace: Pace,
    quiet: bool,
    tempo: &Tempo,
    op: Op,
    started: Instant,
    learn: bool,
    mut check: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Result<T, String>, ProviderError>>,
{
    let (first, fraction) = schedule(tempo, pace, op);
    let floor = (pace.min / 10).max(Duration::from_millis(1));
    tokio::time::sleep_until((started + first).into()).await;
    let mut polls = 0u32;
    let mut last_print = None::<Instant>;
    loop {
        let at = started.elapsed();
        polls += 1;
        match check().await? {
            Ok(v) => {
                // Seen at a first poll made on time: it may have taken less, so probe a little
                // earlier next time; seen later: it took about this long. A first poll made
                // late (the wait began after the transition was over) says nothing.
                let on_time = at <= first.mul_f64(1.2) + floor;
                if learn && (polls > 1 || on_time) {
                    let next = if polls == 1 { first.mul_f64(0.99) } else { at };
                    tempo.set(op, next);
                }
                return Ok(v);
            }
            Err(status) => {
                if at >= deadline {
                    return Err(ProviderError::Cloud {
                        resource: what.to_string(),
                        message: format!("not done after {:.0} s: {status}", at.as_secs_f64()),
                        request_id: None,
                    });
                }
                if !quiet && last_print.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                    eprintln!(
                        "[{:>6.1}s] openstack: waiting for {what}: {status}",
                        at.as_secs_f64()
                    );
                    last_print = Some(Instant::now());
                }
            }
        }
        let delay = at.mul_f64(fraction).clamp(floor, pace.max);
        tokio::time::sleep(delay).await;
    }
}

/// Polls `check` until it returns `Ok(Ok(v))`; `Ok(Err(status))` means not yet, and `status`
/// names what is still awaited. Fails naming `what` when `deadline` passes. Exponential
/// backoff from `pace.min` to `pace.max` (for waits that are not a timed transition).
pub async fn until<T, F, Fut>(
    what: &str,
    deadline: Duration,
    pace: Pace,
    quiet: bool,
    check: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Result<T, String>, ProviderError>>,
{
    let delays = backon::ExponentialBuilder::default()
        .with_min_delay(pace.min)
        .with_max_delay(pace.max)
        .without_max_times()
        .build();
    acura_ha_api::wait::until("openstack", what, deadline, quiet, delays, check).await
}
