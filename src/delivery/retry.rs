//! The retry decision for async delivery: a pure function of the attempt, its result
//! and the route's policy, kept apart from its side effects (sleeping, writing the
//! outbox) so that it can be tested exhaustively (STYLE.md §3, §9).
//!
//! Backoff is exponential with *full jitter* (the delay is drawn uniformly from
//! `0..=min(max_delay, initial * 2^(attempt-1))`): after an upstream outage every
//! pending event would otherwise come back at the same instant. The jitter is an input
//! (`jitter` in `0.0..=1.0`), so the function stays pure. An upstream's `Retry-After`
//! is a floor: the gateway never comes back sooner than it asked.
//!
//! **Every non-2xx answer is retried, 4xx included**, like network errors and
//! timeouts. A 4xx from an internal service during a deploy (404 before the route
//! exists, 401 while a secret rotates, 400 from a version that does not know a field
//! yet) is as often transient as a 5xx, and the event already passed the gateway's own
//! checks; giving up at once would lose it, while retrying a truly refused event only
//! costs its attempts before it lands in the dead letters, where an operator can
//! read its last status and replay or drop it.

use std::time::Duration;

/// How a route retries (`retry = { max_attempts, initial, max_delay, max_age }`).
/// Built only through [`RetryPolicy::new`], which checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    initial: Duration,
    max_delay: Duration,
    max_age: Duration,
}

impl Default for RetryPolicy {
    /// 15 attempts, 1 s doubling to 10 min, given up after 72 h: the sum of the
    /// uncapped delays (1 s .. 8192 s, capped at 600 s) is about 1.9 h of retrying
    /// before jitter, long enough to ride out a deploy or an afternoon's outage, and
    /// `max_age` matches the default `dedup_ttl`, so an event is never retried after
    /// its copies stopped being recognised as duplicates.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 15,
            initial: Duration::from_secs(1),
            max_delay: Duration::from_secs(600),
            max_age: Duration::from_secs(72 * 3600),
        }
    }
}

/// Why a [`RetryPolicy`] is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// `max_attempts` is 0.
    #[error("max_attempts must be at least 1")]
    NoAttempts,
    /// `initial` is larger than `max_delay`.
    #[error("initial must not exceed max_delay")]
    InitialAboveMax,
}

impl RetryPolicy {
    /// Checks and builds a policy (durations are already non-zero from the config).
    pub fn new(
        max_attempts: u32,
        initial: Duration,
        max_delay: Duration,
        max_age: Duration,
    ) -> Result<Self, PolicyError> {
        if max_attempts == 0 {
            return Err(PolicyError::NoAttempts);
        }
        if initial > max_delay {
            return Err(PolicyError::InitialAboveMax);
        }
        Ok(RetryPolicy {
            max_attempts,
            initial,
            max_delay,
            max_age,
        })
    }

    /// Attempts before an event is dead-lettered.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Age after which an event is dead-lettered.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// The backoff ceiling before jitter for the retry after `attempt` (1-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(62);
        let factor = 1u64 << shift;
        let nanos = u64::try_from(self.initial.as_nanos())
            .unwrap_or(u64::MAX)
            .saturating_mul(factor);
        Duration::from_nanos(nanos).min(self.max_delay)
    }
}

/// What one attempt ended as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// A 2xx answer.
    Delivered,
    /// A non-2xx answer, a network error or a timeout; `retry_after` is the upstream's
    /// `Retry-After`, if it sent one.
    Failed {
        /// The upstream's requested pause.
        retry_after: Option<Duration>,
    },
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Remove the event from the outbox: it is delivered.
    Done,
    /// Try again after this pause.
    RetryAfter(Duration),
    /// Move the event to the dead letters.
    DeadLetter,
}

/// The retry decision. `attempt` is the number of the attempt that just ended
/// (1-based), `age` how long ago the event was accepted, `jitter` a uniform draw from
/// `0.0..=1.0` (values outside are clamped).
pub fn next_step(
    attempt: u32,
    result: &AttemptResult,
    policy: &RetryPolicy,
    age: Duration,
    jitter: f64,
) -> Step {
    let retry_after = match result {
        AttemptResult::Delivered => return Step::Done,
        AttemptResult::Failed { retry_after } => *retry_after,
    };
    if attempt >= policy.max_attempts {
        return Step::DeadLetter;
    }
    let jitter = if jitter.is_nan() {
        1.0
    } else {
        jitter.clamp(0.0, 1.0)
    };
    let delay = policy.ceiling(attempt).mul_f64(jitter);
    let delay = retry_after.map_or(delay, |r| delay.max(r));
    // The next attempt would start past max_age: give up now rather than after a wait.
    if age.saturating_add(delay) > policy.max_age {
        return Step::DeadLetter;
    }
    Step::RetryAfter(delay)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn failed(retry_after: Option<u64>) -> AttemptResult {
        AttemptResult::Failed {
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_attempts(), 15);
        assert_eq!(p.ceiling(1), Duration::from_secs(1));
        assert_eq!(p.ceiling(4), Duration::from_secs(8));
        assert_eq!(p.ceiling(11), Duration::from_secs(600));
        assert_eq!(p.max_age(), Duration::from_secs(72 * 3600));
    }

    #[test]
    fn checked_when_built() {
        let s = Duration::from_secs(1);
        assert_eq!(RetryPolicy::new(0, s, s, s), Err(PolicyError::NoAttempts));
        assert_eq!(
            RetryPolicy::new(3, s * 2, s, s),
            Err(PolicyError::InitialAboveMax)
        );
    }

    #[test]
    fn retry_after_is_a_floor_and_last_attempt_dead_letters() {
        let p = RetryPolicy::default();
        assert_eq!(
            next_step(1, &failed(Some(30)), &p, Duration::ZERO, 0.5),
            Step::RetryAfter(Duration::from_secs(30))
        );
        assert_eq!(
            next_step(15, &failed(None), &p, Duration::ZERO, 0.5),
            Step::DeadLetter
        );
        assert_eq!(
            next_step(15, &AttemptResult::Delivered, &p, Duration::ZERO, 0.5),
            Step::Done
        );
        assert_eq!(
            next_step(2, &failed(None), &p, Duration::from_secs(72 * 3600), 0.5),
            Step::DeadLetter
        );
    }

    proptest! {
        /// Whatever the inputs: success is Done; a failure before the last attempt and
        /// within max_age retries after a pause within [retry_after, max(ceiling,
        /// retry_after)]; the last attempt, or a pause past max_age, dead-letters.
        #[test]
        fn next_step_holds_its_contract(
            attempts in 1u32..30,
            attempt in 1u32..40,
            initial_ms in 1u64..5_000,
            extra_ms in 0u64..700_000,
            age_s in 0u64..400_000,
            max_age_s in 1u64..300_000,
            retry_after in proptest::option::of(0u64..10_000),
            jitter in -0.5f64..1.5,
            ok in any::<bool>(),
        ) {
            let initial = Duration::from_millis(initial_ms);
            let p = RetryPolicy::new(
                attempts,
                initial,
                initial + Duration::from_millis(extra_ms),
                Duration::from_secs(max_age_s),
            ).unwrap();
            let age = Duration::from_secs(age_s);
            let result = if ok { AttemptResult::Delivered } else { failed(retry_after) };
            let step = next_step(attempt, &result, &p, age, jitter);
            if ok {
                prop_assert_eq!(step, Step::Done);
            } else if attempt >= attempts {
                prop_assert_eq!(step, Step::DeadLetter);
            } else {
                match step {
                    Step::Done => prop_assert!(false, "a failure is never done"),
                    Step::DeadLetter => {
                        let floor = Duration::from_secs(retry_after.unwrap_or(0));
                        prop_assert!(age + p.ceiling(attempt).max(floor) > p.max_age());
                    }
                    Step::RetryAfter(d) => {
                        let floor = Duration::from_secs(retry_after.unwrap_or(0));
                        prop_assert!(d >= floor);
                        prop_assert!(d <= p.ceiling(attempt).max(floor));
                        prop_assert!(age + d <= p.max_age());
                    }
                }
            }
        }
    }
}
