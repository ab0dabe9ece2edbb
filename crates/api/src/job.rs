//! A DataDump turned into the job of one worker run ([`build`]): the output settings resolved
//! to numbers, the odbc2parquet flags and PostgreSQL ODBC driver options of a dump. Pure, no I/O.
//!
//! The odbc2parquet options, measured on catalog-shaped rows (see the worker tests and the report in the issue):
//! - without `UseDeclareFetch=1;Fetch=N` the PostgreSQL driver buffers the whole result set;
//! - the driver reports `text` as 8190 characters and unknown types (`jsonb`, arrays) as 255
//!   (`MaxVarcharSize`), and odbc2parquet sizes its buffers from that and *fails* on longer
//!   values. `UnknownsAsLongVarchar=1;MaxLongVarcharSize=L` makes every unbounded column use
//!   the column length limit L instead, so `--column-length-limit` is the one real bound.
//! - timestamptz arrives as a zoneless timestamp in the session's time zone; the worker runs
//!   odbc2parquet with `PGTZ=UTC`, so the Parquet timestamps are UTC whatever the database's
//!   default zone;
//! - KNOWN LIMITATION: `double precision` arrives as a 32-bit FLOAT (psqlODBC reports
//!   SQL_DESC_PRECISION 0 for float8, odbc2parquet 11 maps precision <= 24 to FLOAT); no driver
//!   option changes that, and `uuid` arrives as upper-case GUID text.

use datadump_contract::job::{DEFAULT_ODBC_BATCH_BYTES, DEFAULT_ROW_GROUP_BYTES, JOB_VERSION};
use datadump_contract::{DriverOption, Engine, Job, JobOutput, OdbcJob, is_identifier, media_prefix, parse_size};

use crate::{DataDumpSpec, MediaType, Odbc2ParquetSpec, OutputSpec};

/// What the controller knows about one worker run; [`build`] turns it into the job.
#[derive(Clone, Debug)]
pub struct WorkerJob<'a> {
    /// The dump: query, engine, output options, destination (bucket, prefix, region).
    pub spec: &'a DataDumpSpec,
    /// The table this worker exports.
    pub media_type: &'a MediaType,
    /// `YYYY-MM-DD`, fixed for the whole dump (`status.dumpDate`).
    pub dump_date: &'a str,
    /// The attempt number, written into every JSON document the worker puts in S3.
    pub attempt: u32,
    /// The attempt's idempotency token, also written into every JSON document, so the
    /// controller can tell this attempt's semaphores from an earlier attempt's.
    pub token: &'a str,
    /// The dump's absolute deadline: the worker stops then, whatever happens.
    pub deadline: jiff::Timestamp,
    /// The SSM SecureString parameter holding the connection string (staged by the
    /// controller, or the user's own). Only its name is in the job.
    pub ssm_parameter: &'a str,
    /// AWS region for SSM calls, and for S3 unless `spec.destination.region` is set.
    pub region: &'a str,
}

/// Why a DataDump cannot become a worker's job.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum JobError {
    /// The media type is not a lower-case SQL identifier, so it cannot go into SQL or a key.
    #[error("media type {0:?} is not a lower-case SQL identifier")]
    InvalidMediaType(String),
    /// The dump date is not `YYYY-MM-DD`.
    #[error("dump date {0:?} is not a YYYY-MM-DD date")]
    InvalidDate(String),
    /// A value holds a NUL byte, which PostgreSQL refuses in a query.
    #[error("{0} contains a NUL byte")]
    NulByte(&'static str),
    /// A size field does not parse.
    #[error("{0} is not a size like 2GiB")]
    InvalidSize(&'static str),
}

/// Builds the job of a worker run, checking what the worker relies on.
pub fn build(w: &WorkerJob<'_>) -> Result<Job, JobError> {
    let media = w.media_type.as_str();
    if w.spec.query.contains('\0') {
        return Err(JobError::NulByte("spec.query"));
    }
    if !is_identifier(media) {
        return Err(JobError::InvalidMediaType(media.to_string()));
    }
    let date = w.dump_date;
    if date.len() != 10 || jiff::civil::Date::strptime("%Y-%m-%d", date).is_err() {
        return Err(JobError::InvalidDate(date.to_string()));
    }
    let spec = w.spec;
    let out = &spec.output;
    let size = |field: &'static str, value: &str| parse_size(value).ok_or(JobError::InvalidSize(field));
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
        wide_numeric: out.wide_numeric.unwrap_or_default(),
        time: out.time.unwrap_or_default(),
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
        key_prefix: media_prefix(&spec.destination.prefix, date, media),
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

/// The default `--column-length-limit`: 64 KiB per text, jsonb or array value.
pub const DEFAULT_COLUMN_LENGTH_LIMIT: u32 = 65_536;
/// The default `--batch-size-memory` (`spec.output.rowGroupSize` overrides it). Each batch becomes one Parquet row group, and with 64 KiB
/// per text/jsonb/array value a catalog-shaped row needs ~1 MiB of buffer: 64 MiB made row
/// groups of 63 rows, a 54 MiB footer per 1M rows and memory that grew with the row count
/// (639 MiB at 1M rows). 1 GiB gives ~1,000-row groups, output as small as odbc2parquet's own
/// defaults, and ~2 GiB peak RSS on 1M rows, well within the default m7g.xlarge's 16 GiB
/// (benches/dump_throughput.rs). Smaller instances can lower it with `extraArgs`.
pub const DEFAULT_BATCH_SIZE_MEMORY: &str = "1GiB";
/// psqlODBC's `ConnSettings`: makes every transaction of the session read-only.
pub const READ_ONLY_SETTINGS: &str = "{SET default_transaction_read_only=on}";
/// Rows the driver fetches per cursor round trip (`Fetch=`).
pub const FETCH_ROWS: u32 = 20_000;

/// The value an extra argument gives `flag` (`--flag=value`), if any.
fn extra_value<'a>(o: &'a Odbc2ParquetSpec, flag: &str) -> Option<&'a str> {
    o.extra_args.iter().rev().find_map(|a| {
        let (name, value) = a.0.split_once('=').unwrap_or((a.0.as_str(), ""));
        (name == flag).then_some(value)
    })
}

fn user_sets(o: &Odbc2ParquetSpec, flag: &str) -> bool {
    extra_value(o, flag).is_some()
}

/// The effective `--column-length-limit`: an extra argument's, else the spec's, else 65536.
pub fn column_length_limit(o: &Odbc2ParquetSpec) -> u32 {
    extra_value(o, "--column-length-limit")
        .and_then(|v| v.parse().ok())
        .or(o.column_length_limit)
        .unwrap_or(DEFAULT_COLUMN_LENGTH_LIMIT)
}

/// The `odbc2parquet query` flags as `--flag=value` words (they go before OUTPUT; the query
/// comes on standard input).
/// A flag the user also passes in `extraArgs` is left to the user's value: odbc2parquet
/// rejects a flag given twice. `--no-empty-file` is not set: odbc2parquet 11 creates no empty
/// trailing part, so without it an empty table gives exactly one part with the schema.
pub fn odbc2parquet_args(o: &Odbc2ParquetSpec, out: &OutputSpec) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    let mut push = |flag: &str, value: String| {
        if !user_sets(o, flag) {
            args.push(format!("{flag}={value}"));
        }
    };
    push(
        "--batch-size-memory",
        out.row_group_size.clone().unwrap_or_else(|| DEFAULT_BATCH_SIZE_MEMORY.into()),
    );
    push("--file-size-threshold", out.file_size_threshold().into());
    push("--column-compression-default", out.compression.as_str().into());
    push(
        "--column-length-limit",
        o.column_length_limit.unwrap_or(DEFAULT_COLUMN_LENGTH_LIMIT).to_string(),
    );
    if let Some(rows) = o.batch_size_rows {
        push("--batch-size-row", rows.to_string());
    }
    args.extend(o.extra_args.iter().map(|a| a.0.clone()));
    args
}

/// The driver options the worker appends when the connection string lacks them: cursor
/// fetching, real booleans, and buffers bounded by the column length limit.
pub fn driver_options(o: &Odbc2ParquetSpec) -> Vec<DriverOption> {
    let opt = |name: &str, alias: &str, value: String| DriverOption {
        name: name.into(),
        alias: alias.into(),
        value,
    };
    vec![
        opt("UseDeclareFetch", "B6", "1".into()),
        opt("Fetch", "A7", FETCH_ROWS.to_string()),
        opt("BoolsAsChar", "B9", "0".into()),
        opt("UnknownsAsLongVarchar", "B8", "1".into()),
        opt("MaxLongVarcharSize", "B1", column_length_limit(o).to_string()),
        // sent after connecting: the database itself refuses any write the query might make
        opt("ConnSettings", "A6", READ_ONLY_SETTINGS.into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DataDumpSpec, MediaType};
    use datadump_contract::{Compression, SUCCESS, TimeOfDay, WideNumeric};
    use jiff::Timestamp;

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
        let job = build(&worker_job(&s, &media, "2026-11-01")).unwrap();
        assert_eq!(job.key_prefix, "dumps/2026-11-01/image/");
        assert_eq!(job.key(SUCCESS), "dumps/2026-11-01/image/_success");
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
                wide_numeric: WideNumeric::String,
                time: TimeOfDay::String,
            }
        );
        assert!(job.odbc2parquet.is_none());
        // (the JSON round trip and the TLS fields: the contract crate's job tests)
        assert_eq!(Job::from_json(&job.to_json()).unwrap(), job);
    }

    #[test]
    fn the_job_carries_the_zstd_level_and_the_chunking_switch() {
        let s = spec(
            "mediaTypes: [image]\ndestination: {bucket: b}\ndatabase: {ssmParameterName: /p}\n\
             output: {compressionLevel: 9, contentDefinedChunking: false}\n",
        );
        let media = MediaType("image".into());
        let job = build(&worker_job(&s, &media, "2026-11-01")).unwrap();
        assert_eq!(
            (job.output.compression_level, job.output.content_defined_chunking),
            (Some(9), false)
        );
    }

    #[test]
    fn the_odbc2parquet_engine_gets_its_flags_and_driver_options() {
        let s = spec(
            "mediaTypes: [audio]\ndestination: {bucket: b}\ndatabase: {ssmParameterName: /p}\nengine: odbc2parquet\n\
             odbc2parquet: {columnLengthLimit: 1000}\n",
        );
        let media = MediaType("audio".into());
        let job = build(&worker_job(&s, &media, "2026-11-01")).unwrap();
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
            build(&worker_job(&s, &media, "2026-13-01")),
            Err(JobError::InvalidDate("2026-13-01".into()))
        );
        let bad = MediaType("Image; DROP".into());
        assert!(matches!(
            build(&worker_job(&s, &bad, "2026-11-01")),
            Err(JobError::InvalidMediaType(_))
        ));
        let mut s2 = s.clone();
        s2.query = "SELECT 1\0 FROM {media_type}".into();
        assert_eq!(build(&worker_job(&s2, &media, "2026-11-01")), Err(JobError::NulByte("spec.query")));
    }

    use crate::ExtraArg;

    #[test]
    fn defaults_bound_memory_and_files() {
        let args = odbc2parquet_args(&Odbc2ParquetSpec::default(), &OutputSpec::default());
        assert_eq!(
            args,
            [
                "--batch-size-memory=1GiB",
                "--file-size-threshold=2GiB",
                "--column-compression-default=zstd",
                "--column-length-limit=65536"
            ]
        );
        let names: Vec<_> = driver_options(&Odbc2ParquetSpec::default())
            .iter()
            .map(|o| format!("{}={}", o.name, o.value))
            .collect();
        assert_eq!(
            names,
            [
                "UseDeclareFetch=1",
                "Fetch=20000",
                "BoolsAsChar=0",
                "UnknownsAsLongVarchar=1",
                "MaxLongVarcharSize=65536",
                "ConnSettings={SET default_transaction_read_only=on}"
            ]
        );
    }

    #[test]
    fn spec_fields_and_extra_args_are_used_and_never_doubled() {
        let out = OutputSpec {
            file_size_threshold: Some("1MiB".into()),
            compression: Compression::Snappy,
            ..Default::default()
        };
        let o = Odbc2ParquetSpec {
            column_length_limit: Some(1000),
            batch_size_rows: Some(5000),
            extra_args: vec![ExtraArg("--batch-size-memory=1GiB".into()), ExtraArg("--avoid-decimal".into())],
            ..Default::default()
        };
        let args = odbc2parquet_args(&o, &out);
        assert_eq!(
            args,
            [
                "--file-size-threshold=1MiB",
                "--column-compression-default=snappy",
                "--column-length-limit=1000",
                "--batch-size-row=5000",
                "--batch-size-memory=1GiB",
                "--avoid-decimal"
            ]
        );
        assert_eq!(column_length_limit(&o), 1000);
        let o = Odbc2ParquetSpec {
            extra_args: vec![ExtraArg("--column-length-limit=200000".into())],
            ..o
        };
        assert_eq!(column_length_limit(&o), 200_000);
        assert_eq!(
            odbc2parquet_args(&o, &out)
                .iter()
                .filter(|a| a.starts_with("--column-length-limit"))
                .count(),
            1
        );
        assert_eq!(driver_options(&o)[4].value, "200000");
    }
}
