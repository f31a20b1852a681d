//! ConsumerGroup controller: every `resyncSeconds` it reads the group from its
//! coordinator (DescribeGroups, OffsetFetch) and the log end offsets of the partitions it
//! has offsets for (ListOffsets), writes state, members and lag to the status and
//! exports the lag as Prometheus gauges. A one-shot offset reset in the spec runs once per
//! token, and only while the group has no members (the coordinator refuses an admin
//! commit otherwise); until then the ResetBlocked condition says why.
//!
//! With `spec.autoscale`, each refresh then scales the consumer workload from the lag
//! just read (see [`crate::autoscale`]); a paused resource or a failed read skips it.
//!
//! Deleting the resource never touches the group, so there is no finalizer; the lag
//! series go at the next scheduled refresh, which finds the resource gone.
//!
//! The decisions are pure functions ([`group_status`], [`reset_step`],
//! [`reset_partitions`], [`reset_offset`]); [`reconcile`] performs the broker calls.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fjord_client::{Client as BrokerClient, GroupDescription, OffsetSpec, ResponseError};
use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::{self, Action};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

use crate::apply::apply_status;
use crate::autoscale::apply::autoscale;
use crate::conditions;
use crate::context::{paused, BrokerEndpoint, Context};
use crate::types::{
    ConsumerGroup, ConsumerGroupStatus, FjordCluster, GroupMember, OffsetReset, PartitionLag,
    ResetTarget,
};
use crate::{Error, Result};

const KIND: &str = "ConsumerGroup";
/// Log end offsets looked up at once (ListOffsets per partition, pipelined).
const END_OFFSET_LOOKUPS: usize = 16;

// ---- Pure decisions ----

/// The status fields read from the broker: state, members with their assignments, and
/// per partition with a committed offset the log end offset and lag (`end - committed`,
/// never negative). Partitions whose end offset is unknown (their topic was deleted) are
/// left out rather than reported with a made-up lag.
pub fn group_status(
    status: &mut ConsumerGroupStatus,
    description: &GroupDescription,
    committed: &[(String, i32, i64)],
    end_offsets: &BTreeMap<(String, i32), i64>,
) {
    status.state = Some(description.state.clone());
    status.member_count = description.members.len() as i32;
    status.members = description
        .members
        .iter()
        .map(|m| GroupMember {
            member_id: m.member_id.clone(),
            client_id: m.client_id.clone(),
            host: m.host.clone(),
            assignments: m
                .assignment
                .iter()
                .map(|(topic, partition)| format!("{topic}:{partition}"))
                .collect(),
        })
        .collect();
    status.partitions = committed
        .iter()
        .filter_map(|(topic, partition, offset)| {
            let end = *end_offsets.get(&(topic.clone(), *partition))?;
            Some(PartitionLag {
                topic: topic.clone(),
                partition: *partition,
                committed_offset: *offset,
                log_end_offset: end,
                lag: (end - offset).max(0),
            })
        })
        .collect();
    status
        .partitions
        .sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    status.total_lag = status.partitions.iter().map(|p| p.lag).sum();
}

/// What to do about the spec's offset reset.
#[derive(Debug, PartialEq)]
pub enum ResetStep<'a> {
    /// No reset asked for, or this token already ran.
    Nothing,
    /// The group has members; the reset waits (message for the ResetBlocked condition).
    Blocked(String),
    /// Run this reset now.
    Run(&'a OffsetReset),
}

/// Whether the spec's reset runs now: once per token, and only while the group has no
/// members — Empty, or Dead (the coordinator does not know the group; committing creates
/// it Empty).
pub fn reset_step<'a>(
    reset: Option<&'a OffsetReset>,
    last_reset_token: Option<&str>,
    description: &GroupDescription,
) -> ResetStep<'a> {
    let Some(reset) = reset else {
        return ResetStep::Nothing;
    };
    if last_reset_token == Some(reset.token.as_str()) {
        return ResetStep::Nothing;
    }
    let state = description.state.as_str();
    if (state == "Empty" || state == "Dead") && description.members.is_empty() {
        return ResetStep::Run(reset);
    }
    ResetStep::Blocked(format!(
        "offset reset {:?} waits until group {:?} is Empty: it is {state} with {} members",
        reset.token,
        description.group_id,
        description.members.len()
    ))
}

/// The partitions a reset moves: with `to: Offsets`, those it names; else every
/// partition of each topic in `topics` (`partition_counts` from Metadata), or, when
/// `topics` is empty, every partition the group has committed offsets for. A named topic
/// the cluster does not have is an error naming it.
pub fn reset_partitions(
    reset: &OffsetReset,
    committed: &[(String, i32, i64)],
    partition_counts: &BTreeMap<String, i32>,
) -> Result<Vec<(String, i32)>, String> {
    let partitions: BTreeSet<(String, i32)> = if reset.to == ResetTarget::Offsets {
        reset
            .offsets
            .iter()
            .map(|o| (o.topic.clone(), o.partition))
            .collect()
    } else if reset.topics.is_empty() {
        committed.iter().map(|(t, p, _)| (t.clone(), *p)).collect()
    } else {
        let mut out = BTreeSet::new();
        for topic in &reset.topics {
            let count = partition_counts.get(topic).ok_or_else(|| {
                format!(
                    "offset reset {:?}: topic {topic:?} does not exist",
                    reset.token
                )
            })?;
            out.extend((0..*count).map(|p| (topic.clone(), p)));
        }
        out
    };
    Ok(partitions.into_iter().collect())
}

/// The ListOffsets lookup a reset makes per partition; `None` for explicit offsets.
pub fn reset_lookup(reset: &OffsetReset) -> Option<OffsetSpec> {
    match reset.to {
        ResetTarget::Earliest => Some(OffsetSpec::Earliest),
        ResetTarget::Latest => Some(OffsetSpec::Latest),
        ResetTarget::Timestamp => Some(OffsetSpec::Timestamp(reset.timestamp_ms.unwrap_or(0))),
        ResetTarget::Offsets => None,
    }
}

/// The offset a reset commits for `topic`/`partition`: the explicit one with `to:
/// Offsets`; else what the lookup found, and with `to: Timestamp` the log end offset
/// when no record is that new (ListOffsets answers -1), as kafka-consumer-groups does.
pub fn reset_offset(
    reset: &OffsetReset,
    topic: &str,
    partition: i32,
    found: Option<i64>,
    log_end_offset: i64,
) -> Option<i64> {
    match reset.to {
        ResetTarget::Offsets => reset
            .offsets
            .iter()
            .find(|o| o.topic == topic && o.partition == partition)
            .map(|o| o.offset),
        _ => match found {
            Some(offset) if offset >= 0 => Some(offset),
            _ => Some(log_end_offset),
        },
    }
}

/// Condition reason for a failed reconcile: the Kafka error's name (e.g.
/// `CoordinatorNotAvailable`), `BrokerUnreachable` for connection failures.
pub fn error_reason(error: &Error) -> String {
    match error {
        Error::Broker(b) => match b.kafka() {
            Some(k) => format!("{k:?}"),
            None => "BrokerUnreachable".into(),
        },
        other => other.kind().into(),
    }
}

// ---- Broker calls ----

/// Log end offsets of `partitions`; those whose topic or partition is gone are left
/// out.
async fn end_offsets(
    client: &BrokerClient,
    partitions: Vec<(String, i32)>,
) -> Result<BTreeMap<(String, i32), i64>> {
    // Futures built in a loop rather than by a closure: a closure over borrowed data in
    // here makes the controller's future fail the `Send` bound for every lifetime.
    let mut lookups = Vec::with_capacity(partitions.len());
    for (topic, partition) in partitions {
        lookups.push(async move {
            let listed = client
                .list_offsets(&topic, partition, OffsetSpec::Latest)
                .await;
            ((topic, partition), listed)
        });
    }
    let answers: Vec<_> = futures::stream::iter(lookups)
        .buffer_unordered(END_OFFSET_LOOKUPS)
        .collect()
        .await;
    let mut out = BTreeMap::new();
    let mut unknown = Vec::new();
    for (key, listed) in answers {
        match listed {
            Ok(listed) => {
                out.insert(key, listed.offset);
            }
            Err(e) if e.kafka() == Some(ResponseError::UnknownTopicOrPartition) => {
                unknown.push(key)
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !unknown.is_empty() {
        // Left out only when the cluster says the partition is gone; a partition that
        // exists but did not answer (metadata still spreading) fails this refresh, so
        // the lag is never under-reported.
        let names: BTreeSet<&str> = unknown.iter().map(|(t, _)| t.as_str()).collect();
        let names: Vec<&str> = names.into_iter().collect();
        let metadata = client.metadata(Some(&names)).await?;
        for (topic, partition) in &unknown {
            let exists = metadata.topic(topic).is_some_and(|t| {
                t.error.is_none() && t.partitions.iter().any(|p| p.partition == *partition)
            });
            if exists {
                return Err(Error::Broker(fjord_client::Error::Kafka {
                    resource: format!("topic {topic:?} partition {partition}"),
                    error: ResponseError::UnknownTopicOrPartition,
                    message: Some("its leader does not know it yet".into()),
                }));
            }
        }
    }
    Ok(out)
}

/// What a reset did.
enum ResetOutcome {
    Done(String),
    /// The group gained members between our look and the commit, or a named topic is
    /// missing: try again at the next refresh.
    Blocked(&'static str, String),
}

async fn run_reset(
    client: &BrokerClient,
    group_id: &str,
    reset: &OffsetReset,
    committed: &[(String, i32, i64)],
) -> Result<ResetOutcome> {
    let mut counts = BTreeMap::new();
    if reset.to != ResetTarget::Offsets && !reset.topics.is_empty() {
        let names: Vec<&str> = reset.topics.iter().map(String::as_str).collect();
        for t in client.metadata(Some(&names)).await?.topics {
            if t.error.is_none() {
                counts.insert(t.name, t.partitions.len() as i32);
            }
        }
    }
    let partitions = match reset_partitions(reset, committed, &counts) {
        Ok(p) => p,
        Err(message) => return Ok(ResetOutcome::Blocked("UnknownTopic", message)),
    };
    let ends = match reset.to {
        ResetTarget::Timestamp => end_offsets(client, partitions.clone()).await?,
        _ => BTreeMap::new(),
    };
    let mut commits = Vec::with_capacity(partitions.len());
    for (topic, partition) in &partitions {
        let found = match reset_lookup(reset) {
            Some(spec) => Some(client.list_offsets(topic, *partition, spec).await?.offset),
            None => None,
        };
        let end = ends
            .get(&(topic.clone(), *partition))
            .copied()
            .unwrap_or(-1);
        if let Some(offset) = reset_offset(reset, topic, *partition, found, end) {
            commits.push((topic.clone(), *partition, offset));
        }
    }
    if !commits.is_empty() {
        match client.commit_offsets(group_id, &commits).await {
            Ok(()) => {}
            // The coordinator refuses an admin commit once the group has members.
            Err(e)
                if matches!(
                    e.kafka(),
                    Some(
                        ResponseError::UnknownMemberId
                            | ResponseError::IllegalGeneration
                            | ResponseError::RebalanceInProgress
                    )
                ) =>
            {
                return Ok(ResetOutcome::Blocked(
                    "GroupNotEmpty",
                    format!(
                        "offset reset {:?}: group {group_id:?} gained members before the commit ({e})",
                        reset.token
                    ),
                ))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(ResetOutcome::Done(format!(
        "offset reset {:?} of group {group_id:?} ({:?}) committed {} partitions",
        reset.token,
        reset.to,
        commits.len()
    )))
}

/// Reads the group, runs a due reset, and fills `status`. Returns an Event note when a
/// reset ran.
async fn sync_group(
    group: &ConsumerGroup,
    status: &mut ConsumerGroupStatus,
    client: &BrokerClient,
) -> Result<Option<String>> {
    let generation = group.meta().generation;
    let group_id = group.spec.group_id.as_str();
    let mut description = client.describe_group(group_id).await?;
    let mut committed = client.fetch_offsets(group_id).await?;
    let mut note = None;
    match reset_step(
        group.spec.offset_reset.as_ref(),
        status.last_reset_token.as_deref(),
        &description,
    ) {
        ResetStep::Nothing => conditions::remove(&mut status.conditions, "ResetBlocked"),
        ResetStep::Blocked(message) => conditions::set(
            &mut status.conditions,
            "ResetBlocked",
            true,
            "GroupNotEmpty",
            message,
            generation,
        ),
        ResetStep::Run(reset) => match run_reset(client, group_id, reset, &committed).await? {
            ResetOutcome::Done(message) => {
                status.last_reset_token = Some(reset.token.clone());
                conditions::remove(&mut status.conditions, "ResetBlocked");
                description = client.describe_group(group_id).await?;
                committed = client.fetch_offsets(group_id).await?;
                note = Some(message);
            }
            ResetOutcome::Blocked(reason, message) => conditions::set(
                &mut status.conditions,
                "ResetBlocked",
                true,
                reason,
                message,
                generation,
            ),
        },
    }
    let mut partitions = Vec::with_capacity(committed.len());
    for (topic, partition, _) in &committed {
        partitions.push((topic.clone(), *partition));
    }
    let ends = end_offsets(client, partitions).await?;
    group_status(status, &description, &committed, &ends);
    Ok(note)
}

// ---- Controller ----

/// One reconcile of a ConsumerGroup.
pub async fn reconcile(group: Arc<ConsumerGroup>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    ctx.metrics.reconciles.with_label_values(&[KIND]).inc();
    let result = reconcile_group(&group, &ctx).await;
    ctx.metrics
        .duration
        .with_label_values(&[KIND])
        .observe(started.elapsed().as_secs_f64());
    result
}

async fn reconcile_group(group: &ConsumerGroup, ctx: &Context) -> Result<Action> {
    let ns = group
        .namespace()
        .ok_or_else(|| Error::Invalid("ConsumerGroup without namespace".into()))?;
    let name = group.name_any();
    let api: Api<ConsumerGroup> = Api::namespaced(ctx.client.clone(), &ns);
    let generation = group.meta().generation;
    let mut status = group.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    let resync = Duration::from_secs(group.spec.resync_seconds.max(1) as u64);

    if paused(group) {
        conditions::set(
            &mut status.conditions,
            "Paused",
            true,
            "ReconciliationPaused",
            format!("annotation {} is \"true\"", crate::types::PAUSE_ANNOTATION),
            generation,
        );
        apply_status(&api, group, serde_json::to_value(&status).unwrap()).await?;
        return Ok(Action::requeue(resync));
    }
    conditions::remove(&mut status.conditions, "Paused");

    let clusters: Api<FjordCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(cluster) = clusters.get_opt(&group.spec.cluster_ref).await? else {
        ctx.metrics.remove_group_lag(&ns, &name);
        conditions::cluster_not_found(
            &mut status.conditions,
            &group.spec.cluster_ref,
            &ns,
            generation,
        );
        apply_status(&api, group, serde_json::to_value(&status).unwrap()).await?;
        return Ok(Action::requeue(resync));
    };

    let bootstrap = BrokerEndpoint::of(&cluster);
    let synced = match ctx.broker(&bootstrap).await {
        Ok(client) => match sync_group(group, &mut status, &client).await {
            // The autoscaler decides from the lag just read, never from a stale one.
            Ok(note) => Ok((note, autoscale(ctx, group, &mut status, &client).await)),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    match synced {
        Ok((note, autoscaled)) => {
            status.last_refresh = Some(Timestamp::now().to_string());
            let lags: Vec<(String, i32, i64)> = status
                .partitions
                .iter()
                .map(|p| (p.topic.clone(), p.partition, p.lag))
                .collect();
            ctx.metrics
                .set_group_lag(&ns, &name, &group.spec.group_id, &lags);
            conditions::set(
                &mut status.conditions,
                "Ready",
                true,
                "Observed",
                format!(
                    "group {:?} is {} with {} members, total lag {}",
                    group.spec.group_id,
                    status.state.as_deref().unwrap_or("unknown"),
                    status.member_count,
                    status.total_lag
                ),
                generation,
            );
            apply_status(&api, group, serde_json::to_value(&status).unwrap()).await?;
            if let Some(note) = note {
                ctx.event(group, EventType::Normal, "OffsetsReset", note)
                    .await;
            }
            for (type_, reason, note) in autoscaled {
                ctx.event(group, type_, reason, note).await;
            }
            ctx.reset_backoff(group);
            Ok(Action::requeue(resync))
        }
        Err(e) => {
            ctx.forget_broker(&bootstrap).await;
            conditions::set(
                &mut status.conditions,
                "Ready",
                false,
                &error_reason(&e),
                e.to_string(),
                generation,
            );
            apply_status(&api, group, serde_json::to_value(&status).unwrap()).await?;
            Err(e)
        }
    }
}

fn error_policy(group: Arc<ConsumerGroup>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(group = %group.name_any(), %error, "reconcile failed");
    ctx.metrics
        .errors
        .with_label_values(&[KIND, error.kind()])
        .inc();
    Action::requeue(ctx.backoff(&*group))
}

/// Runs the ConsumerGroup controller until the stream ends.
pub async fn run(ctx: Arc<Context>, namespace: Option<&str>) {
    let api = crate::api::<ConsumerGroup>(&ctx.client, namespace);
    let metrics = ctx.metrics.clone();
    crate::controller(api)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|r| {
            // Every reconcile requeues itself, so a deleted resource shows up here as a
            // scheduled refresh whose object is gone: its lag series go with it.
            if let Err(controller::Error::ObjectNotFound(obj)) = &r {
                metrics.remove_group_lag(obj.namespace.as_deref().unwrap_or_default(), &obj.name);
            }
            async move {
                if let Err(e) = r {
                    tracing::debug!(kind = KIND, error = %e, "controller");
                }
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PartitionOffset;
    use fjord_client::GroupMemberDescription;

    fn described(state: &str, members: usize) -> GroupDescription {
        GroupDescription {
            group_id: "payments".into(),
            state: state.into(),
            protocol_type: "consumer".into(),
            protocol: "range".into(),
            members: (0..members)
                .map(|i| GroupMemberDescription {
                    member_id: format!("m{i}"),
                    group_instance_id: None,
                    client_id: format!("client-{i}"),
                    host: "/10.0.0.7".into(),
                    assignment: vec![("orders".into(), i as i32)],
                })
                .collect(),
        }
    }

    fn reset(to: ResetTarget) -> OffsetReset {
        OffsetReset {
            token: "t1".into(),
            to,
            topics: Vec::new(),
            timestamp_ms: None,
            offsets: Vec::new(),
        }
    }

    fn committed() -> Vec<(String, i32, i64)> {
        vec![
            ("orders".into(), 1, 40),
            ("orders".into(), 0, 10),
            ("gone".into(), 0, 3),
        ]
    }

    #[test]
    fn status_has_members_assignments_and_lag_per_partition() {
        let ends = BTreeMap::from([
            (("orders".to_string(), 0), 25),
            (("orders".to_string(), 1), 40),
        ]);
        let mut status = ConsumerGroupStatus::default();
        group_status(&mut status, &described("Stable", 2), &committed(), &ends);
        assert_eq!(status.state.as_deref(), Some("Stable"));
        assert_eq!(status.member_count, 2);
        assert_eq!(status.members[1].client_id, "client-1");
        assert_eq!(status.members[1].assignments, vec!["orders:1"]);
        // Sorted; "gone" has no end offset (topic deleted) and is left out.
        let rows: Vec<_> = status
            .partitions
            .iter()
            .map(|p| {
                (
                    p.topic.as_str(),
                    p.partition,
                    p.committed_offset,
                    p.log_end_offset,
                    p.lag,
                )
            })
            .collect();
        assert_eq!(
            rows,
            vec![("orders", 0, 10, 25, 15), ("orders", 1, 40, 40, 0)]
        );
        assert_eq!(status.total_lag, 15);

        // A committed offset past the end (log truncated) counts as no lag, not negative.
        let ends = BTreeMap::from([(("orders".to_string(), 0), 5)]);
        group_status(&mut status, &described("Empty", 0), &committed(), &ends);
        assert_eq!((status.partitions.len(), status.total_lag), (1, 0));
        assert!(status.members.is_empty());
    }

    #[test]
    fn reset_runs_once_per_token_and_only_without_members() {
        let r = reset(ResetTarget::Earliest);
        assert_eq!(
            reset_step(None, None, &described("Empty", 0)),
            ResetStep::Nothing
        );
        assert_eq!(
            reset_step(Some(&r), None, &described("Empty", 0)),
            ResetStep::Run(&r)
        );
        // An unknown group is Dead: committing creates it.
        assert_eq!(
            reset_step(Some(&r), Some("t0"), &described("Dead", 0)),
            ResetStep::Run(&r)
        );
        assert_eq!(
            reset_step(Some(&r), Some("t1"), &described("Empty", 0)),
            ResetStep::Nothing
        );
        for state in ["Stable", "PreparingRebalance", "CompletingRebalance"] {
            match reset_step(Some(&r), None, &described(state, 2)) {
                ResetStep::Blocked(message) => {
                    assert!(
                        message.contains(state) && message.contains("2 members"),
                        "{message}"
                    )
                }
                other => panic!("{state}: {other:?}"),
            }
        }
        // A done token stays done even while members are back.
        assert_eq!(
            reset_step(Some(&r), Some("t1"), &described("Stable", 1)),
            ResetStep::Nothing
        );
    }

    #[test]
    fn reset_partitions_from_offsets_topics_or_committed() {
        let counts = BTreeMap::from([("orders".to_string(), 3), ("audit".to_string(), 1)]);
        // No topics named: the partitions the group has offsets for.
        let all = reset_partitions(&reset(ResetTarget::Latest), &committed(), &counts).unwrap();
        assert_eq!(
            all,
            vec![
                ("gone".into(), 0),
                ("orders".into(), 0),
                ("orders".into(), 1)
            ]
        );
        // Named topics: every partition of each, committed or not.
        let mut r = reset(ResetTarget::Earliest);
        r.topics = vec!["orders".into(), "audit".into()];
        let named = reset_partitions(&r, &committed(), &counts).unwrap();
        assert_eq!(
            named,
            vec![
                ("audit".into(), 0),
                ("orders".into(), 0),
                ("orders".into(), 1),
                ("orders".into(), 2)
            ]
        );
        r.topics.push("nope".into());
        let err = reset_partitions(&r, &committed(), &counts).unwrap_err();
        assert!(err.contains("\"nope\" does not exist"), "{err}");
        // Explicit offsets: the partitions they name, topics ignored.
        let mut r = reset(ResetTarget::Offsets);
        r.topics = vec!["audit".into()];
        r.offsets = vec![PartitionOffset {
            topic: "orders".into(),
            partition: 2,
            offset: 7,
        }];
        assert_eq!(
            reset_partitions(&r, &committed(), &counts).unwrap(),
            vec![("orders".into(), 2)]
        );
    }

    #[test]
    fn reset_offsets_per_target() {
        let mut r = reset(ResetTarget::Offsets);
        r.offsets = vec![PartitionOffset {
            topic: "orders".into(),
            partition: 2,
            offset: 7,
        }];
        assert_eq!(reset_lookup(&r), None);
        assert_eq!(reset_offset(&r, "orders", 2, None, 100), Some(7));
        assert_eq!(reset_offset(&r, "orders", 1, None, 100), None);

        let r = reset(ResetTarget::Earliest);
        assert_eq!(reset_lookup(&r), Some(OffsetSpec::Earliest));
        assert_eq!(reset_offset(&r, "orders", 0, Some(4), 100), Some(4));
        assert_eq!(
            reset_lookup(&reset(ResetTarget::Latest)),
            Some(OffsetSpec::Latest)
        );

        let mut r = reset(ResetTarget::Timestamp);
        r.timestamp_ms = Some(1_700_000_000_000);
        assert_eq!(
            reset_lookup(&r),
            Some(OffsetSpec::Timestamp(1_700_000_000_000))
        );
        assert_eq!(reset_offset(&r, "orders", 0, Some(12), 100), Some(12));
        // No record that new: the end of the log, as kafka-consumer-groups does.
        assert_eq!(reset_offset(&r, "orders", 0, Some(-1), 100), Some(100));
    }

    #[test]
    fn error_reason_names_the_kafka_error() {
        let kafka = Error::Broker(fjord_client::Error::Kafka {
            resource: "group \"g\"".into(),
            error: ResponseError::CoordinatorNotAvailable,
            message: None,
        });
        assert_eq!(error_reason(&kafka), "CoordinatorNotAvailable");
        let io = Error::Broker(fjord_client::Error::Protocol("x".into()));
        assert_eq!(error_reason(&io), "BrokerUnreachable");
    }
}
