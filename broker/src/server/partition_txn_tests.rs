//! A transaction on a replicated partition: the marker is acknowledged like an
//! acks=all produce, and the last stable offset moves only when the ISR holds it.

use super::tests::replicated_leader;
use super::*;
use crate::clock::Clock;
use crate::log::batch::testing::TestBatch;
use crate::log::txn::EndTxnMarker;
use crate::replication::leader::FollowerFetch;
use crate::replication::{BrokerEpoch, LeaderEpoch};

fn fetch_at(p: &Partition, replica: i32, fetch_offset: i64) {
    let fetch = FollowerFetch {
        replica,
        current_leader_epoch: LeaderEpoch(0),
        fetch_offset,
        last_fetched_epoch: 0,
        broker_epoch: Some(BrokerEpoch(0)),
        isr_eligible: true,
    };
    p.follower_fetch(&fetch, 1 << 20);
}

#[test]
fn a_marker_is_replicated_before_its_transaction_is_stable() {
    let clock = crate::clock::ManualClock::new(1_700_000_000_000);
    let dir = tempfile::tempdir().unwrap();
    let p = replicated_leader(dir.path(), clock.clone());
    let deadline_ms = clock.now_ms() + 5_000;
    let batch = TestBatch::new(&["v"], clock.wall_ms()).transactional(5, 1, 0);
    p.append_transactional(batch.encode().into(), Acks::All { deadline_ms })
        .unwrap();
    for replica in [2, 3] {
        fetch_at(&p, replica, 1);
    }
    assert_eq!((p.high_watermark(), p.last_stable_offset()), (1, 0));

    let marker = EndTxnMarker {
        producer_id: 5,
        producer_epoch: 1,
        coordinator_epoch: 0,
        commit: true,
    };
    let appended = p.append_txn_marker(&marker, deadline_ms).unwrap();
    assert_eq!(appended.info.base_offset, 1);
    let mut replicated = appended.replicated.expect("acks=all");
    assert!(
        replicated.try_recv().is_err(),
        "the ISR does not hold it yet"
    );
    assert_eq!(p.last_stable_offset(), 0);
    fetch_at(&p, 2, 2);
    fetch_at(&p, 3, 2);
    assert_eq!(replicated.try_recv(), Ok(None));
    assert_eq!((p.high_watermark(), p.last_stable_offset()), (2, 2));

    // A zombie coordinator's marker for an older producer epoch.
    let zombie = EndTxnMarker {
        producer_epoch: 0,
        ..marker
    };
    let err = p.append_txn_marker(&zombie, deadline_ms).err().unwrap();
    assert_eq!(append_error_code(&err), ResponseError::InvalidProducerEpoch);
    let stale = EndTxnMarker {
        coordinator_epoch: -1,
        ..marker
    };
    let err = p.append_txn_marker(&stale, deadline_ms).err().unwrap();
    assert_eq!(
        append_error_code(&err),
        ResponseError::TransactionCoordinatorFenced
    );
    assert_eq!(p.log_end_offset(), 2);
}

#[test]
fn read_committed_stops_at_the_last_stable_offset_with_the_aborted_transactions() {
    let clock = crate::clock::ManualClock::new(1_700_000_000_000);
    let dir = tempfile::tempdir().unwrap();
    let p = replicated_leader(dir.path(), clock.clone());
    let ts = clock.wall_ms();
    let txn = |producer_id, value| TestBatch::new(&[value], ts).transactional(producer_id, 0, 0);
    p.append_transactional(txn(5, "aborted").encode().into(), Acks::Leader)
        .unwrap(); // 0
    p.append_produce(TestBatch::new(&["plain"], ts).encode().into(), Acks::Leader)
        .unwrap(); // 1
    p.append_transactional(txn(6, "open").encode().into(), Acks::Leader)
        .unwrap(); // 2
    let abort = EndTxnMarker {
        producer_id: 5,
        producer_epoch: 0,
        coordinator_epoch: 0,
        commit: false,
    };
    p.append_txn_marker(&abort, clock.now_ms() + 5_000).unwrap(); // 3
    for replica in [2, 3] {
        fetch_at(&p, replica, 4);
    }
    assert_eq!(p.stable_offsets(), (4, 2));

    let committed = p.read_isolated(0, 1 << 20, true, true).unwrap();
    assert_eq!(
        committed.info.next_offset, 2,
        "stops below producer 6's open transaction"
    );
    assert_eq!(
        (committed.high_watermark, committed.last_stable_offset),
        (4, 2)
    );
    let aborted: Vec<_> = committed
        .aborted
        .iter()
        .map(|t| (t.producer_id, t.first_offset))
        .collect();
    assert_eq!(aborted, vec![(5, 0)]);

    let uncommitted = p.read_isolated(0, 1 << 20, true, false).unwrap();
    assert_eq!(uncommitted.info.next_offset, 4);
    assert!(uncommitted.aborted.is_empty());
    // At the last stable offset a read_committed reader waits.
    let waiting = p.read_isolated(2, 1 << 20, true, true).unwrap();
    assert!(waiting.info.slice.is_none());
}
