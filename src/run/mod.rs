//! The one-shot runner, `datadump run -f dump.yaml`: one DataDump to completion without a
//! Kubernetes cluster, through the same observe → plan → act core as the controller. Status
//! lives in memory; credentials come from an environment variable or a file; Ctrl-C terminates
//! what was launched before exiting. I/O.

pub mod local;
mod view;

use std::path::PathBuf;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::act::{self, ActError, Backends, Home};
use crate::api::{DataDump, DumpPhase, SecretKeyRef};
use crate::aws::{AwsArgs, Ec2Compute, S3Store, SsmStage};
use crate::backend::{Compute, SecretValue};
use crate::plan::{self, Action, FINALIZER, PlanContext};

/// Where workers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ComputeKind {
    /// EC2 instances, as the controller launches them.
    Ec2,
    /// The worker script as a local child process (shutdown stubbed).
    Local,
}

/// `datadump run` settings.
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// The DataDump to run (YAML; the first document).
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
    /// Where workers run.
    #[arg(long, value_enum, env = "DATADUMP_COMPUTE", default_value = "ec2")]
    pub compute: ComputeKind,
    /// Environment variable holding the ODBC connection string (instead of a Secret).
    #[arg(long, default_value = "DATADUMP_CONNECTION_STRING")]
    pub connection_string_env: String,
    /// File holding the ODBC connection string (instead of the environment variable).
    #[arg(long)]
    pub connection_string_file: Option<PathBuf>,
    /// Environment variable holding the Slack webhook URL, when the DataDump asks for one.
    #[arg(long, default_value = "DATADUMP_SLACK_WEBHOOK")]
    pub slack_webhook_env: String,
    /// How often to look at the workers.
    #[arg(long, env = "DATADUMP_POLL_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
    /// Folder for local workers (their scripts, scratch space and logs).
    #[arg(long, default_value = "target/datadump-local")]
    pub workdir: PathBuf,
    /// Seconds between a local worker's progress reports.
    #[arg(long, default_value_t = 5)]
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
}

/// Credentials and the webhook, from the environment or files instead of Secrets.
struct MemoryHome {
    connection: Option<SecretValue>,
    webhook: Option<SecretValue>,
}

impl Home for MemoryHome {
    async fn add_finalizer(&self, _: &DataDump) -> Result<(), ActError> {
        Ok(())
    }

    async fn remove_finalizer(&self, _: &DataDump) -> Result<(), ActError> {
        Ok(())
    }

    async fn read_secret(&self, dd: &DataDump, secret: &SecretKeyRef) -> Result<SecretValue, ActError> {
        let is_webhook = dd.spec.notification.as_ref().and_then(|n| n.slack.as_ref()).is_some_and(|s| &s.webhook_secret_ref == secret);
        let value = if is_webhook { self.webhook.clone() } else { self.connection.clone() };
        value.ok_or_else(|| ActError::Secret {
            name: secret.name.clone(),
            key: secret.key.clone(),
            reason: if is_webhook {
                "datadump run reads the webhook URL from --slack-webhook-env".into()
            } else {
                "datadump run reads the connection string from --connection-string-env or --connection-string-file".into()
            },
        })
    }
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every media type succeeded.
    Succeeded,
    /// The dump failed.
    Failed,
    /// Ctrl-C: everything launched was terminated.
    Interrupted,
}

impl Outcome {
    /// The process exit code: 0, 1, or 130 (interrupted, as shells report SIGINT).
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Succeeded => 0,
            Outcome::Failed => 1,
            Outcome::Interrupted => 130,
        }
    }
}

fn load(args: &RunArgs) -> anyhow::Result<DataDump> {
    let text = crate::cli::read_input(&args.file).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let mut dd = crate::api::parse_documents(&text)
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("{}: no DataDump document", args.file.display()))?
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    if let Err(errors) = crate::api::validate(&dd.spec, &args.site) {
        anyhow::bail!("{}: invalid DataDump:\n{}", args.file.display(), crate::api::validate::summarize(&errors));
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

/// Runs one DataDump to its end.
pub async fn run(args: RunArgs) -> anyhow::Result<Outcome> {
    let dd = load(&args)?;
    let home = MemoryHome {
        connection: read_secret_input(&args.connection_string_env, args.connection_string_file.as_ref())?,
        webhook: read_secret_input(&args.slack_webhook_env, None)?,
    };
    let sdk = args.aws.sdk_config().await;
    let ctx = PlanContext {
        site: args.site.clone(),
        managed_by: args.managed_by.clone(),
        region: args.aws.region.clone(),
        poll_interval: args.poll_interval,
        fast_requeue: Duration::from_millis(500).min(args.poll_interval),
        launch_grace: Duration::from_secs(120),
        ssm_prefix: args.ssm_prefix.clone(),
    };
    let store = S3Store::new(&sdk, args.aws.endpoint_url.is_some());
    let stage = SsmStage::new(&sdk, &args.managed_by);
    let notifier = crate::notify::SlackNotifier::new()?;
    match args.compute {
        ComputeKind::Ec2 => {
            let compute = Ec2Compute::new(&sdk, &args.managed_by);
            drive(dd, Backends { compute, store, stage, notifier }, &home, &ctx, args.poll_interval).await
        }
        ComputeKind::Local => {
            let compute = local::LocalCompute::new(std::path::absolute(&args.workdir)?, args.progress_interval);
            drive(dd, Backends { compute, store, stage, notifier }, &home, &ctx, args.poll_interval).await
        }
    }
}

async fn drive<C: Compute>(
    mut dd: DataDump,
    backends: Backends<C, S3Store, SsmStage>,
    home: &MemoryHome,
    ctx: &PlanContext,
    poll: Duration,
) -> anyhow::Result<Outcome> {
    let mut view = view::View::new(&dd);
    let mut interrupt = std::pin::pin!(tokio::signal::ctrl_c());
    let mut interrupted = false;
    let mut failures = 0u32;
    loop {
        let now = Timestamp::now();
        let step = async {
            let observed = crate::observe::observe(&dd, &backends.compute, &backends.store, now).await?;
            let plan = plan::plan(&dd, &observed, ctx, now);
            let done = act::perform(&plan.actions, &dd, &backends, home).await?;
            Ok::<_, ActError>((plan, done))
        };
        let wait = match step.await {
            Ok((plan, done)) => {
                failures = 0;
                let mut status = plan.status.clone();
                let mut notes = plan.notes.clone();
                notes.extend(act::settle(&mut status, &done, now));
                if let Some(s) = status {
                    dd.status = Some(s);
                }
                view.update(&dd, &notes, &done);
                if interrupted && plan.actions.contains(&Action::RemoveFinalizer) {
                    view.finish(&dd, Some(&done));
                    return Ok(Outcome::Interrupted);
                }
                let phase = dd.status.as_ref().map(|s| s.phase).unwrap_or_default();
                if !interrupted && phase.is_terminal() && plan.actions.is_empty() {
                    view.finish(&dd, None);
                    return Ok(if phase == DumpPhase::Succeeded { Outcome::Succeeded } else { Outcome::Failed });
                }
                plan.requeue_after.unwrap_or(poll).min(poll)
            }
            Err(e) => {
                failures += 1;
                view.error(&e.to_string());
                if matches!(&e, ActError::Backend(b) if !b.is_transient()) && failures > 5 && !interrupted {
                    return Err(e.into());
                }
                Duration::from_secs(1u64 << failures.min(5))
            }
        };
        if interrupted {
            tokio::time::sleep(wait.min(Duration::from_millis(500))).await;
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = &mut interrupt => {
                interrupted = true;
                view.interrupted();
                dd.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
            }
        }
    }
}
