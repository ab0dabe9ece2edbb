//! In-memory backends: [`MemoryCompute`] (instances with tags, launch/describe/terminate,
//! counted), [`MemoryStore`] (keys → bytes, presigned URLs that are only names) and
//! [`MemoryStage`] (staged parameters). They keep the contracts of [`Compute`],
//! [`ObjectStore`] and [`SecretStage`] without I/O or sleeps, so the whole observe → plan →
//! act loop runs in-process: the property test of the loop, and unit tests above the planner.
//! Time comes from a shared [`FakeClock`]; `Clone` shares the state.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use jiff::Timestamp;

use super::{BackendError, Bucket, Compute, Digest, InstanceFilter, ObjectMeta, ObjectStore, SecretStage, SecretValue};
use super::{Instance, InstanceState, LaunchRequest, tags};
use crate::contract::Arch;

/// A clock that moves only when told to; shared by the backends that stamp times.
#[derive(Clone, Debug)]
pub struct FakeClock(Arc<Mutex<Timestamp>>);

impl FakeClock {
    /// A clock showing `start`.
    pub fn new(start: Timestamp) -> Self {
        FakeClock(Arc::new(Mutex::new(start)))
    }

    /// The time it shows.
    pub fn now(&self) -> Timestamp {
        *lock(&self.0)
    }

    /// Moves it forward.
    pub fn advance(&self, by: std::time::Duration) {
        let mut t = lock(&self.0);
        *t += jiff::SignedDuration::try_from(by).expect("a test duration fits");
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // a panicking test thread must not hide the state from the assertions that follow
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One instance as the compute backend keeps it: what DescribeInstances lists, and the request
/// that launched it.
#[derive(Clone, Debug)]
pub struct MemoryInstance {
    /// As DescribeInstances lists it.
    pub instance: Instance,
    /// The `datadump.dev/managed-by` tag.
    pub managed_by: String,
    /// The request that launched it.
    pub request: LaunchRequest,
    /// Gone from DescribeInstances (EC2 forgets terminated instances after a while).
    pub vanished: bool,
    /// Listed by DescribeInstances only from then on (EC2 is eventually consistent).
    pub visible_from: Option<Timestamp>,
}

#[derive(Default)]
struct ComputeState {
    /// Set by [`MemoryCompute::like_ec2`].
    ec2: Option<(FakeClock, std::time::Duration)>,
    instances: Vec<MemoryInstance>,
    next_id: u64,
    describes: u64,
    launches: u64,
    terminates: u64,
}

/// [`Compute`] in memory. By default stricter than EC2: every launch is listed at once and
/// none is idempotent by token, so a duplicate launch by the caller shows as two instances.
/// [`MemoryCompute::like_ec2`] behaves as EC2 does instead.
#[derive(Clone, Default)]
pub struct MemoryCompute {
    state: Arc<Mutex<ComputeState>>,
}

impl MemoryCompute {
    /// As EC2: a launch is listed only `lag` after it (by `clock`), and a launch with a token
    /// already used returns that instance (RunInstances' ClientToken).
    pub fn like_ec2(clock: FakeClock, lag: std::time::Duration) -> Self {
        let compute = MemoryCompute::default();
        lock(&compute.state).ec2 = Some((clock, lag));
        compute
    }

    /// Every instance ever launched, vanished ones included, in launch order.
    pub fn all(&self) -> Vec<MemoryInstance> {
        lock(&self.state).instances.clone()
    }

    /// Applies `f` to every instance (not vanished ones), e.g. to move states as EC2 would.
    pub fn update(&self, mut f: impl FnMut(&mut MemoryInstance)) {
        for i in lock(&self.state).instances.iter_mut().filter(|i| !i.vanished) {
            f(i);
        }
    }

    /// DescribeInstances calls so far.
    pub fn describes(&self) -> u64 {
        lock(&self.state).describes
    }

    /// RunInstances calls so far.
    pub fn launches(&self) -> u64 {
        lock(&self.state).launches
    }

    /// TerminateInstances calls so far.
    pub fn terminates(&self) -> u64 {
        lock(&self.state).terminates
    }
}

impl Compute for MemoryCompute {
    async fn instances(&self, filter: InstanceFilter<'_>) -> Result<Vec<Instance>, BackendError> {
        let mut s = lock(&self.state);
        s.describes += 1;
        let now = s.ec2.as_ref().map(|(clock, _)| clock.now());
        Ok(s.instances
            .iter()
            .filter(|i| !i.vanished)
            .filter(|i| match (i.visible_from, now) {
                (Some(from), Some(now)) => now >= from,
                _ => true,
            })
            .filter(|i| match filter {
                InstanceFilter::Owner(uid) => i.instance.owner_uid == uid,
                InstanceFilter::AllManaged => i.instance.state != InstanceState::Terminated,
                InstanceFilter::Managed => true,
            })
            .map(|i| i.instance.clone())
            .collect())
    }

    async fn launch(&self, req: &LaunchRequest) -> Result<String, BackendError> {
        let mut s = lock(&self.state);
        s.launches += 1;
        if s.ec2.is_some()
            && let Some(same) = s.instances.iter().find(|i| i.instance.token == req.token)
        {
            return Ok(same.instance.id.clone());
        }
        let visible_from = s
            .ec2
            .as_ref()
            .map(|(clock, lag)| clock.now() + jiff::SignedDuration::try_from(*lag).expect("a test duration fits"));
        s.next_id += 1;
        let id = format!("i-{:017x}", s.next_id);
        let instance = req.pending_instance(&id);
        let managed_by = req.tags.get(tags::MANAGED_BY).cloned().unwrap_or_default();
        s.instances.push(MemoryInstance {
            instance,
            managed_by,
            request: req.clone(),
            vanished: false,
            visible_from,
        });
        Ok(id)
    }

    async fn terminate(&self, instance_ids: &[String]) -> Result<(), BackendError> {
        let mut s = lock(&self.state);
        s.terminates += 1;
        for i in s.instances.iter_mut().filter(|i| instance_ids.contains(&i.instance.id)) {
            if i.instance.state.needs_terminate() {
                i.instance.state = InstanceState::ShuttingDown;
            }
        }
        Ok(())
    }

    async fn architecture(&self, instance_type: &str) -> Result<Arch, BackendError> {
        Ok(Arch::of_instance_type(instance_type))
    }
}

/// One stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryObject {
    /// The body.
    pub body: Vec<u8>,
    /// When it was (last) written, by the [`FakeClock`].
    pub last_modified: Timestamp,
    /// Writes of this key so far.
    pub writes: u32,
}

/// [`ObjectStore`] in memory; every bucket exists, regions are ignored.
#[derive(Clone)]
pub struct MemoryStore {
    objects: Arc<Mutex<BTreeMap<(String, String), MemoryObject>>>,
    requester_pays: Arc<Mutex<BTreeSet<String>>>,
    clock: FakeClock,
}

impl MemoryStore {
    /// An empty store stamping objects with `clock`.
    pub fn new(clock: FakeClock) -> Self {
        MemoryStore {
            objects: Arc::default(),
            requester_pays: Arc::default(),
            clock,
        }
    }

    /// Every object as (bucket, key) → object.
    pub fn snapshot(&self) -> BTreeMap<(String, String), MemoryObject> {
        lock(&self.objects).clone()
    }

    /// Writes an object as someone other than the code under test would (a worker).
    pub fn insert(&self, bucket: &str, key: &str, body: Vec<u8>) {
        let now = self.clock.now();
        let mut objects = lock(&self.objects);
        let entry = objects.entry((bucket.to_string(), key.to_string())).or_insert(MemoryObject {
            body: Vec::new(),
            last_modified: now,
            writes: 0,
        });
        entry.body = body;
        entry.last_modified = now;
        entry.writes += 1;
    }

    fn read(&self, bucket: Bucket<'_>, key: &str) -> Option<Vec<u8>> {
        lock(&self.objects)
            .get(&(bucket.name.to_string(), key.to_string()))
            .map(|o| o.body.clone())
    }
}

impl ObjectStore for MemoryStore {
    async fn list(&self, bucket: Bucket<'_>, prefix: &str) -> Result<Vec<ObjectMeta>, BackendError> {
        Ok(lock(&self.objects)
            .iter()
            .filter(|((b, k), _)| b == bucket.name && k.starts_with(prefix))
            .map(|((_, key), o)| ObjectMeta {
                key: key.clone(),
                size: o.body.len() as u64,
                last_modified: o.last_modified,
            })
            .collect())
    }

    async fn get(&self, bucket: Bucket<'_>, key: &str) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self.read(bucket, key))
    }

    async fn get_tail(&self, bucket: Bucket<'_>, key: &str, len: u64) -> Result<Vec<u8>, BackendError> {
        let body = self.read(bucket, key).ok_or_else(|| BackendError::Rejected {
            api: "GetObject",
            code: "NoSuchKey".into(),
            message: format!("{key} does not exist"),
        })?;
        let from = body.len().saturating_sub(len as usize);
        Ok(body[from..].to_vec())
    }

    async fn put(&self, bucket: Bucket<'_>, key: &str, body: Vec<u8>, _content_type: &str) -> Result<(), BackendError> {
        self.insert(bucket.name, key, body);
        Ok(())
    }

    async fn head(&self, bucket: Bucket<'_>, key: &str) -> Result<Option<u64>, BackendError> {
        Ok(self.read(bucket, key).map(|b| b.len() as u64))
    }

    async fn digest(&self, bucket: Bucket<'_>, key: &str) -> Result<Option<Digest>, BackendError> {
        use sha2::Digest as _;
        Ok(self.read(bucket, key).map(|body| Digest {
            size: body.len() as u64,
            sha256: crate::worker::sink::hex(&sha2::Sha256::digest(&body)),
        }))
    }

    async fn requester_pays(&self, bucket: Bucket<'_>) -> Result<bool, BackendError> {
        Ok(lock(&self.requester_pays).contains(bucket.name))
    }

    async fn enable_requester_pays(&self, bucket: Bucket<'_>) -> Result<(), BackendError> {
        lock(&self.requester_pays).insert(bucket.name.to_string());
        Ok(())
    }

    async fn presign_get(&self, bucket: Bucket<'_>, key: &str, expires: std::time::Duration) -> Result<String, BackendError> {
        Ok(format!("memory://{}/{key}?method=GET&expires={}", bucket.name, expires.as_secs()))
    }

    async fn presign_put(&self, bucket: Bucket<'_>, key: &str, expires: std::time::Duration) -> Result<String, BackendError> {
        Ok(format!("memory://{}/{key}?method=PUT&expires={}", bucket.name, expires.as_secs()))
    }
}

/// [`SecretStage`] in memory.
#[derive(Clone, Default)]
pub struct MemoryStage {
    parameters: Arc<Mutex<BTreeMap<String, SecretValue>>>,
}

impl MemoryStage {
    /// The names of the staged parameters.
    pub fn names(&self) -> Vec<String> {
        lock(&self.parameters).keys().cloned().collect()
    }

    /// A staged value.
    pub fn value(&self, name: &str) -> Option<SecretValue> {
        lock(&self.parameters).get(name).cloned()
    }
}

impl SecretStage for MemoryStage {
    async fn put(&self, name: &str, value: &SecretValue) -> Result<(), BackendError> {
        lock(&self.parameters).insert(name.to_string(), value.clone());
        Ok(())
    }

    async fn delete(&self, names: &[String]) -> Result<(), BackendError> {
        let mut p = lock(&self.parameters);
        for n in names {
            p.remove(n);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket() -> Bucket<'static> {
        Bucket::named("b")
    }

    #[tokio::test]
    async fn the_store_lists_by_prefix_and_reads_tails() {
        let clock = FakeClock::new("2026-11-01T00:00:00Z".parse().unwrap());
        let store = MemoryStore::new(clock.clone());
        store.put(bucket(), "a/x", b"hello".to_vec(), "text/plain").await.unwrap();
        clock.advance(std::time::Duration::from_secs(5));
        store.put(bucket(), "a/y", b"!".to_vec(), "text/plain").await.unwrap();
        store.put(bucket(), "b/z", b"?".to_vec(), "text/plain").await.unwrap();
        let listed = store.list(bucket(), "a/").await.unwrap();
        assert_eq!(listed.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["a/x", "a/y"]);
        assert_eq!(listed[1].last_modified, clock.now());
        assert_eq!(store.get_tail(bucket(), "a/x", 3).await.unwrap(), b"llo");
        assert_eq!(store.head(bucket(), "a/x").await.unwrap(), Some(5));
        assert_eq!(store.get(bucket(), "nope").await.unwrap(), None);
        assert!(store.get_tail(bucket(), "nope", 1).await.is_err());
    }

    #[tokio::test]
    async fn compute_lists_by_owner_and_terminates_only_live_instances() {
        let compute = MemoryCompute::default();
        let mut req = LaunchRequest {
            media_type: "image".into(),
            attempt: 1,
            token: "t1".into(),
            instance: Default::default(),
            tags: [(tags::UID.to_string(), "uid-a".to_string())].into(),
            job: crate::contract::job::sample("t1"),
            arch: Arch::X86_64,
            user_data: String::new(),
        };
        let a = compute.launch(&req).await.unwrap();
        req.tags.insert(tags::UID.into(), "uid-b".into());
        let b = compute.launch(&req).await.unwrap();
        assert_ne!(a, b, "no idempotency by token: duplicates must show");
        let of_a = compute.instances(InstanceFilter::Owner("uid-a")).await.unwrap();
        assert_eq!((of_a.len(), of_a[0].state), (1, InstanceState::Pending));
        compute.terminate(std::slice::from_ref(&a)).await.unwrap();
        compute.update(|i| {
            if i.instance.state == InstanceState::ShuttingDown {
                i.instance.state = InstanceState::Terminated;
            }
        });
        assert_eq!(compute.instances(InstanceFilter::AllManaged).await.unwrap().len(), 1);
        assert_eq!(compute.instances(InstanceFilter::Managed).await.unwrap().len(), 2);
        assert_eq!((compute.launches(), compute.terminates(), compute.describes()), (2, 1, 3));
    }

    #[tokio::test]
    async fn like_ec2_a_launch_is_listed_late_and_its_token_is_idempotent() {
        let clock = FakeClock::new("2026-11-01T00:00:00Z".parse().unwrap());
        let compute = MemoryCompute::like_ec2(clock.clone(), std::time::Duration::from_secs(5));
        let req = LaunchRequest {
            media_type: "image".into(),
            attempt: 1,
            token: "t1".into(),
            instance: Default::default(),
            tags: [(tags::UID.to_string(), "uid-a".to_string())].into(),
            job: crate::contract::job::sample("t1"),
            arch: Arch::X86_64,
            user_data: String::new(),
        };
        let id = compute.launch(&req).await.unwrap();
        assert!(compute.instances(InstanceFilter::Owner("uid-a")).await.unwrap().is_empty());
        assert_eq!(compute.launch(&req).await.unwrap(), id, "the same ClientToken, the same instance");
        clock.advance(std::time::Duration::from_secs(5));
        assert_eq!(compute.instances(InstanceFilter::Owner("uid-a")).await.unwrap().len(), 1);
        assert_eq!((compute.all().len(), compute.launches()), (1, 2));
    }

    #[tokio::test]
    async fn staged_parameters_are_put_and_deleted() {
        let stage = MemoryStage::default();
        stage.put("/p/a", &SecretValue::new("s".into())).await.unwrap();
        stage.put("/p/b", &SecretValue::new("t".into())).await.unwrap();
        stage.delete(&["/p/a".into(), "/p/missing".into()]).await.unwrap();
        assert_eq!(stage.names(), ["/p/b"]);
        assert_eq!(stage.value("/p/b").map(|v| v.expose().to_string()), Some("t".into()));
    }
}
