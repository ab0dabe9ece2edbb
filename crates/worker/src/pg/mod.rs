//! The native engine: streams the result of a SQL query from PostgreSQL into exact Parquet
//! files through a [`PartSink`]. I/O: PostgreSQL connections, the sink, blocking threads.
//!
//! Every connection reads inside `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`, so the
//! database refuses any write the query might attempt, and all streams share one snapshot
//! (`pg_export_snapshot()` / `SET TRANSACTION SNAPSHOT`). Rows arrive by binary COPY and are
//! decoded straight into Arrow arrays ([`types`] has the mapping); types without a native
//! decoding are read as PostgreSQL's text output. With `parallelism > 1` and a plain scan of
//! one table, the table is split into ctid block ranges read by separate streams. [`export`]
//! reads as its steps; [`catalog`] has those that ask the first connection about the query
//! and the table.
//!
//! Connections follow libpq's TLS parameters ([`conninfo`] splits them off, [`tls`] carries
//! them out on rustls); the first connection's [`ConnectionReport`] goes into the progress and
//! the manifest.

mod boundary;
mod catalog;
mod conninfo;
mod copy;
mod decode;
mod error;
mod numeric;
mod sql;
mod stream;
mod tls;
pub mod types;

use std::sync::Arc;

use arrow::datatypes::Schema;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{CdcOptions, EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use tokio_postgres::Client;

use catalog::{Split, StreamQuery};
pub use conninfo::SslMode;
pub use error::EngineError;
use stream::Shared;
pub use tls::TlsMaterial;

use crate::sink::{PartInfo, PartSink, Progress};
use datadump_contract::ConnectionReport;

/// How an export runs.
#[derive(Clone)]
pub struct PgOptions {
    /// Streams wanted (1 = one connection). More than one needs a plain scan of one table.
    pub parallelism: usize,
    /// Parquet compression. Default zstd level 1: with the encodings of [`writer_properties`]
    /// level 3 (DuckDB's) made the bench's 1M-row catalog table 0.2% larger for 15% more CPU.
    pub compression: Compression,
    /// Cut data pages at content-defined boundaries (arrow-rs CDC, its default 256 KiB–1 MiB
    /// chunks, and no other page limit) and row groups at content-defined rows
    /// (`boundary.rs`), so rows that did not change encode to the same bytes in the next dump
    /// and a deduplicating store (Hugging Face's Xet) keeps them once. Default true.
    pub content_defined_chunking: bool,
    /// How numeric wider than 38 digits and time are written (default: exact text, which
    /// every common reader opens).
    pub types: types::TypeChoices,
    /// Flush a row group once the writer's in-progress (encoded) size reaches this. Default
    /// 16 MiB: on a 1M-row catalog table, peak RSS 109 MiB (1 stream) / 203 MiB (2 streams)
    /// against 130 / 234 MiB at 32 MiB and 165 / 258 MiB at 64 MiB, for 1.8% more output
    /// than 32 MiB and the same speed.
    pub row_group_bytes: usize,
    /// Start a new file once the current one holds at least this many bytes (checked after
    /// each row group).
    pub file_size_threshold: u64,
    /// Most rows per Arrow batch handed to the writer.
    pub batch_rows: usize,
    /// A batch is handed to the writer once its values reach this many bytes.
    pub batch_bytes: usize,
    /// TLS material that comes with the job instead of from files the connection string names.
    pub tls: TlsMaterial,
    /// Tests only: runs after every stream holds the snapshot and before any COPY starts.
    #[doc(hidden)]
    pub after_snapshot: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            parallelism: 1,
            compression: Compression::ZSTD(ZstdLevel::try_new(DEFAULT_ZSTD_LEVEL).expect("a valid zstd level")),
            content_defined_chunking: true,
            types: types::TypeChoices::default(),
            row_group_bytes: 16 << 20,
            file_size_threshold: 2 << 30,
            batch_rows: 65_536,
            batch_bytes: 8 << 20,
            tls: TlsMaterial::default(),
            after_snapshot: None,
        }
    }
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgOptions")
            .field("parallelism", &self.parallelism)
            .field("compression", &self.compression)
            .field("content_defined_chunking", &self.content_defined_chunking)
            .field("types", &self.types)
            .field("row_group_bytes", &self.row_group_bytes)
            .field("file_size_threshold", &self.file_size_threshold)
            .field("batch_rows", &self.batch_rows)
            .field("batch_bytes", &self.batch_bytes)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// One output column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnInfo {
    /// The column name.
    pub name: String,
    /// PostgreSQL's `format_type()` text, e.g. `numeric(12,2)`, `text[]`.
    pub pg_type: String,
    /// The Parquet type, e.g. `DECIMAL(12,2)`, `STRING (JSON)`, `LIST<INT32>`.
    pub parquet_type: String,
    /// False only for a table column declared NOT NULL, read by a plain scan of that table.
    pub nullable: bool,
    /// `COMMENT ON COLUMN`, when the column comes from a table.
    pub description: Option<String>,
}

/// What an export produced.
#[derive(Clone, Debug)]
pub struct ExportSummary {
    /// Rows written, all streams.
    pub rows: u64,
    /// Finished files, ordered by name.
    pub parts: Vec<PartInfo>,
    /// The output columns.
    pub columns: Vec<ColumnInfo>,
    /// `COMMENT ON TABLE`, when the table is known.
    pub table_description: Option<String>,
    /// Streams that ran.
    pub streams: usize,
    /// How the first connection was made.
    pub connection: Option<ConnectionReport>,
}

/// A client whose connection task is aborted when the client is dropped without
/// [`Conn::close`], so a cancelled export closes its sockets at once.
struct Conn {
    client: Client,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Conn {
    async fn open(config: &tokio_postgres::Config, tls: &tls::Connector) -> Result<(Conn, ConnectionReport), EngineError> {
        let tls::Connected { client, task, report } = tls.connect(config).await?;
        // PostgreSQL 14+: notice a vanished worker within seconds even while a query waits,
        // so a stopped attempt leaves no query (and no snapshot holding back vacuum) behind;
        // older servers refuse the setting, which changes nothing else
        if client.batch_execute("SET client_connection_check_interval = 5000").await.is_err() {
            tracing::debug!("client_connection_check_interval is not supported by this server");
        }
        Ok((Conn { client, task: Some(task) }, report))
    }

    /// Begins the read-only transaction, importing `snapshot` when given.
    async fn begin(&self, snapshot: Option<&str>) -> Result<(), EngineError> {
        let mut sql = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY".to_owned();
        if let Some(id) = snapshot {
            sql.push_str(&format!("; SET TRANSACTION SNAPSHOT '{}'", id.replace('\'', "''")));
        }
        self.client.batch_execute(&sql).await.map_err(EngineError::db("BEGIN"))
    }

    /// Ends the session politely (the transaction is rolled back by the server).
    fn close(mut self) {
        self.task.take();
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Exports the result of `query_template` (with `{media_type}` replaced by `media_type`) into
/// Parquet files made by `sink`. `table` names the table the query reads, when the caller
/// knows it reads one: it enables comments, the row estimate, NOT NULL columns and, when
/// equal to `media_type`, parallel ctid-range streams.
pub async fn export(
    conninfo: &str,
    query_template: &str,
    media_type: &str,
    table: Option<&str>,
    opts: &PgOptions,
    sink: Arc<dyn PartSink>,
    progress: Arc<Progress>,
) -> Result<ExportSummary, EngineError> {
    let request = Request::new(conninfo, query_template, media_type, table, opts)?;
    let (first, connection, snapshot) = connect_first(&request, opts, &progress).await?;
    let statement = catalog::prepare_query(&first.client, &request.query).await?;
    let facts = catalog::read_table_facts(&first.client, &request.query, request.table, &progress).await?;
    let columns = catalog::describe_columns(&first.client, &statement, &facts, opts.types).await?;
    let streams = plan_streams(&first.client, &request, &facts, opts.parallelism).await?;
    let conns = open_streams(first, &request, snapshot.as_deref(), streams.len(), opts).await?;
    let shared = Arc::new(Shared {
        schema: columns.schema.clone(),
        column_types: columns.column_types.clone(),
        props: writer_properties(opts, &columns.schema, facts.description.as_deref()),
        opts: opts.clone(),
        sink,
        progress,
    });
    let outputs = copy_streams(&conns, &streams, &columns, &shared).await?;
    for conn in conns {
        conn.close();
    }
    let rows = outputs.iter().map(|o| o.rows).sum();
    let parts = finish_parts(outputs.into_iter().flat_map(|o| o.parts).collect(), &shared).await?;
    Ok(ExportSummary {
        rows,
        parts,
        columns: columns.info,
        table_description: facts.description,
        streams: streams.len(),
        connection: Some(connection),
    })
}

/// What [`export`] was asked for, checked: the connection settings, how TLS is made, the names
/// and the rendered query.
struct Request<'a> {
    config: tokio_postgres::Config,
    tls: tls::Connector,
    template: &'a str,
    media_type: &'a str,
    /// The table the query reads, when it is an identifier.
    table: Option<&'a str>,
    /// The template with `{media_type}` replaced.
    query: String,
}

impl<'a> Request<'a> {
    /// Parses the connection string, builds the TLS configurations (reading the files it
    /// names), checks the media type and renders the query.
    fn new(
        conninfo: &str,
        template: &'a str,
        media_type: &'a str,
        table: Option<&'a str>,
        opts: &PgOptions,
    ) -> Result<Request<'a>, EngineError> {
        let parsed = conninfo::split(conninfo).map_err(EngineError::Conninfo)?;
        let config: tokio_postgres::Config = parsed
            .rest
            .parse()
            .map_err(|e: tokio_postgres::Error| EngineError::Conninfo(e.to_string()))?;
        let tls = tls::Connector::new(&parsed.tls, &opts.tls)?;
        if !datadump_contract::is_identifier(media_type) {
            return Err(EngineError::Query(format!(
                "media type {media_type:?} is not a lower-case SQL identifier"
            )));
        }
        Ok(Request {
            config,
            tls,
            template,
            media_type,
            table: table.filter(|t| datadump_contract::is_identifier(t)),
            query: sql::render(template, media_type),
        })
    }
}

/// Opens the first connection, records how it was made in `progress`, and begins its
/// transaction; when the table may be split (`parallelism > 1` and the table is the media
/// type), exports the snapshot the other streams will share.
async fn connect_first(
    request: &Request<'_>,
    opts: &PgOptions,
    progress: &Progress,
) -> Result<(Conn, ConnectionReport, Option<String>), EngineError> {
    let want_split = opts.parallelism > 1 && request.table == Some(request.media_type);
    let (first, connection) = Conn::open(&request.config, &request.tls).await?;
    tracing::info!(connection = %connection.summary(), "connected to PostgreSQL");
    let _ = progress.connection.set(connection.clone());
    first.begin(None).await?;
    let snapshot: Option<String> = if want_split {
        let row = first
            .client
            .query_one("SELECT pg_export_snapshot()", &[])
            .await
            .map_err(EngineError::db("pg_export_snapshot"))?;
        Some(row.get(0))
    } else {
        None
    };
    Ok((first, connection, snapshot))
}

/// The query of each stream: one per ctid range when the query splits (see
/// [`catalog::split`]), else the whole query in one stream.
async fn plan_streams(
    c: &Client,
    request: &Request<'_>,
    facts: &catalog::TableFacts,
    parallelism: usize,
) -> Result<Vec<StreamQuery>, EngineError> {
    let whole = vec![StreamQuery {
        sql: request.query.clone(),
        place: String::new(),
    }];
    if parallelism <= 1 {
        return Ok(whole);
    }
    Ok(
        match catalog::split(c, request.template, request.media_type, &request.query, facts, parallelism).await? {
            Split::Ranges(ranges) => ranges,
            Split::OneStream(why) => {
                tracing::info!(streams = 1, reason = %why, "reading with one stream");
                whole
            }
        },
    )
}

/// The connections of all `n` streams: `first`, then the others, each in `snapshot`; then the
/// tests' hook runs, once every stream holds the snapshot.
async fn open_streams(
    first: Conn,
    request: &Request<'_>,
    snapshot: Option<&str>,
    n: usize,
    opts: &PgOptions,
) -> Result<Vec<Conn>, EngineError> {
    let mut conns = vec![first];
    let others = futures::future::try_join_all((1..n).map(|_| async {
        let (conn, _) = Conn::open(&request.config, &request.tls).await?;
        conn.begin(snapshot).await?;
        Ok::<Conn, EngineError>(conn)
    }))
    .await?;
    conns.extend(others);
    if let Some(hook) = &opts.after_snapshot {
        let hook = hook.clone();
        tokio::task::spawn_blocking(move || hook())
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?;
    }
    Ok(conns)
}

/// Runs every stream's binary COPY (columns without a native decoding cast to text) on its
/// connection, all at once.
async fn copy_streams(
    conns: &[Conn],
    streams: &[StreamQuery],
    columns: &catalog::OutputColumns,
    shared: &Arc<Shared>,
) -> Result<Vec<stream::StreamOutput>, EngineError> {
    let copies: Vec<String> = streams
        .iter()
        .map(|s| sql::copy_statement(&sql::with_text_casts(&s.sql, &columns.names, &columns.as_text)))
        .collect();
    futures::future::try_join_all(
        conns
            .iter()
            .zip(&copies)
            .zip(streams)
            .map(|((conn, copy), s)| stream::run(&conn.client, copy, s.place.clone(), shared.clone())),
    )
    .await
}

/// The files the streams wrote, ordered by name; one empty file when they wrote none, so an
/// empty result still has its schema.
async fn finish_parts(mut parts: Vec<PartInfo>, shared: &Arc<Shared>) -> Result<Vec<PartInfo>, EngineError> {
    if parts.is_empty() {
        let s = shared.clone();
        let part = tokio::task::spawn_blocking(move || stream::write_empty(&s))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))??;
        parts.push(part);
    }
    parts.sort_by(|a, b| (a.name.len(), &a.name).cmp(&(b.name.len(), &b.name)));
    Ok(parts)
}

/// The password in a libpq connection string, if it holds one (for redaction).
pub fn password_of(conninfo: &str) -> Option<String> {
    let parsed = conninfo::split(conninfo).ok()?;
    let config: tokio_postgres::Config = parsed.rest.parse().ok()?;
    config.get_password().map(|p| String::from_utf8_lossy(p).into_owned())
}

/// The zstd level when the spec names none. Measured on the bench's 1M-row catalog table with
/// 2 streams: 71.4 MiB at level 1 against 71.6 MiB at level 3 (DuckDB's), for 13% less CPU.
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;

/// The page row limit with content-defined chunking: far above any chunk's row count (the
/// chunker ends a page by 1 MiB of values), and small enough that the writer's batch
/// arithmetic cannot overflow.
const CDC_PAGE_ROW_LIMIT: usize = 1 << 30;

/// Parquet writer settings, chosen by measuring per-column sizes against DuckDB 1.4 on the
/// bench's catalog table (`examples/parquet_columns`): the compression; integer, date, time and
/// timestamp columns without a dictionary, in DELTA_BINARY_PACKED (a quarter to two thirds of
/// their dictionary-or-plain size; every common reader decodes it); page statistics, so every
/// file has a page index (column and offset index); content-defined chunking unless turned
/// off, with pages that end only at the chunker's boundaries; row groups of at most 1M rows;
/// `created_by` naming datadump; and the table comment.
/// `stream::file_properties` turns dictionaries off for string columns whose first batch is
/// mostly distinct values.
fn writer_properties(opts: &PgOptions, schema: &Schema, table_description: Option<&str>) -> WriterProperties {
    let mut kv = vec![KeyValue::new("datadump.engine".to_owned(), "postgres-binary-copy".to_owned())];
    if let Some(d) = table_description {
        kv.push(KeyValue::new("description".to_owned(), d.to_owned()));
    }
    let mut b = WriterProperties::builder()
        .set_compression(opts.compression)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by(format!("datadump-operator version {} (parquet-rs)", env!("CARGO_PKG_VERSION")))
        .set_max_row_group_row_count(Some(1_000_000))
        .set_key_value_metadata(Some(kv));
    if opts.content_defined_chunking {
        let cdc = CdcOptions::default();
        // Pages end where the chunker says (or where a row group does), never at a row count or
        // a size counted from where a write began: those move with the batches after a change.
        b = b
            .set_data_page_row_count_limit(CDC_PAGE_ROW_LIMIT)
            .set_data_page_size_limit(2 * cdc.max_chunk_size)
            .set_content_defined_chunking(Some(cdc));
    }
    for field in schema.fields() {
        use arrow::datatypes::DataType as D;
        if matches!(
            field.data_type(),
            D::Int16 | D::Int32 | D::Int64 | D::Date32 | D::Timestamp(..) | D::Time64(_)
        ) {
            let path = ColumnPath::from(field.name().as_str());
            b = b
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_encoding(path, Encoding::DELTA_BINARY_PACKED);
        }
    }
    b.build()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::file::serialized_reader::ReadOptionsBuilder;

    use super::{PgOptions, writer_properties};

    const ROWS: i64 = 300_000;

    /// Every data page of every column, as bytes, of `ROWS` rows written `slice` rows at a time.
    fn pages(slice: i64, cdc: bool) -> Vec<bytes::Bytes> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        let opts = PgOptions {
            content_defined_chunking: cdc,
            ..PgOptions::default()
        };
        let mut out = Vec::new();
        let mut w = ArrowWriter::try_new(&mut out, schema.clone(), Some(writer_properties(&opts, &schema, None))).unwrap();
        let value = |i: i64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15u64 as i64) >> 20;
        for start in (0..ROWS).step_by(slice as usize) {
            let rows = start..(start + slice).min(ROWS);
            let n = Int64Array::from_iter_values(rows.clone().map(value));
            let s = StringArray::from_iter(rows.map(|i| (i % 7 != 0).then(|| format!("row {:x}", value(i)))));
            w.write(&RecordBatch::try_new(schema.clone(), vec![Arc::new(n), Arc::new(s)]).unwrap())
                .unwrap();
        }
        w.close().unwrap();
        let file = bytes::Bytes::from(out);
        let reader = SerializedFileReader::new_with_options(file.clone(), ReadOptionsBuilder::new().with_page_index().build()).unwrap();
        let meta = reader.metadata();
        let index = meta.page_index().expect("a page index");
        let mut pages = Vec::new();
        for rg in 0..meta.num_row_groups() {
            for col in 0..meta.row_group(rg).num_columns() {
                for p in index.offset_index(rg, col).expect("an offset index").page_locations() {
                    pages.push(file.slice(p.offset as usize..(p.offset + p.compressed_page_size as i64) as usize));
                }
            }
        }
        pages
    }

    #[test]
    fn content_defined_pages_do_not_depend_on_how_the_rows_were_batched() {
        let (a, b) = (pages(1000, true), pages(777, true));
        assert!(a.len() > 4, "{} pages", a.len());
        assert_eq!(a, b, "the same rows in other batches must give the same pages");
        // without chunking, pages end at the writer's row and size limits, wherever a batch ended
        assert_ne!(pages(1000, false), pages(777, false));
    }
}
