//! The deadline queue, and a broker's partitions on it: idle ones cost nothing.

use std::path::Path;

use uuid::Uuid;

use super::*;
use crate::clock::{Clock, ManualClock, SharedClock};
use crate::log::batch::testing::TestBatch;
use crate::log::LogConfig;
use crate::replication::leader::{FollowerFetch, LeaderConfig};
use crate::replication::{BrokerEpoch, LeaderEpoch, PartitionRegistration};
use crate::server::partition::{Acks, Partition};

#[test]
fn due_keys_come_out_earliest_first_and_only_when_due() {
    let mut t = Timers::default();
    t.arm("c", 30);
    t.arm("a", 10);
    t.arm("b", 20);
    assert_eq!(t.next_deadline_ms(), Some(10));
    assert_eq!(t.pop_due(9, 10), Vec::<&str>::new());
    assert_eq!(t.pop_due(20, 10), vec!["a", "b"]);
    assert_eq!(t.pop_due(100, 10), vec!["c"]);
    assert!(t.is_empty());
    assert_eq!(t.next_deadline_ms(), None);
}

#[test]
fn arming_keeps_the_earliest_deadline_of_a_key() {
    let mut t = Timers::default();
    assert!(t.arm("a", 50));
    assert!(!t.arm("a", 60), "a later deadline leaves the entry alone");
    assert!(!t.arm("a", 50));
    assert_eq!(t.deadline_of(&"a"), Some(50));
    assert!(t.arm("a", 40), "an earlier deadline moves it");
    assert_eq!(t.len(), 1);
    assert_eq!(t.pop_due(45, 10), vec!["a"]);
    assert_eq!(t.pop_due(100, 10), Vec::<&str>::new(), "no stale copy left");
}

#[test]
fn a_disarmed_key_never_fires_and_can_be_armed_again() {
    let mut t = Timers::default();
    t.arm("a", 10);
    t.arm("b", 10);
    t.disarm(&"a");
    t.disarm(&"missing");
    assert_eq!(t.pop_due(10, 10), vec!["b"]);
    t.arm("a", 20);
    assert_eq!(t.pop_due(20, 10), vec!["a"]);
}

#[test]
fn pop_due_takes_at_most_max_and_leaves_the_rest_armed() {
    let mut t = Timers::default();
    for k in 0..10u32 {
        t.arm(k, i64::from(k));
    }
    assert_eq!(t.pop_due(100, 4), vec![0, 1, 2, 3]);
    assert_eq!(t.len(), 6);
    assert_eq!(t.next_deadline_ms(), Some(4));
}

#[test]
fn many_keys_with_few_due_pop_only_the_due() {
    let mut t = Timers::default();
    for k in 0..100_000u32 {
        // Every key far in the future but three.
        t.arm(k, 1_000_000 + i64::from(k));
    }
    t.arm(7, 5);
    t.arm(70_000, 6);
    t.arm(99_999, 6);
    assert_eq!(t.pop_due(6, usize::MAX), vec![7, 70_000, 99_999]);
    assert_eq!(t.len(), 99_997);
}

const LAG_MS: i64 = 10_000;
const CHECK_MS: i64 = 1_000;

/// Partition `index` of topic "t", led by broker 1 with followers 2 and 3, armed on
/// `timers`.
fn led_partition(
    dir: &Path,
    index: i32,
    clock: SharedClock,
    timers: &Arc<BrokerTimers>,
) -> Partition {
    let p = Partition::open(
        dir,
        "t",
        Uuid::nil(),
        index,
        0,
        LogConfig::default(),
        clock.clone(),
    )
    .unwrap();
    p.timer.attach(timers.clone(), "t", index, CHECK_MS);
    let config = LeaderConfig {
        replica_lag_time_max_ms: LAG_MS,
        min_insync_replicas: 2,
        alter_partition_retry_ms: 1_000,
    };
    p.make_leader(
        1,
        config,
        PartitionRegistration::of(&[1, 2, 3], &[1, 2, 3], 1, 0, 0),
    );
    p
}

fn follower_fetch(p: &Partition, replica: i32, fetch_offset: i64) {
    let fetch = FollowerFetch {
        replica,
        current_leader_epoch: LeaderEpoch(0),
        fetch_offset,
        last_fetched_epoch: if fetch_offset == 0 { -1 } else { 0 },
        broker_epoch: Some(BrokerEpoch(0)),
        isr_eligible: true,
    };
    p.follower_fetch(&fetch, 1 << 20);
}

/// One round of the broker's task over `partitions`: the leader ticks due now (log
/// housekeeping is left out). Returns how many partitions it ticked.
fn fire(timers: &BrokerTimers, partitions: &[Partition], now_ms: i64) -> usize {
    let due = timers.pop_due(now_ms, usize::MAX);
    let leaders: Vec<_> = due.iter().filter(|k| k.kind == TimerKind::Leader).collect();
    for key in &leaders {
        partitions[key.partition as usize].tick();
    }
    leaders.len()
}

/// Leader entries armed.
fn leader_entries(timers: &BrokerTimers) -> usize {
    let queue = timers.queue.lock();
    queue
        .armed
        .keys()
        .filter(|k| k.kind == TimerKind::Leader)
        .count()
}

#[test]
fn a_tick_visits_none_of_many_idle_led_partitions() {
    const N: i32 = 500;
    let clock = ManualClock::new(0);
    let shared: SharedClock = clock.clone();
    let timers = Arc::new(BrokerTimers::default());
    let dirs: Vec<_> = (0..N).map(|_| tempfile::tempdir().unwrap()).collect();
    let partitions: Vec<Partition> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| led_partition(d.path(), i as i32, shared.clone(), &timers))
        .collect();
    // Newly elected, the followers have a lag window to show up in.
    assert_eq!(leader_entries(&timers), N as usize);
    for p in &partitions {
        follower_fetch(p, 2, 0);
        follower_fetch(p, 3, 0);
    }
    // The election's deadline passes once; every follower held the whole log, so
    // nothing is armed again.
    clock.advance(LAG_MS + 1);
    assert_eq!(fire(&timers, &partitions, clock.now_ms()), N as usize);
    assert_eq!(leader_entries(&timers), 0);
    for _ in 0..100 {
        clock.advance(LAG_MS);
        assert_eq!(fire(&timers, &partitions, clock.now_ms()), 0);
    }
    for p in &partitions {
        assert_eq!(p.isr_len(), Some(3));
    }

    // An acks=all produce on one of them arms that one alone, for the request's
    // deadline (its followers fetched a moment ago).
    let p = &partitions[7];
    follower_fetch(p, 2, 0);
    follower_fetch(p, 3, 0);
    let deadline_ms = clock.now_ms() + 5_000;
    let appended = p
        .append_produce(
            TestBatch::new(&["v"], 1).encode().into(),
            Acks::All { deadline_ms },
        )
        .unwrap();
    assert_eq!(leader_entries(&timers), 1);
    clock.advance(4_999);
    assert_eq!(fire(&timers, &partitions, clock.now_ms()), 0);
    follower_fetch(p, 2, 1);
    follower_fetch(p, 3, 1);
    let mut replicated = appended.replicated.unwrap();
    assert_eq!(replicated.try_recv(), Ok(None));
    // Its entry comes due once more, finds nothing, and is gone.
    clock.advance(1);
    assert_eq!(fire(&timers, &partitions, clock.now_ms()), 1);
    assert_eq!(leader_entries(&timers), 0);
}

#[test]
fn an_unanswered_produce_times_out_at_its_deadline_through_the_timers() {
    let clock = ManualClock::new(0);
    let timers = Arc::new(BrokerTimers::default());
    let dir = tempfile::tempdir().unwrap();
    let partitions = vec![led_partition(dir.path(), 0, clock.clone(), &timers)];
    let p = &partitions[0];
    follower_fetch(p, 2, 0);
    follower_fetch(p, 3, 0);
    clock.advance(LAG_MS + 1);
    fire(&timers, &partitions, clock.now_ms());
    assert_eq!(leader_entries(&timers), 0);
    follower_fetch(p, 2, 0);
    follower_fetch(p, 3, 0);
    let deadline_ms = clock.now_ms() + 3_000;
    let appended = p
        .append_produce(
            TestBatch::new(&["v"], 1).encode().into(),
            Acks::All { deadline_ms },
        )
        .unwrap();
    let mut replicated = appended.replicated.unwrap();
    // The followers fetch the record but never confirm it: the high watermark stays.
    follower_fetch(p, 2, 0);
    follower_fetch(p, 3, 0);
    clock.advance(2_999);
    fire(&timers, &partitions, clock.now_ms());
    assert!(
        replicated.try_recv().is_err(),
        "answered before its deadline"
    );
    clock.advance(1);
    assert_eq!(fire(&timers, &partitions, clock.now_ms()), 1);
    assert_eq!(
        replicated.try_recv(),
        Ok(Some(kafka_protocol::error::ResponseError::RequestTimedOut))
    );
}

/// A wall-clock time for the log tests: record timestamps are compared with it.
const T0: i64 = 1_700_000_000_000;

/// Partition 0 of topic "t" with `config`, led by broker 1 alone (an append is
/// committed at once), attached to `timers` as the broker attaches a partition it
/// opens.
fn log_partition(
    dir: &Path,
    config: LogConfig,
    clock: &Arc<ManualClock>,
    timers: &Arc<BrokerTimers>,
) -> Partition {
    let p = Partition::open(dir, "t", Uuid::nil(), 0, 0, config, clock.clone()).unwrap();
    p.lead_alone(1);
    p.timer.attach(timers.clone(), "t", 0, CHECK_MS);
    p.timer.arm_log_now(clock.now_ms());
    p
}

/// `count` batches of four 100-byte records, stamped now.
fn append(p: &Partition, clock: &ManualClock, count: usize) {
    let value = "v".repeat(100);
    for _ in 0..count {
        let batch = TestBatch::new(&[value.as_str(); 4], clock.wall_ms());
        p.append_produce(batch.encode().into(), Acks::Leader)
            .unwrap();
    }
}

/// The broker's timer task over `p` until `until_ms`: the clock moves from one due
/// deadline to the next, and each visit is what the task does. Returns the log
/// visits.
fn run_until(clock: &ManualClock, timers: &BrokerTimers, p: &Partition, until_ms: i64) -> usize {
    let mut visits = 0;
    while let Some(at) = timers.next_deadline_ms().filter(|at| *at <= until_ms) {
        clock.advance((at - clock.now_ms()).max(0));
        for key in timers.pop_due(clock.now_ms(), usize::MAX) {
            match key.kind {
                TimerKind::Leader => {
                    p.tick();
                }
                TimerKind::Log => {
                    let done = p.housekeep();
                    done.deleted.unwrap();
                    done.compacted.unwrap();
                    visits += 1;
                }
            }
        }
    }
    clock.advance((until_ms - clock.now_ms()).max(0));
    visits
}

/// When the log's entry is armed, if it is.
fn log_deadline(timers: &BrokerTimers) -> Option<i64> {
    timers.queue.lock().deadline_of(&TimerKey {
        topic: Arc::from("t"),
        partition: 0,
        kind: TimerKind::Log,
    })
}

/// A log whose last visit armed its next deadline a week away (its segment.ms roll,
/// its oldest segment's retention.ms): the appends that follow must still have it
/// looked at within one check interval.
fn far_deadline_armed(clock: &ManualClock, timers: &BrokerTimers) {
    let far = log_deadline(timers).expect("a deadline armed");
    assert!(
        far > clock.now_ms() + 24 * 3_600_000,
        "the next deadline is {} ms away",
        far - clock.now_ms()
    );
}

#[test]
fn retention_bytes_deletes_within_a_check_interval_of_the_appends_past_it() {
    const SEGMENT_BYTES: u64 = 1024;
    const RETENTION_BYTES: i64 = 4096;
    let clock = ManualClock::new(T0);
    let timers = Arc::new(BrokerTimers::default());
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: SEGMENT_BYTES,
        retention_bytes: RETENTION_BYTES,
        ..LogConfig::default()
    };
    let p = log_partition(dir.path(), config, &clock, &timers);
    // Opened empty: one look, and nothing armed.
    assert_eq!(run_until(&clock, &timers, &p, clock.now_ms()), 1);
    assert_eq!(log_deadline(&timers), None);
    // A first batch, under retention.bytes: looked at one check interval later.
    append(&p, &clock, 1);
    assert_eq!(run_until(&clock, &timers, &p, clock.now_ms() + CHECK_MS), 1);
    assert_eq!(p.with_log(|log| log.log_start_offset()), 0);
    far_deadline_armed(&clock, &timers);
    // Fifty segments' worth: past retention.bytes.
    append(&p, &clock, 100);
    assert_eq!(p.high_watermark(), 404);
    run_until(&clock, &timers, &p, clock.now_ms() + CHECK_MS);
    let (start, size) = p.with_log(|log| (log.log_start_offset(), log.size_bytes() as i64));
    assert!(start > 0, "nothing deleted: {size} bytes");
    assert!(
        (RETENTION_BYTES..RETENTION_BYTES + SEGMENT_BYTES as i64).contains(&size),
        "{size} bytes left"
    );
}

#[test]
fn segment_ms_rolls_a_segment_appended_to_after_a_far_deadline_was_armed() {
    const SEGMENT_MS: i64 = 60_000;
    let clock = ManualClock::new(T0);
    let timers = Arc::new(BrokerTimers::default());
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: SEGMENT_MS,
        ..LogConfig::default()
    };
    let p = log_partition(dir.path(), config, &clock, &timers);
    append(&p, &clock, 1);
    run_until(&clock, &timers, &p, clock.now_ms() + SEGMENT_MS + CHECK_MS);
    assert_eq!(p.with_log(|log| log.segment_count()), 2, "rolled once");
    // The new active segment is empty: next comes the old one's retention.ms.
    far_deadline_armed(&clock, &timers);
    append(&p, &clock, 1);
    run_until(&clock, &timers, &p, clock.now_ms() + SEGMENT_MS + CHECK_MS);
    assert_eq!(
        p.with_log(|log| log.segment_count()),
        3,
        "the segment appended to is rolled at segment.ms"
    );
}

#[test]
fn flush_ms_syncs_records_appended_after_a_far_deadline_was_armed() {
    const FLUSH_MS: i64 = 10_000;
    let clock = ManualClock::new(T0);
    let timers = Arc::new(BrokerTimers::default());
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_ms: FLUSH_MS,
        ..LogConfig::default()
    };
    let p = log_partition(dir.path(), config, &clock, &timers);
    append(&p, &clock, 1);
    run_until(&clock, &timers, &p, clock.now_ms() + FLUSH_MS + CHECK_MS);
    assert_eq!(p.with_log(|log| log.recovery_point()), 4);
    // Everything is synced: next comes the segment.ms roll.
    far_deadline_armed(&clock, &timers);
    append(&p, &clock, 1);
    run_until(&clock, &timers, &p, clock.now_ms() + FLUSH_MS + CHECK_MS);
    assert_eq!(
        p.with_log(|log| log.recovery_point()),
        8,
        "records appended are synced at flush.ms"
    );
}

#[test]
fn an_idle_producer_that_appended_after_a_far_deadline_was_armed_expires() {
    const EXPIRATION_MS: i64 = 60_000;
    let clock = ManualClock::new(T0);
    let timers = Arc::new(BrokerTimers::default());
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        producer_id_expiration_ms: EXPIRATION_MS,
        ..LogConfig::default()
    };
    let p = log_partition(dir.path(), config, &clock, &timers);
    append(&p, &clock, 1);
    run_until(&clock, &timers, &p, clock.now_ms() + CHECK_MS);
    far_deadline_armed(&clock, &timers);
    let batch = TestBatch::new(&["v"], clock.wall_ms()).idempotent(7, 0, 0);
    p.append_produce(batch.encode().into(), Acks::Leader)
        .unwrap();
    let producers = |p: &Partition| p.with_log(|log| log.producer_state().producers().count());
    assert_eq!(producers(&p), 1);
    run_until(
        &clock,
        &timers,
        &p,
        clock.now_ms() + EXPIRATION_MS + CHECK_MS,
    );
    assert_eq!(producers(&p), 0, "the idle producer expired");
}

#[test]
fn a_partition_attached_again_arms_anew_what_came_due_while_it_was_not_listed() {
    let timers = Arc::new(BrokerTimers::default());
    let t = PartitionTimer::default();
    t.attach(timers.clone(), "t", 0, CHECK_MS);
    t.arm_log_now(100);
    t.arm(TimerKind::Leader, Some(150));
    // Offline meanwhile: the timer task pops its entries, finds no partition by that
    // name, and visits nothing.
    assert_eq!(timers.pop_due(150, usize::MAX).len(), 2);
    // Served again: attached, its log looked at now, its leader deadline armed.
    t.attach(timers.clone(), "t", 0, CHECK_MS);
    t.arm_log_now(200);
    t.arm(TimerKind::Leader, Some(250));
    assert_eq!(timers.pop_due(250, usize::MAX).len(), 2);
}

#[test]
fn an_append_brings_a_later_log_deadline_within_one_check_interval() {
    let timers = Arc::new(BrokerTimers::default());
    let t = PartitionTimer::default();
    t.attach(timers.clone(), "t", 0, CHECK_MS);
    // The last visit armed the log's next deadline far away.
    t.arm_log(0, Some(1_000_000));
    t.log_appended(10);
    assert_eq!(timers.next_deadline_ms(), Some(10 + CHECK_MS));
    // Appends within that interval leave the entry as it is.
    t.log_appended(20);
    assert_eq!(timers.next_deadline_ms(), Some(10 + CHECK_MS));
    assert_eq!(timers.len(), 1);
}
