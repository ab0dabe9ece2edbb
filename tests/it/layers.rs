//! The workspace's crate boundaries are the architecture's dependency rules
//! (`docs/architecture.md`, "Crates"): what each crate may link, checked with `cargo tree` and
//! `cargo metadata` on the real lock file, so that a dependency that comes back fails here, and
//! no source file grows past 600 lines outside its tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cargo(args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo).args(args).current_dir(repo()).output().expect("cargo runs");
    assert!(out.status.success(), "cargo {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Every package a crate links (normal dependencies, transitively; not dev or build ones).
fn linked(package: &str) -> BTreeSet<String> {
    cargo(&[
        "tree",
        "--locked",
        "--offline",
        "-p",
        package,
        "-e",
        "normal",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ])
    .lines()
    .filter_map(|l| l.split_whitespace().next())
    .map(str::to_string)
    .collect()
}

fn forbidden_in(package: &str, forbidden: &[&str]) -> Vec<String> {
    let tree = linked(package);
    assert!(tree.contains(package), "cargo tree lists {package} itself: {tree:?}");
    forbidden
        .iter()
        .filter(|f| tree.iter().any(|p| p == *f || p.starts_with(&format!("{f}-"))))
        .map(|f| f.to_string())
        .collect()
}

#[test]
fn the_worker_every_instance_downloads_links_no_kubernetes_no_http_server_and_no_ec2() {
    let found = forbidden_in(
        "datadump-worker",
        &[
            "kube",
            "k8s-openapi",
            "axum",
            "aws-sdk-ec2",
            "prometheus-client",
            "indicatif",
            "croner",
            "datadump-api",
        ],
    );
    assert!(
        found.is_empty(),
        "datadump-worker links {found:?}: move that code to the datadump binary"
    );
}

#[test]
fn the_api_and_planner_crate_does_no_io() {
    let found = forbidden_in(
        "datadump-api",
        &[
            "tokio",
            "aws-config",
            "aws-sdk-s3",
            "aws-sdk-ec2",
            "aws-sdk-ssm",
            "hyper",
            "kube-client",
            "kube-runtime",
            "datadump-worker",
        ],
    );
    assert!(
        found.is_empty(),
        "datadump-api links {found:?}: the planner is pure; keep I/O in the binary"
    );
}

#[test]
fn the_contract_crate_is_serde_only() {
    let found = forbidden_in(
        "datadump-contract",
        &[
            "tokio",
            "kube",
            "k8s-openapi",
            "aws-config",
            "arrow",
            "parquet",
            "schemars",
            "regex",
            "datadump-api",
            "datadump-worker",
        ],
    );
    assert!(
        found.is_empty(),
        "datadump-contract links {found:?}: it is the wire format, serde only"
    );
}

#[test]
fn dependencies_point_down_the_layers() {
    let meta: serde_json::Value =
        serde_json::from_str(&cargo(&["metadata", "--locked", "--offline", "--no-deps", "--format-version", "1"])).unwrap();
    let ours: BTreeMap<String, BTreeSet<String>> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null() && d["name"].as_str().unwrap().starts_with("datadump-"))
                .map(|d| d["name"].as_str().unwrap().to_string())
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect();
    let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
    let want = BTreeMap::from([
        ("datadump-contract".to_string(), set(&[])),
        ("datadump-api".to_string(), set(&["datadump-contract"])),
        ("datadump-worker".to_string(), set(&["datadump-contract"])),
        (
            "datadump-operator".to_string(),
            set(&["datadump-contract", "datadump-api", "datadump-worker"]),
        ),
    ]);
    assert_eq!(ours, want);
}

/// Lines of a Rust file before its `#[cfg(test)] mod …` (files that are tests are skipped).
fn non_test_lines(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .position(|w| w[0].trim() == "#[cfg(test)]" && w[1].trim_start().starts_with("mod "))
        .unwrap_or(lines.len())
}

#[test]
fn no_source_file_is_over_600_lines_outside_its_tests() {
    let mut stack = vec![repo().join("src"), repo().join("crates")];
    let mut long = Vec::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                stack.push(path);
            } else if name.ends_with(".rs") && !name.ends_with("tests.rs") {
                let n = non_test_lines(&path);
                if n > 600 {
                    long.push(format!("{} ({n})", path.strip_prefix(repo()).unwrap().display()));
                }
            }
        }
    }
    long.sort();
    assert!(long.is_empty(), "split these along the steps they hold: {long:?}");
}
