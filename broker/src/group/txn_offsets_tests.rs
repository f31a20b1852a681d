//! Transactional offset commits driven event by event: pending until the marker,
//! Kafka's precedence between plain and transactional commits, require_stable, and
//! what deletion and retention do while a transaction is open.

use bytes::Bytes;
use kafka_protocol::error::ResponseError as E;

use super::*;

const G: &str = "g";
const PID: i64 = 7;

fn value(offset: i64, commit_timestamp_ms: i64) -> OffsetValue {
    OffsetValue {
        offset,
        leader_epoch: -1,
        metadata: String::new(),
        commit_timestamp_ms,
    }
}

fn txn_req(partition: i32, offset: i64) -> TxnCommitRequest {
    TxnCommitRequest {
        group_id: G.into(),
        producer_id: PID,
        producer_epoch: 0,
        member_id: String::new(),
        group_instance_id: None,
        generation_id: -1,
        offsets: vec![("t".into(), partition, value(offset, 0))],
    }
}

/// A TxnOffsetCommit whose batch the log accepted.
fn txn_commit(c: &mut GroupCoordinator, producer_id: i64, partition: i32, offset: i64) {
    let req = TxnCommitRequest {
        producer_id,
        ..txn_req(partition, offset)
    };
    for record in c.txn_commit(&req, 0).unwrap() {
        c.replay_txn_offset(producer_id, record, 0);
    }
}

fn plain_commit(c: &mut GroupCoordinator, partition: i32, offset: i64) {
    c.commit(
        CommitRequest {
            group_id: G.into(),
            member_id: String::new(),
            group_instance_id: None,
            generation_id: -1,
            offsets: vec![("t".into(), partition, value(offset, 0))],
        },
        0,
    )
    .unwrap();
}

fn committed(c: &GroupCoordinator, partition: i32) -> Option<i64> {
    c.fetch_offsets(G, Some(&[("t".into(), partition)]))[0]
        .2
        .as_ref()
        .map(|v| v.offset)
}

fn stable(c: &GroupCoordinator, partition: i32) -> Result<Option<i64>, E> {
    let (_, _, got) = c
        .fetch_stable_offsets(G, Some(&[("t".into(), partition)]), true)
        .remove(0);
    got.map(|v| v.map(|v| v.offset))
}

#[test]
fn commit_marker_makes_pending_offsets_committed_and_abort_drops_them() {
    let mut c = GroupCoordinator::new(GroupConfig::default());
    plain_commit(&mut c, 0, 3);
    txn_commit(&mut c, PID, 0, 10);
    txn_commit(&mut c, PID, 1, 11);
    // Pending: readers see the committed offsets only, require_stable readers wait.
    assert_eq!((committed(&c, 0), committed(&c, 1)), (Some(3), None));
    assert_eq!(stable(&c, 0), Err(E::UnstableOffsetCommit));
    assert_eq!(stable(&c, 1), Err(E::UnstableOffsetCommit));
    assert!(c.has_pending_txn_offset(G, "t", 1));
    // A marker for another producer changes nothing.
    c.complete_txn(PID + 1, true, 0);
    assert_eq!(stable(&c, 0), Err(E::UnstableOffsetCommit));

    c.complete_txn(PID, true, 0);
    assert_eq!((committed(&c, 0), committed(&c, 1)), (Some(10), Some(11)));
    assert_eq!((stable(&c, 0), stable(&c, 1)), (Ok(Some(10)), Ok(Some(11))));
    // A repeated marker (the coordinator retries) is harmless.
    c.complete_txn(PID, false, 0);
    assert_eq!(committed(&c, 0), Some(10));

    txn_commit(&mut c, PID, 0, 20);
    c.complete_txn(PID, false, 0);
    assert_eq!(committed(&c, 0), Some(10));
    assert_eq!(stable(&c, 0), Ok(Some(10)));
    assert!(!c.has_pending_txn_offset(G, "t", 0));
}

#[test]
fn a_plain_commit_after_the_transactional_one_wins_over_the_marker() {
    let mut c = GroupCoordinator::new(GroupConfig::default());
    txn_commit(&mut c, PID, 0, 10);
    plain_commit(&mut c, 0, 20);
    c.complete_txn(PID, true, 0);
    assert_eq!(committed(&c, 0), Some(20));

    // One before it loses.
    plain_commit(&mut c, 1, 5);
    txn_commit(&mut c, PID, 1, 15);
    c.complete_txn(PID, true, 0);
    assert_eq!(committed(&c, 1), Some(15));

    // Two producers: each marker applies its own offsets, in log order.
    txn_commit(&mut c, 1, 2, 100);
    txn_commit(&mut c, 2, 2, 200);
    c.complete_txn(2, true, 0);
    assert_eq!(committed(&c, 2), Some(200));
    assert_eq!(stable(&c, 2), Err(E::UnstableOffsetCommit));
    c.complete_txn(1, true, 0);
    assert_eq!(
        committed(&c, 2),
        Some(200),
        "an older record never overrides"
    );
}

#[test]
fn replay_in_log_order_rebuilds_pending_and_committed_offsets() {
    // The records and markers a load reads back, in log order.
    let record = |partition: i32, offset: i64| GroupRecord::Offset {
        group: G.into(),
        topic: "t".into(),
        partition,
        value: Some(value(offset, 0)),
    };
    let mut c = GroupCoordinator::new(GroupConfig::default());
    c.replay(record(0, 1), 0);
    c.replay_txn_offset(1, record(0, 10), 0);
    c.replay_txn_offset(2, record(1, 20), 0);
    c.replay_txn_offset(3, record(2, 30), 0);
    c.complete_txn(1, true, 0);
    c.complete_txn(2, false, 0);
    assert_eq!(committed(&c, 0), Some(10));
    assert_eq!(committed(&c, 1), None);
    // Producer 3's transaction was still open when the log ended.
    assert_eq!(committed(&c, 2), None);
    assert_eq!(stable(&c, 2), Err(E::UnstableOffsetCommit));
    // The group exists for its pending offsets alone (Kafka creates it on replay).
    assert!(c.group(G).is_some());
    c.complete_txn(3, true, 0);
    assert_eq!(committed(&c, 2), Some(30));
}

#[test]
fn txn_commit_checks_member_and_generation_from_kip_447() {
    let mut c = GroupCoordinator::new(GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    });
    // No group: only a request without a generation may create it.
    let mut req = txn_req(0, 1);
    req.generation_id = 1;
    req.member_id = "a".into();
    assert_eq!(c.txn_commit(&req, 0), Err(E::IllegalGeneration));

    let join = JoinRequest {
        group_id: G.into(),
        member_id: String::new(),
        group_instance_id: Some("ia".into()),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::new())],
        require_known_member_id: false,
        new_member_id: "a".into(),
    };
    c.join(join, 1, 0);
    assert_eq!(c.group(G).unwrap().state(), GroupState::CompletingRebalance);
    // The member of generation 1 may commit even before it synced: the generation,
    // not the group's state, fences a transactional commit.
    req.group_instance_id = Some("ia".into());
    assert_eq!(c.txn_commit(&req, 0).unwrap().len(), 1);
    req.generation_id = 0;
    assert_eq!(c.txn_commit(&req, 0), Err(E::IllegalGeneration));
    req.generation_id = 1;
    req.member_id = "zombie".into();
    assert_eq!(c.txn_commit(&req, 0), Err(E::FencedInstanceId));
    req.group_instance_id = None;
    assert_eq!(c.txn_commit(&req, 0), Err(E::UnknownMemberId));
    // Before v3 a request carries no member: accepted whatever the group's state.
    let old = txn_req(0, 1);
    assert_eq!(c.txn_commit(&old, 0).unwrap().len(), 1);
    let no_group = TxnCommitRequest {
        group_id: String::new(),
        ..old
    };
    assert_eq!(c.txn_commit(&no_group, 0), Err(E::InvalidGroupId));
    let no_producer = TxnCommitRequest {
        producer_id: -1,
        ..txn_req(0, 1)
    };
    assert_eq!(
        c.txn_commit(&no_producer, 0),
        Err(E::InvalidProducerIdMapping)
    );
}

#[test]
fn retention_keeps_offsets_and_groups_a_transaction_still_holds() {
    let retention = GroupConfig::default().offsets_retention_ms;
    let mut c = GroupCoordinator::new(GroupConfig::default());
    plain_commit(&mut c, 0, 3);
    txn_commit(&mut c, PID, 0, 10);
    // Only a transaction knows of this group.
    let other = TxnCommitRequest {
        group_id: "other".into(),
        ..txn_req(0, 4)
    };
    for r in c.txn_commit(&other, 0).unwrap() {
        c.replay_txn_offset(PID, r, 0);
    }
    let actions = c.expire_offsets(retention + 1);
    assert_eq!(
        actions,
        vec![],
        "nothing expires while a transaction is open"
    );
    assert_eq!(committed(&c, 0), Some(3));
    assert!(c.group("other").is_some());

    c.complete_txn(PID, false, retention + 2);
    let actions = c.expire_offsets(retention + 3);
    assert!(actions.contains(&Action::Persist(GroupRecord::Group {
        group: "other".into(),
        value: None
    })));
    assert!(c.group("other").is_none());
    assert_eq!(committed(&c, 0), None);
}

#[test]
fn deleting_offsets_or_the_group_drops_pending_offsets_with_a_tombstone() {
    let tombstone = |partition: i32| {
        Action::Persist(GroupRecord::Offset {
            group: G.into(),
            topic: "t".into(),
            partition,
            value: None,
        })
    };
    let mut c = GroupCoordinator::new(GroupConfig::default());
    plain_commit(&mut c, 0, 3);
    txn_commit(&mut c, PID, 0, 10);
    txn_commit(&mut c, PID, 1, 11);
    let (errors, actions) = c.delete_offsets(G, &[("t".into(), 1)]).unwrap();
    assert_eq!((errors, actions), (vec![None], vec![tombstone(1)]));
    assert!(!c.has_pending_txn_offset(G, "t", 1));

    let actions = c.delete_group(G).unwrap();
    assert_eq!(
        actions,
        vec![
            tombstone(0),
            Action::Persist(GroupRecord::Group {
                group: G.into(),
                value: None
            })
        ]
    );
    // The marker that follows cannot bring the deleted offsets back.
    c.complete_txn(PID, true, 0);
    assert!(c.group(G).is_none());

    // Only pending offsets: the group still gets a tombstone per partition.
    txn_commit(&mut c, PID, 2, 12);
    let actions = c.delete_group(G).unwrap();
    assert_eq!(actions[0], tombstone(2));
    c.complete_txn(PID, true, 0);
    assert!(c.group(G).is_none());

    // A deleted topic takes its pending offsets with it.
    txn_commit(&mut c, PID, 3, 13);
    let actions = c.remove_offsets_of_deleted_topics(|_| false);
    assert_eq!(actions, vec![tombstone(3)]);
    c.complete_txn(PID, true, 0);
    assert_eq!(committed(&c, 3), None);
}
