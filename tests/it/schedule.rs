//! DataDumpSchedules end to end: the real `datadump controller` (both controllers in one
//! process) as the chart's ServiceAccount against the real API server and moto, with a test
//! clock: the controller reads the schedules' "now" from a file (`DATADUMP_TEST_CLOCK_FILE`,
//! hidden from `--help`) that the test moves minute by minute, so an every-minute schedule fires
//! on the test's command instead of the wall clock's. The DataDumps it creates run on the real
//! clock as usual.

use std::time::Duration;

use datadump::api::{DataDump, DataDumpSchedule, DumpPhase, MediaPhase};
use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::cluster::World;
use crate::support::net::wait_for;

/// The DataDump template every schedule here uses: one media type, no retry.
const TEMPLATE: &str = "mediaTypes: [image]\ndestination: {bucket: datasets}\ndatabase: {connectionSecretRef: {name: catalog-db, key: connectionString}}\ninstance: {iamInstanceProfile: datadump-worker, instanceType: t4g.nano, ebsVolumeSizeGb: 8}\nbackoffLimit: 0\n";

/// The world's test clock file.
pub(crate) fn clock_file(w: &World) -> std::path::PathBuf {
    w.dir.path().join("clock")
}

/// Sets the controller's schedule clock.
pub(crate) fn set_clock(w: &World, t: Timestamp) {
    let file = clock_file(w);
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, t.to_string()).unwrap();
    std::fs::rename(tmp, file).unwrap();
}

/// Starts a controller on the test clock (set to long ago first, so nothing is due until the
/// test says so), with extra `env`.
pub(crate) fn start_on_test_clock(w: &mut World, env: &[(&str, &str)]) -> usize {
    if !clock_file(w).exists() {
        set_clock(w, "2000-01-01T00:00:00Z".parse().unwrap());
    }
    let file = clock_file(w).display().to_string();
    let mut all = vec![("DATADUMP_TEST_CLOCK_FILE", file.as_str())];
    all.extend_from_slice(env);
    w.start_controller(&all)
}

pub(crate) fn schedules(w: &World) -> Api<DataDumpSchedule> {
    Api::namespaced(w.client.clone(), &w.ns)
}

/// Creates a schedule with the template and `extra` spec fields (YAML); returns it and the first
/// minute boundary after its creation (its first due time).
pub(crate) async fn create_schedule(w: &World, name: &str, extra: &str) -> (DataDumpSchedule, Timestamp) {
    let mut spec: serde_json::Value = serde_yaml::from_str(&format!("schedule: '* * * * *'\n{extra}")).unwrap();
    spec["template"] = serde_yaml::from_str(TEMPLATE).unwrap();
    let obj = json!({"apiVersion": "datadump.dev/v1alpha1", "kind": "DataDumpSchedule", "metadata": {"name": name, "namespace": w.ns}, "spec": spec});
    let s: DataDumpSchedule = serde_json::from_value(obj).unwrap();
    let s = schedules(w).create(&PostParams::default(), &s).await.unwrap();
    let created = s.metadata.creation_timestamp.as_ref().unwrap().0;
    let first = Timestamp::from_second(created.as_second() - created.as_second().rem_euclid(60) + 60).unwrap();
    (s, first)
}

/// `t` plus `secs` seconds.
pub(crate) fn plus(t: Timestamp, secs: i64) -> Timestamp {
    t + SignedDuration::from_secs(secs)
}

/// The DataDumps a schedule created, by name.
pub(crate) async fn dumps_of(w: &World, schedule: &str) -> Vec<DataDump> {
    let mut v = w
        .dumps()
        .list(&ListParams::default().labels(&format!("datadump.dev/schedule={schedule}")))
        .await
        .unwrap()
        .items;
    v.sort_by_key(|d| d.name_any());
    v
}

/// Waits until the schedule's DataDumps satisfy `pred`.
pub(crate) async fn wait_dumps(w: &World, schedule: &str, what: &str, pred: impl Fn(&[DataDump]) -> bool) -> Vec<DataDump> {
    let pred = std::sync::Arc::new(pred);
    wait_for(what, Duration::from_secs(90), || {
        let pred = pred.clone();
        async move {
            let v = dumps_of(w, schedule).await;
            pred(&v).then_some(v)
        }
    })
    .await
}

/// Waits until the schedule satisfies `pred`.
async fn wait_schedule(w: &World, name: &str, what: &str, pred: impl Fn(&DataDumpSchedule) -> bool) -> DataDumpSchedule {
    let pred = std::sync::Arc::new(pred);
    let api = schedules(w);
    wait_for(what, Duration::from_secs(90), || {
        let (pred, api) = (pred.clone(), api.clone());
        async move { api.get_opt(name).await.unwrap().filter(|s| pred(s)) }
    })
    .await
}

fn names(dumps: &[DataDump]) -> Vec<String> {
    dumps.iter().map(|d| d.name_any()).collect()
}

fn run_name(schedule: &str, t: Timestamp) -> String {
    format!("{schedule}-{}", t.strftime("%Y%m%d%H%M"))
}

fn image_phase(d: &DataDump) -> Option<MediaPhase> {
    d.status.as_ref().and_then(|s| s.media("image")).map(|m| m.phase)
}

/// Holds for `secs` seconds that `pred` stays true of the schedule's DataDumps (nothing more is
/// created meanwhile).
async fn stays(w: &World, schedule: &str, secs: u64, pred: impl Fn(&[DataDump]) -> bool) {
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        let v = dumps_of(w, schedule).await;
        assert!(pred(&v), "{schedule}: {:?}", names(&v));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_dump_per_due_time_and_none_doubled_across_a_restart_at_creation() {
    let mut w = World::start().await;
    // the first controller crashes right after creating a DataDump, before the status write
    let first = start_on_test_clock(&mut w, &[("DATADUMP_FAIL_AT", "after-schedule-create")]);
    let (s, m1) = create_schedule(&w, "minutely", "concurrencyPolicy: Allow\ntimeZone: Asia/Tokyo").await;
    stays(&w, "minutely", 2, |v| v.is_empty()).await;
    set_clock(&w, plus(m1, 1));
    assert_eq!(w.wait_controller_exit(first).await, Some(86), "crashed after the create");
    let v = dumps_of(&w, "minutely").await;
    assert_eq!(names(&v), [run_name("minutely", m1)]);
    assert!(
        schedules(&w)
            .get("minutely")
            .await
            .unwrap()
            .status
            .and_then(|s| s.last_schedule_time)
            .is_none(),
        "status not written"
    );

    // the restarted controller finds the DataDump: still one for that time
    start_on_test_clock(&mut w, &[]);
    wait_schedule(&w, "minutely", "lastScheduleTime = m1", |s| {
        s.status.as_ref().and_then(|s| s.last_schedule_time) == Some(m1)
    })
    .await;
    let v = dumps_of(&w, "minutely").await;
    assert_eq!(names(&v), [run_name("minutely", m1)], "no second DataDump for the same time");
    let d = &v[0];
    let owner = &d.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("DataDumpSchedule", "minutely", Some(true))
    );
    assert_eq!(owner.uid, s.uid().unwrap());
    // the DATE is the scheduled time's date in the schedule's zone
    let tokyo_date = m1.to_zoned(jiff::tz::TimeZone::get("Asia/Tokyo").unwrap()).date().to_string();
    assert_eq!(d.spec.date.as_deref(), Some(tokyo_date.as_str()));
    assert_eq!(d.annotations()["datadump.dev/scheduled-time"], m1.to_string());
    let d = w
        .wait_dump(&d.name_any(), "the run's DataDump started", |d| {
            image_phase(d) == Some(MediaPhase::Running)
        })
        .await;
    assert_eq!(d.status.as_ref().unwrap().dump_date.as_deref(), Some(tokyo_date.as_str()));

    // the next minute: one more; later in that minute: nothing more
    set_clock(&w, plus(m1, 61));
    wait_dumps(&w, "minutely", "the second run", |v| v.len() == 2).await;
    set_clock(&w, plus(m1, 100));
    stays(&w, "minutely", 3, |v| v.len() == 2).await;
    let s = wait_schedule(&w, "minutely", "two active", |s| {
        s.status.as_ref().is_some_and(|s| s.active_count == 2)
    })
    .await;
    let status = s.status.unwrap();
    assert_eq!(status.last_schedule_time, Some(plus(m1, 60)));
    assert_eq!(status.condition("SpecValid").unwrap().status, "True");

    let reasons: Vec<String> = w.events().await.into_iter().map(|e| e.0).collect();
    // (the first run's Event went with the crashed controller)
    assert!(reasons.iter().any(|r| r == "Created"), "{reasons:?}");
    let out = crate::support::kube::kubectl_run(&w.kubeconfig, &["get", "dds"], "");
    let text = String::from_utf8_lossy(&out.stdout);
    for column in ["SCHEDULE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE", "minutely", "* * * * *"] {
        assert!(text.contains(column), "{column} in: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    let out = crate::support::kube::kubectl_run(&w.kubeconfig, &["explain", "datadumpschedule.spec"], "");
    let text = String::from_utf8_lossy(&out.stdout);
    for field in [
        "schedule",
        "timeZone",
        "template",
        "concurrencyPolicy",
        "startingDeadlineSeconds",
        "suspend",
        "successfulDumpsHistoryLimit",
        "failedDumpsHistoryLimit",
    ] {
        assert!(text.contains(field), "kubectl explain lists {field}: {text}");
    }
    for d in dumps_of(&w, "minutely").await {
        w.delete(&d.name_any()).await;
        w.assert_nothing_left_running(&d.uid().unwrap()).await;
    }
}

/// What the API server refuses at apply time (schema and CEL), before any controller looks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_refuses_bad_schedules_naming_the_field() {
    let w = World::start().await;
    let cases = [
        ("ok", "schedule: '0 3 1 * *'", None),
        ("cron-shape", "schedule: 'every monday'", Some("spec.schedule")),
        ("zone-shape", "timeZone: 'Europe Berlin'", Some("spec.timeZone")),
        ("policy", "concurrencyPolicy: Sometimes", Some("spec.concurrencyPolicy")),
        ("deadline", "startingDeadlineSeconds: -5", Some("spec.startingDeadlineSeconds")),
        (
            "history",
            "successfulDumpsHistoryLimit: 101",
            Some("spec.successfulDumpsHistoryLimit"),
        ),
        ("dated", "template: {date: '2026-11-01'}", Some("spec.template.date must be unset")),
        (&"n".repeat(53), "schedule: '0 3 1 * *'", Some("at most 52 characters")),
    ];
    for (name, extra, refused) in cases {
        let mut spec: serde_json::Value = serde_yaml::from_str("schedule: '@monthly'").unwrap();
        spec["template"] = serde_yaml::from_str(TEMPLATE).unwrap();
        let over: serde_json::Value = serde_yaml::from_str(extra).unwrap();
        for (k, v) in over.as_object().unwrap() {
            if k == "template" {
                for (tk, tv) in v.as_object().unwrap() {
                    spec["template"][tk] = tv.clone();
                }
            } else {
                spec[k] = v.clone();
            }
        }
        let obj = json!({"apiVersion": "datadump.dev/v1alpha1", "kind": "DataDumpSchedule", "metadata": {"name": name}, "spec": spec});
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(w.client.clone(), &w.ns, &kube::api::ApiResource::erase::<DataDumpSchedule>(&()));
        let object: kube::api::DynamicObject = serde_json::from_value(obj).unwrap();
        let result = api.create(&PostParams::default(), &object).await;
        match (refused, result) {
            (None, Ok(_)) => {}
            (None, Err(e)) => panic!("{name}: refused: {e}"),
            (Some(_), Ok(_)) => panic!("{name}: accepted {extra}"),
            (Some(text), Err(e)) => assert!(e.to_string().contains(text), "{name}: {e} should name {text}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbid_skips_while_one_runs_and_replace_deletes_the_running_one() {
    let mut w = World::start().await;
    start_on_test_clock(&mut w, &[]);
    let (_, m1) = create_schedule(&w, "forbid", "").await;
    let (_, r1) = create_schedule(&w, "replace", "concurrencyPolicy: Replace").await;
    let m1 = m1.max(r1);
    set_clock(&w, plus(m1, 1));
    let first_forbid = wait_dumps(&w, "forbid", "forbid's first run", |v| v.len() == 1).await;
    let first_replace = wait_dumps(&w, "replace", "replace's first run", |v| v.len() == 1).await;
    for d in [&first_forbid[0], &first_replace[0]] {
        w.wait_dump(&d.name_any(), "running", |d| image_phase(d) == Some(MediaPhase::Running))
            .await;
    }
    let replaced_uid = first_replace[0].uid().unwrap();
    assert_eq!(w.instances(&replaced_uid).await.len(), 1);

    set_clock(&w, plus(m1, 61));
    // Replace: the running one is deleted (its worker terminated), the new one runs
    let v = wait_dumps(&w, "replace", "replaced", |v| names(v) == [run_name("replace", plus(m1, 60))]).await;
    w.wait_dump(&v[0].name_any(), "the new run running", |d| {
        image_phase(d) == Some(MediaPhase::Running)
    })
    .await;
    w.assert_nothing_left_running(&replaced_uid).await;
    assert_eq!(w.instances(&replaced_uid).await.len(), 1, "one instance, terminated");
    // Forbid: still the first one only
    stays(&w, "forbid", 3, |v| names(v) == names(&first_forbid)).await;
    let reasons: Vec<String> = w.events().await.into_iter().map(|e| e.0).collect();
    assert!(reasons.iter().any(|r| r == "AlreadyActive"), "{reasons:?}");
    assert!(reasons.iter().any(|r| r == "Replaced"), "{reasons:?}");

    // once Forbid's run ends, the waiting time runs
    let d = w.dumps().get(&first_forbid[0].name_any()).await.unwrap();
    w.write_success(&d, "image", &[1]).await;
    let v = wait_dumps(&w, "forbid", "the waiting run", |v| v.len() == 2).await;
    assert_eq!(names(&v)[1], run_name("forbid", plus(m1, 60)));
    for d in dumps_of(&w, "forbid").await.into_iter().chain(dumps_of(&w, "replace").await) {
        w.delete(&d.name_any()).await;
        w.assert_nothing_left_running(&d.uid().unwrap()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_limits_prune_and_suspend_stops_new_runs() {
    let mut w = World::start().await;
    start_on_test_clock(&mut w, &[]);
    let (_, m1) = create_schedule(
        &w,
        "kept",
        "concurrencyPolicy: Allow\nsuccessfulDumpsHistoryLimit: 1\nfailedDumpsHistoryLimit: 0",
    )
    .await;
    // run 1 fails, run 2 and 3 succeed
    for (n, ok) in [(0, false), (1, true), (2, true)] {
        let t = plus(m1, 60 * n);
        set_clock(&w, plus(t, 1));
        let name = run_name("kept", t);
        // runs on one day share the DATE folder: a later one finds the earlier `_success` and
        // succeeds without launching
        let d = w
            .wait_dump(&name, "running or done", |d| {
                image_phase(d) == Some(MediaPhase::Running) || image_phase(d) == Some(MediaPhase::Succeeded)
            })
            .await;
        if ok {
            if image_phase(&d) == Some(MediaPhase::Running) {
                w.write_success(&d, "image", &[2]).await;
            }
            w.wait_dump(&name, "Succeeded", |d| {
                d.status.as_ref().is_some_and(|s| s.phase == DumpPhase::Succeeded)
            })
            .await;
        } else {
            w.write_failure(&d, "image", "ERROR: relation \"image\" does not exist").await;
        }
    }
    // the failed one (limit 0) and the older success (limit 1) are deleted; their data stays
    let v = wait_dumps(&w, "kept", "pruned to the newest success", |v| v.len() == 1).await;
    assert_eq!(names(&v), [run_name("kept", plus(m1, 120))]);
    let s = wait_schedule(&w, "kept", "lastSuccessfulTime", |s| {
        s.status
            .as_ref()
            .is_some_and(|s| s.last_successful_time.is_some() && s.active_count == 0)
    })
    .await;
    assert!(s.status.unwrap().last_successful_time.is_some());
    let keys = w.keys().await;
    assert!(keys.iter().any(|k| k.ends_with("image/image_01.parquet")), "{keys:?}");

    // suspended: the next minutes start nothing
    schedules(&w)
        .patch("kept", &PatchParams::default(), &Patch::Merge(json!({"spec": {"suspend": true}})))
        .await
        .unwrap();
    wait_schedule(&w, "kept", "suspend seen", |s| {
        s.status.as_ref().and_then(|s| s.observed_generation) == Some(2)
    })
    .await;
    set_clock(&w, plus(m1, 181));
    stays(&w, "kept", 3, |v| v.len() == 1).await;
    set_clock(&w, plus(m1, 241));
    stays(&w, "kept", 3, |v| v.len() == 1).await;
    let s = schedules(&w).get("kept").await.unwrap();
    assert_eq!(s.status.unwrap().last_schedule_time, Some(plus(m1, 120)));
    // resumed: only the latest due time runs, with a MissedSchedule Event for the one before
    schedules(&w)
        .patch("kept", &PatchParams::default(), &Patch::Merge(json!({"spec": {"suspend": false}})))
        .await
        .unwrap();
    // (it finds the day's `_success` and succeeds at once: the older success is pruned)
    let latest = [run_name("kept", plus(m1, 240))];
    wait_dumps(&w, "kept", "the latest time after resume, alone", |v| names(v) == latest).await;
    stays(&w, "kept", 2, |v| names(v) == latest).await;
    assert!(w.events().await.iter().any(|(r, _)| r == "MissedSchedule"));
    for d in dumps_of(&w, "kept").await {
        w.delete(&d.name_any()).await;
        w.assert_nothing_left_running(&d.uid().unwrap()).await;
    }
}
