//! Rack-aware replica placement for new topics and partitions: a pure function of the
//! live brokers and their racks, shared by the controller (CreateTopics through the
//! metadata log) and the admin path that validates a request before it is submitted.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;

use super::BrokerId;

/// Rack-aware placement of `partitions` partitions with `replication_factor` replicas
/// on `brokers` (id, rack). Each partition's replicas span as many racks as possible;
/// leaders spread round-robin from `start`, and partitions with the same leader get
/// different followers. Racks count only when every broker has one (as in Kafka).
pub fn place_replicas(
    brokers: &[(BrokerId, Option<String>)],
    partitions: i32,
    replication_factor: usize,
    start: usize,
) -> Result<Vec<Vec<BrokerId>>, ResponseError> {
    let n = brokers.len();
    if replication_factor == 0 || replication_factor > n {
        return Err(ResponseError::InvalidReplicationFactor);
    }
    let rack_aware = brokers.iter().all(|(_, r)| r.is_some());
    let rack_of = |b: BrokerId| -> Option<&str> {
        brokers
            .iter()
            .find(|(id, _)| *id == b)
            .and_then(|(_, r)| r.as_deref())
            .filter(|_| rack_aware)
    };
    // Alternate racks: r0's first, r1's first, ..., r0's second, ...
    let mut by_rack: BTreeMap<Option<&str>, Vec<BrokerId>> = BTreeMap::new();
    for &(b, _) in brokers {
        by_rack.entry(rack_of(b)).or_default().push(b);
    }
    for list in by_rack.values_mut() {
        list.sort_unstable();
    }
    let racks = by_rack.len();
    let mut ordered = Vec::with_capacity(n);
    for i in 0..n {
        for list in by_rack.values() {
            if let Some(&b) = list.get(i) {
                ordered.push(b);
            }
        }
    }
    let mut out = Vec::with_capacity(partitions.max(0) as usize);
    for p in 0..partitions.max(0) as usize {
        let first = (start + p) % n;
        // Followers rotate by one more for each round of leaders.
        let shift = if n > 1 { (p / n) % (n - 1) } else { 0 };
        let leader = ordered[first];
        let followers = (1..n).map(|k| ordered[(first + 1 + (k - 1 + shift) % (n - 1)) % n]);
        let candidates: Vec<BrokerId> = std::iter::once(leader).chain(followers).collect();
        let mut replicas: Vec<BrokerId> = Vec::with_capacity(replication_factor);
        let mut used_racks: BTreeSet<Option<&str>> = BTreeSet::new();
        // First pass: one per rack; second pass: fill up in candidate order.
        for &b in &candidates {
            if replicas.len() < replication_factor
                && used_racks.len() < racks
                && used_racks.insert(rack_of(b))
            {
                replicas.push(b);
            }
        }
        for &b in &candidates {
            if replicas.len() < replication_factor && !replicas.contains(&b) {
                replicas.push(b);
            }
        }
        out.push(replicas);
    }
    Ok(out)
}
