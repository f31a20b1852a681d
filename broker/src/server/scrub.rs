//! The background scrub: checks, under a byte-rate limit
//! (`--log-scrub-io-max-bytes-per-second`), the CRC-32C of log data this broker has
//! not read since it opened it (see `crate::log::scrub`), one partition after the
//! other. Damage is logged with its file and byte position, counted in
//! `fjord_log_damage_found_total`, and kept on the partition's log
//! ([`crate::log::Log::damage`]) for the runtime to act on.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::broker::Broker;
use super::offline::Cause;

/// Bytes checked per step: a tenth of a second's worth, within bounds (a step holds a
/// file open and one 64 KiB buffer; the log's lock is not held while it reads).
fn step_bytes(rate: u64) -> u64 {
    (rate / 10).clamp(64 * 1024, 8 * 1024 * 1024)
}

pub async fn run(broker: Arc<Broker>, shutdown: CancellationToken) {
    let rate = broker.config.log_scrub_io_max_bytes_per_second;
    if rate == 0 {
        return;
    }
    let step = step_bytes(rate);
    // New unverified data only appears when a log is opened (a partition is added,
    // which wakes the scrub; logs are opened by the metadata publisher, possibly after
    // this task starts); look again this often in any case.
    let idle = Duration::from_millis(broker.config.log_retention_check_interval_ms.max(1_000));
    loop {
        for partition in broker.partitions.all() {
            loop {
                let Some(job) = partition.with_log(|log| log.plan_scrub(step)) else {
                    break;
                };
                let ran = tokio::task::spawn_blocking(move || {
                    let result = job.run();
                    (job, result)
                })
                .await;
                let Ok((job, result)) = ran else {
                    return;
                };
                let report = match partition.with_log_mut(|log| log.complete_scrub(job, result)) {
                    Ok(report) => report,
                    Err(e) => {
                        tracing::warn!(topic = %partition.topic, partition = partition.index, error = %e, "scrub could not read the log; trying again later");
                        break;
                    }
                };
                broker
                    .metrics
                    .log_scrub_verified_bytes
                    .inc_by(report.verified_bytes);
                if let Some(damage) = &report.damage {
                    broker
                        .metrics
                        .log_damage_found
                        .with_label_values(&[
                            partition.topic.as_str(),
                            &partition.index.to_string(),
                        ])
                        .inc();
                    tracing::error!(
                        topic = %partition.topic,
                        partition = partition.index,
                        path = %damage.path.display(),
                        position = damage.position,
                        reason = %damage.reason,
                        "scrub found damaged log data"
                    );
                    // Serving it would hand consumers a corrupt batch.
                    broker.take_offline(&partition, Cause::Damaged(damage.clone()));
                    break;
                }
                let pause = Duration::from_secs_f64(report.verified_bytes as f64 / rate as f64);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
                if !report.pending || (report.verified_bytes == 0 && report.damage.is_none()) {
                    break;
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(idle) => {}
            _ = broker.partitions.added() => {}
        }
    }
}
