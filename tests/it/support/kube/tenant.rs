//! One test's share of the real API server: its own namespace, the ServiceAccount and RBAC the
//! Helm chart renders for a controller watching that namespace (release `datadump-operator`,
//! `watchNamespace` and the release namespace both the test's, leader election on so the Lease
//! Role is there too) applied with the real `kubectl`, a token for that ServiceAccount from the
//! TokenRequest API, and a fault proxy the controller talks through. The controller therefore
//! holds exactly the rights the chart grants: a call the chart does not allow fails the test.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use super::proxy::KubeProxy;
use super::{Server, kubeconfig_text, kubectl_ok, server};

/// The chart's release name: ServiceAccount, Roles and Lease are named after it.
pub const RELEASE: &str = "datadump-operator";
/// Stands for the test's namespace in the cached chart render.
const PLACEHOLDER: &str = "ns-placeholder-0";

/// A test's namespace with the controller's identity in it.
pub struct Tenant {
    /// The namespace.
    pub ns: String,
    /// The admin's kubeconfig, default namespace `ns` (for the test and `kubectl`).
    pub admin_kubeconfig: PathBuf,
    /// The controller's kubeconfig: the proxy's URL and the ServiceAccount's token.
    pub controller_kubeconfig: PathBuf,
    /// The admin's client, default namespace `ns`.
    pub client: kube::Client,
    /// The proxy between the controller and the server.
    pub proxy: KubeProxy,
}

/// The chart's ServiceAccount and RBAC objects, rendered once with the Helm SDK (through
/// `tests/chart_check.py render`, as `tests/it/chart.rs` does).
fn rbac_objects() -> &'static Vec<Value> {
    static OBJECTS: OnceLock<Vec<Value>> = OnceLock::new();
    OBJECTS.get_or_init(|| {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().unwrap();
        let values = dir.path().join("values.yaml");
        std::fs::write(
            &values,
            format!("watchNamespace: {PLACEHOLDER}\nleaderElection: {{enabled: true}}\n"),
        )
        .unwrap();
        let out = std::process::Command::new(repo.join(".venv/bin/python"))
            .arg(repo.join("tests/chart_check.py"))
            .args([
                "render",
                "charts/datadump-operator",
                "--name",
                RELEASE,
                "--namespace",
                PLACEHOLDER,
                "--values",
            ])
            .arg(&values)
            .current_dir(repo)
            .output()
            .expect("run tests/chart_check.py (scripts/setup.sh makes .venv)");
        assert!(
            out.status.success(),
            "rendering the chart: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rendered: Value = serde_json::from_slice(&out.stdout).expect("chart_check.py JSON");
        let kinds = ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"];
        let objects: Vec<Value> = rendered["objects"]
            .as_array()
            .expect("objects")
            .iter()
            .map(|o| o["object"].clone())
            .filter(|o| kinds.iter().any(|k| o["kind"] == *k))
            .collect();
        assert!(
            objects.iter().any(|o| o["kind"] == "Role"),
            "the chart renders a Role for watchNamespace"
        );
        objects
    })
}

impl Tenant {
    /// Creates a fresh namespace (named `dd-N-HINT`) on the shared server and sets it up; files
    /// go to `dir`.
    pub async fn create(dir: &Path, hint: &str) -> Tenant {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let server: &'static Server = tokio::task::spawn_blocking(server).await.expect("start the API server");
        let n = COUNT.fetch_add(1, Ordering::SeqCst);
        let hint: String = hint
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(20)
            .collect::<String>()
            .to_lowercase();
        let ns = format!("dd-{n}-{hint}").trim_end_matches('-').to_string();
        let client = server.admin_client(&ns);
        let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .expect("create namespace");

        let admin_kubeconfig = dir.join("admin.kubeconfig");
        std::fs::write(
            &admin_kubeconfig,
            kubeconfig_text(&server.url, Some(&server.ca_pem), super::ADMIN_TOKEN, &ns),
        )
        .unwrap();
        let (kc, namespace) = (admin_kubeconfig.clone(), ns.clone());
        tokio::task::spawn_blocking(move || {
            let list = json!({"apiVersion": "v1", "kind": "List", "items": rbac_objects()}).to_string();
            kubectl_ok(&kc, &["apply", "-f", "-"], &list.replace(PLACEHOLDER, &namespace))
        })
        .await
        .unwrap();

        let request: TokenRequest = TokenRequest {
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(4 * 3600),
                ..Default::default()
            }),
            ..Default::default()
        };
        let token = Api::<ServiceAccount>::namespaced(client.clone(), &ns)
            .create_token_request(RELEASE, &PostParams::default(), &request)
            .await
            .expect("TokenRequest for the controller's ServiceAccount")
            .status
            .and_then(|s| s.token)
            .expect("a token in the TokenRequest's status");
        let proxy = KubeProxy::start(&server.url, &server.ca_pem).await;
        let controller_kubeconfig = dir.join("controller.kubeconfig");
        std::fs::write(&controller_kubeconfig, kubeconfig_text(&proxy.url(), None, &token, &ns)).unwrap();
        Tenant {
            ns,
            admin_kubeconfig,
            controller_kubeconfig,
            client,
            proxy,
        }
    }
}
