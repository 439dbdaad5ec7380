//! The sandbox backend: like the process backend, a submission is a native program started
//! once per case, but inside bubblewrap (`bwrap`) namespaces and a per-case control group.
//!
//! **What the program sees.** A fresh mount namespace holding only: the case's input folder
//! read-only at `/input`, its output folder writable at `/output`, the submission folder
//! read-only at `/submission` (the working directory), the system's `/usr` (and `/bin`, `/sbin`,
//! `/lib*` as the host has them) read-only, a short allow-list of `/etc` files ([`ETC_FILES`]),
//! a private `/proc`, a minimal `/dev` and an empty `/tmp` (memory, counted in the memory
//! limit). Nothing else of the host exists inside: not the truth, not other submissions, not
//! the reports. `{input}` and `{output}` in the command become `/input` and `/output`, as do
//! `PODIUM_INPUT` and `PODIUM_OUTPUT`; the rest of the environment is the process backend's.
//!
//! **The program path.** A path with `/` that is relative is taken in the submission folder
//! (`/submission/...`); a bare name is looked up in `PATH` inside (`/usr/local/bin:/usr/bin:/bin`);
//! an absolute host path exists inside only under the system folders. Submissions must
//! therefore ship their program (and weights) in their folder, or use a system interpreter.
//! A `build` command runs inside the sandbox too, with the submission folder writable and the
//! network as `[limits] network` says, so it must work offline with what the folder holds.
//!
//! **Namespaces.** New user, PID, IPC, UTS and cgroup namespaces and, unless `[limits]
//! network = true`, a network namespace with only `lo`. The program runs as uid/gid 65534
//! (`nobody`) with no capabilities, in a new session, and dies with podium. When podium runs
//! as root, bwrap itself is started as the slot's own unprivileged host user
//! ([`SLOT_ID_BASE`] + slot), so 65534 inside maps to that user outside, never to root; the
//! case's folders are then handed to bwrap as open descriptors (`--ro-bind-fd`, `--bind-fd`).
//! Only the folders above are mounted either way.
//!
//! **Limits.** Wall time: SIGTERM to every process of the case (the cgroup's members), SIGKILL
//! to all after `grace_period_s`. Output: RLIMIT_FSIZE, as the process backend. Memory
//! (`memory_mb`, swap included), processes ([`MAX_PROCESSES`]) and CPU (`cpus` × the CFS
//! period) through the per-case cgroup of [`super::cgroup`]; `oom` comes from the cgroup's
//! OOM-kill counter, never from an exit code. `cpu_s` and `peak_memory_mib` come from the
//! cgroup too. Without usable cgroups ([`SandboxBackend::probe_isolation_only`]) the program is
//! still isolated but memory, processes and CPUs are not limited, and the receipt says so.
//!
//! Exit codes: bwrap reports a program killed by signal N as exit code 128 + N.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wait_timeout::ChildExt;

use super::case_mounts::{CaseFolders, OutputWatch};
use super::cgroup::{join_self, CaseGroup, Hierarchy};
use super::process::{
    capture, close_inherited_descriptors, describe_exit, set_rlimit, wait_watching, ExitContext,
    Waited,
};
use super::worker::{Spawned, Stopper, WorkerFolders, WorkerStart};
use super::{wrong_kind, Backend, CaseJob, ExecStatus, Execution};
use crate::challenge::Limits;
use crate::submission::{RunSpec, Submission};

/// Processes (and threads) one case may have at once, bwrap's own two included. `[limits]`
/// has no key for it; 256 stops a fork bomb while leaving room for multi-process programs.
pub const MAX_PROCESSES: u64 = 256;

/// The uid and gid the program has inside the sandbox (`nobody`).
pub const SANDBOX_ID: u32 = 65534;

/// The `/etc` entries bound read-only into the sandbox, when the host has them: name
/// resolution of users, the dynamic linker, time zone, certificates and Python's site files.
/// Nothing that holds secrets (no shadow, ssh, ssl private keys folder).
pub const ETC_FILES: &[&str] = &[
    "passwd",
    "group",
    "nsswitch.conf",
    "host.conf",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "timezone",
    "alternatives",
    "ssl/certs",
    "ca-certificates",
    "ca-certificates.conf",
    "os-release",
    "debian_version",
    "mime.types",
    "python3",
    "python3.11",
    "python3.12",
    "python3.13",
];

const SANDBOX_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

pub struct SandboxBackend {
    bwrap: PathBuf,
    cgroups: Option<Hierarchy>,
    /// Why cgroups are not used, when they are not.
    no_cgroups: Option<String>,
}

impl SandboxBackend {
    /// A sandbox with every limit: fails with a message naming what is missing when bwrap
    /// cannot create its namespaces or no cgroup hierarchy is writable.
    pub fn probe() -> Result<SandboxBackend, String> {
        let backend = SandboxBackend::probe_isolation_only()?;
        match &backend.no_cgroups {
            None => Ok(backend),
            Some(problem) => Err(problem.clone()),
        }
    }

    /// A sandbox that isolates even when cgroups are not usable; then memory, process count
    /// and CPUs are not limited ([`SandboxBackend::cgroup_problem`] says why, and
    /// `enforced_limits` leaves them out). Fails only when bwrap does not work.
    pub fn probe_isolation_only() -> Result<SandboxBackend, String> {
        let bwrap = find_bwrap()?;
        let backend = SandboxBackend {
            bwrap,
            cgroups: None,
            no_cgroups: None,
        };
        backend.check_bwrap()?;
        Ok(match Hierarchy::detect() {
            Ok(h) => SandboxBackend {
                cgroups: Some(h),
                ..backend
            },
            Err(e) => SandboxBackend {
                no_cgroups: Some(format!(
                    "no usable cgroup for per-case limits, so memory_mb, cpus and the process count cannot be enforced: {e}"
                )),
                ..backend
            },
        })
    }

    /// Why memory, processes and CPUs are not limited; `None` when they are.
    pub fn cgroup_problem(&self) -> Option<&str> {
        self.no_cgroups.as_deref()
    }

    /// "cgroup v1" or "cgroup v2", or `None` without cgroups.
    pub fn cgroup_version(&self) -> Option<&'static str> {
        self.cgroups.as_ref().map(Hierarchy::version)
    }

    fn check_bwrap(&self) -> Result<(), String> {
        let mut cmd = Command::new(&self.bwrap);
        cmd.args(isolation_args(false))
            .args(["--", "true"])
            .env_clear()
            .env("PATH", SANDBOX_PATH)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.bwrap.display()))?;
        let stderr = child.stderr.take();
        let status = child
            .wait_timeout(Duration::from_secs(20))
            .map_err(|e| e.to_string())?;
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{} did not start a trial sandbox within 20 s",
                self.bwrap.display()
            ));
        };
        if !status.success() {
            let mut text = String::new();
            if let Some(mut e) = stderr {
                use std::io::Read;
                let _ = e.read_to_string(&mut text);
            }
            return Err(format!(
                "{} cannot create a sandbox ({status}): {}; bubblewrap needs unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, and on Ubuntu kernel.apparmor_restrict_unprivileged_userns=0) or root",
                self.bwrap.display(),
                text.trim()
            ));
        }
        Ok(())
    }

    /// bwrap's arguments for one run: namespaces, system folders, the given binds, the
    /// working directory and the command.
    fn command(
        &self,
        binds: &[OsString],
        network: bool,
        program: &str,
        args: impl IntoIterator<Item = String>,
    ) -> Command {
        let mut cmd = Command::new(&self.bwrap);
        cmd.args(isolation_args(network));
        cmd.args(binds);
        cmd.args(["--chdir", "/submission", "--remount-ro", "/", "--", program])
            .args(args)
            .env_clear()
            .env("PATH", SANDBOX_PATH)
            .env("LANG", "C.UTF-8");
        cmd
    }

    /// Starts `cmd` (bwrap) in a new cgroup with the limits, as the slot's user where given,
    /// with stdout and stderr piped (stdin is the caller's choice).
    fn spawn(
        &self,
        mut cmd: Command,
        limits: &Limits,
        cpus: Option<&str>,
        identity: Option<(u32, Vec<RawFd>)>,
    ) -> Result<(std::process::Child, Option<CaseGroup>), String> {
        let group = match &self.cgroups {
            Some(h) => Some(
                h.create_case(limits, MAX_PROCESSES, cpus)
                    .map_err(|e| format!("podium could not create the case's cgroup: {e}"))?,
            ),
            None => None,
        };
        let fds = group.as_ref().map(CaseGroup::procs_fds).unwrap_or_default();
        let output_bytes = limits.output_mb.saturating_mul(1 << 20);
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // SAFETY: only write(2) and setrlimit(2) between fork and exec; `fds` is moved in.
        unsafe {
            cmd.pre_exec(move || {
                join_self(&fds)?;
                set_rlimit(libc::RLIMIT_CORE, 0)?;
                set_rlimit(libc::RLIMIT_FSIZE, output_bytes)?;
                // bwrap passes every open descriptor on to the program: only the bind
                // descriptors below may stay open.
                close_inherited_descriptors()?;
                if let Some((id, bind_fds)) = &identity {
                    become_slot_user(*id, bind_fds)?;
                }
                Ok(())
            });
        }
        let child = super::interrupt::spawn_unless_interrupted(&mut cmd)
            .map_err(|e| format!("cannot start {}: {e}", self.bwrap.display()))?;
        Ok((child, group))
    }

    /// bwrap running the submission's `command` with `binds`, its arguments and environment
    /// naming the folders as the program sees them (`/input`, `/output`) and its GPUs.
    fn program_command(
        &self,
        binds: &[OsString],
        limits: &Limits,
        command: &[String],
        (gpus, gpu_nodes): (&[u32], &[PathBuf]),
    ) -> Command {
        let fill = |arg: &String| {
            arg.replace("{input}", "/input")
                .replace("{output}", "/output")
        };
        let mut cmd = self.command(
            binds,
            limits.network,
            &inside_program(&command[0]),
            command[1..].iter().map(fill),
        );
        cmd.env("HOME", "/output")
            .env("PODIUM_INPUT", "/input")
            .env("PODIUM_OUTPUT", "/output")
            .env("PODIUM_CPUS", limits.cpus.to_string())
            .env("OMP_NUM_THREADS", limits.cpus.to_string());
        super::process::gpu_environment(&mut cmd, gpus, gpu_nodes, false);
        cmd
    }

    /// Runs `cmd` (bwrap) in a new cgroup with the limits, waits at most `wall`, and captures
    /// capped logs.
    #[allow(clippy::too_many_arguments)]
    fn execute(
        &self,
        mut cmd: Command,
        wall: Duration,
        limits: &Limits,
        logs: (&Path, &Path),
        cpus: Option<&str>,
        identity: Option<(u32, Vec<RawFd>)>,
        watch: Option<&OutputWatch>,
    ) -> Result<Execution, String> {
        let (stdout_log, stderr_log) = logs;
        cmd.stdin(Stdio::null());
        let started = Instant::now();
        let (mut child, group) = self.spawn(cmd, limits, cpus, identity)?;
        let supervisor = child.id() as libc::pid_t;
        let log_cap = limits.log_kb.saturating_mul(1024);
        let out_reader = capture(child.stdout.take(), stdout_log.to_path_buf(), log_cap);
        let err_reader = capture(child.stderr.take(), stderr_log.to_path_buf(), log_cap);

        let mut timed_out = false;
        let mut killed_after_grace = false;
        let mut output_was_full = false;
        let exit = match wait_watching(&mut child, wall, watch).map_err(|e| e.to_string())? {
            Waited::Exited(status) => status,
            Waited::OutputFull => {
                output_was_full = true;
                kill_everything(group.as_ref(), supervisor);
                child.wait().map_err(|e| e.to_string())?
            }
            Waited::Deadline => {
                timed_out = true;
                // SIGTERM to the program's processes, not to bwrap's supervisor, whose death
                // would take the sandbox down at once, with no grace period.
                match &group {
                    Some(g) => g.signal_all(libc::SIGTERM, Some(supervisor)),
                    None => {
                        for pid in descendants(supervisor) {
                            unsafe {
                                libc::kill(pid, libc::SIGTERM);
                            }
                        }
                    }
                }
                let grace = Duration::from_secs_f64(limits.grace_period_s.max(0.0));
                match child.wait_timeout(grace).map_err(|e| e.to_string())? {
                    Some(status) => status,
                    None => {
                        killed_after_grace = true;
                        kill_everything(group.as_ref(), supervisor);
                        child.wait().map_err(|e| e.to_string())?
                    }
                }
            }
        };
        let wall_s = started.elapsed().as_secs_f64();
        // The PID namespace ends with its first process; this catches anything in between.
        kill_everything(group.as_ref(), supervisor);
        let oom_kills = group.as_ref().map_or(0, CaseGroup::oom_kills);
        let cpu_s = group.as_ref().and_then(CaseGroup::cpu_seconds);
        let peak_memory_mib = group
            .as_ref()
            .and_then(CaseGroup::peak_memory_bytes)
            .map(|b| b as f64 / (1u64 << 20) as f64);
        drop(group);
        let _ = out_reader.join();
        let stderr_tail = err_reader.join().unwrap_or_default();

        let (status, message) = describe_exit(
            exit,
            ExitContext {
                timed_out,
                killed_after_grace,
                output_full: output_was_full,
                oom_kills,
                wall,
                limits,
            },
        );
        Ok(Execution {
            status,
            exit_code: exit.code(),
            signal: exit.signal(),
            wall_s,
            cpu_s,
            peak_memory_mib,
            message,
            program_said: stderr_tail,
            gpu: Default::default(),
        })
    }
}

impl SandboxBackend {
    /// Runs the submission's `build` in the sandbox with a case's limits and `build_time_s`,
    /// the submission folder writable. As root it runs as the build's own unprivileged host
    /// user, who owns the folder for the build's time only: whatever the build leaves is then
    /// given back to the folder's owner, and a setuid or setgid file or a special file it made
    /// fails the submission.
    fn build(
        &self,
        submission: &Submission,
        build: &[String],
        log: &Path,
        limits: &Limits,
    ) -> Result<(), String> {
        let identity = slot_identity(0);
        let owner = std::fs::symlink_metadata(&submission.dir)
            .map(|m| {
                use std::os::unix::fs::MetadataExt;
                (m.uid(), m.gid())
            })
            .map_err(|e| format!("cannot read {}: {e}", submission.dir.display()))?;
        let mut held = None;
        let binds = match identity {
            Some(id) => {
                chown_tree(&submission.dir, id, id).map_err(|e| {
                    format!("cannot hand the submission folder to the build's user: {e}")
                })?;
                let dir = std::fs::File::open(&submission.dir)
                    .map_err(|e| format!("cannot open {}: {e}", submission.dir.display()))?;
                let args = vec![
                    OsString::from("--bind-fd"),
                    OsString::from(dir.as_raw_fd().to_string()),
                    OsString::from("/submission"),
                ];
                held = Some(dir);
                args
            }
            None => bind_args(&[("--bind", submission.dir.as_os_str(), "/submission")]),
        };
        let mut cmd = self.command(
            &binds,
            limits.network,
            &inside_program(&build[0]),
            build[1..].iter().cloned(),
        );
        cmd.env("HOME", "/tmp");
        let budget = Duration::from_secs_f64(limits.build_time_s);
        let err_log = log.with_extension("err.log");
        let fds = held.iter().map(|f| f.as_raw_fd()).collect();
        let outcome = self.execute(
            cmd,
            budget,
            limits,
            (log, &err_log),
            None,
            identity.map(|id| (id, fds)),
            None,
        );
        drop(held);
        // Checked before the folder goes back to its owner: the kernel clears a setuid bit on
        // chown, which would hide what the build tried.
        let checked = check_submission_tree(&submission.dir);
        // The folder goes back to its owner whatever happened, before anything else reads it.
        let given_back = if identity.is_some() {
            chown_tree(&submission.dir, owner.0, owner.1)
                .map_err(|e| format!("cannot give the submission folder back to its owner: {e}"))
        } else {
            Ok(())
        };
        let outcome = outcome?;
        given_back?;
        checked?;
        if outcome.status != ExecStatus::Ok {
            let failure = super::process::build_failure(
                format!(
                    "build command `{}` (run in the sandbox, offline unless the challenge allows the network, within build_time_s = {} s) {}",
                    build.join(" "),
                    limits.build_time_s,
                    outcome.message
                ),
                (log, &err_log),
            );
            return Err(match missing_in_sandbox(submission, &build[0]) {
                Some(hint) => format!("{failure}. {hint}"),
                None => failure,
            });
        }
        Ok(())
    }
}

/// Refuses a submission folder holding a setuid or setgid file, or anything but files,
/// folders and symbolic links: such a file could give whoever runs it another identity, or
/// reach a device. The offending bits are cleared, so nothing usable is left behind.
fn check_submission_tree(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let entries = std::fs::read_dir(&folder)
            .map_err(|e| format!("cannot list {}: {e}", folder.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let kind = meta.file_type();
            let shown = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .display()
                .to_string();
            if kind.is_symlink() {
                continue;
            }
            if kind.is_dir() {
                stack.push(path);
                continue;
            }
            if !kind.is_file() {
                found.push(format!(
                    "{shown} is not a regular file (a FIFO, socket or device)"
                ));
                continue;
            }
            if meta.mode() & 0o6000 != 0 {
                let cleared = meta.mode() & 0o777;
                let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(cleared));
                found.push(format!(
                    "{shown} is setuid or setgid (mode {:o})",
                    meta.mode() & 0o7777
                ));
            }
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    found.sort();
    Err(format!(
        "the submission folder holds files podium does not run: {}. Ship plain files and folders",
        found.join("; ")
    ))
}

/// Gives every file and folder under `dir` (links themselves, never what they point to) to
/// `uid:gid`.
fn chown_tree(dir: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            chown_tree(&path, uid, gid)?;
        } else {
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
        }
    }
    Ok(())
}

impl Backend for SandboxBackend {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    /// As root, the case's input is a tmpfs of its own ([`CaseFolders`]).
    fn copies_input(&self, _submission: &Submission) -> bool {
        slot_identity(0).is_some()
    }

    fn isolation(&self) -> String {
        let base = match (self.cgroup_version(), self.cgroup_problem()) {
            (Some(version), _) => format!("bubblewrap namespaces (user, pid, net, ipc, uts, mount) and a per-case {version} group"),
            (None, Some(problem)) => format!("bubblewrap namespaces (user, pid, net, ipc, uts, mount); {problem}"),
            (None, None) => "bubblewrap namespaces (user, pid, net, ipc, uts, mount)".into(),
        };
        if slot_identity(0).is_some() {
            format!(
                "{base}; each slot runs as its own unprivileged host user ({SLOT_ID_BASE} + slot)"
            )
        } else {
            format!("{base}; as podium's own user")
        }
    }

    fn enforced_limits(&self) -> &'static [&'static str] {
        if self.cgroups.is_some() {
            &[
                "wall_time_per_case_s",
                "wall_time_per_submission_s",
                "memory_mb",
                "cpus",
                "output_mb",
                "log_kb",
                "network",
                "gpus",
                "build_time_s",
            ]
        } else {
            &[
                "wall_time_per_case_s",
                "wall_time_per_submission_s",
                "output_mb",
                "log_kb",
                "network",
                "gpus",
                "build_time_s",
            ]
        }
    }

    /// As root, the slots' users must reach the round's folder: checked once here, so that an
    /// organizer's private folder fails the round with one message, not every case.
    fn start_round(&self, _run_id: &str, out_dir: &Path) -> Result<(), String> {
        if slot_identity(0).is_some() {
            reachable_by_slot_users(out_dir, "the round's output folder")?;
        }
        Ok(())
    }

    fn prepare(&self, submission: &Submission, log: &Path, limits: &Limits) -> Result<(), String> {
        let RunSpec::Process { build, command, .. } = &submission.run else {
            return Err(wrong_kind(submission));
        };
        // A team's upload may already hold a setuid file or a device node (an archive unpacked
        // by root keeps them): refused before anything of the submission runs.
        check_submission_tree(&submission.dir)?;
        if slot_identity(0).is_some() {
            reachable_by_slot_users(&submission.dir, "the submission's folder")?;
        }
        if !build.is_empty() {
            self.build(submission, build, log, limits)?;
        }
        let program = &command[0];
        let toml = submission.dir.join("submission.toml");
        if program.starts_with('/') {
            if !is_system_path(Path::new(program)) {
                return Err(format!(
                    "the program {program} is outside the submission folder and the system folders, so it does not exist in the sandbox; ship it in the submission folder and give a relative path in [run] command in {}",
                    toml.display()
                ));
            }
        } else if program.contains('/') && !submission.dir.join(program).is_file() {
            return Err(format!(
                "the program {} does not exist; check [run] command in {}",
                submission.dir.join(program).display(),
                toml.display()
            ));
        }
        Ok(())
    }

    fn run_case(&self, job: &CaseJob, limits: &Limits) -> Execution {
        let RunSpec::Process { command, .. } = &job.submission.run else {
            return Execution::not_started(wrong_kind(job.submission));
        };
        // As root, each slot runs as its own unprivileged host uid, and the case's folders are
        // fresh tmpfs mounts (the output one of `output_mb`). The slot's bwrap then cannot be
        // trusted to reach the folders by path (an ancestor may be private to root), so podium
        // opens them and hands bwrap the descriptors.
        let slot_id = slot_identity(job.slot);
        let case_folders =
            match CaseFolders::create(job, limits, slot_id.unwrap_or(0), slot_id.is_some()) {
                Ok(f) => f,
                Err(e) => return Execution::not_started(format!("podium {e}")),
            };
        let folders = [
            (case_folders.input.as_path(), "/input", false),
            (case_folders.output.as_path(), "/output", true),
            (job.submission.dir.as_path(), "/submission", false),
        ];
        let (binds, held) = match folder_binds(folders, slot_id.is_some()) {
            Ok(b) => b,
            Err(e) => return Execution::not_started(e),
        };
        let fds: Vec<RawFd> = held.iter().map(|f| f.as_raw_fd()).collect();
        let mut binds = binds;
        binds.extend(gpu_binds(&job.gpu_nodes));
        let mut cmd = self.program_command(&binds, limits, command, (&job.gpus, &job.gpu_nodes));
        cmd.env("PODIUM_CASE_ID", &job.case_id);
        let wall = Duration::from_secs_f64(
            limits
                .wall_time_per_case_s
                .min(job.remaining_budget_s.max(0.0)),
        );
        // Each slot keeps its own CPUs, so concurrent cases do not compete for a core.
        let cpus = self
            .cgroups
            .as_ref()
            .and_then(|h| h.cpus_for_slot(job.slot, limits.cpus));
        let identity = slot_id.map(|id| (id, fds));
        // Without a size-capped tmpfs, the output folder is watched while the case runs.
        let watch = slot_id
            .is_none()
            .then(|| OutputWatch::new(&job.output_dir, limits))
            .flatten();
        let result = self.execute(
            cmd,
            wall,
            limits,
            (&job.stdout_log, &job.stderr_log),
            cpus.as_deref(),
            identity,
            watch.as_ref(),
        );
        drop(held);
        let execution = result.unwrap_or_else(Execution::not_started);
        case_folders.collect(job, limits, execution)
    }

    fn runs_workers(&self) -> bool {
        true
    }

    /// The worker's sandbox is a case's: the same binds, limits, slot user and GPUs, with the
    /// worker's folders at `/input` and `/output` and stdin piped for the protocol.
    fn start_worker(&self, start: &WorkerStart, limits: &Limits) -> Result<Spawned, String> {
        let RunSpec::Process { command, .. } = &start.submission.run else {
            return Err(wrong_kind(start.submission));
        };
        let slot_id = slot_identity(start.slot);
        let folders = WorkerFolders::create(&start.dir, limits, slot_id)?;
        let (mut binds, held) = folder_binds(
            [
                (folders.input.as_path(), "/input", false),
                (folders.output.as_path(), "/output", true),
                (start.submission.dir.as_path(), "/submission", false),
            ],
            slot_id.is_some(),
        )?;
        binds.extend(gpu_binds(&start.gpu_nodes));
        let mut cmd =
            self.program_command(&binds, limits, command, (&start.gpus, &start.gpu_nodes));
        cmd.env("PODIUM_MODE", "worker").stdin(Stdio::piped());
        let cpus = self
            .cgroups
            .as_ref()
            .and_then(|h| h.cpus_for_slot(start.slot, limits.cpus));
        let fds: Vec<RawFd> = held.iter().map(|f| f.as_raw_fd()).collect();
        let (child, group) =
            self.spawn(cmd, limits, cpus.as_deref(), slot_id.map(|id| (id, fds)))?;
        // The child holds its own copies of the bind descriptors.
        drop(held);
        Ok(Spawned {
            child,
            stop: Stopper::Sandbox { group },
            folders,
            watch_output: slot_id.is_none(),
        })
    }
}

/// bwrap's arguments binding `(host folder, inside, writable)`. As root (`by_descriptor`) the
/// slot's bwrap cannot be trusted to reach the folders by path (an ancestor may be private to
/// root), so podium opens them and hands bwrap the descriptors, which the caller keeps open
/// until bwrap has started.
fn folder_binds(
    folders: [(&Path, &str, bool); 3],
    by_descriptor: bool,
) -> Result<(Vec<OsString>, Vec<std::fs::File>), String> {
    let mut held = Vec::new();
    if !by_descriptor {
        let binds = bind_args(&folders.map(|(dir, inside, writable)| {
            (
                if writable { "--bind" } else { "--ro-bind" },
                dir.as_os_str(),
                inside,
            )
        }));
        return Ok((binds, held));
    }
    let mut args = Vec::new();
    for (dir, inside, writable) in folders {
        let f = std::fs::File::open(dir)
            .map_err(|e| format!("podium could not open {}: {e}", dir.display()))?;
        args.extend([
            OsString::from(if writable {
                "--bind-fd"
            } else {
                "--ro-bind-fd"
            }),
            OsString::from(f.as_raw_fd().to_string()),
            OsString::from(inside),
        ]);
        held.push(f);
    }
    Ok((args, held))
}

/// As root, each slot's bwrap runs as the slot's own unprivileged user, and bubblewrap resolves
/// the folders it binds by path even when it is handed their descriptors: a folder above them
/// that other users cannot enter (a home folder of mode 0700) would fail every case with
/// "bwrap: Can't find source path … Permission denied". Names the first such folder.
fn reachable_by_slot_users(dir: &Path, what: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::fs::canonicalize(dir)
        .map_err(|e| format!("podium cannot resolve {what} {}: {e}", dir.display()))?;
    for folder in dir.ancestors().collect::<Vec<_>>().into_iter().rev() {
        let mode = std::fs::metadata(folder)
            .map_err(|e| format!("podium cannot read {}: {e}", folder.display()))?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            return Err(format!(
                "the sandbox's slot users (uid {SLOT_ID_BASE} and up) cannot reach {what} {}: {} has mode {:04o}, which other users cannot enter. Let them pass through it (`chmod o+x {}` lets them enter it without listing it), or choose a folder under one they can enter (for example /srv or /tmp)",
                dir.display(),
                folder.display(),
                mode & 0o7777,
                folder.display()
            ));
        }
    }
    Ok(())
}

/// The first host uid (and gid) of the slots: slot k runs as `SLOT_ID_BASE + k` when podium
/// runs as root, so concurrent cases cannot touch one another's processes or files, and
/// nothing of a case runs as root on the host.
pub const SLOT_ID_BASE: u32 = 64000;

/// The host uid of a slot, when podium can switch to it (it runs as root).
fn slot_identity(slot: usize) -> Option<u32> {
    (unsafe { libc::geteuid() } == 0).then(|| SLOT_ID_BASE + slot as u32)
}

/// Between fork and exec: keep the bind descriptors open across exec, drop every group, and
/// become the slot's user. Only async-signal-safe calls.
fn become_slot_user(id: u32, bind_fds: &[RawFd]) -> std::io::Result<()> {
    for &fd in bind_fds {
        if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0
            || libc::setgid(id) != 0
            || libc::setuid(id) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The case's GPU device nodes inside its `/dev`, and nothing else of the host's devices:
/// the slot's own `nvidia<K>` and the driver's control nodes, under their own names. The
/// driver's user-space libraries come with the read-only `/usr` and `/lib*`; those installed
/// elsewhere are bound read-only at their own paths ([`super::driver_libraries`]).
fn gpu_binds(nodes: &[PathBuf]) -> Vec<OsString> {
    if nodes.is_empty() {
        return Vec::new();
    }
    let mut binds: Vec<OsString> = nodes
        .iter()
        .filter_map(|node| {
            let name = node.file_name()?;
            Some([
                OsString::from("--dev-bind"),
                node.as_os_str().to_owned(),
                Path::new("/dev").join(name).into_os_string(),
            ])
        })
        .flatten()
        .collect();
    let libraries = super::driver_libraries::host_libraries();
    for path in super::driver_libraries::paths_to_bind(libraries, is_system_path) {
        binds.extend([
            OsString::from("--ro-bind"),
            path.clone().into_os_string(),
            path.into_os_string(),
        ]);
    }
    binds
}

fn bind_args(binds: &[(&str, &std::ffi::OsStr, &str)]) -> Vec<OsString> {
    binds
        .iter()
        .flat_map(|(how, host, inside)| {
            [
                OsString::from(how),
                OsString::from(host),
                OsString::from(inside),
            ]
        })
        .collect()
}

/// The sandbox's namespaces, identity and system folders, without the per-run binds.
fn isolation_args(network: bool) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    if !network {
        args.push("--unshare-net".into());
    }
    let id = SANDBOX_ID.to_string();
    for a in [
        "--uid",
        &id,
        "--gid",
        &id,
        "--hostname",
        "podium",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--ro-bind",
        "/usr",
        "/usr",
    ] {
        args.push(a.into());
    }
    for dir in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
        let Ok(meta) = std::fs::symlink_metadata(dir) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            if let Ok(target) = std::fs::read_link(dir) {
                args.extend(["--symlink".into(), target.into(), dir.into()]);
            }
        } else if meta.is_dir() {
            args.extend(["--ro-bind".into(), dir.into(), dir.into()]);
        }
    }
    let mut etc: Vec<&str> = ETC_FILES.to_vec();
    if network {
        etc.push("resolv.conf");
    }
    for name in etc {
        let host = Path::new("/etc").join(name);
        if host.exists() {
            args.extend(["--ro-bind".into(), host.clone().into(), host.into()]);
        }
    }
    for a in ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"] {
        args.push(a.into());
    }
    args
}

/// The program as the sandbox names it: a relative path with `/` lives in the submission.
fn inside_program(program: &str) -> String {
    if program.contains('/') && !program.starts_with('/') {
        format!("/submission/{}", program.trim_start_matches("./"))
    } else {
        program.to_string()
    }
}

/// Why `program` cannot start in the sandbox, when it does not exist there: a build tool of
/// the host outside the system folders (cargo under ~/.cargo, a conda compiler) is not inside.
fn missing_in_sandbox(submission: &Submission, program: &str) -> Option<String> {
    let exists = if program.starts_with('/') {
        is_system_path(Path::new(program)) && Path::new(program).exists()
    } else if program.contains('/') {
        submission.dir.join(program).exists()
    } else {
        SANDBOX_PATH
            .split(':')
            .any(|dir| Path::new(dir).join(program).exists())
    };
    (!exists).then(|| {
        format!(
            "`{}` does not exist in the sandbox, which holds only the system folders (/usr, /bin, /lib) and the submission folder: build the program before the round and ship it in the folder, without `build` in submission.toml (docs/sandbox.md, \"Building a submission\")",
            crate::text::shown(program)
        )
    })
}

fn is_system_path(path: &Path) -> bool {
    [
        "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
    ]
    .iter()
    .any(|p| path.starts_with(p))
}

fn find_bwrap() -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|dir| dir.join("bwrap"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "bubblewrap (bwrap) is not installed; install it (Debian/Ubuntu: apt-get install bubblewrap)"
                .to_string()
        })
}

/// SIGKILL to every process of the case. With a cgroup, to each member until none is left;
/// without, to bwrap's supervisor (its PID namespace dies with it) and what descends from it.
pub(super) fn kill_everything(group: Option<&CaseGroup>, supervisor: libc::pid_t) {
    match group {
        Some(g) => {
            g.kill_all(Duration::from_secs(10));
        }
        None => {
            let tree = descendants(supervisor);
            unsafe {
                libc::kill(supervisor, libc::SIGKILL);
            }
            for pid in tree {
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

/// The processes descending from `root` (not `root` itself), from /proc.
pub(super) fn descendants(root: libc::pid_t) -> Vec<libc::pid_t> {
    let mut parent_of: Vec<(libc::pid_t, libc::pid_t)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<libc::pid_t>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            if let Some(ppid) = after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parent_of
                .iter()
                .filter(|(_, ppid)| *ppid == parent)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    found.remove(0);
    found
}
