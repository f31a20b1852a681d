use std::collections::BTreeMap;

use uuid::Uuid;

use super::*;
use crate::metadata::image::MetadataImage;
use crate::replication::leader::AlterPartitionRequest;
use crate::replication::{Isr, LeaderEpoch, PartitionEpoch, TopicPartition};

const TOPIC: Uuid = Uuid::from_u128(7);

fn placed(partition: i32, replicas: &[i32]) -> PartitionState {
    PartitionState {
        partition,
        leader: replicas[0],
        leader_epoch: 0,
        replicas: replicas.to_vec(),
        isr: replicas.to_vec(),
        partition_epoch: 0,
        adding_replicas: vec![],
        removing_replicas: vec![],
        offline_replicas: vec![],
    }
}

/// Topic "t": partition 0 led by 1 on {1, 2, 3}; partition 1 led by 2 on {2, 3},
/// with 4 being added.
fn image() -> MetadataImage {
    let mut image = MetadataImage::default();
    let mut p1 = placed(1, &[2, 3, 4]);
    p1.isr = vec![2, 3];
    p1.adding_replicas = vec![4];
    image
        .apply(&MetadataRecord::TopicCreated {
            name: "t".into(),
            id: TOPIC,
            partitions: vec![placed(0, &[1, 2, 3]), p1],
            configs: BTreeMap::new(),
        })
        .unwrap();
    image
}

fn voters() -> BTreeSet<i32> {
    BTreeSet::from([1, 2, 3])
}

fn decide(caller: Option<Caller>, call: InternalCall<'_>) -> Result<(), Refusal> {
    authorize(caller, &call, &Roles { voters: &voters() })
}

fn alter(partition: i32) -> ControllerRequest {
    ControllerRequest::AlterPartitions(vec![AlterPartitionRequest {
        partition: TopicPartition {
            topic_id: TOPIC,
            partition,
        },
        leader_epoch: LeaderEpoch(0),
        partition_epoch: PartitionEpoch(0),
        new_isr: Isr::new(vec![1]),
        added_epochs: vec![],
    }])
}

const N: fn(i32) -> Option<Caller> = |n| Some(Caller::Node(n));

#[test]
fn raft_messages_only_from_voters_in_their_own_name() {
    assert_eq!(decide(N(2), InternalCall::Raft { sender: Some(2) }), Ok(()));
    assert_eq!(decide(N(2), InternalCall::Raft { sender: None }), Ok(()));
    assert_eq!(
        decide(N(4), InternalCall::Raft { sender: Some(4) }),
        Err(Refusal::NotAVoter(4))
    );
    assert_eq!(
        decide(N(2), InternalCall::Raft { sender: Some(3) }),
        Err(Refusal::ClaimsAnotherNode {
            caller: 2,
            claimed: 3
        })
    );
}

#[test]
fn a_broker_registers_and_heartbeats_only_for_itself() {
    assert_eq!(
        decide(N(3), InternalCall::RegisterBroker { broker: 3 }),
        Ok(())
    );
    assert_eq!(
        decide(N(2), InternalCall::RegisterBroker { broker: 3 }),
        Err(Refusal::ClaimsAnotherNode {
            caller: 2,
            claimed: 3
        })
    );
    assert_eq!(
        decide(N(2), InternalCall::BrokerHeartbeat { broker: 2 }),
        Ok(())
    );
    assert!(decide(N(2), InternalCall::BrokerHeartbeat { broker: 1 }).is_err());
    // The quorum probe of a starting voter names no broker.
    assert_eq!(
        decide(N(2), InternalCall::BrokerHeartbeat { broker: -1 }),
        Ok(())
    );
}

#[test]
fn controller_requests_only_in_the_callers_own_name() {
    let submit = |caller, broker, request: Option<&ControllerRequest>| {
        decide(N(caller), InternalCall::Submit { broker, request })
    };
    // Whether node 2 leads the partition is the controller's to judge, with the
    // proved id: here only the name is checked.
    assert_eq!(submit(2, 2, Some(&alter(0))), Ok(()));
    assert_eq!(submit(3, 3, Some(&ControllerRequest::Sync)), Ok(()));
    // Not in another's name, not even the leader's.
    assert_eq!(
        submit(2, 1, Some(&alter(0))),
        Err(Refusal::ClaimsAnotherNode {
            caller: 2,
            claimed: 1
        })
    );
    // Undecodable, in its own name: left to the controller to refuse.
    assert_eq!(submit(2, 2, None), Ok(()));
    assert!(submit(2, 3, None).is_err());
}

#[test]
fn brokers_submit_admin_records_only() {
    let records = |r: MetadataRecord| ControllerRequest::Records(vec![r]);
    let submit_as = |caller: Option<Caller>, request: &ControllerRequest| {
        decide(
            caller,
            InternalCall::Submit {
                broker: 2,
                request: Some(request),
            },
        )
    };
    let create = records(MetadataRecord::TopicCreated {
        name: "u".into(),
        id: Uuid::from_u128(8),
        partitions: vec![placed(0, &[2, 3]), placed(1, &[3, 1])],
        configs: BTreeMap::new(),
    });
    let configs = records(MetadataRecord::TopicConfigsSet {
        topic_id: TOPIC,
        configs: BTreeMap::new(),
    });
    let delete = records(MetadataRecord::TopicDeleted { topic_id: TOPIC });
    for ok in [&create, &configs, &delete] {
        assert_eq!(submit_as(N(2), ok), Ok(()));
        assert_eq!(submit_as(Some(Caller::Unauthenticated), ok), Ok(()));
    }
    // The forgery that made a lagging follower the sole ISR member and leader is
    // refused whoever sends it, even on a plaintext plane.
    let mut forged = placed(0, &[1, 2, 3]);
    forged.leader = 3;
    forged.isr = vec![3];
    forged.leader_epoch = 5;
    let forged = records(MetadataRecord::PartitionChanged {
        topic_id: TOPIC,
        partition: forged,
    });
    for caller in [N(2), Some(Caller::Unauthenticated)] {
        assert_eq!(
            submit_as(caller, &forged),
            Err(Refusal::ControllerRecord("PartitionChanged"))
        );
    }
    for (record, what) in [
        (
            MetadataRecord::BrokerUnfenced {
                broker: 3,
                broker_epoch: 1,
            },
            "broker registration",
        ),
        (
            MetadataRecord::BrokerUnregistered { broker: 1 },
            "broker registration",
        ),
        (
            MetadataRecord::ProducerIdsReserved {
                next_producer_id: 0,
            },
            "ProducerIdsReserved",
        ),
    ] {
        assert_eq!(
            submit_as(N(2), &records(record)),
            Err(Refusal::ControllerRecord(what))
        );
    }
    // One forged record spoils the batch.
    let ControllerRequest::Records(mut batch) = configs.clone() else {
        unreachable!()
    };
    let ControllerRequest::Records(bad) = forged else {
        unreachable!()
    };
    batch.extend(bad);
    assert!(submit_as(N(2), &ControllerRequest::Records(batch)).is_err());
}

#[test]
fn new_partitions_come_as_placed() {
    let create = |p: PartitionState| {
        check_broker_records(&[MetadataRecord::PartitionsCreated {
            topic_id: TOPIC,
            partitions: vec![placed(2, &[1, 2]), p],
        }])
    };
    assert_eq!(create(placed(3, &[3, 1])), Ok(()));
    let mut unplaced = Vec::new();
    let mut p = placed(3, &[3, 1]);
    p.leader = 1;
    unplaced.push(p);
    let mut p = placed(3, &[3, 1]);
    p.isr = vec![3];
    unplaced.push(p);
    let mut p = placed(3, &[3, 1]);
    p.leader_epoch = 4;
    unplaced.push(p);
    let mut p = placed(3, &[3, 1]);
    p.partition_epoch = 1;
    unplaced.push(p);
    let mut p = placed(3, &[3, 3]);
    p.isr = vec![3, 3];
    unplaced.push(p);
    let mut p = placed(3, &[3, 1]);
    p.offline_replicas = vec![1];
    unplaced.push(p);
    let mut p = placed(3, &[3, 1]);
    p.adding_replicas = vec![1];
    unplaced.push(p);
    let mut p = placed(3, &[1]);
    p.replicas.clear();
    p.isr.clear();
    unplaced.push(p);
    for p in unplaced {
        let shown = format!("{p:?}");
        assert!(
            matches!(
                create(p),
                Err(Refusal::UnplacedPartition { partition: 3, .. })
            ),
            "{shown}"
        );
    }
}

#[test]
fn followers_fetch_only_partitions_they_replicate() {
    let image = image();
    let topic = image.topic_by_id(&TOPIC).unwrap();
    let (p0, p1) = (&topic.partitions[0], &topic.partitions[1]);
    let fetch = |caller, replica, partition| {
        decide(N(caller), InternalCall::ReplicaFetch { replica, partition })
    };
    assert_eq!(fetch(3, 3, Some(p0)), Ok(()));
    // An adding replica fetches before it is in the replica set's ISR.
    assert_eq!(fetch(4, 4, Some(p1)), Ok(()));
    assert_eq!(fetch(4, 4, Some(p0)), Err(Refusal::NotAReplica(4)));
    assert_eq!(fetch(4, 4, None), Err(Refusal::NotAReplica(4)));
    // The forgery: a peer claiming to be follower 3.
    assert_eq!(
        fetch(4, 3, Some(p0)),
        Err(Refusal::ClaimsAnotherNode {
            caller: 4,
            claimed: 3
        })
    );
}

#[test]
fn only_the_leader_of_a_transaction_state_partition_writes_markers() {
    let image = image();
    let led_by_1 = &image.topic_by_id(&TOPIC).unwrap().partitions[0];
    let markers = |caller, coordinator, state_partition| {
        decide(
            N(caller),
            InternalCall::WriteTxnMarkers {
                coordinator,
                state_partition,
            },
        )
    };
    assert_eq!(markers(1, 1, Some(led_by_1)), Ok(()));
    // A follower of the partition, and a broker naming a partition that does not exist.
    assert_eq!(
        markers(2, 2, Some(led_by_1)),
        Err(Refusal::NotTheCoordinator(2))
    );
    assert_eq!(markers(1, 1, None), Err(Refusal::NotTheCoordinator(1)));
    // A peer in the leader's name.
    assert_eq!(
        markers(2, 1, Some(led_by_1)),
        Err(Refusal::ClaimsAnotherNode {
            caller: 2,
            claimed: 1
        })
    );
}

#[test]
fn a_plaintext_plane_takes_peers_at_their_word_and_no_identity_is_nobody() {
    let unauthenticated = Some(Caller::Unauthenticated);
    assert_eq!(
        decide(unauthenticated, InternalCall::RegisterBroker { broker: 3 }),
        Ok(())
    );
    assert_eq!(
        decide(
            unauthenticated,
            InternalCall::ReplicaFetch {
                replica: 3,
                partition: None
            }
        ),
        Ok(())
    );
    assert_eq!(
        decide(None, InternalCall::RegisterBroker { broker: 3 }),
        Err(Refusal::NoIdentity)
    );
    assert_eq!(
        decide(None, InternalCall::Raft { sender: Some(1) }),
        Err(Refusal::NoIdentity)
    );
}

#[test]
fn every_refusal_reads_the_same() {
    let status = denied();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert_eq!(status.message(), "permission denied");
}
