//! The `local` compute backend: each "instance" is the rendered worker script (the same user
//! data EC2 would get) running as a child process on this machine, in its own process group,
//! with the shutdown stubbed, against whatever S3/SSM endpoint the AWS settings name. It makes
//! the demo and a dry rehearsal of a real dump possible without an AWS account. I/O
//! (processes).
//!
//! Like EC2 with `InstanceInitiatedShutdownBehavior=terminate`, a worker whose script has
//! exited is `terminated`, and whatever it left running in its process group is killed then.
//! Terminating sends SIGTERM to the script alone, whose trap stops odbc2parquet, writes
//! `_failure` and exits (bash runs the trap once the command in the foreground has finished, so
//! a worker that is just writing `_success` completes it instead of also writing `_failure`);
//! then SIGKILL goes to whatever is left of its group, at once or after a grace period. Dropping the last handle kills every group
//! still running, so even a panicking runner leaves no worker behind.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::backend::{BackendError, Compute, InstanceFilter};
use crate::plan::{Instance, InstanceState, LaunchRequest, tags};

/// How long a terminated worker gets to write `_failure` and exit before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(10);

/// Settings of the local backend.
#[derive(Clone, Debug)]
pub struct LocalSettings {
    /// One subfolder per worker: `user-data.sh`, `console.log`, `work/` (scratch and log).
    pub workdir: PathBuf,
    /// Seconds between the worker's progress reports.
    pub progress_interval: u32,
    /// Extra environment for workers (AWS endpoint and region).
    pub env: Vec<(String, String)>,
    /// Variables of the runner's environment workers must not see (the connection string:
    /// workers read it from SSM, as on EC2).
    pub env_remove: Vec<String>,
}

struct Worker {
    instance: Instance,
    /// The script's process; `None` once it has been waited for.
    child: Option<Child>,
    /// Its process group (the script's pid).
    pgid: u32,
}

/// The workers; dropping the last handle kills every group still running.
#[derive(Default)]
struct Workers(Mutex<Vec<Worker>>);

impl Drop for Workers {
    fn drop(&mut self) {
        let workers = self.0.get_mut().unwrap_or_else(|e| e.into_inner());
        for w in workers.iter().filter(|w| w.instance.state != InstanceState::Terminated) {
            signal_group_now(w.pgid, "KILL");
        }
    }
}

/// Worker scripts as child processes.
#[derive(Clone)]
pub struct LocalCompute {
    settings: Arc<LocalSettings>,
    workers: Arc<Workers>,
}

fn unavailable(message: String) -> BackendError {
    BackendError::Unavailable { api: "LocalCompute", message }
}

/// `kill -s SIGNAL -- TARGET` through bash's builtin (no procps needed); a target `-N` is a
/// process group.
fn kill_command(target: &str, signal: &str) -> std::process::Command {
    let mut c = std::process::Command::new("bash");
    c.args(["-c", "kill -s \"$0\" -- \"$1\" 2>/dev/null", signal, target])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn signal_group_now(pgid: u32, signal: &str) -> bool {
    kill_command(&format!("-{pgid}"), signal).status().is_ok_and(|s| s.success())
}

async fn signal_group(pgid: u32, signal: &str) -> bool {
    Command::from(kill_command(&format!("-{pgid}"), signal)).status().await.is_ok_and(|s| s.success())
}

async fn signal_process(pid: u32, signal: &str) -> bool {
    Command::from(kill_command(&pid.to_string(), signal)).status().await.is_ok_and(|s| s.success())
}

/// Whether `name` is an executable file in a `PATH` folder.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| is_executable(&d.join(name))))
        .unwrap_or(false)
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

impl LocalCompute {
    /// A backend whose workers live under `settings.workdir`.
    pub fn new(settings: LocalSettings) -> Self {
        LocalCompute { settings: Arc::new(settings), workers: Arc::default() }
    }

    /// Checks that what the worker script needs is on `PATH` (the script skips installing).
    pub fn preflight(&self) -> Result<(), BackendError> {
        let missing: Vec<&str> = ["bash", "aws", "odbc2parquet"].into_iter().filter(|t| !on_path(t)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(unavailable(format!(
            "local workers run the worker script on this machine and need {} on PATH; scripts/setup.sh installs them \
             (put .venv/bin and ~/.cargo/bin on PATH)",
            missing.join(", ")
        )))
    }

    /// Where a worker's files (script, console output, work dir with its log) live.
    pub fn worker_dir(&self, instance_id: &str) -> PathBuf {
        self.settings.workdir.join(instance_id)
    }

    /// Marks workers whose script has exited as terminated and kills what they left behind.
    fn refresh(workers: &mut [Worker]) {
        for w in workers.iter_mut() {
            if let Some(child) = w.child.as_mut()
                && !matches!(child.try_wait(), Ok(None))
            {
                // the script "shut the instance down": nothing of it may outlive it
                w.child = None;
                signal_group_now(w.pgid, "KILL");
                w.instance.state = InstanceState::Terminated;
            }
        }
    }

    /// Process group ids of workers still running.
    pub fn live_groups(&self) -> Vec<u32> {
        let mut workers = self.workers.0.lock().expect("workers");
        Self::refresh(&mut workers);
        workers.iter().filter(|w| w.child.is_some()).map(|w| w.pgid).collect()
    }
}

/// The worker's poll interval for finished parts: the environment's when it is a plain number
/// of seconds (what the script understands), else one second.
fn worker_poll_interval() -> String {
    std::env::var("DATADUMP_POLL_INTERVAL")
        .ok()
        .filter(|v| !v.is_empty() && v.parse::<f64>().is_ok_and(|s| s > 0.0))
        .unwrap_or_else(|| "1".into())
}

impl Compute for LocalCompute {
    async fn instances(&self, filter: InstanceFilter<'_>) -> Result<Vec<Instance>, BackendError> {
        let mut workers = self.workers.0.lock().expect("workers");
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
        let short = req.token.get(4..12).unwrap_or(&req.token);
        let id = format!("local-{}-{}-{short}", req.media_type, req.attempt);
        let dir = self.worker_dir(&id);
        let io = |what: &str, e: std::io::Error| unavailable(format!("{what}: {e}"));
        std::fs::create_dir_all(dir.join("work")).map_err(|e| io(&format!("create {}", dir.display()), e))?;
        let script = dir.join("user-data.sh");
        std::fs::write(&script, &req.user_data).map_err(|e| io(&format!("write {}", script.display()), e))?;
        let console = std::fs::File::create(dir.join("console.log")).map_err(|e| io("create console.log", e))?;
        let s = &self.settings;
        let mut cmd = Command::new("bash");
        cmd.arg(&script)
            .current_dir(&dir)
            .envs(s.env.iter().map(|(k, v)| (k, v)))
            .env_remove("DATADUMP_LIB")
            .env("DATADUMP_SHUTDOWN_CMD", "true")
            .env("DATADUMP_WORKDIR", dir.join("work"))
            .env("DATADUMP_SKIP_INSTALL", "1")
            .env("DATADUMP_PROGRESS_INTERVAL", s.progress_interval.to_string())
            .env("DATADUMP_POLL_INTERVAL", worker_poll_interval())
            .stdin(Stdio::null())
            .stdout(console.try_clone().map_err(|e| io("console.log", e))?)
            .stderr(console)
            .process_group(0);
        for k in &s.env_remove {
            cmd.env_remove(k);
        }
        let child = cmd.spawn().map_err(|e| io("start bash", e))?;
        let pgid = child.id().ok_or_else(|| unavailable("the worker exited at once".into()))?;
        let tag = |k: &str| req.tags.get(k).cloned().unwrap_or_default();
        let instance = Instance {
            id: id.clone(),
            owner_uid: tag(tags::UID),
            media_type: req.media_type.clone(),
            attempt: req.attempt,
            token: req.token.clone(),
            state: InstanceState::Running,
        };
        self.workers.0.lock().expect("workers").push(Worker { instance, child: Some(child), pgid });
        Ok(id)
    }

    async fn terminate(&self, instance_ids: &[String]) -> Result<(), BackendError> {
        // Take the children out, so the lock is not held across awaits.
        let mut ending: Vec<(usize, u32, Option<Child>)> = {
            let mut workers = self.workers.0.lock().expect("workers");
            Self::refresh(&mut workers);
            workers
                .iter_mut()
                .enumerate()
                .filter(|(_, w)| instance_ids.contains(&w.instance.id) && w.instance.state != InstanceState::Terminated)
                .map(|(n, w)| (n, w.pgid, w.child.take()))
                .collect()
        };
        for (_, pid, child) in &ending {
            if child.is_some() {
                signal_process(*pid, "TERM").await;
            }
        }
        let deadline = Instant::now() + TERM_GRACE;
        for (_, pgid, child) in &mut ending {
            if let Some(c) = child {
                let left = deadline.saturating_duration_since(Instant::now());
                if tokio::time::timeout(left, c.wait()).await.is_err() {
                    signal_group(*pgid, "KILL").await;
                    let _ = c.wait().await;
                }
            }
            // whatever the script started and left behind goes with it
            signal_group(*pgid, "KILL").await;
        }
        let mut workers = self.workers.0.lock().expect("workers");
        for (n, _, _) in ending {
            workers[n].instance.state = InstanceState::Terminated;
        }
        Ok(())
    }
}
