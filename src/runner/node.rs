//! `podium exec-case BATCH.json`: the part of a round that runs on a cluster node, inside a
//! Slurm job (docs/slurm.md).
//!
//! The organizer's podium ([`super::slurm`]) writes one batch file per job: the submission's
//! folder, the limits, and per case where its input is, where its output, logs and result go.
//! Here each case runs with the same local backend a round on one machine would use (the
//! sandbox, or the node's Docker engine), and its [`CaseResult`] is written next to the batch,
//! atomically, as soon as the case ends. The organizer's podium collects the outputs and checks
//! them exactly as for a local case, so a round gives the same results wherever it ran.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{select_backend, BackendKind, CaseJob, Execution};
use crate::challenge::Limits;
use crate::error::{Error, Result};
use crate::submission::{RunSpec, Submission};

/// One job's work: some cases of one submission.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BatchSpec {
    /// The round's id: with the Slurm job's, it labels what the job leaves outside its own
    /// processes (containers), so that a cancelled job removes exactly its own.
    #[serde(default)]
    pub run_id: String,
    pub submission_dir: PathBuf,
    pub limits: Limits,
    pub hidden_phase: bool,
    pub allow_unisolated: bool,
    pub node_backend: BackendKind,
    pub cases: Vec<CaseSpec>,
}

/// Where one case's files are, on the shared file system.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseSpec {
    pub case_id: String,
    /// Holds `cases.csv` with this one case and its image.
    pub input_dir: PathBuf,
    /// Created empty by the job; the program writes its predictions here.
    pub output_dir: PathBuf,
    pub stdout_log: PathBuf,
    pub stderr_log: PathBuf,
    /// Where the [`CaseResult`] goes.
    pub result: PathBuf,
}

/// How one case ran on the node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseResult {
    pub case_id: String,
    /// The node's host name, for the organizer.
    pub host: String,
    pub backend: String,
    pub execution: Execution,
}

impl CaseResult {
    pub fn read(path: &Path) -> Option<CaseResult> {
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// Writes `value` as JSON to `path` through a temporary file and a rename, so that a reader
/// never sees half a file.
pub fn write_atomically<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::msg(e.to_string()))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(|e| Error::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("rename", &tmp, e))
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Runs every case of the batch that has no result yet (a batch submitted again after a node
/// failure skips what the lost job finished). A case that cannot run gets a failed result, so
/// the organizer's podium always learns why.
pub fn exec_batch(batch_file: &Path) -> Result<()> {
    let text = std::fs::read_to_string(batch_file).map_err(|e| Error::io("read", batch_file, e))?;
    let spec: BatchSpec = serde_json::from_str(&text)
        .map_err(|e| Error::msg(format!("{}: {e}", batch_file.display())))?;
    let host = host_name();
    let fail_all = |message: String| -> Result<()> {
        for case in &spec.cases {
            if !case.result.exists() {
                write_atomically(
                    &case.result,
                    &CaseResult {
                        case_id: case.case_id.clone(),
                        host: host.clone(),
                        backend: String::new(),
                        execution: Execution::not_started(message.clone()),
                    },
                )?;
            }
        }
        Ok(())
    };
    let submission = match Submission::load(&spec.submission_dir) {
        Ok(s) => s,
        Err(e) => return fail_all(format!("the node could not read the submission: {e}")),
    };
    let selected = match select_backend(
        spec.node_backend,
        spec.hidden_phase,
        spec.allow_unisolated,
        std::slice::from_ref(&submission),
    ) {
        Ok(s) => s,
        Err(e) => return fail_all(format!("no backend on node {host}: {e}")),
    };
    let backend = selected.backend;
    let job = std::env::var("SLURM_JOB_ID").unwrap_or_else(|_| std::process::id().to_string());
    let batch_dir = batch_file.parent().unwrap_or(Path::new("."));
    if let Err(e) = backend.start_round(&format!("{}-{job}", spec.run_id), batch_dir) {
        return fail_all(format!("no backend on node {host}: {e}"));
    }
    // A native submission was built once, by the organizer's podium, into the shared folder.
    // An image has to be on this node's engine.
    if matches!(submission.run, RunSpec::Docker { .. }) {
        let log = spec
            .cases
            .first()
            .map(|c| c.stderr_log.with_file_name(format!("prepare-{host}.log")))
            .unwrap_or_else(|| batch_file.with_extension("prepare.log"));
        if let Err(e) = backend.prepare(&submission, &log, &spec.limits) {
            return fail_all(format!("preparing the image on node {host} failed: {e}"));
        }
    }
    // The GPUs Slurm gave the job (`--gres=gpu:N`), for the node's sandbox to bind. Slurm
    // lists them by its own index of the node's GPU records, taken here for minor numbers:
    // they agree where the records follow their files /dev/nvidia0, 1, … in order, as
    // Slurm sorts the ones it detects, but nothing guarantees it (docs/slurm.md). Where Slurm
    // constrains the job's devices, a GPU taken by mistake cannot be opened, and the pool,
    // which asks NVML for each GPU's UUID, stops the job's cases with a message instead.
    let gpus = match (spec.limits.gpus, std::env::var("SLURM_JOB_GPUS")) {
        (0, _) | (_, Err(_)) => None,
        (n, Ok(list)) => {
            let root = super::gpus::GpuPool::device_root();
            let pool = super::gpus::GpuPool::parse_list(&list, &root)
                .and_then(|devices| super::gpus::GpuPool::new(devices, n, root));
            match pool {
                Ok(pool) => Some(pool),
                Err(e) => return fail_all(format!("the GPUs Slurm gave on node {host}: {e}")),
            }
        }
    };
    for case in &spec.cases {
        if case.result.exists() {
            continue;
        }
        let _ = std::fs::remove_dir_all(&case.output_dir);
        let execution = match std::fs::create_dir_all(&case.output_dir) {
            Err(e) => Execution::not_started(format!(
                "podium could not create the output folder on node {host}: {e}"
            )),
            Ok(()) => {
                let job = CaseJob {
                    submission: &submission,
                    case_id: case.case_id.clone(),
                    input_dir: case.input_dir.clone(),
                    image: case
                        .input_dir
                        .join("images")
                        .join(format!("{}.nii.gz", case.case_id)),
                    output_dir: case.output_dir.clone(),
                    stdout_log: case.stdout_log.clone(),
                    stderr_log: case.stderr_log.clone(),
                    remaining_budget_s: spec.limits.wall_time_per_submission_s,
                    slot: 0,
                    gpus: gpus
                        .as_ref()
                        .map(|p| p.for_slot(0).to_vec())
                        .unwrap_or_default(),
                    gpu_nodes: gpus
                        .as_ref()
                        .map(|p| p.nodes_for_slot(0))
                        .unwrap_or_default(),
                };
                // The job's GPUs are its own and its cases run one after another, so the
                // node measures them as a slot of a local round does.
                super::gpu_monitor::run_watched(&job, false, || {
                    backend.run_case(&job, &spec.limits)
                })
            }
        };
        write_atomically(
            &case.result,
            &CaseResult {
                case_id: case.case_id.clone(),
                host: host.clone(),
                backend: backend.name().to_string(),
                execution,
            },
        )?;
    }
    Ok(())
}
