//! The rolling restart's runtime: reads the broker pods and the topics'
//! `min.insync.replicas`, runs [`step`], writes `status.roll` before each action, then
//! elects leaders or deletes a pod, and publishes an Event for each broker restarted.
//! An Event is published only once the status that records its step is written, so a
//! step retried after a failure (or by a restarted operator) is not announced twice.

use std::collections::BTreeMap;

use fjord_client::ConfigResource;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ObjectReference, Pod as KubePod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use kube::runtime::events::EventType;
use kube::ResourceExt;

use super::{pods_to_roll, step, Observed, Pod, RollAction};
use crate::apply::apply_status;
use crate::conditions;
use crate::context::{BrokerEndpoint, Context};
use crate::desired;
use crate::scale::BrokerState;
use crate::types::{FjordCluster, FjordClusterStatus};
use crate::Result;

/// The StatefulSet controller's label naming the revision a pod was created from.
const REVISION_LABEL: &str = "controller-revision-hash";

/// Topics whose `min.insync.replicas` are asked at once.
const DESCRIBE_CONCURRENCY: usize = 16;

/// The broker pods of `cluster`, as [`step`] sees them.
async fn broker_pods(ctx: &Context, cluster: &FjordCluster, ns: &str) -> Result<Vec<Pod>> {
    let api: Api<KubePod> = Api::namespaced(ctx.client.clone(), ns);
    let list = api
        .list(&ListParams::default().labels(&desired::selector_string(cluster)))
        .await?;
    let prefix = format!("{}-", cluster.name_any());
    Ok(list
        .items
        .into_iter()
        .filter_map(|p| {
            let id = p.name_any().strip_prefix(&prefix)?.parse::<i32>().ok()?;
            let ready = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            Some(Pod {
                id,
                uid: p.metadata.uid.clone()?,
                revision: p.labels().get(REVISION_LABEL).cloned(),
                ready,
                terminating: p.metadata.deletion_timestamp.is_some(),
                restart_required: false,
            })
        })
        .collect())
}

/// The pod of broker `id`, as an Event's related object.
fn pod_ref(cluster: &FjordCluster, ns: &str, id: i32) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(format!("{}-{id}", cluster.name_any())),
        namespace: Some(ns.into()),
        ..ObjectReference::default()
    }
}

/// `min.insync.replicas` of each topic with more than one replica (a single replica
/// never holds a roll). A topic that cannot be described is left out; the roll then
/// waits and names it.
async fn topic_min_isr(
    ctx: &Context,
    bootstrap: &BrokerEndpoint,
    state: &BrokerState,
) -> BTreeMap<String, i32> {
    let Ok(client) = ctx.broker(bootstrap).await else {
        return BTreeMap::new();
    };
    let mut topics: Vec<String> = state
        .partitions
        .iter()
        .filter(|p| p.replicas.len() > 1)
        .map(|p| p.topic.clone())
        .collect();
    topics.sort_unstable();
    topics.dedup();
    futures::stream::iter(topics)
        .map(|topic: String| {
            let client = client.clone();
            async move {
                let entries = client
                    .describe_configs(&ConfigResource::Topic(topic.clone()))
                    .await
                    .map_err(
                        |e| tracing::debug!(%topic, error = %e, "min.insync.replicas not read"),
                    )
                    .ok()?;
                let min = entries
                    .iter()
                    .find(|e| e.name == "min.insync.replicas")?
                    .value
                    .as_deref()?
                    .parse::<i32>()
                    .ok()?;
                Some((topic, min))
            }
        })
        .buffer_unordered(DESCRIBE_CONCURRENCY)
        .filter_map(|r| async move { r })
        .collect()
        .await
}

/// Runs one step of the rolling restart of `cluster` and carries out its action.
/// `replicas` are the brokers the cluster keeps; `busy` names another operation that
/// moves replicas (no broker restarts meanwhile). Leaves `status.roll` and the Rolling
/// condition in `status`; returns whether a roll is in progress.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    ctx: &Context,
    cluster: &FjordCluster,
    bootstrap: &BrokerEndpoint,
    sts: &StatefulSet,
    status: &mut FjordClusterStatus,
    brokers: Option<&BrokerState>,
    replicas: i32,
    busy: Option<(&str, &str)>,
) -> Result<bool> {
    let ns = cluster.namespace().unwrap_or_default();
    let api: Api<FjordCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let sts_status = sts.status.clone().unwrap_or_default();
    // Before the StatefulSet controller has seen the current template, its update
    // revision is the previous one.
    let update_revision = (sts_status.observed_generation == sts.metadata.generation)
        .then_some(sts_status.update_revision)
        .flatten();
    let mut pods = broker_pods(ctx, cluster, &ns).await?;
    // Written by the storage step earlier in this reconcile.
    let to_restart = status
        .storage
        .as_ref()
        .map_or(&[][..], |s| s.pods_to_restart.as_slice());
    for pod in &mut pods {
        let name = format!("{}-{}", cluster.name_any(), pod.id);
        pod.restart_required = to_restart.contains(&name);
    }
    let rolling = status.roll.as_ref().is_some_and(|r| r.state == "Rolling");
    let min_isr = match (brokers, update_revision.as_deref()) {
        (Some(state), Some(target))
            if rolling || !pods_to_roll(target, replicas, &pods, &[]).is_empty() =>
        {
            topic_min_isr(ctx, bootstrap, state).await
        }
        _ => BTreeMap::new(),
    };
    let observed = Observed {
        update_revision: update_revision.as_deref(),
        replicas,
        pods: &pods,
        brokers,
        min_isr: &min_isr,
        busy,
    };
    let previous = status.roll.clone();
    let (next, action) = step(previous.as_ref(), observed, &Time(Timestamp::now()));
    let generation = cluster.metadata.generation;

    // What this step announces. Recorded before announced: a reconcile that failed
    // (or an operator that died) between the Event and the status would find the
    // same step again and announce it twice.
    let mut announce: Vec<(Option<i32>, EventType, &str, String)> = Vec::new();
    if next.state == "Rolling" && !rolling {
        let message = format!(
            "rolling restart to revision {}: {}",
            next.revision.as_deref().unwrap_or_default(),
            next.message
        );
        announce.push((None, EventType::Normal, "RollStarted", message));
    }
    let done_before = previous.as_ref().map_or(0, |p| p.done.len());
    if rolling && next.done.len() > done_before {
        for b in &next.done[done_before..] {
            let message = format!(
                "broker {b} restarted, Ready and caught up ({} of the roll)",
                next.done.len()
            );
            announce.push((Some(*b), EventType::Normal, "BrokerRestarted", message));
        }
    }
    let previous_reason = previous.as_ref().and_then(|p| p.reason.clone());
    if next.reason.as_deref() == Some("MinInSyncReplicas") && previous_reason != next.reason {
        announce.push((
            None,
            EventType::Warning,
            "RollWaiting",
            next.message.clone(),
        ));
    }
    if let RollAction::Finish(elect) = &action {
        // Before the roll is recorded as done: a failed election is tried again.
        crate::broker_calls::elect_preferred(ctx, bootstrap, elect, "roll done").await?;
        announce.push((
            None,
            EventType::Normal,
            "RollCompleted",
            next.message.clone(),
        ));
    }
    // Also recorded before a pod is deleted or leadership moved: a restarted operator
    // finds the broker in progress and waits for it instead of picking another.
    let acts = matches!(action, RollAction::Elect { .. } | RollAction::Delete { .. });
    if acts || !announce.is_empty() {
        status.roll = Some(next.clone());
        apply_status(&api, cluster, serde_json::to_value(&*status).unwrap()).await?;
    }

    match &action {
        RollAction::None | RollAction::Wait | RollAction::Finish(_) => {}
        RollAction::Elect { broker, partitions } => {
            let why = format!("moving leadership off broker {broker}");
            crate::broker_calls::elect_preferred(ctx, bootstrap, partitions, &why).await?;
        }
        RollAction::Delete { broker, uid } => {
            let name = format!("{}-{broker}", cluster.name_any());
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            let pods: Api<KubePod> = Api::namespaced(ctx.client.clone(), &ns);
            match pods.delete(&name, &params).await {
                Ok(_) => {}
                // Already gone or replaced: the deletion this step asked for happened.
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
            tracing::info!(cluster = %cluster.name_any(), broker, pod = %name, "rolling restart: pod deleted");
            announce.push((
                Some(*broker),
                EventType::Normal,
                "RestartingBroker",
                format!("{} (pod {name})", next.message),
            ));
        }
    }
    for (broker, type_, reason, message) in announce {
        let related = broker.map(|b| pod_ref(cluster, &ns, b));
        ctx.event_related(cluster, related, type_, reason, message)
            .await;
    }
    let in_progress = next.state == "Rolling";
    if in_progress {
        let reason = next
            .reason
            .clone()
            .or_else(|| next.phase.clone())
            .unwrap_or_else(|| "Rolling".into());
        conditions::set(
            &mut status.conditions,
            "Rolling",
            true,
            &reason,
            next.message.clone(),
            generation,
        );
    } else if next.state == "Done" {
        conditions::set(
            &mut status.conditions,
            "Rolling",
            false,
            "Rolled",
            next.message.clone(),
            generation,
        );
    }
    status.roll = Some(next);
    Ok(in_progress)
}
