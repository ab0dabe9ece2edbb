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
//! The worker (`datadump_worker::attempt`) writes these documents; the controller reads them.

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
/// The name of part `n` (1-based) of a media type, `image_01.parquet`, as odbc2parquet names
/// its parts.
pub fn part_name(media_type: &str, n: u32) -> String {
    format!("{media_type}_{n:02}{PART_SUFFIX}")
}

/// The version of the manifest format.
pub const MANIFEST_VERSION: u32 = 2;

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
    /// The worker started.
    Starting,
    /// Only from workers before 0.2 (they installed tools).
    Installing,
    /// Only from workers before 0.2 (they mounted a disk).
    PreparingDisk,
    /// Reading the connection string from SSM.
    ReadingCredentials,
    /// The engine is streaming rows into Parquet files on S3.
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
/// `files` counts finished parts; `bytes` and `rows` count what was written and read so far.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProgressReport {
    /// The current stage.
    pub stage: Stage,
    /// Parts uploaded.
    pub files: u64,
    /// Bytes uploaded.
    pub bytes: u64,
    /// Rows read so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// The table's row estimate (PostgreSQL's statistics), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_rows: Option<u64>,
    /// Rows per second since the dump started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_per_second: Option<u64>,
    /// When the dump should end at this rate, from the row estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<Timestamp>,
    /// How the worker connected to the database, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionReport>,
    /// The attempt that wrote this.
    pub attempt: u32,
    /// The attempt's idempotency token.
    pub token: String,
    /// When it was written.
    pub time: Timestamp,
}

/// What of the database server's certificate the worker verified.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum CertificateCheck {
    /// Nothing (no TLS, or `sslmode` prefer/allow/require without a root CA).
    None,
    /// The chain, against the root CAs (`verify-ca`).
    Ca,
    /// The chain, and that it was issued for the host connected to (`verify-full`).
    CaAndHostName,
}

/// How the worker connected to the database, as the server saw it (`pg_stat_ssl`): the proof
/// a publisher can show that the data left the database encrypted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionReport {
    /// The libpq `sslmode` in force.
    pub sslmode: String,
    /// Whether the connection is encrypted.
    pub tls: bool,
    /// The TLS version, e.g. `TLSv1.3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<String>,
    /// The cipher suite, e.g. `TLS_AES_256_GCM_SHA384`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher: Option<String>,
    /// What of the server's certificate was verified.
    pub server_certificate: CertificateCheck,
    /// Whether the worker presented a client certificate.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub client_certificate: bool,
}

impl ConnectionReport {
    /// One line, e.g. `TLSv1.3 (TLS_AES_256_GCM_SHA384), server certificate verified against
    /// the CA and host name (sslmode=verify-full)`.
    pub fn summary(&self) -> String {
        if !self.tls {
            return format!("unencrypted (sslmode={})", self.sslmode);
        }
        let version = self.tls_version.as_deref().unwrap_or("TLS");
        let cipher = self.cipher.as_deref().map(|c| format!(" ({c})")).unwrap_or_default();
        let check = match self.server_certificate {
            CertificateCheck::None => "server certificate not verified",
            CertificateCheck::Ca => "server certificate verified against the CA",
            CertificateCheck::CaAndHostName => "server certificate verified against the CA and host name",
        };
        let client = if self.client_certificate {
            ", client certificate presented"
        } else {
            ""
        };
        format!("{version}{cipher}, {check}{client} (sslmode={})", self.sslmode)
    }
}

/// One column of the output, in the manifest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ManifestColumn {
    /// The column name.
    pub name: String,
    /// The source type, e.g. `numeric(12,2)` or `text[]`.
    pub source_type: String,
    /// The Parquet type, e.g. `DECIMAL(12,2)` or `LIST<STRING>`.
    pub parquet_type: String,
    /// Whether the column may hold NULL.
    pub nullable: bool,
    /// The column's description (`COMMENT ON COLUMN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One Parquet part in the manifest.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ManifestFile {
    /// The full S3 key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the object (`datadump handoff` reads every file through to check it).
    pub sha256: String,
    /// Rows in the part.
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
    /// The parts, in file order. Empty only when odbc2parquet was asked for `--no-empty-file`
    /// and the table was empty; otherwise an empty table gives one part with the schema.
    pub files: Vec<ManifestFile>,
    /// Total rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// The columns, with types and descriptions (empty when the engine does not know them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ManifestColumn>,
    /// The table's description (`COMMENT ON TABLE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When the worker started.
    pub started_at: Timestamp,
    /// What wrote the parts, e.g. `datadump 0.2.0 postgres (2 streams)` or `odbc2parquet 11.0.1`.
    pub writer: String,
    /// How the worker connected to the database (the `postgres` engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionReport>,
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

/// `_failure`: why the attempt failed. Neither the message nor the log tail ever holds the
/// connection string (the worker never logs it and redacts it and the password as well).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FailureReport {
    /// The worker's exit code (124 when the deadline stopped it, 143 on SIGTERM).
    pub exit_code: i32,
    /// The stage that failed, or [`Stage::Deadline`].
    pub step: Stage,
    /// The cause in one line, e.g. the database's error with its column, row and fix.
    #[serde(default)]
    pub message: String,
    /// The last 4 KiB of the worker's log, as valid UTF-8.
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
    fn documents_round_trip_and_old_failures_still_parse() {
        let f: FailureReport =
            serde_json::from_str(r#"{"exitCode":1,"step":"dumping","logTail":"x","attempt":1,"token":"t","time":"2026-11-01T00:00:00Z"}"#)
                .unwrap();
        assert_eq!((f.step, f.message.as_str()), (Stage::Dumping, ""));
        let p = ProgressReport {
            stage: Stage::Dumping,
            files: 1,
            bytes: 2,
            rows: Some(3),
            estimated_rows: Some(10),
            rows_per_second: Some(1),
            eta: None,
            attempt: 1,
            connection: None,
            token: "t".into(),
            time: Timestamp::UNIX_EPOCH,
        };
        let text = serde_json::to_string(&p).unwrap();
        assert!(text.contains(r#""estimatedRows":10"#) && !text.contains("eta"), "{text}");
        assert_eq!(serde_json::from_str::<ProgressReport>(&text).unwrap(), p);
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
