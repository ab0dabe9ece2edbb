//! AWS implementations of the backend traits: thin adapters over the official SDK, with one
//! error classification. I/O.

pub mod ec2;
pub mod s3;
pub mod ssm;

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::backend::BackendError;

pub use ec2::Ec2Compute;
pub use s3::S3Store;
pub use ssm::SsmStage;

/// How to reach AWS: the region, and an endpoint override for a local emulator.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct AwsArgs {
    /// AWS region for EC2 and SSM (and S3 unless a DataDump names its bucket's region).
    #[arg(long = "aws-region", env = "AWS_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Endpoint URL for every AWS service, e.g. a local emulator (http://127.0.0.1:5000).
    #[arg(long = "aws-endpoint-url", env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
}

impl AwsArgs {
    /// Loads the SDK configuration (credentials from the default chain: env, IRSA, instance role).
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).region(aws_config::Region::new(self.region.clone()));
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        loader.load().await
    }
}

/// Awaits one SDK call, counts its outcome in the metrics and classifies its error.
pub(crate) async fn call<T, E>(
    api: &'static str,
    fut: impl std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
) -> Result<T, BackendError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    crate::metrics::count(api, fut.await.map_err(|e| classify(api, e)))
}

/// Classifies an SDK error: throttling and 5xx/transport are transient, the rest is rejected.
pub(crate) fn classify<E>(api: &'static str, err: SdkError<E, HttpResponse>) -> BackendError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = err.code().unwrap_or_default().to_string();
    let message = err
        .message()
        .map(str::to_string)
        .unwrap_or_else(|| DisplayErrorContext(&err).to_string());
    const THROTTLE: &[&str] = &[
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "SlowDown",
        "TooManyRequestsException",
        "RequestThrottled",
        "ThrottledException",
    ];
    let status = err.raw_response().map(|r| r.status().as_u16());
    if THROTTLE.contains(&code.as_str()) || status == Some(429) {
        BackendError::Throttled { api, message }
    } else if matches!(err, SdkError::ServiceError(_)) && status.is_some_and(|s| s < 500) {
        BackendError::Rejected {
            api,
            code: if code.is_empty() {
                format!("HTTP{}", status.unwrap_or_default())
            } else {
                code
            },
            message,
        }
    } else {
        BackendError::Unavailable { api, message }
    }
}
