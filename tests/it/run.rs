//! `datadump run --compute local`, end to end: the runner binary as a child process, its local
//! workers (`datadump worker`) against a real PostgreSQL and moto's S3 and SSM. The tests check what a user would: the exit code, the
//! output, the objects in S3, the staged credentials, and the processes left on the machine.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use parquet::file::reader::{FileReader, SerializedFileReader};

use crate::support::moto::Moto;
use crate::support::net::wait_for;
use crate::support::postgres::Postgres;

const BUCKET: &str = "run-datasets";
const DB: &str = "catalog";

/// Small Openverse-shaped tables: text, text[], jsonb, timestamptz, boolean, integer, float,
/// NULLs and non-ASCII text.
const TABLES_SQL: &str = r#"
CREATE TABLE image (id integer PRIMARY KEY, identifier uuid NOT NULL, created_on timestamptz NOT NULL,
  provider varchar(80), title text, tags jsonb, keywords text[], watermarked boolean, width integer,
  standardized_popularity double precision);
INSERT INTO image SELECT g, md5(g::text)::uuid, timestamptz '2020-01-01 00:00:00+00' + g * interval '1 hour',
  (ARRAY['flickr', 'wikimedia', NULL])[1 + g % 3], 'Titre ' || g || ' – 東京 🎨',
  CASE WHEN g % 5 = 0 THEN NULL ELSE jsonb_build_array(jsonb_build_object('name', 'tag' || g % 7)) END,
  CASE WHEN g % 4 = 0 THEN NULL ELSE ARRAY['été', 'sky ' || g % 3, NULL] END,
  CASE WHEN g % 3 = 0 THEN NULL ELSE g % 2 = 0 END, CASE WHEN g % 10 = 0 THEN NULL ELSE 100 + g END,
  CASE WHEN g % 11 = 0 THEN NULL ELSE g / 3000.0 END
FROM generate_series(1, 3000) AS g;
CREATE TABLE audio (id integer PRIMARY KEY, title text, genres text[], duration integer, meta_data jsonb);
INSERT INTO audio SELECT g, 'Track ' || md5(g::text), ARRAY['genre ' || g % 5], 1000 + g, jsonb_build_object('plays', g)
FROM generate_series(1, 1200) AS g;
"#;

/// PostgreSQL with the tables, moto with the bucket, a temp dir for the DataDump file, the
/// runner's output and the local workers.
struct World {
    pg: Postgres,
    moto: Moto,
    dir: tempfile::TempDir,
    /// What `$DATADUMP_CONNECTION_STRING` holds.
    connection: String,
}

/// One finished `datadump run`.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    fn output(&self) -> String {
        format!("--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr)
    }
}

impl World {
    async fn new() -> World {
        let pg = Postgres::start();
        let connection = pg.connection_string(DB);
        World::with(pg, connection).await
    }

    /// The tables in `pg`, reached with `connection`.
    async fn with(pg: Postgres, connection: String) -> World {
        pg.create_database(DB);
        pg.psql(DB, TABLES_SQL);
        let moto = Moto::start().await;
        moto.create_bucket(BUCKET).await;
        World {
            pg,
            moto,
            dir: tempfile::tempdir().unwrap(),
            connection,
        }
    }

    fn workdir(&self) -> PathBuf {
        self.dir.path().join("workers")
    }

    /// Writes a DataDump with `spec_extra` (YAML lines of `spec`) and starts `datadump run` on
    /// it; stdout and stderr go to files.
    fn start(&self, media: &str, spec_extra: &str) -> tokio::process::Child {
        self.start_with_env(media, spec_extra, &[])
    }

    /// [`start`](Self::start) with extra environment for the runner and its workers.
    fn start_with_env(&self, media: &str, spec_extra: &str, env: &[(&str, &str)]) -> tokio::process::Child {
        let file = self.dir.path().join("dump.yaml");
        // `spec_extra` may name its own destination
        let destination = if spec_extra.contains("  destination:") {
            String::new()
        } else {
            format!("  destination: {{bucket: {BUCKET}, prefix: data-dump}}\n")
        };
        std::fs::write(
            &file,
            format!(
                "apiVersion: datadump.dev/v1alpha1\nkind: DataDump\nmetadata: {{name: it, namespace: test}}\nspec:\n  \
                 mediaTypes: [{media}]\n{destination}  \
                 database: {{connectionSecretRef: {{name: db, key: connectionString}}}}\n  \
                 instance: {{iamInstanceProfile: worker}}\n{spec_extra}"
            ),
        )
        .unwrap();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_datadump"));
        cmd.args(["run", "--compute", "local", "-f"])
            .arg(&file)
            .arg("--workdir")
            .arg(self.workdir())
            .args(["--poll-interval", "300ms", "--progress-interval", "1"])
            .env_clear()
            .envs(self.moto.child_env())
            .env("PATH", crate::support::moto::worker_path())
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .env("DATADUMP_CONNECTION_STRING", &self.connection)
            // the most verbose logging: even then no secret may reach the output
            .env("DATADUMP_LOG", "trace")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(self.dir.path().join("stdout")).unwrap())
            .stderr(std::fs::File::create(self.dir.path().join("stderr")).unwrap())
            .kill_on_drop(true);
        cmd.spawn().expect("start datadump run")
    }

    /// Every worker's log, for assertion messages.
    fn worker_logs(&self) -> String {
        let mut out = String::new();
        for e in std::fs::read_dir(self.workdir()).into_iter().flatten().flatten() {
            let log = std::fs::read_to_string(e.path().join("console.log")).unwrap_or_default();
            out.push_str(&format!("--- {}\n{log}", e.file_name().to_string_lossy()));
        }
        out
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    async fn finish(&self, mut child: tokio::process::Child) -> Run {
        let status = tokio::time::timeout(Duration::from_secs(180), child.wait())
            .await
            .unwrap_or_else(|_| panic!("datadump run did not finish in 180 s:\n{}", self.read("stderr")))
            .unwrap();
        Run {
            status,
            stdout: self.read("stdout"),
            stderr: self.read("stderr"),
        }
    }

    async fn run(&self, media: &str, spec_extra: &str) -> Run {
        let child = self.start(media, spec_extra);
        self.finish(child).await
    }

    /// Every key in the bucket.
    async fn keys(&self) -> Vec<String> {
        let out = self.moto.s3().await.list_objects_v2().bucket(BUCKET).send().await.unwrap();
        out.contents().iter().filter_map(|o| o.key().map(String::from)).collect()
    }

    async fn get(&self, key: &str) -> Vec<u8> {
        let out = self.moto.s3().await.get_object().bucket(BUCKET).key(key).send().await.unwrap();
        out.body.collect().await.unwrap().into_bytes().to_vec()
    }

    /// SSM parameters left under the runner's staging path.
    async fn staged_parameters(&self) -> Vec<String> {
        let out = self
            .moto
            .ssm()
            .await
            .get_parameters_by_path()
            .path("/datadump")
            .recursive(true)
            .send()
            .await
            .unwrap();
        out.parameters().iter().filter_map(|p| p.name().map(String::from)).collect()
    }

    fn count(&self, sql: &str) -> u64 {
        self.pg.psql(DB, sql).trim().parse().unwrap()
    }
}

/// Processes whose command line mentions `needle`, as (pid, process group, command line).
fn processes_mentioning(needle: &str) -> Vec<(u32, u32, String)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if !cmdline.contains(needle) {
                return None;
            }
            Some((pid, process_group(pid)?, cmdline))
        })
        .collect()
}

/// A process's group id, from `/proc/PID/stat` (field 5; the command may hold spaces).
fn process_group(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// Waits until no process mentions `workdir` (SIGKILLed processes take the kernel a moment).
/// Sends SIGINT (a user's Ctrl-C) to the runner.
fn interrupt(child: &tokio::process::Child) {
    let pid = child.id().expect("the runner still runs").to_string();
    let kill = std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(kill.success());
}

/// Waits (at most 120 s) for a runner started with its output in `stdout`/`stderr`; its exit
/// status and both outputs.
async fn exit_and_output(mut child: tokio::process::Child, stdout: &std::path::Path, stderr: &std::path::Path) -> (ExitStatus, String) {
    let status = tokio::time::timeout(Duration::from_secs(120), child.wait())
        .await
        .expect("the runner exits")
        .unwrap();
    let out = format!(
        "{}{}",
        std::fs::read_to_string(stdout).unwrap(),
        std::fs::read_to_string(stderr).unwrap()
    );
    (status, out)
}

async fn nothing_left(workdir: &str) {
    let result = tokio::time::timeout(Duration::from_secs(10), async {
        while !processes_mentioning(workdir).is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(result.is_ok(), "still running: {:?}", processes_mentioning(workdir));
}

/// Live (not zombie) processes in a process group.
fn group_members(pgid: u32) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let (_, rest) = stat.rsplit_once(')')?;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            (fields.get(2)?.parse::<u32>().ok()? == pgid && fields[0] != "Z").then(|| format!("{pid}: {stat}"))
        })
        .collect()
}

/// Rows of a Parquet file, by decoding every row.
fn parquet_rows(bytes: Vec<u8>) -> u64 {
    use std::io::{Seek, Write};
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(&bytes).unwrap();
    file.rewind().unwrap();
    let reader = SerializedFileReader::new(file).expect("a readable Parquet file");
    let mut decoded = 0u64;
    for row in reader.get_row_iter(None).unwrap() {
        row.expect("a decodable row");
        decoded += 1;
    }
    assert_eq!(decoded as i64, reader.metadata().file_metadata().num_rows());
    decoded
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dump_runs_to_success_without_a_cluster() {
    let w = World::new().await;
    let run = w
        .run("image, audio", "  output: {fileSizeThreshold: 1MiB, rowGroupSize: 1MiB}\n")
        .await;
    assert_eq!(run.status.code(), Some(0), "{}", run.output());

    // the summary: a table with each media type's rows, and the dump's result
    let image_rows = w.count("SELECT count(*) FROM image");
    let audio_rows = w.count("SELECT count(*) FROM audio");
    assert!(run.stdout.contains("MEDIA") && run.stdout.contains("ROWS"), "{}", run.output());
    for (media, rows) in [("image", image_rows), ("audio", audio_rows)] {
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with(media))
            .unwrap_or_else(|| panic!("no {media} line: {}", run.output()));
        assert!(line.contains("Succeeded") && line.contains(&format!(" {rows} ")), "{line}");
    }
    assert!(run.stdout.contains("Succeeded after"), "{}", run.output());

    // S3: the parts, the manifest and the semaphore of each media type, rows as in PostgreSQL
    let keys = w.keys().await;
    for (media, rows) in [("image", image_rows), ("audio", audio_rows)] {
        let mine: Vec<&String> = keys.iter().filter(|k| k.contains(&format!("/{media}/"))).collect();
        let with = |suffix: &str| mine.iter().any(|k| k.ends_with(suffix));
        assert!(
            with("/_manifest.json") && with("/_success") && !with("/_failure"),
            "{keys:?}\n{}\n{}",
            run.output(),
            w.worker_logs()
        );
        let parts: Vec<&&String> = mine.iter().filter(|k| k.ends_with(".parquet")).collect();
        assert!(!parts.is_empty(), "{keys:?}");
        let mut decoded = 0;
        for key in parts {
            decoded += parquet_rows(w.get(key).await);
        }
        assert_eq!(decoded, rows, "{media}: rows in the Parquet files");
        let manifest_key = mine.iter().find(|k| k.ends_with("/_manifest.json")).unwrap();
        let manifest: serde_json::Value = serde_json::from_slice(&w.get(manifest_key).await).unwrap();
        assert_eq!(manifest["rows"], rows, "{manifest}");
    }

    // the credentials were staged for the workers, and deleted when they ended
    let logs: String = ["image", "audio"]
        .iter()
        .flat_map(|m| {
            std::fs::read_dir(w.workdir())
                .unwrap()
                .flatten()
                .filter(move |e| e.file_name().to_string_lossy().contains(m))
        })
        .map(|e| std::fs::read_to_string(e.path().join("console.log")).unwrap())
        .collect();
    assert_eq!(
        logs.matches("read the connection string parameter=/datadump/run-").count(),
        2,
        "{logs}"
    );
    assert_eq!(w.staged_parameters().await, Vec::<String>::new());

    // the password is nowhere in the output (logging at trace level, which is not vacuous: the
    // AWS SDK's staging call is in it), nor in the workers' files
    assert!(
        run.stderr.contains("TRACE") && run.stderr.contains("PutParameter"),
        "{}",
        run.stderr.len()
    );
    let password = w.pg.password();
    assert!(!run.output().contains(password), "{}", run.output());
    assert!(!run.output().contains("password="), "{}", run.output());
    for entry in std::fs::read_dir(w.workdir()).unwrap().flatten() {
        for name in ["job.json", "console.log"] {
            let text = std::fs::read_to_string(entry.path().join(name)).unwrap_or_default();
            assert!(!text.contains(password), "{name} holds the password");
        }
    }
    // nothing of the workers is left running
    nothing_left(&w.workdir().display().to_string()).await;
}

/// A server that accepts only TLS, reached with `sslmode=verify-full` as a careful user
/// would: the whole export goes through, and the manifest and the output say how it connected.
#[tokio::test(flavor = "multi_thread")]
async fn a_dump_over_verified_tls_records_how_it_connected() {
    use crate::support::pki::{Ca, Validity};
    use crate::support::postgres::ServerTls;
    let ca = Ca::new("Run CA");
    let pg = Postgres::start_tls(&ServerTls {
        server: ca.server(&["localhost"], Validity::Current),
        client_ca: None,
        also_plain: false,
    });
    let files = tempfile::tempdir().unwrap();
    let ca_file = files.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let tls = format!("sslmode=verify-full sslrootcert={}", ca_file.display());
    let connection = pg.connection_string_to("localhost", DB, &tls);
    let w = World::with(pg, connection).await;
    let run = w.run("image", "").await;
    assert_eq!(run.status.code(), Some(0), "{}\n{}", run.output(), w.worker_logs());
    let keys = w.keys().await;
    let manifest_key = keys.iter().find(|k| k.ends_with("/image/_manifest.json")).expect("a manifest");
    let manifest: serde_json::Value = serde_json::from_slice(&w.get(manifest_key).await).unwrap();
    assert_eq!(manifest["rows"], w.count("SELECT count(*) FROM image"), "{manifest}");
    let c = &manifest["connection"];
    assert_eq!(c["tls"], true, "{manifest}");
    assert_eq!(c["serverCertificate"], "caAndHostName", "{manifest}");
    assert_eq!(c["sslmode"], "verify-full", "{manifest}");
    assert!(c["tlsVersion"].as_str().is_some_and(|v| v.starts_with("TLSv1.")), "{manifest}");
    // the worker said so in its log; the password appears nowhere in the output
    assert!(
        w.worker_logs().contains("verified against the CA and host name"),
        "{}",
        w.worker_logs()
    );
    assert!(!run.output().contains(w.pg.password()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_query_exits_1_with_the_postgres_error() {
    let w = World::new().await;
    let run = w
        .run("image", "  query: \"SELECT * FROM {media_type}_missing\"\n  backoffLimit: 0\n")
        .await;
    assert_eq!(run.status.code(), Some(1), "{}", run.output());
    let out = run.output();
    assert!(out.contains(r#"relation "image_missing" does not exist"#), "{out}");
    assert!(out.contains("Failed") && out.contains("WorkerFailed"), "{out}");
    let keys = w.keys().await;
    assert!(keys.iter().any(|k| k.ends_with("/image/_failure")), "{keys:?}");
    assert!(!keys.iter().any(|k| k.ends_with("/_success")), "{keys:?}");
    assert_eq!(w.staged_parameters().await, Vec::<String>::new());
    assert!(!out.contains(w.pg.password()), "{out}");
    nothing_left(&w.workdir().display().to_string()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_terminates_the_workers_and_exits_130() {
    let w = World::new().await;
    // the query waits for pg_sleep: the worker is busy dumping until it is stopped
    let child = w.start(
        "image",
        "  query: \"WITH slow AS (SELECT pg_sleep(600)) SELECT {media_type}.* FROM {media_type}, slow\"\n",
    );
    let workdir = w.workdir().display().to_string();
    let (script_pid, pgid) = wait_for("the worker to run its query", Duration::from_secs(60), || {
        let found = processes_mentioning(&workdir);
        let worker = found
            .iter()
            .find(|(_, _, c)| c.contains(" worker ") && c.contains("job.json"))
            .map(|(p, g, _)| (*p, *g));
        let sleeping = w.count("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY%pg_sleep(600)%'") > 0;
        async move { worker.filter(|_| sleeping) }
    })
    .await;
    assert_eq!(script_pid, pgid, "the worker leads its own process group");
    assert!(
        w.staged_parameters().await.len() == 1,
        "credentials are staged while the worker runs"
    );

    interrupt(&child);
    let run = w.finish(child).await;
    assert_eq!(run.status.code(), Some(130), "{}", run.output());
    let out = run.output();
    assert!(out.contains("interrupted by SIGINT"), "{out}");
    assert!(out.contains("terminated 1 worker(s): local-image-1-"), "{out}");

    // nothing of the worker is left, nothing in its group
    nothing_left(&workdir).await;
    wait_for("the worker's process group to be empty", Duration::from_secs(10), || {
        let members = group_members(pgid);
        async move { members.is_empty().then_some(()) }
    })
    .await;
    assert_eq!(w.staged_parameters().await, Vec::<String>::new());
    // the worker was stopped gracefully (SIGTERM), so it said why in `_failure`
    let keys = w.keys().await;
    let failure = keys
        .iter()
        .find(|k| k.ends_with("/image/_failure"))
        .unwrap_or_else(|| panic!("{keys:?}"));
    let report: serde_json::Value = serde_json::from_slice(&w.get(failure).await).unwrap();
    assert!(report["message"].as_str().unwrap().contains("stopped by SIGTERM"), "{report}");
    assert_eq!(report["exitCode"], 143, "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_with_ec2_workers_terminates_the_instances() {
    // EC2 in moto: instances are launched (their user data never runs) and must be terminated
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    moto.create_instance_profile("worker").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dump.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: datadump.dev/v1alpha1\nkind: DataDump\nmetadata: {{name: ec2}}\nspec:\n  mediaTypes: [image, audio]\n  \
             destination: {{bucket: {BUCKET}}}\n  database: {{connectionSecretRef: {{name: db, key: cs}}}}\n  \
             instance: {{iamInstanceProfile: worker, imageId: ami-12345678, instanceType: t4g.nano}}\n"
        ),
    )
    .unwrap();
    let secret = "host=db user=exporter password=ec2-test-secret";
    let secret_file = dir.path().join("connection-string");
    std::fs::write(&secret_file, secret).unwrap();
    let stdout = dir.path().join("stdout");
    let stderr = dir.path().join("stderr");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_datadump"))
        .args(["run", "-f"])
        .arg(&file)
        .arg("--connection-string-file")
        .arg(&secret_file)
        .args(["--poll-interval", "300ms"])
        .env_clear()
        .envs(moto.child_env())
        .env(
            "DATADUMP_WORKER_BINARIES_DIR",
            crate::support::cluster::worker_binaries_dir(dir.path()),
        )
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let ec2 = moto.ec2().await;
    let managed = || async {
        let out = ec2
            .describe_instances()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("tag:datadump.dev/managed-by")
                    .values("datadump-run")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        out.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .map(|i| {
                (
                    i.instance_id().unwrap().to_string(),
                    i.state().unwrap().name().unwrap().as_str().to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    wait_for("two instances to run", Duration::from_secs(60), || async {
        let all = managed().await;
        (all.iter().filter(|(_, s)| s == "running").count() == 2).then_some(())
    })
    .await;
    assert_eq!(
        moto.ssm()
            .await
            .get_parameters_by_path()
            .path("/datadump")
            .recursive(true)
            .send()
            .await
            .unwrap()
            .parameters()
            .len(),
        2
    );

    interrupt(&child);
    let (status, out) = exit_and_output(child, &stdout, &stderr).await;
    assert_eq!(status.code(), Some(130), "{out}");
    assert!(
        out.contains("interrupted by SIGINT") && out.contains("terminated 2 worker(s): i-"),
        "{out}"
    );
    let all = managed().await;
    assert!(all.len() == 2 && all.iter().all(|(_, s)| s == "terminated"), "{all:?}");
    let left = moto
        .ssm()
        .await
        .get_parameters_by_path()
        .path("/datadump")
        .recursive(true)
        .send()
        .await
        .unwrap();
    assert!(left.parameters().is_empty(), "{left:?}");
    assert!(!out.contains("ec2-test-secret"), "{out}");
}

/// `datadump run` takes `spec.database.tls` from files: a flag the spec does not use, a `tls`
/// field without its flag, or a file that is not PEM is refused before anything runs, naming
/// the flag. With the files, each EC2 worker's job in S3 carries the CA bundle (the user data
/// does not), the client certificate and key are staged next to the connection string, and
/// Ctrl-C deletes them with it.
#[tokio::test(flavor = "multi_thread")]
async fn tls_files_reach_the_workers_and_ctrl_c_deletes_the_staged_key() {
    let moto = Moto::start().await;
    moto.create_bucket(BUCKET).await;
    moto.create_instance_profile("worker").await;
    let dir = tempfile::tempdir().unwrap();
    let spec = |tls: &str| {
        format!(
            "apiVersion: datadump.dev/v1alpha1\nkind: DataDump\nmetadata: {{name: tls}}\nspec:\n  mediaTypes: [image, audio]\n  \
             destination: {{bucket: {BUCKET}}}\n  database: {{connectionSecretRef: {{name: db, key: cs}}{tls}}}\n  \
             instance: {{iamInstanceProfile: worker, imageId: ami-12345678, instanceType: t4g.nano}}\n"
        )
    };
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let with_tls = write(
        "tls.yaml",
        &spec(", tls: {caBundle: {configMapKeyRef: {name: rds-ca, key: global-bundle.pem}}, clientCertificateSecretRef: {name: client}}"),
    );
    let without_tls = write("plain.yaml", &spec(""));
    let connection = write("connection-string", "host=db user=exporter password=tls-test-secret");
    let bundle: String = (0..100)
        .map(|i| {
            format!(
                "-----BEGIN CERTIFICATE-----\nMIIF{i:04}{}\n-----END CERTIFICATE-----\n",
                "Q".repeat(1600)
            )
        })
        .collect();
    let bundle_file = write("global-bundle.pem", &bundle);
    let key_body = "MC4CAQAwBQYDK2VwBCIEIrunKEYneverSHOWN";
    let certificate = "-----BEGIN CERTIFICATE-----\nMIIBclient\n-----END CERTIFICATE-----\n";
    let key = format!("-----BEGIN PRIVATE KEY-----\n{key_body}\n-----END PRIVATE KEY-----\n");
    let identity_file = write("client.pem", &format!("{certificate}{key}"));
    let not_pem = write("not.pem", "MIIF0000 DER as text");

    // refused before anything is staged or launched
    let refused = [
        (vec![with_tls.as_str()], "--ca-bundle-file, which is not set"),
        (vec![with_tls.as_str(), "--ca-bundle-file", &not_pem], "holds no PEM certificate"),
        (
            vec![with_tls.as_str(), "--ca-bundle-file", &bundle_file],
            "--client-certificate-file and --client-key-file, or --client-identity-file",
        ),
        (
            vec![
                with_tls.as_str(),
                "--ca-bundle-file",
                &bundle_file,
                "--client-identity-file",
                &bundle_file,
            ],
            "the client key holds no PEM private key",
        ),
        (
            vec![without_tls.as_str(), "--ca-bundle-file", &bundle_file],
            "has no spec.database.tls.caBundle",
        ),
        (
            vec![without_tls.as_str(), "--client-identity-file", &identity_file],
            "no spec.database.tls.clientCertificateSecretRef",
        ),
    ];
    for (args, message) in refused {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_datadump"))
            .args(["run", "--connection-string-file", &connection, "-f"])
            .args(&args)
            .env_clear()
            .envs(moto.child_env())
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success() && text.contains(message), "{args:?}: {text}");
        assert!(!text.contains(key_body), "{text}");
    }
    let ssm = moto.ssm().await;
    let staged = || async {
        ssm.get_parameters_by_path()
            .path("/datadump")
            .recursive(true)
            .with_decryption(true)
            .send()
            .await
            .unwrap()
            .parameters()
            .iter()
            .map(|p| (p.name().unwrap().to_string(), p.value().unwrap_or_default().to_string()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    assert!(staged().await.is_empty(), "nothing staged by a refused run");

    let stdout = dir.path().join("stdout");
    let stderr = dir.path().join("stderr");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_datadump"))
        .args(["run", "-f", &with_tls, "--connection-string-file", &connection])
        .args(["--ca-bundle-file", &bundle_file, "--client-identity-file", &identity_file])
        .args(["--poll-interval", "300ms"])
        .env_clear()
        .envs(moto.child_env())
        .env(
            "DATADUMP_WORKER_BINARIES_DIR",
            crate::support::cluster::worker_binaries_dir(dir.path()),
        )
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let ec2 = moto.ec2().await;
    let user_data = wait_for("two instances with user data", Duration::from_secs(60), || async {
        let out = ec2.describe_instances().send().await.unwrap();
        let ids: Vec<String> = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str()) == Some("running"))
            .map(|i| i.instance_id().unwrap().to_string())
            .collect();
        if ids.len() != 2 {
            return None;
        }
        let mut texts = Vec::new();
        for id in ids {
            let attr = ec2
                .describe_instance_attribute()
                .instance_id(id)
                .attribute("userData".into())
                .send()
                .await
                .unwrap();
            let b64 = attr.user_data().and_then(|u| u.value()).unwrap_or_default().to_string();
            use base64::Engine;
            texts.push(String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap());
        }
        Some(texts)
    })
    .await;
    for text in &user_data {
        assert!(text.len() < 4096 && !text.contains("BEGIN") && !text.contains(key_body), "{text}");
    }
    let params = staged().await;
    assert_eq!(
        params.len(),
        4,
        "a connection string and a client identity per media type: {params:?}"
    );
    let s3 = moto.s3().await;
    let keys = s3.list_objects_v2().bucket(BUCKET).send().await.unwrap();
    let jobs: Vec<String> = keys
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .filter(|k| k.contains("/_job/"))
        .map(str::to_string)
        .collect();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    for job_key in jobs {
        let body = s3
            .get_object()
            .bucket(BUCKET)
            .key(&job_key)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap();
        let job: serde_json::Value = serde_json::from_slice(&body.into_bytes()).unwrap();
        assert_eq!(job["caBundle"].as_str(), Some(bundle.as_str()), "{job_key}");
        let identity = job["clientIdentityParameter"].as_str().expect("the identity's parameter");
        assert!(identity.ends_with("/client-identity"), "{identity}");
        assert_eq!(params[identity], format!("{}\n{}\n", certificate.trim(), key.trim()));
        assert!(!job.to_string().contains(key_body));
    }

    interrupt(&child);
    let (status, out) = exit_and_output(child, &stdout, &stderr).await;
    assert_eq!(status.code(), Some(130), "{out}");
    assert!(
        staged().await.is_empty(),
        "the runner's cleanup deletes the identities with the connection strings"
    );
    assert!(!out.contains(key_body) && !out.contains("tls-test-secret"), "{out}");
}

/// `datadump handoff` on the moto-served dump: exit code and report.
async fn handoff(w: &World, args: &[&str]) -> (Option<i32>, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_datadump"))
        .arg("handoff")
        .args(args)
        .env_clear()
        .envs(w.moto.child_env())
        .env("DATADUMP_LOG", "warn")
        .output()
        .await
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

/// Publishing, end to end: a dump into a Requester Pays bucket with a dataset card. The bucket
/// is made Requester Pays, the card is read by the dataset host's own libraries
/// (`huggingface_hub.DatasetCard`, `datasets.load_dataset`, offline, on a local copy of the
/// dump) with every table's rows and types — a part left by an earlier attempt beside the
/// output is not loaded — and `datadump handoff` finds the dump complete, then reports a
/// deleted part, a truncated part and a changed part each as a failure.
#[tokio::test(flavor = "multi_thread")]
async fn a_published_dump_loads_with_the_hosts_libraries_and_handoff_checks_every_file() {
    let w = World::new().await;
    w.pg.psql(
        DB,
        "COMMENT ON TABLE image IS 'Openly licensed images'; COMMENT ON COLUMN image.title IS 'The title at the source'; \
         COMMENT ON COLUMN image.provider IS 'replaced by the spec';",
    );
    let s3 = w.moto.s3().await;
    let date = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
    let dump = format!("data-dump/{date}/");
    // what an earlier, failed attempt could have left: a complete Parquet file the manifest does not list
    let stale = format!("{dump}image/image_09.parquet");
    s3.put_object()
        .bucket(BUCKET)
        .key(&stale)
        .body(crate::support::cluster::parquet_file(500).into())
        .send()
        .await
        .unwrap();

    let run = w
        .run(
            "image, audio",
            &format!(
                "  destination: {{bucket: {BUCKET}, prefix: data-dump, requesterPays: true}}\n  \
                 output: {{fileSizeThreshold: 1MiB, rowGroupSize: 1MiB}}\n  datasetCard:\n    \
                 prettyName: Openverse sample\n    license: other\n    terms: Each record carries its own license.\n    \
                 gated:\n      prompt: Agree to the terms\n      fields:\n      - {{name: Affiliation}}\n      \
                 - {{name: I agree, type: checkbox}}\n    columns: {{provider: Where it comes from, audio.title: Track title}}\n"
            ),
        )
        .await;
    assert_eq!(run.status.code(), Some(0), "{}\n{}", run.output(), w.worker_logs());
    let payer = s3.get_bucket_request_payment().bucket(BUCKET).send().await.unwrap();
    assert_eq!(
        payer.payer(),
        Some(&aws_sdk_s3::types::Payer::Requester),
        "the bucket makes requesters pay"
    );

    // a local copy of the dump's folder, as `aws s3 cp --recursive` makes it
    let copy = w.dir.path().join("copy").join(&date);
    for key in w.keys().await.iter().filter(|k| k.starts_with(&dump)) {
        let path = copy.join(key.strip_prefix(&dump).unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, w.get(key).await).unwrap();
    }
    let readme = std::fs::read_to_string(copy.join("README.md")).expect("the card is next to the data");
    let out = std::process::Command::new(crate::support::moto::venv_bin().join("python"))
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hf/load_card.py"))
        .arg(&copy)
        .env("HF_HOME", w.dir.path().join("hf"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the dataset host's libraries refused the dump:\n{stderr}\n--- README.md\n{readme}"
    );
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let card = &found["card"];
    assert_eq!(card["pretty_name"], "Openverse sample", "{card}");
    assert_eq!(card["license"], "other");
    assert_eq!(card["size_categories"], serde_json::json!(["1K<n<10K"]));
    assert_eq!(card["extra_gated_prompt"], "Agree to the terms");
    assert_eq!(
        card["extra_gated_fields"],
        serde_json::json!({"Affiliation": "text", "I agree": "checkbox"})
    );
    assert_eq!(found["text_has_title"], true);
    for (media, rows) in [
        ("image", w.count("SELECT count(*) FROM image")),
        ("audio", w.count("SELECT count(*) FROM audio")),
    ] {
        let config = &found["configs"][media];
        assert_eq!(
            config["rows"], rows,
            "{media}: rows load_dataset sees, stale part excluded: {found}"
        );
    }
    let image = &found["configs"]["image"]["features"];
    for (column, ty) in [
        ("id", "int32"),
        ("title", "string"),
        ("created_on", "timestamp[us, tz=UTC]"),
        ("watermarked", "bool"),
        ("standardized_popularity", "float64"),
    ] {
        assert!(image[column].as_str().is_some_and(|t| t.contains(ty)), "{column}: {image}");
    }
    assert!(
        image["keywords"]
            .as_str()
            .is_some_and(|t| t.contains("List") && t.contains("string")),
        "{image}"
    );

    // the card's text: how to download, the database's and the spec's descriptions, checksums
    assert!(
        readme.contains(&format!(
            "aws s3 cp --recursive --request-payer requester s3://{BUCKET}/{dump} ./{date}/"
        )),
        "{readme}"
    );
    assert!(readme.contains("Openly licensed images"), "{readme}");
    assert!(
        readme.contains("| `title` | string | text | yes | The title at the source |"),
        "{readme}"
    );
    assert!(
        readme.contains("| `provider` | string | character varying(80) | yes | Where it comes from |"),
        "{readme}"
    );
    assert!(readme.contains("| `title` | string | text | yes | Track title |"), "{readme}");
    assert!(readme.contains("## Terms\n\nEach record carries its own license."), "{readme}");
    assert!(!readme.contains("image_09"), "{readme}");
    let manifest: serde_json::Value = serde_json::from_slice(&w.get(&format!("{dump}audio/_manifest.json")).await).unwrap();
    for f in manifest["files"].as_array().unwrap() {
        assert!(readme.contains(f["sha256"].as_str().unwrap()), "{readme}");
    }

    // handoff: complete, with the grant for a reader; then each kind of damage, undone after
    let uri = format!("s3://{BUCKET}/{dump}");
    let (code, report) = handoff(
        &w,
        &[&uri, "--requester-pays", "--grant-read", "arn:aws:iam::123456789012:role/reader"],
    )
    .await;
    assert_eq!(code, Some(0), "{report}");
    assert!(report.contains("complete: 2/2 media types verified"), "{report}");
    let policy: serde_json::Value = serde_json::from_str(&report[report.find("{\n").expect("a policy")..]).unwrap();
    assert_eq!(policy["Statement"][1]["Resource"], format!("arn:aws:s3:::{BUCKET}/{dump}*"));
    assert_eq!(policy["Statement"][0]["Principal"]["AWS"], "arn:aws:iam::123456789012:role/reader");
    let file = w.dir.path().join("dump.yaml").display().to_string();
    let (code, report) = handoff(&w, &["-f", &file, "--date", &date]).await;
    assert_eq!(code, Some(0), "the DataDump file names the same dump: {report}");

    let part = |media: &str| format!("{dump}{media}/{media}_01.parquet");
    let put = |key: String, body: Vec<u8>| {
        let s3 = s3.clone();
        async move { s3.put_object().bucket(BUCKET).key(key).body(body.into()).send().await.unwrap() }
    };
    let original = w.get(&part("audio")).await;
    s3.delete_object().bucket(BUCKET).key(part("audio")).send().await.unwrap();
    let (code, report) = handoff(&w, &[&uri]).await;
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report.contains(&format!("{} is in the manifest but missing from S3", part("audio"))) && report.contains("INCOMPLETE"),
        "{report}"
    );
    put(part("audio"), original.clone()).await;

    let original = w.get(&part("image")).await;
    put(part("image"), original[..original.len() / 2].to_vec()).await;
    let (code, report) = handoff(&w, &[&uri]).await;
    assert_eq!(code, Some(1), "{report}");
    assert!(report.contains("(truncated upload?)"), "{report}");

    let mut changed = original.clone();
    changed[original.len() / 3] ^= 0x5a;
    put(part("image"), changed).await;
    let (code, report) = handoff(&w, &[&uri]).await;
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report.contains("SHA-256") && report.contains("the file changed after the dump"),
        "{report}"
    );
    put(part("image"), original).await;
    let (code, report) = handoff(&w, &[&uri]).await;
    assert_eq!(code, Some(0), "restored: {report}");
}

/// A PostgreSQL connection lost in the middle of the COPY fails that attempt, and the retry
/// (the controller's planner, `backoffLimit: 1`) exports every row. The query stalls after
/// 150,000 rows while `gate.stall` is true, so attempt 1's COPY is certainly running, with a
/// multipart upload open, when the test switches the stall off (attempt 1's snapshot still sees
/// it on) and terminates that backend; attempt 2 reads with the stall off.
#[tokio::test(flavor = "multi_thread")]
async fn a_postgres_connection_killed_mid_copy_fails_attempt_1_and_attempt_2_exports_every_row() {
    use crate::worker_faults::{parquet_digest, table_digest, table_sql, terminate_copy};
    let w = World::new().await;
    w.pg.psql(DB, &table_sql("sound", 200_000));
    w.pg.psql(DB, "CREATE TABLE gate (stall boolean NOT NULL); INSERT INTO gate VALUES (true);");
    let child = w.start_with_env(
        "sound",
        "  query: \"SELECT * FROM {media_type} WHERE id <= 150000 OR NOT (SELECT stall FROM gate) OR pg_sleep(600) IS NULL\"\n  \
         backoffLimit: 1\n  output: {rowGroupSize: 1MiB, parallelism: 1}\n",
        &[("DATADUMP_PART_SIZE", "5242880")],
    );
    let s3 = w.moto.s3().await;
    let unfinished = || async {
        let out = s3.list_multipart_uploads().bucket(BUCKET).send().await.unwrap();
        out.uploads().len()
    };
    wait_for("attempt 1 to have a multipart upload open", Duration::from_secs(300), || async {
        (unfinished().await > 0).then_some(())
    })
    .await;
    w.pg.psql(DB, "UPDATE gate SET stall = false");
    terminate_copy(&w.pg, DB).await;
    let run = w.finish(child).await;
    let out = run.output();
    assert_eq!(run.status.code(), Some(0), "{out}\n{}", w.worker_logs());

    // the run said attempt 1 failed, with PostgreSQL's message, and retried
    let retrying = out
        .lines()
        .find(|l| l.contains("Retrying"))
        .unwrap_or_else(|| panic!("no Retrying note: {out}"));
    assert!(
        retrying.contains("attempt 1 failed") && retrying.contains("terminating connection due to administrator command"),
        "{retrying}"
    );
    assert!(!out.contains(w.pg.password()), "{out}");

    // S3: attempt 1's `_failure` with the cause, attempt 2's `_success`, every row exactly
    let keys = w.keys().await;
    let key = |name: &str| {
        keys.iter()
            .find(|k| k.ends_with(&format!("/sound/{name}")))
            .unwrap_or_else(|| panic!("no {name}: {keys:?}"))
            .clone()
    };
    let failure: serde_json::Value = serde_json::from_slice(&w.get(&key("_failure")).await).unwrap();
    assert_eq!(failure["attempt"], 1, "{failure}");
    assert!(
        failure["message"]
            .as_str()
            .unwrap()
            .contains("terminating connection due to administrator command"),
        "{failure}"
    );
    let success: serde_json::Value = serde_json::from_slice(&w.get(&key("_success")).await).unwrap();
    assert_eq!(success["attempt"], 2, "{success}");
    let manifest: serde_json::Value = serde_json::from_slice(&w.get(&key("_manifest.json")).await).unwrap();
    assert_eq!(manifest["attempt"], 2, "{manifest}");
    let mut files = Vec::new();
    for f in manifest["files"].as_array().unwrap() {
        files.push(w.get(f["key"].as_str().unwrap()).await);
    }
    let want = table_digest(&w.pg, DB, "sound");
    assert_eq!(want.rows, 200_000);
    assert_eq!(parquet_digest(&files), want);
    assert_eq!(manifest["rows"], want.rows);
    assert_eq!(unfinished().await, 0, "attempt 1's open upload was aborted");
    assert_eq!(w.staged_parameters().await, Vec::<String>::new());
    nothing_left(&w.workdir().display().to_string()).await;
    eprintln!(
        "worker_faults: run: attempt 1 failed ({}), attempt 2 exported {} rows in {} file(s); unfinished uploads left: 0",
        failure["message"],
        want.rows,
        files.len()
    );
}

/// `datadump run` against an endpoint where nothing listens (a wrong `--aws-endpoint-url`)
/// gives up after `--give-up-after` with one line naming the endpoint and the fix, exit 1,
/// having launched and staged nothing; and Ctrl-C before AWS ever answered exits at once, with
/// nothing to clean up.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_that_never_reaches_aws_gives_up_naming_the_endpoint_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://127.0.0.1:{}", crate::support::net::free_port());
    let file = dir.path().join("dump.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: datadump.dev/v1alpha1\nkind: DataDump\nmetadata: {{name: nowhere}}\nspec:\n  mediaTypes: [image]\n  \
             destination: {{bucket: {BUCKET}}}\n  database: {{connectionSecretRef: {{name: db, key: cs}}}}\n  \
             instance: {{iamInstanceProfile: worker}}\n"
        ),
    )
    .unwrap();
    let secret = "host=127.0.0.1 user=exporter password=never-shown-4417";
    let workdir = dir.path().join("workers");
    let start = |give_up: &str, name: &str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_datadump"))
            .args(["run", "--compute", "local", "-f"])
            .arg(&file)
            .arg("--workdir")
            .arg(&workdir)
            .args([
                "--aws-endpoint-url",
                &endpoint,
                "--give-up-after",
                give_up,
                "--poll-interval",
                "300ms",
            ])
            .env_clear()
            .env("PATH", crate::support::moto::worker_path())
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("DATADUMP_CONNECTION_STRING", secret)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join(format!("{name}.stdout"))).unwrap())
            .stderr(std::fs::File::create(dir.path().join(format!("{name}.stderr"))).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("start datadump run")
    };
    let output = |name: &str| {
        let read = |ext: &str| std::fs::read_to_string(dir.path().join(format!("{name}.{ext}"))).unwrap_or_default();
        format!("--- stdout\n{}\n--- stderr\n{}", read("stdout"), read("stderr"))
    };
    let ends = |mut child: tokio::process::Child| async move {
        tokio::time::timeout(Duration::from_secs(120), child.wait())
            .await
            .expect("datadump run gives up on its own")
            .unwrap()
    };
    // nothing launched: no worker folder, no worker process
    let nothing_launched = || {
        let folders: Vec<_> = std::fs::read_dir(&workdir).into_iter().flatten().flatten().collect();
        assert!(folders.is_empty(), "a worker was started: {folders:?}");
        assert!(processes_mentioning(&workdir.display().to_string()).is_empty());
    };

    let status = ends(start("3s", "give-up")).await;
    let out = output("give-up");
    assert_eq!(status.code(), Some(1), "{out}");
    let said: Vec<&str> = out.lines().filter(|l| l.contains("never reached AWS")).collect();
    assert_eq!(said.len(), 1, "{out}");
    assert!(
        said[0].contains(&format!("never reached AWS at {endpoint} (ListObjectsV2: Connection refused"))
            && said[0].contains("in 3s; check --aws-endpoint-url / AWS_ENDPOINT_URL and the network"),
        "{out}"
    );
    assert!(!out.contains("cleanup failed") && !out.contains(secret), "{out}");
    nothing_launched();
    eprintln!("worker_faults: run gave up with: {}", said[0]);

    // Ctrl-C while AWS has never answered: nothing to clean up, so no cleanup retries
    let child = start("10m", "ctrl-c");
    wait_for("the first failed look", Duration::from_secs(60), || async {
        output("ctrl-c").contains("error (retrying): ListObjectsV2").then_some(())
    })
    .await;
    interrupt(&child);
    let status = ends(child).await;
    let out = output("ctrl-c");
    assert_eq!(status.code(), Some(130), "{out}");
    assert!(
        out.contains("interrupted by SIGINT after") && out.contains("AWS was never reached, so nothing was staged or launched"),
        "{out}"
    );
    assert!(!out.contains("while cleaning up") && !out.contains(secret), "{out}");
    nothing_launched();
}
