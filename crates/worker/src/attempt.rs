//! `datadump-worker` (and `datadump worker`): one attempt of one media type. Reads the connection string (and the
//! client certificate, when the job names one) from SSM (instance role on EC2, IMDSv2), runs
//! the engine straight into S3, reports progress, writes
//! `_manifest.json` and then `_success` — or, on any error, the deadline or a stop signal,
//! aborts its unfinished uploads and writes `_failure` with the cause and a redacted log tail.
//! Once `_success` is being written, a stop signal no longer interrupts it. I/O.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;

use datadump_contract::job::DEFAULT_MAX_PARALLELISM;
use datadump_contract::{
    self as contract, Compression, Engine, FailureReport, Job, Manifest, ManifestColumn, ManifestFile, ProgressReport, Stage, SuccessReport,
};

use crate::aws::{S3Store, call};
use crate::s3sink::{DEFAULT_PART_SIZE, S3Sink};
use crate::sink::{PartInfo, Progress};
use crate::store::{BackendError, Bucket, ObjectStore};

mod redact;

use redact::register_identity;
pub use redact::{LOG_TAIL_BYTES, LogTail, Secrets, TeeWriter};

/// The worker's command line: `datadump-worker --job-s3 s3://BUCKET/KEY` on EC2 (what the
/// bootstrap runs), `datadump worker --job-file job.json` locally.
#[derive(Debug, clap::Parser)]
#[command(
    name = "datadump-worker",
    version,
    about = "One attempt of one datadump media type: PostgreSQL to Parquet on S3"
)]
pub struct WorkerCmd {
    /// Worker settings.
    #[command(flatten)]
    pub worker: WorkerArgs,
    /// Logging.
    #[command(flatten)]
    pub log: crate::telemetry::LogArgs,
}

/// The `datadump-worker` binary: parse the command line, run the attempt, exit with its code.
pub fn main() -> std::process::ExitCode {
    use clap::Parser as _;
    run_command(WorkerCmd::parse())
}

/// Runs one attempt as the command line says; the exit code follows [`WorkerError::exit_code`].
pub fn run_command(cmd: WorkerCmd) -> std::process::ExitCode {
    let tail = LogTail::default();
    crate::telemetry::init_worker(&cmd.log, tail.clone());
    let code = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(run(cmd.worker, tail)),
        Err(e) => {
            eprintln!("datadump-worker: cannot start the async runtime: {e}");
            70
        }
    };
    std::process::ExitCode::from(code.clamp(0, 255) as u8)
}

/// `datadump worker` settings (the job comes from the bootstrap or the local runner).
#[derive(Clone, Debug, clap::Args)]
pub struct WorkerArgs {
    /// The job as a JSON file.
    #[arg(long = "job-file", env = "DATADUMP_JOB_FILE", conflicts_with = "job_s3")]
    pub job_file: Option<PathBuf>,
    /// The job as an S3 object, `s3://BUCKET/KEY`, read with the instance role (what the EC2
    /// bootstrap passes).
    #[arg(long = "job-s3", env = "DATADUMP_JOB_S3")]
    pub job_s3: Option<String>,
    /// The region of `--job-s3`'s bucket.
    #[arg(long = "job-region", env = "AWS_REGION", default_value = "us-east-1")]
    pub job_region: String,
    /// Scratch folder (only the odbc2parquet engine writes there).
    #[arg(long = "workdir", env = "DATADUMP_WORKDIR", default_value = "/var/lib/datadump")]
    pub workdir: PathBuf,
    /// Seconds between progress reports.
    #[arg(long = "progress-interval", env = "DATADUMP_PROGRESS_INTERVAL", default_value_t = 60)]
    pub progress_interval: u64,
    /// Multipart upload part size in bytes (at least 5 MiB).
    #[arg(long = "part-size", env = "DATADUMP_PART_SIZE", default_value_t = DEFAULT_PART_SIZE)]
    pub part_size: usize,
    /// Endpoint URL for S3 and SSM (a local emulator); implies path-style S3 addressing.
    #[arg(long = "aws-endpoint-url", env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
}

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The job could not be read.
    #[error("{0}")]
    Job(String),
    /// The connection string could not be read from SSM.
    #[error("cannot read the connection string from SSM parameter {parameter}: {source}")]
    Credentials {
        /// The parameter.
        parameter: String,
        /// The cause.
        #[source]
        source: BackendError,
    },
    /// The client certificate and key could not be read from SSM.
    #[error("cannot read the client certificate from SSM parameter {parameter}: {source}")]
    ClientIdentity {
        /// The parameter.
        parameter: String,
        /// The cause.
        #[source]
        source: BackendError,
    },
    /// The postgres engine failed.
    #[error(transparent)]
    Postgres(#[from] super::pg::EngineError),
    /// The odbc2parquet engine failed.
    #[error(transparent)]
    Odbc(#[from] super::odbc::OdbcError),
    /// A contract document could not be written.
    #[error("cannot write {key}: {source}")]
    Put {
        /// The key.
        key: String,
        /// The cause.
        #[source]
        source: BackendError,
    },
    /// The dump's deadline passed.
    #[error("the dump's deadline {0} has passed")]
    Deadline(Timestamp),
    /// A stop signal arrived (the controller terminates the instance, or Ctrl-C).
    #[error("stopped by {0}")]
    Signal(&'static str),
}

impl WorkerError {
    /// A short, bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            WorkerError::Job(_) => "job",
            WorkerError::Credentials { .. } | WorkerError::ClientIdentity { .. } => "credentials",
            WorkerError::Postgres(e) => e.metric_label(),
            WorkerError::Odbc(e) => e.metric_label(),
            WorkerError::Put { .. } => "put",
            WorkerError::Deadline(_) => "deadline",
            WorkerError::Signal(_) => "signal",
        }
    }

    /// The process exit code: 124 for the deadline (as `timeout` does), 128+N for signal N.
    pub fn exit_code(&self) -> i32 {
        match self {
            WorkerError::Deadline(_) => 124,
            WorkerError::Signal("SIGTERM") => 143,
            WorkerError::Signal("SIGINT") => 130,
            WorkerError::Signal(_) => 129,
            _ => 1,
        }
    }
}

/// Reads the job from the arguments: a file, or S3.
pub async fn read_job(args: &WorkerArgs) -> Result<Job, WorkerError> {
    let text = match (&args.job_file, &args.job_s3) {
        (Some(path), _) => std::fs::read_to_string(path).map_err(|e| WorkerError::Job(format!("{}: {e}", path.display())))?,
        (None, Some(uri)) => {
            let (bucket, key) = uri
                .strip_prefix("s3://")
                .and_then(|r| r.split_once('/'))
                .ok_or_else(|| WorkerError::Job(format!("--job-s3 {uri} is not s3://BUCKET/KEY")))?;
            let config = aws_config(&args.job_region, args.endpoint_url.as_deref()).await;
            let store = S3Store::new(&config, args.endpoint_url.is_some());
            let bucket = Bucket::named(bucket);
            let body = store
                .get(bucket, key)
                .await
                .map_err(|e| WorkerError::Job(format!("cannot read the job {uri}: {e}")))?;
            let body = body.ok_or_else(|| WorkerError::Job(format!("the job {uri} does not exist")))?;
            String::from_utf8(body).map_err(|_| WorkerError::Job("the job is not UTF-8".into()))?
        }
        (None, None) => return Err(WorkerError::Job("give the job with --job-s3 or --job-file".into())),
    };
    Job::from_json(&text).map_err(|e| WorkerError::Job(e.to_string()))
}

/// The SDK configuration of a worker: the instance role (or the environment's credentials),
/// generous retries for a week-long dump.
async fn aws_config(region: &str, endpoint_url: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(10));
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// The Parquet codec of a spec's compression name.
pub fn parquet_compression(c: Compression) -> parquet::basic::Compression {
    use parquet::basic::{BrotliLevel, Compression as P, GzipLevel, ZstdLevel};
    match c {
        Compression::Zstd => P::ZSTD(ZstdLevel::try_new(super::pg::DEFAULT_ZSTD_LEVEL).expect("a valid zstd level")),
        Compression::Snappy => P::SNAPPY,
        Compression::Gzip => P::GZIP(GzipLevel::default()),
        Compression::Lz4 => P::LZ4_RAW,
        Compression::Brotli => P::BROTLI(BrotliLevel::default()),
        Compression::Uncompressed => P::UNCOMPRESSED,
    }
}

/// Everything one run shares.
struct Ctx {
    job: Job,
    args: WorkerArgs,
    store: S3Store,
    ssm: aws_sdk_ssm::Client,
    progress: Arc<Progress>,
    stage: Mutex<Stage>,
    started: Timestamp,
    clock: Instant,
    secrets: Secrets,
}

/// What the engine produced.
struct Output {
    parts: Vec<PartInfo>,
    columns: Vec<ManifestColumn>,
    description: Option<String>,
    writer: String,
    connection: Option<datadump_contract::ConnectionReport>,
}

impl Ctx {
    fn bucket(&self) -> Bucket<'_> {
        self.job.bucket()
    }

    async fn put(&self, name: &str, body: String) -> Result<(), WorkerError> {
        let key = self.job.key(name);
        let body = self.secrets.redact(&body).into_bytes();
        self.store
            .put(self.bucket(), &key, body, "application/json")
            .await
            .map_err(|source| WorkerError::Put { key: key.clone(), source })?;
        tracing::info!(key = %key, "wrote");
        Ok(())
    }

    fn stage(&self) -> Stage {
        *self.stage.lock().expect("stage")
    }

    fn report(&self) -> ProgressReport {
        let rows = self.progress.rows.load(Ordering::Relaxed);
        let estimated = self.progress.estimated_rows.load(Ordering::Relaxed);
        let secs = self.clock.elapsed().as_secs_f64();
        let rate = (secs >= 1.0).then(|| (rows as f64 / secs) as u64);
        let eta = match rate {
            Some(r) if r > 0 && estimated > rows => {
                Some(Timestamp::now() + jiff::SignedDuration::from_secs(((estimated - rows) / r) as i64))
            }
            _ => None,
        };
        ProgressReport {
            stage: self.stage(),
            files: self.progress.files.load(Ordering::Relaxed),
            bytes: self.progress.bytes.load(Ordering::Relaxed),
            rows: Some(rows),
            estimated_rows: (estimated > 0).then_some(estimated),
            rows_per_second: rate,
            eta,
            connection: self.progress.connection.get().cloned(),
            attempt: self.job.attempt,
            token: self.job.token.clone(),
            time: Timestamp::now(),
        }
    }

    /// Enters a stage and reports it; a missed heartbeat must not fail a long dump.
    async fn enter(&self, stage: Stage) {
        *self.stage.lock().expect("stage") = stage;
        tracing::info!(?stage, "stage");
        self.heartbeat().await;
    }

    async fn heartbeat(&self) {
        let body = serde_json::to_string(&self.report()).expect("progress serializes");
        if let Err(e) = self.put(contract::PROGRESS, body).await {
            tracing::warn!(error = %e, "progress report not written");
        }
    }

    /// A SecureString's value (decrypted), or `""`.
    async fn parameter(&self, name: &str) -> Result<String, BackendError> {
        let req = self.ssm.get_parameter().name(name).with_decryption(true);
        let out = call("GetParameter", req.send()).await?;
        Ok(out.parameter.and_then(|p| p.value).unwrap_or_default())
    }

    async fn connection_string(&self) -> Result<String, WorkerError> {
        let parameter = self.job.ssm_parameter.clone();
        let value = self.parameter(&parameter).await.map_err(|source| WorkerError::Credentials {
            parameter: parameter.clone(),
            source,
        })?;
        if value.is_empty() {
            return Err(WorkerError::Job(format!("SSM parameter {parameter} is empty")));
        }
        self.secrets.add(value.clone());
        tracing::info!(parameter = %parameter, "read the connection string");
        Ok(value)
    }

    /// The client certificate chain and its key (PEM), when the job names their parameter;
    /// registered for redaction: the whole value, the key block and each line of the key.
    async fn client_identity(&self) -> Result<Option<String>, WorkerError> {
        let Some(parameter) = self.job.client_identity_parameter.clone() else {
            return Ok(None);
        };
        let value = self.parameter(&parameter).await.map_err(|source| WorkerError::ClientIdentity {
            parameter: parameter.clone(),
            source,
        })?;
        if value.trim().is_empty() {
            return Err(WorkerError::Job(format!("SSM parameter {parameter} is empty")));
        }
        register_identity(&self.secrets, &value);
        tracing::info!(parameter = %parameter, "read the client certificate");
        Ok(Some(value))
    }

    async fn dump(&self, conn: &str, client_identity: Option<String>, sink: Arc<S3Sink>) -> Result<Output, WorkerError> {
        let job = &self.job;
        // the same material for both engines: the bundle from the job, the identity from SSM
        let tls = super::pg::TlsMaterial {
            ca_bundle: job.ca_bundle.clone(),
            client_identity,
        };
        match job.engine {
            Engine::Postgres => {
                if let Some(pw) = super::pg::password_of(conn) {
                    self.secrets.add(pw);
                }
                let vcpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
                let opts = super::pg::PgOptions {
                    parallelism: job.output.parallelism.unwrap_or(vcpus.min(DEFAULT_MAX_PARALLELISM)) as usize,
                    compression: match (job.output.compression, job.output.compression_level) {
                        (Compression::Zstd, Some(level)) => parquet::basic::Compression::ZSTD(
                            parquet::basic::ZstdLevel::try_new(level.into())
                                .map_err(|e| WorkerError::Job(format!("spec.output.compressionLevel: {e}")))?,
                        ),
                        (c, _) => parquet_compression(c),
                    },
                    content_defined_chunking: job.output.content_defined_chunking,
                    types: super::pg::types::TypeChoices {
                        wide_numeric: job.output.wide_numeric,
                        time: job.output.time,
                    },
                    row_group_bytes: job.output.row_group_bytes as usize,
                    file_size_threshold: job.output.file_size_threshold,
                    tls,
                    ..Default::default()
                };
                let media = job.media_type.as_str();
                let summary = super::pg::export(conn, &job.query, media, Some(media), &opts, sink, self.progress.clone()).await?;
                Ok(Output {
                    parts: summary.parts,
                    columns: summary
                        .columns
                        .into_iter()
                        .map(|c| ManifestColumn {
                            name: c.name,
                            source_type: c.pg_type,
                            parquet_type: c.parquet_type,
                            nullable: c.nullable,
                            description: c.description,
                        })
                        .collect(),
                    description: summary.table_description,
                    connection: summary.connection,
                    writer: format!(
                        "datadump {} postgres ({} stream{})",
                        env!("CARGO_PKG_VERSION"),
                        summary.streams,
                        if summary.streams == 1 { "" } else { "s" }
                    ),
                })
            }
            Engine::Odbc2parquet => {
                let o = job
                    .odbc2parquet
                    .as_ref()
                    .ok_or_else(|| WorkerError::Job("the job has no odbc2parquet settings".into()))?;
                super::odbc::passwords(conn).into_iter().for_each(|p| self.secrets.add(p));
                let secrets = self.secrets.clone();
                let query = job.rendered_query();
                let run = super::odbc::OdbcRun {
                    conn,
                    query: &query,
                    media_type: &job.media_type,
                    job: o,
                    workdir: &self.args.workdir,
                    tls: &tls,
                };
                let summary = super::odbc::export(run, sink, self.progress.clone(), move |line| secrets.redact(line)).await?;
                Ok(Output {
                    parts: summary.parts,
                    columns: Vec::new(),
                    description: None,
                    connection: None,
                    writer: format!("odbc2parquet {}", summary.version),
                })
            }
        }
    }

    async fn finish(&self, out: Output) -> Result<SuccessReport, WorkerError> {
        self.enter(Stage::Finishing).await;
        let rows: u64 = out.parts.iter().map(|p| p.rows).sum();
        let files: Vec<ManifestFile> = out
            .parts
            .iter()
            .map(|p| ManifestFile {
                key: self.job.key(&p.name),
                size: p.size,
                sha256: p.sha256.clone(),
                rows: Some(p.rows),
            })
            .collect();
        let manifest = Manifest {
            version: contract::MANIFEST_VERSION,
            media_type: self.job.media_type.clone(),
            dump_date: self.job.dump_date.clone(),
            rows: Some(rows),
            columns: out.columns,
            description: out.description,
            started_at: self.started,
            writer: out.writer,
            connection: out.connection,
            attempt: self.job.attempt,
            token: self.job.token.clone(),
            time: Timestamp::now(),
            files,
        };
        let success = SuccessReport {
            files: manifest.files.len() as u64,
            bytes: manifest.bytes(),
            rows: Some(rows),
            attempt: self.job.attempt,
            token: self.job.token.clone(),
            time: Timestamp::now(),
        };
        self.put(contract::MANIFEST, serde_json::to_string_pretty(&manifest).expect("manifest"))
            .await?;
        self.put(contract::SUCCESS, serde_json::to_string(&success).expect("success"))
            .await?;
        Ok(success)
    }
}

/// Waits for SIGTERM, SIGINT or SIGHUP and names it.
async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = hup.recv() => "SIGHUP",
    }
}

/// Runs one attempt; returns the process exit code.
pub async fn run(args: WorkerArgs, tail: LogTail) -> i32 {
    let job = match read_job(&args).await {
        Ok(job) => job,
        Err(e) => {
            tracing::error!(error = %e, "no job");
            return 2;
        }
    };
    // the handlers replace the default "die at once", so a stop always reports `_failure`
    let signals = tokio::spawn(stop_signal());
    let started = Timestamp::now();
    let config = aws_config(&job.region, args.endpoint_url.as_deref()).await;
    let ctx = Arc::new(Ctx {
        store: S3Store::new(&config, args.endpoint_url.is_some()),
        ssm: aws_sdk_ssm::Client::new(&config),
        progress: Arc::new(Progress::default()),
        stage: Mutex::new(Stage::Starting),
        started,
        clock: Instant::now(),
        secrets: Secrets::default(),
        job,
        args,
    });
    let job = &ctx.job;
    tracing::info!(
        media_type = %job.media_type, date = %job.dump_date, attempt = job.attempt, engine = job.engine.as_str(),
        deadline = %job.deadline, version = env!("CARGO_PKG_VERSION"), "datadump worker"
    );
    let sink = Arc::new(S3Sink::new(
        ctx.store.client(Some(&job.s3_region)),
        job.bucket(),
        &job.key_prefix,
        &job.media_type,
        ctx.args.part_size,
        ctx.progress.clone(),
    ));
    let left = job.deadline.duration_since(Timestamp::now());
    let deadline = tokio::time::sleep(Duration::try_from(left).unwrap_or_default());

    let work = {
        let ctx = ctx.clone();
        let sink = sink.clone();
        async move {
            ctx.enter(Stage::Starting).await;
            ctx.enter(Stage::ReadingCredentials).await;
            let conn = ctx.connection_string().await?;
            let client_identity = ctx.client_identity().await?;
            ctx.enter(Stage::Dumping).await;
            let beat = tokio::spawn({
                let ctx = ctx.clone();
                async move {
                    let every = Duration::from_secs(ctx.args.progress_interval.max(1));
                    loop {
                        tokio::time::sleep(every).await;
                        ctx.heartbeat().await;
                    }
                }
            });
            let out = ctx.dump(&conn, client_identity, sink as Arc<S3Sink>).await;
            beat.abort();
            out
        }
    };
    let result = tokio::select! {
        r = work => r,
        _ = deadline => Err(WorkerError::Deadline(ctx.job.deadline)),
        s = signals => Err(WorkerError::Signal(s.unwrap_or("SIGTERM"))),
    };
    // every upload has completed or been aborted before anything else is written
    sink.drain().await;
    let result = match result {
        // committing: nothing interrupts writing the manifest and `_success` now
        Ok(out) => ctx.finish(out).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(s) => {
            tracing::info!(files = s.files, bytes = s.bytes, rows = s.rows, "done");
            0
        }
        Err(e) => {
            let step = if matches!(e, WorkerError::Deadline(_)) {
                Stage::Deadline
            } else {
                ctx.stage()
            };
            let message = ctx.secrets.redact(&e.to_string());
            tracing::error!(step = ?step, error = %message, "failed");
            let report = FailureReport {
                exit_code: e.exit_code(),
                step,
                message: message.clone(),
                log_tail: ctx.secrets.redact(&tail.text()),
                attempt: ctx.job.attempt,
                token: ctx.job.token.clone(),
                time: Timestamp::now(),
            };
            if let Err(e) = ctx.put(contract::FAILURE, serde_json::to_string(&report).expect("failure")).await {
                tracing::error!(error = %e, "could not write _failure");
            }
            e.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_conventions() {
        assert_eq!(WorkerError::Deadline(Timestamp::UNIX_EPOCH).exit_code(), 124);
        assert_eq!(WorkerError::Signal("SIGTERM").exit_code(), 143);
        assert_eq!(WorkerError::Job("x".into()).exit_code(), 1);
    }
}
