//! Status conditions: set by type, keeping lastTransitionTime while the status holds.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Sets condition `type_` in `conditions`. The transition time moves only when the
/// status changes, so `kubectl get -o yaml` shows since when a state holds.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) {
    let status = if status { "True" } else { "False" }.to_string();
    let message = message.into();
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.status != status {
            c.last_transition_time = Time(Timestamp::now());
        }
        c.status = status;
        c.reason = reason.into();
        c.message = message;
        c.observed_generation = generation;
    } else {
        conditions.push(Condition {
            type_: type_.into(),
            status,
            reason: reason.into(),
            message,
            observed_generation: generation,
            last_transition_time: Time(Timestamp::now()),
        });
    }
}

/// Removes condition `type_`.
/// Sets Ready false with reason ClusterNotFound: the resource's `clusterRef` names no
/// FjordCluster in its namespace.
pub fn cluster_not_found(
    conditions: &mut Vec<Condition>,
    cluster_ref: &str,
    namespace: &str,
    generation: Option<i64>,
) {
    set(
        conditions,
        "Ready",
        false,
        "ClusterNotFound",
        format!("FjordCluster {cluster_ref:?} not found in namespace {namespace:?}"),
        generation,
    );
}

pub fn remove(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// Whether condition `type_` is True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// The reason of condition `type_`, when present.
pub fn reason<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a str> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.reason.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_on_status_change() {
        let mut cs = Vec::new();
        set(&mut cs, "Ready", false, "Creating", "creating", Some(1));
        let first = cs[0].last_transition_time.clone();
        set(&mut cs, "Ready", false, "Waiting", "still", Some(2));
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].last_transition_time, first);
        assert_eq!(
            (cs[0].reason.as_str(), cs[0].observed_generation),
            ("Waiting", Some(2))
        );
        set(&mut cs, "Ready", true, "Ready", "ok", Some(2));
        assert_ne!(cs[0].last_transition_time, first);
        assert!(is_true(&cs, "Ready"));
        remove(&mut cs, "Ready");
        assert!(cs.is_empty());
    }
}
