//! Per-case input folders, and collecting per-case outputs into one predictions folder.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::nofollow;
use super::CaseStatus;
use crate::challenge::{Challenge, Limits, PhasePaths};
use crate::error::{Error, Result};
use crate::io::table::Table;

/// One input folder per case, holding that case only: a program cannot read the other cases'
/// images, and never the truth, which is not staged at all. Removed when dropped.
pub(super) struct StagedInputs {
    root: tempfile::TempDir,
}

impl StagedInputs {
    pub fn create(phase: &PhasePaths, cases: &[String], out: &Path) -> Result<StagedInputs> {
        std::fs::create_dir_all(out).map_err(|e| Error::io("create", out, e))?;
        let root = tempfile::Builder::new()
            .prefix(".staging-")
            .tempdir_in(out)
            .map_err(|e| Error::io("create a staging folder in", out, e))?;
        for case_id in cases {
            let dir = root.path().join(case_id);
            let images = dir.join("images");
            std::fs::create_dir_all(&images).map_err(|e| Error::io("create", &images, e))?;
            std::fs::write(dir.join("cases.csv"), format!("case_id\n{case_id}\n"))
                .map_err(|e| Error::io("write", &dir.join("cases.csv"), e))?;
            let source = phase.image(case_id);
            let target = images.join(format!("{case_id}.nii.gz"));
            // A copy, not a link: without a sandbox a program could otherwise modify the
            // challenge's own image through its staged name.
            let copied = std::fs::copy(&source, &target).and_then(|_| {
                // Readable by the sandbox's unprivileged slot users, whatever the source's mode.
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644))?;
                for dir in [&dir, &images] {
                    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
                }
                std::fs::set_permissions(
                    dir.join("cases.csv"),
                    std::fs::Permissions::from_mode(0o644),
                )
            });
            copied.map_err(|e| {
                Error::msg(format!(
                    "cannot stage the image of case {case_id:?} from {}: {e}. Run `podium validate` on the challenge.",
                    source.display()
                ))
            })?;
        }
        Ok(StagedInputs { root })
    }

    pub fn dir_of(&self, case_id: &str) -> PathBuf {
        self.root.path().join(case_id)
    }
}

/// What one case's output folder held that is worth keeping.
#[derive(Debug, Default)]
pub(super) struct CaseOutput {
    /// The case's row of `predictions.csv`, by column name.
    pub row: Option<BTreeMap<String, String>>,
    /// `(mask folder, opened file)` for each mask the case wrote: the descriptor, never a
    /// path, is what gets collected.
    pub masks: Vec<(String, std::fs::File)>,
}

/// Entries an output folder may hold before podium stops counting and calls it a flood: the
/// contract asks for one CSV and a mask per folder, and even a program that keeps its caches
/// in `$HOME` (`/output`) stays far below.
const MAX_OUTPUT_ENTRIES: usize = 100_000;

/// Checks a finished case's output folder. Returns what can be used, and the worst finding as
/// the case's status with a message; partial output is kept so that, for example, a good
/// predictions row still counts when the mask is missing. Names are opened below the folder's
/// descriptor without following links ([`super::nofollow`]).
pub(super) fn check_case_output(
    output_dir: &Path,
    case_id: &str,
    challenge: &Challenge,
    limits: &Limits,
) -> (CaseOutput, CaseStatus, String) {
    let mut output = CaseOutput::default();
    let mut findings: Vec<(CaseStatus, String)> = Vec::new();
    let root = match nofollow::open_root(output_dir) {
        Ok(root) => root,
        Err(refusal) => {
            findings.push((CaseStatus::Invalid, refusal.describe("the output folder")));
            return finish(output, findings);
        }
    };

    // RLIMIT_FSIZE stops any one file at the limit, and a size-capped /output or the watchdog
    // the whole folder; a folder at the limit means the output was cut short.
    let (total, entries) = nofollow::tree_size(&root, MAX_OUTPUT_ENTRIES);
    let limit = limits.output_mb.saturating_mul(1 << 20);
    if total >= limit || entries > MAX_OUTPUT_ENTRIES {
        let what = if entries > MAX_OUTPUT_ENTRIES {
            format!("wrote more than {MAX_OUTPUT_ENTRIES} files and folders")
        } else {
            format!("wrote {total} bytes")
        };
        findings.push((
            CaseStatus::OutputLimit,
            format!(
                "{what}, reaching the output limit of {} MB",
                limits.output_mb
            ),
        ));
        return finish(output, findings);
    }

    if !challenge.prediction_columns().is_empty() {
        match read_predictions(&root, limit) {
            Err(problem) => findings.push(problem),
            Ok(table) => match table.column("case_id") {
                None => findings.push((
                    CaseStatus::Invalid,
                    "predictions.csv has no `case_id` column".into(),
                )),
                Some(id_col) => {
                    let rows: Vec<_> = table
                        .rows
                        .iter()
                        .filter(|r| r.fields[id_col] == case_id)
                        .collect();
                    match rows.as_slice() {
                        [] => findings.push((
                            CaseStatus::Missing,
                            format!("predictions.csv has no row for case {case_id}"),
                        )),
                        [row] => {
                            output.row = Some(
                                table
                                    .headers
                                    .iter()
                                    .cloned()
                                    .zip(row.fields.iter().cloned())
                                    .collect(),
                            )
                        }
                        _ => findings.push((
                            CaseStatus::Invalid,
                            format!(
                                "predictions.csv has {} rows for case {case_id}; write one",
                                rows.len()
                            ),
                        )),
                    }
                }
            },
        }
    }
    let file_name = format!("{case_id}.nii.gz");
    for dir in challenge.prediction_mask_dirs() {
        let opened = nofollow::open_dir(&root, &dir)
            .map_err(|r| (r, dir.clone()))
            .and_then(|d| {
                nofollow::open_file(&d, &file_name).map_err(|r| (r, format!("{dir}/{file_name}")))
            });
        match opened {
            Ok(file) => output.masks.push((dir, file)),
            Err((nofollow::Refusal::Absent, _)) => {
                findings.push((CaseStatus::Missing, format!("wrote no {dir}/{file_name}")))
            }
            // A link or a special file counts as no file at all: `missing`, as an absent one.
            Err((refusal, shown)) => findings.push((CaseStatus::Missing, refusal.describe(&shown))),
        }
    }
    finish(output, findings)
}

/// `predictions.csv` of the output folder, read through its descriptor.
fn read_predictions(root: &std::fs::File, limit: u64) -> Result<Table, (CaseStatus, String)> {
    use std::io::Read;
    let shown = "predictions.csv";
    let file = nofollow::open_file(root, shown)
        .map_err(|refusal| (CaseStatus::Missing, refusal.describe(shown)))?;
    let mut bytes = Vec::new();
    file.take(limit).read_to_end(&mut bytes).map_err(|e| {
        (
            CaseStatus::Invalid,
            format!("podium could not read {shown}: {e}"),
        )
    })?;
    Table::parse(&bytes, Path::new(shown)).map_err(|e| (CaseStatus::Invalid, e.to_string()))
}

fn finish(
    output: CaseOutput,
    mut findings: Vec<(CaseStatus, String)>,
) -> (CaseOutput, CaseStatus, String) {
    // Invalid outranks missing: a malformed file is the more useful thing to report first.
    findings.sort_by_key(|(s, _)| match s {
        CaseStatus::OutputLimit => 0,
        CaseStatus::Invalid => 1,
        _ => 2,
    });
    let status = findings.first().map(|(s, _)| *s).unwrap_or(CaseStatus::Ok);
    let message = findings
        .into_iter()
        .map(|(_, m)| m)
        .collect::<Vec<_>>()
        .join("; ");
    (output, status, message)
}

/// Gathers the per-case outputs of one submission into `<predictions_dir>/predictions.csv` and
/// `<predictions_dir>/<mask folder>/`, the layout `podium score` reads. Each case's row is
/// appended and synced as soon as the case is collected, so a round interrupted at any point
/// keeps the predictions of its finished cases.
pub(super) struct Collector {
    dir: PathBuf,
    path: PathBuf,
    columns: Vec<String>,
    writer: csv::Writer<std::fs::File>,
}

impl Collector {
    /// Opens the submission's predictions, keeping only the rows of `keep` (the cases a resumed
    /// round already finished: a row written just before an interruption, whose case was not
    /// yet recorded, is dropped and the case runs again).
    pub fn open(dir: &Path, challenge: &Challenge, keep: &BTreeSet<String>) -> Result<Collector> {
        let path = dir.join("predictions.csv");
        let columns = challenge.prediction_columns();
        let mut header = vec!["case_id".to_string()];
        header.extend(columns.iter().cloned());
        let mut kept: Vec<Vec<String>> = Vec::new();
        if path.exists() && !keep.is_empty() {
            let table = Table::read(&path)?;
            if let Some(id) = table.column("case_id") {
                kept = table
                    .rows
                    .iter()
                    .filter(|r| keep.contains(&r.fields[id]))
                    .map(|r| r.fields.clone())
                    .collect();
            }
        }
        let write_err = |e: csv::Error| Error::io("write", &path, e);
        let mut writer = csv::Writer::from_path(&path).map_err(write_err)?;
        writer.write_record(&header).map_err(write_err)?;
        for row in &kept {
            writer.write_record(row).map_err(write_err)?;
        }
        writer.flush().map_err(|e| Error::io("write", &path, e))?;
        Ok(Collector {
            dir: dir.to_path_buf(),
            path,
            columns,
            writer,
        })
    }

    pub fn add(&mut self, case_id: &str, output: CaseOutput) -> Result<()> {
        for (dir, mut file) in output.masks {
            let target_dir = self.dir.join(&dir);
            std::fs::create_dir_all(&target_dir)
                .map_err(|e| Error::io("create", &target_dir, e))?;
            let target = target_dir.join(format!("{case_id}.nii.gz"));
            // A copy from the descriptor the output check opened: never a rename, which would
            // move whatever the team's path leads to.
            let partial = target_dir.join(format!(".{case_id}.nii.gz.partial"));
            let copied = std::fs::File::create(&partial)
                .and_then(|mut to| std::io::copy(&mut file, &mut to))
                .and_then(|_| std::fs::rename(&partial, &target));
            copied.map_err(|e| Error::io("collect the mask into", &target, e))?;
        }
        if let Some(row) = output.row {
            let mut record = vec![case_id.to_string()];
            for column in &self.columns {
                let value = row.get(column).or_else(|| {
                    row.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(column))
                        .map(|(_, v)| v)
                });
                record.push(value.cloned().unwrap_or_default());
            }
            let path = &self.path;
            self.writer
                .write_record(&record)
                .map_err(|e| Error::io("write", path, e))?;
            self.writer
                .flush()
                .map_err(|e| Error::io("write", path, e))?;
            self.writer
                .get_ref()
                .sync_data()
                .map_err(|e| Error::io("sync", path, e))?;
        }
        Ok(())
    }
}
