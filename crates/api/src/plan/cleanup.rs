//! Deletion: the plan for a DataDump being deleted, which terminates its instances, deletes
//! its staged credentials and releases the finalizer once nothing can be left running. Pure,
//! no I/O.

use jiff::Timestamp;

use super::{Action, InstanceState, Note, NoteKind, Observed, Plan, PlanContext, Reason};
use crate::{DataDump, MediaPhase};

/// Deletion: terminate every instance of the object, delete staged credentials, and release
/// the finalizer only once EC2 confirms every instance terminated, and lists every attempt
/// that may have launched one (EC2 lists a new instance late).
pub(super) fn cleanup(dd: &DataDump, obs: &Observed, ctx: &PlanContext, uid: &str, has_finalizer: bool, now: Timestamp) -> Plan {
    if !has_finalizer {
        return Plan {
            actions: vec![],
            status: None,
            notes: vec![],
            requeue_after: None,
        };
    }
    let mut actions = Vec::new();
    let live: Vec<String> = obs
        .instances
        .iter()
        .filter(|i| i.state.needs_terminate())
        .map(|i| i.id.clone())
        .collect();
    let mut notes = Vec::new();
    if !live.is_empty() {
        notes.push(Note {
            kind: NoteKind::Normal,
            reason: Reason::Cleanup,
            message: format!("deleting: terminating {}", live.join(", ")),
        });
        actions.push(Action::Terminate { instance_ids: live });
    }
    let mut media: Vec<String> = dd.spec.media_types.iter().map(|m| m.as_str().to_string()).collect();
    media.extend(
        dd.status
            .iter()
            .flat_map(|s| s.media.iter().map(|m| m.media_type.as_str().to_string())),
    );
    media.sort();
    media.dedup();
    actions.push(Action::DeleteCredentials {
        parameters: media.iter().flat_map(|m| ctx.staged_parameters(uid, m)).collect(),
    });
    // an attempt started within the launch grace whose instance is not listed may still have one
    let unlisted = dd.status.iter().flat_map(|s| s.media.iter()).any(|m| {
        matches!(m.phase, MediaPhase::Launching | MediaPhase::Running | MediaPhase::Terminating)
            && m.token.as_ref().is_some_and(|t| !obs.instances.iter().any(|i| &i.token == t))
            && m.attempt_start_time
                .is_some_and(|t| now.duration_since(t).as_secs() < ctx.launch_grace.as_secs() as i64)
    });
    if !unlisted && obs.instances.iter().all(|i| i.state == InstanceState::Terminated) {
        actions.push(Action::RemoveFinalizer);
        Plan {
            actions,
            status: None,
            notes,
            requeue_after: None,
        }
    } else {
        Plan {
            actions,
            status: None,
            notes,
            requeue_after: Some(ctx.fast_requeue),
        }
    }
}
