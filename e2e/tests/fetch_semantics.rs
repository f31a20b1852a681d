//! Fetch and ListOffsets rules that consumers depend on, checked on the raw answers: whole
//! batches from mid-batch offsets and under small limits, long polls, out-of-range
//! offsets, and lookups by timestamp.

mod common;

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use common::{
    batch_spans, encode_batch, metric, produce_raw, scrape, wait_for, BatchRecord, DEADLINE,
};
use fjord_client::{Connection, FetchOptions, NewTopic, OffsetSpec};
use fjord_e2e::{unique_topic, BrokerOptions, BrokerProcess};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

/// A broker with one single-partition topic.
struct Setup {
    broker: BrokerProcess,
    topic: String,
    conn: Connection,
}

impl Setup {
    async fn start() -> Result<Setup> {
        let broker = BrokerProcess::start(BrokerOptions::default()).await?;
        let topic = unique_topic("fetch");
        common::client(&broker.bootstrap())
            .await?
            .create_topic(NewTopic::new(&topic, 1, 1))
            .await?;
        let conn = common::connection(&broker.bootstrap()).await?;
        Ok(Setup {
            broker,
            topic,
            conn,
        })
    }

    /// Appends one batch of `values` stamped `timestamps_ms` (one per value); returns its
    /// base offset.
    async fn append(&self, values: &[&[u8]], timestamps_ms: &[i64]) -> Result<i64> {
        let records: Vec<_> = values
            .iter()
            .zip(timestamps_ms)
            .map(|(v, ts)| BatchRecord::new(Bytes::copy_from_slice(v), *ts))
            .collect();
        let answer = produce_raw(
            &self.conn,
            &self.topic,
            0,
            -1,
            encode_batch(&records, None)?,
        )
        .await?;
        ensure!(answer.error_code == 0, "{answer:?}");
        Ok(answer.base_offset)
    }

    fn finish(&self, result: Result<()>) -> Result<()> {
        if let Err(e) = &result {
            eprintln!("failed: {e:#}\n{}", self.broker.logs());
        }
        result
    }
}

/// One raw Fetch for partition 0 of `topic`.
async fn fetch(
    conn: &Connection,
    topic: &str,
    offset: i64,
    max_wait_ms: i32,
    min_bytes: i32,
    max_bytes: i32,
    partition_max_bytes: i32,
) -> Result<PartitionData> {
    let request = FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(max_bytes)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(partition_max_bytes)])]);
    let response = conn.send(&request).await?;
    ensure!(response.error_code == 0, "{response:?}");
    response
        .responses
        .into_iter()
        .flat_map(|t| t.partitions)
        .find(|p| p.partition_index == 0)
        .context("no answer for partition 0")
}

fn records_of(p: &PartitionData) -> &[u8] {
    p.records.as_deref().unwrap_or_default()
}

const MIB: i32 = 1 << 20;

#[tokio::test]
async fn fetch_from_mid_batch_returns_the_whole_batch() -> Result<()> {
    let s = Setup::start().await?;
    let result = async {
        let ts = [1_700_000_000_000; 10];
        let values: Vec<Vec<u8>> = (0..20).map(|i| format!("r{i}").into_bytes()).collect();
        let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
        ensure!(s.append(&refs[..10], &ts).await? == 0);
        ensure!(s.append(&refs[10..], &ts).await? == 10);
        for (offset, first_base) in [(5, 0), (9, 0), (10, 10), (15, 10)] {
            let p = fetch(&s.conn, &s.topic, offset, 0, 1, MIB, MIB).await?;
            ensure!(p.error_code == 0, "at {offset}: {p:?}");
            let spans = batch_spans(records_of(&p));
            let first = spans
                .first()
                .with_context(|| format!("nothing at {offset}"))?;
            ensure!(
                first.base_offset == first_base && first.records_count == 10 && first.complete,
                "fetch at {offset} starts with {first:?}"
            );
        }
        // The client skips what precedes its offset.
        let client = common::client(&s.broker.bootstrap()).await?;
        let fetched = client
            .fetch(&s.topic, 0, 5, &FetchOptions::default())
            .await?;
        let offsets: Vec<i64> = fetched.records.iter().map(|r| r.offset).collect();
        ensure!(offsets.first() == Some(&5), "{offsets:?}");
        ensure!(fetched.records[0].value.as_deref() == Some(&b"r5"[..]));
        Ok(())
    }
    .await;
    s.finish(result)
}

#[tokio::test]
async fn first_batch_is_whole_even_above_the_limits() -> Result<()> {
    let s = Setup::start().await?;
    let result = async {
        let big = vec![b'x'; 500];
        let values: Vec<&[u8]> = vec![&big; 20];
        ensure!(s.append(&values, &[1_700_000_000_000; 20]).await? == 0);
        ensure!(s.append(&[b"small"], &[1_700_000_000_000]).await? == 20);
        for offset in [0, 7] {
            let p = fetch(&s.conn, &s.topic, offset, 0, 1, 100, 100).await?;
            ensure!(p.error_code == 0, "{p:?}");
            let data = records_of(&p);
            let spans = batch_spans(data);
            ensure!(
                spans.len() == 1
                    && spans[0].complete
                    && spans[0].base_offset == 0
                    && spans[0].records_count == 20
                    && spans[0].size_bytes > 10_000
                    && data.len() == spans[0].size_bytes,
                "fetch at {offset} with 100-byte limits: {} bytes, {spans:?}",
                data.len()
            );
        }
        // Past the big batch, the limits apply to the next one as the first.
        let p = fetch(&s.conn, &s.topic, 20, 0, 1, 100, 100).await?;
        let spans = batch_spans(records_of(&p));
        ensure!(
            spans.len() == 1 && spans[0].base_offset == 20 && spans[0].complete,
            "{spans:?}"
        );
        Ok(())
    }
    .await;
    s.finish(result)
}

#[tokio::test]
async fn long_poll_returns_when_data_arrives() -> Result<()> {
    let s = Setup::start().await?;
    let result = async {
        ensure!(s.append(&[b"before"], &[1_700_000_000_000]).await? == 0);
        let fetches_before = metric(
            &scrape(&s.broker.http_addr()).await?,
            "fjord_requests_total",
            &[("api", "Fetch")],
        )
        .unwrap_or(0.0);
        // A long poll at the log end, on its own connection.
        let poll_conn = common::connection(&s.broker.bootstrap()).await?;
        let topic = s.topic.clone();
        let poll =
            tokio::spawn(async move { fetch(&poll_conn, &topic, 1, 25_000, 1, MIB, MIB).await });
        // Produce only once the broker holds the fetch.
        wait_for("the long poll reaching the broker", DEADLINE, || async {
            let text = scrape(&s.broker.http_addr()).await?;
            let fetches = metric(&text, "fjord_requests_total", &[("api", "Fetch")]).unwrap_or(0.0);
            Ok(if fetches > fetches_before {
                Ok(())
            } else {
                Err(format!("{fetches} Fetch requests"))
            })
        })
        .await?;
        ensure!(
            !poll.is_finished(),
            "the fetch answered with no data before max_wait: {:?}",
            poll.await
        );
        ensure!(s.append(&[b"after"], &[1_700_000_000_000]).await? == 1);
        let p = tokio::time::timeout(DEADLINE, poll)
            .await
            .context("long poll did not return after the produce")???;
        ensure!(p.error_code == 0 && p.high_watermark == 2, "{p:?}");
        let spans = batch_spans(records_of(&p));
        ensure!(
            spans.len() == 1 && spans[0].base_offset == 1 && spans[0].complete,
            "{spans:?}"
        );

        // Nothing arrives: a short max_wait returns, empty and without error.
        let p = tokio::time::timeout(DEADLINE, fetch(&s.conn, &s.topic, 2, 100, 1, MIB, MIB))
            .await
            .context("fetch with max_wait 100 ms did not return")??;
        ensure!(
            p.error_code == 0 && records_of(&p).is_empty() && p.high_watermark == 2,
            "{p:?}"
        );
        Ok(())
    }
    .await;
    s.finish(result)
}

#[tokio::test]
async fn fetch_past_the_log_end_is_offset_out_of_range() -> Result<()> {
    let s = Setup::start().await?;
    let result = async {
        ensure!(s.append(&[b"a", b"b"], &[1, 2]).await? == 0);
        let at_end = fetch(&s.conn, &s.topic, 2, 0, 1, MIB, MIB).await?;
        ensure!(
            at_end.error_code == 0 && records_of(&at_end).is_empty(),
            "{at_end:?}"
        );
        for offset in [3, 1_000_000] {
            let p = fetch(&s.conn, &s.topic, offset, 0, 1, MIB, MIB).await?;
            ensure!(
                p.error_code == ResponseError::OffsetOutOfRange.code() && records_of(&p).is_empty(),
                "fetch at {offset}: {p:?}"
            );
        }
        let negative = fetch(&s.conn, &s.topic, -5, 0, 1, MIB, MIB).await?;
        ensure!(
            negative.error_code == ResponseError::OffsetOutOfRange.code(),
            "{negative:?}"
        );
        Ok(())
    }
    .await;
    s.finish(result)
}

const T0: i64 = 1_700_000_000_000;

#[tokio::test]
async fn list_offsets_by_timestamp_between_batches() -> Result<()> {
    let s = Setup::start().await?;
    let result = async {
        // Three batches of three records; each batch stamped with one time.
        for (i, ts) in [T0 + 1_000, T0 + 2_000, T0 + 3_000].into_iter().enumerate() {
            let base = s.append(&[b"a", b"b", b"c"], &[ts; 3]).await?;
            ensure!(base == 3 * i as i64);
        }
        let client = common::client(&s.broker.bootstrap()).await?;
        for (query, offset, timestamp) in [
            (T0, 0, T0 + 1_000),
            (T0 + 1_000, 0, T0 + 1_000),
            (T0 + 1_500, 3, T0 + 2_000),
            (T0 + 2_000, 3, T0 + 2_000),
            (T0 + 2_001, 6, T0 + 3_000),
            (T0 + 3_000, 6, T0 + 3_000),
            (T0 + 3_001, -1, -1),
        ] {
            let found = client
                .list_offsets(&s.topic, 0, OffsetSpec::Timestamp(query))
                .await?;
            ensure!(
                (found.offset, found.timestamp_ms) == (offset, timestamp),
                "timestamp {query}: expected offset {offset} at {timestamp}, got {found:?}"
            );
        }
        Ok(())
    }
    .await;
    s.finish(result)
}

#[tokio::test]
async fn list_offsets_by_timestamp_inside_a_batch() -> Result<()> {
    let s = Setup::start().await?;
    let result = async {
        // One batch whose records carry different times, as a producer's batch does.
        let base = s
            .append(
                &[b"a", b"b", b"c", b"d"],
                &[T0 + 100, T0 + 200, T0 + 300, T0 + 400],
            )
            .await?;
        ensure!(base == 0);
        let client = common::client(&s.broker.bootstrap()).await?;
        for (query, offset, timestamp) in [
            (T0 + 50, 0, T0 + 100),
            (T0 + 150, 1, T0 + 200),
            (T0 + 300, 2, T0 + 300),
            (T0 + 301, 3, T0 + 400),
        ] {
            let found = client
                .list_offsets(&s.topic, 0, OffsetSpec::Timestamp(query))
                .await?;
            ensure!(
                (found.offset, found.timestamp_ms) == (offset, timestamp),
                "timestamp {query}: expected offset {offset} at {timestamp}, got {found:?}"
            );
        }
        Ok(())
    }
    .await;
    s.finish(result)
}
