//! `run.json`, the receipt of a round: what was run, on what, with which limits and settings.
//! The pipeline fills it; the reports show it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::challenge::split::CaseSelection;

/// `run.json`: what was run, on what, with which limits and settings, so a result can be
/// traced and reproduced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Receipt {
    pub podium_version: String,
    pub challenge: String,
    pub challenge_dir: PathBuf,
    pub phase: String,
    /// The phase is hidden: teams never see its truth, nor anything that would reveal it.
    #[serde(default)]
    pub hidden: bool,
    pub truth_dir: PathBuf,
    pub started_unix: u64,
    pub started_utc: String,
    pub finished_unix: u64,
    pub backend: Option<String>,
    /// How the submissions were isolated (empty for `podium score`).
    pub isolation: Option<String>,
    pub limits: crate::challenge::Limits,
    /// The `[limits]` keys the backend enforced; the others are declared but not enforced by it.
    pub limits_enforced: Vec<String>,
    pub scoring: crate::challenge::ScoringSettings,
    /// The ranking method (after any command-line override), weights, bootstrap and tests.
    pub ranking: crate::challenge::RankingSettings,
    /// The cases scored: `all`, or the `public` or `private` split of the phase.
    pub selection: CaseSelection,
    pub cases_scored: usize,
    pub phase_cases: usize,
    /// Set for a partial result of an interrupted round (`rescore --allow-incomplete`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<crate::results::Incomplete>,
    /// Cases of the selection left out of scoring, for every submission, because the organizer
    /// accepted leaving out their broken truth or image (`--leave-out-bad-truth`), with why.
    #[serde(default)]
    pub cases_left_out: Vec<crate::results::LeftOutCase>,
    pub confidence_intervals: String,
    pub submissions: Vec<ReceiptSubmission>,
    pub host: Host,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReceiptSubmission {
    pub name: String,
    pub team: String,
    pub dir: PathBuf,
    pub run: String,
    pub baseline: bool,
    /// `final = true` in submission.toml: the team's final selection.
    pub final_selection: bool,
    /// What the backend resolved, such as the image id a Docker submission ran (so a tag that
    /// moved between two rounds shows here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Host {
    pub os: String,
    pub arch: String,
    pub cpus: usize,
}
