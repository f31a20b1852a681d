//! The replicated state machine: the [`MetadataImage`], the last applied log id and
//! the Raft membership. Snapshots are the serialized image; the latest is kept in
//! `snapshot.json` (replaced atomically, retried until it lands like every metadata
//! write) and loaded on start.

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::log_store::{read_json, write_json_atomically};
use super::write_retry::Retry;
use super::{BatchOutcome, MetadataApplier, NodeId, TypeConfig};
use crate::metadata::image::MetadataImage;
use crate::storage::Disk;

const SNAPSHOT_FILE: &str = "snapshot.json";
/// A snapshot is the whole metadata image; far more than a large cluster's image is
/// corruption.
const SNAPSHOT_MAX_BYTES: u64 = 4 << 30;

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<NodeId, BasicNode>,
    image: MetadataImage,
}

struct State {
    image: Arc<MetadataImage>,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    /// The latest snapshot: its meta and the serialized image.
    snapshot: Option<(SnapshotMeta<NodeId, BasicNode>, Vec<u8>)>,
}

pub(crate) struct Shared {
    disk: Disk,
    retry: Retry,
    dir: PathBuf,
    state: Mutex<State>,
    applier: Arc<dyn MetadataApplier>,
    /// The latest image applied and its log index, for the publisher task to install.
    to_publish: watch::Sender<(Arc<MetadataImage>, u64)>,
    /// Index of the last entry applied and installed on this broker (0 before any):
    /// what "applied here" waits for.
    applied: watch::Sender<u64>,
    snapshots_built: AtomicU64,
}

impl Shared {
    pub fn image(&self) -> Arc<MetadataImage> {
        self.state.lock().image.clone()
    }

    pub fn applied(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// The last entry installed on this broker: what a change submitted here waits
    /// for.
    pub fn applied_index(&self) -> u64 {
        *self.applied.borrow()
    }

    /// The last entry in the image (installed here or not yet): what the controller
    /// tells brokers to catch up with.
    pub fn image_index(&self) -> u64 {
        self.state.lock().last_applied.map_or(0, |l| l.index)
    }

    /// Hand the image to the publisher: openraft's apply only updates the image and
    /// notifies, so a change that opens thousands of logs never holds up the Raft
    /// log. Images the publisher has not taken yet are superseded (each installation
    /// works from what changed since the installed image, whichever that was).
    fn publish(&self, image: Arc<MetadataImage>, index: u64) {
        self.to_publish.send_replace((image, index));
    }

    /// Install `image` on this broker and say so.
    fn install(&self, image: Arc<MetadataImage>, index: u64) {
        self.applier.apply(image);
        self.applied.send_if_modified(|applied| {
            let newer = index > *applied;
            if newer {
                *applied = index;
            }
            newer
        });
    }
}

/// The publisher: installs each image the state machine applied, in order, on the
/// blocking pool (opening logs is file I/O). Ends when the state machine is dropped.
async fn run_publisher(
    shared: std::sync::Weak<Shared>,
    mut images: watch::Receiver<(Arc<MetadataImage>, u64)>,
) {
    while images.changed().await.is_ok() {
        let (image, index) = images.borrow_and_update().clone();
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let installed = tokio::task::spawn_blocking(move || shared.install(image, index)).await;
        if let Err(e) = installed {
            tracing::error!(error = %e, index, "installing a metadata image failed");
        }
    }
}

/// The state machine handed to openraft; clones share one state.
#[derive(Clone)]
pub struct StateMachine {
    shared: Arc<Shared>,
}

fn sm_err(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(&io::Error::other(e.to_string())).into()
}

impl StateMachine {
    /// Load the latest snapshot from `dir` (if any) and hand its image to the applier.
    /// Later snapshot writes are retried with `retry`.
    pub fn open(
        disk: Disk,
        dir: &Path,
        applier: Arc<dyn MetadataApplier>,
        retry: Retry,
    ) -> io::Result<StateMachine> {
        disk.create_dir_all(dir)?;
        let file: Option<SnapshotFile> =
            read_json(&disk, &dir.join(SNAPSHOT_FILE), SNAPSHOT_MAX_BYTES)?;
        let state = match file {
            Some(SnapshotFile { meta, image }) => {
                let data = serde_json::to_vec(&image).map_err(io::Error::other)?;
                State {
                    image: Arc::new(image),
                    last_applied: meta.last_log_id,
                    membership: meta.last_membership.clone(),
                    snapshot: Some((meta, data)),
                }
            }
            None => State {
                image: Arc::new(MetadataImage::default()),
                last_applied: None,
                membership: StoredMembership::default(),
                snapshot: None,
            },
        };
        let index = state.last_applied.map_or(0, |l| l.index);
        let image = state.image.clone();
        let (to_publish, images) = watch::channel((image.clone(), index));
        let shared = Arc::new(Shared {
            disk,
            retry,
            dir: dir.to_path_buf(),
            state: Mutex::new(state),
            applier,
            to_publish,
            applied: watch::channel(0).0,
            snapshots_built: AtomicU64::new(0),
        });
        // The snapshot is installed before Raft starts, so the broker starts with its
        // partitions open; later images go through the publisher.
        if index > 0 {
            shared.install(image, index);
        }
        tokio::spawn(run_publisher(Arc::downgrade(&shared), images));
        Ok(StateMachine { shared })
    }

    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }
}

impl Shared {
    /// Write `file` as the latest snapshot, retrying until it lands.
    async fn write_snapshot(&self, file: &SnapshotFile) -> io::Result<()> {
        self.retry
            .run("metadata snapshot", || {
                write_json_atomically(&self.disk, &self.dir, SNAPSHOT_FILE, file)
            })
            .await
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let (image, last_applied, membership) = {
            let st = self.shared.state.lock();
            (st.image.clone(), st.last_applied, st.membership.clone())
        };
        let n = self.shared.snapshots_built.fetch_add(1, Ordering::Relaxed);
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id: format!("{}-{n}", last_applied.map_or(0, |l| l.index)),
        };
        let data = serde_json::to_vec(&*image).map_err(sm_err)?;
        let file = SnapshotFile {
            meta: meta.clone(),
            image: (*image).clone(),
        };
        self.shared
            .write_snapshot(&file)
            .await
            .map_err(|e| StorageError::from(StorageIOError::write_snapshot(None, &e)))?;
        self.shared.state.lock().snapshot = Some((meta.clone(), data.clone()));
        tracing::debug!(snapshot = %meta.snapshot_id, "metadata snapshot built");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>>
    {
        let st = self.shared.state.lock();
        Ok((st.last_applied, st.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<BatchOutcome>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut outcomes = Vec::new();
        let (image, index) = {
            let mut st = self.shared.state.lock();
            let mut image = (*st.image).clone();
            for entry in entries {
                st.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => outcomes.push(BatchOutcome::default()),
                    EntryPayload::Normal(batch) => {
                        // A batch applies whole or not at all. Every node holds the same
                        // image here, so a refused batch is refused everywhere alike.
                        let mut next = image.clone();
                        match batch.0.iter().try_for_each(|r| next.apply(r)) {
                            Ok(()) => {
                                image = next;
                                outcomes.push(BatchOutcome::default());
                            }
                            Err(e) => {
                                tracing::error!(index = entry.log_id.index, error = %e, "metadata log entry does not apply; skipped");
                                outcomes.push(BatchOutcome { error: Some(e) });
                            }
                        }
                    }
                    EntryPayload::Membership(m) => {
                        st.membership = StoredMembership::new(Some(entry.log_id), m);
                        outcomes.push(BatchOutcome::default());
                    }
                }
            }
            st.image = Arc::new(image);
            (st.image.clone(), st.last_applied.map_or(0, |l| l.index))
        };
        self.shared.publish(image, index);
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let image: MetadataImage = serde_json::from_slice(&data).map_err(|e| {
            StorageError::from(StorageIOError::read_snapshot(
                Some(meta.signature()),
                &io::Error::other(e.to_string()),
            ))
        })?;
        let file = SnapshotFile {
            meta: meta.clone(),
            image: image.clone(),
        };
        self.shared.write_snapshot(&file).await.map_err(|e| {
            StorageError::from(StorageIOError::write_snapshot(Some(meta.signature()), &e))
        })?;
        let image = Arc::new(image);
        {
            let mut st = self.shared.state.lock();
            st.image = image.clone();
            st.last_applied = meta.last_log_id;
            st.membership = meta.last_membership.clone();
            st.snapshot = Some((meta.clone(), data));
        }
        tracing::info!(snapshot = %meta.snapshot_id, "metadata snapshot installed");
        self.shared
            .publish(image, meta.last_log_id.map_or(0, |l| l.index));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let st = self.shared.state.lock();
        Ok(st.snapshot.as_ref().map(|(meta, data)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(data.clone())),
        }))
    }
}

#[cfg(test)]
#[path = "state_machine_tests.rs"]
mod tests;
