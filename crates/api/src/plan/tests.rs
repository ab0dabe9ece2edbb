//! Table-style tests of the planner: each step feeds an object and observations, and checks the
//! actions, the status and the events a user would see.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::*;
use crate::{AttemptOutcome, COMPLETE, DataDump, DumpPhase, FAILED, MediaPhase, MediaType, SPEC_VALID};

const UID: &str = "0b6e2c1a-1111-2222-3333-444455556666";

fn t0() -> Timestamp {
    "2026-11-23T22:00:00Z".parse().unwrap()
}

fn at(secs: i64) -> Timestamp {
    t0() + SignedDuration::from_secs(secs)
}

fn dd(extra: &str) -> DataDump {
    let yaml = format!(
        "apiVersion: datadump.dev/v1alpha1\nkind: DataDump\nmetadata:\n  name: catalog\n  namespace: data\n  uid: {UID}\n  generation: 1\n  finalizers: [{FINALIZER}]\nspec:\n  mediaTypes: [image, audio]\n  destination: {{bucket: my-datasets}}\n  database: {{connectionSecretRef: {{name: db, key: conn}}}}\n  instance: {{iamInstanceProfile: worker}}\n  timeout: 10h\n{extra}"
    );
    serde_yaml::from_str(&yaml).unwrap()
}

/// The controller's context: a worker binary for aarch64 (the built-in m7g.xlarge) only.
fn ctx() -> PlanContext {
    PlanContext {
        poll_interval: Duration::from_secs(30),
        launcher: crate::plan::Launcher::Bootstrap(vec![datadump_contract::Arch::Aarch64]),
        ..Default::default()
    }
}

/// What the API server would hold after the driver wrote the plan's status.
fn persist(mut dd: DataDump, p: &Plan) -> DataDump {
    if let Some(s) = &p.status {
        dd.status = Some(s.clone());
    }
    dd
}

fn inst(media: &str, attempt: u32, state: InstanceState) -> Instance {
    Instance {
        id: format!("i-{media}{attempt}"),
        owner_uid: UID.into(),
        media_type: media.into(),
        attempt,
        token: token_for(UID, media, attempt),
        state,
    }
}

fn media<'a>(p: &'a Plan, m: &str) -> &'a crate::MediaStatus {
    p.status.as_ref().unwrap().media(m).unwrap()
}

fn launches(p: &Plan) -> Vec<&LaunchRequest> {
    p.actions
        .iter()
        .filter_map(|a| if let Action::Launch(r) = a { Some(&**r) } else { None })
        .collect()
}

fn terminated(p: &Plan) -> Vec<String> {
    p.actions
        .iter()
        .filter_map(|a| {
            if let Action::Terminate { instance_ids } = a {
                Some(instance_ids.clone())
            } else {
                None
            }
        })
        .flatten()
        .collect()
}

fn objects(entries: &[(&str, MediaObjects)]) -> Observed {
    Observed {
        instances: vec![],
        objects: entries.iter().map(|(m, o)| (m.to_string(), o.clone())).collect(),
        architecture: None,
    }
}

/// `_success` of image's attempt 1 with `files` files.
fn success(files: u64) -> MediaObjects {
    MediaObjects {
        success: Some(Ok(Output {
            files,
            bytes: files * 100,
            rows: Some(files * 10),
        })),
        success_at: Some(at(30)),
        success_token: Some(token_for(UID, "image", 1)),
        ..Default::default()
    }
}

fn failure(media: &str, attempt: u32, msg: &str) -> MediaObjects {
    MediaObjects {
        failure: Some(FailureSeen {
            time: at(0),
            token: Some(token_for(UID, media, attempt)),
            message: msg.into(),
        }),
        ..Default::default()
    }
}

/// Runs a one-media dump (image only) to Running on attempt `attempt`, returning the object.
fn running(extra: &str) -> DataDump {
    running_from(dd(extra))
}

/// [`running`] from this object.
fn running_from(mut d: DataDump) -> DataDump {
    d.spec.media_types.truncate(1);
    let p = plan(&d, &Observed::default(), &ctx(), at(0));
    let d = persist(d, &p);
    let p = plan(&d, &Observed::default(), &ctx(), at(1));
    assert_eq!(launches(&p).len(), 1);
    let obs = Observed {
        instances: vec![inst("image", 1, InstanceState::Pending)],
        ..Default::default()
    };
    let p = plan(&d, &obs, &ctx(), at(2));
    assert_eq!(media(&p, "image").phase, MediaPhase::Running);
    persist(d, &p)
}

#[test]
fn token_is_deterministic_distinct_and_fits_client_token() {
    assert_eq!(token_for(UID, "image", 1), token_for(UID, "image", 1));
    assert_ne!(token_for(UID, "image", 1), token_for(UID, "image", 2));
    assert_ne!(token_for(UID, "image", 1), token_for(UID, "audio", 1));
    assert!(token_for(UID, &"m".repeat(63), 10).len() <= 64);
}

#[test]
fn finalizer_comes_first() {
    let mut d = dd("");
    d.metadata.finalizers = None;
    let p = plan(&d, &Observed::default(), &ctx(), t0());
    assert_eq!(p.actions, vec![Action::AddFinalizer]);
    assert!(p.status.is_none());
}

#[test]
fn spec_date_sets_the_date_folder_instead_of_today() {
    // as a DataDumpSchedule creates it: the scheduled date in its time zone, not today in UTC
    let d = dd("  date: 2026-11-24\n");
    let p = plan(&d, &Observed::default(), &ctx(), t0());
    let s = p.status.as_ref().unwrap();
    assert_eq!(s.dump_date.as_deref(), Some("2026-11-24"));
    assert_eq!(
        media(&p, "image").s3_uri.as_deref(),
        Some("s3://my-datasets/data-dump/2026-11-24/image/")
    );
}

#[test]
fn token_is_recorded_before_any_launch() {
    let d = dd("");
    let p = plan(&d, &Observed::default(), &ctx(), t0());
    assert!(launches(&p).is_empty(), "no RunInstances before the token is persisted");
    let staged: Vec<_> = p.actions.iter().filter(|a| matches!(a, Action::StageCredentials { .. })).collect();
    assert_eq!(staged.len(), 2);
    let s = p.status.as_ref().unwrap();
    assert_eq!(s.dump_date.as_deref(), Some("2026-11-23"));
    assert_eq!(s.start_time, Some(t0()));
    assert_eq!(s.deadline, Some(at(36_000)));
    for m in ["image", "audio"] {
        assert_eq!(media(&p, m).phase, MediaPhase::Launching);
        assert_eq!(media(&p, m).token.as_deref(), Some(token_for(UID, m, 1).as_str()));
        assert_eq!(
            media(&p, m).s3_uri.as_deref(),
            Some(format!("s3://my-datasets/data-dump/2026-11-23/{m}/").as_str())
        );
    }
    assert_eq!(s.phase, DumpPhase::Running);
    assert_eq!(p.requeue_after, Some(ctx().fast_requeue));
}

/// `spec.database` with a CA bundle and a client certificate.
const TLS: &str = "{connectionSecretRef: {name: db, key: conn}, tls: {caBundle: {configMapKeyRef: {name: rds-ca, key: global-bundle.pem}}, clientCertificateSecretRef: {name: catalog-client}}}";

/// The object with this `spec.database` (YAML; empty: the default one).
fn with_database(database: &str) -> DataDump {
    let mut d = dd("");
    if !database.is_empty() {
        d.spec.database = serde_yaml::from_str(database).unwrap();
    }
    d
}

fn staged(p: &Plan) -> Vec<(String, String, StagedCredential)> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::StageCredentials {
                media_type,
                parameter,
                credential,
            } => Some((media_type.clone(), parameter.clone(), *credential)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_client_certificate_is_staged_next_to_the_connection_string_and_named_in_the_job() {
    // (database, what is staged for image at the first attempt)
    let cases: [(&str, Vec<(&str, StagedCredential)>); 4] = [
        ("", vec![("", StagedCredential::ConnectionString)]),
        (
            TLS,
            vec![
                ("", StagedCredential::ConnectionString),
                ("/client-identity", StagedCredential::ClientIdentity),
            ],
        ),
        (
            "{ssmParameterName: /team/db, tls: {clientCertificateSecretRef: {name: catalog-client}}}",
            vec![("/client-identity", StagedCredential::ClientIdentity)],
        ),
        (
            "{ssmParameterName: /team/db, tls: {caBundle: {secretKeyRef: {name: ca, key: ca.pem}}}}",
            vec![],
        ),
    ];
    for (database, want) in cases {
        let d = with_database(database);
        let p = plan(&d, &Observed::default(), &ctx(), t0());
        let image: Vec<(String, StagedCredential)> = staged(&p)
            .into_iter()
            .filter(|(m, _, _)| m == "image")
            .map(|(_, parameter, c)| (parameter, c))
            .collect();
        let want: Vec<(String, StagedCredential)> = want
            .iter()
            .map(|(suffix, c)| (format!("/datadump/{UID}/image{suffix}"), *c))
            .collect();
        assert_eq!(image, want, "{database}");
        assert_eq!(media(&p, "image").credentials_staged, !want.is_empty(), "{database}");
        // the launch, once the token is persisted, names the parameters, never their values
        let d = persist(d, &p);
        let p = plan(&d, &Observed::default(), &ctx(), at(1));
        assert!(staged(&p).is_empty(), "staged once per media type: {database}");
        let job = &launches(&p).into_iter().find(|r| r.media_type == "image").unwrap().job;
        let identity = want
            .iter()
            .find(|(_, c)| *c == StagedCredential::ClientIdentity)
            .map(|(p, _)| p.clone());
        assert_eq!(job.client_identity_parameter, identity, "{database}");
        assert_eq!(job.ca_bundle, None, "read when launching, not planned: {database}");
    }
}

#[test]
fn the_client_identity_is_deleted_whenever_the_connection_string_is() {
    let both = |m: &str| vec![format!("/datadump/{UID}/{m}"), format!("/datadump/{UID}/{m}/client-identity")];
    // a media type that ended
    let d = running_from(with_database(TLS));
    let obs = Observed {
        instances: vec![inst("image", 1, InstanceState::Running)],
        objects: [("image".to_string(), failure("image", 1, "boom"))].into(),
        ..Default::default()
    };
    let mut d = d;
    d.spec.backoff_limit = 0;
    let p = plan(&d, &obs, &ctx(), at(10));
    let d = persist(d, &p);
    let obs = Observed {
        instances: vec![inst("image", 1, InstanceState::Terminated)],
        ..Default::default()
    };
    let p = plan(&d, &obs, &ctx(), at(11));
    assert_eq!(media(&p, "image").phase, MediaPhase::Failed);
    assert!(
        p.actions.contains(&Action::DeleteCredentials { parameters: both("image") }),
        "{:?}",
        p.actions
    );
    assert!(!media(&p, "image").credentials_staged);
    // deletion, also of a spec whose tls was removed after staging: every name goes
    let mut d = running_from(with_database(TLS));
    d.spec.database.tls = None;
    d.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(100)));
    let p = plan(&d, &Observed::default(), &ctx(), at(100));
    assert!(
        p.actions.contains(&Action::DeleteCredentials { parameters: both("image") }),
        "{:?}",
        p.actions
    );
}

#[test]
fn launch_carries_token_tags_and_safe_settings() {
    let mut d = dd("");
    d.spec.instance.tags.insert("team".into(), "data".into());
    let d = persist(d.clone(), &plan(&d, &Observed::default(), &ctx(), t0()));
    let p = plan(&d, &Observed::default(), &ctx(), at(1));
    let l = launches(&p);
    assert_eq!(l.len(), 2);
    let img = l.iter().find(|r| r.media_type == "image").unwrap();
    assert_eq!(img.token, token_for(UID, "image", 1));
    assert_eq!(img.tags[tags::TOKEN], img.token);
    assert_eq!(img.tags[tags::UID], UID);
    assert_eq!(img.tags[tags::MEDIA_TYPE], "image");
    assert_eq!(img.tags[tags::ATTEMPT], "1");
    assert_eq!(img.tags[tags::MANAGED_BY], "datadump-operator");
    assert_eq!(img.tags["team"], "data");
    assert_eq!(img.tags["Name"], "datadump-catalog-image-1");
    assert_eq!(img.instance.instance_type, "m7g.xlarge");
    assert_eq!(
        img.instance.ebs_volume_size_gb, 0,
        "no extra volume unless asked: nothing would use it"
    );
    assert!(img.user_data.is_empty(), "the driver renders the bootstrap right before launching");
    assert_eq!(img.arch, datadump_contract::Arch::Aarch64);
    assert_eq!((img.job.token.as_str(), img.job.attempt), (img.token.as_str(), 1));
    assert!(img.job.key_prefix.starts_with("data-dump/2026-") && img.job.key_prefix.ends_with("/image/"));
    // the same observation planned again asks for the same launch: idempotent by token
    assert_eq!(launches(&plan(&d, &Observed::default(), &ctx(), at(2))), l);
}

#[test]
fn a_worker_that_failed_before_its_launch_was_recorded_reports_its_own_failure() {
    // the status still says Launching: the worker failed within a second, before the status
    // recording it as running was written
    let d = persist(dd(""), &plan(&dd(""), &Observed::default(), &ctx(), t0()));
    assert!(
        crate::plan::media_to_observe(&d).contains(&"image".to_string()),
        "Launching is observed"
    );
    let obs = Observed {
        instances: vec![inst("image", 1, InstanceState::Terminated)],
        objects: [("image".to_string(), failure("image", 1, "relation \"image\" does not exist"))].into(),
        ..Default::default()
    };
    let m = media(&plan(&d, &obs, &ctx(), at(2)), "image").clone();
    assert_eq!(m.reason.as_deref(), Some("WorkerFailed"), "{m:?}");
    assert!(m.message.unwrap().contains("does not exist"));
}

#[test]
fn an_instance_type_without_a_worker_binary_launches_nothing_and_says_which() {
    // EC2 says the type is x86_64, whatever its name suggests
    let obs = Observed {
        architecture: Some(datadump_contract::Arch::X86_64),
        ..Default::default()
    };
    let d = dd("");
    let p = plan(&d, &obs, &ctx(), t0());
    let d = persist(d, &p);
    let p = plan(&d, &obs, &ctx(), at(1));
    assert!(launches(&p).is_empty());
    let m = media(&p, "image");
    assert_eq!(m.phase, MediaPhase::Failed);
    assert!(
        m.message.as_deref().unwrap().contains("no datadump-worker-x86_64"),
        "{:?}",
        m.message
    );
}

#[test]
fn an_existing_instance_with_the_token_is_adopted_not_duplicated() {
    let d = persist(dd(""), &plan(&dd(""), &Observed::default(), &ctx(), t0()));
    let obs = Observed {
        instances: vec![inst("image", 1, InstanceState::Running)],
        ..Default::default()
    };
    let p = plan(&d, &obs, &ctx(), at(1));
    let l = launches(&p);
    assert_eq!(l.len(), 1, "only audio launches");
    assert_eq!(l[0].media_type, "audio");
    assert_eq!(media(&p, "image").phase, MediaPhase::Running);
    assert_eq!(media(&p, "image").instance_id.as_deref(), Some("i-image1"));
    assert!(p.notes.iter().any(|n| n.reason == "Launched"));
}

#[test]
fn success_terminates_then_succeeds_once_ec2_confirms() {
    let d = running("");
    let mut obs = objects(&[("image", success(3))]);
    obs.instances = vec![inst("image", 1, InstanceState::Running)];
    let p = plan(&d, &obs, &ctx(), at(60));
    assert_eq!(terminated(&p), vec!["i-image1"]);
    assert_eq!(media(&p, "image").phase, MediaPhase::Terminating);
    assert_eq!(media(&p, "image").outcome, Some(AttemptOutcome::Succeeded));
    assert_eq!(media(&p, "image").files, Some(3));
    let d = persist(d, &p);

    // requested but not yet confirmed: wait, do not ask again while shutting down
    let obs = Observed {
        instances: vec![inst("image", 1, InstanceState::ShuttingDown)],
        ..Default::default()
    };
    let p = plan(&d, &obs, &ctx(), at(61));
    assert!(terminated(&p).is_empty());
    assert_eq!(media(&p, "image").phase, MediaPhase::Terminating);
    assert_ne!(p.status.as_ref().unwrap().phase, DumpPhase::Succeeded);

    let obs = Observed {
        instances: vec![inst("image", 1, InstanceState::Terminated)],
        ..Default::default()
    };
    let p = plan(&d, &obs, &ctx(), at(62));
    let s = p.status.as_ref().unwrap();
    assert_eq!(s.phase, DumpPhase::Succeeded);
    assert_eq!(s.done.as_deref(), Some("1/1"));
    assert_eq!(s.completion_time, Some(at(62)));
    assert_eq!(s.condition(COMPLETE).unwrap().status, "True");
    assert_eq!(s.condition(FAILED).unwrap().status, "False");
    assert_eq!(media(&p, "image").instance_state.as_deref(), Some("terminated"));
    assert!(p.actions.contains(&Action::DeleteCredentials {
        parameters: vec![format!("/datadump/{UID}/image"), format!("/datadump/{UID}/image/client-identity")]
    }));
    assert!(!media(&p, "image").credentials_staged);
    assert_eq!(p.requeue_after, Some(ctx().fast_requeue), "one more look after acting");
    let d = persist(d, &p);
    let p = plan(&d, &obs, &ctx(), at(63));
    assert_eq!(
        p.actions,
        vec![Action::WriteDatasetCard],
        "the card, once the terminal status is persisted"
    );
    let d = persist(d, &p);
    let p = plan(&d, &obs, &ctx(), at(64));
    assert!(p.actions.is_empty());
    assert_eq!(p.requeue_after, None, "a finished dump waits for changes");
}

#[test]
fn failure_retries_with_a_new_token_then_fails_with_the_workers_message() {
    let d = running("  backoffLimit: 1\n");
    let mut obs = objects(&[(
        "image",
        failure("image", 1, "step dump failed with exit code 1: relation \"image\" does not exist"),
    )]);
    obs.instances = vec![inst("image", 1, InstanceState::Running)];
    let p = plan(&d, &obs, &ctx(), at(60));
    assert_eq!(terminated(&p), vec!["i-image1"]);
    let d = persist(d, &p);
    obs.instances = vec![inst("image", 1, InstanceState::Terminated)];
    let p = plan(&d, &obs, &ctx(), at(61));
    let m = media(&p, "image");
    assert_eq!((m.phase, m.attempt, m.failed_attempts), (MediaPhase::Launching, 2, 1));
    assert_eq!(m.token.as_deref(), Some(token_for(UID, "image", 2).as_str()));
    assert!(launches(&p).is_empty(), "the new token is persisted first");
    assert!(p.notes.iter().any(|n| n.reason == "Retrying"));
    let d = persist(d, &p);

    // attempt 1's _failure is still there: it must not fail attempt 2
    obs.instances.push(inst("image", 2, InstanceState::Running));
    let p = plan(&d, &obs, &ctx(), at(62));
    assert_eq!(media(&p, "image").phase, MediaPhase::Running);
    assert!(terminated(&p).is_empty());
    let d = persist(d, &p);

    let mut obs = objects(&[(
        "image",
        failure("image", 2, "step dump failed with exit code 1: connection refused"),
    )]);
    obs.instances = vec![
        inst("image", 1, InstanceState::Terminated),
        inst("image", 2, InstanceState::Running),
    ];
    let d = persist(d.clone(), &plan(&d, &obs, &ctx(), at(63)));
    obs.instances[1].state = InstanceState::Terminated;
    let p = plan(&d, &obs, &ctx(), at(64));
    let s = p.status.as_ref().unwrap();
    assert_eq!(s.phase, DumpPhase::Failed);
    let failed = s.condition(FAILED).unwrap();
    assert_eq!((failed.status.as_str(), failed.reason.as_str()), ("True", "WorkerFailed"));
    assert!(failed.message.contains("connection refused"), "{}", failed.message);
    assert!(launches(&p).is_empty());
}

#[test]
fn an_instance_that_ends_without_success_is_a_failed_attempt() {
    let d = running("  backoffLimit: 0\n");
    let obs = Observed {
        instances: vec![inst("image", 1, InstanceState::Terminated)],
        ..Default::default()
    };
    let p = plan(&d, &obs, &ctx(), at(60));
    let m = media(&p, "image");
    assert_eq!((m.phase, m.reason.as_deref()), (MediaPhase::Failed, Some("InstanceLost")));
    assert_eq!(p.status.as_ref().unwrap().phase, DumpPhase::Failed);
}

#[test]
fn a_missing_instance_gets_a_grace_period() {
    let d = running("  backoffLimit: 0\n");
    let p = plan(&d, &Observed::default(), &ctx(), at(60));
    assert_eq!(media(&p, "image").phase, MediaPhase::Running, "EC2 may not list it yet");
    let p = plan(&d, &Observed::default(), &ctx(), at(600));
    assert_eq!(media(&p, "image").phase, MediaPhase::Failed);
}

#[test]
fn deadline_terminates_and_fails_with_deadline_exceeded() {
    let d = running("");
    let obs = Observed {
        instances: vec![inst("image", 1, InstanceState::Running)],
        ..Default::default()
    };
    let p = plan(&d, &obs, &ctx(), at(1000));
    assert_eq!(p.requeue_after, Some(Duration::from_secs(30)));
    let p = plan(&d, &obs, &ctx(), at(36_000));
    assert_eq!(terminated(&p), vec!["i-image1"]);
    let d = persist(d, &p);
    let obs = Observed {
        instances: vec![inst("image", 1, InstanceState::Terminated)],
        ..Default::default()
    };
    let p = plan(&d, &obs, &ctx(), at(36_010));
    let s = p.status.as_ref().unwrap();
    assert_eq!(s.phase, DumpPhase::Failed);
    assert_eq!(s.condition(FAILED).unwrap().reason, "DeadlineExceeded");
    assert!(launches(&p).is_empty(), "no retry after the deadline");
}

#[test]
fn requeue_wakes_up_at_the_deadline() {
    let d = running("");
    let obs = Observed {
        instances: vec![inst("image", 1, InstanceState::Running)],
        ..Default::default()
    };
    let p = plan(&d, &obs, &ctx(), at(36_000 - 5));
    assert_eq!(p.requeue_after, Some(Duration::from_secs(6)));
}

#[test]
fn suspend_terminates_and_resume_starts_a_fresh_attempt_without_spending_a_retry() {
    let d = running("  backoffLimit: 0\n");
    let mut d = d;
    d.spec.suspend = true;
    let obs = Observed {
        instances: vec![inst("image", 1, InstanceState::Running)],
        ..Default::default()
    };
    let p = plan(&d, &obs, &ctx(), at(60));
    assert_eq!(terminated(&p), vec!["i-image1"]);
    assert_eq!(p.status.as_ref().unwrap().phase, DumpPhase::Suspended);
    let d = persist(d, &p);
    let obs = Observed {
        instances: vec![inst("image", 1, InstanceState::Terminated)],
        ..Default::default()
    };
    let p = plan(&d, &obs, &ctx(), at(61));
    assert_eq!(media(&p, "image").phase, MediaPhase::Pending);
    assert_eq!(p.status.as_ref().unwrap().phase, DumpPhase::Suspended);
    assert!(launches(&p).is_empty());
    let mut d = persist(d, &p);
    d.spec.suspend = false;
    let p = plan(&d, &obs, &ctx(), at(62));
    let m = media(&p, "image");
    assert_eq!((m.phase, m.attempt, m.failed_attempts), (MediaPhase::Launching, 2, 0));
    assert_eq!(p.status.as_ref().unwrap().start_time, Some(at(0)), "the deadline is never reset");
}

/// Found by the loop's property test: one media type failed for good while a suspend had sent
/// the other back to Pending; the dump ended Failed and the other's staged credentials stayed.
#[test]
fn a_dump_that_ends_while_a_media_type_waits_deletes_its_staged_credentials() {
    let mut d = dd("  backoffLimit: 0\n  suspend: true\n");
    let mut image = crate::MediaStatus::new(MediaType("image".into()));
    image.phase = MediaPhase::Failed;
    image.attempt = 1;
    let mut audio = crate::MediaStatus::new(MediaType("audio".into()));
    audio.phase = MediaPhase::Pending;
    audio.attempt = 1;
    audio.credentials_staged = true;
    d.status = Some(crate::DataDumpStatus {
        start_time: Some(at(0)),
        dump_date: Some(dump_date(at(0))),
        media: vec![image, audio],
        ..Default::default()
    });
    let p = plan(&d, &Observed::default(), &ctx(), at(60));
    assert_eq!(p.status.as_ref().unwrap().phase, DumpPhase::Failed);
    assert!(!media(&p, "audio").credentials_staged);
    assert!(
        p.actions.contains(&Action::DeleteCredentials {
            parameters: ctx().staged_parameters(UID, "audio").to_vec()
        }),
        "{:?}",
        p.actions
    );
    // and once that is persisted, nothing is left to do
    let d = persist(d, &p);
    assert!(plan(&d, &Observed::default(), &ctx(), at(61)).actions.is_empty());
}

/// Found by the loop's property test (EC2 lists a new instance late): the deadline passed
/// while the attempt's instance was not listed; the attempt was ended as if the instance were
/// gone, and the instance, listed a moment later, was left running.
#[test]
fn an_instance_not_listed_within_the_launch_grace_is_waited_for_and_then_terminated() {
    let mut d = running("");
    // the dump started long ago: its deadline is at(30), the attempt started at(0)
    d.status.as_mut().unwrap().start_time = Some(at(30 - 36_000));
    let p = plan(&d, &Observed::default(), &ctx(), at(40));
    let m = media(&p, "image");
    assert_eq!(
        (m.phase, m.outcome),
        (MediaPhase::Terminating, Some(AttemptOutcome::DeadlineExceeded))
    );
    assert!(p.requeue_after.is_some_and(|d| d <= ctx().fast_requeue), "looks again soon");
    let d = persist(d, &p);
    let listed = Observed {
        instances: vec![inst("image", 1, InstanceState::Running)],
        ..Default::default()
    };
    let p = plan(&d, &listed, &ctx(), at(42));
    assert_eq!(terminated(&p), vec!["i-image1"]);
    assert_eq!(media(&p, "image").phase, MediaPhase::Terminating);
    // never listed: after the grace the attempt ends
    let p = plan(&d, &Observed::default(), &ctx(), at(200));
    assert_eq!(media(&p, "image").phase, MediaPhase::Failed);
}

/// Found by the loop's property test: deleted right after a launch, before EC2 listed the
/// instance; the finalizer was released and the instance left running.
#[test]
fn deletion_keeps_the_finalizer_while_a_recent_launch_is_not_listed() {
    let mut d = running("");
    d.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(10)));
    let p = plan(&d, &Observed::default(), &ctx(), at(10));
    assert!(!p.actions.contains(&Action::RemoveFinalizer), "{:?}", p.actions);
    assert_eq!(p.requeue_after, Some(ctx().fast_requeue));
    let p = plan(&d, &Observed::default(), &ctx(), at(200));
    assert_eq!(
        p.actions.last(),
        Some(&Action::RemoveFinalizer),
        "after the grace, nothing listed is nothing"
    );
}

#[test]
fn media_types_that_are_no_identifiers_get_no_status_entry() {
    // stored behind the schema's back: the status schema would refuse the whole status
    let mut d = dd("");
    d.spec.media_types = vec![
        MediaType("image".into()),
        MediaType("Image; DROP".into()),
        MediaType("image".into()),
    ];
    let p = plan(&d, &Observed::default(), &ctx(), t0());
    let s = p.status.as_ref().unwrap();
    let names: Vec<&str> = s.media.iter().map(|m| m.media_type.as_str()).collect();
    assert_eq!(names, ["image"]);
    let c = s.condition(SPEC_VALID).unwrap();
    assert!(c.status == "False" && c.message.contains("spec.mediaTypes[1]"), "{}", c.message);
    assert!(p.actions.is_empty());
}

#[test]
fn an_invalid_spec_launches_nothing_and_says_why() {
    let d = dd("  query: SELECT 1\n");
    let p = plan(&d, &Observed::default(), &ctx(), t0());
    assert!(p.actions.is_empty());
    let s = p.status.as_ref().unwrap();
    assert_eq!(s.phase, DumpPhase::Pending);
    let c = s.condition(SPEC_VALID).unwrap();
    assert_eq!((c.status.as_str(), c.reason.as_str()), ("False", "InvalidSpec"));
    assert!(c.message.contains("spec.query"), "{}", c.message);
    assert!(s.message.as_ref().unwrap().contains("nothing launched"));
    assert_eq!(p.requeue_after, None);
    assert!(p.notes.iter().any(|n| n.reason == "InvalidSpec" && n.kind == NoteKind::Warning));
    // and the same invalid spec does not repeat the event
    let p2 = plan(&persist(d, &p), &Observed::default(), &ctx(), at(5));
    assert!(p2.notes.is_empty());
    assert_eq!(
        p2.status.unwrap().condition(SPEC_VALID).unwrap().last_transition_time,
        c.last_transition_time
    );
}

#[test]
fn deletion_terminates_everything_and_releases_the_finalizer_only_when_confirmed() {
    let mut d = running("");
    d.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(100)));
    let obs = Observed {
        instances: vec![inst("image", 1, InstanceState::Running)],
        ..Default::default()
    };
    let p = plan(&d, &obs, &ctx(), at(100));
    assert_eq!(terminated(&p), vec!["i-image1"]);
    assert!(!p.actions.contains(&Action::RemoveFinalizer));
    assert!(
        p.actions
            .iter()
            .any(|a| matches!(a, Action::DeleteCredentials { parameters } if parameters.contains(&format!("/datadump/{UID}/image"))))
    );
    let obs = Observed {
        instances: vec![inst("image", 1, InstanceState::Terminated)],
        ..Default::default()
    };
    let p = plan(&d, &obs, &ctx(), at(101));
    assert_eq!(p.actions.last(), Some(&Action::RemoveFinalizer));
    assert!(terminated(&p).is_empty());
}

#[test]
fn stray_instances_of_old_attempts_are_terminated() {
    let d = running("");
    let mut stray = inst("image", 1, InstanceState::Running);
    stray.id = "i-stray".into();
    stray.token = "ddt-someothertoken".into();
    let obs = Observed {
        instances: vec![inst("image", 1, InstanceState::Running), stray],
        ..Default::default()
    };
    let p = plan(&d, &obs, &ctx(), at(60));
    assert_eq!(terminated(&p), vec!["i-stray"]);
}

#[test]
fn an_earlier_export_for_the_same_date_is_not_redone() {
    let d = dd("");
    let p = plan(&d, &objects(&[("image", success(2))]), &ctx(), t0());
    assert_eq!(media(&p, "image").phase, MediaPhase::Succeeded);
    assert_eq!(media(&p, "image").reason.as_deref(), Some("AlreadyExported"));
    assert_eq!(media(&p, "audio").phase, MediaPhase::Launching);
}

#[test]
fn incomplete_output_fails_the_attempt_with_the_reason() {
    let d = running("  backoffLimit: 0\n");
    let mut obs = objects(&[(
        "image",
        MediaObjects {
            success: Some(Err("image_02.parquet is in the manifest but missing from S3".into())),
            ..success(0)
        },
    )]);
    obs.instances = vec![inst("image", 1, InstanceState::Running)];
    let p = plan(&d, &obs, &ctx(), at(60));
    let m = media(&p, "image");
    assert_eq!(
        (m.outcome, m.reason.as_deref()),
        (Some(AttemptOutcome::Failed), Some("OutputIncomplete"))
    );
    assert!(m.message.as_ref().unwrap().contains("missing from S3"));
}

#[test]
fn progress_is_shown_while_running() {
    let d = running("");
    let progress = ProgressSeen {
        stage: Some("dumping".into()),
        time: Some(at(50)),
        files: Some(2),
        bytes: Some(4096),
        rows: None,
        connection: Some(
            "TLSv1.3 (TLS_AES_256_GCM_SHA384), server certificate verified against the CA and host name (sslmode=verify-full)".into(),
        ),
        token: Some(token_for(UID, "image", 1)),
    };
    let mut obs = objects(&[(
        "image",
        MediaObjects {
            progress: Some(progress),
            ..Default::default()
        },
    )]);
    obs.instances = vec![inst("image", 1, InstanceState::Running)];
    let p = plan(&d, &obs, &ctx(), at(60));
    let m = media(&p, "image");
    assert_eq!(m.last_progress.as_ref().unwrap().stage.as_deref(), Some("dumping"));
    assert_eq!((m.files, m.bytes), (Some(2), Some(4096)));
    assert!(m.connection.as_deref().is_some_and(|c| c.starts_with("TLSv1.3")), "{m:?}");
    assert_eq!(p.status.as_ref().unwrap().phase, DumpPhase::Running);
}

#[test]
fn progress_counts_only_for_the_attempt_that_wrote_it() {
    let d = running("");
    let report = |token: Option<String>, time: i64| ProgressSeen {
        stage: Some("dumping".into()),
        time: Some(at(time)),
        files: Some(9),
        bytes: Some(1 << 30),
        rows: Some(1_000_000),
        connection: None,
        token,
    };
    // (whose report, written when) → shown?
    let cases = [
        (Some(token_for(UID, "image", 1)), 50, true),
        (Some(token_for(UID, "image", 0)), 50, false),
        (Some(token_for("another-dump", "image", 1)), 50, false),
        (None, 50, true),
        (None, -600, false),
    ];
    for (token, time, shown) in cases {
        let mut obs = objects(&[(
            "image",
            MediaObjects {
                progress: Some(report(token.clone(), time)),
                ..Default::default()
            },
        )]);
        obs.instances = vec![inst("image", 1, InstanceState::Running)];
        let p = plan(&d, &obs, &ctx(), at(60));
        let m = media(&p, "image");
        assert_eq!(m.last_progress.is_some(), shown, "{token:?} at {time}");
        assert_eq!(m.files == Some(9), shown, "{token:?} at {time}");
    }
}

#[test]
fn observed_generation_follows_the_object() {
    let mut d = dd("");
    d.metadata.generation = Some(7);
    let p = plan(&d, &Observed::default(), &ctx(), t0());
    let s = p.status.unwrap();
    assert_eq!(s.observed_generation, Some(7));
    assert!(s.conditions.iter().all(|c| c.observed_generation == Some(7)));
}

/// A one-media dump whose persisted status is Succeeded, with a Slack webhook configured.
fn finished_with_slack() -> DataDump {
    let mut d = running("  notification: {slack: {webhookSecretRef: {name: slack, key: url}}}\n");
    let mut obs = objects(&[("image", success(1))]);
    obs.instances = vec![inst("image", 1, InstanceState::Terminated)];
    let p = plan(&d, &obs, &ctx(), at(60));
    assert_eq!(p.status.as_ref().unwrap().phase, DumpPhase::Succeeded);
    assert!(
        !p.actions.contains(&Action::Notify),
        "side effects wait for the terminal status to be persisted"
    );
    assert!(!p.actions.contains(&Action::WriteDatasetCard));
    d = persist(d, &p);
    d
}

#[test]
fn a_finished_dump_writes_its_card_and_notifies_once() {
    let d = finished_with_slack();
    let p = plan(&d, &Observed::default(), &ctx(), at(62));
    assert!(p.actions.contains(&Action::WriteDatasetCard));
    assert!(p.actions.contains(&Action::Notify));
    let s = p.status.as_ref().unwrap();
    assert_eq!(s.dataset_card.as_deref(), Some("s3://my-datasets/data-dump/2026-11-23/README.md"));
    assert!(s.notification.as_ref().unwrap().sent);
    let d = persist(d, &p);
    let p = plan(&d, &Observed::default(), &ctx(), at(63));
    assert!(p.actions.is_empty(), "{:?}", p.actions);
}

#[test]
fn failed_notifications_back_off_and_give_up() {
    let mut d = finished_with_slack();
    let s = d.status.as_mut().unwrap();
    s.dataset_card = Some("s3://x/README.md".into());
    s.notification = Some(crate::NotificationStatus {
        sent: false,
        attempts: 2,
        last_attempt_time: Some(at(100)),
        last_error: Some("HTTP 500".into()),
    });
    let p = plan(&d, &Observed::default(), &ctx(), at(101));
    assert!(!p.actions.contains(&Action::Notify), "2^2 s have not passed");
    assert_eq!(p.requeue_after, Some(Duration::from_secs(3)));
    let p = plan(&d, &Observed::default(), &ctx(), at(104));
    assert!(p.actions.contains(&Action::Notify));
    d.status.as_mut().unwrap().notification.as_mut().unwrap().attempts = MAX_NOTIFY_ATTEMPTS;
    let p = plan(&d, &Observed::default(), &ctx(), at(10_000));
    assert!(p.actions.is_empty());
}

#[test]
fn another_dumps_success_under_the_same_prefix_is_not_ours() {
    let d = running("");
    let mut other = success(5);
    other.success_token = Some(token_for("another-uid", "image", 1));
    let mut obs = objects(&[("image", other)]);
    obs.instances = vec![inst("image", 1, InstanceState::Running)];
    let p = plan(&d, &obs, &ctx(), at(60));
    assert_eq!(media(&p, "image").phase, MediaPhase::Running, "our worker keeps running");
    assert!(terminated(&p).is_empty());
    // a report without a token counts only when written after this attempt started
    let mut untagged = success(1);
    untagged.success_token = None;
    untagged.success_at = Some(at(-3600));
    let mut obs = objects(&[("image", untagged)]);
    obs.instances = vec![inst("image", 1, InstanceState::Running)];
    assert_eq!(media(&plan(&d, &obs, &ctx(), at(60)), "image").phase, MediaPhase::Running);
}

#[test]
fn requester_pays_is_settled_before_anything_launches_and_retried_every_poll() {
    use crate::REQUESTER_PAYS;
    use crate::plan::{Done, settle};
    let condition = |d: &DataDump| {
        let c = d.status.as_ref().unwrap().condition(REQUESTER_PAYS).unwrap().clone();
        (c.status, c.reason, c.message)
    };
    // not asked: never checked, no condition
    let p = plan(&dd(""), &Observed::default(), &ctx(), t0());
    assert!(!p.actions.contains(&Action::EnsureRequesterPays));
    assert!(p.status.as_ref().unwrap().condition(REQUESTER_PAYS).is_none());

    let mut d = dd("");
    d.spec.destination.requester_pays = true;
    let p = plan(&d, &Observed::default(), &ctx(), t0());
    assert_eq!(
        p.actions,
        vec![Action::EnsureRequesterPays],
        "checked first, nothing staged or launched"
    );
    assert_eq!(media(&p, "image").phase, MediaPhase::Pending);
    assert!(media(&p, "image").token.is_none());
    // refused: recorded with the fix, a Warning, nothing launched
    let mut status = p.status.clone();
    let refused = Done {
        requester_pays: Some(Err(
            "PutBucketRequestPayment: AccessDenied: denied; fix: allow s3:PutBucketRequestPayment".into(),
        )),
        ..Default::default()
    };
    let notes = settle(&d, &mut status, &refused, t0());
    assert_eq!(
        notes.iter().map(|n| n.reason.as_str()).collect::<Vec<_>>(),
        ["RequesterPaysRefused"]
    );
    d.status = status;
    let (s, reason, message) = condition(&d);
    assert_eq!((s.as_str(), reason.as_str()), ("False", "NotAllowed"));
    assert!(message.contains("s3:PutBucketRequestPayment"), "{message}");
    let p = plan(&d, &Observed::default(), &ctx(), at(10));
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(
        p.requeue_after,
        Some(Duration::from_secs(20)),
        "tried again one poll interval later"
    );
    assert!(
        p.status
            .as_ref()
            .unwrap()
            .message
            .as_deref()
            .unwrap()
            .starts_with("waiting: requester pays not enabled")
    );
    let d = persist(d, &p);
    let p = plan(&d, &Observed::default(), &ctx(), at(30));
    assert_eq!(p.actions, vec![Action::EnsureRequesterPays]);
    // enabled: the condition says how to download, and the dump starts
    let mut status = p.status.clone();
    let notes = settle(
        &d,
        &mut status,
        &Done {
            requester_pays: Some(Ok(())),
            ..Default::default()
        },
        at(30),
    );
    assert_eq!(
        notes.iter().map(|n| n.reason.as_str()).collect::<Vec<_>>(),
        ["RequesterPaysEnabled"]
    );
    let mut d = d;
    d.status = status;
    let (s, reason, message) = condition(&d);
    assert_eq!((s.as_str(), reason.as_str()), ("True", "Enabled"));
    assert!(
        message.contains("aws s3 cp --recursive --request-payer requester s3://my-datasets/data-dump/"),
        "{message}"
    );
    let p = plan(&d, &Observed::default(), &ctx(), at(31));
    assert!(!p.actions.contains(&Action::EnsureRequesterPays));
    assert_eq!(media(&p, "image").phase, MediaPhase::Launching);
    assert_eq!(condition(&persist(d, &p)).0, "True", "the condition stays once the dump runs");
}
