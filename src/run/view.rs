//! The runner's terminal view: one live line per media type (phase, attempt, instance, files,
//! bytes, elapsed) drawn with indicatif on a terminal, plain lines on change otherwise; Events
//! as they happen; a summary table at the end. Output only.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::act::Done;
use crate::api::{DataDump, MediaStatus};
use crate::plan::Note;

pub(super) struct View {
    multi: Option<MultiProgress>,
    bars: BTreeMap<String, ProgressBar>,
    last: BTreeMap<String, String>,
    started: Instant,
    terminated: Vec<String>,
}

fn human(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}

fn line(m: &MediaStatus, elapsed: Duration) -> String {
    format!(
        "{:<12} {:<11} attempt {:<2} {:<22} {:>5} files {:>10}  {}{}",
        m.media_type.as_str(),
        format!("{:?}", m.phase),
        m.attempt,
        m.instance_id.clone().unwrap_or_else(|| "-".into()),
        m.files.unwrap_or_default(),
        human(m.bytes.unwrap_or_default()),
        indicatif::HumanDuration(elapsed),
        m.last_progress.as_ref().and_then(|p| p.stage.clone()).map(|s| format!("  [{s}]")).unwrap_or_default(),
    )
}

impl View {
    pub fn new(dd: &DataDump) -> Self {
        let multi = std::io::stderr().is_terminal().then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        let mut bars = BTreeMap::new();
        if let Some(multi) = &multi {
            let style = ProgressStyle::with_template("{spinner} {msg}").expect("valid template");
            for m in &dd.spec.media_types {
                let bar = multi.add(ProgressBar::new_spinner().with_style(style.clone()));
                bar.enable_steady_tick(Duration::from_millis(200));
                bars.insert(m.to_string(), bar);
            }
        }
        eprintln!(
            "datadump run: {}/{} → s3://{}/{}/ ({} media type(s))",
            dd.metadata.namespace.clone().unwrap_or_default(),
            dd.metadata.name.clone().unwrap_or_default(),
            dd.spec.destination.bucket,
            dd.spec.destination.prefix,
            dd.spec.media_types.len()
        );
        View { multi, bars, last: BTreeMap::new(), started: Instant::now(), terminated: Vec::new() }
    }

    fn println(&self, text: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    pub fn update(&mut self, dd: &DataDump, notes: &[Note], done: &Done) {
        self.terminated.extend(done.terminated.iter().cloned());
        for n in notes {
            self.println(&format!("  {:<16} {}", n.reason, n.message));
        }
        let elapsed = self.started.elapsed();
        for m in dd.status.iter().flat_map(|s| s.media.iter()) {
            let text = line(m, elapsed);
            if let Some(bar) = self.bars.get(m.media_type.as_str()) {
                bar.set_message(text);
            } else {
                // without a terminal: a line whenever something but the clock changed
                let key = format!("{:?}{}{:?}{:?}{:?}", m.phase, m.attempt, m.instance_id, m.files, m.bytes);
                if self.last.get(m.media_type.as_str()) != Some(&key) {
                    eprintln!("{text}");
                    self.last.insert(m.media_type.to_string(), key);
                }
            }
        }
    }

    pub fn error(&self, message: &str) {
        self.println(&format!("  error: {message} (retrying)"));
    }

    pub fn interrupted(&self) {
        self.println("interrupted: terminating what was launched…");
    }

    pub fn finish(&mut self, dd: &DataDump, done: Option<&Done>) {
        if let Some(d) = done {
            self.terminated.extend(d.terminated.iter().cloned());
        }
        for bar in self.bars.values() {
            bar.finish_and_clear();
        }
        let status = dd.status.clone().unwrap_or_default();
        eprintln!();
        eprintln!("{:<12} {:<10} {:>7} {:>6} {:>12} {:>12}  location", "MEDIA", "PHASE", "ATTEMPT", "FILES", "ROWS", "BYTES");
        for m in &status.media {
            eprintln!(
                "{:<12} {:<10} {:>7} {:>6} {:>12} {:>12}  {}",
                m.media_type.as_str(),
                format!("{:?}", m.phase),
                m.attempt,
                m.files.unwrap_or_default(),
                m.rows.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
                human(m.bytes.unwrap_or_default()),
                m.s3_uri.clone().unwrap_or_default()
            );
        }
        if done.is_some() {
            self.terminated.sort();
            self.terminated.dedup();
            eprintln!("interrupted after {}: terminated {} worker(s): {}", indicatif::HumanDuration(self.started.elapsed()), self.terminated.len(), self.terminated.join(", "));
        } else {
            eprintln!("{:?} after {}: {}", status.phase, indicatif::HumanDuration(self.started.elapsed()), status.message.unwrap_or_default());
        }
    }
}
