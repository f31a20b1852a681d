//! A transaction through the handlers on a one-broker cluster, as a producer sends
//! it: FindCoordinator creates `__transaction_state`, InitProducerId, AddPartitionsToTxn
//! (and its refusals), a transactional Produce, EndTxn, the markers that make the
//! records stable, the admin views, and fencing of an earlier producer instance.

use std::time::Duration;

use clap::Parser;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;

use super::super::{admin, groups, produce, str_bytes, txn, RequestContext};
use crate::config::BrokerConfig;
use crate::log::batch::testing::TestBatch;
use crate::server::broker::Broker;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    broker: BrokerConfig,
}

const ID: &str = "tx";
const DEADLINE: Duration = Duration::from_secs(30);

fn ctx(api_key: ApiKey, version: i16) -> RequestContext {
    RequestContext::for_tests(api_key, version)
}

fn tid() -> TransactionalId {
    TransactionalId(str_bytes(ID))
}

/// InitProducerId until the coordinator has loaded and holds producer ids.
async fn init(b: &Broker) -> (i64, i16) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(tid()))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let resp = admin::init_producer_id(b, &ctx(ApiKey::InitProducerId, 4), req).await;
        if resp.error_code == 0 {
            return (resp.producer_id.0, resp.producer_epoch);
        }
        let retriable = [
            ResponseError::CoordinatorLoadInProgress.code(),
            ResponseError::NotCoordinator.code(),
        ];
        assert!(retriable.contains(&resp.error_code), "{resp:?}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "no producer id: {resp:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn add(
    b: &Broker,
    (pid, epoch): (i64, i16),
    topics: &[(&str, &[i32])],
) -> Vec<(String, i32, i16)> {
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(tid())
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(
            topics
                .iter()
                .map(|(t, ps)| {
                    AddPartitionsToTxnTopic::default()
                        .with_name(TopicName(str_bytes(*t)))
                        .with_partitions(ps.to_vec())
                })
                .collect(),
        );
    let resp = txn::add_partitions_to_txn(b, &ctx(ApiKey::AddPartitionsToTxn, 3), req).await;
    resp.results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition.iter().map(|p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.partition_error_code,
                )
            })
        })
        .collect()
}

async fn end(b: &Broker, (pid, epoch): (i64, i16), commit: bool, version: i16) -> i16 {
    let req = EndTxnRequest::default()
        .with_transactional_id(tid())
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    txn::end_txn(b, &ctx(ApiKey::EndTxn, version), req)
        .await
        .error_code
}

#[tokio::test]
async fn a_transaction_through_the_handlers_commits_and_fences_its_predecessor() {
    let dir = tempfile::tempdir().unwrap();
    let config = Cli::parse_from([
        "fjord",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--transaction-state-log-num-partitions",
        "2",
    ])
    .broker;
    let (b, _stop) = crate::server::test_broker(config).await;
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(str_bytes("t")))
        .with_num_partitions(1)
        .with_replication_factor(1)]);
    let resp = admin::create_topics(&b, &ctx(ApiKey::CreateTopics, 7), req).await;
    assert_eq!(resp.topics[0].error_code, 0);

    // Before the coordinator's topic exists, the client is sent to find it.
    let early = InitProducerIdRequest::default()
        .with_transactional_id(Some(tid()))
        .with_transaction_timeout_ms(60_000);
    let resp = admin::init_producer_id(&b, &ctx(ApiKey::InitProducerId, 4), early).await;
    assert_eq!(resp.error_code, ResponseError::NotCoordinator.code());
    let find = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_coordinator_keys(vec![str_bytes(ID)]);
    let resp = groups::find_coordinator(&b, &ctx(ApiKey::FindCoordinator, 4), find).await;
    assert_eq!(resp.coordinators[0].error_code, 0);

    let producer = init(&b).await;
    assert_eq!(producer.1, 0);

    // Refusals name the bad partitions; the others are not attempted.
    let not_attempted = ResponseError::OperationNotAttempted.code();
    assert_eq!(
        add(&b, producer, &[("t", &[0, 5])]).await,
        vec![
            ("t".into(), 0, not_attempted),
            ("t".into(), 5, ResponseError::UnknownTopicOrPartition.code())
        ]
    );
    assert_eq!(
        add(&b, producer, &[("t", &[0]), ("__transaction_state", &[0])]).await,
        vec![
            ("t".into(), 0, not_attempted),
            (
                "__transaction_state".into(),
                0,
                ResponseError::TopicAuthorizationFailed.code()
            )
        ]
    );
    assert_eq!(
        add(&b, producer, &[("t", &[0])]).await,
        vec![("t".into(), 0, 0)]
    );

    // The transaction's records hold the last stable offset until the commit marker.
    let batch =
        TestBatch::new(&["a", "b"], b.clock.wall_ms()).transactional(producer.0, producer.1, 0);
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_transactional_id(Some(tid()))
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(str_bytes("t")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch.encode().freeze()))])]);
    let resp = produce::start(&b, &ctx(ApiKey::Produce, 9), req)
        .finish(&b)
        .await
        .unwrap();
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    let p = b.partitions.get("t", 0).unwrap();
    assert_eq!(p.stable_offsets(), (2, 0));

    assert_eq!(end(&b, producer, true, 3).await, 0);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while p.stable_offsets() != (3, 3) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            p.stable_offsets()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A retried commit is answered the same; the opposite outcome is refused.
    assert_eq!(end(&b, producer, true, 3).await, 0);
    assert_eq!(
        end(&b, producer, false, 3).await,
        ResponseError::InvalidTxnState.code()
    );

    let described = txn::describe_transactions(
        &b,
        &ctx(ApiKey::DescribeTransactions, 0),
        DescribeTransactionsRequest::default().with_transactional_ids(vec![tid()]),
    );
    let state = &described.transaction_states[0];
    assert_eq!(state.error_code, 0);
    assert_eq!(state.transaction_state.to_string(), "CompleteCommit");
    assert_eq!((state.producer_id.0, state.producer_epoch), producer);
    let listed = txn::list_transactions(
        &b,
        &ctx(ApiKey::ListTransactions, 1),
        ListTransactionsRequest::default()
            .with_state_filters(vec![str_bytes("CompleteCommit"), str_bytes("Bogus")])
            .with_duration_filter(-1),
    );
    let ids: Vec<String> = listed
        .transaction_states
        .iter()
        .map(|t| t.transactional_id.0.to_string())
        .collect();
    assert_eq!(ids, vec![ID.to_string()]);
    assert_eq!(listed.unknown_state_filters, vec![str_bytes("Bogus")]);
    let producers = txn::describe_producers(
        &b,
        &ctx(ApiKey::DescribeProducers, 0),
        DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
            .with_name(TopicName(str_bytes("t")))
            .with_partition_indexes(vec![0])]),
    );
    let active = &producers.topics[0].partitions[0].active_producers;
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].producer_id.0, producer.0);
    assert_eq!(active[0].last_sequence, 1);
    assert_eq!(active[0].current_txn_start_offset, -1);

    // A new instance with the same id bumps the epoch; the old one is fenced, in the
    // code its request version knows (KIP-588).
    let next = init(&b).await;
    assert_eq!(next, (producer.0, producer.1 + 1));
    assert_eq!(
        end(&b, producer, true, 3).await,
        ResponseError::ProducerFenced.code()
    );
    assert_eq!(
        end(&b, producer, true, 1).await,
        ResponseError::InvalidProducerEpoch.code()
    );
}
