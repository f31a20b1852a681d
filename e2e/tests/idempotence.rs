//! Idempotent produce, driven by hand-made batches so every sequence number and epoch is
//! chosen by the test: a retried batch is answered with its original offset and not
//! stored twice, a gap is OUT_OF_ORDER_SEQUENCE_NUMBER, an older epoch is
//! INVALID_PRODUCER_EPOCH, and all of it holds after a clean restart and after kill -9
//! (producer state rebuilt from the log).
//!
//! Restarts the broker, so it ignores `FJORD_E2E_BOOTSTRAP`.

mod common;

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use common::{encode_batch, produce_raw, BatchRecord, Idempotence, DEADLINE};
use fjord_client::{ApiRequest, Connection, FetchOptions, NewTopic, OffsetSpec};
use fjord_e2e::{unique_topic, BrokerOptions, BrokerProcess};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse};
use kafka_protocol::protocol::{buf::ByteBufMut, Encodable};
use kafka_protocol::ResponseError;

/// InitProducerId through fjord-client's connection, which has no typed call for it.
struct InitProducerId(InitProducerIdRequest);

impl Encodable for InitProducerId {
    fn encode<B: ByteBufMut>(&self, buf: &mut B, version: i16) -> anyhow::Result<()> {
        self.0.encode(buf, version)
    }
    fn compute_size(&self, version: i16) -> anyhow::Result<usize> {
        self.0.compute_size(version)
    }
}

impl ApiRequest for InitProducerId {
    const API: ApiKey = ApiKey::InitProducerId;
    type Response = InitProducerIdResponse;
}

/// A batch of `count` records from `producer`, values naming their sequence numbers,
/// stamped now: as in Kafka, a producer whose last batch is older than
/// producer.id.expiration.ms (a day) is forgotten, at the latest when its log is opened.
fn batch(producer_id: i64, producer_epoch: i16, base_sequence: i32, count: i32) -> Result<Bytes> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let records: Vec<_> = (base_sequence..base_sequence + count)
        .map(|seq| BatchRecord::new(format!("e{producer_epoch}-s{seq}"), now_ms))
        .collect();
    encode_batch(
        &records,
        Some(Idempotence {
            producer_id,
            producer_epoch,
            base_sequence,
        }),
    )
}

struct Partition<'a> {
    broker: &'a BrokerProcess,
    topic: &'a str,
}

impl Partition<'_> {
    async fn produce(&self, conn: &Connection, batch: &Bytes) -> Result<PartitionProduceResponse> {
        produce_raw(conn, self.topic, 0, -1, batch.clone()).await
    }

    async fn log_end_offset(&self) -> Result<i64> {
        let client = common::client(&self.broker.bootstrap()).await?;
        Ok(client
            .list_offsets(self.topic, 0, OffsetSpec::Latest)
            .await?
            .offset)
    }

    /// Every value in the partition, in offset order.
    async fn values(&self) -> Result<Vec<String>> {
        let client = common::client(&self.broker.bootstrap()).await?;
        let end = self.log_end_offset().await?;
        let mut values = Vec::new();
        while (values.len() as i64) < end {
            let fetched = client
                .fetch(self.topic, 0, values.len() as i64, &FetchOptions::default())
                .await?;
            ensure!(!fetched.records.is_empty(), "nothing at {}", values.len());
            for r in fetched.records {
                ensure!(r.offset == values.len() as i64, "{r:?}");
                values.push(String::from_utf8(r.value.unwrap_or_default().to_vec())?);
            }
        }
        Ok(values)
    }
}

fn expect_appended(answer: &PartitionProduceResponse, base_offset: i64, what: &str) -> Result<()> {
    ensure!(
        answer.error_code == 0 && answer.base_offset == base_offset,
        "{what}: expected base offset {base_offset}, got {answer:?}"
    );
    Ok(())
}

fn expect_error(answer: &PartitionProduceResponse, error: ResponseError, what: &str) -> Result<()> {
    ensure!(
        answer.error_code == error.code(),
        "{what}: expected {error:?} ({}), got {answer:?}",
        error.code()
    );
    Ok(())
}

fn expected_values(batches: &[(i16, i32, i32)]) -> Vec<String> {
    batches
        .iter()
        .flat_map(|&(epoch, base, count)| {
            (base..base + count).map(move |s| format!("e{epoch}-s{s}"))
        })
        .collect()
}

#[tokio::test]
async fn duplicates_gaps_and_epochs_across_restarts() -> Result<()> {
    let mut broker = BrokerProcess::start(BrokerOptions::default()).await?;
    let result = run(&mut broker).await;
    if let Err(e) = &result {
        eprintln!("failed: {e:#}\n{}", broker.logs());
    }
    result
}

async fn run(broker: &mut BrokerProcess) -> Result<()> {
    let topic = unique_topic("idempotence");
    common::client(&broker.bootstrap())
        .await?
        .create_topic(NewTopic::new(&topic, 1, 1))
        .await?;

    let conn = common::connection(&broker.bootstrap()).await?;
    let init = conn
        .send(&InitProducerId(
            // Null transactional id: an idempotent, non-transactional producer.
            InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000),
        ))
        .await?;
    ensure!(init.error_code == 0, "InitProducerId: {init:?}");
    let pid = init.producer_id.0;
    ensure!(pid >= 0 && init.producer_epoch == 0, "{init:?}");

    let p = Partition {
        broker,
        topic: &topic,
    };
    let first = batch(pid, 0, 0, 10)?;
    expect_appended(&p.produce(&conn, &first).await?, 0, "seq 0..9")?;
    ensure!(p.log_end_offset().await? == 10);

    // A retry of the same batch: its original offset, nothing written.
    expect_appended(&p.produce(&conn, &first).await?, 0, "retry of seq 0..9")?;
    ensure!(
        p.log_end_offset().await? == 10,
        "a duplicate batch was appended"
    );

    // A gap: sequence 20 where 10 is due.
    let gap = batch(pid, 0, 20, 5)?;
    expect_error(
        &p.produce(&conn, &gap).await?,
        ResponseError::OutOfOrderSequenceNumber,
        "seq 20 after 9",
    )?;
    ensure!(
        p.log_end_offset().await? == 10,
        "a batch after a gap was appended"
    );

    let second = batch(pid, 0, 10, 5)?;
    expect_appended(&p.produce(&conn, &second).await?, 10, "seq 10..14")?;
    ensure!(p.log_end_offset().await? == 15);
    let mut stored = vec![(0, 0, 10), (0, 10, 5)];
    ensure!(p.values().await? == expected_values(&stored));
    drop(conn);

    // The producer state comes back from the log, after a clean stop and after a crash.
    let status = broker.sigterm(DEADLINE).await?;
    ensure!(status.success(), "SIGTERM exit: {status}");
    broker.restart().await?;
    let p = Partition {
        broker,
        topic: &topic,
    };
    let conn = common::connection(&p.broker.bootstrap()).await?;
    expect_appended(
        &p.produce(&conn, &second).await?,
        10,
        "retry of seq 10..14 after SIGTERM and restart",
    )?;
    expect_appended(
        &p.produce(&conn, &first).await?,
        0,
        "retry of seq 0..9 after SIGTERM and restart",
    )?;
    expect_error(
        &p.produce(&conn, &gap).await?,
        ResponseError::OutOfOrderSequenceNumber,
        "seq 20 after restart",
    )?;
    ensure!(
        p.log_end_offset().await? == 15,
        "a retry after restart was appended"
    );
    drop(conn);

    broker.kill9().await?;
    broker.restart().await?;
    let p = Partition {
        broker,
        topic: &topic,
    };
    let conn = common::connection(&p.broker.bootstrap()).await?;
    expect_appended(
        &p.produce(&conn, &second).await?,
        10,
        "retry of seq 10..14 after kill -9 and restart",
    )?;
    ensure!(
        p.log_end_offset().await? == 15,
        "a retry after kill -9 was appended"
    );
    ensure!(p.values().await? == expected_values(&stored));

    // The next batch in sequence still goes on.
    let third = batch(pid, 0, 15, 3)?;
    expect_appended(&p.produce(&conn, &third).await?, 15, "seq 15..17")?;
    stored.push((0, 15, 3));

    // A newer epoch restarts at sequence 0; the older epoch is then fenced.
    let bumped = batch(pid, 1, 0, 2)?;
    expect_appended(&p.produce(&conn, &bumped).await?, 18, "epoch 1 seq 0..1")?;
    stored.push((1, 0, 2));
    let stale = batch(pid, 0, 18, 1)?;
    expect_error(
        &p.produce(&conn, &stale).await?,
        ResponseError::InvalidProducerEpoch,
        "epoch 0 after epoch 1",
    )?;
    ensure!(
        p.log_end_offset().await? == 20,
        "a fenced batch was appended"
    );
    drop(conn);

    // The fence survives a crash too.
    broker.kill9().await?;
    broker.restart().await?;
    let p = Partition {
        broker,
        topic: &topic,
    };
    let conn = common::connection(&p.broker.bootstrap()).await?;
    expect_error(
        &p.produce(&conn, &stale).await?,
        ResponseError::InvalidProducerEpoch,
        "epoch 0 after epoch 1, after kill -9",
    )?;
    expect_appended(
        &p.produce(&conn, &bumped).await?,
        18,
        "retry of epoch 1 seq 0..1 after kill -9",
    )?;
    let values = p.values().await.context("reading the partition back")?;
    ensure!(
        values == expected_values(&stored),
        "partition holds {values:?}"
    );
    Ok(())
}
