//! Tests of the rolling-restart steps: fixed cases, and whole rolls driven against a
//! small model of a cluster, with the operator killed between every status write and
//! its action.

use super::*;
use crate::scale::PartitionReplicas;
use k8s_openapi::jiff::Timestamp;

const OLD: &str = "rev-old";
const NEW: &str = "rev-new";

fn now() -> Time {
    Time(Timestamp::from_second(1_800_000_000).unwrap())
}

fn pod(id: i32, revision: &str) -> Pod {
    Pod {
        id,
        uid: format!("uid-{id}-{revision}"),
        revision: Some(revision.into()),
        ready: true,
        terminating: false,
        restart_required: false,
    }
}

/// A pod at `revision` whose volume needs a restart to finish growing.
fn flagged(id: i32, revision: &str) -> Pod {
    Pod {
        restart_required: true,
        ..pod(id, revision)
    }
}

/// A cluster of `n` brokers (all registered), controller `controller`, and topic
/// "t" with one partition per broker, RF 3 (or `n` if smaller), led by its preferred
/// replica, fully in sync.
fn cluster(n: i32, controller: i32) -> BrokerState {
    let rf = n.min(3);
    let mut s = BrokerState {
        registered: (0..n).map(|id| (id, format!("b{id}:9092"))).collect(),
        controller_id: Some(controller),
        ..BrokerState::default()
    };
    for p in 0..n {
        let replicas: Vec<i32> = (0..rf).map(|k| (p + k) % n).collect();
        add(&mut s, "t", p, &replicas, &replicas, replicas[0]);
    }
    s
}

fn add(
    s: &mut BrokerState,
    topic: &str,
    partition: i32,
    replicas: &[i32],
    isr: &[i32],
    leader: i32,
) {
    s.partitions.push(PartitionReplicas {
        topic: topic.into(),
        partition,
        replicas: replicas.to_vec(),
    });
    s.isr.insert((topic.into(), partition), isr.to_vec());
    s.leaders.insert((topic.into(), partition), leader);
}

fn min_isr(pairs: &[(&str, i32)]) -> BTreeMap<String, i32> {
    pairs.iter().map(|(t, m)| (t.to_string(), *m)).collect()
}

fn observed<'a>(
    pods: &'a [Pod],
    brokers: &'a BrokerState,
    min_isr: &'a BTreeMap<String, i32>,
) -> Observed<'a> {
    Observed {
        update_revision: Some(NEW),
        replicas: pods.len() as i32,
        pods,
        brokers: Some(brokers),
        min_isr,
        busy: None,
    }
}

fn rolling(broker: Option<i32>, phase: Option<&str>, done: &[i32]) -> RollStatus {
    RollStatus {
        state: "Rolling".into(),
        revision: Some(NEW.into()),
        broker,
        phase: phase.map(Into::into),
        done: done.to_vec(),
        started_at: Some(now()),
        ..RollStatus::default()
    }
}

#[test]
fn nothing_to_roll_when_every_pod_runs_the_update_revision() {
    let pods: Vec<Pod> = (0..3).map(|id| pod(id, NEW)).collect();
    let s = cluster(3, 0);
    let m = min_isr(&[("t", 2)]);
    let (status, action) = step(None, observed(&pods, &s, &m), &now());
    assert_eq!(action, RollAction::None);
    assert_eq!(status.state, "Idle");
    assert_eq!(status.revision.as_deref(), Some(NEW));
}

#[test]
fn nothing_happens_before_the_statefulset_observed_its_spec() {
    let pods: Vec<Pod> = (0..3).map(|id| pod(id, OLD)).collect();
    let s = cluster(3, 0);
    let m = min_isr(&[("t", 2)]);
    let o = Observed {
        update_revision: None,
        ..observed(&pods, &s, &m)
    };
    assert_eq!(step(None, o, &now()).1, RollAction::None);
}

#[test]
fn first_step_restarts_a_follower_broker_not_the_controller() {
    // Broker 0 is the controller: 1 goes first. It leads only partition 1, where it
    // is the preferred leader (its own controlled shutdown hands that one over).
    let pods: Vec<Pod> = (0..3).map(|id| pod(id, OLD)).collect();
    let s = cluster(3, 0);
    let m = min_isr(&[("t", 2)]);
    let (status, action) = step(None, observed(&pods, &s, &m), &now());
    assert_eq!(
        action,
        RollAction::Delete {
            broker: 1,
            uid: "uid-1-rev-old".into()
        }
    );
    assert_eq!(status.state, "Rolling");
    assert_eq!(status.broker, Some(1));
    assert_eq!(status.phase.as_deref(), Some("Restarting"));
    assert_eq!(status.revision.as_deref(), Some(NEW));
    assert_eq!(status.started_at, Some(now()));
}

#[test]
fn leadership_is_moved_to_preferred_replicas_before_the_pod_is_deleted() {
    let pods: Vec<Pod> = (0..3).map(|id| pod(id, OLD)).collect();
    let mut s = cluster(3, 2);
    // Broker 0 leads partition 2, whose preferred leader (2) is in sync.
    s.leaders.insert(("t".into(), 2), 0);
    let m = min_isr(&[("t", 2)]);
    let (status, action) = step(None, observed(&pods, &s, &m), &now());
    assert_eq!(
        action,
        RollAction::Elect {
            broker: 0,
            partitions: vec![("t".into(), 2)]
        }
    );
    assert_eq!(status.phase.as_deref(), Some("MovingLeadership"));
    assert_eq!(status.elections, 1);

    s.leaders.insert(("t".into(), 2), 2);
    let (status, action) = step(Some(&status), observed(&pods, &s, &m), &now());
    assert!(
        matches!(action, RollAction::Delete { broker: 0, .. }),
        "{action:?}"
    );
    assert_eq!(status.phase.as_deref(), Some("Restarting"));
}

#[test]
fn an_election_that_does_not_take_is_retried_a_bounded_number_of_times() {
    let pods: Vec<Pod> = (0..3).map(|id| pod(id, OLD)).collect();
    let mut s = cluster(3, 2);
    s.leaders.insert(("t".into(), 2), 0);
    let m = min_isr(&[("t", 2)]);
    let mut status = None;
    for n in 1..=ELECTIONS_MAX {
        let (next, action) = step(status.as_ref(), observed(&pods, &s, &m), &now());
        assert!(matches!(action, RollAction::Elect { broker: 0, .. }));
        assert_eq!(next.elections, n);
        status = Some(next);
    }
    let (_, action) = step(status.as_ref(), observed(&pods, &s, &m), &now());
    assert!(
        matches!(action, RollAction::Delete { broker: 0, .. }),
        "{action:?}"
    );
}

#[test]
fn a_restart_that_would_go_below_min_isr_waits_and_names_the_partition() {
    // Every pod is Ready; partition "orders"-4 has lost broker 2 from its ISR, so
    // restarting broker 0 or 1 would leave one in-sync replica under min ISR 2.
    let pods: Vec<Pod> = (0..3).map(|id| pod(id, OLD)).collect();
    let mut s = cluster(3, 2);
    add(&mut s, "orders", 4, &[0, 1, 2], &[0, 1], 0);
    let m = min_isr(&[("t", 2), ("orders", 2)]);
    let (status, action) = step(None, observed(&pods, &s, &m), &now());
    assert_eq!(action, RollAction::Wait);
    assert_eq!(status.state, "Rolling");
    assert_eq!(status.reason.as_deref(), Some("MinInSyncReplicas"));
    assert!(
        status.message.contains("topic \"orders\" partition 4")
            && status.message.contains("min.insync.replicas 2"),
        "{}",
        status.message
    );
    assert_eq!(status.broker, None, "nothing restarted");

    // With min ISR 1 the restart keeps the partition writable, but the cluster is
    // not in sync: it still waits, for that reason.
    let m = min_isr(&[("t", 2), ("orders", 1)]);
    let (status, action) = step(Some(&status), observed(&pods, &s, &m), &now());
    assert_eq!(action, RollAction::Wait);
    assert_eq!(status.reason.as_deref(), Some("UnderReplicated"));

    // Broker 2 back in the ISR: broker 0 restarts.
    s.isr.insert(("orders".into(), 4), vec![0, 1, 2]);
    let m = min_isr(&[("t", 2), ("orders", 2)]);
    let (status, action) = step(Some(&status), observed(&pods, &s, &m), &now());
    assert!(
        matches!(action, RollAction::Delete { broker: 0, .. }),
        "{action:?}"
    );
    assert_eq!(status.reason, None);
}

#[test]
fn unknown_min_isr_waits() {
    let pods: Vec<Pod> = (0..3).map(|id| pod(id, OLD)).collect();
    let s = cluster(3, 0);
    let (status, action) = step(None, observed(&pods, &s, &BTreeMap::new()), &now());
    assert_eq!(action, RollAction::Wait);
    assert_eq!(status.reason.as_deref(), Some("MinInSyncReplicas"));
}

#[test]
fn partitions_without_a_spare_replica_do_not_hold_the_roll() {
    // RF 1, and RF 2 with min ISR 2: no restart ever keeps them at min ISR, and
    // waiting for them would wait forever.
    let pods: Vec<Pod> = (0..3).map(|id| pod(id, OLD)).collect();
    let mut s = cluster(3, 2);
    add(&mut s, "single", 0, &[0], &[0], 0);
    add(&mut s, "pair", 0, &[0, 1], &[0, 1], 0);
    let m = min_isr(&[("t", 1), ("pair", 2)]);
    let (_, action) = step(None, observed(&pods, &s, &m), &now());
    assert!(
        matches!(action, RollAction::Delete { broker: 0, .. }),
        "{action:?}"
    );
}

#[test]
fn a_partition_under_replicated_elsewhere_holds_the_roll() {
    let pods: Vec<Pod> = (0..4).map(|id| pod(id, OLD)).collect();
    let mut s = cluster(4, 3);
    // Broker 3 is out of "x"-0's ISR; restarting broker 0 keeps "x"-0 at min ISR,
    // but the cluster is not caught up.
    add(&mut s, "x", 0, &[1, 2, 3], &[1, 2], 1);
    let m = min_isr(&[("t", 1), ("x", 1)]);
    let (status, action) = step(None, observed(&pods, &s, &m), &now());
    assert_eq!(action, RollAction::Wait);
    assert_eq!(status.reason.as_deref(), Some("UnderReplicated"));
    assert!(
        status.message.contains("topic \"x\" partition 0"),
        "{}",
        status.message
    );
}

#[test]
fn a_broker_that_is_down_is_restarted_first_and_its_own_lag_does_not_hold_it() {
    let mut pods: Vec<Pod> = (0..3).map(|id| pod(id, OLD)).collect();
    pods[2].ready = false;
    let mut s = cluster(3, 1);
    s.registered.remove(&2);
    for isr in s.isr.values_mut() {
        isr.retain(|&r| r != 2);
    }
    let m = min_isr(&[("t", 2)]);
    let (_, action) = step(None, observed(&pods, &s, &m), &now());
    assert!(
        matches!(action, RollAction::Delete { broker: 2, .. }),
        "{action:?}"
    );
}

#[test]
fn another_pod_not_ready_holds_the_roll() {
    let mut pods: Vec<Pod> = (0..3).map(|id| pod(id, OLD)).collect();
    pods[1] = pod(1, NEW);
    pods[1].ready = false;
    let s = cluster(3, 2);
    let m = min_isr(&[("t", 2)]);
    let (status, action) = step(None, observed(&pods, &s, &m), &now());
    assert_eq!(action, RollAction::Wait);
    assert_eq!(status.reason.as_deref(), Some("BrokerNotReady"));
}

#[test]
fn a_drain_or_reassignment_in_progress_holds_the_roll() {
    let pods: Vec<Pod> = (0..3).map(|id| pod(id, OLD)).collect();
    let s = cluster(3, 2);
    let m = min_isr(&[("t", 2)]);
    let o = Observed {
        busy: Some(("ReassignmentInProgress", "2 reassignments in progress")),
        ..observed(&pods, &s, &m)
    };
    let (status, action) = step(None, o, &now());
    assert_eq!(action, RollAction::Wait);
    assert_eq!(status.reason.as_deref(), Some("ReassignmentInProgress"));
}

#[test]
fn the_restarted_broker_must_be_back_ready_and_caught_up_before_the_next() {
    let m = min_isr(&[("t", 2)]);
    let previous = rolling(Some(1), Some("Restarting"), &[]);
    let mut s = cluster(3, 0);

    // Pod gone (the StatefulSet has not re-created it yet).
    let pods = vec![pod(0, OLD), pod(2, OLD)];
    let o = Observed {
        replicas: 3,
        ..observed(&pods, &s, &m)
    };
    let (status, action) = step(Some(&previous), o, &now());
    assert_eq!(
        (action, status.reason.as_deref()),
        (RollAction::Wait, Some("BrokerRestarting"))
    );

    // Terminating.
    let mut pods = vec![pod(0, OLD), pod(1, OLD), pod(2, OLD)];
    pods[1].terminating = true;
    let (status, action) = step(Some(&previous), observed(&pods, &s, &m), &now());
    assert_eq!(
        (action, status.reason.as_deref()),
        (RollAction::Wait, Some("BrokerRestarting"))
    );

    // Back at the new revision, not Ready yet.
    pods[1] = pod(1, NEW);
    pods[1].ready = false;
    let (_, action) = step(Some(&previous), observed(&pods, &s, &m), &now());
    assert_eq!(action, RollAction::Wait);

    // Ready, but still catching up on partition 0.
    pods[1].ready = true;
    s.isr.insert(("t".into(), 0), vec![0, 2]);
    let (status, action) = step(Some(&previous), observed(&pods, &s, &m), &now());
    assert_eq!(
        (action, status.reason.as_deref()),
        (RollAction::Wait, Some("CatchingUp"))
    );
    assert!(status.message.contains("partition 0"), "{}", status.message);

    // Caught up: broker 1 is done, the next (2, not the controller 0) starts.
    s.isr.insert(("t".into(), 0), vec![0, 1, 2]);
    let (status, action) = step(Some(&previous), observed(&pods, &s, &m), &now());
    assert!(
        matches!(action, RollAction::Delete { broker: 2, .. }),
        "{action:?}"
    );
    assert_eq!(status.done, [1]);
    assert_eq!(status.broker, Some(2));
}

#[test]
fn resumed_before_the_deletion_the_same_broker_is_deleted() {
    // Status says broker 3 is restarting but its pod still runs the old revision:
    // the operator died between writing the status and deleting the pod. It is the
    // one deleted, though broker 2 comes first in the order.
    let pods: Vec<Pod> = vec![pod(0, OLD), pod(1, NEW), pod(2, OLD), pod(3, OLD)];
    let s = cluster(4, 0);
    let m = min_isr(&[("t", 2)]);
    let previous = rolling(Some(3), Some("Restarting"), &[1]);
    let (status, action) = step(Some(&previous), observed(&pods, &s, &m), &now());
    assert_eq!(
        action,
        RollAction::Delete {
            broker: 3,
            uid: "uid-3-rev-old".into()
        }
    );
    assert_eq!(status.done, [1]);
    assert_eq!(status.broker, Some(3));
}

#[test]
fn resumed_after_the_deletion_the_broker_is_not_restarted_again() {
    // Status says broker 1 is restarting and its pod already runs the new revision:
    // the deletion happened; it is counted done and never deleted again.
    let pods: Vec<Pod> = vec![pod(0, OLD), pod(1, NEW), pod(2, OLD)];
    let s = cluster(3, 0);
    let m = min_isr(&[("t", 2)]);
    let previous = rolling(Some(1), Some("Restarting"), &[]);
    let (status, action) = step(Some(&previous), observed(&pods, &s, &m), &now());
    assert!(
        matches!(action, RollAction::Delete { broker: 2, .. }),
        "{action:?}"
    );
    assert_eq!(status.done, [1]);
}

#[test]
fn a_new_revision_mid_roll_rolls_the_done_brokers_again() {
    let pods: Vec<Pod> = vec![pod(0, OLD), pod(1, OLD), pod(2, OLD)];
    let s = cluster(3, 0);
    let m = min_isr(&[("t", 2)]);
    let mut previous = rolling(None, None, &[1]);
    previous.revision = Some("rev-middle".into());
    let (status, action) = step(Some(&previous), observed(&pods, &s, &m), &now());
    assert!(
        matches!(action, RollAction::Delete { broker: 1, .. }),
        "{action:?}"
    );
    assert_eq!(status.revision.as_deref(), Some(NEW));
    assert!(status.done.is_empty());
}

#[test]
fn pods_removed_by_a_scale_in_are_not_rolled() {
    let pods: Vec<Pod> = vec![pod(0, NEW), pod(1, NEW), pod(2, NEW), pod(3, OLD)];
    let s = cluster(4, 0);
    let m = min_isr(&[("t", 2)]);
    let o = Observed {
        replicas: 3,
        ..observed(&pods, &s, &m)
    };
    assert_eq!(step(None, o, &now()).1, RollAction::None);
    assert_eq!(pods_to_roll(NEW, 3, &pods, &[]), Vec::<i32>::new());
    assert_eq!(pods_to_roll(NEW, 4, &pods, &[]), [3]);
}

#[test]
fn the_end_elects_preferred_leaders_and_stamps_the_status() {
    let pods: Vec<Pod> = (0..3).map(|id| pod(id, NEW)).collect();
    let mut s = cluster(3, 1);
    s.leaders.insert(("t".into(), 0), 1);
    let m = min_isr(&[("t", 2)]);
    let previous = rolling(Some(0), Some("Restarting"), &[2, 1]);
    let (status, action) = step(Some(&previous), observed(&pods, &s, &m), &now());
    assert_eq!(action, RollAction::Finish(vec![("t".into(), 0)]));
    assert_eq!(status.state, "Done");
    assert_eq!(status.done, [2, 1, 0]);
    assert_eq!(status.broker, None);
    assert_eq!(status.finished_at, Some(now()));
    assert!(status.message.contains("[2, 1, 0]"), "{}", status.message);
}

/// A cluster that reacts to the roll's actions: a deleted pod comes back at the
/// update revision over a few observations (terminating, gone, not Ready, Ready but
/// out of the ISR, in sync); a broker going down loses its leaderships to the next
/// in-sync replica, as a controlled shutdown hands them over.
struct Model {
    pods: Vec<Pod>,
    state: BrokerState,
    /// Per broker: how far its restart has come (0 = running).
    restarting: BTreeMap<i32, u32>,
    deletions: Vec<i32>,
    /// The most brokers down at once.
    most_down: usize,
    /// Pods created so far, for fresh uids.
    created: u32,
    /// Per broker restarted for its volume: ticks after it is back in sync before its
    /// claim stops reporting that it needs a restart.
    settling: BTreeMap<i32, u32>,
}

impl Model {
    fn new(n: i32, controller: i32) -> Self {
        let mut state = cluster(n, controller);
        for p in 0..n {
            add(
                &mut state,
                "orders",
                p,
                &[(p + 1) % n, (p + 2) % n, p],
                &[p, (p + 1) % n, (p + 2) % n],
                p,
            );
        }
        Model {
            pods: (0..n).map(|id| pod(id, OLD)).collect(),
            state,
            restarting: BTreeMap::new(),
            deletions: Vec::new(),
            most_down: 0,
            created: 0,
            settling: BTreeMap::new(),
        }
    }

    /// The same cluster with pods at `revisions` (by broker), those in `flagged`
    /// needing a restart for their volume.
    fn with_pods(n: i32, controller: i32, revisions: &[&str], flagged: &[i32]) -> Self {
        let mut model = Model::new(n, controller);
        model.pods = (0..n)
            .map(|id| Pod {
                restart_required: flagged.contains(&id),
                ..pod(id, revisions[id as usize])
            })
            .collect();
        model
    }

    fn act(&mut self, action: &RollAction) {
        match action {
            RollAction::Elect { partitions, .. } | RollAction::Finish(partitions) => {
                for key in partitions {
                    let p = self
                        .state
                        .partitions
                        .iter()
                        .find(|p| (p.topic.clone(), p.partition) == *key)
                        .unwrap();
                    self.state.leaders.insert(key.clone(), p.replicas[0]);
                }
            }
            RollAction::Delete { broker, uid } => {
                let pod = self.pods.iter_mut().find(|p| p.id == *broker).unwrap();
                if pod.uid == *uid && !pod.terminating {
                    if pod.restart_required {
                        self.settling.insert(*broker, 2);
                    }
                    pod.terminating = true;
                    self.deletions.push(*broker);
                    self.restarting.insert(*broker, 1);
                    let b = *broker;
                    for (key, isr) in self.state.isr.iter_mut() {
                        isr.retain(|&r| r != b);
                        if self.state.leaders.get(key) == Some(&b) {
                            self.state.leaders.insert(key.clone(), isr[0]);
                        }
                    }
                }
            }
            RollAction::None | RollAction::Wait => {}
        }
    }

    /// Time passes: each restarting broker comes one stage closer to in sync.
    fn tick(&mut self) {
        self.most_down = self.most_down.max(self.restarting.len());
        // A replacement reports its volume grown a little after it is back in sync.
        for (b, left) in self.settling.iter_mut() {
            if self.restarting.contains_key(b) {
                continue;
            }
            *left = left.saturating_sub(1);
            if *left == 0 {
                if let Some(p) = self.pods.iter_mut().find(|p| p.id == *b) {
                    p.restart_required = false;
                }
            }
        }
        self.settling.retain(|_, left| *left > 0);
        let stages: Vec<(i32, u32)> = self.restarting.iter().map(|(&b, &s)| (b, s)).collect();
        for (b, stage) in stages {
            match stage {
                1 => self.pods.retain(|p| p.id != b),
                2 => {
                    self.created += 1;
                    let mut p = pod(b, NEW);
                    p.uid = format!("uid-{b}-new-{}", self.created);
                    p.restart_required = self.settling.contains_key(&b);
                    p.ready = false;
                    self.pods.push(p);
                    self.pods.sort_by_key(|p| p.id);
                    self.state.registered.remove(&b);
                }
                3 => {
                    self.pods.iter_mut().find(|p| p.id == b).unwrap().ready = true;
                    self.state.registered.insert(b, format!("b{b}:9092"));
                }
                _ => {
                    for p in &self.state.partitions {
                        if p.replicas.contains(&b) {
                            let isr = self
                                .state
                                .isr
                                .get_mut(&(p.topic.clone(), p.partition))
                                .unwrap();
                            isr.push(b);
                        }
                    }
                    self.restarting.remove(&b);
                    continue;
                }
            }
            self.restarting.insert(b, stage + 1);
        }
    }
}

/// Drives a roll to its end. With `kill`, the operator dies after every status write:
/// the action is dropped, the status read back from its JSON, and the next step runs
/// as a fresh operator would.
fn drive(n: i32, controller: i32, kill: bool) -> (Model, RollStatus) {
    drive_model(Model::new(n, controller), n, kill)
}

fn drive_model(mut model: Model, n: i32, kill: bool) -> (Model, RollStatus) {
    let m = min_isr(&[("t", 2), ("orders", 2)]);
    let mut status: Option<RollStatus> = None;
    let mut killed = false;
    for _ in 0..500 {
        let o = Observed {
            replicas: n,
            ..observed(&model.pods, &model.state, &m)
        };
        let (next, action) = step(status.as_ref(), o, &now());
        let written = serde_json::to_string(&next).unwrap();
        status = Some(serde_json::from_str(&written).unwrap());
        let acts = matches!(action, RollAction::Elect { .. } | RollAction::Delete { .. });
        if kill && acts && !killed {
            killed = true;
        } else {
            killed = false;
            model.act(&action);
        }
        if let RollAction::Finish(_) = action {
            return (model, status.unwrap());
        }
        model.tick();
    }
    panic!("roll did not finish: {status:?}");
}

#[test]
fn a_roll_restarts_each_broker_once_one_at_a_time_controller_last() {
    for controller in 0..5 {
        let (model, status) = drive(5, controller, false);
        let mut expected: Vec<i32> = (0..5).filter(|&b| b != controller).collect();
        expected.push(controller);
        assert_eq!(model.deletions, expected, "controller {controller}");
        assert_eq!(status.done, expected);
        assert_eq!(model.most_down, 1);
        assert!(model
            .pods
            .iter()
            .all(|p| p.revision.as_deref() == Some(NEW) && p.ready));
    }
}

#[test]
fn a_roll_killed_between_every_write_and_its_action_restarts_each_broker_once() {
    for controller in 0..3 {
        let (model, status) = drive(3, controller, true);
        let mut expected: Vec<i32> = (0..3).filter(|&b| b != controller).collect();
        expected.push(controller);
        assert_eq!(model.deletions, expected, "controller {controller}");
        assert_eq!(status.done, expected);
        assert_eq!(model.most_down, 1);
        assert_eq!(status.state, "Done");
    }
}

#[test]
fn a_pod_at_the_target_revision_whose_volume_needs_a_restart_is_rolled() {
    let pods: Vec<Pod> = vec![pod(0, NEW), flagged(1, NEW), pod(2, NEW)];
    let s = cluster(3, 0);
    let m = min_isr(&[("t", 2)]);
    let (status, action) = step(None, observed(&pods, &s, &m), &now());
    assert_eq!(
        action,
        RollAction::Delete {
            broker: 1,
            uid: "uid-1-rev-new".into()
        }
    );
    assert_eq!(status.state, "Rolling");
    assert_eq!(status.restarted_uid.as_deref(), Some("uid-1-rev-new"));
    assert!(
        status.message.contains("to finish growing its volume"),
        "{}",
        status.message
    );
}

#[test]
fn a_replacement_still_flagged_is_not_deleted_again() {
    let s = cluster(3, 0);
    let m = min_isr(&[("t", 2)]);
    let mut previous = rolling(Some(1), Some("Restarting"), &[]);
    previous.restarted_uid = Some("uid-1-rev-new".into());
    // The operator restarted between the status write and the deletion: the pod named
    // in status is still there, so it is deleted.
    let previous: RollStatus =
        serde_json::from_str(&serde_json::to_string(&previous).unwrap()).unwrap();
    let pods: Vec<Pod> = vec![pod(0, NEW), flagged(1, NEW), pod(2, NEW)];
    let (_, action) = step(Some(&previous), observed(&pods, &s, &m), &now());
    assert!(
        matches!(action, RollAction::Delete { broker: 1, .. }),
        "{action:?}"
    );

    // Its replacement (another uid) still reports that its volume needs a restart:
    // it is done, not deleted again, and the roll waits for the flag to clear.
    let replacement = Pod {
        uid: "uid-1-second".into(),
        ..flagged(1, NEW)
    };
    let pods: Vec<Pod> = vec![pod(0, NEW), replacement.clone(), pod(2, NEW)];
    let (status, action) = step(Some(&previous), observed(&pods, &s, &m), &now());
    assert_eq!(action, RollAction::Wait);
    assert_eq!(status.done, [1]);
    assert_eq!(status.reason.as_deref(), Some("VolumeGrowing"));
    let status: RollStatus =
        serde_json::from_str(&serde_json::to_string(&status).unwrap()).unwrap();
    let (again, action) = step(Some(&status), observed(&pods, &s, &m), &now());
    assert_eq!(action, RollAction::Wait);
    assert_eq!(again.done, [1]);

    let pods: Vec<Pod> = vec![
        pod(0, NEW),
        Pod {
            restart_required: false,
            ..replacement
        },
        pod(2, NEW),
    ];
    let (status, action) = step(Some(&again), observed(&pods, &s, &m), &now());
    assert!(matches!(action, RollAction::Finish(_)), "{action:?}");
    assert_eq!(status.state, "Done");
}

#[test]
fn revision_and_volume_restarts_in_one_roll_restart_each_broker_once() {
    for kill in [false, true] {
        for controller in 0..4 {
            // Brokers 0 and 1 run the old revision (1's volume needs a restart too),
            // broker 2 only needs one for its volume, broker 3 nothing.
            let model = Model::with_pods(4, controller, &[OLD, OLD, NEW, NEW], &[1, 2]);
            let (model, status) = drive_model(model, 4, kill);
            let mut expected: Vec<i32> = (0..3).filter(|&b| b != controller).collect();
            if controller < 3 {
                expected.push(controller);
            }
            assert_eq!(
                model.deletions, expected,
                "controller {controller} kill {kill}"
            );
            assert_eq!(status.done, expected);
            assert_eq!(model.most_down, 1);
            assert_eq!(status.state, "Done");
            assert!(model.pods.iter().all(|p| !p.restart_required && p.ready));
        }
    }
}
