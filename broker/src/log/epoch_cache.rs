//! Leader epoch cache: the first offset written in each leader epoch.
//!
//! Pure (no I/O); the log persists it as `leader-epoch-checkpoint` in Kafka's text
//! format: a version line `0`, a count line, then one `epoch startOffset` line per
//! entry. Followers use it (OffsetForLeaderEpoch, KIP-101/KIP-279) to find where their
//! log diverged from the leader's.

/// One epoch and the first offset the leader of that epoch wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// Entries with strictly increasing epochs and start offsets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

const CHECKPOINT_VERSION: &str = "0";
/// Far more epochs than a partition ever sees; bounds parsing of a damaged file.
const MAX_ENTRIES: usize = 1_000_000;

impl LeaderEpochCache {
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Record that `epoch` starts at `start_offset` (called for every appended batch).
    /// Returns whether the cache changed, i.e. whether it must be checkpointed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 {
            return false;
        }
        if let Some(last) = self.entries.last() {
            if last.epoch == epoch && last.start_offset <= start_offset {
                return false;
            }
        }
        // Keep both sequences monotonic: a new entry supersedes any entry with an equal
        // or larger epoch or start offset (those came from a log that was truncated).
        let before = self.entries.len();
        self.entries
            .retain(|e| e.epoch < epoch && e.start_offset < start_offset);
        if self.entries.len() != before {
            tracing::warn!(
                epoch,
                start_offset,
                dropped = before - self.entries.len(),
                "leader epoch entries that do not precede the new one were dropped"
            );
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Drop entries starting at or after `end_offset` (the log was truncated there).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        before != self.entries.len()
    }

    /// The log now starts at `start_offset`: entries wholly before it go, and the one
    /// covering it starts there.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let covered = self
            .entries
            .iter()
            .take_while(|e| e.start_offset <= start_offset)
            .count();
        if covered == 0 {
            return false;
        }
        let last = self.entries[covered - 1];
        if covered == 1 && last.start_offset == start_offset {
            return false;
        }
        self.entries.drain(..covered);
        self.entries.insert(
            0,
            EpochEntry {
                epoch: last.epoch,
                start_offset,
            },
        );
        true
    }

    /// OffsetForLeaderEpoch: the largest epoch <= `requested` and the end offset of
    /// that epoch (the start of the next one, or the log end offset for the latest).
    /// `None` stands for Kafka's UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET answer.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        if requested < 0 {
            return None;
        }
        let latest = self.entries.last()?;
        if requested == latest.epoch {
            return Some((requested, log_end_offset));
        }
        let higher = self.entries.iter().find(|e| e.epoch > requested)?;
        match self.entries.iter().rev().find(|e| e.epoch <= requested) {
            Some(floor) => Some((floor.epoch, higher.start_offset)),
            // Older than anything known: the requested epoch ends where ours begin.
            None => Some((requested, higher.start_offset)),
        }
    }

    /// The epoch of the leader that wrote `offset`, if known.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        self.entries
            .iter()
            .take_while(|e| e.start_offset <= offset)
            .last()
            .map(|e| e.epoch)
    }

    pub fn encode_checkpoint(&self) -> String {
        let mut s = format!("{CHECKPOINT_VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            s.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        s
    }

    pub fn parse_checkpoint(text: &str) -> Result<Self, String> {
        let mut lines = text.lines();
        match lines.next() {
            Some(CHECKPOINT_VERSION) => {}
            other => return Err(format!("unknown version line {other:?}")),
        }
        let count: usize = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or("missing or bad entry count")?;
        if count > MAX_ENTRIES {
            return Err(format!("{count} entries exceed the limit {MAX_ENTRIES}"));
        }
        let mut cache = LeaderEpochCache::default();
        for i in 0..count {
            let line = lines
                .next()
                .ok_or_else(|| format!("entry {i} of {count} missing"))?;
            let mut parts = line.split_whitespace();
            let epoch = parts.next().and_then(|p| p.parse::<i32>().ok());
            let start = parts.next().and_then(|p| p.parse::<i64>().ok());
            let (Some(epoch), Some(start_offset), None) = (epoch, start, parts.next()) else {
                return Err(format!("bad entry line {line:?}"));
            };
            if let Some(last) = cache.entries.last() {
                if epoch <= last.epoch || start_offset < last.start_offset {
                    return Err(format!(
                        "entry {line:?} is not after {} {}",
                        last.epoch, last.start_offset
                    ));
                }
            }
            cache.entries.push(EpochEntry {
                epoch,
                start_offset,
            });
        }
        Ok(cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut c = LeaderEpochCache::default();
        for &(e, o) in entries {
            c.assign(e, o);
        }
        c
    }

    #[test]
    fn assign_ignores_repeats_and_replaces_diverged_entries() {
        let mut c = cache(&[(1, 0), (1, 5), (3, 10)]);
        assert_eq!(c.entries().len(), 2);
        assert!(c.assign(2, 8));
        assert_eq!(
            c.entries(),
            &[
                EpochEntry {
                    epoch: 1,
                    start_offset: 0
                },
                EpochEntry {
                    epoch: 2,
                    start_offset: 8
                }
            ]
        );
    }

    #[test]
    fn end_offset_for_epoch_follows_offset_for_leader_epoch() {
        let c = cache(&[(1, 0), (3, 10), (5, 20)]);
        assert_eq!(c.end_offset_for(5, 30), Some((5, 30)));
        assert_eq!(c.end_offset_for(3, 30), Some((3, 20)));
        assert_eq!(c.end_offset_for(4, 30), Some((3, 20)));
        assert_eq!(c.end_offset_for(0, 30), Some((0, 0)));
        assert_eq!(c.end_offset_for(6, 30), None);
        assert_eq!(c.end_offset_for(-1, 30), None);
        assert_eq!(c.epoch_for_offset(15), Some(3));
        assert_eq!(c.epoch_for_offset(20), Some(5));
    }

    #[test]
    fn truncation_from_both_ends() {
        let mut c = cache(&[(1, 0), (3, 10), (5, 20)]);
        assert!(c.truncate_from_end(20));
        assert_eq!(c.latest_epoch(), Some(3));
        assert!(c.truncate_from_start(12));
        assert_eq!(
            c.entries(),
            &[EpochEntry {
                epoch: 3,
                start_offset: 12
            }]
        );
        assert!(!c.truncate_from_start(12));
    }

    #[test]
    fn checkpoint_text_round_trip() {
        let c = cache(&[(1, 0), (3, 10)]);
        let text = c.encode_checkpoint();
        assert_eq!(text, "0\n2\n1 0\n3 10\n");
        assert_eq!(LeaderEpochCache::parse_checkpoint(&text).unwrap(), c);
        assert!(LeaderEpochCache::parse_checkpoint("0\n3\n1 0\n").is_err());
        assert!(LeaderEpochCache::parse_checkpoint("1\n0\n").is_err());
        assert!(LeaderEpochCache::parse_checkpoint("0\n2\n3 10\n1 0\n").is_err());
    }
}
