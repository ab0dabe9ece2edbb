//! A whole test world for the controller: a namespace of its own on the real API server (the
//! committed CRD installed; the chart's RBAC and ServiceAccount applied, see `kube::tenant`),
//! moto (EC2, S3, SSM, IAM) with a bucket and an instance profile, a Secret holding a
//! connection string, and the real `datadump controller` binary as a child process (so a test
//! can kill and restart it at any step) that authenticates as that ServiceAccount through the
//! fault proxy. Helpers play the worker by writing semaphores.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ec2::types::Filter;
use datadump::api::DataDump;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use super::kube::tenant::Tenant;
use super::moto::Moto;
use super::net::wait_for;

/// The bucket.
pub const BUCKET: &str = "datasets";
/// The instance profile.
pub const PROFILE: &str = "datadump-worker";
/// The database password inside the connection string (tests grep for it).
pub const PASSWORD: &str = "s3cr3t-Pa55word-never-shown";
/// The connection string in the Secret.
pub fn connection_string() -> String {
    format!("host=db.internal port=5432 dbname=openledger user=exporter password={PASSWORD}")
}

/// The worker binaries the controller copies into the bucket (moto never runs user data, so
/// small stand-in files do).
pub fn worker_binaries_dir(dir: &std::path::Path) -> PathBuf {
    let bin = dir.join("worker-binaries");
    std::fs::create_dir_all(&bin).unwrap();
    for arch in ["x86_64", "aarch64"] {
        std::fs::write(
            bin.join(format!("datadump-worker-{arch}")),
            format!("#!/bin/sh\n# datadump worker for {arch}\n"),
        )
        .unwrap();
    }
    bin
}

/// One instance as EC2 reports it.
#[derive(Clone, Debug)]
pub struct Ec2Instance {
    pub id: String,
    pub state: String,
    pub tags: std::collections::BTreeMap<String, String>,
    pub user_data: Option<String>,
    pub shutdown_behavior: Option<String>,
    pub devices: Vec<String>,
    pub instance_type: String,
    pub http_tokens: Option<String>,
    pub lifecycle: Option<String>,
}

/// The test world.
pub struct World {
    /// The test's namespace, identity and fault proxy on the shared API server.
    pub kube: Tenant,
    /// The namespace every object of this test lives in.
    pub ns: String,
    pub moto: Moto,
    pub dir: tempfile::TempDir,
    /// The admin's kubeconfig (default namespace [`ns`](Self::ns)), for the test and `kubectl`.
    pub kubeconfig: PathBuf,
    /// The admin's client (default namespace [`ns`](Self::ns)).
    pub client: kube::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub s3: aws_sdk_s3::Client,
    pub ssm: aws_sdk_ssm::Client,
    controllers: Vec<Child>,
    log_count: usize,
}

impl World {
    /// Starts everything but the controller.
    pub async fn start() -> World {
        let dir = tempfile::tempdir().unwrap();
        let test = std::thread::current()
            .name()
            .unwrap_or_default()
            .rsplit("::")
            .next()
            .unwrap_or_default()
            .to_string();
        let kube = Tenant::create(dir.path(), &test).await;
        let ns = kube.ns.clone();
        let moto = Moto::start().await;
        moto.create_bucket(BUCKET).await;
        moto.create_instance_profile(PROFILE).await;
        let kubeconfig = kube.admin_kubeconfig.clone();
        let client = kube.client.clone();
        let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
        let secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "catalog-db", "namespace": ns},
            "stringData": {"connectionString": connection_string()},
            "data": {"connectionString": base64_encode(&connection_string())}
        }))
        .unwrap();
        secrets.create(&PostParams::default(), &secret).await.unwrap();
        World {
            ec2: moto.ec2().await,
            s3: moto.s3().await,
            ssm: moto.ssm().await,
            kube,
            ns,
            moto,
            dir,
            kubeconfig,
            client,
            controllers: Vec::new(),
            log_count: 0,
        }
    }

    /// Creates a Secret with one key in the test namespace.
    pub async fn create_secret(&self, name: &str, key: &str, value: &str) {
        let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(self.client.clone(), &self.ns);
        let secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": self.ns},
            "data": {key: base64_encode(value)}
        }))
        .unwrap();
        secrets.create(&PostParams::default(), &secret).await.unwrap();
    }

    /// Creates a `kubernetes.io/tls` Secret (`tls.crt`, `tls.key`) in the test namespace, as
    /// `kubectl create secret tls` does.
    pub async fn create_tls_secret(&self, name: &str, certificate: &str, key: &str) {
        let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(self.client.clone(), &self.ns);
        let secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": self.ns},
            "data": {"tls.crt": base64_encode(certificate), "tls.key": base64_encode(key)}
        }))
        .unwrap();
        secrets.create(&PostParams::default(), &secret).await.unwrap();
    }

    /// Creates a ConfigMap with one key in the test namespace, or replaces its data.
    pub async fn put_config_map(&self, name: &str, key: &str, value: &str) {
        let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(self.client.clone(), &self.ns);
        let map = json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": self.ns},
            "data": {key: value}
        });
        maps.patch(name, &PatchParams::apply("datadump-test").force(), &Patch::Apply(&map))
            .await
            .unwrap();
    }

    /// Starts `datadump controller` as a child process; `env` adds or overrides variables
    /// (e.g. `DATADUMP_FAIL_AT`). It watches the world's namespace with the chart's RBAC, as its
    /// ServiceAccount, through the fault proxy. Its log goes to `controller-N.log` in the
    /// world's dir.
    pub fn start_controller(&mut self, env: &[(&str, &str)]) -> usize {
        self.start_controller_binary(Path::new(env!("CARGO_BIN_EXE_datadump")), env)
    }

    /// [`World::start_controller`] with another build of `datadump` (benchmarks compare builds).
    pub fn start_controller_binary(&mut self, binary: &Path, env: &[(&str, &str)]) -> usize {
        self.log_count += 1;
        let log = self.dir.path().join(format!("controller-{}.log", self.log_count));
        let mut cmd = Command::new(binary);
        cmd.arg("controller")
            .env_clear()
            .env("DATADUMP_HTTP_ADDR", "127.0.0.1:0")
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KUBECONFIG", &self.kube.controller_kubeconfig)
            .env("DATADUMP_NAMESPACE", &self.ns)
            .env("POD_NAMESPACE", &self.ns)
            .env("DATADUMP_POLL_INTERVAL", "1s")
            .env("DATADUMP_SWEEP_INTERVAL", "2s")
            .env("DATADUMP_LAUNCH_GRACE", "20s")
            .env("DATADUMP_WORKER_BINARIES_DIR", worker_binaries_dir(self.dir.path()))
            .env(
                "DATADUMP_LOG",
                "debug,hyper=info,aws_smithy_runtime=info,aws_smithy_runtime_api=info,h2=info,tower=info,rustls=info",
            )
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in self.moto.child_env() {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.controllers.push(cmd.spawn().expect("start datadump controller"));
        self.controllers.len() - 1
    }

    /// The HTTP port (metrics, probes) of the most recently started controller, read from its
    /// log (it binds port 0, so parallel tests never collide).
    pub async fn http_port(&self) -> u16 {
        let log = self.dir.path().join(format!("controller-{}.log", self.log_count));
        wait_for("the controller's HTTP address in its log", Duration::from_secs(30), || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            async move {
                text.lines()
                    .find(|l| l.contains("serving /metrics"))
                    .and_then(|l| l.rsplit("addr=127.0.0.1:").next())
                    .and_then(|p| p.trim().parse().ok())
            }
        })
        .await
    }

    /// The controller's `/metrics` text.
    pub async fn metrics(&self) -> String {
        http_get(self.http_port().await, "/metrics").await
    }

    /// Kills a controller (SIGKILL) and reaps it.
    pub fn kill_controller(&mut self, n: usize) {
        let _ = self.controllers[n].kill();
        let _ = self.controllers[n].wait();
    }

    /// Waits for a controller to exit by itself (a fail point) and returns its exit code.
    pub async fn wait_controller_exit(&mut self, n: usize) -> Option<i32> {
        let child = &mut self.controllers[n];
        wait_for("controller to exit", Duration::from_secs(60), || {
            let r = child.try_wait().ok().flatten().map(|s| s.code());
            async move { r }
        })
        .await
    }

    /// Everything every controller logged so far.
    pub fn logs(&self) -> String {
        (1..=self.log_count)
            .map(|i| std::fs::read_to_string(self.dir.path().join(format!("controller-{i}.log"))).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The DataDump API in the test namespace.
    pub fn dumps(&self) -> Api<DataDump> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Creates a DataDump from the spec fields given as YAML (merged into a valid base).
    pub async fn create(&self, name: &str, spec_yaml: &str) -> DataDump {
        let mut spec: serde_json::Value = serde_yaml::from_str(
            "mediaTypes: [image, audio]\ndestination: {bucket: datasets}\ndatabase: {connectionSecretRef: {name: catalog-db, key: connectionString}}\ninstance: {iamInstanceProfile: datadump-worker, instanceType: t4g.nano}\n",
        )
        .unwrap();
        let over: serde_json::Value = serde_yaml::from_str(spec_yaml).unwrap_or(json!({}));
        if let Some(o) = over.as_object() {
            for (k, v) in o {
                spec[k] = v.clone();
            }
        }
        let obj = json!({"apiVersion": "datadump.dev/v1alpha1", "kind": "DataDump", "metadata": {"name": name, "namespace": self.ns}, "spec": spec});
        let dd: DataDump = serde_json::from_value(obj).unwrap();
        self.dumps().create(&PostParams::default(), &dd).await.unwrap()
    }

    /// Merge-patches a DataDump's spec.
    pub async fn patch_spec(&self, name: &str, spec: serde_json::Value) {
        self.dumps()
            .patch(name, &PatchParams::default(), &Patch::Merge(json!({"spec": spec})))
            .await
            .unwrap();
    }

    /// Deletes a DataDump.
    pub async fn delete(&self, name: &str) {
        self.dumps().delete(name, &DeleteParams::default()).await.unwrap();
    }

    /// Polls the DataDump until `pred` holds; on timeout the panic shows the object and the
    /// end of the controller's log.
    pub async fn wait_dump(&self, name: &str, what: &str, pred: impl Fn(&DataDump) -> bool) -> DataDump {
        let api = self.dumps();
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            let current = api.get_opt(name).await.ok().flatten();
            if let Some(d) = current.as_ref().filter(|d| pred(d)) {
                return d.clone();
            }
            if std::time::Instant::now() > deadline {
                let logs = self.logs();
                let tail: Vec<&str> = logs.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
                panic!(
                    "timed out waiting for {what}; object: {}\n--- controller log tail ---\n{}",
                    serde_json::to_string_pretty(&current.map(|d| d.status)).unwrap(),
                    tail.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every Event in the test namespace as (reason, note).
    pub async fn events(&self) -> Vec<(String, String)> {
        self.event_objects()
            .await
            .into_iter()
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }

    /// Every Event in the namespace, as the API server has it.
    pub async fn event_objects(&self) -> Vec<k8s_openapi::api::events::v1::Event> {
        let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(self.client.clone(), &self.ns);
        api.list(&Default::default()).await.unwrap().items
    }

    /// Every Event with this reason, once the first counts at least `count` notes in its series
    /// (a repeated note), waiting up to 90 s.
    pub async fn wait_event_series(&self, reason: &str, count: i32) -> Vec<k8s_openapi::api::events::v1::Event> {
        wait_for(
            &format!("a {reason} Event counted {count} times"),
            Duration::from_secs(90),
            || async {
                let same: Vec<_> = self
                    .event_objects()
                    .await
                    .into_iter()
                    .filter(|e| e.reason.as_deref() == Some(reason))
                    .collect();
                (same.first()?.series.as_ref()?.count >= count).then_some(same)
            },
        )
        .await
    }

    /// Every instance carrying the uid tag.
    pub async fn instances(&self, uid: &str) -> Vec<Ec2Instance> {
        let out = self
            .ec2
            .describe_instances()
            .filters(Filter::builder().name("tag:datadump.dev/uid").values(uid).build())
            .send()
            .await
            .unwrap();
        let mut v = Vec::new();
        for i in out.reservations().iter().flat_map(|r| r.instances()) {
            let id = i.instance_id().unwrap().to_string();
            let attr = self
                .ec2
                .describe_instance_attribute()
                .instance_id(&id)
                .attribute("userData".into())
                .send()
                .await
                .unwrap();
            let shutdown = self
                .ec2
                .describe_instance_attribute()
                .instance_id(&id)
                .attribute("instanceInitiatedShutdownBehavior".into())
                .send()
                .await
                .unwrap();
            v.push(Ec2Instance {
                id,
                state: i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()).unwrap_or_default(),
                tags: i
                    .tags()
                    .iter()
                    .map(|t| (t.key().unwrap_or_default().into(), t.value().unwrap_or_default().into()))
                    .collect(),
                user_data: attr
                    .user_data()
                    .and_then(|u| u.value())
                    .map(|b| String::from_utf8(base64_decode(b)).unwrap()),
                shutdown_behavior: shutdown
                    .instance_initiated_shutdown_behavior()
                    .and_then(|b| b.value())
                    .map(str::to_string),
                devices: i
                    .block_device_mappings()
                    .iter()
                    .filter_map(|d| d.device_name().map(str::to_string))
                    .collect(),
                instance_type: i.instance_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
                http_tokens: i.metadata_options().and_then(|m| m.http_tokens()).map(|t| t.as_str().to_string()),
                lifecycle: i.instance_lifecycle().map(|l| l.as_str().to_string()),
            });
        }
        v
    }

    /// Waits until the object's instances for `media` number `n`.
    pub async fn wait_instances(&self, uid: &str, what: &str, pred: impl Fn(&[Ec2Instance]) -> bool) -> Vec<Ec2Instance> {
        let pred = Arc::new(pred);
        wait_for(what, Duration::from_secs(90), || {
            let pred = pred.clone();
            async move {
                let v = self.instances(uid).await;
                pred(&v).then_some(v)
            }
        })
        .await
    }

    /// The end of every scenario: nothing of this object is left pending, running or stopping.
    pub async fn assert_nothing_left_running(&self, uid: &str) {
        let live: Vec<_> = self
            .wait_instances(uid, "every instance terminated", |v| v.iter().all(|i| i.state == "terminated"))
            .await;
        assert!(live.iter().all(|i| i.state == "terminated"));
    }

    /// Plays the worker: uploads small Parquet files (rows per file), the manifest, then
    /// `_success`, all in the worker's contract format.
    pub async fn write_success(&self, dd: &DataDump, media: &str, rows_per_file: &[usize]) {
        use datadump::contract::{MANIFEST_VERSION, Manifest, ManifestFile, SuccessReport};
        let prefix = media_prefix(dd, media);
        let (attempt, token) = attempt_of(dd, media);
        let mut files = Vec::new();
        for (n, rows) in rows_per_file.iter().enumerate() {
            let key = format!("{prefix}{media}_{:02}.parquet", n + 1);
            let body = parquet_file(*rows);
            files.push(ManifestFile {
                key: key.clone(),
                size: body.len() as u64,
                sha256: sha256_hex(&body),
                rows: Some(*rows as u64),
            });
            self.put(&key, body).await;
        }
        let now = jiff::Timestamp::now();
        let total: u64 = rows_per_file.iter().map(|r| *r as u64).sum();
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            media_type: media.into(),
            dump_date: dd.status.as_ref().and_then(|s| s.dump_date.clone()).unwrap(),
            rows: Some(total),
            started_at: now,
            columns: Vec::new(),
            description: None,
            writer: "test".into(),
            attempt,
            connection: None,
            token: token.clone(),
            time: now,
            files,
        };
        let success = SuccessReport {
            files: manifest.files.len() as u64,
            bytes: manifest.bytes(),
            rows: Some(total),
            attempt,
            token,
            time: now,
        };
        self.put(&format!("{prefix}_manifest.json"), serde_json::to_vec(&manifest).unwrap())
            .await;
        self.put(&format!("{prefix}_success"), serde_json::to_vec(&success).unwrap()).await;
    }

    /// Plays a worker whose upload went wrong: the manifest claims more bytes for the last part
    /// than S3 holds, then `_success` is written anyway.
    pub async fn write_truncated_success(&self, dd: &DataDump, media: &str) {
        use datadump::contract::{MANIFEST_VERSION, Manifest, ManifestFile, SuccessReport};
        let prefix = media_prefix(dd, media);
        let (attempt, token) = attempt_of(dd, media);
        let key = format!("{prefix}{media}_01.parquet");
        let body = parquet_file(20);
        let full = body.len() as u64;
        self.put(&key, body[..body.len() / 2].to_vec()).await;
        let now = jiff::Timestamp::now();
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            media_type: media.into(),
            dump_date: dd.status.as_ref().and_then(|s| s.dump_date.clone()).unwrap(),
            files: vec![ManifestFile {
                key,
                size: full,
                sha256: String::new(),
                rows: Some(20),
            }],
            rows: Some(20),
            started_at: now,
            columns: Vec::new(),
            description: None,
            writer: "test".into(),
            attempt,
            connection: None,
            token: token.clone(),
            time: now,
        };
        let success = SuccessReport {
            files: 1,
            bytes: full,
            rows: Some(20),
            attempt,
            token,
            time: now,
        };
        self.put(&format!("{prefix}_manifest.json"), serde_json::to_vec(&manifest).unwrap())
            .await;
        self.put(&format!("{prefix}_success"), serde_json::to_vec(&success).unwrap()).await;
    }

    /// Plays a failing worker for the current attempt.
    pub async fn write_failure(&self, dd: &DataDump, media: &str, message: &str) {
        use datadump::contract::{FailureReport, Stage};
        let prefix = media_prefix(dd, media);
        let (attempt, token) = attempt_of(dd, media);
        let report = FailureReport {
            exit_code: 1,
            step: Stage::Dumping,
            message: String::new(),
            log_tail: message.into(),
            attempt,
            token,
            time: jiff::Timestamp::now(),
        };
        self.put(&format!("{prefix}_failure"), serde_json::to_vec(&report).unwrap()).await;
    }

    /// Writes one object to the bucket.
    pub async fn put(&self, key: &str, body: Vec<u8>) {
        self.s3.put_object().bucket(BUCKET).key(key).body(body.into()).send().await.unwrap();
    }

    /// One object's body.
    pub async fn get_object(&self, key: &str) -> Vec<u8> {
        self.s3
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap()
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes()
            .to_vec()
    }

    /// Waits until `media` runs its attempt number `attempt`.
    pub async fn wait_attempt_running(&self, name: &str, media: &str, attempt: u32) -> DataDump {
        self.wait_dump(name, &format!("{media} attempt {attempt} running"), |d| {
            d.status
                .as_ref()
                .and_then(|s| s.media(media))
                .is_some_and(|m| m.attempt == attempt && m.phase == datadump::api::MediaPhase::Running)
        })
        .await
    }

    /// Every key in the bucket.
    pub async fn keys(&self) -> Vec<String> {
        let out = self.s3.list_objects_v2().bucket(BUCKET).send().await.unwrap();
        out.contents().iter().filter_map(|o| o.key().map(str::to_string)).collect()
    }

    /// Polls SSM until the parameter names satisfy `pred`.
    pub async fn wait_for_parameters(&self, pred: impl Fn(&[String]) -> bool) -> Vec<String> {
        let pred = Arc::new(pred);
        wait_for("SSM parameters", Duration::from_secs(60), || {
            let pred = pred.clone();
            async move {
                let p = self.parameters().await;
                pred(&p).then_some(p)
            }
        })
        .await
    }

    /// SSM parameter names that exist.
    pub async fn parameters(&self) -> Vec<String> {
        let out = self.ssm.describe_parameters().send().await.unwrap();
        out.parameters().iter().filter_map(|p| p.name().map(str::to_string)).collect()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for c in &mut self.controllers {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() && std::env::var_os("DATADUMP_KUBE_KEEP").is_some() {
            let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
            eprintln!("kept the failed test's logs and kubeconfigs in {}", dir.keep().display());
        }
    }
}

/// The current attempt number and token of a media type.
pub fn attempt_of(dd: &DataDump, media: &str) -> (u32, String) {
    let m = dd.status.as_ref().and_then(|s| s.media(media)).expect("media type started");
    (m.attempt, m.token.clone().expect("token recorded"))
}

/// `PREFIX/DATE/MEDIA/` of a dump that has started.
pub fn media_prefix(dd: &DataDump, media: &str) -> String {
    let date = dd.status.as_ref().and_then(|s| s.dump_date.clone()).expect("dump started");
    format!("{}/{date}/{media}/", dd.spec.destination.prefix)
}

/// A plain HTTP/1.1 GET on 127.0.0.1 (the controller's own endpoints); empty when nothing
/// listens yet.
pub async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    out
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

/// A valid Parquet file with one INT64 column and `rows` rows.
pub fn parquet_file(rows: usize) -> Vec<u8> {
    use parquet::data_type::Int64Type;
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    let schema = Arc::new(parquet::schema::parser::parse_message_type("message m { REQUIRED INT64 id; }").unwrap());
    let mut buf = Vec::new();
    let mut w = SerializedFileWriter::new(&mut buf, schema, Arc::new(WriterProperties::builder().build())).unwrap();
    let mut rg = w.next_row_group().unwrap();
    let mut col = rg.next_column().unwrap().unwrap();
    let ids: Vec<i64> = (0..rows as i64).collect();
    col.typed::<Int64Type>().write_batch(&ids, None, None).unwrap();
    col.close().unwrap();
    rg.close().unwrap();
    w.close().unwrap();
    buf
}
