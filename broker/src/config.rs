//! Broker and topic configuration: one typed, validated struct per scope, with
//! Kafka's names where Kafka has one.
//!
//! Broker settings come from flags or `FJORD_*` environment variables (see
//! `fjord --help`). Topic settings are Kafka topic configs (`retention.ms`, ...),
//! stored as overrides in the cluster metadata; a topic's effective [`LogConfig`] is
//! the broker default overlaid with its overrides. Group settings are Kafka's group
//! configs (`consumer.session.timeout.ms`, ...), stored the same way.

use std::net::SocketAddr;
use std::path::PathBuf;

mod dynamic;
mod group;
pub mod listeners;
pub mod ssl;
mod topic;

pub use dynamic::*;
pub use group::*;
pub use topic::*;

/// Settings of one broker process.
#[derive(Debug, Clone, clap::Args)]
pub struct BrokerConfig {
    /// Directory holding this broker's logs and metadata.
    #[arg(long, env = "FJORD_DATA_DIR", default_value = "./fjord-data")]
    pub data_dir: PathBuf,

    /// The Kafka protocol listeners (listeners): `NAME://host:port`, comma separated;
    /// an empty host binds every interface. Each name has a security protocol in
    /// --listener-security-protocol-map. Unset: the one PLAINTEXT listener of
    /// --kafka-listen.
    #[arg(long, env = "FJORD_LISTENERS")]
    pub listeners: Option<String>,

    /// What clients are told to connect to, per listener (advertised.listeners):
    /// `NAME://host:port`, comma separated. A listener not named here is advertised at
    /// its bind address.
    #[arg(long, env = "FJORD_ADVERTISED_LISTENERS")]
    pub advertised_listeners: Option<String>,

    /// The security protocol of each listener (listener.security.protocol.map):
    /// `NAME:PROTOCOL`, comma separated, with PLAINTEXT, SSL, SASL_PLAINTEXT or
    /// SASL_SSL. Unset: Kafka's default, each protocol's name mapped to itself (a
    /// listener named SSL runs SSL).
    #[arg(long, env = "FJORD_LISTENER_SECURITY_PROTOCOL_MAP")]
    pub listener_security_protocol_map: Option<String>,

    #[command(flatten)]
    pub ssl: ssl::SslConfig,

    /// Shorthand for `--listeners PLAINTEXT://<address>`: the address of a single
    /// PLAINTEXT listener (host:port). Ignored when --listeners is given, so that an
    /// image's FJORD_KAFKA_LISTEN does not stand in the way of named listeners.
    #[arg(long, env = "FJORD_KAFKA_LISTEN", default_value = "127.0.0.1:9092")]
    pub kafka_listen: SocketAddr,

    /// Shorthand for `--advertised-listeners PLAINTEXT://<host:port>` with
    /// --kafka-listen: what clients are told to connect to; defaults to --kafka-listen.
    #[arg(long, env = "FJORD_ADVERTISED_LISTENER", conflicts_with = "listeners")]
    pub advertised_listener: Option<String>,

    /// Address of the HTTP listener serving /metrics, /health and /ready.
    #[arg(long, env = "FJORD_HTTP_LISTEN", default_value = "127.0.0.1:9644")]
    pub http_listen: SocketAddr,

    /// This broker's id (node.id); a data directory belongs to one id.
    #[arg(long, env = "FJORD_NODE_ID", default_value_t = 1)]
    pub node_id: i32,

    /// Rack of this broker (broker.rack), reported to clients.
    #[arg(long, env = "FJORD_RACK")]
    pub rack: Option<String>,

    /// Partitions of a topic created without a count (num.partitions).
    #[arg(long, env = "FJORD_NUM_PARTITIONS", default_value_t = 1)]
    pub num_partitions: i32,

    /// Create a topic when a client asks for metadata of or produces to an unknown
    /// topic (auto.create.topics.enable).
    #[arg(long, env = "FJORD_AUTO_CREATE_TOPICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_create_topics: bool,

    /// Replication factor of a topic created without one (default.replication.factor).
    #[arg(long, env = "FJORD_DEFAULT_REPLICATION_FACTOR", default_value_t = 1)]
    pub default_replication_factor: i16,

    /// Default min.insync.replicas of topics.
    #[arg(long, env = "FJORD_MIN_INSYNC_REPLICAS", default_value_t = 1)]
    pub min_insync_replicas: i32,

    /// Default segment.bytes of topics (log.segment.bytes).
    #[arg(long, env = "FJORD_LOG_SEGMENT_BYTES", default_value_t = 1024 * 1024 * 1024)]
    pub log_segment_bytes: u64,

    /// Default segment.ms of topics (log.roll.ms).
    #[arg(long, env = "FJORD_LOG_ROLL_MS", default_value_t = 7 * 24 * 3600 * 1000)]
    pub log_roll_ms: i64,

    /// Default retention.ms of topics (log.retention.ms); -1 keeps data forever.
    #[arg(long, env = "FJORD_LOG_RETENTION_MS", default_value_t = 7 * 24 * 3600 * 1000)]
    pub log_retention_ms: i64,

    /// Default retention.bytes of topics (log.retention.bytes); -1 means no limit.
    #[arg(long, env = "FJORD_LOG_RETENTION_BYTES", default_value_t = -1)]
    pub log_retention_bytes: i64,

    /// Default flush.messages of topics (log.flush.interval.messages); the default
    /// leaves durability to the OS page cache, with fsync on segment roll and clean
    /// shutdown, as Kafka does.
    #[arg(long, env = "FJORD_LOG_FLUSH_INTERVAL_MESSAGES", default_value_t = i64::MAX)]
    pub log_flush_interval_messages: i64,

    /// Default flush.ms of topics (log.flush.interval.ms).
    #[arg(long, env = "FJORD_LOG_FLUSH_INTERVAL_MS", default_value_t = i64::MAX)]
    pub log_flush_interval_ms: i64,

    /// How often segments are checked for roll, retention and flush.ms
    /// (log.retention.check.interval.ms).
    #[arg(
        long,
        env = "FJORD_LOG_RETENTION_CHECK_INTERVAL_MS",
        default_value_t = 300_000
    )]
    pub log_retention_check_interval_ms: u64,

    /// The most segment files (`.log`, `.index`, `.timeindex`) held open at once across
    /// all partitions (log.open.files.max); others are opened again when read. The
    /// data file of each partition's active segment stays open on top of it, and the
    /// bound shrinks when those take the process's descriptors (RLIMIT_NOFILE, less
    /// 1,024 kept for sockets and the metadata log).
    #[arg(long, env = "FJORD_LOG_OPEN_FILES_MAX", default_value_t = crate::log::handles::DEFAULT_MAX_OPEN_FILES)]
    pub log_open_files_max: usize,

    /// Byte rate of the background scrub that checks the CRC-32C of log data this
    /// broker has not read since it opened it (segments trusted after a clean
    /// shutdown), in the spirit of log.cleaner.io.max.bytes.per.second; 0 turns the
    /// scrub off.
    #[arg(
        long,
        env = "FJORD_LOG_SCRUB_IO_MAX_BYTES_PER_SECOND",
        default_value_t = 16 * 1024 * 1024
    )]
    pub log_scrub_io_max_bytes_per_second: u64,

    /// Forget an idempotent producer whose last batch is older than this
    /// (producer.id.expiration.ms); a returning producer then starts afresh.
    #[arg(
        long,
        env = "FJORD_PRODUCER_ID_EXPIRATION_MS",
        default_value_t = 86_400_000
    )]
    pub producer_id_expiration_ms: i64,

    /// Default max.message.bytes of topics (message.max.bytes): the largest record batch.
    #[arg(long, env = "FJORD_MESSAGE_MAX_BYTES", default_value_t = 1_048_588)]
    pub message_max_bytes: u32,

    /// The largest request frame accepted (socket.request.max.bytes).
    #[arg(
        long,
        env = "FJORD_SOCKET_REQUEST_MAX_BYTES",
        default_value_t = 104_857_600
    )]
    pub socket_request_max_bytes: u32,

    /// The most client connections served at once (max.connections); further
    /// connections are closed at once.
    #[arg(long, env = "FJORD_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Close client connections idle this long (connections.max.idle.ms): no request
    /// begun, or no byte of a request begun, for this long.
    #[arg(long, env = "FJORD_CONNECTIONS_MAX_IDLE_MS", default_value_t = 600_000)]
    pub connections_max_idle_ms: u64,

    /// Bytes of requests being read at once, over all connections
    /// (queued.max.request.bytes). When they are taken, connections wait for room before
    /// reading the rest of a request; a larger request is read alone, and requests of
    /// up to 16 KiB never wait.
    #[arg(
        long,
        env = "FJORD_QUEUED_MAX_REQUEST_BYTES",
        default_value_t = 104_857_600
    )]
    pub queued_max_request_bytes: u64,

    /// Close a connection whose request is not complete this long after its size
    /// arrived, time spent waiting for room in --queued-max-request-bytes included.
    /// The default is clients' request.timeout.ms: past it, the client has given up.
    #[arg(long, env = "FJORD_REQUEST_READ_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_read_timeout_ms: u64,

    /// Upper bound on a produce with acks=all or a fetch's wait (request.timeout.ms
    /// caps what the client asks).
    #[arg(long, env = "FJORD_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,

    /// Client fetch sessions (KIP-227) kept at most
    /// (max.incremental.fetch.session.cache.slots); 0 answers every fetch in full.
    #[arg(
        long,
        env = "FJORD_MAX_INCREMENTAL_FETCH_SESSION_CACHE_SLOTS",
        default_value_t = 1_000
    )]
    pub max_incremental_fetch_session_cache_slots: usize,

    /// Time allowed for a clean shutdown before the process exits anyway.
    #[arg(long, env = "FJORD_SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,

    /// Partitions of the internal `__consumer_offsets` topic when it is created
    /// (offsets.topic.num.partitions); a group's coordinator is partition
    /// abs(hash(group)) % this. An existing topic keeps its count.
    #[arg(long, env = "FJORD_OFFSETS_TOPIC_NUM_PARTITIONS", default_value_t = 50)]
    pub offsets_topic_num_partitions: i32,

    /// Replication factor of the internal `__consumer_offsets` topic when it is created
    /// (offsets.topic.replication.factor), kept apart from --default-replication-factor
    /// as in Kafka. It is capped at the number of metadata quorum voters (--voters, or
    /// this broker alone), so a single broker creates the topic with one replica and a
    /// cluster with three voters with three. Until that many brokers are alive,
    /// FindCoordinator answers COORDINATOR_NOT_AVAILABLE rather than create the topic
    /// with fewer replicas. An existing topic keeps its replicas.
    #[arg(
        long,
        env = "FJORD_OFFSETS_TOPIC_REPLICATION_FACTOR",
        default_value_t = 3
    )]
    pub offsets_topic_replication_factor: i16,

    /// Partitions of the internal `__transaction_state` topic when it is created
    /// (transaction.state.log.num.partitions); a transactional id's coordinator is
    /// partition abs(hash(id)) % this. An existing topic keeps its count.
    #[arg(
        long,
        env = "FJORD_TRANSACTION_STATE_LOG_NUM_PARTITIONS",
        default_value_t = 50
    )]
    pub transaction_state_log_num_partitions: i32,

    /// Replication factor of `__transaction_state` when it is created
    /// (transaction.state.log.replication.factor), capped at the number of metadata
    /// quorum voters as --offsets-topic-replication-factor is.
    #[arg(
        long,
        env = "FJORD_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        default_value_t = 3
    )]
    pub transaction_state_log_replication_factor: i16,

    /// min.insync.replicas of `__transaction_state` (transaction.state.log.min.isr);
    /// a topic with fewer replicas needs all of them.
    #[arg(long, env = "FJORD_TRANSACTION_STATE_LOG_MIN_ISR", default_value_t = 2)]
    pub transaction_state_log_min_isr: i32,

    /// The longest transaction.timeout.ms a producer may ask for
    /// (transaction.max.timeout.ms).
    #[arg(
        long,
        env = "FJORD_TRANSACTION_MAX_TIMEOUT_MS",
        default_value_t = 900_000
    )]
    pub transaction_max_timeout_ms: i32,

    /// A transactional id idle this long is forgotten (transactional.id.expiration.ms).
    #[arg(
        long,
        env = "FJORD_TRANSACTIONAL_ID_EXPIRATION_MS",
        default_value_t = 604_800_000
    )]
    pub transactional_id_expiration_ms: i64,

    /// The shortest session.timeout.ms a group member may ask for
    /// (group.min.session.timeout.ms).
    #[arg(
        long,
        env = "FJORD_GROUP_MIN_SESSION_TIMEOUT_MS",
        default_value_t = 6000
    )]
    pub group_min_session_timeout_ms: i32,

    /// The longest session.timeout.ms a group member may ask for
    /// (group.max.session.timeout.ms).
    #[arg(
        long,
        env = "FJORD_GROUP_MAX_SESSION_TIMEOUT_MS",
        default_value_t = 1_800_000
    )]
    pub group_max_session_timeout_ms: i32,

    /// How long a new group's first rebalance waits for more members
    /// (group.initial.rebalance.delay.ms).
    #[arg(
        long,
        env = "FJORD_GROUP_INITIAL_REBALANCE_DELAY_MS",
        default_value_t = 3000
    )]
    pub group_initial_rebalance_delay_ms: i64,

    /// Committed offsets of a group are removed once it has been empty this long
    /// (offsets.retention.minutes).
    #[arg(long, env = "FJORD_OFFSETS_RETENTION_MINUTES", default_value_t = 10080)]
    pub offsets_retention_minutes: i64,

    /// How often expired offsets are looked for (offsets.retention.check.interval.ms).
    #[arg(
        long,
        env = "FJORD_OFFSETS_RETENTION_CHECK_INTERVAL_MS",
        default_value_t = 600_000
    )]
    pub offsets_retention_check_interval_ms: u64,

    /// The metadata quorum's voters, `id@host:port` of their internal listeners, comma
    /// separated (controller.quorum.voters). Every voter must be started with the same
    /// list. A broker not in the list joins as a learner. Unset: a one-broker cluster
    /// whose only voter is this broker at --internal-listen.
    #[arg(long, env = "FJORD_VOTERS", value_delimiter = ',')]
    pub voters: Vec<Voter>,

    /// Address of the internal gRPC listener (metadata quorum, heartbeats, replication).
    #[arg(long, env = "FJORD_INTERNAL_LISTEN", default_value = "127.0.0.1:9093")]
    pub internal_listen: SocketAddr,

    /// Mutual TLS between brokers on the internal listener (`--internal-ssl-*`).
    #[command(flatten)]
    pub internal_tls: crate::quorum::internal_tls::InternalTlsArgs,

    /// Address other brokers reach this broker's internal listener at (host:port);
    /// defaults to this broker's entry in --voters, else the advertised host with the
    /// --internal-listen port.
    #[arg(long, env = "FJORD_INTERNAL_ADVERTISED")]
    pub internal_advertised: Option<String>,

    /// How often a broker heartbeats to the controller (broker.heartbeat.interval.ms).
    #[arg(
        long,
        env = "FJORD_BROKER_HEARTBEAT_INTERVAL_MS",
        default_value_t = 2_000
    )]
    pub broker_heartbeat_interval_ms: u64,

    /// A broker without a heartbeat this long is fenced and loses its leaderships
    /// (broker.session.timeout.ms).
    #[arg(long, env = "FJORD_BROKER_SESSION_TIMEOUT_MS", default_value_t = 9_000)]
    pub broker_session_timeout_ms: u64,

    /// A follower that has not caught up for this long leaves the ISR
    /// (replica.lag.time.max.ms).
    #[arg(long, env = "FJORD_REPLICA_LAG_TIME_MAX_MS", default_value_t = 30_000)]
    pub replica_lag_time_max_ms: u64,

    /// `/ready/in-sync` answers 200 once this process is back in the ISR of every
    /// partition it replicates, or once this long passed since it was first asked.
    #[arg(
        long,
        env = "FJORD_IN_SYNC_READY_TIMEOUT_MS",
        default_value_t = 120_000
    )]
    pub in_sync_ready_timeout_ms: u64,

    /// Bytes a follower asks for per partition and fetch (replica.fetch.max.bytes).
    #[arg(
        long,
        env = "FJORD_REPLICA_FETCH_MAX_BYTES",
        default_value_t = 1024 * 1024
    )]
    pub replica_fetch_max_bytes: u32,

    /// Bytes of records in one response to a follower broker's fetch, over every
    /// partition it follows on the leader (replica.fetch.response.max.bytes).
    #[arg(
        long,
        env = "FJORD_REPLICA_FETCH_RESPONSE_MAX_BYTES",
        default_value_t = 10 * 1024 * 1024
    )]
    pub replica_fetch_response_max_bytes: u32,

    /// How long a follower fetch waits at the leader for new records
    /// (replica.fetch.wait.max.ms).
    #[arg(long, env = "FJORD_REPLICA_FETCH_WAIT_MAX_MS", default_value_t = 500)]
    pub replica_fetch_wait_max_ms: u64,

    /// Wait after a failed follower fetch (replica.fetch.backoff.ms).
    #[arg(long, env = "FJORD_REPLICA_FETCH_BACKOFF_MS", default_value_t = 1_000)]
    pub replica_fetch_backoff_ms: u64,

    /// Default of the topic config unclean.leader.election.enable: elect a replica
    /// outside the ISR when no ISR member is left, losing acknowledged records.
    #[arg(long, env = "FJORD_UNCLEAN_LEADER_ELECTION_ENABLE", default_value_t = false, action = clap::ArgAction::Set)]
    pub unclean_leader_election_enable: bool,

    /// Move leadership back to the preferred (first) replica when it is in sync
    /// (auto.leader.rebalance.enable).
    #[arg(long, env = "FJORD_AUTO_LEADER_REBALANCE_ENABLE", default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_leader_rebalance_enable: bool,

    /// Metadata log entries between snapshots; older entries are then dropped.
    #[arg(
        long,
        env = "FJORD_METADATA_SNAPSHOT_INTERVAL_ENTRIES",
        default_value_t = 10_000
    )]
    pub metadata_snapshot_interval_entries: u64,

    /// Authorization: `--authorizer`, `--super-users`, `--allow-everyone-if-no-acl-found`.
    #[command(flatten)]
    pub authorizer: crate::auth::acl::AuthorizerConfig,
    /// SASL mechanisms, re-authentication and bootstrap SCRAM credentials.
    #[command(flatten)]
    pub sasl: crate::auth::config::SaslConfig,
}

/// One voter of the metadata quorum: `id@host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub id: i32,
    /// host:port of its internal listener.
    pub address: String,
}

impl std::str::FromStr for Voter {
    type Err = String;

    fn from_str(s: &str) -> Result<Voter, String> {
        let (id, address) = s
            .trim()
            .split_once('@')
            .ok_or_else(|| format!("voter {s:?}: expected id@host:port"))?;
        let id: i32 = id
            .parse()
            .ok()
            .filter(|id| *id >= 0)
            .ok_or_else(|| format!("voter {s:?}: bad id {id:?}"))?;
        parse_host_port(address).map_err(|e| format!("voter {s:?}: {e}"))?;
        Ok(Voter {
            id,
            address: address.to_string(),
        })
    }
}

impl BrokerConfig {
    /// Check relations between settings that the flag parser cannot.
    pub fn validate(&self) -> Result<(), String> {
        self.sasl.validate()?;
        if self.node_id < 0 {
            return Err(format!("--node-id {} must be >= 0", self.node_id));
        }
        if self.num_partitions < 1 {
            return Err(format!(
                "--num-partitions {} must be >= 1",
                self.num_partitions
            ));
        }
        if self.producer_id_expiration_ms < 1 {
            return Err(format!(
                "--producer-id-expiration-ms {} must be >= 1",
                self.producer_id_expiration_ms
            ));
        }
        if self.default_replication_factor < 1 {
            return Err(format!(
                "--default-replication-factor {} must be >= 1",
                self.default_replication_factor
            ));
        }
        if self.offsets_topic_num_partitions < 1 {
            return Err(format!(
                "--offsets-topic-num-partitions {} must be >= 1",
                self.offsets_topic_num_partitions
            ));
        }
        if self.offsets_topic_replication_factor < 1 {
            return Err(format!(
                "--offsets-topic-replication-factor {} must be >= 1",
                self.offsets_topic_replication_factor
            ));
        }
        if self.transaction_state_log_num_partitions < 1
            || self.transaction_state_log_replication_factor < 1
            || self.transaction_state_log_min_isr < 1
        {
            return Err(format!(
                "--transaction-state-log-num-partitions {}, --transaction-state-log-replication-factor {} \
                 and --transaction-state-log-min-isr {} must be >= 1",
                self.transaction_state_log_num_partitions,
                self.transaction_state_log_replication_factor,
                self.transaction_state_log_min_isr
            ));
        }
        if self.transaction_max_timeout_ms < 1 || self.transactional_id_expiration_ms < 1 {
            return Err(format!(
                "--transaction-max-timeout-ms {} and --transactional-id-expiration-ms {} must be >= 1",
                self.transaction_max_timeout_ms, self.transactional_id_expiration_ms
            ));
        }
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return Err(format!(
                "--group-min-session-timeout-ms {} exceeds --group-max-session-timeout-ms {}",
                self.group_min_session_timeout_ms, self.group_max_session_timeout_ms
            ));
        }
        if self.group_initial_rebalance_delay_ms < 0 || self.offsets_retention_minutes < 1 {
            return Err(
                "--group-initial-rebalance-delay-ms must be >= 0 and --offsets-retention-minutes >= 1"
                    .to_string(),
            );
        }
        let mut ids: Vec<i32> = self.voters.iter().map(|v| v.id).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err("--voters names a node id twice".to_string());
        }
        if let Some(addr) = &self.internal_advertised {
            parse_host_port(addr).map_err(|e| format!("--internal-advertised {addr:?}: {e}"))?;
        }
        self.internal_tls.files()?;
        if self.broker_heartbeat_interval_ms == 0
            || self.broker_session_timeout_ms <= self.broker_heartbeat_interval_ms
        {
            return Err(format!(
                "--broker-session-timeout-ms {} must exceed --broker-heartbeat-interval-ms {} (> 0)",
                self.broker_session_timeout_ms, self.broker_heartbeat_interval_ms
            ));
        }
        if self.queued_max_request_bytes == 0 || self.request_read_timeout_ms == 0 {
            return Err(format!(
                "--queued-max-request-bytes {} and --request-read-timeout-ms {} must be >= 1",
                self.queued_max_request_bytes, self.request_read_timeout_ms
            ));
        }
        if self.metadata_snapshot_interval_entries == 0 {
            return Err("--metadata-snapshot-interval-entries must be >= 1".to_string());
        }
        if let Some(addr) = &self.advertised_listener {
            parse_host_port(addr).map_err(|e| format!("--advertised-listener {addr:?}: {e}"))?;
        }
        let listeners = self.listeners().map_err(|e| e.to_string())?;
        self.ssl.validate(&listeners)?;
        // Checking every topic default through the same validator as topic overrides
        // keeps one definition of what a valid value is.
        let defaults = TopicDefaults::from_broker(self);
        for def in TOPIC_CONFIGS {
            (def.validate)(&(def.default)(&defaults))
                .map_err(|e| format!("broker default for {}: {e}", def.name))?;
        }
        Ok(())
    }

    /// The Kafka listeners: --listeners with the protocol map and advertised
    /// listeners, or the single PLAINTEXT listener of --kafka-listen.
    pub fn listeners(&self) -> Result<listeners::Listeners, listeners::ListenerError> {
        let shorthand;
        let advertised_shorthand;
        let (bound, advertised) = match &self.listeners {
            Some(l) => (l.as_str(), self.advertised_listeners.as_deref()),
            None => {
                shorthand = format!("PLAINTEXT://{}", self.kafka_listen);
                advertised_shorthand = self
                    .advertised_listener
                    .as_ref()
                    .map(|a| format!("PLAINTEXT://{a}"));
                (
                    shorthand.as_str(),
                    advertised_shorthand
                        .as_deref()
                        .or(self.advertised_listeners.as_deref()),
                )
            }
        };
        listeners::resolve(&listeners::ListenerSettings {
            listeners: bound,
            advertised: advertised.unwrap_or(""),
            protocol_map: self.listener_security_protocol_map.as_deref().unwrap_or(""),
        })
    }

    /// The (host, port) clients are told to connect to on the first listener.
    pub fn advertised(&self) -> (String, i32) {
        let listeners = self.listeners().expect("validated at startup");
        let first = listeners.first();
        (
            first.advertised_host.clone(),
            i32::from(first.advertised_port),
        )
    }
    /// The voters of the metadata quorum: --voters, or this broker alone.
    pub fn quorum_voters(&self) -> Vec<Voter> {
        if self.voters.is_empty() {
            vec![Voter {
                id: self.node_id,
                address: self.internal_address(),
            }]
        } else {
            self.voters.clone()
        }
    }

    /// host:port other brokers reach this broker's internal listener at.
    pub fn internal_address(&self) -> String {
        if let Some(a) = &self.internal_advertised {
            return a.clone();
        }
        if let Some(v) = self.voters.iter().find(|v| v.id == self.node_id) {
            return v.address.clone();
        }
        let ip = self.internal_listen.ip();
        let host = if ip.is_unspecified() {
            self.advertised().0
        } else {
            ip.to_string()
        };
        format!("{host}:{}", self.internal_listen.port())
    }

    /// Is this broker a voter of the metadata quorum (else a learner)?
    pub fn is_voter(&self) -> bool {
        self.quorum_voters().iter().any(|v| v.id == self.node_id)
    }
}

fn parse_host_port(s: &str) -> Result<(String, i32), String> {
    let (host, port) = s.rsplit_once(':').ok_or("expected host:port")?;
    let port: u16 = port.parse().map_err(|_| format!("bad port {port:?}"))?;
    if host.is_empty() {
        return Err("empty host".into());
    }
    Ok((
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        i32::from(port),
    ))
}

#[cfg(test)]
mod tests;
