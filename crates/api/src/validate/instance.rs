//! The `spec.instance` checks: EC2 ids and names in their forms, the volume size, the
//! instance profile (here or as a site default) and the user tags. Pure, no I/O.

use super::{PATTERNS, Report, quote};
use crate::resolve::SiteDefaults;
use crate::spec::{InstanceSpec, MAX_EBS_VOLUME_GB, MAX_USER_TAGS};

/// `spec.instance`, given the controller's site defaults (an instance profile is needed in one
/// of the two).
pub(super) fn check_instance(r: &mut Report, i: &InstanceSpec, site: &SiteDefaults) {
    let p = &*PATTERNS;
    if let Some(v) = &i.instance_type {
        r.pattern(
            "spec.instance.instanceType",
            v,
            &p.instance_type,
            "an EC2 instance type like m7g.xlarge",
        );
    }
    if let Some(v) = &i.image_id {
        r.pattern(
            "spec.instance.imageId",
            v,
            &p.image_id,
            "an AMI id like ami-0123456789abcdef0 or resolve:ssm:/aws/service/…",
        );
    }
    if let Some(v) = i.ebs_volume_size_gb
        && !(0..=MAX_EBS_VOLUME_GB).contains(&v)
    {
        r.add(
            "spec.instance.ebsVolumeSizeGb",
            format!("{v} is outside 0..{MAX_EBS_VOLUME_GB}"),
            "give a size in GiB (0 for no extra volume); the worker needs about two output files of space",
        );
    }
    if let Some(v) = &i.subnet_id {
        r.pattern("spec.instance.subnetId", v, &p.subnet, "a subnet id like subnet-0123456789abcdef0");
    }
    if let Some(ids) = &i.security_group_ids {
        if ids.len() > 5 {
            r.add(
                "spec.instance.securityGroupIds",
                "has more than 5 entries",
                "use at most 5 security groups",
            );
        }
        for (n, id) in ids.iter().enumerate() {
            r.pattern(
                format!("spec.instance.securityGroupIds[{n}]"),
                &id.0,
                &p.security_group,
                "a security group id like sg-0123456789abcdef0",
            );
        }
    }
    match (&i.iam_instance_profile, &site.iam_instance_profile) {
        (Some(v), _) => r.pattern(
            "spec.instance.iamInstanceProfile",
            v,
            &p.instance_profile,
            "an instance profile name or ARN",
        ),
        (None, Some(_)) => {}
        (None, None) => r.add(
            "spec.instance.iamInstanceProfile",
            "is not set and the controller has no site default",
            "name the instance profile whose role may write to the bucket (or install the controller with --default-iam-instance-profile)",
        ),
    }
    if let Some(v) = &i.key_name {
        r.pattern("spec.instance.keyName", v, &p.key_name, "an EC2 key pair name");
    }
    if i.tags.len() > MAX_USER_TAGS {
        r.add(
            "spec.instance.tags",
            format!("has {} tags, more than {MAX_USER_TAGS}", i.tags.len()),
            "keep at most 40 tags",
        );
    }
    for (k, v) in &i.tags {
        let field = format!("spec.instance.tags[{}]", quote(k));
        if k.is_empty() || k.chars().count() > 128 {
            r.add(
                &field,
                "key is empty or longer than 128 characters",
                "use a key of 1-128 characters",
            );
        }
        if k.to_ascii_lowercase().starts_with("aws:") || k.starts_with("datadump.dev/") {
            r.add(&field, "key uses a reserved prefix (aws: or datadump.dev/)", "choose another key");
        }
        if v.chars().count() > 256 {
            r.add(&field, "value is longer than 256 characters", "shorten the value");
        }
    }
}
