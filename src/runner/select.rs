//! Choosing the backend of a round: isolated when the machine allows it, and never silently
//! less. A hidden phase is only run without isolation when the organizer says so.

use serde::{Deserialize, Serialize};

use super::process::ProcessBackend;
use super::sandbox::SandboxBackend;
use super::Backend;
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// The sandbox when bubblewrap works here, otherwise the process backend (with a warning,
    /// and on a hidden phase only with --allow-unisolated).
    Auto,
    /// bubblewrap namespaces and per-case cgroups (docs/sandbox.md).
    Sandbox,
    /// Plain child processes with rlimits only: no isolation.
    Process,
}

pub struct SelectedBackend {
    pub backend: Box<dyn Backend>,
    /// Said loudly in the terminal, and kept in run.json: what is not isolated or not limited.
    pub warning: Option<String>,
}

/// Picks the backend. `hidden_phase` and `allow_unisolated` decide whether running without
/// isolation is allowed at all.
pub fn select_backend(
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
        let err = select_backend(BackendKind::Process, true, false)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("refusing to run a hidden phase without isolation")
                && err.contains("--allow-unisolated"),
            "{err}"
        );
        let allowed = select_backend(BackendKind::Process, true, true).unwrap();
        assert_eq!(allowed.backend.name(), "process");
        assert!(allowed.warning.unwrap().contains("WITHOUT ISOLATION"));
        // A public phase (a team's rehearsal) may run unisolated, but never silently.
        let public = select_backend(BackendKind::Process, false, false).unwrap();
        assert!(public.warning.is_some());
    }
}
