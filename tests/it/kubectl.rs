//! What a user sees with the real `kubectl` (built with the server, same version) against the
//! real API server: the CRD's schema and CEL rules refusing bad specs at `kubectl apply` with
//! the field's path, the controller refusing the rest with `SpecValid=False`, `kubectl explain`,
//! the printer columns of `kubectl get`, and `kubectl wait --for=condition=Complete`.

use std::process::Stdio;
use std::time::Duration;

use datadump::api::{DataDump, MediaPhase};
use serde_json::Value;

use crate::controller::{condition, media_phase};
use crate::support::cluster::World;
use crate::support::kube::{kubectl, kubectl_ok, kubectl_run};
use crate::support::net::wait_for;

/// A DataDump manifest for the world's namespace with `spec_yaml` merged over a valid spec.
fn manifest(w: &World, name: &str, spec_yaml: &str) -> String {
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&crate::api::bad_doc(spec_yaml)).unwrap();
    doc["metadata"]["name"] = name.into();
    doc["metadata"]["namespace"] = w.ns.as_str().into();
    serde_yaml::to_string(&doc).unwrap()
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Whether an error names `field`, or its parent when `field` ends with an index or map key
/// (the server reports a CEL rule on a list or map at the list or map).
fn names_field(message: &str, field: &str) -> bool {
    message.contains(field) || field.rfind('[').is_some_and(|i| message.contains(&field[..i]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_refuses_a_cel_checked_field_with_the_servers_message() {
    let w = World::start().await;
    // `spec.query` passes the schema's type and length, but its CEL rule wants {media_type}
    let out = kubectl_run(&w.kubeconfig, &["apply", "-f", "-"], &manifest(&w, "no-table", "query: SELECT 1"));
    let said = text(&out);
    assert!(!out.status.success(), "the server accepted it: {said}");
    assert!(
        said.contains("spec.query") && said.contains("must name its table with {media_type}"),
        "the refusal names the field and the rule's message: {said}"
    );
    // the timeout's CEL rule (a range of Go durations)
    let out = kubectl_run(&w.kubeconfig, &["apply", "-f", "-"], &manifest(&w, "forever", "timeout: 10000h"));
    let said = text(&out);
    assert!(
        !out.status.success() && said.contains("spec.timeout") && said.contains("between 1m and 8760h"),
        "{said}"
    );
    // nothing was stored
    let out = kubectl_run(&w.kubeconfig, &["get", "datadumps", "-o", "name"], "");
    assert!(out.status.success() && out.stdout.is_empty(), "{}", text(&out));
}

/// The bad-spec corpus of `datadump validate` (tests/it/api.rs), applied with `kubectl`: what the
/// schema or a CEL rule can refuse is refused at apply time naming the field; the rest is stored
/// and refused by the controller with `SpecValid=False` naming the field. Prints which layer
/// refused which case (the table in docs/validation.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_spec_is_refused_by_the_server_or_the_controller_naming_the_field() {
    let mut w = World::start().await;
    // the corpus's bucket: the controller looks into S3 before it plans, so a missing bucket
    // would hide SpecValid=False behind a reconcile error
    w.moto.create_bucket("my-datasets").await;
    w.start_controller(&[]);
    let mut at_apply = Vec::new();
    let mut stored = Vec::new();
    let mut failures = Vec::new();
    for (i, (what, overrides, field)) in crate::api::BAD.iter().enumerate() {
        let name = format!("bad-{i:02}");
        let out = kubectl_run(&w.kubeconfig, &["apply", "-f", "-"], &manifest(&w, &name, overrides));
        let said = text(&out);
        if out.status.success() {
            stored.push((name, *what, *field));
        } else if names_field(&said, field) {
            let line = said.lines().find(|l| names_field(l, field)).unwrap_or_default();
            at_apply.push((*what, *field, line.to_string()));
        } else {
            failures.push(format!("{what}: refused by the server without naming {field}: {said}"));
        }
    }
    for (name, what, field) in &stored {
        let d = w
            .wait_dump(name, &format!("{what}: SpecValid=False"), |d| {
                condition(d, "SpecValid").is_some_and(|c| c.0 == "False")
            })
            .await;
        let (_, reason, message) = condition(&d, "SpecValid").unwrap();
        if reason != "InvalidSpec" || !message.contains(&format!("{field}: ")) {
            failures.push(format!(
                "{what}: stored, then refused by the controller without naming {field}: {message}"
            ));
        }
        assert!(
            media_phase(&d, "image").is_none_or(|p| p == MediaPhase::Pending),
            "{what}: nothing runs"
        );
    }
    eprintln!("refused by the API server at apply time ({}):", at_apply.len());
    for (what, field, line) in &at_apply {
        eprintln!("  {what:<36} {field:<48} {line:.160}");
    }
    eprintln!("accepted by the API server, refused by the controller ({}):", stored.len());
    for (_, what, field) in &stored {
        eprintln!("  {what:<36} {field}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // the CRD carries the rules that can be checked without the controller's context
    for field in [
        "spec.mediaTypes[0]",
        "spec.destination.bucket",
        "spec.database",
        "spec.timeout",
        "spec.backoffLimit",
    ] {
        assert!(at_apply.iter().any(|(_, f, _)| *f == field), "{field} is refused at apply time");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_explain_shows_the_field_docs() {
    let w = World::start().await;
    let crd: Value =
        serde_yaml::from_str(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/datadump.dev_datadumps.yaml")).unwrap())
            .unwrap();
    let instance = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["instance"];
    let out = kubectl_ok(&w.kubeconfig, &["explain", "datadump.spec.instance"], "");
    let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let first_sentence = instance["description"].as_str().unwrap().split(". ").next().unwrap().to_string();
    assert!(
        flat(&out).contains(&flat(&first_sentence)),
        "the description of spec.instance: {out}"
    );
    for (field, schema) in instance["properties"].as_object().unwrap() {
        assert!(
            out.contains(&format!("{field}\t")) || out.contains(&format!("{field} ")),
            "{field} listed: {out}"
        );
        let doc = schema["description"].as_str().unwrap_or_default();
        let words: String = doc.split_whitespace().take(6).collect::<Vec<_>>().join(" ");
        assert!(flat(&out).contains(&words), "{field}'s doc ({words}) shown: {out}");
    }
    let out = kubectl_ok(&w.kubeconfig, &["explain", "dd.spec.timeout"], "");
    assert!(out.contains("168h"), "the default is documented: {out}");
}

/// A dump run to `kubectl wait --for=condition=Complete`, and `kubectl get` on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_wait_returns_when_the_dump_completes_and_get_shows_the_columns() {
    let mut w = World::start().await;
    w.start_controller(&[]);
    w.create("catalog", "mediaTypes: [image]").await;
    let mut waiter = kubectl(&w.kubeconfig)
        .args(["wait", "datadump/catalog", "--for=condition=Complete", "--timeout=120s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl wait");
    let dd: DataDump = w
        .wait_dump("catalog", "image running", |d| media_phase(d, "image") == Some(MediaPhase::Running))
        .await;
    let out = kubectl_ok(&w.kubeconfig, &["get", "datadumps"], "");
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "PHASE", "DONE", "BUCKET", "AGE"], "{out}");
    assert!(
        out.lines().nth(1).unwrap().split_whitespace().collect::<Vec<_>>()[..4] == ["catalog", "Running", "0/1", "datasets"],
        "{out}"
    );
    assert!(
        waiter.try_wait().unwrap().is_none(),
        "kubectl wait returned before the dump completed"
    );
    w.write_success(&dd, "image", &[2]).await;
    let status = wait_for("kubectl wait to return", Duration::from_secs(120), || {
        let r = waiter.try_wait().unwrap();
        async move { r }
    })
    .await;
    let out = waiter.wait_with_output().unwrap();
    assert!(status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "datadump.datadump.dev/catalog condition met"
    );
    let done = w.dumps().get("catalog").await.unwrap();
    assert_eq!(condition(&done, "Complete").unwrap().0, "True");
    let wide = kubectl_ok(&w.kubeconfig, &["get", "dd", "-o", "wide"], "");
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "PHASE", "DONE", "BUCKET", "AGE", "DATE", "MESSAGE"], "{wide}");
    let row = wide.lines().nth(1).unwrap();
    let date = done.status.as_ref().unwrap().dump_date.clone().unwrap();
    assert!(row.contains("Succeeded") && row.contains("1/1") && row.contains(&date), "{wide}");
}
