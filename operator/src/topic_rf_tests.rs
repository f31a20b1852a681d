//! Tests of the replication-factor planner and of the run's steps, resumed from status.

use k8s_openapi::jiff::Timestamp;

use super::*;

fn brokers(n: i32) -> Vec<Broker> {
    (0..n).map(|id| Broker { id, rack: None }).collect()
}

fn racked(racks: &[&str]) -> Vec<Broker> {
    racks
        .iter()
        .enumerate()
        .map(|(id, r)| Broker {
            id: id as i32,
            rack: Some(r.to_string()),
        })
        .collect()
}

fn load(counts: &[usize]) -> BTreeMap<i32, usize> {
    counts
        .iter()
        .enumerate()
        .map(|(b, &n)| (b as i32, n))
        .collect()
}

/// A partition in sync, led by its first replica.
fn part(partition: i32, replicas: &[i32]) -> PartitionState {
    PartitionState {
        partition,
        replicas: replicas.to_vec(),
        isr: replicas.to_vec(),
        leader: replicas.first().copied(),
    }
}

fn now() -> Time {
    Time(Timestamp::UNIX_EPOCH)
}

fn sorted(v: &[i32]) -> Vec<i32> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v
}

struct World {
    brokers: Vec<Broker>,
    load: BTreeMap<i32, usize>,
    partitions: Vec<PartitionState>,
    reassigning: BTreeSet<i32>,
    min_insync: i32,
}

impl World {
    fn new(n: i32, partitions: Vec<PartitionState>) -> Self {
        let mut load: BTreeMap<i32, usize> = (0..n).map(|b| (b, 0)).collect();
        for p in &partitions {
            for r in &p.replicas {
                *load.entry(*r).or_default() += 1;
            }
        }
        World {
            brokers: brokers(n),
            load,
            partitions,
            reassigning: BTreeSet::new(),
            min_insync: 1,
        }
    }

    fn observed(&self, want: i32) -> Observed<'_> {
        Observed {
            topic: "t",
            want,
            min_insync: self.min_insync,
            brokers: &self.brokers,
            load: &self.load,
            partitions: &self.partitions,
            reassigning: &self.reassigning,
        }
    }

    /// Completes reassignments as the broker does: replicas become the target, all in
    /// sync, the leader kept when it stays.
    fn complete(&mut self, moves: &[PartitionReplicas]) {
        for m in moves {
            let p = self
                .partitions
                .iter_mut()
                .find(|p| p.partition == m.partition)
                .unwrap();
            for r in &p.replicas {
                *self.load.get_mut(r).unwrap() -= 1;
            }
            for r in &m.replicas {
                *self.load.get_mut(r).unwrap() += 1;
            }
            p.replicas = m.replicas.clone();
            p.isr = m.replicas.clone();
            if !p.leader.is_some_and(|l| m.replicas.contains(&l)) {
                p.leader = m.replicas.first().copied();
            }
        }
    }
}

#[test]
fn growing_adds_the_least_loaded_brokers_and_keeps_the_preferred_leader() {
    let mut l = load(&[5, 9, 0, 2]);
    let t = target(&part(0, &[1]), 3, &brokers(4), &mut l);
    assert_eq!(t, vec![1, 2, 3]);
    assert_eq!(l, load(&[5, 9, 1, 3]));
}

#[test]
fn growing_many_partitions_spreads_them_evenly() {
    let partitions: Vec<PartitionState> = (0..6).map(|p| part(p, &[p % 3])).collect();
    let mut l = load(&[2, 2, 2]);
    let mut per_broker = BTreeMap::<i32, usize>::new();
    for p in &partitions {
        let t = target(p, 2, &brokers(3), &mut l);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0], p.replicas[0]);
        assert_ne!(t[0], t[1]);
        for r in t {
            *per_broker.entry(r).or_default() += 1;
        }
    }
    assert_eq!(per_broker, load(&[4, 4, 4]));
    assert_eq!(l, load(&[4, 4, 4]));
}

#[test]
fn growing_prefers_a_rack_without_a_replica_over_a_lighter_broker() {
    // Broker 1 is the lightest but shares rack "a" with the replica on broker 0.
    let mut l = load(&[3, 0, 5, 4]);
    let t = target(&part(0, &[0]), 2, &racked(&["a", "a", "b", "b"]), &mut l);
    assert_eq!(t, vec![0, 3]);
    // Without racks on every broker, load alone decides.
    let mut mixed = racked(&["a", "a", "b", "b"]);
    mixed[3].rack = None;
    let mut l = load(&[3, 0, 5, 4]);
    assert_eq!(target(&part(0, &[0]), 2, &mixed, &mut l), vec![0, 1]);
}

#[test]
fn shrinking_drops_the_most_loaded_brokers_but_never_the_leader() {
    let mut p = part(0, &[0, 1, 2]);
    p.leader = Some(2);
    // Broker 2 is the most loaded, but it leads.
    let mut l = load(&[4, 6, 9]);
    assert_eq!(target(&p, 2, &brokers(3), &mut l), vec![0, 2]);
    assert_eq!(l, load(&[4, 5, 9]));
    let mut l = load(&[4, 6, 9]);
    assert_eq!(target(&p, 1, &brokers(3), &mut l), vec![2]);
}

#[test]
fn shrinking_drops_down_then_out_of_sync_replicas_first() {
    // Broker 3 is not among the brokers up; broker 1 is out of sync.
    let mut p = part(0, &[0, 1, 2, 3]);
    p.isr = vec![0, 2];
    let mut l = load(&[1, 1, 9, 1]);
    assert_eq!(target(&p, 3, &brokers(3), &mut l), vec![0, 1, 2]);
    let mut l = load(&[1, 1, 9, 1]);
    assert_eq!(target(&p, 2, &brokers(3), &mut l), vec![0, 2]);
}

#[test]
fn shrinking_leaves_the_rack_with_the_most_replicas() {
    // Racks a: {0, 1}, b: {2}; the replica on broker 2 is the only one in rack b.
    let mut p = part(0, &[0, 1, 2]);
    p.leader = Some(0);
    let mut l = load(&[1, 1, 9]);
    assert_eq!(target(&p, 2, &racked(&["a", "a", "b"]), &mut l), vec![0, 2]);
}

#[test]
fn more_replicas_than_brokers_is_refused() {
    let w = World::new(3, vec![part(0, &[0])]);
    let (status, action) = step(None, w.observed(4), &now());
    assert_eq!(
        action,
        Action::Refused(Refusal::TooFewBrokers {
            want: 4,
            brokers: 3
        })
    );
    let status = status.unwrap();
    assert_eq!(status.state, "Refused");
    assert!(status.message.contains("3 brokers"), "{}", status.message);
    assert!(status.batch.is_empty());
}

#[test]
fn shrinking_below_min_insync_is_refused_but_growing_is_not() {
    let mut w = World::new(3, vec![part(0, &[0, 1, 2])]);
    w.min_insync = 2;
    let (status, action) = step(None, w.observed(1), &now());
    assert_eq!(
        action,
        Action::Refused(Refusal::BelowMinInsync {
            want: 1,
            min_insync: 2
        })
    );
    assert!(status.unwrap().message.contains("min.insync.replicas=2"));
    // To 2 is fine: writes keep their two in-sync replicas.
    let (_, action) = step(None, w.observed(2), &now());
    assert!(matches!(action, Action::Submit(_)), "{action:?}");
    // A grow that stays below min.insync.replicas still makes things better.
    let mut w = World::new(3, vec![part(0, &[0])]);
    w.min_insync = 3;
    let (_, action) = step(None, w.observed(2), &now());
    assert!(matches!(action, Action::Submit(_)), "{action:?}");
}

#[test]
fn a_topic_at_its_replication_factor_has_no_run() {
    let w = World::new(3, vec![part(0, &[0, 1]), part(1, &[1, 2])]);
    assert_eq!(step(None, w.observed(2), &now()), (None, Action::None));
    // A refusal that no longer applies (the spec went back) is cleared.
    let refused = TopicReassignmentStatus {
        state: "Refused".into(),
        replication_factor: 5,
        ..Default::default()
    };
    assert_eq!(
        step(Some(&refused), w.observed(2), &now()),
        (None, Action::None)
    );
    // A finished run stays as it was.
    let done = TopicReassignmentStatus {
        state: "Done".into(),
        replication_factor: 2,
        partitions_to_move: 2,
        partitions_moved: 2,
        ..Default::default()
    };
    assert_eq!(
        step(Some(&done), w.observed(2), &now()),
        (Some(done.clone()), Action::None)
    );
}

#[test]
fn a_run_moves_in_bounded_batches_and_finishes_in_sync() {
    let n = 2 * BATCH_PARTITIONS as i32 + 3;
    let mut w = World::new(3, (0..n).map(|p| part(p, &[p % 3])).collect());
    let mut status: Option<TopicReassignmentStatus> = None;
    let mut batches = 0;
    loop {
        let (next, action) = step(status.as_ref(), w.observed(3), &now());
        let next = next.expect("a run");
        assert_eq!(next.replication_factor, 3);
        assert_eq!(next.partitions_to_move, n);
        match action {
            Action::Submit(moves) => {
                batches += 1;
                assert_eq!(next.state, "Running");
                assert!(moves.len() <= BATCH_PARTITIONS);
                assert_eq!(next.batch.len(), moves.len());
                for m in &moves {
                    assert_eq!(sorted(&m.replicas), vec![0, 1, 2]);
                    assert_eq!(m.topic, "t");
                }
                w.complete(&moves);
            }
            Action::Finished => {
                assert_eq!(next.state, "Done");
                assert_eq!(next.partitions_moved, n);
                assert!(next.batch.is_empty());
                assert!(next.finished_at.is_some());
                status = Some(next);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
        status = Some(next);
        assert!(batches <= 3, "more batches than partitions need");
    }
    assert_eq!(batches, 3);
    assert!(w.partitions.iter().all(|p| p.replicas.len() == 3));
    // The next step has nothing to do and keeps the finished run.
    let (after, action) = step(status.as_ref(), w.observed(3), &now());
    assert_eq!(action, Action::None);
    assert_eq!(after.unwrap().state, "Done");
}

#[test]
fn the_first_batch_is_exactly_the_bound() {
    let n = BATCH_PARTITIONS as i32 + 1;
    let w = World::new(3, (0..n).map(|p| part(p, &[0])).collect());
    let (status, action) = step(None, w.observed(2), &now());
    let Action::Submit(moves) = action else {
        panic!("{action:?}")
    };
    assert_eq!(moves.len(), BATCH_PARTITIONS);
    let status = status.unwrap();
    assert_eq!(status.partitions_to_move, n);
    assert_eq!(status.partitions_moved, 0);
    assert!(status.started_at.is_some());
}

#[test]
fn a_partition_counts_only_once_its_target_replicas_are_in_sync() {
    let mut w = World::new(3, vec![part(0, &[0]), part(1, &[1])]);
    let (status, action) = step(None, w.observed(2), &now());
    let Action::Submit(moves) = action else {
        panic!("{action:?}")
    };
    w.complete(&moves);
    // The broker lists the target replicas (in another order) but one is not in sync.
    w.partitions[0].replicas.reverse();
    w.partitions[0].isr = vec![w.partitions[0].leader.unwrap()];
    let (status, action) = step(status.as_ref(), w.observed(2), &now());
    assert_eq!(action, Action::Wait);
    let status = status.unwrap();
    assert_eq!(status.partitions_moved, 1);
    assert_eq!(status.batch.len(), 1);
    assert!(status.message.contains("1 in flight"), "{}", status.message);
    w.partitions[0].isr = w.partitions[0].replicas.clone();
    let (status, action) = step(Some(&status), w.observed(2), &now());
    assert_eq!(action, Action::Finished);
    assert_eq!(status.unwrap().partitions_moved, 2);
}

#[test]
fn a_restarted_operator_waits_for_its_batch_and_replans_what_was_never_sent() {
    let mut w = World::new(4, (0..6).map(|p| part(p, &[p % 4])).collect());
    let (status, action) = step(None, w.observed(2), &now());
    let Action::Submit(moves) = action else {
        panic!("{action:?}")
    };
    assert_eq!(moves.len(), 6);
    let status = status.unwrap();
    // The operator died after writing the batch: partitions 0 and 1 finished, 2 and 3
    // are still moving, 4 and 5 were never sent.
    w.complete(&moves[..2]);
    for m in &moves[2..4] {
        let p = &mut w.partitions[m.partition as usize];
        p.replicas = m.replicas.clone();
        p.isr = vec![p.replicas[0]];
        w.reassigning.insert(m.partition);
    }
    let (next, action) = step(Some(&status), w.observed(2), &now());
    let next = next.unwrap();
    assert_eq!(next.partitions_moved, 2);
    assert_eq!(next.partitions_to_move, 6);
    let Action::Submit(again) = action else {
        panic!("{action:?}")
    };
    let again: Vec<i32> = again.iter().map(|m| m.partition).collect();
    assert_eq!(again, vec![4, 5]);
    let in_batch: Vec<i32> = next.batch.iter().map(|m| m.partition).collect();
    assert_eq!(in_batch, vec![2, 3, 4, 5]);
    // The same status again (the operator restarted once more) sends nothing twice.
    for m in &moves[4..] {
        w.reassigning.insert(m.partition);
    }
    let (same, action) = step(Some(&next), w.observed(2), &now());
    assert_eq!(action, Action::Wait);
    assert_eq!(same.unwrap().partitions_moved, 2);
}

#[test]
fn partitions_another_reassignment_moves_wait() {
    let mut w = World::new(3, vec![part(0, &[0]), part(1, &[1])]);
    w.reassigning.insert(1);
    let (status, action) = step(None, w.observed(2), &now());
    let Action::Submit(moves) = action else {
        panic!("{action:?}")
    };
    assert_eq!(moves.len(), 1);
    assert_eq!(moves[0].partition, 0);
    assert_eq!(status.unwrap().partitions_to_move, 2);
}

#[test]
fn a_new_wanted_factor_mid_run_starts_a_new_run() {
    let w = World::new(3, vec![part(0, &[0])]);
    let (status, _) = step(None, w.observed(2), &now());
    let (next, action) = step(status.as_ref(), w.observed(3), &now());
    let next = next.unwrap();
    assert_eq!(next.replication_factor, 3);
    assert_eq!(next.state, "Running");
    assert!(matches!(action, Action::Submit(ref m) if sorted(&m[0].replicas) == vec![0, 1, 2]));
}

#[test]
fn another_reassignment_in_flight_is_not_a_replication_factor_change() {
    // A rebalance moving partition 0 from [0, 1] to [0, 2] lists all three meanwhile.
    let mut w = World::new(3, vec![part(0, &[0, 1, 2]), part(1, &[1, 2])]);
    w.reassigning.insert(0);
    w.min_insync = 3;
    assert_eq!(step(None, w.observed(2), &now()), (None, Action::None));
}
