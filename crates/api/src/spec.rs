//! The `DataDump` custom resource: what a user writes. Pure data, no I/O.
//!
//! Field docs become `kubectl explain datadump.spec…` text, so they are written for users.
//! Fields that a platform team may default site-wide (instance type, image, volume, network,
//! instance profile) carry no schema default: the controller resolves them spec → controller
//! flag → built-in default (see [`crate::resolve`]) and records the result in status.
//!
//! The database (with TLS), output (with odbc2parquet) and instance sub-specs are in their own
//! modules, re-exported here.

use kube::core::Duration;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use datadump_contract::{Compression, Engine, MEDIA_TYPE_PLACEHOLDER, TimeOfDay, WideNumeric, parse_size};

use super::status::DataDumpStatus;

mod database;
mod instance;
mod output;

pub use database::{
    CaBundleRef, CaBundleSource, ConfigMapKeyRef, Credentials, DatabaseSource, DatabaseTls, SecretKeyRef, SecretRef, TLS_CERT_KEY,
    TLS_KEY_KEY,
};
pub use instance::{InstanceSpec, SecurityGroupId, VolumeType};
pub use output::{DEFAULT_FILE_SIZE_THRESHOLD, ExtraArg, Odbc2ParquetSpec, OutputSpec, default_odbc2parquet_version};

/// A media type is a table name: a lower-case SQL identifier.
pub const MEDIA_TYPE_PATTERN: &str = "^[a-z_][a-z0-9_]{0,62}$";
/// S3 bucket names (the character rules; [`crate::validate`] checks the remaining ones).
pub const BUCKET_PATTERN: &str = "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$";
/// S3 key prefixes: slash-separated segments of characters that are safe in every S3 client.
pub const PREFIX_PATTERN: &str = "^[A-Za-z0-9_.()!*'-]+(/[A-Za-z0-9_.()!*'-]+)*$";
/// AWS region names such as `eu-west-1` or `us-gov-west-1`.
pub const REGION_PATTERN: &str = "^[a-z]{2}(-[a-z]+)+-[0-9]+$";
/// Kubernetes object names (DNS-1123 subdomain) for Secret and ConfigMap references.
pub const SECRET_NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// Keys inside a Secret or ConfigMap.
pub const SECRET_KEY_PATTERN: &str = "^[-._a-zA-Z0-9]+$";
/// SSM parameter names.
pub const SSM_PARAMETER_PATTERN: &str = "^/?[a-zA-Z0-9_.-]+(/[a-zA-Z0-9_.-]+)*$";
/// Semantic versions of odbc2parquet.
pub const VERSION_PATTERN: &str = "^[0-9]+\\.[0-9]+\\.[0-9]+$";
/// Sizes as odbc2parquet reads them: a number and an optional binary or decimal unit.
pub const SIZE_PATTERN: &str = "^[1-9][0-9]*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB)?$";
/// Extra odbc2parquet arguments are long flags, optionally with `=value`.
pub const EXTRA_ARG_PATTERN: &str = "^--[a-z0-9][a-z0-9-]*(=[^\\n\\r\\x00]*)?$";
/// EC2 instance types such as `m7g.xlarge`.
pub const INSTANCE_TYPE_PATTERN: &str = "^[a-z][a-z0-9-]*\\.[a-z0-9]+$";
/// AMI ids, or an SSM public parameter EC2 resolves at launch (`resolve:ssm:/aws/service/…`).
pub const IMAGE_ID_PATTERN: &str = "^(ami-[0-9a-f]{8,17}|resolve:ssm:/[A-Za-z0-9_./-]+)$";
/// Subnet ids.
pub const SUBNET_PATTERN: &str = "^subnet-[0-9a-f]{8,17}$";
/// Security group ids.
pub const SECURITY_GROUP_PATTERN: &str = "^sg-[0-9a-f]{8,17}$";
/// Instance profile names or ARNs.
pub const INSTANCE_PROFILE_PATTERN: &str = "^(arn:aws[a-z-]*:iam::[0-9]{12}:instance-profile/)?[A-Za-z0-9+=,.@_/-]{1,128}$";
/// EC2 key pair names (printable ASCII, no quotes or backslashes).
pub const KEY_NAME_PATTERN: &str = "^[A-Za-z0-9 ._:/()#,@\\[\\]+=&;{}!$*-]{1,255}$";
/// DATE folders: a calendar date `YYYY-MM-DD` ([`crate::validate`] checks it is a real one).
pub const DATE_PATTERN: &str = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$";
/// The largest EBS volume EC2 creates (gp3/gp2/io2: 16 TiB, in GiB).
pub const MAX_EBS_VOLUME_GB: i32 = 16_384;
/// The most media types one DataDump may export.
pub const MAX_MEDIA_TYPES: usize = 16;
/// The most attempts after the first one.
pub const MAX_BACKOFF_LIMIT: u32 = 10;
/// The most user tags (EC2 allows 50; the controller sets eight of its own).
pub const MAX_USER_TAGS: usize = 40;

/// Exports PostgreSQL tables to Parquet on S3, one short-lived EC2 worker per table.
///
/// For each media type the controller launches one instance whose worker streams the table
/// into zstd Parquet files under `s3://BUCKET/PREFIX/DATE/MEDIA/`, writes
/// `_manifest.json` and finally `_success`; the controller then terminates the instance. Data
/// already in S3 is never deleted, not even when the DataDump is.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "datadump.dev",
    version = "v1alpha1",
    kind = "DataDump",
    doc = "A DataDump exports PostgreSQL tables to Parquet on S3 with one short-lived EC2 worker per table. See spec for what to export and status for progress.",
    plural = "datadumps",
    singular = "datadump",
    shortname = "dd",
    category = "all",
    namespaced,
    status = "DataDumpStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Done","type":"string","jsonPath":".status.done","description":"media types finished out of all"}"#,
    printcolumn = r#"{"name":"Bucket","type":"string","jsonPath":".spec.destination.bucket"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Date","type":"string","jsonPath":".status.dumpDate","priority":1}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.message","priority":1}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DataDumpSpec {
    /// Tables to export, one worker each (e.g. `image`, `audio`). Lower-case SQL identifiers,
    /// 1 to 16 of them, no repeats. Each name replaces `{media_type}` in `query` and names the
    /// output folder `PREFIX/DATE/MEDIA/`.
    #[schemars(length(min = 1, max = 16), extend("x-kubernetes-list-type" = "set"))]
    pub media_types: Vec<MediaType>,

    /// Where the Parquet files go.
    pub destination: Destination,

    /// The DATE folder (`YYYY-MM-DD`) the files go under, `PREFIX/DATE/MEDIA/`. Default: the
    /// UTC date on which the dump starts. A DataDumpSchedule sets it to the scheduled time's
    /// date in the schedule's time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DATE_PATTERN))]
    pub date: Option<String>,

    /// The SQL query each worker runs; `{media_type}` is replaced by the media type (a plain SQL
    /// identifier). It must name its table with `{media_type}` and may contain no other
    /// `{placeholder}`. Default: `SELECT * FROM {media_type}`.
    #[serde(default = "default_query")]
    #[schemars(length(min = 1, max = 8192))]
    #[x_kube(validation = Rule::new("self.contains('{media_type}')").message("spec.query must name its table with {media_type}, e.g. SELECT * FROM {media_type}"))]
    pub query: String,

    /// Where the worker gets its database connection string. Set exactly one source.
    pub database: DatabaseSource,

    /// What reads the database: `postgres` (the default: the worker's own engine, binary COPY
    /// into exact Parquet, streamed to S3) or `odbc2parquet` (for other ODBC sources; needs
    /// odbc2parquet, unixODBC and the driver on the worker's image).
    #[serde(default)]
    pub engine: Engine,

    /// How the Parquet files are written, whatever the engine.
    #[serde(default)]
    pub output: OutputSpec,

    /// Options of the `odbc2parquet` engine only.
    #[serde(default)]
    pub odbc2parquet: Odbc2ParquetSpec,

    /// The EC2 worker. Unset fields take the controller's site defaults, then built-in ones
    /// (`m7g.xlarge`, Amazon Linux 2023, a 100 GiB gp3 volume); `status.instance` shows what ran.
    #[serde(default)]
    pub instance: InstanceSpec,

    /// The whole dump's time budget, a Go duration such as `168h` or `36h30m`, counted once from
    /// the first launch and never reset by retries or restarts. When it passes, every worker is
    /// terminated and the dump fails with reason DeadlineExceeded. Workers also shut themselves
    /// down at the deadline. Between 1m and 8760h. Default: `168h` (one week).
    #[serde(default = "default_timeout")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1m') && duration(self) <= duration('8760h')").message("spec.timeout must be between 1m and 8760h, e.g. 168h"))]
    pub timeout: Duration,

    /// Attempts per media type after the first one fails (a `_failure` semaphore, or an instance
    /// that stopped or vanished without `_success`). 0 to 10. Default: 1.
    #[serde(default = "default_backoff_limit")]
    #[schemars(range(min = 0, max = 10))]
    pub backoff_limit: u32,

    /// Pause the dump: launch nothing new and terminate running workers (like a suspended Job).
    /// Setting it back to false resumes with a new attempt; the deadline keeps running.
    #[serde(default)]
    pub suspend: bool,

    /// Whom to tell when the dump ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<Notification>,

    /// The dataset card written next to a finished dump (`PREFIX/DATE/README.md`): name,
    /// description, license, terms, gated-access form and column descriptions. The card's facts
    /// (files, rows, sizes, checksums, column types) come from what the worker wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_card: Option<super::card_spec::DatasetCardSpec>,
}

/// A table to export: a lower-case SQL identifier (`^[a-z_][a-z0-9_]{0,62}$`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
#[serde(transparent)]
pub struct MediaType(#[schemars(regex(pattern = MEDIA_TYPE_PATTERN))] pub String);

impl MediaType {
    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for MediaType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The S3 location of the export.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Destination {
    /// The S3 bucket (3–63 characters: lower-case letters, digits, dots and hyphens). The
    /// worker's instance role must be allowed to write to it.
    #[schemars(regex(pattern = BUCKET_PATTERN))]
    pub bucket: String,

    /// Key prefix under the bucket, without leading or trailing slash. Files land under
    /// `PREFIX/DATE/MEDIA/`. Default: `data-dump`.
    #[serde(default = "default_prefix")]
    #[schemars(regex(pattern = PREFIX_PATTERN), length(max = 512))]
    pub prefix: String,

    /// The bucket's region, when it differs from the controller's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = REGION_PATTERN))]
    pub region: Option<String>,

    /// Make downloaders pay for their requests and transfer (S3 Requester Pays). Before the
    /// first launch the controller sets the bucket's request payment to `Requester` (it needs
    /// `s3:PutBucketRequestPayment`; without it a `RequesterPays=False` condition says what is
    /// missing and nothing is launched). The card, the Slack message and the condition then
    /// say how to download (`--request-payer requester`). Default: false (the bucket's setting
    /// is never read or changed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub requester_pays: bool,
}

/// Notifications sent once, when the dump ends.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// A Slack incoming webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackNotification>,
}

/// A Slack incoming webhook whose URL is kept in a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlackNotification {
    /// The Secret key holding the webhook URL (`https://hooks.slack.com/services/…`).
    pub webhook_secret_ref: SecretKeyRef,
}

/// The default query.
pub fn default_query() -> String {
    format!("SELECT * FROM {MEDIA_TYPE_PLACEHOLDER}")
}

/// The default prefix.
pub fn default_prefix() -> String {
    "data-dump".into()
}

/// The default time budget: one week.
pub fn default_timeout() -> Duration {
    std::time::Duration::from_secs(168 * 3600).into()
}

fn default_backoff_limit() -> u32 {
    1
}
