//! Runs the native PostgreSQL engine once into a local folder and prints what it did, for
//! benchmarks:
//! `cargo run --release --example pg_export -- CONNINFO TEMPLATE MEDIA_TYPE PARALLELISM OUT_DIR [ROW_GROUP_MIB]`.
//!
//! The connection string is read from the first argument or, when it is `-`, from `$PGCONNINFO`
//! (so it stays out of `ps`). `DATADUMP_PG_EXPORT_CDC=false` turns content-defined chunking
//! off and `DATADUMP_PG_EXPORT_ZSTD_LEVEL=N` sets the zstd level, for side-by-side runs.
//! Prints `rows files bytes seconds rows/s streams`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use datadump::worker::pg::{PgOptions, export};
use datadump::worker::sink::{DirSink, Progress};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 {
        eprintln!("usage: pg_export CONNINFO|- TEMPLATE MEDIA_TYPE PARALLELISM OUT_DIR [ROW_GROUP_MIB]");
        return ExitCode::from(2);
    }
    let conninfo = if args[0] == "-" {
        std::env::var("PGCONNINFO").unwrap_or_default()
    } else {
        args[0].clone()
    };
    let mut opts = PgOptions {
        parallelism: args[3].parse().unwrap_or(1),
        ..PgOptions::default()
    };
    if std::env::var("DATADUMP_PG_EXPORT_CDC").is_ok_and(|v| v == "false") {
        opts.content_defined_chunking = false;
    }
    if let Some(level) = std::env::var("DATADUMP_PG_EXPORT_ZSTD_LEVEL").ok().and_then(|l| l.parse().ok()) {
        opts.compression = parquet::basic::Compression::ZSTD(parquet::basic::ZstdLevel::try_new(level).expect("a zstd level"));
    }
    if let Some(mib) = args.get(5).and_then(|m| m.parse::<usize>().ok()) {
        opts.row_group_bytes = mib << 20;
    }
    let progress = Arc::new(Progress::default());
    let sink = match DirSink::new(&args[4], &args[2], progress.clone()) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    match export(&conninfo, &args[1], &args[2], Some(&args[2]), &opts, sink, progress).await {
        Ok(s) => {
            let secs = started.elapsed().as_secs_f64();
            let bytes: u64 = s.parts.iter().map(|p| p.size).sum();
            println!(
                "rows={} files={} bytes={} seconds={secs:.2} rows_per_s={:.0} streams={}",
                s.rows,
                s.parts.len(),
                bytes,
                s.rows as f64 / secs,
                s.streams
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("export failed: {e}");
            ExitCode::FAILURE
        }
    }
}
