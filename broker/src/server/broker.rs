//! The state one broker process shares between its connections: configuration, the
//! metadata image (applied from the metadata quorum), the hosted partitions and their
//! replication roles, producer id allocation and metrics.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Mutex as AsyncMutex;

use kafka_protocol::error::ResponseError;

use super::partition::{Partition, PartitionMap};
use crate::clock::SharedClock;
use crate::config::{log_config, min_insync_replicas, BrokerConfig, TopicDefaults};
use crate::metadata::admin::AdminError;
use crate::metadata::image::{MetadataImage, MetadataRecord, PartitionState, TopicState};
use crate::metrics::Metrics;
use crate::quorum::{ControllerReply, ControllerRequest, MetadataApplier, Quorum};
use crate::replication::controller::registration_of;
use crate::replication::follower::FollowerConfig;
use crate::replication::leader::{AlterPartitionRequest, LeaderConfig};
use crate::replication::{PartitionRegistration, TopicPartition};

/// Producer ids are reserved in the metadata log this many at a time.
const PRODUCER_ID_BLOCK: i64 = 1000;

pub struct Broker {
    /// This broker itself, for spawning tasks from `&self` (follower fetch loops).
    me: std::sync::Weak<Broker>,
    pub config: BrokerConfig,
    /// The one clock of this broker, handed down to its partitions and coordinators.
    pub clock: SharedClock,
    /// gRPC channels to other brokers (follower fetches).
    pub peers: crate::quorum::Channels,
    pub cluster_id: String,
    pub defaults: TopicDefaults,
    pub metrics: Metrics,
    pub partitions: PartitionMap,
    /// The storage seam and the bound on open segment files shared by every log here.
    pub log_storage: crate::log::LogStorage,
    /// The installed image: readers take a cheap snapshot; the quorum's applier
    /// replaces it once the hosted partitions match it.
    image: parking_lot::RwLock<Arc<MetadataImage>>,
    /// The metadata quorum, set once started.
    quorum: std::sync::OnceLock<Arc<Quorum>>,
    /// Serializes this broker's admin changes: plan against the image, submit, wait
    /// until applied here.
    writer: AsyncMutex<()>,
    /// Producer ids handed to this broker by the controller, `next..end`.
    producer_ids: AsyncMutex<(i64, i64)>,
    ready: AtomicBool,
    /// Out of touch with the controller for longer than the session timeout: lead
    /// nothing until a heartbeat is answered again.
    cut_off: AtomicBool,
    /// The last image could not be installed whole: the next one looks at every topic.
    install_failed: AtomicBool,
    /// The group coordinator, set once `__consumer_offsets` is loaded.
    groups: std::sync::OnceLock<Arc<super::coordinator::GroupRuntime>>,
}

/// A broker as Metadata and DescribeCluster list it.
#[derive(Debug, Clone)]
pub struct ClusterBroker {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl Broker {
    /// Claim the data dir. Partitions are opened as the metadata quorum's image
    /// names them (see [`Broker::start_quorum`]).
    pub fn open(config: BrokerConfig, clock: SharedClock) -> Result<Arc<Broker>, String> {
        let claimed = crate::metadata::claim_data_dir(&config.data_dir, config.node_id)?;
        // Every broker of a cluster reports the same cluster id: one derived from the
        // first voter, which all share and which stays when voters are added. A single
        // broker keeps the id it recorded.
        let cluster_id = match config.voters.iter().min_by_key(|v| v.id) {
            None => claimed,
            Some(first) => {
                let seed = format!("{}@{}", first.id, first.address);
                let part = |salt: u32| u128::from(crc32c::crc32c_append(salt, seed.as_bytes()));
                let id = (part(1) << 96) | (part(2) << 64) | (part(3) << 32) | part(4);
                crate::metadata::base64_uuid(&uuid::Uuid::from_u128(id))
            }
        };
        let defaults = TopicDefaults::from_broker(&config);
        Ok(Arc::new_cyclic(|me| Broker {
            me: me.clone(),
            peers: crate::quorum::Channels::for_listener(config.internal_listen),
            cluster_id,
            defaults,
            metrics: Metrics::new(),
            partitions: PartitionMap::default(),
            log_storage: crate::log::LogStorage::new(
                crate::storage::Disk::real(),
                config.log_open_files_max,
            ),
            image: parking_lot::RwLock::new(Arc::new(MetadataImage::default())),
            quorum: std::sync::OnceLock::new(),
            writer: AsyncMutex::new(()),
            producer_ids: AsyncMutex::new((0, 0)),
            ready: AtomicBool::new(false),
            cut_off: AtomicBool::new(false),
            install_failed: AtomicBool::new(false),
            groups: std::sync::OnceLock::new(),
            config,
            clock,
        }))
    }

    /// Start the metadata quorum: replays the metadata log into this broker (opening
    /// its partitions), then follows the committed log.
    pub async fn start_quorum(self: &Arc<Self>) -> Result<Arc<Quorum>, String> {
        let started = std::time::Instant::now();
        let quorum = Quorum::start(&self.config, self.clone()).await?;
        let _ = self.quorum.set(quorum.clone());
        tracing::info!(
            partitions = self.partitions.all().len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "metadata replayed, logs loaded"
        );
        Ok(quorum)
    }

    pub fn quorum(&self) -> Option<&Arc<Quorum>> {
        self.quorum.get()
    }

    /// Send a request to the active controller, bounded by request.timeout.ms.
    async fn submit(&self, request: ControllerRequest) -> Result<ControllerReply, AdminError> {
        let quorum = self.quorum.get().ok_or_else(|| AdminError {
            code: ResponseError::NotController,
            message: "the metadata quorum is not started".to_string(),
        })?;
        quorum
            .submit(
                request,
                std::time::Duration::from_millis(self.config.request_timeout_ms),
            )
            .await
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().clone()
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// Brokers of `image` that can hold replicas and lead: registered, unfenced, not
    /// shutting down. Before any broker registered (a single broker), this broker
    /// alone. Admin changes plan with the image [`Broker::change_metadata`] hands them.
    pub fn live_brokers(&self, image: &MetadataImage) -> Vec<i32> {
        if image.brokers().next().is_none() {
            return vec![self.node_id()];
        }
        image
            .brokers()
            .filter(|b| b.is_eligible())
            .map(|b| b.id)
            .collect()
    }

    /// The brokers clients may connect to: registered and unfenced (before any broker
    /// registered, this one).
    pub fn cluster_brokers(&self) -> Vec<ClusterBroker> {
        let image = self.image();
        let listed: Vec<ClusterBroker> = image
            .brokers()
            .filter(|b| !b.fenced)
            .map(|b| ClusterBroker {
                id: b.id,
                host: b.endpoint.host.clone(),
                port: b.endpoint.port,
                rack: b.rack.clone(),
            })
            .collect();
        if !listed.is_empty() {
            return listed;
        }
        let (host, port) = self.config.advertised();
        vec![ClusterBroker {
            id: self.node_id(),
            host,
            port,
            rack: self.config.rack.clone(),
        }]
    }

    /// The controller id to tell clients along with `listed`, the brokers of the same
    /// answer: clients send admin requests there, and any broker forwards them to the
    /// active controller, so it must be a listed broker (librdkafka waits for one it
    /// knows). The Raft leader when it is listed, else this broker, else the first.
    pub fn controller_id(&self, listed: &[ClusterBroker]) -> i32 {
        let raft_leader = self.quorum.get().map_or(-1, |q| q.status().controller_id);
        [raft_leader, self.node_id()]
            .into_iter()
            .find(|id| listed.iter().any(|b| b.id == *id))
            .or_else(|| listed.first().map(|b| b.id))
            .unwrap_or(-1)
    }

    /// Ask the controller to change a partition's ISR (AlterPartition).
    pub async fn alter_partition(
        &self,
        request: AlterPartitionRequest,
    ) -> Result<PartitionRegistration, ResponseError> {
        match self
            .submit(ControllerRequest::AlterPartition(request))
            .await
        {
            Ok(ControllerReply::Partition(registration)) => Ok(registration),
            Ok(_) => Err(ResponseError::UnknownServerError),
            Err(e) => Err(e.code),
        }
    }

    /// Start (`Some(target)`) or cancel (`None`) a partition's reassignment.
    pub async fn alter_reassignment(
        &self,
        partition: TopicPartition,
        target: Option<Vec<i32>>,
    ) -> Result<(), ResponseError> {
        self.submit(ControllerRequest::AlterReassignment { partition, target })
            .await
            .map(|_| ())
            .map_err(|e| e.code)
    }

    /// Remove a stopped broker's registration (UnregisterBroker).
    pub async fn unregister_broker(&self, broker: i32) -> Result<(), ResponseError> {
        self.submit(ControllerRequest::UnregisterBroker { broker })
            .await
            .map(|_| ())
            .map_err(|e| e.code)
    }

    /// Send a partition leader's ISR proposals (if any) to the controller.
    pub fn propose_isr(&self, partition: &Arc<Partition>, proposals: Vec<AlterPartitionRequest>) {
        if proposals.is_empty() {
            return;
        }
        if let Some(me) = self.me.upgrade() {
            super::replica::spawn_isr_proposals(me, partition.clone(), proposals);
        }
    }

    /// The group coordinator; None until it has loaded.
    pub fn groups(&self) -> Option<&Arc<super::coordinator::GroupRuntime>> {
        self.groups.get()
    }

    pub fn set_groups(&self, runtime: Arc<super::coordinator::GroupRuntime>) {
        let _ = self.groups.set(runtime);
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Plan a change against the current image and, if `commit`, have the controller
    /// commit it; returns once it is applied here. Planning under one lock keeps this
    /// broker's concurrent admin requests from planning against a stale image; the
    /// controller re-checks the records against its own image.
    pub async fn change_metadata(
        &self,
        commit: bool,
        plan: impl FnOnce(&MetadataImage) -> Result<MetadataRecord, AdminError>,
    ) -> Result<MetadataRecord, AdminError> {
        let _writer = self.writer.lock().await;
        // Plan against everything the controller has decided: a broker that started a
        // moment ago may not have applied the latest registrations yet.
        self.submit(ControllerRequest::Sync).await?;
        let record = plan(&self.image())?;
        if commit {
            self.submit(ControllerRequest::Records(vec![record.clone()]))
                .await?;
        }
        Ok(record)
    }

    /// Make the hosted partitions match `image`: open the logs of partitions this
    /// broker is a replica of, lead or follow each as the image says, close and delete
    /// the logs of deleted topics and of partitions moved away, apply config changes.
    /// Then publish it.
    fn install_image(&self, image: Arc<MetadataImage>) -> Result<(), String> {
        let old = self.image();
        let me = self.node_id();
        // Only the topics a change touched need work, so a change costs the same with
        // thousands of topics. After a failure (a log that could not be opened) every
        // topic is looked at again.
        let mut changes = image.topic_changes(&old);
        if self.install_failed.swap(false, Ordering::AcqRel) {
            changes.changed = image.topics().collect();
        }
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
        }
        let result = self.install_topics(&old, &changes.changed, me);
        if result.is_err() {
            self.install_failed.store(true, Ordering::Release);
        }
        *self.image.write() = image;
        result
    }

    /// Open, lead or follow, and configure the replicas here of `changed` topics.
    fn install_topics(
        &self,
        old: &MetadataImage,
        changed: &[&TopicState],
        me: i32,
    ) -> Result<(), String> {
        for &topic in changed {
            let hosted = self.partitions.topic(&topic.name);
            if hosted.first().is_some_and(|p| p.topic_id != topic.id) {
                self.drop_topic(&topic.name);
            }
            let config_changed = old
                .topic(&topic.name)
                .is_some_and(|o| o.configs != topic.configs);
            for p in &topic.partitions {
                let hosted = self.partitions.get(&topic.name, p.partition);
                if !p.is_replica(me) {
                    if let Some(gone) = hosted {
                        self.drop_partition(gone);
                    }
                    continue;
                }
                let partition = match hosted {
                    Some(h) => {
                        if config_changed {
                            let config = log_config(&topic.configs, &self.defaults);
                            h.with_log_mut(|log| log.set_config(config));
                        }
                        h
                    }
                    None => {
                        let opened =
                            Arc::new(self.open_partition(topic, p.partition, p.leader_epoch)?);
                        self.partitions.insert(opened.clone());
                        opened
                    }
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
                self.follow_image(&partition, topic, p);
                if topic.name == crate::group::OFFSETS_TOPIC {
                    self.follow_coordination(&partition, p.leader == me);
                }
            }
        }
        Ok(())
    }

    /// The group coordinator of a `__consumer_offsets` partition is its leader: load
    /// the partition's groups when leadership came here, drop them when it left.
    fn follow_coordination(&self, partition: &Arc<Partition>, leads: bool) {
        let Some(groups) = self.groups.get().cloned() else {
            return;
        };
        if !leads {
            groups.resign(partition.index);
            return;
        }
        let (p, epoch) = (partition.clone(), partition.leader_epoch());
        let load = move || {
            // Leadership may have moved on while this waited for a thread.
            if p.is_leader() && p.leader_epoch() == epoch {
                groups.become_leader(p);
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(load)),
            Err(_) => load(),
        }
    }

    /// Is this broker cut off from the controller (and so leading nothing)?
    pub fn is_cut_off(&self) -> bool {
        self.cut_off.load(Ordering::Acquire)
    }

    /// Check contact with the controller. A broker whose heartbeats went unanswered
    /// for the session timeout has been fenced, and another broker leads its
    /// partitions: it stops leading (acks=all waiters and producers get
    /// NOT_LEADER_OR_FOLLOWER and look for the new leader) until a heartbeat is
    /// answered, then takes up what the image says again.
    pub fn check_contact(&self) {
        let Some(quorum) = self.quorum.get() else {
            return;
        };
        let in_touch = quorum.in_touch() || !self.is_ready();
        let was_cut_off = self.cut_off.swap(!in_touch, Ordering::AcqRel);
        if was_cut_off == in_touch {
            let image = self.image();
            if in_touch {
                tracing::info!("in touch with the controller again");
            } else {
                tracing::warn!("no heartbeat answered within the session timeout: leading nothing until the controller answers");
            }
            for p in self.partitions.all() {
                let Some(topic) = image.topic(&p.topic) else {
                    continue;
                };
                if let Some(state) = topic.partitions.get(p.index as usize) {
                    if state.leader == self.node_id() {
                        self.follow_image(&p, topic, state);
                    }
                }
            }
        }
    }

    /// Lead or follow `partition` of `topic` as its state in the image says.
    fn follow_image(&self, partition: &Arc<Partition>, topic: &TopicState, state: &PartitionState) {
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
            if let Some(stop) = partition.make_follower(me, config, &registration) {
                if let (Some(me), Ok(rt)) =
                    (self.me.upgrade(), tokio::runtime::Handle::try_current())
                {
                    rt.spawn(super::replica::run_follower(me, partition.clone(), stop));
                }
            }
        }
    }

    fn open_partition(
        &self,
        topic: &TopicState,
        index: i32,
        epoch: i32,
    ) -> Result<Partition, String> {
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
        .map_err(|e| format!("topic {:?} partition {index}: {e}", topic.name))
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
        if p.topic == crate::group::OFFSETS_TOPIC {
            if let Some(groups) = self.groups.get() {
                groups.resign(p.index);
            }
        }
        self.metrics.forget_partition(&p.topic, p.index);
        let dir = p.with_log(|l| l.dir().to_path_buf());
        // Readers still holding file slices keep their open files; the data goes
        // once they finish.
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "could not remove partition directory");
        }
    }

    /// Hand out a producer id for an idempotent producer, from a block the
    /// controller reserved for this broker (KIP-730).
    pub async fn allocate_producer_id(&self) -> Result<i64, String> {
        let mut ids = self.producer_ids.lock().await;
        if ids.0 >= ids.1 {
            match self
                .submit(ControllerRequest::AllocateProducerIds {
                    count: PRODUCER_ID_BLOCK,
                })
                .await
            {
                Ok(ControllerReply::ProducerIds { first, count }) => *ids = (first, first + count),
                Ok(other) => return Err(format!("unexpected controller reply {other:?}")),
                Err(e) => return Err(e.message),
            }
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    /// Periodic log maintenance: roll, retention, producer expiry, flush.ms and
    /// compaction; refreshes gauges.
    pub fn housekeeping(&self) {
        let now = self.clock.wall_ms();
        for p in self.partitions.all() {
            let hw = p.high_watermark();
            match p.with_log_mut(|log| log.housekeeping(now, hw)) {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(topic = %p.topic, partition = p.index, segments = n, "deleted segments past retention")
                }
                Err(e) => {
                    tracing::error!(topic = %p.topic, partition = p.index, error = %e, "log housekeeping failed")
                }
            }
            // A cleaning that fails before its swap leaves the log as it was and is
            // retried next round; one that fails during the swap keeps serving the old
            // segments, stops compacting that log, and is completed on the next open.
            if let Err(e) = p.compact() {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "log compaction failed")
            }
        }
        self.refresh_log_gauges();
    }

    pub fn refresh_log_gauges(&self) {
        let image = self.image();
        let offline = image
            .topics()
            .flat_map(|t| &t.partitions)
            .filter(|p| p.leader < 0)
            .count();
        self.metrics
            .offline_partitions
            .set(i64::try_from(offline).unwrap_or(i64::MAX));
        let (mut leading, mut under) = (0i64, 0i64);
        // Rebuilt each time, so followers and partitions that went away disappear.
        self.metrics.replica_lag.reset();
        for p in self.partitions.all() {
            if let Some(isr) = p.isr_len() {
                leading += 1;
                let replicas = image
                    .partition(&p.topic, p.index)
                    .map_or(0, |s| s.replicas.len());
                if isr < replicas {
                    under += 1;
                }
                let idx = p.index.to_string();
                let leo = p.log_end_offset();
                for (follower, position) in p.follower_positions() {
                    let lag = position.map_or(leo, |pos| (leo - pos).max(0));
                    self.metrics
                        .replica_lag
                        .with_label_values(&[p.topic.as_str(), idx.as_str(), &follower.to_string()])
                        .set(lag);
                }
            }
        }
        self.metrics.leader_partitions.set(leading);
        if let Some(q) = self.quorum.get() {
            let status = q.status();
            let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            self.metrics
                .active_controller
                .set(i64::from(status.is_controller));
            self.metrics.raft_term.set(clamp(status.term));
            self.metrics
                .raft_commit_index
                .set(clamp(status.last_log_index));
            self.metrics
                .raft_applied_index
                .set(clamp(status.applied_index));
        }
        self.metrics.under_replicated_partitions.set(under);
        self.metrics
            .log_open_segment_files
            .set(i64::try_from(self.log_storage.handles.open_count()).unwrap_or(i64::MAX));
        for p in self.partitions.all() {
            let idx = p.index.to_string();
            let labels = [p.topic.as_str(), idx.as_str()];
            let (size, start, end) =
                p.with_log(|l| (l.size_bytes(), l.log_start_offset(), l.log_end_offset()));
            self.metrics
                .log_size_bytes
                .with_label_values(&labels)
                .set(i64::try_from(size).unwrap_or(i64::MAX));
            self.metrics
                .log_start_offset
                .with_label_values(&labels)
                .set(start);
            self.metrics
                .log_end_offset
                .with_label_values(&labels)
                .set(end);
        }
    }

    /// fsync and mark every log cleanly shut down.
    pub fn close_logs(&self) {
        for p in self.partitions.all() {
            // Follower loops stop; waiting producers get NOT_LEADER_OR_FOLLOWER.
            p.make_offline();
            if let Err(e) = p.with_log_mut(|l| l.close()) {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "closing log failed");
            }
        }
    }
}

impl MetadataApplier for Broker {
    fn apply(&self, image: Arc<MetadataImage>) {
        if let Err(e) = self.install_image(image) {
            // A partition that cannot be opened (disk full, permissions) stays
            // unserved; the rest of the image is installed on the next change.
            tracing::error!(error = %e, "installing metadata failed");
        }
    }
}
