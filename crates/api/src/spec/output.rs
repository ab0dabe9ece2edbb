//! The output sub-specs: how the Parquet files are written (`spec.output`, whatever the
//! engine) and the `odbc2parquet` engine's own options (`spec.odbc2parquet`). Pure data, no
//! I/O.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Compression, EXTRA_ARG_PATTERN, SIZE_PATTERN, TimeOfDay, VERSION_PATTERN, WideNumeric};

/// How the Parquet files are written.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutputSpec {
    /// Start a new file once the current one reaches this size, e.g. `2GiB` or `512MiB`.
    /// Default: `2GiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SIZE_PATTERN))]
    pub file_size_threshold: Option<String>,

    /// Column compression. Default: `zstd`.
    #[serde(default)]
    pub compression: Compression,

    /// About how much encoded data one Parquet row group holds in memory before it is written,
    /// e.g. `32MiB`; bigger groups compress slightly better and need more worker memory (per
    /// stream). For odbc2parquet this is `--batch-size-memory`. Default: `16MiB` (`postgres`),
    /// `1GiB` (`odbc2parquet`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SIZE_PATTERN))]
    pub row_group_size: Option<String>,

    /// Parallel read streams of the `postgres` engine, each reading a `ctid` range of the table
    /// inside the same snapshot. Used when the query is a plain scan of `{media_type}` (e.g.
    /// `SELECT … FROM {media_type} WHERE …`); otherwise one stream reads. 1 to 32. Default: the
    /// worker's vCPUs, at most 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 32))]
    pub parallelism: Option<u32>,

    /// The zstd level of the `postgres` engine, 1 (fastest) to 22 (smallest), when
    /// `compression` is `zstd`. Default: 1 (on a 1M-row catalog table level 3 made files no
    /// smaller and took 13 % more CPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 22))]
    pub compression_level: Option<u8>,

    /// Cut the `postgres` engine's data pages and row groups at content-defined boundaries,
    /// so rows that did not change since the last dump encode to the same bytes and
    /// deduplicating storage (e.g. Hugging Face's Xet) stores and uploads them once. Readers
    /// see ordinary Parquet. Works best with rows in a stable key order (`ORDER BY` a key that
    /// new rows sort last by, e.g. `created_on`, in `spec.query`; one stream then reads): in
    /// the table's own order PostgreSQL puts updated and inserted rows wherever a page has
    /// room, and each one changes the pages around it. Default: `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_defined_chunking: Option<bool>,

    /// How the `postgres` engine writes `numeric(p,s)` with p > 38: `string` (the exact
    /// decimal text with exactly s fractional digits; opens in every common reader) or
    /// `decimal` (DECIMAL(p,s) on 256 bits, which polars and Spark refuse). Default: `string`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wide_numeric: Option<WideNumeric>,

    /// How the `postgres` engine writes `time`: `string` (`HH:MM:SS.ffffff`, fixed width,
    /// `24:00:00` kept; opens in every common reader) or `time` (TIME(MICROS), which Spark
    /// refuses). Default: `string`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<TimeOfDay>,
}

/// The default file size threshold.
pub const DEFAULT_FILE_SIZE_THRESHOLD: &str = "2GiB";

impl OutputSpec {
    /// The file size threshold as written (default `2GiB`).
    pub fn file_size_threshold(&self) -> &str {
        self.file_size_threshold.as_deref().unwrap_or(DEFAULT_FILE_SIZE_THRESHOLD)
    }
}

/// Options of the `odbc2parquet` engine.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.fileSizeThreshold)").message("spec.odbc2parquet.fileSizeThreshold moved to spec.output.fileSizeThreshold"))]
#[x_kube(validation = Rule::new("!has(self.compression)").message("spec.odbc2parquet.compression moved to spec.output.compression"))]
pub struct Odbc2ParquetSpec {
    /// The odbc2parquet release the worker expects on its image (a different one is logged).
    /// Default: the version this controller was tested with.
    #[serde(default = "default_odbc2parquet_version")]
    #[schemars(regex(pattern = VERSION_PATTERN))]
    pub version: String,

    /// Moved to `spec.output.fileSizeThreshold`; refused here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size_threshold: Option<String>,

    /// Moved to `spec.output.compression`; refused here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,

    /// Upper bound in characters for text columns of unknown length (jsonb, text, arrays),
    /// which keeps the worker's memory bounded (`--column-length-limit`); longer values fail
    /// the dump. Default: 65536.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 16777216))]
    pub column_length_limit: Option<u32>,

    /// Rows per batch, i.e. per Parquet row group (`--batch-size-row`). Default: as many as fit
    /// in `spec.output.rowGroupSize` of fetch buffers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000000))]
    pub batch_size_rows: Option<u32>,

    /// Further `odbc2parquet query` flags, each a single `--flag` or `--flag=value`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub extra_args: Vec<ExtraArg>,
}

impl Default for Odbc2ParquetSpec {
    fn default() -> Self {
        Odbc2ParquetSpec {
            version: default_odbc2parquet_version(),
            file_size_threshold: None,
            compression: None,
            column_length_limit: None,
            batch_size_rows: None,
            extra_args: Vec::new(),
        }
    }
}

/// One extra odbc2parquet flag: `--flag` or `--flag=value`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(transparent)]
pub struct ExtraArg(#[schemars(regex(pattern = EXTRA_ARG_PATTERN), length(max = 1024))] pub String);

/// The odbc2parquet version this controller was tested with.
pub fn default_odbc2parquet_version() -> String {
    "11.0.1".into()
}
