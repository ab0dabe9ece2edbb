//! Every supported type, dumped by the `postgres` engine with its defaults, opened by the six
//! readers the dataset's users have (pyarrow, pandas, DuckDB, polars, Spark, `datasets`;
//! scripts/readers.py): each must open the file and give back, value for value and with the
//! Python type the README promises, what PostgreSQL holds (edge values and NULLs included).

use std::collections::BTreeMap;
use std::sync::Arc;

use datadump::worker::pg::{PgOptions, export};
use datadump::worker::sink::{DirSink, Progress};
use serde_json::{Value, json};

use crate::support::postgres::Postgres;

const DB: &str = "catalog";

/// name, SQL type, the reader-side kind (scripts/readers.py), and a SQL expression over `@`
/// giving the canonical text of a value of that kind.
const COLUMNS: &[(&str, &str, &str, &str)] = &[
    ("b", "bool", "bool", "@::text"),
    ("i2", "int2", "int", "@::text"),
    ("i4", "int4", "int", "@::text"),
    ("i8", "int8", "int", "@::text"),
    ("f4", "float4", "float", FLOAT),
    ("f8", "float8", "float", FLOAT),
    ("n12", "numeric(12,2)", "dec", "@::text"),
    ("n38", "numeric(38,10)", "dec", "@::text"),
    ("n50", "numeric(50,5)", "str", "@::text"),
    ("n76", "numeric(76,10)", "str", "@::text"),
    ("nu", "numeric", "str", "@::text"),
    ("tx", "text", "str", "@::text"),
    ("vc", "varchar(10)", "str", "@::text"),
    ("bp", "char(5)", "str", "to_json(@) #>> '{}'"),
    ("nm", "name", "str", "@::text"),
    ("u", "uuid", "str", "@::text"),
    ("by", "bytea", "bytes", "encode(@, 'hex')"),
    ("d", "date", "date", DATE),
    ("ts", "timestamp", "ts", TS),
    ("tstz", "timestamptz", "tstz", TSTZ),
    ("tm", "time", "str", TIME_TEXT),
    ("js", "json", "json", "@::text"),
    ("jb", "jsonb", "json", "@::text"),
    ("en", "mood", "str", "@::text"),
    ("iv", "interval", "str", "@::text"),
    ("ip", "inet", "str", "@::text"),
    ("ai", "int4[]", "list:int", "@::text"),
    ("at", "text[]", "list:str", "@::text"),
    ("an", "numeric(12,2)[]", "list:dec", "@::text"),
    ("aw", "numeric(40,2)[]", "list:str", "@::text"),
    ("ad", "date[]", "list:date", DATE),
    ("atz", "timestamptz[]", "list:tstz", TSTZ),
    ("atm", "time[]", "list:str", TIME_TEXT),
];

const DATE: &str = "to_char(@, 'YYYY-MM-DD')";
const TS: &str = "to_char(@, 'YYYY-MM-DD\"T\"HH24:MI:SS.US')";
const TSTZ: &str = "to_char(@ AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')";
const FLOAT: &str = "CASE WHEN @ = 'NaN' THEN 'NaN' ELSE encode(float8send(@::float8), 'hex') END";
const TIME_TEXT: &str = "rpad(@::text || CASE WHEN position('.' in @::text) = 0 THEN '.' ELSE '' END, 15, '0')";

/// Row 1 is all NULL; rows 2 and 3 the lows and highs; row 4 everyday values and NULL elements.
const ROWS: &str = r#"
INSERT INTO image (id) VALUES (1);
INSERT INTO image VALUES (2, false, -32768, -2147483648, -9223372036854775808, '-Infinity', 'NaN', -9999999999.99,
  '-9999999999999999999999999999.9999999999', '-123456789012345678901234567890123456789012345.12345',
  '-999999999999999999999999999999999999999999999999999999999999999999.9999999999', 'NaN', '', '', 'ab', 'nm',
  '00000000-0000-0000-0000-000000000000', '\x00ff'::bytea, '0001-01-01', '1000-01-01 00:00:00', '1000-01-01 00:00:00+00',
  '00:00:00', '[]', '{}', 'sad', '-1 days', '::1', '{}', '{}', '{}', '{}', '{}', '{}', '{}');
INSERT INTO image VALUES (3, true, 32767, 2147483647, 9223372036854775807, 'Infinity', '1.7976931348623157e308', 9999999999.99,
  '9999999999999999999999999999.9999999999', '99999999999999999999999999999999999999999999.99999',
  '999999999999999999999999999999999999999999999999999999999999999999.9999999999', '-1e-20', 'é€😀x', 'ünï', 'x', 'name',
  'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '', '9999-12-31', '9999-12-31 23:59:59.999999', '9999-12-31 23:59:59.999999+00',
  '24:00:00', '{ "a" : [1, 2],  "b":"x" }', '{"b": [1, 2], "a": null}', 'happy', '1 year 2 mons -3 days 04:05:06.789',
  '192.168.1.0/24', '{2147483647,-2147483648}', '{"a\"b","c,d",""}', '{9999999999.99}', '{-99999999999999999999999999999999999999.99}',
  '{0001-01-01,9999-12-31}', '{"2026-12-03 10:00:00.5+02"}', '{23:59:59.999999,24:00:00}');
INSERT INTO image VALUES (4, true, 0, 1, -1, '-0', '5e-324', 0.01, 0, 0.00001, 0, '1e20', 'line
two', 'ab cd', 'ab', 'n', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '\x'::bytea, '2026-12-03', '2026-12-03 12:34:56.789012',
  '2026-12-03 12:34:56.789012-05', '12:34:56.5', '{"k": "ü"}', '[1, "x", {"y": true}]', 'sad', '00:00:00.000001', '10.0.0.1',
  '{1,NULL,3}', '{NULL,"x y"}', '{1.50,NULL,-0.01}', '{NULL,0.10}', '{NULL,2026-12-03}', '{NULL,"1970-01-01 00:00:00+00"}',
  '{NULL,00:00:00.000001}');
"#;

/// Each reader's columns as canonical text, rows ordered by id, or its error.
fn read_with_every_reader(files: &[std::path::PathBuf]) -> BTreeMap<String, Value> {
    let kinds: BTreeMap<&str, &str> = std::iter::once(("id", "int"))
        .chain(COLUMNS.iter().map(|(n, _, k, _)| (*n, *k)))
        .collect();
    let out = std::process::Command::new(crate::support::moto::venv_bin().join("python"))
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/readers.py"))
        .args(["--key", "id", "--kinds", &serde_json::to_string(&kinds).unwrap()])
        .args(files)
        .output()
        .expect("run scripts/readers.py with the venv's python");
    assert!(out.status.success(), "readers.py: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("readers.py printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// A reader's column equals PostgreSQL's: text for text, and where a reader decodes the JSON
/// logical type (`datasets` gives dicts and lists; readers.py writes them `json:…`), the same
/// JSON value.
fn same(have: &Value, want: &Value) -> bool {
    let decoded = |h: &Value, w: &Value| match (h.as_str().and_then(|h| h.strip_prefix("json:")), w.as_str()) {
        (Some(h), Some(w)) => serde_json::from_str::<Value>(h).ok() == serde_json::from_str::<Value>(w).ok(),
        _ => false,
    };
    match (have, want) {
        (Value::Array(h), Value::Array(w)) => h.len() == w.len() && h.iter().zip(w).all(|(h, w)| h == w || decoded(h, w)),
        _ => have == want,
    }
}

/// PostgreSQL's canonical text of every column, ordered by id.
fn expected(pg: &Postgres) -> BTreeMap<String, Value> {
    let cells: Vec<String> = COLUMNS
        .iter()
        .map(|(n, t, _, e)| {
            let value = if t.ends_with("[]") {
                format!(
                    "CASE WHEN {n} IS NULL THEN NULL ELSE coalesce((SELECT json_agg({} ORDER BY o) FROM unnest({n}) WITH ORDINALITY AS u(e, o)), '[]') END",
                    e.replace('@', "e")
                )
            } else {
                format!("to_json({})", e.replace('@', n))
            };
            format!("'{n}', json_agg({value} ORDER BY id)")
        })
        .collect();
    let sql = format!(
        "SELECT json_build_object('id', json_agg(id::text ORDER BY id), {}) FROM image",
        cells.join(", ")
    );
    serde_json::from_str(pg.psql(DB, &sql).trim()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_opens_in_six_readers_with_its_exact_values() {
    let pg = Postgres::start();
    pg.create_database(DB);
    let cols: Vec<String> = COLUMNS.iter().map(|(n, t, ..)| format!("{n} {t}")).collect();
    pg.psql(
        DB,
        &format!(
            "CREATE TYPE mood AS ENUM ('sad', 'happy'); CREATE TABLE image (id int PRIMARY KEY, {}); {ROWS}",
            cols.join(", ")
        ),
    );
    let conninfo = pg.connection_string(DB);
    let dir = tempfile::tempdir().unwrap();
    let progress = Arc::new(Progress::default());
    let sink = Arc::new(DirSink::new(dir.path(), "image", progress.clone()).unwrap());
    let summary = export(
        &conninfo,
        "SELECT * FROM {media_type}",
        "image",
        Some("image"),
        &PgOptions::default(),
        sink,
        progress,
    )
    .await
    .unwrap();
    assert_eq!(summary.rows, 4);
    let files: Vec<_> = summary.parts.iter().map(|p| dir.path().join(&p.name)).collect();

    let want = expected(&pg);
    let got = read_with_every_reader(&files);
    let mut problems = Vec::new();
    for reader in ["pyarrow", "pandas", "pandas-numpy", "duckdb", "polars", "spark", "datasets"] {
        let Some(result) = got.get(reader) else {
            problems.push(format!("{reader}: did not run"));
            continue;
        };
        if let Some(e) = result.get("error") {
            problems.push(format!("{reader}: refused the file: {e}"));
            continue;
        }
        // pandas' default numpy dtypes must open the file; its values are checked with
        // dtype_backend="pyarrow" (numpy makes a nullable integer column float64)
        if reader == "pandas-numpy" {
            continue;
        }
        for (column, values) in &want {
            let have = &result["columns"][column];
            if !same(have, values) {
                problems.push(format!(
                    "{reader} column {column} (read as {}): got {have}, PostgreSQL has {values}",
                    result["types"][column]
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
    // the promised types, as two of the readers name them
    assert_eq!(
        [
            &got["pyarrow"]["types"]["n50"],
            &got["pyarrow"]["types"]["tm"],
            &got["spark"]["types"]["n38"]
        ],
        [&json!("string"), &json!("string"), &json!("decimal(38,10)")]
    );
}
