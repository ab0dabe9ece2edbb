//! The `spec.destination` checks: an S3 bucket name S3 accepts, a clean key prefix and a
//! region name. Pure, no I/O.

use std::net::Ipv4Addr;

use super::{PATTERNS, Report, quote};
use crate::spec::Destination;

/// `spec.destination`: the bucket name by S3's rules, a prefix of plain segments, the region.
pub(super) fn check_destination(r: &mut Report, d: &Destination) {
    let p = &*PATTERNS;
    let b = d.bucket.as_str();
    let field = "spec.destination.bucket";
    let fix = "use 3-63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit";
    if !p.bucket.is_match(b) {
        r.add(field, format!("{} is not a valid S3 bucket name", quote(b)), fix);
    } else if b.contains("..") || b.contains(".-") || b.contains("-.") {
        r.add(field, format!("{} has adjacent dots or a dot next to a hyphen", quote(b)), fix);
    } else if b.parse::<Ipv4Addr>().is_ok() {
        r.add(field, format!("{} is formatted as an IP address", quote(b)), fix);
    } else if ["xn--", "sthree-", "amzn-s3-demo-"].iter().any(|x| b.starts_with(x))
        || ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"]
            .iter()
            .any(|x| b.ends_with(x))
    {
        r.add(field, format!("{} uses a prefix or suffix S3 reserves", quote(b)), fix);
    }
    let prefix = d.prefix.as_str();
    if prefix.len() > 512 {
        r.add("spec.destination.prefix", "is longer than 512 characters", "use a shorter prefix");
    }
    if !p.prefix.is_match(prefix) {
        r.add(
            "spec.destination.prefix",
            format!("{} is not a clean key prefix", quote(prefix)),
            "use slash-separated segments of letters, digits and _.()!*'- with no leading, trailing or double slash (e.g. data-dump)",
        );
    } else if prefix.split('/').any(|seg| seg == "." || seg == "..") {
        r.add("spec.destination.prefix", "has a . or .. segment", "name each folder plainly");
    }
    if let Some(region) = &d.region {
        r.pattern("spec.destination.region", region, &p.region, "an AWS region like eu-west-1");
    }
}
