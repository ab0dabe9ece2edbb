//! The install paths applied to the real API server: the Helm chart rendered with the Helm SDK
//! (default values, and every option set: `tests/data/values-full.yaml`) and the plain
//! `manifests/` (through `kubectl kustomize`), each applied with the real `kubectl` and read
//! back. No pod runs (there is no kubelet or controller-manager); the point is the server's own
//! validation of every object: schemas, defaults, RBAC objects, the CRD. The one kind the
//! server does not serve is the chart's optional `ServiceMonitor` (Prometheus Operator's CRD);
//! `tests/it/chart.rs` checks it against that CRD's fields offline.

use serde_json::{Value, json};

use crate::support::kube::{kubectl_ok, server};

/// Applies `objects` (creating their namespaces first, as `helm --create-namespace` would)
/// and checks every one is then on the server; returns what kubectl said.
fn apply(what: &str, objects: &[Value]) -> String {
    let kubeconfig = &server().admin_kubeconfig;
    let served: Vec<Value> = objects.iter().filter(|o| o["kind"] != "ServiceMonitor").cloned().collect();
    assert!(served.len() >= 6, "{what}: {} objects", served.len());
    let mut namespaces: Vec<&str> = served.iter().filter_map(|o| o["metadata"]["namespace"].as_str()).collect();
    namespaces.sort();
    namespaces.dedup();
    let ns_list: Vec<Value> = namespaces
        .iter()
        .map(|n| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}))
        .collect();
    let list = |items: &[Value]| json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string();
    kubectl_ok(
        kubeconfig,
        &["apply", "--server-side", "--field-manager=ns", "-f", "-"],
        &list(&ns_list),
    );
    let manager = format!("--field-manager={}", what.replace([' ', ',', '/'], "-"));
    let said = kubectl_ok(
        kubeconfig,
        &["apply", "--server-side", "--force-conflicts", &manager, "-f", "-"],
        &list(&served),
    );
    let names = kubectl_ok(kubeconfig, &["get", "-f", "-", "-o", "name"], &list(&served));
    assert_eq!(
        names.lines().count(),
        served.len(),
        "{what}: every object is on the server:\n{names}\n{said}"
    );
    said
}

#[test]
fn the_chart_and_manifests_are_accepted_by_the_api_server() {
    let default = &crate::chart::default_render().objects;
    let said = apply("chart default values", default);
    for kind in [
        "customresourcedefinition",
        "serviceaccount",
        "clusterrole",
        "clusterrolebinding",
        "service",
        "deployment",
    ] {
        assert!(said.contains(kind), "chart default: {kind} applied: {said}");
    }
    let full = &crate::chart::full_render().objects;
    assert!(
        full.iter().any(|o| o["kind"] == "ServiceMonitor"),
        "every option includes the ServiceMonitor"
    );
    let said = apply("chart every option", full);
    for kind in ["role.rbac", "rolebinding.rbac", "deployment"] {
        assert!(said.contains(kind), "chart full: {kind} applied: {said}");
    }
    let out = std::process::Command::new(crate::support::kube::tool("kubectl"))
        .args(["kustomize", concat!(env!("CARGO_MANIFEST_DIR"), "/manifests")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&String::from_utf8_lossy(&out.stdout))
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    apply("manifests", &docs);
    // the Deployment the server stored is the one rendered: its defaults filled in, nothing lost
    let got = kubectl_ok(
        &server().admin_kubeconfig,
        &["get", "deployment", "-n", "datadump-system", "dd-controller", "-o", "json"],
        "",
    );
    let got: Value = serde_json::from_str(&got).unwrap();
    let container = &got["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true, "{container}");
    assert_eq!(got["spec"]["replicas"], 2);
}
