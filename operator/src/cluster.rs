//! FjordCluster controller: applies the desired objects of [`crate::desired`], decides
//! scaling with [`crate::scale`], and writes status from the StatefulSet and from what
//! the brokers report through fjord-client.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fjord_client::ResponseError;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use crate::apply::{apply, apply_status};
use crate::broker_calls::{broker_state, elect_preferred, start_moves};
use crate::conditions;
use crate::context::{paused, BrokerEndpoint, Context};
use crate::desired;
use crate::rebalance::{self, Broker, RunAction};
use crate::scale::{self, BrokerState, ScaleDecision};
use crate::throttle;
use crate::types::{BrokerStatus, FjordCluster, FjordClusterStatus, REBALANCE_ANNOTATION};
use crate::{Error, Result};

const KIND: &str = "FjordCluster";

/// One reconcile of a FjordCluster.
pub async fn reconcile(cluster: Arc<FjordCluster>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    ctx.metrics.reconciles.with_label_values(&[KIND]).inc();
    let result = reconcile_inner(&cluster, &ctx).await;
    ctx.metrics
        .duration
        .with_label_values(&[KIND])
        .observe(started.elapsed().as_secs_f64());
    result
}

async fn reconcile_inner(cluster: &FjordCluster, ctx: &Context) -> Result<Action> {
    let ns = cluster
        .namespace()
        .ok_or_else(|| Error::Invalid("FjordCluster without namespace".into()))?;
    let api: Api<FjordCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let generation = cluster.meta().generation;
    let mut status = cluster.status.clone().unwrap_or_default();

    if paused(cluster) {
        conditions::set(
            &mut status.conditions,
            "Paused",
            true,
            "ReconciliationPaused",
            format!("annotation {} is \"true\"", crate::types::PAUSE_ANNOTATION),
            generation,
        );
        apply_status(&api, cluster, serde_json::to_value(&status).unwrap()).await?;
        return Ok(Action::requeue(Duration::from_secs(300)));
    }
    conditions::remove(&mut status.conditions, "Paused");

    // What the CRD's rules cannot check (a listener on a port the brokers use for
    // themselves) leaves the running brokers as they are and says why.
    if let Err(why) = crate::listeners::validate(&cluster.spec) {
        conditions::set(
            &mut status.conditions,
            "Ready",
            false,
            "InvalidListeners",
            why,
            generation,
        );
        status.observed_generation = generation;
        apply_status(&api, cluster, serde_json::to_value(&status).unwrap()).await?;
        return Ok(Action::requeue(Duration::from_secs(300)));
    }

    let client = ctx.client.clone();
    apply(
        &Api::<ConfigMap>::namespaced(client.clone(), &ns),
        &desired::desired_configmap(cluster),
    )
    .await?;
    let services = Api::<Service>::namespaced(client.clone(), &ns);
    apply(&services, &desired::desired_headless_service(cluster)).await?;
    apply(&services, &desired::desired_bootstrap_service(cluster)).await?;
    apply(
        &Api::<NetworkPolicy>::namespaced(client.clone(), &ns),
        &crate::netpol::desired_network_policy(cluster, &ctx.operator_peer),
    )
    .await?;
    apply(
        &Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns),
        &desired::desired_pdb(cluster),
    )
    .await?;

    let statefulsets = Api::<StatefulSet>::namespaced(client.clone(), &ns);
    let existing = statefulsets.get_opt(&cluster.name_any()).await?;
    let current = crate::storage::current_replicas(
        existing.as_ref().and_then(|s| s.spec.replicas),
        status.storage.as_ref(),
    );
    // Certificates before the StatefulSet: every broker it runs has one.
    let certs = crate::certs::reconcile(
        ctx,
        cluster,
        cluster.spec.replicas.max(current.unwrap_or(0)),
    )
    .await?;
    status.certificates = Some(certs.status);
    let storage =
        crate::storage_run::reconcile(ctx, cluster, &mut status, existing.as_ref()).await?;
    if storage.hold {
        apply_status(&api, cluster, serde_json::to_value(&status).unwrap()).await?;
        return Ok(Action::requeue(Duration::from_secs(2)));
    }

    let bootstrap = BrokerEndpoint::of(cluster);
    let brokers = match broker_state(ctx, &bootstrap).await {
        Ok(state) => Some(state),
        Err(e) => {
            tracing::debug!(cluster = %cluster.name_any(), error = %e, "brokers not reachable");
            None
        }
    };
    let decision = scale::decide(cluster.spec.replicas, current, brokers.as_ref());
    if let ScaleDecision::Drain { moves, .. } = &decision {
        start_moves(
            ctx,
            &bootstrap,
            moves,
            "moving replicas off a broker being removed",
        )
        .await?;
    }
    let mut desired_sts = desired::desired_statefulset(cluster, decision.replicas());
    crate::storage::keep_template_size(&mut desired_sts, storage.template_size.as_deref());
    let sts = apply(&statefulsets, &desired_sts).await?;
    if storage.recreating {
        apply_status(&api, cluster, serde_json::to_value(&status).unwrap()).await?;
        return Ok(Action::requeue(Duration::from_secs(2)));
    }

    // Brokers removed by a scale-in leave the cluster's registry once their pods are
    // gone: those shrunk away now, and those an earlier reconcile could not finish.
    let mut leaving: Vec<i32> = status
        .brokers
        .iter()
        .map(|b| b.id)
        .chain(decision.replicas()..current.unwrap_or(0))
        .filter(|&id| id >= decision.replicas())
        .collect();
    leaving.sort_unstable();
    leaving.dedup();
    let leaving = match &brokers {
        Some(b) => unregister_removed(ctx, cluster, &bootstrap, b, leaving).await,
        None => leaving,
    };

    let sts_status = sts.status.clone().unwrap_or_default();
    status.replicas = sts_status.replicas;
    status.ready_replicas = sts_status.ready_replicas.unwrap_or(0);
    status.label_selector = Some(desired::selector_string(cluster));
    status.observed_generation = generation;
    status.bootstrap = Some(desired::bootstrap_address(cluster));
    status.controller_id = brokers.as_ref().and_then(|b| b.controller_id);
    status.under_replicated_partitions = brokers
        .as_ref()
        .map_or(0, |b| b.under_replicated_partitions);
    status.offline_partitions = brokers.as_ref().map_or(0, |b| b.offline_partitions);
    status.brokers = broker_statuses(cluster.spec.replicas, &decision, brokers.as_ref());
    status
        .brokers
        .extend(leaving.iter().map(|&id| BrokerStatus {
            id,
            state: "Removing".into(),
            address: None,
            replicas: 0,
        }));

    let was_blocked = conditions::is_true(&status.conditions, "ScaleDownBlocked");
    let was_draining = conditions::reason(&status.conditions, "Reconciling") == Some("Draining");
    let mut draining = None;
    match &decision {
        ScaleDecision::Blocked {
            reason, message, ..
        } => {
            conditions::set(
                &mut status.conditions,
                "ScaleDownBlocked",
                true,
                reason.as_str(),
                message.clone(),
                generation,
            );
            if !was_blocked {
                ctx.event(
                    cluster,
                    EventType::Warning,
                    "ScaleDownBlocked",
                    message.clone(),
                )
                .await;
            }
        }
        ScaleDecision::Drain {
            keep,
            wanted,
            moves,
            in_progress,
        } => {
            conditions::remove(&mut status.conditions, "ScaleDownBlocked");
            let message = scale::drain_message(*wanted, *keep, moves.len(), *in_progress);
            if !was_draining {
                ctx.event(cluster, EventType::Normal, "Draining", message.clone())
                    .await;
            }
            draining = Some(message);
        }
        ScaleDecision::Apply(_) => {
            conditions::remove(&mut status.conditions, "ScaleDownBlocked");
        }
    }

    let wanted = decision.replicas();
    let registered = brokers.as_ref().map_or(0, |b| {
        (0..wanted)
            .filter(|id| b.registered.contains_key(id))
            .count() as i32
    });
    let rolled_out = sts_status.observed_generation == sts.metadata.generation
        && sts_status.updated_replicas.unwrap_or(0) == wanted
        && status.replicas == wanted;
    let ready = rolled_out
        && status.ready_replicas == wanted
        && registered == wanted
        && draining.is_none()
        && leaving.is_empty();
    let (reconciling_reason, reconciling_message) = match draining.clone() {
        Some(message) => ("Draining", message),
        None if !leaving.is_empty() && rolled_out => (
            "RemovingBrokers",
            format!("waiting for removed brokers {leaving:?} to stop and leave the cluster"),
        ),
        None => (
            if ready { "Reconciled" } else { "RollingOut" },
            format!(
                "{}/{wanted} pods ready, {registered}/{wanted} brokers registered",
                status.ready_replicas
            ),
        ),
    };
    conditions::set(
        &mut status.conditions,
        "Reconciling",
        !ready,
        reconciling_reason,
        reconciling_message,
        generation,
    );
    let degraded = brokers.is_none() && status.ready_replicas > 0
        || status.under_replicated_partitions > 0
        || status.offline_partitions > 0;
    let degraded_reason = if brokers.is_none() && status.ready_replicas > 0 {
        "BrokersUnreachable"
    } else if status.offline_partitions > 0 {
        "OfflinePartitions"
    } else if status.under_replicated_partitions > 0 {
        "UnderReplicatedPartitions"
    } else {
        "Healthy"
    };
    conditions::set(
        &mut status.conditions,
        "Degraded",
        degraded,
        degraded_reason,
        format!(
            "{} under-replicated, {} offline partitions",
            status.under_replicated_partitions, status.offline_partitions
        ),
        generation,
    );
    let busy = match (&draining, &brokers) {
        (Some(message), _) => Some(("Draining", message.clone())),
        (None, Some(b)) if !b.reassigning.is_empty() => Some((
            "ReassignmentInProgress",
            format!(
                "{} partition reassignments in progress",
                b.reassigning.len()
            ),
        )),
        _ => None,
    };
    let rolling = crate::roll::run(
        ctx,
        cluster,
        &bootstrap,
        &sts,
        &mut status,
        brokers.as_ref(),
        wanted,
        busy.as_ref().map(|(r, m)| (*r, m.as_str())),
    )
    .await?;
    let rebalancing = match &brokers {
        Some(b) => rebalance_step(ctx, cluster, &bootstrap, &mut status, b, wanted, ready).await?,
        None => false,
    };
    let was_ready = conditions::is_true(&status.conditions, "Ready");
    let (ready_reason, ready_message) = if ready {
        ("Ready", format!("{wanted} brokers ready"))
    } else if brokers.is_none() {
        (
            "BrokersUnreachable",
            format!("brokers not answering the operator at {bootstrap}"),
        )
    } else {
        (
            "BrokersNotReady",
            format!("{}/{wanted} brokers ready", status.ready_replicas),
        )
    };
    conditions::set(
        &mut status.conditions,
        "Ready",
        ready,
        ready_reason,
        ready_message.clone(),
        generation,
    );
    if ready && !was_ready {
        ctx.event(cluster, EventType::Normal, "Ready", ready_message)
            .await;
    }
    apply_status(&api, cluster, serde_json::to_value(&status).unwrap()).await?;
    // Settled: checked again in a minute. Anything under way, or a cluster that is
    // degraded (under-replicated while a broker catches up), every 5 s, so that status
    // follows the brokers' recovery.
    let settled = ready && !degraded && !rebalancing && !storage.resizing && !rolling;
    let recheck = Duration::from_secs(if settled { 60 } else { 5 });
    Ok(Action::requeue(recheck.min(certs.requeue_after)))
}

/// Runs one step of a rebalance ([`rebalance::step`]) and carries out its action:
/// a batch of reassignments, or at the end preferred leader elections, an Event and
/// the removal of the annotation that asked for the run. Returns whether a run is in
/// progress.
async fn rebalance_step(
    ctx: &Context,
    cluster: &FjordCluster,
    bootstrap: &BrokerEndpoint,
    status: &mut FjordClusterStatus,
    state: &BrokerState,
    wanted: i32,
    steady: bool,
) -> Result<bool> {
    let api: Api<FjordCluster> =
        Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    let brokers: Vec<Broker> = (0..wanted)
        .filter(|id| state.registered.contains_key(id))
        .map(|id| Broker {
            id,
            rack: state.racks.get(&id).cloned(),
        })
        .collect();
    let requested = cluster
        .annotations()
        .get(REBALANCE_ANNOTATION)
        .is_some_and(|v| v == "true");
    let was_running = status
        .rebalance
        .as_ref()
        .is_some_and(|r| r.state == "Running");
    let observed = rebalance::Observed {
        steady,
        auto: cluster.spec.auto_rebalance(),
        requested,
        brokers: &brokers,
        state,
    };
    // A batch's replication throttle goes once nothing moves, also when the batch
    // was sent by an operator that died before removing it.
    let recorded = status.rebalance.as_ref().and_then(|r| r.throttle.as_ref());
    if let Some(recorded) = throttle::due_for_removal(recorded, state.reassigning.len()) {
        let client = ctx.broker(bootstrap).await?;
        throttle::apply(&client, &throttle::remove_ops(recorded)).await?;
        if let Some(r) = status.rebalance.as_mut() {
            r.throttle = None;
        }
        apply_status(&api, cluster, serde_json::to_value(&*status).unwrap()).await?;
    }
    let (mut next, action) =
        rebalance::step(status.rebalance.as_ref(), observed, &Time(Timestamp::now()));
    let generation = cluster.meta().generation;
    let running = next.state == "Running";
    if running && !was_running {
        ctx.event(
            cluster,
            EventType::Normal,
            "RebalanceStarted",
            next.message.clone(),
        )
        .await;
    }
    match &action {
        RunAction::None | RunAction::Wait => {}
        RunAction::Submit(batch) => {
            // The batch is recorded before it is sent, and its throttle before it is
            // set: an operator that dies in between finds both in status, counts only
            // what actually moved and removes the throttle.
            let throttle =
                throttle::plan(cluster.spec.rebalance_throttle(), &state.partitions, batch);
            next.throttle = throttle.as_ref().map(throttle::Throttle::status);
            status.rebalance = Some(next.clone());
            apply_status(&api, cluster, serde_json::to_value(&*status).unwrap()).await?;
            if let Some(t) = &throttle {
                throttle::apply(&*ctx.broker(bootstrap).await?, &t.set_ops()).await?;
            }
            start_moves(ctx, bootstrap, batch, "rebalancing").await?;
        }
        RunAction::Finish(elect) => {
            elect_preferred(ctx, bootstrap, elect, "rebalanced").await?;
            ctx.event(
                cluster,
                EventType::Normal,
                "Rebalanced",
                next.message.clone(),
            )
            .await;
            if requested {
                let patch = serde_json::json!({
                    "metadata": {"annotations": {REBALANCE_ANNOTATION: null}}
                });
                api.patch(
                    &cluster.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
            }
        }
    }
    let (reason, message) = if running {
        (
            next.reason.clone().unwrap_or_else(|| "Rebalancing".into()),
            next.message.clone(),
        )
    } else {
        ("Balanced".to_string(), next.message.clone())
    };
    if next.state != "Idle" {
        conditions::set(
            &mut status.conditions,
            "Rebalancing",
            running,
            &reason,
            message,
            generation,
        );
    }
    status.rebalance = Some(next);
    Ok(running)
}

/// Unregisters the removed brokers among `leaving` that have stopped (no longer listed
/// as up); returns those still to go. A broker still running, or not yet fenced by
/// the controller, is tried again on a later reconcile.
async fn unregister_removed(
    ctx: &Context,
    cluster: &FjordCluster,
    bootstrap: &BrokerEndpoint,
    brokers: &BrokerState,
    leaving: Vec<i32>,
) -> Vec<i32> {
    let Ok(client) = ctx.broker(bootstrap).await else {
        return leaving;
    };
    let mut still = Vec::new();
    for id in leaving {
        if brokers.registered.contains_key(&id) {
            still.push(id);
            continue;
        }
        match client.unregister_broker(id).await {
            Ok(()) => {
                let message = format!("broker {id} drained, stopped and unregistered");
                tracing::info!(cluster = %cluster.name_any(), broker = id, "{message}");
                ctx.event(cluster, EventType::Normal, "BrokerRemoved", message)
                    .await;
            }
            Err(e) if e.kafka() == Some(ResponseError::BrokerIdNotRegistered) => {}
            Err(e) => {
                tracing::debug!(broker = id, error = %e, "removed broker not unregistered yet");
                still.push(id);
            }
        }
    }
    still
}

fn broker_statuses(
    wanted: i32,
    decision: &ScaleDecision,
    brokers: Option<&BrokerState>,
) -> Vec<BrokerStatus> {
    (0..decision.replicas())
        .map(|id| {
            let address = brokers.and_then(|b| b.registered.get(&id).cloned());
            let state = if id >= wanted {
                "Draining"
            } else if address.is_some() {
                "Active"
            } else {
                "Offline"
            };
            BrokerStatus {
                id,
                state: state.into(),
                address,
                replicas: brokers
                    .and_then(|b| b.replicas_per_broker.get(&id).copied())
                    .unwrap_or(0),
            }
        })
        .collect()
}

fn error_policy(cluster: Arc<FjordCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(cluster = %cluster.name_any(), %error, "reconcile failed");
    ctx.metrics
        .errors
        .with_label_values(&[KIND, error.kind()])
        .inc();
    Action::requeue(ctx.backoff(&*cluster))
}

/// Runs the FjordCluster controller until the stream ends.
pub async fn run(ctx: Arc<Context>, namespace: Option<&str>) {
    let client = ctx.client.clone();
    let owned = watcher::Config::default().labels("app.kubernetes.io/managed-by=fjord-operator");
    crate::controller(crate::api::<FjordCluster>(&client, namespace))
        .owns(crate::api::<StatefulSet>(&client, namespace), owned.clone())
        .owns(crate::api::<Service>(&client, namespace), owned.clone())
        .owns(crate::api::<ConfigMap>(&client, namespace), owned.clone())
        .owns(crate::api::<Secret>(&client, namespace), owned.clone())
        .owns(
            crate::api::<NetworkPolicy>(&client, namespace),
            owned.clone(),
        )
        .owns(crate::api::<PodDisruptionBudget>(&client, namespace), owned)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            match r {
                Ok((obj, _)) => {
                    tracing::debug!(kind = KIND, name = %obj.name, "reconciled")
                }
                Err(e) => tracing::debug!(kind = KIND, error = %e, "controller"),
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_statuses_mark_offline_and_draining() {
        let brokers = BrokerState {
            registered: [(0, "a:9092".to_string()), (2, "c:9092".to_string())].into(),
            replicas_per_broker: [(2, 3)].into(),
            ..BrokerState::default()
        };
        let decision = ScaleDecision::Blocked {
            keep: 3,
            wanted: 2,
            reason: scale::BlockedReason::ReplicationFactor,
            message: String::new(),
        };
        let s = broker_statuses(2, &decision, Some(&brokers));
        let states: Vec<_> = s
            .iter()
            .map(|b| (b.id, b.state.as_str(), b.replicas))
            .collect();
        assert_eq!(
            states,
            [(0, "Active", 0), (1, "Offline", 0), (2, "Draining", 3)]
        );
        assert_eq!(s[0].address.as_deref(), Some("a:9092"));
    }
}
