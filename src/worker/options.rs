//! The odbc2parquet flags and PostgreSQL ODBC driver options of a dump. Pure, no I/O.
//!
//! Measured on catalog-shaped rows (see the worker tests and the report in the issue):
//! - without `UseDeclareFetch=1;Fetch=N` the PostgreSQL driver buffers the whole result set;
//! - the driver reports `text` as 8190 characters and unknown types (`jsonb`, arrays) as 255
//!   (`MaxVarcharSize`), and odbc2parquet sizes its buffers from that and *fails* on longer
//!   values. `UnknownsAsLongVarchar=1;MaxLongVarcharSize=L` makes every unbounded column use
//!   the column length limit L instead, so `--column-length-limit` is the one real bound.
//! - timestamptz arrives as a zoneless timestamp in the session's time zone; the worker runs
//!   odbc2parquet with `PGTZ=UTC`, so the Parquet timestamps are UTC whatever the database's
//!   default zone;
//! - KNOWN LIMITATION: `double precision` arrives as a 32-bit FLOAT (psqlODBC reports
//!   SQL_DESC_PRECISION 0 for float8, odbc2parquet 11 maps precision <= 24 to FLOAT); no driver
//!   option changes that, and `uuid` arrives as upper-case GUID text.

use crate::api::{Odbc2ParquetSpec, OutputSpec};

/// The default `--column-length-limit`: 64 KiB per text, jsonb or array value.
pub const DEFAULT_COLUMN_LENGTH_LIMIT: u32 = 65_536;
/// The default `--batch-size-memory` (`spec.output.rowGroupSize` overrides it). Each batch becomes one Parquet row group, and with 64 KiB
/// per text/jsonb/array value a catalog-shaped row needs ~1 MiB of buffer: 64 MiB made row
/// groups of 63 rows, a 54 MiB footer per 1M rows and memory that grew with the row count
/// (639 MiB at 1M rows). 1 GiB gives ~1,000-row groups, output as small as odbc2parquet's own
/// defaults, and ~2 GiB peak RSS on 1M rows, well within the default m7g.xlarge's 16 GiB
/// (benches/dump_throughput.rs). Smaller instances can lower it with `extraArgs`.
pub const DEFAULT_BATCH_SIZE_MEMORY: &str = "1GiB";
/// psqlODBC's `ConnSettings`: makes every transaction of the session read-only.
pub const READ_ONLY_SETTINGS: &str = "{SET default_transaction_read_only=on}";
/// Rows the driver fetches per cursor round trip (`Fetch=`).
pub const FETCH_ROWS: u32 = 20_000;

/// A PostgreSQL ODBC driver option the worker appends to the connection string unless the
/// string already sets it (under its name or its abbreviation, case-insensitively).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DriverOption {
    /// The option's name, e.g. `UseDeclareFetch`.
    pub name: String,
    /// psqlODBC's abbreviation of it, e.g. `B6`.
    pub alias: String,
    /// The value to set.
    pub value: String,
}

/// The value an extra argument gives `flag` (`--flag=value`), if any.
fn extra_value<'a>(o: &'a Odbc2ParquetSpec, flag: &str) -> Option<&'a str> {
    o.extra_args.iter().rev().find_map(|a| {
        let (name, value) = a.0.split_once('=').unwrap_or((a.0.as_str(), ""));
        (name == flag).then_some(value)
    })
}

fn user_sets(o: &Odbc2ParquetSpec, flag: &str) -> bool {
    extra_value(o, flag).is_some()
}

/// The effective `--column-length-limit`: an extra argument's, else the spec's, else 65536.
pub fn column_length_limit(o: &Odbc2ParquetSpec) -> u32 {
    extra_value(o, "--column-length-limit")
        .and_then(|v| v.parse().ok())
        .or(o.column_length_limit)
        .unwrap_or(DEFAULT_COLUMN_LENGTH_LIMIT)
}

/// The `odbc2parquet query` flags as `--flag=value` words (they go before OUTPUT; the query
/// comes on standard input).
/// A flag the user also passes in `extraArgs` is left to the user's value: odbc2parquet
/// rejects a flag given twice. `--no-empty-file` is not set: odbc2parquet 11 creates no empty
/// trailing part, so without it an empty table gives exactly one part with the schema.
pub fn odbc2parquet_args(o: &Odbc2ParquetSpec, out: &OutputSpec) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    let mut push = |flag: &str, value: String| {
        if !user_sets(o, flag) {
            args.push(format!("{flag}={value}"));
        }
    };
    push(
        "--batch-size-memory",
        out.row_group_size.clone().unwrap_or_else(|| DEFAULT_BATCH_SIZE_MEMORY.into()),
    );
    push("--file-size-threshold", out.file_size_threshold().into());
    push("--column-compression-default", out.compression.as_str().into());
    push(
        "--column-length-limit",
        o.column_length_limit.unwrap_or(DEFAULT_COLUMN_LENGTH_LIMIT).to_string(),
    );
    if let Some(rows) = o.batch_size_rows {
        push("--batch-size-row", rows.to_string());
    }
    args.extend(o.extra_args.iter().map(|a| a.0.clone()));
    args
}

/// The driver options the worker appends when the connection string lacks them: cursor
/// fetching, real booleans, and buffers bounded by the column length limit.
pub fn driver_options(o: &Odbc2ParquetSpec) -> Vec<DriverOption> {
    let opt = |name: &str, alias: &str, value: String| DriverOption {
        name: name.into(),
        alias: alias.into(),
        value,
    };
    vec![
        opt("UseDeclareFetch", "B6", "1".into()),
        opt("Fetch", "A7", FETCH_ROWS.to_string()),
        opt("BoolsAsChar", "B9", "0".into()),
        opt("UnknownsAsLongVarchar", "B8", "1".into()),
        opt("MaxLongVarcharSize", "B1", column_length_limit(o).to_string()),
        // sent after connecting: the database itself refuses any write the query might make
        opt("ConnSettings", "A6", READ_ONLY_SETTINGS.into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Compression, ExtraArg};

    #[test]
    fn defaults_bound_memory_and_files() {
        let args = odbc2parquet_args(&Odbc2ParquetSpec::default(), &OutputSpec::default());
        assert_eq!(
            args,
            [
                "--batch-size-memory=1GiB",
                "--file-size-threshold=2GiB",
                "--column-compression-default=zstd",
                "--column-length-limit=65536"
            ]
        );
        let names: Vec<_> = driver_options(&Odbc2ParquetSpec::default())
            .iter()
            .map(|o| format!("{}={}", o.name, o.value))
            .collect();
        assert_eq!(
            names,
            [
                "UseDeclareFetch=1",
                "Fetch=20000",
                "BoolsAsChar=0",
                "UnknownsAsLongVarchar=1",
                "MaxLongVarcharSize=65536",
                "ConnSettings={SET default_transaction_read_only=on}"
            ]
        );
    }

    #[test]
    fn spec_fields_and_extra_args_are_used_and_never_doubled() {
        let out = OutputSpec {
            file_size_threshold: Some("1MiB".into()),
            compression: Compression::Snappy,
            ..Default::default()
        };
        let o = Odbc2ParquetSpec {
            column_length_limit: Some(1000),
            batch_size_rows: Some(5000),
            extra_args: vec![ExtraArg("--batch-size-memory=1GiB".into()), ExtraArg("--avoid-decimal".into())],
            ..Default::default()
        };
        let args = odbc2parquet_args(&o, &out);
        assert_eq!(
            args,
            [
                "--file-size-threshold=1MiB",
                "--column-compression-default=snappy",
                "--column-length-limit=1000",
                "--batch-size-row=5000",
                "--batch-size-memory=1GiB",
                "--avoid-decimal"
            ]
        );
        assert_eq!(column_length_limit(&o), 1000);
        let o = Odbc2ParquetSpec {
            extra_args: vec![ExtraArg("--column-length-limit=200000".into())],
            ..o
        };
        assert_eq!(column_length_limit(&o), 200_000);
        assert_eq!(
            odbc2parquet_args(&o, &out)
                .iter()
                .filter(|a| a.starts_with("--column-length-limit"))
                .count(),
            1
        );
        assert_eq!(driver_options(&o)[4].value, "200000");
    }
}
