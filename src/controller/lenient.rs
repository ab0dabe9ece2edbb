//! A DataDump watch that survives objects which do not match the Rust types (an older or newer
//! CRD, a schema-less API server, a hand-edited object): the watch reads untyped objects and
//! converts each one, so a malformed object is logged with its field path and skipped instead of
//! failing the whole list (which `Controller::new` retries forever, reconciling nothing) or
//! stalling the watch behind a growing backoff per bad event. The objects are kept without
//! `metadata.managedFields`, which nothing here reads and which is most of a small object's
//! size in the store. I/O: the watch.

use futures::{Stream, StreamExt};
use kube::ResourceExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher::{self, Event};
use tracing::warn;

use crate::api::DataDump;

/// The typed object without its managedFields, or `None` (logged) when it does not match the
/// DataDump types.
fn typed(mut obj: DynamicObject) -> Option<DataDump> {
    obj.metadata.managed_fields = None;
    let value = serde_json::to_value(&obj).ok()?;
    match serde_path_to_error::deserialize::<_, DataDump>(value) {
        Ok(dd) => Some(dd),
        Err(e) => {
            let problem: String = e.inner().to_string().chars().take(300).collect();
            let field: String = e.path().to_string().chars().take(200).collect();
            warn!(name = %obj.name_any(), namespace = obj.namespace().unwrap_or_default(), %field, %problem, "ignoring a DataDump that does not match the CRD");
            None
        }
    }
}

fn typed_event(event: Event<DynamicObject>) -> Option<Event<DataDump>> {
    Some(match event {
        Event::Apply(o) => Event::Apply(typed(o)?),
        Event::Delete(o) => Event::Delete(typed(o)?),
        Event::InitApply(o) => Event::InitApply(typed(o)?),
        Event::Init => Event::Init,
        Event::InitDone => Event::InitDone,
    })
}

/// The applied DataDumps of `api` (which must point at DataDumps), kept in `writer`'s store.
pub fn watch(
    api: Api<DynamicObject>,
    config: watcher::Config,
    writer: Writer<DataDump>,
) -> impl Stream<Item = Result<DataDump, watcher::Error>> + Send {
    let events = watcher::watcher(api, config).filter_map(|r| std::future::ready(r.map(typed_event).transpose()));
    reflector::reflector(writer, events).applied_objects()
}
