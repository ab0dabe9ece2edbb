//! Events: the planner's notes, published as `events.k8s.io/v1` Events on the object they
//! concern (what `kubectl describe` shows under Events).
//!
//! A note repeated on the same object — same reason, action, type and message — within
//! [`SERIES_TTL`] becomes a series: the first Event's count goes up ("x3 over 2m") instead of a
//! new Event. A different message is a new Event, so the image and the audio worker's
//! "Launched …" are both shown. (kube-runtime's `Recorder` keys its series without the message,
//! so the second media type's note was folded into the first's and lost; and it keeps every
//! Event it sent, whole, for six minutes: at 1,000 dumps that was the controller's peak memory
//! (67.3 → 52.7 MiB without it, docs/benchmarks.md section 1). Here only a hash, a name and a count are kept: [`Recent`].)
//!
//! Events are a view; the status is the record: a failed write is logged, never fatal.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use tracing::warn;

use crate::plan::{Note, NoteKind};

/// How long a published note is remembered for folding repeats into its series (client-go's
/// and kube-runtime's figure).
pub const SERIES_TTL: SignedDuration = SignedDuration::from_mins(6);

/// Publishes notes as Events. Cheap to clone: clones share what was recently sent.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    /// `reportingController`.
    controller: String,
    /// `reportingInstance`: the pod's name, else the controller's.
    instance: String,
    recent: Arc<Mutex<Recent>>,
}

impl Recorder {
    /// A recorder reporting as `controller` from `instance` (the pod's name, if known).
    pub fn new(client: Client, controller: &str, instance: Option<String>) -> Self {
        Recorder {
            client,
            controller: controller.to_string(),
            instance: instance.unwrap_or_else(|| controller.to_string()),
            recent: Arc::default(),
        }
    }

    /// Publishes each note on `regarding`, in order.
    pub async fn publish(&self, regarding: &ObjectReference, action: &str, notes: &[Note]) {
        for note in notes {
            if let Err(e) = self.publish_one(regarding, action, note).await {
                warn!(error = %e, reason = %note.reason, "could not record event");
            }
        }
    }

    async fn publish_one(&self, regarding: &ObjectReference, action: &str, note: &Note) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let message: String = note.message.chars().take(1000).collect();
        let key = Recent::key(regarding, action, note.kind, note.reason.as_str(), &message);
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let events: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        let step = self.recent.lock().expect("recent events").step(key, now);
        if let Step::Bump { name, count } = step {
            let series = serde_json::json!({"series": {"count": count, "lastObservedTime": MicroTime(now)}});
            match events.patch(&name, &PatchParams::default(), &Patch::Merge(&series)).await {
                Ok(_) => {
                    self.recent.lock().expect("recent events").sent(key, name, count, now);
                    return Ok(());
                }
                // the Event expired on the API server (or was deleted): start a new one
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let name = format!(
            "{}.{:x}",
            regarding.name.as_deref().unwrap_or(&self.controller),
            now.as_nanosecond()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.to_string()),
                ..Default::default()
            },
            action: Some(action.to_string()),
            reason: Some(note.reason.as_str().to_string()),
            note: Some(message),
            type_: Some(if note.kind == NoteKind::Warning { "Warning" } else { "Normal" }.to_string()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        };
        events.create(&PostParams::default(), &event).await?;
        self.recent.lock().expect("recent events").sent(key, name, 1, now);
        Ok(())
    }
}

/// What to do with a note: a new Event, or one more of an Event's series.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Create,
    Bump { name: String, count: i32 },
}

/// The notes sent in the last [`SERIES_TTL`], by a hash of what makes two notes the same.
/// Pure (the clock is an argument).
#[derive(Debug, Default)]
struct Recent {
    series: HashMap<u64, Series>,
    /// When expired entries were last dropped.
    pruned: Option<Timestamp>,
}

#[derive(Debug)]
struct Series {
    /// The Event's name.
    name: String,
    count: i32,
    last: Timestamp,
}

impl Recent {
    /// Two notes are the same when they concern the same object (by uid, else kind, namespace
    /// and name) with the same action, type, reason and message.
    fn key(regarding: &ObjectReference, action: &str, kind: NoteKind, reason: &str, message: &str) -> u64 {
        let mut h = DefaultHasher::new();
        match &regarding.uid {
            Some(uid) => uid.hash(&mut h),
            None => (&regarding.kind, &regarding.namespace, &regarding.name).hash(&mut h),
        }
        (action, kind == NoteKind::Warning, reason, message).hash(&mut h);
        h.finish()
    }

    /// Whether the note `key` is new or repeats one sent within [`SERIES_TTL`] of `now`.
    fn step(&mut self, key: u64, now: Timestamp) -> Step {
        // drop expired entries at most every few seconds, not on every note
        if self.pruned.is_none_or(|t| now.duration_since(t) > SignedDuration::from_secs(10)) {
            self.series.retain(|_, s| now.duration_since(s.last) < SERIES_TTL);
            self.pruned = Some(now);
        }
        match self.series.get(&key) {
            Some(s) if now.duration_since(s.last) < SERIES_TTL => Step::Bump {
                name: s.name.clone(),
                count: s.count.saturating_add(1),
            },
            _ => Step::Create,
        }
    }

    /// Records that the Event `name` now counts `count` notes, the last at `now`.
    fn sent(&mut self, key: u64, name: String, count: i32, now: Timestamp) {
        self.series.insert(key, Series { name, count, last: now });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(uid: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("DataDump".into()),
            namespace: Some("ns".into()),
            name: Some("catalog".into()),
            uid: Some(uid.into()),
            ..Default::default()
        }
    }

    fn key(uid: &str, kind: NoteKind, reason: &str, message: &str) -> u64 {
        Recent::key(&obj(uid), "Reconcile", kind, reason, message)
    }

    #[test]
    fn a_note_repeated_within_the_ttl_is_a_series_and_any_difference_is_a_new_event() {
        let t0: Timestamp = "2026-11-27T10:00:00Z".parse().unwrap();
        let at = |secs: i64| t0 + SignedDuration::from_secs(secs);
        let image = key("u1", NoteKind::Normal, "Launched", "image: instance i-1");
        let mut recent = Recent::default();
        assert_eq!(recent.step(image, at(0)), Step::Create);
        recent.sent(image, "catalog.1".into(), 1, at(0));
        let cases = [
            // (what differs, its key, expected step)
            (
                "the same note again",
                image,
                Step::Bump {
                    name: "catalog.1".into(),
                    count: 2,
                },
            ),
            (
                "another media type's message",
                key("u1", NoteKind::Normal, "Launched", "audio: instance i-2"),
                Step::Create,
            ),
            (
                "another reason",
                key("u1", NoteKind::Normal, "Succeeded", "image: instance i-1"),
                Step::Create,
            ),
            (
                "a warning",
                key("u1", NoteKind::Warning, "Launched", "image: instance i-1"),
                Step::Create,
            ),
            (
                "another object",
                key("u2", NoteKind::Normal, "Launched", "image: instance i-1"),
                Step::Create,
            ),
            (
                "another action",
                Recent::key(&obj("u1"), "Schedule", NoteKind::Normal, "Launched", "image: instance i-1"),
                Step::Create,
            ),
        ];
        for (what, k, want) in cases {
            assert_eq!(recent.step(k, at(60)), want, "{what}");
        }
        // the series goes on while repeats come within the TTL of the last one
        recent.sent(image, "catalog.1".into(), 2, at(60));
        assert_eq!(
            recent.step(image, at(60 + 359)),
            Step::Bump {
                name: "catalog.1".into(),
                count: 3
            }
        );
        // after the TTL it is forgotten: a new Event; and dropped from memory at the next
        // pruning (at most every 10 s)
        assert_eq!(recent.step(image, at(60 + 360)), Step::Create);
        assert_eq!(recent.step(image, at(60 + 371)), Step::Create);
        assert!(recent.series.is_empty());
    }
}
