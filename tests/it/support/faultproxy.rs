//! A fault-injecting reverse proxy in front of moto, on a free port of 127.0.0.1. The
//! controller child is pointed at it through `AWS_ENDPOINT_URL`; every AWS call then passes
//! here, where it is
//!
//! - **counted per API** (EC2/IAM: `Action=` of the form body or query; SSM and other JSON
//!   services: the `X-Amz-Target` header; S3: method + path + query, named like the SDK
//!   operation, e.g. `ListObjectsV2`), with its wall-clock time, so tests and benchmarks can read
//!   "DescribeInstances calls so far" or "when was TerminateInstances called";
//! - optionally **delayed** (a fixed or seeded-random latency per call);
//! - optionally **answered with a fault** instead of being forwarded, for a deterministic share
//!   of calls (every Nth, or seeded pseudo-random): throttling as each service really says it
//!   (EC2: 503 `RequestLimitExceeded` XML; S3: 503 `SlowDown` XML; SSM/JSON: 400
//!   `ThrottlingException`), or a 500 `InternalError`. Faults can be limited to some APIs, and
//!   one-off faults queued for a named API with [`FaultProxy::fail_next`]. A
//!   [`FaultKind::LostResponse`] forwards the call (it takes effect) and still answers 500; a
//!   [`FaultKind::Reset`] answers nothing: the TCP connection is reset (RST) once the request
//!   has been read, as a load balancer or a broken network path does;
//! - optionally **held** ([`FaultProxy::hold`]): forwarded, but answered only on
//!   [`FaultProxy::release`], so a test can act while the caller waits for the answer;
//! - with [`FaultProxy::honour_client_token`], answered as EC2 answers a repeated RunInstances
//!   `ClientToken` (moto ignores the token): from the first successful answer, without a second
//!   instance. Off by default, so the controller's own adopt-by-tag logic is what tests prove.
//!
//! The AWS SDK retries throttling and 5xx itself (standard retry mode), as it would against
//! real AWS; each of its attempts is one call here.
//!
//! Forwarding is deliberately plain: the request body is read whole, sent to moto on a fresh
//! connection with `Connection: close`, and moto's answer is read to its end. The proxy stops
//! when dropped.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::oneshot;

/// The AWS service a call went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    /// EC2 (query protocol, XML answers).
    Ec2,
    /// S3 (REST, XML answers).
    S3,
    /// SSM (JSON 1.1 protocol).
    Ssm,
    /// IAM and other query-protocol services.
    OtherQuery,
    /// Other JSON-protocol services.
    OtherJson,
}

/// What an injected fault answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// The service's throttling error.
    Throttle,
    /// A 500 `InternalError`.
    ServerError,
    /// The call is forwarded and takes effect, but the caller gets a 500 (a lost response).
    LostResponse,
    /// The caller may not make this call (what IAM answers when the policy lacks the action):
    /// 403 `AccessDenied` (S3, SSM) or `UnauthorizedOperation` (EC2), not forwarded.
    AccessDenied,
    /// No answer: the call is not forwarded, and the connection is reset (RST) once the request
    /// has been read. The call's [`status`](Call::status) stays 0.
    Reset,
}

/// Which of the kinds a share of faults uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultMix {
    /// Always throttling.
    Throttle,
    /// Always 500.
    ServerError,
    /// Throttling and 500 in turn.
    Alternate,
    /// Throttling, 500 and a reset connection ([`FaultKind::Reset`]) in turn.
    AlternateWithResets,
}

/// Which calls get a fault.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    /// None.
    Never,
    /// Every `n`th matching call (1 = all of them).
    EveryNth(u64),
    /// A `ratio` share (0..=1) of matching calls, pseudo-random from `seed` (reproducible).
    Seeded { ratio: f64, seed: u64 },
}

/// The fault settings; change them at any time with [`FaultProxy::set_faults`].
#[derive(Clone, Debug)]
pub struct Faults {
    /// Which calls fail.
    pub schedule: Schedule,
    /// With what.
    pub mix: FaultMix,
    /// Only calls to these APIs may fail (`None`: any API).
    pub apis: Option<Vec<String>>,
    /// Latency added to every call (faulted or not), uniformly between the two bounds.
    pub latency: (Duration, Duration),
}

impl Faults {
    /// No faults, no latency.
    pub fn none() -> Self {
        Faults {
            schedule: Schedule::Never,
            mix: FaultMix::Throttle,
            apis: None,
            latency: (Duration::ZERO, Duration::ZERO),
        }
    }
    /// Every `n`th call fails (throttling unless [`mix`](Self::mix) says otherwise).
    pub fn every(n: u64) -> Self {
        Faults {
            schedule: Schedule::EveryNth(n.max(1)),
            ..Self::none()
        }
    }
    /// A seeded pseudo-random `ratio` share of calls fails.
    pub fn seeded(ratio: f64, seed: u64) -> Self {
        Faults {
            schedule: Schedule::Seeded {
                ratio: ratio.clamp(0.0, 1.0),
                seed,
            },
            ..Self::none()
        }
    }
    /// Sets the kind of fault.
    pub fn mix(mut self, mix: FaultMix) -> Self {
        self.mix = mix;
        self
    }
    /// Limits faults to these APIs.
    pub fn only(mut self, apis: &[&str]) -> Self {
        self.apis = Some(apis.iter().map(|s| s.to_string()).collect());
        self
    }
    /// Adds latency to every call, uniformly in `min..=max`.
    pub fn latency(mut self, min: Duration, max: Duration) -> Self {
        self.latency = (min, max.max(min));
        self
    }
}

/// One call the proxy received.
#[derive(Clone, Debug)]
pub struct Call {
    /// The service.
    pub service: Service,
    /// The API, e.g. `DescribeInstances` or `ListObjectsV2`.
    pub api: String,
    /// HTTP method and path (for S3 the bucket and key).
    pub method: String,
    /// The request path.
    pub path: String,
    /// The raw query string (S3: `list-type=2&prefix=…`).
    pub query: String,
    /// The `InstanceId.N` values of an EC2 call (TerminateInstances, DescribeInstances by id).
    pub instance_ids: Vec<String>,
    /// When the call arrived (wall clock, comparable with S3 `LastModified`).
    pub at: SystemTime,
    /// EC2's `ClientToken` of a RunInstances call.
    pub client_token: Option<String>,
    /// The fault injected, if any.
    pub injected: Option<FaultKind>,
    /// Not forwarded because its ClientToken already succeeded (answered from the cache, or
    /// with the injected fault; see [`FaultProxy::honour_client_token`]).
    pub replayed: bool,
    /// The HTTP status answered (0 while in flight, 502 when moto could not be reached).
    pub status: u16,
}

struct Inner {
    upstream: SocketAddr,
    /// Bounds the connections to moto (its threaded server drops connections beyond its listen
    /// backlog, which a thousand concurrent reconciles would otherwise hit).
    upstream_slots: tokio::sync::Semaphore,
    faults: Mutex<State_>,
    calls: Mutex<Vec<Call>>,
    /// RunInstances answers by ClientToken, when EC2's idempotency is emulated.
    tokens: Mutex<Option<BTreeMap<String, Raw>>>,
    /// The API whose answers are held back until [`FaultProxy::release`], and how many are held.
    hold: Mutex<(Option<String>, usize)>,
    released: tokio::sync::watch::Sender<u64>,
}

/// An upstream answer, kept so that it can be replayed.
#[derive(Clone, Debug)]
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

struct State_ {
    faults: Faults,
    /// Matching calls seen since the faults were set (for `EveryNth`).
    seen: u64,
    rng: fastrand::Rng,
    /// Faults given so far by a mix that takes turns.
    turn: u64,
    /// One-off faults: (api, remaining, kind).
    queued: VecDeque<(String, usize, FaultKind)>,
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    inner: Arc<Inner>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`http://127.0.0.1:PORT`, e.g. moto's endpoint),
    /// with no faults. Must be called inside a Tokio runtime, which then runs it.
    pub async fn start(upstream: &str) -> FaultProxy {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("upstream is http://IP:PORT");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let inner = Arc::new(Inner {
            upstream,
            upstream_slots: tokio::sync::Semaphore::new(UPSTREAM_CONNECTIONS),
            faults: Mutex::new(State_ {
                faults: Faults::none(),
                seen: 0,
                rng: fastrand::Rng::with_seed(0),
                turn: 0,
                queued: VecDeque::new(),
            }),
            calls: Mutex::new(Vec::new()),
            tokens: Mutex::new(None),
            hold: Mutex::new((None, 0)),
            released: tokio::sync::watch::Sender::new(0),
        });
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let shutdown = serve(listener, app);
        FaultProxy {
            inner,
            addr,
            shutdown: Some(shutdown),
        }
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the fault settings (and restarts their schedule).
    pub fn set_faults(&self, faults: Faults) {
        let mut s = self.inner.faults.lock().expect("faults lock");
        if let Schedule::Seeded { seed, .. } = faults.schedule {
            s.rng = fastrand::Rng::with_seed(seed);
        }
        s.faults = faults;
        s.seen = 0;
    }

    /// No more faults or latency (queued one-off faults are dropped too).
    pub fn faults_off(&self) {
        self.set_faults(Faults::none());
        self.inner.faults.lock().expect("faults lock").queued.clear();
    }

    /// Fails the next `n` calls to `api` with `kind` (before any share-based fault).
    pub fn fail_next(&self, api: &str, n: usize, kind: FaultKind) {
        self.inner
            .faults
            .lock()
            .expect("faults lock")
            .queued
            .push_back((api.to_string(), n, kind));
    }

    /// Emulates EC2's `ClientToken` idempotency, which moto ignores: a RunInstances call whose
    /// token already succeeded is answered with the first call's answer, without reaching moto.
    /// Off by default, so that the controller's own adopt-by-tag logic is what tests prove.
    pub fn honour_client_token(&self, on: bool) {
        *self.inner.tokens.lock().expect("tokens lock") = on.then(BTreeMap::new);
    }

    /// Holds back the answers to `api` (forwarded, but not answered) until [`release`](Self::release)
    /// (or 60 s), so a test can act while the caller waits.
    pub fn hold(&self, api: &str) {
        *self.inner.hold.lock().expect("hold lock") = (Some(api.to_string()), 0);
    }

    /// How many answers are being held back right now.
    pub fn held(&self) -> usize {
        self.inner.hold.lock().expect("hold lock").1
    }

    /// Answers every held call, and holds no more.
    pub fn release(&self) {
        self.inner.hold.lock().expect("hold lock").0 = None;
        self.inner.released.send_modify(|n| *n += 1);
    }

    /// Every call so far, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.inner.calls.lock().expect("calls lock").clone()
    }

    /// How many calls reached the proxy for `api` (faulted ones included).
    pub fn count(&self, api: &str) -> usize {
        self.inner.calls.lock().expect("calls lock").iter().filter(|c| c.api == api).count()
    }

    /// How many calls for `api` were forwarded to moto (not faulted).
    pub fn forwarded(&self, api: &str) -> usize {
        self.inner
            .calls
            .lock()
            .expect("calls lock")
            .iter()
            .filter(|c| c.api == api && c.injected.is_none())
            .count()
    }

    /// Calls per API so far (faulted ones included).
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for c in self.inner.calls.lock().expect("calls lock").iter() {
            *m.entry(c.api.clone()).or_insert(0) += 1;
        }
        m
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> usize {
        self.inner
            .calls
            .lock()
            .expect("calls lock")
            .iter()
            .filter(|c| c.injected.is_some())
            .count()
    }

    /// Forgets the recorded calls.
    pub fn clear(&self) {
        self.inner.calls.lock().expect("calls lock").clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.release();
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
    }
}

/// The AWS service of a request: from the SigV4 credential scope, else from its shape.
fn service_of(headers: &HeaderMap, body: &[u8], query: &str) -> Service {
    let scope = header(headers, "authorization")
        .split("Credential=")
        .nth(1)
        .and_then(|c| c.split(',').next())
        .and_then(|c| c.split('/').nth(3))
        .unwrap_or_default()
        .to_string();
    match scope.as_str() {
        "ec2" => Service::Ec2,
        "s3" => Service::S3,
        "ssm" => Service::Ssm,
        _ if !header(headers, "x-amz-target").is_empty() => Service::OtherJson,
        _ if form_value(body, "Action").is_some() || form_value(query.as_bytes(), "Action").is_some() => Service::OtherQuery,
        _ => Service::S3,
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

/// `key`'s value in a form-encoded body or query string (no percent-decoding: API names are
/// plain).
fn form_value(text: &[u8], key: &str) -> Option<String> {
    let text = std::str::from_utf8(text).ok()?;
    text.split('&')
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')).map(str::to_string))
}

/// The values of every `PREFIXn=` key in a form body (`InstanceId.1=i-1&InstanceId.2=i-2`).
fn form_values(text: &[u8], prefix: &str) -> Vec<String> {
    let Ok(text) = std::str::from_utf8(text) else { return Vec::new() };
    text.split('&')
        .filter_map(|kv| kv.strip_prefix(prefix))
        .filter_map(|rest| {
            rest.split_once('=')
                .filter(|(n, _)| n.chars().all(|c| c.is_ascii_digit()))
                .map(|(_, v)| v.to_string())
        })
        .collect()
}

/// The API name of a call, as the SDK names the operation.
fn api_of(service: Service, method: &Method, path: &str, query: &str, headers: &HeaderMap, body: &[u8]) -> String {
    match service {
        Service::Ec2 | Service::OtherQuery => form_value(body, "Action")
            .or_else(|| form_value(query.as_bytes(), "Action"))
            .unwrap_or_else(|| "UnknownQueryAction".into()),
        Service::Ssm | Service::OtherJson => {
            let target = header(headers, "x-amz-target");
            target.rsplit('.').next().unwrap_or(target).to_string()
        }
        Service::S3 => {
            let segs: Vec<&str> = path.trim_start_matches('/').splitn(2, '/').filter(|s| !s.is_empty()).collect();
            let has = |q: &str| query.split('&').any(|kv| kv == q || kv.starts_with(&format!("{q}=")));
            let name = match (method.as_str(), segs.len()) {
                ("GET", 0) => "ListBuckets",
                ("GET", 1) if has("requestPayment") => "GetBucketRequestPayment",
                ("PUT", 1) if has("requestPayment") => "PutBucketRequestPayment",
                ("GET", 1) if has("list-type") => "ListObjectsV2",
                ("GET", 1) => "ListObjects",
                ("HEAD", 1) => "HeadBucket",
                ("PUT", 1) => "CreateBucket",
                ("DELETE", 1) => "DeleteBucket",
                ("POST", 1) if has("delete") => "DeleteObjects",
                ("GET", _) => "GetObject",
                ("HEAD", _) => "HeadObject",
                ("PUT", _) if !header(headers, "x-amz-copy-source").is_empty() => "CopyObject",
                ("PUT", _) if has("partNumber") => "UploadPart",
                ("PUT", _) => "PutObject",
                ("POST", _) if has("uploads") => "CreateMultipartUpload",
                ("POST", _) if has("uploadId") => "CompleteMultipartUpload",
                ("DELETE", _) => "DeleteObject",
                (m, _) => return format!("S3{m}"),
            };
            name.to_string()
        }
    }
}

/// Decides whether this call gets a fault.
fn fault_for(inner: &Inner, api: &str) -> (Option<FaultKind>, Duration) {
    let mut s = inner.faults.lock().expect("faults lock");
    let latency = {
        let (min, max) = s.faults.latency;
        if max > min {
            let span = (max - min).as_micros() as u64;
            min + Duration::from_micros(s.rng.u64(0..=span))
        } else {
            min
        }
    };
    if let Some(pos) = s.queued.iter().position(|(a, left, _)| a == api && *left > 0) {
        let kind = s.queued[pos].2;
        s.queued[pos].1 -= 1;
        s.queued.retain(|(_, left, _)| *left > 0);
        return (Some(kind), latency);
    }
    if s.faults.apis.as_ref().is_some_and(|apis| !apis.iter().any(|a| a == api)) {
        return (None, latency);
    }
    let hit = match s.faults.schedule {
        Schedule::Never => false,
        Schedule::EveryNth(n) => {
            s.seen += 1;
            s.seen.is_multiple_of(n)
        }
        Schedule::Seeded { ratio, .. } => s.rng.f64() < ratio,
    };
    if !hit {
        return (None, latency);
    }
    let kind = match s.faults.mix {
        FaultMix::Throttle => FaultKind::Throttle,
        FaultMix::ServerError => FaultKind::ServerError,
        FaultMix::Alternate => {
            s.turn += 1;
            if s.turn % 2 == 1 {
                FaultKind::Throttle
            } else {
                FaultKind::ServerError
            }
        }
        FaultMix::AlternateWithResets => {
            s.turn += 1;
            [FaultKind::Throttle, FaultKind::ServerError, FaultKind::Reset][((s.turn - 1) % 3) as usize]
        }
    };
    (Some(kind), latency)
}

/// The answer a real service gives for a fault.
fn fault_response(service: Service, kind: FaultKind, method: &Method, n: usize) -> Response {
    let request_id = format!("faultproxy-{n}");
    let (status, content_type, body) = match (service, kind) {
        (Service::Ec2 | Service::OtherQuery, FaultKind::Throttle) => (
            503,
            "text/xml;charset=UTF-8",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
            ),
        ),
        (Service::Ec2 | Service::OtherQuery, FaultKind::ServerError | FaultKind::LostResponse) => (
            500,
            "text/xml;charset=UTF-8",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>InternalError</Code><Message>An internal error has occurred.</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
            ),
        ),
        (Service::S3, FaultKind::Throttle) => (
            503,
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>{request_id}</RequestId></Error>"
            ),
        ),
        (Service::S3, FaultKind::ServerError | FaultKind::LostResponse) => (
            500,
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message><RequestId>{request_id}</RequestId></Error>"
            ),
        ),
        (Service::Ec2 | Service::OtherQuery, FaultKind::AccessDenied) => (
            403,
            "text/xml;charset=UTF-8",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation.</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
            ),
        ),
        (_, FaultKind::AccessDenied) => (
            403,
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>User: arn:aws:sts::123456789012:assumed-role/datadump-controller is not authorized to perform this action</Message><RequestId>{request_id}</RequestId></Error>"
            ),
        ),
        (Service::Ssm | Service::OtherJson, FaultKind::Throttle) => (
            400,
            "application/x-amz-json-1.1",
            "{\"__type\":\"ThrottlingException\",\"message\":\"Rate exceeded\"}".to_string(),
        ),
        (Service::Ssm | Service::OtherJson, FaultKind::ServerError | FaultKind::LostResponse) => (
            500,
            "application/x-amz-json-1.1",
            "{\"__type\":\"InternalServerError\",\"message\":\"An internal error occurred.\"}".to_string(),
        ),
        // never sent: the connection is reset instead (see `handle`)
        (_, FaultKind::Reset) => (500, "text/plain", String::new()),
    };
    let body = if method == Method::HEAD { String::new() } else { body };
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("x-amzn-requestid", request_id.as_str())
        .header("x-amz-request-id", request_id.as_str())
        .body(Body::from(body))
        .expect("static response parts")
}

/// Concurrent connections to moto at most.
const UPSTREAM_CONNECTIONS: usize = 32;

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "expect",
];

async fn handle(State(inner): State<Arc<Inner>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, 256 << 20).await {
        Ok(b) => b,
        Err(e) => {
            return Response::builder()
                .status(400)
                .body(Body::from(format!("faultproxy: reading the body: {e}")))
                .unwrap();
        }
    };
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or_default().to_string();
    let service = service_of(&parts.headers, &body, &query);
    let api = api_of(service, &parts.method, &path, &query, &parts.headers, &body);
    let client_token = (api == "RunInstances").then(|| form_value(&body, "ClientToken")).flatten();
    let (fault, latency) = fault_for(&inner, &api);
    let index = {
        let mut calls = inner.calls.lock().expect("calls lock");
        calls.push(Call {
            service,
            api: api.clone(),
            method: parts.method.to_string(),
            path: path.clone(),
            query: query.clone(),
            instance_ids: if service == Service::Ec2 {
                form_values(&body, "InstanceId.")
            } else {
                Vec::new()
            },
            at: SystemTime::now(),
            client_token: client_token.clone(),
            injected: fault,
            replayed: false,
            status: 0,
        });
        calls.len() - 1
    };
    if !latency.is_zero() {
        // injected latency, not synchronisation
        tokio::time::sleep(latency).await;
    }
    // EC2 idempotency, when emulated: a token that already succeeded gets its first answer
    let replay = client_token
        .as_ref()
        .and_then(|t| inner.tokens.lock().expect("tokens lock").as_ref().and_then(|m| m.get(t).cloned()));
    let known_token = || {
        if let Some(c) = inner.calls.lock().expect("calls lock").get_mut(index) {
            c.replayed = true;
        }
    };
    let response = match (fault, replay) {
        (Some(FaultKind::Reset), _) => {
            // the answer is never written: the connection's next write fails and resets it
            if let Some(ConnectInfo(conn)) = parts.extensions.get::<ConnectInfo<Conn>>() {
                conn.reset.store(true, Ordering::SeqCst);
            }
            return fault_response(service, FaultKind::Reset, &parts.method, index);
        }
        (Some(kind @ (FaultKind::Throttle | FaultKind::ServerError | FaultKind::AccessDenied)), _) => {
            fault_response(service, kind, &parts.method, index)
        }
        (Some(FaultKind::LostResponse), Some(_)) => {
            known_token();
            fault_response(service, FaultKind::LostResponse, &parts.method, index)
        }
        (None, Some(raw)) => {
            known_token();
            raw.into_response(false)
        }
        (_, None) => {
            let target = parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or(path);
            let result = {
                let _slot = inner.upstream_slots.acquire().await.expect("the semaphore is never closed");
                forward(inner.upstream, &parts.method, &target, &parts.headers, &body).await
            };
            if let (Ok(raw), Some(t)) = (&result, &client_token)
                && raw.status == 200
                && let Some(m) = inner.tokens.lock().expect("tokens lock").as_mut()
            {
                m.insert(t.clone(), raw.clone());
            }
            hold_back(&inner, &api).await;
            match (result, fault) {
                (Ok(_), Some(kind)) => fault_response(service, kind, &parts.method, index),
                (Ok(raw), None) => raw.into_response(parts.method == Method::HEAD),
                (Err(e), _) => Response::builder()
                    .status(502)
                    .body(Body::from(format!("faultproxy: upstream: {e}")))
                    .unwrap(),
            }
        }
    };
    if let Some(c) = inner.calls.lock().expect("calls lock").get_mut(index) {
        c.status = response.status().as_u16();
    }
    response
}

/// Serves `app` on `listener` until the returned sender is used or dropped, like
/// [`super::net::serve`], with each connection resettable from its handler ([`Conn`]).
fn serve(listener: tokio::net::TcpListener, app: Router) -> oneshot::Sender<()> {
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(ResettableListener(listener), app.into_make_service_with_connect_info::<Conn>())
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    stop
}

/// Accepts TCP connections that a handler can reset.
struct ResettableListener(tokio::net::TcpListener);

/// One accepted connection, as a handler sees it (`ConnectInfo<Conn>`): setting `reset` makes
/// the connection's next read or write fail, so the server drops it, with an RST.
#[derive(Clone, Debug)]
struct Conn {
    reset: Arc<AtomicBool>,
}

/// A TCP stream that fails once its connection's `reset` is set.
struct ResettableStream {
    tcp: tokio::net::TcpStream,
    reset: Arc<AtomicBool>,
}

impl axum::serve::Listener for ResettableListener {
    type Io = ResettableStream;
    type Addr = Conn;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((tcp, _)) => {
                    let reset = Arc::new(AtomicBool::new(false));
                    return (ResettableStream { tcp, reset: reset.clone() }, Conn { reset });
                }
                // out of file descriptors and the like: try again shortly (not synchronisation)
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr().map(|_| Conn {
            reset: Arc::new(AtomicBool::new(false)),
        })
    }
}

impl Connected<axum::serve::IncomingStream<'_, ResettableListener>> for Conn {
    fn connect_info(stream: axum::serve::IncomingStream<'_, ResettableListener>) -> Self {
        stream.remote_addr().clone()
    }
}

impl ResettableStream {
    fn check(&self) -> std::io::Result<()> {
        if self.reset.load(Ordering::SeqCst) {
            // with linger 0, closing sends an RST rather than a FIN
            let _ = self.tcp.set_zero_linger();
            Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
        } else {
            Ok(())
        }
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if let Err(e) = self.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        if let Err(e) = self.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.tcp).poll_write(cx, data)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        if let Err(e) = self.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if let Err(e) = self.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if let Err(e) = self.check() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// Waits while answers to `api` are held back (at most 60 s).
async fn hold_back(inner: &Inner, api: &str) {
    let mut released = inner.released.subscribe();
    {
        let mut hold = inner.hold.lock().expect("hold lock");
        if hold.0.as_deref() != Some(api) {
            return;
        }
        hold.1 += 1;
    }
    let _ = tokio::time::timeout(Duration::from_secs(60), released.changed()).await;
    inner.hold.lock().expect("hold lock").1 -= 1;
}

impl Raw {
    fn into_response(self, head_request: bool) -> Response {
        let mut builder = Response::builder().status(StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_GATEWAY));
        for (name, value) in &self.headers {
            if name == "content-length" && !head_request {
                continue;
            }
            if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
                builder = builder.header(name.as_str(), v);
            }
        }
        builder.body(Body::from(self.body)).expect("valid parts")
    }
}

/// Sends one request to moto on a fresh connection and reads the whole answer.
async fn forward(upstream: SocketAddr, method: &Method, target: &str, headers: &HeaderMap, body: &Bytes) -> std::io::Result<Raw> {
    let mut stream = tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(upstream))
        .await
        .map_err(|_| std::io::Error::other("connect timed out"))??;
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    for (name, value) in headers {
        if HOP_BY_HOP.contains(&name.as_str()) {
            continue;
        }
        head.push_str(name.as_str());
        head.push_str(": ");
        head.push_str(&String::from_utf8_lossy(value.as_bytes()));
        head.push_str("\r\n");
    }
    head.push_str(&format!("content-length: {}\r\nconnection: close\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.flush().await?;
    let mut raw = Vec::new();
    // moto answers within seconds; a bound keeps a stuck upstream from hanging a test
    tokio::time::timeout(Duration::from_secs(120), stream.read_to_end(&mut raw))
        .await
        .map_err(|_| std::io::Error::other("upstream read timed out"))??;
    parse_response(&raw, method == Method::HEAD)
}

/// Parses an HTTP/1.1 response read to its end (identity or chunked body).
fn parse_response(raw: &[u8], head_request: bool) -> std::io::Result<Raw> {
    let bad = |what: &str| std::io::Error::other(format!("bad upstream response: {what}"));
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("no header end"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| bad("header not UTF-8"))?;
    let mut rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("status line"))?;
    let mut headers = Vec::new();
    let mut chunked = false;
    let mut length: Option<usize> = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_string());
        match name.as_str() {
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "content-length" => {
                length = value.parse().ok();
                // kept for HEAD answers, where it is the object's size
                headers.push((name, value));
            }
            n if HOP_BY_HOP.contains(&n) => {}
            _ => headers.push((name, value)),
        }
    }
    let body = if head_request {
        Vec::new()
    } else if chunked {
        let mut out = Vec::new();
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").ok_or_else(|| bad("chunk size"))?;
            let size_text = std::str::from_utf8(&rest[..eol]).map_err(|_| bad("chunk size"))?;
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).map_err(|_| bad("chunk size"))?;
            rest = &rest[eol + 2..];
            if size == 0 {
                break;
            }
            if rest.len() < size + 2 {
                return Err(bad("short chunk"));
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        out
    } else {
        match length {
            Some(n) => rest[..n.min(rest.len())].to_vec(),
            None => rest.to_vec(),
        }
    };
    Ok(Raw { status, headers, body })
}

#[cfg(test)]
mod tests {
    // (also compiled, test functions left out, into the benchmarks that include this harness)
    #[allow(unused_imports)]
    use super::*;

    #[test]
    fn chunked_and_plain_answers_parse() {
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"abcde"[..]));
        let r = parse_response(b"HTTP/1.1 404 NOT FOUND\r\nContent-Length: 2\r\n\r\nnope", false).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"no"[..]));
    }

    #[tokio::test]
    async fn a_reset_answers_nothing_and_resets_the_connection() {
        // nothing listens upstream: a reset is never forwarded
        let proxy = FaultProxy::start("http://127.0.0.1:9").await;
        proxy.fail_next("ListBuckets", 1, FaultKind::Reset);
        let mut tcp = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nhost: s3\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        let read = tcp.read_to_end(&mut answer).await;
        assert_eq!(
            (read.map_err(|e| e.kind()), answer.as_slice()),
            (Err(std::io::ErrorKind::ConnectionReset), &b""[..])
        );
        let calls = proxy.calls();
        assert_eq!(
            (calls.len(), calls[0].api.as_str(), calls[0].injected, calls[0].status),
            (1, "ListBuckets", Some(FaultKind::Reset), 0)
        );
    }

    #[test]
    fn apis_are_named_like_the_sdk_operations() {
        let h = HeaderMap::new();
        assert_eq!(
            api_of(
                Service::Ec2,
                &Method::POST,
                "/",
                "",
                &h,
                b"Action=DescribeInstances&Version=2016-11-15"
            ),
            "DescribeInstances"
        );
        assert_eq!(
            api_of(Service::S3, &Method::GET, "/b", "list-type=2&prefix=x", &h, b""),
            "ListObjectsV2"
        );
        assert_eq!(api_of(Service::S3, &Method::GET, "/b/k/x", "", &h, b""), "GetObject");
        assert_eq!(api_of(Service::S3, &Method::PUT, "/b/k", "x-id=PutObject", &h, b""), "PutObject");
        let mut h = HeaderMap::new();
        h.insert("x-amz-target", HeaderValue::from_static("AmazonSSM.PutParameter"));
        assert_eq!(api_of(Service::Ssm, &Method::POST, "/", "", &h, b"{}"), "PutParameter");
    }
}
