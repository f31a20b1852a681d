//! The controller's decisions: broker registration, heartbeats and fencing, partition
//! leader election, AlterPartition, controlled shutdown, preferred-leader election,
//! reassignment, rack-aware placement, and the elections operators ask for (`elect`).
//!
//! Every decision is a list of [`ControllerRecord`]s. The controller applies them to its
//! own [`ClusterState`] at once (so the next decision sees them, as Kafka's active
//! controller does) and the runtime appends them to the metadata Raft log; every broker
//! applies the committed records, in log order, to its own `ClusterState`. A new active
//! controller starts from the committed state. Broker liveness (last heartbeat) is the
//! only state kept outside the log.
//!
//! The records and the state they build are in `cluster_state`; replica placement is
//! in `placement`.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::cluster_state::{ClusterState, ControllerRecord, TopicInfo};
use super::leader::AlterPartitionRequest;
use super::placement::place_replicas;
use super::{
    BrokerEpoch, BrokerId, Isr, LeaderEpoch, PartitionEpoch, PartitionRegistration, TopicPartition,
    NO_LEADER,
};
use crate::metadata::image::MetadataRecord;

mod elect;
pub use elect::{ElectLeaders, ElectionResult, ElectionType};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControllerConfig {
    /// `broker.session.timeout.ms`: a broker without a heartbeat this long is fenced.
    pub session_timeout_ms: i64,
    /// `auto.leader.rebalance.enable`: move leadership back to the preferred replica.
    pub auto_leader_rebalance: bool,
}

impl Default for ControllerConfig {
    /// Kafka's defaults.
    fn default() -> Self {
        ControllerConfig {
            session_timeout_ms: 9_000,
            auto_leader_rebalance: true,
        }
    }
}

/// A broker heartbeat (BrokerHeartbeat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    pub broker: BrokerId,
    pub broker_epoch: BrokerEpoch,
    /// The broker has not caught up with the metadata log yet: keep it fenced.
    pub want_fence: bool,
    /// The broker is shutting down (SIGTERM): move its leaderships away.
    pub want_shut_down: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatReply {
    pub is_fenced: bool,
    /// Controlled shutdown is done: the broker leads nothing and may exit.
    pub should_shut_down: bool,
}

/// The active controller.
#[derive(Debug, Clone)]
pub struct Controller {
    config: ControllerConfig,
    state: ClusterState,
    last_heartbeat_ms: BTreeMap<BrokerId, i64>,
}

impl Controller {
    /// Take over with the committed `state`. Every registered broker gets a full session
    /// from now: liveness was not in the log.
    pub fn new(config: ControllerConfig, state: ClusterState, now_ms: i64) -> Controller {
        let last_heartbeat_ms = state.brokers.keys().map(|&b| (b, now_ms)).collect();
        Controller {
            config,
            state,
            last_heartbeat_ms,
        }
    }

    pub fn state(&self) -> &ClusterState {
        &self.state
    }

    /// Follow committed topic records (admin changes planned by a broker) without
    /// rebuilding the state from the image; false, with nothing changed, when a record
    /// is not a topic record.
    pub fn apply_topic_records(&mut self, records: &[MetadataRecord]) -> bool {
        let topic_record = |r: &MetadataRecord| {
            matches!(
                r,
                MetadataRecord::TopicCreated { .. }
                    | MetadataRecord::PartitionsCreated { .. }
                    | MetadataRecord::TopicConfigsSet { .. }
                    | MetadataRecord::TopicDeleted { .. }
                    // Credentials are no part of the cluster state.
                    | MetadataRecord::ScramCredentialSet { .. }
                    | MetadataRecord::ScramCredentialRemoved { .. }
                    // Nor are group configs.
                    | MetadataRecord::GroupConfigsSet { .. }
            )
        };
        if !records.iter().all(topic_record) {
            return false;
        }
        for r in records {
            self.state.apply_topic_record(r);
        }
        true
    }

    /// Replace the state with the committed one (after records this controller did not
    /// decide, such as topic deletions and config changes, were applied). Brokers new
    /// to it get a full session from now.
    pub fn set_state(&mut self, state: ClusterState, now_ms: i64) {
        for &b in state.brokers.keys() {
            self.last_heartbeat_ms.entry(b).or_insert(now_ms);
        }
        self.last_heartbeat_ms
            .retain(|b, _| state.brokers.contains_key(b));
        self.state = state;
    }

    /// BrokerRegistration. A new process of a registered broker replaces the old
    /// registration and starts fenced, so its partitions elect other leaders first.
    pub fn register_broker(
        &mut self,
        now_ms: i64,
        broker: BrokerId,
        rack: Option<String>,
    ) -> (BrokerEpoch, Vec<ControllerRecord>) {
        let broker_epoch = BrokerEpoch(self.state.next_broker_epoch);
        let mut records = vec![ControllerRecord::BrokerRegistered {
            broker,
            broker_epoch,
            rack,
        }];
        self.commit(&records);
        self.last_heartbeat_ms.insert(broker, now_ms);
        records.extend(self.reelect_partitions_of(broker));
        (broker_epoch, records)
    }

    /// BrokerHeartbeat.
    pub fn heartbeat(
        &mut self,
        now_ms: i64,
        heartbeat: Heartbeat,
    ) -> (Result<HeartbeatReply, ResponseError>, Vec<ControllerRecord>) {
        let Heartbeat {
            broker,
            broker_epoch,
            ..
        } = heartbeat;
        let Some(registration) = self.state.brokers.get(&broker) else {
            return (Err(ResponseError::BrokerIdNotRegistered), vec![]);
        };
        if registration.epoch != broker_epoch {
            return (Err(ResponseError::StaleBrokerEpoch), vec![]);
        }
        self.last_heartbeat_ms.insert(broker, now_ms);
        let registration = registration.clone();
        let mut records = Vec::new();
        if heartbeat.want_shut_down && !registration.in_controlled_shutdown {
            let r = vec![ControllerRecord::BrokerShuttingDown {
                broker,
                broker_epoch,
            }];
            self.commit(&r);
            records.extend(r);
            records.extend(self.reelect_partitions_of(broker));
        } else if registration.fenced
            && !heartbeat.want_fence
            && !registration.in_controlled_shutdown
        {
            let r = vec![ControllerRecord::BrokerUnfenced {
                broker,
                broker_epoch,
            }];
            self.commit(&r);
            records.extend(r);
            // Offline partitions whose last ISR member this is come back.
            records.extend(self.elect_offline_partitions());
        }
        let now = &self.state.brokers[&broker];
        let leads_something = self.state.partitions.values().any(|p| p.leader == broker);
        let reply = HeartbeatReply {
            is_fenced: now.fenced,
            should_shut_down: now.in_controlled_shutdown && !leads_something,
        };
        (Ok(reply), records)
    }

    /// Time passed: fence brokers whose session expired, elect leaders for offline
    /// partitions, move leadership back to preferred replicas, finish reassignments.
    pub fn tick(&mut self, now_ms: i64) -> Vec<ControllerRecord> {
        let mut records = Vec::new();
        let expired: Vec<(BrokerId, BrokerEpoch)> = self
            .state
            .brokers
            .iter()
            .filter(|(_, r)| !r.fenced)
            .filter(|(b, _)| {
                let last = self.last_heartbeat_ms.get(b).copied().unwrap_or(now_ms);
                now_ms - last > self.config.session_timeout_ms
            })
            .map(|(&b, r)| (b, r.epoch))
            .collect();
        // One broker at a time, as Kafka: each fencing sees the previous one's result, so
        // an ISR keeps its last member.
        for (broker, broker_epoch) in expired {
            let r = vec![ControllerRecord::BrokerFenced {
                broker,
                broker_epoch,
            }];
            self.commit(&r);
            records.extend(r);
            records.extend(self.reelect_partitions_of(broker));
        }
        records.extend(self.elect_offline_partitions());
        let tps: Vec<TopicPartition> = self.state.partitions.keys().copied().collect();
        for tp in tps {
            if let Some(next) = self.complete_reassignment(tp) {
                records.push(self.change(tp, next));
            }
        }
        if self.config.auto_leader_rebalance {
            records.extend(self.elect_preferred_leaders());
        }
        records
    }

    /// AlterPartition from a partition leader: validate, then commit the new ISR (and
    /// complete a reassignment it makes possible). Returns the partition's new state.
    pub fn alter_partition(
        &mut self,
        broker: BrokerId,
        broker_epoch: BrokerEpoch,
        request: &AlterPartitionRequest,
    ) -> (
        Result<PartitionRegistration, ResponseError>,
        Vec<ControllerRecord>,
    ) {
        match self.check_alter_partition(broker, broker_epoch, request) {
            Err(code) => (Err(code), vec![]),
            Ok(next) => {
                let tp = request.partition;
                let mut records = vec![self.change(tp, next)];
                if let Some(done) = self.complete_reassignment(tp) {
                    records.push(self.change(tp, done));
                }
                (Ok(self.state.partitions[&tp].clone()), records)
            }
        }
    }

    fn check_alter_partition(
        &self,
        broker: BrokerId,
        broker_epoch: BrokerEpoch,
        request: &AlterPartitionRequest,
    ) -> Result<PartitionRegistration, ResponseError> {
        self.state.check_broker_epoch(broker, broker_epoch)?;
        let current = self
            .state
            .partitions
            .get(&request.partition)
            .ok_or(ResponseError::UnknownTopicOrPartition)?;
        if current.leader != broker {
            return Err(ResponseError::NotLeaderOrFollower);
        }
        if request.leader_epoch != current.leader_epoch {
            return Err(ResponseError::FencedLeaderEpoch);
        }
        // KIP-497: the proposal must be built on the current state.
        if request.partition_epoch != current.partition_epoch {
            return Err(ResponseError::InvalidUpdateVersion);
        }
        let new_isr = &request.new_isr;
        let is_replica =
            |b: &BrokerId| current.replicas.contains(b) || current.adding_replicas.contains(b);
        if !new_isr.contains(broker) || !new_isr.members().iter().all(is_replica) {
            return Err(ResponseError::InvalidRequest);
        }
        // KIP-841: a fenced or shutting-down broker may not join the ISR, nor a replica
        // whose copy is offline.
        if new_isr
            .members()
            .iter()
            .any(|&b| !current.isr.contains(b) && !self.state.can_serve(b, current))
        {
            return Err(ResponseError::IneligibleReplica);
        }
        // KIP-903: each replica being added was seen fetching by the leader with a
        // broker epoch; it must be the broker's current one, or the fetch came from a
        // process since replaced (whose log the new one may not hold). A replica added
        // without one is refused too.
        let registered_epoch = |b: BrokerId| self.state.broker(b).map(|r| r.epoch);
        let fetched_epoch = |b: BrokerId| {
            request
                .added_epochs
                .iter()
                .find(|(added, _)| *added == b)
                .map(|&(_, epoch)| epoch)
        };
        if new_isr
            .members()
            .iter()
            .filter(|&&b| b != broker && !current.isr.contains(b))
            .any(|&b| fetched_epoch(b).is_none() || fetched_epoch(b) != registered_epoch(b))
        {
            return Err(ResponseError::IneligibleReplica);
        }
        let mut next = current.clone();
        next.isr = new_isr.clone();
        Ok(next)
    }

    /// A broker reports that its copy of `tp` cannot be served (`offline`: storage
    /// unreadable, damaged or not openable) or can be again. Offline, it leaves the ISR
    /// (unless it is the last member, whose log holds the committed records: the
    /// partition is then without leader until it comes back) and loses the
    /// leadership; back online, it leads again only if the partition has no leader and
    /// it is in the ISR, and otherwise rejoins the ISR as any follower does, by
    /// catching up. Reports that change nothing commit nothing.
    pub fn replica_storage(
        &mut self,
        broker: BrokerId,
        broker_epoch: BrokerEpoch,
        tp: TopicPartition,
        offline: bool,
    ) -> Result<Vec<ControllerRecord>, ResponseError> {
        self.state.check_broker_epoch(broker, broker_epoch)?;
        let current = self
            .state
            .partition(&tp)
            .cloned()
            .ok_or(ResponseError::UnknownTopicOrPartition)?;
        if !current.replicas.contains(&broker)
            || current.offline_replicas.contains(&broker) == offline
        {
            return Ok(vec![]);
        }
        let mut next = current.clone();
        let replicas = next.replicas.clone();
        if offline {
            next.offline_replicas.push(broker);
            next.offline_replicas.sort_unstable();
            let shrunk = next.isr.without(broker);
            if !shrunk.is_empty() {
                next.isr = shrunk;
            }
            if next.leader == broker {
                self.elect_within(&mut next, &replicas);
            }
        } else {
            next.offline_replicas.retain(|&b| b != broker);
            if !next.has_leader() {
                self.elect_within(&mut next, &replicas);
            }
        }
        Ok(vec![self.change(tp, next)])
    }

    /// AlterPartitionReassignments for one partition: `Some(target)` starts (or
    /// replaces) a reassignment; `None` cancels the one in progress. As in Kafka, the
    /// replicas after a cancellation are the current ones minus those being added, in
    /// the current order (the original order is not kept).
    pub fn alter_reassignment(
        &mut self,
        tp: TopicPartition,
        target: Option<Vec<BrokerId>>,
    ) -> Result<Vec<ControllerRecord>, ResponseError> {
        let current = self
            .state
            .partition(&tp)
            .cloned()
            .ok_or(ResponseError::UnknownTopicOrPartition)?;
        let original: Vec<BrokerId> = current
            .replicas
            .iter()
            .copied()
            .filter(|b| !current.adding_replicas.contains(b))
            .collect();
        let mut next = current.clone();
        match target {
            None => {
                if current.adding_replicas.is_empty() && current.removing_replicas.is_empty() {
                    return Err(ResponseError::NoReassignmentInProgress);
                }
                next.replicas = original.clone();
                next.adding_replicas.clear();
                next.removing_replicas.clear();
                next.isr = Isr::new(
                    current
                        .isr
                        .members()
                        .iter()
                        .copied()
                        .filter(|b| original.contains(b))
                        .collect(),
                );
                if next.isr.is_empty() {
                    // Only added replicas are in sync: cancelling would lose the data.
                    return Err(ResponseError::InvalidReplicaAssignment);
                }
                if !original.contains(&next.leader) || !self.state.is_eligible(next.leader) {
                    self.elect_within(&mut next, &original);
                }
            }
            Some(target) => {
                let distinct: BTreeSet<BrokerId> = target.iter().copied().collect();
                if target.is_empty()
                    || distinct.len() != target.len()
                    || !target.iter().all(|b| self.state.brokers.contains_key(b))
                {
                    return Err(ResponseError::InvalidReplicaAssignment);
                }
                // Kafka's layout: target replicas first (so they are preferred), then
                // the original ones being removed.
                next.replicas = target.clone();
                next.replicas
                    .extend(original.iter().filter(|b| !target.contains(b)));
                next.adding_replicas = target
                    .iter()
                    .copied()
                    .filter(|b| !original.contains(b))
                    .collect();
                next.removing_replicas = original
                    .iter()
                    .copied()
                    .filter(|b| !target.contains(b))
                    .collect();
            }
        }
        let mut records = vec![self.change(tp, next)];
        if let Some(done) = self.complete_reassignment(tp) {
            records.push(self.change(tp, done));
        }
        Ok(records)
    }

    /// CreateTopics with placement by the controller: replicas on unfenced brokers,
    /// rack-aware, leadership spread from `start` (Kafka picks it at random; pass the
    /// randomness in).
    pub fn create_topic(
        &mut self,
        name: &str,
        topic_id: Uuid,
        partitions: i32,
        replication_factor: usize,
        configs: BTreeMap<String, String>,
        start: usize,
    ) -> Result<Vec<ControllerRecord>, ResponseError> {
        if self.state.topics.values().any(|t| t.name == name) {
            return Err(ResponseError::TopicAlreadyExists);
        }
        if partitions < 1 {
            return Err(ResponseError::InvalidPartitions);
        }
        let brokers: Vec<(BrokerId, Option<String>)> = self
            .state
            .brokers
            .iter()
            .filter(|(&b, _)| self.state.is_eligible(b))
            .map(|(&b, r)| (b, r.rack.clone()))
            .collect();
        let assignment = place_replicas(&brokers, partitions, replication_factor, start)?;
        let records = vec![ControllerRecord::TopicCreated {
            name: name.to_string(),
            topic_id,
            partitions: assignment
                .into_iter()
                .map(|replicas| PartitionRegistration {
                    leader: replicas[0],
                    isr: Isr::new(replicas.clone()),
                    replicas,
                    leader_epoch: LeaderEpoch(0),
                    partition_epoch: PartitionEpoch(0),
                    adding_replicas: vec![],
                    removing_replicas: vec![],
                    offline_replicas: vec![],
                })
                .collect(),
            configs,
        }];
        self.commit(&records);
        Ok(records)
    }

    /// UnregisterBroker: the broker leaves the cluster (the operator empties it first);
    /// its partitions are handled as if it were fenced.
    pub fn unregister_broker(
        &mut self,
        broker: BrokerId,
    ) -> Result<Vec<ControllerRecord>, ResponseError> {
        if !self.state.brokers.contains_key(&broker) {
            return Err(ResponseError::BrokerIdNotRegistered);
        }
        let mut records = vec![ControllerRecord::BrokerUnregistered { broker }];
        self.commit(&records);
        self.last_heartbeat_ms.remove(&broker);
        records.extend(self.reelect_partitions_of(broker));
        Ok(records)
    }

    fn commit(&mut self, records: &[ControllerRecord]) {
        for r in records {
            if let Err(e) = self.state.apply(r) {
                panic!("controller produced a record that does not apply: {e}: {r:?}");
            }
        }
    }

    /// Commit a change of one partition; every change bumps the partition epoch.
    fn change(&mut self, tp: TopicPartition, mut next: PartitionRegistration) -> ControllerRecord {
        // A replica that moved away takes its offline mark with it.
        let replicas = next.replicas.clone();
        next.offline_replicas.retain(|b| replicas.contains(b));
        next.partition_epoch = PartitionEpoch(self.state.partitions[&tp].partition_epoch.0 + 1);
        let record = ControllerRecord::PartitionChanged {
            partition: tp,
            registration: next,
        };
        self.commit(std::slice::from_ref(&record));
        record
    }

    /// `broker` became ineligible (fenced, shutting down, re-registered, gone): drop it
    /// from every ISR it is in (keeping an ISR's last member, whose log holds the
    /// committed records) and move its leaderships to another ISR member.
    fn reelect_partitions_of(&mut self, broker: BrokerId) -> Vec<ControllerRecord> {
        let affected: Vec<TopicPartition> = self
            .state
            .partitions
            .iter()
            .filter(|(_, p)| p.isr.contains(broker) || p.leader == broker)
            .map(|(&tp, _)| tp)
            .collect();
        let mut records = Vec::new();
        for tp in affected {
            let current = self.state.partitions[&tp].clone();
            let mut next = current.clone();
            let shrunk = current.isr.without(broker);
            if !shrunk.is_empty() {
                next.isr = shrunk;
            }
            if !self.state.can_serve(next.leader, &next) {
                let replicas = next.replicas.clone();
                self.elect_within(&mut next, &replicas);
            }
            if next != current {
                records.push(self.change(tp, next));
            }
        }
        records
    }

    /// Partitions without a leader get one: an eligible ISR member, or, where the topic
    /// allows unclean election, any eligible replica (its log becomes the truth).
    fn elect_offline_partitions(&mut self) -> Vec<ControllerRecord> {
        let offline: Vec<TopicPartition> = self
            .state
            .partitions
            .iter()
            .filter(|(_, p)| !p.has_leader())
            .map(|(&tp, _)| tp)
            .collect();
        let mut records = Vec::new();
        for tp in offline {
            let current = self.state.partitions[&tp].clone();
            let mut next = current.clone();
            let replicas = next.replicas.clone();
            self.elect_within(&mut next, &replicas);
            if next.leader == NO_LEADER && self.unclean_allowed(&tp) {
                if let Some(&b) = replicas.iter().find(|&&b| self.state.can_serve(b, &next)) {
                    next.leader = b;
                    next.isr = Isr::new(vec![b]);
                    next.leader_epoch = LeaderEpoch(current.leader_epoch.0 + 1);
                }
            }
            if next != current {
                records.push(self.change(tp, next));
            }
        }
        records
    }

    /// Preferred-leader election: the first replica leads again once it is back in the
    /// ISR and eligible.
    fn elect_preferred_leaders(&mut self) -> Vec<ControllerRecord> {
        let moves: Vec<(TopicPartition, BrokerId)> = self
            .state
            .partitions
            .iter()
            .filter_map(|(&tp, p)| {
                let &preferred = p.replicas.first()?;
                // A reassignment moves leadership itself when it completes.
                let reassigning = !p.adding_replicas.is_empty() || !p.removing_replicas.is_empty();
                (p.leader != preferred
                    && !reassigning
                    && p.isr.contains(preferred)
                    && self.state.can_serve(preferred, p))
                .then_some((tp, preferred))
            })
            .collect();
        let mut records = Vec::new();
        for (tp, preferred) in moves {
            let mut next = self.state.partitions[&tp].clone();
            next.leader = preferred;
            next.leader_epoch = LeaderEpoch(next.leader_epoch.0 + 1);
            records.push(self.change(tp, next));
        }
        records
    }

    /// A reassignment completes once every added replica is in the ISR and a target
    /// replica can lead: replicas become the target, the removed ones leave the ISR, and
    /// leadership moves onto the target if it was on a removed replica.
    fn complete_reassignment(&self, tp: TopicPartition) -> Option<PartitionRegistration> {
        let current = &self.state.partitions[&tp];
        if current.adding_replicas.is_empty() && current.removing_replicas.is_empty() {
            return None;
        }
        if !current
            .adding_replicas
            .iter()
            .all(|&b| current.isr.contains(b))
        {
            return None;
        }
        let target: Vec<BrokerId> = current
            .replicas
            .iter()
            .copied()
            .filter(|b| !current.removing_replicas.contains(b))
            .collect();
        let mut next = current.clone();
        next.isr = Isr::new(
            current
                .isr
                .members()
                .iter()
                .copied()
                .filter(|b| target.contains(b))
                .collect(),
        );
        if next.isr.is_empty() {
            return None;
        }
        next.replicas = target.clone();
        next.adding_replicas.clear();
        next.removing_replicas.clear();
        if !target.contains(&current.leader) || !self.state.can_serve(current.leader, &next) {
            self.elect_within(&mut next, &target);
            if next.leader == NO_LEADER {
                return None;
            }
        }
        Some(next)
    }

    /// Clean election: the first of `candidates` (in replica order) that is in the ISR
    /// and eligible; `NO_LEADER` when none is. The leader epoch moves with any change.
    fn elect_within(&self, next: &mut PartitionRegistration, candidates: &[BrokerId]) {
        let leader = candidates
            .iter()
            .copied()
            .find(|&b| next.isr.contains(b) && self.state.can_serve(b, next))
            .unwrap_or(NO_LEADER);
        if leader != next.leader {
            next.leader = leader;
            next.leader_epoch = LeaderEpoch(next.leader_epoch.0 + 1);
        }
    }

    fn unclean_allowed(&self, tp: &TopicPartition) -> bool {
        self.state
            .topics
            .get(&tp.topic_id)
            .is_some_and(TopicInfo::unclean_leader_election)
    }
}

#[cfg(test)]
mod tests;
