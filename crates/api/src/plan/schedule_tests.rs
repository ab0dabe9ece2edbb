//! Table-style tests of the schedule planner: each step feeds a schedule, the DataDumps it owns
//! and a time, and checks the actions, the status and the Events a user would see.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::schedule::*;
use super::{Note, NoteKind};
use crate::{DataDumpSchedule, DumpPhase, SiteDefaults};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// A schedule created at `created`, with extra spec fields (YAML lines).
fn sched(extra: &str, created: &str) -> DataDumpSchedule {
    let yaml = format!(
        "apiVersion: datadump.dev/v1alpha1\nkind: DataDumpSchedule\nmetadata:\n  name: nightly\n  namespace: data\n  uid: 0b6e2c1a-1111-2222-3333-444455556666\n  generation: 1\nspec:\n  template:\n    mediaTypes: [image]\n    destination: {{bucket: my-datasets}}\n    database: {{ssmParameterName: /datadump/db}}\n    instance: {{iamInstanceProfile: worker}}\n{extra}"
    );
    let mut s: DataDumpSchedule = serde_yaml::from_str(&yaml).unwrap();
    s.metadata.creation_timestamp = Some(Time(ts(created)));
    s
}

/// The schedule as the API server holds it after the controller wrote the plan's status.
fn persist(mut s: DataDumpSchedule, p: &SchedulePlan) -> DataDumpSchedule {
    s.status = Some(p.status.clone());
    s
}

fn dump(name: &str, scheduled: &str, phase: Option<DumpPhase>) -> OwnedDump {
    OwnedDump {
        name: name.into(),
        scheduled_time: Some(ts(scheduled)),
        created: Some(ts(scheduled)),
        phase,
        completion_time: phase
            .filter(|p| p.is_terminal())
            .map(|_| ts(scheduled) + jiff::SignedDuration::from_secs(30)),
        deleting: false,
    }
}

fn plan(s: &DataDumpSchedule, dumps: &[OwnedDump], now: &str) -> SchedulePlan {
    plan_schedule(s, dumps, &SiteDefaults::default(), ts(now))
}

fn creates(p: &SchedulePlan) -> Vec<(String, String, String)> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            ScheduleAction::Create {
                name,
                scheduled_time,
                date,
            } => Some((name.clone(), scheduled_time.to_string(), date.clone())),
            _ => None,
        })
        .collect()
}

fn deletes(p: &SchedulePlan) -> Vec<(String, DeleteReason)> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            ScheduleAction::Delete { name, reason } => Some((name.clone(), *reason)),
            _ => None,
        })
        .collect()
}

fn reasons(p: &SchedulePlan) -> Vec<&str> {
    p.notes.iter().map(|n| n.reason.as_str()).collect()
}

fn note<'a>(p: &'a SchedulePlan, reason: &str) -> &'a Note {
    p.notes
        .iter()
        .find(|n| n.reason == reason)
        .unwrap_or_else(|| panic!("no {reason} in {:?}", p.notes))
}

const EVERY_MINUTE: &str = "  schedule: '* * * * *'\n";

#[test]
fn names_are_the_schedule_and_the_utc_minute() {
    assert_eq!(dump_name("nightly", ts("2026-11-27T10:01:00Z")), "nightly-202611271001");
}

#[test]
fn one_dump_per_due_time_then_nothing_until_the_next() {
    let s = sched(EVERY_MINUTE, "2026-11-27T10:00:30Z");
    // created mid-minute: nothing due yet; wake at the next minute
    let p = plan(&s, &[], "2026-11-27T10:00:50Z");
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(p.requeue_after, Some(Duration::from_secs(10)));
    assert_eq!(p.status.conditions[0].status, "True");

    let p = plan(&s, &[], "2026-11-27T10:01:05Z");
    assert_eq!(
        creates(&p),
        [("nightly-202611271001".into(), "2026-11-27T10:01:00Z".into(), "2026-11-27".into())]
    );
    assert_eq!(reasons(&p), ["Created"]);
    assert_eq!(p.status.last_schedule_time, Some(ts("2026-11-27T10:01:00Z")));
    assert_eq!(p.status.active_count, 1);
    assert_eq!(p.status.active[0].name, "nightly-202611271001");

    // the status is written: the same minute plans nothing more
    let s = persist(s, &p);
    let running = [dump("nightly-202611271001", "2026-11-27T10:01:00Z", Some(DumpPhase::Running))];
    let p = plan(&s, &running, "2026-11-27T10:01:40Z");
    assert!(p.actions.is_empty() && p.notes.is_empty(), "{p:?}");
    assert_eq!(p.status.active_count, 1);
    assert_eq!(p.requeue_after, Some(Duration::from_secs(20)));
}

#[test]
fn a_restart_between_create_and_status_write_creates_nothing_twice() {
    let s = sched(EVERY_MINUTE, "2026-11-27T10:00:30Z");
    let p = plan(&s, &[], "2026-11-27T10:01:05Z");
    assert_eq!(creates(&p).len(), 1);
    // the DataDump was created, the status write was lost; the next plan finds the DataDump
    let created = [dump("nightly-202611271001", "2026-11-27T10:01:00Z", None)];
    let p = plan(&s, &created, "2026-11-27T10:01:08Z");
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(p.status.last_schedule_time, Some(ts("2026-11-27T10:01:00Z")));
    assert_eq!(p.status.active[0].name, "nightly-202611271001");
}

#[test]
fn missed_times_run_once_with_an_event() {
    let s = sched(EVERY_MINUTE, "2026-11-27T10:00:30Z");
    let s = persist(s.clone(), &plan(&s, &[], "2026-11-27T10:01:05Z"));
    let done = [dump("nightly-202611271001", "2026-11-27T10:01:00Z", Some(DumpPhase::Succeeded))];
    // the controller was away from 10:01 to 10:05:10: 10:02, 10:03, 10:04 missed, 10:05 runs
    let p = plan(&s, &done, "2026-11-27T10:05:10Z");
    assert_eq!(
        creates(&p),
        [("nightly-202611271005".into(), "2026-11-27T10:05:00Z".into(), "2026-11-27".into())]
    );
    let missed = note(&p, "MissedSchedule");
    assert_eq!(missed.kind, NoteKind::Warning);
    assert!(missed.message.starts_with("3 earlier"), "{}", missed.message);
}

#[test]
fn a_passed_starting_deadline_skips_the_run_and_says_so_once() {
    let s = sched(
        "  schedule: '*/10 * * * *'\n  startingDeadlineSeconds: 60\n",
        "2026-11-27T09:55:00Z",
    );
    let p = plan(&s, &[], "2026-11-27T10:00:30Z");
    assert_eq!(creates(&p).len(), 1, "30 s late is within the deadline");
    let s = persist(s, &p);
    let done = [dump("nightly-202611271000", "2026-11-27T10:00:00Z", Some(DumpPhase::Succeeded))];
    let p = plan(&s, &done, "2026-11-27T10:12:00Z");
    assert!(creates(&p).is_empty(), "120 s late is past the deadline");
    assert_eq!(p.status.last_missed_time, Some(ts("2026-11-27T10:10:00Z")));
    assert_eq!(p.status.last_schedule_time, Some(ts("2026-11-27T10:00:00Z")));
    assert!(note(&p, "MissedSchedule").message.contains("startingDeadlineSeconds"));
    let s = persist(s, &p);
    let p = plan(&s, &done, "2026-11-27T10:13:00Z");
    assert!(p.actions.is_empty() && p.notes.is_empty(), "said once: {p:?}");
    // the next time runs as usual
    let p = plan(&s, &done, "2026-11-27T10:20:05Z");
    assert_eq!(creates(&p)[0].0, "nightly-202611271020");
}

#[test]
fn concurrency_policies() {
    let running = [dump("nightly-202611271001", "2026-11-27T10:01:00Z", Some(DumpPhase::Running))];
    // (policy, creates, deletes, active afterwards)
    type Row = (&'static str, usize, Vec<(String, DeleteReason)>, usize);
    let table: [Row; 3] = [
        ("Forbid", 0, vec![], 1),
        ("Replace", 1, vec![("nightly-202611271001".into(), DeleteReason::Replaced)], 1),
        ("Allow", 1, vec![], 2),
    ];
    for (policy, n_creates, want_deletes, n_active) in table {
        let s = sched(&format!("{EVERY_MINUTE}  concurrencyPolicy: {policy}\n"), "2026-11-27T10:00:30Z");
        let s = persist(s.clone(), &plan(&s, &[], "2026-11-27T10:01:05Z"));
        let p = plan(&s, &running, "2026-11-27T10:02:05Z");
        assert_eq!(creates(&p).len(), n_creates, "{policy}");
        assert_eq!(deletes(&p), want_deletes, "{policy}");
        assert_eq!(p.status.active_count as usize, n_active, "{policy}");
        if policy == "Replace" {
            assert!(matches!(p.actions[0], ScheduleAction::Delete { .. }), "delete before create");
            assert!(reasons(&p).contains(&"Replaced"));
        }
        if policy == "Forbid" {
            assert_eq!(reasons(&p), ["AlreadyActive"]);
            assert_eq!(p.status.last_schedule_time, Some(ts("2026-11-27T10:01:00Z")), "still due");
            assert_eq!(p.status.waiting_schedule_time, Some(ts("2026-11-27T10:02:00Z")));
            // said once
            let waiting = persist(s.clone(), &p);
            let again = plan(&waiting, &running, "2026-11-27T10:02:30Z");
            assert!(again.actions.is_empty() && again.notes.is_empty(), "{again:?}");
            // once the running one ends, the waiting run starts (within the deadline)
            let done = [dump("nightly-202611271001", "2026-11-27T10:01:00Z", Some(DumpPhase::Succeeded))];
            let p = plan(&waiting, &done, "2026-11-27T10:02:40Z");
            assert_eq!(creates(&p)[0].0, "nightly-202611271002");
            assert_eq!(p.status.waiting_schedule_time, None);
        }
    }
}

#[test]
fn history_limits_prune_the_oldest_finished_dumps() {
    let s = sched(
        &format!("{EVERY_MINUTE}  successfulDumpsHistoryLimit: 2\n  failedDumpsHistoryLimit: 1\n"),
        "2026-11-27T09:00:00Z",
    );
    let mut dumps = Vec::new();
    for (m, phase) in [
        (1, DumpPhase::Succeeded),
        (2, DumpPhase::Failed),
        (3, DumpPhase::Succeeded),
        (4, DumpPhase::Failed),
        (5, DumpPhase::Succeeded),
        (6, DumpPhase::Running),
    ] {
        dumps.push(dump(
            &format!("nightly-20261127100{m}"),
            &format!("2026-11-27T10:0{m}:00Z"),
            Some(phase),
        ));
    }
    dumps[0].deleting = false;
    let mut s = s;
    s.status = Some(crate::DataDumpScheduleStatus {
        last_schedule_time: Some(ts("2026-11-27T10:06:00Z")),
        ..Default::default()
    });
    let p = plan(&s, &dumps, "2026-11-27T10:06:30Z");
    assert_eq!(
        deletes(&p),
        [
            ("nightly-202611271001".into(), DeleteReason::HistoryLimit),
            ("nightly-202611271002".into(), DeleteReason::HistoryLimit),
        ]
    );
    assert_eq!(p.status.last_successful_time, Some(ts("2026-11-27T10:05:30Z")));
    assert_eq!(p.status.active_count, 1);
    // one already on its way out is not deleted again, nor counted
    dumps[0].deleting = true;
    dumps[1].deleting = true;
    let p = plan(&s, &dumps, "2026-11-27T10:06:40Z");
    assert!(deletes(&p).is_empty(), "{:?}", deletes(&p));
}

#[test]
fn suspend_starts_nothing_and_resume_runs_only_the_latest() {
    let s = sched(&format!("{EVERY_MINUTE}  suspend: true\n"), "2026-11-27T10:00:30Z");
    let p = plan(&s, &[], "2026-11-27T10:03:05Z");
    assert!(p.actions.is_empty() && p.notes.is_empty(), "{p:?}");
    assert_eq!(p.requeue_after, None);
    let mut s = persist(s, &p);
    s.spec.suspend = false;
    let p = plan(&s, &[], "2026-11-27T10:03:10Z");
    assert_eq!(creates(&p)[0].0, "nightly-202611271003");
}

#[test]
fn an_invalid_spec_creates_nothing_and_says_why_once() {
    let s = sched("  schedule: '* * *'\n", "2026-11-27T10:00:30Z");
    let p = plan(&s, &[], "2026-11-27T10:05:00Z");
    assert!(p.actions.is_empty());
    let c = &p.status.conditions[0];
    assert_eq!(
        (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
        ("SpecValid", "False", "InvalidSpec")
    );
    assert!(c.message.contains("spec.schedule"), "{}", c.message);
    assert_eq!(reasons(&p), ["InvalidSpec"]);
    let s = persist(s, &p);
    assert!(plan(&s, &[], "2026-11-27T10:06:00Z").notes.is_empty());
}

/// Time zones: the run fires at the right instant, and its DATE is the local date, across
/// daylight-saving changes. Each row: zone, schedule, last run, now → the run created (UTC
/// instant and DATE), or none.
#[test]
fn time_zones_and_daylight_saving_changes() {
    type Row = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        Option<(&'static str, &'static str)>,
    );
    let table: &[Row] = &[
        // New York springs forward at 02:00 EST on 2026-03-08: 02:30 does not exist that day
        // and runs at the first minute after the gap, 03:00 EDT (07:00Z)
        (
            "America/New_York",
            "30 2 * * *",
            "2026-03-07T07:30:00Z",
            "2026-03-08T06:59:00Z",
            None,
        ),
        (
            "America/New_York",
            "30 2 * * *",
            "2026-03-07T07:30:00Z",
            "2026-03-08T07:00:30Z",
            Some(("2026-03-08T07:00:00Z", "2026-03-08")),
        ),
        // the day after, 02:30 EDT is 06:30Z
        (
            "America/New_York",
            "30 2 * * *",
            "2026-03-08T07:00:00Z",
            "2026-03-09T06:30:10Z",
            Some(("2026-03-09T06:30:00Z", "2026-03-09")),
        ),
        // falls back at 02:00 EDT on 2026-11-01: 01:30 happens twice and runs once, the first
        // time (EDT, 05:30Z)
        (
            "America/New_York",
            "30 1 * * *",
            "2026-10-31T05:30:00Z",
            "2026-11-01T05:30:05Z",
            Some(("2026-11-01T05:30:00Z", "2026-11-01")),
        ),
        (
            "America/New_York",
            "30 1 * * *",
            "2026-11-01T05:30:00Z",
            "2026-11-01T06:30:05Z",
            None,
        ),
        (
            "America/New_York",
            "30 1 * * *",
            "2026-11-01T05:30:00Z",
            "2026-11-02T06:30:05Z",
            Some(("2026-11-02T06:30:00Z", "2026-11-02")),
        ),
        // Berlin: monthly at local midnight; April 1st CEST starts on March 31st in UTC, and the
        // DATE is the local one
        ("Europe/Berlin", "@monthly", "2026-03-01T00:00:00Z", "2026-03-31T21:59:00Z", None),
        (
            "Europe/Berlin",
            "@monthly",
            "2026-03-01T00:00:00Z",
            "2026-03-31T22:00:01Z",
            Some(("2026-03-31T22:00:00Z", "2026-04-01")),
        ),
        // Berlin's spring-forward night (2026-03-29, 02:00 → 03:00): daily at 02:15 runs at 03:00
        (
            "Europe/Berlin",
            "15 2 * * *",
            "2026-03-28T01:15:00Z",
            "2026-03-29T01:00:30Z",
            Some(("2026-03-29T01:00:00Z", "2026-03-29")),
        ),
        // a half-hour zone
        (
            "Asia/Kolkata",
            "0 0 * * *",
            "2026-11-26T18:30:00Z",
            "2026-11-27T18:30:00Z",
            Some(("2026-11-27T18:30:00Z", "2026-11-28")),
        ),
        // UTC, no zone given
        (
            "",
            "0 3 1 * *",
            "2026-11-01T03:00:00Z",
            "2026-12-01T03:00:00Z",
            Some(("2026-12-01T03:00:00Z", "2026-12-01")),
        ),
    ];
    for (zone, schedule, last, now, want) in table {
        let tz = if zone.is_empty() {
            String::new()
        } else {
            format!("  timeZone: {zone}\n")
        };
        let mut s = sched(&format!("  schedule: '{schedule}'\n{tz}"), "2026-01-01T00:00:00Z");
        s.status = Some(crate::DataDumpScheduleStatus {
            last_schedule_time: Some(ts(last)),
            ..Default::default()
        });
        let p = plan(&s, &[], now);
        let got: Vec<(String, String)> = creates(&p).into_iter().map(|(_, t, d)| (t, d)).collect();
        let want: Vec<(String, String)> = want.iter().map(|(t, d)| (t.to_string(), d.to_string())).collect();
        assert_eq!(got, want, "{zone} {schedule} last {last} now {now}");
        assert!(
            p.notes.iter().all(|n| n.reason != "MissedSchedule"),
            "{zone} {schedule}: {:?}",
            p.notes
        );
    }
}

#[test]
fn the_wake_up_lands_on_the_instant_after_the_gap() {
    let mut s = sched("  schedule: '30 2 * * *'\n  timeZone: America/New_York\n", "2026-01-01T00:00:00Z");
    s.status = Some(crate::DataDumpScheduleStatus {
        last_schedule_time: Some(ts("2026-03-07T07:30:00Z")),
        ..Default::default()
    });
    let p = plan(&s, &[], "2026-03-08T06:00:00Z");
    assert_eq!(p.requeue_after, Some(Duration::from_secs(3600)));
}

#[test]
fn a_year_of_missed_minutes_is_counted_up_to_a_bound_and_planned_quickly() {
    let mut s = sched(EVERY_MINUTE, "2025-01-01T00:00:00Z");
    s.status = Some(crate::DataDumpScheduleStatus {
        last_schedule_time: Some(ts("2025-11-27T10:00:00Z")),
        ..Default::default()
    });
    let started = std::time::Instant::now();
    let p = plan(&s, &[], "2026-11-27T10:00:30Z");
    let took = started.elapsed();
    eprintln!("plan_schedule after a year of missed minutes: {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert_eq!(
        creates(&p),
        [("nightly-202611271000".into(), "2026-11-27T10:00:00Z".into(), "2026-11-27".into())]
    );
    assert!(note(&p, "MissedSchedule").message.starts_with("more than 100"), "{:?}", p.notes);
}
