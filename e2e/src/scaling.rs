//! The I/O-free parts of the `scaling` workload (e2e/src/bin/scaling-workload.rs, run by
//! e2e/k8s.sh while the cluster scales): the ids carried in record values, the longest
//! gap between acknowledgements, the figures the suite hands over in the stop file, and
//! the summary line with its verdict.
//!
//! The verdict: every acknowledged id is in the topic when it is read back in full
//! (`lost`), exactly once (`duplicates`: the producer is idempotent, so a retry must not
//! write a record twice), and was delivered to the consumer group (`consumer_missed`;
//! the group's delivery is at-least-once across rebalances, so repeats there are
//! allowed); replicas and leaders per broker end within 10% of even.

use std::collections::{HashMap, HashSet};

use anyhow::{bail, Context, Result};

/// Prefix of every record value; the id follows in decimal.
pub const VALUE_PREFIX: &str = "scaling-";

/// Largest `balance_max_over_min` that passes: the "within 10% of even".
pub const MAX_BALANCE: f64 = 1.1;

/// The record value that carries `id`.
pub fn value_for(id: u64) -> String {
    format!("{VALUE_PREFIX}{id}")
}

/// The id a record value carries, or `None` for a value the workload did not write.
pub fn id_of(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value)
        .ok()?
        .strip_prefix(VALUE_PREFIX)?
        .parse()
        .ok()
}

/// The longest gap between consecutive acknowledgements, in milliseconds. The first
/// acknowledgement opens the measure; `now_ms` is from any monotonic origin.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StallTracker {
    last_ms: Option<u64>,
    max_ms: u64,
    max_ended_ms: u64,
}

impl StallTracker {
    /// Records an acknowledgement at `now_ms`.
    pub fn ack(&mut self, now_ms: u64) {
        self.close(now_ms);
        self.last_ms = Some(now_ms);
    }

    /// Closes the measure at `now_ms` (the producer stops): a stall still running then
    /// counts up to now.
    pub fn close(&mut self, now_ms: u64) {
        if let Some(last) = self.last_ms {
            let gap = now_ms.saturating_sub(last);
            if gap > self.max_ms {
                self.max_ms = gap;
                self.max_ended_ms = now_ms;
            }
        }
    }

    /// The longest gap seen.
    pub fn max_ms(&self) -> u64 {
        self.max_ms
    }

    /// When the longest gap ended, to line it up with what the cluster did then.
    pub fn max_ended_ms(&self) -> u64 {
        self.max_ended_ms
    }
}

/// The figures the suite measures and hands over in the stop file, one `key=value` a
/// line: `moved_partitions` (from the operator) and `balance_max_over_min` (from the
/// brokers' counts).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SuiteFigures {
    /// Partitions moved by the rebalances and the drain.
    pub moved_partitions: u64,
    /// Largest `max/min` of replicas and of leaders per broker, at the end.
    pub balance_max_over_min: f64,
}

impl SuiteFigures {
    /// Parses the stop file's text; both keys are required, others are refused, so a
    /// typo in the suite cannot pass as a missing figure.
    pub fn parse(text: &str) -> Result<Self> {
        let mut moved = None;
        let mut balance = None;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (key, value) = line
                .split_once('=')
                .with_context(|| format!("stop file line {line:?} is not key=value"))?;
            match key {
                "moved_partitions" => {
                    moved =
                        Some(value.parse().with_context(|| {
                            format!("moved_partitions {value:?} is not a count")
                        })?)
                }
                "balance_max_over_min" => {
                    let b: f64 = value.parse().with_context(|| {
                        format!("balance_max_over_min {value:?} is not a number")
                    })?;
                    // Infinite when a broker holds nothing: a failing figure, not an
                    // error.
                    if b.is_nan() || b < 1.0 {
                        bail!("balance_max_over_min {value:?} is not a ratio of at least 1");
                    }
                    balance = Some(b)
                }
                other => bail!("stop file has unknown key {other:?}"),
            }
        }
        Ok(SuiteFigures {
            moved_partitions: moved.context("stop file lacks moved_partitions")?,
            balance_max_over_min: balance.context("stop file lacks balance_max_over_min")?,
        })
    }
}

/// The run's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Records the producer had acknowledged.
    pub acked: u64,
    /// Acknowledged ids absent from the read-back.
    pub lost: u64,
    /// Ids the read-back holds more than once (each extra copy counts).
    pub duplicates: u64,
    /// Acknowledged ids the consumer group never delivered.
    pub consumer_missed: u64,
    /// From the suite.
    pub figures: SuiteFigures,
    /// Longest gap between acknowledgements while producing.
    pub max_produce_stall_ms: u64,
}

impl Summary {
    /// Computes the summary from the acknowledged ids, every id of the full read-back
    /// (in any order, repeats included) and the ids the group delivered.
    pub fn compute(
        acked: &HashSet<u64>,
        read_back: &[u64],
        group_delivered: &HashSet<u64>,
        figures: SuiteFigures,
        max_produce_stall_ms: u64,
    ) -> Self {
        let mut seen: HashMap<u64, u64> = HashMap::with_capacity(read_back.len());
        for id in read_back {
            *seen.entry(*id).or_default() += 1;
        }
        Summary {
            acked: acked.len() as u64,
            lost: acked.iter().filter(|id| !seen.contains_key(id)).count() as u64,
            duplicates: seen.values().map(|n| n - 1).sum(),
            consumer_missed: acked
                .iter()
                .filter(|id| !group_delivered.contains(id))
                .count() as u64,
            figures,
            max_produce_stall_ms,
        }
    }

    /// Whether the run passes: nothing lost, duplicated or missed, some records
    /// acknowledged, and the brokers even.
    pub fn passed(&self) -> bool {
        self.acked > 0
            && self.lost == 0
            && self.duplicates == 0
            && self.consumer_missed == 0
            && self.figures.balance_max_over_min <= MAX_BALANCE
    }

    /// The summary line the suite prints as its own.
    pub fn line(&self) -> String {
        format!(
            "scaling: acked={} lost={} duplicates={} consumer_missed={} moved_partitions={} \
             balance_max_over_min={:.2} max_produce_stall_ms={}",
            self.acked,
            self.lost,
            self.duplicates,
            self.consumer_missed,
            self.figures.moved_partitions,
            self.figures.balance_max_over_min,
            self.max_produce_stall_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(balance: f64) -> SuiteFigures {
        SuiteFigures {
            moved_partitions: 7,
            balance_max_over_min: balance,
        }
    }

    #[test]
    fn ids_round_trip_through_values_and_foreign_values_are_ignored() {
        assert_eq!(id_of(value_for(42).as_bytes()), Some(42));
        assert_eq!(id_of(b"other-42"), None);
        assert_eq!(id_of(b"scaling-"), None);
        assert_eq!(id_of(b"scaling-4x"), None);
        assert_eq!(id_of(&[0xff, 0xfe]), None);
    }

    #[test]
    fn summary_counts_lost_duplicated_and_missed_ids() {
        let acked: HashSet<u64> = (1..=5).collect();
        // 2 lost; 4 written twice and 6 (never acknowledged: its ack was cut off) once.
        let read_back = [1, 3, 4, 5, 4, 6];
        // The group saw 1 twice (redelivery after a rebalance is fine) and never 5.
        let group: HashSet<u64> = [1, 2, 3, 4, 6].into();
        let s = Summary::compute(&acked, &read_back, &group, figures(1.0), 840);
        assert_eq!(
            (s.acked, s.lost, s.duplicates, s.consumer_missed),
            (5, 1, 1, 1)
        );
        assert!(!s.passed());
        assert_eq!(
            s.line(),
            "scaling: acked=5 lost=1 duplicates=1 consumer_missed=1 moved_partitions=7 \
             balance_max_over_min=1.00 max_produce_stall_ms=840"
        );
    }

    #[test]
    fn a_clean_run_passes_up_to_the_balance_limit_and_not_past_it() {
        let acked: HashSet<u64> = (1..=3).collect();
        let clean = |b| Summary::compute(&acked, &[3, 1, 2], &acked, figures(b), 5000);
        assert!(clean(1.0).passed());
        // A slow run still passes: the stall is a figure with a goal, not a verdict.
        assert!(clean(MAX_BALANCE).passed());
        assert!(!clean(1.11).passed());
        // A broker left with nothing.
        assert!(!clean(f64::INFINITY).passed());
        let f = SuiteFigures::parse("moved_partitions=0\nbalance_max_over_min=inf").unwrap();
        assert!(f.balance_max_over_min.is_infinite());
        // Nothing acknowledged proves nothing.
        let none = Summary::compute(&HashSet::new(), &[], &HashSet::new(), figures(1.0), 0);
        assert!(!none.passed());
    }

    #[test]
    fn the_longest_gap_between_acks_is_the_stall_including_one_open_at_the_stop() {
        let mut t = StallTracker::default();
        t.close(10);
        assert_eq!(t.max_ms(), 0, "no ack, no measure");
        for at in [100, 105, 1_905, 1_910] {
            t.ack(at);
        }
        assert_eq!((t.max_ms(), t.max_ended_ms()), (1_800, 1_905));
        t.close(4_000);
        assert_eq!((t.max_ms(), t.max_ended_ms()), (2_090, 4_000));
    }

    #[test]
    fn stop_file_figures_parse_strictly() {
        let f = SuiteFigures::parse("moved_partitions=12\nbalance_max_over_min=1.05\n").unwrap();
        assert_eq!(
            f,
            SuiteFigures {
                moved_partitions: 12,
                balance_max_over_min: 1.05
            }
        );
        for bad in [
            "moved_partitions=12",
            "balance_max_over_min=1.0",
            "moved_partitions=x\nbalance_max_over_min=1",
            "moved_partitions=1\nbalance_max_over_min=0.5",
            "moved_partitions=1\nbalance_max_over_min=NaN",
            "moved_partitions=1\nbalance_max_over_min=1\nbalance=2",
            "moved_partitions 1",
        ] {
            assert!(SuiteFigures::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
