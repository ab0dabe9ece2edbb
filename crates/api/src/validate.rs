//! The second validation layer: every rule about a `DataDumpSpec`, with its field path and a
//! fix. The CRD schema enforces what OpenAPI and CEL can say at apply time; this module checks
//! all of it again plus the rest, so `datadump validate` (no cluster) and the controller (which
//! shows the result as the SpecValid condition and launches nothing) agree. Pure, no I/O.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::LazyLock;

use regex::Regex;

use super::card_spec::{DatasetCardSpec, GatedFieldType};
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

/// odbc2parquet flags the worker sets itself or that would bypass the staged credentials.
const RESERVED_FLAGS: &[&str] = &[
    "--connection-string",
    "--dsn",
    "--user",
    "--password",
    "--prompt",
    "--file-size-threshold",
    "--column-compression-default",
    "--output",
];

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
    let p = &*PATTERNS;
    let mut r = Report(Vec::new());

    // mediaTypes
    if spec.media_types.is_empty() {
        r.add("spec.mediaTypes", "is empty", "list at least one table, e.g. [image, audio]");
    }
    if spec.media_types.len() > MAX_MEDIA_TYPES {
        r.add(
            "spec.mediaTypes",
            format!("has {} entries, more than {MAX_MEDIA_TYPES}", spec.media_types.len()),
            "split the export into several DataDumps",
        );
    }
    let mut seen = BTreeSet::new();
    for (i, m) in spec.media_types.iter().enumerate() {
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

    check_destination(&mut r, &spec.destination);
    if let Some(date) = &spec.date
        && date_is_invalid(date)
    {
        r.add(
            "spec.date",
            format!("{} is not a calendar date YYYY-MM-DD", quote(date)),
            "give a real date such as 2026-11-01, or leave it unset for the day the dump starts",
        );
    }
    check_query(&mut r, &spec.query);

    // database
    let db = &spec.database;
    match (&db.connection_secret_ref, &db.ssm_parameter_name) {
        (Some(_), Some(_)) => r.add(
            "spec.database",
            "sets both connectionSecretRef and ssmParameterName",
            "keep exactly one credential source",
        ),
        (None, None) => r.add(
            "spec.database",
            "sets no credential source",
            "set connectionSecretRef {name, key} or ssmParameterName",
        ),
        _ => {}
    }
    if let Some(s) = &db.connection_secret_ref {
        check_secret_ref(&mut r, "spec.database.connectionSecretRef", s);
    }
    if let Some(name) = &db.ssm_parameter_name {
        r.pattern(
            "spec.database.ssmParameterName",
            name,
            &p.ssm,
            "an SSM parameter name like /datadump/catalog-db",
        );
        let bare = name.trim_start_matches('/').to_ascii_lowercase();
        if bare.starts_with("aws") || bare.starts_with("ssm") {
            r.add(
                "spec.database.ssmParameterName",
                "names a parameter in a namespace AWS reserves (aws…, ssm…)",
                "use your own path, e.g. /datadump/catalog-db",
            );
        }
    }

    if let Some(tls) = &db.tls {
        check_tls(&mut r, tls);
    }

    check_output(&mut r, spec);
    check_odbc2parquet(&mut r, &spec.odbc2parquet);
    check_instance(&mut r, &spec.instance, site);

    // timeout
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
    if let Some(slack) = spec.notification.as_ref().and_then(|n| n.slack.as_ref()) {
        check_secret_ref(&mut r, "spec.notification.slack.webhookSecretRef", &slack.webhook_secret_ref);
    }
    if let Some(card) = &spec.dataset_card {
        check_dataset_card(&mut r, card, &spec.media_types);
    }
    if r.0.is_empty() { Ok(()) } else { Err(r.0) }
}

/// Whether a `spec.date` is anything but a real `YYYY-MM-DD` date.
pub fn date_is_invalid(date: &str) -> bool {
    date.len() != 10 || date.parse::<jiff::civil::Date>().is_err()
}

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

/// `spec.database.tls`: one source of the CA bundle, and object names and keys that can exist.
fn check_tls(r: &mut Report, tls: &DatabaseTls) {
    if let Some(ca) = &tls.ca_bundle {
        let field = "spec.database.tls.caBundle";
        match (&ca.config_map_key_ref, &ca.secret_key_ref) {
            (Some(_), Some(_)) => r.add(
                field,
                "sets both configMapKeyRef and secretKeyRef",
                "keep exactly one source of the CA bundle",
            ),
            (None, None) => r.add(
                field,
                "sets no source",
                "set configMapKeyRef {name, key} (e.g. {name: rds-ca, key: global-bundle.pem}) or secretKeyRef {name, key}, or remove caBundle",
            ),
            _ => {}
        }
        if let Some(c) = &ca.config_map_key_ref {
            check_object_name(r, &format!("{field}.configMapKeyRef.name"), "ConfigMap", &c.name);
            check_object_key(r, &format!("{field}.configMapKeyRef.key"), "ConfigMap", &c.key);
        }
        if let Some(s) = &ca.secret_key_ref {
            check_secret_ref(r, &format!("{field}.secretKeyRef"), s);
        }
    }
    if let Some(s) = &tls.client_certificate_secret_ref {
        check_object_name(r, "spec.database.tls.clientCertificateSecretRef.name", "Secret", &s.name);
    }
}

fn check_destination(r: &mut Report, d: &Destination) {
    let p = &*PATTERNS;
    let b = d.bucket.as_str();
    let field = "spec.destination.bucket";
    let fix = "use 3-63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit";
    if !p.bucket.is_match(b) {
        r.add(field, format!("{} is not a valid S3 bucket name", quote(b)), fix);
    } else if b.contains("..") || b.contains(".-") || b.contains("-.") {
        r.add(field, format!("{} has adjacent dots or a dot next to a hyphen", quote(b)), fix);
    } else if b.parse::<Ipv4Addr>().is_ok() {
        r.add(field, format!("{} is formatted as an IP address", quote(b)), fix);
    } else if ["xn--", "sthree-", "amzn-s3-demo-"].iter().any(|x| b.starts_with(x))
        || ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"]
            .iter()
            .any(|x| b.ends_with(x))
    {
        r.add(field, format!("{} uses a prefix or suffix S3 reserves", quote(b)), fix);
    }
    let prefix = d.prefix.as_str();
    if prefix.len() > 512 {
        r.add("spec.destination.prefix", "is longer than 512 characters", "use a shorter prefix");
    }
    if !p.prefix.is_match(prefix) {
        r.add(
            "spec.destination.prefix",
            format!("{} is not a clean key prefix", quote(prefix)),
            "use slash-separated segments of letters, digits and _.()!*'- with no leading, trailing or double slash (e.g. data-dump)",
        );
    } else if prefix.split('/').any(|seg| seg == "." || seg == "..") {
        r.add("spec.destination.prefix", "has a . or .. segment", "name each folder plainly");
    }
    if let Some(region) = &d.region {
        r.pattern("spec.destination.region", region, &p.region, "an AWS region like eu-west-1");
    }
}

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

fn check_output(r: &mut Report, spec: &DataDumpSpec) {
    let p = &*PATTERNS;
    let o = &spec.output;
    for (field, value, example) in [
        ("spec.output.fileSizeThreshold", &o.file_size_threshold, "2GiB or 512MiB"),
        ("spec.output.rowGroupSize", &o.row_group_size, "64MiB"),
    ] {
        if let Some(v) = value
            && (!p.size.is_match(v) || super::spec::parse_size(v).is_none())
        {
            r.add(field, format!("{} is not a size", quote(v)), format!("a size like {example}"));
        }
    }
    if let Some(v) = o.row_group_size.as_deref().and_then(super::spec::parse_size)
        && !(1 << 20..=4 << 30).contains(&v)
    {
        r.add(
            "spec.output.rowGroupSize",
            format!("{v} bytes is outside 1MiB..4GiB"),
            "use a size like 64MiB",
        );
    }
    if let Some(n) = o.parallelism {
        if !(1..=32).contains(&n) {
            r.add(
                "spec.output.parallelism",
                format!("{n} is outside 1..32"),
                "use 1 to 32 streams, or leave it unset",
            );
        } else if spec.engine == Engine::Odbc2parquet && n > 1 {
            r.add(
                "spec.output.parallelism",
                "applies to the postgres engine only (odbc2parquet reads with one connection)",
                "remove it, or use engine: postgres",
            );
        }
    }
    if spec.engine == Engine::Postgres {
        let o2p = &spec.odbc2parquet;
        if o2p.column_length_limit.is_some() || o2p.batch_size_rows.is_some() || !o2p.extra_args.is_empty() {
            r.add(
                "spec.odbc2parquet",
                "sets odbc2parquet options but spec.engine is postgres, which has no length limits or flags",
                "remove spec.odbc2parquet, or set spec.engine: odbc2parquet",
            );
        }
    }
}

fn check_odbc2parquet(r: &mut Report, o: &Odbc2ParquetSpec) {
    let p = &*PATTERNS;
    r.pattern(
        "spec.odbc2parquet.version",
        &o.version,
        &p.version,
        "an odbc2parquet release like 11.0.1",
    );
    if o.file_size_threshold.is_some() {
        r.add(
            "spec.odbc2parquet.fileSizeThreshold",
            "moved to spec.output.fileSizeThreshold",
            "write it as spec.output.fileSizeThreshold (same syntax, e.g. 2GiB)",
        );
    }
    if o.compression.is_some() {
        r.add(
            "spec.odbc2parquet.compression",
            "moved to spec.output.compression",
            "write it as spec.output.compression (e.g. zstd)",
        );
    }
    if o.column_length_limit == Some(0) {
        r.add(
            "spec.odbc2parquet.columnLengthLimit",
            "is 0",
            "use a positive number of characters, e.g. 65536",
        );
    }
    if o.batch_size_rows == Some(0) {
        r.add(
            "spec.odbc2parquet.batchSizeRows",
            "is 0",
            "use a positive number of rows, or leave it unset",
        );
    }
    if o.extra_args.len() > 32 {
        r.add(
            "spec.odbc2parquet.extraArgs",
            "has more than 32 entries",
            "keep only the flags you need",
        );
    }
    for (i, a) in o.extra_args.iter().enumerate() {
        let field = format!("spec.odbc2parquet.extraArgs[{i}]");
        if !p.extra_arg.is_match(&a.0) || a.0.len() > 1024 {
            r.add(
                &field,
                format!("{} is not a single --flag or --flag=value", quote(&a.0)),
                "write each flag as its own entry, starting with --",
            );
        } else {
            let flag = a.0.split('=').next().unwrap_or_default();
            if RESERVED_FLAGS.contains(&flag) {
                r.add(
                    &field,
                    format!("{flag} is set by the controller"),
                    "use the matching spec field (database, output.fileSizeThreshold, output.compression) instead",
                );
            }
        }
    }
}

fn check_instance(r: &mut Report, i: &InstanceSpec, site: &SiteDefaults) {
    let p = &*PATTERNS;
    if let Some(v) = &i.instance_type {
        r.pattern(
            "spec.instance.instanceType",
            v,
            &p.instance_type,
            "an EC2 instance type like m7g.xlarge",
        );
    }
    if let Some(v) = &i.image_id {
        r.pattern(
            "spec.instance.imageId",
            v,
            &p.image_id,
            "an AMI id like ami-0123456789abcdef0 or resolve:ssm:/aws/service/…",
        );
    }
    if let Some(v) = i.ebs_volume_size_gb
        && !(0..=MAX_EBS_VOLUME_GB).contains(&v)
    {
        r.add(
            "spec.instance.ebsVolumeSizeGb",
            format!("{v} is outside 0..{MAX_EBS_VOLUME_GB}"),
            "give a size in GiB (0 for no extra volume); the worker needs about two output files of space",
        );
    }
    if let Some(v) = &i.subnet_id {
        r.pattern("spec.instance.subnetId", v, &p.subnet, "a subnet id like subnet-0123456789abcdef0");
    }
    if let Some(ids) = &i.security_group_ids {
        if ids.len() > 5 {
            r.add(
                "spec.instance.securityGroupIds",
                "has more than 5 entries",
                "use at most 5 security groups",
            );
        }
        for (n, id) in ids.iter().enumerate() {
            r.pattern(
                format!("spec.instance.securityGroupIds[{n}]"),
                &id.0,
                &p.security_group,
                "a security group id like sg-0123456789abcdef0",
            );
        }
    }
    match (&i.iam_instance_profile, &site.iam_instance_profile) {
        (Some(v), _) => r.pattern(
            "spec.instance.iamInstanceProfile",
            v,
            &p.instance_profile,
            "an instance profile name or ARN",
        ),
        (None, Some(_)) => {}
        (None, None) => r.add(
            "spec.instance.iamInstanceProfile",
            "is not set and the controller has no site default",
            "name the instance profile whose role may write to the bucket (or install the controller with --default-iam-instance-profile)",
        ),
    }
    if let Some(v) = &i.key_name {
        r.pattern("spec.instance.keyName", v, &p.key_name, "an EC2 key pair name");
    }
    if i.tags.len() > MAX_USER_TAGS {
        r.add(
            "spec.instance.tags",
            format!("has {} tags, more than {MAX_USER_TAGS}", i.tags.len()),
            "keep at most 40 tags",
        );
    }
    for (k, v) in &i.tags {
        let field = format!("spec.instance.tags[{}]", quote(k));
        if k.is_empty() || k.chars().count() > 128 {
            r.add(
                &field,
                "key is empty or longer than 128 characters",
                "use a key of 1-128 characters",
            );
        }
        if k.to_ascii_lowercase().starts_with("aws:") || k.starts_with("datadump.dev/") {
            r.add(&field, "key uses a reserved prefix (aws: or datadump.dev/)", "choose another key");
        }
        if v.chars().count() > 256 {
            r.add(&field, "value is longer than 256 characters", "shorten the value");
        }
    }
}

fn check_dataset_card(r: &mut Report, card: &DatasetCardSpec, media_types: &[MediaType]) {
    use crate::card_spec::{LICENSE_PATTERN, MAX_CARD_COLUMNS, MAX_CARD_TEXT, MAX_GATED_FIELDS};
    static LICENSE: LazyLock<Regex> = LazyLock::new(|| Regex::new(LICENSE_PATTERN).expect("license pattern"));
    let long = |r: &mut Report, field: &str, text: &str, max: usize| {
        if text.chars().count() > max {
            r.add(
                field,
                format!("is longer than {max} characters"),
                "shorten it, or link to a longer text",
            );
        }
    };
    if let Some(name) = &card.pretty_name {
        if name.trim().is_empty() || name.contains(['\n', '\r']) {
            r.add(
                "spec.datasetCard.prettyName",
                "is empty or spans several lines",
                "use a one-line name, e.g. Openverse images",
            );
        }
        long(r, "spec.datasetCard.prettyName", name, 200);
    }
    if let Some(license) = &card.license {
        r.pattern(
            "spec.datasetCard.license",
            license,
            &LICENSE,
            "a license identifier as the dataset host spells it (cc-by-4.0, odc-by, other)",
        );
    }
    for (field, text) in [
        ("spec.datasetCard.description", &card.description),
        ("spec.datasetCard.terms", &card.terms),
    ] {
        if let Some(text) = text {
            long(r, field, text, MAX_CARD_TEXT);
        }
    }
    if let Some(gated) = &card.gated {
        if gated.prompt.trim().is_empty() {
            r.add("spec.datasetCard.gated.prompt", "is empty", "say what downloaders agree to");
        }
        long(r, "spec.datasetCard.gated.prompt", &gated.prompt, MAX_CARD_TEXT);
        if gated.fields.len() > MAX_GATED_FIELDS {
            r.add(
                "spec.datasetCard.gated.fields",
                format!("has more than {MAX_GATED_FIELDS} fields"),
                "ask for less",
            );
        }
        let mut names = BTreeSet::new();
        for (i, f) in gated.fields.iter().enumerate() {
            let field = format!("spec.datasetCard.gated.fields[{i}]");
            if f.name.trim().is_empty() || f.name.contains(['\n', '\r']) {
                r.add(
                    format!("{field}.name"),
                    "is empty or spans several lines",
                    "use a one-line label, e.g. Affiliation",
                );
            } else if !names.insert(f.name.as_str()) {
                r.add(
                    format!("{field}.name"),
                    format!("{} is used twice", quote(&f.name)),
                    "give each field its own label",
                );
            }
            long(r, &format!("{field}.name"), &f.name, 200);
            match (f.kind == GatedFieldType::Select, f.options.is_empty()) {
                (true, true) => r.add(format!("{field}.options"), "is empty for a select field", "list the choices"),
                (false, false) => r.add(
                    format!("{field}.options"),
                    format!("is set for a {} field", f.kind.as_str()),
                    "remove options, or use type: select",
                ),
                _ => {}
            }
        }
    }
    if card.columns.len() > MAX_CARD_COLUMNS {
        r.add(
            "spec.datasetCard.columns",
            format!("has more than {MAX_CARD_COLUMNS} entries"),
            "describe fewer columns",
        );
    }
    for (key, text) in &card.columns {
        let field = format!("spec.datasetCard.columns[{}]", quote(key));
        if key.is_empty() {
            r.add(&field, "key is empty", "use COLUMN or MEDIA.COLUMN, e.g. image.title");
        } else if let Some((media, _)) = key.split_once('.')
            && !media_types.iter().any(|m| m.as_str() == media)
        {
            r.add(
                &field,
                format!("names media type {} which is not in spec.mediaTypes", quote(media)),
                "use COLUMN for every media type, or MEDIA.COLUMN with a listed media type",
            );
        }
        long(r, &field, text, 2000);
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
