//! The dataset card: when a dump succeeds, `PREFIX/DATE/README.md` with Hugging Face
//! dataset-card front matter (one config per media type with its Parquet files), each media
//! type's columns and types read from the Parquet schema with the descriptions the worker found
//! in the database (`COMMENT ON`, via the manifest), rows and size, an "as-is" notice and
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
    /// Column descriptions (`COMMENT ON COLUMN`, from the manifest) by column name.
    pub descriptions: std::collections::BTreeMap<String, String>,
    /// The table's description (`COMMENT ON TABLE`, from the manifest).
    pub description: Option<String>,
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
        if let Some(d) = &m.description {
            let _ = writeln!(out, "{}\n", one_line(d));
        }
        out.push_str("| column | type | description |\n|---|---|---|\n");
        for (c, t) in &m.columns {
            // a list's leaf is `tags.list.element`: the description is the column's
            let top = c.split('.').next().unwrap_or(c);
            let d = m.descriptions.get(top).map(|d| one_line(d)).unwrap_or_default();
            let _ = writeln!(out, "| `{c}` | {t} | {d} |");
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

/// A description as one Markdown table cell: no line breaks, no `|`.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
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
            descriptions: manifest
                .iter()
                .flat_map(|mf| mf.columns.iter())
                .filter_map(|c| Some((c.name.clone(), c.description.clone()?)))
                .collect(),
            description: manifest.and_then(|mf| mf.description),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_carry_the_databases_descriptions_as_one_line_cells() {
        let dd: DataDump = serde_yaml::from_str(
            "apiVersion: datadump.dev/v1alpha1\nkind: DataDump\nmetadata: {name: catalog}\nspec:\n  mediaTypes: [image]\n  destination: {bucket: b}\n  database: {ssmParameterName: /p}\n",
        )
        .unwrap();
        let status = DataDumpStatus {
            dump_date: Some("2026-11-01".into()),
            ..Default::default()
        };
        let media = [MediaCard {
            media_type: "image".into(),
            rows: Some(3),
            bytes: 10,
            files: 1,
            columns: vec![
                ("license".into(), "String".into()),
                ("tags.list.element".into(), "String".into()),
                ("id".into(), "INT32".into()),
            ],
            descriptions: [
                ("license".to_string(), "The CC license\nslug | short".to_string()),
                ("tags".to_string(), "Tags from the source".to_string()),
            ]
            .into(),
            description: Some("Openly licensed images".into()),
        }];
        let card = render(&dd, &status, &media);
        assert!(card.contains("Openly licensed images\n"), "{card}");
        assert!(card.contains("| `license` | String | The CC license slug \\| short |"), "{card}");
        assert!(card.contains("| `tags.list.element` | String | Tags from the source |"), "{card}");
        assert!(card.contains("| `id` | INT32 |  |"), "{card}");
    }
}
