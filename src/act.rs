//! Act: perform a plan's actions, in order, through the backend traits and the object's home
//! (the Kubernetes API, or memory for the one-shot runner). Stops at the first error so the
//! planned status is only written after every action succeeded. I/O.

use std::future::Future;

use crate::api::{CaBundleRef, ConfigMapKeyRef, Credentials, DataDump, SecretKeyRef, SecretRef, TLS_CERT_KEY, TLS_KEY_KEY};
use crate::backend::{BackendError, Compute, InstanceFilter, ObjectStore, SecretStage, SecretValue};
use crate::notify::{Notifier, SlackNotifier};
use crate::plan::{Action, Done, StagedCredential};

/// What a Secret or ConfigMap key is read for: errors and Events name it, and the runner's
/// home picks its input by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyContent {
    /// The connection string (`spec.database.connectionSecretRef`).
    ConnectionString,
    /// The Slack webhook URL (`spec.notification.slack.webhookSecretRef`).
    SlackWebhook,
    /// PEM CA certificates (`spec.database.tls.caBundle`).
    CaBundle,
    /// The client certificate chain (`tls.crt` of `spec.database.tls.clientCertificateSecretRef`).
    ClientCertificate,
    /// The client certificate's private key (its `tls.key`).
    ClientKey,
}

impl KeyContent {
    /// As a message says it: "cannot read the CA bundle from …".
    pub fn as_str(self) -> &'static str {
        match self {
            KeyContent::ConnectionString => "the connection string",
            KeyContent::SlackWebhook => "the Slack webhook URL",
            KeyContent::CaBundle => "the CA bundle",
            KeyContent::ClientCertificate => "the client certificate",
            KeyContent::ClientKey => "the client certificate's key",
        }
    }

    /// The action that reads it, as the Warning Event names it.
    fn action(self) -> &'static str {
        match self {
            KeyContent::CaBundle => "Launch",
            KeyContent::SlackWebhook => "Notify",
            KeyContent::ConnectionString | KeyContent::ClientCertificate | KeyContent::ClientKey => "StageCredentials",
        }
    }
}

impl std::fmt::Display for KeyContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors while acting.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    /// An AWS (or local) backend call failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A Secret key (the connection string, a CA bundle, a client certificate) could not be
    /// read.
    #[error("cannot read {content} from Secret {name} key {key}: {reason}")]
    Secret {
        /// What the key holds.
        content: KeyContent,
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
    /// A ConfigMap key (a CA bundle) could not be read.
    #[error("cannot read {content} from ConfigMap {name} key {key}: {reason}")]
    ConfigMap {
        /// What the key holds.
        content: KeyContent,
        /// ConfigMap name.
        name: String,
        /// Key.
        key: String,
        /// Why.
        reason: String,
        /// The API server's error, when the read itself failed.
        #[source]
        source: Option<kube::Error>,
    },
    /// A CA bundle or client certificate was read but is not PEM the worker can use.
    #[error("{content} in {place} {problem}; fix: {fix}")]
    Pem {
        /// What the key holds.
        content: KeyContent,
        /// Where it was read: `ConfigMap rds-ca key global-bundle.pem`.
        place: String,
        /// What is wrong (never the value).
        problem: String,
        /// What to do.
        fix: &'static str,
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
    Release(#[from] crate::launch::release::ReleaseError),
}

impl ActError {
    /// A short, bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ActError::Backend(e) => e.metric_label(),
            ActError::Secret { .. } => "secret",
            ActError::ConfigMap { .. } => "configmap",
            ActError::Pem { .. } => "pem",
            ActError::Object(e) if kube_conflict(e) => "conflict",
            ActError::Stale { .. } => "conflict",
            ActError::Object(_) => "object",
            ActError::Release(crate::launch::release::ReleaseError::Backend(e)) => e.metric_label(),
            ActError::Release(_) => "release",
        }
    }
}

impl ActError {
    /// Whether trying again may help without a change from the user: a throttled or
    /// unavailable service, a conflict, a connection that failed.
    pub fn is_transient(&self) -> bool {
        match self {
            ActError::Backend(e) | ActError::Release(crate::launch::release::ReleaseError::Backend(e)) => e.is_transient(),
            ActError::Release(_) => false,
            ActError::Secret { source, .. } | ActError::ConfigMap { source, .. } => source.as_ref().is_some_and(kube_transient),
            ActError::Pem { .. } => false,
            ActError::Object(e) => kube_transient(e),
            ActError::Stale { .. } => true,
        }
    }

    /// The Warning a failure of this kind puts on the object, and the action that failed:
    /// for those only the user can fix (a missing Secret or ConfigMap, TLS material that is not
    /// PEM, a call AWS refuses). Transient ones are retried quietly (logs and
    /// `datadump_reconciles_total{result="error"}`).
    pub fn warning(&self) -> Option<(&'static str, crate::plan::Note)> {
        use crate::plan::{Note, NoteKind, Reason};
        let (action, reason, message) = match self {
            ActError::Secret { content, .. } => (content.action(), Reason::SecretUnavailable, self.to_string()),
            ActError::ConfigMap { content, .. } => (content.action(), Reason::ConfigMapUnavailable, self.to_string()),
            ActError::Pem { content, .. } => (content.action(), Reason::TlsMaterialInvalid, self.to_string()),
            ActError::Backend(BackendError::Rejected { .. })
            | ActError::Release(crate::launch::release::ReleaseError::Backend(BackendError::Rejected { .. })) => (
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

/// Where the DataDump lives: finalizers, Secrets and ConfigMaps.
pub trait Home: Send + Sync {
    /// Adds the cleanup finalizer.
    fn add_finalizer(&self, dd: &DataDump) -> impl Future<Output = Result<(), ActError>> + Send;
    /// Removes the cleanup finalizer.
    fn remove_finalizer(&self, dd: &DataDump) -> impl Future<Output = Result<(), ActError>> + Send;
    /// Confirms `dd` is the object's current version ([`ActError::Stale`] otherwise): a watch
    /// cache may lag behind the status this driver wrote itself.
    fn confirm_current(&self, dd: &DataDump) -> impl Future<Output = Result<(), ActError>> + Send;
    /// Reads a Secret key of the object's namespace ([`ActError::Secret`] naming `content`
    /// when it cannot).
    fn read_secret(
        &self,
        dd: &DataDump,
        secret: &SecretKeyRef,
        content: KeyContent,
    ) -> impl Future<Output = Result<SecretValue, ActError>> + Send;
    /// Reads a ConfigMap key of the object's namespace ([`ActError::ConfigMap`] naming `content`
    /// when it cannot).
    fn read_config_map(
        &self,
        dd: &DataDump,
        key: &ConfigMapKeyRef,
        content: KeyContent,
    ) -> impl Future<Output = Result<String, ActError>> + Send;
}

/// Reads the CA bundle of `spec.database.tls.caBundle` and checks that it is PEM
/// certificates. Not a secret: it goes into the job.
pub async fn read_ca_bundle<H: Home>(home: &H, dd: &DataDump, source: CaBundleRef<'_>) -> Result<String, ActError> {
    let content = KeyContent::CaBundle;
    let text = match source {
        CaBundleRef::ConfigMap(c) => home.read_config_map(dd, c, content).await?,
        CaBundleRef::Secret(s) => home.read_secret(dd, s, content).await?.expose().to_string(),
    };
    crate::worker::pem::check_ca_bundle(&text).map_err(|problem| ActError::Pem {
        content,
        place: source.to_string(),
        problem,
        fix: "put the CA certificates in PEM there (for RDS: kubectl create configmap rds-ca --from-file=global-bundle.pem)",
    })?;
    Ok(text)
}

/// Reads a `kubernetes.io/tls` Secret's `tls.crt` and `tls.key` and joins them (the chain,
/// then the key) after checking both are PEM.
pub async fn read_client_identity<H: Home>(home: &H, dd: &DataDump, secret: &SecretRef) -> Result<SecretValue, ActError> {
    let key_ref = |key: &str| SecretKeyRef {
        name: secret.name.clone(),
        key: key.into(),
    };
    let certificate = home.read_secret(dd, &key_ref(TLS_CERT_KEY), KeyContent::ClientCertificate).await?;
    let key = home.read_secret(dd, &key_ref(TLS_KEY_KEY), KeyContent::ClientKey).await?;
    crate::worker::pem::client_identity(certificate.expose(), key.expose())
        .map(SecretValue::new)
        .map_err(|(part, problem)| {
            let (content, key) = match part {
                crate::worker::pem::IdentityPart::Certificate => (KeyContent::ClientCertificate, TLS_CERT_KEY),
                crate::worker::pem::IdentityPart::Key => (KeyContent::ClientKey, TLS_KEY_KEY),
            };
            ActError::Pem {
                content,
                place: format!("Secret {} key {key}", secret.name),
                problem,
                fix: "make it a kubernetes.io/tls Secret: kubectl create secret tls NAME --cert=chain.pem --key=key.pem",
            }
        })
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
    pub worker: Option<std::sync::Arc<crate::launch::release::WorkerRelease>>,
}

/// Performs the actions in order.
pub async fn perform<C: Compute, S: ObjectStore, K: SecretStage, H: Home>(
    actions: &[Action],
    dd: &DataDump,
    backends: &Backends<C, S, K>,
    home: &H,
) -> Result<Done, ActError> {
    let mut done = Done::default();
    let mut ca_bundle: Option<String> = None;
    for action in actions {
        match action {
            Action::AddFinalizer => home.add_finalizer(dd).await?,
            Action::EnsureRequesterPays => {
                // settle records it: Ok when the bucket makes requesters pay, else why not
                done.requester_pays = Some(match ensure_requester_pays(&backends.store, dd).await? {
                    RequesterPays::Enabled => Ok(()),
                    RequesterPays::Refused(why) => Err(why),
                })
            }
            Action::RemoveFinalizer => home.remove_finalizer(dd).await?,
            Action::StageCredentials { parameter, credential, .. } => {
                let value = match credential {
                    StagedCredential::ConnectionString => {
                        let Some(Credentials::Secret(secret)) = dd.spec.database.credentials() else {
                            continue;
                        };
                        home.read_secret(dd, secret, KeyContent::ConnectionString).await?
                    }
                    StagedCredential::ClientIdentity => {
                        let Some(secret) = dd.spec.database.client_certificate() else {
                            continue;
                        };
                        read_client_identity(home, dd, secret).await?
                    }
                };
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
                let mut req = req.as_ref().clone();
                if let Some(source) = dd.spec.database.ca_bundle() {
                    // read once per perform (every media type's job carries the same bundle)
                    if ca_bundle.is_none() {
                        ca_bundle = Some(read_ca_bundle(home, dd, source).await?);
                    }
                    req.job.ca_bundle = ca_bundle.clone();
                }
                if let Some(release) = &backends.worker {
                    // the job, bundle included, goes to S3; the user data only names it
                    req.user_data = release.user_data(&backends.store, &req.job, req.arch).await?;
                }
                let id = backends.compute.launch(&req).await?;
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
                let sent = match home.read_secret(dd, &slack.webhook_secret_ref, KeyContent::SlackWebhook).await {
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

/// Where the bucket's request payment stands after [`ensure_requester_pays`].
#[derive(Clone, Debug, PartialEq, Eq)]
enum RequesterPays {
    /// The bucket makes requesters pay (it did, or the controller just set it).
    Enabled,
    /// S3 refused to read or set it (permissions, a missing bucket): what happened, with its
    /// fix.
    Refused(String),
}

/// Reads the bucket's request payment and sets it to `Requester` when it is not. A refusal
/// (permissions, a missing bucket) is the outcome, with its fix; only transient errors fail.
async fn ensure_requester_pays<S: ObjectStore>(store: &S, dd: &DataDump) -> Result<RequesterPays, ActError> {
    let bucket = crate::observe::bucket_of(dd);
    let outcome = match store.requester_pays(bucket).await {
        Ok(true) => Ok(()),
        Ok(false) => store.enable_requester_pays(bucket).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(()) => Ok(RequesterPays::Enabled),
        Err(e) if e.is_transient() => Err(e.into()),
        Err(e) => Ok(RequesterPays::Refused(format!(
            "{e}; fix: allow the controller s3:GetBucketRequestPayment and s3:PutBucketRequestPayment on \
             arn:aws:s3:::{b}, or have the bucket owner run `aws s3api put-bucket-request-payment --bucket {b} \
             --request-payment-configuration Payer=Requester`",
            b = bucket.name
        ))),
    }
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
            content: KeyContent::ConnectionString,
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
            content: KeyContent::ConnectionString,
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

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nCLIENTcert\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nKEYs3cr3tBODY\n-----END PRIVATE KEY-----\n";

    /// A home with a connection string, a client certificate, and the CA bundle's ConfigMap
    /// key holding `bundle` (`None`: the ConfigMap does not exist); counts ConfigMap reads.
    struct TestHome {
        bundle: Option<String>,
        reads: std::sync::Mutex<u32>,
    }

    impl Home for TestHome {
        async fn add_finalizer(&self, _: &DataDump) -> Result<(), ActError> {
            Ok(())
        }
        async fn remove_finalizer(&self, _: &DataDump) -> Result<(), ActError> {
            Ok(())
        }
        async fn confirm_current(&self, _: &DataDump) -> Result<(), ActError> {
            Ok(())
        }
        async fn read_secret(&self, _: &DataDump, _: &SecretKeyRef, content: KeyContent) -> Result<SecretValue, ActError> {
            Ok(SecretValue::new(
                match content {
                    KeyContent::ClientCertificate => CERT,
                    KeyContent::ClientKey => KEY,
                    _ => "postgresql://u:pw@db/catalog",
                }
                .into(),
            ))
        }
        async fn read_config_map(&self, _: &DataDump, key: &ConfigMapKeyRef, content: KeyContent) -> Result<String, ActError> {
            *self.reads.lock().unwrap() += 1;
            self.bundle.clone().ok_or_else(|| ActError::ConfigMap {
                content,
                name: key.name.clone(),
                key: key.key.clone(),
                reason: "the ConfigMap does not exist".into(),
                source: None,
            })
        }
    }

    type MemoryBackends =
        Backends<crate::backend::memory::MemoryCompute, crate::backend::memory::MemoryStore, crate::backend::memory::MemoryStage>;

    fn backends(worker: Option<crate::launch::release::WorkerRelease>) -> MemoryBackends {
        let clock = crate::backend::memory::FakeClock::new(jiff::Timestamp::UNIX_EPOCH);
        Backends {
            compute: Default::default(),
            store: crate::backend::memory::MemoryStore::new(clock),
            stage: Default::default(),
            notifier: SlackNotifier::new().unwrap(),
            worker: worker.map(std::sync::Arc::new),
        }
    }

    /// A DataDump of image and audio with a CA bundle from a ConfigMap and a client
    /// certificate, and the actions of its first two plans: staging (with the token), then the
    /// launches.
    fn tls_dump() -> (DataDump, Vec<Action>, Vec<Action>) {
        let yaml = "apiVersion: datadump.dev/v1alpha1\nkind: DataDump\nmetadata: {name: catalog, namespace: data, uid: u-1, generation: 1, finalizers: [datadump.dev/cleanup]}\nspec:\n  mediaTypes: [image, audio]\n  destination: {bucket: datasets}\n  database:\n    connectionSecretRef: {name: db, key: url}\n    tls:\n      caBundle: {configMapKeyRef: {name: rds-ca, key: global-bundle.pem}}\n      clientCertificateSecretRef: {name: catalog-client}\n  instance: {iamInstanceProfile: worker, instanceType: m7i.large}\n";
        let mut dd: DataDump = serde_yaml::from_str(yaml).unwrap();
        let ctx = crate::plan::PlanContext {
            launcher: crate::plan::Launcher::Bootstrap(vec![crate::contract::Arch::X86_64]),
            ..Default::default()
        };
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let first = crate::plan::plan(&dd, &Default::default(), &ctx, now);
        dd.status = first.status.clone();
        let second = crate::plan::plan(&dd, &Default::default(), &ctx, now);
        (dd, first.actions, second.actions)
    }

    /// A CA bundle of `n` certificates.
    fn bundle(n: usize) -> String {
        format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", "M".repeat(1600)).repeat(n)
    }

    #[tokio::test]
    async fn the_bundle_goes_into_the_job_and_the_key_only_into_ssm() {
        let (dd, stage, launch) = tls_dump();
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("datadump-worker-x86_64");
        std::fs::write(&binary, "#!/bin/sh\n").unwrap();
        let release = crate::launch::release::WorkerRelease::from_files(&[(crate::contract::Arch::X86_64, binary)]).unwrap();
        let b = backends(Some(release));
        let home = TestHome {
            bundle: Some(bundle(100)),
            reads: Default::default(),
        };
        perform(&stage, &dd, &b, &home).await.unwrap();
        let identity = b.stage.value("/datadump/u-1/image/client-identity").expect("staged");
        assert_eq!(
            identity.expose(),
            format!("{}\n{}\n", CERT.trim(), KEY.trim()),
            "tls.crt, then tls.key"
        );
        assert!(b.stage.value("/datadump/u-1/audio/client-identity").is_some());
        assert_eq!(b.stage.names().len(), 4, "connection string and identity per media type");
        assert_eq!(*home.reads.lock().unwrap(), 0, "the bundle is read when launching");

        let done = perform(&launch, &dd, &b, &home).await.unwrap();
        assert_eq!(done.launched.len(), 2);
        assert_eq!(*home.reads.lock().unwrap(), 1, "one read for every launch of one pass");
        for i in b.compute.all() {
            let job = &i.request.job;
            let media = &i.request.media_type;
            assert_eq!(job.ca_bundle.as_deref(), Some(bundle(100).as_str()));
            assert_eq!(
                job.client_identity_parameter.as_deref(),
                Some(format!("/datadump/u-1/{media}/client-identity").as_str())
            );
            let stored = b
                .store
                .snapshot()
                .into_iter()
                .find(|((_, k), _)| k.ends_with(&format!("{media}/_job/attempt-1.json")))
                .map(|(_, o)| String::from_utf8(o.body).unwrap())
                .expect("the job in S3");
            assert_eq!(crate::contract::Job::from_json(&stored).unwrap(), *job);
            assert!(!stored.contains("KEYs3cr3tBODY"), "never the key in the job");
            let user_data = &i.request.user_data;
            assert!(user_data.len() < 4096, "{} bytes", user_data.len());
            assert!(!user_data.contains("BEGIN") && !user_data.contains("KEYs3cr3tBODY"));
        }
    }

    #[tokio::test]
    async fn a_missing_or_non_pem_bundle_launches_nothing_and_says_where_and_how_to_fix_it() {
        use crate::plan::Reason;
        let (dd, _, launch) = tls_dump();
        let cases = [
            (
                None,
                Reason::ConfigMapUnavailable,
                "cannot read the CA bundle from ConfigMap rds-ca key global-bundle.pem: the ConfigMap does not exist",
            ),
            (
                Some("MIIB-not-pem".to_string()),
                Reason::TlsMaterialInvalid,
                "the CA bundle in ConfigMap rds-ca key global-bundle.pem holds no PEM certificate (-----BEGIN CERTIFICATE-----); fix: put the CA certificates in PEM there",
            ),
        ];
        for (bundle, reason, message) in cases {
            let b = backends(None);
            let home = TestHome {
                bundle,
                reads: Default::default(),
            };
            let e = perform(&launch, &dd, &b, &home).await.unwrap_err();
            assert!(!e.is_transient(), "{e}: the user must fix it");
            let (action, note) = e.warning().expect("a Warning Event");
            assert_eq!((action, note.reason, note.kind), ("Launch", reason, crate::plan::NoteKind::Warning));
            assert!(note.message.starts_with(message), "{}", note.message);
            assert_eq!(b.compute.launches(), 0, "nothing launched");
        }
    }

    #[tokio::test]
    async fn a_bad_client_key_is_named_by_its_secret_key_never_shown() {
        struct BadKey;
        impl Home for BadKey {
            async fn add_finalizer(&self, _: &DataDump) -> Result<(), ActError> {
                Ok(())
            }
            async fn remove_finalizer(&self, _: &DataDump) -> Result<(), ActError> {
                Ok(())
            }
            async fn confirm_current(&self, _: &DataDump) -> Result<(), ActError> {
                Ok(())
            }
            async fn read_secret(&self, _: &DataDump, _: &SecretKeyRef, content: KeyContent) -> Result<SecretValue, ActError> {
                Ok(SecretValue::new(
                    if content == KeyContent::ClientKey {
                        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nKEYs3cr3tBODY\n-----END ENCRYPTED PRIVATE KEY-----"
                    } else {
                        CERT
                    }
                    .into(),
                ))
            }
            async fn read_config_map(&self, _: &DataDump, _: &ConfigMapKeyRef, _: KeyContent) -> Result<String, ActError> {
                Ok(bundle(1))
            }
        }
        let (dd, stage, _) = tls_dump();
        let b = backends(None);
        let e = perform(&stage, &dd, &b, &BadKey).await.unwrap_err();
        let (action, note) = e.warning().unwrap();
        assert_eq!((action, note.reason), ("StageCredentials", crate::plan::Reason::TlsMaterialInvalid));
        assert!(
            note.message
                .starts_with("the client certificate's key in Secret catalog-client key tls.key is encrypted")
                && note.message.contains("fix: ")
                && !note.message.contains("KEYs3cr3tBODY"),
            "{}",
            note.message
        );
        assert!(
            b.stage.names().iter().all(|n| !n.ends_with("client-identity")),
            "{:?}",
            b.stage.names()
        );
    }

    #[test]
    fn the_kube_error_stays_the_source() {
        let e = ActError::Object(api(409));
        let source = std::error::Error::source(&e).expect("a source");
        assert!(source.downcast_ref::<kube::Error>().is_some(), "{source:?}");
        assert!(e.to_string().contains("from the test"), "{e}");
    }
}
