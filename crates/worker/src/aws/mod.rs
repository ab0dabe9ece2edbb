//! AWS through the official SDK: S3 as [`ObjectStore`](crate::store::ObjectStore)
//! ([`S3Store`]), and the one classification of a failed call ([`call`], [`classify`]) that
//! the controller's EC2 and SSM adapters share, with a hook through which the controller counts
//! every call in its metrics ([`observe_calls`]). I/O.

pub mod s3;

use std::sync::OnceLock;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::store::BackendError;

pub use s3::S3Store;

/// Told the outcome of every AWS call: the API name and a short label (`ok`, `not_found`, or
/// the error's [`BackendError::metric_label`]).
pub type CallObserver = fn(&'static str, &'static str);

static OBSERVER: OnceLock<CallObserver> = OnceLock::new();

/// Installs the process's call observer (once; the controller counts calls in its metrics,
/// the worker installs none).
pub fn observe_calls(observer: CallObserver) {
    let _ = OBSERVER.set(observer);
}

/// Tells the observer how a call ended.
pub fn observe(api: &'static str, outcome: &'static str) {
    if let Some(observer) = OBSERVER.get() {
        observer(api, outcome);
    }
}

/// Passes a call's result on after telling the observer.
pub fn observed<T>(api: &'static str, result: Result<T, BackendError>) -> Result<T, BackendError> {
    observe(api, result.as_ref().map(|_| "ok").unwrap_or_else(|e| e.metric_label()));
    result
}

/// Awaits one SDK call, classifies its error and tells the installed [`CallObserver`] (the
/// controller's metrics) how it ended.
pub async fn call<T, E>(
    api: &'static str,
    fut: impl std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
) -> Result<T, BackendError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    observed(api, fut.await.map_err(|e| classify(api, e)))
}

/// Classifies an SDK error: throttling and 5xx/transport are transient, the rest is rejected.
pub fn classify<E>(api: &'static str, err: SdkError<E, HttpResponse>) -> BackendError
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
