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
    ConcurrencyPolicy, CronSchedule, DataDumpSchedule, DataDumpScheduleStatus, DumpPhase, DumpReference, SPEC_VALID, SiteDefaults,
    validate_schedule,
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
    let spec = &sched.spec;
    let name = sched.metadata.name.clone().unwrap_or_default();
    let old = sched.status.clone().unwrap_or_default();
    let mut status = old.clone();
    status.observed_generation = sched.metadata.generation;
    // set again below while a due time still waits
    status.waiting_schedule_time = None;
    let mut actions = Vec::new();
    let mut notes = Vec::new();

    // lastSuccessfulTime: the latest success seen, never going back
    for d in dumps.iter().filter(|d| d.phase == Some(DumpPhase::Succeeded)) {
        if let Some(t) = d.completion_time
            && status.last_successful_time.is_none_or(|l| l < t)
        {
            status.last_successful_time = Some(t);
        }
    }

    // history limits: the newest N of each outcome stay
    for (phase, limit) in [
        (DumpPhase::Succeeded, spec.successful_dumps_history_limit),
        (DumpPhase::Failed, spec.failed_dumps_history_limit),
    ] {
        let mut finished: Vec<&OwnedDump> = dumps.iter().filter(|d| d.phase == Some(phase) && !d.deleting).collect();
        finished.sort_by(|a, b| (b.time(), &b.name).cmp(&(a.time(), &a.name)));
        for d in finished.into_iter().skip(limit as usize) {
            actions.push(ScheduleAction::Delete {
                name: d.name.clone(),
                reason: DeleteReason::HistoryLimit,
            });
        }
    }

    let mut active: Vec<&OwnedDump> = dumps.iter().filter(|d| d.is_active()).collect();
    active.sort_by(|a, b| (a.time(), &a.name).cmp(&(b.time(), &b.name)));

    let validity = validate_schedule(Some(&name), spec, site);
    let cron = CronSchedule::parse(&spec.schedule, spec.time_zone.as_deref()).ok();
    set_condition(&mut status, &old, validity.as_ref().err(), now);
    let mut requeue_after = None;
    match cron.filter(|_| validity.is_ok()) {
        None => {
            if let Err(errors) = &validity
                && old.condition(SPEC_VALID).is_none_or(|c| c.status != "False")
            {
                notes.push(Note {
                    kind: NoteKind::Warning,
                    reason: Reason::InvalidSpec,
                    message: crate::validate::summarize(errors),
                });
            }
        }
        Some(cron) => {
            let created = sched.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(now);
            // the times already handled: started, or skipped for a passed deadline
            let earliest = match (old.last_schedule_time, old.last_missed_time) {
                (None, None) => created,
                (a, b) => a.max(b).unwrap_or(created),
            };
            let due = cron.latest_at_or_before(now).filter(|t| *t > earliest);
            if let Some(due) = due
                && !spec.suspend
            {
                let run = dump_name(&name, due);
                let missed = count_between(&cron, earliest, due);
                let too_late = spec
                    .starting_deadline_seconds
                    .is_some_and(|s| now.duration_since(due) > SignedDuration::from_secs(s.max(0)));
                if dumps.iter().any(|d| d.name == run) {
                    // created before a restart that lost the status write
                    status.last_schedule_time = Some(due);
                } else if too_late {
                    status.last_missed_time = Some(due);
                    notes.push(Note {
                        kind: NoteKind::Warning,
                        reason: Reason::MissedSchedule,
                        message: format!(
                            "missed the run due at {due}{}: it is more than startingDeadlineSeconds ({}s) late, so none starts",
                            missed_suffix(missed),
                            spec.starting_deadline_seconds.unwrap_or_default()
                        ),
                    });
                } else if spec.concurrency_policy == ConcurrencyPolicy::Forbid && !active.is_empty() {
                    status.waiting_schedule_time = Some(due);
                    if old.waiting_schedule_time != Some(due) {
                        notes.push(Note {
                            kind: NoteKind::Normal,
                            reason: Reason::AlreadyActive,
                            message: format!(
                                "the run due at {due} waits: {} is still active (concurrencyPolicy Forbid)",
                                active.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")
                            ),
                        });
                    }
                } else {
                    if spec.concurrency_policy == ConcurrencyPolicy::Replace {
                        for d in &active {
                            actions.push(ScheduleAction::Delete {
                                name: d.name.clone(),
                                reason: DeleteReason::Replaced,
                            });
                            notes.push(Note {
                                kind: NoteKind::Normal,
                                reason: Reason::Replaced,
                                message: format!(
                                    "deleted the active DataDump {} for the run due at {due} (concurrencyPolicy Replace)",
                                    d.name
                                ),
                            });
                        }
                        active.clear();
                    }
                    if missed > 0 {
                        notes.push(Note {
                            kind: NoteKind::Warning,
                            reason: Reason::MissedSchedule,
                            message: format!(
                                "{} earlier scheduled time(s) since {earliest} were missed; only the latest, {due}, runs",
                                count_text(missed)
                            ),
                        });
                    }
                    let date = cron.date_of(due);
                    notes.push(Note {
                        kind: NoteKind::Normal,
                        reason: Reason::Created,
                        message: format!("created DataDump {run} for {due} (DATE {date})"),
                    });
                    actions.push(ScheduleAction::Create {
                        name: run.clone(),
                        scheduled_time: due,
                        date,
                    });
                    status.last_schedule_time = Some(due);
                }
            }
            if !spec.suspend {
                requeue_after = cron
                    .next_after(now)
                    .map(|next| Duration::from_millis(next.duration_since(now).as_millis().clamp(1000, 24 * 3600 * 1000) as u64));
            }
        }
    }

    // active after this plan: the running ones not replaced, and the one being created
    let mut refs: Vec<DumpReference> = active
        .iter()
        .map(|d| DumpReference {
            name: d.name.clone(),
            scheduled_time: d.scheduled_time,
        })
        .collect();
    for a in &actions {
        if let ScheduleAction::Create { name, scheduled_time, .. } = a {
            refs.push(DumpReference {
                name: name.clone(),
                scheduled_time: Some(*scheduled_time),
            });
        }
    }
    status.active_count = refs.len() as u32;
    status.active = refs;
    SchedulePlan {
        actions,
        notes,
        status,
        requeue_after,
    }
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

fn count_text(n: usize) -> String {
    if n > MAX_COUNTED_MISSES {
        format!("more than {MAX_COUNTED_MISSES}")
    } else {
        n.to_string()
    }
}

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
