//! Prometheus metrics (prometheus-client): one registry per process, labels with bounded
//! values only (never names of objects, never secrets). No I/O; `http` serves the text.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Reconcile outcome labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `ok` or an error's `metric_label()`.
    pub result: String,
}

/// AWS call labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The API, e.g. `RunInstances`.
    pub api: String,
    /// `ok`, `throttled`, `unavailable` or `rejected`.
    pub outcome: String,
}

/// Instance state labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// EC2 state name.
    pub state: String,
}

/// Dump outcome labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// `Succeeded` or `Failed`.
    pub phase: String,
}

/// Every metric the controller exports.
pub struct Metrics {
    registry: Registry,
    /// Reconciles by result.
    pub reconciles: Family<ResultLabels, Counter>,
    /// Reconcile durations (the work, after the turn came).
    pub reconcile_duration: Histogram,
    /// Time a due reconcile waited for its turn under `--max-concurrent-reconciles`.
    pub reconcile_wait: Histogram,
    /// AWS calls by API and outcome.
    pub aws_calls: Family<CallLabels, Counter>,
    /// Live managed instances by state, as the sweeper last saw them.
    pub instances: Family<StateLabels, Gauge>,
    /// Instances launched.
    pub launches: Counter,
    /// Dump duration from first launch to the end, by final phase.
    pub dump_duration: Family<PhaseLabels, Histogram>,
    /// Seconds from `_success` (its S3 time) to the TerminateInstances request.
    pub success_to_terminate: Histogram,
    /// Orphaned instances the sweeper terminated.
    pub orphans_terminated: Counter,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("datadump");
        let reconciles = Family::<ResultLabels, Counter>::default();
        let aws_calls = Family::<CallLabels, Counter>::default();
        let reconcile_duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let reconcile_wait = Histogram::new(exponential_buckets(0.001, 2.0, 18));
        let instances = Family::<StateLabels, Gauge>::default();
        let launches = Counter::default();
        let dump_duration = Family::<PhaseLabels, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(60.0, 2.0, 16)));
        let success_to_terminate = Histogram::new(exponential_buckets(0.5, 2.0, 14));
        let orphans_terminated = Counter::default();
        registry.register("reconciles", "Reconciles by result", reconciles.clone());
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile",
            reconcile_duration.clone(),
        );
        registry.register(
            "reconcile_wait_seconds",
            "Time a due reconcile waited for its turn (--max-concurrent-reconciles)",
            reconcile_wait.clone(),
        );
        registry.register("aws_calls", "AWS API calls by API and outcome", aws_calls.clone());
        registry.register("instances", "Live managed EC2 instances by state", instances.clone());
        registry.register("instances_launched", "EC2 instances launched", launches.clone());
        registry.register(
            "dump_duration_seconds",
            "Dump duration from first launch to the end",
            dump_duration.clone(),
        );
        registry.register(
            "success_to_terminate_seconds",
            "Seconds from the _success semaphore to the terminate request",
            success_to_terminate.clone(),
        );
        registry.register(
            "orphans_terminated",
            "Orphaned instances terminated by the sweeper",
            orphans_terminated.clone(),
        );
        Metrics {
            registry,
            reconciles,
            reconcile_duration,
            reconcile_wait,
            aws_calls,
            instances,
            launches,
            dump_duration,
            success_to_terminate,
            orphans_terminated,
        }
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("encoding to a String cannot fail");
        out
    }

    /// Counts one AWS call.
    pub fn aws_call(&self, api: &str, outcome: &str) {
        self.aws_calls
            .get_or_create(&CallLabels {
                api: api.into(),
                outcome: outcome.into(),
            })
            .inc();
    }
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// Counts every AWS call of this process in [`METRICS`] (installed once at start; the S3, EC2
/// and SSM adapters report through the worker crate's `aws::observe`).
pub fn count_aws_calls() {
    datadump_worker::aws::observe_calls(|api, outcome| METRICS.aws_call(api, outcome));
}
