//! A fault-injecting HTTP proxy in front of the real API server, one per test world, on a free
//! port of 127.0.0.1. The controller's kubeconfig points here (plain HTTP, its own
//! ServiceAccount token, which passes through untouched); the proxy forwards every request over
//! TLS to kube-apiserver and streams the answer back (watches included). Along the way it
//!
//! - **records** every request (method, path, RBAC verb, group, resource, subresource,
//!   namespace, name, status answered);
//! - **fails** requests on demand instead of forwarding them: the next `n` matching ones
//!   ([`KubeProxy::fail_next`]) or a deterministic share of all resource requests
//!   ([`KubeProxy::set_fail_ratio`]), with a `Status` body as the API server writes it (500
//!   `InternalError`, 409 `Conflict`, ...);
//! - **drops watches**: [`KubeProxy::drop_watches`] ends every open watch stream cleanly, as a
//!   server restart or a load balancer timeout would; the client sees the end and re-watches.
//!
//! The server's own answers (RBAC's 403s, the schema's 422s, real 409s) pass through unchanged.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;
use futures::StreamExt;
use http_body_util::BodyExt;
use serde_json::json;
use tokio::sync::oneshot;

/// One request the proxy received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// HTTP method (`GET`, `PATCH`, ...).
    pub method: String,
    /// URL path, without the query.
    pub path: String,
    /// Raw query string (`""` when none).
    pub query: String,
    /// RBAC verb: `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`; for non-resource paths (discovery), the lowercase HTTP method.
    pub verb: String,
    /// API group (`""` for core and for non-resource paths).
    pub api_group: String,
    /// Resource plural (`""` for non-resource paths).
    pub resource: String,
    /// `Some("status")` for the status subresource.
    pub subresource: Option<String>,
    /// Namespace of the path, if it had one.
    pub namespace: Option<String>,
    /// Object name of the path, if it had one.
    pub name: Option<String>,
    /// HTTP status answered (injected or the server's; `200` for a watch stream).
    pub status: u16,
}

/// Which requests a fault applies to: every field that is `Some` must equal the request's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultMatch {
    verb: Option<String>,
    api_group: Option<String>,
    resource: Option<String>,
    subresource: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
}

impl FaultMatch {
    /// Matches every resource request.
    pub fn any() -> Self {
        Self::default()
    }
    /// Only this RBAC verb.
    pub fn verb(mut self, verb: &str) -> Self {
        self.verb = Some(verb.to_owned());
        self
    }
    /// Only this API group (`""` for core).
    pub fn api_group(mut self, group: &str) -> Self {
        self.api_group = Some(group.to_owned());
        self
    }
    /// Only this resource plural.
    pub fn resource(mut self, resource: &str) -> Self {
        self.resource = Some(resource.to_owned());
        self
    }
    /// Only this subresource (`"status"`, or `""` for the main resource).
    pub fn subresource(mut self, sub: &str) -> Self {
        self.subresource = Some(sub.to_owned());
        self
    }
    /// Only this object name.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    fn matches(&self, r: &RequestRecord) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&self.verb, &r.verb)
            && eq(&self.api_group, &r.api_group)
            && eq(&self.resource, &r.resource)
            && eq(&self.subresource, r.subresource.as_deref().unwrap_or_default())
            && eq(&self.namespace, r.namespace.as_deref().unwrap_or_default())
            && eq(&self.name, r.name.as_deref().unwrap_or_default())
    }
}

#[derive(Debug, Default)]
struct Faults {
    /// `(remaining, status, matcher)`, consumed in order.
    next: Vec<(usize, u16, FaultMatch)>,
    ratio: f64,
    ratio_status: u16,
    /// Accumulated share: a request fails each time it reaches 1 (deterministic).
    credit: f64,
}

struct Shared {
    upstream: kube::Client,
    faults: Mutex<Faults>,
    records: Mutex<Vec<RequestRecord>>,
    /// Bumped to end every open watch stream.
    stop: tokio::sync::watch::Sender<u64>,
}

impl Shared {
    fn fault_for(&self, record: &RequestRecord) -> Option<u16> {
        let mut faults = self.faults.lock().unwrap();
        if let Some(i) = faults.next.iter().position(|(left, _, m)| *left > 0 && m.matches(record)) {
            faults.next[i].0 -= 1;
            let status = faults.next[i].1;
            faults.next.retain(|(left, _, _)| *left > 0);
            return Some(status);
        }
        if faults.ratio > 0.0 {
            faults.credit += faults.ratio;
            if faults.credit >= 1.0 {
                faults.credit -= 1.0;
                return Some(faults.ratio_status);
            }
        }
        None
    }

    fn set_status(&self, index: usize, status: u16) {
        if let Some(r) = self.records.lock().unwrap().get_mut(index) {
            r.status = status;
        }
    }
}

/// A running proxy; it stops when dropped.
pub struct KubeProxy {
    shared: Arc<Shared>,
    addr: SocketAddr,
    _shutdown: oneshot::Sender<()>,
}

impl KubeProxy {
    /// Starts a proxy to `upstream` (`https://…`, its certificate signed by `ca_pem`). Must be
    /// called inside a Tokio runtime, which then runs it.
    pub async fn start(upstream: &str, ca_pem: &[u8]) -> KubeProxy {
        let mut config = kube::Config::new(upstream.parse().expect("upstream URL"));
        config.root_cert = Some(vec![super::pem_to_der(ca_pem)]);
        config.read_timeout = None;
        let shared = Arc::new(Shared {
            upstream: kube::Client::try_from(config).expect("upstream client"),
            faults: Mutex::new(Faults::default()),
            records: Mutex::new(Vec::new()),
            stop: tokio::sync::watch::Sender::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(forward).with_state(shared.clone());
        let shutdown = crate::support::net::serve(listener, app);
        KubeProxy {
            shared,
            addr,
            _shutdown: shutdown,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Fails the next `n` resource requests matching `matcher` with `status` instead of
    /// forwarding them. Calls queue up: a request takes the first pending fault it matches.
    pub fn fail_next(&self, n: usize, status: u16, matcher: FaultMatch) {
        self.shared.faults.lock().unwrap().next.push((n, status, matcher));
    }

    /// Fails a `ratio` share (0..=1) of resource requests with `status`, deterministically
    /// (every `1/ratio`-th one); `0.0` disables. [`fail_next`](Self::fail_next) comes first.
    pub fn set_fail_ratio(&self, ratio: f64, status: u16) {
        let mut faults = self.shared.faults.lock().unwrap();
        faults.ratio = ratio.clamp(0.0, 1.0);
        faults.ratio_status = status;
        faults.credit = 0.0;
    }

    /// Ends every open watch stream now.
    pub fn drop_watches(&self) {
        self.shared.stop.send_modify(|generation| *generation += 1);
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.records.lock().unwrap().clone()
    }
}

/// The request's RBAC attributes, from its method, path and query.
fn classify(method: &Method, path: &str, query: &str) -> RequestRecord {
    let mut record = RequestRecord {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        verb: method.as_str().to_lowercase(),
        api_group: String::new(),
        resource: String::new(),
        subresource: None,
        namespace: None,
        name: None,
        status: 0,
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match parts.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", group, _version, rest @ ..] => {
            record.api_group = group.to_string();
            rest
        }
        _ => return record,
    };
    let rest = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => {
            record.namespace = Some(ns.to_string());
            rest
        }
        rest => rest,
    };
    let Some(resource) = rest.first() else { return record };
    record.resource = resource.to_string();
    record.name = rest.get(1).map(|s| s.to_string());
    record.subresource = rest.get(2).map(|s| s.to_string());
    let watch = query.split('&').any(|kv| kv == "watch=true" || kv == "watch=1");
    record.verb = match (method.as_str(), record.name.is_some()) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        (other, _) => {
            return RequestRecord {
                verb: other.to_lowercase(),
                ..record
            };
        }
    }
    .to_string();
    record
}

/// The `Status` body the API server writes for `code`.
fn status_body(code: u16, r: &RequestRecord) -> String {
    let target = format!("{}.{} \"{}\"", r.resource, r.api_group, r.name.clone().unwrap_or_default());
    let (reason, message) = match code {
        409 => (
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {target}: the object has been modified; please apply your changes to the latest version and try again"
            ),
        ),
        429 => ("TooManyRequests", "the server has received too many requests (injected)".into()),
        503 => (
            "ServiceUnavailable",
            "the server is currently unable to handle the request (injected)".into(),
        ),
        _ => ("InternalError", format!("Internal error occurred: injected fault on {target}")),
    };
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code})
        .to_string()
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let mut record = classify(&parts.method, parts.uri.path(), parts.uri.query().unwrap_or_default());
    let fault = if record.resource.is_empty() {
        None
    } else {
        shared.fault_for(&record)
    };
    record.status = fault.unwrap_or(0);
    let index = {
        let mut records = shared.records.lock().unwrap();
        records.push(record.clone());
        records.len() - 1
    };
    if let Some(code) = fault {
        return Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Body::from(status_body(code, &record)))
            .unwrap();
    }
    let bytes = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return bad_gateway(&format!("reading the request: {e}")),
    };
    let mut upstream = axum::http::Request::builder()
        .method(parts.method.clone())
        .uri(parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    for (k, v) in &parts.headers {
        if !matches!(k.as_str(), "host" | "connection" | "content-length" | "transfer-encoding") {
            upstream = upstream.header(k, v);
        }
    }
    let upstream = upstream.body(kube::client::Body::from(bytes.to_vec())).expect("request");
    // subscribed before forwarding: a drop while the watch is being opened ends it too
    let mut stop = shared.stop.subscribe();
    let response = match shared.upstream.send(upstream).await {
        Ok(r) => r,
        Err(e) => return bad_gateway(&e.to_string()),
    };
    shared.set_status(index, response.status().as_u16());
    let (rparts, rbody) = response.into_parts();
    let stream = rbody.into_data_stream();
    let body = if record.verb == "watch" {
        Body::from_stream(stream.take_until(async move {
            let _ = stop.changed().await;
        }))
    } else {
        Body::from_stream(stream)
    };
    let mut out = Response::builder().status(rparts.status);
    for (k, v) in &rparts.headers {
        if !matches!(k.as_str(), "connection" | "content-length" | "transfer-encoding") {
            out = out.header(k, v);
        }
    }
    out.body(body).unwrap()
}

fn bad_gateway(message: &str) -> Response {
    let mut r = Response::new(Body::from(message.to_string()));
    *r.status_mut() = StatusCode::BAD_GATEWAY;
    r.headers_mut().insert("content-type", HeaderValue::from_static("text/plain"));
    r
}
