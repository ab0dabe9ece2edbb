//! Test helpers for the worker: a sample job, and running the rendered script's functions in
//! bash without running the worker (`DATADUMP_LIB=1`). Test-only; does I/O (temp files, bash).

use std::io::Write;
use std::process::{Command, Output};

use super::{WorkerJob, render};
use crate::api::{DataDumpSpec, MediaType};

/// A valid spec reading its credentials from `/datadump/catalog`.
pub(crate) fn sample_spec() -> DataDumpSpec {
    serde_yaml::from_str(
        "mediaTypes: [image, audio]\ndestination: {bucket: my-datasets}\ndatabase: {ssmParameterName: /datadump/catalog}\n",
    )
    .unwrap()
}

/// A job at attempt 2 in eu-west-1.
pub(crate) fn job<'a>(
    spec: &'a DataDumpSpec,
    media_type: &'a MediaType,
    date: &'a str,
    token: &'a str,
    parameter: &'a str,
    deadline: jiff::Timestamp,
) -> WorkerJob<'a> {
    WorkerJob {
        spec,
        media_type,
        dump_date: date,
        attempt: 2,
        token,
        deadline,
        ssm_parameter: parameter,
        region: "eu-west-1",
    }
}

/// The user data of `image` on 2026-11-01, token `tok-"1"`, deadline in an hour.
pub(crate) fn sample_script() -> String {
    let spec = sample_spec();
    let media = MediaType("image".into());
    render(&job(
        &spec,
        &media,
        "2026-11-01",
        "tok-\"1\"",
        "/datadump/catalog",
        jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1),
    ))
    .unwrap()
}

fn script_file(script: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(script.as_bytes()).unwrap();
    f
}

/// Whether `bash -n` accepts the script.
pub(crate) fn bash_syntax_ok(script: &str) -> bool {
    let f = script_file(script);
    let out = Command::new("bash").arg("-n").arg(f.path()).output().unwrap();
    if !out.status.success() {
        eprintln!("bash -n: {}", String::from_utf8_lossy(&out.stderr));
    }
    out.status.success()
}

/// Sources the script with `DATADUMP_LIB=1` (job values and functions only), then runs
/// `snippet` in the same shell.
pub(crate) fn lib_run(script: &str, snippet: &str) -> Output {
    let f = script_file(script);
    Command::new("bash")
        .args(["-c", "export DATADUMP_LIB=1; source \"$0\"; eval \"$1\""])
        .arg(f.path())
        .arg(snippet)
        .output()
        .unwrap()
}

/// [`lib_run`]'s standard output; panics when the snippet fails.
pub(crate) fn lib_out(script: &str, snippet: &str) -> String {
    let out = lib_run(script, snippet);
    assert!(out.status.success(), "{snippet}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// [`lib_out`] parsed as JSON.
pub(crate) fn lib_json<T: serde::de::DeserializeOwned>(script: &str, snippet: &str) -> T {
    let out = lib_out(script, snippet);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}
