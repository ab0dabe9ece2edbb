//! `datadump handoff`: before a finished dump is handed to a dataset host, check that it is
//! complete — every media type has `_success` and a readable manifest, every file of the
//! manifest is in S3 with its size and SHA-256 (read through, a few files at a time, memory
//! flat) and a readable Parquet footer whose rows match — print a summary per media type, and
//! print the bucket policy statement that grants a principal read access to the dump, for a
//! person to apply. It changes nothing. I/O through [`ObjectStore`]; the checks' verdicts are
//! plain data ([`MediaReport`]).

use std::fmt::Write as _;
use std::path::PathBuf;

use futures::{StreamExt, TryStreamExt};
use kube::ResourceExt;

use crate::api::DataDump;
use crate::aws::{AwsArgs, S3Store};
use crate::backend::{BackendError, Bucket, ObjectStore};
use crate::contract::human_bytes;
use crate::contract::{self, Manifest};
use crate::observe::{PartCheck, check_part};

/// Files whose SHA-256 is computed at once.
const DIGEST_CONCURRENCY: usize = 4;

/// `datadump handoff`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("dump").required(true).args(["file", "name", "uri"])))]
pub struct HandoffArgs {
    /// The dump's folder, `s3://BUCKET/PREFIX/DATE/` (media types: every folder with a
    /// `_manifest.json`).
    pub uri: Option<String>,
    /// A DataDump file (YAML; its `status.dumpDate`, e.g. from `kubectl get -o yaml`, or
    /// `--date`).
    #[arg(short = 'f', long = "filename")]
    pub file: Option<PathBuf>,
    /// A DataDump in the cluster (the current kubeconfig), by name.
    #[arg(long)]
    pub name: Option<String>,
    /// The DataDump's namespace (default: the kubeconfig's).
    #[arg(short = 'n', long, requires = "name")]
    pub namespace: Option<String>,
    /// The dump's DATE folder (`YYYY-MM-DD`) when the DataDump's status does not say.
    #[arg(long)]
    pub date: Option<String>,
    /// The bucket is Requester Pays and this account pays for the reads (implied by a
    /// DataDump's `spec.destination.requesterPays`).
    #[arg(long)]
    pub requester_pays: bool,
    /// Print the bucket policy statements that let this AWS principal (an account id or an
    /// IAM ARN) list and read the dump.
    #[arg(long, value_name = "ARN")]
    pub grant_read: Option<String>,
    /// AWS settings.
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Logging (to standard error; the report goes to standard output).
    #[command(flatten)]
    pub log: crate::telemetry::LogArgs,
}

/// What to check: a bucket, the dump's folder and (when known) its media types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The bucket.
    pub bucket: String,
    /// Its region, when the DataDump names one.
    pub region: Option<String>,
    /// Reads say `x-amz-request-payer: requester`.
    pub requester_pays: bool,
    /// `PREFIX/DATE/`.
    pub dump_prefix: String,
    /// The media types (`None`: every folder with a manifest).
    pub media_types: Option<Vec<String>>,
}

impl Target {
    fn bucket(&self) -> Bucket<'_> {
        Bucket {
            name: &self.bucket,
            region: self.region.as_deref(),
            requester_pays: self.requester_pays,
        }
    }

    /// From `s3://BUCKET/PREFIX/DATE/`.
    pub fn from_uri(uri: &str, requester_pays: bool) -> Result<Target, String> {
        let rest = uri
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{uri} is not s3://BUCKET/PREFIX/DATE/"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/');
        if bucket.is_empty() || prefix.is_empty() {
            return Err(format!("{uri} names no dump folder: give s3://BUCKET/PREFIX/DATE/"));
        }
        Ok(Target {
            bucket: bucket.into(),
            region: None,
            requester_pays,
            dump_prefix: format!("{prefix}/"),
            media_types: None,
        })
    }

    /// From a DataDump: its bucket, prefix and media types, and the date from its status (or
    /// `date`).
    pub fn from_dump(dd: &DataDump, date: Option<&str>) -> Result<Target, String> {
        let status_date = dd.status.as_ref().and_then(|s| s.dump_date.clone());
        let date = date
            .map(str::to_string)
            .or(status_date)
            .ok_or_else(|| format!("DataDump {} has no status.dumpDate: give --date YYYY-MM-DD", dd.name_any()))?;
        Ok(Target {
            bucket: dd.spec.destination.bucket.clone(),
            region: dd.spec.destination.region.clone(),
            requester_pays: dd.spec.destination.requester_pays,
            dump_prefix: crate::api::keys::dump_prefix(dd, &date),
            media_types: Some(dd.spec.media_types.iter().map(|m| m.as_str().to_string()).collect()),
        })
    }
}

/// The verdict on one media type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MediaReport {
    /// The media type.
    pub media_type: String,
    /// Files in the manifest.
    pub files: u64,
    /// Rows, from the Parquet footers.
    pub rows: u64,
    /// Bytes in S3.
    pub bytes: u64,
    /// Every problem found (empty: complete).
    pub problems: Vec<String>,
}

/// Checks every media type of the target.
pub async fn check<S: ObjectStore>(store: &S, target: &Target) -> Result<Vec<MediaReport>, BackendError> {
    let bucket = target.bucket();
    let media = match &target.media_types {
        Some(m) => m.clone(),
        None => {
            let listed = store.list(bucket, &target.dump_prefix).await?;
            let mut found: Vec<String> = listed
                .iter()
                .filter_map(|o| {
                    o.key
                        .strip_prefix(&target.dump_prefix)?
                        .strip_suffix(&format!("/{}", contract::MANIFEST))
                })
                .filter(|m| !m.contains('/'))
                .map(str::to_string)
                .collect();
            found.sort();
            found
        }
    };
    let mut reports = Vec::new();
    for m in media {
        reports.push(check_media(store, bucket, &format!("{}{m}/", target.dump_prefix), &m).await?);
    }
    Ok(reports)
}

async fn check_media<S: ObjectStore>(store: &S, bucket: Bucket<'_>, prefix: &str, media_type: &str) -> Result<MediaReport, BackendError> {
    let mut report = MediaReport {
        media_type: media_type.into(),
        ..Default::default()
    };
    let listed = store.list(bucket, prefix).await?;
    if !listed.iter().any(|o| o.key == format!("{prefix}{}", contract::SUCCESS)) {
        report.problems.push(format!(
            "{prefix}{} is missing: the dump of {media_type} did not finish",
            contract::SUCCESS
        ));
    }
    let manifest: Manifest = match store.get(bucket, &format!("{prefix}{}", contract::MANIFEST)).await? {
        None => {
            report.problems.push(format!("{prefix}{} is missing", contract::MANIFEST));
            return Ok(report);
        }
        Some(body) => match serde_json::from_slice(&body) {
            Ok(m) => m,
            Err(e) => {
                report.problems.push(format!("{prefix}{} is not readable: {e}", contract::MANIFEST));
                return Ok(report);
            }
        },
    };
    report.files = manifest.files.len() as u64;
    let checked: Vec<Vec<String>> = futures::stream::iter(&manifest.files)
        .map(|file| {
            let listed = &listed;
            async move {
                let mut problems = Vec::new();
                match check_part(store, bucket, prefix, listed, file).await? {
                    PartCheck::Faulty(why) => problems.push(why),
                    PartCheck::Sound(part) => {
                        if file.rows.is_some_and(|r| r != part.rows) {
                            problems.push(format!(
                                "{}: {} rows in its footer, {} in the manifest",
                                part.key,
                                part.rows,
                                file.rows.unwrap_or_default()
                            ));
                        }
                        match store.digest(bucket, &part.key).await? {
                            None => problems.push(format!("{} vanished while being read", part.key)),
                            Some(d) if d.sha256 != file.sha256 => problems.push(format!(
                                "{}: SHA-256 {} in S3 but {} in the manifest (the file changed after the dump)",
                                part.key, d.sha256, file.sha256
                            )),
                            Some(d) if d.size != file.size => {
                                problems.push(format!("{}: read {} bytes, the manifest says {}", part.key, d.size, file.size))
                            }
                            Some(_) => {}
                        }
                    }
                }
                Ok::<_, BackendError>(problems)
            }
        })
        .buffered(DIGEST_CONCURRENCY)
        .try_collect()
        .await?;
    report.problems.extend(checked.into_iter().flatten());
    // totals from what S3 holds: sizes from the listing, rows from the footers of sound files
    for file in &manifest.files {
        if let Some(o) = listed.iter().find(|o| o.key == file.key) {
            report.bytes += o.size;
        }
    }
    report.rows = manifest.rows.unwrap_or_else(|| manifest.files.iter().filter_map(|f| f.rows).sum());
    Ok(report)
}

/// The summary table and verdict.
pub fn summary(target: &Target, reports: &[MediaReport], card: bool) -> String {
    let mut out = format!(
        "dump s3://{}/{}{}\n\n{:<24} {:>6} {:>14} {:>12}  STATUS\n",
        target.bucket,
        target.dump_prefix,
        if target.requester_pays { " (Requester Pays)" } else { "" },
        "MEDIA",
        "FILES",
        "ROWS",
        "SIZE"
    );
    for r in reports {
        let _ = writeln!(
            out,
            "{:<24} {:>6} {:>14} {:>12}  {}",
            r.media_type,
            r.files,
            r.rows,
            human_bytes(r.bytes),
            if r.problems.is_empty() { "complete" } else { "INCOMPLETE" }
        );
        for p in &r.problems {
            let _ = writeln!(out, "  - {p}");
        }
    }
    let complete = reports.iter().filter(|r| r.problems.is_empty()).count();
    let _ = writeln!(
        out,
        "\ndataset card: {}",
        if card {
            format!("s3://{}/{}README.md", target.bucket, target.dump_prefix)
        } else {
            "missing".into()
        }
    );
    if reports.is_empty() {
        out.push_str("INCOMPLETE: no media type found under the folder\n");
    } else if complete == reports.len() {
        let _ = writeln!(
            out,
            "complete: {complete}/{} media types verified (files, sizes, SHA-256, Parquet footers)",
            reports.len()
        );
    } else {
        let _ = writeln!(
            out,
            "INCOMPLETE: {complete}/{} media types verified; do not hand this dump off",
            reports.len()
        );
    }
    out
}

/// The bucket policy statements that let `principal` list and read the dump.
pub fn grant_read(target: &Target, principal: &str) -> Result<serde_json::Value, String> {
    let principal = if principal.len() == 12 && principal.bytes().all(|b| b.is_ascii_digit()) {
        format!("arn:aws:iam::{principal}:root")
    } else if principal.starts_with("arn:aws") && principal.contains(":iam::") {
        principal.to_string()
    } else {
        return Err(format!(
            "--grant-read {principal:?} is no AWS account id or IAM ARN (arn:aws:iam::123456789012:role/reader)"
        ));
    };
    let sid = target
        .dump_prefix
        .trim_end_matches('/')
        .replace(|c: char| !c.is_ascii_alphanumeric(), "");
    let arn = format!("arn:aws:s3:::{}", target.bucket);
    Ok(serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": format!("DatadumpList{sid}"),
                "Effect": "Allow",
                "Principal": {"AWS": principal},
                "Action": "s3:ListBucket",
                "Resource": arn,
                "Condition": {"StringLike": {"s3:prefix": format!("{}*", target.dump_prefix)}}
            },
            {
                "Sid": format!("DatadumpRead{sid}"),
                "Effect": "Allow",
                "Principal": {"AWS": principal},
                "Action": "s3:GetObject",
                "Resource": format!("{arn}/{}*", target.dump_prefix)
            }
        ]
    }))
}

/// Runs `datadump handoff`; returns whether the dump is complete.
pub async fn run(args: HandoffArgs, out: &mut impl std::io::Write) -> anyhow::Result<bool> {
    let target = if let Some(uri) = &args.uri {
        Target::from_uri(uri, args.requester_pays).map_err(anyhow::Error::msg)?
    } else if let Some(file) = &args.file {
        let text = crate::input::read_input(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        let dd = crate::api::parse_documents(&text)
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("{}: no DataDump document", file.display()))?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Target::from_dump(&dd, args.date.as_deref()).map_err(anyhow::Error::msg)?
    } else {
        let client = kube::Client::try_default().await?;
        let name = args.name.clone().unwrap_or_default();
        let api: kube::Api<DataDump> = match &args.namespace {
            Some(ns) => kube::Api::namespaced(client, ns),
            None => kube::Api::default_namespaced(client),
        };
        let dd = api.get(&name).await.map_err(|e| anyhow::anyhow!("DataDump {name}: {e}"))?;
        Target::from_dump(&dd, args.date.as_deref()).map_err(anyhow::Error::msg)?
    };
    let target = Target {
        requester_pays: target.requester_pays || args.requester_pays,
        ..target
    };
    let sdk = args.aws.sdk_config().await;
    let store = S3Store::new(&sdk, args.aws.endpoint_url.is_some());
    let reports = check(&store, &target).await?;
    let card = store
        .head(target.bucket(), &format!("{}README.md", target.dump_prefix))
        .await?
        .is_some();
    out.write_all(summary(&target, &reports, card).as_bytes())?;
    if let Some(principal) = &args.grant_read {
        let policy = grant_read(&target, principal).map_err(anyhow::Error::msg)?;
        writeln!(
            out,
            "\nBucket policy statements granting {principal} read access to the dump (merge them into the \
             bucket policy of {}; nothing was changed):\n{}",
            target.bucket,
            serde_json::to_string_pretty(&policy)?
        )?;
    }
    Ok(!reports.is_empty() && reports.iter().all(|r| r.problems.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_come_from_a_uri_or_a_dump() {
        let t = Target::from_uri("s3://b/data-dump/2026-11-01/", false).unwrap();
        assert_eq!(
            (t.bucket.as_str(), t.dump_prefix.as_str(), t.media_types.clone()),
            ("b", "data-dump/2026-11-01/", None)
        );
        assert!(Target::from_uri("s3://b", false).is_err());
        assert!(Target::from_uri("b/x", false).is_err());
        let dd: DataDump = serde_yaml::from_str(
            "apiVersion: datadump.dev/v1alpha1\nkind: DataDump\nmetadata: {name: c}\nspec:\n  mediaTypes: [image, audio]\n  destination: {bucket: b, prefix: /p/q/, requesterPays: true}\n  database: {ssmParameterName: /p}\n",
        )
        .unwrap();
        assert!(Target::from_dump(&dd, None).unwrap_err().contains("--date"));
        let t = Target::from_dump(&dd, Some("2026-11-01")).unwrap();
        assert_eq!(t.dump_prefix, "p/q/2026-11-01/");
        assert!(t.requester_pays);
        assert_eq!(t.media_types, Some(vec!["image".to_string(), "audio".to_string()]));
    }

    #[test]
    fn the_grant_covers_only_the_dump() {
        let t = Target::from_uri("s3://b/data-dump/2026-11-01/", false).unwrap();
        let p = grant_read(&t, "123456789012").unwrap();
        assert_eq!(p["Statement"][0]["Principal"]["AWS"], "arn:aws:iam::123456789012:root");
        assert_eq!(p["Statement"][0]["Condition"]["StringLike"]["s3:prefix"], "data-dump/2026-11-01/*");
        assert_eq!(p["Statement"][1]["Resource"], "arn:aws:s3:::b/data-dump/2026-11-01/*");
        assert!(grant_read(&t, "*").is_err(), "no public grant by accident");
    }
}
