use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::*;
use crate::replication::{MemLog, NO_LEADER};

const TP: TopicPartition = TopicPartition {
    topic_id: Uuid::nil(),
    partition: 0,
};
const LAG_MS: i64 = 10_000;

fn config() -> LeaderConfig {
    LeaderConfig {
        replica_lag_time_max_ms: LAG_MS,
        min_insync_replicas: 2,
        alter_partition_retry_ms: 1_000,
    }
}

fn registration(
    isr: &[BrokerId],
    leader_epoch: i32,
    partition_epoch: i32,
) -> PartitionRegistration {
    PartitionRegistration {
        replicas: vec![1, 2, 3],
        isr: Isr::new(isr.to_vec()),
        leader: 1,
        leader_epoch: LeaderEpoch(leader_epoch),
        partition_epoch: PartitionEpoch(partition_epoch),
        adding_replicas: vec![],
        removing_replicas: vec![],
        offline_replicas: vec![],
    }
}

/// Broker 1 leads epoch 5 with a log of `leo` records written in epoch 5.
fn leader(isr: &[BrokerId], leo: i64) -> (PartitionLeader, MemLog) {
    let log = MemLog::with_epochs(&vec![5; leo as usize]);
    let l = PartitionLeader::new(
        TP,
        1,
        config(),
        registration(isr, 5, 7),
        leo,
        HighWatermark(0),
        0,
    );
    (l, log)
}

fn fetch(replica: BrokerId, fetch_offset: i64) -> FollowerFetch {
    FollowerFetch {
        replica,
        current_leader_epoch: LeaderEpoch(5),
        fetch_offset,
        last_fetched_epoch: if fetch_offset == 0 { -1 } else { 5 },
        broker_epoch: Some(broker_epoch(replica)),
        isr_eligible: true,
    }
}

/// The broker epoch each follower's process fetches with.
fn broker_epoch(replica: BrokerId) -> BrokerEpoch {
    BrokerEpoch(100 + i64::from(replica))
}

/// A proposal removing replicas.
fn alter(isr: &[BrokerId]) -> LeaderAction {
    LeaderAction::AlterPartition(AlterPartitionRequest {
        partition: TP,
        leader_epoch: LeaderEpoch(5),
        partition_epoch: PartitionEpoch(7),
        new_isr: Isr::new(isr.to_vec()),
        added_epochs: vec![],
    })
}

/// A proposal adding `added`, with the broker epoch it fetched with.
fn expand(isr: &[BrokerId], added: BrokerId) -> LeaderAction {
    LeaderAction::AlterPartition(AlterPartitionRequest {
        added_epochs: vec![(added, broker_epoch(added))],
        ..proposal(alter(isr))
    })
}

fn proposal(action: LeaderAction) -> AlterPartitionRequest {
    match action {
        LeaderAction::AlterPartition(request) => request,
        other => panic!("not a proposal: {other:?}"),
    }
}

fn waiter(id: u64, last_offset: i64) -> Option<ProduceWaiter> {
    Some(ProduceWaiter {
        id: ProduceId(id),
        last_offset,
        deadline_ms: 30_000,
    })
}

fn done(id: u64) -> LeaderAction {
    LeaderAction::CompleteProduce {
        id: ProduceId(id),
        error: None,
    }
}

#[test]
fn high_watermark_is_the_smallest_log_end_offset_in_the_isr_and_never_goes_back() {
    let (mut l, log) = leader(&[1, 2, 3], 10);
    // Unknown follower positions hold the high watermark.
    let (answer, actions) = l.on_follower_fetch(1, &fetch(2, 10), &log);
    assert_eq!(
        answer,
        FollowerFetchAnswer::Records {
            fetch_offset: 10,
            high_watermark: HighWatermark(0)
        }
    );
    assert_eq!(actions, vec![]);
    let (_, actions) = l.on_follower_fetch(2, &fetch(3, 4), &log);
    assert_eq!(
        actions,
        vec![LeaderAction::HighWatermarkAdvanced(HighWatermark(4))]
    );
    // A position that goes back (a delayed fetch) does not move the watermark back.
    let (_, actions) = l.on_follower_fetch(3, &fetch(3, 2), &log);
    assert_eq!(actions, vec![]);
    assert_eq!(l.high_watermark(), HighWatermark(4));
}

#[test]
fn acks_all_is_refused_when_the_isr_is_below_min_insync_replicas() {
    let (l, _) = leader(&[1], 0);
    assert_eq!(l.check_produce(true), Err(ResponseError::NotEnoughReplicas));
    assert_eq!(l.check_produce(false), Ok(()));
    let (l, _) = leader(&[1, 3], 0);
    assert_eq!(l.check_produce(true), Ok(()));
}

#[test]
fn min_insync_replicas_above_the_replica_count_asks_for_every_replica() {
    // Kafka's effective min ISR is min(min.insync.replicas, replicas): a topic of
    // replication factor 1 on a cluster whose min.insync.replicas is 2 takes acks=all.
    let single = PartitionRegistration {
        replicas: vec![1],
        ..registration(&[1], 5, 7)
    };
    let mut l = PartitionLeader::new(TP, 1, config(), single, 0, HighWatermark(0), 0);
    assert_eq!(l.check_produce(true), Ok(()));
    assert_eq!(l.effective_min_isr(), 1);
    let waiter = ProduceWaiter {
        id: ProduceId(1),
        last_offset: 0,
        deadline_ms: 1_000,
    };
    let actions = l.on_appended(0, 1, Some(waiter));
    assert!(
        actions.contains(&LeaderAction::CompleteProduce {
            id: ProduceId(1),
            error: None
        }),
        "{actions:?}"
    );
    // Three replicas: the configured 2 holds.
    let (l, _) = leader(&[1], 0);
    assert_eq!(l.effective_min_isr(), 2);
}

#[test]
fn acks_all_completes_when_the_high_watermark_passes_the_batch() {
    let (mut l, _) = leader(&[1, 2], 0);
    let log = MemLog::with_epochs(&[5, 5, 5]);
    assert_eq!(l.on_appended(1, 2, waiter(1, 1)), vec![]);
    assert_eq!(l.on_appended(1, 3, waiter(2, 2)), vec![]);
    let (_, actions) = l.on_follower_fetch(2, &fetch(2, 2), &log);
    assert_eq!(
        actions,
        vec![
            LeaderAction::HighWatermarkAdvanced(HighWatermark(2)),
            done(1)
        ]
    );
    let (_, actions) = l.on_follower_fetch(3, &fetch(2, 3), &log);
    assert_eq!(
        actions,
        vec![
            LeaderAction::HighWatermarkAdvanced(HighWatermark(3)),
            done(2)
        ]
    );
}

#[test]
fn a_lagging_follower_is_proposed_out_of_the_isr_and_counts_until_the_controller_agrees() {
    let (mut l, log) = leader(&[1, 2, 3], 5);
    l.on_appended(0, 5, waiter(1, 4));
    l.on_follower_fetch(1, &fetch(2, 5), &log);
    l.on_follower_fetch(1, &fetch(3, 3), &log);
    assert_eq!(l.high_watermark(), HighWatermark(3));
    // Broker 2 keeps fetching the whole log; broker 3 stops.
    l.on_follower_fetch(LAG_MS, &fetch(2, 5), &log);
    assert_eq!(
        l.on_tick(LAG_MS),
        vec![],
        "exactly the lag time is still in sync"
    );
    l.on_follower_fetch(LAG_MS + 1, &fetch(2, 5), &log);
    assert_eq!(l.on_tick(LAG_MS + 1), vec![alter(&[1, 2])]);
    // While pending, the removed replica still holds the high watermark.
    assert_eq!(l.maximal_isr(), Isr::new(vec![1, 2, 3]));
    assert_eq!(l.on_tick(LAG_MS + 2), vec![], "one proposal in flight");
    let actions = l.on_alter_partition_response(LAG_MS + 3, Ok(registration(&[1, 2], 5, 8)));
    assert_eq!(
        actions,
        vec![
            LeaderAction::HighWatermarkAdvanced(HighWatermark(5)),
            done(1)
        ]
    );
    assert_eq!(l.isr(), &Isr::new(vec![1, 2]));
    assert_eq!(l.pending_isr(), None);
}

#[test]
fn an_idle_follower_holding_the_whole_log_stays_in_sync_without_fetching() {
    let (mut l, log) = leader(&[1, 2, 3], 5);
    l.on_follower_fetch(0, &fetch(2, 5), &log);
    l.on_follower_fetch(0, &fetch(3, 5), &log);
    // A fetch session sends nothing for an idle partition: no fetch for a long time.
    assert_eq!(l.on_tick(10 * LAG_MS), vec![]);
    // A write: both were caught up until it came, so both get a full lag window.
    l.on_appended(10 * LAG_MS, 6, None);
    assert_eq!(l.on_tick(10 * LAG_MS + 1), vec![]);
    assert_eq!(l.on_tick(11 * LAG_MS), vec![], "exactly the lag time");
    // Neither fetched the write within the lag time.
    assert_eq!(l.on_tick(11 * LAG_MS + 1), vec![alter(&[1])]);
}

#[test]
fn a_write_whose_isr_shrank_below_min_insync_replicas_gets_not_enough_replicas_after_append() {
    let (mut l, log) = leader(&[1, 2], 3);
    l.on_appended(0, 3, waiter(9, 2));
    l.on_follower_fetch(0, &fetch(2, 1), &log);
    assert_eq!(l.on_tick(LAG_MS + 1), vec![alter(&[1])]);
    let actions = l.on_alter_partition_response(LAG_MS + 1, Ok(registration(&[1], 5, 8)));
    assert_eq!(
        actions,
        vec![
            LeaderAction::HighWatermarkAdvanced(HighWatermark(3)),
            LeaderAction::CompleteProduce {
                id: ProduceId(9),
                error: Some(ResponseError::NotEnoughReplicasAfterAppend)
            }
        ]
    );
}

#[test]
fn a_follower_joins_the_isr_once_it_reaches_the_high_watermark_and_the_epoch_start() {
    let (mut l, log) = leader(&[1, 2], 6);
    l.on_follower_fetch(0, &fetch(2, 6), &log);
    assert_eq!(l.high_watermark(), HighWatermark(6));
    let (_, actions) = l.on_follower_fetch(1, &fetch(3, 5), &log);
    assert_eq!(actions, vec![], "below the high watermark");
    let (_, actions) = l.on_follower_fetch(2, &fetch(3, 6), &log);
    assert_eq!(actions, vec![expand(&[1, 2, 3], 3)]);
    // Counted at once for the high watermark (maximal ISR), not for min.insync.
    assert_eq!(l.maximal_isr(), Isr::new(vec![1, 2, 3]));
    assert_eq!(l.isr(), &Isr::new(vec![1, 2]));
    // Refused (e.g. broker 3 is fenced): no new proposal before the backoff.
    l.on_alter_partition_response(3, Err(ResponseError::IneligibleReplica));
    assert_eq!(l.maximal_isr(), Isr::new(vec![1, 2]));
    let (_, actions) = l.on_follower_fetch(4, &fetch(3, 6), &log);
    assert_eq!(actions, vec![]);
    let (_, actions) = l.on_follower_fetch(1_003, &fetch(3, 6), &log);
    assert_eq!(actions, vec![expand(&[1, 2, 3], 3)]);
}

#[test]
fn a_caught_up_follower_refused_once_is_proposed_again_without_fetching_again() {
    let (mut l, log) = leader(&[1, 2], 6);
    l.on_follower_fetch(0, &fetch(2, 6), &log);
    let (_, actions) = l.on_follower_fetch(1, &fetch(3, 6), &log);
    assert_eq!(actions, vec![expand(&[1, 2, 3], 3)]);
    l.on_alter_partition_response(3, Err(ResponseError::IneligibleReplica));
    // The partition is idle: broker 3's fetch session sends nothing more for it.
    assert_eq!(l.on_tick(4), vec![], "not before the backoff");
    assert_eq!(l.on_tick(1_003), vec![expand(&[1, 2, 3], 3)]);
}

/// A killed broker stays fenced until its process comes back: the proposals to add it
/// back, each refused, come ever further apart (up to 30 s) instead of every second,
/// and a fetch from its new process is proposed at once.
#[test]
fn a_follower_refused_again_and_again_is_proposed_ever_less_often() {
    let (mut l, log) = leader(&[1, 2], 6);
    l.on_follower_fetch(0, &fetch(2, 6), &log);
    let (_, actions) = l.on_follower_fetch(1, &fetch(3, 6), &log);
    assert_eq!(actions, vec![expand(&[1, 2, 3], 3)]);
    l.on_alter_partition_response(1, Err(ResponseError::IneligibleReplica));
    let mut refused_at = 1;
    let mut proposals = Vec::new();
    let mut now = 1;
    while now < 120_000 {
        now += 100;
        let actions = l.on_tick(now);
        if !actions.is_empty() {
            assert_eq!(actions, vec![expand(&[1, 2, 3], 3)]);
            proposals.push(now - refused_at);
            refused_at = now;
            l.on_alter_partition_response(now, Err(ResponseError::IneligibleReplica));
        }
    }
    // Gaps after each refusal: 1 s, 2 s, 4 s, ... up to the 30 s cap (to the tick).
    let gaps: Vec<i64> = proposals.iter().map(|g| (g + 99) / 1_000).collect();
    assert_eq!(&gaps[..6], &[1, 2, 4, 8, 16, 30], "{proposals:?}");
    assert!(gaps[6..].iter().all(|&g| g == 30), "{proposals:?}");

    // Its restarted process fetches: proposed with its new epoch straight away.
    let restarted = FollowerFetch {
        broker_epoch: Some(BrokerEpoch(900)),
        ..fetch(3, 6)
    };
    let (_, actions) = l.on_follower_fetch(now + 1_001, &restarted, &log);
    assert_eq!(actions.len(), 1, "{actions:?}");
}

/// KIP-903: the leader proposes a replica only with the broker epoch it fetched with
/// (the controller checks it is the current one), and a fetch from an earlier process
/// of that broker (a long poll that outlived it) is refused without being counted.
#[test]
fn isr_expansion_names_the_followers_broker_epoch_and_older_processes_are_refused() {
    let (mut l, log) = leader(&[1, 2], 6);
    l.on_follower_fetch(0, &fetch(2, 6), &log);
    let unregistered = FollowerFetch {
        broker_epoch: None,
        ..fetch(3, 6)
    };
    let (answer, actions) = l.on_follower_fetch(1, &unregistered, &log);
    assert!(matches!(answer, FollowerFetchAnswer::Records { .. }));
    assert_eq!(actions, vec![], "no broker epoch, no expansion");
    let (_, actions) = l.on_follower_fetch(2, &fetch(3, 6), &log);
    assert_eq!(actions, vec![expand(&[1, 2, 3], 3)]);
    l.on_alter_partition_response(3, Err(ResponseError::IneligibleReplica));

    // Broker 3 restarted with a newer epoch and an empty log; the old process's fetch
    // claiming offset 6 arrives after the new one's.
    let restarted = FollowerFetch {
        broker_epoch: Some(BrokerEpoch(500)),
        ..fetch(3, 0)
    };
    l.on_follower_fetch(4, &restarted, &log);
    let (answer, actions) = l.on_follower_fetch(5, &fetch(3, 6), &log);
    assert_eq!(
        answer,
        FollowerFetchAnswer::Error(ResponseError::NotLeaderOrFollower)
    );
    assert_eq!(actions, vec![]);
    assert_eq!(l.follower(3).and_then(|f| f.log_end_offset), Some(0));
    // Caught up, the new process is proposed with its own epoch.
    let caught_up = FollowerFetch {
        broker_epoch: Some(BrokerEpoch(500)),
        ..fetch(3, 6)
    };
    let (_, actions) = l.on_follower_fetch(1_004, &caught_up, &log);
    let mut proposal = proposal(expand(&[1, 2, 3], 3));
    proposal.added_epochs = vec![(3, BrokerEpoch(500))];
    assert_eq!(actions, vec![LeaderAction::AlterPartition(proposal)]);
}

/// The controller applied an expansion whose answer was lost; the resent proposal is
/// refused as stale. The added replica may already be elected (a preferred-leader
/// election right after the expansion), so it keeps counting for the high watermark
/// until the metadata says what the controller holds. Forgetting the proposal here
/// acknowledged a write that the new leader did not have (simulator seed 139).
#[test]
fn a_proposal_refused_as_stale_may_have_been_applied_and_keeps_counting() {
    let (mut l, log) = leader(&[1, 2], 6);
    l.on_follower_fetch(0, &fetch(2, 6), &log);
    let (_, actions) = l.on_follower_fetch(1, &fetch(3, 6), &log);
    assert_eq!(actions, vec![expand(&[1, 2, 3], 3)]);
    let log = MemLog::with_epochs(&[5; 7]);
    l.on_appended(2, 7, waiter(1, 6));
    l.on_follower_fetch(3, &fetch(2, 7), &log);
    for refusal in [
        ResponseError::InvalidUpdateVersion,
        ResponseError::FencedLeaderEpoch,
        ResponseError::NotLeaderOrFollower,
        ResponseError::RequestTimedOut,
    ] {
        let actions = l.on_alter_partition_response(4, Err(refusal));
        assert_eq!(
            actions,
            vec![],
            "{refusal:?}: broker 3 has not fetched offset 6"
        );
        assert_eq!(l.maximal_isr(), Isr::new(vec![1, 2, 3]), "{refusal:?}");
        assert_eq!(l.high_watermark(), HighWatermark(6));
    }
    // Sent again after a timeout at the usual pace; after a refusal that says the
    // view is stale, only once the metadata had long enough to settle it.
    assert_eq!(l.on_tick(1_004), vec![]);
    assert_eq!(l.isr_deadline_ms(), Some(10_004));
    assert_eq!(l.on_tick(10_004), vec![expand(&[1, 2, 3], 3)]);
    let actions = l.on_partition_update(10_005, registration(&[1, 2, 3], 5, 8));
    assert_eq!(actions, vec![]);
    assert_eq!(l.pending_isr(), None);
    let (_, actions) = l.on_follower_fetch(10_006, &fetch(3, 7), &log);
    assert_eq!(
        actions,
        vec![
            LeaderAction::HighWatermarkAdvanced(HighWatermark(7)),
            done(1)
        ]
    );
}

/// A proposal that timed out is sent again at the usual pace.
#[test]
fn a_proposal_without_an_answer_is_sent_again_after_the_retry_interval() {
    let (mut l, log) = leader(&[1, 2], 6);
    l.on_follower_fetch(0, &fetch(2, 6), &log);
    let (_, actions) = l.on_follower_fetch(1, &fetch(3, 6), &log);
    assert_eq!(actions, vec![expand(&[1, 2, 3], 3)]);
    assert_eq!(
        l.on_alter_partition_response(2, Err(ResponseError::RequestTimedOut)),
        vec![]
    );
    assert_eq!(l.on_tick(1_000), vec![]);
    assert_eq!(l.on_tick(1_001), vec![expand(&[1, 2, 3], 3)]);
    assert_eq!(l.isr_deadline_ms(), Some(2_001));
}

#[test]
fn a_follower_below_the_epoch_start_does_not_join_even_at_the_high_watermark() {
    // Led epoch 5 from offset 6; the previous high watermark was 2.
    let log = MemLog::with_epochs(&[3, 3, 3, 3, 3, 3]);
    let mut l = PartitionLeader::new(
        TP,
        1,
        config(),
        registration(&[1, 3], 5, 7),
        6,
        HighWatermark(2),
        0,
    );
    let f = FollowerFetch {
        replica: 2,
        current_leader_epoch: LeaderEpoch(5),
        fetch_offset: 4,
        last_fetched_epoch: 3,
        broker_epoch: Some(broker_epoch(2)),
        isr_eligible: true,
    };
    let (answer, actions) = l.on_follower_fetch(1, &f, &log);
    assert!(matches!(answer, FollowerFetchAnswer::Records { .. }));
    assert_eq!(actions, vec![]);
}

#[test]
fn an_unanswered_proposal_is_sent_again_and_a_newer_state_settles_it() {
    let (mut l, _) = leader(&[1, 2, 3], 0);
    assert_eq!(l.on_tick(LAG_MS + 1), vec![alter(&[1])]);
    assert_eq!(l.on_tick(LAG_MS + 500), vec![]);
    assert_eq!(l.on_tick(LAG_MS + 1_001), vec![alter(&[1])]);
    // The controller applied the first one; the metadata update arrives.
    l.on_partition_update(LAG_MS + 1_002, registration(&[1], 5, 8));
    assert_eq!(l.pending_isr(), None);
    // A stale update is ignored.
    l.on_partition_update(LAG_MS + 1_003, registration(&[1, 2, 3], 5, 7));
    assert_eq!(l.isr(), &Isr::new(vec![1]));
}

#[test]
fn a_follower_whose_log_diverged_is_told_where_its_epoch_ends_here() {
    // Our log: epoch 2 at offsets 0..3, epoch 5 from offset 3.
    let log = MemLog::with_epochs(&[2, 2, 2, 5, 5]);
    let mut l = PartitionLeader::new(
        TP,
        1,
        config(),
        registration(&[1, 2], 5, 7),
        5,
        HighWatermark(2),
        0,
    );
    // The follower wrote epoch 4 (never ours) up to offset 6.
    let f = FollowerFetch {
        replica: 2,
        current_leader_epoch: LeaderEpoch(5),
        fetch_offset: 6,
        last_fetched_epoch: 4,
        broker_epoch: Some(broker_epoch(2)),
        isr_eligible: true,
    };
    let (answer, actions) = l.on_follower_fetch(1, &f, &log);
    assert_eq!(
        answer,
        FollowerFetchAnswer::Diverging {
            epoch: 2,
            end_offset: 3,
            high_watermark: HighWatermark(2)
        }
    );
    assert_eq!(actions, vec![]);
    assert_eq!(l.follower(2).unwrap().log_end_offset, None, "not counted");
    // Same epoch but longer than ours in it.
    let f = FollowerFetch {
        last_fetched_epoch: 2,
        fetch_offset: 4,
        ..f
    };
    let (answer, _) = l.on_follower_fetch(1, &f, &log);
    assert!(matches!(
        answer,
        FollowerFetchAnswer::Diverging {
            epoch: 2,
            end_offset: 3,
            ..
        }
    ));
    // Our log is empty: everything beyond it goes.
    let empty = MemLog::default();
    let mut l = PartitionLeader::new(
        TP,
        1,
        config(),
        registration(&[1, 2], 5, 7),
        0,
        HighWatermark(0),
        0,
    );
    let (answer, _) = l.on_follower_fetch(1, &f, &empty);
    assert!(matches!(
        answer,
        FollowerFetchAnswer::Diverging {
            epoch: -1,
            end_offset: 0,
            ..
        }
    ));
}

/// A new leader that has not appended in its epoch yet: its log's epochs end below
/// the follower's last epoch (written by a leader this one never followed). The
/// follower's epoch ends, here, where this leader's epoch starts, and the answer
/// names our latest epoch there, so the follower truncates to where that epoch ends
/// in its own log. Answering "no epoch known, keep up to our log end" left the
/// follower with a record of another epoch at an offset we hold in ours: it fetched
/// the same divergence forever and never rejoined the ISR (simulator seed 2448).
#[test]
fn a_follower_ahead_of_our_epochs_is_told_where_our_epoch_starts() {
    // Our log: epoch 3 at offsets 0..3; we lead epoch 5 from offset 3.
    let log = MemLog::with_epochs(&[3, 3, 3]);
    let mut l = PartitionLeader::new(
        TP,
        1,
        config(),
        registration(&[1, 2], 5, 7),
        3,
        HighWatermark(2),
        0,
    );
    // The follower holds epoch 4 from offset 2: [3, 3, 4, 4].
    let f = FollowerFetch {
        replica: 2,
        current_leader_epoch: LeaderEpoch(5),
        fetch_offset: 4,
        last_fetched_epoch: 4,
        broker_epoch: Some(broker_epoch(2)),
        isr_eligible: true,
    };
    let (answer, _) = l.on_follower_fetch(1, &f, &log);
    assert_eq!(
        answer,
        FollowerFetchAnswer::Diverging {
            epoch: 3,
            end_offset: 3,
            high_watermark: HighWatermark(2)
        }
    );
    let mut follower = crate::replication::follower::PartitionFollower::new(
        TP,
        2,
        crate::replication::follower::FollowerConfig::default(),
        1,
        LeaderEpoch(5),
        HighWatermark(2),
        0,
    );
    let theirs = MemLog::with_epochs(&[3, 3, 4, 4]);
    let crate::replication::follower::FollowerAction::Fetch(request) =
        follower.on_tick(1, &theirs)[0]
    else {
        panic!("a follower with a leader fetches");
    };
    let actions = follower.on_fetch_response(2, &request, answer, 4, &theirs);
    assert_eq!(
        actions,
        vec![crate::replication::follower::FollowerAction::TruncateTo(2)]
    );
}

#[test]
fn fetches_with_another_leader_epoch_are_fenced_or_unknown() {
    let (mut l, log) = leader(&[1, 2], 0);
    let stale = FollowerFetch {
        current_leader_epoch: LeaderEpoch(4),
        ..fetch(2, 0)
    };
    let newer = FollowerFetch {
        current_leader_epoch: LeaderEpoch(6),
        ..fetch(2, 0)
    };
    let stranger = fetch(7, 0);
    for (f, code) in [
        (stale, ResponseError::FencedLeaderEpoch),
        (newer, ResponseError::UnknownLeaderEpoch),
        (stranger, ResponseError::NotLeaderOrFollower),
    ] {
        let (answer, actions) = l.on_follower_fetch(1, &f, &log);
        assert_eq!(answer, FollowerFetchAnswer::Error(code));
        assert_eq!(actions, vec![]);
    }
}

#[test]
fn clients_see_no_high_watermark_until_it_reaches_the_start_of_the_epoch() {
    let log = MemLog::with_epochs(&[3, 3, 3, 3]);
    let mut l = PartitionLeader::new(
        TP,
        1,
        config(),
        registration(&[1, 2], 5, 7),
        4,
        HighWatermark(1),
        0,
    );
    assert_eq!(
        l.client_high_watermark(),
        Err(ResponseError::OffsetNotAvailable)
    );
    let f = FollowerFetch {
        last_fetched_epoch: 3,
        ..fetch(2, 4)
    };
    l.on_follower_fetch(1, &f, &log);
    assert_eq!(l.client_high_watermark(), Ok(HighWatermark(4)));
}

#[test]
fn waiters_time_out_and_fail_over_with_not_leader() {
    let (mut l, _) = leader(&[1, 2], 0);
    l.on_appended(
        0,
        1,
        waiter(1, 0).map(|w| ProduceWaiter {
            deadline_ms: 5_000,
            ..w
        }),
    );
    l.on_appended(0, 2, waiter(2, 1));
    assert_eq!(l.on_tick(4_999), vec![]);
    assert_eq!(
        l.on_tick(5_000),
        vec![LeaderAction::CompleteProduce {
            id: ProduceId(1),
            error: Some(ResponseError::RequestTimedOut)
        }]
    );
    assert_eq!(
        l.resign(),
        vec![LeaderAction::CompleteProduce {
            id: ProduceId(2),
            error: Some(ResponseError::NotLeaderOrFollower)
        }]
    );
}

#[test]
fn a_single_replica_isr_commits_on_append() {
    let mut reg = registration(&[1], 0, 0);
    reg.replicas = vec![1];
    let mut l = PartitionLeader::new(TP, 1, LeaderConfig::default(), reg, 0, HighWatermark(0), 0);
    assert_eq!(
        l.on_appended(0, 1, waiter(1, 0)),
        vec![
            LeaderAction::HighWatermarkAdvanced(HighWatermark(1)),
            done(1)
        ]
    );
    assert_ne!(l.registration().leader, NO_LEADER);
}

/// Before `next_deadline_ms` a tick has nothing to do; at it, it does.
fn assert_quiet_until_deadline(l: &PartitionLeader, from_ms: i64) -> i64 {
    let at = l.next_deadline_ms().expect("a deadline");
    for t in [from_ms, (from_ms + at) / 2, at - 1] {
        if t < at {
            assert_eq!(l.clone().on_tick(t), vec![], "tick at {t} before {at}");
        }
    }
    assert_ne!(l.clone().on_tick(at), vec![], "tick at the deadline {at}");
    at
}

#[test]
fn an_idle_leader_whose_followers_hold_its_whole_log_needs_no_tick() {
    let (mut l, log) = leader(&[1, 2, 3], 5);
    l.on_follower_fetch(0, &fetch(2, 5), &log);
    l.on_follower_fetch(0, &fetch(3, 5), &log);
    assert_eq!(l.next_deadline_ms(), None);
    // Kafka's rule: a follower at the leader's log end is in sync however long ago it
    // fetched; one that is gone is fenced and dropped by the controller instead.
    assert_eq!(l.on_tick(100 * LAG_MS), vec![]);
    assert_eq!(l.isr(), &Isr::new(vec![1, 2, 3]));
}

#[test]
fn an_append_past_a_silent_follower_arms_its_lag_deadline() {
    // The log holds a sixth record the leader has yet to be told of.
    let log = MemLog::with_epochs(&[5; 6]);
    let mut l = PartitionLeader::new(
        TP,
        1,
        config(),
        registration(&[1, 2, 3], 5, 7),
        5,
        HighWatermark(0),
        0,
    );
    l.on_follower_fetch(0, &fetch(2, 5), &log);
    l.on_follower_fetch(0, &fetch(3, 5), &log);
    l.on_appended(2 * LAG_MS, 6, None);
    // Broker 2 fetches the new record; broker 3 last caught up at 0.
    l.on_follower_fetch(2 * LAG_MS, &fetch(2, 6), &log);
    assert_eq!(l.next_deadline_ms(), Some(LAG_MS + 1), "already overdue");
    assert_eq!(l.on_tick(2 * LAG_MS), vec![alter(&[1, 2])]);
    // In flight: the next attention is the resend.
    assert_eq!(l.next_deadline_ms(), Some(2 * LAG_MS + 1_000));
}

#[test]
fn a_lagging_follower_is_due_exactly_at_the_lag_time() {
    let (mut l, log) = leader(&[1, 2, 3], 5);
    l.on_follower_fetch(100, &fetch(2, 5), &log);
    l.on_follower_fetch(100, &fetch(3, 3), &log);
    // Broker 3 was given a full lag window from the election at 0.
    let at = assert_quiet_until_deadline(&l, 100);
    assert_eq!(at, LAG_MS + 1);
}

#[test]
fn the_earliest_acks_all_deadline_is_the_next_attention() {
    let (mut l, log) = leader(&[1, 2], 0);
    l.on_follower_fetch(0, &fetch(2, 0), &log);
    assert_eq!(l.next_deadline_ms(), None);
    let w = |id, deadline_ms| {
        Some(ProduceWaiter {
            id: ProduceId(id),
            last_offset: 0,
            deadline_ms,
        })
    };
    l.on_appended(0, 1, w(1, 9_000));
    l.on_appended(0, 1, w(2, 4_000));
    // Broker 2 keeps up, so only the waiters are due.
    l.on_follower_fetch(1, &fetch(2, 0), &log);
    let at = assert_quiet_until_deadline(&l, 1);
    assert_eq!(at, 4_000);
}

#[test]
fn a_proposal_backoff_holds_the_lag_deadline() {
    let (mut l, log) = leader(&[1, 2, 3], 6);
    l.on_follower_fetch(0, &fetch(2, 6), &log);
    l.on_follower_fetch(1, &fetch(3, 5), &log);
    l.on_alter_partition_response(1, Err(ResponseError::IneligibleReplica));
    // Broker 3 is due at LAG_MS + 1 either way; a refusal's backoff can only delay it.
    assert_eq!(l.next_deadline_ms(), Some(LAG_MS + 1));
}

/// KIP-841: a follower whose broker the leader's metadata shows fenced or in controlled
/// shutdown is not proposed into the ISR, by its fetches or by ticks, though it has
/// everything; once a fetch finds it eligible again, it is.
#[test]
fn a_follower_on_a_broker_shutting_down_is_not_proposed_into_the_isr() {
    let (mut l, log) = leader(&[1, 2], 6);
    l.on_follower_fetch(0, &fetch(2, 6), &log);
    let shutting_down = FollowerFetch {
        isr_eligible: false,
        ..fetch(3, 6)
    };
    let (answer, actions) = l.on_follower_fetch(1, &shutting_down, &log);
    assert!(matches!(answer, FollowerFetchAnswer::Records { .. }));
    assert_eq!(actions, vec![], "proposed while shutting down");
    for now in [1_000, 5_000, 60_000] {
        l.on_follower_fetch(now, &fetch(2, 6), &log);
        let (_, mut actions) = l.on_follower_fetch(now, &shutting_down, &log);
        actions.extend(l.on_tick(now + 1));
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a, LeaderAction::AlterPartition(r) if r.new_isr.contains(3))),
            "proposed at {now}: {actions:?}"
        );
    }
    assert_eq!(l.maximal_isr(), Isr::new(vec![1, 2]));
    let (_, actions) = l.on_follower_fetch(60_001, &fetch(3, 6), &log);
    assert_eq!(actions, vec![expand(&[1, 2, 3], 3)]);
}

/// A follower that caught up while its broker was ineligible is proposed as soon as the
/// metadata shows that broker process eligible, with no fetch in between (an idle
/// partition's follower brings no news); not for another process of that broker.
#[test]
fn a_follower_is_proposed_when_its_broker_becomes_eligible() {
    let (mut l, log) = leader(&[1, 2], 6);
    l.on_follower_fetch(0, &fetch(2, 6), &log);
    let fenced = FollowerFetch {
        isr_eligible: false,
        ..fetch(3, 6)
    };
    l.on_follower_fetch(1, &fenced, &log);
    assert_eq!(
        l.on_broker_state(2, 3, Some(BrokerEpoch(7))),
        vec![],
        "another process of broker 3"
    );
    assert_eq!(l.on_broker_state(3, 3, None), vec![]);
    assert_eq!(
        l.on_broker_state(4, 3, Some(broker_epoch(3))),
        vec![expand(&[1, 2, 3], 3)]
    );
}

/// Retention deleted the whole log here, epochs included (a lost epoch checkpoint):
/// a follower at our log start, with an epoch we no longer know, holds nothing that
/// could diverge. It is answered and joins the ISR, rather than told "diverging" at
/// the offset it already fetches from, forever.
#[test]
fn a_follower_at_the_log_start_is_not_diverging_when_the_epochs_were_deleted() {
    let (mut l, mut log) = leader(&[1], 6);
    log.delete_below_forgetting_epochs(6);
    let (answer, actions) = l.on_follower_fetch(1, &fetch(2, 6), &log);
    assert!(
        matches!(
            answer,
            FollowerFetchAnswer::Records {
                fetch_offset: 6,
                ..
            }
        ),
        "{answer:?}"
    );
    assert!(actions.contains(&expand(&[1, 2], 2)), "{actions:?}");
    // Past our log start it is checked: what it holds there we do not.
    let (answer, _) = l.on_follower_fetch(2, &fetch(3, 7), &log);
    assert!(
        matches!(answer, FollowerFetchAnswer::Diverging { .. }),
        "{answer:?}"
    );
}
