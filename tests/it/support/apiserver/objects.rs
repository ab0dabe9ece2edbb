//! What the server does to an object's content regardless of the operation: timestamps,
//! metadata accessors, normalisation (no `null`s, no empty metadata collections, as a Go server
//! serialises), the generation rule, name validation and kind-specific defaulting.

use std::hash::{BuildHasher, RandomState};

use base64::Engine as _;
use serde_json::{Value, json};

use super::resources::{self, ResourceDef};
use super::status::ApiError;

/// The storage key of CustomResourceDefinitions, whose writes (un)register kinds.
pub(crate) const CRD_KEY: &str = "apiextensions.k8s.io/customresourcedefinitions";

/// Now, as Kubernetes writes timestamps (RFC 3339, whole seconds, `Z`).
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The object as served in `version` of its kind.
pub(crate) fn present(obj: &Value, def: &ResourceDef, version: &str) -> Value {
    let mut obj = obj.clone();
    obj["apiVersion"] = json!(def.api_version(version));
    obj["kind"] = json!(def.kind);
    obj
}

/// The object reduced to its metadata, as served to `Accept: ...;as=PartialObjectMetadata`
/// (kube's `get_metadata`, `list_metadata`, `watch_metadata` and `metadata_watcher`).
pub(crate) fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    })
}

/// Whether an `Accept` header asks for PartialObjectMetadata(List).
pub(crate) fn wants_metadata(accept: &str) -> bool {
    accept.contains("as=PartialObjectMetadata")
}

pub(crate) fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj["metadata"][field].as_str().filter(|s| !s.is_empty())
}

pub(crate) fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// Drops `null` map entries everywhere and empty metadata collections, as a Go server does.
pub(crate) fn normalize(obj: &mut Value) {
    fn strip_nulls(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.retain(|_, v| !v.is_null());
                m.values_mut().for_each(strip_nulls);
            }
            Value::Array(a) => a.iter_mut().for_each(strip_nulls),
            _ => {}
        }
    }
    strip_nulls(obj);
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in ["finalizers", "labels", "annotations", "ownerReferences", "managedFields"] {
            let empty = match meta.get(field) {
                Some(Value::Array(a)) => a.is_empty(),
                Some(Value::Object(m)) => m.is_empty(),
                _ => false,
            };
            if empty {
                meta.remove(field);
            }
        }
    }
}

/// The part of an object whose change bumps `metadata.generation`.
pub(crate) fn generation_content(obj: &Value, def: &ResourceDef) -> Value {
    let mut c = obj.clone();
    if let Some(m) = c.as_object_mut() {
        m.remove("metadata");
        if def.status_subresource {
            m.remove("status");
        }
    }
    c
}

pub(crate) fn valid_name(name: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    name.len() <= 253 && name.chars().all(ok_char) && alnum(name.chars().next()) && alnum(name.chars().last())
}

/// Kind-specific defaulting and validation, before a write is committed.
pub(crate) fn prepare(def: &ResourceDef, obj: &mut Value, name: &str) -> Result<(), ApiError> {
    match def.key().as_str() {
        "/secrets" => {
            if let Some(Value::Object(string_data)) = obj.as_object_mut().and_then(|m| m.remove("stringData")) {
                let b64 = base64::engine::general_purpose::STANDARD;
                for (k, v) in string_data {
                    obj["data"][k] = json!(b64.encode(v.as_str().unwrap_or_default()));
                }
            }
            if obj.get("type").is_none() {
                obj["type"] = json!("Opaque");
            }
        }
        "/namespaces" if obj["status"]["phase"].is_null() => obj["status"]["phase"] = json!("Active"),
        CRD_KEY => {
            resources::from_crd(obj).map_err(|e| ApiError::invalid(def, name, &e))?;
            let names = obj["spec"]["names"].clone();
            let ok = |t: &str| json!({ "type": t, "status": "True", "reason": "StandIn", "message": "" });
            obj["status"] = json!({
                "conditions": [ok("NamesAccepted"), ok("Established")],
                "acceptedNames": names,
            });
        }
        _ => {}
    }
    Ok(())
}

/// Unique ids and generated names: splitmix64 over a per-server random seed and a counter.
#[derive(Debug)]
pub(crate) struct Ids {
    seed: u64,
    counter: u64,
}

impl Ids {
    pub fn new() -> Self {
        Self {
            seed: RandomState::new().hash_one(0u8),
            counter: 0,
        }
    }

    fn random(&mut self) -> u64 {
        self.counter += 1;
        let mut z = self.seed.wrapping_add(self.counter.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn uid(&mut self) -> String {
        let (a, b) = (self.random(), self.random());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48 & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }

    pub fn generated_name(&mut self, prefix: &str) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut r = self.random();
        let suffix: String = (0..5)
            .map(|_| {
                let c = ALPHABET[(r % ALPHABET.len() as u64) as usize] as char;
                r /= ALPHABET.len() as u64;
                c
            })
            .collect();
        format!("{prefix}{suffix}")
    }
}
