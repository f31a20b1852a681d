use super::*;

const OWNER: &str = "User:alice";

fn key(topic: &str, p: i32) -> PartitionKey {
    (Arc::from(topic), p)
}

fn params(offset: i64) -> FetchParams {
    FetchParams {
        fetch_offset: offset,
        partition_max_bytes: 1 << 20,
        current_leader_epoch: -1,
    }
}

fn state(hw: i64) -> PartitionState {
    PartitionState {
        high_watermark: hw,
        last_stable_offset: hw,
        log_start_offset: 0,
    }
}

fn idle(hw: i64) -> ReadOutcome {
    ReadOutcome {
        record_bytes: 0,
        error_code: 0,
        state: state(hw),
    }
}

fn limits(slots: usize) -> SessionLimits {
    SessionLimits {
        slots,
        eviction_ms: 1_000,
        min_partitions: 1,
        max_partitions_per_session: 100,
        max_cached_partitions: 1_000,
    }
}

/// A session of partitions `t-0..t-n`, all at offset 0 and told high watermark 0.
fn open(cache: &mut SessionCache, topic: &str, n: i32, now_ms: u64) -> i32 {
    let parts = (0..n)
        .map(|p| (key(topic, p), params(0), Some(state(0))))
        .collect();
    cache.create(OWNER, false, parts, now_ms)
}

fn request<'a>(
    session_id: i32,
    epoch: i32,
    partitions: &'a [(PartitionKey, FetchParams)],
    forgotten: &'a [PartitionKey],
) -> SessionRequest<'a> {
    SessionRequest {
        session_id,
        epoch,
        uses_topic_ids: false,
        owner: OWNER,
        partitions,
        forgotten,
    }
}

fn incremental_partitions(ctx: FetchContext) -> Vec<(PartitionKey, FetchParams)> {
    match ctx {
        FetchContext::Incremental { partitions, .. } => partitions,
        other => panic!("expected an incremental context, got {other:?}"),
    }
}

#[test]
fn epoch_zero_asks_for_a_session_and_minus_one_does_not() {
    let mut cache = SessionCache::new(limits(10), 1);
    assert_eq!(
        cache.begin(&request(0, INITIAL_EPOCH, &[], &[]), 0),
        FetchContext::Full
    );
    assert_eq!(
        cache.begin(&request(0, FINAL_EPOCH, &[], &[]), 0),
        FetchContext::Sessionless
    );
    let id = open(&mut cache, "t", 3, 0);
    assert_ne!(id, INVALID_SESSION_ID);
    assert_eq!(
        cache.epoch_of(id),
        Some(1),
        "the first incremental fetch carries epoch 1"
    );
}

#[test]
fn a_full_fetch_naming_a_session_closes_it() {
    let mut cache = SessionCache::new(limits(10), 1);
    let a = open(&mut cache, "t", 3, 0);
    assert_eq!(
        cache.begin(&request(a, FINAL_EPOCH, &[], &[]), 5),
        FetchContext::Sessionless
    );
    assert_eq!(cache.epoch_of(a), None, "epoch -1 closes the session");
    let b = open(&mut cache, "t", 3, 0);
    assert_eq!(
        cache.begin(&request(b, INITIAL_EPOCH, &[], &[]), 5),
        FetchContext::Full
    );
    assert_eq!(
        cache.epoch_of(b),
        None,
        "epoch 0 with an id closes it before opening anew"
    );
    assert_eq!(cache.cached_partitions(), 0);
}

#[test]
fn incremental_fetch_reads_the_whole_session_and_moves_the_epoch_on() {
    let mut cache = SessionCache::new(limits(10), 1);
    let id = open(&mut cache, "t", 3, 0);
    let ctx = cache.begin(&request(id, 1, &[], &[]), 10);
    let parts = incremental_partitions(ctx);
    assert_eq!(
        parts.iter().map(|(k, _)| k.1).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert_eq!(cache.epoch_of(id), Some(2));
    assert!(matches!(
        cache.begin(&request(id, 2, &[], &[]), 11),
        FetchContext::Incremental { .. }
    ));
    assert_eq!(cache.epoch_of(id), Some(3));
}

#[test]
fn incremental_fetch_adds_updates_and_forgets() {
    let mut cache = SessionCache::new(limits(10), 1);
    let id = open(&mut cache, "t", 3, 0);
    let changed = [(key("t", 1), params(42)), (key("u", 0), params(7))];
    let forgotten = [key("t", 2)];
    let parts = incremental_partitions(cache.begin(&request(id, 1, &changed, &forgotten), 10));
    assert_eq!(
        parts,
        vec![
            (key("t", 0), params(0)),
            (key("t", 1), params(42)),
            (key("u", 0), params(7)),
        ]
    );
    assert_eq!(cache.size_of(id), Some(3));
    assert_eq!(cache.cached_partitions(), 3);
}

#[test]
fn forgetting_every_partition_drops_the_session() {
    let mut cache = SessionCache::new(limits(10), 1);
    let id = open(&mut cache, "t", 2, 0);
    let forgotten = [key("t", 0), key("t", 1)];
    assert_eq!(
        cache.begin(&request(id, 1, &[], &forgotten), 10),
        FetchContext::Sessionless
    );
    assert_eq!(cache.epoch_of(id), None);
    assert_eq!(cache.cached_partitions(), 0);
}

#[test]
fn unknown_id_and_stale_epoch_are_refused_with_kafka_codes() {
    let mut cache = SessionCache::new(limits(10), 1);
    let id = open(&mut cache, "t", 2, 0);
    let missing = if id == 7 { 8 } else { 7 };
    let err = cache.begin(&request(missing, 1, &[], &[]), 10);
    assert_eq!(err, FetchContext::Error(SessionError::IdNotFound));
    assert_eq!(SessionError::IdNotFound.code().code(), 70);
    assert!(matches!(
        cache.begin(&request(id, 1, &[], &[]), 10),
        FetchContext::Incremental { .. }
    ));
    // The same epoch again (a retried or duplicated request) is stale.
    let stale = cache.begin(&request(id, 1, &[], &[]), 11);
    assert_eq!(stale, FetchContext::Error(SessionError::InvalidEpoch));
    assert_eq!(SessionError::InvalidEpoch.code().code(), 71);
    let ahead = cache.begin(&request(id, 5, &[], &[]), 11);
    assert_eq!(ahead, FetchContext::Error(SessionError::InvalidEpoch));
    assert_eq!(
        cache.epoch_of(id),
        Some(2),
        "a refused fetch leaves the epoch alone"
    );
    // An incremental epoch without a session id names no session.
    let none = cache.begin(&request(0, 1, &[], &[]), 11);
    assert_eq!(none, FetchContext::Error(SessionError::IdNotFound));
}

#[test]
fn a_session_made_with_names_is_not_used_with_topic_ids() {
    let mut cache = SessionCache::new(limits(10), 1);
    let id = open(&mut cache, "t", 2, 0);
    let mut req = request(id, 1, &[], &[]);
    req.uses_topic_ids = true;
    assert_eq!(
        cache.begin(&req, 10),
        FetchContext::Error(SessionError::TopicIdMismatch)
    );
    assert_eq!(SessionError::TopicIdMismatch.code().code(), 106);
}

#[test]
fn another_principal_cannot_use_or_close_a_session() {
    let mut cache = SessionCache::new(limits(10), 1);
    let id = open(&mut cache, "t", 2, 0);
    let mut req = request(id, 1, &[], &[]);
    req.owner = "User:mallory";
    assert_eq!(
        cache.begin(&req, 10),
        FetchContext::Error(SessionError::IdNotFound)
    );
    req.epoch = FINAL_EPOCH;
    assert_eq!(cache.begin(&req, 10), FetchContext::Sessionless);
    assert_eq!(cache.epoch_of(id), Some(1), "still open, epoch untouched");
}

#[test]
fn epochs_wrap_to_one() {
    assert_eq!(next_epoch(INITIAL_EPOCH), 1);
    assert_eq!(next_epoch(41), 42);
    assert_eq!(next_epoch(i32::MAX), 1);
    assert_eq!(next_epoch(FINAL_EPOCH), FINAL_EPOCH);
}

#[test]
fn idle_partitions_are_left_out_and_changes_answered_once() {
    let mut cache = SessionCache::new(limits(10), 1);
    let id = open(&mut cache, "t", 3, 0);
    let parts = incremental_partitions(cache.begin(&request(id, 1, &[], &[]), 10));
    let read = |outcomes: [ReadOutcome; 3]| -> Vec<(PartitionKey, ReadOutcome)> {
        parts.iter().map(|(k, _)| k.clone()).zip(outcomes).collect()
    };
    assert_eq!(
        cache.select(id, &read([idle(0), idle(0), idle(0)])),
        vec![false; 3]
    );
    // A new high watermark is told once.
    assert_eq!(
        cache.select(id, &read([idle(0), idle(5), idle(0)])),
        vec![false, true, false]
    );
    assert_eq!(
        cache.select(id, &read([idle(0), idle(5), idle(0)])),
        vec![false; 3]
    );
    // So is a new log start offset or last stable offset.
    let mut moved = idle(5);
    moved.state.log_start_offset = 3;
    assert_eq!(
        cache.select(id, &read([idle(0), moved, idle(0)])),
        vec![false, true, false]
    );
    let mut lso = idle(0);
    lso.state.last_stable_offset = 1;
    assert_eq!(
        cache.select(id, &read([lso, moved, idle(0)])),
        vec![true, false, false]
    );
}

#[test]
fn records_and_errors_are_always_answered_and_an_error_is_followed_by_the_state() {
    let mut cache = SessionCache::new(limits(10), 1);
    let id = open(&mut cache, "t", 2, 0);
    let k0 = key("t", 0);
    let k1 = key("t", 1);
    let records = ReadOutcome {
        record_bytes: 100,
        ..idle(0)
    };
    let failed = ReadOutcome {
        error_code: 6,
        ..idle(0)
    };
    let keep = cache.select(id, &[(k0.clone(), records), (k1.clone(), failed)]);
    assert_eq!(keep, vec![true, true]);
    // The error is gone, the state unchanged: the consumer is told it anyway.
    let keep = cache.select(id, &[(k0.clone(), idle(0)), (k1.clone(), idle(0))]);
    assert_eq!(keep, vec![false, true]);
    let keep = cache.select(id, &[(k0, idle(0)), (k1, idle(0))]);
    assert_eq!(keep, vec![false, false]);
}

#[test]
fn partitions_that_returned_records_move_to_the_back() {
    let mut cache = SessionCache::new(limits(10), 1);
    let id = open(&mut cache, "t", 3, 0);
    let records = ReadOutcome {
        record_bytes: 10,
        ..idle(0)
    };
    cache.select(id, &[(key("t", 0), records), (key("t", 1), idle(0))]);
    let parts = incremental_partitions(cache.begin(&request(id, 1, &[], &[]), 10));
    assert_eq!(
        parts.iter().map(|(k, _)| k.1).collect::<Vec<_>>(),
        vec![1, 2, 0]
    );
}

#[test]
fn a_session_gone_while_reading_answers_everything() {
    let mut cache = SessionCache::new(limits(10), 1);
    assert_eq!(cache.select(99, &[(key("t", 0), idle(0))]), vec![true]);
}

#[test]
fn the_cache_holds_its_slots_and_evicts_stale_sessions_first() {
    let mut cache = SessionCache::new(limits(2), 1);
    let a = open(&mut cache, "a", 5, 0);
    let b = open(&mut cache, "b", 5, 500);
    assert_eq!(cache.len(), 2);
    // Full, nothing unused past 1,000 ms, nothing old enough: declined.
    assert_eq!(open(&mut cache, "c", 50, 900), INVALID_SESSION_ID);
    // `a` unused for 1,001 ms: the new session takes its slot, whatever its size.
    let c = open(&mut cache, "c", 1, 1_001);
    assert_ne!(c, INVALID_SESSION_ID);
    assert_eq!(cache.epoch_of(a), None);
    assert!(cache.epoch_of(b).is_some());
    assert_eq!(cache.len(), 2);
    assert_eq!(cache.cached_partitions(), 6);
}

#[test]
fn a_larger_session_evicts_the_smallest_old_one_but_not_an_equal_one() {
    let mut cache = SessionCache::new(limits(2), 1);
    let small = open(&mut cache, "s", 3, 0);
    let big = open(&mut cache, "b", 8, 0);
    // Keep both in use, so neither is stale; both are older than the eviction time.
    for (id, at) in [(small, 1_500), (big, 1_500)] {
        assert!(matches!(
            cache.begin(&request(id, 1, &[], &[]), at),
            FetchContext::Incremental { .. }
        ));
    }
    assert_eq!(
        open(&mut cache, "e", 3, 1_600),
        INVALID_SESSION_ID,
        "equal size does not evict"
    );
    let newer = open(&mut cache, "n", 4, 1_600);
    assert_ne!(newer, INVALID_SESSION_ID);
    assert_eq!(cache.epoch_of(small), None, "the smallest old session went");
    assert!(cache.epoch_of(big).is_some());
    // The smallest session old enough is the candidate: the new one is too young, so a
    // larger session takes the slot of `big`.
    assert_ne!(open(&mut cache, "x", 20, 1_700), INVALID_SESSION_ID);
    assert_eq!(cache.epoch_of(big), None);
    assert!(cache.epoch_of(newer).is_some());
}

#[test]
fn young_sessions_are_not_evicted_by_larger_ones() {
    let mut cache = SessionCache::new(limits(1), 1);
    let a = open(&mut cache, "a", 1, 0);
    assert_eq!(open(&mut cache, "b", 90, 1_000), INVALID_SESSION_ID);
    assert!(cache.epoch_of(a).is_some());
    assert_ne!(open(&mut cache, "b", 90, 1_001), INVALID_SESSION_ID);
}

#[test]
fn no_slots_means_no_sessions_and_tiny_sessions_are_not_cached() {
    let mut cache = SessionCache::new(limits(0), 1);
    assert_eq!(open(&mut cache, "t", 5, 0), INVALID_SESSION_ID);
    let mut cache = SessionCache::new(
        SessionLimits {
            min_partitions: 3,
            ..limits(10)
        },
        1,
    );
    assert_eq!(open(&mut cache, "t", 2, 0), INVALID_SESSION_ID);
    assert_ne!(open(&mut cache, "t", 3, 0), INVALID_SESSION_ID);
}

#[test]
fn a_session_is_bounded_in_partitions_at_creation_and_when_it_grows() {
    let mut cache = SessionCache::new(limits(10), 1);
    assert_eq!(open(&mut cache, "t", 101, 0), INVALID_SESSION_ID);
    let id = open(&mut cache, "t", 100, 0);
    assert_ne!(id, INVALID_SESSION_ID, "exactly at the bound is cached");
    // Updating a partition already there keeps it at the bound.
    let same = [(key("t", 5), params(9))];
    assert!(matches!(
        cache.begin(&request(id, 1, &same, &[]), 1),
        FetchContext::Incremental { .. }
    ));
    let one_more = [(key("t", 100), params(0))];
    assert_eq!(
        cache.begin(&request(id, 2, &one_more, &[]), 2),
        FetchContext::Error(SessionError::IdNotFound)
    );
    assert_eq!(cache.epoch_of(id), None, "the outgrown session is dropped");
    assert_eq!(cache.cached_partitions(), 0);
}

#[test]
fn the_whole_cache_is_bounded_in_partitions() {
    let mut cache = SessionCache::new(
        SessionLimits {
            max_cached_partitions: 150,
            ..limits(10)
        },
        1,
    );
    let a = open(&mut cache, "a", 100, 0);
    assert_ne!(a, INVALID_SESSION_ID);
    assert_eq!(open(&mut cache, "b", 51, 10), INVALID_SESSION_ID);
    assert_ne!(
        open(&mut cache, "b", 50, 10),
        INVALID_SESSION_ID,
        "exactly at the bound"
    );
    assert_eq!(cache.cached_partitions(), 150);
    // Past the eviction time, a stale session makes room.
    assert_ne!(open(&mut cache, "c", 60, 2_000), INVALID_SESSION_ID);
    assert!(cache.cached_partitions() <= 150);
}

#[test]
fn session_ids_are_distinct_and_never_zero() {
    let mut cache = SessionCache::new(limits(1_000), 7);
    let mut seen = std::collections::HashSet::new();
    for i in 0..1_000 {
        let id = open(&mut cache, "t", 1, i);
        assert!(id > 0);
        assert!(seen.insert(id));
    }
    assert_eq!(cache.len(), 1_000);
}
