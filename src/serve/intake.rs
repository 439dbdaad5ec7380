//! Taking a team's upload: the quota first, then the archive streamed to disk under a size
//! limit, unpacked by [`super::archive::unpack`], its `submission.toml` validated, and the
//! submission queued. Every refusal is an answer for the team (an HTTP status and a message
//! saying what to change), and leaves nothing behind.
//!
//! The data folder (`podium serve --data`) holds:
//!
//! ```text
//! podium.sqlite3        teams, token hashes, the queue (super::store)
//! incoming/             uploads being received and unpacked
//! submissions/<folder>/ each accepted submission, as unpacked
//! rounds/<folder>/      each submission's round (podium run --out), the phase's rounds folder
//! logs/<folder>.log     what `podium run` printed, for the organizers
//! ```

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::archive::{self, UnpackLimits};
use super::store::{Status, Store, Team};
use crate::challenge::Challenge;
use crate::error::Result;

/// The phase a server takes submissions for, and where it keeps them.
pub struct Phase {
    pub challenge: Challenge,
    pub phase: String,
    pub data: PathBuf,
}

impl Phase {
    pub fn rounds_dir(&self) -> PathBuf {
        self.data.join("rounds")
    }

    pub fn submissions_dir(&self) -> PathBuf {
        self.data.join("submissions")
    }

    pub fn incoming_dir(&self) -> PathBuf {
        self.data.join("incoming")
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.data.join("logs")
    }
}

/// How large an upload may be.
#[derive(Clone, Copy, Debug)]
pub struct IntakeLimits {
    /// The compressed archive, as sent.
    pub max_upload_bytes: u64,
    pub unpack: UnpackLimits,
}

impl Default for IntakeLimits {
    /// 2 GiB compressed, 4 GiB unpacked (see [`UnpackLimits`]).
    fn default() -> Self {
        IntakeLimits {
            max_upload_bytes: 2 << 30,
            unpack: UnpackLimits::default(),
        }
    }
}

/// Why an upload was not accepted: the HTTP status and the message for the team.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

impl Refusal {
    pub fn new(status: u16, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
        }
    }

    /// A failure on the server's side: the team is told it is not theirs.
    fn server(what: impl std::fmt::Display) -> Refusal {
        Refusal::new(
            500,
            format!("the server could not take the submission ({what}); nothing was counted, try again later"),
        )
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

/// Whether `team` may send a submission now: its submissions in the phase's rounds and those
/// still queued or running count against the challenge's quota.
pub fn check_quota(
    store: &Store,
    phase: &Phase,
    team: &Team,
    now: u64,
) -> std::result::Result<(), Refusal> {
    if team.organizer {
        return Err(Refusal::new(
            403,
            "an organizer token cannot send submissions; add a team with `podium teams add` and use its token",
        ));
    }
    // Queued or running, and not yet a finished round of the rounds folder (which the quota
    // counts already).
    let pending = store
        .submissions_of(team.id)
        .map_err(Refusal::server)?
        .iter()
        .filter(|s| matches!(s.status, Status::Queued | Status::Running))
        .filter(|s| {
            !phase
                .rounds_dir()
                .join(&s.folder)
                .join("run.json")
                .is_file()
        })
        .count();
    match crate::rounds::quota_refusal_with_pending(
        &phase.rounds_dir(),
        &phase.challenge,
        &phase.phase,
        &team.name,
        now,
        pending,
    ) {
        Ok(None) => Ok(()),
        Ok(Some(reason)) => Err(Refusal::new(429, reason)),
        Err(e) => Err(Refusal::server(e)),
    }
}

/// Receives the upload `body` into the incoming folder, unpacks and validates it. Returns the
/// folder (under `incoming/`) and the submission's name; the caller queues it with
/// [`queue_received`]. Slow work: run it off the request threads.
pub fn receive(
    phase: &Phase,
    body: impl Read,
    limits: &IntakeLimits,
) -> std::result::Result<(String, String), Refusal> {
    let incoming = phase.incoming_dir();
    fs::create_dir_all(&incoming).map_err(Refusal::server)?;
    let key = new_folder_key().map_err(Refusal::server)?;
    let packed = incoming.join(format!("{key}.tar.gz"));
    let unpacked = incoming.join(&key);
    let result = receive_into(&packed, &unpacked, body, limits);
    let _ = fs::remove_file(&packed);
    match result {
        Ok(name) => Ok((key, name)),
        Err(refusal) => {
            let _ = fs::remove_dir_all(&unpacked);
            Err(refusal)
        }
    }
}

fn receive_into(
    packed: &Path,
    unpacked: &Path,
    body: impl Read,
    limits: &IntakeLimits,
) -> std::result::Result<String, Refusal> {
    let mut file = fs::File::create(packed).map_err(Refusal::server)?;
    let mut limited = body.take(limits.max_upload_bytes + 1);
    let copied = io::copy(&mut limited, &mut file)
        .map_err(|e| Refusal::new(400, format!("the upload broke off ({e}); send it again")))?;
    if copied > limits.max_upload_bytes {
        return Err(Refusal::new(
            413,
            format!(
                "the upload is larger than {} bytes, the limit; leave out what the program does not need at run time",
                limits.max_upload_bytes
            ),
        ));
    }
    file.flush().map_err(Refusal::server)?;
    drop(file);
    let archive_file = fs::File::open(packed).map_err(Refusal::server)?;
    archive::unpack(io::BufReader::new(archive_file), unpacked, &limits.unpack)
        .map_err(|refused| Refusal::new(400, refused.0))?;
    if !unpacked.join("submission.toml").is_file() {
        return Err(Refusal::new(
            400,
            "the archive has no submission.toml at its top; pack the submission folder itself (`podium submit DIR`)",
        ));
    }
    match crate::submission::Submission::load(unpacked) {
        Ok(submission) => Ok(submission.name),
        Err(e) => {
            // The message names the server's folder; the team knows it as its own.
            let text = e
                .to_string()
                .replace(&unpacked.display().to_string(), "the submission");
            Err(Refusal::new(422, format!("submission.toml: {text}")))
        }
    }
}

/// Moves a received submission into `submissions/` and queues it for `team`, checking the
/// quota again: another upload of the team may have been accepted meanwhile. The caller holds
/// the store, so the check and the queueing are one step.
pub fn queue_received(
    store: &Store,
    phase: &Phase,
    team: &Team,
    key: &str,
    name: &str,
    now: u64,
) -> std::result::Result<i64, Refusal> {
    let from = phase.incoming_dir().join(key);
    if let Err(refusal) = check_quota(store, phase, team, now) {
        let _ = fs::remove_dir_all(&from);
        return Err(refusal);
    }
    let submissions = phase.submissions_dir();
    fs::create_dir_all(&submissions).map_err(Refusal::server)?;
    let to = submissions.join(key);
    fs::rename(&from, &to).map_err(Refusal::server)?;
    store
        .enqueue(team.id, name, key, now as i64)
        .map_err(Refusal::server)
}

/// A fresh folder name: `s` and 16 random hex digits (never chosen by the team).
fn new_folder_key() -> Result<String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|e| crate::Error::msg(format!("no randomness from the operating system: {e}")))?;
    Ok(format!(
        "s{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// Removes what an interrupted intake left in `incoming/` (a server killed mid-upload).
pub fn clear_incoming(phase: &Phase) -> Result<()> {
    let incoming = phase.incoming_dir();
    if incoming.is_dir() {
        fs::remove_dir_all(&incoming)
            .map_err(|e| crate::Error::io("clear the incoming folder", &incoming, e))?;
    }
    Ok(())
}
