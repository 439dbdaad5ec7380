//! Choosing the backend of a round: isolated when the machine allows it, and never silently
//! less. A hidden phase is only run without isolation when the organizer says so.
//!
//! The kind of a submission decides between the native backends (sandbox or process, for
//! `kind = "process"`) and the docker backend (`kind = "docker"`); a round may mix both, and
//! [`RoundBackends`] routes each submission to its own.

use std::path::Path;

use super::docker::DockerBackend;
use super::process::ProcessBackend;
use super::sandbox::SandboxBackend;
use super::{Backend, CaseJob, Execution};
use crate::challenge::{BackendKind, Limits};
use crate::error::{Error, Result};
use crate::submission::{RunSpec, Submission};

pub struct SelectedBackend {
    pub backend: Box<dyn Backend>,
    /// Said loudly in the terminal, and kept in run.json: what is not isolated or not limited.
    pub warning: Option<String>,
}

/// Picks the backends of a round's submissions: the native one of `kind` for binaries (only if
/// there are any), the Docker engine for images. `hidden_phase` and `allow_unisolated` decide
/// whether running binaries without isolation is allowed at all.
pub fn select_backend(
    kind: BackendKind,
    hidden_phase: bool,
    allow_unisolated: bool,
    submissions: &[Submission],
) -> Result<SelectedBackend> {
    let needs_docker: Vec<&str> = submissions
        .iter()
        .filter(|s| matches!(s.run, RunSpec::Docker { .. }))
        .map(|s| s.name.as_str())
        .collect();
    let needs_native = submissions
        .iter()
        .any(|s| !matches!(s.run, RunSpec::Docker { .. }));
    let (native, warning) = if needs_native {
        let selected = select_native(kind, hidden_phase, allow_unisolated)?;
        (Some(selected.backend), selected.warning)
    } else {
        (None, None)
    };
    let docker = if needs_docker.is_empty() {
        None
    } else {
        let docker = DockerBackend::connect().map_err(|e| {
            Error::msg(format!(
                "{} {} a Docker image, but {e}",
                needs_docker.join(", "),
                if needs_docker.len() == 1 { "is" } else { "are" }
            ))
        })?;
        docker
            .remove_containers_on_interrupt()
            .map_err(Error::msg)?;
        Some(docker)
    };
    let backend: Box<dyn Backend> = match (native, docker) {
        (Some(native), None) => native,
        (None, Some(docker)) => Box::new(docker),
        (native, docker) => Box::new(RoundBackends { native, docker }),
    };
    Ok(SelectedBackend { backend, warning })
}

/// Routes each submission to the backend of its kind.
pub struct RoundBackends {
    pub native: Option<Box<dyn Backend>>,
    pub docker: Option<DockerBackend>,
}

impl RoundBackends {
    fn of(&self, submission: &Submission) -> Option<&dyn Backend> {
        match submission.run {
            RunSpec::Docker { .. } => self.docker.as_ref().map(|d| d as &dyn Backend),
            RunSpec::Process { .. } => self.native.as_deref(),
        }
    }

    fn each(&self) -> impl Iterator<Item = &dyn Backend> {
        self.native
            .as_deref()
            .into_iter()
            .chain(self.docker.as_ref().map(|d| d as &dyn Backend))
    }
}

impl Backend for RoundBackends {
    fn name(&self) -> &'static str {
        match self.native.as_ref().map(|n| n.name()) {
            Some("sandbox") if self.docker.is_some() => "sandbox+docker",
            Some("process") if self.docker.is_some() => "process+docker",
            Some(native) => native,
            None => "docker",
        }
    }

    /// The limits every backend of the round enforces (docker enforces a superset of the
    /// native backends' limits).
    fn enforced_limits(&self) -> &'static [&'static str] {
        match &self.native {
            Some(native) => native.enforced_limits(),
            None => self.docker.as_ref().map_or(&[], |d| d.enforced_limits()),
        }
    }

    fn isolation(&self) -> String {
        self.each()
            .map(|b| format!("{}: {}", b.name(), b.isolation()))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn finish_round(&self) {
        self.each().for_each(|b| b.finish_round());
    }

    fn start_round(&self, run_id: &str, out: &Path) -> std::result::Result<(), String> {
        self.each().try_for_each(|b| b.start_round(run_id, out))
    }

    fn prepare(
        &self,
        submission: &Submission,
        log: &Path,
        limits: &Limits,
    ) -> std::result::Result<(), String> {
        match self.of(submission) {
            Some(b) => b.prepare(submission, log, limits),
            None => Err(super::wrong_kind(submission)),
        }
    }

    fn copies_input(&self, submission: &Submission) -> bool {
        self.of(submission)
            .is_some_and(|b| b.copies_input(submission))
    }

    fn run_case(&self, job: &CaseJob, limits: &Limits) -> Execution {
        match self.of(job.submission) {
            Some(b) => b.run_case(job, limits),
            None => Execution::not_started(super::wrong_kind(job.submission)),
        }
    }

    fn submission_details(&self, submission: &str) -> Option<serde_json::Value> {
        self.each().find_map(|b| b.submission_details(submission))
    }

    /// Workers are native programs: the native backend starts them.
    fn start_worker(
        &self,
        start: &super::worker::WorkerStart,
        limits: &Limits,
    ) -> std::result::Result<super::worker::Spawned, String> {
        match self.of(start.submission) {
            Some(b) => b.start_worker(start, limits),
            None => Err(super::wrong_kind(start.submission)),
        }
    }

    fn runs_workers(&self) -> bool {
        self.native.as_ref().is_some_and(|n| n.runs_workers())
    }
}

/// The Slurm backend, with the challenge's `[cluster]` settings or Slurm's defaults.
pub fn select_slurm(
    settings: Option<&crate::challenge::ClusterSettings>,
    hidden_phase: bool,
    allow_unisolated: bool,
) -> Result<SelectedBackend> {
    let settings = settings.cloned().unwrap_or_default();
    // The nodes run this very binary, so it must sit on a path they share.
    let podium = std::env::current_exe()
        .map_err(|e| Error::msg(format!("cannot find podium's own binary: {e}")))?;
    let backend =
        super::slurm::SlurmBackend::connect(settings, hidden_phase, allow_unisolated, &podium)
            .map_err(|e| Error::msg(format!("--backend slurm: {e}")))?;
    Ok(SelectedBackend {
        backend: Box::new(backend),
        warning: None,
    })
}

/// The backend for native programs.
fn select_native(
    kind: BackendKind,
    hidden_phase: bool,
    allow_unisolated: bool,
) -> Result<SelectedBackend> {
    let unisolated = |reason: String| -> Result<SelectedBackend> {
        if hidden_phase && !allow_unisolated {
            return Err(Error::msg(format!(
                "refusing to run a hidden phase without isolation: {reason}. Install bubblewrap (apt-get install bubblewrap) so podium can sandbox the submissions, or pass --allow-unisolated to run them as plain processes with rlimits only"
            )));
        }
        Ok(SelectedBackend {
            backend: Box::new(ProcessBackend),
            warning: Some(format!(
                "submissions run WITHOUT ISOLATION (process backend, rlimits only: no memory, CPU, process or network limits; a submission could read any file podium can): {reason}"
            )),
        })
    };
    match kind {
        BackendKind::Slurm => Err(Error::msg(
            "--backend slurm hands a round to a cluster: use it with `podium run`",
        )),
        BackendKind::Process => unisolated("--backend process was chosen".into()),
        BackendKind::Sandbox | BackendKind::Auto => match SandboxBackend::probe_isolation_only() {
            Ok(sandbox) => {
                let warning = sandbox.cgroup_problem().map(|p| format!("submissions are isolated, but {p}"));
                Ok(SelectedBackend { backend: Box::new(sandbox), warning })
            }
            Err(reason) if kind == BackendKind::Sandbox => Err(Error::msg(format!(
                "--backend sandbox is not available here: {reason}. Install bubblewrap (apt-get install bubblewrap) and allow unprivileged user namespaces"
            ))),
            Err(reason) => unisolated(format!("the sandbox is not available: {reason}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hidden_phase_is_never_run_unisolated_unless_the_organizer_allows_it() {
        let err = select_native(BackendKind::Process, true, false)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("refusing to run a hidden phase without isolation")
                && err.contains("--allow-unisolated"),
            "{err}"
        );
        let allowed = select_native(BackendKind::Process, true, true).unwrap();
        assert_eq!(allowed.backend.name(), "process");
        assert!(allowed.warning.unwrap().contains("WITHOUT ISOLATION"));
        // A public phase (a team's rehearsal) may run unisolated, but never silently.
        let public = select_native(BackendKind::Process, false, false).unwrap();
        assert!(public.warning.is_some());
    }
}
