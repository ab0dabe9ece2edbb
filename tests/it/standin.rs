//! The Kubernetes API stand-in's own tests: each pins one behaviour of the real API server that
//! the controller relies on, through the real `kube::Client` (and the real `kubectl` when it is
//! on PATH).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::core::response::StatusSummary;
use kube::core::{ApiResource, DynamicObject, GroupVersionKind, ObjectMeta};
use kube::discovery::{Discovery, Scope};
use kube::runtime::events::{Event as RecordedEvent, EventType, Recorder, Reporter};
use kube::runtime::watcher;
use serde_json::{Value, json};

use crate::support::apiserver::{ApiServer, FaultMatch};
use crate::support::net::wait_for;

const NS: &str = "ns";
const WAIT: Duration = Duration::from_secs(10);

/// A DataDump-like CRD, with printer columns (one of them wide).
fn crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": "datadumps.datadump.dev" },
        "spec": {
            "group": "datadump.dev",
            "names": { "plural": "datadumps", "singular": "datadump", "kind": "DataDump",
                       "listKind": "DataDumpList", "shortNames": ["dd"] },
            "scope": "Namespaced",
            "versions": [{
                "name": "v1alpha1", "served": true, "storage": true,
                "schema": { "openAPIV3Schema": { "type": "object", "x-kubernetes-preserve-unknown-fields": true } },
                "subresources": { "status": {} },
                "additionalPrinterColumns": [
                    { "name": "Phase", "type": "string", "jsonPath": ".status.phase" },
                    { "name": "Bucket", "type": "string", "jsonPath": ".spec.destination.bucket" },
                    { "name": "Message", "type": "string", "priority": 1, "jsonPath": ".status.message" },
                    { "name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp" },
                ],
            }],
        },
    })
}

fn gvk() -> GroupVersionKind {
    GroupVersionKind::gvk("datadump.dev", "v1alpha1", "DataDump")
}

fn dd_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&gvk(), "datadumps")
}

fn dd(name: &str, bucket: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "datadump.dev/v1alpha1",
        "kind": "DataDump",
        "metadata": { "name": name },
        "spec": { "destination": { "bucket": bucket } },
    }))
    .unwrap()
}

/// A server with the DataDump CRD registered, and an `Api` on namespace `ns`.
async fn setup() -> (ApiServer, Api<DynamicObject>) {
    let server = ApiServer::start().await;
    server.register_crd(&crd());
    let api = Api::namespaced_with(server.client(), NS, &dd_resource());
    (server, api)
}

fn rv<K: kube::Resource>(obj: &K) -> u64 {
    obj.meta().resource_version.as_deref().unwrap().parse().unwrap()
}

fn bucket(obj: &DynamicObject) -> &str {
    obj.data["spec"]["destination"]["bucket"].as_str().unwrap_or_default()
}

/// The `(code, reason)` of an API error; panics on success or on another error.
fn api_error<T: std::fmt::Debug>(result: kube::Result<T>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.status, Some(StatusSummary::Failure), "Status body: {s:?}");
            (s.code, s.reason.clone())
        }
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn merge(v: Value) -> Patch<Value> {
    Patch::Merge(v)
}

fn json_patch(v: Value) -> Patch<Value> {
    Patch::Json(serde_json::from_value(v).unwrap())
}

async fn next_event<S>(stream: &mut S) -> WatchEvent<DynamicObject>
where
    S: Stream<Item = kube::Result<WatchEvent<DynamicObject>>> + Unpin,
{
    let item = tokio::time::timeout(WAIT, stream.next()).await.expect("a watch event in time");
    item.expect("the stream to go on").expect("a well-formed event")
}

/// `(type, name, bucket)` of a watch event.
fn summary(event: &WatchEvent<DynamicObject>) -> (&'static str, String, String) {
    let (t, o) = match event {
        WatchEvent::Added(o) => ("ADDED", o),
        WatchEvent::Modified(o) => ("MODIFIED", o),
        WatchEvent::Deleted(o) => ("DELETED", o),
        other => panic!("unexpected event {other:?}"),
    };
    (t, o.metadata.name.clone().unwrap(), bucket(o).to_owned())
}

#[tokio::test]
async fn create_sets_server_fields_and_one_counter_orders_all_kinds() {
    let (server, api) = setup().await;
    let pp = PostParams::default();
    let a = api.create(&pp, &dd("a", "b1")).await.unwrap();
    let uid = a.metadata.uid.clone().unwrap();
    assert_eq!(uid.len(), 36);
    assert_eq!(uid.matches('-').count(), 4);
    assert!(a.metadata.creation_timestamp.is_some());
    assert_eq!(a.metadata.generation, Some(1));
    assert_eq!(a.metadata.namespace.as_deref(), Some(NS));
    let secrets: Api<Secret> = Api::namespaced(server.client(), NS);
    let s = secrets
        .create(
            &pp,
            &Secret {
                metadata: ObjectMeta {
                    name: Some("s".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let b = api.create(&pp, &dd("b", "b1")).await.unwrap();
    assert!(rv(&a) < rv(&s) && rv(&s) < rv(&b), "one resourceVersion counter across kinds");
    assert_ne!(b.metadata.uid.as_deref(), Some(uid.as_str()));
    let got = api.get("a").await.unwrap();
    assert_eq!((rv(&got), bucket(&got)), (rv(&a), "b1"));
    assert_eq!(server.get_object("dd", NS, "a").unwrap()["spec"]["destination"]["bucket"], "b1");

    let mut generated = dd("", "b1");
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("gen-".into());
    let g = api.create(&pp, &generated).await.unwrap();
    assert!(g.metadata.name.as_deref().unwrap().starts_with("gen-") && g.metadata.name.unwrap().len() == 9);
    assert_eq!(api_error(api.create(&pp, &dd("Bad_Name", "b")).await).0, 422);
    let mut with_rv = dd("c", "b");
    with_rv.metadata.resource_version = Some("5".into());
    assert_eq!(api_error(api.create(&pp, &with_rv).await).0, 500, "a real server refuses this too");
}

#[tokio::test]
async fn status_subresource_is_isolated_and_generation_tracks_spec() {
    let (_server, api) = setup().await;
    let pp = PatchParams::default();
    let mut with_status = dd("a", "b1");
    with_status.data["status"] = json!({ "phase": "Bogus" });
    let created = api.create(&PostParams::default(), &with_status).await.unwrap();
    assert!(created.data.get("status").is_none(), "create drops status");

    let patch = json!({ "status": { "phase": "Running" }, "spec": { "destination": { "bucket": "x" } },
                        "metadata": { "labels": { "x": "y" } } });
    let s1 = api.patch_status("a", &pp, &merge(patch)).await.unwrap();
    assert_eq!(s1.data["status"]["phase"], "Running");
    assert_eq!(bucket(&s1), "b1", "/status ignores spec");
    assert!(s1.metadata.labels.is_none(), "/status ignores metadata");
    assert_eq!(s1.metadata.generation, Some(1));
    assert!(rv(&s1) > rv(&created));

    let same = api
        .patch("a", &pp, &merge(json!({ "status": { "phase": "Failed" } })))
        .await
        .unwrap();
    assert_eq!(same.data["status"]["phase"], "Running", "the main resource ignores status");
    assert_eq!(rv(&same), rv(&s1), "a write that changes nothing is a no-op");

    let labelled = api
        .patch("a", &pp, &merge(json!({ "metadata": { "labels": { "t": "1" } } })))
        .await
        .unwrap();
    assert!(rv(&labelled) > rv(&same));
    assert_eq!(labelled.metadata.generation, Some(1), "metadata changes keep the generation");

    let spec = api
        .patch("a", &pp, &merge(json!({ "spec": { "destination": { "bucket": "b2" } } })))
        .await
        .unwrap();
    assert_eq!(spec.metadata.generation, Some(2));
    assert_eq!(spec.data["status"]["phase"], "Running");

    let mut put = spec.clone();
    put.data["status"] = json!({ "phase": "Succeeded" });
    put.data["spec"]["destination"]["bucket"] = json!("ignored");
    let replaced = api.replace_status("a", &PostParams::default(), &put).await.unwrap();
    assert_eq!(
        (replaced.data["status"]["phase"].as_str(), bucket(&replaced)),
        (Some("Succeeded"), "b2")
    );
    assert_eq!(replaced.metadata.generation, Some(2), "status writes never bump the generation");
    assert_eq!(api.get_status("a").await.unwrap().data["status"]["phase"], "Succeeded");
}

#[tokio::test]
async fn conflicts_and_missing_objects_are_status_errors() {
    let (server, api) = setup().await;
    let pp = PostParams::default();
    let created = api.create(&pp, &dd("a", "b1")).await.unwrap();
    assert_eq!(api_error(api.create(&pp, &dd("a", "b1")).await), (409, "AlreadyExists".into()));

    let current = api
        .patch("a", &PatchParams::default(), &merge(json!({ "spec": { "x": 1 } })))
        .await
        .unwrap();
    let mut stale = created.clone();
    stale.data["spec"]["destination"]["bucket"] = json!("b2");
    match api.replace("a", &pp, &stale).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
            assert!(s.message.contains("the object has been modified"), "{}", s.message);
            assert_eq!(s.details.unwrap().name, "a");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let stale_patch = json!({ "metadata": { "resourceVersion": rv(&created).to_string() }, "spec": { "y": 1 } });
    assert_eq!(api_error(api.patch("a", &PatchParams::default(), &merge(stale_patch)).await).0, 409);
    let mut fresh = current.clone();
    fresh.data["spec"]["destination"]["bucket"] = json!("b2");
    let replaced = api.replace("a", &pp, &fresh).await.unwrap();
    assert_eq!((bucket(&replaced), replaced.metadata.generation), ("b2", Some(3)));
    let mut unconditional = replaced.clone();
    unconditional.metadata.resource_version = None;
    assert_eq!(
        api_error(api.replace("a", &pp, &unconditional).await).0,
        422,
        "custom resources need a resourceVersion"
    );

    assert_eq!(api_error(api.get("missing").await), (404, "NotFound".into()));
    assert_eq!(
        api_error(api.patch("missing", &PatchParams::default(), &merge(json!({}))).await).0,
        404
    );
    assert_eq!(api_error(api.delete("missing", &DeleteParams::default()).await).0, 404);
    let unknown = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("datadump.dev", "v1alpha1", "Nope"), "nopes");
    let unknown: Api<DynamicObject> = Api::namespaced_with(server.client(), NS, &unknown);
    assert_eq!(api_error(unknown.list(&ListParams::default()).await).0, 404);
}

#[tokio::test]
async fn finalizers_hold_deletion_until_the_last_is_removed() {
    let (_server, api) = setup().await;
    let mut obj = dd("a", "b1");
    obj.metadata.finalizers = Some(vec!["datadump.dev/cleanup".into()]);
    let created = api.create(&PostParams::default(), &obj).await.unwrap();
    let mut events = api.watch(&WatchParams::default(), &rv(&created).to_string()).await.unwrap().boxed();

    let marked = api
        .delete("a", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("the object back");
    let stamp = marked.metadata.deletion_timestamp.clone().expect("deletionTimestamp set");
    let kept = api.get("a").await.unwrap();
    assert_eq!(kept.metadata.deletion_timestamp.as_ref(), Some(&stamp));
    let again = api.delete("a", &DeleteParams::default()).await.unwrap().left().unwrap();
    assert_eq!(rv(&again), rv(&kept), "deleting again changes nothing");

    let add = json!({ "metadata": { "finalizers": ["datadump.dev/cleanup", "other"] } });
    assert_eq!(
        api_error(api.patch("a", &PatchParams::default(), &merge(add)).await),
        (422, "Invalid".into())
    );

    // exactly what kube-runtime's finalizer helper sends
    let remove = json!([{ "op": "test", "path": "/metadata/finalizers/0", "value": "datadump.dev/cleanup" },
                        { "op": "remove", "path": "/metadata/finalizers/0" }]);
    api.patch("a", &PatchParams::default(), &json_patch(remove)).await.unwrap();
    assert!(api.get_opt("a").await.unwrap().is_none(), "gone once the finalizers are");

    let types: Vec<&str> = [
        next_event(&mut events).await,
        next_event(&mut events).await,
        next_event(&mut events).await,
    ]
    .iter()
    .map(|e| summary(e).0)
    .collect();
    assert_eq!(types, ["MODIFIED", "MODIFIED", "DELETED"]);
}

async fn names(api: &Api<DynamicObject>, lp: &ListParams) -> Vec<String> {
    api.list(lp)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|o| o.metadata.name.unwrap())
        .collect()
}

#[tokio::test]
async fn list_filters_by_labels_and_fields_and_pages() {
    let (server, api) = setup().await;
    let other: Api<DynamicObject> = Api::namespaced_with(server.client(), "other", &dd_resource());
    let labelled = |name: &str, labels: Value| {
        let mut o = dd(name, "b");
        o.metadata.labels = serde_json::from_value(labels).unwrap();
        o
    };
    let pp = PostParams::default();
    for (name, labels) in [
        ("a", json!({ "app": "x", "tier": "db" })),
        ("b", json!({ "app": "y" })),
        ("c", json!({ "app": "x" })),
        ("d", json!(null)),
        ("e", json!({ "app": "z", "tier": "web" })),
    ] {
        api.create(&pp, &labelled(name, labels)).await.unwrap();
    }
    other.create(&pp, &labelled("f", json!({ "app": "x" }))).await.unwrap();

    for (selector, want) in [
        ("app=x", vec!["a", "c"]),
        ("app==x,tier=db", vec!["a"]),
        ("app in (x, y)", vec!["a", "b", "c"]),
        ("app notin (x,y)", vec!["d", "e"]),
        ("app!=x", vec!["b", "d", "e"]),
        ("tier", vec!["a", "e"]),
        ("!tier", vec!["b", "c", "d"]),
    ] {
        assert_eq!(names(&api, &ListParams::default().labels(selector)).await, want, "{selector}");
    }
    assert_eq!(names(&api, &ListParams::default().fields("metadata.name=b")).await, ["b"]);
    let all: Api<DynamicObject> = Api::all_with(server.client(), &dd_resource());
    assert_eq!(names(&all, &ListParams::default()).await.len(), 6);
    // cluster-wide lists are ordered by namespace, then name
    assert_eq!(names(&all, &ListParams::default().labels("app=x")).await, ["a", "c", "f"]);
    assert_eq!(names(&all, &ListParams::default().fields("metadata.namespace=other")).await, ["f"]);

    let mut pages = Vec::new();
    let mut lp = ListParams::default().limit(2);
    loop {
        let page = api.list(&lp).await.unwrap();
        pages.push(page.items.iter().map(|o| o.metadata.name.clone().unwrap()).collect::<Vec<_>>());
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(pages, [vec!["a", "b"], vec!["c", "d"], vec!["e"]]);

    let raw: Value = server
        .client()
        .request(
            axum::http::Request::get("/apis/datadump.dev/v1alpha1/namespaces/ns/datadumps")
                .body(vec![])
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        (raw["kind"].as_str(), raw["apiVersion"].as_str()),
        (Some("DataDumpList"), Some("datadump.dev/v1alpha1"))
    );
    assert_eq!(raw["metadata"]["resourceVersion"], server.resource_version().to_string());

    // metadata-only reads (kube's *_metadata calls and metadata_watcher)
    let meta = api.get_metadata("a").await.unwrap();
    assert_eq!(meta.types.unwrap().kind, "PartialObjectMetadata");
    assert_eq!(meta.metadata.labels.unwrap()["tier"], "db");
    let metas = api.list_metadata(&ListParams::default().labels("app=x")).await.unwrap();
    let meta_names: Vec<_> = metas.items.iter().map(|m| m.metadata.name.clone().unwrap()).collect();
    assert_eq!(meta_names, ["a", "c"]);
    let mut meta_watch = api.watch_metadata(&WatchParams::default(), "0").await.unwrap().boxed();
    let first = tokio::time::timeout(WAIT, meta_watch.next()).await.unwrap().unwrap().unwrap();
    match first {
        WatchEvent::Added(m) => assert_eq!(m.metadata.name.as_deref(), Some("a")),
        other => panic!("expected ADDED, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_replays_from_a_resource_version_in_order_then_follows() {
    let (_server, api) = setup().await;
    let pp = PostParams::default();
    let a = api.create(&pp, &dd("a", "b1")).await.unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &merge(json!({ "spec": { "destination": { "bucket": "b2" } } })),
    )
    .await
    .unwrap();
    api.create(&pp, &dd("b", "b1")).await.unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();

    let mut stream = api.watch(&WatchParams::default(), &rv(&a).to_string()).await.unwrap().boxed();
    let mut seen = Vec::new();
    let mut last = rv(&a);
    for _ in 0..3 {
        let event = next_event(&mut stream).await;
        let (WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o)) = &event else {
            panic!("unexpected {event:?}")
        };
        assert!(rv(o) > last, "strictly increasing resourceVersions");
        last = rv(o);
        seen.push(summary(&event));
    }
    let s = |t: &'static str, n: &str, b: &str| (t, n.to_owned(), b.to_owned());
    assert_eq!(seen, [s("MODIFIED", "a", "b2"), s("ADDED", "b", "b1"), s("DELETED", "a", "b2")]);
    api.patch(
        "b",
        &PatchParams::default(),
        &merge(json!({ "spec": { "destination": { "bucket": "b3" } } })),
    )
    .await
    .unwrap();
    assert_eq!(
        summary(&next_event(&mut stream).await),
        s("MODIFIED", "b", "b3"),
        "live events follow"
    );

    let mut from_zero = api.watch(&WatchParams::default(), "0").await.unwrap().boxed();
    assert_eq!(
        summary(&next_event(&mut from_zero).await),
        s("ADDED", "b", "b3"),
        "\"0\": current state first"
    );
}

#[tokio::test]
async fn watch_selectors_turn_transitions_into_added_and_deleted() {
    let (_server, api) = setup().await;
    let wp = WatchParams::default().labels("app=x");
    let mut stream = api.watch(&wp, "0").await.unwrap().boxed();
    let mut obj = dd("c", "b");
    obj.metadata.labels = Some(BTreeMap::from([("app".to_owned(), "x".to_owned())]));
    api.create(&PostParams::default(), &obj).await.unwrap();
    assert_eq!(summary(&next_event(&mut stream).await).0, "ADDED");
    let relabel = |v: &str| merge(json!({ "metadata": { "labels": { "app": v } } }));
    api.patch("c", &PatchParams::default(), &relabel("y")).await.unwrap();
    assert_eq!(summary(&next_event(&mut stream).await).0, "DELETED", "no longer matching");
    api.create(&PostParams::default(), &dd("unlabelled", "b")).await.unwrap();
    api.patch("c", &PatchParams::default(), &relabel("x")).await.unwrap();
    assert_eq!(
        summary(&next_event(&mut stream).await).0,
        "ADDED",
        "matching again (and not the unlabelled)"
    );

    let mut by_name = api
        .watch(&WatchParams::default().fields("metadata.name=d"), "0")
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &dd("e", "b")).await.unwrap();
    api.create(&PostParams::default(), &dd("d", "b")).await.unwrap();
    assert_eq!(summary(&next_event(&mut by_name).await).1, "d");
}

#[tokio::test]
async fn compacted_resource_versions_are_gone() {
    let (server, api) = setup().await;
    let a = api.create(&PostParams::default(), &dd("a", "b1")).await.unwrap();
    api.create(&PostParams::default(), &dd("b", "b1")).await.unwrap();
    let first_page = api.list(&ListParams::default().limit(1)).await.unwrap();
    api.patch("a", &PatchParams::default(), &merge(json!({ "spec": { "x": 1 } })))
        .await
        .unwrap();
    server.compact();

    let mut stream = api.watch(&WatchParams::default(), &rv(&a).to_string()).await.unwrap().boxed();
    match next_event(&mut stream).await {
        WatchEvent::Error(s) => assert_eq!((s.code, s.reason.as_str()), (410, "Expired")),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    assert!(
        tokio::time::timeout(WAIT, stream.next()).await.unwrap().is_none(),
        "the stream ends"
    );

    let token = first_page.metadata.continue_.unwrap();
    assert_eq!(
        api_error(api.list(&ListParams::default().limit(1).continue_token(&token)).await).0,
        410
    );

    let now = server.resource_version().to_string();
    let mut fresh = api.watch(&WatchParams::default(), &now).await.unwrap().boxed();
    api.patch("b", &PatchParams::default(), &merge(json!({ "spec": { "x": 2 } })))
        .await
        .unwrap();
    assert_eq!(summary(&next_event(&mut fresh).await).1, "b", "the current version still works");
}

#[tokio::test]
async fn watch_honours_timeout_bookmarks_and_initial_events() {
    let (server, api) = setup().await;
    api.create(&PostParams::default(), &dd("a", "b1")).await.unwrap();
    let now = server.resource_version().to_string();
    // the `watch=1` form, read to its end through the raw client: ends at timeoutSeconds
    let raw = format!("/apis/datadump.dev/v1alpha1/namespaces/{NS}/datadumps?watch=1&timeoutSeconds=1&resourceVersion=0");
    let client = server.client();
    let raw = client.request_text(axum::http::Request::get(raw).body(vec![]).unwrap());
    let text = tokio::time::timeout(WAIT, raw).await.expect("the stream to end").unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(
        (first["type"].as_str(), first["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("a"))
    );
    let mut short = api
        .watch(&WatchParams::default().timeout(1).disable_bookmarks(), &now)
        .await
        .unwrap()
        .boxed();
    let end = tokio::time::timeout(WAIT, short.next())
        .await
        .expect("the stream to end at timeoutSeconds");
    assert!(end.is_none());

    server.set_bookmark_interval(Duration::from_millis(100));
    let mut stream = api.watch(&WatchParams::default(), &now).await.unwrap().boxed();
    match next_event(&mut stream).await {
        WatchEvent::Bookmark(b) => assert_eq!(b.metadata.resource_version, now),
        other => panic!("expected a bookmark, got {other:?}"),
    }

    api.create(&PostParams::default(), &dd("b", "b1")).await.unwrap();
    let mut initial = api.watch(&WatchParams::streaming_lists(), "0").await.unwrap().boxed();
    assert_eq!(summary(&next_event(&mut initial).await).1, "a");
    assert_eq!(summary(&next_event(&mut initial).await).1, "b");
    match next_event(&mut initial).await {
        WatchEvent::Bookmark(b) => {
            assert_eq!(
                b.metadata.annotations.get("k8s.io/initial-events-end").map(String::as_str),
                Some("true")
            );
            assert_eq!(b.metadata.resource_version, server.resource_version().to_string());
        }
        other => panic!("expected the initial-events-end bookmark, got {other:?}"),
    }
}

/// Runs a kube-runtime watcher in the background, logging its events as short strings.
fn log_watcher(api: Api<DynamicObject>, config: watcher::Config) -> (Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let task = tokio::spawn({
        let log = log.clone();
        async move {
            let mut stream = watcher(api, config).boxed();
            while let Some(event) = stream.next().await {
                let entry = match event {
                    Ok(watcher::Event::Apply(o)) => {
                        format!("apply {} {}", o.metadata.name.clone().unwrap(), bucket(&o))
                    }
                    Ok(watcher::Event::Delete(o)) => format!("delete {}", o.metadata.name.unwrap()),
                    Ok(watcher::Event::Init) => "init".into(),
                    Ok(watcher::Event::InitApply(o)) => {
                        format!("initapply {}", o.metadata.name.unwrap())
                    }
                    Ok(watcher::Event::InitDone) => "initdone".into(),
                    Err(e) => format!("error {e}"),
                };
                log.lock().unwrap().push(entry);
            }
        }
    });
    (log, task)
}

async fn wait_logged(log: &Arc<Mutex<Vec<String>>>, what: &str, count: usize) {
    wait_for(what, WAIT, || async {
        let log = log.lock().unwrap();
        (log.iter().filter(|e| e.starts_with(what)).count() >= count).then_some(())
    })
    .await;
}

fn count_requests(server: &ApiServer, verb: &str) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.resource == "datadumps" && r.verb == verb)
        .count()
}

#[tokio::test]
async fn runtime_watcher_sees_changes_in_order_and_recovers_from_drops_and_410() {
    let (server, api) = setup().await;
    let (log, task) = log_watcher(api.clone(), watcher::Config::default());
    wait_logged(&log, "initdone", 1).await;
    api.create(&PostParams::default(), &dd("a", "b1")).await.unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &merge(json!({ "spec": { "destination": { "bucket": "b2" } } })),
    )
    .await
    .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    wait_logged(&log, "delete a", 1).await;
    assert_eq!(log.lock().unwrap()[2..], ["apply a b1", "apply a b2", "delete a"]);

    let watches = count_requests(&server, "watch");
    server.drop_watches();
    wait_for("the watcher to re-watch", WAIT, || async {
        (count_requests(&server, "watch") > watches).then_some(())
    })
    .await;
    api.create(&PostParams::default(), &dd("b", "b1")).await.unwrap();
    wait_logged(&log, "apply b", 1).await;

    // history compacted while the watcher is away: its resourceVersion is gone, so it re-lists
    let secrets: Api<Secret> = Api::namespaced(server.client(), NS);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("s".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    secrets.create(&PostParams::default(), &secret).await.unwrap();
    server.compact();
    let lists = count_requests(&server, "list");
    server.drop_watches();
    wait_logged(&log, "initdone", 2).await;
    assert!(count_requests(&server, "list") > lists);
    assert!(
        log.lock().unwrap().iter().any(|e| e.starts_with("error") && e.contains("too old")),
        "{:?}",
        log.lock().unwrap()
    );
    api.create(&PostParams::default(), &dd("c", "b1")).await.unwrap();
    wait_logged(&log, "apply c", 1).await;
    task.abort();

    // the streaming-list strategy (sendInitialEvents) works too
    let (log, task) = log_watcher(api.clone(), watcher::Config::default().streaming_lists());
    wait_logged(&log, "initdone", 1).await;
    assert_eq!(*log.lock().unwrap(), ["init", "initapply b", "initapply c", "initdone"]);
    task.abort();
}

#[tokio::test]
async fn patch_flavours_follow_the_real_server() {
    let (server, api) = setup().await;
    let pp = PatchParams::default();
    let mut obj = dd("a", "b1");
    obj.data["spec"]["destination"]["prefix"] = json!("p");
    obj.data["spec"]["tables"] = json!(["t1"]);
    obj.metadata.labels = Some(BTreeMap::from([("keep".into(), "1".into()), ("drop".into(), "1".into())]));
    api.create(&PostParams::default(), &obj).await.unwrap();

    let p = json!({ "metadata": { "labels": { "drop": null } },
                    "spec": { "destination": { "prefix": null }, "tables": ["t2"] } });
    let merged = api.patch("a", &pp, &merge(p)).await.unwrap();
    assert_eq!(merged.data["spec"], json!({ "destination": { "bucket": "b1" }, "tables": ["t2"] }));
    assert_eq!(merged.metadata.labels.unwrap().keys().collect::<Vec<_>>(), ["keep"]);

    let ops = json!([
        { "op": "test", "path": "/spec/destination/bucket", "value": "b1" },
        { "op": "replace", "path": "/spec/destination/bucket", "value": "b2" },
        { "op": "add", "path": "/spec/tables/-", "value": "t3" },
        { "op": "remove", "path": "/metadata/labels/keep" },
        { "op": "test", "path": "/metadata/finalizers", "value": null },
        { "op": "add", "path": "/metadata/finalizers", "value": ["f"] },
    ]);
    let patched = api.patch("a", &pp, &json_patch(ops)).await.unwrap();
    assert_eq!((bucket(&patched), &patched.data["spec"]["tables"]), ("b2", &json!(["t2", "t3"])));
    assert!(patched.metadata.labels.is_none());
    assert_eq!(patched.metadata.finalizers, Some(vec!["f".to_owned()]));
    let failing = json!([{ "op": "test", "path": "/spec/destination/bucket", "value": "nope" },
                         { "op": "replace", "path": "/spec/destination/bucket", "value": "b9" }]);
    assert_eq!(api_error(api.patch("a", &pp, &json_patch(failing)).await).0, 422);
    assert_eq!(bucket(&api.get("a").await.unwrap()), "b2", "a failed JSON patch changes nothing");
    let stale = json!([{ "op": "replace", "path": "/metadata/resourceVersion", "value": "1" }]);
    assert_eq!(api_error(api.patch("a", &pp, &json_patch(stale)).await).0, 409);

    let strategic = Patch::Strategic(json!({ "metadata": { "labels": { "s": "1" } } }));
    assert_eq!(
        api_error(api.patch("a", &pp, &strategic).await).0,
        415,
        "custom resources refuse strategic merge"
    );
    let secrets: Api<Secret> = Api::namespaced(server.client(), NS);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("s".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    secrets.create(&PostParams::default(), &secret).await.unwrap();
    let labelled = secrets.patch("s", &pp, &strategic).await.unwrap();
    assert_eq!(labelled.metadata.labels.unwrap()["s"], "1");

    let ssa = PatchParams::apply("standin-test").force();
    let applied = |b: &str| {
        Patch::Apply(json!({ "apiVersion": "datadump.dev/v1alpha1", "kind": "DataDump",
                                                 "metadata": { "name": "z" }, "spec": { "destination": { "bucket": b } } }))
    };
    let created = api.patch("z", &ssa, &applied("z1")).await.unwrap();
    assert_eq!((bucket(&created), created.metadata.generation), ("z1", Some(1)), "apply creates");
    let updated = api.patch("z", &ssa, &applied("z2")).await.unwrap();
    assert_eq!((bucket(&updated), updated.metadata.generation), ("z2", Some(2)));
    let status = json!({ "apiVersion": "datadump.dev/v1alpha1", "kind": "DataDump", "status": { "phase": "Running" } });
    let with_status = api.patch_status("z", &ssa, &Patch::Apply(status)).await.unwrap();
    assert_eq!(
        (with_status.data["status"]["phase"].as_str(), with_status.metadata.generation),
        (Some("Running"), Some(2))
    );

    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    assert_eq!(
        api.create(&dry, &dd("dry", "x")).await.unwrap().metadata.name.as_deref(),
        Some("dry")
    );
    assert!(api.get_opt("dry").await.unwrap().is_none(), "dry-run creates store nothing");
    let dry_patch = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let shown = api
        .patch("z", &dry_patch, &merge(json!({ "spec": { "destination": { "bucket": "dry" } } })))
        .await
        .unwrap();
    assert_eq!((bucket(&shown), bucket(&api.get("z").await.unwrap())), ("dry", "z2"));
}

#[tokio::test]
async fn builtin_secrets_leases_and_events_work_typed() {
    let server = ApiServer::start().await;
    let client = server.client();
    let pp = PostParams::default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("creds".into()),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([("password".to_owned(), "hunter2".to_owned())])),
        ..Default::default()
    };
    let stored = secrets.create(&pp, &secret).await.unwrap();
    assert_eq!(stored.data.unwrap()["password"].0, b"hunter2", "stringData lands in data");
    assert!(stored.string_data.is_none());
    assert_eq!(stored.type_.as_deref(), Some("Opaque"));
    let gone = secrets.delete("creds", &DeleteParams::default()).await.unwrap();
    assert!(gone.is_right(), "built-in kinds answer a delete with a Status");

    let leases: Api<Lease> = Api::namespaced(client.clone(), NS);
    let lease = |holder: &str| Lease {
        metadata: ObjectMeta {
            name: Some("leader".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            ..Default::default()
        }),
    };
    let first = leases.create(&pp, &lease("a")).await.unwrap();
    let mut take = lease("b");
    take.metadata.resource_version = first.metadata.resource_version.clone();
    let taken = leases.replace("leader", &pp, &take).await.unwrap();
    assert_eq!(taken.spec.unwrap().holder_identity.as_deref(), Some("b"));
    let mut late = lease("c");
    late.metadata.resource_version = first.metadata.resource_version.clone();
    assert_eq!(
        api_error(leases.replace("leader", &pp, &late).await).0,
        409,
        "leader election relies on this"
    );

    let events: Api<K8sEvent> = Api::namespaced(client.clone(), NS);
    let event: K8sEvent = serde_json::from_value(json!({
        "metadata": { "generateName": "dd-" },
        "eventTime": "2025-01-01T00:00:00.000000Z",
        "reason": "Started", "action": "Export", "type": "Normal", "note": "export started",
        "reportingController": "datadump.dev/operator", "reportingInstance": "test",
        "regarding": { "apiVersion": "datadump.dev/v1alpha1", "kind": "DataDump", "name": "a", "namespace": NS },
    }))
    .unwrap();
    events.create(&pp, &event).await.unwrap();
    let listed = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].note.as_deref(), Some("export started"));
    assert!(rv(&listed.items[0]) > rv(&first));

    // kube-runtime's Recorder: creates an event, then merge-patches its series
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "datadump".into(),
            instance: None,
        },
    );
    let regarding = ObjectReference {
        api_version: Some("datadump.dev/v1alpha1".into()),
        kind: Some("DataDump".into()),
        name: Some("b".into()),
        namespace: Some(NS.into()),
        ..Default::default()
    };
    let published = RecordedEvent {
        type_: EventType::Normal,
        reason: "Exported".into(),
        note: Some("done".into()),
        action: "Export".into(),
        secondary: None,
    };
    recorder.publish(&published, &regarding).await.unwrap();
    recorder.publish(&published, &regarding).await.unwrap();
    let recorded: Vec<K8sEvent> = events.list(&ListParams::default()).await.unwrap().items;
    let series = recorded
        .iter()
        .find(|e| e.reason.as_deref() == Some("Exported"))
        .unwrap()
        .series
        .clone();
    assert_eq!(series.map(|s| s.count), Some(2));
}

#[tokio::test]
async fn injected_faults_and_the_request_log() {
    let (server, api) = setup().await;
    api.create(&PostParams::default(), &dd("a", "b1")).await.unwrap();
    server.fail_next(2, 500, Some(FaultMatch::any().verb("get").resource("datadumps")));
    api.list(&ListParams::default()).await.unwrap();
    assert_eq!(api_error(api.get("a").await), (500, "InternalError".into()));
    assert_eq!(api_error(api.get("a").await).0, 500);
    api.get("a").await.unwrap();

    server.fail_next(1, 409, Some(FaultMatch::any().verb("patch").subresource("status")));
    let status = merge(json!({ "status": { "phase": "Running" } }));
    api.patch("a", &PatchParams::default(), &merge(json!({ "spec": { "x": 1 } })))
        .await
        .unwrap();
    assert_eq!(api_error(api.patch_status("a", &PatchParams::default(), &status).await).0, 409);
    api.patch_status("a", &PatchParams::default(), &status).await.unwrap();

    server.set_fail_ratio(0.25, 500);
    let mut failures = 0;
    for _ in 0..8 {
        if let Err(e) = api.get("a").await {
            assert!(matches!(e, kube::Error::Api(ref s) if s.code == 500), "{e:?}");
            failures += 1;
        }
    }
    assert_eq!(failures, 2, "a deterministic share");
    server.set_fail_ratio(0.0, 500);
    for _ in 0..4 {
        api.get("a").await.unwrap();
    }

    let records = server.requests();
    let status_patches: Vec<_> = records.iter().filter(|r| r.subresource.as_deref() == Some("status")).collect();
    assert_eq!(status_patches.len(), 2);
    let r = status_patches[0];
    assert_eq!(
        (r.method.as_str(), r.verb.as_str(), r.api_group.as_str()),
        ("PATCH", "patch", "datadump.dev")
    );
    assert_eq!((r.api_version.as_str(), r.resource.as_str()), ("v1alpha1", "datadumps"));
    assert_eq!((r.namespace.as_deref(), r.name.as_deref()), (Some(NS), Some("a")));
    assert_eq!((r.content_type.as_str(), r.status), ("application/merge-patch+json", 409));
    assert_eq!(status_patches[1].status, 200);
    assert!(records.iter().any(|r| r.verb == "create" && r.status == 201 && r.name.is_none()));
    assert_eq!(
        records.iter().filter(|r| r.verb == "get" && r.status == 500).count(),
        4,
        "two from fail_next, two from the ratio"
    );

    // kube's client retries 429/503/504 by itself: the caller sees success, the log the retries
    server.clear_requests();
    server.fail_next(2, 503, Some(FaultMatch::any().verb("get")));
    api.get("a").await.unwrap();
    let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [503, 503, 200]);
}

#[tokio::test]
async fn crd_objects_register_kinds_that_discovery_reports() {
    let server = ApiServer::start().await;
    let client = server.client();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &dd_resource());
    assert_eq!(
        api_error(api.list(&ListParams::default()).await).0,
        404,
        "not served before its CRD exists"
    );

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let created = crds
        .create(&PostParams::default(), &serde_json::from_value(crd()).unwrap())
        .await
        .unwrap();
    let conditions = created.status.unwrap().conditions.unwrap();
    assert!(conditions.iter().any(|c| c.type_ == "Established" && c.status == "True"));
    api.create(&PostParams::default(), &dd("a", "b")).await.unwrap();

    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let (resource, caps) = discovery.resolve_gvk(&gvk()).expect("DataDump discovered");
    assert_eq!((resource.plural.as_str(), caps.scope.clone()), ("datadumps", Scope::Namespaced));
    for (group, version, kind) in [
        ("", "v1", "Secret"),
        ("coordination.k8s.io", "v1", "Lease"),
        ("events.k8s.io", "v1", "Event"),
    ] {
        assert!(
            discovery.resolve_gvk(&GroupVersionKind::gvk(group, version, kind)).is_some(),
            "{kind}"
        );
    }
    assert!(client.apiserver_version().await.unwrap().git_version.starts_with("v1.32"));

    crds.delete("datadumps.datadump.dev", &DeleteParams::default()).await.unwrap();
    assert_eq!(
        api_error(api.list(&ListParams::default()).await).0,
        404,
        "deleting the CRD stops serving the kind"
    );
}

#[tokio::test]
async fn dropping_the_server_ends_watches_and_refuses_connections() {
    let server = ApiServer::start().await;
    let secrets: Api<Secret> = Api::namespaced(server.client(), NS);
    let mut stream = secrets.watch(&WatchParams::default(), "0").await.unwrap().boxed();
    drop(server);
    let end = tokio::time::timeout(WAIT, stream.next()).await.expect("the watch to end");
    assert!(!matches!(end, Some(Ok(_))), "no more events: {end:?}");
    wait_for("the server to refuse requests", WAIT, || async {
        secrets.list(&ListParams::default()).await.is_err().then_some(())
    })
    .await;
}

/// Runs `kubectl --kubeconfig K --cache-dir C ARGS`, returning `(success, stdout, stderr)`, or
/// `None` (with a notice) when kubectl is not installed.
async fn kubectl(dir: &Path, kubeconfig: &Path, args: &[&str]) -> Option<(bool, String, String)> {
    let output = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .args(args)
        .output()
        .await;
    match output {
        Ok(o) => Some((
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into(),
            String::from_utf8_lossy(&o.stderr).into(),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("NOTICE: kubectl is not on PATH; skipping the kubectl checks");
            None
        }
        Err(e) => panic!("running kubectl: {e}"),
    }
}

#[tokio::test]
async fn kubectl_gets_tables_and_jsonpath() {
    let (server, api) = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.write_kubeconfig(dir.path());
    api.create(&PostParams::default(), &dd("alpha", "b1")).await.unwrap();
    api.create(&PostParams::default(), &dd("beta", "b2")).await.unwrap();
    let status = merge(json!({ "status": { "phase": "Running", "message": "copying" } }));
    api.patch_status("alpha", &PatchParams::default(), &status).await.unwrap();

    let Some((ok, out, err)) = kubectl(dir.path(), &kubeconfig, &["get", "datadumps", "-n", NS]).await else {
        return;
    };
    assert!(ok, "{err}");
    let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["NAME", "PHASE", "BUCKET", "AGE"], "{out}");
    assert_eq!(lines[1][..3], ["alpha", "Running", "b1"], "{out}");
    assert!(lines[1][3].ends_with('s'), "an age such as 0s: {out}");
    assert_eq!(lines[2][..2], ["beta", "b2"], "no phase yet: an empty cell; {out}");

    let (ok, out, err) = kubectl(dir.path(), &kubeconfig, &["get", "dd", "-n", NS, "-o", "wide"])
        .await
        .unwrap();
    assert!(ok, "{err}");
    assert_eq!(
        out.lines().next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["NAME", "PHASE", "BUCKET", "MESSAGE", "AGE"]
    );
    assert!(out.contains("copying"), "{out}");

    let path = "-o=jsonpath={.spec.destination.bucket}/{.status.phase}";
    let (ok, out, err) = kubectl(dir.path(), &kubeconfig, &["get", "dd", "alpha", "-n", NS, path])
        .await
        .unwrap();
    assert!(ok, "{err}");
    assert_eq!(out, "b1/Running");
    let (ok, out, _) = kubectl(
        dir.path(),
        &kubeconfig,
        &["get", "dd", "-A", "-o", "jsonpath={.items[*].metadata.name}"],
    )
    .await
    .unwrap();
    assert!(ok);
    assert_eq!(out, "alpha beta");
}

#[tokio::test]
async fn kubectl_applies_server_side_and_deletes() {
    let server = ApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.write_kubeconfig(dir.path());
    let crd_file = dir.path().join("crd.yaml");
    std::fs::write(&crd_file, serde_yaml::to_string(&crd()).unwrap()).unwrap();
    let apply = |file: &Path| {
        vec![
            "apply".to_owned(),
            "--server-side".into(),
            "--validate=false".into(),
            "-f".into(),
            file.display().to_string(),
        ]
    };
    let args = apply(&crd_file);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let Some((ok, out, err)) = kubectl(dir.path(), &kubeconfig, &args).await else {
        return;
    };
    assert!(ok, "{out}{err}");
    assert!(server.get_object("crd", "", "datadumps.datadump.dev").is_some());

    let file = dir.path().join("dd.yaml");
    let manifest = |b: &str| {
        format!(
            "apiVersion: datadump.dev/v1alpha1\nkind: DataDump\nmetadata:\n  name: gamma\n  namespace: {NS}\nspec:\n  destination:\n    bucket: {b}\n"
        )
    };
    std::fs::write(&file, manifest("b3")).unwrap();
    let args = apply(&file);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out, err) = kubectl(dir.path(), &kubeconfig, &args).await.unwrap();
    assert!(ok, "{out}{err}");
    assert!(out.contains("datadump.datadump.dev/gamma serverside-applied"), "{out}");
    assert_eq!(
        server.get_object("datadumps", NS, "gamma").unwrap()["spec"]["destination"]["bucket"],
        "b3"
    );
    std::fs::write(&file, manifest("b4")).unwrap();
    let (ok, _, err) = kubectl(dir.path(), &kubeconfig, &args).await.unwrap();
    assert!(ok, "{err}");
    let stored = server.get_object("datadumps", NS, "gamma").unwrap();
    assert_eq!(
        (&stored["spec"]["destination"]["bucket"], &stored["metadata"]["generation"]),
        (&json!("b4"), &json!(2))
    );
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.verb == "patch" && r.content_type.starts_with("application/apply-patch"))
    );

    let (ok, out, err) = kubectl(dir.path(), &kubeconfig, &["delete", "datadump", "gamma", "-n", NS])
        .await
        .unwrap();
    assert!(ok, "{out}{err}");
    assert!(out.contains("deleted"), "{out}");
    assert!(server.get_object("datadumps", NS, "gamma").is_none());
}

#[tokio::test]
async fn the_kubeconfig_file_works_for_kube() {
    let server = ApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = server.write_kubeconfig(dir.path());
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let options = kube::config::KubeConfigOptions::default();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options).await.unwrap();
    assert_eq!(config.default_namespace, "default");
    let client = kube::Client::try_from(config).unwrap();
    let leases: Api<Lease> = Api::default_namespaced(client);
    assert!(leases.list(&ListParams::default()).await.unwrap().items.is_empty());
}
