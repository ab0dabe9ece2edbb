//! An incremental parser of PostgreSQL's binary COPY format that decodes each tuple straight
//! into Arrow builders and cuts [`RecordBatch`]es bounded by rows and bytes. Chunks may split
//! the data anywhere. Pure, no I/O.
//!
//! Format: the signature `PGCOPY\n\xff\r\n\0`, an i32 flags word, an i32 header-extension
//! length and that many bytes; then per tuple an i16 field count (-1 ends the data) and per
//! field an i32 length (-1 = NULL) followed by the value's bytes.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::EngineError;
use super::decode::Column;
use super::types::ColumnType;

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Header,
    Tuples,
    Done,
}

/// Parses one stream's binary COPY data into batches.
pub struct CopyParser {
    state: State,
    schema: SchemaRef,
    columns: Vec<Column>,
    /// (start, length) of each field of the tuple being decoded; reused.
    fields: Vec<(usize, i32)>,
    /// Bytes of an incomplete tuple carried to the next chunk.
    pending: Vec<u8>,
    batch_rows: usize,
    batch_bytes: usize,
    rows_in_batch: usize,
    bytes_in_batch: usize,
    /// Tuples decoded so far.
    rows: u64,
    place: String,
}

impl CopyParser {
    /// A parser for columns of `column_types` (in `schema`'s order); batches hold at most
    /// `batch_rows` rows and close once they hold `batch_bytes` bytes of values. `place` is
    /// added to value errors after the row number.
    pub fn new(schema: SchemaRef, column_types: &[ColumnType], batch_rows: usize, batch_bytes: usize, place: String) -> CopyParser {
        CopyParser {
            state: State::Header,
            schema,
            columns: column_types.iter().map(Column::new).collect(),
            fields: Vec::with_capacity(column_types.len()),
            pending: Vec::new(),
            batch_rows: batch_rows.max(1),
            batch_bytes: batch_bytes.max(1),
            rows_in_batch: 0,
            bytes_in_batch: 0,
            rows: 0,
            place,
        }
    }

    /// Tuples decoded so far.
    #[cfg(test)]
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Parses a chunk, handing every full batch to `emit`.
    pub fn feed(&mut self, chunk: &[u8], emit: &mut dyn FnMut(RecordBatch) -> Result<(), EngineError>) -> Result<(), EngineError> {
        if self.pending.is_empty() {
            let used = self.parse(chunk, emit)?;
            self.pending.extend_from_slice(&chunk[used..]);
        } else {
            let mut buf = std::mem::take(&mut self.pending);
            buf.extend_from_slice(chunk);
            let used = self.parse(&buf, emit)?;
            buf.drain(..used);
            self.pending = buf;
        }
        Ok(())
    }

    /// The end of the data: checks that the trailer arrived and returns the last batch (if it
    /// has rows).
    pub fn finish(&mut self) -> Result<Option<RecordBatch>, EngineError> {
        if self.state != State::Done {
            return Err(EngineError::Protocol("the data ended before the trailer".into()));
        }
        if !self.pending.is_empty() {
            return Err(EngineError::Protocol(format!("{} bytes after the trailer", self.pending.len())));
        }
        if self.rows_in_batch == 0 {
            return Ok(None);
        }
        self.take_batch().map(Some)
    }

    fn take_batch(&mut self) -> Result<RecordBatch, EngineError> {
        let arrays = self.columns.iter_mut().map(Column::finish).collect();
        self.rows_in_batch = 0;
        self.bytes_in_batch = 0;
        Ok(RecordBatch::try_new(self.schema.clone(), arrays)?)
    }

    /// Parses whole tuples from `buf`; returns how many bytes it used.
    fn parse(&mut self, buf: &[u8], emit: &mut dyn FnMut(RecordBatch) -> Result<(), EngineError>) -> Result<usize, EngineError> {
        let mut pos = 0;
        loop {
            match self.state {
                State::Header => {
                    if buf.len() < 19 {
                        return Ok(0);
                    }
                    if &buf[..11] != SIGNATURE {
                        return Err(EngineError::Protocol("bad signature".into()));
                    }
                    let flags = u32::from_be_bytes([buf[11], buf[12], buf[13], buf[14]]);
                    if flags & (1 << 16) != 0 {
                        return Err(EngineError::Protocol("tuples carry OIDs".into()));
                    }
                    let ext = u32::from_be_bytes([buf[15], buf[16], buf[17], buf[18]]) as usize;
                    if buf.len() < 19 + ext {
                        return Ok(0);
                    }
                    pos = 19 + ext;
                    self.state = State::Tuples;
                }
                State::Done => {
                    if pos < buf.len() {
                        return Err(EngineError::Protocol(format!("{} bytes after the trailer", buf.len() - pos)));
                    }
                    return Ok(pos);
                }
                State::Tuples => {
                    let Some(count) = buf.get(pos..pos + 2) else {
                        return Ok(pos);
                    };
                    let count = i16::from_be_bytes([count[0], count[1]]);
                    if count == -1 {
                        pos += 2;
                        self.state = State::Done;
                        continue;
                    }
                    if count as usize != self.columns.len() || count < 0 {
                        return Err(EngineError::Protocol(format!(
                            "a tuple has {count} fields, expected {}",
                            self.columns.len()
                        )));
                    }
                    // First pass: is the whole tuple here?
                    self.fields.clear();
                    let mut p = pos + 2;
                    for _ in 0..count {
                        let Some(len) = buf.get(p..p + 4) else {
                            return Ok(pos);
                        };
                        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
                        p += 4;
                        if len >= 0 {
                            if buf.len() - p < len as usize {
                                return Ok(pos);
                            }
                            self.fields.push((p, len));
                            p += len as usize;
                        } else if len == -1 {
                            self.fields.push((p, -1));
                        } else {
                            return Err(EngineError::Protocol(format!("field length {len}")));
                        }
                    }
                    // Second pass: decode.
                    for (i, &(start, len)) in self.fields.iter().enumerate() {
                        let column = &mut self.columns[i];
                        if len < 0 {
                            column.append_null();
                        } else if let Err(bad) = column.append(&buf[start..start + len as usize]) {
                            let name = self.schema.field(i).name().clone();
                            let (message, fix) = bad.explain(&name);
                            return Err(EngineError::Value {
                                column: name,
                                row: self.rows + 1,
                                place: self.place.clone(),
                                message,
                                fix,
                            });
                        }
                    }
                    self.rows += 1;
                    self.rows_in_batch += 1;
                    self.bytes_in_batch += p - pos;
                    pos = p;
                    if self.rows_in_batch >= self.batch_rows || self.bytes_in_batch >= self.batch_bytes {
                        let batch = self.take_batch()?;
                        emit(batch)?;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Int32Type, Schema};

    use super::*;

    /// Binary COPY of (int4, text) tuples.
    fn copy_data(rows: &[(Option<i32>, Option<&str>)]) -> Vec<u8> {
        let mut v = SIGNATURE.to_vec();
        v.extend(0u32.to_be_bytes());
        v.extend(4u32.to_be_bytes());
        v.extend(b"ext!");
        for (n, s) in rows {
            v.extend(2i16.to_be_bytes());
            match n {
                Some(n) => {
                    v.extend(4i32.to_be_bytes());
                    v.extend(n.to_be_bytes());
                }
                None => v.extend((-1i32).to_be_bytes()),
            }
            match s {
                Some(s) => {
                    v.extend((s.len() as i32).to_be_bytes());
                    v.extend(s.as_bytes());
                }
                None => v.extend((-1i32).to_be_bytes()),
            }
        }
        v.extend((-1i16).to_be_bytes());
        v
    }

    fn parser(batch_rows: usize) -> CopyParser {
        let column_types = [ColumnType::I32, ColumnType::Text];
        let schema = Arc::new(Schema::new(vec![
            column_types[0].field("n", true, Default::default()),
            column_types[1].field("s", true, Default::default()),
        ]));
        CopyParser::new(schema, &column_types, batch_rows, 1 << 20, String::new())
    }

    fn run(p: &mut CopyParser, chunks: &[&[u8]]) -> Result<Vec<RecordBatch>, EngineError> {
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut |b| {
                out.push(b);
                Ok(())
            })?;
        }
        out.extend(p.finish()?);
        Ok(out)
    }

    fn flatten(batches: &[RecordBatch]) -> Vec<(Option<i32>, Option<String>)> {
        let mut out = Vec::new();
        for b in batches {
            let n = b.column(0).as_primitive::<Int32Type>();
            let s = b.column(1).as_string::<i32>();
            for i in 0..b.num_rows() {
                out.push((n.is_valid(i).then(|| n.value(i)), s.is_valid(i).then(|| s.value(i).to_owned())));
            }
        }
        out
    }

    #[test]
    fn splits_at_every_byte_offset() {
        let rows = [
            (Some(1), Some("é€😀")),
            (None, Some("")),
            (Some(-7), None),
            (Some(i32::MAX), Some("xyz")),
        ];
        let data = copy_data(&rows);
        let want: Vec<_> = rows.iter().map(|(n, s)| (*n, s.map(str::to_owned))).collect();
        for a in 0..=data.len() {
            for b in a..=data.len() {
                let mut p = parser(3);
                let got = run(&mut p, &[&data[..a], &data[a..b], &data[b..]]).unwrap();
                assert_eq!(flatten(&got), want, "split at {a}, {b}");
                assert_eq!(got.len(), 2, "3 rows then 1");
                assert_eq!(p.rows(), 4);
            }
        }
    }

    #[test]
    fn empty_result_and_malformed_data() {
        let data = copy_data(&[]);
        assert!(run(&mut parser(10), &[&data]).unwrap().is_empty());
        let e = run(&mut parser(10), &[&data[..data.len() - 1]]).unwrap_err();
        assert!(e.to_string().contains("ended before the trailer"), "{e}");
        let mut bad = data.clone();
        bad[0] = b'X';
        assert!(run(&mut parser(10), &[&bad]).unwrap_err().to_string().contains("bad signature"));
        let mut extra = data.clone();
        extra.push(0);
        assert!(
            run(&mut parser(10), &[&extra])
                .unwrap_err()
                .to_string()
                .contains("after the trailer")
        );
    }

    #[test]
    fn value_errors_name_column_row_and_fix() {
        let mut data = copy_data(&[(Some(1), Some("ok"))]);
        data.truncate(data.len() - 2);
        // Second tuple: an int4 field of 3 bytes.
        data.extend(2i16.to_be_bytes());
        data.extend(3i32.to_be_bytes());
        data.extend([0, 0, 1]);
        data.extend((-1i32).to_be_bytes());
        data.extend((-1i16).to_be_bytes());
        let e = run(&mut parser(10), &[&data]).unwrap_err().to_string();
        assert_eq!(
            e,
            "column \"n\" row 2: malformed binary int4 value; fix: cast it in spec.query, e.g. n::text"
        );
    }
}
