//! One media type's state machine (see docs/architecture.md):
//! Pending → Launching → Running → Terminating → Succeeded | Failed, with retries back to
//! Pending. Pure, no I/O.
//!
//! [`step`] runs one phase function after another (`pending`, `launching`, `running`,
//! `terminating`, `ended`). What they may do is in [`Env::launch`]: an attempt starts, and its
//! instance launches, only under [`Launch::Allowed`], which carries every setting a launch
//! needs; [`Launch::Held`] says why not, and whether a suspend or the deadline ends the attempt
//! under way.

use std::collections::BTreeMap;

use jiff::Timestamp;
use sha2::{Digest, Sha256};

use super::{Action, Instance, InstanceState, LaunchRequest, MediaObjects, Note, NoteKind, PlanContext, Reason, StagedCredential, tags};
use crate::{AttemptOutcome, Credentials, DataDump, MediaPhase, MediaStatus, Progress, ResolvedInstance};
use datadump_contract::Arch;

/// The idempotency token of one attempt: the same (uid, media type, attempt) always gives the
/// same token, so even a lost status cannot make a second instance for one attempt. 36 ASCII
/// characters, within EC2's 64-character ClientToken limit.
pub fn token_for(uid: &str, media_type: &str, attempt: u32) -> String {
    let digest = Sha256::digest(format!("{uid}/{media_type}/{attempt}").as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("ddt-{hex}")
}

/// Phase changes one plan may make for one media type. Each phase function changes the phase
/// at most once, and the longest chain on one set of observations is Launching → Running →
/// Terminating → Pending (a retry) → Launching, which then waits for its token to be persisted;
/// the bound only guards against a future phase function that would loop.
const MAX_TRANSITIONS: usize = 8;

/// Whether the next phase can be decided on the same observations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// The phase changed and the new one may move on at once.
    Again,
    /// Nothing more until the world changes (or the next plan).
    Done,
}

/// What one media type's step sees of the dump.
pub(super) struct Env<'a> {
    pub dd: &'a DataDump,
    pub uid: &'a str,
    pub ctx: &'a PlanContext,
    pub now: Timestamp,
    /// The dump's DATE folder.
    pub date: &'a str,
    /// Whether an attempt may start and launch in this plan, with everything a launch needs;
    /// else what holds it.
    pub launch: Launch<'a>,
}

impl Env<'_> {
    /// The dump's deadline passed: a pending media type fails, an attempt under way ends.
    fn deadline_passed(&self) -> bool {
        matches!(self.launch, Launch::Held(Hold::DeadlinePassed { .. }))
    }

    /// `spec.suspend`: an attempt under way ends (outcome Suspended) and nothing starts.
    fn suspended(&self) -> bool {
        matches!(
            self.launch,
            Launch::Held(Hold::Suspended | Hold::DeadlinePassed { suspended: true })
        )
    }
}

/// Whether a media type may start an attempt and launch its instance in this plan. The only
/// way to a launch is through `Allowed`, which carries everything a launch needs.
pub(super) enum Launch<'a> {
    /// Attempts may start and launch: the spec is valid, the instance resolved, the dump is
    /// neither suspended, nor past its deadline, nor ended, and requester pays is settled.
    Allowed(LaunchSettings<'a>),
    /// Nothing starts or launches.
    Held(Hold),
}

/// What a launch needs, all of it decided (by `dump.rs::launch_gate`, the one place that
/// builds it).
pub(super) struct LaunchSettings<'a> {
    /// The resolved instance settings (spec, site default, built-in).
    pub instance: &'a ResolvedInstance,
    /// Where the worker's connection string comes from.
    pub credentials: Credentials<'a>,
    /// The worker presents a client certificate (`spec.database.tls.clientCertificateSecretRef`):
    /// staged next to the connection string, its parameter named in the job.
    pub client_certificate: bool,
    /// The worker's deadline: the dump's, or for a dump about to start, counted from now.
    pub deadline: Timestamp,
    /// The instance type's architecture: as observed (DescribeInstanceTypes), else by the
    /// type's name ([`Arch::of_instance_type`]).
    pub architecture: Arch,
}

/// Why nothing starts or launches in this plan: the first that applies, in this order. The
/// first two also end attempts under way, so they come first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Hold {
    /// The dump's deadline passed (and it may be suspended too).
    DeadlinePassed {
        /// `spec.suspend` is set as well.
        suspended: bool,
    },
    /// `spec.suspend`.
    Suspended,
    /// The spec breaks a rule (or, which validation rules out, gives no credential source or
    /// no deadline a launch could carry).
    InvalidSpec,
    /// The instance settings do not resolve (no instance profile).
    Unresolved,
    /// The dump ended (`completionTime`).
    Ended,
    /// The bucket does not make requesters pay yet (being checked, or refused).
    RequesterPays,
}

/// What the steps of all media types ask for; batched by the dump planner.
#[derive(Default)]
pub(super) struct Out {
    pub stage: Vec<Action>,
    pub launch: Vec<Action>,
    pub terminate: Vec<String>,
    pub delete_parameters: Vec<String>,
    pub notes: Vec<Note>,
}

impl Out {
    fn note(&mut self, kind: NoteKind, reason: Reason, message: String) {
        self.notes.push(Note { kind, reason, message });
    }
}

impl LaunchSettings<'_> {
    /// The SSM parameter the worker reads: the staged one, or the user's own.
    fn worker_parameter(&self, env: &Env, media_type: &str) -> String {
        match self.credentials {
            Credentials::Ssm(name) => name.to_string(),
            Credentials::Secret(_) => env.ctx.staged_parameter(env.uid, media_type),
        }
    }
}

fn clear_attempt(ms: &mut MediaStatus) {
    ms.token = None;
    ms.instance_id = None;
    ms.instance_state = None;
    ms.outcome = None;
    ms.attempt_start_time = None;
    ms.last_progress = None;
    ms.connection = None;
}

/// Advances one media type as far as the observations allow: one phase function after another
/// while each says the next phase can be decided on the same observations.
pub(super) fn step(env: &Env, ms: &mut MediaStatus, objs: Option<&MediaObjects>, instances: &[&Instance], out: &mut Out) {
    // Instances of earlier attempts (or strays) that still run are never left behind.
    for i in instances {
        if Some(&i.token) != ms.token.as_ref() && i.state.needs_terminate() {
            out.terminate.push(i.id.clone());
        }
    }
    for _ in 0..MAX_TRANSITIONS {
        let current = ms.token.as_ref().and_then(|t| instances.iter().find(|i| &i.token == t).copied());
        let next = match ms.phase {
            MediaPhase::Pending => pending(env, ms, objs, out),
            MediaPhase::Launching => launching(env, ms, current, out),
            MediaPhase::Running => running(env, ms, objs, current, out),
            MediaPhase::Terminating => terminating(env, ms, current, out),
            MediaPhase::Succeeded | MediaPhase::Failed => ended(env, ms, out),
        };
        if next == Next::Done {
            return;
        }
    }
}

/// Pending: an earlier export for the date ends it at once; else a new attempt (token,
/// staged credentials) whose launch waits for the next plan, once the token is persisted.
fn pending(env: &Env, ms: &mut MediaStatus, objs: Option<&MediaObjects>, out: &mut Out) -> Next {
    let media = ms.media_type.as_str().to_string();
    if let Some(Ok(output)) = objs.and_then(|o| o.success.as_ref())
        && ms.attempt == 0
    {
        ms.phase = MediaPhase::Succeeded;
        record_output(ms, output);
        ms.reason = Some(Reason::AlreadyExported.as_str().into());
        ms.message = Some(format!(
            "_success already present under {}; nothing launched",
            ms.s3_uri.clone().unwrap_or_default()
        ));
        out.note(
            NoteKind::Normal,
            Reason::AlreadyExported,
            format!("{media}: already exported for this date; nothing launched"),
        );
        return Next::Again;
    }
    if env.deadline_passed() {
        ms.phase = MediaPhase::Failed;
        ms.reason = Some(Reason::DeadlineExceeded.as_str().into());
        ms.message = Some("the deadline passed before this media type could start".into());
        return Next::Again;
    }
    let Launch::Allowed(settings) = &env.launch else {
        return Next::Done;
    };
    ms.attempt += 1;
    ms.token = Some(token_for(env.uid, &media, ms.attempt));
    ms.attempt_start_time = Some(env.now);
    ms.phase = MediaPhase::Launching;
    ms.instance_id = None;
    ms.instance_state = None;
    ms.outcome = None;
    if !ms.credentials_staged {
        let connection = matches!(settings.credentials, Credentials::Secret(_))
            .then(|| (env.ctx.staged_parameter(env.uid, &media), StagedCredential::ConnectionString));
        let identity = settings
            .client_certificate
            .then(|| (env.ctx.client_identity_parameter(env.uid, &media), StagedCredential::ClientIdentity));
        for (parameter, credential) in connection.into_iter().chain(identity) {
            out.stage.push(Action::StageCredentials {
                media_type: media.clone(),
                parameter,
                credential,
            });
            ms.credentials_staged = true;
        }
    }
    // The launch itself waits for the next plan, once this token is persisted.
    Next::Done
}

/// Launching: the attempt's instance, once seen, makes it Running; until then the launch is
/// planned again (adopted, never duplicated, if it exists), unless suspended or out of time.
fn launching(env: &Env, ms: &mut MediaStatus, current: Option<&Instance>, out: &mut Out) -> Next {
    let media = ms.media_type.as_str().to_string();
    if let Some(i) = current {
        ms.instance_id = Some(i.id.clone());
        ms.instance_state = Some(i.state.as_str().into());
        ms.phase = MediaPhase::Running;
        ms.reason = None;
        ms.message = Some(format!("attempt {} running on {}", ms.attempt, i.id));
        out.note(
            NoteKind::Normal,
            Reason::Launched,
            format!("{media}: attempt {} runs on instance {}", ms.attempt, i.id),
        );
        return Next::Again;
    }
    if env.deadline_passed() || env.suspended() {
        ms.outcome = Some(if env.deadline_passed() {
            AttemptOutcome::DeadlineExceeded
        } else {
            AttemptOutcome::Suspended
        });
        ms.phase = MediaPhase::Terminating;
        return Next::Again;
    }
    let Launch::Allowed(settings) = &env.launch else {
        return Next::Done;
    };
    match launch_request(env, ms, settings) {
        Ok(req) => {
            out.note(
                NoteKind::Normal,
                Reason::Launching,
                format!("{media}: launching attempt {} on a {}", ms.attempt, settings.instance.instance_type),
            );
            out.launch.push(Action::Launch(Box::new(req)));
        }
        Err(e) => {
            ms.phase = MediaPhase::Failed;
            ms.reason = Some(Reason::UserDataInvalid.as_str().into());
            ms.message = Some(format!("cannot render the worker script: {e}; nothing was launched"));
            out.note(NoteKind::Warning, Reason::UserDataInvalid, format!("{media}: {e}"));
            return Next::Again;
        }
    }
    Next::Done
}

/// Running: progress is recorded; this attempt's `_success` or `_failure`, the deadline, a
/// suspend or a lost instance decide the outcome and move to Terminating.
fn running(env: &Env, ms: &mut MediaStatus, objs: Option<&MediaObjects>, current: Option<&Instance>, out: &mut Out) -> Next {
    let media = ms.media_type.as_str().to_string();
    ms.instance_state = current.map(|i| i.state.as_str().to_string()).or(ms.instance_state.take());
    // Progress and semaphores count only when this attempt wrote them: by the token in the
    // report, else by time (another dump or an earlier attempt may share the prefix).
    let (mine, start) = (ms.token.clone(), ms.attempt_start_time);
    let ours = |token: &Option<String>, time: Option<Timestamp>| match (token, &mine, start) {
        (Some(t), Some(mine), _) => t == mine,
        (None, _, Some(start)) => time.is_some_and(|t| t.as_second() >= start.as_second()),
        _ => false,
    };
    if let Some(p) = objs.and_then(|o| o.progress.as_ref()).filter(|p| ours(&p.token, p.time)) {
        ms.last_progress = Some(Progress {
            stage: p.stage.clone(),
            time: p.time,
        });
        ms.files = p.files.or(ms.files);
        ms.bytes = p.bytes.or(ms.bytes);
        ms.rows = p.rows.or(ms.rows);
        ms.connection = p.connection.clone().or(ms.connection.take());
    }
    let failure = objs.and_then(|o| o.failure.as_ref()).filter(|f| ours(&f.token, Some(f.time)));
    let success = objs
        .filter(|o| ours(&o.success_token, o.success_at))
        .and_then(|o| o.success.as_ref());
    let (outcome, reason, message) = match (success, failure) {
        (Some(Ok(output)), _) => {
            record_output(ms, output);
            (
                AttemptOutcome::Succeeded,
                Reason::WorkerSucceeded,
                format!("_success found ({} files, {} bytes)", output.files, output.bytes),
            )
        }
        (Some(Err(why)), _) => (AttemptOutcome::Failed, Reason::OutputIncomplete, why.clone()),
        (None, Some(f)) => (AttemptOutcome::Failed, Reason::WorkerFailed, f.message.clone()),
        (None, None) if env.deadline_passed() => (
            AttemptOutcome::DeadlineExceeded,
            Reason::DeadlineExceeded,
            "the deadline passed while the worker ran".into(),
        ),
        (None, None) if env.suspended() => (
            AttemptOutcome::Suspended,
            Reason::Suspended,
            "suspended: terminating the worker".into(),
        ),
        (None, None) => match current {
            None if env.now.duration_since(ms.attempt_start_time.unwrap_or(env.now)).as_secs() >= env.ctx.launch_grace.as_secs() as i64 => {
                (
                    AttemptOutcome::Failed,
                    Reason::InstanceLost,
                    format!(
                        "instance {} disappeared without writing _success",
                        ms.instance_id.clone().unwrap_or_default()
                    ),
                )
            }
            Some(i) if !i.state.is_live() => (
                AttemptOutcome::Failed,
                Reason::InstanceLost,
                format!("instance {} is {} without having written _success", i.id, i.state.as_str()),
            ),
            _ => return Next::Done,
        },
    };
    let kind = if outcome == AttemptOutcome::Succeeded {
        NoteKind::Normal
    } else {
        NoteKind::Warning
    };
    out.note(kind, reason, format!("{media}: {message}"));
    ms.outcome = Some(outcome);
    ms.reason = Some(reason.as_str().into());
    ms.message = Some(message);
    ms.phase = MediaPhase::Terminating;
    Next::Again
}

/// Terminating: waits until EC2 confirms the instance terminated, then the outcome decides:
/// Succeeded, a retry (back to Pending), Failed, or Pending again after a suspend.
fn terminating(env: &Env, ms: &mut MediaStatus, current: Option<&Instance>, out: &mut Out) -> Next {
    let media = ms.media_type.as_str().to_string();
    if let Some(i) = current
        && i.state != InstanceState::Terminated
    {
        ms.instance_state = Some(i.state.as_str().into());
        if i.state.needs_terminate() {
            out.terminate.push(i.id.clone());
        }
        return Next::Done;
    }
    // An instance not listed may only be listed late (EC2 is eventually consistent: a launch
    // of a moment ago, seen or not): within the launch grace, absence proves nothing yet.
    let launched_lately = ms
        .attempt_start_time
        .is_some_and(|t| env.now.duration_since(t).as_secs() < env.ctx.launch_grace.as_secs() as i64);
    if current.is_none() && launched_lately {
        return Next::Done;
    }
    ms.instance_state = ms.instance_id.as_ref().map(|_| InstanceState::Terminated.as_str().into());
    match ms.outcome {
        Some(AttemptOutcome::Succeeded) => {
            ms.phase = MediaPhase::Succeeded;
            out.note(
                NoteKind::Normal,
                Reason::Succeeded,
                format!("{media}: exported to {}", ms.s3_uri.clone().unwrap_or_default()),
            );
        }
        Some(AttemptOutcome::Failed) => {
            ms.failed_attempts += 1;
            if ms.failed_attempts <= env.dd.spec.backoff_limit && !env.deadline_passed() {
                out.note(
                    NoteKind::Warning,
                    Reason::Retrying,
                    format!(
                        "{media}: attempt {} failed ({}); retrying ({} of {} retries)",
                        ms.attempt,
                        ms.message.clone().unwrap_or_default(),
                        ms.failed_attempts,
                        env.dd.spec.backoff_limit
                    ),
                );
                clear_attempt(ms);
                ms.phase = MediaPhase::Pending;
            } else {
                ms.phase = MediaPhase::Failed;
                out.note(
                    NoteKind::Warning,
                    Reason::Failed,
                    format!(
                        "{media}: failed after {} attempt(s): {}",
                        ms.attempt,
                        ms.message.clone().unwrap_or_default()
                    ),
                );
            }
        }
        Some(AttemptOutcome::DeadlineExceeded) => {
            ms.phase = MediaPhase::Failed;
            ms.reason = Some(Reason::DeadlineExceeded.as_str().into());
            out.note(
                NoteKind::Warning,
                Reason::DeadlineExceeded,
                format!("{media}: the deadline passed; worker terminated"),
            );
        }
        Some(AttemptOutcome::Suspended) | None => {
            clear_attempt(ms);
            ms.phase = MediaPhase::Pending;
            ms.reason = Some(Reason::Suspended.as_str().into());
            ms.message = Some("suspended; resumes with a new attempt".into());
            if env.suspended() {
                return Next::Done;
            }
        }
    }
    Next::Again
}

/// Succeeded or Failed: only the staged credentials are left to delete.
fn ended(env: &Env, ms: &mut MediaStatus, out: &mut Out) -> Next {
    let media = ms.media_type.as_str().to_string();
    if ms.credentials_staged {
        out.delete_parameters.extend(env.ctx.staged_parameters(env.uid, &media));
        ms.credentials_staged = false;
    }
    Next::Done
}

fn record_output(ms: &mut MediaStatus, output: &super::Output) {
    ms.files = Some(output.files);
    ms.bytes = Some(output.bytes);
    ms.rows = output.rows.or(ms.rows);
}

/// Builds the full RunInstances request for the current attempt, from the settings a launch
/// is allowed with.
fn launch_request(env: &Env, ms: &MediaStatus, settings: &LaunchSettings) -> Result<LaunchRequest, String> {
    let media = ms.media_type.as_str();
    let token = ms.token.clone().ok_or("no token recorded")?;
    let meta = &env.dd.metadata;
    let name = meta.name.clone().unwrap_or_default();
    let mut t: BTreeMap<String, String> = env.dd.spec.instance.tags.clone();
    t.insert(
        "Name".into(),
        format!("datadump-{name}-{media}-{}", ms.attempt).chars().take(255).collect(),
    );
    t.insert(tags::MANAGED_BY.into(), env.ctx.managed_by.clone());
    t.insert(tags::NAMESPACE.into(), meta.namespace.clone().unwrap_or_default());
    t.insert(tags::NAME.into(), name);
    t.insert(tags::UID.into(), env.uid.into());
    t.insert(tags::MEDIA_TYPE.into(), media.into());
    t.insert(tags::ATTEMPT.into(), ms.attempt.to_string());
    t.insert(tags::TOKEN.into(), token.clone());
    let parameter = settings.worker_parameter(env, media);
    let client_identity = settings
        .client_certificate
        .then(|| env.ctx.client_identity_parameter(env.uid, media));
    let region = env.ctx.region.clone();
    let job = crate::job::WorkerJob {
        spec: &env.dd.spec,
        media_type: &ms.media_type,
        dump_date: env.date,
        attempt: ms.attempt,
        token: &token,
        deadline: settings.deadline,
        ssm_parameter: &parameter,
        region: &region,
    };
    let mut job = crate::job::build(&job).map_err(|e| e.to_string())?;
    // only the parameter's name; the CA bundle is read when launching (`act::perform`)
    job.client_identity_parameter = client_identity;
    let arch = settings.architecture;
    if let super::Launcher::Bootstrap(arches) = &env.ctx.launcher
        && !arches.contains(&arch)
    {
        return Err(format!(
            "no worker binary for {arch} instances: the controller's --worker-binaries-dir has no datadump-worker-{arch}; add it (the controller image carries both) or choose an instance type of another architecture",
            arch = arch.as_str()
        ));
    }
    Ok(LaunchRequest {
        media_type: media.into(),
        attempt: ms.attempt,
        token,
        instance: settings.instance.clone(),
        tags: t,
        job,
        arch,
        user_data: String::new(),
    })
}
