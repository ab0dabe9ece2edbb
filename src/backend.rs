//! The narrow traits through which the drivers touch the world: compute (EC2 or local
//! processes), object storage (S3, the worker crate's [`ObjectStore`]), secret staging (SSM),
//! and what they speak: an [`Instance`] as listed, its [`tags`], a [`LaunchRequest`] (the
//! planner's types). Implementations live in `aws/` and the worker crate's `aws`; tests use
//! the real AWS SDK against a local emulator, and `memory` (compiled for tests only) keeps the
//! contracts in memory for tests of the loop above the planner. No I/O here, only the contracts.

use std::fmt;
use std::future::Future;

pub use datadump_api::plan::{Instance, InstanceState, LaunchRequest, tags};
pub use datadump_worker::store::{BackendError, Bucket, Digest, ObjectMeta, ObjectStore};

#[cfg(test)]
pub mod memory;

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
    fn architecture(&self, instance_type: &str) -> impl Future<Output = Result<datadump_contract::Arch, BackendError>> + Send;
}

/// Where credentials are staged for workers (SSM SecureString).
pub trait SecretStage: Send + Sync {
    /// Creates or overwrites a parameter.
    fn put(&self, name: &str, value: &SecretValue) -> impl Future<Output = Result<(), BackendError>> + Send;
    /// Deletes parameters; missing ones are fine.
    fn delete(&self, names: &[String]) -> impl Future<Output = Result<(), BackendError>> + Send;
}
