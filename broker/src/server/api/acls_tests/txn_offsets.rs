//! TxnOffsetCommit through its handler: Kafka's checks in order (WRITE on the
//! transactional id, READ on the group, READ on the topic), offsets pending until the
//! marker for OffsetFetch with require_stable, and a fenced producer epoch.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;

use super::*;
use crate::auth::acl::{AclOperation as Op, ResourceType as Rt};
use crate::group::{partition_for, OFFSETS_TOPIC};
use crate::log::txn::EndTxnMarker;
use crate::server::api::{group_offsets, groups};

const PID: i64 = 4000;

fn txn_commit(epoch: i16, offset: i64) -> TxnOffsetCommitRequest {
    TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(str_bytes("tx")))
        .with_group_id(GroupId(str_bytes("g")))
        .with_producer_id(ProducerId(PID))
        .with_producer_epoch(epoch)
        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
            .with_name(TopicName(str_bytes("orders")))
            .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])])
}

fn code(r: &TxnOffsetCommitResponse) -> i16 {
    r.topics[0].partitions[0].error_code
}

/// (error code, committed offset) of partition orders-0 for group "g".
fn fetched(b: &Broker, who: &str, require_stable: bool) -> (i16, i64) {
    let req = OffsetFetchRequest::default()
        .with_require_stable(require_stable)
        .with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(str_bytes("g")))
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(TopicName(str_bytes("orders")))
                .with_partition_indexes(vec![0])]))]);
    let resp = group_offsets::offset_fetch(b, &ctx(ApiKey::OffsetFetch, 8, who), req);
    let p = &resp.groups[0].topics[0].partitions[0];
    (p.error_code, p.committed_offset)
}

#[tokio::test]
async fn txn_offset_commit_checks_rights_and_stays_pending_until_the_marker() {
    let dir = tempfile::tempdir().unwrap();
    let b = secured(dir.path()).await;
    create_topic(&b, "orders").await;
    let alice = "User:alice";
    let commit = |epoch, offset| {
        let b = b.clone();
        async move {
            let c = ctx(ApiKey::TxnOffsetCommit, 3, alice);
            group_offsets::txn_offset_commit(&b, &c, txn_commit(epoch, offset)).await
        }
    };
    assert_eq!(
        code(&commit(0, 5).await),
        ResponseError::TransactionalIdAuthorizationFailed.code()
    );
    allow(&b, Rt::TransactionalId, "tx", alice, Op::Write).await;
    assert_eq!(code(&commit(0, 5).await), GAF);
    allow(&b, Rt::Group, "g", alice, Op::Read).await;
    assert_eq!(code(&commit(0, 5).await), TAF);
    allow(&b, Rt::Topic, "orders", alice, Op::Read).await;

    // The group's coordinator: `__consumer_offsets` is created and loads.
    let find = FindCoordinatorRequest::default()
        .with_key(str_bytes("g"))
        .with_key_type(0);
    groups::find_coordinator(&b, &ctx(ApiKey::FindCoordinator, 3, alice), find).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let c = code(&commit(1, 5).await);
        if c == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "commit answered {c}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Pending: a plain fetch sees nothing committed, a require_stable one must wait.
    assert_eq!(fetched(&b, alice, false), (0, -1));
    assert_eq!(
        fetched(&b, alice, true),
        (ResponseError::UnstableOffsetCommit.code(), -1)
    );
    // The zombie of the older epoch is fenced by the log.
    assert_eq!(
        code(&commit(0, 66).await),
        ResponseError::InvalidProducerEpoch.code()
    );

    // The marker is written to the group's partition, then the coordinator hears of it.
    let n = i32::try_from(b.image().topic(OFFSETS_TOPIC).unwrap().partitions.len()).unwrap();
    let index = partition_for("g", n);
    let partition = b.partitions.get(OFFSETS_TOPIC, index).unwrap();
    let marker = EndTxnMarker {
        producer_id: PID,
        producer_epoch: 1,
        coordinator_epoch: 0,
        commit: true,
    };
    partition.append_txn_marker(&marker, i64::MAX).unwrap();
    b.groups().unwrap().complete_txn(index, PID, true);
    assert_eq!(fetched(&b, alice, true), (0, 5));
    assert_eq!(fetched(&b, alice, false), (0, 5));
}
