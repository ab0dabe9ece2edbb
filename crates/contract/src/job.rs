//! The job of one worker run: everything `datadump worker` needs, as JSON. It never holds a
//! secret: the connection string and the client certificate's key stay in SSM and only the
//! parameters' names are here (the CA bundle, public, is here whole). The
//! controller builds it ([`Job::new`]) and writes it next to the output, where the worker reads
//! it with its instance role (`--job-s3`; `--job-file` for local workers).
//! Pure, no I/O.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{Compression, Engine, MEDIA_TYPE_PLACEHOLDER, TimeOfDay, WideNumeric};

/// The job format's version; a worker refuses a job of another version.
pub const JOB_VERSION: u32 = 1;
/// The `postgres` engine's default row group size (encoded, in memory). Measured on 1M
/// catalog rows: 16 MiB gives 109/203 MiB peak RSS with 1/2 streams and output 1.8 % larger
/// than 32 MiB (130/234 MiB); 64 MiB needs 165/258 MiB.
pub const DEFAULT_ROW_GROUP_BYTES: u64 = 16 << 20;
/// The `odbc2parquet` engine's default `--batch-size-memory` (its fetch buffers; see the API
/// crate's `job.rs` for why 1 GiB).
pub const DEFAULT_ODBC_BATCH_BYTES: u64 = 1 << 30;
/// The most parallel streams the default picks, whatever the vCPUs.
pub const DEFAULT_MAX_PARALLELISM: u32 = 4;

/// One attempt of one media type.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// [`JOB_VERSION`].
    pub version: u32,
    /// The table.
    pub media_type: String,
    /// `YYYY-MM-DD`, fixed for the whole dump.
    pub dump_date: String,
    /// The attempt number.
    pub attempt: u32,
    /// The attempt's idempotency token, written into every document the worker puts in S3.
    pub token: String,
    /// The dump's absolute deadline: the worker stops and reports `deadline` then.
    pub deadline: Timestamp,
    /// The query template (`{media_type}` not yet replaced: the engine may replace it with a
    /// `ctid` range of the table for parallel streams).
    pub query: String,
    /// The destination bucket.
    pub bucket: String,
    /// `PREFIX/DATE/MEDIA/`: where every object of this media type goes.
    pub key_prefix: String,
    /// The bucket's region.
    pub s3_region: String,
    /// The bucket makes requesters pay: every S3 call says `x-amz-request-payer: requester`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub requester_pays: bool,
    /// The region of the SSM parameter.
    pub region: String,
    /// The SSM SecureString parameter holding the connection string.
    pub ssm_parameter: String,
    /// PEM CA certificates the worker verifies the database server's certificate against when
    /// the connection string names no `sslrootcert` (from `spec.database.tls.caBundle`). Not a
    /// secret, so it travels in the job, never in user data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// The SSM SecureString parameter holding the client certificate (PEM chain) followed by its
    /// PEM private key, when the server wants a client certificate. Only the name is here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_identity_parameter: Option<String>,
    /// What reads the database.
    pub engine: Engine,
    /// How the files are written.
    pub output: JobOutput,
    /// The odbc2parquet engine's settings (only for that engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub odbc2parquet: Option<OdbcJob>,
}

/// Engine-neutral output settings, resolved to numbers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobOutput {
    /// Start a new file once the current one has this many bytes.
    pub file_size_threshold: u64,
    /// The Parquet codec.
    pub compression: Compression,
    /// Row group size in bytes (in memory, before compression).
    pub row_group_bytes: u64,
    /// Streams wanted; `None`: the worker's vCPUs, at most [`DEFAULT_MAX_PARALLELISM`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    /// The zstd level (`spec.output.compressionLevel`); `None`: the engine's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression_level: Option<u8>,
    /// Content-defined chunking (`spec.output.contentDefinedChunking`, default true).
    #[serde(default = "yes")]
    pub content_defined_chunking: bool,
    /// `numeric(p,s)` with p > 38 (`spec.output.wideNumeric`; an older job: the default).
    #[serde(default)]
    pub wide_numeric: WideNumeric,
    /// `time` (`spec.output.time`; an older job: the default).
    #[serde(default)]
    pub time: TimeOfDay,
}

fn yes() -> bool {
    true
}

/// The odbc2parquet engine's settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OdbcJob {
    /// The release the spec expects (a different one on the image is logged).
    pub version: String,
    /// `odbc2parquet query` flags (before OUTPUT; the query comes on standard input).
    pub args: Vec<String>,
    /// Driver options appended to the connection string when it lacks them.
    pub driver_options: Vec<DriverOption>,
}

impl Job {
    /// The destination bucket as the backends address it.
    pub fn bucket(&self) -> Bucket<'_> {
        Bucket {
            name: &self.bucket,
            region: Some(&self.s3_region),
            requester_pays: self.requester_pays,
        }
    }

    /// The query with `{media_type}` replaced by the table's name.
    pub fn rendered_query(&self) -> String {
        self.query.replace(MEDIA_TYPE_PLACEHOLDER, &self.media_type)
    }

    /// The S3 key of one object of the contract, e.g. `key(contract::SUCCESS)`.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.key_prefix)
    }

    /// The job as compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a job serializes")
    }

    /// Reads a job, refusing other versions.
    pub fn from_json(text: &str) -> Result<Job, JobReadError> {
        let job: Job = serde_json::from_str(text).map_err(|e| JobReadError::Invalid(e.to_string()))?;
        if job.version != JOB_VERSION {
            return Err(JobReadError::Version(job.version));
        }
        Ok(job)
    }
}

/// A job of `image` on 2026-11-01 for tests.
/// Why a job cannot be read.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum JobReadError {
    /// The text is not a job.
    #[error("the job is not valid: {0}")]
    Invalid(String),
    /// A job of another format version.
    #[error("the job has version {0}, this worker reads version {JOB_VERSION}; use the worker binary of the controller's release")]
    Version(u32),
}

/// A PostgreSQL ODBC driver option the worker appends to the connection string unless the
/// string already sets it (under its name or its abbreviation, case-insensitively).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverOption {
    /// The option's name, e.g. `UseDeclareFetch`.
    pub name: String,
    /// psqlODBC's abbreviation of it, e.g. `B6`.
    pub alias: String,
    /// The value to set.
    pub value: String,
}

/// A bucket and, when it is not in the client's default region, its region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket<'a> {
    /// The bucket name.
    pub name: &'a str,
    /// Its region (`None`: the default one).
    pub region: Option<&'a str>,
    /// Whether requests say `x-amz-request-payer: requester` (a Requester Pays bucket; the
    /// bucket owner's own requests work either way, another account's need it).
    pub requester_pays: bool,
}

impl<'a> Bucket<'a> {
    /// A bucket in the client's default region, requests not marked requester-pays.
    pub fn named(name: &'a str) -> Self {
        Bucket {
            name,
            region: None,
            requester_pays: false,
        }
    }
}

/// A job as the controller writes it for the first attempt of `image` on 2026-11-01, for
/// tests of the crates that read jobs.
pub fn sample(token: &str) -> Job {
    Job {
        version: JOB_VERSION,
        media_type: "image".into(),
        dump_date: "2026-11-01".into(),
        attempt: 1,
        token: token.into(),
        deadline: Timestamp::from_second(1_800_000_000).expect("a timestamp"),
        query: format!("SELECT * FROM {MEDIA_TYPE_PLACEHOLDER}"),
        bucket: "b".into(),
        key_prefix: "data-dump/2026-11-01/image/".into(),
        s3_region: "us-east-1".into(),
        requester_pays: false,
        region: "us-east-1".into(),
        ssm_parameter: "/p".into(),
        ca_bundle: None,
        client_identity_parameter: None,
        engine: Engine::Postgres,
        output: JobOutput {
            file_size_threshold: 2 << 30,
            compression: Compression::Zstd,
            row_group_bytes: DEFAULT_ROW_GROUP_BYTES,
            parallelism: None,
            compression_level: None,
            content_defined_chunking: true,
            wide_numeric: WideNumeric::default(),
            time: TimeOfDay::default(),
        },
        odbc2parquet: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_round_trips_and_names_its_objects() {
        let job = sample("ddt-1");
        assert_eq!(job.key(crate::SUCCESS), "data-dump/2026-11-01/image/_success");
        assert_eq!(job.rendered_query(), "SELECT * FROM image");
        assert_eq!(Job::from_json(&job.to_json()).unwrap(), job);
        assert!(
            !job.to_json().contains("caBundle") && !job.to_json().contains("clientIdentityParameter"),
            "no TLS fields unless asked: {}",
            job.to_json()
        );
        let mut tls = job.clone();
        tls.client_identity_parameter = Some("/datadump/uid/image/client-identity".into());
        tls.ca_bundle = Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into());
        let json: serde_json::Value = serde_json::from_str(&tls.to_json()).unwrap();
        assert_eq!(json["clientIdentityParameter"], "/datadump/uid/image/client-identity");
        assert!(json["caBundle"].as_str().unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(Job::from_json(&tls.to_json()).unwrap(), tls);
        let mut other = serde_json::to_value(&job).unwrap();
        other["version"] = 9.into();
        assert!(Job::from_json(&other.to_string()).unwrap_err().to_string().contains("version 9"));
    }

    #[test]
    fn a_job_written_before_the_chunking_switch_keeps_chunking_on() {
        let mut old = serde_json::to_value(sample("ddt-1")).unwrap();
        let o = old["output"].as_object_mut().unwrap();
        for field in ["compressionLevel", "contentDefinedChunking", "wideNumeric", "time"] {
            o.remove(field);
        }
        let old = Job::from_json(&old.to_string()).unwrap();
        assert_eq!((old.output.compression_level, old.output.content_defined_chunking), (None, true));
        assert_eq!((old.output.wide_numeric, old.output.time), (WideNumeric::String, TimeOfDay::String));
    }
}
