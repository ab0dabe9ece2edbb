//! Benchmark 1 of issue 7: the controller at scale — 1, 100 and 1,000 DataDumps with two media
//! types each, side by side in one run. The real `datadump controller` (the release build under
//! `cargo bench`) runs against the Kubernetes API stand-in and moto, through the fault proxy
//! with faults off, which counts every AWS call by API.
//!
//! Per size N, in phases:
//! 1. **launch**: create N dumps; time until all 2N media types run (per dump: p50/p99 from its
//!    creation to both media Running, by polling the API every second); AWS calls made;
//! 2. **steady state**: every worker has written `_progress.json`; for a window of several poll
//!    intervals nothing changes, and the AWS calls per poll cycle are counted by API
//!    (DescribeInstances should stay O(1) thanks to `InstanceCache`; S3 about one LIST plus one
//!    GET of `_progress.json` per running media type). Reconcile durations p50/p99 come from the
//!    controller's `datadump_reconcile_duration_seconds` histogram over the window (upper
//!    bucket bounds, a factor-2 grid); controller CPU time over the window from `/proc`;
//! 3. **completion**: every worker writes `_success`; time until all dumps Succeeded, and per
//!    media type the time from its `_success` to Succeeded (1 s polling granularity);
//! 4. the controller's peak RSS (`VmHWM` of `/proc/PID/status`) over the whole run.
//!
//! In the steady window the proxy's call log also gives, per media type, the gaps between two
//! LISTs of its prefix (p99 / longest) and the fewest media types LISTed in one poll interval.
//!
//! The poll interval is 5 s (production default 30 s; `--poll SECONDS`), the sweeper is pushed
//! out of the window (10 min). A size gets `--max-minutes` (default 20) for its launch phase;
//! when that runs out, the row says how far it got and the later phases are skipped. Nothing is
//! asserted: the numbers go to stdout and `target/bench-results/controller_scale.md`.
//!
//! ```text
//! cargo bench --bench controller_scale                    # N = 1, 100, 1000
//! cargo bench --bench controller_scale -- --quick         # N = 1, 100
//! cargo bench --bench controller_scale -- --sizes 1,10,300 --poll 5 --cycles 4
//! cargo bench --bench controller_scale -- --sizes 1000 --variant this \
//!     --variant "unbounded DATADUMP_MAX_CONCURRENT_RECONCILES=0" \
//!     --variant "before=/tmp/datadump-of-another-commit"
//! ```
//!
//! The controller runs with the controller image's `ENV` (from the Dockerfile). Each
//! `--variant "LABEL[=BINARY] [KEY=VALUE …]"` is run at every size, one after the other, and
//! gets its own column: BINARY in place of this build's `datadump`, KEY=VALUE added to or
//! overriding its environment. So settings and builds are compared side by side in one run.
//!
//! Under `cargo test --all-targets` (no `--bench`) it runs N = 1 for one cycle as a smoke test
//! and writes no results file.

#[path = "../tests/it/support/mod.rs"]
mod support;

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use datadump::api::{DataDump, DumpPhase, MediaPhase};
use datadump::contract::{ProgressReport, Stage};
use futures::StreamExt;

use common::{Flags, dur, percentile, secs};
use support::cluster::{BUCKET, World, attempt_of, media_prefix};
use support::faultproxy::FaultProxy;

const MEDIA: [&str; 2] = ["image", "audio"];

#[derive(Default)]
struct Row {
    n: usize,
    /// Started from a seeded running state instead of the launch phase.
    seeded: bool,
    /// The `--variant` this row ran, empty for this build as it is.
    label: String,
    /// Seeded: the time until the controller had reconciled every dump once.
    first_pass: Option<Duration>,
    launch: Option<Duration>,
    launched: String,
    to_running: (f64, f64),
    launch_calls: BTreeMap<String, usize>,
    cycles: f64,
    per_cycle: BTreeMap<String, f64>,
    reconcile: (Option<f64>, Option<f64>),
    reconciles_per_cycle: f64,
    /// The fewest distinct media types LISTed in any one poll interval of the window.
    fewest_observed: Option<usize>,
    /// p99 and longest gap between two consecutive LISTs of one media type in the window.
    look_gaps: (f64, f64),
    cpu_per_cycle: Option<f64>,
    /// The AWS emulator's CPU time per cycle: at 1.0 per second it, not the controller, is the
    /// bottleneck.
    moto_cpu_per_cycle: Option<f64>,
    completion: Option<Duration>,
    completion_calls: BTreeMap<String, usize>,
    to_succeeded: (f64, f64),
    rss_steady_kib: Option<u64>,
    hwm_kib: Option<u64>,
    note: String,
}

/// Every dump, by name, as the API has it now.
async fn all(w: &World) -> Vec<DataDump> {
    w.dumps().list(&Default::default()).await.map(|l| l.items).unwrap_or_default()
}

fn both(d: &DataDump, phase: MediaPhase) -> bool {
    MEDIA
        .iter()
        .all(|m| d.status.as_ref().and_then(|s| s.media(m)).is_some_and(|s| s.phase == phase))
}

async fn write_progress(w: &World, dd: &DataDump, media: &str) {
    let (attempt, token) = attempt_of(dd, media);
    let p = ProgressReport {
        stage: Stage::Dumping,
        files: 1,
        bytes: 2 << 30,
        rows: Some(1_000_000),
        estimated_rows: Some(4_000_000),
        rows_per_second: Some(100_000),
        eta: None,
        connection: None,
        attempt,
        token,
        time: jiff::Timestamp::now(),
    };
    w.put(
        &format!("{}_progress.json", media_prefix(dd, media)),
        serde_json::to_vec(&p).unwrap(),
    )
    .await;
}

/// Puts `n` dumps into the state the launch phase ends in, without the controller: the object
/// with its finalizer, two instances in moto carrying the attempt's tags, and a status saying
/// both media types run on them. For sizes whose launch phase takes too long on moto.
async fn seed_running(w: &World, n: usize) {
    use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
    let now = jiff::Timestamp::now();
    let date = datadump::plan::dump_date(now);
    futures::stream::iter(0..n)
        .for_each_concurrent(8, |i| {
            let date = date.clone();
            async move {
                let name = format!("scale-{i:04}");
                let obj = serde_json::json!({"apiVersion": "datadump.dev/v1alpha1", "kind": "DataDump",
                    "metadata": {"name": name, "namespace": w.ns, "finalizers": [datadump::plan::FINALIZER]},
                    "spec": {"mediaTypes": MEDIA, "destination": {"bucket": BUCKET, "prefix": name},
                        "database": {"connectionSecretRef": {"name": "catalog-db", "key": "connectionString"}},
                        "instance": {"iamInstanceProfile": support::cluster::PROFILE, "instanceType": "t4g.nano", "ebsVolumeSizeGb": 8}}});
                let dd: DataDump = serde_json::from_value(obj).unwrap();
                let uid = w.dumps().create(&Default::default(), &dd).await.unwrap().metadata.uid.unwrap();
                let mut media = Vec::new();
                for m in MEDIA {
                    let token = datadump::plan::token_for(&uid, m, 1);
                    let tags = [
                        ("datadump.dev/managed-by", "datadump-operator"),
                        ("datadump.dev/namespace", w.ns.as_str()),
                        ("datadump.dev/name", name.as_str()),
                        ("datadump.dev/uid", uid.as_str()),
                        ("datadump.dev/media-type", m),
                        ("datadump.dev/attempt", "1"),
                        ("datadump.dev/token", token.as_str()),
                    ];
                    let spec = TagSpecification::builder()
                        .resource_type(ResourceType::Instance)
                        .set_tags(Some(tags.iter().map(|(k, v)| Tag::builder().key(*k).value(*v).build()).collect()))
                        .build();
                    let out = w
                        .ec2
                        .run_instances()
                        .image_id("ami-12c6146b")
                        .instance_type(InstanceType::T4gNano)
                        .min_count(1)
                        .max_count(1)
                        .tag_specifications(spec)
                        .send()
                        .await
                        .unwrap();
                    let id = out.instances()[0].instance_id().unwrap().to_string();
                    media.push(serde_json::json!({"mediaType": m, "phase": "Running", "attempt": 1, "token": token,
                        "attemptStartTime": now, "instanceId": id, "instanceState": "running", "credentialsStaged": true}));
                }
                let status = serde_json::json!({"status": {"phase": "Running", "dumpDate": date, "startTime": now, "media": media}});
                w.dumps()
                    .patch_status(&name, &Default::default(), &kube::api::Patch::Merge(status))
                    .await
                    .unwrap();
            }
        })
        .await;
}

/// One controller to measure: a build and its settings (`--variant`).
#[derive(Default)]
struct Variant {
    label: String,
    /// The `datadump` binary; this build's when `None`.
    binary: Option<std::path::PathBuf>,
    env: Vec<(String, String)>,
}

impl Variant {
    /// `LABEL[=BINARY] [KEY=VALUE …]`.
    fn parse(text: &str) -> Variant {
        let mut words = text.split_whitespace();
        let first = words.next().expect("--variant needs a label");
        let (label, binary) = match first.split_once('=') {
            Some((label, bin)) => (label, Some(std::path::PathBuf::from(bin))),
            None => (first, None),
        };
        let env = words
            .map(|kv| kv.split_once('=').expect("--variant \"LABEL[=BINARY] KEY=VALUE …\""))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Variant {
            label: label.to_string(),
            binary,
            env,
        }
    }
}

/// The fewest distinct media-type prefixes LISTed in any one of the window's `cycles`
/// consecutive poll intervals (every running media type was observed in every interval when
/// this is 2N), and per media type the gaps between two consecutive LISTs of it in the window,
/// sorted (the goal: none longer than the poll interval, give or take a reconcile's wait).
fn looks_per_media(
    calls: &[support::faultproxy::Call],
    start: std::time::SystemTime,
    poll: Duration,
    cycles: u32,
) -> (Option<usize>, Vec<f64>) {
    let mut per_cycle = vec![std::collections::BTreeSet::new(); cycles as usize];
    let mut times: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for call in calls.iter().filter(|c| c.api == "ListObjectsV2") {
        let (Ok(since), Some(prefix)) = (
            call.at.duration_since(start),
            call.query.split('&').find_map(|kv| kv.strip_prefix("prefix=")),
        ) else {
            continue;
        };
        times.entry(prefix).or_default().push(since.as_secs_f64());
        if let Some(set) = per_cycle.get_mut((since.as_secs_f64() / poll.as_secs_f64()) as usize) {
            set.insert(prefix);
        }
    }
    let mut gaps: Vec<f64> = times
        .values_mut()
        .flat_map(|t| {
            t.sort_by(f64::total_cmp);
            t.windows(2).map(|w| w[1] - w[0]).collect::<Vec<_>>()
        })
        .collect();
    gaps.sort_by(f64::total_cmp);
    (per_cycle.iter().map(|s| s.len()).min(), gaps)
}

async fn scale(n: usize, poll: Duration, cycles: u32, max_launch: Duration, seeded: bool, variant: &Variant) -> Row {
    let mut row = Row {
        n,
        seeded,
        label: variant.label.clone(),
        look_gaps: (f64::NAN, f64::NAN), // "n/a" unless the steady window ran
        ..Row::default()
    };
    let mut w = World::start().await;
    let proxy = FaultProxy::start(&w.moto.endpoint).await;
    let poll_text = format!("{}ms", poll.as_millis());
    let started = Instant::now();
    if seeded {
        seed_running(&w, n).await;
        eprintln!("  seeded {n} running dumps in {:.0} s", started.elapsed().as_secs_f64());
    }
    let proxy_url = proxy.url();
    let mut env = vec![
        ("AWS_ENDPOINT_URL", proxy_url.as_str()),
        ("DATADUMP_POLL_INTERVAL", &poll_text),
        ("DATADUMP_SWEEP_INTERVAL", "10m"),
        ("DATADUMP_LAUNCH_GRACE", "30m"),
        ("DATADUMP_LOG", "info"),
    ];
    // the controller runs with the image's allocator settings (its Dockerfile's ENV), as in a
    // cluster; a --variant's settings override them
    let image_env = common::image_env();
    env.extend(image_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    env.extend(variant.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    match &variant.binary {
        Some(binary) => w.start_controller_binary(binary, &env),
        None => w.start_controller(&env),
    };
    let port = w.http_port().await;
    // the controller runs with its own kubeconfig (its service account), not the admin one
    let pid = common::controller_pid(&w.kube.controller_kubeconfig);

    // 1. launch (or, seeded, the controller's first look at every dump)
    let started = Instant::now();
    let mut created_at = BTreeMap::new();
    for i in 0..n {
        let name = format!("scale-{i:04}");
        if !seeded {
            w.create(&name, &format!("destination: {{bucket: {BUCKET}, prefix: {name}}}")).await;
        }
        created_at.insert(name, Instant::now());
    }
    if seeded {
        // running since before the controller started: wait for its first status write to each
        let mut seen = 0;
        while seen < n && started.elapsed() < max_launch {
            tokio::time::sleep(Duration::from_secs(1)).await;
            seen = all(&w)
                .await
                .iter()
                .filter(|d| d.status.as_ref().is_some_and(|s| s.observed_generation.is_some()))
                .count();
            eprint!(
                "\r  N={n}: {seen}/{n} dumps reconciled after {:.0} s   ",
                started.elapsed().as_secs_f64()
            );
        }
        eprintln!();
        row.first_pass = Some(started.elapsed());
    }
    let mut running_at: BTreeMap<String, Instant> = BTreeMap::new();
    let mut dumps = Vec::new();
    while running_at.len() < n {
        if started.elapsed() > max_launch {
            row.note = format!(
                "launch phase stopped after {}: {}/{} dumps running",
                dur(max_launch),
                running_at.len(),
                n
            );
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        dumps = all(&w).await;
        for d in &dumps {
            if both(d, MediaPhase::Running) {
                running_at.entry(d.metadata.name.clone().unwrap()).or_insert_with(Instant::now);
            }
        }
        eprint!(
            "\r  N={n}: {}/{n} dumps running after {:.0} s   ",
            running_at.len(),
            started.elapsed().as_secs_f64()
        );
    }
    eprintln!();
    row.launched = format!("{}/{}", running_at.len(), n);
    row.launch_calls = proxy.counts().into_iter().collect();
    let to_running: Vec<f64> = running_at
        .iter()
        .map(|(k, t)| t.duration_since(created_at[k]).as_secs_f64())
        .collect();
    row.to_running = (percentile(&to_running, 50.0), percentile(&to_running, 99.0));
    row.hwm_kib = pid.and_then(|p| common::proc_kib(p, "VmHWM"));
    if running_at.len() < n {
        return row;
    }
    row.launch = Some(started.elapsed());

    // 2. steady state: progress written, then a window of `cycles` poll intervals
    let running: Vec<&DataDump> = dumps.iter().filter(|d| both(d, MediaPhase::Running)).collect();
    let w = &w;
    futures::stream::iter(running.iter().flat_map(|d| MEDIA.map(|m| (*d, m))))
        .for_each_concurrent(16, |(d, m)| async move { write_progress(w, d, m).await })
        .await;
    tokio::time::sleep(poll + poll / 2).await; // every media type has seen its progress once
    let before = common::histogram(&common::metrics(port).await, "datadump_reconcile_duration_seconds");
    let reconciles_before = common::sample(&common::metrics(port).await, "datadump_reconciles_total{result=\"ok\"}").unwrap_or(0.0);
    // CPU seconds of the controller and of moto, read the same way before and after the window
    let cpu_of = |pid: Option<u32>| pid.and_then(common::cpu_seconds);
    let (controller_pid, moto_pid) = (pid, Some(w.moto.pid()));
    let (cpu_before, moto_before) = (cpu_of(controller_pid), cpu_of(moto_pid));
    proxy.clear();
    let window_start = Instant::now();
    let window_start_wall = std::time::SystemTime::now();
    tokio::time::sleep(poll * cycles).await; // the measurement window
    let window = window_start.elapsed();
    let counts = proxy.counts();
    let gaps;
    (row.fewest_observed, gaps) = looks_per_media(&proxy.calls(), window_start_wall, poll, cycles);
    row.look_gaps = (percentile(&gaps, 99.0), gaps.last().copied().unwrap_or(f64::NAN));
    let metrics = common::metrics(port).await;
    let after = common::histogram(&metrics, "datadump_reconcile_duration_seconds");
    row.cycles = window.as_secs_f64() / poll.as_secs_f64();
    row.per_cycle = counts.into_iter().map(|(k, v)| (k, v as f64 / row.cycles)).collect();
    row.reconcile = (
        common::histogram_percentile(&before, &after, 50.0),
        common::histogram_percentile(&before, &after, 99.0),
    );
    row.reconciles_per_cycle =
        (common::sample(&metrics, "datadump_reconciles_total{result=\"ok\"}").unwrap_or(0.0) - reconciles_before) / row.cycles;
    let per_cycle = |before: Option<f64>, after: Option<f64>| before.zip(after).map(|(a, b)| (b - a) / row.cycles);
    row.cpu_per_cycle = per_cycle(cpu_before, cpu_of(controller_pid));
    row.moto_cpu_per_cycle = per_cycle(moto_before, cpu_of(moto_pid));
    row.rss_steady_kib = pid.and_then(|p| common::proc_kib(p, "VmRSS"));

    // 3. completion
    proxy.clear();
    let done_started = Instant::now();
    let written: BTreeMap<(String, String), Instant> = futures::stream::iter(running.iter().flat_map(|d| MEDIA.map(|m| (*d, m))))
        .map(|(d, m)| async move {
            w.write_success(d, m, &[1000]).await;
            ((d.metadata.name.clone().unwrap(), m.to_string()), Instant::now())
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut succeeded_at: BTreeMap<(String, String), Instant> = BTreeMap::new();
    let mut finished = 0;
    while finished < n && done_started.elapsed() < max_launch {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = all(w).await;
        finished = now
            .iter()
            .filter(|d| d.status.as_ref().is_some_and(|s| s.phase == DumpPhase::Succeeded))
            .count();
        for d in &now {
            for m in MEDIA {
                if d.status
                    .as_ref()
                    .and_then(|s| s.media(m))
                    .is_some_and(|s| s.phase == MediaPhase::Succeeded)
                {
                    succeeded_at
                        .entry((d.metadata.name.clone().unwrap(), m.to_string()))
                        .or_insert_with(Instant::now);
                }
            }
        }
        eprint!(
            "\r  N={n}: {finished}/{n} dumps succeeded after {:.0} s   ",
            done_started.elapsed().as_secs_f64()
        );
    }
    eprintln!();
    if finished == n {
        row.completion = Some(done_started.elapsed());
    } else {
        row.note = format!("completion stopped after {}: {finished}/{n} succeeded", dur(max_launch));
    }
    row.completion_calls = proxy.counts().into_iter().collect();
    let detect: Vec<f64> = succeeded_at
        .iter()
        .filter_map(|(k, t)| written.get(k).map(|w| t.saturating_duration_since(*w).as_secs_f64()))
        .collect();
    row.to_succeeded = (percentile(&detect, 50.0), percentile(&detect, 99.0));
    row.hwm_kib = pid.and_then(|p| common::proc_kib(p, "VmHWM"));
    row
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("n/a".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let flags = Flags::parse();
    let sizes: Vec<usize> = match flags.value("sizes") {
        Some(v) => v.split(',').map(|s| s.parse().expect("--sizes 1,100")).collect(),
        None if !flags.bench => vec![1],
        None if flags.quick => vec![1, 100],
        None => vec![1, 100, 1000],
    };
    let poll = Duration::from_secs_f64(flags.value("poll").map(|p| p.parse().unwrap()).unwrap_or(5.0));
    let cycles: u32 = flags
        .value("cycles")
        .map(|c| c.parse().unwrap())
        .unwrap_or(if flags.bench { 4 } else { 1 });
    let max_launch = Duration::from_secs(60 * flags.value("max-minutes").map(|m| m.parse().unwrap()).unwrap_or(20u64));
    let seed_above: usize = flags.value("seed-above").map(|s| s.parse().unwrap()).unwrap_or(300);
    let mut variants: Vec<Variant> = flags.values("variant").iter().map(|v| Variant::parse(v)).collect();
    if variants.is_empty() {
        variants.push(Variant::default());
    }
    let started = Instant::now();
    let mut rows = Vec::new();
    for n in sizes {
        for variant in &variants {
            eprintln!("N = {n} DataDumps × 2 media types {}", variant.label);
            let row = scale(n, poll, cycles, max_launch, n > seed_above, variant).await;
            eprintln!(
                "  launch {:?}, steady window {:.1} cycles, completion {:?}, peak RSS {}",
                row.launch,
                row.cycles,
                row.completion,
                mib(row.hwm_kib)
            );
            rows.push(row);
        }
    }

    let apis: Vec<String> = {
        let mut v: Vec<String> = rows.iter().flat_map(|r| r.per_cycle.keys().cloned()).collect();
        v.sort();
        v.dedup();
        v
    };
    let mut t = String::new();
    let header: Vec<String> = rows
        .iter()
        .map(|r| match r.label.as_str() {
            "" => format!("N = {}", r.n),
            label => format!("N = {} {label}", r.n),
        })
        .collect();
    t.push_str(&format!(
        "| measure | {} |\n|---|{}\n",
        header.join(" | "),
        "---|".repeat(rows.len())
    ));
    let mut line = |name: &str, f: &dyn Fn(&Row) -> String| {
        t.push_str(&format!("| {name} | {} |\n", rows.iter().map(f).collect::<Vec<_>>().join(" | ")))
    };
    line("start", &|r| {
        if r.seeded {
            "seeded as running".into()
        } else {
            "launch phase".into()
        }
    });
    line("dumps running (launch phase)", &|r| r.launched.clone());
    line("seeded: controller's first reconcile of every dump after", &|r| {
        r.first_pass.map_or("n/a".into(), dur)
    });
    line("launch: all 2N media Running after", &|r| {
        if r.seeded {
            "n/a (seeded)".into()
        } else {
            r.launch.map_or("n/a".into(), dur)
        }
    });
    line("launch: per dump, creation → Running p50 / p99", &|r| {
        if r.seeded {
            "n/a (seeded)".into()
        } else {
            format!("{} / {}", secs(r.to_running.0), secs(r.to_running.1))
        }
    });
    line(
        "launch (seeded: first pass): RunInstances / DescribeInstances / PutParameter calls",
        &|r| {
            let c = |k: &str| r.launch_calls.get(k).copied().unwrap_or(0);
            format!("{} / {} / {}", c("RunInstances"), c("DescribeInstances"), c("PutParameter"))
        },
    );
    line("steady: window (poll cycles)", &|r| format!("{:.1}", r.cycles));
    for api in &apis {
        line(&format!("steady: {api} per poll cycle"), &|r| {
            r.per_cycle.get(api).map_or("0".into(), |v| format!("{v:.1}"))
        });
    }
    line("steady: S3 calls per running media type per cycle", &|r| {
        let s3: f64 = ["ListObjectsV2", "GetObject"].iter().filter_map(|k| r.per_cycle.get(*k)).sum();
        if r.cycles > 0.0 {
            format!("{:.2}", s3 / (2 * r.n) as f64)
        } else {
            "n/a".into()
        }
    });
    line("steady: reconciles per poll cycle", &|r| format!("{:.1}", r.reconciles_per_cycle));
    line("steady: share of running media types observed per poll cycle", &|r| {
        format!("{:.0} %", 100.0 * r.reconciles_per_cycle / r.n as f64)
    });
    line("steady: fewest media types observed in one poll cycle (of 2N)", &|r| {
        r.fewest_observed.map_or("n/a".into(), |k| {
            format!("{k} of {} ({:.0} %)", 2 * r.n, 100.0 * k as f64 / (2 * r.n) as f64)
        })
    });
    line("steady: gap between two looks at one media type, p99 / longest", &|r| {
        format!("{} / {}", secs(r.look_gaps.0), secs(r.look_gaps.1))
    });
    line("steady: reconcile duration p50 / p99 (histogram bucket ≤)", &|r| {
        format!(
            "{} / {}",
            r.reconcile.0.map_or("n/a".into(), secs),
            r.reconcile.1.map_or("n/a".into(), secs)
        )
    });
    line("steady: controller CPU per poll cycle", &|r| {
        r.cpu_per_cycle.map_or("n/a".into(), secs)
    });
    line("steady: moto (the AWS emulator) CPU per poll cycle", &|r| {
        r.moto_cpu_per_cycle.map_or("n/a".into(), secs)
    });
    line("steady: controller RSS", &|r| mib(r.rss_steady_kib));
    line("completion: all Succeeded after", &|r| r.completion.map_or("n/a".into(), dur));
    line("completion: per media, `_success` → Succeeded p50 / p99", &|r| {
        format!("{} / {}", secs(r.to_succeeded.0), secs(r.to_succeeded.1))
    });
    line(
        "completion: DescribeInstances / TerminateInstances / DeleteParameters calls",
        &|r| {
            let c = |k: &str| r.completion_calls.get(k).copied().unwrap_or(0);
            format!(
                "{} / {} / {}",
                c("DescribeInstances"),
                c("TerminateInstances"),
                c("DeleteParameters")
            )
        },
    );
    line("controller peak RSS (VmHWM)", &|r| mib(r.hwm_kib));
    let notes: Vec<String> = rows
        .iter()
        .filter(|r| !r.note.is_empty())
        .map(|r| format!("- N = {} {}: {}", r.n, r.label, r.note))
        .collect();
    let report = format!(
        "# Controller scale\n\n`cargo bench --bench controller_scale{}`; poll interval {}, steady window {} cycles.\n\nMachine: {}. Wall time {:.0} s.\n\n{t}\n{}\n",
        if flags.args.len() > 1 {
            format!(
                " -- {}",
                flags.args.iter().filter(|a| *a != "--bench").cloned().collect::<Vec<_>>().join(" ")
            )
        } else {
            String::new()
        },
        dur(poll),
        cycles,
        common::machine(),
        started.elapsed().as_secs_f64(),
        notes.join("\n")
    );
    println!("\n{report}");
    if flags.bench {
        let path = common::write_results("controller_scale", &report);
        println!("written to {}", path.display());
    }
}
