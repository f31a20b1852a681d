//! # Fjord broker
//!
//! A Kafka-compatible broker. The parts that decide (log, producer state, metadata
//! image) are separate from the thin runtime that owns sockets, tasks and timers.
//!
//! # Layout
//!
//! - `auth`: who a client is (Kafka principals; `auth::ssl_principal` reads a TLS client
//!   certificate's subject and applies `ssl.principal.mapping.rules`; SASL PLAIN and
//!   SCRAM per connection, SCRAM credentials) and what it may do (`auth::acl`: ACLs and
//!   the authorizer).
//! - `backoff`: exponential backoff, the one rule for retries.
//! - `clock`: injected time: monotonic for durations, wall time for timestamps.
//! - `config`: the typed, validated broker and topic configuration (Kafka's names);
//!   `config::listeners` the named listeners and their security protocols,
//!   `config::ssl` the TLS settings.
//! - `fetch_session`: client fetch sessions (KIP-227): the session cache and its rules.
//! - `group`: the consumer group coordinator state machine (classic protocol) and the
//!   `__consumer_offsets` record formats.
//! - `log`: per-partition segmented log on disk; batches, indexes, recovery, retention.
//! - `log::batch`: RecordBatch v2 header parsing and CRC validation.
//! - `log::producer_state`: idempotent producer sequence tracking.
//! - `metadata`: the cluster metadata image (brokers, topics, partitions, configs) and
//!   the pure admin planners.
//! - `log::compaction`: log cleaning for `cleanup.policy=compact`.
//! - `quorum`: the metadata quorum: the Raft log on disk, openraft over gRPC, the
//!   active controller on the Raft leader, broker registration and heartbeats.
//! - `protocol`: Kafka framing, the request guard, fetch responses, advertised APIs.
//! - `replication`: pure state machines of partition leaders, followers and the
//!   controller.
//! - `storage`: the storage seam: every file operation of segments, indexes,
//!   checkpoints and the metadata log, with fault injection for tests.
//! - `server`: listeners (one accept loop each; `server::tls` the TLS handshake and
//!   certificate reload, `server::stream` plain or TLS streams), connections, request
//!   handlers per API, the group coordinator
//!   runtime (`server::coordinator`), follower replication (`server::replica`),
//!   the background log scrub (`server::scrub`), HTTP metrics/health.
//! - `metrics`: Prometheus metric families.
//! - `txn`: the transaction coordinator state machine (KIP-98) and the
//!   `__transaction_state` record formats.
//! - `sim` (tests only): a seeded simulation of a cluster on the runtime glue (real
//!   partitions and logs, the replica fetcher's answer handling, the group coordinator
//!   runtime) under network and process faults, one test per replication invariant.

pub mod auth;
pub mod backoff;
pub mod clock;
pub mod config;
pub mod fetch_session;
pub mod group;
pub mod log;
pub mod metadata;
pub mod metrics;
pub mod protocol;
pub mod quorum;
pub mod replication;
pub mod server;
#[cfg(test)]
mod sim;
pub mod storage;
pub mod txn;
