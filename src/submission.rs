//! A team's submission: a folder holding `submission.toml`.
//!
//! ```toml
//! team = "Radiology AI Lab"
//! name = "threshold-baseline"          # letters, digits, '-', '_', '.'
//! baseline = true                      # flagged on leaderboards
//!
//! [run]
//! kind = "process"
//! command = [".build/bin/threshold-baseline", "{input}", "{output}"]
//! build = ["cargo", "install", "--path", "."]   # optional, run once before the round
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

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmissionFile {
    team: String,
    name: String,
    #[serde(default)]
    description: String,
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

impl RunSpec {
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
    pub team: String,
    pub name: String,
    pub description: String,
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
        let dir = std::fs::canonicalize(dir).map_err(|e| Error::io("resolve", dir, e))?;
        Ok(Submission {
            dir,
            team: def.team,
            name: def.name,
            description: def.description,
            baseline: def.baseline,
            final_selection: def.final_selection,
            run: def.run,
        })
    }

    /// `dir` is one submission (it holds submission.toml) or a folder of submissions, one per
    /// subfolder. Submissions come back sorted by name; two with one name are an error.
    pub fn discover(dir: &Path) -> Result<Vec<Submission>> {
        if dir.join("submission.toml").is_file() {
            return Ok(vec![Submission::load(dir)?]);
        }
        let entries =
            std::fs::read_dir(dir).map_err(|e| Error::io("list the submissions folder", dir, e))?;
        let mut found = Vec::new();
        let mut problems = Vec::new();
        let mut dirs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("submission.toml").is_file())
            .collect();
        dirs.sort();
        for sub_dir in dirs {
            match Submission::load(&sub_dir) {
                Ok(s) => found.push(s),
                Err(e) => problems.push(e.to_string()),
            }
        }
        if !problems.is_empty() {
            return Err(Error::List(problems));
        }
        if found.is_empty() {
            return Err(Error::msg(format!(
                "{} holds no submission: expected submission.toml in it or in its subfolders",
                dir.display()
            )));
        }
        found.sort_by(|a, b| a.name.cmp(&b.name));
        for pair in found.windows(2) {
            if pair[0].name == pair[1].name {
                return Err(Error::msg(format!(
                    "two submissions are named {:?}: {} and {}; names must be unique",
                    pair[0].name,
                    pair[0].dir.display(),
                    pair[1].dir.display()
                )));
            }
        }
        Ok(found)
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
                build: vec![]
            }
        );
    }
}
