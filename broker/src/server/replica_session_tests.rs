//! The leader's session round under a replication quota: a throttled partition whose
//! quota is spent is held back and stays due; once the quota lets it pass, its records
//! go out and are counted against the quota.

use std::cell::Cell;

use super::*;
use crate::log::batch::testing::TestBatch;
use crate::log::LogConfig;
use crate::replication::leader::LeaderConfig;
use crate::replication::PartitionRegistration;
use crate::server::partition::Acks;

/// A gate that throttles every partition, held until `open` is set.
struct TestGate {
    held_until_ms: Cell<Option<i64>>,
    passed: Cell<u64>,
}

impl ThrottleGate for TestGate {
    fn throttled(&self, _: &Partition, follower: Option<BrokerId>) -> bool {
        assert_eq!(
            follower,
            Some(2),
            "the leader asks about the fetching follower"
        );
        true
    }
    fn held_until_ms(&self) -> Option<i64> {
        self.held_until_ms.get()
    }
    fn passed(&self, bytes: u64) {
        self.passed.set(self.passed.get() + bytes);
    }
}

/// Leader (broker 1) of replicas [1, 2] with 2 out of the ISR (a replica being added),
/// holding one batch.
fn leader(dir: &std::path::Path) -> Arc<Partition> {
    let clock = crate::clock::ManualClock::new(0);
    let p = Partition::open(dir, "t", Uuid::new_v4(), 0, 0, LogConfig::default(), clock).unwrap();
    let config = LeaderConfig {
        replica_lag_time_max_ms: 10_000,
        min_insync_replicas: 1,
        alter_partition_retry_ms: 1_000,
    };
    p.make_leader(1, config, PartitionRegistration::of(&[1, 2], &[1], 1, 0, 0));
    p.append_produce(
        TestBatch::new(&["v1", "v2"], 1).encode().into(),
        Acks::Leader,
    )
    .unwrap();
    Arc::new(p)
}

#[tokio::test]
async fn a_held_partition_stays_due_and_passes_once_the_quota_refills() {
    let dir = tempfile::tempdir().unwrap();
    let p = leader(dir.path());
    let tp = p.topic_partition();
    let sessions = parking_lot::Mutex::new(Sessions::default());
    let request = SessionRequest {
        id: 0,
        epoch: 0,
        partitions: vec![(
            tp,
            Position {
                current_leader_epoch: LeaderEpoch(0),
                fetch_offset: 0,
                last_fetched_epoch: -1,
                log_start_offset: 0,
            },
        )],
        forgotten: vec![],
    };
    let budget = Budget {
        total: 1 << 20,
        per_partition: 1 << 20,
    };
    let mut round = Sessions::begin(
        &sessions,
        0,
        2,
        Some(BrokerEpoch(0)),
        &request,
        7,
        budget,
        Vec::new(),
        |_| Some(p.clone()),
    )
    .unwrap();
    let gate = TestGate {
        held_until_ms: Cell::new(Some(1_500)),
        passed: Cell::new(0),
    };
    round.answer_due(&sessions, &gate, true);
    assert!(!round.has_answers(), "a held partition was answered");
    assert_eq!(round.held_until_ms, Some(1_500));
    assert_eq!(gate.passed.get(), 0);
    // The quota refilled: the same round looks at it again, without a new request.
    gate.held_until_ms.set(None);
    round.answer_due(&sessions, &gate, true);
    assert!(round.has_answers(), "the partition was not due any more");
    assert_eq!(round.held_until_ms, None);
    let (answers, slices) = round.finish(&sessions);
    assert_eq!(answers.len(), 1);
    let sent: usize = slices.iter().map(|(_, s)| s.len).sum();
    assert!(sent > 0, "no records sent");
    assert_eq!(gate.passed.get(), sent as u64, "the bytes sent are counted");
}
