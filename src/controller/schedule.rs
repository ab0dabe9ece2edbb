//! The DataDumpSchedule controller: kube-runtime wiring around list → plan → act → status.
//! `reconcile_schedule` lists the schedule's DataDumps, asks [`plan_schedule`] what to do,
//! creates and deletes DataDumps, records Events and writes the status. Every decision is the
//! planner's; this module is the I/O at its edges.
//!
//! Restart safety: a run's DataDump has a name derived from the schedule and the scheduled time,
//! and a create that meets 409 AlreadyExists counts as done, so a crash between the create and
//! the status write never makes a second DataDump for the same time.
//!
//! Time comes from a [`Clock`]: the system clock, or (tests only) a file holding an RFC 3339
//! timestamp, so a test can move the schedule's "now" forward without waiting for real minutes.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::events::Recorder;
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::{Error, FIELD_MANAGER, lenient};
use crate::api::schedule::{SCHEDULE_LABEL, SCHEDULED_TIME_ANNOTATION};
use crate::api::{DataDump, DataDumpSchedule, DataDumpScheduleStatus, DumpPhase, SiteDefaults};
use crate::failpoint;
use crate::plan::schedule::{OwnedDump, ScheduleAction, plan_schedule};

/// Where "now" comes from.
#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// Tests only: the RFC 3339 timestamp in this file, read on every reconcile.
    File(PathBuf),
}

impl Clock {
    /// The current time, or why the test clock file cannot say.
    pub fn now(&self) -> Result<Timestamp, String> {
        match self {
            Clock::System => Ok(Timestamp::now()),
            Clock::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
                text.trim()
                    .parse()
                    .map_err(|e| format!("{}: {:?} is no RFC 3339 time: {e}", path.display(), text.trim()))
            }
        }
    }

    /// The longest wait before looking again: a file clock can jump at any moment.
    fn max_wait(&self) -> Option<Duration> {
        match self {
            Clock::System => None,
            Clock::File(_) => Some(Duration::from_secs(1)),
        }
    }
}

/// Everything a schedule reconcile needs, shared.
pub struct ScheduleContext {
    /// The Kubernetes client.
    pub client: Client,
    /// Site defaults, for validating templates as the DataDump controller will.
    pub site: SiteDefaults,
    /// Where "now" comes from.
    pub clock: Clock,
    /// Event recorder.
    pub recorder: Recorder,
    /// Consecutive failures per schedule uid, for exponential backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl ScheduleContext {
    /// A context.
    pub fn new(client: Client, site: SiteDefaults, clock: Clock, recorder: Recorder) -> Self {
        ScheduleContext {
            client,
            site,
            clock,
            recorder,
            failures: Mutex::default(),
        }
    }
}

/// Runs the schedule controller (in `namespace`, or all) until SIGTERM/SIGINT.
pub async fn run(client: Client, namespace: Option<&str>, ctx: Arc<ScheduleContext>) {
    let resource = kube::api::ApiResource::erase::<DataDumpSchedule>(&());
    let schedules: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let dumps: Api<PartialObjectMeta<DataDump>> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    // only DataDumps a schedule made, and only their metadata: ownerReferences lead back
    let owned = watcher(dumps, watcher::Config::default().labels(SCHEDULE_LABEL).any_semantic()).touched_objects();
    let (reader, writer) = kube::runtime::reflector::store();
    info!(namespace = namespace.unwrap_or("*"), "datadumpschedule controller started");
    Controller::for_stream(lenient::watch(schedules, watcher::Config::default().any_semantic(), writer), reader)
        .owns_stream(owned)
        .shutdown_on_signal()
        .run(reconcile_schedule, schedule_error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                warn!(error = %e, "schedule reconcile failed");
            }
        })
        .await;
    info!("datadumpschedule controller stopped");
}

/// One reconcile: list the schedule's DataDumps, plan, act, write status.
pub async fn reconcile_schedule(sched: Arc<DataDumpSchedule>, ctx: Arc<ScheduleContext>) -> Result<Requeue, Error> {
    let now = ctx.clock.now().map_err(Error::Clock)?;
    let ns = sched.namespace().unwrap_or_default();
    let name = sched.name_any();
    let dumps: Api<DataDump> = Api::namespaced(ctx.client.clone(), &ns);
    let owned = list_owned(&ctx.client, &sched).await?;
    let plan = plan_schedule(&sched, &owned, &ctx.site, now);

    for action in &plan.actions {
        match action {
            ScheduleAction::Delete { name: dump, reason } => match dumps.delete(dump, &DeleteParams::background()).await {
                Ok(_) => info!(schedule = %name, namespace = %ns, dump = %dump, ?reason, "deleted DataDump"),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e.into()),
            },
            ScheduleAction::Create {
                name: dump,
                scheduled_time,
                date,
            } => {
                let object = dump_for(&sched, dump, *scheduled_time, date);
                let params = PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                };
                match dumps.create(&params, &object).await {
                    Ok(_) => info!(schedule = %name, namespace = %ns, dump = %dump, scheduled = %scheduled_time, %date, "created DataDump"),
                    // this run's DataDump, created before a restart: done
                    Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {
                        info!(schedule = %name, dump = %dump, "DataDump already exists")
                    }
                    Err(e) => return Err(e.into()),
                }
                failpoint::hit("after-schedule-create");
            }
        }
    }

    ctx.recorder.publish(&sched.object_ref(&()), "Schedule", &plan.notes).await;
    patch_status_if_changed(&ctx.client, &sched, &plan.status).await?;
    if let Some(uid) = sched.uid() {
        ctx.failures.lock().expect("failure map").remove(&uid);
    }
    let wait = match (plan.requeue_after, ctx.clock.max_wait()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(match wait {
        Some(d) => Requeue::requeue(d),
        None => Requeue::await_change(),
    })
}

/// The DataDumps this schedule controls (by label, then by controller ownerReference), as the
/// planner sees them. Untyped, so one malformed DataDump cannot hide the others.
async fn list_owned(client: &Client, sched: &DataDumpSchedule) -> Result<Vec<OwnedDump>, Error> {
    let resource = kube::api::ApiResource::erase::<DataDump>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &sched.namespace().unwrap_or_default(), &resource);
    let selector = format!("{SCHEDULE_LABEL}={}", sched.name_any());
    let list = api.list(&ListParams::default().labels(&selector)).await?;
    let uid = sched.uid().unwrap_or_default();
    Ok(list
        .items
        .into_iter()
        .filter(|o| o.owner_references().iter().any(|r| r.uid == uid && r.controller == Some(true)))
        .map(|o| {
            let status = o.data.get("status");
            let time = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).and_then(|s| s.parse::<Timestamp>().ok());
            OwnedDump {
                name: o.name_any(),
                scheduled_time: o.annotations().get(SCHEDULED_TIME_ANNOTATION).and_then(|s| s.parse().ok()),
                created: o.metadata.creation_timestamp.as_ref().map(|t| t.0),
                phase: status
                    .and_then(|s| s.get("phase"))
                    .and_then(|p| serde_json::from_value::<DumpPhase>(p.clone()).ok()),
                completion_time: time(status.and_then(|s| s.get("completionTime"))),
                deleting: o.metadata.deletion_timestamp.is_some(),
            }
        })
        .collect())
}

/// The DataDump of one run: the template with the run's date, labelled and annotated with its
/// schedule and scheduled time, controlled by the schedule (deleting the schedule deletes it).
/// `blockOwnerDeletion` stays unset: setting it needs `update` on the schedule's finalizers
/// where the OwnerReferencesPermissionEnforcement admission plugin runs.
pub fn dump_for(sched: &DataDumpSchedule, name: &str, scheduled_time: Timestamp, date: &str) -> DataDump {
    let mut spec = sched.spec.template.clone();
    spec.date = Some(date.to_string());
    let owner = OwnerReference {
        api_version: DataDumpSchedule::api_version(&()).into_owned(),
        kind: DataDumpSchedule::kind(&()).into_owned(),
        name: sched.name_any(),
        uid: sched.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: None,
    };
    DataDump {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: sched.namespace(),
            labels: Some(BTreeMap::from([(SCHEDULE_LABEL.to_string(), sched.name_any())])),
            annotations: Some(BTreeMap::from([(
                SCHEDULED_TIME_ANNOTATION.to_string(),
                scheduled_time.to_string(),
            )])),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec,
        status: None,
    }
}

/// The status without the timestamps that change on every write of an equal status.
fn comparable(status: &DataDumpScheduleStatus) -> DataDumpScheduleStatus {
    let mut s = status.clone();
    for c in &mut s.conditions {
        c.last_transition_time = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::UNIX_EPOCH);
    }
    s
}

/// Writes `new` (server-side apply, guarded by the resourceVersion) when it changed.
async fn patch_status_if_changed(client: &Client, sched: &DataDumpSchedule, new: &DataDumpScheduleStatus) -> Result<bool, kube::Error> {
    if sched.status.as_ref().is_some_and(|old| comparable(old) == comparable(new)) {
        return Ok(false);
    }
    let api: Api<DataDumpSchedule> = Api::namespaced(client.clone(), &sched.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": "datadump.dev/v1alpha1",
        "kind": "DataDumpSchedule",
        "metadata": {"name": sched.name_any(), "resourceVersion": sched.resource_version()},
        "status": new,
    });
    api.patch_status(&sched.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await?;
    Ok(true)
}

/// Backoff: exponential per schedule from the error's base delay, capped at five minutes.
pub fn schedule_error_policy(sched: Arc<DataDumpSchedule>, error: &Error, ctx: Arc<ScheduleContext>) -> Requeue {
    let n = {
        let mut failures = ctx.failures.lock().expect("failure map");
        let n = failures.entry(sched.uid().unwrap_or_default()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    let delay = super::jittered_backoff(error, n);
    warn!(name = %sched.name_any(), namespace = sched.namespace().unwrap_or_default(), error = %error, retry_in = ?delay, "schedule reconcile error");
    Requeue::requeue(delay)
}
