//! The native PostgreSQL engine (being built on branch `pg-engine`; this placeholder only
//! defines its interface and refuses to run). I/O.

use std::sync::Arc;

use super::sink::{PartInfo, PartSink, Progress};

/// Engine settings.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// Streams wanted.
    pub parallelism: usize,
    /// Parquet codec.
    pub compression: parquet::basic::Compression,
    /// Row group size in bytes.
    pub row_group_bytes: usize,
    /// File size threshold in bytes.
    pub file_size_threshold: u64,
    /// Rows per batch at most.
    pub batch_rows: usize,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            parallelism: 1,
            compression: parquet::basic::Compression::UNCOMPRESSED,
            row_group_bytes: 32 << 20,
            file_size_threshold: 2 << 30,
            batch_rows: 65_536,
        }
    }
}

/// One output column.
#[derive(Clone, Debug)]
pub struct ColumnInfo {
    /// Name.
    pub name: String,
    /// `format_type()` text.
    pub pg_type: String,
    /// Parquet type text.
    pub parquet_type: String,
    /// Nullable.
    pub nullable: bool,
    /// `COMMENT ON COLUMN`.
    pub description: Option<String>,
}

/// What an export wrote.
#[derive(Clone, Debug)]
pub struct ExportSummary {
    /// Rows.
    pub rows: u64,
    /// Files.
    pub parts: Vec<PartInfo>,
    /// Columns.
    pub columns: Vec<ColumnInfo>,
    /// `COMMENT ON TABLE`.
    pub table_description: Option<String>,
    /// Streams that ran.
    pub streams: usize,
}

/// Engine errors.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Not built yet.
    #[error("the postgres engine is not available in this build")]
    Unavailable,
}

impl EngineError {
    /// Metric label.
    pub fn metric_label(&self) -> &'static str {
        "unavailable"
    }
}

/// Exports the query's rows.
pub async fn export(
    _conninfo: &str,
    _query_template: &str,
    _media_type: &str,
    _table: Option<&str>,
    _opts: &PgOptions,
    _sink: Arc<dyn PartSink>,
    _progress: Arc<Progress>,
) -> Result<ExportSummary, EngineError> {
    Err(EngineError::Unavailable)
}
