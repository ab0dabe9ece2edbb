//! Object storage as the worker and the controller both use it: the [`ObjectStore`] trait
//! (S3, or anything S3-shaped), what it returns, and [`BackendError`], the one classification
//! of a failed call (transient or not, with a metric label). The S3 implementation is
//! [`crate::aws::S3Store`]; the controller's tests keep objects in memory. No I/O here, only
//! the contract.

use std::future::Future;

use jiff::Timestamp;

pub use datadump_contract::Bucket;

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
