//! The Kubernetes controller: kube-runtime wiring around observe → plan → act → status.
//! `reconcile` does I/O only through `observe`, `act`, the status patch and Events; every
//! decision is `plan::plan`'s. `error_policy` alone decides backoff. The same process (under the
//! same leader election) runs the DataDumpSchedule controller, [`schedule`].

pub mod events;
mod home;
mod lenient;
#[cfg(test)]
mod loop_tests;
pub mod schedule;
mod status;
pub mod sweeper;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{info, warn};

use crate::act::{self, ActError, Backends};
use crate::api::DataDump;
use crate::aws::{AwsArgs, Ec2Compute, S3Store, SsmStage};
use crate::backend::{BackendError, Compute, ObjectStore, SecretStage};
use crate::failpoint;
use crate::instance_cache::InstanceCache;
use crate::metrics::{METRICS, PhaseLabels, ResultLabels};
use crate::plan::{self, PlanContext};
use events::Recorder;

pub use home::KubeHome;

/// The field manager for everything the controller writes.
pub const FIELD_MANAGER: &str = "datadump-controller";

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Observing or acting on AWS failed.
    #[error(transparent)]
    Act(#[from] ActError),
    /// The Kubernetes API refused a write.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The test clock file could not be read.
    #[error("clock: {0}")]
    Clock(String),
}

impl From<BackendError> for Error {
    fn from(e: BackendError) -> Self {
        Error::Act(ActError::Backend(e))
    }
}

impl Error {
    /// A short, bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Act(e) => e.metric_label(),
            Error::Kube(e) if act::kube_conflict(e) => "conflict",
            Error::Kube(_) => "kube",
            Error::Clock(_) => "clock",
        }
    }

    /// Whether the object changed since it was read (a finalizer or status write got 409).
    pub fn is_conflict(&self) -> bool {
        match self {
            Error::Act(e) => e.is_conflict(),
            Error::Kube(e) => act::kube_conflict(e),
            Error::Clock(_) => false,
        }
    }

    /// The delay before try `n + 1` after `n` failures in a row (before jitter): exponential
    /// from a base that depends on the error, at most five minutes. A conflict is retried at
    /// once the first time (the next read is fresh), then from 200 ms.
    fn backoff(&self, n: u32) -> Duration {
        let base = match self {
            _ if self.is_conflict() && n <= 1 => return Duration::ZERO,
            _ if self.is_conflict() => Duration::from_millis(100),
            Error::Kube(_) | Error::Clock(_) => Duration::from_secs(2),
            Error::Act(e) if e.is_transient() => Duration::from_secs(2),
            Error::Act(_) => Duration::from_secs(15),
        };
        let millis = (base.as_millis() as u64)
            .saturating_mul(1u64 << (n.max(1) - 1).min(10))
            .min(300_000);
        Duration::from_millis(millis)
    }
}

/// Everything a reconcile needs, shared.
pub struct Context<C, S, K> {
    /// The Kubernetes client.
    pub client: Client,
    /// AWS (or other) backends.
    pub backends: Backends<C, S, K>,
    /// Planner settings.
    pub plan: PlanContext,
    /// Event recorder.
    pub recorder: Recorder,
    /// Consecutive failures per object uid, for exponential backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// The last `_progress.json` per media type, so that an unchanged one is not read again.
    progress: crate::observe::ProgressCache,
    /// Turns for reconciles (`--max-concurrent-reconciles`; `None`: no bound). A Tokio
    /// semaphore is fair: due reconciles get their turn in the order they asked, so no dump
    /// waits while others are reconciled again.
    turns: Option<tokio::sync::Semaphore>,
}

impl<C, S, K> Context<C, S, K> {
    /// A context.
    pub fn new(client: Client, backends: Backends<C, S, K>, plan: PlanContext) -> Self {
        Context {
            recorder: Recorder::new(client.clone(), FIELD_MANAGER, std::env::var("POD_NAME").ok()),
            client,
            backends,
            plan,
            failures: Mutex::default(),
            progress: Default::default(),
            turns: None,
        }
    }

    /// At most `n` reconciles observe, act and write at once (0: no bound); the others wait
    /// their turn in the order they became due.
    pub fn with_max_concurrent(mut self, n: u16) -> Self {
        self.turns = (n > 0).then(|| tokio::sync::Semaphore::new(n.into()));
        self
    }
}

/// `datadump controller` settings.
#[derive(Clone, Debug, clap::Args)]
pub struct ControllerArgs {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "DATADUMP_NAMESPACE")]
    pub namespace: Option<String>,
    /// Seconds between looks at running workers.
    #[arg(long, env = "DATADUMP_POLL_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
    /// Reconciles that observe, act and write at once (0: no bound). The bound caps memory and
    /// the load on AWS and the API server when many DataDumps are due together (each reconcile
    /// holds its calls' buffers and connections); due reconciles beyond it wait their turn in
    /// the order they became due (`datadump_reconcile_wait_seconds`), so none starves.
    #[arg(long, env = "DATADUMP_MAX_CONCURRENT_RECONCILES", default_value_t = 16)]
    pub max_concurrent_reconciles: u16,
    /// How often the orphan sweeper looks for instances whose owner is gone.
    #[arg(long, env = "DATADUMP_SWEEP_INTERVAL", default_value = "5m", value_parser = humantime::parse_duration)]
    pub sweep_interval: Duration,
    /// Value of the `datadump.dev/managed-by` tag: tells this installation's instances apart.
    #[arg(long, env = "DATADUMP_MANAGED_BY", default_value = "datadump-operator")]
    pub managed_by: String,
    /// SSM path under which connection strings are staged for workers.
    #[arg(long, env = "DATADUMP_SSM_PREFIX", default_value = "/datadump")]
    pub ssm_prefix: String,
    /// How long a just-launched instance may be missing from DescribeInstances.
    #[arg(long, env = "DATADUMP_LAUNCH_GRACE", default_value = "2m", value_parser = humantime::parse_duration)]
    pub launch_grace: Duration,
    /// Address for `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "DATADUMP_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: std::net::SocketAddr,
    /// Act only while holding a Lease, so that several replicas never both act on AWS.
    #[arg(long, env = "DATADUMP_LEADER_ELECTION")]
    pub leader_election: bool,
    /// The Lease's name.
    #[arg(long, env = "DATADUMP_LEASE_NAME", default_value = "datadump-operator")]
    pub lease_name: String,
    /// The Lease's namespace (the controller's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// This replica's identity in the Lease.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Seconds a Lease stays valid without renewal.
    #[arg(long, env = "DATADUMP_LEASE_DURATION", default_value_t = 15)]
    pub lease_duration: u64,
    /// AWS access.
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Site defaults for unset DataDump fields.
    #[command(flatten)]
    pub site: crate::api::SiteDefaults,
    /// Folder with the worker binaries EC2 instances run (`datadump-worker-x86_64`,
    /// `datadump-worker-aarch64`); the controller copies them into each destination bucket once.
    #[arg(long, env = "DATADUMP_WORKER_BINARIES_DIR", default_value = DEFAULT_WORKER_BINARIES_DIR)]
    pub worker_binaries_dir: std::path::PathBuf,
    /// Tests only, hidden from `--help`: read the DataDumpSchedule controller's "now" from this
    /// file (an RFC 3339 timestamp, read on every reconcile) instead of the system clock.
    #[arg(long, env = "DATADUMP_TEST_CLOCK_FILE", hide = true)]
    pub test_clock_file: Option<std::path::PathBuf>,
}

/// Where the controller image keeps the worker binaries.
pub const DEFAULT_WORKER_BINARIES_DIR: &str = "/usr/local/lib/datadump/worker";

impl ControllerArgs {
    /// Planner settings from the flags, for workers of these architectures.
    pub fn plan_context(&self, arches: Vec<crate::contract::Arch>) -> PlanContext {
        PlanContext {
            site: self.site.clone(),
            managed_by: self.managed_by.clone(),
            region: self.aws.region.clone(),
            poll_interval: self.poll_interval,
            fast_requeue: Duration::from_secs(2).min(self.poll_interval),
            launch_grace: self.launch_grace,
            ssm_prefix: self.ssm_prefix.clone(),
            launcher: crate::plan::Launcher::Bootstrap(arches),
            launch_check: crate::launch::check_user_data,
        }
    }
}

/// Runs the controller until SIGTERM/SIGINT (or, with leader election, until the Lease is lost:
/// the process then exits so that it restarts as a standby).
pub async fn run(args: ControllerArgs) -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let ready = crate::http::Readiness::default();
    // Bind first: a controller that cannot serve its probes must not start.
    let listener = tokio::net::TcpListener::bind(args.http_addr).await?;
    let http = tokio::spawn(crate::http::serve(listener, ready.clone()));
    if !args.leader_election {
        let result = run_controller(client, &args, ready).await;
        http.abort();
        return result;
    }
    let identity = args.identity.clone().unwrap_or_else(|| format!("datadump-{}", fastrand::u64(..)));
    let lease = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &args.lease_name)
        .with_namespace(&args.lease_namespace)
        .with_identity(&identity)
        .with_duration(args.lease_duration)
        .with_grace((args.lease_duration / 3).max(1))
        .with_field_manager(format!("{FIELD_MANAGER}-lease"))
        .build()
        .await?;
    let (mut leader, lease_task) = lease.watch().await;
    ready.set_ready();
    info!(%identity, lease = %args.lease_name, "waiting to become the leader");
    while !*leader.borrow_and_update() {
        leader.changed().await?;
    }
    info!(%identity, "became the leader");
    let lost = async {
        while *leader.borrow_and_update() {
            if leader.changed().await.is_err() {
                break;
            }
        }
    };
    let result = tokio::select! {
        r = run_controller(client, &args, ready) => r,
        _ = lost => Err(anyhow::anyhow!("lost the leader lease; exiting so that another replica takes over")),
    };
    drop(leader);
    let _ = lease_task.await;
    http.abort();
    result
}

async fn run_controller(client: Client, args: &ControllerArgs, ready: crate::http::Readiness) -> anyhow::Result<()> {
    let sdk = args.aws.sdk_config().await;
    let release = crate::launch::release::WorkerRelease::from_dir(&args.worker_binaries_dir)?;
    let arches = release.arches();
    if arches.is_empty() {
        warn!(dir = %args.worker_binaries_dir.display(), "no worker binaries: every launch will be refused until they are there");
    } else {
        info!(?arches, dir = %args.worker_binaries_dir.display(), "worker binaries");
    }
    let backends = Backends {
        compute: InstanceCache::new(Ec2Compute::new(&sdk, &args.managed_by), args.poll_interval / 2),
        store: S3Store::new(&sdk, args.aws.endpoint_url.is_some()),
        stage: SsmStage::new(&sdk, &args.managed_by),
        notifier: crate::notify::SlackNotifier::new()?,
        worker: Some(Arc::new(release)),
    };
    let ctx =
        Arc::new(Context::new(client.clone(), backends, args.plan_context(arches)).with_max_concurrent(args.max_concurrent_reconciles));
    // untyped watch, typed per object: a malformed DataDump is skipped, not fatal (lenient.rs)
    let resource = kube::api::ApiResource::erase::<DataDump>(&());
    let api: Api<kube::api::DynamicObject> = match &args.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let (reader, writer) = kube::runtime::reflector::store();
    // kube-runtime's own concurrency bound stops taking due objects from its queue when full,
    // which was seen re-running early dumps while others starved: the bound is the fair
    // semaphore in `reconcile` instead (a waiting reconcile holds no buffers)
    let controller = Controller::for_stream(lenient::watch(api, watcher::Config::default().any_semantic(), writer), reader);
    let (store, compute, interval) = (controller.store(), ctx.backends.compute.clone(), args.sweep_interval);
    let sweep = tokio::spawn(async move {
        // kube-runtime's Store::wait_until_ready wakes only the last of several concurrent
        // waiters (one oneshot receiver, one waker), and the controller's runner waits too: poll
        loop {
            match tokio::time::timeout(Duration::from_millis(200), store.wait_until_ready()).await {
                Ok(Ok(())) => break,
                Ok(Err(_)) => return,
                Err(_) => continue,
            }
        }
        ready.set_ready();
        sweeper::run(store, compute, interval).await;
    });
    info!(namespace = args.namespace.as_deref().unwrap_or("*"), "datadump controller started");
    let clock = match &args.test_clock_file {
        Some(path) => {
            warn!(file = %path.display(), "DataDumpSchedule times come from a test clock file");
            schedule::Clock::File(path.clone())
        }
        None => schedule::Clock::System,
    };
    let schedules = Arc::new(schedule::ScheduleContext::new(
        client.clone(),
        args.site.clone(),
        clock,
        ctx.recorder.clone(),
    ));
    let dumps = controller
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                warn!(error = %e, "reconcile failed");
            }
        });
    futures::join!(dumps, schedule::run(client, args.namespace.as_deref(), schedules));
    sweep.abort();
    info!("datadump controller stopped");
    Ok(())
}

/// One reconcile: observe, plan, act, write status.
pub async fn reconcile<C, S, K>(dd: Arc<DataDump>, ctx: Arc<Context<C, S, K>>) -> Result<Requeue, Error>
where
    C: Compute + 'static,
    S: ObjectStore + 'static,
    K: SecretStage + 'static,
{
    let asked = std::time::Instant::now();
    let _turn = match &ctx.turns {
        Some(turns) => Some(turns.acquire().await.expect("the reconcile semaphore is never closed")),
        None => None,
    };
    METRICS.reconcile_wait.observe(asked.elapsed().as_secs_f64());
    let started = std::time::Instant::now();
    // boxed when its turn comes: a reconcile waiting for its turn then holds only this small
    // future, not the observe/act/status state machine (AWS SDK futures run to kilobytes)
    let result = Box::pin(reconcile_inner(&dd, &ctx, asked)).await;
    METRICS.reconcile_duration.observe(started.elapsed().as_secs_f64());
    let label = result.as_ref().map(|_| "ok").unwrap_or_else(|e| e.metric_label());
    METRICS.reconciles.get_or_create(&ResultLabels { result: label.into() }).inc();
    result
}

/// `due`: when this reconcile became due; the next one is planned from then, so that waiting
/// for a turn and the work itself do not stretch the poll cycle.
async fn reconcile_inner<C, S, K>(dd: &Arc<DataDump>, ctx: &Arc<Context<C, S, K>>, due: std::time::Instant) -> Result<Requeue, Error>
where
    C: Compute + 'static,
    S: ObjectStore + 'static,
    K: SecretStage + 'static,
{
    let now = Timestamp::now();
    let (compute, store) = (&ctx.backends.compute, &ctx.backends.store);
    let observed = crate::observe::observe_cached(dd, &ctx.plan.site, compute, store, Some(&ctx.progress), now).await?;
    let plan = plan::plan(dd, &observed, &ctx.plan, now);
    let home = KubeHome::new(ctx.client.clone());
    let done = match act::perform(&plan.actions, dd, &ctx.backends, &home).await {
        Ok(done) => done,
        Err(e) => {
            // Tell the user on the object, not only in our log; error_policy decides the retry.
            if let Some((action, note)) = e.warning() {
                ctx.recorder.publish(&dd.object_ref(&()), action, &[note]).await;
            }
            return Err(e.into());
        }
    };
    METRICS.launches.inc_by(done.launched.len() as u64);
    for (id, media) in &done.launched {
        info!(name = %dd.name_any(), namespace = dd.namespace().unwrap_or_default(), media_type = %media, instance = %id, "launched");
        failpoint::hit("after-launch");
    }
    if !done.terminated.is_empty() {
        info!(name = %dd.name_any(), instances = ?done.terminated, "termination requested");
        failpoint::hit("after-terminate");
    }
    let mut notes = plan.notes.clone();
    let mut status = plan.status.clone();
    notes.extend(crate::plan::settle(dd, &mut status, &done, now));
    ctx.recorder.publish(&dd.object_ref(&()), "Reconcile", &notes).await;
    if let Some(new) = &status {
        record_transitions(dd, &observed, new, now);
        if status::patch_if_changed(&ctx.client, dd, new).await? {
            failpoint::hit("after-status");
        }
    }
    if let Some(uid) = dd.uid() {
        ctx.failures.lock().expect("failure map").remove(&uid);
    }
    Ok(match plan.requeue_after {
        // a fixed cadence: every running media type is looked at once per poll interval, not
        // once per interval plus the time this reconcile waited and took
        Some(d) => Requeue::requeue(d.saturating_sub(due.elapsed())),
        None => Requeue::await_change(),
    })
}

/// Metrics for what this plan decided: dump durations, and the time from `_success` to the
/// terminate request.
fn record_transitions(dd: &DataDump, observed: &plan::Observed, new: &crate::api::DataDumpStatus, now: Timestamp) {
    let old = dd.status.clone().unwrap_or_default();
    if !old.phase.is_terminal()
        && new.phase.is_terminal()
        && let Some(start) = new.start_time
    {
        let secs = now.duration_since(start).as_secs_f64().max(0.0);
        METRICS
            .dump_duration
            .get_or_create(&PhaseLabels {
                phase: format!("{:?}", new.phase),
            })
            .observe(secs);
    }
    for m in &new.media {
        let was = old.media(m.media_type.as_str()).map(|o| o.phase);
        if m.phase == crate::api::MediaPhase::Terminating
            && was == Some(crate::api::MediaPhase::Running)
            && m.outcome == Some(crate::api::AttemptOutcome::Succeeded)
            && let Some(at) = observed.objects.get(m.media_type.as_str()).and_then(|o| o.success_at)
        {
            METRICS.success_to_terminate.observe(now.duration_since(at).as_secs_f64().max(0.0));
        }
    }
}

/// Backoff: exponential per object from the error's base delay, capped at five minutes, with
/// ±25% jitter so many objects do not retry in lockstep.
pub fn error_policy<C, S, K>(dd: Arc<DataDump>, error: &Error, ctx: Arc<Context<C, S, K>>) -> Requeue {
    let uid = dd.uid().unwrap_or_default();
    let n = {
        let mut failures = ctx.failures.lock().expect("failure map");
        let n = failures.entry(uid).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    let delay = jittered_backoff(error, n);
    warn!(name = %dd.name_any(), namespace = dd.namespace().unwrap_or_default(), error = %error, reason = error.metric_label(), retry_in = ?delay, "reconcile error");
    Requeue::requeue(delay)
}

/// [`Error::backoff`] with ±25% jitter, so many objects do not retry in lockstep.
fn jittered_backoff(error: &Error, n: u32) -> Duration {
    let delay = error.backoff(n).as_millis() as u64;
    let jitter = fastrand::u64(0..=delay / 2);
    Duration::from_millis(delay - delay / 4 + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status::failure("from the test", "Test").with_code(code)))
    }

    #[test]
    fn a_conflict_is_retried_at_once_then_backs_off_briefly() {
        for e in [Error::Act(ActError::Object(api(409))), Error::Kube(api(409))] {
            assert_eq!(
                (e.backoff(1), e.backoff(2), e.backoff(3)),
                (Duration::ZERO, Duration::from_millis(200), Duration::from_millis(400))
            );
            assert_eq!(e.metric_label(), "conflict");
        }
    }

    /// At 1,000 DataDumps every due one has its reconcile future at once while most wait for
    /// their turn: waiting must not hold the observe/act/status state (whose AWS SDK futures
    /// are large), or memory grows with the number of dumps.
    #[tokio::test]
    async fn a_reconcile_waiting_for_its_turn_holds_a_small_future() {
        use crate::backend::memory::{FakeClock, MemoryCompute, MemoryStage, MemoryStore};
        let client = Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
        let backends = Backends {
            compute: MemoryCompute::default(),
            store: MemoryStore::new(FakeClock::new(Timestamp::UNIX_EPOCH)),
            stage: MemoryStage::default(),
            notifier: crate::notify::SlackNotifier::new().unwrap(),
            worker: None,
        };
        let ctx = Arc::new(Context::new(client, backends, PlanContext::default()).with_max_concurrent(1));
        let dd: DataDump = serde_yaml::from_str(
            "apiVersion: datadump.dev/v1alpha1\nkind: DataDump\nmetadata: {name: d, namespace: n, uid: u}\nspec:\n  mediaTypes: [image]\n  destination: {bucket: b}\n  database: {ssmParameterName: /db}\n",
        )
        .unwrap();
        let dd = Arc::new(dd);
        let waiting = std::mem::size_of_val(&reconcile(dd.clone(), ctx.clone()));
        let work = std::mem::size_of_val(&reconcile_inner(&dd, &ctx, std::time::Instant::now()));
        assert!(
            waiting < 1024 && waiting * 4 < work,
            "a waiting reconcile holds {waiting} bytes, the work {work} bytes"
        );
    }

    #[test]
    fn transient_errors_back_off_from_two_seconds_permanent_ones_from_fifteen() {
        let transient = Error::Act(ActError::Object(api(503)));
        let permanent = Error::Act(ActError::Object(api(403)));
        assert_eq!(
            (transient.backoff(1), transient.backoff(2)),
            (Duration::from_secs(2), Duration::from_secs(4))
        );
        assert_eq!(permanent.backoff(1), Duration::from_secs(15));
        assert_eq!(permanent.backoff(30), Duration::from_secs(300), "at most five minutes");
    }
}
