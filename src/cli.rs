//! Command-line interface (clap). Every flag can also come from the environment, so the Helm
//! chart configures the controller through env vars. Dispatch only; the work lives elsewhere.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::api::{self, SiteDefaults};

/// datadump: export PostgreSQL tables to Parquet on S3 with short-lived EC2 workers.
#[derive(Debug, Parser)]
#[command(name = "datadump", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the Kubernetes controller.
    Controller(Box<ControllerCmd>),
    /// Print the CustomResourceDefinitions (DataDump, DataDumpSchedule) as YAML.
    Crd(CrdArgs),
    /// Run one DataDump to completion without a cluster (exit 0 on Succeeded, 1 on Failed,
    /// 130 when interrupted).
    Run(Box<RunCmd>),
    /// Print the worker bootstrap (EC2 user data) and its job for one media type, with
    /// placeholders for the date, token, deadline and staged parameter.
    Render(RenderArgs),
    /// Run one worker attempt from a job (what the EC2 bootstrap and `run --compute local`
    /// start): dump one media type to Parquet on S3 and write `_success` or `_failure`.
    Worker(Box<datadump_worker::attempt::WorkerCmd>),
    /// Check DataDump and DataDumpSchedule documents without a cluster: prints every problem
    /// with its field path and exits non-zero when any document is invalid.
    Validate(ValidateArgs),
    /// Check that a finished dump is complete before handing it to a dataset host (every
    /// file present with its size and SHA-256, every Parquet footer readable), print a summary
    /// and, with --grant-read, the bucket policy that lets a principal read it. Changes nothing;
    /// exits 1 when anything is missing or wrong.
    Handoff(Box<crate::handoff::HandoffArgs>),
}

/// `datadump controller`.
#[derive(Debug, clap::Args)]
pub struct ControllerCmd {
    /// Controller settings.
    #[command(flatten)]
    pub controller: crate::controller::ControllerArgs,
    /// Logging.
    #[command(flatten)]
    pub log: crate::telemetry::LogArgs,
}

/// `datadump run`.
#[derive(Debug, clap::Args)]
pub struct RunCmd {
    /// Runner settings.
    #[command(flatten)]
    pub run: crate::run::RunArgs,
    /// Logging.
    #[command(flatten)]
    pub log: crate::telemetry::LogArgs,
}

/// `datadump render`.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// The DataDump (YAML; the first document).
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
    /// The media type to render the worker for (default: the first one).
    #[arg(long)]
    pub media_type: Option<String>,
    /// Also print the job the controller writes to S3 for the worker.
    #[arg(long)]
    pub expand: bool,
}

/// Runs `datadump render`.
pub fn render(args: &RenderArgs, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    let text = crate::input::read_input(&args.file).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let dd = api::parse_documents(&text)
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("{}: no DataDump document", args.file.display()))?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let media = match &args.media_type {
        Some(m) => dd
            .spec
            .media_types
            .iter()
            .find(|x| x.as_str() == m)
            .ok_or_else(|| anyhow::anyhow!("{m} is not in spec.mediaTypes"))?,
        None => dd
            .spec
            .media_types
            .first()
            .ok_or_else(|| anyhow::anyhow!("spec.mediaTypes is empty"))?,
    };
    let (script, job) = crate::launch::render_preview(&dd.spec, media)?;
    out.write_all(script.as_bytes())?;
    if args.expand {
        writeln!(out, "\n# ---- the job the controller writes to S3 at launch:")?;
        writeln!(out, "{}", serde_json::to_string_pretty(&job)?)?;
    }
    Ok(())
}

/// `datadump crd`.
#[derive(Debug, clap::Args)]
pub struct CrdArgs {
    /// Print only this kind's CRD (default: every CRD, as one multi-document YAML).
    #[arg(long, value_enum)]
    pub kind: Option<api::ResourceKind>,
}

/// `datadump validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// YAML files with one or more DataDump or DataDumpSchedule documents (`-` for standard
    /// input).
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// The controller's site defaults, so the check matches what the controller will decide.
    #[command(flatten)]
    pub site: SiteDefaults,
}

/// Runs `datadump validate`; returns whether every document was valid.
pub fn validate(args: &ValidateArgs, out: &mut impl std::io::Write) -> anyhow::Result<bool> {
    let mut all_ok = true;
    for file in &args.files {
        let text = crate::input::read_input(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        let docs = api::parse_any(&text);
        if docs.is_empty() {
            writeln!(out, "{}: no DataDump or DataDumpSchedule documents", file.display())?;
            all_ok = false;
        }
        for doc in docs {
            let result = doc.map_err(|e| vec![e]).and_then(|doc| match doc {
                api::Document::DataDump(dd) => {
                    let name = dd.metadata.name.clone().unwrap_or_else(|| "(unnamed)".into());
                    with_launch_check(&dd.spec, api::validate(&dd.spec, &args.site)).map(|()| format!("DataDump {name}"))
                }
                api::Document::Schedule(s) => {
                    let name = s.metadata.name.clone().unwrap_or_else(|| "(unnamed)".into());
                    let valid = api::validate_schedule(s.metadata.name.as_deref(), &s.spec, &args.site);
                    with_launch_check(&s.spec.template, valid).map(|()| format!("DataDumpSchedule {name}"))
                }
            });
            match result {
                Ok(what) => writeln!(out, "{}: {what}: valid", file.display())?,
                Err(errors) => {
                    all_ok = false;
                    for e in errors {
                        writeln!(out, "{}: {e}", file.display())?;
                    }
                }
            }
        }
    }
    Ok(all_ok)
}

/// A valid spec also checked by the launch side (the user data fits), as the controller does.
fn with_launch_check(spec: &api::DataDumpSpec, valid: Result<(), Vec<api::FieldError>>) -> Result<(), Vec<api::FieldError>> {
    valid.and_then(|()| crate::launch::check_user_data(spec).map_or(Ok(()), |e| Err(vec![e])))
}

/// Parses the command line and runs the chosen subcommand.
pub fn run() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    crate::metrics::count_aws_calls();
    match cli.command {
        Command::Controller(cmd) => {
            crate::telemetry::init(&cmd.log);
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(crate::controller::run(cmd.controller))?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Run(cmd) => {
            crate::telemetry::init(&cmd.log);
            let runtime = tokio::runtime::Runtime::new()?;
            let outcome = runtime.block_on(crate::run::run(cmd.run))?;
            Ok(std::process::ExitCode::from(outcome.exit_code()))
        }
        Command::Worker(cmd) => Ok(datadump_worker::attempt::run_command(*cmd)),
        Command::Crd(args) => {
            match args.kind {
                Some(kind) => print!("{}", api::crd_yaml_of(kind)),
                None => print!("{}", api::crd_yaml()),
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Render(args) => {
            render(&args, &mut std::io::stdout())?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Handoff(args) => {
            crate::telemetry::init(&args.log);
            let runtime = tokio::runtime::Runtime::new()?;
            let ok = runtime.block_on(crate::handoff::run(*args, &mut std::io::stdout()))?;
            Ok(std::process::ExitCode::from(if ok { 0 } else { 1 }))
        }
        Command::Validate(args) => {
            let ok = validate(&args, &mut std::io::stdout())?;
            Ok(if ok {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::from(1)
            })
        }
    }
}
