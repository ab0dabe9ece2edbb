//! Parquet files straight to S3, no local disk: each [`PartWriter`] fills a buffer of
//! `part_size` bytes and hands it to an upload task (multipart upload; a file smaller than one
//! part becomes a single PutObject). Memory per open file: the buffer being filled, at most one
//! waiting, one uploading. A writer dropped without `finish`, or an upload that fails, aborts
//! its multipart upload, so a failed attempt leaves no unfinished upload behind
//! ([`S3Sink::drain`] waits for those aborts). I/O.

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, RequestPayer};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::sink::{PartInfo, PartSink, PartWriter, Progress, SinkError, hex, part_name};
use crate::aws::call;
use crate::store::Bucket;

/// The default multipart part size (S3's minimum is 5 MiB; 10,000 parts of 16 MiB allow
/// files up to 156 GiB).
pub const DEFAULT_PART_SIZE: usize = 16 << 20;
/// The content type of Parquet objects.
pub const PARQUET_CONTENT_TYPE: &str = "application/vnd.apache.parquet";

/// Hands out files under `s3://bucket/key_prefix`, named `MEDIA_NN.parquet`.
pub struct S3Sink {
    client: Client,
    bucket: String,
    payer: Option<RequestPayer>,
    key_prefix: String,
    media_type: String,
    part_size: usize,
    next: AtomicU32,
    runtime: tokio::runtime::Handle,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    progress: Arc<Progress>,
}

impl S3Sink {
    /// A sink; must be created inside the Tokio runtime that will run the uploads.
    pub fn new(client: Client, bucket: Bucket<'_>, key_prefix: &str, media_type: &str, part_size: usize, progress: Arc<Progress>) -> Self {
        S3Sink {
            client,
            bucket: bucket.name.into(),
            payer: bucket.requester_pays.then_some(RequestPayer::Requester),
            key_prefix: key_prefix.into(),
            media_type: media_type.into(),
            part_size: part_size.max(5 << 20),
            next: AtomicU32::new(1),
            runtime: tokio::runtime::Handle::current(),
            tasks: Mutex::default(),
            progress,
        }
    }

    /// Waits until every upload task has ended: completed, or aborted because its writer was
    /// dropped or its upload failed.
    pub async fn drain(&self) {
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock().expect("tasks"));
        for t in tasks {
            let _ = t.await;
        }
    }
}

enum Msg {
    Part(Bytes),
    Finish(Bytes, oneshot::Sender<Result<(), SinkError>>),
}

struct Upload {
    client: Client,
    bucket: String,
    payer: Option<RequestPayer>,
    key: String,
}

impl Upload {
    fn error(&self, e: crate::store::BackendError) -> SinkError {
        SinkError::Upload {
            key: self.key.clone(),
            message: e.to_string(),
        }
    }

    async fn put(&self, body: Bytes) -> Result<(), SinkError> {
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .set_request_payer(self.payer.clone())
            .key(&self.key)
            .content_type(PARQUET_CONTENT_TYPE)
            .body(ByteStream::from(body));
        call("PutObject", req.send()).await.map(|_| ()).map_err(|e| self.error(e))
    }

    async fn create(&self) -> Result<String, SinkError> {
        let req = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .set_request_payer(self.payer.clone())
            .key(&self.key)
            .content_type(PARQUET_CONTENT_TYPE);
        let out = call("CreateMultipartUpload", req.send()).await.map_err(|e| self.error(e))?;
        Ok(out.upload_id.unwrap_or_default())
    }

    async fn part(&self, id: &str, n: i32, body: Bytes) -> Result<CompletedPart, SinkError> {
        let req = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .set_request_payer(self.payer.clone())
            .key(&self.key)
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(body));
        let out = call("UploadPart", req.send()).await.map_err(|e| self.error(e))?;
        Ok(CompletedPart::builder().part_number(n).set_e_tag(out.e_tag).build())
    }

    async fn complete(&self, id: &str, parts: Vec<CompletedPart>) -> Result<(), SinkError> {
        let req = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .set_request_payer(self.payer.clone())
            .key(&self.key)
            .upload_id(id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build());
        call("CompleteMultipartUpload", req.send())
            .await
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    async fn abort(&self, id: &str) {
        let req = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .set_request_payer(self.payer.clone())
            .key(&self.key)
            .upload_id(id);
        match call("AbortMultipartUpload", req.send()).await {
            Ok(_) => tracing::info!(key = %self.key, "aborted the unfinished upload"),
            Err(e) => tracing::warn!(key = %self.key, error = %e, "could not abort the unfinished upload"),
        }
    }

    /// Receives the file's buffers until `Finish` (complete) or a dropped writer (abort).
    async fn run(self, mut rx: mpsc::Receiver<Msg>) {
        let mut id: Option<String> = None;
        let mut parts = Vec::new();
        let mut failed: Option<SinkError> = None;
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Part(body) if failed.is_none() => {
                    let result = async {
                        if id.is_none() {
                            id = Some(self.create().await?);
                        }
                        let n = parts.len() as i32 + 1;
                        parts.push(self.part(id.as_deref().unwrap_or_default(), n, body).await?);
                        Ok::<(), SinkError>(())
                    }
                    .await;
                    if let Err(e) = result {
                        tracing::warn!(key = %self.key, error = %e, "upload failed");
                        failed = Some(e);
                        // closing the channel makes the writer's next write fail at once
                        rx.close();
                    }
                }
                Msg::Part(_) => {}
                Msg::Finish(last, done) => {
                    let result = match (failed.take(), &id) {
                        (Some(e), _) => Err(e),
                        (None, None) => self.put(last).await,
                        (None, Some(upload)) => {
                            let mut r = Ok(());
                            if !last.is_empty() {
                                match self.part(upload, parts.len() as i32 + 1, last).await {
                                    Ok(p) => parts.push(p),
                                    Err(e) => r = Err(e),
                                }
                            }
                            match r {
                                Ok(()) => self.complete(upload, std::mem::take(&mut parts)).await,
                                e => e,
                            }
                        }
                    };
                    if result.is_ok() {
                        id = None;
                    }
                    let _ = done.send(result);
                    break;
                }
            }
        }
        if let Some(upload) = id {
            self.abort(&upload).await;
        }
    }
}

struct S3Part {
    key: String,
    name: String,
    buf: Vec<u8>,
    part_size: usize,
    hash: Sha256,
    size: u64,
    tx: mpsc::Sender<Msg>,
    progress: Arc<Progress>,
}

impl S3Part {
    fn broken(&self) -> std::io::Error {
        std::io::Error::other(SinkError::Upload {
            key: self.key.clone(),
            message: "the upload failed (see the log)".into(),
        })
    }
}

impl Write for S3Part {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(self.part_size - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        self.hash.update(&data[..n]);
        self.size += n as u64;
        self.progress.bytes.fetch_add(n as u64, Ordering::Relaxed);
        if self.buf.len() == self.part_size {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(self.part_size));
            self.tx.blocking_send(Msg::Part(Bytes::from(full))).map_err(|_| self.broken())?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl PartWriter for S3Part {
    fn finish(mut self: Box<Self>, rows: u64) -> Result<PartInfo, SinkError> {
        let (done, result) = oneshot::channel();
        let last = Bytes::from(std::mem::take(&mut self.buf));
        let failed = || SinkError::Upload {
            key: self.key.clone(),
            message: "the upload task ended early (see the log)".into(),
        };
        self.tx.blocking_send(Msg::Finish(last, done)).map_err(|_| failed())?;
        result.blocking_recv().map_err(|_| failed())??;
        self.progress.files.fetch_add(1, Ordering::Relaxed);
        tracing::info!(key = %self.key, bytes = self.size, rows, "uploaded");
        Ok(PartInfo {
            name: self.name.clone(),
            size: self.size,
            sha256: hex(&std::mem::take(&mut self.hash).finalize()),
            rows,
        })
    }
}

impl PartSink for S3Sink {
    fn create(&self) -> Result<Box<dyn PartWriter>, SinkError> {
        let name = part_name(&self.media_type, self.next.fetch_add(1, Ordering::SeqCst));
        let key = format!("{}{name}", self.key_prefix);
        let (tx, rx) = mpsc::channel(1);
        let upload = Upload {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            payer: self.payer.clone(),
            key: key.clone(),
        };
        let task = self.runtime.spawn(upload.run(rx));
        let mut tasks = self.tasks.lock().expect("tasks");
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
        Ok(Box::new(S3Part {
            key,
            name,
            buf: Vec::with_capacity(self.part_size),
            part_size: self.part_size,
            hash: Sha256::new(),
            size: 0,
            tx,
            progress: self.progress.clone(),
        }))
    }
}
