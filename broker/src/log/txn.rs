//! Transaction markers in the log (KIP-98): the control batch a partition leader writes
//! when a transaction ends, and the transactions a marker completes.
//!
//! A marker is a control batch (attributes: transactional and control bits set, no
//! compression) holding one record, in Kafka's format:
//! key `version i16 = 0, type i16` (0 abort, 1 commit), value `version i16 = 0,
//! coordinator_epoch i32`. Its producer id and epoch are the transaction's, its base
//! sequence -1.

use crate::log::batch::{
    self, BatchHeader, CONTROL_BIT, HEADER_BYTES, MAGIC_V2, TRANSACTIONAL_BIT,
};
use crate::log::records::{self, put_varlong};
use crate::log::AppendError;

/// Kafka's ControlRecordType codes.
const CONTROL_TYPE_ABORT: i16 = 0;
const CONTROL_TYPE_COMMIT: i16 = 1;
/// A control batch larger than this is not a marker (bounds what is read from disk to
/// parse one; Kafka's markers are under 100 bytes).
pub const MAX_MARKER_BATCH_BYTES: u64 = 1024;

/// The end of one producer's transaction on this partition, as the coordinator asks
/// the leader to write it (WriteTxnMarkers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTxnMarker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    /// Commit; otherwise abort.
    pub commit: bool,
}

/// A transaction a marker ended: its data lies in `first_offset..last_offset`, the
/// marker at `last_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub aborted: bool,
}

impl EndTxnMarker {
    /// The control batch of this marker at `base_offset`, stamped `timestamp_ms`.
    pub fn encode(&self, base_offset: i64, leader_epoch: i32, timestamp_ms: i64) -> Vec<u8> {
        let mut body = Vec::with_capacity(24);
        body.push(0u8); // record attributes
        put_varlong(&mut body, 0); // timestamp delta
        put_varlong(&mut body, 0); // offset delta
        put_varlong(&mut body, 4);
        body.extend_from_slice(&0i16.to_be_bytes());
        let control_type = if self.commit {
            CONTROL_TYPE_COMMIT
        } else {
            CONTROL_TYPE_ABORT
        };
        body.extend_from_slice(&control_type.to_be_bytes());
        put_varlong(&mut body, 6);
        body.extend_from_slice(&0i16.to_be_bytes());
        body.extend_from_slice(&self.coordinator_epoch.to_be_bytes());
        put_varlong(&mut body, 0); // no headers
        let mut section = Vec::with_capacity(body.len() + 1);
        put_varlong(&mut section, body.len() as i64);
        section.extend_from_slice(&body);
        let header = BatchHeader {
            base_offset,
            batch_length: 0,
            partition_leader_epoch: leader_epoch,
            magic: MAGIC_V2,
            crc: 0,
            attributes: TRANSACTIONAL_BIT | CONTROL_BIT,
            last_offset_delta: 0,
            base_timestamp_ms: timestamp_ms,
            max_timestamp_ms: timestamp_ms,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            base_sequence: -1,
            records_count: 1,
        };
        records::encode_batch(
            &header,
            header.attributes,
            timestamp_ms,
            timestamp_ms,
            1,
            &section,
        )
    }

    /// Read the marker of a whole control batch (CRC already checked by the caller).
    /// `None` for a control batch that holds no marker (Kafka skips control record
    /// types it does not know, and so does every client).
    pub fn parse(batch_bytes: &[u8]) -> Result<Option<EndTxnMarker>, AppendError> {
        let header = batch::validate_batch(batch_bytes)?;
        if !header.is_control() {
            return Ok(None);
        }
        let corrupt = |reason: &str| {
            AppendError::Corrupt(format!(
                "control batch at offset {}: {reason}",
                header.base_offset
            ))
        };
        if header.attributes & batch::COMPRESSION_MASK != 0 {
            return Err(corrupt("compressed"));
        }
        let section = &batch_bytes[HEADER_BYTES..];
        let parsed = records::parse_records(&header, section)
            .map_err(|e| corrupt(&format!("records: {e}")))?;
        let [record] = parsed.as_slice() else {
            return Err(corrupt(&format!(
                "{} records, a marker has one",
                parsed.len()
            )));
        };
        let key = record.key.ok_or_else(|| corrupt("no key"))?;
        let (Some(version), Some(control_type)) = (i16_at(key, 0), i16_at(key, 2)) else {
            return Err(corrupt(&format!("key of {} bytes", key.len())));
        };
        if version < 0 {
            return Err(corrupt(&format!("key version {version}")));
        }
        let commit = match control_type {
            CONTROL_TYPE_COMMIT => true,
            CONTROL_TYPE_ABORT => false,
            _ => return Ok(None),
        };
        let value = record
            .value
            .ok_or_else(|| corrupt("marker without a value"))?;
        let coordinator_epoch = value
            .get(2..6)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| corrupt(&format!("marker value of {} bytes", value.len())))?;
        Ok(Some(EndTxnMarker {
            producer_id: header.producer_id,
            producer_epoch: header.producer_epoch,
            coordinator_epoch,
            commit,
        }))
    }
}

fn i16_at(b: &[u8], at: usize) -> Option<i16> {
    let s = b.get(at..at + 2)?;
    Some(i16::from_be_bytes([s[0], s[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trips_in_kafkas_control_format() {
        let marker = EndTxnMarker {
            producer_id: 42,
            producer_epoch: 3,
            coordinator_epoch: 7,
            commit: false,
        };
        let bytes = marker.encode(100, 5, 1_000);
        let h = batch::validate_batch(&bytes).unwrap();
        assert!(h.is_control() && h.is_transactional());
        assert_eq!(
            (h.base_offset, h.last_offset(), h.base_sequence),
            (100, 100, -1)
        );
        assert_eq!(EndTxnMarker::parse(&bytes).unwrap(), Some(marker));
        // The record key and value as Kafka writes them.
        let section = &bytes[HEADER_BYTES..];
        assert_eq!(&section[5..9], &[0, 0, 0, 0], "key: version 0, type abort");
        let commit = EndTxnMarker {
            commit: true,
            ..marker
        };
        let parsed = EndTxnMarker::parse(&commit.encode(0, 0, 0)).unwrap();
        assert_eq!(parsed, Some(commit));
        // A damaged byte is caught by the CRC.
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(EndTxnMarker::parse(&bad).is_err());
    }
}
