//! ConsumerGroup controller. Today it resolves the cluster, honours the pause
//! annotation and reports that group state cannot be read yet: fjord-client has no
//! DescribeGroups/OffsetFetch/OffsetCommit calls and the broker no group coordinator.
//! Deleting the resource never touches the group, so there is no finalizer.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use crate::cluster::apply_status;
use crate::conditions;
use crate::context::{paused, Context};
use crate::types::{ConsumerGroup, FjordCluster};
use crate::{Error, Result};

const KIND: &str = "ConsumerGroup";

/// One reconcile of a ConsumerGroup.
pub async fn reconcile(group: Arc<ConsumerGroup>, ctx: Arc<Context>) -> Result<Action> {
    ctx.metrics.reconciles.with_label_values(&[KIND]).inc();
    let ns = group
        .namespace()
        .ok_or_else(|| Error::Invalid("ConsumerGroup without namespace".into()))?;
    let api: Api<ConsumerGroup> = Api::namespaced(ctx.client.clone(), &ns);
    let generation = group.meta().generation;
    let mut status = group.status.clone().unwrap_or_default();
    status.observed_generation = generation;
    let resync = Duration::from_secs(group.spec.resync_seconds.max(1) as u64);

    if paused(&*group) {
        conditions::set(
            &mut status.conditions,
            "Paused",
            true,
            "ReconciliationPaused",
            format!("annotation {} is \"true\"", crate::types::PAUSE_ANNOTATION),
            generation,
        );
        apply_status(&api, &*group, serde_json::to_value(&status).unwrap()).await?;
        return Ok(Action::requeue(resync));
    }
    conditions::remove(&mut status.conditions, "Paused");

    let clusters: Api<FjordCluster> = Api::namespaced(ctx.client.clone(), &ns);
    if clusters.get_opt(&group.spec.cluster_ref).await?.is_none() {
        conditions::set(
            &mut status.conditions,
            "Ready",
            false,
            "ClusterNotFound",
            format!(
                "FjordCluster {:?} not found in namespace {ns:?}",
                group.spec.cluster_ref
            ),
            generation,
        );
    } else {
        conditions::set(&mut status.conditions, "Ready", false, "GroupApisUnavailable",
            format!("group {:?}: reading group state needs DescribeGroups and OffsetFetch, which fjord-client does not speak yet", group.spec.group_id),
            generation);
    }
    apply_status(&api, &*group, serde_json::to_value(&status).unwrap()).await?;
    Ok(Action::requeue(resync))
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
    Controller::new(api, watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(kind = KIND, error = %e, "controller");
            }
        })
        .await;
}
