use super::*;
use crate::types::{PartitionGrowth, ScaleTargetRef};

const S: i64 = 1000;

fn spec() -> Autoscale {
    Autoscale {
        scale_target_ref: ScaleTargetRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "payments".into(),
        },
        min_replicas: 1,
        max_replicas: 10,
        lag_threshold: 100,
        scale_in_stabilization_window_seconds: 300,
        scale_out_stabilization_window_seconds: 0,
        partition_growth: Some(PartitionGrowth {
            enabled: true,
            max_partitions: 8,
        }),
    }
}

fn orders(partitions: i32, lag: i64) -> GroupTopic {
    GroupTopic {
        name: "orders".into(),
        partitions,
        lag,
        resource: Some(TopicResource {
            name: "orders-topic".into(),
            spec_partitions: partitions,
            locked: None,
        }),
    }
}

fn seen(now_ms: i64, current: i32, topics: Vec<GroupTopic>) -> Observation {
    Observation {
        now_ms,
        current_replicas: current,
        total_lag: topics.iter().map(|t| t.lag).sum(),
        topics,
    }
}

/// A status whose windows are already covered by a recommendation of `replicas` made
/// long ago, so that the seed of a first decision does not hold anything back.
fn settled(replicas: i32) -> AutoscaleStatus {
    AutoscaleStatus {
        recommendations: vec![Recommendation {
            time_ms: 0,
            replicas,
        }],
        ..AutoscaleStatus::default()
    }
}

#[test]
fn one_consumer_per_lag_threshold_rounded_up() {
    let mut status = AutoscaleStatus::default();
    // 250 records at 100 per consumer: 3 consumers, at once (no scale-out window).
    let d = decide(&spec(), &seen(0, 1, vec![orders(6, 250)]), &mut status);
    assert_eq!((d.verdict, d.replicas), (Verdict::ScaleOut, 3), "{d:?}");
    assert!(
        d.reason.contains("total lag 250") && d.reason.contains("scale out from 1 to 3"),
        "{}",
        d.reason
    );
    assert_eq!(
        (status.decision.as_str(), status.desired_replicas),
        ("ScaleOut", 3)
    );
    assert_eq!(status.reason, d.reason);
    assert_eq!(status.last_total_lag, Some(250));
    // Exactly one threshold's worth is one consumer; one record more is two.
    let d = decide(&spec(), &seen(S, 3, vec![orders(6, 100)]), &mut settled(1));
    assert_eq!(d.replicas, 1, "{d:?}");
    let d = decide(&spec(), &seen(S, 1, vec![orders(6, 101)]), &mut settled(1));
    assert_eq!((d.verdict, d.replicas), (Verdict::ScaleOut, 2), "{d:?}");
}

#[test]
fn zero_lag_and_lag_below_threshold_go_to_min_replicas() {
    let mut s = spec();
    let long_ago = 1_000_000 * S;
    for lag in [0, 1, 99] {
        let d = decide(
            &s,
            &seen(long_ago, 4, vec![orders(6, lag)]),
            &mut settled(4),
        );
        // The window was covered by 4 long ago and has expired: the scale-in happens.
        assert_eq!(
            (d.verdict, d.replicas),
            (Verdict::ScaleIn, 1),
            "lag {lag}: {d:?}"
        );
    }
    // minReplicas 0: an idle group's workload scales to zero, a single record wakes it.
    s.min_replicas = 0;
    let d = decide(&s, &seen(long_ago, 2, vec![orders(6, 0)]), &mut settled(2));
    assert_eq!((d.verdict, d.replicas), (Verdict::ScaleIn, 0), "{d:?}");
    let d = decide(&s, &seen(long_ago, 0, vec![orders(6, 1)]), &mut settled(0));
    assert_eq!((d.verdict, d.replicas), (Verdict::ScaleOut, 1), "{d:?}");
}

#[test]
fn never_more_consumers_than_partitions() {
    let mut status = AutoscaleStatus::default();
    // 5000 records ask for 50 consumers; max is 10 but the topic has 4 partitions.
    let d = decide(&spec(), &seen(0, 1, vec![orders(4, 5000)]), &mut status);
    assert_eq!((d.verdict, d.replicas), (Verdict::ScaleOut, 4), "{d:?}");
    assert!(
        d.reason.contains("capped at the 4 partitions"),
        "{}",
        d.reason
    );
    assert_eq!(status.partitions, 4);
    // Partitions of all the group's topics count (KEDA sums them).
    let mut audit = orders(3, 0);
    audit.name = "audit".into();
    let d = decide(
        &spec(),
        &seen(0, 1, vec![orders(4, 5000), audit]),
        &mut AutoscaleStatus::default(),
    );
    assert_eq!(d.replicas, 7, "{d:?}");
    // maxReplicas below the partitions: max wins.
    let d = decide(
        &spec(),
        &seen(0, 1, vec![orders(64, 5000)]),
        &mut AutoscaleStatus::default(),
    );
    assert_eq!(d.replicas, 10, "{d:?}");
    assert!(d.reason.contains("bounded to [1, 10]"), "{}", d.reason);
    // minReplicas above the partitions: the spec's minimum still holds.
    let mut s = spec();
    s.min_replicas = 3;
    let d = decide(
        &s,
        &seen(0, 1, vec![orders(2, 0)]),
        &mut AutoscaleStatus::default(),
    );
    assert_eq!((d.verdict, d.replicas), (Verdict::ScaleOut, 3), "{d:?}");
}

#[test]
fn scale_in_waits_for_the_whole_window() {
    let s = spec();
    let mut status = AutoscaleStatus::default();
    let d = decide(&s, &seen(0, 1, vec![orders(8, 600)]), &mut status);
    assert_eq!(d.replicas, 6);
    // Lag drops at 10 s: 2 consumers would do, but 6 was recommended within 300 s.
    let d = decide(&s, &seen(10 * S, 6, vec![orders(8, 150)]), &mut status);
    assert_eq!((d.verdict, d.replicas), (Verdict::Hold, 6), "{d:?}");
    assert!(
        d.reason
            .contains("scale-in to 2 waits, 6 was recommended within the last 300s"),
        "{}",
        d.reason
    );
    assert_eq!(status.recommended_replicas, 2);
    // Lag rises a little at 200 s (3): still held at 6 until 6 leaves the window.
    let d = decide(&s, &seen(200 * S, 6, vec![orders(8, 250)]), &mut status);
    assert_eq!(d.replicas, 6, "{d:?}");
    // Just before 300 s after the 6, it still counts.
    let d = decide(&s, &seen(300 * S - 1, 6, vec![orders(8, 150)]), &mut status);
    assert_eq!(d.replicas, 6, "{d:?}");
    // At 300 s the 6 has gone; the highest left is the 3 of 200 s, not the 2 of now.
    let d = decide(&s, &seen(300 * S, 6, vec![orders(8, 150)]), &mut status);
    assert_eq!((d.verdict, d.replicas), (Verdict::ScaleIn, 3), "{d:?}");
    // 300 s after the 3, the 2s remain.
    let d = decide(&s, &seen(500 * S, 3, vec![orders(8, 150)]), &mut status);
    assert_eq!((d.verdict, d.replicas), (Verdict::ScaleIn, 2), "{d:?}");
}

#[test]
fn window_survives_a_restart_through_status() {
    let s = spec();
    let mut status = AutoscaleStatus::default();
    decide(&s, &seen(0, 1, vec![orders(8, 600)]), &mut status);
    // The status goes to the API server and comes back to a new operator process.
    let json = serde_json::to_value(&status).unwrap();
    let mut restored: AutoscaleStatus = serde_json::from_value(json).unwrap();
    let d = decide(&s, &seen(100 * S, 6, vec![orders(8, 0)]), &mut restored);
    assert_eq!((d.verdict, d.replicas), (Verdict::Hold, 6), "{d:?}");
    let d = decide(&s, &seen(300 * S, 6, vec![orders(8, 0)]), &mut restored);
    assert_eq!((d.verdict, d.replicas), (Verdict::ScaleIn, 1), "{d:?}");
}

#[test]
fn first_decision_holds_the_current_size_for_a_window() {
    // Autoscaling just turned on (or the operator was away longer than the window) with
    // 5 replicas running and no lag: no scale-in before a whole window says so.
    let s = spec();
    let mut status = AutoscaleStatus::default();
    let d = decide(&s, &seen(0, 5, vec![orders(8, 0)]), &mut status);
    assert_eq!((d.verdict, d.replicas), (Verdict::Hold, 5), "{d:?}");
    let d = decide(&s, &seen(300 * S, 5, vec![orders(8, 0)]), &mut status);
    assert_eq!((d.verdict, d.replicas), (Verdict::ScaleIn, 1), "{d:?}");
    // Without a scale-in window the scale-in is immediate.
    let mut s = spec();
    s.scale_in_stabilization_window_seconds = 0;
    let mut status = AutoscaleStatus::default();
    let d = decide(&s, &seen(0, 5, vec![orders(8, 0)]), &mut status);
    assert_eq!((d.verdict, d.replicas), (Verdict::ScaleIn, 1), "{d:?}");
    assert!(status.recommendations.is_empty(), "{status:?}");
}

#[test]
fn scale_out_window_takes_the_lowest_recommendation() {
    let mut s = spec();
    s.scale_out_stabilization_window_seconds = 60;
    let mut status = settled(1);
    status.recommendations[0].time_ms = 0;
    let d = decide(&s, &seen(0, 1, vec![orders(8, 500)]), &mut status);
    assert_eq!((d.verdict, d.replicas), (Verdict::Hold, 1), "{d:?}");
    assert!(
        d.reason
            .contains("scale-out to 5 waits, 1 was recommended within the last 60s"),
        "{}",
        d.reason
    );
    let d = decide(&s, &seen(30 * S, 1, vec![orders(8, 300)]), &mut status);
    assert_eq!(d.replicas, 1, "{d:?}");
    // At 60 s the 1 is out of the window: the lowest left is the 3 of 30 s.
    let d = decide(&s, &seen(60 * S, 1, vec![orders(8, 800)]), &mut status);
    assert_eq!((d.verdict, d.replicas), (Verdict::ScaleOut, 3), "{d:?}");
}

#[test]
fn history_stays_bounded_whatever_lag_does() {
    let mut s = spec();
    s.scale_out_stabilization_window_seconds = 3600;
    s.scale_in_stabilization_window_seconds = 3600;
    let mut status = AutoscaleStatus::default();
    let mut current = 1;
    for i in 0..10_000i64 {
        // Lag swings through every replica count, one decision per second.
        let lag = i * 7919 % 1100;
        let d = decide(
            &s,
            &seen(i * S, current, vec![orders(10, lag)]),
            &mut status,
        );
        current = d.replicas;
        let n = status.recommendations.len();
        assert!(
            n <= 2 * (s.max_replicas as usize + 1),
            "{n} recommendations kept"
        );
    }
    // A hostile status with far too many entries is cut down in one decision.
    status.recommendations = (0..50_000)
        .map(|i| Recommendation {
            time_ms: 1_000 * S + i,
            replicas: (i % 11) as i32,
        })
        .collect();
    decide(&s, &seen(1_100 * S, 1, vec![orders(10, 0)]), &mut status);
    assert!(
        status.recommendations.len() <= 22,
        "{}",
        status.recommendations.len()
    );
    // Entries from the future (a clock set back) expire one window after now.
    status.recommendations = vec![Recommendation {
        time_ms: i64::MAX,
        replicas: 9,
    }];
    let d = decide(&s, &seen(0, 9, vec![orders(10, 0)]), &mut status);
    assert_eq!(d.replicas, 9, "{d:?}");
    let d = decide(&s, &seen(3600 * S, 9, vec![orders(10, 0)]), &mut status);
    assert_eq!(d.replicas, 1, "{d:?}");
}

#[test]
fn huge_lag_saturates_instead_of_wrapping() {
    let d = decide(
        &spec(),
        &seen(0, 1, vec![orders(8, i64::MAX)]),
        &mut AutoscaleStatus::default(),
    );
    assert_eq!(d.replicas, 8, "{d:?}");
    let mut s = spec();
    s.lag_threshold = 1;
    let d = decide(
        &s,
        &seen(0, 1, vec![orders(i32::MAX, i64::MAX)]),
        &mut AutoscaleStatus::default(),
    );
    assert_eq!(d.replicas, 10, "{d:?}");
}

#[test]
fn no_committed_offsets_holds_within_bounds() {
    let mut status = AutoscaleStatus::default();
    let d = decide(&spec(), &seen(0, 3, Vec::new()), &mut status);
    assert_eq!((d.verdict, d.replicas), (Verdict::Hold, 3), "{d:?}");
    assert!(d.reason.contains("no committed offsets"), "{}", d.reason);
    // Below minReplicas it still goes up to the minimum.
    let mut s = spec();
    s.min_replicas = 2;
    let d = decide(&s, &seen(0, 0, Vec::new()), &mut AutoscaleStatus::default());
    assert_eq!((d.verdict, d.replicas), (Verdict::ScaleOut, 2), "{d:?}");
}

#[test]
fn bounds_written_around_the_crd_rules_do_not_panic() {
    let mut s = spec();
    s.min_replicas = -5;
    s.max_replicas = -7;
    let d = decide(&s, &seen(0, 3, vec![orders(8, 0)]), &mut settled(0));
    assert_eq!(d.replicas, 0, "{d:?}");
    s.min_replicas = 20;
    s.max_replicas = i32::MAX;
    let d = decide(&s, &seen(0, 3, vec![orders(8, 0)]), &mut settled(0));
    assert_eq!(d.replicas, 20, "{d:?}");
}

#[test]
fn bounds_changed_in_the_spec_apply_at_once() {
    let mut s = spec();
    s.max_replicas = 3;
    let mut status = AutoscaleStatus::default();
    // 6 replicas running, max lowered to 3: down to 3 without waiting for the window.
    let d = decide(&s, &seen(0, 6, vec![orders(8, 600)]), &mut status);
    assert_eq!((d.verdict, d.replicas), (Verdict::ScaleIn, 3), "{d:?}");
}

/// At the partition count, with lag asking for more: two decisions, the second with
/// more lag, grow the topic.
fn grow_after_two(s: &Autoscale, first: GroupTopic, second: GroupTopic) -> Decision {
    let current = first.partitions;
    let mut status = settled(current);
    let d = decide(s, &seen(S, current, vec![first]), &mut status);
    assert_eq!(d.verdict, Verdict::Hold, "{d:?}");
    decide(s, &seen(2 * S, current, vec![second]), &mut status)
}

#[test]
fn partitions_grow_when_every_partition_has_a_consumer_and_lag_grows() {
    let d = grow_after_two(&spec(), orders(4, 600), orders(4, 700));
    assert_eq!(d.verdict, Verdict::GrowPartitions, "{d:?}");
    assert_eq!(d.replicas, 4);
    // 700 records want 7 consumers: 3 more partitions, within maxPartitions 8.
    assert_eq!(
        d.growth,
        Some(Growth {
            resource: "orders-topic".into(),
            topic: "orders".into(),
            from: 4,
            to: 7
        })
    );
    assert!(
        d.reason.contains("grows from 4 to 7 partitions"),
        "{}",
        d.reason
    );
    // A steady lag is being kept up with: no growth.
    let d = grow_after_two(&spec(), orders(4, 700), orders(4, 700));
    assert_eq!(
        (d.verdict, d.growth.clone()),
        (Verdict::Hold, None),
        "{d:?}"
    );
    assert!(d.reason.contains("only while lag grows"), "{}", d.reason);
    // Next decision after the growth: the new partitions let the workload scale out.
    let mut status = settled(4);
    let d = decide(&spec(), &seen(3 * S, 4, vec![orders(7, 800)]), &mut status);
    assert_eq!((d.verdict, d.replicas), (Verdict::ScaleOut, 7), "{d:?}");
}

#[test]
fn partition_growth_stops_at_its_limits() {
    // maxPartitions reached.
    let d = grow_after_two(&spec(), orders(8, 1000), orders(8, 1500));
    assert_eq!(d.verdict, Verdict::Hold, "{d:?}");
    assert!(
        d.reason
            .contains("has 8 partitions, the maxPartitions limit 8"),
        "{}",
        d.reason
    );
    // The limit is named while lag is steady too, not only while it grows.
    let d = grow_after_two(&spec(), orders(8, 1000), orders(8, 1000));
    assert!(
        d.reason.contains("the maxPartitions limit 8"),
        "{}",
        d.reason
    );
    // maxPartitions cuts the step short.
    let d = grow_after_two(&spec(), orders(4, 2000), orders(4, 3000));
    assert_eq!(d.growth.map(|g| g.to), Some(8));
    // maxReplicas bounds the partitions wanted; at maxReplicas there is no growth.
    let mut s = spec();
    s.max_replicas = 5;
    let d = grow_after_two(&s, orders(4, 2000), orders(4, 3000));
    assert_eq!(d.growth.map(|g| g.to), Some(5));
    s.max_replicas = 4;
    let d = grow_after_two(&s, orders(4, 2000), orders(4, 3000));
    assert_eq!((d.verdict, d.growth), (Verdict::Hold, None));
    // Growth off, or not configured.
    let mut s = spec();
    s.partition_growth.as_mut().unwrap().enabled = false;
    let d = grow_after_two(&s, orders(4, 600), orders(4, 700));
    assert!(d.reason.contains("partition growth is off"), "{}", d.reason);
    s.partition_growth = None;
    let d = grow_after_two(&s, orders(4, 600), orders(4, 700));
    assert_eq!((d.verdict, d.growth), (Verdict::Hold, None));
}

#[test]
fn only_managed_topic_resources_grow() {
    let mut bare = orders(4, 700);
    bare.resource = None;
    let d = grow_after_two(&spec(), orders(4, 600), bare);
    assert_eq!(d.verdict, Verdict::Hold, "{d:?}");
    assert!(d.reason.contains("has no Topic resource"), "{}", d.reason);

    let mut locked = orders(4, 700);
    locked.resource.as_mut().unwrap().locked =
        Some("annotation fjord.dev/managed is \"false\"".into());
    let d = grow_after_two(&spec(), orders(4, 600), locked);
    assert_eq!(d.verdict, Verdict::Hold, "{d:?}");
    assert!(d.reason.contains("fjord.dev/managed"), "{}", d.reason);

    // A growth already asked for and not yet on the broker is not asked for again.
    let mut pending = orders(4, 700);
    pending.resource.as_mut().unwrap().spec_partitions = 7;
    let d = grow_after_two(&spec(), orders(4, 600), pending);
    assert_eq!(d.verdict, Verdict::Hold, "{d:?}");
    assert!(
        d.reason
            .contains("waiting for topic \"orders\" to grow from 4 to the 7"),
        "{}",
        d.reason
    );
}

#[test]
fn the_topic_with_most_lag_grows() {
    let mut audit = orders(2, 500);
    audit.name = "audit".into();
    audit.resource.as_mut().unwrap().name = "audit-topic".into();
    let mut status = settled(4);
    let topics = |orders_lag| vec![orders(2, orders_lag), audit.clone()];
    decide(&spec(), &seen(S, 4, topics(100)), &mut status);
    let d = decide(&spec(), &seen(2 * S, 4, topics(200)), &mut status);
    // 700 records: 7 consumers wanted over 4 partitions; audit lags most and gets 3.
    assert_eq!(
        d.growth,
        Some(Growth {
            resource: "audit-topic".into(),
            topic: "audit".into(),
            from: 2,
            to: 5
        })
    );
}

#[test]
fn crd_validates_the_autoscale_bounds() {
    let yaml = crate::crd::yaml();
    for rule in [
        "maxReplicas must be at least minReplicas",
        "self >= 1 && self <= 1000",
        "minReplicas must not be negative",
        "lagThreshold must be at least 1",
        "scaleInStabilizationWindowSeconds must be between 0 and 3600",
        "maxPartitions must be between 1 and 10000",
    ] {
        assert!(yaml.contains(rule), "ConsumerGroup CRD lacks {rule:?}");
    }
    let group = &crate::crd::all()[2];
    let columns: Vec<_> = group.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.as_str(), c.json_path.as_str()))
        .collect();
    assert!(
        columns.contains(&("Consumers", ".status.autoscale.desiredReplicas"))
            && columns.contains(&("Decision", ".status.autoscale.decision")),
        "{columns:?}"
    );
    // The history bound in status rests on this limit.
    assert!(yaml.contains(&format!("self <= {}", crate::types::AUTOSCALE_MAX_REPLICAS)));
}
