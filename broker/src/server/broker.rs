//! The state one broker process shares between its connections: configuration, the
//! metadata image (applied from the metadata quorum), the hosted partitions and their
//! replication roles, producer id allocation and metrics.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Mutex as AsyncMutex;

use kafka_protocol::error::ResponseError;

use super::isr_proposals::{self, IsrProposals};
use super::partition::{Partition, PartitionMap};
use super::readiness::{self, InSync, InSyncGate};
use crate::clock::SharedClock;
use crate::config::listeners::Listener;
use crate::config::{BrokerConfig, TopicDefaults};
use crate::metadata::admin::AdminError;
use crate::metadata::image::{MetadataImage, MetadataRecord};
use crate::metrics::Metrics;
use crate::quorum::{ControllerReply, ControllerRequest, Quorum};
use crate::replication::leader::AlterPartitionRequest;
use crate::replication::TopicPartition;

/// Producer ids are reserved in the metadata log this many at a time.
const PRODUCER_ID_BLOCK: i64 = 1000;

pub struct Broker {
    /// This broker itself, for spawning tasks from `&self` (follower fetch loops).
    pub(super) me: std::sync::Weak<Broker>,
    pub config: BrokerConfig,
    /// The one clock of this broker, handed down to its partitions and coordinators.
    pub clock: SharedClock,
    /// gRPC channels to other brokers (follower fetches).
    pub peers: crate::quorum::Channels,
    pub cluster_id: String,
    pub defaults: TopicDefaults,
    pub metrics: Metrics,
    pub partitions: PartitionMap,
    /// When each hosted partition next needs attention (see `timers`).
    pub timers: Arc<super::timers::BrokerTimers>,
    /// The storage seam and the bound on open segment files shared by every log here.
    pub log_storage: crate::log::LogStorage,
    /// The installed image: readers take a cheap snapshot; the quorum's applier
    /// replaces it once the hosted partitions match it.
    pub(super) image: parking_lot::RwLock<Arc<MetadataImage>>,
    /// Held while the hosted partitions are changed to match the image (installing an
    /// image, putting a replica back in service), so the two never interleave.
    pub(super) install: parking_lot::Mutex<()>,
    /// Replicas hosted here that cannot be served (see `offline`).
    pub offline: super::offline::OfflineReplicas,
    /// One replica fetcher per leader broker this broker follows partitions on.
    pub fetchers: super::fetcher::Fetchers,
    /// This broker's replication quotas (KIP-73), one per direction.
    pub replication_quotas: super::throttle::ReplicationQuotas,
    /// ISR changes of the partitions led here, on their way to the controller.
    isr_proposals: Arc<IsrProposals>,
    /// The metadata quorum, set once started.
    quorum: std::sync::OnceLock<Arc<Quorum>>,
    /// Serializes this broker's admin changes: plan against the image, submit, wait
    /// until applied here.
    writer: AsyncMutex<()>,
    /// Producer ids handed to this broker by the controller, `next..end`.
    producer_ids: AsyncMutex<(i64, i64)>,
    ready: AtomicBool,
    /// `/ready/in-sync`'s gate (see `readiness`).
    in_sync: parking_lot::Mutex<InSyncGate>,
    /// Out of touch with the controller for longer than the session timeout: lead
    /// nothing until a heartbeat is answered again.
    pub(super) cut_off: AtomicBool,
    /// The group coordinator, set once `__consumer_offsets` is loaded.
    groups: std::sync::OnceLock<Arc<super::coordinator::GroupRuntime>>,
    /// The transaction coordinator, set at start like the group coordinator.
    txns: std::sync::OnceLock<Arc<super::txn::TxnRuntime>>,
    /// What SASL listeners' connections share (one per broker, so an unknown user is
    /// shown the same made-up salt on every connection).
    pub sasl: Arc<crate::auth::sasl::SaslSettings>,
    /// Client fetch sessions (KIP-227).
    pub fetch_sessions: parking_lot::Mutex<crate::fetch_session::SessionCache>,
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
        let peers = crate::quorum::Channels::for_config(&config)?;
        Ok(Arc::new_cyclic(|me| Broker {
            me: me.clone(),
            peers,
            cluster_id,
            defaults,
            metrics: Metrics::new(),
            partitions: PartitionMap::default(),
            timers: Arc::default(),
            log_storage: log_storage(config.log_open_files_max),
            image: parking_lot::RwLock::new(Arc::new(MetadataImage::default())),
            install: parking_lot::Mutex::new(()),
            offline: Default::default(),
            fetchers: Default::default(),
            replication_quotas: Default::default(),
            isr_proposals: Default::default(),
            quorum: std::sync::OnceLock::new(),
            writer: AsyncMutex::new(()),
            producer_ids: AsyncMutex::new((0, 0)),
            ready: AtomicBool::new(false),
            in_sync: parking_lot::Mutex::new(InSyncGate::new(config.in_sync_ready_timeout_ms)),
            cut_off: AtomicBool::new(false),
            groups: std::sync::OnceLock::new(),
            txns: std::sync::OnceLock::new(),
            sasl: Arc::new(config.sasl.settings()),
            fetch_sessions: parking_lot::Mutex::new(crate::fetch_session::SessionCache::new(
                crate::fetch_session::SessionLimits::with_slots(
                    config.max_incremental_fetch_session_cache_slots,
                ),
                rand::random(),
            )),
            config,
            clock,
        }))
    }

    /// Start the metadata quorum: replays the metadata log into this broker (opening
    /// its partitions), then follows the committed log.
    pub async fn start_quorum(self: &Arc<Self>) -> Result<Arc<Quorum>, String> {
        let started = std::time::Instant::now();
        let quorum = Quorum::start(&self.config, self.peers.clone(), self.clone()).await?;
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
    pub(super) async fn submit(
        &self,
        request: ControllerRequest,
    ) -> Result<ControllerReply, AdminError> {
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

    /// The brokers clients on `listener` may connect to: registered, unfenced and
    /// with that listener, at its endpoint (Kafka's rule: a client is told the
    /// addresses of the listener it arrived on). Before any broker registered, this
    /// one.
    pub fn cluster_brokers(&self, listener: &Listener) -> Vec<ClusterBroker> {
        let image = self.image();
        let listed: Vec<ClusterBroker> = image
            .brokers()
            .filter(|b| !b.fenced)
            .filter_map(|b| {
                let (host, port) = b.endpoint.listener(listener.name.as_str())?;
                Some(ClusterBroker {
                    id: b.id,
                    host: host.to_string(),
                    port,
                    rack: b.rack.clone(),
                })
            })
            .collect();
        if !listed.is_empty() {
            return listed;
        }
        vec![ClusterBroker {
            id: self.node_id(),
            host: listener.advertised_host.clone(),
            port: i32::from(listener.advertised_port),
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

    /// Send a partition leader's ISR proposals (if any) to the controller, and feed
    /// the answers back (which may produce further proposals).
    pub fn propose_isr(&self, partition: &Arc<Partition>, proposals: Vec<AlterPartitionRequest>) {
        if self.isr_proposals.queue(partition, proposals) {
            let me = self.me.clone();
            let alter = move |requests| {
                let me = me.clone();
                async move {
                    let broker = me.upgrade()?;
                    Some(
                        broker
                            .alter_partitions(requests, isr_proposals::REQUEST_TIMEOUT)
                            .await,
                    )
                }
            };
            tokio::spawn(isr_proposals::send(self.isr_proposals.clone(), alter));
        }
    }

    /// Ask the controller to change partitions' ISRs (AlterPartition): an answer per
    /// request, or the error of the whole call.
    pub async fn alter_partitions(
        &self,
        requests: Vec<AlterPartitionRequest>,
        timeout: std::time::Duration,
    ) -> isr_proposals::Answers {
        let quorum = self.quorum.get().ok_or(ResponseError::NotController)?;
        match quorum
            .submit(ControllerRequest::AlterPartitions(requests), timeout)
            .await
        {
            Ok(ControllerReply::Partitions(answers)) => Ok(answers
                .into_iter()
                .map(|a| {
                    a.map_err(|code| {
                        ResponseError::try_from_code(code)
                            .unwrap_or(ResponseError::UnknownServerError)
                    })
                })
                .collect()),
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

    /// The group coordinator; None until it has loaded.
    pub fn groups(&self) -> Option<&Arc<super::coordinator::GroupRuntime>> {
        self.groups.get()
    }

    pub fn set_groups(&self, runtime: Arc<super::coordinator::GroupRuntime>) {
        let _ = self.groups.set(runtime);
    }

    pub fn txns(&self) -> Option<&Arc<super::txn::TxnRuntime>> {
        self.txns.get()
    }

    pub fn set_txns(&self, runtime: Arc<super::txn::TxnRuntime>) {
        let _ = self.txns.set(runtime);
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Whether this process has been back in the ISR of every partition it replicates
    /// since it started (see [`super::readiness`]).
    pub fn in_sync(&self) -> InSync {
        let local = self.node_id();
        let out_of_sync = self
            .quorum()
            .and_then(|q| q.broker_epoch())
            .and_then(|epoch| {
                let image = self.image();
                (image.eligible_epoch(local) == Some(epoch))
                    .then(|| readiness::out_of_sync(&image, local))
            });
        self.in_sync.lock().check(self.clock.now_ms(), out_of_sync)
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

    /// [`Broker::change_metadata`] for many changes at once (CreateTopics of many
    /// topics): each is planned against the image with the ones before it applied, and
    /// those planned are committed as one metadata log entry, so a request of many
    /// topics costs one Raft round and one installation. Each change still gets its
    /// own answer: one refused in planning fails alone, and if the controller refuses
    /// the entry (its image moved since), each is submitted on its own.
    pub async fn change_metadata_each<T>(
        &self,
        commit: bool,
        changes: &[T],
        plan: impl Fn(&MetadataImage, &T) -> Result<MetadataRecord, AdminError>,
    ) -> Vec<Result<MetadataRecord, AdminError>> {
        let _writer = self.writer.lock().await;
        if let Err(e) = self.submit(ControllerRequest::Sync).await {
            return changes.iter().map(|_| Err(e.clone())).collect();
        }
        let mut image = (*self.image()).clone();
        let mut planned: Vec<Result<MetadataRecord, AdminError>> =
            Vec::with_capacity(changes.len());
        for change in changes {
            let outcome = plan(&image, change).and_then(|record| {
                image.apply(&record).map_err(|message| AdminError {
                    code: ResponseError::InvalidRequest,
                    message,
                })?;
                Ok(record)
            });
            planned.push(outcome);
        }
        let records: Vec<MetadataRecord> = planned.iter().filter_map(|r| r.clone().ok()).collect();
        if !commit || records.is_empty() {
            return planned;
        }
        match self.submit(ControllerRequest::Records(records)).await {
            Ok(_) => return planned,
            // Refused by the controller's checks, so not committed: answer one by one.
            Err(e) if refused_by_check(&e) => {}
            // Maybe committed, maybe not (a timeout, the controller moved): what
            // happened to the entry is what happened to each change.
            Err(e) => {
                return planned
                    .into_iter()
                    .map(|outcome| outcome.and(Err(e.clone())))
                    .collect()
            }
        }
        let mut answers = Vec::with_capacity(planned.len());
        for outcome in planned {
            answers.push(match outcome {
                Ok(record) => self.submit_record(record).await,
                Err(e) => Err(e),
            });
        }
        answers
    }

    /// Commit one planned record. The quorum resubmits a request whose controller
    /// moved while it waited; if the first submission was committed, the second is
    /// refused as a duplicate, and the record is found in the image as planned.
    async fn submit_record(&self, record: MetadataRecord) -> Result<MetadataRecord, AdminError> {
        match self
            .submit(ControllerRequest::Records(vec![record.clone()]))
            .await
        {
            Ok(_) => Ok(record),
            Err(e) if e.code == ResponseError::TopicAlreadyExists => {
                let image = self.synced_image().await;
                if crate::metadata::admin::already_created(&image, &record) {
                    Ok(record)
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The image once this broker has installed everything the controller had
    /// applied when asked (the current image if the controller cannot be reached).
    pub async fn synced_image(&self) -> Arc<MetadataImage> {
        let _ = self.submit(ControllerRequest::Sync).await;
        self.image()
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
        // Under the install lock: an image installed meanwhile reads `cut_off` and
        // is published under it, so the partitions are taken up (or put down) from
        // the image that is in force, never from one about to be replaced. Without it,
        // a leadership that came while cut off, installed as offline, stayed offline
        // when contact came back before the image was published.
        let _install = self.install.lock();
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

    /// Hand out a producer id for an idempotent producer, from a block the
    /// controller reserved for this broker (KIP-730).
    pub async fn allocate_producer_id(&self) -> Result<i64, String> {
        let mut ids = self.producer_ids.lock().await;
        if ids.0 >= ids.1 {
            let (first, count) = self.reserve_producer_ids(PRODUCER_ID_BLOCK).await?;
            *ids = (first, first + count);
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    /// Reserve a block of `count` producer ids from the controller: (first, count).
    pub async fn reserve_producer_ids(&self, count: i64) -> Result<(i64, i64), String> {
        match self
            .submit(ControllerRequest::AllocateProducerIds { count })
            .await
        {
            Ok(ControllerReply::ProducerIds { first, count }) => Ok((first, count)),
            Ok(other) => Err(format!("unexpected controller reply {other:?}")),
            Err(e) => Err(e.message),
        }
    }

    /// Housekeeping of the logs whose timers fired (roll, retention, flush, producer
    /// expiry, compaction); each then arms its next deadline.
    pub fn housekeeping(&self, due: &[Arc<Partition>]) {
        for p in due {
            let done = p.housekeep();
            match done.deleted {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(topic = %p.topic, partition = p.index, segments = n, "deleted segments past retention")
                }
                Err(e) => {
                    tracing::error!(topic = %p.topic, partition = p.index, error = %e, "log housekeeping failed")
                }
            }
            if let Err(e) = done.compacted {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "log compaction failed")
            }
        }
    }

    /// Arm `partition`'s timers on this broker's, and have its log looked at now.
    pub(super) fn attach_timers(&self, partition: &Partition) {
        let check_ms =
            i64::try_from(self.config.log_retention_check_interval_ms.max(10)).unwrap_or(i64::MAX);
        partition.timer.attach(
            self.timers.clone(),
            &partition.topic,
            partition.index,
            check_ms,
        );
        partition.timer.arm_log_now(self.clock.now_ms());
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
        self.metrics
            .offline_replicas
            .set(i64::try_from(self.offline.len()).unwrap_or(i64::MAX));
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

/// The errors `ControllerRequest::Records` answers when its records do not apply to
/// the controller's image: nothing was committed.
fn refused_by_check(e: &AdminError) -> bool {
    matches!(
        e.code,
        ResponseError::TopicAlreadyExists
            | ResponseError::UnknownTopicOrPartition
            | ResponseError::InvalidRequest
    )
}

/// The broker's segment files: at most `max_open` unpinned ones, and fewer when the
/// active segments' pinned files take the descriptors the process may open (its limit
/// was raised to the hard limit before this runs).
fn log_storage(max_open: usize) -> crate::log::LogStorage {
    let storage = crate::log::LogStorage::new(crate::storage::Disk::real(), max_open);
    use nix::sys::resource::{getrlimit, Resource};
    if let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let limit = usize::try_from(soft).unwrap_or(usize::MAX);
        storage.handles.limit_to_descriptors(limit);
    }
    storage
}
