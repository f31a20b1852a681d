//! Transactional offset commits against a real `__consumer_offsets` partition: the
//! transactional batches, the markers, and a load that replays both.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::load::{append_with, read_partition, LoadEvent, TxnProducer};
use super::tests::open;
use super::{GroupRuntime, Shard};
use crate::group::{GroupConfig, GroupRecord, OffsetValue, TxnCommitRequest};
use crate::log::txn::EndTxnMarker;
use crate::server::partition::{Acks, Partition};

fn value(offset: i64) -> OffsetValue {
    OffsetValue {
        offset,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp_ms: 5,
    }
}

fn txn_req(producer_id: i64, producer_epoch: i16, partition: i32, offset: i64) -> TxnCommitRequest {
    TxnCommitRequest {
        group_id: "g".into(),
        producer_id,
        producer_epoch,
        member_id: String::new(),
        group_instance_id: None,
        generation_id: -1,
        offsets: vec![("t".into(), partition, value(offset))],
    }
}

fn marker(p: &Partition, producer_id: i64, producer_epoch: i16, commit: bool) {
    let m = EndTxnMarker {
        producer_id,
        producer_epoch,
        coordinator_epoch: 0,
        commit,
    };
    p.append_txn_marker(&m, i64::MAX).unwrap();
}

/// Append `records` as `producer_id`'s transactional batch, as a former coordinator did.
fn txn_batch(p: &Partition, producer_id: i64, base_sequence: i32, records: &[GroupRecord]) {
    let producer = TxnProducer {
        producer_id,
        producer_epoch: 0,
        base_sequence,
    };
    append_with(records, 0, Some(producer), |batch, _| {
        p.append_transactional(batch.freeze(), Acks::Leader)
            .map(|_| ())
    })
    .unwrap();
}

fn offset_record(partition: i32, offset: i64) -> GroupRecord {
    GroupRecord::Offset {
        group: "g".into(),
        topic: "t".into(),
        partition,
        value: Some(value(offset)),
    }
}

/// Per asked partition of group "g": its committed offset, or the error
/// OffsetFetch with require_stable answers.
fn stable(shard: &Shard, partitions: &[i32]) -> Vec<Result<Option<i64>, ResponseError>> {
    let asked: Vec<(String, i32)> = partitions.iter().map(|p| ("t".into(), *p)).collect();
    shard
        .fetch_stable_offsets("g", Some(&asked), true)
        .unwrap()
        .into_iter()
        .map(|(_, _, v)| v.map(|v| v.map(|v| v.offset)))
        .collect()
}

fn loaded(p: &Arc<Partition>) -> Arc<Shard> {
    let rt = GroupRuntime::new(GroupConfig::default());
    rt.become_leader(p.clone());
    rt.shard(p.index).unwrap()
}

#[tokio::test]
async fn txn_commit_is_pending_until_the_marker_and_survives_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), Uuid::new_v4(), 0, 1);
    let rt = GroupRuntime::new(GroupConfig::default());
    rt.become_leader(p.clone());
    let shard = rt.shard(0).unwrap();
    // Two commits in one transaction: the second batch follows the first's sequence.
    shard.txn_commit(txn_req(9, 0, 0, 10)).await.unwrap();
    shard.txn_commit(txn_req(9, 0, 1, 11)).await.unwrap();
    let unstable = Err(ResponseError::UnstableOffsetCommit);
    assert_eq!(stable(&shard, &[0, 1]), vec![unstable, unstable]);
    // The batches hold the partition's last stable offset until the marker.
    assert_eq!(p.last_stable_offset(), 0);
    // A load meanwhile finds them pending too.
    assert_eq!(stable(&loaded(&p), &[0, 1]), vec![unstable, unstable]);

    marker(&p, 9, 0, true);
    rt.complete_txn(0, 9, true);
    assert_eq!(stable(&shard, &[0, 1]), vec![Ok(Some(10)), Ok(Some(11))]);
    assert_eq!(
        stable(&loaded(&p), &[0, 1]),
        vec![Ok(Some(10)), Ok(Some(11))]
    );

    // The next transaction of the same producer is aborted.
    shard.txn_commit(txn_req(9, 0, 0, 20)).await.unwrap();
    marker(&p, 9, 0, false);
    rt.complete_txn(0, 9, false);
    assert_eq!(stable(&shard, &[0]), vec![Ok(Some(10))]);
    assert_eq!(stable(&loaded(&p), &[0]), vec![Ok(Some(10))]);
    // A marker for a partition not coordinated here is ignored.
    rt.complete_txn(5, 9, true);
}

#[tokio::test]
async fn a_stale_producer_epoch_is_fenced_and_leaves_nothing_pending() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), Uuid::new_v4(), 0, 1);
    let rt = GroupRuntime::new(GroupConfig::default());
    rt.become_leader(p.clone());
    let shard = rt.shard(0).unwrap();
    shard.txn_commit(txn_req(9, 1, 0, 10)).await.unwrap();
    // The zombie of the previous epoch.
    assert_eq!(
        shard.txn_commit(txn_req(9, 0, 1, 66)).await,
        Err(ResponseError::InvalidProducerEpoch)
    );
    assert_eq!(
        stable(&shard, &[0, 1]),
        vec![Err(ResponseError::UnstableOffsetCommit), Ok(None)]
    );
    // A bumped epoch (KIP-360) starts its sequences again and is accepted.
    shard.txn_commit(txn_req(9, 2, 1, 12)).await.unwrap();
    marker(&p, 9, 2, true);
    rt.complete_txn(0, 9, true);
    assert_eq!(stable(&shard, &[0, 1]), vec![Ok(Some(10)), Ok(Some(12))]);
}

#[tokio::test]
async fn a_load_replays_transactional_batches_with_their_commit_and_abort_markers() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), Uuid::new_v4(), 0, 1);
    super::append(&p, &[offset_record(0, 1), offset_record(1, 1)], 0, i64::MAX).unwrap();
    txn_batch(&p, 1, 0, &[offset_record(0, 10)]);
    txn_batch(&p, 2, 0, &[offset_record(1, 20)]);
    txn_batch(&p, 3, 0, &[offset_record(2, 30)]);
    marker(&p, 1, 0, true);
    marker(&p, 2, 0, false);

    let mut events = Vec::new();
    read_partition(&p, |e| events.push(e)).unwrap();
    assert_eq!(
        events[2..],
        [
            LoadEvent::Txn {
                producer_id: 1,
                record: offset_record(0, 10)
            },
            LoadEvent::Txn {
                producer_id: 2,
                record: offset_record(1, 20)
            },
            LoadEvent::Txn {
                producer_id: 3,
                record: offset_record(2, 30)
            },
            LoadEvent::Marker {
                producer_id: 1,
                commit: true
            },
            LoadEvent::Marker {
                producer_id: 2,
                commit: false
            },
        ]
    );

    let shard = loaded(&p);
    assert_eq!(
        stable(&shard, &[0, 1, 2]),
        vec![
            Ok(Some(10)),
            Ok(Some(1)),
            Err(ResponseError::UnstableOffsetCommit)
        ]
    );
    // Producer 3's marker comes after the load.
    marker(&p, 3, 0, true);
    let rt = GroupRuntime::new(GroupConfig::default());
    rt.become_leader(p.clone());
    rt.complete_txn(0, 3, true);
    assert_eq!(stable(&rt.shard(0).unwrap(), &[2]), vec![Ok(Some(30))]);
}

#[tokio::test]
async fn a_marker_written_while_the_shard_loads_is_applied_when_the_load_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), Uuid::new_v4(), 0, 1);
    txn_batch(&p, 4, 0, &[offset_record(0, 40)]);
    let rt = GroupRuntime::new(GroupConfig::default());
    let load = rt.begin_load(&p, 1).unwrap();
    // The load read the log before the marker was written.
    let mut coordinator = crate::group::GroupCoordinator::new(GroupConfig::default());
    read_partition(&p, |e| match e {
        LoadEvent::Txn {
            producer_id,
            record,
        } => coordinator.replay_txn_offset(producer_id, record, 0),
        other => panic!("unexpected {other:?}"),
    })
    .unwrap();
    marker(&p, 4, 0, true);
    rt.complete_txn(0, 4, true);
    // A later marker of the same producer (a transaction without offsets here)
    // completes nothing: the first one did.
    marker(&p, 4, 0, false);
    rt.complete_txn(0, 4, false);
    assert!(rt.finish_load(p.clone(), load, coordinator));
    assert_eq!(stable(&rt.shard(0).unwrap(), &[0]), vec![Ok(Some(40))]);
}
