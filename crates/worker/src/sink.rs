//! Where an engine's Parquet files go: a [`PartSink`] hands out one [`PartWriter`] per output
//! file. The engine writes the file's bytes (the `parquet` crate's `ArrowWriter` writes into a
//! `PartWriter`) and calls [`PartWriter::finish`] with the file's row count; dropping a writer
//! without finishing abandons the file (an S3 sink aborts its multipart upload).
//!
//! The traits are synchronous on purpose: engines encode on blocking threads, and a sink that
//! talks to S3 bridges to its async client itself. [`DirSink`] writes into a local folder (the
//! tests and benchmarks use it); the S3 sink lives in [`super::s3sink`]. I/O (files).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// A finished output file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartInfo {
    /// The file name, e.g. `image_01.parquet` (an S3 sink's key ends with it).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
    /// Rows in the file, as the engine counted them.
    pub rows: u64,
}

/// Why a file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A local file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An upload failed (after the client's retries).
    #[error("upload of {key} failed: {message}")]
    Upload {
        /// The S3 key.
        key: String,
        /// The service's or transport's message.
        message: String,
    },
    /// The attempt is being cancelled (deadline, signal): no more files.
    #[error("cancelled")]
    Cancelled,
}

impl SinkError {
    /// A short, bounded label for metrics and failure reports.
    pub fn metric_label(&self) -> &'static str {
        match self {
            SinkError::Io { .. } => "io",
            SinkError::Upload { .. } => "upload",
            SinkError::Cancelled => "cancelled",
        }
    }
}

/// One output file being written. `Write` errors carry a [`SinkError`] as their inner error.
pub trait PartWriter: Write + Send {
    /// Completes the file, which holds `rows` rows.
    fn finish(self: Box<Self>, rows: u64) -> Result<PartInfo, SinkError>;
}

/// Hands out output files, numbered in the order they are created: `MEDIA_01.parquet`,
/// `MEDIA_02.parquet`, … (three digits from the 100th on).
pub trait PartSink: Send + Sync {
    /// Starts the next output file.
    fn create(&self) -> Result<Box<dyn PartWriter>, SinkError>;
}

pub use datadump_contract::part_name;

/// Counters an engine updates while it works, read by the progress reporter.
#[derive(Debug, Default)]
pub struct Progress {
    /// Rows read from the source so far.
    pub rows: AtomicU64,
    /// The planner's estimate of the total rows (0 when unknown).
    pub estimated_rows: AtomicU64,
    /// Bytes of finished and in-flight output written so far.
    pub bytes: AtomicU64,
    /// Files finished so far.
    pub files: AtomicU64,
    /// How the engine connected to the source, once it has (set once).
    pub connection: std::sync::OnceLock<datadump_contract::ConnectionReport>,
}

impl Progress {
    /// Adds `n` rows.
    pub fn add_rows(&self, n: u64) {
        self.rows.fetch_add(n, Ordering::Relaxed);
    }
}

/// Writes files into a local folder (tests, benchmarks, `--output-dir`).
pub struct DirSink {
    dir: PathBuf,
    media_type: String,
    next: AtomicU32,
    progress: Arc<Progress>,
}

impl DirSink {
    /// A sink writing `MEDIA_NN.parquet` files into `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>, media_type: &str, progress: Arc<Progress>) -> Result<Self, SinkError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| SinkError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(DirSink {
            dir,
            media_type: media_type.into(),
            next: AtomicU32::new(1),
            progress,
        })
    }
}

struct DirPart {
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    hash: Sha256,
    size: u64,
    progress: Arc<Progress>,
}

impl Write for DirPart {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        self.progress.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl PartWriter for DirPart {
    fn finish(mut self: Box<Self>, rows: u64) -> Result<PartInfo, SinkError> {
        let io = |source| SinkError::Io {
            path: self.path.display().to_string(),
            source,
        };
        self.file.flush().map_err(io)?;
        self.progress.files.fetch_add(1, Ordering::Relaxed);
        let hash = std::mem::take(&mut self.hash);
        Ok(PartInfo {
            name: self.path.file_name().unwrap_or_default().to_string_lossy().into_owned(),
            size: self.size,
            sha256: hex(&hash.finalize()),
            rows,
        })
    }
}

impl PartSink for DirSink {
    fn create(&self) -> Result<Box<dyn PartWriter>, SinkError> {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let path = self.dir.join(part_name(&self.media_type, n));
        let file = std::fs::File::create(&path).map_err(|source| SinkError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Box::new(DirPart {
            path,
            file: std::io::BufWriter::with_capacity(1 << 20, file),
            hash: Sha256::new(),
            size: 0,
            progress: self.progress.clone(),
        }))
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_sink_numbers_files_and_hashes_them() {
        let dir = tempfile::tempdir().unwrap();
        let progress = Arc::new(Progress::default());
        let sink = DirSink::new(dir.path(), "image", progress.clone()).unwrap();
        let mut a = sink.create().unwrap();
        let mut b = sink.create().unwrap();
        b.write_all(b"second").unwrap();
        a.write_all(b"abc").unwrap();
        let a = a.finish(7).unwrap();
        let b = b.finish(1).unwrap();
        assert_eq!((a.name.as_str(), a.size, a.rows), ("image_01.parquet", 3, 7));
        assert_eq!(a.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(b.name, "image_02.parquet");
        assert_eq!(std::fs::read(dir.path().join("image_02.parquet")).unwrap(), b"second");
        assert_eq!(progress.bytes.load(Ordering::Relaxed), 9);
        assert_eq!(part_name("audio", 100), "audio_100.parquet");
    }
}
