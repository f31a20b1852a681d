//! Storage growth: raising `spec.storage.size` grows every broker's claim in place.
//!
//! A StatefulSet's `volumeClaimTemplates` are immutable, so the claims are grown
//! directly (volume expansion: the claim's request is raised, the storage driver grows
//! the volume and reports the new `status.capacity`), and once every claim asks for
//! the new size the StatefulSet is deleted with its pods orphaned and applied again
//! with the new template: the pods keep running and are adopted by the new
//! StatefulSet (their pod template, so their revision, is unchanged), and claims made
//! later for new brokers get the new size. Nothing restarts, unless a volume reports
//! `FileSystemResizePending` (its file system grows only when a pod mounts it again):
//! its pod is listed in `status.storage.podsToRestart`, and the rolling restart
//! ([`crate::roll`]) restarts it with the same care as for a new revision. A claim
//! kept from a broker removed by a scale-in has no pod to restart: its file system
//! grows when a broker of that ordinal mounts it again, so it is reported as
//! `PendingMount` and does not hold the growth in Resizing.
//!
//! Every step is decided by [`step`] from what is observed (the claims, the
//! StatefulSet, the StorageClasses) and the last status, so an operator killed between
//! two steps continues where the cluster is.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::types::{ClaimResize, StorageStatus};

/// Longest quantity string accepted (the API server's own quantities are far shorter).
pub const MAX_QUANTITY_LEN: usize = 64;

/// A quantity that is not a storage size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not of the form digits, optional fraction, optional suffix (Ki, M, e3, ...).
    #[error("quantity {0:?} is not a size such as 10Gi")]
    Malformed(String),
    /// Longer than [`MAX_QUANTITY_LEN`] or more bytes than fit in 128 bits.
    #[error("quantity {0:?} is too large (at most {MAX_QUANTITY_LEN} characters and 2^128 bytes)")]
    TooLarge(String),
    /// Below zero.
    #[error("quantity {0:?} is negative")]
    Negative(String),
}

/// Bytes of a Kubernetes quantity (`1Gi`, `500M`, `1.5Ti`, `2e9`), a fraction of a byte
/// rounded up as the API server rounds storage.
pub fn bytes(q: &str) -> Result<u128, QuantityError> {
    let malformed = || QuantityError::Malformed(q.to_string());
    let too_large = || QuantityError::TooLarge(q.to_string());
    if q.len() > MAX_QUANTITY_LEN {
        return Err(too_large());
    }
    let (negative, rest) = match q.as_bytes().first() {
        Some(b'-') => (true, &q[1..]),
        Some(b'+') => (false, &q[1..]),
        _ => (false, q),
    };
    let number_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_end);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() || frac.contains('.') {
        return Err(malformed());
    }
    // value = mantissa * 2^binary * 10^exp10 / 10^frac.len()
    let mut mantissa: u128 = 0;
    for d in int.bytes().chain(frac.bytes()) {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(d - b'0')))
            .ok_or_else(too_large)?;
    }
    let (binary, mut exp10): (u32, i64) = match suffix {
        "" => (0, 0),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        s if s.starts_with(['e', 'E']) => {
            let e: i64 = s[1..].parse().map_err(|_| malformed())?;
            // Beyond ±1000 the outcome is the same (too large, or a fraction of a
            // byte), and the arithmetic below cannot overflow.
            (0, e.clamp(-1000, 1000))
        }
        _ => return Err(malformed()),
    };
    if negative && mantissa != 0 {
        return Err(QuantityError::Negative(q.to_string()));
    }
    if mantissa == 0 {
        return Ok(0);
    }
    exp10 -= frac.len() as i64;
    let mut value = mantissa.checked_shl(binary).ok_or_else(too_large)?;
    if value >> binary != mantissa {
        return Err(too_large());
    }
    if exp10 >= 0 {
        let scale = 10u128
            .checked_pow(u32::try_from(exp10).map_err(|_| too_large())?)
            .ok_or_else(too_large)?;
        value = value.checked_mul(scale).ok_or_else(too_large)?;
    } else {
        // 10^39 exceeds any u128: past it what is left is a fraction of a byte.
        value = match u32::try_from(-exp10) {
            Ok(down) if down <= 38 => value.div_ceil(10u128.pow(down)),
            _ => u128::from(value > 0),
        };
    }
    Ok(value)
}

/// A broker's claim as observed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claim {
    /// Claim name (`data-<pod>`).
    pub name: String,
    /// `spec.resources.requests.storage`.
    pub request: Option<String>,
    /// `status.capacity.storage`.
    pub capacity: Option<String>,
    /// `spec.storageClassName`.
    pub class: Option<String>,
    /// Condition `FileSystemResizePending` is True: the volume grew, its file system
    /// grows when the pod restarts.
    pub file_system_resize_pending: bool,
    /// `status.allocatedResourceStatuses.storage` says the driver refused the size
    /// (`ControllerResizeInfeasible`, `NodeResizeInfeasible`).
    pub infeasible: bool,
}

/// The StatefulSet as observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatefulSetState<'a> {
    /// Not there: the next apply creates it with the wanted size.
    Absent,
    /// Being deleted (its pods orphaned); it must be gone before it is applied again.
    Deleting,
    /// There, with its replicas and its claim template's size.
    Present {
        /// `spec.replicas`.
        replicas: i32,
        /// The claim template's `resources.requests.storage`.
        template_size: Option<&'a str>,
    },
}

/// What the storage step observed.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// `spec.storage.size`.
    pub wanted: &'a str,
    /// The StatefulSet.
    pub statefulset: StatefulSetState<'a>,
    /// The brokers' claims.
    pub claims: &'a [Claim],
    /// The brokers the cluster keeps (`spec.replicas`): claims of higher ordinals
    /// belong to brokers removed by a scale-in.
    pub replicas: i32,
    /// The names of the broker pods that exist.
    pub pods: &'a [String],
    /// `allowVolumeExpansion` of each StorageClass read (see [`classes_to_read`]); a
    /// class missing here was not found, unless `classes_unreadable`.
    pub classes: &'a BTreeMap<String, bool>,
    /// The operator may not read StorageClasses (cluster-scoped; a namespaced install
    /// has no such permission): a class missing from `classes` is then unknown, and the
    /// claims are patched anyway, the API server deciding (see [`expansion_refused`]).
    pub classes_unreadable: bool,
}

/// What the runtime does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing: done, unsupported, or waiting for volumes to grow.
    None,
    /// Raise these claims' requests to the wanted size.
    PatchClaims(Vec<String>),
    /// Write status, then delete the StatefulSet with its pods orphaned; the next
    /// apply creates it with the new claim template.
    RecreateStatefulSet,
    /// The StatefulSet is being deleted: apply nothing until it is gone.
    WaitForDeletion,
}

/// Why claims cannot grow: the condition `StorageResizeUnsupported`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// Condition reason.
    pub reason: &'static str,
    /// Condition message, naming the class or claim.
    pub message: String,
}

/// One storage step's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The new `status.storage` (`None`: nothing was ever resized).
    pub status: Option<StorageStatus>,
    /// What to do.
    pub action: Action,
    /// The claim size the applied StatefulSet must carry: the existing template's,
    /// since a StatefulSet's claim templates cannot change (`None`: the spec's).
    pub template_size: Option<String>,
    /// Set: condition `StorageResizeUnsupported` True; `None`: no such condition.
    pub unsupported: Option<Unsupported>,
}

/// Whether the claims must be read at all: not once a run is done (or none was ever
/// needed) and the StatefulSet's template already has the wanted size.
pub fn needs_claims(wanted: &str, template: Option<&str>, last: Option<&StorageStatus>) -> bool {
    // A claim waiting for a pod to mount it is read until it reports its size.
    let settled = last.is_none_or(|s| {
        s.state == "Done" && s.size == wanted && s.claims.iter().all(|c| c.state == "Resized")
    });
    let template_ok = match (template.map(bytes), bytes(wanted)) {
        (Some(Ok(t)), Ok(w)) => t >= w,
        _ => false,
    };
    !(settled && template_ok)
}

/// StorageClasses whose `allowVolumeExpansion` [`step`] needs: those of the claims that
/// must grow. Nothing is read while no claim needs to.
pub fn classes_to_read(wanted: &str, claims: &[Claim]) -> Vec<String> {
    let Ok(w) = bytes(wanted) else {
        return Vec::new();
    };
    let mut classes: Vec<String> = claims
        .iter()
        .filter(|c| below(c.request.as_deref(), w))
        .filter_map(|c| c.class.clone())
        .collect();
    classes.sort();
    classes.dedup();
    classes
}

/// The StatefulSet's replicas for the scale decision: while it is re-created, the
/// count it had when it was deleted.
pub fn current_replicas(observed: Option<i32>, last: Option<&StorageStatus>) -> Option<i32> {
    observed.or_else(|| last.and_then(|s| s.recreate_replicas))
}

fn below(q: Option<&str>, wanted: u128) -> bool {
    // A missing or unreadable quantity is treated as too small: raising it is safe.
    q.map(bytes)
        .is_none_or(|b| b.is_err() || b.is_ok_and(|b| b < wanted))
}

/// Decides the next step from the observed state and the last status.
pub fn step(last: Option<&StorageStatus>, observed: Observed<'_>) -> Result<Step, QuantityError> {
    let wanted = bytes(observed.wanted)?;
    let template = match observed.statefulset {
        StatefulSetState::Present { template_size, .. } => template_size,
        _ => None,
    };
    let template_small = template.is_some_and(|t| below(Some(t), wanted));
    let state_of = |c: &Claim| {
        let state = claim_state(c, wanted);
        // A claim without an ordinal is counted as kept: it holds the growth rather
        // than being forgotten.
        let removed = ordinal(&c.name).is_some_and(|o| o >= observed.replicas);
        if state == "FileSystemResizePending" && removed {
            "PendingMount"
        } else {
            state
        }
    };
    let claims: Vec<ClaimResize> = observed
        .claims
        .iter()
        .map(|c| ClaimResize {
            name: c.name.clone(),
            capacity: c.capacity.clone(),
            state: state_of(c).into(),
        })
        .collect();
    let pending: Vec<&Claim> = observed
        .claims
        .iter()
        .filter(|c| below(c.request.as_deref(), wanted))
        .collect();
    let idle = last.is_none() && pending.is_empty() && !template_small;
    let idle = idle && claims.iter().all(|c| c.state == "Resized");
    let mut step = Step {
        status: None,
        action: Action::None,
        template_size: template.map(str::to_string),
        unsupported: None,
    };
    if idle {
        return Ok(step);
    }
    let resized = claims.iter().filter(|c| c.state == "Resized").count() as i32;
    let pending_mount = claims.iter().filter(|c| c.state == "PendingMount").count() as i32;
    let total = claims.len() as i32;
    // Only pods that exist can be restarted; a kept broker's pod missing now (being
    // re-created) is listed again once it is back.
    let pods_to_restart: Vec<String> = observed
        .claims
        .iter()
        .filter(|c| state_of(c) == "FileSystemResizePending")
        .map(|c| pod_of(&c.name))
        .filter(|p| observed.pods.contains(p))
        .collect();
    let mut status = StorageStatus {
        size: observed.wanted.to_string(),
        state: "Resizing".into(),
        claims_resized: resized,
        claims_total: total,
        claims,
        pods_to_restart,
        recreate_replicas: last.and_then(|s| s.recreate_replicas),
        message: String::new(),
    };
    match observed.statefulset {
        StatefulSetState::Deleting => {
            status.message = format!(
                "{resized}/{total} claims resized; waiting for the StatefulSet to be deleted \
                 (pods orphaned) to re-create it with claims of {}",
                observed.wanted
            );
            step.action = Action::WaitForDeletion;
        }
        StatefulSetState::Present { replicas, .. } => {
            status.recreate_replicas = None;
            if let Some(u) = unsupported(&pending, observed.classes, observed.classes_unreadable) {
                status.state = "Unsupported".into();
                status.message = u.message.clone();
                step.unsupported = Some(u);
            } else if !pending.is_empty() {
                status.message = format!(
                    "{resized}/{total} claims resized; raising the request of {} claims to {}",
                    pending.len(),
                    observed.wanted
                );
                step.action = Action::PatchClaims(pending.iter().map(|c| c.name.clone()).collect());
            } else if template_small {
                status.recreate_replicas = Some(replicas);
                status.message = format!(
                    "{resized}/{total} claims resized; re-creating the StatefulSet (pods \
                     orphaned, they keep running) so that its claim template says {}",
                    observed.wanted
                );
                step.action = Action::RecreateStatefulSet;
            }
        }
        StatefulSetState::Absent => {
            // Created by the next apply with the spec's size; the claims left behind
            // are patched once it exists.
            step.template_size = None;
        }
    }
    if status.message.is_empty() {
        status.message = progress_message(&status, observed.wanted);
    }
    if status.state == "Resizing"
        && status.claims_resized + pending_mount == status.claims_total
        && !template_small
        && matches!(observed.statefulset, StatefulSetState::Present { .. })
    {
        status.state = "Done".into();
    }
    step.status = Some(status);
    Ok(step)
}

fn claim_state(c: &Claim, wanted: u128) -> &'static str {
    if !below(c.capacity.as_deref(), wanted) {
        "Resized"
    } else if below(c.request.as_deref(), wanted) {
        "Pending"
    } else if c.infeasible {
        "Infeasible"
    } else if c.file_system_resize_pending {
        "FileSystemResizePending"
    } else {
        "Resizing"
    }
}

/// The pod a claim belongs to: claims are `<template>-<pod>`.
fn pod_of(claim: &str) -> String {
    claim
        .strip_prefix(&format!("{}-", crate::desired::DATA_VOLUME))
        .unwrap_or(claim)
        .to_string()
}

/// The broker ordinal of a claim (`data-<cluster>-<ordinal>`).
fn ordinal(claim: &str) -> Option<i32> {
    claim.rsplit_once('-')?.1.parse().ok()
}

/// Why the claims that must grow cannot: the first claim without class, class not
/// found, or class without volume expansion.
fn unsupported(
    pending: &[&Claim],
    classes: &BTreeMap<String, bool>,
    classes_unreadable: bool,
) -> Option<Unsupported> {
    pending.iter().find_map(|c| match &c.class {
        Some(class) if classes_unreadable && !classes.contains_key(class) => None,
        None => Some(Unsupported {
            reason: "NoStorageClass",
            message: format!(
                "claim {} has no StorageClass: it cannot be expanded",
                c.name
            ),
        }),
        Some(class) => match classes.get(class) {
            None => Some(Unsupported {
                reason: "StorageClassNotFound",
                message: format!(
                    "StorageClass {class:?} of claim {} not found: cannot tell whether it \
                     allows volume expansion",
                    c.name
                ),
            }),
            Some(false) => Some(Unsupported {
                reason: "StorageClassNotExpandable",
                message: format!(
                    "StorageClass {class:?} does not allow volume expansion \
                     (allowVolumeExpansion is not true): claims stay at their size"
                ),
            }),
            Some(true) => None,
        },
    })
}

/// The API server refused to raise `claim`'s request (the claim's StorageClass does
/// not allow expansion, or the operator may not patch claims): the growth is
/// `Unsupported` with the server's words, as when the class was read and said no. The
/// next reconcile tries again, so fixing the class or the RBAC resumes it.
pub fn expansion_refused(status: &mut StorageStatus, claim: &str, server: &str) -> Unsupported {
    let message = format!(
        "the API server refused to expand claim {claim} to {}: {server}",
        status.size
    );
    status.state = "Unsupported".into();
    status.message = message.clone();
    Unsupported {
        reason: "ExpansionRefused",
        message,
    }
}

fn progress_message(status: &StorageStatus, wanted: &str) -> String {
    let mut message = format!(
        "{}/{} claims resized to {wanted}",
        status.claims_resized, status.claims_total
    );
    let infeasible: Vec<&str> = status
        .claims
        .iter()
        .filter(|c| c.state == "Infeasible")
        .map(|c| c.name.as_str())
        .collect();
    if !infeasible.is_empty() {
        message += &format!("; the storage driver refused the size for {infeasible:?}");
    }
    if !status.pods_to_restart.is_empty() {
        message += &format!(
            "; pods {:?} are restarted by the rolling restart to finish growing their \
             file systems",
            status.pods_to_restart
        );
    }
    let pending_mount: Vec<&str> = status
        .claims
        .iter()
        .filter(|c| c.state == "PendingMount")
        .map(|c| c.name.as_str())
        .collect();
    if !pending_mount.is_empty() {
        message += &format!(
            "; claims {pending_mount:?} of removed brokers finish growing when a broker \
             mounts them again"
        );
    }
    message
}

/// Gives the desired StatefulSet's data claim template `size` (the existing
/// template's, which cannot change); `None` leaves the spec's.
pub fn keep_template_size(sts: &mut StatefulSet, size: Option<&str>) {
    let Some(size) = size else { return };
    let templates = sts.spec.volume_claim_templates.iter_mut().flatten();
    for claim in templates {
        if claim.metadata.name.as_deref() != Some(crate::desired::DATA_VOLUME) {
            continue;
        }
        if let Some(requests) = claim
            .spec
            .as_mut()
            .and_then(|s| s.resources.as_mut())
            .and_then(|r| r.requests.as_mut())
        {
            requests.insert("storage".into(), Quantity(size.into()));
        }
    }
}

#[cfg(test)]
#[path = "storage_tests.rs"]
mod tests;
