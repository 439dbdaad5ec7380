//! Settings a challenge declares (or podium fixes for it) that the layers above read: how
//! submissions are ranked, which backend runs them, and podium's bound on scoring a case.
//! They live here, with the challenge, so that `challenge/` depends on nothing above it.

use serde::{Deserialize, Serialize};

/// How one task ranks the submissions.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum RankingMethod {
    /// Aggregate-then-rank: the mean of the per-case values (the task's value), then rank.
    MeanThenRank,
    /// Aggregate-then-rank with the median of the per-case values.
    MedianThenRank,
    /// Rank-then-aggregate: rank the submissions on every case, then rank their mean rank.
    RankThenMean,
    /// Test-then-rank: one-sided paired tests between every two submissions (Wilcoxon on
    /// per-case values, DeLong for an AUC), Holm-corrected; the score is the number of
    /// significant wins.
    TestThenRank,
}

impl RankingMethod {
    pub const ALL: [RankingMethod; 4] = [
        RankingMethod::MeanThenRank,
        RankingMethod::MedianThenRank,
        RankingMethod::RankThenMean,
        RankingMethod::TestThenRank,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RankingMethod::MeanThenRank => "mean-then-rank",
            RankingMethod::MedianThenRank => "median-then-rank",
            RankingMethod::RankThenMean => "rank-then-mean",
            RankingMethod::TestThenRank => "test-then-rank",
        }
    }
}

/// When a Holm-adjusted p-value of test-then-rank counts as a significant win
/// (`[ranking] significant_if`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignificanceRule {
    /// `p < alpha`, as scipy-based evaluation scripts compare.
    #[default]
    #[serde(rename = "p < alpha")]
    BelowAlpha,
    /// `p <= alpha`, as challengeR's test-then-rank compares.
    #[serde(rename = "p <= alpha")]
    AtMostAlpha,
}

impl SignificanceRule {
    pub fn is_significant(self, p: f64, alpha: f64) -> bool {
        match self {
            SignificanceRule::BelowAlpha => p < alpha,
            SignificanceRule::AtMostAlpha => p <= alpha,
        }
    }
}

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
    /// Slurm jobs on a cluster, each case in the node's sandbox (docs/slurm.md); the
    /// challenge's `[cluster]` table configures it, and makes it the default of `podium run`.
    Slurm,
}

/// podium's bound on the work of scoring one case of a segmentation task, so that masks built to
/// be expensive (every voxel on the surface, as in a checkerboard or voxel noise) cannot hold up
/// the round: a case over it is invalid and gets the worst value (docs/metrics.md, "Hostile or
/// malformed masks"). Both limits scale with the image, which the organizers choose, and are
/// deterministic: a case exceeds them or not whatever the machine and its load.
///
/// Not a `challenge.toml` key: the defaults never bind on a real segmentation, and tests lower
/// them to exercise the bound on small images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaseBound {
    /// A predicted label may have at most `image voxels / surface_share` surface voxels (and at
    /// least `min_surface_voxels` are always allowed).
    pub surface_share: u64,
    pub min_surface_voxels: u64,
    /// Boundary-distance steps for the whole case: `max(steps_per_voxel * image voxels,
    /// min_steps)` for each label of the task (see `metrics::distance::WorkBudget`).
    pub steps_per_voxel: u64,
    pub min_steps: u64,
}

impl CaseBound {
    /// The distances of the surface voxels take 8 bytes each: an eighth of the image keeps them
    /// within one byte per image voxel, the size of the mask itself. Segmentations made of
    /// regions are far below it (both lungs of a 512 x 512 x 300 CT: 0.45 % of the voxels; a
    /// tree of 2-voxel-thick tubes: 0.3 %; scattered false positives over 5 % of the image: 5 %),
    /// while a checkerboard has half of the image on its surface.
    pub const SURFACE_SHARE: u64 = 8;
    /// Tiny images may have any mask: 65536 distances are 512 KiB.
    pub const MIN_SURFACE_VOXELS: u64 = 1 << 16;
    /// The costliest legitimate predictions measured take 4 to 6 steps per voxel: false
    /// positives scattered over 1-5 % of a 512 x 512 x 300 CT around a lung-sized truth (3.9-5.4,
    /// `cargo bench --bench boundary_stress`; 5.1-7.7 before the candidate pruning was sped up).
    /// Masks far apart take less than one since issue 18 (0.5 for a lung moved by 60 voxels; 4.2
    /// before). 32 leaves five times that, and is at most about 20 s of one CPU core per label
    /// on that CT (a step takes 5-10 ns). Under the surface bound no mask we tried took more
    /// than 11 steps per voxel.
    pub const STEPS_PER_VOXEL: u64 = 32;
    /// Tiny images get at least about a tenth of a second per label.
    pub const MIN_STEPS: u64 = 1 << 24;

    /// The surface voxels a predicted label may have on an image of `voxels` voxels.
    pub fn max_surface_voxels(&self, voxels: u64) -> u64 {
        (voxels / self.surface_share.max(1)).max(self.min_surface_voxels)
    }

    /// The distance steps a case of `labels` labels may take on an image of `voxels` voxels.
    pub fn max_steps(&self, voxels: u64, labels: usize) -> u64 {
        self.steps_per_voxel
            .saturating_mul(voxels)
            .max(self.min_steps)
            .saturating_mul(labels as u64)
    }
}

impl Default for CaseBound {
    fn default() -> Self {
        CaseBound {
            surface_share: CaseBound::SURFACE_SHARE,
            min_surface_voxels: CaseBound::MIN_SURFACE_VOXELS,
            steps_per_voxel: CaseBound::STEPS_PER_VOXEL,
            min_steps: CaseBound::MIN_STEPS,
        }
    }
}
