//! Raft membership as brokers register and leave: a registering broker becomes a
//! learner, a voter when its --voters names it; an unregistered one leaves.

// The serve loop and its types are the parent's (controller.rs).
use super::*;

impl Active {
    /// Make a registering broker a Raft learner if it is not a member, and a voter
    /// when its --voters names it. In the background: a promotion waits for the learner
    /// to catch up, and openraft takes one membership change at a time, so it retries.
    pub(super) async fn ensure_member(
        &self,
        req: &pb::RegisterBrokerRequest,
    ) -> Result<(), NotCommitted> {
        let id = req.broker_id as NodeId;
        let membership = self.raft.metrics().borrow().membership_config.clone();
        let m = membership.membership();
        let is_voter = m.voter_ids().any(|v| v == id);
        let want_voter = req.wants_voter && !is_voter;
        if m.get_node(&id).is_none() || want_voter {
            self.join(id, req.internal_address.clone(), want_voter);
        }
        Ok(())
    }

    fn join(&self, id: NodeId, address: String, voter: bool) {
        if !self.handle.promoting.lock().insert(id) {
            return;
        }
        let raft = self.raft.clone();
        let handle = self.handle.clone();
        tokio::spawn(async move {
            let what = if voter { "join as a voter" } else { "join" };
            retry_membership_change(&raft, id, what, || async {
                // Blocking when promoting: returns once the learner is close enough.
                raft.add_learner(id, BasicNode::new(&address), voter)
                    .await
                    .map_err(|e| e.to_string())?;
                if voter {
                    let add = BTreeMap::from([(id, BasicNode::new(&address))]);
                    raft.change_membership(ChangeMembers::AddVoters(add), false)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            })
            .await;
            handle.promoting.lock().remove(&id);
        });
    }

    /// Drop an unregistered broker's learner from the Raft membership, so the leader
    /// stops replicating to it. (Should leadership move first, the learner stays a
    /// member that nothing reads.)
    pub(super) fn leave(&self, id: NodeId) {
        let raft = self.raft.clone();
        tokio::spawn(async move {
            retry_membership_change(&raft, id, "leave", || async {
                let remove = ChangeMembers::RemoveNodes(BTreeSet::from([id]));
                raft.change_membership(remove, false)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
            .await;
        });
    }
}

/// Runs a membership change for `broker` until it succeeds, retrying with backoff
/// while this node leads, for at most [`PROMOTE_TIMEOUT`] (openraft takes one
/// membership change at a time, so a change can be refused while another runs).
async fn retry_membership_change<F, Fut>(
    raft: &Raft<TypeConfig>,
    broker: NodeId,
    what: &str,
    mut attempt: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + PROMOTE_TIMEOUT;
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(1));
    loop {
        match tokio::time::timeout_at(deadline, attempt()).await {
            Ok(Ok(())) => {
                tracing::info!(broker, "metadata quorum: {what} done");
                return;
            }
            Ok(Err(e)) => tracing::info!(broker, "metadata quorum: {what} not done yet: {e}"),
            Err(_) => {
                tracing::warn!(broker, "metadata quorum: {what} timed out");
                return;
            }
        }
        let delay = backoff.next_delay();
        if raft.metrics().borrow().state != ServerState::Leader
            || Instant::now() + delay >= deadline
        {
            return;
        }
        tokio::time::sleep(delay).await;
    }
}
