//! The worker: `datadump worker` runs one attempt of one media type on an EC2 instance (or as a
//! local process) and keeps the S3 contract with the controller.
//!
//! - [`job`]: what one run needs, as JSON, never a secret (pure);
//! - [`bootstrap`]: the EC2 user data, a short POSIX sh script that fetches and checks the
//!   binary and runs the worker (pure);
//! - [`contract`]: the S3 keys and JSON documents the controller reads (pure);
//! - [`runtime`]: the worker itself: credentials from SSM, the engine, progress, manifest,
//!   `_success` last or `_failure` (I/O);
//! - [`pg`]: the native PostgreSQL engine; [`odbc`]: odbc2parquet as a child process (I/O);
//! - [`sink`], [`s3sink`]: where engines write Parquet files (I/O);
//! - [`release`]: the worker binaries in the destination bucket and each launch's user data (I/O).

pub mod bootstrap;
pub mod contract;
pub mod job;
pub mod odbc;
mod options;
pub mod pg;
pub mod release;
pub mod runtime;
pub mod s3sink;
pub mod sink;

use crate::api::{DataDumpSpec, MediaType};

pub use bootstrap::{Arch, BinarySource, Bootstrap, USER_DATA_LIMIT, render, render_preview};
pub use job::Job;
pub use options::{
    DEFAULT_BATCH_SIZE_MEMORY, DEFAULT_COLUMN_LENGTH_LIMIT, DriverOption, FETCH_ROWS, column_length_limit, driver_options,
    odbc2parquet_args,
};

/// What the controller knows about one worker run; [`Job::new`] turns it into the job.
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

/// Why a job cannot become user data.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RenderError {
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
    /// No worker binary is configured for the instance's architecture.
    #[error(
        "no worker binary for {0} instances: the controller's --worker-binaries-dir has no datadump-{0}; add it (the controller image carries both) or choose an instance type of another architecture"
    )]
    NoBinary(&'static str),
    /// The user data would exceed EC2's limit.
    #[error("the worker user data would be {size} bytes, more than EC2's limit of {limit}; shorten spec.query or spec.destination.prefix")]
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
            RenderError::InvalidSize(_) => "invalid_size",
            RenderError::NoBinary(_) => "no_binary",
            RenderError::TooLarge { .. } => "too_large",
        }
    }
}
