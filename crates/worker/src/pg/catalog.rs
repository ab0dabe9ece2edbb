//! What the first connection learns before any COPY: the query's output columns and how each
//! is decoded, the catalog facts of the table it reads (comment, row estimate, size, NOT NULL
//! columns), whether the query is a plain scan of that table, and how it splits into ctid
//! block ranges. I/O: queries on the first connection (inside its read-only transaction).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use tokio_postgres::{Client, Statement};

use super::types::{ColumnType, TypeChoices};
use super::{ColumnInfo, EngineError, sql};
use crate::sink::Progress;

/// Whether the query is a plain scan of the table (only scan, filter and result nodes), which
/// is what makes NOT NULL columns trustworthy and ctid ranges possible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum ScanCheck {
    /// The plan only scans the table.
    PlainScan,
    /// It is not a plain scan of the table, and why (a plan node, another relation, no table).
    NotPlain(String),
}

impl ScanCheck {
    /// True for [`ScanCheck::PlainScan`].
    pub(super) fn is_plain(&self) -> bool {
        matches!(self, ScanCheck::PlainScan)
    }
}

/// How the query is read: in ctid block ranges by several streams, or by one stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Split {
    /// One query per stream, each reading a range of the table's blocks.
    Ranges(Vec<StreamQuery>),
    /// One stream reads the whole query, and why it is not split.
    OneStream(String),
}

/// The query one stream runs, and where it is for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct StreamQuery {
    /// The SQL, before the text casts and the COPY around it.
    pub sql: String,
    /// Added to value errors after the row number, e.g. ` (stream 2 of 4, ctid blocks 10..20)`;
    /// empty for a single stream.
    pub place: String,
}

/// What the catalog says of the table the query reads.
#[derive(Debug)]
pub(super) struct TableFacts {
    /// `COMMENT ON TABLE`.
    pub description: Option<String>,
    /// The size in blocks, for a table or materialized view.
    pub blocks: Option<u64>,
    /// Whether the query is a plain scan of it.
    pub scan: ScanCheck,
}

/// The output columns, as the streams decode and write them.
pub(super) struct OutputColumns {
    /// The column names, in order.
    pub names: Vec<String>,
    /// How each column is decoded.
    pub column_types: Vec<ColumnType>,
    /// Which columns the query must cast to text (no native decoding).
    pub as_text: Vec<bool>,
    /// What the summary and the manifest say of each column.
    pub info: Vec<ColumnInfo>,
    /// The Arrow schema, with each column's PostgreSQL type and comment, and the table's.
    pub schema: SchemaRef,
}

/// Prepares the query and checks that it returns columns, each with its own name.
pub(super) async fn prepare_query(c: &Client, query: &str) -> Result<Statement, EngineError> {
    let statement = c.prepare(query).await.map_err(EngineError::db("the query"))?;
    if statement.columns().is_empty() {
        return Err(EngineError::Query("the query returns no columns".into()));
    }
    let names: Vec<String> = statement.columns().iter().map(|c| c.name().to_owned()).collect();
    check_unique(&names)?;
    Ok(statement)
}

/// Fails when two output columns share a name.
fn check_unique(names: &[String]) -> Result<(), EngineError> {
    let mut seen = HashMap::new();
    let mut dups = Vec::new();
    for n in names {
        let count = seen.entry(n.as_str()).or_insert(0);
        *count += 1;
        if *count == 2 {
            dups.push(format!("{n:?}"));
        }
    }
    if dups.is_empty() {
        return Ok(());
    }
    Err(EngineError::Query(format!(
        "the query returns more than one column named {}; give each output column its own name with AS in spec.query",
        dups.join(", ")
    )))
}

/// Reads the table's row estimate (into `progress`), comment and size in blocks, and checks
/// whether `query` is a plain scan of it. Without a table, nothing is known.
pub(super) async fn read_table_facts(c: &Client, query: &str, table: Option<&str>, progress: &Progress) -> Result<TableFacts, EngineError> {
    let mut facts = TableFacts {
        description: None,
        blocks: None,
        scan: ScanCheck::NotPlain("no table given".to_owned()),
    };
    let Some(t) = table else {
        return Ok(facts);
    };
    let row = c
        .query_opt(
            "SELECT c.relkind::text, c.reltuples::float8, obj_description(c.oid, 'pg_class'), \
             pg_relation_size(c.oid) / current_setting('block_size')::bigint \
             FROM pg_class c WHERE c.oid = to_regclass($1)",
            &[&t],
        )
        .await
        .map_err(EngineError::db("reading the table's catalog entry"))?;
    let Some(row) = row else {
        facts.scan = ScanCheck::NotPlain(format!("no relation named {t}"));
        return Ok(facts);
    };
    let relkind: String = row.get(0);
    let reltuples: f64 = row.get(1);
    facts.description = row.get(2);
    if reltuples > 0.0 {
        progress
            .estimated_rows
            .store(reltuples as u64, std::sync::atomic::Ordering::Relaxed);
    }
    facts.scan = if relkind == "r" || relkind == "m" {
        facts.blocks = Some(row.get::<_, i64>(3).max(0) as u64);
        explain_plain_scan(c, query, t).await?
    } else {
        ScanCheck::NotPlain(format!("{t} is not a plain table (relkind {relkind})"))
    };
    Ok(facts)
}

/// Asks `EXPLAIN (FORMAT JSON)` whether the plan of `query` is a plain scan of `table`.
async fn explain_plain_scan(c: &Client, query: &str, table: &str) -> Result<ScanCheck, EngineError> {
    let msgs = c
        .simple_query(&format!("EXPLAIN (FORMAT JSON) {query}"))
        .await
        .map_err(EngineError::db("EXPLAIN of the query"))?;
    let text = msgs.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
        _ => None,
    });
    Ok(match sql::plain_scan(text.as_deref().unwrap_or(""), table) {
        Ok(()) => ScanCheck::PlainScan,
        Err(why) => ScanCheck::NotPlain(why),
    })
}

/// Reads each output column's PostgreSQL type text, NOT NULL and comment, and chooses its
/// decoding: native where [`ColumnType::of`] has one, else PostgreSQL's text output. A column
/// is NOT NULL only when it is declared so and the query is a plain scan of its table.
pub(super) async fn describe_columns(
    c: &Client,
    statement: &Statement,
    facts: &TableFacts,
    choices: TypeChoices,
) -> Result<OutputColumns, EngineError> {
    let cols = statement.columns();
    let oids: Vec<u32> = cols.iter().map(|c| c.type_().oid()).collect();
    let typmods: Vec<i32> = cols.iter().map(|c| c.type_modifier()).collect();
    let rels: Vec<u32> = cols.iter().map(|c| c.table_oid().unwrap_or(0)).collect();
    let atts: Vec<i16> = cols.iter().map(|c| c.column_id().unwrap_or(0)).collect();
    let rows = c
        .query(
            "SELECT format_type(u.t, u.m), coalesce(a.attnotnull, false), col_description(a.attrelid, a.attnum) \
             FROM unnest($1::oid[], $2::int4[], $3::oid[], $4::int2[]) WITH ORDINALITY AS u(t, m, rel, att, i) \
             LEFT JOIN pg_attribute a ON a.attrelid = u.rel AND a.attnum = u.att AND u.att > 0 AND NOT a.attisdropped \
             ORDER BY u.i",
            &[&oids, &typmods, &rels, &atts],
        )
        .await
        .map_err(EngineError::db("reading column types"))?;
    let names: Vec<String> = cols.iter().map(|c| c.name().to_owned()).collect();
    let mut column_types = Vec::with_capacity(cols.len());
    let mut as_text = Vec::with_capacity(cols.len());
    let mut info = Vec::with_capacity(cols.len());
    let mut fields = Vec::with_capacity(cols.len());
    for (i, row) in rows.iter().enumerate() {
        let native = ColumnType::of(oids[i], typmods[i], choices);
        as_text.push(native.is_none());
        let column_type = native.unwrap_or(ColumnType::Text);
        let column = ColumnInfo {
            name: names[i].clone(),
            pg_type: row.get(0),
            parquet_type: column_type.parquet_type(),
            nullable: !(facts.scan.is_plain() && row.get::<_, bool>(1)),
            description: row.get(2),
        };
        let mut meta = HashMap::from([("pg_type".to_owned(), column.pg_type.clone())]);
        if let Some(d) = &column.description {
            meta.insert("description".to_owned(), d.clone());
        }
        fields.push(column_type.field(&column.name, column.nullable, meta));
        column_types.push(column_type);
        info.push(column);
    }
    let mut schema_meta = HashMap::new();
    if let Some(d) = &facts.description {
        schema_meta.insert("description".to_owned(), d.clone());
    }
    Ok(OutputColumns {
        names,
        column_types,
        as_text,
        info,
        schema: Arc::new(Schema::new_with_metadata(fields, schema_meta)),
    })
}

/// Splits the query into ctid block ranges of `table` for up to `parallelism` streams, when
/// it is a plain scan of a table of at least two blocks whose template can be rewritten, and
/// the rewritten query returns the same columns; else says why it reads as one stream.
pub(super) async fn split(
    c: &Client,
    template: &str,
    table: &str,
    query: &str,
    facts: &TableFacts,
    parallelism: usize,
) -> Result<Split, EngineError> {
    if let ScanCheck::NotPlain(why) = &facts.scan {
        return Ok(Split::OneStream(why.clone()));
    }
    let blocks = facts.blocks.unwrap_or(0);
    let n = parallelism.min(blocks as usize);
    if n < 2 {
        return Ok(Split::OneStream(format!("the table has {blocks} pages")));
    }
    let render = match sql::ctid_splitter(template, table) {
        Ok(r) => r,
        Err(why) => return Ok(Split::OneStream(why)),
    };
    let queries: Vec<StreamQuery> = sql::block_ranges(blocks, n)
        .iter()
        .enumerate()
        .map(|(i, &(start, end))| {
            let end_text = end.map(|e| e.to_string()).unwrap_or_else(|| "end".into());
            StreamQuery {
                sql: render(start, end),
                place: format!(" (stream {} of {n}, ctid blocks {start}..{end_text})", i + 1),
            }
        })
        .collect();
    verify_rewrite(c, query, queries).await
}

/// Keeps the ranges when the first rewritten query parses and returns the same columns as
/// `query`, else says why not. Checked in a savepoint, so a failure leaves the transaction
/// usable.
async fn verify_rewrite(c: &Client, query: &str, queries: Vec<StreamQuery>) -> Result<Split, EngineError> {
    c.batch_execute("SAVEPOINT datadump_split")
        .await
        .map_err(EngineError::db("SAVEPOINT"))?;
    let signature = |s: &Statement| {
        s.columns()
            .iter()
            .map(|c| (c.name().to_owned(), c.type_().oid(), c.type_modifier()))
            .collect::<Vec<_>>()
    };
    let verdict = match (c.prepare(query).await, c.prepare(&queries[0].sql).await) {
        (Ok(a), Ok(b)) if signature(&a) == signature(&b) => Split::Ranges(queries),
        (Ok(_), Ok(_)) => Split::OneStream("the rewritten query returns other columns".to_owned()),
        (_, Err(e)) => Split::OneStream(format!("the rewritten query fails: {e}")),
        (Err(e), _) => Split::OneStream(e.to_string()),
    };
    c.batch_execute("ROLLBACK TO SAVEPOINT datadump_split; RELEASE SAVEPOINT datadump_split")
        .await
        .map_err(EngineError::db("ROLLBACK TO SAVEPOINT"))?;
    Ok(verdict)
}
