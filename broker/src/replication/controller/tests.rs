use super::*;
use crate::metadata::image::{MetadataImage, PartitionState};
use crate::replication::cluster_state::{partition_state, UNCLEAN_LEADER_ELECTION};

const TOPIC: Uuid = Uuid::from_u128(7);
const TP: TopicPartition = TopicPartition {
    topic_id: TOPIC,
    partition: 0,
};
const SESSION_MS: i64 = 9_000;

fn heartbeat(broker: BrokerId, epoch: i64) -> Heartbeat {
    Heartbeat {
        broker,
        broker_epoch: BrokerEpoch(epoch),
        want_fence: false,
        want_shut_down: false,
    }
}

fn reg(
    replicas: &[BrokerId],
    isr: &[BrokerId],
    leader: BrokerId,
    le: i32,
    pe: i32,
) -> PartitionRegistration {
    PartitionRegistration::of(replicas, isr, leader, le, pe)
}

fn changed(registration: PartitionRegistration) -> ControllerRecord {
    ControllerRecord::PartitionChanged {
        partition: TP,
        registration,
    }
}

/// Brokers 1..=n registered (epochs 0..n) and unfenced at time 0, and topic TOPIC with
/// one partition on replicas [1, 2, 3] led by 1.
fn cluster(n: i32, configs: &[(&str, &str)]) -> Controller {
    let mut c = Controller::new(ControllerConfig::default(), ClusterState::default(), 0);
    for b in 1..=n {
        let (epoch, _) = c.register_broker(0, b, None);
        c.heartbeat(0, heartbeat(b, epoch.0)).0.unwrap();
    }
    let configs = configs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    c.create_topic("orders", TOPIC, 1, 3, configs, 0).unwrap();
    assert_eq!(
        c.state().partition(&TP),
        Some(&reg(&[1, 2, 3], &[1, 2, 3], 1, 0, 0))
    );
    c
}

/// The broker epochs the members of `cluster` registered with.
fn registered(members: &[BrokerId]) -> Vec<(BrokerId, BrokerEpoch)> {
    members
        .iter()
        .map(|&b| (b, BrokerEpoch(i64::from(b) - 1)))
        .collect()
}

/// Everyone but `silent` heartbeats at `now`, then the controller ticks.
fn tick_without(c: &mut Controller, now: i64, silent: &[BrokerId]) -> Vec<ControllerRecord> {
    let brokers: Vec<(BrokerId, BrokerEpoch)> =
        c.state().brokers().map(|(b, r)| (b, r.epoch)).collect();
    for (b, epoch) in brokers {
        if !silent.contains(&b) {
            c.heartbeat(now, heartbeat(b, epoch.0)).0.unwrap();
        }
    }
    c.tick(now)
}

#[test]
fn a_registered_broker_is_fenced_until_a_heartbeat_says_it_caught_up() {
    let mut c = Controller::new(ControllerConfig::default(), ClusterState::default(), 0);
    let (epoch, records) = c.register_broker(0, 1, Some("a".into()));
    assert_eq!(
        records,
        vec![ControllerRecord::BrokerRegistered {
            broker: 1,
            broker_epoch: BrokerEpoch(0),
            rack: Some("a".into())
        }]
    );
    let behind = Heartbeat {
        want_fence: true,
        ..heartbeat(1, epoch.0)
    };
    let (reply, records) = c.heartbeat(1, behind);
    assert!(reply.unwrap().is_fenced);
    assert_eq!(records, vec![]);
    let (reply, records) = c.heartbeat(2, heartbeat(1, epoch.0));
    assert!(!reply.unwrap().is_fenced);
    assert_eq!(
        records,
        vec![ControllerRecord::BrokerUnfenced {
            broker: 1,
            broker_epoch: BrokerEpoch(0)
        }]
    );
    assert_eq!(
        c.heartbeat(3, heartbeat(1, 99)).0,
        Err(ResponseError::StaleBrokerEpoch)
    );
    assert_eq!(
        c.heartbeat(3, heartbeat(5, 0)).0,
        Err(ResponseError::BrokerIdNotRegistered)
    );
}

#[test]
fn a_broker_without_heartbeats_is_fenced_and_loses_leadership_and_isr_membership() {
    let mut c = cluster(3, &[]);
    assert_eq!(
        tick_without(&mut c, SESSION_MS, &[1]),
        vec![],
        "exactly the timeout"
    );
    let records = tick_without(&mut c, SESSION_MS + 1, &[1]);
    assert_eq!(
        records,
        vec![
            ControllerRecord::BrokerFenced {
                broker: 1,
                broker_epoch: BrokerEpoch(0)
            },
            changed(reg(&[1, 2, 3], &[2, 3], 2, 1, 1)),
        ]
    );
}

#[test]
fn the_last_isr_member_stays_and_the_partition_waits_for_it() {
    let mut c = cluster(3, &[]);
    let (result, _) = c.alter_partition(
        1,
        BrokerEpoch(0),
        &AlterPartitionRequest {
            partition: TP,
            leader_epoch: LeaderEpoch(0),
            partition_epoch: PartitionEpoch(0),
            new_isr: Isr::new(vec![1]),
            added_epochs: vec![],
        },
    );
    assert_eq!(result, Ok(reg(&[1, 2, 3], &[1], 1, 0, 1)));
    let records = tick_without(&mut c, SESSION_MS + 1, &[1]);
    assert_eq!(records[1], changed(reg(&[1, 2, 3], &[1], NO_LEADER, 1, 2)));
    // No clean candidate, unclean not allowed: offline until broker 1 is back.
    assert_eq!(tick_without(&mut c, SESSION_MS + 2, &[1]), vec![]);
    let (epoch, _) = c.register_broker(SESSION_MS + 3, 1, None);
    let (_, records) = c.heartbeat(SESSION_MS + 4, heartbeat(1, epoch.0));
    assert_eq!(
        records,
        vec![
            ControllerRecord::BrokerUnfenced {
                broker: 1,
                broker_epoch: epoch
            },
            changed(reg(&[1, 2, 3], &[1], 1, 2, 3)),
        ]
    );
}

#[test]
fn unclean_election_happens_only_when_the_topic_allows_it() {
    for allowed in [false, true] {
        let value = if allowed { "true" } else { "false" };
        let mut c = cluster(3, &[(UNCLEAN_LEADER_ELECTION, value)]);
        c.alter_partition(
            1,
            BrokerEpoch(0),
            &AlterPartitionRequest {
                partition: TP,
                leader_epoch: LeaderEpoch(0),
                partition_epoch: PartitionEpoch(0),
                new_isr: Isr::new(vec![1]),
                added_epochs: vec![],
            },
        )
        .0
        .unwrap();
        let records = tick_without(&mut c, SESSION_MS + 1, &[1]);
        let expected = if allowed {
            // Offline first, then broker 2 elected with only itself in the ISR.
            vec![
                changed(reg(&[1, 2, 3], &[1], NO_LEADER, 1, 2)),
                changed(reg(&[1, 2, 3], &[2], 2, 2, 3)),
            ]
        } else {
            vec![changed(reg(&[1, 2, 3], &[1], NO_LEADER, 1, 2))]
        };
        assert_eq!(records[1..], expected[..], "unclean allowed: {allowed}");
    }
}

#[test]
fn alter_partition_refuses_stale_epochs_strangers_and_ineligible_replicas() {
    let mut c = cluster(4, &[]);
    let request = |isr: &[BrokerId], le: i32, pe: i32| AlterPartitionRequest {
        partition: TP,
        leader_epoch: LeaderEpoch(le),
        partition_epoch: PartitionEpoch(pe),
        new_isr: Isr::new(isr.to_vec()),
        added_epochs: registered(isr),
    };
    let cases = [
        (
            2,
            1,
            request(&[1, 2], 0, 0),
            ResponseError::NotLeaderOrFollower,
        ),
        (
            1,
            9,
            request(&[1, 2], 0, 0),
            ResponseError::StaleBrokerEpoch,
        ),
        (
            1,
            0,
            request(&[1, 2], 1, 0),
            ResponseError::FencedLeaderEpoch,
        ),
        (
            1,
            0,
            request(&[1, 2], 0, 3),
            ResponseError::InvalidUpdateVersion,
        ),
        (1, 0, request(&[2, 3], 0, 0), ResponseError::InvalidRequest),
        (1, 0, request(&[1, 4], 0, 0), ResponseError::InvalidRequest),
    ];
    for (broker, epoch, req, code) in cases {
        let (result, records) = c.alter_partition(broker, BrokerEpoch(epoch), &req);
        assert_eq!(result, Err(code), "{req:?}");
        assert_eq!(records, vec![]);
    }
    // Shrink to [1, 2], then broker 3 is fenced and may not come back (KIP-841).
    c.alter_partition(1, BrokerEpoch(0), &request(&[1, 2], 0, 0))
        .0
        .unwrap();
    tick_without(&mut c, SESSION_MS + 1, &[3]);
    let (result, _) = c.alter_partition(1, BrokerEpoch(0), &request(&[1, 2, 3], 0, 1));
    assert_eq!(result, Err(ResponseError::IneligibleReplica));
    let (result, records) = c.alter_partition(1, BrokerEpoch(0), &request(&[1], 0, 1));
    assert_eq!(result, Ok(reg(&[1, 2, 3], &[1], 1, 0, 2)));
    assert_eq!(records, vec![changed(reg(&[1, 2, 3], &[1], 1, 0, 2))]);
}

/// KIP-903: the leader saw broker 3 fetching, but the fetch came from a process that
/// has since restarted (a long poll that outlived it), whose log may be gone. Adding
/// it needs the broker epoch of its current registration.
#[test]
fn a_replica_is_added_only_with_the_broker_epoch_it_is_registered_with() {
    let mut c = cluster(3, &[]);
    let shrink = AlterPartitionRequest {
        partition: TP,
        leader_epoch: LeaderEpoch(0),
        partition_epoch: PartitionEpoch(0),
        new_isr: Isr::new(vec![1, 2]),
        added_epochs: vec![],
    };
    c.alter_partition(1, BrokerEpoch(0), &shrink).0.unwrap();
    let (restarted, _) = c.register_broker(1, 3, None);
    c.heartbeat(1, heartbeat(3, restarted.0)).0.unwrap();
    let expand = |added_epochs| AlterPartitionRequest {
        partition_epoch: PartitionEpoch(1),
        new_isr: Isr::new(vec![1, 2, 3]),
        added_epochs,
        ..shrink.clone()
    };
    for stale in [vec![(3, BrokerEpoch(2))], vec![]] {
        let (result, records) = c.alter_partition(1, BrokerEpoch(0), &expand(stale.clone()));
        assert_eq!(result, Err(ResponseError::IneligibleReplica), "{stale:?}");
        assert_eq!(records, vec![]);
    }
    let (result, _) = c.alter_partition(1, BrokerEpoch(0), &expand(vec![(3, restarted)]));
    assert_eq!(result, Ok(reg(&[1, 2, 3], &[1, 2, 3], 1, 0, 2)));
}

#[test]
fn controlled_shutdown_moves_leadership_before_the_broker_may_exit() {
    let mut c = cluster(3, &[]);
    let shutting_down = Heartbeat {
        want_shut_down: true,
        ..heartbeat(1, 0)
    };
    let (reply, records) = c.heartbeat(1, shutting_down);
    assert_eq!(
        records,
        vec![
            ControllerRecord::BrokerShuttingDown {
                broker: 1,
                broker_epoch: BrokerEpoch(0)
            },
            changed(reg(&[1, 2, 3], &[2, 3], 2, 1, 1)),
        ]
    );
    assert_eq!(
        reply,
        Ok(HeartbeatReply {
            is_fenced: false,
            should_shut_down: true
        })
    );
    // Preferred-leader election does not bring leadership back to it.
    assert_eq!(tick_without(&mut c, 2, &[]), vec![]);
}

#[test]
fn leadership_returns_to_the_preferred_replica_once_it_is_back_in_the_isr() {
    let mut c = cluster(3, &[]);
    tick_without(&mut c, SESSION_MS + 1, &[1]);
    let (epoch, _) = c.register_broker(SESSION_MS + 2, 1, None);
    c.heartbeat(SESSION_MS + 2, heartbeat(1, epoch.0))
        .0
        .unwrap();
    // Back, but not in the ISR yet: no move.
    assert_eq!(tick_without(&mut c, SESSION_MS + 3, &[]), vec![]);
    let (result, _) = c.alter_partition(
        2,
        BrokerEpoch(1),
        &AlterPartitionRequest {
            partition: TP,
            leader_epoch: LeaderEpoch(1),
            partition_epoch: PartitionEpoch(1),
            new_isr: Isr::new(vec![1, 2, 3]),
            added_epochs: vec![(1, epoch)],
        },
    );
    assert_eq!(result, Ok(reg(&[1, 2, 3], &[1, 2, 3], 2, 1, 2)));
    assert_eq!(
        tick_without(&mut c, SESSION_MS + 4, &[]),
        vec![changed(reg(&[1, 2, 3], &[1, 2, 3], 1, 2, 3))]
    );
}

#[test]
fn reassignment_adds_waits_for_sync_moves_leadership_then_drops_old_replicas() {
    let mut c = cluster(4, &[]);
    let records = c.alter_reassignment(TP, Some(vec![2, 3, 4])).unwrap();
    let mut adding = reg(&[2, 3, 4, 1], &[1, 2, 3], 1, 0, 1);
    adding.adding_replicas = vec![4];
    adding.removing_replicas = vec![1];
    assert_eq!(records, vec![changed(adding.clone())]);
    // Not in sync yet: nothing happens.
    assert_eq!(tick_without(&mut c, 1, &[]), vec![]);
    // The leader adds 4 to the ISR: the reassignment completes in the same answer.
    let (result, records) = c.alter_partition(
        1,
        BrokerEpoch(0),
        &AlterPartitionRequest {
            partition: TP,
            leader_epoch: LeaderEpoch(0),
            partition_epoch: PartitionEpoch(1),
            new_isr: Isr::new(vec![1, 2, 3, 4]),
            added_epochs: vec![(4, BrokerEpoch(3))],
        },
    );
    let synced = PartitionRegistration {
        isr: Isr::new(vec![1, 2, 3, 4]),
        partition_epoch: PartitionEpoch(2),
        ..adding
    };
    let done = reg(&[2, 3, 4], &[2, 3, 4], 2, 1, 3);
    assert_eq!(records, vec![changed(synced), changed(done.clone())]);
    assert_eq!(result, Ok(done));
}

#[test]
fn a_reassignment_can_be_cancelled_back_to_the_original_replicas() {
    let mut c = cluster(4, &[]);
    assert_eq!(
        c.alter_reassignment(TP, None),
        Err(ResponseError::NoReassignmentInProgress)
    );
    c.alter_reassignment(TP, Some(vec![2, 3, 4])).unwrap();
    let records = c.alter_reassignment(TP, None).unwrap();
    assert_eq!(records, vec![changed(reg(&[2, 3, 1], &[1, 2, 3], 1, 0, 2))]);
    assert_eq!(
        c.alter_reassignment(TP, Some(vec![2, 2])),
        Err(ResponseError::InvalidReplicaAssignment)
    );
    assert_eq!(
        c.alter_reassignment(TP, Some(vec![9])),
        Err(ResponseError::InvalidReplicaAssignment)
    );
}

#[test]
fn a_restarted_broker_re_registers_fenced_and_its_leaderships_move_first() {
    let mut c = cluster(3, &[]);
    let (epoch, records) = c.register_broker(5, 1, None);
    assert_eq!(epoch, BrokerEpoch(3));
    assert_eq!(records[1], changed(reg(&[1, 2, 3], &[2, 3], 2, 1, 1)));
    // The old process's requests are stale.
    let (result, _) = c.alter_partition(
        1,
        BrokerEpoch(0),
        &AlterPartitionRequest {
            partition: TP,
            leader_epoch: LeaderEpoch(0),
            partition_epoch: PartitionEpoch(0),
            new_isr: Isr::new(vec![1]),
            added_epochs: vec![],
        },
    );
    assert_eq!(result, Err(ResponseError::StaleBrokerEpoch));
}

#[test]
fn brokers_replaying_the_records_hold_the_controllers_state() {
    let mut c = Controller::new(ControllerConfig::default(), ClusterState::default(), 0);
    let mut log = Vec::new();
    for b in 1..=3 {
        let (epoch, r) = c.register_broker(0, b, None);
        log.extend(r);
        log.extend(c.heartbeat(0, heartbeat(b, epoch.0)).1);
    }
    log.extend(
        c.create_topic("orders", TOPIC, 2, 3, BTreeMap::new(), 1)
            .unwrap(),
    );
    log.extend(tick_without(&mut c, SESSION_MS + 1, &[2]));
    let mut replica = ClusterState::default();
    for r in &log {
        replica.apply(r).unwrap();
    }
    assert_eq!(&replica, c.state());
    // Applying a change twice is a corrupt log, reported.
    assert!(replica.apply(log.last().unwrap()).is_err());
}

#[test]
fn placement_spans_racks_and_spreads_leaders() {
    let brokers: Vec<(BrokerId, Option<String>)> = (1..=6)
        .map(|b| (b, Some(["a", "b", "c"][(b as usize - 1) / 2].to_string())))
        .collect();
    let rack = |b: BrokerId| brokers[b as usize - 1].1.clone().unwrap();
    let placed = place_replicas(&brokers, 12, 3, 0).unwrap();
    let mut leaders = BTreeMap::new();
    let mut pairs = BTreeSet::new();
    for replicas in &placed {
        let racks: BTreeSet<String> = replicas.iter().map(|&b| rack(b)).collect();
        assert_eq!(racks.len(), 3, "{replicas:?} spans every rack");
        *leaders.entry(replicas[0]).or_insert(0) += 1;
        pairs.insert((replicas[0], replicas[1]));
    }
    assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2; 6]);
    assert_eq!(pairs.len(), 12, "the same leader gets other followers");
    // Fewer racks than replicas: every rack first, then any broker, never twice.
    let two_racks: Vec<_> = brokers.iter().take(4).cloned().collect();
    for replicas in place_replicas(&two_racks, 4, 3, 1).unwrap() {
        let racks: BTreeSet<String> = replicas.iter().map(|&b| rack(b)).collect();
        assert_eq!(racks.len(), 2);
        assert_eq!(replicas.iter().collect::<BTreeSet<_>>().len(), 3);
    }
    assert_eq!(
        place_replicas(&brokers, 1, 7, 0),
        Err(ResponseError::InvalidReplicationFactor)
    );
}

#[test]
fn topic_records_update_the_state_as_rereading_the_image_would() {
    let ps = |first: i32, n: i32| -> Vec<PartitionState> {
        (first..first + n)
            .map(|p| partition_state(p, &reg(&[1, 2], &[1], 1, 0, 0)))
            .collect()
    };
    let other = Uuid::from_u128(8);
    let records = vec![
        MetadataRecord::TopicCreated {
            name: "a".into(),
            id: TOPIC,
            partitions: ps(0, 2),
            configs: BTreeMap::new(),
        },
        MetadataRecord::TopicCreated {
            name: "b".into(),
            id: other,
            partitions: ps(0, 1),
            configs: BTreeMap::new(),
        },
        MetadataRecord::PartitionsCreated {
            topic_id: TOPIC,
            partitions: ps(2, 1),
        },
        MetadataRecord::TopicConfigsSet {
            topic_id: TOPIC,
            configs: BTreeMap::from([(UNCLEAN_LEADER_ELECTION.to_string(), "true".to_string())]),
        },
        MetadataRecord::TopicDeleted { topic_id: other },
    ];
    let mut image = MetadataImage::default();
    let mut controller = Controller::new(ControllerConfig::default(), ClusterState::default(), 0);
    for r in &records {
        image.apply(r).unwrap();
        assert!(controller.apply_topic_records(std::slice::from_ref(r)));
        assert_eq!(
            controller.state,
            ClusterState::from_image(&image),
            "after {r:?}"
        );
    }
    assert_eq!(controller.state.partitions().count(), 3);
    // Anything else is left to a reread of the image.
    let other_record = MetadataRecord::ProducerIdsReserved {
        next_producer_id: 10,
    };
    assert!(!controller.apply_topic_records(&[other_record]));
}

fn offline(mut r: PartitionRegistration, brokers: &[BrokerId]) -> PartitionRegistration {
    r.offline_replicas = brokers.to_vec();
    r
}

#[test]
fn an_offline_replica_loses_leadership_and_isr_membership_and_is_not_elected() {
    let mut c = cluster(3, &[]);
    // Broker 1 cannot open its copy: 2 leads, 1 leaves the ISR.
    let records = c.replica_storage(1, BrokerEpoch(0), TP, true).unwrap();
    assert_eq!(
        records,
        vec![changed(offline(reg(&[1, 2, 3], &[2, 3], 2, 1, 1), &[1]))]
    );
    // Reported again: nothing to change.
    assert_eq!(c.replica_storage(1, BrokerEpoch(0), TP, true), Ok(vec![]));
    // The leader may not add it back to the ISR while it is offline.
    let back = AlterPartitionRequest {
        partition: TP,
        leader_epoch: LeaderEpoch(1),
        partition_epoch: PartitionEpoch(1),
        new_isr: Isr::new(vec![1, 2, 3]),
        added_epochs: vec![(1, BrokerEpoch(0))],
    };
    assert_eq!(
        c.alter_partition(2, BrokerEpoch(1), &back).0,
        Err(ResponseError::IneligibleReplica)
    );
    // Nor is it elected when the others go, nor made preferred leader.
    tick_without(&mut c, SESSION_MS + 1, &[2, 3]);
    assert_eq!(
        c.state().partition(&TP),
        Some(&offline(reg(&[1, 2, 3], &[3], NO_LEADER, 3, 3), &[1]))
    );
}

#[test]
fn the_last_isr_member_offline_leaves_the_partition_leaderless_until_it_is_back() {
    let mut c = cluster(3, &[]);
    // 2 and 3 fall out of the ISR; 1 is the last member.
    tick_without(&mut c, SESSION_MS + 1, &[2, 3]);
    let before = c.state().partition(&TP).unwrap().clone();
    assert_eq!((before.leader, before.isr.members()), (1, &[1][..]));
    let records = c.replica_storage(1, BrokerEpoch(0), TP, true).unwrap();
    let mut expected = before.clone();
    expected.leader = NO_LEADER;
    expected.leader_epoch = LeaderEpoch(before.leader_epoch.0 + 1);
    expected.partition_epoch = PartitionEpoch(before.partition_epoch.0 + 1);
    expected.offline_replicas = vec![1];
    assert_eq!(records, vec![changed(expected.clone())]);
    // Its copy is usable again: it leads again, as the ISR's last member.
    let records = c.replica_storage(1, BrokerEpoch(0), TP, false).unwrap();
    let mut again = expected;
    again.leader = 1;
    again.leader_epoch = LeaderEpoch(again.leader_epoch.0 + 1);
    again.partition_epoch = PartitionEpoch(again.partition_epoch.0 + 1);
    again.offline_replicas = vec![];
    assert_eq!(records, vec![changed(again)]);
}

#[test]
fn a_replica_back_online_rejoins_the_isr_by_catching_up() {
    let mut c = cluster(3, &[]);
    c.replica_storage(3, BrokerEpoch(2), TP, true).unwrap();
    let records = c.replica_storage(3, BrokerEpoch(2), TP, false).unwrap();
    // Back, but not in the ISR: the leader adds it once it has caught up.
    assert_eq!(records, vec![changed(reg(&[1, 2, 3], &[1, 2], 1, 0, 2))]);
    let expand = AlterPartitionRequest {
        partition: TP,
        leader_epoch: LeaderEpoch(0),
        partition_epoch: PartitionEpoch(2),
        new_isr: Isr::new(vec![1, 2, 3]),
        added_epochs: vec![(3, BrokerEpoch(2))],
    };
    assert!(c.alter_partition(1, BrokerEpoch(0), &expand).0.is_ok());
    // Reports from a stale process or about unknown partitions are refused.
    assert_eq!(
        c.replica_storage(3, BrokerEpoch(7), TP, true),
        Err(ResponseError::StaleBrokerEpoch)
    );
    let unknown = TopicPartition {
        topic_id: TOPIC,
        partition: 9,
    };
    assert_eq!(
        c.replica_storage(3, BrokerEpoch(2), unknown, true),
        Err(ResponseError::UnknownTopicOrPartition)
    );
}

/// `cluster(3)` without automatic preferred-leader election, so that only ElectLeaders
/// moves leadership back.
fn cluster_without_rebalance() -> Controller {
    let mut c = cluster(3, &[]);
    c.config.auto_leader_rebalance = false;
    c
}

fn elect(c: &mut Controller, election: ElectionType, named: bool) -> Vec<(i32, Option<i16>)> {
    let req = ElectLeaders {
        election,
        partitions: named.then(|| vec![("orders".to_string(), 0), ("orders".to_string(), 9)]),
    };
    c.elect_leaders(&req)
        .0
        .into_iter()
        .map(|(_, p, r)| (p, r.err().map(|(code, _)| code.code())))
        .collect()
}

/// Broker 1 fenced (leadership moves to 2), then back and in the ISR again.
fn preferred_replica_back_in_the_isr(c: &mut Controller) {
    tick_without(c, SESSION_MS + 1, &[1]);
    let (epoch, _) = c.register_broker(SESSION_MS + 2, 1, None);
    c.heartbeat(SESSION_MS + 2, heartbeat(1, epoch.0))
        .0
        .unwrap();
    let (result, _) = c.alter_partition(
        2,
        BrokerEpoch(1),
        &AlterPartitionRequest {
            partition: TP,
            leader_epoch: LeaderEpoch(1),
            partition_epoch: PartitionEpoch(1),
            new_isr: Isr::new(vec![1, 2, 3]),
            added_epochs: vec![(1, epoch)],
        },
    );
    assert_eq!(result, Ok(reg(&[1, 2, 3], &[1, 2, 3], 2, 1, 2)));
    assert_eq!(
        tick_without(c, SESSION_MS + 3, &[]),
        vec![],
        "no automatic move"
    );
}

#[test]
fn preferred_election_moves_leadership_to_the_first_replica_in_the_isr() {
    let mut c = cluster_without_rebalance();
    const UNKNOWN: i16 = 3;
    const NOT_AVAILABLE: i16 = 80;
    const NOT_NEEDED: i16 = 84;
    // Led by its preferred replica: nothing to do, and nothing listed when every
    // partition is asked for.
    assert_eq!(
        elect(&mut c, ElectionType::Preferred, true),
        vec![(0, Some(NOT_NEEDED)), (9, Some(UNKNOWN))]
    );
    assert_eq!(elect(&mut c, ElectionType::Preferred, false), vec![]);
    // Preferred replica fenced: not available.
    tick_without(&mut c, SESSION_MS + 1, &[1]);
    assert_eq!(
        elect(&mut c, ElectionType::Preferred, false),
        vec![(0, Some(NOT_AVAILABLE))]
    );
    let mut c = cluster_without_rebalance();
    preferred_replica_back_in_the_isr(&mut c);
    let (results, records) = c.elect_leaders(&ElectLeaders {
        election: ElectionType::Preferred,
        partitions: None,
    });
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].2, Ok(()));
    assert_eq!(records, vec![changed(reg(&[1, 2, 3], &[1, 2, 3], 1, 2, 3))]);
    assert_eq!(c.state().partition(&TP).unwrap().leader, 1);
}

#[test]
fn unclean_election_only_for_a_partition_without_a_leader() {
    let mut c = cluster_without_rebalance();
    const NOT_NEEDED: i16 = 84;
    const NO_ELIGIBLE: i16 = 83;
    assert_eq!(
        elect(&mut c, ElectionType::Unclean, true)[0],
        (0, Some(NOT_NEEDED))
    );
    // 2 and 3 leave the ISR; then 1, its last member, cannot serve its copy: no leader.
    tick_without(&mut c, SESSION_MS + 1, &[2, 3]);
    let (e2, _) = c.register_broker(SESSION_MS + 2, 2, None);
    c.heartbeat(SESSION_MS + 2, heartbeat(2, e2.0)).0.unwrap();
    c.replica_storage(1, BrokerEpoch(0), TP, true).unwrap();
    let before = c.state().partition(&TP).unwrap().clone();
    assert_eq!((before.leader, before.isr.members()), (NO_LEADER, &[1][..]));
    // The topic does not allow unclean election, but an operator's request does.
    let (results, records) = c.elect_leaders(&ElectLeaders {
        election: ElectionType::Unclean,
        partitions: Some(vec![("orders".to_string(), 0)]),
    });
    assert_eq!(results[0].2, Ok(()));
    let after = c.state().partition(&TP).unwrap().clone();
    assert_eq!((after.leader, after.isr.members()), (2, &[2][..]));
    assert_eq!(after.leader_epoch.0, before.leader_epoch.0 + 1);
    assert_eq!(records, vec![changed(after)]);
    // No replica can serve at all: nothing to elect.
    let mut c = cluster_without_rebalance();
    tick_without(&mut c, SESSION_MS + 1, &[2, 3]);
    c.replica_storage(1, BrokerEpoch(0), TP, true).unwrap();
    assert_eq!(
        elect(&mut c, ElectionType::Unclean, false),
        vec![(0, Some(NO_ELIGIBLE))]
    );
}
