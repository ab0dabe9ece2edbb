//! Where a dump's objects go, and how a reader fetches them: the dump's folder, its dataset
//! card, the AWS CLI command for a copy. Pure, no I/O.

use crate::DataDump;

/// The card's key: `PREFIX/DATE/README.md`.
pub fn card_key(dd: &DataDump, date: &str) -> String {
    format!("{}README.md", dump_prefix(dd, date))
}

/// The dump's folder, `PREFIX/DATE/` (slashes around the prefix ignored).
pub fn dump_prefix(dd: &DataDump, date: &str) -> String {
    let prefix = dd.spec.destination.prefix.trim_matches('/');
    if prefix.is_empty() {
        format!("{date}/")
    } else {
        format!("{prefix}/{date}/")
    }
}

/// How to copy a dump with the AWS CLI (`--request-payer requester` on a Requester Pays
/// bucket); `date: None` before the dump's date is fixed.
pub fn download_command(dd: &DataDump, date: Option<&str>) -> String {
    let date = date.unwrap_or("DATE");
    let payer = if dd.spec.destination.requester_pays {
        " --request-payer requester"
    } else {
        ""
    };
    format!(
        "aws s3 cp --recursive{payer} s3://{}/{} ./{date}/",
        dd.spec.destination.bucket,
        dump_prefix(dd, date)
    )
}
