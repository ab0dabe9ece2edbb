//! What an operator of the controller checks before shipping it: the Slack message (once, with
//! the S3 prefixes; retried when the receiver fails, never blocking the dump), the dataset
//! card, `/metrics` after a dump, the chart's RBAC against the API calls really made, and
//! leader election between two replicas.

use std::collections::BTreeSet;
use std::time::Duration;

use datadump::api::{DataDump, DumpPhase, MediaPhase};
use kube::ResourceExt;

use crate::support::cluster::{BUCKET, PASSWORD, World, media_prefix};
use crate::support::net::wait_for;
use crate::support::receiver::Receiver;

const SLACK: &str = "notification: {slack: {webhookSecretRef: {name: slack-webhook, key: url}}}";

fn phase(d: &DataDump) -> Option<DumpPhase> {
    d.status.as_ref().map(|s| s.phase)
}

async fn run_to_success(w: &World, name: &str, spec: &str) -> DataDump {
    w.create(name, spec).await;
    let dd = w
        .wait_dump(name, "running", |d| {
            d.status
                .as_ref()
                .is_some_and(|s| !s.media.is_empty() && s.media.iter().all(|m| m.phase == MediaPhase::Running))
        })
        .await;
    for m in dd.spec.media_types.iter() {
        w.write_success(&dd, m.as_str(), &[10, 5]).await;
    }
    w.wait_dump(name, "Succeeded", |d| phase(d) == Some(DumpPhase::Succeeded)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_slack_message_with_the_s3_prefixes_and_a_dataset_card() {
    let receiver = Receiver::start(0).await;
    let mut w = World::start().await;
    w.create_secret("slack-webhook", "url", &receiver.url).await;
    let first = w.start_controller(&[]);
    run_to_success(&w, "card", SLACK).await;
    let done = w
        .wait_dump("card", "notification sent", |d| {
            d.status.as_ref().and_then(|s| s.notification.as_ref()).is_some_and(|n| n.sent)
        })
        .await;
    let messages = receiver.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let text = &messages[0];
    for m in ["image", "audio"] {
        assert!(text.contains(&format!("s3://{BUCKET}/{}", media_prefix(&done, m))), "{text}");
    }
    assert!(
        text.contains("Succeeded") && text.contains("2 files") && text.contains("15 rows"),
        "{text}"
    );

    // the dataset card sits next to the data
    let status = done.status.as_ref().unwrap();
    let card_key = format!("data-dump/{}/README.md", status.dump_date.as_ref().unwrap());
    let uri = w
        .wait_dump("card", "card recorded", |d| {
            d.status.as_ref().is_some_and(|s| s.dataset_card.is_some())
        })
        .await
        .status
        .unwrap()
        .dataset_card
        .unwrap();
    assert_eq!(uri, format!("s3://{BUCKET}/{card_key}"));
    let card = w.get_object(&card_key).await;
    let card = String::from_utf8(card.to_vec()).unwrap();
    assert!(card.starts_with("---\nsize_categories:\n- n<1K\nconfigs:\n"), "{card}");
    assert!(
        card.contains("config_name: image") && card.contains("  - audio/audio_01.parquet\n    - audio/audio_02.parquet\n"),
        "the card lists exactly the manifest's files: {card}"
    );
    assert!(
        card.contains("| `id` | int64 |  | no |"),
        "columns read from the Parquet schema: {card}"
    );
    assert!(card.contains("15 rows in 2 file(s)") && card.contains("as-is"), "{card}");

    // a restarted controller does not send it again
    w.kill_controller(first);
    w.start_controller(&[]);
    run_to_success(
        &w,
        "after-restart",
        "mediaTypes: [image]\ndestination: {bucket: datasets, prefix: second}",
    )
    .await;
    assert_eq!(receiver.messages().len(), 1, "sent exactly once across restarts\n{}", w.logs());

    // the webhook URL is a credential
    assert!(!w.logs().contains(&receiver.url) && !w.logs().contains("xoxb-webhook-secret-token"));
    let all =
        serde_json::to_string(&w.dumps().list(&Default::default()).await.unwrap().items).unwrap() + &format!("{:?}", w.events().await);
    assert!(!all.contains("xoxb-webhook-secret-token") && !all.contains(PASSWORD));
    assert!(!text.contains(PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_webhook_is_retried_and_shown_but_never_blocks_the_dump() {
    let receiver = Receiver::start(2).await;
    let mut w = World::start().await;
    w.create_secret("slack-webhook", "url", &receiver.url).await;
    w.start_controller(&[]);
    let done = run_to_success(&w, "noisy", &format!("mediaTypes: [audio]\n{SLACK}")).await;
    assert!(
        done.status.as_ref().unwrap().completion_time.is_some(),
        "the dump ended regardless of Slack"
    );
    let failed = w
        .wait_dump("noisy", "a failed send recorded", |d| {
            d.status
                .as_ref()
                .and_then(|s| s.notification.as_ref())
                .is_some_and(|n| n.attempts >= 1)
        })
        .await;
    let n = failed.status.as_ref().unwrap().notification.clone().unwrap();
    assert!(n.last_error.as_deref().unwrap_or_default().contains("HTTP 500"), "{n:?}");
    assert!(!n.last_error.unwrap().contains("xoxb"), "no URL in the error");
    let sent = w
        .wait_dump("noisy", "sent after retries", |d| {
            d.status.as_ref().and_then(|s| s.notification.as_ref()).is_some_and(|n| n.sent)
        })
        .await;
    assert_eq!(sent.status.unwrap().notification.unwrap().attempts, 2);
    assert_eq!(receiver.attempts(), 3);
    assert_eq!(receiver.messages().len(), 1);
    assert!(w.events().await.iter().any(|(r, m)| r == "NotifyFailed" && m.contains("HTTP 500")));
}

/// `name{labels} value` lines of one metric family, summed.
fn metric(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && (label.is_empty() || l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_probes_after_a_dump() {
    let mut w = World::start().await;
    w.start_controller(&[]);
    let port = w.http_port().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !crate::support::cluster::http_get(port, "/readyz").await.contains(" 200 ") {
        assert!(
            std::time::Instant::now() < deadline,
            "never ready: {:?}\n{}",
            crate::support::cluster::http_get(port, "/readyz").await,
            w.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(crate::support::cluster::http_get(port, "/healthz").await.contains(" 200 "));
    run_to_success(&w, "measured", "").await;
    let text = w.metrics().await;
    assert!(metric(&text, "datadump_reconciles_total", "result=\"ok\"") > 0.0, "{text}");
    assert_eq!(
        metric(&text, "datadump_aws_calls_total", "api=\"RunInstances\",outcome=\"ok\""),
        2.0,
        "{text}"
    );
    assert_eq!(metric(&text, "datadump_instances_launched_total", ""), 2.0);
    assert!(metric(&text, "datadump_aws_calls_total", "api=\"TerminateInstances\"") >= 1.0);
    assert!(metric(&text, "datadump_aws_calls_total", "api=\"DescribeInstances\"") >= 1.0);
    assert_eq!(
        metric(&text, "datadump_dump_duration_seconds_count", "phase=\"Succeeded\""),
        1.0,
        "{text}"
    );
    assert!(metric(&text, "datadump_success_to_terminate_seconds_count", "") >= 1.0, "{text}");
    assert!(metric(&text, "datadump_reconcile_duration_seconds_count", "") > 0.0);
    assert!(!text.contains(PASSWORD));
}

/// The controller runs as the chart's ServiceAccount with the chart's Role (see
/// `support::kube::tenant`) on a real API server with RBAC on: a whole lifecycle with leader
/// election, a CA bundle from a ConfigMap, a Slack message and a deletion must meet no 403. And nothing the chart grants
/// goes unused (least privilege), judged from the requests the proxy saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_rbac_grants_what_the_controller_calls_and_no_more() {
    let receiver = Receiver::start(0).await;
    let mut w = World::start().await;
    w.create_secret("slack-webhook", "url", &receiver.url).await;
    // a CA bundle from a ConfigMap: the configmaps `get` grant is used
    w.put_config_map(
        "rds-ca",
        "ca.pem",
        "-----BEGIN CERTIFICATE-----\nMIIBrbac\n-----END CERTIFICATE-----\n",
    )
    .await;
    let leader = crate::schedule::start_on_test_clock(&mut w, &[("DATADUMP_LEADER_ELECTION", "true"), ("POD_NAME", "one")]);
    let spec = format!(
        "{SLACK}\ndatabase: {{connectionSecretRef: {{name: catalog-db, key: connectionString}}, tls: {{caBundle: {{configMapKeyRef: {{name: rds-ca, key: ca.pem}}}}}}}}"
    );
    run_to_success(&w, "rbac", &spec).await;
    // the schedule controller's calls: a run created, then replaced (deleted) by the next one
    let (_, m1) = crate::schedule::create_schedule(&w, "rbac-schedule", "concurrencyPolicy: Replace").await;
    crate::schedule::set_clock(&w, crate::schedule::plus(m1, 1));
    crate::schedule::wait_dumps(&w, "rbac-schedule", "the first run", |v| v.len() == 1).await;
    crate::schedule::set_clock(&w, crate::schedule::plus(m1, 61));
    let second = format!("rbac-schedule-{}", crate::schedule::plus(m1, 60).strftime("%Y%m%d%H%M"));
    crate::schedule::wait_dumps(&w, "rbac-schedule", "the second run replaced the first", |v| {
        v.len() == 1 && v[0].name_any() == second
    })
    .await;
    wait_for("schedule status written", Duration::from_secs(60), || {
        let api = crate::schedule::schedules(&w);
        async move {
            api.get("rbac-schedule")
                .await
                .unwrap()
                .status
                .and_then(|s| s.last_schedule_time)
                .filter(|t| *t == crate::schedule::plus(m1, 60))
        }
    })
    .await;
    w.wait_dump("rbac", "notified", |d| {
        d.status.as_ref().and_then(|s| s.notification.as_ref()).is_some_and(|n| n.sent)
    })
    .await;
    w.delete("rbac").await;
    let api = w.dumps();
    wait_for("deleted", Duration::from_secs(60), || {
        let api = api.clone();
        async move { api.get_opt("rbac").await.unwrap().is_none().then_some(()) }
    })
    .await;
    w.kill_controller(leader);

    let requests = w.kube.proxy.requests();
    let forbidden: Vec<_> = requests.iter().filter(|r| r.status == 403).collect();
    assert!(
        forbidden.is_empty(),
        "the API server refused calls the chart does not grant: {forbidden:#?}"
    );
    assert!(!w.logs().contains("forbidden"), "no 403 in the controller log");
    // What the controller called: (apiGroup, resource[/subresource], verb).
    let used: BTreeSet<(String, String, String)> = requests
        .into_iter()
        .filter(|r| !r.resource.is_empty())
        .map(|r| {
            let res = match &r.subresource {
                Some(s) => format!("{}/{s}", r.resource),
                None => r.resource.clone(),
            };
            (r.api_group.clone(), res, r.verb.clone())
        })
        .collect();
    let rendered = crate::chart::render_with("replicaCount: 2\n");
    let mut granted: BTreeSet<(String, String, String)> = BTreeSet::new();
    for kind in ["ClusterRole", "Role"] {
        for role in rendered.all(kind) {
            for rule in role["rules"].as_array().unwrap() {
                for g in rule["apiGroups"].as_array().unwrap() {
                    for res in rule["resources"].as_array().unwrap() {
                        for v in rule["verbs"].as_array().unwrap() {
                            granted.insert((g.as_str().unwrap().into(), res.as_str().unwrap().into(), v.as_str().unwrap().into()));
                        }
                    }
                }
            }
        }
    }
    // events `patch` counts up a repeated note's series; this lifecycle repeats no note.
    // `controller::a_missing_secret_is_reported_and_nothing_launches_until_it_exists` runs as
    // the same ServiceAccount and requires such a series, so it proves the grant is used.
    granted.remove(&("events.k8s.io".into(), "events".into(), "patch".into()));
    let unused: Vec<_> = granted.difference(&used).collect();
    assert!(
        unused.is_empty(),
        "the chart grants what the controller never called: {unused:?}\nused: {used:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_one_leader_and_a_takeover() {
    let mut w = World::start().await;
    let env = |pod: &'static str| {
        [
            ("DATADUMP_LEADER_ELECTION", "true"),
            ("POD_NAME", pod),
            ("DATADUMP_LEASE_DURATION", "3"),
        ]
    };
    let a = w.start_controller(&env("replica-a"));
    let lease = wait_for("a lease holder", Duration::from_secs(30), || {
        let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> = kube::Api::namespaced(w.client.clone(), &w.ns);
        async move {
            leases
                .get_opt("datadump-operator")
                .await
                .unwrap()
                .and_then(|l| l.spec?.holder_identity)
        }
    })
    .await;
    assert_eq!(lease, "replica-a");
    let b = w.start_controller(&env("replica-b"));
    let dd = w.create("ha", "mediaTypes: [image]").await;
    let uid = dd.uid().unwrap();
    let running = w
        .wait_dump("ha", "running", |d| {
            d.status
                .as_ref()
                .and_then(|s| s.media("image"))
                .is_some_and(|m| m.phase == MediaPhase::Running)
        })
        .await;
    assert_eq!(w.instances(&uid).await.len(), 1, "only the leader acts");
    assert!(w.logs().contains("became the leader"));
    w.kill_controller(a);
    let holder = wait_for("replica-b takes over", Duration::from_secs(60), || {
        let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> = kube::Api::namespaced(w.client.clone(), &w.ns);
        async move {
            leases
                .get_opt("datadump-operator")
                .await
                .unwrap()
                .and_then(|l| l.spec?.holder_identity)
                .filter(|h| h == "replica-b")
        }
    })
    .await;
    assert_eq!(holder, "replica-b");
    w.write_success(&running, "image", &[3]).await;
    w.wait_dump("ha", "Succeeded under the new leader", |d| phase(d) == Some(DumpPhase::Succeeded))
        .await;
    w.assert_nothing_left_running(&uid).await;
    assert_eq!(w.instances(&uid).await.len(), 1, "no duplicate across the takeover");
    w.kill_controller(b);
}
