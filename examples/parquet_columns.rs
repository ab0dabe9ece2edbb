//! Prints the compressed size of every column of Parquet dumps side by side, from their footers
//! (`ColumnChunkMetaData::compressed_size`, summed over row groups and files), with the
//! encodings each writer used: `cargo run --example parquet_columns -- A B...`, where each
//! argument is a Parquet file or a folder of them.
//!
//! One line per leaf column (`path  KiB(A)  KiB(B) B/A …  encodings`), then the totals of the
//! column chunks and of the files. Reads only footers; does no other I/O.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use parquet::file::reader::{FileReader, SerializedFileReader};

/// One dump: its files' bytes and, per leaf column in schema order, compressed bytes and the
/// encodings seen.
struct Sizes {
    file_bytes: u64,
    columns: Vec<(String, u64, BTreeSet<String>)>,
}

fn files(arg: &Path) -> Result<Vec<PathBuf>, String> {
    if arg.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(arg)
            .map_err(|e| format!("{}: {e}", arg.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .collect();
        v.sort();
        Ok(v)
    } else {
        Ok(vec![arg.to_owned()])
    }
}

fn sizes(arg: &Path) -> Result<Sizes, String> {
    let mut out = Sizes {
        file_bytes: 0,
        columns: Vec::new(),
    };
    for path in files(arg)? {
        let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        out.file_bytes += file.metadata().map_err(|e| e.to_string())?.len();
        let reader = SerializedFileReader::new(file).map_err(|e| format!("{}: {e}", path.display()))?;
        for rg in reader.metadata().row_groups() {
            for c in rg.columns() {
                let name = c.column_path().string();
                let at = match out.columns.iter().position(|(n, ..)| *n == name) {
                    Some(i) => i,
                    None => {
                        out.columns.push((name, 0, BTreeSet::new()));
                        out.columns.len() - 1
                    }
                };
                out.columns[at].1 += c.compressed_size() as u64;
                out.columns[at].2.extend(c.encodings().map(|e| format!("{e:?}")));
            }
        }
    }
    Ok(out)
}

fn kib(b: u64) -> String {
    format!("{:.0}", b as f64 / 1024.0)
}

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if args.is_empty() {
        eprintln!("usage: parquet_columns FILE_OR_DIR...");
        return ExitCode::from(2);
    }
    let dumps = match args.iter().map(|a| sizes(a)).collect::<Result<Vec<_>, _>>() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut header = vec!["column".to_owned()];
    for (i, a) in args.iter().enumerate() {
        header.push(format!("KiB {}", a.display()));
        if i > 0 {
            header.push("×first".to_owned());
        }
    }
    header.push("encodings".to_owned());
    println!("| {} |", header.join(" | "));
    println!("|{}", "---|".repeat(header.len()));
    let mut names: Vec<&str> = Vec::new();
    for d in &dumps {
        for (n, ..) in &d.columns {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
    }
    let total = |d: &Sizes| d.columns.iter().map(|c| c.1).sum::<u64>();
    for name in names {
        let cells: Vec<Option<&(String, u64, BTreeSet<String>)>> = dumps.iter().map(|d| d.columns.iter().find(|c| c.0 == name)).collect();
        let mut row = vec![name.to_owned()];
        let first = cells[0].map(|c| c.1);
        for (i, c) in cells.iter().enumerate() {
            row.push(c.map_or("-".into(), |c| kib(c.1)));
            if i > 0 {
                row.push(match (first, c) {
                    (Some(f), Some(c)) if f > 0 => format!("{:.2}", c.1 as f64 / f as f64),
                    _ => "-".into(),
                });
            }
        }
        let enc: Vec<String> = cells
            .iter()
            .map(|c| c.map_or("-".into(), |c| c.2.iter().cloned().collect::<Vec<_>>().join("+")))
            .collect();
        row.push(enc.join(" / "));
        println!("| {} |", row.join(" | "));
    }
    for (label, f) in [
        ("column chunks", &total as &dyn Fn(&Sizes) -> u64),
        ("files", &|d: &Sizes| d.file_bytes),
    ] {
        let mut row = vec![format!("**{label}**")];
        let first = f(&dumps[0]);
        for (i, d) in dumps.iter().enumerate() {
            row.push(kib(f(d)));
            if i > 0 {
                row.push(format!("{:.2}", f(d) as f64 / first.max(1) as f64));
            }
        }
        row.push(String::new());
        println!("| {} |", row.join(" | "));
    }
    ExitCode::SUCCESS
}
