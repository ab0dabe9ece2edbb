//! What the planner knows about EC2 instances and asks of them: an [`Instance`] as listed,
//! the [`tags`] every managed instance carries, and a [`LaunchRequest`]. The binary's compute
//! backends speak these. Pure data, no I/O.

use std::collections::BTreeMap;

use datadump_contract::{Arch, Job};

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
    pub instance: crate::ResolvedInstance,
    /// Tags for the instance and its volumes (managed tags plus the user's, and `Name`).
    pub tags: BTreeMap<String, String>,
    /// What the worker runs.
    pub job: Job,
    /// The instance's architecture.
    pub arch: Arch,
    /// The EC2 user data: empty in the plan, rendered by the driver right before the launch
    /// (it holds presigned URLs), and left empty with [`super::Launcher::Direct`].
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
