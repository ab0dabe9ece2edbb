//! datadump-operator: export PostgreSQL tables to Parquet on S3 with short-lived EC2 workers,
//! reconciled from `DataDump` custom resources (and `DataDumpSchedule`s that create them).
//!
//! This crate is the `datadump` binary's: the controller, the one-shot runner, observe/act,
//! EC2, the instance cache, the card, notifications, the handoff, launching workers (bootstrap
//! and release) and the CLI. It stands on the workspace's other crates, which it re-exports
//! under their layer names: [`contract`] (what controller and worker agree on), [`api`] (the
//! resources, validation) with [`plan`] (the pure planners), and [`worker`] (what each EC2
//! instance runs, as `datadump-worker`).
//!
//! The design — data flow, the state machines, the S3 contract, the security model, and which
//! function holds each rule — is in `docs/architecture.md`; the user's view is the README.
#![forbid(unsafe_code)]

pub use datadump_api as api;
pub use datadump_api::plan;
pub use datadump_contract as contract;
pub use datadump_worker as worker;
pub use datadump_worker::telemetry;

pub mod act;
pub mod aws;
pub mod backend;
pub mod card;
pub mod cli;
pub mod controller;
pub mod failpoint;
pub mod handoff;
pub mod http;
pub mod input;
pub mod instance_cache;
pub mod launch;
pub mod metrics;
pub mod notify;
pub mod observe;
pub mod run;
