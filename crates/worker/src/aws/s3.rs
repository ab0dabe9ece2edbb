//! S3 as [`ObjectStore`]: listing, reads (whole and tail) and writes, with a client per
//! region and path-style addressing when an endpoint override is set (local emulators). I/O.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Payer, RequestPayer, RequestPaymentConfiguration};

use super::{call, classify, observe, observed};
use crate::store::{BackendError, Bucket, Digest, ObjectMeta, ObjectStore};

/// S3 through the AWS SDK.
#[derive(Clone, Debug)]
pub struct S3Store {
    config: aws_config::SdkConfig,
    path_style: bool,
    clients: Arc<Mutex<BTreeMap<String, Client>>>,
    default_region: String,
}

impl S3Store {
    /// An adapter; `path_style` for emulators that do not serve virtual-hosted buckets.
    pub fn new(config: &aws_config::SdkConfig, path_style: bool) -> Self {
        S3Store {
            default_region: config.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into()),
            config: config.clone(),
            path_style,
            clients: Arc::default(),
        }
    }

    /// The client for a region (`None`: the default one).
    pub fn client(&self, region: Option<&str>) -> Client {
        let region = region.unwrap_or(&self.default_region).to_string();
        let mut clients = self.clients.lock().expect("s3 client map");
        clients
            .entry(region.clone())
            .or_insert_with(|| {
                let conf = aws_sdk_s3::config::Builder::from(&self.config)
                    .region(aws_sdk_s3::config::Region::new(region))
                    .force_path_style(self.path_style)
                    .build();
                Client::from_conf(conf)
            })
            .clone()
    }
}

fn timestamp(t: Option<&aws_sdk_s3::primitives::DateTime>) -> jiff::Timestamp {
    t.and_then(|t| jiff::Timestamp::new(t.secs(), t.subsec_nanos() as i32).ok())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

impl ObjectStore for S3Store {
    async fn list(&self, bucket: Bucket<'_>, prefix: &str) -> Result<Vec<ObjectMeta>, BackendError> {
        let Bucket {
            name: bucket,
            region,
            requester_pays,
        } = bucket;
        let payer = request_payer(requester_pays);
        let client = self.client(region);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = call(
                "ListObjectsV2",
                client
                    .list_objects_v2()
                    .bucket(bucket)
                    .set_request_payer(payer.clone())
                    .prefix(prefix)
                    .set_continuation_token(token.take())
                    .send(),
            )
            .await?;
            out.extend(page.contents().iter().map(|o| ObjectMeta {
                key: o.key().unwrap_or_default().to_string(),
                size: o.size().unwrap_or_default().max(0) as u64,
                last_modified: timestamp(o.last_modified()),
            }));
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn get(&self, bucket: Bucket<'_>, key: &str) -> Result<Option<Vec<u8>>, BackendError> {
        let Bucket {
            name: bucket,
            region,
            requester_pays,
        } = bucket;
        let payer = request_payer(requester_pays);
        match self
            .client(region)
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_request_payer(payer)
            .send()
            .await
        {
            Ok(o) => {
                observe("GetObject", "ok");
                let bytes = o.body.collect().await.map_err(|e| BackendError::Unavailable {
                    api: "GetObject",
                    message: e.to_string(),
                })?;
                Ok(Some(bytes.into_bytes().to_vec()))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                observe("GetObject", "not_found");
                Ok(None)
            }
            Err(e) => observed("GetObject", Err(classify("GetObject", e))),
        }
    }

    async fn get_tail(&self, bucket: Bucket<'_>, key: &str, len: u64) -> Result<Vec<u8>, BackendError> {
        let Bucket {
            name: bucket,
            region,
            requester_pays,
        } = bucket;
        let payer = request_payer(requester_pays);
        let o = call(
            "GetObject",
            self.client(region)
                .get_object()
                .bucket(bucket)
                .key(key)
                .set_request_payer(payer)
                .range(format!("bytes=-{len}"))
                .send(),
        )
        .await?;
        let bytes = o.body.collect().await.map_err(|e| BackendError::Unavailable {
            api: "GetObject",
            message: e.to_string(),
        })?;
        Ok(bytes.into_bytes().to_vec())
    }

    async fn put(&self, bucket: Bucket<'_>, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), BackendError> {
        let Bucket {
            name: bucket,
            region,
            requester_pays,
        } = bucket;
        let payer = request_payer(requester_pays);
        call(
            "PutObject",
            self.client(region)
                .put_object()
                .bucket(bucket)
                .key(key)
                .set_request_payer(payer)
                .content_type(content_type)
                .body(ByteStream::from(body))
                .send(),
        )
        .await?;
        Ok(())
    }

    async fn head(&self, bucket: Bucket<'_>, key: &str) -> Result<Option<u64>, BackendError> {
        let Bucket {
            name: bucket,
            region,
            requester_pays,
        } = bucket;
        let payer = request_payer(requester_pays);
        match self
            .client(region)
            .head_object()
            .bucket(bucket)
            .key(key)
            .set_request_payer(payer)
            .send()
            .await
        {
            Ok(o) => {
                observe("HeadObject", "ok");
                Ok(Some(o.content_length().unwrap_or_default().max(0) as u64))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {
                observe("HeadObject", "not_found");
                Ok(None)
            }
            Err(e) => observed("HeadObject", Err(classify("HeadObject", e))),
        }
    }

    async fn digest(&self, bucket: Bucket<'_>, key: &str) -> Result<Option<Digest>, BackendError> {
        use sha2::Digest as _;
        let Bucket {
            name: bucket,
            region,
            requester_pays,
        } = bucket;
        let payer = request_payer(requester_pays);
        let mut object = match self
            .client(region)
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_request_payer(payer)
            .send()
            .await
        {
            Ok(o) => {
                observe("GetObject", "ok");
                o
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                observe("GetObject", "not_found");
                return Ok(None);
            }
            Err(e) => return observed("GetObject", Err(classify("GetObject", e))),
        };
        let mut hasher = sha2::Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = object.body.try_next().await.map_err(|e| BackendError::Unavailable {
            api: "GetObject",
            message: e.to_string(),
        })? {
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok(Some(Digest {
            size,
            sha256: crate::sink::hex(&hasher.finalize()),
        }))
    }

    async fn requester_pays(&self, bucket: Bucket<'_>) -> Result<bool, BackendError> {
        let out = call(
            "GetBucketRequestPayment",
            self.client(bucket.region).get_bucket_request_payment().bucket(bucket.name).send(),
        )
        .await?;
        Ok(out.payer() == Some(&Payer::Requester))
    }

    async fn enable_requester_pays(&self, bucket: Bucket<'_>) -> Result<(), BackendError> {
        let config = RequestPaymentConfiguration::builder()
            .payer(Payer::Requester)
            .build()
            .map_err(|e| BackendError::Rejected {
                api: "PutBucketRequestPayment",
                code: "InvalidRequest".into(),
                message: e.to_string(),
            })?;
        call(
            "PutBucketRequestPayment",
            self.client(bucket.region)
                .put_bucket_request_payment()
                .bucket(bucket.name)
                .request_payment_configuration(config)
                .send(),
        )
        .await?;
        Ok(())
    }

    async fn presign_get(&self, bucket: Bucket<'_>, key: &str, expires: std::time::Duration) -> Result<String, BackendError> {
        // no request-payer header: whoever holds the URL would have to send it too
        let Bucket { name: bucket, region, .. } = bucket;
        let config = presigning(expires)?;
        let req = self.client(region).get_object().bucket(bucket).key(key).presigned(config).await;
        req.map(|r| r.uri().to_string()).map_err(|e| classify("PresignGetObject", e))
    }

    async fn presign_put(&self, bucket: Bucket<'_>, key: &str, expires: std::time::Duration) -> Result<String, BackendError> {
        // no request-payer header: whoever holds the URL would have to send it too
        let Bucket { name: bucket, region, .. } = bucket;
        let config = presigning(expires)?;
        let req = self.client(region).put_object().bucket(bucket).key(key).presigned(config).await;
        req.map(|r| r.uri().to_string()).map_err(|e| classify("PresignPutObject", e))
    }
}

/// The request-payer header of a call (`None`: not sent).
fn request_payer(requester_pays: bool) -> Option<RequestPayer> {
    requester_pays.then_some(RequestPayer::Requester)
}

/// Presigning settings (SigV4 allows at most seven days).
fn presigning(expires: std::time::Duration) -> Result<aws_sdk_s3::presigning::PresigningConfig, BackendError> {
    aws_sdk_s3::presigning::PresigningConfig::expires_in(expires).map_err(|e| BackendError::Rejected {
        api: "Presign",
        code: "InvalidExpiry".into(),
        message: e.to_string(),
    })
}
