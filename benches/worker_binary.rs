//! What each EC2 attempt downloads: the worker binary's size, the controller's upload of it to
//! the destination bucket (PutObject, once per binary and bucket) and the bootstrap's download
//! of it through a presigned GET with the bootstrap's own `curl` and `sha256sum` commands, side
//! by side for several binaries in one run against moto. Nothing is asserted.
//!
//! ```text
//! cargo bench --bench worker_binary -- \
//!   --binary before=/path/to/old/datadump --binary after=target/x86_64-unknown-linux-gnu/release/datadump-worker
//! ```
//!
//! Without `--binary` it measures the glibc-floor worker `scripts/setup.sh` builds (debug) and,
//! when present, the release one. Give stripped binaries, as the Dockerfile ships them. Under
//! `cargo test --all-targets` (no `--bench`) it runs one round and writes no results file.

#[path = "../tests/it/support/mod.rs"]
mod support;

#[path = "common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;

use common::{Flags, percentile, secs};
use support::moto::Moto;

const BUCKET: &str = "bench-binaries";

struct Row {
    label: String,
    bytes: u64,
    upload: f64,
    download: Vec<f64>,
}

fn binaries(flags: &Flags) -> Vec<(String, PathBuf)> {
    let given: Vec<(String, PathBuf)> = flags
        .args
        .windows(2)
        .filter(|w| w[0] == "--binary")
        .filter_map(|w| w[1].split_once('=').map(|(l, p)| (l.to_string(), PathBuf::from(p))))
        .collect();
    if !given.is_empty() {
        return given;
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    ["debug", "release"]
        .iter()
        .map(|p| {
            (
                format!("datadump-worker ({p})"),
                target.join(&triple).join(p).join("datadump-worker"),
            )
        })
        .filter(|(_, p)| p.exists())
        .collect()
}

/// The bootstrap's download step, as the user data runs it.
fn bootstrap_download(url: &str, dir: &std::path::Path) -> f64 {
    let start = Instant::now();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"curl -fsS --retry 5 --retry-connrefused -o datadump-worker.download "$1" && sha256sum datadump-worker.download >/dev/null"#)
        .arg("sh")
        .arg(url)
        .current_dir(dir)
        .status()
        .expect("sh");
    assert!(status.success(), "the download failed");
    start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let flags = Flags::parse();
    let bins = binaries(&flags);
    if bins.is_empty() {
        eprintln!("worker_binary: no binary to measure (scripts/setup.sh builds one; or pass --binary LABEL=PATH)");
        return;
    }
    let rounds = if flags.bench { 7 } else { 1 };
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    let s3 = moto.s3().await;
    let dir = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    for (label, path) in &bins {
        let body = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let key = format!("_datadump/bin/{label}/datadump-worker");
        let start = Instant::now();
        s3.put_object()
            .bucket(BUCKET)
            .key(&key)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        let upload = start.elapsed().as_secs_f64();
        let url = s3
            .get_object()
            .bucket(BUCKET)
            .key(&key)
            .presigned(PresigningConfig::expires_in(Duration::from_secs(3600)).unwrap())
            .await
            .unwrap()
            .uri()
            .to_string();
        let dir = dir.path().to_path_buf();
        let download = tokio::task::spawn_blocking(move || (0..rounds).map(|_| bootstrap_download(&url, &dir)).collect())
            .await
            .unwrap();
        rows.push(Row {
            label: label.clone(),
            bytes: body.len() as u64,
            upload,
            download,
        });
    }
    let first = &rows[0];
    let (first_bytes, first_dl) = (first.bytes as f64, percentile(&first.download, 50.0));
    let mut md = format!(
        "# The worker binary each attempt downloads\n\n{}\n\nmoto on 127.0.0.1; download = the bootstrap's `curl` through a presigned GET + `sha256sum`, median of {rounds}.\n\n\
         | binary | size | × first | controller upload (PutObject) | bootstrap download (p50) | × first |\n|---|---|---|---|---|---|\n",
        common::machine()
    );
    for r in &rows {
        let dl = percentile(&r.download, 50.0);
        md.push_str(&format!(
            "| {} | {:.1} MiB | {:.2} | {} | {} | {:.2} |\n",
            r.label,
            r.bytes as f64 / (1 << 20) as f64,
            r.bytes as f64 / first_bytes,
            secs(r.upload),
            secs(dl),
            dl / first_dl
        ));
    }
    print!("{md}");
    if flags.bench {
        println!("written to {}", common::write_results("worker_binary", &md).display());
    }
}
