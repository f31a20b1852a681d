//! Consumer groups, classic protocol: the coordinator state machine and the records
//! it keeps in `__consumer_offsets`. Nothing here does I/O or reads a clock; the
//! server runtime (`server::coordinator`) feeds events with the time and carries out
//! the returned actions (answer parked requests, append records).
//!
//! # Layout
//!
//! - `coordinator`: [`GroupCoordinator`], the per-group state machine
//!   (Empty → PreparingRebalance → CompletingRebalance → Stable → Dead): JoinGroup,
//!   SyncGroup, Heartbeat, LeaveGroup, describe/delete, the clock, replay.
//! - `rebalance`: the membership steps those events share (admit, rebalance, remove).
//! - `offsets`: committed offsets, OffsetDelete, retention.
//! - `state`: [`Group`], its members, and the requests and [`Action`]s exchanged with
//!   the runtime.
//! - `records`: Kafka's key/value schemas for offsets and group metadata.
//! - `txn_offsets`: offsets committed in transactions, pending until their marker
//!   (TxnOffsetCommit, KIP-98/KIP-447), and the log order that decides between them
//!   and plain commits.
//! - `txn_commit`: the coordinator's transactional requests, on top of `txn_offsets`.

pub mod coordinator;
mod offsets;
mod rebalance;
pub mod records;
pub mod state;
#[cfg(test)]
mod tests;
mod txn_commit;
mod txn_offsets;
#[cfg(test)]
mod txn_offsets_tests;

pub use coordinator::GroupCoordinator;
pub use records::{GroupRecord, GroupValue, MemberValue, OffsetValue};
pub use state::{
    Action, CommitRequest, Group, GroupConfig, GroupDescription, GroupState, JoinRequest,
    JoinResult, JoinedMember, MemberDescription, MemberRef, RequestId, SyncRequest, SyncResult,
    CONSUMER_PROTOCOL_TYPE,
};
pub use txn_offsets::{FetchedOffset, TxnCommitRequest};

/// Kafka's `String.hashCode` of a group id: the coordinator partition is
/// `abs(hash) % offsets.topic.num.partitions` (with `abs(Integer.MIN_VALUE)` taken as 0,
/// as Kafka's `Utils.abs` does), so a group lands on the same partition number as it
/// would in Kafka. Java hashes UTF-16 code units.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The `__consumer_offsets` partition that coordinates `group_id`.
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let h = java_string_hash(group_id);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

/// The internal topic holding group metadata and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
