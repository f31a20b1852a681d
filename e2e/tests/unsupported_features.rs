//! What a client meets when it asks for something Fjord does not serve: an answer it
//! treats as final, at once, never a retriable error it retries until its own timeout.
//! A request for an API key Kafka has but Fjord does not serve, or for a version of a
//! served API outside the served range: the connection is closed with nothing sent, as
//! Kafka closes it (only ApiVersions is answered, in v0, see bad_input.rs).

mod common;

use anyhow::Result;
use fjord_e2e::{BrokerOptions, BrokerProcess};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use common::{expect_closed_silently, raw_frame};

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
