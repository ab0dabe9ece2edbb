//! datadump-operator: export PostgreSQL tables to Parquet on S3 with short-lived EC2 workers,
//! reconciled from `DataDump` custom resources (and `DataDumpSchedule`s that create them).
//!
//! The design — data flow, the state machines, the S3 contract, the security model, and which
//! function holds each rule — is in `docs/architecture.md`; the user's view is the README.
#![forbid(unsafe_code)]

pub mod act;
pub mod api;
pub mod aws;
pub mod backend;
pub mod card;
pub mod cli;
pub mod controller;
pub mod failpoint;
pub mod handoff;
pub mod http;
pub mod instance_cache;
pub mod metrics;
pub mod notify;
pub mod observe;
pub mod pem;
pub mod plan;
pub mod run;
pub mod telemetry;
pub mod worker;
