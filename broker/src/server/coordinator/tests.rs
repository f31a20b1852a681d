//! The coordinator runtime against real partitions.

use bytes::Bytes;

use super::*;
use crate::group::{OffsetValue, OFFSETS_TOPIC};
use crate::log::LogConfig;
use crate::replication::BrokerEpoch;

fn offset_record(partition: i32, offset: i64) -> GroupRecord {
    GroupRecord::Offset {
        group: "g".into(),
        topic: "t".into(),
        partition,
        value: Some(OffsetValue {
            offset,
            leader_epoch: 1,
            metadata: "m".into(),
            commit_timestamp_ms: 5,
        }),
    }
}

pub(super) fn open(
    dir: &std::path::Path,
    topic_id: Uuid,
    index: i32,
    epoch: i32,
) -> Arc<Partition> {
    Arc::new(
        Partition::open(
            dir,
            OFFSETS_TOPIC,
            topic_id,
            index,
            epoch,
            LogConfig::default(),
            crate::clock::SystemClock::shared(),
        )
        .inspect(|p| p.lead_alone(1))
        .unwrap(),
    )
}

fn commit(group: &str, partition: i32, offset: i64) -> CommitRequest {
    CommitRequest {
        group_id: group.into(),
        member_id: String::new(),
        group_instance_id: None,
        generation_id: -1,
        offsets: vec![(
            "t".into(),
            partition,
            OffsetValue {
                offset,
                leader_epoch: 1,
                metadata: "m".into(),
                commit_timestamp_ms: 5,
            },
        )],
    }
}

/// (partition, offset) of every offset group "g" committed.
fn committed(shard: &Shard) -> Vec<(i32, i64)> {
    let mut got: Vec<(i32, i64)> = shard
        .fetch_offsets("g", None)
        .unwrap()
        .into_iter()
        .filter_map(|(_, p, v)| Some((p, v?.offset)))
        .collect();
    got.sort_unstable();
    got
}

#[tokio::test]
async fn become_leader_loads_the_whole_log_including_past_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), Uuid::new_v4(), 0, 3);
    append(
        &p,
        &[offset_record(0, 10), offset_record(1, 11)],
        0,
        i64::MAX,
    )
    .unwrap();
    // Written by the previous leader but not yet known committed here: a new
    // leader's whole log is committed, so the load must see it.
    append_with(&[offset_record(1, 12)], 0, None, |batch, _| {
        p.with_log_mut(|l| l.append_as_leader(batch, 3, 0))
            .map(|_| ())
    })
    .unwrap();
    assert!(p.high_watermark() < p.with_log(|l| l.log_end_offset()));

    let rt = GroupRuntime::new(GroupConfig::default());
    rt.become_leader(p.clone());
    let shard = rt.shard(0).unwrap();
    assert_eq!(committed(&shard), vec![(0, 10), (1, 12)]);
    assert_eq!(rt.list().len(), 1);

    // A new commit is appended to the partition and survives a reload.
    shard.commit(commit("g", 2, 20)).await.unwrap();
    let again = GroupRuntime::new(GroupConfig::default());
    again.become_leader(p);
    assert_eq!(
        committed(&again.shard(0).unwrap()),
        vec![(0, 10), (1, 12), (2, 20)]
    );
}

#[tokio::test]
async fn requests_for_shards_not_loaded_here_get_not_coordinator() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), Uuid::new_v4(), 4, 0);
    let rt = GroupRuntime::new(GroupConfig::default());
    assert_eq!(rt.shard(4).err(), Some(ResponseError::NotCoordinator));

    let load = rt.begin_load(&p, 0).unwrap();
    assert_eq!(
        rt.shard(4).err(),
        Some(ResponseError::CoordinatorLoadInProgress)
    );
    // A second leadership call at the same epoch while loading does nothing.
    assert_eq!(rt.begin_load(&p, 0), None);
    assert!(rt.finish_load(
        p.clone(),
        load,
        GroupCoordinator::new(GroupConfig::default())
    ));
    let shard = rt.shard(4).unwrap();
    shard.commit(commit("g", 0, 7)).await.unwrap();
    assert_eq!(rt.shard(3).err(), Some(ResponseError::NotCoordinator));

    rt.resign(4);
    assert_eq!(rt.shard(4).err(), Some(ResponseError::NotCoordinator));
    assert!(rt.list().is_empty());
    // A request that found the shard just before the resign acts on nothing.
    assert_eq!(
        shard.heartbeat("g", "m", None, 1),
        Some(ResponseError::NotCoordinator)
    );
    assert_eq!(
        shard.commit(commit("g", 0, 8)).await,
        Err(ResponseError::NotCoordinator)
    );
    assert_eq!(
        shard.fetch_offsets("g", None).err(),
        Some(ResponseError::NotCoordinator)
    );
    assert_eq!(p.with_log(|l| l.log_end_offset()), 1);
}

#[test]
fn a_load_overtaken_by_a_resign_is_not_installed() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), Uuid::new_v4(), 0, 0);
    let rt = GroupRuntime::new(GroupConfig::default());
    let load = rt.begin_load(&p, 0).unwrap();
    rt.resign(0);
    assert!(!rt.finish_load(p, load, GroupCoordinator::new(GroupConfig::default())));
    assert_eq!(rt.shard(0).err(), Some(ResponseError::NotCoordinator));
}

#[tokio::test]
async fn resign_answers_parked_joins_not_coordinator() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), Uuid::new_v4(), 0, 0);
    let rt = GroupRuntime::new(GroupConfig::default());
    rt.become_leader(p);
    let shard = rt.shard(0).unwrap();
    let join = tokio::spawn({
        let shard = shard.clone();
        async move {
            shard
                .join(JoinRequest {
                    group_id: "g".into(),
                    member_id: String::new(),
                    group_instance_id: None,
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    session_timeout_ms: 10_000,
                    rebalance_timeout_ms: 60_000,
                    protocol_type: "consumer".into(),
                    protocols: vec![("range".into(), Bytes::new())],
                    require_known_member_id: false,
                    new_member_id: "c-1".into(),
                })
                .await
        }
    });
    // The first member of an empty group waits out group.initial.rebalance.delay.ms.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while shard.state.lock().joins.is_empty() {
        assert!(std::time::Instant::now() < deadline, "join never parked");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!join.is_finished());
    rt.resign(0);
    let result = tokio::time::timeout(Duration::from_secs(10), join)
        .await
        .expect("resign answers the parked join")
        .unwrap();
    assert_eq!(result.error, Some(ResponseError::NotCoordinator));
}

/// A `__consumer_offsets` partition led by broker 1 with followers 2 and 3 in the
/// ISR and min.insync.replicas 2, coordinating its groups.
fn replicated_shard(dir: &std::path::Path) -> (Arc<Partition>, Arc<Shard>) {
    use crate::replication::leader::LeaderConfig;
    use crate::replication::PartitionRegistration;
    let p = Arc::new(
        Partition::open(
            dir,
            OFFSETS_TOPIC,
            Uuid::new_v4(),
            0,
            0,
            LogConfig::default(),
            crate::clock::SystemClock::shared(),
        )
        .unwrap(),
    );
    let registration = PartitionRegistration::of(&[1, 2, 3], &[1, 2, 3], 1, 0, 0);
    let config = LeaderConfig {
        min_insync_replicas: 2,
        ..LeaderConfig::default()
    };
    p.make_leader(1, config, registration);
    let rt = GroupRuntime::new(GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    });
    rt.become_leader(p.clone());
    let shard = rt.shard(0).unwrap();
    (p, shard)
}

fn join_request(group: &str) -> JoinRequest {
    JoinRequest {
        group_id: group.into(),
        member_id: String::new(),
        group_instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::new())],
        require_known_member_id: false,
        new_member_id: "c-1".into(),
    }
}

/// The leader's SyncGroup of a one-member group, in a task: its assignment is
/// written to the partition and the answer waits for the ISR.
async fn sync_alone(
    shard: &Arc<Shard>,
    p: &Partition,
    group: &str,
) -> tokio::task::JoinHandle<SyncResult> {
    let joined = shard.join(join_request(group)).await;
    assert_eq!(joined.error, None);
    let before = p.log_end_offset();
    let sync = tokio::spawn({
        let shard = shard.clone();
        let member = joined.member_id.clone();
        let group = group.to_string();
        async move {
            shard
                .sync(
                    SyncRequest {
                        group_id: group,
                        member_id: member.clone(),
                        group_instance_id: None,
                        generation_id: joined.generation_id,
                        protocol_type: None,
                        protocol_name: None,
                        assignments: vec![(member, Bytes::from_static(b"all of it"))],
                    },
                    Duration::from_secs(10),
                )
                .await
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while p.log_end_offset() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "assignment never written"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sync
}

#[tokio::test]
async fn a_sync_is_answered_once_the_isr_holds_the_assignment() {
    use crate::replication::leader::FollowerFetch;
    use crate::replication::LeaderEpoch;
    let dir = tempfile::tempdir().unwrap();
    let (p, shard) = replicated_shard(dir.path());
    let sync = sync_alone(&shard, &p, "g").await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        !sync.is_finished(),
        "answered before the followers had the assignment"
    );
    for replica in [2, 3] {
        let fetch = FollowerFetch {
            replica,
            current_leader_epoch: LeaderEpoch(0),
            fetch_offset: p.log_end_offset(),
            last_fetched_epoch: 0,
            broker_epoch: Some(BrokerEpoch(0)),
            isr_eligible: true,
        };
        p.follower_fetch(&fetch, 1 << 20);
    }
    let result = tokio::time::timeout(Duration::from_secs(10), sync)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result.error, None);
    assert_eq!(&result.assignment[..], b"all of it");
}

#[tokio::test]
async fn a_sync_whose_assignment_fell_below_min_insync_replicas_is_refused_and_the_group_rebalances(
) {
    use crate::replication::leader::LeaderConfig;
    use crate::replication::PartitionRegistration;
    let dir = tempfile::tempdir().unwrap();
    let (p, shard) = replicated_shard(dir.path());
    let sync = sync_alone(&shard, &p, "g").await;
    // The controller takes the silent followers out of the ISR.
    let shrunk = PartitionRegistration::of(&[1, 2, 3], &[1], 1, 0, 1);
    let config = LeaderConfig {
        min_insync_replicas: 2,
        ..LeaderConfig::default()
    };
    p.make_leader(1, config, shrunk);
    let result = tokio::time::timeout(Duration::from_secs(10), sync)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result.error, Some(ResponseError::CoordinatorNotAvailable));
    assert!(result.assignment.is_empty());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let state = shard.describe("g").unwrap().state;
        if state == crate::group::GroupState::PreparingRebalance {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "group stayed {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A commit now is refused before anything is written.
    let end = p.log_end_offset();
    assert_eq!(
        shard.commit(commit("h", 0, 1)).await,
        Err(ResponseError::CoordinatorNotAvailable)
    );
    assert_eq!(p.log_end_offset(), end);
}

#[tokio::test]
async fn a_newer_leader_epoch_reloads_and_the_same_epoch_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let topic_id = Uuid::new_v4();
    let p0 = open(dir.path(), topic_id, 0, 0);
    let rt = GroupRuntime::new(GroupConfig::default());
    rt.become_leader(p0.clone());
    let first = rt.shard(0).unwrap();
    first.commit(commit("g", 0, 5)).await.unwrap();
    rt.become_leader(p0.clone());
    assert!(Arc::ptr_eq(&first, &rt.shard(0).unwrap()));

    // The same log at a newer leader epoch (another Partition over a copy, as
    // the partition's epoch only changes through the replication runtime).
    let copy = tempfile::tempdir().unwrap();
    let name = format!("{OFFSETS_TOPIC}-0");
    std::fs::create_dir(copy.path().join(&name)).unwrap();
    for f in std::fs::read_dir(dir.path().join(&name)).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), copy.path().join(&name).join(f.file_name())).unwrap();
    }
    let p1 = open(copy.path(), topic_id, 0, 1);
    rt.become_leader(p1);
    let second = rt.shard(0).unwrap();
    assert!(!Arc::ptr_eq(&first, &second));
    assert_eq!(second.leader_epoch, 1);
    assert_eq!(committed(&second), vec![(0, 5)]);
    assert_eq!(
        first.commit(commit("g", 0, 6)).await,
        Err(ResponseError::NotCoordinator)
    );
    // A late call for the older epoch does not take the shard back.
    rt.become_leader(p0);
    assert!(Arc::ptr_eq(&second, &rt.shard(0).unwrap()));
}

#[test]
fn records_are_appended_as_one_batch_and_read_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(
        dir.path(),
        OFFSETS_TOPIC,
        uuid::Uuid::new_v4(),
        0,
        0,
        LogConfig::default(),
        crate::clock::SystemClock::shared(),
    )
    .unwrap();
    p.lead_alone(1);
    let first: Vec<GroupRecord> = (0..5)
        .map(|i| offset_record(i, 10 + i64::from(i)))
        .collect();
    // The log takes exactly one batch per append: five records must be one batch.
    append(&p, &first, 0, i64::MAX).unwrap();
    let tombstone = GroupRecord::Offset {
        group: "g".into(),
        topic: "t".into(),
        partition: 0,
        value: None,
    };
    append(&p, std::slice::from_ref(&tombstone), 0, i64::MAX).unwrap();
    assert_eq!(p.high_watermark(), 6);
    let mut got = Vec::new();
    assert_eq!(read_partition(&p, |r| got.push(r)).unwrap(), 6);
    let mut expected = first;
    expected.push(tombstone);
    let expected: Vec<LoadEvent> = expected.into_iter().map(LoadEvent::Record).collect();
    assert_eq!(got, expected);
}
