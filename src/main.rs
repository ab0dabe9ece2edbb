//! The `datadump` binary: parse the command line, run the subcommand.
#![forbid(unsafe_code)]

fn main() -> anyhow::Result<std::process::ExitCode> {
    datadump::cli::run()
}
