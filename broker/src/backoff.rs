//! Exponential backoff, the one rule for waiting before trying again: the first wait is
//! `min`, each failure doubles the next one, up to `max`.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub const fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The wait before the next try; the one after is twice as long, up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }

    /// A try succeeded: the next failure waits `min` again.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_from_the_minimum_up_to_the_maximum_and_starts_over_on_reset() {
        let mut b = Backoff::new(Duration::from_millis(25), Duration::from_secs(1));
        let ms: Vec<u128> = (0..8).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(ms, [25, 50, 100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(25));
        let mut long = Backoff::new(Duration::from_secs(1), Duration::MAX);
        for _ in 0..200 {
            long.next_delay();
        }
        assert_eq!(long.next_delay(), Duration::MAX);
    }
}
