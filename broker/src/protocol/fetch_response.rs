//! Fetch responses written as parts, so record data can go from the segment file to
//! the socket (sendfile) without passing through user space.
//!
//! The response fields come from the `kafka-protocol` crate's `FetchResponse`; each
//! partition's record bytes are given separately as a file range. Only versions
//! 4–12 are written (what this broker serves); the unit tests check the bytes against
//! the crate's own encoder for every one of them.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::FetchResponse;

/// One piece of a response frame.
#[derive(Debug, Clone)]
pub enum Part<F> {
    Bytes(Bytes),
    /// `len` bytes of record data from a file range.
    File(F, usize),
}

impl<F> Part<F> {
    pub fn len(&self) -> usize {
        match self {
            Part::Bytes(b) => b.len(),
            Part::File(_, len) => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub const MIN_VERSION: i16 = 4;
pub const MAX_VERSION: i16 = 12;

struct Writer<'b, F> {
    /// Parts done; the first is a placeholder for the head, which holds the frame size
    /// and is patched last.
    parts: Vec<Part<F>>,
    head: Option<BytesMut>,
    buf: &'b mut BytesMut,
    flexible: bool,
}

impl<F> Writer<'_, F> {
    fn uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.buf.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
    }

    fn array_len(&mut self, len: Option<usize>) {
        match (self.flexible, len) {
            (true, None) => self.uvarint(0),
            (true, Some(n)) => self.uvarint(u32::try_from(n + 1).expect("array length fits")),
            (false, None) => self.buf.put_i32(-1),
            (false, Some(n)) => self
                .buf
                .put_i32(i32::try_from(n).expect("array length fits")),
        }
    }

    fn string(&mut self, s: &str) {
        if self.flexible {
            self.uvarint(u32::try_from(s.len() + 1).expect("string length fits"));
        } else {
            self.buf
                .put_i16(i16::try_from(s.len()).expect("topic names are short"));
        }
        self.buf.put_slice(s.as_bytes());
    }

    /// An empty tagged-field section (flexible versions only).
    fn no_tags(&mut self) {
        if self.flexible {
            self.uvarint(0);
        }
    }

    fn file(&mut self, file: F, len: usize) {
        self.close_bytes();
        self.parts.push(Part::File(file, len));
    }

    /// End the bytes written since the last file part: split off the buffer, whose
    /// storage the connection reuses once the parts are sent.
    fn close_bytes(&mut self) {
        let done = self.buf.split();
        if self.head.is_none() {
            self.head = Some(done);
        } else {
            self.parts.push(Part::Bytes(done.freeze()));
        }
    }
}

/// Write the whole response frame (size prefix, header, body) for `version`.
/// `records[t][p]` is the record data of `resp.responses[t].partitions[p]`; `None`
/// writes an empty records field (never null: clients expect empty, as Kafka sends).
/// The partitions' own `records` fields are ignored. The bytes around the record data
/// are split off `buf` (empty on entry), so a caller that keeps `buf` reuses its
/// storage once the parts are dropped.
pub fn encode<F>(
    resp: &FetchResponse,
    records: Vec<Vec<Option<(F, usize)>>>,
    version: i16,
    correlation_id: i32,
    buf: &mut BytesMut,
) -> Vec<Part<F>> {
    assert!(
        (MIN_VERSION..=MAX_VERSION).contains(&version),
        "fetch v{version} is not written here"
    );
    let flexible = version >= 12;
    let partitions: usize = resp.responses.iter().map(|t| t.partitions.len()).sum();
    let mut w = Writer {
        parts: Vec::with_capacity(2 * partitions + 2),
        head: None,
        buf,
        flexible,
    };
    // The head's place; it is patched in last.
    w.parts.push(Part::Bytes(Bytes::new()));
    w.buf.put_i32(0); // frame size, filled in below
    w.buf.put_i32(correlation_id);
    w.no_tags(); // response header v1 for flexible versions
    w.buf.put_i32(resp.throttle_time_ms);
    if version >= 7 {
        w.buf.put_i16(resp.error_code);
        w.buf.put_i32(resp.session_id);
    }
    w.array_len(Some(resp.responses.len()));
    for (topic, topic_records) in resp.responses.iter().zip(records) {
        w.string(topic.topic.0.as_str());
        w.array_len(Some(topic.partitions.len()));
        for (p, rec) in topic.partitions.iter().zip(topic_records) {
            w.buf.put_i32(p.partition_index);
            w.buf.put_i16(p.error_code);
            w.buf.put_i64(p.high_watermark);
            w.buf.put_i64(p.last_stable_offset);
            if version >= 5 {
                w.buf.put_i64(p.log_start_offset);
            }
            w.array_len(p.aborted_transactions.as_ref().map(Vec::len));
            for a in p.aborted_transactions.iter().flatten() {
                w.buf.put_i64(a.producer_id.0);
                w.buf.put_i64(a.first_offset);
                w.no_tags();
            }
            if version >= 11 {
                w.buf.put_i32(p.preferred_read_replica.0);
            }
            match rec {
                Some((file, len)) if len > 0 => {
                    w.array_len(Some(len));
                    w.file(file, len);
                }
                _ => w.array_len(Some(0)),
            }
            w.no_tags();
        }
        w.no_tags();
    }
    w.no_tags();
    w.close_bytes();
    let mut head = w.head.take().expect("the head is closed first");
    let total: usize = head.len() + w.parts.iter().map(Part::len).sum::<usize>();
    let size = i32::try_from(total - 4).expect("a fetch response fits in an i32 frame");
    head[..4].copy_from_slice(&size.to_be_bytes());
    w.parts[0] = Part::Bytes(head.freeze());
    w.parts.retain(|p| !p.is_empty());
    w.parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{
        AbortedTransaction, FetchableTopicResponse, PartitionData,
    };
    use kafka_protocol::messages::{ApiKey, BrokerId, ProducerId, ResponseHeader, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn sample(version: i16) -> FetchResponse {
        let partition =
            |i: i32, records: Option<&'static [u8]>, aborted: Option<Vec<AbortedTransaction>>| {
                let mut p = PartitionData::default()
                    .with_partition_index(i)
                    .with_error_code(if i == 2 { 1 } else { 0 })
                    .with_high_watermark(100 + i64::from(i))
                    .with_last_stable_offset(90)
                    .with_aborted_transactions(aborted)
                    .with_records(records.map(Bytes::from_static));
                if version >= 5 {
                    p.log_start_offset = 7;
                }
                if version >= 11 {
                    p.preferred_read_replica = BrokerId(-1);
                }
                p
            };
        let aborted = Some(vec![AbortedTransaction::default()
            .with_producer_id(ProducerId(5))
            .with_first_offset(9)]);
        let mut r = FetchResponse::default()
            .with_throttle_time_ms(3)
            .with_responses(vec![
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_static_str("orders")))
                    .with_partitions(vec![
                        partition(0, Some(b"batch-bytes-0"), None),
                        partition(1, Some(b""), Some(vec![])),
                        partition(2, None, aborted),
                    ]),
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_static_str("t".repeat(200).leak())))
                    .with_partitions(vec![partition(3, Some(&[7u8; 300]), None)]),
            ]);
        if version >= 7 {
            r.error_code = 0;
            r.session_id = 0;
        }
        r
    }

    fn crate_frame(resp: &FetchResponse, version: i16) -> Vec<u8> {
        let mut body = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(42)
            .encode(&mut body, ApiKey::Fetch.response_header_version(version))
            .unwrap();
        resp.encode(&mut body, version).unwrap();
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        frame
    }

    #[test]
    fn matches_the_crate_encoder_for_every_served_version() {
        for version in MIN_VERSION..=MAX_VERSION {
            let resp = sample(version);
            let records = resp
                .responses
                .iter()
                .map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| p.records.clone().map(|b| (b.clone(), b.len())))
                        .collect()
                })
                .collect();
            let parts = encode(&resp, records, version, 42, &mut BytesMut::new());
            // What the crate writes for the same response, with empty records where
            // none were given.
            let mut resp = resp;
            for p in resp
                .responses
                .iter_mut()
                .flat_map(|t| t.partitions.iter_mut())
            {
                p.records.get_or_insert_with(Bytes::new);
            }
            let mut ours = Vec::new();
            for part in &parts {
                match part {
                    Part::Bytes(b) => ours.extend_from_slice(b),
                    Part::File(f, len) => {
                        assert_eq!(f.len(), *len);
                        ours.extend_from_slice(f)
                    }
                }
            }
            assert_eq!(ours, crate_frame(&resp, version), "fetch v{version}");
            assert!(
                parts.iter().any(|p| matches!(p, Part::File(..))),
                "records travel as file parts"
            );
        }
    }
}
