//! End-of-dump notifications: one Slack message per dump, to an incoming-webhook URL read from
//! a Secret. Errors never carry the URL (it is a credential). The message text is built purely
//! from the status; sending is I/O.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::api::{DataDump, DataDumpStatus, DumpPhase, MediaPhase};
use crate::backend::SecretValue;

/// Why a message was not delivered (never includes the webhook URL).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum NotifyError {
    /// The URL is not an http(s) URL.
    #[error("the webhook URL in the Secret is not a valid http(s) URL")]
    BadUrl,
    /// The receiver could not be reached.
    #[error("could not reach the webhook: {0}")]
    Unreachable(String),
    /// The receiver answered with an error.
    #[error("the webhook answered HTTP {0}")]
    Status(u16),
    /// No answer in time.
    #[error("the webhook did not answer within 10s")]
    Timeout,
}

/// Sends a message somewhere.
pub trait Notifier: Send + Sync {
    /// Posts `payload` (Slack's JSON) to the webhook.
    fn send(&self, webhook: &SecretValue, payload: &serde_json::Value)
    -> impl std::future::Future<Output = Result<(), NotifyError>> + Send;
}

/// Slack incoming webhooks over HTTPS (plain HTTP is allowed for local receivers).
#[derive(Clone)]
pub struct SlackNotifier {
    client: Client<hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>, Full<Bytes>>,
}

impl SlackNotifier {
    /// A notifier using the system's root certificates.
    pub fn new() -> std::io::Result<Self> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(SlackNotifier {
            client: Client::builder(TokioExecutor::new()).build(https),
        })
    }
}

impl Notifier for SlackNotifier {
    async fn send(&self, webhook: &SecretValue, payload: &serde_json::Value) -> Result<(), NotifyError> {
        let uri: hyper::Uri = webhook.expose().parse().map_err(|_| NotifyError::BadUrl)?;
        if !matches!(uri.scheme_str(), Some("https") | Some("http")) {
            return Err(NotifyError::BadUrl);
        }
        let body = serde_json::to_vec(payload).expect("JSON serializes");
        let request = hyper::Request::post(uri)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| NotifyError::BadUrl)?;
        let response = tokio::time::timeout(Duration::from_secs(10), self.client.request(request))
            .await
            .map_err(|_| NotifyError::Timeout)?
            // the error's Display may name the host; keep only its kind
            .map_err(|e| {
                NotifyError::Unreachable(if e.is_connect() {
                    "connection failed".into()
                } else {
                    "request failed".into()
                })
            })?;
        let status = response.status().as_u16();
        let _ = response.into_body().collect().await;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(NotifyError::Status(status))
        }
    }
}

/// The Slack message for a finished dump: outcome, duration, and per media type the S3
/// prefix, files, rows and bytes (or why it failed).
pub fn slack_message(dd: &DataDump, status: &DataDumpStatus) -> serde_json::Value {
    let name = format!(
        "{}/{}",
        dd.metadata.namespace.clone().unwrap_or_default(),
        dd.metadata.name.clone().unwrap_or_default()
    );
    let icon = if status.phase == DumpPhase::Succeeded {
        ":white_check_mark:"
    } else {
        ":x:"
    };
    let duration = match (status.start_time, status.completion_time) {
        (Some(s), Some(e)) => {
            let secs = e.duration_since(s).as_secs().max(0);
            format!(" in {}h{:02}m", secs / 3600, (secs % 3600) / 60)
        }
        _ => String::new(),
    };
    let mut lines = vec![format!("{icon} DataDump *{name}* {:?}{duration}", status.phase)];
    for m in &status.media {
        let line = match m.phase {
            MediaPhase::Succeeded => format!(
                "• `{}`: {} — {} files, {} rows, {}",
                m.media_type,
                m.s3_uri.clone().unwrap_or_default(),
                m.files.unwrap_or_default(),
                m.rows.map(|r| r.to_string()).unwrap_or_else(|| "?".into()),
                crate::contract::human_bytes(m.bytes.unwrap_or_default())
            ),
            _ => format!("• `{}`: {:?} — {}", m.media_type, m.phase, m.message.clone().unwrap_or_default()),
        };
        lines.push(line);
    }
    if status.phase == DumpPhase::Succeeded {
        lines.push(format!(
            "Download: `{}`",
            crate::api::keys::download_command(dd, status.dump_date.as_deref())
        ));
        if let Some(card) = &status.dataset_card {
            lines.push(format!("Dataset card: {card}"));
        }
    }
    serde_json::json!({ "text": lines.join("\n") })
}
