//! The `DataDump` status: what the controller observed and decided. Pure data, no I/O.
//!
//! The planner computes it; the controller patches it with server-side apply only when it
//! changed (ignoring timestamps). Conditions follow `metav1.Condition`.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::spec::MediaType;

/// Condition type: every media type succeeded (like a Job's `Complete`).
pub const COMPLETE: &str = "Complete";
/// Condition type: the dump failed for good (like a Job's `Failed`).
pub const FAILED: &str = "Failed";
/// Condition type: workers are being launched or are running.
pub const PROGRESSING: &str = "Progressing";
/// Condition type: the spec passed the controller's checks (False: see its message).
pub const SPEC_VALID: &str = "SpecValid";
/// Condition type (only with `spec.destination.requesterPays`): the bucket makes requesters
/// pay (True: the message says how to download; False: what is missing, nothing is launched).
pub const REQUESTER_PAYS: &str = "RequesterPays";

/// The dump as a whole.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum DumpPhase {
    /// Accepted, nothing launched yet (or the spec is invalid: see the SpecValid condition).
    #[default]
    Pending,
    /// At least one worker is launching or running.
    Running,
    /// Every media type succeeded.
    Succeeded,
    /// A media type failed for good, or the deadline passed.
    Failed,
    /// `spec.suspend` is true; nothing runs.
    Suspended,
}

impl DumpPhase {
    /// Succeeded or Failed: nothing more will happen.
    pub fn is_terminal(self) -> bool {
        matches!(self, DumpPhase::Succeeded | DumpPhase::Failed)
    }
}

/// One media type's place in the state machine.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum MediaPhase {
    /// Waiting to launch (credentials to stage, token to record).
    #[default]
    Pending,
    /// The attempt's token is recorded; the instance is being launched.
    Launching,
    /// The worker runs; the controller watches S3 for its semaphore.
    Running,
    /// The attempt ended; the controller waits for EC2 to confirm termination.
    Terminating,
    /// `_success` found and the instance is terminated.
    Succeeded,
    /// Out of attempts, or the deadline passed.
    Failed,
}

impl MediaPhase {
    /// Succeeded or Failed.
    pub fn is_terminal(self) -> bool {
        matches!(self, MediaPhase::Succeeded | MediaPhase::Failed)
    }
}

/// Where an attempt is heading once its instance is gone.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AttemptOutcome {
    /// The worker wrote `_success`.
    Succeeded,
    /// The worker wrote `_failure`, or the instance ended without `_success`.
    Failed,
    /// The deadline passed.
    DeadlineExceeded,
    /// `spec.suspend` was set.
    Suspended,
}

/// Observed progress of one media type, from its `_progress.json` heartbeat or manifest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// The worker's stage (installing, dumping, uploading, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// When the worker last reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Timestamp>,
}

/// One media type.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MediaStatus {
    /// The media type (table).
    pub media_type: MediaType,
    /// Its state.
    pub phase: MediaPhase,
    /// The current attempt, from 1; 0 before the first.
    #[serde(default)]
    pub attempt: u32,
    /// The current attempt's idempotency token (EC2 ClientToken and the `datadump.dev/token`
    /// tag), written before the instance is launched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Failed attempts so far (suspended ones do not count against `spec.backoffLimit`).
    #[serde(default)]
    pub failed_attempts: u32,
    /// When the current attempt's token was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_start_time: Option<Timestamp>,
    /// The current attempt's instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// The instance's last observed EC2 state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_state: Option<String>,
    /// Why the current attempt is ending, once decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<AttemptOutcome>,
    /// The media type's folder: `s3://BUCKET/PREFIX/DATE/MEDIA/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_uri: Option<String>,
    /// Parquet files written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    /// Bytes written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Rows written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// The worker's last heartbeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_progress: Option<Progress>,
    /// How the worker connected to the database, as the server reported it, e.g. `TLSv1.3
    /// (TLS_AES_256_GCM_SHA384), server certificate verified against the CA and host name
    /// (sslmode=verify-full)`. The manifest holds the same as data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// Whether credentials are staged in SSM for this media type.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub credentials_staged: bool,
    /// A machine-readable reason for the last change (e.g. WorkerFailed, InstanceLost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A human-readable message (e.g. the worker's error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl MediaStatus {
    /// A media type that has not started.
    pub fn new(media_type: MediaType) -> Self {
        MediaStatus {
            media_type,
            phase: MediaPhase::Pending,
            attempt: 0,
            token: None,
            failed_attempts: 0,
            attempt_start_time: None,
            instance_id: None,
            instance_state: None,
            outcome: None,
            s3_uri: None,
            files: None,
            bytes: None,
            rows: None,
            last_progress: None,
            connection: None,
            credentials_staged: false,
            reason: None,
            message: None,
        }
    }
}

/// The instance settings that really ran, after site and built-in defaults.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedInstance {
    /// Instance type.
    pub instance_type: String,
    /// AMI id or `resolve:ssm:` parameter.
    pub image_id: String,
    /// Extra EBS volume size in GiB (0: none).
    pub ebs_volume_size_gb: i32,
    /// Extra EBS volume type.
    pub ebs_volume_type: String,
    /// Subnet, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    /// Security groups, when set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_group_ids: Vec<String>,
    /// Instance profile.
    pub iam_instance_profile: String,
    /// Key pair, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    /// Spot instance.
    pub spot: bool,
}

/// The end-of-dump notification.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationStatus {
    /// Sent successfully (it is never sent twice).
    #[serde(default)]
    pub sent: bool,
    /// Failed sends so far.
    #[serde(default)]
    pub attempts: u32,
    /// When the last failed send happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_time: Option<Timestamp>,
    /// The last send error, without the webhook URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// The destination bucket's Requester Pays setting.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequesterPaysStatus {
    /// Whether the bucket makes requesters pay (confirmed by GetBucketRequestPayment or set by
    /// the controller). Workers are launched only once it is true.
    pub enabled: bool,
    /// When the controller last read or set the setting.
    pub checked_time: Timestamp,
    /// Why it is not enabled: the refused call and the permission or command that fixes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What the controller observed and decided.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataDumpStatus {
    /// The dump as a whole.
    #[serde(default)]
    pub phase: DumpPhase,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The DATE folder (`YYYY-MM-DD`, UTC), fixed when the dump starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dump_date: Option<String>,
    /// When the first attempt's token was recorded (right before its launch); the deadline
    /// counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Timestamp>,
    /// `startTime + spec.timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Timestamp>,
    /// When the dump reached Succeeded or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Timestamp>,
    /// Media types finished out of all, e.g. `1/2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done: Option<String>,
    /// A one-line summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The instance settings in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<ResolvedInstance>,
    /// One entry per media type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["mediaType"]))]
    pub media: Vec<MediaStatus>,
    /// The end-of-dump notification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<NotificationStatus>,
    /// The dataset card written when the dump succeeded (`s3://BUCKET/PREFIX/DATE/README.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_card: Option<String>,
    /// The bucket's Requester Pays setting, as the controller found or made it (only with
    /// `spec.destination.requesterPays`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester_pays: Option<RequesterPaysStatus>,
    /// Complete, Failed, Progressing, SpecValid and (with requesterPays) RequesterPays, as
    /// `metav1.Condition`s.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

impl DataDumpStatus {
    /// The entry of one media type.
    pub fn media(&self, media_type: &str) -> Option<&MediaStatus> {
        self.media.iter().find(|m| m.media_type.as_str() == media_type)
    }

    /// A condition by type.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}
