//! The one-shot runner, `datadump run -f dump.yaml`: one DataDump to completion without a
//! Kubernetes cluster, through the same observe → plan → act core as the controller. Status
//! lives in memory; credentials come from an environment variable or a file; Ctrl-C (or
//! SIGTERM) terminates what was launched and deletes staged credentials before exiting. I/O.
//!
//! - `mod.rs`: settings, loading the DataDump, checks before anything is launched;
//! - `drive.rs`: the observe → plan → act loop and its signal handling;
//! - `local.rs`: the `local` compute backend (`datadump worker` child processes);
//! - `view.rs`: the live view and the summary table.

mod drive;
pub mod local;
mod view;

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::act::{ActError, Backends, Home, KeyContent};
use crate::api::{ConfigMapKeyRef, Credentials, DataDump, SecretKeyRef};
use crate::aws::{AwsArgs, Ec2Compute, S3Store, SsmStage};
use crate::backend::SecretValue;
use crate::plan::{FINALIZER, PlanContext};

/// Where workers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ComputeKind {
    /// EC2 instances, as the controller launches them.
    Ec2,
    /// `datadump worker` as a local child process, against whatever S3
    /// and SSM endpoint the AWS settings name.
    Local,
}

/// `datadump run` settings.
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// The DataDump to run (YAML, `-` for standard input; the first document).
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
    /// Where workers run.
    #[arg(long, value_enum, env = "DATADUMP_COMPUTE", default_value = "ec2")]
    pub compute: ComputeKind,
    /// Environment variable holding the connection string (instead of a Secret).
    #[arg(long, env = "DATADUMP_CONNECTION_STRING_ENV", default_value = "DATADUMP_CONNECTION_STRING")]
    pub connection_string_env: String,
    /// File holding the connection string (instead of the environment variable).
    #[arg(long, env = "DATADUMP_CONNECTION_STRING_FILE")]
    pub connection_string_file: Option<PathBuf>,
    /// File holding the PEM CA bundle that `spec.database.tls.caBundle` names (instead of its
    /// ConfigMap or Secret key).
    #[arg(long, env = "DATADUMP_CA_BUNDLE_FILE")]
    pub ca_bundle_file: Option<PathBuf>,
    /// File holding the client certificate chain (PEM), the `tls.crt` of the Secret that
    /// `spec.database.tls.clientCertificateSecretRef` names; with `--client-key-file`.
    #[arg(long, env = "DATADUMP_CLIENT_CERTIFICATE_FILE", requires = "client_key_file")]
    pub client_certificate_file: Option<PathBuf>,
    /// File holding the client certificate's private key (PEM, unencrypted), that Secret's
    /// `tls.key`; with `--client-certificate-file`.
    #[arg(long, env = "DATADUMP_CLIENT_KEY_FILE", requires = "client_certificate_file")]
    pub client_key_file: Option<PathBuf>,
    /// One PEM file holding the client certificate chain and its private key, instead of
    /// `--client-certificate-file` and `--client-key-file`.
    #[arg(long, env = "DATADUMP_CLIENT_IDENTITY_FILE", conflicts_with_all = ["client_certificate_file", "client_key_file"])]
    pub client_identity_file: Option<PathBuf>,
    /// Environment variable holding the Slack webhook URL, when the DataDump asks for one.
    #[arg(long, env = "DATADUMP_SLACK_WEBHOOK_ENV", default_value = "DATADUMP_SLACK_WEBHOOK")]
    pub slack_webhook_env: String,
    /// How often to look at the workers (S3 semaphores, instance states).
    #[arg(long, env = "DATADUMP_RUN_POLL_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
    /// How long to keep trying while AWS has never answered (a wrong `--aws-endpoint-url`, no
    /// network): then exit 1, with nothing staged or launched. Once AWS has answered, failures
    /// are retried until the dump ends.
    #[arg(long, env = "DATADUMP_RUN_GIVE_UP_AFTER", default_value = "60s", value_parser = humantime::parse_duration)]
    pub give_up_after: Duration,
    /// Folder for local workers: one subfolder per worker with its job (`job.json`), its log
    /// (`console.log`) and scratch space (`work/`).
    /// Default: `datadump-run` in the system's temp dir.
    #[arg(long, env = "DATADUMP_RUN_WORKDIR")]
    pub workdir: Option<PathBuf>,
    /// Seconds between a local worker's progress reports (`_progress.json`).
    #[arg(long, env = "DATADUMP_PROGRESS_INTERVAL", default_value_t = 5)]
    pub progress_interval: u32,
    /// Value of the `datadump.dev/managed-by` tag.
    #[arg(long, env = "DATADUMP_MANAGED_BY", default_value = "datadump-run")]
    pub managed_by: String,
    /// SSM path under which the connection string is staged for workers.
    #[arg(long, env = "DATADUMP_SSM_PREFIX", default_value = "/datadump")]
    pub ssm_prefix: String,
    /// AWS access.
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Site defaults for unset fields.
    #[command(flatten)]
    pub site: crate::api::SiteDefaults,
    /// Folder with the worker binaries EC2 instances run (`datadump-worker-x86_64`,
    /// `datadump-worker-aarch64`), copied into the destination bucket once (`--compute ec2`).
    /// Default: the `datadump-worker` next to this executable, for instances of this
    /// machine's architecture.
    #[arg(long, env = "DATADUMP_WORKER_BINARIES_DIR")]
    pub worker_binaries_dir: Option<PathBuf>,
}

/// Credentials, the webhook and TLS material, from the environment or files instead of
/// Secrets and ConfigMaps.
struct MemoryHome {
    connection: Option<SecretValue>,
    webhook: Option<SecretValue>,
    ca_bundle: Option<String>,
    client_certificate: Option<SecretValue>,
    client_key: Option<SecretValue>,
}

impl MemoryHome {
    /// What the runner has for `content`, and the flags that give it.
    fn input(&self, content: KeyContent) -> (Option<SecretValue>, &'static str) {
        match content {
            KeyContent::ConnectionString => (self.connection.clone(), "--connection-string-env or --connection-string-file"),
            KeyContent::SlackWebhook => (self.webhook.clone(), "--slack-webhook-env"),
            KeyContent::CaBundle => (self.ca_bundle.clone().map(SecretValue::new), "--ca-bundle-file"),
            KeyContent::ClientCertificate => (
                self.client_certificate.clone(),
                "--client-certificate-file or --client-identity-file",
            ),
            KeyContent::ClientKey => (self.client_key.clone(), "--client-key-file or --client-identity-file"),
        }
    }
}

impl Home for MemoryHome {
    async fn add_finalizer(&self, _: &DataDump) -> Result<(), ActError> {
        Ok(())
    }

    async fn remove_finalizer(&self, _: &DataDump) -> Result<(), ActError> {
        Ok(())
    }

    async fn confirm_current(&self, _: &DataDump) -> Result<(), ActError> {
        // the runner's object lives in its own memory: always current
        Ok(())
    }

    async fn read_secret(&self, _: &DataDump, secret: &SecretKeyRef, content: KeyContent) -> Result<SecretValue, ActError> {
        let (value, flags) = self.input(content);
        value.ok_or_else(|| ActError::Secret {
            content,
            name: secret.name.clone(),
            key: secret.key.clone(),
            source: None,
            reason: format!("datadump run reads it from {flags}"),
        })
    }

    async fn read_config_map(&self, _: &DataDump, key: &ConfigMapKeyRef, content: KeyContent) -> Result<String, ActError> {
        match (content, &self.ca_bundle) {
            (KeyContent::CaBundle, Some(bundle)) => Ok(bundle.clone()),
            _ => Err(ActError::ConfigMap {
                content,
                name: key.name.clone(),
                key: key.key.clone(),
                reason: "datadump run reads it from --ca-bundle-file".into(),
                source: None,
            }),
        }
    }
}

/// A signal that stopped the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Ctrl-C.
    Interrupt,
    /// `kill`, or a supervisor stopping the runner.
    Terminate,
    /// The terminal went away.
    Hangup,
}

impl Signal {
    /// The signal's number.
    pub fn number(self) -> u8 {
        match self {
            Signal::Hangup => 1,
            Signal::Interrupt => 2,
            Signal::Terminate => 15,
        }
    }

    /// The signal's name, e.g. `SIGINT`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Hangup => "SIGHUP",
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every media type succeeded.
    Succeeded,
    /// The dump failed.
    Failed,
    /// A signal: everything launched was terminated and staged credentials deleted.
    Interrupted(Signal),
}

impl Outcome {
    /// The process exit code: 0, 1, or 128 + the signal (130 for Ctrl-C, as shells report it).
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Succeeded => 0,
            Outcome::Failed => 1,
            Outcome::Interrupted(s) => 128 + s.number(),
        }
    }
}

fn load(file: &Path, site: &crate::api::SiteDefaults) -> anyhow::Result<DataDump> {
    let text = crate::input::read_input(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let mut dd = crate::api::parse_documents(&text)
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("{}: no DataDump document", file.display()))?
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    if let Err(errors) = crate::api::validate(&dd.spec, site) {
        anyhow::bail!(
            "{}: invalid DataDump:\n{}",
            file.display(),
            crate::api::validate::summarize(&errors)
        );
    }
    let meta = &mut dd.metadata;
    meta.namespace.get_or_insert_with(|| "default".into());
    meta.name.get_or_insert_with(|| "datadump".into());
    meta.uid = Some(format!("run-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)));
    meta.generation = Some(1);
    meta.finalizers = Some(vec![FINALIZER.into()]);
    meta.creation_timestamp = Some(Time(Timestamp::now()));
    Ok(dd)
}

fn read_secret_input(env: &str, file: Option<&PathBuf>) -> anyhow::Result<Option<SecretValue>> {
    let value = match file {
        Some(f) => Some(std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?),
        None => std::env::var(env).ok(),
    };
    Ok(value.map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).map(SecretValue::new))
}

/// The TLS material `spec.database.tls` names, as the runner's flags give it.
#[derive(Default)]
struct TlsInputs {
    ca_bundle: Option<String>,
    client_certificate: Option<SecretValue>,
    client_key: Option<SecretValue>,
}

/// Reads the files of `--ca-bundle-file` and the client certificate flags, checked against
/// what the DataDump asks for and as PEM, before anything is staged or launched.
fn read_tls_inputs(args: &RunArgs, dd: &DataDump) -> anyhow::Result<TlsInputs> {
    use crate::worker::pem::IdentityPart;
    let read = |f: &PathBuf| std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()));
    let db = &dd.spec.database;
    let mut inputs = TlsInputs::default();
    match (db.ca_bundle(), &args.ca_bundle_file) {
        (Some(_), Some(f)) => {
            let text = read(f)?;
            crate::worker::pem::check_ca_bundle(&text).map_err(|p| anyhow::anyhow!("--ca-bundle-file {}: {p}", f.display()))?;
            inputs.ca_bundle = Some(text);
        }
        (Some(source), None) => {
            anyhow::bail!("the DataDump takes its CA bundle from {source}; datadump run takes it from --ca-bundle-file, which is not set")
        }
        (None, Some(f)) => anyhow::bail!(
            "--ca-bundle-file {} is given, but the DataDump has no spec.database.tls.caBundle; add one (e.g. tls: {{caBundle: {{configMapKeyRef: {{name: ca, key: ca.pem}}}}}}) or drop the flag (sslrootcert=PATH in the connection string works too)",
            f.display()
        ),
        (None, None) => {}
    }
    let given = match (&args.client_identity_file, &args.client_certificate_file, &args.client_key_file) {
        (Some(f), _, _) => Some(
            crate::worker::pem::split_identity(&read(f)?).map_err(|p| anyhow::anyhow!("--client-identity-file {}: {p}", f.display()))?,
        ),
        (None, Some(c), Some(k)) => Some((read(c)?, read(k)?)),
        // clap gives --client-certificate-file and --client-key-file together or neither
        _ => None,
    };
    match (db.client_certificate(), given) {
        (Some(_), Some((certificate, key))) => {
            crate::worker::pem::client_identity(&certificate, &key).map_err(|(part, p)| {
                let what = match part {
                    IdentityPart::Certificate => "the client certificate",
                    IdentityPart::Key => "the client key",
                };
                anyhow::anyhow!("{what} {p}")
            })?;
            inputs.client_certificate = Some(SecretValue::new(certificate));
            inputs.client_key = Some(SecretValue::new(key));
        }
        (Some(secret), None) => anyhow::bail!(
            "the DataDump presents the client certificate of Secret {}; datadump run takes it from --client-certificate-file and --client-key-file, or --client-identity-file, and none is set",
            secret.name
        ),
        (None, Some(_)) => anyhow::bail!(
            "a client certificate is given, but the DataDump has no spec.database.tls.clientCertificateSecretRef; add one (e.g. tls: {{clientCertificateSecretRef: {{name: client}}}}) or drop the flags"
        ),
        (None, None) => {}
    }
    Ok(inputs)
}

/// Runs one DataDump to its end.
pub async fn run(args: RunArgs) -> anyhow::Result<Outcome> {
    let mut site = args.site.clone();
    if args.compute == ComputeKind::Local {
        // a local worker runs with the runner's own AWS credentials: no instance profile
        site.iam_instance_profile.get_or_insert_with(|| "local".into());
    }
    let dd = load(&args.file, &site)?;
    let tls = read_tls_inputs(&args, &dd)?;
    let home = MemoryHome {
        connection: read_secret_input(&args.connection_string_env, args.connection_string_file.as_ref())?,
        webhook: read_secret_input(&args.slack_webhook_env, None)?,
        ca_bundle: tls.ca_bundle,
        client_certificate: tls.client_certificate,
        client_key: tls.client_key,
    };
    // Refuse before anything is staged or launched, rather than fail in the middle.
    if let Some(Credentials::Secret(secret)) = dd.spec.database.credentials()
        && home.connection.is_none()
    {
        anyhow::bail!(
            "the DataDump reads its connection string from Secret {}/{}; datadump run takes it from ${} or --connection-string-file, and neither is set",
            secret.name,
            secret.key,
            args.connection_string_env
        );
    }
    let sdk = args.aws.sdk_config().await;
    let release = match (args.compute, &args.worker_binaries_dir) {
        (ComputeKind::Local, _) => None,
        (ComputeKind::Ec2, Some(dir)) => Some(crate::launch::release::WorkerRelease::from_dir(dir)?),
        (ComputeKind::Ec2, None) => Some(crate::launch::release::WorkerRelease::from_files(&[(
            crate::contract::Arch::host(),
            beside_this_binary("datadump-worker")?,
        )])?),
    };
    let ctx = PlanContext {
        site,
        managed_by: args.managed_by.clone(),
        region: args.aws.region.clone(),
        poll_interval: args.poll_interval,
        fast_requeue: Duration::from_millis(500).min(args.poll_interval),
        launch_grace: Duration::from_secs(120),
        ssm_prefix: args.ssm_prefix.clone(),
        launcher: match &release {
            Some(r) => crate::plan::Launcher::Bootstrap(r.arches()),
            None => crate::plan::Launcher::Direct,
        },
        launch_check: crate::launch::check_user_data,
    };
    let store = S3Store::new(&sdk, args.aws.endpoint_url.is_some());
    let stage = SsmStage::new(&sdk, &args.managed_by);
    let notifier = crate::notify::SlackNotifier::new()?;
    let contact = drive::FirstContact {
        endpoint: match &args.aws.endpoint_url {
            Some(url) => url.clone(),
            None => format!("its {} endpoints", args.aws.region),
        },
        give_up_after: args.give_up_after,
    };
    match args.compute {
        ComputeKind::Ec2 => {
            let compute = Ec2Compute::new(&sdk, &args.managed_by);
            let backends = Backends {
                compute,
                store,
                stage,
                notifier,
                worker: release.map(std::sync::Arc::new),
            };
            drive::drive(dd, backends, &home, &ctx, None, &contact).await
        }
        ComputeKind::Local => {
            let workdir = match &args.workdir {
                Some(w) => std::path::absolute(w)?,
                None => std::env::temp_dir().join("datadump-run"),
            };
            let exe = std::env::current_exe()?.to_string_lossy().into_owned();
            let compute = local::LocalCompute::new(local::LocalSettings {
                workdir: workdir.clone(),
                worker: vec![exe, "worker".into()],
                progress_interval: args.progress_interval,
                env: local_env(&args),
                env_remove: vec![args.connection_string_env.clone(), args.slack_webhook_env.clone()],
                term_grace: local::TERM_GRACE,
            });
            compute.preflight(dd.spec.engine).map_err(anyhow::Error::msg)?;
            let backends = Backends {
                compute,
                store,
                stage,
                notifier,
                worker: None,
            };
            drive::drive(dd, backends, &home, &ctx, Some(&workdir), &contact).await
        }
    }
}

/// What a local worker needs besides the runner's environment: the AWS endpoint and region the
/// runner itself uses (they may come from flags rather than the environment).
fn local_env(args: &RunArgs) -> Vec<(String, String)> {
    let mut env = vec![
        ("AWS_REGION".to_string(), args.aws.region.clone()),
        ("AWS_DEFAULT_REGION".to_string(), args.aws.region.clone()),
    ];
    if let Some(url) = &args.aws.endpoint_url {
        env.push(("AWS_ENDPOINT_URL".into(), url.clone()));
    }
    env
}

/// A program installed next to `datadump` (`cargo build` and the release archive put
/// `datadump-worker` there), or why it is not.
fn beside_this_binary(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name(name);
    anyhow::ensure!(
        path.is_file(),
        "{} is missing: EC2 instances run the lean worker binary; build it (cargo build -p datadump-worker) or pass --worker-binaries-dir with datadump-worker-ARCH files",
        path.display()
    );
    Ok(path)
}
