//! How each case of a round ran, as the round's journal `runs.csv` records it: what the
//! runner writes, and scoring and the reports read.

use serde::{Deserialize, Serialize};

use super::CaseStatus;

/// The record of one case, as written to `runs.csv`.
#[derive(Clone, Debug, Serialize)]
pub struct CaseRecord {
    pub submission: String,
    pub case_id: String,
    pub status: CaseStatus,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub wall_s: f64,
    pub cpu_s: Option<f64>,
    pub peak_memory_mib: Option<f64>,
    /// For the organizer: podium's message and the program's last stderr line.
    pub message: String,
    /// For the team: on a hidden phase, podium's message alone, never the program's output
    /// (which could carry what it read); on a public phase, the same as `message`.
    pub team_message: String,
    /// `runs.csv`'s GPU columns.
    pub gpu: GpuUsage,
}

/// What a case's GPUs did while it ran; in `runs.csv` as `gpus`, `gpu_time_s`,
/// `gpu_peak_memory_mib` and `gpus_used`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuUsage {
    /// The GPUs the case was given (the K of `/dev/nvidia<K>`); empty without GPUs.
    pub gpus: Vec<u32>,
    /// An estimate of the time kernels ran, summed over the case's GPUs: at each reading, the
    /// share of the last period NVML says a kernel was running, times the time since the
    /// previous reading. Empty where the driver cannot say.
    pub time_s: Option<f64>,
    /// The most memory the case's GPUs held together, above what they held when it started.
    /// Empty where the driver cannot say.
    pub peak_memory_mib: Option<f64>,
    /// Of `gpus`, those that held memory for the case at some reading; meaningful only where
    /// `peak_memory_mib` is given.
    pub used: Vec<u32>,
}
