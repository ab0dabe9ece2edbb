//! The object store behind the stand-in: every object of every kind as JSON, one global
//! `resourceVersion` counter, the write rules of the real API server (generation, status
//! subresource, optimistic concurrency, finalizers) and the change history that watches replay.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::objects::{CRD_KEY, Ids, finalizers, generation_content, meta_str, normalize, now, prepare, present, valid_name};
use super::patch::{self, PatchType};
use super::resources::{self, Registry, ResourceDef};
use super::select::Filter;
use super::status::ApiError;

/// Changes kept for watch replay; a watch from before the oldest one gets `410 Gone`.
const HISTORY: usize = 20_000;

/// The type of a watch event a change produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeType {
    Added,
    Modified,
    Deleted,
}

/// One committed write, as watches see it.
#[derive(Debug)]
pub(crate) struct Change {
    pub rv: u64,
    /// The storage key (`group/plural`) of the object's kind.
    pub key: String,
    pub kind: ChangeType,
    /// The object after the change (for a deletion: its last state, with the deletion's rv).
    pub object: Value,
    /// The object before the change (modifications only), for selector transitions.
    pub old: Option<Value>,
}

/// One page of a list.
pub(crate) struct ListPage {
    pub items: Vec<Value>,
    pub rv: u64,
    pub cont: Option<String>,
    pub remaining: usize,
}

type Objects = BTreeMap<(String, String), Value>;

/// All objects, keyed by kind then `(namespace, name)`.
pub(crate) struct Store {
    pub registry: Registry,
    objects: HashMap<String, Objects>,
    rv: u64,
    history: VecDeque<Arc<Change>>,
    oldest_valid: u64,
    tx: broadcast::Sender<Arc<Change>>,
    ids: Ids,
}

impl Store {
    pub fn new(tx: broadcast::Sender<Arc<Change>>) -> Self {
        Self {
            registry: Registry::builtin(),
            objects: HashMap::new(),
            rv: 1,
            history: VecDeque::new(),
            oldest_valid: 1,
            tx,
            ids: Ids::new(),
        }
    }

    /// The latest resourceVersion handed out.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// The oldest resourceVersion a watch may start from.
    pub fn oldest_valid(&self) -> u64 {
        self.oldest_valid
    }

    /// Forgets the change history: every resourceVersion older than the current one is gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.oldest_valid = self.rv;
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    /// The retained changes after `rv`, oldest first.
    pub fn history_after(&self, rv: u64) -> Vec<Arc<Change>> {
        self.history.iter().filter(|c| c.rv > rv).cloned().collect()
    }

    fn emit(&mut self, key: &str, kind: ChangeType, object: Value, old: Option<Value>) {
        let change = Arc::new(Change {
            rv: self.rv,
            key: key.to_owned(),
            kind,
            object,
            old,
        });
        self.history.push_back(change.clone());
        if self.history.len() > HISTORY
            && let Some(evicted) = self.history.pop_front()
        {
            self.oldest_valid = evicted.rv;
        }
        // no receiver is fine: nobody watches
        let _ = self.tx.send(change);
    }

    fn bump(&mut self, obj: &mut Value) {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
    }

    fn slot(&mut self, def: &ResourceDef) -> &mut Objects {
        self.objects.entry(def.key()).or_default()
    }

    /// Kind-specific effects after a committed write (CRDs register or retire their kind).
    fn after_write(&mut self, def: &ResourceDef, obj: &Value, deleted: bool) {
        if def.key() != CRD_KEY {
            return;
        }
        if let Ok(crd_def) = resources::from_crd(obj) {
            if deleted {
                // its objects go with it (without watch events: the kind is no longer served)
                self.registry.unregister(&crd_def.key());
                self.objects.remove(&crd_def.key());
            } else {
                self.registry.register(crd_def);
            }
        }
    }

    pub fn get(&self, def: &ResourceDef, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&def.key())
            .and_then(|objs| objs.get(&(ns.to_owned(), name.to_owned())))
            .cloned()
            .ok_or_else(|| ApiError::not_found(def, name))
    }

    /// Every object of a kind that passes `filter`, ordered by namespace then name.
    pub fn select(&self, def: &ResourceDef, filter: &Filter) -> Vec<Value> {
        self.objects
            .get(&def.key())
            .map(|objs| objs.values().filter(|o| filter.matches(o)).cloned().collect())
            .unwrap_or_default()
    }

    /// A list page: at most `limit` objects after the `cont` token's position.
    pub fn list(&self, def: &ResourceDef, filter: &Filter, limit: Option<usize>, cont: Option<&str>) -> Result<ListPage, ApiError> {
        let (rv, start) = match cont.filter(|c| !c.is_empty()) {
            None => (self.rv, None),
            Some(token) => {
                let bad = || ApiError::bad_request("continue key is not valid");
                let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
                let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
                let (Some(rv), Some(ns), Some(name)) = (v["rv"].as_u64(), v["ns"].as_str(), v["name"].as_str()) else {
                    return Err(bad());
                };
                if rv < self.oldest_valid {
                    return Err(ApiError::gone(
                        "The provided continue parameter is too old to display a consistent list \
                         result. You can start a new list without the continue parameter.",
                    ));
                }
                (rv, Some((ns.to_owned(), name.to_owned())))
            }
        };
        let empty = Objects::new();
        let objs = self.objects.get(&def.key()).unwrap_or(&empty);
        let mut matching = objs
            .iter()
            .filter(|(k, _)| start.as_ref().is_none_or(|s| *k > s))
            .filter(|(_, o)| filter.matches(o));
        let limit = limit.filter(|l| *l > 0).unwrap_or(usize::MAX);
        let page: Vec<(&(String, String), &Value)> = matching.by_ref().take(limit).collect();
        let remaining = matching.count();
        let cont = match page.last() {
            Some(((ns, name), _)) if remaining > 0 => {
                let token = json!({ "rv": rv, "ns": ns, "name": name }).to_string();
                Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token))
            }
            _ => None,
        };
        Ok(ListPage {
            items: page.into_iter().map(|(_, o)| o.clone()).collect(),
            rv,
            cont,
            remaining,
        })
    }

    /// POST: creates an object in namespace `ns` (`""` for cluster-scoped kinds).
    pub fn create(&mut self, def: &ResourceDef, ns: &str, mut obj: Value, dry_run: bool) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("the request body must be a JSON object"));
        }
        if let Some(kind) = obj["kind"].as_str().filter(|k| *k != def.kind) {
            return Err(ApiError::bad_request(format!(
                "the kind {kind} does not match the resource {}",
                def.kind
            )));
        }
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        let name = match (meta_str(&obj, "name"), meta_str(&obj, "generateName")) {
            (Some(n), _) => n.to_owned(),
            (None, Some(prefix)) => {
                let prefix = prefix.to_owned();
                self.ids.generated_name(&prefix)
            }
            (None, None) => {
                return Err(ApiError::invalid(
                    def,
                    "",
                    "metadata.name: Required value: name or generateName is required",
                ));
            }
        };
        if !valid_name(&name) {
            return Err(ApiError::invalid(
                def,
                &name,
                "metadata.name: Invalid value: a lowercase RFC 1123 subdomain must consist of lower case \
                 alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            ));
        }
        if meta_str(&obj, "resourceVersion").is_some() {
            return Err(ApiError::internal("resourceVersion should not be set on objects to be created"));
        }
        match meta_str(&obj, "namespace") {
            Some(other) if def.namespaced && other != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {}
        }
        if self
            .objects
            .get(&def.key())
            .is_some_and(|o| o.contains_key(&(ns.to_owned(), name.clone())))
        {
            return Err(ApiError::already_exists(def, &name));
        }
        let uid = self.ids.uid();
        let meta = obj["metadata"].as_object_mut().expect("made an object above");
        meta.insert("name".into(), json!(name));
        if def.namespaced {
            meta.insert("namespace".into(), json!(ns));
        } else {
            meta.remove("namespace");
        }
        for field in ["deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"] {
            meta.remove(field);
        }
        meta.insert("uid".into(), json!(uid));
        meta.insert("creationTimestamp".into(), json!(now()));
        meta.insert("generation".into(), json!(1));
        if def.status_subresource
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        let mut obj = present(&obj, def, &def.versions[0]);
        normalize(&mut obj);
        prepare(def, &mut obj, &name)?;
        if dry_run {
            return Ok(obj);
        }
        self.bump(&mut obj);
        self.slot(def).insert((ns.to_owned(), name), obj.clone());
        self.emit(&def.key(), ChangeType::Added, obj.clone(), None);
        self.after_write(def, &obj, false);
        Ok(obj)
    }

    /// PUT: replaces an object (or, with `status`, only its status).
    pub fn update(&mut self, def: &ResourceDef, ns: &str, name: &str, body: Value, status: bool, dry_run: bool) -> Result<Value, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request("the request body must be a JSON object"));
        }
        let old = self.get(def, ns, name)?;
        match meta_str(&body, "resourceVersion") {
            Some(rv) if Some(rv) != meta_str(&old, "resourceVersion") => {
                return Err(ApiError::conflict(def, name));
            }
            None if def.custom => {
                return Err(ApiError::invalid(
                    def,
                    name,
                    "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
                ));
            }
            _ => {}
        }
        self.commit(def, ns, name, old, body, status, dry_run)
    }

    /// PATCH: applies `patch` to the current object (or creates it, for server-side apply).
    /// Returns the result and whether it was created.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        kind: PatchType,
        patch: &Value,
        status: bool,
        dry_run: bool,
    ) -> Result<(Value, bool), ApiError> {
        if kind == PatchType::Strategic && def.custom {
            return Err(ApiError::unsupported_media(
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            ));
        }
        if kind == PatchType::Apply && (patch["apiVersion"].as_str().is_none() || patch["kind"].as_str().is_none()) {
            return Err(ApiError::bad_request("apiVersion and kind must be set in an apply patch"));
        }
        let old = match self.get(def, ns, name) {
            Ok(old) => old,
            Err(e) if e.code == 404 && kind == PatchType::Apply && !status => {
                let mut obj = patch.clone();
                obj["metadata"]["name"] = json!(name);
                if let Some(m) = obj["metadata"].as_object_mut() {
                    m.remove("resourceVersion");
                }
                return self.create(def, ns, obj, dry_run).map(|o| (o, true));
            }
            Err(e) => return Err(e),
        };
        let mut doc = old.clone();
        match kind {
            PatchType::Json => patch::json_patch(&mut doc, patch).map_err(|e| ApiError::new(422, "Invalid", e))?,
            PatchType::Merge | PatchType::Strategic | PatchType::Apply => patch::merge_patch(&mut doc, patch),
        }
        if meta_str(&doc, "resourceVersion").is_some_and(|rv| Some(rv) != meta_str(&old, "resourceVersion")) {
            return Err(ApiError::conflict(def, name));
        }
        self.commit(def, ns, name, old, doc, status, dry_run).map(|o| (o, false))
    }

    /// The common end of update and patch: the server-owned fields, status subresource,
    /// finalizer and generation rules, then the write (or nothing, if nothing changed).
    #[allow(clippy::too_many_arguments)]
    fn commit(
        &mut self,
        def: &ResourceDef,
        ns: &str,
        name: &str,
        old: Value,
        new: Value,
        status: bool,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        if meta_str(&new, "name").is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta_str(&new, "name").unwrap_or_default()
            )));
        }
        if def.namespaced && meta_str(&new, "namespace").is_some_and(|n| n != ns) {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if let (Some(want), Some(have)) = (meta_str(&new, "uid"), meta_str(&old, "uid"))
            && want != have
        {
            return Err(ApiError::precondition(
                def,
                name,
                &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {have}"),
            ));
        }
        let next = if status {
            let mut next = old.clone();
            match new.get("status") {
                Some(s) => next["status"] = s.clone(),
                None => {
                    next.as_object_mut().map(|m| m.remove("status"));
                }
            }
            next
        } else {
            let mut next = new;
            if !next["metadata"].is_object() {
                next["metadata"] = json!({});
            }
            for field in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "resourceVersion",
            ] {
                match old["metadata"].get(field) {
                    Some(v) => next["metadata"][field] = v.clone(),
                    None => {
                        next["metadata"].as_object_mut().map(|m| m.remove(field));
                    }
                }
            }
            if def.status_subresource {
                match old.get("status") {
                    Some(s) => next["status"] = s.clone(),
                    None => {
                        next.as_object_mut().map(|m| m.remove("status"));
                    }
                }
            }
            next
        };
        let mut next = present(&next, def, &def.versions[0]);
        normalize(&mut next);
        prepare(def, &mut next, name)?;
        let deleting = meta_str(&old, "deletionTimestamp").is_some();
        if deleting {
            let before = finalizers(&old);
            let added: Vec<String> = finalizers(&next).into_iter().filter(|f| !before.contains(f)).collect();
            if !added.is_empty() {
                return Err(ApiError::invalid(
                    def,
                    name,
                    &format!(
                        "metadata.finalizers: Forbidden: no new finalizers can be added if the object \
                         is being deleted, found new finalizers {added:?}"
                    ),
                ));
            }
        }
        if generation_content(&old, def) != generation_content(&next, def) {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            next["metadata"]["generation"] = json!(generation);
        }
        if next == old {
            return Ok(old);
        }
        if dry_run {
            return Ok(next);
        }
        self.bump(&mut next);
        let key = (ns.to_owned(), name.to_owned());
        self.slot(def).insert(key.clone(), next.clone());
        self.emit(&def.key(), ChangeType::Modified, next.clone(), Some(old));
        if deleting && finalizers(&next).is_empty() {
            self.slot(def).remove(&key);
            self.bump(&mut next);
            self.emit(&def.key(), ChangeType::Deleted, next.clone(), None);
            self.after_write(def, &next, true);
        } else {
            self.after_write(def, &next, false);
        }
        Ok(next)
    }

    /// DELETE: removes an object, or only marks it (`deletionTimestamp`) while finalizers remain.
    /// Returns the object and whether it is gone.
    pub fn delete(&mut self, def: &ResourceDef, ns: &str, name: &str, options: &Value, dry_run: bool) -> Result<(Value, bool), ApiError> {
        let old = self.get(def, ns, name)?;
        let pre = &options["preconditions"];
        for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
            if let Some(want) = pre[field].as_str().filter(|s| !s.is_empty()) {
                let have = meta_str(&old, field).unwrap_or_default();
                if want != have {
                    return Err(ApiError::precondition(
                        def,
                        name,
                        &format!("Precondition failed: {label} in precondition: {want}, {label} in object meta: {have}"),
                    ));
                }
            }
        }
        if !finalizers(&old).is_empty() {
            if meta_str(&old, "deletionTimestamp").is_some() {
                return Ok((old, false));
            }
            let mut next = old.clone();
            next["metadata"]["deletionTimestamp"] = json!(now());
            next["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            if dry_run {
                return Ok((next, false));
            }
            self.bump(&mut next);
            self.slot(def).insert((ns.to_owned(), name.to_owned()), next.clone());
            self.emit(&def.key(), ChangeType::Modified, next.clone(), Some(old));
            return Ok((next, false));
        }
        if dry_run {
            return Ok((old, true));
        }
        let mut gone = self.slot(def).remove(&(ns.to_owned(), name.to_owned())).expect("read above");
        self.bump(&mut gone);
        self.emit(&def.key(), ChangeType::Deleted, gone.clone(), None);
        self.after_write(def, &gone, true);
        Ok((gone, true))
    }
}
