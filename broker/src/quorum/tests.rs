//! Quorums in one process on loopback, each with its own data dir and a tonic server
//! serving `routes()`. Waits poll a condition against a deadline.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use kafka_protocol::error::ResponseError;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::*;
use crate::config::{BrokerConfig, Voter};
use crate::metadata::image::{MetadataImage, MetadataRecord};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    broker: BrokerConfig,
}

struct NoApplier;

impl MetadataApplier for NoApplier {
    fn apply(&self, _image: Arc<MetadataImage>) {}
}

struct Node {
    id: i32,
    addr: SocketAddr,
    dir: PathBuf,
    quorum: Arc<Quorum>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

struct Opts {
    voters: Vec<Voter>,
    snapshot_interval: u64,
}

async fn start(id: i32, listener: TcpListener, dir: &Path, opts: &Opts) -> Node {
    let addr = listener.local_addr().unwrap();
    let mut config = Cli::parse_from(["fjord"]).broker;
    config.node_id = id;
    config.data_dir = dir.to_path_buf();
    config.internal_listen = addr;
    config.voters = opts.voters.clone();
    config.broker_heartbeat_interval_ms = 100;
    config.broker_session_timeout_ms = 1_000;
    config.metadata_snapshot_interval_entries = opts.snapshot_interval;
    config.validate().unwrap();
    let quorum = Quorum::start(
        &config,
        Channels::for_config(&config).unwrap(),
        Arc::new(NoApplier),
    )
    .await
    .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let routes = quorum.routes();
    let server = tokio::spawn(async move {
        let incoming = super::internal_tls::incoming(listener, None);
        let _ = tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            })
            .await;
    });
    Node {
        id,
        addr,
        dir: dir.to_path_buf(),
        quorum,
        stop: Some(stop),
        server: Some(server),
    }
}

impl Node {
    /// Stop the quorum and the server, as a process exit would.
    async fn stop(&mut self) {
        self.quorum.shutdown().await;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            // Graceful: peers get GOAWAY and reconnect to the next server on the port.
            if tokio::time::timeout(Duration::from_secs(2), server)
                .await
                .is_err()
            {
                panic!("node {}: server did not stop", self.id);
            }
        }
    }

    async fn restart(&mut self, opts: &Opts) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        let dir = self.dir.clone();
        *self = start(self.id, listener, &dir, opts).await;
    }
}

async fn listeners(n: usize) -> Vec<TcpListener> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    out
}

fn voters_of(listeners: &[TcpListener]) -> Vec<Voter> {
    listeners
        .iter()
        .enumerate()
        .map(|(i, l)| Voter {
            id: i as i32 + 1,
            address: l.local_addr().unwrap().to_string(),
        })
        .collect()
}

/// Options naming the broker on `listener` (id 1) as the only voter; other brokers
/// started with them join as learners.
fn one_voter(listener: &TcpListener, snapshot_interval: u64) -> Opts {
    Opts {
        voters: vec![Voter {
            id: 1,
            address: listener.local_addr().unwrap().to_string(),
        }],
        snapshot_interval,
    }
}

async fn cluster(
    n: usize,
    dirs: &[tempfile::TempDir],
    snapshot_interval: u64,
) -> (Vec<Node>, Opts) {
    let ls = listeners(n).await;
    let opts = Opts {
        voters: voters_of(&ls),
        snapshot_interval,
    };
    let mut nodes = Vec::new();
    for (i, l) in ls.into_iter().enumerate() {
        nodes.push(start(i as i32 + 1, l, dirs[i].path(), &opts).await);
    }
    (nodes, opts)
}

/// Poll `cond` until it holds, failing the test with `what` after `secs`.
async fn until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn within<T>(secs: u64, what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn topic(name: &str) -> ControllerRequest {
    ControllerRequest::Records(vec![MetadataRecord::TopicCreated {
        name: name.into(),
        id: uuid::Uuid::new_v4(),
        partitions: vec![],
        configs: BTreeMap::new(),
    }])
}

const SUBMIT_TIMEOUT: Duration = Duration::from_secs(10);

fn controller_index(nodes: &[Node]) -> Option<usize> {
    nodes.iter().position(|n| n.quorum.status().is_controller)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_elect_register_and_replicate() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (mut nodes, _) = cluster(3, &dirs, 10_000).await;
    for n in &nodes {
        within(15, "brokers ready", n.quorum.wait_ready()).await;
    }
    until(5, "one controller", || controller_index(&nodes).is_some()).await;
    let leader = controller_index(&nodes).unwrap();
    for n in &nodes {
        let image = n.quorum.image();
        let b = image.broker(n.id).expect("registered");
        assert!(!b.fenced, "broker {} unfenced", n.id);
        assert_eq!(Some(b.epoch), n.quorum.broker_epoch());
        let s = n.quorum.status();
        assert_eq!(s.voters, vec![1, 2, 3]);
        assert_eq!(s.controller_id, nodes[leader].id);
    }
    // Submitted on a follower: forwarded, committed, and visible there at once.
    let follower = (leader + 1) % 3;
    let reply = nodes[follower]
        .quorum
        .submit(topic("orders"), SUBMIT_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(reply, ControllerReply::Done);
    assert!(nodes[follower].quorum.image().topic("orders").is_some());
    until(5, "the topic on every node", || {
        nodes
            .iter()
            .all(|n| n.quorum.image().topic("orders").is_some())
    })
    .await;
    // The controller re-checks: the same name again is refused.
    let err = nodes[follower]
        .quorum
        .submit(topic("orders"), SUBMIT_TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(err.code, ResponseError::TopicAlreadyExists);
    // Producer id blocks do not overlap.
    let a = nodes[0]
        .quorum
        .submit(
            ControllerRequest::AllocateProducerIds { count: 10 },
            SUBMIT_TIMEOUT,
        )
        .await
        .unwrap();
    let b = nodes[2]
        .quorum
        .submit(
            ControllerRequest::AllocateProducerIds { count: 10 },
            SUBMIT_TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(
        a,
        ControllerReply::ProducerIds {
            first: 0,
            count: 10
        }
    );
    assert_eq!(
        b,
        ControllerReply::ProducerIds {
            first: 10,
            count: 10
        }
    );
    for n in &mut nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_controller_takes_over_and_a_restarted_node_catches_up() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (mut nodes, opts) = cluster(3, &dirs, 10_000).await;
    for n in &nodes {
        within(15, "brokers ready", n.quorum.wait_ready()).await;
    }
    until(5, "one controller", || controller_index(&nodes).is_some()).await;
    let old = controller_index(&nodes).unwrap();
    let old_id = nodes[old].id;
    nodes[old].stop().await;
    until(10, "a new controller", || {
        nodes
            .iter()
            .enumerate()
            .any(|(i, n)| i != old && n.quorum.status().is_controller)
    })
    .await;
    let other = (old + 1) % 3;
    nodes[other]
        .quorum
        .submit(topic("after-failover"), SUBMIT_TIMEOUT)
        .await
        .unwrap();
    // The old controller's process comes back on its data dir and catches up.
    nodes[old].restart(&opts).await;
    within(15, "restarted broker ready", nodes[old].quorum.wait_ready()).await;
    until(10, "the restarted node to catch up", || {
        nodes[old].quorum.image().topic("after-failover").is_some()
    })
    .await;
    let image = nodes[old].quorum.image();
    let b = image.broker(old_id).unwrap();
    assert_eq!(Some(b.epoch), nodes[old].quorum.broker_epoch());
    assert!(!b.fenced);
    for n in &mut nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_bound_the_log_and_seed_restarts_and_late_learners() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let ls = listeners(2).await;
    let mut ls = ls.into_iter();
    let (l1, l2) = (ls.next().unwrap(), ls.next().unwrap());
    // One voter; the second broker joins later as a learner.
    let opts = one_voter(&l1, 20);
    let mut a = start(1, l1, dirs[0].path(), &opts).await;
    within(10, "voter ready", a.quorum.wait_ready()).await;
    for _ in 0..150 {
        a.quorum
            .submit(
                ControllerRequest::AllocateProducerIds { count: 1 },
                SUBMIT_TIMEOUT,
            )
            .await
            .unwrap();
    }
    let reserved = a.quorum.image().producer_ids_reserved_until;
    assert_eq!(reserved, 150);
    until(5, "the log to be purged", || {
        a.quorum.log_segment_count() <= 4
    })
    .await;
    assert!(dirs[0]
        .path()
        .join("__cluster_metadata/snapshot.json")
        .exists());

    let mut b = start(2, l2, dirs[1].path(), &opts).await;
    within(15, "learner ready", b.quorum.wait_ready()).await;
    assert_eq!(b.quorum.image().producer_ids_reserved_until, reserved);
    let s = b.quorum.status();
    assert_eq!((s.voters, s.learners), (vec![1], vec![2]));

    a.stop().await;
    b.stop().await;
    // A restart starts from the snapshot plus the log after it.
    a.restart(&opts).await;
    assert!(a.quorum.image().producer_ids_reserved_until >= 130);
    within(10, "voter ready again", a.quorum.wait_ready()).await;
    assert_eq!(a.quorum.image().producer_ids_reserved_until, reserved);
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_whose_heartbeats_stop_is_fenced() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (mut nodes, _) = cluster(3, &dirs, 10_000).await;
    for n in &nodes {
        within(15, "brokers ready", n.quorum.wait_ready()).await;
    }
    until(5, "one controller", || controller_index(&nodes).is_some()).await;
    let leader = controller_index(&nodes).unwrap();
    let silent = (leader + 1) % 3;
    let silent_id = nodes[silent].id;
    let epoch = nodes[silent].quorum.broker_epoch().unwrap();
    nodes[silent].stop().await;
    let stopped_at = Instant::now();
    until(10, "the silent broker fenced", || {
        nodes[leader]
            .quorum
            .image()
            .broker(silent_id)
            .is_some_and(|b| b.fenced && b.epoch == epoch)
    })
    .await;
    // Not before its session (1 s) ran out.
    assert!(stopped_at.elapsed() >= Duration::from_millis(900));
    for (i, n) in nodes.iter_mut().enumerate() {
        if i != silent {
            n.stop().await;
        }
    }
}

/// A one-voter cluster in `dir`, its broker ready; the nodes must outlive the test.
async fn one_ready_node(dir: &tempfile::TempDir) -> (Vec<Node>, Arc<Quorum>) {
    let (nodes, _) = cluster(1, std::slice::from_ref(dir), 10_000).await;
    let q = nodes[0].quorum.clone();
    within(15, "broker ready", q.wait_ready()).await;
    (nodes, q)
}

/// Heartbeats have their own queue at the controller, served first: one sent behind
/// a queue of commits is answered before the commits are through, so a broker is not
/// fenced (nor fences itself) while its controller works through a burst of ISR
/// changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_does_not_wait_behind_queued_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (_nodes, q) = one_ready_node(&dir).await;
    const QUEUED: usize = 200;
    let submits: Vec<_> = (0..QUEUED)
        .map(|i| {
            let q = q.clone();
            tokio::spawn(async move { q.submit(topic(&format!("t{i}")), SUBMIT_TIMEOUT).await })
        })
        .collect();
    until(10, "the first commits", || q.image().topics().count() > 0).await;
    let call = controller::Call::Heartbeat(pb::BrokerHeartbeatRequest {
        broker_id: 1,
        broker_epoch: q.broker_epoch().unwrap(),
        want_fence: false,
        want_shut_down: false,
    });
    let answer = q.controller_service().handle(call).await;
    let created = q.image().topics().count();
    assert!(
        matches!(&answer, controller::Answer::Heartbeat(a) if a.error_code == 0),
        "{answer:?}"
    );
    assert!(
        created < QUEUED,
        "the heartbeat was answered after all {QUEUED} queued commits"
    );
    for s in submits {
        within(30, "the queued commits", s).await.unwrap().unwrap();
    }
    assert_eq!(q.image().topics().count(), QUEUED);
}

/// The ISR changes a broker sends together are decided one by one and committed as
/// one entry; a request over the bound is refused whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isr_changes_sent_together_are_answered_each_and_committed_as_one_entry() {
    use crate::replication::cluster_state::partition_state;
    use crate::replication::{
        Isr, LeaderEpoch, PartitionEpoch, PartitionRegistration, TopicPartition,
    };
    let dir = tempfile::tempdir().unwrap();
    let (_nodes, q) = one_ready_node(&dir).await;
    let topic_id = uuid::Uuid::new_v4();
    let partition = |index| partition_state(index, &PartitionRegistration::of(&[1], &[1], 1, 0, 0));
    let create = ControllerRequest::Records(vec![MetadataRecord::TopicCreated {
        name: "isr".into(),
        id: topic_id,
        partitions: vec![partition(0), partition(1)],
        configs: BTreeMap::new(),
    }]);
    q.submit(create, SUBMIT_TIMEOUT).await.unwrap();
    let change = |index, leader_epoch| AlterPartitionRequest {
        partition: TopicPartition {
            topic_id,
            partition: index,
        },
        leader_epoch: LeaderEpoch(leader_epoch),
        partition_epoch: PartitionEpoch(0),
        new_isr: Isr::new(vec![1]),
        added_epochs: vec![],
    };
    let before = q.sm.image_index();
    let reply = q
        .submit(
            ControllerRequest::AlterPartitions(vec![change(0, 0), change(1, 7)]),
            SUBMIT_TIMEOUT,
        )
        .await
        .unwrap();
    let ControllerReply::Partitions(answers) = reply else {
        panic!("{reply:?}");
    };
    assert_eq!(answers.len(), 2);
    assert_eq!(
        answers[0].as_ref().map(|r| r.partition_epoch),
        Ok(PartitionEpoch(1))
    );
    assert_eq!(answers[1], Err(ResponseError::FencedLeaderEpoch.code()));
    assert_eq!(q.sm.image_index(), before + 1, "one entry for the batch");

    let too_many = vec![change(0, 0); controller::MAX_ALTER_PARTITIONS + 1];
    let refused = q
        .submit(ControllerRequest::AlterPartitions(too_many), SUBMIT_TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(refused.code, ResponseError::InvalidRequest);
    assert_eq!(q.sm.image_index(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_voter_cluster_grows_to_three_voters() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let ls = listeners(3).await;
    let all = voters_of(&ls);
    let one = Opts {
        voters: all[..1].to_vec(),
        snapshot_interval: 10_000,
    };
    let three = Opts {
        voters: all.clone(),
        snapshot_interval: 10_000,
    };
    let mut ls = ls.into_iter();
    let mut first = start(1, ls.next().unwrap(), dirs[0].path(), &one).await;
    within(10, "first voter ready", first.quorum.wait_ready()).await;
    first
        .quorum
        .submit(topic("before-growth"), SUBMIT_TIMEOUT)
        .await
        .unwrap();
    // The new brokers are started with the longer list; they join the running quorum.
    let mut second = start(2, ls.next().unwrap(), dirs[1].path(), &three).await;
    let mut third = start(3, ls.next().unwrap(), dirs[2].path(), &three).await;
    until(20, "three voters", || {
        first.quorum.status().voters == vec![1, 2, 3]
    })
    .await;
    for n in [&second, &third] {
        within(10, "new voter ready", n.quorum.wait_ready()).await;
        assert!(n.quorum.image().topic("before-growth").is_some());
    }
    // The first broker restarts with the longer list too.
    first.stop().await;
    first.restart(&three).await;
    within(15, "first voter ready again", first.quorum.wait_ready()).await;
    second
        .quorum
        .submit(topic("after-growth"), SUBMIT_TIMEOUT)
        .await
        .unwrap();
    until(5, "the topic on the first voter", || {
        first.quorum.image().topic("after-growth").is_some()
    })
    .await;
    for n in [&mut first, &mut second, &mut third] {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_learner_leaves_the_quorum_and_voters_stay() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let ls = listeners(2).await;
    let mut ls = ls.into_iter();
    let (l1, l2) = (ls.next().unwrap(), ls.next().unwrap());
    let opts = one_voter(&l1, 10_000);
    let mut voter = start(1, l1, dirs[0].path(), &opts).await;
    within(10, "voter ready", voter.quorum.wait_ready()).await;
    let mut learner = start(2, l2, dirs[1].path(), &opts).await;
    within(15, "learner ready", learner.quorum.wait_ready()).await;
    assert_eq!(voter.quorum.status().learners, vec![2]);

    let refused = voter
        .quorum
        .submit(
            ControllerRequest::UnregisterBroker { broker: 1 },
            SUBMIT_TIMEOUT,
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code, ResponseError::InvalidRequest, "{refused:?}");
    assert!(refused.message.contains("voter"), "{refused:?}");

    learner.stop().await;
    voter
        .quorum
        .submit(
            ControllerRequest::UnregisterBroker { broker: 2 },
            SUBMIT_TIMEOUT,
        )
        .await
        .unwrap();
    assert!(voter.quorum.image().broker(2).is_none());
    until(10, "the learner out of the membership", || {
        voter.quorum.status().learners.is_empty()
    })
    .await;
    assert_eq!(voter.quorum.status().voters, vec![1]);
    voter.stop().await;
}
