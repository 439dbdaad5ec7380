//! A team's submission: a folder holding `submission.toml`.
//!
//! ```toml
//! name = "threshold-baseline"          # letters, digits, '-', '_', '.'
//! final = true                         # optional: the team's final selection
//!
//! [run]
//! kind = "process"
//! command = [".build/bin/threshold-baseline", "{input}", "{output}"]
//! build = ["cargo", "install", "--path", "."]   # optional, run once before the round
//! mode = "per-case"                    # or "worker": started once per slot (docs/contract.md)
//! ```
//!
//! or, for a Docker image (docs/docker.md):
//!
//! ```toml
//! [run]
//! kind = "docker"
//! image = "team/model@sha256:…"        # or image_archive = "model.tar.gz" (`docker save`)
//! command = ["/input", "/output"]      # optional: replaces the image's CMD
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmissionFile {
    /// What the team says it is called. Shown when the organizer's registry has no entry for
    /// the folder in a trusted run (the demo, a test); never used to decide who a submission
    /// belongs to in `podium run` ([`Registry`]).
    #[serde(default)]
    team: Option<String>,
    name: String,
    #[serde(default)]
    description: String,
    /// Only honoured for podium's own examples and in trusted library use: in `podium run`
    /// the organizer's registry decides what is a baseline.
    #[serde(default)]
    baseline: bool,
    /// The team's final selection, Kaggle style: the phase leaderboard counts the team's
    /// submissions marked final instead of its best or latest.
    #[serde(default, rename = "final")]
    final_selection: bool,
    run: RunSpec,
}

/// How to run a submission; one variant per backend kind.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum RunSpec {
    /// A native program started as a child process, once per case.
    Process {
        /// Program and arguments. `{input}` and `{output}` are replaced by the case's folders;
        /// a program path containing `/` is relative to the submission folder.
        command: Vec<String>,
        /// Run once in the submission folder before the first case (for example a build).
        #[serde(default)]
        build: Vec<String>,
        /// `per-case` (the default): one process per case. `worker`: one process per slot
        /// that loads once and serves many cases over a line protocol (docs/contract.md,
        /// "Worker mode").
        #[serde(default)]
        mode: RunMode,
    },
    /// A Docker image, run once per case in a fresh container with the case at `/input`
    /// (read-only) and an empty `/output`.
    Docker {
        /// A reference the engine knows: `team/model:tag` or `team/model@sha256:…`. Pulled
        /// only when the engine does not have it.
        #[serde(default)]
        image: Option<String>,
        /// The output of `docker save` (optionally gzipped), relative to the submission folder;
        /// podium loads it before the round.
        #[serde(default)]
        image_archive: Option<PathBuf>,
        /// Replaces the image's CMD (its ENTRYPOINT is kept). `{input}` and `{output}` become
        /// `/input` and `/output`.
        #[serde(default)]
        command: Vec<String>,
    },
}

/// How many cases one start of a program serves.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RunMode {
    /// A fresh process for every case.
    #[default]
    PerCase,
    /// One process per slot, started once and handed cases over stdin (docs/contract.md,
    /// "Worker mode: models that load once").
    Worker,
}

impl RunSpec {
    /// The run mode: only a native program can be a worker.
    pub fn mode(&self) -> RunMode {
        match self {
            RunSpec::Process { mode, .. } => *mode,
            RunSpec::Docker { .. } => RunMode::PerCase,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            RunSpec::Process { .. } => "process",
            RunSpec::Docker { .. } => "docker",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Submission {
    pub dir: PathBuf,
    /// The team it belongs to. [`Submission::load`] fills in what the folder claims (or the
    /// folder's name); an organizer's round replaces it through [`Registry::assign`].
    pub team: String,
    pub name: String,
    pub description: String,
    /// Shown beside the teams but not ranked, and outside every quota; decided like `team`.
    pub baseline: bool,
    /// `final = true`: the team's final selection (docs/ranking.md, "Rounds").
    pub final_selection: bool,
    pub run: RunSpec,
}

impl Submission {
    pub fn load(dir: &Path) -> Result<Submission> {
        let file = dir.join("submission.toml");
        let text = std::fs::read_to_string(&file).map_err(|e| Error::io("read", &file, e))?;
        let def: SubmissionFile = toml::from_str(&text)
            .map_err(|e| Error::msg(format!("{}: {}", file.display(), e.to_string().trim_end())))?;
        if !crate::ids::is_safe_name(&def.name) {
            return Err(Error::msg(format!(
                "{}: `name` = {:?} must be 1-64 letters, digits, '-', '_' or '.', since it names folders of the report",
                file.display(),
                def.name
            )));
        }
        match &def.run {
            RunSpec::Process { command, .. } if command.is_empty() => {
                return Err(Error::msg(format!(
                    "{}: [run] command is empty; give the program and its arguments, for example [\"./predict\", \"{{input}}\", \"{{output}}\"]",
                    file.display()
                )))
            }
            RunSpec::Docker {
                image,
                image_archive,
                ..
            } => match (image, image_archive) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(Error::msg(format!(
                        "{}: [run] kind = \"docker\" needs exactly one of `image` (\"team/model:tag\" or \"team/model@sha256:...\") and `image_archive` (a file made by `docker save`)",
                        file.display()
                    )))
                }
                (None, Some(archive)) if !dir.join(archive).is_file() => {
                    return Err(Error::msg(format!(
                        "{}: [run] image_archive = {:?} is not a file in {}; create it with `docker save -o {} <image>`",
                        file.display(),
                        archive,
                        dir.display(),
                        archive.display()
                    )))
                }
                _ => {}
            },
            _ => {}
        }
        if let RunSpec::Docker {
            image_archive: Some(archive),
            ..
        } = &def.run
        {
            // The archive must be the submission's own file: an absolute path or `..` could
            // load another team's image, or any file of the machine.
            let inside = archive
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            let canonical_inside = std::fs::canonicalize(dir.join(archive))
                .ok()
                .zip(std::fs::canonicalize(dir).ok())
                .is_some_and(|(a, d)| a.starts_with(d));
            if !inside || !canonical_inside {
                return Err(Error::msg(format!(
                    "{}: [run] image_archive = {:?} must name a file inside the submission folder (a relative path without `..` or links out of it)",
                    file.display(),
                    archive
                )));
            }
        }
        let dir = std::fs::canonicalize(dir).map_err(|e| Error::io("resolve", dir, e))?;
        let folder = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Submission {
            dir,
            team: def.team.unwrap_or(folder),
            name: def.name,
            description: def.description,
            baseline: def.baseline,
            final_selection: def.final_selection,
            run: def.run,
        })
    }

    /// `dir` is one submission (it holds submission.toml) or a folder of submissions, one per
    /// subfolder. Submissions come back sorted by name; a folder that cannot be loaded, or
    /// whose name another folder took first, is an error.
    pub fn discover(dir: &Path) -> Result<Vec<Submission>> {
        let (found, refused) = Submission::discover_each(dir)?;
        if !refused.is_empty() {
            return Err(Error::List(
                refused.into_iter().map(|r| r.to_string()).collect(),
            ));
        }
        Ok(found)
    }

    /// Like [`Submission::discover`], but one submission's problem refuses that submission
    /// alone: the others come back with the list of refusals. A name used by several folders
    /// stays with the first folder (in path order); the later ones are refused. Fails only
    /// when the folder cannot be listed or holds no submission at all.
    pub fn discover_each(dir: &Path) -> Result<(Vec<Submission>, Vec<Refused>)> {
        if dir.join("submission.toml").is_file() {
            return Ok((vec![Submission::load(dir)?], Vec::new()));
        }
        let entries =
            std::fs::read_dir(dir).map_err(|e| Error::io("list the submissions folder", dir, e))?;
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("submission.toml").is_file())
            .collect();
        dirs.sort();
        if dirs.is_empty() {
            return Err(Error::msg(format!(
                "{} holds no submission: expected submission.toml in it or in its subfolders",
                dir.display()
            )));
        }
        let mut found: Vec<Submission> = Vec::new();
        let mut refused = Vec::new();
        for sub_dir in dirs {
            match Submission::load(&sub_dir) {
                Ok(s) => match found.iter().find(|f| f.name == s.name) {
                    Some(first) => refused.push(Refused {
                        dir: sub_dir,
                        reason: format!(
                            "its name {:?} is already taken by {}; names must be unique",
                            s.name,
                            first.dir.display()
                        ),
                    }),
                    None => found.push(s),
                },
                Err(e) => refused.push(Refused {
                    dir: sub_dir,
                    reason: e.to_string(),
                }),
            }
        }
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((found, refused))
    }

    /// [`Submission::discover_each`] of every folder of `dirs` (`--submissions`, repeated), in
    /// order: a submission whose name one of an earlier folder took is refused too, and a
    /// folder given twice counts once.
    pub fn discover_all(dirs: &[PathBuf]) -> Result<(Vec<Submission>, Vec<Refused>)> {
        let mut found: Vec<Submission> = Vec::new();
        let mut refused = Vec::new();
        for dir in dirs {
            let (submissions, refused_here) = Submission::discover_each(dir)?;
            refused.extend(refused_here);
            for s in submissions {
                match found.iter().find(|f| f.name == s.name) {
                    Some(first) if same_folder(&first.dir, &s.dir) => {}
                    Some(first) => refused.push(Refused {
                        reason: format!(
                            "its name {:?} is already taken by {}; names must be unique",
                            s.name,
                            first.dir.display()
                        ),
                        dir: s.dir,
                    }),
                    None => found.push(s),
                }
            }
        }
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((found, refused))
    }

    /// The name of the submission's folder: chosen by the organizer, unlike `name`.
    pub fn folder_name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// A submission folder left out of a round, and why.
#[derive(Clone, Debug)]
pub struct Refused {
    pub dir: PathBuf,
    pub reason: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}: {}", self.dir.display(), self.reason)
    }
}

/// Who a submission belongs to, as the organizer decided it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub team: String,
    pub baseline: bool,
}

/// The organizer's registry of who sent what: `teams.toml` beside `challenge.toml` (or
/// `podium run --teams FILE`). podium never takes a team or a baseline flag from a team's own
/// `submission.toml`, which could name another team (to spend its quota or replace its final
/// selection) or claim to be a baseline (outside every quota).
///
/// ```toml
/// baselines = ["threshold-baseline"]   # submission folders that are the organizers' baselines
///
/// [teams]                              # submission folder = team
/// rai-unet-0412 = "Radiology AI Lab"
/// ctv-v3 = "CT Vision"
/// ```
///
/// Keys are the names of the submission folders, which the organizer chooses when it stores an
/// upload. A folder the registry does not list is its own team, named after the folder.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    #[serde(default)]
    baselines: Vec<String>,
    #[serde(default)]
    teams: BTreeMap<String, String>,
    /// Where it was read from, for messages.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

impl Registry {
    pub fn load(path: &Path) -> Result<Registry> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        let mut registry: Registry = toml::from_str(&text).map_err(|e| {
            Error::msg(format!(
                "{}: {} (expected `baselines = [\"folder\", ...]` and a [teams] table of folder = \"team\")",
                path.display(),
                e.to_string().trim_end()
            ))
        })?;
        registry.source = Some(path.to_path_buf());
        Ok(registry)
    }

    /// `explicit` (`--teams`), else `teams.toml` in the challenge folder, else an empty registry.
    pub fn find(explicit: Option<&Path>, challenge_dir: &Path) -> Result<Registry> {
        match explicit {
            Some(path) => Registry::load(path),
            None => {
                let beside = challenge_dir.join("teams.toml");
                if beside.is_file() {
                    Registry::load(&beside)
                } else {
                    Ok(Registry::default())
                }
            }
        }
    }

    /// The identity of the submission held in `folder`.
    pub fn identity_of(&self, folder: &str) -> Identity {
        Identity {
            team: self
                .teams
                .get(folder)
                .cloned()
                .unwrap_or_else(|| folder.to_string()),
            baseline: self.baselines.iter().any(|b| b == folder),
        }
    }

    /// Gives each submission the identity the registry decides, whatever its file claims.
    /// Returns a note per submission whose claim was overruled, for the organizer.
    pub fn assign(&self, submissions: &mut [Submission]) -> Vec<String> {
        let mut notes = Vec::new();
        for s in submissions {
            let identity = self.identity_of(&s.folder_name());
            if s.team != identity.team || s.baseline != identity.baseline {
                notes.push(format!(
                    "{}: submission.toml claims team {:?}{}; podium uses the organizer's: team {:?}{}",
                    s.name,
                    s.team,
                    if s.baseline { " and baseline" } else { "" },
                    identity.team,
                    if identity.baseline { ", baseline" } else { "" }
                ));
            }
            s.apply(&identity);
        }
        notes
    }
}

impl Submission {
    pub fn identity(&self) -> Identity {
        Identity {
            team: self.team.clone(),
            baseline: self.baseline,
        }
    }

    pub fn apply(&mut self, identity: &Identity) {
        self.team = identity.team.clone();
        self.baseline = identity.baseline;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unknown_keys_and_unsafe_names() {
        let dir = tempfile::tempdir().unwrap();
        let write = |text: &str| std::fs::write(dir.path().join("submission.toml"), text).unwrap();
        write("team='t'\nname='a'\n[run]\nkind='process'\ncommand=['x']\ncomand=['y']\n");
        let err = Submission::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("comand"), "{err}");
        write("team='t'\nname='../a'\n[run]\nkind='process'\ncommand=['x']\n");
        let err = Submission::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("`name`"), "{err}");
        write("team='t'\nname='a'\n[run]\nkind='process'\ncommand=['./x', '{input}']\n");
        let s = Submission::load(dir.path()).unwrap();
        assert_eq!(
            s.run,
            RunSpec::Process {
                command: vec!["./x".into(), "{input}".into()],
                build: vec![],
                mode: RunMode::PerCase,
            }
        );
        write("team='t'\nname='a'\n[run]\nkind='process'\ncommand=['./x']\nmode='worker'\n");
        assert_eq!(
            Submission::load(dir.path()).unwrap().run.mode(),
            RunMode::Worker
        );
        write("team='t'\nname='a'\n[run]\nkind='process'\ncommand=['./x']\nmode='server'\n");
        let err = Submission::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("per-case") && err.contains("worker"), "{err}");
    }
}
