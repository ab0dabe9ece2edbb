//! DataDumps as raw JSON, and how objects the CRD refuses get onto the real server anyway:
//! written straight into etcd, as an object stored under an older CRD (or hand-edited) would be.
//! The fault tests use this to show the controller copes with what today's schema forbids.

use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};

use crate::support::cluster::World;
use crate::support::net::wait_for;

/// DataDumps as untyped objects (no typed round trip on the way in or out).
pub fn raw_dumps(w: &World) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("datadump.dev", "v1alpha1", "DataDump"), "datadumps");
    Api::namespaced_with(w.client.clone(), &w.ns, &ar)
}

/// Creates an object with exactly this body below `metadata` through the API. What the real
/// server refuses (422: the CRD's schema or CEL rules) is written straight into etcd instead, as
/// an object stored under an older CRD, or hand-edited, would be there. Returns the uid (`None`
/// when even etcd cannot hold it) and the server's refusal, if any.
pub async fn create_raw(w: &World, name: &str, body: Value) -> (Option<String>, Option<String>) {
    let mut obj = json!({"apiVersion": "datadump.dev/v1alpha1", "kind": "DataDump", "metadata": {"name": name, "namespace": w.ns}});
    for (k, v) in body.as_object().expect("an object body") {
        obj[k] = v.clone();
    }
    let typed: DynamicObject = serde_json::from_value(obj.clone()).unwrap();
    let refusal = match raw_dumps(w).create(&PostParams::default(), &typed).await {
        Ok(created) => return (created.metadata.uid, None),
        Err(kube::Error::Api(e)) if e.code == 422 || e.code == 413 || e.message.contains("too large") => e.message,
        Err(e) => panic!("create {name}: {e}"),
    };
    let uid = format!("{:08x}-0000-4000-8000-{:012x}", fastrand::u32(..), fastrand::u64(..1 << 48));
    obj["metadata"]["uid"] = json!(uid);
    obj["metadata"]["generation"] = json!(1);
    obj["metadata"]["creationTimestamp"] = json!(jiff::Timestamp::now().round(jiff::Unit::Second).unwrap().to_string());
    let bytes = obj.to_string().into_bytes();
    if bytes.len() > 1 << 20 {
        return (None, Some(refusal));
    }
    put_behind_the_servers_back(w, name, &bytes).await;
    (Some(uid), Some(refusal))
}

/// Stores a DataDump's JSON in etcd and waits until the API server serves it.
pub async fn put_behind_the_servers_back(w: &World, name: &str, bytes: &[u8]) {
    let key = format!("/registry/datadump.dev/datadumps/{}/{name}", w.ns);
    crate::support::kube::server().etcd_put(&key, bytes).await;
    let api = raw_dumps(w);
    let want: Value = serde_json::from_slice(bytes).unwrap();
    wait_for("the API server to serve what etcd holds", Duration::from_secs(30), || {
        let api = api.clone();
        let want = want.clone();
        async move {
            let got = api.get_opt(name).await.ok().flatten()?;
            (serde_json::to_value(&got).ok()?["metadata"]["uid"] == want["metadata"]["uid"]).then_some(())
        }
    })
    .await;
}
