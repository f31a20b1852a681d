//! The records a group coordinator keeps in `__consumer_offsets`, in Kafka's own
//! key/value schemas, so the topic reads the same as Kafka's to any tool that knows
//! them. All schemas are the classic (non-flexible) encodings, big-endian, each key
//! and value prefixed by its int16 schema version:
//!
//! ```text
//! OffsetCommitKey   v1: group string, topic string, partition int32
//! OffsetCommitValue v3: offset int64, leader_epoch int32, metadata string,
//!                       commit_timestamp int64
//! GroupMetadataKey  v2: group string
//! GroupMetadataValue v3: protocol_type string, generation int32,
//!                       protocol nullable string, leader nullable string,
//!                       current_state_timestamp int64,
//!                       members [member_id string, group_instance_id nullable string,
//!                                client_id string, client_host string,
//!                                rebalance_timeout int32, session_timeout int32,
//!                                subscription bytes, assignment bytes]
//! ```
//!
//! A null value is a tombstone: the offset or the group is gone. Keys of versions 0/1
//! are offsets and 2 is group metadata (Kafka's rule); values of older versions are
//! read too (v0-v3 offsets, v0-v3 groups) because a log may hold them.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// One committed offset (OffsetCommitValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    /// -1 when the client did not say.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// One member as stored in GroupMetadataValue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's selected protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group's metadata (GroupMetadataValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation_id: i32,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberValue>,
}

/// One record of `__consumer_offsets`; `None` values are tombstones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRecord {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<OffsetValue>,
    },
    Group {
        group: String,
        value: Option<GroupValue>,
    },
}

impl GroupRecord {
    pub fn group(&self) -> &str {
        match self {
            GroupRecord::Offset { group, .. } | GroupRecord::Group { group, .. } => group,
        }
    }

    /// The record's key and value (None for a tombstone).
    pub fn encode(&self) -> (Bytes, Option<Bytes>) {
        let mut key = BytesMut::new();
        match self {
            GroupRecord::Offset {
                group,
                topic,
                partition,
                value,
            } => {
                key.put_i16(1);
                put_str(&mut key, group);
                put_str(&mut key, topic);
                key.put_i32(*partition);
                let value = value.as_ref().map(|v| {
                    let mut b = BytesMut::new();
                    b.put_i16(3);
                    b.put_i64(v.offset);
                    b.put_i32(v.leader_epoch);
                    put_str(&mut b, &v.metadata);
                    b.put_i64(v.commit_timestamp_ms);
                    b.freeze()
                });
                (key.freeze(), value)
            }
            GroupRecord::Group { group, value } => {
                key.put_i16(2);
                put_str(&mut key, group);
                let value = value.as_ref().map(|g| {
                    let mut b = BytesMut::new();
                    b.put_i16(3);
                    put_str(&mut b, &g.protocol_type);
                    b.put_i32(g.generation_id);
                    put_nullable_str(&mut b, g.protocol_name.as_deref());
                    put_nullable_str(&mut b, g.leader.as_deref());
                    b.put_i64(g.current_state_timestamp_ms);
                    b.put_i32(g.members.len() as i32);
                    for m in &g.members {
                        put_str(&mut b, &m.member_id);
                        put_nullable_str(&mut b, m.group_instance_id.as_deref());
                        put_str(&mut b, &m.client_id);
                        put_str(&mut b, &m.client_host);
                        b.put_i32(m.rebalance_timeout_ms);
                        b.put_i32(m.session_timeout_ms);
                        put_bytes(&mut b, &m.subscription);
                        put_bytes(&mut b, &m.assignment);
                    }
                    b.freeze()
                });
                (key.freeze(), value)
            }
        }
    }

    /// Decode one record; an error names what is malformed.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<GroupRecord, String> {
        let mut k = Reader(key);
        match k.i16()? {
            0 | 1 => {
                let group = k.string()?;
                let topic = k.string()?;
                let partition = k.i32()?;
                let value = match value {
                    None => None,
                    Some(v) => {
                        let mut r = Reader(v);
                        let version = r.i16()?;
                        if !(0..=3).contains(&version) {
                            return Err(format!("offset value version {version}"));
                        }
                        let offset = r.i64()?;
                        let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
                        let metadata = r.string()?;
                        let commit_timestamp_ms = r.i64()?;
                        // v1 carried an expire timestamp; offsets now expire by group
                        // state (KIP-211), so it is read and dropped.
                        Some(OffsetValue {
                            offset,
                            leader_epoch,
                            metadata,
                            commit_timestamp_ms,
                        })
                    }
                };
                Ok(GroupRecord::Offset {
                    group,
                    topic,
                    partition,
                    value,
                })
            }
            2 => {
                let group = k.string()?;
                let value = match value {
                    None => None,
                    Some(v) => Some(decode_group_value(v)?),
                };
                Ok(GroupRecord::Group { group, value })
            }
            other => Err(format!("unknown key version {other}")),
        }
    }
}

fn decode_group_value(v: &[u8]) -> Result<GroupValue, String> {
    let mut r = Reader(v);
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return Err(format!("group value version {version}"));
    }
    let protocol_type = r.string()?;
    let generation_id = r.i32()?;
    let protocol_name = r.nullable_string()?;
    let leader = r.nullable_string()?;
    let current_state_timestamp_ms = if version >= 2 { r.i64()? } else { -1 };
    let count = r.i32()?;
    // Each member takes at least 20 bytes: never trust a count beyond what remains.
    if count < 0 || count as usize > r.0.len() / 20 + 1 {
        return Err(format!("group value member count {count}"));
    }
    let mut members = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let member_id = r.string()?;
        let group_instance_id = if version >= 3 {
            r.nullable_string()?
        } else {
            None
        };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let session_first = version == 0;
        let (rebalance_timeout_ms, session_timeout_ms) = if session_first {
            let s = r.i32()?;
            (s, s)
        } else {
            (r.i32()?, r.i32()?)
        };
        members.push(MemberValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription: r.bytes()?,
            assignment: r.bytes()?,
        });
    }
    Ok(GroupValue {
        protocol_type,
        generation_id,
        protocol_name,
        leader,
        current_state_timestamp_ms,
        members,
    })
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len().min(i16::MAX as usize) as i16);
    b.put_slice(&s.as_bytes()[..s.len().min(i16::MAX as usize)]);
}

fn put_nullable_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(v.len() as i32);
    b.put_slice(v);
}

/// A bounds-checked big-endian reader.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn need(&self, n: usize, what: &str) -> Result<(), String> {
        if self.0.len() < n {
            return Err(format!("{what}: needs {n} bytes, {} remain", self.0.len()));
        }
        Ok(())
    }
    fn i16(&mut self) -> Result<i16, String> {
        self.need(2, "int16")?;
        Ok(self.0.get_i16())
    }
    fn i32(&mut self) -> Result<i32, String> {
        self.need(4, "int32")?;
        Ok(self.0.get_i32())
    }
    fn i64(&mut self) -> Result<i64, String> {
        self.need(8, "int64")?;
        Ok(self.0.get_i64())
    }
    fn nullable_string(&mut self) -> Result<Option<String>, String> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        self.need(len as usize, "string")?;
        let s = String::from_utf8(self.0[..len as usize].to_vec())
            .map_err(|_| "string is not UTF-8".to_string())?;
        self.0.advance(len as usize);
        Ok(Some(s))
    }
    fn string(&mut self) -> Result<String, String> {
        self.nullable_string()?
            .ok_or_else(|| "null where a string is required".to_string())
    }
    fn bytes(&mut self) -> Result<Bytes, String> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(Bytes::new());
        }
        self.need(len as usize, "bytes")?;
        let b = Bytes::copy_from_slice(&self.0[..len as usize]);
        self.0.advance(len as usize);
        Ok(b)
    }
}

/// The topics of a `consumer` protocol subscription (ConsumerProtocolSubscription: an
/// int16 version, then an array of topic names; later fields are not needed here).
/// Used to tell which topics a group consumes (OffsetDelete, offset expiry).
pub fn subscribed_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut r = Reader(metadata);
    let _version = r.i16().ok()?;
    let count = r.i32().ok()?;
    if count < 0 || count as usize > r.0.len() / 2 {
        return None;
    }
    (0..count).map(|_| r.string().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_and_group_records_round_trip() {
        let offset = GroupRecord::Offset {
            group: "g".into(),
            topic: "orders".into(),
            partition: 3,
            value: Some(OffsetValue {
                offset: 42,
                leader_epoch: 7,
                metadata: "meta".into(),
                commit_timestamp_ms: 1_700_000_000_000,
            }),
        };
        let (k, v) = offset.encode();
        // Kafka's OffsetCommitKey v1 bytes: version, group, topic, partition.
        assert_eq!(
            &k[..],
            &[0, 1, 0, 1, b'g', 0, 6, b'o', b'r', b'd', b'e', b'r', b's', 0, 0, 0, 3]
        );
        assert_eq!(GroupRecord::decode(&k, v.as_deref()).unwrap(), offset);

        let group = GroupRecord::Group {
            group: "g".into(),
            value: Some(GroupValue {
                protocol_type: "consumer".into(),
                generation_id: 5,
                protocol_name: Some("range".into()),
                leader: Some("m1".into()),
                current_state_timestamp_ms: 9,
                members: vec![MemberValue {
                    member_id: "m1".into(),
                    group_instance_id: Some("i1".into()),
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 300_000,
                    session_timeout_ms: 45_000,
                    subscription: Bytes::from_static(b"sub"),
                    assignment: Bytes::from_static(b"asg"),
                }],
            }),
        };
        let (k, v) = group.encode();
        assert_eq!(&k[..], &[0, 2, 0, 1, b'g']);
        assert_eq!(GroupRecord::decode(&k, v.as_deref()).unwrap(), group);

        let tombstone = GroupRecord::Group {
            group: "g".into(),
            value: None,
        };
        let (k, v) = tombstone.encode();
        assert!(v.is_none());
        assert_eq!(GroupRecord::decode(&k, None).unwrap(), tombstone);
    }

    #[test]
    fn truncated_values_are_errors_not_panics() {
        let (k, v) = GroupRecord::Group {
            group: "g".into(),
            value: Some(GroupValue {
                protocol_type: "consumer".into(),
                generation_id: 1,
                protocol_name: None,
                leader: None,
                current_state_timestamp_ms: 0,
                members: vec![],
            }),
        }
        .encode();
        let v = v.unwrap();
        for cut in 0..v.len() {
            assert!(
                GroupRecord::decode(&k, Some(&v[..cut])).is_err(),
                "cut {cut}"
            );
        }
        assert!(GroupRecord::decode(&[0, 9], None).is_err());
    }

    #[test]
    fn consumer_subscription_topics() {
        let mut b = BytesMut::new();
        b.put_i16(1);
        b.put_i32(2);
        put_str(&mut b, "a");
        put_str(&mut b, "b");
        b.put_i32(-1); // user data
        assert_eq!(
            subscribed_topics(&b),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(subscribed_topics(&[0, 1, 0x7f, 0xff, 0xff, 0xff]), None);
    }
}
