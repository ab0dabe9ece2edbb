//! The worker binary (`datadump-worker`) runs on Amazon Linux 2023 (glibc 2.34) and newer: `scripts/setup.sh`
//! builds it with `cargo zigbuild --target ARCH-unknown-linux-gnu.2.28` (zig from PyPI), and
//! this test reads the binary's dynamic symbol versions with `readelf` and fails on any glibc
//! symbol newer than 2.34.

use std::path::Path;
use std::process::Command;

/// Where `scripts/setup.sh` builds the worker binary with a glibc floor (this machine's
/// architecture).
pub fn zigbuild_binary() -> std::path::PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| format!("{}/target", env!("CARGO_MANIFEST_DIR")));
    Path::new(&target).join(format!("{}-unknown-linux-gnu/debug/datadump-worker", std::env::consts::ARCH))
}
/// Amazon Linux 2023's glibc.
const FLOOR: (u32, u32) = (2, 34);

/// Every `GLIBC_x.y` version the binary's dynamic symbols need.
fn glibc_versions(binary: &Path) -> Vec<(u32, u32)> {
    let out = Command::new("readelf")
        .arg("--version-info")
        .arg("--wide")
        .arg(binary)
        .output()
        .expect("readelf (binutils)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut versions: Vec<(u32, u32)> = text
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("GLIBC_"))
        .filter_map(|v| {
            let mut parts = v.split('.');
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        })
        .collect();
    versions.sort();
    versions.dedup();
    versions
}

#[test]
fn the_worker_binary_needs_no_glibc_newer_than_amazon_linux_2023s() {
    let binary = zigbuild_binary();
    assert!(
        binary.exists(),
        "{} is missing: scripts/setup.sh builds it (cargo zigbuild --target ARCH-unknown-linux-gnu.2.28 -p datadump-worker)",
        binary.display()
    );
    let versions = glibc_versions(&binary);
    assert!(!versions.is_empty(), "a dynamically linked binary names glibc versions");
    let newest = *versions.last().unwrap();
    assert!(
        newest <= FLOOR,
        "the worker needs GLIBC_{}.{}, newer than Amazon Linux 2023's {}.{}: {versions:?}",
        newest.0,
        newest.1,
        FLOOR.0,
        FLOOR.1
    );
    // and the binary runs: it is the worker the bootstrap test executes
    let out = Command::new(&binary).arg("--version").output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("datadump-worker "));
}
