//! Who may do what on the internal plane: one pure decision per call, from the
//! caller's identity (proved by its certificate, see `internal_tls`) and the metadata,
//! never from what the request says about its sender.
//!
//! The rules, with a caller proved to be node N:
//! - Raft messages only from a voter (the configured `--voters` or the committed
//!   membership's), and only in N's own name.
//! - A registration or heartbeat only for broker N (a heartbeat for broker -1 is the
//!   probe a starting voter sends to find a running quorum, and names nobody).
//! - A controller request only in N's own name. That makes the controller's own
//!   rules hold for the proved node: an ISR change (AlterPartition) is accepted only
//!   from the partition's current leader with its current epochs
//!   (`Controller::alter_partition`), a storage report only for N's own replicas. Those
//!   rules stay there, in one place, and their answers go only to a proved broker,
//!   which holds the whole metadata log anyway.
//! - A follower fetch only by N for itself, of a partition N is an assigned replica of.
//!
//! Metadata records a broker submits are limited, whoever calls (even on a plaintext
//! plane): a broker plans only admin changes (topics, partitions, configs); every
//! other record (leaders, ISR, epochs, broker registrations, producer id blocks) is the
//! controller's own decision and is never taken from outside. New partitions must come
//! as a placement plans them: leader epoch 0, the ISR the whole replica set.
//!
//! A refusal is one generic PERMISSION_DENIED status; the reason is logged here, on
//! the refusing broker, and never sent: it would tell a prober which epochs, leaders
//! or replicas to claim.

use std::collections::BTreeSet;

use super::internal_tls::Caller;
use super::ControllerRequest;
use crate::metadata::image::{MetadataRecord, PartitionState};

/// One internal call, as far as authorization looks at it.
#[derive(Debug, Clone, Copy)]
pub enum InternalCall<'a> {
    /// A Raft message; `sender` is the node the message says it comes from.
    Raft {
        sender: Option<i32>,
    },
    RegisterBroker {
        broker: i32,
    },
    BrokerHeartbeat {
        broker: i32,
    },
    /// `request` is None when it cannot be decoded (the controller refuses it).
    Submit {
        broker: i32,
        request: Option<&'a ControllerRequest>,
    },
    ReplicaFetch {
        replica: i32,
        partition: Option<&'a PartitionState>,
    },
    /// A transaction coordinator's markers; `coordinator` is the node it names,
    /// `state_partition` the `__transaction_state` partition it says it leads (None
    /// when the image has no such partition).
    WriteTxnMarkers {
        coordinator: i32,
        state_partition: Option<&'a PartitionState>,
    },
}

/// Why a call was refused: for the refusing broker's log only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the connection carries no identity")]
    NoIdentity,
    #[error("node {caller} spoke in the name of node {claimed}")]
    ClaimsAnotherNode { caller: i32, claimed: i32 },
    #[error("node {0} is not a metadata quorum voter")]
    NotAVoter(i32),
    #[error("node {0} is not an assigned replica of the partition")]
    NotAReplica(i32),
    #[error("node {0} does not lead the transaction state partition it names")]
    NotTheCoordinator(i32),
    #[error("a {0} record is the controller's own decision")]
    ControllerRecord(&'static str),
    #[error("partition {partition} of a new topic or partition is not as placed: {what}")]
    UnplacedPartition { partition: i32, what: &'static str },
}

/// What the rules consult beyond the call.
#[derive(Debug, Clone, Copy)]
pub struct Roles<'a> {
    /// Metadata quorum voters: configured and committed.
    pub voters: &'a BTreeSet<i32>,
}

/// The decision for `call` from `caller` (None: a request that did not come through
/// the internal listener's accept path, which is refused).
pub fn authorize(
    caller: Option<Caller>,
    call: &InternalCall<'_>,
    roles: &Roles<'_>,
) -> Result<(), Refusal> {
    if let InternalCall::Submit {
        request: Some(ControllerRequest::Records(records)),
        ..
    } = call
    {
        check_broker_records(records)?;
    }
    let node = match caller.ok_or(Refusal::NoIdentity)? {
        // Without TLS nobody is authenticated: the plane runs as it did before,
        // taking every peer at its word.
        Caller::Unauthenticated => return Ok(()),
        Caller::Node(node) => node,
    };
    let in_own_name = |claimed: i32| {
        if claimed == node {
            Ok(())
        } else {
            Err(Refusal::ClaimsAnotherNode {
                caller: node,
                claimed,
            })
        }
    };
    match *call {
        InternalCall::Raft { sender } => {
            if !roles.voters.contains(&node) {
                return Err(Refusal::NotAVoter(node));
            }
            sender.map_or(Ok(()), in_own_name)
        }
        InternalCall::RegisterBroker { broker } => in_own_name(broker),
        InternalCall::BrokerHeartbeat { broker: -1 } => Ok(()),
        InternalCall::BrokerHeartbeat { broker } => in_own_name(broker),
        // Every request a broker makes in its own name: its ISR changes and storage
        // reports (judged by the controller, see the module doc), admin changes
        // planned for its clients (their ACLs are checked on the Kafka side; records
        // limited above), producer id blocks and barriers.
        InternalCall::Submit { broker, .. } => in_own_name(broker),
        // Only the leader of a `__transaction_state` partition coordinates
        // transactions; the data partition's log also fences markers of an older
        // coordinator epoch or producer epoch.
        InternalCall::WriteTxnMarkers {
            coordinator,
            state_partition,
        } => {
            in_own_name(coordinator)?;
            if state_partition.is_some_and(|p| p.leader == node) {
                Ok(())
            } else {
                Err(Refusal::NotTheCoordinator(node))
            }
        }
        InternalCall::ReplicaFetch { replica, partition } => {
            in_own_name(replica)?;
            if partition.is_some_and(|p| p.is_replica(node)) {
                Ok(())
            } else {
                Err(Refusal::NotAReplica(node))
            }
        }
    }
}

/// May a broker submit `records`? Only the admin changes it plans for its clients.
pub fn check_broker_records(records: &[MetadataRecord]) -> Result<(), Refusal> {
    for record in records {
        match record {
            MetadataRecord::TopicCreated { partitions, .. }
            | MetadataRecord::PartitionsCreated { partitions, .. } => {
                partitions.iter().try_for_each(check_placed)?
            }
            MetadataRecord::TopicConfigsSet { .. }
            | MetadataRecord::TopicDeleted { .. }
            | MetadataRecord::ScramCredentialSet { .. }
            | MetadataRecord::ScramCredentialRemoved { .. }
            | MetadataRecord::GroupConfigsSet { .. }
            | MetadataRecord::BrokerConfigsSet { .. } => {}
            MetadataRecord::PartitionChanged { .. } => {
                return Err(Refusal::ControllerRecord("PartitionChanged"))
            }
            MetadataRecord::ProducerIdsReserved { .. } => {
                return Err(Refusal::ControllerRecord("ProducerIdsReserved"))
            }
            // The controller writes these from CreateAcls/DeleteAcls requests.
            MetadataRecord::AclCreated { .. } | MetadataRecord::AclRemoved { .. } => {
                return Err(Refusal::ControllerRecord("ACL"))
            }
            MetadataRecord::BrokerRegistered { .. }
            | MetadataRecord::BrokerUnfenced { .. }
            | MetadataRecord::BrokerFenced { .. }
            | MetadataRecord::BrokerShuttingDown { .. }
            | MetadataRecord::BrokerUnregistered { .. } => {
                return Err(Refusal::ControllerRecord("broker registration"))
            }
        }
    }
    Ok(())
}

/// A new partition as placement makes it: distinct replicas, all in the ISR, the
/// first one leading in epoch 0, nothing moving or offline.
fn check_placed(p: &PartitionState) -> Result<(), Refusal> {
    let bad = |what| {
        Err(Refusal::UnplacedPartition {
            partition: p.partition,
            what,
        })
    };
    let distinct: BTreeSet<i32> = p.replicas.iter().copied().collect();
    if p.replicas.is_empty() || distinct.len() != p.replicas.len() {
        return bad("replicas empty or repeated");
    }
    if p.leader_epoch != 0 || p.partition_epoch != 0 {
        return bad("epochs other than 0");
    }
    if p.isr != p.replicas || Some(&p.leader) != p.replicas.first() {
        return bad("ISR other than the replicas, or leader other than the first replica");
    }
    if !(p.adding_replicas.is_empty()
        && p.removing_replicas.is_empty()
        && p.offline_replicas.is_empty())
    {
        return bad("a reassignment or offline replicas");
    }
    Ok(())
}

/// The one answer every refusal gets.
pub fn denied() -> tonic::Status {
    tonic::Status::permission_denied("permission denied")
}

/// Authorize or log and refuse with [`denied`].
pub fn check(
    caller: Option<Caller>,
    call: &InternalCall<'_>,
    roles: &Roles<'_>,
) -> Result<(), tonic::Status> {
    authorize(caller, call, roles).map_err(|refusal| {
        tracing::warn!(?caller, %refusal, "internal call refused");
        denied()
    })
}

#[cfg(test)]
#[path = "authz_tests.rs"]
mod tests;
