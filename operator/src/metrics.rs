//! Prometheus metrics of the operator: reconciles, errors and durations per kind, and
//! consumer group lag for autoscalers.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

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
                "fjord_consumer_group_lag",
                "Log end offset minus committed offset, per partition",
            ),
            &["namespace", "group", "topic", "partition"],
        )
        .unwrap();
        for c in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(errors.clone()),
            Box::new(duration.clone()),
            Box::new(group_lag.clone()),
        ] {
            registry.register(c).unwrap();
        }
        Metrics {
            registry,
            reconciles,
            errors,
            duration,
            group_lag,
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
}
