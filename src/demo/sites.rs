//! The simulated hospitals of the demo data set. Real challenges pool scans from several sites,
//! and an algorithm tuned on one scanner can fail on another; the demo reproduces that, so the
//! per-site analysis has something to show. Each case's site and scanner are written to
//! `truth/metadata.csv`, which is organizer data and never staged to a submission.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::phantom::{Acquisition, Diagnosis, Geometry};

/// One simulated hospital and its scanner.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Site {
    pub name: &'static str,
    pub scanner: &'static str,
    pub acquisition: Acquisition,
    /// Pixel spacing relative to the size's reference: a larger reconstruction field of view
    /// on the same matrix.
    pub field_of_view_scale: f64,
    /// Slice thickness relative to the size's reference; the scan covers the same length, so
    /// thinner slices mean more of them.
    pub slice_thickness_scale: f64,
    /// Relative weights of covid, other pneumonia and normal among this site's patients.
    pub diagnosis_weights: [f64; 3],
}

/// hospital-d's scanner reads 150 HU high (its water calibration drifted, far more than a
/// maintained scanner would), which lifts normal posterior lung (about -870 HU in the phantom)
/// over threshold-baseline's fixed -700 HU ground-glass threshold: the baseline segments healthy
/// lung there and its Dice drops (docs/benchmarks.md has the measurement).
pub const SITES: [Site; 4] = [
    Site {
        name: "hospital-a",
        scanner: "scanner-a-64row",
        acquisition: Acquisition::REFERENCE,
        field_of_view_scale: 1.0,
        slice_thickness_scale: 1.0,
        // A referral centre: many pneumonias of every kind.
        diagnosis_weights: [0.35, 0.35, 0.30],
    },
    Site {
        name: "hospital-b",
        scanner: "scanner-b-128row",
        acquisition: Acquisition {
            noise_scale: 0.8,
            hu_offset: 6.0,
        },
        field_of_view_scale: 1.04,
        slice_thickness_scale: 0.8,
        // A community hospital that also scans to rule disease out.
        diagnosis_weights: [0.30, 0.20, 0.50],
    },
    Site {
        name: "hospital-c",
        scanner: "scanner-c-16row",
        acquisition: Acquisition {
            noise_scale: 1.4,
            hu_offset: -8.0,
        },
        field_of_view_scale: 1.07,
        slice_thickness_scale: 1.2,
        // A fever clinic: mostly COVID-19.
        diagnosis_weights: [0.55, 0.25, 0.20],
    },
    Site {
        name: "hospital-d",
        scanner: "scanner-d-64row-drifted",
        acquisition: Acquisition {
            noise_scale: 1.1,
            hu_offset: 150.0,
        },
        field_of_view_scale: 1.11,
        slice_thickness_scale: 1.0,
        diagnosis_weights: [0.40, 0.30, 0.30],
    },
];

impl Site {
    /// The voxel grid of this site's scans, from the size's reference grid.
    pub fn geometry(&self, reference: Geometry) -> Geometry {
        let [nx, ny, nz] = reference.shape;
        let [sx, sy, sz] = reference.spacing_mm;
        let slices = ((nz as f64 / self.slice_thickness_scale).round() as usize).max(1);
        Geometry {
            shape: [nx, ny, slices],
            spacing_mm: [
                sx * self.field_of_view_scale,
                sy * self.field_of_view_scale,
                sz * self.slice_thickness_scale,
            ],
        }
    }
}

/// The site of each case: every site gets the same number of cases (the first sites one more
/// when they do not divide evenly), so that a 40-case demo has 10 per site, enough for the
/// per-site analysis's `min_cases`; within that, a case goes to a site in proportion to the
/// share of its diagnosis among the site's patients, so the sites' mixes differ as they would
/// in a real multi-centre collection. Deterministic in `seed`.
pub fn assign_sites(diagnoses: &[Diagnosis], seed: u64) -> Vec<&'static Site> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = diagnoses.len();
    let mut room: Vec<usize> = (0..SITES.len())
        .map(|i| n / SITES.len() + usize::from(i < n % SITES.len()))
        .collect();
    // In a seeded order, so that no diagnosis is left the last free places.
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let mut sites: Vec<&'static Site> = vec![&SITES[0]; n];
    for case in order {
        let column = match diagnoses[case] {
            Diagnosis::Covid => 0,
            Diagnosis::OtherPneumonia => 1,
            Diagnosis::Normal => 2,
        };
        let weight = |i: usize| {
            if room[i] > 0 {
                SITES[i].diagnosis_weights[column]
            } else {
                0.0
            }
        };
        let total: f64 = (0..SITES.len()).map(weight).sum();
        let mut draw = rng.random_range(0.0..total);
        let chosen = (0..SITES.len())
            .find(|&i| {
                draw -= weight(i);
                draw < 0.0 && room[i] > 0
            })
            .unwrap_or_else(|| (0..SITES.len()).rev().find(|&i| room[i] > 0).unwrap_or(0));
        room[chosen] -= 1;
        sites[case] = &SITES[chosen];
    }
    sites
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_site_covers_the_same_length_of_chest() {
        let reference = Geometry::small();
        let length = |g: Geometry| g.shape[2] as f64 * g.spacing_mm[2];
        for site in &SITES {
            let g = site.geometry(reference);
            assert!(
                (length(g) - length(reference)).abs() <= g.spacing_mm[2],
                "{}: {} mm instead of {} mm",
                site.name,
                length(g),
                length(reference)
            );
        }
    }

    #[test]
    fn sites_differ_in_scanner_and_in_their_mix_of_diagnoses() {
        let diagnoses = super::super::diagnosis_mix(400, 3);
        let sites = assign_sites(&diagnoses, 3);
        assert_eq!(assign_sites(&diagnoses, 3), sites, "deterministic");
        for site in &SITES {
            let count = sites.iter().filter(|s| s.name == site.name).count();
            assert_eq!(
                count, 100,
                "{}: every site the same number of cases",
                site.name
            );
        }
        let covid_share = |name: &str| {
            let at_site: Vec<_> = diagnoses
                .iter()
                .zip(&sites)
                .filter(|(_, s)| s.name == name)
                .collect();
            assert!(at_site.len() >= 40, "{name}: {} cases", at_site.len());
            let covid = at_site
                .iter()
                .filter(|(d, _)| **d == Diagnosis::Covid)
                .count();
            covid as f64 / at_site.len() as f64
        };
        assert!(
            covid_share("hospital-c") > covid_share("hospital-b") + 0.1,
            "the fever clinic sees more COVID-19 than the community hospital"
        );
        let geometries: Vec<_> = SITES
            .iter()
            .map(|s| s.geometry(Geometry::small()).spacing_mm)
            .collect();
        for (i, a) in geometries.iter().enumerate() {
            for b in &geometries[i + 1..] {
                assert_ne!(a, b, "two sites share a voxel grid");
            }
        }
    }
}
