//! The worker's user data, end to end: the rendered script runs as a local bash child (as the
//! "local" backend will run it) against a real PostgreSQL, the real odbc2parquet and AWS CLI,
//! and moto's S3 and SSM; the tests then read everything back from S3.
//!
//! Needs on PATH (or in ~/.cargo/bin): odbc2parquet 11; the AWS CLI (`.venv/bin` first);
//! PostgreSQL 15 server binaries; unixODBC with the `PostgreSQL Unicode` driver registered.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use aws_sdk_s3::Client as S3;
use datadump::api::{DataDumpSpec, MediaType};
use datadump::worker::contract::{self, FailureReport, Manifest, ProgressReport, Stage, SuccessReport};
use datadump::worker::{WorkerJob, render};
use jiff::{SignedDuration, Timestamp};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::moto::Moto;
use crate::support::net::{free_port, wait_for};
use crate::support::postgres::Postgres;

const BUCKET: &str = "open-datasets";
const PREFIX: &str = "data-dump";
const DATE: &str = "2026-11-01";
const PARAMETER: &str = "/datadump/test/openledger";
const TOKEN: &str = "ddt-0123456789abcdef0123456789abcdef";
const DB: &str = "openledger";

/// `image`, Openverse-shaped: 100k generated rows plus rows with long, odd and NULL values.
const IMAGE_SQL: &str = r#"
CREATE TABLE image (
  id integer PRIMARY KEY, identifier uuid NOT NULL, created_on timestamptz NOT NULL,
  provider varchar(80), url varchar(3000) NOT NULL, width integer, license text NOT NULL,
  creator text, title text, meta_data jsonb, tags jsonb, keywords text[], watermarked boolean,
  standardized_popularity double precision);
INSERT INTO image SELECT g, md5(g::text)::uuid,
  timestamptz '2020-01-01 00:00:00+00' + g * interval '61 seconds',
  (ARRAY['flickr', 'wikimedia', 'stocksnap'])[1 + g % 3],
  'https://example.org/images/' || g || '.jpg',
  CASE WHEN g % 10 = 0 THEN NULL ELSE 100 + g % 4000 END,
  (ARRAY['by', 'by-sa', 'cc0'])[1 + g % 3],
  CASE WHEN g % 7 = 0 THEN NULL ELSE 'Créateur ' || g || ' 東京' END,
  'Title ' || g || ' – ünïcödé 🎨 ' || repeat('x', g % 200),
  jsonb_build_object('license_url', 'https://creativecommons.org/licenses/by/4.0/', 'views', g, 'description', repeat('d', g % 1500)),
  CASE WHEN g % 5 = 0 THEN NULL ELSE jsonb_build_array(jsonb_build_object('name', 'tag' || g % 100, 'accuracy', 0.9)) END,
  CASE WHEN g % 4 = 0 THEN NULL ELSE ARRAY['rock', 'pop ' || g % 10, NULL] END,
  CASE WHEN g % 3 = 0 THEN NULL ELSE g % 2 = 0 END,
  CASE WHEN g % 11 = 0 THEN NULL ELSE (g % 1000) / 1000.0 END
FROM generate_series(1, 100000) AS g;
INSERT INTO image VALUES
  (100001, gen_random_uuid(), now(), 'x', 'u', 1, 'by', E'tab\there "quote" back\\slash\nnew line',
   repeat('é', 20000), jsonb_build_object('long', repeat('y', 30000)), '[{"name": "a\"b"}]', ARRAY['a,b', 'c"d', '{e}'], true, 0.5),
  (100002, gen_random_uuid(), now(), NULL, 'u', NULL, 'cc0', NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"#;

/// `audio`: 40k rows of hard-to-compress text, for splitting into several parts.
const AUDIO_SQL: &str = r#"
CREATE TABLE audio (id integer PRIMARY KEY, identifier uuid, title text, genres text[], duration integer,
  meta_data jsonb, created_on timestamptz, standardized_popularity double precision);
INSERT INTO audio SELECT g, md5(g::text)::uuid, 'Track ' || md5(g::text) || ' ' || md5((g * 31)::text),
  ARRAY['genre ' || g % 20], 1000 + g, jsonb_build_object('a', md5((g * 7)::text), 'b', md5((g * 13)::text)),
  timestamptz '2021-01-01 00:00:00+00' + g * interval '1 hour', g / 40000.0
FROM generate_series(1, 40000) AS g;
"#;

/// One test's world: PostgreSQL with the connection string in SSM, moto with the bucket.
struct World {
    pg: Postgres,
    moto: Moto,
    s3: S3,
    dir: tempfile::TempDir,
}

impl World {
    async fn new(tables: &[&str]) -> World {
        let pg = Postgres::start();
        pg.create_database(DB);
        for sql in tables {
            pg.psql(DB, sql);
        }
        let moto = Moto::start().await;
        moto.create_bucket(BUCKET).await;
        let world = World {
            s3: moto.s3().await,
            pg,
            moto,
            dir: tempfile::tempdir().unwrap(),
        };
        world.put_connection_string(&world.pg.odbc_connection_string(DB)).await;
        world
    }

    async fn put_connection_string(&self, value: &str) {
        let ssm = self.moto.ssm().await;
        ssm.put_parameter()
            .name(PARAMETER)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .overwrite(true)
            .send()
            .await
            .unwrap();
    }

    fn prefix(&self, media: &str) -> String {
        contract::media_prefix(PREFIX, DATE, media)
    }

    async fn list(&self, media: &str) -> Vec<aws_sdk_s3::types::Object> {
        let out = self
            .s3
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix(self.prefix(media))
            .send()
            .await
            .unwrap();
        out.contents().to_vec()
    }

    async fn get(&self, key: &str) -> Option<(Vec<u8>, Option<String>)> {
        let out = self.s3.get_object().bucket(BUCKET).key(key).send().await.ok()?;
        let sha = out.metadata().and_then(|m| m.get("sha256").cloned());
        Some((out.body.collect().await.unwrap().into_bytes().to_vec(), sha))
    }

    async fn json<T: serde::de::DeserializeOwned>(&self, media: &str, name: &str) -> Option<T> {
        let (body, _) = self.get(&format!("{}{name}", self.prefix(media))).await?;
        Some(serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{name}: {e}: {}", String::from_utf8_lossy(&body))))
    }

    /// Renders the user data and runs it like EC2 would, with the local overrides; waits for
    /// `_success` or `_failure` (the shutdown stub holds the script until the test has looked).
    async fn run(&self, spec: &DataDumpSpec, media: &str, deadline: Timestamp) -> Run {
        let media_type = MediaType(media.into());
        let job = WorkerJob {
            spec,
            media_type: &media_type,
            dump_date: DATE,
            attempt: 3,
            token: TOKEN,
            deadline,
            ssm_parameter: PARAMETER,
            region: "us-east-1",
        };
        let script = render(&job).expect("render");
        let dir = self.dir.path().join(media);
        std::fs::create_dir_all(&dir).unwrap();
        let user_data = dir.join("user-data");
        std::fs::write(&user_data, &script).unwrap();
        let stub = dir.join("shutdown-stub");
        std::fs::write(
            &stub,
            "#!/bin/sh\nd=$(dirname \"$0\")\necho \"$*\" >> \"$d/shutdown.log\"\n\
             if [ \"$1\" = now ]; then while [ ! -e \"$d/release\" ]; do sleep 0.05; done; fi\n",
        )
        .unwrap();
        std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let workdir = dir.join("work");
        let started = Instant::now();
        let mut child = tokio::process::Command::new("bash")
            .arg(&user_data)
            .envs(self.moto.child_env())
            .env("PATH", crate::support::moto::worker_path())
            .env("DATADUMP_SHUTDOWN_CMD", &stub)
            .env("DATADUMP_WORKDIR", &workdir)
            .env("DATADUMP_SKIP_INSTALL", "1")
            .env("DATADUMP_PROGRESS_INTERVAL", "1")
            .env("DATADUMP_POLL_INTERVAL", "0.1")
            .env_remove("DATADUMP_LIB")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("bash");
        let prefix = self.prefix(media);
        // What a reader sees the moment `_success` (or `_failure`) appears.
        let seen = wait_for("the worker's _success or _failure", Duration::from_secs(180), || async {
            let listed = self.list(media).await;
            let has = |name: &str| listed.iter().any(|o| o.key() == Some(&format!("{prefix}{name}")[..]));
            (has(contract::SUCCESS) || has(contract::FAILURE)).then_some(listed)
        })
        .await;
        std::fs::write(dir.join("release"), "").unwrap();
        let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
            .await
            .expect("the worker exits")
            .unwrap();
        let log = std::fs::read_to_string(workdir.join("worker.log")).unwrap_or_default();
        let shutdown = std::fs::read_to_string(dir.join("shutdown.log"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect();
        Run {
            status,
            log,
            shutdown,
            script,
            seen,
            elapsed: started.elapsed(),
            workdir,
        }
    }
}

struct Run {
    status: ExitStatus,
    log: String,
    shutdown: Vec<String>,
    script: String,
    /// The listing at the moment `_success` or `_failure` first appeared.
    seen: Vec<aws_sdk_s3::types::Object>,
    elapsed: Duration,
    workdir: PathBuf,
}


fn spec(yaml_extra: &str) -> DataDumpSpec {
    serde_yaml::from_str(&format!(
        "mediaTypes: [image, audio]\ndestination: {{bucket: {BUCKET}, prefix: {PREFIX}}}\ndatabase: {{ssmParameterName: {PARAMETER}}}\n{yaml_extra}"
    ))
    .unwrap()
}

fn in_an_hour() -> Timestamp {
    Timestamp::now() + SignedDuration::from_hours(1)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A Parquet value as JSON, numbers as f64 (timestamps as microseconds).
fn field_json(f: &Field) -> Value {
    let num = |v: f64| Value::from(v);
    match f {
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Bool(*b),
        Field::Short(v) => num(*v as f64),
        Field::Int(v) => num(*v as f64),
        Field::Long(v) => num(*v as f64),
        Field::Float(v) => num(*v as f64),
        Field::Double(v) => num(*v),
        Field::Str(s) => Value::String(s.clone()),
        Field::TimestampMicros(v) => num(*v as f64),
        Field::TimestampMillis(v) => num(*v as f64 * 1000.0),
        other => Value::String(format!("unexpected {other:?}")),
    }
}

/// Numbers as f64, so 0 and 0.0 compare equal.
fn canonical(v: Value) -> Value {
    match v {
        Value::Number(n) => Value::from(n.as_f64().unwrap()),
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, canonical(v))).collect()),
        other => other,
    }
}

/// A reader over a Parquet file's bytes.
fn parquet(bytes: &[u8]) -> SerializedFileReader<std::fs::File> {
    use std::io::{Seek, Write};
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(bytes).unwrap();
    f.rewind().unwrap();
    SerializedFileReader::new(f).expect("a readable Parquet file")
}

/// Every row of every part, by `id`.
fn parquet_rows(parts: &[Vec<u8>]) -> BTreeMap<i64, Value> {
    let mut rows = BTreeMap::new();
    for bytes in parts {
        for row in parquet(bytes).get_row_iter(None).unwrap() {
            let row = row.unwrap();
            let obj: serde_json::Map<String, Value> = row.get_column_iter().map(|(k, f)| (k.clone(), field_json(f))).collect();
            let id = obj["id"].as_f64().unwrap() as i64;
            assert!(rows.insert(id, canonical(Value::Object(obj))).is_none(), "row {id} twice");
        }
    }
    rows
}

/// The table's rows as PostgreSQL sees them, in the shapes odbc2parquet writes: jsonb and
/// arrays as their text, timestamptz as UTC microseconds.
fn table_rows(pg: &Postgres, sql_select: &str) -> BTreeMap<i64, Value> {
    pg.psql(DB, &format!("SELECT row_to_json(t)::text FROM ({sql_select}) t"))
        .lines()
        .map(|l| {
            let v = canonical(serde_json::from_str(l).unwrap());
            (v["id"].as_f64().unwrap() as i64, v)
        })
        .collect()
}

fn part_keys(listed: &[aws_sdk_s3::types::Object]) -> Vec<String> {
    listed
        .iter()
        .filter_map(|o| o.key())
        .filter(|k| contract::is_part(k))
        .map(String::from)
        .collect()
}

/// Checks the manifest against S3 (keys, sizes, SHA-256 of the bytes and the metadata) and
/// returns the parts' bytes in manifest order.
async fn check_manifest(w: &World, media: &str, manifest: &Manifest) -> Vec<Vec<u8>> {
    let listed = w.list(media).await;
    assert_eq!(
        manifest.files.iter().map(|f| f.key.clone()).collect::<Vec<_>>(),
        part_keys(&listed),
        "manifest lists exactly the parts"
    );
    let mut parts = Vec::new();
    for f in &manifest.files {
        let (body, meta_sha) = w.get(&f.key).await.unwrap();
        assert_eq!(body.len() as u64, f.size, "{}", f.key);
        assert_eq!(sha256_hex(&body), f.sha256, "{}", f.key);
        assert_eq!(meta_sha.as_deref(), Some(f.sha256.as_str()), "{} x-amz-meta-sha256", f.key);
        let rows = parquet(&body).metadata().file_metadata().num_rows();
        assert_eq!(Some(rows as u64), f.rows, "{} rows", f.key);
        parts.push(body);
    }
    assert_eq!(manifest.rows, Some(manifest.files.iter().map(|f| f.rows.unwrap()).sum()));
    parts
}

/// No secret anywhere: the rendered user data, the log, and every object the worker wrote.
async fn assert_no_secrets(w: &World, media: &str, run: &Run, secrets: &[&str]) {
    let mut texts = vec![
        ("user data".to_string(), run.script.clone().into_bytes()),
        ("log".into(), run.log.clone().into_bytes()),
    ];
    for o in w.list(media).await {
        let key = o.key().unwrap().to_string();
        texts.push((key.clone(), w.get(&key).await.unwrap().0));
    }
    for (what, bytes) in texts {
        for secret in secrets {
            assert!(
                !bytes.windows(secret.len()).any(|win| win == secret.as_bytes()),
                "{secret:?} found in {what}"
            );
        }
    }
}

/// The order in which the worker wrote objects, from its own log.
fn write_order(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| {
            l.split_once(" wrote ")
                .map(|(_, k)| k.to_string())
                .or_else(|| l.split_once(" uploaded ").map(|(_, r)| r.split(' ').next().unwrap().to_string()))
        })
        .collect()
}

fn assert_shut_down(run: &Run, deadline_minutes: std::ops::RangeInclusive<i64>) {
    assert_eq!(run.shutdown.len(), 2, "schedule, then shutdown: {:?}\n{}", run.shutdown, run.log);
    let minutes: i64 = run.shutdown[0]
        .strip_prefix('+')
        .and_then(|m| m.parse().ok())
        .expect("+MINUTES first");
    assert!(deadline_minutes.contains(&minutes), "scheduled in {minutes} minutes");
    assert_eq!(run.shutdown[1], "now");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dumps_a_table_to_parquet_on_s3_and_writes_success_last() {
    let w = World::new(&[IMAGE_SQL]).await;
    // A database whose sessions default to another zone: timestamptz must still come out UTC.
    w.pg.psql(DB, &format!("ALTER DATABASE {DB} SET timezone TO 'America/New_York'"));
    let run = w.run(&spec(""), "image", in_an_hour()).await;
    assert!(run.status.success(), "{}", run.log);
    eprintln!("image: 100k rows dumped and verified by the worker in {:?}", run.elapsed);

    // The moment `_success` appeared, everything in the manifest was already there.
    let prefix = w.prefix("image");
    let seen: BTreeMap<String, i64> = run.seen.iter().map(|o| (o.key().unwrap().to_string(), o.size().unwrap())).collect();
    let manifest: Manifest = w.json("image", contract::MANIFEST).await.expect("_manifest.json");
    assert!(seen.contains_key(&format!("{prefix}{}", contract::MANIFEST)));
    for f in &manifest.files {
        assert_eq!(seen.get(&f.key), Some(&(f.size as i64)), "{} present when _success appeared", f.key);
    }
    // ... and by the worker's own record, `_success` was its last write, after the manifest.
    let order = write_order(&run.log);
    assert_eq!(order.last(), Some(&format!("{prefix}{}", contract::SUCCESS)), "{order:?}");
    assert_eq!(order[order.len() - 2], format!("{prefix}{}", contract::MANIFEST));
    let listed = w.list("image").await;
    let modified = |name: &str| {
        listed
            .iter()
            .find(|o| o.key() == Some(&format!("{prefix}{name}")[..]))
            .and_then(|o| o.last_modified().cloned())
            .unwrap()
    };
    assert!(listed.iter().all(|o| o.last_modified().unwrap() <= &modified(contract::SUCCESS)));
    assert!(!listed.iter().any(|o| o.key().unwrap().ends_with(contract::FAILURE)));

    // The manifest matches S3, and the Parquet rows match the table, value for value.
    let parts = check_manifest(&w, "image", &manifest).await;
    assert_eq!(manifest.files.len(), 1);
    assert_eq!(manifest.files[0].key, format!("{prefix}image_01.parquet"));
    assert_eq!(
        (manifest.rows, manifest.attempt, manifest.token.as_str()),
        (Some(100_002), 3, TOKEN)
    );
    assert_eq!(
        (
            manifest.media_type.as_str(),
            manifest.dump_date.as_str(),
            manifest.odbc2parquet_version.as_str()
        ),
        ("image", DATE, "11.0.1")
    );
    // uuid arrives as the driver's upper-case GUID text. KNOWN LIMITATION (odbc2parquet 11 with
    // psqlODBC): `double precision` arrives as a 32-bit FLOAT, because the driver reports
    // SQL_DESC_PRECISION 0 for float8 and odbc2parquet maps precision <= 24 to FLOAT. Pinned
    // here so that a fix upstream shows up as a failing test.
    let expected = table_rows(
        &w.pg,
        "SELECT id, upper(identifier::text) AS identifier, (extract(epoch FROM created_on) * 1000000)::bigint AS created_on, provider, url, \
         width, license, creator, title, meta_data::text AS meta_data, tags::text AS tags, keywords::text AS keywords, watermarked, \
         standardized_popularity::float4::float8 AS standardized_popularity FROM image",
    );
    let schema = parquet(&parts[0]).metadata().file_metadata().schema_descr_ptr();
    let popularity = schema.columns().iter().find(|c| c.name() == "standardized_popularity").unwrap();
    assert_eq!(
        popularity.physical_type(),
        parquet::basic::Type::FLOAT,
        "float8 is still narrowed to FLOAT: update the note above"
    );
    let got = parquet_rows(&parts);
    assert_eq!(got.len(), expected.len());
    for (id, row) in &expected {
        assert_eq!(got.get(id), Some(row), "row {id}");
    }

    let success: SuccessReport = w.json("image", contract::SUCCESS).await.unwrap();
    assert_eq!(
        (success.files, success.bytes, success.rows, success.token.as_str()),
        (1, manifest.bytes(), Some(100_002), TOKEN)
    );
    let progress: ProgressReport = w.json("image", contract::PROGRESS).await.unwrap();
    assert_eq!(
        (progress.stage, progress.files, progress.bytes, progress.rows, progress.attempt),
        (Stage::Finishing, 1, manifest.bytes(), Some(100_002), 3)
    );
    assert!(
        run.log
            .contains("added UseDeclareFetch=1 Fetch=20000 BoolsAsChar=0 UnknownsAsLongVarchar=1 MaxLongVarcharSize=65536"),
        "{}",
        run.log
    );
    assert_shut_down(&run, 60..=62);
    let conn = w.pg.odbc_connection_string(DB);
    assert_no_secrets(&w, "image", &run, &[w.pg.password(), &conn]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_file_size_threshold_splits_the_table_into_parts() {
    let w = World::new(&[AUDIO_SQL, "CREATE TABLE video (id integer, title text, tags text[])"]).await;
    // An extra flag that overrides a default must not be passed twice (odbc2parquet refuses).
    // The query pauses every 10k rows, so parts complete while odbc2parquet is still running.
    let s = spec(
        "query: 'SELECT a.* FROM {media_type} a WHERE a.id % 10000 <> 0 OR pg_sleep(1) IS NOT NULL'\n\
         odbc2parquet: {fileSizeThreshold: 1MiB, extraArgs: ['--batch-size-memory=16MiB']}",
    );
    let run = w.run(&s, "audio", in_an_hour()).await;
    assert!(run.status.success(), "{}", run.log);
    let first_upload = run.log.find(" uploaded ").expect("an upload");
    let done = run.log.find("Done total_rows_fetched=").expect("odbc2parquet's final line");
    assert!(
        first_upload < done,
        "parts are uploaded while odbc2parquet still runs:\n{}",
        run.log
    );
    let manifest: Manifest = w.json("audio", contract::MANIFEST).await.unwrap();
    let parts = check_manifest(&w, "audio", &manifest).await;
    assert!(parts.len() >= 3, "{} parts", parts.len());
    let names: Vec<String> = (1..=parts.len())
        .map(|n| format!("{}audio_{n:02}.parquet", w.prefix("audio")))
        .collect();
    assert_eq!(manifest.files.iter().map(|f| f.key.clone()).collect::<Vec<_>>(), names);
    assert_eq!(manifest.rows, Some(40_000));
    let rows = parquet_rows(&parts);
    assert_eq!(rows.keys().copied().collect::<Vec<_>>(), (1..=40_000).collect::<Vec<i64>>());
    assert!(
        manifest.files[..parts.len() - 1].iter().all(|f| f.size >= 1 << 20),
        "every part but the last reaches the threshold"
    );
    assert!(
        !std::fs::read_dir(run.workdir.join("data")).unwrap().any(|_| true),
        "uploaded parts are deleted locally"
    );

    // An empty table still gives one part: the schema, no rows.
    let run = w.run(&spec(""), "video", in_an_hour()).await;
    assert!(run.status.success(), "{}", run.log);
    let manifest: Manifest = w.json("video", contract::MANIFEST).await.unwrap();
    check_manifest(&w, "video", &manifest).await;
    assert_eq!((manifest.files.len(), manifest.rows, manifest.files[0].rows), (1, Some(0), Some(0)));
}

/// Runs a worker that must fail; returns its `_failure` after the common checks.
async fn failing_run(w: &World, spec: &DataDumpSpec, media: &str, deadline: Timestamp) -> (Run, FailureReport) {
    let run = w.run(spec, media, deadline).await;
    assert!(!run.status.success(), "{}", run.log);
    let failure: FailureReport = w.json(media, contract::FAILURE).await.expect("_failure");
    assert_eq!((failure.attempt, failure.token.as_str()), (3, TOKEN));
    let listed = w.list(media).await;
    assert!(
        !listed.iter().any(|o| o.key().unwrap().ends_with(contract::SUCCESS)),
        "no _success after a failure"
    );
    assert!(failure.log_tail.len() <= 4096);
    (run, failure)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_table_fails_with_the_postgres_error() {
    let w = World::new(&[]).await;
    let (run, failure) = failing_run(&w, &spec(""), "model_3d", in_an_hour()).await;
    assert_eq!((failure.step, failure.exit_code), (Stage::Dumping, 1));
    assert!(
        failure.log_tail.contains(r#"relation "model_3d" does not exist"#),
        "{}",
        failure.log_tail
    );
    assert_shut_down(&run, 60..=62);
    let conn = w.pg.odbc_connection_string(DB);
    assert_no_secrets(&w, "model_3d", &run, &[w.pg.password(), &conn]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_fails_with_the_connection_error() {
    let w = World::new(&[]).await;
    let conn = format!(
        "Driver={{PostgreSQL Unicode}};Server=127.0.0.1;Port={};Database={DB};Uid=reader;Pwd=Unreachable-Secret-42;",
        free_port()
    );
    w.put_connection_string(&conn).await;
    let (run, failure) = failing_run(&w, &spec(""), "image", in_an_hour()).await;
    assert_eq!((failure.step, failure.exit_code), (Stage::Dumping, 1));
    assert!(failure.log_tail.contains("Connection refused"), "{}", failure.log_tail);
    assert_shut_down(&run, 60..=62);
    assert_no_secrets(&w, "image", &run, &["Unreachable-Secret-42", &conn]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_stops_a_running_dump_and_shuts_down() {
    let w = World::new(&["CREATE TABLE audio AS SELECT 1 AS id"]).await;
    let s = spec("query: 'SELECT a.* FROM {media_type} a, pg_sleep(120) s'");
    let deadline = Timestamp::now() + SignedDuration::from_secs(12);
    let (run, failure) = failing_run(&w, &s, "audio", deadline).await;
    assert_eq!((failure.step, failure.exit_code), (Stage::Deadline, 124), "{}", failure.log_tail);
    assert!(run.log.contains("stage dumping"), "the dump had started: {}", run.log);
    assert!(
        run.elapsed < Duration::from_secs(60),
        "stopped at the deadline, not when the query ended: {:?}",
        run.elapsed
    );
    assert_shut_down(&run, 1..=2);
    // odbc2parquet was stopped with the script, not left running.
    let workdir = run.workdir.display().to_string();
    let leaked = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .any(|p| std::fs::read(p.path().join("cmdline")).is_ok_and(|c| c.windows(workdir.len()).any(|w| w == workdir.as_bytes())));
    assert!(!leaked, "a process still runs in {workdir}");
}
