//! The DataDump API as users meet it: the committed CRD, the example, and `datadump validate`
//! refusing bad specs with the right field path.

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn datadump(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_datadump"))
        .args(args)
        .output()
        .expect("run datadump");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// `datadump crd` prints every kind as one multi-document YAML, `--kind` one of them (whether
/// the committed files are current is `chart::generated_files_are_current`).
#[test]
fn datadump_crd_prints_every_kind() {
    let mut all = Vec::new();
    for kind in ["datadump", "datadumpschedule"] {
        let (code, generated) = datadump(&["crd", "--kind", kind]);
        assert_eq!(code, 0, "{generated}");
        assert!(generated.contains("kind: CustomResourceDefinition"), "{generated}");
        all.push(generated);
    }
    let (code, generated) = datadump(&["crd"]);
    assert_eq!(code, 0, "{generated}");
    assert_eq!(generated, all.join("---\n"));
}

#[test]
fn schedule_crd_has_what_kubectl_users_rely_on() {
    let crd: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo().join("crds/datadump.dev_datadumpschedules.yaml")).unwrap()).unwrap();
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "dds");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert!(version["subresources"]["status"].is_object());
    let columns: Vec<_> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Schedule", "Suspend", "Active", "Last Schedule", "Age", "Time Zone"]);
    let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(spec["properties"]["concurrencyPolicy"]["default"], "Forbid");
    assert_eq!(spec["properties"]["successfulDumpsHistoryLimit"]["default"], 3);
    assert_eq!(spec["properties"]["failedDumpsHistoryLimit"]["default"], 1);
    let mut missing = Vec::new();
    undocumented(spec, "spec", &mut missing);
    undocumented(
        &version["schema"]["openAPIV3Schema"]["properties"]["status"],
        "status",
        &mut missing,
    );
    assert!(missing.is_empty(), "fields without docs: {missing:?}");
}

/// Fields under `schema` without a description.
fn undocumented(schema: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    if let Some(props) = schema["properties"].as_object() {
        for (k, v) in props {
            let p = format!("{path}.{k}");
            if v["description"].as_str().is_none_or(|d| d.trim().is_empty()) {
                out.push(p.clone());
            }
            undocumented(v, &p, out);
            undocumented(&v["items"], &p, out);
        }
    }
}

#[test]
fn crd_has_what_kubectl_users_rely_on() {
    let crd: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(repo().join("crds/datadump.dev_datadumps.yaml")).unwrap()).unwrap();
    let names = &crd["spec"]["names"];
    assert_eq!(names["shortNames"][0], "dd");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert!(version["subresources"]["status"].is_object());
    let columns: Vec<_> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Phase", "Done", "Bucket", "Age", "Date", "Message"]);
    // every spec field is documented, so `kubectl explain datadump.spec` reads like a manual
    let mut missing = Vec::new();
    undocumented(&version["schema"]["openAPIV3Schema"]["properties"]["spec"], "spec", &mut missing);
    assert!(missing.is_empty(), "fields without docs: {missing:?}");
}

#[test]
fn committed_crds_pass_kubernetes_validate() {
    let venv = repo().join(".venv/bin/kubernetes-validate");
    assert!(venv.exists(), "kubernetes-validate missing: run scripts/setup.sh");
    for crd in ["datadumps", "datadumpschedules"] {
        let out = Command::new(&venv)
            .args(["--strict", "-k", "1.32.0"])
            .arg(repo().join(format!("crds/datadump.dev_{crd}.yaml")))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(
            text.to_lowercase()
                .contains(&format!("passed for resource customresourcedefinition/{crd}.datadump.dev")),
            "{text}"
        );
    }
}

#[test]
fn examples_are_valid() {
    let (code, out) = datadump(&[
        "validate",
        "-f",
        "manifests/examples/datadump.yaml",
        "manifests/examples/datadumpschedule.yaml",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("DataDump catalog-2026-11: valid"), "{out}");
    assert!(out.contains("DataDumpSchedule catalog-monthly: valid"), "{out}");
}

#[test]
fn validate_reads_both_kinds_from_one_stream_and_names_schedule_fields() {
    let text = format!(
        "{BASE}---\napiVersion: datadump.dev/v1alpha1\nkind: DataDumpSchedule\nmetadata: {{name: monthly}}\nspec:\n  schedule: '0 3 1 * * *'\n  timeZone: Mars/Olympus\n  template:\n    mediaTypes: [Image]\n    destination: {{bucket: my-datasets}}\n    database: {{ssmParameterName: /datadump/catalog}}\n    instance: {{iamInstanceProfile: datadump-worker}}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("both.yaml");
    std::fs::write(&file, text).unwrap();
    let (code, out) = datadump(&["validate", "-f", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("DataDump bad: valid"), "{out}");
    for field in ["spec.schedule:", "spec.timeZone:", "spec.template.mediaTypes[0]:"] {
        assert!(out.contains(field), "{field} named: {out}");
    }
}

/// The base of every bad case: valid on its own.
pub(crate) const BASE: &str = r#"
apiVersion: datadump.dev/v1alpha1
kind: DataDump
metadata: {name: bad, namespace: data}
spec:
  mediaTypes: [image, audio]
  destination: {bucket: my-datasets}
  database: {ssmParameterName: /datadump/catalog}
  instance: {iamInstanceProfile: datadump-worker}
"#;

/// Each case: what it is, the spec fields it overrides (YAML), and the field path the error
/// must name.
pub(crate) const BAD: &[(&str, &str, &str)] = &[
    ("upper-case media type", "mediaTypes: [Image]", "spec.mediaTypes[0]"),
    ("shell metacharacter in media type", "mediaTypes: ['a;b']", "spec.mediaTypes[0]"),
    ("media type with a space", "mediaTypes: [image, 'au dio']", "spec.mediaTypes[1]"),
    ("media type starting with a digit", "mediaTypes: [1image]", "spec.mediaTypes[0]"),
    ("duplicate media types", "mediaTypes: [image, audio, image]", "spec.mediaTypes[2]"),
    ("empty media list", "mediaTypes: []", "spec.mediaTypes"),
    (
        "17 media types",
        "mediaTypes: [a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q]",
        "spec.mediaTypes",
    ),
    (
        "64-character media type",
        "mediaTypes: [aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]",
        "spec.mediaTypes[0]",
    ),
    ("upper-case bucket", "destination: {bucket: My-Datasets}", "spec.destination.bucket"),
    ("bucket too short", "destination: {bucket: ab}", "spec.destination.bucket"),
    (
        "bucket with underscore",
        "destination: {bucket: my_datasets}",
        "spec.destination.bucket",
    ),
    (
        "bucket as IP address",
        "destination: {bucket: 192.168.5.4}",
        "spec.destination.bucket",
    ),
    (
        "bucket with double dot",
        "destination: {bucket: my..datasets}",
        "spec.destination.bucket",
    ),
    (
        "bucket with xn-- prefix",
        "destination: {bucket: xn--datasets}",
        "spec.destination.bucket",
    ),
    (
        "bucket with -s3alias suffix",
        "destination: {bucket: datasets-s3alias}",
        "spec.destination.bucket",
    ),
    (
        "prefix with leading slash",
        "destination: {bucket: my-datasets, prefix: /data}",
        "spec.destination.prefix",
    ),
    (
        "prefix with dot-dot",
        "destination: {bucket: my-datasets, prefix: a/../b}",
        "spec.destination.prefix",
    ),
    (
        "bad region",
        "destination: {bucket: my-datasets, region: Europe}",
        "spec.destination.region",
    ),
    ("query with no table", "query: SELECT 1", "spec.query"),
    (
        "query with a second placeholder",
        "query: 'SELECT * FROM {media_type} WHERE d > {date}'",
        "spec.query",
    ),
    ("query that writes", "query: 'DELETE FROM {media_type}'", "spec.query"),
    (
        "query with two statements",
        "query: 'SELECT * FROM {media_type}; DROP TABLE x'",
        "spec.query",
    ),
    ("query with NUL", "query: \"SELECT * FROM {media_type}\\0\"", "spec.query"),
    (
        "both credential sources",
        "database: {ssmParameterName: /a, connectionSecretRef: {name: db, key: k}}",
        "spec.database",
    ),
    ("no credential source", "database: {}", "spec.database"),
    (
        "bad secret name",
        "database: {connectionSecretRef: {name: Catalog_DB, key: k}}",
        "spec.database.connectionSecretRef.name",
    ),
    (
        "reserved SSM namespace",
        "database: {ssmParameterName: /aws/reference/x}",
        "spec.database.ssmParameterName",
    ),
    (
        "both CA bundle sources",
        "database: {ssmParameterName: /d, tls: {caBundle: {configMapKeyRef: {name: ca, key: ca.pem}, secretKeyRef: {name: ca, key: ca.pem}}}}",
        "spec.database.tls.caBundle",
    ),
    (
        "CA bundle without a source",
        "database: {ssmParameterName: /d, tls: {caBundle: {}}}",
        "spec.database.tls.caBundle",
    ),
    (
        "bad CA bundle ConfigMap name",
        "database: {ssmParameterName: /d, tls: {caBundle: {configMapKeyRef: {name: RDS_CA, key: ca.pem}}}}",
        "spec.database.tls.caBundle.configMapKeyRef.name",
    ),
    (
        "bad client certificate Secret name",
        "database: {ssmParameterName: /d, tls: {clientCertificateSecretRef: {name: Catalog_Client}}}",
        "spec.database.tls.clientCertificateSecretRef.name",
    ),
    (
        "negative volume size",
        "instance: {iamInstanceProfile: p, ebsVolumeSizeGb: -1}",
        "spec.instance.ebsVolumeSizeGb",
    ),
    (
        "absurd volume size",
        "instance: {iamInstanceProfile: p, ebsVolumeSizeGb: 100000}",
        "spec.instance.ebsVolumeSizeGb",
    ),
    (
        "non-numeric volume size",
        "instance: {iamInstanceProfile: p, ebsVolumeSizeGb: lots}",
        "spec.instance.ebsVolumeSizeGb",
    ),
    (
        "unknown volume type",
        "instance: {iamInstanceProfile: p, ebsVolumeType: fast}",
        "spec.instance.ebsVolumeType",
    ),
    (
        "bad instance type",
        "instance: {iamInstanceProfile: p, instanceType: huge}",
        "spec.instance.instanceType",
    ),
    (
        "bad image id",
        "instance: {iamInstanceProfile: p, imageId: ubuntu}",
        "spec.instance.imageId",
    ),
    (
        "bad subnet",
        "instance: {iamInstanceProfile: p, subnetId: net-1}",
        "spec.instance.subnetId",
    ),
    (
        "bad security group",
        "instance: {iamInstanceProfile: p, securityGroupIds: [default]}",
        "spec.instance.securityGroupIds[0]",
    ),
    (
        "no instance profile anywhere",
        "instance: {instanceType: m7g.large}",
        "spec.instance.iamInstanceProfile",
    ),
    (
        "reserved tag key",
        "instance: {iamInstanceProfile: p, tags: {'datadump.dev/uid': x}}",
        "spec.instance.tags[\"datadump.dev/uid\"]",
    ),
    ("unparsable duration", "timeout: one week", "spec.timeout"),
    ("days are not a Go duration", "timeout: 7d", "spec.timeout"),
    ("timeout too short", "timeout: 10s", "spec.timeout"),
    ("timeout too long", "timeout: 10000h", "spec.timeout"),
    ("negative timeout", "timeout: -1h", "spec.timeout"),
    ("too many retries", "backoffLimit: 50", "spec.backoffLimit"),
    ("negative retries", "backoffLimit: -1", "spec.backoffLimit"),
    (
        "extra arg that is not a flag",
        "odbc2parquet: {extraArgs: [verbose]}",
        "spec.odbc2parquet.extraArgs[0]",
    ),
    (
        "extra arg with a shell command",
        "odbc2parquet: {extraArgs: ['--x', '$(reboot)']}",
        "spec.odbc2parquet.extraArgs[1]",
    ),
    (
        "extra arg overriding credentials",
        "odbc2parquet: {extraArgs: ['--connection-string=x']}",
        "spec.odbc2parquet.extraArgs[0]",
    ),
    (
        "bad file size",
        "odbc2parquet: {fileSizeThreshold: 2 gigabytes}",
        "spec.odbc2parquet.fileSizeThreshold",
    ),
    (
        "unknown compression",
        "odbc2parquet: {compression: zip}",
        "spec.odbc2parquet.compression",
    ),
    (
        "bad odbc2parquet version",
        "odbc2parquet: {version: latest}",
        "spec.odbc2parquet.version",
    ),
    (
        "bad webhook secret key",
        "notification: {slack: {webhookSecretRef: {name: slack, key: 'a b'}}}",
        "spec.notification.slack.webhookSecretRef.key",
    ),
    (
        "card license not a host identifier",
        "datasetCard: {license: CC-BY}",
        "spec.datasetCard.license",
    ),
    (
        "gated select field without options",
        "datasetCard: {gated: {prompt: Agree, fields: [{name: Use, type: select}]}}",
        "spec.datasetCard.gated.fields[0].options",
    ),
    (
        "two gated fields with one label",
        "datasetCard: {gated: {prompt: Agree, fields: [{name: Email}, {name: Email}]}}",
        "spec.datasetCard.gated.fields[1].name",
    ),
    (
        "card column of an unlisted media type",
        "datasetCard: {columns: {video.title: The title}}",
        "spec.datasetCard.columns[\"video.title\"]",
    ),
    (
        "multi-line card name",
        "datasetCard: {prettyName: \"a\\nb\"}",
        "spec.datasetCard.prettyName",
    ),
];

/// Builds a document from BASE with `overrides` replacing top-level spec fields (`XXXX`
/// stands for 8,000 characters of filler).
pub(crate) fn bad_doc(overrides: &str) -> String {
    let filler = (0..2000).map(|i| format!("{i:04}")).collect::<Vec<_>>().join(",");
    let overrides = &overrides.replace("XXXX", &filler[..8000]);
    let mut doc: serde_yaml::Value = serde_yaml::from_str(BASE).unwrap();
    let over: serde_yaml::Mapping = serde_yaml::from_str(overrides).unwrap();
    let spec = doc.get_mut("spec").unwrap().as_mapping_mut().unwrap();
    for (k, v) in over {
        spec.insert(k, v);
    }
    serde_yaml::to_string(&doc).unwrap()
}

#[test]
fn base_of_the_corpus_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("base.yaml");
    std::fs::write(&f, BASE).unwrap();
    let (code, out) = datadump(&["validate", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn validate_refuses_every_bad_spec_naming_the_field() {
    assert!(BAD.len() >= 25);
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (i, (what, overrides, field)) in BAD.iter().enumerate() {
        let f = dir.path().join(format!("bad{i}.yaml"));
        std::fs::write(&f, bad_doc(overrides)).unwrap();
        let (code, out) = datadump(&["validate", "-f", f.to_str().unwrap()]);
        let named = out.lines().any(|l| l.contains(&format!(": {field}: ")) && l.contains("fix: "));
        if code != 1 || !named || out.contains(": valid") {
            failures.push(format!("{what}: exit {code}, expected {field}:\n{out}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn multi_document_files_report_each_document() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("multi.yaml");
    let good = BASE.replace("name: bad", "name: good");
    std::fs::write(&f, format!("{good}\n---\n{}", bad_doc("mediaTypes: [Image]"))).unwrap();
    let (code, out) = datadump(&["validate", "-f", f.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("DataDump good: valid"), "{out}");
    assert!(out.contains("spec.mediaTypes[0]"), "{out}");
}

#[test]
fn site_default_profile_is_honoured_by_validate() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("noprofile.yaml");
    std::fs::write(&f, bad_doc("instance: {}")).unwrap();
    let path = f.to_str().unwrap();
    assert_eq!(datadump(&["validate", "-f", path]).0, 1);
    let (code, out) = datadump(&["validate", "-f", path, "--default-iam-instance-profile", "site-worker"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn malformed_yaml_is_refused_not_panicked_on() {
    let dir = tempfile::tempdir().unwrap();
    for (i, text) in ["spec: [unclosed", "kind: DataDump\nspec: 42\n", "\t- : :"].iter().enumerate() {
        let f = dir.path().join(format!("m{i}.yaml"));
        std::fs::write(&f, text).unwrap();
        let (code, out) = datadump(&["validate", "-f", f.to_str().unwrap()]);
        assert_eq!(code, 1, "{text:?}: {out}");
        assert!(!out.contains("panicked"), "{out}");
    }
}

#[test]
fn render_prints_the_worker_bootstrap_users_can_read() {
    let (code, script) = datadump(&["render", "-f", "manifests/examples/datadump.yaml", "--media-type", "audio"]);
    assert_eq!(code, 0, "{script}");
    assert!(script.starts_with("#!/bin/sh") && script.contains("want_arch=aarch64"), "{script}");
    assert!(script.len() < 4096, "a short bootstrap: {} bytes", script.len());
    let syntax = Command::new("sh").args(["-n", "-c", &script]).output().unwrap();
    assert!(syntax.status.success(), "{}", String::from_utf8_lossy(&syntax.stderr));
    let (code, expanded) = datadump(&["render", "-f", "manifests/examples/datadump.yaml", "--expand"]);
    assert_eq!(code, 0);
    let job = &expanded[expanded.find("# ---- the job").expect("the job is shown")..];
    assert!(
        job.contains("\"mediaType\": \"image\"") && job.contains("removed_from_source"),
        "{job}"
    );
    assert!(job.contains("\"keyPrefix\": \"data-dump/DUMP-DATE/image/\""), "{job}");
    let (code, out) = datadump(&["render", "-f", "manifests/examples/datadump.yaml", "--media-type", "video"]);
    assert_ne!(code, 0);
    assert!(out.contains("video is not in spec.mediaTypes"), "{out}");
}
