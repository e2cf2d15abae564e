//! The circuit breaker in front of the embeddings endpoint.

use std::time::{Duration, Instant};

/// Circuit breaker. Hand-written: the state machine is twenty lines, and the crates for it
/// are either async-only or bring a metrics and policy framework this one caller does not need.
#[derive(Debug)]
pub(super) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: BreakerState,
}

#[derive(Debug, PartialEq)]
enum BreakerState {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// The cooldown has passed and one trial call is under way.
    HalfOpen,
}

impl Breaker {
    pub(super) fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold,
            cooldown,
            state: BreakerState::Closed { failures: 0 },
        }
    }

    /// Lets a call through, or says why not.
    pub(super) fn admit(&mut self, now: Instant) -> Result<(), String> {
        match self.state {
            BreakerState::Closed { .. } => Ok(()),
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::HalfOpen;
                Ok(())
            }
            BreakerState::Open { until } => {
                let secs = until.saturating_duration_since(now).as_secs_f64().ceil();
                Err(format!(
                    "failing fast for {secs} s more after {} consecutive failures",
                    self.threshold
                ))
            }
            BreakerState::HalfOpen => Err("a trial call is under way".into()),
        }
    }

    /// The outcome of an admitted call.
    pub(super) fn record(&mut self, healthy: bool, now: Instant) {
        if healthy || self.threshold == 0 {
            self.state = BreakerState::Closed { failures: 0 };
            return;
        }
        self.state = match self.state {
            BreakerState::Closed { failures } if failures + 1 < self.threshold => {
                BreakerState::Closed { failures: failures + 1 }
            }
            // A call admitted before the breaker opened must not push the reopening back.
            BreakerState::Open { until } => BreakerState::Open { until },
            _ => BreakerState::Open {
                until: now + self.cooldown,
            },
        };
    }

    pub(super) fn state_name(&self, now: Instant) -> &'static str {
        match self.state {
            BreakerState::Closed { .. } => "closed",
            BreakerState::Open { until } if now >= until => "half-open",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen => "half-open",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_fails_fast_then_lets_one_trial_through() {
        let t0 = Instant::now();
        let mut b = Breaker::new(3, Duration::from_secs(30));
        for _ in 0..2 {
            assert!(b.admit(t0).is_ok());
            b.record(false, t0);
        }
        // A success resets the count: failures must be consecutive.
        b.record(true, t0);
        for _ in 0..3 {
            assert!(b.admit(t0).is_ok());
            b.record(false, t0);
        }
        assert_eq!(b.state_name(t0), "open");
        let refused = b.admit(t0 + Duration::from_secs(29)).unwrap_err();
        assert!(refused.contains("3 consecutive failures"), "{refused}");
        let later = t0 + Duration::from_secs(30);
        assert!(b.admit(later).is_ok(), "one trial after the cooldown");
        assert!(b.admit(later).is_err(), "only one trial at a time");
        b.record(false, later);
        assert_eq!(
            b.state,
            BreakerState::Open {
                until: later + Duration::from_secs(30)
            }
        );
        let again = later + Duration::from_secs(31);
        assert!(b.admit(again).is_ok());
        b.record(true, again);
        assert_eq!(b.state, BreakerState::Closed { failures: 0 });
    }

    #[test]
    fn a_breaker_threshold_of_zero_never_opens() {
        let t0 = Instant::now();
        let mut b = Breaker::new(0, Duration::from_secs(1));
        for _ in 0..100 {
            assert!(b.admit(t0).is_ok());
            b.record(false, t0);
        }
    }
}
