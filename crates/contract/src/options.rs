//! The output options as the worker reads them: the Parquet codec and the engine. The CRD
//! uses the same enums (`spec.output.compression`, `spec.engine`), so their docs here are
//! `kubectl explain` text. Pure, no I/O.

use serde::{Deserialize, Serialize};

/// Parquet compression codecs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Zstandard: small files, fast to read. The default.
    #[default]
    Zstd,
    /// Snappy.
    Snappy,
    /// Gzip.
    Gzip,
    /// LZ4 (the Parquet `LZ4_RAW` codec).
    Lz4,
    /// Brotli.
    Brotli,
    /// No compression.
    Uncompressed,
}

impl Compression {
    /// The name in the spec and odbc2parquet's `--column-compression-default`.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Snappy => "snappy",
            Compression::Gzip => "gzip",
            Compression::Lz4 => "lz4",
            Compression::Brotli => "brotli",
            Compression::Uncompressed => "uncompressed",
        }
    }
}

/// What reads the database.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// The worker's own PostgreSQL engine: binary COPY in one read-only REPEATABLE READ
    /// snapshot, parallel streams, exact types, Parquet streamed to S3 without local disk.
    #[default]
    Postgres,
    /// odbc2parquet as a child process, for other ODBC sources.
    Odbc2parquet,
}

impl Engine {
    /// The name in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Odbc2parquet => "odbc2parquet",
        }
    }
}

/// How `numeric(p,s)` with more than 38 digits of precision is written.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum WideNumeric {
    /// STRING holding the exact decimal text with exactly `s` fractional digits (`NaN` and
    /// `±Infinity` as PostgreSQL writes them): opens in every common reader. The default.
    #[default]
    String,
    /// DECIMAL(p,s) on 256 bits: exact and numeric, but polars and Spark refuse the file and
    /// DuckDB reads it as DOUBLE; NaN/Infinity fail the dump.
    Decimal,
}

/// How `time` (time of day without zone) is written.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum TimeOfDay {
    /// STRING `HH:MM:SS.ffffff`, fixed width so it sorts as time does, `24:00:00.000000`
    /// kept: opens in every common reader. The default.
    #[default]
    String,
    /// TIME(MICROS): Spark refuses the whole file (`UNSUPPORTED_TIME_TYPE`), and pandas,
    /// polars and `datasets` fail on `24:00:00`.
    Time,
}
