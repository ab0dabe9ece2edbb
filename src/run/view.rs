//! The runner's terminal view: one live line per media type (phase, attempt, instance, files,
//! bytes, rows, elapsed, the worker's stage) with a spinner on a terminal, plain lines on
//! change otherwise; Events as they happen, on standard error. The summary table at the end
//! goes to standard output. Output only.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Signal;
use crate::api::{DataDump, MediaPhase, MediaStatus};
use crate::plan::Note;

/// `println!` to standard output that never panics (a closed pipe must not stop a cleanup).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprintln!` that never panics.
macro_rules! err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// When a media type started (its first attempt) and ended (a terminal phase).
#[derive(Default, Clone, Copy)]
struct Clock {
    start: Option<Instant>,
    end: Option<Instant>,
}

impl Clock {
    fn elapsed(&self) -> Duration {
        match (self.start, self.end) {
            (Some(s), Some(e)) => e - s,
            (Some(s), None) => s.elapsed(),
            _ => Duration::ZERO,
        }
    }
}

/// What a failed attempt left behind, to show under the summary.
pub(super) struct FailureDetail {
    pub media_type: String,
    /// The last lines of the worker's log (from `_failure`, redacted by the worker).
    pub log_tail: Vec<String>,
}

pub(super) struct View {
    multi: Option<MultiProgress>,
    bars: BTreeMap<String, ProgressBar>,
    last: BTreeMap<String, String>,
    clocks: BTreeMap<String, Clock>,
    started: Instant,
    workdir: Option<PathBuf>,
}

fn human(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}

/// `42s`, `3m05s`, `2h03m`.
pub(super) fn clock(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

fn phase(m: &MediaStatus) -> String {
    format!("{:?}", m.phase)
}

/// The live line of one media type, without the elapsed time.
fn line(m: &MediaStatus) -> String {
    let stage = match (m.phase, m.last_progress.as_ref().and_then(|p| p.stage.clone())) {
        (MediaPhase::Running, Some(s)) => format!("  {s}"),
        _ => String::new(),
    };
    format!(
        "{:<12} {:<11} attempt {:<2} {:<26} {:>3} files {:>10} {:>10} rows{stage}",
        m.media_type.as_str(),
        phase(m),
        m.attempt,
        m.instance_id.as_deref().unwrap_or("-"),
        m.files.unwrap_or_default(),
        human(m.bytes.unwrap_or_default()),
        m.rows.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
    )
}

impl View {
    /// A view of `dd`; `workdir` is where local workers keep their logs.
    pub fn new(dd: &DataDump, workdir: Option<PathBuf>) -> Self {
        let multi = std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        err!(
            "datadump run: {}/{} → s3://{}/{}/ ({} media type(s): {})",
            dd.metadata.namespace.clone().unwrap_or_default(),
            dd.metadata.name.clone().unwrap_or_default(),
            dd.spec.destination.bucket,
            dd.spec.destination.prefix.trim_matches('/'),
            dd.spec.media_types.len(),
            dd.spec.media_types.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", "),
        );
        if let Some(w) = &workdir {
            err!("local workers: {}/<instance>/ (job.json, console.log)", w.display());
        }
        let mut bars = BTreeMap::new();
        if let Some(multi) = &multi {
            let style = ProgressStyle::with_template("{spinner:.cyan} {elapsed:>4} {wide_msg}").expect("valid template");
            for m in &dd.spec.media_types {
                let bar = multi.add(ProgressBar::new_spinner().with_style(style.clone()));
                bar.set_message(format!("{:<12} Pending", m.as_str()));
                bar.enable_steady_tick(Duration::from_millis(120));
                bars.insert(m.to_string(), bar);
            }
        }
        View {
            multi,
            bars,
            last: BTreeMap::new(),
            clocks: BTreeMap::new(),
            started: Instant::now(),
            workdir,
        }
    }

    fn println(&self, text: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(text);
            }
            None => err!("{text}"),
        }
    }

    /// Shows what one step did and the status it left.
    pub fn update(&mut self, dd: &DataDump, notes: &[Note]) {
        for n in notes {
            self.println(&format!("  {:<18} {}", n.reason, n.message));
        }
        for m in dd.status.iter().flat_map(|s| s.media.iter()) {
            let media = m.media_type.as_str().to_string();
            let times = self.clocks.entry(media.clone()).or_default();
            let started_now = times.start.is_none() && m.attempt > 0;
            if started_now {
                times.start = Some(Instant::now());
            }
            let ended_now = times.end.is_none() && times.start.is_some() && m.phase.is_terminal();
            if ended_now {
                times.end = Some(Instant::now());
            }
            let elapsed = times.elapsed();
            let text = line(m);
            if let Some(bar) = self.bars.get(&media) {
                if started_now {
                    bar.reset_elapsed();
                }
                if ended_now {
                    let mark = if m.phase == MediaPhase::Succeeded { "✔" } else { "✘" };
                    bar.set_style(ProgressStyle::with_template("{prefix} {elapsed:>4} {wide_msg}").expect("valid template"));
                    bar.set_prefix(mark);
                    bar.finish_with_message(text);
                } else if !bar.is_finished() {
                    bar.set_message(text);
                }
            } else {
                // without a terminal: a line whenever something but the clock changed
                if self.last.get(&media) != Some(&text) {
                    err!("{text}  {}", clock(elapsed));
                    self.last.insert(media, text);
                }
            }
        }
    }

    /// A failed step (retried).
    pub fn error(&self, message: &str, stopping: bool) {
        let what = if stopping { "while cleaning up" } else { "retrying" };
        self.println(&format!("  error ({what}): {message}"));
    }

    /// A message about stopping.
    pub fn stopping(&self, message: &str) {
        self.println(message);
    }

    fn clear(&mut self) {
        for bar in self.bars.values() {
            if !bar.is_finished() {
                bar.finish();
            }
        }
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }

    fn table(&self, dd: &DataDump, stopped: bool) {
        let status = dd.status.clone().unwrap_or_default();
        out!();
        out!(
            "{:<12} {:<12} {:>8} {:>6} {:>10} {:>11} {:>8}  LOCATION",
            "MEDIA",
            "PHASE",
            "ATTEMPTS",
            "FILES",
            "ROWS",
            "BYTES",
            "ELAPSED"
        );
        for m in &status.media {
            let media = m.media_type.as_str();
            let phase = if stopped && !m.phase.is_terminal() && m.attempt > 0 {
                "Interrupted".into()
            } else {
                phase(m)
            };
            out!(
                "{:<12} {:<12} {:>8} {:>6} {:>10} {:>11} {:>8}  {}",
                media,
                phase,
                m.attempt,
                m.files.unwrap_or_default(),
                m.rows.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
                human(m.bytes.unwrap_or_default()),
                clock(self.clocks.get(media).copied().unwrap_or_default().elapsed()),
                m.s3_uri.clone().unwrap_or_default()
            );
            if m.phase == MediaPhase::Failed {
                out!(
                    "{:<12} {}: {}",
                    "",
                    m.reason.clone().unwrap_or_else(|| "Failed".into()),
                    m.message.clone().unwrap_or_default()
                );
                if let (Some(w), Some(id)) = (&self.workdir, &m.instance_id) {
                    out!("{:<12} worker log: {}", "", w.join(id).join("console.log").display());
                }
            }
        }
    }

    /// The dump ended: the summary table and one line.
    pub fn finish(&mut self, dd: &DataDump, failures: &[FailureDetail]) {
        self.clear();
        for f in failures {
            err!("last lines of the {} worker's log:", f.media_type);
            for l in &f.log_tail {
                err!("  | {l}");
            }
        }
        self.table(dd, false);
        let status = dd.status.clone().unwrap_or_default();
        out!(
            "{:?} after {}: {}",
            status.phase,
            clock(self.started.elapsed()),
            status.message.unwrap_or_default()
        );
    }

    /// Cleanup after a signal (or a permanent error: `None`) is complete.
    pub fn finish_stopped(&mut self, dd: &DataDump, signal: Option<Signal>, terminated: &[String]) {
        self.clear();
        self.table(dd, true);
        let why = match signal {
            Some(s) => format!("interrupted by {}", s.name()),
            None => "stopped by an error".into(),
        };
        let what = if terminated.is_empty() {
            "no worker was running".to_string()
        } else {
            format!("terminated {} worker(s): {}", terminated.len(), terminated.join(", "))
        };
        out!("{why} after {}: {what}; staged credentials deleted", clock(self.started.elapsed()));
    }

    /// The run ends before AWS ever answered: nothing was staged or launched. After a signal,
    /// says so; otherwise (gave up) the error says it.
    pub fn finish_unreached(&mut self, signal: Option<Signal>) {
        self.clear();
        if let Some(s) = signal {
            out!(
                "interrupted by {} after {}: AWS was never reached, so nothing was staged or launched",
                s.name(),
                clock(self.started.elapsed())
            );
        }
    }

    /// Exiting before cleanup finished: says what may be left.
    pub fn finish_abandoned(&mut self, dd: &DataDump, live: &[String], staged: &[String]) {
        self.clear();
        self.table(dd, true);
        out!("exited before cleanup finished after {}", clock(self.started.elapsed()));
        if !live.is_empty() {
            out!("may still be running: {}", live.join(", "));
        }
        if !staged.is_empty() {
            out!("staged credentials may remain in SSM: {}", staged.join(", "));
        }
    }
}
