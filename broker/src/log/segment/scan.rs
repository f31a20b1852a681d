//! Reading batches back from a segment file: headers, CRC-32C checks in bounded
//! chunks, and the header walks that recovery, index rebuilds and the scrub share.
//! Nothing here writes.

use std::io;

use crate::log::batch::{BatchHeader, HEADER_BYTES};
use crate::storage::DiskFile;

use super::MAX_RELATIVE_OFFSET;

/// Chunk size for CRC checks: memory stays bounded whatever a (possibly corrupt)
/// length field claims.
const CHUNK_BYTES: usize = 64 * 1024;

pub(super) fn read_header(
    file: &DiskFile,
    position: u64,
    end: u64,
) -> io::Result<Option<BatchHeader>> {
    if position.saturating_add(HEADER_BYTES as u64) > end {
        return Ok(None);
    }
    let mut buf = [0u8; HEADER_BYTES];
    file.read_exact_at(&mut buf, position)?;
    Ok(Some(BatchHeader::parse(&buf)))
}

/// Stream the batch's CRC-covered bytes through a bounded buffer.
fn crc_matches(
    file: &DiskFile,
    position: u64,
    header: &BatchHeader,
    chunk: &mut [u8],
) -> io::Result<bool> {
    let mut at = position + 21;
    let end = position + header.size_bytes();
    let mut crc = 0u32;
    while at < end {
        let n = chunk.len().min((end - at) as usize);
        file.read_exact_at(&mut chunk[..n], at)?;
        crc = crc32c::crc32c_append(crc, &chunk[..n]);
        at += n as u64;
    }
    Ok(crc == header.crc)
}

/// What checking a range of batches found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRange {
    /// Where the checked, valid batches end (the damage's position, if any).
    pub end: u64,
    /// The offset after the last valid batch.
    pub next_offset: i64,
    /// The first bad byte's position and what is wrong there.
    pub damage: Option<(u64, String)>,
}

pub(super) fn verify_batches(
    file: &DiskFile,
    from: u64,
    end: u64,
    base_offset: i64,
    max_bytes: u64,
) -> io::Result<VerifiedRange> {
    verify_batches_from(file, from, end, base_offset, base_offset, max_bytes)
}

/// Check batches from `from` until `end` or until about `max_bytes` were checked:
/// each must be whole, structurally sound, start at or after the previous one's end
/// offset, stay within the segment's relative offset range, and match its CRC-32C.
pub(super) fn verify_batches_from(
    file: &DiskFile,
    from: u64,
    end: u64,
    base_offset: i64,
    next_offset: i64,
    max_bytes: u64,
) -> io::Result<VerifiedRange> {
    let mut chunk = vec![0u8; CHUNK_BYTES];
    let mut out = VerifiedRange {
        end: from,
        next_offset,
        damage: None,
    };
    while out.end < end && out.end - from < max_bytes {
        let position = out.end;
        let left = end - position;
        let Some(header) = read_header(file, position, end)? else {
            out.damage = Some((
                position,
                format!("{left} trailing bytes are shorter than a batch header"),
            ));
            break;
        };
        let problem = if let Err(e) = header.check_structure() {
            Some(e.to_string())
        } else if header.size_bytes() > left {
            Some(format!(
                "batch at offset {} claims {} bytes, {left} remain in the file",
                header.base_offset,
                header.size_bytes()
            ))
        } else if header.base_offset < out.next_offset {
            Some(format!(
                "batch at offset {} does not follow offset {}",
                header.base_offset,
                out.next_offset - 1
            ))
        } else if header.last_offset() - base_offset > MAX_RELATIVE_OFFSET {
            Some(format!(
                "batch ending at offset {} is out of the segment's offset range",
                header.last_offset()
            ))
        } else if !crc_matches(file, position, &header, &mut chunk)? {
            Some(format!(
                "CRC-32C mismatch in the batch at offset {}",
                header.base_offset
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            out.damage = Some((position, problem));
            break;
        }
        out.end = position + header.size_bytes();
        out.next_offset = header.last_offset() + 1;
    }
    Ok(out)
}

#[derive(Debug, Default)]
pub(super) struct TailScan {
    pub next_offset: Option<i64>,
    pub first_last_offset: Option<i64>,
    pub max_timestamp_ms: i64,
    pub offset_of_max_timestamp: i64,
}

/// Walk headers from `position` to `end`; `None` unless they tile the range exactly
/// with sane headers and increasing offsets.
pub(super) fn scan_headers(
    file: &DiskFile,
    mut position: u64,
    end: u64,
    base_offset: i64,
) -> io::Result<Option<TailScan>> {
    let mut scan = TailScan {
        max_timestamp_ms: -1,
        ..TailScan::default()
    };
    let mut expected = base_offset;
    while position < end {
        let Some(header) = read_header(file, position, end)? else {
            return Ok(None);
        };
        if header.check_structure().is_err()
            || position + header.size_bytes() > end
            || header.base_offset < expected
            || header.last_offset() - base_offset > MAX_RELATIVE_OFFSET
        {
            return Ok(None);
        }
        scan.first_last_offset.get_or_insert(header.last_offset());
        if header.max_timestamp_ms > scan.max_timestamp_ms {
            scan.max_timestamp_ms = header.max_timestamp_ms;
            scan.offset_of_max_timestamp = header.last_offset();
        }
        expected = header.last_offset() + 1;
        scan.next_offset = Some(expected);
        position += header.size_bytes();
    }
    Ok(Some(scan))
}
