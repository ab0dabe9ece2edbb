//! Benchmark 3: dump throughput of an Openverse-shaped `image` table (1M rows by default) in a
//! local PostgreSQL, every way side by side on the same table in one run:
//!
//! 1. **text floor**: `psql -c "COPY (SELECT * FROM image) TO STDOUT" > /dev/null`;
//! 2. **binary floor**: the same with `(FORMAT binary)` — what the native engine reads;
//! 3. **native, 1 stream** and 4. **native, 2 streams**: the project's engine
//!    (`datadump::worker::pg::export`) through `target/release/examples/pg_export` into local
//!    files, with the worker's defaults: zstd, 16 MiB row groups (`DEFAULT_ROW_GROUP_BYTES`),
//!    2 GiB files; and **native, 2 streams, TLS**: the same over TLS with `sslmode=verify-full`
//!    (the server has a certificate for `localhost` from a CA made by the bench, and accepts
//!    both, so every other method reads unencrypted as before);
//! 5. **odbc2parquet**: `odbc2parquet query` with the worker's flags (`odbc2parquet_args`) and
//!    ODBC driver options (`driver_options`: cursor fetching etc.), `PGTZ=UTC`, into a temp dir;
//! 6. **DuckDB** (the fastest exporter known), `threads=2` and `threads=1`:
//!    `COPY (SELECT * FROM postgres_scan(conninfo, 'public', 'image')) TO 'out.parquet'
//!    (FORMAT parquet, COMPRESSION zstd)` from Python; and `threads=2` with the uuid column cast
//!    to text, the logical types ours has, for the size comparison;
//! 7. **baseline native**, 1 and 2 streams, when `$DATADUMP_BENCH_BASELINE_PG_EXPORT` names an
//!    earlier build's `pg_export` (same arguments): the speed and size of a change side by side.
//!
//! Every client logs in over TCP on 127.0.0.1 with the same password. After one untimed
//! warm-up COPY the methods run in a rotating order for `--repeats` rounds; the table reports
//! medians of wall time and CPU, and the highest peak RSS (GNU time's `%M`: the largest
//! process of the child's tree). Output size, files and row groups come from the Parquet
//! footers (first round). `--memory-rows N` then grows the table to N rows and runs the
//! native methods once more, for their peak RSS on a bigger table. Ratios matter, nothing here
//! asserts a timing. Results go to stdout and `target/bench-results/dump_throughput.md`.
//!
//! ```text
//! cargo build --release --example pg_export
//! cargo bench --bench dump_throughput -- --rows 1000000 --repeats 2 --memory-rows 4000000
//! ```
//!
//! Needs PostgreSQL server binaries (`/usr/lib/postgresql/*/bin`, or `$PG_BIN`), GNU time at
//! /usr/bin/time (`apt-get install -y time`) and the release `pg_export` example (else the
//! debug one; `$DATADUMP_BENCH_PG_EXPORT` overrides). Optional, skipped with a note if absent:
//! odbc2parquet 11 (on PATH, in ~/.cargo/bin or `$ODBC2PARQUET`) with unixODBC's
//! `PostgreSQL Unicode` driver, as `scripts/setup.sh` installs them; and DuckDB in a venv,
//! found through `$DATADUMP_BENCH_DUCKDB_PYTHON` or `.bench-venv/bin/python` (gitignored):
//!
//! ```text
//! python3 -m venv .bench-venv
//! .bench-venv/bin/pip install duckdb==1.4.4 duckdb-ext-postgres==1.4.4.20260205
//! ```
//!
//! (the second package ships only the `postgres` extension file; the bench loads it from
//! `duckdb_ext/extensions` with autoinstall off, so nothing is downloaded at run time).
//! Without a `--bench` argument (`cargo test --all-targets`) it runs a 2,000-row smoke round
//! and writes no results file.

#[allow(dead_code)]
#[path = "../tests/it/support/net.rs"]
mod net;
#[path = "common/openverse.rs"]
mod openverse;
#[allow(dead_code)]
#[path = "../tests/it/support/pki.rs"]
mod pki;
#[allow(dead_code)]
#[path = "../tests/it/support/postgres.rs"]
mod postgres;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use datadump::api::job::{driver_options, odbc2parquet_args};
use datadump::api::{Odbc2ParquetSpec, OutputSpec};
use datadump::contract::job::DEFAULT_ROW_GROUP_BYTES;
use datadump::worker::odbc::effective_connection;
use parquet::file::reader::{FileReader, SerializedFileReader};

use openverse::{CREATE_SQL, IMAGE_SQL};
use postgres::{Postgres, ServerTls, USER};

const DB: &str = "openledger";
const TIME: &str = "/usr/bin/time";
/// GNU time: wall seconds, max RSS (KiB), user and system CPU seconds.
const TIME_FORMAT: &str = "%e %M %U %S";
const QUERY: &str = "SELECT * FROM image";

/// DuckDB's side: argv = threads, output file, `uuid` or `text` for the identifier column's
/// type (DuckDB writes uuid as a 16-byte UUID, ours is its text); the conninfo comes in
/// `$PGCONNINFO`.
const DUCKDB_PY: &str = r#"
import os, sys, duckdb
ext = os.path.join(os.path.dirname(duckdb.__file__), '..', 'duckdb_ext', 'extensions')
con = duckdb.connect()
con.execute("SET autoinstall_known_extensions=false")
con.execute("SET extension_directory='%s'" % os.path.abspath(ext).replace("'", "''"))
con.execute("LOAD postgres")
con.execute("SET threads=%d" % int(sys.argv[1]))
conninfo = os.environ['PGCONNINFO'].replace("'", "''")
cols = "* REPLACE (CAST(identifier AS VARCHAR) AS identifier)" if sys.argv[3] == "text" else "*"
con.execute("COPY (SELECT %s FROM postgres_scan('%s', 'public', 'image')) TO '%s' (FORMAT parquet, COMPRESSION zstd)"
            % (cols, conninfo, sys.argv[2].replace("'", "''")))
"#;

struct Opts {
    rows: u64,
    repeats: usize,
    memory_rows: Option<u64>,
    /// Run by `cargo test`: a small smoke round, no results file.
    smoke: bool,
}

fn parse_args() -> Opts {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = !args.iter().any(|a| a == "--bench");
    let mut o = Opts {
        rows: if smoke { 2_000 } else { 1_000_000 },
        repeats: if smoke { 1 } else { 3 },
        memory_rows: None,
        smoke,
    };
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> u64 {
            let v = inline
                .clone()
                .or_else(|| it.next())
                .unwrap_or_else(|| panic!("{name} needs a value"));
            v.replace(['_', ','], "").parse().unwrap_or_else(|_| panic!("{name} N, not {v:?}"))
        };
        match flag.as_str() {
            "--bench" => {}
            "--rows" => o.rows = value("--rows"),
            "--repeats" => o.repeats = value("--repeats") as usize,
            "--memory-rows" => o.memory_rows = Some(value("--memory-rows")),
            "--help" | "-h" => {
                println!("dump_throughput [--rows N (1000000)] [--repeats N (3)] [--memory-rows N]");
                std::process::exit(0);
            }
            other => panic!("unknown argument {other:?} (try --help)"),
        }
    }
    assert!(o.rows > 0 && o.repeats > 0, "--rows and --repeats must be positive");
    if let Some(m) = o.memory_rows {
        assert!(m > o.rows, "--memory-rows must exceed --rows (the table grows to it)");
    }
    o
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Method {
    TextFloor,
    BinaryFloor,
    Native1,
    Native2,
    Native2Tls,
    Baseline1,
    Baseline2,
    Odbc2Parquet,
    DuckDb2,
    DuckDb2Text,
    DuckDb1,
}

impl Method {
    const ALL: [Method; 11] = [
        Method::TextFloor,
        Method::BinaryFloor,
        Method::Native1,
        Method::Native2,
        Method::Native2Tls,
        Method::Baseline1,
        Method::Baseline2,
        Method::Odbc2Parquet,
        Method::DuckDb2,
        Method::DuckDb2Text,
        Method::DuckDb1,
    ];

    fn label(self) -> &'static str {
        match self {
            Method::TextFloor => "text floor: psql `COPY … TO STDOUT` > /dev/null",
            Method::BinaryFloor => "binary floor: psql `COPY … TO STDOUT (FORMAT binary)` > /dev/null",
            Method::Native1 => "native engine, 1 stream",
            Method::Native2 => "native engine, 2 streams",
            Method::Native2Tls => "native engine, 2 streams, TLS (verify-full)",
            Method::Baseline1 => "baseline native engine (`$DATADUMP_BENCH_BASELINE_PG_EXPORT`), 1 stream",
            Method::Baseline2 => "baseline native engine (`$DATADUMP_BENCH_BASELINE_PG_EXPORT`), 2 streams",
            Method::Odbc2Parquet => "odbc2parquet (worker's flags and driver options)",
            Method::DuckDb2 => "DuckDB postgres_scan, threads=2",
            Method::DuckDb2Text => "DuckDB postgres_scan, threads=2, uuid as text (our types)",
            Method::DuckDb1 => "DuckDB postgres_scan, threads=1",
        }
    }
}

/// The Parquet output of one run.
#[derive(Clone, Debug, Default)]
struct Output {
    bytes: u64,
    files: usize,
    rows: i64,
    row_groups: usize,
}

/// One run: wall time, then GNU time's peak RSS (KiB) and CPU (user + system) of the child.
struct Sample {
    wall: Duration,
    rss_kib: u64,
    cpu: f64,
    output: Option<Output>,
}

/// Peak RSS and CPU from the last line GNU time wrote to `file` (earlier lines may be notes).
fn read_usage(file: &Path) -> (u64, f64) {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let line = text
        .lines()
        .rev()
        .find(|l| l.split(' ').count() == 4)
        .unwrap_or_else(|| panic!("GNU time wrote {text:?}"));
    let f: Vec<f64> = line.split(' ').map(|v| v.parse().unwrap()).collect();
    (f[1] as u64, f[2] + f[3])
}

fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| format!("{}/target", env!("CARGO_MANIFEST_DIR")))
        .into()
}

/// `$ODBC2PARQUET`, else the first `odbc2parquet` on PATH, else ~/.cargo/bin's.
fn odbc2parquet_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("ODBC2PARQUET") {
        return Some(p.into());
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let cargo_home = std::env::var("CARGO_HOME").unwrap_or_else(|_| format!("{home}/.cargo"));
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain([format!("{cargo_home}/bin").as_str()])
        .map(|d| Path::new(d).join("odbc2parquet"))
        .find(|p| p.is_file())
}

/// `$DATADUMP_BENCH_PG_EXPORT`, else the release example, else the debug one.
fn pg_export_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("DATADUMP_BENCH_PG_EXPORT") {
        return Some(p.into());
    }
    ["release", "debug"]
        .iter()
        .map(|p| target_dir().join(p).join("examples/pg_export"))
        .find(|p| p.is_file())
}

/// `$DATADUMP_BENCH_DUCKDB_PYTHON`, else `.bench-venv/bin/python`, if it imports duckdb.
fn duckdb_python() -> Option<PathBuf> {
    let py: PathBuf = std::env::var("DATADUMP_BENCH_DUCKDB_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".bench-venv/bin/python"));
    let ok = Command::new(&py)
        .args(["-c", "import duckdb"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(py)
}

fn command_line(program: &Path, args: &[&str]) -> String {
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

/// Bytes, row count and row groups of the Parquet files in `dir` (footers only).
fn inspect_parquet(dir: &Path) -> Output {
    let mut out = Output::default();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "parquet") {
            continue;
        }
        let file = std::fs::File::open(&path).unwrap();
        out.files += 1;
        out.bytes += file.metadata().unwrap().len();
        let reader = SerializedFileReader::new(file).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.rows += reader.metadata().file_metadata().num_rows();
        out.row_groups += reader.metadata().num_row_groups();
    }
    out
}

struct Tools {
    pg_export: Option<PathBuf>,
    /// An earlier build's `pg_export`, for a side-by-side speed comparison.
    baseline: Option<PathBuf>,
    odbc2parquet: Option<PathBuf>,
    duckdb: Option<PathBuf>,
}

impl Tools {
    /// The program `m` runs, if present.
    fn of(&self, m: Method) -> Option<&Path> {
        match m {
            Method::TextFloor | Method::BinaryFloor => Some(Path::new("psql")),
            Method::Native1 | Method::Native2 | Method::Native2Tls => self.pg_export.as_deref(),
            Method::Baseline1 | Method::Baseline2 => self.baseline.as_deref(),
            Method::Odbc2Parquet => self.odbc2parquet.as_deref(),
            Method::DuckDb2 | Method::DuckDb2Text | Method::DuckDb1 => self.duckdb.as_deref(),
        }
    }
}

struct Bench {
    pg: Postgres,
    dir: tempfile::TempDir,
    tools: Tools,
    opts: Opts,
}

impl Bench {
    /// Runs `m`'s program under GNU time; `out` (created, inspected, removed) gets its Parquet.
    fn run(&self, m: Method, round: &str, out: Option<&Path>, args: &[&str], env: &[(&str, String)]) -> Sample {
        let program = self.tools.of(m).unwrap();
        let tag = format!("{m:?}-{round}");
        let time_file = self.dir.path().join(format!("{tag}.time"));
        let log = self.dir.path().join(format!("{tag}.log"));
        if let Some(out) = out {
            std::fs::create_dir_all(out).unwrap();
        }
        let started = Instant::now();
        let status = Command::new(TIME)
            .args(["-f", TIME_FORMAT, "-o"])
            .arg(&time_file)
            .arg(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .status()
            .unwrap_or_else(|e| panic!("run {TIME} {}: {e}", program.display()));
        let wall = started.elapsed();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(status.success(), "{} failed ({status}): {text}", m.label());
        let output = out.map(|dir| {
            let o = inspect_parquet(dir);
            std::fs::remove_dir_all(dir).unwrap();
            o
        });
        let (rss_kib, cpu) = read_usage(&time_file);
        Sample {
            wall,
            rss_kib,
            cpu,
            output,
        }
    }

    fn sample(&self, m: Method, round: &str) -> Sample {
        let pw = ("PGPASSWORD", self.pg.password().to_string());
        let conninfo = ("PGCONNINFO", self.pg.connection_string(DB));
        let out = self.dir.path().join(format!("{m:?}-{round}"));
        let port = self.pg.port().to_string();
        match m {
            Method::TextFloor | Method::BinaryFloor => {
                let sql = format!(
                    "COPY ({QUERY}) TO STDOUT{}",
                    if m == Method::TextFloor { "" } else { " (FORMAT binary)" }
                );
                let mut args: Vec<&str> = "-X -v ON_ERROR_STOP=1 -h 127.0.0.1 -d".split(' ').collect();
                args.extend([DB, "-U", USER, "-p", &port, "-c", &sql]);
                self.run(m, round, None, &args, &[pw])
            }
            Method::Native1 | Method::Native2 | Method::Native2Tls | Method::Baseline1 | Method::Baseline2 => {
                let streams = if matches!(m, Method::Native1 | Method::Baseline1) {
                    "1"
                } else {
                    "2"
                };
                let mib = (DEFAULT_ROW_GROUP_BYTES >> 20).to_string();
                let dir = out.to_str().unwrap();
                let args = ["-", "SELECT * FROM {media_type}", "image", streams, dir, &mib];
                let conninfo = if m == Method::Native2Tls {
                    let ca = self.dir.path().join("ca.pem").display().to_string();
                    let tls = format!("sslmode=verify-full sslrootcert={ca}");
                    ("PGCONNINFO", self.pg.connection_string_to("localhost", DB, &tls))
                } else {
                    conninfo
                };
                self.run(m, round, Some(&out), &args, &[conninfo])
            }
            Method::Odbc2Parquet => {
                let options = driver_options(&Odbc2ParquetSpec::default());
                let conn = effective_connection(&self.pg.odbc_connection_string(DB), &options);
                let mut args = vec!["query".to_string()];
                args.extend(odbc2parquet_args(&Odbc2ParquetSpec::default(), &OutputSpec::default()));
                args.push(out.join("image.parquet").display().to_string());
                args.push(QUERY.into());
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let env = [("ODBC_CONNECTION_STRING", conn), ("PGTZ", "UTC".into())];
                self.run(m, round, Some(&out), &args, &env)
            }
            Method::DuckDb2 | Method::DuckDb2Text | Method::DuckDb1 => {
                let threads = if m == Method::DuckDb1 { "1" } else { "2" };
                let uuid = if m == Method::DuckDb2Text { "text" } else { "uuid" };
                let file = out.join("image.parquet").display().to_string();
                let args = ["-c", DUCKDB_PY, threads, &file, uuid];
                self.run(m, round, Some(&out), &args, &[conninfo])
            }
        }
    }

    /// One untimed warm-up COPY, then `repeats` rounds of `methods` in rotating order.
    fn pass(&self, methods: &[Method], repeats: usize, rows: u64) -> Vec<(Method, Sample)> {
        self.sample(Method::TextFloor, &format!("warm-up-{rows}"));
        let mut samples = Vec::new();
        for round in 0..repeats {
            for i in 0..methods.len() {
                let m = methods[(i + round) % methods.len()];
                let s = self.sample(m, &format!("{rows}-{round}"));
                let rss = mib(s.rss_kib as f64 * 1024.0);
                eprintln!(
                    "{rows} rows, round {round}: {:<68} {:>7.2} s, peak RSS {rss}",
                    m.label(),
                    s.wall.as_secs_f64()
                );
                if let Some(o) = &s.output {
                    assert_eq!(o.rows, rows as i64, "{m:?} wrote {} rows", o.rows);
                }
                samples.push((m, s));
            }
        }
        samples
    }

    /// Adds rows `from..=to` of the generator.
    fn fill(&self, from: u64, to: u64) -> Duration {
        let started = Instant::now();
        let sql = IMAGE_SQL.replace("@FROM@", &from.to_string()).replace("@TO@", &to.to_string());
        self.pg.psql(DB, &sql);
        self.pg.psql(DB, "VACUUM (FREEZE, ANALYZE) image");
        let count: u64 = self.pg.psql(DB, "SELECT count(*) FROM image").trim().parse().unwrap();
        assert_eq!(count, to);
        started.elapsed()
    }

    fn table_size(&self) -> String {
        self.pg
            .psql(DB, "SELECT pg_size_pretty(pg_total_relation_size('image'))")
            .trim()
            .to_string()
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

/// `1234567` → `1,234,567`.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let comma = |i: usize| (i > 0 && (s.len() - i).is_multiple_of(3)).then_some(',');
    s.chars().enumerate().flat_map(|(i, c)| comma(i).into_iter().chain([c])).collect()
}

fn proc_line(file: &str, prefix: &str) -> String {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with(prefix))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// One markdown table of `samples` (of `rows` rows each) against the text floor.
fn table(md: &mut String, rows: u64, samples: &[(Method, Sample)], floor: Option<f64>) {
    let _ = writeln!(
        md,
        "| method | wall s | rows/s | × text floor | peak RSS | CPU s | output | files | row groups |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for m in Method::ALL {
        let of: Vec<&Sample> = samples.iter().filter(|(k, _)| *k == m).map(|(_, s)| s).collect();
        if of.is_empty() {
            continue;
        }
        let walls: Vec<f64> = of.iter().map(|s| s.wall.as_secs_f64()).collect();
        let wall = median(walls.clone());
        let runs = walls.iter().map(|w| format!("{w:.1}")).collect::<Vec<_>>().join(", ");
        let runs = if walls.len() > 1 { format!(" ({runs})") } else { String::new() };
        let rss = of.iter().map(|s| s.rss_kib).max().unwrap_or(0) as f64 * 1024.0;
        let cpu = median(of.iter().map(|s| s.cpu).collect());
        let ratio = floor.map(|f| format!("{:.2}", wall / f)).unwrap_or_else(|| "–".into());
        let (bytes, files, groups) = match of.iter().find_map(|s| s.output.clone()) {
            Some(o) => (mib(o.bytes as f64), o.files.to_string(), thousands(o.row_groups as u64)),
            None => ("–".into(), "–".into(), "–".into()),
        };
        let _ = writeln!(
            md,
            "| {} | {wall:.2}{runs} | {} | {ratio} | {} | {cpu:.1} | {bytes} | {files} | {groups} |",
            m.label(),
            thousands((rows as f64 / wall) as u64),
            mib(rss),
        );
    }
}

struct Facts {
    build: Duration,
    size: String,
    load: (String, String),
    notes: Vec<&'static str>,
    memory: Option<MemoryRun>,
}

/// The memory run: rows, the table's size, its load time and a sample per method.
type MemoryRun = (u64, String, Duration, Vec<(Method, Sample)>);

fn report(b: &Bench, samples: &[(Method, Sample)], f: &Facts) -> String {
    let floor = median(
        samples
            .iter()
            .filter(|(m, _)| *m == Method::TextFloor)
            .map(|(_, s)| s.wall.as_secs_f64())
            .collect(),
    );
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Dump throughput: {} rows of an Openverse-shaped `image` table\n",
        thousands(b.opts.rows)
    );
    let _ = writeln!(
        md,
        "{} in PostgreSQL. Medians of {} round(s) in rotating order (every run's wall s in parentheses); peak RSS is GNU time's `%M` for the child \
         (the largest process of its tree), the highest over the rounds; CPU s is user + system of the tree; \
         output, files and row groups from the Parquet footers.\n",
        f.size, b.opts.repeats
    );
    table(&mut md, b.opts.rows, samples, Some(floor));
    let wall_of = |m: Method| {
        let walls: Vec<f64> = samples.iter().filter(|(k, _)| *k == m).map(|(_, s)| s.wall.as_secs_f64()).collect();
        (!walls.is_empty()).then(|| median(walls))
    };
    if let (Some(tls), Some(plain)) = (wall_of(Method::Native2Tls), wall_of(Method::Native2)) {
        let _ = writeln!(
            md,
            "
TLS (verify-full) against unencrypted, native engine, 2 streams: {:.3}× the wall time ({:+.1} %).",
            tls / plain,
            (tls / plain - 1.0) * 100.0
        );
    }
    for (ours, base) in [(Method::Native1, Method::Baseline1), (Method::Native2, Method::Baseline2)] {
        if let (Some(o), Some(b)) = (wall_of(ours), wall_of(base)) {
            let _ = writeln!(
                md,
                "\n{} against the baseline build: {:.3}× the wall time ({:+.1} %).",
                ours.label(),
                o / b,
                (o / b - 1.0) * 100.0
            );
        }
    }
    let bytes_of = |m: Method| {
        samples
            .iter()
            .filter(|(k, _)| *k == m)
            .find_map(|(_, s)| s.output.as_ref())
            .map(|o| o.bytes as f64)
    };
    for duck in [Method::DuckDb2, Method::DuckDb2Text] {
        if let (Some(o), Some(d)) = (bytes_of(Method::Native2), bytes_of(duck)) {
            let _ = writeln!(
                md,
                "\nOutput, native engine with 2 streams against {}: {:.3}× the bytes.",
                duck.label(),
                o / d
            );
        }
    }
    if let Some((rows, size, build, mem)) = &f.memory {
        let _ = writeln!(
            md,
            "\nMemory pass: the table grown to {} rows ({size}, {:.0} s to add the rows), each native method once:\n",
            thousands(*rows),
            build.as_secs_f64()
        );
        table(&mut md, *rows, mem, None);
    }
    let tool = |p: &Option<PathBuf>, args: &[&str]| p.as_ref().map(|p| command_line(p, args)).unwrap_or_else(|| "absent".into());
    let _ = writeln!(
        md,
        "\n## Facts\n\n\
         - machine: {} CPUs ({}), {} RAM, kernel {}; load average {} before, {} after\n\
         - {}; table built with generate_series + VACUUM (FREEZE, ANALYZE) in {:.1} s\n\
         - native: `{}` with {} MiB row groups, zstd, 2 GiB files; baseline: `{}`\n\
         - odbc2parquet: {}; flags {:?}\n\
         - DuckDB: {}\n\
         - {}\n\
         - reproduce: `cargo build --release --example pg_export && cargo bench --bench dump_throughput -- --rows {} --repeats {}{}`",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        proc_line("/proc/cpuinfo", "model name"),
        mib(proc_line("/proc/meminfo", "MemTotal")
            .trim_end_matches(" kB")
            .parse::<f64>()
            .unwrap_or(0.0)
            * 1024.0),
        command_line(Path::new("uname"), &["-r"]),
        f.load.0,
        f.load.1,
        b.pg.psql(DB, "SELECT version()").trim().split(" on ").next().unwrap_or("?"),
        f.build.as_secs_f64(),
        b.tools.pg_export.as_ref().map_or("absent".into(), |p| p.display().to_string()),
        DEFAULT_ROW_GROUP_BYTES >> 20,
        b.tools.baseline.as_ref().map_or("absent".into(), |p| p.display().to_string()),
        tool(&b.tools.odbc2parquet, &["--version"]),
        odbc2parquet_args(&Odbc2ParquetSpec::default(), &OutputSpec::default()),
        tool(&b.tools.duckdb, &["-c", "import duckdb; print('duckdb', duckdb.__version__)"]),
        command_line(Path::new("psql"), &["--version"]),
        b.opts.rows,
        b.opts.repeats,
        b.opts.memory_rows.map(|m| format!(" --memory-rows {m}")).unwrap_or_default(),
    );
    for note in &f.notes {
        let _ = writeln!(md, "- note: {note}");
    }
    md
}

fn main() {
    let opts = parse_args();
    assert!(Path::new(TIME).exists(), "GNU time is missing: apt-get install -y time");
    let tools = Tools {
        pg_export: pg_export_binary(),
        baseline: std::env::var_os("DATADUMP_BENCH_BASELINE_PG_EXPORT").map(PathBuf::from),
        odbc2parquet: odbc2parquet_binary(),
        duckdb: duckdb_python(),
    };
    let debug = tools.pg_export.as_ref().is_some_and(|p| p.to_string_lossy().contains("/debug/"));
    let notes: Vec<&str> = [
        (
            tools.pg_export.is_none(),
            "native engine skipped: `cargo build --release --example pg_export` first",
        ),
        (debug, "native engine: the DEBUG pg_export example (no release build found)"),
        (
            tools.odbc2parquet.is_none(),
            "odbc2parquet skipped: not on PATH nor in ~/.cargo/bin",
        ),
        (
            tools.duckdb.is_none(),
            "DuckDB skipped: no .bench-venv/bin/python with duckdb (see the bench's header)",
        ),
    ]
    .into_iter()
    .filter_map(|(on, note)| on.then_some(note))
    .collect();
    let load_before = loadavg();
    let ca = pki::Ca::new("dump_throughput bench CA");
    let pg = Postgres::start_tls(&ServerTls {
        server: ca.server(&["localhost"], pki::Validity::Current),
        client_ca: None,
        also_plain: true,
    });
    pg.create_database(DB);
    pg.psql(DB, CREATE_SQL);
    let bench = Bench {
        pg,
        dir: tempfile::Builder::new().prefix("dump-throughput").tempdir().unwrap(),
        tools,
        opts,
    };
    std::fs::write(bench.dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
    eprintln!("building the image table ({} rows)…", bench.opts.rows);
    let build = bench.fill(1, bench.opts.rows);
    let size = bench.table_size();
    eprintln!("built in {:.1} s: {size}", build.as_secs_f64());

    let methods: Vec<Method> = Method::ALL.into_iter().filter(|m| bench.tools.of(*m).is_some()).collect();
    let samples = bench.pass(&methods, bench.opts.repeats, bench.opts.rows);
    let native: Vec<Method> = [
        Method::Native1,
        Method::Native2,
        Method::Native2Tls,
        Method::Baseline1,
        Method::Baseline2,
    ]
    .into_iter()
    .filter(|m| bench.tools.of(*m).is_some())
    .collect();
    let memory = bench.opts.memory_rows.filter(|_| bench.tools.pg_export.is_some()).map(|rows| {
        eprintln!("growing the table to {rows} rows…");
        let grow = bench.fill(bench.opts.rows + 1, rows);
        (rows, bench.table_size(), grow, bench.pass(&native, 1, rows))
    });

    let facts = Facts {
        build,
        size,
        load: (load_before, loadavg()),
        notes,
        memory,
    };
    let md = report(&bench, &samples, &facts);
    println!("{md}");
    if bench.opts.smoke {
        eprintln!("smoke run (no --bench argument): no results file written");
        return;
    }
    let out = target_dir().join("bench-results");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("dump_throughput.md"), &md).unwrap();
    eprintln!("wrote {}", out.join("dump_throughput.md").display());
}
