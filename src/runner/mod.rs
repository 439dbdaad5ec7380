//! Running submissions on a phase, case by case.
//!
//! The round ([`run_round`]) is backend-agnostic: it stages one input folder per case (holding
//! only that case's image, never the truth), hands each case to a [`Backend`], collects and
//! checks the outputs, and turns everything into [`RunEvent`]s for reporters. A failed case is
//! recorded and the round goes on. Backends (one per file) only know how to execute one case.

mod case_mounts;
mod cgroup;
pub mod docker;
pub mod driver_libraries;
pub mod events;
pub mod gpu_monitor;
pub mod gpus;
mod image_archive;
pub mod interrupt;
pub mod node;
mod nofollow;
pub mod process;
pub mod sandbox;
mod select;
pub mod slurm;
mod staging;
pub mod worker;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use events::{RunEvent, TerminalReporter};
pub use select::{select_backend, select_slurm, RoundBackends, SelectedBackend};

use crate::challenge::{BackendKind, Challenge, Limits, PhasePaths};
use crate::error::{Error, Result};
pub use crate::results::CaseStatus;
use crate::results::{count_statuses, CaseRecord, GpuUsage, RunsCsv};
use crate::submission::{RunMode, Submission};

/// How one execution ended, as the backend saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecStatus {
    Ok,
    Failed,
    Timeout,
    Oom,
    OutputLimit,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Execution {
    pub status: ExecStatus,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub wall_s: f64,
    /// CPU time (user + system) of the whole process tree, where the backend can measure it.
    pub cpu_s: Option<f64>,
    /// Peak memory of the whole process tree in MiB, where the backend can measure it.
    pub peak_memory_mib: Option<f64>,
    /// What happened, in podium's words only: it never quotes the program, so it is safe to
    /// show a team on a hidden phase. Empty when all went well.
    pub message: String,
    /// The last line the program wrote to stderr, for the organizer (and for teams on a
    /// public phase, where they may see their own output).
    pub program_said: String,
    /// Which GPUs the case had and what they did; set around the backend by
    /// [`gpu_monitor::run_watched`]. (Absent from the results of older Slurm nodes.)
    #[serde(default)]
    pub gpu: GpuUsage,
}

impl Execution {
    /// A case that never started, with podium's reason.
    pub fn not_started(message: String) -> Execution {
        Execution {
            status: ExecStatus::Failed,
            exit_code: None,
            signal: None,
            wall_s: 0.0,
            cpu_s: None,
            peak_memory_mib: None,
            message,
            program_said: String::new(),
            gpu: GpuUsage::default(),
        }
    }
}

/// A backend handed a submission of a kind it does not run (a routing bug, not a team's).
pub(crate) fn wrong_kind(submission: &Submission) -> String {
    format!(
        "internal error: submission {} is of kind {:?}, which this backend does not run",
        submission.name,
        submission.run.kind()
    )
}

/// Everything a backend needs to run one case.
pub struct CaseJob<'a> {
    pub submission: &'a Submission,
    pub case_id: String,
    /// Holds `cases.csv` with this one case and `images/<case_id>.nii.gz`; not made at all
    /// for a backend that makes the case's input itself ([`Backend::copies_input`]).
    pub input_dir: PathBuf,
    /// The case's image in the challenge, for a backend that makes the input itself.
    pub image: PathBuf,
    /// Empty and writable; the program writes `predictions.csv` and `masks/` here.
    pub output_dir: PathBuf,
    pub stdout_log: PathBuf,
    pub stderr_log: PathBuf,
    /// What is left of the submission's total wall-time budget.
    pub remaining_budget_s: f64,
    /// Which of the round's `jobs` slots runs the case (0-based), for backends that give each
    /// slot its own resources.
    pub slot: usize,
    /// The GPU indices the case may use (its slot's, disjoint from every other running case's),
    /// and their device nodes with the driver's control nodes; empty without GPUs.
    pub gpus: Vec<u32>,
    pub gpu_nodes: Vec<PathBuf>,
}

/// One way of executing submissions. Implementations live one per file in this folder.
pub trait Backend: Sync {
    fn name(&self) -> &'static str;
    /// The `[limits]` keys this backend enforces; the receipt lists the others as not enforced.
    fn enforced_limits(&self) -> &'static [&'static str];
    /// How the submissions are isolated, in one line for the receipt.
    fn isolation(&self) -> String;
    /// Once per submission before its first case (a build, an image pull). An error fails
    /// every case of that submission with the message.
    fn prepare(&self, submission: &Submission, log: &Path, limits: &Limits) -> Result<(), String>;
    fn run_case(&self, job: &CaseJob, limits: &Limits) -> Execution;
    /// Once when a round starts (or resumes), with an id stable across its resumptions (a
    /// hash of its folder): a backend that leaves things outside podium's process tree
    /// (containers) tags them with it and removes what an interrupted run left.
    fn start_round(&self, _run_id: &str, _out_dir: &Path) -> Result<(), String> {
        Ok(())
    }
    /// Once when the round's cases are all done: a backend removes what it brought into a
    /// shared place for the round (the images it loaded into the engine).
    fn finish_round(&self) {}
    /// Once per round (and per resumption) after every submission is prepared, with each
    /// pending case: a backend that hands cases to a scheduler submits them all here, and
    /// `run_case` then waits for each. An error stops the round before any case runs.
    fn enqueue(&self, _jobs: &[CaseJob], _limits: &Limits) -> Result<(), String> {
        Ok(())
    }
    /// Whether the backend puts a case's input where the program reads it by itself, from
    /// `CaseJob::image` (a tmpfs as root, the cluster's shared folder), so that the round
    /// need not stage a copy of it first.
    fn copies_input(&self, _submission: &Submission) -> bool {
        false
    }
    /// What the receipt records about how a prepared submission ran (the resolved image).
    fn submission_details(&self, _submission: &str) -> Option<serde_json::Value> {
        None
    }
    /// Worker mode ([`worker`]): starts the submission's program once for a slot, in its
    /// folders, with stdin, stdout and stderr piped. Only backends that return `true` from
    /// [`Backend::runs_workers`] are asked.
    fn start_worker(
        &self,
        _start: &worker::WorkerStart,
        _limits: &Limits,
    ) -> Result<worker::Spawned, String> {
        Err(format!("the {} backend runs no workers", self.name()))
    }
    fn runs_workers(&self) -> bool {
        false
    }
}

/// Detaches every mount under `dir` (the tmpfs outputs of cases a killed podium was running),
/// so that the folder can be removed. Only root mounts anything, so only root has any.
fn unmount_all_under(dir: &Path) {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    let prefix = format!("{}/", dir.display());
    for point in mounts.lines().filter_map(|l| l.split_whitespace().nth(1)) {
        if point.starts_with(&prefix) {
            if let Ok(c) = std::ffi::CString::new(point) {
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
}

/// The id of the round held in `out_dir`: FNV-1a of its absolute path, so a resumed round
/// finds what the interrupted one labelled.
pub fn run_id(out_dir: &Path) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in out_dir.as_os_str().as_encoded_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// What a finished round hands to scoring: per submission, where its collected predictions are
/// and how each case ran.
#[derive(Clone, Debug)]
pub struct SubmissionRun {
    pub submission: Submission,
    pub predictions_dir: PathBuf,
    pub cases: BTreeMap<String, CaseRecord>,
}

pub struct RoundOptions {
    pub jobs: usize,
    pub out_dir: PathBuf,
    /// Continue the round recorded in `out_dir/runs.csv`: finished cases are kept as they are
    /// and only the others run.
    pub resume: bool,
    /// The GPUs of the round when `[limits] gpus` > 0: each slot gets its own group, and
    /// `jobs` is capped at the number of groups.
    pub gpus: Option<gpus::GpuPool>,
}

/// Runs every submission on every case of the phase. Results and logs go under `out_dir`:
/// `runs.csv` (appended as cases finish, so an interrupted round keeps its finished work),
/// `predictions/<submission>/` and `logs/<submission>/`.
pub fn run_round(
    challenge: &Challenge,
    phase: &PhasePaths,
    submissions: &[Submission],
    backend: &dyn Backend,
    options: &RoundOptions,
    on_event: &mut dyn FnMut(&RunEvent),
) -> Result<Vec<SubmissionRun>> {
    let cases = crate::challenge::read_case_ids(phase)?;
    if cases.is_empty() {
        return Err(Error::msg(format!(
            "{} lists no case; nothing to run",
            phase.cases_csv().display()
        )));
    }
    // Absolute, since programs run in their own folder and get these paths as arguments.
    std::fs::create_dir_all(&options.out_dir)
        .map_err(|e| Error::io("create", &options.out_dir, e))?;
    let out = &std::fs::canonicalize(&options.out_dir)
        .map_err(|e| Error::io("resolve", &options.out_dir, e))?;
    if options.resume {
        // Leftovers of the interrupted process: its staging copies and unfinished case folders.
        for entry in std::fs::read_dir(out)
            .map_err(|e| Error::io("list", out, e))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".staging-") || name == "work" {
                unmount_all_under(&entry.path());
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let journal = out.join("runs.csv");
    let journal_started = std::fs::metadata(&journal).is_ok_and(|m| m.len() > 0);
    let (mut runs_csv, mut done) = if options.resume && journal_started {
        let mut done: BTreeMap<String, BTreeMap<String, CaseRecord>> = BTreeMap::new();
        for record in RunsCsv::read(&journal)? {
            done.entry(record.submission.clone())
                .or_default()
                .insert(record.case_id.clone(), record);
        }
        (RunsCsv::append_to(&journal)?, done)
    } else {
        (RunsCsv::create(&journal)?, BTreeMap::new())
    };
    // Each unfinished case, with the number of submissions still to run it.
    let unfinished: Vec<(String, usize)> = cases
        .iter()
        .map(|c| {
            let runs = submissions
                .iter()
                .filter(|s| !done.get(&s.name).is_some_and(|d| d.contains_key(c)))
                .count();
            (c.clone(), runs)
        })
        .filter(|(_, runs)| *runs > 0)
        .collect();
    interrupt::watch_round(out, submissions.len() * cases.len()).map_err(Error::msg)?;
    let staged = staging::StagedInputs::create(phase, &unfinished, out)?;
    let limits = &challenge.limits;
    let hidden_phase =
        challenge.phase(&phase.name)?.visibility == crate::challenge::Visibility::Hidden;
    on_event(&RunEvent::RoundStarted {
        challenge: challenge.name.clone(),
        phase: phase.name.clone(),
        submissions: submissions.len(),
        cases: cases.len(),
        jobs: options.jobs,
        backend: backend.name(),
    });
    if options.resume {
        let to_run: usize = unfinished.iter().map(|(_, runs)| runs).sum();
        on_event(&RunEvent::Resumed {
            kept: submissions.len() * cases.len() - to_run,
            to_run,
        });
    }

    backend
        .start_round(&run_id(out), out)
        .map_err(|e| Error::msg(format!("cannot start the round: {e}")))?;

    // Phase 1: prepare every submission that has cases left (builds may be long; one at a time).
    let mut lanes = Vec::new();
    for submission in submissions {
        let name = &submission.name;
        let finished = done.remove(name).unwrap_or_default();
        let pending: Vec<String> = cases
            .iter()
            .filter(|c| !finished.contains_key(*c))
            .cloned()
            .collect();
        let logs = out.join("logs").join(name);
        let work = out.join("work").join(name);
        let predictions_dir = out.join("predictions").join(name);
        for dir in [&logs, &work, &predictions_dir] {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        }
        let prepared = if pending.is_empty() {
            Ok(())
        } else {
            let started = Instant::now();
            on_event(&RunEvent::Preparing {
                submission: name.clone(),
                cases: pending.len(),
            });
            let prepared = if submission.run.mode() == RunMode::Worker && !backend.runs_workers() {
                Err(format!(
                    "[run] mode = \"worker\" runs with the process and sandbox backends, but this round uses the {} backend, which starts one process per case; run it with --backend sandbox, or remove `mode` from submission.toml",
                    backend.name()
                ))
            } else {
                backend.prepare(submission, &logs.join("prepare.log"), limits)
            };
            on_event(&RunEvent::Prepared {
                submission: name.clone(),
                seconds: started.elapsed().as_secs_f64(),
                error: prepared.as_ref().err().cloned(),
            });
            prepared
        };
        let keep = finished.keys().cloned().collect();
        let collector = staging::Collector::open(&predictions_dir, challenge, &keep)?;
        lanes.push(Lane {
            submission,
            pending,
            prepared,
            logs,
            work,
            predictions_dir,
            collector: Mutex::new(collector),
            records: Mutex::new(finished),
            used_ms: AtomicU64::new(0),
        });
    }

    // A scheduler gets every pending case of every prepared submission at once.
    let pending_jobs: Vec<CaseJob> = lanes
        .iter()
        .filter(|lane| lane.prepared.is_ok())
        .flat_map(|lane| {
            lane.pending.iter().map(|case_id| CaseJob {
                submission: lane.submission,
                case_id: case_id.clone(),
                input_dir: staged.dir_of(case_id),
                image: phase.image(case_id),
                output_dir: lane.work.join(case_id),
                stdout_log: lane.logs.join(format!("{case_id}.stdout.log")),
                stderr_log: lane.logs.join(format!("{case_id}.stderr.log")),
                remaining_budget_s: limits.wall_time_per_submission_s,
                slot: 0,
                gpus: Vec::new(),
                gpu_nodes: Vec::new(),
            })
        })
        .collect();
    if !pending_jobs.is_empty() {
        backend
            .enqueue(&pending_jobs, limits)
            .map_err(|e| Error::msg(format!("cannot hand the cases to {}: {e}", backend.name())))?;
    }
    drop(pending_jobs);

    // Phase 2: one pool of `jobs` slots over the cases of every submission, interleaved, so
    // that submissions progress together and one slow submission does not hold the others.
    let queue = Mutex::new(CaseQueue::new(&lanes));
    let mut left: Vec<usize> = lanes.iter().map(|l| l.pending.len()).collect();
    let mut failed = vec![0; lanes.len()];
    let round_started = Instant::now();
    for (l, lane) in lanes.iter().enumerate() {
        if left[l] == 0 {
            lane.report_finished(round_started, on_event);
        }
    }
    let (tx, rx) = mpsc::channel::<(usize, RunEvent)>();
    // No two running cases share a GPU: at most one slot per group of the pool.
    let gpus = options.gpus.as_ref().filter(|_| limits.gpus > 0);
    let slots = match gpus {
        Some(pool) => options.jobs.max(1).min(pool.max_slots()),
        None => options.jobs.max(1),
    };
    std::thread::scope(|scope| -> Result<()> {
        for slot in 0..slots {
            let tx = tx.clone();
            let (queue, lanes, staged) = (&queue, &lanes, &staged);
            scope.spawn(move || {
                // The slot's worker, for a submission in worker mode: kept while the slot
                // takes that submission's cases, ended when it moves on.
                let mut slot_worker: Option<(usize, worker::SlotWorker)> = None;
                loop {
                    let sticky = slot_worker.as_ref().map(|(l, _)| *l);
                    let Some((l, case_id)) = queue.lock().unwrap().next(sticky) else {
                        break;
                    };
                    if sticky.is_some_and(|s| s != l) {
                        if let Some((_, mut w)) = slot_worker.take() {
                            w.close(limits);
                        }
                    }
                    let lane = &lanes[l];
                    let submission = lane.submission;
                    // A submission's budget is the sum of its cases' wall times: the same whatever
                    // the number of slots and whatever else runs beside it.
                    let used_s = lane.used_ms.load(Ordering::SeqCst) as f64 / 1000.0;
                    let remaining = limits.wall_time_per_submission_s - used_s;
                    let _ = tx.send((
                        l,
                        RunEvent::CaseStarted {
                            submission: submission.name.clone(),
                            case_id: case_id.clone(),
                        },
                    ));
                    let record = match &lane.prepared {
                        Err(message) => {
                            let message =
                                format!("not run: preparing the submission failed: {message}");
                            let mut record =
                                not_run(submission, case_id, CaseStatus::Failed, message);
                            // Outside the sandbox a build could read the hidden truth, so
                            // what it printed is the organizer's alone.
                            if hidden_phase && backend.name() != "sandbox" {
                                record.team_message =
                                    process::without_build_output(&record.team_message);
                            }
                            record
                        }
                        Ok(()) if remaining <= 0.0 => not_run(
                            submission,
                            case_id,
                            CaseStatus::Timeout,
                            format!(
                            "not run: the submission used up its total wall-time budget of {} s",
                            limits.wall_time_per_submission_s
                        ),
                        ),
                        Ok(()) => {
                            let worker_mode = submission.run.mode() == RunMode::Worker;
                            let place = CasePlace {
                                slot,
                                stage_input: worker_mode || !backend.copies_input(submission),
                                gpus,
                                staged,
                                work: &lane.work,
                                logs: &lane.logs,
                                collector: &lane.collector,
                            };
                            let mut by_worker;
                            let mut by_process;
                            let execute: &mut dyn FnMut(&CaseJob) -> (Execution, Option<PathBuf>) =
                                if worker_mode {
                                    let (_, worker) = slot_worker.get_or_insert_with(|| {
                                        let start = worker::WorkerStart {
                                            submission,
                                            slot,
                                            dir: lane.work.join(format!(".worker-{slot}")),
                                            gpus: gpus
                                                .map(|p| p.for_slot(slot).to_vec())
                                                .unwrap_or_default(),
                                            gpu_nodes: gpus
                                                .map(|p| p.nodes_for_slot(slot))
                                                .unwrap_or_default(),
                                        };
                                        (l, worker::SlotWorker::new(backend, start, &lane.logs))
                                    });
                                    by_worker = |job: &CaseJob| {
                                        let served = worker.run_case(job, limits);
                                        if let Some(seconds) = served.start_s {
                                            // A start counts in the submission's budget, as it
                                            // does inside every case of a per-case program.
                                            lane.used_ms.fetch_add(
                                                (seconds * 1000.0) as u64,
                                                Ordering::SeqCst,
                                            );
                                            let _ = tx.send((
                                                l,
                                                RunEvent::WorkerStarted {
                                                    submission: submission.name.clone(),
                                                    slot,
                                                    seconds,
                                                },
                                            ));
                                        }
                                        (served.execution, served.outputs_in)
                                    };
                                    &mut by_worker
                                } else {
                                    by_process =
                                        |job: &CaseJob| (backend.run_case(job, limits), None);
                                    &mut by_process
                                };
                            run_one(
                                hidden_phase,
                                challenge,
                                execute,
                                submission,
                                case_id,
                                &place,
                                remaining,
                                limits,
                            )
                        }
                    };
                    staged.release(case_id);
                    lane.used_ms
                        .fetch_add((record.wall_s * 1000.0) as u64, Ordering::SeqCst);
                    lane.records
                        .lock()
                        .unwrap()
                        .insert(case_id.clone(), record.clone());
                    let _ = tx.send((l, RunEvent::CaseFinished(record)));
                }
                if let Some((_, mut w)) = slot_worker.take() {
                    w.close(limits);
                }
            });
        }
        drop(tx);
        for (l, event) in rx {
            if let RunEvent::CaseFinished(record) = &event {
                // After an interruption the handler owns the end: a case whose program it
                // killed is not a failure of the program, and runs again on resume.
                let Some(appended) = interrupt::unless_interrupted(|| runs_csv.append(record))
                else {
                    continue;
                };
                appended?;
            }
            on_event(&event);
            if let RunEvent::CaseFinished(record) = &event {
                left[l] -= 1;
                failed[l] += usize::from(record.status != CaseStatus::Ok);
                on_event(&RunEvent::Progress {
                    submission: record.submission.clone(),
                    progress: events::Progress {
                        done: lanes[l].pending.len() - left[l],
                        total: lanes[l].pending.len(),
                        failed: failed[l],
                        elapsed_s: round_started.elapsed().as_secs_f64(),
                    },
                });
                if left[l] == 0 {
                    lanes[l].report_finished(round_started, on_event);
                }
            }
        }
        Ok(())
    })?;

    backend.finish_round();
    let runs = lanes
        .into_iter()
        .map(|lane| {
            let _ = std::fs::remove_dir_all(&lane.work);
            SubmissionRun {
                submission: lane.submission.clone(),
                predictions_dir: lane.predictions_dir,
                cases: lane.records.into_inner().unwrap_or_else(|e| e.into_inner()),
            }
        })
        .collect();
    // Only the submissions' folders were in it; a resumed round makes it again.
    let _ = std::fs::remove_dir(out.join("work"));
    Ok(runs)
}

/// The round's pending cases, handed to slots one at a time. Cases are interleaved across
/// submissions (the first case of each, then the second of each, ...), so that submissions
/// progress together and one slow submission does not hold the others; a slot serving a
/// worker asks for more of the same submission first, so that its worker keeps serving.
struct CaseQueue<'a> {
    /// Per lane, its pending cases with their place in the interleaved order.
    lanes: Vec<std::collections::VecDeque<(usize, &'a String)>>,
}

impl<'a> CaseQueue<'a> {
    fn new(lanes: &'a [Lane<'a>]) -> CaseQueue<'a> {
        let count = lanes.len();
        CaseQueue {
            lanes: lanes
                .iter()
                .enumerate()
                .map(|(l, lane)| {
                    lane.pending
                        .iter()
                        .enumerate()
                        .map(|(k, case)| (k * count + l, case))
                        .collect()
                })
                .collect(),
        }
    }

    /// The next case, from lane `prefer` while it has one, else the earliest in the
    /// interleaved order (the front of some lane, since each lane is in that order).
    fn next(&mut self, prefer: Option<usize>) -> Option<(usize, &'a String)> {
        let lane = prefer.filter(|&l| !self.lanes[l].is_empty()).or_else(|| {
            (0..self.lanes.len())
                .filter_map(|l| self.lanes[l].front().map(|(order, _)| (*order, l)))
                .min()
                .map(|(_, l)| l)
        })?;
        self.lanes[lane].pop_front().map(|(_, case)| (lane, case))
    }
}

/// One submission's share of a round.
struct Lane<'a> {
    submission: &'a Submission,
    pending: Vec<String>,
    prepared: Result<(), String>,
    logs: PathBuf,
    work: PathBuf,
    predictions_dir: PathBuf,
    collector: Mutex<staging::Collector>,
    records: Mutex<BTreeMap<String, CaseRecord>>,
    /// Wall time its cases have used so far, in milliseconds.
    used_ms: AtomicU64,
}

impl Lane<'_> {
    fn report_finished(&self, round_started: Instant, on_event: &mut dyn FnMut(&RunEvent)) {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        on_event(&RunEvent::SubmissionFinished {
            submission: self.submission.name.clone(),
            seconds: round_started.elapsed().as_secs_f64(),
            counts: count_statuses(records.values()),
        });
    }
}

/// Where one case runs: its slot and the folders of its submission.
struct CasePlace<'a> {
    slot: usize,
    /// Whether the case's input must be staged for the backend (one that fills the case's
    /// folders from the phase's image itself does not need it; a worker's folders are filled
    /// from the staged input).
    stage_input: bool,
    gpus: Option<&'a gpus::GpuPool>,
    staged: &'a staging::StagedInputs,
    work: &'a Path,
    logs: &'a Path,
    collector: &'a Mutex<staging::Collector>,
}

fn not_run(
    submission: &Submission,
    case_id: &str,
    status: CaseStatus,
    message: String,
) -> CaseRecord {
    CaseRecord {
        submission: submission.name.clone(),
        case_id: case_id.to_string(),
        status,
        exit_code: None,
        signal: None,
        wall_s: 0.0,
        cpu_s: None,
        peak_memory_mib: None,
        team_message: message.clone(),
        message,
        gpu: GpuUsage::default(),
    }
}

#[allow(clippy::too_many_arguments)]
fn run_one(
    hidden_phase: bool,
    challenge: &Challenge,
    execute: &mut dyn FnMut(&CaseJob) -> (Execution, Option<PathBuf>),
    submission: &Submission,
    case_id: &str,
    place: &CasePlace,
    remaining_budget_s: f64,
    limits: &Limits,
) -> CaseRecord {
    let (staged, work, logs, collector) = (place.staged, place.work, place.logs, place.collector);
    let output_dir = work.join(case_id);
    let fail = |message: String| not_run(submission, case_id, CaseStatus::Failed, message);
    if let Err(e) = std::fs::create_dir_all(&output_dir) {
        return fail(format!("podium could not create the output folder: {e}"));
    }
    let input_dir = if !place.stage_input {
        staged.dir_of(case_id)
    } else {
        match staged.acquire(case_id) {
            Ok(dir) => dir,
            Err(message) => return fail(message),
        }
    };
    let job = CaseJob {
        submission,
        case_id: case_id.to_string(),
        input_dir,
        image: staged.image_of(case_id),
        output_dir: output_dir.clone(),
        stdout_log: logs.join(format!("{case_id}.stdout.log")),
        stderr_log: logs.join(format!("{case_id}.stderr.log")),
        remaining_budget_s,
        slot: place.slot,
        gpus: place
            .gpus
            .map(|p| p.for_slot(place.slot).to_vec())
            .unwrap_or_default(),
        gpu_nodes: place
            .gpus
            .map(|p| p.nodes_for_slot(place.slot))
            .unwrap_or_default(),
    };
    // Where the outputs are when not in `output_dir`: a worker's folder, read in place.
    let mut outputs_in = None;
    let execution =
        gpu_monitor::run_watched(&job, submission.run.mode() == RunMode::Worker, || {
            let (execution, found_in) = execute(&job);
            outputs_in = found_in;
            execution
        });
    let said = if execution.program_said.is_empty() || execution.status == ExecStatus::Ok {
        String::new()
    } else {
        format!(": {}", execution.program_said)
    };
    let (status, message) = match execution.status {
        ExecStatus::Failed => (CaseStatus::Failed, execution.message.clone()),
        // (the program's own words are added below, for whoever may see them)
        ExecStatus::Timeout => (CaseStatus::Timeout, execution.message.clone()),
        ExecStatus::Oom => (CaseStatus::Oom, execution.message.clone()),
        ExecStatus::OutputLimit => (CaseStatus::OutputLimit, execution.message.clone()),
        ExecStatus::Ok => {
            let (output, status, message) = staging::check_case_output(
                outputs_in.as_deref().unwrap_or(&output_dir),
                case_id,
                challenge,
                limits,
            );
            match collector.lock().unwrap().add(case_id, output) {
                Ok(()) => (status, message),
                Err(e) => (CaseStatus::Invalid, e.to_string()),
            }
        }
    };
    let _ = std::fs::remove_dir_all(&output_dir);
    CaseRecord {
        submission: submission.name.clone(),
        case_id: case_id.to_string(),
        status,
        exit_code: execution.exit_code,
        signal: execution.signal,
        wall_s: execution.wall_s,
        cpu_s: execution.cpu_s,
        peak_memory_mib: execution.peak_memory_mib,
        team_message: if hidden_phase {
            message.clone()
        } else {
            format!("{message}{said}")
        },
        message: format!("{message}{said}"),
        gpu: execution.gpu,
    }
}
