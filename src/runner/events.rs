//! What a round reports as it goes, and the reporters that consume it: the terminal (one line
//! per case, like cargo-nextest) and `runs.csv` ([`crate::results::RunsCsv`]).

use std::collections::BTreeMap;

use super::CaseStatus;
use crate::results::CaseRecord;

#[derive(Clone, Debug)]
pub enum RunEvent {
    RoundStarted {
        challenge: String,
        phase: String,
        submissions: usize,
        cases: usize,
        jobs: usize,
        backend: &'static str,
    },
    Preparing {
        submission: String,
        /// Cases this submission still has to run.
        cases: usize,
    },
    Prepared {
        submission: String,
        seconds: f64,
        error: Option<String>,
    },
    CaseStarted {
        submission: String,
        case_id: String,
    },
    /// A worker-mode program started and said `ready` (docs/contract.md, "Worker mode").
    WorkerStarted {
        submission: String,
        slot: usize,
        seconds: f64,
    },
    CaseFinished(CaseRecord),
    /// After each finished case: how far its submission is.
    Progress {
        submission: String,
        progress: Progress,
    },
    /// `podium run --resume`: cases kept from the journal, and cases (of all submissions) that
    /// will run.
    Resumed {
        kept: usize,
        to_run: usize,
    },
    SubmissionFinished {
        submission: String,
        seconds: f64,
        counts: BTreeMap<CaseStatus, usize>,
    },
}

/// How far one submission's cases of this run are (a resumed round counts only the cases it
/// runs).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    /// Cases finished with any status but `ok`.
    pub failed: usize,
    /// Seconds since the round's cases started.
    pub elapsed_s: f64,
}

impl Progress {
    /// Seconds left if the other cases take what the finished ones took on average; none
    /// before the first case finishes.
    pub fn eta_s(&self) -> Option<f64> {
        (self.done > 0).then(|| {
            self.elapsed_s / self.done as f64 * self.total.saturating_sub(self.done) as f64
        })
    }

    /// Failures and ETA, as shown beside a progress bar.
    pub fn status(&self) -> String {
        let eta = match self.eta_s() {
            Some(s) => format!("ETA {}", duration(s)),
            None => "ETA after the first case".into(),
        };
        format!("{} failed, {eta}", self.failed)
    }

    /// `done/total cases, failed, ETA`, as a log line shows it.
    pub fn line(&self) -> String {
        format!("{}/{} cases, {}", self.done, self.total, self.status())
    }
}

/// `2h05m`, `3m07s`, `42s`.
fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

/// When a log that is not a terminal gets a progress line: each time a submission passes
/// another tenth of its cases, at least [`ProgressThrottle::interval_s`] after its last line
/// (so a round of a few seconds stays as short as its DONE lines), and after
/// [`ProgressThrottle::HEARTBEAT_S`] without a line (a tenth of a long round may take hours);
/// never for its last case, which its DONE line reports.
#[derive(Debug)]
pub struct ProgressThrottle {
    /// The last tenth reported, per submission, and when.
    last: std::collections::HashMap<String, (usize, f64)>,
    interval_s: f64,
}

impl Default for ProgressThrottle {
    fn default() -> ProgressThrottle {
        let interval_s = std::env::var("PODIUM_PROGRESS_INTERVAL_S")
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .unwrap_or(Self::INTERVAL_S);
        ProgressThrottle::every(interval_s)
    }
}

impl ProgressThrottle {
    pub const HEARTBEAT_S: f64 = 60.0;
    /// The least time between two lines of a submission, unless `PODIUM_PROGRESS_INTERVAL_S`
    /// says otherwise.
    pub const INTERVAL_S: f64 = 10.0;

    pub fn every(interval_s: f64) -> ProgressThrottle {
        ProgressThrottle {
            last: std::collections::HashMap::new(),
            interval_s,
        }
    }

    pub fn interval_s(&self) -> f64 {
        self.interval_s
    }

    pub fn due(&mut self, submission: &str, p: &Progress) -> bool {
        if p.total == 0 || p.done >= p.total {
            return false;
        }
        let tenth = p.done * 10 / p.total;
        let (last_tenth, last_s) = self.last.get(submission).copied().unwrap_or((0, 0.0));
        let since = p.elapsed_s - last_s;
        let due = (tenth > last_tenth && since >= self.interval_s) || since >= Self::HEARTBEAT_S;
        if due {
            self.last
                .insert(submission.to_string(), (tenth, p.elapsed_s));
        }
        due
    }
}

/// The terminal reporter: a progress bar per submission (on a terminal only), a one-line
/// status per case that needs attention (every case with `show_ok`), in the style of
/// cargo-nextest, and a summary per submission. It writes to stderr, leaving stdout to the
/// leaderboard.
pub struct TerminalReporter {
    /// Print `ok` cases too, not only the ones that need attention.
    pub show_ok: bool,
    bars: indicatif::MultiProgress,
    by_submission: std::collections::HashMap<String, indicatif::ProgressBar>,
    /// Progress lines when stderr is not a terminal (a CI log): few, so the log stays short.
    throttle: ProgressThrottle,
}

impl TerminalReporter {
    pub fn new(show_ok: bool) -> TerminalReporter {
        TerminalReporter {
            show_ok,
            bars: indicatif::MultiProgress::with_draw_target(
                indicatif::ProgressDrawTarget::stderr(),
            ),
            by_submission: std::collections::HashMap::new(),
            throttle: ProgressThrottle::default(),
        }
    }

    fn line(&self, text: String) {
        // A hidden target (stderr is not a terminal) drops println: write directly then.
        if self.bars.is_hidden() {
            eprintln!("{text}");
        } else {
            let _ = self.bars.println(text);
        }
    }

    pub fn report(&mut self, event: &RunEvent) {
        match event {
            RunEvent::RoundStarted { challenge, phase, submissions, cases, jobs, backend } => self.line(format!(
                "podium: {challenge}/{phase}: {submissions} submission{} x {cases} case{}, {jobs} job{}, {backend} backend",
                plural(*submissions),
                plural(*cases),
                plural(*jobs)
            )),
            RunEvent::Preparing { submission, cases } => {
                self.line(format!("{:>10} {}", "PREPARE", clean(submission)));
                let bar = self.bars.add(indicatif::ProgressBar::new(*cases as u64));
                if let Ok(style) = indicatif::ProgressStyle::with_template("{prefix:>20} [{bar:30}] {pos}/{len} cases, {elapsed}, {msg}") {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar.set_message(Progress::default().status());
                bar.set_prefix(clean(submission).chars().take(20).collect::<String>());
                self.by_submission.insert(submission.clone(), bar);
            }
            RunEvent::Prepared { error: Some(e), submission, .. } => {
                self.line(format!("{:>10} {}: {}", "FAILED", clean(submission), clean(e)))
            }
            RunEvent::Prepared { .. } | RunEvent::CaseStarted { .. } => {}
            RunEvent::WorkerStarted { submission, slot, seconds } => self.line(format!(
                "{:>10} [{seconds:>7.2}s] {} worker on slot {slot}",
                "STARTED",
                clean(submission)
            )),
            RunEvent::CaseFinished(r) => {
                if let Some(bar) = self.by_submission.get(&r.submission) {
                    bar.inc(1);
                }
                if r.status != CaseStatus::Ok || self.show_ok {
                    let message = if r.message.is_empty() { String::new() } else { format!(": {}", clean(&r.message)) };
                    self.line(format!(
                        "{:>10} [{:>7.2}s] {} {}{}",
                        r.status.as_str().to_uppercase(),
                        r.wall_s,
                        clean(&r.submission),
                        clean(&r.case_id),
                        message
                    ));
                }
            }
            RunEvent::Progress { submission, progress } => {
                if !self.bars.is_hidden() {
                    if let Some(bar) = self.by_submission.get(submission) {
                        bar.set_message(progress.status());
                    }
                } else if self.throttle.due(submission, progress) {
                    self.line(format!("{:>10} {} {}", "PROGRESS", clean(submission), progress.line()));
                }
            }
            RunEvent::Resumed { kept, to_run } => self.line(format!(
                "podium: resuming: {kept} case{} kept from runs.csv, {to_run} to run",
                plural(*kept)
            )),
            RunEvent::SubmissionFinished { submission, seconds, counts } => {
                if let Some(bar) = self.by_submission.remove(submission) {
                    bar.finish_and_clear();
                    self.bars.remove(&bar);
                }
                let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {}", s.as_str())).collect();
                self.line(format!("{:>10} {} in {seconds:.1}s: {}", "DONE", clean(submission), summary.join(", ")));
            }
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

pub use crate::results::count_statuses;

/// Team-controlled text shown in a terminal; the rule lives in [`crate::text::shown`].
pub use crate::text::shown as clean;

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(done: usize, total: usize, elapsed_s: f64) -> Progress {
        Progress {
            done,
            total,
            failed: 1,
            elapsed_s,
        }
    }

    #[test]
    fn the_eta_extrapolates_the_mean_time_of_the_finished_cases() {
        assert_eq!(progress(0, 10, 5.0).eta_s(), None);
        let p = progress(4, 10, 20.0);
        assert_eq!(p.eta_s(), Some(20.0 / 4.0 * 6.0));
        assert_eq!(progress(10, 10, 20.0).eta_s(), Some(0.0));
        assert_eq!(p.line(), "4/10 cases, 1 failed, ETA 30s");
        assert_eq!(
            progress(0, 10, 5.0).status(),
            "1 failed, ETA after the first case"
        );
        assert_eq!(duration(187.0), "3m07s");
        assert_eq!(duration(7500.0), "2h05m");
    }

    #[test]
    fn a_log_gets_a_progress_line_per_tenth_or_heartbeat_and_none_for_the_last_case() {
        let mut throttle = ProgressThrottle::every(0.0);
        let total = 40;
        // Four cases a second: ten lines at most, whatever the number of cases.
        let lines: Vec<usize> = (1..=total)
            .filter(|&done| throttle.due("a", &progress(done, total, done as f64 / 4.0)))
            .collect();
        assert_eq!(lines, [4, 8, 12, 16, 20, 24, 28, 32, 36]);
        // With the default interval, a tenth passed within 10 s of the last line waits: a
        // round of 10 s in all prints nothing but its DONE line.
        let mut throttle = ProgressThrottle::every(ProgressThrottle::INTERVAL_S);
        let short: Vec<usize> = (1..=total)
            .filter(|&done| throttle.due("a", &progress(done, total, done as f64 / 4.0)))
            .collect();
        assert_eq!(short, Vec::<usize>::new());
        // Forty cases of a second each: a line per tenth once 10 s have passed since the last.
        let mut throttle = ProgressThrottle::every(ProgressThrottle::INTERVAL_S);
        let slower: Vec<usize> = (1..=total)
            .filter(|&done| throttle.due("a", &progress(done, total, done as f64)))
            .collect();
        assert_eq!(slower, [10, 20, 30]);
        // A slow round: a tenth takes longer than the heartbeat, so a line comes meanwhile.
        let mut throttle = ProgressThrottle::every(ProgressThrottle::INTERVAL_S);
        let slow = |done: usize| progress(done, 1000, done as f64 * 10.0);
        let beats: Vec<usize> = (1..=20)
            .filter(|&done| throttle.due("b", &slow(done)))
            .collect();
        let every = (ProgressThrottle::HEARTBEAT_S / 10.0) as usize;
        assert_eq!(
            beats,
            (1..=20).filter(|d| d % every == 0).collect::<Vec<_>>()
        );
        // Each submission has its own tenths.
        let mut throttle = ProgressThrottle::every(0.0);
        assert!(throttle.due("c", &progress(1, 3, 0.1)));
    }
}
