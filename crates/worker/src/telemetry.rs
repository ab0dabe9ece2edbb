//! Logging with `tracing`: human-readable or JSON lines, filtered by `RUST_LOG`-style
//! directives. Secrets never reach a log line: they travel only as `SecretValue`, whose Debug
//! output is redacted.

/// Log settings.
#[derive(Clone, Debug, clap::Args)]
pub struct LogArgs {
    /// Log filter, e.g. `info` or `datadump=debug,kube=info`.
    #[arg(long = "log-level", env = "DATADUMP_LOG", default_value = "info")]
    pub level: String,
    /// Emit JSON lines instead of text.
    #[arg(long = "log-json", env = "DATADUMP_LOG_JSON")]
    pub json: bool,
}

/// Installs the global subscriber (once; later calls are ignored).
pub fn init(args: &LogArgs) {
    use std::io::IsTerminal;
    install(args, std::io::stderr, std::io::stderr().is_terminal());
}

/// Installs the worker's subscriber: like [`init`], also keeping the log's tail for `_failure`.
pub fn init_worker(args: &LogArgs, tail: crate::attempt::LogTail) {
    install(args, tail, false);
}

fn install<W>(args: &LogArgs, writer: W, ansi: bool)
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_new(&args.level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    let _ = if args.json { builder.json().try_init() } else { builder.try_init() };
}
