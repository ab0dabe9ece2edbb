//! The runner's loop: observe → plan → act → keep the status in memory, until the dump ends.
//! A signal (Ctrl-C, SIGTERM, SIGHUP) or an error that retrying cannot fix turns the run into a
//! deletion of the in-memory object, so the planner's cleanup terminates every worker and
//! deletes staged credentials, exactly as the controller's finalizer does. I/O.

use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::signal::unix::{SignalKind, signal};

use super::view::{FailureDetail, View};
use super::{MemoryHome, Outcome, Signal};
use crate::act::{self, ActError, Backends};
use crate::api::{DataDump, DumpPhase};
use crate::aws::{S3Store, SsmStage};
use crate::backend::{Compute, ObjectStore};
use crate::plan::{self, Action, PlanContext};
use crate::worker::contract;

/// Consecutive failures of an error retrying will not fix (a refused request, a missing
/// credential) before the runner gives up and cleans up.
const PERMANENT_FAILURES: u32 = 5;
/// Consecutive failures while cleaning up before the runner gives up and says what is left.
const CLEANUP_FAILURES: u32 = 8;

/// Why the run is being wound down.
enum Stop {
    Signal(Signal),
    Error(anyhow::Error),
}

/// The signals the runner handles itself.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    async fn recv(&mut self) -> Signal {
        tokio::select! {
            _ = self.int.recv() => Signal::Interrupt,
            _ = self.term.recv() => Signal::Terminate,
            _ = self.hup.recv() => Signal::Hangup,
        }
    }
}

/// Runs the loop until the dump ends or, after a signal or a permanent error, until cleanup is
/// done. `workdir` is where local workers keep their logs (for the summary).
pub(super) async fn drive<C: Compute>(
    mut dd: DataDump,
    backends: Backends<C, S3Store, SsmStage>,
    home: &MemoryHome,
    ctx: &PlanContext,
    workdir: Option<&Path>,
) -> anyhow::Result<Outcome> {
    // Installed before the first launch: from here on Ctrl-C never kills the runner outright.
    let mut signals = Signals::install()?;
    let mut view = View::new(&dd, workdir.map(Path::to_path_buf));
    let mut stop: Option<Stop> = None;
    let mut signals_seen = 0u32;
    let mut failures = 0u32;
    let mut terminated: Vec<String> = Vec::new();
    // instances that still needed terminating at the last look, for the report if cleanup fails
    let mut live: Vec<String> = Vec::new();
    loop {
        let now = Timestamp::now();
        let step = async {
            let observed = crate::observe::observe(&dd, &ctx.site, &backends.compute, &backends.store, now).await?;
            let plan = plan::plan(&dd, &observed, ctx, now);
            let done = act::perform(&plan.actions, &dd, &backends, home).await?;
            Ok::<_, ActError>((observed, plan, done))
        };
        let wait = match step.await {
            Ok((observed, plan, done)) => {
                failures = 0;
                terminated.extend(done.terminated.iter().cloned());
                let mut status = plan.status.clone();
                let mut notes = plan.notes.clone();
                notes.extend(act::settle(&dd, &mut status, &done, now));
                if let Some(s) = status {
                    dd.status = Some(s);
                }
                view.update(&dd, &notes);
                live = observed
                    .instances
                    .iter()
                    .filter(|i| i.state.needs_terminate())
                    .map(|i| i.id.clone())
                    .collect();
                if stop.is_some() && plan.actions.contains(&Action::RemoveFinalizer) {
                    // cleanup is complete: every instance confirmed terminated, credentials deleted
                    terminated.sort();
                    terminated.dedup();
                    return match stop.take().expect("stopping") {
                        Stop::Signal(s) => {
                            view.finish_stopped(&dd, Some(s), &terminated);
                            Ok(Outcome::Interrupted(s))
                        }
                        Stop::Error(e) => {
                            view.finish_stopped(&dd, None, &terminated);
                            Err(e.context("datadump run gave up; its workers were terminated"))
                        }
                    };
                }
                let phase = dd.status.as_ref().map(|s| s.phase).unwrap_or_default();
                if stop.is_none() && phase.is_terminal() && plan.actions.is_empty() {
                    let details = failure_details(&dd, &backends.store).await;
                    view.finish(&dd, &details);
                    return Ok(if phase == DumpPhase::Succeeded {
                        Outcome::Succeeded
                    } else {
                        Outcome::Failed
                    });
                }
                plan.requeue_after.unwrap_or(ctx.poll_interval).min(ctx.poll_interval)
            }
            Err(e) => {
                failures += 1;
                let permanent = !e.is_transient();
                view.error(&e.to_string(), stop.is_some());
                if stop.is_some() && failures >= CLEANUP_FAILURES {
                    view.finish_abandoned(&dd, &live, &staged(&dd, ctx));
                    anyhow::bail!("cleanup failed {failures} times in a row ({e}); see above for what may be left");
                }
                if stop.is_none() && permanent && failures >= PERMANENT_FAILURES {
                    view.stopping(&format!("giving up after {failures} failures: {e}"));
                    stop = Some(Stop::Error(anyhow::Error::new(e)));
                    dd.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
                    failures = 0;
                    continue;
                }
                Duration::from_secs(1u64 << failures.min(5))
            }
        };
        // while cleaning up, look again soon (errors: a little later, so a blip can pass)
        let wait = match (&stop, failures) {
            (None, _) => wait,
            (Some(_), 0) => wait.min(Duration::from_millis(500)),
            (Some(_), _) => wait.min(Duration::from_secs(2)),
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            s = signals.recv() => {
                signals_seen += 1;
                if stop.is_none() {
                    view.stopping(&format!("{}: terminating what was launched and deleting staged credentials…", s.name()));
                    stop = Some(Stop::Signal(s));
                    dd.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
                    failures = 0;
                } else if signals_seen >= 3 {
                    view.finish_abandoned(&dd, &live, &staged(&dd, ctx));
                    anyhow::bail!("{} received three times: exited without waiting for cleanup to finish", s.name());
                } else {
                    view.stopping("still cleaning up (once more to exit without waiting)");
                }
            }
        }
    }
}

/// The SSM parameters that may hold staged credentials of this run (the cleanup deletes them
/// all; missing ones are fine).
fn staged(dd: &DataDump, ctx: &PlanContext) -> Vec<String> {
    if !matches!(dd.spec.database.credentials(), Some(crate::api::Credentials::Secret(_))) {
        return Vec::new();
    }
    let uid = dd.metadata.uid.clone().unwrap_or_default();
    dd.spec.media_types.iter().map(|m| ctx.staged_parameter(&uid, m.as_str())).collect()
}

/// The last lines of each failed media type's `_failure` report (the worker redacted them), so
/// the cause is on screen without opening S3 or the machine.
async fn failure_details(dd: &DataDump, store: &S3Store) -> Vec<FailureDetail> {
    const LINES: usize = 15;
    let bucket = crate::observe::bucket_of(dd);
    let date = dd.status.as_ref().and_then(|s| s.dump_date.clone()).unwrap_or_default();
    let mut out = Vec::new();
    for m in dd
        .status
        .iter()
        .flat_map(|s| s.media.iter())
        .filter(|m| m.phase == crate::api::MediaPhase::Failed)
    {
        let key = format!(
            "{}{}",
            contract::media_prefix(&dd.spec.destination.prefix, &date, m.media_type.as_str()),
            contract::FAILURE
        );
        let Ok(Some(body)) = store.get(bucket, &key).await else { continue };
        let Ok(report) = serde_json::from_slice::<contract::FailureReport>(&body) else {
            continue;
        };
        if m.token.as_ref().is_some_and(|t| *t != report.token) {
            continue;
        }
        let lines: Vec<String> = report
            .log_tail
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        let log_tail = lines[lines.len().saturating_sub(LINES)..].to_vec();
        out.push(FailureDetail {
            media_type: m.media_type.to_string(),
            log_tail,
        });
    }
    out
}
