//! Observe: gather what the planner needs about one DataDump — its instances (one paginated
//! DescribeInstances by uid tag for all media types) and, per media type still in play, the
//! semaphores under its S3 prefix (one LIST of the `_`-objects, then GETs only of what
//! exists). When `_success` is there, the manifest is checked against S3 and every Parquet
//! footer is read (ranged GETs) for row counts. I/O through the backend traits.

use jiff::Timestamp;

use crate::api::DataDump;
use crate::backend::{BackendError, Bucket, Compute, InstanceFilter, ObjectStore};
use crate::plan::{self, FailureSeen, MediaObjects, Observed, Output, ProgressSeen};
use crate::worker::contract::{self, FailureReport, Manifest, ProgressReport};

/// The destination bucket (with its region when the spec names one).
pub fn bucket_of(dd: &DataDump) -> Bucket<'_> {
    Bucket {
        name: &dd.spec.destination.bucket,
        region: dd.spec.destination.region.as_deref(),
        requester_pays: dd.spec.destination.requester_pays,
    }
}

/// Observes one DataDump; `site` resolves its instance type, whose architecture is looked up
/// (cached) while a launch may follow.
pub async fn observe<C: Compute, S: ObjectStore>(
    dd: &DataDump,
    site: &crate::api::SiteDefaults,
    compute: &C,
    store: &S,
    now: Timestamp,
) -> Result<Observed, BackendError> {
    let uid = dd.metadata.uid.clone().unwrap_or_default();
    let mut observed = Observed {
        instances: compute.instances(InstanceFilter::Owner(&uid)).await?,
        ..Default::default()
    };
    // an invalid spec is not looked into (the planner reports it as SpecValid=False at once,
    // whatever S3 or EC2 would answer: a missing bucket must not hide the condition)
    if dd.metadata.deletion_timestamp.is_some() || crate::api::validate(&dd.spec, site).is_err() {
        return Ok(observed);
    }
    // the media types still in play; while any is, and the dump may launch, the instance
    // type's architecture decides which worker binary a launch needs
    let media = plan::media_to_observe(dd);
    let may_launch = !media.is_empty() && !dd.spec.suspend && dd.status.as_ref().is_none_or(|s| s.completion_time.is_none());
    if may_launch && let Some(resolved) = crate::api::resolve_instance(&dd.spec.instance, site) {
        observed.architecture = Some(compute.architecture(&resolved.instance_type).await?);
    }
    let date = plan::date_of(dd, now);
    let bucket = bucket_of(dd);
    for media in media {
        let prefix = contract::media_prefix(&dd.spec.destination.prefix, &date, &media);
        let objects = media_objects(store, bucket, &prefix).await?;
        observed.objects.insert(media, objects);
    }
    Ok(observed)
}

async fn media_objects<S: ObjectStore>(store: &S, bucket: Bucket<'_>, prefix: &str) -> Result<MediaObjects, BackendError> {
    let listed = store.list(bucket, &format!("{prefix}_")).await?;
    let find = |name: &str| listed.iter().find(|o| o.key == format!("{prefix}{name}"));
    let mut out = MediaObjects::default();
    if let Some(meta) = find(contract::FAILURE) {
        let body = store.get(bucket, &meta.key).await?.unwrap_or_default();
        let (token, message) = match serde_json::from_slice::<FailureReport>(&body) {
            Ok(r) => (Some(r.token.clone()), failure_summary(&r)),
            Err(_) => (None, String::from_utf8_lossy(&body[..body.len().min(512)]).trim().to_string()),
        };
        out.failure = Some(FailureSeen {
            time: meta.last_modified,
            token,
            message,
        });
    }
    if find(contract::PROGRESS).is_some()
        && let Some(body) = store.get(bucket, &format!("{prefix}{}", contract::PROGRESS)).await?
        && let Ok(p) = serde_json::from_slice::<ProgressReport>(&body)
    {
        out.progress = Some(ProgressSeen {
            stage: Some(stage_name(p.stage)),
            time: Some(p.time),
            files: Some(p.files),
            bytes: Some(p.bytes),
            rows: p.rows,
        });
    }
    if let Some(meta) = find(contract::SUCCESS) {
        out.success_at = Some(meta.last_modified);
        let body = store.get(bucket, &meta.key).await?.unwrap_or_default();
        out.success_token = serde_json::from_slice::<contract::SuccessReport>(&body).ok().map(|r| r.token);
        out.success = Some(verify(store, bucket, prefix).await?);
    }
    Ok(out)
}

/// The JSON name of a stage (`dumping`, `reading_credentials`, …).
fn stage_name(stage: contract::Stage) -> String {
    serde_json::to_value(stage)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// One line for status and Events: the step, the exit code and the cause (the worker's
/// message, else the log's last error line).
pub fn failure_summary(r: &FailureReport) -> String {
    if !r.message.trim().is_empty() {
        let cause: String = r.message.trim().chars().take(600).collect();
        return format!(
            "worker failed in step {} with exit code {}: {cause}",
            stage_name(r.step),
            r.exit_code
        );
    }
    let lines: Vec<&str> = r.log_tail.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    // PostgreSQL's own message (ERROR:/FATAL:) says more than the script's summary line
    let last = lines
        .iter()
        .rev()
        .find(|l| l.contains("ERROR:") || l.contains("FATAL:"))
        .or_else(|| lines.iter().rev().find(|l| l.to_ascii_lowercase().contains("error")))
        .or(lines.last())
        .copied()
        .unwrap_or("no log");
    let last: String = last.chars().take(400).collect();
    format!(
        "worker failed in step {} with exit code {}: {last}",
        stage_name(r.step),
        r.exit_code
    )
}

/// Checks a finished media type: the manifest exists, every file in it exists in S3 with the
/// size it names and a readable Parquet footer. Returns the totals, or why the output is bad.
pub async fn verify<S: ObjectStore>(store: &S, bucket: Bucket<'_>, prefix: &str) -> Result<Result<Output, String>, BackendError> {
    let Some(body) = store.get(bucket, &format!("{prefix}{}", contract::MANIFEST)).await? else {
        return Ok(Err(format!("_success found but {}{} is missing", prefix, contract::MANIFEST)));
    };
    let manifest: Manifest = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => return Ok(Err(format!("{} is not readable: {e}", contract::MANIFEST))),
    };
    let listed = store.list(bucket, prefix).await?;
    let mut output = Output {
        files: 0,
        bytes: 0,
        rows: Some(0),
    };
    for file in &manifest.files {
        match check_part(store, bucket, prefix, &listed, file).await? {
            Ok(part) => {
                output.rows = output.rows.map(|r| r + part.rows);
                output.files += 1;
                output.bytes += part.size;
            }
            Err(why) => return Ok(Err(why)),
        }
    }
    Ok(Ok(output))
}

/// A part of the manifest as found in S3.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartFound {
    /// Its full key.
    pub key: String,
    /// Its size in S3 (equal to the manifest's).
    pub size: u64,
    /// Rows, from its Parquet footer.
    pub rows: u64,
}

/// Checks one file of a manifest against S3 (`listed`: the objects under `prefix`): present,
/// with the manifest's size and a readable Parquet footer; or what is wrong with it.
pub async fn check_part<S: ObjectStore>(
    store: &S,
    bucket: Bucket<'_>,
    prefix: &str,
    listed: &[crate::backend::ObjectMeta],
    file: &contract::ManifestFile,
) -> Result<Result<PartFound, String>, BackendError> {
    let key = if file.key.starts_with(prefix) {
        file.key.clone()
    } else {
        format!("{prefix}{}", file.key)
    };
    let Some(meta) = listed.iter().find(|o| o.key == key) else {
        return Ok(Err(format!("{key} is in the manifest but missing from S3")));
    };
    if meta.size != file.size {
        return Ok(Err(format!(
            "{key} has {} bytes in S3 but {} in the manifest (truncated upload?)",
            meta.size, file.size
        )));
    }
    Ok(match parquet_footer(store, bucket, &key, meta.size).await? {
        Ok(m) => Ok(PartFound {
            size: meta.size,
            rows: m.file_metadata().num_rows().max(0) as u64,
            key,
        }),
        Err(why) => Err(format!("{key}: {why}")),
    })
}

/// Reads a Parquet file's footer with two ranged GETs: its metadata, or why it is unreadable.
pub async fn parquet_footer<S: ObjectStore>(
    store: &S,
    bucket: Bucket<'_>,
    key: &str,
    size: u64,
) -> Result<Result<parquet::file::metadata::ParquetMetaData, String>, BackendError> {
    if size < 12 {
        return Ok(Err(format!("{size} bytes is too small for a Parquet file")));
    }
    let tail = store.get_tail(bucket, key, 8).await?;
    let footer = match parquet::file::metadata::FooterTail::try_from(tail.as_slice()) {
        Ok(f) => f,
        Err(e) => return Ok(Err(format!("not a complete Parquet file ({e})"))),
    };
    let len = footer.metadata_length() as u64;
    if len + 8 > size {
        return Ok(Err("Parquet footer length exceeds the file".into()));
    }
    let meta = store.get_tail(bucket, key, len + 8).await?;
    Ok(
        parquet::file::metadata::ParquetMetaDataReader::decode_metadata(&meta[..len as usize])
            .map_err(|e| format!("unreadable Parquet footer ({e})")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::contract::Stage;

    #[test]
    fn the_failure_summary_shows_the_database_error() {
        let report = FailureReport {
            exit_code: 1,
            step: Stage::Dumping,
            message: String::new(),
            log_tail: "starting\nodbc2parquet: State: 42P01, Native error: 7, Message: ERROR: relation \"image\" does not exist;\nerror: odbc2parquet failed with exit code 1\n".into(),
            attempt: 1,
            token: "t".into(),
            time: jiff::Timestamp::UNIX_EPOCH,
        };
        let s = failure_summary(&report);
        assert!(
            s.contains("relation \"image\" does not exist") && s.contains("dumping") && s.contains("exit code 1"),
            "{s}"
        );
        // a worker's own message wins over the log
        let report = FailureReport {
            message: "column \"taken_on\" row 7: timestamp 'infinity' has no Parquet counterpart; fix: cast it".into(),
            ..report
        };
        let s = failure_summary(&report);
        assert!(
            s.ends_with("row 7: timestamp 'infinity' has no Parquet counterpart; fix: cast it"),
            "{s}"
        );
    }
}
