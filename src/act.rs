//! Act: perform a plan's actions, in order, through the backend traits and the object's home
//! (the Kubernetes API, or memory for the one-shot runner). Stops at the first error so the
//! planned status is only written after every action succeeded. I/O.

use std::future::Future;

use crate::api::{Credentials, DataDump, SecretKeyRef};
use crate::backend::{BackendError, Compute, InstanceFilter, ObjectStore, SecretStage, SecretValue};
use crate::notify::{Notifier, SlackNotifier};
use crate::plan::Action;

/// Errors while acting.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    /// An AWS (or local) backend call failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The connection string could not be read.
    #[error("cannot read the connection string from Secret {name} key {key}: {reason}")]
    Secret {
        /// Secret name.
        name: String,
        /// Key.
        key: String,
        /// Why (never the value).
        reason: String,
        /// The API server's error, when the read itself failed.
        #[source]
        source: Option<kube::Error>,
    },
    /// The object itself could not be updated (finalizer) or read.
    #[error("cannot update the DataDump: {0}")]
    Object(#[source] kube::Error),
    /// The object changed since it was read: a launch planned from that read may repeat an
    /// attempt the newer status already moved past.
    #[error("the DataDump changed since it was read (resourceVersion {read}); planning again")]
    Stale {
        /// The resourceVersion the plan was made from.
        read: String,
    },
    /// The worker's user data could not be prepared (binary, job, presigned URLs).
    #[error(transparent)]
    Release(#[from] crate::worker::release::ReleaseError),
}

impl ActError {
    /// A short, bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ActError::Backend(e) => e.metric_label(),
            ActError::Secret { .. } => "secret",
            ActError::Object(e) if kube_conflict(e) => "conflict",
            ActError::Stale { .. } => "conflict",
            ActError::Object(_) => "object",
            ActError::Release(crate::worker::release::ReleaseError::Backend(e)) => e.metric_label(),
            ActError::Release(_) => "release",
        }
    }
}

impl ActError {
    /// Whether trying again may help without a change from the user: a throttled or
    /// unavailable service, a conflict, a connection that failed.
    pub fn is_transient(&self) -> bool {
        match self {
            ActError::Backend(e) | ActError::Release(crate::worker::release::ReleaseError::Backend(e)) => e.is_transient(),
            ActError::Release(_) => false,
            ActError::Secret { source, .. } => source.as_ref().is_some_and(kube_transient),
            ActError::Object(e) => kube_transient(e),
            ActError::Stale { .. } => true,
        }
    }

    /// The Warning a failure of this kind puts on the object, and the action that failed:
    /// for those only the user can fix (a missing Secret, a call AWS refuses). Transient ones
    /// are retried quietly (logs and `datadump_reconciles_total{result="error"}`).
    pub fn warning(&self) -> Option<(&'static str, crate::plan::Note)> {
        use crate::plan::{Note, NoteKind, Reason};
        let (action, reason, message) = match self {
            ActError::Secret { .. } => ("StageCredentials", Reason::SecretUnavailable, self.to_string()),
            ActError::Backend(BackendError::Rejected { .. })
            | ActError::Release(crate::worker::release::ReleaseError::Backend(BackendError::Rejected { .. })) => (
                "CallAws",
                Reason::AwsRejected,
                format!(
                    "{self}; tried again with backoff until fixed (the controller's IAM policy, the spec's \
                     instance settings, or an account quota)"
                ),
            ),
            _ => return None,
        };
        let kind = NoteKind::Warning;
        Some((action, Note { kind, reason, message }))
    }

    /// Whether the object changed since it was read (409): a fresh read fixes it at once.
    pub fn is_conflict(&self) -> bool {
        matches!(self, ActError::Stale { .. }) || matches!(self, ActError::Object(e) if kube_conflict(e))
    }
}

/// Whether a Kubernetes API error is a conflict (409: the resourceVersion is stale).
pub fn kube_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Whether a Kubernetes API error may pass by itself: a conflict, throttling (429), a server
/// error (5xx), or a connection that failed; not a refusal (other 4xx) or a bad request.
pub fn kube_transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => matches!(s.code, 409 | 429 | 500..=599),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

/// Where the DataDump lives: finalizers and Secrets.
pub trait Home: Send + Sync {
    /// Adds the cleanup finalizer.
    fn add_finalizer(&self, dd: &DataDump) -> impl Future<Output = Result<(), ActError>> + Send;
    /// Removes the cleanup finalizer.
    fn remove_finalizer(&self, dd: &DataDump) -> impl Future<Output = Result<(), ActError>> + Send;
    /// Confirms `dd` is the object's current version ([`ActError::Stale`] otherwise): a watch
    /// cache may lag behind the status this driver wrote itself.
    fn confirm_current(&self, dd: &DataDump) -> impl Future<Output = Result<(), ActError>> + Send;
    /// Reads a Secret key of the object's namespace.
    fn read_secret(&self, dd: &DataDump, secret: &SecretKeyRef) -> impl Future<Output = Result<SecretValue, ActError>> + Send;
}

/// The backends one driver works with.
#[derive(Clone)]
pub struct Backends<C, S, K> {
    /// Runs workers.
    pub compute: C,
    /// Holds the output and semaphores.
    pub store: S,
    /// Stages credentials.
    pub stage: K,
    /// Sends the end-of-dump message.
    pub notifier: SlackNotifier,
    /// The worker binaries for EC2 launches (`None`: the compute backend starts workers
    /// itself, without user data).
    pub worker: Option<std::sync::Arc<crate::worker::release::WorkerRelease>>,
}

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

/// Performs the actions in order.
pub async fn perform<C: Compute, S: ObjectStore, K: SecretStage, H: Home>(
    actions: &[Action],
    dd: &DataDump,
    backends: &Backends<C, S, K>,
    home: &H,
) -> Result<Done, ActError> {
    let mut done = Done::default();
    for action in actions {
        match action {
            Action::AddFinalizer => home.add_finalizer(dd).await?,
            Action::EnsureRequesterPays => done.requester_pays = Some(ensure_requester_pays(&backends.store, dd).await?),
            Action::RemoveFinalizer => home.remove_finalizer(dd).await?,
            Action::StageCredentials { parameter, .. } => {
                let Some(Credentials::Secret(secret)) = dd.spec.database.credentials() else {
                    continue;
                };
                let value = home.read_secret(dd, secret).await?;
                backends.stage.put(parameter, &value).await?;
            }
            Action::Launch(req) => {
                // Only from the current version: a stale read may still show an attempt as
                // Launching whose instance ran, and vanished, since.
                home.confirm_current(dd).await?;
                // Adopt, never duplicate: look the token up by tag right before launching.
                let uid = dd.metadata.uid.clone().unwrap_or_default();
                let existing = backends.compute.instances(InstanceFilter::Owner(&uid)).await?;
                if let Some(i) = existing.iter().find(|i| i.token == req.token) {
                    done.adopted.push(i.id.clone());
                    continue;
                }
                let id = match &backends.worker {
                    Some(release) => {
                        let mut req = req.as_ref().clone();
                        req.user_data = release.user_data(&backends.store, &req.job, req.arch).await?;
                        backends.compute.launch(&req).await?
                    }
                    None => backends.compute.launch(req).await?,
                };
                done.launched.push((id, req.media_type.clone()));
            }
            Action::Terminate { instance_ids } => {
                backends.compute.terminate(instance_ids).await?;
                done.terminated.extend(instance_ids.iter().cloned());
            }
            Action::DeleteCredentials { parameters } => backends.stage.delete(parameters).await?,
            Action::WriteDatasetCard => {
                let date = dd.status.as_ref().and_then(|s| s.dump_date.clone()).unwrap_or_default();
                done.card = Some(crate::card::write(&backends.store, dd, &date).await?);
            }
            Action::Notify => {
                let Some(slack) = dd.spec.notification.as_ref().and_then(|n| n.slack.as_ref()) else {
                    continue;
                };
                let status = dd.status.clone().unwrap_or_default();
                let sent = match home.read_secret(dd, &slack.webhook_secret_ref).await {
                    Ok(url) => backends
                        .notifier
                        .send(&url, &crate::notify::slack_message(dd, &status))
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                done.notify = Some(sent);
            }
        }
    }
    Ok(done)
}

/// Reads the bucket's request payment and sets it to `Requester` when it is not. A refusal
/// (permissions, a missing bucket) is the outcome, with its fix; only transient errors fail.
async fn ensure_requester_pays<S: ObjectStore>(store: &S, dd: &DataDump) -> Result<Result<(), String>, ActError> {
    let bucket = crate::observe::bucket_of(dd);
    let outcome = match store.requester_pays(bucket).await {
        Ok(true) => Ok(()),
        Ok(false) => store.enable_requester_pays(bucket).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => Ok(Ok(())),
        Err(e) if e.is_transient() => Err(e.into()),
        Err(e) => Ok(Err(format!(
            "{e}; fix: allow the controller s3:GetBucketRequestPayment and s3:PutBucketRequestPayment on \
             arn:aws:s3:::{b}, or have the bucket owner run `aws s3api put-bucket-request-payment --bucket {b} \
             --request-payment-configuration Payer=Requester`",
            b = bucket.name
        ))),
    }
}

/// Folds what acting found into the planned status and the Events: a failed notification is
/// recorded (not sent, one more attempt, the error, when) instead of the planned "sent"; the
/// requester-pays outcome is recorded with its condition.
pub fn settle(dd: &DataDump, status: &mut Option<crate::api::DataDumpStatus>, done: &Done, now: jiff::Timestamp) -> Vec<crate::plan::Note> {
    use crate::plan::{MAX_NOTIFY_ATTEMPTS, Note, NoteKind, Reason};
    let mut notes = Vec::new();
    if let (Some(outcome), Some(s)) = (&done.requester_pays, status.as_mut()) {
        let before = s.requester_pays.clone();
        s.requester_pays = Some(crate::api::RequesterPaysStatus {
            enabled: outcome.is_ok(),
            checked_time: now,
            message: outcome.as_ref().err().cloned(),
        });
        if let Some((ok, reason, message)) = crate::plan::requester_pays_condition(dd, s) {
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
            crate::plan::set_condition(s, crate::api::REQUESTER_PAYS, ok, reason, message, dd.metadata.generation, now);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A Kubernetes API answer with this HTTP code.
    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status::failure("from the test", "Test").with_code(code)))
    }

    #[test]
    fn conflicts_and_server_errors_are_transient_refusals_are_not() {
        let object = |code| ActError::Object(api(code));
        assert!(object(409).is_conflict() && object(409).is_transient());
        let stale = ActError::Stale { read: "7".into() };
        assert!(stale.is_conflict() && stale.is_transient(), "a stale read is planned again at once");
        assert_eq!(object(409).metric_label(), "conflict");
        for code in [429, 500, 503] {
            assert!(object(code).is_transient() && !object(code).is_conflict(), "{code}");
        }
        for code in [400, 403, 404, 422] {
            assert!(!object(code).is_transient(), "{code}");
        }
        let secret = |source| ActError::Secret {
            name: "db".into(),
            key: "conn".into(),
            reason: "r".into(),
            source,
        };
        assert!(!secret(None).is_transient(), "a missing Secret needs the user");
        assert!(secret(Some(api(503))).is_transient() && !secret(Some(api(403))).is_transient());
        let backend = |e| ActError::Backend(e);
        let throttled = BackendError::Throttled {
            api: "RunInstances",
            message: String::new(),
        };
        let refused = BackendError::Rejected {
            api: "RunInstances",
            code: "Unauthorized".into(),
            message: String::new(),
        };
        assert!(backend(throttled).is_transient() && !backend(refused).is_transient());
    }

    #[test]
    fn only_failures_the_user_must_fix_become_warnings() {
        use crate::plan::Reason;
        let rejected = ActError::Backend(BackendError::Rejected {
            api: "RunInstances",
            code: "UnauthorizedOperation".into(),
            message: "not authorized".into(),
        });
        let (action, note) = rejected.warning().expect("a refused call is the user's to fix");
        assert_eq!(
            (action, note.reason, note.kind),
            ("CallAws", Reason::AwsRejected, crate::plan::NoteKind::Warning)
        );
        assert!(
            note.message.starts_with("RunInstances: UnauthorizedOperation: not authorized; ") && note.message.contains("IAM policy"),
            "{}",
            note.message
        );
        let missing = ActError::Secret {
            name: "db".into(),
            key: "conn".into(),
            reason: "does not exist".into(),
            source: None,
        };
        assert_eq!(
            missing.warning().map(|(a, n)| (a, n.reason)),
            Some(("StageCredentials", Reason::SecretUnavailable))
        );
        let quiet = [
            ActError::Backend(BackendError::Throttled {
                api: "RunInstances",
                message: String::new(),
            }),
            ActError::Backend(BackendError::Unavailable {
                api: "RunInstances",
                message: String::new(),
            }),
            ActError::Object(api(409)),
            ActError::Stale { read: "7".into() },
        ];
        for e in quiet {
            assert!(e.warning().is_none(), "{e} is retried quietly");
        }
    }

    #[test]
    fn the_kube_error_stays_the_source() {
        let e = ActError::Object(api(409));
        let source = std::error::Error::source(&e).expect("a source");
        assert!(source.downcast_ref::<kube::Error>().is_some(), "{source:?}");
        assert!(e.to_string().contains("from the test"), "{e}");
    }
}
