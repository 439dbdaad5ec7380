//! Exact nearest-feature distances for the queries that the direct search of
//! [`super::distance`] leaves unresolved (those more than a few voxels from
//! every feature), by pruning candidates over a subdivision of the queries.
//!
//! A separable distance transform costs about the area of the crop for every
//! plane of queries, whatever the distances; when a prediction lies in the
//! wrong lung that is most of a CT volume per plane, tens of times the work
//! of a good prediction. Here the work follows the geometry instead: a box
//! of queries keeps only the features that can be nearest to some point of
//! the box, so a box far from a compact lesion keeps a handful of them,
//! however large it is.
//!
//! # Why it is exact
//!
//! For two features `f` and `g`, `|p − f|² − |p − g|²` is affine in `p`, so
//! its smallest value over a box lies at a corner that each axis picks on its
//! own. When that value is above a margin, every point of the box is nearer
//! `g` than `f`, and `f` is the nearest feature of none of them: it is
//! pruned. A box prunes against the feature nearest its centre; while boxes
//! are large, whole clusters of features are pruned at once by the same
//! bound taken over the cluster's box as well. The margin
//! ([`margin_mm2`]) is far above the rounding of the bound and of the
//! distance formula, so a pruned feature is farther in `f64` too, and a
//! feature tied with another is always kept. The features a box keeps are
//! thus a superset of the nearest features of its queries, and each query
//! takes the minimum of the distance formula over them: the same value, bit
//! for bit, as the minimum over every feature.

use super::distance::WorkBudget;

/// A voxel position: crop coordinates along x, y and z.
pub(super) type Point = [i32; 3];

/// Boxes with at most this many queries compare each query with every
/// feature they keep.
const LEAF_QUERIES: usize = 16;

/// A box of queries expands its clusters into their features once these
/// number no more than this.
const EXPAND_FEATURES: usize = 1024;

/// Side of the cells that group features into clusters, in voxels (a power
/// of two).
const CLUSTER_VOXELS: i32 = 8;

/// Boxes with fewer queries than this solve their two halves on the current
/// thread.
const PARALLEL_QUERIES: usize = 2048;

/// The distance in mm from each query to its nearest feature, computed as
/// `(((sx·dx)² + (sy·dy)²) + (sz·dz)²).sqrt()` (`f64::INFINITY` for every
/// query if `features` is empty). Every position must lie in a box of
/// `size` voxels.
///
/// The work (features examined) is charged to `budget` box by box; once it
/// is exhausted the remaining boxes are skipped and their distances are 0.
pub(super) fn nearest_distances(
    features: &[Point],
    queries: &[Point],
    spacing: [f64; 3],
    size: [usize; 3],
    budget: &WorkBudget,
) -> Vec<f64> {
    if features.is_empty() || queries.is_empty() {
        return vec![f64::INFINITY; queries.len()];
    }
    budget.charge(steps(features.len()));
    let search = Search {
        clustered: Clustered::new(features),
        spacing,
        weights: spacing.map(|s| s * s),
        margin: margin_mm2(spacing, size),
        budget,
    };
    let mut order: Vec<(Point, u32)> = queries
        .iter()
        .enumerate()
        .map(|(i, &q)| (q, i as u32))
        .collect();
    let mut sorted_out = vec![0.0; queries.len()];
    let all: Vec<u32> = (0..search.clustered.clusters.len() as u32).collect();
    search.by_clusters(&mut order, &all, &mut sorted_out);
    let mut out = vec![0.0; queries.len()];
    for (&(_, i), &d) in order.iter().zip(&sorted_out) {
        out[i as usize] = d;
    }
    out
}

/// Features or queries visited per step of [`WorkBudget`]. A visit (a bound,
/// a distance or a comparison of positions in cache) costs a fraction of a
/// step elsewhere (5 to 10 ns); with 4, a 512 × 512 × 300 CT whose
/// prediction has 1, 3 or 5 % of its voxels flipped (salt noise, the
/// costliest masks) takes 5.1, 6.8 and 7.7 steps per voxel, as it did before
/// this search existed (4.8 to 6.0 at 1 to 3 %), far within
/// `CaseBound::STEPS_PER_VOXEL`.
const VISITS_PER_STEP: usize = 4;

fn steps(visits: usize) -> u64 {
    visits.div_ceil(VISITS_PER_STEP) as u64
}

/// The margin, in mm², by which a feature must be farther than the pivot
/// everywhere in a box to be pruned. Every squared distance within the crop
/// is at most `diagonal²`, and the bound and the distance formula each round
/// by a few units of 2⁻⁵² of it; `1e-9 · diagonal²` is millions of times
/// that, so a pruned feature is farther in `f64` too. A smaller real
/// difference merely keeps a feature that could have gone.
fn margin_mm2(spacing: [f64; 3], size: [usize; 3]) -> f64 {
    let diagonal2: f64 = (0..3)
        .map(|a| (spacing[a] * (size[a] + 1) as f64).powi(2))
        .sum();
    1e-9 * diagonal2.max(1.0)
}

/// The distance formula of [`super::distance`], on voxel offsets.
#[inline]
fn distance_mm(q: Point, f: Point, [sx, sy, sz]: [f64; 3]) -> f64 {
    let d = |a: usize| f64::from(q[a] - f[a]);
    let (dx, dy, dz) = (sx * d(0), sy * d(1), sz * d(2));
    ((dx * dx + dy * dy) + dz * dz).sqrt()
}

/// Features grouped by cells of [`CLUSTER_VOXELS`]³ voxels, each group with
/// its bounding box, so that large boxes of queries prune whole groups.
struct Clustered {
    /// The features, grouped by cluster.
    features: Vec<Point>,
    clusters: Vec<Cluster>,
}

#[derive(Clone, Copy, Debug)]
struct Cluster {
    lo: Point,
    hi: Point,
    start: usize,
    end: usize,
}

impl Clustered {
    /// Groups `features` (non-empty) by a counting sort on their cells.
    fn new(features: &[Point]) -> Clustered {
        let shift = CLUSTER_VOXELS.trailing_zeros();
        let cells = [0, 1, 2].map(|a| {
            features
                .iter()
                .map(|f| (f[a] >> shift) as usize)
                .max()
                .unwrap_or(0)
                + 1
        });
        let cell_of = |f: &Point| {
            let c = [0, 1, 2].map(|a| (f[a] >> shift) as usize);
            c[0] + cells[0] * (c[1] + cells[1] * c[2])
        };
        // Cells may outnumber the features when they are scattered; then a
        // sort costs less than a table of every cell.
        let table_cells = cells[0].saturating_mul(cells[1]).saturating_mul(cells[2]);
        let mut keyed: Vec<(usize, Point)> = features.iter().map(|f| (cell_of(f), *f)).collect();
        if table_cells <= 4 * features.len() {
            let mut start = vec![0usize; table_cells + 1];
            for &(c, _) in &keyed {
                start[c + 1] += 1;
            }
            for c in 0..table_cells {
                start[c + 1] += start[c];
            }
            let mut sorted = vec![(0, [0; 3]); keyed.len()];
            for &(c, f) in &keyed {
                sorted[start[c]] = (c, f);
                start[c] += 1;
            }
            keyed = sorted;
        } else {
            keyed.sort_unstable_by_key(|&(c, _)| c);
        }
        let mut clusters = Vec::new();
        let mut start = 0;
        while start < keyed.len() {
            let key = keyed[start].0;
            let (mut lo, mut hi) = (keyed[start].1, keyed[start].1);
            let mut end = start;
            while end < keyed.len() && keyed[end].0 == key {
                let f = keyed[end].1;
                for a in 0..3 {
                    lo[a] = lo[a].min(f[a]);
                    hi[a] = hi[a].max(f[a]);
                }
                end += 1;
            }
            clusters.push(Cluster { lo, hi, start, end });
            start = end;
        }
        Clustered {
            features: keyed.into_iter().map(|(_, f)| f).collect(),
            clusters,
        }
    }

    fn members(&self, k: u32) -> &[Point] {
        let c = &self.clusters[k as usize];
        &self.features[c.start..c.end]
    }
}

/// A box of voxels `lo..=hi`, with twice its centre and its size, in the
/// form the bounds use.
#[derive(Clone, Copy)]
struct Bounds {
    lo: [f64; 3],
    hi: [f64; 3],
    /// `lo + hi`.
    centre2: [f64; 3],
    /// `hi − lo`.
    size: [f64; 3],
}

impl Bounds {
    /// The smallest box holding every query (non-empty).
    fn of(queries: &[(Point, u32)]) -> Bounds {
        let mut lo = [i32::MAX; 3];
        let mut hi = [i32::MIN; 3];
        for (q, _) in queries {
            for a in 0..3 {
                lo[a] = lo[a].min(q[a]);
                hi[a] = hi[a].max(q[a]);
            }
        }
        let lo = lo.map(f64::from);
        let hi = hi.map(f64::from);
        Bounds {
            lo,
            hi,
            centre2: [0, 1, 2].map(|a| lo[a] + hi[a]),
            size: [0, 1, 2].map(|a| hi[a] - lo[a]),
        }
    }

    /// `|2·(f − centre)|²` in mm²·4.
    #[inline]
    fn squared_to_centre(&self, f: Point, w: [f64; 3]) -> f64 {
        let d = |a: usize| 2.0 * f64::from(f[a]) - self.centre2[a];
        let (dx, dy, dz) = (d(0), d(1), d(2));
        (w[0] * dx * dx + w[1] * dy * dy) + w[2] * dz * dz
    }

    /// The smallest `|p − f|² − |p − g|²` over the points p of the box, in
    /// mm². Per axis, `(g − f)·(2p − f − g)` is smallest at the end of the box
    /// that the sign of `g − f` picks: `(g − f)·(lo + hi − f − g) − (hi − lo)·|g − f|`.
    /// Every product is of integers below 2⁵³, so only the weights round.
    #[inline]
    fn gap(&self, f: Point, g: Point, w: [f64; 3]) -> f64 {
        let term = |a: usize| {
            let (f, g) = (f64::from(f[a]), f64::from(g[a]));
            let d = g - f;
            w[a] * (d * (self.centre2[a] - f - g) - self.size[a] * d.abs())
        };
        (term(0) + term(1)) + term(2)
    }

    /// The smallest `|p − f|² − |p − g|²` over the points p of the box and
    /// the points f of the box `flo..=fhi`, in mm². Per axis, for each p the
    /// nearest f lies in or at an end of `flo..=fhi`; the resulting
    /// piecewise quadratic in p is affine outside `flo..=fhi` and concave
    /// inside, so its smallest value lies at `lo`, `hi`, `flo` or `fhi`.
    fn cluster_gap(&self, flo: Point, fhi: Point, g: Point, w: [f64; 3]) -> f64 {
        let term = |a: usize| {
            let (fl, fh, g) = (f64::from(flo[a]), f64::from(fhi[a]), f64::from(g[a]));
            let h = |p: f64| {
                let out = (fl - p).max(p - fh).max(0.0);
                out * out - (g - p) * (g - p)
            };
            let mut m = h(self.lo[a]).min(h(self.hi[a]));
            for p in [fl, fh] {
                if self.lo[a] <= p && p <= self.hi[a] {
                    m = m.min(h(p));
                }
            }
            w[a] * m
        };
        (term(0) + term(1)) + term(2)
    }

    /// The axis along which the box is longest in mm, and its middle voxel.
    fn split(&self, spacing: [f64; 3]) -> (usize, i32) {
        let mut axis = 0;
        for a in 1..3 {
            if self.size[a] * spacing[a] > self.size[axis] * spacing[axis] {
                axis = a;
            }
        }
        let middle = self.lo[axis] + (self.size[axis] / 2.0).floor();
        (axis, middle as i32)
    }
}

/// Moves the queries whose coordinate along `axis` is at most `middle` to
/// the front; returns how many there are.
fn partition(queries: &mut [(Point, u32)], axis: usize, middle: i32) -> usize {
    let mut next = 0;
    for k in 0..queries.len() {
        if queries[k].0[axis] <= middle {
            queries.swap(next, k);
            next += 1;
        }
    }
    next
}

/// The features and the constants of one search.
struct Search<'a> {
    clustered: Clustered,
    spacing: [f64; 3],
    /// The squared spacing.
    weights: [f64; 3],
    margin: f64,
    budget: &'a WorkBudget,
}

impl Search<'_> {
    /// Solves `queries` (reordered in place; non-empty) against the clusters
    /// `list` (non-empty), writing the distance of `queries[k]` to `out[k]`.
    fn by_clusters(&self, queries: &mut [(Point, u32)], list: &[u32], out: &mut [f64]) {
        if self.budget.exhausted() {
            return;
        }
        let b = Bounds::of(queries);
        let w = self.weights;
        let c = &self.clustered;
        // The pivot: the feature nearest the centre in the cluster whose box
        // is nearest it.
        let box_to_centre = |k: &u32| {
            let cl = &c.clusters[*k as usize];
            let d = |a: usize| {
                let (lo, hi) = (2.0 * f64::from(cl.lo[a]), 2.0 * f64::from(cl.hi[a]));
                (lo - b.centre2[a]).max(b.centre2[a] - hi).max(0.0)
            };
            (w[0] * d(0) * d(0) + w[1] * d(1) * d(1)) + w[2] * d(2) * d(2)
        };
        let nearest = list
            .iter()
            .min_by(|x, y| box_to_centre(x).total_cmp(&box_to_centre(y)))
            .expect("non-empty list");
        let pivot = nearest_to_centre(c.members(*nearest), &b, w);
        let kept: Vec<u32> = list
            .iter()
            .copied()
            .filter(|&k| {
                let cl = &c.clusters[k as usize];
                b.cluster_gap(cl.lo, cl.hi, pivot, w) <= self.margin
            })
            .collect();
        let features: usize = kept.iter().map(|&k| c.members(k).len()).sum();
        self.budget.charge(steps(
            queries.len() + list.len() + c.members(*nearest).len(),
        ));
        let largest = b.size.iter().copied().fold(0.0, f64::max);
        if features <= EXPAND_FEATURES
            || largest < f64::from(CLUSTER_VOXELS)
            || queries.len() <= LEAF_QUERIES
        {
            let mut gathered = Vec::with_capacity(features);
            for &k in &kept {
                gathered.extend_from_slice(c.members(k));
            }
            self.budget.charge(steps(features));
            return self.by_features(queries, &gathered, out);
        }
        let (axis, middle) = b.split(self.spacing);
        let split = partition(queries, axis, middle);
        let (q_low, q_high) = queries.split_at_mut(split);
        let (o_low, o_high) = out.split_at_mut(split);
        rayon::join(
            || self.by_clusters(q_low, &kept, o_low),
            || self.by_clusters(q_high, &kept, o_high),
        );
    }

    /// Like [`Search::by_clusters`], with the candidates given as features
    /// (non-empty).
    fn by_features(&self, queries: &mut [(Point, u32)], features: &[Point], out: &mut [f64]) {
        if self.budget.exhausted() {
            return;
        }
        let b = Bounds::of(queries);
        let w = self.weights;
        let pivot = nearest_to_centre(features, &b, w);
        let kept = prune_features(features, &b, pivot, w, self.margin);
        let mut work = queries.len() + 2 * features.len();
        if queries.len() <= LEAF_QUERIES || kept.len() <= 2 || b.size == [0.0; 3] {
            leaf(queries, &kept, out, self.spacing);
            work += queries.len() * kept.len();
        }
        self.budget.charge(steps(work));
        if queries.len() <= LEAF_QUERIES || kept.len() <= 2 || b.size == [0.0; 3] {
            return;
        }
        let (axis, middle) = b.split(self.spacing);
        let split = partition(queries, axis, middle);
        let parallel = queries.len() >= PARALLEL_QUERIES;
        let (q_low, q_high) = queries.split_at_mut(split);
        let (o_low, o_high) = out.split_at_mut(split);
        if parallel {
            rayon::join(
                || self.by_features(q_low, &kept, o_low),
                || self.by_features(q_high, &kept, o_high),
            );
        } else {
            self.by_features(q_low, &kept, o_low);
            self.by_features(q_high, &kept, o_high);
        }
    }
}

/// The features that are not farther than `pivot` by more than `margin`
/// at some point of the box `b`.
fn prune_features(
    features: &[Point],
    b: &Bounds,
    pivot: Point,
    w: [f64; 3],
    margin: f64,
) -> Vec<Point> {
    let mut kept = Vec::with_capacity(features.len());
    for &f in features {
        if b.gap(f, pivot, w) <= margin {
            kept.push(f);
        }
    }
    kept
}

/// Writes to `out[k]` the smallest distance from `queries[k]` to a feature
/// of `features`.
fn leaf(queries: &[(Point, u32)], features: &[Point], out: &mut [f64], spacing: [f64; 3]) {
    for (&(q, _), o) in queries.iter().zip(out.iter_mut()) {
        *o = features
            .iter()
            .map(|&f| distance_mm(q, f, spacing))
            .fold(f64::INFINITY, f64::min);
    }
}
/// The feature of `features` (non-empty) nearest the centre of `b`.
fn nearest_to_centre(features: &[Point], b: &Bounds, w: [f64; 3]) -> Point {
    let mut best = (f64::INFINITY, features[0]);
    for &f in features {
        let d = b.squared_to_centre(f, w);
        if d < best.0 {
            best = (d, f);
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: i32) -> i32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as i32
        }
    }

    fn brute(features: &[Point], q: Point, s: [f64; 3]) -> f64 {
        features
            .iter()
            .map(|&f| distance_mm(q, f, s))
            .fold(f64::INFINITY, f64::min)
    }

    fn check(features: &[Point], queries: &[Point], spacing: [f64; 3], size: [usize; 3]) {
        let got = nearest_distances(features, queries, spacing, size, &WorkBudget::unlimited());
        for (k, &q) in queries.iter().enumerate() {
            assert_eq!(
                got[k].to_bits(),
                brute(features, q, spacing).to_bits(),
                "query {q:?}, spacing {spacing:?}"
            );
        }
    }

    #[test]
    fn equals_the_minimum_over_every_feature_bit_for_bit() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for spacing in [[1.0, 1.0, 1.0], [0.728, 0.728, 1.2], [0.7, 0.9, 3.0]] {
            for case in 0..24 {
                let n = 1 + rng.below(3000) as usize;
                let m = 1 + rng.below(3000) as usize;
                let span = 10 + rng.below(90);
                let features: Vec<Point> = (0..n)
                    .map(|_| [rng.below(span), rng.below(span), rng.below(span / 2 + 1)])
                    .collect();
                // Queries among the features, beside them and far away.
                let offset = [0, span / 2, 3 * span][case % 3];
                let queries: Vec<Point> = (0..m)
                    .map(|_| [offset + rng.below(span), rng.below(span), rng.below(span)])
                    .collect();
                check(&features, &queries, spacing, [4 * span as usize; 3]);
            }
        }
    }

    #[test]
    fn equals_the_minimum_on_surfaces_far_apart() {
        // Two spheres' shells, as in a prediction in the wrong lung, and a
        // query shell inside a feature shell (an under-segmented lesion).
        let shell = |c: [i64; 3], r: i64| -> Vec<Point> {
            let mut v = Vec::new();
            for z in -r..=r {
                for y in -r..=r {
                    for x in -r..=r {
                        let d = x * x + y * y + z * z;
                        if d <= r * r && d > (r - 1) * (r - 1) {
                            v.push([c[0] + x, c[1] + y, c[2] + z].map(|v| v as i32));
                        }
                    }
                }
            }
            v
        };
        let s = [0.7, 0.7, 1.5];
        let features = shell([30, 40, 20], 14);
        check(&features, &shell([140, 45, 22], 12), s, [200; 3]);
        check(&features, &shell([30, 40, 20], 5), s, [200; 3]);
    }

    #[test]
    fn ties_are_kept() {
        // The features of a ring are all at the same distance from its axis.
        let mut features = Vec::new();
        for k in 0..4 {
            features.extend([
                [60 + k, 50, 50],
                [40 - k, 50, 50],
                [50, 60 + k, 50],
                [50, 40 - k, 50],
            ]);
        }
        let queries = vec![[50, 50, 90], [50, 50, 10], [51, 51, 80], [50, 50, 50]];
        check(&features, &queries, [0.5, 0.5, 2.0], [100; 3]);
    }

    #[test]
    fn no_features_gives_infinity() {
        let budget = WorkBudget::unlimited();
        let got = nearest_distances(&[], &[[0, 0, 0]], [1.0; 3], [1; 3], &budget);
        assert_eq!(got, vec![f64::INFINITY]);
        assert_eq!(budget.spent(), 0);
    }

    #[test]
    fn stops_once_the_budget_is_spent() {
        let features: Vec<Point> = (0..2000).map(|k| [k % 50, k / 50, 0]).collect();
        let queries: Vec<Point> = (0..5000).map(|k| [k % 70, k / 70, 90]).collect();
        let unlimited = WorkBudget::unlimited();
        nearest_distances(&features, &queries, [1.0; 3], [100; 3], &unlimited);
        let budget = WorkBudget::new(u64::MAX, unlimited.spent() / 10);
        nearest_distances(&features, &queries, [1.0; 3], [100; 3], &budget);
        assert!(budget.exhausted());
        assert!(
            budget.spent() < unlimited.spent() / 2,
            "{} of {}",
            budget.spent(),
            unlimited.spent()
        );
    }
}
