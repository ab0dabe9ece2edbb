//! The worker binaries a controller hands to its EC2 instances, so that a worker needs no
//! internet, only the S3 and SSM endpoints (VPC endpoints are enough).
//!
//! The controller's image carries one `datadump-worker` binary per architecture
//! (`datadump-worker-x86_64`, `datadump-worker-aarch64` in `--worker-binaries-dir`). Before a launch,
//! [`WorkerRelease::user_data`] makes sure the binary for the instance's architecture is in the
//! destination bucket under a content-addressed key (`PREFIX/_datadump/bin/SHA256/datadump-worker-ARCH`:
//! uploaded once, a HEAD after that), writes the attempt's job next to its output, presigns a GET
//! of the binary and a PUT of the attempt's `_failure`, and renders the bootstrap. I/O (files,
//! S3).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use sha2::{Digest, Sha256};

use datadump_contract::{Arch, FAILURE, Job};
use datadump_worker::sink::hex;

use super::bootstrap::{BinarySource, Bootstrap, RenderError, job_key, render};
use crate::backend::{BackendError, Bucket, ObjectStore};

/// How long the presigned URLs in the user data stay valid: long enough for a slow boot.
pub const URL_VALIDITY: Duration = Duration::from_secs(3 * 3600);

/// Why the user data of a launch could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// No binary for the instance's architecture.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// S3 refused or failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The local binary could not be read.
    #[error("cannot read the worker binary {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// One local worker binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalBinary {
    /// Its architecture.
    pub arch: Arch,
    /// The file.
    pub path: PathBuf,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

/// The binaries, and the bucket keys already known to hold them.
#[derive(Debug, Default)]
pub struct WorkerRelease {
    binaries: Vec<LocalBinary>,
    published: Mutex<BTreeSet<String>>,
}

fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> ReleaseError + '_ {
    move |source| ReleaseError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The file name of an architecture's binary in `--worker-binaries-dir`.
pub fn binary_name(arch: Arch) -> String {
    format!("datadump-worker-{}", arch.as_str())
}

impl WorkerRelease {
    /// The binaries of `files`, hashed once.
    pub fn from_files(files: &[(Arch, PathBuf)]) -> Result<Self, ReleaseError> {
        let mut binaries = Vec::new();
        for (arch, path) in files {
            let mut file = std::fs::File::open(path).map_err(read_error(path))?;
            let mut hash = Sha256::new();
            std::io::copy(&mut file, &mut hash).map_err(read_error(path))?;
            binaries.push(LocalBinary {
                arch: *arch,
                path: path.clone(),
                sha256: hex(&hash.finalize()),
            });
        }
        Ok(WorkerRelease {
            binaries,
            published: Mutex::default(),
        })
    }

    /// The binaries in a folder (`datadump-worker-x86_64`, `datadump-worker-aarch64`; either may be missing).
    pub fn from_dir(dir: &Path) -> Result<Self, ReleaseError> {
        let files: Vec<(Arch, PathBuf)> = [Arch::X86_64, Arch::Aarch64]
            .into_iter()
            .map(|a| (a, dir.join(binary_name(a))))
            .filter(|(_, p)| p.is_file())
            .collect();
        Self::from_files(&files)
    }

    /// The architectures there is a binary for.
    pub fn arches(&self) -> Vec<Arch> {
        self.binaries.iter().map(|b| b.arch).collect()
    }

    /// The binary for `arch`.
    pub fn binary(&self, arch: Arch) -> Option<&LocalBinary> {
        self.binaries.iter().find(|b| b.arch == arch)
    }

    /// Makes sure the binary is in the bucket; returns its key.
    async fn publish<S: ObjectStore>(
        &self,
        store: &S,
        bucket: Bucket<'_>,
        dataset_prefix: &str,
        bin: &LocalBinary,
    ) -> Result<String, ReleaseError> {
        let key = format!("{dataset_prefix}_datadump/bin/{}/{}", bin.sha256, binary_name(bin.arch));
        let id = format!("{}/{key}", bucket.name);
        if self.published.lock().expect("published").contains(&id) {
            return Ok(key);
        }
        let size = std::fs::metadata(&bin.path).map_err(read_error(&bin.path))?.len();
        // read the file only when it must be uploaded
        if store.head(bucket, &key).await? != Some(size) {
            let body = std::fs::read(&bin.path).map_err(read_error(&bin.path))?;
            store.put(bucket, &key, body, "application/octet-stream").await?;
            tracing::info!(bucket = bucket.name, key = %key, "published the worker binary");
        }
        self.published.lock().expect("published").insert(id);
        Ok(key)
    }

    /// Prepares a launch: binary in the bucket, the job next to the output, the bootstrap.
    pub async fn user_data<S: ObjectStore>(&self, store: &S, job: &Job, arch: Arch) -> Result<String, ReleaseError> {
        let bin = self.binary(arch).ok_or(RenderError::NoBinary(arch.as_str()))?;
        let bucket = job.bucket();
        // PREFIX/ of PREFIX/DATE/MEDIA/
        let segments: Vec<&str> = job.key_prefix.trim_end_matches('/').split('/').collect();
        let dataset_prefix = match segments.len() {
            0..=2 => String::new(),
            n => format!("{}/", segments[..n - 2].join("/")),
        };
        let binary_key = self.publish(store, bucket, &dataset_prefix, bin).await?;
        let job_key = job_key(job);
        store.put(bucket, &job_key, job.to_json().into_bytes(), "application/json").await?;
        let b = Bootstrap {
            arch,
            binary: BinarySource {
                url: store.presign_get(bucket, &binary_key, URL_VALIDITY).await?,
                sha256: bin.sha256.clone(),
            },
            failure_url: store.presign_put(bucket, &job.key(FAILURE), URL_VALIDITY).await?,
            job_uri: format!("s3://{}/{job_key}", job.bucket),
            job_region: job.s3_region.clone(),
        };
        Ok(render(job, &b)?)
    }
}
