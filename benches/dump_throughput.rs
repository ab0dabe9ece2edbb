//! Benchmark 3 of issue 7: dump throughput of an Openverse-shaped `image` table (1M rows by
//! default) in a local PostgreSQL, three ways side by side in one run:
//!
//! 1. **worker**: the rendered user data with the spec's defaults, run locally by bash as in
//!    `tests/it/worker.rs` (moto for S3 and SSM). Wall time of the whole script; peak RSS of its
//!    odbc2parquet, measured by GNU time through an `odbc2parquet` wrapper first on PATH;
//! 2. **plain odbc2parquet**: `odbc2parquet query` with its own defaults and the driver's (no
//!    `UseDeclareFetch`), under GNU time;
//! 3. **floor**: `psql -c "COPY (SELECT * FROM image) TO STDOUT" > /dev/null`, under GNU time.
//!
//! Every client logs in over TCP on 127.0.0.1 with the same password. The methods run in a
//! rotating order for `--repeats` rounds after one untimed warm-up COPY; the table reports
//! medians. Ratios to the floor are what matter: nothing here asserts a timing. The results go
//! to stdout and to `target/bench-results/dump_throughput.md`.
//!
//! ```text
//! cargo bench --bench dump_throughput                                  # 1M rows, 3 rounds
//! cargo bench --bench dump_throughput -- --rows 100000 --repeats 1
//! cargo bench --bench dump_throughput -- --worker-arg=--batch-size-memory=1GiB
//! ```
//!
//! Needs what the worker e2e test needs (PostgreSQL 15 server binaries, unixODBC with the
//! `PostgreSQL Unicode` driver, odbc2parquet 11 on PATH or in ~/.cargo/bin, the AWS CLI and
//! moto_server from `scripts/setup.sh`) plus GNU time at /usr/bin/time (`apt-get install -y
//! time`). Under `cargo test --all-targets` (no `--bench` argument) it runs a 2,000-row smoke
//! round and writes no results file.

#[allow(dead_code)]
#[path = "../tests/it/support/moto.rs"]
mod moto;
#[allow(dead_code)]
#[path = "../tests/it/support/net.rs"]
mod net;
#[allow(dead_code)]
#[path = "../tests/it/support/postgres.rs"]
mod postgres;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use datadump::api::{DataDumpSpec, ExtraArg, MediaType};
use datadump::worker::contract::{self, Manifest};
use datadump::worker::{WorkerJob, render};
use parquet::file::reader::{FileReader, SerializedFileReader};

use moto::Moto;
use postgres::{Postgres, USER};

const DB: &str = "openledger";
const BUCKET: &str = "open-datasets";
const PREFIX: &str = "data-dump";
const DATE: &str = "2026-11-01";
const PARAMETER: &str = "/datadump/bench/openledger";
const TIME: &str = "/usr/bin/time";
/// GNU time: wall seconds, max RSS (KiB), user and system CPU seconds.
const TIME_FORMAT: &str = "%e %M %U %S";
const COPY_SQL: &str = "COPY (SELECT * FROM image) TO STDOUT";

/// The Openverse catalog's `image` columns. Text, jsonb and array values stay under 1020 bytes
/// so that plain odbc2parquet (which sizes jsonb and arrays from the driver's 255-character
/// `MaxVarcharSize`, i.e. 1020 bytes) reads them without truncation errors.
const IMAGE_SQL: &str = r#"
CREATE TABLE image (
  identifier uuid NOT NULL, created_on timestamptz NOT NULL, updated_on timestamptz NOT NULL,
  ingestion_type text, provider text, source text, foreign_identifier text, foreign_landing_url text,
  url text NOT NULL, thumbnail text, width integer, height integer, filesize integer,
  license text NOT NULL, license_version text, creator text, creator_url text, title text,
  meta_data jsonb, tags jsonb, watermarked boolean, last_synced_with_source timestamptz,
  removed_from_source boolean NOT NULL, filetype text, category text[], standardized_popularity double precision);
INSERT INTO image
SELECT md5('image' || g)::uuid,
  timestamptz '2019-01-01 00:00:00+00' + g * interval '37 seconds',
  timestamptz '2024-01-01 00:00:00+00' + (g % 100003) * interval '1 minute',
  (ARRAY['commoncrawl', 'provider_api', 'provider_api'])[1 + g % 3],
  p, CASE WHEN g % 5 = 0 THEN p || '_sub' ELSE p END,
  CASE WHEN g % 13 = 0 THEN NULL ELSE (g::bigint * 7919)::text END,
  'https://www.' || p || '.org/photos/' || g,
  'https://live.static' || p || '.com/' || g % 9973 || '/' || g || '_' || left(md5(g::text), 10) || '_b.jpg',
  CASE WHEN g % 4 = 0 THEN NULL ELSE 'https://live.static' || p || '.com/' || g % 9973 || '/' || g || '_m.jpg' END,
  CASE WHEN g % 10 = 0 THEN NULL ELSE 200 + (g::bigint * 37) % 5800 END,
  CASE WHEN g % 10 = 0 THEN NULL ELSE 150 + (g::bigint * 53) % 4000 END,
  CASE WHEN g % 6 = 0 THEN NULL ELSE 10000 + (g::bigint * 7919) % 9000000 END,
  lic, CASE WHEN lic = 'cc0' THEN '1.0' WHEN g % 3 = 0 THEN '2.0' ELSE '4.0' END,
  CASE WHEN g % 9 = 0 THEN NULL ELSE (ARRAY['Jürgen Müller', '山田太郎', 'Zoë Ødegaard', 'anonymous photographer',
    'María José García', 'Ngũgĩ wa Thiong''o'])[1 + g % 6] || ' ' || g % 10007 END,
  CASE WHEN g % 9 = 0 THEN NULL ELSE 'https://www.' || p || '.org/people/' || g % 10007 END,
  CASE WHEN g % 17 = 0 THEN NULL ELSE (ARRAY['Sunset over the bay', '東京タワーの夜景', 'Café in Montmartre – été',
    'Mountain lake 🏔️ reflection', 'Старый город', 'IMG_' || g])[1 + g % 6] || ' #' || g END,
  jsonb_build_object('license_url', 'https://creativecommons.org/licenses/' || lic || '/4.0/',
    'raw_license_url', 'https://creativecommons.org/licenses/' || lic || '/4.0/legalcode',
    'views', g % 100000, 'pub_date', 1500000000 + g,
    'description', CASE WHEN g % 3 = 0 THEN NULL ELSE repeat('Lorem ipsum dolor sit amet, ünïcödé 🎨 ', g % 9) END),
  CASE WHEN g % 8 = 0 THEN NULL ELSE (
    SELECT jsonb_agg(jsonb_build_object('name', (ARRAY['landscape', 'nature', 'sky', 'water', 'people', 'city', 'night',
      'tree', 'flower', 'dog', 'cat', 'beach', 'mountain', 'street', 'art', 'snow', 'bird', 'car', 'food',
      'portrait'])[1 + (g::bigint * i) % 20], 'accuracy', round(((g + i) % 100) / 100.0, 2), 'provider', 'clarifai'))
    FROM generate_series(1, 1 + g % 7) AS i) END,
  CASE WHEN g % 3 = 0 THEN NULL ELSE g % 50 = 0 END,
  timestamptz '2025-06-01 00:00:00+00' + (g % 5000) * interval '1 hour',
  g % 1000 = 0,
  CASE WHEN g % 11 = 0 THEN NULL ELSE (ARRAY['jpg', 'png', 'gif', 'jpg', 'svg'])[1 + g % 5] END,
  CASE WHEN g % 7 = 0 THEN NULL ELSE ARRAY[(ARRAY['photograph', 'digitized_artwork', 'illustration'])[1 + g % 3]] END,
  CASE WHEN g % 19 = 0 THEN NULL ELSE ((g::bigint * 7919) % 100000) / 100000.0 END
FROM generate_series(1, @ROWS@) AS g,
  LATERAL (SELECT (ARRAY['flickr', 'wikimedia', 'stocksnap', 'smithsonian', 'met', 'rawpixel'])[1 + g % 6] AS p,
    (ARRAY['by', 'by-sa', 'cc0', 'by-nc', 'by-nd', 'pdm'])[1 + (g / 7) % 6] AS lic) AS v;
"#;

struct Opts {
    rows: u64,
    repeats: usize,
    /// Extra `spec.odbc2parquet.extraArgs` for the worker (to try alternatives).
    worker_args: Vec<String>,
    file_size_threshold: Option<String>,
    /// Run by `cargo test`: a small smoke round, no results file.
    smoke: bool,
}

impl Opts {
    fn custom(&self) -> bool {
        !self.worker_args.is_empty() || self.file_size_threshold.is_some()
    }
}

fn parse_args() -> Opts {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = !args.iter().any(|a| a == "--bench");
    let mut o = Opts {
        rows: if smoke { 2_000 } else { 1_000_000 },
        repeats: if smoke { 1 } else { 3 },
        worker_args: Vec::new(),
        file_size_threshold: None,
        smoke,
    };
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") && !f.starts_with("--worker-arg") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| it.next())
                .unwrap_or_else(|| panic!("{name} needs a value"))
        };
        match flag.as_str() {
            "--bench" => {}
            "--rows" => o.rows = value("--rows").replace('_', "").parse().expect("--rows N"),
            "--repeats" => o.repeats = value("--repeats").parse().expect("--repeats N"),
            "--file-size-threshold" => o.file_size_threshold = Some(value("--file-size-threshold")),
            "--worker-arg" => o.worker_args.push(value("--worker-arg")),
            f if f.starts_with("--worker-arg=") => o.worker_args.push(f["--worker-arg=".len()..].to_string()),
            "--help" | "-h" => {
                println!(
                    "dump_throughput [--rows N (1000000)] [--repeats N (3)] [--file-size-threshold SIZE] [--worker-arg=--FLAG=VALUE]..."
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other:?} (try --help)"),
        }
    }
    assert!(o.rows > 0 && o.repeats > 0, "--rows and --repeats must be positive");
    o
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Method {
    Worker,
    Plain,
    Floor,
}

impl Method {
    const ALL: [Method; 3] = [Method::Worker, Method::Plain, Method::Floor];

    /// `custom`: the worker runs with `--worker-arg` or `--file-size-threshold` overrides.
    fn label(self, custom: bool) -> &'static str {
        match self {
            Method::Worker if custom => "worker (with overrides, see Facts)",
            Method::Worker => "worker (defaults, cursor fetch, S3 upload)",
            Method::Plain => "plain odbc2parquet (defaults)",
            Method::Floor => "floor: psql COPY TO STDOUT",
        }
    }
}

/// What GNU time reports for one process.
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    wall: f64,
    max_rss_kib: u64,
    cpu: f64,
}

/// The Parquet output of one run.
#[derive(Clone, Debug, Default)]
struct Output {
    bytes: u64,
    files: usize,
    rows: i64,
    row_groups: usize,
    footer_bytes: u64,
}

#[derive(Clone, Debug)]
struct Sample {
    /// Wall time of the whole command (for the worker: the whole script).
    wall: Duration,
    /// The measured client process (psql or odbc2parquet).
    client: Usage,
    output: Option<Output>,
    /// For the worker: how many times the script ran the AWS CLI (from its log).
    aws_calls: usize,
}

/// Parses the last line GNU time wrote to `file` (earlier lines may be notes such as "Command
/// exited with non-zero status").
fn read_usage(file: &Path) -> Usage {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let line = text
        .lines()
        .rev()
        .find(|l| l.split(' ').count() == 4)
        .unwrap_or_else(|| panic!("GNU time wrote {text:?}"));
    let f: Vec<f64> = line.split(' ').map(|v| v.parse().unwrap()).collect();
    Usage {
        wall: f[0],
        max_rss_kib: f[1] as u64,
        cpu: f[2] + f[3],
    }
}

/// `$ODBC2PARQUET`, else the first `odbc2parquet` on PATH, else ~/.cargo/bin's.
fn odbc2parquet_binary() -> PathBuf {
    if let Ok(p) = std::env::var("ODBC2PARQUET") {
        return p.into();
    }
    let cargo_home = std::env::var("CARGO_HOME").unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap_or_default()));
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain([format!("{cargo_home}/bin").as_str()])
        .map(|d| Path::new(d).join("odbc2parquet"))
        .find(|p| p.is_file())
        .expect("odbc2parquet not found: cargo install --locked odbc2parquet@11.0.1 (or set ODBC2PARQUET)")
}

fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(if o.stdout.is_empty() { &o.stderr } else { &o.stdout })
                .trim()
                .to_string()
        })
        .unwrap_or_else(|| "?".into())
}

/// Row count, row groups and footer size of local Parquet files.
fn inspect_parquet(files: &[PathBuf]) -> Output {
    let mut out = Output {
        files: files.len(),
        ..Output::default()
    };
    for path in files {
        let bytes = std::fs::read(path).unwrap();
        let n = bytes.len();
        assert!(n >= 8 && &bytes[n - 4..] == b"PAR1", "{} is not Parquet", path.display());
        out.bytes += n as u64;
        out.footer_bytes += u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as u64;
        let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).expect("readable Parquet");
        out.rows += reader.metadata().file_metadata().num_rows();
        out.row_groups += reader.metadata().num_row_groups();
    }
    out
}

struct Bench {
    pg: Postgres,
    moto: Moto,
    dir: tempfile::TempDir,
    odbc2parquet: PathBuf,
    opts: Opts,
}

impl Bench {
    fn floor(&self, round: usize) -> Sample {
        let time_file = self.dir.path().join(format!("floor-{round}.time"));
        let started = Instant::now();
        let out = Command::new(TIME)
            .args(["-f", TIME_FORMAT, "-o"])
            .arg(&time_file)
            .args(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p"])
            .arg(self.pg.port().to_string())
            .args(["-U", USER, "-d", DB, "-c", COPY_SQL])
            .env("PGPASSWORD", self.pg.password())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("run /usr/bin/time psql");
        let wall = started.elapsed();
        assert!(out.status.success(), "COPY failed: {}", String::from_utf8_lossy(&out.stderr));
        Sample {
            wall,
            client: read_usage(&time_file),
            output: None,
            aws_calls: 0,
        }
    }

    fn plain(&self, round: usize, inspect: bool) -> Sample {
        let dir = self.dir.path().join(format!("plain-{round}"));
        std::fs::create_dir_all(&dir).unwrap();
        let time_file = dir.join("odbc2parquet.time");
        let parquet = dir.join("image.parquet");
        let stderr = std::fs::File::create(dir.join("stderr.log")).unwrap();
        let started = Instant::now();
        let status = Command::new(TIME)
            .args(["-f", TIME_FORMAT, "-o"])
            .arg(&time_file)
            .arg(&self.odbc2parquet)
            .args(["query", "--connection-string", &self.pg.odbc_connection_string(DB)])
            .arg(&parquet)
            .arg("SELECT * FROM image")
            .stdout(Stdio::null())
            .stderr(stderr)
            .status()
            .expect("run /usr/bin/time odbc2parquet");
        let wall = started.elapsed();
        let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
        assert!(status.success(), "plain odbc2parquet failed: {log}");
        let output = if inspect {
            inspect_parquet(std::slice::from_ref(&parquet))
        } else {
            Output {
                bytes: std::fs::metadata(&parquet).unwrap().len(),
                files: 1,
                ..Output::default()
            }
        };
        let client = read_usage(&time_file);
        std::fs::remove_dir_all(&dir).unwrap();
        Sample {
            wall,
            client,
            output: Some(output),
            aws_calls: 0,
        }
    }

    fn spec(&self) -> DataDumpSpec {
        let mut spec: DataDumpSpec = serde_yaml::from_str(&format!(
            "mediaTypes: [image]\ndestination: {{bucket: {BUCKET}, prefix: {PREFIX}}}\ndatabase: {{ssmParameterName: {PARAMETER}}}\n"
        ))
        .unwrap();
        if let Some(t) = &self.opts.file_size_threshold {
            spec.odbc2parquet.file_size_threshold = t.clone();
        }
        spec.odbc2parquet
            .extra_args
            .extend(self.opts.worker_args.iter().cloned().map(ExtraArg));
        spec
    }

    /// Runs the rendered user data like EC2 would, with the local overrides (no install, a
    /// work directory, a shutdown stub that only records its arguments) and otherwise the
    /// script's defaults (progress every 60 s, polling every 2 s).
    async fn worker(&self, round: usize, inspect: bool) -> Sample {
        let spec = self.spec();
        let media_type = MediaType("image".into());
        let job = WorkerJob {
            spec: &spec,
            media_type: &media_type,
            dump_date: DATE,
            attempt: 1,
            token: &format!("ddt-bench-{round}"),
            deadline: jiff::Timestamp::now() + jiff::SignedDuration::from_hours(2),
            ssm_parameter: PARAMETER,
            region: "us-east-1",
        };
        let script = render(&job).expect("render");
        let dir = self.dir.path().join(format!("worker-{round}"));
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let user_data = dir.join("user-data");
        std::fs::write(&user_data, &script).unwrap();
        let stub = dir.join("shutdown-stub");
        let real = self.odbc2parquet.display().to_string();
        assert!(!real.contains('\''), "odbc2parquet path with a quote: {real}");
        let time_file = bin.join("odbc2parquet.time");
        let executable = |path: &Path, text: String| {
            std::fs::write(path, text).unwrap();
            std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        };
        executable(&stub, "#!/bin/sh\necho \"$*\" >> \"$(dirname \"$0\")/shutdown.log\"\n".into());
        // `--version` calls go straight through; the dump runs under GNU time.
        executable(
            &bin.join("odbc2parquet"),
            format!(
                "#!/bin/sh\nif [ \"$1\" = --version ]; then exec '{real}' \"$@\"; fi\n\
                 exec {TIME} -a -o '{}' -f '{TIME_FORMAT}' '{real}' \"$@\"\n",
                time_file.display()
            ),
        );
        let env = self.moto.child_env();
        let path = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone()).unwrap_or_default();
        let workdir = dir.join("work");
        let started = Instant::now();
        let status = Command::new("bash")
            .arg(&user_data)
            .envs(env)
            .env("PATH", format!("{}:{path}", bin.display()))
            .env("DATADUMP_SHUTDOWN_CMD", &stub)
            .env("DATADUMP_WORKDIR", &workdir)
            .env("DATADUMP_SKIP_INSTALL", "1")
            .env_remove("DATADUMP_PROGRESS_INTERVAL")
            .env_remove("DATADUMP_POLL_INTERVAL")
            .env_remove("DATADUMP_LIB")
            .stdout(Stdio::null())
            .status()
            .expect("bash");
        let wall = started.elapsed();
        let log = std::fs::read_to_string(workdir.join("worker.log")).unwrap_or_default();
        assert!(status.success(), "the worker failed ({status}):\n{log}");
        let s3 = self.moto.s3().await;
        let get = |key: String| {
            let s3 = s3.clone();
            async move {
                let out = s3
                    .get_object()
                    .bucket(BUCKET)
                    .key(&key)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{key}: {e:?}"));
                out.body.collect().await.unwrap().into_bytes().to_vec()
            }
        };
        let manifest: Manifest = serde_json::from_slice(&get(contract::key(PREFIX, DATE, "image", contract::MANIFEST)).await).unwrap();
        assert_eq!(manifest.rows, Some(self.opts.rows), "rows in the manifest");
        let output = if inspect {
            let mut files = Vec::new();
            for (i, f) in manifest.files.iter().enumerate() {
                let local = dir.join(format!("part-{i}.parquet"));
                std::fs::write(&local, get(f.key.clone()).await).unwrap();
                files.push(local);
            }
            inspect_parquet(&files)
        } else {
            Output {
                bytes: manifest.bytes(),
                files: manifest.files.len(),
                rows: manifest.rows.unwrap_or_default() as i64,
                ..Output::default()
            }
        };
        std::fs::remove_dir_all(dir.join("work")).ok();
        for i in 0..output.files {
            std::fs::remove_file(dir.join(format!("part-{i}.parquet"))).ok();
        }
        Sample {
            wall,
            client: read_usage(&time_file),
            output: Some(output),
            // The SSM read, then one call per object written or part uploaded.
            aws_calls: 1 + log.lines().filter(|l| l.contains(" wrote ") || l.contains(" uploaded ")).count(),
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn mib(bytes: f64) -> String {
    const K: f64 = 1024.0;
    match bytes {
        b if b >= K * K * K => format!("{:.2} GiB", b / (K * K * K)),
        b if b >= 10.0 * K * K => format!("{:.0} MiB", b / (K * K)),
        b if b >= K * K => format!("{:.1} MiB", b / (K * K)),
        b => format!("{:.0} KiB", b / K),
    }
}

fn meminfo_total() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse::<f64>().unwrap_or(0.0))
        })
        .map(|kib| mib(kib * 1024.0))
        .unwrap_or_else(|| "?".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A markdown report: the comparison table, the worker's breakdown, and the facts of the run.
fn report(b: &Bench, samples: &[(Method, Sample)], build: (Duration, String), load: (String, String)) -> String {
    let rows = b.opts.rows as f64;
    let of = |m: Method| samples.iter().filter(move |(k, _)| *k == m).map(|(_, s)| s);
    let wall = |m: Method| median(of(m).map(|s| s.wall.as_secs_f64()).collect());
    let floor = wall(Method::Floor);
    let custom = b.opts.custom();
    let mut md = String::new();
    let _ = writeln!(md, "# Dump throughput: {} rows of an Openverse-shaped `image` table\n", b.opts.rows);
    let _ = writeln!(
        md,
        "Medians of {} round(s); peak RSS is the measured client process (psql or odbc2parquet), the highest over the rounds. \
         The worker's wall time is the whole script (SSM read, dump, S3 uploads, manifest); its odbc2parquet alone is in the next table.\n",
        b.opts.repeats
    );
    let _ = writeln!(
        md,
        "| method | rows/s | wall s | × floor wall | peak RSS | client CPU s | Parquet size | files | row groups | Parquet footer |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for m in Method::ALL {
        let w = wall(m);
        let rss = of(m).map(|s| s.client.max_rss_kib).max().unwrap_or(0) as f64 * 1024.0;
        let cpu = median(of(m).map(|s| s.client.cpu).collect());
        let out = of(m).find_map(|s| s.output.clone().filter(|o| o.row_groups > 0 || o.bytes > 0));
        let (size, files, groups, footer) = match &out {
            Some(o) if o.row_groups > 0 => (
                mib(o.bytes as f64),
                o.files.to_string(),
                o.row_groups.to_string(),
                mib(o.footer_bytes as f64),
            ),
            Some(o) => (mib(o.bytes as f64), o.files.to_string(), "–".into(), "–".into()),
            None => ("–".into(), "–".into(), "–".into(), "–".into()),
        };
        let _ = writeln!(
            md,
            "| {} | {:.0} | {:.2} | {:.2} | {} | {:.1} | {size} | {files} | {groups} | {footer} |",
            m.label(custom),
            rows / w,
            w,
            w / floor,
            mib(rss),
            cpu
        );
    }
    let o2p = median(of(Method::Worker).map(|s| s.client.wall).collect());
    let worker = wall(Method::Worker);
    let _ = writeln!(md, "\n| worker breakdown (medians) | s | × floor wall |\n|---|---:|---:|");
    let _ = writeln!(md, "| odbc2parquet inside the worker | {o2p:.2} | {:.2} |", o2p / floor);
    let _ = writeln!(
        md,
        "| rest of the script ({} AWS CLI calls incl. the uploads, 2 s polls) | {:.2} | {:.2} |",
        of(Method::Worker).map(|s| s.aws_calls).max().unwrap_or(0),
        worker - o2p,
        (worker - o2p) / floor
    );
    let _ = writeln!(md, "\nEvery run (wall s):\n");
    for m in Method::ALL {
        let runs: Vec<String> = of(m).map(|s| format!("{:.2}", s.wall.as_secs_f64())).collect();
        let _ = writeln!(md, "- {}: {}", m.label(custom), runs.join(", "));
    }
    let extra = if !custom {
        "none (spec defaults)".to_string()
    } else {
        format!(
            "fileSizeThreshold {:?}, extraArgs {:?}",
            b.opts.file_size_threshold, b.opts.worker_args
        )
    };
    let _ = writeln!(
        md,
        "\n## Facts\n\n\
         - machine: {} CPUs ({}), {} RAM, kernel {}; load average {} before, {} after\n\
         - table: {} rows, {} in PostgreSQL ({}); built with generate_series + VACUUM (FREEZE, ANALYZE) in {:.1} s (not compared)\n\
         - odbc2parquet {}; {}; {}\n\
         - worker overrides: {extra}\n\
         - peak RSS from GNU time (`/usr/bin/time -f '%M'`, the kernel's getrusage max RSS of the child); the worker's odbc2parquet runs \
         under it through a wrapper first on PATH\n\
         - reproduce: `cargo bench --bench dump_throughput [-- --rows N --repeats N]`",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        cpu_model(),
        meminfo_total(),
        command_line("uname", &["-r"]),
        load.0,
        load.1,
        b.opts.rows,
        build.1,
        b.pg.psql(DB, "SELECT version()").trim().split(" on ").next().unwrap_or("?"),
        build.0.as_secs_f64(),
        command_line(&b.odbc2parquet.display().to_string(), &["--version"]).trim_start_matches("odbc2parquet "),
        command_line("psql", &["--version"]),
        command_line(&format!("{}/aws", moto::venv_bin().display()), &["--version"]),
    );
    md
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let opts = parse_args();
    assert!(Path::new(TIME).exists(), "GNU time is missing: apt-get install -y time");
    let odbc2parquet = odbc2parquet_binary();
    let load_before = loadavg();

    let pg = Postgres::start();
    pg.create_database(DB);
    eprintln!("building the image table ({} rows)…", opts.rows);
    let started = Instant::now();
    pg.psql(DB, &IMAGE_SQL.replace("@ROWS@", &opts.rows.to_string()));
    pg.psql(DB, "VACUUM (FREEZE, ANALYZE) image");
    let build_time = started.elapsed();
    let count: u64 = pg.psql(DB, "SELECT count(*) FROM image").trim().parse().unwrap();
    assert_eq!(count, opts.rows);
    let size = pg
        .psql(DB, "SELECT pg_size_pretty(pg_total_relation_size('image'))")
        .trim()
        .to_string();
    eprintln!("built in {:.1} s: {size}", build_time.as_secs_f64());

    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    moto.ssm()
        .await
        .put_parameter()
        .name(PARAMETER)
        .value(pg.odbc_connection_string(DB))
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    let bench = Bench {
        pg,
        moto,
        dir: tempfile::Builder::new().prefix("dump-throughput").tempdir().unwrap(),
        odbc2parquet,
        opts,
    };

    bench.floor(usize::MAX); // warm-up: the table is read once before anything is timed
    let mut samples = Vec::new();
    for round in 0..bench.opts.repeats {
        for i in 0..Method::ALL.len() {
            let m = Method::ALL[(i + round) % Method::ALL.len()];
            let inspect = round == 0;
            let s = match m {
                Method::Worker => bench.worker(round, inspect).await,
                Method::Plain => bench.plain(round, inspect),
                Method::Floor => bench.floor(round),
            };
            eprintln!(
                "round {round}: {:<45} {:>7.2} s, peak RSS {}",
                m.label(bench.opts.custom()),
                s.wall.as_secs_f64(),
                mib(s.client.max_rss_kib as f64 * 1024.0)
            );
            if let Some(o) = &s.output {
                assert!(o.rows == 0 || o.rows == bench.opts.rows as i64, "{m:?} wrote {} rows", o.rows);
            }
            samples.push((m, s));
        }
    }

    let md = report(&bench, &samples, (build_time, size), (load_before, loadavg()));
    println!("{md}");
    if bench.opts.smoke {
        eprintln!("smoke run (no --bench argument): no results file written");
        return;
    }
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| format!("{}/target", env!("CARGO_MANIFEST_DIR")));
    let out = Path::new(&target).join("bench-results");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("dump_throughput.md"), &md).unwrap();
    eprintln!("wrote {}", out.join("dump_throughput.md").display());
}
