//! The `DataDumpSchedule` custom resource: regular DataDumps from a cron schedule, as a CronJob
//! makes Jobs. The types, their defaults and `validate_schedule`. Pure, no I/O.
//!
//! Field docs become `kubectl explain datadumpschedule.spec…` text, so they are written for
//! users. The template is a whole DataDump spec; the controller copies it into each DataDump it
//! creates, with `date` set to the scheduled time's date in the schedule's time zone.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::resolve::SiteDefaults;
use super::spec::DataDumpSpec;
use super::validate::{FieldError, validate};

/// Cron schedules: five fields, or one of the `@yearly`-style macros.
pub const SCHEDULE_PATTERN: &str = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|\S+\s+\S+\s+\S+\s+\S+\s+\S+)$";
/// IANA time zone names such as `Europe/Berlin` or `UTC`.
pub const TIME_ZONE_PATTERN: &str = "^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$";
/// The longest schedule name: the DataDumps it creates append `-YYYYMMDDhhmm` (as CronJob's
/// 52-character limit leaves room for its Jobs' suffix).
pub const MAX_SCHEDULE_NAME: usize = 52;
/// The most finished DataDumps kept per outcome.
pub const MAX_HISTORY_LIMIT: u32 = 100;
/// Label on every DataDump a schedule created: the schedule's name.
pub const SCHEDULE_LABEL: &str = "datadump.dev/schedule";
/// Annotation on every DataDump a schedule created: its scheduled time (RFC 3339, UTC).
pub const SCHEDULED_TIME_ANNOTATION: &str = "datadump.dev/scheduled-time";

/// Creates a DataDump on a cron schedule, like a CronJob creates Jobs.
///
/// Each due time gets one DataDump named `NAME-YYYYMMDDhhmm` (the scheduled time in UTC),
/// owned by the schedule: deleting the schedule deletes its DataDumps (their S3 data stays).
/// Its DATE folder is the scheduled time's date in `timeZone`. Finished DataDumps beyond the
/// history limits are deleted, oldest first.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "datadump.dev",
    version = "v1alpha1",
    kind = "DataDumpSchedule",
    doc = "A DataDumpSchedule creates a DataDump from its template on a cron schedule, like a CronJob creates Jobs. See spec for when and what, and status for the last and the active runs.",
    plural = "datadumpschedules",
    singular = "datadumpschedule",
    shortname = "dds",
    category = "all",
    namespaced,
    status = "DataDumpScheduleStatus",
    validation = Rule::new("self.metadata.name.size() <= 52").message("metadata.name must be at most 52 characters: the DataDumps it creates append -YYYYMMDDhhmm"),
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"Suspend","type":"boolean","jsonPath":".spec.suspend"}"#,
    printcolumn = r#"{"name":"Active","type":"integer","jsonPath":".status.activeCount","description":"DataDumps of this schedule still running"}"#,
    printcolumn = r#"{"name":"Last Schedule","type":"date","jsonPath":".status.lastScheduleTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Time Zone","type":"string","jsonPath":".spec.timeZone","priority":1}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.template.date)").message("spec.template.date must be unset: each DataDump's date is its scheduled time's date"))]
pub struct DataDumpScheduleSpec {
    /// When to create a DataDump, in cron syntax: five fields (minute hour day-of-month month
    /// day-of-week, e.g. `0 3 1 * *` for 03:00 on the first of each month) or a macro:
    /// `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`.
    #[schemars(regex(pattern = SCHEDULE_PATTERN), length(min = 1, max = 256))]
    pub schedule: String,

    /// The IANA time zone the schedule is read in, e.g. `Europe/Berlin`; it also decides each
    /// DataDump's DATE folder. Across daylight-saving changes a time that does not exist runs
    /// at the first minute after the gap, and a time that occurs twice runs once. Default: `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = TIME_ZONE_PATTERN), length(max = 64))]
    pub time_zone: Option<String>,

    /// The DataDump spec each run gets (see `kubectl explain datadump.spec`). Leave `date`
    /// unset: the controller sets it to the scheduled time's date.
    pub template: DataDumpSpec,

    /// What to do when a run is due while an earlier DataDump of this schedule still runs:
    /// `Forbid` (the default) skips the new run (it starts once the earlier one ends, if
    /// `startingDeadlineSeconds` allows), `Replace` deletes the running DataDump (its workers are
    /// terminated) and starts the new one, `Allow` runs both.
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,

    /// How late, in seconds, a run may still start after its scheduled time (e.g. after the
    /// controller was down). A run that is later is skipped with a MissedSchedule Event. Unset:
    /// no limit, but of several missed runs only the latest one starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub starting_deadline_seconds: Option<i64>,

    /// Create no new DataDumps while true (running ones go on). Runs missed meanwhile are not
    /// made up, except the latest when `startingDeadlineSeconds` allows. Default: false.
    #[serde(default)]
    pub suspend: bool,

    /// How many succeeded DataDumps to keep; older ones are deleted (their S3 data stays).
    /// 0 to 100. Default: 3.
    #[serde(default = "default_successful_limit")]
    #[schemars(range(min = 0, max = 100))]
    pub successful_dumps_history_limit: u32,

    /// How many failed DataDumps to keep; older ones are deleted. 0 to 100. Default: 1.
    #[serde(default = "default_failed_limit")]
    #[schemars(range(min = 0, max = 100))]
    pub failed_dumps_history_limit: u32,
}

/// How runs of one schedule may overlap.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum ConcurrencyPolicy {
    /// Skip a run while an earlier one is active. The default.
    #[default]
    Forbid,
    /// Delete the active DataDumps, then start the new run.
    Replace,
    /// Start the new run next to the active ones.
    Allow,
}

/// A DataDump of this schedule.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DumpReference {
    /// The DataDump's name.
    pub name: String,
    /// The time it was scheduled for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_time: Option<Timestamp>,
}

/// What the schedule controller observed and decided.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataDumpScheduleStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The scheduled time of the last DataDump created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Timestamp>,
    /// When the last DataDump of this schedule succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Timestamp>,
    /// The latest scheduled time skipped because `startingDeadlineSeconds` had passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_missed_time: Option<Timestamp>,
    /// A due time that waits for the active DataDump to finish (`concurrencyPolicy: Forbid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_schedule_time: Option<Timestamp>,
    /// The DataDumps of this schedule that have not finished.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub active: Vec<DumpReference>,
    /// How many DataDumps are active (the Active column).
    #[serde(default)]
    pub active_count: u32,
    /// SpecValid, as a `metav1.Condition`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

impl DataDumpScheduleStatus {
    /// A condition by type.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

fn default_successful_limit() -> u32 {
    3
}

fn default_failed_limit() -> u32 {
    1
}

/// The parsed `spec.schedule` and `spec.timeZone` of a schedule.
#[derive(Clone, Debug)]
pub struct CronSchedule {
    /// The cron pattern.
    pub cron: croner::Cron,
    /// The time zone it is read in.
    pub tz: jiff::tz::TimeZone,
}

impl CronSchedule {
    /// Parses a schedule (5 fields or a macro; no seconds or years) in a time zone (`None`:
    /// UTC).
    pub fn parse(schedule: &str, time_zone: Option<&str>) -> Result<CronSchedule, Vec<FieldError>> {
        let mut errors = Vec::new();
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .year(croner::parser::Year::Disallowed)
            .build()
            .parse(schedule.trim());
        let cron = match cron {
            Ok(c) => Some(c),
            Err(e) => {
                errors.push(FieldError {
                    field: "spec.schedule".into(),
                    problem: format!("{} is not a cron schedule: {e}", super::shorten(&format!("{schedule:?}"), 66)),
                    fix: "give five fields (minute hour day-of-month month day-of-week), e.g. \"0 3 1 * *\", or a macro such as @monthly"
                        .into(),
                });
                None
            }
        };
        let tz = match time_zone {
            None => Some(jiff::tz::TimeZone::UTC),
            Some(name) => match jiff::tz::db().get(name) {
                Ok(tz) => Some(tz),
                Err(_) => {
                    errors.push(FieldError {
                        field: "spec.timeZone".into(),
                        problem: format!("{} is not a known IANA time zone", super::shorten(&format!("{name:?}"), 66)),
                        fix: "use a name from the IANA time zone database, e.g. Europe/Berlin or UTC".into(),
                    });
                    None
                }
            },
        };
        match (cron, tz) {
            (Some(cron), Some(tz)) if errors.is_empty() => Ok(CronSchedule { cron, tz }),
            _ => Err(errors),
        }
    }

    /// The first scheduled time strictly after `after`, if any.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let z = after.to_zoned(self.tz.clone());
        self.cron.find_next_occurrence(&z, false).ok().map(|z| z.timestamp())
    }

    /// The latest scheduled time at or before `at`, if any.
    pub fn latest_at_or_before(&self, at: Timestamp) -> Option<Timestamp> {
        let z = at.to_zoned(self.tz.clone());
        self.cron.find_previous_occurrence(&z, true).ok().map(|z| z.timestamp())
    }

    /// The DATE folder of a run scheduled at `t`: its date in the schedule's time zone.
    pub fn date_of(&self, t: Timestamp) -> String {
        t.to_zoned(self.tz.clone()).date().to_string()
    }
}

/// Checks a schedule's spec (and its name, when known) given the controller's site defaults:
/// the schedule, the time zone, the limits and the template (as a DataDump spec, with field
/// paths under `spec.template`). Returns every problem found.
pub fn validate_schedule(name: Option<&str>, spec: &DataDumpScheduleSpec, site: &SiteDefaults) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    if let Some(name) = name
        && name.len() > MAX_SCHEDULE_NAME
    {
        errors.push(FieldError {
            field: "metadata.name".into(),
            problem: format!("is {} characters, more than {MAX_SCHEDULE_NAME}", name.len()),
            fix: "use a shorter name: the DataDumps it creates append -YYYYMMDDhhmm".into(),
        });
    }
    match CronSchedule::parse(&spec.schedule, spec.time_zone.as_deref()) {
        Err(e) => errors.extend(e),
        // e.g. `0 0 30 2 *`: parses, but February has no 30th
        Ok(c) if c.next_after(Timestamp::UNIX_EPOCH).is_none() => errors.push(FieldError {
            field: "spec.schedule".into(),
            problem: format!("{} never comes due", super::shorten(&format!("{:?}", spec.schedule), 66)),
            fix: "pick a day that exists in the month, e.g. \"0 3 1 * *\"".into(),
        }),
        Ok(_) => {}
    }
    if spec.starting_deadline_seconds.is_some_and(|s| s < 0) {
        errors.push(FieldError {
            field: "spec.startingDeadlineSeconds".into(),
            problem: "is negative".into(),
            fix: "give 0 or more seconds, or leave it unset".into(),
        });
    }
    for (field, value) in [
        ("spec.successfulDumpsHistoryLimit", spec.successful_dumps_history_limit),
        ("spec.failedDumpsHistoryLimit", spec.failed_dumps_history_limit),
    ] {
        if value > MAX_HISTORY_LIMIT {
            errors.push(FieldError {
                field: field.into(),
                problem: format!("{value} is more than {MAX_HISTORY_LIMIT}"),
                fix: format!("keep 0 to {MAX_HISTORY_LIMIT} finished DataDumps"),
            });
        }
    }
    if spec.template.date.is_some() {
        errors.push(FieldError {
            field: "spec.template.date".into(),
            problem: "is set".into(),
            fix: "leave it unset: each DataDump's date is its scheduled time's date".into(),
        });
    }
    if let Err(e) = validate(&spec.template, site) {
        errors.extend(e.into_iter().map(|mut e| {
            e.field = match e.field.strip_prefix("spec") {
                Some(rest) => format!("spec.template{rest}"),
                None => e.field,
            };
            e
        }));
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: &str) -> DataDumpScheduleSpec {
        let yaml = format!(
            "schedule: '@monthly'\ntemplate:\n  mediaTypes: [image]\n  destination: {{bucket: my-datasets}}\n  database: {{ssmParameterName: /datadump/db}}\n  instance: {{iamInstanceProfile: worker}}\n{extra}"
        );
        serde_yaml::from_str(&yaml).unwrap()
    }

    fn fields(s: &DataDumpScheduleSpec) -> Vec<String> {
        validate_schedule(Some("catalog"), s, &SiteDefaults::default())
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn defaults_and_a_valid_spec() {
        let s = spec("");
        assert_eq!(s.concurrency_policy, ConcurrencyPolicy::Forbid);
        assert_eq!((s.successful_dumps_history_limit, s.failed_dumps_history_limit), (3, 1));
        assert!(!s.suspend);
        assert_eq!(fields(&s), Vec::<String>::new());
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            ("schedule: '61 * * * *'", "spec.schedule"),
            ("schedule: '* * * *'", "spec.schedule"),
            ("schedule: '0 0 0 * * *'", "spec.schedule"),
            ("schedule: '@fortnightly'", "spec.schedule"),
            ("schedule: '0 0 30 2 *'", "spec.schedule"),
            ("timeZone: Mars/Olympus_Mons", "spec.timeZone"),
            ("startingDeadlineSeconds: -1", "spec.startingDeadlineSeconds"),
            ("successfulDumpsHistoryLimit: 101", "spec.successfulDumpsHistoryLimit"),
        ];
        for (extra, field) in cases {
            let text = format!("{extra}\n");
            // later keys win in YAML maps for this parser only when unique: rebuild instead
            let mut s = spec("");
            let over: serde_json::Value = serde_yaml::from_str(&text).unwrap();
            let mut v = serde_json::to_value(&s).unwrap();
            for (k, x) in over.as_object().unwrap() {
                v[k] = x.clone();
            }
            s = serde_json::from_value(v).unwrap();
            assert_eq!(fields(&s), [field], "{extra}");
        }
    }

    #[test]
    fn template_errors_carry_the_template_path() {
        let mut s = spec("");
        s.template.media_types[0] = crate::MediaType("Bad".into());
        s.template.date = Some("2026-13-01".into());
        let f = fields(&s);
        assert!(f.contains(&"spec.template.mediaTypes[0]".to_string()), "{f:?}");
        assert!(f.contains(&"spec.template.date".to_string()), "{f:?}");
    }

    #[test]
    fn long_names_are_refused() {
        let errors = validate_schedule(Some(&"a".repeat(53)), &spec(""), &SiteDefaults::default()).unwrap_err();
        assert_eq!(errors[0].field, "metadata.name");
    }

    #[test]
    fn macros_and_dates_in_the_time_zone() {
        let c = CronSchedule::parse("@monthly", Some("Europe/Berlin")).unwrap();
        let t: Timestamp = "2026-03-15T12:00:00Z".parse().unwrap();
        let next = c.next_after(t).unwrap();
        // midnight of April 1st in Berlin (CEST) is still March 31st in UTC
        assert_eq!(next.to_string(), "2026-03-31T22:00:00Z");
        assert_eq!(c.date_of(next), "2026-04-01");
        assert_eq!(c.latest_at_or_before(next), Some(next));
    }
}
