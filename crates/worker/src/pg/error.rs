//! [`EngineError`]: why an export failed, with a one-line `Display` fit for a status message.
//! Pure, no I/O.

use crate::sink::SinkError;

/// Why an export failed. `Display` is one line; the PostgreSQL client error stays available as
/// the `source`. Messages never contain the connection string or the password.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The connection string could not be parsed (the string itself is not repeated).
    #[error("invalid PostgreSQL connection string: {0}")]
    Conninfo(String),
    /// Connecting or logging in failed.
    #[error("cannot connect to PostgreSQL: {}", describe(.source))]
    Connect {
        /// The client's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// TLS did not work out: one line with what is wrong and the fix (the CA expected and the
    /// issuer found, the host and the certificate's names, the expiry, …).
    #[error("cannot connect to PostgreSQL: {0}")]
    Tls(String),
    /// A statement failed; `context` says which step (e.g. `COPY`).
    #[error("{context}: {}", describe(.source))]
    Database {
        /// The step that failed.
        context: String,
        /// The client's error (holds the server's message, SQLSTATE, detail and hint).
        #[source]
        source: tokio_postgres::Error,
    },
    /// The query's result cannot be exported as it is (duplicate column names, no columns…).
    #[error("{0}")]
    Query(String),
    /// A value has no exact Parquet counterpart, or is malformed.
    #[error("column {column:?} row {row}{place}: {message}; fix: {fix}")]
    Value {
        /// The output column.
        column: String,
        /// The 1-based row within its stream.
        row: u64,
        /// Where the stream reads, e.g. ` (stream 2 of 3, ctid blocks 100..200)`; empty with
        /// one stream.
        place: String,
        /// What is wrong.
        message: String,
        /// How to change the query.
        fix: String,
    },
    /// The binary COPY data did not follow the format.
    #[error("malformed binary COPY data from PostgreSQL: {0}")]
    Protocol(String),
    /// The Parquet writer failed.
    #[error("Parquet writer: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Building Arrow arrays failed.
    #[error("Arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The output sink failed.
    #[error("output: {0}")]
    Sink(#[from] SinkError),
    /// A worker thread panicked or vanished.
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// A short, bounded label for metrics and failure reports.
    pub fn metric_label(&self) -> &'static str {
        match self {
            EngineError::Conninfo(_) => "conninfo",
            EngineError::Connect { .. } => "connect",
            EngineError::Tls(_) => "tls",
            EngineError::Database { .. } => "database",
            EngineError::Query(_) => "query",
            EngineError::Value { .. } => "value",
            EngineError::Protocol(_) => "protocol",
            EngineError::Parquet(_) => "parquet",
            EngineError::Arrow(_) => "arrow",
            EngineError::Sink(e) => e.metric_label(),
            EngineError::Internal(_) => "internal",
        }
    }

    /// A database error for step `context`.
    pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> EngineError {
        let context = context.into();
        move |source| EngineError::Database { context, source }
    }

    /// The SQLSTATE of a database error, if this is one.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            EngineError::Connect { source } | EngineError::Database { source, .. } => source.code().map(|c| c.code()),
            _ => None,
        }
    }
}

/// One line: the server's message, SQLSTATE, detail and hint; else the client's message.
fn describe(e: &tokio_postgres::Error) -> String {
    let Some(db) = e.as_db_error() else {
        let mut s = e.to_string();
        if let Some(inner) = std::error::Error::source(e) {
            s.push_str(": ");
            s.push_str(&inner.to_string());
        }
        return one_line(&s);
    };
    let mut s = format!("{} (SQLSTATE {})", db.message(), db.code().code());
    if let Some(d) = db.detail() {
        s.push_str("; detail: ");
        s.push_str(d);
    }
    if let Some(h) = db.hint() {
        s.push_str("; hint: ");
        s.push_str(h);
    }
    one_line(&s)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
