//! The Kubernetes API stand-in: an in-process HTTP server on 127.0.0.1 that the real
//! `kube::Client` (and `kubectl`) talk to through a normal kubeconfig. It is **not** a real API
//! server; it stores objects of any kind as JSON and follows the real server's semantics on the
//! points the controller relies on (each pinned by a test in `tests/it/standin.rs`):
//!
//! - one global `resourceVersion` counter; `uid`, `creationTimestamp` and `generation: 1` set on
//!   create; `generation` bumps when anything outside `metadata` (and `status`, for kinds with a
//!   status subresource) changes; a write that changes nothing is a no-op (no new version);
//! - `/status` writes change only `.status`; main-resource writes ignore `.status`;
//! - 409 `Conflict` for a stale `resourceVersion` (PUT, or a patch that sets one), 409
//!   `AlreadyExists`, 404 `NotFound`, all with a proper `Status` body;
//! - delete with finalizers sets `deletionTimestamp`; the object goes once they are all removed;
//!   adding finalizers to an object being deleted is a 422;
//! - list with label/field selectors and `limit`/`continue`; watch from a resourceVersion with
//!   history replay, bookmarks, `timeoutSeconds`, `sendInitialEvents`, and a `410` ERROR event
//!   once the version is compacted away;
//! - merge, JSON, strategic (as merge; refused for custom resources) and apply patches (apply as
//!   a merge under `fieldManager`, creating the object when absent);
//! - discovery and `meta.k8s.io/v1` Table output, enough for `kubectl get/apply/delete`.
//!
//! Built-in kinds: core `namespaces`, `secrets`, `configmaps`, `events`; `events.k8s.io/v1
//! events`; `coordination.k8s.io/v1 leases`; `apiextensions.k8s.io/v1
//! customresourcedefinitions` (creating a CRD object, or calling [`ApiServer::register_crd`],
//! serves its kind). Tests add faults with [`ApiServer::fail_next`],
//! [`ApiServer::set_fail_ratio`] and [`ApiServer::drop_watches`], and observe every request
//! with [`ApiServer::requests`].

mod http;
mod objects;
mod patch;
mod resources;
mod select;
mod status;
mod store;
mod table;
mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{broadcast, oneshot};

use select::Filter;
use store::Store;

/// The header [`ApiServer::client`] sends, so that the test's own calls can be told apart from
/// the controller's in [`ApiServer::requests`].
pub const TEST_CLIENT_HEADER: &str = "x-datadump-test-client";

/// One request the server received.
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
    /// API version of the path (`""` for non-resource paths).
    pub api_version: String,
    /// Resource plural (`""` for non-resource paths).
    pub resource: String,
    /// `Some("status")` for the status subresource.
    pub subresource: Option<String>,
    /// Namespace of the path, if it had one.
    pub namespace: Option<String>,
    /// Object name of the path, if it had one.
    pub name: Option<String>,
    /// Request `Content-Type` (`""` when none).
    pub content_type: String,
    /// HTTP status answered (`200` for a watch stream, whatever it then carried).
    pub status: u16,
    /// Whether the request came from the test's own client ([`ApiServer::client`]).
    pub from_test: bool,
}

/// Which requests a fault applies to: every field that is `Some` must equal the request's.
/// Build with [`FaultMatch::any`] and the chained setters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultMatch {
    /// RBAC verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`).
    pub verb: Option<String>,
    /// API group (`""` for core).
    pub api_group: Option<String>,
    /// Resource plural (`datadumps`, `secrets`, `leases`, ...).
    pub resource: Option<String>,
    /// `"status"`, or `""` for the main resource only.
    pub subresource: Option<String>,
    /// A namespace, or `""` for requests without one.
    pub namespace: Option<String>,
    /// Object name.
    pub name: Option<String>,
}

impl FaultMatch {
    /// Matches every resource request.
    pub fn any() -> Self {
        Self::default()
    }
    /// Only this RBAC verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`).
    pub fn verb(mut self, verb: &str) -> Self {
        self.verb = Some(verb.to_owned());
        self
    }
    /// Only this API group (`""` for core).
    pub fn api_group(mut self, group: &str) -> Self {
        self.api_group = Some(group.to_owned());
        self
    }
    /// Only this resource plural (`datadumps`, `secrets`, ...).
    pub fn resource(mut self, resource: &str) -> Self {
        self.resource = Some(resource.to_owned());
        self
    }
    /// Only this subresource (`"status"`, or `""` for the main resource).
    pub fn subresource(mut self, sub: &str) -> Self {
        self.subresource = Some(sub.to_owned());
        self
    }
    /// Only this namespace.
    pub fn namespace(mut self, ns: &str) -> Self {
        self.namespace = Some(ns.to_owned());
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

/// Pending injected faults.
#[derive(Debug, Default)]
struct Faults {
    /// `(remaining, status, matcher)`, consumed in order.
    next: Vec<(usize, u16, Option<FaultMatch>)>,
    ratio: f64,
    ratio_status: u16,
    /// Accumulated share: a request fails each time it reaches 1 (deterministic).
    credit: f64,
}

/// State shared by the handle and the server task.
pub(crate) struct Shared {
    store: Mutex<Store>,
    faults: Mutex<Faults>,
    records: Mutex<Vec<RequestRecord>>,
    /// Bumped to end every open watch stream.
    stop: tokio::sync::watch::Sender<u64>,
    bookmark_interval: Mutex<Duration>,
    addr: SocketAddr,
}

impl Shared {
    fn record(&self, record: RequestRecord) -> usize {
        let mut records = self.records.lock().expect("records lock");
        records.push(record);
        records.len() - 1
    }

    fn set_status(&self, index: usize, status: u16) {
        if let Some(r) = self.records.lock().expect("records lock").get_mut(index) {
            r.status = status;
        }
    }

    /// The status to fail this resource request with, if a fault applies.
    fn fault_for(&self, record: &RequestRecord) -> Option<u16> {
        let mut faults = self.faults.lock().expect("faults lock");
        let hit = faults
            .next
            .iter_mut()
            .find(|(left, _, m)| *left > 0 && m.as_ref().is_none_or(|m| m.matches(record)));
        if let Some((left, status, _)) = hit {
            *left -= 1;
            let status = *status;
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
}

/// A running stand-in; it stops (and ends its watch streams) when dropped.
pub struct ApiServer {
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl ApiServer {
    /// Starts the server on a free port of 127.0.0.1 with the built-in kinds registered.
    /// Must be called inside a Tokio runtime, which then runs the server.
    pub async fn start() -> ApiServer {
        // binding port 0 here is race-free, unlike probing with `net::free_port()`
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let (tx, _) = broadcast::channel(16_384);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new(tx)),
            faults: Mutex::new(Faults::default()),
            records: Mutex::new(Vec::new()),
            stop: tokio::sync::watch::Sender::new(0),
            bookmark_interval: Mutex::new(Duration::from_secs(60)),
            addr,
        });
        let (shutdown, stopped) = oneshot::channel::<()>();
        let app = http::router(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        ApiServer {
            shared,
            shutdown: Some(shutdown),
        }
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// A `kube::Client` for this server (default namespace `default`).
    pub fn client(&self) -> kube::Client {
        let mut config = kube::Config::new(self.url().parse().expect("server URL"));
        config.headers.push((
            hyper::header::HeaderName::from_static(TEST_CLIENT_HEADER),
            hyper::header::HeaderValue::from_static("1"),
        ));
        kube::Client::try_from(config).expect("kube client")
    }

    /// Writes `dir/kubeconfig` (cluster, context and user `standin`, no credentials, namespace
    /// `default`) and returns its path; usable by `kube` and by `kubectl --kubeconfig`.
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    server: {}\n\
             users:\n- name: standin\n  user: {{}}\ncontexts:\n- name: standin\n  context:\n    \
             cluster: standin\n    user: standin\n    namespace: default\ncurrent-context: standin\n",
            self.url()
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// Registers the kind a `CustomResourceDefinition` (JSON) defines — group, served versions,
    /// names (plural, kind, shortNames), scope, status subresource and the storage version's
    /// `additionalPrinterColumns` — and stores the CRD object (replacing one of the same name).
    /// Panics on an invalid CRD.
    pub fn register_crd(&self, crd: &Value) {
        let mut store = self.shared.store.lock().expect("store lock");
        let def = store
            .registry
            .lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            .expect("built-in CRD kind");
        let name = crd["metadata"]["name"].as_str().expect("CRD metadata.name");
        if let Ok(old) = store.get(&def, "", name) {
            let mut crd = crd.clone();
            crd["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
            store.update(&def, "", name, crd, false, false).expect("replace CRD");
        } else {
            store
                .create(&def, "", crd.clone(), false)
                .unwrap_or_else(|e| panic!("invalid CRD: {}", e.message));
        }
    }

    /// [`register_crd`](Self::register_crd) from YAML text (such as the CRD manifest file).
    pub fn register_crd_yaml(&self, yaml: &str) {
        let crd: Value = serde_yaml::from_str(yaml).expect("CRD YAML");
        self.register_crd(&crd);
    }

    /// Fails the next `n` resource requests that match `matcher` (all when `None`) with
    /// `status` and a `Status` body. Discovery requests are never failed. Calls queue up:
    /// a request takes the first pending fault that matches it.
    pub fn fail_next(&self, n: usize, status: u16, matcher: Option<FaultMatch>) {
        self.shared.faults.lock().expect("faults lock").next.push((n, status, matcher));
    }

    /// Fails a `ratio` share (0..=1) of resource requests with `status`, deterministically
    /// (every `1/ratio`-th request); `0.0` disables. `fail_next` faults take precedence.
    pub fn set_fail_ratio(&self, ratio: f64, status: u16) {
        let mut faults = self.shared.faults.lock().expect("faults lock");
        faults.ratio = ratio.clamp(0.0, 1.0);
        faults.ratio_status = status;
        faults.credit = 0.0;
    }

    /// Ends every open watch stream now (clients see a normal end and reconnect).
    pub fn drop_watches(&self) {
        self.shared.stop.send_modify(|generation| *generation += 1);
    }

    /// How often watches that allow bookmarks get a BOOKMARK event (default 60 s, as a real
    /// server); applies to watches started afterwards.
    pub fn set_bookmark_interval(&self, every: Duration) {
        *self.shared.bookmark_interval.lock().expect("bookmark lock") = every;
    }

    /// Forgets the change history: a watch (or list `continue`) from any resourceVersion older
    /// than the current one now gets `410 Gone`.
    pub fn compact(&self) {
        self.shared.store.lock().expect("store lock").compact();
    }

    /// The latest resourceVersion handed out.
    pub fn resource_version(&self) -> u64 {
        self.shared.store.lock().expect("store lock").rv()
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.records.lock().expect("records lock").clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.records.lock().expect("records lock").clear();
    }

    /// An object straight from the store, bypassing HTTP. `resource` is a plural, singular,
    /// kind, short name or `plural.group` (`"datadumps"`, `"dd"`, `"leases"`,
    /// `"events.events.k8s.io"`); `namespace` is `""` for cluster-scoped kinds.
    pub fn get_object(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let store = self.shared.store.lock().expect("store lock");
        let def = store.registry.find(resource)?;
        store.get(&def, namespace, name).ok()
    }

    /// All objects of a kind (named as for [`get_object`](Self::get_object)), in one namespace
    /// or all (`None`), ordered by namespace and name.
    pub fn objects(&self, resource: &str, namespace: Option<&str>) -> Vec<Value> {
        let store = self.shared.store.lock().expect("store lock");
        let Some(def) = store.registry.find(resource) else {
            return Vec::new();
        };
        let filter = Filter {
            namespace: namespace.map(str::to_owned),
            ..Filter::default()
        };
        store.select(&def, &filter)
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.drop_watches();
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}
