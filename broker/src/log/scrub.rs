//! Scrub: checksums of the data this process has not read since it opened the log.
//!
//! A clean open trusts rolled segments without reading them (reading every byte of
//! every log would make restarts as slow as the disk), so a flipped bit in old data
//! would only show when a consumer reads it. The scrub walks the unverified bytes of
//! each segment, a bounded amount per call, checking batches as recovery does
//! (structure, offsets, CRC-32C). Each segment's `verified_bytes` is the cursor;
//! batches this process wrote or recovered count as verified already.
//!
//! Three steps, like compaction, so no lock is held while reading:
//! [`Log::plan_scrub`] (read lock) picks the next range, [`ScrubJob::run`] (no lock)
//! reads it, [`Log::complete_scrub`] (write lock) records the result, discarding it
//! if the segment changed meanwhile. [`Log::scrub`] does all three.
//!
//! Damage found is kept ([`Log::damage`]) for the runtime to act on (take the
//! partition offline or fetch it again from the leader) and the damaged segment is not
//! scrubbed again.

use std::io;

use crate::log::handles::SegmentFile;
use crate::log::recovery::Damage;
use crate::log::segment::{Segment, VerifiedRange};
use crate::log::Log;

/// One bounded range of one segment to check; see the module docs.
#[derive(Debug)]
pub struct ScrubJob {
    base_offset: i64,
    file: SegmentFile,
    from: u64,
    end: u64,
    next_offset: i64,
    max_bytes: u64,
    generation: u64,
}

impl ScrubJob {
    /// Read and check the range (blocking file reads; takes no lock).
    pub fn run(&self) -> io::Result<VerifiedRange> {
        let file = self.file.get()?;
        Segment::verify_range(
            &file,
            self.from,
            self.end,
            self.base_offset,
            self.next_offset,
            self.max_bytes,
        )
    }
}

/// What one scrub step found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Bytes checked and found valid by this step.
    pub verified_bytes: u64,
    /// Damage this step found (also kept in [`Log::damage`]).
    pub damage: Option<Damage>,
    /// Unverified bytes remain.
    pub pending: bool,
}

impl Log {
    /// The next range to scrub, at most about `max_bytes` (whole batches; at least
    /// one); `None` when every byte of the log was verified.
    pub fn plan_scrub(&self, max_bytes: u64) -> Option<ScrubJob> {
        let segment = self
            .segments
            .range(self.scrub_from..)
            .map(|(_, s)| s)
            .find(|s| !s.damaged && s.verified_bytes < s.size_bytes)?;
        Some(ScrubJob {
            base_offset: segment.base_offset,
            file: segment.log.clone(),
            from: segment.verified_bytes,
            end: segment.size_bytes,
            next_offset: segment.verified_next_offset,
            max_bytes: max_bytes.max(1),
            generation: self.generation,
        })
    }

    /// Record what `job` found. A read that failed with EIO, or found the file
    /// shorter than the log says, is damage like a bad checksum; other I/O errors are
    /// returned (the range is tried again next time).
    pub fn complete_scrub(
        &mut self,
        job: ScrubJob,
        result: io::Result<VerifiedRange>,
    ) -> io::Result<ScrubReport> {
        let generation = self.generation;
        let Some(segment) = self.segments.get_mut(&job.base_offset).filter(|s| {
            s.log.same(&job.file) && s.verified_bytes == job.from && generation == job.generation
        }) else {
            // Truncated, deleted, compacted or scrubbed meanwhile: look again.
            return Ok(ScrubReport {
                pending: self.plan_scrub(1).is_some(),
                ..ScrubReport::default()
            });
        };
        let range = match result {
            Ok(range) => range,
            Err(e)
                if e.raw_os_error() == Some(libc::EIO)
                    || e.kind() == io::ErrorKind::UnexpectedEof =>
            {
                VerifiedRange {
                    end: job.from,
                    next_offset: job.next_offset,
                    damage: Some((job.from, format!("reading the segment failed: {e}"))),
                }
            }
            Err(e) => return Err(e),
        };
        let mut report = ScrubReport {
            verified_bytes: range.end - job.from,
            ..ScrubReport::default()
        };
        segment.verified_bytes = range.end;
        segment.verified_next_offset = range.next_offset;
        if let Some((position, reason)) = range.damage {
            segment.damaged = true;
            let damage = Damage {
                path: segment.log.path().to_path_buf(),
                position,
                reason,
            };
            tracing::error!(
                path = %damage.path.display(),
                position,
                reason = %damage.reason,
                "scrub found damage in the log"
            );
            if self.damage.is_none() {
                self.damage = Some(damage.clone());
                self.damage_offset = Some(range.next_offset);
            }
            report.damage = Some(damage);
        }
        // Segments before the first unfinished one need no second look.
        if let Some(first) = self
            .segments
            .range(self.scrub_from..)
            .find(|(_, s)| !s.damaged && s.verified_bytes < s.size_bytes)
            .map(|(b, _)| *b)
        {
            self.scrub_from = first;
            report.pending = true;
        } else {
            // Everything is verified; segments rolled from now on are written here.
            self.scrub_from = self.active().base_offset;
        }
        Ok(report)
    }

    /// One scrub step: check at most about `max_bytes` of unverified data.
    pub fn scrub(&mut self, max_bytes: u64) -> io::Result<ScrubReport> {
        let Some(job) = self.plan_scrub(max_bytes) else {
            return Ok(ScrubReport::default());
        };
        let result = job.run();
        self.complete_scrub(job, result)
    }

    /// The first damage the scrub found in this log since it was opened: the
    /// partition's data here is not what was written, and serving it would hand
    /// consumers a corrupt batch.
    pub fn damage(&self) -> Option<&Damage> {
        self.damage.as_ref()
    }

    /// Cut the log at the damage the scrub found: the damaged batch and everything
    /// after it go, to be fetched again from the leader (for a replica whose data the
    /// rest of the ISR holds). Returns the offset the log now ends at, `None` when no
    /// damage was found.
    pub fn truncate_damage(&mut self) -> io::Result<Option<i64>> {
        let Some(offset) = self.damage_offset else {
            return Ok(None);
        };
        self.truncate_to(offset)?;
        self.damage = None;
        self.damage_offset = None;
        for segment in self.segments.values_mut() {
            segment.damaged = false;
        }
        Ok(Some(self.log_end_offset()))
    }
}
