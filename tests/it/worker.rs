//! The worker (`datadump-worker`, what EC2 instances run), end to end: the real binary runs a job against a real PostgreSQL and
//! moto's S3 and SSM, and the tests read everything back from S3 the way the controller and a
//! dataset user would. The bootstrap (EC2 user data) runs under `sh` with the shutdown stubbed.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use aws_sdk_s3::Client as S3;
use datadump::api::job::WorkerJob;
use datadump::api::{DataDumpSpec, MediaType};
use datadump::contract::{self, FailureReport, Manifest, ProgressReport, Stage, SuccessReport};
use datadump::contract::{Arch, Job};
use jiff::{SignedDuration, Timestamp};
use sha2::{Digest, Sha256};

use crate::support::moto::Moto;
use crate::support::net::wait_for;
use crate::support::postgres::Postgres;

const BUCKET: &str = "open-datasets";
const DATE: &str = "2026-11-01";
const PARAMETER: &str = "/datadump/test/openledger";
const TOKEN: &str = "ddt-0123456789abcdef0123456789abcdef";
/// The database `World::new` creates.
pub const DB: &str = "openledger";

/// `image`, Openverse-shaped, with a table and a column comment.
pub const IMAGE_SQL: &str = r#"
CREATE TABLE image (
  id integer PRIMARY KEY, identifier uuid NOT NULL, created_on timestamptz NOT NULL,
  provider varchar(80), url varchar(3000) NOT NULL, width integer, license text NOT NULL,
  title text, meta_data jsonb, tags text[], watermarked boolean, standardized_popularity double precision);
COMMENT ON TABLE image IS 'Openly licensed images';
COMMENT ON COLUMN image.license IS 'The CC license slug';
INSERT INTO image SELECT g, md5(g::text)::uuid,
  timestamptz '2020-01-01 00:00:00+00' + g * interval '61 seconds',
  (ARRAY['flickr', 'wikimedia', 'stocksnap'])[1 + g % 3],
  'https://example.org/images/' || g || '.jpg',
  CASE WHEN g % 10 = 0 THEN NULL ELSE 100 + g % 4000 END,
  (ARRAY['by', 'by-sa', 'cc0'])[1 + g % 3],
  'Title ' || g || ' – ünïcödé 🎨 ' || repeat('x', g % 200),
  jsonb_build_object('views', g, 'description', repeat('d', g % 1500)),
  CASE WHEN g % 4 = 0 THEN NULL ELSE ARRAY['rock', 'pop ' || g % 10, NULL] END,
  CASE WHEN g % 3 = 0 THEN NULL ELSE g % 2 = 0 END,
  CASE WHEN g % 11 = 0 THEN NULL ELSE (g % 1000) / 1000.0 END
FROM generate_series(1, 30000) AS g;
"#;

/// One test's world: PostgreSQL with the connection string in SSM, moto with the bucket.
pub struct World {
    pub pg: Postgres,
    pub moto: Moto,
    pub s3: S3,
    pub dir: tempfile::TempDir,
}

/// What one worker run left.
pub struct Run {
    pub code: Option<i32>,
    pub log: String,
    pub keys: Vec<String>,
}

impl World {
    pub async fn new(sql: &str) -> World {
        World::with(Postgres::start(), sql).await
    }

    /// The tables of `sql` in `pg`.
    pub async fn with(pg: Postgres, sql: &str) -> World {
        pg.create_database(DB);
        pg.psql(DB, sql);
        let moto = Moto::start().await;
        moto.create_bucket(BUCKET).await;
        let world = World {
            s3: moto.s3().await,
            pg,
            moto,
            dir: tempfile::tempdir().unwrap(),
        };
        world.put_connection_string(&world.pg.connection_string(DB)).await;
        world
    }

    pub async fn put_connection_string(&self, value: &str) {
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

    pub fn job(&self, spec_yaml: &str, media: &str) -> Job {
        let spec: DataDumpSpec = serde_yaml::from_str(&format!(
            "mediaTypes: [{media}]\ndestination: {{bucket: {BUCKET}}}\ndatabase: {{ssmParameterName: {PARAMETER}}}\ninstance: {{iamInstanceProfile: worker}}\n{spec_yaml}"
        ))
        .unwrap();
        datadump::api::validate(&spec, &Default::default()).expect("a valid spec");
        let media = MediaType(media.into());
        datadump::api::job::build(&WorkerJob {
            spec: &spec,
            media_type: &media,
            dump_date: DATE,
            attempt: 3,
            token: TOKEN,
            deadline: Timestamp::now() + SignedDuration::from_hours(1),
            ssm_parameter: PARAMETER,
            region: "us-east-1",
        })
        .unwrap()
    }

    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let out = self.s3.list_objects_v2().bucket(BUCKET).prefix(prefix).send().await.unwrap();
        out.contents().iter().filter_map(|o| o.key().map(String::from)).collect()
    }

    pub async fn get(&self, key: &str) -> Vec<u8> {
        let out = self.s3.get_object().bucket(BUCKET).key(key).send().await.unwrap();
        out.body.collect().await.unwrap().into_bytes().to_vec()
    }

    pub async fn json<T: serde::de::DeserializeOwned>(&self, job: &Job, name: &str) -> T {
        let body = self.get(&job.key(name)).await;
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{name}: {e}: {}", String::from_utf8_lossy(&body)))
    }

    pub async fn unfinished_uploads(&self) -> usize {
        let out = self.s3.list_multipart_uploads().bucket(BUCKET).send().await.unwrap();
        out.uploads().len()
    }

    /// Starts the worker EC2 instances run, `datadump-worker`, for the job (its log goes to
    /// `NAME.log`).
    pub fn start(&self, job: &Job, name: &str, extra_env: &[(&str, &str)]) -> (tokio::process::Child, PathBuf) {
        let file = self.dir.path().join(format!("{name}.json"));
        std::fs::write(&file, job.to_json()).unwrap();
        let log = self.dir.path().join(format!("{name}.log"));
        let child = tokio::process::Command::new(worker_binary())
            .arg("--job-file")
            .arg(&file)
            .arg("--workdir")
            .arg(self.dir.path().join(format!("{name}-work")))
            .args(["--progress-interval", "1"])
            .envs(self.moto.child_env())
            .env("PATH", crate::support::moto::worker_path())
            .envs(extra_env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("start datadump-worker");
        (child, log)
    }

    /// Runs the job to its end.
    pub async fn run(&self, job: &Job, name: &str) -> Run {
        let (mut child, log) = self.start(job, name, &[]);
        let status = tokio::time::timeout(Duration::from_secs(300), child.wait())
            .await
            .expect("the worker ends")
            .unwrap();
        Run {
            code: status.code(),
            log: std::fs::read_to_string(log).unwrap_or_default(),
            keys: self.keys(&job.key_prefix).await,
        }
    }

    /// Asserts that the password appears in no object under the prefix and not in `log`.
    pub async fn assert_no_secret(&self, job: &Job, log: &str) {
        let password = self.pg.password().to_string();
        assert!(!log.contains(&password), "the password is in the worker's log");
        for key in self.keys(&job.key_prefix).await {
            let body = self.get(&key).await;
            assert!(
                !body.windows(password.len()).any(|w| w == password.as_bytes()),
                "the password is in {key}"
            );
        }
    }
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

fn parquet_rows(data: Vec<u8>) -> (u64, parquet::file::metadata::ParquetMetaData) {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(bytes::Bytes::from(data)).expect("a readable Parquet file");
    let meta = reader.metadata().clone();
    (meta.file_metadata().num_rows() as u64, meta)
}

#[tokio::test]
async fn the_worker_streams_a_table_into_parquet_on_s3_and_writes_success_last() {
    let w = World::new(IMAGE_SQL).await;
    // small files and parts, so the table spans several files and multipart uploads
    let job = w.job("output: {fileSizeThreshold: 1MiB, rowGroupSize: 1MiB, parallelism: 2}", "image");
    let run = w.run(&job, "image").await;
    assert_eq!(run.code, Some(0), "{}", run.log);

    let manifest: Manifest = w.json(&job, contract::MANIFEST).await;
    let success: SuccessReport = w.json(&job, contract::SUCCESS).await;
    let count: u64 = w.pg.psql(DB, "SELECT count(*) FROM image").trim().parse().unwrap();
    assert_eq!(manifest.rows, Some(count));
    assert_eq!(
        (success.rows, success.files, success.token.as_str()),
        (Some(count), manifest.files.len() as u64, TOKEN)
    );
    assert!(manifest.files.len() >= 2, "1 MiB files split the table: {:?}", run.keys);
    // every file: listed, the manifest's size and checksum, a footer with its row count
    let mut rows = 0;
    for f in &manifest.files {
        assert!(run.keys.contains(&f.key), "{} is missing", f.key);
        let body = w.get(&f.key).await;
        assert_eq!((body.len() as u64, sha256_hex(&body)), (f.size, f.sha256.clone()), "{}", f.key);
        let (n, meta) = parquet_rows(body);
        assert_eq!(Some(n), f.rows);
        rows += n;
        // zstd by default, with the column descriptions in the schema metadata
        let col = meta.row_group(0).column(0);
        assert!(
            matches!(col.compression(), parquet::basic::Compression::ZSTD(_)),
            "{:?}",
            col.compression()
        );
    }
    assert_eq!(rows, count);
    let license = manifest
        .columns
        .iter()
        .find(|c| c.name == "license")
        .expect("columns in the manifest");
    assert_eq!(license.description.as_deref(), Some("The CC license slug"));
    assert!(!license.nullable && manifest.columns.iter().find(|c| c.name == "width").unwrap().nullable);
    assert_eq!(manifest.description.as_deref(), Some("Openly licensed images"));
    assert!(manifest.writer.contains("postgres"), "{}", manifest.writer);
    // the heartbeat ends in `finishing`, no `_failure`, nothing half-uploaded
    let progress: ProgressReport = w.json(&job, contract::PROGRESS).await;
    assert_eq!((progress.stage, progress.rows), (Stage::Finishing, Some(count)));
    assert!(!run.keys.contains(&job.key(contract::FAILURE)));
    assert_eq!(w.unfinished_uploads().await, 0);
    w.assert_no_secret(&job, &run.log).await;
}

#[tokio::test]
async fn a_failing_query_leaves_failure_with_the_database_error_and_nothing_else() {
    let w = World::new(IMAGE_SQL).await;
    let job = w.job("query: SELECT no_such_column FROM {media_type}", "image");
    let run = w.run(&job, "image").await;
    assert_eq!(run.code, Some(1), "{}", run.log);
    let failure: FailureReport = w.json(&job, contract::FAILURE).await;
    assert_eq!((failure.step, failure.token.as_str(), failure.attempt), (Stage::Dumping, TOKEN, 3));
    assert!(
        failure.message.contains("no_such_column") && failure.message.contains("does not exist"),
        "{}",
        failure.message
    );
    assert!(failure.log_tail.contains("no_such_column"), "{}", failure.log_tail);
    let summary = datadump::observe::failure_summary(&failure);
    assert!(summary.contains("column \"no_such_column\" does not exist"), "{summary}");
    assert_eq!(
        run.keys
            .iter()
            .filter(|k| k.ends_with(".parquet") || k.ends_with(contract::SUCCESS))
            .count(),
        0,
        "{:?}",
        run.keys
    );
    w.assert_no_secret(&job, &run.log).await;
}

#[tokio::test]
async fn a_wrong_password_fails_without_showing_the_connection_string() {
    let w = World::new("CREATE TABLE image (id int)").await;
    let wrong = format!("{} ", w.pg.connection_string(DB)).replace("password='", "password='not-");
    w.put_connection_string(&wrong).await;
    let job = w.job("", "image");
    let run = w.run(&job, "image").await;
    assert_eq!(run.code, Some(1));
    let failure: FailureReport = w.json(&job, contract::FAILURE).await;
    assert!(failure.message.contains("password authentication failed"), "{}", failure.message);
    let shown = format!("{}{}{}", run.log, failure.message, failure.log_tail);
    assert!(
        !shown.contains(&format!("not-{}", &w.pg.password()[..8])),
        "the password leaked: {shown}"
    );
}

/// A job naming a client certificate the worker cannot read from SSM fails while reading
/// credentials, naming the parameter, before it connects.
#[tokio::test]
async fn a_client_certificate_that_is_not_staged_fails_naming_its_parameter() {
    let w = World::new("CREATE TABLE image (id int)").await;
    let mut job = w.job("", "image");
    job.client_identity_parameter = Some("/datadump/test/image/client-identity".into());
    let run = w.run(&job, "image").await;
    assert_eq!(run.code, Some(1), "{}", run.log);
    let failure: FailureReport = w.json(&job, contract::FAILURE).await;
    assert_eq!(failure.step, Stage::ReadingCredentials, "{}", failure.message);
    assert!(
        failure
            .message
            .starts_with("cannot read the client certificate from SSM parameter /datadump/test/image/client-identity"),
        "{}",
        failure.message
    );
}

/// A table of hard-to-compress rows whose scan stalls after the first 150,000 rows, so a worker
/// is reliably mid-stream with a multipart upload open.
const STALLING_SQL: &str = r#"
CREATE TABLE audio (id integer, a text, b text, c text);
INSERT INTO audio SELECT g, md5(g::text), md5((g * 7)::text), md5((g * 13)::text) FROM generate_series(1, 200000) g;
"#;

#[tokio::test]
async fn a_worker_stopped_mid_stream_aborts_its_uploads_and_reports_failure() {
    let w = World::new(STALLING_SQL).await;
    let job = w.job(
        "query: SELECT * FROM {media_type} WHERE id <= 150000 OR pg_sleep(600) IS NULL\noutput: {rowGroupSize: 1MiB, parallelism: 1}",
        "audio",
    );
    let (mut child, log) = w.start(&job, "audio", &[("DATADUMP_PART_SIZE", "5242880")]);
    wait_for("a multipart upload to be open", Duration::from_secs(120), || async {
        (w.unfinished_uploads().await > 0).then_some(())
    })
    .await;
    let pid = child.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the worker stops")
        .unwrap();
    let log = std::fs::read_to_string(log).unwrap();
    assert_eq!(status.code(), Some(143), "{log}");
    let failure: FailureReport = w.json(&job, contract::FAILURE).await;
    assert_eq!((failure.step, failure.exit_code), (Stage::Dumping, 143));
    assert!(failure.message.contains("SIGTERM"), "{}", failure.message);
    let keys = w.keys(&job.key_prefix).await;
    assert!(!keys.contains(&job.key(contract::SUCCESS)), "{keys:?}");
    assert_eq!(w.unfinished_uploads().await, 0, "the multipart upload was aborted");
    // the stalled query was cancelled with the connection: PostgreSQL runs nothing of ours
    wait_for("the backend to go", Duration::from_secs(30), || async {
        let n = w.pg.psql(
            DB,
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(600)%' AND pid <> pg_backend_pid()",
        );
        (n.trim() == "0").then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_odbc2parquet_engine_exports_through_the_same_contract_read_only() {
    let w = World::new(IMAGE_SQL).await;
    w.put_connection_string(&w.pg.odbc_connection_string(DB)).await;
    let job = w.job("engine: odbc2parquet\noutput: {fileSizeThreshold: 1MiB}", "image");
    let run = w.run(&job, "image").await;
    assert_eq!(run.code, Some(0), "{}", run.log);
    let manifest: Manifest = w.json(&job, contract::MANIFEST).await;
    assert_eq!(manifest.rows, Some(30_000));
    assert!(
        manifest.files.len() >= 2 && manifest.writer.starts_with("odbc2parquet "),
        "{manifest:?}"
    );
    for f in &manifest.files {
        let body = w.get(&f.key).await;
        assert_eq!(sha256_hex(&body), f.sha256);
        assert_eq!(Some(parquet_rows(body).0), f.rows);
    }
    w.assert_no_secret(&job, &run.log).await;

    // the session is read-only: a query whose function deletes rows fails, and the rows stay
    w.pg.psql(
        DB,
        "CREATE FUNCTION wipe() RETURNS int LANGUAGE sql AS 'DELETE FROM image RETURNING 1'",
    );
    let mut job = w.job("engine: odbc2parquet\nquery: SELECT * FROM {media_type} WHERE wipe() = 1", "image");
    job.key_prefix = job.key_prefix.replace(DATE, "2026-11-02");
    let run = w.run(&job, "wipe").await;
    assert_eq!(run.code, Some(1), "{}", run.log);
    let failure: FailureReport = w.json(&job, contract::FAILURE).await;
    assert!(failure.message.contains("read-only transaction"), "{}", failure.message);
    assert_eq!(w.pg.psql(DB, "SELECT count(*) FROM image").trim(), "30000");
}

/// A server that accepts only TLS and a job carrying its CA (as the controller puts
/// `spec.database.tls.caBundle` there): both engines verify the server against the bundle, with
/// no `sslmode` or `sslrootcert` in the connection string; a bundle without the server's CA
/// fails both.
#[tokio::test]
async fn both_engines_verify_the_server_against_the_jobs_ca_bundle() {
    use crate::support::pki::{Ca, Validity};
    use crate::support::postgres::ServerTls;
    let (ca, other) = (Ca::new("Catalog CA"), Ca::new("Other CA"));
    let pg = Postgres::start_tls(&ServerTls {
        server: ca.server(&["localhost"], Validity::Current),
        client_ca: None,
        also_plain: false,
    });
    let w = World::with(
        pg,
        "CREATE TABLE image AS SELECT g AS id, 'title ' || g AS title FROM generate_series(1, 2000) g",
    )
    .await;
    let odbc = w.pg.odbc_connection_string(DB).replace("Server=127.0.0.1", "Server=localhost");
    for (engine, conn) in [("postgres", w.pg.connection_string_to("localhost", DB, "")), ("odbc2parquet", odbc)] {
        w.put_connection_string(&conn).await;
        let mut job = w.job(&format!("engine: {engine}"), "image");
        job.ca_bundle = Some(format!("{}{}", other.cert_pem(), ca.cert_pem()));
        let run = w.run(&job, &format!("{engine}-good")).await;
        assert_eq!(run.code, Some(0), "{engine}: {}", run.log);
        let manifest: Manifest = w.json(&job, contract::MANIFEST).await;
        assert_eq!(manifest.rows, Some(2000), "{engine}");
        if engine == "postgres" {
            let c = manifest.connection.expect("the postgres engine reports its connection");
            assert_eq!((c.sslmode.as_str(), c.tls), ("verify-full", true), "{c:?}");
            assert_eq!(c.server_certificate, contract::CertificateCheck::CaAndHostName);
        }
        // the wrong bundle: refused, and the attempt reports why
        let mut job = w.job(&format!("engine: {engine}"), "image");
        job.key_prefix = job.key_prefix.replace(DATE, "2026-11-02");
        job.ca_bundle = Some(other.cert_pem());
        let run = w.run(&job, &format!("{engine}-wrong")).await;
        assert_eq!(run.code, Some(1), "{engine}: {}", run.log);
        let failure: FailureReport = w.json(&job, contract::FAILURE).await;
        let want = if engine == "postgres" {
            "not among the root CAs \"CN=Other CA\""
        } else {
            "certificate verify failed"
        };
        assert!(failure.message.contains(want), "{engine}: {}", failure.message);
        w.assert_no_secret(&job, &run.log).await;
    }
}

/// The lean worker binary EC2 instances run, as CI builds it with a glibc floor
/// (`scripts/setup.sh`: cargo zigbuild -p datadump-worker); `DATADUMP_WORKER_BINARY` overrides it.
pub fn worker_binary() -> PathBuf {
    if let Ok(p) = std::env::var("DATADUMP_WORKER_BINARY") {
        return p.into();
    }
    let zig = crate::glibc::zigbuild_binary();
    assert!(
        zig.exists(),
        "{} is missing: scripts/setup.sh builds it (cargo zigbuild -p datadump-worker --target ARCH-unknown-linux-gnu.2.28)",
        zig.display()
    );
    zig
}

/// The EC2 user data, run the way cloud-init would (POSIX sh), with `shutdown` and the
/// architecture stubbed: it schedules the dead-man shutdown, fetches the binary from the bucket
/// through its presigned URL, checks it, runs the worker (which reads its job from S3 and
/// exports the table) and powers off; a tampered binary is refused, never run, and reported
/// as `_failure` through the presigned PUT URL at once.
#[tokio::test]
async fn the_bootstrap_fetches_the_binary_from_the_bucket_checks_it_and_runs_the_worker() {
    use datadump::launch::release::WorkerRelease;
    let w = World::new(IMAGE_SQL).await;
    let store = datadump::aws::S3Store::new(&w.moto.sdk_config().await, true);
    let arch = Arch::host();
    let release = WorkerRelease::from_files(&[(arch, worker_binary())]).unwrap();

    let boot = |user_data: String, name: &str| {
        assert!(user_data.len() < 4096, "{} bytes", user_data.len());
        assert!(!user_data.contains(w.pg.password()));
        let dir = w.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let stub = dir.join("shutdown");
        std::fs::write(&stub, "#!/bin/sh\necho \"$*\" >> \"$(dirname \"$0\")/shutdown.log\"\n").unwrap();
        std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let out = std::process::Command::new("sh")
            .args(["-c", &user_data])
            .envs(w.moto.child_env())
            .env("DATADUMP_SHUTDOWN_CMD", &stub)
            .env("DATADUMP_BOOTSTRAP_DIR", dir.join("root"))
            .output()
            .unwrap();
        let shutdown = std::fs::read_to_string(dir.join("shutdown.log")).unwrap_or_default();
        (out, shutdown, dir)
    };

    let job = w.job("", "image");
    let user_data = release.user_data(&store, &job, arch).await.unwrap();
    let (out, shutdown, dir) = boot(user_data, "good");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let calls: Vec<&str> = shutdown.lines().collect();
    assert_eq!(calls.len(), 2, "{shutdown}");
    assert!(
        calls[0].starts_with('+') && calls[0][1..].parse::<u32>().unwrap() >= 60,
        "dead-man first: {shutdown}"
    );
    assert_eq!(calls[1], "now");
    assert!(dir.join("root/datadump-worker").exists());
    let manifest: Manifest = w.json(&job, contract::MANIFEST).await;
    assert_eq!(manifest.rows, Some(30_000));
    // the binary went into the bucket once, content-addressed
    let bins = w.keys("data-dump/_datadump/bin/").await;
    assert_eq!(bins.len(), 1, "{bins:?}");
    assert!(bins[0].ends_with(&format!(
        "/{}/datadump-worker-{}",
        release.binary(arch).unwrap().sha256,
        arch.as_str()
    )));

    // someone replaces the binary in the bucket: the bootstrap refuses it
    w.s3.put_object()
        .bucket(BUCKET)
        .key(&bins[0])
        .body(b"#!/bin/sh\necho pwned\n".to_vec().into())
        .send()
        .await
        .unwrap();
    let mut job = w.job("", "image");
    job.key_prefix = job.key_prefix.replace(DATE, "2026-11-03");
    job.attempt = 4;
    let user_data = release.user_data(&store, &job, arch).await.unwrap();
    let (out, shutdown, dir) = boot(user_data, "tampered");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SHA-256"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(shutdown.lines().last(), Some("now"));
    assert!(!dir.join("root/datadump-worker").exists() && !dir.join("root/datadump-worker.download").exists());
    let failure: FailureReport = w.json(&job, contract::FAILURE).await;
    assert_eq!((failure.attempt, failure.step, failure.token.as_str()), (4, Stage::Starting, TOKEN));
    assert!(failure.message.contains("not running it"), "{}", failure.message);
    let summary = datadump::observe::failure_summary(&failure);
    assert!(summary.contains("bootstrap: the worker binary has SHA-256"), "{summary}");
    let keys = w.keys(&job.key_prefix).await;
    assert!(
        !keys.iter().any(|k| k.ends_with(contract::PROGRESS)),
        "the worker never ran: {keys:?}"
    );
}
