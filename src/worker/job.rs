//! The job of one worker run: everything `datadump worker` needs, as JSON. It never holds a
//! secret: the connection string and the client certificate's key stay in SSM and only the
//! parameters' names are here (the CA bundle, public, is here whole). The
//! controller builds it ([`Job::new`]) and writes it next to the output, where the worker reads
//! it with its instance role (`--job-s3`; `--job-file` for local workers).
//! Pure, no I/O.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::options::{DriverOption, driver_options, odbc2parquet_args};
use super::{RenderError, WorkerJob, contract};
use crate::api::{Compression, Engine, MEDIA_TYPE_PLACEHOLDER, parse_size};

/// The job format's version; a worker refuses a job of another version.
pub const JOB_VERSION: u32 = 1;
/// The `postgres` engine's default row group size (encoded, in memory). Measured on 1M
/// catalog rows: 16 MiB gives 109/203 MiB peak RSS with 1/2 streams and output 1.8 % larger
/// than 32 MiB (130/234 MiB); 64 MiB needs 165/258 MiB.
pub const DEFAULT_ROW_GROUP_BYTES: u64 = 16 << 20;
/// The `odbc2parquet` engine's default `--batch-size-memory` (its fetch buffers; see
/// `options.rs` for why 1 GiB).
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
    pub fn bucket(&self) -> crate::backend::Bucket<'_> {
        crate::backend::Bucket {
            name: &self.bucket,
            region: Some(&self.s3_region),
            requester_pays: self.requester_pays,
        }
    }

    /// Builds the job of a worker run, checking what the worker relies on.
    pub fn new(w: &WorkerJob<'_>) -> Result<Job, RenderError> {
        let media = w.media_type.as_str();
        if w.spec.query.contains('\0') {
            return Err(RenderError::NulByte("spec.query"));
        }
        if !crate::api::validate::media_type_is_valid(media) {
            return Err(RenderError::InvalidMediaType(media.to_string()));
        }
        let date = w.dump_date;
        if date.len() != 10 || jiff::civil::Date::strptime("%Y-%m-%d", date).is_err() {
            return Err(RenderError::InvalidDate(date.to_string()));
        }
        let spec = w.spec;
        let out = &spec.output;
        let size = |field: &'static str, value: &str| parse_size(value).ok_or(RenderError::InvalidSize(field));
        let row_group_bytes = match (&out.row_group_size, spec.engine) {
            (Some(v), _) => size("spec.output.rowGroupSize", v)?,
            (None, Engine::Postgres) => DEFAULT_ROW_GROUP_BYTES,
            (None, Engine::Odbc2parquet) => DEFAULT_ODBC_BATCH_BYTES,
        };
        let output = JobOutput {
            file_size_threshold: size("spec.output.fileSizeThreshold", out.file_size_threshold())?,
            compression: out.compression,
            row_group_bytes,
            parallelism: out.parallelism,
            compression_level: out.compression_level,
            content_defined_chunking: out.content_defined_chunking.unwrap_or(true),
        };
        let odbc2parquet = (spec.engine == Engine::Odbc2parquet).then(|| OdbcJob {
            version: spec.odbc2parquet.version.clone(),
            args: odbc2parquet_args(&spec.odbc2parquet, out),
            driver_options: driver_options(&spec.odbc2parquet),
        });
        let job = Job {
            version: JOB_VERSION,
            media_type: media.to_string(),
            dump_date: date.to_string(),
            attempt: w.attempt,
            token: w.token.to_string(),
            deadline: w.deadline,
            query: spec.query.clone(),
            bucket: spec.destination.bucket.clone(),
            key_prefix: contract::media_prefix(&spec.destination.prefix, date, media),
            s3_region: spec.destination.region.clone().unwrap_or_else(|| w.region.to_string()),
            requester_pays: spec.destination.requester_pays,
            region: w.region.to_string(),
            ssm_parameter: w.ssm_parameter.to_string(),
            // both from spec.database.tls: the staged parameter's name is the planner's to give
            // (`plan/media.rs::launch_request`), the bundle is read when launching (`act::perform`)
            ca_bundle: None,
            client_identity_parameter: None,
            engine: spec.engine,
            output,
            odbc2parquet,
        };
        Ok(job)
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
    pub fn from_json(text: &str) -> Result<Job, String> {
        let job: Job = serde_json::from_str(text).map_err(|e| format!("the job is not valid: {e}"))?;
        if job.version != JOB_VERSION {
            return Err(format!(
                "the job has version {}, this worker reads version {JOB_VERSION}; use the worker binary of the controller's release",
                job.version
            ));
        }
        Ok(job)
    }
}

/// A job of `image` on 2026-11-01 for tests.
#[cfg(test)]
pub(crate) fn sample(token: &str) -> Job {
    let spec: crate::api::DataDumpSpec =
        serde_yaml::from_str("mediaTypes: [image]\ndestination: {bucket: b}\ndatabase: {ssmParameterName: /p}\n").unwrap();
    let media = crate::api::MediaType("image".into());
    Job::new(&WorkerJob {
        spec: &spec,
        media_type: &media,
        dump_date: "2026-11-01",
        attempt: 1,
        token,
        deadline: Timestamp::now(),
        ssm_parameter: "/p",
        region: "us-east-1",
    })
    .expect("a valid job")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DataDumpSpec, MediaType};

    pub(crate) fn spec(yaml: &str) -> DataDumpSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn worker_job<'a>(spec: &'a DataDumpSpec, media: &'a MediaType, date: &'a str) -> WorkerJob<'a> {
        WorkerJob {
            spec,
            media_type: media,
            dump_date: date,
            attempt: 2,
            token: "ddt-1",
            deadline: Timestamp::from_second(1_800_000_000).unwrap(),
            ssm_parameter: "/datadump/uid/image",
            region: "eu-west-1",
        }
    }

    #[test]
    fn a_job_carries_the_resolved_settings_and_round_trips() {
        let s = spec(
            "mediaTypes: [image]\ndestination: {bucket: b, prefix: /dumps/}\ndatabase: {ssmParameterName: /p}\n\
             output: {fileSizeThreshold: 512MiB, compression: snappy, parallelism: 2}\n",
        );
        let media = MediaType("image".into());
        let job = Job::new(&worker_job(&s, &media, "2026-11-01")).unwrap();
        assert_eq!(job.key_prefix, "dumps/2026-11-01/image/");
        assert_eq!(job.key(contract::SUCCESS), "dumps/2026-11-01/image/_success");
        assert_eq!(job.s3_region, "eu-west-1");
        assert_eq!(job.rendered_query(), "SELECT * FROM image");
        assert_eq!(
            job.output,
            JobOutput {
                file_size_threshold: 512 << 20,
                compression: Compression::Snappy,
                row_group_bytes: DEFAULT_ROW_GROUP_BYTES,
                parallelism: Some(2),
                compression_level: None,
                content_defined_chunking: true,
            }
        );
        assert!(job.odbc2parquet.is_none());
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
        assert!(Job::from_json(&other.to_string()).unwrap_err().contains("version 9"));
    }

    #[test]
    fn the_job_carries_the_zstd_level_and_the_chunking_switch() {
        let s = spec(
            "mediaTypes: [image]\ndestination: {bucket: b}\ndatabase: {ssmParameterName: /p}\n\
             output: {compressionLevel: 9, contentDefinedChunking: false}\n",
        );
        let media = MediaType("image".into());
        let job = Job::new(&worker_job(&s, &media, "2026-11-01")).unwrap();
        assert_eq!(
            (job.output.compression_level, job.output.content_defined_chunking),
            (Some(9), false)
        );
        // A job written before these fields existed keeps chunking on.
        let mut old = serde_json::to_value(&job).unwrap();
        let o = old["output"].as_object_mut().unwrap();
        o.remove("compressionLevel");
        o.remove("contentDefinedChunking");
        let old = Job::from_json(&old.to_string()).unwrap();
        assert_eq!((old.output.compression_level, old.output.content_defined_chunking), (None, true));
    }

    #[test]
    fn the_odbc2parquet_engine_gets_its_flags_and_driver_options() {
        let s = spec(
            "mediaTypes: [audio]\ndestination: {bucket: b}\ndatabase: {ssmParameterName: /p}\nengine: odbc2parquet\n\
             odbc2parquet: {columnLengthLimit: 1000}\n",
        );
        let media = MediaType("audio".into());
        let job = Job::new(&worker_job(&s, &media, "2026-11-01")).unwrap();
        let o = job.odbc2parquet.unwrap();
        assert!(o.args.contains(&"--batch-size-memory=1GiB".to_string()), "{:?}", o.args);
        assert!(o.args.contains(&"--column-length-limit=1000".to_string()));
        assert!(o.driver_options.iter().any(|d| d.name == "UseDeclareFetch"));
    }

    #[test]
    fn bad_values_are_refused() {
        let s = spec("mediaTypes: [image]\ndestination: {bucket: b}\ndatabase: {ssmParameterName: /p}\n");
        let media = MediaType("image".into());
        assert_eq!(
            Job::new(&worker_job(&s, &media, "2026-13-01")),
            Err(RenderError::InvalidDate("2026-13-01".into()))
        );
        let bad = MediaType("Image; DROP".into());
        assert!(matches!(
            Job::new(&worker_job(&s, &bad, "2026-11-01")),
            Err(RenderError::InvalidMediaType(_))
        ));
        let mut s2 = s.clone();
        s2.query = "SELECT 1\0 FROM {media_type}".into();
        assert_eq!(
            Job::new(&worker_job(&s2, &media, "2026-11-01")),
            Err(RenderError::NulByte("spec.query"))
        );
    }
}
