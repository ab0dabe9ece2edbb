//! The `local` compute backend: each "instance" is the rendered worker script running as a
//! child process on this machine (its own process group, shutdown stubbed), against whatever
//! S3/SSM endpoint the environment names. It makes the demo and a dry rehearsal of a real dump
//! possible without an AWS account. I/O (processes).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::backend::{BackendError, Compute, InstanceFilter};
use crate::plan::{Instance, InstanceState, LaunchRequest, tags};

struct Worker {
    instance: Instance,
    child: Option<Child>,
}

/// Worker scripts as child processes.
#[derive(Clone)]
pub struct LocalCompute {
    workdir: PathBuf,
    workers: Arc<Mutex<Vec<Worker>>>,
    progress_interval: u32,
}

impl LocalCompute {
    /// Workers get a folder each under `workdir`; they report progress every
    /// `progress_interval` seconds.
    pub fn new(workdir: PathBuf, progress_interval: u32) -> Self {
        LocalCompute { workdir, workers: Arc::default(), progress_interval }
    }

    /// Where a worker's files (script, work dir, log) live.
    pub fn worker_dir(&self, instance_id: &str) -> PathBuf {
        self.workdir.join(instance_id)
    }

    fn refresh(workers: &mut [Worker]) {
        for w in workers.iter_mut() {
            if let Some(child) = w.child.as_mut()
                && !matches!(child.try_wait(), Ok(None))
            {
                // the script shut "the instance" down: like EC2 with shutdown behaviour terminate
                w.child = None;
                w.instance.state = InstanceState::Terminated;
            }
        }
    }

    /// Process ids of workers still running (for tests and the Ctrl-C report).
    pub fn live_pids(&self) -> Vec<u32> {
        let mut workers = self.workers.lock().expect("workers");
        Self::refresh(&mut workers);
        workers.iter().filter_map(|w| w.child.as_ref().and_then(|c| c.id())).collect()
    }
}

fn unavailable(message: String) -> BackendError {
    BackendError::Unavailable { api: "LocalCompute", message }
}

/// Signals a whole process group (the worker script and everything it started).
async fn signal_group(pid: u32, signal: &str) {
    let _ = Command::new("kill").args([signal, "--", &format!("-{pid}")]).stderr(Stdio::null()).status().await;
}

impl Compute for LocalCompute {
    async fn instances(&self, filter: InstanceFilter<'_>) -> Result<Vec<Instance>, BackendError> {
        let mut workers = self.workers.lock().expect("workers");
        Self::refresh(&mut workers);
        Ok(workers
            .iter()
            .map(|w| w.instance.clone())
            .filter(|i| match filter {
                InstanceFilter::Owner(uid) => i.owner_uid == uid,
                InstanceFilter::AllManaged => i.state != InstanceState::Terminated,
                InstanceFilter::Managed => true,
            })
            .collect())
    }

    async fn launch(&self, req: &LaunchRequest) -> Result<String, BackendError> {
        let id = format!("local-{}-{}-{}", req.media_type, req.attempt, &req.token[4..12]);
        let dir = self.worker_dir(&id);
        std::fs::create_dir_all(dir.join("work")).map_err(|e| unavailable(format!("create {}: {e}", dir.display())))?;
        let script = dir.join("user-data.sh");
        std::fs::write(&script, &req.user_data).map_err(|e| unavailable(format!("write {}: {e}", script.display())))?;
        let log = std::fs::File::create(dir.join("worker.log")).map_err(|e| unavailable(e.to_string()))?;
        let child = Command::new("bash")
            .arg(&script)
            .env("DATADUMP_SHUTDOWN_CMD", "true")
            .env("DATADUMP_WORKDIR", dir.join("work"))
            .env("DATADUMP_SKIP_INSTALL", "1")
            .env("DATADUMP_PROGRESS_INTERVAL", self.progress_interval.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| unavailable(e.to_string()))?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(|e| unavailable(format!("start bash: {e}")))?;
        let tag = |k: &str| req.tags.get(k).cloned().unwrap_or_default();
        let instance = Instance {
            id: id.clone(),
            owner_uid: tag(tags::UID),
            media_type: req.media_type.clone(),
            attempt: req.attempt,
            token: req.token.clone(),
            state: InstanceState::Running,
        };
        self.workers.lock().expect("workers").push(Worker { instance, child: Some(child) });
        Ok(id)
    }

    async fn terminate(&self, instance_ids: &[String]) -> Result<(), BackendError> {
        let children: Vec<(usize, u32)> = {
            let workers = self.workers.lock().expect("workers");
            workers
                .iter()
                .enumerate()
                .filter(|(_, w)| instance_ids.contains(&w.instance.id))
                .filter_map(|(n, w)| w.child.as_ref().and_then(|c| c.id()).map(|pid| (n, pid)))
                .collect()
        };
        for (_, pid) in &children {
            signal_group(*pid, "-TERM").await;
        }
        for (n, pid) in children {
            let child = self.workers.lock().expect("workers")[n].child.take();
            if let Some(mut child) = child {
                if tokio::time::timeout(Duration::from_secs(5), child.wait()).await.is_err() {
                    signal_group(pid, "-KILL").await;
                    let _ = child.wait().await;
                }
            }
        }
        let mut workers = self.workers.lock().expect("workers");
        for w in workers.iter_mut().filter(|w| instance_ids.contains(&w.instance.id)) {
            w.instance.state = InstanceState::Terminated;
        }
        Ok(())
    }
}
