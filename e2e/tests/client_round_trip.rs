//! fjord-client against a real broker: every call it offers, checked by what the broker
//! answers and by reading the data back.
//!
//! Runs against a spawned `fjord`, or against `FJORD_E2E_BOOTSTRAP` when set.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use fjord_client::{
    AlterConfigOp, Client, ClientConfig, Compression, ConfigResource, FetchOptions, NewTopic,
    OffsetSpec, ProduceOptions, ProduceRecord, ResponseError,
};
use fjord_e2e::{unique_topic, Target};

const DEADLINE: Duration = Duration::from_secs(30);

/// Waits until every partition of `topic` has a leader in Metadata.
async fn wait_for_leaders(client: &Client, topic: &str, partitions: usize) -> Result<()> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let metadata = client.metadata(Some(&[topic])).await?;
        if let Some(t) = metadata.topic(topic) {
            if t.error.is_none()
                && t.partitions.len() == partitions
                && t.partitions.iter().all(|p| p.leader_id >= 0)
            {
                return Ok(());
            }
        }
        ensure!(
            Instant::now() < deadline,
            "{topic}: no leaders within {DEADLINE:?}: {metadata:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn client_round_trip() -> Result<()> {
    let target = Target::from_env().await?;
    let client = Client::connect(&[target.bootstrap()], ClientConfig::default()).await?;
    let topic = unique_topic("client-rt");

    // Metadata: at least one broker, reachable at the address it advertises.
    let cluster = client.metadata(Some(&[])).await?;
    ensure!(!cluster.brokers.is_empty(), "no brokers: {cluster:?}");
    let broker_id = cluster.brokers[0].node_id;

    // CreateTopics: validate_only creates nothing; a real create reports id and layout.
    let new_topic = NewTopic::new(&topic, 2, 1).with_config("retention.ms", "3600000");
    let validated = client
        .create_topics(std::slice::from_ref(&new_topic), true)
        .await?;
    validated[0]
        .1
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let absent = client.metadata(Some(&[&topic])).await?;
    ensure!(
        absent.topic(&topic).map(|t| t.error) == Some(Some(ResponseError::UnknownTopicOrPartition)),
        "validate_only created the topic: {absent:?}"
    );
    let created = client.create_topic(new_topic.clone()).await?;
    ensure!(
        created.num_partitions == 2 && created.replication_factor == 1,
        "{created:?}"
    );
    ensure!(
        !created.topic_id.is_nil(),
        "CreateTopics returned no topic id"
    );
    let again = client.create_topic(new_topic).await.unwrap_err();
    ensure!(
        again.kafka() == Some(ResponseError::TopicAlreadyExists),
        "{again}"
    );
    wait_for_leaders(&client, &topic, 2).await?;
    let metadata = client.metadata(Some(&[&topic])).await?;
    ensure!(metadata.topic(&topic).map(|t| t.topic_id) == Some(created.topic_id));

    // Produce two batches (one compressed) and fetch them back from the first offset
    // and from the middle of the first batch.
    let first: Vec<_> = (0..10)
        .map(|i| ProduceRecord::new(Some(format!("k{i}")), format!("v{i}")))
        .collect();
    let p1 = client
        .produce(&topic, 0, &first, &ProduceOptions::default())
        .await?;
    ensure!(p1.base_offset == 0, "first batch at {}", p1.base_offset);
    let mut with_header = ProduceRecord::new(None::<String>, "tail");
    with_header.headers.push(("h".into(), Some("x".into())));
    with_header.timestamp_ms = Some(1_700_000_000_000);
    let zstd = ProduceOptions {
        acks: 1,
        compression: Compression::Zstd,
    };
    let p2 = client
        .produce(&topic, 0, &[with_header.clone()], &zstd)
        .await?;
    ensure!(p2.base_offset == 10, "second batch at {}", p2.base_offset);

    let fetched = client.fetch(&topic, 0, 0, &FetchOptions::default()).await?;
    ensure!(
        fetched.high_watermark == 11,
        "high watermark {}",
        fetched.high_watermark
    );
    let offsets: Vec<i64> = fetched.records.iter().map(|r| r.offset).collect();
    // A fetch may stop after the first batch; the rest is asked for below.
    ensure!(offsets.len() >= 10 && offsets == (0..offsets.len() as i64).collect::<Vec<_>>());
    for (i, r) in fetched.records.iter().take(10).enumerate() {
        ensure!(
            r.key.as_deref() == Some(format!("k{i}").as_bytes()),
            "{r:?}"
        );
        ensure!(
            r.value.as_deref() == Some(format!("v{i}").as_bytes()),
            "{r:?}"
        );
    }
    let mid = client.fetch(&topic, 0, 5, &FetchOptions::default()).await?;
    ensure!(
        mid.records.first().map(|r| r.offset) == Some(5),
        "{:?}",
        mid.records.first()
    );
    let tail = client
        .fetch(&topic, 0, 10, &FetchOptions::default())
        .await?;
    let last = tail.records.first().context("no record at offset 10")?;
    ensure!(
        last.offset == 10 && last.value.as_deref() == Some(&b"tail"[..]),
        "{last:?}"
    );
    ensure!(last.headers == with_header.headers && last.timestamp_ms == 1_700_000_000_000);
    let empty = client
        .fetch(
            &topic,
            1,
            0,
            &FetchOptions {
                max_wait: Duration::from_millis(10),
                ..FetchOptions::default()
            },
        )
        .await?;
    ensure!(
        empty.records.is_empty() && empty.high_watermark == 0,
        "{empty:?}"
    );
    let out_of_range = client
        .fetch(&topic, 0, 1_000, &FetchOptions::default())
        .await;
    ensure!(
        out_of_range.as_ref().err().and_then(|e| e.kafka())
            == Some(ResponseError::OffsetOutOfRange),
        "{out_of_range:?}"
    );

    // ListOffsets.
    let earliest = client.list_offsets(&topic, 0, OffsetSpec::Earliest).await?;
    let latest = client.list_offsets(&topic, 0, OffsetSpec::Latest).await?;
    ensure!(
        earliest.offset == 0 && latest.offset == 11,
        "{earliest:?} {latest:?}"
    );
    let by_time = client
        .list_offsets(&topic, 0, OffsetSpec::Timestamp(1_700_000_000_000))
        .await?;
    // The first ten records carry the produce time (now), later than the tail's stamp, so
    // the first record at or after that time is offset 0.
    ensure!(by_time.offset == 0, "{by_time:?}");
    let future = client
        .list_offsets(&topic, 0, OffsetSpec::Timestamp(i64::MAX / 2))
        .await?;
    ensure!(future.offset == -1, "{future:?}");

    // DescribeConfigs / IncrementalAlterConfigs on the topic.
    let resource = ConfigResource::Topic(topic.clone());
    let value_of = |entries: &[fjord_client::ConfigEntry], name: &str| {
        entries
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
    };
    let configs = client.describe_configs(&resource).await?;
    ensure!(
        value_of(&configs, "retention.ms").as_deref() == Some("3600000"),
        "{configs:?}"
    );
    client
        .incremental_alter_configs(
            &resource,
            &[AlterConfigOp::Set("retention.ms".into(), "7200000".into())],
            false,
        )
        .await?;
    let configs = client.describe_configs(&resource).await?;
    ensure!(
        value_of(&configs, "retention.ms").as_deref() == Some("7200000"),
        "{configs:?}"
    );
    let invalid = client
        .incremental_alter_configs(
            &resource,
            &[AlterConfigOp::Set(
                "retention.ms".into(),
                "not-a-number".into(),
            )],
            false,
        )
        .await
        .unwrap_err();
    ensure!(
        invalid.kafka() == Some(ResponseError::InvalidConfig),
        "{invalid}"
    );

    // DescribeConfigs on the broker.
    let broker_configs = client
        .describe_configs(&ConfigResource::Broker(broker_id))
        .await?;
    ensure!(
        !broker_configs.is_empty(),
        "broker {broker_id} has no configs"
    );

    // CreatePartitions: validate_only changes nothing; growing works; shrinking fails.
    client.create_partitions(&topic, 4, true).await?;
    wait_for_leaders(&client, &topic, 2).await?;
    client.create_partitions(&topic, 4, false).await?;
    wait_for_leaders(&client, &topic, 4).await?;
    let shrink = client
        .create_partitions(&topic, 3, false)
        .await
        .unwrap_err();
    ensure!(
        shrink.kafka() == Some(ResponseError::InvalidPartitions),
        "{shrink}"
    );
    let p3 = client
        .produce(&topic, 3, &first[..1], &ProduceOptions::default())
        .await?;
    ensure!(p3.base_offset == 0, "{p3:?}");

    // DeleteTopics: gone from Metadata; deleting again is UNKNOWN_TOPIC_OR_PARTITION.
    let deleted = client.delete_topics(&[&topic]).await?;
    deleted[0].1.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let metadata = client.metadata(Some(&[&topic])).await?;
        let error = metadata.topic(&topic).and_then(|t| t.error);
        if error == Some(ResponseError::UnknownTopicOrPartition) {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "{topic} still listed: {metadata:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = client.delete_topics(&[&topic]).await?;
    ensure!(
        again[0].1.as_ref().err().and_then(|e| e.kafka())
            == Some(ResponseError::UnknownTopicOrPartition),
        "{again:?}"
    );
    drop(target);
    Ok(())
}
