//! fjord-client: a small async Kafka-protocol client for the Fjord operator, tests and
//! benchmarks. It speaks the wire protocol through the `kafka-protocol` crate's message
//! types and adds only what those types leave out: connections, version negotiation,
//! routing to leaders and typed errors.
//!
//! # Layout
//!
//! - `error`: the one [`Error`] enum; Kafka error codes become [`Error::Kafka`].
//! - `frame`: size-prefixed request/response frames (pure, bounded).
//! - `versions`: ApiVersions negotiation (pure): per API, the highest version both sides speak.
//! - `connection`: one TCP stream, pipelined requests matched by correlation id.
//! - `tls`: [`TlsConfig`]: trusted CAs and the client certificate for SSL listeners.
//! - `records`: records to RecordBatch v2 and back, including a fetch's partial last batch.
//! - `client`: [`Client`]: bootstrap, connections, routing to leaders, metadata.
//! - `admin`: topics, partitions, reassignments, configs (at the controller).
//! - `acls`: ACLs: describe, create, delete (KIP-140).
//! - `scram`: SCRAM credentials: describe, and alter with the password salted here
//!   (KIP-554).
//! - `data`: produce, fetch, list offsets (at the partition's leader).
//! - `groups`: consumer group calls at the group's coordinator: describe, list, fetch and
//!   commit offsets.
//!
//! ```no_run
//! # async fn demo() -> fjord_client::Result<()> {
//! use fjord_client::{Client, ClientConfig, NewTopic, ProduceRecord, ProduceOptions, FetchOptions};
//! let client = Client::connect(&["127.0.0.1:9092"], ClientConfig::default()).await?;
//! client.create_topic(NewTopic::new("orders", 3, 1)).await?;
//! let records = [ProduceRecord::new(Some("k"), "v")];
//! let produced = client.produce("orders", 0, &records, &ProduceOptions::default()).await?;
//! let fetched = client.fetch("orders", 0, produced.base_offset, &FetchOptions::default()).await?;
//! assert_eq!(fetched.records[0].value.as_deref(), Some(&b"v"[..]));
//! # Ok(()) }
//! ```

mod acls;
mod admin;
mod client;
mod config;
mod connection;
mod data;
mod error;
mod frame;
mod groups;
mod records;
mod scram;
mod tls;
mod versions;

pub use acls::{
    AclBinding, AclFilter, AclOperation, AclPatternType, AclPermission, AclResourceType,
};
pub use admin::{AlterConfigOp, ConfigEntry, ConfigResource, CreatedTopic, NewTopic, Reassignment};
pub use client::{BrokerMetadata, Client, ClusterMetadata, PartitionMetadata, TopicMetadata};
pub use config::ClientConfig;
pub use connection::{ApiRequest, Connection};
pub use data::{
    FetchOptions, FetchedPartition, ListedOffset, OffsetSpec, ProduceOptions, Produced,
};
pub use error::{Error, Result};
pub use groups::{
    decode_consumer_assignment, GroupDescription, GroupMemberDescription, ListedGroup,
};
pub use kafka_protocol::records::Compression;
pub use kafka_protocol::ResponseError;
pub use records::{FetchedRecord, ProduceRecord};
pub use scram::{
    ScramCredentialInfo, ScramMechanism, ScramUpsertion, SCRAM_MAX_ITERATIONS, SCRAM_MIN_ITERATIONS,
};
pub use tls::TlsConfig;
pub use versions::ApiVersions;
