//! What the datadump controller and its workers agree on, and nothing else: the job of one
//! worker run ([`job`]), the S3 objects a run writes and the controller reads ([`objects`]),
//! the CPU architectures there are worker binaries for ([`arch`]), the output options as the
//! worker reads them ([`options`]), sizes ([`size`]) and the identifier rule for table names
//! ([`ident`]). Serde only: no tokio, no Kubernetes, no AWS. Pure, no I/O.
//!
//! The controller's crates build these values (the API crate turns a DataDump into a [`Job`]);
//! the worker crate reads them. A change here is a change of the wire format between the two.
#![forbid(unsafe_code)]

pub mod arch;
pub mod ident;
pub mod job;
pub mod objects;
pub mod options;
pub mod size;

pub use arch::Arch;
pub use ident::{MEDIA_TYPE_PLACEHOLDER, is_identifier};
pub use job::{Bucket, DriverOption, Job, JobOutput, JobReadError, OdbcJob};
pub use objects::*;
pub use options::{Compression, Engine, TimeOfDay, WideNumeric};
pub use size::{human_bytes, parse_size};
