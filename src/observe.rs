//! Observe: gather what the planner needs about one DataDump — its instances (one paginated
//! DescribeInstances by uid tag for all media types) and, per media type still in play, the
//! semaphores under its S3 prefix (one LIST of the `_`-objects, then GETs only of what
//! exists). When `_success` is there, the manifest is checked against S3 and every Parquet
//! footer is read (ranged GETs) for row counts. With a [`ProgressCache`] (the controller's),
//! `_progress.json` is read again only when the LIST shows it changed (size or LastModified):
//! in steady state a running media type costs one LIST per poll cycle. I/O through the backend
//! traits.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::Timestamp;

use crate::api::DataDump;
use crate::backend::{BackendError, Bucket, Compute, InstanceFilter, ObjectMeta, ObjectStore};
use crate::contract::{self, FailureReport, Manifest, ProgressReport};
use crate::plan::{self, FailureSeen, MediaObjects, Observed, Output, ProgressSeen};

/// The destination bucket (with its region when the spec names one).
pub fn bucket_of(dd: &DataDump) -> Bucket<'_> {
    Bucket {
        name: &dd.spec.destination.bucket,
        region: dd.spec.destination.region.as_deref(),
        requester_pays: dd.spec.destination.requester_pays,
    }
}

/// The last `_progress.json` read per (DataDump uid, media type), with the size and
/// LastModified the LIST showed for it: an unchanged listing serves the parsed report without
/// a GET. One small entry per media type in play; entries go when the media type leaves play
/// or the DataDump is being deleted.
#[derive(Default)]
pub struct ProgressCache {
    seen: Mutex<HashMap<(String, String), ProgressEntry>>,
}

#[derive(Clone)]
struct ProgressEntry {
    key: String,
    size: u64,
    last_modified: Timestamp,
    progress: Option<ProgressSeen>,
}

impl ProgressCache {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), ProgressEntry>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, uid: &str, media: &str, meta: &ObjectMeta) -> Option<Option<ProgressSeen>> {
        self.map()
            .get(&(uid.to_string(), media.to_string()))
            .filter(|e| e.key == meta.key && e.size == meta.size && e.last_modified == meta.last_modified)
            .map(|e| e.progress.clone())
    }

    fn put(&self, uid: &str, media: &str, meta: &ObjectMeta, progress: Option<ProgressSeen>) {
        let entry = ProgressEntry {
            key: meta.key.clone(),
            size: meta.size,
            last_modified: meta.last_modified,
            progress,
        };
        self.map().insert((uid.to_string(), media.to_string()), entry);
    }

    /// Drops the entries of `uid` except those of `keep`.
    fn retain(&self, uid: &str, keep: &[String]) {
        self.map().retain(|(u, m), _| u != uid || keep.contains(m));
    }

    /// How many media types have an entry.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether no media type has an entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    observe_cached(dd, site, compute, store, None, now).await
}

/// [`observe`], reading `_progress.json` only when `cache` does not hold its listed version.
pub async fn observe_cached<C: Compute, S: ObjectStore>(
    dd: &DataDump,
    site: &crate::api::SiteDefaults,
    compute: &C,
    store: &S,
    cache: Option<&ProgressCache>,
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
        if let Some(cache) = cache {
            cache.retain(&uid, &[]);
        }
        return Ok(observed);
    }
    // the media types still in play; while any is, and the dump may launch, the instance
    // type's architecture decides which worker binary a launch needs
    let media = plan::media_to_observe(dd);
    let may_launch = !media.is_empty() && !dd.spec.suspend && dd.status.as_ref().is_none_or(|s| s.completion_time.is_none());
    if may_launch && let Some(resolved) = crate::api::resolve_instance(&dd.spec.instance, site) {
        observed.architecture = Some(compute.architecture(&resolved.instance_type).await?);
    }
    if let Some(cache) = cache {
        cache.retain(&uid, &media);
    }
    let date = plan::date_of(dd, now);
    let bucket = bucket_of(dd);
    for media in media {
        let prefix = contract::media_prefix(&dd.spec.destination.prefix, &date, &media);
        let seen = cache.map(|c| (c, uid.as_str(), media.as_str()));
        let objects = media_objects(store, bucket, &prefix, seen).await?;
        observed.objects.insert(media, objects);
    }
    Ok(observed)
}

/// Parses a `_progress.json` body.
fn progress_of(body: &[u8]) -> Option<ProgressSeen> {
    let p = serde_json::from_slice::<ProgressReport>(body).ok()?;
    Some(ProgressSeen {
        stage: Some(stage_name(p.stage)),
        time: Some(p.time),
        files: Some(p.files),
        bytes: Some(p.bytes),
        rows: p.rows,
        connection: p.connection.map(|c| c.summary()),
        token: Some(p.token),
    })
}

async fn media_objects<S: ObjectStore>(
    store: &S,
    bucket: Bucket<'_>,
    prefix: &str,
    cache: Option<(&ProgressCache, &str, &str)>,
) -> Result<MediaObjects, BackendError> {
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
    if let Some(meta) = find(contract::PROGRESS) {
        match cache.and_then(|(c, uid, media)| c.get(uid, media, meta)) {
            Some(progress) => out.progress = progress,
            None => {
                let body = store.get(bucket, &meta.key).await?;
                out.progress = body.as_deref().and_then(progress_of);
                // a body that vanished between LIST and GET is looked at again next time
                if let (Some((c, uid, media)), Some(_)) = (cache, body) {
                    c.put(uid, media, meta, out.progress.clone());
                }
            }
        }
    }
    if let Some(meta) = find(contract::SUCCESS) {
        out.success_at = Some(meta.last_modified);
        let body = store.get(bucket, &meta.key).await?.unwrap_or_default();
        out.success_token = serde_json::from_slice::<contract::SuccessReport>(&body).ok().map(|r| r.token);
        // the planner's record of it: the totals, or why the output is bad
        out.success = Some(match verify(store, bucket, prefix).await? {
            Verified::Complete(output) => Ok(output),
            Verified::Incomplete(why) => Err(why),
        });
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

/// What [`verify`] found of a finished media type's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verified {
    /// The manifest and every file it names are in S3, complete: their totals.
    Complete(Output),
    /// The output is not what the manifest promises: why (missing manifest or file, a size
    /// that differs, an unreadable footer).
    Incomplete(String),
}

/// Checks a finished media type: the manifest exists, every file in it exists in S3 with the
/// size it names and a readable Parquet footer. Returns the totals, or why the output is bad;
/// only S3 errors fail.
pub async fn verify<S: ObjectStore>(store: &S, bucket: Bucket<'_>, prefix: &str) -> Result<Verified, BackendError> {
    let Some(body) = store.get(bucket, &format!("{prefix}{}", contract::MANIFEST)).await? else {
        return Ok(Verified::Incomplete(format!(
            "_success found but {}{} is missing",
            prefix,
            contract::MANIFEST
        )));
    };
    let manifest: Manifest = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => return Ok(Verified::Incomplete(format!("{} is not readable: {e}", contract::MANIFEST))),
    };
    let listed = store.list(bucket, prefix).await?;
    let mut output = Output {
        files: 0,
        bytes: 0,
        rows: Some(0),
    };
    for file in &manifest.files {
        match check_part(store, bucket, prefix, &listed, file).await? {
            PartCheck::Sound(part) => {
                output.rows = output.rows.map(|r| r + part.rows);
                output.files += 1;
                output.bytes += part.size;
            }
            PartCheck::Faulty(why) => return Ok(Verified::Incomplete(why)),
        }
    }
    Ok(Verified::Complete(output))
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

/// What [`check_part`] found of one file of a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartCheck {
    /// Present, with the manifest's size and a readable Parquet footer.
    Sound(PartFound),
    /// What is wrong with it (missing, another size, an unreadable footer), naming its key.
    Faulty(String),
}

/// Checks one file of a manifest against S3 (`listed`: the objects under `prefix`): present,
/// with the manifest's size and a readable Parquet footer; or what is wrong with it. Only S3
/// errors fail.
pub async fn check_part<S: ObjectStore>(
    store: &S,
    bucket: Bucket<'_>,
    prefix: &str,
    listed: &[crate::backend::ObjectMeta],
    file: &contract::ManifestFile,
) -> Result<PartCheck, BackendError> {
    let key = if file.key.starts_with(prefix) {
        file.key.clone()
    } else {
        format!("{prefix}{}", file.key)
    };
    let Some(meta) = listed.iter().find(|o| o.key == key) else {
        return Ok(PartCheck::Faulty(format!("{key} is in the manifest but missing from S3")));
    };
    if meta.size != file.size {
        return Ok(PartCheck::Faulty(format!(
            "{key} has {} bytes in S3 but {} in the manifest (truncated upload?)",
            meta.size, file.size
        )));
    }
    Ok(match parquet_footer(store, bucket, &key, meta.size).await? {
        Footer::Read(m) => PartCheck::Sound(PartFound {
            size: meta.size,
            rows: m.file_metadata().num_rows().max(0) as u64,
            key,
        }),
        Footer::Unreadable(why) => PartCheck::Faulty(format!("{key}: {why}")),
    })
}

/// What [`parquet_footer`] read of a Parquet file's footer.
#[derive(Clone, Debug)]
pub enum Footer {
    /// The file's metadata (schema, row groups, row count).
    Read(Box<parquet::file::metadata::ParquetMetaData>),
    /// Why the file is no complete Parquet file (too small, no footer magic, a footer that does
    /// not fit or does not decode).
    Unreadable(String),
}

/// Reads a Parquet file's footer with two ranged GETs: its metadata, or why it is unreadable.
/// Only S3 errors fail.
pub async fn parquet_footer<S: ObjectStore>(store: &S, bucket: Bucket<'_>, key: &str, size: u64) -> Result<Footer, BackendError> {
    if size < 12 {
        return Ok(Footer::Unreadable(format!("{size} bytes is too small for a Parquet file")));
    }
    let tail = store.get_tail(bucket, key, 8).await?;
    let footer = match parquet::file::metadata::FooterTail::try_from(tail.as_slice()) {
        Ok(f) => f,
        Err(e) => return Ok(Footer::Unreadable(format!("not a complete Parquet file ({e})"))),
    };
    let len = footer.metadata_length() as u64;
    if len + 8 > size {
        return Ok(Footer::Unreadable("Parquet footer length exceeds the file".into()));
    }
    let meta = store.get_tail(bucket, key, len + 8).await?;
    Ok(
        match parquet::file::metadata::ParquetMetaDataReader::decode_metadata(&meta[..len as usize]) {
            Ok(m) => Footer::Read(Box::new(m)),
            Err(e) => Footer::Unreadable(format!("unreadable Parquet footer ({e})")),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Stage;

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

    /// A bucket of `_progress.json` only, that counts GETs.
    #[derive(Default)]
    struct Progress {
        object: std::sync::Mutex<Option<(ObjectMeta, Vec<u8>)>>,
        gets: std::sync::atomic::AtomicUsize,
    }

    impl Progress {
        fn write(&self, key: &str, files: u64, second: i64) {
            let body = serde_json::to_vec(&ProgressReport {
                stage: Stage::Dumping,
                files,
                bytes: 0,
                rows: None,
                estimated_rows: None,
                rows_per_second: None,
                eta: None,
                attempt: 1,
                connection: None,
                token: "t".into(),
                time: Timestamp::from_second(second).unwrap(),
            })
            .unwrap();
            let meta = ObjectMeta {
                key: key.into(),
                size: body.len() as u64,
                last_modified: Timestamp::from_second(second).unwrap(),
            };
            *self.object.lock().unwrap() = Some((meta, body));
        }
    }

    impl ObjectStore for Progress {
        async fn list(&self, _: Bucket<'_>, prefix: &str) -> Result<Vec<ObjectMeta>, BackendError> {
            let o = self.object.lock().unwrap();
            Ok(o.iter()
                .filter(|(m, _)| m.key.starts_with(prefix))
                .map(|(m, _)| m.clone())
                .collect())
        }
        async fn get(&self, _: Bucket<'_>, key: &str) -> Result<Option<Vec<u8>>, BackendError> {
            self.gets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let o = self.object.lock().unwrap();
            Ok(o.iter().find(|(m, _)| m.key == key).map(|(_, b)| b.clone()))
        }
        async fn get_tail(&self, _: Bucket<'_>, _: &str, _: u64) -> Result<Vec<u8>, BackendError> {
            unreachable!()
        }
        async fn put(&self, _: Bucket<'_>, _: &str, _: Vec<u8>, _: &str) -> Result<(), BackendError> {
            unreachable!()
        }
        async fn head(&self, _: Bucket<'_>, _: &str) -> Result<Option<u64>, BackendError> {
            unreachable!()
        }
        async fn digest(&self, _: Bucket<'_>, _: &str) -> Result<Option<crate::backend::Digest>, BackendError> {
            unreachable!()
        }
        async fn requester_pays(&self, _: Bucket<'_>) -> Result<bool, BackendError> {
            unreachable!()
        }
        async fn enable_requester_pays(&self, _: Bucket<'_>) -> Result<(), BackendError> {
            unreachable!()
        }
        async fn presign_get(&self, _: Bucket<'_>, _: &str, _: std::time::Duration) -> Result<String, BackendError> {
            unreachable!()
        }
        async fn presign_put(&self, _: Bucket<'_>, _: &str, _: std::time::Duration) -> Result<String, BackendError> {
            unreachable!()
        }
    }

    #[tokio::test]
    async fn progress_is_read_again_only_when_the_listing_shows_it_changed() {
        let store = Progress::default();
        let cache = ProgressCache::default();
        let bucket = Bucket {
            name: "b",
            region: None,
            requester_pays: false,
        };
        let prefix = "p/2026-01-01/image/";
        let key = format!("{prefix}{}", contract::PROGRESS);
        let look = || media_objects(&store, bucket, prefix, Some((&cache, "uid", "image")));
        store.write(&key, 1, 100);
        let gets = || store.gets.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(look().await.unwrap().progress.unwrap().files, Some(1));
        assert_eq!(look().await.unwrap().progress.unwrap().files, Some(1));
        assert_eq!(gets(), 1, "an unchanged listing is served from the cache");
        store.write(&key, 2, 105);
        assert_eq!(look().await.unwrap().progress.unwrap().files, Some(2));
        assert_eq!(gets(), 2, "a new LastModified is read");
        // without a cache every look reads
        media_objects(&store, bucket, prefix, None).await.unwrap();
        assert_eq!(gets(), 3);
        // a media type that leaves play loses its entry
        assert_eq!(cache.len(), 1);
        cache.retain("uid", &["audio".into()]);
        assert!(cache.is_empty());
    }
}
