//! The process backend: a submission is a native program, started once per case as a child
//! process in its own process group.
//!
//! Limits enforced here: wall time (SIGTERM to the whole group, SIGKILL after the grace
//! period), output size (RLIMIT_FSIZE), no core dumps, a clean environment. Memory, process
//! count, CPUs and the network need the sandbox of a later backend; this one states so in the
//! run receipt rather than pretending.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wait_timeout::ChildExt;

use super::case_mounts::OutputWatch;
use super::worker::{Spawned, Stopper, WorkerFolders, WorkerStart};
use super::{Backend, CaseJob, ExecStatus, Execution};
use crate::challenge::Limits;
use crate::submission::{RunSpec, Submission};

pub struct ProcessBackend;

impl Backend for ProcessBackend {
    fn name(&self) -> &'static str {
        "process"
    }

    fn enforced_limits(&self) -> &'static [&'static str] {
        &[
            "wall_time_per_case_s",
            "wall_time_per_submission_s",
            "output_mb",
            "log_kb",
        ]
    }

    fn isolation(&self) -> String {
        "none: plain child processes with rlimits (wall time, output size, no core dumps); not a security boundary".into()
    }

    fn prepare(&self, submission: &Submission, log: &Path, limits: &Limits) -> Result<(), String> {
        let RunSpec::Process { build, command, .. } = &submission.run else {
            return Err(super::wrong_kind(submission));
        };
        if !build.is_empty() {
            let mut cmd = Command::new(&build[0]);
            cmd.args(&build[1..]).current_dir(&submission.dir);
            // A build may take longer than a case; give it the whole-submission budget.
            let budget = Duration::from_secs_f64(limits.wall_time_per_submission_s);
            let err_log = log.with_extension("err.log");
            let outcome = execute(cmd, budget, limits, (log, &err_log), None);
            let outcome = outcome
                .map_err(|e| format!("cannot start the build command {:?}: {e}", build[0]))?;
            if outcome.status != ExecStatus::Ok {
                return Err(build_failure(
                    format!("build command `{}` {}", build.join(" "), outcome.message),
                    (log, &err_log),
                ));
            }
        }
        let program = resolve_program(submission, &command[0]);
        if program.components().count() > 1 && !program.is_file() {
            return Err(format!(
                "the program {} does not exist; check [run] command in {}",
                program.display(),
                submission.dir.join("submission.toml").display()
            ));
        }
        Ok(())
    }

    fn run_case(&self, job: &CaseJob, limits: &Limits) -> Execution {
        let RunSpec::Process { command, .. } = &job.submission.run else {
            return Execution::not_started(super::wrong_kind(job.submission));
        };
        let mut cmd = program_command(
            job.submission,
            command,
            (&job.input_dir, &job.output_dir),
            limits,
        );
        cmd.env("PODIUM_CASE_ID", &job.case_id);
        gpu_environment(&mut cmd, &job.gpus, &job.gpu_nodes, true);
        let wall = Duration::from_secs_f64(
            limits
                .wall_time_per_case_s
                .min(job.remaining_budget_s.max(0.0)),
        );
        let logs = (job.stdout_log.as_path(), job.stderr_log.as_path());
        match execute(cmd, wall, limits, logs, Some(&job.output_dir)) {
            Ok(e) => e,
            Err(e) => Execution {
                status: ExecStatus::Failed,
                exit_code: None,
                signal: None,
                wall_s: 0.0,
                cpu_s: None,
                peak_memory_mib: None,
                message: format!("cannot start {:?}: {e}", command[0]),
                program_said: String::new(),
                gpu: Default::default(),
            },
        }
    }

    fn runs_workers(&self) -> bool {
        true
    }

    fn start_worker(&self, start: &WorkerStart, limits: &Limits) -> Result<Spawned, String> {
        let RunSpec::Process { command, .. } = &start.submission.run else {
            return Err(super::wrong_kind(start.submission));
        };
        let folders = WorkerFolders::create(&start.dir, limits, None)?;
        let mut cmd = program_command(
            start.submission,
            command,
            (&folders.input, &folders.output),
            limits,
        );
        cmd.env("PODIUM_MODE", "worker");
        gpu_environment(&mut cmd, &start.gpus, &start.gpu_nodes, true);
        limit_child(&mut cmd, limits, Stdio::piped());
        let child = super::interrupt::spawn_unless_interrupted(&mut cmd)
            .map_err(|e| format!("could not be started ({:?}): {e}", command[0]))?;
        Ok(Spawned {
            child,
            stop: Stopper::ProcessGroup,
            folders,
            watch_output: true,
        })
    }
}

/// The program of a process submission with its arguments filled in, started in the
/// submission folder with a clean environment.
fn program_command(
    submission: &Submission,
    command: &[String],
    (input, output): (&Path, &Path),
    limits: &Limits,
) -> Command {
    let fill = |arg: &String| {
        arg.replace("{input}", &input.to_string_lossy())
            .replace("{output}", &output.to_string_lossy())
    };
    let mut cmd = Command::new(resolve_program(submission, &command[0]));
    cmd.args(command[1..].iter().map(fill))
        .current_dir(&submission.dir)
        .env_clear()
        // The same environment on a laptop and on the server: nothing of the caller's leaks in.
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", output)
        .env("LANG", "C.UTF-8")
        .env("PODIUM_INPUT", input)
        .env("PODIUM_OUTPUT", output)
        .env("PODIUM_CPUS", limits.cpus.to_string())
        .env("OMP_NUM_THREADS", limits.cpus.to_string());
    cmd
}

/// The case's GPUs in its environment: `PODIUM_GPUS` lists podium's indices (the K of
/// `/dev/nvidia<K>`, as `runs.csv` does), and `NVIDIA_VISIBLE_DEVICES` names the same GPUs
/// as CUDA and the container toolkit know them ([`super::gpus::device_names`]: UUIDs where the
/// driver gives them). Where the environment is what selects them (`by_environment`, the
/// process backend), `CUDA_VISIBLE_DEVICES` holds those names too, and is empty without GPUs
/// so CUDA sees none; this is a selection, not a boundary. The sandbox selects by binding the
/// slot's nodes alone and leaves CUDA to number what it finds, as the NVIDIA container
/// toolkit does.
pub(super) fn gpu_environment(
    cmd: &mut Command,
    gpus: &[u32],
    gpu_nodes: &[PathBuf],
    by_environment: bool,
) {
    let indices = gpus
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let names = super::gpus::device_names(gpus, gpu_nodes).join(",");
    cmd.env("PODIUM_GPUS", &indices).env(
        "NVIDIA_VISIBLE_DEVICES",
        if names.is_empty() { "void" } else { &names },
    );
    if by_environment {
        // For minor numbers, where NVML gave no UUIDs: the order they are assumed to follow.
        cmd.env("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
            .env("CUDA_VISIBLE_DEVICES", &names);
    }
}

fn resolve_program(submission: &Submission, program: &str) -> PathBuf {
    if program.contains('/') {
        submission.dir.join(program)
    } else {
        PathBuf::from(program)
    }
}

/// Starts `cmd` with the limits, waits at most `wall` (watching the size of the folder `watch`
/// meanwhile), and captures capped logs.
fn execute(
    mut cmd: Command,
    wall: Duration,
    limits: &Limits,
    (stdout_log, stderr_log): (&Path, &Path),
    watch: Option<&Path>,
) -> std::io::Result<Execution> {
    limit_child(&mut cmd, limits, Stdio::null());
    let started = Instant::now();
    let mut child = super::interrupt::spawn_unless_interrupted(&mut cmd)?;
    let log_cap = limits.log_kb.saturating_mul(1024);
    let out_reader = capture(child.stdout.take(), stdout_log.to_path_buf(), log_cap);
    let err_reader = capture(child.stderr.take(), stderr_log.to_path_buf(), log_cap);

    let watch = watch.and_then(|dir| OutputWatch::new(dir, limits));
    let (exit, timed_out, full) =
        wait_with_deadline(&mut child, wall, limits.grace_period_s, watch.as_ref())?;
    let wall_s = started.elapsed().as_secs_f64();
    // Whatever the program left behind in its group goes too.
    kill_group(child.id(), libc::SIGKILL);
    let _ = out_reader.join();
    let stderr_tail = err_reader.join().unwrap_or_default();

    let (status, message) = describe_exit(
        exit,
        ExitContext {
            timed_out,
            killed_after_grace: false,
            output_full: full,
            oom_kills: 0,
            wall,
            limits,
        },
    );
    Ok(Execution {
        status,
        exit_code: exit.code(),
        signal: exit.signal(),
        wall_s,
        cpu_s: None,
        peak_memory_mib: None,
        message,
        program_said: stderr_tail,
        gpu: Default::default(),
    })
}

/// Lines of a failed build's stderr quoted in its message: a compiler's error and its
/// summary, without the whole log.
const BUILD_ERROR_LINES: usize = 5;

/// Where a build failure's message quotes the build's own output.
const BUILD_OUTPUT_MARK: &str = "; its stderr ends with: ";

/// A build failure's message without the build's own output: for a team on a hidden phase
/// when the build ran outside the sandbox, where it could have read the truth.
pub(super) fn without_build_output(message: &str) -> String {
    match message.split_once(BUILD_OUTPUT_MARK) {
        Some((before, _)) => format!(
            "{before}; the build ran outside the sandbox, so its output goes to the organizer only"
        ),
        None => message.to_string(),
    }
}

/// Why a build failed: `summary` in podium's words, then the last lines of the build's stderr
/// (escaped; in the sandbox a build reads no case, so its output reveals nothing of a hidden
/// phase; elsewhere [`without_build_output`] keeps it from the team) and where its two logs are.
pub(super) fn build_failure(summary: String, (stdout_log, stderr_log): (&Path, &Path)) -> String {
    let stderr = std::fs::read(stderr_log).unwrap_or_default();
    let stderr = String::from_utf8_lossy(&stderr);
    let lines: Vec<String> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| crate::text::shown(&l.chars().take(300).collect::<String>()))
        .collect();
    let said = if lines.is_empty() {
        "; it wrote nothing to stderr".to_string()
    } else {
        let last = &lines[lines.len().saturating_sub(BUILD_ERROR_LINES)..];
        format!("{BUILD_OUTPUT_MARK}{}", last.join(" | "))
    };
    format!(
        "{summary}{said}; its whole output is in {} (stderr) and {} (stdout)",
        stderr_log.display(),
        stdout_log.display()
    )
}

/// What a backend knew about how a program ended, beside its exit status.
pub(super) struct ExitContext<'a> {
    pub timed_out: bool,
    /// Still running after SIGTERM and the grace period, so SIGKILLed.
    pub killed_after_grace: bool,
    /// Stopped because its output folder reached `output_mb` while it ran.
    pub output_full: bool,
    /// OOM kills counted by the case's cgroup.
    pub oom_kills: u64,
    pub wall: Duration,
    pub limits: &'a Limits,
}

/// The status of an execution and its message in podium's words (never the program's).
/// Shared by the backends so that one kind of ending reads the same whichever ran it.
pub(super) fn describe_exit(
    exit: std::process::ExitStatus,
    c: ExitContext,
) -> (ExecStatus, String) {
    let code = exit.code();
    if c.output_full {
        (
            ExecStatus::OutputLimit,
            format!(
                "wrote the output limit of {} MB to its output folder while running; stopped",
                c.limits.output_mb
            ),
        )
    } else if c.timed_out {
        let mut message = format!(
            "exceeded the wall-time limit of {:.1} s",
            c.wall.as_secs_f64()
        );
        if c.killed_after_grace {
            message += &format!(
                "; still running {:.1} s after SIGTERM, killed",
                c.limits.grace_period_s
            );
        }
        (ExecStatus::Timeout, message)
    } else if c.oom_kills > 0 && !exit.success() {
        let plural = if c.oom_kills == 1 { "" } else { "es" };
        (
            ExecStatus::Oom,
            format!(
                "exceeded the memory limit of {} MB: the kernel killed {} process{plural} of the case",
                c.limits.memory_mb, c.oom_kills
            ),
        )
    } else if exit.success() {
        (ExecStatus::Ok, String::new())
    } else if exit.signal() == Some(libc::SIGXFSZ) || code == Some(128 + libc::SIGXFSZ) {
        // 128 + N: a shell or bwrap reporting a child killed by signal N.
        (
            ExecStatus::OutputLimit,
            format!(
                "wrote more than the output limit of {} MB (SIGXFSZ)",
                c.limits.output_mb
            ),
        )
    } else if let Some(signal) = exit.signal() {
        (ExecStatus::Failed, format!("killed by signal {signal}"))
    } else {
        let code = code.unwrap_or(-1);
        let how = if (129..=192).contains(&code) {
            format!(" (128 + {}: killed by signal {})", code - 128, code - 128)
        } else {
            String::new()
        };
        (ExecStatus::Failed, format!("exit code {code}{how}"))
    }
}

/// The program's own process group, its stdout and stderr piped, `stdin` as given, and
/// between fork and exec the rlimits (no core dumps, files up to `output_mb`) and no inherited
/// descriptors.
fn limit_child(cmd: &mut Command, limits: &Limits, stdin: Stdio) {
    let output_bytes = limits.output_mb.saturating_mul(1 << 20);
    cmd.stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: only async-signal-safe libc calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            set_rlimit(libc::RLIMIT_CORE, 0)?;
            set_rlimit(libc::RLIMIT_FSIZE, output_bytes)?;
            close_inherited_descriptors()
        });
    }
}

/// How waiting for a case's program ended.
pub(super) enum Waited {
    Exited(std::process::ExitStatus),
    /// The wall-time limit passed first.
    Deadline,
    /// The output folder reached the output limit while the program ran.
    OutputFull,
}

/// Waits for `child` at most `wall`; with a watch, checks the output folder's size meanwhile.
pub(super) fn wait_watching(
    child: &mut Child,
    wall: Duration,
    watch: Option<&OutputWatch>,
) -> std::io::Result<Waited> {
    let Some(watch) = watch else {
        return Ok(match child.wait_timeout(wall)? {
            Some(status) => Waited::Exited(status),
            None => Waited::Deadline,
        });
    };
    let deadline = Instant::now() + wall;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(Waited::Deadline);
        }
        if let Some(status) = child.wait_timeout((deadline - now).min(OutputWatch::INTERVAL))? {
            return Ok(Waited::Exited(status));
        }
        if watch.exceeded() {
            return Ok(Waited::OutputFull);
        }
    }
}

/// Waits for the child; past the deadline sends SIGTERM to its group, then SIGKILL after the
/// grace period. Returns the exit status and whether the deadline was hit.
fn wait_with_deadline(
    child: &mut Child,
    wall: Duration,
    grace_s: f64,
    watch: Option<&OutputWatch>,
) -> std::io::Result<(std::process::ExitStatus, bool, bool)> {
    match wait_watching(child, wall, watch)? {
        Waited::Exited(status) => return Ok((status, false, false)),
        Waited::OutputFull => {
            kill_group(child.id(), libc::SIGKILL);
            return Ok((child.wait()?, false, true));
        }
        Waited::Deadline => {}
    }
    kill_group(child.id(), libc::SIGTERM);
    if let Some(status) = child.wait_timeout(Duration::from_secs_f64(grace_s))? {
        return Ok((status, true, false));
    }
    kill_group(child.id(), libc::SIGKILL);
    Ok((child.wait()?, true, false))
}

fn kill_group(pid: u32, signal: libc::c_int) {
    // The child leads its own group (process_group(0)), so -pid addresses the whole tree that
    // did not deliberately leave it.
    unsafe {
        libc::kill(-(pid as libc::pid_t), signal);
    }
}

/// Between fork and exec: every descriptor above stderr closes at exec. podium may have been
/// started with open descriptors (a wrapper's, or a shell's `40<truth/labels.csv`); without
/// this a case would inherit them and read or write through them whatever the sandbox hides.
/// A backend that hands descriptors on on purpose clears the flag on those afterwards.
/// Async-signal-safe: two system calls, no allocation.
pub(super) fn close_inherited_descriptors() -> std::io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    // Kernels before 5.11: one fcntl per possible descriptor.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur.min(1 << 20) as libc::c_int
    } else {
        1 << 16
    };
    for fd in 3..max {
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

pub(super) fn set_rlimit(resource: libc::__rlimit_resource_t, value: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: value as libc::rlim_t,
        rlim_max: value as libc::rlim_t,
    };
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Copies a pipe into `path` through a [`CappedLog`], so a chatty program neither fills the
/// disk nor blocks on a full pipe. Returns the last line of text, for one-line failure messages.
pub(super) fn capture(
    pipe: Option<impl Read + Send + 'static>,
    path: PathBuf,
    cap: u64,
) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let Some(mut pipe) = pipe else {
            return String::new();
        };
        let mut log = CappedLog::new(cap);
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            log.push(&buf[..n]);
        }
        log.finish(&path)
    })
}

/// A log that keeps the first and the last `cap / 2` bytes and counts what lies between, so
/// it shows how the program started and how it ended whatever it wrote.
pub(super) struct CappedLog {
    cap: u64,
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    dropped: u64,
}

impl CappedLog {
    pub(super) fn new(cap: u64) -> CappedLog {
        CappedLog {
            cap,
            head: Vec::new(),
            tail: std::collections::VecDeque::new(),
            dropped: 0,
        }
    }

    pub(super) fn push(&mut self, mut chunk: &[u8]) {
        let head_cap = (self.cap / 2) as usize;
        let tail_cap = (self.cap as usize).saturating_sub(head_cap);
        let room = head_cap.saturating_sub(self.head.len()).min(chunk.len());
        self.head.extend_from_slice(&chunk[..room]);
        chunk = &chunk[room..];
        self.tail.extend(chunk);
        if self.tail.len() > tail_cap {
            let excess = self.tail.len() - tail_cap;
            self.tail.drain(..excess);
            self.dropped += excess as u64;
        }
    }

    /// Writes the log to `path` and returns its last line of text.
    pub(super) fn finish(self, path: &Path) -> String {
        self.finish_into(path, false)
    }

    /// Like [`CappedLog::finish`], after what `path` holds already when `append` (a worker's
    /// log, which keeps every start of the slot's workers).
    pub(super) fn finish_into(self, path: &Path, append: bool) -> String {
        let tail: Vec<u8> = self.tail.into_iter().collect();
        let mut text = self.head.clone();
        if self.dropped > 0 {
            text.extend_from_slice(
                format!(
                    "\n[podium: {} bytes dropped here; the log keeps the first and last {} bytes]\n",
                    self.dropped,
                    self.cap / 2
                )
                .as_bytes(),
            );
        }
        text.extend_from_slice(&tail);
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &text));
        let last = last_line(&tail);
        if last.is_empty() {
            last_line(&self.head)
        } else {
            last
        }
    }
}

fn last_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let line: String = line.trim().chars().take(300).collect();
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_failure_for_a_team_can_go_without_the_builds_output() {
        let dir = tempfile::tempdir().unwrap();
        let (out, err) = (
            dir.path().join("prepare.log"),
            dir.path().join("prepare.err.log"),
        );
        std::fs::write(&err, "compiling\nsecret: truth says covid\n").unwrap();
        let full = build_failure("`make` exited with status 2".into(), (&out, &err));
        assert!(full.contains("secret: truth says covid"), "{full}");
        let for_team = without_build_output(&full);
        assert_eq!(
            for_team,
            "`make` exited with status 2; the build ran outside the sandbox, so its output goes to the organizer only"
        );
        assert_eq!(without_build_output("no quote here"), "no quote here");
    }
}
