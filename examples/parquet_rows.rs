//! Counts the rows of Parquet files by decoding every row (not only by reading the footer), as
//! an independent check of a dump: `cargo run --example parquet_rows -- FILE...`.
//!
//! Prints one line per file (`rows FILE`) and then `total ROWS`; exits non-zero when a file
//! cannot be read or its decoded row count differs from its footer's.

use std::process::ExitCode;

use parquet::file::reader::{FileReader, SerializedFileReader};

fn count(path: &str) -> Result<u64, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let reader = SerializedFileReader::new(file).map_err(|e| format!("{path}: not a readable Parquet file: {e}"))?;
    let footer = reader.metadata().file_metadata().num_rows();
    let mut decoded = 0u64;
    for row in reader.get_row_iter(None).map_err(|e| format!("{path}: {e}"))? {
        row.map_err(|e| format!("{path}: row {decoded}: {e}"))?;
        decoded += 1;
    }
    if decoded as i64 != footer {
        return Err(format!("{path}: decoded {decoded} rows but the footer says {footer}"));
    }
    Ok(decoded)
}

fn main() -> ExitCode {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!("usage: parquet_rows FILE...");
        return ExitCode::from(2);
    }
    let mut total = 0;
    for f in &files {
        match count(f) {
            Ok(n) => {
                println!("{n} {f}");
                total += n;
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!("total {total}");
    ExitCode::SUCCESS
}
