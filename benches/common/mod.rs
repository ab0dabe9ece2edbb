//! Shared by the controller benchmarks: command-line flags, the controller child's memory from
//! `/proc`, percentiles by sorting, the reconcile-duration histogram from `/metrics`, machine
//! facts, and writing a result table to `target/bench-results/NAME.md`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Flags common to the benchmarks. `cargo bench` passes `--bench`; `cargo test --all-targets`
/// runs the binary without it, which means: a smoke run, no results file.
pub struct Flags {
    /// Run as a benchmark (`--bench` given).
    pub bench: bool,
    /// `--quick`: the small sizes only.
    pub quick: bool,
    /// Every argument, for benchmark-specific flags.
    pub args: Vec<String>,
}

impl Flags {
    pub fn parse() -> Flags {
        let args: Vec<String> = std::env::args().skip(1).collect();
        Flags {
            bench: args.iter().any(|a| a == "--bench"),
            quick: args.iter().any(|a| a == "--quick"),
            args,
        }
    }

    /// The value of `--name=VALUE` or `--name VALUE` (the first, if given more than once).
    pub fn value(&self, name: &str) -> Option<String> {
        self.values(name).into_iter().next()
    }

    /// Every value of `--name=VALUE` or `--name VALUE`, in order.
    pub fn values(&self, name: &str) -> Vec<String> {
        let flag = format!("--{name}");
        let mut found = Vec::new();
        let mut it = self.args.iter();
        while let Some(a) = it.next() {
            if let Some(v) = a.strip_prefix(&format!("{flag}=")) {
                found.push(v.to_string());
            } else if *a == flag {
                found.extend(it.next().cloned());
            }
        }
        found
    }
}

/// The pid of the `datadump controller` child that uses this kubeconfig (each test world has
/// its own), found through `/proc/PID/environ`.
pub fn controller_pid(kubeconfig: &Path) -> Option<u32> {
    let want = format!("KUBECONFIG={}", kubeconfig.display());
    let mut found = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if !cmdline.split(|b| *b == 0).any(|a| a == b"controller") {
            continue;
        }
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|v| v == want.as_bytes()) {
            // the newest one (restarts leave reaped children only)
            found = Some(found.map_or(pid, |p: u32| p.max(pid)));
        }
    }
    found
}

/// A `/proc/PID/status` field in KiB (`VmHWM`: peak resident set; `VmRSS`: current).
pub fn proc_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(&format!("{field}:")))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU seconds (user + system) the process used so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The `p`-th percentile (0..=100) of `values`, nearest rank, after sorting.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

/// Cumulative bucket counts `(le, count)` of a Prometheus histogram in `/metrics` text.
pub fn histogram(metrics: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, count) = rest.split_once("\"}")?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, count.trim().parse().ok()?))
        })
        .collect()
}

/// The upper bound of the bucket holding the `p`-th percentile of the observations made
/// between two scrapes of a histogram.
pub fn histogram_percentile(before: &[(f64, f64)], after: &[(f64, f64)], p: f64) -> Option<f64> {
    let diff: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, n)| (*le, n - before.iter().find(|(b, _)| b == le).map_or(0.0, |(_, m)| *m)))
        .collect();
    let total = diff.last()?.1;
    if total <= 0.0 {
        return None;
    }
    diff.iter().find(|(_, n)| *n >= total * p / 100.0).map(|(le, _)| *le)
}

/// A sample value (`name{labels} value` or `name value`) from `/metrics` text.
pub fn sample(metrics: &str, name_and_labels: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Seconds, milliseconds or "≤" bounds, briefly.
pub fn secs(d: f64) -> String {
    if !d.is_finite() {
        "n/a".into()
    } else if d < 1.0 {
        format!("{:.0} ms", d * 1000.0)
    } else {
        format!("{d:.2} s")
    }
}

pub fn dur(d: Duration) -> String {
    secs(d.as_secs_f64())
}

/// CPU, cores, memory, kernel and the commit, for the results file.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_string();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map_or("?".into(), |k| format!("{:.0} GiB", k as f64 / 1024.0 / 1024.0));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let moto = std::process::Command::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"))
        .args(["-c", "import moto; print(moto.__version__)"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!("{cores} cores ({model}), {mem} RAM, Linux {kernel}, moto {moto}, commit {commit}")
}

/// Writes `target/bench-results/NAME.md` (benchmark runs only).
pub fn write_results(name: &str, markdown: &str) -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("bench-results");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.md"));
    std::fs::write(&path, markdown).unwrap();
    path
}

/// The controller's `/metrics` text (HTTP/1.0, so the body is never chunked), or empty.
pub async fn metrics(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").await.ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.ok()?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        Some(text.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default())
    };
    tokio::time::timeout(Duration::from_secs(60), fetch)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// The `ENV` settings of the controller image (the Dockerfile's final stage), so that a
/// benchmark runs the controller as a cluster does.
pub fn image_env() -> Vec<(String, String)> {
    let dockerfile = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap_or_default();
    let last_stage = dockerfile.rsplit("\nFROM ").next().unwrap_or_default();
    last_stage
        .lines()
        .filter_map(|l| l.strip_prefix("ENV "))
        .flat_map(|l| l.split_whitespace())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
