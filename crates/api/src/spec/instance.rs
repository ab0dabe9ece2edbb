//! The instance sub-spec (`spec.instance`): the EC2 worker's type, image, volume, network,
//! instance profile, key pair, Spot and tags. Every field is optional (see
//! [`crate::resolve`]). Pure data, no I/O.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{IMAGE_ID_PATTERN, INSTANCE_PROFILE_PATTERN, INSTANCE_TYPE_PATTERN, KEY_NAME_PATTERN, SECURITY_GROUP_PATTERN, SUBNET_PATTERN};

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
