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
    let filter = tracing_subscriber::EnvFilter::try_new(&args.level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = if args.json { builder.json().try_init() } else { builder.try_init() };
}

/// Installs the worker's subscriber: like [`init`], also keeping the log's tail for `_failure`.
pub fn init_worker(args: &LogArgs, tail: crate::worker::runtime::LogTail) {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(tail).with_ansi(false);
    let _ = if args.json { builder.json().try_init() } else { builder.try_init() };
}
