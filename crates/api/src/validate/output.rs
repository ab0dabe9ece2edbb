//! The `spec.output` and `spec.odbc2parquet` checks: sizes, parallelism and options that fit
//! the engine, and odbc2parquet flags the controller does not set itself. Pure, no I/O.

use super::{PATTERNS, Report, quote};
use crate::spec::{Compression, DataDumpSpec, Engine, Odbc2ParquetSpec, parse_size};

/// odbc2parquet flags the worker sets itself or that would bypass the staged credentials.
const RESERVED_FLAGS: &[&str] = &[
    "--connection-string",
    "--dsn",
    "--user",
    "--password",
    "--prompt",
    "--file-size-threshold",
    "--column-compression-default",
    "--output",
];

/// `spec.output`: sizes that parse and fit, and settings that apply to the chosen engine.
pub(super) fn check_output(r: &mut Report, spec: &DataDumpSpec) {
    let p = &*PATTERNS;
    let o = &spec.output;
    for (field, value, example) in [
        ("spec.output.fileSizeThreshold", &o.file_size_threshold, "2GiB or 512MiB"),
        ("spec.output.rowGroupSize", &o.row_group_size, "64MiB"),
    ] {
        if let Some(v) = value
            && (!p.size.is_match(v) || parse_size(v).is_none())
        {
            r.add(field, format!("{} is not a size", quote(v)), format!("a size like {example}"));
        }
    }
    if let Some(v) = o.row_group_size.as_deref().and_then(parse_size)
        && !(1 << 20..=4 << 30).contains(&v)
    {
        r.add(
            "spec.output.rowGroupSize",
            format!("{v} bytes is outside 1MiB..4GiB"),
            "use a size like 64MiB",
        );
    }
    if let Some(n) = o.parallelism {
        if !(1..=32).contains(&n) {
            r.add(
                "spec.output.parallelism",
                format!("{n} is outside 1..32"),
                "use 1 to 32 streams, or leave it unset",
            );
        } else if spec.engine == Engine::Odbc2parquet && n > 1 {
            r.add(
                "spec.output.parallelism",
                "applies to the postgres engine only (odbc2parquet reads with one connection)",
                "remove it, or use engine: postgres",
            );
        }
    }
    if o.compression_level.is_some() && o.compression != Compression::Zstd {
        r.add(
            "spec.output.compressionLevel",
            format!("is a zstd level but spec.output.compression is {}", o.compression.as_str()),
            "remove it, or set spec.output.compression: zstd",
        );
    }
    if spec.engine == Engine::Odbc2parquet {
        let postgres_only = [
            ("spec.output.compressionLevel", o.compression_level.is_some()),
            ("spec.output.contentDefinedChunking", o.content_defined_chunking.is_some()),
            ("spec.output.wideNumeric", o.wide_numeric.is_some()),
            ("spec.output.time", o.time.is_some()),
        ];
        for (field, _) in postgres_only.into_iter().filter(|(_, set)| *set) {
            r.add(
                field,
                "applies to the postgres engine only (odbc2parquet writes with its own settings)",
                "remove it, or use engine: postgres",
            );
        }
    }
    if spec.engine == Engine::Postgres {
        let o2p = &spec.odbc2parquet;
        if o2p.column_length_limit.is_some() || o2p.batch_size_rows.is_some() || !o2p.extra_args.is_empty() {
            r.add(
                "spec.odbc2parquet",
                "sets odbc2parquet options but spec.engine is postgres, which has no length limits or flags",
                "remove spec.odbc2parquet, or set spec.engine: odbc2parquet",
            );
        }
    }
}

/// `spec.odbc2parquet`: a release version, no moved fields, positive limits, extra flags
/// that are single `--flag`s the controller does not set itself.
pub(super) fn check_odbc2parquet(r: &mut Report, o: &Odbc2ParquetSpec) {
    let p = &*PATTERNS;
    r.pattern(
        "spec.odbc2parquet.version",
        &o.version,
        &p.version,
        "an odbc2parquet release like 11.0.1",
    );
    if o.file_size_threshold.is_some() {
        r.add(
            "spec.odbc2parquet.fileSizeThreshold",
            "moved to spec.output.fileSizeThreshold",
            "write it as spec.output.fileSizeThreshold (same syntax, e.g. 2GiB)",
        );
    }
    if o.compression.is_some() {
        r.add(
            "spec.odbc2parquet.compression",
            "moved to spec.output.compression",
            "write it as spec.output.compression (e.g. zstd)",
        );
    }
    if o.column_length_limit == Some(0) {
        r.add(
            "spec.odbc2parquet.columnLengthLimit",
            "is 0",
            "use a positive number of characters, e.g. 65536",
        );
    }
    if o.batch_size_rows == Some(0) {
        r.add(
            "spec.odbc2parquet.batchSizeRows",
            "is 0",
            "use a positive number of rows, or leave it unset",
        );
    }
    if o.extra_args.len() > 32 {
        r.add(
            "spec.odbc2parquet.extraArgs",
            "has more than 32 entries",
            "keep only the flags you need",
        );
    }
    for (i, a) in o.extra_args.iter().enumerate() {
        let field = format!("spec.odbc2parquet.extraArgs[{i}]");
        if !p.extra_arg.is_match(&a.0) || a.0.len() > 1024 {
            r.add(
                &field,
                format!("{} is not a single --flag or --flag=value", quote(&a.0)),
                "write each flag as its own entry, starting with --",
            );
        } else {
            let flag = a.0.split('=').next().unwrap_or_default();
            if RESERVED_FLAGS.contains(&flag) {
                r.add(
                    &field,
                    format!("{flag} is set by the controller"),
                    "use the matching spec field (database, output.fileSizeThreshold, output.compression) instead",
                );
            }
        }
    }
}
