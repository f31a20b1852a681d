//! What an operator reads and sets: `/metrics`, `/health` and `/ready` after real traffic;
//! retention by size and by time and segment rolls set through topic configs; topic
//! auto-creation on and off.
//!
//! Needs brokers with particular settings, so it ignores `FJORD_E2E_BOOTSTRAP`.

mod common;

use std::path::Path;

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use common::{encode_batch, metric, produce_raw, scrape, wait_for, BatchRecord, DEADLINE};
use fjord_client::{
    FetchOptions, NewTopic, OffsetSpec, ProduceOptions, ProduceRecord, ResponseError,
};
use fjord_e2e::{http_get, unique_topic, BrokerOptions, BrokerProcess};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

async fn start(args: &[&str]) -> Result<BrokerProcess> {
    BrokerProcess::start(BrokerOptions {
        args: args.iter().map(|s| s.to_string()).collect(),
        ..BrokerOptions::default()
    })
    .await
}

/// Prints the broker's logs when the test failed, then hands the result on.
fn finish(broker: &BrokerProcess, result: Result<()>) -> Result<()> {
    if let Err(e) = &result {
        eprintln!("failed: {e:#}\n{}", broker.logs());
    }
    result
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[tokio::test]
async fn metrics_health_and_ready_after_traffic() -> Result<()> {
    let broker = start(&[]).await?;
    let result = async {
        let topic = unique_topic("metrics");
        let client = common::client(&broker.bootstrap()).await?;
        client.create_topic(NewTopic::new(&topic, 1, 1)).await?;
        let conn = common::connection(&broker.bootstrap()).await?;
        let mut batch_bytes = 0u64;
        let mut records = 0i64;
        for (i, count) in [5usize, 12, 8].into_iter().enumerate() {
            let batch = encode_batch(
                &vec![BatchRecord::new(format!("batch-{i}"), now_ms()); count],
                None,
            )?;
            batch_bytes += batch.len() as u64;
            let answer = produce_raw(&conn, &topic, 0, -1, batch).await?;
            ensure!(
                answer.error_code == 0 && answer.base_offset == records,
                "{answer:?}"
            );
            records += count as i64;
        }
        let fetched = client.fetch(&topic, 0, 0, &FetchOptions::default()).await?;
        ensure!(fetched.records.len() as i64 == records, "{fetched:?}");

        let text = scrape(&broker.http_addr()).await?;
        let t = [("topic", topic.as_str())];
        let tp = [("topic", topic.as_str()), ("partition", "0")];
        let get = |name: &str, labels: &[(&str, &str)]| {
            metric(&text, name, labels)
                .with_context(|| format!("no {name} {labels:?} in /metrics:\n{text}"))
        };
        let bytes = batch_bytes as f64;
        let n = records as f64;
        ensure!(get("fjord_bytes_in_total", &t)? == bytes, "bytes in");
        // One fetch from offset 0 returns the three whole batches.
        ensure!(get("fjord_bytes_out_total", &t)? == bytes, "bytes out");
        ensure!(get("fjord_messages_in_total", &t)? == n, "messages in");
        ensure!(get("fjord_messages_out_total", &t)? == n, "messages out");
        ensure!(get("fjord_requests_total", &[("api", "Produce")])? == 3.0);
        let fetches = get("fjord_requests_total", &[("api", "Fetch")])?;
        ensure!(fetches >= 1.0, "Fetch requests {fetches}");
        let fetch_le_inf = get(
            "fjord_request_duration_seconds_bucket",
            &[("api", "Fetch"), ("le", "+Inf")],
        )?;
        ensure!(
            fetch_le_inf == fetches,
            "Fetch histogram holds {fetch_le_inf} of {fetches} requests"
        );
        // Batches are stored as received.
        ensure!(get("fjord_log_size_bytes", &tp)? == bytes, "log size");
        ensure!(get("fjord_log_end_offset", &tp)? == n, "log end offset");
        let connections = get("fjord_connections", &[])?;
        ensure!(
            connections >= 2.0,
            "fjord_connections {connections} with two clients open"
        );

        for path in ["/health", "/ready"] {
            let (status, body) = http_get(&broker.http_addr(), path, DEADLINE).await?;
            ensure!(status == 200, "{path}: {status} {body}");
        }
        let (status, _) = http_get(&broker.http_addr(), "/no-such-page", DEADLINE).await?;
        ensure!(status == 404, "/no-such-page: {status}");
        Ok(())
    }
    .await;
    finish(&broker, result)
}

/// `.log` files in a partition directory: their count, total size, the size of the oldest
/// one and of the largest one.
fn segment_files(dir: &Path) -> Result<(usize, u64, u64, u64)> {
    let mut logs = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        if entry.path().extension().is_some_and(|e| e == "log") {
            logs.push((entry.file_name(), entry.metadata()?.len()));
        }
    }
    // Named by zero-padded base offset: name order is offset order.
    logs.sort();
    let bytes = logs.iter().map(|(_, len)| len).sum();
    let largest = logs.iter().map(|(_, len)| *len).max().unwrap_or(0);
    Ok((
        logs.len(),
        bytes,
        logs.first().map_or(0, |(_, len)| *len),
        largest,
    ))
}

#[tokio::test]
async fn retention_bytes_deletes_old_segments() -> Result<()> {
    const SEGMENT_BYTES: u64 = 1024;
    const RETENTION_BYTES: u64 = 4096;
    let broker = start(&["--log-retention-check-interval-ms", "100"]).await?;
    let result = async {
        let topic = unique_topic("retention-bytes");
        let client = common::client(&broker.bootstrap()).await?;
        client
            .create_topic(
                NewTopic::new(&topic, 1, 1)
                    .with_config("segment.bytes", SEGMENT_BYTES.to_string())
                    .with_config("retention.bytes", RETENTION_BYTES.to_string()),
            )
            .await?;
        // About 50 KB in batches of four 100-byte records.
        let value = |offset: i64| format!("{offset:0>100}");
        let mut end = 0i64;
        while end < 400 {
            let records: Vec<_> = (end..end + 4)
                .map(|o| ProduceRecord::new(None::<Bytes>, value(o)))
                .collect();
            let produced = client
                .produce(&topic, 0, &records, &ProduceOptions::default())
                .await?;
            ensure!(produced.base_offset == end, "{produced:?}");
            end += 4;
        }
        let dir = broker.data_dir().join(format!("{topic}-0"));
        // Retention stops, as in Kafka, once dropping the oldest segment would take the
        // partition below retention.bytes; with no new data nothing changes after that.
        wait_for("old segments deleted", DEADLINE, || async {
            let (files, bytes, oldest, _) = segment_files(&dir)?;
            Ok(if bytes - oldest < RETENTION_BYTES {
                Ok(())
            } else {
                Err(format!("{files} .log files of {bytes} bytes, oldest {oldest}"))
            })
        })
        .await?;
        let (files, bytes, _, largest) = segment_files(&dir)?;
        let earliest = client
            .list_offsets(&topic, 0, OffsetSpec::Earliest)
            .await?
            .offset;
        println!("retention.bytes: earliest offset {earliest}, {files} .log files, {bytes} bytes");
        ensure!(earliest > 0, "log start offset still 0");
        ensure!(
            files <= 8,
            "{files} .log files left with segment.bytes {SEGMENT_BYTES}"
        );
        // A segment rolls before a batch would take it past segment.bytes.
        ensure!(
            largest <= SEGMENT_BYTES,
            "a {largest}-byte segment with segment.bytes {SEGMENT_BYTES}"
        );
        ensure!(
            bytes >= RETENTION_BYTES,
            "retention deleted too much: {bytes} bytes left"
        );
        let latest = client.list_offsets(&topic, 0, OffsetSpec::Latest).await?;
        ensure!(latest.offset == end, "log end moved: {latest:?}");

        // What is left reads back from the new start, intact.
        let mut offset = earliest;
        while offset < end {
            let fetched = match client
                .fetch(&topic, 0, offset, &FetchOptions::default())
                .await
            {
                Ok(f) => f,
                Err(e) => {
                    let now = client.list_offsets(&topic, 0, OffsetSpec::Earliest).await?;
                    let (files, bytes, _, _) = segment_files(&dir)?;
                    anyhow::bail!(
                        "fetch at {offset}: {e}; earliest now {}, {files} .log files, {bytes} bytes",
                        now.offset
                    );
                }
            };
            ensure!(!fetched.records.is_empty(), "nothing at {offset}");
            for r in fetched.records {
                ensure!(r.offset == offset, "{r:?} at {offset}");
                ensure!(
                    r.value.as_deref() == Some(value(offset).as_bytes()),
                    "{r:?}"
                );
                offset += 1;
            }
        }
        let gone = client.fetch(&topic, 0, 0, &FetchOptions::default()).await;
        ensure!(
            gone.as_ref().err().and_then(|e| e.kafka()) == Some(ResponseError::OffsetOutOfRange),
            "fetch at 0 after retention: {gone:?}"
        );
        Ok(())
    }
    .await;
    finish(&broker, result)
}

/// As in Kafka, time retention also takes the active segment once its newest record is
/// old enough (the log rolls a fresh, empty segment first), without waiting for
/// segment.ms: the log start offset reaches the log end offset.
#[tokio::test]
async fn retention_ms_deletes_everything_old_enough() -> Result<()> {
    let broker = start(&["--log-retention-check-interval-ms", "100"]).await?;
    let result = async {
        let topic = unique_topic("retention-ms");
        let client = common::client(&broker.bootstrap()).await?;
        client
            .create_topic(NewTopic::new(&topic, 1, 1).with_config("retention.ms", "1000"))
            .await?;
        let mut end = 0;
        for _ in 0..3 {
            let records = vec![ProduceRecord::new(None::<Bytes>, "old"); 5];
            let produced = client
                .produce(&topic, 0, &records, &ProduceOptions::default())
                .await?;
            ensure!(produced.base_offset == end, "{produced:?}");
            end += 5;
        }
        wait_for("records past retention.ms deleted", DEADLINE, || async {
            let earliest = client.list_offsets(&topic, 0, OffsetSpec::Earliest).await?;
            Ok(if earliest.offset == end {
                Ok(())
            } else {
                Err(format!("earliest {} of {end}", earliest.offset))
            })
        })
        .await?;
        let latest = client.list_offsets(&topic, 0, OffsetSpec::Latest).await?;
        ensure!(latest.offset == end, "{latest:?}");
        let gone = client.fetch(&topic, 0, 0, &FetchOptions::default()).await;
        ensure!(
            gone.as_ref().err().and_then(|e| e.kafka()) == Some(ResponseError::OffsetOutOfRange),
            "fetch at 0 after retention: {gone:?}"
        );
        // Offsets go on where they were.
        let produced = client
            .produce(
                &topic,
                0,
                &[ProduceRecord::new(None::<Bytes>, "new")],
                &ProduceOptions::default(),
            )
            .await?;
        ensure!(produced.base_offset == end, "{produced:?}");
        Ok(())
    }
    .await;
    finish(&broker, result)
}

/// Metadata v12 for one topic name, with the request's own auto-creation flag.
fn metadata_for(topic: &str, allow_auto_topic_creation: bool) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(
            TopicName(StrBytes::from_string(topic.to_string())),
        ))]))
        .with_allow_auto_topic_creation(allow_auto_topic_creation)
}

fn topic_answer<'a>(
    response: &'a MetadataResponse,
    topic: &str,
) -> Result<&'a kafka_protocol::messages::metadata_response::MetadataResponseTopic> {
    response
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some(topic))
        .with_context(|| format!("{topic} not in {response:?}"))
}

#[tokio::test]
async fn auto_create_off_creates_nothing() -> Result<()> {
    let broker = start(&["--auto-create-topics", "false"]).await?;
    let result = async {
        let conn = common::connection(&broker.bootstrap()).await?;
        let topic = unique_topic("auto-off");
        let response = conn.send(&metadata_for(&topic, true)).await?;
        let answer = topic_answer(&response, &topic)?;
        ensure!(
            answer.error_code == ResponseError::UnknownTopicOrPartition.code(),
            "{answer:?}"
        );
        let all = conn
            .send(&MetadataRequest::default().with_topics(None))
            .await?;
        ensure!(
            all.topics
                .iter()
                .all(|t| t.name.as_ref().map(|n| n.as_str()) != Some(topic.as_str())),
            "{topic} listed: {all:?}"
        );
        let client = common::client(&broker.bootstrap()).await?;
        let produce = client
            .produce(
                &topic,
                0,
                &[ProduceRecord::new(None::<Bytes>, "v")],
                &ProduceOptions::default(),
            )
            .await;
        ensure!(
            produce.as_ref().err().and_then(|e| e.kafka())
                == Some(ResponseError::UnknownTopicOrPartition),
            "{produce:?}"
        );
        ensure!(
            !broker.data_dir().join(format!("{topic}-0")).exists(),
            "a partition directory was created"
        );
        Ok(())
    }
    .await;
    finish(&broker, result)
}

#[tokio::test]
async fn auto_create_on_uses_num_partitions() -> Result<()> {
    let broker = start(&["--num-partitions", "3"]).await?;
    let result = async {
        let conn = common::connection(&broker.bootstrap()).await?;
        // A request that does not allow auto-creation is answered, not obeyed.
        let refused = unique_topic("auto-refused");
        let response = conn.send(&metadata_for(&refused, false)).await?;
        ensure!(
            topic_answer(&response, &refused)?.error_code
                == ResponseError::UnknownTopicOrPartition.code(),
            "{response:?}"
        );

        let topic = unique_topic("auto-on");
        wait_for("auto-created topic with leaders", DEADLINE, || async {
            let response = conn.send(&metadata_for(&topic, true)).await?;
            let answer = topic_answer(&response, &topic)?;
            Ok(
                if answer.error_code == 0
                    && answer.partitions.len() == 3
                    && answer.partitions.iter().all(|p| p.leader_id.0 >= 0)
                {
                    Ok(())
                } else {
                    Err(format!("{answer:?}"))
                },
            )
        })
        .await?;
        let client = common::client(&broker.bootstrap()).await?;
        for partition in 0..3 {
            let produced = client
                .produce(
                    &topic,
                    partition,
                    &[ProduceRecord::new(None::<Bytes>, "v")],
                    &ProduceOptions::default(),
                )
                .await?;
            ensure!(produced.base_offset == 0, "{partition}: {produced:?}");
            ensure!(broker
                .data_dir()
                .join(format!("{topic}-{partition}"))
                .is_dir());
        }
        let response = conn.send(&metadata_for(&refused, true)).await?;
        ensure!(topic_answer(&response, &refused)?.error_code == 0);
        Ok(())
    }
    .await;
    finish(&broker, result)
}
