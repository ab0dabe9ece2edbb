//! Requester Pays through the running controller, on the real API server against moto (with
//! moto's missing GetBucketRequestPayment/PutBucketRequestPayment added by the harness): the
//! setting is made before the first launch when asked, a refusal (the controller may not set
//! it) is a `RequesterPays=False` condition naming the missing permission with nothing launched
//! or staged, and a dump that does not ask never reads or touches the setting.

use std::time::Duration;

use aws_sdk_s3::types::Payer;
use datadump::api::{DumpPhase, MediaPhase, REQUESTER_PAYS};
use kube::ResourceExt;

use crate::controller::{condition, media_phase};
use crate::soak::{assert_healthy, start_controller};
use crate::support::cluster::{BUCKET, World};
use crate::support::faultproxy::{FaultKind, FaultProxy};

async fn payer(w: &World) -> Option<Payer> {
    w.s3.get_bucket_request_payment()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap()
        .payer()
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requester_pays_is_set_when_asked_refused_with_a_condition_and_never_touched_otherwise() {
    let mut w = World::start().await;
    let proxy = FaultProxy::start(&w.moto.endpoint).await;
    start_controller(&mut w, &[("AWS_ENDPOINT_URL", &proxy.url())]);

    // not asked: the dump runs and the bucket's setting is neither read nor changed
    w.create("plain", "mediaTypes: [image]").await;
    let plain = w
        .wait_dump("plain", "running", |d| media_phase(d, "image") == Some(MediaPhase::Running))
        .await;
    assert_eq!(proxy.count("GetBucketRequestPayment") + proxy.count("PutBucketRequestPayment"), 0);
    assert!(condition(&plain, REQUESTER_PAYS).is_none());
    assert_eq!(payer(&w).await, Some(Payer::BucketOwner));
    w.write_success(&plain, "image", &[3]).await;
    w.wait_dump("plain", "Succeeded", |d| {
        d.status.as_ref().is_some_and(|s| s.phase == DumpPhase::Succeeded)
    })
    .await;

    // asked, but the controller's role may not set it: a condition says what is missing and
    // nothing is launched or staged, retried every poll interval
    proxy.fail_next("PutBucketRequestPayment", 1_000, FaultKind::AccessDenied);
    let asked = w
        .create(
            "paid",
            "mediaTypes: [image, audio]\ndestination: {bucket: datasets, prefix: paid, requesterPays: true}",
        )
        .await;
    let uid = asked.uid().unwrap();
    let refused = w
        .wait_dump("paid", "RequesterPays=False", |d| {
            condition(d, REQUESTER_PAYS).is_some_and(|(s, r, _)| s == "False" && r == "NotAllowed")
                && d.status
                    .as_ref()
                    .and_then(|s| s.message.as_deref())
                    .is_some_and(|m| m.starts_with("waiting:"))
        })
        .await;
    let (_, _, message) = condition(&refused, REQUESTER_PAYS).unwrap();
    assert!(
        message.contains("AccessDenied") && message.contains("s3:PutBucketRequestPayment"),
        "{message}"
    );
    assert!(message.contains("put-bucket-request-payment --bucket datasets"), "{message}");
    let status = refused.status.clone().unwrap();
    assert_eq!(status.phase, DumpPhase::Pending);
    assert!(
        status
            .message
            .as_deref()
            .unwrap_or_default()
            .starts_with("waiting: requester pays not enabled, nothing launched: "),
        "{status:?}"
    );
    assert!(
        w.events()
            .await
            .iter()
            .any(|(r, n)| r == "RequesterPaysRefused" && n.contains("s3:PutBucketRequestPayment"))
    );
    crate::support::net::wait_for("a second try", Duration::from_secs(30), || {
        let n = proxy.count("PutBucketRequestPayment");
        async move { (n >= 2).then_some(()) }
    })
    .await;
    assert!(w.instances(&uid).await.is_empty(), "nothing launched while refused");
    assert!(
        !w.parameters().await.iter().any(|p| p.contains(&uid)),
        "nothing staged while refused"
    );
    assert_eq!(payer(&w).await, Some(Payer::BucketOwner));

    // allowed now (the permission was granted): set, recorded, and the dump starts
    proxy.faults_off();
    let enabled = w
        .wait_dump("paid", "RequesterPays=True", |d| {
            condition(d, REQUESTER_PAYS).is_some_and(|(s, _, _)| s == "True")
                && ["image", "audio"].iter().all(|m| media_phase(d, m) == Some(MediaPhase::Running))
        })
        .await;
    assert_eq!(payer(&w).await, Some(Payer::Requester));
    assert!(enabled.status.as_ref().unwrap().requester_pays.as_ref().unwrap().enabled);
    let (_, _, message) = condition(&enabled, REQUESTER_PAYS).unwrap();
    assert!(message.contains("--request-payer requester s3://datasets/paid/"), "{message}");
    for m in ["image", "audio"] {
        w.write_success(&enabled, m, &[2]).await;
    }
    let done = w
        .wait_dump("paid", "Succeeded", |d| {
            d.status.as_ref().is_some_and(|s| s.phase == DumpPhase::Succeeded)
        })
        .await;
    assert_eq!(w.instances(&uid).await.len(), 2, "one instance per media type");
    w.assert_nothing_left_running(&uid).await;
    assert_eq!(condition(&done, REQUESTER_PAYS).unwrap().0, "True");
    // the card says how to download from a Requester Pays bucket
    let date = done.status.as_ref().unwrap().dump_date.clone().unwrap();
    // (the status names the card only once it is written)
    w.wait_dump("paid", "card written", |d| {
        d.status.as_ref().is_some_and(|s| s.dataset_card.is_some())
    })
    .await;
    let card = String::from_utf8(w.get_object(&format!("paid/{date}/README.md")).await).unwrap();
    assert!(
        card.contains("--request-payer requester") && card.contains("Requester Pays"),
        "{card}"
    );
    assert_healthy(&w, "after requester pays").await;
}
