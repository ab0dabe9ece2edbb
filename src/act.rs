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
    },
    /// The object itself could not be updated (finalizer).
    #[error("cannot update the DataDump: {0}")]
    Object(String),
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
            ActError::Object(_) => "object",
            ActError::Release(crate::worker::release::ReleaseError::Backend(e)) => e.metric_label(),
            ActError::Release(_) => "release",
        }
    }
}

/// Where the DataDump lives: finalizers and Secrets.
pub trait Home: Send + Sync {
    /// Adds the cleanup finalizer.
    fn add_finalizer(&self, dd: &DataDump) -> impl Future<Output = Result<(), ActError>> + Send;
    /// Removes the cleanup finalizer.
    fn remove_finalizer(&self, dd: &DataDump) -> impl Future<Output = Result<(), ActError>> + Send;
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
            Action::RemoveFinalizer => home.remove_finalizer(dd).await?,
            Action::StageCredentials { parameter, .. } => {
                let Some(Credentials::Secret(secret)) = dd.spec.database.credentials() else {
                    continue;
                };
                let value = home.read_secret(dd, secret).await?;
                backends.stage.put(parameter, &value).await?;
            }
            Action::Launch(req) => {
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
                let status = dd.status.clone().unwrap_or_default();
                done.card = Some(crate::card::write(&backends.store, dd, &status).await?);
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

/// Folds what acting found into the planned status and the Events: a failed notification is
/// recorded (not sent, one more attempt, the error, when) instead of the planned "sent".
pub fn settle(status: &mut Option<crate::api::DataDumpStatus>, done: &Done, now: jiff::Timestamp) -> Vec<crate::plan::Note> {
    use crate::plan::{MAX_NOTIFY_ATTEMPTS, Note, NoteKind, Reason};
    let mut notes = Vec::new();
    if let Some(card) = &done.card {
        notes.push(Note { kind: NoteKind::Normal, reason: Reason::DatasetCardWritten, message: format!("dataset card written to {card}") });
    }
    match (&done.notify, status.as_mut()) {
        (Some(Ok(())), _) => notes.push(Note { kind: NoteKind::Normal, reason: Reason::Notified, message: "Slack message sent".into() }),
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
            notes.push(Note { kind: NoteKind::Warning, reason: Reason::NotifyFailed, message });
        }
        _ => {}
    }
    notes
}
