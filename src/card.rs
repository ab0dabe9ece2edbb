//! The dataset card: when a dump succeeds, `PREFIX/DATE/README.md` with Hugging Face
//! dataset-card front matter (one config per media type with its Parquet files), each media
//! type's columns and types read from the Parquet schema, rows and size, an "as-is" notice and
//! a pointer to the license fields of the records. `render` is pure; `write` reads the manifests
//! and one footer per media type and puts the card (I/O through [`ObjectStore`]).

use std::fmt::Write as _;

use crate::api::{DataDump, DataDumpStatus};
use crate::backend::{BackendError, ObjectStore};
use crate::observe::{bucket_of, parquet_footer};
use crate::worker::contract::{self, Manifest};

/// What the card says about one media type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaCard {
    /// The media type.
    pub media_type: String,
    /// Rows exported.
    pub rows: Option<u64>,
    /// Bytes exported.
    pub bytes: u64,
    /// Parquet files.
    pub files: u64,
    /// Columns as (name, type), from the first file's schema.
    pub columns: Vec<(String, String)>,
}

/// The card's key: `PREFIX/DATE/README.md`.
pub fn card_key(dd: &DataDump, status: &DataDumpStatus) -> String {
    format!(
        "{}/{}/README.md",
        dd.spec.destination.prefix,
        status.dump_date.clone().unwrap_or_default()
    )
}

/// Renders the card.
pub fn render(dd: &DataDump, status: &DataDumpStatus, media: &[MediaCard]) -> String {
    let mut out = String::from("---\nconfigs:\n");
    for m in media {
        let _ = write!(
            out,
            "- config_name: {0}\n  data_files:\n  - split: train\n    path: \"{0}/*.parquet\"\n",
            m.media_type
        );
    }
    out.push_str("---\n\n");
    let name = dd.metadata.name.clone().unwrap_or_default();
    let date = status.dump_date.clone().unwrap_or_default();
    let _ = writeln!(out, "# {name} ({date})\n");
    let _ = writeln!(
        out,
        "Parquet export of {} table(s), written by datadump-operator on {date}.\n",
        media.len()
    );
    for m in media {
        let rows = m.rows.map(|r| r.to_string()).unwrap_or_else(|| "unknown".into());
        let _ = writeln!(
            out,
            "## {}\n\n{rows} rows in {} file(s), {} bytes (zstd Parquet).\n",
            m.media_type, m.files, m.bytes
        );
        out.push_str("| column | type |\n|---|---|\n");
        for (c, t) in &m.columns {
            let _ = writeln!(out, "| `{c}` | {t} |");
        }
        out.push('\n');
    }
    let license_columns: Vec<&str> = media
        .iter()
        .flat_map(|m| m.columns.iter().map(|(c, _)| c.as_str()))
        .filter(|c| c.starts_with("license"))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    out.push_str("## Notice\n\nThis dataset is provided as-is, without warranty of any kind. ");
    if license_columns.is_empty() {
        out.push_str("Each record's reuse terms are those of its source; check them before reuse.\n");
    } else {
        let cols = license_columns.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ");
        let _ = writeln!(
            out,
            "Each record carries its own license: read the {cols} field(s) of every record before reuse."
        );
    }
    out
}

/// Gathers what the card needs from S3 and writes it; returns the card's `s3://` URI.
pub async fn write<S: ObjectStore>(store: &S, dd: &DataDump, status: &DataDumpStatus) -> Result<String, BackendError> {
    let bucket = bucket_of(dd);
    let date = status.dump_date.clone().unwrap_or_default();
    let mut media = Vec::new();
    for m in &status.media {
        let prefix = contract::media_prefix(&dd.spec.destination.prefix, &date, m.media_type.as_str());
        let manifest: Option<Manifest> = store
            .get(bucket, &format!("{prefix}{}", contract::MANIFEST))
            .await?
            .and_then(|b| serde_json::from_slice(&b).ok());
        let mut columns = Vec::new();
        if let Some(first) = manifest.as_ref().and_then(|mf| mf.files.first())
            && let Ok(meta) = parquet_footer(store, bucket, &first.key, first.size).await?
        {
            columns = meta
                .file_metadata()
                .schema_descr()
                .columns()
                .iter()
                .map(|c| {
                    let ty = match c.logical_type_ref() {
                        Some(l) => format!("{l:?}"),
                        None => format!("{}", c.physical_type()),
                    };
                    (c.path().string(), ty)
                })
                .collect();
        }
        media.push(MediaCard {
            media_type: m.media_type.to_string(),
            rows: m.rows,
            bytes: m.bytes.unwrap_or_default(),
            files: m.files.unwrap_or_default(),
            columns,
        });
    }
    let key = card_key(dd, status);
    store
        .put(
            bucket,
            &key,
            render(dd, status, &media).into_bytes(),
            "text/markdown; charset=utf-8",
        )
        .await?;
    Ok(format!("s3://{}/{key}", dd.spec.destination.bucket))
}
