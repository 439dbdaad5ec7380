//! Agreement between a predicted and a true quantity (for example the percentage of lung
//! involved): Bland–Altman bias and limits of agreement, and Pearson's correlation.

use super::intervals::Z_95;

/// Bland & Altman (1986) on the differences dᵢ = predictedᵢ − truthᵢ.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlandAltman {
    /// Mean difference: > 0 when predictions run high.
    pub bias: f64,
    /// Sample standard deviation of the differences (denominator n − 1).
    pub sd: f64,
    /// bias − 1.96·sd and bias + 1.96·sd: where 95 % of the differences are expected to fall.
    pub loa_lower: f64,
    pub loa_upper: f64,
}

/// Needs at least two pairs of finite values of equal lengths; otherwise None.
pub fn bland_altman(predicted: &[f64], truth: &[f64]) -> Option<BlandAltman> {
    if predicted.len() != truth.len() || predicted.len() < 2 {
        return None;
    }
    let d: Vec<f64> = predicted.iter().zip(truth).map(|(p, t)| p - t).collect();
    if d.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let n = d.len() as f64;
    let bias = d.iter().sum::<f64>() / n;
    let sd = (d.iter().map(|x| (x - bias).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    Some(BlandAltman {
        bias,
        sd,
        loa_lower: bias - Z_95 * sd,
        loa_upper: bias + Z_95 * sd,
    })
}

/// Pearson's r = cov(p, t) / (sd(p)·sd(t)). Undefined (None) with fewer than two pairs, a
/// non-finite value, or a constant predicted or true series (zero variance).
pub fn pearson_r(predicted: &[f64], truth: &[f64]) -> Option<f64> {
    if predicted.len() != truth.len() || predicted.len() < 2 {
        return None;
    }
    if predicted.iter().chain(truth).any(|x| !x.is_finite()) {
        return None;
    }
    let n = predicted.len() as f64;
    let (mp, mt) = (
        predicted.iter().sum::<f64>() / n,
        truth.iter().sum::<f64>() / n,
    );
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (p, t) in predicted.iter().zip(truth) {
        sxy += (p - mp) * (t - mt);
        sxx += (p - mp).powi(2);
        syy += (t - mt).powi(2);
    }
    if sxx == 0.0 || syy == 0.0 {
        return None;
    }
    Some((sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

/// The 95 % interval of r by Fisher's z-transform: tanh(atanh(r) ± 1.96/√(n − 3)). Needs n > 3;
/// |r| = 1 gives the point itself.
pub fn pearson_ci95(r: f64, n: usize) -> Option<(f64, f64)> {
    if n <= 3 || !r.is_finite() {
        return None;
    }
    if r.abs() >= 1.0 {
        return Some((r, r));
    }
    let z = r.atanh();
    let half = Z_95 / ((n - 3) as f64).sqrt();
    Some(((z - half).tanh(), (z + half).tanh()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bland_altman_by_hand() {
        // d = [1, -1, 2, 0]: bias 0.5; squared deviations .25+2.25+2.25+.25 = 5, sd = √(5/3).
        let ba = bland_altman(&[11.0, 9.0, 32.0, 40.0], &[10.0, 10.0, 30.0, 40.0]).unwrap();
        let sd = (5.0f64 / 3.0).sqrt();
        assert_eq!(ba.bias, 0.5);
        assert!((ba.sd - sd).abs() < 1e-15);
        assert!((ba.loa_upper - (0.5 + 1.959963984540054 * sd)).abs() < 1e-12);
        assert_eq!(bland_altman(&[1.0], &[1.0]), None);
        assert_eq!(bland_altman(&[1.0, f64::NAN], &[1.0, 2.0]), None);
    }

    #[test]
    fn pearson_by_hand_and_its_interval() {
        // p = [1, 2, 3, 4], t = [2, 4, 5, 9]: means 2.5 and 5; sxy = 1.5·3 + .5·1 + .5·0 + 1.5·4 = 11,
        // sxx = 5, syy = 9+1+0+16 = 26: r = 11/√130 = 0.964763821… (numpy.corrcoef agrees).
        let r = pearson_r(&[1.0, 2.0, 3.0, 4.0], &[2.0, 4.0, 5.0, 9.0]).unwrap();
        assert!((r - 11.0 / 130f64.sqrt()).abs() < 1e-15);
        assert_eq!(pearson_r(&[1.0, 1.0], &[1.0, 2.0]), None);
        assert_eq!(pearson_ci95(r, 3), None);
        let (lo, hi) = pearson_ci95(0.5, 28).unwrap();
        // atanh(.5) = 0.549306; ± 1.96/5 = 0.391993; numpy: tanh(…) = 0.15602836252908606, 0.7358184794439376
        assert!(
            (lo - 0.156_028_362_529_086).abs() < 1e-12
                && (hi - 0.735_818_479_443_937_6).abs() < 1e-12,
            "{lo} {hi}"
        );
        assert_eq!(pearson_ci95(1.0, 10), Some((1.0, 1.0)));
    }
}
