//! The AWS emulator: a real moto server child process on a free loopback port, one per test,
//! killed on drop. `$MOTO_SERVER` when set; otherwise moto's own server started through
//! `tests/moto/moto_server.py` with the venv's Python (made by `scripts/setup.sh`), which adds
//! the two S3 calls of Requester Pays that moto lacks (GetBucketRequestPayment and
//! PutBucketRequestPayment, on moto's own bucket model).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::net::{free_port, wait_for};

/// A running moto server.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

/// The project's tool directory: `.venv/bin` when present.
pub fn venv_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin")
}

/// `PATH` with the project's venv first, for child processes that need `aws`.
pub fn path_with_venv() -> String {
    format!("{}:{}", venv_bin().display(), std::env::var("PATH").unwrap_or_default())
}

/// The command that starts moto (program and leading arguments).
fn moto_command() -> Command {
    if let Ok(p) = std::env::var("MOTO_SERVER") {
        return Command::new(p);
    }
    let python = venv_bin().join("python");
    let mut cmd = Command::new(if python.exists() { python } else { "python3".into() });
    cmd.arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/moto/moto_server.py"));
    cmd
}

impl Moto {
    /// The moto process's id (benchmarks read its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts moto and waits until it answers.
    pub async fn start() -> Moto {
        let port = free_port();
        let child = moto_command()
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server (run scripts/setup.sh first)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let moto = Moto { child, endpoint };
        let url = format!("{}/moto-api/", moto.endpoint);
        wait_for("moto_server to answer", Duration::from_secs(30), || {
            let url = url.clone();
            async move {
                tokio::net::TcpStream::connect(url.trim_start_matches("http://").split('/').next().unwrap())
                    .await
                    .ok()
            }
        })
        .await;
        moto
    }

    /// An SDK config for this emulator (region us-east-1, static test credentials).
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "moto"))
            .load()
            .await
    }

    /// An S3 client with path-style addressing, as moto needs.
    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(&self.sdk_config().await)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// An EC2 client.
    pub async fn ec2(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.sdk_config().await)
    }

    /// An SSM client.
    pub async fn ssm(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&self.sdk_config().await)
    }

    /// Environment for a child process (the AWS CLI, the worker script) that should talk to
    /// this emulator.
    pub fn child_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_REGION", "us-east-1"),
            ("PATH", &path_with_venv()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Creates a bucket.
    pub async fn create_bucket(&self, bucket: &str) {
        self.s3().await.create_bucket().bucket(bucket).send().await.expect("create bucket");
    }

    /// Creates an IAM instance profile (RunInstances in moto requires it to exist).
    pub async fn create_instance_profile(&self, name: &str) {
        let url = format!(
            "{}/?Action=CreateInstanceProfile&InstanceProfileName={name}&Version=2010-05-08",
            self.endpoint
        );
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                "POST",
                "-H",
                "Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=x",
                &url,
            ])
            .output()
            .expect("curl");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "create instance profile {name}");
    }
}

/// `PATH` for a worker script run locally: the venv (`aws`) first, then wherever odbc2parquet
/// is (`$ODBC2PARQUET`'s folder, `$CARGO_HOME/bin`).
pub fn worker_path() -> String {
    let mut dirs = vec![path_with_venv()];
    if let Ok(p) = std::env::var("ODBC2PARQUET") {
        dirs.push(std::path::Path::new(&p).parent().unwrap().display().to_string());
    }
    let cargo_home = std::env::var("CARGO_HOME").unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap_or_default()));
    dirs.push(format!("{cargo_home}/bin"));
    dirs.join(":")
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
