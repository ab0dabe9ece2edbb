//! One stream's pipeline, three stages that overlap: the async COPY reader hands byte blocks
//! through a bounded channel to a decoding thread ([`CopyParser`] → Arrow batches), which
//! hands batches through a bounded channel to a writing thread (Parquet encoding and
//! compression into the sink's files). I/O: PostgreSQL (COPY) and the sink.
//!
//! Every stage stops when its input closes early; a writing thread then drops its open file
//! without finishing it, so an abandoned or failed stream leaves no complete file behind.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use super::boundary::{self, Boundaries};
use super::copy::CopyParser;
use super::types::ColumnType;
use super::{EngineError, PgOptions};
use crate::sink::{PartInfo, PartSink, PartWriter, Progress};

/// Bytes of COPY data gathered before handing a block to the decoder.
const BLOCK_BYTES: usize = 512 * 1024;
/// Blocks in flight between the reader and the decoder.
const BLOCKS_IN_FLIGHT: usize = 4;

/// What every stream of an export shares.
pub struct Shared {
    /// The Arrow schema of the output.
    pub schema: SchemaRef,
    /// How each column is decoded.
    pub column_types: Vec<ColumnType>,
    /// Parquet writer settings.
    pub props: WriterProperties,
    /// Row group, file and batch limits.
    pub opts: PgOptions,
    /// Where files go.
    pub sink: Arc<dyn PartSink>,
    /// Counters.
    pub progress: Arc<Progress>,
}

/// What one stream produced.
pub struct StreamOutput {
    /// Rows written.
    pub rows: u64,
    /// Finished files, in order.
    pub parts: Vec<PartInfo>,
}

enum Block {
    Data(Vec<u8>),
    End,
}

enum Batch {
    Rows(RecordBatch),
    End,
}

/// Runs `copy` (a `COPY … TO STDOUT (FORMAT binary)` statement) on `client` and writes its
/// rows as Parquet files. `place` names the stream in value errors.
pub async fn run(client: &tokio_postgres::Client, copy: &str, place: String, shared: Arc<Shared>) -> Result<StreamOutput, EngineError> {
    let (block_tx, mut block_rx) = tokio::sync::mpsc::channel::<Block>(BLOCKS_IN_FLIGHT);
    let (batch_tx, batch_rx) = sync_channel::<Batch>(1);
    let s = shared.clone();
    let decoder = tokio::task::spawn_blocking(move || {
        let mut parser = CopyParser::new(s.schema.clone(), &s.column_types, s.opts.batch_rows, s.opts.batch_bytes, place);
        decode(&mut parser, &mut block_rx, &batch_tx, &s.progress)
    });
    let s = shared.clone();
    let writer = tokio::task::spawn_blocking(move || write(batch_rx, &s));

    let read = async {
        let stream = client.copy_out(copy).await.map_err(EngineError::db("COPY"))?;
        let mut stream = std::pin::pin!(stream);
        let mut buf = Vec::with_capacity(BLOCK_BYTES);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(EngineError::db("COPY"))?;
            buf.extend_from_slice(&chunk);
            if buf.len() >= BLOCK_BYTES {
                let full = std::mem::replace(&mut buf, Vec::with_capacity(BLOCK_BYTES));
                if block_tx.send(Block::Data(full)).await.is_err() {
                    return Ok(false);
                }
            }
        }
        if !buf.is_empty() && block_tx.send(Block::Data(buf)).await.is_err() {
            return Ok(false);
        }
        Ok::<bool, EngineError>(block_tx.send(Block::End).await.is_ok())
    };
    let read = read.await;
    drop(block_tx);
    // A COPY error wins; else the decoder's, else the writer's.
    read?;
    let decoded = decoder.await.map_err(|e| EngineError::Internal(format!("decoder: {e}")))?;
    let written = writer.await.map_err(|e| EngineError::Internal(format!("writer: {e}")))?;
    decoded?;
    written
}

/// The decoding stage. Returns `Ok` also when a neighbour stopped early (it reports why).
fn decode(
    parser: &mut CopyParser,
    rx: &mut tokio::sync::mpsc::Receiver<Block>,
    tx: &SyncSender<Batch>,
    progress: &Progress,
) -> Result<(), EngineError> {
    let mut writer_gone = false;
    let mut emit = |batch: RecordBatch| {
        progress.add_rows(batch.num_rows() as u64);
        tx.send(Batch::Rows(batch)).map_err(|_| {
            writer_gone = true;
            EngineError::Internal("writer stopped".into())
        })
    };
    let result = loop {
        match rx.blocking_recv() {
            Some(Block::Data(data)) => {
                if let Err(e) = parser.feed(&data, &mut emit) {
                    break Err(e);
                }
            }
            Some(Block::End) => {
                let last = match parser.finish() {
                    Ok(last) => last,
                    Err(e) => break Err(e),
                };
                if let Some(batch) = last
                    && let Err(e) = emit(batch)
                {
                    break Err(e);
                }
                let _ = tx.send(Batch::End);
                break Ok(());
            }
            // The reader stopped early: it reports why.
            None => break Ok(()),
        }
    };
    if writer_gone { Ok(()) } else { result }
}

/// An open output file.
struct OpenFile {
    writer: ArrowWriter<Box<dyn PartWriter>>,
    rows: u64,
}

/// The writing stage: batches into files, a row group whenever the in-progress one reaches
/// `row_group_bytes` (with content-defined chunking, at the first content-defined row past an
/// eighth of it: [`Boundaries`]), a new file once the current one reaches
/// `file_size_threshold` (checked when a row group ends, so files end at row-group
/// boundaries).
fn write(rx: Receiver<Batch>, shared: &Shared) -> Result<StreamOutput, EngineError> {
    let mut out = StreamOutput {
        rows: 0,
        parts: Vec::new(),
    };
    let mut file: Option<OpenFile> = None;
    // with content-defined chunking, row groups end at content-defined rows too, spaced for
    // rows like the first batch's
    let mut boundaries: Option<Boundaries> = None;
    loop {
        let batch = match rx.recv() {
            Ok(Batch::Rows(b)) => b,
            Ok(Batch::End) => break,
            Err(_) => return Err(EngineError::Internal("the decoder stopped early".into())),
        };
        if batch.num_rows() == 0 {
            continue;
        }
        if shared.opts.content_defined_chunking && boundaries.is_none() {
            let bytes = boundary::arrow_bytes(batch.columns());
            boundaries = Some(Boundaries::new(shared.opts.row_group_bytes, batch.num_rows(), bytes));
        }
        out.rows += batch.num_rows() as u64;
        let keys = boundaries.as_ref().map(|_| boundary::row_keys(batch.column(0)));
        let mut at = 0;
        while at < batch.num_rows() {
            let f = match &mut file {
                Some(f) => f,
                None => file.insert(open(shared, Some(&batch.slice(at, batch.num_rows() - at)))?),
            };
            let (size, rows) = (f.writer.in_progress_size(), f.writer.in_progress_rows());
            // how many rows to write next, and whether the row group ends after them
            let (n, cut) = match (&boundaries, &keys) {
                (Some(b), Some(keys)) => b.next(size, rows, &keys[at..]).rows_then_cut(),
                _ => (batch.num_rows() - at, false),
            };
            if n > 0 {
                f.writer.write(&batch.slice(at, n))?;
                f.rows += n as u64;
                at += n;
            }
            if cut || (boundaries.is_none() && f.writer.in_progress_size() >= shared.opts.row_group_bytes) {
                f.writer.flush()?;
            }
            if f.writer.in_progress_rows() == 0 && f.writer.bytes_written() as u64 >= shared.opts.file_size_threshold {
                out.parts.push(close(file.take().expect("open file"))?);
            }
        }
    }
    if let Some(f) = file.take() {
        out.parts.push(close(f)?);
    }
    Ok(out)
}

/// Starts the next file, with [`file_properties`] of its first batch.
fn open(shared: &Shared, first: Option<&RecordBatch>) -> Result<OpenFile, EngineError> {
    let part = shared.sink.create()?;
    let props = first.map_or_else(|| shared.props.clone(), |b| file_properties(&shared.props, b));
    let writer = ArrowWriter::try_new(part, shared.schema.clone(), Some(props))?;
    Ok(OpenFile { writer, rows: 0 })
}

/// Writes the footer and finishes the file.
fn close(f: OpenFile) -> Result<PartInfo, EngineError> {
    let part = f.writer.into_inner()?;
    Ok(part.finish(f.rows)?)
}

/// Writes one file with the schema and no rows (an empty result still yields a file).
pub fn write_empty(shared: &Shared) -> Result<PartInfo, EngineError> {
    close(open(shared, None)?)
}

/// Share of distinct values in a string or binary column's first batch above which it is
/// written without a dictionary: a dictionary of mostly unique values only adds a page and the
/// fallback. On the bench's catalog table this keeps URLs, identifiers and jsonb plain
/// (2.3 MiB of 72 MiB smaller) and categories, licenses and names in dictionaries.
const PLAIN_ABOVE_DISTINCT: f64 = 0.5;

/// `base`, with dictionaries off for top-level string and binary columns whose values in
/// `first` are mostly distinct (see [`PLAIN_ABOVE_DISTINCT`]).
pub fn file_properties(base: &WriterProperties, first: &RecordBatch) -> WriterProperties {
    use arrow::array::AsArray;
    use arrow::datatypes::DataType;
    let mut b = base.clone().into_builder();
    for (field, column) in first.schema().fields().iter().zip(first.columns()) {
        let values: Vec<&[u8]> = match field.data_type() {
            DataType::Utf8 => column.as_string::<i32>().iter().flatten().map(str::as_bytes).collect(),
            DataType::Binary => column.as_binary::<i32>().iter().flatten().collect(),
            _ => continue,
        };
        if values.is_empty() {
            continue;
        }
        let distinct: std::collections::HashSet<&[u8]> = values.iter().copied().collect();
        if distinct.len() as f64 > PLAIN_ABOVE_DISTINCT * values.len() as f64 {
            b = b.set_column_dictionary_enabled(parquet::schema::types::ColumnPath::from(field.name().as_str()), false);
        }
    }
    b.build()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int32Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::schema::types::ColumnPath;

    use super::*;

    #[test]
    fn mostly_distinct_strings_lose_their_dictionary() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("url", DataType::Utf8, true),
            Field::new("license", DataType::Utf8, true),
            Field::new("n", DataType::Int32, true),
        ]));
        let urls: Vec<Option<String>> = (0..100).map(|i| (i % 10 != 0).then(|| format!("https://x/{i}"))).collect();
        let licenses: Vec<Option<&str>> = (0..100).map(|i| Some(["by", "cc0", "by-sa"][i % 3])).collect();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(urls)),
                Arc::new(StringArray::from(licenses)),
                Arc::new(Int32Array::from((0..100).collect::<Vec<i32>>())),
            ],
        )
        .unwrap();
        let props = file_properties(&WriterProperties::default(), &batch);
        let dict = |c: &str| props.dictionary_enabled(&ColumnPath::from(c));
        assert_eq!((dict("url"), dict("license"), dict("n")), (false, true, true));
    }
}
