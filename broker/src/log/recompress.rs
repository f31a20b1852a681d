//! `compression.type` other than `producer`: a produced batch whose codec differs from
//! the topic's is decompressed and compressed again before it is stored, as Kafka's
//! broker does. Every header field stays as the producer sent it (sequence numbers,
//! timestamps, record count) except the codec bits, batchLength and the CRC; the records
//! inside are the same bytes.

use bytes::{Bytes, BytesMut};

use super::batch::{self, BatchHeader, HEADER_BYTES};
use super::codec::{self, Compression};
use super::AppendError;

/// The codec a topic stores its batches in, and the level `compression.*.level` gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicCodec {
    pub compression: Compression,
    pub level: Option<i32>,
}

/// `records`, one batch that passed `validate`, in `target`'s codec; `None` when the
/// batch is already in it (Kafka compares codecs only, never levels).
pub fn recompress(
    records: &[u8],
    header: &BatchHeader,
    target: TopicCodec,
    max_message_bytes: u32,
) -> Result<Option<(Bytes, BatchHeader)>, AppendError> {
    let source = Compression::of_header(header).map_err(AppendError::Corrupt)?;
    if source == target.compression {
        return Ok(None);
    }
    let section = &records[HEADER_BYTES..];
    let plain;
    let plain: &[u8] = match source {
        Compression::None => section,
        // validate already decompressed this section under the same cap.
        codec => {
            plain = codec::decompress(codec, section, codec::decompressed_cap(section.len()))
                .map_err(|e| AppendError::Corrupt(e.to_string()))?;
            &plain
        }
    };
    let compressed = codec::compress_at(target.compression, plain, target.level)?;
    let size = HEADER_BYTES + compressed.len();
    // Kafka checks the size of the batch it stores, not only the one it received.
    if size > max_message_bytes as usize {
        return Err(AppendError::MessageTooLarge {
            size,
            max: max_message_bytes,
        });
    }
    let mut out = BytesMut::with_capacity(size);
    out.extend_from_slice(&records[..HEADER_BYTES]);
    out.extend_from_slice(&compressed);
    batch::set_codec_and_length(&mut out, target.compression as i16);
    let header = batch::validate_batch(&out)?;
    Ok(Some((out.freeze(), header)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::testing::{decode_records, TestBatch};

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn batch_in(codec: Compression, values: &[&str]) -> Vec<u8> {
        let plain = TestBatch::new(values, 1_000).idempotent(7, 1, 40).encode();
        let mut out = plain[..HEADER_BYTES].to_vec();
        out.extend_from_slice(&codec::compress(codec, &plain[HEADER_BYTES..]).unwrap());
        batch::set_codec_and_length(&mut out, codec as i16);
        out
    }

    #[test]
    fn every_codec_becomes_every_other_with_the_same_records_and_header() {
        let values = ["a", "bb", "ccc", "a longer value that compresses a little"];
        for from in CODECS {
            let records = batch_in(from, &values);
            let header = batch::validate_batch(&records).unwrap();
            for to in CODECS {
                let target = TopicCodec {
                    compression: to,
                    level: None,
                };
                let got = recompress(&records, &header, target, u32::MAX).unwrap();
                let Some((bytes, new)) = got else {
                    assert_eq!(from, to);
                    continue;
                };
                assert_ne!(from, to);
                assert_eq!(Compression::of_header(&new).unwrap(), to);
                assert_eq!(
                    (new.producer_id, new.base_sequence, new.records_count),
                    (7, 40, 4)
                );
                assert_eq!(new.max_timestamp_ms, header.max_timestamp_ms);
                let decoded: Vec<String> =
                    decode_records(&bytes).into_iter().map(|(_, v)| v).collect();
                assert_eq!(decoded, values, "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn a_batch_that_grows_past_max_message_bytes_is_refused() {
        let big = "x".repeat(10_000);
        let records = batch_in(Compression::Zstd, &[&big]);
        let header = batch::validate_batch(&records).unwrap();
        let target = TopicCodec {
            compression: Compression::None,
            level: None,
        };
        let limit = records.len() as u32 + 100;
        assert!(matches!(
            recompress(&records, &header, target, limit),
            Err(AppendError::MessageTooLarge { .. })
        ));
    }

    #[test]
    fn levels_reach_the_codec() {
        let text = "level matters for text that repeats with variation 12345 ".repeat(2000);
        let records = batch_in(Compression::None, &[&text]);
        let header = batch::validate_batch(&records).unwrap();
        let size = |level| {
            let target = TopicCodec {
                compression: Compression::Gzip,
                level: Some(level),
            };
            recompress(&records, &header, target, u32::MAX)
                .unwrap()
                .unwrap()
                .0
                .len()
        };
        assert!(
            size(1) > size(9),
            "gzip level 1 should compress less than 9"
        );
    }
}
