//! Pure metric functions used to score challenge submissions.
//!
//! Every function here is pure (no I/O, no global state) and total: it never
//! panics, whatever the input. Values that are mathematically undefined for
//! the given input (an AUC with a single class, a mean over nothing, ...)
//! are reported as `None` rather than as `NaN`.
//!
//! The definitions, edge cases and aggregation rules are documented for
//! participants in `docs/metrics.md`; keep the two in step.
//!
//! * [`classification`]: ROC AUC, sensitivity/specificity, one-vs-rest macro
//!   AUC, balanced accuracy, confusion matrix.
//! * [`segmentation`]: voxel overlap counts, Dice, IoU.
//! * [`regression`]: MAE, RMSE.
//! * [`ordinal`]: Cohen's weighted kappa (linear, quadratic), accuracy.
//! * [`distance`]: boundary metrics (HD95, HD, ASSD, NSD) on surface voxels and on
//!   DeepMind's surfels, and the exact Euclidean distance transform.
//! * [`surfels`]: the surfel area of each 2 × 2 × 2 corner configuration.
//! * [`intervals`]: Wilson score interval, stratified percentile bootstrap.
//! * [`weighted`]: the same metrics on a bootstrap resample given as draw counts, in O(n).

pub mod agreement;
mod candidates;
pub mod classification;
pub mod distance;
pub mod heterogeneity;
pub mod intervals;
pub mod ordinal;
pub mod regression;
pub mod roc;
pub mod segmentation;
pub mod surfels;
pub mod weighted;
