//! EC2 as [`Compute`]: RunInstances with ClientToken and tags, DescribeInstances by tag
//! (one paginated call per query), TerminateInstances batched. I/O.

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Filter, HttpTokensState, IamInstanceProfileSpecification, InstanceInterruptionBehavior,
    InstanceMarketOptionsRequest, InstanceMetadataEndpointState, InstanceMetadataOptionsRequest, MarketType, ResourceType,
    ShutdownBehavior, SpotInstanceType, SpotMarketOptions, Tag, TagSpecification, VolumeType,
};
use base64::Engine;

use super::call;
use crate::backend::{BackendError, Compute, InstanceFilter};
use crate::backend::{Instance, InstanceState, LaunchRequest, tags};

/// Instances per DescribeInstances page. A 1,000-instance page is ~3.5 MiB of XML plus ~8 MiB
/// of parsed SDK shapes (the largest part of the controller's peak heap at 1,000 DataDumps, by
/// heaptrack); pages of 250 keep a quarter of that alive, for one call per 250 instances.
const DESCRIBE_PAGE: i32 = 250;

/// The device name of the extra EBS volume, when `spec.instance.ebsVolumeSizeGb` asks for one.
pub const DATA_DEVICE: &str = "/dev/sdf";

/// EC2 through the AWS SDK.
#[derive(Clone, Debug)]
pub struct Ec2Compute {
    client: Client,
    managed_by: String,
    /// Architectures of instance types, from DescribeInstanceTypes (they never change).
    arches: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, crate::contract::Arch>>>,
}

impl Ec2Compute {
    /// An adapter for the installation tagged `managed_by`.
    pub fn new(config: &aws_config::SdkConfig, managed_by: impl Into<String>) -> Self {
        Ec2Compute {
            client: Client::new(config),
            managed_by: managed_by.into(),
            arches: Default::default(),
        }
    }
}

fn tag_specification(kind: ResourceType, req: &LaunchRequest) -> TagSpecification {
    let tags = req.tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build());
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(tags.collect()))
        .build()
}

fn parse_instance(i: &aws_sdk_ec2::types::Instance) -> Option<Instance> {
    let tag = |key: &str| {
        i.tags()
            .iter()
            .find(|t| t.key() == Some(key))
            .and_then(|t| t.value())
            .map(str::to_string)
    };
    Some(Instance {
        id: i.instance_id()?.to_string(),
        owner_uid: tag(tags::UID)?,
        media_type: tag(tags::MEDIA_TYPE)?,
        attempt: tag(tags::ATTEMPT).and_then(|a| a.parse().ok()).unwrap_or_default(),
        token: tag(tags::TOKEN)?,
        state: i.state().and_then(|s| s.name()).and_then(|n| InstanceState::parse(n.as_str()))?,
    })
}

impl Compute for Ec2Compute {
    async fn instances(&self, filter: InstanceFilter<'_>) -> Result<Vec<Instance>, BackendError> {
        let filters = match filter {
            InstanceFilter::Owner(uid) => vec![Filter::builder().name(format!("tag:{}", tags::UID)).values(uid).build()],
            InstanceFilter::Managed => vec![
                Filter::builder()
                    .name(format!("tag:{}", tags::MANAGED_BY))
                    .values(&self.managed_by)
                    .build(),
            ],
            InstanceFilter::AllManaged => vec![
                Filter::builder()
                    .name(format!("tag:{}", tags::MANAGED_BY))
                    .values(&self.managed_by)
                    .build(),
                Filter::builder()
                    .name("instance-state-name")
                    .set_values(Some(
                        ["pending", "running", "stopping", "stopped", "shutting-down"]
                            .map(String::from)
                            .to_vec(),
                    ))
                    .build(),
            ],
        };
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = call(
                "DescribeInstances",
                self.client
                    .describe_instances()
                    .set_filters(Some(filters.clone()))
                    .set_next_token(next.take())
                    .max_results(DESCRIBE_PAGE)
                    .send(),
            )
            .await?;
            out.extend(page.reservations().iter().flat_map(|r| r.instances()).filter_map(parse_instance));
            match page.next_token() {
                Some(t) if !t.is_empty() => next = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn launch(&self, req: &LaunchRequest) -> Result<String, BackendError> {
        if req.user_data.is_empty() {
            return Err(BackendError::Rejected {
                api: "RunInstances",
                code: "NoUserData".into(),
                message: "an EC2 worker needs the bootstrap as user data".into(),
            });
        }
        let r = &req.instance;
        let profile = if r.iam_instance_profile.starts_with("arn:") {
            IamInstanceProfileSpecification::builder().arn(&r.iam_instance_profile).build()
        } else {
            IamInstanceProfileSpecification::builder().name(&r.iam_instance_profile).build()
        };
        let mut call = self
            .client
            .run_instances()
            .client_token(&req.token)
            .image_id(&r.image_id)
            .instance_type(r.instance_type.as_str().into())
            .min_count(1)
            .max_count(1)
            .user_data(base64::engine::general_purpose::STANDARD.encode(req.user_data.as_bytes()))
            .iam_instance_profile(profile)
            .instance_initiated_shutdown_behavior(ShutdownBehavior::Terminate)
            .metadata_options(
                InstanceMetadataOptionsRequest::builder()
                    .http_tokens(HttpTokensState::Required)
                    .http_endpoint(InstanceMetadataEndpointState::Enabled)
                    .http_put_response_hop_limit(1)
                    .build(),
            )
            .tag_specifications(tag_specification(ResourceType::Instance, req))
            .tag_specifications(tag_specification(ResourceType::Volume, req))
            .set_subnet_id(r.subnet_id.clone())
            .set_key_name(r.key_name.clone());
        if !r.security_group_ids.is_empty() {
            call = call.set_security_group_ids(Some(r.security_group_ids.clone()));
        }
        if r.ebs_volume_size_gb > 0 {
            call = call.block_device_mappings(
                BlockDeviceMapping::builder()
                    .device_name(DATA_DEVICE)
                    .ebs(
                        EbsBlockDevice::builder()
                            .volume_size(r.ebs_volume_size_gb)
                            .volume_type(VolumeType::from(r.ebs_volume_type.as_str()))
                            .delete_on_termination(true)
                            .encrypted(true)
                            .build(),
                    )
                    .build(),
            );
        }
        if r.spot {
            call = call.instance_market_options(
                InstanceMarketOptionsRequest::builder()
                    .market_type(MarketType::Spot)
                    .spot_options(
                        SpotMarketOptions::builder()
                            .spot_instance_type(SpotInstanceType::OneTime)
                            .instance_interruption_behavior(InstanceInterruptionBehavior::Terminate)
                            .build(),
                    )
                    .build(),
            );
        }
        let out = super::call("RunInstances", call.send()).await?;
        out.instances()
            .first()
            .and_then(|i| i.instance_id())
            .map(str::to_string)
            .ok_or_else(|| BackendError::Unavailable {
                api: "RunInstances",
                message: "no instance in the response".into(),
            })
    }

    async fn terminate(&self, instance_ids: &[String]) -> Result<(), BackendError> {
        if instance_ids.is_empty() {
            return Ok(());
        }
        call(
            "TerminateInstances",
            self.client
                .terminate_instances()
                .set_instance_ids(Some(instance_ids.to_vec()))
                .send(),
        )
        .await?;
        Ok(())
    }

    async fn architecture(&self, instance_type: &str) -> Result<crate::contract::Arch, BackendError> {
        use crate::contract::Arch;
        if let Some(a) = self.arches.lock().expect("arch cache").get(instance_type) {
            return Ok(*a);
        }
        let out = call(
            "DescribeInstanceTypes",
            self.client.describe_instance_types().instance_types(instance_type.into()).send(),
        )
        .await?;
        let supported: Vec<String> = out
            .instance_types()
            .iter()
            .flat_map(|t| t.processor_info().map(|p| p.supported_architectures()).unwrap_or_default())
            .map(|a| a.as_str().to_string())
            .collect();
        let arch = if supported.iter().any(|a| a == "x86_64") {
            Arch::X86_64
        } else if supported.iter().any(|a| a == "arm64") {
            Arch::Aarch64
        } else {
            return Err(BackendError::Rejected {
                api: "DescribeInstanceTypes",
                code: "UnknownArchitecture".into(),
                message: format!("instance type {instance_type} has architectures {supported:?}; the worker runs on x86_64 and arm64"),
            });
        };
        self.arches.lock().expect("arch cache").insert(instance_type.to_string(), arch);
        Ok(arch)
    }
}
