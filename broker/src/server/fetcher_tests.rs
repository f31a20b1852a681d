//! The follower's fetcher under a replication quota: a throttled partition leaves the
//! session while the quota is spent, comes back when it refills, and the records it
//! receives are counted.

use std::cell::Cell;

use super::*;
use crate::log::LogConfig;
use crate::replication::follower::FollowerConfig;
use crate::replication::PartitionRegistration;
use crate::server::throttle::ThrottleGate;

struct TestGate {
    held_until_ms: Cell<Option<i64>>,
    passed: Cell<u64>,
}

impl ThrottleGate for TestGate {
    fn throttled(&self, _: &Partition, follower: Option<BrokerId>) -> bool {
        assert_eq!(follower, None, "the follower asks about itself");
        true
    }
    fn held_until_ms(&self) -> Option<i64> {
        self.held_until_ms.get()
    }
    fn passed(&self, bytes: u64) {
        self.passed.set(self.passed.get() + bytes);
    }
}

#[test]
fn a_held_partition_leaves_the_session_until_the_quota_refills() {
    let dir = tempfile::tempdir().unwrap();
    let clock = crate::clock::ManualClock::new(0);
    let p = Partition::open(
        dir.path(),
        "t",
        Uuid::new_v4(),
        0,
        0,
        LogConfig::default(),
        clock,
    )
    .unwrap();
    // Broker 2 follows leader 1, out of the ISR (being added).
    let stop = p
        .make_follower(
            2,
            FollowerConfig::default(),
            &PartitionRegistration::of(&[1, 2], &[1], 1, 0, 0),
        )
        .unwrap();
    let p = Arc::new(p);
    let tp = p.topic_partition();
    let mut f = FetcherState::new(1);
    f.add(p.clone(), stop);
    let gate = TestGate {
        held_until_ms: Cell::new(Some(1_000)),
        passed: Cell::new(0),
    };
    assert!(
        f.next_request(0, 100, &gate).is_none(),
        "a held partition was fetched"
    );
    assert_eq!(f.next_retry_ms(), Some(1_000));
    // Refilled: at its time it is fetched again, from where it was.
    gate.held_until_ms.set(None);
    let request = f.next_request(1_000, 100, &gate).expect("a request");
    assert_eq!(request.partitions.len(), 1);
    assert_eq!(request.partitions[0].0, tp);
    assert_eq!(request.partitions[0].1.fetch_offset, 0);
}

fn open_partition(dir: &std::path::Path) -> Arc<Partition> {
    let clock = crate::clock::ManualClock::new(0);
    Arc::new(Partition::open(dir, "t", Uuid::new_v4(), 0, 0, LogConfig::default(), clock).unwrap())
}

/// A partition that follows leader 1, leads for a moment, and follows leader 1 again:
/// the first role's end, noticed late by the fetcher, must not unregister the second.
#[test]
fn a_follower_role_that_ended_late_leaves_the_next_one_registered() {
    let dir = tempfile::tempdir().unwrap();
    let p = open_partition(dir.path());
    let tp = p.topic_partition();
    let fetchers = Fetchers::default();
    let first = p
        .make_follower(
            2,
            FollowerConfig::default(),
            &PartitionRegistration::of(&[1, 2], &[1, 2], 1, 0, 0),
        )
        .unwrap();
    assert!(fetchers.follow(2, &p, Some(first.clone()), 1).is_some());
    p.make_leader(
        2,
        Default::default(),
        PartitionRegistration::of(&[1, 2], &[1, 2], 2, 1, 1),
    );
    assert!(first.is_cancelled());
    let second = p
        .make_follower(
            2,
            FollowerConfig::default(),
            &PartitionRegistration::of(&[1, 2], &[1, 2], 1, 2, 2),
        )
        .unwrap();
    assert!(fetchers.follow(2, &p, Some(second), 1).is_none());
    // The fetcher of leader 1 sees the first role's token cancelled only now.
    fetchers.left(&tp, 1);
    assert_eq!(fetchers.leader_of(&tp), Some(1));
}

/// Handed a partition it already fetches in the same role, the fetcher keeps the
/// fetch in flight, so its answer still reaches the partition.
#[test]
fn a_partition_handed_again_keeps_its_fetch_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let p = open_partition(dir.path());
    let tp = p.topic_partition();
    let stop = p
        .make_follower(
            2,
            FollowerConfig::default(),
            &PartitionRegistration::of(&[1, 2], &[1, 2], 1, 0, 0),
        )
        .unwrap();
    let mut f = FetcherState::new(1);
    f.add(p.clone(), stop.clone());
    let request = f
        .next_request(0, 100, &crate::server::throttle::Unthrottled)
        .expect("a request");
    assert_eq!(request.partitions.len(), 1);
    assert!(f.members[&tp].request.is_some());
    f.add(p.clone(), stop);
    assert!(
        f.members[&tp].request.is_some(),
        "the fetch in flight was dropped"
    );
}
