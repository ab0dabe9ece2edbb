//! The EC2 user data: a short POSIX sh bootstrap that schedules the dead-man shutdown at the
//! deadline, downloads the `datadump` binary for the machine's architecture, checks its
//! SHA-256, runs `datadump worker` with the job and powers the machine off when the worker
//! ends (on success and on failure alike). Pure, no I/O: this module only renders text.
//!
//! Every value is data: the job travels base64-encoded (JSON, no secret in it), the URL and
//! checksum in single quotes. Local runs set `DATADUMP_SHUTDOWN_CMD` (instead of
//! `shutdown -h`), `DATADUMP_ARCH` (instead of `uname -m`) and `DATADUMP_BOOTSTRAP_DIR`.

use base64::Engine as _;

use super::job::Job;
use super::{RenderError, WorkerJob};
use crate::api::{DataDumpSpec, MediaType};

/// EC2's limit for user data, in bytes before base64.
pub const USER_DATA_LIMIT: usize = 16 * 1024;

/// A CPU architecture EC2 instances have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// x86_64 (Intel, AMD).
    X86_64,
    /// aarch64 (Graviton).
    Aarch64,
}

impl Arch {
    /// The architecture of an instance type (Graviton types are arm64).
    pub fn of_instance_type(instance_type: &str) -> Arch {
        if crate::api::resolve::is_arm64(instance_type) {
            Arch::Aarch64
        } else {
            Arch::X86_64
        }
    }

    /// The name `uname -m` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
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

/// The worker binaries a controller hands to its instances: a site setting (Helm values
/// `worker.binaries`).
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct WorkerBinaries {
    /// URL of the `datadump` binary for x86_64 instances.
    #[arg(long = "worker-url-x86-64", env = "DATADUMP_WORKER_URL_X86_64")]
    pub x86_64_url: Option<String>,
    /// SHA-256 (hex) of the x86_64 binary.
    #[arg(long = "worker-sha256-x86-64", env = "DATADUMP_WORKER_SHA256_X86_64")]
    pub x86_64_sha256: Option<String>,
    /// URL of the `datadump` binary for aarch64 (Graviton) instances.
    #[arg(long = "worker-url-aarch64", env = "DATADUMP_WORKER_URL_AARCH64")]
    pub aarch64_url: Option<String>,
    /// SHA-256 (hex) of the aarch64 binary.
    #[arg(long = "worker-sha256-aarch64", env = "DATADUMP_WORKER_SHA256_AARCH64")]
    pub aarch64_sha256: Option<String>,
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl WorkerBinaries {
    /// The binary for `arch`, when both its URL and a well-formed checksum are set.
    pub fn for_arch(&self, arch: Arch) -> Option<BinarySource> {
        let (url, sha) = match arch {
            Arch::X86_64 => (&self.x86_64_url, &self.x86_64_sha256),
            Arch::Aarch64 => (&self.aarch64_url, &self.aarch64_sha256),
        };
        match (url, sha) {
            (Some(url), Some(sha)) if !url.is_empty() && is_sha256(sha) => Some(BinarySource {
                url: url.clone(),
                sha256: sha.clone(),
            }),
            _ => None,
        }
    }

    /// Problems with the settings (a URL without checksum, a malformed checksum), one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (arch, url, sha) in [
            ("x86-64", &self.x86_64_url, &self.x86_64_sha256),
            ("aarch64", &self.aarch64_url, &self.aarch64_sha256),
        ] {
            match (url, sha) {
                (Some(_), None) => out.push(format!("--worker-url-{arch} is set without --worker-sha256-{arch}")),
                (None, Some(_)) => out.push(format!("--worker-sha256-{arch} is set without --worker-url-{arch}")),
                (_, Some(s)) if !is_sha256(s) => out.push(format!("--worker-sha256-{arch} is not 64 lower-case hex digits")),
                _ => {}
            }
        }
        out
    }
}

/// Quotes a value for POSIX sh: single quotes, with `'` written as `'\''`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

const SCRIPT: &str = r#"set -u
dir=${DATADUMP_BOOTSTRAP_DIR:-/var/lib/datadump}
say() { echo "datadump bootstrap: $*" >&2; }
halt() { ${DATADUMP_SHUTDOWN_CMD:-shutdown -h} "$@"; }
fail() { say "$*"; halt now; exit 1; }
left=$((deadline - $(date +%s)))
[ "$left" -gt 0 ] || fail "the deadline has passed"
halt "+$(((left + 59) / 60 + 1))" || say "could not schedule the dead-man shutdown"
arch=${DATADUMP_ARCH:-$(uname -m)}
[ "$arch" = "$want_arch" ] || fail "the worker binary is for $want_arch but this machine is $arch"
mkdir -p "$dir" && cd "$dir" || fail "cannot use $dir"
curl -fsS --retry 5 --retry-connrefused -o datadump.download "$url" || fail "cannot download the worker binary"
sum=$(sha256sum datadump.download) || fail "cannot checksum the worker binary"
sum=${sum%% *}
[ "$sum" = "$sha256" ] || { rm -f datadump.download; fail "the worker binary's SHA-256 is $sum, expected $sha256: not running it"; }
chmod 755 datadump.download && mv -f datadump.download datadump || fail "cannot install the worker binary"
./datadump worker --job-base64 "$job"
rc=$?
say "the worker exited with code $rc"
halt now
exit "$rc"
"#;

fn assemble(job: &Job, arch: Arch, binary: &BinarySource) -> Result<String, RenderError> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(job.to_json());
    let mut out = String::with_capacity(2048 + encoded.len());
    out.push_str("#!/bin/sh\n# datadump worker bootstrap (datadump-operator). No secret is in here: the job names the\n");
    out.push_str("# SSM parameter the worker reads with its instance role. `datadump render` decodes the job.\n");
    out.push_str(&format!("deadline={}\n", job.deadline.as_second()));
    out.push_str(&format!("want_arch={}\n", arch.as_str()));
    out.push_str(&format!("url={}\n", sh_quote(&binary.url)));
    out.push_str(&format!("sha256={}\n", sh_quote(&binary.sha256)));
    out.push_str(&format!("job='{encoded}'\n"));
    out.push_str(SCRIPT);
    if out.len() > USER_DATA_LIMIT {
        return Err(RenderError::TooLarge {
            size: out.len(),
            limit: USER_DATA_LIMIT,
        });
    }
    Ok(out)
}

/// Renders the user data of one worker run.
pub fn render(job: &Job, arch: Arch, binary: &BinarySource) -> Result<String, RenderError> {
    assemble(job, arch, binary)
}

/// Renders user data for `datadump render`, with placeholders for what only a launch knows
/// (date, attempt, token, deadline, the staged parameter, the region, the binary).
pub fn render_preview(spec: &DataDumpSpec, media_type: &MediaType) -> Result<(String, Job), RenderError> {
    let w = WorkerJob {
        spec,
        media_type,
        dump_date: "2000-01-01",
        attempt: 1,
        token: "<token>",
        // the largest deadline a valid spec can have (one year from now) takes as many digits
        deadline: jiff::Timestamp::now() + jiff::SignedDuration::from_hours(8760),
        ssm_parameter: spec.database.ssm_parameter_name.as_deref().unwrap_or("/datadump/<uid>/<media-type>"),
        region: "<region>",
    };
    let mut job = Job::new(&w)?;
    job.dump_date = "DUMP-DATE".into();
    job.key_prefix = job.key_prefix.replace("2000-01-01", "DUMP-DATE");
    let binary = BinarySource {
        url: "https://<worker-binary-url>".into(),
        sha256: "0".repeat(64),
    };
    let arch = Arch::of_instance_type(spec.instance.instance_type.as_deref().unwrap_or(crate::api::resolve::DEFAULT_INSTANCE_TYPE));
    Ok((assemble(&job, arch, &binary)?, job))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sample() -> (DataDumpSpec, Job) {
        let spec: DataDumpSpec =
            serde_yaml::from_str("mediaTypes: [image]\ndestination: {bucket: b}\ndatabase: {ssmParameterName: /p}\n").unwrap();
        let media = MediaType("image".into());
        let job = Job::new(&WorkerJob {
            spec: &spec,
            media_type: &media,
            dump_date: "2026-11-01",
            attempt: 1,
            token: "ddt-1",
            deadline: jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1),
            ssm_parameter: "/p",
            region: "us-east-1",
        })
        .unwrap();
        (spec, job)
    }

    #[test]
    fn arch_follows_the_instance_type() {
        assert_eq!(Arch::of_instance_type("m7g.xlarge"), Arch::Aarch64);
        assert_eq!(Arch::of_instance_type("m7i.xlarge"), Arch::X86_64);
        let b = WorkerBinaries {
            x86_64_url: Some("https://x".into()),
            x86_64_sha256: Some("a".repeat(64)),
            aarch64_url: Some("https://y".into()),
            aarch64_sha256: Some("nothex".into()),
        };
        assert_eq!(b.for_arch(Arch::X86_64).unwrap().url, "https://x");
        assert_eq!(b.for_arch(Arch::Aarch64), None);
        assert_eq!(b.problems(), ["--worker-sha256-aarch64 is not 64 lower-case hex digits"]);
    }

    #[test]
    fn the_bootstrap_is_small_posix_sh_and_carries_the_job_as_data() {
        let (_, mut job) = sample();
        job.query = "SELECT '$(touch /tmp/datadump-pwned)' `x` \"q\" FROM {media_type}".into();
        let binary = BinarySource {
            url: "https://h/datadump?a='b'&c".into(),
            sha256: "f".repeat(64),
        };
        let script = render(&job, Arch::X86_64, &binary).unwrap();
        assert!(script.len() < 4096, "{} bytes", script.len());
        // POSIX syntax: dash parses it (no bash-isms)
        let dash = Command::new("sh").args(["-n", "-c", &script]).status().unwrap();
        assert!(dash.success());
        // the values come back exactly
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{}\nprintf '%s\\n' \"$url\" \"$job\"", script.split("set -u\n").next().unwrap()))
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(binary.url.as_str()));
        let decoded = base64::engine::general_purpose::STANDARD.decode(lines.next().unwrap()).unwrap();
        assert_eq!(Job::from_json(std::str::from_utf8(&decoded).unwrap()).unwrap(), job);
        assert!(!std::path::Path::new("/tmp/datadump-pwned").exists());
    }

    #[test]
    fn the_preview_fits_and_shows_placeholders() {
        let (spec, _) = sample();
        let (text, job) = render_preview(&spec, &MediaType("image".into())).unwrap();
        assert!(text.contains("<worker-binary-url>") && text.contains("want_arch=aarch64"));
        assert_eq!(job.key_prefix, "data-dump/DUMP-DATE/image/");
        assert_eq!(job.token, "<token>");
    }
}
