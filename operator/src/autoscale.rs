//! Lag-driven scaling of a ConsumerGroup's consumer workload: the pure decision.
//!
//! As KEDA's Kafka scaler: one consumer per `lagThreshold` records of lag, clamped to
//! `[minReplicas, maxReplicas]`, and never more consumers than the group's topics have
//! partitions, since the group protocol gives each partition to one member only and a
//! member without a partition idles. Like the HorizontalPodAutoscaler, a change waits
//! for its stabilisation window: scaling in goes to the highest recommendation of the
//! window, scaling out to the lowest. When the workload already has one consumer per
//! partition (and may grow) and lag still grows between two decisions, the topic with
//! the most lag gets partitions through its Topic resource, the source of truth, which
//! the Topic controller then applies.
//!
//! [`decide`] takes the observation and the previous [`AutoscaleStatus`] and returns
//! what to do; the runtime in [`apply`] reads and writes the Kubernetes objects.

pub mod apply;

use crate::types::{Autoscale, AutoscaleStatus, Recommendation, AUTOSCALE_MAX_REPLICAS};

/// One topic the group has committed offsets for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTopic {
    /// Topic name on the broker.
    pub name: String,
    /// Partitions the broker has.
    pub partitions: i32,
    /// The group's lag summed over the topic's partitions.
    pub lag: i64,
    /// The Topic resource for it on the same cluster, if any.
    pub resource: Option<TopicResource>,
}

/// A Topic resource as partition growth sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicResource {
    /// metadata.name of the resource.
    pub name: String,
    /// Its `spec.partitions`.
    pub spec_partitions: i32,
    /// Why the operator may not change it (unmanaged, paused), if so.
    pub locked: Option<String>,
}

/// What the autoscaler sees at one decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Decision time, ms since the epoch.
    pub now_ms: i64,
    /// The workload's replicas (its scale's spec.replicas).
    pub current_replicas: i32,
    /// Lag summed over the group's partitions.
    pub total_lag: i64,
    /// The topics the group has committed offsets for; empty when it has none yet.
    pub topics: Vec<GroupTopic>,
}

/// The kind of a decision, as `status.autoscale.decision` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Scale the workload to more replicas.
    ScaleOut,
    /// Scale the workload to fewer replicas.
    ScaleIn,
    /// Grow a topic's partitions.
    GrowPartitions,
    /// Nothing changes.
    Hold,
}

impl Verdict {
    /// The name status and Events use.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::ScaleOut => "ScaleOut",
            Verdict::ScaleIn => "ScaleIn",
            Verdict::GrowPartitions => "GrowPartitions",
            Verdict::Hold => "Hold",
        }
    }
}

/// Partitions to add to one topic through its Topic resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Growth {
    /// metadata.name of the Topic resource.
    pub resource: String,
    /// Topic name on the broker.
    pub topic: String,
    /// Partitions it has.
    pub from: i32,
    /// Partitions it gets.
    pub to: i32,
}

/// One decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What happens.
    pub verdict: Verdict,
    /// Replicas the workload should have (its current ones unless scaling).
    pub replicas: i32,
    /// The partitions to add, with `GrowPartitions`.
    pub growth: Option<Growth>,
    /// Why, with the figures behind it.
    pub reason: String,
}

/// Decides from `observed` and the previous decision's `status`, which it updates for
/// the next one (recommendation history, lag, the decision and its reason). Pure: time
/// is `observed.now_ms`.
pub fn decide(spec: &Autoscale, observed: &Observation, status: &mut AutoscaleStatus) -> Decision {
    let now = observed.now_ms;
    let current = observed.current_replicas;
    // The CRD's rules keep these in range; clamped again so that an object written
    // around them can neither panic `clamp` nor ask for negative replicas.
    let min = spec.min_replicas.clamp(0, AUTOSCALE_MAX_REPLICAS);
    let max = spec.max_replicas.clamp(min, AUTOSCALE_MAX_REPLICAS);
    let partitions: i32 = observed
        .topics
        .iter()
        .map(|t| t.partitions.max(0))
        .fold(0i32, i32::saturating_add);
    // ceil(lag / threshold), saturating: a hostile or huge lag must not wrap.
    let threshold = spec.lag_threshold.max(1);
    let by_lag = observed
        .total_lag
        .max(0)
        .unsigned_abs()
        .div_ceil(threshold.unsigned_abs());
    let by_lag = i32::try_from(by_lag).unwrap_or(i32::MAX);

    let (recommended, why) = if observed.topics.is_empty() {
        // No committed offsets: the lag is unknown, not zero. The workload keeps its
        // size (within the bounds) until its consumers commit.
        (
            current.clamp(min, max),
            "group has no committed offsets yet, so its lag is unknown".to_string(),
        )
    } else {
        let capped = by_lag.min(partitions);
        let mut why = format!(
            "total lag {} at lagThreshold {threshold} asks for {by_lag} consumers",
            observed.total_lag
        );
        if capped < by_lag {
            why.push_str(&format!(
                ", capped at the {partitions} partitions of the group's topics"
            ));
        }
        let recommended = capped.clamp(min, max);
        if recommended != capped {
            why.push_str(&format!(", bounded to [{min}, {max}]"));
        }
        (recommended, why)
    };

    remember(spec, status, now, current.clamp(min, max), recommended);
    let in_window = window_ms(spec.scale_in_stabilization_window_seconds);
    let out_window = window_ms(spec.scale_out_stabilization_window_seconds);
    // The HorizontalPodAutoscaler's rule: scale out no further than the lowest
    // recommendation of the scale-out window, in no further than the highest of the
    // scale-in window.
    let up_to = window_extreme(&status.recommendations, now, out_window, recommended, false);
    let down_to = window_extreme(&status.recommendations, now, in_window, recommended, true);
    let mut replicas = current;
    if replicas < up_to {
        replicas = up_to;
    }
    if replicas > down_to {
        replicas = down_to;
    }
    // Bounds apply at once, a window or not (the spec's bounds were just changed).
    let replicas = replicas.clamp(min, max);

    let lag_grew = status
        .last_total_lag
        .is_some_and(|last| observed.total_lag > last);
    status.last_total_lag = Some(observed.total_lag);
    status.current_replicas = current;
    status.recommended_replicas = recommended;
    status.partitions = partitions;

    let decision = if replicas > current {
        scaled(
            Verdict::ScaleOut,
            replicas,
            format!("{why}: scale out from {current} to {replicas}"),
        )
    } else if replicas < current {
        let window = match spec.scale_in_stabilization_window_seconds {
            0 => String::new(),
            s => format!(", the highest recommendation of the last {s}s"),
        };
        scaled(
            Verdict::ScaleIn,
            replicas,
            format!("{why}: scale in from {current} to {replicas}{window}"),
        )
    } else if recommended < current {
        hold(
            current,
            format!(
                "{why}: scale-in to {recommended} waits, {down_to} was recommended within the last {}s",
                spec.scale_in_stabilization_window_seconds
            ),
        )
    } else if recommended > current {
        hold(
            current,
            format!(
                "{why}: scale-out to {recommended} waits, {up_to} was recommended within the last {}s",
                spec.scale_out_stabilization_window_seconds
            ),
        )
    } else if !observed.topics.is_empty()
        && by_lag > partitions
        && current >= partitions
        && current < max
    {
        grow(spec, observed, &why, by_lag, partitions, lag_grew)
    } else {
        hold(current, format!("{why}: {current} replicas is right"))
    };
    status.desired_replicas = decision.replicas;
    status.decision = decision.verdict.as_str().into();
    status.reason = decision.reason.clone();
    decision
}

fn scaled(verdict: Verdict, replicas: i32, reason: String) -> Decision {
    Decision {
        verdict,
        replicas,
        growth: None,
        reason,
    }
}

fn hold(replicas: i32, reason: String) -> Decision {
    scaled(Verdict::Hold, replicas, reason)
}

/// The workload has one consumer per partition and may grow, yet lag asks for more:
/// more partitions, once lag grew since the last decision (a steady lag is being kept
/// up with, and partitions can never be removed again). What stops growth is checked
/// before the lag's trend, so the reason names it even while lag is steady.
fn grow(
    spec: &Autoscale,
    observed: &Observation,
    why: &str,
    by_lag: i32,
    partitions: i32,
    lag_grew: bool,
) -> Decision {
    let current = observed.current_replicas;
    let at_cap = format!("{why}: the workload has one consumer per partition ({current})");
    let Some(growth) = spec.partition_growth.as_ref().filter(|g| g.enabled) else {
        return hold(current, format!("{at_cap} and partition growth is off"));
    };
    // The topic where consumers fall behind most.
    let Some(topic) = observed
        .topics
        .iter()
        .max_by(|a, b| a.lag.cmp(&b.lag).then_with(|| b.name.cmp(&a.name)))
    else {
        return hold(current, at_cap);
    };
    let Some(resource) = &topic.resource else {
        return hold(
            current,
            format!("{at_cap}; topic {:?} has no Topic resource on this cluster, so its partitions are not grown", topic.name),
        );
    };
    if let Some(locked) = &resource.locked {
        return hold(
            current,
            format!("{at_cap}; Topic {:?} is not grown: {locked}", resource.name),
        );
    }
    if resource.spec_partitions > topic.partitions {
        return hold(
            current,
            format!(
                "{at_cap}; waiting for topic {:?} to grow from {} to the {} partitions of Topic {:?}",
                topic.name, topic.partitions, resource.spec_partitions, resource.name
            ),
        );
    }
    let limit = growth.max_partitions;
    if topic.partitions >= limit {
        return hold(
            current,
            format!(
                "{at_cap}; topic {:?} has {} partitions, the maxPartitions limit {limit}",
                topic.name, topic.partitions
            ),
        );
    }
    if !lag_grew {
        return hold(
            current,
            format!("{at_cap}; partitions grow only while lag grows between decisions"),
        );
    }
    // Enough partitions for the consumers the lag asks for, within maxReplicas.
    let wanted = by_lag.min(spec.max_replicas);
    let to = topic
        .partitions
        .saturating_add(wanted - partitions)
        .min(limit);
    Decision {
        verdict: Verdict::GrowPartitions,
        replicas: current,
        growth: Some(Growth {
            resource: resource.name.clone(),
            topic: topic.name.clone(),
            from: topic.partitions,
            to,
        }),
        reason: format!(
            "{at_cap} and lag grows: topic {:?} grows from {} to {to} partitions (maxPartitions {limit})",
            topic.name, topic.partitions
        ),
    }
}

fn window_ms(seconds: i32) -> i64 {
    i64::from(seconds.max(0)) * 1000
}

/// Adds this decision's recommendation to the history and drops what can no longer
/// decide a window: recommendations older than the longer window, and those a later one
/// dominates. What stays is a strictly decreasing run (window highs) merged with a
/// strictly increasing one (window lows), so at most two entries per replica count in
/// `[0, maxReplicas]`, whatever the status held.
fn remember(
    spec: &Autoscale,
    status: &mut AutoscaleStatus,
    now: i64,
    current: i32,
    recommended: i32,
) {
    let horizon = window_ms(spec.scale_in_stabilization_window_seconds)
        .max(window_ms(spec.scale_out_stabilization_window_seconds));
    let history = &mut status.recommendations;
    if horizon == 0 {
        // Both windows are off: every decision stands on its own.
        history.clear();
        return;
    }
    let first = history.is_empty();
    for r in history.iter_mut() {
        // A clock that went back must not keep a recommendation alive past its window.
        r.time_ms = r.time_ms.min(now);
    }
    history.retain(|r| r.time_ms > now - horizon);
    history.sort_by_key(|r| r.time_ms);
    if first {
        // Autoscaling just started: the current size counts as recommended, so that no
        // change happens before a whole window of recommendations asks for it. (An
        // operator away for longer than the windows finds them expired and decides at
        // once, as the HorizontalPodAutoscaler does.)
        history.push(Recommendation {
            time_ms: now,
            replicas: current,
        });
    }
    history.push(Recommendation {
        time_ms: now,
        replicas: recommended,
    });
    let mut keep = vec![false; history.len()];
    let (mut high, mut low) = (i32::MIN, i32::MAX);
    for (i, r) in history.iter().enumerate().rev() {
        if r.replicas > high {
            keep[i] = true;
            high = r.replicas;
        }
        if r.replicas < low {
            keep[i] = true;
            low = r.replicas;
        }
    }
    let mut i = 0;
    history.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

/// The highest (`high`) or lowest recommendation made within the last `window` ms,
/// counting `now_recommended`.
fn window_extreme(
    history: &[Recommendation],
    now: i64,
    window: i64,
    now_recommended: i32,
    high: bool,
) -> i32 {
    let within = history
        .iter()
        .filter(|r| window > 0 && r.time_ms > now - window)
        .map(|r| r.replicas)
        .chain(std::iter::once(now_recommended));
    if high {
        within.max().unwrap_or(now_recommended)
    } else {
        within.min().unwrap_or(now_recommended)
    }
}

#[cfg(test)]
mod tests;
