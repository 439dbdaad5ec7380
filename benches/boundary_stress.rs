//! `cargo bench --bench boundary_stress [-- NAME...]`: the boundary metrics of one
//! lung-sized label against the costliest predictions (docs/boundary-metrics.md,
//! "Timing, stress cases"). The truth is an ellipsoid with semi-axes 0.457·n per axis in a
//! 512 × 512 × 300 volume at 0.7 × 0.7 × 1.5 mm (40 % of the voxels). The predictions:
//!
//! - `deformed`: the ellipsoid shifted by (3, −2, 1) voxels and rippled by up to ±5 %;
//! - `moved`: the ellipsoid moved by (60, 0, 30) voxels;
//! - `salt`: `deformed` with 1 % of all voxels flipped (`SALT=3` for 3 %, and so on);
//! - `corner`: a 3 × 3 × 3 blob in a corner.
//!
//! Each line gives the values, the wall time of `boundary_metrics_within` alone and the
//! steps it charged to its budget. `RAYON_NUM_THREADS=1` for one thread.

use std::time::Instant;

use podium::metrics::distance::{boundary_metrics_within, BoundarySpec, WorkBudget};

const SHAPE: [usize; 3] = [512, 512, 300];

fn index([x, y, z]: [usize; 3]) -> usize {
    x + SHAPE[0] * (y + SHAPE[1] * z)
}

/// The truth's ellipsoid moved by `shift` voxels, rippled when `ripple` is set.
fn ellipsoid(shift: [f64; 3], ripple: bool) -> Vec<u8> {
    let mut volume = vec![0u8; SHAPE.iter().product()];
    for z in 0..SHAPE[2] {
        for y in 0..SHAPE[1] {
            for x in 0..SHAPE[0] {
                let c = [
                    x as f64 - shift[0],
                    y as f64 - shift[1],
                    z as f64 - shift[2],
                ];
                let r =
                    [0, 1, 2].map(|a| (c[a] - SHAPE[a] as f64 / 2.0) / (0.457 * SHAPE[a] as f64));
                let mut e = r[0] * r[0] + r[1] * r[1] + r[2] * r[2];
                if ripple {
                    e *= 1.0 + 0.05 * (c[0] * 0.05).sin() * (c[2] * 0.07).cos();
                }
                if e <= 1.0 {
                    volume[index([x, y, z])] = 1;
                }
            }
        }
    }
    volume
}

fn main() {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wants = |name: &str| wanted.is_empty() || wanted.iter().any(|w| w == name);
    let salt_percent: u64 = std::env::var("SALT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let truth = ellipsoid([0.0; 3], false);
    let deformed = ellipsoid([3.0, -2.0, 1.0], true);
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    if wants("moved") {
        cases.push(("moved".into(), ellipsoid([60.0, 0.0, 30.0], false)));
    }
    if wants("salt") {
        let mut noisy = deformed.clone();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for v in noisy.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if state % 100 < salt_percent {
                *v = 1 - *v;
            }
        }
        cases.push((format!("salt ({salt_percent} %)"), noisy));
    }
    if wants("corner") {
        let mut corner = vec![0u8; truth.len()];
        for z in 2..5 {
            for y in 2..5 {
                for x in 2..5 {
                    corner[index([x, y, z])] = 1;
                }
            }
        }
        cases.push(("corner".into(), corner));
    }
    if wants("deformed") {
        cases.insert(0, ("deformed".into(), deformed));
    }
    let spec = BoundarySpec {
        shape: SHAPE,
        spacing_mm: [0.7, 0.7, 1.5],
        nsd_tolerance_mm: 1.0,
        worst_distance_mm: 1000.0,
    };
    for (name, predicted) in &cases {
        let budget = WorkBudget::unlimited();
        let start = Instant::now();
        let metrics = boundary_metrics_within(predicted, &truth, 1, &spec, &budget);
        let seconds = start.elapsed().as_secs_f64();
        match metrics {
            Some(Ok(m)) => println!(
                "{name}: hd95 {:.2} mm, hd {:.1} mm, assd {:.2} mm, nsd {:.3}; {seconds:.2} s, {:.1} steps per voxel",
                m.hd95_mm,
                m.hd_mm,
                m.assd_mm,
                m.nsd_voxels,
                budget.spent() as f64 / truth.len() as f64
            ),
            other => println!("{name}: {other:?}"),
        }
    }
}
