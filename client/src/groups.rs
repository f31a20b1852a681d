//! Consumer group admin calls (classic protocol): FindCoordinator, DescribeGroups,
//! ListGroups, OffsetFetch and OffsetCommit.
//!
//! Every group call goes to the group's coordinator, found with FindCoordinator before
//! each call. NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS and COORDINATOR_NOT_AVAILABLE
//! (and a dropped connection) mean the broker did not act on the request: the call finds
//! the coordinator again and retries, with backoff, up to
//! [`ClientConfig::leader_retries`](crate::ClientConfig::leader_retries) times.

use std::sync::Arc;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, DescribeGroupsRequest, FindCoordinatorRequest, GroupId,
    ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::ResponseError;

use crate::client::{missing, str_bytes, topic_name, BrokerMetadata, Client};
use crate::connection::Connection;
use crate::error::{Error, Result};

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// Empty, PreparingRebalance, CompletingRebalance, Stable or Dead (Dead also for a
    /// group the coordinator does not know).
    pub state: String,
    /// `consumer` for Kafka consumers; empty when the group has no members.
    pub protocol_type: String,
    /// The chosen assignor, e.g. `range`; empty outside Stable.
    pub protocol: String,
    /// Members, in the coordinator's order.
    pub members: Vec<GroupMemberDescription>,
}

/// One member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMemberDescription {
    /// Member id the coordinator assigned.
    pub member_id: String,
    /// Static membership id (`group.instance.id`), if set.
    pub group_instance_id: Option<String>,
    /// The member's `client.id`.
    pub client_id: String,
    /// The member's host as the coordinator saw it, e.g. `/10.0.0.7`.
    pub host: String,
    /// Assigned partitions as (topic, partition), decoded from the consumer protocol
    /// assignment; empty for non-consumer groups and members awaiting their assignment.
    pub assignment: Vec<(String, i32)>,
}

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    /// Group id.
    pub group_id: String,
    /// `consumer` for Kafka consumers.
    pub protocol_type: String,
    /// Group state (ListGroups v4+; empty before).
    pub state: String,
}

/// Decodes a member's assignment bytes as a ConsumerProtocolAssignment: an i16 version,
/// then the body. Versions above 3 only append fields (the consumer protocol's
/// compatibility rule), so they are read as v3.
pub fn decode_consumer_assignment(mut bytes: Bytes) -> Result<Vec<(String, i32)>> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    if bytes.len() < 2 {
        return Err(Error::Protocol(format!(
            "consumer assignment of {} bytes has no version",
            bytes.len()
        )));
    }
    let version = bytes.get_i16();
    if version < 0 {
        return Err(Error::Protocol(format!(
            "consumer assignment version {version}"
        )));
    }
    let assignment = ConsumerProtocolAssignment::decode(&mut bytes, version.min(3))
        .map_err(|e| Error::protocol("decoding consumer assignment", e))?;
    let mut out: Vec<(String, i32)> = assignment
        .assigned_partitions
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic.to_string(), *p)))
        .collect();
    out.sort();
    Ok(out)
}

fn group_resource(group: &str) -> String {
    format!("group {group:?}")
}

/// Whether `err` says the request reached no (current) coordinator and may be sent again
/// to the one FindCoordinator names next.
fn coordinator_moved(err: &Error) -> bool {
    matches!(
        err.kafka(),
        Some(
            ResponseError::NotCoordinator
                | ResponseError::CoordinatorLoadInProgress
                | ResponseError::CoordinatorNotAvailable
        )
    ) || matches!(err, Error::Io { .. } | Error::ConnectionClosed { .. })
}

impl Client {
    /// The broker coordinating `group` (FindCoordinator), retrying while the group's
    /// coordinator is not available yet.
    pub async fn find_coordinator(&self, group: &str) -> Result<BrokerMetadata> {
        let mut attempt = 0;
        loop {
            match self.find_coordinator_once(group).await {
                Err(e) if self.retry_coordinator(&e, &mut attempt).await => {}
                result => return result,
            }
        }
    }

    async fn find_coordinator_once(&self, group: &str) -> Result<BrokerMetadata> {
        let conn = self.any_connection().await?;
        let version = conn.version(ApiKey::FindCoordinator)?;
        // v4 batches keys in `coordinator_keys`; before it, one `key`. Key type 0: group.
        let mut request = FindCoordinatorRequest::default().with_key_type(0);
        if version >= 4 {
            request.coordinator_keys = vec![str_bytes(group)];
        } else {
            request.key = str_bytes(group);
        }
        let response = conn.send_at(&request, version).await?;
        let (error_code, message, node_id, host, port) = if version >= 4 {
            let c = response
                .coordinators
                .iter()
                .find(|c| c.key.as_str() == group)
                .ok_or_else(|| missing(group_resource(group)))?;
            (
                c.error_code,
                c.error_message.clone(),
                *c.node_id,
                c.host.to_string(),
                c.port,
            )
        } else {
            (
                response.error_code,
                response.error_message.clone(),
                *response.node_id,
                response.host.to_string(),
                response.port,
            )
        };
        Error::check(error_code, || group_resource(group), message.as_ref())?;
        Ok(BrokerMetadata {
            node_id,
            host,
            port,
            rack: None,
        })
    }

    /// After a failed group call: whether to send it again (after a pause) to the
    /// coordinator FindCoordinator names next. An explicit loop at each call site rather
    /// than a retry helper taking an async closure: such closures' futures cannot be
    /// proven `Send` for every lifetime, which controllers spawning them need.
    async fn retry_coordinator(&self, err: &Error, attempt: &mut u32) -> bool {
        if !coordinator_moved(err) || *attempt >= self.config().leader_retries {
            return false;
        }
        let backoff = self.config().retry_backoff * 2u32.saturating_pow((*attempt).min(10));
        tokio::time::sleep(backoff).await;
        *attempt += 1;
        true
    }

    async fn coordinator_connection(&self, group: &str) -> Result<Arc<Connection>> {
        let coordinator = self.find_coordinator_once(group).await?;
        self.connection_to(&coordinator.addr()).await
    }

    /// State, protocol and members of `group` (DescribeGroups at its coordinator). A group
    /// the coordinator does not know is reported in state Dead with no members, as Kafka
    /// does.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        let mut attempt = 0;
        loop {
            match self.describe_group_once(group).await {
                Err(e) if self.retry_coordinator(&e, &mut attempt).await => {}
                result => return result,
            }
        }
    }

    async fn describe_group_once(&self, group: &str) -> Result<GroupDescription> {
        let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(str_bytes(group))]);
        let response = self
            .coordinator_connection(group)
            .await?
            .send(&request)
            .await?;
        let g = response
            .groups
            .iter()
            .find(|g| g.group_id.as_str() == group)
            .ok_or_else(|| missing(group_resource(group)))?;
        Error::check(
            g.error_code,
            || group_resource(group),
            g.error_message.as_ref(),
        )?;
        let consumer = g.protocol_type.as_str() == "consumer";
        let members = g
            .members
            .iter()
            .map(|m| {
                let assignment = if consumer {
                    decode_consumer_assignment(m.member_assignment.clone()).map_err(|e| {
                        Error::Protocol(format!(
                            "group {group:?} member {:?}: {e}",
                            m.member_id.as_str()
                        ))
                    })?
                } else {
                    Vec::new()
                };
                Ok(GroupMemberDescription {
                    member_id: m.member_id.to_string(),
                    group_instance_id: m.group_instance_id.as_ref().map(StrBytes::to_string),
                    client_id: m.client_id.to_string(),
                    host: m.client_host.to_string(),
                    assignment,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(GroupDescription {
            group_id: group.to_string(),
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
            members,
        })
    }

    /// Every group of the cluster, sorted by id: ListGroups asks one broker about the
    /// groups it coordinates, so every broker Metadata names is asked.
    pub async fn list_groups(&self) -> Result<Vec<ListedGroup>> {
        let brokers = self.metadata(Some(&[])).await?.brokers;
        let mut out = Vec::new();
        for broker in brokers {
            let conn = self.connection_to(&broker.addr()).await?;
            let response = conn.send(&ListGroupsRequest::default()).await?;
            Error::check(
                response.error_code,
                || format!("ListGroups at broker {}", broker.node_id),
                None,
            )?;
            out.extend(response.groups.iter().map(|g| ListedGroup {
                group_id: g.group_id.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
            }));
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(out)
    }

    /// The committed offsets of `group` as (topic, partition, offset), sorted; partitions
    /// without a committed offset are left out (OffsetFetch for all topics).
    pub async fn fetch_offsets(&self, group: &str) -> Result<Vec<(String, i32, i64)>> {
        let mut attempt = 0;
        loop {
            match self.fetch_offsets_once(group).await {
                Err(e) if self.retry_coordinator(&e, &mut attempt).await => {}
                result => return result,
            }
        }
    }

    async fn fetch_offsets_once(&self, group: &str) -> Result<Vec<(String, i32, i64)>> {
        let conn = self.coordinator_connection(group).await?;
        let version = conn.version(ApiKey::OffsetFetch)?;
        if version < 2 {
            // v0-1 cannot ask for "all topics" (null topics came with v2).
            return Err(Error::UnsupportedApi {
                addr: conn.addr().to_string(),
                api: ApiKey::OffsetFetch,
            });
        }
        // v8 batches groups; before it, one group per request. `None` topics: all.
        let mut request = OffsetFetchRequest::default();
        if version >= 8 {
            request.groups = vec![OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(str_bytes(group)))
                .with_topics(None)];
        } else {
            request.group_id = GroupId(str_bytes(group));
            request.topics = None;
        }
        let response = conn.send_at(&request, version).await?;
        let mut out = Vec::new();
        let partition_error = |topic: &str, partition: i32, code: i16| {
            Error::check(
                code,
                || format!("group {group:?} topic {topic:?} partition {partition}"),
                None,
            )
        };
        if version >= 8 {
            let g = response
                .groups
                .iter()
                .find(|g| g.group_id.as_str() == group)
                .ok_or_else(|| missing(group_resource(group)))?;
            Error::check(g.error_code, || group_resource(group), None)?;
            for t in &g.topics {
                for p in &t.partitions {
                    partition_error(t.name.as_str(), p.partition_index, p.error_code)?;
                    out.push((t.name.to_string(), p.partition_index, p.committed_offset));
                }
            }
        } else {
            Error::check(response.error_code, || group_resource(group), None)?;
            for t in &response.topics {
                for p in &t.partitions {
                    partition_error(t.name.as_str(), p.partition_index, p.error_code)?;
                    out.push((t.name.to_string(), p.partition_index, p.committed_offset));
                }
            }
        }
        out.retain(|(_, _, offset)| *offset >= 0);
        out.sort();
        Ok(out)
    }

    /// Commits `offsets` (topic, partition, offset) for `group` as an admin tool does
    /// (`kafka-consumer-groups --reset-offsets`): OffsetCommit with generation -1 and no
    /// member id. The coordinator accepts that only while the group has no members (or
    /// does not exist yet); otherwise it answers UNKNOWN_MEMBER_ID, returned as
    /// [`Error::Kafka`]. The commit is all or nothing from the caller's view: the first
    /// partition error is returned.
    pub async fn commit_offsets(&self, group: &str, offsets: &[(String, i32, i64)]) -> Result<()> {
        let mut attempt = 0;
        loop {
            match self.commit_offsets_once(group, offsets).await {
                Err(e) if self.retry_coordinator(&e, &mut attempt).await => {}
                result => return result,
            }
        }
    }

    async fn commit_offsets_once(&self, group: &str, offsets: &[(String, i32, i64)]) -> Result<()> {
        let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
        for (topic, partition, offset) in offsets {
            let p = OffsetCommitRequestPartition::default()
                .with_partition_index(*partition)
                .with_committed_offset(*offset)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(str_bytes("")));
            match topics.iter_mut().find(|t| t.name.as_str() == topic) {
                Some(t) => t.partitions.push(p),
                None => topics.push(
                    OffsetCommitRequestTopic::default()
                        .with_name(topic_name(topic))
                        .with_partitions(vec![p]),
                ),
            }
        }
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_member_id(str_bytes(""))
            .with_group_instance_id(None)
            // v2-4: -1 keeps the broker's offsets.retention.minutes.
            .with_retention_time_ms(-1)
            .with_topics(topics);
        let response = self
            .coordinator_connection(group)
            .await?
            .send(&request)
            .await?;
        for (topic, partition, _) in offsets {
            let p = response
                .topics
                .iter()
                .filter(|t| t.name.as_str() == topic)
                .flat_map(|t| &t.partitions)
                .find(|p| p.partition_index == *partition)
                .ok_or_else(|| {
                    missing(format!(
                        "group {group:?} topic {topic:?} partition {partition}"
                    ))
                })?;
            Error::check(
                p.error_code,
                || format!("group {group:?} topic {topic:?} partition {partition}"),
                None,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::protocol::Encodable;

    fn encoded(version: i16, assignment: &ConsumerProtocolAssignment) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(version);
        assignment.encode(&mut buf, version.min(3)).unwrap();
        buf.freeze()
    }

    #[test]
    fn consumer_assignment_decodes_every_version_sorted() {
        let assignment = ConsumerProtocolAssignment::default()
            .with_assigned_partitions(vec![
                TopicPartition::default()
                    .with_topic(topic_name("orders"))
                    .with_partitions(vec![2, 0]),
                TopicPartition::default()
                    .with_topic(topic_name("audit"))
                    .with_partitions(vec![1]),
            ])
            .with_user_data(Some(Bytes::from_static(b"sticky")));
        let want = vec![
            ("audit".to_string(), 1),
            ("orders".to_string(), 0),
            ("orders".to_string(), 2),
        ];
        // v4 is a future version: read as v3.
        for version in 0..=4 {
            assert_eq!(
                decode_consumer_assignment(encoded(version, &assignment)).unwrap(),
                want,
                "version {version}"
            );
        }
        // A member still waiting for its assignment has none.
        assert!(decode_consumer_assignment(Bytes::new()).unwrap().is_empty());
        // Truncated bytes are an error, not an empty assignment.
        let whole = encoded(1, &assignment);
        assert!(decode_consumer_assignment(whole.slice(..whole.len() - 3)).is_err());
        assert!(decode_consumer_assignment(Bytes::from_static(&[0])).is_err());
    }

    #[test]
    fn coordinator_errors_are_retried_others_are_not() {
        let kafka = |error| Error::Kafka {
            resource: "group \"g\"".into(),
            error,
            message: None,
        };
        assert!(coordinator_moved(&kafka(ResponseError::NotCoordinator)));
        assert!(coordinator_moved(&kafka(
            ResponseError::CoordinatorLoadInProgress
        )));
        assert!(coordinator_moved(&kafka(
            ResponseError::CoordinatorNotAvailable
        )));
        assert!(!coordinator_moved(&kafka(ResponseError::UnknownMemberId)));
        assert!(!coordinator_moved(&kafka(ResponseError::GroupIdNotFound)));
    }
}
