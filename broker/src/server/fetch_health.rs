//! When a follower's fetches from one leader keep failing, and when to say so. A restart
//! or a leader move fails a fetch or two, which is not news; fetches that have failed for
//! `WARN_AFTER_MS` are (a follower that cannot reach its leader falls out of the ISR and
//! holds up whatever waits for it), so they are reported then, again at most every
//! `WARN_EVERY_MS` while they go on, and once more when a fetch succeeds again.
//! Without I/O: the fetcher task passes the time and logs what this returns.

/// How long fetches fail before the first report.
pub const WARN_AFTER_MS: i64 = 10_000;
/// The least time between two reports of the same failure.
pub const WARN_EVERY_MS: i64 = 30_000;

#[derive(Debug, Default)]
pub struct FetchHealth {
    failing_since_ms: Option<i64>,
    failures: u64,
    reported_at_ms: Option<i64>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Report {
    /// `failures` fetches in a row have failed, for `for_ms`.
    Failing { failures: u64, for_ms: i64 },
    /// A fetch succeeded after a reported failure that lasted `after_ms`.
    Recovered { after_ms: i64 },
}

impl FetchHealth {
    pub fn on_failure(&mut self, now_ms: i64) -> Option<Report> {
        let since = *self.failing_since_ms.get_or_insert(now_ms);
        self.failures += 1;
        let for_ms = now_ms - since;
        let due = match self.reported_at_ms {
            None => for_ms >= WARN_AFTER_MS,
            Some(at) => now_ms - at >= WARN_EVERY_MS,
        };
        due.then(|| {
            self.reported_at_ms = Some(now_ms);
            Report::Failing {
                failures: self.failures,
                for_ms,
            }
        })
    }

    pub fn on_success(&mut self, now_ms: i64) -> Option<Report> {
        let since = self.failing_since_ms.take()?;
        self.failures = 0;
        self.reported_at_ms.take().map(|_| Report::Recovered {
            after_ms: now_ms - since,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_failure_is_not_reported() {
        let mut h = FetchHealth::default();
        assert_eq!(h.on_failure(0), None);
        assert_eq!(h.on_failure(WARN_AFTER_MS - 1), None);
        assert_eq!(h.on_success(WARN_AFTER_MS), None);
        // A new failure counts from its own start.
        assert_eq!(h.on_failure(2 * WARN_AFTER_MS), None);
    }

    #[test]
    fn a_lasting_failure_is_reported_then_rate_limited_then_its_end() {
        let mut h = FetchHealth::default();
        assert_eq!(h.on_failure(1_000), None);
        assert_eq!(
            h.on_failure(1_000 + WARN_AFTER_MS),
            Some(Report::Failing {
                failures: 2,
                for_ms: WARN_AFTER_MS
            })
        );
        assert_eq!(h.on_failure(1_000 + WARN_AFTER_MS + 1), None);
        let again = 1_000 + WARN_AFTER_MS + WARN_EVERY_MS;
        assert_eq!(
            h.on_failure(again),
            Some(Report::Failing {
                failures: 4,
                for_ms: WARN_AFTER_MS + WARN_EVERY_MS
            })
        );
        assert_eq!(
            h.on_success(again + 500),
            Some(Report::Recovered {
                after_ms: again + 500 - 1_000
            })
        );
        assert_eq!(h.on_success(again + 600), None);
    }
}
