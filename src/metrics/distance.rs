//! Boundary metrics of one label in two 3D label maps: the 95th-percentile
//! and maximum Hausdorff distances, the average symmetric surface distance
//! (ASSD) and the normalized surface distance (NSD, "surface Dice"), with
//! anisotropic voxel spacing; plus the exact Euclidean distance transform
//! they are built on.
//!
//! Volumes are flat label maps with x fastest: the voxel `(x, y, z)` is at
//! index `x + nx * (y + ny * z)` for `shape = [nx, ny, nz]`, and its centre
//! is at `(x * sx, y * sy, z * sz)` mm for `spacing_mm = [sx, sy, sz]`.
//!
//! # Definitions
//!
//! Let A be the voxels of the prediction carrying the label and B those of
//! the reference (ground truth).
//!
//! * **Surface voxels** of a mask: the voxels of the mask that one
//!   6-connected binary erosion removes, the outside of the image counting
//!   as background. A mask voxel is a surface voxel if at least one of its
//!   six face neighbours is not in the mask or lies outside the image (so a
//!   mask voxel on the image border is always a surface voxel). This is
//!   medpy's definition (`mask ^ binary_erosion(mask,
//!   generate_binary_structure(3, 1))`, `border_value = 0`). Write ∂A and ∂B
//!   for the surface voxels of A and B.
//! * **Directed distances**: for each voxel `a` of ∂A, `d(a, ∂B)` is the
//!   Euclidean distance in mm between the centre of `a` and the nearest centre
//!   of a voxel of ∂B, and vice versa for each voxel of ∂B. There are |∂A| +
//!   |∂B| distances in all: the *pooled* distances.
//! * **hd95** (`hd95_mm`): the larger of the two *directed* 95th
//!   percentiles, `max(np.percentile(d_ab, 95), np.percentile(d_ba, 95))`
//!   with numpy's default linear interpolation: Metrics Reloaded's
//!   definition (`measured_hausdorff_distance_perc`) on these surface
//!   voxels, and the one DeepMind's `compute_robust_hausdorff` applies to its
//!   surfels. A small spurious component far from the truth counts fully in
//!   its own direction instead of being diluted in the pooled set.
//! * **hd95 pooled** (`hd95_pooled_mm`, metric `hd95_medpy`): the 95th
//!   percentile of the pooled distances, `np.percentile(np.hstack((d_ab,
//!   d_ba)), 95)`: medpy's `hd95`, podium's `hd95` before Metrics Reloaded's
//!   became the default (see `docs/boundary-metrics.md`).
//! * **hd** (`hd_mm`): the largest pooled distance, i.e. the classic
//!   (symmetric) Hausdorff distance between ∂A and ∂B (medpy's `hd`).
//! * **assd** (`assd_mm`): the mean of the pooled distances,
//!   `(Σ d(∂A, ∂B) + Σ d(∂B, ∂A)) / (|∂A| + |∂B|)`, as medpy 0.5 computes
//!   it (`np.concatenate((d_ab, d_ba)).mean()`) and as the literature defines
//!   the average symmetric surface distance (Heimann et al. 2009). medpy
//!   0.4 and older took the mean of the two directed means instead, which
//!   differs when the surfaces have different sizes.
//! * **nsd counting voxels** (`nsd_voxels`, metric `nsd_voxels`) at tolerance τ: the
//!   fraction of surface voxels, of both masks together, lying within τ mm of the other
//!   surface, `(#{a ∈ ∂A : d(a, ∂B) ≤ τ} + #{b ∈ ∂B : d(b, ∂A) ≤ τ}) / (|∂A| + |∂B|)`.
//!
//! [`surfel_metrics_within`] computes DeepMind's definitions instead (`surface-distance`,
//! Nikolov et al. 2021; metrics `nsd`, `hd95_deepmind`, `assd_deepmind`): the surface is made
//! of surface elements ("surfels") on the voxel corners (2×2×2 neighbourhoods, marching-cubes
//! style), each weighted by its area in mm² ([`super::surfels`]), and the summaries weigh each
//! distance by that area. The two families differ by up to 0.25 in NSD on podium's reference
//! fixtures, most for thin structures and strongly anisotropic spacing
//! (`docs/boundary-metrics.md`).
//!
//! Empty masks (Metrics Reloaded conventions):
//!
//! * A and B both empty: a perfect match, `nsd = 1` and all distances 0.
//! * Exactly one of A and B empty: `nsd = 0` and all three distances equal
//!   [`BoundarySpec::worst_distance_mm`] (podium passes the image diagonal
//!   in mm by default).
//!
//! # Algorithm
//!
//! All work is restricted to the bounding box of A ∪ B, which contains both
//! surfaces. A mask voxel on a face of that box is a surface voxel: its
//! neighbour across the face is either outside the image or outside A ∪ B,
//! background in both cases; deeper voxels test their six neighbours in the
//! image. So the image edge counts as background at the real image edge, and
//! the crop edge changes nothing.
//!
//! One parallel pass over the z planes turns both label maps into bit rows
//! (64 voxels per `u64`, SSE2 compares on x86-64) and finds the box; the
//! surfaces are then word operations on those rows: a mask word `m` minus
//! `left & right & up & down & front & back`, the six neighbour masks.
//!
//! Every distance is the exact minimum, over the feature voxels (the surface
//! voxels of the other mask), of the distance formula
//! `((sx·dx)² + (sy·dy)²) + (sz·dz)²` evaluated in `f64` (the formula and
//! summation order of scipy's `distance_transform_edt(..., sampling=spacing)`
//! that medpy uses), followed by its square root. The queries (the surface
//! voxels of the first mask) are answered in three stages, z planes in
//! parallel with rayon:
//!
//! 0. a coarse map of the features ([`NearCells`]: 2³-voxel cells holding
//!    a feature, grown by about [`NEAR_VOXELS`] voxels) tells, for a word of
//!    64 queries at a time, whether any may be near a feature; the queries
//!    of the other words skip stages 1 and 2, as do those outside the map in
//!    stage 2;
//! 1. a query row tests, 64 queries at a time, the few offsets
//!    `(±dx, ±dy, ±dz)` of the smallest formula values, in increasing value
//!    (a complete list: no other offset has a value as small), shifting the
//!    feature rows: the first hit is the answer. This settles most queries of
//!    close surfaces (distance 0 or one voxel step);
//! 2. each remaining query searches the feature rows `(y ± dy, z ± dz)` in
//!    increasing `|dz|`, then `|dy|`, each row giving its nearest feature in
//!    x from two shifted words, and stops along each axis once `(sy·dy)² +
//!    (sz·dz)²` alone reaches the best value found (every term is
//!    non-negative and rounding is monotonic), within a radius of
//!    [`SEARCH_VOXELS`] times the smallest spacing; the nearest feature of
//!    the previous query gives a first bound;
//! 3. queries farther than that, and all remaining queries of a plane where
//!    most searches fail (surfaces far apart), go, from every plane at once,
//!    to the candidate pruning of [`super::candidates`]: a tree of boxes of
//!    queries, each keeping only the features that can be nearest to some
//!    point of it, so that its work follows the geometry rather than the
//!    size of the crop.
//!
//! Any stage gives the exact value, so which one answers a query changes
//! only the work.
//!
//! Memory: one bit per voxel of the image for each mask while the surfaces
//! are built, two bits per voxel of the box for the surfaces, 8 bytes per
//! surface voxel for the distances and plane-sized scratch buffers per
//! thread, and for the queries left to the candidate pruning and the
//! features they are measured to, about 80 bytes each while it runs; no
//! byte copy of the volume is made. Results are exact up to the
//! rounding of the formula and do not depend on the thread count.
//!
//! Work: [`boundary_metrics_within`] checks the size of the predicted surface
//! before any distance, and counts the work of the distances in steps (rows
//! probed, words tested, parabolas and rows of the transform), stopping once a
//! [`WorkBudget`] is spent. podium gives each case a budget so that a mask
//! built to be expensive (every voxel on the surface) cannot hold up a round.
//! The count depends on the masks alone, not on the machine or thread count.

use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::candidates::{self, Clustered, Point, CLUSTER_VOXELS};

/// Boundary metrics of one label; see the [module documentation](self) for
/// the definitions. Distances are in mm.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoundaryMetrics {
    /// 95th percentile Hausdorff distance as Metrics Reloaded defines it: the
    /// larger of the two directed 95th percentiles (linearly interpolated).
    pub hd95_mm: f64,
    /// 95th percentile Hausdorff distance as medpy defines it: the 95th
    /// percentile, linearly interpolated, of the pooled distances of both
    /// directions.
    pub hd95_pooled_mm: f64,
    /// Maximum (classic) Hausdorff distance: the largest pooled distance.
    pub hd_mm: f64,
    /// Average symmetric surface distance: the mean of the pooled distances
    /// (medpy 0.5's `assd`).
    pub assd_mm: f64,
    /// Normalized surface distance (surface Dice) at
    /// [`BoundarySpec::nsd_tolerance_mm`], counting surface voxels, in
    /// `[0, 1]`.
    pub nsd_voxels: f64,
}

/// Geometry and parameters of a [`boundary_metrics`] computation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoundarySpec {
    /// Volume shape `[nx, ny, nz]`, x fastest in memory.
    pub shape: [usize; 3],
    /// Voxel spacing `[sx, sy, sz]` in mm; each must be finite and > 0.
    pub spacing_mm: [f64; 3],
    /// NSD tolerance τ in mm: a surface voxel counts as matched if it lies at
    /// most τ from the other surface. Must be ≥ 0 (may be infinite).
    pub nsd_tolerance_mm: f64,
    /// Value of the three distances when exactly one mask is empty (podium
    /// passes the image diagonal in mm by default). Must be ≥ 0 (may be
    /// infinite).
    pub worst_distance_mm: f64,
}

impl BoundarySpec {
    /// Number of voxels, if the spec is valid and within the supported size
    /// (a z plane must have fewer than 2³² voxels, and `nz < 2³²`).
    fn voxel_count(&self) -> Option<usize> {
        let [nx, ny, nz] = self.shape;
        let plane = nx.checked_mul(ny)?;
        let n = plane.checked_mul(nz)?;
        let spacing_ok = self.spacing_mm.iter().all(|&s| s.is_finite() && s > 0.0);
        let fits = u32::try_from(plane).is_ok() && u32::try_from(nz).is_ok();
        // `>= 0.0` is false for NaN.
        let params_ok = self.nsd_tolerance_mm >= 0.0 && self.worst_distance_mm >= 0.0;
        (spacing_ok && fits && params_ok).then_some(n)
    }
}

/// Boundary metrics of the voxels equal to `label` in `predicted` (A) and
/// `truth` (B), two label maps of shape `spec.shape` (x fastest).
///
/// See the [module documentation](self) for the definitions (surface voxels,
/// pooled distances, the two hd95, voxel-count NSD) and the
/// empty-mask conventions: both masks empty gives `nsd = 1` and distances 0;
/// exactly one empty gives `nsd = 0` and every distance equal to
/// `spec.worst_distance_mm`.
///
/// Returns `None` if a slice's length differs from `nx * ny * nz`, or if the
/// spec is invalid: a spacing not finite and positive, a negative or NaN
/// tolerance or worst distance, or a volume too large to index (a z plane of
/// 2³² voxels or more).
///
/// Performance: one pass over both label maps, then work around the
/// surfaces only (see the module documentation). A lung-sized label of two
/// close masks in a 512 × 512 × 300 volume (the prediction one voxel off)
/// takes about 30 ms of CPU time; masks far apart or salt noise over the
/// whole volume need the full transform of the box, a few seconds at that
/// size (see `docs/boundary-metrics.md`). Results do not depend on the
/// thread count.
pub fn boundary_metrics(
    predicted: &[u8],
    truth: &[u8],
    label: u8,
    spec: &BoundarySpec,
) -> Option<BoundaryMetrics> {
    boundary_metrics_within(predicted, truth, label, spec, &WorkBudget::unlimited())
        .and_then(Result::ok)
}

/// Limits on the work of [`boundary_metrics_within`], so that a prediction built to be
/// expensive cannot hold up the scoring of everyone else. A mask whose every voxel touches the
/// background (voxel noise, a checkerboard) has a surface as large as its volume, and the
/// distances of the surface voxels far from the other mask are what costs.
///
/// Both limits are deterministic: whether a computation exceeds them depends on the masks
/// alone, never on the machine, its load or the thread count, so a case scores the same on a
/// rescore.
#[derive(Debug)]
pub struct WorkBudget {
    max_surface_voxels: u64,
    max_steps: u64,
    spent: AtomicU64,
}

impl WorkBudget {
    /// At most `max_surface_voxels` surface voxels in the predicted mask (its distances take 8
    /// bytes each), and at most `max_steps` steps of distance computation summed over every
    /// call made with this budget. A step is an elementary unit of the search: a feature row
    /// probed, a 64-voxel word tested, a parabola or row of the distance transform; a few
    /// nanoseconds each.
    pub fn new(max_surface_voxels: u64, max_steps: u64) -> WorkBudget {
        WorkBudget {
            max_surface_voxels,
            max_steps,
            spent: AtomicU64::new(0),
        }
    }

    pub fn unlimited() -> WorkBudget {
        WorkBudget::new(u64::MAX, u64::MAX)
    }

    /// Steps charged so far.
    pub fn spent(&self) -> u64 {
        self.spent.load(Ordering::Relaxed)
    }

    pub(super) fn charge(&self, steps: u64) {
        self.spent.fetch_add(steps, Ordering::Relaxed);
    }

    /// Once true, stays true: charges only add. Work stops only after this, so the steps
    /// charged by the end exceed the limit exactly when the whole computation's would.
    pub(super) fn exhausted(&self) -> bool {
        self.spent() > self.max_steps
    }
}

/// Why [`boundary_metrics_within`] gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverBudget {
    /// The predicted mask has `voxels` surface voxels of the label, more than `limit`.
    Surface { voxels: u64, limit: u64 },
    /// The predicted mask has `surfels` surfels of the label (DeepMind's surface elements),
    /// more than `limit`.
    Surfels { surfels: u64, limit: u64 },
    /// The distances took more than `limit` steps.
    Steps { limit: u64 },
}

/// [`boundary_metrics`] within `budget`: `Some(Err(_))` when the computation would exceed it
/// (then stopped early, its result discarded). `None` as for [`boundary_metrics`].
pub fn boundary_metrics_within(
    predicted: &[u8],
    truth: &[u8],
    label: u8,
    spec: &BoundarySpec,
    budget: &WorkBudget,
) -> Option<Result<BoundaryMetrics, OverBudget>> {
    let both = both_definitions_within(predicted, truth, label, spec, budget, [true, false])?;
    Some(both.map(|(voxels, _)| voxels.expect("asked for")))
}

/// The label's voxels in both maps, as [`mask_bits`] rows, once the empty cases are set aside.
enum Masks {
    BothEmpty,
    OneEmpty,
    Both {
        predicted: Vec<u64>,
        truth: Vec<u64>,
        bbox: Crop,
    },
}

fn masks(predicted: &[u8], truth: &[u8], label: u8, spec: &BoundarySpec) -> Option<Masks> {
    let n = spec.voxel_count()?;
    if predicted.len() != n || truth.len() != n {
        return None;
    }
    if n == 0 {
        return Some(Masks::BothEmpty);
    }
    let (mask_a, mask_b, extent) = mask_bits(predicted, truth, label, spec.shape);
    Some(match (extent.has_predicted, extent.has_truth) {
        (false, false) => Masks::BothEmpty,
        (true, true) => Masks::Both {
            predicted: mask_a,
            truth: mask_b,
            bbox: Crop {
                lo: extent.lo,
                hi: extent.hi,
            },
        },
        _ => Masks::OneEmpty,
    })
}

/// The surface-voxel metrics and DeepMind's, each where asked for.
pub type BothDefinitions = (Option<BoundaryMetrics>, Option<SurfelMetrics>);

/// Both families of boundary metrics from one pass over the label maps: `want[0]` asks for the
/// surface-voxel metrics ([`boundary_metrics_within`]), `want[1]` for DeepMind's
/// ([`surfel_metrics_within`]); each comes back where asked for. One `budget` covers both.
pub fn both_definitions_within(
    predicted: &[u8],
    truth: &[u8],
    label: u8,
    spec: &BoundarySpec,
    budget: &WorkBudget,
    want: [bool; 2],
) -> Option<Result<BothDefinitions, OverBudget>> {
    let (voxels, surfels) = match masks(predicted, truth, label, spec)? {
        Masks::BothEmpty => (BoundaryMetrics::PERFECT, SurfelMetrics::PERFECT),
        Masks::OneEmpty => (
            BoundaryMetrics::worst(spec.worst_distance_mm),
            SurfelMetrics::worst(spec.worst_distance_mm),
        ),
        Masks::Both {
            predicted,
            truth,
            bbox,
        } => {
            let voxels = match want[0] {
                true => match voxel_metrics(&predicted, &truth, &bbox, spec, budget) {
                    Ok(v) => Some(v),
                    Err(over) => return Some(Err(over)),
                },
                false => None,
            };
            let surfels = match want[1] {
                true => match surfel_metrics(predicted, truth, &bbox, spec, budget)? {
                    Ok(s) => Some(s),
                    Err(over) => return Some(Err(over)),
                },
                false => None,
            };
            return Some(Ok((voxels, surfels)));
        }
    };
    Some(Ok((want[0].then_some(voxels), want[1].then_some(surfels))))
}

impl BoundaryMetrics {
    const PERFECT: BoundaryMetrics = BoundaryMetrics {
        hd95_mm: 0.0,
        hd95_pooled_mm: 0.0,
        hd_mm: 0.0,
        assd_mm: 0.0,
        nsd_voxels: 1.0,
    };

    fn worst(distance_mm: f64) -> BoundaryMetrics {
        BoundaryMetrics {
            hd95_mm: distance_mm,
            hd95_pooled_mm: distance_mm,
            hd_mm: distance_mm,
            assd_mm: distance_mm,
            nsd_voxels: 0.0,
        }
    }
}

impl SurfelMetrics {
    const PERFECT: SurfelMetrics = SurfelMetrics {
        nsd: 1.0,
        hd95_mm: 0.0,
        assd_mm: 0.0,
    };

    fn worst(distance_mm: f64) -> SurfelMetrics {
        SurfelMetrics {
            nsd: 0.0,
            hd95_mm: distance_mm,
            assd_mm: distance_mm,
        }
    }
}

/// The surface-voxel metrics of two non-empty masks inside their bounding box.
fn voxel_metrics(
    mask_a: &[u64],
    mask_b: &[u64],
    bbox: &Crop,
    spec: &BoundarySpec,
    budget: &WorkBudget,
) -> Result<BoundaryMetrics, OverBudget> {
    let surface_a = SurfaceBits::new(mask_a, spec.shape, bbox);
    // Checked before any distance: the count bounds the memory of the distances.
    let voxels = surface_a.count();
    if voxels > budget.max_surface_voxels {
        return Err(OverBudget::Surface {
            voxels,
            limit: budget.max_surface_voxels,
        });
    }
    let surface_b = SurfaceBits::new(mask_b, spec.shape, bbox);
    let (d_ab, d_ba) = both_directions(&surface_a, &surface_b, spec.spacing_mm, budget)?;
    Ok(summarise(d_ab, d_ba, spec.nsd_tolerance_mm))
}

/// The distances from each element of `a` to `b` and from each of `b` to `a`, or the step
/// limit once the budget is spent (checked before, between and after, so that a computation
/// stops as soon as it is over).
fn both_directions(
    a: &SurfaceBits,
    b: &SurfaceBits,
    spacing: [f64; 3],
    budget: &WorkBudget,
) -> Result<(Vec<f64>, Vec<f64>), OverBudget> {
    let over = OverBudget::Steps {
        limit: budget.max_steps,
    };
    if budget.exhausted() {
        return Err(over);
    }
    let d_ab = directed_distances(b, a, spacing, budget);
    if budget.exhausted() {
        return Err(over);
    }
    let d_ba = directed_distances(a, b, spacing, budget);
    if budget.exhausted() {
        return Err(over);
    }
    Ok((d_ab, d_ba))
}

/// Boundary metrics of one label on DeepMind's surface elements ("surfels"), as
/// `surface-distance` computes them (Nikolov et al. 2021); see [`surfel_metrics_within`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SurfelMetrics {
    /// Normalized surface distance (surface Dice) at [`BoundarySpec::nsd_tolerance_mm`]: the
    /// area of the surfels of both masks within the tolerance of the other surface, over the
    /// area of all of them (`compute_surface_dice_at_tolerance`). In `[0, 1]`.
    pub nsd: f64,
    /// The larger of the two directed area-weighted 95th percentiles
    /// (`compute_robust_hausdorff(.., 95)`), in mm.
    pub hd95_mm: f64,
    /// The mean of the two directed area-weighted mean distances (the two values of
    /// `compute_average_surface_distance`), in mm.
    pub assd_mm: f64,
}

/// Boundary metrics of the voxels equal to `label` in `predicted` (A) and `truth` (B) on
/// DeepMind's surfels, within `budget` (see [`boundary_metrics_within`] for the budget and
/// for `None`).
///
/// A *surfel* sits on each voxel corner whose 2 × 2 × 2 block of voxels holds voxels both
/// inside and outside the mask (the image outside counting as outside); its position is the
/// corner, half a voxel off the voxel centres, and its weight the area of the marching-cubes
/// surface inside that block ([`super::surfels`]). Distances run from each surfel of one mask
/// to the nearest surfel of the other, exactly as for surface voxels. The empty-mask
/// conventions are those of [`boundary_metrics`]: both empty gives `nsd = 1` and distances 0,
/// exactly one empty gives `nsd = 0` and both distances `spec.worst_distance_mm`.
///
/// The values equal DeepMind's `compute_surface_dice_at_tolerance`, `compute_robust_hausdorff`
/// and the mean of `compute_average_surface_distance` on podium's reference fixtures to 1e-6
/// (`docs/boundary-metrics.md`); the work is that of [`boundary_metrics`] on a grid one larger
/// in each direction.
pub fn surfel_metrics_within(
    predicted: &[u8],
    truth: &[u8],
    label: u8,
    spec: &BoundarySpec,
    budget: &WorkBudget,
) -> Option<Result<SurfelMetrics, OverBudget>> {
    let both = both_definitions_within(predicted, truth, label, spec, budget, [false, true])?;
    Some(both.map(|(_, surfels)| surfels.expect("asked for")))
}

/// How many surfels a predicted label may have for each surface voxel the budget allows. A
/// region has about 1.75 surfels per surface voxel, an isolated voxel 8 (its corners) for 1;
/// 4 lets a mask of scattered voxels that passes the surface-voxel bound (the demo's
/// random-guess) pass this one too, at 9 bytes per surfel (its distance and configuration).
const SURFELS_PER_SURFACE_VOXEL: u64 = 4;

/// DeepMind's metrics of two non-empty masks whose voxels lie in `bbox`; `None` if the corner
/// grid is too large to index.
fn surfel_metrics(
    mask_a: Vec<u64>,
    mask_b: Vec<u64>,
    bbox: &Crop,
    spec: &BoundarySpec,
    budget: &WorkBudget,
) -> Option<Result<SurfelMetrics, OverBudget>> {
    // Corner c lies between the voxels c - 1 and c: the corners of the box lo..=hi are
    // lo..=hi + 1.
    let corners = Crop {
        lo: bbox.lo,
        hi: bbox.hi.map(|h| h + 1),
    };
    let [cx, cy, _] = corners.size();
    u32::try_from(cx * cy).ok()?;
    let (surfels_a, codes_a) = SurfaceBits::surfels(&mask_a, spec.shape, &corners);
    drop(mask_a);
    let count = surfels_a.count();
    let limit = budget
        .max_surface_voxels
        .saturating_mul(SURFELS_PER_SURFACE_VOXEL);
    if count > limit {
        return Some(Err(OverBudget::Surfels {
            surfels: count,
            limit,
        }));
    }
    let (surfels_b, codes_b) = SurfaceBits::surfels(&mask_b, spec.shape, &corners);
    drop(mask_b);
    let (d_ab, d_ba) = match both_directions(&surfels_a, &surfels_b, spec.spacing_mm, budget) {
        Ok(both) => both,
        Err(over) => return Some(Err(over)),
    };
    let areas = super::surfels::surfel_areas(spec.spacing_mm);
    Some(Ok(summarise_surfels(
        (&d_ab, &codes_a),
        (&d_ba, &codes_b),
        &areas,
        spec.nsd_tolerance_mm,
    )))
}

/// Exact Euclidean distance transform with anisotropic spacing: for every
/// voxel of the box, the distance in mm from its centre to the nearest
/// `true` voxel centre of `features` (`f64::INFINITY` if there is none).
///
/// `features` is a flat `[nx, ny, nz]` volume, x fastest; `spacing_mm` is
/// `[sx, sy, sz]`. Each distance is `sqrt((sx·dx)² + (sy·dy)² + (sz·dz)²)`
/// for the integer offsets `(dx, dy, dz)` to a nearest feature, computed in
/// `f64` as scipy's `distance_transform_edt(~features, sampling=spacing)`
/// does (scipy's input is the complement: it measures the distance to the
/// nearest zero).
///
/// Algorithm: Felzenszwalb & Huttenlocher's separable lower-envelope
/// transform, one pass per axis (z, then y, then x), the z planes processed
/// in parallel with rayon. Time O(nx·ny·nz) plus a binary search per column
/// entry; memory: the output, 8 bytes per feature voxel and plane-sized
/// scratch buffers per thread.
///
/// # Panics
///
/// If `features.len() != nx * ny * nz`, or if a z plane holds 2³² voxels or
/// more.
pub fn distance_transform_mm(
    features: &[bool],
    shape: [usize; 3],
    spacing_mm: [f64; 3],
) -> Vec<f64> {
    let [nx, ny, nz] = shape;
    let plane = nx.saturating_mul(ny);
    assert_eq!(
        Some(features.len()),
        plane.checked_mul(nz),
        "distance_transform_mm: {} features for shape {shape:?}",
        features.len()
    );
    assert!(
        u32::try_from(plane).is_ok() && u32::try_from(nz).is_ok(),
        "distance_transform_mm: shape {shape:?} too large"
    );
    if features.is_empty() {
        return Vec::new();
    }
    let planes: Vec<Vec<u32>> = features
        .par_chunks(plane)
        .map(|p| {
            p.iter()
                .enumerate()
                .filter(|&(_, &f)| f)
                .map(|(i, _)| i as u32)
                .collect()
        })
        .collect();
    let sites = ColumnSites::new(nx, ny, &planes);
    drop(planes);
    let every_voxel: Vec<u32> = (0..plane as u32).collect();
    let mut out = vec![0.0; features.len()];
    out.par_chunks_mut(plane)
        .enumerate()
        .for_each_init(Scratch::default, |scratch, (z, chunk)| {
            plane_distances(&sites, spacing_mm, z as u32, &every_voxel, scratch, chunk);
        });
    out
}

// ---------------------------------------------------------------------------
// Bounding box and surfaces
// ---------------------------------------------------------------------------

/// Inclusive box `lo..=hi` of voxel coordinates.
#[derive(Clone, Copy, Debug)]
struct Crop {
    lo: [usize; 3],
    hi: [usize; 3],
}

impl Crop {
    fn size(&self) -> [usize; 3] {
        [0, 1, 2].map(|a| self.hi[a] - self.lo[a] + 1)
    }
}

/// Which masks are non-empty, and the bounding box of their union (valid
/// only if one is non-empty).
#[derive(Clone, Copy, Debug)]
struct Extent {
    has_predicted: bool,
    has_truth: bool,
    lo: [usize; 3],
    hi: [usize; 3],
}

impl Extent {
    const EMPTY: Extent = Extent {
        has_predicted: false,
        has_truth: false,
        lo: [usize::MAX; 3],
        hi: [0; 3],
    };

    fn merge(self, other: Extent) -> Extent {
        Extent {
            has_predicted: self.has_predicted || other.has_predicted,
            has_truth: self.has_truth || other.has_truth,
            lo: [0, 1, 2].map(|a| self.lo[a].min(other.lo[a])),
            hi: [0, 1, 2].map(|a| self.hi[a].max(other.hi[a])),
        }
    }
}

/// Bit `x % 64` of word `x / 64` of `out` says whether `row[x] == label`
/// (`out` has `row.len().div_ceil(64)` words and is zero on entry: only the
/// non-zero words are written, so that the pages of a large zeroed buffer
/// stay untouched where the label is absent).
fn row_bits(row: &[u8], label: u8, out: &mut [u64]) {
    let mut chunks = row.chunks_exact(64);
    for (chunk, o) in chunks.by_ref().zip(out.iter_mut()) {
        let word = bits64(chunk.try_into().unwrap(), label);
        if word != 0 {
            *o = word;
        }
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        out[row.len() / 64] = rest
            .iter()
            .enumerate()
            .fold(0, |w, (i, &v)| w | (u64::from(v == label) << i));
    }
}

/// Bit i says whether `bytes[i] == label`. SSE2 (part of x86-64): about as
/// fast as memory delivers the bytes.
#[cfg(target_arch = "x86_64")]
#[inline]
fn bits64(bytes: &[u8; 64], label: u8) -> u64 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    let p = bytes.as_ptr().cast::<__m128i>();
    // SAFETY: SSE2 is always available on x86-64, and the four unaligned
    // 16-byte loads stay within the 64 bytes of `bytes`.
    unsafe {
        let pattern = _mm_set1_epi8(label as i8);
        let mask = |k: usize| {
            let equal = _mm_cmpeq_epi8(_mm_loadu_si128(p.add(k)), pattern);
            u64::from(_mm_movemask_epi8(equal) as u16)
        };
        mask(0) | (mask(1) << 16) | (mask(2) << 32) | (mask(3) << 48)
    }
}

/// Portable [`bits64`]: eight bytes at a time, branch-free ("SWAR").
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn bits64(bytes: &[u8; 64], label: u8) -> u64 {
    bits64_swar(bytes, label)
}

#[cfg(any(test, not(target_arch = "x86_64")))]
fn bits64_swar(bytes: &[u8; 64], label: u8) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Moves bit 8i to bit 56 + i (the partial products never overlap).
    const GATHER: u64 = 0x0102_0408_1020_4080;
    let pattern = u64::from(label) * 0x0101_0101_0101_0101;
    let mut word = 0u64;
    for (k, eight) in bytes.chunks_exact(8).enumerate() {
        // The zero bytes of x are those equal to the label; t has the high
        // bit of every other byte set.
        let x = u64::from_le_bytes(eight.try_into().unwrap()) ^ pattern;
        let t = ((x & LOW7) + LOW7) | x;
        let equal = !t & HIGH;
        word |= ((equal >> 7).wrapping_mul(GATHER) >> 56) << (8 * k);
    }
    word
}

/// The masks `predicted == label` and `truth == label` as bit rows (row
/// `y + ny * z` at words `row * wr..(row + 1) * wr`, `wr = nx.div_ceil(64)`),
/// and their extent; one parallel pass over the z planes.
fn mask_bits(
    predicted: &[u8],
    truth: &[u8],
    label: u8,
    shape: [usize; 3],
) -> (Vec<u64>, Vec<u64>, Extent) {
    let [nx, ny, nz] = shape;
    let wr = nx.div_ceil(64);
    let mut bits_a = vec![0u64; wr * ny * nz];
    let mut bits_b = vec![0u64; wr * ny * nz];
    let extent = bits_a
        .par_chunks_mut(wr * ny)
        .zip(bits_b.par_chunks_mut(wr * ny))
        .zip(predicted.par_chunks(nx * ny).zip(truth.par_chunks(nx * ny)))
        .enumerate()
        .map(|(z, ((plane_a, plane_b), (pa, pb)))| {
            let mut e = Extent::EMPTY;
            let rows = plane_a
                .chunks_exact_mut(wr)
                .zip(plane_b.chunks_exact_mut(wr))
                .zip(pa.chunks_exact(nx).zip(pb.chunks_exact(nx)));
            for (y, ((wa, wb), (ra, rb))) in rows.enumerate() {
                row_bits(ra, label, wa);
                row_bits(rb, label, wb);
                let in_a = wa.iter().any(|&w| w != 0);
                let in_b = wb.iter().any(|&w| w != 0);
                if !(in_a || in_b) {
                    continue;
                }
                let union = |k: usize| wa[k] | wb[k];
                let first = (0..wr).find(|&k| union(k) != 0).unwrap_or(0);
                let last = (0..wr).rfind(|&k| union(k) != 0).unwrap_or(0);
                e = e.merge(Extent {
                    has_predicted: in_a,
                    has_truth: in_b,
                    lo: [64 * first + union(first).trailing_zeros() as usize, y, z],
                    hi: [64 * last + 63 - union(last).leading_zeros() as usize, y, z],
                });
            }
            e
        })
        .reduce(|| Extent::EMPTY, Extent::merge);
    (bits_a, bits_b, extent)
}

/// Surface voxels of a mask inside a crop that contains the whole mask, as
/// bit rows: crop row `y + cy * z` (crop coordinates) holds `cw + 2` words,
/// a zero word at each end around `cw` words that hold the image x
/// coordinate `64 * (w0 + k) + b` at bit `b` of word `k + 1`, where
/// `w0 = x0 / 64` is the image word holding the crop's first x. Bit
/// position `p` of a row, below, is bit `p % 64` of word `p / 64 + 1`.
struct SurfaceBits {
    /// Crop size in y and z.
    cy: usize,
    cz: usize,
    /// First image x of the crop minus the image x of the first bit of the
    /// rows.
    shift: usize,
    /// Crop width in x.
    cx: usize,
    /// Words per row, without the two zero words.
    cw: usize,
    words: Vec<u64>,
}

impl SurfaceBits {
    /// The surface of the mask given as bit rows `mask` (see [`mask_bits`])
    /// of an image of shape `shape`, inside `crop`. Each word is
    /// `m & !(left & right & up & down & front & back)` for the six
    /// neighbour masks, the outside of the image counting as background.
    fn new(mask: &[u64], shape: [usize; 3], crop: &Crop) -> SurfaceBits {
        let [_, ny, nz] = shape;
        let wr = shape[0].div_ceil(64);
        let [cx, cy, cz] = crop.size();
        let [x0, y0, z0] = crop.lo;
        let (w0, w1) = (x0 / 64, crop.hi[0] / 64);
        let cw = w1 - w0 + 1;
        let mut words = vec![0u64; (cw + 2) * cy * cz];
        let zeros = vec![0u64; cw];
        // Words w0..=w1 of image row (y, z), or zeros outside the image.
        let row = |y: Option<usize>, z: Option<usize>| match (y, z) {
            (Some(y), Some(z)) if y < ny && z < nz => {
                let base = wr * (y + ny * z);
                &mask[base + w0..=base + w1]
            }
            _ => &zeros[..],
        };
        words
            .par_chunks_mut((cw + 2) * cy)
            .enumerate()
            .for_each(|(dz, plane)| {
                let z = z0 + dz;
                for (dy, out) in plane.chunks_exact_mut(cw + 2).enumerate() {
                    let y = y0 + dy;
                    let m = row(Some(y), Some(z));
                    if m.iter().all(|&w| w == 0) {
                        continue;
                    }
                    let [up, down, front, back] = [
                        row(y.checked_sub(1), Some(z)),
                        row(Some(y + 1), Some(z)),
                        row(Some(y), z.checked_sub(1)),
                        row(Some(y), Some(z + 1)),
                    ];
                    // The mask is empty outside the crop, so the words
                    // before w0 and after w1 are zero.
                    for k in 0..cw {
                        let before = if k > 0 { m[k - 1] } else { 0 };
                        let after = if k + 1 < cw { m[k + 1] } else { 0 };
                        let left = (m[k] << 1) | (before >> 63);
                        let right = (m[k] >> 1) | (after << 63);
                        let interior = left & right & up[k] & down[k] & front[k] & back[k];
                        out[k + 1] = m[k] & !interior;
                    }
                }
            });
        SurfaceBits {
            cy,
            cz,
            shift: x0 - 64 * w0,
            cx,
            cw,
            words,
        }
    }

    /// The surfels of the mask given as bit rows `mask` (see [`mask_bits`]) of an image of
    /// shape `shape`, on the corner grid (one larger than the image in each direction),
    /// inside the corner box `corners`, which holds every corner of the mask's voxels; and the
    /// code of each surfel (see [`super::surfels`]) in the order [`directed_distances`]
    /// answers them as queries: by z, then y, then x. Corner `(x, y, z)` joins the voxels
    /// `x − 1..=x`, `y − 1..=y`, `z − 1..=z`; it carries a surfel when some of them are in the
    /// mask and some not (the outside of the image being outside the mask).
    fn surfels(mask: &[u64], shape: [usize; 3], corners: &Crop) -> (SurfaceBits, Vec<u8>) {
        let [_, ny, nz] = shape;
        let wr = shape[0].div_ceil(64);
        let [cx, cy, cz] = corners.size();
        let [x0, y0, z0] = corners.lo;
        let (w0, w1) = (x0 / 64, corners.hi[0] / 64);
        let cw = w1 - w0 + 1;
        let mut words = vec![0u64; (cw + 2) * cy * cz];
        // Word w0 + k of image row (y, z); zero outside the image.
        let word = |y: Option<usize>, z: Option<usize>, k: usize| match (y, z) {
            (Some(y), Some(z)) if y < ny && z < nz && w0 + k < wr => {
                mask[wr * (y + ny * z) + w0 + k]
            }
            _ => 0,
        };
        let codes: Vec<Vec<u8>> = words
            .par_chunks_mut((cw + 2) * cy)
            .enumerate()
            .map(|(dz, plane)| {
                let mut codes = Vec::new();
                let z = z0 + dz;
                let zs = [z.checked_sub(1), Some(z)];
                for (dy, out) in plane.chunks_exact_mut(cw + 2).enumerate() {
                    let y = y0 + dy;
                    let ys = [y.checked_sub(1), Some(y)];
                    // The voxel x - 1 of the corner x at bit 0 is bit 63 of the previous
                    // word; before the box's first word it lies left of the box: empty.
                    let mut previous = [0u64; 4];
                    for k in 0..cw {
                        // Row r = dy + 2 dz of the block holds the code bits 2r (x - 1) and
                        // 2r + 1 (x).
                        let rows = [
                            word(ys[0], zs[0], k),
                            word(ys[1], zs[0], k),
                            word(ys[0], zs[1], k),
                            word(ys[1], zs[1], k),
                        ];
                        let left = [0, 1, 2, 3].map(|r| (rows[r] << 1) | (previous[r] >> 63));
                        let any = (rows[0] | rows[1] | rows[2] | rows[3])
                            | (left[0] | left[1] | left[2] | left[3]);
                        let all = (rows[0] & rows[1] & rows[2] & rows[3])
                            & (left[0] & left[1] & left[2] & left[3]);
                        let surfel = any & !all;
                        out[k + 1] = surfel;
                        let mut bits = surfel;
                        while bits != 0 {
                            let b = bits.trailing_zeros();
                            let mut code = 0u8;
                            for r in 0..4 {
                                let pair = ((left[r] >> b) & 1) | (((rows[r] >> b) & 1) << 1);
                                code |= (pair as u8) << (2 * r);
                            }
                            codes.push(code);
                            bits &= bits - 1;
                        }
                        previous = rows;
                    }
                }
                codes
            })
            .collect();
        let bits = SurfaceBits {
            cy,
            cz,
            shift: x0 - 64 * w0,
            cx,
            cw,
            words,
        };
        (bits, codes.concat())
    }

    /// Number of surface voxels.
    fn count(&self) -> u64 {
        self.words.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// The surface voxels, grouped in cells of [`CLUSTER_VOXELS`]³ bit
    /// positions: a cell's voxels are read from its column of words in each
    /// slab of cells, row by row, straight into place. No sort, and no copy.
    fn clustered(&self) -> Clustered {
        const SIDE: usize = CLUSTER_VOXELS as usize;
        const { assert!(64 % SIDE == 0 && SIDE < 64) };
        let mut clustered = Clustered::new();
        let total = self.words.iter().map(|w| w.count_ones() as usize).sum();
        clustered.reserve(total);
        // The non-zero words of one column of words of the slab, by row.
        let mut column: Vec<(u64, [i32; 2])> = Vec::with_capacity(SIDE * SIDE);
        for z0 in (0..self.cz).step_by(SIDE) {
            for y0 in (0..self.cy).step_by(SIDE) {
                for k in 0..self.cw {
                    column.clear();
                    for z in z0..(z0 + SIDE).min(self.cz) {
                        for y in y0..(y0 + SIDE).min(self.cy) {
                            let word = self.bits(y, z)[k];
                            if word != 0 {
                                column.push((word, [y as i32, z as i32]));
                            }
                        }
                    }
                    for part in 0..64 / SIDE {
                        // The crop's x of the part's first bit, which may lie
                        // before the crop.
                        let first = (64 * k + SIDE * part) as i32 - self.shift as i32;
                        let x = |b: u32| first + b as i32;
                        let (mut lo, mut hi) = ([i32::MAX; 3], [i32::MIN; 3]);
                        for &(word, [y, z]) in &column {
                            let mut bits = word >> (SIDE * part) & ((1 << SIDE) - 1);
                            if bits == 0 {
                                continue;
                            }
                            let row_lo = [x(bits.trailing_zeros()), y, z];
                            let row_hi = [x(63 - bits.leading_zeros()), y, z];
                            for a in 0..3 {
                                lo[a] = lo[a].min(row_lo[a]);
                                hi[a] = hi[a].max(row_hi[a]);
                            }
                            while bits != 0 {
                                clustered.push_feature([x(bits.trailing_zeros()), y, z]);
                                bits &= bits - 1;
                            }
                        }
                        clustered.end_cluster([lo, hi]);
                    }
                }
            }
        }
        clustered
    }

    /// Crop row `(y, z)`, with its zero words.
    #[inline]
    fn row(&self, y: usize, z: usize) -> &[u64] {
        let base = (self.cw + 2) * (y + self.cy * z);
        &self.words[base..base + self.cw + 2]
    }

    /// Crop row `(y, z)` without its zero words.
    #[inline]
    fn bits(&self, y: usize, z: usize) -> &[u64] {
        let row = self.row(y, z);
        &row[1..row.len() - 1]
    }

    /// The surface voxels of crop plane z as sorted in-plane crop indices
    /// `x + cx * y` (the form [`ColumnSites`] takes).
    #[cfg(test)]
    fn plane_indices(&self, z: usize) -> Vec<u32> {
        let mut out = Vec::new();
        for y in 0..self.cy {
            for_each_bit(self.bits(y, z), |b| {
                out.push((b - self.shift + self.cx * y) as u32);
            });
        }
        out
    }
}

/// Calls `f` with the position of each set bit of `words`, in increasing
/// order.
#[inline]
fn for_each_bit(words: &[u64], mut f: impl FnMut(usize)) {
    for (k, &word) in words.iter().enumerate() {
        let mut bits = word;
        while bits != 0 {
            f(64 * k + bits.trailing_zeros() as usize);
            bits &= bits - 1;
        }
    }
}

/// Surface voxels of the mask `vol == label` inside `crop` (which contains
/// the whole mask), one list per z plane of the crop, each holding sorted
/// in-plane crop indices `x + cx * y`.
#[cfg(test)]
fn surface_planes(vol: &[u8], label: u8, shape: [usize; 3], crop: &Crop) -> Vec<Vec<u32>> {
    let (mask, _, _) = mask_bits(vol, vol, label, shape);
    let surface = SurfaceBits::new(&mask, shape, crop);
    (0..surface.cz).map(|z| surface.plane_indices(z)).collect()
}

// ---------------------------------------------------------------------------
// Distance transform
// ---------------------------------------------------------------------------

/// Feature voxels of a `[cx, cy, cz]` box grouped by (x, y) column: the
/// sorted z coordinates of each column, plus which columns are non-empty.
struct ColumnSites {
    cx: usize,
    cy: usize,
    /// Offsets into `zs` of column `y + cy * x` (length `cx * cy + 1`).
    start: Vec<usize>,
    /// z coordinates, sorted within each column.
    zs: Vec<u32>,
    /// Offsets into `ys` of the non-empty columns with a given x.
    ys_start: Vec<usize>,
    /// y coordinates of the non-empty columns, x by x.
    ys: Vec<u32>,
    /// x coordinates holding at least one non-empty column.
    xs: Vec<u32>,
}

impl ColumnSites {
    /// `planes[z]` lists the in-plane indices `x + cx * y` of the features of
    /// plane z, sorted.
    fn new(cx: usize, cy: usize, planes: &[Vec<u32>]) -> ColumnSites {
        let columns = cx * cy;
        let column_of = |i: u32| {
            let i = i as usize;
            (i / cx) + cy * (i % cx)
        };
        let mut start = vec![0usize; columns + 1];
        for &i in planes.iter().flatten() {
            start[column_of(i) + 1] += 1;
        }
        for c in 0..columns {
            start[c + 1] += start[c];
        }
        let mut fill = start[..columns].to_vec();
        let mut zs = vec![0u32; start[columns]];
        for (z, plane) in planes.iter().enumerate() {
            for &i in plane {
                let c = column_of(i);
                zs[fill[c]] = z as u32;
                fill[c] += 1;
            }
        }
        let mut ys_start = Vec::with_capacity(cx + 1);
        let mut ys = Vec::new();
        let mut xs = Vec::new();
        ys_start.push(0);
        for x in 0..cx {
            let before = ys.len();
            for y in 0..cy {
                let c = y + cy * x;
                if start[c + 1] > start[c] {
                    ys.push(y as u32);
                }
            }
            if ys.len() > before {
                xs.push(x as u32);
            }
            ys_start.push(ys.len());
        }
        ColumnSites {
            cx,
            cy,
            start,
            zs,
            ys_start,
            ys,
            xs,
        }
    }

    /// Distance along z from `z` to the nearest feature of the non-empty
    /// column `c`, in voxels.
    fn nearest_dz(&self, c: usize, z: u32) -> u32 {
        let col = &self.zs[self.start[c]..self.start[c + 1]];
        let k = col.partition_point(|&f| f < z);
        let above = col.get(k).map_or(u32::MAX, |&f| f - z);
        let below = k.checked_sub(1).map_or(u32::MAX, |j| z - col[j]);
        above.min(below)
    }
}

/// One parabola `t ↦ w·(t − pos)² + h` of a lower envelope, lowest from
/// `num / den` on (`den > 0`; the fraction is kept unevaluated so that
/// building the envelope needs no division).
#[derive(Clone, Copy, Debug)]
struct Parabola {
    pos: f64,
    h: f64,
    num: f64,
    den: f64,
    tag: u64,
}

/// Lower envelope of parabolas of a common weight (Felzenszwalb &
/// Huttenlocher), built from sites given in increasing position.
#[derive(Default)]
struct Envelope {
    parts: Vec<Parabola>,
}

impl Envelope {
    fn clear(&mut self) {
        self.parts.clear();
    }

    /// Adds the site at `pos` (greater than every previous one) with height
    /// `h`; `inv_w` is 1 / w.
    #[inline]
    fn push(&mut self, pos: f64, h: f64, inv_w: f64, tag: u64) {
        let (mut num, mut den) = (f64::NEG_INFINITY, 1.0);
        while let Some(top) = self.parts.last() {
            // The new parabola lies below the top one from n / d on.
            let n = (h - top.h) * inv_w + (pos - top.pos) * (pos + top.pos);
            let d = 2.0 * (pos - top.pos);
            // n / d <= top.num / top.den, both denominators positive.
            if n * top.den <= top.num * d {
                self.parts.pop();
            } else {
                (num, den) = (n, d);
                break;
            }
        }
        self.parts.push(Parabola {
            pos,
            h,
            num,
            den,
            tag,
        });
    }

    /// The parabola lowest at `t`; `j` is a cursor for queries in increasing
    /// `t` (start at 0).
    #[inline]
    fn lowest_at(&self, j: &mut usize, t: f64) -> &Parabola {
        while let Some(next) = self.parts.get(*j + 1) {
            if next.num < t * next.den {
                *j += 1;
            } else {
                break;
            }
        }
        &self.parts[*j]
    }
}

/// Steps of the outward scan of the x pass before a query falls back to the
/// lower envelope of its row.
const SCAN_STEPS: usize = 16;

/// Per-thread buffers of [`plane_distances`].
#[derive(Default)]
struct Scratch {
    env: Envelope,
    /// `(y, start, end)` of each query row: `queries[start..end]` lie in row y.
    rows: Vec<(u32, usize, usize)>,
    /// Sites `(y, dz)` of the current plane of constant x.
    column: Vec<(u32, u32)>,
    /// After the z and y passes: squared distance in mm² from `(x, row)` to
    /// the nearest feature within the plane of constant x, at
    /// `x * rows.len() + row`; valid where `stamp` equals `generation`.
    g: Vec<f64>,
    /// Offsets `(dy << 32) | dz` to that feature.
    g_off: Vec<u64>,
    stamp: Vec<u32>,
    generation: u32,
}

#[inline]
fn sq(v: f64) -> f64 {
    v * v
}

/// For the query voxels `queries` (sorted in-plane indices `x + cx * y`,
/// non-empty) of plane `z`, writes to `out` the exact distance in mm to the
/// nearest feature of `sites` (infinite if there is none).
fn plane_distances(
    sites: &ColumnSites,
    spacing: [f64; 3],
    z: u32,
    queries: &[u32],
    scratch: &mut Scratch,
    out: &mut [f64],
) {
    debug_assert_eq!(queries.len(), out.len());
    let [sx, _, _] = spacing;
    let cx = sites.cx;
    if sites.xs.is_empty() {
        out.fill(f64::INFINITY);
        return;
    }
    let Scratch {
        env,
        rows,
        column,
        g,
        g_off,
        stamp,
        generation,
    } = scratch;

    rows.clear();
    for (k, &q) in queries.iter().enumerate() {
        let y = q / cx as u32;
        match rows.last_mut() {
            Some(row) if row.0 == y => row.2 = k + 1,
            _ => rows.push((y, k, k + 1)),
        }
    }
    let nrows = rows.len();
    if g.len() < nrows * cx {
        g.resize(nrows * cx, 0.0);
        g_off.resize(nrows * cx, 0);
        stamp.resize(nrows * cx, 0);
    }
    *generation = generation.wrapping_add(1);
    if *generation == 0 {
        stamp.fill(0);
        *generation = 1;
    }
    let gen = *generation;
    let mut cols = ColumnPass {
        spacing,
        rows,
        env,
        g,
        g_off,
        stamp,
        gen,
    };

    // z and y passes: for each plane of constant x, the lower envelope along
    // y of the parabolas (sy·(y − y'))² + (sz·dz(y'))², evaluated at the
    // query rows.
    for &x in &sites.xs {
        let x = x as usize;
        column.clear();
        column.extend(
            sites.ys[sites.ys_start[x]..sites.ys_start[x + 1]]
                .iter()
                .map(|&y| (y, sites.nearest_dz(y as usize + sites.cy * x, z))),
        );
        cols.run(x, column);
    }

    // x pass, at the query voxels only.
    let inv_wx = 1.0 / sq(sx);
    for (r, &(_, begin, end)) in rows.iter().enumerate() {
        let g_at = |x: usize| {
            let i = x * nrows + r;
            if stamp[i] == gen {
                g[i]
            } else {
                f64::INFINITY
            }
        };
        let distance = |xq: usize, xf: usize| {
            let dx = xq.abs_diff(xf) as f64;
            let off = g_off[xf * nrows + r];
            let (dy, dz) = ((off >> 32) as f64, (off as u32) as f64);
            ((sq(sx * dx) + sq(spacing[1] * dy)) + sq(spacing[2] * dz)).sqrt()
        };
        // Each query first scans outwards from xq, stopping once (sx·k)²
        // alone reaches the best value found; a query that needs more than
        // SCAN_STEPS steps is answered by the lower envelope of the row
        // instead, built at most once per row.
        let mut envelope_built = false;
        let mut j = 0;
        for (&q, o) in queries[begin..end].iter().zip(&mut out[begin..end]) {
            let xq = q as usize % cx;
            let mut best = g_at(xq);
            let mut nearest = best.is_finite().then_some(xq);
            let mut scanned = false;
            for k in 1..=SCAN_STEPS {
                let dx2 = sq(sx * k as f64);
                if dx2 >= best || (k > xq && xq + k >= cx) {
                    scanned = true;
                    break;
                }
                for xf in [xq.checked_sub(k), Some(xq + k).filter(|&v| v < cx)]
                    .into_iter()
                    .flatten()
                {
                    let v = dx2 + g_at(xf);
                    if v < best {
                        (best, nearest) = (v, Some(xf));
                    }
                }
            }
            if !scanned {
                if !envelope_built {
                    env.clear();
                    // The y pass set every x with a feature.
                    for &x in &sites.xs {
                        let h = g_at(x as usize);
                        if h.is_finite() {
                            env.push(f64::from(x), h, inv_wx, u64::from(x));
                        }
                    }
                    envelope_built = true;
                }
                // The envelope covers every x with a value, the scanned ones
                // included; it is empty only if the row has no value at all.
                if !env.parts.is_empty() {
                    nearest = Some(env.lowest_at(&mut j, xq as f64).tag as usize);
                }
            }
            *o = nearest.map_or(f64::INFINITY, |xf| distance(xq, xf));
        }
    }
}

/// The y pass of [`plane_distances`] for one plane of constant x.
struct ColumnPass<'a> {
    spacing: [f64; 3],
    rows: &'a [(u32, usize, usize)],
    env: &'a mut Envelope,
    g: &'a mut [f64],
    g_off: &'a mut [u64],
    stamp: &'a mut [u32],
    gen: u32,
}

impl ColumnPass<'_> {
    /// Sets `g` at the query rows of plane x, from its sites `(y, dz)`
    /// (sorted by y, non-empty).
    fn run(&mut self, x: usize, sites: &[(u32, u32)]) {
        let [_, sy, sz] = self.spacing;
        let inv_wy = 1.0 / sq(sy);
        self.env.clear();
        for &(y, dz) in sites {
            self.env.push(
                f64::from(y),
                sq(sz * f64::from(dz)),
                inv_wy,
                (u64::from(y) << 32) | u64::from(dz),
            );
        }
        let nrows = self.rows.len();
        let base = x * nrows;
        let mut j = 0;
        for (r, row) in self.rows.iter().enumerate() {
            let y = row.0;
            let p = self.env.lowest_at(&mut j, f64::from(y));
            let dy = y.abs_diff((p.tag >> 32) as u32);
            let dz = p.tag as u32;
            self.g[base + r] = sq(sy * f64::from(dy)) + sq(sz * f64::from(dz));
            self.g_off[base + r] = (u64::from(dy) << 32) | u64::from(dz);
            self.stamp[base + r] = self.gen;
        }
    }
}

/// Distances from every surface voxel of `queries` to the nearest one of
/// `features` (same crop), in crop plane order and, within a plane, in
/// increasing `x + cx * y`.
///
/// Only the words of 64 queries with a cell within about [`NEAR_VOXELS`]
/// of a feature ([`NearCells`]) are searched here. Their queries first try
/// the nearest offsets word-parallel ([`NearOffsets`]): most queries of
/// close surfaces are resolved there. Those left that lie in a near cell
/// get a direct search of the feature rows around them ([`nearest_sq`])
/// bounded by [`SEARCH_VOXELS`] voxels, and those still unresolved, with
/// the queries not near any feature, go from every plane at once to the
/// candidate pruning of [`super::candidates`], whose work follows the
/// geometry rather than the size of the crop. A plane whose queries mostly
/// fail the direct search sends its remaining queries there at once. (With
/// spacings far apart, the offsets can reach beyond the near cells along the
/// finest axis; the queries they would have settled get the same value from
/// the pruning.)
///
/// The work is charged to `budget` in batches; once it is exhausted the
/// remaining work is skipped and the result is incomplete.
fn directed_distances(
    features: &SurfaceBits,
    queries: &SurfaceBits,
    spacing: [f64; 3],
    budget: &WorkBudget,
) -> Vec<f64> {
    let weights = Weights::new(spacing, [64 * features.cw.max(1), features.cy, features.cz]);
    let offsets = NearOffsets::new(&weights);
    let smin = spacing.iter().copied().fold(f64::INFINITY, f64::min);
    let cap = sq(SEARCH_VOXELS * smin);
    let near_cells = NearCells::new(
        features,
        spacing.map(|s| (NEAR_VOXELS * smin / s).ceil() as usize),
    );
    let cw = queries.cw;
    // Per plane: the distances, [`MISSED`] for the queries left to the
    // candidate pruning, and those queries, in the same order.
    type Plane = (Vec<f64>, Vec<Point>);
    let per_plane: Vec<Plane> = (0..queries.cz)
        .into_par_iter()
        .map_init(
            || PlaneWork {
                rem: vec![0; cw],
                near: vec![0; cw],
                values: vec![0.0; 64 * cw],
            },
            |work, z| {
                let PlaneWork { rem, near, values } = work;
                let mut missed = Vec::new();
                if budget.exhausted() {
                    return (Vec::new(), missed);
                }
                // Room for a distance for every query of the plane: growing
                // costs more than counting them. The missed queries, often
                // none, grow as they come.
                let plane_queries: usize = (0..queries.cy)
                    .map(|y| {
                        queries
                            .bits(y, z)
                            .iter()
                            .map(|w| w.count_ones() as usize)
                            .sum::<usize>()
                    })
                    .sum();
                let mut out = Vec::with_capacity(plane_queries);
                // Charged in batches: one shared counter per row would cost more than
                // the rows of close surfaces.
                let mut pending = (queries.cy * cw) as u64;
                let mut failed = 0usize;
                // The nearest feature of the last query searched: its
                // distance to the next query bounds the search.
                let mut last: Option<[usize; 3]> = None;
                for y in 0..queries.cy {
                    let row = queries.bits(y, z);
                    if row.iter().all(|&w| w == 0) {
                        continue;
                    }
                    // Only the words of queries with a cell near a feature
                    // are searched for one; the others go to the candidate
                    // pruning at once.
                    for (k, (n, &w)) in near.iter_mut().zip(row).enumerate() {
                        *n = if w != 0 && near_cells.any_near(k, y, z) {
                            w
                        } else {
                            0
                        };
                    }
                    rem.copy_from_slice(near);
                    let mut row_steps = 0;
                    let give_up =
                        |searched: usize, failed: usize| searched >= 16 && 2 * failed > searched;
                    // Cheap enough to try even once the plane gave up the direct search.
                    if rem.iter().any(|&w| w != 0) {
                        row_steps += offsets.resolve(features, y, z, rem, values);
                    }
                    for_each_bit(row, |b| {
                        let bit = 1 << (b % 64);
                        let in_near_word = near[b / 64] & bit != 0;
                        if in_near_word && rem[b / 64] & bit == 0 {
                            out.push(values[b]);
                            return;
                        }
                        let searched = out.len() - missed.len() + failed;
                        let search = in_near_word
                            && !give_up(searched, failed)
                            && near_cells.may_be_near(b, y, z);
                        let mut d2 = f64::INFINITY;
                        if search {
                            let (mut bound, mut at) = (cap, None);
                            if let Some(f) = last {
                                let [dx, dy, dz] =
                                    [b.abs_diff(f[0]), y.abs_diff(f[1]), z.abs_diff(f[2])];
                                let v = (weights.x[dx] + weights.y[dy]) + weights.z[dz];
                                if v < bound {
                                    (bound, at) = (v, last);
                                }
                            }
                            let (v, found, probes) =
                                nearest_sq(features, &weights, [b, y, z], bound);
                            row_steps += probes;
                            d2 = v;
                            last = found.or(at);
                        }
                        if d2 < cap {
                            out.push(d2.sqrt());
                        } else {
                            failed += usize::from(search);
                            let x = b - queries.shift;
                            missed.push([x as i32, y as i32, z as i32]);
                            out.push(MISSED);
                        }
                    });
                    pending += row_steps;
                    if pending >= CHARGE_BATCH {
                        budget.charge(std::mem::take(&mut pending));
                        if budget.exhausted() {
                            return (out, missed);
                        }
                    }
                }
                budget.charge(pending);
                (out, missed)
            },
        )
        .collect();
    let mut out = Vec::with_capacity(per_plane.iter().map(|(o, _)| o.len()).sum());
    let mut missed = Vec::with_capacity(per_plane.iter().map(|(_, m)| m.len()).sum());
    for (plane, plane_missed) in per_plane {
        missed.extend(plane_missed);
        out.extend(plane);
    }
    if missed.is_empty() || budget.exhausted() {
        return out;
    }
    let size = [features.cx, features.cy, features.cz];
    let clustered = features.clustered();
    let distances =
        candidates::nearest_distances_clustered(clustered, &missed, spacing, size, budget);
    // The missed queries are in the order of their places in `out`.
    let places = out.iter_mut().filter(|d| **d == MISSED);
    for (place, d) in places.zip(distances) {
        *place = d;
    }
    out
}

/// The distance of a query left to the candidate pruning until it has one:
/// no distance is negative.
const MISSED: f64 = -1.0;

/// Steps [`directed_distances`] accumulates before charging them to the
/// budget: well under a millisecond of work.
pub(super) const CHARGE_BATCH: u64 = 1 << 16;

/// Per-thread buffers of [`directed_distances`].
struct PlaneWork {
    /// The queries of a row near a feature and not yet resolved by
    /// [`NearOffsets::resolve`].
    rem: Vec<u64>,
    /// The queries of a row in words that [`NearCells`] says may hold one
    /// near a feature.
    near: Vec<u64>,
    /// Distances set by [`NearOffsets::resolve`], by bit.
    values: Vec<f64>,
}

/// The offsets `(dx, dy, dz)` (each ≥ 0, standing for their sign variants)
/// of the smallest values of the distance formula, sorted by value, forming
/// a complete list: every offset whose value is at most the largest one
/// listed is listed. The first hit of a query among them is thus its exact
/// nearest feature.
struct NearOffsets {
    /// `(dx, dy, dz, distance in mm)`, by increasing distance.
    steps: Vec<([usize; 3], f64)>,
}

/// Offsets per axis enumerated by [`NearOffsets`], and the most it keeps.
const NEAR_STEPS: usize = 3;
const NEAR_MAX: usize = 4;

impl NearOffsets {
    fn new(w: &Weights) -> NearOffsets {
        let tables = [&w.x, &w.y, &w.z];
        let k = tables.map(|t| NEAR_STEPS.min(t.len() - 1));
        // Any offset with a component beyond k has a value at least that of
        // the step k + 1 alone.
        let complete_below = (0..3)
            .filter_map(|a| tables[a].get(k[a] + 1).copied())
            .fold(f64::INFINITY, f64::min);
        let mut all = Vec::new();
        for dz in 0..=k[2] {
            for dy in 0..=k[1] {
                for dx in 0..=k[0] {
                    let v = (w.x[dx] + w.y[dy]) + w.z[dz];
                    if v < complete_below {
                        all.push(([dx, dy, dz], v));
                    }
                }
            }
        }
        all.sort_by(|a, b| a.1.total_cmp(&b.1));
        let mut n = all.len().min(NEAR_MAX);
        // Cut between two values, so that the list stays complete.
        while n > 0 && n < all.len() && all[n].1 == all[n - 1].1 {
            n -= 1;
        }
        all.truncate(n);
        NearOffsets {
            steps: all.into_iter().map(|(o, v)| (o, v.sqrt())).collect(),
        }
    }

    /// Resolves the queries `rem` (bits of crop row `(y, z)`) that have a
    /// feature at one of the offsets: clears their bits and sets their
    /// distances in `values`. Returns the number of words it visited.
    fn resolve(
        &self,
        features: &SurfaceBits,
        y: usize,
        z: usize,
        rem: &mut [u64],
        values: &mut [f64],
    ) -> u64 {
        let mut visited = 0;
        let (cy, cz) = (features.cy, features.cz);
        let mut left: u32 = rem.iter().map(|w| w.count_ones()).sum();
        for &([dx, dy, dz], d) in &self.steps {
            let zs = [
                z.checked_sub(dz),
                Some(z + dz).filter(|&v| dz > 0 && v < cz),
            ];
            let ys = [
                y.checked_sub(dy),
                Some(y + dy).filter(|&v| dy > 0 && v < cy),
            ];
            for zz in zs.into_iter().flatten() {
                for yy in ys.into_iter().flatten() {
                    visited += rem.len() as u64;
                    let r = features.row(yy, zz);
                    for k in 0..rem.len() {
                        if rem[k] == 0 {
                            continue;
                        }
                        let (before, word, after) = (r[k], r[k + 1], r[k + 2]);
                        let near = if dx == 0 {
                            word
                        } else {
                            // Features at x + dx and at x - dx.
                            ((word >> dx) | (after << (64 - dx)))
                                | ((word << dx) | (before >> (64 - dx)))
                        };
                        let hit = rem[k] & near;
                        if hit != 0 {
                            rem[k] &= !hit;
                            left -= hit.count_ones();
                            for_each_bit(&[hit], |b| values[64 * k + b] = d);
                        }
                    }
                }
            }
            if left == 0 {
                return visited;
            }
        }
        visited
    }
}

/// Side of the cells of [`NearCells`], in voxels.
const CELL_VOXELS: usize = 2;

/// How near a feature a query must be, in units of the smallest spacing,
/// for [`directed_distances`] to search around it (rounded up to whole
/// cells of [`NearCells`]). The others go to the candidate pruning at once:
/// a search that fails costs more than the pruning of its query, and one
/// that succeeds beyond this costs about as much (measured on the CT
/// predictions of `cargo bench --bench scale -- ct`: with 2, `far` took
/// 5.9 s of CPU against 6.3 s with the whole search radius, `near` the
/// same 3.2 s).
const NEAR_VOXELS: f64 = 2.0;

/// Bit `c` set where bit `2c` or `2c + 1` of `word` is: the cells of
/// [`CELL_VOXELS`] voxels along a row that hold a feature.
fn cells_of(word: u64) -> u64 {
    let mut x = (word | word >> 1) & 0x5555_5555_5555_5555;
    x = (x | x >> 1) & 0x3333_3333_3333_3333;
    x = (x | x >> 2) & 0x0f0f_0f0f_0f0f_0f0f;
    x = (x | x >> 4) & 0x00ff_00ff_00ff_00ff;
    x = (x | x >> 8) & 0x0000_ffff_0000_ffff;
    (x | x >> 16) & 0xffff_ffff
}

/// Which cells of [`CELL_VOXELS`]³ voxels of the crop hold a feature or lie
/// next to one, within a radius rounded up to whole cells along each axis:
/// [`directed_distances`] searches only around the queries in them.
struct NearCells {
    /// Cell rows `yc + cells_y * zc`, [`NearCells::words`] words each; bit
    /// `c` of a row is the cell of bit positions `2c..2c + 2`.
    rows: Vec<u64>,
    words: usize,
    cells_y: usize,
}

impl NearCells {
    /// `radius` in voxels along each axis.
    fn new(features: &SurfaceBits, radius: [usize; 3]) -> NearCells {
        let (cy, cz, cw) = (features.cy, features.cz, features.cw);
        let words = (cw * 64 / CELL_VOXELS).div_ceil(64);
        let (cells_y, cells_z) = (cy.div_ceil(CELL_VOXELS), cz.div_ceil(CELL_VOXELS));
        let mut rows = vec![0u64; words * cells_y * cells_z];
        let per_word = 64 / CELL_VOXELS;
        for z in 0..cz {
            for y in 0..cy {
                let base = words * (y / CELL_VOXELS + cells_y * (z / CELL_VOXELS));
                for (k, &word) in features.bits(y, z).iter().enumerate() {
                    if word == 0 {
                        continue;
                    }
                    let cells = cells_of(word);
                    let at = k * per_word;
                    rows[base + at / 64] |= cells << (at % 64);
                }
            }
        }
        let reach = radius.map(|r| r.div_ceil(CELL_VOXELS));
        // Along x, within each row.
        let mut original = vec![0u64; words];
        for row in rows.chunks_exact_mut(words) {
            original.copy_from_slice(row);
            for s in 1..=reach[0].min(63) {
                for k in 0..words {
                    let before = if k > 0 { original[k - 1] } else { 0 };
                    let after = original.get(k + 1).copied().unwrap_or(0);
                    row[k] |= (original[k] << s) | (before >> (64 - s));
                    row[k] |= (original[k] >> s) | (after << (64 - s));
                }
            }
        }
        // Along y, then z: each row takes the union of the rows around it.
        let dilate = |rows: &[u64], step: usize, len: usize, reach: usize| {
            let mut out = rows.to_vec();
            for (r, row) in out.chunks_exact_mut(words).enumerate() {
                let at = (r / step) % len;
                for other in at.saturating_sub(reach)..(at + reach + 1).min(len) {
                    let o = r + other * step - at * step;
                    for k in 0..words {
                        row[k] |= rows[words * o + k];
                    }
                }
            }
            out
        };
        let rows = dilate(&rows, 1, cells_y, reach[1]);
        let rows = dilate(&rows, cells_y, cells_z, reach[2]);
        NearCells {
            rows,
            words,
            cells_y,
        }
    }

    /// False if no feature lies within the radius of the query at bit
    /// position `b` of crop row `(y, z)`.
    #[inline]
    fn may_be_near(&self, b: usize, y: usize, z: usize) -> bool {
        let c = b / CELL_VOXELS;
        let row = self.words * (y / CELL_VOXELS + self.cells_y * (z / CELL_VOXELS));
        self.rows[row + c / 64] & (1 << (c % 64)) != 0
    }

    /// False if no position of word `k` of crop row `(y, z)` may be near a
    /// feature ([`NearCells::may_be_near`]): one test for 64 queries.
    #[inline]
    fn any_near(&self, k: usize, y: usize, z: usize) -> bool {
        let row = self.words * (y / CELL_VOXELS + self.cells_y * (z / CELL_VOXELS));
        // The 32 cells of the word's 64 positions.
        self.rows[row + k / 2] >> (32 * (k % 2)) & 0xffff_ffff != 0
    }
}

/// Radius of the direct search of [`directed_distances`], in units of the
/// smallest voxel spacing; at most 64 (see [`nearest_sq`]). The search costs
/// about the square of the distance, and beyond a few voxels the candidate
/// pruning of [`super::candidates`] costs less (measured on the `far` CT
/// predictions of `cargo bench --bench scale -- ct`).
const SEARCH_VOXELS: f64 = 6.0;

/// Squared distances in mm² of the voxel steps along each axis:
/// `x[d] = (sx·d)²` and so on, computed as the distance formula does.
struct Weights {
    x: Vec<f64>,
    y: Vec<f64>,
    z: Vec<f64>,
}

impl Weights {
    fn new(spacing: [f64; 3], len: [usize; 3]) -> Weights {
        let table = |a: usize| (0..len[a]).map(|d| sq(spacing[a] * d as f64)).collect();
        Weights {
            x: table(0),
            y: table(1),
            z: table(2),
        }
    }
}

/// The smallest `((sx·dx)² + (sy·dy)²) + (sz·dz)²` (the distance formula
/// before its square root, in `f64`) over the voxels of `features` at
/// offsets `(dx, dy, dz)` from the voxel at bit `b` of crop row `(y, z)`, if
/// it is below `bound`, and the position `[bit, y, z]` of a voxel reaching
/// it; otherwise `bound` and `None`. `bound` must be at most
/// `(64·sx)²`: only the 63 bits on either side of `b` are examined.
///
/// Visits the feature rows `(y ± dy, z ± dz)` by increasing `|dz|` and, within
/// each, increasing `|dy|`, stopping along each as soon as `(sy·dy)² +
/// (sz·dz)²` alone reaches the best value found (every term of the formula
/// is non-negative and rounding is monotonic, so no voxel of those rows can
/// do better); in each row the nearest feature in x gives the row's
/// smallest value. The result is thus the exact minimum of the formula.
/// Also returns the number of steps `|dy|` taken, summed over the rows of
/// constant z visited: the work done, for the budget.
#[inline]
fn nearest_sq(
    features: &SurfaceBits,
    w: &Weights,
    [b, y, z]: [usize; 3],
    bound: f64,
) -> (f64, Option<[usize; 3]>, u64) {
    let mut best = bound;
    let mut at = None;
    let mut probes = 0;
    let (cy, cz) = (features.cy, features.cz);
    let (k, i) = (b / 64 + 1, b % 64);
    for dz in 0..cz {
        let below = z.checked_sub(dz);
        let above = Some(z + dz).filter(|&v| dz > 0 && v < cz);
        if below.is_none() && above.is_none() {
            break;
        }
        let wz = w.z[dz];
        if wz >= best {
            break;
        }
        for zz in [below, above].into_iter().flatten() {
            // Counted once per row of constant z, from the loop's own index: a count in
            // the innermost loop would slow the search measurably.
            let mut dy = 0;
            while dy < cy {
                let south = y.checked_sub(dy);
                let north = Some(y + dy).filter(|&v| dy > 0 && v < cy);
                if south.is_none() && north.is_none() {
                    break;
                }
                let wy = w.y[dy];
                if wy + wz >= best {
                    break;
                }
                for yy in [south, north].into_iter().flatten() {
                    let r = features.row(yy, zz);
                    let (before, word, after) = (r[k - 1], r[k], r[k + 1]);
                    // Bits b, b + 1, ..., b + 63 from bit 0 up, and bits b,
                    // b - 1, ..., b - 63 from bit 63 down.
                    let right = (((u128::from(after) << 64) | u128::from(word)) >> i) as u64;
                    let left = ((((u128::from(word) << 64) | u128::from(before)) << (63 - i)) >> 64)
                        as u64;
                    let (dr, dl) = (right.trailing_zeros(), left.leading_zeros());
                    let dx = dr.min(dl) as usize;
                    if dx < 64 {
                        let v = (w.x[dx] + wy) + wz;
                        if v < best {
                            best = v;
                            let bit = if dr <= dl { b + dx } else { b - dx };
                            at = Some([bit, yy, zz]);
                        }
                    }
                }
                dy += 1;
            }
            probes += dy as u64 + 1;
        }
    }
    (best, at, probes)
}

// ---------------------------------------------------------------------------
// Summary statistics
// ---------------------------------------------------------------------------

/// The metrics from the directed distances (both non-empty).
fn summarise(mut d_ab: Vec<f64>, mut d_ba: Vec<f64>, tolerance: f64) -> BoundaryMetrics {
    // Both surfaces are non-empty here: each mask has at least one voxel.
    let hd95_mm = percentile_linear(&mut d_ab, 95.0).max(percentile_linear(&mut d_ba, 95.0));
    let mut pooled = d_ab;
    pooled.extend(d_ba);
    let assd_mm = compensated_sum(&pooled) / pooled.len() as f64;
    let within = pooled.iter().filter(|&&d| d <= tolerance).count();
    let nsd_voxels = within as f64 / pooled.len() as f64;
    let hd_mm = pooled.iter().copied().fold(0.0, f64::max);
    let hd95_pooled_mm = percentile_linear(&mut pooled, 95.0);
    BoundaryMetrics {
        hd95_mm,
        hd95_pooled_mm,
        hd_mm,
        assd_mm,
        nsd_voxels,
    }
}

/// A direction of the surfel distances: the distance of each surfel and its corner code.
type Directed<'a> = (&'a [f64], &'a [u8]);

/// DeepMind's summaries of the surfel distances of both directions (both non-empty), each
/// surfel weighted by the area `areas` gives its code.
fn summarise_surfels(
    a: Directed,
    b: Directed,
    areas: &[f64; 256],
    tolerance: f64,
) -> SurfelMetrics {
    let area = |c: &u8| areas[usize::from(*c)];
    let within = |(d, c): Directed| -> f64 {
        d.iter()
            .zip(c)
            .filter(|&(&d, _)| d <= tolerance)
            .map(|(_, c)| area(c))
            .sum()
    };
    let total = |(_, c): Directed| -> f64 { c.iter().map(area).sum() };
    let mean = |(d, c): Directed| -> f64 {
        d.iter().zip(c).map(|(&d, c)| d * area(c)).sum::<f64>() / total((d, c))
    };
    let (hd95_a, hd95_b) = rayon::join(
        || weighted_percentile_lower(a, areas, 0.95),
        || weighted_percentile_lower(b, areas, 0.95),
    );
    SurfelMetrics {
        nsd: (within(a) + within(b)) / (total(a) + total(b)),
        hd95_mm: hd95_a.max(hd95_b),
        assd_mm: (mean(a) + mean(b)) / 2.0,
    }
}

/// DeepMind's area-weighted percentile: the distances sorted, the first whose cumulative share
/// of the area reaches `share` (`np.searchsorted(np.cumsum(w) / w.sum(), share)`), or the
/// largest. Equal distances return the same value wherever the search stops among them, so
/// this is the smallest distance `v` for which the area of the distances `<= v` reaches
/// `share` of the total, found without sorting all of them: the area is summed below a
/// count-based quantile a little under `share`, and only the distances above it are sorted.
fn weighted_percentile_lower((distances, codes): Directed, areas: &[f64; 256], share: f64) -> f64 {
    let mut pairs: Vec<(f64, f64)> = distances
        .iter()
        .zip(codes)
        .map(|(&d, &c)| (d, areas[usize::from(c)]))
        .collect();
    let total: f64 = pairs.iter().map(|p| p.1).sum();
    let by_distance = |p: &(f64, f64), q: &(f64, f64)| p.0.total_cmp(&q.0);
    let n = pairs.len();
    // Below `split` (by count) lies, with areas of similar size, well under `share` of the area.
    let split = ((n as f64) * (share - 0.05).max(0.0)) as usize;
    let mut below = 0.0;
    let mut start = 0;
    if split > 0 && split < n {
        pairs.select_nth_unstable_by(split, by_distance);
        let area_below: f64 = pairs[..split].iter().map(|p| p.1).sum();
        if area_below / total < share {
            (below, start) = (area_below, split);
        }
    }
    let rest = &mut pairs[start..];
    rest.sort_unstable_by(by_distance);
    let mut cumulative = below;
    let mut i = 0;
    while i < rest.len() {
        let d = rest[i].0;
        while i < rest.len() && rest[i].0 == d {
            cumulative += rest[i].1;
            i += 1;
        }
        if cumulative / total >= share {
            return d;
        }
    }
    rest.last().map_or(0.0, |p| p.0)
}

/// Sum with Neumaier's compensation: accurate to about one rounding of the
/// result, whatever the number of terms.
fn compensated_sum(values: &[f64]) -> f64 {
    let (mut sum, mut compensation) = (0.0f64, 0.0f64);
    for &v in values {
        let t = sum + v;
        compensation += if sum.abs() >= v.abs() {
            (sum - t) + v
        } else {
            (v - t) + sum
        };
        sum = t;
    }
    sum + compensation
}

/// `np.percentile(values, q)` with numpy's default ("linear") method,
/// reproducing its arithmetic; `values` is non-empty and is reordered.
fn percentile_linear(values: &mut [f64], q: f64) -> f64 {
    let n = values.len();
    let virtual_index = (n - 1) as f64 * (q / 100.0);
    let below = virtual_index.floor();
    let gamma = virtual_index - below;
    let below = below as usize;
    let (_, &mut a, rest) = values.select_nth_unstable_by(below, f64::total_cmp);
    let b = if below + 1 < n {
        rest.iter().copied().fold(f64::INFINITY, f64::min)
    } else {
        a
    };
    // numpy's `_lerp`.
    let diff = b - a;
    if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic xorshift64 generator.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// Uniform in [0, 1).
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn coords(i: usize, shape: [usize; 3]) -> [usize; 3] {
        [
            i % shape[0],
            (i / shape[0]) % shape[1],
            i / (shape[0] * shape[1]),
        ]
    }

    /// The distance formula of the module (and of scipy), from voxel indices.
    fn dist(a: [usize; 3], b: [usize; 3], s: [f64; 3]) -> f64 {
        let d = [0, 1, 2].map(|k| a[k].abs_diff(b[k]) as f64 * s[k]);
        ((d[0] * d[0] + d[1] * d[1]) + d[2] * d[2]).sqrt()
    }

    fn brute_edt(features: &[bool], shape: [usize; 3], s: [f64; 3]) -> Vec<f64> {
        let feats: Vec<[usize; 3]> = (0..features.len())
            .filter(|&i| features[i])
            .map(|i| coords(i, shape))
            .collect();
        (0..features.len())
            .map(|i| {
                let c = coords(i, shape);
                feats
                    .iter()
                    .map(|&f| dist(c, f, s))
                    .fold(f64::INFINITY, f64::min)
            })
            .collect()
    }

    /// Surface voxels by the definition: in the mask, with a 6-neighbour
    /// outside the mask or outside the image.
    fn brute_surface(vol: &[u8], label: u8, shape: [usize; 3]) -> Vec<[usize; 3]> {
        let inside = |c: [i64; 3]| {
            (0..3).all(|k| c[k] >= 0 && (c[k] as usize) < shape[k])
                && vol[c[0] as usize + shape[0] * (c[1] as usize + shape[1] * c[2] as usize)]
                    == label
        };
        (0..vol.len())
            .map(|i| coords(i, shape))
            .filter(|&c| {
                let c = c.map(|v| v as i64);
                inside(c)
                    && [
                        [-1, 0, 0],
                        [1, 0, 0],
                        [0, -1, 0],
                        [0, 1, 0],
                        [0, 0, -1],
                        [0, 0, 1],
                    ]
                    .iter()
                    .any(|d| !inside([c[0] + d[0], c[1] + d[1], c[2] + d[2]]))
            })
            .collect()
    }

    fn directed(from: &[[usize; 3]], to: &[[usize; 3]], s: [f64; 3]) -> Vec<f64> {
        from.iter()
            .map(|&a| {
                to.iter()
                    .map(|&b| dist(a, b, s))
                    .fold(f64::INFINITY, f64::min)
            })
            .collect()
    }

    /// The metrics straight from the definitions (both masks non-empty).
    fn brute_metrics(a: &[u8], b: &[u8], label: u8, spec: &BoundarySpec) -> BoundaryMetrics {
        let sa = brute_surface(a, label, spec.shape);
        let sb = brute_surface(b, label, spec.shape);
        let d_ab = directed(&sa, &sb, spec.spacing_mm);
        let d_ba = directed(&sb, &sa, spec.spacing_mm);
        let mut pooled = [d_ab.clone(), d_ba.clone()].concat();
        let assd_mm = pooled.iter().sum::<f64>() / pooled.len() as f64;
        pooled.sort_by(f64::total_cmp);
        let directed_p95 = |mut d: Vec<f64>| {
            d.sort_by(f64::total_cmp);
            sorted_percentile(&d, 95.0)
        };
        let within = pooled
            .iter()
            .filter(|&&d| d <= spec.nsd_tolerance_mm)
            .count();
        BoundaryMetrics {
            hd95_mm: directed_p95(d_ab).max(directed_p95(d_ba)),
            hd95_pooled_mm: sorted_percentile(&pooled, 95.0),
            hd_mm: *pooled.last().unwrap(),
            assd_mm,
            nsd_voxels: within as f64 / pooled.len() as f64,
        }
    }

    /// numpy's linear percentile on sorted values.
    fn sorted_percentile(sorted: &[f64], q: f64) -> f64 {
        let v = (sorted.len() - 1) as f64 * (q / 100.0);
        let lo = v.floor() as usize;
        let hi = (lo + 1).min(sorted.len() - 1);
        let t = v - v.floor();
        let diff = sorted[hi] - sorted[lo];
        if t >= 0.5 {
            sorted[hi] - diff * (1.0 - t)
        } else {
            sorted[lo] + diff * t
        }
    }

    fn assert_close(got: BoundaryMetrics, want: BoundaryMetrics, tol: f64, what: &str) {
        let pairs = [
            ("hd95", got.hd95_mm, want.hd95_mm),
            ("hd95_pooled", got.hd95_pooled_mm, want.hd95_pooled_mm),
            ("hd", got.hd_mm, want.hd_mm),
            ("assd", got.assd_mm, want.assd_mm),
            ("nsd", got.nsd_voxels, want.nsd_voxels),
        ];
        for (name, g, w) in pairs {
            assert!(
                (g - w).abs() <= tol || g == w,
                "{what}: {name} = {g}, expected {w}"
            );
        }
    }

    fn spec(shape: [usize; 3], spacing_mm: [f64; 3], tol: f64) -> BoundarySpec {
        BoundarySpec {
            shape,
            spacing_mm,
            nsd_tolerance_mm: tol,
            worst_distance_mm: 123.0,
        }
    }

    fn volume(shape: [usize; 3], voxels: &[[usize; 3]], label: u8) -> Vec<u8> {
        let mut v = vec![0u8; shape.iter().product()];
        for c in voxels {
            v[c[0] + shape[0] * (c[1] + shape[1] * c[2])] = label;
        }
        v
    }

    fn cube(lo: [usize; 3], side: usize) -> Vec<[usize; 3]> {
        let mut out = Vec::new();
        for z in lo[2]..lo[2] + side {
            for y in lo[1]..lo[1] + side {
                for x in lo[0]..lo[0] + side {
                    out.push([x, y, z]);
                }
            }
        }
        out
    }

    // -- distance transform ---------------------------------------------

    #[test]
    fn edt_matches_brute_force_on_random_anisotropic_volumes() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        // Narrow rows (pruned x scan) and wide ones (lower envelope).
        let shapes = [
            [1, 1, 1],
            [5, 1, 1],
            [1, 6, 1],
            [1, 1, 7],
            [4, 3, 5],
            [7, 5, 4],
            [13, 9, 6],
            [23, 11, 7],
            [9, 21, 12],
        ];
        for (k, &shape) in shapes.iter().enumerate() {
            for density in [0.0, 0.005, 0.03, 0.2, 0.6] {
                let spacing = [
                    0.3 + 2.0 * rng.unit(),
                    0.3 + 2.0 * rng.unit(),
                    0.3 + 3.0 * rng.unit(),
                ];
                let n: usize = shape.iter().product();
                let mut features: Vec<bool> = (0..n).map(|_| rng.unit() < density).collect();
                if density > 0.0 && !features.iter().any(|&f| f) {
                    features[rng.below(n)] = true;
                }
                let fast = distance_transform_mm(&features, shape, spacing);
                let slow = brute_edt(&features, shape, spacing);
                assert_eq!(fast.len(), n);
                for (i, (f, s)) in fast.iter().zip(&slow).enumerate() {
                    assert!(
                        (f - s).abs() <= 1e-9 || f == s,
                        "case {k} {shape:?} {spacing:?} density {density}: voxel {i}: {f} vs {s}"
                    );
                }
            }
        }
    }

    #[test]
    fn edt_single_feature_and_edge_cases() {
        let shape = [6, 5, 4];
        let spacing = [0.5, 1.0, 2.5];
        let mut features = vec![false; 120];
        features[2 + 6 * (1 + 5 * 3)] = true; // (2, 1, 3)
        let d = distance_transform_mm(&features, shape, spacing);
        // (5, 4, 0): offsets (3, 3, 3) -> sqrt(1.5² + 3² + 7.5²).
        let far = 5 + 6 * 4; // z = 0
        assert!((d[far] - (1.5f64 * 1.5 + 9.0 + 7.5 * 7.5).sqrt()).abs() < 1e-12);
        assert_eq!(d[2 + 6 * (1 + 5 * 3)], 0.0);
        // No feature: infinite everywhere. Empty box: empty output.
        assert!(distance_transform_mm(&[false; 8], [2, 2, 2], spacing)
            .iter()
            .all(|v| v.is_infinite()));
        assert!(distance_transform_mm(&[], [0, 3, 3], spacing).is_empty());
    }

    #[test]
    #[should_panic(expected = "features for shape")]
    fn edt_length_mismatch_panics() {
        distance_transform_mm(&[true; 7], [2, 2, 2], [1.0; 3]);
    }

    // -- hand-computed metrics ------------------------------------------

    #[test]
    fn single_voxels_along_z() {
        let shape = [5, 6, 9];
        let s = spec(shape, [0.7, 0.9, 1.5], 3.0);
        for k in 1..=7usize {
            let a = volume(shape, &[[2, 3, 1]], 1);
            let b = volume(shape, &[[2, 3, 1 + k]], 1);
            let m = boundary_metrics(&a, &b, 1, &s).unwrap();
            let d = 1.5 * k as f64;
            assert_eq!((m.hd95_mm, m.hd_mm, m.assd_mm), (d, d, d), "k = {k}");
            // Both surface voxels are within 3 mm for k <= 2 only.
            assert_eq!(m.nsd_voxels, if k <= 2 { 1.0 } else { 0.0 }, "k = {k}");
        }
    }

    #[test]
    fn cube_against_cube_shifted_one_voxel_in_x() {
        // A: 3×3×3 cube x, y, z in 2..=4; B: the same cube at x in 3..=5.
        // Spacing (2, 1, 1) mm. Each cube has 26 surface voxels (all but its
        // centre).
        // A -> B: the 9 voxels of A's face x = 2 are 2 mm (one x step) from
        //   B's face x = 3; of A's 17 other surface voxels, 16 are surface
        //   voxels of B too (0 mm), and (4, 3, 3), B's centre, is 1 mm (one y
        //   step) from (4, 2, 3).
        // B -> A: symmetric: 9 × 2 mm (face x = 5), 16 × 0, and (3, 3, 3),
        //   A's centre, 1 mm.
        // Pooled (52 values, sorted): 32 × 0, 2 × 1, 18 × 2.
        //   hd95: position 51 × 0.95 = 48.45, between two 2s -> 2 mm.
        //   hd = 2 mm. assd: (18·2 + 2·1) / 52 = 19/26 mm.
        //   nsd at 1 mm: (32 + 2) / 52 = 17/26; at 0.5 mm: 32/52.
        let shape = [8, 8, 8];
        let a = volume(shape, &cube([2, 2, 2], 3), 1);
        let b = volume(shape, &cube([3, 2, 2], 3), 1);
        let m = boundary_metrics(&a, &b, 1, &spec(shape, [2.0, 1.0, 1.0], 1.0)).unwrap();
        assert_eq!(m.hd95_mm, 2.0);
        assert_eq!(m.hd_mm, 2.0);
        assert!((m.assd_mm - 19.0 / 26.0).abs() < 1e-15);
        assert!((m.nsd_voxels - 17.0 / 26.0).abs() < 1e-15);
        let m = boundary_metrics(&a, &b, 1, &spec(shape, [2.0, 1.0, 1.0], 0.5)).unwrap();
        assert!((m.nsd_voxels - 32.0 / 52.0).abs() < 1e-15);
        // Symmetric in its arguments.
        let m2 = boundary_metrics(&b, &a, 1, &spec(shape, [2.0, 1.0, 1.0], 0.5)).unwrap();
        assert_eq!(m, m2);
    }

    #[test]
    fn both_empty_is_perfect_and_one_empty_is_worst() {
        let shape = [4, 3, 2];
        let s = spec(shape, [1.0, 2.0, 3.0], 1.0);
        // Other labels are present but not the one scored.
        let mut a = vec![0u8; 24];
        let mut b = vec![2u8; 24];
        a[5] = 3;
        b[0] = 0;
        let perfect = BoundaryMetrics {
            hd95_mm: 0.0,
            hd95_pooled_mm: 0.0,
            hd_mm: 0.0,
            assd_mm: 0.0,
            nsd_voxels: 1.0,
        };
        assert_eq!(boundary_metrics(&a, &b, 1, &s), Some(perfect));
        let worst = BoundaryMetrics {
            hd95_mm: 123.0,
            hd95_pooled_mm: 123.0,
            hd_mm: 123.0,
            assd_mm: 123.0,
            nsd_voxels: 0.0,
        };
        assert_eq!(boundary_metrics(&a, &b, 2, &s), Some(worst));
        assert_eq!(boundary_metrics(&a, &b, 3, &s), Some(worst));
        let inf = BoundarySpec {
            worst_distance_mm: f64::INFINITY,
            ..s
        };
        assert_eq!(
            boundary_metrics(&a, &b, 3, &inf).unwrap().hd_mm,
            f64::INFINITY
        );
        // An empty image.
        assert_eq!(
            boundary_metrics(&[], &[], 1, &spec([0, 5, 5], [1.0; 3], 1.0)),
            Some(perfect)
        );
    }

    #[test]
    fn identical_masks_are_perfect() {
        let shape = [9, 8, 7];
        let mut rng = Rng(7);
        let a: Vec<u8> = (0..504).map(|_| rng.below(3) as u8).collect();
        let m = boundary_metrics(&a, &a, 1, &spec(shape, [0.8, 0.8, 2.5], 0.0)).unwrap();
        assert_eq!(
            (m.hd95_mm, m.hd_mm, m.assd_mm, m.nsd_voxels),
            (0.0, 0.0, 0.0, 1.0)
        );
    }

    #[test]
    fn image_edge_counts_as_background() {
        // A fills the whole 5×5×5 image: its surface is the 98 voxels on the
        // image border (the edge is background), not empty. B is the centre
        // voxel (2, 2, 2).
        let shape = [5, 5, 5];
        let spacing = [1.0, 0.5, 2.0];
        let a = vec![1u8; 125];
        let b = volume(shape, &[[2, 2, 2]], 1);
        let surface: usize = surface_planes(
            &a,
            1,
            shape,
            &Crop {
                lo: [0; 3],
                hi: [4; 3],
            },
        )
        .iter()
        .map(Vec::len)
        .sum();
        assert_eq!(surface, 98);
        let m = boundary_metrics(&a, &b, 1, &spec(shape, spacing, 1.0)).unwrap();
        // Farthest: a corner, offsets (2, 2, 2) -> sqrt(2² + 1² + 4²).
        assert_eq!(m.hd_mm, 21f64.sqrt());
        // B -> A: two y steps (0.5 mm each) reach the border.
        let brute = brute_metrics(&a, &b, 1, &spec(shape, spacing, 1.0));
        assert_close(m, brute, 1e-12, "full image vs centre");
        // The crop edge is not the image edge: a cube inside the image keeps
        // its interior voxel (26 surface voxels, its centre 1 step away).
        let shape = [9, 9, 9];
        let a = volume(shape, &cube([3, 3, 3], 3), 1);
        let b = volume(shape, &[[4, 4, 4]], 1);
        let m = boundary_metrics(&a, &b, 1, &spec(shape, [1.0, 1.0, 1.0], 1.0)).unwrap();
        let brute = brute_metrics(&a, &b, 1, &spec(shape, [1.0, 1.0, 1.0], 1.0));
        assert_close(m, brute, 1e-12, "cube vs centre");
        // d_ba = [1]; d_ab: 6 face centres at 1, 12 edges at √2, 8 corners at √3.
        let sum = 6.0 + 12.0 * 2f64.sqrt() + 8.0 * 3f64.sqrt() + 1.0;
        assert!((m.assd_mm - sum / 27.0).abs() < 1e-12);
        // Within 1 mm: the 6 face centres and B's voxel, of 27.
        assert_eq!(m.nsd_voxels, 7.0 / 27.0);
    }

    // -- against the definitions ------------------------------------------

    #[test]
    fn metrics_match_brute_force_on_random_volumes() {
        let mut rng = Rng(0xD1B5_4A32_D192_ED03);
        for case in 0..40 {
            let shape = [2 + rng.below(14), 2 + rng.below(12), 1 + rng.below(9)];
            let n: usize = shape.iter().product();
            let spacing = [
                0.4 + 2.0 * rng.unit(),
                0.4 + 2.0 * rng.unit(),
                0.5 + 3.0 * rng.unit(),
            ];
            // Blobs of label 1 in a background of labels 0 and 2, sometimes
            // only in a corner so that the crop is small.
            let blob = |rng: &mut Rng| {
                let centre = shape.map(|s| rng.unit() * s as f64);
                let radius = 0.5 + rng.unit() * 4.0;
                let noise = rng.unit() * 0.3;
                move |c: [usize; 3], r: f64| {
                    let d2: f64 = (0..3).map(|k| (c[k] as f64 - centre[k]).powi(2)).sum();
                    d2 <= radius * radius || r < noise * 0.1
                }
            };
            let (in_a, in_b) = (blob(&mut rng), blob(&mut rng));
            let mut a = vec![0u8; n];
            let mut b = vec![0u8; n];
            for i in 0..n {
                let c = coords(i, shape);
                a[i] = if in_a(c, rng.unit()) {
                    1
                } else {
                    2 * (rng.unit() < 0.3) as u8
                };
                b[i] = if in_b(c, rng.unit()) {
                    1
                } else {
                    2 * (rng.unit() < 0.3) as u8
                };
            }
            if !a.contains(&1) || !b.contains(&1) {
                continue;
            }
            let s = spec(shape, spacing, 0.5 + rng.unit() * 3.0);
            let fast = boundary_metrics(&a, &b, 1, &s).unwrap();
            assert_close(
                fast,
                brute_metrics(&a, &b, 1, &s),
                1e-9,
                &format!("case {case}"),
            );
            // Label 2 is noisy (many surfaces, all over the box).
            if a.contains(&2) && b.contains(&2) {
                let fast = boundary_metrics(&a, &b, 2, &s).unwrap();
                assert_close(
                    fast,
                    brute_metrics(&a, &b, 2, &s),
                    1e-9,
                    &format!("case {case}, label 2"),
                );
            }
        }
    }

    #[test]
    fn far_apart_masks_need_the_widest_band() {
        // Distances far beyond the first band: every band doubling is used.
        let shape = [40, 30, 20];
        let spacing = [0.6, 0.7, 0.5];
        let a = volume(shape, &[cube([0, 0, 0], 3), vec![[20, 2, 1]]].concat(), 1);
        let b = volume(shape, &cube([36, 26, 16], 4), 1);
        let s = spec(shape, spacing, 1.0);
        let fast = boundary_metrics(&a, &b, 1, &s).unwrap();
        assert_close(fast, brute_metrics(&a, &b, 1, &s), 1e-9, "far apart");
        assert!(fast.hd_mm > 25.0 && fast.nsd_voxels == 0.0);
    }

    #[test]
    fn metrics_match_full_distance_transform_on_ellipsoids() {
        // A larger case checked against `distance_transform_mm` over the
        // whole image (no crop, no band), for both directions.
        let shape = [64, 48, 40];
        let spacing = [0.7, 0.8, 1.5];
        let n: usize = shape.iter().product();
        let ell = |c: [f64; 3], r: [f64; 3]| {
            (0..n)
                .map(|i| {
                    let p = coords(i, shape);
                    let e: f64 = (0..3).map(|k| ((p[k] as f64 - c[k]) / r[k]).powi(2)).sum();
                    u8::from(e <= 1.0)
                })
                .collect::<Vec<u8>>()
        };
        let a = ell([30.0, 22.0, 19.0], [22.0, 15.0, 14.0]);
        let b = ell([33.5, 20.0, 21.0], [20.0, 17.0, 12.5]);
        let s = spec(shape, spacing, 1.0);
        let m = boundary_metrics(&a, &b, 1, &s).unwrap();
        let surface_mask = |v: &[u8]| {
            let mut mask = vec![false; n];
            for c in brute_surface(v, 1, shape) {
                mask[c[0] + shape[0] * (c[1] + shape[1] * c[2])] = true;
            }
            mask
        };
        let (sa, sb) = (surface_mask(&a), surface_mask(&b));
        let (dt_a, dt_b) = (
            distance_transform_mm(&sa, shape, spacing),
            distance_transform_mm(&sb, shape, spacing),
        );
        let d_ab: Vec<f64> = (0..n).filter(|&i| sa[i]).map(|i| dt_b[i]).collect();
        let d_ba: Vec<f64> = (0..n).filter(|&i| sb[i]).map(|i| dt_a[i]).collect();
        let want = summarise(d_ab, d_ba, 1.0);
        assert_close(m, want, 1e-12, "ellipsoids");
    }

    #[test]
    fn result_does_not_depend_on_thread_count() {
        let shape = [50, 40, 30];
        let mut rng = Rng(99);
        let n: usize = shape.iter().product();
        let a: Vec<u8> = (0..n)
            .map(|i| u8::from(coords(i, shape)[0] < 30 && rng.unit() < 0.9))
            .collect();
        let b: Vec<u8> = (0..n)
            .map(|i| u8::from(coords(i, shape)[1] > 8 && rng.unit() < 0.8))
            .collect();
        let s = spec(shape, [0.9, 0.6, 2.0], 1.0);
        let many = boundary_metrics(&a, &b, 1, &s).unwrap();
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| boundary_metrics(&a, &b, 1, &s).unwrap());
        assert_eq!(many, one);
    }

    #[test]
    fn the_step_budget_is_deterministic_and_never_changes_a_result() {
        let mut rng = Rng(0x5EED_B0D6_E7A1_C3F5);
        for case in 0..8 {
            let shape = [40 + rng.below(30), 30 + rng.below(20), 10 + rng.below(20)];
            let n: usize = shape.iter().product();
            // Masks from close (a blob and a noisy copy) to far apart (noise against a corner
            // blob), so that every stage of the search and the banded transform is charged.
            let far = case % 2 == 1;
            let density = 0.01 + 0.2 * rng.unit();
            let (mut a, mut b) = (vec![0u8; n], vec![0u8; n]);
            for i in 0..n {
                let c = coords(i, shape);
                let inside = c[0] < shape[0] / 3 && c[1] < shape[1] / 2;
                b[i] = u8::from(inside);
                a[i] = u8::from(if far {
                    !inside && rng.unit() < density
                } else {
                    inside ^ (rng.unit() < density)
                });
            }
            let s = spec(shape, [0.7, 0.9, 2.5], 1.5);
            let full = WorkBudget::unlimited();
            let want = boundary_metrics_within(&a, &b, 1, &s, &full)
                .unwrap()
                .unwrap();
            assert_eq!(boundary_metrics(&a, &b, 1, &s), Some(want));
            let steps = full.spent();
            assert!(steps > 0);
            let one_thread = WorkBudget::unlimited();
            rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .unwrap()
                .install(|| boundary_metrics_within(&a, &b, 1, &s, &one_thread));
            assert_eq!(one_thread.spent(), steps, "case {case}");
            let exact = WorkBudget::new(u64::MAX, steps);
            assert_eq!(
                boundary_metrics_within(&a, &b, 1, &s, &exact),
                Some(Ok(want)),
                "case {case}"
            );
            let short = WorkBudget::new(u64::MAX, steps - 1);
            assert_eq!(
                boundary_metrics_within(&a, &b, 1, &s, &short),
                Some(Err(OverBudget::Steps { limit: steps - 1 })),
                "case {case}"
            );
        }
    }

    #[test]
    fn the_surface_bound_is_checked_before_any_distance() {
        let shape = [16, 16, 8];
        let n: usize = shape.iter().product();
        // Every voxel of a checkerboard is a surface voxel.
        let checker: Vec<u8> = (0..n)
            .map(|i| {
                let [x, y, z] = coords(i, shape);
                ((x + y + z) % 2) as u8
            })
            .collect();
        let cube = volume(shape, &cube([4, 4, 2], 5), 1);
        let s = spec(shape, [1.0; 3], 1.0);
        let tight = WorkBudget::new(n as u64 / 2 - 1, u64::MAX);
        assert_eq!(
            boundary_metrics_within(&checker, &cube, 1, &s, &tight),
            Some(Err(OverBudget::Surface {
                voxels: n as u64 / 2,
                limit: n as u64 / 2 - 1
            }))
        );
        assert_eq!(tight.spent(), 0);
        let enough = WorkBudget::new(n as u64 / 2, u64::MAX);
        assert_eq!(
            boundary_metrics_within(&checker, &cube, 1, &s, &enough),
            Some(Ok(boundary_metrics(&checker, &cube, 1, &s).unwrap()))
        );
        // The truth's surface is the organizers': it is not bounded.
        assert!(matches!(
            boundary_metrics_within(&cube, &checker, 1, &s, &tight),
            Some(Ok(_))
        ));
    }

    #[test]
    fn invalid_inputs_are_none() {
        let shape = [3, 2, 2];
        let v = vec![1u8; 12];
        let ok = spec(shape, [1.0; 3], 1.0);
        assert!(boundary_metrics(&v, &v, 1, &ok).is_some());
        assert_eq!(boundary_metrics(&v[..11], &v, 1, &ok), None);
        assert_eq!(boundary_metrics(&v, &v[..11], 1, &ok), None);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let s = BoundarySpec {
                spacing_mm: [1.0, bad, 1.0],
                ..ok
            };
            assert_eq!(boundary_metrics(&v, &v, 1, &s), None, "spacing {bad}");
        }
        for bad in [-0.1, f64::NAN] {
            let s = BoundarySpec {
                nsd_tolerance_mm: bad,
                ..ok
            };
            assert_eq!(boundary_metrics(&v, &v, 1, &s), None);
            let s = BoundarySpec {
                worst_distance_mm: bad,
                ..ok
            };
            assert_eq!(boundary_metrics(&v, &v, 1, &s), None);
        }
        let huge = BoundarySpec {
            shape: [usize::MAX, 2, 1],
            ..ok
        };
        assert_eq!(boundary_metrics(&v, &v, 1, &huge), None);
    }

    #[test]
    fn percentile_matches_numpy() {
        // np.percentile([0, 10], 95) == 9.5; np.percentile(range(21), 95) == 19.
        assert_eq!(percentile_linear(&mut [10.0, 0.0], 95.0), 9.5);
        let mut v: Vec<f64> = (0..21).rev().map(f64::from).collect();
        assert_eq!(percentile_linear(&mut v, 95.0), 19.0);
        assert_eq!(percentile_linear(&mut [4.0], 95.0), 4.0);
        let mut rng = Rng(3);
        for n in 1..60 {
            let mut v: Vec<f64> = (0..n).map(|_| (rng.below(7) as f64) * rng.unit()).collect();
            let mut sorted = v.clone();
            sorted.sort_by(f64::total_cmp);
            assert_eq!(
                percentile_linear(&mut v, 95.0),
                sorted_percentile(&sorted, 95.0)
            );
        }
    }

    // -- the previous implementation --------------------------------------

    /// `boundary_metrics` before the bit-row search (both masks non-empty):
    /// byte-wise surfaces and the exact plane transform for every query.
    fn previous_metrics(a: &[u8], b: &[u8], label: u8, spec: &BoundarySpec) -> BoundaryMetrics {
        let shape = spec.shape;
        let mut crop = Crop {
            lo: [usize::MAX; 3],
            hi: [0; 3],
        };
        for i in (0..a.len()).filter(|&i| a[i] == label || b[i] == label) {
            let c = coords(i, shape);
            crop.lo = [0, 1, 2].map(|k| crop.lo[k].min(c[k]));
            crop.hi = [0, 1, 2].map(|k| crop.hi[k].max(c[k]));
        }
        let [cx, cy, _] = crop.size();
        let surface_a = previous_surface_planes(a, label, shape, &crop);
        let surface_b = previous_surface_planes(b, label, shape, &crop);
        let sites_a = ColumnSites::new(cx, cy, &surface_a);
        let sites_b = ColumnSites::new(cx, cy, &surface_b);
        let directed = |sites: &ColumnSites, queries: &[Vec<u32>]| {
            let mut scratch = Scratch::default();
            let mut all = Vec::new();
            for (z, q) in queries.iter().enumerate() {
                let mut out = vec![0.0; q.len()];
                if !q.is_empty() {
                    plane_distances(sites, spec.spacing_mm, z as u32, q, &mut scratch, &mut out);
                }
                all.extend(out);
            }
            all
        };
        let d_ab = directed(&sites_b, &surface_a);
        let d_ba = directed(&sites_a, &surface_b);
        summarise(d_ab, d_ba, spec.nsd_tolerance_mm)
    }

    /// The byte-wise surface extraction of the previous implementation.
    fn previous_surface_planes(
        vol: &[u8],
        label: u8,
        shape: [usize; 3],
        crop: &Crop,
    ) -> Vec<Vec<u32>> {
        let [nx, ny, _] = shape;
        let [cx, _, _] = crop.size();
        let [x0, y0, z0] = crop.lo;
        let [x1, y1, z1] = crop.hi;
        let outside = vec![label.wrapping_add(1); cx];
        let row_at = |y: usize, z: usize| {
            let base = nx * (y + ny * z);
            &vol[base + x0..=base + x1]
        };
        (z0..=z1)
            .map(|z| {
                let mut out = Vec::new();
                for y in y0..=y1 {
                    let row = row_at(y, z);
                    let [up, down, front, back] = [
                        (y > y0).then(|| row_at(y - 1, z)),
                        (y < y1).then(|| row_at(y + 1, z)),
                        (z > z0).then(|| row_at(y, z - 1)),
                        (z < z1).then(|| row_at(y, z + 1)),
                    ]
                    .map(|r| r.unwrap_or(&outside));
                    for x in 0..cx {
                        let inside = |v: u8| v == label;
                        let interior = x > 0
                            && x + 1 < cx
                            && inside(row[x - 1])
                            && inside(row[x + 1])
                            && inside(up[x])
                            && inside(down[x])
                            && inside(front[x])
                            && inside(back[x]);
                        if inside(row[x]) && !interior {
                            out.push((cx * (y - y0) + x) as u32);
                        }
                    }
                }
                out
            })
            .collect()
    }

    #[test]
    fn matches_the_previous_implementation_on_random_volumes() {
        // Rows of up to four words, crops starting anywhere in a word,
        // blobs near and far, noise, and spacings with many exact ties
        // (equal, integer) as well as generic ones.
        let mut rng = Rng(0xC0FF_EE12_3456_789A);
        for case in 0..60 {
            let shape = [1 + rng.below(220), 1 + rng.below(24), 1 + rng.below(14)];
            let n: usize = shape.iter().product();
            let spacing = match case % 4 {
                0 => [1.0, 1.0, 1.0],
                1 => [0.7, 0.7, 1.0],
                2 => [0.3 + rng.unit(), 0.3 + rng.unit(), 0.5 + 3.0 * rng.unit()],
                _ => [0.8, 0.8, 2.5 + 2.0 * rng.unit()],
            };
            let blob = |rng: &mut Rng| {
                let centre = shape.map(|s| rng.unit() * s as f64);
                let radius = [0, 1, 2].map(|_| 0.5 + rng.unit() * 9.0);
                move |c: [usize; 3]| {
                    let e: f64 = (0..3)
                        .map(|k| ((c[k] as f64 - centre[k]) / radius[k]).powi(2))
                        .sum();
                    e <= 1.0
                }
            };
            let (in_a, in_b, in_b2) = (blob(&mut rng), blob(&mut rng), blob(&mut rng));
            let noise = [0.0, 0.002, 0.05][case % 3];
            let (mut a, mut b) = (vec![0u8; n], vec![0u8; n]);
            for i in 0..n {
                let c = coords(i, shape);
                a[i] = u8::from(in_a(c) != (rng.unit() < noise));
                b[i] = if in_b(c) || in_b2(c) {
                    1
                } else {
                    2 * u8::from(rng.unit() < 0.5)
                };
            }
            for label in [1, 2] {
                if !a.contains(&label) || !b.contains(&label) {
                    continue;
                }
                let s = spec(shape, spacing, 0.5 + 2.0 * rng.unit());
                let got = boundary_metrics(&a, &b, label, &s).unwrap();
                let want = previous_metrics(&a, &b, label, &s);
                assert_eq!(got, want, "case {case}, label {label}, shape {shape:?}");
            }
        }
    }

    #[test]
    fn far_apart_surfaces_go_to_the_candidate_pruning() {
        // Every query is beyond the direct search, so that the planes give
        // up on it; the rest of the answer must not change.
        let shape = [150, 40, 12];
        let spacing = [0.5, 0.6, 1.0];
        let a = volume(
            shape,
            &[cube([1, 2, 1], 10), cube([60, 5, 2], 3)].concat(),
            1,
        );
        let b = volume(shape, &cube([120, 25, 1], 11), 1);
        let s = spec(shape, spacing, 1.0);
        let got = boundary_metrics(&a, &b, 1, &s).unwrap();
        assert_eq!(got, previous_metrics(&a, &b, 1, &s));
        assert_close(got, brute_metrics(&a, &b, 1, &s), 1e-9, "far apart");
    }

    #[test]
    fn cells_of_marks_the_pairs_of_bits_holding_one() {
        let mut rng = Rng(0x5eed);
        for _ in 0..1000 {
            let word = rng.next() & rng.next();
            let want = (0..32).fold(0u64, |acc, c| {
                acc | u64::from(word >> (2 * c) & 3 != 0) << c
            });
            assert_eq!(cells_of(word), want, "{word:#x}");
        }
    }

    #[test]
    fn near_cells_mark_every_position_within_their_radius_of_a_feature() {
        let mut rng = Rng(0xce11);
        let shape = [150, 23, 17];
        let crop = Crop {
            lo: [3, 1, 0],
            hi: [140, 21, 16],
        };
        let voxels: Vec<[usize; 3]> = (0..12)
            .map(|_| [3 + rng.below(138), 1 + rng.below(21), rng.below(17)])
            .collect();
        let vol = volume(shape, &voxels, 1);
        let (mask, _, _) = mask_bits(&vol, &vol, 1, shape);
        let surface = SurfaceBits::new(&mask, shape, &crop);
        for radius in [[0, 0, 0], [2, 2, 1], [3, 1, 5]] {
            let cells = NearCells::new(&surface, radius);
            let [cx, cy, cz] = crop.size();
            for z in 0..cz {
                for y in 0..cy {
                    for x in 0..cx {
                        let near = voxels.iter().any(|v| {
                            let f = [v[0] - crop.lo[0], v[1] - crop.lo[1], v[2] - crop.lo[2]];
                            [x, y, z]
                                .iter()
                                .zip(f)
                                .zip(radius)
                                .all(|((&p, f), r)| p.abs_diff(f) <= r)
                        });
                        if near {
                            assert!(
                                cells.may_be_near(x + surface.shift, y, z),
                                "({x}, {y}, {z}) within {radius:?} of a feature"
                            );
                        }
                    }
                    // The word-wide test is false only where every bit's is.
                    for k in 0..surface.cw {
                        assert_eq!(
                            cells.any_near(k, y, z),
                            (0..64).any(|bit| cells.may_be_near(64 * k + bit, y, z)),
                            "word {k} of row ({y}, {z})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn clusters_hold_every_surface_voxel_once_within_tight_bounds() {
        let mut rng = Rng(0xc105);
        // A crop starting mid-word and spanning several words and cells.
        let shape = [300, 40, 37];
        let crop = Crop {
            lo: [37, 2, 1],
            hi: [290, 39, 36],
        };
        let voxels: Vec<[usize; 3]> = (0..3000)
            .map(|_| [37 + rng.below(254), 2 + rng.below(38), 1 + rng.below(36)])
            .collect();
        let vol = volume(shape, &voxels, 1);
        let (mask, _, _) = mask_bits(&vol, &vol, 1, shape);
        let surface = SurfaceBits::new(&mask, shape, &crop);
        let mut want = Vec::new();
        for z in 0..surface.cz {
            for y in 0..surface.cy {
                for_each_bit(surface.bits(y, z), |b| {
                    want.push([(b - surface.shift) as i32, y as i32, z as i32]);
                });
            }
        }
        let mut got = Vec::new();
        for ([lo, hi], members) in surface.clustered().clusters() {
            assert!(!members.is_empty());
            for a in 0..3 {
                // Tight: the bounds are those of the members.
                assert_eq!(lo[a], members.iter().map(|f| f[a]).min().unwrap());
                assert_eq!(hi[a], members.iter().map(|f| f[a]).max().unwrap());
                assert!(hi[a] - lo[a] < CLUSTER_VOXELS, "within one cell");
            }
            got.extend(members);
        }
        want.sort_unstable();
        got.sort_unstable();
        assert!(want.len() > 1000);
        assert_eq!(got, want);
    }

    #[test]
    fn a_lesion_deep_inside_another_is_exact() {
        // An under-segmented lesion: every feature of the large ball is
        // about equally far from the small one inside it, the case where
        // candidate pruning keeps the most features.
        let shape = [60, 60, 24];
        let ball = |centre: [f64; 3], radius: f64, scale: [f64; 3]| {
            let mut voxels = Vec::new();
            for z in 0..shape[2] {
                for y in 0..shape[1] {
                    for x in 0..shape[0] {
                        let c = [x, y, z];
                        let e: f64 = (0..3)
                            .map(|k| ((c[k] as f64 - centre[k]) * scale[k] / radius).powi(2))
                            .sum();
                        if e <= 1.0 {
                            voxels.push(c);
                        }
                    }
                }
            }
            voxels
        };
        let spacing = [0.7, 0.7, 2.0];
        let a = volume(shape, &ball([30.0, 30.0, 12.0], 4.0, spacing), 1);
        let b = volume(shape, &ball([30.0, 29.0, 11.5], 18.0, spacing), 1);
        let s = spec(shape, spacing, 1.0);
        let got = boundary_metrics(&a, &b, 1, &s).unwrap();
        assert_eq!(got, previous_metrics(&a, &b, 1, &s));
        assert_close(got, brute_metrics(&a, &b, 1, &s), 1e-9, "inside");
        let got = surfel_metrics_within(&a, &b, 1, &s, &WorkBudget::unlimited())
            .unwrap()
            .unwrap();
        let want = brute_surfel_metrics(&a, &b, 1, &s);
        for (g, w) in [
            (got.nsd, want.nsd),
            (got.hd95_mm, want.hd95_mm),
            (got.assd_mm, want.assd_mm),
        ] {
            assert!(
                (g - w).abs() <= 1e-9 * w.abs().max(1.0),
                "{got:?} vs {want:?}"
            );
        }
    }

    #[test]
    fn swar_bits_match_the_bytes() {
        let mut rng = Rng(11);
        for _ in 0..200 {
            let label = rng.below(4) as u8;
            let bytes: [u8; 64] = std::array::from_fn(|_| rng.below(5) as u8);
            let want = (0..64).fold(0u64, |w, i| w | (u64::from(bytes[i] == label) << i));
            assert_eq!(bits64_swar(&bytes, label), want);
            assert_eq!(bits64(&bytes, label), want);
        }
        let mut out = [0u64; 3];
        let row: Vec<u8> = (0..150).map(|i| u8::from(i % 7 == 3 || i == 149)).collect();
        row_bits(&row, 1, &mut out);
        for (i, &v) in row.iter().enumerate() {
            assert_eq!(out[i / 64] >> (i % 64) & 1 == 1, v == 1, "bit {i}");
        }
    }

    // -- reference fixtures ------------------------------------------------

    /// One case of `tests/fixtures/boundary` (see `make_fixtures.py` there).
    struct Fixture {
        name: String,
        shape: [usize; 3],
        spacing: [f64; 3],
        tolerance: f64,
        predicted: Vec<u8>,
        truth: Vec<u8>,
        surface_voxels: [usize; 2],
        values: std::collections::HashMap<String, f64>,
    }

    impl Fixture {
        fn parse(text: &str) -> Fixture {
            let mut fields = std::collections::HashMap::new();
            for line in text
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            {
                let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
                fields.insert(key.to_string(), rest.to_string());
            }
            let field = |k: &str| {
                fields
                    .get(k)
                    .unwrap_or_else(|| panic!("missing {k}"))
                    .as_str()
            };
            let numbers = |k: &str| -> Vec<f64> {
                field(k)
                    .split_whitespace()
                    .map(|v| v.parse().unwrap())
                    .collect()
            };
            let ints = |k: &str| -> Vec<usize> {
                field(k)
                    .split_whitespace()
                    .map(|v| v.parse().unwrap())
                    .collect()
            };
            let shape: [usize; 3] = ints("shape").try_into().unwrap();
            let n: usize = shape.iter().product();
            let mask = |k: &str| {
                let mut v = vec![0u8; n];
                for run in ints(k).chunks(2) {
                    v[run[0]..run[0] + run[1]].fill(1);
                }
                v
            };
            let values = fields
                .iter()
                .filter(|(k, _)| {
                    ["medpy_", "deepmind_", "metrics_reloaded_"]
                        .iter()
                        .any(|prefix| k.starts_with(prefix))
                })
                .map(|(k, v)| (k.clone(), v.parse().unwrap()))
                .collect();
            Fixture {
                name: field("name").to_string(),
                shape,
                spacing: numbers("spacing").try_into().unwrap(),
                tolerance: numbers("tolerance")[0],
                predicted: mask("predicted_runs"),
                truth: mask("truth_runs"),
                surface_voxels: ints("surface_voxels").try_into().unwrap(),
                values,
            }
        }
    }

    /// `PODIUM_BOUNDARY_FIXTURES` overrides the fixture folder.
    fn fixture_dir() -> std::path::PathBuf {
        std::env::var_os("PODIUM_BOUNDARY_FIXTURES")
            .map(Into::into)
            .unwrap_or_else(|| {
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/boundary").into()
            })
    }

    #[test]
    fn fixtures_agree_with_medpy_metrics_reloaded_and_deepmind() {
        let dir = fixture_dir();
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("fixture folder {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect();
        paths.sort();
        assert!(paths.len() >= 3, "too few fixtures in {}", dir.display());
        println!("| case | metric | podium | reference | abs(podium - reference) | DeepMind |");
        println!("|---|---|---:|---:|---:|---:|");
        for path in paths {
            let f = Fixture::parse(&std::fs::read_to_string(&path).unwrap());
            let s = BoundarySpec {
                shape: f.shape,
                spacing_mm: f.spacing,
                nsd_tolerance_mm: f.tolerance,
                worst_distance_mm: 0.0,
            };
            let crop = Crop {
                lo: [0; 3],
                hi: f.shape.map(|n| n - 1),
            };
            let count = |v: &[u8]| {
                surface_planes(v, 1, f.shape, &crop)
                    .iter()
                    .map(Vec::len)
                    .sum::<usize>()
            };
            assert_eq!(
                [count(&f.predicted), count(&f.truth)],
                f.surface_voxels,
                "{}: surface voxel counts",
                f.name
            );
            let m = boundary_metrics(&f.predicted, &f.truth, 1, &s).unwrap();
            let sm = surfel_metrics_within(&f.predicted, &f.truth, 1, &s, &WorkBudget::unlimited())
                .unwrap()
                .unwrap();
            // (podium metric name, value, reference key, DeepMind key)
            let ours = [
                ("hd95", m.hd95_mm, "metrics_reloaded_hd95", "deepmind_hd95"),
                (
                    "hd95_medpy",
                    m.hd95_pooled_mm,
                    "medpy_hd95",
                    "deepmind_hd95",
                ),
                ("hd", m.hd_mm, "medpy_hd", "deepmind_hd"),
                ("assd", m.assd_mm, "medpy_assd", "deepmind_assd"),
                ("nsd_voxels", m.nsd_voxels, "medpy_nsd", "deepmind_nsd"),
                ("nsd", sm.nsd, "deepmind_nsd", "deepmind_nsd"),
                (
                    "hd95_deepmind",
                    sm.hd95_mm,
                    "deepmind_hd95",
                    "deepmind_hd95",
                ),
                (
                    "assd_deepmind",
                    sm.assd_mm,
                    "deepmind_assd",
                    "deepmind_assd",
                ),
            ];
            for (metric, value, reference_key, deepmind_key) in ours {
                let reference = f.values[reference_key];
                let deepmind = f.values[deepmind_key];
                println!(
                    "| {} | {metric} | {value:.6} | {reference:.6} ({reference_key}) | {:.1e} | {deepmind:.6} |",
                    f.name,
                    (value - reference).abs()
                );
                assert!(
                    (value - reference).abs() <= 1e-6,
                    "{}: {metric} = {value}, {reference_key} {reference}",
                    f.name
                );
                assert!(deepmind.is_finite(), "{}: DeepMind {metric}", f.name);
            }
            // DeepMind's surface (surfel corners) differs, but its farthest
            // point stays within a voxel diagonal of ours.
            let diagonal = f.spacing.iter().map(|s| s * s).sum::<f64>().sqrt();
            assert!(
                (m.hd_mm - f.values["deepmind_hd"]).abs() <= diagonal,
                "{}",
                f.name
            );
        }
    }

    /// DeepMind's surfel metrics the slow way: every corner of the image, every pair of
    /// surfels, the summaries as numpy computes them.
    fn brute_surfel_metrics(a: &[u8], b: &[u8], label: u8, spec: &BoundarySpec) -> SurfelMetrics {
        let [nx, ny, nz] = spec.shape;
        let inside = |v: &[u8], x: isize, y: isize, z: isize| {
            x >= 0
                && y >= 0
                && z >= 0
                && (x as usize) < nx
                && (y as usize) < ny
                && (z as usize) < nz
                && v[x as usize + nx * (y as usize + ny * z as usize)] == label
        };
        let areas = crate::metrics::surfels::surfel_areas(spec.spacing_mm);
        let surfels = |v: &[u8]| -> Vec<([usize; 3], f64)> {
            let mut out = Vec::new();
            for z in 0..=nz {
                for y in 0..=ny {
                    for x in 0..=nx {
                        let mut code = 0usize;
                        for i in 0..8 {
                            let o = [i & 1, (i >> 1) & 1, (i >> 2) & 1].map(|o| o as isize - 1);
                            if inside(v, x as isize + o[0], y as isize + o[1], z as isize + o[2]) {
                                code |= 1 << i;
                            }
                        }
                        if code != 0 && code != 255 {
                            out.push(([x, y, z], areas[code]));
                        }
                    }
                }
            }
            out
        };
        let (sa, sb) = (surfels(a), surfels(b));
        let directed = |from: &[([usize; 3], f64)], to: &[([usize; 3], f64)]| {
            from.iter()
                .map(|&(p, w)| {
                    let d = to
                        .iter()
                        .map(|&(q, _)| dist(p, q, spec.spacing_mm))
                        .fold(f64::INFINITY, f64::min);
                    (d, w)
                })
                .collect::<Vec<_>>()
        };
        let (ab, ba) = (directed(&sa, &sb), directed(&sb, &sa));
        let tol = spec.nsd_tolerance_mm;
        let sum = |v: &[(f64, f64)], f: &dyn Fn(f64, f64) -> f64| {
            v.iter().map(|&(d, w)| f(d, w)).sum::<f64>()
        };
        let nsd = (sum(&ab, &|d, w| if d <= tol { w } else { 0.0 })
            + sum(&ba, &|d, w| if d <= tol { w } else { 0.0 }))
            / (sum(&ab, &|_, w| w) + sum(&ba, &|_, w| w));
        let mean = |v: &[(f64, f64)]| sum(v, &|d, w| d * w) / sum(v, &|_, w| w);
        let perc = |v: &[(f64, f64)]| {
            let mut v = v.to_vec();
            v.sort_by(|p, q| p.0.total_cmp(&q.0).then(p.1.total_cmp(&q.1)));
            let total = sum(&v, &|_, w| w);
            let mut c = 0.0;
            let cum: Vec<f64> = v
                .iter()
                .map(|&(_, w)| {
                    c += w;
                    c / total
                })
                .collect();
            let idx = cum.iter().position(|&c| c >= 0.95).unwrap_or(v.len() - 1);
            v[idx].0
        };
        SurfelMetrics {
            nsd,
            hd95_mm: perc(&ab).max(perc(&ba)),
            assd_mm: (mean(&ab) + mean(&ba)) / 2.0,
        }
    }

    #[test]
    fn surfel_metrics_match_brute_force_on_random_volumes() {
        let mut rng = Rng(0x0005_eed5_u64);
        for trial in 0..30 {
            let shape = [2 + rng.below(70), 1 + rng.below(9), 1 + rng.below(8)];
            let spacing = [
                0.3 + 2.0 * rng.unit(),
                0.3 + 2.0 * rng.unit(),
                0.3 + 4.0 * rng.unit(),
            ];
            let n: usize = shape.iter().product();
            let density = rng.unit();
            let mut volume = |extra: u8| -> Vec<u8> {
                (0..n)
                    .map(|_| {
                        if rng.unit() < density * 0.5 {
                            1 + (rng.below(2) as u8) * extra
                        } else {
                            0
                        }
                    })
                    .collect()
            };
            let (a, b) = (volume(1), volume(1));
            let s = spec(shape, spacing, 0.5 + 2.0 * rng.unit());
            for label in [1u8, 2] {
                let has = |v: &[u8]| v.contains(&label);
                if !(has(&a) && has(&b)) {
                    continue;
                }
                let got = surfel_metrics_within(&a, &b, label, &s, &WorkBudget::unlimited())
                    .unwrap()
                    .unwrap();
                let want = brute_surfel_metrics(&a, &b, label, &s);
                for (what, g, w) in [
                    ("nsd", got.nsd, want.nsd),
                    ("hd95", got.hd95_mm, want.hd95_mm),
                    ("assd", got.assd_mm, want.assd_mm),
                ] {
                    assert!(
                        (g - w).abs() <= 1e-9 * w.abs().max(1.0),
                        "trial {trial} label {label} {shape:?}: {what} {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn surfel_metrics_of_empty_masks_follow_the_conventions() {
        let s = BoundarySpec {
            worst_distance_mm: 42.0,
            ..spec([5, 4, 3], [1.0, 1.0, 2.0], 1.0)
        };
        let empty = vec![0u8; 60];
        let mut one = empty.clone();
        one[17] = 1;
        let run = |a: &[u8], b: &[u8]| {
            surfel_metrics_within(a, b, 1, &s, &WorkBudget::unlimited())
                .unwrap()
                .unwrap()
        };
        assert_eq!(
            run(&empty, &empty),
            SurfelMetrics {
                nsd: 1.0,
                hd95_mm: 0.0,
                assd_mm: 0.0
            }
        );
        let worst = SurfelMetrics {
            nsd: 0.0,
            hd95_mm: 42.0,
            assd_mm: 42.0,
        };
        assert_eq!(run(&one, &empty), worst);
        assert_eq!(run(&empty, &one), worst);
        assert_eq!(
            run(&one, &one),
            SurfelMetrics {
                nsd: 1.0,
                hd95_mm: 0.0,
                assd_mm: 0.0
            }
        );
        assert!(surfel_metrics_within(&one[..59], &one, 1, &s, &WorkBudget::unlimited()).is_none());
        // A single voxel's eight corners against the same voxel one step along x: the four
        // shared corners coincide, the others are one voxel away.
        let mut moved = empty.clone();
        moved[18] = 1;
        let m = run(&one, &moved);
        assert_eq!(m.hd95_mm, 1.0);
        assert!((m.assd_mm - 0.5).abs() < 1e-15);
    }
}
