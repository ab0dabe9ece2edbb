//! Secret hygiene: one full run — a dump that succeeds, one that fails, one with an invalid
//! spec, one deleted while running — with the controller logging at `trace`, then every byte
//! the controller emitted or caused is collected and searched for the database password and
//! the connection string (also base64-encoded, as a Secret's `data` holds them): its log files,
//! every DataDump, Event, Lease and ConfigMap on the API server (read with kubectl), the
//! controller's API request log, the user data and
//! tags of every instance, every object in the bucket, and its `/metrics` text.
//!
//! The two places that hold the secret on purpose are not searched: the Kubernetes Secret
//! itself and the SSM SecureString the controller stages for the worker.

use std::time::Duration;

use base64::Engine;
use datadump::api::{DumpPhase, MediaPhase};
use kube::ResourceExt;

use crate::soak::start_controller;
use crate::support::cluster::{BUCKET, PASSWORD, World, connection_string};
use crate::support::net::wait_for;

/// Everything that must never appear.
fn needles() -> Vec<(&'static str, String)> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    vec![
        ("password", PASSWORD.to_string()),
        ("connection string", connection_string()),
        ("password, base64", b64(PASSWORD)),
        ("connection string, base64", b64(&connection_string())),
        (
            "connection string, JSON-escaped",
            serde_json::to_string(&connection_string()).unwrap().trim_matches('"').to_string(),
        ),
    ]
}

/// `(where, text)` pairs holding one of the needles, with a little context.
fn leaks(haystacks: &[(String, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for (place, text) in haystacks {
        for (what, needle) in needles() {
            if let Some(at) = text.find(&needle) {
                let start = text.floor_char_boundary(at.saturating_sub(80));
                let end = text.ceil_char_boundary((at + needle.len() + 40).min(text.len()));
                found.push(format!("{what} in {place}: …{}…", &text[start..end]));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_appears_nowhere_the_controller_writes() {
    let mut w = World::start().await;
    start_controller(&mut w, &[("DATADUMP_LOG", "trace")]);

    // a dump that succeeds, one that fails, one refused, one deleted while it runs
    // (each under its own prefix: dumps sharing PREFIX/DATE/MEDIA/ see each other's semaphores)
    let ok = w.create("hygiene-ok", "destination: {bucket: datasets, prefix: hygiene-ok}").await;
    let bad = w
        .create(
            "hygiene-fails",
            "mediaTypes: [image]\nbackoffLimit: 0\ndestination: {bucket: datasets, prefix: hygiene-fails}",
        )
        .await;
    w.create(
        "hygiene-invalid",
        "query: 'DELETE FROM {media_type}'\ndestination: {bucket: datasets, prefix: hygiene-invalid}",
    )
    .await;
    let gone = w
        .create(
            "hygiene-deleted",
            "mediaTypes: [audio]\ndestination: {bucket: datasets, prefix: hygiene-deleted}",
        )
        .await;
    let running = |m: &'static [&'static str]| {
        move |d: &datadump::api::DataDump| {
            m.iter().all(|m| {
                d.status
                    .as_ref()
                    .and_then(|s| s.media(m))
                    .is_some_and(|s| s.phase == MediaPhase::Running)
            })
        }
    };
    let d = w.wait_dump("hygiene-ok", "running", running(&["image", "audio"])).await;
    w.write_success(&d, "image", &[10, 5]).await;
    w.write_success(&d, "audio", &[3]).await;
    let d = w.wait_dump("hygiene-fails", "running", running(&["image"])).await;
    w.write_failure(&d, "image", "ERROR: permission denied for table image").await;
    w.wait_dump("hygiene-deleted", "running", running(&["audio"])).await;
    w.delete("hygiene-deleted").await;
    w.wait_dump("hygiene-ok", "Succeeded", |d| {
        d.status.as_ref().is_some_and(|s| s.phase == DumpPhase::Succeeded)
    })
    .await;
    w.wait_dump("hygiene-fails", "Failed", |d| {
        d.status.as_ref().is_some_and(|s| s.phase == DumpPhase::Failed)
    })
    .await;
    w.wait_dump("hygiene-invalid", "SpecValid=False", |d| {
        d.status
            .as_ref()
            .and_then(|s| s.condition("SpecValid"))
            .is_some_and(|c| c.status == "False")
    })
    .await;
    let api = w.dumps();
    wait_for("hygiene-deleted gone", Duration::from_secs(90), || {
        let api = api.clone();
        async move { api.get_opt("hygiene-deleted").await.ok().flatten().is_none().then_some(()) }
    })
    .await;
    for dd in [&ok, &bad, &gone] {
        w.assert_nothing_left_running(&dd.uid().unwrap()).await;
    }
    // collect everything
    let mut haystacks: Vec<(String, String)> = Vec::new();
    haystacks.push(("controller logs (trace)".into(), w.logs()));
    // everything the API server holds in the namespace but the Secrets, read with kubectl
    for kind in ["datadumps", "events.events.k8s.io", "events", "leases", "configmaps"] {
        let text = crate::support::kube::kubectl_ok(&w.kubeconfig, &["get", kind, "-o", "json"], "");
        let list: serde_json::Value = serde_json::from_str(&text).unwrap();
        for obj in list["items"].as_array().unwrap() {
            let place = format!("{kind} {}/{}", w.ns, obj["metadata"]["name"].as_str().unwrap_or_default());
            haystacks.push((place, obj.to_string()));
        }
    }
    haystacks.push(("the controller's API requests".into(), format!("{:?}", w.kube.proxy.requests())));
    for dd in [&ok, &bad, &gone] {
        for i in w.instances(&dd.uid().unwrap()).await {
            haystacks.push((format!("user data of {}", i.id), i.user_data.clone().unwrap_or_default()));
            haystacks.push((format!("tags of {}", i.id), format!("{:?}", i.tags)));
        }
    }
    let listed = w.s3.list_objects_v2().bucket(BUCKET).send().await.unwrap();
    let keys: Vec<String> = listed.contents().iter().filter_map(|o| o.key().map(str::to_string)).collect();
    assert!(!keys.is_empty());
    for key in keys {
        let body = w.get_object(&key).await;
        haystacks.push((format!("s3://{BUCKET}/{key}"), String::from_utf8_lossy(&body).into_owned()));
    }
    let metrics = w.metrics().await;
    // not vacuous: the secret did pass through this controller (it staged it) at trace level
    assert!(
        metrics.contains("api=\"PutParameter\",outcome=\"ok\""),
        "the credentials were staged: {metrics:.300}"
    );
    assert!(w.logs().contains("TRACE"), "the controller logged at trace level");
    haystacks.push(("/metrics".into(), metrics));
    // ── Slack payloads go here once notifications land (the lead adds them): push every body
    // ── the webhook receiver got as ("slack payload N", body).

    let total: usize = haystacks.iter().map(|(_, t)| t.len()).sum();
    eprintln!(
        "hygiene: searched {} places, {} bytes, for {} forms of the secret",
        haystacks.len(),
        total,
        needles().len()
    );
    let found = leaks(&haystacks);
    assert!(found.is_empty(), "the secret leaked:\n{}", found.join("\n"));
    // the search is not vacuous: the Secret on the API server does hold it
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(w.client.clone(), &w.ns);
    let secret = serde_json::to_string(&secrets.get("catalog-db").await.unwrap()).unwrap();
    assert!(
        !leaks(&[("the Secret".into(), secret)]).is_empty(),
        "the needles match the Secret itself"
    );
}
