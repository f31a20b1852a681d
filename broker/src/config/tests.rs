use super::*;
use clap::Parser;
use std::collections::BTreeMap;

use crate::log::{CleanupPolicy, LogConfig, TimestampType};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    broker: BrokerConfig,
}

fn defaults() -> TopicDefaults {
    TopicDefaults::from_broker(&Cli::parse_from(["fjord"]).broker)
}

#[test]
fn voters_parse_and_name_this_brokers_internal_address() {
    let c = Cli::parse_from([
        "fjord",
        "--node-id",
        "2",
        "--voters",
        "1@a.svc:9093,2@b.svc:9093,3@c.svc:9093",
        "--internal-listen",
        "0.0.0.0:9093",
    ])
    .broker;
    c.validate().unwrap();
    assert_eq!(c.quorum_voters().len(), 3);
    assert!(c.is_voter());
    assert_eq!(c.internal_address(), "b.svc:9093");
    // Without --voters: a quorum of this broker alone at its internal listener.
    let single = Cli::parse_from(["fjord", "--internal-listen", "127.0.0.5:9999"]).broker;
    assert_eq!(
        single.quorum_voters(),
        vec![Voter {
            id: 1,
            address: "127.0.0.5:9999".into()
        }]
    );
    // A learner advertises its host with the internal port.
    let learner = Cli::parse_from([
        "fjord",
        "--node-id",
        "7",
        "--voters",
        "1@a:9093",
        "--advertised-listener",
        "seven.svc:9092",
        "--internal-listen",
        "0.0.0.0:9093",
    ])
    .broker;
    assert!(!learner.is_voter());
    assert_eq!(learner.internal_address(), "seven.svc:9093");
    for bad in ["x@a:1", "1a:1", "1@nohost", "-1@a:1"] {
        assert!(bad.parse::<Voter>().is_err(), "{bad}");
    }
    let twice = Cli::parse_from(["fjord", "--voters", "1@a:1,1@b:2"]).broker;
    assert!(twice.validate().is_err());
}

#[test]
fn defaults_are_kafkas() {
    let c = Cli::parse_from(["fjord"]).broker;
    c.validate().unwrap();
    assert_eq!(
        c.listeners().unwrap().first().bind_address(),
        "127.0.0.1:9092"
    );
    assert_eq!(c.advertised(), ("127.0.0.1".to_string(), 9092));
    let lc = log_config(&BTreeMap::new(), &defaults());
    assert_eq!(lc, LogConfig::default());
}

#[test]
fn overrides_win_and_bad_values_are_named() {
    let mut o = BTreeMap::new();
    o.insert("retention.ms".to_string(), "1000".to_string());
    o.insert(
        "message.timestamp.type".to_string(),
        "LogAppendTime".to_string(),
    );
    let lc = log_config(&o, &defaults());
    assert_eq!(lc.retention_ms, 1000);
    assert_eq!(lc.timestamp_type, TimestampType::LogAppendTime);
    let err = validate_topic_config("retention.ms", "-5").unwrap_err();
    assert!(err.contains("retention.ms") && err.contains("-1"), "{err}");
    assert!(validate_topic_config("retention.msx", "1")
        .unwrap_err()
        .contains("unknown"));
    assert!(validate_topic_config("segment.bytes", "abc").is_err());
}

#[test]
fn cleanup_policy_is_a_list_of_delete_and_compact() {
    let policy = |v: &str| {
        let mut o = BTreeMap::new();
        o.insert("cleanup.policy".to_string(), v.to_string());
        validate_topic_config("cleanup.policy", v)?;
        Ok::<_, String>(log_config(&o, &defaults()).cleanup_policy)
    };
    assert_eq!(policy("delete").unwrap(), CleanupPolicy::DELETE);
    assert_eq!(policy("compact").unwrap(), CleanupPolicy::COMPACT);
    let both = CleanupPolicy {
        delete: true,
        compact: true,
    };
    assert_eq!(policy("compact,delete").unwrap(), both);
    assert_eq!(policy("delete, compact").unwrap(), both);
    for bad in ["", "compacted", "delete,", "delete;compact"] {
        let err = policy(bad).unwrap_err();
        assert!(err.contains("cleanup.policy"), "{bad:?}: {err}");
    }
}

#[test]
fn compaction_configs_have_kafkas_names_defaults_and_ranges() {
    let d = defaults();
    let default_of = |name: &str| effective_topic_config(name, &BTreeMap::new(), &d).unwrap();
    assert_eq!(default_of("delete.retention.ms"), "86400000");
    assert_eq!(default_of("min.compaction.lag.ms"), "0");
    assert_eq!(default_of("max.compaction.lag.ms"), i64::MAX.to_string());
    assert_eq!(default_of("min.cleanable.dirty.ratio"), "0.5");
    assert_eq!(
        topic_config_def("min.cleanable.dirty.ratio")
            .unwrap()
            .config_type as i8,
        6
    );
    for (name, good, bad) in [
        ("delete.retention.ms", "0", "-1"),
        ("min.compaction.lag.ms", "0", "-1"),
        ("max.compaction.lag.ms", "1", "0"),
        ("min.cleanable.dirty.ratio", "1", "1.01"),
        ("min.cleanable.dirty.ratio", "0", "-0.1"),
        ("min.cleanable.dirty.ratio", "0.25", "half"),
    ] {
        validate_topic_config(name, good).unwrap();
        let err = validate_topic_config(name, bad).unwrap_err();
        assert!(err.contains(name), "{name}={bad}: {err}");
    }
    let mut o = BTreeMap::new();
    for (k, v) in [
        ("cleanup.policy", "compact"),
        ("delete.retention.ms", "1000"),
        ("min.compaction.lag.ms", "2000"),
        ("max.compaction.lag.ms", "3000"),
        ("min.cleanable.dirty.ratio", "0.1"),
    ] {
        o.insert(k.to_string(), v.to_string());
    }
    let lc = log_config(&o, &d);
    assert_eq!(lc.cleanup_policy, CleanupPolicy::COMPACT);
    assert_eq!(
        (
            lc.delete_retention_ms,
            lc.min_compaction_lag_ms,
            lc.max_compaction_lag_ms
        ),
        (1000, 2000, 3000)
    );
    assert_eq!(lc.min_cleanable_dirty_ratio, 0.1);
}

#[test]
fn producer_id_expiration_is_a_broker_setting() {
    let c = Cli::parse_from(["fjord", "--producer-id-expiration-ms", "60000"]).broker;
    c.validate().unwrap();
    let lc = log_config(&BTreeMap::new(), &TopicDefaults::from_broker(&c));
    assert_eq!(lc.producer_id_expiration_ms, 60_000);
    assert!(topic_config_def("producer.id.expiration.ms").is_none());
    let bad = Cli::parse_from(["fjord", "--producer-id-expiration-ms", "0"]).broker;
    assert!(bad.validate().is_err());
}

#[test]
fn offsets_topic_replication_factor_is_kafkas_and_checked() {
    let c = Cli::parse_from(["fjord"]).broker;
    assert_eq!(c.offsets_topic_replication_factor, 3);
    let bad = Cli::parse_from(["fjord", "--offsets-topic-replication-factor", "0"]).broker;
    assert_eq!(
        bad.validate().unwrap_err(),
        "--offsets-topic-replication-factor 0 must be >= 1"
    );
}

#[test]
fn advertised_listener_is_checked() {
    let c = Cli::parse_from(["fjord", "--advertised-listener", "broker-0.fjord:9092"]).broker;
    c.validate().unwrap();
    assert_eq!(c.advertised(), ("broker-0.fjord".to_string(), 9092));
    let bad = Cli::parse_from(["fjord", "--advertised-listener", "nohostport"]).broker;
    assert!(bad.validate().is_err());
}

/// Kafka 4.4's topic configs (LogConfig's definitions, internal ones left out): name,
/// type and default.
const KAFKA_TOPIC_CONFIGS: &[(&str, ConfigType, &str)] = &[
    ("cleanup.policy", ConfigType::List, "delete"),
    ("compression.gzip.level", ConfigType::Int, "-1"),
    ("compression.lz4.level", ConfigType::Int, "9"),
    ("compression.type", ConfigType::String, "producer"),
    ("compression.zstd.level", ConfigType::Int, "3"),
    ("delete.retention.ms", ConfigType::Long, "86400000"),
    (
        "errors.deadletterqueue.group.enable",
        ConfigType::Boolean,
        "false",
    ),
    ("file.delete.delay.ms", ConfigType::Long, "60000"),
    ("flush.messages", ConfigType::Long, "9223372036854775807"),
    ("flush.ms", ConfigType::Long, "9223372036854775807"),
    (
        "follower.replication.throttled.replicas",
        ConfigType::List,
        "",
    ),
    ("index.interval.bytes", ConfigType::Int, "4096"),
    (
        "leader.replication.throttled.replicas",
        ConfigType::List,
        "",
    ),
    ("local.retention.bytes", ConfigType::Long, "-2"),
    ("local.retention.ms", ConfigType::Long, "-2"),
    (
        "max.compaction.lag.ms",
        ConfigType::Long,
        "9223372036854775807",
    ),
    (
        "max.decompressed.message.bytes",
        ConfigType::Int,
        "2147483639",
    ),
    ("max.message.bytes", ConfigType::Int, "1048588"),
    (
        "message.timestamp.after.max.ms",
        ConfigType::Long,
        "3600000",
    ),
    (
        "message.timestamp.before.max.ms",
        ConfigType::Long,
        "9223372036854775807",
    ),
    ("message.timestamp.type", ConfigType::String, "CreateTime"),
    ("min.cleanable.dirty.ratio", ConfigType::Double, "0.5"),
    ("min.compaction.lag.ms", ConfigType::Long, "0"),
    ("min.insync.replicas", ConfigType::Int, "1"),
    ("preallocate", ConfigType::Boolean, "false"),
    ("remote.copy.lag.bytes", ConfigType::Long, "-1"),
    ("remote.copy.lag.ms", ConfigType::Long, "0"),
    ("remote.log.copy.disable", ConfigType::Boolean, "false"),
    ("remote.log.delete.on.disable", ConfigType::Boolean, "false"),
    ("remote.storage.enable", ConfigType::Boolean, "false"),
    ("retention.bytes", ConfigType::Long, "-1"),
    ("retention.ms", ConfigType::Long, "604800000"),
    ("segment.bytes", ConfigType::Int, "1073741824"),
    ("segment.index.bytes", ConfigType::Int, "10485760"),
    ("segment.jitter.ms", ConfigType::Long, "0"),
    ("segment.ms", ConfigType::Long, "604800000"),
    (
        "unclean.leader.election.enable",
        ConfigType::Boolean,
        "false",
    ),
];

#[test]
fn every_kafka_topic_config_is_known_with_kafkas_type_and_default() {
    let d = defaults();
    for (name, config_type, default) in KAFKA_TOPIC_CONFIGS {
        let def = topic_config_def(name).unwrap_or_else(|| panic!("{name} is not known"));
        assert_eq!(def.config_type, *config_type, "{name}");
        assert_eq!(&(def.default)(&d), default, "{name}");
        validate_topic_config(name, default).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert_eq!(TOPIC_CONFIGS.len(), KAFKA_TOPIC_CONFIGS.len());
    let names: Vec<&str> = TOPIC_CONFIGS.iter().map(|d| d.name).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "TOPIC_CONFIGS is kept in name order");
}

#[test]
fn configs_without_effect_are_accepted_validated_and_documented_as_such() {
    for (name, good, bad) in [
        ("compression.type", "lz4", "brotli"),
        ("compression.type", "uncompressed", "none"),
        ("compression.gzip.level", "-1", "0"),
        ("compression.gzip.level", "9", "10"),
        ("compression.lz4.level", "17", "18"),
        ("compression.zstd.level", "-131072", "23"),
        ("file.delete.delay.ms", "0", "-1"),
        ("preallocate", "true", "yes"),
        ("segment.jitter.ms", "100", "-1"),
        ("local.retention.ms", "-2", "-3"),
        ("message.timestamp.after.max.ms", "0", "-1"),
        ("leader.replication.throttled.replicas", "*", "0-1"),
        ("follower.replication.throttled.replicas", "0:1, 1:2", "0:x"),
        ("remote.storage.enable", "false", "true"),
    ] {
        validate_topic_config(name, good).unwrap_or_else(|e| panic!("{name}={good}: {e}"));
        let err = validate_topic_config(name, bad).unwrap_err();
        assert!(err.contains(name), "{name}={bad}: {err}");
    }
    for listed in [
        "leader.replication.throttled.replicas",
        "follower.replication.throttled.replicas",
    ] {
        assert!(topic_config_def(listed).unwrap().applied, "{listed}");
    }
    let stored = topic_config_def("preallocate").unwrap();
    assert!(!stored.applied);
    assert!(stored.documentation().contains("does not act on it"));
    let acted = topic_config_def("retention.ms").unwrap();
    assert!(!acted.documentation().contains("does not act"));
    assert_eq!(acted.broker_property, Some("log.retention.ms"));
    assert_eq!(
        topic_config_def("remote.storage.enable")
            .unwrap()
            .broker_property,
        None
    );
}

#[test]
fn compression_type_and_levels_reach_the_log_config() {
    let lc = |pairs: &[(&str, &str)]| {
        let o: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        log_config(&o, &defaults()).compression
    };
    use crate::log::codec::Compression;
    use crate::log::recompress::TopicCodec;
    assert_eq!(lc(&[]), None);
    assert_eq!(lc(&[("compression.type", "producer")]), None);
    assert_eq!(
        lc(&[("compression.type", "uncompressed")]),
        Some(TopicCodec {
            compression: Compression::None,
            level: None
        })
    );
    assert_eq!(
        lc(&[
            ("compression.type", "zstd"),
            ("compression.zstd.level", "9")
        ]),
        Some(TopicCodec {
            compression: Compression::Zstd,
            level: Some(9)
        })
    );
    assert_eq!(
        lc(&[("compression.type", "gzip")]),
        Some(TopicCodec {
            compression: Compression::Gzip,
            level: Some(-1)
        })
    );
}
