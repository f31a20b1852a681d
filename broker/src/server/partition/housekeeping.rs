//! One visit of a partition's log by the broker's timers: roll, retention, producer
//! expiry, flush.ms and compaction, then the log's next deadline armed. The timer
//! task runs it on the blocking pool for every partition whose log entry came due.

use std::io;

use super::Partition;
use crate::log::compaction::run::CompactionStats;
use crate::server::timers::TimerKind;

/// What one housekeeping visit did.
#[derive(Debug)]
pub struct Housekept {
    /// Segments deleted past retention.ms or retention.bytes.
    pub deleted: io::Result<usize>,
    /// The cleaning of a compacted log, when one was due and installed.
    pub compacted: io::Result<Option<CompactionStats>>,
}

impl Partition {
    /// Look after the log now (its timer entry fired) and arm its next deadline.
    pub fn housekeep(&self) -> Housekept {
        // Before the log is read: an append from here on arms the entry anew.
        self.timer.fired(TimerKind::Log);
        let hw = self.high_watermark();
        let deleted = self.with_log_mut(|log| log.housekeeping(self.clock.wall_ms(), hw));
        // A cleaning that fails before its swap leaves the log as it was and is
        // retried next round; one that fails during the swap keeps serving the old
        // segments, stops compacting that log, and is completed on the next open.
        let compacted = self.compact();
        // The log decides on the wall clock; the timers run on the monotonic one.
        let (wall_ms, mono_ms) = (self.clock.wall_ms(), self.clock.now_ms());
        let next = self
            .with_log(|log| log.next_housekeeping_ms(wall_ms))
            .map(|at| mono_ms.saturating_add(at.saturating_sub(wall_ms)));
        self.timer.arm_log(mono_ms, next);
        Housekept { deleted, compacted }
    }
}
