//! Topic configs: every topic-level config of Kafka 4.x, with Kafka's names, types,
//! defaults and validation, so tools that copy a topic's configs from a Kafka cluster
//! work unchanged. The ones Fjord acts on feed [`LogConfig`] and the replication rules;
//! the rest are stored, described with their source, and documented as without effect.

use std::collections::BTreeMap;

use super::BrokerConfig;
use crate::log::codec::Compression;
use crate::log::recompress::TopicCodec;
use crate::log::{CleanupPolicy, LogConfig, TimestampType};

/// Broker-level defaults that topic configs inherit.
#[derive(Debug, Clone)]
pub struct TopicDefaults {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub flush_messages: i64,
    pub flush_ms: i64,
    pub max_message_bytes: u32,
    pub min_insync_replicas: i32,
    pub unclean_leader_election: bool,
    /// A broker setting in Kafka too, not a topic config; carried into every LogConfig.
    pub producer_id_expiration_ms: i64,
}

impl TopicDefaults {
    pub fn from_broker(c: &BrokerConfig) -> Self {
        TopicDefaults {
            segment_bytes: c.log_segment_bytes,
            segment_ms: c.log_roll_ms,
            retention_ms: c.log_retention_ms,
            retention_bytes: c.log_retention_bytes,
            flush_messages: c.log_flush_interval_messages,
            flush_ms: c.log_flush_interval_ms,
            max_message_bytes: c.message_max_bytes,
            min_insync_replicas: c.min_insync_replicas,
            unclean_leader_election: c.unclean_leader_election_enable,
            producer_id_expiration_ms: c.producer_id_expiration_ms,
        }
    }
}

/// The Kafka config type reported by DescribeConfigs v3+ (`ConfigType` in Kafka).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
}

/// One topic config of Kafka 4.x: its name, type, how its default derives from the
/// broker, its validator, the broker property its default comes from (the synonym
/// DescribeConfigs reports), and whether Fjord acts on it.
pub struct TopicConfigDef {
    pub name: &'static str,
    pub config_type: ConfigType,
    pub doc: &'static str,
    pub default: fn(&TopicDefaults) -> String,
    pub validate: fn(&str) -> Result<(), String>,
    /// Kafka's broker-level property that supplies the default, where Kafka has one.
    pub broker_property: Option<&'static str>,
    /// False for configs accepted and stored for compatibility that change nothing in
    /// Fjord (tiered storage, preallocation, ...); their documentation says so.
    pub applied: bool,
}

impl TopicConfigDef {
    /// The documentation DescribeConfigs returns.
    pub fn documentation(&self) -> String {
        if self.applied {
            self.doc.to_string()
        } else {
            format!(
                "{} Accepted and stored for compatibility; Fjord does not act on it.",
                self.doc
            )
        }
    }
}

pub(super) fn long_at_least(min: i64) -> impl Fn(&str) -> Result<(), String> {
    move |v: &str| match v.trim().parse::<i64>() {
        Ok(n) if n >= min => Ok(()),
        Ok(n) => Err(format!("{n} is below the minimum {min}")),
        Err(_) => Err(format!("{v:?} is not a whole number")),
    }
}

macro_rules! at_least {
    ($min:expr) => {
        |v: &str| long_at_least($min)(v)
    };
}

/// A double in `[min, max]` (Kafka's Range.between for DOUBLE configs).
fn double_range(v: &str, min: f64, max: f64) -> Result<(), String> {
    match v.trim().parse::<f64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(()),
        Ok(n) => Err(format!("{n} is not between {min} and {max}")),
        Err(_) => Err(format!("{v:?} is not a number")),
    }
}

pub(super) fn int_range(v: &str, min: i64, max: i64) -> Result<(), String> {
    long_at_least(min)(v)?;
    let n: i64 = v
        .trim()
        .parse()
        .map_err(|_| format!("{v:?} is not a whole number"))?;
    if n > max {
        return Err(format!("{n} is above the maximum {max}"));
    }
    Ok(())
}

pub(super) fn boolean(v: &str) -> Result<(), String> {
    match v.trim() {
        "true" | "false" => Ok(()),
        other => Err(format!("{other:?} is not true or false")),
    }
}

/// Kafka's throttled-replicas list: empty, `*`, or `partition:broker` pairs.
fn throttled_replicas(v: &str) -> Result<(), String> {
    let v = v.trim();
    if v.is_empty() || v == "*" {
        return Ok(());
    }
    for pair in v.split(',') {
        let ok = pair.trim().split_once(':').is_some_and(|(p, b)| {
            p.trim().parse::<u32>().is_ok() && b.trim().parse::<u32>().is_ok()
        });
        if !ok {
            return Err(format!(
                "{pair:?} is not partitionId:brokerId (the list is `*` or pairs separated by commas)"
            ));
        }
    }
    Ok(())
}

/// The codecs a topic may store batches in; `producer` keeps the producer's.
pub const COMPRESSION_TYPES: [&str; 6] =
    ["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];

/// Every topic config of Kafka 4.x, by name. Anything else is refused with
/// INVALID_CONFIG so a typo never silently does nothing.
pub static TOPIC_CONFIGS: &[TopicConfigDef] = &[
    TopicConfigDef {
        name: "cleanup.policy",
        config_type: ConfigType::List,
        doc: "How old data is discarded, a list: delete (segments past retention.ms / \
              retention.bytes), compact (keep the latest record per key), or both.",
        default: |_| "delete".into(),
        validate: |v| CleanupPolicy::parse(v).map(|_| ()),
        broker_property: Some("log.cleanup.policy"),
        applied: true,
    },
    TopicConfigDef {
        name: "compression.gzip.level",
        config_type: ConfigType::Int,
        doc: "The gzip level when compression.type is gzip: 1 to 9, or -1 for the codec's default.",
        default: |_| "-1".into(),
        validate: |v| {
            if v.trim() == "-1" {
                Ok(())
            } else {
                int_range(v, 1, 9)
            }
        },
        broker_property: Some("compression.gzip.level"),
        applied: true,
    },
    TopicConfigDef {
        name: "compression.lz4.level",
        config_type: ConfigType::Int,
        doc: "The lz4 level when compression.type is lz4: 1 to 17.",
        default: |_| "9".into(),
        validate: |v| int_range(v, 1, 17),
        broker_property: Some("compression.lz4.level"),
        applied: false,
    },
    TopicConfigDef {
        name: "compression.type",
        config_type: ConfigType::String,
        doc: "The codec batches are stored in: uncompressed, zstd, lz4, snappy, gzip, or \
              producer (as the producer compressed them). A batch in another codec is \
              recompressed when it is appended.",
        default: |_| "producer".into(),
        validate: |v| {
            let v = v.trim();
            if COMPRESSION_TYPES.contains(&v) {
                Ok(())
            } else {
                Err(format!(
                    "{v:?} is not one of {}",
                    COMPRESSION_TYPES.join(", ")
                ))
            }
        },
        broker_property: Some("compression.type"),
        applied: true,
    },
    TopicConfigDef {
        name: "compression.zstd.level",
        config_type: ConfigType::Int,
        doc: "The zstd level when compression.type is zstd: -131072 to 22.",
        default: |_| "3".into(),
        validate: |v| int_range(v, -131_072, 22),
        broker_property: Some("compression.zstd.level"),
        applied: true,
    },
    TopicConfigDef {
        name: "delete.retention.ms",
        config_type: ConfigType::Long,
        doc: "How long a tombstone stays readable on a compacted topic after the cleaning \
              that first saw it.",
        default: |_| "86400000".into(),
        validate: at_least!(0),
        broker_property: Some("log.cleaner.delete.retention.ms"),
        applied: true,
    },
    TopicConfigDef {
        name: "errors.deadletterqueue.group.enable",
        config_type: ConfigType::Boolean,
        doc: "Whether share groups may write undeliverable records to a dead-letter topic.",
        default: |_| "false".into(),
        validate: boolean,
        broker_property: None,
        applied: false,
    },
    TopicConfigDef {
        name: "file.delete.delay.ms",
        config_type: ConfigType::Long,
        doc: "How long a deleted segment's files are kept before removal.",
        default: |_| "60000".into(),
        validate: at_least!(0),
        broker_property: Some("log.segment.delete.delay.ms"),
        applied: false,
    },
    TopicConfigDef {
        name: "flush.messages",
        config_type: ConfigType::Long,
        doc: "fsync the log after this many messages.",
        default: |d| d.flush_messages.to_string(),
        validate: at_least!(1),
        broker_property: Some("log.flush.interval.messages"),
        applied: true,
    },
    TopicConfigDef {
        name: "flush.ms",
        config_type: ConfigType::Long,
        doc: "fsync the log when unflushed data is this old.",
        default: |d| d.flush_ms.to_string(),
        validate: at_least!(0),
        broker_property: Some("log.flush.interval.ms"),
        applied: true,
    },
    TopicConfigDef {
        name: "follower.replication.throttled.replicas",
        config_type: ConfigType::List,
        doc: "Replicas whose follower-side replication is throttled: `*` or \
              partitionId:brokerId pairs; the broker named fetches them within its \
              follower.replication.throttled.rate while they are out of the ISR.",
        default: |_| String::new(),
        validate: throttled_replicas,
        broker_property: None,
        applied: true,
    },
    TopicConfigDef {
        name: "index.interval.bytes",
        config_type: ConfigType::Int,
        doc: "Bytes between two entries of the sparse offset index.",
        default: |_| "4096".into(),
        validate: |v| int_range(v, 0, i64::from(i32::MAX)),
        broker_property: Some("log.index.interval.bytes"),
        applied: true,
    },
    TopicConfigDef {
        name: "leader.replication.throttled.replicas",
        config_type: ConfigType::List,
        doc: "Replicas whose leader-side replication is throttled: `*` or \
              partitionId:brokerId pairs; the broker named, leading, sends to followers \
              out of the ISR within its leader.replication.throttled.rate.",
        default: |_| String::new(),
        validate: throttled_replicas,
        broker_property: None,
        applied: true,
    },
    TopicConfigDef {
        name: "local.retention.bytes",
        config_type: ConfigType::Long,
        doc: "With tiered storage, the local share of retention.bytes; -2 means retention.bytes.",
        default: |_| "-2".into(),
        validate: at_least!(-2),
        broker_property: Some("log.local.retention.bytes"),
        applied: false,
    },
    TopicConfigDef {
        name: "local.retention.ms",
        config_type: ConfigType::Long,
        doc: "With tiered storage, the local share of retention.ms; -2 means retention.ms.",
        default: |_| "-2".into(),
        validate: at_least!(-2),
        broker_property: Some("log.local.retention.ms"),
        applied: false,
    },
    TopicConfigDef {
        name: "max.compaction.lag.ms",
        config_type: ConfigType::Long,
        doc: "The longest a record may stay uncompacted, whatever the dirty ratio.",
        default: |_| i64::MAX.to_string(),
        validate: at_least!(1),
        broker_property: Some("log.cleaner.max.compaction.lag.ms"),
        applied: true,
    },
    TopicConfigDef {
        name: "max.decompressed.message.bytes",
        config_type: ConfigType::Int,
        doc: "The largest a compressed batch may grow when decompressed.",
        default: |_| "2147483639".into(),
        validate: |v| int_range(v, 1, 2_147_483_639),
        broker_property: Some("max.decompressed.message.bytes"),
        applied: false,
    },
    TopicConfigDef {
        name: "max.message.bytes",
        config_type: ConfigType::Int,
        doc: "The largest record batch accepted.",
        default: |d| d.max_message_bytes.to_string(),
        validate: |v| int_range(v, 0, i64::from(i32::MAX)),
        broker_property: Some("message.max.bytes"),
        applied: true,
    },
    TopicConfigDef {
        name: "message.timestamp.after.max.ms",
        config_type: ConfigType::Long,
        doc: "How far ahead of the broker's clock a CreateTime record timestamp may be; \
              a record further ahead is refused with INVALID_TIMESTAMP.",
        default: |_| "3600000".into(),
        validate: at_least!(0),
        broker_property: Some("log.message.timestamp.after.max.ms"),
        applied: true,
    },
    TopicConfigDef {
        name: "message.timestamp.before.max.ms",
        config_type: ConfigType::Long,
        doc: "How far behind the broker's clock a CreateTime record timestamp may be; \
              a record further behind is refused with INVALID_TIMESTAMP.",
        default: |_| i64::MAX.to_string(),
        validate: at_least!(0),
        broker_property: Some("log.message.timestamp.before.max.ms"),
        applied: true,
    },
    TopicConfigDef {
        name: "message.timestamp.type",
        config_type: ConfigType::String,
        doc: "CreateTime keeps the producer's timestamps; LogAppendTime stamps the append time.",
        default: |_| "CreateTime".into(),
        validate: |v| match v.trim() {
            "CreateTime" | "LogAppendTime" => Ok(()),
            other => Err(format!("{other:?} is not CreateTime or LogAppendTime")),
        },
        broker_property: Some("log.message.timestamp.type"),
        applied: true,
    },
    TopicConfigDef {
        name: "min.cleanable.dirty.ratio",
        config_type: ConfigType::Double,
        doc: "Compact once the uncompacted part of the log exceeds this share of it.",
        default: |_| "0.5".into(),
        validate: |v| double_range(v, 0.0, 1.0),
        broker_property: Some("log.cleaner.min.cleanable.ratio"),
        applied: true,
    },
    TopicConfigDef {
        name: "min.compaction.lag.ms",
        config_type: ConfigType::Long,
        doc: "Records newer than this are never compacted.",
        default: |_| "0".into(),
        validate: at_least!(0),
        broker_property: Some("log.cleaner.min.compaction.lag.ms"),
        applied: true,
    },
    TopicConfigDef {
        name: "min.insync.replicas",
        config_type: ConfigType::Int,
        doc: "Replicas that must hold a batch before an acks=all produce succeeds.",
        default: |d| d.min_insync_replicas.to_string(),
        validate: |v| int_range(v, 1, i64::from(i32::MAX)),
        broker_property: Some("min.insync.replicas"),
        applied: true,
    },
    TopicConfigDef {
        name: "preallocate",
        config_type: ConfigType::Boolean,
        doc: "Preallocate segment files on disk when they are created.",
        default: |_| "false".into(),
        validate: boolean,
        broker_property: Some("log.preallocate"),
        applied: false,
    },
    TopicConfigDef {
        name: "remote.copy.lag.bytes",
        config_type: ConfigType::Long,
        doc: "With tiered storage, bytes a segment may wait before it is copied; -1 for none.",
        default: |_| "-1".into(),
        validate: at_least!(-1),
        broker_property: Some("log.remote.copy.lag.bytes"),
        applied: false,
    },
    TopicConfigDef {
        name: "remote.copy.lag.ms",
        config_type: ConfigType::Long,
        doc: "With tiered storage, how long a segment may wait before it is copied.",
        default: |_| "0".into(),
        validate: at_least!(-1),
        broker_property: Some("log.remote.copy.lag.ms"),
        applied: false,
    },
    TopicConfigDef {
        name: "remote.log.copy.disable",
        config_type: ConfigType::Boolean,
        doc: "With tiered storage, stop copying segments to remote storage.",
        default: |_| "false".into(),
        validate: boolean,
        broker_property: None,
        applied: false,
    },
    TopicConfigDef {
        name: "remote.log.delete.on.disable",
        config_type: ConfigType::Boolean,
        doc: "With tiered storage, delete remote data when tiering is turned off.",
        default: |_| "false".into(),
        validate: boolean,
        broker_property: None,
        applied: false,
    },
    TopicConfigDef {
        name: "remote.storage.enable",
        config_type: ConfigType::Boolean,
        doc: "Tier the topic's old segments to remote storage.",
        default: |_| "false".into(),
        // Kafka refuses this on a broker without tiered storage; Fjord has none.
        validate: |v| match v.trim() {
            "false" => Ok(()),
            "true" => Err("tiered storage is not available on this broker".into()),
            other => Err(format!("{other:?} is not true or false")),
        },
        broker_property: None,
        applied: false,
    },
    TopicConfigDef {
        name: "retention.bytes",
        config_type: ConfigType::Long,
        doc: "Delete the oldest segments while the partition is larger; -1 means no limit.",
        default: |d| d.retention_bytes.to_string(),
        validate: at_least!(-1),
        broker_property: Some("log.retention.bytes"),
        applied: true,
    },
    TopicConfigDef {
        name: "retention.ms",
        config_type: ConfigType::Long,
        doc: "Delete segments whose newest record is older; -1 keeps data forever.",
        default: |d| d.retention_ms.to_string(),
        validate: at_least!(-1),
        broker_property: Some("log.retention.ms"),
        applied: true,
    },
    TopicConfigDef {
        name: "segment.bytes",
        config_type: ConfigType::Int,
        doc: "Roll a new segment file at this size.",
        default: |d| d.segment_bytes.to_string(),
        // Kafka's floor is 1 MiB; a lower floor keeps tests of rolling cheap.
        validate: |v| int_range(v, 1024, i64::from(i32::MAX)),
        broker_property: Some("log.segment.bytes"),
        applied: true,
    },
    TopicConfigDef {
        name: "segment.index.bytes",
        config_type: ConfigType::Int,
        doc: "The largest offset or time index file; a full index rolls the segment.",
        default: |_| "10485760".into(),
        validate: |v| int_range(v, 4096, i64::from(i32::MAX)),
        broker_property: Some("log.index.size.max.bytes"),
        applied: true,
    },
    TopicConfigDef {
        name: "segment.jitter.ms",
        config_type: ConfigType::Long,
        doc: "A random amount up to this subtracted from segment.ms, so segments do not \
              all roll at once.",
        default: |_| "0".into(),
        validate: at_least!(0),
        broker_property: Some("log.roll.jitter.ms"),
        applied: false,
    },
    TopicConfigDef {
        name: "segment.ms",
        config_type: ConfigType::Long,
        doc: "Roll a new segment when the active one is this old.",
        default: |d| d.segment_ms.to_string(),
        validate: at_least!(1),
        broker_property: Some("log.roll.ms"),
        applied: true,
    },
    TopicConfigDef {
        name: "unclean.leader.election.enable",
        config_type: ConfigType::Boolean,
        doc: "Allow an out-of-sync replica to become leader (may lose data).",
        default: |d| d.unclean_leader_election.to_string(),
        validate: boolean,
        broker_property: Some("unclean.leader.election.enable"),
        applied: true,
    },
];

pub fn topic_config_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Check one topic config override, with a message that names the config.
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), String> {
    let def = topic_config_def(name).ok_or_else(|| format!("unknown topic config {name:?}"))?;
    (def.validate)(value).map_err(|e| format!("invalid value for {name}: {e}"))
}

/// The effective value of a topic config: the override if set, else the broker default.
pub fn effective_topic_config(
    name: &str,
    overrides: &BTreeMap<String, String>,
    defaults: &TopicDefaults,
) -> Option<String> {
    let def = topic_config_def(name)?;
    Some(
        overrides
            .get(name)
            .cloned()
            .unwrap_or_else(|| (def.default)(defaults)),
    )
}

/// A topic's `min.insync.replicas` from its (validated) overrides, at least 1.
pub fn min_insync_replicas(
    overrides: &BTreeMap<String, String>,
    defaults: &TopicDefaults,
) -> usize {
    effective_topic_config("min.insync.replicas", overrides, defaults)
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(1)
        .max(1)
}

/// The storage settings of a topic from its (validated) overrides.
pub fn log_config(overrides: &BTreeMap<String, String>, defaults: &TopicDefaults) -> LogConfig {
    let get = |name: &str| effective_topic_config(name, overrides, defaults).unwrap_or_default();
    let num = |name: &str| get(name).trim().parse::<i64>().unwrap_or(0);
    LogConfig {
        segment_bytes: num("segment.bytes") as u64,
        segment_ms: num("segment.ms"),
        segment_index_bytes: num("segment.index.bytes") as u64,
        index_interval_bytes: num("index.interval.bytes") as u64,
        retention_ms: num("retention.ms"),
        retention_bytes: num("retention.bytes"),
        flush_messages: num("flush.messages"),
        flush_ms: num("flush.ms"),
        max_message_bytes: num("max.message.bytes") as u32,
        timestamp_type: if get("message.timestamp.type").trim() == "LogAppendTime" {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        },
        cleanup_policy: CleanupPolicy::parse(&get("cleanup.policy"))
            .unwrap_or(CleanupPolicy::DELETE),
        delete_retention_ms: num("delete.retention.ms"),
        min_compaction_lag_ms: num("min.compaction.lag.ms"),
        max_compaction_lag_ms: num("max.compaction.lag.ms"),
        min_cleanable_dirty_ratio: get("min.cleanable.dirty.ratio")
            .trim()
            .parse()
            .unwrap_or(0.5),
        producer_id_expiration_ms: defaults.producer_id_expiration_ms,
        timestamp_before_max_ms: num("message.timestamp.before.max.ms"),
        timestamp_after_max_ms: num("message.timestamp.after.max.ms"),
        compression: topic_codec(&get("compression.type"), &get),
    }
}

/// `compression.type` with its level; `None` for `producer` (batches stored as sent).
fn topic_codec(compression_type: &str, get: &dyn Fn(&str) -> String) -> Option<TopicCodec> {
    let level = |name: &str| get(name).trim().parse::<i32>().ok();
    let (compression, level) = match compression_type.trim() {
        "uncompressed" => (Compression::None, None),
        "gzip" => (Compression::Gzip, level("compression.gzip.level")),
        "snappy" => (Compression::Snappy, None),
        // Fjord's lz4 encoder has one level: compression.lz4.level is stored only.
        "lz4" => (Compression::Lz4, None),
        "zstd" => (Compression::Zstd, level("compression.zstd.level")),
        _ => return None,
    };
    Some(TopicCodec { compression, level })
}
