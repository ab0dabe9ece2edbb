//! SQL text the engine builds: the rendered query, the `::text` wrapper for columns read as
//! text, the ctid-range rewrite for parallel streams, and the check that a plan is a plain
//! scan of one table. Pure, no I/O.

use serde_json::Value;

use datadump_contract::MEDIA_TYPE_PLACEHOLDER as PLACEHOLDER;
#[cfg(test)]
use datadump_contract::is_identifier;

/// `"name"` with inner quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The template with `{media_type}` replaced, without trailing `;` and blanks (COPY takes a
/// bare query).
pub fn render(template: &str, media_type: &str) -> String {
    strip(&template.replace(PLACEHOLDER, media_type))
}

fn strip(q: &str) -> String {
    q.trim_end_matches(|c: char| c == ';' || c.is_whitespace()).to_owned()
}

/// `SELECT "a", "b"::text, … FROM (query) AS q` when some columns are read as text, else the
/// query itself.
pub fn with_text_casts(query: &str, names: &[String], as_text: &[bool]) -> String {
    if !as_text.iter().any(|t| *t) {
        return query.to_owned();
    }
    let cols: Vec<String> = names
        .iter()
        .zip(as_text)
        .map(|(n, t)| {
            if *t {
                format!("{}::text AS {}", quote_ident(n), quote_ident(n))
            } else {
                quote_ident(n)
            }
        })
        .collect();
    format!("SELECT {} FROM ({query}\n) AS datadump_q", cols.join(", "))
}

/// `COPY (query) TO STDOUT (FORMAT binary)`.
pub fn copy_statement(query: &str) -> String {
    format!("COPY ({query}\n) TO STDOUT (FORMAT binary)")
}

/// Words that may follow a table in a FROM clause without being its alias.
const NOT_ALIAS: &[&str] = &[
    "where",
    "group",
    "order",
    "limit",
    "offset",
    "fetch",
    "for",
    "union",
    "intersect",
    "except",
    "window",
    "having",
    "join",
    "inner",
    "left",
    "right",
    "full",
    "cross",
    "natural",
    "on",
    "using",
    "tablesample",
];

/// The template cut around its only `{media_type}`, which must directly follow `FROM`:
/// returns a function rendering the query with the table replaced by a ctid-range subquery,
/// or why the template cannot be split.
pub fn ctid_splitter(template: &str, table: &str) -> Result<impl Fn(u64, Option<u64>) -> String, String> {
    let template = strip(template);
    let words: Vec<String> = template
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    // An index scan can return rows in ORDER BY order without a Sort node: keep one stream.
    if words.windows(2).any(|w| w[0] == "order" && w[1] == "by") {
        return Err("the query has ORDER BY".into());
    }
    if template.matches(PLACEHOLDER).count() != 1 {
        return Err("the query template names {media_type} more than once".into());
    }
    let at = template.find(PLACEHOLDER).unwrap_or_default();
    let (before, after) = (&template[..at], &template[at + PLACEHOLDER.len()..]);
    let prev = before.trim_end();
    let from_ok = prev.len() >= 4
        && prev[prev.len() - 4..].eq_ignore_ascii_case("from")
        && before.len() > prev.len()
        && !prev[..prev.len() - 4].ends_with(|c: char| c.is_alphanumeric() || c == '_');
    if !from_ok {
        return Err("{media_type} does not directly follow FROM".into());
    }
    let next: String = after
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '"')
        .collect::<String>()
        .to_ascii_lowercase();
    let user_alias = !next.is_empty() && !NOT_ALIAS.contains(&next.as_str());
    let (before, after, table) = (before.to_owned(), after.to_owned(), table.to_owned());
    Ok(move |start: u64, end: Option<u64>| {
        let upper = end.map(|e| format!(" AND ctid < '({e},0)'::tid")).unwrap_or_default();
        let alias = if user_alias { String::new() } else { format!(" AS {table}") };
        format!("{before}(SELECT * FROM {table} WHERE ctid >= '({start},0)'::tid{upper}){alias}{after}")
    })
}

/// `n` contiguous block ranges covering `[0, blocks)`; the last one is open-ended.
pub fn block_ranges(blocks: u64, n: usize) -> Vec<(u64, Option<u64>)> {
    let n = n.max(1) as u64;
    (0..n)
        .map(|i| (blocks * i / n, (i + 1 < n).then(|| blocks * (i + 1) / n)))
        .collect()
}

/// Plan nodes that neither combine, reorder nor drop rows across the table.
const SCAN_NODES: &[&str] = &[
    "Seq Scan",
    "Index Scan",
    "Index Only Scan",
    "Bitmap Heap Scan",
    "Bitmap Index Scan",
    "BitmapAnd",
    "BitmapOr",
    "Tid Scan",
    "Tid Range Scan",
    "Result",
    "Gather",
];

/// Checks the output of `EXPLAIN (FORMAT JSON)`: only scan, filter and result nodes, every
/// scanned relation is `table`, and at least one node scans it. `Err` says why not.
pub fn plain_scan(explain_json: &str, table: &str) -> Result<(), String> {
    let v: Value = serde_json::from_str(explain_json).map_err(|e| format!("unreadable EXPLAIN output: {e}"))?;
    let plan = v.get(0).and_then(|p| p.get("Plan")).ok_or("EXPLAIN output has no plan")?;
    let mut scans = 0;
    walk(plan, table, &mut scans)?;
    if scans == 0 {
        return Err(format!("the plan does not scan {table}"));
    }
    Ok(())
}

fn walk(node: &Value, table: &str, scans: &mut usize) -> Result<(), String> {
    let kind = node.get("Node Type").and_then(Value::as_str).unwrap_or("?");
    if !SCAN_NODES.contains(&kind) {
        return Err(format!("the plan has a {kind} node"));
    }
    if let Some(rel) = node.get("Relation Name").and_then(Value::as_str) {
        if rel != table {
            return Err(format!("the plan reads {rel}"));
        }
        *scans += 1;
    }
    for child in node.get("Plans").and_then(Value::as_array).into_iter().flatten() {
        walk(child, table, scans)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitter_rewrites_the_table_reference() {
        let s = ctid_splitter("SELECT * FROM {media_type} WHERE id > 3;", "image").unwrap();
        assert_eq!(
            s(0, Some(10)),
            "SELECT * FROM (SELECT * FROM image WHERE ctid >= '(0,0)'::tid AND ctid < '(10,0)'::tid) AS image WHERE id > 3"
        );
        assert_eq!(
            s(10, None),
            "SELECT * FROM (SELECT * FROM image WHERE ctid >= '(10,0)'::tid) AS image WHERE id > 3"
        );
        let s = ctid_splitter("select i.id from {media_type} i", "image").unwrap();
        assert_eq!(s(1, None), "select i.id from (SELECT * FROM image WHERE ctid >= '(1,0)'::tid) i");
        let s = ctid_splitter("SELECT * FROM {media_type}", "image").unwrap();
        assert_eq!(
            s(0, None),
            "SELECT * FROM (SELECT * FROM image WHERE ctid >= '(0,0)'::tid) AS image"
        );
        assert!(ctid_splitter("SELECT '{media_type}', * FROM {media_type}", "image").is_err());
        assert!(ctid_splitter("SELECT * FROM public.{media_type}", "image").is_err());
        assert!(ctid_splitter("SELECT * FROM x JOIN {media_type} USING (id)", "image").is_err());
        assert!(ctid_splitter("SELECT * FROMx {media_type}", "image").is_err());
        assert!(ctid_splitter("SELECT * FROM {media_type} Order\n By id", "image").is_err());
    }

    #[test]
    fn ranges_cover_every_block() {
        assert_eq!(block_ranges(10, 3), vec![(0, Some(3)), (3, Some(6)), (6, None)]);
        assert_eq!(block_ranges(0, 2), vec![(0, Some(0)), (0, None)]);
        assert_eq!(block_ranges(7, 1), vec![(0, None)]);
    }

    #[test]
    fn plain_scans_only() {
        let scan = r#"[{"Plan":{"Node Type":"Seq Scan","Relation Name":"image","Filter":"(id > 3)"}}]"#;
        assert_eq!(plain_scan(scan, "image"), Ok(()));
        let limit = r#"[{"Plan":{"Node Type":"Limit","Plans":[{"Node Type":"Seq Scan","Relation Name":"image"}]}}]"#;
        assert_eq!(plain_scan(limit, "image"), Err("the plan has a Limit node".into()));
        let other = r#"[{"Plan":{"Node Type":"Seq Scan","Relation Name":"audio"}}]"#;
        assert_eq!(plain_scan(other, "image"), Err("the plan reads audio".into()));
        let none = r#"[{"Plan":{"Node Type":"Result"}}]"#;
        assert!(plain_scan(none, "image").is_err());
    }

    #[test]
    fn casts_and_identifiers() {
        let names = vec!["a".to_owned(), "We\"ird".to_owned()];
        assert_eq!(
            with_text_casts("SELECT 1", &names, &[false, true]),
            "SELECT \"a\", \"We\"\"ird\"::text AS \"We\"\"ird\" FROM (SELECT 1\n) AS datadump_q"
        );
        assert_eq!(with_text_casts("SELECT 1", &names, &[false, false]), "SELECT 1");
        assert!(is_identifier("image_2") && !is_identifier("Image") && !is_identifier("2x"));
        assert_eq!(render("SELECT * FROM {media_type} ;\n", "image"), "SELECT * FROM image");
    }
}
