//! A shared view of every instance this installation manages, so that a poll cycle costs one
//! paginated DescribeInstances however many DataDumps there are. Reads are served from a
//! snapshot younger than `max_age`; otherwise one caller refreshes while the others wait for
//! its result (single-flight). This process's own launches and terminations are written into
//! the snapshot as they succeed (so an attempt's instance is adopted at once, never launched
//! twice); a call whose outcome is unknown forces a refresh. I/O through the inner [`Compute`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::backend::{BackendError, Compute, InstanceFilter};
use crate::backend::{Instance, InstanceState, LaunchRequest, tags};

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
            let all = self.inner.instances(InstanceFilter::Managed).await?;
            // aged from the answer, not the request: when one fleet-wide describe takes longer
            // than max_age, every caller queued behind it would otherwise refresh again in turn
            let taken_at = Instant::now();
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
    async fn architecture(&self, instance_type: &str) -> Result<crate::worker::Arch, BackendError> {
        self.inner.architecture(instance_type).await
    }

    async fn instances(&self, filter: InstanceFilter<'_>) -> Result<Vec<Instance>, BackendError> {
        match filter {
            InstanceFilter::Owner(uid) => self.owner(uid).await,
            other => self.inner.instances(other).await,
        }
    }

    async fn launch(&self, req: &LaunchRequest) -> Result<String, BackendError> {
        match self.inner.launch(req).await {
            Ok(id) => {
                // Record what DescribeInstances would now list, so the next look adopts it
                // without a refresh (a refresh that ran meanwhile may already hold it).
                let instance = Instance {
                    id: id.clone(),
                    owner_uid: req.tags.get(tags::UID).cloned().unwrap_or_default(),
                    media_type: req.media_type.clone(),
                    attempt: req.attempt,
                    token: req.token.clone(),
                    state: InstanceState::Pending,
                };
                if let Some(s) = self.snapshot.lock().await.as_mut() {
                    let list = s.by_owner.entry(instance.owner_uid.clone()).or_default();
                    if !list.iter().any(|i| i.id == id) {
                        list.push(instance);
                    }
                }
                Ok(id)
            }
            Err(e) => {
                // the outcome is unknown: look again before anything else is decided
                self.mutations.fetch_add(1, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    async fn terminate(&self, instance_ids: &[String]) -> Result<(), BackendError> {
        let result = self.inner.terminate(instance_ids).await;
        if result.is_ok()
            && let Some(s) = self.snapshot.lock().await.as_mut()
        {
            for i in s
                .by_owner
                .values_mut()
                .flatten()
                .filter(|i| instance_ids.contains(&i.id) && i.state.needs_terminate())
            {
                i.state = InstanceState::ShuttingDown;
            }
        } else {
            self.mutations.fetch_add(1, Ordering::SeqCst);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// An in-memory compute that counts DescribeInstances calls (the cache's own logic is what
    /// is under test here; the EC2 adapter is tested against moto).
    #[derive(Default)]
    struct Counting {
        instances: Mutex<Vec<Instance>>,
        describes: AtomicU64,
        fail_launch: std::sync::atomic::AtomicBool,
    }

    impl Compute for Arc<Counting> {
        async fn instances(&self, _: InstanceFilter<'_>) -> Result<Vec<Instance>, BackendError> {
            self.describes.fetch_add(1, Ordering::SeqCst);
            Ok(self.instances.lock().unwrap().clone())
        }
        async fn launch(&self, req: &LaunchRequest) -> Result<String, BackendError> {
            if self.fail_launch.load(Ordering::SeqCst) {
                return Err(BackendError::Unavailable {
                    api: "RunInstances",
                    message: "timeout".into(),
                });
            }
            let id = format!("i-{}", req.token);
            let owner_uid = req.tags[tags::UID].clone();
            let i = Instance {
                id: id.clone(),
                owner_uid,
                media_type: req.media_type.clone(),
                attempt: req.attempt,
                token: req.token.clone(),
                state: InstanceState::Running,
            };
            self.instances.lock().unwrap().push(i);
            Ok(id)
        }
        async fn terminate(&self, _: &[String]) -> Result<(), BackendError> {
            Ok(())
        }
        async fn architecture(&self, _: &str) -> Result<crate::worker::Arch, BackendError> {
            Ok(crate::worker::Arch::X86_64)
        }
    }

    fn request(uid: &str, token: &str) -> LaunchRequest {
        LaunchRequest {
            media_type: "image".into(),
            attempt: 1,
            token: token.into(),
            instance: Default::default(),
            tags: [(tags::UID.to_string(), uid.to_string())].into(),
            job: crate::worker::job::sample(token),
            arch: crate::worker::Arch::X86_64,
            user_data: String::new(),
        }
    }

    #[tokio::test]
    async fn one_describe_serves_every_owner_and_own_launches_are_seen_at_once() {
        let inner = Arc::new(Counting::default());
        let cache = InstanceCache::new(inner.clone(), Duration::from_secs(60));
        for uid in ["a", "b", "c", "a"] {
            assert!(cache.instances(InstanceFilter::Owner(uid)).await.unwrap().is_empty());
        }
        assert_eq!(inner.describes.load(Ordering::SeqCst), 1);
        let id = cache.launch(&request("a", "t1")).await.unwrap();
        let seen = cache.instances(InstanceFilter::Owner("a")).await.unwrap();
        assert_eq!((seen.len(), seen[0].id.as_str(), seen[0].token.as_str()), (1, id.as_str(), "t1"));
        assert_eq!(inner.describes.load(Ordering::SeqCst), 1, "no refresh needed after our own launch");
        cache.terminate(std::slice::from_ref(&id)).await.unwrap();
        assert_eq!(
            cache.instances(InstanceFilter::Owner("a")).await.unwrap()[0].state,
            InstanceState::ShuttingDown
        );
    }

    #[tokio::test]
    async fn an_unknown_outcome_forces_a_refresh_and_old_snapshots_expire() {
        let inner = Arc::new(Counting::default());
        let cache = InstanceCache::new(inner.clone(), Duration::from_millis(50));
        cache.instances(InstanceFilter::Owner("a")).await.unwrap();
        inner.fail_launch.store(true, Ordering::SeqCst);
        assert!(cache.launch(&request("a", "t1")).await.is_err());
        cache.instances(InstanceFilter::Owner("a")).await.unwrap();
        assert_eq!(
            inner.describes.load(Ordering::SeqCst),
            2,
            "a failed launch may still have launched: look again"
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        cache.instances(InstanceFilter::Owner("a")).await.unwrap();
        assert_eq!(inner.describes.load(Ordering::SeqCst), 3, "an old snapshot is refreshed");
    }
}
