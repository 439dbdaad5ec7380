//! An interrupted round (SIGINT from Ctrl-C, SIGTERM from a scheduler or `kill`, SIGHUP from a
//! closed terminal), the same with every backend: no finished case is lost or recorded twice,
//! no program of the round outlives podium, and podium says how to go on before it exits with
//! 128 + the signal (130 for SIGINT, 143 for SIGTERM).
//!
//! The programs of the process and sandbox backends run in process groups of their own, so
//! neither a terminal's Ctrl-C nor a SIGTERM to podium alone reaches them: the handler kills
//! every process descended from podium. A backend that leaves things outside podium's process
//! tree (the Docker engine's containers) adds its own cleanup with [`on_interrupt`].

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// The round in progress, for the handler's resume line.
struct RoundInProgress {
    out_dir: PathBuf,
    /// Submissions × cases.
    cases: usize,
}

static ROUND: Mutex<Option<RoundInProgress>> = Mutex::new(None);

/// Set once the handler runs. Held while a finished case is written to the journal, so the
/// handler never exits in the middle of a record, and no case whose program it killed is
/// recorded as a failure (it runs again on resume).
static INTERRUPTED: Mutex<bool> = Mutex::new(false);

type Cleanup = Box<dyn Fn() + Send>;
static CLEANUPS: Mutex<Vec<Cleanup>> = Mutex::new(Vec::new());

static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

/// Watches for SIGINT, SIGTERM and SIGHUP for the rest of the process (once; later calls
/// return the first call's outcome).
pub fn install() -> Result<(), String> {
    INSTALLED
        .get_or_init(|| {
            let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
                .map_err(|e| format!("cannot watch for interrupts: {e}"))?;
            std::thread::Builder::new()
                .name("podium-interrupt".into())
                .spawn(move || {
                    if let Some(signal) = signals.forever().next() {
                        handle(signal);
                    }
                })
                .map_err(|e| format!("cannot watch for interrupts: {e}"))?;
            Ok(())
        })
        .clone()
}

/// Makes the round in `out_dir` the one an interruption reports on (with `cases` cases in
/// all, submissions × phase cases) and installs the handler.
pub fn watch_round(out_dir: &Path, cases: usize) -> Result<(), String> {
    *ROUND.lock().unwrap_or_else(|e| e.into_inner()) = Some(RoundInProgress {
        out_dir: out_dir.to_path_buf(),
        cases,
    });
    install()
}

/// Adds `cleanup` to what the handler does after killing podium's child processes and before
/// it exits.
pub fn on_interrupt(cleanup: Cleanup) {
    CLEANUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(cleanup);
}

/// Starts `command`, a program of the round, unless the round was interrupted. The handler
/// waits for a start in progress, so it finds the new program among podium's descendants and
/// kills it; a start asked for once the handler runs waits until podium exits, so that a slot
/// freed by the killing never starts its next case behind the handler's back.
pub fn spawn_unless_interrupted(
    command: &mut std::process::Command,
) -> std::io::Result<std::process::Child> {
    let interrupted = INTERRUPTED.lock().unwrap_or_else(|e| e.into_inner());
    if *interrupted {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Interrupted,
            "the round was interrupted",
        ));
    }
    command.spawn()
}

/// Runs `record` (a write to the journal) unless the round was interrupted; an interruption
/// waits for a write in progress.
pub fn unless_interrupted<T>(record: impl FnOnce() -> T) -> Option<T> {
    let interrupted = INTERRUPTED.lock().unwrap_or_else(|e| e.into_inner());
    (!*interrupted).then(record)
}

fn handle(signal: i32) -> ! {
    // Kept until exit: nothing is recorded from here on.
    let mut interrupted = INTERRUPTED.lock().unwrap_or_else(|e| e.into_inner());
    *interrupted = true;
    eprintln!(
        "\npodium: interrupted ({}); stopping the round's programs",
        signal_name(signal)
    );
    kill_descendants();
    for cleanup in CLEANUPS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        cleanup();
    }
    // The cases' tmpfs folders (as root), once nothing runs in them any more.
    super::case_mounts::unmount_all_and_refuse_more();
    if let Some(round) = ROUND.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        let kept = crate::results::RunsCsv::read(&round.out_dir.join("runs.csv"))
            .map_or(0, |records| records.len());
        eprintln!("podium: {}", resume_hint(&round.out_dir, kept, round.cases));
    }
    std::process::exit(128 + signal)
}

/// What an interrupted round tells its organizer.
pub fn resume_hint(out_dir: &Path, kept: usize, cases: usize) -> String {
    format!(
        "{kept} of {cases} case(s) finished and kept in {}; `podium run --resume {}` runs the other {}",
        out_dir.join("runs.csv").display(),
        out_dir.display(),
        cases.saturating_sub(kept)
    )
}

fn signal_name(signal: i32) -> String {
    match signal {
        SIGINT => "SIGINT".into(),
        SIGTERM => "SIGTERM".into(),
        SIGHUP => "SIGHUP".into(),
        other => format!("signal {other}"),
    }
}

/// SIGKILL to every process below podium: the cases' programs and their children, a build,
/// the sandboxes' bwrap. Their process groups are their own, so nothing else reaches them.
fn kill_descendants() {
    let me = std::process::id() as libc::pid_t;
    let my_group = unsafe { libc::getpgrp() };
    // A program may fork while its parent is killed, and its child then leaves podium's tree:
    // its process group still holds it, and a second pass catches what the first missed.
    for _ in 0..2 {
        for pid in super::sandbox::descendants(me) {
            if pid == me {
                continue;
            }
            let group = unsafe { libc::getpgid(pid) };
            unsafe {
                if group > 0 && group != my_group {
                    libc::kill(-group, libc::SIGKILL);
                }
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resume_hint_names_the_folder_and_counts_what_is_kept_and_left() {
        let hint = resume_hint(Path::new("/rounds/r1"), 3, 8);
        assert!(hint.starts_with("3 of 8 case(s) finished and kept in /rounds/r1/runs.csv"));
        assert!(hint.contains("`podium run --resume /rounds/r1` runs the other 5"));
    }
}
