//! A broker's log as the simulator reads it back: through the real `Log::read`, batches
//! validated and records parsed, incrementally while the log only grows; and the check
//! that a stopped process's log recovers to what it held.

use std::sync::Arc;

use tokio::sync::watch;

use crate::log::batch::{validate_batch, BatchHeader};
use crate::log::records::{parse_records, records_section};
use crate::replication::BrokerId;
use crate::server::partition::Partition;

/// One record as read back from a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredRecord {
    pub offset: i64,
    /// The leader epoch of its batch.
    pub epoch: i32,
    pub value: Option<Vec<u8>>,
}

/// A log as read back: its start offset (retention and resets move it) and its
/// records, with a version bumped whenever either changes.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct LogRead {
    pub start: i64,
    pub records: Arc<Vec<StoredRecord>>,
    pub version: u64,
}

impl LogRead {
    /// The records at and after `offset`.
    pub(super) fn from(&self, offset: i64) -> &[StoredRecord] {
        &self.records[self.records.partition_point(|r| r.offset < offset)..]
    }

    /// Holds the record with value `value` at `offset`, or held it before retention
    /// (or a reset to its leader's log start) deleted it: only committed records go
    /// that way.
    pub(super) fn holds(&self, offset: i64, value: &[u8]) -> bool {
        offset < self.start
            || value_at(&self.records, offset).and_then(|r| r.value.as_deref()) == Some(value)
    }
}

/// A broker's log as read back. Reads are incremental while the log only grows; a
/// truncation (seen by the broker handling the fetch answer), a moved log start
/// (retention, a reset), and every [`FULL_READ_EVERY`]-th refresh read it whole
/// again.
pub(super) struct LogView {
    log_end: watch::Receiver<i64>,
    records: Arc<Vec<StoredRecord>>,
    /// Bumped whenever `records` changes.
    version: u64,
    start: i64,
    end: i64,
    whole: bool,
    refreshes: u64,
}

/// A log that changed in place (a bug, or a disk) is found within this many
/// refreshes.
const FULL_READ_EVERY: u64 = 16;

impl LogView {
    pub fn new(partition: &Partition) -> LogView {
        LogView {
            log_end: partition.subscribe_log_end(),
            records: Arc::new(Vec::new()),
            version: 0,
            start: 0,
            end: 0,
            whole: false,
            refreshes: 0,
        }
    }

    /// The log was truncated: read it whole next time.
    pub fn truncated(&mut self) {
        self.whole = false;
    }

    pub(super) fn read(&mut self, partition: &Partition) -> Result<LogRead, String> {
        // Retention moves the log start without announcing a log end.
        let (start, end) = partition.with_log(|l| (l.log_start_offset(), l.log_end_offset()));
        if self.whole && start == self.start && !self.log_end.has_changed().unwrap_or(true) {
            return Ok(self.snapshot());
        }
        self.log_end.borrow_and_update();
        self.refreshes += 1;
        let incremental = self.whole
            && start == self.start
            && end >= self.end
            && self.refreshes % FULL_READ_EVERY != 0;
        if incremental {
            if end > self.end {
                let more = read_log(partition, self.end)?;
                Arc::make_mut(&mut self.records).extend(more);
            }
        } else {
            self.records = Arc::new(read_log(partition, start)?);
        }
        (self.start, self.end, self.whole) = (start, end, true);
        self.version += 1;
        Ok(self.snapshot())
    }

    fn snapshot(&self) -> LogRead {
        LogRead {
            start: self.start,
            records: self.records.clone(),
            version: self.version,
        }
    }
}

/// Every record from `from` to the log end, through `Log::read`.
fn read_log(partition: &Partition, from: i64) -> Result<Vec<StoredRecord>, String> {
    partition.with_log(|log| {
        let mut out = Vec::new();
        let mut offset = from;
        let end = log.log_end_offset();
        while offset < end {
            let info = log
                .read(offset, 1 << 20, end, true)
                .map_err(|e| format!("reading the log at {offset}: {e}"))?;
            let Some(slice) = info.slice else { break };
            let bytes = slice
                .read_to_bytes()
                .map_err(|e| format!("reading the log at {offset}: {e}"))?;
            parse_batches(&bytes, &mut out)?;
            if info.next_offset <= offset {
                return Err(format!("reading the log at {offset} made no progress"));
            }
            offset = info.next_offset;
        }
        Ok(out)
    })
}

fn parse_batches(mut bytes: &[u8], out: &mut Vec<StoredRecord>) -> Result<(), String> {
    while !bytes.is_empty() {
        let header = BatchHeader::parse_prefix(bytes)
            .ok_or_else(|| format!("{} bytes left after a batch", bytes.len()))?;
        let size = usize::try_from(header.size_bytes())
            .ok()
            .filter(|&s| s <= bytes.len())
            .ok_or_else(|| format!("batch at {} runs past the read", header.base_offset))?;
        let (batch, rest) = bytes.split_at(size);
        let header = validate_batch(batch).map_err(|e| e.to_string())?;
        let section = records_section(batch, &header).map_err(|e| e.to_string())?;
        for r in parse_records(&header, &section).map_err(|e| e.to_string())? {
            out.push(StoredRecord {
                offset: header.base_offset + i64::from(r.offset_delta),
                epoch: header.partition_leader_epoch,
                value: r.value.map(<[u8]>::to_vec),
            });
        }
        bytes = rest;
    }
    Ok(())
}

/// A process that stopped with every write complete (a crash between writes, or a
/// controlled shutdown) leaves a log that recovers to exactly what it held: recovery
/// neither cuts durable batches nor lets offsets be handed out twice.
pub(super) fn check_recovered(
    b: BrokerId,
    held: &LogRead,
    recovered: &LogRead,
) -> Result<(), String> {
    if held.start == recovered.start && held.records == recovered.records {
        return Ok(());
    }
    let (held, recovered) = (&held.records, &recovered.records);
    let first = held
        .iter()
        .zip(recovered.iter())
        .find(|(a, b)| a != b)
        .map(|(a, b)| format!("first difference: held {a:?}, recovered {b:?}"))
        .unwrap_or_else(|| format!("held {} records, recovered {}", held.len(), recovered.len()));
    Err(format!(
        "broker {b}: the restarted log is not what the stopped process held: {first}"
    ))
}

pub(super) fn value_at(records: &[StoredRecord], offset: i64) -> Option<&StoredRecord> {
    records
        .binary_search_by_key(&offset, |r| r.offset)
        .ok()
        .map(|i| &records[i])
}
