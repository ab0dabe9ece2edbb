//! The soak: many DataDumps through every fault at once — the real API server behind a fault
//! proxy that fails a share of the controller's requests (500s and 409s) and drops its watches,
//! the AWS fault proxy throttling and 5xx-ing a share
//! of AWS calls with latency, and the controller SIGKILLed at seeded random moments and
//! restarted — while the test plays the workers (most succeed, some fail once and are retried,
//! some fail for good). Then, with the faults off, every dump must end as scripted, and a table
//! reports: dumps completed, instances launched, duplicate instances per token (0), instances
//! left live (0), status writes lost (0) and status regressions seen along the way (0).
//!
//! `cargo test --test it soak` runs the short soak (12 dumps × 2 media types, 4 kills, ~40 s of
//! faults); `DATADUMP_SOAK_LONG=1` runs a long one (40 dumps, 12 kills, 4 minutes of faults);
//! `DATADUMP_SOAK_SEED=N` replays another schedule.
//!
//! Also the small helpers the fault tests share: starting the controller with its HTTP port
//! known, probing `/healthz` and `/readyz`, counting instances per token.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use datadump::api::{DataDump, DumpPhase, MediaPhase};
use kube::ResourceExt;

use crate::support::cluster::{Ec2Instance, World};
use crate::support::faultproxy::{FaultMix, FaultProxy, Faults};

/// Starts the controller (its HTTP endpoints bind a free port; `World::http_port` reads it from
/// the log).
pub(crate) fn start_controller(w: &mut World, env: &[(&str, &str)]) -> usize {
    w.start_controller(env)
}

/// The HTTP status of `GET path` on the controller's port, or `None` when nothing answers.
pub(crate) async fn probe(port: u16, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let io = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut out = String::new();
        stream.read_to_string(&mut out).await.ok()?;
        out.split_whitespace().nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(5), io).await.ok().flatten()
}

/// Waits until the controller's watch cache is synced (`/readyz` answers 200).
pub(crate) async fn wait_ready(w: &World) {
    let port = w.http_port().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while probe(port, "/readyz").await != Some(200) {
        assert!(
            Instant::now() < deadline,
            "the controller never became ready; log tail:\n{}",
            tail(&w.logs(), 30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts that the controller process is alive: `/healthz` answers 200 (within 10 s, so a
/// busy process gets its chance).
pub(crate) async fn assert_healthy(w: &World, when: &str) {
    let port = w.http_port().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while probe(port, "/healthz").await != Some(200) {
        assert!(
            Instant::now() < deadline,
            "the controller is not alive {when}; log tail:\n{}",
            tail(&w.logs(), 30)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Instances per attempt token.
pub(crate) fn per_token(instances: &[Ec2Instance]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for i in instances {
        *m.entry(i.tags.get("datadump.dev/token").cloned().unwrap_or_default()).or_insert(0) += 1;
    }
    m
}

/// The last `n` lines of a text.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

const MEDIA: [&str; 2] = ["image", "audio"];

/// What the fake worker does for one attempt.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    /// Parquet files with these row counts, the manifest, `_success`.
    Success(Vec<usize>),
    /// `_failure` with this message.
    Failure(String),
}

/// The script: dump `i`'s `media` at `attempt`. Audio of every fourth dump fails once and is
/// retried; image of every sixth fails twice (out of retries: the dump fails).
fn script(i: usize, media: &str, attempt: u32) -> Outcome {
    let fails = (media == "audio" && i % 4 == 1 && attempt == 1) || (media == "image" && i % 6 == 5);
    if fails {
        Outcome::Failure(format!("ERROR: soak {i} {media} attempt {attempt} failed"))
    } else {
        Outcome::Success((0..(i % 3) + 1).map(|f| 10 * (i + 1) + f + attempt as usize).collect())
    }
}

/// How a media type must end.
fn expected(i: usize, media: &str) -> (MediaPhase, u32, Outcome) {
    let mut attempt = 1;
    loop {
        let o = script(i, media, attempt);
        match o {
            Outcome::Success(_) => return (MediaPhase::Succeeded, attempt, o),
            Outcome::Failure(_) if attempt == 2 => return (MediaPhase::Failed, attempt, o),
            Outcome::Failure(_) => attempt += 1,
        }
    }
}

struct Config {
    dumps: usize,
    kills: usize,
    chaos: Duration,
    seed: u64,
    api_fail_ratio: f64,
    aws_fault_ratio: f64,
}

impl Config {
    fn from_env() -> Self {
        let seed = std::env::var("DATADUMP_SOAK_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(7);
        if std::env::var("DATADUMP_SOAK_LONG").is_ok_and(|v| v == "1") {
            Config {
                dumps: 40,
                kills: 12,
                chaos: Duration::from_secs(240),
                seed,
                api_fail_ratio: 0.08,
                aws_fault_ratio: 0.15,
            }
        } else {
            Config {
                dumps: 12,
                kills: 4,
                chaos: Duration::from_secs(40),
                seed,
                api_fail_ratio: 0.08,
                aws_fault_ratio: 0.15,
            }
        }
    }
}

/// Orders what a media type's status says, so that going backwards can be seen.
fn progress_key(d: &DataDump, media: &str) -> Option<(u32, u32, u8)> {
    let m = d.status.as_ref()?.media(media)?;
    let rank = match m.phase {
        MediaPhase::Pending => 0,
        MediaPhase::Launching => 1,
        MediaPhase::Running => 2,
        MediaPhase::Terminating => 3,
        MediaPhase::Succeeded | MediaPhase::Failed => 4,
    };
    Some((m.attempt, m.failed_attempts, rank))
}

/// What the test saw and did along the way.
#[derive(Default)]
struct Log {
    /// token → (dump index, media, attempt, outcome) of every attempt the fake worker finished.
    played: BTreeMap<String, (usize, String, u32, Outcome)>,
    /// Status regressions seen: (dump, what).
    regressions: Vec<String>,
    last_key: BTreeMap<(usize, String), (u32, u32, u8)>,
    terminal_seen: BTreeMap<usize, DumpPhase>,
    /// token → when the fake worker finishes (it "works" a seeded 0-3 s after it is seen running).
    due: BTreeMap<String, Instant>,
    rng: fastrand::Rng,
}

impl Log {
    /// Looks at every dump once; plays the worker for every attempt that runs and has not been
    /// played yet.
    async fn tick(&mut self, w: &World, names: &[Option<String>]) {
        for (i, name) in names.iter().enumerate() {
            let Some(name) = name else { continue };
            let Ok(Some(d)) = w.dumps().get_opt(name).await else { continue };
            let Some(status) = d.status.as_ref() else { continue };
            if let Some(was) = self.terminal_seen.get(&i)
                && *was != status.phase
            {
                self.regressions.push(format!("{name}: phase {was:?} became {:?}", status.phase));
            }
            if status.phase.is_terminal() {
                self.terminal_seen.insert(i, status.phase);
            }
            for media in MEDIA {
                if let Some(key) = progress_key(&d, media) {
                    let slot = (i, media.to_string());
                    if let Some(before) = self.last_key.get(&slot)
                        && key < *before
                    {
                        self.regressions
                            .push(format!("{name}/{media}: (attempt, failed, phase) {before:?} became {key:?}"));
                    }
                    self.last_key.insert(slot, key);
                }
                let Some(m) = status.media(media) else { continue };
                let Some(token) = m.token.clone() else { continue };
                if m.phase != MediaPhase::Running || self.played.contains_key(&token) {
                    continue;
                }
                let delay = Duration::from_millis(self.rng.u64(0..3_000));
                if *self.due.entry(token.clone()).or_insert_with(|| Instant::now() + delay) > Instant::now() {
                    continue;
                }
                let outcome = script(i, media, m.attempt);
                match &outcome {
                    Outcome::Success(rows) => w.write_success(&d, media, rows).await,
                    Outcome::Failure(msg) => w.write_failure(&d, media, msg).await,
                }
                self.played.insert(token, (i, media.to_string(), m.attempt, outcome));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_many_dumps_through_faults_and_restarts() {
    let cfg = Config::from_env();
    let started = Instant::now();
    let mut rng = fastrand::Rng::with_seed(cfg.seed);
    let mut w = World::start().await;
    let proxy = FaultProxy::start(&w.moto.endpoint).await;
    let url = proxy.url();
    let env = [("AWS_ENDPOINT_URL", url.as_str()), ("DATADUMP_LOG", "info")];
    let mut current = start_controller(&mut w, &env);

    let all_names: Vec<String> = (0..cfg.dumps).map(|i| format!("soak-{i:02}")).collect();
    // a third of the dumps at once, the rest one by one over the first half of the faults, so
    // that every stage of the lifecycle meets the faults
    let first = cfg.dumps.div_ceil(3);
    let spacing = cfg.chaos / 2 / (cfg.dumps - first).max(1) as u32;
    let create_at: Vec<Duration> = (0..cfg.dumps)
        .map(|i| {
            if i < first {
                Duration::ZERO
            } else {
                spacing * (i - first + 1) as u32
            }
        })
        .collect();
    let mut names: Vec<Option<String>> = vec![None; cfg.dumps];
    let mut uids: Vec<Option<String>> = vec![None; cfg.dumps];

    // faults on
    proxy.set_faults(
        Faults::seeded(cfg.aws_fault_ratio, cfg.seed)
            .mix(FaultMix::Alternate)
            .latency(Duration::ZERO, Duration::from_millis(60)),
    );
    w.kube.proxy.set_fail_ratio(cfg.api_fail_ratio, 500);
    let mut kill_at: Vec<Duration> = (0..cfg.kills)
        .map(|_| Duration::from_millis(rng.u64(2_000..cfg.chaos.as_millis() as u64)))
        .collect();
    kill_at.sort();
    kill_at.reverse();
    let mut log = Log {
        rng: fastrand::Rng::with_seed(cfg.seed + 1),
        ..Log::default()
    };
    let (mut kills, mut self_exits, mut watch_drops) = (0, 0, 0);
    let mut next_drop = Duration::from_secs(3);
    let mut next_flip = Duration::from_secs(5);
    let mut status_500 = true;
    let mut next_probe = Duration::from_secs(5);
    let mut last_start = Instant::now();
    let chaos_start = Instant::now();
    let mut all_terminal_at: Option<Duration> = None;
    // bounded: the chaos window, then every dump terminal or a deadline
    while chaos_start.elapsed() < cfg.chaos {
        let t = chaos_start.elapsed();
        for i in 0..cfg.dumps {
            if names[i].is_none() && t >= create_at[i] {
                // each under its own prefix: dumps sharing PREFIX/DATE/MEDIA/ see each other's
                // semaphores.
                let spec = serde_json::json!({"apiVersion": "datadump.dev/v1alpha1", "kind": "DataDump",
                    "metadata": {"name": all_names[i], "namespace": w.ns},
                    "spec": {"mediaTypes": MEDIA, "backoffLimit": 1, "destination": {"bucket": "datasets", "prefix": all_names[i]},
                        "database": {"connectionSecretRef": {"name": "catalog-db", "key": "connectionString"}},
                        "instance": {"iamInstanceProfile": "datadump-worker", "instanceType": "t4g.nano", "ebsVolumeSizeGb": 8}}});
                let dd: DataDump = serde_json::from_value(spec).unwrap();
                match w.dumps().create(&Default::default(), &dd).await {
                    Ok(created) => {
                        uids[i] = created.uid();
                        names[i] = Some(all_names[i].clone());
                    }
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        // created, but the answer was lost to an injected fault
                        if let Ok(got) = w.dumps().get(&all_names[i]).await {
                            uids[i] = got.uid();
                            names[i] = Some(all_names[i].clone());
                        }
                    }
                    Err(_) => {}
                }
            }
        }
        log.tick(&w, &names).await;
        if log.terminal_seen.len() == cfg.dumps && all_terminal_at.is_none() {
            all_terminal_at = Some(t);
        }
        if t >= next_drop {
            w.kube.proxy.drop_watches();
            watch_drops += 1;
            next_drop = t + Duration::from_millis(rng.u64(2_000..6_000));
        }
        if t >= next_flip {
            status_500 = !status_500;
            w.kube.proxy.set_fail_ratio(cfg.api_fail_ratio, if status_500 { 500 } else { 409 });
            next_flip = t + Duration::from_secs(5);
        }
        if kill_at.last().is_some_and(|k| t >= *k) {
            kill_at.pop();
            w.kill_controller(current);
            kills += 1;
            current = start_controller(&mut w, &env);
            last_start = Instant::now();
        }
        if t >= next_probe && last_start.elapsed() > Duration::from_secs(5) {
            next_probe = t + Duration::from_secs(2);
            if probe(w.http_port().await, "/healthz").await.is_none() {
                // a crash we did not cause: restart it, as the kubelet would, and count it
                self_exits += 1;
                w.kill_controller(current);
                current = start_controller(&mut w, &env);
                last_start = Instant::now();
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // faults off; the dumps must all end as scripted
    proxy.faults_off();
    w.kube.proxy.set_fail_ratio(0.0, 500);
    let chaos_calls = proxy.calls().len();
    let aws_faults = proxy.injected();
    let drain_deadline = Instant::now() + Duration::from_secs(120);
    loop {
        log.tick(&w, &names).await;
        if log.terminal_seen.len() == cfg.dumps {
            break;
        }
        if Instant::now() > drain_deadline {
            let pending: Vec<_> = all_names
                .iter()
                .enumerate()
                .filter(|(i, _)| !log.terminal_seen.contains_key(i))
                .map(|(_, n)| n.clone())
                .collect();
            panic!(
                "dumps not terminal 120 s after the faults stopped: {pending:?}\n{}",
                tail(&w.logs(), 40)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let drained = chaos_start.elapsed();
    let names: Vec<String> = names.into_iter().map(|n| n.expect("every dump was created")).collect();
    let uids: Vec<String> = uids.into_iter().map(|u| u.expect("every dump has a uid")).collect();

    // the verdict
    let mut launched = 0;
    let mut duplicates = 0;
    let mut left_live = 0;
    let mut lost = Vec::new();
    let mut succeeded = 0;
    for (i, (name, uid)) in names.iter().zip(&uids).enumerate() {
        // counted as the dumps turned terminal (termination is confirmed before that), then
        // waited for as every scenario does
        let instances = w.instances(uid).await;
        launched += instances.len();
        left_live += instances
            .iter()
            .filter(|x| matches!(x.state.as_str(), "pending" | "running" | "stopping" | "stopped"))
            .count();
        duplicates += per_token(&instances).values().map(|n| n - 1).sum::<usize>();
        let d = w.dumps().get(name).await.unwrap();
        let status = d.status.clone().unwrap_or_default();
        let mut all_ok = true;
        for media in MEDIA {
            let (phase, attempts, outcome) = expected(i, media);
            all_ok &= phase == MediaPhase::Succeeded;
            let Some(m) = status.media(media) else {
                lost.push(format!("{name}/{media}: no status"));
                continue;
            };
            if m.phase != phase || m.attempt != attempts || m.failed_attempts != attempts - u32::from(phase == MediaPhase::Succeeded) {
                lost.push(format!(
                    "{name}/{media}: {:?} attempt {} failed {} (want {phase:?} attempt {attempts})",
                    m.phase, m.attempt, m.failed_attempts
                ));
            }
            match outcome {
                Outcome::Success(rows) => {
                    let want = (Some(rows.len() as u64), Some(rows.iter().sum::<usize>() as u64));
                    if (m.files, m.rows) != want {
                        lost.push(format!("{name}/{media}: files/rows {:?} want {want:?}", (m.files, m.rows)));
                    }
                }
                Outcome::Failure(msg) => {
                    if !m.message.as_deref().unwrap_or_default().contains(&msg) {
                        lost.push(format!("{name}/{media}: message {:?} lacks {msg:?}", m.message));
                    }
                }
            }
            // every attempt the worker finished has exactly one instance
            let played: Vec<&String> = log
                .played
                .iter()
                .filter(|(_, p)| p.0 == i && p.1 == media)
                .map(|(t, _)| t)
                .collect();
            if played.len() != attempts as usize {
                lost.push(format!("{name}/{media}: played {} attempts, want {attempts}", played.len()));
            }
            for t in played {
                if instances.iter().filter(|x| x.tags.get("datadump.dev/token") == Some(t)).count() != 1 {
                    lost.push(format!("{name}/{media}: token {t} has no instance of its own"));
                }
            }
        }
        let want = if all_ok { DumpPhase::Succeeded } else { DumpPhase::Failed };
        if status.phase != want {
            lost.push(format!("{name}: phase {:?}, want {want:?}", status.phase));
        }
        succeeded += usize::from(status.phase == DumpPhase::Succeeded);
    }
    for uid in &uids {
        w.assert_nothing_left_running(uid).await;
    }
    let api_faults = w
        .kube
        .proxy
        .requests()
        .iter()
        .filter(|r| r.status == 500 || r.status == 409)
        .count();
    let panicked = w.logs().matches("panicked").count();

    let rows = [
        ("DataDumps (× 2 media types)", format!("{}", names.len())),
        (
            "dumps completed (terminal, as scripted)",
            format!(
                "{}/{} ({succeeded} Succeeded, {} Failed)",
                log.terminal_seen.len(),
                names.len(),
                names.len() - succeeded
            ),
        ),
        ("worker attempts played", format!("{}", log.played.len())),
        ("instances launched", format!("{launched}")),
        ("duplicate instances per token", format!("{duplicates}")),
        ("instances left pending/running/stopping", format!("{left_live}")),
        ("status writes lost", format!("{}", lost.len())),
        ("status regressions observed", format!("{}", log.regressions.len())),
        ("controller SIGKILLs + restarts", format!("{kills}")),
        ("controller exits we did not cause", format!("{self_exits}")),
        ("panics in controller logs", format!("{panicked}")),
        (
            "API answers 500/409 to the controller (injected + real conflicts)",
            format!("{api_faults}"),
        ),
        ("watch drops", format!("{watch_drops}")),
        (
            "AWS faults injected / AWS calls during faults",
            format!("{aws_faults} / {chaos_calls}"),
        ),
        (
            "faults on for; all dumps terminal at",
            format!(
                "{:.0} s; {:.0} s",
                cfg.chaos.as_secs_f64(),
                all_terminal_at.unwrap_or(drained).as_secs_f64()
            ),
        ),
        ("total wall time", format!("{:.0} s", started.elapsed().as_secs_f64())),
    ];
    eprintln!("\nsoak (seed {}):\n| measure | value |\n|---|---|", cfg.seed);
    for (k, v) in &rows {
        eprintln!("| {k} | {v} |");
    }
    assert_eq!(duplicates, 0, "duplicate instances");
    assert_eq!(left_live, 0, "instances left live");
    assert!(lost.is_empty(), "status writes lost or wrong:\n{}", lost.join("\n"));
    assert!(log.regressions.is_empty(), "status went backwards:\n{}", log.regressions.join("\n"));
    assert_eq!(kills, cfg.kills);
    assert_eq!(self_exits, 0, "the controller died by itself");
    assert_eq!(panicked, 0);
    assert!(aws_faults > 0 && api_faults > 0, "faults were injected");
}
