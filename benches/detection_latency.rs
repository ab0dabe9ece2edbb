//! Benchmark 2 of issue 7: detection latency — from a worker's `_success` to the controller's
//! TerminateInstances call — against the poll interval, side by side for several intervals in
//! one run. The real `datadump controller` (the release build under `cargo bench`) runs against
//! the Kubernetes API stand-in and moto, through the fault proxy with faults off, which
//! timestamps every TerminateInstances call and names its instance ids.
//!
//! Per poll interval: K one-media-type dumps run; the fake worker writes each `_success` at a
//! seeded random moment within one poll interval (so writes land at every phase of the poll
//! cycle); the latency of each is `TerminateInstances(its instance) − _success written`, taken
//! from the local clock right after the PUT returned, and also from the object's S3
//! `LastModified` (what the controller's own `datadump_success_to_terminate_seconds` measures;
//! moto keeps it to the second). Reported as p50/p90/max and as a ratio of the poll interval:
//! a poll-driven controller should show ≈ 0.5 on average and at most ≈ 1 plus one reconcile.
//! Nothing is asserted.
//!
//! ```text
//! cargo bench --bench detection_latency                       # poll 1 s and 5 s, 12 samples each
//! cargo bench --bench detection_latency -- --polls 1,2,5 --samples 20
//! ```
//!
//! Under `cargo test --all-targets` (no `--bench`) it runs a smoke round (poll 1 s, 2 samples)
//! and writes no results file.

#[path = "../tests/it/support/mod.rs"]
mod support;

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant, SystemTime};

use datadump::api::{DataDump, DumpPhase, MediaPhase};
use futures::StreamExt;

use common::{Flags, percentile, secs};
use support::cluster::{BUCKET, World, media_prefix};
use support::faultproxy::FaultProxy;
use support::net::wait_for;

struct Sample {
    /// From the PUT of `_success` returning to TerminateInstances.
    local: f64,
    /// From `_success`'s S3 LastModified to TerminateInstances.
    s3: f64,
}

async fn measure(poll: Duration, samples: usize, seed: u64) -> (Vec<Sample>, Option<f64>) {
    let mut w = World::start().await;
    let proxy = FaultProxy::start(&w.moto.endpoint).await;
    let poll_text = format!("{}ms", poll.as_millis());
    w.start_controller(&[
        ("AWS_ENDPOINT_URL", &proxy.url()),
        ("DATADUMP_POLL_INTERVAL", &poll_text),
        ("DATADUMP_SWEEP_INTERVAL", "10m"),
        ("DATADUMP_LOG", "info"),
    ]);
    let names: Vec<String> = (0..samples).map(|i| format!("latency-{i:02}")).collect();
    for name in &names {
        w.create(
            name,
            &format!("mediaTypes: [image]\ndestination: {{bucket: {BUCKET}, prefix: {name}}}"),
        )
        .await;
    }
    let api = w.dumps();
    let mut running: Vec<DataDump> = Vec::new();
    for name in &names {
        let api = api.clone();
        running.push(
            wait_for("running", Duration::from_secs(300), || {
                let api = api.clone();
                async move {
                    api.get(name).await.ok().filter(|d| {
                        d.status
                            .as_ref()
                            .and_then(|s| s.media("image"))
                            .is_some_and(|m| m.phase == MediaPhase::Running)
                    })
                }
            })
            .await,
        );
    }
    // let every dump settle into its steady poll rhythm before the first write
    tokio::time::sleep(poll * 2).await;
    let mut rng = fastrand::Rng::with_seed(seed);
    let offsets: Vec<Duration> = (0..samples)
        .map(|_| Duration::from_micros(rng.u64(0..poll.as_micros() as u64)))
        .collect();
    let w = &w;
    let written: Vec<(String, SystemTime, SystemTime)> = futures::stream::iter(running.iter().zip(offsets))
        .map(|(dd, offset)| async move {
            tokio::time::sleep(offset).await;
            w.write_success(dd, "image", &[100]).await;
            let at = SystemTime::now();
            let key = format!("{}_success", media_prefix(dd, "image"));
            let head = w.s3.head_object().bucket(BUCKET).key(&key).send().await.unwrap();
            let modified = head
                .last_modified()
                .map(|t| SystemTime::UNIX_EPOCH + Duration::from_secs_f64(t.as_secs_f64()))
                .unwrap();
            let id = dd.status.as_ref().unwrap().media("image").unwrap().instance_id.clone().unwrap();
            (id, at, modified)
        })
        .buffer_unordered(samples)
        .collect()
        .await;
    let mut out = Vec::new();
    for (id, at, modified) in &written {
        let terminated = wait_for("TerminateInstances", Duration::from_secs(120), || {
            let t = proxy
                .calls()
                .into_iter()
                .find(|c| c.api == "TerminateInstances" && c.instance_ids.contains(id))
                .map(|c| c.at);
            async move { t }
        })
        .await;
        out.push(Sample {
            local: terminated.duration_since(*at).map(|d| d.as_secs_f64()).unwrap_or(0.0),
            s3: terminated.duration_since(*modified).map(|d| d.as_secs_f64()).unwrap_or(0.0),
        });
    }
    // the controller's own view, once every dump has finished: mean of
    // datadump_success_to_terminate_seconds
    for name in &names {
        wait_for("Succeeded", Duration::from_secs(120), || {
            let api = api.clone();
            async move {
                api.get(name)
                    .await
                    .ok()
                    .filter(|d| d.status.as_ref().is_some_and(|s| s.phase == DumpPhase::Succeeded))
            }
        })
        .await;
    }
    let metrics = w.metrics().await;
    let own = match (
        common::sample(&metrics, "datadump_success_to_terminate_seconds_sum"),
        common::sample(&metrics, "datadump_success_to_terminate_seconds_count"),
    ) {
        (Some(s), Some(n)) if n > 0.0 => Some(s / n),
        _ => {
            eprintln!(
                "no success_to_terminate observations: {:?}",
                metrics.lines().filter(|l| l.contains("success_to")).collect::<Vec<_>>()
            );
            None
        }
    };
    (out, own)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let flags = Flags::parse();
    let polls: Vec<f64> = match flags.value("polls") {
        Some(v) => v.split(',').map(|p| p.parse().expect("--polls 1,5 (seconds)")).collect(),
        None if flags.bench => vec![1.0, 5.0],
        None => vec![1.0],
    };
    let samples: usize = flags
        .value("samples")
        .map(|s| s.parse().unwrap())
        .unwrap_or(if flags.bench { 12 } else { 2 });
    let started = Instant::now();
    let mut table = String::from(
        "| poll interval | samples | p50 | p90 | max | mean / poll | max / poll | p50 from S3 time | controller's own mean (S3 time) |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for (n, poll) in polls.iter().enumerate() {
        let poll = Duration::from_secs_f64(*poll);
        let (s, own) = measure(poll, samples, 42 + n as u64).await;
        let local: Vec<f64> = s.iter().map(|x| x.local).collect();
        let s3: Vec<f64> = s.iter().map(|x| x.s3).collect();
        let mean = local.iter().sum::<f64>() / local.len() as f64;
        let max = percentile(&local, 100.0);
        let p = poll.as_secs_f64();
        let row = format!(
            "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {} | {} |\n",
            secs(p),
            local.len(),
            secs(percentile(&local, 50.0)),
            secs(percentile(&local, 90.0)),
            secs(max),
            mean / p,
            max / p,
            secs(percentile(&s3, 50.0)),
            own.map_or("n/a".into(), secs),
        );
        eprint!("{row}");
        table.push_str(&row);
    }
    let report = format!(
        "# Detection latency: `_success` → TerminateInstances\n\n{}\n\nMachine: {}. Wall time {:.0} s.\n\n{table}\n\
         Latency is taken from the local clock after the `_success` PUT returned to the fault proxy's timestamp of the\n\
         TerminateInstances call naming the instance; \"from S3 time\" uses the object's LastModified (whole seconds in moto).\n",
        "`cargo bench --bench detection_latency`",
        common::machine(),
        started.elapsed().as_secs_f64()
    );
    println!("\n{report}");
    if flags.bench {
        let path = common::write_results("detection_latency", &report);
        println!("written to {}", path.display());
    }
}
