//! Carries out the storage growth steps decided by [`crate::storage::step`]: reads the
//! brokers' claims, their StorageClasses and the StatefulSet, patches claims, deletes
//! the StatefulSet with its pods orphaned, and writes `status.storage`, the condition
//! `StorageResizeUnsupported` and Events.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::runtime::events::EventType;
use kube::ResourceExt;

use crate::apply::apply_status;
use crate::context::Context;
use crate::desired::{self, DATA_VOLUME};
use crate::storage::{self, Action, Claim, Observed, StatefulSetState};
use crate::types::{FjordCluster, FjordClusterStatus};
use crate::{conditions, Error, Result};

/// The condition set while the claims cannot grow.
pub const UNSUPPORTED_CONDITION: &str = "StorageResizeUnsupported";

/// What the rest of the reconcile does with the StatefulSet.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// The claim size the applied StatefulSet must carry (see
    /// [`storage::keep_template_size`]).
    pub template_size: Option<String>,
    /// The StatefulSet is being deleted to be re-created: apply nothing now.
    pub hold: bool,
    /// Claims are still growing (reconcile again soon).
    pub resizing: bool,
    /// The StatefulSet is gone for its re-creation: the apply creates it, and until its
    /// controller has adopted the running pods its empty status says nothing about the
    /// brokers (so the rest of the status is left as it was).
    pub recreating: bool,
}

/// One storage step for `cluster`, whose StatefulSet is `existing`; updates `status`.
pub async fn reconcile(
    ctx: &Context,
    cluster: &FjordCluster,
    status: &mut FjordClusterStatus,
    existing: Option<&StatefulSet>,
) -> Result<Outcome> {
    let ns = cluster.namespace().unwrap_or_default();
    let wanted = cluster.spec.storage.size.as_str();
    let statefulset = match existing {
        None => StatefulSetState::Absent,
        Some(s) if s.metadata.deletion_timestamp.is_some() => StatefulSetState::Deleting,
        Some(s) => StatefulSetState::Present {
            replicas: s.spec.replicas.unwrap_or(0),
            template_size: template_size(s),
        },
    };
    let template = match statefulset {
        StatefulSetState::Present { template_size, .. } => template_size,
        _ => None,
    };
    if !storage::needs_claims(wanted, template, status.storage.as_ref()) {
        conditions::remove(&mut status.conditions, UNSUPPORTED_CONDITION);
        return Ok(Outcome {
            template_size: template.map(str::to_string),
            ..Outcome::default()
        });
    }

    let claims_api = Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), &ns);
    let prefix = format!("{DATA_VOLUME}-{}-", cluster.name_any());
    let listed = claims_api
        .list(&ListParams::default().labels(&desired::selector_string(cluster)))
        .await?;
    let mut claims: Vec<Claim> = listed
        .items
        .iter()
        .filter(|c| {
            c.name_any()
                .strip_prefix(&prefix)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(observe_claim)
        .collect();
    claims.sort_by_key(|c| {
        let ordinal: u64 = c.name[prefix.len()..].parse().unwrap_or(u64::MAX);
        ordinal
    });

    let storage_classes = Api::<StorageClass>::all(ctx.client.clone());
    let mut classes = BTreeMap::new();
    let mut classes_unreadable = false;
    for name in storage::classes_to_read(wanted, &claims) {
        match storage_classes.get_opt(&name).await {
            Ok(Some(class)) => {
                classes.insert(name, class.allow_volume_expansion.unwrap_or(false));
            }
            Ok(None) => {}
            // A namespaced install has no cluster-scoped permission: the API server
            // decides when the claims are patched.
            Err(kube::Error::Api(e)) if e.code == 403 => {
                tracing::debug!(class = %name, "may not read StorageClasses: expanding the claims without checking");
                classes_unreadable = true;
            }
            Err(e) => return Err(e.into()),
        }
    }

    // The pods that exist: only those can be restarted to finish a file system resize.
    let pods: Vec<String> = Api::<Pod>::namespaced(ctx.client.clone(), &ns)
        .list_metadata(&ListParams::default().labels(&desired::selector_string(cluster)))
        .await?
        .items
        .iter()
        .map(|p| p.name_any())
        .collect();

    let last = status.storage.clone();
    let mut step = storage::step(
        last.as_ref(),
        Observed {
            wanted,
            statefulset,
            claims: &claims,
            classes: &classes,
            replicas: cluster.spec.replicas,
            pods: &pods,
            classes_unreadable,
        },
    )
    .map_err(|e| {
        Error::Invalid(format!(
            "storage of FjordCluster {}: {e}",
            cluster.name_any()
        ))
    })?;

    // Claims are patched before the status and Events are written, so that a refusal
    // shows as Unsupported (one Warning Event, not one per reconcile).
    if let Action::PatchClaims(names) = &step.action {
        let patch = serde_json::json!({
            "spec": {"resources": {"requests": {"storage": wanted}}}
        });
        for name in names {
            tracing::info!(cluster = %cluster.name_any(), claim = %name, size = wanted, "expanding claim");
            match claims_api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                // Forbidden (admission: the class does not allow expansion; or RBAC) or
                // Invalid: what the API server says becomes the condition.
                Err(kube::Error::Api(e)) if e.code == 403 || e.code == 422 => {
                    if let Some(next) = step.status.as_mut() {
                        step.unsupported = Some(storage::expansion_refused(next, name, &e.message));
                    }
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    let generation = cluster.metadata.generation;
    match &step.unsupported {
        Some(u) => conditions::set(
            &mut status.conditions,
            UNSUPPORTED_CONDITION,
            true,
            u.reason,
            u.message.clone(),
            generation,
        ),
        None => conditions::remove(&mut status.conditions, UNSUPPORTED_CONDITION),
    }
    let was = last.as_ref().map(|s| (s.state.as_str(), s.size.as_str()));
    if let Some(next) = &step.status {
        if was != Some((next.state.as_str(), next.size.as_str())) {
            let (type_, reason) = match next.state.as_str() {
                "Resizing" => (EventType::Normal, "StorageResizeStarted"),
                "Done" => (EventType::Normal, "StorageResized"),
                _ => (EventType::Warning, "StorageResizeUnsupported"),
            };
            ctx.event(cluster, type_, reason, next.message.clone())
                .await;
        }
    }
    status.storage = step.status.clone();

    let mut outcome = Outcome {
        template_size: step.template_size.clone(),
        hold: false,
        resizing: step.status.as_ref().is_some_and(|s| s.state == "Resizing"),
        recreating: statefulset == StatefulSetState::Absent
            && step
                .status
                .as_ref()
                .is_some_and(|s| s.recreate_replicas.is_some()),
    };
    match step.action {
        // Claims were patched above.
        Action::None | Action::PatchClaims(_) => {}
        Action::RecreateStatefulSet => {
            // Recorded first: an operator that dies after the deletion re-creates the
            // StatefulSet with as many pods (see storage::current_replicas).
            let api: Api<FjordCluster> = Api::namespaced(ctx.client.clone(), &ns);
            apply_status(&api, cluster, serde_json::to_value(&*status).unwrap()).await?;
            let statefulsets = Api::<StatefulSet>::namespaced(ctx.client.clone(), &ns);
            let params = DeleteParams {
                propagation_policy: Some(kube::api::PropagationPolicy::Orphan),
                preconditions: existing.and_then(|s| s.metadata.uid.clone()).map(|uid| {
                    Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }
                }),
                ..DeleteParams::default()
            };
            tracing::info!(cluster = %cluster.name_any(), size = wanted, "re-creating the StatefulSet with its pods orphaned for the new claim size");
            statefulsets.delete(&cluster.name_any(), &params).await?;
            outcome.hold = true;
        }
        Action::WaitForDeletion => outcome.hold = true,
    }
    Ok(outcome)
}

/// The size of the StatefulSet's data claim template.
fn template_size(sts: &StatefulSet) -> Option<&str> {
    sts.spec
        .volume_claim_templates
        .as_ref()?
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(DATA_VOLUME))?
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
        .map(|q| q.0.as_str())
}

fn observe_claim(pvc: &PersistentVolumeClaim) -> Claim {
    let spec = pvc.spec.as_ref();
    let status = pvc.status.as_ref();
    let condition = |type_: &str| {
        status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
    };
    Claim {
        name: pvc.name_any(),
        request: spec
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map(|q| q.0.clone()),
        capacity: status
            .and_then(|s| s.capacity.as_ref())
            .and_then(|c| c.get("storage"))
            .map(|q| q.0.clone()),
        class: spec
            .and_then(|s| s.storage_class_name.clone())
            .filter(|c| !c.is_empty()),
        file_system_resize_pending: condition("FileSystemResizePending"),
        infeasible: status
            .and_then(|s| s.allocated_resource_statuses.as_ref())
            .and_then(|a| a.get("storage"))
            .is_some_and(|s| s.ends_with("Infeasible")),
    }
}
