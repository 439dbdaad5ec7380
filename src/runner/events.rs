//! What a round reports as it goes, and the reporters that consume it: the terminal (one line
//! per case, like cargo-nextest) and `runs.csv`.

use std::collections::BTreeMap;
use std::path::Path;

use super::CaseStatus;
use crate::error::{Error, Result};
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
/// another tenth of its cases, and after [`ProgressThrottle::HEARTBEAT_S`] without a line (a
/// tenth of a long round may take hours); never for its last case, which its DONE line reports.
#[derive(Debug, Default)]
pub struct ProgressThrottle {
    /// The last tenth reported, per submission, and when.
    last: std::collections::HashMap<String, (usize, f64)>,
}

impl ProgressThrottle {
    pub const HEARTBEAT_S: f64 = 60.0;

    pub fn due(&mut self, submission: &str, p: &Progress) -> bool {
        if p.total == 0 || p.done >= p.total {
            return false;
        }
        let tenth = p.done * 10 / p.total;
        let (last_tenth, last_s) = self.last.get(submission).copied().unwrap_or((0, 0.0));
        let due = tenth > last_tenth || p.elapsed_s - last_s >= Self::HEARTBEAT_S;
        if due {
            self.last
                .insert(submission.to_string(), (tenth, p.elapsed_s));
        }
        due
    }
}

pub fn count_statuses<'a>(
    records: impl Iterator<Item = &'a CaseRecord>,
) -> BTreeMap<CaseStatus, usize> {
    let mut counts = BTreeMap::new();
    for r in records {
        *counts.entry(r.status).or_insert(0) += 1;
    }
    counts
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

/// Team-controlled text shown in a terminal; the rule lives in [`crate::text::shown`].
pub use crate::text::shown as clean;

/// `runs.csv`, the round's journal: one record per finished case, appended and synced to disk
/// before the case is reported, so an interrupted round keeps every finished case.
pub struct RunsCsv {
    writer: csv::Writer<std::fs::File>,
    path: std::path::PathBuf,
    /// How many of [`RUNS_HEADER`]'s columns the journal has: all, or [`BEFORE_GPUS`] for one
    /// begun by a podium that did not record GPUs, which a resumed round continues as it is.
    columns: usize,
}

/// The columns of a journal from before the GPU columns.
const BEFORE_GPUS: usize = 10;

const RUNS_HEADER: [&str; 14] = [
    "submission",
    "case_id",
    "status",
    "exit_code",
    "signal",
    "wall_s",
    "cpu_s",
    "peak_memory_mib",
    "message",
    "team_message",
    "gpus",
    "gpu_time_s",
    "gpu_peak_memory_mib",
    "gpus_used",
];

impl RunsCsv {
    pub fn create(path: &Path) -> Result<RunsCsv> {
        let mut writer = csv::Writer::from_path(path).map_err(|e| Error::io("create", path, e))?;
        // Durable at once: a podium killed before its first case leaves a journal to resume.
        writer
            .write_record(RUNS_HEADER)
            .and_then(|_| writer.flush().map_err(Into::into))
            .and_then(|_| writer.get_ref().sync_data().map_err(Into::into))
            .map_err(|e| Error::io("write", path, e))?;
        Ok(RunsCsv {
            writer,
            path: path.to_path_buf(),
            columns: RUNS_HEADER.len(),
        })
    }

    /// Continues an existing journal (`podium run --resume`).
    pub fn append_to(path: &Path) -> Result<RunsCsv> {
        let mut header = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(
                std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?,
            ),
            &mut header,
        )
        .map_err(|e| Error::io("read", path, e))?;
        let columns = if header.trim_end().split(',').any(|h| h == "gpus") {
            RUNS_HEADER.len()
        } else {
            BEFORE_GPUS
        };
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| Error::io("open", path, e))?;
        let writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(file);
        Ok(RunsCsv {
            writer,
            path: path.to_path_buf(),
            columns,
        })
    }

    /// The records of an existing journal. A torn last line (an interruption in the middle of
    /// a write) is skipped: that case simply runs again.
    pub fn read(path: &Path) -> Result<Vec<CaseRecord>> {
        if std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
            // Killed before even the header reached the disk: nothing was recorded.
            return Ok(Vec::new());
        }
        let table = crate::io::table::Table::read(path)?;
        let header: Vec<String> = RUNS_HEADER[..BEFORE_GPUS]
            .iter()
            .map(|h| h.to_string())
            .collect();
        let idx = table.require(&header)?;
        // Absent from a journal written before podium recorded GPUs: read as none.
        let gpu_idx: Vec<Option<usize>> = RUNS_HEADER[BEFORE_GPUS..]
            .iter()
            .map(|h| table.column(h))
            .collect();
        let mut records = Vec::new();
        for row in &table.rows {
            let f = |i: usize| row.fields[idx[i]].as_str();
            let g = |i: usize| gpu_idx[i].map_or("", |c| row.fields[c].as_str());
            let list = |i: usize| -> Vec<u32> {
                g(i).split(',')
                    .filter_map(|k| k.trim().parse().ok())
                    .collect()
            };
            let text = |i: usize| crate::text::from_csv_text(f(i)).to_string();
            let Some(status) = CaseStatus::parse(f(2)) else {
                continue;
            };
            let Ok(wall_s) = f(5).parse::<f64>() else {
                continue;
            };
            records.push(CaseRecord {
                submission: text(0),
                case_id: text(1),
                status,
                exit_code: f(3).parse().ok(),
                signal: f(4).parse().ok(),
                wall_s,
                cpu_s: f(6).parse().ok(),
                peak_memory_mib: f(7).parse().ok(),
                message: text(8),
                team_message: text(9),
                gpu: crate::results::GpuUsage {
                    gpus: list(0),
                    time_s: g(1).parse().ok(),
                    peak_memory_mib: g(2).parse().ok(),
                    used: list(3),
                },
            });
        }
        Ok(records)
    }

    pub fn append(&mut self, r: &CaseRecord) -> Result<()> {
        let opt = |v: Option<i32>| v.map(|v| v.to_string()).unwrap_or_default();
        let float = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
        let text = crate::text::csv_text;
        let list = |gpus: &[u32]| {
            gpus.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let fields: [&str; RUNS_HEADER.len()] = [
            &text(&r.submission),
            &text(&r.case_id),
            r.status.as_str(),
            &opt(r.exit_code),
            &opt(r.signal),
            &format!("{:.3}", r.wall_s),
            &float(r.cpu_s),
            &float(r.peak_memory_mib),
            &text(&r.message),
            &text(&r.team_message),
            &list(&r.gpu.gpus),
            &float(r.gpu.time_s),
            &float(r.gpu.peak_memory_mib),
            &list(&r.gpu.used),
        ];
        self.writer
            .write_record(&fields[..self.columns])
            .and_then(|_| self.writer.flush().map_err(Into::into))
            .and_then(|_| self.writer.get_ref().sync_data().map_err(Into::into))
            .map_err(|e| Error::io("write", &self.path, e))
    }
}

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
        let mut throttle = ProgressThrottle::default();
        let total = 40;
        // Four cases a second: ten lines at most, whatever the number of cases.
        let lines: Vec<usize> = (1..=total)
            .filter(|&done| throttle.due("a", &progress(done, total, done as f64 / 4.0)))
            .collect();
        assert_eq!(lines, [4, 8, 12, 16, 20, 24, 28, 32, 36]);
        // A slow round: a tenth takes longer than the heartbeat, so a line comes meanwhile.
        let mut throttle = ProgressThrottle::default();
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
        assert!(throttle.due("c", &progress(1, 3, 0.1)));
    }

    #[test]
    fn runs_csv_keeps_no_escape_sequence_nor_formula_and_reads_back_what_it_shows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.csv");
        let record = CaseRecord {
            submission: "-model".into(),
            case_id: "case-1".into(),
            status: CaseStatus::Failed,
            exit_code: Some(-1),
            signal: None,
            wall_s: 0.5,
            cpu_s: None,
            peak_memory_mib: None,
            message: "=HYPERLINK(\"http://x\",\"click\") \u{1b}[2J\u{202e}".into(),
            team_message: "exit code 3: \u{1b}]0;pwned\u{7}".into(),
            gpu: Default::default(),
        };
        let mut journal = RunsCsv::create(&path).unwrap();
        journal.append(&record).unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(
            !written.contains(['\u{1b}', '\u{7}', '\u{202e}']),
            "{written:?}"
        );
        assert!(written.contains(",-1,"), "numbers stay numbers: {written}");
        assert!(
            written.contains("'-model,") && written.contains("'=HYPERLINK("),
            "{written}"
        );
        let read = RunsCsv::read(&path).unwrap();
        assert_eq!(read[0].submission, "-model");
        assert_eq!(read[0].exit_code, Some(-1));
        assert_eq!(read[0].message, crate::text::shown(&record.message));
        assert_eq!(read[0].team_message, "exit code 3: \\u{1b}]0;pwned\\u{7}");
    }

    fn case(case_id: &str, gpu: crate::results::GpuUsage) -> CaseRecord {
        CaseRecord {
            submission: "model".into(),
            case_id: case_id.into(),
            status: CaseStatus::Ok,
            exit_code: Some(0),
            signal: None,
            wall_s: 1.25,
            cpu_s: Some(1.0),
            peak_memory_mib: Some(64.0),
            message: String::new(),
            team_message: String::new(),
            gpu,
        }
    }

    #[test]
    fn runs_csv_records_the_gpus_of_a_case_and_leaves_unmeasured_figures_empty() {
        use crate::results::GpuUsage;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.csv");
        let measured = GpuUsage {
            gpus: vec![2, 3],
            time_s: Some(4.5),
            peak_memory_mib: Some(2048.0),
            used: vec![3],
        };
        let unmeasured = GpuUsage {
            gpus: vec![1],
            ..GpuUsage::default()
        };
        let mut journal = RunsCsv::create(&path).unwrap();
        for (id, gpu) in [
            ("a", &measured),
            ("b", &unmeasured),
            ("c", &GpuUsage::default()),
        ] {
            journal.append(&case(id, gpu.clone())).unwrap();
        }
        let read = RunsCsv::read(&path).unwrap();
        let gpus: Vec<&GpuUsage> = read.iter().map(|r| &r.gpu).collect();
        assert_eq!(gpus, [&measured, &unmeasured, &GpuUsage::default()]);
        let rows = crate::io::table::Table::read(&path).unwrap();
        let column = |name: &str| rows.column(name).unwrap();
        assert_eq!(rows.rows[0].fields[column("gpus")], "2,3");
        assert_eq!(rows.rows[1].fields[column("gpus")], "1");
        for empty in ["gpu_time_s", "gpu_peak_memory_mib", "gpus_used"] {
            assert_eq!(rows.rows[1].fields[column(empty)], "", "{empty}");
        }
    }

    /// A round begun by a podium without the GPU columns is read, and resumed in its own
    /// layout, so the journal stays one table.
    #[test]
    fn a_journal_without_the_gpu_columns_is_read_and_continued_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.csv");
        let old_header = RUNS_HEADER[..BEFORE_GPUS].join(",");
        std::fs::write(
            &path,
            format!("{old_header}\nmodel,a,ok,0,,1.250,1.000,64.000,,\n"),
        )
        .unwrap();
        let gpu = crate::results::GpuUsage {
            gpus: vec![0],
            ..Default::default()
        };
        RunsCsv::append_to(&path)
            .unwrap()
            .append(&case("b", gpu))
            .unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(
            written.lines().all(|l| l.split(',').count() == BEFORE_GPUS),
            "{written}"
        );
        let read = RunsCsv::read(&path).unwrap();
        assert_eq!(read.len(), 2);
        assert!(read.iter().all(|r| r.gpu == Default::default()), "{read:?}");
        assert_eq!(read[0].peak_memory_mib, Some(64.0));
    }
}
