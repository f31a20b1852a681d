//! The broker's timer task: fires what the `BrokerTimers` queue says is due, leader
//! ticks inline (pure decisions and channel sends) and log housekeeping on the blocking
//! pool (file I/O), and checks the broker's contact with the controller.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::broker::Broker;
use super::timers::TimerKind;

/// How often the broker checks its contact with the controller; also the longest
/// sleep of [`run`], so a deadline armed without a wake-up is late by at most this.
const CONTACT_CHECK: Duration = Duration::from_millis(100);
/// Partitions visited per round before the task yields to others.
const DUE_PER_ROUND: usize = 1024;

/// Fire the broker's timers until shutdown: leader ticks inline (pure decisions and
/// channel sends), log housekeeping on the blocking pool (file I/O).
pub async fn run(broker: Arc<Broker>, shutdown: CancellationToken) {
    let timers = broker.timers.clone();
    loop {
        broker.check_contact();
        let now_ms = broker.clock.now_ms();
        let due = timers.pop_due(now_ms, DUE_PER_ROUND);
        let full = due.len() == DUE_PER_ROUND;
        let mut housekeeping = Vec::new();
        for key in due {
            let Some(p) = broker.partitions.get(&key.topic, key.partition) else {
                continue;
            };
            match key.kind {
                TimerKind::Leader => {
                    let proposals = p.tick();
                    broker.propose_isr(&p, proposals);
                }
                TimerKind::Log => housekeeping.push(p),
            }
        }
        if !housekeeping.is_empty() {
            let b = broker.clone();
            let _ = tokio::task::spawn_blocking(move || b.housekeeping(&housekeeping)).await;
        }
        if full {
            tokio::task::yield_now().await;
            continue;
        }
        let sleep_ms = timers
            .next_deadline_ms()
            .map_or(CONTACT_CHECK.as_millis() as i64, |at| {
                (at - broker.clock.now_ms()).clamp(0, CONTACT_CHECK.as_millis() as i64)
            });
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = timers.earlier.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(sleep_ms as u64)) => {}
        }
    }
}
