//! The `odbc2parquet` engine, for ODBC sources other than PostgreSQL: odbc2parquet runs as a
//! child process writing parts into a local folder; each part is uploaded through the sink as
//! soon as it is complete (a later part exists, or odbc2parquet has exited) and then deleted,
//! so the disk holds about two parts at a time. The connection string reaches odbc2parquet in
//! its environment, never on a command line; its log goes to the worker's log, redacted.
//! Needs odbc2parquet, unixODBC and the driver on the machine. I/O (processes, files).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;
use tokio::process::Command;

use super::sink::{PartInfo, PartSink, Progress};
use datadump_contract::{DriverOption, OdbcJob};

/// How often the folder is checked for finished parts.
const POLL: Duration = Duration::from_millis(500);

/// Why the odbc2parquet engine failed.
#[derive(Debug, thiserror::Error)]
pub enum OdbcError {
    /// odbc2parquet could not be started.
    #[error("cannot run odbc2parquet: {0}; install odbc2parquet, unixODBC and the ODBC driver on the worker's image")]
    Start(#[source] std::io::Error),
    /// odbc2parquet failed; the message is its last error line.
    #[error("odbc2parquet failed with exit code {code}: {message}")]
    Failed {
        /// Its exit code (-1 when killed by a signal).
        code: i32,
        /// Its last error line, redacted.
        message: String,
    },
    /// The connection string sets something the worker must set itself.
    #[error("the connection string sets {0}, which the worker sets itself to make the session read-only; remove it")]
    Reserved(&'static str),
    /// A part could not be read or uploaded.
    #[error("{0}")]
    Part(String),
}

impl OdbcError {
    /// A short, bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            OdbcError::Start(_) => "odbc_start",
            OdbcError::Failed { .. } => "odbc_failed",
            OdbcError::Reserved(_) => "odbc_reserved",
            OdbcError::Part(_) => "odbc_part",
        }
    }
}

/// What the engine wrote.
#[derive(Debug)]
pub struct OdbcSummary {
    /// The uploaded parts, in file order.
    pub parts: Vec<PartInfo>,
    /// The odbc2parquet version that ran.
    pub version: String,
}

/// Splits an ODBC connection string into (lower-case key, unbraced value) pairs.
pub fn odbc_pairs(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches([';', ' ']);
        let Some((key, after)) = rest.split_once('=') else { break };
        let (value, tail) = if let Some(braced) = after.strip_prefix('{') {
            // `}}` inside braces is a literal `}`
            let mut value = String::new();
            let mut it = braced;
            loop {
                match it.find('}') {
                    Some(i) if it[i + 1..].starts_with('}') => {
                        value.push_str(&it[..=i]);
                        it = &it[i + 2..];
                    }
                    Some(i) => {
                        value.push_str(&it[..i]);
                        it = &it[i + 1..];
                        break;
                    }
                    None => {
                        value.push_str(it);
                        it = "";
                        break;
                    }
                }
            }
            (value, it.split_once(';').map_or("", |(_, t)| t))
        } else {
            match after.split_once(';') {
                Some((v, t)) => (v.to_string(), t),
                None => (after.to_string(), ""),
            }
        };
        out.push((key.trim().to_ascii_lowercase(), value));
        rest = tail;
    }
    out
}

/// The passwords in a connection string (`Pwd`/`Password`), for redaction.
pub fn passwords(conn: &str) -> Vec<String> {
    odbc_pairs(conn)
        .into_iter()
        .filter(|(k, v)| (k == "pwd" || k == "password") && v.len() >= 3)
        .map(|(_, v)| v)
        .collect()
}

/// The connection string with each driver option it does not set (by name or alias) appended.
pub fn effective_connection(conn: &str, options: &[DriverOption]) -> String {
    let pairs = odbc_pairs(conn);
    let mut out = conn.to_string();
    for o in options {
        let set = pairs
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(&o.name) || k.eq_ignore_ascii_case(&o.alias));
        if !set {
            if !out.is_empty() && !out.ends_with(';') {
                out.push(';');
            }
            out.push_str(&format!("{}={}", o.name, o.value));
        }
    }
    out
}

/// Parts in `dir`, in file order (`_99` before `_100`).
fn parts_in(dir: &Path, media: &str) -> Vec<PathBuf> {
    let prefix = format!("{media}_");
    let mut parts: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let n = name.strip_prefix(&prefix)?.strip_suffix(".parquet")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    parts.sort();
    parts.into_iter().map(|(_, p)| p).collect()
}

/// Uploads one finished local part through the sink and deletes it.
fn upload(path: &Path, sink: &dyn PartSink) -> Result<PartInfo, OdbcError> {
    let err = |e: &dyn std::fmt::Display| OdbcError::Part(format!("{}: {e}", path.display()));
    // two handles: the footer reader moves its file's offset
    let footer = std::fs::File::open(path).map_err(|e| err(&e))?;
    let reader = parquet::file::reader::SerializedFileReader::new(footer).map_err(|e| err(&format!("not a complete Parquet file: {e}")))?;
    let file = std::fs::File::open(path).map_err(|e| err(&e))?;
    let rows = parquet::file::reader::FileReader::metadata(&reader).file_metadata().num_rows() as u64;
    let mut writer = sink.create().map_err(|e| err(&e))?;
    std::io::copy(&mut std::io::BufReader::with_capacity(1 << 20, file), &mut writer).map_err(|e| err(&e))?;
    let info = writer.finish(rows).map_err(|e| err(&e))?;
    let _ = std::fs::remove_file(path);
    Ok(info)
}

/// The version odbc2parquet reports (`odbc2parquet 11.0.1`), or "unknown".
async fn version() -> String {
    let out = Command::new("odbc2parquet").arg("--version").output().await;
    out.ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// What one odbc2parquet run reads and where it works.
pub struct OdbcRun<'a> {
    /// The ODBC connection string.
    pub conn: &'a str,
    /// The query, placeholders replaced.
    pub query: &'a str,
    /// The table (names the parts).
    pub media_type: &'a str,
    /// The engine's settings from the job.
    pub job: &'a OdbcJob,
    /// Where odbc2parquet writes its parts before they are uploaded.
    pub workdir: &'a Path,
    /// The job's CA bundle and client identity, handed to psqlODBC as files.
    pub tls: &'a super::pg::TlsMaterial,
}

/// TLS files for psqlODBC, written by [`write_tls_files`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA bundle, PEM.
    pub root_cert: Option<PathBuf>,
    /// The client certificate and its key, PEM (mode 600).
    pub client: Option<(PathBuf, PathBuf)>,
}

/// Writes the job's TLS material into `dir` (mode 600) for psqlODBC, which reads files only.
pub fn write_tls_files(dir: &Path, tls: &super::pg::TlsMaterial) -> std::io::Result<TlsFiles> {
    use std::os::unix::fs::OpenOptionsExt;
    let write = |name: &str, body: &str| -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        std::io::Write::write_all(&mut f, body.as_bytes())?;
        Ok(path)
    };
    let root_cert = tls.ca_bundle.as_deref().map(|b| write("ca-bundle.pem", b)).transpose()?;
    // the identity is the certificate chain followed by the key: libpq reads each PEM block it needs
    let client = match tls.client_identity.as_deref() {
        Some(pem) => Some((write("client.crt", pem)?, write("client.key", pem)?)),
        None => None,
    };
    Ok(TlsFiles { root_cert, client })
}

/// The connection string with the job's TLS files handed to psqlODBC: `SSLMode=verify-full`
/// when a CA bundle came and the string sets no mode (as the `postgres` engine does), and the
/// files as libpq options in `pqopt`, which psqlODBC passes to libpq. A string with its own
/// `pqopt` is left as it is (the user's options win).
pub fn with_tls_files(conn: &str, files: &TlsFiles) -> String {
    let pairs = odbc_pairs(conn);
    let has = |k: &str| pairs.iter().any(|(key, _)| key == k);
    let mut out = conn.trim_end().to_string();
    let mut push = |kv: String| {
        if !out.is_empty() && !out.ends_with(';') {
            out.push(';');
        }
        out.push_str(&kv);
    };
    if files.root_cert.is_some() && !has("sslmode") {
        push("SSLMode=verify-full".into());
    }
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\\', "\\\\").replace('\'', "\\'"));
    let mut libpq = Vec::new();
    if let Some(ca) = &files.root_cert {
        libpq.push(format!("sslrootcert={}", quote(ca)));
    }
    if let Some((cert, key)) = &files.client {
        libpq.push(format!("sslcert={} sslkey={}", quote(cert), quote(key)));
    }
    if !libpq.is_empty() && !has("pqopt") {
        push(format!("pqopt={{{}}}", libpq.join(" ").replace('}', "}}")));
    }
    out
}

/// Runs odbc2parquet for `query` and uploads its parts. `redact` removes secrets from a line.
pub async fn export(
    run: OdbcRun<'_>,
    sink: Arc<dyn PartSink>,
    progress: Arc<Progress>,
    redact: impl Fn(&str) -> String + Send + Sync + 'static,
) -> Result<OdbcSummary, OdbcError> {
    let OdbcRun {
        conn,
        query,
        media_type,
        job,
        workdir,
        tls,
    } = run;
    let version = version().await;
    if version != job.version {
        tracing::warn!(found = %version, expected = %job.version, "odbc2parquet is not the version the spec names");
    }
    if odbc_pairs(conn).iter().any(|(k, _)| k == "connsettings" || k == "a6") {
        return Err(OdbcError::Reserved("ConnSettings"));
    }
    let files = write_tls_files(&workdir.join("tls"), tls).map_err(OdbcError::Start)?;
    let conn = with_tls_files(&effective_connection(conn, &job.driver_options), &files);
    let out = workdir.join("parts");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).map_err(OdbcError::Start)?;
    let mut child = Command::new("odbc2parquet")
        .args(["-v", "--no-color", "query"])
        .args(&job.args)
        .arg(out.join(format!("{media_type}.parquet")))
        .arg("-")
        // timestamptz arrives in the session's zone: make that UTC
        .env("PGTZ", "UTC")
        .env("ODBC_CONNECTION_STRING", &conn)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(OdbcError::Start)?;
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt;
        stdin.write_all(query.as_bytes()).await.map_err(OdbcError::Start)?;
    }
    // its log, line by line, redacted; the last error line becomes the failure message
    let stderr = child.stderr.take().expect("piped");
    let redact = Arc::new(redact);
    let log = tokio::spawn({
        let redact = redact.clone();
        async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            // the database's own message (`ERROR:`) says more than odbc2parquet's summary line
            let (mut database, mut other) = (String::new(), String::new());
            while let Ok(Some(line)) = lines.next_line().await {
                let line = redact(&line);
                if line.contains("ERROR:") || line.contains("FATAL:") {
                    database = line.trim().to_string();
                } else if line.to_ascii_lowercase().contains("error") {
                    other = line.trim().to_string();
                }
                tracing::info!(target: "odbc2parquet", "{line}");
            }
            if database.is_empty() { other } else { database }
        }
    });
    let mut uploaded = Vec::new();
    let status = loop {
        let exited = tokio::time::timeout(POLL, child.wait()).await;
        let finished = matches!(exited, Ok(Ok(ref s)) if s.success());
        let parts = parts_in(&out, media_type);
        // a part is complete once a later one exists, or once odbc2parquet succeeded
        let ready = if finished { parts.len() } else { parts.len().saturating_sub(1) };
        for path in parts.into_iter().take(ready) {
            let sink = sink.clone();
            let info = tokio::task::spawn_blocking(move || upload(&path, &*sink))
                .await
                .map_err(|e| OdbcError::Part(e.to_string()))??;
            progress.add_rows(info.rows);
            uploaded.push(info);
        }
        if let Ok(status) = exited {
            break status.map_err(OdbcError::Start)?;
        }
    };
    let last_error = log.await.unwrap_or_default();
    if !status.success() {
        return Err(OdbcError::Failed {
            code: status.code().unwrap_or(-1),
            message: if last_error.is_empty() {
                "no error message".into()
            } else {
                last_error
            },
        });
    }
    Ok(OdbcSummary { parts: uploaded, version })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jobs_tls_files_reach_psqlodbc_through_pqopt() {
        let files = TlsFiles {
            root_cert: Some("/w/tls/ca-bundle.pem".into()),
            client: Some(("/w/tls/client.crt".into(), "/w/tls/client.key".into())),
        };
        let cases = [
            (
                "Driver={PostgreSQL Unicode};Server=db;Pwd={x;y}",
                "Driver={PostgreSQL Unicode};Server=db;Pwd={x;y};SSLMode=verify-full;\
                 pqopt={sslrootcert='/w/tls/ca-bundle.pem' sslcert='/w/tls/client.crt' sslkey='/w/tls/client.key'}",
            ),
            // the user's own mode and libpq options win
            (
                "Server=db;sslmode=require;pqopt={sslrootcert=/etc/ca.pem};",
                "Server=db;sslmode=require;pqopt={sslrootcert=/etc/ca.pem};",
            ),
        ];
        for (conn, want) in cases {
            assert_eq!(with_tls_files(conn, &files), want, "{conn}");
        }
        assert_eq!(with_tls_files("Server=db", &TlsFiles::default()), "Server=db");
        let pairs = odbc_pairs(&with_tls_files("Server=db", &files));
        assert!(
            pairs.iter().any(|(k, v)| k == "pqopt" && v.starts_with("sslrootcert=")),
            "{pairs:?}"
        );
    }

    #[test]
    fn connection_strings_are_parsed_with_braces_and_options_added_once() {
        let pairs = odbc_pairs("Driver={PostgreSQL Unicode};Server=db; PWD={a;b}}c};uid=x");
        assert_eq!(
            pairs,
            [
                ("driver".to_string(), "PostgreSQL Unicode".to_string()),
                ("server".into(), "db".into()),
                ("pwd".into(), "a;b}c".into()),
                ("uid".into(), "x".into())
            ]
        );
        let opt = |name: &str, alias: &str, value: &str| DriverOption {
            name: name.into(),
            alias: alias.into(),
            value: value.into(),
        };
        // the first three of the API crate's `job::driver_options`
        let opts = [
            opt("UseDeclareFetch", "B6", "1"),
            opt("Fetch", "A7", "20000"),
            opt("BoolsAsChar", "B9", "0"),
        ];
        let conn = effective_connection("Driver={PostgreSQL Unicode};B6=0;Pwd=secret", &opts);
        assert_eq!(passwords("Driver={PostgreSQL Unicode};B6=0;Pwd=secret"), ["secret"]);
        assert!(
            conn.starts_with("Driver={PostgreSQL Unicode};B6=0;Pwd=secret;Fetch=20000;"),
            "{conn}"
        );
        assert!(!conn.contains("UseDeclareFetch"), "B6 is its alias: {conn}");
    }

    #[test]
    fn parts_are_listed_in_file_order() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            "image_2.parquet",
            "image_10.parquet",
            "image_1.parquet",
            "audio_1.parquet",
            "image_x.parquet",
        ] {
            std::fs::write(dir.path().join(n), b"").unwrap();
        }
        let names: Vec<String> = parts_in(dir.path(), "image")
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["image_1.parquet", "image_2.parquet", "image_10.parquet"]);
    }
}
