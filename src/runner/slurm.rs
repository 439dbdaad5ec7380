//! The Slurm backend: a round's cases run as Slurm jobs on a cluster, and come back to the same
//! collection, checks and scoring as a local round (docs/slurm.md).
//!
//! - **Submission.** Once every submission is prepared, [`Backend::enqueue`] hands each
//!   submission's pending cases to Slurm as one job array, `cases_per_job` cases per task. Each
//!   task runs `podium exec-case BATCH.json` ([`super::node`]) on its node, which runs the cases
//!   in the same local backend as a round on one machine (the sandbox) and writes a result
//!   file per case. The job's resources come from `[limits]`: `--time` (minutes, rounded up:
//!   podium enforces the per-case limit in seconds inside the job), `--mem`, `--cpus-per-task`
//!   and `--gres=gpu:N`.
//! - **Tracking.** [`Backend::run_case`] waits for its case's result file; one `squeue` call
//!   per poll interval, shared by every waiting case, tells whether the task still runs. A task
//!   gone from the queue without a result ended abnormally: its state, read with
//!   `scontrol show job` (no accounting database needed), becomes the case's status.
//! - **Infrastructure failures** (NODE_FAIL, BOOT_FAIL, PREEMPTED) are the cluster's, not the
//!   team's: the task's batch is submitted again, up to `resubmissions` times.
//! - **Resumption.** Every submitted task is appended to `slurm/jobs.csv` in the round's
//!   folder. `podium run --resume` reads it: a case whose result is there is collected, a case
//!   whose task is still queued or running is waited for, and only the others are submitted.
//!   The jobs of a round survive the organizer's podium.
//!
//! Everything a job reads or writes lives under the round's folder, which must be on a file
//! system the nodes share, as must the submissions and the `podium` binary itself.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::node::{write_atomically, BatchSpec, CaseResult, CaseSpec};
use super::{Backend, BackendKind, CaseJob, ExecStatus, Execution};
use crate::challenge::{ClusterSettings, Limits};
use crate::submission::Submission;

/// Seconds a job gets beyond its cases' wall-time limits: podium's start on the node, staging
/// and the grace periods.
const JOB_TIME_MARGIN_S: f64 = 120.0;
/// MB a job gets beyond `memory_mb`, for podium and the sandbox on the node.
const JOB_MEMORY_MARGIN_MB: u64 = 256;

/// How Slurm ended a task, as podium sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskEnd {
    /// Still queued or running.
    Alive,
    /// Ended normally: its results say the rest.
    Completed,
    Timeout,
    OutOfMemory,
    Failed,
    Cancelled,
    /// The cluster's fault (NODE_FAIL, BOOT_FAIL, PREEMPTED): submit again.
    Infrastructure,
    /// No longer known to Slurm (purged, or never existed).
    Unknown,
}

/// Maps a Slurm job state (`squeue %T`, `scontrol JobState=`) onto what podium does with it.
pub fn task_end(state: &str) -> TaskEnd {
    // `CANCELLED by 0` in scontrol; states may carry a `+` suffix.
    let state = state
        .split_whitespace()
        .next()
        .unwrap_or("")
        .trim_end_matches('+');
    match state {
        "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" | "SUSPENDED" | "REQUEUED"
        | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESIZING" | "SIGNALING" | "STAGE_OUT" | "STOPPED"
        | "RESV_DEL_HOLD" | "SPECIAL_EXIT" => TaskEnd::Alive,
        "COMPLETED" => TaskEnd::Completed,
        "TIMEOUT" | "DEADLINE" => TaskEnd::Timeout,
        "OUT_OF_MEMORY" => TaskEnd::OutOfMemory,
        "FAILED" => TaskEnd::Failed,
        "CANCELLED" | "REVOKED" => TaskEnd::Cancelled,
        "NODE_FAIL" | "BOOT_FAIL" | "PREEMPTED" => TaskEnd::Infrastructure,
        _ => TaskEnd::Unknown,
    }
}

/// `--time` for a job of `cases` cases: Slurm counts whole minutes, so podium's own per-case
/// limit (in seconds, enforced inside the job) ends a case first.
pub fn time_limit_minutes(limits: &Limits, cases: usize) -> u64 {
    let seconds =
        (limits.wall_time_per_case_s + limits.grace_period_s) * cases as f64 + JOB_TIME_MARGIN_S;
    (seconds / 60.0).ceil().max(1.0) as u64
}

/// The `sbatch` arguments of one submission's job array.
pub fn sbatch_args(
    settings: &ClusterSettings,
    limits: &Limits,
    cases_per_task: usize,
    job_name: &str,
    log_pattern: &Path,
) -> Vec<String> {
    let mut args = vec![
        "--parsable".to_string(),
        format!("--job-name={job_name}"),
        format!("--time={}", time_limit_minutes(limits, cases_per_task)),
        format!(
            "--mem={}M",
            settings
                .job_memory_mb
                .unwrap_or(limits.memory_mb + JOB_MEMORY_MARGIN_MB)
        ),
        format!("--cpus-per-task={}", limits.cpus.max(1)),
        "--nodes=1".to_string(),
        "--ntasks=1".to_string(),
        // podium submits a lost job again itself, counting the attempts.
        "--no-requeue".to_string(),
        format!("--output={}", log_pattern.display()),
    ];
    if limits.gpus > 0 {
        args.push(format!("--gres=gpu:{}", limits.gpus));
    }
    if let Some(p) = &settings.partition {
        args.push(format!("--partition={p}"));
    }
    if let Some(a) = &settings.account {
        args.push(format!("--account={a}"));
    }
    args.extend(settings.sbatch_args.iter().cloned());
    args
}

/// One task of a job array: which cases it runs.
#[derive(Clone, Debug)]
struct Task {
    /// `<array job id>_<index>`.
    id: String,
    attempt: u32,
    batch_file: PathBuf,
}

/// Where one case's files are, and which task runs it.
#[derive(Clone, Debug)]
struct Placed {
    spec: CaseSpec,
    task: Task,
}

#[derive(Default)]
struct State {
    out: PathBuf,
    run_id: String,
    /// By (submission, case): the task that runs it, as submitted or as read from the journal.
    cases: HashMap<(String, String), Placed>,
    /// Batch files already used, per submission (resubmissions and resumptions add more).
    batches: HashMap<String, usize>,
    journal: Option<std::fs::File>,
}

/// The queue as the last `squeue` call saw it, shared by every waiting case.
#[derive(Default)]
struct QueueView {
    taken: Option<Instant>,
    alive: HashMap<String, String>,
    error: Option<String>,
    /// When tasks waiting for a node were last reported.
    warned: Option<Instant>,
}

pub struct SlurmBackend {
    settings: ClusterSettings,
    /// The podium binary the nodes run; it must be at this path on every node.
    podium: PathBuf,
    hidden_phase: bool,
    allow_unisolated: bool,
    state: Mutex<State>,
    queue: Mutex<QueueView>,
}

impl SlurmBackend {
    /// Checks that Slurm answers here (`sinfo`), and remembers how the nodes run cases.
    pub fn connect(
        settings: ClusterSettings,
        hidden_phase: bool,
        allow_unisolated: bool,
        podium: &Path,
    ) -> Result<SlurmBackend, String> {
        let sinfo = Command::new("sinfo")
            .args(["-h", "-o", "%P %a %D %T"])
            .output()
            .map_err(|e| {
                format!("cannot run `sinfo` ({e}): install Slurm's client commands on this machine, or choose another --backend")
            })?;
        if !sinfo.status.success() {
            return Err(format!(
                "`sinfo` failed: {}; is slurmctld reachable (SLURM_CONF)?",
                String::from_utf8_lossy(&sinfo.stderr).trim()
            ));
        }
        let podium = std::fs::canonicalize(podium)
            .map_err(|e| format!("cannot find the podium binary {}: {e}", podium.display()))?;
        if settings.node_backend == BackendKind::Slurm {
            return Err(
                "[cluster] node_backend cannot be slurm itself; use auto, sandbox or process"
                    .into(),
            );
        }
        Ok(SlurmBackend {
            settings,
            podium,
            hidden_phase,
            allow_unisolated,
            state: Mutex::new(State::default()),
            queue: Mutex::new(QueueView::default()),
        })
    }

    fn journal_path(out: &Path) -> PathBuf {
        out.join("slurm").join("jobs.csv")
    }

    /// Where a submission's batches, results and outputs go.
    fn dir(out: &Path, submission: &str) -> PathBuf {
        out.join("slurm").join(submission)
    }

    fn case_spec(out: &Path, job: &CaseJob) -> CaseSpec {
        let dir = Self::dir(out, &job.submission.name);
        CaseSpec {
            case_id: job.case_id.clone(),
            input_dir: out.join("slurm").join("inputs").join(&job.case_id),
            output_dir: dir.join("outputs").join(&job.case_id),
            stdout_log: job.stdout_log.clone(),
            stderr_log: job.stderr_log.clone(),
            result: dir.join("results").join(format!("{}.json", job.case_id)),
        }
    }

    /// The queue's live tasks, refreshed at most once per poll interval.
    fn alive(&self, task: &str) -> Result<Option<String>, String> {
        let mut view = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let stale = view
            .taken
            .is_none_or(|t| t.elapsed().as_secs_f64() >= self.settings.poll_interval_s);
        if stale {
            let run_id = self
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .run_id
                .clone();
            match squeue_with_reasons(&job_name_prefix(&run_id)) {
                Ok(alive) => {
                    let stuck: Vec<&String> = alive
                        .values()
                        .filter(|(state, reason)| waits_for_a_node(state, reason))
                        .map(|(_, reason)| reason)
                        .collect();
                    let due = view
                        .warned
                        .is_none_or(|t| t.elapsed() >= NODE_WARNING_EVERY);
                    if let (Some(reason), true) = (stuck.first(), due) {
                        // Slurm would keep these tasks pending forever: say so, and what ends it.
                        eprintln!(
                            "{:>10} Slurm holds {} task(s) of this round with no node to run on: {}. The round waits until an organizer returns the nodes to service (`scontrol update NodeName=<node> State=RESUME`); `scancel` of the jobs fails their cases instead",
                            "WAITING",
                            stuck.len(),
                            crate::text::shown(reason)
                        );
                        view.warned = Some(Instant::now());
                    }
                    view.alive = alive
                        .into_iter()
                        .map(|(id, (state, _))| (id, state))
                        .collect();
                    view.error = None;
                }
                Err(e) => view.error = Some(e),
            }
            view.taken = Some(Instant::now());
        }
        if let Some(e) = &view.error {
            return Err(e.clone());
        }
        Ok(view.alive.get(task).cloned())
    }

    /// Submits the cases of one submission as one job array and records the tasks.
    fn submit(
        &self,
        state: &mut State,
        submission: &Submission,
        cases: Vec<CaseSpec>,
        limits: &Limits,
        attempt: u32,
    ) -> Result<(), String> {
        if cases.is_empty() {
            return Ok(());
        }
        let out = state.out.clone();
        let dir = Self::dir(&out, &submission.name);
        for d in ["batches", "results", "outputs", "logs"] {
            std::fs::create_dir_all(dir.join(d))
                .map_err(|e| format!("cannot create {}: {e}", dir.join(d).display()))?;
        }
        let per_task = self.settings.cases_per_job.max(1);
        let first = *state.batches.get(&submission.name).unwrap_or(&0);
        let mut batches = Vec::new();
        for (k, chunk) in cases.chunks(per_task).enumerate() {
            let index = first + k;
            let file = dir.join("batches").join(format!("batch-{index}.json"));
            let spec = BatchSpec {
                run_id: state.run_id.clone(),
                submission_dir: submission.dir.clone(),
                limits: limits.clone(),
                hidden_phase: self.hidden_phase,
                allow_unisolated: self.allow_unisolated,
                node_backend: self.settings.node_backend,
                cases: chunk.to_vec(),
            };
            write_atomically(&file, &spec).map_err(|e| e.to_string())?;
            batches.push((index, file, chunk.to_vec()));
        }
        let last = first + batches.len() - 1;
        state.batches.insert(submission.name.clone(), last + 1);
        let script = dir.join("batches").join("job.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n# Written by podium: one task runs the cases of batch-$SLURM_ARRAY_TASK_ID.json.\nexec {} exec-case {}/batch-\"$SLURM_ARRAY_TASK_ID\".json\n",
                shell_quote(&self.podium.display().to_string()),
                shell_quote(&dir.join("batches").display().to_string()),
            ),
        )
        .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
        let mut args = sbatch_args(
            &self.settings,
            limits,
            per_task,
            &format!("{}{}", job_name_prefix(&state.run_id), submission.name),
            &dir.join("logs").join("slurm-%A_%a.out"),
        );
        args.push(format!("--array={first}-{last}"));
        args.push(script.display().to_string());
        let output = Command::new("sbatch")
            .args(&args)
            .output()
            .map_err(|e| format!("cannot run sbatch: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "sbatch {} refused the job array: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        // `--parsable` prints `<job id>` or `<job id>;<cluster>`.
        let job_id = String::from_utf8_lossy(&output.stdout)
            .trim()
            .split(';')
            .next()
            .unwrap_or("")
            .to_string();
        if job_id.is_empty() || !job_id.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!(
                "sbatch answered {:?}, not a job id",
                String::from_utf8_lossy(&output.stdout)
            ));
        }
        let mut lines = String::new();
        for (index, file, chunk) in batches {
            let task = Task {
                id: format!("{job_id}_{index}"),
                attempt,
                batch_file: file.clone(),
            };
            for spec in chunk {
                let _ = writeln!(
                    lines,
                    "{},{},{},{},{}",
                    submission.name,
                    spec.case_id,
                    task.id,
                    attempt,
                    file.display()
                );
                state.cases.insert(
                    (submission.name.clone(), spec.case_id.clone()),
                    Placed {
                        spec,
                        task: task.clone(),
                    },
                );
            }
        }
        if let Some(journal) = state.journal.as_mut() {
            journal
                .write_all(lines.as_bytes())
                .and_then(|()| journal.sync_data())
                .map_err(|e| format!("cannot write slurm/jobs.csv: {e}"))?;
        }
        Ok(())
    }

    /// Submits one lost task's batch again, as a one-task array.
    fn resubmit(
        &self,
        submission: &Submission,
        placed: &Placed,
        limits: &Limits,
    ) -> Result<(), String> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // Another case of the same task may have resubmitted it already.
        let current = state
            .cases
            .get(&(submission.name.clone(), placed.spec.case_id.clone()))
            .map(|p| p.task.id.clone());
        if current.as_deref() != Some(placed.task.id.as_str()) {
            return Ok(());
        }
        let text = std::fs::read_to_string(&placed.task.batch_file)
            .map_err(|e| format!("cannot read {}: {e}", placed.task.batch_file.display()))?;
        let batch: BatchSpec = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let unfinished: Vec<CaseSpec> = batch
            .cases
            .into_iter()
            .filter(|c| !c.result.exists())
            .collect();
        self.submit(
            &mut state,
            submission,
            unfinished,
            limits,
            placed.task.attempt + 1,
        )
    }

    fn slurm_oom_message(&self, limits: &Limits) -> String {
        format!(
            "killed by Slurm for exceeding the job's memory ({} MB)",
            self.settings
                .job_memory_mb
                .unwrap_or(limits.memory_mb + JOB_MEMORY_MARGIN_MB)
        )
    }

    fn placed(&self, submission: &str, case_id: &str) -> Option<Placed> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .cases
            .get(&(submission.to_string(), case_id.to_string()))
            .cloned()
    }

    /// Puts a finished case's output where the round collects it. A copy, not a move: a podium
    /// killed between this and its journal finds the output again on resume. Not hard links
    /// either, which the output check refuses (one could lead to a file outside the output).
    fn hand_over(spec: &CaseSpec, job: &CaseJob) -> Result<(), String> {
        let _ = std::fs::remove_dir_all(&job.output_dir);
        if spec.output_dir.exists() {
            copy_tree(&spec.output_dir, &job.output_dir)
        } else {
            std::fs::create_dir_all(&job.output_dir)
        }
        .map_err(|e| {
            format!(
                "cannot copy {} to {}: {e}",
                spec.output_dir.display(),
                job.output_dir.display()
            )
        })
    }
}

/// Job names start with this, so that `squeue` lists exactly this round's tasks.
fn job_name_prefix(run_id: &str) -> String {
    format!("podium-{}-", &run_id[..run_id.len().min(8)])
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Live tasks of this round's jobs (`%i` with `-r`: one line per array task) and their states.
fn squeue(name_prefix: &str) -> Result<HashMap<String, String>, String> {
    Ok(squeue_with_reasons(name_prefix)?
        .into_iter()
        .map(|(id, (state, _))| (id, state))
        .collect())
}

/// [`squeue`] with each task's reason (`%r`: why a pending task waits).
fn squeue_with_reasons(name_prefix: &str) -> Result<HashMap<String, (String, String)>, String> {
    let output = Command::new("squeue")
        .args(["-h", "-r", "-o", "%i|%j|%T|%r"])
        .output()
        .map_err(|e| format!("cannot run squeue: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "squeue failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(parse_squeue(
        &String::from_utf8_lossy(&output.stdout),
        name_prefix,
    ))
}

fn parse_squeue(text: &str, name_prefix: &str) -> HashMap<String, (String, String)> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(4, '|');
            let (id, name, state) = (parts.next()?, parts.next()?, parts.next()?);
            let reason = parts.next().unwrap_or("").trim().to_string();
            name.starts_with(name_prefix)
                .then(|| (id.trim().to_string(), (state.trim().to_string(), reason)))
        })
        .collect()
}

/// The reason of a pending task that only an organizer can end: no node to run on (down,
/// drained, not available), as opposed to waiting for resources or priority.
fn waits_for_a_node(state: &str, reason: &str) -> bool {
    state == "PENDING"
        && [
            "DOWN",
            "DRAIN",
            "ReqNodeNotAvail",
            "NodeDown",
            "UnavailableNodes",
        ]
        .iter()
        .any(|word| reason.contains(word))
}

/// How often the warning about tasks waiting for a node is repeated.
const NODE_WARNING_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// A finished task's state and run time, from `scontrol show job` (kept for `MinJobAge`).
pub fn parse_scontrol(text: &str) -> (Option<String>, Option<f64>, Option<i32>) {
    let mut state = None;
    let mut run_time = None;
    let mut exit = None;
    for field in text.split_whitespace() {
        if let Some(v) = field.strip_prefix("JobState=") {
            state = Some(v.to_string());
        } else if let Some(v) = field.strip_prefix("RunTime=") {
            run_time = parse_duration(v);
        } else if let Some(v) = field.strip_prefix("ExitCode=") {
            exit = v.split(':').next().and_then(|c| c.parse().ok());
        }
    }
    (state, run_time, exit)
}

/// `[days-]hh:mm:ss` in seconds.
fn parse_duration(text: &str) -> Option<f64> {
    let (days, rest) = match text.split_once('-') {
        Some((d, r)) => (d.parse::<f64>().ok()?, r),
        None => (0.0, text),
    };
    let mut seconds = 0.0;
    for part in rest.split(':') {
        seconds = seconds * 60.0 + part.parse::<f64>().ok()?;
    }
    Some(days * 86_400.0 + seconds)
}

fn scontrol_show(task: &str) -> (Option<String>, Option<f64>, Option<i32>) {
    match Command::new("scontrol")
        .args(["show", "job", "-o", task])
        .output()
    {
        Ok(o) if o.status.success() => parse_scontrol(&String::from_utf8_lossy(&o.stdout)),
        _ => (None, None, None),
    }
}

impl Backend for SlurmBackend {
    fn name(&self) -> &'static str {
        "slurm"
    }

    /// `enqueue` copies each case into the cluster's shared folder, before any case runs.
    fn copies_input(&self, _submission: &Submission) -> bool {
        true
    }

    fn enforced_limits(&self) -> &'static [&'static str] {
        // Slurm bounds memory, CPUs and GPUs per job; the sandbox on the node does the rest,
        // as on one machine.
        &[
            "wall_time_per_case_s",
            "wall_time_per_submission_s",
            "memory_mb",
            "cpus",
            "gpus",
            "output_mb",
            "log_kb",
            "network",
        ]
    }

    fn isolation(&self) -> String {
        format!(
            "Slurm jobs (one array per submission, {} case(s) per task, --mem, --cpus-per-task, --gres), each case in the node's {} backend",
            self.settings.cases_per_job.max(1),
            match self.settings.node_backend {
                BackendKind::Auto => "sandbox (auto)",
                BackendKind::Sandbox => "sandbox",
                BackendKind::Process => "process",
                BackendKind::Slurm => "slurm",
            }
        )
    }

    fn prepare(&self, submission: &Submission, log: &Path, limits: &Limits) -> Result<(), String> {
        // Native submissions build here, once, into the shared folder the nodes read; images
        // are loaded on each node by its job.
        match submission.run {
            crate::submission::RunSpec::Docker { .. } => Ok(()),
            crate::submission::RunSpec::Process { .. } => {
                match super::sandbox::SandboxBackend::probe_isolation_only() {
                    Ok(sandbox) => sandbox.prepare(submission, log, limits),
                    Err(_) => super::process::ProcessBackend.prepare(submission, log, limits),
                }
            }
        }
    }

    fn start_round(&self, run_id: &str, out: &Path) -> Result<(), String> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.out = out.to_path_buf();
        state.run_id = run_id.to_string();
        let journal = Self::journal_path(out);
        std::fs::create_dir_all(journal.parent().unwrap_or(out))
            .map_err(|e| format!("cannot create {}: {e}", out.join("slurm").display()))?;
        // A resumed round: the tasks the interrupted podium submitted, the latest per case.
        if let Ok(text) = std::fs::read_to_string(&journal) {
            for line in text.lines() {
                let fields: Vec<&str> = line.splitn(5, ',').collect();
                let [submission, case_id, task, attempt, batch_file] = fields[..] else {
                    continue;
                };
                let batch_file = PathBuf::from(batch_file);
                let index: usize = batch_file
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| s.strip_prefix("batch-"))
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let next = state.batches.entry(submission.to_string()).or_insert(0);
                *next = (*next).max(index + 1);
                let Ok(text) = std::fs::read_to_string(&batch_file) else {
                    continue;
                };
                let Ok(batch) = serde_json::from_str::<BatchSpec>(&text) else {
                    continue;
                };
                if let Some(spec) = batch.cases.into_iter().find(|c| c.case_id == case_id) {
                    state.cases.insert(
                        (submission.to_string(), case_id.to_string()),
                        Placed {
                            spec,
                            task: Task {
                                id: task.to_string(),
                                attempt: attempt.parse().unwrap_or(0),
                                batch_file,
                            },
                        },
                    );
                }
            }
        }
        state.journal = Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&journal)
                .map_err(|e| format!("cannot open {}: {e}", journal.display()))?,
        );
        Ok(())
    }

    fn enqueue(&self, jobs: &[CaseJob], limits: &Limits) -> Result<(), String> {
        let (out, run_id) = {
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            (state.out.clone(), state.run_id.clone())
        };
        let alive = squeue(&job_name_prefix(&run_id))?;
        let mut to_submit: BTreeMap<String, (&Submission, Vec<CaseSpec>)> = BTreeMap::new();
        for job in jobs {
            let known = self.placed(&job.submission.name, &job.case_id);
            let reusable = known
                .as_ref()
                .is_some_and(|p| p.spec.result.exists() || alive.contains_key(&p.task.id));
            if reusable {
                continue;
            }
            let spec = Self::case_spec(&out, job);
            // The case's own copy of its input, made here from the challenge's image (the
            // round stages nothing for Slurm, see `copies_input`): the job may start after the
            // organizer's podium is gone. Every submission shares it, and a running job may be
            // reading it, so an existing copy is kept; a new one appears whole, by a rename.
            if !spec.input_dir.exists() {
                let partial = spec
                    .input_dir
                    .with_file_name(format!(".partial-{}", job.case_id));
                let _ = std::fs::remove_dir_all(&partial);
                super::staging::stage_case(&job.image, &job.case_id, &partial)
                    .and_then(|()| std::fs::rename(&partial, &spec.input_dir))
                    .map_err(|e| format!("cannot stage {} for the cluster: {e}", job.case_id))?;
            }
            let _ = std::fs::remove_file(&spec.result);
            to_submit
                .entry(job.submission.name.clone())
                .or_insert((job.submission, Vec::new()))
                .1
                .push(spec);
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for (_, (submission, specs)) in to_submit {
            self.submit(&mut state, submission, specs, limits, 0)?;
        }
        Ok(())
    }

    fn run_case(&self, job: &CaseJob, limits: &Limits) -> Execution {
        let started = Instant::now();
        let poll = Duration::from_secs_f64(self.settings.poll_interval_s.max(0.05));
        loop {
            let Some(placed) = self.placed(&job.submission.name, &job.case_id) else {
                return Execution::not_started(format!(
                    "internal error: case {} of {} was never handed to Slurm",
                    job.case_id, job.submission.name
                ));
            };
            if let Some(result) = CaseResult::read(&placed.spec.result) {
                let mut execution = result.execution;
                // A case killed below podium's own memory limit was killed by the job's
                // (Slurm's `--mem`, when set lower), which Slurm confirms with OUT_OF_MEMORY.
                let killed = execution.status == ExecStatus::Oom
                    || (execution.status == ExecStatus::Failed
                        && (execution.signal == Some(9) || execution.exit_code == Some(137)));
                let below_own_limit = execution
                    .peak_memory_mib
                    .is_none_or(|peak| peak < limits.memory_mb as f64 * 0.95);
                if killed && below_own_limit {
                    // The sandbox's group, nested in the job's, saw the kill itself; a plain
                    // process only saw SIGKILL, and Slurm says why.
                    let by_slurm = execution.status == ExecStatus::Oom
                        || wait_final(&placed.task.id, poll)
                            .0
                            .is_some_and(|state| task_end(&state) == TaskEnd::OutOfMemory);
                    if by_slurm {
                        execution.status = ExecStatus::Oom;
                        execution.message = self.slurm_oom_message(limits);
                        execution.program_said.clear();
                    }
                }
                if let Err(e) = Self::hand_over(&placed.spec, job) {
                    return Execution::not_started(e);
                }
                return execution;
            }
            match self.alive(&placed.task.id) {
                Ok(Some(_)) => {
                    std::thread::sleep(poll);
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    // The controller may be briefly unreachable: keep waiting, but not forever.
                    if started.elapsed().as_secs_f64() > limits.wall_time_per_case_s * 4.0 + 600.0 {
                        return Execution::not_started(format!("lost track of Slurm: {e}"));
                    }
                    std::thread::sleep(poll);
                    continue;
                }
            }
            // Gone from the queue. The result may land just after the task ends.
            std::thread::sleep(Duration::from_millis(200));
            if placed.spec.result.exists() {
                continue;
            }
            let (state, run_time, exit) = scontrol_show(&placed.task.id);
            let state_text = state.clone().unwrap_or_else(|| "unknown".into());
            let end = state.as_deref().map_or(TaskEnd::Unknown, task_end);
            let ended = |status: ExecStatus, message: String| Execution {
                status,
                exit_code: exit,
                signal: None,
                wall_s: run_time.unwrap_or(0.0),
                cpu_s: None,
                peak_memory_mib: None,
                message,
                program_said: String::new(),
                gpu: Default::default(),
            };
            let slurm_log = placed
                .task
                .batch_file
                .parent()
                .and_then(Path::parent)
                .map(|d| d.join("logs"))
                .unwrap_or_default();
            match end {
                TaskEnd::Alive => {
                    std::thread::sleep(poll);
                    continue;
                }
                TaskEnd::Infrastructure if placed.task.attempt < self.settings.resubmissions => {
                    if let Err(e) = self.resubmit(job.submission, &placed, limits) {
                        return Execution::not_started(format!(
                            "Slurm lost task {} ({state_text}) and submitting it again failed: {e}",
                            placed.task.id
                        ));
                    }
                    continue;
                }
                TaskEnd::Infrastructure => {
                    return ended(ExecStatus::Failed, format!(
                        "the cluster lost the job {} times ({state_text}), an infrastructure failure, not the submission's",
                        placed.task.attempt + 1
                    ))
                }
                TaskEnd::Timeout => {
                    return ended(ExecStatus::Timeout, format!(
                        "Slurm's time limit ended the job ({state_text}) before the case finished"
                    ))
                }
                TaskEnd::OutOfMemory => return ended(ExecStatus::Oom, self.slurm_oom_message(limits)),
                TaskEnd::Cancelled => {
                    return ended(ExecStatus::Failed, format!("the Slurm job {} was cancelled", placed.task.id))
                }
                TaskEnd::Completed | TaskEnd::Failed | TaskEnd::Unknown => {
                    return ended(ExecStatus::Failed, format!(
                        "the Slurm job {} ended ({state_text}) without podium's record of the case; see {}",
                        placed.task.id,
                        slurm_log.display()
                    ))
                }
            }
        }
    }
}

/// Waits until Slurm reports the task's final state (it ends just after its last result).
fn wait_final(task: &str, poll: Duration) -> (Option<String>, Option<f64>, Option<i32>) {
    for _ in 0..60 {
        let found = scontrol_show(task);
        match found.0.as_deref().map(task_end) {
            Some(TaskEnd::Alive) => std::thread::sleep(poll),
            _ => return found,
        }
    }
    (None, None, None)
}

/// Copies a program's output folder: each file's bytes, and a symbolic link as a link, which
/// the output check refuses and which must never be followed (it could point at the truth).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &target)?;
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_states_map_onto_podium_statuses() {
        assert_eq!(task_end("RUNNING"), TaskEnd::Alive);
        assert_eq!(task_end("PENDING"), TaskEnd::Alive);
        assert_eq!(task_end("COMPLETED"), TaskEnd::Completed);
        assert_eq!(task_end("TIMEOUT"), TaskEnd::Timeout);
        assert_eq!(task_end("OUT_OF_MEMORY"), TaskEnd::OutOfMemory);
        assert_eq!(task_end("FAILED"), TaskEnd::Failed);
        assert_eq!(task_end("CANCELLED by 0"), TaskEnd::Cancelled);
        assert_eq!(task_end("CANCELLED+"), TaskEnd::Cancelled);
        for lost in ["NODE_FAIL", "BOOT_FAIL", "PREEMPTED"] {
            assert_eq!(task_end(lost), TaskEnd::Infrastructure, "{lost}");
        }
        assert_eq!(task_end(""), TaskEnd::Unknown);
    }

    #[test]
    fn scontrol_lines_give_state_run_time_and_exit_code() {
        let line = "JobId=125 ArrayJobId=123 ArrayTaskId=2 JobName=podium-1a2b3c4d-x UserId=root(0) JobState=OUT_OF_MEMORY Reason=OutOfMemory Dependency=(null) Requeue=0 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:125 RunTime=00:01:03 TimeLimit=00:03:00";
        assert_eq!(
            parse_scontrol(line),
            (Some("OUT_OF_MEMORY".into()), Some(63.0), Some(0))
        );
        assert_eq!(parse_duration("1-02:00:05"), Some(93_605.0));
        assert_eq!(parse_duration("00:05"), Some(5.0));
    }

    #[test]
    fn a_job_gets_the_limits_in_slurm_units() {
        let limits = Limits {
            wall_time_per_case_s: 90.0,
            grace_period_s: 5.0,
            memory_mb: 2048,
            cpus: 2,
            gpus: 1,
            ..Limits::default()
        };
        // 95 s + 120 s of margin: 4 minutes; two cases: 310 s, 6 minutes.
        assert_eq!(time_limit_minutes(&limits, 1), 4);
        assert_eq!(time_limit_minutes(&limits, 2), 6);
        let settings = ClusterSettings {
            partition: Some("gpu".into()),
            sbatch_args: vec!["--qos=hackathon".into()],
            ..ClusterSettings::default()
        };
        let args = sbatch_args(
            &settings,
            &limits,
            1,
            "podium-x-team",
            Path::new("/r/%A_%a.out"),
        );
        for expected in [
            "--time=4",
            "--mem=2304M",
            "--cpus-per-task=2",
            "--gres=gpu:1",
            "--partition=gpu",
            "--qos=hackathon",
            "--job-name=podium-x-team",
        ] {
            assert!(args.iter().any(|a| a == expected), "{expected} in {args:?}");
        }
        let fixed = ClusterSettings {
            job_memory_mb: Some(100),
            ..ClusterSettings::default()
        };
        assert!(sbatch_args(&fixed, &limits, 1, "n", Path::new("l"))
            .contains(&"--mem=100M".to_string()));
    }

    #[test]
    fn tasks_waiting_for_a_node_are_told_from_tasks_waiting_for_resources() {
        let text = "123_0|podium-1a2b3c4d-x|PENDING|Nodes required for job are DOWN, DRAINED or reserved for jobs in higher priority partitions\n\
                    123_1|podium-1a2b3c4d-x|PENDING|Resources\n\
                    123_2|podium-1a2b3c4d-x|RUNNING|None\n\
                    124_0|someone-else|PENDING|ReqNodeNotAvail, UnavailableNodes:n1\n";
        let tasks = parse_squeue(text, "podium-1a2b3c4d-");
        assert_eq!(tasks.len(), 3, "{tasks:?}");
        let waiting: Vec<&str> = tasks
            .iter()
            .filter(|(_, (state, reason))| waits_for_a_node(state, reason))
            .map(|(id, _)| id.as_str())
            .collect();
        assert_eq!(waiting, ["123_0"]);
        assert!(waits_for_a_node(
            "PENDING",
            "ReqNodeNotAvail, UnavailableNodes:n1"
        ));
        assert!(!waits_for_a_node("RUNNING", "NodeDown"));
        assert!(!waits_for_a_node("PENDING", "Priority"));
    }
}
