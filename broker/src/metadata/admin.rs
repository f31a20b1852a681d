//! Admin decisions as pure functions: given the current image and a request, either
//! the metadata records that carry it out or the Kafka error the client gets.
//! Nothing here does I/O, so every rule is unit-tested directly.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::image::{MetadataImage, MetadataRecord, PartitionState};
use crate::config::{validate_broker_dynamic_config, validate_group_config, validate_topic_config};

/// A refused admin request: the error code clients act on and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminError {
    pub code: ResponseError,
    pub message: String,
}

impl AdminError {
    fn new(code: ResponseError, message: impl Into<String>) -> Self {
        AdminError {
            code,
            message: message.into(),
        }
    }
}

pub type AdminResult<T> = Result<T, AdminError>;

/// Kafka's rules: 1 to 249 characters of `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn validate_topic_name(name: &str) -> AdminResult<()> {
    let invalid = |why: String| Err(AdminError::new(ResponseError::InvalidTopicException, why));
    if name.is_empty() {
        return invalid("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return invalid(format!("topic name {name:?} is not allowed"));
    }
    if name.len() > 249 {
        return invalid(format!(
            "topic name of {} characters exceeds 249",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return invalid(format!(
            "topic name {name:?} has the illegal character {c:?}"
        ));
    }
    Ok(())
}

/// '.' and '_' collide in metric names, so Kafka refuses topics that differ only by them.
/// Equal when '.' and '_' are taken as the same character (Kafka refuses such pairs:
/// their metric names would clash).
fn same_but_dot_underscore(a: &str, b: &str) -> bool {
    let norm = |c: u8| if c == b'.' { b'_' } else { c };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| norm(x) == norm(y))
}

/// What a CreateTopics entry asks for, after defaults are filled in by the caller.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    /// -1: the broker default.
    pub num_partitions: i32,
    /// -1: the broker default.
    pub replication_factor: i16,
    /// Explicit replica lists per partition (then the two counts above must be -1).
    pub assignments: Vec<(i32, Vec<i32>)>,
    pub configs: BTreeMap<String, String>,
}

/// Place `count` partitions starting at partition `first` on `brokers`: rack-aware
/// when every broker registered a rack (replicas of a partition on different racks),
/// leaders round-robin so that leadership spreads. The round-robin starts one broker
/// further for every topic already there (Kafka starts at a random broker), so that
/// many small topics do not all put their first leader on the same broker.
/// Validated by the callers (`rf` is between 1 and the broker count).
pub fn assign_replicas(
    image: &MetadataImage,
    brokers: &[i32],
    first: i32,
    count: i32,
    rf: i16,
) -> Vec<Vec<i32>> {
    let with_racks: Vec<(i32, Option<String>)> = brokers
        .iter()
        .map(|&b| (b, image.broker(b).and_then(|s| s.rack.clone())))
        .collect();
    crate::replication::placement::place_replicas(
        &with_racks,
        count,
        usize::try_from(rf).unwrap_or(0),
        usize::try_from(first).unwrap_or(0) + image.topic_count(),
    )
    .unwrap_or_default()
}

fn partition_states(first: i32, replicas: Vec<Vec<i32>>) -> Vec<PartitionState> {
    replicas
        .into_iter()
        .zip(first..)
        .map(|(replicas, partition)| PartitionState {
            partition,
            leader: replicas.first().copied().unwrap_or(-1),
            leader_epoch: 0,
            isr: replicas.clone(),
            replicas,
            partition_epoch: 0,
            adding_replicas: vec![],
            removing_replicas: vec![],
            offline_replicas: vec![],
        })
        .collect()
}

fn check_configs(configs: &BTreeMap<String, String>) -> AdminResult<()> {
    for (k, v) in configs {
        validate_topic_config(k, v)
            .map_err(|e| AdminError::new(ResponseError::InvalidConfig, e))?;
    }
    Ok(())
}

fn check_assignment(brokers: &[i32], partition: i32, replicas: &[i32]) -> AdminResult<()> {
    if replicas.is_empty() {
        return Err(AdminError::new(
            ResponseError::InvalidReplicaAssignment,
            format!("partition {partition} has no replicas"),
        ));
    }
    for (i, r) in replicas.iter().enumerate() {
        if !brokers.contains(r) {
            return Err(AdminError::new(
                ResponseError::InvalidReplicaAssignment,
                format!("partition {partition}: broker {r} is not registered"),
            ));
        }
        if replicas[..i].contains(r) {
            return Err(AdminError::new(
                ResponseError::InvalidReplicaAssignment,
                format!("partition {partition}: broker {r} is listed twice"),
            ));
        }
    }
    Ok(())
}

/// Plan a new topic on the registered `brokers`.
pub fn plan_create_topic(
    image: &MetadataImage,
    brokers: &[i32],
    req: &NewTopic,
    default_partitions: i32,
    default_replication_factor: i16,
) -> AdminResult<MetadataRecord> {
    validate_topic_name(&req.name)?;
    if image.topic(&req.name).is_some() {
        return Err(AdminError::new(
            ResponseError::TopicAlreadyExists,
            format!("topic {:?} already exists", req.name),
        ));
    }
    // Only names with '.' or '_' can collide without being equal (checked above).
    let collides = req.name.contains(['.', '_']);
    if let Some(other) = image
        .topics()
        .filter(|_| collides)
        .find(|t| same_but_dot_underscore(&t.name, &req.name))
    {
        return Err(AdminError::new(
            ResponseError::InvalidTopicException,
            format!(
                "topic {:?} collides with existing topic {:?} ('.' and '_' are equivalent)",
                req.name, other.name
            ),
        ));
    }
    check_configs(&req.configs)?;
    let replicas = if req.assignments.is_empty() {
        let count = if req.num_partitions == -1 {
            default_partitions
        } else {
            req.num_partitions
        };
        let rf = if req.replication_factor == -1 {
            default_replication_factor
        } else {
            req.replication_factor
        };
        if count < 1 {
            return Err(AdminError::new(
                ResponseError::InvalidPartitions,
                format!("number of partitions {count} must be at least 1"),
            ));
        }
        if rf < 1 || usize::try_from(rf).unwrap_or(0) > brokers.len() {
            return Err(AdminError::new(
                ResponseError::InvalidReplicationFactor,
                format!(
                    "replication factor {rf} must be between 1 and the {} registered brokers",
                    brokers.len()
                ),
            ));
        }
        assign_replicas(image, brokers, 0, count, rf)
    } else {
        if req.num_partitions != -1 || req.replication_factor != -1 {
            return Err(AdminError::new(
                ResponseError::InvalidRequest,
                "give either replica assignments or partition count and replication factor, not both",
            ));
        }
        let mut sorted = req.assignments.clone();
        sorted.sort_by_key(|(p, _)| *p);
        let mut replicas = Vec::with_capacity(sorted.len());
        for (i, (p, r)) in sorted.into_iter().enumerate() {
            if usize::try_from(p).ok() != Some(i) {
                return Err(AdminError::new(
                    ResponseError::InvalidReplicaAssignment,
                    format!(
                        "partitions must be numbered 0..{} without gaps",
                        req.assignments.len()
                    ),
                ));
            }
            check_assignment(brokers, p, &r)?;
            replicas.push(r);
        }
        replicas
    };
    Ok(MetadataRecord::TopicCreated {
        name: req.name.clone(),
        id: Uuid::new_v4(),
        partitions: partition_states(0, replicas),
        configs: req.configs.clone(),
    })
}

/// Whether `image` already holds the topic `record` creates, under the id planned
/// for it: a commit whose answer was lost (the controller moved while it waited) and
/// whose resubmission was refused with TopicAlreadyExists did take effect.
pub fn already_created(image: &MetadataImage, record: &MetadataRecord) -> bool {
    match record {
        MetadataRecord::TopicCreated { name, id, .. } => {
            image.topic(name).is_some_and(|t| t.id == *id)
        }
        _ => false,
    }
}

/// Plan growing a topic to `count` partitions.
pub fn plan_create_partitions(
    image: &MetadataImage,
    brokers: &[i32],
    topic: &str,
    count: i32,
    assignments: Option<Vec<Vec<i32>>>,
) -> AdminResult<MetadataRecord> {
    let t = image.topic(topic).ok_or_else(|| {
        AdminError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("topic {topic:?} does not exist"),
        )
    })?;
    let current = i32::try_from(t.partitions.len()).unwrap_or(i32::MAX);
    if count <= current {
        return Err(AdminError::new(
            ResponseError::InvalidPartitions,
            format!("topic {topic:?} has {current} partitions; the count can only grow, not become {count}"),
        ));
    }
    let added = count - current;
    let rf = t.partitions.first().map_or(1, |p| p.replicas.len());
    let replicas = match assignments {
        Some(a) => {
            if a.len() != usize::try_from(added).unwrap_or(0) {
                return Err(AdminError::new(
                    ResponseError::InvalidReplicaAssignment,
                    format!("{} assignments given for {added} new partitions", a.len()),
                ));
            }
            for (i, r) in a.iter().enumerate() {
                check_assignment(brokers, current + i as i32, r)?;
            }
            a
        }
        None => {
            if rf > brokers.len() {
                return Err(AdminError::new(
                    ResponseError::InvalidReplicationFactor,
                    format!(
                        "replication factor {rf} exceeds the {} registered brokers",
                        brokers.len()
                    ),
                ));
            }
            assign_replicas(image, brokers, current, added, rf as i16)
        }
    };
    Ok(MetadataRecord::PartitionsCreated {
        topic_id: t.id,
        partitions: partition_states(current, replicas),
    })
}

/// One IncrementalAlterConfigs operation (Kafka's OpType numbers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    Set(String, String),
    Delete(String),
    Append(String, String),
    Subtract(String, String),
}

impl ConfigOp {
    pub fn from_wire(op: i8, name: String, value: Option<String>) -> AdminResult<ConfigOp> {
        let need = |v: Option<String>| {
            v.ok_or_else(|| {
                AdminError::new(
                    ResponseError::InvalidRequest,
                    format!("config {name:?}: no value given"),
                )
            })
        };
        Ok(match op {
            0 => ConfigOp::Set(name.clone(), need(value)?),
            1 => ConfigOp::Delete(name),
            2 => ConfigOp::Append(name.clone(), need(value)?),
            3 => ConfigOp::Subtract(name.clone(), need(value)?),
            other => {
                return Err(AdminError::new(
                    ResponseError::InvalidRequest,
                    format!("unknown config operation {other}"),
                ))
            }
        })
    }
}

/// Plan config changes of a topic: `ops` applied to its overrides in order
/// (incremental), or the overrides replaced by `ops`' Sets (legacy AlterConfigs).
pub fn plan_alter_topic_configs(
    image: &MetadataImage,
    topic: &str,
    ops: &[ConfigOp],
    defaults_for_list: impl Fn(&str) -> Option<String>,
) -> AdminResult<MetadataRecord> {
    let t = image.topic(topic).ok_or_else(|| {
        AdminError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("topic {topic:?} does not exist"),
        )
    })?;
    let configs = apply_config_ops(&t.configs, ops, defaults_for_list, validate_topic_config)?;
    Ok(MetadataRecord::TopicConfigsSet {
        topic_id: t.id,
        configs,
    })
}

/// Plan config changes of a group (KIP-848 group configs), as for a topic. A group's
/// configs may be set before the group exists, as in Kafka.
pub fn plan_alter_group_configs(
    image: &MetadataImage,
    group: &str,
    ops: &[ConfigOp],
    defaults_for_list: impl Fn(&str) -> Option<String>,
) -> AdminResult<MetadataRecord> {
    if group.is_empty() {
        return Err(AdminError::new(
            ResponseError::InvalidRequest,
            "the group id is empty",
        ));
    }
    let current = image.group_configs(group).cloned().unwrap_or_default();
    let configs = apply_config_ops(&current, ops, defaults_for_list, validate_group_config)?;
    Ok(MetadataRecord::GroupConfigsSet {
        group: group.to_string(),
        configs,
    })
}

/// Plan dynamic config changes of one broker (`broker` its id) or of the cluster
/// default (`broker` empty), as for a topic; only the dynamic broker configs may be
/// named.
pub fn plan_alter_broker_configs(
    image: &MetadataImage,
    broker: &str,
    ops: &[ConfigOp],
) -> AdminResult<MetadataRecord> {
    if !broker.is_empty() && broker.parse::<u32>().is_err() {
        return Err(AdminError::new(
            ResponseError::InvalidRequest,
            format!("broker {broker:?} is not a broker id (or empty, for the cluster default)"),
        ));
    }
    let current = image.broker_configs(broker).cloned().unwrap_or_default();
    let configs = apply_config_ops(&current, ops, |_| None, validate_broker_dynamic_config)?;
    Ok(MetadataRecord::BrokerConfigsSet {
        broker: broker.to_string(),
        configs,
    })
}

/// Legacy AlterConfigs replaces a resource's whole override set: the operations that
/// turn `current` into `requested` (a null value sets nothing), so that the result is
/// validated exactly as IncrementalAlterConfigs' operations are.
pub fn replace_config_ops(
    current: &BTreeMap<String, String>,
    requested: &[(String, Option<String>)],
) -> Vec<ConfigOp> {
    let kept = |k: &String| requested.iter().any(|(n, v)| n == k && v.is_some());
    current
        .keys()
        .filter(|k| !kept(k))
        .map(|k| ConfigOp::Delete(k.clone()))
        .chain(
            requested
                .iter()
                .filter_map(|(k, v)| Some(ConfigOp::Set(k.clone(), v.clone()?))),
        )
        .collect()
}

/// `ops` applied in order to `current`, then every name they touch checked with
/// `validate` (name, value): INVALID_CONFIG names the config and the rule.
fn apply_config_ops(
    current: &BTreeMap<String, String>,
    ops: &[ConfigOp],
    defaults_for_list: impl Fn(&str) -> Option<String>,
    validate: fn(&str, &str) -> Result<(), String>,
) -> AdminResult<BTreeMap<String, String>> {
    let mut configs = current.clone();
    for op in ops {
        match op {
            ConfigOp::Set(k, v) => {
                configs.insert(k.clone(), v.clone());
            }
            ConfigOp::Delete(k) => {
                configs.remove(k);
            }
            ConfigOp::Append(k, v) | ConfigOp::Subtract(k, v) => {
                let current = configs
                    .get(k)
                    .cloned()
                    .or_else(|| defaults_for_list(k))
                    .unwrap_or_default();
                let mut items: Vec<String> = current
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if matches!(op, ConfigOp::Append(..)) {
                        if !items.iter().any(|i| i == item) {
                            items.push(item.to_string());
                        }
                    } else {
                        items.retain(|i| i != item);
                    }
                }
                configs.insert(k.clone(), items.join(","));
            }
        }
    }
    for op in ops {
        let name = match op {
            ConfigOp::Set(k, _)
            | ConfigOp::Delete(k)
            | ConfigOp::Append(k, _)
            | ConfigOp::Subtract(k, _) => k,
        };
        if let Some(v) = configs.get(name) {
            validate(name, v).map_err(|e| AdminError::new(ResponseError::InvalidConfig, e))?;
        } else {
            // Deleting an unknown name is still a typo worth reporting.
            validate(name, "0")
                .or_else(|e| {
                    if e.starts_with("unknown") {
                        Err(e)
                    } else {
                        Ok(())
                    }
                })
                .map_err(|e| AdminError::new(ResponseError::InvalidConfig, e))?;
        }
    }
    Ok(configs)
}

pub fn plan_delete_topic(image: &MetadataImage, topic: &str) -> AdminResult<MetadataRecord> {
    let t = image.topic(topic).ok_or_else(|| {
        AdminError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("topic {topic:?} does not exist"),
        )
    })?;
    Ok(MetadataRecord::TopicDeleted { topic_id: t.id })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_topic(name: &str, partitions: i32, rf: i16) -> NewTopic {
        NewTopic {
            name: name.into(),
            num_partitions: partitions,
            replication_factor: rf,
            assignments: vec![],
            configs: BTreeMap::new(),
        }
    }

    fn image_with(name: &str, partitions: i32) -> MetadataImage {
        let mut image = MetadataImage::default();
        let rec = plan_create_topic(&image, &[1], &new_topic(name, partitions, 1), 1, 1).unwrap();
        image.apply(&rec).unwrap();
        image
    }

    #[test]
    fn create_fills_defaults_and_spreads_leaders() {
        let image = MetadataImage::default();
        let rec =
            plan_create_topic(&image, &[1, 2, 3], &new_topic("orders", -1, -1), 6, 2).unwrap();
        let MetadataRecord::TopicCreated { partitions, .. } = rec else {
            panic!("{rec:?}")
        };
        assert_eq!(partitions.len(), 6);
        let leaders: Vec<i32> = partitions.iter().map(|p| p.leader).collect();
        assert_eq!(leaders, vec![1, 2, 3, 1, 2, 3]);
        assert!(partitions
            .iter()
            .all(|p| p.replicas.len() == 2 && p.isr == p.replicas));
    }

    #[test]
    fn single_partition_topics_take_turns_leading() {
        let mut image = MetadataImage::default();
        let mut leaders = Vec::new();
        for name in ["a", "b", "c", "d"] {
            let rec = plan_create_topic(&image, &[1, 2, 3], &new_topic(name, 1, 3), 1, 1).unwrap();
            let MetadataRecord::TopicCreated { partitions, .. } = &rec else {
                panic!("{rec:?}")
            };
            leaders.push(partitions[0].leader);
            image.apply(&rec).unwrap();
        }
        assert_eq!(leaders, vec![1, 2, 3, 1]);
    }

    #[test]
    fn create_refuses_what_kafka_refuses() {
        let image = image_with("orders", 1);
        let code = |t: NewTopic| plan_create_topic(&image, &[1], &t, 1, 1).unwrap_err().code;
        assert_eq!(
            code(new_topic("orders", 1, 1)),
            ResponseError::TopicAlreadyExists
        );
        assert_eq!(
            code(new_topic("bad/name", 1, 1)),
            ResponseError::InvalidTopicException
        );
        assert_eq!(
            code(new_topic("..", 1, 1)),
            ResponseError::InvalidTopicException
        );
        assert_eq!(
            code(new_topic(&"x".repeat(250), 1, 1)),
            ResponseError::InvalidTopicException
        );
        assert_eq!(code(new_topic("t", 0, 1)), ResponseError::InvalidPartitions);
        assert_eq!(
            code(new_topic("t", 1, 2)),
            ResponseError::InvalidReplicationFactor
        );
        let mut with_bad_config = new_topic("t", 1, 1);
        with_bad_config
            .configs
            .insert("retention.ms".into(), "soon".into());
        assert_eq!(code(with_bad_config), ResponseError::InvalidConfig);
        let mut unknown_config = new_topic("t", 1, 1);
        unknown_config
            .configs
            .insert("retention.mss".into(), "1".into());
        assert_eq!(code(unknown_config), ResponseError::InvalidConfig);
        let collides = image_with("a.b", 1);
        let e = plan_create_topic(&collides, &[1], &new_topic("a_b", 1, 1), 1, 1).unwrap_err();
        assert_eq!(e.code, ResponseError::InvalidTopicException);
    }

    #[test]
    fn explicit_assignments_are_checked() {
        let image = MetadataImage::default();
        let mut t = new_topic("t", -1, -1);
        t.assignments = vec![(1, vec![2]), (0, vec![1])];
        let rec = plan_create_topic(&image, &[1, 2], &t, 1, 1).unwrap();
        let MetadataRecord::TopicCreated { partitions, .. } = rec else {
            panic!()
        };
        assert_eq!(partitions[0].replicas, vec![1]);
        assert_eq!(partitions[1].leader, 2);
        t.assignments = vec![(0, vec![9])];
        assert_eq!(
            plan_create_topic(&image, &[1, 2], &t, 1, 1)
                .unwrap_err()
                .code,
            ResponseError::InvalidReplicaAssignment
        );
    }

    #[test]
    fn a_topic_is_already_created_only_under_the_planned_id() {
        let image = image_with("orders", 2);
        let created = image.topic("orders").unwrap().id;
        let planned = |id| MetadataRecord::TopicCreated {
            name: "orders".into(),
            id,
            partitions: vec![],
            configs: BTreeMap::new(),
        };
        assert!(already_created(&image, &planned(created)));
        assert!(!already_created(&image, &planned(Uuid::new_v4())));
        let elsewhere = MetadataRecord::TopicCreated {
            name: "other".into(),
            id: created,
            partitions: vec![],
            configs: BTreeMap::new(),
        };
        assert!(!already_created(&image, &elsewhere));
    }

    #[test]
    fn partitions_only_grow() {
        let image = image_with("orders", 2);
        let rec = plan_create_partitions(&image, &[1], "orders", 5, None).unwrap();
        let MetadataRecord::PartitionsCreated { partitions, .. } = rec else {
            panic!()
        };
        assert_eq!(
            partitions.iter().map(|p| p.partition).collect::<Vec<_>>(),
            vec![2, 3, 4]
        );
        let e = plan_create_partitions(&image, &[1], "orders", 2, None).unwrap_err();
        assert_eq!(e.code, ResponseError::InvalidPartitions);
        let e = plan_create_partitions(&image, &[1], "nope", 3, None).unwrap_err();
        assert_eq!(e.code, ResponseError::UnknownTopicOrPartition);
    }

    #[test]
    fn incremental_config_ops() {
        let image = image_with("orders", 1);
        let ops = vec![
            ConfigOp::Set("retention.ms".into(), "1000".into()),
            ConfigOp::Set("segment.bytes".into(), "2048".into()),
            ConfigOp::Delete("segment.bytes".into()),
        ];
        let rec = plan_alter_topic_configs(&image, "orders", &ops, |_| None).unwrap();
        let MetadataRecord::TopicConfigsSet { configs, .. } = rec else {
            panic!()
        };
        assert_eq!(
            configs,
            BTreeMap::from([("retention.ms".into(), "1000".into())])
        );
        let bad = plan_alter_topic_configs(
            &image,
            "orders",
            &[ConfigOp::Set("retention.ms".into(), "x".into())],
            |_| None,
        );
        assert_eq!(bad.unwrap_err().code, ResponseError::InvalidConfig);
        let typo = plan_alter_topic_configs(
            &image,
            "orders",
            &[ConfigOp::Delete("retention.mss".into())],
            |_| None,
        );
        assert_eq!(typo.unwrap_err().code, ResponseError::InvalidConfig);
        let append = plan_alter_topic_configs(
            &image,
            "orders",
            &[ConfigOp::Append("cleanup.policy".into(), "delete".into())],
            |_| Some("delete".into()),
        )
        .unwrap();
        let MetadataRecord::TopicConfigsSet { configs, .. } = append else {
            panic!()
        };
        assert_eq!(configs["cleanup.policy"], "delete");
    }

    #[test]
    fn legacy_alter_configs_replaces_the_whole_set() {
        let current = BTreeMap::from([
            ("retention.ms".to_string(), "1000".to_string()),
            ("segment.bytes".to_string(), "2048".to_string()),
        ]);
        let ops = replace_config_ops(
            &current,
            &[
                ("segment.bytes".into(), Some("4096".into())),
                ("cleanup.policy".into(), None),
            ],
        );
        assert_eq!(
            ops,
            vec![
                ConfigOp::Delete("retention.ms".into()),
                ConfigOp::Set("segment.bytes".into(), "4096".into()),
            ]
        );
        let mut image = image_with("orders", 1);
        let id = image.topic("orders").unwrap().id;
        image
            .apply(&MetadataRecord::TopicConfigsSet {
                topic_id: id,
                configs: current.clone(),
            })
            .unwrap();
        let rec = plan_alter_topic_configs(&image, "orders", &ops, |_| None).unwrap();
        assert_eq!(
            rec,
            MetadataRecord::TopicConfigsSet {
                topic_id: id,
                configs: BTreeMap::from([("segment.bytes".into(), "4096".into())]),
            }
        );
        // The same validation as the incremental form.
        let bad = replace_config_ops(&current, &[("segment.bytes".into(), Some("x".into()))]);
        let refused = plan_alter_topic_configs(&image, "orders", &bad, |_| None).unwrap_err();
        assert_eq!(refused.code, ResponseError::InvalidConfig);
        // An empty request clears every override.
        let rec =
            plan_alter_topic_configs(&image, "orders", &replace_config_ops(&current, &[]), |_| {
                None
            });
        assert_eq!(
            rec.unwrap(),
            MetadataRecord::TopicConfigsSet {
                topic_id: id,
                configs: BTreeMap::new(),
            }
        );
    }

    #[test]
    fn group_configs_are_planned_and_validated_like_topic_configs() {
        let image = MetadataImage::default();
        let set = |name: &str, value: &str| {
            plan_alter_group_configs(
                &image,
                "g",
                &[ConfigOp::Set(name.into(), value.into())],
                |_| None,
            )
        };
        assert_eq!(
            set("consumer.session.timeout.ms", "50000").unwrap(),
            MetadataRecord::GroupConfigsSet {
                group: "g".into(),
                configs: BTreeMap::from([("consumer.session.timeout.ms".into(), "50000".into())]),
            }
        );
        for (name, value) in [
            ("consumer.session.timeout.ms", "x"),
            ("consumer.session.timeout.ms", "1"),
            ("retention.ms", "1000"),
        ] {
            assert_eq!(
                set(name, value).unwrap_err().code,
                ResponseError::InvalidConfig,
                "{name}={value}"
            );
        }
        let empty = plan_alter_group_configs(&image, "", &[], |_| None).unwrap_err();
        assert_eq!(empty.code, ResponseError::InvalidRequest);
    }

    #[test]
    fn broker_configs_take_only_the_dynamic_rates_for_a_broker_or_the_default() {
        let image = MetadataImage::default();
        let set = |broker: &str, name: &str, value: &str| {
            plan_alter_broker_configs(&image, broker, &[ConfigOp::Set(name.into(), value.into())])
        };
        let rate = "leader.replication.throttled.rate";
        for broker in ["", "3"] {
            assert_eq!(
                set(broker, rate, "1048576").unwrap(),
                MetadataRecord::BrokerConfigsSet {
                    broker: broker.into(),
                    configs: BTreeMap::from([(rate.into(), "1048576".into())]),
                }
            );
        }
        for (name, value) in [(rate, "-1"), (rate, "fast"), ("log.retention.ms", "1")] {
            assert_eq!(
                set("1", name, value).unwrap_err().code,
                ResponseError::InvalidConfig,
                "{name}={value}"
            );
        }
        assert_eq!(
            set("x", rate, "1").unwrap_err().code,
            ResponseError::InvalidRequest
        );
    }
}
