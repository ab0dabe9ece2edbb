//! The worker: one attempt of one media type, on an EC2 instance (the `datadump-worker` binary
//! the bootstrap downloads) or as a local process (`datadump worker`), keeping the S3 contract
//! with the controller (`datadump_contract`). No Kubernetes, no EC2: this crate is what every
//! instance runs.
//!
//! - [`attempt`]: the worker itself: credentials from SSM, the engine, progress, manifest,
//!   `_success` last or `_failure` (I/O);
//! - [`pg`]: the native PostgreSQL engine; [`odbc`]: odbc2parquet as a child process (I/O);
//! - [`sink`], [`s3sink`]: where engines write Parquet files (I/O);
//! - [`store`], [`aws`]: object storage as the worker and the controller both use it, S3 through
//!   the AWS SDK, and the one classification of a failed AWS call (I/O at the edges);
//! - [`pem`]: PEM blocks of CA bundles and client identities (pure);
//! - [`telemetry`]: logging with `tracing` (the worker's log keeps its tail for `_failure`).
#![forbid(unsafe_code)]

pub mod attempt;
pub mod aws;
pub mod odbc;
pub mod pem;
pub mod pg;
pub mod s3sink;
pub mod sink;
pub mod store;
pub mod telemetry;

pub use attempt::{LogTail, WorkerArgs};
