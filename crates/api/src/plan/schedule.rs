//! The schedule planner: every DataDumpSchedule decision, as one pure function
//! `plan_schedule(&DataDumpSchedule, &[OwnedDump], &SiteDefaults, now) -> SchedulePlan`. No
//! I/O, no clock reads. The schedule controller lists the schedule's DataDumps, calls it,
//! performs its actions in order, records its Events and writes its status.
//!
//! The rules, as a CronJob's:
//! - the due times are the schedule's times after `status.lastScheduleTime` (else the
//!   schedule's creation) up to `now`; only the latest one may start (at most one catch-up),
//!   and an Event says how many were missed;
//! - with `startingDeadlineSeconds`, a latest due time older than that is skipped (recorded in
//!   `status.lastMissedTime`, with a MissedSchedule Event, once);
//! - `Forbid` skips while a DataDump of the schedule is active (the due time stays due, shown
//!   in `status.waitingScheduleTime`, with one AlreadyActive Event),
//!   `Replace` deletes the active ones first, `Allow` runs next to them;
//! - each run's DataDump is named from the schedule and the scheduled time, so creating it twice
//!   (a restart between the create and the status write) finds it already there: a run whose
//!   DataDump exists counts as started;
//! - finished DataDumps beyond the history limits are deleted, oldest first.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::{Note, NoteKind, Reason};
use crate::{
    ConcurrencyPolicy, CronSchedule, DataDumpSchedule, DataDumpScheduleSpec, DataDumpScheduleStatus, DumpPhase, DumpReference, SPEC_VALID,
    SiteDefaults, validate_schedule,
};

/// How many missed times are counted one by one before the count is reported as "more than".
pub const MAX_COUNTED_MISSES: usize = 100;

/// One DataDump the schedule owns, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedDump {
    /// Its name.
    pub name: String,
    /// Its scheduled time (from its annotation), when known.
    pub scheduled_time: Option<Timestamp>,
    /// When it was created.
    pub created: Option<Timestamp>,
    /// Its phase; `None` before its controller wrote a status.
    pub phase: Option<DumpPhase>,
    /// When it reached Succeeded or Failed.
    pub completion_time: Option<Timestamp>,
    /// It is being deleted.
    pub deleting: bool,
}

impl OwnedDump {
    /// Succeeded or Failed.
    pub fn is_finished(&self) -> bool {
        self.phase.is_some_and(DumpPhase::is_terminal)
    }

    /// Still to finish (and not on its way out).
    pub fn is_active(&self) -> bool {
        !self.is_finished() && !self.deleting
    }

    /// The time it stands for: scheduled, else created.
    fn time(&self) -> Option<Timestamp> {
        self.scheduled_time.or(self.created)
    }
}

/// Why a DataDump is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteReason {
    /// `concurrencyPolicy: Replace` and a new run is due.
    Replaced,
    /// Beyond `successfulDumpsHistoryLimit` or `failedDumpsHistoryLimit`.
    HistoryLimit,
}

/// Something the controller must do, in order, before writing the planned status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScheduleAction {
    /// Delete a DataDump of this schedule (a missing one is fine).
    Delete {
        /// Its name.
        name: String,
        /// Why.
        reason: DeleteReason,
    },
    /// Create the run's DataDump from the template (one that already exists is fine: it is
    /// this run's, by its name).
    Create {
        /// The DataDump's name: [`dump_name`].
        name: String,
        /// The time it is scheduled for.
        scheduled_time: Timestamp,
        /// Its DATE folder: the scheduled time's date in the schedule's time zone.
        date: String,
    },
}

/// What to do next.
#[derive(Clone, Debug, PartialEq)]
pub struct SchedulePlan {
    /// Side effects, in order.
    pub actions: Vec<ScheduleAction>,
    /// Events to record on the schedule.
    pub notes: Vec<Note>,
    /// The status to write after the actions succeeded.
    pub status: DataDumpScheduleStatus,
    /// When to look again (the next scheduled time); `None` waits for a change.
    pub requeue_after: Option<Duration>,
}

/// The DataDump name of the run of schedule `schedule` at `t`: `SCHEDULE-YYYYMMDDhhmm`, the
/// scheduled minute in UTC (so a run's name never depends on the time zone's offsets).
pub fn dump_name(schedule: &str, t: Timestamp) -> String {
    format!("{schedule}-{}", t.strftime("%Y%m%d%H%M"))
}

/// Decides what to do with one schedule, given the DataDumps it owns, at `now`.
pub fn plan_schedule(sched: &DataDumpSchedule, dumps: &[OwnedDump], site: &SiteDefaults, now: Timestamp) -> SchedulePlan {
    let pass = Pass::of(sched, dumps, now);
    let mut status = carry_status(&pass);
    let mut out = Out::default();
    record_last_success(&mut status, dumps);
    trim_history(&pass, &mut out);
    let mut active = active_dumps(dumps);
    let cron = check_spec(&pass, site, &mut status, &mut out);
    if let Some(cron) = &cron
        && let Some(due) = due_run(&pass, cron)
    {
        start_due_run(&pass, &due, &mut active, &mut status, &mut out);
    }
    let requeue_after = cron.as_ref().and_then(|c| next_look(&pass, c));
    record_active(&mut status, &active, &out.actions);
    SchedulePlan {
        actions: out.actions,
        notes: out.notes,
        status,
        requeue_after,
    }
}

/// What one plan of a schedule looks at: the schedule, its name, its persisted status, the
/// DataDumps it owns, and the time.
struct Pass<'a> {
    sched: &'a DataDumpSchedule,
    spec: &'a DataDumpScheduleSpec,
    name: String,
    old: DataDumpScheduleStatus,
    dumps: &'a [OwnedDump],
    now: Timestamp,
}

impl<'a> Pass<'a> {
    /// The pass over `sched` at `now`.
    fn of(sched: &'a DataDumpSchedule, dumps: &'a [OwnedDump], now: Timestamp) -> Self {
        Pass {
            sched,
            spec: &sched.spec,
            name: sched.metadata.name.clone().unwrap_or_default(),
            old: sched.status.clone().unwrap_or_default(),
            dumps,
            now,
        }
    }
}

/// What the steps ask for so far: the actions, in order, and the Events.
#[derive(Default)]
struct Out {
    actions: Vec<ScheduleAction>,
    notes: Vec<Note>,
}

/// The run that is due: the latest scheduled time not handled yet.
struct Due {
    /// The scheduled time.
    time: Timestamp,
    /// The latest time already handled (started or skipped), else the schedule's creation.
    earliest: Timestamp,
    /// The run's DataDump name: [`dump_name`].
    run: String,
    /// Scheduled times between `earliest` and `time` that will not run.
    missed: usize,
    /// The run's DATE folder.
    date: String,
}

/// The persisted status carried into this plan: the generation seen, and no waiting run
/// (set again while a due time still waits).
fn carry_status(pass: &Pass) -> DataDumpScheduleStatus {
    let mut status = pass.old.clone();
    status.observed_generation = pass.sched.metadata.generation;
    status.waiting_schedule_time = None;
    status
}

/// `lastSuccessfulTime`: the latest success seen, never going back.
fn record_last_success(status: &mut DataDumpScheduleStatus, dumps: &[OwnedDump]) {
    for d in dumps.iter().filter(|d| d.phase == Some(DumpPhase::Succeeded)) {
        if let Some(t) = d.completion_time
            && status.last_successful_time.is_none_or(|l| l < t)
        {
            status.last_successful_time = Some(t);
        }
    }
}

/// History limits: the newest N finished DataDumps of each outcome stay, older ones are deleted.
fn trim_history(pass: &Pass, out: &mut Out) {
    for (phase, limit) in [
        (DumpPhase::Succeeded, pass.spec.successful_dumps_history_limit),
        (DumpPhase::Failed, pass.spec.failed_dumps_history_limit),
    ] {
        let mut finished: Vec<&OwnedDump> = pass.dumps.iter().filter(|d| d.phase == Some(phase) && !d.deleting).collect();
        finished.sort_by(|a, b| (b.time(), &b.name).cmp(&(a.time(), &a.name)));
        for d in finished.into_iter().skip(limit as usize) {
            out.actions.push(ScheduleAction::Delete {
                name: d.name.clone(),
                reason: DeleteReason::HistoryLimit,
            });
        }
    }
}

/// The DataDumps still to finish, oldest first.
fn active_dumps(dumps: &[OwnedDump]) -> Vec<&OwnedDump> {
    let mut active: Vec<&OwnedDump> = dumps.iter().filter(|d| d.is_active()).collect();
    active.sort_by(|a, b| (a.time(), &a.name).cmp(&(b.time(), &b.name)));
    active
}

/// Validates the schedule and its template and sets SpecValid (an InvalidSpec Event when it
/// just became invalid); the parsed schedule when it is valid.
fn check_spec(pass: &Pass, site: &SiteDefaults, status: &mut DataDumpScheduleStatus, out: &mut Out) -> Option<CronSchedule> {
    let validity = validate_schedule(Some(&pass.name), pass.spec, site);
    let cron = CronSchedule::parse(&pass.spec.schedule, pass.spec.time_zone.as_deref()).ok();
    set_condition(status, &pass.old, validity.as_ref().err(), pass.now);
    if let Err(errors) = &validity
        && pass.old.condition(SPEC_VALID).is_none_or(|c| c.status != "False")
    {
        out.notes.push(Note {
            kind: NoteKind::Warning,
            reason: Reason::InvalidSpec,
            message: crate::validate::summarize(errors),
        });
    }
    cron.filter(|_| validity.is_ok())
}

/// The run due now, if any and the schedule is not suspended: the latest scheduled time at or
/// before `now` that is after every time already handled (started, or skipped for a passed
/// deadline).
fn due_run(pass: &Pass, cron: &CronSchedule) -> Option<Due> {
    let created = pass.sched.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(pass.now);
    let earliest = match (pass.old.last_schedule_time, pass.old.last_missed_time) {
        (None, None) => created,
        (a, b) => a.max(b).unwrap_or(created),
    };
    let time = cron.latest_at_or_before(pass.now).filter(|t| *t > earliest)?;
    if pass.spec.suspend {
        return None;
    }
    Some(Due {
        time,
        earliest,
        run: dump_name(&pass.name, time),
        missed: count_between(cron, earliest, time),
        date: cron.date_of(time),
    })
}

/// The due run starts unless its DataDump exists (created before a restart that lost the
/// status write), it is past `startingDeadlineSeconds`, or `Forbid` makes it wait.
fn start_due_run(pass: &Pass, due: &Due, active: &mut Vec<&OwnedDump>, status: &mut DataDumpScheduleStatus, out: &mut Out) {
    let too_late = pass
        .spec
        .starting_deadline_seconds
        .is_some_and(|s| pass.now.duration_since(due.time) > SignedDuration::from_secs(s.max(0)));
    if pass.dumps.iter().any(|d| d.name == due.run) {
        status.last_schedule_time = Some(due.time);
    } else if too_late {
        skip_missed(pass, due, status, out);
    } else if pass.spec.concurrency_policy == ConcurrencyPolicy::Forbid && !active.is_empty() {
        wait_for_active(pass, due, active, status, out);
    } else {
        if pass.spec.concurrency_policy == ConcurrencyPolicy::Replace {
            replace_active(due, active, out);
        }
        create_run(due, status, out);
    }
}

/// A run past `startingDeadlineSeconds` is skipped: recorded in `lastMissedTime`, with a
/// MissedSchedule Event.
fn skip_missed(pass: &Pass, due: &Due, status: &mut DataDumpScheduleStatus, out: &mut Out) {
    status.last_missed_time = Some(due.time);
    out.notes.push(Note {
        kind: NoteKind::Warning,
        reason: Reason::MissedSchedule,
        message: format!(
            "missed the run due at {}{}: it is more than startingDeadlineSeconds ({}s) late, so none starts",
            due.time,
            missed_suffix(due.missed),
            pass.spec.starting_deadline_seconds.unwrap_or_default()
        ),
    });
}

/// Under `Forbid` with a DataDump still active the run waits (`waitingScheduleTime`), with one
/// AlreadyActive Event.
fn wait_for_active(pass: &Pass, due: &Due, active: &[&OwnedDump], status: &mut DataDumpScheduleStatus, out: &mut Out) {
    status.waiting_schedule_time = Some(due.time);
    if pass.old.waiting_schedule_time != Some(due.time) {
        out.notes.push(Note {
            kind: NoteKind::Normal,
            reason: Reason::AlreadyActive,
            message: format!(
                "the run due at {} waits: {} is still active (concurrencyPolicy Forbid)",
                due.time,
                active.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")
            ),
        });
    }
}

/// Under `Replace` the active DataDumps are deleted before the run starts.
fn replace_active(due: &Due, active: &mut Vec<&OwnedDump>, out: &mut Out) {
    for d in active.iter() {
        out.actions.push(ScheduleAction::Delete {
            name: d.name.clone(),
            reason: DeleteReason::Replaced,
        });
        out.notes.push(Note {
            kind: NoteKind::Normal,
            reason: Reason::Replaced,
            message: format!(
                "deleted the active DataDump {} for the run due at {} (concurrencyPolicy Replace)",
                d.name, due.time
            ),
        });
    }
    active.clear();
}

/// The run's DataDump is created (with a MissedSchedule Event for the earlier times that will
/// not run) and `lastScheduleTime` records it.
fn create_run(due: &Due, status: &mut DataDumpScheduleStatus, out: &mut Out) {
    if due.missed > 0 {
        out.notes.push(Note {
            kind: NoteKind::Warning,
            reason: Reason::MissedSchedule,
            message: format!(
                "{} earlier scheduled time(s) since {} were missed; only the latest, {}, runs",
                count_text(due.missed),
                due.earliest,
                due.time
            ),
        });
    }
    out.notes.push(Note {
        kind: NoteKind::Normal,
        reason: Reason::Created,
        message: format!("created DataDump {} for {} (DATE {})", due.run, due.time, due.date),
    });
    out.actions.push(ScheduleAction::Create {
        name: due.run.clone(),
        scheduled_time: due.time,
        date: due.date.clone(),
    });
    status.last_schedule_time = Some(due.time);
}

/// When to look again: at the next scheduled time (between 1s and a day from now); never while
/// suspended.
fn next_look(pass: &Pass, cron: &CronSchedule) -> Option<Duration> {
    if pass.spec.suspend {
        return None;
    }
    cron.next_after(pass.now)
        .map(|next| Duration::from_millis(next.duration_since(pass.now).as_millis().clamp(1000, 24 * 3600 * 1000) as u64))
}

/// `status.active`: the running DataDumps not replaced, and the one being created.
fn record_active(status: &mut DataDumpScheduleStatus, active: &[&OwnedDump], actions: &[ScheduleAction]) {
    let mut refs: Vec<DumpReference> = active
        .iter()
        .map(|d| DumpReference {
            name: d.name.clone(),
            scheduled_time: d.scheduled_time,
        })
        .collect();
    for a in actions {
        if let ScheduleAction::Create { name, scheduled_time, .. } = a {
            refs.push(DumpReference {
                name: name.clone(),
                scheduled_time: Some(*scheduled_time),
            });
        }
    }
    status.active_count = refs.len() as u32;
    status.active = refs;
}

/// How many scheduled times lie strictly between `after` and `before` (counted up to
/// [`MAX_COUNTED_MISSES`] + 1).
fn count_between(cron: &CronSchedule, after: Timestamp, before: Timestamp) -> usize {
    let mut n = 0;
    let mut t = after;
    while let Some(next) = cron.next_after(t) {
        if next >= before || n > MAX_COUNTED_MISSES {
            break;
        }
        n += 1;
        t = next;
    }
    n
}

/// A count of missed times as the Events say it (`more than 100` beyond the counted ones).
fn count_text(n: usize) -> String {
    if n > MAX_COUNTED_MISSES {
        format!("more than {MAX_COUNTED_MISSES}")
    } else {
        n.to_string()
    }
}

/// ` (and N earlier time(s))` when times were missed before the latest one, else nothing.
fn missed_suffix(missed: usize) -> String {
    if missed == 0 {
        String::new()
    } else {
        format!(" (and {} earlier time(s))", count_text(missed))
    }
}

/// SpecValid, whose transition time moves only when its status does.
fn set_condition(
    status: &mut DataDumpScheduleStatus,
    old: &DataDumpScheduleStatus,
    errors: Option<&Vec<crate::FieldError>>,
    now: Timestamp,
) {
    let (value, reason, message) = match errors {
        None => (
            "True",
            "Valid",
            "the schedule and its template passed the controller's checks".to_string(),
        ),
        Some(e) => ("False", "InvalidSpec", crate::validate::summarize(e)),
    };
    let since = old
        .condition(SPEC_VALID)
        .filter(|c| c.status == value)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    let condition = Condition {
        type_: SPEC_VALID.into(),
        status: value.into(),
        reason: reason.into(),
        message: message.chars().take(32 * 1024).collect(),
        last_transition_time: since,
        observed_generation: status.observed_generation,
    };
    status.conditions.retain(|c| c.type_ != SPEC_VALID);
    status.conditions.push(condition);
}
