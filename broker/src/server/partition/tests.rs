use super::*;
use crate::clock::Clock;
use crate::log::batch::testing::TestBatch;
use crate::replication::{BrokerEpoch, PartitionRegistration};

fn leader(dir: &Path, config: LogConfig) -> Partition {
    let p = Partition::open(
        dir,
        "t",
        Uuid::new_v4(),
        0,
        0,
        config,
        crate::clock::ManualClock::new(0),
    )
    .unwrap();
    p.lead_alone(1);
    p
}

/// Leader (broker 1) of replicas [1,2,3], all in sync, on `clock`, with followers
/// 2 and 3 caught up.
pub(super) fn replicated_leader(dir: &Path, clock: SharedClock) -> Partition {
    use crate::replication::leader::{FollowerFetch, LeaderConfig};
    use crate::replication::LeaderEpoch;
    let p = Partition::open(dir, "t", Uuid::new_v4(), 0, 0, LogConfig::default(), clock).unwrap();
    let registration = PartitionRegistration::of(&[1, 2, 3], &[1, 2, 3], 1, 0, 0);
    let config = LeaderConfig {
        replica_lag_time_max_ms: 10_000,
        min_insync_replicas: 2,
        alter_partition_retry_ms: 1_000,
    };
    p.make_leader(1, config, registration);
    for replica in [2, 3] {
        let fetch = FollowerFetch {
            replica,
            current_leader_epoch: LeaderEpoch(0),
            fetch_offset: 0,
            last_fetched_epoch: -1,
            broker_epoch: Some(BrokerEpoch(0)),
            isr_eligible: true,
        };
        p.follower_fetch(&fetch, 1 << 20);
    }
    p
}

#[test]
fn a_wall_clock_step_neither_shrinks_the_isr_nor_times_out_acks_all() {
    let clock = crate::clock::ManualClock::new(1_700_000_000_000);
    let dir = tempfile::tempdir().unwrap();
    let p = replicated_leader(dir.path(), clock.clone());
    let appended = p
        .append_produce(
            TestBatch::new(&["v"], 1).encode().into(),
            Acks::All {
                deadline_ms: clock.now_ms() + 5_000,
            },
        )
        .unwrap();
    let mut replicated = appended.replicated.unwrap();
    // Someone sets the time an hour ahead, then an hour back.
    for wall in [clock.wall_ms() + 3_600_000, clock.wall_ms() - 3_600_000] {
        clock.set_wall(wall);
        clock.advance(100);
        assert_eq!(
            p.tick(),
            vec![],
            "ISR change proposed after a wall clock step"
        );
        assert!(
            replicated.try_recv().is_err(),
            "acks=all answered after a wall clock step"
        );
    }
    // Durations still pass: the deadline, then the followers' lag.
    clock.advance(5_000);
    assert_eq!(p.tick(), vec![]);
    assert_eq!(
        replicated.try_recv(),
        Ok(Some(ResponseError::RequestTimedOut))
    );
    clock.advance(5_000);
    let shrink = p.tick();
    assert_eq!(shrink.len(), 1, "the silent followers leave the ISR");
    assert_eq!(shrink[0].new_isr.members(), &[1]);
}

#[tokio::test]
async fn produce_requests_waiting_for_a_sync_share_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_messages: 1,
        ..LogConfig::default()
    };
    let p = leader(dir.path(), config);
    let mut last_offsets = Vec::new();
    for i in 0..8 {
        let appended = p
            .append_produce(TestBatch::new(&["v"], i).encode().into(), Acks::Leader)
            .unwrap();
        assert!(appended.flush_due);
        last_offsets.push(appended.info.last_offset);
    }
    let waits = last_offsets.iter().map(|&o| p.flush_through(o));
    for result in futures::future::join_all(waits).await {
        assert_eq!(result, Ok(()));
    }
    // The first sync covered all eight batches; the others found them durable.
    assert_eq!(p.flushes(), 1);
    assert_eq!(p.with_log(|log| log.recovery_point()), 8);
    // A batch appended after it needs a sync of its own.
    let appended = p
        .append_produce(TestBatch::new(&["w"], 9).encode().into(), Acks::Leader)
        .unwrap();
    assert_eq!(p.flush_through(appended.info.last_offset).await, Ok(()));
    assert_eq!(p.flushes(), 2);
    assert_eq!(p.flush_through(0).await, Ok(()));
    assert_eq!(p.flushes(), 2);
}
