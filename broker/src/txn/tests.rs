//! The coordinator driven event by event; each test asserts the exact actions.

use kafka_protocol::error::ResponseError as E;

use super::*;

const T: &str = "tx";
const EPOCH: i32 = 5;
const TIMEOUT: i32 = 60_000;

fn coordinator(config: TxnConfig) -> TxnCoordinator {
    let mut c = TxnCoordinator::new(0, EPOCH, config);
    assert_eq!(c.load_complete(0), vec![Action::ReserveProducerIds]);
    c.add_producer_ids(1000, 100);
    c
}

fn loaded() -> TxnCoordinator {
    coordinator(TxnConfig::default())
}

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

fn init_req(expected: Option<(i64, i16)>) -> InitProducerIdRequest {
    InitProducerIdRequest {
        transactional_id: T.into(),
        timeout_ms: TIMEOUT,
        expected: expected.map(|(producer_id, epoch)| ProducerIdAndEpoch { producer_id, epoch }),
    }
}

fn producer(producer_id: i64, epoch: i16) -> TxnProducer {
    TxnProducer {
        transactional_id: T.into(),
        producer_id,
        epoch,
    }
}

/// Every Persist in `actions` lands (recursively); the other actions, in order.
fn land(c: &mut TxnCoordinator, actions: Vec<Action>, now_ms: i64) -> Vec<Action> {
    let mut out = Vec::new();
    for a in actions {
        match a {
            Action::Persist { write, .. } => {
                let next = c.persisted(write, Ok(()), now_ms);
                out.extend(land(c, next, now_ms));
            }
            other => out.push(other),
        }
    }
    out
}

fn reply(request: RequestId, answer: Answer) -> Action {
    Action::Reply { request, answer }
}

fn done(request: RequestId, result: Result<(), E>) -> Action {
    reply(request, Answer::Done(result))
}

fn pid(request: RequestId, producer_id: i64, epoch: i16) -> Action {
    reply(
        request,
        Answer::InitProducerId(Ok(ProducerIdAndEpoch { producer_id, epoch })),
    )
}

fn pid_err(request: RequestId, code: E) -> Action {
    reply(request, Answer::InitProducerId(Err(code)))
}

fn only_persist(actions: &[Action]) -> (WriteId, TxnRecord) {
    match actions {
        [Action::Persist { write, record }] => (*write, record.clone()),
        other => panic!("expected one Persist, got {other:?}"),
    }
}

/// An id initialised (epoch 0) with partitions `parts` in an open transaction at 1000.
fn ongoing(c: &mut TxnCoordinator, parts: &[TopicPartition]) {
    let a = c.init_producer_id(&init_req(None), 1, 0);
    assert_eq!(land(c, a, 0), vec![pid(1, 1000, 0)]);
    let a = c.add_partitions(&producer(1000, 0), parts, 2, 1000);
    assert_eq!(land(c, a, 1000), vec![done(2, Ok(()))]);
}

fn marker_write(result: TxnResult, epoch: i16, parts: &[TopicPartition]) -> Action {
    Action::WriteMarkers(MarkerWrite {
        transactional_id: T.into(),
        producer_id: 1000,
        producer_epoch: epoch,
        result,
        coordinator_epoch: EPOCH,
        partitions: parts.to_vec(),
    })
}

fn outcomes(epoch: i16, parts: &[(TopicPartition, MarkerOutcome)]) -> MarkerResults {
    MarkerResults {
        transactional_id: T.into(),
        producer_id: 1000,
        producer_epoch: epoch,
        partitions: parts.to_vec(),
    }
}

#[test]
fn a_new_id_is_answered_only_after_its_record_lands() {
    let mut c = loaded();
    let a = c.init_producer_id(&init_req(None), 7, 50);
    let (write, record) = only_persist(&a);
    let v = record.value.unwrap();
    assert_eq!((record.transactional_id.as_str(), v.producer_id), (T, 1000));
    assert_eq!(
        (v.producer_epoch, v.state, v.start_ms),
        (0, TxnState::Empty, -1)
    );
    assert_eq!((v.timeout_ms, v.last_update_ms), (TIMEOUT, 50));
    assert_eq!(c.persisted(write, Ok(()), 60), vec![pid(7, 1000, 0)]);
    // A stale or unknown completion changes nothing.
    assert_eq!(c.persisted(write, Ok(()), 60), vec![]);
}

#[test]
fn re_init_bumps_the_epoch_and_fences_the_old_producer_everywhere() {
    let mut c = loaded();
    let a = c.init_producer_id(&init_req(None), 1, 0);
    land(&mut c, a, 0);
    let a = c.init_producer_id(&init_req(None), 2, 0);
    assert_eq!(land(&mut c, a, 0), vec![pid(2, 1000, 1)]);
    let zombie = producer(1000, 0);
    assert_eq!(
        c.add_partitions(&zombie, &[tp("a", 0)], 3, 0),
        vec![done(3, Err(E::ProducerFenced))]
    );
    assert_eq!(
        c.add_offsets(&zombie, "g", |_| 4, 4, 0),
        vec![done(4, Err(E::ProducerFenced))]
    );
    assert_eq!(
        c.end_txn(&zombie, TxnResult::Commit, 5, 0),
        vec![done(5, Err(E::ProducerFenced))]
    );
    assert_eq!(
        c.end_txn(&producer(999, 1), TxnResult::Commit, 6, 0),
        vec![done(6, Err(E::InvalidProducerIdMapping))]
    );
    assert_eq!(
        for_old_client(E::ProducerFenced, false),
        E::InvalidProducerEpoch
    );
    assert_eq!(for_old_client(E::ProducerFenced, true), E::ProducerFenced);
}

#[test]
fn kip_360_bump_with_the_held_epoch_and_a_retried_bump_get_the_same_answer() {
    let mut c = loaded();
    let a = c.init_producer_id(&init_req(None), 1, 0);
    land(&mut c, a, 0);
    let a = c.init_producer_id(&init_req(Some((1000, 0))), 2, 0);
    assert_eq!(land(&mut c, a, 0), vec![pid(2, 1000, 1)]);
    // The answer was lost; the producer asks again with what it held.
    let a = c.init_producer_id(&init_req(Some((1000, 0))), 3, 0);
    assert_eq!(land(&mut c, a, 0), vec![pid(3, 1000, 1)]);
    assert_eq!(
        c.init_producer_id(&init_req(Some((1000, 7))), 4, 0),
        vec![pid_err(4, E::ProducerFenced)]
    );
    assert_eq!(
        c.init_producer_id(&init_req(Some((42, 1))), 5, 0),
        vec![pid_err(5, E::ProducerFenced)]
    );
}

/// A loaded coordinator whose id holds producer 7 at the last epoch it can bump to.
fn exhausted() -> TxnCoordinator {
    let mut c = TxnCoordinator::new(0, EPOCH, TxnConfig::default());
    c.replay(&TxnRecord {
        transactional_id: T.into(),
        value: Some(TxnValue {
            producer_id: 7,
            previous_producer_id: -1,
            next_producer_id: -1,
            producer_epoch: i16::MAX - 1,
            timeout_ms: TIMEOUT,
            state: TxnState::CompleteCommit,
            partitions: Default::default(),
            last_update_ms: 0,
            start_ms: 0,
            client_transaction_version: 0,
        }),
    })
    .unwrap();
    c.load_complete(0);
    c.add_producer_ids(1000, 100);
    c
}

#[test]
fn an_exhausted_epoch_moves_the_id_to_a_new_producer_id() {
    let mut c = exhausted();
    let a = c.init_producer_id(&init_req(Some((7, i16::MAX - 1))), 1, 0);
    let (_, record) = only_persist(&a);
    assert_eq!(record.value.as_ref().unwrap().previous_producer_id, 7);
    assert_eq!(land(&mut c, a, 0), vec![pid(1, 1000, 0)]);
    // The rotation's answer was lost: the retry names the old id and gets the new one.
    let a = c.init_producer_id(&init_req(Some((7, i16::MAX - 1))), 2, 0);
    assert_eq!(land(&mut c, a, 0), vec![pid(2, 1000, 0)]);

    let mut c = exhausted();
    let a = c.init_producer_id(&init_req(None), 3, 0);
    assert_eq!(land(&mut c, a, 0), vec![pid(3, 1000, 0)]);
}

#[test]
fn commit_writes_prepare_then_answers_then_markers_then_complete() {
    let mut c = loaded();
    let parts = [tp("a", 0), tp("a", 1)];
    ongoing(&mut c, &parts);
    let a = c.end_txn(&producer(1000, 0), TxnResult::Commit, 3, 2000);
    let (write, record) = only_persist(&a);
    let v = record.value.unwrap();
    assert_eq!(
        (v.state, v.partitions.len(), v.start_ms),
        (TxnState::PrepareCommit, 2, 1000)
    );
    assert_eq!(
        c.persisted(write, Ok(()), 2000),
        vec![done(3, Ok(())), marker_write(TxnResult::Commit, 0, &parts)]
    );
    let a = c.markers_done(&outcomes(0, &[(tp("a", 0), MarkerOutcome::Written)]), 2100);
    assert_eq!(a, vec![]);
    let a = c.markers_done(&outcomes(0, &[(tp("a", 1), MarkerOutcome::Written)]), 2100);
    let (write, record) = only_persist(&a);
    let v = record.value.unwrap();
    assert_eq!((v.state, v.partitions.len()), (TxnState::CompleteCommit, 0));
    assert_eq!(c.persisted(write, Ok(()), 2100), vec![]);
    assert_eq!(c.txn(T).unwrap().state(), TxnState::CompleteCommit);
    // A retried EndTxn with the same outcome succeeds; the opposite one cannot.
    assert_eq!(
        c.end_txn(&producer(1000, 0), TxnResult::Commit, 4, 2200),
        vec![done(4, Ok(()))]
    );
    assert_eq!(
        c.end_txn(&producer(1000, 0), TxnResult::Abort, 5, 2200),
        vec![done(5, Err(E::InvalidTxnState))]
    );
    // The next transaction starts on the same epoch (transaction version 1).
    let a = c.add_partitions(&producer(1000, 0), &[tp("b", 0)], 6, 3000);
    let (_, record) = only_persist(&a);
    let v = record.value.unwrap();
    assert_eq!(
        (v.state, v.start_ms, v.producer_epoch),
        (TxnState::Ongoing, 3000, 0)
    );
    assert_eq!(
        v.partitions.into_iter().collect::<Vec<_>>(),
        vec![tp("b", 0)]
    );
}

#[test]
fn requests_meeting_a_completing_transaction_are_told_concurrent_transactions() {
    let mut c = loaded();
    ongoing(&mut c, &[tp("a", 0)]);
    let p = producer(1000, 0);
    // A write in flight.
    let a = c.add_partitions(&p, &[tp("a", 1)], 3, 1000);
    let (write, _) = only_persist(&a);
    assert_eq!(
        c.end_txn(&p, TxnResult::Commit, 4, 1000),
        vec![done(4, Err(E::ConcurrentTransactions))]
    );
    assert_eq!(
        c.init_producer_id(&init_req(None), 5, 1000),
        vec![pid_err(5, E::ConcurrentTransactions)]
    );
    c.persisted(write, Ok(()), 1000);
    // Prepared, markers on their way.
    let a = c.end_txn(&p, TxnResult::Commit, 6, 1000);
    assert_eq!(land(&mut c, a, 1000)[0], done(6, Ok(())));
    assert_eq!(
        c.init_producer_id(&init_req(None), 7, 1000),
        vec![pid_err(7, E::ConcurrentTransactions)]
    );
    assert_eq!(
        c.end_txn(&p, TxnResult::Commit, 8, 1000),
        vec![done(8, Err(E::ConcurrentTransactions))]
    );
    assert_eq!(
        c.end_txn(&p, TxnResult::Abort, 9, 1000),
        vec![done(9, Err(E::InvalidTxnState))]
    );
    assert_eq!(
        c.add_partitions(&p, &[tp("a", 0)], 10, 1000),
        vec![done(10, Err(E::ConcurrentTransactions))]
    );
    assert_eq!(
        c.end_txn(&producer(1000, 0), TxnResult::Abort, 11, 1000)[0],
        done(11, Err(E::InvalidTxnState))
    );
}

#[test]
fn end_txn_without_a_transaction_is_an_invalid_state() {
    let mut c = loaded();
    let a = c.init_producer_id(&init_req(None), 1, 0);
    land(&mut c, a, 0);
    assert_eq!(
        c.end_txn(&producer(1000, 0), TxnResult::Commit, 2, 0),
        vec![done(2, Err(E::InvalidTxnState))]
    );
}

#[test]
fn init_during_a_transaction_aborts_it_under_a_bumped_epoch() {
    let mut c = loaded();
    ongoing(&mut c, &[tp("a", 0)]);
    let a = c.init_producer_id(&init_req(None), 3, 2000);
    let (write, record) = only_persist(&a);
    let v = record.value.unwrap();
    assert_eq!((v.state, v.producer_epoch), (TxnState::PrepareAbort, 1));
    // Fenced from the moment of the decision.
    assert_eq!(
        c.end_txn(&producer(1000, 0), TxnResult::Commit, 4, 2000),
        vec![done(4, Err(E::ProducerFenced))]
    );
    assert_eq!(
        c.persisted(write, Ok(()), 2000),
        vec![
            pid_err(3, E::ConcurrentTransactions),
            marker_write(TxnResult::Abort, 1, &[tp("a", 0)])
        ]
    );
    let a = c.markers_done(&outcomes(1, &[(tp("a", 0), MarkerOutcome::Written)]), 2000);
    land(&mut c, a, 2000);
    let a = c.init_producer_id(&init_req(None), 5, 2100);
    assert_eq!(land(&mut c, a, 2100), vec![pid(5, 1000, 2)]);
}

#[test]
fn a_transaction_past_its_timeout_is_aborted_and_its_producer_fenced() {
    let mut c = loaded();
    ongoing(&mut c, &[tp("a", 0)]);
    let deadline = 1000 + i64::from(TIMEOUT) + 1;
    assert_eq!(c.next_deadline_ms(), Some(deadline));
    assert_eq!(c.tick(deadline - 1), vec![]);
    let a = c.tick(deadline);
    let (write, record) = only_persist(&a);
    let v = record.value.unwrap();
    assert_eq!((v.state, v.producer_epoch), (TxnState::PrepareAbort, 1));
    assert_eq!(
        c.persisted(write, Ok(()), deadline),
        vec![marker_write(TxnResult::Abort, 1, &[tp("a", 0)])]
    );
    assert_eq!(
        c.end_txn(&producer(1000, 0), TxnResult::Commit, 3, deadline),
        vec![done(3, Err(E::ProducerFenced))]
    );
}

#[test]
fn a_fence_whose_record_failed_is_retried_without_a_second_bump() {
    let mut c = loaded();
    ongoing(&mut c, &[tp("a", 0)]);
    let late = 1000 + i64::from(TIMEOUT) + 1;
    let (write, _) = only_persist(&c.tick(late));
    assert_eq!(c.persisted(write, Err(E::NotEnoughReplicas), late), vec![]);
    assert_eq!(
        c.add_partitions(&producer(1000, 0), &[tp("a", 0)], 3, late),
        vec![done(3, Err(E::ProducerFenced))]
    );
    let (_, record) = only_persist(&c.tick(late + 1));
    assert_eq!(record.value.unwrap().producer_epoch, 1);
}

#[test]
fn a_failed_append_is_answered_with_kafkas_code_and_changes_nothing() {
    for (append, client) in [
        (E::NotLeaderOrFollower, E::NotCoordinator),
        (E::KafkaStorageError, E::NotCoordinator),
        (E::NotEnoughReplicas, E::CoordinatorNotAvailable),
        (E::RequestTimedOut, E::CoordinatorNotAvailable),
        (E::MessageTooLarge, E::UnknownServerError),
    ] {
        let mut c = loaded();
        let a = c.init_producer_id(&init_req(None), 1, 0);
        land(&mut c, a, 0);
        let (write, _) = only_persist(&c.init_producer_id(&init_req(None), 2, 0));
        assert_eq!(c.persisted(write, Err(append), 0), vec![pid_err(2, client)]);
        assert_eq!(c.txn(T).unwrap().producer_epoch(), 0);
        let a = c.add_partitions(&producer(1000, 0), &[tp("a", 0)], 3, 0);
        let (write, _) = only_persist(&a);
        assert_eq!(
            c.persisted(write, Err(append), 0),
            vec![done(3, Err(client))]
        );
        assert_eq!(c.txn(T).unwrap().state(), TxnState::Empty);
    }
}

#[test]
fn markers_that_fail_are_retried_with_backoff_and_deleted_partitions_dropped() {
    let mut c = loaded();
    let parts = [tp("a", 0), tp("a", 1), tp("gone", 0)];
    ongoing(&mut c, &parts);
    let a = c.end_txn(&producer(1000, 0), TxnResult::Abort, 3, 2000);
    land(&mut c, a, 2000);
    let a = c.markers_done(
        &outcomes(
            0,
            &[
                (tp("a", 0), MarkerOutcome::Written),
                (tp("a", 1), MarkerOutcome::Failed(E::NotLeaderOrFollower)),
                (tp("gone", 0), MarkerOutcome::Deleted),
            ],
        ),
        3000,
    );
    assert_eq!(a, vec![]);
    assert_eq!(c.next_deadline_ms(), Some(3100));
    assert_eq!(c.tick(3099), vec![]);
    assert_eq!(
        c.tick(3100),
        vec![marker_write(TxnResult::Abort, 0, &[tp("a", 1)])]
    );
    assert_eq!(c.tick(3100), vec![], "in flight: not sent twice");
    let fail = outcomes(
        0,
        &[(tp("a", 1), MarkerOutcome::Failed(E::RequestTimedOut))],
    );
    assert_eq!(c.markers_done(&fail, 3150), vec![]);
    assert_eq!(c.next_deadline_ms(), Some(3350), "the wait doubled");
    c.tick(3350);
    let ok = outcomes(0, &[(tp("a", 1), MarkerOutcome::Written)]);
    let (write, record) = only_persist(&c.markers_done(&ok, 3400));
    assert_eq!(record.value.unwrap().state, TxnState::CompleteAbort);
    // A failed completion record is written again after a backoff.
    assert_eq!(c.persisted(write, Err(E::NotEnoughReplicas), 3400), vec![]);
    assert_eq!(c.next_deadline_ms(), Some(3500));
    let (write, _) = only_persist(&c.tick(3500));
    c.persisted(write, Ok(()), 3500);
    assert_eq!(c.txn(T).unwrap().state(), TxnState::CompleteAbort);
}

#[test]
fn a_coordinator_fenced_by_a_data_partition_stops_sending_markers() {
    let mut c = loaded();
    ongoing(&mut c, &[tp("a", 0), tp("a", 1)]);
    let a = c.end_txn(&producer(1000, 0), TxnResult::Commit, 3, 2000);
    land(&mut c, a, 2000);
    let fenced = outcomes(
        0,
        &[(
            tp("a", 0),
            MarkerOutcome::Failed(E::TransactionCoordinatorFenced),
        )],
    );
    assert_eq!(c.markers_done(&fenced, 2100), vec![]);
    let ok = outcomes(0, &[(tp("a", 1), MarkerOutcome::Written)]);
    assert_eq!(c.markers_done(&ok, 2100), vec![]);
    assert_eq!(c.tick(1_000_000), vec![]);
    assert_eq!(c.txn(T).unwrap().state(), TxnState::PrepareCommit);
}

#[test]
fn an_idle_id_expires_with_a_tombstone() {
    let mut c = loaded();
    let a = c.init_producer_id(&init_req(None), 1, 10);
    land(&mut c, a, 10);
    let expiry = 10 + 604_800_000;
    assert_eq!(c.next_deadline_ms(), Some(expiry));
    assert_eq!(c.tick(expiry - 1), vec![]);
    let (write, record) = only_persist(&c.tick(expiry));
    assert_eq!(record.value, None);
    assert_eq!(c.persisted(write, Ok(()), expiry), vec![]);
    assert_eq!(c.describe(T), Err(E::TransactionalIdNotFound));
    // The id starts again with a fresh producer id.
    let a = c.init_producer_id(&init_req(None), 2, expiry);
    assert_eq!(land(&mut c, a, expiry), vec![pid(2, 1001, 0)]);
}

#[test]
fn add_offsets_adds_the_groups_offsets_partition() {
    let mut c = loaded();
    let a = c.init_producer_id(&init_req(None), 1, 0);
    land(&mut c, a, 0);
    let a = c.add_offsets(&producer(1000, 0), "g", |g| i32::from(g == "g") * 17, 2, 0);
    let (_, record) = only_persist(&a);
    let parts: Vec<_> = record.value.unwrap().partitions.into_iter().collect();
    assert_eq!(parts, vec![tp("__consumer_offsets", 17)]);
}

#[test]
fn partitions_already_in_the_transaction_are_acknowledged_without_a_write() {
    let mut c = loaded();
    ongoing(&mut c, &[tp("a", 0), tp("a", 1)]);
    assert_eq!(
        c.add_partitions(&producer(1000, 0), &[tp("a", 1)], 3, 1500),
        vec![done(3, Ok(()))]
    );
    let verified = c.verify_partitions(&producer(1000, 0), &[tp("a", 0), tp("b", 0)]);
    assert_eq!(
        verified,
        vec![
            (tp("a", 0), Ok(())),
            (tp("b", 0), Err(E::TransactionAbortable))
        ]
    );
    // A write in flight does not hold verification up.
    let a = c.add_partitions(&producer(1000, 0), &[tp("b", 0)], 4, 1500);
    only_persist(&a);
    let verified = c.verify_partitions(&producer(1000, 0), &[tp("a", 1)]);
    assert_eq!(verified, vec![(tp("a", 1), Ok(()))]);
    let verified = c.verify_partitions(&producer(1000, 3), &[tp("a", 0)]);
    assert_eq!(verified, vec![(tp("a", 0), Err(E::ProducerFenced))]);
}

#[test]
fn a_loaded_prepared_transaction_resumes_its_markers() {
    let mut c = loaded();
    ongoing(&mut c, &[tp("a", 0)]);
    let a = c.end_txn(&producer(1000, 0), TxnResult::Commit, 3, 2000);
    let (_, prepare) = only_persist(&a);
    let mut fresh = TxnCoordinator::new(0, EPOCH + 1, TxnConfig::default());
    assert_eq!(
        fresh.init_producer_id(&init_req(None), 9, 0),
        vec![pid_err(9, E::CoordinatorLoadInProgress)]
    );
    fresh.replay(&prepare).unwrap();
    let a = fresh.load_complete(3000);
    assert_eq!(
        a,
        vec![
            Action::WriteMarkers(MarkerWrite {
                coordinator_epoch: EPOCH + 1,
                ..match marker_write(TxnResult::Commit, 0, &[tp("a", 0)]) {
                    Action::WriteMarkers(m) => m,
                    _ => unreachable!(),
                }
            }),
            Action::ReserveProducerIds
        ]
    );
}

#[test]
fn replay_applies_records_in_order_and_refuses_a_transient_state() {
    let mut c = TxnCoordinator::new(0, EPOCH, TxnConfig::default());
    let value = |state| TxnValue {
        producer_id: 5,
        previous_producer_id: -1,
        next_producer_id: -1,
        producer_epoch: 2,
        timeout_ms: TIMEOUT,
        state,
        partitions: Default::default(),
        last_update_ms: 1,
        start_ms: -1,
        client_transaction_version: 0,
    };
    let rec = |v| TxnRecord {
        transactional_id: T.into(),
        value: v,
    };
    c.replay(&rec(Some(value(TxnState::Empty)))).unwrap();
    assert_eq!(c.txn(T).unwrap().producer_epoch(), 2);
    c.replay(&rec(None)).unwrap();
    assert!(c.txn(T).is_none());
    assert!(c
        .replay(&rec(Some(value(TxnState::PrepareEpochFence))))
        .is_err());
}

#[test]
fn describe_and_list_report_kafkas_names_and_filters() {
    let mut c = loaded();
    ongoing(&mut c, &[tp("a", 0)]);
    let mut other = init_req(None);
    other.transactional_id = "other".into();
    let a = c.init_producer_id(&other, 3, 0);
    land(&mut c, a, 0);
    let d = c.describe(T).unwrap();
    assert_eq!(
        (d.state.as_str(), d.producer_id, d.start_ms),
        ("Ongoing", 1000, 1000)
    );
    assert_eq!(c.describe("nope"), Err(E::TransactionalIdNotFound));
    assert_eq!(c.describe(""), Err(E::InvalidRequest));
    let list = |states: &[&str], producer_ids: &[i64], duration_ms, now| {
        let filter = ListFilter {
            states: states.iter().map(|s| s.to_string()).collect(),
            producer_ids: producer_ids.to_vec(),
            duration_ms,
        };
        let l = c.list(&filter, now).unwrap();
        let ids: Vec<String> = l
            .transactions
            .into_iter()
            .map(|t| t.transactional_id)
            .collect();
        (ids, l.unknown_state_filters)
    };
    assert_eq!(list(&[], &[], -1, 0).0, vec!["other", "tx"]);
    assert_eq!(list(&["Ongoing"], &[], -1, 0).0, vec!["tx"]);
    assert_eq!(list(&[], &[1001], -1, 0).0, vec!["other"]);
    assert_eq!(
        list(&["Bogus"], &[], -1, 0),
        (vec![], vec!["Bogus".to_string()])
    );
    // KIP-994: running strictly longer than the filter.
    assert_eq!(list(&["Ongoing"], &[], 500, 1500).0, Vec::<String>::new());
    assert_eq!(list(&["Ongoing"], &[], 500, 1501).0, vec!["tx"]);
}

#[test]
fn bad_requests_are_refused_before_any_state_changes() {
    let mut c = loaded();
    for timeout_ms in [0, -1, 900_001] {
        let req = InitProducerIdRequest {
            timeout_ms,
            ..init_req(None)
        };
        assert_eq!(
            c.init_producer_id(&req, 1, 0),
            vec![pid_err(1, E::InvalidTransactionTimeout)]
        );
    }
    let req = InitProducerIdRequest {
        timeout_ms: 900_000,
        ..init_req(None)
    };
    assert_eq!(
        only_persist(&c.init_producer_id(&req, 1, 0))
            .1
            .value
            .unwrap()
            .timeout_ms,
        900_000
    );
    for id in [String::new(), "x".repeat(32_768)] {
        let req = InitProducerIdRequest {
            transactional_id: id,
            ..init_req(None)
        };
        assert_eq!(
            c.init_producer_id(&req, 2, 0),
            vec![pid_err(2, E::InvalidRequest)]
        );
    }
    assert_eq!(
        c.add_partitions(
            &TxnProducer {
                transactional_id: "unknown".into(),
                producer_id: 1,
                epoch: 0
            },
            &[tp("a", 0)],
            3,
            0
        ),
        vec![done(3, Err(E::InvalidProducerIdMapping))]
    );
}

#[test]
fn a_transaction_too_large_for_one_record_is_refused() {
    let mut c = coordinator(TxnConfig {
        max_record_bytes: 100,
        ..TxnConfig::default()
    });
    let a = c.init_producer_id(&init_req(None), 1, 0);
    land(&mut c, a, 0);
    let few: Vec<_> = (0..10).map(|p| tp("a", p)).collect();
    assert_eq!(
        only_persist(&c.add_partitions(&producer(1000, 0), &few, 2, 0))
            .1
            .value
            .unwrap()
            .partitions
            .len(),
        10
    );
    let mut c = coordinator(TxnConfig {
        max_record_bytes: 100,
        ..TxnConfig::default()
    });
    let a = c.init_producer_id(&init_req(None), 1, 0);
    land(&mut c, a, 0);
    let many: Vec<_> = (0..20).map(|p| tp("a", p)).collect();
    assert_eq!(
        c.add_partitions(&producer(1000, 0), &many, 2, 0),
        vec![done(2, Err(E::UnknownServerError))]
    );
}

#[test]
fn producer_ids_come_in_blocks_asked_for_ahead_and_retried_after_a_failure() {
    let mut c = TxnCoordinator::new(0, EPOCH, TxnConfig::default());
    assert_eq!(c.load_complete(0), vec![Action::ReserveProducerIds]);
    // The block has not come: retriable, and not asked for twice.
    assert_eq!(
        c.init_producer_id(&init_req(None), 1, 0),
        vec![pid_err(1, E::CoordinatorLoadInProgress)]
    );
    c.producer_ids_failed(0);
    assert_eq!(c.next_deadline_ms(), Some(100));
    assert_eq!(c.tick(100), vec![Action::ReserveProducerIds]);
    c.add_producer_ids(500, 10);
    let mut ids = Vec::new();
    for i in 0..9 {
        let req = InitProducerIdRequest {
            transactional_id: format!("t{i}"),
            ..init_req(None)
        };
        let a = c.init_producer_id(&req, i, 0);
        let reserve = a.contains(&Action::ReserveProducerIds);
        let (_, record) = a
            .iter()
            .find_map(|a| match a {
                Action::Persist { write, record } => Some((*write, record.clone())),
                _ => None,
            })
            .unwrap();
        ids.push(record.value.unwrap().producer_id);
        // The next block is asked for once a tenth of this one is left.
        assert_eq!(reserve, i == 8, "id {i}");
    }
    assert_eq!(ids, (500..509).collect::<Vec<_>>());
}

#[test]
fn resigning_answers_parked_requests_not_coordinator() {
    let mut c = loaded();
    let a = c.init_producer_id(&init_req(None), 1, 0);
    let (write, _) = only_persist(&a);
    assert_eq!(c.resign(), vec![pid_err(1, E::NotCoordinator)]);
    assert_eq!(c.persisted(write, Ok(()), 0), vec![]);
}

#[test]
fn the_coordinator_partition_is_kafkas() {
    // Java: "my-txn".hashCode() = -1061187895; abs % 50 = 45.
    assert_eq!(partition_for("my-txn", 50), 45);
}
