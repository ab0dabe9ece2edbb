//! The dataset card: when a dump succeeds, `PREFIX/DATE/README.md`, a dataset card a dataset
//! host (Hugging Face) reads: YAML front matter (pretty name, license, size category, one
//! config per media type listing exactly its data files, gated-access fields), then the
//! description, how to download (with `--request-payer requester` on a Requester Pays bucket),
//! per media type its columns (name, Parquet type, PostgreSQL type, nullable, description),
//! rows, files, bytes and the SHA-256 of every file, the terms and an "as-is" notice.
//!
//! Every fact comes from what the worker wrote (the manifests and the first file's Parquet
//! schema); `spec.datasetCard` only adds text. [`render`] is pure; [`media_card`] and [`write`]
//! read S3 through [`ObjectStore`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use arrow_schema::{DataType, TimeUnit};
use serde::Serialize;

use crate::api::keys::{card_key, download_command, dump_prefix};
use crate::api::{DataDump, DatasetCardSpec};
use crate::backend::{BackendError, ObjectStore};
use crate::contract::human_bytes;
use crate::contract::{self, Manifest};
use crate::observe::{Footer, bucket_of, parquet_footer};

/// One column as the card shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardColumn {
    /// The column name.
    pub name: String,
    /// The type readers see, in Arrow's names (`string`, `int64`, `timestamp[us, tz=UTC]`,
    /// `list<string>`), from the Parquet schema.
    pub parquet_type: String,
    /// The PostgreSQL type, from the manifest (when the engine reported it).
    pub source_type: Option<String>,
    /// Whether the column may hold NULL (the Parquet field's repetition).
    pub nullable: bool,
    /// `spec.datasetCard.columns`, else the database's `COMMENT ON COLUMN`.
    pub description: Option<String>,
}

/// One data file as the card lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardFile {
    /// The path relative to the card, `MEDIA/MEDIA_01.parquet`.
    pub path: String,
    /// Rows in the file.
    pub rows: Option<u64>,
    /// Size in bytes.
    pub bytes: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

/// What the card says about one media type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaCard {
    /// The media type.
    pub media_type: String,
    /// Rows exported.
    pub rows: u64,
    /// The data files, in order.
    pub files: Vec<CardFile>,
    /// The columns, from the Parquet schema.
    pub columns: Vec<CardColumn>,
    /// The table's description (`COMMENT ON TABLE`, from the manifest).
    pub description: Option<String>,
    /// What wrote the files (`datadump 0.2.0 postgres (2 streams)`).
    pub writer: String,
    /// How the worker read the database (from the manifest), when the engine says.
    pub connection: Option<crate::contract::ConnectionReport>,
}

impl MediaCard {
    /// Total bytes of the files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// The host's size category for a row count.
pub fn size_category(rows: u64) -> &'static str {
    const BOUNDS: [(u64, &str); 10] = [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
        (100_000_000, "10M<n<100M"),
        (1_000_000_000, "100M<n<1B"),
        (10_000_000_000, "1B<n<10B"),
        (100_000_000_000, "10B<n<100B"),
        (1_000_000_000_000, "100B<n<1T"),
    ];
    BOUNDS.iter().find(|(below, _)| rows < *below).map_or("n>1T", |(_, c)| c)
}

/// The front matter, as the host reads it.
#[derive(Serialize)]
struct FrontMatter<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pretty_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    license: Option<&'a str>,
    size_categories: [&'static str; 1],
    configs: Vec<Config>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extra_gated_prompt: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    extra_gated_fields: BTreeMap<&'a str, GatedFieldYaml<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extra_gated_button_content: Option<&'a str>,
}

#[derive(Serialize)]
struct Config {
    config_name: String,
    data_files: Vec<DataFiles>,
}

#[derive(Serialize)]
struct DataFiles {
    split: &'static str,
    path: Vec<String>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum GatedFieldYaml<'a> {
    Plain(&'static str),
    Select {
        #[serde(rename = "type")]
        kind: &'static str,
        options: &'a [String],
    },
}

/// Renders the card for the dump's `date`.
pub fn render(dd: &DataDump, date: &str, media: &[MediaCard]) -> String {
    let card = dd.spec.dataset_card.clone().unwrap_or_default();
    let mut out = front_matter(&card, media);
    write_overview(&mut out, dd, &card, date, media);
    write_download(&mut out, dd, date, media);
    for m in media {
        write_media(&mut out, m);
    }
    if let Some(terms) = &card.terms {
        let _ = writeln!(out, "## Terms\n\n{}\n", terms.trim());
    }
    write_notice(&mut out, media);
    out
}

/// The YAML front matter between `---` lines: name, license, size category, one config per
/// media type listing exactly its files, and the gated-access form.
fn front_matter(card: &DatasetCardSpec, media: &[MediaCard]) -> String {
    let rows: u64 = media.iter().map(|m| m.rows).sum();
    let gated = card.gated.as_ref();
    let front = FrontMatter {
        pretty_name: card.pretty_name.as_deref(),
        license: card.license.as_deref(),
        size_categories: [size_category(rows)],
        configs: media
            .iter()
            .map(|m| Config {
                config_name: m.media_type.clone(),
                data_files: vec![DataFiles {
                    split: "train",
                    path: m.files.iter().map(|f| f.path.clone()).collect(),
                }],
            })
            .collect(),
        extra_gated_prompt: gated.map(|g| g.prompt.as_str()),
        extra_gated_fields: gated
            .iter()
            .flat_map(|g| &g.fields)
            .map(|f| {
                let value = match f.kind {
                    crate::api::GatedFieldType::Select => GatedFieldYaml::Select {
                        kind: "select",
                        options: &f.options,
                    },
                    kind => GatedFieldYaml::Plain(kind.as_str()),
                };
                (f.name.as_str(), value)
            })
            .collect(),
        extra_gated_button_content: gated.and_then(|g| g.button_content.as_deref()),
    };
    format!("---\n{}---\n\n", serde_yaml::to_string(&front).expect("front matter serializes"))
}

/// The title, the description, what was exported (tables, rows, files, bytes) and, for the
/// postgres engine's content-defined chunking, that the files suit deduplicating storage.
fn write_overview(out: &mut String, dd: &DataDump, card: &DatasetCardSpec, date: &str, media: &[MediaCard]) {
    let name = dd.metadata.name.clone().unwrap_or_default();
    let rows: u64 = media.iter().map(|m| m.rows).sum();
    let title = card.pretty_name.clone().unwrap_or_else(|| name.clone());
    let _ = writeln!(out, "# {title}\n");
    if let Some(d) = &card.description {
        let _ = writeln!(out, "{}\n", d.trim());
    }
    let files: usize = media.iter().map(|m| m.files.len()).sum();
    let bytes: u64 = media.iter().map(MediaCard::bytes).sum();
    let compression = format!("{:?}", dd.spec.output.compression).to_lowercase();
    let _ = writeln!(
        out,
        "Exported from PostgreSQL on {date} by datadump-operator (DataDump `{}/{name}`): {} table(s), \
         {rows} rows in {files} {compression} Parquet file(s), {}.\n",
        dd.metadata.namespace.clone().unwrap_or_default(),
        media.len(),
        human_bytes(bytes),
    );
    if dd.spec.engine == crate::api::Engine::Postgres && dd.spec.output.content_defined_chunking != Some(false) {
        out.push_str(
            "The files are written for deduplicating storage: data pages and row groups are cut at \
             content-defined boundaries, so rows that did not change since an earlier dump encode to \
             the same bytes and a deduplicating host (such as Hugging Face's Xet storage) keeps and \
             uploads them once.\n\n",
        );
    }
    if dd.spec.engine == crate::api::Engine::Postgres {
        let o = &dd.spec.output;
        let mut text = Vec::new();
        if o.time.unwrap_or_default() == crate::api::TimeOfDay::String {
            text.push("`time` columns hold fixed-width text `HH:MM:SS.ffffff`");
        }
        if o.wide_numeric.unwrap_or_default() == crate::api::WideNumeric::String {
            text.push("`numeric` columns of more than 38 digits hold the exact decimal text");
        }
        if !text.is_empty() {
            let _ = writeln!(
                out,
                "So that every file opens in pyarrow, pandas, DuckDB, polars, Spark and `datasets`, {}.\n",
                text.join(", and ")
            );
        }
    }
}

/// `## Download`: the Requester Pays notice when the bucket has it, the download command and
/// how to load a table with `datasets`.
fn write_download(out: &mut String, dd: &DataDump, date: &str, media: &[MediaCard]) {
    out.push_str("## Download\n\n");
    if dd.spec.destination.requester_pays {
        let _ = writeln!(
            out,
            "The bucket is **Requester Pays**: you pay for the requests and the transfer, and every \
             request must say so (`--request-payer requester` with the AWS CLI, \
             `RequestPayer=\"requester\"` with boto3).\n"
        );
    }
    let _ = writeln!(out, "```sh\n{}\n```\n", download_command(dd, Some(date)));
    let first = media.first().map(|m| m.media_type.as_str()).unwrap_or("MEDIA");
    let _ = writeln!(
        out,
        "Each table is a config of this card; from a local copy:\n\n```python\nfrom datasets import load_dataset\n\
         ds = load_dataset(\"./{date}\", \"{first}\", split=\"train\")\n```\n"
    );
}

/// One media type's section: its description, totals and writer, how the worker read the
/// database, the columns table and the files table.
fn write_media(out: &mut String, m: &MediaCard) {
    let _ = writeln!(out, "## {}\n", m.media_type);
    if let Some(d) = &m.description {
        let _ = writeln!(out, "{}\n", d.trim());
    }
    let _ = writeln!(
        out,
        "{} rows in {} file(s), {} ({} bytes), written by {}.\n",
        m.rows,
        m.files.len(),
        human_bytes(m.bytes()),
        m.bytes(),
        m.writer
    );
    match &m.connection {
        Some(c) if c.tls => {
            let _ = writeln!(out, "Read from the database over {}.\n", c.summary());
        }
        Some(c) => {
            let _ = writeln!(out, "Read from the database without encryption (sslmode={}).\n", c.sslmode);
        }
        None => {}
    }
    out.push_str("| column | type | PostgreSQL type | nullable | description |\n|---|---|---|---|---|\n");
    for c in &m.columns {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            c.name,
            cell(&c.parquet_type),
            c.source_type.as_deref().map(cell).unwrap_or_default(),
            if c.nullable { "yes" } else { "no" },
            c.description.as_deref().map(cell).unwrap_or_default()
        );
    }
    out.push_str("\n| file | rows | bytes | SHA-256 |\n|---|---:|---:|---|\n");
    for f in &m.files {
        let rows = f.rows.map(|r| r.to_string()).unwrap_or_default();
        let _ = writeln!(out, "| `{}` | {rows} | {} | `{}` |", f.path, f.bytes, f.sha256);
    }
    out.push('\n');
}

/// `## Notice`: provided as-is, and whose reuse terms apply (the records' `license…` columns
/// when there are any).
fn write_notice(out: &mut String, media: &[MediaCard]) {
    let license_columns: Vec<String> = media
        .iter()
        .flat_map(|m| m.columns.iter().map(|c| c.name.as_str()))
        .filter(|c| c.starts_with("license"))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|c| format!("`{c}`"))
        .collect();
    out.push_str("## Notice\n\nThis dataset is provided as-is, without warranty of any kind. ");
    if license_columns.is_empty() {
        out.push_str("Each record's reuse terms are those of its source; check them before reuse.\n");
    } else {
        let _ = writeln!(
            out,
            "Each record carries its own license: read the {} field(s) of every record before reuse.",
            license_columns.join(", ")
        );
    }
}

/// Text as one Markdown table cell: no line breaks, no `|`.
fn cell(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}

/// An Arrow type in the names readers print (`string`, `int64`, `list<string>`).
pub fn type_name(t: &DataType) -> String {
    let unit = |u: &TimeUnit| match u {
        TimeUnit::Second => "s",
        TimeUnit::Millisecond => "ms",
        TimeUnit::Microsecond => "us",
        TimeUnit::Nanosecond => "ns",
    };
    match t {
        DataType::Boolean => "bool".into(),
        DataType::Utf8 | DataType::Utf8View => "string".into(),
        DataType::LargeUtf8 => "large_string".into(),
        DataType::Binary | DataType::BinaryView => "binary".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Timestamp(u, None) => format!("timestamp[{}]", unit(u)),
        DataType::Timestamp(u, Some(tz)) => format!("timestamp[{}, tz={tz}]", unit(u)),
        DataType::Time32(u) => format!("time32[{}]", unit(u)),
        DataType::Time64(u) => format!("time64[{}]", unit(u)),
        DataType::Decimal128(p, s) => format!("decimal128({p}, {s})"),
        DataType::Decimal256(p, s) => format!("decimal256({p}, {s})"),
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) => format!("list<{}>", type_name(f.data_type())),
        other => other.to_string().to_lowercase(),
    }
}

/// The card's facts about one finished media type: its manifest and the first file's schema
/// (`None` when the manifest is missing or unreadable).
pub async fn media_card<S: ObjectStore>(store: &S, dd: &DataDump, date: &str, media_type: &str) -> Result<Option<MediaCard>, BackendError> {
    let bucket = bucket_of(dd);
    let prefix = contract::media_prefix(&dd.spec.destination.prefix, date, media_type);
    let Some(manifest) = store
        .get(bucket, &format!("{prefix}{}", contract::MANIFEST))
        .await?
        .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok())
    else {
        return Ok(None);
    };
    let mut columns = Vec::new();
    if let Some(first) = manifest.files.first()
        && let Footer::Read(meta) = parquet_footer(store, bucket, &first.key, first.size).await?
        && let Ok(schema) =
            parquet::arrow::parquet_to_arrow_schema(meta.file_metadata().schema_descr(), meta.file_metadata().key_value_metadata())
    {
        let spec = dd.spec.dataset_card.clone().unwrap_or_default();
        columns = schema
            .fields()
            .iter()
            .map(|f| {
                let from_db = manifest.columns.iter().find(|c| &c.name == f.name());
                CardColumn {
                    name: f.name().clone(),
                    parquet_type: type_name(f.data_type()),
                    source_type: from_db.map(|c| c.source_type.clone()),
                    nullable: f.is_nullable(),
                    description: DatasetCardSpec::column_description(&spec, media_type, f.name())
                        .map(str::to_string)
                        .or_else(|| from_db.and_then(|c| c.description.clone())),
                }
            })
            .collect();
    }
    let dump = dump_prefix(dd, date);
    Ok(Some(MediaCard {
        media_type: media_type.to_string(),
        rows: manifest.rows.unwrap_or_else(|| manifest.files.iter().filter_map(|f| f.rows).sum()),
        files: manifest
            .files
            .iter()
            .map(|f| CardFile {
                path: f.key.strip_prefix(&dump).unwrap_or(&f.key).to_string(),
                rows: f.rows,
                bytes: f.size,
                sha256: f.sha256.clone(),
            })
            .collect(),
        columns,
        description: manifest.description.clone(),
        writer: manifest.writer.clone(),
        connection: manifest.connection.clone(),
    }))
}

/// Gathers what the card needs from S3 and writes it; returns the card's `s3://` URI.
pub async fn write<S: ObjectStore>(store: &S, dd: &DataDump, date: &str) -> Result<String, BackendError> {
    let mut media = Vec::new();
    for m in &dd.spec.media_types {
        media.extend(media_card(store, dd, date, m.as_str()).await?);
    }
    let key = card_key(dd, date);
    store
        .put(
            bucket_of(dd),
            &key,
            render(dd, date, &media).into_bytes(),
            "text/markdown; charset=utf-8",
        )
        .await?;
    Ok(format!("s3://{}/{key}", dd.spec.destination.bucket))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(extra: &str) -> DataDump {
        serde_yaml::from_str(&format!(
            "apiVersion: datadump.dev/v1alpha1\nkind: DataDump\nmetadata: {{name: catalog, namespace: data}}\nspec:\n  mediaTypes: [image]\n  destination: {{bucket: b, requesterPays: true}}\n  database: {{ssmParameterName: /p}}\n{extra}"
        ))
        .unwrap()
    }

    fn image() -> MediaCard {
        MediaCard {
            media_type: "image".into(),
            rows: 12_345,
            files: vec![CardFile {
                path: "image/image_01.parquet".into(),
                rows: Some(12_345),
                bytes: 2048,
                sha256: "ab".repeat(32),
            }],
            columns: vec![
                CardColumn {
                    name: "license".into(),
                    parquet_type: "string".into(),
                    source_type: Some("character varying(50)".into()),
                    nullable: false,
                    description: Some("The CC license\nslug | short".into()),
                },
                CardColumn {
                    name: "tags".into(),
                    parquet_type: "list<string>".into(),
                    source_type: None,
                    nullable: true,
                    description: None,
                },
            ],
            description: Some("Openly licensed images".into()),
            writer: "datadump 0.2.0 postgres (1 stream)".into(),
            connection: Some(crate::contract::ConnectionReport {
                sslmode: "verify-full".into(),
                tls: true,
                tls_version: Some("TLSv1.3".into()),
                cipher: Some("TLS_AES_256_GCM_SHA384".into()),
                server_certificate: crate::contract::CertificateCheck::CaAndHostName,
                client_certificate: false,
            }),
        }
    }

    #[test]
    fn the_card_lists_exactly_the_manifest_files_and_says_how_to_download() {
        let dd = dump(
            "  datasetCard:\n    prettyName: \"Openverse: images\"\n    license: other\n    terms: Each record has its own license.\n    gated:\n      prompt: \"Agree: no misuse\"\n      fields:\n      - {name: Affiliation}\n      - {name: Use, type: select, options: [research, other]}\n",
        );
        let card = render(&dd, "2026-11-01", &[image()]);
        let (front, body) = card.trim_start_matches("---\n").split_once("---\n").unwrap();
        let yaml: serde_yaml::Value = serde_yaml::from_str(front).unwrap();
        assert_eq!(yaml["pretty_name"], "Openverse: images");
        assert_eq!(yaml["license"], "other");
        assert_eq!(yaml["size_categories"][0], "10K<n<100K");
        assert_eq!(yaml["configs"][0]["config_name"], "image");
        assert_eq!(yaml["configs"][0]["data_files"][0]["path"][0], "image/image_01.parquet");
        assert_eq!(yaml["extra_gated_prompt"], "Agree: no misuse");
        assert_eq!(yaml["extra_gated_fields"]["Affiliation"], "text");
        assert_eq!(yaml["extra_gated_fields"]["Use"]["options"][1], "other");
        assert!(body.starts_with("\n# Openverse: images\n"), "{body}");
        assert!(
            body.contains("aws s3 cp --recursive --request-payer requester s3://b/data-dump/2026-11-01/ ./2026-11-01/"),
            "{body}"
        );
        assert!(
            body.contains("| `license` | string | character varying(50) | no | The CC license slug \\| short |"),
            "{body}"
        );
        assert!(body.contains("| `tags` | list<string> |  | yes |  |"), "{body}");
        assert!(
            body.contains(&format!("| `image/image_01.parquet` | 12345 | 2048 | `{}` |", "ab".repeat(32))),
            "{body}"
        );
        assert!(
            body.contains("Read from the database over TLSv1.3 (TLS_AES_256_GCM_SHA384), server certificate verified against the CA and host name (sslmode=verify-full)."),
            "{body}"
        );
        assert!(body.contains("written for deduplicating storage"), "{body}");
        let plain = dump("  output: {contentDefinedChunking: false}\n");
        assert!(!render(&plain, "2026-11-01", &[image()]).contains("deduplicating"));
        assert!(body.contains("## Terms\n\nEach record has its own license."), "{body}");
        assert!(body.contains("read the `license` field(s)"), "{body}");
    }

    #[test]
    fn size_categories_follow_the_hosts_bounds() {
        assert_eq!(size_category(0), "n<1K");
        assert_eq!(size_category(999), "n<1K");
        assert_eq!(size_category(1_000), "1K<n<10K");
        assert_eq!(size_category(70_000), "10K<n<100K");
        assert_eq!(size_category(5_000_000_000_000), "n>1T");
    }

    #[test]
    fn type_names_are_the_ones_readers_print() {
        use std::sync::Arc;
        assert_eq!(type_name(&DataType::Utf8), "string");
        assert_eq!(type_name(&DataType::Int64), "int64");
        assert_eq!(
            type_name(&DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))),
            "timestamp[us, tz=UTC]"
        );
        assert_eq!(type_name(&DataType::Decimal128(12, 2)), "decimal128(12, 2)");
        let item = Arc::new(arrow_schema::Field::new("element", DataType::Utf8, true));
        assert_eq!(type_name(&DataType::List(item)), "list<string>");
    }
}
