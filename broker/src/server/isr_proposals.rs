//! ISR changes on their way to the controller. The proposals of every partition this
//! broker leads travel together, in one AlterPartition request at a time (as Kafka's
//! AlterPartitionManager sends them). When a broker comes back, the leaders of
//! hundreds of partitions each want it in their ISR: the controller decides them all
//! and commits them as one entry, not one commit (and one request) each.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use tokio::sync::Notify;

use super::partition::Partition;
use crate::replication::leader::AlterPartitionRequest;
use crate::replication::{PartitionRegistration, TopicPartition};

/// The most partitions one request carries; the rest go in the next.
pub const MAX_BATCH: usize = 1000;
/// How long one request may take, its commit and its application here included. The
/// leaders resend what is unanswered; a longer wait would hold back every later ISR
/// change of this broker.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The controller's answer to one request: an answer per proposal, or the error of
/// the whole call.
pub type Answers = Result<Vec<Result<PartitionRegistration, ResponseError>>, ResponseError>;

/// One proposal waiting to be sent, with the partition that answers it.
type Queued = (Arc<Partition>, AlterPartitionRequest);

#[derive(Default)]
pub struct IsrProposals {
    /// At most one per partition: a later proposal (a resend) replaces the queued one.
    queued: parking_lot::Mutex<Waiting>,
    wake: Notify,
}

#[derive(Default)]
struct Waiting {
    by_partition: BTreeMap<TopicPartition, Queued>,
    /// The sending task runs (it is started by the first proposal).
    sending: bool,
}

impl IsrProposals {
    /// Queue `proposals` of `partition`; whether the sending task must be started.
    pub fn queue(&self, partition: &Arc<Partition>, proposals: Vec<AlterPartitionRequest>) -> bool {
        if proposals.is_empty() {
            return false;
        }
        // Where the leader last saw each follower (None: no fetch from it since this
        // leader took over), which tells why a replica leaves the ISR.
        let positions = partition.follower_positions();
        for request in &proposals {
            tracing::info!(topic = %partition.topic, partition = partition.index,
                isr = %request.new_isr, log_end = partition.log_end_offset(),
                followers = ?positions, "proposing an ISR change");
        }
        let start = {
            let mut waiting = self.queued.lock();
            for request in proposals {
                waiting
                    .by_partition
                    .insert(request.partition, (partition.clone(), request));
            }
            !std::mem::replace(&mut waiting.sending, true)
        };
        self.wake.notify_one();
        start
    }

    /// Up to [`MAX_BATCH`] queued proposals, oldest partition ids first.
    fn take_batch(&self) -> Vec<Queued> {
        let mut waiting = self.queued.lock();
        let keys: Vec<TopicPartition> = waiting
            .by_partition
            .keys()
            .take(MAX_BATCH)
            .copied()
            .collect();
        keys.iter()
            .filter_map(|k| waiting.by_partition.remove(k))
            .collect()
    }
}

/// The sending task: one request in flight; what queued meanwhile goes in the next.
/// `alter` sends one request to the controller; `None` (the broker is gone) ends the
/// task. The answers go back to their partitions, and what those propose next is
/// queued for a later request.
pub async fn send<F, Fut>(proposals: Arc<IsrProposals>, alter: F)
where
    F: Fn(Vec<AlterPartitionRequest>) -> Fut,
    Fut: Future<Output = Option<Answers>>,
{
    loop {
        let batch = proposals.take_batch();
        if batch.is_empty() {
            proposals.wake.notified().await;
            continue;
        }
        let requests = batch.iter().map(|(_, r)| r.clone()).collect();
        let Some(answers) = alter(requests).await else {
            return;
        };
        // A call that failed as a whole is logged once, not once per partition.
        let (answers, each_logged) = match answers {
            Ok(answers) if answers.len() == batch.len() => (answers, true),
            Ok(answers) => {
                tracing::warn!(
                    sent = batch.len(),
                    answered = answers.len(),
                    "AlterPartition answered for another number of partitions"
                );
                let failed = vec![Err(ResponseError::UnknownServerError); batch.len()];
                (failed, false)
            }
            Err(code) => {
                tracing::info!(
                    partitions = batch.len(),
                    ?code,
                    "ISR changes not decided by the controller"
                );
                (vec![Err(code); batch.len()], false)
            }
        };
        for ((partition, request), answer) in batch.into_iter().zip(answers) {
            if let (Err(code), true) = (&answer, each_logged) {
                tracing::info!(topic = %partition.topic, partition = partition.index, ?code,
                    "ISR change refused");
            }
            let more = partition.on_alter_partition_response(&request, answer);
            proposals.queue(&partition, more);
        }
    }
}
