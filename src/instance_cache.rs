//! A shared view of every instance this installation manages, so that a poll cycle costs one
//! paginated DescribeInstances however many DataDumps there are. Reads are served from a
//! snapshot that is younger than `max_age` *and* was taken after this process's last launch or
//! terminate; otherwise one caller refreshes while the others wait for its result
//! (single-flight). I/O through the inner [`Compute`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::backend::{BackendError, Compute, InstanceFilter};
use crate::plan::{Instance, LaunchRequest};

struct Snapshot {
    taken_at: Instant,
    /// The mutation counter when the refresh started.
    generation: u64,
    by_owner: HashMap<String, Vec<Instance>>,
}

/// [`Compute`] with a shared, mutation-aware instance snapshot.
#[derive(Clone)]
pub struct InstanceCache<C> {
    inner: C,
    max_age: Duration,
    snapshot: Arc<tokio::sync::Mutex<Option<Snapshot>>>,
    mutations: Arc<AtomicU64>,
}

impl<C: Compute> InstanceCache<C> {
    /// Wraps `inner`; snapshots older than `max_age` are refreshed.
    pub fn new(inner: C, max_age: Duration) -> Self {
        InstanceCache {
            inner,
            max_age,
            snapshot: Arc::default(),
            mutations: Arc::default(),
        }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    async fn owner(&self, uid: &str) -> Result<Vec<Instance>, BackendError> {
        let mut guard = self.snapshot.lock().await;
        let fresh = guard
            .as_ref()
            .is_some_and(|s| s.generation == self.mutations.load(Ordering::SeqCst) && s.taken_at.elapsed() < self.max_age);
        if !fresh {
            let generation = self.mutations.load(Ordering::SeqCst);
            let taken_at = Instant::now();
            let all = self.inner.instances(InstanceFilter::Managed).await?;
            let mut by_owner: HashMap<String, Vec<Instance>> = HashMap::new();
            for i in all {
                by_owner.entry(i.owner_uid.clone()).or_default().push(i);
            }
            *guard = Some(Snapshot {
                taken_at,
                generation,
                by_owner,
            });
        }
        Ok(guard.as_ref().and_then(|s| s.by_owner.get(uid).cloned()).unwrap_or_default())
    }
}

impl<C: Compute> Compute for InstanceCache<C> {
    async fn instances(&self, filter: InstanceFilter<'_>) -> Result<Vec<Instance>, BackendError> {
        match filter {
            InstanceFilter::Owner(uid) => self.owner(uid).await,
            other => self.inner.instances(other).await,
        }
    }

    async fn launch(&self, req: &LaunchRequest) -> Result<String, BackendError> {
        let result = self.inner.launch(req).await;
        self.mutations.fetch_add(1, Ordering::SeqCst);
        result
    }

    async fn terminate(&self, instance_ids: &[String]) -> Result<(), BackendError> {
        let result = self.inner.terminate(instance_ids).await;
        self.mutations.fetch_add(1, Ordering::SeqCst);
        result
    }
}
