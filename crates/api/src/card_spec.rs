//! `spec.datasetCard`: what the publisher adds to the dataset card the controller writes next to
//! a finished dump (`PREFIX/DATE/README.md`). Everything here is optional; the card's facts
//! (files, rows, sizes, checksums, column types) always come from what the worker wrote, never
//! from these fields. Pure data, no I/O; rules in [`crate::validate`].

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// License identifiers as dataset hosts spell them (`cc-by-4.0`, `odc-by`, `other`).
pub const LICENSE_PATTERN: &str = "^[a-z0-9][a-z0-9.+-]{0,63}$";
/// The longest free text (description, terms, gated prompt), in characters.
pub const MAX_CARD_TEXT: usize = 16_384;
/// The most column descriptions.
pub const MAX_CARD_COLUMNS: usize = 512;
/// The most gated-access fields.
pub const MAX_GATED_FIELDS: usize = 16;

/// The dataset card's own text and access terms.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatasetCardSpec {
    /// A human-readable name (the card's `pretty_name` and title), e.g. `Openverse images`.
    /// Default: the DataDump's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 200))]
    pub pretty_name: Option<String>,

    /// What the dataset is, in Markdown; shown under the title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16384))]
    pub description: Option<String>,

    /// The dataset's license as the dataset host names it (`license:` front matter), e.g.
    /// `cc-by-4.0`, or `other` when each record carries its own license (then say so in
    /// `terms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = LICENSE_PATTERN))]
    pub license: Option<String>,

    /// Terms of use, in Markdown: the card's "Terms" section (e.g. that each record's own
    /// license applies and where to find it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16384))]
    pub terms: Option<String>,

    /// Ask downloaders to accept terms before access (the host's gated access): written as
    /// `extra_gated_prompt` / `extra_gated_fields` front matter. Turning gating on is done on
    /// the host; this is what it shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gated: Option<GatedAccess>,

    /// Column descriptions that replace the database's `COMMENT ON COLUMN` text in the card.
    /// Keys are `COLUMN` (every media type) or `MEDIA.COLUMN` (one media type, wins over
    /// `COLUMN`); a key naming no exported column is ignored.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 512))]
    pub columns: BTreeMap<String, String>,
}

/// What the dataset host asks before granting access.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatedAccess {
    /// The text shown above the form (`extra_gated_prompt`), e.g. the terms to accept.
    #[schemars(length(min = 1, max = 16384))]
    pub prompt: String,

    /// The form's fields (`extra_gated_fields`), in order; at most 16.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), extend("x-kubernetes-list-type" = "atomic"))]
    pub fields: Vec<GatedField>,

    /// The submit button's label (`extra_gated_button_content`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100))]
    pub button_content: Option<String>,
}

/// One field of the gated-access form.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("(self.type == 'select') == (has(self.options) && size(self.options) > 0)").message("spec.datasetCard.gated.fields[].options: a select field needs options and other fields take none"))]
pub struct GatedField {
    /// The label, e.g. `Affiliation` or `I agree to use this dataset for non-commercial use ONLY`.
    #[schemars(length(min = 1, max = 200))]
    pub name: String,

    /// The input: `text`, `checkbox`, `date_picker`, `country` or `select`.
    #[serde(rename = "type", default)]
    pub kind: GatedFieldType,

    /// The choices of a `select` field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), inner(length(min = 1, max = 200)))]
    pub options: Vec<String>,
}

/// The input kinds a dataset host's gated form offers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GatedFieldType {
    /// Free text.
    #[default]
    Text,
    /// A box to tick.
    Checkbox,
    /// A date.
    DatePicker,
    /// A country list.
    Country,
    /// One of `options`.
    Select,
}

impl GatedFieldType {
    /// The front-matter name.
    pub fn as_str(self) -> &'static str {
        match self {
            GatedFieldType::Text => "text",
            GatedFieldType::Checkbox => "checkbox",
            GatedFieldType::DatePicker => "date_picker",
            GatedFieldType::Country => "country",
            GatedFieldType::Select => "select",
        }
    }
}

impl DatasetCardSpec {
    /// The description for `column` of `media_type`: `MEDIA.COLUMN`, else `COLUMN`.
    pub fn column_description(&self, media_type: &str, column: &str) -> Option<&str> {
        self.columns
            .get(&format!("{media_type}.{column}"))
            .or_else(|| self.columns.get(column))
            .map(String::as_str)
    }
}
