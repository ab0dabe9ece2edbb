//! Bad input and faults, one at a time: malformed objects next to valid ones, hostile strings in
//! every field (through the validator, the CLI and the running controller), AWS throttling and
//! lost answers on the launch path, and failing status writes. Each test ends with the
//! controller alive (its `/healthz` answers), no panic in its log, nothing launched for what is
//! refused, and exactly one instance per attempt token for what runs.

use std::collections::BTreeMap;
use std::time::Duration;

use datadump::api::{DataDump, DumpPhase, MediaPhase, SiteDefaults};
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::controller::{condition, media_phase};
use crate::soak::{assert_healthy, per_token, start_controller};
use crate::support::cluster::{BUCKET, World};
use crate::support::faultproxy::{FaultKind, FaultMix, FaultProxy, Faults};
use crate::support::kube::proxy::FaultMatch;
use crate::support::kube::raw::{create_raw, put_behind_the_servers_back, raw_dumps};
use crate::support::net::wait_for;

fn valid_spec() -> Value {
    json!({
        "mediaTypes": ["image"],
        "destination": {"bucket": "datasets"},
        "database": {"connectionSecretRef": {"name": "catalog-db", "key": "connectionString"}},
        "instance": {"iamInstanceProfile": "datadump-worker", "instanceType": "t4g.nano", "ebsVolumeSizeGb": 8},
    })
}

/// Objects the CRD's schema refuses, but which an older CRD or a hand-edited etcd could still
/// hold.
fn malformed() -> Vec<(&'static str, Value)> {
    let with = |pointer: &str, v: Value| {
        let mut spec = valid_spec();
        *spec.pointer_mut(pointer).unwrap_or_else(|| panic!("{pointer}")) = v;
        json!({ "spec": spec })
    };
    let without = |field: &str| {
        let mut spec = valid_spec();
        spec.as_object_mut().unwrap().remove(field);
        json!({ "spec": spec })
    };
    let extra = |field: &str, v: Value| {
        let mut spec = valid_spec();
        spec[field] = v;
        json!({ "spec": spec })
    };
    vec![
        ("media-not-a-list", with("/mediaTypes", json!("image"))),
        ("media-wrong-items", with("/mediaTypes", json!([1, null, {"a": 1}]))),
        ("volume-lots", with("/instance/ebsVolumeSizeGb", json!("lots"))),
        ("volume-float", with("/instance/ebsVolumeSizeGb", json!(1.5))),
        ("no-destination", without("destination")),
        ("no-database", without("database")),
        ("timeout-forever", extra("timeout", json!("forever"))),
        ("backoff-negative", extra("backoffLimit", json!(-1))),
        ("suspend-yes", extra("suspend", json!("yes"))),
        ("spec-a-string", json!({"spec": "hello"})),
        ("spec-a-list", json!({"spec": [1, 2, 3]})),
        ("no-spec", json!({})),
    ]
}

/// Plays a successful worker for each media type once it runs, and waits for Succeeded.
async fn complete(w: &World, name: &str, media: &[&str]) -> DataDump {
    let wanted: Vec<String> = media.iter().map(|m| m.to_string()).collect();
    let dd = w
        .wait_dump(name, "media types running", move |d| {
            wanted.iter().all(|m| media_phase(d, m) == Some(MediaPhase::Running))
        })
        .await;
    for m in media {
        w.write_success(&dd, m, &[3]).await;
    }
    w.wait_dump(name, "Succeeded", |d| {
        d.status.as_ref().is_some_and(|s| s.phase == DumpPhase::Succeeded)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_objects_neither_crash_the_controller_nor_block_valid_ones() {
    let mut w = World::start().await;
    let first = start_controller(&mut w, &[]);
    crate::soak::wait_ready(&w).await;

    // created while the controller watches: they arrive as watch events. The server refuses
    // each at the API; they get in through etcd.
    let mut bad = BTreeMap::new();
    for (name, body) in malformed() {
        let (uid, refused) = create_raw(&w, &format!("watched-{name}"), body).await;
        assert!(refused.is_some(), "{name}: the API server accepted a malformed object");
        bad.insert(format!("watched-{name}"), uid.unwrap());
    }
    let good = w.create("good-1", "mediaTypes: [image]").await;
    complete(&w, "good-1", &["image"]).await;
    assert_healthy(&w, "after malformed objects arrived by watch").await;

    // created while the controller is down: a restart lists every object at once
    w.kill_controller(first);
    for (name, body) in malformed() {
        bad.insert(
            format!("listed-{name}"),
            create_raw(&w, &format!("listed-{name}"), body).await.0.unwrap(),
        );
    }
    // and a valid object whose status someone overwrote with garbage (the server refuses that
    // too: the status subresource has a schema)
    let garbled = w.create("garbled-status", "mediaTypes: [audio]").await;
    let garbage = json!({"status": {"phase": "Exploded", "media": "x", "startTime": 5}});
    let refused = raw_dumps(&w)
        .patch_status("garbled-status", &PatchParams::default(), &Patch::Merge(&garbage))
        .await;
    assert!(matches!(refused, Err(kube::Error::Api(ref e)) if e.code == 422), "{refused:?}");
    let mut stored = serde_json::to_value(raw_dumps(&w).get("garbled-status").await.unwrap()).unwrap();
    stored["metadata"].as_object_mut().unwrap().remove("resourceVersion");
    stored["status"] = garbage["status"].clone();
    put_behind_the_servers_back(&w, "garbled-status", stored.to_string().as_bytes()).await;
    bad.insert("garbled-status".into(), garbled.uid().unwrap());
    start_controller(&mut w, &[]);
    let good2 = w.create("good-2", "mediaTypes: [audio]").await;
    complete(&w, "good-2", &["audio"]).await;
    assert_healthy(&w, "after a restart that lists malformed objects").await;

    for (name, uid) in &bad {
        assert!(w.instances(uid).await.is_empty(), "{name}: nothing launched for a malformed object");
    }
    for dd in [&good, &good2] {
        let uid = dd.uid().unwrap();
        w.assert_nothing_left_running(&uid).await;
        assert_eq!(w.instances(&uid).await.len(), 1, "one instance for the valid object's one attempt");
    }
    assert!(!w.logs().contains("panicked"), "no panic in the controller log");
}

/// Values that have broken shells, SQL, YAML and terminals before.
fn hostile() -> Vec<String> {
    [
        "$(touch CANARY)",
        "`touch CANARY`",
        "'; touch CANARY; echo '",
        "\"; touch CANARY; echo \"",
        "x && touch CANARY",
        "$IFS${IFS}$((1+1))",
        "a\nJ0\ntouch CANARY\nJ1",
        "line1\r\nline2",
        "\\'\\\"\\\\",
        "ünïcødé 💥 \u{202e}dlrow",
        "' OR '1'='1' --",
        "%s%n%x",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Every spec field a user writes, with where a hostile value goes.
const STRING_FIELDS: &[&str] = &[
    "/mediaTypes/0",
    "/destination/bucket",
    "/destination/prefix",
    "/destination/region",
    "/query",
    "/database/connectionSecretRef/name",
    "/database/connectionSecretRef/key",
    "/odbc2parquet/version",
    "/output/fileSizeThreshold",
    "/odbc2parquet/extraArgs/0",
    "/instance/instanceType",
    "/instance/imageId",
    "/instance/subnetId",
    "/instance/securityGroupIds/0",
    "/instance/iamInstanceProfile",
    "/instance/keyName",
    "/instance/tags/team",
    "/timeout",
];

fn full_spec() -> Value {
    json!({
        "mediaTypes": ["image"],
        "destination": {"bucket": "datasets", "prefix": "data-dump", "region": "us-east-1"},
        "query": "SELECT * FROM {media_type}",
        "database": {"connectionSecretRef": {"name": "catalog-db", "key": "connectionString"}},
        "engine": "odbc2parquet",
        "output": {"fileSizeThreshold": "2GiB"},
        "odbc2parquet": {"version": "11.0.1", "extraArgs": ["--batch-size-memory=64MiB"]},
        "instance": {"instanceType": "t4g.nano", "imageId": "ami-0123456789abcdef0", "subnetId": "subnet-0123456789abcdef0",
            "securityGroupIds": ["sg-0123456789abcdef0"], "iamInstanceProfile": "datadump-worker", "keyName": "ops", "tags": {"team": "data"}},
        "timeout": "168h",
    })
}

/// The value as a field takes it: queries must keep naming their table.
fn place(field: &str, value: &str) -> String {
    match field {
        "/query" => format!("SELECT * FROM {{media_type}} WHERE note <> '{value}'"),
        "/odbc2parquet/extraArgs/0" => format!("--batch-size-memory={value}"),
        _ => value.to_string(),
    }
}

/// Runs only the value assignments of rendered user data (nothing after them) under `sh` in an
/// empty directory and returns `$job_uri` as sh holds it. Panics if any command substitution
/// ran (a file appears).
fn job_uri_of(user_data: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (assignments, _) = user_data
        .split_once("set -u\n")
        .expect("the bootstrap's program starts with set -u");
    let out = std::process::Command::new("sh")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .arg("-c")
        .arg(format!("{assignments}\nprintf '%s' \"$job_uri\""))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the user data's values do not parse: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 0, "a value ran as shell code");
    String::from_utf8(out.stdout).unwrap()
}

/// Hostile strings in every field, through the validator and the worker renderer (no cluster):
/// each is refused with its field path and a short message, or accepted and then reaches the
/// worker script as data, byte for byte.
#[test]
fn hostile_strings_are_refused_by_field_or_rendered_as_data() {
    let mut accepted = 0;
    let mut refused = 0;
    for field in STRING_FIELDS {
        for value in hostile().iter().chain([&"x".repeat(1 << 20)]) {
            let mut spec = full_spec();
            let placed = place(field, value);
            *spec.pointer_mut(field).unwrap() = json!(placed);
            let spec: datadump::api::DataDumpSpec = match serde_json::from_value(spec) {
                Ok(s) => s,
                Err(e) => {
                    // only typed fields (the timeout) may fail here, and with a short message
                    assert_eq!(*field, "/timeout", "{field}: {e}");
                    assert!(e.to_string().len() < 300, "{field}: short message");
                    refused += 1;
                    continue;
                }
            };
            let dotted = format!("spec{}", field.replace('/', ".").trim_end_matches(".0").trim_end_matches(".team"));
            let dotted = dotted.trim_end_matches('.').to_string();
            match datadump::api::validate(&spec, &SiteDefaults::default()) {
                Err(errors) => {
                    refused += 1;
                    for e in &errors {
                        let shown = e.to_string();
                        assert!(shown.chars().count() <= 1024, "{field}: {} characters", shown.chars().count());
                        assert!(
                            e.field.starts_with(&dotted),
                            "{field} = {value:.40?}: error names {} instead",
                            e.field
                        );
                    }
                }
                Ok(()) => {
                    accepted += 1;
                    let media = spec.media_types[0].clone();
                    let deadline = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
                    let job = datadump::api::job::WorkerJob {
                        spec: &spec,
                        media_type: &media,
                        dump_date: "2026-11-01",
                        attempt: 1,
                        token: "ddt-0123",
                        deadline,
                        ssm_parameter: "/datadump/uid/image",
                        region: "us-east-1",
                    };
                    let rendered = datadump::api::job::build(&job)
                        .map_err(datadump::launch::RenderError::from)
                        .and_then(|j| {
                            let b = datadump::launch::Bootstrap {
                                arch: datadump::contract::Arch::Aarch64,
                                binary: datadump::launch::BinarySource {
                                    url: "https://example.org/datadump".into(),
                                    sha256: "0".repeat(64),
                                },
                                failure_url: "https://example.org/_failure".into(),
                                job_uri: format!("s3://{}/{}", j.bucket, datadump::launch::job_key(&j)),
                                job_region: j.s3_region.clone(),
                            };
                            Ok((datadump::launch::render(&j, &b)?, j, b.job_uri))
                        });
                    match rendered {
                        Err(e) => assert!(e.to_string().len() < 400, "a clear render error: {e}"),
                        Ok((user_data, job, uri)) => {
                            assert_eq!(job_uri_of(&user_data), uri, "the job's location round-trips");
                            // the job itself travels as JSON, byte for byte
                            let job = datadump::contract::Job::from_json(&job.to_json()).unwrap();
                            let args = job.odbc2parquet.as_ref().map(|o| o.args.clone()).unwrap_or_default();
                            match *field {
                                "/query" => assert_eq!(job.rendered_query(), placed.replace("{media_type}", "image"), "query round-trips"),
                                "/odbc2parquet/extraArgs/0" => assert!(args.contains(&placed), "argument round-trips: {args:?}"),
                                "/destination/region" => assert_eq!(job.s3_region, placed),
                                _ => {}
                            }
                        }
                    }
                }
            }
        }
    }
    eprintln!("hostile values: {accepted} accepted and rendered as data, {refused} refused");
    assert!(accepted > 0 && refused > 0);
}

/// `datadump validate -f` on a file of hostile documents: exit code 1 (invalid), not a panic,
/// and every output line short.
#[test]
fn the_cli_refuses_hostile_documents_without_panicking() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    let huge = "y".repeat(1 << 20);
    for (n, value) in hostile().iter().chain([&huge]).enumerate() {
        let mut spec = full_spec();
        for field in STRING_FIELDS {
            // the 1 MiB value in three fields only, to keep the file small
            if value.len() < 1000 || ["/query", "/mediaTypes/0", "/instance/tags/team"].contains(field) {
                *spec.pointer_mut(field).unwrap() = json!(place(field, value));
            }
        }
        let doc = json!({"apiVersion": "datadump.dev/v1alpha1", "kind": "DataDump", "metadata": {"name": format!("h{n}")}, "spec": spec});
        text.push_str("---\n");
        text.push_str(&serde_yaml::to_string(&doc).unwrap());
    }
    let file = dir.path().join("hostile.yaml");
    std::fs::write(&file, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_datadump"))
        .args(["validate", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "invalid, not a crash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().count() >= hostile().len());
    for line in stdout.lines() {
        assert!(line.chars().count() < 1200, "a short line: {:.200}…", line);
    }
}

/// Hostile strings through the running controller: the server refuses them in checked fields
/// (they get in through etcd) and nothing launches for them; what it accepts launches a worker
/// whose user data holds the values as data and whose tags are exactly the user's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_strings_through_the_controller() {
    hostile_strings(false).await;
}

/// As above, and the refused spec gets SpecValid=False with short messages.
///
/// Found by the real API server (the stand-in had no status schema): for a stored spec whose
/// media types the CRD refuses, the controller's status patch carried them in
/// `status.media[].mediaType`, the status schema refused the patch (422), and SpecValid=False
/// was never recorded. Invalid media types now get no status entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_spec_stored_behind_the_servers_back_gets_spec_valid_false() {
    hostile_strings(true).await;
}

async fn hostile_strings(expect_spec_valid_false: bool) {
    let mut w = World::start().await;
    start_controller(&mut w, &[]);
    let values = hostile();
    // accepted: a hostile query, odbc2parquet argument and tag values
    let mut spec = full_spec();
    spec["destination"]["region"] = json!(null);
    spec["instance"] = json!({"iamInstanceProfile": "datadump-worker", "instanceType": "t4g.nano", "ebsVolumeSizeGb": 8});
    let query = format!("SELECT * FROM {{media_type}} WHERE a <> '{}' AND b <> '{}'", values[0], values[6]);
    spec["query"] = json!(query);
    spec["odbc2parquet"]["extraArgs"] = json!([place("/odbc2parquet/extraArgs/0", &values[1])]);
    let tags: BTreeMap<String, String> = values
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.contains('\r'))
        .map(|(i, v)| (format!("t{i}"), v.clone()))
        .collect();
    spec["instance"]["tags"] = json!(tags);
    let (ok_uid, refused) = create_raw(&w, "hostile-ok", json!({"spec": spec})).await;
    assert_eq!(refused, None, "the server stores hostile values as data");
    let ok_uid = ok_uid.unwrap();

    // refused: hostile values in every checked field, and 1 MiB values
    let mut bad = full_spec();
    for (i, field) in STRING_FIELDS.iter().enumerate() {
        if !matches!(
            *field,
            "/query" | "/odbc2parquet/extraArgs/0" | "/instance/tags/team" | "/timeout" | "/instance/keyName"
        ) {
            *bad.pointer_mut(field).unwrap() = json!(place(field, &values[i % values.len()]));
        }
    }
    let (bad_uid, refused) = create_raw(&w, "hostile-refused", json!({"spec": bad})).await;
    assert!(refused.is_some(), "the server's schema refuses hostile values in checked fields");
    let bad_uid = bad_uid.unwrap();
    let huge = "z".repeat(1 << 20);
    let mut big = full_spec();
    big["query"] = json!(format!("SELECT '{huge}' FROM {{media_type}}"));
    big["odbc2parquet"]["extraArgs"] = json!([format!("--x={huge}")]);
    big["instance"]["tags"] = json!({ "k": huge.clone(), huge.clone(): "v" });
    big["destination"]["prefix"] = json!(huge.clone());
    let (big_uid, refused) = create_raw(&w, "hostile-huge", json!({"spec": big})).await;
    let refused = refused.expect("the server refuses 1 MiB values");
    assert!(refused.len() < 64 * 1024, "the server's refusal is short: {} bytes", refused.len());
    let mut stored = vec!["hostile-refused"];
    if big_uid.is_some() {
        stored.push("hostile-huge");
    }
    if !expect_spec_valid_false {
        stored.clear();
    }
    for name in stored {
        let d = w
            .wait_dump(name, "SpecValid=False", |d| {
                condition(d, "SpecValid").is_some_and(|c| c.0 == "False")
            })
            .await;
        let (_, reason, message) = condition(&d, "SpecValid").unwrap();
        assert_eq!(reason, "InvalidSpec");
        for line in message.lines() {
            assert!(
                line.chars().count() <= 1024,
                "{name}: a condition line of {} characters",
                line.chars().count()
            );
        }
        assert!(message.len() < 64 * 1024, "{name}: condition message of {} bytes", message.len());
        assert!(d.status.as_ref().unwrap().message.as_ref().unwrap().len() < 4096);
    }
    let dd = w
        .wait_dump("hostile-ok", "running", |d| media_phase(d, "image") == Some(MediaPhase::Running))
        .await;
    let instances = w.instances(&ok_uid).await;
    assert_eq!(instances.len(), 1);
    // the user data names the job; the job holds the user's values as data
    let uri = job_uri_of(instances[0].user_data.as_deref().unwrap());
    let key = uri.strip_prefix(&format!("s3://{BUCKET}/")).unwrap();
    let job = datadump::contract::Job::from_json(std::str::from_utf8(&w.get_object(key).await).unwrap()).unwrap();
    assert_eq!(job.rendered_query(), query.replace("{media_type}", "image"));
    let args = job.odbc2parquet.map(|o| o.args).unwrap_or_default();
    assert!(args.contains(&place("/odbc2parquet/extraArgs/0", &values[1])), "{args:?}");
    for (k, v) in &tags {
        assert_eq!(instances[0].tags.get(k), Some(v), "tag {k} as the user wrote it");
    }
    w.write_success(&dd, "image", &[1]).await;
    w.wait_dump("hostile-ok", "Succeeded", |d| {
        d.status.as_ref().is_some_and(|s| s.phase == DumpPhase::Succeeded)
    })
    .await;
    w.assert_nothing_left_running(&ok_uid).await;
    assert!(
        w.instances(&bad_uid).await.is_empty() && w.instances(big_uid.as_deref().unwrap_or("none")).await.is_empty(),
        "nothing launched for refused specs"
    );
    for (_, note) in &w.events().await {
        assert!(note.chars().count() <= 1024, "an Event note of {} characters", note.chars().count());
    }
    assert_healthy(&w, "after hostile objects").await;
    assert!(!w.logs().contains("panicked"));
}

/// Throttling and 500s on RunInstances and DescribeInstances for a while (every other call),
/// then answers lost after RunInstances took effect: the dump still completes, with exactly
/// one instance per attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_and_lost_launch_calls_never_duplicate_an_instance() {
    let mut w = World::start().await;
    let proxy = FaultProxy::start(&w.moto.endpoint).await;
    proxy.fail_next("RunInstances", 2, FaultKind::Throttle);
    proxy.set_faults(
        Faults::every(2)
            .mix(FaultMix::Alternate)
            .only(&["DescribeInstances"])
            .latency(Duration::from_millis(5), Duration::from_millis(50)),
    );
    start_controller(&mut w, &[("AWS_ENDPOINT_URL", &proxy.url())]);
    let dd = w.create("throttled", "").await;
    let uid = dd.uid().unwrap();
    // a while: until both APIs have seen several faults
    wait_for("faults on both APIs", Duration::from_secs(60), || {
        let calls = proxy.calls();
        let faulted = |api: &str| calls.iter().filter(|c| c.api == api && c.injected.is_some()).count();
        let done = faulted("RunInstances") >= 2 && faulted("DescribeInstances") >= 6;
        async move { done.then_some(()) }
    })
    .await;
    proxy.faults_off();
    let dd_running = w
        .wait_dump("throttled", "both running", |d| {
            media_phase(d, "image") == Some(MediaPhase::Running) && media_phase(d, "audio") == Some(MediaPhase::Running)
        })
        .await;
    let instances = w.instances(&uid).await;
    assert_eq!(instances.len(), 2, "one instance per media type: {instances:?}");
    assert!(per_token(&instances).values().all(|&n| n == 1));

    // lost answers: RunInstances reaches moto, the controller sees a 500 for every SDK attempt
    // (EC2's ClientToken idempotency emulated, since moto ignores it); the next reconcile must
    // adopt the instance by its token tag instead of launching again
    proxy.honour_client_token(true);
    proxy.fail_next("RunInstances", 3, FaultKind::LostResponse);
    w.write_failure(&dd_running, "image", "ERROR: out of memory").await;
    let retried = w.wait_attempt_running("throttled", "image", 2).await;
    let token2 = retried.status.as_ref().unwrap().media("image").unwrap().token.clone().unwrap();
    let calls: Vec<_> = proxy
        .calls()
        .into_iter()
        .filter(|c| c.client_token.as_deref() == Some(token2.as_str()))
        .collect();
    assert_eq!(
        calls.len(),
        3,
        "the SDK tried three times, then the controller adopted by tag: {calls:?}"
    );
    assert_eq!(
        calls
            .iter()
            .filter(|c| !c.replayed && c.injected == Some(FaultKind::LostResponse))
            .count(),
        1,
        "one call reached moto"
    );
    let instances = w.instances(&uid).await;
    assert_eq!(instances.len(), 3, "attempt 2 of image has one instance: {instances:?}");
    assert!(per_token(&instances).values().all(|&n| n == 1), "{:?}", per_token(&instances));

    w.write_success(&retried, "image", &[2]).await;
    w.write_success(&retried, "audio", &[2]).await;
    w.wait_dump("throttled", "Succeeded", |d| {
        d.status.as_ref().is_some_and(|s| s.phase == DumpPhase::Succeeded)
    })
    .await;
    w.assert_nothing_left_running(&uid).await;
    assert!(proxy.injected() >= 11, "faults were injected: {}", proxy.injected());
    assert_healthy(&w, "after AWS faults").await;
}

/// RunInstances refused (the controller's role lacks `ec2:RunInstances`): a Warning Event on the
/// dump names the call, AWS's code and where to fix it; the retries count up that one Event's
/// series instead of adding Events; nothing runs meanwhile. Once the policy is fixed, the dump
/// goes on with one instance per media type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_launch_is_a_warning_event_and_goes_on_once_allowed() {
    let mut w = World::start().await;
    let proxy = FaultProxy::start(&w.moto.endpoint).await;
    proxy.fail_next("RunInstances", 1_000, FaultKind::AccessDenied);
    start_controller(&mut w, &[("AWS_ENDPOINT_URL", &proxy.url())]);
    let dd = w.create("refused", "mediaTypes: [image]").await;
    let uid = dd.uid().unwrap();
    let refused = w.wait_event_series("AwsRejected", 2).await;
    assert_eq!(refused.len(), 1, "one Event for the repeated refusal: {refused:?}");
    let event = &refused[0];
    let note = event.note.clone().unwrap_or_default();
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert!(
        note.contains("RunInstances") && note.contains("UnauthorizedOperation") && note.contains("IAM policy"),
        "{note}"
    );
    assert!(w.instances(&uid).await.is_empty(), "nothing runs while RunInstances is refused");
    proxy.faults_off(); // the policy is fixed
    w.wait_dump("refused", "image running", |d| media_phase(d, "image") == Some(MediaPhase::Running))
        .await;
    let instances = w.instances(&uid).await;
    assert_eq!(instances.len(), 1, "one instance once allowed: {instances:?}");
    w.delete("refused").await;
    w.assert_nothing_left_running(&uid).await;
}

/// The status write after RunInstances fails three times (500, 409, 500): the instance is
/// adopted by its token on every retry, never launched again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_status_writes_after_a_launch_never_duplicate_it() {
    let mut w = World::start().await;
    let proxy = FaultProxy::start(&w.moto.endpoint).await;
    start_controller(&mut w, &[("AWS_ENDPOINT_URL", &proxy.url())]);
    proxy.hold("RunInstances");
    let dd = w.create("patchy", "mediaTypes: [image]").await;
    let uid = dd.uid().unwrap();
    // RunInstances has reached moto; its answer is held while the status writes are set to fail
    wait_for("RunInstances held", Duration::from_secs(60), || {
        let n = proxy.held();
        async move { (n >= 1).then_some(()) }
    })
    .await;
    let status_patch = || FaultMatch::any().resource("datadumps").subresource("status").verb("patch");
    w.kube.proxy.fail_next(1, 500, status_patch());
    w.kube.proxy.fail_next(1, 409, status_patch());
    w.kube.proxy.fail_next(1, 500, status_patch());
    let before = w.kube.proxy.requests().len();
    proxy.release();
    let dd = w
        .wait_dump("patchy", "running", |d| media_phase(d, "image") == Some(MediaPhase::Running))
        .await;
    let failed: Vec<u16> = w.kube.proxy.requests()[before..]
        .iter()
        .filter(|r| r.resource == "datadumps" && r.subresource.as_deref() == Some("status") && r.verb == "patch" && r.status >= 400)
        .map(|r| r.status)
        .collect();
    assert_eq!(failed, vec![500, 409, 500], "the three injected failures were hit");
    assert_eq!(proxy.forwarded("RunInstances"), 1, "RunInstances reached moto once");
    assert_eq!(w.instances(&uid).await.len(), 1);
    w.write_success(&dd, "image", &[5]).await;
    w.wait_dump("patchy", "Succeeded", |d| {
        d.status.as_ref().is_some_and(|s| s.phase == DumpPhase::Succeeded)
    })
    .await;
    w.assert_nothing_left_running(&uid).await;
    assert_eq!(w.instances(&uid).await.len(), 1, "exactly one instance");
    assert_eq!(proxy.forwarded("RunInstances"), 1);
    assert_healthy(&w, "after failing status writes").await;
}

/// Two DataDumps exporting to the same bucket and prefix on the same day share
/// `PREFIX/DATE/MEDIA/`: a `_success` written by one dump's worker must not end the other
/// dump's running attempt (semaphores are matched to the attempt by their token).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_never_takes_another_dumps_success() {
    let mut w = World::start().await;
    let proxy = FaultProxy::start(&w.moto.endpoint).await;
    start_controller(&mut w, &[("AWS_ENDPOINT_URL", &proxy.url())]);
    w.create("first", "mediaTypes: [image]").await;
    w.create("second", "mediaTypes: [image]").await;
    let first = w
        .wait_dump("first", "running", |d| media_phase(d, "image") == Some(MediaPhase::Running))
        .await;
    w.wait_dump("second", "running", |d| media_phase(d, "image") == Some(MediaPhase::Running))
        .await;
    w.write_success(&first, "image", &[7]).await;
    w.wait_dump("first", "Succeeded", |d| {
        d.status.as_ref().is_some_and(|s| s.phase == DumpPhase::Succeeded)
    })
    .await;
    // the controller looks at the shared prefix three more times: `second` must still run
    let lists = || proxy.calls().iter().filter(|c| c.api == "ListObjectsV2").count();
    let seen = lists();
    let api = w.dumps();
    let second = wait_for("three more looks into S3, or second ending", Duration::from_secs(60), || {
        let n = lists();
        let api = api.clone();
        async move {
            let d = api.get("second").await.ok()?;
            (n >= seen + 3 || media_phase(&d, "image") != Some(MediaPhase::Running)).then_some(d)
        }
    })
    .await;
    assert_eq!(
        media_phase(&second, "image"),
        Some(MediaPhase::Running),
        "second's worker still runs: {:?}",
        second.status
    );
}
