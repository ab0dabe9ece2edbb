//! The type mapping: which PostgreSQL types are decoded natively from binary COPY, and the
//! Arrow/Parquet type each becomes. Everything else is read as PostgreSQL's text output (the
//! query wraps those columns in `::text`). The types are tokio-postgres's own [`Type`]
//! constants; an array's element type is what [`Type::kind`] says. Two types some common
//! readers lack (DECIMAL wider than 38 digits, TIME) are written as exact text unless
//! [`TypeChoices`] asks for the richer type. Pure, no I/O.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, TimeUnit};
use datadump_contract::{TimeOfDay, WideNumeric};
use tokio_postgres::types::{Kind, Type};

/// How one column (or array element) is decoded, and the Arrow/Parquet type it becomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColumnType {
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
    /// `numeric(p,s)` with p > 38 under [`WideNumeric::String`] → STRING with the exact
    /// decimal text, exactly `scale` fractional digits.
    DecimalText {
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
    /// `time` under [`TimeOfDay::Time`] → TIME(MICROS).
    Time,
    /// `time` under [`TimeOfDay::String`] → STRING `HH:MM:SS.ffffff`.
    TimeText,
    /// A one-dimensional array → LIST.
    List {
        /// The PostgreSQL type of the elements, which every array value must name.
        element: Type,
        /// How the elements are decoded.
        item: Box<ColumnType>,
    },
}

/// The scalar types decoded natively (`numeric` aside: its mapping depends on the typmod).
const SCALARS: [(Type, ColumnType); 18] = [
    (Type::BOOL, ColumnType::Bool),
    (Type::INT2, ColumnType::I16),
    (Type::INT4, ColumnType::I32),
    (Type::INT8, ColumnType::I64),
    (Type::FLOAT4, ColumnType::F32),
    (Type::FLOAT8, ColumnType::F64),
    (Type::TEXT, ColumnType::Text),
    (Type::VARCHAR, ColumnType::Text),
    (Type::BPCHAR, ColumnType::Text),
    (Type::NAME, ColumnType::Text),
    (Type::JSON, ColumnType::Json),
    (Type::JSONB, ColumnType::Jsonb),
    (Type::BYTEA, ColumnType::Bytea),
    (Type::UUID, ColumnType::Uuid),
    (Type::DATE, ColumnType::Date),
    (Type::TIMESTAMP, ColumnType::Timestamp),
    (Type::TIMESTAMPTZ, ColumnType::TimestampTz),
    (Type::TIME, ColumnType::Time),
];

/// How the types some common readers lack are written (`spec.output.wideNumeric`,
/// `spec.output.time`); the defaults open everywhere.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TypeChoices {
    /// `numeric(p,s)` with p > 38.
    pub wide_numeric: WideNumeric,
    /// `time`.
    pub time: TimeOfDay,
}

/// The native decoding of a scalar type, or `None` when it is read as text.
fn scalar(ty: &Type, typmod: i32, choices: TypeChoices) -> Option<ColumnType> {
    if *ty == Type::NUMERIC {
        return match numeric(typmod)? {
            ColumnType::Decimal { precision, scale } if precision > 38 && choices.wide_numeric == WideNumeric::String => {
                Some(ColumnType::DecimalText { precision, scale })
            }
            decimal => Some(decimal),
        };
    }
    if *ty == Type::TIME && choices.time == TimeOfDay::String {
        return Some(ColumnType::TimeText);
    }
    SCALARS.iter().find(|(t, _)| t == ty).map(|(_, column_type)| column_type.clone())
}

/// `numeric` with a declared precision and a scale in `0..=precision`, up to 76 digits;
/// anything else (unconstrained, negative scale) is read as text.
fn numeric(typmod: i32) -> Option<ColumnType> {
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
    Some(ColumnType::Decimal {
        precision: precision as u8,
        scale: scale as i8,
    })
}

impl ColumnType {
    /// The native decoding of a column of type `oid` with modifier `typmod`, or `None` when
    /// the column must be read as text. An array's typmod is its elements'.
    pub fn of(oid: u32, typmod: i32, choices: TypeChoices) -> Option<ColumnType> {
        let ty = Type::from_oid(oid)?;
        match ty.kind() {
            // int2vector says it is an array of int2, but it is a type of its own: text
            Kind::Array(element) if ty != Type::INT2_VECTOR => Some(ColumnType::List {
                element: element.clone(),
                item: Box::new(scalar(element, typmod, choices)?),
            }),
            _ => scalar(&ty, typmod, choices),
        }
    }

    /// The Arrow type.
    pub fn data_type(&self) -> DataType {
        match self {
            ColumnType::Bool => DataType::Boolean,
            ColumnType::I16 => DataType::Int16,
            ColumnType::I32 => DataType::Int32,
            ColumnType::I64 => DataType::Int64,
            ColumnType::F32 => DataType::Float32,
            ColumnType::F64 => DataType::Float64,
            ColumnType::Decimal { precision, scale } if *precision <= 38 => DataType::Decimal128(*precision, *scale),
            ColumnType::Decimal { precision, scale } => DataType::Decimal256(*precision, *scale),
            ColumnType::Text
            | ColumnType::Json
            | ColumnType::Jsonb
            | ColumnType::Uuid
            | ColumnType::DecimalText { .. }
            | ColumnType::TimeText => DataType::Utf8,
            ColumnType::Bytea => DataType::Binary,
            ColumnType::Date => DataType::Date32,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            ColumnType::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ColumnType::Time => DataType::Time64(TimeUnit::Microsecond),
            ColumnType::List { item, .. } => DataType::List(Arc::new(item.field("item", true, HashMap::new()))),
        }
    }

    /// An Arrow field of this type (JSON types carry the canonical JSON extension type, which
    /// the Parquet writer turns into the JSON logical type).
    pub fn field(&self, name: &str, nullable: bool, metadata: HashMap<String, String>) -> Field {
        let field = Field::new(name, self.data_type(), nullable).with_metadata(metadata);
        match self {
            ColumnType::Json | ColumnType::Jsonb => field.with_extension_type(arrow_schema::extension::Json::default()),
            _ => field,
        }
    }

    /// Short human text of the Parquet type, e.g. `DECIMAL(12,2)`, `STRING (JSON)`,
    /// `LIST<INT32>`.
    pub fn parquet_type(&self) -> String {
        match self {
            ColumnType::Bool => "BOOLEAN".into(),
            ColumnType::I16 => "INT16".into(),
            ColumnType::I32 => "INT32".into(),
            ColumnType::I64 => "INT64".into(),
            ColumnType::F32 => "FLOAT".into(),
            ColumnType::F64 => "DOUBLE".into(),
            ColumnType::Decimal { precision, scale } => format!("DECIMAL({precision},{scale})"),
            ColumnType::Text | ColumnType::Uuid => "STRING".into(),
            ColumnType::DecimalText { precision, scale } => format!("STRING (numeric({precision},{scale}) text)"),
            ColumnType::TimeText => "STRING (time HH:MM:SS.ffffff)".into(),
            ColumnType::Json | ColumnType::Jsonb => "STRING (JSON)".into(),
            ColumnType::Bytea => "BINARY".into(),
            ColumnType::Date => "DATE".into(),
            ColumnType::Timestamp => "TIMESTAMP(MICROS)".into(),
            ColumnType::TimestampTz => "TIMESTAMP(MICROS, UTC)".into(),
            ColumnType::Time => "TIME(MICROS)".into(),
            ColumnType::List { item, .. } => format!("LIST<{}>", item.parquet_type()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The richer types some readers lack.
    const RICH: TypeChoices = TypeChoices {
        wide_numeric: WideNumeric::Decimal,
        time: TimeOfDay::Time,
    };

    fn typmod(p: i32, s: i32) -> i32 {
        ((p << 16) | (s & 0x7ff)) + 4
    }

    #[test]
    fn numeric_typmods() {
        let numeric = Type::NUMERIC.oid();
        let dec = |p, s| Some(ColumnType::Decimal { precision: p, scale: s });
        assert_eq!(ColumnType::of(numeric, typmod(12, 2), RICH), dec(12, 2));
        assert_eq!(ColumnType::of(numeric, typmod(38, 10), RICH), dec(38, 10));
        assert_eq!(ColumnType::of(numeric, typmod(76, 0), RICH), dec(76, 0));
        assert_eq!(ColumnType::of(numeric, typmod(77, 0), RICH), None);
        assert_eq!(ColumnType::of(numeric, typmod(5, -2), RICH), None);
        assert_eq!(ColumnType::of(numeric, typmod(2, 4), RICH), None);
        assert_eq!(ColumnType::of(numeric, -1, RICH), None);
        assert_eq!(
            ColumnType::of(Type::NUMERIC_ARRAY.oid(), typmod(12, 2), RICH),
            Some(ColumnType::List {
                element: Type::NUMERIC,
                item: Box::new(ColumnType::Decimal { precision: 12, scale: 2 })
            })
        );
        assert_eq!(ColumnType::of(Type::NUMERIC_ARRAY.oid(), -1, RICH), None);
        assert_eq!(ColumnType::of(Type::INTERVAL.oid(), -1, RICH), None, "interval is read as text");
        assert_eq!(
            ColumnType::of(Type::INT4_ARRAY.oid(), -1, RICH).unwrap().parquet_type(),
            "LIST<INT32>"
        );
        assert_eq!(
            ColumnType::Decimal { precision: 50, scale: 5 }.data_type(),
            DataType::Decimal256(50, 5)
        );
    }

    /// By default numeric wider than 38 digits and time are exact text; 38 digits stay DECIMAL.
    #[test]
    fn the_defaults_write_what_every_reader_opens() {
        let d = TypeChoices::default();
        let numeric = Type::NUMERIC.oid();
        let cases = [
            (numeric, typmod(38, 10), "DECIMAL(38,10)", DataType::Decimal128(38, 10)),
            (numeric, typmod(39, 5), "STRING (numeric(39,5) text)", DataType::Utf8),
            (numeric, typmod(76, 76), "STRING (numeric(76,76) text)", DataType::Utf8),
            (Type::TIME.oid(), -1, "STRING (time HH:MM:SS.ffffff)", DataType::Utf8),
            (
                Type::TIMESTAMP.oid(),
                -1,
                "TIMESTAMP(MICROS)",
                DataType::Timestamp(TimeUnit::Microsecond, None),
            ),
        ];
        for (oid, typmod, parquet, arrow) in cases {
            let t = ColumnType::of(oid, typmod, d).unwrap();
            assert_eq!((t.parquet_type(), t.data_type()), (parquet.to_owned(), arrow), "{oid} {typmod}");
        }
        let list = ColumnType::of(Type::TIME_ARRAY.oid(), -1, d).unwrap();
        assert_eq!(list.parquet_type(), "LIST<STRING (time HH:MM:SS.ffffff)>");
        let list = ColumnType::of(Type::NUMERIC_ARRAY.oid(), typmod(50, 2), d).unwrap();
        assert_eq!(list.parquet_type(), "LIST<STRING (numeric(50,2) text)>");
        assert_eq!(ColumnType::of(Type::TIME.oid(), -1, RICH), Some(ColumnType::Time));
    }

    /// The arrays of every natively decoded scalar become lists of it; other arrays, and
    /// int2vector (an array of int2 to `Type::kind`), are read as text.
    #[test]
    fn arrays_of_native_scalars_become_lists() {
        let arrays = [
            (Type::BOOL_ARRAY, Type::BOOL),
            (Type::INT2_ARRAY, Type::INT2),
            (Type::INT4_ARRAY, Type::INT4),
            (Type::INT8_ARRAY, Type::INT8),
            (Type::FLOAT4_ARRAY, Type::FLOAT4),
            (Type::FLOAT8_ARRAY, Type::FLOAT8),
            (Type::TEXT_ARRAY, Type::TEXT),
            (Type::VARCHAR_ARRAY, Type::VARCHAR),
            (Type::BPCHAR_ARRAY, Type::BPCHAR),
            (Type::NAME_ARRAY, Type::NAME),
            (Type::JSON_ARRAY, Type::JSON),
            (Type::JSONB_ARRAY, Type::JSONB),
            (Type::BYTEA_ARRAY, Type::BYTEA),
            (Type::UUID_ARRAY, Type::UUID),
            (Type::DATE_ARRAY, Type::DATE),
            (Type::TIMESTAMP_ARRAY, Type::TIMESTAMP),
            (Type::TIMESTAMPTZ_ARRAY, Type::TIMESTAMPTZ),
            (Type::TIME_ARRAY, Type::TIME),
        ];
        for (array, element) in arrays {
            let item = ColumnType::of(element.oid(), -1, RICH).unwrap_or_else(|| panic!("{element} is native"));
            assert_eq!(
                ColumnType::of(array.oid(), -1, RICH),
                Some(ColumnType::List {
                    element: element.clone(),
                    item: Box::new(item)
                }),
                "{array}"
            );
        }
        for text in [Type::INT2_VECTOR, Type::INTERVAL_ARRAY, Type::OID_ARRAY, Type::INET] {
            assert_eq!(ColumnType::of(text.oid(), -1, RICH), None, "{text}");
        }
        assert_eq!(ColumnType::of(4_000_000_000, -1, RICH), None, "an unknown OID is read as text");
    }
}
