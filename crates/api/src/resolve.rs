//! Layered defaults: the spec's value, else the controller's site default, else the built-in
//! one. Pure, no I/O.

use super::spec::{InstanceSpec, VolumeType};
use super::status::ResolvedInstance;
use datadump_contract::Arch;

/// Built-in instance type: small on purpose, so a test run never launches a big machine.
pub const DEFAULT_INSTANCE_TYPE: &str = "m7g.xlarge";
/// Built-in extra volume size in GiB: none. Neither engine needs one (the postgres engine
/// streams to S3; odbc2parquet keeps about two files in its workdir on the root volume) and the
/// bootstrap does not mount one, so a default volume would only be paid for.
pub const DEFAULT_EBS_VOLUME_SIZE_GB: i32 = 0;
/// Amazon Linux 2023 for arm64, resolved by EC2 at launch.
pub const AL2023_ARM64: &str = "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64";
/// Amazon Linux 2023 for x86_64, resolved by EC2 at launch.
pub const AL2023_X86_64: &str = "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64";

/// Site-wide defaults a platform team sets once (Helm values → controller flags). Each field
/// fills in what a DataDump leaves unset.
#[derive(Clone, Debug, Default, PartialEq, clap::Args)]
pub struct SiteDefaults {
    /// Instance type for DataDumps that set none.
    #[arg(long = "default-instance-type", env = "DATADUMP_DEFAULT_INSTANCE_TYPE")]
    pub instance_type: Option<String>,
    /// AMI (or resolve:ssm: parameter) for DataDumps that set none.
    #[arg(long = "default-image-id", env = "DATADUMP_DEFAULT_IMAGE_ID")]
    pub image_id: Option<String>,
    /// Extra EBS volume size in GiB for DataDumps that set none.
    #[arg(long = "default-ebs-volume-size-gb", env = "DATADUMP_DEFAULT_EBS_VOLUME_SIZE_GB")]
    pub ebs_volume_size_gb: Option<i32>,
    /// Subnet for DataDumps that set none.
    #[arg(long = "default-subnet-id", env = "DATADUMP_DEFAULT_SUBNET_ID")]
    pub subnet_id: Option<String>,
    /// Security groups (comma-separated) for DataDumps that set none.
    #[arg(
        long = "default-security-group-ids",
        env = "DATADUMP_DEFAULT_SECURITY_GROUP_IDS",
        value_delimiter = ','
    )]
    pub security_group_ids: Vec<String>,
    /// Instance profile for DataDumps that set none.
    #[arg(long = "default-iam-instance-profile", env = "DATADUMP_DEFAULT_IAM_INSTANCE_PROFILE")]
    pub iam_instance_profile: Option<String>,
}

/// Resolves the instance settings. `None` when no instance profile is known, since the worker
/// cannot upload without one (validation reports that case with its fix).
pub fn resolve_instance(spec: &InstanceSpec, site: &SiteDefaults) -> Option<ResolvedInstance> {
    let instance_type = spec
        .instance_type
        .clone()
        .or_else(|| site.instance_type.clone())
        .unwrap_or_else(|| DEFAULT_INSTANCE_TYPE.to_string());
    let image_id = spec.image_id.clone().or_else(|| site.image_id.clone()).unwrap_or_else(|| {
        if Arch::of_instance_type(&instance_type) == Arch::Aarch64 {
            AL2023_ARM64
        } else {
            AL2023_X86_64
        }
        .to_string()
    });
    let security_group_ids = match &spec.security_group_ids {
        Some(ids) => ids.iter().map(|s| s.0.clone()).collect(),
        None => site.security_group_ids.clone(),
    };
    Some(ResolvedInstance {
        image_id,
        ebs_volume_size_gb: spec
            .ebs_volume_size_gb
            .or(site.ebs_volume_size_gb)
            .unwrap_or(DEFAULT_EBS_VOLUME_SIZE_GB),
        ebs_volume_type: spec.ebs_volume_type.unwrap_or(VolumeType::Gp3).as_str().to_string(),
        subnet_id: spec.subnet_id.clone().or_else(|| site.subnet_id.clone()),
        security_group_ids,
        iam_instance_profile: spec.iam_instance_profile.clone().or_else(|| site.iam_instance_profile.clone())?,
        key_name: spec.key_name.clone(),
        spot: spec.spot.unwrap_or(false),
        instance_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_beats_site_beats_builtin() {
        let site = SiteDefaults {
            instance_type: Some("c7i.large".into()),
            iam_instance_profile: Some("site-profile".into()),
            ebs_volume_size_gb: Some(50),
            ..Default::default()
        };
        let r = resolve_instance(&InstanceSpec::default(), &site).unwrap();
        assert_eq!(r.instance_type, "c7i.large");
        assert_eq!(r.image_id, AL2023_X86_64);
        assert_eq!(r.ebs_volume_size_gb, 50);
        assert_eq!(r.iam_instance_profile, "site-profile");

        let spec = InstanceSpec {
            instance_type: Some("m7g.large".into()),
            ebs_volume_size_gb: Some(0),
            iam_instance_profile: Some("mine".into()),
            ..Default::default()
        };
        let r = resolve_instance(&spec, &site).unwrap();
        assert_eq!((r.instance_type.as_str(), r.image_id.as_str()), ("m7g.large", AL2023_ARM64));
        assert_eq!(r.ebs_volume_size_gb, 0);
        assert_eq!(r.iam_instance_profile, "mine");

        let r = resolve_instance(&spec, &SiteDefaults::default()).unwrap();
        assert_eq!(r.ebs_volume_type, "gp3");
        assert!(resolve_instance(&InstanceSpec::default(), &SiteDefaults::default()).is_none());
        assert_eq!(
            resolve_instance(
                &InstanceSpec {
                    iam_instance_profile: Some("p".into()),
                    ..Default::default()
                },
                &SiteDefaults::default()
            )
            .unwrap()
            .instance_type,
            DEFAULT_INSTANCE_TYPE
        );
    }
}
