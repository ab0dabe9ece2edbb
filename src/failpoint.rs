//! Crash points for restart tests: when `DATADUMP_FAIL_AT` names a point the process reaches,
//! it exits at once (as a SIGKILL would stop it), leaving whatever it did so far. Unset in
//! production; reading it costs one lookup per process.

use std::sync::LazyLock;

static FAIL_AT: LazyLock<Option<String>> = LazyLock::new(|| std::env::var("DATADUMP_FAIL_AT").ok().filter(|s| !s.is_empty()));

/// Exits the process with code 86 when `point` is the configured crash point.
pub fn hit(point: &str) {
    if FAIL_AT.as_deref() == Some(point) {
        eprintln!("failpoint {point}: exiting");
        std::process::exit(86);
    }
}
