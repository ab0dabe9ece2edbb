//! The runner's loop: observe → plan → act → keep the status in memory, until the dump ends.
//! A signal (Ctrl-C, SIGTERM, SIGHUP) or an error that retrying cannot fix turns the run into a
//! deletion of the in-memory object, so the planner's cleanup terminates every worker and
//! deletes staged credentials, exactly as the controller's finalizer does. A run that has never
//! reached AWS (no look has succeeded: a wrong endpoint, no network) gives up after
//! `--give-up-after` ([`after_failure`]); it has staged and launched nothing, since the first
//! look comes before any action. I/O.

use std::path::Path;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::signal::unix::{SignalKind, signal};

use super::view::{FailureDetail, View};
use super::{MemoryHome, Outcome, Signal};
use crate::act::{self, ActError, Backends};
use crate::api::{DataDump, DumpPhase};
use crate::aws::{S3Store, SsmStage};
use crate::backend::{Compute, ObjectStore};
use crate::contract;
use crate::plan::{self, Action, PlanContext};

/// Consecutive failures of an error retrying will not fix (a refused request, a missing
/// credential) before the runner gives up and cleans up.
const PERMANENT_FAILURES: u32 = 5;
/// Consecutive failures while cleaning up before the runner gives up and says what is left.
const CLEANUP_FAILURES: u32 = 8;

/// How long the runner keeps trying to reach AWS before its first successful look, and where
/// it is trying (for the message).
pub(super) struct FirstContact {
    /// `--aws-endpoint-url`, or a description of the default endpoints.
    pub endpoint: String,
    /// `--give-up-after`.
    pub give_up_after: Duration,
}

/// What the runner does after a failed step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AfterFailure {
    /// Looks again after this long.
    Retry(Duration),
    /// Stops: AWS has not answered once in the give-up time.
    GiveUp,
}

/// The decision after `failures` consecutive failed steps, `elapsed` after the run started.
/// Only a run that has never `reached` AWS (no look succeeded), failing with a `transient`
/// error (no answer, or 5xx), gives up, once `give_up_after` has passed; until then it waits
/// no longer than the time left. Every other failure is retried with exponential backoff
/// (2 s, doubling to 32 s), as the controller would; permanent errors have their own limit.
fn after_failure(reached: bool, transient: bool, failures: u32, elapsed: Duration, give_up_after: Duration) -> AfterFailure {
    let backoff = Duration::from_secs(1u64 << failures.min(5));
    if reached || !transient {
        return AfterFailure::Retry(backoff);
    }
    match give_up_after.checked_sub(elapsed) {
        Some(left) if !left.is_zero() => AfterFailure::Retry(backoff.min(left)),
        _ => AfterFailure::GiveUp,
    }
}

/// The gist of a failed call for a one-line message: the API, then the innermost cause, without
/// the debug dump the SDK appends to a dispatch failure. `ListObjectsV2: service unavailable:
/// dispatch failure: … tcp connect error: Connection refused (os error 111) (DispatchFailure(…))`
/// becomes `ListObjectsV2: Connection refused (os error 111)`.
fn gist(error: &str) -> String {
    // the debug dump: ` (` and a type name and `(` or ` {`, to the end
    let dump = error.match_indices(" (").map(|(i, _)| i).find(|&i| {
        let rest = &error[i + 2..];
        let name = rest.find(|c: char| !c.is_ascii_alphanumeric()).map_or(rest, |end| &rest[..end]);
        name.starts_with(|c: char| c.is_ascii_uppercase()) && rest[name.len()..].starts_with(['(', ' '])
    });
    let text = error[..dump.unwrap_or(error.len())].trim();
    match (text.split_once(": "), text.rsplit_once(": ")) {
        (Some((api, _)), Some((_, cause))) if !api.contains(' ') => format!("{api}: {cause}"),
        _ => text.to_string(),
    }
}

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
    contact: &FirstContact,
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
    // whether a look (observe: the instances, then S3) has succeeded: before that, nothing has
    // been planned, so nothing is staged or launched
    let mut reached = false;
    let started = Instant::now();
    loop {
        let now = Timestamp::now();
        let step = async {
            let observed = crate::observe::observe(&dd, &ctx.site, &backends.compute, &backends.store, now).await?;
            reached = true;
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
                notes.extend(crate::plan::settle(&dd, &mut status, &done, now));
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
                match after_failure(reached, !permanent, failures, started.elapsed(), contact.give_up_after) {
                    AfterFailure::Retry(wait) => wait,
                    // nothing was staged or launched: there is nothing to clean up
                    AfterFailure::GiveUp => {
                        view.finish_unreached(None);
                        anyhow::bail!(
                            "never reached AWS at {} ({}) in {}; check --aws-endpoint-url / AWS_ENDPOINT_URL and the network",
                            contact.endpoint,
                            gist(&e.to_string()),
                            humantime::format_duration(contact.give_up_after)
                        )
                    }
                }
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
                if !reached {
                    // never reached AWS: nothing was staged or launched, so nothing to clean up
                    view.finish_unreached(Some(s));
                    return Ok(Outcome::Interrupted(s));
                }
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
    let db = &dd.spec.database;
    let connection = matches!(db.credentials(), Some(crate::api::Credentials::Secret(_)));
    let identity = db.client_certificate().is_some();
    let uid = dd.metadata.uid.clone().unwrap_or_default();
    dd.spec
        .media_types
        .iter()
        .flat_map(|m| {
            let [conn, client] = ctx.staged_parameters(&uid, m.as_str());
            [connection.then_some(conn), identity.then_some(client)]
        })
        .flatten()
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_may_be_left_names_every_staged_parameter() {
        let dump = |database: &str| -> DataDump {
            let mut dd: DataDump = serde_yaml::from_str(&format!(
                "apiVersion: datadump.dev/v1alpha1\nkind: DataDump\nmetadata: {{name: d, namespace: n, uid: run-1}}\n\
                 spec:\n  mediaTypes: [image, audio]\n  destination: {{bucket: b}}\n  database: {database}\n"
            ))
            .unwrap();
            dd.metadata.uid = Some("run-1".into());
            dd
        };
        let ctx = PlanContext::default();
        let secret = "{connectionSecretRef: {name: db, key: url}}";
        let both = "{connectionSecretRef: {name: db, key: url}, tls: {clientCertificateSecretRef: {name: c}}}";
        let own_ssm_with_cert = "{ssmParameterName: /mine, tls: {clientCertificateSecretRef: {name: c}}}";
        let [image, image_client] = ctx.staged_parameters("run-1", "image");
        let [audio, audio_client] = ctx.staged_parameters("run-1", "audio");
        assert_eq!(staged(&dump(secret), &ctx), [image.clone(), audio.clone()]);
        assert_eq!(
            staged(&dump(both), &ctx),
            [image, image_client.clone(), audio, audio_client.clone()]
        );
        assert_eq!(staged(&dump(own_ssm_with_cert), &ctx), [image_client, audio_client]);
        assert!(staged(&dump("{ssmParameterName: /mine}"), &ctx).is_empty());
    }

    #[test]
    fn only_a_run_that_never_reached_aws_gives_up_and_then_after_the_give_up_time() {
        use AfterFailure::{GiveUp, Retry};
        let s = Duration::from_secs;
        let limit = s(60);
        // (reached, transient, failures, elapsed) → decision
        let table = [
            // never reached, no answer: exponential backoff, never past the give-up time
            ((false, true, 1, s(1)), Retry(s(2))),
            ((false, true, 3, s(10)), Retry(s(8))),
            ((false, true, 5, s(50)), Retry(s(10))),
            ((false, true, 9, s(59)), Retry(s(1))),
            ((false, true, 6, s(60)), GiveUp),
            ((false, true, 1, s(600)), GiveUp),
            // reached once: transient errors are retried as long as they last
            ((true, true, 1, s(1)), Retry(s(2))),
            ((true, true, 9, s(600)), Retry(s(32))),
            // a refusal is an answer: the permanent-error limit applies, not this one
            ((false, false, 4, s(600)), Retry(s(16))),
        ];
        for ((reached, transient, failures, elapsed), want) in table {
            assert_eq!(
                after_failure(reached, transient, failures, elapsed, limit),
                want,
                "reached {reached}, transient {transient}, {failures} failures, {elapsed:?}"
            );
        }
        // a zero give-up time gives up at the first failure
        assert_eq!(after_failure(false, true, 1, Duration::ZERO, Duration::ZERO), GiveUp);
    }

    #[test]
    fn the_gist_of_an_error_is_the_api_and_the_innermost_cause() {
        let refused = "ListObjectsV2: service unavailable: dispatch failure: io error: client error (Connect): tcp connect \
            error: Connection refused (os error 111) (DispatchFailure(DispatchFailure { source: ConnectorError { kind: Io, \
            source: hyper_util::client::legacy::Error(Connect, ConnectError(\"tcp connect error\", 127.0.0.1:1, Os { code: \
            111, kind: ConnectionRefused, message: \"Connection refused\" })), connection: Unknown } }))";
        assert_eq!(gist(refused), "ListObjectsV2: Connection refused (os error 111)");
        assert_eq!(
            gist("ListObjectsV2: service unavailable: We encountered an internal error. Please try again."),
            "ListObjectsV2: We encountered an internal error. Please try again."
        );
        assert_eq!(gist("ListObjectsV2: throttled"), "ListObjectsV2: throttled");
        assert_eq!(gist("no colon here"), "no colon here");
    }
}
