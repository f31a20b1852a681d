//! Kafka's compression codecs for the records section of a batch: one bounded streaming
//! reader per codec (the produce validator walks records through it without holding the
//! decompressed section), whole-section decompression for the cleaner and time lookups,
//! and compression in the framing Java producers use.
//!
//! Memory is bounded for any input. A streaming reader holds the codec's own state: a
//! 32 KiB gzip window, one lz4 block (4 MiB at most), a zstd window of at most 16 MiB
//! ([`ZSTD_WINDOW_LOG_MAX`]), or one snappy block, whose declared length is checked
//! against what its compressed bytes can encode (22 times their size; raw snappy, as
//! librdkafka writes it, is one block). The caller caps the total it reads (see
//! [`decompressed_cap`]).

use std::io::{self, Read, Write};

use crate::log::batch::{BatchHeader, COMPRESSION_MASK};

/// The floor of the decompressed-size cap: a legitimate batch of up to this many
/// decompressed bytes is always accepted, whatever its compression ratio.
pub const MIN_DECOMPRESSED_CAP_BYTES: usize = 64 * 1024 * 1024;
/// Above the floor, records may decompress to at most this many times their compressed
/// size. Real producer data compresses far less than 64:1; a bomb compresses more.
pub const MAX_COMPRESSION_RATIO: usize = 64;

/// The most bytes the records of a batch with `compressed_bytes` of compressed records
/// may decompress to: `max(64 MiB, 64 × compressed_bytes)`.
pub fn decompressed_cap(compressed_bytes: usize) -> usize {
    MIN_DECOMPRESSED_CAP_BYTES.max(compressed_bytes.saturating_mul(MAX_COMPRESSION_RATIO))
}

/// xerial snappy-java's stream header, which Java producers write around snappy blocks.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// The xerial header: magic, version 1, compatible version 1.
const XERIAL_HEADER_BYTES: usize = 16;
/// Block size of xerial framing written by the cleaner (snappy-java's default).
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;
/// No raw snappy block expands more than 64/3 times: its densest element is a 3-byte
/// copy of at most 64 bytes. A block declaring more output than 22 times its size is
/// refused before its output buffer is allocated.
const SNAPPY_MAX_EXPANSION: usize = 22;

/// The LZ4 frame magic number (little-endian on the wire).
const LZ4_MAGIC: [u8; 4] = [0x04, 0x22, 0x4d, 0x18];
/// FLG bits: a dictionary id follows, a content checksum ends the frame, the content
/// size follows, every block carries a checksum, blocks are independent.
const LZ4_DICT_ID: u8 = 0x01;
const LZ4_CONTENT_CHECKSUM: u8 = 0x04;
const LZ4_CONTENT_SIZE: u8 = 0x08;
const LZ4_BLOCK_CHECKSUM: u8 = 0x10;
const LZ4_BLOCK_INDEPENDENCE: u8 = 0x20;
/// The high bit of a block size: the block is stored uncompressed.
const LZ4_UNCOMPRESSED_BLOCK: u32 = 0x8000_0000;

/// Walk the block sizes of the one LZ4 frame `data` must be (the decoder checks the
/// descriptor's checksum and decodes the blocks). Kafka's Java LZ4 reader refuses
/// frames whose blocks are linked ("dependent block stream is unsupported") and fails
/// on a frame cut short, while the decoder here would take a frame that stops at a
/// block boundary for a whole one: either batch would stop Java consumers.
fn check_lz4_frame(data: &[u8]) -> Result<(), String> {
    if !data.starts_with(&LZ4_MAGIC) {
        return Err("no lz4 frame magic".into());
    }
    let flg = *data.get(4).ok_or("truncated lz4 frame descriptor")?;
    if flg & LZ4_BLOCK_INDEPENDENCE == 0 {
        return Err(
            "the lz4 frame links its blocks; Kafka's lz4 format has independent blocks".into(),
        );
    }
    let optional = |bit: u8, bytes: usize| if flg & bit != 0 { bytes } else { 0 };
    // Magic, FLG, BD, the optional fields, the descriptor checksum.
    let mut at = 4 + 2 + optional(LZ4_CONTENT_SIZE, 8) + optional(LZ4_DICT_ID, 4) + 1;
    let block_checksum = optional(LZ4_BLOCK_CHECKSUM, 4);
    loop {
        let Some(size) = data.get(at..at + 4) else {
            return Err(format!(
                "the lz4 frame ends at byte {at} without its end mark"
            ));
        };
        let size = u32::from_le_bytes(size.try_into().expect("four bytes"));
        at += 4;
        if size == 0 {
            break;
        }
        at = at
            .checked_add((size & !LZ4_UNCOMPRESSED_BLOCK) as usize + block_checksum)
            .filter(|&end| end <= data.len())
            .ok_or_else(|| format!("lz4 block of {size} bytes at byte {at} is truncated"))?;
    }
    at += optional(LZ4_CONTENT_CHECKSUM, 4);
    match at.cmp(&data.len()) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Greater => Err("the lz4 content checksum is truncated".into()),
        std::cmp::Ordering::Less => Err(format!("{} bytes follow the lz4 frame", data.len() - at)),
    }
}

/// The largest zstd window decoded: 16 MiB. A zstd decoder holds its whole window, so
/// this bounds its memory whatever a frame declares (zstd's own default allows 128 MiB).
/// Producers' frames use 2 MiB at the default level 3 and 8 MiB at level 19; only the
/// "ultra" levels 20-22 need more, and their batches are refused.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 24;
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Skippable frames: magic 0x184D2A50-5F, then a 4-byte length.
const ZSTD_SKIPPABLE_MAGIC: u32 = 0x184d_2a50;

/// The window the first zstd frame of `data` needs (RFC 8878 3.1.1.1), checked against
/// [`ZSTD_WINDOW_LOG_MAX`] so the refusal names it; a malformed header is left to the
/// decoder.
fn check_zstd_window(data: &[u8]) -> Result<(), CodecError> {
    let mut at = 0usize;
    while let Some(magic) = data.get(at..at + 4) {
        let magic = u32::from_le_bytes(magic.try_into().expect("four bytes"));
        if magic & !0xf != ZSTD_SKIPPABLE_MAGIC {
            break;
        }
        let Some(len) = data.get(at + 4..at + 8) else {
            return Ok(());
        };
        at += 8 + u32::from_le_bytes(len.try_into().expect("four bytes")) as usize;
    }
    let Some(header) = data.get(at..).filter(|h| h.starts_with(&ZSTD_MAGIC)) else {
        return Ok(());
    };
    let Some(&descriptor) = header.get(4) else {
        return Ok(());
    };
    let single_segment = descriptor & 0x20 != 0;
    let window = if single_segment {
        // The window is the content size, stored after the dictionary id.
        let dict_id_bytes = [0, 1, 2, 4][usize::from(descriptor & 0x3)];
        let size_bytes = [1, 2, 4, 8][usize::from(descriptor >> 6)];
        let from = 5 + dict_id_bytes;
        let Some(field) = header.get(from..from + size_bytes) else {
            return Ok(());
        };
        let mut le = [0u8; 8];
        le[..size_bytes].copy_from_slice(field);
        // A 2-byte content size is stored minus 256.
        u64::from_le_bytes(le) + if size_bytes == 2 { 256 } else { 0 }
    } else {
        let Some(&w) = header.get(5) else {
            return Ok(());
        };
        let base = 1u64 << (10 + (w >> 3));
        base + (base / 8) * u64::from(w & 0x7)
    };
    let max = 1u64 << ZSTD_WINDOW_LOG_MAX;
    if window > max {
        return Err(CodecError::Unsupported {
            codec: "zstd",
            reason: format!(
                "the zstd frame needs a window of {window} bytes, more than the {max} \
                 decoded (compression levels up to 19 stay within it)"
            ),
        });
    }
    Ok(())
}

/// Why a compressed records section could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The bytes are not a valid stream of the batch's codec (Kafka: CORRUPT_MESSAGE).
    #[error("{codec} records do not decompress: {reason}")]
    Corrupt { codec: &'static str, reason: String },
    /// A valid stream Fjord refuses to decode (INVALID_RECORD).
    #[error("{reason}")]
    Unsupported { codec: &'static str, reason: String },
    /// More decompressed bytes than the cap allows.
    #[error("records decompress to more than {cap} bytes")]
    TooLarge { cap: usize },
}

/// Kafka's compression codecs, by their attribute value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

impl Compression {
    /// The codec of a batch; `None` for attribute values 5-7, which name no codec.
    pub fn from_attributes(attributes: i16) -> Option<Compression> {
        Some(match attributes & COMPRESSION_MASK {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            _ => return None,
        })
    }

    /// The codec of `header`'s batch, or the reason it has none.
    pub fn of_header(header: &BatchHeader) -> Result<Compression, String> {
        Compression::from_attributes(header.attributes).ok_or_else(|| {
            format!(
                "unknown compression codec {}",
                header.attributes & COMPRESSION_MASK
            )
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// A reader of the decompressed bytes of `data`, a records section compressed with
/// `codec`. Errors of the codec surface from `read` as `io::Error`s (see [`corrupt`]).
pub fn decoder<'a>(codec: Compression, data: &'a [u8]) -> Result<Box<dyn Read + 'a>, CodecError> {
    let corrupt = |reason: String| CodecError::Corrupt {
        codec: codec.name(),
        reason,
    };
    Ok(match codec {
        Compression::None => Box::new(data),
        // Java's GZIPInputStream reads concatenated members too.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(data)),
        Compression::Lz4 => {
            check_lz4_frame(data).map_err(corrupt)?;
            Box::new(lz4_flex::frame::FrameDecoder::new(data))
        }
        Compression::Zstd => {
            check_zstd_window(data)?;
            // `with_buffer`: a slice is already buffered, no second copy.
            let mut d = zstd::stream::read::Decoder::with_buffer(data)
                .map_err(|e| corrupt(e.to_string()))?;
            // Frames after the first are held to the same window by the decoder.
            d.window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| corrupt(e.to_string()))?;
            Box::new(d)
        }
        Compression::Snappy => {
            if data.starts_with(&XERIAL_MAGIC) {
                let blocks = data
                    .get(XERIAL_HEADER_BYTES..)
                    .ok_or_else(|| corrupt("truncated snappy-java header".into()))?;
                Box::new(XerialReader {
                    rest: blocks,
                    block: Vec::new(),
                    at: 0,
                    decoder: snap::raw::Decoder::new(),
                })
            } else {
                // Raw snappy (librdkafka and others): one block, its length declared up
                // front, so it is decompressed whole.
                Box::new(io::Cursor::new(snappy_block(data)?))
            }
        }
    })
}

/// Decompress one raw snappy block, refusing declared lengths its bytes cannot yield.
fn snappy_block(block: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    decompress_snappy_into(&mut snap::raw::Decoder::new(), block, &mut out).map_err(|reason| {
        CodecError::Corrupt {
            codec: "snappy",
            reason,
        }
    })?;
    Ok(out)
}

fn decompress_snappy_into(
    decoder: &mut snap::raw::Decoder,
    block: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let len = snap::raw::decompress_len(block).map_err(|e| e.to_string())?;
    if len > block.len().saturating_mul(SNAPPY_MAX_EXPANSION) {
        return Err(format!(
            "a block of {} bytes declares {len} bytes of output, more than snappy can encode",
            block.len()
        ));
    }
    out.clear();
    out.resize(len, 0);
    decoder.decompress(block, out).map_err(|e| e.to_string())?;
    Ok(())
}

/// snappy-java's framing: after the 16-byte header, blocks of (length u32, raw snappy),
/// decompressed one at a time.
struct XerialReader<'a> {
    rest: &'a [u8],
    block: Vec<u8>,
    at: usize,
    decoder: snap::raw::Decoder,
}

impl Read for XerialReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let corrupt = |reason: String| io::Error::new(io::ErrorKind::InvalidData, reason);
        while self.at == self.block.len() {
            if self.rest.is_empty() {
                return Ok(0);
            }
            let Some((len, tail)) = self.rest.split_first_chunk::<4>() else {
                return Err(corrupt("truncated snappy-java block length".into()));
            };
            let len = u32::from_be_bytes(*len) as usize;
            let block = tail
                .get(..len)
                .ok_or_else(|| corrupt(format!("snappy-java block of {len} bytes is truncated")))?;
            decompress_snappy_into(&mut self.decoder, block, &mut self.block).map_err(corrupt)?;
            self.rest = &tail[len..];
            self.at = 0;
        }
        let n = buf.len().min(self.block.len() - self.at);
        buf[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The error of a codec reader's `read`, as a [`CodecError`].
pub fn corrupt(codec: Compression, e: io::Error) -> CodecError {
    CodecError::Corrupt {
        codec: codec.name(),
        reason: e.to_string(),
    }
}

/// Decompress `data` (a batch's records section) whole, refusing output beyond `cap`
/// bytes. Streaming readers go through `take(cap + 1)`: one byte past the cap proves a
/// bomb without ever holding more than cap + 1 bytes.
pub fn decompress(codec: Compression, data: &[u8], cap: usize) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    decoder(codec, data)?
        .take(cap as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(codec, e))?;
    if out.len() > cap {
        return Err(CodecError::TooLarge { cap });
    }
    Ok(out)
}

/// Compress a records section with `codec`, in the framing Java producers use, at the
/// codec's default level.
pub fn compress(codec: Compression, data: &[u8]) -> io::Result<Vec<u8>> {
    compress_at(codec, data, None)
}

/// Compress at `level` (`compression.gzip.level` 1-9, `compression.zstd.level`); the
/// other codecs have no level here, and `None` or gzip's -1 mean the default.
pub fn compress_at(codec: Compression, data: &[u8], level: Option<i32>) -> io::Result<Vec<u8>> {
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let level = match level {
                Some(l @ 1..=9) => flate2::Compression::new(l as u32),
                _ => flate2::Compression::default(),
            };
            let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
            e.write_all(data)?;
            e.finish()
        }
        Compression::Snappy => {
            let mut out = Vec::with_capacity(XERIAL_HEADER_BYTES + data.len() / 2);
            out.extend_from_slice(&XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut encoder = snap::raw::Encoder::new();
            for chunk in data.chunks(XERIAL_BLOCK_BYTES) {
                let block = encoder.compress_vec(chunk).map_err(io::Error::other)?;
                out.extend_from_slice(&(block.len() as u32).to_be_bytes());
                out.extend_from_slice(&block);
            }
            Ok(out)
        }
        Compression::Lz4 => {
            // Kafka's LZ4 reader handles independent 64 KiB blocks (its own writer's
            // settings); linked blocks or other sizes are not safe for every client.
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut e = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
            e.write_all(data)?;
            e.finish().map_err(io::Error::other)
        }
        // Level 3 is Kafka's default compression.zstd.level.
        Compression::Zstd => zstd::stream::encode_all(data, level.unwrap_or(3)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODECS: [Compression; 4] = [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn every_codec_round_trips_through_the_streaming_reader() {
        let data = b"records compress and stream back ".repeat(5000);
        for codec in CODECS {
            let c = compress(codec, &data).unwrap();
            assert_eq!(
                decompress(codec, &c, data.len()).unwrap(),
                data,
                "{codec:?}"
            );
            // Read in small pieces: block boundaries fall inside reads.
            let mut r = decoder(codec, &c).unwrap();
            let (mut out, mut piece) = (Vec::new(), [0u8; 777]);
            loop {
                let n = r.read(&mut piece).unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&piece[..n]);
            }
            assert_eq!(out, data, "{codec:?}");
        }
    }

    #[test]
    fn the_cap_is_exact() {
        let data = vec![7u8; 10_000];
        for codec in CODECS {
            let c = compress(codec, &data).unwrap();
            assert_eq!(decompress(codec, &c, 10_000).unwrap().len(), 10_000);
            assert!(
                matches!(
                    decompress(codec, &c, 9_999),
                    Err(CodecError::TooLarge { cap: 9_999 })
                ),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn bytes_that_are_not_the_codec_are_corrupt() {
        let junk = b"this is not compressed by any codec at all".to_vec();
        for codec in CODECS {
            let err = decompress(codec, &junk, 1 << 20).unwrap_err();
            assert!(
                matches!(&err, CodecError::Corrupt { codec: name, .. } if *name == codec.name()),
                "{codec:?}: {err}"
            );
        }
        // Truncated streams, cut in the middle.
        let data = b"0123456789abcdef".repeat(4096);
        for codec in CODECS {
            let c = compress(codec, &data).unwrap();
            let err = decompress(codec, &c[..c.len() / 2], 1 << 20).unwrap_err();
            assert!(
                matches!(err, CodecError::Corrupt { .. }),
                "{codec:?}: {err}"
            );
        }
    }

    #[test]
    fn a_snappy_length_beyond_what_snappy_can_encode_is_refused_before_allocating() {
        // A 6-byte block (varint length, then one literal tag) declaring 2^31 bytes.
        let mut block = vec![0x80, 0x80, 0x80, 0x80, 0x08];
        block.push(0);
        let err = decompress(Compression::Snappy, &block, usize::MAX - 1).unwrap_err();
        assert!(
            err.to_string().contains("more than snappy can encode"),
            "{err}"
        );
        // At the limit: 66 bytes declared by a 3-byte block pass the bound and reach the
        // decoder (which finds the block does not hold them); 67 do not.
        let err = decompress(Compression::Snappy, &[66, 0, 0], 1 << 20).unwrap_err();
        assert!(!err.to_string().contains("can encode"), "{err}");
        let err = decompress(Compression::Snappy, &[67, 0, 0], 1 << 20).unwrap_err();
        assert!(err.to_string().contains("can encode"), "{err}");
        // The densest real data stays well inside the bound.
        let zeros = snap::raw::Encoder::new()
            .compress_vec(&vec![0u8; 1 << 20])
            .unwrap();
        assert!(zeros.len() * SNAPPY_MAX_EXPANSION >= 1 << 20);
        assert_eq!(
            decompress(Compression::Snappy, &zeros, 1 << 20)
                .unwrap()
                .len(),
            1 << 20
        );
    }

    #[test]
    fn lz4_frames_with_linked_blocks_are_refused() {
        let data = b"linked blocks refer to the previous block ".repeat(4000);
        let info = lz4_flex::frame::FrameInfo::new().block_mode(lz4_flex::frame::BlockMode::Linked);
        let mut e = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
        e.write_all(&data).unwrap();
        let linked = e.finish().unwrap();
        let err = decompress(Compression::Lz4, &linked, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("links its blocks"), "{err}");
    }

    #[test]
    fn an_lz4_frame_must_be_whole_and_alone() {
        let data = b"independent blocks ".repeat(10_000);
        let frame = compress(Compression::Lz4, &data).unwrap();
        assert_eq!(
            decompress(Compression::Lz4, &frame, data.len()).unwrap(),
            data
        );
        // Without its end mark (the decoder alone would take it), or in the middle of it.
        for cut in [4, 1] {
            let err =
                decompress(Compression::Lz4, &frame[..frame.len() - cut], 1 << 20).unwrap_err();
            assert!(err.to_string().contains("without its end mark"), "{err}");
        }
        // In the middle of a block.
        let err = decompress(Compression::Lz4, &frame[..frame.len() / 2], 1 << 20).unwrap_err();
        assert!(err.to_string().contains("is truncated"), "{err}");
        let mut two = frame.clone();
        two.extend_from_slice(&frame);
        let err = decompress(Compression::Lz4, &two, 1 << 20).unwrap_err();
        assert!(
            err.to_string().contains("bytes follow the lz4 frame"),
            "{err}"
        );
        // With block and content checksums, as some producers write it.
        let info = lz4_flex::frame::FrameInfo::new()
            .block_checksums(true)
            .content_checksum(true)
            .content_size(Some(data.len() as u64));
        let mut e = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
        e.write_all(&data).unwrap();
        let checked = e.finish().unwrap();
        assert_eq!(
            decompress(Compression::Lz4, &checked, data.len()).unwrap(),
            data
        );
        let err = decompress(Compression::Lz4, &checked[..checked.len() - 2], 1 << 20).unwrap_err();
        assert!(
            err.to_string().contains("content checksum is truncated"),
            "{err}"
        );
    }

    #[test]
    fn a_zstd_window_past_16_mib_is_refused_before_decoding() {
        let data = vec![3u8; 1 << 20];
        let encode = |window_log: u32, pledged: Option<u64>| {
            let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
            e.window_log(window_log).unwrap();
            e.set_pledged_src_size(pledged).unwrap();
            e.include_contentsize(pledged.is_some()).unwrap();
            e.write_all(&data).unwrap();
            e.finish().unwrap()
        };
        // At the limit.
        let at = encode(ZSTD_WINDOW_LOG_MAX, None);
        assert_eq!(decompress(Compression::Zstd, &at, 1 << 20).unwrap(), data);
        let past = encode(ZSTD_WINDOW_LOG_MAX + 1, None);
        let err = decompress(Compression::Zstd, &past, 1 << 20).unwrap_err();
        assert!(
            matches!(&err, CodecError::Unsupported { reason, .. }
                if reason.contains("window of 33554432 bytes")),
            "{err}"
        );
        // A single-segment frame's window is its content size.
        let single = encode(ZSTD_WINDOW_LOG_MAX, Some(data.len() as u64));
        assert_eq!(single[4] & 0x20, 0x20, "single segment");
        assert_eq!(
            decompress(Compression::Zstd, &single, 1 << 20).unwrap(),
            data
        );
        let mut lying = single.clone();
        lying[5..9].copy_from_slice(&(1u32 << 30).to_le_bytes());
        let err = decompress(Compression::Zstd, &lying, 1 << 20).unwrap_err();
        assert!(matches!(err, CodecError::Unsupported { .. }), "{err}");
        // A second frame past the limit is refused by the decoder.
        let mut two = at.clone();
        two.extend_from_slice(&past);
        let err = decompress(Compression::Zstd, &two, 4 << 20).unwrap_err();
        assert!(matches!(err, CodecError::Corrupt { .. }), "{err}");
    }

    #[test]
    fn codecs_come_from_the_low_three_attribute_bits() {
        assert_eq!(Compression::from_attributes(0x0b), Some(Compression::Lz4));
        assert_eq!(Compression::from_attributes(0x04), Some(Compression::Zstd));
        for bad in 5..=7 {
            assert_eq!(Compression::from_attributes(bad), None);
        }
    }
}
