//! The `local` compute backend: each "instance" is `datadump worker` running the launch's job
//! as a child process on this machine, in its own process group, against whatever S3/SSM
//! endpoint the AWS settings name. It makes the demo and a dry rehearsal of a real dump
//! possible without an AWS account. I/O (processes).
//!
//! Like EC2 with `InstanceInitiatedShutdownBehavior=terminate`, a worker whose process has
//! exited is `terminated`, and whatever it left running in its process group is killed then.
//! Terminating sends SIGTERM to the worker alone, which stops its engine, aborts its uploads,
//! writes `_failure` and exits (a worker that is just writing `_success` completes it instead);
//! then SIGKILL goes to whatever is left of its group, at once or after a grace period.
//! Dropping the last handle kills every group still running, so even a panicking runner leaves
//! no worker behind.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::backend::{BackendError, Compute, InstanceFilter};
use crate::backend::{Instance, InstanceState, LaunchRequest, tags};

/// How long a terminated worker gets by default to write `_failure` and exit before SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(10);

/// Settings of the local backend.
#[derive(Clone, Debug)]
pub struct LocalSettings {
    /// One subfolder per worker: `job.json`, `console.log` (its log), `work/` (scratch).
    pub workdir: PathBuf,
    /// The worker command: a program and its first arguments (`datadump worker`); the backend
    /// appends `--job-file FILE --workdir DIR --progress-interval N`.
    pub worker: Vec<String>,
    /// Seconds between the worker's progress reports.
    pub progress_interval: u32,
    /// Extra environment for workers (AWS endpoint and region).
    pub env: Vec<(String, String)>,
    /// Variables of the runner's environment workers must not see (the connection string:
    /// workers read it from SSM, as on EC2).
    pub env_remove: Vec<String>,
    /// How long a terminated worker gets to write `_failure` and exit before SIGKILL.
    pub term_grace: Duration,
}

struct Worker {
    instance: Instance,
    /// The worker's process; `None` once it has been waited for.
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
            kill_now(w.pgid, "KILL");
        }
    }
}

/// `(pid, parent pid, process group)` of every process, from `/proc` (empty where there is
/// none).
fn process_table() -> Vec<(u32, u32, u32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // the command name may hold spaces and parentheses: the fields follow the last ')'
            let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
            let state = fields.next()?;
            if state == "Z" {
                return None;
            }
            Some((pid, fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
        })
        .collect()
}

/// A worker's processes: its group (the script leads it) and every descendant of the script,
/// including those that left the group (`timeout` puts itself and its command in a group of
/// their own).
fn worker_tree(pgid: u32) -> Vec<u32> {
    let table = process_table();
    let mut set: std::collections::BTreeSet<u32> = table.iter().filter(|p| p.2 == pgid).map(|p| p.0).collect();
    loop {
        let before = set.len();
        for &(pid, ppid, _) in &table {
            if set.contains(&ppid) {
                set.insert(pid);
            }
        }
        if set.len() == before {
            return set.into_iter().collect();
        }
    }
}

/// `datadump worker` processes as the compute backend.
#[derive(Clone)]
pub struct LocalCompute {
    settings: Arc<LocalSettings>,
    workers: Arc<Workers>,
}

fn unavailable(message: String) -> BackendError {
    BackendError::Unavailable {
        api: "LocalCompute",
        message,
    }
}

/// `kill -s SIGNAL -- PID… -PGID` through bash's builtin (no procps needed): the processes and,
/// for good measure, the group.
fn kill_command(pids: &[u32], pgid: Option<u32>, signal: &str) -> std::process::Command {
    let mut c = std::process::Command::new("bash");
    c.args(["-c", "kill -s \"$0\" -- \"$@\" 2>/dev/null; true", signal])
        .args(pids.iter().map(u32::to_string))
        .args(pgid.map(|g| format!("-{g}")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// Kills a worker's processes (see [`worker_tree`]) and its group, synchronously; `pgid` is the
/// script's pid.
fn kill_now(pgid: u32, signal: &str) {
    let _ = kill_command(&worker_tree(pgid), Some(pgid), signal).status();
}

/// Kills a worker's processes and its group; `pgid` is the script's pid.
async fn kill_worker(pgid: u32, signal: &str) {
    let tree = worker_tree(pgid);
    let _ = Command::from(kill_command(&tree, Some(pgid), signal)).status().await;
}

/// Signals the worker script alone.
async fn signal_script(pid: u32, signal: &str) {
    let _ = Command::from(kill_command(&[pid], None, signal)).status().await;
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
        LocalCompute {
            settings: Arc::new(settings),
            workers: Arc::default(),
        }
    }

    /// Checks that what a local worker of `engine` needs is here: odbc2parquet on `PATH` for
    /// that engine (the postgres engine is built in).
    pub fn preflight(&self, engine: crate::api::Engine) -> Result<(), String> {
        if engine == crate::api::Engine::Odbc2parquet && !on_path("odbc2parquet") {
            return Err("the odbc2parquet engine runs odbc2parquet on this machine and needs it on PATH; \
                 scripts/setup.sh installs it (then put ~/.cargo/bin on PATH)"
                .into());
        }
        Ok(())
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
                kill_now(w.pgid, "KILL");
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
        let job = dir.join("job.json");
        std::fs::write(&job, req.job.to_json()).map_err(|e| io(&format!("write {}", job.display()), e))?;
        let console = std::fs::File::create(dir.join("console.log")).map_err(|e| io("create console.log", e))?;
        let s = &self.settings;
        let (program, first) = s.worker.split_first().ok_or_else(|| unavailable("no worker command".into()))?;
        let mut cmd = Command::new(program);
        cmd.args(first)
            .arg("--job-file")
            .arg(&job)
            .arg("--workdir")
            .arg(dir.join("work"))
            .arg("--progress-interval")
            .arg(s.progress_interval.to_string())
            .current_dir(&dir)
            .envs(s.env.iter().map(|(k, v)| (k, v)))
            .env_remove("DATADUMP_JOB_S3")
            .stdin(Stdio::null())
            .stdout(console.try_clone().map_err(|e| io("console.log", e))?)
            .stderr(console)
            .process_group(0);
        for k in &s.env_remove {
            cmd.env_remove(k);
        }
        let child = cmd.spawn().map_err(|e| io(&format!("start {program}"), e))?;
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
        self.workers.0.lock().expect("workers").push(Worker {
            instance,
            child: Some(child),
            pgid,
        });
        Ok(id)
    }

    async fn architecture(&self, _instance_type: &str) -> Result<crate::contract::Arch, BackendError> {
        // every local "instance" is this machine
        Ok(crate::contract::Arch::host())
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
                signal_script(*pid, "TERM").await;
            }
        }
        let deadline = Instant::now() + self.settings.term_grace;
        for (_, pgid, child) in &mut ending {
            if let Some(c) = child {
                let left = deadline.saturating_duration_since(Instant::now());
                if tokio::time::timeout(left, c.wait()).await.is_err() {
                    // the script and everything it started, found while the script still lives
                    kill_worker(*pgid, "KILL").await;
                    let _ = c.wait().await;
                }
            }
            // whatever the script left behind in its group goes with it
            kill_worker(*pgid, "KILL").await;
        }
        let mut workers = self.workers.0.lock().expect("workers");
        for (n, _, _) in ending {
            workers[n].instance.state = InstanceState::Terminated;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> LaunchRequest {
        let job = crate::contract::job::sample("ddt-0123456789abcdef0123456789abcdef");
        LaunchRequest {
            media_type: "image".into(),
            attempt: 1,
            token: job.token.clone(),
            instance: Default::default(),
            tags: [(tags::UID.to_string(), "uid-1".to_string())].into(),
            job,
            arch: crate::contract::Arch::host(),
            user_data: String::new(),
        }
    }

    /// A backend whose "worker" is a bash script; the job arguments become `$1`…`$6`.
    fn compute(dir: &Path, script: &str) -> LocalCompute {
        LocalCompute::new(LocalSettings {
            workdir: dir.into(),
            // the trailing `:` keeps bash from replacing itself with the script's last command
            worker: ["bash", "-c", &format!("{script}\n:"), "bash"].map(String::from).to_vec(),
            progress_interval: 1,
            env: vec![],
            env_remove: vec![],
            term_grace: Duration::from_millis(300),
        })
    }

    /// Polls until `check` holds (panics after 20 s).
    async fn until(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn alive(pid: u32) -> bool {
        process_table().iter().any(|p| p.0 == pid)
    }

    #[tokio::test]
    async fn terminate_kills_what_left_the_group_when_the_script_ignores_sigterm() {
        let dir = tempfile::tempdir().unwrap();
        // `timeout` moves itself and its command into a process group of their own
        let c = compute(dir.path(), "trap '' TERM\ntimeout 600 sleep 600\n");
        let id = c.launch(&request()).await.unwrap();
        let pgid = c.live_groups()[0];
        until("timeout and sleep to start", || worker_tree(pgid).len() >= 3).await;
        let tree = worker_tree(pgid);
        let table = process_table();
        assert!(
            table.iter().any(|p| tree.contains(&p.0) && p.2 != pgid),
            "something left the group: {table:?}"
        );

        c.terminate(std::slice::from_ref(&id)).await.unwrap();
        // SIGKILL is sent before terminate returns; dying takes the kernel a moment
        until("every process of the worker to die", || tree.iter().all(|p| !alive(*p))).await;
        let instances = c.instances(InstanceFilter::Owner("uid-1")).await.unwrap();
        assert_eq!(instances[0].state, InstanceState::Terminated);
        assert!(c.live_groups().is_empty());
    }

    #[tokio::test]
    async fn a_script_that_exits_is_terminated_and_takes_its_group_along() {
        let dir = tempfile::tempdir().unwrap();
        let c = compute(
            dir.path(),
            "sleep 600 &\necho $! > bg.pid\nprintf '%s=%s\\n' \"$3\" \"$4\" \"$1\" \"$2\"\n",
        );
        c.launch(&request()).await.unwrap();
        let pid_file = dir.path().join("local-image-1-01234567/bg.pid");
        until("the script to start its background job", || {
            std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n'))
        })
        .await;
        let background: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        let mut states = vec![];
        let deadline = Instant::now() + Duration::from_secs(20);
        while states != [InstanceState::Terminated] {
            assert!(Instant::now() < deadline, "the worker never ended: {states:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
            states = c
                .instances(InstanceFilter::Owner("uid-1"))
                .await
                .unwrap()
                .iter()
                .map(|i| i.state)
                .collect();
        }
        until("the script's background job to die with it", || !alive(background)).await;
        let console = std::fs::read_to_string(dir.path().join("local-image-1-01234567/console.log")).unwrap();
        assert!(
            console.contains("--workdir=") && console.contains("/local-image-1-01234567/work"),
            "{console}"
        );
        let job = console.lines().find_map(|l| l.strip_prefix("--job-file=")).unwrap();
        let job = crate::contract::Job::from_json(&std::fs::read_to_string(job).unwrap()).unwrap();
        assert_eq!(job.token, "ddt-0123456789abcdef0123456789abcdef");
    }

    #[tokio::test]
    async fn dropping_the_backend_kills_running_workers() {
        let dir = tempfile::tempdir().unwrap();
        let c = compute(dir.path(), "sleep 600\n");
        c.launch(&request()).await.unwrap();
        let pgid = c.live_groups()[0];
        until("sleep to start", || worker_tree(pgid).len() >= 2).await;
        let tree = worker_tree(pgid);
        drop(c);
        until("the worker to die", || tree.iter().all(|p| !alive(*p))).await;
    }
}
