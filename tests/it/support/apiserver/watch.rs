//! Watch streams: newline-delimited JSON events (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`,
//! `ERROR`) in resourceVersion order, replayed from the change history and then followed live.
//!
//! As on a real server, a watch from a resourceVersion older than the retained history gets a
//! `200` stream holding one `ERROR` event with a `410 Expired` Status, which makes kube-runtime's
//! watcher re-list. A stream ends at `timeoutSeconds`, on `drop_watches()`, and when the
//! server stops.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use super::objects::{partial, present};
use super::resources::ResourceDef;
use super::select::Filter;
use super::status::ApiError;
use super::store::{Change, ChangeType, Store};

/// The parameters of one watch request.
pub(crate) struct WatchRequest {
    pub def: Arc<ResourceDef>,
    pub version: String,
    pub filter: Filter,
    /// `resourceVersion`: `None`, `""` and `"0"` mean "current state first, then changes".
    pub resource_version: Option<String>,
    pub bookmarks: bool,
    pub send_initial_events: bool,
    /// Objects as PartialObjectMetadata (`Accept: ...;as=PartialObjectMetadata`).
    pub metadata_only: bool,
    pub timeout: Duration,
    pub bookmark_interval: Duration,
}

/// Everything a running stream needs.
struct Stream {
    pending: VecDeque<Bytes>,
    rx: broadcast::Receiver<Arc<Change>>,
    stop: watch::Receiver<u64>,
    deadline: Instant,
    next_bookmark: Instant,
    req: WatchRequest,
    /// The last change (of any kind) this stream has accounted for.
    seen_rv: u64,
    done: bool,
}

/// An object as this watch serves it.
fn shape(req: &WatchRequest, obj: &Value) -> Value {
    if req.metadata_only {
        partial(obj)
    } else {
        present(obj, &req.def, &req.version)
    }
}

fn line(event_type: &str, object: Value) -> Bytes {
    let mut text = json!({ "type": event_type, "object": object }).to_string();
    text.push('\n');
    Bytes::from(text)
}

fn bookmark(req: &WatchRequest, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({ "resourceVersion": rv.to_string() });
    if initial_end {
        meta["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    line(
        "BOOKMARK",
        json!({ "kind": req.def.kind, "apiVersion": req.def.api_version(&req.version), "metadata": meta }),
    )
}

/// The event a change means for this watch, if any: selector transitions turn a modification
/// into `ADDED` (now matching) or `DELETED` (no longer matching), as on a real server.
fn translate(req: &WatchRequest, change: &Change) -> Option<Bytes> {
    if change.key != req.def.key() {
        return None;
    }
    let now = req.filter.matches(&change.object);
    let event_type = match change.kind {
        ChangeType::Added if now => "ADDED",
        ChangeType::Deleted if now => "DELETED",
        ChangeType::Modified => {
            let before = change.old.as_ref().is_some_and(|o| req.filter.matches(o));
            match (before, now) {
                (true, true) => "MODIFIED",
                (false, true) => "ADDED",
                (true, false) => "DELETED",
                (false, false) => return None,
            }
        }
        _ => return None,
    };
    Some(line(event_type, shape(req, &change.object)))
}

/// A `410 Expired` error event.
fn expired(rv: u64, oldest: u64) -> Bytes {
    let status = ApiError::gone(format!("too old resource version: {rv} ({oldest})")).to_status();
    line("ERROR", status)
}

/// Starts a watch: the initial events are computed under the store lock, together with the
/// subscription, so no change is missed or sent twice.
pub(crate) fn start(store: &Store, stop: watch::Receiver<u64>, req: WatchRequest) -> Result<Response, ApiError> {
    let rx = store.subscribe();
    let seen_rv = store.rv();
    let mut pending = VecDeque::new();
    let from_now = matches!(req.resource_version.as_deref(), None | Some("" | "0"));
    if from_now || req.send_initial_events {
        for obj in store.select(&req.def, &req.filter) {
            pending.push_back(line("ADDED", shape(&req, &obj)));
        }
        if req.send_initial_events && req.bookmarks {
            pending.push_back(bookmark(&req, seen_rv, true));
        }
    } else {
        let rv_text = req.resource_version.as_deref().unwrap_or_default();
        let rv: u64 = rv_text
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv_text:?}")))?;
        if rv < store.oldest_valid() {
            pending.push_back(expired(rv, store.oldest_valid()));
            return Ok(respond(Stream::ended(pending, rx, stop, req)));
        }
        pending.extend(store.history_after(rv).iter().filter_map(|c| translate(&req, c)));
    }
    let now = Instant::now();
    Ok(respond(Stream {
        pending,
        rx,
        stop,
        deadline: now + req.timeout,
        next_bookmark: now + req.bookmark_interval,
        req,
        seen_rv,
        done: false,
    }))
}

fn respond(stream: Stream) -> Response {
    let body = futures::stream::unfold(stream, |mut s| async move {
        let item = s.next().await?;
        Some((Ok::<_, Infallible>(item), s))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(body))
        .expect("static response parts")
}

impl Stream {
    fn ended(pending: VecDeque<Bytes>, rx: broadcast::Receiver<Arc<Change>>, stop: watch::Receiver<u64>, req: WatchRequest) -> Self {
        let now = Instant::now();
        Self {
            pending,
            rx,
            stop,
            deadline: now,
            next_bookmark: now,
            req,
            seen_rv: 0,
            done: true,
        }
    }

    /// The next chunk, or `None` when the stream ends.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                return Some(chunk);
            }
            if self.done {
                return None;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(self.deadline) => return None,
                _ = self.stop.changed() => return None,
                _ = tokio::time::sleep_until(self.next_bookmark), if self.req.bookmarks => {
                    self.pending.push_back(bookmark(&self.req, self.seen_rv, false));
                    self.next_bookmark = Instant::now() + self.req.bookmark_interval;
                }
                received = self.rx.recv() => match received {
                    Ok(change) if change.rv > self.seen_rv => {
                        self.seen_rv = change.rv;
                        self.pending.extend(translate(&self.req, &change));
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.pending.push_back(expired(self.seen_rv, self.seen_rv + 1));
                        self.done = true;
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    }
}
