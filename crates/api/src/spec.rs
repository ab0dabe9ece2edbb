//! The `DataDump` custom resource: what a user writes. Pure data, no I/O.
//!
//! Field docs become `kubectl explain datadump.spec…` text, so they are written for users.
//! Fields that a platform team may default site-wide (instance type, image, volume, network,
//! instance profile) carry no schema default: the controller resolves them spec → controller
//! flag → built-in default (see [`crate::resolve`]) and records the result in status.

use std::collections::BTreeMap;

use kube::core::Duration;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use datadump_contract::{Compression, Engine, MEDIA_TYPE_PLACEHOLDER, parse_size};

use super::status::DataDumpStatus;

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

/// Where the connection string comes from. Exactly one of the two fields.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.connectionSecretRef) != has(self.ssmParameterName)").message("spec.database needs exactly one of connectionSecretRef or ssmParameterName"))]
pub struct DatabaseSource {
    /// A key in a Secret of this namespace holding the connection string: for the `postgres`
    /// engine a libpq string or URI (`host=db port=5432 dbname=openledger user=… password=…` or
    /// `postgresql://user:…@db:5432/openledger`), for `odbc2parquet` an ODBC string
    /// (`Driver={PostgreSQL Unicode};Server=db;…;Pwd=…;`). The controller stages it as an SSM SecureString that only the worker reads; it never
    /// appears in user data, status, Events or logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_secret_ref: Option<SecretKeyRef>,

    /// The name of an SSM SecureString parameter holding the connection string, which the
    /// worker reads itself with its instance role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SSM_PARAMETER_PATTERN), length(max = 2048))]
    pub ssm_parameter_name: Option<String>,

    /// TLS material for the worker's connection, taken from this namespace and delivered to
    /// the worker (which runs on EC2, where no file of the cluster exists): the CA certificates
    /// the server is verified against (for RDS, its `global-bundle.pem`) and a client
    /// certificate. Files the connection string names (`sslrootcert`, `sslcert`, `sslkey`) take
    /// precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<DatabaseTls>,
}

/// TLS material for the worker's connection to the database.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseTls {
    /// PEM CA certificates the server's certificate is verified against, e.g. RDS's
    /// `global-bundle.pem`. The `postgres` engine verifies against them when the connection
    /// string names no `sslrootcert`; a connection string without `sslmode` then defaults to
    /// `verify-full` (the certificate must chain to the bundle and name the host). The
    /// controller reads the key at each launch and passes it inside the job object in S3 (it is
    /// not a secret; it never goes into user data). Set exactly one of configMapKeyRef or
    /// secretKeyRef.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<CaBundleSource>,

    /// A `kubernetes.io/tls` Secret of this namespace whose `tls.crt` (the client certificate
    /// chain) and `tls.key` (its private key), both PEM, the `postgres` engine presents when the
    /// server asks for a client certificate and the connection string names no
    /// `sslcert`/`sslkey`. The controller stages `tls.crt` followed by `tls.key` as an SSM
    /// SecureString next to the connection string's, deleted with it; the key never appears in
    /// user data, the job, status, Events or logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_secret_ref: Option<SecretRef>,
}

impl DatabaseTls {
    /// Where the CA bundle comes from, when one is configured with exactly one source.
    pub fn ca_bundle(&self) -> Option<CaBundleRef<'_>> {
        self.ca_bundle.as_ref().and_then(CaBundleSource::source)
    }
}

/// Where a CA bundle comes from. Exactly one of the two fields.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.configMapKeyRef) != has(self.secretKeyRef)").message("spec.database.tls.caBundle needs exactly one of configMapKeyRef or secretKeyRef, e.g. configMapKeyRef: {name: rds-ca, key: global-bundle.pem}"))]
pub struct CaBundleSource {
    /// A key in a ConfigMap of this namespace holding the PEM bundle, e.g.
    /// `{name: rds-ca, key: global-bundle.pem}` after
    /// `kubectl create configmap rds-ca --from-file=global-bundle.pem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<ConfigMapKeyRef>,

    /// A key in a Secret of this namespace holding the PEM bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
}

/// The one configured source of a [`CaBundleSource`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaBundleRef<'a> {
    /// A ConfigMap key.
    ConfigMap(&'a ConfigMapKeyRef),
    /// A Secret key.
    Secret(&'a SecretKeyRef),
}

impl CaBundleSource {
    /// The one configured source, or `None` when zero or two are set (a validation error).
    pub fn source(&self) -> Option<CaBundleRef<'_>> {
        match (&self.config_map_key_ref, &self.secret_key_ref) {
            (Some(c), None) => Some(CaBundleRef::ConfigMap(c)),
            (None, Some(s)) => Some(CaBundleRef::Secret(s)),
            _ => None,
        }
    }
}

impl std::fmt::Display for CaBundleRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CaBundleRef::ConfigMap(c) => write!(f, "ConfigMap {} key {}", c.name, c.key),
            CaBundleRef::Secret(s) => write!(f, "Secret {} key {}", s.name, s.key),
        }
    }
}

/// The resolved credential source of a [`DatabaseSource`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// A Secret key the controller reads and stages in SSM.
    Secret(&'a SecretKeyRef),
    /// An SSM parameter the worker reads itself.
    Ssm(&'a str),
}

impl DatabaseSource {
    /// The one configured source, or `None` when zero or two are set (a validation error).
    pub fn credentials(&self) -> Option<Credentials<'_>> {
        match (&self.connection_secret_ref, &self.ssm_parameter_name) {
            (Some(r), None) => Some(Credentials::Secret(r)),
            (None, Some(p)) => Some(Credentials::Ssm(p)),
            _ => None,
        }
    }

    /// Where the CA bundle comes from (`tls.caBundle`), if anywhere.
    pub fn ca_bundle(&self) -> Option<CaBundleRef<'_>> {
        self.tls.as_ref().and_then(DatabaseTls::ca_bundle)
    }

    /// The client certificate's Secret (`tls.clientCertificateSecretRef`), if any.
    pub fn client_certificate(&self) -> Option<&SecretRef> {
        self.tls.as_ref().and_then(|t| t.client_certificate_secret_ref.as_ref())
    }
}

/// A key in a Secret of the DataDump's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(regex(pattern = SECRET_NAME_PATTERN), length(min = 1, max = 253))]
    pub name: String,
    /// The key inside the Secret.
    #[schemars(regex(pattern = SECRET_KEY_PATTERN), length(min = 1, max = 253))]
    pub key: String,
}

/// A key in a ConfigMap of the DataDump's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// The ConfigMap's name.
    #[schemars(regex(pattern = SECRET_NAME_PATTERN), length(min = 1, max = 253))]
    pub name: String,
    /// The key inside the ConfigMap.
    #[schemars(regex(pattern = SECRET_KEY_PATTERN), length(min = 1, max = 253))]
    pub key: String,
}

/// A Secret of the DataDump's namespace, by name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// The Secret's name.
    #[schemars(regex(pattern = SECRET_NAME_PATTERN), length(min = 1, max = 253))]
    pub name: String,
}

/// The key of a `kubernetes.io/tls` Secret holding the certificate chain.
pub const TLS_CERT_KEY: &str = "tls.crt";
/// The key of a `kubernetes.io/tls` Secret holding the private key.
pub const TLS_KEY_KEY: &str = "tls.key";

/// How the Parquet files are written.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutputSpec {
    /// Start a new file once the current one reaches this size, e.g. `2GiB` or `512MiB`.
    /// Default: `2GiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SIZE_PATTERN))]
    pub file_size_threshold: Option<String>,

    /// Column compression. Default: `zstd`.
    #[serde(default)]
    pub compression: Compression,

    /// About how much encoded data one Parquet row group holds in memory before it is written,
    /// e.g. `32MiB`; bigger groups compress slightly better and need more worker memory (per
    /// stream). For odbc2parquet this is `--batch-size-memory`. Default: `16MiB` (`postgres`),
    /// `1GiB` (`odbc2parquet`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SIZE_PATTERN))]
    pub row_group_size: Option<String>,

    /// Parallel read streams of the `postgres` engine, each reading a `ctid` range of the table
    /// inside the same snapshot. Used when the query is a plain scan of `{media_type}` (e.g.
    /// `SELECT … FROM {media_type} WHERE …`); otherwise one stream reads. 1 to 32. Default: the
    /// worker's vCPUs, at most 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 32))]
    pub parallelism: Option<u32>,

    /// The zstd level of the `postgres` engine, 1 (fastest) to 22 (smallest), when
    /// `compression` is `zstd`. Default: 1 (on a 1M-row catalog table level 3 made files no
    /// smaller and took 13 % more CPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 22))]
    pub compression_level: Option<u8>,

    /// Cut the `postgres` engine's data pages at content-defined boundaries, so rows that did
    /// not change since the last dump encode to the same bytes and deduplicating storage
    /// (e.g. Hugging Face's Xet) stores and uploads them once. Readers see ordinary Parquet.
    /// Default: `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_defined_chunking: Option<bool>,
}

/// The default file size threshold.
pub const DEFAULT_FILE_SIZE_THRESHOLD: &str = "2GiB";

impl OutputSpec {
    /// The file size threshold as written (default `2GiB`).
    pub fn file_size_threshold(&self) -> &str {
        self.file_size_threshold.as_deref().unwrap_or(DEFAULT_FILE_SIZE_THRESHOLD)
    }
}

/// Options of the `odbc2parquet` engine.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.fileSizeThreshold)").message("spec.odbc2parquet.fileSizeThreshold moved to spec.output.fileSizeThreshold"))]
#[x_kube(validation = Rule::new("!has(self.compression)").message("spec.odbc2parquet.compression moved to spec.output.compression"))]
pub struct Odbc2ParquetSpec {
    /// The odbc2parquet release the worker expects on its image (a different one is logged).
    /// Default: the version this controller was tested with.
    #[serde(default = "default_odbc2parquet_version")]
    #[schemars(regex(pattern = VERSION_PATTERN))]
    pub version: String,

    /// Moved to `spec.output.fileSizeThreshold`; refused here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size_threshold: Option<String>,

    /// Moved to `spec.output.compression`; refused here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,

    /// Upper bound in characters for text columns of unknown length (jsonb, text, arrays),
    /// which keeps the worker's memory bounded (`--column-length-limit`); longer values fail
    /// the dump. Default: 65536.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 16777216))]
    pub column_length_limit: Option<u32>,

    /// Rows per batch, i.e. per Parquet row group (`--batch-size-row`). Default: as many as fit
    /// in `spec.output.rowGroupSize` of fetch buffers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000000))]
    pub batch_size_rows: Option<u32>,

    /// Further `odbc2parquet query` flags, each a single `--flag` or `--flag=value`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub extra_args: Vec<ExtraArg>,
}

impl Default for Odbc2ParquetSpec {
    fn default() -> Self {
        Odbc2ParquetSpec {
            version: default_odbc2parquet_version(),
            file_size_threshold: None,
            compression: None,
            column_length_limit: None,
            batch_size_rows: None,
            extra_args: Vec::new(),
        }
    }
}

/// One extra odbc2parquet flag: `--flag` or `--flag=value`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(transparent)]
pub struct ExtraArg(#[schemars(regex(pattern = EXTRA_ARG_PATTERN), length(max = 1024))] pub String);

/// EBS volume types.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VolumeType {
    /// General purpose SSD, the built-in default.
    Gp3,
    /// Previous-generation general purpose SSD.
    Gp2,
    /// Provisioned IOPS SSD.
    Io1,
    /// Provisioned IOPS SSD.
    Io2,
    /// Throughput-optimised HDD.
    St1,
    /// Cold HDD.
    Sc1,
    /// Magnetic.
    Standard,
}

impl VolumeType {
    /// The EC2 API name.
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeType::Gp3 => "gp3",
            VolumeType::Gp2 => "gp2",
            VolumeType::Io1 => "io1",
            VolumeType::Io2 => "io2",
            VolumeType::St1 => "st1",
            VolumeType::Sc1 => "sc1",
            VolumeType::Standard => "standard",
        }
    }
}

/// The EC2 worker. Every field is optional: unset fields take the controller's site defaults,
/// then the built-in ones.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceSpec {
    /// EC2 instance type. Built-in default: `m7g.xlarge` (4 vCPU, 16 GiB, arm64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = INSTANCE_TYPE_PATTERN))]
    pub instance_type: Option<String>,

    /// AMI id, or `resolve:ssm:/aws/service/…` for a public parameter. Built-in default: the
    /// latest Amazon Linux 2023 for the instance type's architecture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = IMAGE_ID_PATTERN))]
    pub image_id: Option<String>,

    /// Size in GiB of an extra EBS volume (encrypted, deleted on termination); 0 attaches none.
    /// The worker needs none: the postgres engine streams to S3, and odbc2parquet keeps about
    /// two files in its workdir (`/var/lib/datadump`, on the root volume). The bootstrap does not
    /// format or mount it: set it only for an image that mounts it itself. Built-in default: 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 16384))]
    pub ebs_volume_size_gb: Option<i32>,

    /// EBS volume type. Built-in default: `gp3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ebs_volume_type: Option<VolumeType>,

    /// Subnet to launch into; default: the account's default VPC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SUBNET_PATTERN))]
    pub subnet_id: Option<String>,

    /// Security groups for the worker; it needs outbound access to the database, S3 and SSM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 5))]
    pub security_group_ids: Option<Vec<SecurityGroupId>>,

    /// Instance profile (name or ARN) whose role lets the worker write to the bucket and read
    /// its SSM parameter. Required here or as the controller's site default: the worker never
    /// receives access keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = INSTANCE_PROFILE_PATTERN))]
    pub iam_instance_profile: Option<String>,

    /// EC2 key pair for SSH access while debugging. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = KEY_NAME_PATTERN))]
    pub key_name: Option<String>,

    /// Launch as a Spot instance (cheaper, may be interrupted: an interruption counts as a
    /// failed attempt and is retried within `backoffLimit`). Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot: Option<bool>,

    /// Extra tags for the instance and its volumes (up to 40; keys must not start with `aws:`
    /// or `datadump.dev/`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 40))]
    pub tags: BTreeMap<String, String>,
}

/// A security group id such as `sg-0123456789abcdef0`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(transparent)]
pub struct SecurityGroupId(#[schemars(regex(pattern = SECURITY_GROUP_PATTERN))] pub String);

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

/// The odbc2parquet version this controller was tested with.
pub fn default_odbc2parquet_version() -> String {
    "11.0.1".into()
}
