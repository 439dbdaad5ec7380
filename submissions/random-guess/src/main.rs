//! random-guess: the floor every real method must beat.
//!
//! It reads each image only for its shape and header, then answers at random: class
//! probabilities from a seeded generator, involvement uniform in [0, 100], stage uniform in
//! 0..=4, and a mask of random voxels at about 5 % density. The generator is seeded from a
//! hash of the case id, so a rerun gives the same answers.
//!
//! Usage: `random-guess INPUT OUTPUT`, `--input DIR --output DIR`, or the environment
//! variables `PODIUM_INPUT` and `PODIUM_OUTPUT`. See docs/contract.md of podium.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ndarray::Array3;
use nifti::writer::WriterOptions;
use nifti::{NiftiObject, ReaderOptions};

/// Fraction of voxels marked as lesion.
const MASK_DENSITY: f64 = 0.05;

fn main() -> ExitCode {
    let (input, output) = match parse_args() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("random-guess: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&input, &output) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("random-guess: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args() -> Result<(PathBuf, PathBuf), String> {
    let mut positional = Vec::new();
    let (mut input, mut output) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--input" {
            input = args.next();
        } else if a == "--output" {
            output = args.next();
        } else if let Some(v) = a.strip_prefix("--input=") {
            input = Some(v.to_string());
        } else if let Some(v) = a.strip_prefix("--output=") {
            output = Some(v.to_string());
        } else {
            positional.push(a);
        }
    }
    let mut positional = positional.into_iter();
    let input = input
        .or_else(|| positional.next())
        .or_else(|| std::env::var("PODIUM_INPUT").ok())
        .ok_or("no input folder (first argument, --input or PODIUM_INPUT)")?;
    let output = output
        .or_else(|| positional.next())
        .or_else(|| std::env::var("PODIUM_OUTPUT").ok())
        .ok_or("no output folder (second argument, --output or PODIUM_OUTPUT)")?;
    Ok((input.into(), output.into()))
}

/// SplitMix64: tiny, good enough for a baseline, no dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// FNV-1a of the case id: a stable seed (std's hasher is not guaranteed stable).
fn seed_of(id: &str) -> u64 {
    id.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    })
}

fn run(input: &Path, output: &Path) -> Result<(), String> {
    let ids = read_case_ids(&input.join("cases.csv"))?;
    let masks = output.join("masks");
    std::fs::create_dir_all(&masks)
        .map_err(|e| format!("cannot create {}: {e}", masks.display()))?;
    let mut csv =
        String::from("case_id,p_covid,p_other_pneumonia,p_normal,involvement_pct,stage\n");
    let mut failed = 0;
    for id in &ids {
        let image = input.join("images").join(format!("{id}.nii.gz"));
        match guess(id, &image, &masks.join(format!("{id}.nii.gz"))) {
            Ok(row) => csv.push_str(&row),
            Err(e) => {
                failed += 1;
                eprintln!("case {id}: {e}");
            }
        }
    }
    let path = output.join("predictions.csv");
    std::fs::write(&path, csv).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    if !ids.is_empty() && failed == ids.len() {
        return Err(format!("all {failed} case(s) failed"));
    }
    Ok(())
}

fn guess(id: &str, image: &Path, mask_path: &Path) -> Result<String, String> {
    // Only the header is needed: shape and geometry of the mask.
    let obj = ReaderOptions::new()
        .read_file(image)
        .map_err(|e| format!("cannot read {}: {e}", image.display()))?;
    let header = obj.header().clone();
    let dim = header.dim;
    let nd = usize::from(dim[0]);
    if !(3..=7).contains(&nd) || dim[4..=nd].iter().any(|&d| d != 1) {
        return Err(format!(
            "{}: expected a 3-D volume, got dim {dim:?}",
            image.display()
        ));
    }
    let (nx, ny, nz) = (
        usize::from(dim[1]),
        usize::from(dim[2]),
        usize::from(dim[3]),
    );
    drop(obj);

    let mut rng = SplitMix(seed_of(id));
    // Random probabilities: normalised exponentials (a flat Dirichlet draw).
    let e: [f64; 3] = std::array::from_fn(|_| -(1.0 - rng.unit()).ln() + 1e-12);
    let sum: f64 = e.iter().sum();
    let p_covid = round6(e[0] / sum);
    let p_other = round6(e[1] / sum);
    let p_normal = round6((1.0 - p_covid - p_other).max(0.0));
    let involvement = (rng.unit() * 100.0 * 100.0).round() / 100.0;
    let stage = (rng.unit() * 5.0) as u8;

    let threshold = (MASK_DENSITY * u64::MAX as f64) as u64;
    let mask: Vec<u8> = (0..nx * ny * nz)
        .map(|_| u8::from(rng.next_u64() < threshold))
        .collect();
    let arr = Array3::from_shape_vec((nz, ny, nx), mask).map_err(|e| e.to_string())?;
    WriterOptions::new(mask_path)
        .reference_header(&header)
        .write_nifti(&arr.t())
        .map_err(|e| format!("cannot write {}: {e}", mask_path.display()))?;
    let mut row = String::new();
    let _ = writeln!(
        row,
        "{id},{p_covid:.6},{p_other:.6},{p_normal:.6},{involvement:.2},{}",
        stage.min(4)
    );
    Ok(row)
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Case ids from the `case_id` column (the first one if no header names it). Tolerates a
/// UTF-8 byte-order mark, CRLF line ends, quotes and spaces around fields.
fn read_case_ids(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let field = |s: &str| s.trim().trim_matches('"').trim().to_string();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines
        .next()
        .ok_or_else(|| format!("{} is empty", path.display()))?;
    let col = header
        .split(',')
        .position(|h| field(h).eq_ignore_ascii_case("case_id"))
        .unwrap_or(0);
    let mut seen = HashSet::new();
    let mut ids = Vec::new();
    for line in lines {
        let id = line.split(',').nth(col).map(field).unwrap_or_default();
        let valid = !id.is_empty()
            && !id.starts_with('.')
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid {
            eprintln!("skipping invalid case id {id:?}");
        } else if seen.insert(id.clone()) {
            ids.push(id);
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproducible_and_in_range() {
        let mut a = SplitMix(seed_of("case-001"));
        let mut b = SplitMix(seed_of("case-001"));
        for _ in 0..100 {
            let u = a.unit();
            assert_eq!(u, b.unit());
            assert!((0.0..1.0).contains(&u));
        }
        assert_ne!(seed_of("case-001"), seed_of("case-002"));
    }
}
