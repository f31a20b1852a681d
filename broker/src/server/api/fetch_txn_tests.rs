//! read_committed through the Fetch and ListOffsets handlers, on a one-broker
//! cluster: both stop at the last stable offset, and Fetch names the aborted
//! transactions of the records it returns.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;

use super::super::{admin, offsets, str_bytes, RequestContext};
use crate::config::BrokerConfig;
use crate::log::batch::testing::{decode_records, TestBatch};
use crate::log::txn::EndTxnMarker;
use crate::server::broker::Broker;
use crate::server::partition::{Acks, Partition};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    broker: BrokerConfig,
}

fn ctx(api_key: ApiKey, version: i16) -> RequestContext {
    RequestContext::for_tests(api_key, version)
}

async fn led_topic(b: &Broker, name: &str) -> Arc<Partition> {
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(str_bytes(name)))
        .with_num_partitions(1)
        .with_replication_factor(1)]);
    let resp = admin::create_topics(b, &ctx(ApiKey::CreateTopics, 7), req).await;
    assert_eq!(resp.topics[0].error_code, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(p) = b.partitions.get(name, 0).filter(|p| p.is_leader()) {
            return p;
        }
        assert!(tokio::time::Instant::now() < deadline, "{name} never led");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn fetch(b: &Broker, topic: &str, isolation_level: i8) -> super::FetchReply {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_isolation_level(isolation_level)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(str_bytes(topic)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(-1)
                .with_partition_max_bytes(1 << 20)])]);
    super::handle(b, &ctx(ApiKey::Fetch, 12), req).await
}

fn latest(b: &Broker, topic: &str, isolation_level: i8) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_isolation_level(isolation_level)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(str_bytes(topic)))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_current_leader_epoch(-1)
                .with_timestamp(-1)])]);
    let resp = offsets::handle(b, &ctx(ApiKey::ListOffsets, 7), req);
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.offset
}

/// The offsets of the records (markers included) in a fetch answer's data.
fn fetched_offsets(reply: &super::FetchReply) -> Vec<i64> {
    let (slice, _) = reply.records[0][0].as_ref().expect("records");
    let bytes = slice.read_to_bytes().unwrap();
    decode_records(&bytes).iter().map(|(o, _)| *o).collect()
}

#[tokio::test]
async fn read_committed_fetch_and_list_offsets_stop_at_the_last_stable_offset() {
    let dir = tempfile::tempdir().unwrap();
    let config = Cli::parse_from([
        "fjord",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--offsets-topic-num-partitions",
        "1",
    ])
    .broker;
    let (b, _stop) = crate::server::test_broker(config).await;
    let p = led_topic(&b, "t").await;
    let now = b.clock.wall_ms();
    let txn = |producer_id, value| TestBatch::new(&[value], now).transactional(producer_id, 0, 0);
    p.append_transactional(txn(7, "aborted").encode().into(), Acks::Leader)
        .unwrap(); // 0
    p.append_produce(
        TestBatch::new(&["plain"], now).encode().into(),
        Acks::Leader,
    )
    .unwrap(); // 1
    let abort = EndTxnMarker {
        producer_id: 7,
        producer_epoch: 0,
        coordinator_epoch: 0,
        commit: false,
    };
    p.append_txn_marker(&abort, b.clock.now_ms() + 30_000)
        .unwrap(); // 2
    p.append_transactional(txn(8, "open").encode().into(), Acks::Leader)
        .unwrap(); // 3
    assert_eq!(p.stable_offsets(), (4, 3));

    let committed = fetch(&b, "t", 1).await;
    let pd = &committed.response.responses[0].partitions[0];
    assert_eq!(pd.error_code, 0);
    assert_eq!((pd.high_watermark, pd.last_stable_offset), (4, 3));
    let aborted: Vec<(i64, i64)> = pd
        .aborted_transactions
        .iter()
        .flatten()
        .map(|t| (t.producer_id.0, t.first_offset))
        .collect();
    assert_eq!(aborted, vec![(7, 0)]);
    assert_eq!(fetched_offsets(&committed), vec![0, 1, 2]);

    let uncommitted = fetch(&b, "t", 0).await;
    let pd = &uncommitted.response.responses[0].partitions[0];
    assert_eq!((pd.high_watermark, pd.last_stable_offset), (4, 3));
    assert_eq!(pd.aborted_transactions, None);
    assert_eq!(fetched_offsets(&uncommitted), vec![0, 1, 2, 3]);

    assert_eq!(latest(&b, "t", 1), 3);
    assert_eq!(latest(&b, "t", 0), 4);
}
