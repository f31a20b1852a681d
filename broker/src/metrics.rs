//! Prometheus metric families of one broker, registered in one registry that the
//! HTTP listener renders at `/metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// Requests handled, by API name.
    pub requests: IntCounterVec,
    /// Error codes returned, by API name and Kafka error name (per topic/partition
    /// where the API answers per partition).
    pub request_errors: IntCounterVec,
    /// Time from a request's arrival to its response, by API name.
    pub request_duration: HistogramVec,
    pub bytes_in: IntCounterVec,
    pub bytes_out: IntCounterVec,
    pub messages_in: IntCounterVec,
    pub messages_out: IntCounterVec,
    pub log_size_bytes: IntGaugeVec,
    pub log_end_offset: IntGaugeVec,
    pub log_start_offset: IntGaugeVec,
    pub connections: IntGauge,
    pub connections_rejected: IntCounter,
    /// Connections closed because a request was malformed or too large.
    pub requests_rejected: IntCounterVec,
    /// Bytes of request frames being read (see `server::request_budget`).
    pub request_read_bytes: IntGauge,
    /// Connections closed for a client too slow or silent, by reason.
    pub connections_closed: IntCounterVec,
    /// TLS connections accepted, by where their records are encrypted.
    pub tls_connections: IntCounterVec,
    /// Consumer groups by state.
    pub groups: IntGaugeVec,
    pub group_members: IntGaugeVec,
    pub group_rebalances: IntCounter,
    /// Committed offset per group, topic and partition.
    pub group_committed_offset: IntGaugeVec,
    /// High watermark minus committed offset per group, topic and partition.
    pub group_lag: IntGaugeVec,
    /// Partitions this broker leads whose ISR is smaller than their replica set.
    pub under_replicated_partitions: IntGauge,
    /// Partitions of the cluster without a leader (from this broker's metadata).
    pub offline_partitions: IntGauge,
    /// Replicas hosted here that cannot be served (storage), by topic and partition.
    pub offline_replicas: IntGauge,
    /// Partitions this broker leads.
    pub leader_partitions: IntGauge,
    /// ISR changes of partitions this broker leads, seen in committed metadata.
    pub isr_shrinks: IntCounter,
    pub isr_expands: IntCounter,
    /// Replica fetch calls this broker answered as a leader (one per round per
    /// follower broker with fetch sessions).
    pub replica_fetch_requests: IntCounter,
    /// Fetchers this broker runs as a follower: one per leader broker it follows.
    pub replica_fetchers: IntGauge,
    /// Leader log end offset minus the follower's, per partition and follower.
    pub replica_lag: IntGaugeVec,
    /// Bytes of throttled replicas passed under a replication quota (KIP-73), by
    /// direction (leader, follower).
    pub replication_throttled_bytes: IntCounterVec,
    /// Milliseconds a replication quota was spent and held throttled replicas back.
    pub replication_throttled_time_ms: IntCounterVec,
    /// The replication quota rate in force (bytes/s; 0 when unthrottled), by direction.
    pub replication_throttle_rate: IntGaugeVec,
    /// 1 when this broker is the active controller (metadata quorum leader).
    pub active_controller: IntGauge,
    /// The metadata quorum's Raft term, commit index and applied index here.
    pub raft_term: IntGauge,
    pub raft_commit_index: IntGauge,
    pub raft_applied_index: IntGauge,
    /// 1 while a write of this broker's metadata log (or vote, or snapshot) is failing
    /// and being retried; the broker is not ready meanwhile.
    pub metadata_write_failing: IntGauge,
    /// Failed metadata writes, by error (ENOSPC, EIO, ...).
    pub metadata_write_failures: IntCounterVec,
    /// Log bytes the background scrub checked and found valid.
    pub log_scrub_verified_bytes: IntCounter,
    /// Damage the scrub found in a partition's log (each is logged with its file and
    /// byte position).
    pub log_damage_found: IntCounterVec,
    /// Segment files held open now, across all partitions.
    pub log_open_segment_files: IntGauge,
    /// Client fetch sessions cached (Kafka's NumIncrementalFetchSessions).
    pub fetch_sessions: IntGauge,
    /// Partitions held by all cached fetch sessions (NumIncrementalFetchPartitionsCached).
    pub fetch_session_partitions: IntGauge,
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric");
    g
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    c
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("unique metric");
    g
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "fjord_request_duration_seconds",
                "Request handling time by API.",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0, 10.0,
            ]),
            &["api"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(request_duration.clone()))
            .expect("unique metric");
        let connections =
            IntGauge::new("fjord_connections", "Open client connections.").expect("valid metric");
        registry
            .register(Box::new(connections.clone()))
            .expect("unique metric");
        let connections_rejected = IntCounter::new(
            "fjord_connections_rejected_total",
            "Connections closed at once because max.connections was reached.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(connections_rejected.clone()))
            .expect("unique metric");
        let tp = &["topic", "partition"];
        let group_rebalances = IntCounter::new(
            "fjord_group_rebalances_total",
            "Consumer group rebalances started.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(group_rebalances.clone()))
            .expect("unique metric");
        let gtp = &["group", "topic", "partition"];
        Metrics {
            requests: counter_vec(
                &registry,
                "fjord_requests_total",
                "Requests by API.",
                &["api"],
            ),
            request_errors: counter_vec(
                &registry,
                "fjord_request_errors_total",
                "Error codes returned, by API and error.",
                &["api", "error"],
            ),
            request_duration,
            bytes_in: counter_vec(
                &registry,
                "fjord_bytes_in_total",
                "Record bytes produced, by topic.",
                &["topic"],
            ),
            bytes_out: counter_vec(
                &registry,
                "fjord_bytes_out_total",
                "Record bytes fetched, by topic.",
                &["topic"],
            ),
            messages_in: counter_vec(
                &registry,
                "fjord_messages_in_total",
                "Records produced, by topic.",
                &["topic"],
            ),
            messages_out: counter_vec(
                &registry,
                "fjord_messages_out_total",
                "Records fetched (whole batches sent), by topic.",
                &["topic"],
            ),
            log_size_bytes: gauge_vec(
                &registry,
                "fjord_log_size_bytes",
                "Bytes on disk per partition.",
                tp,
            ),
            log_end_offset: gauge_vec(
                &registry,
                "fjord_log_end_offset",
                "Log end offset per partition.",
                tp,
            ),
            log_start_offset: gauge_vec(
                &registry,
                "fjord_log_start_offset",
                "Log start offset per partition.",
                tp,
            ),
            connections,
            connections_rejected,
            requests_rejected: counter_vec(
                &registry,
                "fjord_requests_rejected_total",
                "Requests refused before decoding (malformed, too large, unknown API), by reason.",
                &["reason"],
            ),
            request_read_bytes: gauge(
                &registry,
                "fjord_request_read_bytes",
                "Bytes of request frames being read: room taken from queued.max.request.bytes, \
                 plus small frames that never wait for it.",
            ),
            connections_closed: counter_vec(
                &registry,
                "fjord_connections_closed_total",
                "Connections closed for a slow or silent client, by reason: idle (no request \
                 for connections.max.idle.ms), idle_mid_frame (no byte of a begun request for \
                 as long), frame_deadline (request not read within --request-read-timeout-ms), \
                 no_room (no room in queued.max.request.bytes within as long), tls_handshake \
                 (TLS handshake refused, failed or not done within --request-read-timeout-ms).",
                &["reason"],
            ),
            tls_connections: counter_vec(
                &registry,
                "fjord_tls_connections_total",
                "TLS connections accepted, by mode: kernel (kTLS: the kernel encrypts the \
                 records and fetches use sendfile) or userspace (rustls encrypts; fetches copy).",
                &["mode"],
            ),
            groups: gauge_vec(
                &registry,
                "fjord_groups",
                "Consumer groups by state.",
                &["state"],
            ),
            group_members: gauge_vec(
                &registry,
                "fjord_group_members",
                "Members per consumer group.",
                &["group"],
            ),
            group_rebalances,
            group_committed_offset: gauge_vec(
                &registry,
                "fjord_group_committed_offset",
                "Committed offset per group and partition.",
                gtp,
            ),
            group_lag: gauge_vec(
                &registry,
                "fjord_group_lag",
                "Log end offset (high watermark) minus committed offset per group and partition.",
                gtp,
            ),
            under_replicated_partitions: gauge(
                &registry,
                "fjord_under_replicated_partitions",
                "Partitions led here whose ISR is smaller than their replica set.",
            ),
            offline_replicas: gauge(
                &registry,
                "fjord_offline_replicas",
                "Replicas hosted here whose log cannot be served (not openable, failed or \
                 damaged): requests get KAFKA_STORAGE_ERROR while they are retried.",
            ),
            offline_partitions: gauge(
                &registry,
                "fjord_offline_partitions",
                "Partitions of the cluster without a leader.",
            ),
            leader_partitions: gauge(
                &registry,
                "fjord_leader_partitions",
                "Partitions this broker leads.",
            ),
            isr_shrinks: counter(
                &registry,
                "fjord_isr_shrinks_total",
                "Committed ISR shrinks of partitions led here.",
            ),
            isr_expands: counter(
                &registry,
                "fjord_isr_expands_total",
                "Committed ISR expansions of partitions led here.",
            ),
            replica_fetch_requests: counter(
                &registry,
                "fjord_replica_fetch_requests_total",
                "Replica fetch calls answered here as a leader.",
            ),
            replica_fetchers: gauge(
                &registry,
                "fjord_replica_fetchers",
                "Replica fetchers running here: one per leader broker followed.",
            ),
            replica_lag: gauge_vec(
                &registry,
                "fjord_replica_lag_messages",
                "Leader log end offset minus the follower's, per partition and follower.",
                &["topic", "partition", "follower"],
            ),
            replication_throttled_bytes: counter_vec(
                &registry,
                "fjord_replication_throttled_bytes_total",
                "Bytes of throttled replicas passed under a replication quota, by direction.",
                &["direction"],
            ),
            replication_throttled_time_ms: counter_vec(
                &registry,
                "fjord_replication_throttled_time_ms_total",
                "Milliseconds a replication quota held throttled replicas back, by direction.",
                &["direction"],
            ),
            replication_throttle_rate: gauge_vec(
                &registry,
                "fjord_replication_throttle_rate_bytes",
                "The replication quota rate in force (bytes/s, 0: unthrottled), by direction.",
                &["direction"],
            ),
            active_controller: gauge(
                &registry,
                "fjord_active_controller",
                "1 when this broker is the active controller.",
            ),
            raft_term: gauge(
                &registry,
                "fjord_raft_term",
                "Current term of the metadata quorum.",
            ),
            raft_commit_index: gauge(
                &registry,
                "fjord_raft_commit_index",
                "Highest committed metadata log index known here.",
            ),
            raft_applied_index: gauge(
                &registry,
                "fjord_raft_applied_index",
                "Highest metadata log index applied here (commit minus applied is the apply lag).",
            ),
            metadata_write_failing: gauge(
                &registry,
                "fjord_metadata_write_failing",
                "1 while a write of this broker's metadata log, vote or snapshot fails and is \
                 retried (the broker is not ready meanwhile).",
            ),
            metadata_write_failures: counter_vec(
                &registry,
                "fjord_metadata_write_failures_total",
                "Failed attempts at writing this broker's metadata log, vote or snapshot, by \
                 error.",
                &["error"],
            ),
            log_scrub_verified_bytes: counter(
                &registry,
                "fjord_log_scrub_verified_bytes_total",
                "Log bytes the background scrub checked (CRC-32C) and found valid.",
            ),
            log_damage_found: counter_vec(
                &registry,
                "fjord_log_damage_found_total",
                "Damaged places the scrub found in a partition's log.",
                tp,
            ),
            log_open_segment_files: gauge(
                &registry,
                "fjord_log_open_segment_files",
                "Segment files (.log, .index, .timeindex) held open, across all partitions.",
            ),
            fetch_sessions: gauge(
                &registry,
                "fjord_fetch_sessions",
                "Client fetch sessions (KIP-227) cached.",
            ),
            fetch_session_partitions: gauge(
                &registry,
                "fjord_fetch_session_partitions",
                "Partitions held by all cached client fetch sessions.",
            ),
            registry,
        }
    }

    /// Show the metadata writes' health: whether one is failing now, and the failed
    /// attempts so far by error label.
    pub fn observe_metadata_writes(
        &self,
        failing: bool,
        failures: &std::collections::BTreeMap<&'static str, u64>,
    ) {
        self.metadata_write_failing.set(i64::from(failing));
        for (error, total) in failures {
            let counter = self.metadata_write_failures.with_label_values(&[error]);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }

    /// Render every family in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding");
        String::from_utf8(out).expect("prometheus text is UTF-8")
    }

    /// Forget the per-partition series of a deleted topic.
    pub fn forget_partition(&self, topic: &str, partition: i32) {
        let p = partition.to_string();
        for g in [
            &self.log_size_bytes,
            &self.log_end_offset,
            &self.log_start_offset,
        ] {
            let _ = g.remove_label_values(&[topic, &p]);
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
