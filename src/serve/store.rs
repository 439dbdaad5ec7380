//! The server's state in one SQLite database (`podium.sqlite3` in the data folder): the teams
//! with the hashes of their tokens, and the submissions with their place in the queue.
//!
//! Every change is one transaction, written ahead (WAL), so a server killed at any instant
//! (`kill -9`) restarts with every submission it acknowledged: a queued one stays queued, and a
//! running one is found running and resumed (see `serve::queue`). A submission is claimed by one
//! transaction that moves it from queued to running, so it never starts twice.
//!
//! Tokens are 32 random bytes from the operating system, shown once in hex when a team is
//! added; only their SHA-256 is stored, and a presented token is compared with every stored
//! hash in constant time.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// The database file in the data folder.
pub const DATABASE: &str = "podium.sqlite3";

/// A prefix that makes a token recognisable in a log or a leaked file.
const TOKEN_PREFIX: &str = "podium_";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Team {
    pub id: i64,
    pub name: String,
    /// An organizer's token opens the organizer's pages and actions; an organizer is not a
    /// team on the leaderboard.
    pub organizer: bool,
}

/// Where a submission stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Queued,
    Running,
    Done,
    Failed,
    /// Taken off the leaderboard by the organizer.
    Disqualified,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Disqualified => "disqualified",
        }
    }

    fn parse(text: &str) -> Status {
        match text {
            "queued" => Status::Queued,
            "running" => Status::Running,
            "done" => Status::Done,
            "disqualified" => Status::Disqualified,
            _ => Status::Failed,
        }
    }
}

/// One submission as the database holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submission {
    pub id: i64,
    pub team_id: i64,
    pub team: String,
    /// The `name` of its `submission.toml`.
    pub name: String,
    /// Its folder's name under the data folder's `submissions/`, and its round's under
    /// `rounds/`.
    pub folder: String,
    pub status: Status,
    pub received_unix: i64,
    pub started_unix: Option<i64>,
    pub finished_unix: Option<i64>,
    /// Why it failed, in words the team may read.
    pub reason: Option<String>,
    /// Whether it counts against the team's quota: not when it failed on the organizers' side.
    pub counts: bool,
}

pub struct Store {
    connection: Connection,
    path: PathBuf,
}

fn db_error(path: &Path, what: &str, e: rusqlite::Error) -> Error {
    Error::msg(format!("{}: {what}: {e}", path.display()))
}

impl Store {
    /// Opens (creating it if needed) the database of the data folder `data`.
    pub fn open(data: &Path) -> Result<Store> {
        std::fs::create_dir_all(data).map_err(|e| Error::io("create the data folder", data, e))?;
        let path = data.join(DATABASE);
        let connection = Connection::open(&path).map_err(|e| db_error(&path, "open", e))?;
        // WAL: a transaction committed before a crash survives it, and readers never wait for
        // the writer. The busy timeout lets the CLI (`podium teams add`) write while a server
        // runs.
        connection
            .pragma_update(None, "journal_mode", "WAL")
            .and_then(|()| connection.pragma_update(None, "synchronous", "NORMAL"))
            .and_then(|()| connection.pragma_update(None, "foreign_keys", "ON"))
            .and_then(|()| connection.busy_timeout(std::time::Duration::from_secs(10)))
            .map_err(|e| db_error(&path, "configure", e))?;
        connection
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS teams (
                    id INTEGER PRIMARY KEY,
                    name TEXT NOT NULL UNIQUE,
                    token_sha256 BLOB NOT NULL,
                    organizer INTEGER NOT NULL,
                    created_unix INTEGER NOT NULL
                );
                CREATE TABLE IF NOT EXISTS submissions (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    team_id INTEGER NOT NULL REFERENCES teams(id),
                    name TEXT NOT NULL,
                    folder TEXT NOT NULL UNIQUE,
                    status TEXT NOT NULL,
                    received_unix INTEGER NOT NULL,
                    started_unix INTEGER,
                    finished_unix INTEGER,
                    reason TEXT,
                    counts INTEGER NOT NULL DEFAULT 1
                );
                CREATE INDEX IF NOT EXISTS submissions_by_status ON submissions(status, id);",
            )
            .map_err(|e| db_error(&path, "create the tables", e))?;
        Ok(Store { connection, path })
    }

    fn error(&self, what: &str, e: rusqlite::Error) -> Error {
        db_error(&self.path, what, e)
    }

    /// Adds a team (or an organizer) and returns its token, which is stored nowhere: the
    /// caller shows it once.
    pub fn add_team(&self, name: &str, organizer: bool, now: i64) -> Result<String> {
        check_team_name(name)?;
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)
            .map_err(|e| Error::msg(format!("no randomness from the operating system: {e}")))?;
        let token = format!("{TOKEN_PREFIX}{}", hex(&secret));
        let inserted = self.connection.execute(
            "INSERT INTO teams (name, token_sha256, organizer, created_unix) VALUES (?1, ?2, ?3, ?4)",
            params![name, sha256(&token).to_vec(), organizer, now],
        );
        match inserted {
            Ok(_) => Ok(token),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(Error::msg(format!(
                    "a team named {:?} already exists; choose another name",
                    crate::text::shown(name)
                )))
            }
            Err(e) => Err(self.error("add the team", e)),
        }
    }

    /// The team whose token this is. Every stored hash is compared, each in constant time, so
    /// the time taken says nothing about how close a guess came.
    pub fn authenticate(&self, token: &str) -> Result<Option<Team>> {
        let presented = sha256(token);
        let mut statement = self
            .connection
            .prepare_cached("SELECT id, name, organizer, token_sha256 FROM teams")
            .map_err(|e| self.error("read the teams", e))?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    Team {
                        id: row.get(0)?,
                        name: row.get(1)?,
                        organizer: row.get(2)?,
                    },
                    row.get::<_, Vec<u8>>(3)?,
                ))
            })
            .map_err(|e| self.error("read the teams", e))?;
        let mut found = None;
        for row in rows {
            let (team, hash) = row.map_err(|e| self.error("read the teams", e))?;
            if bool::from(hash.as_slice().ct_eq(presented.as_slice())) {
                found = Some(team);
            }
        }
        Ok(found)
    }

    pub fn teams(&self) -> Result<Vec<Team>> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT id, name, organizer FROM teams ORDER BY id")
            .map_err(|e| self.error("read the teams", e))?;
        let rows = statement
            .query_map([], |row| {
                Ok(Team {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    organizer: row.get(2)?,
                })
            })
            .map_err(|e| self.error("read the teams", e))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(|e| self.error("read the teams", e))
    }

    /// Queues the submission of `team_id` held in `folder` and returns its id.
    pub fn enqueue(&self, team_id: i64, name: &str, folder: &str, now: i64) -> Result<i64> {
        self.connection
            .execute(
                "INSERT INTO submissions (team_id, name, folder, status, received_unix) VALUES (?1, ?2, ?3, 'queued', ?4)",
                params![team_id, name, folder, now],
            )
            .map_err(|e| self.error("queue the submission", e))?;
        Ok(self.connection.last_insert_rowid())
    }

    /// Moves the oldest queued submission to running, in one transaction, and returns it.
    pub fn claim_next(&mut self, now: i64) -> Result<Option<Submission>> {
        let path = self.path.clone();
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| db_error(&path, "claim a submission", e))?;
        let next: Option<i64> = transaction
            .query_row(
                "SELECT id FROM submissions WHERE status = 'queued' ORDER BY id LIMIT 1",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| db_error(&path, "claim a submission", e))?;
        let Some(id) = next else {
            return Ok(None);
        };
        transaction
            .execute(
                "UPDATE submissions SET status = 'running', started_unix = ?2 WHERE id = ?1",
                params![id, now],
            )
            .map_err(|e| db_error(&path, "claim a submission", e))?;
        transaction
            .commit()
            .map_err(|e| db_error(&path, "claim a submission", e))?;
        self.submission(id)
    }

    /// Records how a running submission ended.
    pub fn finish(
        &self,
        id: i64,
        status: Status,
        reason: Option<&str>,
        counts: bool,
        now: i64,
    ) -> Result<()> {
        self.connection
            .execute(
                "UPDATE submissions SET status = ?2, reason = ?3, counts = ?4, finished_unix = ?5 WHERE id = ?1",
                params![id, status.as_str(), reason, counts, now],
            )
            .map_err(|e| self.error("record the submission's end", e))?;
        Ok(())
    }

    /// Puts a submission back in the queue (the organizer's re-run).
    pub fn requeue(&self, id: i64) -> Result<()> {
        self.connection
            .execute(
                "UPDATE submissions SET status = 'queued', started_unix = NULL, finished_unix = NULL, reason = NULL, counts = 1 WHERE id = ?1",
                params![id],
            )
            .map_err(|e| self.error("queue the submission again", e))?;
        Ok(())
    }

    pub fn submission(&self, id: i64) -> Result<Option<Submission>> {
        Ok(self.select("WHERE s.id = ?1", params![id])?.pop())
    }

    /// A team's submissions, newest first.
    pub fn submissions_of(&self, team_id: i64) -> Result<Vec<Submission>> {
        self.select("WHERE s.team_id = ?1 ORDER BY s.id DESC", params![team_id])
    }

    /// Every submission, oldest first.
    pub fn all_submissions(&self) -> Result<Vec<Submission>> {
        self.select("ORDER BY s.id", params![])
    }

    /// The submissions in a status, oldest first.
    pub fn with_status(&self, status: Status) -> Result<Vec<Submission>> {
        self.select(
            "WHERE s.status = ?1 ORDER BY s.id",
            params![status.as_str()],
        )
    }

    /// How many of a team's submissions are queued or running: not yet in a round, but already
    /// spent from its quota.
    pub fn pending(&self, team_id: i64) -> Result<usize> {
        self.connection
            .query_row(
                "SELECT COUNT(*) FROM submissions WHERE team_id = ?1 AND status IN ('queued', 'running')",
                params![team_id],
                |row| row.get::<_, i64>(0),
            )
            .map(|n| n as usize)
            .map_err(|e| self.error("count the team's submissions", e))
    }

    fn select(&self, tail: &str, values: &[&dyn rusqlite::ToSql]) -> Result<Vec<Submission>> {
        let sql = format!(
            "SELECT s.id, s.team_id, t.name, s.name, s.folder, s.status, s.received_unix,
                    s.started_unix, s.finished_unix, s.reason, s.counts
             FROM submissions s JOIN teams t ON t.id = s.team_id {tail}"
        );
        let mut statement = self
            .connection
            .prepare_cached(&sql)
            .map_err(|e| self.error("read the submissions", e))?;
        let rows = statement
            .query_map(values, |row| {
                Ok(Submission {
                    id: row.get(0)?,
                    team_id: row.get(1)?,
                    team: row.get(2)?,
                    name: row.get(3)?,
                    folder: row.get(4)?,
                    status: Status::parse(&row.get::<_, String>(5)?),
                    received_unix: row.get(6)?,
                    started_unix: row.get(7)?,
                    finished_unix: row.get(8)?,
                    reason: row.get(9)?,
                    counts: row.get(10)?,
                })
            })
            .map_err(|e| self.error("read the submissions", e))?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(|e| self.error("read the submissions", e))
    }
}

/// A team name is shown on every page: 1 to 64 characters, none of them control or invisible.
fn check_team_name(name: &str) -> Result<()> {
    let length = name.chars().count();
    if length == 0 || length > 64 || name.trim() != name {
        return Err(Error::msg(format!(
            "team name {:?}: 1 to 64 characters, without spaces at either end",
            crate::text::shown(name)
        )));
    }
    if name
        .chars()
        .any(|c| c.is_control() || crate::text::is_hidden(c))
    {
        return Err(Error::msg(format!(
            "team name {:?} has a control or invisible character",
            crate::text::shown(name)
        )));
    }
    Ok(())
}

fn sha256(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_its_own_team_only_and_is_stored_as_a_hash() {
        let data = tempfile::tempdir().unwrap();
        let store = Store::open(data.path()).unwrap();
        let a = store.add_team("Team A", false, 1).unwrap();
        let b = store.add_team("Team B", false, 2).unwrap();
        let organizer = store.add_team("Organizers", true, 3).unwrap();
        assert!(a.starts_with("podium_") && a.len() == 7 + 64 && a != b);
        assert_eq!(store.authenticate(&a).unwrap().unwrap().name, "Team A");
        assert_eq!(store.authenticate(&b).unwrap().unwrap().name, "Team B");
        assert!(store.authenticate(&organizer).unwrap().unwrap().organizer);
        assert_eq!(store.authenticate("podium_guess").unwrap(), None);
        assert_eq!(store.authenticate("").unwrap(), None);
        let file = std::fs::read(data.path().join(DATABASE)).unwrap();
        let wal = std::fs::read(data.path().join(format!("{DATABASE}-wal"))).unwrap_or_default();
        for bytes in [file, wal] {
            assert!(
                !String::from_utf8_lossy(&bytes).contains(&a[7..]),
                "no token in clear"
            );
        }
        let error = store.add_team("Team A", false, 4).unwrap_err().to_string();
        assert!(error.contains("already exists"), "{error}");
        for bad in ["", " padded", "bell\x07", "rtl\u{202e}x", &"x".repeat(65)] {
            assert!(store.add_team(bad, false, 5).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_queue_survives_a_reopen_and_a_submission_is_claimed_once() {
        let data = tempfile::tempdir().unwrap();
        let (team, first, second) = {
            let store = Store::open(data.path()).unwrap();
            store.add_team("Team A", false, 1).unwrap();
            let team = store.teams().unwrap()[0].id;
            let first = store.enqueue(team, "unet", "u1", 10).unwrap();
            let second = store.enqueue(team, "unet-v2", "u2", 11).unwrap();
            (team, first, second)
            // Dropped without any shutdown, as a killed server would be.
        };
        let mut store = Store::open(data.path()).unwrap();
        assert_eq!(store.pending(team).unwrap(), 2);
        let claimed = store.claim_next(20).unwrap().unwrap();
        assert_eq!((claimed.id, claimed.status), (first, Status::Running));
        assert_eq!(claimed.started_unix, Some(20));
        let mut other = Store::open(data.path()).unwrap();
        assert_eq!(other.claim_next(21).unwrap().unwrap().id, second);
        assert_eq!(store.claim_next(22).unwrap(), None);
        store
            .finish(
                first,
                Status::Failed,
                Some("every case timed out"),
                true,
                30,
            )
            .unwrap();
        store.finish(second, Status::Done, None, true, 31).unwrap();
        let mine = Store::open(data.path())
            .unwrap()
            .submissions_of(team)
            .unwrap();
        assert_eq!(
            mine.iter().map(|s| s.id).collect::<Vec<_>>(),
            [second, first]
        );
        assert_eq!(mine[1].reason.as_deref(), Some("every case timed out"));
        assert_eq!(store.pending(team).unwrap(), 0);
        store.requeue(first).unwrap();
        assert_eq!(store.with_status(Status::Queued).unwrap()[0].id, first);
    }
}
