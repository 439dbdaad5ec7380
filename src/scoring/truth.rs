//! The case list of a phase and its truth table.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::challenge::{Challenge, PhasePaths};
use crate::error::{Error, Result};
use crate::io::nifti::SparseLabels;
use crate::io::table::Table;

pub use crate::challenge::read_case_ids;

/// `truth/labels.csv`: the truth columns the tasks need, per case.
#[derive(Clone, Debug)]
pub struct Truth {
    pub cases: Vec<String>,
    /// Shared: a subgroup level's truth is the round's with fewer cases, cloned per level.
    values: Arc<HashMap<String, BTreeMap<String, String>>>,
    /// The truth masks and image grids already read, shared by every submission of a round.
    pub masks: std::sync::Arc<MaskCache>,
}

/// Truth masks (kept sparse) and image shapes read once for a whole round rather than once
/// per submission: with 30 submissions the truth was 30 times the reading it needs. The masks
/// are kept up to [`MaskCache::BUDGET_BYTES`]; past it a mask is read again when needed, so
/// memory stays bounded whatever the number of cases.
#[derive(Debug, Default)]
pub struct MaskCache {
    masks: std::sync::Mutex<(HashMap<PathBuf, Arc<SparseLabels>>, usize)>,
    shapes: std::sync::Mutex<HashMap<PathBuf, [usize; 3]>>,
}

impl MaskCache {
    /// Bytes of sparse truth masks kept: the lesions of a thousand chest CTs fit.
    pub const BUDGET_BYTES: usize = 256 << 20;

    /// The truth mask at `path`, read on first use.
    pub fn truth_mask(&self, path: &Path) -> Result<Arc<SparseLabels>> {
        if let Some(mask) = self.lock_masks().0.get(path) {
            return Ok(mask.clone());
        }
        let mask = Arc::new(crate::io::nifti::read_sparse_labels(path)?);
        let mut kept = self.lock_masks();
        let bytes = mask.stored_bytes();
        if kept.1 + bytes <= Self::BUDGET_BYTES && !kept.0.contains_key(path) {
            kept.1 += bytes;
            kept.0.insert(path.to_path_buf(), mask.clone());
        }
        Ok(mask)
    }

    /// The `[nx, ny, nz]` of the image at `path`, from its header, read on first use.
    pub fn image_shape(&self, path: &Path) -> Result<[usize; 3]> {
        if let Some(shape) = self.lock_shapes().get(path) {
            return Ok(*shape);
        }
        let shape = crate::io::nifti::read_geometry(path)?.shape;
        self.lock_shapes().insert(path.to_path_buf(), shape);
        Ok(shape)
    }

    // A poisoned lock only means another thread panicked mid-insert of a complete value.
    fn lock_masks(
        &self,
    ) -> std::sync::MutexGuard<'_, (HashMap<PathBuf, Arc<SparseLabels>>, usize)> {
        self.masks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_shapes(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, [usize; 3]>> {
        self.shapes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Truth {
    pub fn read(challenge: &Challenge, phase: &PhasePaths) -> Result<Truth> {
        let cases = read_case_ids(phase)?;
        let columns = challenge.truth_columns();
        let mut values = HashMap::new();
        if !columns.is_empty() {
            let path = phase.labels_csv();
            let table = Table::read(&path).map_err(|e| {
                Error::msg(format!(
                    "{e}\n  The truth of phase {:?} is read from {}; pass --truth DIR if it lives elsewhere.",
                    phase.name,
                    phase.truth.display()
                ))
            })?;
            let mut wanted = vec!["case_id".to_string()];
            wanted.extend(columns.iter().cloned());
            let idx = table.require(&wanted)?;
            for row in &table.rows {
                let case_id = row.fields[idx[0]].clone();
                // Their rows may be the very reason they are left out (a duplicate, say).
                if phase.left_out.contains_key(&case_id) {
                    continue;
                }
                let map: BTreeMap<String, String> = columns
                    .iter()
                    .zip(&idx[1..])
                    .map(|(c, &i)| (c.clone(), row.fields[i].clone()))
                    .collect();
                if values.insert(case_id.clone(), map).is_some() {
                    return Err(Error::msg(format!(
                        "{}:{}: case {case_id:?} appears twice in the truth",
                        path.display(),
                        row.line
                    )));
                }
            }
        }
        Ok(Truth {
            cases,
            values: Arc::new(values),
            masks: Default::default(),
        })
    }

    /// The truth value of a column for a case; `None` when the truth table lacks the case or the
    /// value is empty (a challenge data error that `podium validate` reports).
    pub fn value(&self, case_id: &str, column: &str) -> Option<&str> {
        self.values
            .get(case_id)
            .and_then(|m| m.get(column))
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}
