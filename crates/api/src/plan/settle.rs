//! Settle: fold what acting found (a refused requester-pays change, a failed Slack send, the
//! card written) into the planned status and the Events, after the binary performed the
//! plan's actions. Pure, no I/O.

/// What acting did, for logs and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Done {
    /// Instances launched (id, media type).
    pub launched: Vec<(String, String)>,
    /// Instances adopted instead of launched (an instance with the token already existed).
    pub adopted: Vec<String>,
    /// Instances asked to terminate.
    pub terminated: Vec<String>,
    /// The dataset card written, if any.
    pub card: Option<String>,
    /// Whether a notification was attempted, and its error when it failed (a failed send does
    /// not stop the other actions or the status write).
    pub notify: Option<Result<(), String>>,
    /// Whether the bucket now makes requesters pay, or why the controller could not make it
    /// (a refusal stops no other action: the planner launched nothing meanwhile).
    pub requester_pays: Option<Result<(), String>>,
}

/// Folds what acting found into the planned status and the Events: a failed notification is
/// recorded (not sent, one more attempt, the error, when) instead of the planned "sent"; the
/// requester-pays outcome is recorded with its condition.
pub fn settle(dd: &crate::DataDump, status: &mut Option<crate::DataDumpStatus>, done: &Done, now: jiff::Timestamp) -> Vec<super::Note> {
    use super::{MAX_NOTIFY_ATTEMPTS, Note, NoteKind, Reason};
    let mut notes = Vec::new();
    if let (Some(outcome), Some(s)) = (&done.requester_pays, status.as_mut()) {
        let before = s.requester_pays.clone();
        s.requester_pays = Some(crate::RequesterPaysStatus {
            enabled: outcome.is_ok(),
            checked_time: now,
            message: outcome.as_ref().err().cloned(),
        });
        if let Some((ok, reason, message)) = super::requester_pays_condition(dd, s) {
            let changed = before.is_none_or(|b| b.enabled != ok || b.message.as_deref() != outcome.as_ref().err().map(String::as_str));
            if changed {
                notes.push(if ok {
                    Note {
                        kind: NoteKind::Normal,
                        reason: Reason::RequesterPaysEnabled,
                        message: message.clone(),
                    }
                } else {
                    Note {
                        kind: NoteKind::Warning,
                        reason: Reason::RequesterPaysRefused,
                        message: message.clone(),
                    }
                });
            }
            super::set_condition(s, crate::REQUESTER_PAYS, ok, reason, message, dd.metadata.generation, now);
        }
    }
    if let Some(card) = &done.card {
        notes.push(Note {
            kind: NoteKind::Normal,
            reason: Reason::DatasetCardWritten,
            message: format!("dataset card written to {card}"),
        });
    }
    match (&done.notify, status.as_mut()) {
        (Some(Ok(())), _) => notes.push(Note {
            kind: NoteKind::Normal,
            reason: Reason::Notified,
            message: "Slack message sent".into(),
        }),
        (Some(Err(e)), Some(s)) => {
            let n = s.notification.get_or_insert_with(Default::default);
            n.sent = false;
            n.attempts += 1;
            n.last_error = Some(e.clone());
            n.last_attempt_time = Some(now);
            let message = if n.attempts >= MAX_NOTIFY_ATTEMPTS {
                format!("Slack message not sent: {e}; giving up after {} attempts", n.attempts)
            } else {
                format!("Slack message not sent: {e}; will retry")
            };
            notes.push(Note {
                kind: NoteKind::Warning,
                reason: Reason::NotifyFailed,
                message,
            });
        }
        _ => {}
    }
    notes
}
