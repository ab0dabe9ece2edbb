//! The native PostgreSQL engine against a real PostgreSQL 15: type fidelity (read back with the
//! `parquet` crate and independently with pyarrow), value errors, the read-only guarantee,
//! parallel ctid-range streams, the shared snapshot and empty results.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Date32Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type};
use datadump::worker::pg::types::TypeChoices;
use datadump::worker::pg::{EngineError, ExportSummary, PgOptions, export};
use datadump::worker::sink::{DirSink, Progress};
use datadump_contract::{TimeOfDay, WideNumeric};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{DecimalType, LogicalType, TimestampType};
use serde_json::{Value, json};

use crate::support::postgres::Postgres;

const DB: &str = "catalog";

/// A libpq key/value connection string (password quoted per libpq rules).
fn conninfo(pg: &Postgres) -> String {
    pg.connection_string(DB)
}

fn start(sql: &str) -> Postgres {
    let pg = Postgres::start();
    pg.create_database(DB);
    pg.psql(DB, sql);
    pg
}

async fn run(pg: &Postgres, dir: &Path, template: &str, table: Option<&str>, opts: &PgOptions) -> Result<ExportSummary, EngineError> {
    let progress = Arc::new(Progress::default());
    let sink = Arc::new(DirSink::new(dir, "image", progress.clone()).unwrap());
    export(&conninfo(pg), template, "image", table, opts, sink, progress).await
}

fn read(dir: &Path, summary: &ExportSummary) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    for part in &summary.parts {
        let file = std::fs::File::open(dir.join(&part.name)).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
        let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        assert_eq!(batches.iter().map(|b| b.num_rows() as u64).sum::<u64>(), part.rows, "{}", part.name);
        out.extend(batches);
    }
    out
}

/// One cell the way the tests' SQL renders it (see `expected`): text, or a JSON array for lists.
fn render(a: &ArrayRef, i: usize) -> Value {
    if a.is_null(i) {
        return Value::Null;
    }
    let s = match a.data_type() {
        DataType::Boolean => a.as_boolean().value(i).to_string(),
        DataType::Int16 => a.as_primitive::<Int16Type>().value(i).to_string(),
        DataType::Int32 => a.as_primitive::<Int32Type>().value(i).to_string(),
        DataType::Int64 => a.as_primitive::<Int64Type>().value(i).to_string(),
        DataType::Float32 => format!("{:08x}", a.as_primitive::<Float32Type>().value(i).to_bits()),
        DataType::Float64 => format!("{:016x}", a.as_primitive::<Float64Type>().value(i).to_bits()),
        DataType::Decimal128(_, s) => decimal(a.as_primitive::<Decimal128Type>().value(i).to_string(), *s),
        DataType::Decimal256(_, s) => decimal(a.as_primitive::<Decimal256Type>().value(i).to_string(), *s),
        DataType::Utf8 => a.as_string::<i32>().value(i).to_owned(),
        DataType::Binary => a.as_binary::<i32>().value(i).iter().map(|b| format!("{b:02x}")).collect(),
        DataType::Date32 => a.as_primitive::<Date32Type>().value(i).to_string(),
        DataType::Timestamp(..) | DataType::Time64(_) => {
            let v = arrow::compute::cast(&a.slice(i, 1), &DataType::Int64).unwrap();
            v.as_primitive::<Int64Type>().value(0).to_string()
        }
        DataType::List(_) => {
            let l = a.as_list::<i32>().value(i);
            return Value::Array((0..l.len()).map(|j| render(&l, j)).collect());
        }
        t => panic!("unexpected type {t}"),
    };
    Value::String(s)
}

/// An unscaled decimal integer as PostgreSQL prints it at `scale`.
fn decimal(unscaled: String, scale: i8) -> String {
    let (sign, digits) = unscaled.strip_prefix('-').map_or(("", unscaled.as_str()), |d| ("-", d));
    let s = scale as usize;
    let digits = format!("{digits:0>width$}", width = s + 1);
    let (int, frac) = digits.split_at(digits.len() - s);
    if s == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

/// `time` as the default STRING form writes it: `HH:MM:SS.ffffff`, fixed width.
const TIME_TEXT: &str = "rpad(@::text || CASE WHEN position('.' in @::text) = 0 THEN '.' ELSE '' END, 15, '0')";
/// `time` as TIME(MICROS) renders: microseconds since midnight.
const TIME_MICROS: &str = "(extract(epoch FROM @) * 1000000)::bigint::text";

/// Columns of the fidelity table: name, SQL type, and a SQL expression over `@` giving the text
/// `render` must produce.
const COLUMNS: &[(&str, &str, &str)] = &[
    ("b", "bool", "@::text"),
    ("i2", "int2", "@::text"),
    ("i4", "int4", "@::text"),
    ("i8", "int8", "@::text"),
    ("f4", "float4", "encode(float4send(@), 'hex')"),
    ("f8", "float8", "encode(float8send(@), 'hex')"),
    ("n12", "numeric(12,2)", "@::text"),
    ("n38", "numeric(38,10)", "@::text"),
    ("n50", "numeric(50,5)", "@::text"),
    ("nu", "numeric", "@::text"),
    ("tx", "text", "@::text"),
    ("vc", "varchar(10)", "@::text"),
    ("bp", "char(5)", "to_json(@) #>> '{}'"),
    ("nm", "name", "@::text"),
    ("by", "bytea", "encode(@, 'hex')"),
    ("u", "uuid", "@::text"),
    ("d", "date", "(@ - date '1970-01-01')::text"),
    ("ts", "timestamp", "(extract(epoch FROM @) * 1000000)::bigint::text"),
    ("tstz", "timestamptz", "(extract(epoch FROM @) * 1000000)::bigint::text"),
    ("tm", "time", TIME_TEXT),
    ("js", "json", "@::text"),
    ("jb", "jsonb", "@::text"),
    ("en", "mood", "@::text"),
    ("iv", "interval", "@::text"),
    ("ip", "inet", "@::text"),
    ("ai", "int4[]", "@::text"),
    ("at", "text[]", "@::text"),
    ("ae", "int4[]", "@::text"),
    ("an", "numeric(12,2)[]", "@::text"),
    ("atz", "timestamptz[]", "(extract(epoch FROM @) * 1000000)::bigint::text"),
    ("av", "varchar[]", "@::text"),
];

const ROWS: &str = r#"
INSERT INTO image (id) VALUES (1);
INSERT INTO image VALUES (2, false, -32768, -2147483648, -9223372036854775808, 'NaN', 'NaN', -9999999999.99,
  '-9999999999999999999999999999.9999999999', '-123456789012345678901234567890123456789012345.12345',
  '1234567890123456789012345678901234567890.123', repeat('é€😀x', 50000), 'ünï', 'ab', 'nm',
  (SELECT string_agg(set_byte('\x00'::bytea, 0, i % 256), '') FROM generate_series(0, 1048575) i),
  'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '4713-01-01 BC', '4713-01-01 00:00:00 BC', '4713-01-01 00:00:00+00 BC',
  '00:00:00', '{ "a" : [1, 2],  "b":"x" }', '{"b": [1, 2], "a": null}', 'sad', '1 year 2 mons -3 days 04:05:06.789',
  '192.168.1.0/24', '{1,NULL,3}', '{"a\"b","c,d",NULL,"","x y"}', '{}', '{1.50,NULL,-0.01}',
  '{"2020-01-01 00:00:00+00",NULL}', '{"a ",b}');
INSERT INTO image VALUES (3, true, 32767, 2147483647, 9223372036854775807, 'Infinity', '1.7976931348623157e308', 9999999999.99,
  '9999999999999999999999999999.9999999999', '99999999999999999999999999999999999999999999.99999',
  'NaN', '', '', '', '', '', '00000000-0000-0000-0000-000000000000', '294276-12-31', '294246-12-31 23:59:59.999999',
  '294246-12-31 23:59:59.999999+00', '24:00:00', '[]', '{}', 'happy', '-1 days', '::1', '{}', '{}', '{}', '{}', '{}', '{}');
INSERT INTO image (id, f4, f8, nu) VALUES (4, '-Infinity', '-Infinity', '-Infinity'), (5, '-0', '-0', '0.000'),
  (6, '1.4e-45', '5e-324', '-1e-20'), (7, '3.4028235e38', '2.2250738585072014e-308', '1e20');
"#;

fn fidelity_schema() -> String {
    let cols: Vec<String> = COLUMNS.iter().map(|(n, t, _)| format!("{n} {t}")).collect();
    format!(
        "CREATE TYPE mood AS ENUM ('sad', 'happy');
         CREATE TABLE image (id int PRIMARY KEY, {});
         COMMENT ON TABLE image IS 'Images, one row each';
         COMMENT ON COLUMN image.n12 IS 'Price in euros';",
        cols.join(", ")
    )
}

/// PostgreSQL's own rendering of every cell: rows of [id, col…] as JSON; `time_expr`
/// renders the `time` column.
fn expected(pg: &Postgres, time_expr: &str) -> Vec<Vec<Value>> {
    let cells: Vec<String> = COLUMNS
        .iter()
        .map(|&(n, t, e)| (n, t, if n == "tm" { time_expr } else { e }))
        .map(|(n, t, e)| {
            if t.ends_with("[]") {
                let elem = e.replace('@', "e");
                format!(
                    "CASE WHEN {n} IS NULL THEN NULL ELSE coalesce((SELECT json_agg({elem} ORDER BY o) FROM unnest({n}) WITH ORDINALITY AS u(e, o)), '[]') END"
                )
            } else {
                e.replace('@', n)
            }
        })
        .collect();
    let sql = format!(
        "SELECT json_agg(json_build_array(id::text, {}) ORDER BY id) FROM image",
        cells.join(", ")
    );
    let out = pg.psql(DB, &sql);
    let rows: Vec<Vec<Value>> = serde_json::from_str(out.trim()).unwrap();
    rows
}

/// The defaults: numeric wider than 38 digits and time as exact text, which every common
/// reader opens (tests/it/readers.rs reads them with six).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn types_are_exact() {
    types_are_exact_with(TypeChoices::default()).await;
}

/// `spec.output.wideNumeric: decimal` and `time: time`: DECIMAL(50,5) on 256 bits, TIME(MICROS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_richer_types_on_request_are_exact_too() {
    types_are_exact_with(TypeChoices {
        wide_numeric: WideNumeric::Decimal,
        time: TimeOfDay::Time,
    })
    .await;
}

async fn types_are_exact_with(choices: TypeChoices) {
    let rich = choices.time == TimeOfDay::Time;
    let pg = start(&(fidelity_schema() + ROWS));
    let dir = tempfile::tempdir().unwrap();
    let opts = PgOptions {
        types: choices,
        ..PgOptions::default()
    };
    let summary = run(&pg, dir.path(), "SELECT * FROM {media_type}", Some("image"), &opts)
        .await
        .unwrap();
    assert_eq!((summary.rows, summary.parts.len(), summary.streams), (7, 1, 1));
    assert_eq!(summary.table_description.as_deref(), Some("Images, one row each"));
    let col = |n: &str| summary.columns.iter().find(|c| c.name == n).unwrap();
    assert_eq!((col("id").nullable, col("b").nullable), (false, true));
    assert_eq!(
        (col("n12").pg_type.as_str(), col("n12").parquet_type.as_str()),
        ("numeric(12,2)", "DECIMAL(12,2)")
    );
    assert_eq!(col("n12").description.as_deref(), Some("Price in euros"));
    assert_eq!(
        (col("at").pg_type.as_str(), col("at").parquet_type.as_str()),
        ("text[]", "LIST<STRING>")
    );
    assert_eq!(col("jb").parquet_type, "STRING (JSON)");
    let (n50, tm) = if rich {
        ("DECIMAL(50,5)", "TIME(MICROS)")
    } else {
        ("STRING (numeric(50,5) text)", "STRING (time HH:MM:SS.ffffff)")
    };
    assert_eq!((col("n50").parquet_type.as_str(), col("tm").parquet_type.as_str()), (n50, tm));
    assert_eq!(
        (col("iv").parquet_type.as_str(), col("nu").parquet_type.as_str()),
        ("STRING", "STRING")
    );

    let batches = read(dir.path(), &summary);
    let want = expected(&pg, if rich { TIME_MICROS } else { TIME_TEXT });
    let mut got = Vec::new();
    for b in &batches {
        for i in 0..b.num_rows() {
            got.push((0..b.num_columns()).map(|c| render(b.column(c), i)).collect::<Vec<_>>());
        }
    }
    got.sort_by_key(|r| r[0].as_str().unwrap().parse::<i32>().unwrap());
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        for (c, (gv, wv)) in g.iter().zip(w).enumerate() {
            let name = if c == 0 { "id" } else { COLUMNS[c - 1].0 };
            assert!(
                gv == wv,
                "row {} column {name}: got {:.200} want {:.200}",
                w[0],
                gv.to_string(),
                wv.to_string()
            );
        }
    }

    // Parquet logical types and metadata.
    let file = std::fs::File::open(dir.path().join(&summary.parts[0].name)).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let meta = builder.metadata().file_metadata();
    assert!(
        meta.created_by().unwrap().starts_with("datadump-operator"),
        "{:?}",
        meta.created_by()
    );
    let kv = meta.key_value_metadata().unwrap();
    assert!(
        kv.iter()
            .any(|k| k.key == "description" && k.value.as_deref() == Some("Images, one row each"))
    );
    let root = meta.schema_descr().root_schema();
    let logical = |n: &str| {
        root.get_fields()
            .iter()
            .find(|f| f.name() == n)
            .unwrap()
            .get_basic_info()
            .logical_type_ref()
            .cloned()
    };
    assert!(matches!(
        logical("n12"),
        Some(LogicalType::Decimal(DecimalType { scale: 2, precision: 12 }))
    ));
    if rich {
        assert!(matches!(
            logical("n50"),
            Some(LogicalType::Decimal(DecimalType { scale: 5, precision: 50 }))
        ));
        assert!(matches!(logical("tm"), Some(LogicalType::Time { .. })));
    } else {
        assert_eq!(
            (logical("n50"), logical("tm")),
            (Some(LogicalType::String), Some(LogicalType::String))
        );
    }
    assert_eq!(logical("js"), Some(LogicalType::Json));
    assert_eq!(logical("jb"), Some(LogicalType::Json));
    assert!(matches!(
        logical("ts"),
        Some(LogicalType::Timestamp(TimestampType {
            is_adjusted_to_u_t_c: false,
            ..
        }))
    ));
    assert!(matches!(
        logical("tstz"),
        Some(LogicalType::Timestamp(TimestampType {
            is_adjusted_to_u_t_c: true,
            ..
        }))
    ));
    assert_eq!(logical("ai"), Some(LogicalType::List));
    let schema = builder.schema();
    assert_eq!(
        schema.metadata().get("description").map(String::as_str),
        Some("Images, one row each")
    );
    assert_eq!(
        schema
            .field_with_name("n12")
            .unwrap()
            .metadata()
            .get("description")
            .map(String::as_str),
        Some("Price in euros")
    );
    assert_eq!(
        schema.field_with_name("at").unwrap().metadata().get("pg_type").map(String::as_str),
        Some("text[]")
    );

    pyarrow_agrees(&dir.path().join(&summary.parts[0].name), &want, rich);
}

/// pyarrow reads the file independently; its values must match PostgreSQL's.
fn pyarrow_agrees(path: &Path, want: &[Vec<Value>], rich: bool) {
    let python = crate::support::moto::venv_bin().join("python");
    let script = r#"
import json, struct, sys
import pyarrow.parquet as pq
f = pq.ParquetFile(sys.argv[1])
t = f.read().sort_by("id")
out = {"types": {n: str(t.schema.field(n).type) for n in ["n12", "n50", "ts", "tstz", "tm", "d", "ai", "jb", "by"]},
       "logical": {f.schema.column(i).name: str(f.schema.column(i).logical_type) for i in range(len(f.schema)) if f.schema.column(i).name in ("js", "tstz")},
       "desc": (t.schema.field("n12").metadata or {}).get(b"description", b"").decode(),
       "n12": [None if v is None else str(v) for v in t["n12"].to_pylist()],
       "n50": [None if v is None else str(v) for v in t["n50"].to_pylist()],
       "f8": [None if v is None else struct.pack(">d", v).hex() for v in t["f8"].to_pylist()],
       "u": t["u"].to_pylist(), "bp": t["bp"].to_pylist(), "js": t["js"].to_pylist(),
       "tstz": [None if v is None else str(v) for v in t["tstz"].cast("int64").to_pylist()],
       "ai": t["ai"].to_pylist(), "at": t["at"].to_pylist(),
       "tx_len": [None if v is None else len(v) for v in t["tx"].to_pylist()]}
print(json.dumps(out))
"#;
    let out = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .expect("run the venv's python");
    assert!(out.status.success(), "pyarrow: {}", String::from_utf8_lossy(&out.stderr));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (n50, tm) = if rich {
        ("decimal256(50, 5)", "time64[us]")
    } else {
        ("string", "string")
    };
    assert_eq!(
        got["types"],
        json!({"n12": "decimal128(12, 2)", "n50": n50, "ts": "timestamp[us]", "tstz": "timestamp[us, tz=UTC]", "tm": tm,
               "d": "date32[day]", "ai": "list<item: int32>", "jb": "extension<arrow.json>", "by": "binary"})
    );
    assert!(got["logical"]["js"].as_str().unwrap().contains("JSON"), "{}", got["logical"]);
    assert!(
        got["logical"]["tstz"].as_str().unwrap().contains("isAdjustedToUTC=true"),
        "{}",
        got["logical"]
    );
    assert_eq!(got["desc"], "Price in euros");
    let column = |name: &str| -> Vec<Value> {
        let c = 1 + COLUMNS.iter().position(|(n, ..)| *n == name).unwrap();
        want.iter().map(|r| r[c].clone()).collect()
    };
    for name in ["n12", "n50", "f8", "u", "bp", "js", "tstz"] {
        assert_eq!(got[name], Value::Array(column(name)), "pyarrow column {name}");
    }
    let ints = |v: &Value| -> Value {
        match v {
            Value::Array(a) => Value::Array(
                a.iter()
                    .map(|e| e.as_str().map_or(Value::Null, |s| json!(s.parse::<i64>().unwrap())))
                    .collect(),
            ),
            other => other.clone(),
        }
    };
    assert_eq!(got["ai"], Value::Array(column("ai").iter().map(ints).collect()));
    assert_eq!(got["at"], Value::Array(column("at")));
    let lens: Vec<Value> = column("tx")
        .iter()
        .map(|v| v.as_str().map_or(Value::Null, |s| json!(s.chars().count())))
        .collect();
    assert_eq!(got["tx_len"], Value::Array(lens));
    assert_eq!(got["tx_len"][1], json!(200_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_without_parquet_counterpart_fail_with_a_fix() {
    let pg = start(
        "CREATE TABLE image (id int, ts timestamp, n numeric(10,2), a int4[]);
         INSERT INTO image VALUES (1, now(), 1.5, '{1}'), (2, 'infinity', 2, '{2}'), (3, now(), 'NaN', '{{1,2},{3,4}}');",
    );
    let dir = tempfile::tempdir().unwrap();
    let opts = PgOptions::default();
    let cases = [
        (
            "SELECT ts FROM {media_type} ORDER BY id",
            "column \"ts\" row 2: timestamp 'infinity' has no Parquet counterpart; fix: cast it in spec.query, e.g. NULLIF(ts, 'infinity') or ts::text",
        ),
        (
            "SELECT n FROM {media_type} ORDER BY id",
            "column \"n\" row 3: numeric 'NaN' has no Parquet DECIMAL counterpart; fix: cast it in spec.query, e.g. NULLIF(n, 'NaN') or n::text",
        ),
        (
            "SELECT id, a FROM {media_type} ORDER BY id",
            "column \"a\" row 3: array has 2 dimensions; only one-dimensional arrays become Parquet LIST; fix: cast it in spec.query, e.g. array_to_json(a)::jsonb or a::text",
        ),
        (
            "SELECT '294276-12-31'::timestamp AS t",
            "column \"t\" row 1: timestamp is outside the range of Parquet TIMESTAMP(MICROS); fix: cast it in spec.query, e.g. t::text",
        ),
    ];
    for (query, want) in cases {
        let e = run(&pg, dir.path(), query, Some("image"), &opts).await.unwrap_err();
        assert_eq!(e.to_string(), want);
        assert_eq!(e.metric_label(), "value");
    }
    let e = run(&pg, dir.path(), "SELECT id, id FROM {media_type}", None, &opts)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("more than one column named \"id\"") && e.to_string().contains("AS"),
        "{e}"
    );
    let e = run(&pg, dir.path(), "SELECT nope FROM {media_type}", None, &opts)
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "the query: column \"nope\" does not exist (SQLSTATE 42703)");
    assert!(std::error::Error::source(&e).is_some());
    // No file is left finished by a failed export.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let p = entry.unwrap().path();
        assert!(std::fs::metadata(&p).unwrap().len() < 100, "{} looks finished", p.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_refuses_writes() {
    let pg = start(
        "CREATE TABLE image (id int); INSERT INTO image SELECT generate_series(1, 3);
         CREATE FUNCTION wipe() RETURNS int LANGUAGE plpgsql AS $$BEGIN DELETE FROM image; RETURN 1; END$$;",
    );
    let dir = tempfile::tempdir().unwrap();
    for query in [
        "SELECT * FROM {media_type} WHERE wipe() = 1",
        "WITH d AS (DELETE FROM {media_type} RETURNING *) SELECT * FROM d",
    ] {
        let e = run(&pg, dir.path(), query, Some("image"), &PgOptions::default()).await.unwrap_err();
        assert!(
            e.to_string().contains("read-only transaction") && e.sqlstate() == Some("25006"),
            "{query}: {e}"
        );
        assert_eq!(pg.psql(DB, "SELECT count(*) FROM image").trim(), "3");
    }
}

/// `image` with `rows` rows over many pages.
fn catalog(rows: u32) -> String {
    format!(
        "CREATE TABLE image (id int PRIMARY KEY, title text NOT NULL, tags text[]);
         INSERT INTO image SELECT i, repeat(md5(i::text), 1 + i % 5), ARRAY[i::text, NULL] FROM generate_series(1, {rows}) i;
         ANALYZE image;"
    )
}

/// Sorted ids and a checksum of every row.
fn ids_and_checksum(batches: &[RecordBatch]) -> (Vec<i32>, u64) {
    let mut ids = Vec::new();
    let mut sum = 0u64;
    for b in batches {
        let id = b.column(0).as_primitive::<Int32Type>();
        let title = b.column(1).as_string::<i32>();
        for i in 0..b.num_rows() {
            ids.push(id.value(i));
            let h = title
                .value(i)
                .bytes()
                .fold(id.value(i) as u64, |h, c| h.wrapping_mul(31).wrapping_add(c as u64));
            sum = sum.wrapping_add(h);
        }
    }
    ids.sort_unstable();
    (ids, sum)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_streams_read_the_same_rows() {
    let pg = start(&catalog(30_000));
    let opts = |n| PgOptions {
        parallelism: n,
        row_group_bytes: 256 << 10,
        file_size_threshold: 1,
        batch_rows: 4096,
        ..PgOptions::default()
    };
    let template = "SELECT id, title, tags FROM {media_type} WHERE id % 7 <> 3";
    let mut results = Vec::new();
    for n in [1, 2, 3] {
        let dir = tempfile::tempdir().unwrap();
        let s = run(&pg, dir.path(), template, Some("image"), &opts(n)).await.unwrap();
        assert_eq!(s.streams, n);
        assert!(s.parts.len() > n, "several files per stream: {}", s.parts.len());
        assert_eq!(s.rows, s.parts.iter().map(|p| p.rows).sum::<u64>());
        results.push(ids_and_checksum(&read(dir.path(), &s)));
    }
    let want: usize = pg.psql(DB, "SELECT count(*) FROM image WHERE id % 7 <> 3").trim().parse().unwrap();
    assert_eq!(results[0].0.len(), want);
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0], results[2]);

    for template in [
        "SELECT id, title, tags FROM {media_type} ORDER BY id",
        "SELECT id, title, tags FROM {media_type} LIMIT 100000",
        "SELECT min(id) AS id, title, NULL::text[] AS tags FROM {media_type} GROUP BY title",
        "SELECT i.id, i.title, i.tags FROM {media_type} i JOIN image j USING (id)",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let s = run(&pg, dir.path(), template, Some("image"), &opts(2)).await.unwrap();
        assert_eq!(s.streams, 1, "{template}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stream_reads_one_snapshot() {
    let pg = Arc::new(start(&catalog(20_000)));
    for n in [1, 3] {
        let before = pg.psql(DB, "SELECT min(id) || ' ' || count(*) FROM image");
        let (min, count) = before.trim().split_once(' ').unwrap();
        let (min, count): (i32, u64) = (min.parse().unwrap(), count.parse().unwrap());
        let writer = pg.clone();
        let opts = PgOptions {
            parallelism: n,
            after_snapshot: Some(Arc::new(move || {
                writer.psql(
                    DB,
                    "INSERT INTO image SELECT i, 'late', NULL FROM generate_series(100001, 105000) i",
                );
                writer.psql(DB, "DELETE FROM image WHERE id <= 1000");
            })),
            ..PgOptions::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let s = run(&pg, dir.path(), "SELECT * FROM {media_type}", Some("image"), &opts)
            .await
            .unwrap();
        assert_eq!((s.streams, s.rows), (n, count), "{n} streams");
        let (ids, _) = ids_and_checksum(&read(dir.path(), &s));
        assert_eq!((ids.len() as u64, ids.first()), (count, Some(&min)), "rows deleted later are there");
        assert!(ids.iter().all(|id| *id <= 100_000), "rows inserted later are not");
        pg.psql(DB, "DELETE FROM image WHERE id > 100000");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_result_is_one_file_with_the_schema() {
    let pg = start("CREATE TABLE image (id int NOT NULL, title text, at timestamptz[]);");
    let dir = tempfile::tempdir().unwrap();
    let s = run(
        &pg,
        dir.path(),
        "SELECT * FROM {media_type}",
        Some("image"),
        &PgOptions {
            parallelism: 2,
            ..PgOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!((s.rows, s.parts.len(), s.streams), (0, 1, 1));
    let file = std::fs::File::open(dir.path().join(&s.parts[0].name)).unwrap();
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    assert_eq!(builder.metadata().file_metadata().num_rows(), 0);
    let names: Vec<&str> = builder.schema().fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "title", "at"]);
    assert!(!builder.schema().field(0).is_nullable());
    assert_eq!(s.parts[0].name, "image_01.parquet");
}

/// The widest decimals PostgreSQL holds in `numeric(76,10)`, `numeric(39,4)` and
/// `numeric(38,3)` (75, 39 and 38 digits, whose base-10000 groups are wider than the value),
/// read back exactly by the `parquet` crate and by pyarrow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_widest_numerics_read_back_exactly() {
    let n76 = format!("{}.{}", "9".repeat(65), "9".repeat(10));
    let n39 = format!("{}.{}", "9".repeat(35), "9".repeat(4));
    let n38 = format!("{}.{}", "9".repeat(35), "9".repeat(3));
    let pg = start(&format!(
        "CREATE TABLE image (id int, a numeric(76,10), b numeric(39,4), c numeric(38,3));
         INSERT INTO image VALUES (1, '{n76}', '{n39}', '{n38}'), (2, '-{n76}', '-{n39}', '-{n38}'),
           (3, '1234567.8912345678', '12345.6789', '1234.567'), (4, '-0.0000000001', '-0.0001', '-0.001');"
    ));
    let out = pg.psql(
        DB,
        "SELECT json_agg(json_build_array(a::text, b::text, c::text) ORDER BY id) FROM image",
    );
    let want: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(want[0][0], json!(n76));
    // the default (a and b as exact text) and `wideNumeric: decimal` (DECIMAL on 256 bits)
    for wide_numeric in [WideNumeric::String, WideNumeric::Decimal] {
        let dir = tempfile::tempdir().unwrap();
        let opts = PgOptions {
            types: TypeChoices {
                wide_numeric,
                ..TypeChoices::default()
            },
            ..PgOptions::default()
        };
        let s = run(&pg, dir.path(), "SELECT * FROM {media_type} ORDER BY id", Some("image"), &opts)
            .await
            .unwrap();
        let batches = read(dir.path(), &s);
        let wide = batches[0].schema().field(1).data_type().clone();
        assert_eq!(wide == DataType::Utf8, wide_numeric == WideNumeric::String, "{wide}");
        let got: Vec<Value> = batches
            .iter()
            .flat_map(|b| (0..b.num_rows()).map(move |i| json!((1..4).map(|c| render(b.column(c), i)).collect::<Vec<_>>())))
            .collect();
        assert_eq!(Value::Array(got), want);

        let python = crate::support::moto::venv_bin().join("python");
        let script = "import json, sys, pyarrow.parquet as pq\n\
            t = pq.read_table(sys.argv[1])\n\
            v = lambda x: x if isinstance(x, str) else format(x, 'f')\n\
            print(json.dumps([[v(t[c][i].as_py()) for c in ('a', 'b', 'c')] for i in range(t.num_rows)]))";
        let out = std::process::Command::new(&python)
            .args(["-c", script])
            .arg(dir.path().join(&s.parts[0].name))
            .output()
            .expect("run the venv's python");
        assert!(out.status.success(), "pyarrow: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap(), want);
    }
}
