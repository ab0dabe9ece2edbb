//! Property tests for the two entry points that read user input: `parse_documents` (any text,
//! as `datadump validate -f` gets it) and `validate` (any field values, as the controller gets
//! them from an API server that may not enforce the CRD schema). For thousands of generated
//! inputs: nothing panics, every problem names a field path (`spec…`, or `document N` for a
//! whole document), and every message stays short however large the input was. Pure.

use std::sync::LazyLock;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::{DataDump, DataDumpSpec, FieldError, SiteDefaults, parse_documents, validate};

/// The longest a rendered problem (`field: problem; fix: …`) may be, in characters. Conditions,
/// Events and CLI lines carry these; a user value must never blow them up.
const MAX_MESSAGE: usize = 1024;

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Where a problem may be reported: a whole document, or a path from the object's root — in
/// practice `spec…`, and for a broken object outside its spec, `metadata…`, `apiVersion`, `kind`
/// or `status…` (serde's path; more useful than `document N`).
fn names_a_field(e: &FieldError) -> bool {
    let f = e.field.as_str();
    let root = f.split(['.', '[']).next().unwrap_or_default();
    f.starts_with("document ") || ["spec", "metadata", "apiVersion", "kind", "status"].contains(&root)
}

fn check(e: &FieldError) -> Result<(), TestCaseError> {
    prop_assert!(names_a_field(e), "error does not name a spec field or document: {:?}", e.field);
    let shown = e.to_string();
    let n = shown.chars().count();
    prop_assert!(
        n <= MAX_MESSAGE,
        "message of {} characters for field {:.80}: {:.300}…",
        n,
        e.field,
        shown
    );
    prop_assert!(!e.problem.is_empty() && !e.fix.is_empty(), "a problem and a fix: {e:?}");
    Ok(())
}

/// Parses `text` and validates what parses; checks every error.
fn parse_and_validate(text: &str) -> Result<usize, TestCaseError> {
    let mut n = 0;
    for doc in parse_documents(text) {
        n += 1;
        match doc {
            Err(e) => check(&e)?,
            Ok(dd) => {
                if let Err(errors) = validate(&dd.spec, &SiteDefaults::default()) {
                    prop_assert!(!errors.is_empty());
                    for e in &errors {
                        check(e)?;
                    }
                }
            }
        }
    }
    Ok(n)
}

/// Values that have broken parsers and shells before.
static NASTY: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut v: Vec<String> = [
        "",
        " ",
        "\n",
        "\r\n",
        "\t",
        "\0",
        "~",
        "null",
        "Null",
        "NULL",
        "true",
        "no",
        "off",
        "yes",
        "0x1F",
        "0o17",
        "1e309",
        "-0",
        ".inf",
        "-.nan",
        "123456789012345678901234567890",
        "-1",
        "2147483648",
        "4294967296",
        "18446744073709551616",
        "$(reboot)",
        "`id`",
        "${IFS}",
        "'; DROP TABLE image; --",
        "\"; rm -rf / #",
        "a\nb",
        "J0",
        "EOF",
        "'\\''",
        "%s%s%s%n",
        "{media_type}",
        "{other}",
        "{{media_type}}",
        "--password=x",
        "--output=/etc/passwd",
        "../../etc",
        "s3://b/k",
        "ünïcødé",
        "💥🔥",
        "\u{202e}reversed",
        "\u{feff}bom",
        "\u{200b}",
        "ﬁ",
        "İ",
        "𝕒",
        "SELECT * FROM {media_type}",
        "SELECT * FROM {media_type}; DELETE FROM x",
        "image",
        "audio",
        "datasets",
        "/datadump/db",
        "m7g.xlarge",
        "ami-0123456789abcdef0",
        "subnet-0123456789abcdef0",
        "sg-0123456789abcdef0",
        "168h",
        "1m",
        "0s",
        "-5m",
        "999999999h",
        "1.5h",
        "2GiB",
        "0",
        "-",
        "--",
        "---",
        "...",
        "&a",
        "*a",
        "!!binary AAAA",
        "? complex",
        "- item",
        "[",
        "{",
        "]",
        "}",
        ":",
        ": ",
        "#comment",
        "|",
        ">",
        "@",
        "`",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // long values (the 1 MiB ones are in `huge_values_give_short_messages`, so that a failing
    // case here stays readable): several times any message bound
    v.push("x".repeat(5000));
    v.push("$(`;|&".repeat(900));
    v.push("line\n".repeat(1000));
    v.push("é".repeat(3000));
    v
});

fn nasty() -> impl Strategy<Value = String> {
    prop::sample::select(NASTY.clone())
}

/// Short strings over an alphabet of shell, SQL, YAML and Unicode trouble.
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => nasty(),
        3 => "[a-z0-9_$`'\"\\\\;|&<>(){}\\[\\]\n\r\t *?~#!%:,./=@+-]{0,40}",
        2 => any::<String>(),
        1 => "[a-z_][a-z0-9_]{0,70}",
    ]
}

/// Any JSON value, hostile strings at the leaves.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        hostile_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(hostile_string(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The spec fields a user can write, as JSON pointers below `/spec`.
const FIELDS: &[&str] = &[
    "",
    "/mediaTypes",
    "/mediaTypes/0",
    "/mediaTypes/1",
    "/destination",
    "/destination/bucket",
    "/destination/prefix",
    "/destination/region",
    "/query",
    "/database",
    "/database/connectionSecretRef",
    "/database/connectionSecretRef/name",
    "/database/connectionSecretRef/key",
    "/database/ssmParameterName",
    "/database/tls",
    "/database/tls/caBundle",
    "/database/tls/caBundle/configMapKeyRef",
    "/database/tls/caBundle/configMapKeyRef/name",
    "/database/tls/caBundle/configMapKeyRef/key",
    "/database/tls/caBundle/secretKeyRef",
    "/database/tls/caBundle/secretKeyRef/key",
    "/database/tls/clientCertificateSecretRef",
    "/database/tls/clientCertificateSecretRef/name",
    "/odbc2parquet",
    "/odbc2parquet/version",
    "/odbc2parquet/fileSizeThreshold",
    "/odbc2parquet/compression",
    "/odbc2parquet/columnLengthLimit",
    "/odbc2parquet/batchSizeRows",
    "/odbc2parquet/extraArgs",
    "/odbc2parquet/extraArgs/0",
    "/instance",
    "/instance/instanceType",
    "/instance/imageId",
    "/instance/ebsVolumeSizeGb",
    "/instance/ebsVolumeType",
    "/instance/subnetId",
    "/instance/securityGroupIds",
    "/instance/securityGroupIds/0",
    "/instance/iamInstanceProfile",
    "/instance/keyName",
    "/instance/spot",
    "/instance/tags",
    "/timeout",
    "/backoffLimit",
    "/suspend",
    "/notification",
    "/notification/slack/webhookSecretRef/name",
    "/notification/slack/webhookSecretRef/key",
];

fn base() -> Value {
    json!({
        "apiVersion": "datadump.dev/v1alpha1",
        "kind": "DataDump",
        "metadata": {"name": "catalog", "namespace": "data"},
        "spec": {
            "mediaTypes": ["image", "audio"],
            "destination": {"bucket": "my-datasets", "prefix": "data-dump"},
            "query": "SELECT * FROM {media_type}",
            "database": {
                "connectionSecretRef": {"name": "catalog-db", "key": "connectionString"},
                "tls": {
                    "caBundle": {"configMapKeyRef": {"name": "rds-ca", "key": "global-bundle.pem"}},
                    "clientCertificateSecretRef": {"name": "catalog-client"},
                },
            },
            "odbc2parquet": {"version": "11.0.1", "extraArgs": ["--batch-size-memory=64MiB"]},
            "instance": {"iamInstanceProfile": "worker", "securityGroupIds": ["sg-0123456789abcdef0"], "tags": {"team": "data"}},
            "timeout": "168h",
            "notification": {"slack": {"webhookSecretRef": {"name": "slack", "key": "url"}}},
        }
    })
}

/// Sets (creating parents as needed) or removes the value at `/spec` + `pointer`.
fn mutate(doc: &mut Value, pointer: &str, value: Option<Value>) {
    let mut at = &mut doc["spec"];
    let parts: Vec<&str> = pointer.split('/').skip(1).collect();
    let Some((last, parents)) = parts.split_last() else {
        if let Some(v) = value {
            *at = v;
        } else {
            doc.as_object_mut().unwrap().remove("spec");
        }
        return;
    };
    for p in parents {
        if !at.is_object() && !at.is_array() {
            *at = json!({});
        }
        at = match at {
            Value::Array(a) => {
                let i: usize = p.parse().unwrap_or(0);
                while a.len() <= i {
                    a.push(Value::Null);
                }
                &mut a[i]
            }
            other => other.as_object_mut().unwrap().entry(p.to_string()).or_insert(json!({})),
        };
    }
    match (at, value) {
        (Value::Array(a), v) => {
            let i: usize = last.parse().unwrap_or(0);
            match v {
                Some(v) => {
                    while a.len() <= i {
                        a.push(Value::Null);
                    }
                    a[i] = v;
                }
                None if i < a.len() => {
                    a.remove(i);
                }
                None => {}
            }
        }
        (Value::Object(o), Some(v)) => {
            o.insert(last.to_string(), v);
        }
        (Value::Object(o), None) => {
            o.remove(*last);
        }
        (other, Some(v)) => {
            let mut m = serde_json::Map::new();
            m.insert(last.to_string(), v);
            *other = Value::Object(m);
        }
        (_, None) => {}
    }
}

/// A mutation: a field, and a new value for it (or its removal).
fn mutation() -> impl Strategy<Value = (&'static str, Option<Value>)> {
    (
        prop::sample::select(FIELDS),
        prop_oneof![1 => Just(None), 6 => json_value().prop_map(Some)],
    )
}

/// Token soup that looks enough like YAML to get past the first character.
fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        4 => prop::sample::select(vec![
            "apiVersion: datadump.dev/v1alpha1\n", "kind: DataDump\n", "metadata: {name: x}\n", "spec:\n",
            "  mediaTypes: [image, audio]\n", "  destination: {bucket: my-datasets}\n",
            "  database: {ssmParameterName: /datadump/db}\n", "  instance: {iamInstanceProfile: worker}\n",
            "  query: SELECT * FROM {media_type}\n", "  timeout: 168h\n", "  backoffLimit: 3\n", "  tags:\n",
            "---\n", "...\n", "- ", ": ", "{", "}", "[", "]", ", ", "&a ", "*a", "!!binary ", "!!str ", "!!int ",
            "!custom ", "? ", "|\n", ">-\n", "'", "\"", "# c\n", "%YAML 1.2\n", "%TAG ! tag:x,2000:\n", "\t", "  ", "    ",
            "\n", "<<: *a\n", "\\", "\u{feff}", "\r",
        ])
        .prop_map(str::to_string),
        2 => "[a-zA-Z0-9_{}$`]{1,10}",
        1 => hostile_string(),
    ];
    vec(token, 0..48).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(cases(3000))]

    /// Arbitrary text: `datadump validate -f` on anything never panics, and what it reports
    /// names a document or a spec field, briefly.
    #[test]
    fn any_text_parses_or_says_which_document_is_wrong(text in prop_oneof![any::<String>(), yamlish()]) {
        parse_and_validate(&text)?;
    }

    /// A valid object with up to four fields replaced by arbitrary values (wrong types, hostile
    /// strings, huge values, nulls) or removed: parsing then validating never panics, and every
    /// problem names the spec field, briefly.
    #[test]
    fn arbitrary_field_values_are_refused_by_field(mutations in vec(mutation(), 1..5), as_json in any::<bool>()) {
        let mut doc = base();
        for (pointer, value) in mutations {
            mutate(&mut doc, pointer, value);
        }
        let text = if as_json { serde_json::to_string(&doc).unwrap() } else { serde_yaml::to_string(&doc).unwrap() };
        let n = parse_and_validate(&text)?;
        prop_assert_eq!(n, 1, "one document in, one result out");
    }
}

proptest! {
    #![proptest_config(cases(2500))]

    /// Well-typed specs with arbitrary strings everywhere: `validate` never panics and stays
    /// brief; a spec it accepts has only values the worker and AWS can take.
    #[test]
    fn validate_is_total_on_typed_specs(
        media in vec(hostile_string(), 0..20),
        bucket in hostile_string(),
        prefix in hostile_string(),
        region in proptest::option::of(hostile_string()),
        query in hostile_string(),
        secret in proptest::option::of((hostile_string(), hostile_string())),
        ssm in proptest::option::of(hostile_string()),
        version in hostile_string(),
        size in hostile_string(),
        extra in vec(hostile_string(), 0..40),
        strings in vec(proptest::option::of(hostile_string()), 5),
        sgs in proptest::option::of(vec(hostile_string(), 0..8)),
        ebs in proptest::option::of(any::<i32>()),
        tags in btree_map(hostile_string(), hostile_string(), 0..50),
        limits in (proptest::option::of(any::<u32>()), proptest::option::of(any::<u32>()), any::<u32>()),
        timeout_secs in any::<i64>(),
    ) {
        let mut spec: DataDumpSpec = serde_json::from_value(base()["spec"].clone()).unwrap();
        spec.media_types = media.into_iter().map(super::MediaType).collect();
        spec.destination.bucket = bucket;
        spec.destination.prefix = prefix;
        spec.destination.region = region;
        spec.query = query;
        spec.database.connection_secret_ref = secret.map(|(name, key)| super::SecretKeyRef { name, key });
        spec.database.ssm_parameter_name = ssm;
        spec.odbc2parquet.version = version;
        spec.output.file_size_threshold = Some(size);
        spec.odbc2parquet.extra_args = extra.into_iter().map(super::ExtraArg).collect();
        spec.odbc2parquet.column_length_limit = limits.0;
        spec.odbc2parquet.batch_size_rows = limits.1;
        spec.backoff_limit = limits.2;
        let [t, i, s, p, k]: [Option<String>; 5] = strings.try_into().unwrap();
        spec.instance.instance_type = t;
        spec.instance.image_id = i;
        spec.instance.subnet_id = s;
        spec.instance.iam_instance_profile = p;
        spec.instance.key_name = k;
        spec.instance.security_group_ids = sgs.map(|v| v.into_iter().map(super::SecurityGroupId).collect());
        spec.instance.ebs_volume_size_gb = ebs;
        spec.instance.tags = tags;
        let secs = timeout_secs.rem_euclid(20_000 * 3600);
        spec.timeout = std::time::Duration::from_secs(secs as u64).into();
        match validate(&spec, &SiteDefaults::default()) {
            Err(errors) => {
                for e in &errors {
                    check(e)?;
                }
            }
            Ok(()) => {
                // what the validator lets through is what the CRD schema's patterns allow
                let re = |p: &str| regex::Regex::new(p).unwrap();
                prop_assert!(!spec.media_types.is_empty() && spec.media_types.len() <= super::MAX_MEDIA_TYPES);
                for m in &spec.media_types {
                    prop_assert!(re(super::MEDIA_TYPE_PATTERN).is_match(m.as_str()));
                }
                prop_assert!(re(super::BUCKET_PATTERN).is_match(&spec.destination.bucket));
                prop_assert!(re(super::PREFIX_PATTERN).is_match(&spec.destination.prefix));
                prop_assert!(!spec.query.contains('\0') && spec.query.len() <= 8192);
                for t in spec.instance.tags.keys() {
                    prop_assert!(!t.starts_with("datadump.dev/") && !t.to_ascii_lowercase().starts_with("aws:"));
                }
            }
        }
    }
}

/// A YAML "billion laughs" document: nine levels of aliases that would expand to 10^9 nodes.
#[test]
fn alias_bombs_are_refused_quickly() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        text.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
    }
    text.push_str("spec:\n  mediaTypes: *a9\n");
    let started = std::time::Instant::now();
    let docs = parse_documents(&text);
    assert_eq!(docs.len(), 1);
    let e = docs[0].as_ref().expect_err("refused");
    assert!(names_a_field(e), "{e}");
    assert!(e.to_string().chars().count() <= MAX_MESSAGE);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

/// Deep nesting does not overflow the stack.
#[test]
fn deep_nesting_is_refused_without_overflow() {
    let depth = 5_000;
    let flow = format!("spec: {}{}", "[".repeat(depth), "]".repeat(depth));
    let maps = format!("spec: {}{}", "{a: ".repeat(depth), "}".repeat(depth));
    let block: String = (0..depth).map(|i| format!("{}- x\n", "  ".repeat(i))).collect();
    for text in [flow, maps, block] {
        for d in parse_documents(&text) {
            if let Err(e) = d {
                assert!(names_a_field(&e), "{e}");
                assert!(e.to_string().chars().count() <= MAX_MESSAGE);
            }
        }
    }
}

/// 1 MiB values in every position serde or the validator may echo: a key, a value of the wrong
/// type, a value of the right type, a list entry. Messages stay short.
#[test]
fn huge_values_give_short_messages() {
    let huge = "x".repeat(1 << 20);
    let texts = [
        huge.clone(),
        format!("spec: {{mediaTypes: {huge}}}"),
        format!(
            "spec: {{mediaTypes: [image], destination: {{bucket: b{huge}}}, database: {{ssmParameterName: /d}}, instance: {{iamInstanceProfile: p, tags: {{k{huge}: v}}}}}}"
        ),
        format!(
            "spec: {{mediaTypes: [image], destination: {{bucket: datasets}}, database: {{ssmParameterName: /d}}, instance: {{iamInstanceProfile: p, ebsVolumeSizeGb: {huge}}}}}"
        ),
        format!(
            "spec: {{mediaTypes: [image], destination: {{bucket: datasets}}, database: {{ssmParameterName: /d}}, query: 'SELECT {huge} FROM {{media_type}}', odbc2parquet: {{extraArgs: [--x={huge}]}}, instance: {{iamInstanceProfile: p, tags: {{a: {huge}}}}}}}"
        ),
        format!(
            "spec: {{mediaTypes: [image], destination: {{bucket: datasets}}, database: {{ssmParameterName: /d}}, instance: {{iamInstanceProfile: p}}}}\n{{{huge}"
        ),
    ];
    for text in &texts {
        let docs = parse_documents(text);
        assert!(!docs.is_empty());
        for d in docs {
            let errors = match d {
                Err(e) => vec![e],
                Ok(dd) => validate(&dd.spec, &SiteDefaults::default()).err().unwrap_or_default(),
            };
            assert!(!errors.is_empty(), "a 1 MiB value is refused");
            for e in errors {
                let n = e.to_string().chars().count();
                assert!(names_a_field(&e) && n <= MAX_MESSAGE, "{n} characters: {:.200}…", e.to_string());
            }
        }
    }
}

/// Every object kind in a multi-document file is read as a DataDump; what the field paths of
/// the errors say about the other documents.
#[test]
fn errors_in_later_documents_name_their_document() {
    let text = "apiVersion: datadump.dev/v1alpha1\nkind: DataDump\nmetadata: {name: a}\nspec: {mediaTypes: [image], destination: {bucket: my-datasets}, database: {ssmParameterName: /d}, instance: {iamInstanceProfile: p}}\n---\napiVersion: datadump.dev/v1alpha1\nkind: DataDump\nmetadata: {name: b}\n---\n: : :\n";
    let docs = parse_documents(text);
    assert!(docs[0].is_ok());
    assert_eq!(docs[1].as_ref().unwrap_err().field, "document 2");
    assert_eq!(docs[2].as_ref().unwrap_err().field, "document 3");
    let _: &DataDump = docs[0].as_ref().unwrap();
}

/// Cron-ish text: the schedule fields' characters, in up to seven space-separated fields.
fn cronish() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        Just("*".to_string()),
        "[0-9]{1,3}",
        "[0-9*]{1,2}[-/,][0-9]{1,3}",
        "[A-Za-z#L?W@]{1,9}",
        any::<String>(),
    ];
    vec(field, 0..8).prop_map(|v| v.join(" "))
}

proptest! {
    #![proptest_config(cases(2000))]

    /// Arbitrary schedules and time zones: `validate_schedule` (and the cron parser under it)
    /// never panics, refuses by field, briefly; what it accepts can be planned forward.
    #[test]
    fn arbitrary_schedules_and_zones_are_refused_by_field(
        schedule in prop_oneof![cronish(), any::<String>()],
        zone in prop_oneof![Just(None), "[A-Za-z_/+-]{1,30}".prop_map(Some), any::<String>().prop_map(Some)],
    ) {
        let mut spec: super::DataDumpScheduleSpec = serde_yaml::from_str(
            "schedule: '@monthly'\ntemplate: {mediaTypes: [image], destination: {bucket: my-datasets}, database: {ssmParameterName: /d/b}, instance: {iamInstanceProfile: w}}",
        )
        .unwrap();
        spec.schedule = schedule;
        spec.time_zone = zone;
        match super::validate_schedule(Some("s"), &spec, &SiteDefaults::default()) {
            Err(errors) => {
                for e in &errors {
                    check(e)?;
                }
            }
            Ok(()) => {
                let c = super::CronSchedule::parse(&spec.schedule, spec.time_zone.as_deref()).unwrap();
                let now: jiff::Timestamp = "2026-11-27T10:00:00Z".parse().unwrap();
                if let Some(next) = c.next_after(now) {
                    prop_assert!(next > now);
                }
            }
        }
    }
}
