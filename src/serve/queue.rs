//! Running the queue: each submission is one round, `podium run --out rounds/<folder>`, run as
//! a child process with the server's backend settings, so that the server itself never runs a
//! team's code and a crash of a round never takes the server down.
//!
//! **Restarts.** A submission is claimed (queued → running) in one transaction before its
//! round starts. A server that stops, even by `kill -9`, leaves it running in the database;
//! the next server resumes its round with `podium run --resume`, which keeps the finished
//! cases of the round's journal, so no case runs twice and the submission is counted once.
//! Each round is a child that gets SIGTERM when its server dies (`PR_SET_PDEATHSIG`) and holds
//! the data folder's lock until it has stopped, so a restarted server waits for the old round
//! to stop before it resumes it.

use std::collections::VecDeque;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::intake::Phase;
use super::lock::DataLock;
use super::store::{Status, Store, Submission};
use crate::error::{Error, Result};

/// How rounds are run: the podium program and the options every `podium run` gets.
#[derive(Clone, Debug)]
pub struct RunSettings {
    pub podium: PathBuf,
    /// For example `["--backend", "sandbox", "--jobs", "2"]`.
    pub run_args: Vec<String>,
}

/// The queue shared by the server's workers.
pub struct Queue {
    pub store: Mutex<Store>,
    /// Submissions found running when the server started, to be resumed first.
    resumable: Mutex<VecDeque<Submission>>,
    /// Set when the server stops: workers take nothing new.
    pub stopping: AtomicBool,
    /// Bumped after every round, so that the leaderboard is rebuilt.
    pub rounds_done: std::sync::atomic::AtomicU64,
}

impl Queue {
    pub fn new(store: Store) -> Result<Queue> {
        let running = store.with_status(Status::Running)?;
        Ok(Queue {
            store: Mutex::new(store),
            resumable: Mutex::new(running.into()),
            stopping: AtomicBool::new(false),
            rounds_done: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        // A worker that panicked while holding the store left it consistent: every change is
        // one SQLite transaction.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next submission to run: one to resume, else the oldest queued.
    fn next(&self) -> Result<Option<Submission>> {
        if let Some(s) = self
            .resumable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
        {
            return Ok(Some(s));
        }
        self.store().claim_next(crate::pipeline::now_unix() as i64)
    }
}

/// A worker: runs submissions one after another until the server stops.
pub fn work(queue: Arc<Queue>, phase: Arc<Phase>, settings: Arc<RunSettings>, lock: Arc<DataLock>) {
    while !queue.stopping.load(Ordering::SeqCst) {
        let next = match queue.next() {
            Ok(next) => next,
            Err(e) => {
                eprintln!("podium serve: the queue: {e}");
                std::thread::sleep(Duration::from_secs(5));
                continue;
            }
        };
        let Some(submission) = next else {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        let ended = run(&phase, &settings, &lock, &submission);
        let now = crate::pipeline::now_unix() as i64;
        let recorded = match ended {
            // Interrupted with the server: it stays running and is resumed at the next start.
            Ended::Interrupted => Ok(()),
            Ended::Done => {
                let round = phase.rounds_dir().join(&submission.folder);
                if let Err(e) = write_team_report(&round) {
                    eprintln!("podium serve: the team report of {}: {e}", round.display());
                }
                queue
                    .store()
                    .finish(submission.id, Status::Done, None, true, now)
            }
            Ended::Failed(reason) => {
                queue
                    .store()
                    .finish(submission.id, Status::Failed, Some(&reason), false, now)
            }
        };
        if let Err(e) = recorded {
            eprintln!("podium serve: submission {}: {e}", submission.id);
        }
        queue.rounds_done.fetch_add(1, Ordering::SeqCst);
    }
}

/// The team's view of its round (`podium report --view team`): on a hidden phase, podium's
/// team-safe messages and no per-case value.
pub fn write_team_report(round: &std::path::Path) -> Result<()> {
    let data = crate::report::ReportData::read(round)?;
    crate::report::write_report(
        round,
        &data.refs(),
        &crate::report::ReportOptions {
            view: crate::report::View::Team,
            html: round.join(TEAM_REPORT),
            plots: None,
        },
    )?;
    Ok(())
}

/// The team view's file in a round's folder.
pub const TEAM_REPORT: &str = "report-team.html";

enum Ended {
    Done,
    /// Failed on the organizers' side: the reason is safe to show the team, the log has the rest.
    Failed(String),
    Interrupted,
}

fn run(phase: &Phase, settings: &RunSettings, lock: &DataLock, s: &Submission) -> Ended {
    match try_run(phase, settings, lock, s) {
        Ok(ended) => ended,
        Err(e) => {
            eprintln!("podium serve: submission {} ({}): {e}", s.id, s.folder);
            Ended::Failed(ORGANIZER_SIDE.into())
        }
    }
}

const ORGANIZER_SIDE: &str = "the round could not run, a problem on the organizers' side (they have the log); it does not count against your quota";

fn try_run(
    phase: &Phase,
    settings: &RunSettings,
    lock: &DataLock,
    s: &Submission,
) -> Result<Ended> {
    let round = phase.rounds_dir().join(&s.folder);
    let folder = phase.submissions_dir().join(&s.folder);
    fs::create_dir_all(phase.logs_dir())
        .map_err(|e| Error::io("create the logs folder", &phase.logs_dir(), e))?;
    let log_path = phase.logs_dir().join(format!("{}.log", s.folder));
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| Error::io("open the log", &log_path, e))?;
    let mut command = Command::new(&settings.podium);
    command.arg("run");
    if round.join("round.json").is_file() {
        command.arg("--resume").arg(&round);
    } else {
        if round.exists() {
            // Started but stopped before its plan was written: nothing of it is kept.
            fs::remove_dir_all(&round).map_err(|e| Error::io("remove", &round, e))?;
        }
        let teams = phase
            .submissions_dir()
            .join(format!("{}.teams.toml", s.folder));
        fs::write(
            &teams,
            format!(
                "[teams]\n{} = {}\n",
                toml_string(&s.folder),
                toml_string(&s.team)
            ),
        )
        .map_err(|e| Error::io("write", &teams, e))?;
        command
            .arg("--challenge")
            .arg(&phase.challenge.root)
            .arg("--phase")
            .arg(&phase.phase)
            .arg("--submissions")
            .arg(&folder)
            .arg("--teams")
            .arg(&teams)
            .arg("--out")
            .arg(&round);
    }
    command.args(&settings.run_args);
    let log_err = log
        .try_clone()
        .map_err(|e| Error::io("open the log", &log_path, e))?;
    command
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .env("PODIUM_SERVE_LOCK_FD", lock.fd().to_string());
    let lock_fd = lock.fd();
    // SAFETY: only async-signal-safe calls (prctl, fcntl) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            // The round stops (SIGTERM: it stops its programs and keeps its journal) when the
            // thread that started it dies with the server.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The round holds the data folder's lock until it exits (podium run marks it
            // close-on-exec again, so that its own programs do not hold it).
            if libc::fcntl(lock_fd, libc::F_SETFD, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = command
        .status()
        .map_err(|e| Error::msg(format!("cannot start {}: {e}", settings.podium.display())))?;
    Ok(match status.code() {
        Some(0) if round.join("run.json").is_file() => Ended::Done,
        // SIGINT, SIGTERM (130, 143), or killed by one.
        Some(130) | Some(143) | None => Ended::Interrupted,
        _ => Ended::Failed(ORGANIZER_SIDE.into()),
    })
}

/// A TOML basic string. Team names hold no control characters (`store::check_team_name`).
fn toml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Called first thing by `podium run` when a server started it: the inherited lock stays with
/// this process, not with the programs it starts.
pub fn keep_lock_to_this_process() {
    if let Some(fd) = std::env::var("PODIUM_SERVE_LOCK_FD")
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    {
        // SAFETY: fcntl on a descriptor number only sets a flag; a wrong number fails harmlessly.
        unsafe {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
        std::env::remove_var("PODIUM_SERVE_LOCK_FD");
    }
}
