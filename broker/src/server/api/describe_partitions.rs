//! DescribeTopicPartitions (key 75, KIP-966): topics and their partitions, a page at a
//! time. Kafka 4's `kafka-topics.sh --describe` and AdminClient's describeTopics prefer
//! it to Metadata. Fjord has no eligible leader replicas (ELR), so those lists are empty.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};

use super::metadata::{hidden, offline_replicas};
use super::{count_error, str_bytes, RequestContext};
use crate::auth::acl::{AclOperation, ResourceType};
use crate::metadata::image::{MetadataImage, TopicState};
use crate::server::broker::Broker;

/// Kafka's `max.request.partition.size.limit` default: the most partitions one answer
/// holds, whatever the request's response_partition_limit.
pub const MAX_RESPONSE_PARTITIONS: i32 = 2000;

/// One topic of a page: its partitions `first..end` (an unknown topic has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageTopic {
    pub name: String,
    pub first: i32,
    pub end: i32,
}

/// Cut a page from `topics` (name and partition count, in name order; `None` for a
/// named topic that does not exist): start at the cursor, hold at most `limit`
/// partitions, and name where the next page starts (KIP-966's cursor).
pub fn page(
    topics: &[(String, Option<i32>)],
    cursor: Option<(&str, i32)>,
    limit: i32,
) -> (Vec<PageTopic>, Option<(String, i32)>) {
    let mut remaining = limit.min(MAX_RESPONSE_PARTITIONS);
    let mut out = Vec::new();
    let mut rest = topics
        .iter()
        .filter(|(name, _)| cursor.is_none_or(|(c, _)| name.as_str() >= c))
        .peekable();
    let mut next = None;
    while remaining > 0 {
        let Some((name, count)) = rest.next() else {
            break;
        };
        let Some(count) = *count else {
            out.push(PageTopic {
                name: name.clone(),
                first: 0,
                end: 0,
            });
            continue;
        };
        let first = match cursor {
            Some((c, p)) if c == name.as_str() => p.max(0),
            _ => 0,
        };
        let end = count.min(first.saturating_add(remaining)).max(first);
        remaining -= end - first;
        out.push(PageTopic {
            name: name.clone(),
            first,
            end,
        });
        if end < count {
            next = Some((name.clone(), end));
            break;
        }
    }
    if next.is_none() {
        next = rest.peek().map(|(name, _)| (name.clone(), 0));
    }
    (out, next)
}

fn topic_entry(
    t: &TopicState,
    first: i32,
    end: i32,
    image: &MetadataImage,
    hidden_leader: Option<i32>,
) -> DescribeTopicPartitionsResponseTopic {
    let partitions = t
        .partitions
        .iter()
        .filter(|p| (first..end).contains(&p.partition))
        .map(|p| {
            let leader = if Some(p.leader) == hidden_leader {
                -1
            } else {
                p.leader
            };
            let mut e = DescribeTopicPartitionsResponsePartition::default()
                .with_partition_index(p.partition)
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas.iter().copied().map(BrokerId).collect())
                .with_isr_nodes(p.isr.iter().copied().map(BrokerId).collect())
                .with_eligible_leader_replicas(Some(Vec::new()))
                .with_last_known_elr(Some(Vec::new()))
                .with_offline_replicas(offline_replicas(p, image));
            if leader < 0 {
                e.error_code = ResponseError::LeaderNotAvailable.code();
            }
            e
        })
        .collect();
    DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(t.name.clone()))))
        .with_topic_id(t.id)
        .with_is_internal(t.is_internal())
        .with_partitions(partitions)
}

fn error_topic(name: &str, code: ResponseError) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(name.to_string()))))
        .with_error_code(code.code())
}

pub fn describe_topic_partitions(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let image = broker.image();
    let auth = super::acls::authorizer(broker, ctx, &image);
    let describable =
        |name: &str| auth.authorize(AclOperation::Describe, ResourceType::Topic, name);
    let cursor = req
        .cursor
        .as_ref()
        .map(|c| (c.topic_name.to_string(), c.partition_index));
    let mut refused = Vec::new();
    // No names: every topic the principal may describe, without a word on the rest.
    let listed: Vec<(String, Option<i32>)> = if req.topics.is_empty() {
        image
            .topics()
            .filter(|t| describable(&t.name))
            .map(|t| (t.name.clone(), Some(t.partitions.len() as i32)))
            .collect()
    } else {
        let mut names: Vec<String> = req.topics.iter().map(|t| t.name.to_string()).collect();
        names.sort();
        names.dedup();
        if let Some((c, _)) = &cursor {
            if !names.contains(c) {
                count_error(broker, ctx.api_key, ResponseError::InvalidRequest.code());
                return DescribeTopicPartitionsResponse::default()
                    .with_topics(vec![error_topic(c, ResponseError::InvalidRequest)]);
            }
        }
        names
            .into_iter()
            .filter(|name| {
                // Refused whether or not it exists, so existence is not disclosed.
                let ok = describable(name);
                if !ok {
                    refused.push(error_topic(name, ResponseError::TopicAuthorizationFailed));
                }
                ok
            })
            .map(|name| {
                let count = image.topic(&name).map(|t| t.partitions.len() as i32);
                (name, count)
            })
            .collect()
    };
    let (page, next) = page(
        &listed,
        cursor.as_ref().map(|(n, p)| (n.as_str(), *p)),
        req.response_partition_limit,
    );
    let hidden_leader = hidden(broker);
    let mut topics: Vec<DescribeTopicPartitionsResponseTopic> = page
        .into_iter()
        .map(|p| match image.topic(&p.name) {
            Some(t) => {
                let mut e = topic_entry(t, p.first, p.end, &image, hidden_leader);
                e.topic_authorized_operations =
                    auth.authorized_operations(ResourceType::Topic, &t.name);
                e
            }
            None => error_topic(&p.name, ResponseError::UnknownTopicOrPartition),
        })
        .collect();
    topics.extend(refused);
    for t in &topics {
        count_error(broker, ctx.api_key, t.error_code);
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next.map(|(name, partition)| {
            Cursor::default()
                .with_topic_name(TopicName(str_bytes(name)))
                .with_partition_index(partition)
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(list: &[(&str, Option<i32>)]) -> Vec<(String, Option<i32>)> {
        list.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    }

    fn shape(page: &[PageTopic]) -> Vec<(&str, i32, i32)> {
        page.iter()
            .map(|p| (p.name.as_str(), p.first, p.end))
            .collect()
    }

    #[test]
    fn a_page_holds_at_most_the_limit_and_names_the_next_partition() {
        let all = topics(&[("a", Some(3)), ("b", Some(2)), ("c", Some(1))]);
        let (p, next) = page(&all, None, 4);
        assert_eq!(shape(&p), vec![("a", 0, 3), ("b", 0, 1)]);
        assert_eq!(next, Some(("b".to_string(), 1)));
        let (p, next) = page(&all, Some(("b", 1)), 4);
        assert_eq!(shape(&p), vec![("b", 1, 2), ("c", 0, 1)]);
        assert_eq!(next, None);
    }

    #[test]
    fn a_page_ending_on_a_topic_boundary_points_at_the_next_topic() {
        let all = topics(&[("a", Some(2)), ("b", Some(2))]);
        let (p, next) = page(&all, None, 2);
        assert_eq!(shape(&p), vec![("a", 0, 2)]);
        assert_eq!(next, Some(("b".to_string(), 0)));
        // Exactly the limit: nothing is left, no cursor.
        let (p, next) = page(&all, None, 4);
        assert_eq!(shape(&p), vec![("a", 0, 2), ("b", 0, 2)]);
        assert_eq!(next, None);
    }

    #[test]
    fn the_limit_is_capped_and_unknown_topics_take_no_room() {
        let all = topics(&[("a", Some(5000)), ("b", None)]);
        let (p, next) = page(&all, None, i32::MAX);
        assert_eq!(shape(&p), vec![("a", 0, MAX_RESPONSE_PARTITIONS)]);
        assert_eq!(next, Some(("a".to_string(), MAX_RESPONSE_PARTITIONS)));
        let (p, next) = page(&all, Some(("a", 4999)), 10);
        assert_eq!(shape(&p), vec![("a", 4999, 5000), ("b", 0, 0)]);
        assert_eq!(next, None);
        // Nothing fits: no topic is answered, and the next page starts where this one did.
        let (p, next) = page(&all, None, 0);
        assert_eq!(shape(&p), vec![]);
        assert_eq!(next, Some(("a".to_string(), 0)));
    }
}
