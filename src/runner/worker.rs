//! Worker mode: a submission's program starts once per slot and serves many cases, so that a
//! model pays its imports, weights and GPU context once instead of once per case.
//!
//! The protocol (docs/contract.md, "Worker mode"): once loaded, the program writes the line
//! `ready` on stdout. For each case podium fills the worker's input folder with that case
//! (exactly what a per-case program gets), empties its output folder, and writes the case id
//! and a newline on the program's stdin; the program writes the case's outputs and answers
//! `done <case_id>`. Any other line it prints is logged, so library chatter on stdout is
//! harmless. At the end podium closes stdin.
//!
//! Each case keeps everything a per-case run has: its own wall-time limit (from its line to
//! the answer), status, logs and output check. A case over its limit, a crash or an answer
//! for the wrong case ends the worker with that case alone failing; the next case starts a new
//! worker. Backends only start the program ([`super::Backend::start_worker`]); the protocol,
//! the clock and the folders are handled here, once for every backend.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ExitStatus};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wait_timeout::ChildExt;

use super::case_mounts::{self, OutputWatch};
use super::cgroup::CaseGroup;
use super::nofollow;
use super::process::{describe_exit, CappedLog, ExitContext};
use super::{Backend, CaseJob, ExecStatus, Execution};
use crate::challenge::Limits;
use crate::submission::Submission;

/// A worker that fails to start this many times in a row on a slot is not started again
/// there: its remaining cases fail at once instead of each waiting for a start that fails.
pub const MAX_FAILED_STARTS: u32 = 3;

/// How often a waiting case checks that the worker is alive and within its output limit.
const TICK: Duration = Duration::from_millis(100);

/// Longest line of the program's stdout podium reads as one line; longer lines are logged in
/// pieces (and cannot be protocol lines, which are short).
const MAX_LINE: usize = 64 * 1024;

/// What a backend needs to start a worker.
pub struct WorkerStart<'a> {
    pub submission: &'a Submission,
    pub slot: usize,
    /// The worker's own folder on the host, created empty: its input and output folders go
    /// here.
    pub dir: PathBuf,
    pub gpus: Vec<u32>,
    pub gpu_nodes: Vec<PathBuf>,
}

/// A worker's program as its backend started it: stdin, stdout and stderr piped.
pub struct Spawned {
    pub(super) child: Child,
    pub(super) stop: Stopper,
    pub(super) folders: WorkerFolders,
    /// The output folder has no size cap of its own (no tmpfs), so it is watched while each
    /// case runs.
    pub(super) watch_output: bool,
}

/// How a worker's processes are reached to stop them.
pub(super) enum Stopper {
    /// The program leads its own process group (the process backend).
    ProcessGroup,
    /// bwrap's supervisor is the child; the program runs below it, in `group` where cgroups
    /// are available.
    Sandbox { group: Option<CaseGroup> },
}

impl Stopper {
    fn group(&self) -> Option<&CaseGroup> {
        match self {
            Stopper::Sandbox { group } => group.as_ref(),
            Stopper::ProcessGroup => None,
        }
    }

    /// SIGTERM to the program's processes (never to bwrap's supervisor, whose death would
    /// end the sandbox at once, without a grace period).
    fn terminate(&self, child: u32) {
        match self {
            Stopper::ProcessGroup => unsafe {
                libc::kill(-(child as libc::pid_t), libc::SIGTERM);
            },
            Stopper::Sandbox { group: Some(g) } => g.signal_all(libc::SIGTERM, Some(child as _)),
            Stopper::Sandbox { group: None } => {
                for pid in super::sandbox::descendants(child as libc::pid_t) {
                    unsafe { libc::kill(pid, libc::SIGTERM) };
                }
            }
        }
    }

    fn kill(&self, child: u32) {
        match self {
            Stopper::ProcessGroup => unsafe {
                libc::kill(-(child as libc::pid_t), libc::SIGKILL);
            },
            Stopper::Sandbox { group } => {
                super::sandbox::kill_everything(group.as_ref(), child as libc::pid_t)
            }
        }
    }
}

/// The worker's `/input` and `/output` on the host: as root two tmpfs mounts (the output one
/// of `output_mb`, owned by the slot's user), else two plain folders. Unmounted and removed
/// on drop.
pub(super) struct WorkerFolders {
    pub input: PathBuf,
    pub output: PathBuf,
    root: PathBuf,
    mounts: Vec<PathBuf>,
}

impl WorkerFolders {
    /// Creates the folders under `root`; `owner` (root only) mounts them as tmpfs with the
    /// output owned by that uid.
    pub fn create(root: &Path, limits: &Limits, owner: Option<u32>) -> Result<Self, String> {
        let mut folders = WorkerFolders {
            input: root.join("input"),
            output: root.join("output"),
            root: root.to_path_buf(),
            mounts: Vec::new(),
        };
        for dir in [&folders.input, &folders.output] {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        if let Some(uid) = owner {
            let input = folders.input.clone();
            case_mounts::mount_tmpfs(&input, "mode=0755")
                .map_err(|e| format!("cannot mount a tmpfs at {}: {e}", input.display()))?;
            folders.mounts.push(input);
            let output = folders.output.clone();
            let options = format!(
                "size={}m,mode=0700,uid={uid},gid={uid}",
                limits.output_mb.max(1)
            );
            case_mounts::mount_tmpfs(&output, &options)
                .map_err(|e| format!("cannot mount a tmpfs at {}: {e}", output.display()))?;
            folders.mounts.push(output);
        }
        Ok(folders)
    }

    pub fn is_tmpfs(&self) -> bool {
        !self.mounts.is_empty()
    }
}

impl Drop for WorkerFolders {
    fn drop(&mut self) {
        for point in self.mounts.drain(..) {
            case_mounts::unmount(&point);
        }
        // The worker is gone by now (a `Worker` stops its program before its folders drop).
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Removes everything inside `dir`, keeping `dir` itself (it may be a mount point, or bound
/// into a sandbox). The worker may still be running and renaming things: nothing is followed
/// ([`nofollow::empty_dir`]).
fn empty_folder(dir: &Path) -> std::io::Result<()> {
    let opened =
        nofollow::open_root(dir).map_err(|r| std::io::Error::other(r.describe("the folder")))?;
    nofollow::empty_dir(&opened)
}

/// Where the program's output goes: to the case in flight, else to the worker's own log.
struct LogRoute {
    worker: [CappedLog; 2],
    case: Option<[CappedLog; 2]>,
    /// Bytes of stderr pushed into a log: equal to those read from the pipe, with the pipe
    /// empty, means everything written so far is in the log it was meant for.
    stderr_pushed: u64,
    stderr_closed: bool,
}

impl LogRoute {
    fn push(&mut self, stream: usize, bytes: &[u8]) {
        match &mut self.case {
            Some(logs) => logs[stream].push(bytes),
            None => self.worker[stream].push(bytes),
        }
    }
}

const STDOUT: usize = 0;
const STDERR: usize = 1;

/// A line of the protocol, as the program wrote it.
#[derive(Debug, PartialEq)]
enum Said {
    Ready,
    Done(String),
}

fn parse_line(line: &str) -> Option<Said> {
    let line = line.trim_end_matches(['\n', '\r']);
    if line == "ready" {
        return Some(Said::Ready);
    }
    line.strip_prefix("done ")
        .map(|case| Said::Done(case.trim().to_string()))
}

/// One running worker.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    said: mpsc::Receiver<Said>,
    /// Signalled when the program's stderr closes, so a crash's last words are in its log.
    stderr_closed: mpsc::Receiver<()>,
    stderr_fd: Option<RawFd>,
    stderr_read: Arc<AtomicU64>,
    route: Arc<Mutex<LogRoute>>,
    stop: Stopper,
    folders: WorkerFolders,
    watch: Option<OutputWatch>,
    log_cap: u64,
    cpu_s: f64,
    oom_kills: u64,
}

/// How a worker left a case.
enum Ending {
    /// It answered `done` for the case.
    Done,
    /// Its stdin was closed before the case's line could be written: it ended between cases,
    /// and the case never started.
    Gone,
    Exited(ExitStatus),
    Deadline,
    OutputFull,
    /// It answered `done` for another case.
    WrongAnswer(String),
}

impl Worker {
    /// Starts the program and waits at most `wall` for its `ready`. The error is the case's
    /// execution (a start that failed counts as the case's, as it would per case).
    fn start(
        backend: &dyn Backend,
        start: &WorkerStart,
        limits: &Limits,
        wall: Duration,
        worker_logs: &(PathBuf, PathBuf),
    ) -> Result<(Worker, f64), Box<Execution>> {
        let begun = Instant::now();
        let failed =
            |message: String| Box::new(Execution::not_started(format!("the worker {message}")));
        let _ = std::fs::remove_dir_all(&start.dir);
        let spawned = backend.start_worker(start, limits).map_err(failed)?;
        let Spawned {
            mut child,
            stop,
            folders,
            watch_output,
        } = spawned;
        let log_cap = limits.log_kb.saturating_mul(1024);
        let route = Arc::new(Mutex::new(LogRoute {
            worker: [CappedLog::new(log_cap), CappedLog::new(log_cap)],
            case: None,
            stderr_pushed: 0,
            stderr_closed: false,
        }));
        let stderr_fd = child.stderr.as_ref().map(|e| e.as_raw_fd());
        let (said_tx, said) = mpsc::channel();
        let (closed_tx, stderr_closed) = mpsc::channel();
        let stderr_read = Arc::new(AtomicU64::new(0));
        if let Some(out) = child.stdout.take() {
            let route = route.clone();
            std::thread::spawn(move || read_stdout(out, &route, &said_tx));
        }
        if let Some(mut err) = child.stderr.take() {
            let route = route.clone();
            let read = stderr_read.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    read.fetch_add(n as u64, Ordering::SeqCst);
                    let mut route = route.lock().unwrap();
                    route.push(STDERR, &buf[..n]);
                    route.stderr_pushed += n as u64;
                }
                // Before the descriptor closes, so that no one asks about a reused number.
                route.lock().unwrap().stderr_closed = true;
                drop(err);
                let _ = closed_tx.send(());
            });
        }
        let watch = if watch_output {
            OutputWatch::new(&folders.output, limits)
        } else {
            None
        };
        let mut worker = Worker {
            stdin: child.stdin.take(),
            child,
            said,
            stderr_closed,
            stderr_fd,
            stderr_read,
            route,
            stop,
            folders,
            watch,
            log_cap,
            cpu_s: 0.0,
            oom_kills: 0,
        };
        let ending = match worker.next_line(begun + wall) {
            Ok(Said::Ready) => None,
            Ok(Said::Done(case)) => Some(Ending::WrongAnswer(format!(
                "answered `done {}` before saying `ready`",
                crate::text::shown(&case)
            ))),
            Err(ending) => Some(ending),
        };
        let seconds = begun.elapsed().as_secs_f64();
        let Some(ending) = ending else {
            worker.cpu_s = worker
                .stop
                .group()
                .and_then(CaseGroup::cpu_seconds)
                .unwrap_or(0.0);
            worker.oom_kills = worker.stop.group().map_or(0, CaseGroup::oom_kills);
            return Ok((worker, seconds));
        };
        let (status, message, exit) = worker.end(ending, wall, limits);
        let said = worker.finish_logs(worker_logs);
        let what = match status {
            ExecStatus::Timeout => format!(
                "did not say `ready` within the per-case wall-time limit of {:.1} s",
                wall.as_secs_f64()
            ),
            _ => format!("stopped before saying `ready`: {message}"),
        };
        Err(Box::new(Execution {
            status,
            exit_code: exit.and_then(|e| e.code()),
            signal: exit.and_then(|e| e.signal()),
            wall_s: seconds,
            cpu_s: None,
            peak_memory_mib: None,
            message: format!("the worker {what}"),
            program_said: said,
            gpu: Default::default(),
        }))
    }

    /// The next protocol line, or how the worker stopped answering before `deadline`.
    fn next_line(&mut self, deadline: Instant) -> Result<Said, Ending> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(Ending::Deadline);
            }
            match self.said.recv_timeout((deadline - now).min(TICK)) {
                Ok(said) => return Ok(said),
                Err(RecvTimeoutError::Disconnected) => {
                    // stdout closed: the program is ending (or closed it on purpose and will
                    // be stopped at the deadline).
                    match self
                        .child
                        .wait_timeout(deadline.saturating_duration_since(now))
                    {
                        Ok(Some(status)) => return Err(Ending::Exited(status)),
                        _ => return Err(Ending::Deadline),
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        // Lines written just before exiting are still in the channel.
                        if let Ok(said) = self.said.recv_timeout(Duration::from_millis(50)) {
                            return Ok(said);
                        }
                        return Err(Ending::Exited(status));
                    }
                    if self.watch.as_ref().is_some_and(OutputWatch::exceeded) {
                        return Err(Ending::OutputFull);
                    }
                }
            }
        }
    }

    /// Runs one case whose folders podium has filled; the case's logs are routed to its own
    /// files meanwhile.
    fn serve(&mut self, job: &CaseJob, wall: Duration) -> Ending {
        let line = format!("{}\n", job.case_id);
        let written = self
            .stdin
            .as_mut()
            .map(|stdin| stdin.write_all(line.as_bytes()).and_then(|_| stdin.flush()));
        if !matches!(written, Some(Ok(()))) {
            return Ending::Gone;
        }
        let deadline = Instant::now() + wall;
        loop {
            match self.next_line(deadline) {
                Ok(Said::Done(case)) if case == job.case_id => return Ending::Done,
                Ok(Said::Done(case)) => {
                    return Ending::WrongAnswer(format!(
                        "answered `done {}` while case {} was running",
                        crate::text::shown(&case),
                        job.case_id
                    ))
                }
                // A repeated `ready` says nothing about the case.
                Ok(Said::Ready) => {}
                Err(ending) => return ending,
            }
        }
    }

    /// Stops the worker after an ending other than `Done`, and names what happened.
    fn end(
        &mut self,
        ending: Ending,
        wall: Duration,
        limits: &Limits,
    ) -> (ExecStatus, String, Option<ExitStatus>) {
        let pid = self.child.id();
        let grace = Duration::from_secs_f64(limits.grace_period_s.max(0.0));
        let mut context = ExitContext {
            timed_out: false,
            killed_after_grace: false,
            output_full: false,
            oom_kills: 0,
            wall,
            limits,
        };
        let exit = match ending {
            Ending::Exited(status) => Some(status),
            Ending::Deadline => {
                context.timed_out = true;
                self.stop.terminate(pid);
                match self.child.wait_timeout(grace) {
                    Ok(Some(status)) => Some(status),
                    _ => {
                        context.killed_after_grace = true;
                        None
                    }
                }
            }
            Ending::OutputFull => {
                context.output_full = true;
                None
            }
            Ending::Done | Ending::Gone | Ending::WrongAnswer(_) => None,
        };
        self.stop.kill(pid);
        let exit = exit.or_else(|| self.child.wait().ok());
        // Everything the program wrote to stderr is in the case's log before it is closed.
        let _ = self.stderr_closed.recv_timeout(Duration::from_secs(1));
        context.oom_kills = self
            .stop
            .group()
            .map_or(0, CaseGroup::oom_kills)
            .saturating_sub(self.oom_kills);
        if let Ending::WrongAnswer(message) = ending {
            return (ExecStatus::Failed, message, exit);
        }
        let status = exit.unwrap_or_else(|| ExitStatus::from_raw(libc::SIGKILL));
        match describe_exit(status, context) {
            // An exit is a failure here, whatever its code: the worker owed an answer.
            (ExecStatus::Ok, _) => (ExecStatus::Failed, "exit code 0".into(), exit),
            (kind, message) => (kind, message, exit),
        }
    }

    /// Waits (briefly) until what the program wrote to stderr before answering is in the
    /// case's log: stderr has its own pipe and reader, which may lag behind the answer.
    fn settle_stderr(&self) {
        let until = Instant::now() + Duration::from_millis(200);
        loop {
            let route = self.route.lock().unwrap();
            if route.stderr_closed {
                return;
            }
            let mut pending: libc::c_int = 0;
            let asked = self
                .stderr_fd
                .is_some_and(|fd| unsafe { libc::ioctl(fd, libc::FIONREAD, &mut pending) } == 0);
            let caught_up = route.stderr_pushed == self.stderr_read.load(Ordering::SeqCst);
            drop(route);
            if caught_up && (!asked || pending == 0) || Instant::now() >= until {
                return;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Writes the worker's own logs and returns the last line of its stderr.
    fn finish_logs(&mut self, (stdout_log, stderr_log): &(PathBuf, PathBuf)) -> String {
        let mut route = self.route.lock().unwrap();
        let [out, err] = std::mem::replace(
            &mut route.worker,
            [CappedLog::new(self.log_cap), CappedLog::new(self.log_cap)],
        );
        out.finish_into(stdout_log, true);
        err.finish_into(stderr_log, true)
    }

    /// Ends a worker that has no case left: stdin closes, the program has the grace period
    /// to exit by itself, then what is left is killed.
    fn close(mut self, limits: &Limits, worker_logs: &(PathBuf, PathBuf)) {
        drop(self.stdin.take());
        let grace = Duration::from_secs_f64(limits.grace_period_s.max(0.0));
        let _ = self.child.wait_timeout(grace);
        self.stop.kill(self.child.id());
        let _ = self.child.wait();
        let _ = self.stderr_closed.recv_timeout(Duration::from_millis(200));
        self.finish_logs(worker_logs);
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop.kill(self.child.id());
            let _ = self.child.wait();
        }
    }
}

/// Reads the program's stdout: protocol lines go to `said`, everything to the log route.
fn read_stdout(out: impl Read, route: &Mutex<LogRoute>, said: &mpsc::Sender<Said>) {
    let mut reader = BufReader::new(out);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let parsed = std::str::from_utf8(&line).ok().and_then(parse_line);
        match parsed {
            Some(protocol) => {
                if said.send(protocol).is_err() {
                    break;
                }
            }
            None => route.lock().unwrap().push(STDOUT, &line),
        }
    }
}

/// The worker of one slot for one submission: started on its first case, kept across cases,
/// restarted after a case that ended it.
pub(super) struct SlotWorker<'a> {
    backend: &'a dyn Backend,
    start: WorkerStart<'a>,
    logs: (PathBuf, PathBuf),
    worker: Option<Worker>,
    failed_starts: u32,
}

/// How a case went through a worker.
pub(super) struct Served {
    pub execution: Execution,
    /// The seconds spent starting a worker for it, if one started.
    pub start_s: Option<f64>,
    /// Where its outputs are, when the worker answered: the worker's own output folder, which
    /// the still-running worker could change at any moment, so podium reads it in place
    /// through descriptors ([`super::nofollow`]) and never copies it by path.
    pub outputs_in: Option<PathBuf>,
}

impl<'a> SlotWorker<'a> {
    /// `logs_dir` is the submission's log folder; the worker's own output (its start, and
    /// anything between cases) goes to `worker-<slot>.stdout.log` and `.stderr.log` there.
    pub fn new(backend: &'a dyn Backend, start: WorkerStart<'a>, logs_dir: &Path) -> Self {
        let slot = start.slot;
        SlotWorker {
            backend,
            start,
            logs: (
                logs_dir.join(format!("worker-{slot}.stdout.log")),
                logs_dir.join(format!("worker-{slot}.stderr.log")),
            ),
            worker: None,
            failed_starts: 0,
        }
    }

    /// Runs one case through the worker, starting one first if needed.
    pub fn run_case(&mut self, job: &CaseJob, limits: &Limits) -> Served {
        let wall = Duration::from_secs_f64(
            limits
                .wall_time_per_case_s
                .min(job.remaining_budget_s.max(0.0)),
        );
        let mut start_s = None;
        // One retry: a worker that ended between cases is restarted for the case, which had
        // not started.
        for _ in 0..2 {
            if self.worker.is_none() {
                if self.failed_starts >= MAX_FAILED_STARTS {
                    return Served {
                        execution: Execution::not_started(format!(
                            "not run: the worker failed to start {MAX_FAILED_STARTS} times in a row on this slot; see its log {}",
                            self.logs.1.file_name().unwrap_or_default().to_string_lossy()
                        )),
                        start_s,
                        outputs_in: None,
                    };
                }
                match Worker::start(self.backend, &self.start, limits, wall, &self.logs) {
                    Ok((worker, seconds)) => {
                        self.failed_starts = 0;
                        self.worker = Some(worker);
                        start_s = Some(start_s.unwrap_or(0.0) + seconds);
                    }
                    Err(execution) => {
                        self.failed_starts += 1;
                        return Served {
                            execution: *execution,
                            start_s: None,
                            outputs_in: None,
                        };
                    }
                }
            }
            let worker = self.worker.as_mut().expect("started above");
            if let Err(e) = fill_folders(worker, job) {
                // Folders podium cannot reset are not reused: the next case gets new ones.
                self.worker = None;
                return Served {
                    execution: Execution::not_started(format!(
                        "podium could not prepare the worker's folders: {e}"
                    )),
                    start_s,
                    outputs_in: None,
                };
            }
            let execution = run_in(worker, job, wall, limits);
            match execution {
                Err((Ending::Gone, _)) => {
                    let mut gone = self.worker.take().expect("running");
                    gone.end(Ending::Gone, wall, limits);
                    gone.finish_logs(&self.logs);
                }
                Ok(execution) => {
                    return Served {
                        execution,
                        start_s,
                        outputs_in: Some(worker.folders.output.clone()),
                    }
                }
                Err((ending, wall_s)) => {
                    let mut ended = self.worker.take().expect("running");
                    let mut execution = ended.fail_case(ending, job, wall, limits);
                    ended.finish_logs(&self.logs);
                    execution.wall_s = wall_s;
                    return Served {
                        execution,
                        start_s,
                        outputs_in: None,
                    };
                }
            }
        }
        Served {
            execution: Execution::not_started(
                "the worker ended before it could be given the case, twice".into(),
            ),
            start_s,
            outputs_in: None,
        }
    }

    /// Ends the worker, if one runs: no case is left for it on this slot.
    pub fn close(&mut self, limits: &Limits) {
        if let Some(worker) = self.worker.take() {
            worker.close(limits, &self.logs);
        }
    }
}

/// Empties the worker's folders and puts the case's input in.
fn fill_folders(worker: &Worker, job: &CaseJob) -> std::io::Result<()> {
    empty_folder(&worker.folders.output)?;
    empty_folder(&worker.folders.input)?;
    case_mounts::copy_tree(&job.input_dir, &worker.folders.input)
}

/// Serves the case; `Ok` when the worker answered and lives on, else how it ended and the
/// case's wall time.
fn run_in(
    worker: &mut Worker,
    job: &CaseJob,
    wall: Duration,
    limits: &Limits,
) -> Result<Execution, (Ending, f64)> {
    let cap = worker.log_cap;
    worker.route.lock().unwrap().case = Some([CappedLog::new(cap), CappedLog::new(cap)]);
    let begun = Instant::now();
    let ending = worker.serve(job, wall);
    let wall_s = begun.elapsed().as_secs_f64();
    if !matches!(ending, Ending::Done) {
        if matches!(ending, Ending::Gone) {
            worker.route.lock().unwrap().case = None;
        }
        return Err((ending, wall_s));
    }
    worker.settle_stderr();
    let logs = worker.route.lock().unwrap().case.take();
    if let Some([out, err]) = logs {
        out.finish(&job.stdout_log);
        err.finish(&job.stderr_log);
    }
    let group = worker.stop.group();
    let cpu_total = group.and_then(CaseGroup::cpu_seconds);
    let cpu_s = cpu_total.map(|total| (total - worker.cpu_s).max(0.0));
    worker.cpu_s = cpu_total.unwrap_or(worker.cpu_s);
    let mut execution = Execution {
        status: ExecStatus::Ok,
        exit_code: None,
        signal: None,
        wall_s,
        cpu_s,
        peak_memory_mib: group
            .and_then(CaseGroup::peak_memory_bytes)
            .map(|b| b as f64 / (1u64 << 20) as f64),
        message: String::new(),
        program_said: String::new(),
        gpu: Default::default(),
    };
    if worker.folders.is_tmpfs() && case_mounts::is_full(&worker.folders.output) {
        execution.status = ExecStatus::OutputLimit;
        execution.message = format!(
            "filled /output, which holds at most the output limit of {} MB",
            limits.output_mb
        );
    }
    Ok(execution)
}

impl Worker {
    /// Stops a worker whose case did not end with `done`, and makes the case's execution.
    fn fail_case(
        &mut self,
        ending: Ending,
        job: &CaseJob,
        wall: Duration,
        limits: &Limits,
    ) -> Execution {
        let (status, message, exit) = self.end(ending, wall, limits);
        let logs = self.route.lock().unwrap().case.take();
        let said = match logs {
            Some([out, err]) => {
                out.finish(&job.stdout_log);
                err.finish(&job.stderr_log)
            }
            None => String::new(),
        };
        let group = self.stop.group();
        Execution {
            status,
            exit_code: exit.and_then(|e| e.code()),
            signal: exit.and_then(|e| e.signal()),
            wall_s: wall.as_secs_f64(),
            cpu_s: group
                .and_then(CaseGroup::cpu_seconds)
                .map(|t| (t - self.cpu_s).max(0.0)),
            peak_memory_mib: group
                .and_then(CaseGroup::peak_memory_bytes)
                .map(|b| b as f64 / (1u64 << 20) as f64),
            message: match status {
                ExecStatus::Failed if !message.starts_with("answered") => {
                    format!("the worker ended without answering `done`: {message}")
                }
                _ => format!("the worker {message}"),
            },
            program_said: said,
            gpu: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_lines_are_ready_and_done_alone() {
        assert_eq!(parse_line("ready\n"), Some(Said::Ready));
        assert_eq!(parse_line("ready\r\n"), Some(Said::Ready));
        assert_eq!(
            parse_line("done case-7\n"),
            Some(Said::Done("case-7".into()))
        );
        assert_eq!(
            parse_line("done  case-7 \n"),
            Some(Said::Done("case-7".into()))
        );
        assert_eq!(parse_line("Loading weights... ready\n"), None);
        assert_eq!(parse_line("done\n"), None);
        assert_eq!(parse_line("ready to go\n"), None);
    }

    #[test]
    fn emptying_a_folder_opens_up_what_the_program_locked() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let locked = dir.path().join("a/b");
        std::fs::create_dir_all(&locked).unwrap();
        std::fs::write(locked.join("f"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("link")).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
        std::fs::set_permissions(dir.path().join("a"), std::fs::Permissions::from_mode(0o500))
            .unwrap();
        empty_folder(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(Path::new("/etc/passwd").exists());
    }
}
