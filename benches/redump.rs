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
//! Side by side in one run, on the same rows: the `postgres` engine with content-defined
//! chunking (the default) and without, and pyarrow rewriting our unchunked dump's rows with
//! and without `use_content_defined_chunking` (page index on, zstd), which is what the host
//! recommends. `cargo bench --bench redump` (2M rows; `-- --rows N` to change) writes
//! `target/bench-results/redump.md`; without `--bench` (`cargo test --all-targets`) it runs a
//! 20,000-row smoke round and writes nothing. Needs the tests' venv (`scripts/setup.sh`).

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

    /// Our dump into `dir` (one stream, so the row order is the table's), its files in order.
    fn dump(&self, dir: &Path, cdc: bool) -> Vec<PathBuf> {
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
                "SELECT * FROM {media_type}",
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
    fn run(&self, change: Change) -> Vec<(Writer, Outcome)> {
        self.fresh_table();
        let root = self.dir.path().join(match change {
            Change::Clustered => "clustered",
            Change::Scattered => "scattered",
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
                    Writer::Ours { cdc } => self.dump(&dir, cdc),
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

/// The chunks of `files` (FastCDC v2020, 8/64/128 KiB), each as (SHA-256, length).
fn chunks(files: &[PathBuf]) -> Vec<([u8; 32], u64)> {
    let mut out = Vec::new();
    for f in files {
        let bytes = std::fs::read(f).unwrap();
        for c in fastcdc::v2020::FastCDC::new(&bytes, 8 * 1024, 64 * 1024, 128 * 1024) {
            let data = &bytes[c.offset..c.offset + c.length];
            out.push((Sha256::digest(data).into(), c.length as u64));
        }
    }
    out
}

/// Bytes of the second dump in chunks the host does not have yet.
fn new_bytes(first: &[PathBuf], second: &[PathBuf]) -> Outcome {
    let a = chunks(first);
    let mut known: HashSet<[u8; 32]> = a.iter().map(|(h, _)| *h).collect();
    let b = chunks(second);
    let new = b.iter().filter(|(h, _)| known.insert(*h)).map(|(_, n)| n).sum();
    Outcome {
        first: a.iter().map(|(_, n)| n).sum(),
        second: b.iter().map(|(_, n)| n).sum(),
        new,
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
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
    for change in [Change::Clustered, Change::Scattered] {
        eprintln!("{} …", change.name());
        let results = b.run(change);
        let _ = write!(
            md,
            "\n## {}\n\n| writer | first dump | second dump | new bytes | new share |\n|---|---|---|---|---|\n",
            change.name()
        );
        for (w, o) in results {
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
    }
    let _ = writeln!(md, "\n({:.0} s in all)", started.elapsed().as_secs_f64());
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
