//! The coordinator driven event by event; each test asserts the exact actions.

use bytes::Bytes;
use kafka_protocol::error::ResponseError as E;

use super::*;

const G: &str = "g";
const SESSION: i32 = 10_000;
const REBALANCE: i32 = 8_000;

fn config(initial_delay_ms: i64) -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: initial_delay_ms,
        ..GroupConfig::default()
    }
}

fn coordinator() -> GroupCoordinator {
    GroupCoordinator::new(config(0))
}

fn protocols(names: &[&str]) -> Vec<(String, Bytes)> {
    names
        .iter()
        .map(|n| (n.to_string(), Bytes::from(format!("meta-{n}"))))
        .collect()
}

fn join(member_id: &str, new_id: &str) -> JoinRequest {
    JoinRequest {
        group_id: G.into(),
        member_id: member_id.into(),
        group_instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        protocol_type: "consumer".into(),
        protocols: protocols(&["range"]),
        require_known_member_id: false,
        new_member_id: new_id.into(),
    }
}

fn static_join(member_id: &str, new_id: &str, instance: &str) -> JoinRequest {
    JoinRequest {
        group_instance_id: Some(instance.into()),
        ..join(member_id, new_id)
    }
}

fn sync(member_id: &str, generation_id: i32, assignments: &[(&str, &str)]) -> SyncRequest {
    SyncRequest {
        group_id: G.into(),
        member_id: member_id.into(),
        group_instance_id: None,
        generation_id,
        protocol_type: None,
        protocol_name: None,
        assignments: assignments
            .iter()
            .map(|(m, a)| (m.to_string(), Bytes::from(a.to_string())))
            .collect(),
    }
}

fn ok_join(member: &str, generation: i32, leader: &str, members: &[&str]) -> JoinResult {
    JoinResult {
        error: None,
        generation_id: generation,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        leader: leader.into(),
        member_id: member.into(),
        skip_assignment: false,
        members: members
            .iter()
            .map(|m| JoinedMember {
                member_id: m.to_string(),
                group_instance_id: None,
                metadata: Bytes::from_static(b"meta-range"),
            })
            .collect(),
    }
}

fn ok_sync(assignment: &str) -> SyncResult {
    SyncResult {
        error: None,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignment: Bytes::from(assignment.to_string()),
    }
}

fn persisted(actions: &[Action]) -> Vec<GroupRecord> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Persist(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn without_persist(actions: Vec<Action>) -> Vec<Action> {
    actions
        .into_iter()
        .filter(|a| !matches!(a, Action::Persist(_)))
        .collect()
}

fn state(c: &GroupCoordinator) -> GroupState {
    c.group(G).map_or(GroupState::Dead, |g| g.state())
}

#[test]
fn java_hash_places_groups_like_kafka() {
    assert_eq!(java_string_hash("abc"), 96354);
    assert_eq!(partition_for("abc", 50), 96354 % 50);
    // Integer.MIN_VALUE: Kafka's Utils.abs maps it to 0.
    assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
    assert_eq!(partition_for("polygenelubricants", 50), 0);
    // Negative hashes use the absolute value.
    let h = java_string_hash("consumer-group-negative-zz");
    assert_eq!(partition_for("consumer-group-negative-zz", 7), h.abs() % 7);
}

#[test]
fn member_id_required_round_trip_then_generation_one() {
    let mut c = coordinator();
    let first = JoinRequest {
        require_known_member_id: true,
        ..join("", "m-1")
    };
    // KIP-394: the unknown member gets its id and nothing is added yet.
    assert_eq!(
        c.join(first, 1, 0),
        vec![Action::Join {
            request: 1,
            result: JoinResult::error(E::MemberIdRequired, "m-1")
        }]
    );
    assert_eq!(state(&c), GroupState::Empty);
    assert_eq!(c.group(G).unwrap().member_count(), 0);
    let again = JoinRequest {
        require_known_member_id: true,
        ..join("m-1", "unused")
    };
    assert_eq!(
        c.join(again, 2, 10),
        vec![Action::Join {
            request: 2,
            result: ok_join("m-1", 1, "m-1", &["m-1"])
        }]
    );
    assert_eq!(state(&c), GroupState::CompletingRebalance);
    assert_eq!(c.rebalances_total(), 1);
}

#[test]
fn pending_member_that_never_rejoins_expires() {
    let mut c = coordinator();
    let first = JoinRequest {
        require_known_member_id: true,
        ..join("", "m-1")
    };
    c.join(first, 1, 0);
    assert!(c.tick(i64::from(SESSION) - 1).is_empty());
    assert!(c.tick(i64::from(SESSION)).is_empty());
    // Its id is no longer reserved.
    let late = JoinRequest {
        require_known_member_id: true,
        ..join("m-1", "x")
    };
    assert_eq!(
        c.join(late, 2, i64::from(SESSION) + 1),
        vec![Action::Join {
            request: 2,
            result: JoinResult::error(E::UnknownMemberId, "m-1")
        }]
    );
}

#[test]
fn initial_rebalance_delay_gathers_members_and_extends() {
    let mut c = GroupCoordinator::new(config(3000));
    assert!(c.join(join("", "a"), 1, 0).is_empty());
    assert_eq!(state(&c), GroupState::PreparingRebalance);
    // b arrives within the delay: the delay is extended once more.
    assert!(c.join(join("", "b"), 2, 1000).is_empty());
    assert!(c.tick(2999).is_empty());
    assert!(c.tick(3000).is_empty(), "extended because b joined");
    assert!(c.tick(5999).is_empty());
    let actions = c.tick(6000);
    assert_eq!(
        actions,
        vec![
            Action::Join {
                request: 1,
                result: ok_join("a", 1, "a", &["a", "b"])
            },
            Action::Join {
                request: 2,
                result: ok_join("b", 1, "a", &[])
            },
        ]
    );
}

#[test]
fn first_join_without_delay_completes_at_once_and_second_rebalances() {
    let mut c = coordinator();
    assert_eq!(
        c.join(join("", "a"), 1, 0),
        vec![Action::Join {
            request: 1,
            result: ok_join("a", 1, "a", &["a"])
        }]
    );
    let actions = c.sync(sync("a", 1, &[("a", "A")]), 2, 0);
    assert_eq!(
        without_persist(actions),
        vec![Action::Sync {
            request: 2,
            result: ok_sync("A")
        }]
    );
    // b joins: a must rejoin; its heartbeat says so.
    assert!(c.join(join("", "b"), 3, 5).is_empty());
    assert_eq!(state(&c), GroupState::PreparingRebalance);
    assert_eq!(
        c.heartbeat(G, "a", None, 1, 6),
        Some(E::RebalanceInProgress)
    );
    let actions = c.join(join("a", ""), 4, 7);
    assert_eq!(
        actions,
        vec![
            Action::Join {
                request: 4,
                result: ok_join("a", 2, "a", &["a", "b"])
            },
            Action::Join {
                request: 3,
                result: ok_join("b", 2, "a", &[])
            },
        ]
    );
    // The follower's sync parks until the leader's arrives.
    assert!(c.sync(sync("b", 2, &[]), 5, 8).is_empty());
    assert_eq!(
        c.heartbeat(G, "b", None, 2, 8),
        None,
        "CompletingRebalance heartbeats are fine"
    );
    let actions = c.sync(sync("a", 2, &[("a", "A2"), ("b", "B2")]), 6, 9);
    let records = persisted(&actions);
    assert_eq!(records.len(), 1);
    assert!(
        matches!(&records[0], GroupRecord::Group { value: Some(v), .. } if v.generation_id == 2 && v.members.len() == 2)
    );
    assert_eq!(
        without_persist(actions),
        vec![
            Action::Sync {
                request: 6,
                result: ok_sync("A2")
            },
            Action::Sync {
                request: 5,
                result: ok_sync("B2")
            },
        ]
    );
    assert_eq!(c.heartbeat(G, "b", None, 2, 10), None);
    assert_eq!(c.heartbeat(G, "b", None, 1, 10), Some(E::IllegalGeneration));
    assert_eq!(c.heartbeat(G, "zz", None, 2, 10), Some(E::UnknownMemberId));
    assert_eq!(
        c.heartbeat("nope", "b", None, 2, 10),
        Some(E::UnknownMemberId)
    );
}

#[test]
fn stable_pair_helper_sets_up_two_members() {
    let mut c = GroupCoordinator::new(config(3000));
    // With an initial delay both members land in generation 1.
    assert!(c.join(join("", "a"), 1, 0).is_empty());
    assert!(c.join(join("", "b"), 2, 0).is_empty());
    assert!(c.tick(3000).is_empty());
    let actions = c.tick(6000);
    assert_eq!(actions.len(), 2);
    assert!(c.sync(sync("b", 1, &[]), 3, 6000).is_empty());
    c.sync(sync("a", 1, &[("a", "A"), ("b", "B")]), 4, 6000);
    assert_eq!(state(&c), GroupState::Stable);
}

fn stable_two(now: i64) -> GroupCoordinator {
    let mut c = GroupCoordinator::new(config(3000));
    c.join(join("", "a"), 1, now);
    c.join(join("", "b"), 2, now);
    c.tick(now + 3000);
    c.tick(now + 6000);
    c.sync(sync("b", 1, &[]), 3, now + 6000);
    c.sync(sync("a", 1, &[("a", "A"), ("b", "B")]), 4, now + 6000);
    assert_eq!(state(&c), GroupState::Stable);
    c
}

#[test]
fn session_timeout_evicts_a_silent_member() {
    let mut c = stable_two(0);
    let t = 6000;
    // a keeps heartbeating, b is silent.
    assert_eq!(c.heartbeat(G, "a", None, 1, t + 9000), None);
    assert!(c.tick(t + i64::from(SESSION) - 1).is_empty());
    assert!(c.tick(t + i64::from(SESSION)).is_empty());
    assert_eq!(state(&c), GroupState::PreparingRebalance);
    assert_eq!(c.group(G).unwrap().member_count(), 1);
    assert_eq!(
        c.heartbeat(G, "a", None, 1, t + 10_001),
        Some(E::RebalanceInProgress)
    );
    assert_eq!(
        c.join(join("a", ""), 9, t + 10_002),
        vec![Action::Join {
            request: 9,
            result: ok_join("a", 2, "a", &["a"])
        }]
    );
    assert_eq!(
        c.heartbeat(G, "b", None, 1, t + 10_003),
        Some(E::UnknownMemberId)
    );
}

#[test]
fn rebalance_timeout_removes_members_that_do_not_rejoin() {
    let mut c = stable_two(0);
    let t = 7000;
    // a changes its subscription: a rebalance starts; b never rejoins (but stays
    // alive by heartbeating, as a stuck poll loop would).
    let mut changed = join("a", "");
    changed.protocols = vec![("range".into(), Bytes::from_static(b"meta-range-2"))];
    assert!(c.join(changed, 10, t).is_empty());
    assert_eq!(
        c.heartbeat(G, "b", None, 1, t + 5000),
        Some(E::RebalanceInProgress)
    );
    assert!(c.tick(t + i64::from(REBALANCE) - 1).is_empty());
    let actions = c.tick(t + i64::from(REBALANCE));
    let mut expected = ok_join("a", 2, "a", &["a"]);
    expected.members[0].metadata = Bytes::from_static(b"meta-range-2");
    assert_eq!(
        actions,
        vec![Action::Join {
            request: 10,
            result: expected
        }]
    );
    assert_eq!(c.group(G).unwrap().member_count(), 1);
}

#[test]
fn leader_leaving_hands_leadership_on() {
    let mut c = stable_two(0);
    let (errors, actions) = c.leave(
        G,
        &[MemberRef {
            member_id: "a".into(),
            group_instance_id: None,
        }],
        7000,
    );
    assert_eq!(errors, vec![None]);
    assert!(actions.is_empty());
    assert_eq!(c.group(G).unwrap().leader(), Some("b"));
    assert_eq!(
        c.join(join("b", ""), 11, 7001),
        vec![Action::Join {
            request: 11,
            result: ok_join("b", 2, "b", &["b"])
        }]
    );
}

#[test]
fn batched_leave_reports_per_member_and_last_leave_empties_the_group() {
    let mut c = stable_two(0);
    let (errors, actions) = c.leave(
        G,
        &[
            MemberRef {
                member_id: "a".into(),
                group_instance_id: None,
            },
            MemberRef {
                member_id: "nobody".into(),
                group_instance_id: None,
            },
            MemberRef {
                member_id: "b".into(),
                group_instance_id: None,
            },
        ],
        7000,
    );
    assert_eq!(errors, vec![None, Some(E::UnknownMemberId), None]);
    // No member left: the join phase completes at once, into an Empty generation 2.
    assert_eq!(state(&c), GroupState::Empty);
    let records = persisted(&actions);
    assert!(
        matches!(&records[..], [GroupRecord::Group { value: Some(v), .. }] if v.generation_id == 2 && v.members.is_empty())
    );
    assert_eq!(
        c.leave(
            "missing",
            &[MemberRef {
                member_id: "a".into(),
                group_instance_id: None
            }],
            1
        )
        .0,
        vec![Some(E::UnknownMemberId)]
    );
}

#[test]
fn join_errors() {
    let mut c = coordinator();
    let mut short = join("", "a");
    short.session_timeout_ms = 5999;
    assert_eq!(
        c.join(short, 1, 0),
        vec![Action::Join {
            request: 1,
            result: JoinResult::error(E::InvalidSessionTimeout, "")
        }]
    );
    let mut long = join("", "a");
    long.session_timeout_ms = 1_800_001;
    assert_eq!(
        c.join(long, 2, 0),
        vec![Action::Join {
            request: 2,
            result: JoinResult::error(E::InvalidSessionTimeout, "")
        }]
    );
    assert_eq!(
        c.join(join("ghost", ""), 3, 0),
        vec![Action::Join {
            request: 3,
            result: JoinResult::error(E::UnknownMemberId, "ghost")
        }]
    );
    let mut no_protocols = join("", "a");
    no_protocols.protocols.clear();
    assert_eq!(
        c.join(no_protocols, 4, 0),
        vec![Action::Join {
            request: 4,
            result: JoinResult::error(E::InconsistentGroupProtocol, "")
        }]
    );
    let mut no_group = join("", "a");
    no_group.group_id.clear();
    assert_eq!(
        c.join(no_group, 5, 0),
        vec![Action::Join {
            request: 5,
            result: JoinResult::error(E::InvalidGroupId, "")
        }]
    );
    // A member whose protocols share nothing with the group's is refused.
    c.join(join("", "a"), 6, 0);
    let mut other = join("", "b");
    other.protocols = protocols(&["roundrobin"]);
    assert_eq!(
        c.join(other, 7, 0),
        vec![Action::Join {
            request: 7,
            result: JoinResult::error(E::InconsistentGroupProtocol, "")
        }]
    );
    let mut other_type = join("", "b");
    other_type.protocol_type = "connect".into();
    assert_eq!(
        c.join(other_type, 8, 0),
        vec![Action::Join {
            request: 8,
            result: JoinResult::error(E::InconsistentGroupProtocol, "")
        }]
    );
}

#[test]
fn protocol_is_chosen_by_member_votes_among_common_ones() {
    let mut c = GroupCoordinator::new(config(3000));
    let mut a = join("", "a");
    a.protocols = protocols(&["cooperative-sticky", "range"]);
    let mut b = join("", "b");
    b.protocols = protocols(&["range", "cooperative-sticky", "roundrobin"]);
    let mut d = join("", "d");
    d.protocols = protocols(&["range", "cooperative-sticky"]);
    c.join(a, 1, 0);
    c.join(b, 2, 0);
    c.join(d, 3, 0);
    c.tick(3000);
    let actions = c.tick(6000);
    let Action::Join { result, .. } = &actions[0] else {
        panic!("{actions:?}")
    };
    // range: 2 votes (b, d); cooperative-sticky: 1 (a). roundrobin is not common.
    assert_eq!(result.protocol_name.as_deref(), Some("range"));
    assert_eq!(
        result.members[0].metadata,
        Bytes::from_static(b"meta-range")
    );
}

#[test]
fn sync_errors() {
    let mut c = stable_two(0);
    let t = 7000;
    assert_eq!(
        c.sync(sync("a", 0, &[]), 1, t),
        vec![Action::Sync {
            request: 1,
            result: SyncResult::error(E::IllegalGeneration)
        }]
    );
    assert_eq!(
        c.sync(sync("x", 1, &[]), 2, t),
        vec![Action::Sync {
            request: 2,
            result: SyncResult::error(E::UnknownMemberId)
        }]
    );
    let mut wrong = sync("a", 1, &[]);
    wrong.protocol_name = Some("roundrobin".into());
    assert_eq!(
        c.sync(wrong, 3, t),
        vec![Action::Sync {
            request: 3,
            result: SyncResult::error(E::InconsistentGroupProtocol)
        }]
    );
    // Stable: a sync returns the member's assignment at once.
    assert_eq!(
        c.sync(sync("b", 1, &[]), 4, t),
        vec![Action::Sync {
            request: 4,
            result: ok_sync("B")
        }]
    );
    // PreparingRebalance: the member must rejoin first.
    c.join(join("", "c"), 5, t);
    assert_eq!(
        c.sync(sync("b", 1, &[]), 6, t),
        vec![Action::Sync {
            request: 6,
            result: SyncResult::error(E::RebalanceInProgress)
        }]
    );
}

#[test]
fn parked_syncs_are_failed_when_a_rebalance_interrupts() {
    let mut c = GroupCoordinator::new(config(3000));
    c.join(join("", "a"), 1, 0);
    c.join(join("", "b"), 2, 0);
    c.tick(3000);
    c.tick(6000);
    assert!(c.sync(sync("b", 1, &[]), 3, 6001).is_empty());
    // A new member arrives before the leader syncs.
    assert_eq!(
        c.join(join("", "c"), 4, 6002),
        vec![Action::Sync {
            request: 3,
            result: SyncResult::error(E::RebalanceInProgress)
        }]
    );
    assert_eq!(state(&c), GroupState::PreparingRebalance);
}

#[test]
fn members_that_never_sync_are_removed_after_the_rebalance_timeout() {
    let mut c = GroupCoordinator::new(config(3000));
    c.join(join("", "a"), 1, 0);
    c.join(join("", "b"), 2, 0);
    c.tick(3000);
    c.tick(6000);
    c.sync(sync("a", 1, &[("a", "A"), ("b", "B")]), 3, 6001);
    assert_eq!(state(&c), GroupState::Stable);
    // b never syncs but heartbeats; at the deadline it is removed and a rebalances.
    assert_eq!(c.heartbeat(G, "b", None, 1, 10_000), None);
    assert!(c.tick(6000 + i64::from(REBALANCE) - 1).is_empty());
    assert!(c.tick(6000 + i64::from(REBALANCE)).is_empty());
    assert_eq!(state(&c), GroupState::PreparingRebalance);
    assert_eq!(c.group(G).unwrap().member_count(), 1);
}

/// Static members a1 (instance ia, leader) and b1 (ib), Stable in generation 1 at 6000.
fn stable_static_pair() -> GroupCoordinator {
    let mut c = GroupCoordinator::new(config(3000));
    c.join(static_join("", "a1", "ia"), 1, 0);
    c.join(static_join("", "b1", "ib"), 2, 0);
    c.tick(3000);
    c.tick(6000);
    c.sync(sync("b1", 1, &[]), 3, 6000);
    c.sync(sync("a1", 1, &[("a1", "A"), ("b1", "B")]), 4, 6000);
    c
}

#[test]
fn static_member_restart_keeps_its_assignment_without_rebalance() {
    let mut c = stable_static_pair();
    let rebalances = c.rebalances_total();
    // b restarts: new member id, same instance id and protocols.
    let actions = c.join(static_join("", "b2", "ib"), 5, 7000);
    let records = persisted(&actions);
    assert!(
        matches!(&records[..], [GroupRecord::Group { value: Some(v), .. }]
        if v.members.iter().any(|m| m.member_id == "b2" && m.assignment == Bytes::from_static(b"B")))
    );
    let mut expected = ok_join("b2", 1, "a1", &[]);
    expected.members.clear();
    assert_eq!(
        without_persist(actions),
        vec![Action::Join {
            request: 5,
            result: expected
        }]
    );
    assert_eq!(state(&c), GroupState::Stable);
    assert_eq!(c.rebalances_total(), rebalances);
    let mut s = sync("b2", 1, &[]);
    s.group_instance_id = Some("ib".into());
    assert_eq!(
        c.sync(s, 6, 7001),
        vec![Action::Sync {
            request: 6,
            result: ok_sync("B")
        }]
    );
    // The old member id is fenced everywhere.
    assert_eq!(
        c.heartbeat(G, "b1", Some("ib"), 1, 7002),
        Some(E::FencedInstanceId)
    );
    let commit = CommitRequest {
        group_id: G.into(),
        member_id: "b1".into(),
        group_instance_id: Some("ib".into()),
        generation_id: 1,
        offsets: vec![],
    };
    assert_eq!(c.commit(commit, 7003), Err(E::FencedInstanceId));
    let mut stale = static_join("b1", "", "ib");
    stale.group_instance_id = Some("ib".into());
    assert_eq!(
        c.join(stale, 7, 7004),
        vec![Action::Join {
            request: 7,
            result: JoinResult::error(E::FencedInstanceId, "b1")
        }]
    );
    let (errors, _) = c.leave(
        G,
        &[MemberRef {
            member_id: "b1".into(),
            group_instance_id: Some("ib".into()),
        }],
        7005,
    );
    assert_eq!(errors, vec![Some(E::FencedInstanceId)]);
}

#[test]
fn static_leader_restart_is_told_to_skip_assignment() {
    let mut c = GroupCoordinator::new(config(0));
    c.join(static_join("", "a1", "ia"), 1, 0);
    c.sync(sync("a1", 1, &[("a1", "A")]), 2, 0);
    let actions = without_persist(c.join(static_join("", "a2", "ia"), 3, 10));
    let Action::Join { result, .. } = &actions[0] else {
        panic!()
    };
    assert_eq!(result.leader, "a2");
    assert!(result.skip_assignment);
    assert_eq!(result.members.len(), 1);
    assert_eq!(result.generation_id, 1);
}

#[test]
fn static_member_with_new_protocols_triggers_a_rebalance_and_fences_the_parked_old_one() {
    let mut c = GroupCoordinator::new(config(3000));
    c.join(static_join("", "a1", "ia"), 1, 0);
    c.join(static_join("", "b1", "ib"), 2, 0);
    c.tick(3000);
    c.tick(6000);
    c.sync(sync("a1", 1, &[("a1", "A"), ("b1", "B")]), 3, 6000);
    // a1 rejoins (parked) and then a new instance of ia appears with other protocols.
    let mut changed = static_join("a1", "", "ia");
    changed.protocols = protocols(&["range", "roundrobin"]);
    assert!(c.join(changed.clone(), 4, 6001).is_empty());
    let mut new_instance = changed;
    new_instance.member_id.clear();
    new_instance.new_member_id = "a2".into();
    let actions = c.join(new_instance, 5, 6002);
    assert_eq!(
        actions,
        vec![Action::Join {
            request: 4,
            result: JoinResult::error(E::FencedInstanceId, "a1")
        }]
    );
    assert_eq!(c.group(G).unwrap().leader(), Some("a2"));
}

fn commit(member: &str, generation: i32, offset: i64) -> CommitRequest {
    CommitRequest {
        group_id: G.into(),
        member_id: member.into(),
        group_instance_id: None,
        generation_id: generation,
        offsets: vec![(
            "t".into(),
            0,
            OffsetValue {
                offset,
                leader_epoch: 3,
                metadata: "m".into(),
                commit_timestamp_ms: 100,
            },
        )],
    }
}

#[test]
fn offset_commit_validation() {
    let mut c = coordinator();
    // Unknown group: only a simple commit may create it.
    assert_eq!(c.commit(commit("a", 1, 5), 0), Err(E::IllegalGeneration));
    let actions = c.commit(commit("", -1, 5), 0).unwrap();
    assert_eq!(
        actions,
        vec![Action::Persist(GroupRecord::Offset {
            group: G.into(),
            topic: "t".into(),
            partition: 0,
            value: Some(OffsetValue {
                offset: 5,
                leader_epoch: 3,
                metadata: "m".into(),
                commit_timestamp_ms: 100
            })
        })]
    );
    assert_eq!(
        c.fetch_offsets(G, Some(&[("t".into(), 0), ("t".into(), 1)]))[1].2,
        None
    );
    assert_eq!(c.fetch_offsets(G, None)[0].2.as_ref().unwrap().offset, 5);

    // With members: simple commits are refused, stale generations too.
    c.join(join("", "a"), 1, 0);
    assert_eq!(state(&c), GroupState::CompletingRebalance);
    assert_eq!(c.commit(commit("", -1, 6), 1), Err(E::UnknownMemberId));
    assert_eq!(c.commit(commit("a", 1, 6), 1), Err(E::RebalanceInProgress));
    c.sync(sync("a", 1, &[("a", "A")]), 2, 1);
    assert_eq!(c.commit(commit("a", 0, 6), 1), Err(E::IllegalGeneration));
    assert_eq!(c.commit(commit("b", 1, 6), 1), Err(E::UnknownMemberId));
    assert!(c.commit(commit("a", 1, 6), 1).is_ok());
    // During PreparingRebalance the current generation may still commit (eager
    // members commit in onPartitionsRevoked before rejoining).
    c.join(join("", "b"), 3, 2);
    assert_eq!(state(&c), GroupState::PreparingRebalance);
    assert!(c.commit(commit("a", 1, 7), 2).is_ok());
    assert_eq!(c.fetch_offsets(G, None)[0].2.as_ref().unwrap().offset, 7);
    let mut empty_group = commit("", -1, 1);
    empty_group.group_id.clear();
    assert_eq!(c.commit(empty_group, 0), Err(E::InvalidGroupId));
}

#[test]
fn replay_rebuilds_groups_and_offsets() {
    // Everything one coordinator asked to persist, replayed by a new one.
    let mut log = Vec::new();
    let mut d = GroupCoordinator::new(config(3000));
    log.extend(persisted(&d.join(join("", "a"), 1, 0)));
    log.extend(persisted(&d.join(join("", "b"), 2, 0)));
    log.extend(persisted(&d.tick(3000)));
    log.extend(persisted(&d.tick(6000)));
    log.extend(persisted(&d.sync(sync("b", 1, &[]), 3, 6000)));
    log.extend(persisted(&d.sync(
        sync("a", 1, &[("a", "A"), ("b", "B")]),
        4,
        6000,
    )));
    log.extend(persisted(&d.commit(commit("a", 1, 41), 7000).unwrap()));
    log.extend(persisted(&d.commit(commit("a", 1, 42), 7001).unwrap()));
    let mut c2 = GroupCoordinator::new(config(3000));
    for r in log {
        // Through the byte format, as the runtime does.
        let (k, v) = r.encode();
        c2.replay(GroupRecord::decode(&k, v.as_deref()).unwrap(), 50_000);
    }
    let g = c2.group(G).unwrap();
    assert_eq!(g.state(), GroupState::Stable);
    assert_eq!(g.generation_id(), 1);
    assert_eq!(g.leader(), Some("a"));
    assert_eq!(c2.fetch_offsets(G, None)[0].2.as_ref().unwrap().offset, 42);
    assert_eq!(c2.heartbeat(G, "b", None, 1, 50_001), None);
    assert_eq!(
        c2.sync(sync("b", 1, &[]), 9, 50_002),
        vec![Action::Sync {
            request: 9,
            result: ok_sync("B")
        }]
    );
    // Sessions restart at load time: silent members go after a session timeout.
    assert_eq!(
        c2.heartbeat(G, "a", None, 1, 50_000 + i64::from(SESSION) - 1),
        None
    );
    c2.tick(50_002 + i64::from(SESSION));
    assert_eq!(c2.group(G).unwrap().member_count(), 1);
}

#[test]
fn tombstones_replay_as_deletions() {
    let mut c = GroupCoordinator::new(config(0));
    c.replay(
        GroupRecord::Offset {
            group: G.into(),
            topic: "t".into(),
            partition: 0,
            value: Some(OffsetValue {
                offset: 1,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp_ms: 0,
            }),
        },
        0,
    );
    c.replay(
        GroupRecord::Offset {
            group: G.into(),
            topic: "t".into(),
            partition: 0,
            value: None,
        },
        0,
    );
    assert!(c.fetch_offsets(G, None).is_empty());
    c.replay(
        GroupRecord::Group {
            group: G.into(),
            value: None,
        },
        0,
    );
    assert!(c.group(G).is_none());
}

#[test]
fn offsets_expire_once_the_group_has_been_empty_for_the_retention() {
    let mut cfg = config(0);
    cfg.offsets_retention_ms = 1000;
    let mut c = GroupCoordinator::new(cfg);
    c.join(join("", "a"), 1, 0);
    c.sync(sync("a", 1, &[("a", "A")]), 2, 0);
    c.commit(commit("a", 1, 9), 0).unwrap();
    // Stable and subscribed (subscription not parseable here): nothing expires.
    assert!(c.expire_offsets(10_000).is_empty());
    c.leave(
        G,
        &[MemberRef {
            member_id: "a".into(),
            group_instance_id: None,
        }],
        10_000,
    );
    assert_eq!(state(&c), GroupState::Empty);
    assert!(
        c.expire_offsets(10_999).is_empty(),
        "old commit, but empty only since 10000"
    );
    assert_eq!(
        c.expire_offsets(11_000),
        vec![
            Action::Persist(GroupRecord::Offset {
                group: G.into(),
                topic: "t".into(),
                partition: 0,
                value: None
            }),
            Action::Persist(GroupRecord::Group {
                group: G.into(),
                value: None
            }),
        ]
    );
    assert!(c.group(G).is_none());
}

#[test]
fn simple_group_offsets_expire_by_commit_time() {
    let mut cfg = config(0);
    cfg.offsets_retention_ms = 1000;
    let mut c = GroupCoordinator::new(cfg);
    c.commit(commit("", -1, 1), 0).unwrap(); // commit_timestamp 100
    assert!(c.expire_offsets(1099).is_empty());
    assert_eq!(c.expire_offsets(1100).len(), 2);
}

#[test]
fn offsets_of_deleted_topics_are_tombstoned() {
    let mut c = coordinator();
    c.commit(commit("", -1, 1), 0).unwrap();
    assert!(c.remove_offsets_of_deleted_topics(|t| t == "t").is_empty());
    assert_eq!(
        c.remove_offsets_of_deleted_topics(|_| false),
        vec![Action::Persist(GroupRecord::Offset {
            group: G.into(),
            topic: "t".into(),
            partition: 0,
            value: None
        })]
    );
}

fn consumer_subscription(topics: &[&str]) -> Bytes {
    use bytes::BufMut;
    let mut b = bytes::BytesMut::new();
    b.put_i16(0);
    b.put_i32(topics.len() as i32);
    for t in topics {
        b.put_i16(t.len() as i16);
        b.put_slice(t.as_bytes());
    }
    b.put_i32(-1);
    b.freeze()
}

#[test]
fn delete_groups_and_offsets() {
    let mut c = coordinator();
    let mut j = join("", "a");
    j.protocols = vec![("range".into(), consumer_subscription(&["t"]))];
    c.join(j, 1, 0);
    c.sync(sync("a", 1, &[("a", "A")]), 2, 0);
    c.commit(commit("a", 1, 3), 0).unwrap();
    let mut other = commit("a", 1, 4);
    other.offsets[0].0 = "u".into();
    c.commit(other, 0).unwrap();
    assert_eq!(c.delete_group(G), Err(E::NonEmptyGroup));
    assert_eq!(c.delete_group("nope"), Err(E::GroupIdNotFound));
    let (errors, actions) = c
        .delete_offsets(G, &[("t".into(), 0), ("u".into(), 0)])
        .unwrap();
    assert_eq!(errors, vec![Some(E::GroupSubscribedToTopic), None]);
    assert_eq!(
        actions,
        vec![Action::Persist(GroupRecord::Offset {
            group: G.into(),
            topic: "u".into(),
            partition: 0,
            value: None
        })]
    );
    assert_eq!(c.delete_offsets("nope", &[]), Err(E::GroupIdNotFound));
    c.leave(
        G,
        &[MemberRef {
            member_id: "a".into(),
            group_instance_id: None,
        }],
        1,
    );
    let actions = c.delete_group(G).unwrap();
    assert_eq!(
        actions,
        vec![
            Action::Persist(GroupRecord::Offset {
                group: G.into(),
                topic: "t".into(),
                partition: 0,
                value: None
            }),
            Action::Persist(GroupRecord::Group {
                group: G.into(),
                value: None
            }),
        ]
    );
    assert_eq!(c.describe(G).state, GroupState::Dead);
}

#[test]
fn describe_shows_metadata_only_when_stable() {
    let mut c = coordinator();
    c.join(join("", "a"), 1, 0);
    let d = c.describe(G);
    assert_eq!(d.state, GroupState::CompletingRebalance);
    assert_eq!(d.members[0].metadata, Bytes::new());
    c.sync(sync("a", 1, &[("a", "A")]), 2, 0);
    let d = c.describe(G);
    assert_eq!(d.state, GroupState::Stable);
    assert_eq!(d.protocol_name, "range");
    assert_eq!(d.members[0].metadata, Bytes::from_static(b"meta-range"));
    assert_eq!(d.members[0].assignment, Bytes::from_static(b"A"));
}

#[test]
fn silent_static_members_expire_at_their_session_timeout() {
    // KIP-345: a static member sends no LeaveGroup when it shuts down; the coordinator
    // removes it once its session times out, as it does a dynamic member.
    let mut c = stable_static_pair();
    assert_eq!(state(&c), GroupState::Stable);
    // a keeps heartbeating, b is gone.
    let t = 6000 + i64::from(SESSION);
    assert_eq!(c.heartbeat(G, "a1", Some("ia"), 1, t - 1), None);
    c.tick(t);
    assert_eq!(c.group(G).unwrap().member_count(), 1);
    assert_eq!(state(&c), GroupState::PreparingRebalance);
    // a goes too: the group empties and can be deleted.
    c.tick(t + 2 * i64::from(SESSION));
    assert_eq!(c.group(G).unwrap().member_count(), 0);
    assert_eq!(state(&c), GroupState::Empty);
    assert!(c.delete_group(G).is_ok());
}
