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
}

const ALL: [Metric; 12] = [
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
        }
    }

    /// The task kinds a metric is defined for.
    pub fn applies_to(self, kind: TaskKind) -> bool {
        use Metric::*;
        use TaskKind::*;
        matches!(
            (self, kind),
            (Auc | Sensitivity | Specificity, BinaryClassification)
                | (
                    MacroAuc | BalancedAccuracy | Accuracy,
                    MulticlassClassification
                )
                | (Dice | Iou, Segmentation)
                | (Mae | Rmse, Regression)
                | (QuadraticKappa | LinearKappa | Accuracy, Ordinal)
        )
    }

    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::Mae | Metric::Rmse)
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
