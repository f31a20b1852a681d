//! Tests of the rebalancing plan: fixed cases with their numbers, and properties over
//! many seeded random clusters (the seed is printed on failure).

use super::*;

/// SplitMix64: a small deterministic generator, so a failing seed replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    /// `k` distinct values of `0..n`, in random order.
    fn pick(&mut self, n: usize, k: usize) -> Vec<i32> {
        let mut all: Vec<i32> = (0..n as i32).collect();
        for i in 0..k {
            let j = self.range(i, n - 1);
            all.swap(i, j);
        }
        all.truncate(k);
        all
    }
}

fn brokers(n: i32) -> Vec<Broker> {
    (0..n).map(|id| Broker { id, rack: None }).collect()
}

fn ids(brokers: &[Broker]) -> Vec<i32> {
    brokers.iter().map(|b| b.id).collect()
}

/// Partitions of topic "t" placed as Kafka places a new topic without racks:
/// partition p on brokers p, p+1, ... (mod `on`).
fn round_robin(partitions: usize, rf: usize, on: usize) -> Vec<PartitionReplicas> {
    (0..partitions)
        .map(|p| PartitionReplicas {
            topic: "t".into(),
            partition: p as i32,
            replicas: (0..rf).map(|k| ((p + k) % on) as i32).collect(),
        })
        .collect()
}

fn apply(partitions: &[PartitionReplicas], moves: &[PartitionReplicas]) -> Vec<PartitionReplicas> {
    let mut out = partitions.to_vec();
    for m in moves {
        let p = out
            .iter_mut()
            .find(|p| p.topic == m.topic && p.partition == m.partition)
            .expect("move of a known partition");
        p.replicas = m.replicas.clone();
    }
    out
}

/// The fewest replica moves that reach `max - min <= 1` from these loads, ignoring
/// which partitions can go where: the brokers given the larger share are the ones
/// that hold the most already, and every replica above a broker's share must move.
fn fewest_moves(loads: &BTreeMap<i32, usize>) -> usize {
    let total: usize = loads.values().sum();
    let n = loads.len();
    let mut sorted: Vec<usize> = loads.values().copied().collect();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let share = total / n + usize::from(i < total % n);
            c.saturating_sub(share)
        })
        .sum()
}

/// Checks the plan's invariants; returns the partitions after the plan.
fn check_invariants(
    seed: u64,
    brokers: &[Broker],
    before: &[PartitionReplicas],
    plan: &Plan,
) -> Vec<PartitionReplicas> {
    let after = apply(before, &plan.moves);
    let known: BTreeSet<i32> = ids(brokers).into_iter().collect();
    let racks: Option<BTreeMap<i32, &str>> = brokers
        .iter()
        .map(|b| b.rack.as_deref().map(|r| (b.id, r)))
        .collect();
    let mut sizes: BTreeMap<&str, usize> = BTreeMap::new();
    for r in racks.iter().flat_map(|r| r.values()) {
        *sizes.entry(r).or_default() += 1;
    }
    let sizes: Vec<usize> = sizes.into_values().collect();
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(
            b.replicas.len(),
            a.replicas.len(),
            "seed {seed}: RF of {a:?}"
        );
        let distinct: BTreeSet<i32> = a.replicas.iter().copied().collect();
        assert_eq!(distinct.len(), a.replicas.len(), "seed {seed}: {a:?}");
        assert!(distinct.is_subset(&known), "seed {seed}: {a:?}");
        if let Some(racks) = &racks {
            let mut per_rack: BTreeMap<&str, usize> = BTreeMap::new();
            for r in &a.replicas {
                *per_rack.entry(racks[r]).or_default() += 1;
            }
            let cap = rack_cap(&sizes, a.replicas.len());
            assert!(
                per_rack.values().all(|&n| n <= cap),
                "seed {seed}: {a:?} over rack cap {cap}: {per_rack:?}"
            );
        }
    }
    after
}

/// `max - min <= 1` over `brokers`.
fn even(counts: &BTreeMap<i32, usize>, brokers: &[i32]) -> bool {
    let (max, min) = spread(counts, brokers);
    max - min <= 1
}

#[test]
fn three_to_five_brokers_moves_the_share_of_the_new_ones() {
    // 30 partitions with 3 replicas each on brokers 0-2: 30 replicas and 10 preferred
    // leaderships per broker. On 5 brokers the share is 18 replicas and 6 leaderships.
    let before = round_robin(30, 3, 3);
    let five = brokers(5);
    let plan = plan(&five, &before);
    let after = check_invariants(0, &five, &before, &plan);
    let (replicas, leaders) = counts(&ids(&five), &after);
    assert_eq!(
        replicas,
        BTreeMap::from([(0, 18), (1, 18), (2, 18), (3, 18), (4, 18)])
    );
    assert_eq!(
        leaders,
        BTreeMap::from([(0, 6), (1, 6), (2, 6), (3, 6), (4, 6)])
    );
    // Each of brokers 0-2 gives 12 replicas away: 36 copies, the fewest possible.
    assert_eq!(plan.replicas_moved, 36);
    assert!(plan.moves.len() <= 30);
    assert!(plan.unplaceable.is_empty());
}

#[test]
fn a_balanced_cluster_yields_no_moves() {
    for (partitions, rf, n) in [
        (30, 3, 3),
        (10, 2, 5),
        (7, 1, 5),
        (1, 1, 1),
        (495, 3, 9),
        (10, 1, 4),
    ] {
        let before = round_robin(partitions, rf, n);
        let plan = plan(&brokers(n as i32), &before);
        assert_eq!(
            plan,
            Plan::default(),
            "{partitions} partitions RF {rf} on {n}"
        );
    }
}

#[test]
fn racks_spread_replicas_one_per_rack() {
    // Brokers 0-5 in racks a, b, c (two each); every partition starts on a and b only.
    let six: Vec<Broker> = (0..6)
        .map(|id| Broker {
            id,
            rack: Some(["a", "b", "c"][id as usize / 2].into()),
        })
        .collect();
    let before: Vec<PartitionReplicas> = (0..12)
        .map(|p| PartitionReplicas {
            topic: "t".into(),
            partition: p,
            replicas: vec![p % 2, 2 + p % 2, (p + 1) % 2],
        })
        .collect();
    let plan = plan(&six, &before);
    let after = check_invariants(0, &six, &before, &plan);
    for p in &after {
        let racks: BTreeSet<i32> = p.replicas.iter().map(|r| r / 2).collect();
        assert_eq!(racks.len(), 3, "{p:?}");
    }
    let (replicas, leaders) = counts(&ids(&six), &after);
    assert!(replicas.values().all(|&n| n == 6), "{replicas:?}");
    assert!(leaders.values().all(|&n| n == 2), "{leaders:?}");
}

#[test]
fn rack_cap_spreads_as_evenly_as_the_racks_allow() {
    assert_eq!(rack_cap(&[2, 2, 2], 3), 1);
    assert_eq!(rack_cap(&[1, 3], 3), 2);
    assert_eq!(rack_cap(&[3], 3), 3);
    assert_eq!(rack_cap(&[1, 1, 4], 3), 1);
    assert_eq!(rack_cap(&[1, 1, 4], 4), 2);
    assert_eq!(rack_cap(&[], 0), 0);
}

#[test]
fn hostile_replica_lists_are_repaired_or_left_alone() {
    let three = brokers(3);
    let before = vec![
        // A duplicate and a broker that does not exist.
        PartitionReplicas {
            topic: "t".into(),
            partition: 0,
            replicas: vec![1, 1, 7],
        },
        // More replicas than brokers: no placement exists.
        PartitionReplicas {
            topic: "t".into(),
            partition: 1,
            replicas: vec![0, 1, 2, 3],
        },
        PartitionReplicas {
            topic: "t".into(),
            partition: 2,
            replicas: vec![],
        },
        PartitionReplicas {
            topic: "t".into(),
            partition: 3,
            replicas: vec![-1, 2],
        },
    ];
    let plan = plan(&three, &before);
    assert_eq!(
        plan.unplaceable,
        vec![("t".to_string(), 1), ("t".to_string(), 2)]
    );
    let moved: Vec<i32> = plan.moves.iter().map(|m| m.partition).collect();
    assert_eq!(moved, vec![0, 3]);
    for m in &plan.moves {
        let distinct: BTreeSet<i32> = m.replicas.iter().copied().collect();
        assert_eq!(distinct.len(), m.replicas.len(), "{m:?}");
        assert!(m.replicas.iter().all(|r| (0..3).contains(r)), "{m:?}");
    }
    // No brokers at all: nothing can be placed.
    assert_eq!(super::plan(&[], &before).unplaceable.len(), 4);
}

/// A random cluster: `n` brokers (racks or not), partitions of several topics placed
/// either on the first brokers only (a scale-out) or at random.
fn random_cluster(rng: &mut Rng) -> (Vec<Broker>, Vec<PartitionReplicas>) {
    let n = rng.range(1, 9);
    let racked = rng.range(0, 2);
    let rack_count = rng.range(1, 3);
    let cluster: Vec<Broker> = (0..n as i32)
        .map(|id| Broker {
            id,
            rack: match racked {
                0 => None,
                // Racks as even as the broker count allows, as a zone spread gives.
                1 => Some(format!("r{}", id as usize % rack_count)),
                _ => Some(format!("r{}", rng.range(0, rack_count - 1))),
            },
        })
        .collect();
    let rf = rng.range(1, 3.min(n));
    let partitions = rng.range(1, 500);
    let scale_out_from = rng.range(rf, n);
    let random = rng.range(0, 1) == 1;
    let topics = rng.range(1, 5);
    let before = (0..partitions)
        .map(|p| PartitionReplicas {
            topic: format!("topic-{}", p % topics),
            partition: (p / topics) as i32,
            replicas: if random {
                rng.pick(n, rf)
            } else {
                rng.pick(scale_out_from, rf)
            },
        })
        .collect();
    (cluster, before)
}

#[test]
fn random_clusters_end_balanced_with_the_fewest_moves() {
    for seed in 0..600u64 {
        let mut rng = Rng(seed);
        let (cluster, before) = random_cluster(&mut rng);
        let all = ids(&cluster);
        let plan = plan(&cluster, &before);
        assert_eq!(
            plan,
            super::plan(&cluster, &before),
            "seed {seed}: deterministic"
        );
        assert!(plan.unplaceable.is_empty(), "seed {seed}");
        let after = check_invariants(seed, &cluster, &before, &plan);
        let (replicas, leaders) = counts(&all, &after);
        let racked = cluster[0].rack.is_some();
        if racked {
            // Inside each rack the replicas are even.
            let mut by_rack: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for b in &cluster {
                by_rack
                    .entry(b.rack.as_deref().unwrap())
                    .or_default()
                    .push(b.id);
            }
            for (rack, members) in &by_rack {
                assert!(
                    even(&replicas, members),
                    "seed {seed}: rack {rack} {replicas:?}"
                );
            }
        } else {
            assert!(even(&replicas, &all), "seed {seed}: replicas {replicas:?}");
            let (loads_before, _) = counts(&all, &before);
            assert_eq!(
                plan.replicas_moved,
                fewest_moves(&loads_before),
                "seed {seed}: {loads_before:?}"
            );
        }
        assert!(even(&leaders, &all), "seed {seed}: leaders {leaders:?}");
        // Once applied, the plan has nothing left to do.
        assert_eq!(
            super::plan(&cluster, &after),
            Plan::default(),
            "seed {seed}: not idempotent"
        );
    }
}

#[test]
fn replanning_after_a_batch_never_moves_more_than_what_was_left() {
    // Without racks every planned move goes from a broker above its share to one below
    // it, so a batch carried out leaves exactly the rest to do. (With racks the plan is
    // greedy under the rack cap and a replan may differ by a replica.)
    for seed in 0..300u64 {
        let mut rng = Rng(seed);
        let (mut cluster, before) = random_cluster(&mut rng);
        for b in &mut cluster {
            b.rack = None;
        }
        let first = plan(&cluster, &before);
        let batch = rng.range(0, first.moves.len());
        let done = &first.moves[..batch];
        let moved_in_batch: usize = done
            .iter()
            .map(|m| {
                let old = &before
                    .iter()
                    .find(|p| p.topic == m.topic && p.partition == m.partition)
                    .unwrap()
                    .replicas;
                m.replicas.iter().filter(|r| !old.contains(r)).count()
            })
            .sum();
        let rest = plan(&cluster, &apply(&before, done));
        assert!(
            rest.replicas_moved <= first.replicas_moved - moved_in_batch,
            "seed {seed}: {} left after a batch of {moved_in_batch}, planned {}",
            rest.replicas_moved,
            first.replicas_moved
        );
    }
}

/// A fake cluster for [`step`]: brokers `0..n` registered, partitions led by their
/// preferred replica, reassignments carried out when the test says so.
struct FakeBrokers {
    brokers: Vec<Broker>,
    state: BrokerState,
}

impl FakeBrokers {
    fn new(n: i32, partitions: Vec<PartitionReplicas>) -> Self {
        let mut fake = FakeBrokers {
            brokers: brokers(n),
            state: BrokerState {
                registered: (0..n).map(|id| (id, format!("b{id}:9092"))).collect(),
                partitions,
                ..BrokerState::default()
            },
        };
        fake.elect_preferred();
        fake
    }

    fn elect_preferred(&mut self) {
        self.state.leaders = self
            .state
            .partitions
            .iter()
            .map(|p| ((p.topic.clone(), p.partition), p.replicas[0]))
            .collect();
    }

    fn observed(&self, auto: bool, requested: bool) -> Observed<'_> {
        Observed {
            steady: true,
            auto,
            requested,
            brokers: &self.brokers,
            state: &self.state,
        }
    }

    /// AlterPartitionReassignments: the moves are in progress.
    fn submit(&mut self, batch: &[PartitionReplicas]) {
        for m in batch {
            let p = self
                .state
                .partitions
                .iter()
                .find(|p| p.topic == m.topic && p.partition == m.partition)
                .unwrap();
            assert_ne!(p.replicas, m.replicas, "a move that changes nothing: {m:?}");
            self.state
                .reassigning
                .insert((m.topic.clone(), m.partition));
        }
        self.state.partitions = apply(&self.state.partitions, batch);
    }

    /// The reassignments in progress complete.
    fn complete(&mut self) {
        self.state.reassigning.clear();
    }
}

fn at(seconds: i64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap())
}

fn idle(brokers: i32) -> RebalanceStatus {
    RebalanceStatus {
        state: "Idle".into(),
        brokers,
        ..RebalanceStatus::default()
    }
}

#[test]
fn a_scale_out_runs_in_batches_until_balanced() {
    // 100 partitions of RF 3 on brokers 0-2, seen as a 3-broker cluster; now 5.
    let mut fake = FakeBrokers::new(5, round_robin(100, 3, 3));
    let first = plan(&fake.brokers, &fake.state.partitions);
    assert!(
        first.moves.len() > 3 * BATCH_PARTITIONS,
        "{}",
        first.moves.len()
    );
    let mut status = idle(3);
    let mut batches = 0;
    let mut submitted = 0;
    let mut now = 0;
    loop {
        now += 5;
        let (next, action) = step(Some(&status), fake.observed(true, false), &at(now));
        status = next;
        match action {
            RunAction::Submit(batch) => {
                assert!(batch.len() <= BATCH_PARTITIONS);
                assert_eq!(status.state, "Running");
                assert_eq!(status.reason.as_deref(), Some("ScaleOut"));
                assert_eq!(status.batch.len(), batch.len());
                assert_eq!(status.started_at, Some(at(5)));
                batches += 1;
                submitted += batch.len();
                fake.submit(&batch);
                // While the batch is in flight the run waits, twice over.
                for _ in 0..2 {
                    now += 5;
                    let (next, action) = step(Some(&status), fake.observed(true, false), &at(now));
                    assert_eq!(action, RunAction::Wait);
                    assert!(next.message.contains("waiting for"), "{}", next.message);
                    status = next;
                }
                fake.complete();
            }
            RunAction::Finish(elect) => {
                // The fake brokers do not move leaders: each partition whose preferred
                // replica changed is elected.
                assert!(!elect.is_empty());
                break;
            }
            other => panic!("unexpected {other:?} with {status:?}"),
        }
        assert!(batches < 100, "the run does not end: {status:?}");
    }
    assert_eq!(status.state, "Done");
    assert_eq!(status.brokers, 5);
    // Replans after each batch may reorder a few more replica lists to even out the
    // leaders; the count is of every partition reassigned.
    assert_eq!(status.partitions_moved, submitted as i32);
    assert_eq!(status.partitions_to_move, submitted as i32);
    assert!(submitted >= first.moves.len());
    assert!(status.batch.is_empty());
    assert_eq!(status.finished_at, Some(at(now)));
    assert_eq!(batches, submitted.div_ceil(BATCH_PARTITIONS));
    let (replicas, leaders) = counts(&ids(&fake.brokers), &fake.state.partitions);
    assert!(even(&replicas, &ids(&fake.brokers)), "{replicas:?}");
    assert!(even(&leaders, &ids(&fake.brokers)), "{leaders:?}");
    assert!(
        status
            .message
            .starts_with("balanced: 5 brokers: 60..60 replicas"),
        "{}",
        status.message
    );
    // Done and balanced: the next step does nothing.
    fake.elect_preferred();
    let (again, action) = step(Some(&status), fake.observed(true, false), &at(now + 5));
    assert_eq!((again, action), (status, RunAction::None));
}

#[test]
fn a_restarted_operator_continues_without_repeating_a_move() {
    // The status of each batch is written before the batch is sent. The operator dies
    // after every write: on even rounds before sending (the batch is lost), on odd
    // rounds after (the batch runs while nobody watches). Each restart continues from
    // the status written last.
    let mut fake = FakeBrokers::new(5, round_robin(60, 3, 3));
    let first = plan(&fake.brokers, &fake.state.partitions);
    let mut status = idle(3);
    let mut copied = 0;
    let mut sent = 0;
    let mut lost = 0;
    for round in 0..100 {
        let (next, action) = step(Some(&status), fake.observed(true, false), &at(round));
        status = next;
        match action {
            RunAction::Submit(batch) => {
                assert_eq!(status.batch.len(), batch.len());
                if round % 2 == 0 {
                    lost += 1;
                    continue;
                }
                let before = fake.state.partitions.clone();
                fake.submit(&batch);
                sent += batch.len();
                copied += batch
                    .iter()
                    .map(|m| {
                        let old = &before
                            .iter()
                            .find(|p| p.partition == m.partition)
                            .unwrap()
                            .replicas;
                        m.replicas.iter().filter(|r| !old.contains(r)).count()
                    })
                    .sum::<usize>();
                // The restarted operator sees the batch in flight and waits for it.
                let (again, action) = step(Some(&status), fake.observed(true, false), &at(round));
                assert_eq!(action, RunAction::Wait);
                assert_eq!(again.batch, status.batch);
                fake.complete();
            }
            RunAction::Finish(_) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(status.state, "Done");
    assert!(lost > 0 && sent > 0);
    // Exactly the replicas the first plan copied, none twice, and every partition
    // sent counted once: lost batches count nothing.
    assert_eq!(copied, first.replicas_moved);
    assert_eq!(status.partitions_moved, sent as i32);
    assert_eq!(status.partitions_to_move, sent as i32);
    let (replicas, _) = counts(&ids(&fake.brokers), &fake.state.partitions);
    assert!(even(&replicas, &ids(&fake.brokers)), "{replicas:?}");
}

#[test]
fn runs_start_only_after_a_scale_out_or_when_asked() {
    let mut fake = FakeBrokers::new(5, round_robin(30, 3, 3));
    // First sight of a cluster: its brokers are the baseline, nothing moves.
    let (status, action) = step(None, fake.observed(true, false), &at(1));
    assert_eq!((status.clone(), action), (idle(5), RunAction::None));
    // Brokers added while automatic runs are off become the baseline.
    let (status, action) = step(Some(&idle(3)), fake.observed(false, false), &at(1));
    assert_eq!((status, action), (idle(5), RunAction::None));
    // A scale-in (5 -> 3 after a drain) too.
    let (status, action) = step(Some(&idle(7)), fake.observed(true, false), &at(1));
    assert_eq!((status, action), (idle(5), RunAction::None));
    // The annotation starts a run even with automatic runs off.
    let (status, action) = step(Some(&idle(5)), fake.observed(false, true), &at(1));
    assert_eq!(status.state, "Running");
    assert_eq!(status.reason.as_deref(), Some("Requested"));
    assert!(matches!(action, RunAction::Submit(_)), "{action:?}");
    // A cluster that is not steady (rolling out, draining) is left alone, mid-run too.
    fake.state.reassigning.clear();
    let unsteady = Observed {
        steady: false,
        ..fake.observed(true, false)
    };
    assert_eq!(
        step(Some(&status), unsteady, &at(2)),
        (status.clone(), RunAction::None)
    );
    assert_eq!(
        step(Some(&idle(3)), unsteady, &at(2)),
        (idle(3), RunAction::None)
    );
    // Another's reassignment (a drain, a replication factor change) is waited for.
    fake.state.reassigning.insert(("other".into(), 0));
    let (_, action) = step(Some(&idle(3)), fake.observed(true, false), &at(3));
    assert_eq!(action, RunAction::Wait);
}

#[test]
fn the_end_of_a_run_elects_preferred_leaders_that_do_not_lead() {
    let mut fake = FakeBrokers::new(3, round_robin(3, 3, 3));
    fake.state.leaders.insert(("t".into(), 1), 0);
    let (status, action) = step(Some(&idle(3)), fake.observed(true, true), &at(1));
    assert_eq!(status.state, "Done");
    assert_eq!(status.partitions_to_move, 0);
    assert_eq!(action, RunAction::Finish(vec![("t".into(), 1)]));
}
