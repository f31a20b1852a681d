//! Topic controller: brings the broker's topic to the spec with the steps of
//! [`crate::plan`], reverting drift on every periodic resync, and deletes the topic
//! through a finalizer unless `deletionPolicy: Retain` or `fjord.dev/managed: "false"`.
//! A changed replication factor runs as partition reassignments ([`crate::topic_rf`]),
//! one batch per reconcile, with its progress in `status.reassignment`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fjord_client::{ConfigResource, NewTopic, PartitionMetadata, ResponseError};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::{Resource, ResourceExt};

use crate::apply::apply_status;
use crate::broker_calls::{broker_state, start_moves};
use crate::conditions;
use crate::context::{paused, BrokerEndpoint, Context};
use crate::plan::{plan_topic, ObservedTopic, PlanError, TopicStep};
use crate::rebalance::Broker;
use crate::topic_rf::{self, PartitionState};
use crate::types::{DeletionPolicy, FjordCluster, Topic, TopicStatus, MANAGED_ANNOTATION};
use crate::{Error, Result};

const KIND: &str = "Topic";
/// Finalizer that deletes the broker's topic before the resource goes away.
pub const FINALIZER: &str = "fjord.dev/topic";

/// DescribeConfigs source of a config set on the topic itself (DYNAMIC_TOPIC_CONFIG).
const SOURCE_TOPIC: i8 = 1;
/// How soon a Topic whose replication factor is changing is looked at again.
const REASSIGNING_RESYNC: Duration = Duration::from_secs(3);
/// Kafka's default min.insync.replicas, when the broker does not report one.
const DEFAULT_MIN_INSYNC: i32 = 1;

/// Whether the broker's topic is the operator's to change (not annotated
/// `fjord.dev/managed: "false"`).
pub(crate) fn managed(topic: &Topic) -> bool {
    topic
        .annotations()
        .get(MANAGED_ANNOTATION)
        .is_none_or(|v| v != "false")
}

/// One reconcile of a Topic.
pub async fn reconcile(topic: Arc<Topic>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    ctx.metrics.reconciles.with_label_values(&[KIND]).inc();
    let ns = topic
        .namespace()
        .ok_or_else(|| Error::Invalid("Topic without namespace".into()))?;
    let api: Api<Topic> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, topic, |event| async {
        match event {
            Finalizer::Apply(topic) => apply_topic(&api, &topic, &ctx).await,
            Finalizer::Cleanup(topic) => cleanup_topic(&topic, &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    });
    ctx.metrics
        .duration
        .with_label_values(&[KIND])
        .observe(started.elapsed().as_secs_f64());
    result
}

/// The spec asks for what the broker's topic cannot become: condition NotSupported
/// (`reason`) and Ready false (`ready_reason`), both with `message`.
fn not_supported(
    status: &mut TopicStatus,
    reason: &str,
    ready_reason: &str,
    message: String,
    generation: Option<i64>,
) {
    conditions::set(
        &mut status.conditions,
        "NotSupported",
        true,
        reason,
        message.clone(),
        generation,
    );
    conditions::set(
        &mut status.conditions,
        "Ready",
        false,
        ready_reason,
        message,
        generation,
    );
}

async fn write_status(api: &Api<Topic>, topic: &Topic, status: &TopicStatus) -> Result<()> {
    apply_status(api, topic, serde_json::to_value(status).unwrap()).await
}

async fn apply_topic(api: &Api<Topic>, topic: &Topic, ctx: &Context) -> Result<Action> {
    let generation = topic.meta().generation;
    let mut status = topic.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    let name = topic.topic_name();
    status.topic_name = Some(name.clone());

    if paused(topic) {
        conditions::set(
            &mut status.conditions,
            "Paused",
            true,
            "ReconciliationPaused",
            format!("annotation {} is \"true\"", crate::types::PAUSE_ANNOTATION),
            generation,
        );
        write_status(api, topic, &status).await?;
        return Ok(Action::requeue(Duration::from_secs(300)));
    }
    conditions::remove(&mut status.conditions, "Paused");

    if !managed(topic) {
        conditions::set(
            &mut status.conditions,
            "Ready",
            true,
            "Unmanaged",
            format!(
                "annotation {MANAGED_ANNOTATION} is \"false\": the broker's topic is left alone"
            ),
            generation,
        );
        write_status(api, topic, &status).await?;
        return Ok(Action::requeue(Duration::from_secs(300)));
    }

    let ns = topic.namespace().unwrap_or_default();
    let clusters: Api<FjordCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(cluster) = clusters.get_opt(&topic.spec.cluster_ref).await? else {
        conditions::cluster_not_found(
            &mut status.conditions,
            &topic.spec.cluster_ref,
            &ns,
            generation,
        );
        write_status(api, topic, &status).await?;
        return Ok(Action::requeue(Duration::from_secs(30)));
    };

    let bootstrap = BrokerEndpoint::of(&cluster);
    let synced = async {
        let synced = sync_broker(topic, &name, &bootstrap, ctx).await?;
        let action = match &synced {
            Synced::Done { assignment, .. } => {
                change_replication(
                    api,
                    topic,
                    &cluster,
                    &bootstrap,
                    ctx,
                    &mut status,
                    assignment,
                )
                .await?
            }
            Synced::NotSupported(_) => topic_rf::Action::None,
        };
        Ok::<_, Error>((synced, action))
    }
    .await;
    match synced {
        Ok((
            Synced::Done {
                partitions,
                replication_factor,
                topic_id,
                changed,
                ..
            },
            action,
        )) => {
            status.partitions = Some(partitions);
            status.topic_id = Some(topic_id);
            let reassignment = status.reassignment.as_ref();
            let running = reassignment.is_some_and(|r| r.state == "Running");
            // While replicas move, partition 0 lists old and new ones: the factor
            // reported is the one before the change until the change is done.
            if !running || status.replication_factor.is_none() {
                status.replication_factor = Some(replication_factor);
            }
            if let Some(r) = reassignment.filter(|_| action == topic_rf::Action::Finished) {
                status.replication_factor = Some(r.replication_factor);
            }
            let message = reassignment.map(|r| r.message.clone()).unwrap_or_default();
            if let topic_rf::Action::Refused(refusal) = &action {
                not_supported(
                    &mut status,
                    refusal.reason(),
                    refusal.reason(),
                    message,
                    generation,
                );
            } else if running {
                conditions::remove(&mut status.conditions, "NotSupported");
                conditions::set(
                    &mut status.conditions,
                    "Ready",
                    false,
                    "Reassigning",
                    message,
                    generation,
                );
            } else {
                conditions::remove(&mut status.conditions, "NotSupported");
                conditions::set(
                    &mut status.conditions,
                    "Ready",
                    true,
                    "Reconciled",
                    format!(
                        "topic {name:?} has {partitions} partitions of {} replicas",
                        status.replication_factor.unwrap_or(replication_factor)
                    ),
                    generation,
                );
            }
            if !changed.is_empty() {
                ctx.event(topic, EventType::Normal, "Reconciled", changed.join("; "))
                    .await;
            }
            write_status(api, topic, &status).await?;
            ctx.reset_backoff(topic);
            Ok(Action::requeue(if running {
                REASSIGNING_RESYNC
            } else {
                ctx.topic_resync
            }))
        }
        Ok((Synced::NotSupported(message), _)) => {
            not_supported(
                &mut status,
                "PartitionDecrease",
                "NotSupported",
                message.clone(),
                generation,
            );
            ctx.event(topic, EventType::Warning, "NotSupported", message)
                .await;
            write_status(api, topic, &status).await?;
            Ok(Action::requeue(ctx.topic_resync))
        }
        Err(e) => {
            let reason = match &e {
                Error::Broker(b) => b
                    .kafka()
                    .map(|k| format!("KafkaError{}", k.code()))
                    .unwrap_or_else(|| "BrokerUnreachable".into()),
                other => other.kind().into(),
            };
            ctx.forget_broker(&bootstrap).await;
            conditions::set(
                &mut status.conditions,
                "Ready",
                false,
                &reason,
                e.to_string(),
                generation,
            );
            write_status(api, topic, &status).await?;
            Err(e)
        }
    }
}

enum Synced {
    Done {
        partitions: i32,
        replication_factor: i32,
        topic_id: String,
        changed: Vec<String>,
        /// Every partition's replicas, in-sync replicas and leader.
        assignment: Vec<PartitionState>,
    },
    NotSupported(String),
}

async fn sync_broker(
    topic: &Topic,
    name: &str,
    bootstrap: &BrokerEndpoint,
    ctx: &Context,
) -> Result<Synced> {
    let client = ctx.broker(bootstrap).await?;
    let observed = observe(&client, name).await?;
    let steps = match plan_topic(&topic.spec, observed.as_ref()) {
        Ok(steps) => steps,
        Err(PlanError::PartitionDecrease { have, want }) => {
            return Ok(Synced::NotSupported(format!(
                "topic {name:?} has {have} partitions; spec asks for {want}, and partitions cannot be removed: nothing changed"
            )))
        }
    };
    let mut changed = Vec::new();
    for step in steps {
        match step {
            TopicStep::Create => {
                let mut new = NewTopic::new(
                    name,
                    topic.spec.partitions,
                    topic.spec.replication_factor as i16,
                );
                new.configs = topic.spec.config.clone().into_iter().collect();
                match client.create_topic(new).await {
                    Ok(_) => changed.push(format!("created topic {name:?}")),
                    // Created between our look and our create (an earlier reconcile whose
                    // answer was lost): the next steps bring it to the spec.
                    Err(e) if e.kafka() == Some(ResponseError::TopicAlreadyExists) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            TopicStep::GrowPartitions(n) => {
                client.create_partitions(name, n, false).await?;
                changed.push(format!("grew topic {name:?} to {n} partitions"));
            }
            TopicStep::AlterConfigs(ops) => {
                client
                    .incremental_alter_configs(&ConfigResource::Topic(name.into()), &ops, false)
                    .await?;
                changed.push(format!("set {} configs of topic {name:?}", ops.len()));
            }
        }
    }
    let md = client.metadata(Some(&[name])).await?;
    let t = md
        .topic(name)
        .filter(|t| t.error.is_none())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "topic {name:?} missing from Metadata after reconcile"
            ))
        })?;
    Ok(Synced::Done {
        partitions: t.partitions.len() as i32,
        replication_factor: t.partitions.first().map_or(0, |p| p.replicas.len() as i32),
        topic_id: t.topic_id.to_string(),
        changed,
        assignment: t.partitions.iter().map(partition_state).collect(),
    })
}

fn partition_state(p: &PartitionMetadata) -> PartitionState {
    PartitionState {
        partition: p.partition,
        replicas: p.replicas.clone(),
        isr: p.isr.clone(),
        leader: (p.leader_id >= 0).then_some(p.leader_id),
    }
}

/// Runs one step of a replication-factor change ([`topic_rf::step`]) when the spec's
/// factor differs from the broker's or a run is open, and carries out its action:
/// a batch of reassignments (recorded in status before it is sent), or an Event when
/// the run finishes or is refused. Leaves `status.reassignment` for the next step.
async fn change_replication(
    api: &Api<Topic>,
    topic: &Topic,
    cluster: &FjordCluster,
    bootstrap: &BrokerEndpoint,
    ctx: &Context,
    status: &mut TopicStatus,
    assignment: &[PartitionState],
) -> Result<topic_rf::Action> {
    let want = topic.spec.replication_factor;
    let previous = status.reassignment.clone();
    let open = previous
        .as_ref()
        .is_some_and(|r| r.state == "Running" || r.state == "Refused");
    if !open && assignment.iter().all(|p| p.replicas.len() == want as usize) {
        return Ok(topic_rf::Action::None);
    }
    let name = topic.topic_name();
    let state = broker_state(ctx, bootstrap).await?;
    // Brokers at or above the wanted count are being drained by a scale-in.
    let brokers: Vec<Broker> = state
        .registered
        .keys()
        .filter(|&&id| id < cluster.spec.replicas)
        .map(|&id| Broker {
            id,
            rack: state.racks.get(&id).cloned(),
        })
        .collect();
    let load = state
        .replicas_per_broker
        .iter()
        .map(|(&b, &n)| (b, n.max(0) as usize))
        .collect();
    let reassigning = state
        .reassigning
        .iter()
        .filter(|(t, _)| *t == name)
        .map(|(_, p)| *p)
        .collect();
    let client = ctx.broker(bootstrap).await?;
    let min_insync = client
        .describe_configs(&ConfigResource::Topic(name.clone()))
        .await?
        .into_iter()
        .find(|c| c.name == "min.insync.replicas")
        .and_then(|c| c.value?.parse().ok())
        .unwrap_or(DEFAULT_MIN_INSYNC);
    let observed = topic_rf::Observed {
        topic: &name,
        want,
        min_insync,
        brokers: &brokers,
        load: &load,
        partitions: assignment,
        reassigning: &reassigning,
    };
    let (next, action) = topic_rf::step(previous.as_ref(), observed, &Time(Timestamp::now()));
    let was = previous.as_ref().map(|r| r.state.as_str());
    status.reassignment = next;
    let message = status
        .reassignment
        .as_ref()
        .map(|r| r.message.clone())
        .unwrap_or_default();
    match &action {
        topic_rf::Action::Submit(batch) => {
            if was != Some("Running") {
                ctx.event(topic, EventType::Normal, "Reassigning", message)
                    .await;
            }
            // Recorded before it is sent: an operator that dies in between finds the
            // batch in status and counts only what actually moved.
            write_status(api, topic, status).await?;
            start_moves(ctx, bootstrap, batch, "changing the replication factor").await?;
        }
        topic_rf::Action::Finished => {
            ctx.event(
                topic,
                EventType::Normal,
                "ReplicationFactorChanged",
                message,
            )
            .await;
        }
        topic_rf::Action::Refused(_) if was != Some("Refused") => {
            ctx.event(topic, EventType::Warning, "NotSupported", message)
                .await;
        }
        _ => {}
    }
    Ok(action)
}

async fn observe(client: &fjord_client::Client, name: &str) -> Result<Option<ObservedTopic>> {
    let md = client.metadata(Some(&[name])).await?;
    let Some(t) = md.topic(name) else {
        return Ok(None);
    };
    match t.error {
        Some(ResponseError::UnknownTopicOrPartition) => return Ok(None),
        Some(error) => {
            return Err(fjord_client::Error::Kafka {
                resource: format!("topic {name:?}"),
                error,
                message: None,
            }
            .into())
        }
        None => {}
    }
    let topic_configs: BTreeMap<String, String> = client
        .describe_configs(&ConfigResource::Topic(name.into()))
        .await?
        .into_iter()
        .filter(|c| c.source == SOURCE_TOPIC)
        .filter_map(|c| c.value.map(|v| (c.name, v)))
        .collect();
    Ok(Some(ObservedTopic {
        partitions: t.partitions.len() as i32,
        topic_configs,
    }))
}

async fn cleanup_topic(topic: &Topic, ctx: &Context) -> Result<Action> {
    let name = topic.topic_name();
    if topic.spec.deletion_policy == DeletionPolicy::Retain || !managed(topic) || paused(topic) {
        tracing::info!(topic = %name, "resource deleted; topic kept on the broker");
        return Ok(Action::await_change());
    }
    let ns = topic.namespace().unwrap_or_default();
    let clusters: Api<FjordCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(cluster) = clusters.get_opt(&topic.spec.cluster_ref).await? else {
        // No cluster, no topic to delete.
        return Ok(Action::await_change());
    };
    let bootstrap = BrokerEndpoint::of(&cluster);
    let client = ctx.broker(&bootstrap).await?;
    for (_, result) in client.delete_topics(&[&name]).await? {
        match result {
            Ok(()) => {}
            Err(e) if e.kafka() == Some(ResponseError::UnknownTopicOrPartition) => {}
            Err(e) => return Err(e.into()),
        }
    }
    ctx.event(
        topic,
        EventType::Normal,
        "Deleted",
        format!("deleted topic {name:?}"),
    )
    .await;
    Ok(Action::await_change())
}

fn error_policy(topic: Arc<Topic>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(topic = %topic.name_any(), %error, "reconcile failed");
    ctx.metrics
        .errors
        .with_label_values(&[KIND, error.kind()])
        .inc();
    Action::requeue(ctx.backoff(&*topic))
}

/// Runs the Topic controller until the stream ends.
pub async fn run(ctx: Arc<Context>, namespace: Option<&str>) {
    let api = crate::api::<Topic>(&ctx.client, namespace);
    crate::controller(api)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(kind = KIND, error = %e, "controller");
            }
        })
        .await;
}
