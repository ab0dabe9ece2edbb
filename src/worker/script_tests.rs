//! Tests of the worker script's own logic, run function by function in bash: connection-string
//! handling, redaction, disk choice, part order, and the embedded program being current.
//! Test-only; runs bash, gzip and gunzip.

use std::io::Write;
use std::process::{Command, Stdio};

use super::render::PROGRAM_GZ;
use super::testkit::{lib_out, sample_script};
use super::{DEFAULT_COLUMN_LENGTH_LIMIT, program};

fn pipe(cmd: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{cmd} failed");
    out.stdout
}

/// `program.gz` must be `gzip -9n` of the current program: the user data carries it, so an
/// edit of `script.sh` without regenerating it would ship the old program.
#[test]
fn program_gz_is_the_current_program() {
    let current = program();
    if pipe("gunzip", &["-c"], PROGRAM_GZ) == current.as_bytes() {
        return;
    }
    if std::env::var("DATADUMP_BLESS").as_deref() == Ok("1") {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/worker/program.gz");
        std::fs::write(path, pipe("gzip", &["-9n"], current.as_bytes())).unwrap();
        eprintln!("wrote {path}; run the tests again");
        return;
    }
    panic!("src/worker/program.gz is stale: run `DATADUMP_BLESS=1 cargo test --lib worker::script_tests` and commit it");
}

fn conn(input: &str) -> Vec<String> {
    let snippet = format!(
        "effective_conn {}; printf '%s\\n' \"$CONN\" \"${{ODBC_KEYS[*]}}\" \"${{ODBC_VALUES[@]}}\" \"--\" \"${{SECRETS[@]}}\"",
        shell_quote(input)
    );
    lib_out(&sample_script(), &snippet).lines().map(String::from).collect()
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[test]
fn missing_driver_options_are_appended() {
    let out = conn("Driver={PostgreSQL Unicode};Server=db;Pwd={p;w}}d};");
    assert_eq!(
        out[0],
        format!(
            "Driver={{PostgreSQL Unicode}};Server=db;Pwd={{p;w}}}}d}};UseDeclareFetch=1;Fetch=20000;BoolsAsChar=0;UnknownsAsLongVarchar=1;MaxLongVarcharSize={DEFAULT_COLUMN_LENGTH_LIMIT}"
        )
    );
    assert_eq!(out[1], "driver server pwd");
    assert_eq!(&out[2..5], ["PostgreSQL Unicode", "db", "p;w}d"]);
    assert_eq!(&out[5..], ["--", "p;w}d"]);
}

#[test]
fn options_the_string_sets_are_kept_under_any_spelling() {
    let out = conn(" driver=x; usedeclarefetch = 0;B9=1;FETCH=5;b8=0;maxlongvarcharsize=10;PASSWORD=hunter2");
    assert_eq!(
        out[0],
        " driver=x; usedeclarefetch = 0;B9=1;FETCH=5;b8=0;maxlongvarcharsize=10;PASSWORD=hunter2"
    );
    assert_eq!(out[1], "driver usedeclarefetch b9 fetch b8 maxlongvarcharsize password");
    assert_eq!(out.last().unwrap(), "hunter2");
    // Short passwords are not redacted: every "x" of the log would go.
    let out = conn("Driver=x;Pwd=ab");
    assert_eq!(
        out[0],
        "Driver=x;Pwd=ab;UseDeclareFetch=1;Fetch=20000;BoolsAsChar=0;UnknownsAsLongVarchar=1;MaxLongVarcharSize=65536"
    );
    assert_eq!(out.last().unwrap(), "--");
}

#[test]
fn redaction_replaces_every_secret() {
    let out = lib_out(&sample_script(), r#"SECRETS=('a*b' '[x]' ''); redact 'a*b then [x] and a*b, ab'"#);
    assert_eq!(out, "[REDACTED] then [REDACTED] and [REDACTED], ab");
}

#[test]
fn an_ebs_volume_wins_over_instance_store_and_root() {
    let choose = |lines: &str| lib_out(&sample_script(), &format!("printf {} | choose_disk", shell_quote(lines)));
    let store = "/dev/nvme1n1 Amazon EC2 NVMe Instance Storage\n";
    let ebs = "/dev/nvme2n1 Amazon Elastic Block Store\n";
    assert_eq!(choose(&format!("{store}{ebs}")), "/dev/nvme2n1 ebs\n");
    assert_eq!(choose(store), "/dev/nvme1n1 instance-store\n");
    assert_eq!(choose("/dev/xvdb \n"), "/dev/xvdb ebs\n");
    assert_eq!(choose(""), "");
}

#[test]
fn parts_are_listed_in_file_order_and_their_rows_read_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "image_02.parquet",
        "image_100.parquet",
        "image_01.parquet",
        "image_10.parquet",
        "image_99.parquet",
        "other_01.parquet",
    ] {
        std::fs::write(dir.path().join(name), "x").unwrap();
    }
    let d = dir.path().display();
    std::fs::write(
        dir.path().join("log"),
        format!(
            "[2026-11-23T22:27:38Z INFO ] File complete rows=48210 size=1.1 MiB path={d}/image_01.parquet\n\
             [2026-11-23T22:27:38Z INFO ] File complete rows=7 size=1 KiB path={d}/image_10.parquet.bak\n"
        ),
    )
    .unwrap();
    let out = lib_out(
        &sample_script(),
        &format!("OUT={d} LOG={d}/log; list_parts; echo \"rows=$(part_rows {d}/image_01.parquet),$(part_rows {d}/image_10.parquet)\""),
    );
    let expected: Vec<String> = ["01", "02", "10", "99", "100"]
        .iter()
        .map(|n| format!("{d}/image_{n}.parquet"))
        .collect();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..5], expected.iter().map(String::as_str).collect::<Vec<_>>()[..]);
    assert_eq!(lines[5], "rows=48210,");
}

#[test]
fn a_failed_write_is_reported_as_failed_even_where_errors_are_tolerated() {
    let snippet = r#"d=$(mktemp -d); printf '#!/bin/sh\necho "S3 says no" >&2; exit 3\n' > "$d/aws"; chmod +x "$d/aws"; PATH="$d:$PATH"
        put _progress.json '{}' 5 || echo "rc=$?"; progress dumping; echo "still running"; rm -r "$d""#;
    let out = lib_out(&sample_script(), snippet);
    assert!(
        out.contains("could not write data-dump/2026-11-01/image/_progress.json\nrc=3\n"),
        "{out}"
    );
    assert!(!out.contains(" wrote "), "{out}");
    assert!(out.ends_with("still running\n"), "progress is best effort: {out}");
}
