//! The built-in demo challenge: `podium init --template covid19-ct` writes its definition and
//! generates a synthetic chest-CT data set, deterministically from a seed.

pub mod docker_example;
pub mod phantom;
pub mod sites;

use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use phantom::{Diagnosis, Geometry};

/// The committed definition of the demo challenge, embedded so `podium init` works anywhere.
pub const COVID19_CT_TOML: &str = include_str!("../../challenges/covid19-ct/challenge.toml");

pub const TEMPLATES: &[&str] = &["covid19-ct"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Size {
    /// 64 x 64 x 48 voxels, the same field of view: fast enough for tests (the reference
    /// site's grid; the other simulated sites vary the field of view and slice thickness).
    Small,
    /// 512 x 512 x 200 voxels at about 0.7 x 0.7 x 1.5 mm, like a clinical chest CT (the
    /// reference site's grid, varied by the other sites).
    Ct,
}

impl Size {
    pub fn geometry(self) -> Geometry {
        match self {
            Size::Small => Geometry::small(),
            Size::Ct => Geometry::ct(),
        }
    }
}

/// Bumped whenever the generator's output changes for the same settings, so that data made by
/// an older generator is made again. 2: four simulated sites and `truth/metadata.csv`; 3: as many
/// cases at each site.
pub const GENERATOR_VERSION: u32 = 3;

/// What was generated, written last as `phases/generated.json`: a folder without it is
/// incomplete, and one with the same settings need not be generated again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerationStamp {
    pub template: String,
    pub cases_per_phase: usize,
    pub size: Size,
    pub seed: u64,
    pub podium_version: String,
    /// [`GENERATOR_VERSION`]; absent (0) in the stamps of older generators.
    #[serde(default)]
    pub generator: u32,
}

impl GenerationStamp {
    pub fn new(cases_per_phase: usize, size: Size, seed: u64) -> Self {
        GenerationStamp {
            template: "covid19-ct".into(),
            cases_per_phase,
            size,
            seed,
            podium_version: env!("CARGO_PKG_VERSION").into(),
            generator: GENERATOR_VERSION,
        }
    }

    fn path(dir: &Path) -> std::path::PathBuf {
        dir.join("phases").join("generated.json")
    }

    /// True when `dir` already holds exactly this data set.
    pub fn is_present(&self, dir: &Path) -> bool {
        std::fs::read_to_string(Self::path(dir))
            .ok()
            .and_then(|t| serde_json::from_str::<GenerationStamp>(&t).ok())
            .is_some_and(|s| &s == self)
    }
}

/// Writes the template's `challenge.toml` into `dir`, replacing an older one: for the demo's own
/// data folder, which nobody edits, so that a newer podium's template always applies.
pub fn refresh_challenge_toml(dir: &Path) -> Result<()> {
    let toml = dir.join("challenge.toml");
    if std::fs::read_to_string(&toml).is_ok_and(|t| t == COVID19_CT_TOML) {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    std::fs::write(&toml, COVID19_CT_TOML).map_err(|e| Error::io("write", &toml, e))
}

/// Writes the template's `challenge.toml` into `dir` for a new challenge called `name`, unless
/// one is there: the name and the header comments are the new challenge's, not the demo's.
pub fn write_template_toml(dir: &Path, name: &str) -> Result<()> {
    let toml = dir.join("challenge.toml");
    if toml.exists() {
        return Ok(());
    }
    if !crate::ids::is_safe_name(name) {
        return Err(Error::msg(format!(
            "{name:?} cannot name a challenge (it names its report folders): use letters, digits, '-', '_' or '.', or pass --name"
        )));
    }
    let body_start = COVID19_CT_TOML
        .find("\nname = ")
        .expect("the template declares its name");
    let header = format!(
        "# Challenge {name}, from podium's covid19-ct template: COVID-19 on chest CT.\n#\n# The data under phases/ is synthetic; generate it anew (other sizes, more cases) with\n#   podium init --template covid19-ct {} --cases 40 --size small\n# which keeps this file. Replace it with your own data as docs/contract.md describes.\n# docs/contract.md describes every file; docs/metrics.md every metric.\n",
        dir.display()
    );
    let body = COVID19_CT_TOML[body_start..].replacen(
        "name = \"covid19-ct\"",
        &format!("name = {name:?}"),
        1,
    );
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    std::fs::write(&toml, header + &body).map_err(|e| Error::io("write", &toml, e))
}

/// Writes `challenge.toml` (unless one exists) and generates the `dev` and `test` phases.
/// `progress` is called once per generated case.
pub fn init_covid19_ct(
    dir: &Path,
    stamp: &GenerationStamp,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<()> {
    if stamp.cases_per_phase < 3 {
        return Err(Error::msg("--cases must be at least 3, one per diagnosis"));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    let toml = dir.join("challenge.toml");
    if !toml.exists() {
        std::fs::write(&toml, COVID19_CT_TOML).map_err(|e| Error::io("write", &toml, e))?;
    }
    let _ = std::fs::remove_file(GenerationStamp::path(dir));
    let geometry = stamp.size.geometry();
    for (phase_index, phase) in ["dev", "test"].iter().enumerate() {
        let phase_dir = dir.join("phases").join(phase);
        let _ = std::fs::remove_dir_all(&phase_dir);
        let images = phase_dir.join("input").join("images");
        let masks = phase_dir.join("truth").join("masks");
        for d in [&images, &masks] {
            std::fs::create_dir_all(d).map_err(|e| Error::io("create", d, e))?;
        }
        let phase_seed = stamp
            .seed
            .wrapping_mul(1_000_003)
            .wrapping_add(phase_index as u64 * 7919);
        let diagnoses = diagnosis_mix(stamp.cases_per_phase, phase_seed);
        // A stream of its own, so that the sites are not drawn from the diagnoses' shuffle.
        let case_sites = sites::assign_sites(&diagnoses, phase_seed ^ 0x0051_73e5);
        let level = match stamp.size {
            Size::Small => 6,
            Size::Ct => 1,
        };
        let rows: Vec<Result<String>> = diagnoses
            .par_iter()
            .enumerate()
            .map(|(i, &diagnosis)| {
                let case_id = format!("{phase}-{:04}", i + 1);
                let site = case_sites[i];
                let site_geometry = site.geometry(geometry);
                let case = phantom::generate_with(
                    site_geometry,
                    site.acquisition,
                    diagnosis,
                    phase_seed.wrapping_add(1 + i as u64),
                );
                let spacing = site_geometry.spacing_mm;
                crate::io::nifti::write_volume(
                    &images.join(format!("{case_id}.nii.gz")),
                    case.ct.view(),
                    spacing,
                    level,
                )?;
                crate::io::nifti::write_volume(
                    &masks.join(format!("{case_id}.nii.gz")),
                    case.lesion.view(),
                    spacing,
                    6,
                )?;
                progress(&case_id);
                // The stage is taken from the value as written, so that the two truth columns
                // agree exactly at the bin edges (5.0004 % is written 5 and is stage 1).
                let involvement = (case.involvement_pct * 1000.0).round() / 1000.0;
                Ok(format!(
                    "{case_id},{},{},{}",
                    diagnosis.as_str(),
                    crate::report::csv_files::format_value(involvement),
                    phantom::stage_from_involvement(involvement)
                ))
            })
            .collect();
        let rows = rows.into_iter().collect::<Result<Vec<_>>>()?;
        let cases: String = rows
            .iter()
            .map(|r| format!("{}\n", r.split(',').next().unwrap_or("")))
            .collect();
        write(
            &phase_dir.join("input").join("cases.csv"),
            &format!("case_id\n{cases}"),
        )?;
        write(
            &phase_dir.join("truth").join("labels.csv"),
            &format!(
                "case_id,diagnosis,involvement_pct,stage\n{}\n",
                rows.join("\n")
            ),
        )?;
        // Beside the labels, under truth/: which scanner made a scan is organizer data, for the
        // per-site analysis, and never reaches a submission.
        let metadata: String = rows
            .iter()
            .zip(&case_sites)
            .map(|(row, site)| {
                let case_id = row.split(',').next().unwrap_or("");
                format!("{case_id},{},{}\n", site.name, site.scanner)
            })
            .collect();
        write(
            &phase_dir.join("truth").join("metadata.csv"),
            &format!("case_id,site,scanner\n{metadata}"),
        )?;
    }
    let stamp_text = serde_json::to_string_pretty(stamp).map_err(|e| Error::msg(e.to_string()))?;
    write(&GenerationStamp::path(dir), &stamp_text)
}

/// About 40 % COVID-19, 30 % other pneumonia and 30 % normal, at least one of each, shuffled.
fn diagnosis_mix(n: usize, seed: u64) -> Vec<Diagnosis> {
    let covid = ((n as f64 * 0.4).round() as usize).max(1);
    let other = ((n as f64 * 0.3).round() as usize)
        .max(1)
        .min(n - covid - 1);
    let mut mix: Vec<Diagnosis> = std::iter::repeat_n(Diagnosis::Covid, covid)
        .chain(std::iter::repeat_n(Diagnosis::OtherPneumonia, other))
        .chain(std::iter::repeat_n(Diagnosis::Normal, n - covid - other))
        .collect();
    mix.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    mix
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io("write", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_names_each_cases_site_and_scanner_under_truth_only() {
        let dir = tempfile::tempdir().unwrap();
        let stamp = GenerationStamp::new(8, Size::Small, 5);
        init_covid19_ct(dir.path(), &stamp, &|_| {}).unwrap();
        let phase = dir.path().join("phases").join("test");
        let cases = std::fs::read_to_string(phase.join("input").join("cases.csv")).unwrap();
        let metadata = std::fs::read_to_string(phase.join("truth").join("metadata.csv")).unwrap();
        let mut lines = metadata.lines();
        assert_eq!(lines.next(), Some("case_id,site,scanner"));
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        let ids: Vec<&str> = cases.lines().skip(1).collect();
        assert_eq!(rows.iter().map(|r| r[0]).collect::<Vec<_>>(), ids);
        for row in &rows {
            assert!(
                sites::SITES
                    .iter()
                    .any(|s| s.name == row[1] && s.scanner == row[2]),
                "{row:?}"
            );
        }
        let inputs: Vec<_> = walk(&phase.join("input"));
        assert!(
            inputs.iter().all(|p| !p.ends_with("metadata.csv")),
            "{inputs:?}"
        );
        // Each scan carries its own site's grid in its header.
        let site_of = |id: &str| rows.iter().find(|r| r[0] == id).unwrap()[1];
        for id in &ids {
            let site = sites::SITES.iter().find(|s| s.name == site_of(id)).unwrap();
            let image = phase
                .join("input")
                .join("images")
                .join(format!("{id}.nii.gz"));
            let written = crate::io::nifti::read_geometry(&image).unwrap();
            let expected = site.geometry(Geometry::small());
            assert_eq!(written.shape, expected.shape, "{id}");
            for (w, e) in written.spacing_mm.iter().zip(expected.spacing_mm) {
                assert!((w - e).abs() < 1e-4, "{id}: {w} mm, not {e} mm");
            }
        }
    }

    fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                found.extend(walk(&path));
            } else {
                found.push(path);
            }
        }
        found
    }

    #[test]
    fn data_from_an_older_generator_is_generated_again() {
        let dir = tempfile::tempdir().unwrap();
        let stamp = GenerationStamp::new(3, Size::Small, 5);
        let mut older = serde_json::to_value(&stamp).unwrap();
        older.as_object_mut().unwrap().remove("generator");
        std::fs::create_dir_all(dir.path().join("phases")).unwrap();
        std::fs::write(GenerationStamp::path(dir.path()), older.to_string()).unwrap();
        assert!(!stamp.is_present(dir.path()));
        let current = serde_json::to_string(&stamp).unwrap();
        std::fs::write(GenerationStamp::path(dir.path()), current).unwrap();
        assert!(stamp.is_present(dir.path()));
    }

    #[test]
    fn the_mix_holds_every_diagnosis_in_roughly_the_declared_shares() {
        let mix = diagnosis_mix(10, 1);
        let count = |d| mix.iter().filter(|&&m| m == d).count();
        assert_eq!(
            (
                count(Diagnosis::Covid),
                count(Diagnosis::OtherPneumonia),
                count(Diagnosis::Normal)
            ),
            (4, 3, 3)
        );
        let tiny = diagnosis_mix(3, 1);
        assert!(
            tiny.contains(&Diagnosis::Normal)
                && tiny.contains(&Diagnosis::Covid)
                && tiny.contains(&Diagnosis::OtherPneumonia)
        );
        assert_eq!(
            diagnosis_mix(10, 1),
            mix,
            "the mix depends on the seed only"
        );
    }
}
