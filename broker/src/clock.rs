//! Time, injected: the broker reads it from a [`Clock`] handed down at start, never
//! from the system directly, so tests drive it and a step of the wall clock cannot
//! touch what depends on durations.
//!
//! Two readings, for two jobs:
//! - [`Clock::now_ms`] is monotonic: every duration and deadline (ISR lag, acks=all
//!   and request deadlines, session and rebalance timeouts, fetch backoff) is measured
//!   on it. Its origin is the wall time at which the clock started, so its values read
//!   like timestamps and the few kept across restarts (a group's state time) stay close
//!   to the wall clock; it never goes back and never jumps when the wall clock is set.
//! - [`Clock::wall_ms`] is the system's wall clock, for timestamps that are compared
//!   with other machines' or stored: record timestamps (LogAppendTime), retention and
//!   rolling by record time, offset commit times.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Monotonic milliseconds (see the module doc).
    fn now_ms(&self) -> i64;
    /// Wall-clock milliseconds since the Unix epoch.
    fn wall_ms(&self) -> i64;
}

/// The clock handed around the broker.
pub type SharedClock = Arc<dyn Clock>;

/// The process's clocks: `Instant` for [`Clock::now_ms`], `SystemTime` for
/// [`Clock::wall_ms`].
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
    origin_wall_ms: i64,
}

impl SystemClock {
    pub fn new() -> SystemClock {
        SystemClock {
            origin: Instant::now(),
            origin_wall_ms: system_wall_ms(),
        }
    }

    pub fn shared() -> SharedClock {
        Arc::new(SystemClock::new())
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

fn system_wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.origin.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.origin_wall_ms.saturating_add(elapsed)
    }

    fn wall_ms(&self) -> i64 {
        system_wall_ms()
    }
}

/// A clock that moves only when told: [`ManualClock::advance`] moves both readings,
/// [`ManualClock::set_wall`] steps the wall clock alone (an operator or NTP setting
/// the time).
#[derive(Debug)]
pub struct ManualClock {
    mono: AtomicI64,
    wall: AtomicI64,
}

impl ManualClock {
    pub fn new(start_ms: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            mono: AtomicI64::new(start_ms),
            wall: AtomicI64::new(start_ms),
        })
    }

    pub fn advance(&self, ms: i64) {
        self.mono.fetch_add(ms, Ordering::SeqCst);
        self.wall.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn set_wall(&self, wall_ms: i64) {
        self.wall.store(wall_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.mono.load(Ordering::SeqCst)
    }

    fn wall_ms(&self) -> i64 {
        self.wall.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_starts_at_the_wall_time_and_never_goes_back() {
        let clock = SystemClock::new();
        let first = clock.now_ms();
        assert!((first - clock.wall_ms()).abs() < 60_000);
        let mut last = first;
        for _ in 0..1000 {
            let now = clock.now_ms();
            assert!(now >= last);
            last = now;
        }
    }

    #[test]
    fn a_wall_clock_step_leaves_the_monotonic_reading_alone() {
        let clock = ManualClock::new(1_000);
        clock.advance(500);
        clock.set_wall(1_000 + 3_600_000);
        assert_eq!(clock.now_ms(), 1_500);
        assert_eq!(clock.wall_ms(), 3_601_000);
    }
}
