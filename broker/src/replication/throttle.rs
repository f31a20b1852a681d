//! Replication quotas (KIP-73): a byte-rate limit per broker and direction on the
//! replication traffic of the replicas a topic lists as throttled, so that moving a
//! partition does not take the bandwidth clients need.
//!
//! - The rates are the broker configs `leader.replication.throttled.rate` (what this
//!   broker sends to followers) and `follower.replication.throttled.rate` (what it
//!   fetches as a follower), bytes per second; unset means unthrottled.
//! - Which replicas count is the topic configs `leader.replication.throttled.replicas`
//!   and `follower.replication.throttled.replicas`: `*` or `partition:broker` pairs,
//!   where the broker is this broker (the leader on the leader side, the follower on
//!   the follower side).
//! - A replica in the ISR is never throttled (KIP-73: throttling an in-sync follower
//!   would drop it from the ISR and slow acks=all producers); only a listed replica out
//!   of the ISR is, and only while its direction's quota is spent.

use std::collections::BTreeSet;

use super::BrokerId;

/// The leader side's rate (bytes/s) of traffic to throttled followers.
pub const LEADER_RATE: &str = "leader.replication.throttled.rate";
/// The follower side's rate (bytes/s) of fetches of throttled replicas.
pub const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
/// The topic config listing the replicas throttled on their leader.
pub const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
/// The topic config listing the replicas throttled on their follower.
pub const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";

/// Which side of replication a quota limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Bytes this broker, as leader, sends to followers.
    Leader,
    /// Bytes this broker, as follower, fetches from leaders.
    Follower,
}

impl Direction {
    pub fn rate_config(self) -> &'static str {
        match self {
            Direction::Leader => LEADER_RATE,
            Direction::Follower => FOLLOWER_RATE,
        }
    }

    pub fn replicas_config(self) -> &'static str {
        match self {
            Direction::Leader => LEADER_REPLICAS,
            Direction::Follower => FOLLOWER_REPLICAS,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Direction::Leader => "leader",
            Direction::Follower => "follower",
        }
    }
}

/// A topic's throttled-replicas list, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThrottledReplicas {
    /// `*`: every replica of the topic.
    All,
    /// `partition:broker` pairs (empty: none).
    Pairs(BTreeSet<(i32, BrokerId)>),
}

impl ThrottledReplicas {
    /// Parses a list the topic config validator accepted; an entry that does not
    /// parse names no replica (the validator refuses such lists before they are
    /// stored, so this only guards against a hostile metadata log).
    pub fn parse(value: &str) -> ThrottledReplicas {
        let value = value.trim();
        if value == "*" {
            return ThrottledReplicas::All;
        }
        let pairs = value
            .split(',')
            .filter_map(|pair| {
                let (p, b) = pair.trim().split_once(':')?;
                Some((p.trim().parse().ok()?, b.trim().parse().ok()?))
            })
            .collect();
        ThrottledReplicas::Pairs(pairs)
    }

    /// Is partition `partition`'s replica on `broker` listed?
    pub fn lists(&self, partition: i32, broker: BrokerId) -> bool {
        match self {
            ThrottledReplicas::All => true,
            ThrottledReplicas::Pairs(pairs) => pairs.contains(&(partition, broker)),
        }
    }
}

/// KIP-73's rule: the traffic of a replica is throttled when the topic lists it and
/// the follower is not in the ISR.
pub fn is_throttled(listed: bool, follower_in_sync: bool) -> bool {
    listed && !follower_in_sync
}

/// Parses a rate config's value: a non-negative whole number of bytes per second.
pub fn parse_rate(value: &str) -> Result<u64, String> {
    value
        .trim()
        .parse::<i64>()
        .map_err(|_| format!("{value:?} is not a whole number of bytes per second"))
        .and_then(|n| {
            u64::try_from(n).map_err(|_| format!("{n} is below the minimum 0 bytes per second"))
        })
}

/// A token bucket of bytes: it fills at `rate` bytes per second up to one second's
/// worth (the burst), and a transfer takes its bytes even when that leaves the bucket
/// in debt, since a fetch's size is known only once it is read; the next throttled
/// transfer then waits until the debt is paid. Over any long run the bytes passed are
/// at most `rate` per second plus one burst and one transfer.
#[derive(Debug, Clone)]
pub struct Quota {
    rate_bytes_per_s: Option<u64>,
    /// Bytes available, in thousandths of a byte so that refills of any length add
    /// exactly (rate x milliseconds).
    milli_bytes: i128,
    last_ms: i64,
}

impl Quota {
    /// An unthrottled quota.
    pub fn new() -> Quota {
        Quota {
            rate_bytes_per_s: None,
            milli_bytes: 0,
            last_ms: 0,
        }
    }

    pub fn rate_bytes_per_s(&self) -> Option<u64> {
        self.rate_bytes_per_s
    }

    fn capacity(rate: u64) -> i128 {
        i128::from(rate) * 1000
    }

    fn refill(&mut self, now_ms: i64) {
        let elapsed = now_ms.saturating_sub(self.last_ms).max(0);
        self.last_ms = self.last_ms.max(now_ms);
        if let Some(rate) = self.rate_bytes_per_s {
            self.milli_bytes = (self.milli_bytes + i128::from(rate) * i128::from(elapsed))
                .min(Self::capacity(rate));
        }
    }

    /// Puts `rate` in force from `now_ms`. A quota that was unthrottled starts with a
    /// full bucket; a changed rate keeps what is left (capped at the new burst).
    pub fn set_rate(&mut self, rate: Option<u64>, now_ms: i64) {
        if rate == self.rate_bytes_per_s {
            return;
        }
        self.refill(now_ms);
        self.milli_bytes = match (self.rate_bytes_per_s, rate) {
            (_, None) => 0,
            (None, Some(r)) => Self::capacity(r),
            (Some(_), Some(r)) => self.milli_bytes.min(Self::capacity(r)),
        };
        self.rate_bytes_per_s = rate;
        self.last_ms = now_ms;
    }

    /// Is the quota spent (a throttled transfer must wait)? Never when unthrottled.
    pub fn exceeded(&mut self, now_ms: i64) -> bool {
        self.refill(now_ms);
        self.rate_bytes_per_s.is_some() && self.milli_bytes <= 0
    }

    /// `bytes` of throttled traffic passed at `now_ms`.
    pub fn record(&mut self, bytes: u64, now_ms: i64) {
        self.refill(now_ms);
        if self.rate_bytes_per_s.is_some() {
            self.milli_bytes -= i128::from(bytes) * 1000;
        }
    }

    /// When a throttled transfer may next pass: `now_ms` unless the quota is spent.
    pub fn ready_at_ms(&mut self, now_ms: i64) -> i64 {
        self.refill(now_ms);
        match self.rate_bytes_per_s {
            Some(rate) if self.milli_bytes <= 0 => {
                if rate == 0 {
                    return i64::MAX;
                }
                let owed = -self.milli_bytes + 1;
                let rate = i128::from(rate);
                let wait_ms = (owed + rate - 1) / rate;
                // From the latest time the bucket has seen, should `now_ms` lag it.
                self.last_ms
                    .saturating_add(i64::try_from(wait_ms).unwrap_or(i64::MAX))
            }
            _ => now_ms,
        }
    }
}

impl Default for Quota {
    fn default() -> Self {
        Quota::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1_000_000;

    #[test]
    fn an_unthrottled_quota_is_never_spent() {
        let mut q = Quota::new();
        q.record(u64::MAX, 0);
        assert!(!q.exceeded(0));
        assert_eq!(q.ready_at_ms(5), 5);
    }

    #[test]
    fn a_new_rate_allows_one_second_of_burst_then_holds_at_the_limit() {
        let mut q = Quota::new();
        q.set_rate(Some(MB), 1_000);
        assert!(!q.exceeded(1_000));
        q.record(MB - 1, 1_000);
        // One byte left: still open.
        assert!(!q.exceeded(1_000));
        q.record(1, 1_000);
        // Exactly at the limit: spent until time passes.
        assert!(q.exceeded(1_000));
        assert_eq!(q.ready_at_ms(1_000), 1_001);
        assert!(!q.exceeded(1_001));
    }

    #[test]
    fn a_transfer_past_the_bucket_is_debt_paid_at_the_rate() {
        let mut q = Quota::new();
        q.set_rate(Some(MB), 0);
        // A fetch of 3 MB with 1 MB in the bucket leaves 2 MB owed: 2 s at 1 MB/s.
        q.record(3 * MB, 0);
        assert!(q.exceeded(1_999));
        assert_eq!(q.ready_at_ms(0), 2_001);
        assert!(q.exceeded(2_000));
        assert!(!q.exceeded(2_001));
    }

    #[test]
    fn refill_is_exact_in_small_steps_and_capped_at_one_second() {
        let mut q = Quota::new();
        q.set_rate(Some(1_500), 0);
        q.record(1_500, 0);
        // 1.5 bytes per millisecond: 1000 one-millisecond steps refill 1500 bytes.
        for t in 1..=1_000 {
            q.exceeded(t);
        }
        q.record(1_500, 1_000);
        assert!(q.exceeded(1_000));
        // A long idle spell fills the bucket to one second's worth, not more.
        assert!(!q.exceeded(100_000));
        q.record(1_500, 100_000);
        assert!(q.exceeded(100_000));
        // Time going back refills nothing.
        assert!(q.exceeded(50_000));
    }

    #[test]
    fn removing_or_lowering_the_rate_takes_effect_at_once() {
        let mut q = Quota::new();
        q.set_rate(Some(MB), 0);
        q.record(5 * MB, 0);
        assert!(q.exceeded(10));
        q.set_rate(None, 10);
        assert!(!q.exceeded(10));
        q.set_rate(Some(10 * MB), 20);
        q.set_rate(Some(100), 20);
        q.record(100, 20);
        assert!(q.exceeded(20));
        assert_eq!(q.ready_at_ms(20), 21);
    }

    #[test]
    fn a_zero_rate_holds_throttled_traffic_for_good() {
        let mut q = Quota::new();
        q.set_rate(Some(0), 0);
        assert!(q.exceeded(0));
        assert!(q.exceeded(i64::MAX / 2));
        assert_eq!(q.ready_at_ms(0), i64::MAX);
    }

    #[test]
    fn only_listed_replicas_out_of_the_isr_are_throttled() {
        let list = ThrottledReplicas::parse("0:1, 0:2,3:1");
        assert!(list.lists(0, 1) && list.lists(0, 2) && list.lists(3, 1));
        assert!(!list.lists(1, 1) && !list.lists(0, 3));
        assert!(ThrottledReplicas::parse("*").lists(7, 9));
        assert!(!ThrottledReplicas::parse("").lists(0, 0));
        assert!(!ThrottledReplicas::parse("x:1,2").lists(2, 1));
        assert!(is_throttled(true, false));
        // KIP-73: an in-sync follower is never throttled, listed or not.
        assert!(!is_throttled(true, true));
        assert!(!is_throttled(false, false));
    }

    #[test]
    fn rates_are_non_negative_whole_numbers() {
        assert_eq!(parse_rate("0"), Ok(0));
        assert_eq!(parse_rate(" 1048576 "), Ok(1_048_576));
        assert_eq!(parse_rate(&i64::MAX.to_string()), Ok(i64::MAX as u64));
        assert!(parse_rate("-1").unwrap_err().contains("minimum 0"));
        assert!(parse_rate("1.5").is_err());
        assert!(parse_rate("9223372036854775808").is_err());
    }
}
