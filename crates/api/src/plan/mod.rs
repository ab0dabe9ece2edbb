//! The planner: every lifecycle decision, as one pure function
//! `plan(&DataDump, &Observed, &PlanContext, now) -> Plan` (and, for DataDumpSchedules,
//! [`schedule::plan_schedule`]). No I/O, no clock reads, no randomness. The drivers (controller, one-shot runner) observe the world, call `plan`,
//! perform its actions in order, then write its status.
//!
//! Restart safety rests on two rules kept here:
//! - a `Launch` is only planned for a token that is already in the *persisted* status, so the
//!   token is always written before RunInstances is called;
//! - before launching, an instance carrying the token's tag is adopted, never duplicated.

mod cleanup;
mod dump;
mod instance;
mod media;
mod reason;
pub mod schedule;
#[cfg(test)]
mod schedule_tests;
mod settle;
mod summary;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use crate::{DataDump, SiteDefaults};

pub use dump::{date_of, dump_date, plan};
pub use media::token_for;
pub use reason::Reason;
pub use settle::{Done, settle};
pub use summary::{requester_pays_condition, set_condition};
// what the backends list and launch lives with them; the planner decides with it
pub use instance::{Instance, InstanceState, LaunchRequest, tags};

/// The finalizer that guards cleanup (instances, staged credentials).
pub const FINALIZER: &str = "datadump.dev/cleanup";
/// A `_failure` semaphore as read from S3.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureSeen {
    /// When S3 stored it.
    pub time: Timestamp,
    /// The token of the attempt that wrote it, when the report names one.
    pub token: Option<String>,
    /// A one-line description (exit code, step, the last error line).
    pub message: String,
}

/// What a finished media type produced, from `_manifest.json` checked against S3.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Output {
    /// Parquet files.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// Rows, from the Parquet footers.
    pub rows: Option<u64>,
}

/// The semaphores and heartbeat seen under one media type's prefix.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MediaObjects {
    /// `_success` exists; with the check of its manifest (files present and complete), or the
    /// reason the check failed.
    pub success: Option<Result<Output, String>>,
    /// When S3 stored `_success` (for the detection-latency metric and attempts whose report
    /// names no token).
    pub success_at: Option<Timestamp>,
    /// The token of the attempt that wrote `_success`, when its report names one.
    pub success_token: Option<String>,
    /// `_failure` exists.
    pub failure: Option<FailureSeen>,
    /// The last `_progress.json`.
    pub progress: Option<ProgressSeen>,
}

/// A heartbeat from `_progress.json`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ProgressSeen {
    /// The worker's stage.
    pub stage: Option<String>,
    /// When it reported.
    pub time: Option<Timestamp>,
    /// Files uploaded so far.
    pub files: Option<u64>,
    /// Bytes uploaded so far.
    pub bytes: Option<u64>,
    /// Rows so far, when known.
    pub rows: Option<u64>,
    /// How the worker connected to the database, in one line, once it has.
    pub connection: Option<String>,
    /// The attempt token in the report: progress counts only for the attempt that wrote it
    /// (an earlier attempt's, or another dump's sharing the prefix, is not shown).
    pub token: Option<String>,
}

/// Everything observed about one DataDump besides the object itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// Every instance tagged with the object's uid, in any state.
    pub instances: Vec<Instance>,
    /// Semaphores per media type (only for media types the planner asked about).
    pub objects: BTreeMap<String, MediaObjects>,
    /// The architecture of the resolved instance type, when a launch may follow.
    pub architecture: Option<datadump_contract::Arch>,
}

/// Failed sends after which the notification is given up (with a Warning Event).
pub const MAX_NOTIFY_ATTEMPTS: u32 = 10;

/// Settings of the controller installation that decisions depend on.
#[derive(Clone, Debug)]
pub struct PlanContext {
    /// Site-wide defaults for unset spec fields.
    pub site: SiteDefaults,
    /// The `datadump.dev/managed-by` tag value of this installation.
    pub managed_by: String,
    /// The controller's AWS region (workers use it for SSM; S3 uses the spec's when set).
    pub region: String,
    /// Steady poll interval while workers run.
    pub poll_interval: Duration,
    /// Short requeue while launching or terminating.
    pub fast_requeue: Duration,
    /// How long an instance may be missing from DescribeInstances after launch before the
    /// attempt counts as lost (EC2 is eventually consistent).
    pub launch_grace: Duration,
    /// SSM path under which credentials are staged.
    pub ssm_prefix: String,
    /// How workers start.
    pub launcher: Launcher,
    /// What the launch side checks of a spec beyond [`crate::validate`] (the binary's: that
    /// the EC2 user data fits); a problem refuses the spec like a validation error.
    pub launch_check: LaunchCheck,
}

/// A check of a spec by the code that launches its workers: `None` when it can launch.
pub type LaunchCheck = fn(&crate::DataDumpSpec) -> Option<crate::FieldError>;

/// How a worker starts on the compute backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Launcher {
    /// From EC2 user data: the bootstrap downloads the binary for the instance's architecture;
    /// the architectures there is a binary for.
    Bootstrap(Vec<datadump_contract::Arch>),
    /// The backend starts `datadump worker` with the job itself (local processes): no user data.
    Direct,
}

impl Default for PlanContext {
    fn default() -> Self {
        PlanContext {
            site: SiteDefaults::default(),
            managed_by: "datadump-operator".into(),
            region: "us-east-1".into(),
            poll_interval: Duration::from_secs(30),
            fast_requeue: Duration::from_secs(2),
            launch_grace: Duration::from_secs(120),
            ssm_prefix: "/datadump".into(),
            launcher: Launcher::Direct,
            launch_check: |_| None,
        }
    }
}

impl PlanContext {
    /// The SSM parameter holding staged credentials for one media type of one object.
    pub fn staged_parameter(&self, uid: &str, media_type: &str) -> String {
        format!("{}/{uid}/{media_type}", self.ssm_prefix.trim_end_matches('/'))
    }

    /// The SSM parameter holding the staged client identity (certificate chain, then key) of
    /// one media type of one object: below the connection string's.
    pub fn client_identity_parameter(&self, uid: &str, media_type: &str) -> String {
        format!("{}/client-identity", self.staged_parameter(uid, media_type))
    }

    /// Every parameter that may be staged for one media type: whatever the spec says now (it
    /// may have changed since they were staged), deleting them all leaves nothing behind, and
    /// missing ones are fine to delete.
    pub fn staged_parameters(&self, uid: &str, media_type: &str) -> [String; 2] {
        [
            self.staged_parameter(uid, media_type),
            self.client_identity_parameter(uid, media_type),
        ]
    }
}

/// What one staged SSM parameter holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StagedCredential {
    /// The connection string, from `spec.database.connectionSecretRef`.
    ConnectionString,
    /// The client certificate chain followed by its private key, from
    /// `spec.database.tls.clientCertificateSecretRef` (`tls.crt`, `tls.key`).
    ClientIdentity,
}

/// Something the driver must do, in order, before writing the planned status.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Add the cleanup finalizer (first, before anything can be launched).
    AddFinalizer,
    /// Make sure the destination bucket makes requesters pay (read the setting, set it when
    /// it is not); the outcome goes into status (`requesterPays`) when acting settles.
    EnsureRequesterPays,
    /// Read a credential from the spec's Secret (the connection string, or the client
    /// certificate and key) and store it as an SSM SecureString.
    StageCredentials {
        /// The media type it is staged for.
        media_type: String,
        /// The SSM parameter name.
        parameter: String,
        /// What it holds.
        credential: StagedCredential,
    },
    /// Launch one instance, unless one with the token's tag exists.
    Launch(Box<LaunchRequest>),
    /// Terminate these instances (one batched call).
    Terminate {
        /// Instance ids.
        instance_ids: Vec<String>,
    },
    /// Delete staged credentials (missing ones are fine).
    DeleteCredentials {
        /// SSM parameter names.
        parameters: Vec<String>,
    },
    /// Write the dataset card next to the data (the dump succeeded).
    WriteDatasetCard,
    /// Send the end-of-dump Slack message (the dump ended; not sent yet).
    Notify,
    /// Remove the finalizer: cleanup is complete.
    RemoveFinalizer,
}

/// Event severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteKind {
    /// Expected progress.
    Normal,
    /// Something went wrong.
    Warning,
}

/// An Event to record for the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Severity.
    pub kind: NoteKind,
    /// Why, e.g. [`Reason::Launched`].
    pub reason: Reason,
    /// What happened.
    pub message: String,
}

/// What to do next.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Side effects, in order.
    pub actions: Vec<Action>,
    /// The status to write after the actions succeeded (`None` while deleting).
    pub status: Option<crate::DataDumpStatus>,
    /// Events for what changed.
    pub notes: Vec<Note>,
    /// When to look again; `None` waits for a change to the object.
    pub requeue_after: Option<Duration>,
}

/// The media types of a DataDump that need their S3 objects observed: those running or
/// terminating an attempt, and those about to start (to find an earlier `_success`).
pub fn media_to_observe(dd: &DataDump) -> Vec<String> {
    use crate::MediaPhase::*;
    let status = dd.status.clone().unwrap_or_default();
    dd.spec
        .media_types
        .iter()
        .map(|m| m.as_str())
        .filter(|m| match status.media(m).map(|s| s.phase) {
            // Launching too: a fast worker may have finished (or failed) before the status that
            // records it as running was written, and its semaphore decides the outcome
            None | Some(Pending) | Some(Launching) | Some(Running) | Some(Terminating) => true,
            Some(Succeeded) | Some(Failed) => false,
        })
        .map(str::to_string)
        .collect()
}
