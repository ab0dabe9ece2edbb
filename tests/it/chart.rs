//! Packaging as an operator of the platform meets it: the Helm chart, the plain `manifests/`
//! install, the Dockerfile and the IAM policies in `docs/iam/`. Real tools only: the Helm v4 Go
//! SDK (helm-python-sdk) lints and renders the chart and checks `values.schema.json`,
//! kubernetes-validate checks every rendered object against the Kubernetes 1.32 schemas (strict),
//! `kubectl kustomize` renders `manifests/`, moto's IAM validator checks the policies' grammar,
//! and the real `datadump` binary parses the environment the chart gives it. The Python parts run
//! through `tests/chart_check.py`; a missing tool fails the test with how to install it.
//!
//! manifests/ vs chart normalisation: the chart is rendered with default values as release
//! `datadump-operator` in namespace `datadump-system` (CRD from its `crds/` included); both sides
//! are parsed by the same YAML parser; the labels only Helm can know (`helm.sh/chart`,
//! `app.kubernetes.io/managed-by`, `app.kubernetes.io/version`) are removed from object and pod
//! template metadata; the `Namespace` object, which Helm leaves to `--create-namespace`, is
//! checked on its own. Everything else must be equal, object by object.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::{Value, json};

const RELEASE: &str = "datadump-operator";
const NAMESPACE: &str = "datadump-system";
const HELM_ONLY_LABELS: [&str; 3] = ["helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/version"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chart_dir() -> PathBuf {
    repo().join("charts/datadump-operator")
}

fn full_values() -> PathBuf {
    repo().join("tests/data/values-full.yaml")
}

/// Runs `tests/chart_check.py ARGS` with the project's venv Python and parses its JSON answer.
fn helper(args: &[&str], stdin: Option<&str>) -> Value {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh (it creates .venv with helm-python-sdk, kubernetes-validate and moto)",
        python.display()
    );
    let mut child = Command::new(&python)
        .arg(repo().join("tests/chart_check.py"))
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tests/chart_check.py");
    let mut pipe = child.stdin.take().expect("stdin");
    pipe.write_all(stdin.unwrap_or("").as_bytes()).expect("write to chart_check.py");
    drop(pipe);
    let out = child.wait_with_output().expect("run tests/chart_check.py");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chart_check.py {args:?} failed ({}): {stderr}", out.status);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("chart_check.py {args:?}: bad JSON ({e}); stderr: {stderr}"))
}

/// A rendered chart: its objects (CRDs first), the file each came from, and NOTES.txt.
pub(crate) struct Rendered {
    pub(crate) objects: Vec<Value>,
    sources: Vec<String>,
    notes: String,
}

impl Rendered {
    fn of(values: Option<&Path>) -> Rendered {
        let chart = chart_dir();
        let mut args = vec![
            "render".to_string(),
            chart.display().to_string(),
            "--name".into(),
            RELEASE.into(),
            "--namespace".into(),
            NAMESPACE.into(),
        ];
        if let Some(v) = values {
            args.extend(["--values".to_string(), v.display().to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = helper(&args, None);
        let list = out["objects"].as_array().expect("objects");
        Rendered {
            objects: list.iter().map(|o| o["object"].clone()).collect(),
            sources: list.iter().map(|o| o["source"].as_str().unwrap_or_default().to_string()).collect(),
            notes: out["notes"].as_str().expect("NOTES.txt rendered").to_string(),
        }
    }

    fn kinds(&self) -> BTreeSet<String> {
        self.objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    pub(crate) fn all(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    fn one(&self, kind: &str) -> &Value {
        let found = self.all(kind);
        assert_eq!(found.len(), 1, "expected one {kind}, got {}: {:?}", found.len(), self.kinds());
        found[0]
    }

    fn named(&self, kind: &str, name: &str) -> &Value {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind}/{name} among {:?}", self.objects.iter().map(key).collect::<Vec<_>>()))
    }

    /// The controller container's env as name → value (or valueFrom).
    fn env(&self) -> BTreeMap<String, Value> {
        let container = &self.one("Deployment")["spec"]["template"]["spec"]["containers"][0];
        container["env"]
            .as_array()
            .expect("env")
            .iter()
            .map(|e| {
                let name = e["name"].as_str().expect("env name").to_string();
                let value = if e.get("valueFrom").is_some() {
                    json!({"valueFrom": e["valueFrom"]})
                } else {
                    e["value"].clone()
                };
                (name, value)
            })
            .collect()
    }
}

pub(crate) fn default_render() -> &'static Rendered {
    static R: OnceLock<Rendered> = OnceLock::new();
    R.get_or_init(|| Rendered::of(None))
}

pub(crate) fn full_render() -> &'static Rendered {
    static R: OnceLock<Rendered> = OnceLock::new();
    R.get_or_init(|| Rendered::of(Some(&full_values())))
}

/// Renders with values given inline (written to a temp file).
pub(crate) fn render_with(values: &str) -> Rendered {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("values.yaml");
    std::fs::write(&path, values).expect("write values");
    Rendered::of(Some(&path))
}

fn key(o: &Value) -> String {
    format!(
        "{}/{}/{}/{}",
        o["apiVersion"].as_str().unwrap_or_default(),
        o["kind"].as_str().unwrap_or_default(),
        o["metadata"]["namespace"].as_str().unwrap_or_default(),
        o["metadata"]["name"].as_str().unwrap_or_default()
    )
}

fn kubernetes_validate(objects: &[Value]) -> Vec<String> {
    let answer = helper(
        &["validate", "--kube-version", "1.32"],
        Some(&Value::from(objects.to_vec()).to_string()),
    );
    let results = answer.as_array().expect("results");
    assert_eq!(results.len(), objects.len(), "one result per object");
    results
        .iter()
        .filter(|r| !r["error"].is_null())
        .map(|r| format!("{} ({}): {}", r["object"], r["validator"], r["error"]))
        .collect()
}

#[test]
fn chart_lints_clean_with_the_helm_sdk() {
    let chart = chart_dir().display().to_string();
    let values = full_values().display().to_string();
    for args in [
        vec!["lint", chart.as_str()],
        vec!["lint", chart.as_str(), "--values", values.as_str()],
    ] {
        let report = helper(&args, None);
        assert_eq!(report["total_charts_linted"], 1, "{report}");
        assert_eq!(report["errors"], json!([]), "helm lint --strict {args:?}: {report}");
        // Severity 1 is INFO (e.g. "icon is recommended"); warnings (2) and errors (3) fail.
        let serious: Vec<&Value> = report["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["severity"].as_i64().unwrap_or(3) >= 2)
            .collect();
        assert!(serious.is_empty(), "helm lint {args:?} found problems: {serious:?}");
    }
}

#[test]
fn every_rendered_object_passes_kubernetes_validate() {
    let default = default_render();
    assert_eq!(
        default.kinds(),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "Deployment",
            "Service",
            "ServiceAccount"
        ]
        .map(String::from)
        .into(),
        "objects of the default install"
    );
    let full = full_render();
    assert_eq!(
        full.kinds(),
        [
            "CustomResourceDefinition",
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ServiceMonitor"
        ]
        .map(String::from)
        .into(),
        "objects with every option set (watchNamespace → Role, not ClusterRole)"
    );
    for (what, r) in [("default values", default), ("tests/data/values-full.yaml", full)] {
        let failures = kubernetes_validate(&r.objects);
        assert!(failures.is_empty(), "{what}: objects failing validation:\n{}", failures.join("\n"));
    }
    // The validator is not vacuous: a misspelt field and a wrong type are refused.
    let mut bad = default.one("Deployment").clone();
    bad["spec"]["template"]["spec"]["containers"][0]["securityContex"] = json!({});
    let mut bad_type = default.one("Service").clone();
    bad_type["spec"]["ports"][0]["port"] = json!("http");
    let mut bad_monitor = full.one("ServiceMonitor").clone();
    bad_monitor["spec"]["endpoints"][0]["intervall"] = json!("15s");
    assert_eq!(
        kubernetes_validate(&[bad, bad_type, bad_monitor]).len(),
        3,
        "broken objects must fail validation"
    );
}

#[test]
fn values_schema_rejects_wrong_types_and_unknown_keys() {
    let chart = chart_dir().display().to_string();
    let schema = |values: Value| helper(&["schema", &chart], Some(&values.to_string()));
    for ok in [json!({}), full_values_json()] {
        let answer = schema(ok.clone());
        assert_eq!(
            answer,
            json!({"schema_error": null, "render_error": null}),
            "valid values refused: {ok}"
        );
    }
    let cases = [
        (json!({"replicaCount": "two"}), "/replicaCount"),
        (json!({"logJson": "yes"}), "/logJson"),
        (json!({"pollInterval": "soon"}), "/pollInterval"),
        (
            json!({"siteDefaults": {"securityGroupIds": "sg-0123456789abcdef0"}}),
            "/siteDefaults/securityGroupIds",
        ),
        (json!({"siteDefaults": {"ebsVolumeSizeGb": "100"}}), "/siteDefaults/ebsVolumeSizeGb"),
        (json!({"image": {"pullPolicy": "Sometimes"}}), "/image/pullPolicy"),
        (json!({"image": {"digest": "sha256:00"}}), "digest"),
        (json!({"replicas": 2}), "replicas"),
    ];
    for (values, names) in cases {
        let answer = schema(values.clone());
        let schema_error = answer["schema_error"]
            .as_str()
            .unwrap_or_else(|| panic!("schema accepted {values}"));
        assert!(schema_error.contains(names), "{values}: error should name {names}: {schema_error}");
        let render_error = answer["render_error"]
            .as_str()
            .unwrap_or_else(|| panic!("render accepted {values}"));
        assert!(
            render_error.contains(names),
            "{values}: render error should name {names}: {render_error}"
        );
    }
}

fn full_values_json() -> serde_json::Value {
    let text = std::fs::read_to_string(full_values()).expect("read tests/data/values-full.yaml");
    serde_yaml::from_str(&text).expect("parse tests/data/values-full.yaml")
}

/// The generated CRD files: each kind's `datadump crd --kind` output in `crds/`, and
/// byte-identical copies in the chart and `manifests/`. Problems, each a sentence.
fn crd_drift() -> Vec<String> {
    let mut problems = Vec::new();
    for (kind, file) in [
        ("datadump", "datadump.dev_datadumps.yaml"),
        ("datadumpschedule", "datadump.dev_datadumpschedules.yaml"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_datadump"))
            .args(["crd", "--kind", kind])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "datadump crd --kind {kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for copy in [
            format!("crds/{file}"),
            format!("charts/datadump-operator/crds/{file}"),
            format!("manifests/crd/{file}"),
        ] {
            match std::fs::read(repo().join(&copy)) {
                Ok(bytes) if bytes == out.stdout => {}
                Ok(_) => problems.push(format!("{copy} differs from the Rust types in src/api")),
                Err(e) => problems.push(format!("{copy}: {e}")),
            }
        }
    }
    problems
}

#[test]
fn the_chart_installs_its_crds_from_crds_only() {
    let files = ["datadump.dev_datadumps.yaml", "datadump.dev_datadumpschedules.yaml"];
    let mut crds: Vec<String> = std::fs::read_dir(chart_dir().join("crds"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    crds.sort();
    assert_eq!(crds, files, "the chart's crds/ holds the two CRDs");
    // The CRDs are installed from crds/, never templated (Helm would otherwise delete them, and
    // every DataDump, on uninstall).
    let r = default_render();
    let mut crd_sources: Vec<&String> = r
        .objects
        .iter()
        .zip(&r.sources)
        .filter(|(o, _)| o["kind"] == "CustomResourceDefinition")
        .map(|(_, s)| s)
        .collect();
    crd_sources.sort();
    assert_eq!(
        crd_sources,
        ["crds/datadump.dev_datadumps.yaml", "crds/datadump.dev_datadumpschedules.yaml"],
        "the CRDs come from crds/ only"
    );
}

/// Drops the labels only Helm can know from an object and its pod template, and writes whole
/// numbers as integers (kustomize re-serialises the CRD's `maximum: 10.0` as `10`).
fn normalise(mut o: Value) -> Value {
    for pointer in ["/metadata/labels", "/spec/template/metadata/labels"] {
        if let Some(labels) = o.pointer_mut(pointer).and_then(Value::as_object_mut) {
            for l in HELM_ONLY_LABELS {
                labels.remove(l);
            }
        }
    }
    fn numbers(v: &mut Value) {
        match v {
            Value::Number(n) if n.is_f64() => {
                let f = n.as_f64().unwrap();
                if f.fract() == 0.0 && f.abs() < 9e15 {
                    *v = json!(f as i64);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(numbers),
            Value::Object(map) => map.values_mut().for_each(numbers),
            _ => {}
        }
    }
    numbers(&mut o);
    o
}

/// JSON pointers where two values differ, with both sides (at most `limit`).
fn differences(a: &Value, b: &Value, path: String, out: &mut Vec<String>, limit: usize) {
    if out.len() >= limit || a == b {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                differences(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    format!("{path}/{k}"),
                    out,
                    limit,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                differences(p, q, format!("{path}/{i}"), out, limit);
            }
        }
        _ => out.push(format!("    {path}: chart {a} vs manifests/ {b}")),
    }
}

/// Everything generated is current: the CRDs (from the Rust types, in their three homes) and
/// `manifests/` (the chart with default values). One fix for all of it: `scripts/generate.sh`.
#[test]
fn generated_files_are_current() {
    let crds = crd_drift();
    assert!(crds.is_empty(), "{}\nfix: scripts/generate.sh", crds.join("\n"));
    let out = Command::new(crate::support::kube::tool("kubectl"))
        .args(["kustomize", "manifests/"])
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("`kubectl kustomize manifests/`: {e}"));
    assert!(
        out.status.success(),
        "kubectl kustomize manifests/: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kustomized = helper(&["yaml"], Some(&String::from_utf8_lossy(&out.stdout)));
    let (namespaces, plain): (Vec<Value>, Vec<Value>) = kustomized
        .as_array()
        .expect("documents")
        .iter()
        .cloned()
        .partition(|o| o["kind"] == "Namespace");
    assert_eq!(namespaces.len(), 1, "manifests/ creates its namespace");
    assert_eq!(namespaces[0]["metadata"]["name"], NAMESPACE);
    let objects: Vec<Value> = kustomized.as_array().unwrap().clone();
    let failures = kubernetes_validate(&objects);
    assert!(
        failures.is_empty(),
        "manifests/: objects failing validation:\n{}",
        failures.join("\n")
    );

    let by_key = |objs: Vec<Value>| -> BTreeMap<String, Value> { objs.into_iter().map(|o| (key(&o), normalise(o))).collect() };
    let plain = by_key(plain);
    let chart = by_key(default_render().objects.clone());
    let only_chart: Vec<&String> = chart.keys().filter(|k| !plain.contains_key(*k)).collect();
    let only_plain: Vec<&String> = plain.keys().filter(|k| !chart.contains_key(*k)).collect();
    assert!(
        only_chart.is_empty() && only_plain.is_empty(),
        "objects only in the chart: {only_chart:?}; only in manifests/: {only_plain:?}\nfix: scripts/generate.sh"
    );
    let differing: Vec<String> = chart
        .iter()
        .filter(|(k, o)| plain[*k] != **o)
        .map(|(k, o)| {
            let mut diff = Vec::new();
            differences(o, &plain[k], String::new(), &mut diff, 20);
            format!("  {k}:\n{}", diff.join("\n"))
        })
        .collect();
    assert!(
        differing.is_empty(),
        "manifests/ drifted from the chart (default values):\n{}\nfix: scripts/generate.sh",
        differing.join("\n")
    );
    // Both sides really are hardened and complete (not merely equal).
    assert!(plain.keys().any(|k| k.contains("/Deployment/")) && plain.keys().any(|k| k.contains("/CustomResourceDefinition/")));
}

fn assert_hardened(what: &str, deployment: &Value, port: i64) {
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{what}: pod runAsNonRoot");
    assert!(
        pod["securityContext"]["runAsUser"].as_i64().is_some_and(|u| u > 0),
        "{what}: pod runs as a non-zero uid"
    );
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
        "{what}: seccomp"
    );
    assert_eq!(pod["hostNetwork"], Value::Null, "{what}: no host network");
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "{what}: one container");
    let c = &containers[0];
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true, "{what}: read-only root filesystem");
    assert_eq!(sc["allowPrivilegeEscalation"], false, "{what}: no privilege escalation");
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{what}: all capabilities dropped");
    assert_eq!(sc["capabilities"]["add"], Value::Null, "{what}: none added");
    assert_ne!(sc["privileged"], true, "{what}: not privileged");
    assert_eq!(c["args"], json!(["controller"]), "{what}: runs `datadump controller`");
    assert_eq!(
        c["ports"],
        json!([{"name": "http", "containerPort": port, "protocol": "TCP"}]),
        "{what}: http port"
    );
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(c[probe]["httpGet"], json!({"path": path, "port": "http"}), "{what}: {probe}");
    }
    assert!(
        c["resources"]["requests"]["memory"].is_string() && c["resources"]["limits"]["memory"].is_string(),
        "{what}: memory request and limit"
    );
}

#[test]
fn deployment_is_hardened_and_probed() {
    assert_hardened("default values", default_render().one("Deployment"), 8080);
    assert_hardened("values-full.yaml", full_render().one("Deployment"), 9090);
    let svc = full_render().one("Service");
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "http", "port": 9090, "targetPort": "http", "protocol": "TCP"}])
    );
}

#[test]
fn values_reach_the_controller_as_env() {
    let field = |path: &str| json!({"valueFrom": {"fieldRef": {"fieldPath": path}}});
    let env = default_render().env();
    let expected: BTreeMap<String, Value> = [
        ("AWS_REGION", json!("us-east-1")),
        ("DATADUMP_POLL_INTERVAL", json!("30s")),
        ("DATADUMP_SWEEP_INTERVAL", json!("5m")),
        ("DATADUMP_LAUNCH_GRACE", json!("2m")),
        ("DATADUMP_MANAGED_BY", json!("datadump-operator")),
        ("DATADUMP_SSM_PREFIX", json!("/datadump")),
        ("DATADUMP_LOG", json!("info")),
        ("DATADUMP_LOG_JSON", json!("false")),
        ("DATADUMP_HTTP_ADDR", json!("0.0.0.0:8080")),
        ("DATADUMP_LEADER_ELECTION", json!("false")),
        ("POD_NAME", field("metadata.name")),
        ("POD_NAMESPACE", field("metadata.namespace")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(
        env, expected,
        "default values: built-in defaults, nothing else (no namespace, no site defaults)"
    );
    let d = default_render().one("Deployment");
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type": "Recreate"}),
        "one acting controller at a time without leader election"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"], "ghcr.io/datadump-dev/datadump-operator:0.1.0",
        "tag = appVersion"
    );

    let full = full_render();
    let env = full.env();
    for (name, value) in [
        ("DATADUMP_NAMESPACE", "data"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ENDPOINT_URL", "http://moto.aws-emulator.svc:5000"),
        ("DATADUMP_POLL_INTERVAL", "1m"),
        ("DATADUMP_SWEEP_INTERVAL", "10m"),
        ("DATADUMP_LAUNCH_GRACE", "3m"),
        ("DATADUMP_MANAGED_BY", "datadump-staging"),
        ("DATADUMP_SSM_PREFIX", "/datadump-staging"),
        ("DATADUMP_LOG", "datadump=debug,kube=info"),
        ("DATADUMP_LOG_JSON", "true"),
        ("DATADUMP_HTTP_ADDR", "0.0.0.0:9090"),
        ("DATADUMP_LEADER_ELECTION", "true"),
        ("DATADUMP_LEASE_NAME", "dd-controller-lease"),
        ("DATADUMP_LEASE_DURATION", "30"),
        ("DATADUMP_DEFAULT_INSTANCE_TYPE", "c7gd.2xlarge"),
        ("DATADUMP_DEFAULT_IMAGE_ID", "ami-0123456789abcdef0"),
        ("DATADUMP_DEFAULT_EBS_VOLUME_SIZE_GB", "0"),
        ("DATADUMP_DEFAULT_SUBNET_ID", "subnet-0a1b2c3d4e5f60718"),
        ("DATADUMP_DEFAULT_SECURITY_GROUP_IDS", "sg-0123456789abcdef0,sg-0fedcba9876543210"),
        ("DATADUMP_DEFAULT_IAM_INSTANCE_PROFILE", "datadump-worker"),
        ("HTTPS_PROXY", "http://proxy.internal:3128"),
    ] {
        assert_eq!(env.get(name), Some(&json!(value)), "{name} from values-full.yaml");
    }
    assert_eq!(env.len(), 23, "no unexpected env: {env:?}");
    let d = full.one("Deployment");
    let pod = &d["spec"]["template"];
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(
        d["spec"]["strategy"]["type"], "RollingUpdate",
        "leader election makes rolling updates safe"
    );
    assert_eq!(
        pod["spec"]["containers"][0]["image"],
        "registry.example.com/platform/datadump-operator:0.1.0-rc.1"
    );
    assert_eq!(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
    assert_eq!(pod["spec"]["imagePullSecrets"], json!([{"name": "regcred"}]));
    assert_eq!(pod["spec"]["serviceAccountName"], "datadump-controller");
    assert_eq!(pod["spec"]["nodeSelector"], json!({"kubernetes.io/os": "linux"}));
    assert_eq!(pod["spec"]["tolerations"][0]["key"], "dedicated");
    assert!(pod["spec"]["affinity"]["podAntiAffinity"].is_object());
    assert_eq!(pod["metadata"]["annotations"], json!({"example.com/team": "data-platform"}));
    assert_eq!(pod["metadata"]["labels"]["team"], "data-platform");
    assert_eq!(pod["spec"]["containers"][0]["resources"]["limits"]["cpu"], "1");
    let sa = full.one("ServiceAccount");
    assert_eq!(sa["metadata"]["name"], "datadump-controller");
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/datadump-controller"
    );
    let sm = full.one("ServiceMonitor");
    assert_eq!(sm["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(
        sm["spec"]["endpoints"],
        json!([{"port": "http", "path": "/metrics", "interval": "15s"}])
    );
    assert_eq!(
        sm["spec"]["selector"]["matchLabels"],
        full.one("Service")["spec"]["selector"],
        "the ServiceMonitor finds the Service"
    );

    // More than one replica is enough for leader election; an empty siteDefaults volume is unset.
    let two = render_with("replicaCount: 3\n");
    assert_eq!(two.env()["DATADUMP_LEADER_ELECTION"], "true");
    assert_eq!(
        two.env()["DATADUMP_LEASE_NAME"],
        "datadump-operator",
        "the Lease is named after the release"
    );
    assert!(!two.env().contains_key("DATADUMP_DEFAULT_EBS_VOLUME_SIZE_GB"));
    // No IRSA annotation and create: false → the named, existing ServiceAccount.
    let existing = render_with("serviceAccount: {create: false, name: platform-sa}\n");
    assert!(existing.all("ServiceAccount").is_empty());
    assert_eq!(
        existing.one("Deployment")["spec"]["template"]["spec"]["serviceAccountName"],
        "platform-sa"
    );
    assert_eq!(existing.one("ClusterRoleBinding")["subjects"][0]["name"], "platform-sa");
}

/// The expected rules: the API calls the controller makes, nothing more.
fn controller_rules() -> Value {
    json!([
        {"apiGroups": ["datadump.dev"], "resources": ["datadumps"], "verbs": ["list", "watch", "patch", "create", "delete"]},
        {"apiGroups": ["datadump.dev"], "resources": ["datadumps/status"], "verbs": ["patch"]},
        {"apiGroups": ["datadump.dev"], "resources": ["datadumpschedules"], "verbs": ["list", "watch"]},
        {"apiGroups": ["datadump.dev"], "resources": ["datadumpschedules/status"], "verbs": ["patch"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    ])
}

#[test]
fn rbac_is_exactly_the_least_privilege_the_controller_needs() {
    let default = default_render();
    let role = default.one("ClusterRole");
    assert_eq!(role["rules"], controller_rules(), "ClusterRole rules");
    let binding = default.one("ClusterRoleBinding");
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "datadump-operator"})
    );
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "datadump-operator", "namespace": NAMESPACE}])
    );
    assert!(default.all("Role").is_empty(), "no Lease Role without leader election");

    // watchNamespace: the same rules as a Role there; the Lease Role in the release namespace.
    let full = full_render();
    let watch = full.named("Role", "dd-controller");
    assert_eq!(watch["metadata"]["namespace"], "data");
    assert_eq!(watch["rules"], controller_rules());
    let watch_binding = full.named("RoleBinding", "dd-controller");
    assert_eq!(watch_binding["metadata"]["namespace"], "data");
    assert_eq!(
        watch_binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "datadump-controller", "namespace": NAMESPACE}])
    );
    let lease = full.named("Role", "dd-controller-leader-election");
    assert_eq!(
        lease["metadata"]["namespace"], NAMESPACE,
        "Lease rights only in the controller's own namespace"
    );
    assert_eq!(
        lease["rules"],
        json!([
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["dd-controller-lease"], "verbs": ["get", "patch"]},
        ])
    );
    assert_eq!(
        full.named("RoleBinding", "dd-controller-leader-election")["roleRef"]["name"],
        "dd-controller-leader-election"
    );
    for r in [default, full] {
        for o in r.objects.iter().filter(|o| o["kind"] == "Role" || o["kind"] == "ClusterRole") {
            let text = o["rules"].to_string();
            assert!(!text.contains("\"*\""), "{}: no wildcards", key(o));
        }
    }
}

#[test]
fn controller_binary_accepts_the_env_the_chart_sets() {
    let bin = env!("CARGO_BIN_EXE_datadump");
    let help = Command::new(bin)
        .args(["controller", "--help"])
        .output()
        .expect("datadump controller --help");
    let help = String::from_utf8_lossy(&help.stdout).to_string();
    let extra: BTreeSet<String> = ["HTTPS_PROXY".to_string()].into();
    for (what, r) in [("default values", default_render()), ("values-full.yaml", full_render())] {
        let env = r.env();
        for name in env.keys().filter(|n| !extra.contains(*n)) {
            assert!(
                help.contains(&format!("[env: {name}")),
                "{what}: the chart sets {name}, which `datadump controller` does not read"
            );
        }
        // The real parser: every value must be accepted. Parsing ends where the Kubernetes
        // client starts (no kubeconfig here), so nothing else runs.
        let home = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("controller")
            .env_clear()
            .env("HOME", home.path())
            .env("KUBECONFIG", home.path().join("none"));
        for (name, value) in &env {
            let value = value
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("test-{}", name.to_lowercase()));
            cmd.env(name, value);
        }
        let out = cmd.output().expect("run datadump controller");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(
            out.status.code(),
            Some(2),
            "{what}: `datadump controller` refused the chart's env: {stderr}"
        );
        assert!(
            stderr.contains("kubeconfig"),
            "{what}: expected to get as far as the Kubernetes client: {stderr}"
        );
    }
}

#[test]
fn notes_tell_the_user_what_to_do_next() {
    for (what, notes) in [("default", &default_render().notes), ("full", &full_render().notes)] {
        for needle in [
            "kubectl create secret generic",
            "kubectl apply -f",
            "kubectl get datadumps",
            "kubectl get datadumpschedules",
            "kubectl wait",
            "--for=condition=Complete",
            "/metrics",
        ] {
            assert!(notes.contains(needle), "{what} NOTES.txt lacks {needle:?}:\n{notes}");
        }
    }
    assert!(default_render().notes.contains("role-arn"), "defaults: explain IRSA");
    assert!(full_render().notes.contains("namespace data") && !full_render().notes.contains("role-arn"));
}

/// Actions of every Allow statement in one policy file.
fn policy_actions(file: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo().join("docs/iam").join(file)).unwrap_or_else(|e| panic!("docs/iam/{file}: {e}"));
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("docs/iam/{file} is not JSON: {e}"));
    assert_eq!(doc["Version"], "2012-10-17", "{file}");
    let mut out = BTreeSet::new();
    for s in doc["Statement"].as_array().unwrap_or_else(|| panic!("{file}: Statement list")) {
        assert_eq!(s["Effect"], "Allow", "{file}: {s}");
        match &s["Action"] {
            Value::String(a) => {
                out.insert(a.clone());
            }
            Value::Array(list) => out.extend(list.iter().map(|a| a.as_str().unwrap().to_string())),
            other => panic!("{file}: Action {other}"),
        }
    }
    assert!(out.iter().all(|a| !a.contains('*')), "{file}: no wildcard actions: {out:?}");
    out
}

/// Actions in the first column of the tables under `## FILE` in docs/iam/README.md.
fn documented_actions(file: &str) -> BTreeSet<String> {
    let readme = std::fs::read_to_string(repo().join("docs/iam/README.md")).expect("docs/iam/README.md");
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with(file))
        .unwrap_or_else(|| panic!("docs/iam/README.md has no `## {file}` section"));
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|a| a.contains(':'))
        .map(str::to_string)
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn iam_policies_are_valid_and_hold_exactly_the_documented_actions() {
    let expected = [
        (
            "controller-policy.json",
            set(&[
                "ec2:RunInstances",
                "ec2:DescribeInstances",
                "ec2:DescribeInstanceTypes",
                "ec2:TerminateInstances",
                "ec2:CreateTags",
                "iam:PassRole",
                "ssm:GetParameters",
                "ssm:PutParameter",
                "ssm:DeleteParameters",
                "ssm:AddTagsToResource",
                "s3:ListBucket",
                "s3:GetObject",
                "s3:PutObject",
                "s3:GetBucketRequestPayment",
                "s3:PutBucketRequestPayment",
            ]),
        ),
        (
            "worker-policy.json",
            set(&[
                "s3:PutObject",
                "s3:GetObject",
                "s3:ListBucket",
                "s3:AbortMultipartUpload",
                "ssm:GetParameter",
                "kms:Decrypt",
            ]),
        ),
        ("worker-trust-policy.json", set(&["sts:AssumeRole"])),
    ];
    for (file, actions) in &expected {
        assert_eq!(&policy_actions(file), actions, "docs/iam/{file}: actions");
        assert_eq!(&documented_actions(file), actions, "docs/iam/README.md table for {file}");
    }

    // IAM's grammar (moto's validator: elements, ARNs, condition operators); a broken document
    // is refused, so the check is not vacuous.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken-policy.json");
    std::fs::write(
        &broken,
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ec2:RunInstances", "Resource": "not-an-arn"}]}"#,
    )
    .unwrap();
    let files: Vec<String> = expected
        .iter()
        .map(|(f, _)| format!("docs/iam/{f}"))
        .chain([broken.display().to_string()])
        .collect();
    let mut args = vec!["iam"];
    args.extend(files.iter().map(String::as_str));
    let results = helper(&args, None);
    let results = results.as_array().unwrap();
    for r in &results[..3] {
        assert!(r["error"].is_null(), "{}: {}", r["file"], r["error"]);
    }
    assert_eq!(results[2]["kind"], "trust");
    assert!(results[3]["error"].is_string(), "a malformed policy must fail validation");

    // Tag conditions where AWS supports them.
    let controller: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("docs/iam/controller-policy.json")).unwrap()).unwrap();
    let statements = controller["Statement"].as_array().unwrap();
    let with = |action: &'static str| -> Vec<&Value> {
        statements
            .iter()
            .filter(|s| s["Action"] == action || s["Action"].as_array().is_some_and(|a| a.contains(&json!(action))))
            .collect()
    };
    let launch_tagged = *with("ec2:RunInstances")
        .iter()
        .find(|s| s["Resource"].to_string().contains(":instance/"))
        .expect("RunInstances on instances");
    assert_eq!(
        launch_tagged["Condition"]["StringEquals"]["aws:RequestTag/datadump.dev/managed-by"],
        "datadump-operator"
    );
    assert!(launch_tagged["Resource"].to_string().contains(":volume/"));
    for s in with("ec2:RunInstances").into_iter().filter(|s| *s != launch_tagged) {
        assert!(
            !s["Resource"].to_string().contains(":instance/") && !s["Resource"].to_string().contains(":volume/"),
            "untagged RunInstances on instances/volumes: {s}"
        );
    }
    let terminate = with("ec2:TerminateInstances")[0];
    assert_eq!(
        terminate["Condition"]["StringEquals"]["ec2:ResourceTag/datadump.dev/managed-by"],
        "datadump-operator"
    );
    let tag = with("ec2:CreateTags")[0];
    assert_eq!(tag["Condition"]["StringEquals"]["ec2:CreateAction"], "RunInstances");
    let pass = with("iam:PassRole")[0];
    assert_eq!(pass["Condition"]["StringEquals"]["iam:PassedToService"], "ec2.amazonaws.com");
    assert!(
        with("ssm:PutParameter")[0]["Resource"]
            .as_str()
            .unwrap()
            .ends_with(":parameter/datadump/*")
    );
}

#[test]
fn dockerfile_builds_the_binary_from_what_it_copies() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    let from: Vec<&str> = dockerfile.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(from.len(), 2, "multi-stage: {from:?}");
    assert!(from[0].starts_with("FROM rust:1") && from[0].ends_with(" AS build"), "{}", from[0]);
    assert!(from[1].contains("distroless/cc-debian12:nonroot"), "{}", from[1]);
    assert!(from[0].contains("bookworm"), "builder's glibc must match the Debian 12 runtime");
    assert!(dockerfile.contains("--mount=type=cache,target=/usr/local/cargo/registry"));
    assert!(dockerfile.contains("cargo build --release --locked --bin datadump"));
    assert!(dockerfile.contains("USER 65532:65532"));
    // the worker binaries: both architectures, glibc floor 2.28, where the controller looks
    assert!(dockerfile.contains("rustup target add x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu"));
    assert!(dockerfile.contains("for arch in x86_64 aarch64"));
    assert!(dockerfile.contains(r#"--target "$arch-unknown-linux-gnu.2.28""#));
    assert!(dockerfile.contains(&format!(
        "COPY --from=build /out/worker/ {}/",
        datadump::controller::DEFAULT_WORKER_BINARIES_DIR
    )));
    assert!(dockerfile.contains(r#"ENTRYPOINT ["/usr/local/bin/datadump"]"#) && dockerfile.contains(r#"CMD ["controller"]"#));
    // The workers EC2 instances run are the lean worker crate's binary, not the controller.
    assert!(dockerfile.contains("-p datadump-worker --bin datadump-worker"));
    assert!(dockerfile.contains(r#""/out/worker/datadump-worker-$arch""#));
    // The build copies Cargo.toml, Cargo.lock, src/ and crates/ only: nothing in them may
    // include a file from elsewhere.
    let copies: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
        .collect();
    for copied in ["Cargo.toml", "Cargo.lock", "src", "crates"] {
        assert!(
            copies.iter().any(|l| l.split_whitespace().any(|w| w == copied)),
            "Dockerfile copies {copied}: {copies:?}"
        );
        assert!(repo().join(copied).exists());
    }
    let roots = [
        repo().join("src").canonicalize().unwrap(),
        repo().join("crates").canonicalize().unwrap(),
    ];
    let mut stack = roots.to_vec();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for m in text
                    .split("include_")
                    .skip(1)
                    .filter(|m| m.starts_with("str!(\"") || m.starts_with("bytes!(\""))
                {
                    let rel = m.split('"').nth(1).unwrap();
                    let target = path.parent().unwrap().join(rel);
                    let target = target
                        .canonicalize()
                        .unwrap_or_else(|e| panic!("{}: include of {rel}: {e}", path.display()));
                    assert!(
                        roots.iter().any(|r| target.starts_with(r)),
                        "{} includes {}, outside src/ and crates/: the Docker build would not see it",
                        path.display(),
                        target.display()
                    );
                }
            }
        }
    }
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).expect(".dockerignore");
    for entry in ["target", ".venv", ".git"] {
        assert!(ignore.lines().any(|l| l.trim() == entry), ".dockerignore lacks {entry}");
    }
}
