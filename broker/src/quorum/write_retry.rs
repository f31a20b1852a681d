//! Writes of the metadata quorum's files, retried until they land.
//!
//! openraft 0.9 treats any storage error as fatal: the Raft node stops for good and,
//! with it, this broker's part in the metadata quorum until the process restarts. A full
//! or failing disk is usually temporary (an operator frees space, a volume grows), so
//! every write of the metadata log, the vote, the purge point and the snapshots is
//! retried here with backoff until it lands or the broker shuts down; openraft never
//! sees the failure, it only waits.
//!
//! Why here, rather than restart the Raft node from disk after a fatal error: the
//! `Raft` handle is shared by the gRPC services, the controller loop and the broker,
//! so replacing it means rebuilding all of them, and openraft would then replay from a
//! disk that is still full. Retrying in the store keeps one Raft node whose in-memory
//! state never runs ahead of the disk: each attempt either lands whole or is rolled
//! back to the last whole entry before the next. While a voter's log write blocks, its
//! Raft node sends no heartbeats, so in a cluster of several voters a healthy one takes
//! over as leader and controller.
//!
//! While a write is failing the broker is not ready (`/ready`), [`WriteHealth`] says
//! why, and the active controller refuses new metadata changes with
//! KAFKA_STORAGE_ERROR instead of queueing them behind the blocked write.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;

/// First wait after a failed write; doubled per failure up to [`RETRY_MAX`].
pub const RETRY_MIN: Duration = Duration::from_millis(25);
/// Longest wait between two attempts: how long the broker may take to notice that
/// space came back.
pub const RETRY_MAX: Duration = Duration::from_secs(1);

/// Attempts between two warnings about the same failing write (the first failure is
/// always logged).
const WARN_EVERY_ATTEMPTS: u32 = 60;

/// The `error` label of a failed write: the errno name operators search for.
pub fn error_label(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENOSPC) => "ENOSPC",
        Some(libc::EDQUOT) => "EDQUOT",
        Some(libc::EIO) => "EIO",
        Some(libc::EROFS) => "EROFS",
        Some(libc::EMFILE) | Some(libc::ENFILE) => "EMFILE",
        Some(libc::EACCES) | Some(libc::EPERM) => "EACCES",
        _ => "other",
    }
}

/// Whether the metadata quorum's writes are landing, shared with the broker's
/// readiness check and metrics.
#[derive(Debug)]
pub struct WriteHealth {
    /// Writes failing right now (a log append and a snapshot may retry at once).
    failing: watch::Sender<u64>,
    /// The last failure: what was written and the error.
    last_error: Mutex<Option<String>>,
    /// Failed attempts since start, by [`error_label`].
    failures: Mutex<BTreeMap<&'static str, u64>>,
}

impl Default for WriteHealth {
    fn default() -> Self {
        WriteHealth {
            failing: watch::channel(0).0,
            last_error: Mutex::default(),
            failures: Mutex::default(),
        }
    }
}

impl WriteHealth {
    /// `Some(what failed and why)` while a write is being retried.
    pub fn failing(&self) -> Option<String> {
        if *self.failing.borrow() == 0 {
            return None;
        }
        Some(
            self.last_error
                .lock()
                .clone()
                .unwrap_or_else(|| "metadata write failing".to_string()),
        )
    }

    /// Resolves once a write is failing (at once if one is).
    pub async fn wait_failing(&self) {
        let mut failing = self.failing.subscribe();
        // The sender lives as long as `self`.
        let _ = failing.wait_for(|&n| n > 0).await;
    }

    /// Changes whenever a write starts or stops failing.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.failing.subscribe()
    }

    /// Failed attempts since start, by error label.
    pub fn failures(&self) -> BTreeMap<&'static str, u64> {
        self.failures.lock().clone()
    }

    fn record_failure(&self, what: &str, e: &io::Error) {
        *self.failures.lock().entry(error_label(e)).or_default() += 1;
        *self.last_error.lock() = Some(format!("{what}: {e}"));
    }
}

/// Runs writes until they land; see the module doc.
#[derive(Clone)]
pub struct Retry {
    health: Arc<WriteHealth>,
    cancel: CancellationToken,
    min: Duration,
    max: Duration,
}

impl Retry {
    pub fn new(health: Arc<WriteHealth>, cancel: CancellationToken) -> Retry {
        Retry::with_delays(health, cancel, RETRY_MIN, RETRY_MAX)
    }

    pub fn with_delays(
        health: Arc<WriteHealth>,
        cancel: CancellationToken,
        min: Duration,
        max: Duration,
    ) -> Retry {
        Retry {
            health,
            cancel,
            min,
            max,
        }
    }

    pub fn health(&self) -> &Arc<WriteHealth> {
        &self.health
    }

    /// Run `attempt` until it succeeds, waiting with backoff between failures. Each
    /// attempt must leave the files as a whole earlier state (or make the next attempt
    /// restore one first). Fails only when the broker shuts down meanwhile.
    pub async fn run<T>(
        &self,
        what: &str,
        mut attempt: impl FnMut() -> io::Result<T>,
    ) -> io::Result<T> {
        let mut failures = 0u32;
        let mut backoff = Backoff::new(self.min, self.max);
        let mut counted = false;
        let result = loop {
            match attempt() {
                Ok(value) => {
                    if failures > 0 {
                        tracing::info!(failures, "{what}: written after failed attempts");
                    }
                    break Ok(value);
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    self.health.record_failure(what, &e);
                    if !counted {
                        counted = true;
                        self.health.failing.send_modify(|n| *n += 1);
                    }
                    if failures % WARN_EVERY_ATTEMPTS == 1 {
                        tracing::warn!(
                            failures,
                            error = %e,
                            "{what} failed; retrying until it lands (not ready meanwhile)"
                        );
                    }
                    let delay = backoff.next_delay();
                    tokio::select! {
                        () = self.cancel.cancelled() => {
                            break Err(io::Error::new(
                                e.kind(),
                                format!("{what}: {e} (given up at shutdown after {failures} attempts)"),
                            ));
                        }
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        };
        if counted {
            self.health.failing.send_modify(|n| *n -= 1);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_labelled_by_errno() {
        let os = io::Error::from_raw_os_error;
        assert_eq!(error_label(&os(libc::ENOSPC)), "ENOSPC");
        assert_eq!(error_label(&os(libc::EIO)), "EIO");
        assert_eq!(error_label(&io::Error::other("x")), "other");
    }

    #[tokio::test]
    async fn a_write_is_retried_until_it_lands_and_health_says_so_meanwhile() {
        let health = Arc::new(WriteHealth::default());
        let retry = Retry::with_delays(
            health.clone(),
            CancellationToken::new(),
            Duration::from_millis(1),
            Duration::from_millis(4),
        );
        let mut left = 3;
        let seen = Mutex::new(Vec::new());
        let landed = retry
            .run("metadata log append", || {
                seen.lock().push(health.failing());
                if left > 0 {
                    left -= 1;
                    Err(io::Error::from_raw_os_error(libc::ENOSPC))
                } else {
                    Ok(7)
                }
            })
            .await
            .unwrap();
        assert_eq!(landed, 7);
        let seen = seen.into_inner();
        assert_eq!(seen.len(), 4);
        assert_eq!(seen[0], None);
        let failing = seen[3].as_deref().unwrap();
        assert!(
            failing.starts_with("metadata log append: No space left on device"),
            "{failing}"
        );
        assert_eq!(health.failing(), None, "healthy again once it landed");
        assert_eq!(health.failures().get("ENOSPC"), Some(&3));
    }

    #[tokio::test]
    async fn a_shutdown_ends_the_retries() {
        let health = Arc::new(WriteHealth::default());
        let cancel = CancellationToken::new();
        let retry = Retry::with_delays(
            health.clone(),
            cancel.clone(),
            Duration::from_millis(1),
            Duration::from_millis(1),
        );
        let mut attempts = 0;
        let err = retry
            .run("vote", || {
                attempts += 1;
                if attempts == 5 {
                    cancel.cancel();
                }
                Err::<(), _>(io::Error::from_raw_os_error(libc::EIO))
            })
            .await
            .unwrap_err();
        assert_eq!(attempts, 5);
        assert!(err.to_string().contains("given up at shutdown"), "{err}");
        assert_eq!(health.failing(), None);
    }
}
