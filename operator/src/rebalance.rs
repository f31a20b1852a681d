//! Rebalancing plan, as a pure function of the brokers and every partition's replicas:
//! the reassignment that spreads replicas and preferred leaders evenly over the brokers
//! (after a scale-out, new brokers hold nothing until partitions move to them).
//!
//! Balanced means, for replicas per broker and for preferred leaders per broker,
//! `max - min <= 1`: the tightest spread integer counts allow. It implies the `max/min
//! <= 1.1` goal whenever the even share is at least 10; below that, one replica more or
//! less than the share is as even as it gets (3 replicas on 2 brokers are 2 and 1).
//!
//! The plan keeps every partition's replication factor, never puts two replicas of a
//! partition on one broker, and moves as few replicas as it can: only brokers above
//! their share give replicas away, only to brokers below it. When every broker has a
//! rack, a partition's replicas spread over the racks as evenly as the racks' sizes
//! allow (at most [`rack_cap`] per rack, Kafka's rack-aware placement rule); moves
//! between brokers of one rack keep that, so each rack always ends balanced inside,
//! and racks of unequal sizes may leave the whole cluster less even than `max - min <=
//! 1`. Racks are ignored unless every broker reports one, as Kafka refuses a
//! rack-aware placement over a mix.
//!
//! Preferred leaders (the first replica) are balanced without moving data: leadership
//! shifts along a chain of partitions (broker A gives a partition to B, B one to C, so
//! A loses one and C gains one), which reaches the even spread whenever the replica
//! sets allow it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::scale::{BrokerState, PartitionReplicas};
use crate::types::{PartitionMove, RebalanceStatus};

/// A slot being refilled. Kafka node ids are never negative, and brokers with one are
/// left out of a plan, so no broker has this id.
const VACANT: i32 = -1;

/// A broker the plan may place replicas on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    /// Node id.
    pub id: i32,
    /// Rack, when the broker reports one.
    pub rack: Option<String>,
}

/// The reassignment that balances a cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The partitions whose replica list changes, with their new list (preferred
    /// leader first), in the order of the input.
    pub moves: Vec<PartitionReplicas>,
    /// Replicas that land on a broker that did not hold them (data copied).
    pub replicas_moved: usize,
    /// Partitions the plan leaves alone because no placement exists: no replicas, or
    /// more replicas than brokers.
    pub unplaceable: Vec<(String, i32)>,
}

/// The most replicas of one partition with `replication_factor` replicas that a rack
/// may hold, given the racks' sizes: the smallest cap that still places them all, so
/// replicas spread as evenly as the racks allow (RF 3 over racks of 2, 2 and 2 brokers:
/// one per rack; over racks of 1 and 3 brokers: 1 and 2).
pub fn rack_cap(rack_sizes: &[usize], replication_factor: usize) -> usize {
    (1..=replication_factor)
        .find(|&cap| rack_sizes.iter().map(|&s| s.min(cap)).sum::<usize>() >= replication_factor)
        .unwrap_or(replication_factor)
}

/// Counts per broker as (max, min), over `brokers`; (0, 0) when there are none.
pub fn spread(counts: &BTreeMap<i32, usize>, brokers: &[i32]) -> (usize, usize) {
    let values = brokers.iter().map(|b| counts.get(b).copied().unwrap_or(0));
    (values.clone().max().unwrap_or(0), values.min().unwrap_or(0))
}

/// Replicas and preferred leaders per broker, counting only brokers in `brokers`.
pub fn counts(
    brokers: &[i32],
    partitions: &[PartitionReplicas],
) -> (BTreeMap<i32, usize>, BTreeMap<i32, usize>) {
    let mut replicas: BTreeMap<i32, usize> = brokers.iter().map(|&b| (b, 0)).collect();
    let mut leaders = replicas.clone();
    for p in partitions {
        for r in &p.replicas {
            if let Some(n) = replicas.get_mut(r) {
                *n += 1;
            }
        }
        if let Some(n) = p.replicas.first().and_then(|l| leaders.get_mut(l)) {
            *n += 1;
        }
    }
    (replicas, leaders)
}

/// The working state of one planning run.
struct Planner {
    /// Replica lists, indexed like the input.
    assign: Vec<Vec<i32>>,
    /// Partitions left alone (unplaceable).
    frozen: Vec<bool>,
    /// Node ids, ascending.
    ids: Vec<i32>,
    /// Rack index per broker, when rack-aware.
    rack_of: Option<BTreeMap<i32, usize>>,
    /// Brokers per rack, when rack-aware.
    rack_sizes: Vec<usize>,
    /// Replicas per broker.
    load: BTreeMap<i32, usize>,
    /// Partitions per broker.
    on: BTreeMap<i32, BTreeSet<usize>>,
}

impl Planner {
    fn new(brokers: &[Broker], partitions: &[PartitionReplicas]) -> Self {
        let brokers: Vec<&Broker> = brokers.iter().filter(|b| b.id >= 0).collect();
        let mut ids: Vec<i32> = brokers.iter().map(|b| b.id).collect();
        ids.sort_unstable();
        ids.dedup();
        let racks: Option<BTreeMap<i32, &str>> = brokers
            .iter()
            .map(|b| b.rack.as_deref().map(|r| (b.id, r)))
            .collect();
        let (rack_of, rack_sizes) = match racks {
            Some(racks) if !racks.is_empty() => {
                let names: Vec<&str> = racks
                    .values()
                    .copied()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let rack_of: BTreeMap<i32, usize> = racks
                    .iter()
                    .map(|(&id, r)| (id, names.binary_search(r).expect("rack listed")))
                    .collect();
                let mut sizes = vec![0; names.len()];
                for &r in rack_of.values() {
                    sizes[r] += 1;
                }
                (Some(rack_of), sizes)
            }
            _ => (None, Vec::new()),
        };
        let frozen = partitions
            .iter()
            .map(|p| p.replicas.is_empty() || p.replicas.len() > ids.len())
            .collect();
        let mut planner = Planner {
            assign: partitions.iter().map(|p| p.replicas.clone()).collect(),
            frozen,
            load: ids.iter().map(|&b| (b, 0)).collect(),
            on: ids.iter().map(|&b| (b, BTreeSet::new())).collect(),
            ids,
            rack_of,
            rack_sizes,
        };
        for (i, replicas) in planner.assign.iter().enumerate() {
            for r in replicas {
                if let Some(n) = planner.load.get_mut(r) {
                    *n += 1;
                    planner.on.get_mut(r).expect("known broker").insert(i);
                }
            }
        }
        planner
    }

    fn cap(&self, replication_factor: usize) -> usize {
        rack_cap(&self.rack_sizes, replication_factor)
    }

    /// Replicas of partition `i` in `rack`, not counting slot `except`.
    fn in_rack(&self, i: usize, rack: usize, except: Option<usize>) -> usize {
        let rack_of = self.rack_of.as_ref().expect("rack-aware");
        self.assign[i]
            .iter()
            .enumerate()
            .filter(|&(s, r)| Some(s) != except && rack_of.get(r) == Some(&rack))
            .count()
    }

    /// Whether slot `slot` of partition `i` may hold broker `to` instead.
    fn fits(&self, i: usize, slot: usize, to: i32) -> bool {
        if self.assign[i].contains(&to) {
            return false;
        }
        match &self.rack_of {
            None => true,
            Some(rack_of) => {
                let rack = rack_of[&to];
                self.in_rack(i, rack, Some(slot)) < self.cap(self.assign[i].len())
            }
        }
    }

    /// Puts broker `to` (or [`VACANT`]) in slot `slot` of partition `i`.
    fn place(&mut self, i: usize, slot: usize, to: i32) {
        let from = self.assign[i][slot];
        if let Some(n) = self.load.get_mut(&from) {
            *n -= 1;
            // A duplicate left in another slot keeps the partition on `from`.
            if !self.assign[i]
                .iter()
                .enumerate()
                .any(|(s, r)| s != slot && *r == from)
            {
                self.on.get_mut(&from).expect("known broker").remove(&i);
            }
        }
        self.assign[i][slot] = to;
        if let Some(n) = self.load.get_mut(&to) {
            *n += 1;
            self.on.get_mut(&to).expect("known broker").insert(i);
        }
    }

    /// Slots of partition `i` that must move: on a broker outside the cluster, a second
    /// replica on one broker, or beyond the rack cap (the later slots, so the preferred
    /// leader stays).
    fn misplaced(&self, i: usize) -> Vec<usize> {
        let replicas = &self.assign[i];
        let mut bad = Vec::new();
        let mut seen = BTreeSet::new();
        let mut per_rack: BTreeMap<usize, usize> = BTreeMap::new();
        let cap = self.cap(replicas.len());
        for (slot, r) in replicas.iter().enumerate() {
            if !self.load.contains_key(r) || !seen.insert(*r) {
                bad.push(slot);
                continue;
            }
            if let Some(rack_of) = &self.rack_of {
                let n = per_rack.entry(rack_of[r]).or_default();
                *n += 1;
                if *n > cap {
                    bad.push(slot);
                }
            }
        }
        bad
    }

    /// Moves every misplaced replica to the least-loaded broker it fits on. One always
    /// exists: the partition has no more replicas than brokers, and the rack cap is
    /// chosen so that the racks hold them all. The misplaced slots are all vacated
    /// before any is filled, so none counts against the rack cap of another.
    fn repair(&mut self) {
        for i in 0..self.assign.len() {
            if self.frozen[i] {
                continue;
            }
            let slots = self.misplaced(i);
            for &slot in &slots {
                self.place(i, slot, VACANT);
            }
            for slot in slots {
                let pick = self
                    .ids
                    .iter()
                    .copied()
                    .filter(|&b| self.fits(i, slot, b))
                    .min_by_key(|b| (self.load[b], *b))
                    .expect("a partition with RF <= brokers always fits");
                self.place(i, slot, pick);
            }
        }
    }

    /// A replica move from `from` to `to`: a partition on `from` that `to` may take,
    /// a follower slot before a preferred leader's, lowest partition first.
    fn find_move(&self, from: i32, to: i32) -> Option<(usize, usize)> {
        let mut leader_move = None;
        for &i in &self.on[&from] {
            if self.frozen[i] {
                continue;
            }
            let Some(slot) = self.assign[i].iter().position(|&r| r == from) else {
                continue;
            };
            if !self.fits(i, slot, to) {
                continue;
            }
            if slot > 0 {
                return Some((i, slot));
            }
            leader_move.get_or_insert((i, slot));
        }
        leader_move
    }

    /// Moves replicas from the most loaded brokers to the least loaded while two differ
    /// by two or more and a move between them fits. Each move lowers the sum of squared
    /// loads, so this ends.
    fn balance_replicas(&mut self) {
        loop {
            let mut by_load = self.ids.clone();
            by_load.sort_by_key(|b| (self.load[b], *b));
            let found = by_load.iter().rev().find_map(|&from| {
                by_load
                    .iter()
                    .take_while(|&&to| self.load[&to] + 2 <= self.load[&from])
                    .find_map(|&to| self.find_move(from, to).map(|m| (m, to)))
            });
            match found {
                Some(((i, slot), to)) => self.place(i, slot, to),
                None => return,
            }
        }
    }

    /// Shifts preferred leadership along chains of partitions until no broker leads two
    /// or more partitions more than one it can reach (breadth-first, over partitions a
    /// broker leads and another holds). Each shift lowers the sum of squared leader
    /// counts, so this ends.
    fn balance_leaders(&mut self) {
        let mut leaders: BTreeMap<i32, usize> = self.ids.iter().map(|&b| (b, 0)).collect();
        let mut led: BTreeMap<i32, BTreeSet<usize>> =
            self.ids.iter().map(|&b| (b, BTreeSet::new())).collect();
        for (i, replicas) in self.assign.iter().enumerate() {
            if self.frozen[i] {
                continue;
            }
            if let Some(l) = replicas.first().filter(|l| leaders.contains_key(l)) {
                *leaders.get_mut(l).expect("known") += 1;
                led.get_mut(l).expect("known").insert(i);
            }
        }
        loop {
            let mut by_leaders = self.ids.clone();
            by_leaders.sort_by_key(|b| (std::cmp::Reverse(leaders[b]), *b));
            let path = by_leaders.iter().find_map(|&source| {
                let target_max = leaders[&source].checked_sub(2)?;
                // parent[v] = (partition, u): u leads the partition, v holds it.
                let mut parent: BTreeMap<i32, (usize, i32)> = BTreeMap::new();
                let mut queue = VecDeque::from([source]);
                while let Some(u) = queue.pop_front() {
                    for &i in &led[&u] {
                        for &v in &self.assign[i][1..] {
                            if v == source || parent.contains_key(&v) || !leaders.contains_key(&v) {
                                continue;
                            }
                            parent.insert(v, (i, u));
                            if leaders[&v] <= target_max {
                                let mut path = Vec::new();
                                let mut at = v;
                                while at != source {
                                    let (i, u) = parent[&at];
                                    path.push((i, u, at));
                                    at = u;
                                }
                                return Some(path);
                            }
                            queue.push_back(v);
                        }
                    }
                }
                None
            });
            let Some(path) = path else { return };
            for (i, from, to) in path {
                let slot = self.assign[i]
                    .iter()
                    .position(|&r| r == to)
                    .expect("on the path");
                self.assign[i].swap(0, slot);
                *leaders.get_mut(&from).expect("known") -= 1;
                *leaders.get_mut(&to).expect("known") += 1;
                led.get_mut(&from).expect("known").remove(&i);
                led.get_mut(&to).expect("known").insert(i);
            }
        }
    }
}

/// The reassignment that balances replicas and preferred leaders over `brokers`.
/// Replicas on brokers not listed move to listed ones. Deterministic: the same input
/// gives the same plan.
pub fn plan(brokers: &[Broker], partitions: &[PartitionReplicas]) -> Plan {
    let mut planner = Planner::new(brokers, partitions);
    if planner.ids.is_empty() {
        return Plan {
            unplaceable: partitions
                .iter()
                .map(|p| (p.topic.clone(), p.partition))
                .collect(),
            ..Plan::default()
        };
    }
    planner.repair();
    planner.balance_replicas();
    planner.balance_leaders();
    let mut result = Plan::default();
    for (i, p) in partitions.iter().enumerate() {
        if planner.frozen[i] {
            result.unplaceable.push((p.topic.clone(), p.partition));
            continue;
        }
        let target = &planner.assign[i];
        if *target != p.replicas {
            result.replicas_moved += target.iter().filter(|r| !p.replicas.contains(r)).count();
            result.moves.push(PartitionReplicas {
                topic: p.topic.clone(),
                partition: p.partition,
                replicas: target.clone(),
            });
        }
    }
    result
}

/// Partitions reassigned at once by a rebalance: bounds the data in flight between
/// brokers and the size of `status.rebalance.batch`.
pub const BATCH_PARTITIONS: usize = 16;

/// What a rebalance run does now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunAction {
    /// Nothing: no run, or the cluster is not steady (a rollout or a drain goes first).
    None,
    /// Reassignments are in progress; look again later.
    Wait,
    /// Start these reassignments (one batch).
    Submit(Vec<PartitionReplicas>),
    /// The run is done: elect the preferred leader of these partitions (those led by
    /// another replica).
    Finish(Vec<(String, i32)>),
}

/// What the controller observed, for [`step`].
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// Whether every wanted broker is registered and ready, nothing is being drained
    /// and the StatefulSet is rolled out: the only time replicas may move.
    pub steady: bool,
    /// `spec.rebalance.auto`.
    pub auto: bool,
    /// Whether the rebalance annotation asks for a run.
    pub requested: bool,
    /// The brokers of the cluster (registered, node id below the wanted replicas).
    pub brokers: &'a [Broker],
    /// What the brokers report.
    pub state: &'a BrokerState,
}

/// Replicas and preferred leaders per broker as `max/min`, for messages.
fn describe_spread(brokers: &[Broker], partitions: &[PartitionReplicas]) -> String {
    let ids: Vec<i32> = brokers.iter().map(|b| b.id).collect();
    let (replicas, leaders) = counts(&ids, partitions);
    let (rmax, rmin) = spread(&replicas, &ids);
    let (lmax, lmin) = spread(&leaders, &ids);
    format!(
        "{} brokers: {rmin}..{rmax} replicas and {lmin}..{lmax} preferred leaders per broker",
        ids.len()
    )
}

/// One step of a rebalance run, from the last status and what the brokers report now.
/// Returns the next status and what to do; a [`RunAction::Submit`]'s status must be
/// written before its reassignments are sent. Progress lives in the status so that a
/// restarted operator continues: a batch in flight is waited for (no reassignment in
/// progress), and the next batch comes from a plan recomputed from the brokers, so a
/// finished move is never sent again. `now` stamps the start and end.
pub fn step(
    previous: Option<&RebalanceStatus>,
    observed: Observed<'_>,
    now: &Time,
) -> (RebalanceStatus, RunAction) {
    let brokers = observed.brokers.len() as i32;
    let mut status = previous.cloned().unwrap_or_else(|| RebalanceStatus {
        state: "Idle".into(),
        brokers,
        ..RebalanceStatus::default()
    });
    if !observed.steady {
        return (status, RunAction::None);
    }
    if status.state != "Running" {
        let scaled_out = observed.auto && previous.is_some() && brokers > status.brokers;
        let reason = if observed.requested {
            "Requested"
        } else if scaled_out {
            "ScaleOut"
        } else {
            // A scale-in was drained onto the brokers that stay: they are the new
            // baseline, as are brokers added while automatic runs are off.
            status.brokers = brokers;
            return (status, RunAction::None);
        };
        status = RebalanceStatus {
            state: "Running".into(),
            reason: Some(reason.into()),
            brokers: status.brokers,
            started_at: Some(now.clone()),
            message: format!(
                "started: {}",
                describe_spread(observed.brokers, &observed.state.partitions)
            ),
            ..RebalanceStatus::default()
        };
    }
    let state = observed.state;
    if !state.reassigning.is_empty() {
        let in_batch = status
            .batch
            .iter()
            .filter(|p| state.reassigning.contains(&(p.topic.clone(), p.partition)))
            .count();
        status.message = format!(
            "waiting for {} reassignments in progress ({in_batch} of this run's batch of {})",
            state.reassigning.len(),
            status.batch.len()
        );
        return (status, RunAction::Wait);
    }
    // A partition of the last batch counts once its replicas are the target: a batch
    // recorded by an operator that died before sending it counts nothing, and its
    // partitions are planned again.
    let done = status
        .batch
        .iter()
        .filter(|m| {
            state.partitions.iter().any(|p| {
                p.topic == m.topic && p.partition == m.partition && p.replicas == m.replicas
            })
        })
        .count();
    status.partitions_moved += done as i32;
    status.batch.clear();
    let plan = plan(observed.brokers, &state.partitions);
    // Each batch brings the cluster closer to even, so a run moves each partition at
    // most a few times; far more means plans that do not settle, and the run stops
    // rather than move data forever.
    let moves_max = 2 * state.partitions.len() + BATCH_PARTITIONS;
    if status.partitions_moved as usize > moves_max && !plan.moves.is_empty() {
        status.state = "Done".into();
        status.brokers = brokers;
        status.finished_at = Some(now.clone());
        status.message = format!(
            "stopped after {} partition moves, more than {moves_max} (twice the {} \
             partitions plus a batch): {} moves still planned",
            status.partitions_moved,
            state.partitions.len(),
            plan.moves.len()
        );
        return (status, RunAction::Finish(Vec::new()));
    }
    status.partitions_to_move = status.partitions_moved + plan.moves.len() as i32;
    if !plan.moves.is_empty() {
        let batch: Vec<PartitionReplicas> = plan.moves.into_iter().take(BATCH_PARTITIONS).collect();
        status.batch = batch
            .iter()
            .map(|m| PartitionMove {
                topic: m.topic.clone(),
                partition: m.partition,
                replicas: m.replicas.clone(),
            })
            .collect();
        status.message = format!(
            "moving {} partitions ({} of {} moved)",
            batch.len(),
            status.partitions_moved,
            status.partitions_to_move
        );
        return (status, RunAction::Submit(batch));
    }
    let elect: Vec<(String, i32)> = state
        .partitions
        .iter()
        .filter(|p| {
            let leader = state.leaders.get(&(p.topic.clone(), p.partition));
            p.replicas
                .first()
                .is_some_and(|&preferred| leader != Some(&preferred))
        })
        .map(|p| (p.topic.clone(), p.partition))
        .collect();
    status.state = "Done".into();
    status.brokers = brokers;
    status.finished_at = Some(now.clone());
    status.message = format!(
        "balanced: {}{}",
        describe_spread(observed.brokers, &state.partitions),
        if plan.unplaceable.is_empty() {
            String::new()
        } else {
            format!(
                "; {} partitions left alone (more replicas than brokers)",
                plan.unplaceable.len()
            )
        }
    );
    (status, RunAction::Finish(elect))
}

#[cfg(test)]
#[path = "rebalance_tests.rs"]
mod tests;
