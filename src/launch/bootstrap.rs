//! The EC2 user data: a short POSIX sh bootstrap that schedules the dead-man shutdown at the
//! deadline, downloads the `datadump-worker` binary for the machine's architecture through a
//! presigned URL, checks its SHA-256, runs it (it reads its job from S3 with the instance
//! role) and powers the machine off when the worker ends. A failed download, a
//! checksum mismatch or a wrong architecture is reported at once as `_failure` through a
//! presigned PUT URL, so the controller does not have to wait for the deadline. Pure, no I/O:
//! this module only renders text.
//!
//! Every value is data, in single quotes; no secret is in it (presigned URLs grant one GET of
//! the binary and one PUT of `_failure`, and expire). Local runs set `DATADUMP_SHUTDOWN_CMD`
//! (instead of `shutdown -h`), `DATADUMP_ARCH` (instead of `uname -m`) and
//! `DATADUMP_BOOTSTRAP_DIR`.

use datadump_api::job::{JobError, WorkerJob};
use datadump_api::{DataDumpSpec, MediaType};
use datadump_contract::{Arch, Job};

/// EC2's limit for user data, in bytes before base64.
pub const USER_DATA_LIMIT: usize = 16 * 1024;

/// Why a job cannot become user data.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RenderError {
    /// The spec does not make a job.
    #[error(transparent)]
    Job(#[from] JobError),
    /// No worker binary is configured for the instance's architecture.
    #[error(
        "no worker binary for {0} instances: the controller's --worker-binaries-dir has no datadump-worker-{0}; add it (the controller image carries both) or choose an instance type of another architecture"
    )]
    NoBinary(&'static str),
    /// The user data would exceed EC2's limit.
    #[error(
        "the worker user data would be {size} bytes, more than EC2's limit of {limit}; shorten spec.destination.prefix (the presigned URLs carry it)"
    )]
    TooLarge {
        /// The rendered size in bytes.
        size: usize,
        /// [`USER_DATA_LIMIT`].
        limit: usize,
    },
}

impl RenderError {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            RenderError::Job(JobError::InvalidMediaType(_)) => "invalid_media_type",
            RenderError::Job(JobError::InvalidDate(_)) => "invalid_date",
            RenderError::Job(JobError::NulByte(_)) => "nul_byte",
            RenderError::Job(JobError::InvalidSize(_)) => "invalid_size",
            RenderError::NoBinary(_) => "no_binary",
            RenderError::TooLarge { .. } => "too_large",
        }
    }
}

/// Where a worker binary is downloaded from, and its checksum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinarySource {
    /// An HTTPS (or presigned S3) URL.
    pub url: String,
    /// Lower-case hex SHA-256 of the binary.
    pub sha256: String,
}

/// Quotes a value for POSIX sh: single quotes, with `'` written as `'\''`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

const SCRIPT: &str = r#"set -u
dir=${DATADUMP_BOOTSTRAP_DIR:-/var/lib/datadump}
say() { echo "datadump: $*" >&2; }
halt() { ${DATADUMP_SHUTDOWN_CMD:-shutdown -h} "$@"; }
report() {
  printf '{"exitCode":%s,"step":"%s","message":"bootstrap: %s","logTail":"","attempt":%s,"token":"%s","time":"%s"}' \
    "$3" "$2" "$1" "$attempt" "$token" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$dir/failure.json"
  curl -fsS --retry 3 -X PUT -H 'Content-Type: application/json' --data-binary "@$dir/failure.json" "$failure_url" >/dev/null \
    || say "no _failure written"
}
fail() { say "$1"; report "$1" "${2:-starting}" "${3:-1}"; halt now; exit "${3:-1}"; }
mkdir -p "$dir" || dir=/tmp
left=$((deadline - $(date +%s)))
[ "$left" -gt 0 ] || fail "the deadline has passed" deadline 124
halt "+$(((left + 59) / 60 + 1))" || say "no dead-man shutdown"
arch=${DATADUMP_ARCH:-$(uname -m)}
[ "$arch" = "$want_arch" ] || fail "the binary is for $want_arch, this machine is $arch"
cd "$dir" || fail "cannot use $dir"
curl -fsS --retry 5 --retry-connrefused -o datadump-worker.download "$url" || fail "cannot download the worker binary"
sum=$(sha256sum datadump-worker.download) || fail "cannot checksum the binary"
sum=${sum%% *}
[ "$sum" = "$sha256" ] || { rm -f datadump-worker.download; fail "the worker binary has SHA-256 $sum, expected $sha256: not running it"; }
chmod 755 datadump-worker.download && mv -f datadump-worker.download datadump-worker || fail "cannot install the binary"
./datadump-worker --job-s3 "$job_uri" --job-region "$job_region"
rc=$?
say "the worker exited with code $rc"
[ "$rc" != 2 ] || report "the worker could not read its job $job_uri" starting 2
halt now
exit "$rc"
"#;

/// What the user data of one launch carries besides the job's deadline and token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bootstrap {
    /// The instance's architecture (the binary's).
    pub arch: Arch,
    /// Where the binary is downloaded from, and its checksum.
    pub binary: BinarySource,
    /// A presigned PUT URL for the attempt's `_failure`.
    pub failure_url: String,
    /// `s3://BUCKET/KEY` of the job JSON, read by the worker with its instance role.
    pub job_uri: String,
    /// The job's bucket region.
    pub job_region: String,
}

/// Renders the user data of one worker run.
pub fn render(job: &Job, b: &Bootstrap) -> Result<String, RenderError> {
    let mut out = String::with_capacity(4096);
    out.push_str("#!/bin/sh\n# datadump worker bootstrap: no secret here; the worker reads its job (S3) and credentials (SSM)\n");
    out.push_str(&format!("deadline={}\n", job.deadline.as_second()));
    out.push_str(&format!("attempt={}\n", job.attempt));
    out.push_str(&format!("token={}\n", sh_quote(&json_safe(&job.token))));
    out.push_str(&format!("want_arch={}\n", b.arch.as_str()));
    out.push_str(&format!("url={}\n", sh_quote(&b.binary.url)));
    out.push_str(&format!("sha256={}\n", sh_quote(&b.binary.sha256)));
    out.push_str(&format!("failure_url={}\n", sh_quote(&b.failure_url)));
    out.push_str(&format!("job_uri={}\n", sh_quote(&b.job_uri)));
    out.push_str(&format!("job_region={}\n", sh_quote(&b.job_region)));
    out.push_str(SCRIPT);
    if out.len() > USER_DATA_LIMIT {
        return Err(RenderError::TooLarge {
            size: out.len(),
            limit: USER_DATA_LIMIT,
        });
    }
    Ok(out)
}

/// The token as it may appear inside the bootstrap's JSON (tokens are `ddt-` and hex; anything
/// else is dropped rather than risk invalid JSON).
fn json_safe(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect()
}

/// The key of an attempt's job JSON: next to its output, `PREFIX/DATE/MEDIA/_job/attempt-N.json`.
pub fn job_key(job: &Job) -> String {
    format!("{}_job/attempt-{}.json", job.key_prefix, job.attempt)
}

/// Renders user data for `datadump render`, with placeholders for what only a launch knows
/// (date, attempt, token, deadline, the staged parameter, the region, the presigned URLs).
pub fn render_preview(spec: &DataDumpSpec, media_type: &MediaType) -> Result<(String, Job), RenderError> {
    let w = WorkerJob {
        spec,
        media_type,
        dump_date: "2000-01-01",
        attempt: 1,
        token: "ddt-00000000000000000000000000000000",
        // the largest deadline a valid spec can have (one year from now) takes as many digits
        deadline: jiff::Timestamp::now() + jiff::SignedDuration::from_hours(8760),
        ssm_parameter: spec
            .database
            .ssm_parameter_name
            .as_deref()
            .unwrap_or("/datadump/<uid>/<media-type>"),
        region: "<region>",
    };
    let mut job = datadump_api::job::build(&w)?;
    if spec.database.client_certificate().is_some() {
        job.client_identity_parameter = Some("/datadump/<uid>/<media-type>/client-identity".into());
    }
    job.dump_date = "DUMP-DATE".into();
    job.key_prefix = job.key_prefix.replace("2000-01-01", "DUMP-DATE");
    // presigned URLs are about this long with temporary credentials (IRSA's session token)
    let presigned = |what: &str| {
        format!(
            "https://{}.s3.amazonaws.com/<{what}>?X-Amz-Signature={}",
            spec.destination.bucket,
            "0".repeat(900)
        )
    };
    let arch = Arch::of_instance_type(
        spec.instance
            .instance_type
            .as_deref()
            .unwrap_or(datadump_api::resolve::DEFAULT_INSTANCE_TYPE),
    );
    let b = Bootstrap {
        arch,
        binary: BinarySource {
            url: presigned("worker-binary"),
            sha256: "0".repeat(64),
        },
        failure_url: presigned("_failure"),
        job_uri: format!("s3://{}/{}", job.bucket, job_key(&job)),
        job_region: job.s3_region.clone(),
    };
    Ok((render(&job, &b)?, job))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sample() -> (DataDumpSpec, Job) {
        let spec: DataDumpSpec =
            serde_yaml::from_str("mediaTypes: [image]\ndestination: {bucket: b}\ndatabase: {ssmParameterName: /p}\n").unwrap();
        (spec, datadump_contract::job::sample("ddt-0123456789abcdef"))
    }

    #[test]
    fn arch_follows_the_instance_type() {
        assert_eq!(Arch::of_instance_type("m7g.xlarge"), Arch::Aarch64);
        assert_eq!(Arch::of_instance_type("m7i.xlarge"), Arch::X86_64);
    }

    #[test]
    fn the_bootstrap_is_small_posix_sh_and_carries_values_as_data() {
        let (_, mut job) = sample();
        job.query = "SELECT '$(touch /tmp/datadump-pwned)' `x` \"q\" FROM {media_type}".into();
        let b = Bootstrap {
            arch: Arch::X86_64,
            binary: BinarySource {
                url: "https://h/datadump?a='b'&c=$(touch /tmp/datadump-pwned)".into(),
                sha256: "f".repeat(64),
            },
            failure_url: "https://h/_failure?x=`y`".into(),
            job_uri: "s3://b/k/_job/attempt-1.json".into(),
            job_region: "us-east-1".into(),
        };
        let script = render(&job, &b).unwrap();
        assert!(script.len() < 4096, "{} bytes", script.len());
        // a CA bundle the size of RDS's global-bundle.pem travels in the job object, not here
        let mut with_bundle = job.clone();
        let cert = format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", "M".repeat(1600));
        with_bundle.ca_bundle = Some(cert.repeat(100));
        assert!(with_bundle.ca_bundle.as_ref().unwrap().len() > 160_000);
        with_bundle.client_identity_parameter = Some("/datadump/uid/image/client-identity".into());
        let rendered = render(&with_bundle, &b).unwrap();
        assert_eq!(rendered.len(), script.len(), "the bundle does not change the user data's size");
        assert_eq!(rendered, script, "nor its text");
        assert!(
            Command::new("sh").args(["-n", "-c", &script]).status().unwrap().success(),
            "POSIX sh parses it"
        );
        // the values come back exactly
        let values = script.split("set -u\n").next().unwrap();
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{values}\nprintf '%s\\n' \"$url\" \"$failure_url\" \"$job_uri\" \"$token\""
            ))
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                b.binary.url.as_str(),
                b.failure_url.as_str(),
                b.job_uri.as_str(),
                "ddt-0123456789abcdef"
            ]
        );
        assert!(!std::path::Path::new("/tmp/datadump-pwned").exists());
    }

    #[test]
    fn the_preview_fits_in_4_kib_even_for_the_largest_query() {
        let (mut spec, _) = sample();
        spec.query = format!("SELECT * FROM {{media_type}} WHERE {}", "x = 'é' OR ".repeat(800))[..8192].to_string();
        let (text, job) = render_preview(&spec, &MediaType("image".into())).unwrap();
        assert!(text.len() < 4096, "{} bytes", text.len());
        assert!(text.contains("want_arch=aarch64") && text.contains("_job/attempt-1.json"));
        assert_eq!(job.key_prefix, "data-dump/DUMP-DATE/image/");
    }
}
