//! The re-dump benchmark: how much of a second dump a deduplicating host must store again.
//!
//! An Openverse-shaped `image` table (benches/common/openverse.rs, autovacuum off so
//! PostgreSQL places rows the same way every run) is dumped, changed, and dumped again; both
//! dumps are cut into content-defined chunks by FastCDC (the `fastcdc` crate, v2020, min
//! 8 KiB / avg 64 KiB / max 128 KiB: a stand-in for Hugging Face Xet's chunker), and the share
//! of the second dump's bytes in chunks the first dump (or an earlier part of the second) did
//! not have is what the host uploads again. Two changes, each from a fresh table:
//!
//! - clustered: 1 % of the rows updated in one `created_on` range, 0.5 % inserted, 0.1 %
//!   deleted in another range;
//! - scattered: every 100th row updated.
//!
//! and each in two row orders: the heap's (`SELECT * FROM image`, where PostgreSQL put each
//! row version: an updated or inserted row lands in whatever page has room, anywhere in the
//! table) and a key's (`… ORDER BY created_on`: a row keeps its place when updated, new rows
//! come last).
//!
//! Side by side in one run, on the same rows: the `postgres` engine with content-defined
//! chunking (the default) and without, and pyarrow rewriting our unchunked dump's rows with
//! and without `use_content_defined_chunking` (page index on, zstd), which is what the host
//! recommends. `cargo bench --bench redump` (2M rows; `-- --rows N` to change) writes
//! `target/bench-results/redump.md`; without `--bench` (`cargo test --all-targets`) it runs a
//! 20,000-row smoke round and writes nothing. `DATADUMP_BENCH_KEEP=1` keeps the dumps for a
//! closer look. Needs the tests' venv (`scripts/setup.sh`).

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

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use datadump::worker::pg::{PgOptions, export};
use datadump::worker::sink::{DirSink, Progress};
use parquet::file::reader::{FileReader, SerializedFileReader};
use sha2::{Digest, Sha256};

use openverse::{CREATE_SQL, IMAGE_SQL};
use postgres::Postgres;

const DB: &str = "openledger";

/// pyarrow's side: argv = output file, then the input files (our dump without chunking).
const PYARROW_PY: &str = r#"
import sys
import pyarrow as pa, pyarrow.parquet as pq
out, cdc, files = sys.argv[1], sys.argv[2] == "1", sys.argv[3:]
t = pa.concat_tables([pq.read_table(f) for f in files])
pq.write_table(t, out, compression="zstd", write_page_index=True, use_content_defined_chunking=cdc)
"#;

/// What writes the files.
#[derive(Clone, Copy, PartialEq)]
enum Writer {
    Ours { cdc: bool },
    Pyarrow { cdc: bool },
}

impl Writer {
    const ALL: [Writer; 4] = [
        Writer::Ours { cdc: true },
        Writer::Ours { cdc: false },
        Writer::Pyarrow { cdc: true },
        Writer::Pyarrow { cdc: false },
    ];

    fn name(self) -> &'static str {
        match self {
            Writer::Ours { cdc: true } => "datadump, content-defined chunking (default)",
            Writer::Ours { cdc: false } => "datadump, `contentDefinedChunking: false`",
            Writer::Pyarrow { cdc: true } => "pyarrow, `use_content_defined_chunking=True`",
            Writer::Pyarrow { cdc: false } => "pyarrow, no chunking",
        }
    }
}

/// A change between the two dumps.
#[derive(Clone, Copy)]
enum Change {
    Clustered,
    Scattered,
}

impl Change {
    fn name(self) -> &'static str {
        match self {
            Change::Clustered => "clustered: 1 % updated in one key range, 0.5 % inserted, 0.1 % deleted in another",
            Change::Scattered => "scattered: every 100th row updated",
        }
    }

    /// The SQL, for a table of `rows` generated rows (row g was created at 2019-01-01 + 37 s × g).
    fn sql(self, rows: u64) -> String {
        let g = "(extract(epoch FROM created_on - timestamptz '2019-01-01 00:00:00+00') / 37)::bigint";
        let edit = "title = coalesce(title, '') || ' (edited)', updated_on = updated_on + interval '1 day', \
                    tags = coalesce(tags, '[]'::jsonb) || '[{\"name\": \"edited\"}]'::jsonb";
        match self {
            Change::Clustered => {
                let (from, to) = (rows * 3 / 10, rows * 3 / 10 + rows / 100);
                let inserts = IMAGE_SQL
                    .replace("@FROM@", &(rows + 1).to_string())
                    .replace("@TO@", &(rows + rows / 200).to_string());
                let (gone, gone_to) = (rows * 7 / 10, rows * 7 / 10 + rows / 1000);
                format!(
                    "UPDATE image SET {edit} WHERE {g} BETWEEN {from} AND {};\n{inserts}\n\
                     DELETE FROM image WHERE {g} BETWEEN {gone} AND {};",
                    to - 1,
                    gone_to - 1
                )
            }
            Change::Scattered => format!("UPDATE image SET {edit} WHERE {g} % 100 = 0;"),
        }
    }
}

/// The order the dump's query returns the rows in.
#[derive(Clone, Copy)]
enum Order {
    /// `SELECT * FROM image`: the heap's order, where PostgreSQL put each row version.
    Heap,
    /// `… ORDER BY created_on`: a key that a row keeps when updated and new rows sort last by.
    Key,
}

impl Order {
    const ALL: [Order; 2] = [Order::Heap, Order::Key];

    fn query(self) -> &'static str {
        match self {
            Order::Heap => "SELECT * FROM {media_type}",
            Order::Key => "SELECT * FROM {media_type} ORDER BY created_on",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Order::Heap => "heap order (`SELECT * FROM image`)",
            Order::Key => "key order (`SELECT * FROM image ORDER BY created_on`)",
        }
    }
}

struct Bench {
    pg: Postgres,
    dir: tempfile::TempDir,
    rows: u64,
    python: PathBuf,
}

/// One writer's two dumps, as the host sees them.
struct Outcome {
    first: u64,
    second: u64,
    new: u64,
    /// (column, its bytes in the second dump, of them new).
    by_column: Vec<(String, u64, u64)>,
}

impl Bench {
    /// A fresh table of `rows` rows, autovacuum off.
    fn fresh_table(&self) {
        self.pg.psql(DB, "DROP TABLE IF EXISTS image");
        self.pg.psql(DB, CREATE_SQL);
        self.pg.psql(DB, "ALTER TABLE image SET (autovacuum_enabled = false)");
        let sql = IMAGE_SQL.replace("@FROM@", "1").replace("@TO@", &self.rows.to_string());
        self.pg.psql(DB, &sql);
        self.pg.psql(DB, "VACUUM (FREEZE, ANALYZE) image");
    }

    /// Our dump into `dir` (one stream, so the row order is the query's), its files in order.
    fn dump(&self, dir: &Path, order: Order, cdc: bool) -> Vec<PathBuf> {
        std::fs::create_dir_all(dir).unwrap();
        let opts = PgOptions {
            parallelism: 1,
            content_defined_chunking: cdc,
            ..PgOptions::default()
        };
        let progress = Arc::new(Progress::default());
        let sink = Arc::new(DirSink::new(dir, "image", progress.clone()).unwrap());
        let rt = tokio::runtime::Runtime::new().unwrap();
        let summary = rt
            .block_on(export(
                &self.pg.connection_string(DB),
                order.query(),
                "image",
                Some("image"),
                &opts,
                sink,
                progress,
            ))
            .unwrap();
        summary.parts.iter().map(|p| dir.join(&p.name)).collect()
    }

    /// pyarrow's rewrite of `files` into one file.
    fn pyarrow(&self, out: &Path, cdc: bool, files: &[PathBuf]) -> Vec<PathBuf> {
        let status = std::process::Command::new(&self.python)
            .args(["-c", PYARROW_PY])
            .arg(out)
            .arg(if cdc { "1" } else { "0" })
            .args(files)
            .status()
            .unwrap();
        assert!(status.success(), "pyarrow rewrite failed");
        vec![out.to_owned()]
    }

    /// Both dumps for every writer around `change`, measured.
    fn run(&self, change: Change, order: Order) -> Vec<(Writer, Outcome)> {
        self.fresh_table();
        let root = self.dir.path().join(match (change, order) {
            (Change::Clustered, Order::Heap) => "clustered-heap",
            (Change::Clustered, Order::Key) => "clustered-key",
            (Change::Scattered, Order::Heap) => "scattered-heap",
            (Change::Scattered, Order::Key) => "scattered-key",
        });
        // rounds[r][w]: writer w's files in dump r
        let mut rounds: Vec<Vec<Vec<PathBuf>>> = Vec::new();
        for round in 0..2 {
            if round == 1 {
                self.pg.psql(DB, &change.sql(self.rows));
            }
            let mut dumps: Vec<Vec<PathBuf>> = Vec::new();
            for (i, w) in Writer::ALL.into_iter().enumerate() {
                let dir = root.join(format!("w{i}-dump{round}"));
                let files = match w {
                    Writer::Ours { cdc } => self.dump(&dir, order, cdc),
                    Writer::Pyarrow { cdc } => {
                        std::fs::create_dir_all(&dir).unwrap();
                        // the same rows: our unchunked dump of this round (written just before)
                        self.pyarrow(&dir.join("part.parquet"), cdc, &dumps[1])
                    }
                };
                dumps.push(files);
            }
            rounds.push(dumps);
        }
        let same = new_bytes(&rounds[0][0], &rounds[0][0]);
        assert_eq!((same.new, same.first), (0, same.second), "a dump against itself has no new chunks");
        Writer::ALL
            .into_iter()
            .enumerate()
            .map(|(i, w)| (w, new_bytes(&rounds[0][i], &rounds[1][i])))
            .collect()
    }
}

/// One content-defined chunk of a dump: its file (index), offset, length and SHA-256.
struct Chunk {
    file: usize,
    offset: u64,
    len: u64,
    hash: [u8; 32],
}

/// The chunks of `files` (FastCDC v2020, 8/64/128 KiB).
fn chunks(files: &[PathBuf]) -> Vec<Chunk> {
    let mut out = Vec::new();
    for (file, f) in files.iter().enumerate() {
        let bytes = std::fs::read(f).unwrap();
        for c in fastcdc::v2020::FastCDC::new(&bytes, 8 * 1024, 64 * 1024, 128 * 1024) {
            let data = &bytes[c.offset..c.offset + c.length];
            out.push(Chunk {
                file,
                offset: c.offset as u64,
                len: c.length as u64,
                hash: Sha256::digest(data).into(),
            });
        }
    }
    out
}

/// Bytes of the second dump in chunks the host does not have yet, and those bytes by column.
fn new_bytes(first: &[PathBuf], second: &[PathBuf]) -> Outcome {
    let a = chunks(first);
    let mut known: HashSet<[u8; 32]> = a.iter().map(|c| c.hash).collect();
    let b = chunks(second);
    let fresh: Vec<&Chunk> = b.iter().filter(|c| known.insert(c.hash)).collect();
    Outcome {
        first: a.iter().map(|c| c.len).sum(),
        second: b.iter().map(|c| c.len).sum(),
        new: fresh.iter().map(|c| c.len).sum(),
        by_column: by_column(second, &fresh),
    }
}

/// Each column's bytes in `files` and how many of them lie in `fresh` chunks, from the
/// footers' column-chunk ranges; what no column chunk covers (footers) is `(footer etc.)`.
fn by_column(files: &[PathBuf], fresh: &[&Chunk]) -> Vec<(String, u64, u64)> {
    let mut columns: Vec<(String, u64, u64)> = Vec::new();
    let mut covered_new = 0;
    let mut covered = 0;
    for (i, f) in files.iter().enumerate() {
        let reader = SerializedFileReader::new(std::fs::File::open(f).unwrap()).unwrap();
        for rg in reader.metadata().row_groups() {
            for (j, col) in rg.columns().iter().enumerate() {
                let (start, len) = col.byte_range();
                let end = start + len;
                let new: u64 = fresh
                    .iter()
                    .filter(|c| c.file == i)
                    .map(|c| (c.offset + c.len).min(end).saturating_sub(c.offset.max(start)))
                    .sum();
                if columns.len() <= j {
                    columns.push((col.column_path().string(), 0, 0));
                }
                columns[j].1 += len;
                columns[j].2 += new;
                covered += len;
                covered_new += new;
            }
        }
    }
    let total: u64 = files.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
    let total_new: u64 = fresh.iter().map(|c| c.len).sum();
    columns.push(("(footer etc.)".into(), total - covered, total_new - covered_new));
    columns
}

fn mib(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
        b => format!("{:.0} KiB", b as f64 / 1024.0),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let rows: u64 = args
        .iter()
        .position(|a| a == "--rows")
        .and_then(|i| args.get(i + 1))
        .map_or(if bench { 2_000_000 } else { 20_000 }, |n| n.parse().expect("--rows N"));
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(python.exists(), "the tests' venv is missing: scripts/setup.sh");
    let pg = Postgres::start();
    pg.create_database(DB);
    let b = Bench {
        pg,
        dir: tempfile::Builder::new().prefix("redump").tempdir().unwrap(),
        rows,
        python,
    };
    let started = Instant::now();
    let mut md = format!(
        "# Re-dump: new content-defined chunks in the second dump\n\n{rows} Openverse-shaped `image` rows; \
         FastCDC v2020 (8/64/128 KiB) over each dump's files; new = bytes of the second dump in chunks \
         neither the first dump nor an earlier part of the second had.\n"
    );
    for (change, order) in [Change::Clustered, Change::Scattered]
        .into_iter()
        .flat_map(|c| Order::ALL.map(|o| (c, o)))
    {
        eprintln!("{}, {} …", change.name(), order.name());
        let results = b.run(change, order);
        let _ = write!(
            md,
            "\n## {}; {}\n\n| writer | first dump | second dump | new bytes | new share |\n|---|---|---|---|---|\n",
            change.name(),
            order.name()
        );
        for (w, o) in &results {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {:.1} % |",
                w.name(),
                mib(o.first),
                mib(o.second),
                mib(o.new),
                100.0 * o.new as f64 / o.second.max(1) as f64
            );
        }
        let _ = write!(
            md,
            "\nWhere the new bytes are, by column (second dump's bytes, of them new):\n\n| column |{}\n|---|{}\n",
            results.iter().map(|(w, _)| format!(" {} |", w.name())).collect::<String>(),
            "---|".repeat(results.len())
        );
        for (j, (name, _, _)) in results[0].1.by_column.iter().enumerate() {
            let cells: String = results
                .iter()
                .map(|(_, o)| match o.by_column.get(j) {
                    Some((_, all, new)) => format!(" {} of {} |", mib(*new), mib(*all)),
                    None => " – |".into(),
                })
                .collect();
            let _ = writeln!(md, "| {name} |{cells}");
        }
    }
    let _ = writeln!(md, "\n({:.0} s in all)", started.elapsed().as_secs_f64());
    if std::env::var_os("DATADUMP_BENCH_KEEP").is_some() {
        eprintln!("kept the dumps in {}", b.dir.keep().display());
    }
    println!("{md}");
    if !bench {
        eprintln!("smoke run (no --bench argument): no results file written");
        return;
    }
    let out = PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target").into()))
        .join("bench-results");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("redump.md"), &md).unwrap();
    eprintln!("wrote {}", out.join("redump.md").display());
}
