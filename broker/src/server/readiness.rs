//! `/ready/in-sync`: ready as `/ready` is, and, since this process started, back in the
//! ISR of every partition it replicates whose leader could take it back. A broker pod
//! probed on it stays unready while it catches up after a restart, so a
//! PodDisruptionBudget of one broker does not let a drain evict the next broker while
//! partitions are down to one in-sync replica. Once open the gate stays open: a
//! follower falling behind later is the ISR's business, not the Service's.
//!
//! Pure: the broker hands in its view (the installed metadata image) and the time.

use crate::metadata::image::MetadataImage;

/// Partitions `local` replicates but is not in the ISR of, though their leader is
/// live to take it back. Replicas still being added by a reassignment, and copies the
/// broker cannot serve (offline replicas), are not waited for.
pub fn out_of_sync(image: &MetadataImage, local: i32) -> usize {
    image
        .topics()
        .flat_map(|t| &t.partitions)
        .filter(|p| {
            p.leader >= 0
                && p.leader != local
                && p.replicas.contains(&local)
                && !p.isr.contains(&local)
                && !p.adding_replicas.contains(&local)
                && !p.offline_replicas.contains(&local)
        })
        .count()
}

/// What the gate says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InSync {
    /// In sync once since the start (or the bound passed): ready for good.
    Open,
    /// Not yet: `None` while the metadata does not show this process registered and
    /// unfenced, else the partitions still out of sync.
    Waiting(Option<usize>),
}

/// The gate: open once nothing is out of sync, or once `bound_ms` passed since the
/// first check (a partition whose leader cannot take the broker back must not hold
/// its readiness for ever).
#[derive(Debug)]
pub struct InSyncGate {
    bound_ms: i64,
    first_check_ms: Option<i64>,
    open: bool,
}

impl InSyncGate {
    pub fn new(bound_ms: u64) -> Self {
        InSyncGate {
            bound_ms: i64::try_from(bound_ms).unwrap_or(i64::MAX),
            first_check_ms: None,
            open: false,
        }
    }

    /// `out_of_sync`: `None` while this process is not registered and unfenced in the
    /// metadata (an image replayed at start still shows the broker where it was before
    /// it stopped), else [`out_of_sync`]'s count.
    pub fn check(&mut self, now_ms: i64, out_of_sync: Option<usize>) -> InSync {
        if self.open {
            return InSync::Open;
        }
        let first = *self.first_check_ms.get_or_insert(now_ms);
        if out_of_sync == Some(0) {
            self.open = true;
            return InSync::Open;
        }
        if now_ms.saturating_sub(first) >= self.bound_ms {
            self.open = true;
            tracing::warn!(
                bound_ms = self.bound_ms,
                ?out_of_sync,
                "ready without being back in every ISR: still out of sync at the bound"
            );
            return InSync::Open;
        }
        InSync::Waiting(out_of_sync)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_opens_once_in_sync_and_stays_open() {
        let mut gate = InSyncGate::new(60_000);
        assert_eq!(gate.check(0, None), InSync::Waiting(None));
        assert_eq!(gate.check(1_000, Some(3)), InSync::Waiting(Some(3)));
        assert_eq!(gate.check(2_000, Some(0)), InSync::Open);
        // Falling behind later does not make the broker unready again.
        assert_eq!(gate.check(3_000, Some(5)), InSync::Open);
        assert_eq!(gate.check(4_000, None), InSync::Open);
    }

    #[test]
    fn the_gate_opens_at_its_bound_counted_from_the_first_check() {
        let mut gate = InSyncGate::new(60_000);
        assert_eq!(gate.check(10_000, Some(2)), InSync::Waiting(Some(2)));
        assert_eq!(gate.check(69_999, Some(2)), InSync::Waiting(Some(2)));
        assert_eq!(gate.check(70_000, Some(2)), InSync::Open);
        assert_eq!(gate.check(70_001, Some(2)), InSync::Open);
    }

    #[test]
    fn only_partitions_that_could_take_the_broker_back_are_waited_for() {
        use crate::metadata::image::{MetadataRecord, PartitionState};
        let p = |partition, leader, replicas: &[i32], isr: &[i32]| PartitionState {
            partition,
            leader,
            leader_epoch: 1,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            partition_epoch: 1,
            adding_replicas: vec![],
            removing_replicas: vec![],
            offline_replicas: vec![],
        };
        let mut adding = p(5, 2, &[1, 2, 3], &[2, 3]);
        adding.adding_replicas = vec![1];
        let mut offline = p(6, 2, &[1, 2, 3], &[2, 3]);
        offline.offline_replicas = vec![1];
        let partitions = vec![
            p(0, 2, &[1, 2, 3], &[2, 3]),    // out of sync: counted
            p(1, 2, &[1, 2, 3], &[1, 2, 3]), // in sync
            p(2, 1, &[1, 2, 3], &[1, 2]),    // led by broker 1
            p(3, -1, &[1, 2, 3], &[3]),      // no leader to take it back
            p(4, 2, &[2, 3], &[2, 3]),       // not a replica of broker 1
            adding,
            offline,
        ];
        let mut image = MetadataImage::default();
        image
            .apply(&MetadataRecord::TopicCreated {
                name: "t".into(),
                id: uuid::Uuid::new_v4(),
                partitions,
                configs: Default::default(),
            })
            .unwrap();
        // Broker 1: partition 0 only. Broker 3: partition 2 only. Broker 2: none.
        assert_eq!(out_of_sync(&image, 1), 1);
        assert_eq!(out_of_sync(&image, 3), 1);
        assert_eq!(out_of_sync(&image, 2), 0);
    }
}
