//! The publisher: openraft's apply updates the image and returns; installing it on the
//! broker (slow: logs are opened) happens on the publisher task, and "applied here"
//! waits for that.

use std::collections::BTreeMap;
use std::time::Duration;

use openraft::{CommittedLeaderId, EntryPayload};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::metadata::image::MetadataRecord;
use crate::quorum::write_retry::WriteHealth;
use crate::quorum::MetadataBatch;

/// An applier that blocks each installation until the test lets it through, and
/// records the topic counts of the images it installed.
#[derive(Default)]
struct GatedApplier {
    open: std::sync::Mutex<bool>,
    opened: std::sync::Condvar,
    installed: std::sync::Mutex<Vec<usize>>,
}

impl GatedApplier {
    fn let_through(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

impl MetadataApplier for GatedApplier {
    fn apply(&self, image: Arc<MetadataImage>) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
        self.installed.lock().unwrap().push(image.topic_count());
    }
}

fn entry(index: u64, topic: &str) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(MetadataBatch(vec![MetadataRecord::TopicCreated {
            name: topic.into(),
            id: uuid::Uuid::new_v4(),
            partitions: vec![],
            configs: BTreeMap::new(),
        }])),
    }
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        // Poll interval of a condition wait.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_returns_while_the_installation_waits_and_applied_here_follows_it() {
    let dir = tempfile::tempdir().unwrap();
    let applier = Arc::new(GatedApplier::default());
    let retry = Retry::new(Arc::new(WriteHealth::default()), CancellationToken::new());
    let mut sm = StateMachine::open(Disk::real(), dir.path(), applier.clone(), retry).unwrap();
    let shared = sm.shared();

    // The installation of entry 1 blocks; apply does not wait for it.
    let applied = tokio::time::timeout(Duration::from_secs(5), sm.apply(vec![entry(1, "a")]))
        .await
        .expect("apply waited for the installation");
    assert!(applied.unwrap()[0].error.is_none());
    assert_eq!(shared.image().topic_count(), 1);
    tokio::time::timeout(
        Duration::from_secs(5),
        sm.apply(vec![entry(2, "b"), entry(3, "c")]),
    )
    .await
    .expect("apply waited for the installation")
    .unwrap();
    assert_eq!(shared.image().topic_count(), 3);
    assert_eq!(shared.applied_index(), 0, "nothing is installed yet");

    applier.let_through();
    until("entry 3 installed", || shared.applied_index() == 3).await;
    // Installed in order, the latest last (images superseded meanwhile are skipped).
    let installed = applier.installed.lock().unwrap().clone();
    assert_eq!(installed.last(), Some(&3), "installed {installed:?}");
    assert!(
        installed.windows(2).all(|w| w[0] < w[1]),
        "installed {installed:?}"
    );
}
