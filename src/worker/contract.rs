//! The S3 contract between the worker and the controller: where the worker writes, and the JSON
//! documents it writes there. Pure, no I/O.
//!
//! ```text
//! PREFIX/DATE/MEDIA/MEDIA_01.parquet …   Parquet parts, in file order
//! PREFIX/DATE/MEDIA/_progress.json       ProgressReport, about every minute and at each stage
//! PREFIX/DATE/MEDIA/_manifest.json       Manifest, after every part is uploaded
//! PREFIX/DATE/MEDIA/_success             SuccessReport, written last
//! PREFIX/DATE/MEDIA/_failure             FailureReport, on any error (then nothing else)
//! ```
//!
//! Every document carries the attempt and its token: the keys are the same for every attempt,
//! so a `_failure` or `_progress.json` left by an earlier attempt is recognised by its token.
//! The worker script (`script.sh`) writes these documents; the tests here parse what it writes.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Written last, only after every part and the manifest are in S3.
pub const SUCCESS: &str = "_success";
/// Written on any error; the worker writes nothing after it.
pub const FAILURE: &str = "_failure";
/// The heartbeat.
pub const PROGRESS: &str = "_progress.json";
/// The list of parts with sizes, checksums and row counts.
pub const MANIFEST: &str = "_manifest.json";
/// The file name ending of Parquet parts.
pub const PART_SUFFIX: &str = ".parquet";
/// The version of the manifest format.
pub const MANIFEST_VERSION: u32 = 1;

/// The folder of one media type's output: `PREFIX/DATE/MEDIA/` (slashes around the prefix are
/// ignored).
pub fn media_prefix(prefix: &str, date: &str, media_type: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        format!("{date}/{media_type}/")
    } else {
        format!("{prefix}/{date}/{media_type}/")
    }
}

/// The key of one object of the contract, e.g. `key("data-dump", "2026-11-01", "image", SUCCESS)`.
pub fn key(prefix: &str, date: &str, media_type: &str, name: &str) -> String {
    format!("{}{name}", media_prefix(prefix, date, media_type))
}

/// Whether a key under a media prefix is a Parquet part (not one of the `_` documents).
pub fn is_part(key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    name.ends_with(PART_SUFFIX) && !name.starts_with('_')
}

/// Where the worker is. Unknown stages (from a newer worker) read as [`Stage::Unknown`].
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The script started and scheduled its shutdown.
    Starting,
    /// Installing the ODBC driver, the AWS CLI and odbc2parquet where missing.
    Installing,
    /// Choosing and mounting the disk for the parts.
    PreparingDisk,
    /// Reading the connection string from SSM.
    ReadingCredentials,
    /// odbc2parquet is running; complete parts are uploaded as they appear.
    Dumping,
    /// Every part is uploaded; writing the manifest and `_success`.
    Finishing,
    /// Only as [`FailureReport::step`]: the dump's deadline passed.
    Deadline,
    /// A stage this version does not know.
    #[serde(other)]
    Unknown,
}

/// `_progress.json`: the heartbeat, written at each stage and about every minute while dumping.
/// `files`, `bytes` and `rows` count the parts uploaded so far.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProgressReport {
    /// The current stage.
    pub stage: Stage,
    /// Parts uploaded.
    pub files: u64,
    /// Bytes uploaded.
    pub bytes: u64,
    /// Rows in the uploaded parts, when odbc2parquet reported them for every part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// The attempt that wrote this.
    pub attempt: u32,
    /// The attempt's idempotency token.
    pub token: String,
    /// When it was written.
    pub time: Timestamp,
}

/// One Parquet part in the manifest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ManifestFile {
    /// The full S3 key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the object (also in its `x-amz-meta-sha256`).
    pub sha256: String,
    /// Rows in the part, as odbc2parquet reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
}

/// `_manifest.json`: every part of the media type, in file order.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// [`MANIFEST_VERSION`].
    pub version: u32,
    /// The table.
    pub media_type: String,
    /// The dump's date.
    pub dump_date: String,
    /// The parts, in file order. Empty only when the user asked for `--no-empty-file` and the
    /// table was empty; otherwise an empty table gives one part with the schema and no rows.
    pub files: Vec<ManifestFile>,
    /// Total rows, as odbc2parquet counted them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// When the worker started.
    pub started_at: Timestamp,
    /// The odbc2parquet release that wrote the parts.
    pub odbc2parquet_version: String,
    /// The attempt that wrote this.
    pub attempt: u32,
    /// The attempt's idempotency token.
    pub token: String,
    /// When the manifest was written, i.e. when the dump finished.
    pub time: Timestamp,
}

impl Manifest {
    /// Total bytes of the parts.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// `_success`: written last; its presence means every part and the manifest are in S3.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SuccessReport {
    /// Parts uploaded.
    pub files: u64,
    /// Bytes uploaded.
    pub bytes: u64,
    /// Total rows, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// The attempt that wrote this.
    pub attempt: u32,
    /// The attempt's idempotency token.
    pub token: String,
    /// When it was written.
    pub time: Timestamp,
}

/// `_failure`: why the attempt failed. The log tail never holds the connection string (the
/// worker never logs it and redacts it and the password from the tail as well).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FailureReport {
    /// The failing command's exit code (124 when the deadline killed it).
    pub exit_code: i32,
    /// The stage that failed, or [`Stage::Deadline`].
    pub step: Stage,
    /// The last 4 KiB of the worker's log (odbc2parquet's and PostgreSQL's messages included),
    /// as valid UTF-8.
    pub log_tail: String,
    /// The attempt that wrote this.
    pub attempt: u32,
    /// The attempt's idempotency token.
    pub token: String,
    /// When it was written.
    pub time: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::testkit::{lib_json, sample_script};

    #[test]
    fn keys_follow_the_layout() {
        assert_eq!(media_prefix("data-dump", "2026-11-01", "image"), "data-dump/2026-11-01/image/");
        assert_eq!(media_prefix("/a/b/", "2026-11-01", "audio"), "a/b/2026-11-01/audio/");
        assert_eq!(
            key("data-dump", "2026-11-01", "image", SUCCESS),
            "data-dump/2026-11-01/image/_success"
        );
        assert!(is_part("p/2026-11-01/image/image_01.parquet"));
        assert!(!is_part("p/2026-11-01/image/_manifest.json"));
        assert!(!is_part("p/2026-11-01/image/_success"));
    }

    #[test]
    fn the_script_writes_progress_the_controller_reads() {
        let script = sample_script();
        let p: ProgressReport = lib_json(&script, "STAGE=dumping FILES=3 BYTES=1234 ROWS=99; progress_json");
        assert_eq!(
            (p.stage, p.files, p.bytes, p.rows, p.attempt),
            (Stage::Dumping, 3, 1234, Some(99), 2)
        );
        assert_eq!(p.token, "tok-\"1\"");
        assert!((Timestamp::now().as_second() - p.time.as_second()).abs() < 60);
        let p: ProgressReport = lib_json(&script, "ROWS_KNOWN=0; progress_json");
        assert_eq!((p.stage, p.rows), (Stage::Starting, None));
    }

    #[test]
    fn the_script_writes_manifest_and_success_the_controller_reads() {
        let script = sample_script();
        let setup = r#"STARTED=2026-11-01T00:00:00Z FILES=2 BYTES=30 ROWS=7
            ENTRIES=('{"key":"k/image_01.parquet","size":10,"sha256":"ab","rows":3}' '{"key":"k/image_02.parquet","size":20,"sha256":"cd","rows":4}')"#;
        let m: Manifest = lib_json(&script, &format!("{setup}; manifest_json"));
        assert_eq!(m.version, MANIFEST_VERSION);
        assert_eq!(
            (m.media_type.as_str(), m.dump_date.as_str(), m.rows, m.bytes()),
            ("image", "2026-11-01", Some(7), 30)
        );
        assert_eq!(
            m.files[1],
            ManifestFile {
                key: "k/image_02.parquet".into(),
                size: 20,
                sha256: "cd".into(),
                rows: Some(4)
            }
        );
        assert_eq!(m.odbc2parquet_version, "11.0.1");
        assert_eq!(m.started_at.to_string(), "2026-11-01T00:00:00Z");
        let m: Manifest = lib_json(&script, "STARTED=2026-11-01T00:00:00Z; manifest_json");
        assert!(m.files.is_empty());
        let s: SuccessReport = lib_json(&script, &format!("{setup}; success_json"));
        assert_eq!((s.files, s.bytes, s.rows, s.attempt), (2, 30, Some(7), 2));
    }

    #[test]
    fn the_failure_log_tail_is_valid_json_whatever_the_log_holds() {
        let script = sample_script();
        // A tail cut inside a multi-byte character, control characters, quotes, backslashes,
        // invalid UTF-8, and the secret, which must be redacted.
        let snippet = r#"SECRETS=('pw;s3cr3t') t=$(printf '\xa9 caf\xc3\xa9 "q" \\ \x01\x1f\ttab\r\nline2 \xff pw;s3cr3t end' | utf8_clean); failure_json 1 dumping "$t""#;
        let f: FailureReport = lib_json(&script, snippet);
        assert_eq!(f.exit_code, 1);
        assert_eq!(f.step, Stage::Dumping);
        assert_eq!(f.log_tail, " café \"q\" \\ \u{1}\u{1f}\ttab\r\nline2  [REDACTED] end");
        let f: FailureReport = lib_json(&script, "failure_json 124 deadline ''");
        assert_eq!((f.exit_code, f.step, f.log_tail.as_str()), (124, Stage::Deadline, ""));
    }

    #[test]
    fn unknown_stages_still_parse() {
        let p: ProgressReport = serde_json::from_str(
            r#"{"stage":"warming_up","files":0,"bytes":0,"attempt":1,"token":"t","time":"2026-11-01T00:00:00Z","extra":1}"#,
        )
        .unwrap();
        assert_eq!(p.stage, Stage::Unknown);
    }
}
