//! Turns a [`WorkerJob`] into EC2 user data. Pure, no I/O.
//!
//! The user data is `script.sh` up to its `#@JOB@` line, then one quoted here-document per job
//! value (`job NAME <<'DELIM'`; bash expands nothing inside, and the delimiter is chosen so no
//! value has a line equal to it), then the fixed program: the rest of `script.sh` without
//! comments and indentation, gzip+base64 (`program.gz`, kept in sync by a test).

use std::sync::LazyLock;

use base64::Engine;

use super::options::{driver_options, odbc2parquet_args};
use super::{RenderError, WorkerJob, contract};
use crate::api::{DataDumpSpec, MEDIA_TYPE_PLACEHOLDER, MediaType};

/// EC2's limit for user data, in bytes before base64.
pub const USER_DATA_LIMIT: usize = 16 * 1024;

const TEMPLATE: &str = include_str!("script.sh");
const JOB_MARKER: &str = "#@JOB@\n";
/// `gzip -9n` of [`program`]; regenerate with `DATADUMP_BLESS=1 cargo test --lib worker`.
pub(super) const PROGRAM_GZ: &[u8] = include_bytes!("program.gz");

static PROGRAM_B64: LazyLock<String> = LazyLock::new(|| base64::engine::general_purpose::STANDARD.encode(PROGRAM_GZ));

fn template_parts() -> (&'static str, &'static str) {
    TEMPLATE.split_once(JOB_MARKER).expect("script.sh has a #@JOB@ line")
}

/// The fixed worker program as it runs (the part of `script.sh` after the job values, without
/// comment lines and indentation), for `datadump render` to show in full.
pub fn program() -> String {
    let mut out: String = template_parts()
        .1
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}

/// One job value: the script's name for it, the spec field it comes from (for errors), the
/// value.
type Field = (&'static str, &'static str, String);

/// The values that differ between [`render`] and [`render_preview`].
struct Run<'a> {
    date: &'a str,
    attempt: String,
    token: &'a str,
    deadline: String,
    deadline_iso: String,
    parameter: &'a str,
    region: &'a str,
}

fn is_sql_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z' | '_')) && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_')) && s.len() <= 63
}

fn fields(spec: &DataDumpSpec, media: &MediaType, run: Run<'_>) -> Result<Vec<Field>, RenderError> {
    let m = media.as_str();
    if !is_sql_identifier(m) {
        return Err(RenderError::InvalidMediaType(m.to_string()));
    }
    let d = &spec.destination;
    let mut f: Vec<Field> = vec![
        ("media_type", "spec.mediaTypes", m.to_string()),
        ("date", "dump date", run.date.to_string()),
        ("attempt", "attempt", run.attempt),
        ("token", "token", run.token.to_string()),
        ("deadline", "deadline", run.deadline),
        ("deadline_iso", "deadline", run.deadline_iso),
        ("bucket", "spec.destination.bucket", d.bucket.clone()),
        (
            "key_prefix",
            "spec.destination.prefix",
            contract::media_prefix(&d.prefix, run.date, m),
        ),
        (
            "s3_region",
            "spec.destination.region",
            d.region.clone().unwrap_or_else(|| run.region.to_string()),
        ),
        ("region", "region", run.region.to_string()),
        ("parameter", "SSM parameter", run.parameter.to_string()),
        (
            "odbc2parquet_version",
            "spec.odbc2parquet.version",
            spec.odbc2parquet.version.clone(),
        ),
        ("query", "spec.query", spec.query.replace(MEDIA_TYPE_PLACEHOLDER, m)),
    ];
    f.extend(
        odbc2parquet_args(&spec.odbc2parquet)
            .into_iter()
            .map(|a| ("arg", "spec.odbc2parquet.extraArgs", a)),
    );
    let opts: Vec<String> = driver_options(&spec.odbc2parquet)
        .iter()
        .map(|o| format!("{} {} {}", o.name, o.alias, o.value))
        .collect();
    f.push(("opts", "driver options", opts.join("\n")));
    Ok(f)
}

/// A here-document delimiter that is no line of any value.
fn delimiter(fields: &[Field]) -> String {
    (0..)
        .map(|n| format!("J{n}"))
        .find(|d| !fields.iter().any(|(_, _, v)| v.split('\n').any(|line| line == d)))
        .expect("some delimiter is free")
}

fn assemble(fields: &[Field]) -> Result<String, RenderError> {
    if let Some((_, what, _)) = fields.iter().find(|(_, _, v)| v.contains('\0')) {
        return Err(RenderError::NulByte(what));
    }
    let delim = delimiter(fields);
    let mut out = String::with_capacity(USER_DATA_LIMIT);
    out.push_str(template_parts().0);
    for (name, _, value) in fields {
        out.push_str(&format!("job {name} <<'{delim}'\n{value}\n{delim}\n"));
    }
    out.push_str("# The program: src/worker/script.sh (`datadump render` shows it).\nPROGRAM=$(base64 -d <<<'");
    out.push_str(&PROGRAM_B64);
    out.push_str("' | gunzip)\neval \"$PROGRAM\"\n");
    if out.len() > USER_DATA_LIMIT {
        return Err(RenderError::TooLarge {
            size: out.len(),
            limit: USER_DATA_LIMIT,
        });
    }
    Ok(out)
}

/// Renders the user data of one worker run: a bash script for Amazon Linux 2023 that also runs
/// locally (see the environment overrides in `script.sh`).
pub fn render(job: &WorkerJob<'_>) -> Result<String, RenderError> {
    let date = job.dump_date;
    if date.len() != 10 || jiff::civil::Date::strptime("%Y-%m-%d", date).is_err() {
        return Err(RenderError::InvalidDate(date.to_string()));
    }
    let run = Run {
        date,
        attempt: job.attempt.to_string(),
        token: job.token,
        deadline: job.deadline.as_second().to_string(),
        deadline_iso: job.deadline.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        parameter: job.ssm_parameter,
        region: job.region,
    };
    assemble(&fields(job.spec, job.media_type, run)?)
}

/// Renders user data for `datadump render`: like [`render`], with placeholders for what only
/// a launch knows (date, attempt, token, deadline, the staged parameter and the region).
pub fn render_preview(spec: &DataDumpSpec, media_type: &MediaType) -> Result<String, RenderError> {
    let run = Run {
        date: "DUMP-DATE",
        attempt: "<attempt>".into(),
        token: "<token>",
        deadline: "<deadline-epoch-seconds>".into(),
        deadline_iso: "<deadline>".into(),
        parameter: spec.database.ssm_parameter_name.as_deref().unwrap_or("<staged-ssm-parameter>"),
        region: "<region>",
    };
    assemble(&fields(spec, media_type, run)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ExtraArg;
    use crate::worker::testkit::{bash_syntax_ok, job, lib_out, sample_spec};
    use proptest::prelude::*;

    /// Renders a job, runs only its decoding part in bash and returns every value it decoded.
    fn decoded(script: &str) -> Vec<String> {
        let out = lib_out(
            script,
            r#"for k in "${!JOB[@]}"; do printf '%s=%s\0' "$k" "${JOB[$k]}"; done; for a in "${ARGS[@]}"; do printf 'arg=%s\0' "$a"; done"#,
        );
        let mut v: Vec<String> = out.split('\0').filter(|s| !s.is_empty()).map(String::from).collect();
        v.sort();
        v
    }

    fn expected(spec: &DataDumpSpec, media: &str, date: &str, token: &str, parameter: &str) -> Vec<String> {
        let run = Run {
            date,
            attempt: "2".into(),
            token,
            deadline: "1800000000".into(),
            deadline_iso: "2027-01-15T08:00:00Z".into(),
            parameter,
            region: "eu-west-1",
        };
        let mut v: Vec<String> = fields(spec, &MediaType(media.into()), run)
            .unwrap()
            .into_iter()
            .map(|(k, _, v)| format!("{k}={v}"))
            .collect();
        v.sort();
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Arbitrary strings in every user field (quotes, `$()`, backticks, newlines, unicode,
        /// lines that look like delimiters) give a script that bash parses and that decodes
        /// every value exactly.
        #[test]
        fn every_value_round_trips_as_data(
            query in "(SELECT|[^\0]{0,40}|'|\"|\\$\\(touch /tmp/datadump-pwned\\)|`touch /tmp/datadump-pwned`|\n|J0|\nJ0\n|\\\\|é東|\\{media_type\\}){0,12}",
            prefix in "[^\0]{0,30}",
            bucket in "[^\0]{0,20}",
            region in "[^\0]{0,12}",
            token in "[^\0]{0,20}|\nJ0\nJ1\n",
            parameter in "[^\0]{0,20}",
            version in "[^\0]{0,10}",
            extra in proptest::collection::vec("[^\0]{0,20}|J0", 0..4),
            media in "[a-z_][a-z0-9_]{0,10}",
        ) {
            let mut spec = sample_spec();
            spec.query = query;
            spec.destination.prefix = prefix.clone();
            spec.destination.bucket = bucket;
            spec.destination.region = Some(region);
            spec.odbc2parquet.version = version;
            spec.odbc2parquet.extra_args = extra.into_iter().map(ExtraArg).collect();
            let media_type = MediaType(media.clone());
            let deadline = jiff::Timestamp::from_second(1_800_000_000).unwrap();
            let script = render(&job(&spec, &media_type, "2026-11-01", &token, &parameter, deadline)).unwrap();
            prop_assert!(bash_syntax_ok(&script));
            let values = decoded(&script);
            prop_assert_eq!(&values, &expected(&spec, &media, "2026-11-01", &token, &parameter));
            let key_prefix = format!("key_prefix={}", contract::media_prefix(&prefix, "2026-11-01", &media));
            prop_assert!(values.contains(&key_prefix));
            prop_assert!(!std::path::Path::new("/tmp/datadump-pwned").exists(), "a value ran as code");
        }

        /// Only SQL identifiers become media types.
        #[test]
        fn media_types_must_be_identifiers(media in "[^\0]{0,70}") {
            let spec = sample_spec();
            let deadline = jiff::Timestamp::now();
            let result = render(&job(&spec, &MediaType(media.clone()), "2026-11-01", "t", "/p", deadline));
            let valid = regex::Regex::new(crate::api::MEDIA_TYPE_PATTERN).unwrap().is_match(&media);
            prop_assert_eq!(result.is_ok(), valid, "{:?}", result.err());
        }
    }

    #[test]
    fn bad_values_are_refused() {
        let mut spec = sample_spec();
        let m = MediaType("image".into());
        let now = jiff::Timestamp::now();
        assert_eq!(
            render(&job(&spec, &m, "2026-13-01", "t", "/p", now)),
            Err(RenderError::InvalidDate("2026-13-01".into()))
        );
        assert_eq!(
            render(&job(&spec, &m, "2026-1-01", "t", "/p", now)).unwrap_err().metric_label(),
            "invalid_date"
        );
        spec.query = "SELECT 1\0".into();
        assert_eq!(
            render(&job(&spec, &m, "2026-11-01", "t", "/p", now)),
            Err(RenderError::NulByte("spec.query"))
        );
    }

    /// An ordinary spec stays well under the limit (the program and framing take about 7 KiB);
    /// the largest query validation accepts (8 KiB) with realistic other fields still fits; and
    /// a spec beyond the limit is refused, never truncated.
    #[test]
    fn a_maximal_spec_stays_under_the_user_data_limit() {
        let now = jiff::Timestamp::now();
        let default = render(&job(&sample_spec(), &MediaType("image".into()), "2026-11-01", "t", "/p", now)).unwrap();
        assert!(default.len() < USER_DATA_LIMIT / 2, "a default spec takes {} bytes", default.len());

        let mut spec = sample_spec();
        let filler = "SELECT * FROM {media_type} WHERE $(x) `y` = 'é' ".to_string() + &"OR \"c\" = '$x' ".repeat(600);
        spec.query = filler[..8192].to_string();
        spec.destination.prefix = "exports/openverse/catalog-dumps".into();
        spec.destination.bucket = "b".repeat(63);
        spec.destination.region = Some("ap-southeast-4".into());
        spec.odbc2parquet.extra_args = (0..6)
            .map(|i| ExtraArg(format!("--parquet-column-encoding=column_{i}:delta-binary-packed")))
            .collect();
        // Shaped like the controller's: a 36-character token, `/datadump/UID/MEDIA`.
        let m = MediaType("audio_set_members".into());
        let token = format!("ddt-{}", "0".repeat(32));
        let parameter = format!("/datadump/{}/{m}", uuid_like());
        let script = render(&job(&spec, &m, "2026-11-01", &token, &parameter, now)).unwrap();
        // It fits, but with only a few hundred bytes to spare: see the report on the budget.
        assert!(script.len() <= USER_DATA_LIMIT, "{} bytes", script.len());
        eprintln!(
            "user data: default spec {} bytes, 8 KiB query {} bytes",
            default.len(),
            script.len()
        );
        assert!(bash_syntax_ok(&script));

        spec.destination.prefix = "p".repeat(512);
        spec.odbc2parquet.extra_args = (0..32).map(|_| ExtraArg(format!("--x={}", "v".repeat(1000)))).collect();
        let err = render(&job(&spec, &m, "2026-11-01", "t", "/p", now)).unwrap_err();
        assert!(
            matches!(
                err,
                RenderError::TooLarge {
                    limit: USER_DATA_LIMIT,
                    ..
                }
            ),
            "{err}"
        );
    }

    fn uuid_like() -> String {
        "0c4c3a1e-9f0d-4a55-8f53-5d1b2a7c9e10".into()
    }

    #[test]
    fn preview_shows_placeholders_and_the_query() {
        let spec = sample_spec();
        let text = render_preview(&spec, &MediaType("audio".into())).unwrap();
        for needle in [
            "<token>",
            "<deadline>",
            "DUMP-DATE/audio/",
            "SELECT * FROM audio",
            "/datadump/catalog",
        ] {
            assert!(text.contains(needle), "{needle} missing");
        }
        assert!(bash_syntax_ok(&text));
    }

    #[test]
    fn the_program_parses_and_carries_no_comments() {
        let p = program();
        assert!(bash_syntax_ok(&p));
        assert!(p.len() > 4000 && !p.contains("\n#"));
    }
}
