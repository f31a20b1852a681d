use std::collections::HashMap;

use uuid::Uuid;

use super::*;

fn tp(partition: i32) -> TopicPartition {
    TopicPartition {
        topic_id: Uuid::from_u128(7),
        partition,
    }
}

fn at(fetch_offset: i64) -> Position {
    Position {
        current_leader_epoch: LeaderEpoch(3),
        fetch_offset,
        last_fetched_epoch: 3,
        log_start_offset: 0,
    }
}

fn positions(list: &[(i32, i64)]) -> HashMap<TopicPartition, Position> {
    list.iter().map(|&(p, o)| (tp(p), at(o))).collect()
}

fn sorted(mut v: Vec<TopicPartition>) -> Vec<TopicPartition> {
    v.sort_by_key(|t| t.partition);
    v
}

const EPOCH: Option<BrokerEpoch> = Some(BrokerEpoch(10));

/// One round trip through both sides: the follower's request, taken by the leader.
fn round(
    follower: &mut FollowerSession,
    leader: &mut SessionCache,
    now: &HashMap<TopicPartition, Position>,
    touched: &[i32],
) -> (SessionRequest, Result<SessionUpdate, SessionError>) {
    let request = follower.request(now, touched.iter().map(|&p| tp(p)));
    let update = leader.update(0, 2, EPOCH, &request, 77);
    match &update {
        Ok(u) => follower.on_accepted(u.id),
        Err(_) => follower.reset(),
    }
    (request, update)
}

#[test]
fn the_first_request_is_full_and_later_ones_carry_only_what_moved() {
    let (mut f, mut l) = (FollowerSession::default(), SessionCache::default());
    let mut now = positions(&[(0, 5), (1, 5), (2, 5)]);
    let (req, update) = round(&mut f, &mut l, &now, &[]);
    assert!(req.is_full());
    assert_eq!(req.partitions.len(), 3);
    let update = update.unwrap();
    assert!(update.opened);
    assert_eq!(sorted(update.moved), vec![tp(0), tp(1), tp(2)]);

    // Idle: an empty incremental request; the leader sees nothing moved.
    let (req, update) = round(&mut f, &mut l, &now, &[]);
    assert_eq!((req.id, req.epoch, req.partitions.len()), (77, 1, 0));
    assert!(update.unwrap().moved.is_empty());

    // Partition 1 moved; partition 2 was looked at but did not move.
    now.insert(tp(1), at(9));
    let (req, update) = round(&mut f, &mut l, &now, &[1, 2]);
    assert_eq!(req.partitions, vec![(tp(1), at(9))]);
    assert_eq!(req.epoch, 2);
    assert_eq!(update.unwrap().moved, vec![tp(1)]);
    assert_eq!(l.get(2).unwrap().position(&tp(1)), Some(at(9)));
}

#[test]
fn partitions_are_added_and_forgotten_incrementally() {
    let (mut f, mut l) = (FollowerSession::default(), SessionCache::default());
    let mut now = positions(&[(0, 5), (1, 5)]);
    round(&mut f, &mut l, &now, &[]).1.unwrap();
    now.remove(&tp(0));
    now.insert(tp(4), at(0));
    let (req, update) = round(&mut f, &mut l, &now, &[0, 4]);
    assert_eq!(req.partitions, vec![(tp(4), at(0))]);
    assert_eq!(req.forgotten, vec![tp(0)]);
    let update = update.unwrap();
    assert_eq!((update.moved, update.forgotten), (vec![tp(4)], vec![tp(0)]));
    let session = l.get(2).unwrap();
    assert_eq!(session.len(), 2);
    assert_eq!(session.position(&tp(0)), None);
}

#[test]
fn an_answered_partition_is_sent_again_even_at_the_same_position() {
    let (mut f, mut l) = (FollowerSession::default(), SessionCache::default());
    let now = positions(&[(0, 5)]);
    round(&mut f, &mut l, &now, &[]).1.unwrap();
    // The follower dropped the answer (its leader epoch moved, its disk failed):
    // the leader must look at the partition again although the position is the same.
    f.on_answered(&tp(0));
    let (req, update) = round(&mut f, &mut l, &now, &[0]);
    assert_eq!(req.partitions, vec![(tp(0), at(5))]);
    // Same position at the leader: not moved, but carried.
    assert!(update.unwrap().moved.is_empty());
}

#[test]
fn an_epoch_out_of_order_or_an_unknown_session_ends_it_and_the_next_request_is_full() {
    let (mut f, mut l) = (FollowerSession::default(), SessionCache::default());
    let now = positions(&[(0, 5)]);
    round(&mut f, &mut l, &now, &[]).1.unwrap();
    // A replayed request (epoch 1 twice).
    let req = f.request(&now, []);
    l.update(0, 2, EPOCH, &req, 77).unwrap();
    assert_eq!(
        l.update(0, 2, EPOCH, &req, 77),
        Err(SessionError::InvalidEpoch {
            id: 77,
            expected: 2,
            got: 1
        })
    );
    assert!(l.get(2).is_none(), "refused: the session is gone");
    assert_eq!(
        l.update(0, 2, EPOCH, &req, 77),
        Err(SessionError::NotFound(77))
    );
    f.reset();
    let (req, update) = round(&mut f, &mut l, &now, &[]);
    assert!(req.is_full());
    assert_eq!(update.unwrap().moved, vec![tp(0)]);
}

#[test]
fn another_process_of_the_follower_does_not_reach_the_old_session() {
    let (mut f, mut l) = (FollowerSession::default(), SessionCache::default());
    let now = positions(&[(0, 5)]);
    round(&mut f, &mut l, &now, &[]).1.unwrap();
    let req = f.request(&now, []);
    // KIP-903: same session id and epoch, but a new broker epoch (a restarted process).
    assert_eq!(
        l.update(0, 2, Some(BrokerEpoch(11)), &req, 77),
        Err(SessionError::NotFound(77))
    );
    assert!(l.is_empty());
    // Its full request opens a fresh session, replacing any old one.
    let full = FollowerSession::default().request(&now, []);
    let update = l.update(0, 2, Some(BrokerEpoch(11)), &full, 78).unwrap();
    assert_eq!((update.id, l.len()), (78, 1));
}

#[test]
fn an_error_answer_takes_the_partition_out_on_both_sides() {
    let (mut f, mut l) = (FollowerSession::default(), SessionCache::default());
    let now = positions(&[(0, 5), (1, 5)]);
    round(&mut f, &mut l, &now, &[]).1.unwrap();
    l.remove_partition(2, &tp(1));
    f.on_answered(&tp(1));
    let (req, update) = round(&mut f, &mut l, &now, &[1]);
    assert_eq!(req.partitions, vec![(tp(1), at(5))]);
    assert_eq!(
        update.unwrap().moved,
        vec![tp(1)],
        "new to the leader again"
    );
}

#[test]
fn sessions_are_bounded_in_count_evicting_the_least_recently_used() {
    let mut l = SessionCache::new(2, 10);
    let full = FollowerSession::default().request(&positions(&[(0, 0)]), []);
    l.update(1, 1, None, &full, 11).unwrap();
    l.update(2, 2, None, &full, 12).unwrap();
    // Follower 1 is used again: follower 2's session is now the oldest.
    let mut again = full.clone();
    (again.id, again.epoch) = (11, 1);
    l.update(3, 1, None, &again, 0).unwrap();
    l.update(4, 3, None, &full, 13).unwrap();
    assert_eq!(l.len(), 2, "at the limit");
    assert!(l.get(1).is_some() && l.get(3).is_some());
    assert!(l.get(2).is_none(), "the least recently used went");
}

#[test]
fn sessions_are_bounded_in_partitions() {
    let mut l = SessionCache::new(4, 3);
    let mut f = FollowerSession::default();
    let mut now = positions(&[(0, 0), (1, 0), (2, 0)]);
    let req = f.request(&now, []);
    f.on_accepted(l.update(0, 2, None, &req, 9).unwrap().id);
    assert_eq!(l.get(2).unwrap().len(), 3, "exactly at the limit");
    now.insert(tp(3), at(0));
    let req = f.request(&now, [tp(3)]);
    assert_eq!(
        l.update(0, 2, None, &req, 9),
        Err(SessionError::TooManyPartitions { limit: 3 })
    );
    assert!(l.get(2).is_none());
    let too_big = FollowerSession::default().request(&now, []);
    assert_eq!(
        l.update(0, 2, None, &too_big, 9),
        Err(SessionError::TooManyPartitions { limit: 3 })
    );
}

#[test]
fn session_ids_are_never_zero_and_epochs_skip_zero_when_they_wrap() {
    let mut l = SessionCache::default();
    let full = FollowerSession::default().request(&positions(&[(0, 0)]), []);
    assert_eq!(l.update(0, 2, None, &full, 0).unwrap().id, 1);
    let mut f = FollowerSession {
        id: 5,
        epoch: u32::MAX,
        known: HashMap::new(),
    };
    f.on_accepted(5);
    assert_eq!(f.epoch, 1);
}
