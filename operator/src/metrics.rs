//! Prometheus metrics of the operator: reconciles, errors and durations per kind, and
//! consumer group lag for autoscalers.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// The lag series one ConsumerGroup resource exports: its group id and partitions.
type LagSeries = (String, BTreeSet<(String, i32)>);

/// Metric families, registered in one registry.
#[derive(Clone)]
pub struct Metrics {
    /// The registry `/metrics` encodes.
    pub registry: Registry,
    /// Reconciles started, by kind.
    pub reconciles: IntCounterVec,
    /// Reconciles that failed, by kind and error.
    pub errors: IntCounterVec,
    /// Reconcile durations in seconds, by kind.
    pub duration: HistogramVec,
    /// Consumer group lag per partition.
    pub group_lag: IntGaugeVec,
    /// Consumer group lag summed over partitions.
    pub group_total_lag: IntGaugeVec,
    /// Series exported per ConsumerGroup resource (namespace, name), so that partitions
    /// that disappear and deleted resources stop being reported.
    lag_series: Arc<Mutex<HashMap<(String, String), LagSeries>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new("fjord_operator_reconciles_total", "Reconciles started"),
            &["kind"],
        )
        .unwrap();
        let errors = IntCounterVec::new(
            Opts::new(
                "fjord_operator_reconcile_errors_total",
                "Reconciles that failed",
            ),
            &["kind", "error"],
        )
        .unwrap();
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "fjord_operator_reconcile_duration_seconds",
                "Reconcile duration",
            )
            .buckets(vec![0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["kind"],
        )
        .unwrap();
        let group_lag = IntGaugeVec::new(
            Opts::new(
                "fjord_operator_consumer_group_lag",
                "Log end offset minus committed offset, per partition",
            ),
            &["namespace", "group", "topic", "partition"],
        )
        .unwrap();
        let group_total_lag = IntGaugeVec::new(
            Opts::new(
                "fjord_operator_consumer_group_total_lag",
                "Log end offset minus committed offset, summed over the group's partitions",
            ),
            &["namespace", "group"],
        )
        .unwrap();
        for c in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(errors.clone()),
            Box::new(duration.clone()),
            Box::new(group_lag.clone()),
            Box::new(group_total_lag.clone()),
        ] {
            registry.register(c).unwrap();
        }
        Metrics {
            registry,
            reconciles,
            errors,
            duration,
            group_lag,
            group_total_lag,
            lag_series: Arc::default(),
        }
    }
}

impl Metrics {
    /// The registry in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut buf = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(&self.registry.gather(), &mut buf)
            .unwrap();
        buf
    }

    /// Exports the lag of the group behind ConsumerGroup `namespace`/`resource`:
    /// `partitions` as (topic, partition, lag), and their sum. Series this resource
    /// exported before and no longer has (a topic deleted, a group id changed) go.
    pub fn set_group_lag(
        &self,
        namespace: &str,
        resource: &str,
        group: &str,
        partitions: &[(String, i32, i64)],
    ) {
        let mut series = self.lag_series.lock().unwrap();
        let key = (namespace.to_string(), resource.to_string());
        let now: BTreeSet<(String, i32)> =
            partitions.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
        if let Some((old_group, old)) = series.get(&key) {
            for (topic, partition) in old {
                if old_group != group || !now.contains(&(topic.clone(), *partition)) {
                    let p = partition.to_string();
                    let _ = self
                        .group_lag
                        .remove_label_values(&[namespace, old_group, topic, &p]);
                }
            }
            if old_group != group {
                let _ = self
                    .group_total_lag
                    .remove_label_values(&[namespace, old_group]);
            }
        }
        for (topic, partition, lag) in partitions {
            self.group_lag
                .with_label_values(&[namespace, group, topic, &partition.to_string()])
                .set(*lag);
        }
        self.group_total_lag
            .with_label_values(&[namespace, group])
            .set(partitions.iter().map(|(_, _, lag)| lag).sum());
        series.insert(key, (group.to_string(), now));
    }

    /// Removes every lag series of ConsumerGroup `namespace`/`resource` (deleted, or its
    /// group no longer readable).
    pub fn remove_group_lag(&self, namespace: &str, resource: &str) {
        let key = (namespace.to_string(), resource.to_string());
        let Some((group, partitions)) = self.lag_series.lock().unwrap().remove(&key) else {
            return;
        };
        for (topic, partition) in partitions {
            let p = partition.to_string();
            let _ = self
                .group_lag
                .remove_label_values(&[namespace, &group, &topic, &p]);
        }
        let _ = self
            .group_total_lag
            .remove_label_values(&[namespace, &group]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lag_lines(m: &Metrics) -> Vec<String> {
        m.encode()
            .lines()
            .filter(|l| l.starts_with("fjord_operator_consumer_group_"))
            .map(String::from)
            .collect()
    }

    #[test]
    fn lag_series_follow_the_partitions_and_go_with_the_resource() {
        let m = Metrics::default();
        let orders = |p: i32, lag: i64| ("orders".to_string(), p, lag);
        m.set_group_lag("ns", "payments", "pay", &[orders(0, 5), orders(1, 7)]);
        m.set_group_lag("ns", "other", "audit", &[orders(0, 1)]);
        let lines = lag_lines(&m);
        assert!(lines.contains(&r#"fjord_operator_consumer_group_lag{group="pay",namespace="ns",partition="1",topic="orders"} 7"#.to_string()), "{lines:#?}");
        assert!(
            lines.contains(
                &r#"fjord_operator_consumer_group_total_lag{group="pay",namespace="ns"} 12"#
                    .to_string()
            ),
            "{lines:#?}"
        );

        // Partition 1 no longer has an offset: its series goes, the total follows.
        m.set_group_lag("ns", "payments", "pay", &[orders(0, 2)]);
        let lines = lag_lines(&m);
        assert!(
            !lines
                .iter()
                .any(|l| l.contains(r#"group="pay""#) && l.contains(r#"partition="1""#)),
            "{lines:#?}"
        );
        assert!(
            lines.contains(
                &r#"fjord_operator_consumer_group_total_lag{group="pay",namespace="ns"} 2"#
                    .to_string()
            ),
            "{lines:#?}"
        );

        // The resource is deleted: none of its series remain, the other group's do.
        m.remove_group_lag("ns", "payments");
        let lines = lag_lines(&m);
        assert!(
            !lines.iter().any(|l| l.contains(r#"group="pay""#)),
            "{lines:#?}"
        );
        assert!(
            lines.iter().any(|l| l.contains(r#"group="audit""#)),
            "{lines:#?}"
        );
    }
}
