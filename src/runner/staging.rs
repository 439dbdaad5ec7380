//! Per-case input folders, and collecting per-case outputs into one predictions folder.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::nofollow;
use super::CaseStatus;
use crate::challenge::{Challenge, Limits, PhasePaths};
use crate::error::{Error, Result};
use crate::io::table::Table;

/// One input folder per case, holding that case only: a program cannot read the other cases'
/// images, and never the truth, which is not staged at all.
///
/// A case's folder is made when its first run needs it and removed once every submission of
/// the round has run the case, not all of them before the first case. Staged up front, 20 CT
/// cases were 1.6 GB of copies not yet on disk, enough on a busy machine to start the kernel's
/// writeback and slow every copy down, where an organizer's loop holds one image at a time
/// and deletes it before it is ever written out (docs/benchmarks.md). What is left is removed
/// when dropped.
pub(super) struct StagedInputs {
    root: tempfile::TempDir,
    phase: PhasePaths,
    cases: HashMap<String, Mutex<Staged>>,
}

/// One case's staging state.
struct Staged {
    /// Runs of the case still to come in this round, each ending with a release.
    uses_left: usize,
    present: bool,
}

impl StagedInputs {
    /// `cases` are the round's unfinished cases, each with the number of submissions that will
    /// run it. Fails, naming the case, when an image cannot be opened: better before the round
    /// than as a failure of every submission on that case.
    pub fn create(
        phase: &PhasePaths,
        cases: &[(String, usize)],
        out: &Path,
    ) -> Result<StagedInputs> {
        std::fs::create_dir_all(out).map_err(|e| Error::io("create", out, e))?;
        let root = tempfile::Builder::new()
            .prefix(".staging-")
            .tempdir_in(out)
            .map_err(|e| Error::io("create a staging folder in", out, e))?;
        let mut staged = HashMap::new();
        for (case_id, uses) in cases {
            let image = phase.image(case_id);
            let readable = std::fs::File::open(&image).and_then(|f| {
                if f.metadata()?.is_file() {
                    Ok(())
                } else {
                    Err(std::io::Error::other("not a file"))
                }
            });
            readable.map_err(|e| {
                Error::msg(format!(
                    "cannot stage the image of case {case_id:?} from {}: {e}. Run `podium validate` on the challenge.",
                    image.display()
                ))
            })?;
            staged.insert(
                case_id.clone(),
                Mutex::new(Staged {
                    uses_left: *uses,
                    present: false,
                }),
            );
        }
        Ok(StagedInputs {
            root,
            phase: phase.clone(),
            cases: staged,
        })
    }

    /// Where the case's folder is (or will be) staged.
    pub fn dir_of(&self, case_id: &str) -> PathBuf {
        self.root.path().join(case_id)
    }

    /// The case's image in the challenge.
    pub fn image_of(&self, case_id: &str) -> PathBuf {
        self.phase.image(case_id)
    }

    /// The case's folder, staged now unless another run of the case already did.
    pub fn acquire(&self, case_id: &str) -> std::result::Result<PathBuf, String> {
        let dir = self.dir_of(case_id);
        let Some(entry) = self.cases.get(case_id) else {
            return Err(format!(
                "internal error: case {case_id} was not expected in this round"
            ));
        };
        let mut staged = entry.lock().unwrap_or_else(|e| e.into_inner());
        if !staged.present {
            if let Err(e) = stage_case(&self.image_of(case_id), case_id, &dir) {
                let _ = std::fs::remove_dir_all(&dir);
                // No host path: on a hidden phase, teams see this message.
                return Err(format!(
                    "podium could not stage the input of case {case_id}: {e}"
                ));
            }
            staged.present = true;
        }
        Ok(dir)
    }

    /// Ends one run of the case, whether it used the folder or not; the last one removes it.
    pub fn release(&self, case_id: &str) {
        let Some(entry) = self.cases.get(case_id) else {
            return;
        };
        let mut staged = entry.lock().unwrap_or_else(|e| e.into_inner());
        staged.uses_left = staged.uses_left.saturating_sub(1);
        if staged.uses_left == 0 && staged.present {
            let _ = std::fs::remove_dir_all(self.dir_of(case_id));
            staged.present = false;
        }
    }
}

/// Writes one case's input into `dir`: `cases.csv` listing that case alone, and a copy of its
/// `image` as `images/<case_id>.nii.gz`, readable by everyone (the sandbox's unprivileged slot
/// users), whatever the source's mode. A copy, not a link: without a sandbox a program could
/// otherwise modify the challenge's own image through its staged name.
pub(super) fn stage_case(image: &Path, case_id: &str, dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let images = dir.join("images");
    std::fs::create_dir_all(&images)?;
    let csv = dir.join("cases.csv");
    std::fs::write(&csv, format!("case_id\n{case_id}\n"))?;
    let target = images.join(format!("{case_id}.nii.gz"));
    let mut source = std::fs::File::open(image)?;
    let mut copy = std::fs::File::create(&target)?;
    // At full size before the bytes arrive, so that the case's tmpfs (mounted
    // `huge=within_size`, see case_mounts.rs) can back it with huge pages.
    copy.set_len(source.metadata()?.len())?;
    std::io::copy(&mut source, &mut copy)?;
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644))?;
    std::fs::set_permissions(&csv, std::fs::Permissions::from_mode(0o644))?;
    for d in [dir, &images] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    fn phase(dir: &Path, cases: &[&str]) -> PhasePaths {
        let input = dir.join("input");
        std::fs::create_dir_all(input.join("images")).unwrap();
        for case in cases {
            let image = input.join("images").join(format!("{case}.nii.gz"));
            std::fs::write(&image, format!("image of {case}")).unwrap();
            std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        PhasePaths {
            name: "test".into(),
            input,
            truth: dir.join("truth"),
            left_out: Default::default(),
            leave_out_bad_truth: false,
        }
    }

    #[test]
    fn a_case_is_staged_at_its_first_run_and_removed_after_its_last() {
        let dir = tempfile::tempdir().unwrap();
        let phase = phase(dir.path(), &["a", "b"]);
        let out = dir.path().join("out");
        let cases = [("a".to_string(), 2), ("b".to_string(), 1)];
        let staged = StagedInputs::create(&phase, &cases, &out).unwrap();
        assert!(!staged.dir_of("a").exists() && !staged.dir_of("b").exists());

        let a = staged.acquire("a").unwrap();
        let image = a.join("images/a.nii.gz");
        assert_eq!(std::fs::read_to_string(&image).unwrap(), "image of a");
        assert_eq!(
            std::fs::read_to_string(a.join("cases.csv")).unwrap(),
            "case_id\na\n"
        );
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&a), 0o755);
        assert_eq!(mode(&a.join("images")), 0o755);
        assert_eq!(mode(&image), 0o644);
        assert_eq!(mode(&a.join("cases.csv")), 0o644);
        let meta = std::fs::metadata(&image).unwrap();
        let source = std::fs::metadata(phase.image("a")).unwrap();
        assert_eq!(meta.nlink(), 1, "a copy, not a link");
        assert_ne!(meta.ino(), source.ino());
        assert!(
            !staged.dir_of("b").exists(),
            "b is staged only when it runs"
        );

        staged.release("a");
        assert!(a.exists(), "the second run of a still needs it");
        assert_eq!(staged.acquire("a").unwrap(), a);
        staged.release("a");
        assert!(!a.exists(), "removed after the last run");
        // A run that never used its folder (its submission failed to prepare) releases too.
        staged.release("b");
        assert!(!staged.dir_of("b").exists());

        let root = staged.dir_of("a").parent().unwrap().to_path_buf();
        drop(staged);
        assert!(!root.exists());
    }

    #[test]
    fn an_image_that_cannot_be_read_is_named_before_the_round() {
        let dir = tempfile::tempdir().unwrap();
        let phase = phase(dir.path(), &["a"]);
        let cases = [("a".to_string(), 1), ("gone".to_string(), 1)];
        let err = StagedInputs::create(&phase, &cases, &dir.path().join("out"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("case \"gone\"") && err.contains("podium validate"),
            "{err}"
        );
    }
}
