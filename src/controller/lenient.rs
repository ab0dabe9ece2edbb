//! A watch (of DataDumps or DataDumpSchedules) that survives objects which do not match the Rust types (an older or newer
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

/// What the watch can type: DataDump and DataDumpSchedule.
pub trait Watched:
    kube::Resource<DynamicType = ()> + serde::de::DeserializeOwned + Clone + std::fmt::Debug + Send + Sync + 'static
{
}

impl<K> Watched for K where
    K: kube::Resource<DynamicType = ()> + serde::de::DeserializeOwned + Clone + std::fmt::Debug + Send + Sync + 'static
{
}

/// The typed object without its managedFields (they are a large share of each stored object
/// and nothing reads them), or `None` (logged) when it does not match the kind's types.
fn typed<K: Watched>(mut obj: DynamicObject) -> Option<K> {
    obj.metadata.managed_fields = None;
    let value = serde_json::to_value(&obj).ok()?;
    match serde_path_to_error::deserialize::<_, K>(value) {
        Ok(dd) => Some(dd),
        Err(e) => {
            let problem: String = e.inner().to_string().chars().take(300).collect();
            let field: String = e.path().to_string().chars().take(200).collect();
            let kind = K::kind(&());
            warn!(name = %obj.name_any(), namespace = obj.namespace().unwrap_or_default(), %kind, %field, %problem, "ignoring an object that does not match the CRD");
            None
        }
    }
}

fn typed_event<K: Watched>(event: Event<DynamicObject>) -> Option<Event<K>> {
    Some(match event {
        Event::Apply(o) => Event::Apply(typed(o)?),
        Event::Delete(o) => Event::Delete(typed(o)?),
        Event::InitApply(o) => Event::InitApply(typed(o)?),
        Event::Init => Event::Init,
        Event::InitDone => Event::InitDone,
    })
}

/// The applied objects of `api` (which must point at `K`s), kept in `writer`'s store.
pub fn watch<K: Watched>(
    api: Api<DynamicObject>,
    config: watcher::Config,
    writer: Writer<K>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send {
    let events = watcher::watcher(api, config).filter_map(|r| std::future::ready(r.map(typed_event).transpose()));
    reflector::reflector(writer, events).applied_objects()
}
