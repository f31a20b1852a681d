//! What a client meets when it asks for something Fjord does not serve: an answer it
//! treats as final, at once, never a retriable error it retries until its own timeout.
//!
//! - A transactional librdkafka producer: `init_transactions()` fails with a fatal error
//!   instead of waiting out its timeout for a transaction coordinator.
//! - A request for an API key Kafka has but Fjord does not serve, or for a version of a
//!   served API outside the served range: the connection is closed with nothing sent,
//!   as Kafka closes it (only ApiVersions is answered, in v0, see bad_input.rs).

mod common;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use fjord_e2e::{BrokerOptions, BrokerProcess};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use common::{expect_closed_silently, raw_frame};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactional_producer_fails_at_once_with_a_fatal_error() -> Result<()> {
    let broker = BrokerProcess::start(BrokerOptions::default()).await?;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("transactional.id", "fjord-e2e-unsupported")
        .create()?;
    // Long enough that a retried COORDINATOR_NOT_AVAILABLE ends in a timeout error,
    // which is what this test refuses.
    let timeout = Duration::from_secs(60);
    let outcome = tokio::task::spawn_blocking(move || producer.init_transactions(timeout))
        .await
        .context("init_transactions panicked")?;
    let err = match outcome {
        Ok(()) => anyhow::bail!("init_transactions succeeded, but transactions are not served"),
        Err(e) => e,
    };
    let fatal = matches!(&err, KafkaError::Transaction(e) if e.is_fatal());
    ensure!(
        fatal && err.rdkafka_error_code() == Some(RDKafkaErrorCode::TransactionalIdAuthorizationFailed),
        "init_transactions failed with {err:?}; expected a fatal TRANSACTIONAL_ID_AUTHORIZATION_FAILED"
    );
    Ok(())
}

#[tokio::test]
async fn unserved_api_keys_and_versions_close_the_connection() -> Result<()> {
    let broker = BrokerProcess::start(BrokerOptions::default()).await?;
    // ConsumerGroupHeartbeat (KIP-848), not served; Fetch v3, below the served 4.
    for (api_key, version, flexible, what) in [
        (68, 0, true, "ConsumerGroupHeartbeat v0"),
        (1, 3, false, "Fetch v3"),
    ] {
        let mut stream = TcpStream::connect(broker.bootstrap()).await?;
        stream
            .write_all(&raw_frame(api_key, version, 7, flexible, &[0; 16]))
            .await?;
        expect_closed_silently(&mut stream, what).await?;
    }
    Ok(())
}
