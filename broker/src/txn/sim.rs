//! A deterministic simulation of the runtime around one transaction coordinator: a
//! `__transaction_state` log that keeps the bytes it commits, data partitions that
//! take markers (and refuse stale coordinators and epochs, as the log side does),
//! appends and markers that can fail or be lost, a clock, and coordinator crashes
//! that reload from the log at the next coordinator epoch. The scenario tests and a
//! seeded run over random interleavings check the coordinator's invariants.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::error::ResponseError as E;

use super::*;

/// A data partition as the markers see it.
#[derive(Debug, Default)]
struct DataPartition {
    /// The highest coordinator epoch whose marker was written here.
    coordinator_epoch: i32,
    /// Highest producer epoch marked, per producer id.
    producer_epochs: BTreeMap<i64, i16>,
    /// (transactional id, producer id, epoch, result, history length when written).
    markers: Vec<(String, i64, i16, TxnResult, usize)>,
    /// The next marker writes that fail NOT_LEADER_OR_FOLLOWER (a leader change).
    not_leader: u32,
    deleted: bool,
}

/// A small deterministic generator (SplitMix64), so a seed replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

pub(super) struct Sim {
    now: i64,
    config: TxnConfig,
    coord: TxnCoordinator,
    /// The committed `__transaction_state` records, as bytes.
    log: Vec<(Bytes, Option<Bytes>)>,
    /// The same records decoded: what the invariants read.
    history: Vec<TxnRecord>,
    persists: Vec<(WriteId, TxnRecord)>,
    /// Marker writes in flight, one per partition; `true` when their sender is alive.
    markers: Vec<(MarkerWrite, TopicPartition, bool)>,
    partitions: BTreeMap<TopicPartition, DataPartition>,
    /// Every answer, with the history length when it was given.
    replies: BTreeMap<RequestId, (Answer, usize)>,
    next_request: RequestId,
    ids_wanted: bool,
    next_producer_id: i64,
    /// The next appends fail NOT_ENOUGH_REPLICAS.
    failing_appends: u32,
}

const TIMEOUT_MS: i32 = 10_000;

impl Sim {
    pub(super) fn new(partitions: &[TopicPartition]) -> Sim {
        let config = TxnConfig {
            retry_backoff_max_ms: 1_000,
            ..TxnConfig::default()
        };
        let mut sim = Sim {
            now: 0,
            coord: TxnCoordinator::new(0, 1, config.clone()),
            config,
            log: Vec::new(),
            history: Vec::new(),
            persists: Vec::new(),
            markers: Vec::new(),
            partitions: partitions
                .iter()
                .map(|tp| (tp.clone(), DataPartition::default()))
                .collect(),
            replies: BTreeMap::new(),
            next_request: 1,
            ids_wanted: false,
            next_producer_id: 1000,
            failing_appends: 0,
        };
        let actions = sim.coord.load_complete(0);
        sim.apply(actions);
        sim.grant_ids();
        sim
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Persist { write, record } => self.persists.push((write, record)),
                Action::Reply { request, answer } => {
                    let old = self.replies.insert(request, (answer, self.history.len()));
                    assert!(old.is_none(), "request {request} answered twice");
                }
                Action::WriteMarkers(m) => {
                    for tp in &m.partitions {
                        self.markers.push((m.clone(), tp.clone(), true));
                    }
                }
                Action::ReserveProducerIds => self.ids_wanted = true,
            }
        }
    }

    fn grant_ids(&mut self) {
        if std::mem::take(&mut self.ids_wanted) {
            self.coord.add_producer_ids(self.next_producer_id, 10);
            self.next_producer_id += 10;
        }
    }

    /// Issue a request; returns its id.
    fn request(
        &mut self,
        f: impl FnOnce(&mut TxnCoordinator, RequestId, i64) -> Vec<Action>,
    ) -> RequestId {
        let request = self.next_request;
        self.next_request += 1;
        let actions = f(&mut self.coord, request, self.now);
        self.apply(actions);
        request
    }

    fn init(&mut self, id: &str, expected: Option<ProducerIdAndEpoch>) -> RequestId {
        let req = InitProducerIdRequest {
            transactional_id: id.into(),
            timeout_ms: TIMEOUT_MS,
            expected,
        };
        self.request(|c, r, now| c.init_producer_id(&req, r, now))
    }

    fn add(&mut self, p: &TxnProducer, parts: &[TopicPartition]) -> RequestId {
        self.request(|c, r, now| c.add_partitions(p, parts, r, now))
    }

    fn end(&mut self, p: &TxnProducer, result: TxnResult) -> RequestId {
        self.request(|c, r, now| c.end_txn(p, result, r, now))
    }

    fn answer(&self, request: RequestId) -> Option<&Answer> {
        self.replies.get(&request).map(|(a, _)| a)
    }

    fn deliver_persist(&mut self, i: usize) {
        let (write, record) = self.persists.remove(i);
        let result = if self.failing_appends > 0 {
            self.failing_appends -= 1;
            Err(E::NotEnoughReplicas)
        } else {
            self.commit(&record);
            Ok(())
        };
        let actions = self.coord.persisted(write, result, self.now);
        self.apply(actions);
    }

    /// The record reaches the log's committed part (its bytes, read back decoded).
    fn commit(&mut self, record: &TxnRecord) {
        let (k, v) = record.encode();
        let decoded = TxnRecord::decode(&k, v.as_deref()).expect("own record decodes");
        assert_eq!(&decoded, record);
        self.log.push((k, v));
        self.history.push(decoded);
    }

    fn deliver_marker(&mut self, i: usize) {
        let (m, tp, alive) = self.markers.remove(i);
        let position = self.history.len();
        let p = self.partitions.entry(tp.clone()).or_default();
        let outcome = if p.deleted {
            MarkerOutcome::Deleted
        } else if m.coordinator_epoch < p.coordinator_epoch {
            MarkerOutcome::Failed(E::TransactionCoordinatorFenced)
        } else if p
            .producer_epochs
            .get(&m.producer_id)
            .is_some_and(|e| *e > m.producer_epoch)
        {
            MarkerOutcome::Failed(E::InvalidProducerEpoch)
        } else if p.not_leader > 0 {
            p.not_leader -= 1;
            MarkerOutcome::Failed(E::NotLeaderOrFollower)
        } else {
            p.coordinator_epoch = m.coordinator_epoch;
            p.producer_epochs.insert(m.producer_id, m.producer_epoch);
            p.markers.push((
                m.transactional_id.clone(),
                m.producer_id,
                m.producer_epoch,
                m.result,
                position,
            ));
            MarkerOutcome::Written
        };
        if alive {
            let results = MarkerResults {
                transactional_id: m.transactional_id.clone(),
                producer_id: m.producer_id,
                producer_epoch: m.producer_epoch,
                partitions: vec![(tp, outcome)],
            };
            let actions = self.coord.markers_done(&results, self.now);
            self.apply(actions);
        }
    }

    fn advance(&mut self, ms: i64) {
        self.now += ms;
        let actions = self.coord.tick(self.now);
        self.apply(actions);
    }

    /// The coordinator's broker dies. Appends in flight may have been committed
    /// (`commit_in_flight`) without anyone hearing; markers in flight may still land,
    /// unheard. The next leader loads the partition at the next epoch.
    fn crash(&mut self, commit_in_flight: impl Fn(usize) -> bool) {
        let parked = self.coord.resign();
        self.apply(parked);
        for (i, (_, record)) in std::mem::take(&mut self.persists).into_iter().enumerate() {
            if commit_in_flight(i) {
                self.commit(&record);
            }
        }
        for m in &mut self.markers {
            m.2 = false;
        }
        let epoch = self.coord.coordinator_epoch() + 1;
        self.coord = TxnCoordinator::new(0, epoch, self.config.clone());
        for (k, v) in &self.log {
            let record = TxnRecord::decode(k, v.as_deref()).expect("log decodes");
            self.coord.replay(&record).expect("log replays");
        }
        self.ids_wanted = false;
        let actions = self.coord.load_complete(self.now);
        self.apply(actions);
        self.grant_ids();
    }

    /// Deliver everything without faults, moving time on when only retries are left,
    /// until no transaction is between its decision and its completion.
    fn settle(&mut self) {
        for p in self.partitions.values_mut() {
            p.not_leader = 0;
        }
        self.failing_appends = 0;
        for _ in 0..10_000 {
            self.grant_ids();
            if !self.persists.is_empty() {
                self.deliver_persist(0);
            } else if !self.markers.is_empty() {
                self.deliver_marker(0);
            } else if self
                .coord
                .txns()
                .any(|m| matches!(m.state(), TxnState::PrepareCommit | TxnState::PrepareAbort))
            {
                let next = self
                    .coord
                    .next_deadline_ms()
                    .expect("a prepared txn waits on time");
                self.advance((next - self.now).max(0));
            } else {
                return;
            }
        }
        panic!("the simulation did not settle");
    }

    fn markers_on(&self, tp: &TopicPartition) -> Vec<(i64, i16, TxnResult)> {
        self.partitions[tp]
            .markers
            .iter()
            .map(|(_, pid, epoch, r, _)| (*pid, *epoch, *r))
            .collect()
    }

    fn completions(&self, id: &str, state: TxnState) -> usize {
        self.history
            .iter()
            .filter(|r| r.transactional_id == id)
            .filter(|r| r.value.as_ref().is_some_and(|v| v.state == state))
            .count()
    }

    /// The invariants every run must keep; `what` names the run on failure.
    fn check(&self, what: &str) {
        let mut last: BTreeMap<&str, Option<&TxnValue>> = BTreeMap::new();
        // (txn id) -> the current Prepare: (history index, value).
        let mut prepared: BTreeMap<&str, (usize, &TxnValue)> = BTreeMap::new();
        let mut instances: Vec<(usize, usize, &str, &TxnValue)> = Vec::new(); // (prepare, complete, id, prepare value)
        for (i, r) in self.history.iter().enumerate() {
            let id = r.transactional_id.as_str();
            let prev = last.get(id).copied().flatten();
            if let (Some(prev), Some(next)) = (prev, r.value.as_ref()) {
                use TxnState as S;
                let ok = match next.state {
                    S::Empty => prev.state.is_idle(),
                    S::Ongoing => prev.state.is_idle() || prev.state == S::Ongoing,
                    S::PrepareCommit | S::PrepareAbort => prev.state == S::Ongoing,
                    S::CompleteCommit => prev.state == S::PrepareCommit,
                    S::CompleteAbort => prev.state == S::PrepareAbort,
                    S::Dead | S::PrepareEpochFence => false,
                };
                assert!(
                    ok,
                    "{what}: {id} went {:?} -> {:?} at {i}",
                    prev.state, next.state
                );
                if next.producer_id == prev.producer_id {
                    assert!(
                        next.producer_epoch >= prev.producer_epoch,
                        "{what}: {id} epoch went back at {i}: {prev:?} -> {next:?}"
                    );
                }
            } else if let Some(next) = r.value.as_ref() {
                assert_eq!(next.state, TxnState::Empty, "{what}: {id} starts at {i}");
            }
            if let Some(v) = r.value.as_ref() {
                match v.state {
                    TxnState::PrepareCommit | TxnState::PrepareAbort => {
                        prepared.insert(id, (i, v));
                    }
                    TxnState::CompleteCommit | TxnState::CompleteAbort => {
                        let (p, pv) = prepared.remove(id).expect("complete follows prepare");
                        instances.push((p, i, id, pv));
                    }
                    _ => {}
                }
            }
            last.insert(id, r.value.as_ref());
        }
        assert!(
            prepared.is_empty(),
            "{what}: stuck after settling: {prepared:?}"
        );
        let result_of = |v: &TxnValue| match v.state {
            TxnState::PrepareCommit => TxnResult::Commit,
            _ => TxnResult::Abort,
        };
        // One outcome per transaction: each marker carries the result of the decision
        // it belongs to (the last Prepare of its id before it), for a partition of it.
        for (tp, p) in &self.partitions {
            for (id, pid, epoch, result, at) in &p.markers {
                let decision = self.history[..*at]
                    .iter()
                    .rev()
                    .find(|r| {
                        &r.transactional_id == id
                            && r.value.as_ref().is_some_and(|v| {
                                matches!(v.state, TxnState::PrepareCommit | TxnState::PrepareAbort)
                            })
                    })
                    .and_then(|r| r.value.as_ref())
                    .unwrap_or_else(|| panic!("{what}: marker on {tp:?} with no decision"));
                assert_eq!(
                    (
                        decision.producer_id,
                        decision.producer_epoch,
                        result_of(decision)
                    ),
                    (*pid, *epoch, *result),
                    "{what}: marker on {tp:?} at {at}"
                );
                assert!(
                    decision.partitions.contains(tp),
                    "{what}: {tp:?} not in txn"
                );
            }
        }
        // Markers for every partition added, before the completion is recorded.
        for (prepare, complete, id, v) in &instances {
            for tp in &v.partitions {
                let Some(p) = self.partitions.get(tp) else {
                    continue;
                };
                if p.deleted {
                    continue;
                }
                let marked = p.markers.iter().any(|(mid, pid, epoch, r, at)| {
                    mid == id
                        && (*pid, *epoch, *r) == (v.producer_id, v.producer_epoch, result_of(v))
                        && at > prepare
                        && at <= complete
                });
                assert!(
                    marked,
                    "{what}: {id} completed at {complete} without a marker on {tp:?}"
                );
            }
        }
    }
}

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

fn granted(answer: Option<&Answer>) -> ProducerIdAndEpoch {
    match answer {
        Some(Answer::InitProducerId(Ok(p))) => *p,
        other => panic!("expected a producer id, got {other:?}"),
    }
}

fn producer(id: &str, p: ProducerIdAndEpoch) -> TxnProducer {
    TxnProducer {
        transactional_id: id.into(),
        producer_id: p.producer_id,
        epoch: p.epoch,
    }
}

const DONE: Option<&Answer> = Some(&Answer::Done(Ok(())));

/// init + add `parts`, settled: the producer and its open transaction.
fn open_txn(sim: &mut Sim, id: &str, parts: &[TopicPartition]) -> TxnProducer {
    let r = sim.init(id, None);
    sim.settle();
    let p = producer(id, granted(sim.answer(r)));
    let r = sim.add(&p, parts);
    sim.settle();
    assert_eq!(sim.answer(r), DONE);
    p
}

#[test]
fn a_coordinator_crash_between_prepare_and_markers_completes_the_transaction_once() {
    let parts = [tp("a", 0), tp("a", 1)];
    for old_marker_lands in [false, true] {
        let mut sim = Sim::new(&parts);
        let p = open_txn(&mut sim, "t", &parts);
        let r = sim.end(&p, TxnResult::Commit);
        sim.deliver_persist(0);
        assert_eq!(sim.answer(r), DONE, "answered once the decision is durable");
        assert_eq!(sim.markers.len(), 2);
        if old_marker_lands {
            // One marker of the old coordinator lands after it died, unheard.
            sim.crash(|_| false);
            sim.deliver_marker(0);
        } else {
            sim.markers.clear(); // lost with the broker
            sim.crash(|_| false);
        }
        sim.settle();
        for tp in &parts {
            let m = sim.markers_on(tp);
            assert!(
                !m.is_empty()
                    && m.iter()
                        .all(|x| *x == (p.producer_id, 0, TxnResult::Commit))
            );
        }
        assert_eq!(sim.completions("t", TxnState::PrepareCommit), 1);
        assert_eq!(sim.completions("t", TxnState::CompleteCommit), 1);
        assert_eq!(sim.completions("t", TxnState::CompleteAbort), 0);
        sim.check("crash between prepare and markers");
    }
}

#[test]
fn a_zombie_producer_is_fenced_on_every_call_after_a_new_instance_initialises() {
    let parts = [tp("a", 0)];
    let mut sim = Sim::new(&parts);
    let zombie = open_txn(&mut sim, "t", &parts);
    // A new instance with the same transactional id: its first try aborts the open
    // transaction and is told to retry.
    let r = sim.init("t", None);
    sim.settle();
    assert_eq!(
        sim.answer(r),
        Some(&Answer::InitProducerId(Err(E::ConcurrentTransactions)))
    );
    let r = sim.init("t", None);
    sim.settle();
    let fresh = granted(sim.answer(r));
    assert_eq!((fresh.producer_id, fresh.epoch), (zombie.producer_id, 2));
    let fenced = Some(&Answer::Done(Err(E::ProducerFenced)));
    let r = sim.add(&zombie, &parts);
    assert_eq!(sim.answer(r), fenced);
    let r = sim.request(|c, r, now| c.add_offsets(&zombie, "g", |_| 0, r, now));
    assert_eq!(sim.answer(r), fenced);
    for result in [TxnResult::Commit, TxnResult::Abort] {
        let r = sim.end(&zombie, result);
        assert_eq!(sim.answer(r), fenced);
    }
    assert_eq!(
        sim.markers_on(&parts[0]),
        vec![(zombie.producer_id, 1, TxnResult::Abort)]
    );
    // The new instance works.
    let p = producer("t", fresh);
    let r = sim.add(&p, &parts);
    sim.settle();
    assert_eq!(sim.answer(r), DONE);
    let r = sim.end(&p, TxnResult::Commit);
    sim.settle();
    assert_eq!(sim.answer(r), DONE);
    sim.check("zombie fencing");
}

#[test]
fn a_transaction_past_its_timeout_is_aborted_and_its_producer_fenced() {
    let parts = [tp("a", 0), tp("b", 0)];
    let mut sim = Sim::new(&parts);
    let p = open_txn(&mut sim, "t", &parts);
    sim.advance(i64::from(TIMEOUT_MS));
    assert!(sim.persists.is_empty(), "not before the timeout has passed");
    sim.advance(1);
    sim.settle();
    for tp in &parts {
        assert_eq!(
            sim.markers_on(tp),
            vec![(p.producer_id, 1, TxnResult::Abort)]
        );
    }
    let r = sim.end(&p, TxnResult::Commit);
    assert_eq!(sim.answer(r), Some(&Answer::Done(Err(E::ProducerFenced))));
    let r = sim.init(
        "t",
        Some(ProducerIdAndEpoch {
            producer_id: p.producer_id,
            epoch: 0,
        }),
    );
    sim.settle();
    assert_eq!(
        sim.answer(r),
        Some(&Answer::InitProducerId(Err(E::ProducerFenced))),
        "a KIP-360 bump from the timed-out epoch is refused"
    );
    assert_eq!(sim.coord.txn("t").unwrap().state(), TxnState::CompleteAbort);
    sim.check("abort on timeout");
}

#[test]
fn a_data_partition_changing_leader_mid_transaction_gets_its_marker_by_retry() {
    let parts = [tp("a", 0), tp("a", 1)];
    let mut sim = Sim::new(&parts);
    let p = open_txn(&mut sim, "t", &parts);
    let r = sim.end(&p, TxnResult::Commit);
    sim.deliver_persist(0);
    assert_eq!(sim.answer(r), DONE);
    sim.partitions.get_mut(&parts[1]).unwrap().not_leader = 3;
    let mut waited = Vec::new();
    while !sim.markers.is_empty() || sim.coord.next_deadline_ms().is_some_and(|d| d < 100_000) {
        if sim.markers.is_empty() {
            let next = sim.coord.next_deadline_ms().unwrap();
            waited.push(next - sim.now);
            sim.advance(next - sim.now);
        } else {
            sim.deliver_marker(0);
        }
        if !sim.persists.is_empty() {
            sim.deliver_persist(0);
        }
    }
    assert_eq!(waited, vec![100, 200, 400], "three failures, backing off");
    assert_eq!(
        sim.markers_on(&parts[1]),
        vec![(p.producer_id, 0, TxnResult::Commit)]
    );
    assert_eq!(
        sim.coord.txn("t").unwrap().state(),
        TxnState::CompleteCommit
    );
    sim.check("leader change");
}

#[test]
fn end_txn_and_init_producer_id_meeting_a_completing_transaction_are_told_to_retry() {
    let parts = [tp("a", 0)];
    let mut sim = Sim::new(&parts);
    let p = open_txn(&mut sim, "t", &parts);
    let end = sim.end(&p, TxnResult::Commit);
    let concurrent_init = Some(&Answer::InitProducerId(Err(E::ConcurrentTransactions)));
    // The decision is being written.
    let r = sim.init("t", None);
    assert_eq!(sim.answer(r), concurrent_init);
    let r = sim.end(&p, TxnResult::Commit);
    assert_eq!(
        sim.answer(r),
        Some(&Answer::Done(Err(E::ConcurrentTransactions)))
    );
    sim.deliver_persist(0);
    assert_eq!(sim.answer(end), DONE);
    // Markers on their way.
    let r = sim.init("t", None);
    assert_eq!(sim.answer(r), concurrent_init);
    let r = sim.end(&p, TxnResult::Commit);
    assert_eq!(
        sim.answer(r),
        Some(&Answer::Done(Err(E::ConcurrentTransactions)))
    );
    sim.settle();
    let r = sim.end(&p, TxnResult::Commit);
    assert_eq!(sim.answer(r), DONE, "a retry after completion succeeds");
    let r = sim.init("t", None);
    sim.settle();
    assert_eq!(granted(sim.answer(r)).epoch, 1);
    sim.check("concurrent requests");
}

/// What a run went through, so the property test can tell it exercised something.
#[derive(Debug, Default)]
struct RunStats {
    commits: usize,
    aborts: usize,
    crashes: usize,
    refused_markers: usize,
}

/// One seeded run of random clients, faults and crashes.
fn random_run(seed: u64) -> RunStats {
    let mut stats = RunStats::default();
    let what = format!("seed {seed}");
    let mut rng = Rng(seed);
    let parts = [
        tp("a", 0),
        tp("a", 1),
        tp("b", 0),
        tp("__consumer_offsets", 0),
    ];
    let mut sim = Sim::new(&parts);
    let ids = ["t0", "t1", "t2"];
    let mut held: BTreeMap<&str, ProducerIdAndEpoch> = BTreeMap::new();
    let mut inits: BTreeMap<RequestId, &str> = BTreeMap::new();
    let mut ends: Vec<(RequestId, &str, TxnResult)> = Vec::new();
    for _ in 0..300 {
        let id = ids[rng.below(ids.len() as u64) as usize];
        match rng.below(100) {
            0..=9 => {
                let expected = held.get(id).copied().filter(|_| rng.chance(40));
                inits.insert(sim.init(id, expected), id);
            }
            10..=24 => {
                if let Some(p) = held.get(id) {
                    let chosen: Vec<_> = parts[..3]
                        .iter()
                        .filter(|_| rng.chance(50))
                        .cloned()
                        .collect();
                    sim.add(&producer(id, *p), &chosen);
                }
            }
            25..=29 => {
                if let Some(p) = held.get(id) {
                    let p = producer(id, *p);
                    sim.request(|c, r, now| c.add_offsets(&p, "g", |_| 0, r, now));
                }
            }
            30..=39 => {
                if let Some(p) = held.get(id) {
                    let result = if rng.chance(50) {
                        TxnResult::Commit
                    } else {
                        TxnResult::Abort
                    };
                    ends.push((sim.end(&producer(id, *p), result), id, result));
                }
            }
            40..=59 if !sim.persists.is_empty() => {
                if rng.chance(10) {
                    sim.failing_appends = 1;
                }
                let i = rng.below(sim.persists.len() as u64) as usize;
                sim.deliver_persist(i);
            }
            60..=79 if !sim.markers.is_empty() => {
                let i = rng.below(sim.markers.len() as u64) as usize;
                if rng.chance(20) {
                    let tp = sim.markers[i].1.clone();
                    sim.partitions.get_mut(&tp).unwrap().not_leader += 1;
                    stats.refused_markers += 1;
                }
                sim.deliver_marker(i);
            }
            80..=92 => sim.advance(rng.below(4_000) as i64),
            95 if rng.chance(20) => {
                // A topic deleted mid-transaction: its markers are dropped.
                sim.partitions.get_mut(&parts[2]).unwrap().deleted = true;
            }
            93..=94 => {
                let commits: Vec<bool> = (0..sim.persists.len()).map(|_| rng.chance(50)).collect();
                sim.crash(|i| commits[i]);
                stats.crashes += 1;
            }
            _ => sim.grant_ids(),
        }
        for (r, id) in std::mem::take(&mut inits) {
            match sim.answer(r) {
                Some(Answer::InitProducerId(Ok(p))) => {
                    held.insert(id, *p);
                }
                Some(_) => {}
                None => {
                    inits.insert(r, id);
                }
            }
        }
    }
    sim.settle();
    for (r, id, result) in &ends {
        let Some((Answer::Done(Ok(())), at)) = sim.replies.get(r) else {
            continue;
        };
        // A successful EndTxn was decided as asked: the last decision of its id
        // before the answer has the asked outcome.
        let decided = sim.history[..*at].iter().rev().find_map(|rec| {
            rec.value.as_ref().filter(|v| {
                rec.transactional_id == *id
                    && matches!(v.state, TxnState::PrepareCommit | TxnState::PrepareAbort)
            })
        });
        let want = match result {
            TxnResult::Commit => TxnState::PrepareCommit,
            TxnResult::Abort => TxnState::PrepareAbort,
        };
        assert_eq!(
            decided.map(|v| v.state),
            Some(want),
            "{what}: EndTxn {r} of {id}"
        );
    }
    let issued = sim.next_request - 1;
    assert_eq!(
        sim.replies.len() as u64,
        issued,
        "{what}: every request is answered once"
    );
    sim.check(&what);
    for r in &sim.history {
        match r.value.as_ref().map(|v| v.state) {
            Some(TxnState::CompleteCommit) => stats.commits += 1,
            Some(TxnState::CompleteAbort) => stats.aborts += 1,
            _ => {}
        }
    }
    stats
}

#[test]
fn random_interleavings_keep_every_invariant() {
    let mut total = RunStats::default();
    for seed in 0..300 {
        let run = random_run(seed);
        total.commits += run.commits;
        total.aborts += run.aborts;
        total.crashes += run.crashes;
        total.refused_markers += run.refused_markers;
    }
    // The runs must have gone through what the invariants are about.
    assert!(
        total.commits > 150
            && total.aborts > 700
            && total.crashes > 800
            && total.refused_markers > 500,
        "{total:?}"
    );
    eprintln!("{total:?}");
}
