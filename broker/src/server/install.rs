//! Installing metadata: the hosted partitions are made to match each image the
//! metadata quorum applies (opened, led or followed, reconfigured, deleted), and
//! replicas that cannot be served are taken offline, reported, and brought back (the
//! decisions are `offline::next_step`'s).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::broker::Broker;
use super::offline::{next_step, Cause, Due, Step};
use super::partition::{partition_dir, Partition};
use crate::config::{log_config, min_insync_replicas};
use crate::log::OpenError;
use crate::metadata::image::{MetadataImage, PartitionState, TopicState};
use crate::quorum::{ControllerRequest, MetadataApplier};
use crate::replication::cluster_state::registration_of;
use crate::replication::follower::FollowerConfig;
use crate::replication::leader::LeaderConfig;
use crate::replication::{BrokerEpoch, TopicPartition};

/// What went wrong opening or using a log, as the offline replica's cause: the damage
/// an `OpenError::Corrupt` names, or an error that may go away.
pub fn cause_of(e: &std::io::Error) -> Cause {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<OpenError>())
        .and_then(OpenError::damage)
    {
        Some(damage) => Cause::Damaged(damage),
        None => Cause::Unavailable(e.to_string()),
    }
}

impl Broker {
    /// Make the hosted partitions match `image`: open the logs of partitions this
    /// broker is a replica of, lead or follow each as the image says, close and delete
    /// the logs of deleted topics and of partitions moved away, apply config changes.
    /// Then publish it. A log that cannot be opened makes its replica offline; the rest
    /// of the image is installed all the same.
    fn install_image(&self, image: Arc<MetadataImage>) {
        let _install = self.install.lock();
        let old = self.image();
        let me = self.node_id();
        // Only the topics a change touched need work, so a change costs the same with
        // thousands of topics.
        let changes = image.topic_changes(&old);
        // Deleted topics first: a topic deleted and created again under its name
        // between two images must lose its old log before the new one opens.
        for gone in &changes.gone {
            if self
                .partitions
                .topic(&gone.name)
                .first()
                .is_some_and(|p| p.topic_id == gone.id)
            {
                self.drop_topic(&gone.name);
            }
            for index in 0..gone.partitions.len() as i32 {
                self.forget_offline(&gone.name, index);
            }
        }
        self.install_topics(&old, &changes.changed, me);
        let eligibility = image.eligibility_changes(&old);
        *self.image.write() = image;
        // A broker that became eligible may join the ISRs it has caught up with, idle
        // partitions included (their followers' fetches bring no news to look at).
        if !eligibility.is_empty() {
            for partition in self.partitions.all() {
                for &(broker, epoch) in &eligibility {
                    let proposals = partition.on_broker_state(broker, epoch.map(BrokerEpoch));
                    self.propose_isr(&partition, proposals);
                }
            }
        }
    }

    /// Open, lead or follow, and configure the replicas here of `changed` topics.
    fn install_topics(&self, old: &MetadataImage, changed: &[&TopicState], me: i32) {
        for &topic in changed {
            let hosted = self.partitions.topic(&topic.name);
            if hosted.first().is_some_and(|p| p.topic_id != topic.id) {
                self.drop_topic(&topic.name);
            }
            let config_changed = old
                .topic(&topic.name)
                .is_some_and(|o| o.configs != topic.configs);
            for p in &topic.partitions {
                let mut hosted = self.partitions.get(&topic.name, p.partition);
                let offline = self.offline.topic_id(&topic.name, p.partition);
                if !p.is_replica(me) || offline.is_some_and(|id| id != topic.id) {
                    if let Some(gone) = hosted.take() {
                        self.drop_partition(gone);
                    }
                    self.forget_offline(&topic.name, p.partition);
                    if !p.is_replica(me) {
                        continue;
                    }
                } else if offline.is_some() {
                    // Brought back (or not) by `retry_offline`.
                    continue;
                }
                let partition = match hosted {
                    Some(h) => {
                        if config_changed {
                            let config = log_config(&topic.configs, &self.defaults);
                            h.with_log_mut(|log| log.set_config(config));
                            h.timer.arm_log_now(self.clock.now_ms());
                        }
                        h
                    }
                    None => match self.open_partition(topic, p.partition, p.leader_epoch) {
                        Ok(opened) => {
                            let opened = Arc::new(opened);
                            // Listed before its timers are armed: the timer task finds
                            // due partitions by name, and a first look it cannot find
                            // would leave the log's timer armed and never firing.
                            self.partitions.insert(opened.clone());
                            self.attach_timers(&opened);
                            opened
                        }
                        Err(e) => {
                            let cause = cause_of(&e);
                            tracing::error!(topic = %topic.name, partition = p.partition, cause = %cause,
                                "cannot open the partition's log: taking the replica offline");
                            let now = self.clock.now_ms();
                            self.offline.insert(
                                &topic.name,
                                p.partition,
                                topic.id,
                                cause,
                                None,
                                now,
                            );
                            continue;
                        }
                    },
                };
                if p.leader == me {
                    if let Some(before) = old
                        .topic_by_id(&topic.id)
                        .and_then(|t| t.partitions.get(p.partition as usize))
                        .filter(|b| b.leader == me)
                    {
                        if p.isr.len() < before.isr.len() {
                            self.metrics.isr_shrinks.inc();
                        } else if p.isr.len() > before.isr.len() {
                            self.metrics.isr_expands.inc();
                        }
                    }
                }
                if p.offline_replicas.contains(&me) {
                    // Offline before this process (or its report is not in yet).
                    self.offline.served_again(&topic.name, p.partition);
                }
                self.follow_image(&partition, topic, p);
                self.follow_coordination(&partition, p.leader == me);
            }
        }
    }

    /// The group coordinator of a `__consumer_offsets` partition, and the transaction
    /// coordinator of a `__transaction_state` partition, is its leader: load the
    /// partition's state when leadership came here, drop it when it left. Other
    /// partitions coordinate nothing.
    fn follow_coordination(&self, partition: &Arc<Partition>, leads: bool) {
        let become_leader: Box<dyn FnOnce(Arc<Partition>) + Send> =
            if partition.topic == crate::group::OFFSETS_TOPIC {
                let Some(groups) = self.groups().cloned() else {
                    return;
                };
                if !leads {
                    groups.resign(partition.index);
                    return;
                }
                Box::new(move |p| groups.become_leader(p))
            } else if partition.topic == crate::txn::TRANSACTION_STATE_TOPIC {
                let Some(txns) = self.txns().cloned() else {
                    return;
                };
                if !leads {
                    txns.resign(partition.index);
                    return;
                }
                Box::new(move |p| txns.become_leader(p))
            } else {
                return;
            };
        let (p, epoch) = (partition.clone(), partition.leader_epoch());
        let load = move || {
            // Leadership may have moved on while this waited for a thread.
            if p.is_leader() && p.leader_epoch() == epoch {
                become_leader(p);
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(load)),
            Err(_) => load(),
        }
    }

    /// `p` is no longer served here: nor is what it coordinates.
    fn stop_coordinating(&self, p: &Partition) {
        if p.topic == crate::group::OFFSETS_TOPIC {
            if let Some(groups) = self.groups() {
                groups.resign(p.index);
            }
        } else if p.topic == crate::txn::TRANSACTION_STATE_TOPIC {
            if let Some(txns) = self.txns() {
                txns.resign(p.index);
            }
        }
    }

    /// Lead or follow `partition` of `topic` as its state in the image says.
    pub(super) fn follow_image(
        &self,
        partition: &Arc<Partition>,
        topic: &TopicState,
        state: &PartitionState,
    ) {
        let me = self.node_id();
        let registration = registration_of(state);
        if state.leader == me && self.cut_off.load(Ordering::Acquire) {
            partition.make_offline();
        } else if state.leader == me {
            let config = LeaderConfig {
                replica_lag_time_max_ms: i64::try_from(self.config.replica_lag_time_max_ms)
                    .unwrap_or(i64::MAX),
                // Taken from the image when it is installed, so the leader state
                // machine alone judges each acks=all write.
                min_insync_replicas: min_insync_replicas(&topic.configs, &self.defaults),
                alter_partition_retry_ms: 1_000,
            };
            let proposals = partition.make_leader(me, config, registration);
            self.propose_isr(partition, proposals);
        } else {
            let config = FollowerConfig {
                fetch_backoff_ms: i64::try_from(self.config.replica_fetch_backoff_ms)
                    .unwrap_or(i64::MAX),
                fetch_timeout_ms: i64::try_from(
                    self.config.replica_fetch_wait_max_ms + self.config.request_timeout_ms,
                )
                .unwrap_or(i64::MAX),
            };
            let stop = partition.make_follower(me, config, &registration);
            let leader = registration.leader;
            if let Some(mailbox) = self.fetchers.follow(me, partition, stop, leader) {
                if let (Some(broker), Ok(rt)) =
                    (self.me.upgrade(), tokio::runtime::Handle::try_current())
                {
                    rt.spawn(super::fetcher_task::run(broker, leader, mailbox));
                }
            }
        }
    }

    fn open_partition(
        &self,
        topic: &TopicState,
        index: i32,
        epoch: i32,
    ) -> std::io::Result<Partition> {
        Partition::open_in(
            &self.log_storage,
            &self.config.data_dir,
            &topic.name,
            topic.id,
            index,
            epoch,
            log_config(&topic.configs, &self.defaults),
            self.clock.clone(),
        )
    }

    fn drop_topic(&self, name: &str) {
        for p in self.partitions.remove_topic(name) {
            self.delete_partition(&p);
        }
    }

    /// The partition moved to other brokers (reassignment): stop and delete it here.
    fn drop_partition(&self, partition: Arc<Partition>) {
        tracing::info!(topic = %partition.topic, partition = partition.index, "partition moved away; deleting its log here");
        self.partitions.remove(&partition.topic, partition.index);
        self.delete_partition(&partition);
    }

    fn delete_partition(&self, p: &Partition) {
        p.make_offline();
        self.stop_coordinating(p);
        self.metrics.forget_partition(&p.topic, p.index);
        let dir = p.with_log(|l| l.dir().to_path_buf());
        remove_dir(&dir);
    }

    /// Stop serving `partition` (its log failed, or the scrub found it damaged): it
    /// becomes an offline replica, reported to the controller and retried.
    pub fn take_offline(&self, partition: &Arc<Partition>, cause: Cause) {
        let _install = self.install.lock();
        if !self
            .partitions
            .get(&partition.topic, partition.index)
            .is_some_and(|p| Arc::ptr_eq(&p, partition))
        {
            return;
        }
        tracing::error!(topic = %partition.topic, partition = partition.index, cause = %cause,
            "taking the replica offline");
        partition.make_offline();
        self.partitions.remove(&partition.topic, partition.index);
        self.stop_coordinating(partition);
        let now = self.clock.now_ms();
        self.offline.insert(
            &partition.topic,
            partition.index,
            partition.topic_id,
            cause,
            Some(partition.clone()),
            now,
        );
    }

    /// The replica is no longer this broker's (topic deleted, moved away, recreated):
    /// forget it and delete what is left of its log.
    fn forget_offline(&self, topic: &str, index: i32) {
        if let Some(gone) = self.offline.remove(topic, index) {
            if let Some(p) = gone.open {
                p.make_offline();
            }
            self.metrics.forget_partition(topic, index);
            remove_dir(&partition_dir(&self.config.data_dir, topic, index));
        }
    }

    /// One round of the offline replicas' retries (see `offline`), and reports of
    /// replicas served again that the controller still has offline.
    pub async fn retry_offline(self: &Arc<Self>) {
        let now = self.clock.now_ms();
        let image = self.image();
        let me = self.node_id();
        for due in self.offline.due(now) {
            let Due {
                topic,
                index,
                topic_id,
                cause,
                open,
            } = due;
            let state = image
                .topic(&topic)
                .filter(|t| t.id == topic_id)
                .and_then(|t| t.partitions.get(index as usize));
            let step = next_step(&cause, state, me);
            match step {
                Step::Forget => {
                    let _install = self.install.lock();
                    // Decided on an image read before an installation that may have
                    // taken this replica offline while adding its topic: decide again
                    // on the image installed now (installations hold this lock).
                    let image = self.image();
                    let state = image
                        .topic(&topic)
                        .filter(|t| t.id == topic_id)
                        .and_then(|t| t.partitions.get(index as usize));
                    if next_step(&cause, state, me) == Step::Forget {
                        self.forget_offline(&topic, index);
                    }
                }
                Step::Report => {
                    self.report_storage(topic_id, index, true).await;
                    self.offline.back_off(&topic, index, now);
                }
                Step::Hold => {
                    if self.offline.first_hold(&topic, index) {
                        tracing::error!(topic, partition = index, cause = %cause,
                            "no other in-sync replica holds this partition's data: it stays offline, its files untouched, until an operator repairs them");
                    }
                    self.offline.back_off(&topic, index, now);
                }
                Step::Reopen | Step::Repair => {
                    let leader_epoch = state.map_or(0, |s| s.leader_epoch);
                    let broker = self.clone();
                    let (t, repair) = (topic.clone(), step == Step::Repair);
                    let reopened = tokio::task::spawn_blocking(move || {
                        broker.reopen(&t, index, topic_id, leader_epoch, open, repair)
                    })
                    .await;
                    match reopened {
                        Ok(Ok(partition)) => self.put_back(partition),
                        Ok(Err(e)) => {
                            tracing::warn!(topic, partition = index, error = %e, "offline replica still cannot be served");
                            self.offline.back_off(&topic, index, now);
                        }
                        Err(_) => return,
                    }
                }
            }
        }
        for (topic, index) in self.offline.to_report_online() {
            let listed = self.partitions.get(&topic, index).filter(|p| {
                image
                    .topic(&topic)
                    .filter(|t| t.id == p.topic_id)
                    .and_then(|t| t.partitions.get(index as usize))
                    .is_some_and(|s| s.offline_replicas.contains(&me))
            });
            match listed {
                Some(p) => self.report_storage(p.topic_id, index, false).await,
                None => self.offline.reported_online(&topic, index),
            }
        }
    }

    /// Open the log of an offline replica again (blocking): as it is, or, to `repair`
    /// it, cut at its damage (an open log the scrub found damaged, or a log that open
    /// refused).
    fn reopen(
        &self,
        topic: &str,
        index: i32,
        topic_id: uuid::Uuid,
        leader_epoch: i32,
        open: Option<Arc<Partition>>,
        repair: bool,
    ) -> std::io::Result<Arc<Partition>> {
        let image = self.image();
        let Some(state) = image.topic(topic).filter(|t| t.id == topic_id) else {
            return Err(std::io::Error::other("the topic is gone"));
        };
        match open {
            Some(p) if repair => {
                let end = p.with_log_mut(|log| log.truncate_damage())?;
                tracing::warn!(topic, partition = index, log_end_offset = ?end,
                    "cut the log at the damage the scrub found; fetching the rest from the leader");
                Ok(p)
            }
            _ if repair => {
                let (p, dropped) = Partition::open_repairing(
                    &self.log_storage,
                    &self.config.data_dir,
                    topic,
                    topic_id,
                    index,
                    leader_epoch,
                    log_config(&state.configs, &self.defaults),
                    self.clock.clone(),
                )?;
                if let Some(d) = dropped {
                    tracing::warn!(
                        topic,
                        partition = index,
                        first_lost_offset = d.first_lost_offset,
                        bytes_dropped = d.bytes_dropped,
                        segments_deleted = d.segments_deleted,
                        "cut the damaged log; fetching the rest from the leader"
                    );
                }
                Ok(Arc::new(p))
            }
            open => {
                // A log that failed while open is opened anew: recovery starts from
                // what is known durable.
                drop(open);
                Ok(Arc::new(self.open_partition(state, index, leader_epoch)?))
            }
        }
    }

    /// Serve a reopened replica again, as the image now says (if it is still this
    /// broker's), and let the controller know.
    fn put_back(&self, partition: Arc<Partition>) {
        let _install = self.install.lock();
        let image = self.image();
        let me = self.node_id();
        let topic = image
            .topic(&partition.topic)
            .filter(|t| t.id == partition.topic_id);
        let state = topic.and_then(|t| t.partitions.get(partition.index as usize));
        let (Some(topic), Some(state)) = (topic, state.filter(|s| s.is_replica(me))) else {
            self.forget_offline(&partition.topic, partition.index);
            return;
        };
        if self
            .offline
            .remove(&partition.topic, partition.index)
            .is_none()
        {
            return;
        }
        tracing::info!(topic = %partition.topic, partition = partition.index, "offline replica served again");
        self.partitions.insert(partition.clone());
        self.attach_timers(&partition);
        self.offline.served_again(&partition.topic, partition.index);
        self.follow_image(&partition, topic, state);
        self.follow_coordination(&partition, state.leader == me);
    }

    /// Tell the controller this broker's copy of the partition can (not) be served.
    /// Failures are only logged: the next round reports again.
    async fn report_storage(&self, topic_id: uuid::Uuid, index: i32, offline: bool) {
        let partition = TopicPartition {
            topic_id,
            partition: index,
        };
        if let Err(e) = self
            .submit(ControllerRequest::ReplicaStorage { partition, offline })
            .await
        {
            tracing::warn!(%partition, offline, error = %e.message, "storage report not taken by the controller");
        }
    }
}

fn remove_dir(dir: &std::path::Path) {
    // Readers still holding file slices keep their open files; the data goes once
    // they finish.
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(dir = %dir.display(), error = %e, "could not remove partition directory")
        }
        _ => {}
    }
}

impl MetadataApplier for Broker {
    fn apply(&self, image: Arc<MetadataImage>) {
        self.install_image(image);
    }
}
