//! The controller end to end: the real `datadump controller` binary, as the chart's
//! ServiceAccount, against the real Kubernetes API server and moto. Each scenario ends with no instance of its object left pending, running
//! or stopping, and counts instances per attempt token to prove there is never a duplicate.

use std::collections::BTreeMap;

use datadump::api::{DataDump, DumpPhase, MediaPhase};
use kube::ResourceExt;
use serde_json::json;

use crate::support::cluster::{Ec2Instance, PASSWORD, World, connection_string};

fn phase(d: &DataDump) -> Option<DumpPhase> {
    d.status.as_ref().map(|s| s.phase)
}

pub(crate) fn media_phase(d: &DataDump, m: &str) -> Option<MediaPhase> {
    d.status.as_ref().and_then(|s| s.media(m)).map(|m| m.phase)
}

pub(crate) fn condition(d: &DataDump, t: &str) -> Option<(String, String, String)> {
    d.status
        .as_ref()?
        .condition(t)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Instances per token: every token must have exactly one.
fn per_token(instances: &[Ec2Instance]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for i in instances {
        *m.entry(i.tags.get("datadump.dev/token").cloned().unwrap_or_default()).or_insert(0) += 1;
    }
    m
}

fn assert_no_duplicates(instances: &[Ec2Instance]) {
    let counts = per_token(instances);
    assert!(counts.values().all(|&n| n == 1), "duplicate instances for a token: {counts:?}");
}

async fn running(w: &World, name: &str, media: &[&str]) -> DataDump {
    let media: Vec<String> = media.iter().map(|s| s.to_string()).collect();
    w.wait_dump(name, "media types running", move |d| {
        media.iter().all(|m| media_phase(d, m) == Some(MediaPhase::Running))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_two_media_types() {
    let mut w = World::start().await;
    w.start_controller(&[]);
    let dd = w.create("catalog", "").await;
    let uid = dd.uid().unwrap();
    let dd = running(&w, "catalog", &["image", "audio"]).await;

    let instances = w.instances(&uid).await;
    assert_eq!(instances.len(), 2);
    for i in &instances {
        let media = &i.tags["datadump.dev/media-type"];
        assert_eq!(i.tags["datadump.dev/name"], "catalog");
        assert_eq!(i.tags["datadump.dev/namespace"], w.ns);
        assert_eq!(i.tags["datadump.dev/attempt"], "1");
        assert_eq!(i.tags["datadump.dev/managed-by"], "datadump-operator");
        assert_eq!(
            &i.tags["datadump.dev/token"],
            dd.status.as_ref().unwrap().media(media).unwrap().token.as_ref().unwrap()
        );
        assert_eq!(i.shutdown_behavior.as_deref(), Some("terminate"));
        assert_eq!(i.instance_type, "t4g.nano");
        assert_eq!(i.http_tokens.as_deref(), Some("required"), "IMDSv2 only");
        assert_eq!(i.lifecycle, None, "on-demand unless spec.instance.spot");
        assert!(
            !i.devices.contains(&"/dev/sdf".to_string()),
            "no extra volume is paid for unless the spec asks: {:?}",
            i.devices
        );
        let user_data = i.user_data.as_deref().expect("user data");
        assert!(user_data.starts_with("#!"), "a script");
        assert!(
            !user_data.contains(PASSWORD) && !user_data.contains(&connection_string()),
            "no credentials in user data"
        );
    }
    // credentials are staged for the worker, not handed to it
    let params = w.parameters().await;
    assert_eq!(params.iter().filter(|p| p.contains(&uid)).count(), 2, "{params:?}");

    w.write_success(&dd, "image", &[100, 50]).await;
    w.write_success(&dd, "audio", &[7]).await;
    let done = w
        .wait_dump("catalog", "Succeeded", |d| phase(d) == Some(DumpPhase::Succeeded))
        .await;
    let status = done.status.as_ref().unwrap();
    assert_eq!(condition(&done, "Complete").unwrap().0, "True");
    assert_eq!(condition(&done, "Failed").unwrap().0, "False");
    assert_eq!(status.done.as_deref(), Some("2/2"));
    let image = status.media("image").unwrap();
    assert_eq!((image.files, image.rows), (Some(2), Some(150)));
    assert_eq!(image.instance_state.as_deref(), Some("terminated"));
    assert!(image.s3_uri.as_ref().unwrap().starts_with("s3://datasets/data-dump/"));
    assert!(status.completion_time.is_some());
    assert_eq!(status.observed_generation, done.metadata.generation);
    w.assert_nothing_left_running(&uid).await;
    assert_no_duplicates(&w.instances(&uid).await);
    // staged credentials are gone, the data is not
    let params = w.wait_for_parameters(|p| !p.iter().any(|n| n.contains(&uid))).await;
    assert!(params.iter().all(|p| !p.contains(&uid)));
    assert!(w.keys().await.iter().any(|k| k.ends_with("image/image_02.parquet")));

    let events = w.events().await;
    for r in ["Launched", "WorkerSucceeded", "Succeeded", "Complete"] {
        assert!(events.iter().any(|(x, _)| x == r), "event {r} missing from {events:?}");
    }
    // each media type's note is its own Event (`kubectl describe` shows both), not folded into
    // the other's series because the reason is the same
    for (reason, media) in [
        ("Launched", "image"),
        ("Launched", "audio"),
        ("Succeeded", "image"),
        ("Succeeded", "audio"),
    ] {
        assert!(
            events.iter().any(|(r, note)| r == reason && note.starts_with(&format!("{media}:"))),
            "no {reason} event for {media} in {events:?}"
        );
    }
    // what `kubectl get datadumps` shows
    let out = crate::support::kube::kubectl_run(&w.kubeconfig, &["get", "datadumps"], "");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("catalog") && text.contains("Succeeded") && text.contains("2/2") && text.contains("datasets"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!w.logs().contains(PASSWORD), "the password reached the logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_is_retried_with_a_new_token_then_fails_with_the_workers_message() {
    let mut w = World::start().await;
    w.start_controller(&[]);
    let dd = w.create("flaky", "mediaTypes: [image]\nbackoffLimit: 1").await;
    let uid = dd.uid().unwrap();
    let dd = running(&w, "flaky", &["image"]).await;
    let first = dd.status.as_ref().unwrap().media("image").unwrap().token.clone().unwrap();
    w.write_failure(&dd, "image", "ERROR: relation \"image\" does not exist").await;
    let dd = w.wait_attempt_running("flaky", "image", 2).await;
    let second = dd.status.as_ref().unwrap().media("image").unwrap().token.clone().unwrap();
    assert_ne!(first, second);
    w.write_failure(&dd, "image", "ERROR: connection refused").await;
    let done = w.wait_dump("flaky", "Failed", |d| phase(d) == Some(DumpPhase::Failed)).await;
    let (status, reason, message) = condition(&done, "Failed").unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("True", "WorkerFailed"));
    assert!(message.contains("connection refused"), "{message}");
    assert_eq!(condition(&done, "Complete").unwrap().0, "False");
    w.assert_nothing_left_running(&uid).await;
    let instances = w.instances(&uid).await;
    assert_eq!(instances.len(), 2, "one instance per attempt");
    assert_no_duplicates(&instances);
    assert!(w.events().await.iter().any(|(r, _)| r == "Retrying"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_terminated_behind_our_back_is_a_failed_attempt() {
    let mut w = World::start().await;
    w.start_controller(&[]);
    // a Spot instance, as a Spot interruption would end it
    let dd = w
        .create(
            "lost",
            "mediaTypes: [audio]\nbackoffLimit: 0\ninstance: {iamInstanceProfile: datadump-worker, instanceType: t4g.nano, spot: true, ebsVolumeSizeGb: 20}",
        )
        .await;
    let uid = dd.uid().unwrap();
    let dd = running(&w, "lost", &["audio"]).await;
    let instance = &w.instances(&uid).await[0];
    assert_eq!(instance.lifecycle.as_deref(), Some("spot"));
    assert!(
        instance.devices.contains(&"/dev/sdf".to_string()),
        "the asked-for volume: {:?}",
        instance.devices
    );
    let id = dd.status.as_ref().unwrap().media("audio").unwrap().instance_id.clone().unwrap();
    w.ec2.terminate_instances().instance_ids(&id).send().await.unwrap();
    let done = w.wait_dump("lost", "Failed", |d| phase(d) == Some(DumpPhase::Failed)).await;
    let (_, reason, message) = condition(&done, "Failed").unwrap();
    assert_eq!(reason, "InstanceLost");
    assert!(message.contains(&id), "{message}");
    w.assert_nothing_left_running(&uid).await;
    assert_eq!(w.instances(&uid).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passed_deadline_terminates_and_fails_with_deadline_exceeded() {
    let mut w = World::start().await;
    w.start_controller(&[]);
    let dd = w.create("slow", "mediaTypes: [image]\ntimeout: 1h").await;
    let uid = dd.uid().unwrap();
    running(&w, "slow", &["image"]).await;
    // Time travel: the dump started two hours ago (the deadline counts from status.startTime).
    let two_hours_ago = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2)).to_string();
    w.dumps()
        .patch_status(
            "slow",
            &Default::default(),
            &kube::api::Patch::Merge(json!({"status": {"startTime": two_hours_ago}})),
        )
        .await
        .unwrap();
    let done = w.wait_dump("slow", "Failed", |d| phase(d) == Some(DumpPhase::Failed)).await;
    assert_eq!(condition(&done, "Failed").unwrap().1, "DeadlineExceeded");
    w.assert_nothing_left_running(&uid).await;
    assert_eq!(w.instances(&uid).await.len(), 1, "no retry after the deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_running_dump_terminates_its_instances_and_keeps_the_data() {
    let mut w = World::start().await;
    w.start_controller(&[]);
    let dd = w.create("gone", "").await;
    let uid = dd.uid().unwrap();
    let dd = running(&w, "gone", &["image", "audio"]).await;
    w.write_success(&dd, "image", &[3]).await;
    w.wait_dump("gone", "image done", |d| media_phase(d, "image") == Some(MediaPhase::Succeeded))
        .await;
    w.delete("gone").await;
    let api = w.dumps();
    crate::support::net::wait_for("object gone", std::time::Duration::from_secs(90), || {
        let api = api.clone();
        async move { api.get_opt("gone").await.unwrap().is_none().then_some(()) }
    })
    .await;
    w.assert_nothing_left_running(&uid).await;
    assert!(w.parameters().await.iter().all(|p| !p.contains(&uid)), "staged credentials deleted");
    assert!(
        w.keys().await.iter().any(|k| k.ends_with("image/image_01.parquet")),
        "exported data is never deleted"
    );
}

/// Crashes the controller at `point` once, restarts it, and finishes a one-media dump.
async fn crash_at(point: &str) {
    let mut w = World::start().await;
    let first = w.start_controller(&[("DATADUMP_FAIL_AT", point)]);
    let name = format!("crash-{point}");
    let dd = w.create(&name, "mediaTypes: [image]").await;
    let uid = dd.uid().unwrap();
    if point == "while-running" {
        running(&w, &name, &["image"]).await;
        w.kill_controller(first);
    } else {
        assert_eq!(w.wait_controller_exit(first).await, Some(86), "the controller reached {point}");
    }
    w.start_controller(&[]);
    let dd = running(&w, &name, &["image"]).await;
    assert_no_duplicates(&w.instances(&uid).await);
    w.write_success(&dd, "image", &[1]).await;
    w.wait_dump(&name, "Succeeded", |d| phase(d) == Some(DumpPhase::Succeeded)).await;
    w.assert_nothing_left_running(&uid).await;
    let instances = w.instances(&uid).await;
    assert_eq!(instances.len(), 1, "exactly one instance for the one attempt: {instances:?}");
    assert_no_duplicates(&instances);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_the_token_write() {
    crash_at("after-status").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_run_instances_before_the_status_patch() {
    crash_at("after-launch").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_while_running() {
    crash_at("while-running").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_while_terminating() {
    let mut w = World::start().await;
    let first = w.start_controller(&[]);
    let dd = w.create("term", "mediaTypes: [image]").await;
    let uid = dd.uid().unwrap();
    let dd = running(&w, "term", &["image"]).await;
    w.kill_controller(first);
    let second = w.start_controller(&[("DATADUMP_FAIL_AT", "after-terminate")]);
    w.write_success(&dd, "image", &[2]).await;
    assert_eq!(w.wait_controller_exit(second).await, Some(86));
    w.start_controller(&[]);
    w.wait_dump("term", "Succeeded", |d| phase(d) == Some(DumpPhase::Succeeded)).await;
    w.assert_nothing_left_running(&uid).await;
    assert_eq!(w.instances(&uid).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_terminates_and_resume_relaunches() {
    let mut w = World::start().await;
    w.start_controller(&[]);
    let dd = w.create("pause", "mediaTypes: [image]\nbackoffLimit: 0").await;
    let uid = dd.uid().unwrap();
    running(&w, "pause", &["image"]).await;
    w.patch_spec("pause", json!({"suspend": true})).await;
    let d = w
        .wait_dump("pause", "Suspended with nothing running", |d| {
            phase(d) == Some(DumpPhase::Suspended) && media_phase(d, "image") == Some(MediaPhase::Pending)
        })
        .await;
    assert_eq!(d.status.as_ref().unwrap().media("image").unwrap().failed_attempts, 0);
    w.assert_nothing_left_running(&uid).await;
    w.patch_spec("pause", json!({"suspend": false})).await;
    let dd = w.wait_attempt_running("pause", "image", 2).await;
    w.write_success(&dd, "image", &[4]).await;
    w.wait_dump("pause", "Succeeded", |d| phase(d) == Some(DumpPhase::Succeeded)).await;
    w.assert_nothing_left_running(&uid).await;
    let instances = w.instances(&uid).await;
    assert_eq!(instances.len(), 2);
    assert_no_duplicates(&instances);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_spec_says_why_and_launches_nothing() {
    let mut w = World::start().await;
    w.start_controller(&[]);
    // passes the CRD's schema and CEL rules (the server stores it), but the query would write
    let dd = w.create("wrong", "query: 'DELETE FROM {media_type}'").await;
    let uid = dd.uid().unwrap();
    let d = w
        .wait_dump("wrong", "SpecValid=False", |d| {
            condition(d, "SpecValid").is_some_and(|c| c.0 == "False")
        })
        .await;
    let (_, reason, message) = condition(&d, "SpecValid").unwrap();
    assert_eq!(reason, "InvalidSpec");
    assert!(message.contains("spec.query") && message.contains("fix:"), "{message}");
    assert_eq!(phase(&d), Some(DumpPhase::Pending));
    assert!(w.instances(&uid).await.is_empty(), "nothing launched");
    assert!(w.parameters().await.is_empty(), "nothing staged");
    assert!(w.events().await.iter().any(|(r, _)| r == "InvalidSpec"));
    // fixing the spec starts the dump
    w.patch_spec("wrong", json!({"query": "SELECT * FROM {media_type}"})).await;
    running(&w, "wrong", &["image", "audio"]).await;
    w.delete("wrong").await;
    w.assert_nothing_left_running(&uid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_terminates_instances_whose_owner_is_gone() {
    let mut w = World::start().await;
    // An instance tagged like ours for a DataDump that no longer exists (its finalizer was
    // force-removed, say), and one of another installation that must be left alone.
    let launch = |managed_by: &'static str, uid: &'static str| {
        let ec2 = w.ec2.clone();
        async move {
            let tags = [
                ("datadump.dev/managed-by", managed_by),
                ("datadump.dev/uid", uid),
                ("datadump.dev/media-type", "image"),
                ("datadump.dev/attempt", "1"),
                ("datadump.dev/token", "ddt-orphan"),
            ];
            let spec = aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                .set_tags(Some(
                    tags.iter()
                        .map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(*k).value(*v).build())
                        .collect(),
                ))
                .build();
            let out = ec2
                .run_instances()
                .image_id("ami-12345678")
                .min_count(1)
                .max_count(1)
                .tag_specifications(spec)
                .send()
                .await
                .unwrap();
            out.instances()[0].instance_id().unwrap().to_string()
        }
    };
    let orphan = launch("datadump-operator", "gone-uid").await;
    let foreign = launch("another-cluster", "other-uid").await;
    w.start_controller(&[]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !w.instances("gone-uid").await.iter().all(|i| i.state == "terminated") {
        assert!(
            std::time::Instant::now() < deadline,
            "orphan not terminated\n{}",
            w.logs()
                .lines()
                .filter(|l| !l.contains("aws_") && !l.contains("hyper"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let text = w.metrics().await;
    assert!(text.contains("datadump_orphans_terminated_total 1"), "{text}");
    let others = w.instances("other-uid").await;
    assert_eq!(others.len(), 1);
    assert_eq!(others[0].state, "running", "instances of another installation are not ours to end");
    assert!(w.logs().contains(&orphan) && !w.logs().contains(&format!("\"{foreign}\"")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_upload_fails_the_attempt_with_a_clear_message() {
    let mut w = World::start().await;
    w.start_controller(&[]);
    let dd = w.create("torn", "mediaTypes: [image]\nbackoffLimit: 0").await;
    let uid = dd.uid().unwrap();
    let dd = running(&w, "torn", &["image"]).await;
    w.write_truncated_success(&dd, "image").await;
    let done = w.wait_dump("torn", "Failed", |d| phase(d) == Some(DumpPhase::Failed)).await;
    let (_, reason, message) = condition(&done, "Failed").unwrap();
    assert_eq!(reason, "OutputIncomplete");
    assert!(message.contains("image_01.parquet") && message.contains("truncated"), "{message}");
    w.assert_nothing_left_running(&uid).await;
    assert!(
        w.keys().await.iter().any(|k| k.ends_with("image_01.parquet")),
        "nothing exported is deleted, not even a torn file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_is_reported_and_nothing_launches_until_it_exists() {
    let mut w = World::start().await;
    w.start_controller(&[]);
    let dd = w
        .create(
            "nosecret",
            "mediaTypes: [image]\ndatabase: {connectionSecretRef: {name: not-yet, key: conn}}",
        )
        .await;
    let uid = dd.uid().unwrap();
    crate::support::net::wait_for("a SecretUnavailable event", std::time::Duration::from_secs(60), || async {
        w.events()
            .await
            .into_iter()
            .find(|(r, m)| r == "SecretUnavailable" && m.contains("not-yet") && m.contains("does not exist"))
    })
    .await;
    // every retry says the same: one Event whose series counts the retries ("x2 over …")
    let same = w.wait_event_series("SecretUnavailable", 2).await;
    assert_eq!(same.len(), 1, "repeats of one note are one Event: {same:?}");
    assert!(w.instances(&uid).await.is_empty(), "nothing launched without credentials");
    w.create_secret("not-yet", "conn", &connection_string()).await;
    running(&w, "nosecret", &["image"]).await;
    w.delete("nosecret").await;
    w.assert_nothing_left_running(&uid).await;
}

/// A CA bundle the size of RDS's `global-bundle.pem` (100 PEM certificates, about 165 KB).
fn ca_bundle() -> String {
    (0..100)
        .map(|i| {
            let body = format!("MIIF{i:04}{}", "Q".repeat(1592));
            let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
            format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
        })
        .collect()
}

/// The body line of the client key: what must never show.
const KEY_BODY: &str = "MC4CAQAwBQYDK2VwBCIEIKEYneverSHOWNanywhereBUTssmX7Qz9";

/// A client certificate chain and its key (`tls.crt`, `tls.key`): the armour the controller
/// checks, not real DER (no TLS server here: the worker's verify-full is tested elsewhere).
fn client_identity() -> (String, String) {
    let cert = |name: &str| format!("-----BEGIN CERTIFICATE-----\nMIIB{name}CLIENTchain\n-----END CERTIFICATE-----\n");
    (
        format!("{}{}", cert("leaf"), cert("intermediate")),
        format!("-----BEGIN PRIVATE KEY-----\n{KEY_BODY}\n-----END PRIVATE KEY-----\n"),
    )
}

/// `spec.database.tls` through the controller, as a user checks it: a missing ConfigMap, then
/// one without PEM, are Warnings naming the key and the fix, and nothing launches; once fixed,
/// the job object next to the output (`_job/attempt-1.json`) carries the bundle, the user data
/// neither the bundle nor the key; the client certificate and key are staged in SSM next to
/// the connection string (per media type) and deleted with it, when the media type ends and
/// when the object is deleted; no Event, status, log, user data or S3 object holds the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_bundle_travels_in_the_job_and_the_client_key_only_through_ssm() {
    let mut w = World::start().await;
    w.start_controller(&[]);
    let bundle = ca_bundle();
    assert!(bundle.len() > 160_000);
    let (crt, key) = client_identity();
    w.create_tls_secret("catalog-client", &crt, &key).await;
    let dd = w
        .create(
            "tls",
            "database:\n  connectionSecretRef: {name: catalog-db, key: connectionString}\n  tls:\n    caBundle: {configMapKeyRef: {name: rds-ca, key: global-bundle.pem}}\n    clientCertificateSecretRef: {name: catalog-client}",
        )
        .await;
    let uid = dd.uid().unwrap();
    let warning = |reason: &'static str, words: &'static [&'static str]| {
        let w = &w;
        crate::support::net::wait_for(reason, std::time::Duration::from_secs(60), move || async move {
            w.events()
                .await
                .into_iter()
                .find(|(r, m)| r == reason && words.iter().all(|x| m.contains(x)))
        })
    };
    warning(
        "ConfigMapUnavailable",
        &["ConfigMap rds-ca key global-bundle.pem", "does not exist"],
    )
    .await;
    assert!(w.instances(&uid).await.is_empty(), "nothing launches without the bundle");
    w.put_config_map("rds-ca", "global-bundle.pem", "MIIF0000 (DER as text, not PEM)")
        .await;
    let (_, note) = warning("TlsMaterialInvalid", &["ConfigMap rds-ca key global-bundle.pem", "fix: "]).await;
    assert!(note.contains("no PEM certificate"), "{note}");
    assert!(w.instances(&uid).await.is_empty(), "nothing launches with a bundle that is not PEM");
    w.put_config_map("rds-ca", "global-bundle.pem", &bundle).await;
    let dd = running(&w, "tls", &["image", "audio"]).await;
    let mut seen = vec![("status while running".to_string(), serde_json::to_string(&dd).unwrap())];

    let instances = w.instances(&uid).await;
    assert_eq!(instances.len(), 2);
    for i in &instances {
        let media = &i.tags["datadump.dev/media-type"];
        let job_key = format!("{}_job/attempt-1.json", crate::support::cluster::media_prefix(&dd, media));
        let text = String::from_utf8(w.get_object(&job_key).await).unwrap();
        let job: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            job["caBundle"].as_str(),
            Some(bundle.as_str()),
            "{media}: the bundle, whole, in the job"
        );
        assert_eq!(job["ssmParameter"], format!("/datadump/{uid}/{media}"));
        assert_eq!(job["clientIdentityParameter"], format!("/datadump/{uid}/{media}/client-identity"));
        let user_data = i.user_data.as_deref().expect("user data");
        assert!(user_data.len() < 4096, "{media}: {} bytes of user data", user_data.len());
        assert!(user_data.contains(&job_key), "the user data names the job");
        assert!(
            !user_data.contains("BEGIN") && !user_data.contains("MIIF0000") && !user_data.contains(KEY_BODY),
            "{media}: neither the bundle nor the key in user data"
        );
        seen.push((format!("user data of {media}"), user_data.to_string()));
        let staged = w
            .ssm
            .get_parameter()
            .name(format!("/datadump/{uid}/{media}/client-identity"))
            .with_decryption(true)
            .send()
            .await
            .unwrap()
            .parameter
            .unwrap();
        assert_eq!(staged.r#type().map(|t| t.as_str()), Some("SecureString"));
        assert_eq!(
            staged.value(),
            Some(format!("{}\n{}\n", crt.trim(), key.trim()).as_str()),
            "{media}: tls.crt, then tls.key"
        );
    }
    let mine = |p: &[String]| {
        p.iter()
            .filter(|n| n.contains(&uid))
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
    };
    let expected: std::collections::BTreeSet<String> = ["image", "audio"]
        .iter()
        .flat_map(|m| [format!("/datadump/{uid}/{m}"), format!("/datadump/{uid}/{m}/client-identity")])
        .collect();
    assert_eq!(
        mine(&w.parameters().await),
        expected,
        "each media type's connection string and identity"
    );

    // image ends: its two parameters go, audio's stay
    w.write_success(&dd, "image", &[3]).await;
    let d = w
        .wait_dump("tls", "image done", |d| media_phase(d, "image") == Some(MediaPhase::Succeeded))
        .await;
    seen.push(("status after image".into(), serde_json::to_string(&d).unwrap()));
    let left = w
        .wait_for_parameters(|p| !p.iter().any(|n| n.contains(&format!("/{uid}/image"))))
        .await;
    let audio: std::collections::BTreeSet<String> = expected.iter().filter(|n| n.contains("/audio")).cloned().collect();
    assert_eq!(mine(&left), audio, "audio's parameters stay while it runs");
    // deleting the object deletes the rest
    w.delete("tls").await;
    let api = w.dumps();
    crate::support::net::wait_for("object gone", std::time::Duration::from_secs(90), || {
        let api = api.clone();
        async move { api.get_opt("tls").await.unwrap().is_none().then_some(()) }
    })
    .await;
    w.assert_nothing_left_running(&uid).await;
    assert!(mine(&w.parameters().await).is_empty(), "nothing staged is left");

    // the key is nowhere a user (or anyone with the controller's outputs) can read
    for (reason, note) in w.events().await {
        seen.push((format!("Event {reason}"), note));
    }
    seen.push(("controller logs".into(), w.logs()));
    for k in w.keys().await {
        seen.push((format!("s3://{k}"), String::from_utf8_lossy(&w.get_object(&k).await).into_owned()));
    }
    let b64 = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&key)
    };
    for (place, text) in &seen {
        assert!(!text.contains(KEY_BODY) && !text.contains(&b64), "the client key in {place}");
    }
    assert!(
        seen.iter().any(|(p, t)| p.ends_with("attempt-1.json") && t.contains("MIIF0000")),
        "the search saw the jobs"
    );
}

/// The whole path as on EC2, over verified TLS: the controller launches, the test runs the
/// instance's user data the way cloud-init would (`sh`, shutdown stubbed), the bootstrap
/// fetches the real worker binary from the bucket, and the worker reads a TLS-only PostgreSQL
/// with the CA bundle from a ConfigMap (no `sslmode`, no `sslrootcert` in the connection
/// string: the bundle makes it `verify-full`). Status, manifest and card say how it connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_launched_by_the_controller_reads_over_verified_tls() {
    use crate::support::pki::{Ca, Validity};
    use crate::support::postgres::{Postgres, ServerTls};
    let ca = Ca::new("Catalog CA");
    let pg = Postgres::start_tls(&ServerTls {
        server: ca.server(&["localhost"], Validity::Current),
        client_ca: None,
        also_plain: false,
    });
    pg.create_database("openledger");
    pg.psql(
        "openledger",
        "CREATE TABLE image AS SELECT g AS id, 'title ' || g AS title FROM generate_series(1, 3000) g",
    );
    let mut w = World::start().await;
    w.create_secret("tls-db", "url", &pg.connection_string_to("localhost", "openledger", ""))
        .await;
    w.put_config_map("db-ca", "ca.pem", &ca.cert_pem()).await;
    // the real worker binary, for this machine's architecture
    let arch = datadump::contract::Arch::host();
    let bins = w.dir.path().join("real-binaries");
    std::fs::create_dir_all(&bins).unwrap();
    std::fs::copy(
        crate::worker::worker_binary(),
        bins.join(format!("datadump-worker-{}", arch.as_str())),
    )
    .unwrap();
    let instance_type = if arch.as_str() == "x86_64" { "m7i.large" } else { "m7g.large" };
    w.start_controller(&[("DATADUMP_WORKER_BINARIES_DIR", bins.to_str().unwrap())]);
    let dd = w
        .create(
            "tls-e2e",
            &format!(
                "mediaTypes: [image]\ndatabase:\n  connectionSecretRef: {{name: tls-db, key: url}}\n  tls:\n    caBundle: {{configMapKeyRef: {{name: db-ca, key: ca.pem}}}}\ninstance: {{iamInstanceProfile: datadump-worker, instanceType: {instance_type}}}"
            ),
        )
        .await;
    let uid = dd.uid().unwrap();
    let instances = w.wait_instances(&uid, "one instance", |i| i.len() == 1).await;
    let user_data = instances[0].user_data.clone().expect("user data");
    assert!(user_data.len() < 4096 && !user_data.contains("BEGIN CERTIFICATE"));

    // cloud-init's part
    let root = w.dir.path().join("instance");
    std::fs::create_dir_all(&root).unwrap();
    let stub = root.join("shutdown");
    std::fs::write(&stub, "#!/bin/sh\necho \"$*\" >> \"$(dirname \"$0\")/shutdown.log\"\n").unwrap();
    std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = tokio::process::Command::new("sh")
        .args(["-c", &user_data])
        .envs(w.moto.child_env())
        .env("PATH", crate::support::moto::worker_path())
        .env("DATADUMP_SHUTDOWN_CMD", &stub)
        .env("DATADUMP_BOOTSTRAP_DIR", root.join("root"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let dd = w
        .wait_dump("tls-e2e", "Succeeded with its card", |d| {
            phase(d) == Some(DumpPhase::Succeeded) && d.status.as_ref().is_some_and(|s| s.dataset_card.is_some())
        })
        .await;
    let m = dd.status.as_ref().unwrap().media("image").unwrap();
    assert_eq!(m.rows, Some(3000));
    let connection = m.connection.as_deref().unwrap_or_default();
    assert!(
        connection.starts_with("TLSv1.") && connection.contains("verified against the CA and host name (sslmode=verify-full)"),
        "status.media[].connection: {connection:?}"
    );
    let manifest: serde_json::Value = serde_json::from_slice(
        &w.get_object(&format!("{}_manifest.json", crate::support::cluster::media_prefix(&dd, "image")))
            .await,
    )
    .unwrap();
    assert_eq!(manifest["connection"]["serverCertificate"], "caAndHostName", "{manifest}");
    let card_uri = dd.status.as_ref().unwrap().dataset_card.clone().expect("a dataset card");
    let card_key = card_uri.split_once("datasets/").unwrap().1;
    let card = String::from_utf8(w.get_object(card_key).await).unwrap();
    assert!(card.contains("Read from the database over TLSv1."), "{card}");
    assert!(!card.contains(pg.password()) && !w.logs().contains(pg.password()));
    w.delete("tls-e2e").await;
    w.assert_nothing_left_running(&uid).await;
}
