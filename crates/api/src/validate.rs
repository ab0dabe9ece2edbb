//! The second validation layer: every rule about a `DataDumpSpec`, with its field path and a
//! fix. The CRD schema enforces what OpenAPI and CEL can say at apply time; this module checks
//! all of it again plus the rest, so `datadump validate` (no cluster) and the controller (which
//! shows the result as the SpecValid condition and launches nothing) agree. Pure, no I/O.
//!
//! The checks of each part of the spec are in their own modules: [`destination`],
//! [`database`], [`output`] (with `spec.odbc2parquet`), [`instance`] and [`card`]
//! (`spec.datasetCard`); this one runs them in order and checks the rest.

mod card;
mod database;
mod destination;
mod instance;
mod output;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use super::resolve::SiteDefaults;
use super::spec::*;

/// One problem in a spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path, e.g. `spec.mediaTypes[1]`.
    pub field: String,
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}; fix: {}", self.field, self.problem, self.fix)
    }
}

/// Formats a list of problems as one message (for a condition or a CLI line).
pub fn summarize(errors: &[FieldError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

static PATTERNS: LazyLock<Patterns> = LazyLock::new(Patterns::new);

struct Patterns {
    bucket: Regex,
    prefix: Regex,
    region: Regex,
    secret_name: Regex,
    secret_key: Regex,
    ssm: Regex,
    version: Regex,
    size: Regex,
    extra_arg: Regex,
    instance_type: Regex,
    image_id: Regex,
    subnet: Regex,
    security_group: Regex,
    instance_profile: Regex,
    key_name: Regex,
    placeholder: Regex,
}

impl Patterns {
    fn new() -> Self {
        let re = |p: &str| Regex::new(p).expect("valid built-in pattern");
        Patterns {
            bucket: re(BUCKET_PATTERN),
            prefix: re(PREFIX_PATTERN),
            region: re(REGION_PATTERN),
            secret_name: re(SECRET_NAME_PATTERN),
            secret_key: re(SECRET_KEY_PATTERN),
            ssm: re(SSM_PARAMETER_PATTERN),
            version: re(VERSION_PATTERN),
            size: re(SIZE_PATTERN),
            extra_arg: re(EXTRA_ARG_PATTERN),
            instance_type: re(INSTANCE_TYPE_PATTERN),
            image_id: re(IMAGE_ID_PATTERN),
            subnet: re(SUBNET_PATTERN),
            security_group: re(SECURITY_GROUP_PATTERN),
            instance_profile: re(INSTANCE_PROFILE_PATTERN),
            key_name: re(KEY_NAME_PATTERN),
            placeholder: re(r"\{[^{}]*\}"),
        }
    }
}

/// Collects problems.
struct Report(Vec<FieldError>);

impl Report {
    fn add(&mut self, field: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            problem: problem.into(),
            fix: fix.into(),
        });
    }

    /// Checks `value` against `re`; `what` describes the expected form.
    fn pattern(&mut self, field: impl Into<String>, value: &str, re: &Regex, what: &str) {
        if !re.is_match(value) {
            self.add(field, format!("{} is not {what}", quote(value)), format!("use {what}"));
        }
    }
}

/// Quotes a user value for a message, shortened so a huge value cannot flood a condition.
fn quote(value: &str) -> String {
    let mut s: String = value.chars().take(64).collect();
    if s.len() < value.len() {
        s.push('…');
    }
    format!("{s:?}")
}

/// Checks a spec, given the controller's site defaults. Returns every problem found.
pub fn validate(spec: &DataDumpSpec, site: &SiteDefaults) -> Result<(), Vec<FieldError>> {
    let mut r = Report(Vec::new());
    check_media_types(&mut r, &spec.media_types);
    destination::check_destination(&mut r, &spec.destination);
    check_date(&mut r, spec.date.as_deref());
    check_query(&mut r, &spec.query);
    database::check_database(&mut r, &spec.database);
    output::check_output(&mut r, spec);
    output::check_odbc2parquet(&mut r, &spec.odbc2parquet);
    instance::check_instance(&mut r, &spec.instance, site);
    check_budget(&mut r, spec);
    if let Some(slack) = spec.notification.as_ref().and_then(|n| n.slack.as_ref()) {
        check_secret_ref(&mut r, "spec.notification.slack.webhookSecretRef", &slack.webhook_secret_ref);
    }
    if let Some(card) = &spec.dataset_card {
        card::check_dataset_card(&mut r, card, &spec.media_types);
    }
    if r.0.is_empty() { Ok(()) } else { Err(r.0) }
}

/// `spec.mediaTypes`: 1 to [`MAX_MEDIA_TYPES`] lower-case SQL identifiers, none twice.
fn check_media_types(r: &mut Report, media_types: &[MediaType]) {
    if media_types.is_empty() {
        r.add("spec.mediaTypes", "is empty", "list at least one table, e.g. [image, audio]");
    }
    if media_types.len() > MAX_MEDIA_TYPES {
        r.add(
            "spec.mediaTypes",
            format!("has {} entries, more than {MAX_MEDIA_TYPES}", media_types.len()),
            "split the export into several DataDumps",
        );
    }
    let mut seen = BTreeSet::new();
    for (i, m) in media_types.iter().enumerate() {
        let field = format!("spec.mediaTypes[{i}]");
        if !datadump_contract::is_identifier(m.as_str()) {
            r.add(
                &field,
                format!("{} is not a lower-case SQL identifier", quote(m.as_str())),
                "use 1-63 characters from a-z, 0-9 and _, starting with a letter or _ (e.g. image)",
            );
        } else if !seen.insert(m.as_str()) {
            r.add(&field, format!("{} is listed twice", quote(m.as_str())), "list each table once");
        }
    }
}

/// `spec.date`, when set: a real calendar date.
fn check_date(r: &mut Report, date: Option<&str>) {
    if let Some(date) = date
        && date_is_invalid(date)
    {
        r.add(
            "spec.date",
            format!("{} is not a calendar date YYYY-MM-DD", quote(date)),
            "give a real date such as 2026-11-01, or leave it unset for the day the dump starts",
        );
    }
}

/// `spec.timeout` within 1m..8760h and `spec.backoffLimit` within 0..[`MAX_BACKOFF_LIMIT`].
fn check_budget(r: &mut Report, spec: &DataDumpSpec) {
    let timeout: std::time::Duration = spec.timeout.into();
    if spec.timeout.is_negative() || timeout < std::time::Duration::from_secs(60) || timeout > std::time::Duration::from_secs(8760 * 3600) {
        r.add(
            "spec.timeout",
            format!("{} is outside 1m..8760h", spec.timeout),
            "give a Go duration between 1m and 8760h, e.g. 168h",
        );
    }
    if spec.backoff_limit > MAX_BACKOFF_LIMIT {
        r.add(
            "spec.backoffLimit",
            format!("{} is more than {MAX_BACKOFF_LIMIT}", spec.backoff_limit),
            "use 0 to 10 retries",
        );
    }
}

/// Whether a `spec.date` is anything but a real `YYYY-MM-DD` date.
pub fn date_is_invalid(date: &str) -> bool {
    date.len() != 10 || date.parse::<jiff::civil::Date>().is_err()
}

/// A Secret key reference (`field`): a name and a key that can exist.
fn check_secret_ref(r: &mut Report, field: &str, s: &SecretKeyRef) {
    check_object_name(r, &format!("{field}.name"), "Secret", &s.name);
    check_object_key(r, &format!("{field}.key"), "Secret", &s.key);
}

/// The name of a Secret or ConfigMap (`kind`) of the DataDump's namespace.
fn check_object_name(r: &mut Report, field: &str, kind: &str, name: &str) {
    if name.len() > 253 {
        r.add(field, "is longer than 253 characters", format!("use the {kind}'s real name"));
    }
    r.pattern(
        field,
        name,
        &PATTERNS.secret_name,
        "a Kubernetes object name (lower-case, digits, - and .)",
    );
}

/// A key inside a Secret or ConfigMap (`kind`).
fn check_object_key(r: &mut Report, field: &str, kind: &str, key: &str) {
    r.pattern(
        field,
        key,
        &PATTERNS.secret_key,
        &format!("a {kind} key (letters, digits, -, _ and .)"),
    );
}

/// `spec.query`: one read-only statement of bounded size that names its table with
/// `{media_type}` and has no other placeholder.
fn check_query(r: &mut Report, q: &str) {
    let field = "spec.query";
    if q.contains('\0') {
        r.add(field, "contains a NUL character", "remove it");
    }
    if q.len() > 8192 {
        r.add(
            field,
            format!("is {} bytes long, more than 8192", q.len()),
            "move the logic into a view and select from it",
        );
    }
    if !q.contains(MEDIA_TYPE_PLACEHOLDER) {
        r.add(
            field,
            "does not name its table with {media_type}, so every media type would export the same rows",
            "write e.g. SELECT * FROM {media_type}",
        );
    }
    for m in PATTERNS.placeholder.find_iter(q) {
        if m.as_str() != MEDIA_TYPE_PLACEHOLDER {
            r.add(
                field,
                format!("has the placeholder {}, but {{media_type}} is the only one", m.as_str()),
                "replace it with a literal value or {media_type}",
            );
        }
    }
    let head = q
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    if !["SELECT", "WITH", "TABLE", "VALUES"].contains(&head.as_str()) {
        r.add(
            field,
            "is not a read-only query (it must start with SELECT, WITH, TABLE or VALUES)",
            "write a SELECT",
        );
    }
    if q.trim_end().trim_end_matches(';').contains(';') {
        r.add(field, "holds more than one statement", "keep a single SELECT");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crd_pattern_and_the_contracts_identifier_rule_agree() {
        let re = Regex::new(MEDIA_TYPE_PATTERN).unwrap();
        for m in ["image", "_a", "a9", "A", "9a", "a-b", "", "é", &"a".repeat(63), &"a".repeat(64)] {
            assert_eq!(re.is_match(m), datadump_contract::is_identifier(m), "{m:?}");
        }
    }

    fn spec(yaml: &str) -> DataDumpSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    const OK: &str = "mediaTypes: [image, audio]\ndestination: {bucket: my-datasets}\ndatabase: {ssmParameterName: /datadump/db}\ninstance: {iamInstanceProfile: worker}\n";

    #[test]
    fn a_minimal_spec_is_valid_and_defaults_are_filled_in() {
        let s = spec(OK);
        assert_eq!(validate(&s, &SiteDefaults::default()), Ok(()));
        assert_eq!(s.query, "SELECT * FROM {media_type}");
        assert_eq!(s.destination.prefix, "data-dump");
        assert_eq!(s.backoff_limit, 1);
        assert_eq!(std::time::Duration::from(s.timeout).as_secs(), 168 * 3600);
        assert_eq!(s.output.file_size_threshold(), "2GiB");
        assert_eq!(s.engine, crate::Engine::Postgres);
    }

    #[test]
    fn site_default_profile_satisfies_the_requirement() {
        let s = spec("mediaTypes: [image]\ndestination: {bucket: my-datasets}\ndatabase: {ssmParameterName: /datadump/db}\n");
        let err = validate(&s, &SiteDefaults::default()).unwrap_err();
        assert_eq!(err[0].field, "spec.instance.iamInstanceProfile");
        let site = SiteDefaults {
            iam_instance_profile: Some("p".into()),
            ..Default::default()
        };
        assert_eq!(validate(&s, &site), Ok(()));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let s = spec("mediaTypes: [Image, image, image]\ndestination: {bucket: A}\nquery: DELETE FROM x\ndatabase: {}\n");
        let fields: Vec<_> = validate(&s, &SiteDefaults::default())
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        for f in [
            "spec.mediaTypes[0]",
            "spec.mediaTypes[2]",
            "spec.destination.bucket",
            "spec.query",
            "spec.database",
            "spec.instance.iamInstanceProfile",
        ] {
            assert!(fields.contains(&f.to_string()), "{f} missing from {fields:?}");
        }
        assert!(
            !fields.contains(&"spec.mediaTypes[1]".to_string()),
            "first `image` is fine: {fields:?}"
        );
    }

    /// Output options that do not fit the codec or the engine, each refused with its field.
    #[test]
    fn output_options_must_fit_the_codec_and_the_engine() {
        let cases: &[(&str, &[&str])] = &[
            ("output: {compressionLevel: 9}", &[]),
            (
                "output: {compression: zstd, compressionLevel: 9, wideNumeric: decimal, time: time}",
                &[],
            ),
            (
                "output: {compression: snappy, compressionLevel: 9}",
                &["spec.output.compressionLevel"],
            ),
            ("engine: odbc2parquet\noutput: {compression: snappy}", &[]),
            (
                "engine: odbc2parquet\noutput: {compressionLevel: 3, contentDefinedChunking: false, wideNumeric: string, time: time}",
                &[
                    "spec.output.compressionLevel",
                    "spec.output.contentDefinedChunking",
                    "spec.output.wideNumeric",
                    "spec.output.time",
                ],
            ),
        ];
        for (extra, want) in cases {
            let s = spec(&format!("{OK}{extra}\n"));
            let got: Vec<String> = validate(&s, &SiteDefaults::default())
                .err()
                .unwrap_or_default()
                .into_iter()
                .map(|e| e.field)
                .collect();
            assert_eq!(got, *want, "{extra}");
        }
        let s = spec(&format!("{OK}output: {{compression: gzip, compressionLevel: 9}}\n"));
        let e = &validate(&s, &SiteDefaults::default()).unwrap_err()[0];
        assert_eq!(
            (e.problem.as_str(), e.fix.as_str()),
            (
                "is a zstd level but spec.output.compression is gzip",
                "remove it, or set spec.output.compression: zstd"
            )
        );
    }

    #[test]
    fn dataset_card_fields_are_checked_with_their_paths() {
        let s = spec(&format!(
            "{OK}datasetCard:\n  prettyName: \"a\\nb\"\n  license: CC-BY\n  gated:\n    prompt: \" \"\n    fields:\n    - {{name: Country, type: country}}\n    - {{name: Country, type: select}}\n    - {{name: Use, type: text, options: [a]}}\n  columns: {{video.title: x, title: y}}\n"
        ));
        let fields: Vec<_> = validate(&s, &SiteDefaults::default())
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "spec.datasetCard.prettyName",
                "spec.datasetCard.license",
                "spec.datasetCard.gated.prompt",
                "spec.datasetCard.gated.fields[1].name",
                "spec.datasetCard.gated.fields[1].options",
                "spec.datasetCard.gated.fields[2].options",
                "spec.datasetCard.columns[\"video.title\"]",
            ]
        );
        let good = spec(&format!(
            "{OK}datasetCard:\n  prettyName: Openverse\n  license: other\n  gated:\n    prompt: Agree\n    fields:\n    - {{name: Affiliation}}\n    - {{name: Use, type: select, options: [research, other]}}\n  columns: {{image.title: x, title: y}}\n"
        ));
        assert_eq!(validate(&good, &SiteDefaults::default()), Ok(()));
    }

    #[test]
    fn tls_needs_one_ca_bundle_source_and_names_that_can_exist() {
        let with_tls = |tls: &str| {
            spec(
                &format!("{OK}database: {{ssmParameterName: /datadump/db, tls: {tls}}}\n")
                    .replace("database: {ssmParameterName: /datadump/db}\n", ""),
            )
        };
        let fields = |tls: &str| -> Vec<String> {
            match validate(&with_tls(tls), &SiteDefaults::default()) {
                Ok(()) => Vec::new(),
                Err(e) => e.into_iter().map(|e| e.field).collect(),
            }
        };
        let good =
            "{caBundle: {configMapKeyRef: {name: rds-ca, key: global-bundle.pem}}, clientCertificateSecretRef: {name: catalog-client}}";
        assert_eq!(fields(good), Vec::<String>::new());
        assert_eq!(
            fields("{caBundle: {secretKeyRef: {name: rds-ca, key: ca.pem}}}"),
            Vec::<String>::new()
        );
        assert_eq!(fields("{}"), Vec::<String>::new(), "an empty tls asks for nothing");
        let both = "{caBundle: {configMapKeyRef: {name: a, key: k}, secretKeyRef: {name: a, key: k}}}";
        assert_eq!(fields(both), ["spec.database.tls.caBundle"]);
        let errors = validate(&with_tls("{caBundle: {}}"), &SiteDefaults::default()).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "spec.database.tls.caBundle");
        assert!(
            errors[0].fix.contains("configMapKeyRef") && errors[0].fix.contains("secretKeyRef"),
            "{}",
            errors[0]
        );
        assert_eq!(
            fields("{caBundle: {configMapKeyRef: {name: RDS_CA, key: 'a b'}}, clientCertificateSecretRef: {name: Client}}"),
            [
                "spec.database.tls.caBundle.configMapKeyRef.name",
                "spec.database.tls.caBundle.configMapKeyRef.key",
                "spec.database.tls.clientCertificateSecretRef.name",
            ]
        );
        assert_eq!(
            fields("{caBundle: {secretKeyRef: {name: ca, key: 'a/b'}}}"),
            ["spec.database.tls.caBundle.secretKeyRef.key"]
        );
        let key = validate(
            &with_tls("{caBundle: {configMapKeyRef: {name: ca, key: 'a b'}}}"),
            &SiteDefaults::default(),
        )
        .unwrap_err();
        assert!(key[0].to_string().contains("a ConfigMap key"), "{}", key[0]);
    }

    #[test]
    fn messages_never_echo_huge_values() {
        let long = "x".repeat(10_000);
        let s = spec(&format!(
            "mediaTypes: [{long}]\ndestination: {{bucket: b{long}}}\ndatabase: {{ssmParameterName: /a}}\ninstance: {{iamInstanceProfile: p}}\n"
        ));
        for e in validate(&s, &SiteDefaults::default()).unwrap_err() {
            assert!(e.to_string().len() < 400, "{e}");
        }
    }
}
