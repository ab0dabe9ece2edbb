//! Status writes: server-side apply of the planned status under one field manager, guarded by
//! the object's resourceVersion, and skipped when nothing but timestamps changed. I/O.

use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::FIELD_MANAGER;
use crate::api::{DataDump, DataDumpStatus};

/// The status without the timestamps that change on every write of an equal status.
fn comparable(status: &DataDumpStatus) -> DataDumpStatus {
    let mut s = status.clone();
    for c in &mut s.conditions {
        c.last_transition_time = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH);
    }
    s
}

/// Whether `new` differs from the object's status in anything but timestamps.
pub fn changed(dd: &DataDump, new: &DataDumpStatus) -> bool {
    dd.status.as_ref().is_none_or(|old| comparable(old) != comparable(new))
}

/// Writes `new` when it changed; returns whether it wrote.
pub async fn patch_if_changed(client: &Client, dd: &DataDump, new: &DataDumpStatus) -> Result<bool, kube::Error> {
    if !changed(dd, new) {
        return Ok(false);
    }
    let api: Api<DataDump> = Api::namespaced(client.clone(), &dd.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": "datadump.dev/v1alpha1",
        "kind": "DataDump",
        "metadata": {"name": dd.name_any(), "resourceVersion": dd.resource_version()},
        "status": new,
    });
    api.patch_status(&dd.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await?;
    Ok(true)
}
