//! The test Kubernetes API as the other tests rely on it: the controller's identity, the chart's
//! ServiceAccount, has the chart's rights and nothing more (asked of the real server with
//! `kubectl auth can-i --as`), and a watch the fault proxy drops is reopened by the controller,
//! which then still sees new objects.
//!
//! (The proxy speaks plain HTTP to the controller; kube-rs sends its bearer token there, while
//! `kubectl` does not send one over plain HTTP — so kubectl always talks to the server itself.)

use std::time::Duration;

use crate::controller::media_phase;
use crate::support::cluster::World;
use crate::support::kube::kubectl_run;
use crate::support::net::wait_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controllers_identity_has_exactly_the_charts_rights() {
    let w = World::start().await;
    // the server's own answer for that identity (SubjectAccessReview through impersonation)
    let me = format!("--as=system:serviceaccount:{}:datadump-operator", w.ns);
    let can = |verb: &str, resource: &str, extra: &[&str]| {
        let mut args = vec!["auth", "can-i", verb, resource, me.as_str()];
        args.extend_from_slice(extra);
        let out = kubectl_run(&w.kubeconfig, &args, "");
        let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if said.is_empty() {
            String::from_utf8_lossy(&out.stderr).trim().to_string()
        } else {
            said
        }
    };
    let status = ["--subresource=status"];
    let granted = [
        ("list", "datadumps.datadump.dev", &[][..]),
        ("watch", "datadumps.datadump.dev", &[]),
        ("patch", "datadumps.datadump.dev", &[]),
        ("patch", "datadumps.datadump.dev", &status),
        ("create", "datadumps.datadump.dev", &[]),
        ("delete", "datadumps.datadump.dev", &[]),
        ("list", "datadumpschedules.datadump.dev", &[]),
        ("watch", "datadumpschedules.datadump.dev", &[]),
        ("patch", "datadumpschedules.datadump.dev", &status),
        ("get", "secrets", &[]),
        ("create", "events.events.k8s.io", &[]),
        ("patch", "events.events.k8s.io", &[]),
        ("create", "leases.coordination.k8s.io", &[]),
        ("get", "leases.coordination.k8s.io/datadump-operator", &[]),
        ("patch", "leases.coordination.k8s.io/datadump-operator", &[]),
    ];
    for (verb, resource, extra) in granted {
        assert_eq!(can(verb, resource, extra), "yes", "{verb} {resource} {extra:?}");
    }
    let other_ns = ["-n", "default"];
    let refused = [
        ("update", "datadumps.datadump.dev", &status[..]),
        ("create", "datadumpschedules.datadump.dev", &[]),
        ("delete", "datadumpschedules.datadump.dev", &[]),
        ("patch", "datadumpschedules.datadump.dev", &[]),
        ("update", "datadumpschedules.datadump.dev", &["--subresource=finalizers"]),
        ("list", "secrets", &[]),
        ("get", "secrets", &other_ns),
        ("list", "datadumps.datadump.dev", &other_ns),
        ("patch", "leases.coordination.k8s.io/someone-elses", &[]),
        ("get", "pods", &[]),
        ("create", "events", &[]),
    ];
    for (verb, resource, extra) in refused {
        assert_eq!(can(verb, resource, extra), "no", "{verb} {resource} {extra:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_watch_is_reopened_and_new_objects_are_seen() {
    let mut w = World::start().await;
    w.start_controller(&[]);
    crate::soak::wait_ready(&w).await;
    let watches = || {
        w.kube
            .proxy
            .requests()
            .iter()
            .filter(|r| r.verb == "watch" && r.resource == "datadumps")
            .count()
    };
    let before = watches();
    assert!(before >= 1, "the controller watches DataDumps through the proxy");
    for round in 1..=3 {
        let seen = watches();
        w.kube.proxy.drop_watches();
        wait_for(&format!("watch reopened after drop {round}"), Duration::from_secs(60), || {
            let n = watches();
            async move { (n > seen).then_some(()) }
        })
        .await;
    }
    w.create("after-drops", "mediaTypes: [image]").await;
    w.wait_dump("after-drops", "running after three dropped watches", |d| {
        media_phase(d, "image") == Some(datadump::api::MediaPhase::Running)
    })
    .await;
    assert!(!w.logs().contains("panicked"));
}
