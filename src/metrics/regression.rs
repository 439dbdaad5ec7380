//! Regression metrics: mean absolute error and root mean squared error.

/// Mean absolute error: `(1/n) Σ |predicted[i] - truth[i]|`.
///
/// Agrees with `sklearn.metrics.mean_absolute_error(truth, predicted)`.
///
/// Returns `None` if the slices are empty, have different lengths, or the
/// result is not finite (any NaN or infinite value, or an overflowing sum).
pub fn mae(predicted: &[f64], truth: &[f64]) -> Option<f64> {
    mean_of(predicted, truth, |d| d.abs())
}

/// Root mean squared error: `sqrt((1/n) Σ (predicted[i] - truth[i])²)`.
///
/// Agrees with `sklearn.metrics.root_mean_squared_error(truth, predicted)`.
/// Always `>= mae` on the same data; the two are equal when all absolute
/// errors are equal.
///
/// Returns `None` if the slices are empty, have different lengths, or the
/// result is not finite (any NaN or infinite value, or an overflowing sum).
pub fn rmse(predicted: &[f64], truth: &[f64]) -> Option<f64> {
    mean_of(predicted, truth, |d| d * d).map(f64::sqrt)
}

/// Mean of `f(predicted[i] - truth[i])`, `None` when undefined or not finite.
fn mean_of(predicted: &[f64], truth: &[f64], f: impl Fn(f64) -> f64) -> Option<f64> {
    if predicted.is_empty() || predicted.len() != truth.len() {
        return None;
    }
    let sum: f64 = predicted.iter().zip(truth).map(|(&p, &t)| f(p - t)).sum();
    let mean = sum / predicted.len() as f64;
    mean.is_finite().then_some(mean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        // predicted = [2.5, 0.0, 2.0, 8.0], truth = [3.0, -0.5, 2.0, 7.0]
        // errors = [-0.5, 0.5, 0.0, 1.0]
        // MAE  = (0.5 + 0.5 + 0 + 1) / 4 = 0.5
        // RMSE = sqrt((0.25 + 0.25 + 0 + 1) / 4) = sqrt(0.375) = 0.6123724356957945
        // sklearn.metrics.mean_absolute_error(truth, predicted) = 0.5,
        // root_mean_squared_error(truth, predicted) = 0.6123724356957945
        // (sklearn 1.9.1; this is the example of sklearn's own docs).
        let predicted = [2.5, 0.0, 2.0, 8.0];
        let truth = [3.0, -0.5, 2.0, 7.0];
        assert_eq!(mae(&predicted, &truth), Some(0.5));
        assert!((rmse(&predicted, &truth).unwrap() - 0.375f64.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn perfect_and_constant_error() {
        assert_eq!(mae(&[1.0, 2.0], &[1.0, 2.0]), Some(0.0));
        assert_eq!(rmse(&[1.0, 2.0], &[1.0, 2.0]), Some(0.0));
        // All |errors| = 2 -> MAE = RMSE = 2.
        assert_eq!(mae(&[3.0, 0.0], &[1.0, 2.0]), Some(2.0));
        assert_eq!(rmse(&[3.0, 0.0], &[1.0, 2.0]), Some(2.0));
    }

    #[test]
    fn undefined_cases() {
        assert_eq!(mae(&[], &[]), None);
        assert_eq!(rmse(&[], &[]), None);
        assert_eq!(mae(&[1.0], &[1.0, 2.0]), None);
        assert_eq!(rmse(&[1.0], &[1.0, 2.0]), None);
        assert_eq!(mae(&[f64::NAN], &[1.0]), None);
        assert_eq!(rmse(&[1.0], &[f64::INFINITY]), None);
        // Overflowing square.
        assert_eq!(rmse(&[1e200], &[-1e200]), None);
    }
}
