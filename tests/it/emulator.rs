//! The AWS emulator the tests run: moto through our launcher (`tests/moto/moto_server.py`),
//! which adds requester pays and replaces moto's scan of every tag by a lookup by resource id
//! (DescribeInstances was quadratic in the fleet). The lookup must give moto's own answers, or
//! every other test would be checked against a different emulator than the one installed.

use std::path::PathBuf;
use std::process::Command;

use crate::support::moto::venv_bin;

#[test]
fn the_launchers_tag_lookup_answers_as_moto_does() {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/moto/check_patches.py");
    let out = Command::new(venv_bin().join("python"))
        .arg(&script)
        .output()
        .expect("run the venv's python");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{}:\n{text}", script.display());
    assert!(text.contains("EC2 tags by id: 20 instances"), "{text}");
}
