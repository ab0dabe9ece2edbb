//! The type mapping: which PostgreSQL types are decoded natively from binary COPY, and the
//! Arrow/Parquet type each becomes. Everything else is read as PostgreSQL's text output (the
//! query wraps those columns in `::text`). Pure, no I/O.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, TimeUnit};

/// How one column (or array element) is decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `bool` → BOOLEAN.
    Bool,
    /// `int2` → INT16.
    I16,
    /// `int4` → INT32.
    I32,
    /// `int8` → INT64.
    I64,
    /// `float4` → FLOAT.
    F32,
    /// `float8` → DOUBLE.
    F64,
    /// `numeric(p,s)` → DECIMAL(p,s) (Decimal128 up to 38 digits, else Decimal256).
    Decimal {
        /// Precision.
        precision: u8,
        /// Scale (0 ≤ scale ≤ precision).
        scale: i8,
    },
    /// Text-like types and PostgreSQL's text output of the rest → STRING.
    Text,
    /// `json` → STRING (JSON).
    Json,
    /// `jsonb` (version byte, then text) → STRING (JSON).
    Jsonb,
    /// `bytea` → BINARY.
    Bytea,
    /// `uuid` → STRING, canonical lower case.
    Uuid,
    /// `date` → DATE.
    Date,
    /// `timestamp` → TIMESTAMP(MICROS, local).
    Timestamp,
    /// `timestamptz` → TIMESTAMP(MICROS, UTC).
    TimestampTz,
    /// `time` → TIME(MICROS).
    Time,
    /// A one-dimensional array → LIST.
    List(Box<Kind>),
}

/// Scalar types decoded natively, by OID.
fn scalar(oid: u32, typmod: i32) -> Option<Kind> {
    Some(match oid {
        16 => Kind::Bool,
        21 => Kind::I16,
        23 => Kind::I32,
        20 => Kind::I64,
        700 => Kind::F32,
        701 => Kind::F64,
        1700 => numeric(typmod)?,
        25 | 1043 | 1042 | 19 => Kind::Text,
        114 => Kind::Json,
        3802 => Kind::Jsonb,
        17 => Kind::Bytea,
        2950 => Kind::Uuid,
        1082 => Kind::Date,
        1114 => Kind::Timestamp,
        1184 => Kind::TimestampTz,
        1083 => Kind::Time,
        _ => return None,
    })
}

/// Array type OID → element type OID, for the natively decoded element types.
fn array_element(oid: u32) -> Option<u32> {
    Some(match oid {
        1000 => 16,
        1005 => 21,
        1007 => 23,
        1016 => 20,
        1021 => 700,
        1022 => 701,
        1231 => 1700,
        1009 => 25,
        1015 => 1043,
        1014 => 1042,
        1003 => 19,
        199 => 114,
        3807 => 3802,
        1001 => 17,
        2951 => 2950,
        1182 => 1082,
        1115 => 1114,
        1185 => 1184,
        1183 => 1083,
        _ => return None,
    })
}

/// `numeric` with a declared precision and a scale in `0..=precision`, up to 76 digits;
/// anything else (unconstrained, negative scale) is read as text.
fn numeric(typmod: i32) -> Option<Kind> {
    if typmod < 4 {
        return None;
    }
    let precision = ((typmod - 4) >> 16) & 0xffff;
    // PostgreSQL 15 stores the scale as an 11-bit signed value.
    let raw_scale = (typmod - 4) & 0x7ff;
    let scale = if raw_scale & 0x400 != 0 { raw_scale - 0x800 } else { raw_scale };
    if !(1..=76).contains(&precision) || scale < 0 || scale > precision {
        return None;
    }
    Some(Kind::Decimal {
        precision: precision as u8,
        scale: scale as i8,
    })
}

impl Kind {
    /// The native decoding of a column of type `oid` with modifier `typmod`, or `None` when
    /// the column must be read as text.
    pub fn of(oid: u32, typmod: i32) -> Option<Kind> {
        match array_element(oid) {
            Some(elem) => Some(Kind::List(Box::new(scalar(elem, typmod)?))),
            None => scalar(oid, typmod),
        }
    }

    /// The Arrow type.
    pub fn data_type(&self) -> DataType {
        match self {
            Kind::Bool => DataType::Boolean,
            Kind::I16 => DataType::Int16,
            Kind::I32 => DataType::Int32,
            Kind::I64 => DataType::Int64,
            Kind::F32 => DataType::Float32,
            Kind::F64 => DataType::Float64,
            Kind::Decimal { precision, scale } if *precision <= 38 => DataType::Decimal128(*precision, *scale),
            Kind::Decimal { precision, scale } => DataType::Decimal256(*precision, *scale),
            Kind::Text | Kind::Json | Kind::Jsonb | Kind::Uuid => DataType::Utf8,
            Kind::Bytea => DataType::Binary,
            Kind::Date => DataType::Date32,
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Kind::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Kind::Time => DataType::Time64(TimeUnit::Microsecond),
            Kind::List(elem) => DataType::List(Arc::new(elem.field("item", true, HashMap::new()))),
        }
    }

    /// An Arrow field of this kind (JSON kinds carry the canonical JSON extension type, which
    /// the Parquet writer turns into the JSON logical type).
    pub fn field(&self, name: &str, nullable: bool, metadata: HashMap<String, String>) -> Field {
        let field = Field::new(name, self.data_type(), nullable).with_metadata(metadata);
        match self {
            Kind::Json | Kind::Jsonb => field.with_extension_type(arrow_schema::extension::Json::default()),
            _ => field,
        }
    }

    /// Short human text of the Parquet type, e.g. `DECIMAL(12,2)`, `STRING (JSON)`,
    /// `LIST<INT32>`.
    pub fn parquet_type(&self) -> String {
        match self {
            Kind::Bool => "BOOLEAN".into(),
            Kind::I16 => "INT16".into(),
            Kind::I32 => "INT32".into(),
            Kind::I64 => "INT64".into(),
            Kind::F32 => "FLOAT".into(),
            Kind::F64 => "DOUBLE".into(),
            Kind::Decimal { precision, scale } => format!("DECIMAL({precision},{scale})"),
            Kind::Text | Kind::Uuid => "STRING".into(),
            Kind::Json | Kind::Jsonb => "STRING (JSON)".into(),
            Kind::Bytea => "BINARY".into(),
            Kind::Date => "DATE".into(),
            Kind::Timestamp => "TIMESTAMP(MICROS)".into(),
            Kind::TimestampTz => "TIMESTAMP(MICROS, UTC)".into(),
            Kind::Time => "TIME(MICROS)".into(),
            Kind::List(elem) => format!("LIST<{}>", elem.parquet_type()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typmod(p: i32, s: i32) -> i32 {
        ((p << 16) | (s & 0x7ff)) + 4
    }

    #[test]
    fn numeric_typmods() {
        let dec = |p, s| Some(Kind::Decimal { precision: p, scale: s });
        assert_eq!(Kind::of(1700, typmod(12, 2)), dec(12, 2));
        assert_eq!(Kind::of(1700, typmod(38, 10)), dec(38, 10));
        assert_eq!(Kind::of(1700, typmod(76, 0)), dec(76, 0));
        assert_eq!(Kind::of(1700, typmod(77, 0)), None);
        assert_eq!(Kind::of(1700, typmod(5, -2)), None);
        assert_eq!(Kind::of(1700, typmod(2, 4)), None);
        assert_eq!(Kind::of(1700, -1), None);
        assert_eq!(
            Kind::of(1231, typmod(12, 2)),
            Some(Kind::List(Box::new(Kind::Decimal { precision: 12, scale: 2 })))
        );
        assert_eq!(Kind::of(1231, -1), None);
        assert_eq!(Kind::of(1186, -1), None, "interval is read as text");
        assert_eq!(Kind::of(1007, -1).unwrap().parquet_type(), "LIST<INT32>");
        assert_eq!(Kind::Decimal { precision: 50, scale: 5 }.data_type(), DataType::Decimal256(50, 5));
    }
}
