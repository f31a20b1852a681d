//! What the operator asks of a cluster's brokers through fjord-client: their state
//! with the reassignments in progress, reassignments, preferred-leader elections.

use crate::context::{BrokerEndpoint, Context};
use crate::scale::{BrokerState, PartitionReplicas};
use crate::Result;

/// What the brokers report, with the reassignments in progress (a drain and a
/// rebalance both wait for theirs).
pub async fn broker_state(ctx: &Context, bootstrap: &BrokerEndpoint) -> Result<BrokerState> {
    let client = ctx.broker(bootstrap).await?;
    // Reassignments first: a move that completes between the two answers then shows
    // with its final replicas, never as the old and new replicas of a move no longer
    // listed, which a drain would take for replicas still to move and send again.
    let asked = async {
        let reassignments = client.list_partition_reassignments().await?;
        let md = client.metadata(None).await?;
        Ok::<_, fjord_client::Error>(BrokerState::from_metadata(&md, &reassignments))
    };
    match asked.await {
        Ok(state) => Ok(state),
        Err(e) => {
            ctx.forget_broker(bootstrap).await;
            Err(e.into())
        }
    }
}

/// Asks for preferred-leader elections of `partitions` (a rebalance's or a roll's; `why`
/// goes to the log). A partition whose preferred leader is not in sync yet stays as it
/// is; a later run asks again.
pub async fn elect_preferred(
    ctx: &Context,
    bootstrap: &BrokerEndpoint,
    partitions: &[(String, i32)],
    why: &str,
) -> Result<()> {
    let client = ctx.broker(bootstrap).await?;
    for (topic, partition, error) in client.elect_preferred_leaders(partitions).await? {
        tracing::info!(%topic, partition, ?error, "{why}: preferred leader not elected yet");
    }
    Ok(())
}

/// Starts reassignments (a drain's or a rebalance's; `why` goes to the log).
pub async fn start_moves(
    ctx: &Context,
    bootstrap: &BrokerEndpoint,
    moves: &[PartitionReplicas],
    why: &str,
) -> Result<()> {
    if moves.is_empty() {
        return Ok(());
    }
    let client = ctx.broker(bootstrap).await?;
    for m in moves {
        tracing::info!(topic = %m.topic, partition = m.partition, replicas = ?m.replicas, "{why}");
        client
            .alter_partition_reassignment(&m.topic, m.partition, Some(m.replicas.clone()))
            .await?;
    }
    Ok(())
}
