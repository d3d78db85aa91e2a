//! Waits: a condition polled until a deadline, with a progress line on stderr that says what is
//! still awaited and for how long.
//!
//! Every wait polls on one schedule that assumes nothing about how fast the cloud is (issue 12
//! item 2): the first poll soon (`pace.min` after the request that set the transition off),
//! the delays doubling up to `pace.max`, each plus `pace.share` of the time elapsed. What a
//! wait costs beyond the transition it waits for is therefore at most `pace.max + share × T`
//! for a transition of T, whatever T is (0.5 s + 10 % by default), and a long wait asks the
//! cloud a number of times that grows with the logarithm of T, not with T.
//!
//! The default is a choice between wall time and requests (measured with the bench,
//! `examples/bench.rs --pace`): a cap of 2 s and 5 % costs 13 polls for a 30 s transition and
//! 21 for 60 s, but up to 2 s on short ones (a 3 s Octavia create was seen after 3.5 s, a 1 s
//! delete after 1.5 s); 0.5 s and 10 % costs 21 and 27 polls and never more than 0.5 s + 10 %.
//!
//! On a cloud it has seen, a wait polls inside the bracket the same kind of transition took
//! there the last time (more than `lo`, at most `hi`; see [`crate::memory`]): first at the later
//! of `lo` and 97 % of `hi` (at `hi` when the bracket is about 3 % of it wide, its `lo` checked
//! every few runs; after a probe at half of `hi` when there is no `lo`, after one in its middle
//! when it is wider than 15 %), then every 3 % of `hi` up to 130 % of it, then on the schedule
//! above. A transition as fast as before costs one or two polls and at most 3 % of its
//! time; one slower than remembered costs the ordinary polls after 130 %; one faster is seen at
//! the first poll, and the next runs probe lower. A wait that begins after its first poll was
//! due (it followed other work) and sees the transition done at once remembers nothing: what it
//! measured is that work, not the transition.

use std::future::Future;
use std::time::{Duration, Instant};

use acura_ha_api::provider::ProviderError;

use crate::memory::{Bracket, Memory};

/// How waits poll: the first delay (`min`), the cap of the doubling delays (`max`), the share
/// of the elapsed time added to every delay, and `scale`, the factor the durations were
/// multiplied by (1.0 for a real cloud; a fake cloud whose delays are scaled down 10× uses 0.1).
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub min: Duration,
    pub max: Duration,
    pub share: f64,
    pub scale: f64,
}

impl Default for Pace {
    fn default() -> Self {
        Pace {
            min: Duration::from_millis(500),
            max: Duration::from_millis(500),
            share: 0.1,
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
            share: d.share,
            scale,
        }
    }

    /// The delays between polls of a wait that began at `started`.
    pub fn delays(self, started: Instant) -> Delays {
        Delays {
            started,
            next: self.min,
            pace: self,
            expect: None,
        }
    }

    /// The delays of a wait expected to take `expect` (remembered from this cloud).
    fn delays_expecting(self, started: Instant, expect: Option<Bracket>) -> Delays {
        Delays {
            expect,
            ..self.delays(started)
        }
    }
}

/// The schedule of one wait: `min`, `2 min`, `4 min`, … up to `max`, each plus `share` of the
/// time elapsed since the wait began. An iterator, as the shared wait
/// ([`acura_ha_api::wait::until`]) takes it.
#[derive(Debug, Clone)]
pub struct Delays {
    started: Instant,
    next: Duration,
    pace: Pace,
    /// What this kind of transition took on this cloud before: polls gather around it.
    expect: Option<Bracket>,
}

/// The first poll of a remembered transition as a share of its `hi` (unless `lo` is later);
/// the step between the polls after it, and up to where (shares of `hi` too).
const FIRST: f64 = 0.97;
const STEP: f64 = 0.03;
const UNTIL: f64 = 1.3;

impl Bracket {
    /// About a step wide (as the steps leave it): polled once, at its end.
    fn tight(self) -> bool {
        !self.lo.is_zero() && self.hi - self.lo <= self.hi.mul_f64(STEP * 1.2)
    }

    /// The poll expected to see the transition done, after `started`.
    fn main_poll(self) -> Duration {
        if self.tight() {
            self.hi
        } else {
            self.lo.max(self.hi.mul_f64(FIRST))
        }
    }

    /// A poll below the main one: without a `lo` (the last first poll already saw it done:
    /// the cloud may be faster now) a probe at half of `hi`; at the `lo` of a tight bracket
    /// carried [`crate::memory::CARRY`] times, a check that it is still not done there; in a
    /// bracket wider than [`WIDE`] of `hi` (left by a probe), its middle, so that the next one
    /// is narrower.
    fn below(self) -> Option<Duration> {
        if self.lo.is_zero() {
            Some(self.hi / 2)
        } else if self.tight() && self.carried >= crate::memory::CARRY {
            Some(self.lo)
        } else if self.hi - self.lo > self.hi.mul_f64(WIDE) {
            Some((self.lo + self.hi) / 2)
        } else {
            None
        }
    }

    /// The polls planned before the steps, in order.
    fn planned(self) -> impl Iterator<Item = Duration> {
        [self.below(), Some(self.main_poll())].into_iter().flatten()
    }
}

/// A bracket wider than this share of its `hi` is halved by a poll in its middle.
const WIDE: f64 = 0.15;

impl Delays {
    /// When the first poll is due, after `started`.
    fn first_at(&self) -> Duration {
        match self.expect {
            Some(b) => b.planned().next().unwrap_or(b.hi),
            None => self.pace.min,
        }
    }
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if let Some(b) = self.expect {
            let elapsed = self.started.elapsed();
            for at in b.planned() {
                if elapsed < at {
                    return Some(at - elapsed);
                }
            }
            if elapsed < b.hi.mul_f64(UNTIL) {
                // Not finer than a fifth of the schedule's first delay: a transition a little
                // slower than remembered is not asked about every few milliseconds.
                return Some(b.hi.mul_f64(STEP).max(self.pace.min / 5));
            }
        }
        let step = self.next.min(self.pace.max);
        self.next = step.saturating_mul(2);
        Some(step + self.started.elapsed().mul_f64(self.pace.share))
    }
}

/// Waits for a cloud transition set off at `started` (the request that began it): the first
/// poll comes at the schedule's first delay after `started` (so a wait that begins late, after
/// other work, does not add its own delay), then on the schedule. `check` returns `Ok(Ok(v))`
/// when done, `Ok(Err(status))` when not yet; fails naming `what` when `deadline` passes.
/// With `learn` (the memory and the kind's key, for a transition our own request set off at
/// `started`), the polls gather around what the kind took on this cloud before, and what this
/// wait saw is remembered.
pub async fn transition<T, F, Fut>(
    what: &str,
    deadline: Duration,
    pace: Pace,
    quiet: bool,
    started: Instant,
    learn: Option<(&Memory, String)>,
    mut check: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Result<T, String>, ProviderError>>,
{
    let expect = learn.as_ref().and_then(|(m, key)| m.expected(key));
    let mut delays = pace.delays_expecting(started, expect);
    let first_at = delays.first_at();
    // Begun after its first poll was due (other work came first), a wait whose first poll sees
    // the transition done knows nothing of its duration: only that work's.
    let late = started.elapsed() > first_at;
    if expect.is_none() {
        // The ordinary schedule's first delay (it also advances the doubling).
        let first = delays.next().unwrap_or(pace.min);
        tokio::time::sleep_until((started + first).into()).await;
    } else {
        tokio::time::sleep_until((started + first_at).into()).await;
    }
    let deadline = deadline.saturating_sub(started.elapsed());
    // The last poll that saw it not done yet: with the one that saw it done, the bounds of the
    // transition's duration.
    // (Each poll's time is when it was asked: the cloud answers what it sees then.)
    let polls = std::sync::Mutex::new((None::<Duration>, Duration::ZERO));
    let watched = || {
        let poll = check();
        let polls = &polls;
        async move {
            let asked = started.elapsed();
            let answer = poll.await;
            if let Ok(mut p) = polls.lock() {
                p.1 = asked;
                if let Ok(Err(_)) = &answer {
                    p.0 = Some(asked);
                }
            }
            answer
        }
    };
    let done =
        acura_ha_api::wait::until("openstack", what, deadline, quiet, delays, watched).await?;
    if let Some((memory, key)) = learn
        && let Ok((seen_lo, hi)) = polls.lock().map(|p| *p)
    {
        // A tight bracket polled once at its end keeps its `lo` a few runs without a poll
        // below it; then a poll at that `lo` checks that the cloud has not become faster.
        let (lo, carried) = match (seen_lo, expect) {
            (Some(lo), _) => (Some(lo), 0),
            (None, _) if late => return Ok(done),
            (None, Some(b)) if b.tight() && b.carried < crate::memory::CARRY => {
                (Some(b.lo), b.carried + 1)
            }
            (None, _) => (None, 0),
        };
        memory.learn(&key, lo, hi, carried);
    }
    Ok(done)
}

/// Polls `check` at once and then on the schedule, for a condition that is not timed from a
/// request of ours (something expected to be over already, as a VIP port Octavia releases).
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
    let delays = pace.delays(Instant::now());
    acura_ha_api::wait::until("openstack", what, deadline, quiet, delays, check).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sums of the schedule's delays, with no time elapsed (the share then adds nothing).
    fn poll_times(pace: Pace, n: usize) -> Vec<f64> {
        let far = Instant::now() + Duration::from_secs(3600);
        let d = Delays {
            started: far,
            next: pace.min,
            pace,
            expect: None,
        };
        d.take(n)
            .scan(0.0, |t, x| {
                *t += x.as_secs_f64();
                Some(*t)
            })
            .collect()
    }

    #[test]
    fn the_schedule_starts_soon_doubles_and_is_capped() {
        let pace = Pace {
            min: Duration::from_millis(500),
            max: Duration::from_secs(2),
            share: 0.05,
            scale: 1.0,
        };
        assert_eq!(poll_times(pace, 6), vec![0.5, 1.5, 3.5, 5.5, 7.5, 9.5]);
        let scaled = poll_times(Pace::scaled(0.1), 4);
        for (a, b) in scaled.iter().zip([0.05, 0.1, 0.15, 0.2]) {
            assert!((a - b).abs() < 1e-9, "{scaled:?}");
        }
    }

    fn bracket(lo: f64, hi: f64) -> Bracket {
        Bracket {
            lo: Duration::from_secs_f64(lo),
            hi: Duration::from_secs_f64(hi),
            carried: 0,
        }
    }

    fn secs(d: Duration) -> f64 {
        (d.as_secs_f64() * 1000.0).round() / 1000.0
    }

    #[test]
    fn a_remembered_bracket_is_polled_inside() {
        let pace = Pace::default();
        let at = |b: Bracket| secs(pace.delays_expecting(Instant::now(), Some(b)).first_at());
        // About 3 % wide: once, at its end; its lo checked once carried as often as it may be.
        assert_eq!(at(bracket(2.99, 3.02)), 3.02);
        let carried = Bracket {
            carried: crate::memory::CARRY,
            ..bracket(2.99, 3.02)
        };
        assert_eq!(at(carried), 2.99);
        // Wider: at 97 % of hi, or lo when later.
        assert_eq!(at(bracket(2.7, 3.0)), 2.91);
        assert_eq!(at(bracket(2.97, 3.1)), 3.007);
        // Wider than 15 %: its middle first.
        assert_eq!(at(bracket(2.0, 3.0)), 2.5);
        // No lo (the last first poll saw it done): a probe at half of hi, then 97 %.
        let b = bracket(0.0, 4.0);
        assert_eq!(at(b), 2.0);
        let mut d = pace.delays_expecting(Instant::now() - Duration::from_millis(2500), Some(b));
        let next = secs(d.next().unwrap());
        assert!((1.37..=1.38).contains(&next), "{next}");
        // Past 97 %: steps of 3 % of hi (not finer than a fifth of the first delay).
        let mut d = pace.delays_expecting(Instant::now() - Duration::from_millis(3900), Some(b));
        assert_eq!(secs(d.next().unwrap()), 0.12);
        let mut d = pace.delays_expecting(
            Instant::now() - Duration::from_millis(980),
            Some(bracket(0.95, 1.0)),
        );
        assert_eq!(secs(d.next().unwrap()), 0.1);
        // Past 130 %: the ordinary schedule (0.5 s + 10 % of 6 s).
        let mut d = pace.delays_expecting(Instant::now() - Duration::from_secs(6), Some(b));
        let next = secs(d.next().unwrap());
        assert!((1.09..=1.11).contains(&next), "{next}");
    }

    #[test]
    fn the_elapsed_share_stretches_later_delays() {
        let pace = Pace::default();
        let mut d = pace.delays(Instant::now() - Duration::from_secs(100));
        // 100 s elapsed: 0.5 s + 10 s.
        let first = d.next().unwrap().as_secs_f64();
        assert!((10.5..10.6).contains(&first), "{first}");
    }
}
