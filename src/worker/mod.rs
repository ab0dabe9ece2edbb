//! The worker: the EC2 user data that dumps one media type of a DataDump to Parquet on S3.
//!
//! Pure, no I/O: this module only renders text. The rendered bash script does the I/O on the
//! instance: it schedules its own shutdown at the deadline, installs what is missing, reads the
//! connection string from SSM, runs odbc2parquet, uploads each Parquet part as soon as it is
//! complete, writes `_manifest.json` and then `_success` (or `_failure`), and shuts down.
//! [`contract`] holds the S3 keys and JSON documents the controller reads.
//!
//! Every user-supplied value reaches the script as data: a quoted here-document per value,
//! never shell code. The fixed program ([`program`]) travels gzip+base64 compressed so that
//! the user data stays under EC2's 16 KiB limit.

pub mod contract;
pub mod pg;
pub mod sink;
mod options;
mod render;

#[cfg(test)]
mod script_tests;
#[cfg(test)]
pub(crate) mod testkit;

use crate::api::{DataDumpSpec, MediaType};

pub use options::{
    DEFAULT_BATCH_SIZE_MEMORY, DEFAULT_COLUMN_LENGTH_LIMIT, DriverOption, FETCH_ROWS, column_length_limit, driver_options,
    odbc2parquet_args,
};
pub use render::{USER_DATA_LIMIT, program, render, render_preview};

/// Everything one worker run needs. The controller builds it; [`render`] turns it into user
/// data.
#[derive(Clone, Debug)]
pub struct WorkerJob<'a> {
    /// The dump: query, odbc2parquet options, destination (bucket, prefix, region).
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
    /// The dump's absolute deadline: the worker shuts itself down then, whatever happens.
    pub deadline: jiff::Timestamp,
    /// The SSM SecureString parameter holding the ODBC connection string (staged by the
    /// controller, or the user's own). Only its name is in the user data.
    pub ssm_parameter: &'a str,
    /// AWS region for SSM calls, and for S3 unless `spec.destination.region` is set.
    pub region: &'a str,
}

/// Why a job cannot become user data.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RenderError {
    /// The media type is not a lower-case SQL identifier, so it cannot go into SQL or a key.
    #[error("media type {0:?} is not a lower-case SQL identifier")]
    InvalidMediaType(String),
    /// The dump date is not `YYYY-MM-DD`.
    #[error("dump date {0:?} is not a YYYY-MM-DD date")]
    InvalidDate(String),
    /// A value holds a NUL byte, which no shell variable can carry.
    #[error("{0} contains a NUL byte")]
    NulByte(&'static str),
    /// The user data would exceed EC2's limit.
    #[error(
        "the worker user data would be {size} bytes, more than EC2's limit of {limit}; shorten spec.query, spec.odbc2parquet.extraArgs or spec.destination.prefix"
    )]
    TooLarge {
        /// The rendered size in bytes.
        size: usize,
        /// [`USER_DATA_LIMIT`].
        limit: usize,
    },
}

impl RenderError {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            RenderError::InvalidMediaType(_) => "invalid_media_type",
            RenderError::InvalidDate(_) => "invalid_date",
            RenderError::NulByte(_) => "nul_byte",
            RenderError::TooLarge { .. } => "too_large",
        }
    }
}
