//! Decoding PostgreSQL binary values (the `send` formats) straight into Arrow builders: one
//! [`Column`] per output column. Pure, no I/O.

use std::sync::Arc;

use arrow::array::builder::NullBufferBuilder;
use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Decimal256Builder, Float32Builder, Float64Builder,
    Int16Builder, Int32Builder, Int64Builder, ListArray, StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{Field, i256};

use postgres_protocol::types::array_from_sql;
use tokio_postgres::fallible_iterator::FallibleIterator;
use tokio_postgres::types::Type;

use super::numeric;
use super::types::ColumnType;

/// Days from 1970-01-01 to PostgreSQL's epoch 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Why a value could not be decoded; the caller adds the column, the row and the fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bad {
    /// `infinity` / `-infinity` date or timestamp.
    Infinite(&'static str),
    /// A timestamp beyond what microseconds since 1970 in 64 bits can hold.
    TimestampRange,
    /// `NaN` or `±Infinity` in a `numeric(p,s)` column.
    NumericSpecial(&'static str),
    /// A numeric that does not fit the declared precision and scale.
    NumericRange,
    /// An array with more than one dimension.
    MultiDim(i32),
    /// An array whose elements are not of the column's element type.
    ElementType {
        /// The element type OID the column declares.
        expected: u32,
        /// The element type OID the value names.
        found: u32,
    },
    /// Text that is not UTF-8.
    Utf8,
    /// The bytes do not follow the type's binary format.
    Malformed(&'static str),
}

impl Bad {
    /// A message and a fix naming the column.
    pub fn explain(self, column: &str) -> (String, String) {
        let cast = format!("cast it in spec.query, e.g. {column}::text");
        match self {
            Bad::Infinite(what) => (
                format!("{what} has no Parquet counterpart"),
                format!("cast it in spec.query, e.g. NULLIF({column}, 'infinity') or {column}::text"),
            ),
            Bad::TimestampRange => ("timestamp is outside the range of Parquet TIMESTAMP(MICROS)".into(), cast),
            Bad::NumericSpecial(what) => (
                format!("numeric '{what}' has no Parquet DECIMAL counterpart"),
                format!("cast it in spec.query, e.g. NULLIF({column}, 'NaN') or {column}::text"),
            ),
            Bad::NumericRange => ("numeric value does not fit the column's precision and scale".into(), cast),
            Bad::MultiDim(n) => (
                format!("array has {n} dimensions; only one-dimensional arrays become Parquet LIST"),
                format!("cast it in spec.query, e.g. array_to_json({column})::jsonb or {column}::text"),
            ),
            Bad::ElementType { expected, found } => (
                format!(
                    "array elements are of type {} where the column declares {}",
                    type_name(found),
                    type_name(expected)
                ),
                cast,
            ),
            Bad::Utf8 => ("text is not valid UTF-8".into(), cast),
            Bad::Malformed(what) => (format!("malformed binary {what} value"), cast),
        }
    }
}

/// A type's name for a message: `int4`, or `OID 123456` when tokio-postgres does not know it.
fn type_name(oid: u32) -> String {
    Type::from_oid(oid).map_or_else(|| format!("OID {oid}"), |t| t.name().to_owned())
}

/// The Arrow builder of one column (or of a list's elements).
pub enum Column {
    Bool(BooleanBuilder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Dec128(Decimal128Builder, u8, i8, i256),
    Dec256(Decimal256Builder, u8, i8, i256),
    /// Exact decimal text: precision, scale, and the text of the value being appended.
    DecText(StringBuilder, u8, i8, String),
    Text(StringBuilder),
    Jsonb(StringBuilder),
    Uuid(StringBuilder),
    Bytea(BinaryBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder, bool),
    Time(Time64MicrosecondBuilder),
    TimeText(StringBuilder),
    List(Box<ListColumn>),
}

/// Offsets, validity and element builder of a LIST column.
pub struct ListColumn {
    offsets: Vec<i32>,
    nulls: NullBufferBuilder,
    item: Arc<Field>,
    /// The element type OID every value must name.
    element_oid: u32,
    elem: Column,
}

fn be<const N: usize>(b: &[u8], what: &'static str) -> Result<[u8; N], Bad> {
    b.try_into().map_err(|_| Bad::Malformed(what))
}

impl Column {
    /// An empty builder for `column_type`.
    pub fn new(column_type: &ColumnType) -> Column {
        match column_type {
            ColumnType::Bool => Column::Bool(BooleanBuilder::new()),
            ColumnType::I16 => Column::I16(Int16Builder::new()),
            ColumnType::I32 => Column::I32(Int32Builder::new()),
            ColumnType::I64 => Column::I64(Int64Builder::new()),
            ColumnType::F32 => Column::F32(Float32Builder::new()),
            ColumnType::F64 => Column::F64(Float64Builder::new()),
            ColumnType::Decimal { precision, scale } => {
                let limit = i256::from_i128(10).wrapping_pow(*precision as u32);
                if *precision <= 38 {
                    Column::Dec128(Decimal128Builder::new(), *precision, *scale, limit)
                } else {
                    Column::Dec256(Decimal256Builder::new(), *precision, *scale, limit)
                }
            }
            ColumnType::DecimalText { precision, scale } => Column::DecText(StringBuilder::new(), *precision, *scale, String::new()),
            ColumnType::Text | ColumnType::Json => Column::Text(StringBuilder::new()),
            ColumnType::Jsonb => Column::Jsonb(StringBuilder::new()),
            ColumnType::Uuid => Column::Uuid(StringBuilder::new()),
            ColumnType::Bytea => Column::Bytea(BinaryBuilder::new()),
            ColumnType::Date => Column::Date(Date32Builder::new()),
            ColumnType::Timestamp => Column::Timestamp(TimestampMicrosecondBuilder::new(), false),
            ColumnType::TimestampTz => Column::Timestamp(TimestampMicrosecondBuilder::new().with_timezone("UTC"), true),
            ColumnType::Time => Column::Time(Time64MicrosecondBuilder::new()),
            ColumnType::TimeText => Column::TimeText(StringBuilder::new()),
            ColumnType::List { element, item } => Column::List(Box::new(ListColumn {
                offsets: vec![0],
                nulls: NullBufferBuilder::new(0),
                item: match column_type.data_type() {
                    arrow::datatypes::DataType::List(f) => f,
                    _ => unreachable!("a list type has a list Arrow type"),
                },
                element_oid: element.oid(),
                elem: Column::new(item),
            })),
        }
    }

    /// Appends a NULL.
    pub fn append_null(&mut self) {
        match self {
            Column::Bool(b) => b.append_null(),
            Column::I16(b) => b.append_null(),
            Column::I32(b) => b.append_null(),
            Column::I64(b) => b.append_null(),
            Column::F32(b) => b.append_null(),
            Column::F64(b) => b.append_null(),
            Column::Dec128(b, ..) => b.append_null(),
            Column::Dec256(b, ..) => b.append_null(),
            Column::Text(b) | Column::Jsonb(b) | Column::Uuid(b) | Column::TimeText(b) | Column::DecText(b, ..) => b.append_null(),
            Column::Bytea(b) => b.append_null(),
            Column::Date(b) => b.append_null(),
            Column::Timestamp(b, _) => b.append_null(),
            Column::Time(b) => b.append_null(),
            Column::List(l) => {
                l.offsets.push(*l.offsets.last().unwrap_or(&0));
                l.nulls.append_null();
            }
        }
    }

    /// Decodes one binary value and appends it.
    pub fn append(&mut self, v: &[u8]) -> Result<(), Bad> {
        match self {
            Column::Bool(b) => match v {
                [x] => b.append_value(*x != 0),
                _ => return Err(Bad::Malformed("bool")),
            },
            Column::I16(b) => b.append_value(i16::from_be_bytes(be(v, "int2")?)),
            Column::I32(b) => b.append_value(i32::from_be_bytes(be(v, "int4")?)),
            Column::I64(b) => b.append_value(i64::from_be_bytes(be(v, "int8")?)),
            Column::F32(b) => b.append_value(f32::from_bits(u32::from_be_bytes(be(v, "float4")?))),
            Column::F64(b) => b.append_value(f64::from_bits(u64::from_be_bytes(be(v, "float8")?))),
            Column::Dec128(b, _, scale, limit) => {
                let n = numeric::unscaled(v, *scale, *limit)?;
                b.append_value(n.to_i128().ok_or(Bad::NumericRange)?);
            }
            Column::Dec256(b, _, scale, limit) => b.append_value(numeric::unscaled(v, *scale, *limit)?),
            Column::DecText(b, precision, scale, text) => {
                numeric::text(v, *precision, *scale, text)?;
                b.append_value(text.as_str());
            }
            Column::Text(b) => b.append_value(std::str::from_utf8(v).map_err(|_| Bad::Utf8)?),
            Column::Jsonb(b) => match v.split_first() {
                Some((1, text)) => b.append_value(std::str::from_utf8(text).map_err(|_| Bad::Utf8)?),
                _ => return Err(Bad::Malformed("jsonb")),
            },
            Column::Uuid(b) => b.append_value(uuid(be(v, "uuid")?).as_str()),
            Column::Bytea(b) => b.append_value(v),
            Column::Date(b) => match i32::from_be_bytes(be(v, "date")?) {
                i32::MAX => return Err(Bad::Infinite("date 'infinity'")),
                i32::MIN => return Err(Bad::Infinite("date '-infinity'")),
                d => b.append_value(d.checked_add(PG_EPOCH_DAYS).ok_or(Bad::Malformed("date"))?),
            },
            Column::Timestamp(b, tz) => match i64::from_be_bytes(be(v, "timestamp")?) {
                i64::MAX => return Err(Bad::Infinite(if *tz { "timestamptz 'infinity'" } else { "timestamp 'infinity'" })),
                i64::MIN => return Err(Bad::Infinite(if *tz { "timestamptz '-infinity'" } else { "timestamp '-infinity'" })),
                t => b.append_value(t.checked_add(PG_EPOCH_MICROS).ok_or(Bad::TimestampRange)?),
            },
            Column::Time(b) => b.append_value(i64::from_be_bytes(be(v, "time")?)),
            Column::TimeText(b) => b.append_value(time_text(i64::from_be_bytes(be(v, "time")?))?.as_str()),
            Column::List(l) => l.append(v)?,
        }
        Ok(())
    }

    /// The built array; the builder is left empty for the next batch.
    pub fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Bool(b) => Arc::new(b.finish()),
            Column::I16(b) => Arc::new(b.finish()),
            Column::I32(b) => Arc::new(b.finish()),
            Column::I64(b) => Arc::new(b.finish()),
            Column::F32(b) => Arc::new(b.finish()),
            Column::F64(b) => Arc::new(b.finish()),
            Column::Dec128(b, p, s, _) => Arc::new(b.finish().with_precision_and_scale(*p, *s).expect("valid decimal type")),
            Column::Dec256(b, p, s, _) => Arc::new(b.finish().with_precision_and_scale(*p, *s).expect("valid decimal type")),
            Column::Text(b) | Column::Jsonb(b) | Column::Uuid(b) | Column::TimeText(b) | Column::DecText(b, ..) => Arc::new(b.finish()),
            Column::Bytea(b) => Arc::new(b.finish()),
            Column::Date(b) => Arc::new(b.finish()),
            Column::Timestamp(b, _) => Arc::new(b.finish()),
            Column::Time(b) => Arc::new(b.finish()),
            Column::List(l) => {
                let offsets = std::mem::replace(&mut l.offsets, vec![0]);
                let nulls = l.nulls.finish();
                let values = l.elem.finish();
                Arc::new(ListArray::new(
                    l.item.clone(),
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    values,
                    nulls,
                ))
            }
        }
    }
}

impl ListColumn {
    /// Binary array (`array_send`), parsed by `postgres_protocol`: ndim, has-null flag,
    /// element OID, (size, lower bound) per dimension, then length-prefixed elements (-1 =
    /// NULL). Refuses more than one dimension, elements of another type than the column's,
    /// and bytes left over after the last element.
    fn append(&mut self, v: &[u8]) -> Result<(), Bad> {
        let malformed = |_| Bad::Malformed("array");
        // ndim is refused from the first word alone: the dimensions need not be read to say so
        match v.first_chunk::<4>().map(|w| i32::from_be_bytes(*w)) {
            Some(ndim) if ndim > 1 => return Err(Bad::MultiDim(ndim)),
            _ => {}
        }
        let array = array_from_sql(v).map_err(malformed)?;
        if array.element_type() != self.element_oid {
            return Err(Bad::ElementType {
                expected: self.element_oid,
                found: array.element_type(),
            });
        }
        let mut values = array.values();
        let mut count: i32 = 0;
        // the iterator fails past the last element when bytes are left over
        while let Some(value) = values.next().map_err(malformed)? {
            match value {
                None => self.elem.append_null(),
                Some(bytes) => self.elem.append(bytes)?,
            }
            count += 1;
        }
        let last = *self.offsets.last().unwrap_or(&0);
        self.offsets.push(last.checked_add(count).ok_or(Bad::Malformed("array"))?);
        self.nulls.append_non_null();
        Ok(())
    }
}

/// Canonical lower-case 8-4-4-4-12 text of a UUID.
fn uuid(b: [u8; 16]) -> UuidText {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 36];
    let mut o = 0;
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[o] = b'-';
            o += 1;
        }
        out[o] = HEX[(byte >> 4) as usize];
        out[o + 1] = HEX[(byte & 15) as usize];
        o += 2;
    }
    Ascii(out)
}

/// Fixed-width ASCII text built on the stack.
struct Ascii<const N: usize>([u8; N]);

impl<const N: usize> Ascii<N> {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

type UuidText = Ascii<36>;

/// Microseconds since midnight as `HH:MM:SS.ffffff`, fixed width so the text sorts as the
/// time does; `24:00:00.000000` (which PostgreSQL allows) kept.
fn time_text(micros: i64) -> Result<Ascii<15>, Bad> {
    if !(0..=86_400_000_000).contains(&micros) {
        return Err(Bad::Malformed("time"));
    }
    let mut out = *b"00:00:00.000000";
    let (secs, frac) = (micros / 1_000_000, micros % 1_000_000);
    let fields = [(0, secs / 3600, 2), (3, secs / 60 % 60, 2), (6, secs % 60, 2), (9, frac, 6)];
    for (at, mut value, width) in fields {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    Ok(Ascii(out))
}

#[cfg(test)]
mod tests {
    use arrow::array::Array;

    use super::*;

    #[test]
    fn time_of_day_as_fixed_width_text() {
        let cases: &[(i64, Result<&str, Bad>)] = &[
            (0, Ok("00:00:00.000000")),
            (1, Ok("00:00:00.000001")),
            (45_296_789_012, Ok("12:34:56.789012")),
            (86_399_999_999, Ok("23:59:59.999999")),
            (86_400_000_000, Ok("24:00:00.000000")),
            (86_400_000_001, Err(Bad::Malformed("time"))),
            (-1, Err(Bad::Malformed("time"))),
        ];
        for (micros, want) in cases {
            let mut c = Column::new(&ColumnType::TimeText);
            let got = c.append(&micros.to_be_bytes()).map(|()| {
                let a = c.finish();
                a.as_any().downcast_ref::<arrow::array::StringArray>().unwrap().value(0).to_owned()
            });
            assert_eq!(got.as_deref().map_err(|e| *e), *want, "{micros}");
        }
    }

    #[test]
    fn scalars_and_arrays() {
        let mut c = Column::new(&ColumnType::Uuid);
        c.append(&[
            0xA0, 0xEE, 0xBC, 0x99, 0x9C, 0x0B, 0x4E, 0xF8, 0xBB, 0x6D, 0x6B, 0xB9, 0xBD, 0x38, 0x0A, 0x11,
        ])
        .unwrap();
        let a = c.finish();
        let s = a.as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
        assert_eq!(s.value(0), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");

        let mut c = Column::new(&ColumnType::Timestamp);
        assert_eq!(c.append(&i64::MAX.to_be_bytes()), Err(Bad::Infinite("timestamp 'infinity'")));
        assert_eq!(c.append(&(i64::MAX - 1).to_be_bytes()), Err(Bad::TimestampRange));
        let mut c = Column::new(&ColumnType::Date);
        assert_eq!(c.append(&i32::MIN.to_be_bytes()), Err(Bad::Infinite("date '-infinity'")));

        // int4[]: {1,NULL,3}, then '{}' , then NULL, then a 2-D array.
        let mut arr = Vec::new();
        for w in [1i32, 1, 23, 3, 1, 4, 1, -1, 4, 3] {
            arr.extend(w.to_be_bytes());
        }
        let int4_list = ColumnType::List {
            element: Type::INT4,
            item: Box::new(ColumnType::I32),
        };
        let mut c = Column::new(&int4_list);
        c.append(&arr).unwrap();
        c.append(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 23]).unwrap();
        c.append_null();
        assert_eq!(c.append(&[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 23]), Err(Bad::MultiDim(2)));
        let a = c.finish();
        let l = a.as_any().downcast_ref::<ListArray>().unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(format!("{:?}", l.value(0)), "PrimitiveArray<Int32>\n[\n  1,\n  null,\n  3,\n]");
        assert_eq!(l.value(1).len(), 0);
        assert!(l.is_null(2));

        // an int8[] value in an int4[] column, bytes after the last element, a short element
        let mut c = Column::new(&int4_list);
        let int8_header = [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(c.append(&int8_header), Err(Bad::ElementType { expected: 23, found: 20 }));
        let mut trailing = arr.clone();
        trailing.push(0);
        assert_eq!(c.append(&trailing), Err(Bad::Malformed("array")));
        assert_eq!(c.append(&arr[..arr.len() - 1]), Err(Bad::Malformed("array")));
        assert_eq!(
            Bad::ElementType { expected: 23, found: 20 }.explain("tags").0,
            "array elements are of type int8 where the column declares int4"
        );
    }
}
