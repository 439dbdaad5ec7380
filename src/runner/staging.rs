//! Per-case input folders, and collecting per-case outputs into one predictions folder.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

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
    /// `(mask folder, file)` for each mask the case wrote.
    pub masks: Vec<(String, PathBuf)>,
}

/// Checks a finished case's output folder. Returns what can be used, and the worst finding as
/// the case's status with a message; partial output is kept so that, for example, a good
/// predictions row still counts when the mask is missing.
pub(super) fn check_case_output(
    output_dir: &Path,
    case_id: &str,
    challenge: &Challenge,
    limits: &Limits,
) -> (CaseOutput, CaseStatus, String) {
    let mut output = CaseOutput::default();
    let mut findings: Vec<(CaseStatus, String)> = Vec::new();

    // RLIMIT_FSIZE stops any one file at the limit; a file that reached it, or several that
    // add up to it, mean the output was cut short.
    let total = folder_size(output_dir);
    let limit = limits.output_mb.saturating_mul(1 << 20);
    if total >= limit {
        findings.push((
            CaseStatus::OutputLimit,
            format!(
                "wrote {total} bytes, reaching the output limit of {} MB",
                limits.output_mb
            ),
        ));
        return finish(output, findings);
    }

    let csv = output_dir.join("predictions.csv");
    let wants_csv = !challenge.prediction_columns().is_empty();
    if wants_csv {
        match regular_file(&csv) {
            Err(problem) => findings.push((CaseStatus::Missing, problem)),
            Ok(()) => {
                match Table::read(&csv) {
                    Err(e) => {
                        findings.push((CaseStatus::Invalid, short(&e.to_string(), output_dir)))
                    }
                    Ok(table) => {
                        match table.column("case_id") {
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
                            [] => findings.push((CaseStatus::Missing, format!("predictions.csv has no row for case {case_id}"))),
                            [row] => {
                                output.row = Some(
                                    table.headers.iter().cloned().zip(row.fields.iter().cloned()).collect(),
                                )
                            }
                            _ => findings.push((CaseStatus::Invalid, format!("predictions.csv has {} rows for case {case_id}; write one", rows.len()))),
                        }
                            }
                        }
                    }
                }
            }
        }
    }
    for dir in challenge.prediction_mask_dirs() {
        let mask = output_dir.join(&dir).join(format!("{case_id}.nii.gz"));
        match regular_file(&mask) {
            Ok(()) => output.masks.push((dir, mask)),
            Err(problem) => findings.push((CaseStatus::Missing, problem)),
        }
    }
    finish(output, findings)
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

/// A regular file, not a symbolic or hard link (either could point at anything on the host).
/// Only the expected names are ever read: anything else in the output folder is ignored.
fn regular_file(path: &Path) -> Result<(), String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let shown = match path.parent().and_then(Path::file_name) {
        Some(parent) if name != "predictions.csv" => format!("{}/{name}", parent.to_string_lossy()),
        _ => name,
    };
    match std::fs::symlink_metadata(path) {
        Err(_) => Err(format!("wrote no {shown}")),
        Ok(m) if m.file_type().is_symlink() => {
            Err(format!("{shown} is a symbolic link; write a regular file"))
        }
        Ok(m) if !m.is_file() => Err(format!("{shown} is not a regular file")),
        // A hard link could make podium read (and keep) a file from outside the output folder.
        Ok(m) if std::os::unix::fs::MetadataExt::nlink(&m) > 1 => {
            Err(format!("{shown} is a hard link; write a regular file"))
        }
        Ok(_) => Ok(()),
    }
}

fn folder_size(dir: &Path) -> u64 {
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if meta.is_dir() {
            total += folder_size(&entry.path());
        } else {
            total += meta.len();
        }
    }
    total
}

fn short(message: &str, output_dir: &Path) -> String {
    // Messages go to teams: show paths relative to their own output folder.
    message.replace(&format!("{}/", output_dir.display()), "")
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
        for (dir, file) in output.masks {
            let target_dir = self.dir.join(&dir);
            std::fs::create_dir_all(&target_dir)
                .map_err(|e| Error::io("create", &target_dir, e))?;
            let target = target_dir.join(format!("{case_id}.nii.gz"));
            std::fs::rename(&file, &target)
                .or_else(|_| std::fs::copy(&file, &target).map(|_| ()))
                .map_err(|e| Error::io("collect the mask", &file, e))?;
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
