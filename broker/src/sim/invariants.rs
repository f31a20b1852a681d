//! The invariants, checked on what the brokers hold: records are read back through
//! each broker's real log (batches checked, records parsed) and compared with what the
//! client was told; the group coordinator is asked for the offsets it serves.

use std::collections::BTreeMap;

use super::broker::{group_id, Process, Workload, COMMITTED_TOPIC, MIN_INSYNC_REPLICAS, TP};
use super::log_view::{value_at, StoredRecord};
use super::Sim;
use crate::replication::{BrokerId, LeaderEpoch};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Invariant {
    /// No acknowledged acks=all write is lost (RF 3, min.insync.replicas 2, at most one
    /// broker crashed, cut off or shutting down at a time), and each was held by at
    /// least min.insync.replicas brokers when the leader acknowledged it.
    NoAckedWriteLost,
    /// The high watermark clients read from the current leader never goes back.
    HighWatermarkNeverGoesBack,
    /// At most one broker leads a partition in a given leader epoch.
    OneLeaderPerEpoch,
    /// A follower's log up to its high watermark is a prefix of the leader's.
    FollowerPrefixOfLeader,
    /// An acknowledged offset commit is served by every later coordinator: the one
    /// loaded after each failover reads it back from the partition.
    AckedCommitSurvivesFailover,
    /// Transactions across failovers: while a transaction with acknowledged data is
    /// open, the acting leader's last stable offset stays at or below its first offset
    /// (a new leader knows the open transactions from the batches it replicated); once
    /// the cluster settles, every replica has ended every transaction whose marker was
    /// acknowledged, and indexes exactly the aborted ones' acknowledged records.
    TransactionsEndOnEveryReplica,
}

impl Invariant {
    pub fn workload(self) -> Workload {
        match self {
            Invariant::AckedCommitSurvivesFailover => Workload::Commit,
            Invariant::TransactionsEndOnEveryReplica => Workload::Transactions,
            _ => Workload::Produce,
        }
    }
}

/// What the checks remember between steps.
#[derive(Default)]
pub(super) struct Checked {
    pub leaders_by_epoch: BTreeMap<LeaderEpoch, BrokerId>,
    /// The highest high watermark a client was shown.
    highest_client_hw: i64,
    /// (leader, its log's version, acknowledgements) last found intact.
    acked_writes: Option<(BrokerId, u64, usize)>,
    /// By follower: (leader, leader's log version, follower's log version, follower's
    /// high watermark) last found a prefix.
    prefixes: BTreeMap<BrokerId, (BrokerId, u64, u64, i64)>,
}

impl Sim {
    /// The broker the controller names leader, if it is up and acting as leader of
    /// that epoch.
    pub(super) fn acting_leader(&self) -> Option<BrokerId> {
        let reg = self.controller.state().partition(&TP)?;
        let p = self
            .brokers
            .get(usize::try_from(reg.leader - 1).ok()?)?
            .process
            .as_ref()?;
        (p.partition.is_leader() && p.partition.leader_epoch() == reg.leader_epoch.0)
            .then_some(reg.leader)
    }

    fn process(&mut self, b: BrokerId) -> &mut Process {
        self.brokers[(b - 1) as usize]
            .process
            .as_mut()
            .expect("a broker that is up")
    }

    /// Broker `b` started leading `epoch`.
    pub(super) fn check_led(&mut self, b: BrokerId, epoch: LeaderEpoch) -> Result<(), String> {
        if let Some(&other) = self.checked.leaders_by_epoch.get(&epoch) {
            if other != b && self.check == Invariant::OneLeaderPerEpoch {
                return Err(format!(
                    "brokers {other} and {b} both led leader epoch {}",
                    epoch.0
                ));
            }
        }
        self.checked.leaders_by_epoch.insert(epoch, b);
        Ok(())
    }

    pub(super) fn check_invariants(&mut self, at_end: bool) -> Result<(), String> {
        let Some(leader) = self.acting_leader() else {
            return if at_end {
                Err("no acting leader after the cluster settled".into())
            } else {
                Ok(())
            };
        };
        if at_end {
            self.check_converged(leader)?;
        }
        match self.check {
            Invariant::NoAckedWriteLost => self.check_acked_writes(leader, at_end),
            Invariant::HighWatermarkNeverGoesBack => {
                if let Ok(hw) = self.process(leader).partition.client_high_watermark() {
                    if hw < self.checked.highest_client_hw {
                        return Err(format!(
                            "leader {leader} shows clients high watermark {hw} after {}",
                            self.checked.highest_client_hw
                        ));
                    }
                    self.checked.highest_client_hw = hw;
                }
                Ok(())
            }
            Invariant::OneLeaderPerEpoch => Ok(()), // checked as leaders are made
            Invariant::FollowerPrefixOfLeader => self.check_follower_prefixes(leader),
            Invariant::AckedCommitSurvivesFailover => self.check_acked_commits(leader, at_end),
            Invariant::TransactionsEndOnEveryReplica => self.check_transactions(leader, at_end),
        }
    }

    fn check_transactions(&mut self, leader: BrokerId, at_end: bool) -> Result<(), String> {
        let lso = self.process(leader).partition.last_stable_offset();
        if let Some((pid, first)) = self.txn.open().find(|&(_, first)| lso > first) {
            return Err(format!(
                "leader {leader} shows last stable offset {lso} while producer {pid}'s transaction is open from offset {first}"
            ));
        }
        if !at_end {
            return Ok(());
        }
        if !self.txn.all_ended() {
            return Err("transactions still open after the cluster settled".into());
        }
        let (hw, lso) = self.process(leader).partition.stable_offsets();
        if lso != hw {
            return Err(format!(
                "leader {leader}: last stable offset {lso} below the high watermark {hw} with every transaction ended"
            ));
        }
        for b in 1..=self.brokers.len() as BrokerId {
            let partition = self.process(b).partition.clone();
            let open: Vec<(i64, i64)> =
                partition.with_log(|l| l.producer_state().open_transactions().collect());
            if !open.is_empty() {
                return Err(format!(
                    "broker {b} still has open transactions {open:?} (producer, first offset)"
                ));
            }
            for txn in &self.txn.ended {
                for &offset in &txn.offsets {
                    let covered = partition.with_log(|l| {
                        l.aborted_transactions(offset, offset + 1).iter().any(|t| {
                            t.producer_id == txn.producer_id
                                && t.first_offset <= offset
                                && offset < t.last_offset
                        })
                    });
                    if covered == txn.commit {
                        return Err(format!(
                            "broker {b}: producer {}'s record at {offset} ({}) is {} an aborted transaction",
                            txn.producer_id,
                            if txn.commit { "committed" } else { "aborted" },
                            if covered { "in" } else { "not in" },
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Once faults stop, the cluster heals: every replica is back in the ISR with the
    /// leader's whole log. A replica that stays out (stuck on a divergence, never
    /// fetching) breaks no safety rule by itself, but the next fault would.
    fn check_converged(&mut self, leader: BrokerId) -> Result<(), String> {
        let ours = self.process(leader).read_log()?;
        let isr = self.process(leader).partition.isr_len();
        if isr != Some(self.brokers.len()) {
            return Err(format!(
                "the ISR of leader {leader} has {isr:?} members after the cluster settled"
            ));
        }
        for f in 1..=self.brokers.len() as BrokerId {
            if f == leader {
                continue;
            }
            let Some(p) = self.brokers[(f - 1) as usize].process.as_mut() else {
                return Err(format!("broker {f} is down after the cluster settled"));
            };
            let theirs = p.read_log()?;
            let from = ours.start.max(theirs.start);
            if theirs.from(from) != ours.from(from) {
                return Err(format!(
                    "follower {f} (log end {}) does not hold leader {leader}'s log (log end {}) from offset {from} after the cluster settled",
                    p.partition.log_end_offset(),
                    ours.records.last().map_or(0, |r| r.offset + 1),
                ));
            }
        }
        Ok(())
    }

    /// Leader `leader` answers acks=all success for record `id` at `offset`: at least
    /// min.insync.replicas brokers hold it. A broker that is down holds what it held
    /// when it stopped; one that died in a torn write cannot be read and counts as
    /// holding it.
    pub(super) fn check_acknowledged(
        &mut self,
        leader: BrokerId,
        id: u64,
        offset: i64,
    ) -> Result<(), String> {
        let value = id.to_string();
        let mut holders = Vec::new();
        for b in 1..=self.brokers.len() as BrokerId {
            let broker = &mut self.brokers[(b - 1) as usize];
            let holds = match broker.process.as_mut() {
                Some(p) => p.read_log()?.holds(offset, value.as_bytes()),
                None => broker
                    .held_while_down()
                    .is_none_or(|held| held.holds(offset, value.as_bytes())),
            };
            if holds {
                holders.push(b);
            }
        }
        if holders.len() < MIN_INSYNC_REPLICAS {
            return Err(format!(
                "leader {leader} acknowledged record {id} at offset {offset} held by brokers {holders:?} only (min.insync.replicas {MIN_INSYNC_REPLICAS})"
            ));
        }
        Ok(())
    }

    fn check_acked_writes(&mut self, leader: BrokerId, at_end: bool) -> Result<(), String> {
        let p = self.process(leader);
        let log = p.read_log()?;
        let (hw, log_end) = (p.partition.high_watermark(), p.partition.log_end_offset());
        // Acknowledged records never change: only a changed log or new acknowledgements
        // need a look.
        let checked = (leader, log.version, self.acked_writes.len());
        if self.checked.acked_writes == Some(checked) && !at_end {
            return Ok(());
        }
        self.checked.acked_writes = Some(checked);
        // Below the log start, retention deleted it: it was committed.
        let lost = self
            .acked_writes
            .iter()
            .find(|(id, &offset)| !log.holds(offset, id.to_string().as_bytes()));
        if let Some((&id, &offset)) = lost {
            let found = value_at(&log.records, offset).and_then(|r| r.value.as_deref());
            return Err(format!(
                "acknowledged record {id} at offset {offset} is lost: leader {leader} holds {:?} there (log end {log_end})",
                found.map(String::from_utf8_lossy),
            ));
        }
        if at_end {
            if let Some((&id, &offset)) = self.acked_writes.iter().find(|(_, &o)| o >= hw) {
                return Err(format!(
                    "acknowledged record {id} at offset {offset} is above the settled high watermark {hw}"
                ));
            }
        }
        Ok(())
    }

    fn check_follower_prefixes(&mut self, leader: BrokerId) -> Result<(), String> {
        let ours = self.process(leader).read_log()?;
        let leader_end = self.process(leader).partition.log_end_offset();
        for f in 1..=self.brokers.len() as BrokerId {
            let Some(p) = self.brokers[(f - 1) as usize].process.as_mut() else {
                continue;
            };
            if f == leader || p.partition.role_name() != "follower" {
                continue;
            }
            let hw = p.partition.high_watermark();
            let theirs_read = p.read_log()?;
            // Neither log nor the high watermark moved since this pair was compared.
            let compared = (leader, ours.version, theirs_read.version, hw);
            if self.checked.prefixes.get(&f) == Some(&compared) {
                continue;
            }
            // Below both log starts, retention deleted what was committed.
            let from = ours.start.max(theirs_read.start);
            let below = |r: &&StoredRecord| r.offset < hw;
            let theirs: Vec<&StoredRecord> =
                theirs_read.from(from).iter().take_while(below).collect();
            let ours: Vec<&StoredRecord> = ours.from(from).iter().take_while(below).collect();
            if theirs != ours {
                let first = theirs
                    .iter()
                    .zip(&ours)
                    .find(|(a, b)| a != b)
                    .map(|(a, b)| format!("first difference: {a:?} against the leader's {b:?}"))
                    .unwrap_or_else(|| {
                        format!(
                            "{} records against the leader's {}",
                            theirs.len(),
                            ours.len()
                        )
                    });
                return Err(format!(
                    "follower {f} (high watermark {hw}, log end {}) is not a prefix of leader {leader} (log end {leader_end}): {first}",
                    p.partition.log_end_offset()
                ));
            }
            self.checked.prefixes.insert(f, compared);
        }
        Ok(())
    }

    /// The acting coordinator serves every acknowledged commit. It holds what it
    /// loaded from the partition plus what it accepted since, so this holds after each
    /// failover exactly when the new coordinator read the acknowledged offsets back.
    pub(super) fn check_acked_commits(
        &mut self,
        leader: BrokerId,
        at_end: bool,
    ) -> Result<(), String> {
        let acked: BTreeMap<usize, i64> = self.acked_commits.clone();
        let p = self.process(leader);
        let groups = p
            .groups
            .as_ref()
            .expect("the commit workload runs coordinators");
        let shard = match groups.shard(TP.partition) {
            Ok(shard) => shard,
            Err(code) if at_end => {
                return Err(format!(
                    "the coordinator on leader {leader} is not serving after the cluster settled: {code:?}"
                ))
            }
            Err(_) => return Ok(()),
        };
        let partition = [(COMMITTED_TOPIC.to_string(), 0)];
        for (&group, &offset) in &acked {
            let served = shard
                .fetch_offsets(&group_id(group), Some(&partition))
                .map_err(|e| format!("coordinator on {leader}: {e:?}"))?
                .first()
                .and_then(|(_, _, v)| v.as_ref().map(|v| v.offset));
            if served.is_none_or(|o| o < offset) {
                return Err(format!(
                    "{} committed offset {offset} (acknowledged) but coordinator {leader} at epoch {} serves {served:?}",
                    group_id(group),
                    p.partition.leader_epoch()
                ));
            }
        }
        Ok(())
    }
}
