//! Rolling restarts decided by the operator, as a pure function of the broker pods,
//! the StatefulSet's update revision, what the brokers report and the last
//! `status.roll`.
//!
//! The StatefulSet uses the `OnDelete` update strategy, so a change of the pod template
//! (config hash, image) restarts nothing by itself: the pods whose
//! `controller-revision-hash` differs from the StatefulSet's update revision are the
//! ones to roll, and [`step`] picks them one at a time. Kubernetes' own rolling update
//! waits for readiness only; here a broker is restarted only when
//! - no other broker is down and no reassignment or drain is running,
//! - no partition would drop below its topic's `min.insync.replicas` without it (a
//!   partition whose replication factor is at most its min ISR never has a spare
//!   replica, so it never holds a roll up; waiting for it would wait forever),
//! - no partition is under-replicated for another reason than this broker,
//!
//! its leaderships are moved away first (preferred leader election where another
//! replica is preferred; the rest the broker hands over itself in its controlled
//! shutdown), and the next broker waits until this one is back, Ready, registered and
//! every partition is in sync again. The active controller goes last, so the quorum
//! fails over once.
//!
//! A pod at the target revision is restarted too when its claim's volume grew but its
//! file system grows only when a pod mounts it again (`status.storage.podsToRestart`,
//! see [`crate::storage`]): that restart goes through the same safe steps.
//!
//! Every action is recorded in `status.roll` before it is carried out (with the uid of
//! the pod deleted), and each step reads the pods again: a restarted operator never
//! deletes a pod already replaced (a different uid, or at the target revision), and
//! deletes the pod of the broker in progress when it is still the one named in status
//! (the deletion never happened). A replacement pod may still report that its volume
//! needs a restart until it has mounted it, so a broker restarted for that in this roll
//! is never restarted again for it, and the roll finishes only once those flags are
//! gone (else the next reconcile would start a roll for a flag that is about to clear).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::scale::BrokerState;
use crate::types::RollStatus;

/// Leader elections asked for one broker before it is restarted anyway: a partition
/// it still leads is handed over by its controlled shutdown.
pub const ELECTIONS_MAX: i32 = 3;

/// A broker pod as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    /// The pod's ordinal: the broker's node id.
    pub id: i32,
    /// The pod's uid: a deletion names it, so a pod already replaced is never deleted.
    pub uid: String,
    /// Its `controller-revision-hash` label.
    pub revision: Option<String>,
    /// Whether its Ready condition is true.
    pub ready: bool,
    /// Whether it is being deleted.
    pub terminating: bool,
    /// Its claim's volume grew but the file system grows only once a pod mounts it
    /// again (`status.storage.podsToRestart` lists it).
    pub restart_required: bool,
}

/// What the controller observed, for [`step`].
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// The StatefulSet's `status.updateRevision`, once its controller has observed the
    /// current spec (`None` before: the revision would be stale).
    pub update_revision: Option<&'a str>,
    /// The brokers the cluster keeps: pods `0..replicas` (those above are drained and
    /// removed, not rolled).
    pub replicas: i32,
    /// The broker pods that exist.
    pub pods: &'a [Pod],
    /// What the brokers report, `None` when they cannot be asked.
    pub brokers: Option<&'a BrokerState>,
    /// `min.insync.replicas` of each topic with more than one replica.
    pub min_isr: &'a BTreeMap<String, i32>,
    /// Another operation that moves replicas (a drain, reassignments in progress):
    /// its condition reason and message. No broker is restarted meanwhile.
    pub busy: Option<(&'a str, &'a str)>,
}

/// What the roll does now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollAction {
    /// Nothing to roll.
    None,
    /// Look again later (the status says why).
    Wait,
    /// Elect the preferred leader of these partitions, moving their leadership off
    /// `broker`.
    Elect {
        /// The broker about to restart.
        broker: i32,
        /// Partitions it leads whose preferred leader is another in-sync replica.
        partitions: Vec<(String, i32)>,
    },
    /// Delete the pod of `broker` (the StatefulSet re-creates it at the update
    /// revision), only if its uid is still `uid`.
    Delete {
        /// The broker to restart.
        broker: i32,
        /// Its pod's uid.
        uid: String,
    },
    /// The roll is done: elect the preferred leader of these partitions (those led by
    /// another replica after the restarts).
    Finish(Vec<(String, i32)>),
}

/// Broker pods `0..replicas` not already being deleted that are not at
/// `update_revision`, or whose volume needs a restart (unless they are in `done`:
/// restarted for it in this roll already).
pub fn pods_to_roll(update_revision: &str, replicas: i32, pods: &[Pod], done: &[i32]) -> Vec<i32> {
    let mut ids: Vec<i32> = pods
        .iter()
        .filter(|p| p.id < replicas && !p.terminating)
        .filter(|p| stale(p, update_revision) || (p.restart_required && !done.contains(&p.id)))
        .map(|p| p.id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

fn stale(pod: &Pod, target: &str) -> bool {
    !pod.terminating && pod.revision.as_deref() != Some(target)
}

/// Why `pod` restarts: a new revision, or its volume.
fn why(pod: &Pod, target: &str) -> String {
    if pod.revision.as_deref() != Some(target) {
        format!("to revision {target}")
    } else {
        "to finish growing its volume".into()
    }
}

/// The first partition (topic, partition) with a replica other than `except` out of
/// its ISR.
fn under_replicated(state: &BrokerState, except: Option<i32>) -> Option<(String, i32)> {
    state.partitions.iter().find_map(|p| {
        let key = (p.topic.clone(), p.partition);
        let isr = state.isr.get(&key).map_or(&[][..], Vec::as_slice);
        p.replicas
            .iter()
            .any(|r| Some(*r) != except && !isr.contains(r))
            .then_some(key)
    })
}

/// Why restarting `broker` would take a partition below its min ISR, if it would.
fn below_min_isr(
    state: &BrokerState,
    min_isr: &BTreeMap<String, i32>,
    broker: i32,
) -> Option<String> {
    state.partitions.iter().find_map(|p| {
        let isr = state.isr.get(&(p.topic.clone(), p.partition))?;
        if !isr.contains(&broker) || p.replicas.len() <= 1 {
            return None;
        }
        let Some(&min) = min_isr.get(&p.topic) else {
            return Some(format!(
                "min.insync.replicas of topic {:?} is not known yet",
                p.topic
            ));
        };
        let rf = p.replicas.len() as i32;
        let left = isr.len() as i32 - 1;
        (rf > min && left < min).then(|| {
            format!(
                "restarting broker {broker} would take topic {:?} partition {} below \
                 min.insync.replicas {min} (in-sync replicas {isr:?})",
                p.topic, p.partition
            )
        })
    })
}

/// Partitions led by another replica than their preferred one (the first), where the
/// preferred one is in sync.
fn off_preferred(state: &BrokerState, led_by: Option<i32>) -> Vec<(String, i32)> {
    state
        .partitions
        .iter()
        .filter_map(|p| {
            let key = (p.topic.clone(), p.partition);
            let leader = state.leaders.get(&key).copied();
            let preferred = *p.replicas.first()?;
            let in_sync = state.isr.get(&key).is_some_and(|i| i.contains(&preferred));
            let wanted = led_by.is_none_or(|b| leader == Some(b));
            (wanted && in_sync && leader != Some(preferred)).then_some(key)
        })
        .collect()
}

/// The brokers a roll starts with, and which of them only for their volume.
fn start_message(to_roll: &[i32], pods: &BTreeMap<i32, &Pod>, target: &str) -> String {
    let volume: Vec<i32> = to_roll
        .iter()
        .copied()
        .filter(|id| {
            pods.get(id)
                .is_some_and(|p| p.revision.as_deref() == Some(target))
        })
        .collect();
    if volume.is_empty() {
        format!("brokers {to_roll:?} to restart")
    } else {
        format!("brokers {to_roll:?} to restart ({volume:?} to finish growing their volumes)")
    }
}

fn wait(mut status: RollStatus, reason: &str, message: String) -> (RollStatus, RollAction) {
    status.reason = Some(reason.into());
    status.message = message;
    (status, RollAction::Wait)
}

/// One step of a rolling restart, from the last status and what is observed now.
/// Returns the next status and what to do; the status of an [`RollAction::Elect`] or
/// [`RollAction::Delete`] must be written before the action is carried out. `now`
/// stamps the start, each phase and the end.
pub fn step(
    previous: Option<&RollStatus>,
    observed: Observed<'_>,
    now: &Time,
) -> (RollStatus, RollAction) {
    let mut status = previous.cloned().unwrap_or_else(|| RollStatus {
        state: "Idle".into(),
        ..RollStatus::default()
    });
    let Some(target) = observed.update_revision else {
        return (status, RollAction::None);
    };
    let pods: BTreeMap<i32, &Pod> = observed
        .pods
        .iter()
        .filter(|p| p.id < observed.replicas)
        .map(|p| (p.id, p))
        .collect();

    if status.state == "Rolling" && status.revision.as_deref() != Some(target) {
        // The template changed again mid-roll: the brokers done so far run the old
        // target and roll again; the broker in progress is finished first.
        status.revision = Some(target.into());
        status.done.clear();
    }
    let done = if status.state == "Rolling" {
        status.done.clone()
    } else {
        Vec::new()
    };
    let to_roll = pods_to_roll(target, observed.replicas, observed.pods, &done);
    if status.state != "Rolling" {
        if to_roll.is_empty() {
            status.revision = Some(target.into());
            return (status, RollAction::None);
        }
        status = RollStatus {
            state: "Rolling".into(),
            revision: Some(target.into()),
            started_at: Some(now.clone()),
            message: start_message(&to_roll, &pods, target),
            ..RollStatus::default()
        };
    }
    // A broker removed by a scale-in is not waited for.
    if status.broker.is_some_and(|b| b >= observed.replicas) {
        status.broker = None;
        status.phase = None;
        status.restarted_uid = None;
    }

    let state = observed.brokers;
    let mut candidate = None;
    if let Some(b) = status.broker {
        let pod = pods.get(&b).copied();
        // The pod this roll deleted for `b`, if it did: a pod with another uid is its
        // replacement, even while that still reports that its volume needs a restart
        // (it grows once the new pod has mounted it).
        let replaced = |p: &Pod| status.restarted_uid.as_ref().is_some_and(|u| *u != p.uid);
        let needs_volume_restart = |p: &Pod| !p.terminating && p.restart_required && !replaced(p);
        if pod.is_some_and(|p| stale(p, target) || needs_volume_restart(p)) {
            // Not deleted yet (or the target changed since): it is still the one.
            candidate = Some(b);
        } else {
            let back = pod.is_some_and(|p| {
                !p.terminating && p.ready && p.revision.as_deref() == Some(target)
            });
            let registered = state.is_some_and(|s| s.registered.contains_key(&b));
            let lagging = state.and_then(|s| under_replicated(s, None));
            match (back, registered, lagging) {
                (false, _, _) => {
                    return wait(
                        status,
                        "BrokerRestarting",
                        format!(
                            "waiting for broker {b}'s pod to be back at revision {target} \
                             and Ready"
                        ),
                    )
                }
                (true, false, _) => {
                    return wait(
                        status,
                        "BrokerRestarting",
                        format!("waiting for broker {b} to register with the cluster"),
                    )
                }
                (true, true, Some((topic, partition))) => {
                    return wait(
                        status,
                        "CatchingUp",
                        format!(
                            "waiting for broker {b} to catch up: topic {topic:?} partition \
                             {partition} is under-replicated"
                        ),
                    )
                }
                (true, true, None) => {
                    if !status.done.contains(&b) {
                        status.done.push(b);
                    }
                    status.broker = None;
                    status.phase = None;
                    status.phase_started_at = None;
                    status.restarted_uid = None;
                    status.elections = 0;
                }
            }
        }
    }

    let candidate = match candidate {
        Some(b) => b,
        None => {
            // Without the broker just finished: its replacement may still report
            // that its volume needs a restart.
            let to_roll = pods_to_roll(target, observed.replicas, observed.pods, &status.done);
            if to_roll.is_empty() {
                // A replacement pod reports its volume grown once it has mounted it;
                // finishing before would start another roll for the stale flag.
                let growing: Vec<i32> = status
                    .done
                    .iter()
                    .copied()
                    .filter(|b| pods.get(b).is_some_and(|p| p.restart_required))
                    .collect();
                if !growing.is_empty() {
                    return wait(
                        status,
                        "VolumeGrowing",
                        format!(
                            "brokers {growing:?} restarted; waiting for their volumes to \
                             report the grown file system"
                        ),
                    );
                }
                let elect = state.map_or_else(Vec::new, |s| off_preferred(s, None));
                status.state = "Done".into();
                status.reason = None;
                status.finished_at = Some(now.clone());
                status.message = format!(
                    "restarted brokers {:?}; every broker at revision {target}",
                    status.done
                );
                return (status, RollAction::Finish(elect));
            }
            let controller = state.and_then(|s| s.controller_id);
            // Brokers that are down serve nothing, so they go first; the controller
            // goes last, so the quorum fails over once.
            *to_roll
                .iter()
                .min_by_key(|&&id| (Some(id) == controller, pods[&id].ready, id))
                .expect("to_roll is not empty")
        }
    };

    if let Some((reason, message)) = observed.busy {
        return wait(
            status,
            reason,
            format!("broker {candidate} waits: {message}"),
        );
    }
    let Some(state) = state else {
        return wait(
            status,
            "BrokersUnreachable",
            format!("broker {candidate} waits: the brokers cannot be asked"),
        );
    };
    if let Some(down) = (0..observed.replicas)
        .find(|&id| id != candidate && !pods.get(&id).is_some_and(|p| p.ready && !p.terminating))
    {
        return wait(
            status,
            "BrokerNotReady",
            format!("broker {candidate} waits: broker {down}'s pod is not Ready"),
        );
    }
    if let Some(message) = below_min_isr(state, observed.min_isr, candidate) {
        return wait(status, "MinInSyncReplicas", message);
    }
    if let Some((topic, partition)) = under_replicated(state, Some(candidate)) {
        return wait(
            status,
            "UnderReplicated",
            format!(
                "broker {candidate} waits: topic {topic:?} partition {partition} is \
                 under-replicated"
            ),
        );
    }

    let pod = pods[&candidate];
    if status.broker != Some(candidate) {
        status.broker = Some(candidate);
        status.elections = 0;
        status.restarted_uid = None;
    }
    status.reason = None;
    let movable = off_preferred(state, Some(candidate));
    if !movable.is_empty() && status.elections < ELECTIONS_MAX {
        if status.phase.as_deref() != Some("MovingLeadership") {
            status.phase_started_at = Some(now.clone());
        }
        status.phase = Some("MovingLeadership".into());
        status.elections += 1;
        status.message = format!(
            "moving leadership of {} partitions off broker {candidate}",
            movable.len()
        );
        return (
            status,
            RollAction::Elect {
                broker: candidate,
                partitions: movable,
            },
        );
    }
    status.phase = Some("Restarting".into());
    status.phase_started_at = Some(now.clone());
    status.restarted_uid = Some(pod.uid.clone());
    status.message = format!("restarting broker {candidate} {}", why(pod, target));
    (
        status,
        RollAction::Delete {
            broker: candidate,
            uid: pod.uid.clone(),
        },
    )
}

mod apply;
pub use apply::run;

#[cfg(test)]
mod tests;
