//! The HTTP face of the stand-in: one axum fallback handler that parses Kubernetes API paths
//! (`/api/v1/...`, `/apis/GROUP/VERSION/...`, namespaced or not, with an optional `/status`),
//! records the request, applies injected faults, and dispatches to the store, the watch streams,
//! the Table printer or the discovery documents. Every answer is `application/json`.

use super::TEST_CLIENT_HEADER;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::objects::{partial, present, wants_metadata};
use super::patch::{PatchType, parse_body};
use super::resources::{self, Registry, ResourceDef};
use super::select::{FieldSelector, Filter, LabelSelector};
use super::status::{self, ApiError};
use super::{RequestRecord, Shared, table, watch};

/// The largest request body accepted.
const MAX_BODY: usize = 64 << 20;

/// The router serving everything through [`handle`].
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(handle).with_state(shared)
}

/// A resource path, resolved against the registry.
struct Target {
    def: Arc<ResourceDef>,
    version: String,
    /// The namespace segment (`None` for cluster-scoped kinds and all-namespace requests).
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

enum Route {
    /// A discovery or version document.
    Doc(Value),
    Resource(Target),
    Missing,
}

fn route(registry: &Registry, server: &str, path: &str) -> Route {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let doc = |d: Option<Value>| d.map_or(Route::Missing, Route::Doc);
    match segs.as_slice() {
        ["version"] => Route::Doc(resources::version()),
        ["healthz" | "readyz" | "livez"] => Route::Doc(json!("ok")),
        ["api"] => Route::Doc(registry.api_versions(server)),
        ["apis"] => Route::Doc(registry.api_group_list()),
        ["api", v] => doc(registry.resource_list("", v)),
        ["apis", g] => doc(registry.api_group(g)),
        ["apis", g, v] => doc(registry.resource_list(g, v)),
        ["api", v, rest @ ..] => resource(registry, "", v, rest),
        ["apis", g, v, rest @ ..] => resource(registry, g, v, rest),
        _ => Route::Missing,
    }
}

fn resource(registry: &Registry, group: &str, version: &str, rest: &[&str]) -> Route {
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, ..] if registry.lookup(group, version, plural).is_some_and(|d| d.namespaced) => {
            (Some((*ns).to_owned()), &rest[2..])
        }
        _ => (None, rest),
    };
    let Some(def) = rest.first().and_then(|plural| registry.lookup(group, version, plural)) else {
        return Route::Missing;
    };
    let named = rest.len() > 1;
    if def.namespaced && namespace.is_none() && named {
        return Route::Missing;
    }
    let status = match rest.get(2) {
        None => false,
        Some(&"status") if def.status_subresource && rest.len() == 3 => true,
        Some(_) => return Route::Missing,
    };
    Route::Resource(Target {
        def,
        version: version.to_owned(),
        namespace,
        name: rest.get(1).map(|s| (*s).to_owned()),
        status,
    })
}

fn json_response(code: u16, body: &Value) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("static response parts")
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.to_status())
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> String {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

/// The RBAC verb of a request on a resource.
fn verb(method: &Method, target: &Target, query: &HashMap<String, String>) -> &'static str {
    let watch = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    match (method.as_str(), target.name.is_some()) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "",
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let query: HashMap<String, String> = Query::try_from_uri(&parts.uri).map(|q| q.0).unwrap_or_default();
    let accept = header_text(&parts.headers, header::ACCEPT);
    let content_type = header_text(&parts.headers, header::CONTENT_TYPE);
    let route = {
        let store = shared.store.lock().expect("store lock");
        route(&store.registry, &shared.addr.to_string(), &path)
    };
    let mut record = RequestRecord {
        method: parts.method.to_string(),
        path: path.clone(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        verb: String::new(),
        api_group: String::new(),
        api_version: String::new(),
        resource: String::new(),
        subresource: None,
        namespace: None,
        name: None,
        content_type: content_type.clone(),
        status: 0,
        from_test: parts.headers.contains_key(TEST_CLIENT_HEADER),
    };
    let target = match route {
        Route::Doc(doc) => {
            record.verb = parts.method.as_str().to_lowercase();
            record.status = 200;
            shared.record(record);
            return json_response(200, &doc);
        }
        Route::Missing => {
            record.verb = parts.method.as_str().to_lowercase();
            record.status = 404;
            shared.record(record);
            return error_response(&ApiError::no_such_resource());
        }
        Route::Resource(t) => t,
    };
    record.verb = verb(&parts.method, &target, &query).to_owned();
    record.api_group = target.def.group.clone();
    record.api_version = target.version.clone();
    record.resource = target.def.plural.clone();
    record.subresource = target.status.then(|| "status".to_owned());
    record.namespace = target.namespace.clone();
    record.name = target.name.clone();
    let fault = shared.fault_for(&record);
    let index = shared.record(record);
    let response = match fault {
        Some(code) => error_response(&ApiError::from_code(code)),
        None => match axum::body::to_bytes(body, MAX_BODY).await {
            Err(e) => error_response(&ApiError::bad_request(format!("reading the body: {e}"))),
            Ok(bytes) => {
                let req = Req {
                    method: parts.method,
                    target,
                    query,
                    accept,
                    content_type,
                    body: bytes.to_vec(),
                };
                serve_resource(&shared, req).unwrap_or_else(|e| error_response(&e))
            }
        },
    };
    shared.set_status(index, response.status().as_u16());
    response
}

/// A resource request, parsed.
struct Req {
    method: Method,
    target: Target,
    query: HashMap<String, String>,
    accept: String,
    content_type: String,
    body: Vec<u8>,
}

impl Req {
    fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str).filter(|s| !s.is_empty())
    }

    fn filter(&self) -> Result<Filter, ApiError> {
        let mut fields = self.param("fieldSelector").unwrap_or_default().to_owned();
        if let Some(name) = &self.target.name {
            // a watch on a single object's path
            fields = format!("{fields},metadata.name={name}");
        }
        Ok(Filter {
            namespace: self.target.namespace.clone(),
            labels: LabelSelector::parse(self.param("labelSelector").unwrap_or_default()).map_err(ApiError::bad_request)?,
            fields: FieldSelector::parse(&fields).map_err(ApiError::bad_request)?,
        })
    }

    fn body_json(&self) -> Result<Value, ApiError> {
        if self.content_type.contains("protobuf") || self.content_type.contains("cbor") {
            return Err(ApiError::unsupported_media(format!(
                "the stand-in only accepts JSON and YAML bodies, not {}",
                self.content_type
            )));
        }
        parse_body(&self.content_type, &self.body).map_err(ApiError::bad_request)
    }

    fn list_doc(&self, items: Vec<Value>, meta: Value) -> Value {
        let def = &self.target.def;
        if table::wanted(&self.accept) {
            return table::table(def, &items, meta, self.param("includeObject"));
        }
        if wants_metadata(&self.accept) {
            let items: Vec<Value> = items.iter().map(partial).collect();
            return json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": meta,
                "items": items,
            });
        }
        let items: Vec<Value> = items.iter().map(|o| present(o, def, &self.target.version)).collect();
        json!({
            "kind": def.list_kind,
            "apiVersion": def.api_version(&self.target.version),
            "metadata": meta,
            "items": items,
        })
    }

    fn object_doc(&self, obj: &Value) -> Value {
        if table::wanted(&self.accept) {
            let meta = json!({ "resourceVersion": obj["metadata"]["resourceVersion"] });
            return table::table(&self.target.def, std::slice::from_ref(obj), meta, self.param("includeObject"));
        }
        if wants_metadata(&self.accept) {
            return partial(obj);
        }
        present(obj, &self.target.def, &self.target.version)
    }
}

fn serve_resource(shared: &Shared, req: Req) -> Result<Response, ApiError> {
    let def = req.target.def.clone();
    let ns = req.target.namespace.clone().unwrap_or_default();
    let name = req.target.name.clone().unwrap_or_default();
    let dry_run = req.query.get("dryRun").is_some_and(|d| d == "All");
    let status = req.target.status;
    let verb = verb(&req.method, &req.target, &req.query);
    let mut store = shared.store.lock().expect("store lock");
    match verb {
        "get" => Ok(json_response(200, &req.object_doc(&store.get(&def, &ns, &name)?))),
        "list" => {
            let limit = req.param("limit").and_then(|l| l.parse().ok());
            let page = store.list(&def, &req.filter()?, limit, req.param("continue"))?;
            let mut meta = json!({ "resourceVersion": page.rv.to_string() });
            if let Some(cont) = page.cont {
                meta["continue"] = json!(cont);
                meta["remainingItemCount"] = json!(page.remaining);
            }
            Ok(json_response(200, &req.list_doc(page.items, meta)))
        }
        "watch" => {
            let timeout = req.param("timeoutSeconds").and_then(|t| t.parse().ok()).unwrap_or(1800);
            let watch_req = watch::WatchRequest {
                def,
                version: req.target.version.clone(),
                filter: req.filter()?,
                resource_version: req.param("resourceVersion").map(str::to_owned),
                bookmarks: req.param("allowWatchBookmarks") == Some("true"),
                send_initial_events: req.param("sendInitialEvents") == Some("true"),
                metadata_only: wants_metadata(&req.accept),
                timeout: Duration::from_secs(timeout),
                bookmark_interval: *shared.bookmark_interval.lock().expect("bookmark lock"),
            };
            watch::start(&store, shared.stop.subscribe(), watch_req)
        }
        "create" if req.target.name.is_none() && !(def.namespaced && req.target.namespace.is_none()) => {
            let obj = store.create(&def, &ns, req.body_json()?, dry_run)?;
            Ok(json_response(201, &req.object_doc(&obj)))
        }
        "update" => {
            let obj = store.update(&def, &ns, &name, req.body_json()?, status, dry_run)?;
            Ok(json_response(200, &req.object_doc(&obj)))
        }
        "patch" => {
            let kind = PatchType::from_content_type(&req.content_type)
                .ok_or_else(|| ApiError::unsupported_media(format!("unsupported patch content type {:?}", req.content_type)))?;
            if kind == PatchType::Apply && req.param("fieldManager").is_none() {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                ));
            }
            let patch = parse_body(&req.content_type, &req.body).map_err(ApiError::bad_request)?;
            let (obj, created) = store.patch(&def, &ns, &name, kind, &patch, status, dry_run)?;
            Ok(json_response(if created { 201 } else { 200 }, &req.object_doc(&obj)))
        }
        "delete" => {
            let options = req.body_json()?;
            let (obj, gone) = store.delete(&def, &ns, &name, &options, dry_run)?;
            Ok(match (gone, def.custom) {
                (false, _) => json_response(202, &req.object_doc(&obj)),
                (true, true) => json_response(200, &req.object_doc(&obj)),
                (true, false) => json_response(200, &status::success(&def, &name, &obj["metadata"]["uid"])),
            })
        }
        "deletecollection" => {
            let options = req.body_json()?;
            let mut deleted = Vec::new();
            for obj in store.select(&def, &req.filter()?) {
                let obj_ns = obj["metadata"]["namespace"].as_str().unwrap_or_default().to_owned();
                let obj_name = obj["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                deleted.push(store.delete(&def, &obj_ns, &obj_name, &options, dry_run)?.0);
            }
            let meta = json!({ "resourceVersion": store.rv().to_string() });
            Ok(json_response(200, &req.list_doc(deleted, meta)))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}
