//! Metric names as they appear in `challenge.toml` and in every output file. The names are a
//! stable interface: outputs of different podium versions must stay comparable.

use super::TaskKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    Auc,
    Sensitivity,
    Specificity,
    MacroAuc,
    BalancedAccuracy,
    Accuracy,
    Dice,
    Iou,
    Mae,
    Rmse,
    QuadraticKappa,
    LinearKappa,
    SensitivityAtSpecificity,
    YoudenThreshold,
    AveragePrecision,
    Bias,
    LoaLower,
    LoaUpper,
    PearsonR,
    /// Metrics Reloaded's HD95: the larger of the two directed 95th percentiles.
    Hd95,
    /// medpy's HD95: the 95th percentile of the pooled distances of both directions (podium's
    /// `hd95` before 0.x made Metrics Reloaded's the default).
    Hd95Medpy,
    /// DeepMind's surface Dice (the Metrics Reloaded recommendation): surfels on the voxel
    /// corners, weighted by their area.
    Nsd,
    /// The surface Dice counting surface voxels, each once (podium's `nsd` before DeepMind's
    /// became the default; Metrics Reloaded's `normalised_surface_distance` formula).
    NsdVoxels,
    /// DeepMind's HD95: the larger of the two directed area-weighted 95th percentiles on
    /// surfels.
    Hd95Deepmind,
    Assd,
    /// DeepMind's average surface distance: the mean of the two directed area-weighted means
    /// on surfels.
    AssdDeepmind,
    VolumeErrorMl,
}

const ALL: [Metric; 27] = [
    Metric::Auc,
    Metric::Sensitivity,
    Metric::Specificity,
    Metric::MacroAuc,
    Metric::BalancedAccuracy,
    Metric::Accuracy,
    Metric::Dice,
    Metric::Iou,
    Metric::Mae,
    Metric::Rmse,
    Metric::QuadraticKappa,
    Metric::LinearKappa,
    Metric::SensitivityAtSpecificity,
    Metric::YoudenThreshold,
    Metric::AveragePrecision,
    Metric::Bias,
    Metric::LoaLower,
    Metric::LoaUpper,
    Metric::PearsonR,
    Metric::Hd95,
    Metric::Hd95Medpy,
    Metric::Hd95Deepmind,
    Metric::Nsd,
    Metric::NsdVoxels,
    Metric::Assd,
    Metric::AssdDeepmind,
    Metric::VolumeErrorMl,
];

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Auc => "auc",
            Metric::Sensitivity => "sensitivity",
            Metric::Specificity => "specificity",
            Metric::MacroAuc => "macro_auc",
            Metric::BalancedAccuracy => "balanced_accuracy",
            Metric::Accuracy => "accuracy",
            Metric::Dice => "dice",
            Metric::Iou => "iou",
            Metric::Mae => "mae",
            Metric::Rmse => "rmse",
            Metric::QuadraticKappa => "quadratic_kappa",
            Metric::LinearKappa => "linear_kappa",
            Metric::SensitivityAtSpecificity => "sensitivity_at_specificity",
            Metric::YoudenThreshold => "youden_threshold",
            Metric::AveragePrecision => "average_precision",
            Metric::Bias => "bias",
            Metric::LoaLower => "loa_lower",
            Metric::LoaUpper => "loa_upper",
            Metric::PearsonR => "pearson_r",
            Metric::Hd95 => "hd95",
            Metric::Hd95Medpy => "hd95_medpy",
            Metric::Nsd => "nsd",
            Metric::NsdVoxels => "nsd_voxels",
            Metric::Hd95Deepmind => "hd95_deepmind",
            Metric::Assd => "assd",
            Metric::AssdDeepmind => "assd_deepmind",
            Metric::VolumeErrorMl => "volume_error_ml",
        }
    }

    /// The task kinds a metric is defined for.
    pub fn applies_to(self, kind: TaskKind) -> bool {
        use Metric::*;
        use TaskKind::*;
        matches!(
            (self, kind),
            (
                Auc | Sensitivity
                    | Specificity
                    | SensitivityAtSpecificity
                    | YoudenThreshold
                    | AveragePrecision,
                BinaryClassification
            ) | (
                MacroAuc | BalancedAccuracy | Accuracy,
                MulticlassClassification
            ) | (
                Dice | Iou
                    | Hd95
                    | Hd95Medpy
                    | Hd95Deepmind
                    | Nsd
                    | NsdVoxels
                    | Assd
                    | AssdDeepmind
                    | VolumeErrorMl,
                Segmentation
            ) | (
                Mae | Rmse | Bias | LoaLower | LoaUpper | PearsonR,
                Regression
            ) | (QuadraticKappa | LinearKappa | Accuracy, Ordinal)
        )
    }

    /// For rankable metrics: whether a higher value is better.
    pub fn higher_is_better(self) -> bool {
        !matches!(
            self,
            Metric::Mae
                | Metric::Rmse
                | Metric::Hd95
                | Metric::Hd95Medpy
                | Metric::Hd95Deepmind
                | Metric::Assd
                | Metric::AssdDeepmind
                | Metric::VolumeErrorMl
        )
    }

    /// Whether the metric orders submissions from worse to better. A threshold, a bias or a
    /// limit of agreement describes a submission but is not better when larger or smaller, so it
    /// cannot be a task's `primary`.
    pub fn is_rankable(self) -> bool {
        !matches!(
            self,
            Metric::YoudenThreshold | Metric::Bias | Metric::LoaLower | Metric::LoaUpper
        )
    }

    /// Metrics with a value per case (in scores.csv), aggregated as the mean over cases.
    pub fn is_per_case(self) -> bool {
        matches!(
            self,
            Metric::Dice
                | Metric::Iou
                | Metric::Hd95
                | Metric::Hd95Medpy
                | Metric::Hd95Deepmind
                | Metric::Nsd
                | Metric::NsdVoxels
                | Metric::Assd
                | Metric::AssdDeepmind
                | Metric::VolumeErrorMl
        )
    }

    /// Parses a metric name and checks it against the task kind, with a message that lists the
    /// metrics the kind allows.
    pub fn parse_for(name: &str, kind: TaskKind) -> Result<Metric, String> {
        let allowed: Vec<&str> = ALL
            .iter()
            .filter(|m| m.applies_to(kind))
            .map(|m| m.name())
            .collect();
        match ALL.iter().find(|m| m.name() == name) {
            Some(m) if m.applies_to(kind) => Ok(*m),
            Some(_) => Err(format!(
                "metric {name:?} does not apply to kind {}; it allows: {}",
                kind.as_str(),
                allowed.join(", ")
            )),
            None => Err(format!(
                "unknown metric {name:?}; kind {} allows: {}",
                kind.as_str(),
                allowed.join(", ")
            )),
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
