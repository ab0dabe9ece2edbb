//! The dump's status summary: its phase rolled up from the media types', `done`, the one-line
//! `status.message`, the completion time and the conditions (`SpecValid`, `Progressing`,
//! `Complete`, `Failed`, `RequesterPays`). Pure, no I/O.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::Reason;
use crate::{
    COMPLETE, DataDump, DataDumpStatus, DumpPhase, FAILED, FieldError, MediaPhase, MediaStatus, PROGRESSING, REQUESTER_PAYS, SPEC_VALID,
};

/// Sets phase, done, message, completion time and conditions from the media entries.
pub(super) fn summarize(status: &mut DataDumpStatus, dd: &DataDump, errors: Option<&Vec<FieldError>>, resolved: bool, now: Timestamp) {
    status.phase = rollup(&status.media, dd.spec.suspend);
    if status.phase.is_terminal() && status.completion_time.is_none() {
        status.completion_time = Some(now);
    }
    let counts = Counts::of(&status.media);
    status.done = Some(format!("{}/{}", counts.succeeded, counts.total));
    status.message = Some(message(status, dd, errors, resolved));
    set_conditions(status, dd, errors, now);
}

/// How many media types there are, and how many of them succeeded or failed.
struct Counts {
    total: usize,
    succeeded: usize,
    failed: usize,
}

impl Counts {
    /// Counts the media entries by phase.
    fn of(media: &[MediaStatus]) -> Counts {
        let count = |p| media.iter().filter(|m| m.phase == p).count();
        Counts {
            total: media.len(),
            succeeded: count(MediaPhase::Succeeded),
            failed: count(MediaPhase::Failed),
        }
    }
}

/// Whether any media type has an attempt under way (Launching, Running or Terminating).
fn active(media: &[MediaStatus]) -> bool {
    media
        .iter()
        .any(|m| matches!(m.phase, MediaPhase::Launching | MediaPhase::Running | MediaPhase::Terminating))
}

/// The dump's phase from its media types', first match wins: all Succeeded; an attempt under
/// way (Running, or Suspended while one ends); any Failed; suspended; else Pending.
fn rollup(media: &[MediaStatus], suspend: bool) -> DumpPhase {
    let counts = Counts::of(media);
    if counts.total > 0 && counts.succeeded == counts.total {
        DumpPhase::Succeeded
    } else if active(media) {
        if suspend { DumpPhase::Suspended } else { DumpPhase::Running }
    } else if counts.failed > 0 {
        DumpPhase::Failed
    } else if suspend {
        DumpPhase::Suspended
    } else {
        DumpPhase::Pending
    }
}

/// The one-line `status.message`: why nothing launches (invalid spec, requester pays, no
/// instance profile), what was exported, why it failed, or each media type's phase.
fn message(status: &DataDumpStatus, dd: &DataDump, errors: Option<&Vec<FieldError>>, resolved: bool) -> String {
    match (status.phase, errors) {
        (_, Some(errors)) if !active(&status.media) && status.completion_time.is_none() => {
            format!(
                "spec invalid, nothing launched: {}",
                errors.first().map(ToString::to_string).unwrap_or_default()
            )
        }
        (DumpPhase::Succeeded, _) => {
            let files: u64 = status.media.iter().filter_map(|m| m.files).sum();
            let bytes: u64 = status.media.iter().filter_map(|m| m.bytes).sum();
            let rows: u64 = status.media.iter().filter_map(|m| m.rows).sum();
            format!(
                "exported {} media type(s): {files} files, {bytes} bytes, {rows} rows",
                status.media.len()
            )
        }
        (DumpPhase::Failed, _) => {
            let m = first_failed(&status.media).expect("failed phase has a failed media type");
            format!(
                "{}: {}",
                m.media_type,
                m.message.clone().unwrap_or_else(|| m.reason.clone().unwrap_or_default())
            )
        }
        (DumpPhase::Suspended, _) => "suspended".into(),
        (DumpPhase::Pending, _) if dd.spec.destination.requester_pays && status.requester_pays.as_ref().is_some_and(|r| !r.enabled) => {
            format!(
                "waiting: requester pays not enabled, nothing launched: {}",
                status.requester_pays.as_ref().and_then(|r| r.message.clone()).unwrap_or_default()
            )
        }
        (DumpPhase::Pending, _) if !resolved => "waiting: no instance profile".into(),
        _ => status
            .media
            .iter()
            .map(|m| {
                format!(
                    "{} {:?}{}",
                    m.media_type,
                    m.phase,
                    if m.attempt > 1 {
                        format!(" (attempt {})", m.attempt)
                    } else {
                        String::new()
                    }
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The first media type that failed: its reason and message are the dump's.
fn first_failed(media: &[MediaStatus]) -> Option<&MediaStatus> {
    media.iter().find(|m| m.phase == MediaPhase::Failed)
}

/// Exactly these conditions, in this order (a condition no longer asked for goes):
/// `SpecValid`, `Progressing`, `Complete`, `Failed`, and `RequesterPays` when the spec asks.
fn set_conditions(status: &mut DataDumpStatus, dd: &DataDump, errors: Option<&Vec<FieldError>>, now: Timestamp) {
    let generation = dd.metadata.generation;
    let failed_reason = first_failed(&status.media)
        .and_then(|m| m.reason.clone())
        .unwrap_or_else(|| Reason::Failed.as_str().into());
    let spec_message = errors
        .map(|e| crate::validate::summarize(e))
        .unwrap_or_else(|| "the spec passed every check".into());
    let phase_reason = format!("{:?}", status.phase);
    let conditions = [
        (
            SPEC_VALID,
            errors.is_none(),
            if errors.is_none() { "Valid" } else { "InvalidSpec" }.to_string(),
            spec_message,
        ),
        (
            PROGRESSING,
            status.phase == DumpPhase::Running,
            phase_reason.clone(),
            status.message.clone().unwrap_or_default(),
        ),
        (
            COMPLETE,
            status.phase == DumpPhase::Succeeded,
            if status.phase == DumpPhase::Succeeded {
                "AllMediaSucceeded".into()
            } else {
                phase_reason.clone()
            },
            status.message.clone().unwrap_or_default(),
        ),
        (
            FAILED,
            status.phase == DumpPhase::Failed,
            if status.phase == DumpPhase::Failed {
                failed_reason
            } else {
                phase_reason
            },
            status.message.clone().unwrap_or_default(),
        ),
    ];
    let payment = requester_pays_condition(dd, status);
    let old = std::mem::take(&mut status.conditions);
    for (type_, ok, reason, message) in conditions.into_iter().chain(payment.map(|(ok, r, m)| (REQUESTER_PAYS, ok, r, m))) {
        status.conditions.extend(old.iter().find(|c| c.type_ == type_).cloned());
        set_condition(status, type_, ok, reason, message, generation, now);
    }
}

/// The `RequesterPays` condition (only when the spec asks for it), from what the status
/// records: True with how to download, or False with what is missing.
pub fn requester_pays_condition(dd: &DataDump, status: &DataDumpStatus) -> Option<(bool, String, String)> {
    let d = &dd.spec.destination;
    if !d.requester_pays {
        return None;
    }
    Some(match &status.requester_pays {
        Some(rp) if rp.enabled => (
            true,
            "Enabled".into(),
            format!(
                "bucket {} makes requesters pay; download with: {}",
                d.bucket,
                crate::keys::download_command(dd, status.dump_date.as_deref())
            ),
        ),
        Some(rp) => (
            false,
            "NotAllowed".into(),
            rp.message.clone().unwrap_or_else(|| "requester pays could not be enabled".into()),
        ),
        None => (
            false,
            "Checking".into(),
            format!("checking bucket {}'s request payment setting before the first launch", d.bucket),
        ),
    })
}

/// Sets (or adds) one condition, keeping its transition time while its status stays.
pub fn set_condition(
    status: &mut DataDumpStatus,
    type_: &str,
    ok: bool,
    reason: String,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) {
    let s = if ok { "True" } else { "False" };
    let since = status
        .conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == s)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    let condition = Condition {
        type_: type_.into(),
        status: s.into(),
        reason,
        message,
        last_transition_time: since,
        observed_generation: generation,
    };
    match status.conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => *c = condition,
        None => status.conditions.push(condition),
    }
}
