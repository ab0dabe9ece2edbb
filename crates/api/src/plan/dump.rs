//! The dump as a whole: finalizer, validation, the deadline, each media type's step, then
//! phase, conditions and the summary. Pure, no I/O.
//!
//! [`plan`] reads top to bottom as the list of decisions it makes, one function each:
//! [`cleanup`] (in its own module) or [`add_finalizer`] first; then [`check_spec`],
//! [`Timing::of`], [`launch_gate`] (with [`requester_pays`]) and [`step_media`] with
//! [`terminate_removed`]; then [`record_start`], [`summarize`] (the status summary, in its own
//! module), [`release_credentials`], [`dump_notes`], [`batch_actions`], [`requeue`],
//! [`write_dataset_card`] and [`notify`].

use std::time::Duration;

use jiff::Timestamp;

use super::cleanup::cleanup;
use super::media::{self, Env, Hold, Launch, LaunchSettings, Out};
use super::summary::summarize;
use super::{Action, FINALIZER, Note, NoteKind, Observed, Plan, PlanContext, Reason};
use crate::{
    DataDump, DataDumpStatus, DumpPhase, FieldError, MediaPhase, MediaStatus, ResolvedInstance, SPEC_VALID, resolve_instance, validate,
};
use datadump_contract::media_prefix;

/// Decides what to do with one DataDump given what was observed, at `now`.
pub fn plan(dd: &DataDump, obs: &Observed, ctx: &PlanContext, now: Timestamp) -> Plan {
    let uid = dd.metadata.uid.clone().unwrap_or_default();
    let has_finalizer = dd.metadata.finalizers.iter().flatten().any(|f| f == FINALIZER);
    if dd.metadata.deletion_timestamp.is_some() {
        return cleanup(dd, obs, ctx, &uid, has_finalizer, now);
    }
    if !has_finalizer {
        return add_finalizer(ctx);
    }

    let old = dd.status.clone().unwrap_or_default();
    let mut status = old.clone();
    status.observed_generation = dd.metadata.generation;
    let spec = check_spec(dd, ctx, &mut status);
    let date = date_of(dd, now);
    let timing = Timing::of(&status, dd, now);
    let (launch, payment) = launch_gate(dd, &old, &status, ctx, &spec, &timing, obs.architecture, now);
    let env = Env {
        dd,
        uid: &uid,
        ctx,
        now,
        date: &date,
        launch,
    };

    let mut out = Out::default();
    status.media = step_media(&env, &old, obs, &mut out);
    terminate_removed(obs, &status.media, &mut out);
    record_start(&mut status, dd, &date, now);
    summarize(&mut status, dd, spec.validity.as_ref().err(), spec.resolved.is_some(), now);
    release_credentials(&mut status, ctx, &uid, &mut out);
    let notes = dump_notes(&old, &status, spec.validity.as_ref().err(), std::mem::take(&mut out.notes));
    let mut actions = batch_actions(payment, out);
    let mut requeue_after = requeue(&status, &actions, payment, ctx, timing.deadline, now);
    // Side effects of the end run only once the terminal status is persisted.
    write_dataset_card(dd, &old, &mut status, &date, ctx, &mut actions, &mut requeue_after);
    notify(dd, &old, &mut status, now, &mut actions, &mut requeue_after);
    Plan {
        actions,
        status: Some(status),
        notes,
        requeue_after,
    }
}

/// A dump without the finalizer gets it before anything else happens.
fn add_finalizer(ctx: &PlanContext) -> Plan {
    Plan {
        actions: vec![Action::AddFinalizer],
        status: None,
        notes: vec![],
        requeue_after: Some(ctx.fast_requeue),
    }
}

/// The spec as the planner judges it this pass.
struct SpecCheck {
    /// Every rule the spec breaks, with its field.
    validity: Result<(), Vec<FieldError>>,
    /// The instance settings (spec, site default, built-in), when they resolve.
    resolved: Option<ResolvedInstance>,
}

/// Validates the spec and resolves its instance settings; a valid spec of a dump that has not
/// ended records its resolved settings in `status.instance`.
fn check_spec(dd: &DataDump, ctx: &PlanContext, status: &mut DataDumpStatus) -> SpecCheck {
    let validity = validate(&dd.spec, &ctx.site).and_then(|()| match (ctx.launch_check)(&dd.spec) {
        Some(e) => Err(vec![e]),
        None => Ok(()),
    });
    let resolved = resolve_instance(&dd.spec.instance, &ctx.site);
    if let Some(r) = &resolved
        && validity.is_ok()
        && status.completion_time.is_none()
    {
        status.instance = Some(r.clone());
    }
    SpecCheck { validity, resolved }
}

/// The dump's deadline as this plan sees it.
struct Timing {
    /// `startTime + spec.timeout`, once the dump started (from the persisted status).
    deadline: Option<Timestamp>,
    /// The deadline has passed.
    passed: bool,
    /// The deadline a worker launched now gets: the dump's, or for a dump about to start,
    /// counted from now.
    for_launch: Option<Timestamp>,
}

impl Timing {
    /// Decides the deadline from the recorded start time and `spec.timeout`.
    fn of(status: &DataDumpStatus, dd: &DataDump, now: Timestamp) -> Timing {
        let deadline = deadline_after(status.start_time, dd);
        Timing {
            deadline,
            passed: deadline.is_some_and(|d| now >= d),
            for_launch: deadline.or_else(|| deadline_after(Some(now), dd)),
        }
    }
}

/// `spec.timeout` after `start`, if the dump started (and the sum fits).
fn deadline_after(start: Option<Timestamp>, dd: &DataDump) -> Option<Timestamp> {
    let timeout: Duration = dd.spec.timeout.into();
    start.and_then(|s| s.checked_add(jiff::SignedDuration::try_from(timeout).ok()?).ok())
}

/// Whether attempts may start and launch in this plan, and with what, or what holds them (the
/// first [`Hold`] that applies, in its order); and where requester pays stands, asked only of
/// a dump that nothing else holds.
#[allow(clippy::too_many_arguments)]
fn launch_gate<'a>(
    dd: &'a DataDump,
    old: &DataDumpStatus,
    status: &DataDumpStatus,
    ctx: &PlanContext,
    spec: &'a SpecCheck,
    timing: &Timing,
    architecture: Option<datadump_contract::Arch>,
    now: Timestamp,
) -> (Launch<'a>, Payment) {
    let held = |hold| (Launch::Held(hold), Payment::Settled);
    if timing.passed {
        return held(Hold::DeadlinePassed {
            suspended: dd.spec.suspend,
        });
    }
    if dd.spec.suspend {
        return held(Hold::Suspended);
    }
    if spec.validity.is_err() {
        return held(Hold::InvalidSpec);
    }
    let Some(instance) = &spec.resolved else {
        return held(Hold::Unresolved);
    };
    if status.completion_time.is_some() {
        return held(Hold::Ended);
    }
    let payment = requester_pays(dd, old, ctx, now);
    if payment != Payment::Settled {
        return (Launch::Held(Hold::RequesterPays), payment);
    }
    // A valid spec has exactly one credential source, and a timeout (at most 8760h) that fits.
    let (Some(credentials), Some(deadline)) = (dd.spec.database.credentials(), timing.for_launch) else {
        return held(Hold::InvalidSpec);
    };
    let settings = LaunchSettings {
        instance,
        credentials,
        client_certificate: dd.spec.database.client_certificate().is_some(),
        deadline,
        architecture: architecture.unwrap_or_else(|| datadump_contract::Arch::of_instance_type(&instance.instance_type)),
    };
    (Launch::Allowed(settings), Payment::Settled)
}

/// Decides the media entries and steps each one: one entry per media type in the spec, in its
/// order, with its S3 location, advanced by [`media::step`] on its own instances and objects.
/// Entries of removed media types are dropped (their instances go through
/// [`terminate_removed`]). A name that is no SQL identifier gets no entry (the status schema
/// would refuse the whole status, SpecValid=False included; the condition names the field).
fn step_media(env: &Env, old: &DataDumpStatus, obs: &Observed, out: &mut Out) -> Vec<MediaStatus> {
    let spec = &env.dd.spec;
    let mut media: Vec<MediaStatus> = Vec::new();
    for m in spec.media_types.iter().filter(|m| datadump_contract::is_identifier(m.as_str())) {
        if !media.iter().any(|x| x.media_type == *m) {
            media.push(old.media(m.as_str()).cloned().unwrap_or_else(|| MediaStatus::new(m.clone())));
        }
    }
    for ms in &mut media {
        ms.s3_uri = Some(format!(
            "s3://{}/{}",
            spec.destination.bucket,
            media_prefix(&spec.destination.prefix, env.date, ms.media_type.as_str())
        ));
        let instances: Vec<_> = obs.instances.iter().filter(|i| i.media_type == ms.media_type.as_str()).collect();
        media::step(env, ms, obs.objects.get(ms.media_type.as_str()), &instances, out);
    }
    media
}

/// Instances of media types no longer in the spec, and strays, are terminated.
fn terminate_removed(obs: &Observed, media: &[MediaStatus], out: &mut Out) {
    for i in &obs.instances {
        if !media.iter().any(|m| m.media_type.as_str() == i.media_type) && i.state.needs_terminate() {
            out.terminate.push(i.id.clone());
        }
    }
}

/// The first attempt fixes `startTime` and `dumpDate`; `deadline` follows from `startTime`.
fn record_start(status: &mut DataDumpStatus, dd: &DataDump, date: &str, now: Timestamp) {
    if status.start_time.is_none() && status.media.iter().any(|m| m.attempt > 0) {
        status.start_time = Some(now);
        status.dump_date = Some(date.to_string());
    }
    status.deadline = deadline_after(status.start_time, dd);
}

/// A dump that ended starts nothing again: no credentials stay staged, also not those of a
/// media type a suspend sent back to Pending (the steps release only terminal media types').
fn release_credentials(status: &mut DataDumpStatus, ctx: &PlanContext, uid: &str, out: &mut Out) {
    if status.phase.is_terminal() {
        for m in status.media.iter_mut().filter(|m| m.credentials_staged) {
            out.delete_parameters.extend(ctx.staged_parameters(uid, m.media_type.as_str()));
            m.credentials_staged = false;
        }
    }
}

/// The Events of this plan: the media types' (`steps`), then `Complete` or `DumpFailed` when
/// the phase became terminal, then `InvalidSpec` when the spec just became invalid.
fn dump_notes(old: &DataDumpStatus, status: &DataDumpStatus, errors: Option<&Vec<FieldError>>, steps: Vec<Note>) -> Vec<Note> {
    let mut notes = steps;
    if old.phase != status.phase {
        match status.phase {
            DumpPhase::Succeeded => notes.push(Note {
                kind: NoteKind::Normal,
                reason: Reason::Complete,
                message: status.message.clone().unwrap_or_default(),
            }),
            DumpPhase::Failed => notes.push(Note {
                kind: NoteKind::Warning,
                reason: Reason::DumpFailed,
                message: status.message.clone().unwrap_or_default(),
            }),
            _ => {}
        }
    }
    if let Some(errors) = errors
        && old.condition(SPEC_VALID).is_none_or(|c| c.status != "False")
    {
        notes.push(Note {
            kind: NoteKind::Warning,
            reason: Reason::InvalidSpec,
            message: crate::validate::summarize(errors),
        });
    }
    notes
}

/// The order of the actions the steps asked for: `EnsureRequesterPays`, `StageCredentials…`,
/// one batched `Terminate` (sorted, without duplicates), one `DeleteCredentials`, `Launch…`.
fn batch_actions(payment: Payment, mut out: Out) -> Vec<Action> {
    let mut actions = Vec::new();
    if payment == Payment::Check {
        actions.push(Action::EnsureRequesterPays);
    }
    actions.extend(out.stage);
    if !out.terminate.is_empty() {
        out.terminate.sort();
        out.terminate.dedup();
        actions.push(Action::Terminate {
            instance_ids: out.terminate,
        });
    }
    if !out.delete_parameters.is_empty() {
        actions.push(Action::DeleteCredentials {
            parameters: out.delete_parameters,
        });
    }
    actions.extend(out.launch);
    actions
}

/// Once the persisted phase is Succeeded, the dataset card is written once (and looked at
/// again soon).
fn write_dataset_card(
    dd: &DataDump,
    old: &DataDumpStatus,
    status: &mut DataDumpStatus,
    date: &str,
    ctx: &PlanContext,
    actions: &mut Vec<Action>,
    requeue_after: &mut Option<Duration>,
) {
    if old.phase == DumpPhase::Succeeded && status.phase == DumpPhase::Succeeded && old.dataset_card.is_none() {
        actions.push(Action::WriteDatasetCard);
        status.dataset_card = Some(format!("s3://{}/{}", dd.spec.destination.bucket, crate::keys::card_key(dd, date)));
        *requeue_after = Some(ctx.fast_requeue);
    }
}

/// Once the persisted phase is terminal and Slack is configured, the message is sent (the
/// planned status says so; acting reverts it on failure); failed tries back off 2^attempts
/// seconds, up to [`super::MAX_NOTIFY_ATTEMPTS`].
fn notify(
    dd: &DataDump,
    old: &DataDumpStatus,
    status: &mut DataDumpStatus,
    now: Timestamp,
    actions: &mut Vec<Action>,
    requeue_after: &mut Option<Duration>,
) {
    if !old.phase.is_terminal() || dd.spec.notification.as_ref().is_none_or(|n| n.slack.is_none()) {
        return;
    }
    let n = old.notification.clone().unwrap_or_default();
    if n.sent || n.attempts >= super::MAX_NOTIFY_ATTEMPTS {
        return;
    }
    // Failed tries back off: 2^attempts seconds after the last one, at most ~8.5 minutes.
    let wait = jiff::SignedDuration::from_secs(1 << n.attempts.min(9));
    let due = n.last_attempt_time.map(|t| t + wait);
    match due {
        Some(due) if due > now => {
            *requeue_after = Some(Duration::from_secs(due.duration_since(now).as_secs().max(1) as u64));
        }
        _ => {
            actions.push(Action::Notify);
            status.notification = Some(crate::NotificationStatus { sent: true, ..n });
        }
    }
}

/// Where `spec.destination.requesterPays` stands for a dump that may launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Payment {
    /// Not asked for, or the bucket makes requesters pay: launches may go ahead.
    Settled,
    /// Read (and if need be set) the bucket's setting now; nothing launches before.
    Check,
    /// The last try was refused: nothing launches, try again after this long.
    RetryIn(Duration),
}

/// Requester pays is settled before the first launch: checked at once, and after a refusal
/// again every poll interval (the status records when it was last tried).
fn requester_pays(dd: &DataDump, old: &DataDumpStatus, ctx: &PlanContext, now: Timestamp) -> Payment {
    if !dd.spec.destination.requester_pays {
        return Payment::Settled;
    }
    match &old.requester_pays {
        Some(rp) if rp.enabled => Payment::Settled,
        Some(rp) => {
            let since = now.duration_since(rp.checked_time).as_secs().max(0) as u64;
            match ctx.poll_interval.as_secs().checked_sub(since) {
                Some(left) if left > 0 => Payment::RetryIn(Duration::from_secs(left)),
                _ => Payment::Check,
            }
        }
        None => Payment::Check,
    }
}

/// The dump's DATE folder: fixed in status once it started; before that `spec.date`, else
/// the UTC date at `now`. Observe looks where the planner will write.
pub fn date_of(dd: &DataDump, now: Timestamp) -> String {
    dd.status
        .as_ref()
        .and_then(|s| s.dump_date.clone())
        .or_else(|| dd.spec.date.clone().filter(|d| !crate::validate::date_is_invalid(d)))
        .unwrap_or_else(|| dump_date(now))
}

/// The DATE folder for a dump starting at `now` (UTC).
pub fn dump_date(now: Timestamp) -> String {
    now.strftime("%Y-%m-%d").to_string()
}

/// When to look again: `fast_requeue` while there are actions or a media type is Launching or
/// Terminating, `poll_interval` while one is Running, never later than a second after the
/// deadline, and no later than a refused requester-pays check is due again.
fn requeue(
    status: &DataDumpStatus,
    actions: &[Action],
    payment: Payment,
    ctx: &PlanContext,
    deadline: Option<Timestamp>,
    now: Timestamp,
) -> Option<Duration> {
    let busy = |p| status.media.iter().any(|m| m.phase == p);
    let mut next = if !actions.is_empty() || busy(MediaPhase::Launching) || busy(MediaPhase::Terminating) {
        Some(ctx.fast_requeue)
    } else if busy(MediaPhase::Running) {
        Some(ctx.poll_interval)
    } else {
        None
    };
    // Wake up right at the deadline.
    if let (Some(n), Some(d)) = (next, deadline) {
        let until = Duration::from_secs(d.duration_since(now).as_secs().max(0) as u64 + 1);
        next = Some(n.min(until));
    }
    if let Payment::RetryIn(wait) = payment {
        next = Some(next.map_or(wait, |r| r.min(wait)));
    }
    next
}
