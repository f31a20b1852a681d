//! The autoscaler's runtime: reads the workload's scale subresource, the partition
//! counts of the group's topics and their Topic resources, runs [`decide`], and carries
//! the decision out (a scale patch or a Topic patch), leaving the decision and its reason
//! in `status.autoscale` and the Events for the caller to publish once the status is
//! written.

use std::collections::BTreeMap;

use fjord_client::Client as BrokerClient;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::ResourceExt;

use super::{decide, GroupTopic, Observation, TopicResource, Verdict};
use crate::context::{paused, Context};
use crate::types::{
    Autoscale, AutoscaleStatus, ConsumerGroup, ConsumerGroupStatus, ScaleTargetRef, Topic,
    MANAGED_ANNOTATION, PAUSE_ANNOTATION,
};

/// Why a decision could not be made or carried out (the `Blocked` reason).
#[derive(Debug, thiserror::Error)]
pub enum BlockedError {
    /// The workload, its API or its scale subresource failed.
    #[error("{doing} scaleTargetRef {kind} {name:?} ({api_version}): {source}")]
    Target {
        doing: &'static str,
        kind: String,
        name: String,
        api_version: String,
        source: kube::Error,
    },
    /// Patching a Topic resource's partitions failed.
    #[error("growing Topic {resource:?} to {to} partitions: {source}")]
    Topic {
        resource: String,
        to: i32,
        source: kube::Error,
    },
    /// Listing Topic resources failed.
    #[error("listing Topic resources: {0}")]
    Kube(#[from] kube::Error),
    /// Reading the partition counts from the broker failed.
    #[error("reading the partitions of the group's topics: {0}")]
    Broker(#[from] fjord_client::Error),
}

/// An Event to publish about the ConsumerGroup: type, reason, note.
pub type Note = (EventType, &'static str, String);

/// events.k8s.io refuses a note longer than this many bytes.
const EVENT_NOTE_BYTES_MAX: usize = 1024;

/// Runs one autoscaling decision for `group` if its spec asks for one, and sets
/// `status.autoscale`. A workload or Topic that cannot be read or written leaves the
/// decision `Blocked` with the error as its reason; the group's own status stands.
pub async fn autoscale(
    ctx: &Context,
    group: &ConsumerGroup,
    status: &mut ConsumerGroupStatus,
    broker: &BrokerClient,
) -> Vec<Note> {
    let Some(spec) = group.spec.autoscale.as_ref() else {
        status.autoscale = None;
        return Vec::new();
    };
    let mut autoscale = status.autoscale.clone().unwrap_or_default();
    let now = Timestamp::now();
    autoscale.last_decision_time = Some(now.to_string());
    let notes = match run(ctx, group, spec, status, &mut autoscale, broker, now).await {
        Ok(notes) => notes,
        Err(e) => {
            autoscale.decision = "Blocked".into();
            autoscale.reason = e.to_string();
            Vec::new()
        }
    };
    status.autoscale = Some(autoscale);
    notes
}

async fn run(
    ctx: &Context,
    group: &ConsumerGroup,
    spec: &Autoscale,
    status: &ConsumerGroupStatus,
    autoscale: &mut AutoscaleStatus,
    broker: &BrokerClient,
    now: Timestamp,
) -> Result<Vec<Note>, BlockedError> {
    let ns = group.namespace().unwrap_or_default();
    let target = &spec.scale_target_ref;
    let workload = scale_api(&ctx.client, &ns, target).await?;
    let scale = workload
        .get_scale(&target.name)
        .await
        .map_err(|e| target_error(target, "reading the scale of", e))?;
    let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);

    let mut lag_by_topic: BTreeMap<&str, i64> = BTreeMap::new();
    for p in &status.partitions {
        let lag = lag_by_topic.entry(p.topic.as_str()).or_default();
        *lag = lag.saturating_add(p.lag);
    }
    let growth_on = spec.partition_growth.as_ref().is_some_and(|g| g.enabled);
    let resources = if growth_on && !lag_by_topic.is_empty() {
        topic_resources(ctx, &ns, &group.spec.cluster_ref).await?
    } else {
        BTreeMap::new()
    };
    let mut topics = Vec::with_capacity(lag_by_topic.len());
    if !lag_by_topic.is_empty() {
        let names: Vec<&str> = lag_by_topic.keys().copied().collect();
        let metadata = broker.metadata(Some(&names)).await?;
        for (name, lag) in &lag_by_topic {
            // A topic deleted since the lag was read has no partitions to count.
            let Some(t) = metadata.topic(name).filter(|t| t.error.is_none()) else {
                continue;
            };
            topics.push(GroupTopic {
                name: name.to_string(),
                partitions: i32::try_from(t.partitions.len()).unwrap_or(i32::MAX),
                lag: *lag,
                resource: resources.get(*name).map(|(r, _)| r.clone()),
            });
        }
    }
    let observed = Observation {
        now_ms: now.as_millisecond(),
        current_replicas: current,
        total_lag: status.total_lag,
        topics,
    };
    let decision = decide(spec, &observed, autoscale);

    let mut notes = Vec::new();
    match decision.verdict {
        Verdict::ScaleOut | Verdict::ScaleIn => {
            // The resourceVersion read makes the patch fail rather than overwrite a
            // change someone made in between; the next refresh decides again.
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": scale.metadata.resource_version},
                "spec": {"replicas": decision.replicas},
            });
            workload
                .patch_scale(&target.name, &patch_params(), &Patch::Merge(&patch))
                .await
                .map_err(|e| target_error(target, "scaling", e))?;
            let reason = if decision.verdict == Verdict::ScaleOut {
                "ScaledOut"
            } else {
                "ScaledIn"
            };
            autoscale.last_scale_time = Some(now.to_string());
            notes.push((
                EventType::Normal,
                reason,
                format!(
                    "{} {:?} scaled from {current} to {}: {}",
                    target.kind, target.name, decision.replicas, decision.reason
                ),
            ));
        }
        Verdict::GrowPartitions => {
            let growth = decision
                .growth
                .as_ref()
                .expect("GrowPartitions carries its growth");
            let version = resources
                .get(growth.topic.as_str())
                .and_then(|(_, v)| v.clone());
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": version},
                "spec": {"partitions": growth.to},
            });
            Api::<Topic>::namespaced(ctx.client.clone(), &ns)
                .patch(&growth.resource, &patch_params(), &Patch::Merge(&patch))
                .await
                .map_err(|source| BlockedError::Topic {
                    resource: growth.resource.clone(),
                    to: growth.to,
                    source,
                })?;
            autoscale.last_scale_time = Some(now.to_string());
            notes.push((
                EventType::Normal,
                "PartitionsGrown",
                format!(
                    "Topic {:?} grown from {} to {} partitions: {}",
                    growth.resource, growth.from, growth.to, decision.reason
                ),
            ));
        }
        Verdict::Hold => {}
    }
    for (_, _, note) in &mut notes {
        truncate_note(note);
    }
    Ok(notes)
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(crate::desired::FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

/// The scale target's API, found by discovery so that any kind with a scale subresource
/// works (Deployment, StatefulSet, a custom resource).
async fn scale_api(
    client: &kube::Client,
    ns: &str,
    target: &ScaleTargetRef,
) -> Result<Api<DynamicObject>, BlockedError> {
    let (group, version) = match target.api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", target.api_version.as_str()),
    };
    let gvk = GroupVersionKind::gvk(group, version, &target.kind);
    let (resource, _) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(|e| target_error(target, "finding the API of", e))?;
    Ok(Api::namespaced_with(client.clone(), ns, &resource))
}

fn target_error(target: &ScaleTargetRef, doing: &'static str, source: kube::Error) -> BlockedError {
    BlockedError::Target {
        doing,
        kind: target.kind.clone(),
        name: target.name.clone(),
        api_version: target.api_version.clone(),
        source,
    }
}

/// The Topic resources of `cluster` in `ns` by broker topic name, with what partition
/// growth needs of each and its resourceVersion.
async fn topic_resources(
    ctx: &Context,
    ns: &str,
    cluster: &str,
) -> Result<BTreeMap<String, (TopicResource, Option<String>)>, BlockedError> {
    let list = Api::<Topic>::namespaced(ctx.client.clone(), ns)
        .list(&ListParams::default())
        .await?;
    let mut out = BTreeMap::new();
    for topic in list.items.iter().filter(|t| t.spec.cluster_ref == cluster) {
        let locked = if !crate::topic::managed(topic) {
            Some(format!("annotation {MANAGED_ANNOTATION} is \"false\""))
        } else if paused(topic) {
            Some(format!("annotation {PAUSE_ANNOTATION} is \"true\""))
        } else if topic.metadata.deletion_timestamp.is_some() {
            Some("it is being deleted".into())
        } else {
            None
        };
        let resource = TopicResource {
            name: topic.name_any(),
            spec_partitions: topic.spec.partitions,
            locked,
        };
        out.entry(topic.topic_name())
            .or_insert((resource, topic.resource_version()));
    }
    Ok(out)
}

fn truncate_note(note: &mut String) {
    if note.len() > EVENT_NOTE_BYTES_MAX {
        let mut end = EVENT_NOTE_BYTES_MAX;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_notes_fit_the_api_limit() {
        let mut note = "é".repeat(EVENT_NOTE_BYTES_MAX);
        truncate_note(&mut note);
        assert!(note.len() <= EVENT_NOTE_BYTES_MAX && note.len() >= EVENT_NOTE_BYTES_MAX - 1);
        let mut short = "ok".to_string();
        truncate_note(&mut short);
        assert_eq!(short, "ok");
    }
}
