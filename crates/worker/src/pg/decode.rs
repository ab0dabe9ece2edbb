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
    Text(StringBuilder),
    Jsonb(StringBuilder),
    Uuid(StringBuilder),
    Bytea(BinaryBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder, bool),
    Time(Time64MicrosecondBuilder),
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
            ColumnType::Text | ColumnType::Json => Column::Text(StringBuilder::new()),
            ColumnType::Jsonb => Column::Jsonb(StringBuilder::new()),
            ColumnType::Uuid => Column::Uuid(StringBuilder::new()),
            ColumnType::Bytea => Column::Bytea(BinaryBuilder::new()),
            ColumnType::Date => Column::Date(Date32Builder::new()),
            ColumnType::Timestamp => Column::Timestamp(TimestampMicrosecondBuilder::new(), false),
            ColumnType::TimestampTz => Column::Timestamp(TimestampMicrosecondBuilder::new().with_timezone("UTC"), true),
            ColumnType::Time => Column::Time(Time64MicrosecondBuilder::new()),
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
            Column::Text(b) | Column::Jsonb(b) | Column::Uuid(b) => b.append_null(),
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
                let n = numeric(v, *scale, *limit)?;
                b.append_value(n.to_i128().ok_or(Bad::NumericRange)?);
            }
            Column::Dec256(b, _, scale, limit) => b.append_value(numeric(v, *scale, *limit)?),
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
            Column::Text(b) | Column::Jsonb(b) | Column::Uuid(b) => Arc::new(b.finish()),
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
    UuidText(out)
}

struct UuidText([u8; 36]);

impl UuidText {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Decodes a binary numeric (ndigits, weight, sign, dscale, base-10000 digits) to its unscaled
/// integer at `scale`, exactly; fails when it is NaN/±Infinity, has more fractional digits
/// than `scale`, or reaches `limit` (10^precision) in magnitude.
pub fn numeric(v: &[u8], scale: i8, limit: i256) -> Result<i256, Bad> {
    let h = |at: usize| -> Result<i16, Bad> {
        Ok(i16::from_be_bytes(be(
            v.get(at..at + 2).ok_or(Bad::Malformed("numeric"))?,
            "numeric",
        )?))
    };
    let ndigits = h(0)?;
    let weight = h(2)? as i32;
    let sign = h(4)? as u16;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Err(Bad::NumericSpecial("NaN")),
        0xD000 => return Err(Bad::NumericSpecial("Infinity")),
        0xF000 => return Err(Bad::NumericSpecial("-Infinity")),
        _ => return Err(Bad::Malformed("numeric")),
    }
    if ndigits < 0 || v.len() != 8 + 2 * ndigits as usize {
        return Err(Bad::Malformed("numeric"));
    }
    // unscaled = Σ dᵢ × 10^eᵢ with eᵢ = 4 × (weight − i) + scale. Horner's rule over the groups
    // at or above the scale, each step in units of 10^eᵢ, so no intermediate exceeds the
    // unscaled value itself: digits below the scale must be zeros (else the value has more
    // fractional digits than the column) and are never multiplied in.
    let pow10 = |n: i32| i256::from_i128(10).checked_pow(n as u32).ok_or(Bad::NumericRange);
    let mut acc = i256::ZERO;
    let mut unit: Option<i32> = None;
    for i in 0..ndigits as usize {
        let d = h(8 + 2 * i)?;
        if !(0..10_000).contains(&d) {
            return Err(Bad::Malformed("numeric"));
        }
        let e = 4 * (weight - i as i32) + scale as i32;
        let (d, e) = if e >= 0 {
            (d, e)
        } else if e > -4 {
            let below = 10i16.pow((-e) as u32);
            if d % below != 0 {
                return Err(Bad::NumericRange);
            }
            (d / below, 0)
        } else if d != 0 {
            return Err(Bad::NumericRange);
        } else {
            continue;
        };
        let shifted = match unit {
            None => Some(i256::ZERO),
            Some(prev) => acc.checked_mul(pow10(prev - e)?),
        };
        acc = shifted
            .and_then(|a| a.checked_add(i256::from_i128(d as i128)))
            .ok_or(Bad::NumericRange)?;
        unit = Some(e);
    }
    if let Some(e) = unit.filter(|&e| e > 0) {
        acc = acc.checked_mul(pow10(e)?).ok_or(Bad::NumericRange)?;
    }
    if acc >= limit {
        return Err(Bad::NumericRange);
    }
    Ok(if sign == 0x4000 { acc.wrapping_neg() } else { acc })
}

#[cfg(test)]
mod tests {
    use arrow::array::Array;

    use super::*;

    /// Binary numeric from its parts.
    fn num(weight: i16, sign: u16, dscale: i16, digits: &[i16]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend((digits.len() as i16).to_be_bytes());
        v.extend(weight.to_be_bytes());
        v.extend(sign.to_be_bytes());
        v.extend(dscale.to_be_bytes());
        for d in digits {
            v.extend(d.to_be_bytes());
        }
        v
    }

    fn p(n: u32) -> i256 {
        i256::from_i128(10).wrapping_pow(n)
    }

    #[test]
    fn numeric_decodes_exactly() {
        let cases: &[(Vec<u8>, i8, Result<&str, Bad>)] = &[
            (num(0, 0, 0, &[]), 2, Ok("0")),
            (num(0, 0, 2, &[12]), 2, Ok("1200")),                     // 12.00
            (num(0, 0x4000, 2, &[1, 5000]), 2, Ok("-150")),           // -1.50
            (num(-1, 0, 2, &[5000]), 2, Ok("50")),                    // 0.50
            (num(-1, 0, 6, &[12, 3400]), 6, Ok("1234")),              // 0.00123400 at scale 6
            (num(-2, 0, 8, &[12, 3400]), 6, Err(Bad::NumericRange)),  // 0.000000123400
            (num(2, 0, 0, &[1]), 0, Ok("100000000")),                 // 1e8
            (num(1, 0, 2, &[9999, 9999, 9900]), 2, Ok("9999999999")), // 99999999.99
            (num(0, 0, 3, &[1, 1]), 2, Err(Bad::NumericRange)),       // 1.0001 at scale 2
            (num(0, 0xC000, 0, &[]), 2, Err(Bad::NumericSpecial("NaN"))),
            (num(0, 0xF000, 0, &[]), 2, Err(Bad::NumericSpecial("-Infinity"))),
            (num(3, 0, 0, &[1]), 0, Err(Bad::NumericRange)), // 1e12 ≥ 10^12
            (vec![0, 1, 0], 2, Err(Bad::Malformed("numeric"))),
        ];
        for (bytes, scale, want) in cases {
            let got = numeric(bytes, *scale, p(12)).map(|v| v.to_string());
            assert_eq!(got.as_deref().map_err(|e| *e), want.clone(), "{bytes:?} at scale {scale}");
        }
        // 38 nines at scale 10 fits Decimal128(38,10); 50 digits need i256.
        let nines: Vec<i16> = std::iter::repeat_n(9999, 9).chain([9900]).collect();
        let v = numeric(&num(6, 0, 10, &nines), 10, p(38)).unwrap();
        assert_eq!(v.to_string(), "9".repeat(38));
        let big: Vec<i16> = std::iter::repeat_n(1234, 13).collect();
        let v = numeric(&num(11, 0x4000, 5, &big), 5, p(76)).unwrap();
        assert_eq!(v.to_string(), format!("-{}0", "1234".repeat(13)));
    }

    /// Binary numeric of a decimal literal as PostgreSQL's `numeric_send` writes it: base-10000
    /// groups aligned at the decimal point, leading and trailing zero groups stripped, dscale
    /// the literal's fractional digits.
    fn pg_num(text: &str) -> Vec<u8> {
        let (neg, t) = text.strip_prefix('-').map_or((false, text), |t| (true, t));
        let (int, frac) = t.split_once('.').unwrap_or((t, ""));
        let int = format!("{}{int}", "0".repeat((4 - int.len() % 4) % 4));
        let frac = format!("{frac}{}", "0".repeat((4 - frac.len() % 4) % 4));
        let all = format!("{int}{frac}");
        let mut groups: Vec<i16> = all
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap().parse().unwrap())
            .collect();
        let mut weight = (int.len() / 4) as i16 - 1;
        while groups.first() == Some(&0) {
            groups.remove(0);
            weight -= 1;
        }
        while groups.last() == Some(&0) {
            groups.pop();
        }
        if groups.is_empty() {
            weight = 0;
        }
        let dscale = t.split_once('.').map_or(0, |(_, f)| f.len()) as i16;
        num(weight, if neg && !groups.is_empty() { 0x4000 } else { 0 }, dscale, &groups)
    }

    /// `numeric(p,s)` at precision 38 (Decimal128), 39 and 76 (Decimal256) and scales 0..=4
    /// (every scale mod 4) and beyond: the extremes, the smallest step, groups that straddle
    /// the point, and what does not fit (one digit too many on either side).
    #[test]
    fn numeric_at_every_precision_and_scale_mod_4() {
        for precision in [38u8, 39, 76] {
            for scale in [0i8, 1, 2, 3, 4, 5, 6, 7, 8, 10, 13, 37, precision as i8 - 1, precision as i8] {
                let (ip, fp) = (precision as usize - scale as usize, scale as usize);
                let lit = |int: &str, frac: &str| if frac.is_empty() { int.to_owned() } else { format!("{int}.{frac}") };
                let int = |digits: String| if digits.is_empty() { "0".to_owned() } else { digits };
                let nines = lit(&int("9".repeat(ip)), &"9".repeat(fp));
                let tiny = lit("0", &format!("{}1", "0".repeat(fp.saturating_sub(1))));
                let straddle = lit(
                    &int("1234567".chars().cycle().take(ip.min(9)).collect()),
                    &"891".repeat(3)[..fp.min(9)],
                );
                let straddle_want = format!("{}{}", &straddle.replace('.', ""), "0".repeat(fp - fp.min(9)));
                let straddle_want = straddle_want.trim_start_matches('0').to_owned();
                let ok: Vec<(String, String)> = vec![
                    (nines.clone(), "9".repeat(precision as usize)),
                    (format!("-{nines}"), format!("-{}", "9".repeat(precision as usize))),
                    (if fp == 0 { "1".into() } else { tiny.clone() }, "1".into()),
                    (if fp == 0 { "-1".into() } else { format!("-{tiny}") }, "-1".into()),
                    (straddle.clone(), straddle_want.clone()),
                    (format!("-{straddle}"), format!("-{straddle_want}")),
                    ("0".into(), "0".into()),
                ];
                let too_wide = lit(&format!("1{}", "0".repeat(ip)), &"0".repeat(fp));
                let too_long = lit(if ip == 0 { "0" } else { "1" }, &format!("{}1", "0".repeat(fp)));
                let bad: Vec<String> = vec![
                    format!("9{nines}"),
                    format!("-9{nines}"),
                    too_wide.clone(),
                    format!("-{too_wide}"),
                    too_long.clone(),
                    format!("-{too_long}"),
                    format!("{nines}9"),
                ];
                let kind = ColumnType::Decimal { precision, scale };
                for (text, want) in &ok {
                    let mut c = Column::new(&kind);
                    c.append(&pg_num(text))
                        .unwrap_or_else(|e| panic!("numeric({precision},{scale}) {text}: {e:?}"));
                    let a = c.finish();
                    let got = match precision {
                        ..=38 => a
                            .as_any()
                            .downcast_ref::<arrow::array::Decimal128Array>()
                            .unwrap()
                            .value(0)
                            .to_string(),
                        _ => a
                            .as_any()
                            .downcast_ref::<arrow::array::Decimal256Array>()
                            .unwrap()
                            .value(0)
                            .to_string(),
                    };
                    assert_eq!(&got, want, "numeric({precision},{scale}) {text}");
                }
                for text in &bad {
                    let mut c = Column::new(&kind);
                    assert_eq!(
                        c.append(&pg_num(text)),
                        Err(Bad::NumericRange),
                        "numeric({precision},{scale}) {text}"
                    );
                }
            }
        }
        // The value: 65 + 10 digits in numeric(76,10); its 20 groups are 80 digits.
        let text = format!("{}.{}", "9".repeat(65), "9".repeat(10));
        let v = numeric(&pg_num(&text), 10, p(76)).unwrap();
        assert_eq!(v.to_string(), "9".repeat(75));
        assert_eq!(
            Bad::NumericRange.explain("price"),
            (
                "numeric value does not fit the column's precision and scale".to_owned(),
                "cast it in spec.query, e.g. price::text".to_owned()
            )
        );
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
