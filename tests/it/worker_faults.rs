//! A worker that rides out faults (issue 21), end to end with the real `datadump worker`
//! binary, a real PostgreSQL and moto: S3 behind the fault proxy answering a share of the
//! upload calls with `503 SlowDown`, `500 InternalError` or a reset connection; and the
//! PostgreSQL connection terminated in the middle of the COPY. The tests check what a user
//! would: the exit code, the semaphores, every row against PostgreSQL, and that no unfinished
//! multipart upload is left (S3 would bill it until a lifecycle rule removes it).

use std::collections::BTreeMap;
use std::time::Duration;

use datadump::contract::{self, FailureReport, Manifest, Stage, SuccessReport};
use sha2::{Digest, Sha256};

use crate::support::faultproxy::{FaultKind, FaultMix, FaultProxy, Faults};
use crate::support::net::wait_for;
use crate::worker::{DB, World};

/// The S3 calls of an upload that get faults (the worker makes no HeadObject call today; it is
/// listed so that one added later is faulted too).
const FAULTED: &[&str] = &["PutObject", "UploadPart", "CompleteMultipartUpload", "HeadObject"];

/// The smallest part S3 (and moto) accepts.
const PART_SIZE: &str = "5242880";

/// A table of hard-to-compress rows (three MD5 hex strings each: about 5 MiB of Parquet per
/// 100,000 rows), so small files and parts make several multipart uploads.
pub fn table_sql(table: &str, rows: u32) -> String {
    format!(
        "CREATE TABLE {table} (id integer PRIMARY KEY, a text NOT NULL, b text NOT NULL, c text NOT NULL);
         INSERT INTO {table} SELECT g, md5(g::text), md5((g * 7)::text), md5((g * 13)::text) FROM generate_series(1, {rows}) g;"
    )
}

/// What PostgreSQL holds, or the Parquet files hold: the row count and the SHA-256 of every
/// row as `id|a|b|c`, one a line in id order.
#[derive(Debug, PartialEq, Eq)]
pub struct RowsDigest {
    pub rows: u64,
    pub sha256: String,
}

/// The digest of a [`table_sql`] table, computed by PostgreSQL.
pub fn table_digest(pg: &crate::support::postgres::Postgres, db: &str, table: &str) -> RowsDigest {
    let out = pg.psql(
        db,
        &format!(
            "SELECT count(*), encode(sha256(convert_to(string_agg(id || '|' || a || '|' || b || '|' || c, E'\\n' ORDER BY id), 'UTF8')), 'hex') FROM {table}"
        ),
    );
    let (rows, sha256) = out.trim().split_once('|').expect("count|sha256");
    RowsDigest {
        rows: rows.parse().unwrap(),
        sha256: sha256.to_string(),
    }
}

/// The same digest over the rows of a [`table_sql`] table's Parquet files, decoded with the `parquet` crate's
/// Arrow reader. Panics on a duplicated id (a row written twice by a retried upload).
pub fn parquet_digest(files: &[Vec<u8>]) -> RowsDigest {
    use arrow::array::{Array, AsArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let mut rows: BTreeMap<i32, String> = BTreeMap::new();
    for body in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(body.clone()))
            .expect("a readable Parquet file")
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.expect("a decodable row group");
            let ids = batch
                .column_by_name("id")
                .expect("id")
                .as_primitive::<arrow::datatypes::Int32Type>();
            let text = |name: &str, i: usize| -> String {
                let col = batch.column_by_name(name).unwrap_or_else(|| panic!("column {name}"));
                assert!(!col.is_null(i), "{name} is NULL in row {i}");
                match col.as_string_opt::<i32>() {
                    Some(s) => s.value(i).to_string(),
                    None => col.as_string_view().value(i).to_string(),
                }
            };
            for i in 0..batch.num_rows() {
                let id = ids.value(i);
                let line = format!("{id}|{}|{}|{}", text("a", i), text("b", i), text("c", i));
                assert!(rows.insert(id, line).is_none(), "id {id} is in the files twice");
            }
        }
    }
    let text = rows.values().cloned().collect::<Vec<_>>().join("\n");
    RowsDigest {
        rows: rows.len() as u64,
        sha256: Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// Runs the worker to its end with extra environment; returns its exit code and log.
async fn run_worker(w: &World, job: &datadump::contract::Job, name: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let (mut child, log) = w.start(job, name, env);
    let status = tokio::time::timeout(Duration::from_secs(600), child.wait())
        .await
        .expect("the worker ends")
        .unwrap();
    (status.code(), std::fs::read_to_string(log).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_rides_out_s3_throttling_server_errors_and_reset_connections() {
    let w = World::new(&table_sql("audio", 800_000)).await;
    let proxy = FaultProxy::start(&w.moto.endpoint).await;
    // 30 % of the upload calls fail: SlowDown, InternalError and a reset connection in turn;
    // and, whatever the draw, the first UploadPart and CompleteMultipartUpload are reset
    proxy.set_faults(Faults::seeded(0.3, 21).mix(FaultMix::AlternateWithResets).only(FAULTED));
    proxy.fail_next("UploadPart", 1, FaultKind::Reset);
    proxy.fail_next("CompleteMultipartUpload", 1, FaultKind::Reset);
    let job = w.job("output: {fileSizeThreshold: 6MiB, rowGroupSize: 1MiB, parallelism: 2}", "audio");
    let endpoint = proxy.url();
    let (code, log) = run_worker(
        &w,
        &job,
        "audio",
        &[("AWS_ENDPOINT_URL", &endpoint), ("DATADUMP_PART_SIZE", PART_SIZE)],
    )
    .await;
    assert_eq!(code, Some(0), "{log}");
    proxy.faults_off();

    // the semaphores: `_success` of this attempt, no `_failure`
    let keys = w.keys(&job.key_prefix).await;
    assert!(keys.contains(&job.key(contract::SUCCESS)), "{keys:?}");
    assert!(!keys.contains(&job.key(contract::FAILURE)), "{keys:?}");
    let success: SuccessReport = w.json(&job, contract::SUCCESS).await;
    let manifest: Manifest = w.json(&job, contract::MANIFEST).await;
    assert_eq!(success.attempt, job.attempt);

    // every row, exactly: the files the manifest lists hold PostgreSQL's rows, once each
    let want = table_digest(&w.pg, DB, "audio");
    let mut files = Vec::new();
    for f in &manifest.files {
        let body = w.get(&f.key).await;
        assert_eq!(body.len() as u64, f.size, "{}", f.key);
        files.push(body);
    }
    assert!(manifest.files.len() >= 3, "several files: {:?}", manifest.files);
    assert_eq!(parquet_digest(&files), want);
    assert_eq!((manifest.rows, success.rows), (Some(want.rows), Some(want.rows)));
    assert_eq!(
        keys.iter().filter(|k| k.ends_with(".parquet")).count(),
        manifest.files.len(),
        "{keys:?}"
    );

    // nothing half-uploaded
    assert_eq!(w.unfinished_uploads().await, 0);

    // the counts: every call of a faulted API either failed by injection or succeeded (moto
    // answered nothing else), so each failure was retried until the call went through
    let calls = proxy.calls();
    let mut failed_by_kind: BTreeMap<String, usize> = BTreeMap::new();
    let mut report = Vec::new();
    let (mut failed_total, mut retries_total) = (0, 0);
    for api in FAULTED.iter().chain(&["CreateMultipartUpload", "AbortMultipartUpload"]) {
        let mine: Vec<_> = calls.iter().filter(|c| c.api == *api).collect();
        let failed = mine.iter().filter(|c| c.injected.is_some()).count();
        let ok = mine
            .iter()
            .filter(|c| c.injected.is_none() && (200..300).contains(&c.status))
            .count();
        for c in mine.iter().filter(|c| c.injected.is_some()) {
            *failed_by_kind.entry(format!("{:?}", c.injected.unwrap())).or_default() += 1;
        }
        assert_eq!(failed + ok, mine.len(), "{api}: a call failed without an injected fault: {mine:?}");
        let retries = mine.len() - ok;
        report.push(format!(
            "{api}: {} calls, {failed} failed by the proxy, {ok} ok, {retries} retries",
            mine.len()
        ));
        failed_total += failed;
        retries_total += retries;
    }
    eprintln!(
        "worker_faults: {} rows in {} files ({} multipart uploads); {failed_total} requests failed by the proxy \
         ({failed_by_kind:?}), {retries_total} retries; unfinished uploads left: 0\n  {}",
        want.rows,
        manifest.files.len(),
        proxy.forwarded("CreateMultipartUpload"),
        report.join("\n  ")
    );
    // not vacuous: every kind of fault happened, to the multipart calls too
    for kind in ["Throttle", "ServerError", "Reset"] {
        assert!(failed_by_kind.get(kind).is_some_and(|n| *n > 0), "no {kind}: {failed_by_kind:?}");
    }
    assert!(proxy.forwarded("CreateMultipartUpload") >= 3, "several multipart uploads");
    let injected = |api: &str| calls.iter().filter(|c| c.api == api && c.injected.is_some()).count();
    assert!(injected("UploadPart") > 0 && injected("CompleteMultipartUpload") > 0);
    // each file was completed once: one successful CompleteMultipartUpload or PutObject each
    let completed = calls
        .iter()
        .filter(|c| c.injected.is_none() && (200..300).contains(&c.status))
        .filter(|c| c.api == "CompleteMultipartUpload" || (c.api == "PutObject" && c.path.ends_with(".parquet")))
        .count();
    assert_eq!(completed, manifest.files.len());
    w.assert_no_secret(&job, &log).await;
}

/// A query whose scan stalls after the first 150,000 rows (pg_sleep), so the COPY is certainly
/// running, with a multipart upload open, when the test terminates it.
const STALLING_QUERY: &str = "query: SELECT * FROM {media_type} WHERE id <= 150000 OR pg_sleep(600) IS NULL";

/// Terminates the backend running the worker's COPY once it is stalled in `pg_sleep` (at the
/// scan's 150,001st row), polling `pg_stat_activity`.
pub async fn terminate_copy(pg: &crate::support::postgres::Postgres, db: &str) {
    wait_for("the worker's COPY to be stalled mid-table", Duration::from_secs(300), || async {
        let n = pg.psql(
            db,
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY%' AND wait_event = 'PgSleep'",
        );
        (n.trim() == "1").then_some(())
    })
    .await;
    let killed = pg.psql(
        db,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'COPY%' AND pid <> pg_backend_pid()",
    );
    assert_eq!(killed.trim(), "t", "one COPY was terminated");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_connection_killed_mid_copy_fails_the_attempt_with_its_message_and_leaves_no_upload() {
    let w = World::new(&table_sql("audio", 200_000)).await;
    let job = w.job(
        &format!("{STALLING_QUERY}\noutput: {{rowGroupSize: 1MiB, parallelism: 1}}"),
        "audio",
    );
    let (mut child, log) = w.start(&job, "audio", &[("DATADUMP_PART_SIZE", PART_SIZE)]);
    // mid-stream: a multipart upload is open and the COPY is running
    wait_for("a multipart upload to be open", Duration::from_secs(300), || async {
        (w.unfinished_uploads().await > 0).then_some(())
    })
    .await;
    terminate_copy(&w.pg, DB).await;
    let status = tokio::time::timeout(Duration::from_secs(120), child.wait())
        .await
        .expect("the worker ends")
        .unwrap();
    let log = std::fs::read_to_string(log).unwrap();
    assert_eq!(status.code(), Some(1), "{log}");

    let failure: FailureReport = w.json(&job, contract::FAILURE).await;
    assert_eq!((failure.step, failure.exit_code, failure.attempt), (Stage::Dumping, 1, job.attempt));
    assert!(
        failure.message.contains("terminating connection due to administrator command"),
        "PostgreSQL's message is the cause: {}",
        failure.message
    );
    let keys = w.keys(&job.key_prefix).await;
    assert!(!keys.contains(&job.key(contract::SUCCESS)), "{keys:?}");
    assert!(!keys.contains(&job.key(contract::MANIFEST)), "{keys:?}");
    assert!(!keys.iter().any(|k| k.ends_with(".parquet")), "no file was completed: {keys:?}");
    assert_eq!(w.unfinished_uploads().await, 0, "the open multipart upload was aborted");
    eprintln!("worker_faults: the killed attempt's _failure: {}", failure.message);
    w.assert_no_secret(&job, &log).await;
}
