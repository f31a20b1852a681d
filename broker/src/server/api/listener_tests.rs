//! Each listener answers with the brokers' endpoints of that same listener.

use std::sync::Arc;

use clap::Parser;
use kafka_protocol::messages::*;

use super::{admin, groups, metadata, str_bytes, RequestContext};
use crate::config::listeners::{Listener, ListenerName};
use crate::config::BrokerConfig;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    broker: BrokerConfig,
}

fn ctx(api_key: ApiKey, version: i16, listener: &Arc<Listener>) -> RequestContext {
    RequestContext {
        api_key,
        version,
        correlation_id: 1,
        client_id: "test".into(),
        peer: "127.0.0.1:5000".parse().unwrap(),
        listener: listener.clone(),
        principal: crate::auth::Principal::anonymous(),
    }
}

#[tokio::test]
async fn metadata_describe_cluster_and_find_coordinator_answer_per_listener() {
    let dir = tempfile::tempdir().unwrap();
    let config = Cli::parse_from([
        "fjord",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--offsets-topic-num-partitions",
        "1",
        "--listeners",
        "PLAINTEXT://127.0.0.1:19092,SSL://127.0.0.1:19093",
        "--advertised-listeners",
        "SSL://broker-1.example:29093",
    ])
    .broker;
    let listeners = config.listeners().unwrap();
    let (b, _stop) = crate::server::test_broker(config).await;
    let plain = listeners.first().clone();
    let ssl = listeners
        .get(&ListenerName::parse("SSL").unwrap())
        .unwrap()
        .clone();
    for (listener, host, port) in [
        (&plain, "127.0.0.1", 19092),
        (&ssl, "broker-1.example", 29093),
    ] {
        let m = metadata::handle(
            &b,
            &ctx(ApiKey::Metadata, 12, listener),
            MetadataRequest::default(),
        )
        .await;
        let got: Vec<_> = m
            .brokers
            .iter()
            .map(|e| (e.host.to_string(), e.port))
            .collect();
        assert_eq!(got, vec![(host.to_string(), port)], "{}", listener.name);
        let d = admin::describe_cluster(
            &b,
            &ctx(ApiKey::DescribeCluster, 0, listener),
            DescribeClusterRequest::default(),
        );
        let got: Vec<_> = d
            .brokers
            .iter()
            .map(|e| (e.host.to_string(), e.port))
            .collect();
        assert_eq!(got, vec![(host.to_string(), port)], "{}", listener.name);
        let f = groups::find_coordinator(
            &b,
            &ctx(ApiKey::FindCoordinator, 3, listener),
            FindCoordinatorRequest::default()
                .with_key(str_bytes("g".to_string()))
                .with_key_type(0),
        )
        .await;
        assert_eq!(f.error_code, 0);
        assert_eq!((f.host.to_string(), f.port), (host.to_string(), port));
    }
    // A listener the registered broker does not have: no broker to tell of, and no
    // reachable coordinator.
    let other = Arc::new(Listener {
        name: ListenerName::parse("SASL_SSL").unwrap(),
        ..(*ssl).clone()
    });
    let f = groups::find_coordinator(
        &b,
        &ctx(ApiKey::FindCoordinator, 3, &other),
        FindCoordinatorRequest::default()
            .with_key(str_bytes("g".to_string()))
            .with_key_type(0),
    )
    .await;
    assert_eq!(
        f.error_code,
        kafka_protocol::error::ResponseError::CoordinatorNotAvailable.code()
    );
}
