//! A shared view of every instance this installation manages, so that a poll cycle costs one
//! paginated DescribeInstances however many DataDumps there are. Reads are served from a
//! snapshot younger than `max_age`. When it is older, one caller refreshes (single-flight) and
//! every other reader keeps using the last snapshot meanwhile (stale-while-revalidate: at 1,000
//! DataDumps a fleet-wide describe takes seconds, and readers queued behind it used to stall
//! the whole controller). This process's own launches and terminations are written into the
//! snapshot as they succeed (so an attempt's instance is adopted at once, never launched twice),
//! and into the snapshot a refresh already in flight installs; a call whose outcome is unknown
//! forces a refresh that every reader waits for. I/O through the inner [`Compute`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backend::{BackendError, Compute, InstanceFilter};
use crate::backend::{Instance, InstanceState, LaunchRequest};

struct Snapshot {
    taken_at: Instant,
    /// How long its describe took: a snapshot stays fresh at least that long, so that describes
    /// never run back to back when one takes longer than `max_age` (a slow or loaded EC2).
    took: Duration,
    /// The mutation counter when the refresh started.
    generation: u64,
    by_owner: HashMap<String, Vec<Instance>>,
}

/// What this process did to instances, kept while a refresh that may not show it runs.
enum Own {
    Launched(Instance),
    Terminated(Vec<String>),
}

#[derive(Default)]
struct Shared {
    snapshot: Option<Snapshot>,
    /// Own launches and terminations with the time they succeeded; a refresh that started
    /// earlier applies those of them that happened after its start before it installs.
    journal: Vec<(Instant, Own)>,
}

/// [`Compute`] with a shared, mutation-aware instance snapshot.
#[derive(Clone)]
pub struct InstanceCache<C> {
    inner: C,
    max_age: Duration,
    shared: Arc<Mutex<Shared>>,
    /// Held by the one caller that refreshes.
    refreshing: Arc<tokio::sync::Mutex<()>>,
    mutations: Arc<AtomicU64>,
}

/// The instances of one owner.
fn of_owner(s: &Snapshot, uid: &str) -> Vec<Instance> {
    s.by_owner.get(uid).cloned().unwrap_or_default()
}

impl Snapshot {
    fn apply(&mut self, own: &Own) {
        match own {
            Own::Launched(instance) => {
                let list = self.by_owner.entry(instance.owner_uid.clone()).or_default();
                if !list.iter().any(|i| i.id == instance.id) {
                    list.push(instance.clone());
                }
            }
            Own::Terminated(ids) => {
                for i in self
                    .by_owner
                    .values_mut()
                    .flatten()
                    .filter(|i| ids.contains(&i.id) && i.state.needs_terminate())
                {
                    i.state = InstanceState::ShuttingDown;
                }
            }
        }
    }
}

impl<C: Compute> InstanceCache<C> {
    /// Wraps `inner`; snapshots older than `max_age` are refreshed.
    pub fn new(inner: C, max_age: Duration) -> Self {
        InstanceCache {
            inner,
            max_age,
            shared: Arc::default(),
            refreshing: Arc::default(),
            mutations: Arc::default(),
        }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The owner's instances from the snapshot when it may serve: `Ok` when it is fresh, or
    /// merely old while `refresh_running`; `Err(old)` says whether it is only old (no unknown
    /// outcome since it was taken), so that a reader need not wait for a refresh.
    fn serve(&self, uid: &str, refresh_running: bool) -> Result<Vec<Instance>, bool> {
        let shared = self.lock();
        let Some(s) = shared.snapshot.as_ref() else {
            return Err(false);
        };
        if s.generation != self.mutations.load(Ordering::SeqCst) {
            return Err(false);
        }
        if s.taken_at.elapsed() < self.max_age.max(s.took) || refresh_running {
            return Ok(of_owner(s, uid));
        }
        Err(true)
    }

    async fn owner(&self, uid: &str) -> Result<Vec<Instance>, BackendError> {
        let only_old = match self.serve(uid, false) {
            Ok(list) => return Ok(list),
            Err(only_old) => only_old,
        };
        let _refresh = if only_old {
            match self.refreshing.try_lock() {
                Ok(guard) => guard,
                // someone is refreshing: the old snapshot serves meanwhile
                Err(_) => match self.serve(uid, true) {
                    Ok(list) => return Ok(list),
                    Err(_) => self.refreshing.lock().await,
                },
            }
        } else {
            self.refreshing.lock().await
        };
        // the refresh we may have waited for could already be what we need
        if let Ok(list) = self.serve(uid, false) {
            return Ok(list);
        }
        let generation = self.mutations.load(Ordering::SeqCst);
        let started = Instant::now();
        let all = self.inner.instances(InstanceFilter::Managed).await?;
        // aged from the answer, not the request: when one fleet-wide describe takes longer
        // than max_age, every caller queued behind it would otherwise refresh again in turn
        let taken_at = Instant::now();
        let mut by_owner: HashMap<String, Vec<Instance>> = HashMap::new();
        for i in all {
            by_owner.entry(i.owner_uid.clone()).or_default().push(i);
        }
        let mut snapshot = Snapshot {
            taken_at,
            took: taken_at.duration_since(started),
            generation,
            by_owner,
        };
        let mut shared = self.lock();
        // own launches and terminations made while the describe ran may be missing from it
        for (_, own) in shared.journal.iter().filter(|(at, _)| *at >= started) {
            snapshot.apply(own);
        }
        shared.journal.retain(|(at, _)| *at >= started);
        let list = of_owner(&snapshot, uid);
        shared.snapshot = Some(snapshot);
        Ok(list)
    }

    /// Writes one of our own successful changes into the snapshot, and into the journal for a
    /// refresh in flight (each refresh drops what happened before it started).
    fn record(&self, own: Own) {
        let mut shared = self.lock();
        if let Some(s) = shared.snapshot.as_mut() {
            s.apply(&own);
        }
        shared.journal.push((Instant::now(), own));
    }
}

impl<C: Compute> Compute for InstanceCache<C> {
    async fn architecture(&self, instance_type: &str) -> Result<crate::contract::Arch, BackendError> {
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
                let instance = req.pending_instance(&id);
                self.record(Own::Launched(instance));
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
        if result.is_ok() {
            self.record(Own::Terminated(instance_ids.to_vec()));
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
    use crate::backend::tags;

    /// An in-memory compute that counts DescribeInstances calls (the cache's own logic is what
    /// is under test here; the EC2 adapter is tested against moto).
    #[derive(Default)]
    struct Counting {
        instances: Mutex<Vec<Instance>>,
        describes: AtomicU64,
        fail_launch: std::sync::atomic::AtomicBool,
        /// A describe answers with the list as it was when called, this much later.
        slow: Mutex<Duration>,
    }

    impl Compute for Arc<Counting> {
        async fn instances(&self, _: InstanceFilter<'_>) -> Result<Vec<Instance>, BackendError> {
            self.describes.fetch_add(1, Ordering::SeqCst);
            let answer = self.instances.lock().unwrap().clone();
            let slow = *self.slow.lock().unwrap();
            tokio::time::sleep(slow).await;
            Ok(answer)
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
        async fn architecture(&self, _: &str) -> Result<crate::contract::Arch, BackendError> {
            Ok(crate::contract::Arch::X86_64)
        }
    }

    fn request(uid: &str, token: &str) -> LaunchRequest {
        LaunchRequest {
            media_type: "image".into(),
            attempt: 1,
            token: token.into(),
            instance: Default::default(),
            tags: [(tags::UID.to_string(), uid.to_string())].into(),
            job: crate::contract::job::sample(token),
            arch: crate::contract::Arch::X86_64,
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

    #[tokio::test]
    async fn readers_keep_the_old_snapshot_while_one_refresh_runs_and_launches_meanwhile_survive_it() {
        let inner = Arc::new(Counting::default());
        let cache = InstanceCache::new(inner.clone(), Duration::from_millis(50));
        cache.instances(InstanceFilter::Owner("a")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        *inner.slow.lock().unwrap() = Duration::from_millis(400);
        let refresh = tokio::spawn({
            let cache = cache.clone();
            async move { cache.instances(InstanceFilter::Owner("a")).await.unwrap() }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        // the describe in flight was answered before this launch
        let id = cache.launch(&request("b", "t1")).await.unwrap();
        let started = Instant::now();
        let seen = cache.instances(InstanceFilter::Owner("b")).await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(200), "a reader waited for the refresh");
        assert_eq!(seen.len(), 1, "our launch is in the old snapshot");
        refresh.await.unwrap();
        assert_eq!(inner.describes.load(Ordering::SeqCst), 2, "one refresh for every reader");
        let seen = cache.instances(InstanceFilter::Owner("b")).await.unwrap();
        assert_eq!(seen.len(), 1, "the refresh that missed our launch did not drop it");
        assert_eq!(seen[0].id, id);
    }
}
