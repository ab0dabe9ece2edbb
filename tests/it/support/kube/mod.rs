//! A real Kubernetes API server for the tests: etcd and kube-apiserver (v1.37.2, built from Go
//! modules by `scripts/setup.sh` into `.tools/k8s/bin/`, pinned by `tests/k8s/go.mod`), started
//! the way envtest starts them:
//!
//! - once per test binary (a start costs seconds; every test gets its own namespace instead), on
//!   free 127.0.0.1 ports, in a temp dir holding etcd's data, the certificates and the logs;
//! - TLS with a CA made here (openssl), token authentication (`--token-auth-file`: one admin in
//!   `system:masters`), `--authorization-mode=RBAC`, service-account keys so the TokenRequest
//!   API mints ServiceAccount tokens;
//! - the committed CRD applied with the real `kubectl` and waited on until `Established`.
//!
//! Both processes run under a tiny `sh` supervisor whose stdin is a pipe held by this process:
//! when the test binary exits (however it exits), the pipe closes and the supervisor stops its
//! server; etcd's supervisor then removes the temp dir. `DATADUMP_KUBE_KEEP=1` keeps it.

pub mod proxy;
pub mod raw;
pub mod tenant;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::net::free_port;

/// The admin's bearer token (group `system:masters`).
const ADMIN_TOKEN: &str = "datadump-test-admin-token";

/// The running server, shared by every test of this binary.
pub struct Server {
    /// The temp dir: `etcd/`, certificates, `etcd.log`, `kube-apiserver.log`.
    pub dir: PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The CA that signed the serving certificate (PEM).
    pub ca_pem: Vec<u8>,
    /// A kubeconfig for the admin (no namespace set).
    pub admin_kubeconfig: PathBuf,
    /// etcd's client URL, `http://127.0.0.1:PORT`.
    pub etcd_url: String,
    /// The supervisors' stdin pipes: closed when the process exits, which stops the servers.
    _supervisors: Mutex<Vec<(Child, ChildStdin)>>,
}

static SERVER: OnceLock<Server> = OnceLock::new();

/// The shared server, started on first use (blocking, a few seconds).
pub fn server() -> &'static Server {
    SERVER.get_or_init(Server::start)
}

/// `.tools/k8s/bin/NAME`: etcd, kube-apiserver, kubectl.
pub fn tool(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/k8s/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup.sh (it builds etcd, kube-apiserver and kubectl from tests/k8s/go.mod)",
        path.display()
    );
    path
}

/// The real `kubectl` (same version as the server) with `kubeconfig`.
pub fn kubectl(kubeconfig: &Path) -> Command {
    let mut cmd = Command::new(tool("kubectl"));
    cmd.arg("--kubeconfig").arg(kubeconfig);
    cmd
}

/// Runs `kubectl ARGS` with `stdin`, returning its output whatever the exit code.
pub fn kubectl_run(kubeconfig: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = kubectl(kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write to kubectl");
    child.wait_with_output().expect("run kubectl")
}

/// Runs `kubectl ARGS` and panics with its stderr unless it succeeds; returns stdout.
pub fn kubectl_ok(kubeconfig: &Path, args: &[&str], stdin: &str) -> String {
    let out = kubectl_run(kubeconfig, args, stdin);
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A kubeconfig for `server` (an `https://` URL checked against `ca_pem`, or a plain `http://`
/// one) with a bearer token and a default namespace.
pub fn kubeconfig_text(server: &str, ca_pem: Option<&[u8]>, token: &str, namespace: &str) -> String {
    use base64::Engine;
    let ca = ca_pem
        .map(|pem| {
            format!(
                "\n    certificate-authority-data: {}",
                base64::engine::general_purpose::STANDARD.encode(pem)
            )
        })
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {server}{ca}\n\
         users:\n- name: test\n  user:\n    token: {token}\ncontexts:\n- name: test\n  context:\n    \
         cluster: test\n    user: test\n    namespace: {namespace}\ncurrent-context: test\n"
    )
}

impl Server {
    fn start() -> Server {
        let started = Instant::now();
        let (etcd, apiserver) = (tool("etcd"), tool("kube-apiserver"));
        let dir = tempfile::Builder::new()
            .prefix("datadump-kube-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let keep = std::env::var_os("DATADUMP_KUBE_KEEP").is_some();
        certificates(&dir);
        std::fs::write(dir.join("tokens.csv"), format!("{ADMIN_TOKEN},admin,admin-uid,system:masters\n")).unwrap();

        let (client_port, peer_port, secure_port) = (free_port(), free_port(), free_port());
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let d = |name: &str| dir.join(name).display().to_string();
        let etcd_args = vec![
            "--name=default".to_string(),
            format!("--data-dir={}", d("etcd")),
            format!("--listen-client-urls={client_url}"),
            format!("--advertise-client-urls={client_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=default={peer_url}"),
            "--unsafe-no-fsync=true".into(),
            "--log-level=warn".into(),
        ];
        let url = format!("https://127.0.0.1:{secure_port}");
        let apiserver_args = vec![
            format!("--etcd-servers={client_url}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={secure_port}"),
            format!("--cert-dir={}", d("certs")),
            format!("--tls-cert-file={}", d("apiserver.crt")),
            format!("--tls-private-key-file={}", d("apiserver.key")),
            format!("--token-auth-file={}", d("tokens.csv")),
            "--authorization-mode=RBAC".into(),
            format!("--service-account-issuer={url}"),
            format!("--service-account-key-file={}", d("sa.pub")),
            format!("--service-account-signing-key-file={}", d("sa.key")),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            // as envtest: there is no controller-manager to make the default ServiceAccounts
            "--disable-admission-plugins=ServiceAccount".into(),
            // the `kubernetes` Service's endpoints may not be a loopback address, and nothing
            // here needs them
            "--endpoint-reconciler-type=none".into(),
            "--allow-privileged=true".into(),
            "--profiling=false".into(),
        ];
        let supervisors = vec![
            supervise(&dir, "etcd", &etcd, &etcd_args, if keep { None } else { Some(&dir) }),
            supervise(&dir, "kube-apiserver", &apiserver, &apiserver_args, None),
        ];
        let admin_kubeconfig = dir.join("admin.kubeconfig");
        let ca_pem = std::fs::read(dir.join("ca.crt")).unwrap();
        std::fs::write(&admin_kubeconfig, kubeconfig_text(&url, Some(&ca_pem), ADMIN_TOKEN, "default")).unwrap();
        let server = Server {
            dir,
            url,
            ca_pem,
            admin_kubeconfig,
            etcd_url: client_url,
            _supervisors: Mutex::new(supervisors),
        };

        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let out = kubectl_run(&server.admin_kubeconfig, &["get", "--raw=/readyz"], "");
            if out.status.success() {
                break;
            }
            let exited = server.log_tail("kube-apiserver.log").contains("\"command failed\"");
            assert!(
                Instant::now() < deadline && !exited,
                "kube-apiserver not ready (exited, or 120 s passed): {}\n--- kube-apiserver.log tail ---\n{}\n--- etcd.log tail ---\n{}",
                String::from_utf8_lossy(&out.stderr),
                server.log_tail("kube-apiserver.log"),
                server.log_tail("etcd.log")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        for crd in ["datadumps", "datadumpschedules"] {
            let file = format!("{}/crds/datadump.dev_{crd}.yaml", env!("CARGO_MANIFEST_DIR"));
            kubectl_ok(&server.admin_kubeconfig, &["apply", "--server-side", "-f", &file], "");
        }
        kubectl_ok(
            &server.admin_kubeconfig,
            &[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd/datadumps.datadump.dev",
                "crd/datadumpschedules.datadump.dev",
            ],
            "",
        );
        eprintln!(
            "kube-apiserver ready at {} in {:.1} s (dir {})",
            server.url,
            started.elapsed().as_secs_f64(),
            server.dir.display()
        );
        server
    }

    /// The last 40 lines of one of the servers' logs.
    pub fn log_tail(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Writes `value` under `key` straight into etcd (its v3 JSON gateway), behind the API
    /// server's back: how an object that today's schema refuses (stored under an older CRD,
    /// or hand-edited) gets in. The API server's watch cache sees it as any other change.
    pub async fn etcd_put(&self, key: &str, value: &[u8]) {
        use base64::Engine;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let body = serde_json::json!({"key": b64(key.as_bytes()), "value": b64(value)}).to_string();
        let mut stream = tokio::net::TcpStream::connect(self.etcd_url.trim_start_matches("http://"))
            .await
            .expect("connect to etcd");
        let request = format!(
            "POST /v3/kv/put HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "etcd put {key}: {answer}");
    }

    /// A `kube::Client` for the admin, default namespace `namespace`.
    pub fn admin_client(&self, namespace: &str) -> kube::Client {
        let mut config = kube::Config::new(self.url.parse().expect("server URL"));
        config.root_cert = Some(vec![pem_to_der(&self.ca_pem)]);
        config.auth_info.token = Some(ADMIN_TOKEN.to_string().into());
        config.default_namespace = namespace.to_string();
        kube::Client::try_from(config).expect("kube client")
    }
}

/// The DER bytes of the first certificate in a PEM text.
pub fn pem_to_der(pem: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let text = String::from_utf8_lossy(pem);
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).expect("PEM certificate")
}

/// Starts `program ARGS` under `sh`, logging to `dir/NAME.log`; the program is killed (and
/// `clean` removed) when the returned stdin pipe closes. SIGKILL, not SIGTERM: kube-apiserver's
/// graceful shutdown can hang once etcd is gone, and nothing here needs to outlive the tests.
fn supervise(dir: &Path, name: &str, program: &Path, args: &[String], clean: Option<&Path>) -> (Child, ChildStdin) {
    const SCRIPT: &str = r#""$@" >"$LOG" 2>&1 &
pid=$!
read _ || true
kill -9 "$pid" 2>/dev/null
wait "$pid"
if [ -n "$CLEAN" ]; then rm -rf "$CLEAN"; fi"#;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg(name)
        .arg(program)
        .args(args)
        .env("LOG", dir.join(format!("{name}.log")))
        .env("CLEAN", clean.map(|p| p.display().to_string()).unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    let stdin = child.stdin.take().expect("supervisor stdin");
    (child, stdin)
}

/// A CA, a serving certificate for 127.0.0.1/localhost signed by it, and the service-account
/// signing key pair, all made with openssl.
fn certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "7",
        "-subj",
        "/CN=datadump-test-ca",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "apiserver.key",
        "-out",
        "apiserver.csr",
        "-subj",
        "/CN=kube-apiserver",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        "apiserver.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "apiserver.crt",
        "-days",
        "7",
        "-extfile",
        "san.ext",
    ]);
    run(&["genrsa", "-out", "sa.key", "2048"]);
    run(&["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
}
