//! The `spec.datasetCard` checks: one-line names, bounded texts, a license identifier, a
//! gated-access form whose fields are distinct and typed, and column descriptions of listed
//! media types. Pure, no I/O.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;

use super::{Report, quote};
use crate::card_spec::{DatasetCardSpec, GatedFieldType};
use crate::spec::MediaType;

/// `spec.datasetCard`, given the spec's media types (which column keys may name).
pub(super) fn check_dataset_card(r: &mut Report, card: &DatasetCardSpec, media_types: &[MediaType]) {
    use crate::card_spec::{LICENSE_PATTERN, MAX_CARD_COLUMNS, MAX_CARD_TEXT, MAX_GATED_FIELDS};
    static LICENSE: LazyLock<Regex> = LazyLock::new(|| Regex::new(LICENSE_PATTERN).expect("license pattern"));
    let long = |r: &mut Report, field: &str, text: &str, max: usize| {
        if text.chars().count() > max {
            r.add(
                field,
                format!("is longer than {max} characters"),
                "shorten it, or link to a longer text",
            );
        }
    };
    if let Some(name) = &card.pretty_name {
        if name.trim().is_empty() || name.contains(['\n', '\r']) {
            r.add(
                "spec.datasetCard.prettyName",
                "is empty or spans several lines",
                "use a one-line name, e.g. Openverse images",
            );
        }
        long(r, "spec.datasetCard.prettyName", name, 200);
    }
    if let Some(license) = &card.license {
        r.pattern(
            "spec.datasetCard.license",
            license,
            &LICENSE,
            "a license identifier as the dataset host spells it (cc-by-4.0, odc-by, other)",
        );
    }
    for (field, text) in [
        ("spec.datasetCard.description", &card.description),
        ("spec.datasetCard.terms", &card.terms),
    ] {
        if let Some(text) = text {
            long(r, field, text, MAX_CARD_TEXT);
        }
    }
    if let Some(gated) = &card.gated {
        if gated.prompt.trim().is_empty() {
            r.add("spec.datasetCard.gated.prompt", "is empty", "say what downloaders agree to");
        }
        long(r, "spec.datasetCard.gated.prompt", &gated.prompt, MAX_CARD_TEXT);
        if gated.fields.len() > MAX_GATED_FIELDS {
            r.add(
                "spec.datasetCard.gated.fields",
                format!("has more than {MAX_GATED_FIELDS} fields"),
                "ask for less",
            );
        }
        let mut names = BTreeSet::new();
        for (i, f) in gated.fields.iter().enumerate() {
            let field = format!("spec.datasetCard.gated.fields[{i}]");
            if f.name.trim().is_empty() || f.name.contains(['\n', '\r']) {
                r.add(
                    format!("{field}.name"),
                    "is empty or spans several lines",
                    "use a one-line label, e.g. Affiliation",
                );
            } else if !names.insert(f.name.as_str()) {
                r.add(
                    format!("{field}.name"),
                    format!("{} is used twice", quote(&f.name)),
                    "give each field its own label",
                );
            }
            long(r, &format!("{field}.name"), &f.name, 200);
            match (f.kind == GatedFieldType::Select, f.options.is_empty()) {
                (true, true) => r.add(format!("{field}.options"), "is empty for a select field", "list the choices"),
                (false, false) => r.add(
                    format!("{field}.options"),
                    format!("is set for a {} field", f.kind.as_str()),
                    "remove options, or use type: select",
                ),
                _ => {}
            }
        }
    }
    if card.columns.len() > MAX_CARD_COLUMNS {
        r.add(
            "spec.datasetCard.columns",
            format!("has more than {MAX_CARD_COLUMNS} entries"),
            "describe fewer columns",
        );
    }
    for (key, text) in &card.columns {
        let field = format!("spec.datasetCard.columns[{}]", quote(key));
        if key.is_empty() {
            r.add(&field, "key is empty", "use COLUMN or MEDIA.COLUMN, e.g. image.title");
        } else if let Some((media, _)) = key.split_once('.')
            && !media_types.iter().any(|m| m.as_str() == media)
        {
            r.add(
                &field,
                format!("names media type {} which is not in spec.mediaTypes", quote(media)),
                "use COLUMN for every media type, or MEDIA.COLUMN with a listed media type",
            );
        }
        long(r, &field, text, 2000);
    }
}
