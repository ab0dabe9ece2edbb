//! The narrow traits through which the drivers touch the world: compute (EC2 or local
//! processes), object storage (S3), secret staging (SSM), and what they speak: an
//! [`Instance`] as listed, its [`tags`], a [`LaunchRequest`]. Implementations live in `aws/`;
//! tests use the real AWS SDK against a local emulator, and `memory` keeps the contracts
//! in memory for tests of the loop above the planner. No I/O here, only the contracts.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use jiff::Timestamp;

pub mod memory;

/// Tag keys every managed instance carries.
pub mod tags {
    /// Which controller installation manages the instance.
    pub const MANAGED_BY: &str = "datadump.dev/managed-by";
    /// The owner's namespace.
    pub const NAMESPACE: &str = "datadump.dev/namespace";
    /// The owner's name.
    pub const NAME: &str = "datadump.dev/name";
    /// The owner's uid.
    pub const UID: &str = "datadump.dev/uid";
    /// The media type.
    pub const MEDIA_TYPE: &str = "datadump.dev/media-type";
    /// The attempt number.
    pub const ATTEMPT: &str = "datadump.dev/attempt";
    /// The attempt's idempotency token.
    pub const TOKEN: &str = "datadump.dev/token";
}

/// EC2 instance states, as DescribeInstances reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum InstanceState {
    /// Booting.
    Pending,
    /// Running.
    Running,
    /// Terminating.
    ShuttingDown,
    /// Gone (confirmed by EC2).
    Terminated,
    /// Stopping.
    Stopping,
    /// Stopped (still costs for its volumes).
    Stopped,
}

impl InstanceState {
    /// The EC2 name.
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
        }
    }

    /// Parses an EC2 state name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => InstanceState::Pending,
            "running" => InstanceState::Running,
            "shutting-down" => InstanceState::ShuttingDown,
            "terminated" => InstanceState::Terminated,
            "stopping" => InstanceState::Stopping,
            "stopped" => InstanceState::Stopped,
            _ => return None,
        })
    }

    /// Whether the worker may still be working (pending or running).
    pub fn is_live(self) -> bool {
        matches!(self, InstanceState::Pending | InstanceState::Running)
    }

    /// Whether a TerminateInstances call is still needed.
    pub fn needs_terminate(self) -> bool {
        !matches!(self, InstanceState::ShuttingDown | InstanceState::Terminated)
    }
}

/// One managed instance, as observed through its tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// EC2 instance id.
    pub id: String,
    /// The owner's uid tag.
    pub owner_uid: String,
    /// The media type tag.
    pub media_type: String,
    /// The attempt tag.
    pub attempt: u32,
    /// The token tag.
    pub token: String,
    /// Current state.
    pub state: InstanceState,
}

/// Everything RunInstances needs, fully resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct LaunchRequest {
    /// The media type.
    pub media_type: String,
    /// The attempt number.
    pub attempt: u32,
    /// The idempotency token (ClientToken and tag).
    pub token: String,
    /// Instance settings after defaults.
    pub instance: crate::api::ResolvedInstance,
    /// Tags for the instance and its volumes (managed tags plus the user's, and `Name`).
    pub tags: BTreeMap<String, String>,
    /// What the worker runs.
    pub job: crate::worker::Job,
    /// The instance's architecture.
    pub arch: crate::worker::Arch,
    /// The EC2 user data: empty in the plan, rendered by the driver right before the launch
    /// (it holds presigned URLs), and left empty with [`crate::plan::Launcher::Direct`].
    pub user_data: String,
}

impl LaunchRequest {
    /// The instance this request launched as `id`, as DescribeInstances will first list it.
    pub fn pending_instance(&self, id: &str) -> Instance {
        Instance {
            id: id.to_string(),
            owner_uid: self.tags.get(tags::UID).cloned().unwrap_or_default(),
            media_type: self.media_type.clone(),
            attempt: self.attempt,
            token: self.token.clone(),
            state: InstanceState::Pending,
        }
    }
}

/// Errors from a backend, classified for retry and metrics.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The service asked us to slow down.
    #[error("{api}: throttled: {message}")]
    Throttled {
        /// The API call.
        api: &'static str,
        /// The service's message.
        message: String,
    },
    /// The service failed (5xx) or could not be reached.
    #[error("{api}: service unavailable: {message}")]
    Unavailable {
        /// The API call.
        api: &'static str,
        /// The service's or transport's message.
        message: String,
    },
    /// The service refused the request (4xx): permissions, bad parameters, missing resources.
    #[error("{api}: {code}: {message}")]
    Rejected {
        /// The API call.
        api: &'static str,
        /// The service's error code.
        code: String,
        /// The service's message.
        message: String,
    },
}

impl BackendError {
    /// A short, bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            BackendError::Throttled { .. } => "throttled",
            BackendError::Unavailable { .. } => "unavailable",
            BackendError::Rejected { .. } => "rejected",
        }
    }

    /// Whether trying again later may help without a change from the user.
    pub fn is_transient(&self) -> bool {
        !matches!(self, BackendError::Rejected { .. })
    }
}

/// A credential value that never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps a secret.
    pub fn new(value: String) -> Self {
        SecretValue(value)
    }

    /// The secret itself, for the one call that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// Which instances to list.
#[derive(Clone, Copy, Debug)]
pub enum InstanceFilter<'a> {
    /// Every instance (any state) tagged with this owner uid.
    Owner(&'a str),
    /// Every live (not terminated) instance this installation manages.
    AllManaged,
    /// Every instance this installation manages, terminated ones included.
    Managed,
}

/// EC2, or anything that runs a worker and can be told to stop it.
pub trait Compute: Send + Sync {
    /// Instances matching the filter, with their tags parsed; one paginated call.
    fn instances(&self, filter: InstanceFilter<'_>) -> impl Future<Output = Result<Vec<Instance>, BackendError>> + Send;
    /// Launches one instance; returns its id.
    fn launch(&self, req: &LaunchRequest) -> impl Future<Output = Result<String, BackendError>> + Send;
    /// Requests termination (idempotent; one call for all ids).
    fn terminate(&self, instance_ids: &[String]) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// The CPU architecture of an instance type (cached by implementations).
    fn architecture(&self, instance_type: &str) -> impl Future<Output = Result<crate::worker::Arch, BackendError>> + Send;
}

/// A bucket and, when it is not in the client's default region, its region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket<'a> {
    /// The bucket name.
    pub name: &'a str,
    /// Its region (`None`: the default one).
    pub region: Option<&'a str>,
    /// Whether requests say `x-amz-request-payer: requester` (a Requester Pays bucket; the
    /// bucket owner's own requests work either way, another account's need it).
    pub requester_pays: bool,
}

impl<'a> Bucket<'a> {
    /// A bucket in the client's default region, requests not marked requester-pays.
    pub fn named(name: &'a str) -> Self {
        Bucket {
            name,
            region: None,
            requester_pays: false,
        }
    }
}

/// An object's size and SHA-256, computed while reading it through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digest {
    /// Bytes read.
    pub size: u64,
    /// Lower-case hex SHA-256 of those bytes.
    pub sha256: String,
}

/// One object's listing entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Full key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// When S3 stored it.
    pub last_modified: Timestamp,
}

/// S3, or anything S3-shaped.
pub trait ObjectStore: Send + Sync {
    /// Every object under a prefix (paginated).
    fn list(&self, bucket: Bucket<'_>, prefix: &str) -> impl Future<Output = Result<Vec<ObjectMeta>, BackendError>> + Send;
    /// An object's body, or `None` when it does not exist.
    fn get(&self, bucket: Bucket<'_>, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, BackendError>> + Send;
    /// The last `len` bytes of an object.
    fn get_tail(&self, bucket: Bucket<'_>, key: &str, len: u64) -> impl Future<Output = Result<Vec<u8>, BackendError>> + Send;
    /// Writes an object.
    fn put(
        &self,
        bucket: Bucket<'_>,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// An object's size, or `None` when it does not exist.
    fn head(&self, bucket: Bucket<'_>, key: &str) -> impl Future<Output = Result<Option<u64>, BackendError>> + Send;
    /// Reads an object through (streaming, memory flat in its size) and returns its size and
    /// SHA-256, or `None` when it does not exist.
    fn digest(&self, bucket: Bucket<'_>, key: &str) -> impl Future<Output = Result<Option<Digest>, BackendError>> + Send;
    /// Whether the bucket makes requesters pay (GetBucketRequestPayment).
    fn requester_pays(&self, bucket: Bucket<'_>) -> impl Future<Output = Result<bool, BackendError>> + Send;
    /// Makes the bucket's requesters pay (PutBucketRequestPayment `Payer=Requester`).
    fn enable_requester_pays(&self, bucket: Bucket<'_>) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// A URL that lets anyone holding it GET the object until it expires (no request is made).
    fn presign_get(
        &self,
        bucket: Bucket<'_>,
        key: &str,
        expires: std::time::Duration,
    ) -> impl Future<Output = Result<String, BackendError>> + Send;
    /// A URL that lets anyone holding it PUT the object until it expires (no request is made).
    fn presign_put(
        &self,
        bucket: Bucket<'_>,
        key: &str,
        expires: std::time::Duration,
    ) -> impl Future<Output = Result<String, BackendError>> + Send;
}

/// Where credentials are staged for workers (SSM SecureString).
pub trait SecretStage: Send + Sync {
    /// Creates or overwrites a parameter.
    fn put(&self, name: &str, value: &SecretValue) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Deletes parameters; missing ones are fine.
    fn delete(&self, names: &[String]) -> impl Future<Output = Result<(), BackendError>> + Send;
}
