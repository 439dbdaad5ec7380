//! Exact nearest-feature distances for the queries that the direct search of
//! [`super::distance`] leaves unresolved (those more than a few voxels from
//! every feature), by pruning candidates over a tree of boxes of queries.
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
//! bound taken over the cluster's box as well, against the nearest feature
//! of the cluster whose box is nearest the centre. The margin
//! ([`Margins`]) is far above the rounding of the bound and of the
//! distance formula, so a pruned feature is farther in `f64` too, and a
//! feature tied with another is always kept. The features a box keeps are
//! thus a superset of the nearest features of its queries, and each query
//! takes the minimum of the distance formula over them, in `f64`: the same
//! value, bit for bit, as the minimum over every feature.
//!
//! # Why it is fast
//!
//! The queries are sorted once along a space-filling order, so every box of
//! the tree is a run of them and its bounds are computed once, bottom up;
//! where a run splits is found by a byte search over the bits in which
//! neighbouring keys differ. The features are grouped in clusters as they
//! are read from the surface's bit rows, with no sort. The features a box
//! keeps are stacked, as separate `f32` coordinate arrays (exact:
//! coordinates are integers far below 2²⁴), above those of its parent, so
//! that the pruning of a box is two passes over plain arrays, eight
//! features at a time with AVX2 where the processor has it: the distances
//! to the box's centre with their smallest (the pivot), then the test and
//! the stacking of the kept features; the last few of a pass go through
//! lane masks, not scalar loops. A box that expands its clusters computes
//! those distances inside its one pass. Leaves compare each feature with
//! eight queries at once (four for a last group of four or fewer). Each
//! task's buffers are kept for the next task on its thread.

use super::distance::{WorkBudget, CHARGE_BATCH};
use std::ops::Range;

/// A voxel position: crop coordinates along x, y and z.
pub(super) type Point = [i32; 3];

/// Boxes with at most this many queries compare each query with every
/// feature they keep.
const LEAF_QUERIES: usize = 16;

/// A box of queries expands its clusters into their features once these
/// number no more than this.
const EXPAND_FEATURES: usize = 4096;

/// Side of the cells that group features into clusters, in voxels (a power
/// of two).
pub(super) const CLUSTER_VOXELS: i32 = 16;

/// Boxes with fewer queries than this solve their two halves on the current
/// thread.
const PARALLEL_QUERIES: usize = 2048;

/// [`nearest_distances_clustered`] with `features` grouped by their cells.
#[cfg(test)]
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
    nearest_distances_clustered(Clustered::grouped(features), queries, spacing, size, budget)
}

/// The distance in mm from each query to its nearest feature, computed as
/// `(((sx·dx)² + (sy·dy)²) + (sz·dz)²).sqrt()` (`f64::INFINITY` for every
/// query if there are no features). Every position must lie in a box of
/// `size` voxels.
///
/// The work (features examined) is charged to `budget` box by box; once it
/// is exhausted the remaining boxes are skipped and their distances are 0.
pub(super) fn nearest_distances_clustered(
    clustered: Clustered,
    queries: &[Point],
    spacing: [f64; 3],
    size: [usize; 3],
    budget: &WorkBudget,
) -> Vec<f64> {
    if clustered.len() == 0 || queries.is_empty() {
        return vec![f64::INFINITY; queries.len()];
    }
    budget.charge(steps(clustered.len()));
    let tree = QueryTree::new(queries, spacing, size);
    budget.charge(steps(queries.len()));
    let search = Search {
        clustered,
        tree: &tree,
        spacing,
        weights: relative_weights(spacing),
        margins: Margins::new(spacing, size),
        budget,
    };
    let mut sorted_out = vec![0.0; queries.len()];
    let all = search.clustered.all();
    let mut scratch = Scratch::spare();
    search.by_clusters(QueryTree::ROOT, &mut sorted_out, &all, &mut scratch);
    scratch.give_back(budget);
    let mut out = vec![0.0; queries.len()];
    for (&i, &d) in tree.index.iter().zip(&sorted_out) {
        out[i as usize] = d;
    }
    out
}

/// Runs `work` compiled for AVX2 where the processor has it, so that the
/// loops over coordinate arrays inlined into it take eight `f32` or four
/// `f64` at a time instead of four or two. The values are the same either
/// way: the `f32` bounds only prune with a margin, and the distances are
/// the same `f64` operations (Rust never fuses a multiply and an add).
#[inline(always)]
fn wide<R>(work: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && !tests_narrow() {
        /// # Safety
        ///
        /// The processor must have AVX2.
        #[target_feature(enable = "avx2")]
        unsafe fn with_avx2<R>(work: impl FnOnce() -> R) -> R {
            work()
        }
        // SAFETY: the processor has AVX2, the only requirement of `with_avx2`.
        return unsafe { with_avx2(work) };
    }
    work()
}

/// Set by a test to run the narrow loops even where AVX2 is present.
#[cfg(test)]
static NARROW: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[inline(always)]
fn tests_narrow() -> bool {
    #[cfg(test)]
    return NARROW.load(std::sync::atomic::Ordering::Relaxed);
    #[cfg(not(test))]
    false
}

/// Features or queries visited per step of [`WorkBudget`]. A visit (a bound,
/// a distance or a comparison of positions in cache) costs a fraction of a
/// step elsewhere (5 to 10 ns); with 4, a 512 × 512 × 300 CT whose
/// prediction has 1, 3 or 5 % of its voxels flipped (salt noise, the
/// costliest masks) takes 3.9, 5.2 and 5.4 steps per voxel, fewer than
/// before this search existed (4.8 to 6.0 at 1 to 3 %), far within
/// `CaseBound::STEPS_PER_VOXEL`.
const VISITS_PER_STEP: usize = 4;

fn steps(visits: usize) -> u64 {
    visits.div_ceil(VISITS_PER_STEP) as u64
}

/// The margins by which a feature must be farther than the pivot everywhere
/// in a box to be pruned, in the units of [`relative_weights`].
///
/// Every squared distance within the crop is at most `diagonal²`, and the
/// distance formula rounds by a few units of 2⁻⁵² of it; a pruned feature
/// is farther than the pivot by `1e-9 · diagonal²`, millions of times that,
/// so it is farther in `f64` too. The bounds are computed in `f32`, each
/// value within `8u` of its own size (`u = 2⁻²⁴`, at most eight
/// roundings); the tests allow for that relative to the values they
/// compare ([`Pruning`], [`ClusterBounds::keep`]), so they still prune only
/// what is farther by the margin. A smaller real difference merely keeps a
/// feature that could have gone.
struct Margins {
    /// For [`ClusterBounds::keep`]; `None` where a side of the crop exceeds
    /// [`EXACT_SQUARES`] voxels, and clusters are not pruned.
    clusters: Option<f32>,
    /// For [`Pruning`], four times that.
    features: f32,
}

/// `32u`: the relative allowance for the `f32` rounding of the bounds, four
/// times the largest relative error of their terms.
const F32_ALLOWANCE: f32 = 1.0 / (1 << 19) as f32;

/// The longest crop side, in voxels, whose squared offsets are integers
/// below 2²⁴, exact in `f32`: [`ClusterBounds::keep`] subtracts such
/// squares, and rounded ones would leave an error relative to the squares,
/// not to their difference.
const EXACT_SQUARES: usize = 4096;

impl Margins {
    fn new(spacing: [f64; 3], size: [usize; 3]) -> Margins {
        let diagonal2: f64 = (0..3)
            .map(|a| (spacing[a] * (size[a] + 1) as f64).powi(2))
            .sum::<f64>()
            .max(1.0);
        let largest = spacing.map(|s| s * s).into_iter().fold(0.0, f64::max);
        let margin = 1e-9 * diagonal2 / largest * (1.0 + f64::from(F32_ALLOWANCE));
        Margins {
            clusters: size
                .iter()
                .all(|&n| n <= EXACT_SQUARES)
                .then_some(margin as f32),
            features: (4.0 * margin) as f32,
        }
    }
}

/// The squared spacing over the largest of them. The bounds only compare
/// sums of these weights' multiples, so any common factor gives the same
/// verdicts; this one keeps them within `f32` whatever the spacing (a
/// spacing of 10¹⁶ mm would overflow it otherwise), and the margins are in
/// the same units.
fn relative_weights(spacing: [f64; 3]) -> [f64; 3] {
    let weights = spacing.map(|s| s * s);
    let largest = weights.into_iter().fold(0.0, f64::max);
    weights.map(|w| w / largest)
}

/// The distance formula of [`super::distance`], on voxel offsets.
#[cfg(test)]
fn distance_mm(q: Point, f: Point, [sx, sy, sz]: [f64; 3]) -> f64 {
    let d = |a: usize| f64::from(q[a] - f[a]);
    let (dx, dy, dz) = (sx * d(0), sy * d(1), sz * d(2));
    ((dx * dx + dy * dy) + dz * dz).sqrt()
}

/// The queries in a space-filling order and a binary tree of boxes over
/// them: each node is a run of the order, split where the order crosses the
/// middle of the node's cell along the axis longest in mm.
struct QueryTree {
    points: Vec<Point>,
    /// The position of each point in the caller's list.
    index: Vec<u32>,
    nodes: Vec<TreeNode>,
}

#[derive(Clone, Copy)]
struct TreeNode {
    bounds: Extent,
    start: usize,
    end: usize,
    /// The two halves, unless the node has at most [`LEAF_QUERIES`].
    halves: Option<[u32; 2]>,
}

impl QueryTree {
    const ROOT: u32 = 0;

    fn new(queries: &[Point], spacing: [f64; 3], size: [usize; 3]) -> QueryTree {
        let spread = spread_tables(spacing, size);
        let key = |q: &Point| {
            spread[0][q[0] as usize] | spread[1][q[1] as usize] | spread[2][q[2] as usize]
        };
        let used = spread.iter().flatten().fold(0, |acc, &k| acc | k);
        let key_bits = u64::BITS - used.leading_zeros();
        let index_bits = usize::BITS - queries.len().leading_zeros();
        let mut tree = QueryTree {
            points: Vec::with_capacity(queries.len()),
            index: Vec::with_capacity(queries.len()),
            nodes: Vec::with_capacity(2 * queries.len() / LEAF_QUERIES + 1),
        };
        let keys = if key_bits + index_bits < u64::BITS {
            // Key and index packed in one word: half the memory to sort.
            let mut keyed: Vec<u64> = (queries.iter().enumerate())
                .map(|(i, q)| key(q) << index_bits | i as u64)
                .collect();
            radix_sort(&mut keyed, index_bits..index_bits + key_bits, |&r| r);
            let index = |r: u64| r & ((1 << index_bits) - 1);
            tree.index.extend(keyed.iter().map(|&r| index(r) as u32));
            (tree.points).extend(tree.index.iter().map(|&i| queries[i as usize]));
            for r in &mut keyed {
                *r >>= index_bits;
            }
            keyed
        } else {
            let mut keyed: Vec<(u64, u32)> = (queries.iter().enumerate())
                .map(|(i, q)| (key(q), i as u32))
                .collect();
            radix_sort(&mut keyed, 0..key_bits, |&(k, _)| k);
            for &(_, i) in &keyed {
                tree.points.push(queries[i as usize]);
                tree.index.push(i);
            }
            keyed.into_iter().map(|(k, _)| k).collect()
        };
        // The highest bit in which each key differs from the one before:
        // the bit that splits a run between them.
        let mut splits = vec![u8::MAX; keys.len()];
        for (s, pair) in splits[1..].iter_mut().zip(keys.windows(2)) {
            let differ = pair[0] ^ pair[1];
            if differ != 0 {
                *s = (63 - differ.leading_zeros()) as u8;
            }
        }
        tree.build(&keys, &splits, 0, queries.len());
        tree
    }

    /// Adds the node of the run `start..end` (non-empty) and those below
    /// it; returns its index.
    fn build(&mut self, keys: &[u64], splits: &[u8], start: usize, end: usize) -> u32 {
        let at = self.nodes.len();
        self.nodes.push(TreeNode {
            bounds: Extent::EMPTY,
            start,
            end,
            halves: None,
        });
        // Distinct positions have distinct keys; equal ones stay together.
        let differ = keys[start] ^ keys[end - 1];
        if end - start <= LEAF_QUERIES || differ == 0 {
            let mut bounds = Extent::EMPTY;
            for &p in &self.points[start..end] {
                bounds.add(p);
            }
            self.nodes[at].bounds = bounds;
        } else {
            // The keys share every bit above `bit`, so those of the run with
            // it clear come first, and the first with it set is the one key
            // of the run to differ from the one before in that bit: found
            // by a byte search, with no chain of dependent loads.
            let bit = (63 - differ.leading_zeros()) as u8;
            let middle = start
                + 1
                + memchr::memchr(bit, &splits[start + 1..end]).expect("a run splits at its bit");
            let low = self.build(keys, splits, start, middle);
            let high = self.build(keys, splits, middle, end);
            let (a, b) = (
                self.nodes[low as usize].bounds,
                self.nodes[high as usize].bounds,
            );
            self.nodes[at].bounds = a.merge(b);
            self.nodes[at].halves = Some([low, high]);
        }
        at as u32
    }
}

/// For each axis, the bits of each coordinate placed where the sort key
/// holds them. From the top, each bit of the key halves the cell along the
/// axis whose side is then longest in mm, so that a node is split across
/// its longest side as far as its cell tells.
fn spread_tables(spacing: [f64; 3], size: [usize; 3]) -> [Vec<u64>; 3] {
    let mut bits = size.map(|n| usize::BITS - n.saturating_sub(1).leading_zeros());
    let mut tables = size.map(|n| vec![0u64; n.max(1)]);
    let mut position = bits.iter().sum::<u32>().min(64);
    while position > 0 {
        let mut axis = None;
        for a in 0..3 {
            if bits[a] == 0 {
                continue;
            }
            let side = f64::from(1u32 << (bits[a] - 1).min(30)) * spacing[a];
            let longest =
                axis.map(|b: usize| f64::from(1u32 << (bits[b] - 1).min(30)) * spacing[b]);
            if longest.is_none_or(|l| side > l) {
                axis = Some(a);
            }
        }
        let Some(a) = axis else { break };
        bits[a] -= 1;
        position -= 1;
        for (c, entry) in tables[a].iter_mut().enumerate() {
            *entry |= ((c as u64 >> bits[a]) & 1) << position;
        }
    }
    tables
}

/// Sorts `records` (stably) by the bits `bits` of their `key`, least
/// significant digits first, in as few passes of at most 13 bits as they
/// need. The other bits of the keys must be the same for every record or
/// already in order.
fn radix_sort<T: Copy + Default>(records: &mut Vec<T>, bits: Range<u32>, key: impl Fn(&T) -> u64) {
    let passes = bits.len().div_ceil(13) as u32;
    if passes == 0 {
        return;
    }
    let width = (bits.len() as u32).div_ceil(passes);
    let mut other = vec![T::default(); records.len()];
    for pass in 0..passes {
        let shift = bits.start + pass * width;
        let digit = |r: &T| ((key(r) >> shift) & ((1 << width) - 1)) as usize;
        let mut start = vec![0usize; (1 << width) + 1];
        for r in records.iter() {
            start[digit(r) + 1] += 1;
        }
        for d in 0..1 << width {
            start[d + 1] += start[d];
        }
        for r in records.iter() {
            let d = digit(r);
            other[start[d]] = *r;
            start[d] += 1;
        }
        std::mem::swap(records, &mut other);
    }
}

/// Features grouped in clusters, each with its bounding box, so that large
/// boxes of queries prune whole clusters. Any grouping is exact; compact
/// ones, such as cells of [`CLUSTER_VOXELS`]³ voxels, prune best.
pub(super) struct Clustered {
    /// The features, grouped by cluster.
    features: Coordinates,
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
    pub(super) fn new() -> Clustered {
        Clustered {
            features: Coordinates::default(),
            clusters: Vec::new(),
        }
    }

    /// Makes room for `more` features.
    pub(super) fn reserve(&mut self, more: usize) {
        let c = &mut self.features;
        for v in [&mut c.x, &mut c.y, &mut c.z] {
            v.reserve(more);
        }
    }

    /// Adds a feature to the cluster being built.
    #[inline(always)]
    pub(super) fn push_feature(&mut self, [x, y, z]: Point) {
        // The arrays are pushed to, never resized: they hold `len` values.
        let c = &mut self.features;
        c.x.push(x as f32);
        c.y.push(y as f32);
        c.z.push(z as f32);
        c.len += 1;
    }

    /// Ends the cluster being built, made of the features pushed since the
    /// last one ended, whose smallest and largest coordinates are
    /// `[lo, hi]`; nothing if it has none.
    pub(super) fn end_cluster(&mut self, [lo, hi]: [Point; 2]) {
        let start = self.clusters.last().map_or(0, |c| c.end);
        let end = self.features.len;
        if end == start {
            return;
        }
        debug_assert!((start..end).all(|i| {
            let f = [&self.features.x, &self.features.y, &self.features.z].map(|v| v[i] as i32);
            (0..3).all(|a| lo[a] <= f[a] && f[a] <= hi[a])
        }));
        self.clusters.push(Cluster { lo, hi, start, end });
    }

    /// How many features were pushed.
    pub(super) fn len(&self) -> usize {
        self.features.len()
    }

    /// Groups `features` by their cells of [`CLUSTER_VOXELS`]³ voxels, by a
    /// counting sort (or a sort, when the cells outnumber the features).
    #[cfg(test)]
    fn grouped(features: &[Point]) -> Clustered {
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
        let mut clustered = Clustered::new();
        for cell in keyed.chunk_by(|a, b| a.0 == b.0) {
            let members: Vec<Point> = cell.iter().map(|&(_, f)| f).collect();
            let [lo, hi] = [i32::min, i32::max].map(|pick| {
                [0, 1, 2].map(|a| members.iter().map(|f| f[a]).reduce(pick).unwrap_or(0))
            });
            for &f in &members {
                clustered.push_feature(f);
            }
            clustered.end_cluster([lo, hi]);
        }
        clustered
    }

    /// Every cluster, as a list.
    fn all(&self) -> ClusterList {
        let mut list = ClusterList::default();
        for (k, c) in self.clusters.iter().enumerate() {
            for a in 0..3 {
                list.lo[a].push(c.lo[a] as f32);
                list.hi[a].push(c.hi[a] as f32);
            }
            list.id.push(k as u32);
        }
        list
    }

    /// Each cluster's bounds and features, for tests.
    #[cfg(test)]
    pub(super) fn clusters(&self) -> Vec<([Point; 2], Vec<Point>)> {
        let c = &self.features;
        (self.clusters.iter())
            .map(|k| {
                let members = (k.start..k.end).map(|i| [c.x[i], c.y[i], c.z[i]].map(|v| v as i32));
                ([k.lo, k.hi], members.collect())
            })
            .collect()
    }

    fn members(&self, k: u32) -> Range<usize> {
        let c = &self.clusters[k as usize];
        c.start..c.end
    }
}

/// Clusters that a box of queries keeps: their boxes, as separate arrays of
/// the corners' coordinates, and their indices.
#[derive(Default)]
struct ClusterList {
    lo: [Vec<f32>; 3],
    hi: [Vec<f32>; 3],
    id: Vec<u32>,
}

impl ClusterList {
    /// The clusters whose `keep` is 1.
    fn kept(&self, keep: &[u8]) -> ClusterList {
        let n = self.id.len();
        let keep = &keep[..n];
        // Without branches, as in `compact`: every cluster is written at the
        // front, and those kept advance it.
        let mut list = ClusterList {
            lo: [vec![0.0; n], vec![0.0; n], vec![0.0; n]],
            hi: [vec![0.0; n], vec![0.0; n], vec![0.0; n]],
            id: vec![0; n],
        };
        let mut next = 0;
        for (k, &kept) in keep.iter().enumerate() {
            let at = next.min(k);
            for a in 0..3 {
                list.lo[a][at] = self.lo[a][k];
                list.hi[a][at] = self.hi[a][k];
            }
            list.id[at] = self.id[k];
            next += usize::from(kept);
        }
        for v in list.lo.iter_mut().chain(&mut list.hi) {
            v.truncate(next);
        }
        list.id.truncate(next);
        list
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

/// The corners of a box of voxels.
#[derive(Clone, Copy)]
struct Extent {
    lo: Point,
    hi: Point,
}

impl Extent {
    const EMPTY: Extent = Extent {
        lo: [i32::MAX; 3],
        hi: [i32::MIN; 3],
    };

    fn add(&mut self, p: Point) {
        *self = self.merge(Extent { lo: p, hi: p });
    }

    fn merge(self, other: Extent) -> Extent {
        Extent {
            lo: [0, 1, 2].map(|a| self.lo[a].min(other.lo[a])),
            hi: [0, 1, 2].map(|a| self.hi[a].max(other.hi[a])),
        }
    }

    /// The box of the points added (at least one).
    fn bounds(&self) -> Bounds {
        let lo = self.lo.map(f64::from);
        let hi = self.hi.map(f64::from);
        Bounds {
            lo,
            hi,
            centre2: [0, 1, 2].map(|a| lo[a] + hi[a]),
            size: [0, 1, 2].map(|a| hi[a] - lo[a]),
        }
    }
}

/// The test that prunes features against a pivot `g` over one box, for many
/// features at once.
///
/// With `m` the centre of the box, the axis term `(g − f)·(2p − f − g)` of
/// `|p − f|² − |p − g|²` is `(m − f)² − (m − g)² + 2(g − f)(p − m)`, whose
/// smallest value over the box is `(m − f)² − (m − g)² − size·|g − f|`.
/// Weighted and summed, and times 4: `c(f) − c(g) − s(f)`, where `c` is
/// `|2·(f − m)|²` and `s(f)` is `Σ 4·w·size·|g − f|`, with the weights `w` of
/// [`relative_weights`].
///
/// In `f32`, `c` and `s` are each within `6u` of their values and their
/// difference within `8u·(c + s)` (see [`Margins`]). A feature is kept if
/// `c(f) − ρ·s(f) ≤ ρ·c(g) + margin`, with `ρ = 1 +` [`F32_ALLOWANCE`]:
/// whenever the exact `c(f) − s(f) − c(g)` is at most the margin, the
/// computed left side is at most `(1 + 8u)·(c(g) + margin) + ((1 + 8u) −
/// ρ(1 − 8u))·s(f)`, whose last term is negative, and the computed right
/// side is at least `(1 − 8u)·ρ·(c(g) + margin)`, which is larger.
struct Pruning {
    frame: Frame,
    /// `ρ·4·w·size` per axis.
    slopes: [f32; 3],
}

/// A box's centre and the weights, in `f32`: what both bounds measure from.
struct Frame {
    /// `lo + hi`.
    centre2: [f32; 3],
    weights: [f32; 3],
}

impl Frame {
    fn new(b: &Bounds, weights: [f64; 3]) -> Frame {
        Frame {
            centre2: b.centre2.map(|c| c as f32),
            weights: weights.map(|w| w as f32),
        }
    }

    /// `Σ w·d²` of per-axis offsets `d`, summed in the order of the
    /// distance formula.
    #[inline(always)]
    fn weighted(&self, [dx, dy, dz]: [f32; 3]) -> f32 {
        let w = self.weights;
        (w[0] * dx * dx + w[1] * dy * dy) + w[2] * dz * dz
    }
}

impl Pruning {
    fn new(b: &Bounds, weights: [f64; 3]) -> Pruning {
        Pruning {
            frame: Frame::new(b, weights),
            slopes: [0, 1, 2]
                .map(|a| (4.0 * weights[a] * b.size[a] * (1.0 + f64::from(F32_ALLOWANCE))) as f32),
        }
    }

    /// `c(f)` of each feature of `features[range]` (non-empty) into
    /// `to_centre`; returns the position of the first smallest.
    #[inline(always)]
    fn to_centre(
        &self,
        features: &Coordinates,
        range: Range<usize>,
        to_centre: &mut Vec<f32>,
    ) -> usize {
        let [x, y, z] = features.axes(range);
        to_centre.resize(x.len(), 0.0);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && !tests_narrow() {
            // SAFETY: the processor has AVX2, the only requirement of
            // `to_centre_avx2`.
            let smallest = unsafe { to_centre_avx2(&self.frame, [x, y, z], to_centre) };
            return first_at(to_centre, smallest);
        }
        self.measure([x, y, z], to_centre);
        first_smallest(to_centre)
    }

    /// `c(f)` of each feature of `from` into `to_centre` (as long).
    #[inline(always)]
    fn measure(&self, [x, y, z]: [&[f32]; 3], to_centre: &mut [f32]) {
        let (y, z) = (&y[..x.len()], &z[..x.len()]);
        for (k, c) in to_centre[..x.len()].iter_mut().enumerate() {
            let d = |f: f32, a: usize| 2.0 * f - self.frame.centre2[a];
            *c = self.frame.weighted([d(x[k], 0), d(y[k], 1), d(z[k], 2)]);
        }
    }

    /// Whether each feature of `features[range]` may be as near as the
    /// pivot `g` (whose `c` is `pivot_to_centre`) to some point of the box,
    /// into `keep`.
    #[inline(always)]
    fn keep(
        &self,
        [x, y, z]: [&[f32]; 3],
        to_centre: &[f32],
        (g, pivot_to_centre): ([f32; 3], f32),
        margin: f32,
        keep: &mut [u8],
    ) {
        let threshold = pivot_to_centre * (1.0 + F32_ALLOWANCE) + margin;
        let keep = &mut keep[..x.len()];
        let (y, z, to_centre) = (&y[..x.len()], &z[..x.len()], &to_centre[..x.len()]);
        for (k, kept) in keep.iter_mut().enumerate() {
            let slack = (self.slopes[0] * (x[k] - g[0]).abs()
                + self.slopes[1] * (y[k] - g[1]).abs())
                + self.slopes[2] * (z[k] - g[2]).abs();
            *kept = u8::from(to_centre[k] - slack <= threshold);
        }
    }

    /// Copies the features of `from` that [`Pruning::keep`] keeps to the
    /// front of `to` (as long as `from`), as [`compact`] does; returns how
    /// many. Where the processor has AVX2, the test and the copy of each
    /// eight are one pass ([`prune_avx2`]); `keep` is then unused.
    #[inline(always)]
    fn keep_into(
        &self,
        from: [&[f32]; 3],
        to_centre: &[f32],
        pivot: ([f32; 3], f32),
        margin: f32,
        keep: &mut Vec<u8>,
        to: [&mut [f32]; 3],
    ) -> usize {
        let to_centre = &to_centre[..from[0].len()];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && !tests_narrow() {
            // SAFETY: the processor has AVX2, the only requirement of
            // `prune_avx2`.
            return unsafe { prune_avx2::<false>(self, from, to_centre, pivot, margin, to) };
        }
        keep.resize(to_centre.len(), 0);
        self.keep(from, to_centre, pivot, margin, keep);
        compact(from, keep, to)
    }

    /// [`Pruning::keep_into`] for features whose `c` is not yet known:
    /// where the processor has AVX2 it is computed in the same pass, and
    /// `to_centre` is unused; elsewhere it goes through `to_centre`.
    #[inline(always)]
    fn measure_keep_into(
        &self,
        from: [&[f32]; 3],
        to_centre: &mut Vec<f32>,
        pivot: ([f32; 3], f32),
        margin: f32,
        keep: &mut Vec<u8>,
        to: [&mut [f32]; 3],
    ) -> usize {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && !tests_narrow() {
            // SAFETY: the processor has AVX2, the only requirement of
            // `prune_avx2`.
            return unsafe { prune_avx2::<true>(self, from, &[], pivot, margin, to) };
        }
        to_centre.resize(from[0].len(), 0.0);
        self.measure(from, to_centre);
        self.keep_into(from, to_centre, pivot, margin, keep, to)
    }
}

/// [`Pruning::keep_into`] eight features at a time (and
/// [`Pruning::measure_keep_into`] if `MEASURE`, which ignores `to_centre`
/// and computes `c` as [`to_centre_avx2`] does): the test of
/// [`Pruning::keep`], in the same `f32` operations in the same order (Rust
/// never fuses a multiply and an add), gives a mask of eight lanes, which
/// moves the kept features to the front with one permutation
/// ([`LEFT_PACK`]); all eight are stored at the front, which then advances
/// by the number kept.
///
/// # Safety
///
/// The processor must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn prune_avx2<const MEASURE: bool>(
    pruning: &Pruning,
    from: [&[f32]; 3],
    to_centre: &[f32],
    (g, pivot_to_centre): ([f32; 3], f32),
    margin: f32,
    to: [&mut [f32]; 3],
) -> usize {
    use std::arch::x86_64::{
        __m256, __m256i, _mm256_add_ps, _mm256_andnot_ps, _mm256_cmp_ps, _mm256_loadu_ps,
        _mm256_loadu_si256, _mm256_maskload_ps, _mm256_maskstore_ps, _mm256_movemask_ps,
        _mm256_mul_ps, _mm256_permutevar8x32_ps, _mm256_set1_ps, _mm256_storeu_ps, _mm256_sub_ps,
        _CMP_LE_OQ,
    };
    let n = from[0].len();
    let [fx, fy, fz] = from;
    let from = [&fx[..n], &fy[..n], &fz[..n]];
    let [tx, ty, tz] = to;
    let mut to = [&mut tx[..n], &mut ty[..n], &mut tz[..n]];
    let threshold = pivot_to_centre * (1.0 + F32_ALLOWANCE) + margin;
    let mut next = 0;
    let mut k = 0;
    let (sign, limit) = (_mm256_set1_ps(-0.0), _mm256_set1_ps(threshold));
    let slopes = pruning.slopes.map(|v| _mm256_set1_ps(v));
    let pivot = g.map(|v| _mm256_set1_ps(v));
    let wide = WideFrame::new(&pruning.frame);
    // The test of eight features `v` whose `c` are `c`: the mask of
    // those kept, and the permutation that moves them to the front.
    let test = |v: [__m256; 3], c: __m256| {
        // |f − g| times the slope, per axis: `andnot` clears the sign.
        let term = |a: usize| {
            _mm256_mul_ps(
                slopes[a],
                _mm256_andnot_ps(sign, _mm256_sub_ps(v[a], pivot[a])),
            )
        };
        let slack = _mm256_add_ps(_mm256_add_ps(term(0), term(1)), term(2));
        let kept = _mm256_cmp_ps::<_CMP_LE_OQ>(_mm256_sub_ps(c, slack), limit);
        let mask = _mm256_movemask_ps(kept) as usize;
        // SAFETY: each entry of the table holds eight lanes.
        let order = unsafe { _mm256_loadu_si256(LEFT_PACK[mask].as_ptr().cast::<__m256i>()) };
        (mask, v.map(|v| _mm256_permutevar8x32_ps(v, order)))
    };
    while k + 8 <= n {
        // SAFETY: `k + 8 <= n`, every slice holds `n` values, and the front
        // `next` is at most `k`, so that the eight values stored from it
        // stay within `to`.
        unsafe {
            let v = from.map(|v| _mm256_loadu_ps(v.as_ptr().add(k)));
            let c = if MEASURE {
                wide.to_centre(v)
            } else {
                _mm256_loadu_ps(to_centre.as_ptr().add(k))
            };
            let (mask, packed) = test(v, c);
            for (t, v) in to.iter_mut().zip(packed) {
                _mm256_storeu_ps(t.as_mut_ptr().add(next), v);
            }
            next += usize::from(KEPT[mask]);
        }
        k += 8;
    }
    if k < n {
        // The last few as one more eight, read and written through a mask of
        // their lanes.
        let left = n - k;
        // SAFETY: the masks give only the lanes of values within the slices.
        unsafe {
            let lanes = _mm256_loadu_si256(TAIL_LANES[left].as_ptr().cast::<__m256i>());
            let load = |v: &[f32]| _mm256_maskload_ps(v.as_ptr().add(k), lanes);
            let v = from.map(load);
            let c = if MEASURE {
                wide.to_centre(v)
            } else {
                load(to_centre)
            };
            let (mask, packed) = test(v, c);
            let mask = mask & ((1 << left) - 1);
            let kept = usize::from(KEPT[mask]);
            let store = _mm256_loadu_si256(TAIL_LANES[kept].as_ptr().cast::<__m256i>());
            for (t, v) in to.iter_mut().zip(packed) {
                _mm256_maskstore_ps(t.as_mut_ptr().add(next), store, v);
            }
            next += kept;
        }
    }
    next
}

/// A box's [`Frame`] in eight lanes.
#[cfg(target_arch = "x86_64")]
struct WideFrame {
    centre2: [std::arch::x86_64::__m256; 3],
    weights: [std::arch::x86_64::__m256; 3],
}

#[cfg(target_arch = "x86_64")]
impl WideFrame {
    #[target_feature(enable = "avx2")]
    fn new(frame: &Frame) -> WideFrame {
        use std::arch::x86_64::_mm256_set1_ps;
        WideFrame {
            centre2: frame.centre2.map(|v| _mm256_set1_ps(v)),
            weights: frame.weights.map(|v| _mm256_set1_ps(v)),
        }
    }

    /// `c(f)` of eight features, in the operations of
    /// [`Pruning::to_centre`] in the same order: [`Frame::weighted`] of
    /// `2·f − centre2`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn to_centre(&self, v: [std::arch::x86_64::__m256; 3]) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::{_mm256_add_ps, _mm256_mul_ps, _mm256_set1_ps, _mm256_sub_ps};
        let two = _mm256_set1_ps(2.0);
        let term = |a: usize| {
            let d = _mm256_sub_ps(_mm256_mul_ps(two, v[a]), self.centre2[a]);
            _mm256_mul_ps(_mm256_mul_ps(self.weights[a], d), d)
        };
        _mm256_add_ps(_mm256_add_ps(term(0), term(1)), term(2))
    }
}

/// [`Pruning::to_centre`] eight features at a time, in the same `f32`
/// operations in the same order, the last few read and written through a
/// mask of their lanes; returns the smallest value, found in the same pass.
///
/// # Safety
///
/// The processor must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn to_centre_avx2(frame: &Frame, [x, y, z]: [&[f32]; 3], out: &mut [f32]) -> f32 {
    use std::arch::x86_64::{
        __m256i, _mm256_blendv_ps, _mm256_castsi256_ps, _mm256_loadu_ps, _mm256_loadu_si256,
        _mm256_maskload_ps, _mm256_maskstore_ps, _mm256_min_ps, _mm256_set1_ps, _mm256_storeu_ps,
    };
    let n = out.len();
    let from = [&x[..n], &y[..n], &z[..n]];
    let wide = WideFrame::new(frame);
    let value = |v| wide.to_centre(v);
    let infinity = _mm256_set1_ps(f32::INFINITY);
    let mut smallest = infinity;
    let mut k = 0;
    while k + 8 <= n {
        // SAFETY: `k + 8 <= n`, and every slice holds `n` values.
        unsafe {
            let c = value(from.map(|v| _mm256_loadu_ps(v.as_ptr().add(k))));
            _mm256_storeu_ps(out.as_mut_ptr().add(k), c);
            smallest = _mm256_min_ps(smallest, c);
        }
        k += 8;
    }
    if k < n {
        // SAFETY: the mask gives only the lanes of values within the slices.
        unsafe {
            let lanes = _mm256_loadu_si256(TAIL_LANES[n - k].as_ptr().cast::<__m256i>());
            let c = value(from.map(|v| _mm256_maskload_ps(v.as_ptr().add(k), lanes)));
            _mm256_maskstore_ps(out.as_mut_ptr().add(k), lanes, c);
            let c = _mm256_blendv_ps(infinity, c, _mm256_castsi256_ps(lanes));
            smallest = _mm256_min_ps(smallest, c);
        }
    }
    let mut lanes = [0.0f32; 8];
    // SAFETY: `lanes` holds eight values.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), smallest) };
    lanes
        .iter()
        .fold(f32::INFINITY, |a, &v| if v < a { v } else { a })
}

/// The bounds of one box of queries against many clusters, in `f32`.
struct ClusterBounds {
    lo: [f32; 3],
    hi: [f32; 3],
    frame: Frame,
}

impl ClusterBounds {
    fn new(b: &Bounds, weights: [f64; 3]) -> ClusterBounds {
        ClusterBounds {
            lo: b.lo.map(|v| v as f32),
            hi: b.hi.map(|v| v as f32),
            frame: Frame::new(b, weights),
        }
    }

    /// `|2·(box − centre)|²` of each cluster's box, weighted, into `out`:
    /// only to choose the pivot.
    #[inline(always)]
    fn to_centre(&self, list: &ClusterList, out: &mut Vec<f32>) {
        let n = list.id.len();
        out.resize(n, 0.0);
        let [lx, ly, lz] = list.lo.each_ref().map(|v| &v[..n]);
        let [hx, hy, hz] = list.hi.each_ref().map(|v| &v[..n]);
        for (k, o) in out.iter_mut().enumerate() {
            let centre2 = self.frame.centre2;
            let d = |lo: f32, hi: f32, a: usize| {
                (2.0 * lo - centre2[a]).max(centre2[a] - 2.0 * hi).max(0.0)
            };
            *o = self
                .frame
                .weighted([d(lx[k], hx[k], 0), d(ly[k], hy[k], 1), d(lz[k], hz[k], 2)]);
        }
    }

    /// Whether each cluster of `list` may hold a feature as near as the
    /// pivot `g` to some point of the box, into `keep`: the smallest
    /// `|p − f|² − |p − g|²` over the points p of the box and f of the
    /// cluster's box is at most `margin`.
    ///
    /// Per axis, for each p the nearest f lies in or at an end of the
    /// cluster's span `fl..=fh`; the resulting piecewise quadratic in p is
    /// affine outside that span and concave inside, so its smallest value
    /// over the box lies at an end of the box or at `fl` or `fh` clamped to
    /// the box. The squares and their differences are of integers, exact
    /// below 2²⁴ (crops of at most [`EXACT_SQUARES`] voxels a side, the only
    /// ones this runs on); the weights, their products and the sums round,
    /// so the gap is within `5u` of the sum of the sizes of its three terms,
    /// and the test allows `32u` (see [`Margins`]).
    #[inline(always)]
    fn keep(&self, list: &ClusterList, g: [f32; 3], margin: f32, keep: &mut Vec<u8>) {
        let n = list.id.len();
        keep.resize(n, 0);
        let [lx, ly, lz] = list.lo.each_ref().map(|v| &v[..n]);
        let [hx, hy, hz] = list.hi.each_ref().map(|v| &v[..n]);
        for (k, kept) in keep.iter_mut().enumerate() {
            // Selects, not `max`, `min` and `clamp`, which handle NaN (there
            // is none) and so keep the loop from being vectorized.
            let larger = |a: f32, b: f32| if a > b { a } else { b };
            let smaller = |a: f32, b: f32| if a < b { a } else { b };
            let term = |fl: f32, fh: f32, a: usize| {
                let (lo, hi, g) = (self.lo[a], self.hi[a], g[a]);
                let h = |p: f32| {
                    let out = larger(larger(fl - p, p - fh), 0.0);
                    out * out - (g - p) * (g - p)
                };
                let clamped = |f: f32| smaller(larger(f, lo), hi);
                let smallest = smaller(
                    smaller(h(lo), h(hi)),
                    smaller(h(clamped(fl)), h(clamped(fh))),
                );
                self.frame.weights[a] * smallest
            };
            let terms = [
                term(lx[k], hx[k], 0),
                term(ly[k], hy[k], 1),
                term(lz[k], hz[k], 2),
            ];
            let gap = (terms[0] + terms[1]) + terms[2];
            let size = (terms[0].abs() + terms[1].abs()) + terms[2].abs();
            *kept = u8::from(gap <= margin + F32_ALLOWANCE * size);
        }
    }
}

/// Feature positions as three arrays of coordinates, used as a stack: the
/// arrays only grow, and `len` is its top, so that pushing a box's features
/// writes no zeros first.
#[derive(Default)]
struct Coordinates {
    x: Vec<f32>,
    y: Vec<f32>,
    z: Vec<f32>,
    len: usize,
}

impl Coordinates {
    fn len(&self) -> usize {
        self.len
    }

    /// Makes room for `more` features above the top.
    fn reserve(&mut self, more: usize) {
        let need = self.len + more;
        if self.x.len() < need {
            let grown = need.max(2 * self.x.len());
            for v in [&mut self.x, &mut self.y, &mut self.z] {
                v.resize(grown, 0.0);
            }
        }
    }

    fn axes(&self, range: Range<usize>) -> [&[f32]; 3] {
        [
            &self.x[range.clone()],
            &self.y[range.clone()],
            &self.z[range],
        ]
    }

    fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Stacks the features of `range` (below the top) that `select` copies
    /// to the front of its second argument from its first (it returns how
    /// many, as [`Pruning::keep_into`] does).
    #[inline(always)]
    fn stack_kept(
        &mut self,
        range: Range<usize>,
        select: impl FnOnce([&[f32]; 3], [&mut [f32]; 3]) -> usize,
    ) {
        let top = self.len;
        let len = range.len();
        self.reserve(len);
        let [x, y, z] = [&mut self.x, &mut self.y, &mut self.z].map(|v| {
            let (below, above) = v.split_at_mut(top);
            (&below[range.clone()], &mut above[..len])
        });
        self.len = top + select([x.0, y.0, z.0], [x.1, y.1, z.1]);
    }

    /// Stacks the features of `source[range]`.
    fn stack_from(&mut self, source: &Coordinates, range: Range<usize>) {
        let top = self.len;
        self.reserve(range.len());
        let axes = [&mut self.x, &mut self.y, &mut self.z];
        for (to, from) in axes.into_iter().zip(source.axes(range.clone())) {
            to[top..top + range.len()].copy_from_slice(from);
        }
        self.len = top + range.len();
    }

    /// Stacks the features of `source[range]` that `select` copies, as in
    /// [`Coordinates::stack_kept`].
    #[inline(always)]
    fn stack_kept_from(
        &mut self,
        source: &Coordinates,
        range: Range<usize>,
        select: impl FnOnce([&[f32]; 3], [&mut [f32]; 3]) -> usize,
    ) {
        let top = self.len;
        let len = range.len();
        self.reserve(len);
        let to = [&mut self.x, &mut self.y, &mut self.z].map(|v| &mut v[top..top + len]);
        self.len = top + select(source.axes(range), to);
    }
}

/// Copies the values of `from` whose `keep` is 1 to the front of `to` (as
/// long as `from`), without branches: every value is written, and those
/// kept advance the front. Returns how many were kept.
#[inline(always)]
fn compact(from: [&[f32]; 3], keep: &[u8], to: [&mut [f32]; 3]) -> usize {
    let [fx, fy, fz] = from;
    let [tx, ty, tz] = to;
    let n = keep.len();
    let (fx, fy, fz) = (&fx[..n], &fy[..n], &fz[..n]);
    let (tx, ty, tz) = (&mut tx[..n], &mut ty[..n], &mut tz[..n]);
    let mut next = 0;
    for k in 0..n {
        // `next` is at most `k`.
        let at = next.min(k);
        tx[at] = fx[k];
        ty[at] = fy[k];
        tz[at] = fz[k];
        next += usize::from(keep[k]);
    }
    next
}

/// For each mask of eight lanes, how many it sets.
#[cfg(target_arch = "x86_64")]
static KEPT: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut mask = 0;
    while mask < 256 {
        table[mask] = (mask as u32).count_ones() as u8;
        mask += 1;
    }
    table
};

/// For each count up to eight, a mask of that many lanes from the first.
#[cfg(target_arch = "x86_64")]
static TAIL_LANES: [[i32; 8]; 9] = {
    let mut table = [[0i32; 8]; 9];
    let mut count = 0;
    while count <= 8 {
        let mut lane = 0;
        while lane < count {
            table[count][lane] = -1;
            lane += 1;
        }
        count += 1;
    }
    table
};

/// For each mask of eight lanes, the lanes it sets, in order, then zeros.
#[cfg(target_arch = "x86_64")]
static LEFT_PACK: [[u32; 8]; 256] = {
    let mut table = [[0u32; 8]; 256];
    let mut mask = 0;
    while mask < 256 {
        let (mut lane, mut next) = (0, 0);
        while lane < 8 {
            if mask >> lane & 1 == 1 {
                table[mask][next] = lane as u32;
                next += 1;
            }
            lane += 1;
        }
        mask += 1;
    }
    table
};

/// The position of the first smallest value of `values` (non-empty, no NaN).
#[inline(always)]
fn first_smallest(values: &[f32]) -> usize {
    let mut lanes = [f32::INFINITY; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(chunk) {
            *l = if v < *l { v } else { *l };
        }
    }
    let smallest = chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .fold(f32::INFINITY, |a, &v| if v < a { v } else { a });
    first_at(values, smallest)
}

/// The position of the first of `values` equal to `smallest`, which one is.
#[inline(always)]
fn first_at(values: &[f32], smallest: f32) -> usize {
    // Eight at a time, without an exit inside each eight.
    let eight = values
        .chunks_exact(8)
        .position(|c| c.iter().fold(false, |any, &v| any | (v == smallest)))
        .unwrap_or(values.len() / 8);
    let from = 8 * eight;
    from + values[from..]
        .iter()
        .position(|&v| v == smallest)
        .unwrap_or(0)
}

/// The features and the constants of one search.
struct Search<'a> {
    clustered: Clustered,
    tree: &'a QueryTree,
    spacing: [f64; 3],
    /// The squared spacing over the largest of them ([`relative_weights`]).
    weights: [f64; 3],
    margins: Margins,
    budget: &'a WorkBudget,
}

/// Buffers of the boxes solved on one thread: the features each box keeps
/// are stacked above those of its parent, and dropped once it is done.
#[derive(Default)]
struct Scratch {
    features: Coordinates,
    to_centre: Vec<f32>,
    /// 1 for the features a box keeps, 0 for the others.
    keep: Vec<u8>,
    /// Steps not yet charged to the budget.
    pending: u64,
}

thread_local! {
    /// Buffers of the tasks finished on this thread, for the next ones: a
    /// task's buffers grow to its largest box, and growing them writes
    /// zeros.
    static SPARE: std::cell::RefCell<Vec<Scratch>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Scratch {
    /// Empty buffers, from a task finished on this thread if there is one.
    fn spare() -> Scratch {
        let mut scratch = SPARE
            .with(|spare| spare.borrow_mut().pop())
            .unwrap_or_default();
        scratch.features.truncate(0);
        scratch.pending = 0;
        scratch
    }

    /// Keeps the buffers for the next task on this thread, once the steps
    /// they hold are charged to `budget`; only a few, and none grown past
    /// the size of ordinary boxes, so that a thread holds at most a few
    /// megabytes once the scoring is done.
    fn give_back(self, budget: &WorkBudget) {
        /// Buffers kept per thread: tasks nested on a thread by
        /// `rayon::join` take more, and drop theirs.
        const SPARE_BUFFERS: usize = 4;
        /// Features a kept buffer may hold (12 bytes each).
        const SPARE_FEATURES: usize = 1 << 16;
        budget.charge(self.pending);
        if self.features.x.len() > SPARE_FEATURES {
            return;
        }
        SPARE.with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.len() < SPARE_BUFFERS {
                spare.push(Scratch { pending: 0, ..self });
            }
        });
    }
}

impl Search<'_> {
    fn node(&self, n: u32) -> &TreeNode {
        &self.tree.nodes[n as usize]
    }

    /// Solves the box of node `n`, whose distances are `out`, against the
    /// clusters `list` (non-empty).
    fn by_clusters(&self, n: u32, out: &mut [f64], list: &ClusterList, scratch: &mut Scratch) {
        if self.budget.exhausted() {
            return;
        }
        let pruned = wide(
            #[inline(always)]
            || self.prune_clusters(n, out, list, scratch),
        );
        if let Some((halves, kept)) = pruned {
            let node = *self.node(n);
            let (low, high) = out.split_at_mut(self.node(halves[0]).end - node.start);
            if node.end - node.start >= PARALLEL_QUERIES {
                rayon::join(
                    || self.by_clusters_apart(halves[0], low, &kept),
                    || self.by_clusters_apart(halves[1], high, &kept),
                );
            } else {
                self.by_clusters(halves[0], low, &kept, scratch);
                self.by_clusters(halves[1], high, &kept, scratch);
            }
        }
    }

    /// Prunes the clusters of `list` for the box of node `n`: returns the
    /// halves of the box and the clusters they are to be solved against,
    /// or solves the box against the features of the clusters it keeps.
    #[inline(always)]
    fn prune_clusters(
        &self,
        n: u32,
        out: &mut [f64],
        list: &ClusterList,
        scratch: &mut Scratch,
    ) -> Option<([u32; 2], ClusterList)> {
        let node = *self.node(n);
        let b = node.bounds.bounds();
        let c = &self.clustered;
        // The pivot: the feature nearest the centre in the cluster whose box
        // is nearest it.
        let boxes = ClusterBounds::new(&b, self.weights);
        let values = &mut scratch.to_centre;
        boxes.to_centre(list, values);
        let nearest = list.id[first_smallest(values)];
        let members = c.members(nearest);
        let pruning = Pruning::new(&b, self.weights);
        let nearest_member = pruning.to_centre(&c.features, members.clone(), values);
        let pivot = (members.start + nearest_member, values[nearest_member]);
        let g = [&c.features.x, &c.features.y, &c.features.z].map(|v| v[pivot.0]);
        match self.margins.clusters {
            Some(margin) => boxes.keep(list, g, margin, &mut scratch.keep),
            None => {
                scratch.keep.clear();
                scratch.keep.resize(list.id.len(), 1);
            }
        }
        let kept = list.kept(&scratch.keep);
        let features: usize = kept.id.iter().map(|&k| c.members(k).len()).sum();
        let queries = node.end - node.start;
        self.budget
            .charge(steps(queries + list.id.len() + members.len()));
        let largest = b.size.iter().copied().fold(0.0, f64::max);
        let halves = match node.halves {
            Some(halves) if features > EXPAND_FEATURES && largest >= f64::from(CLUSTER_VOXELS) => {
                halves
            }
            _ => {
                // The features of the clusters kept that this box keeps
                // itself, by the test of `prune_and_solve`: gathering only
                // those costs less than copying every one.
                scratch.features.truncate(0);
                for &k in &kept.id {
                    let r = c.members(k);
                    let (to_centre, keep) = (&mut scratch.to_centre, &mut scratch.keep);
                    let margin = self.margins.features;
                    scratch
                        .features
                        .stack_kept_from(&c.features, r, |from, to| {
                            let pivot = (g, pivot.1);
                            pruning.measure_keep_into(from, to_centre, pivot, margin, keep, to)
                        });
                }
                self.budget.charge(steps(2 * features));
                self.solve_kept(n, out, scratch);
                return None;
            }
        };
        Some((halves, kept))
    }

    /// [`Search::by_clusters`] with buffers of its own, on whichever thread
    /// runs it.
    fn by_clusters_apart(&self, n: u32, out: &mut [f64], list: &ClusterList) {
        let mut scratch = Scratch::spare();
        self.by_clusters(n, out, list, &mut scratch);
        scratch.give_back(self.budget);
    }

    /// Solves the box of node `n`, whose distances are `out`, against the
    /// features of `scratch` (non-empty), which it has already pruned.
    #[inline(always)]
    fn solve_kept(&self, n: u32, out: &mut [f64], scratch: &mut Scratch) {
        let node = *self.node(n);
        let kept = scratch.features.len();
        match node.halves {
            Some(halves) if kept > 2 && node.bounds.lo != node.bounds.hi => {
                self.solve_halves(n, halves, out, 0..kept, scratch);
            }
            _ => {
                let queries = &self.tree.points[node.start..node.end];
                solve_leaf(queries, &scratch.features, 0..kept, out, self.spacing);
                scratch.pending += steps(queries.len() * kept);
            }
        }
        if scratch.pending >= CHARGE_BATCH {
            self.budget.charge(std::mem::take(&mut scratch.pending));
        }
    }

    /// Solves the two halves of node `n` against the features
    /// `scratch.features[range]` (non-empty), in parallel if the node has
    /// many queries.
    fn solve_halves(
        &self,
        n: u32,
        halves: [u32; 2],
        out: &mut [f64],
        range: Range<usize>,
        scratch: &mut Scratch,
    ) {
        let node = *self.node(n);
        let (low, high) = out.split_at_mut(self.node(halves[0]).end - node.start);
        if node.end - node.start >= PARALLEL_QUERIES {
            let copy = || {
                let mut s = Scratch::spare();
                s.features.stack_from(&scratch.features, range.clone());
                s
            };
            let (a, b) = (copy(), copy());
            rayon::join(
                || self.by_features(halves[0], low, a),
                || self.by_features(halves[1], high, b),
            );
        } else {
            self.on_thread(halves[0], low, range.clone(), scratch);
            self.on_thread(halves[1], high, range, scratch);
        }
    }

    /// Solves the box of node `n`, whose distances are `out`, against the
    /// features of `scratch` (non-empty).
    fn by_features(&self, n: u32, out: &mut [f64], mut scratch: Scratch) {
        let all = 0..scratch.features.len();
        if let Some(halves) = self.prune_and_solve(n, out, all.clone(), &mut scratch) {
            let kept = all.end..scratch.features.len();
            self.solve_halves(n, halves, out, kept, &mut scratch);
        }
        scratch.give_back(self.budget);
    }

    /// Solves node `n` against the features `scratch.features[range]`
    /// (non-empty) on the current thread.
    fn on_thread(&self, n: u32, out: &mut [f64], range: Range<usize>, scratch: &mut Scratch) {
        let top = scratch.features.len();
        if let Some(halves) = self.prune_and_solve(n, out, range, scratch) {
            let kept = top..scratch.features.len();
            let (low, high) = out.split_at_mut(self.node(halves[0]).end - self.node(n).start);
            self.on_thread(halves[0], low, kept.clone(), scratch);
            self.on_thread(halves[1], high, kept, scratch);
        }
        scratch.features.truncate(top);
    }

    /// Stacks the features of `scratch.features[range]` (non-empty) that
    /// the box of node `n` keeps; then either solves the box (a leaf) or
    /// returns its halves, to be solved against the features stacked.
    fn prune_and_solve(
        &self,
        n: u32,
        out: &mut [f64],
        range: Range<usize>,
        scratch: &mut Scratch,
    ) -> Option<[u32; 2]> {
        wide(
            #[inline(always)]
            || self.prune_and_solve_here(n, out, range, scratch),
        )
    }

    #[inline(always)]
    fn prune_and_solve_here(
        &self,
        n: u32,
        out: &mut [f64],
        range: Range<usize>,
        scratch: &mut Scratch,
    ) -> Option<[u32; 2]> {
        if self.budget.exhausted() {
            return None;
        }
        let node = *self.node(n);
        let b = node.bounds.bounds();
        let pruning = Pruning::new(&b, self.weights);
        let Scratch {
            features,
            to_centre,
            keep,
            pending,
        } = scratch;
        let pivot = pruning.to_centre(features, range.clone(), to_centre);
        let g = [&features.x, &features.y, &features.z].map(|v| v[range.start + pivot]);
        let top = features.len();
        let pivot = (g, to_centre[pivot]);
        let margin = self.margins.features;
        features.stack_kept(range.clone(), |from, to| {
            pruning.keep_into(from, to_centre, pivot, margin, keep, to)
        });
        let kept = features.len() - top;
        let queries = node.end - node.start;
        let mut work = queries + 2 * range.len();
        let halves = match node.halves {
            Some(halves) if kept > 2 && b.size != [0.0; 3] => Some(halves),
            _ => {
                solve_leaf(
                    &self.tree.points[node.start..node.end],
                    features,
                    top..features.len(),
                    out,
                    self.spacing,
                );
                work += queries * kept;
                None
            }
        };
        *pending += steps(work);
        if *pending >= CHARGE_BATCH {
            self.budget.charge(std::mem::take(pending));
        }
        halves
    }
}

/// Writes to `out[k]` the smallest distance from `queries[k]` to a feature
/// of `features[range]`.
#[inline(always)]
fn solve_leaf(
    queries: &[Point],
    features: &Coordinates,
    range: Range<usize>,
    out: &mut [f64],
    spacing: [f64; 3],
) {
    /// Queries compared with each feature at once: a lane each, so that
    /// the loop over them is vectorized.
    const LANES: usize = 8;
    let features = features.axes(range);
    for (group, out) in queries.chunks(LANES).zip(out.chunks_mut(LANES)) {
        // A last group of four or fewer takes half the lanes.
        if group.len() <= LANES / 2 {
            solve_group::<{ LANES / 2 }>(group, features, out, spacing);
        } else {
            solve_group::<LANES>(group, features, out, spacing);
        }
    }
}

/// [`solve_leaf`] for a group of at most `L` queries, a lane each.
#[inline(always)]
fn solve_group<const L: usize>(
    group: &[Point],
    [x, y, z]: [&[f32]; 3],
    out: &mut [f64],
    [sx, sy, sz]: [f64; 3],
) {
    // A short group repeats its last query in the lanes left over.
    let lane = |a: usize| {
        std::array::from_fn::<f64, L, _>(|j| f64::from(group[j.min(group.len() - 1)][a]))
    };
    let (qx, qy, qz) = (lane(0), lane(1), lane(2));
    let mut best = [f64::INFINITY; L];
    for k in 0..x.len() {
        let f = [x[k], y[k], z[k]].map(f64::from);
        for j in 0..L {
            // The coordinates are integers, exact in `f32` and `f64`, and so
            // is their difference: this is the distance formula, in `f64`.
            let (dx, dy, dz) = (
                sx * (qx[j] - f[0]),
                sy * (qy[j] - f[1]),
                sz * (qz[j] - f[2]),
            );
            let v = (dx * dx + dy * dy) + dz * dz;
            best[j] = if v < best[j] { v } else { best[j] };
        }
    }
    // The square root is monotonic and correctly rounded, so that of the
    // smallest sum is the smallest distance, bit for bit.
    for (o, b) in out.iter_mut().zip(best) {
        *o = b.sqrt();
    }
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

    #[test]
    fn the_tree_splits_runs_of_the_order_and_bounds_them_tightly() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for (size, spacing) in [([40, 30, 20], [0.7, 0.7, 2.5]), ([7, 90, 3], [1.0; 3])] {
            let n = 3000;
            let queries: Vec<Point> = (0..n)
                .map(|_| [0, 1, 2].map(|a| rng.below(size[a] as i32)))
                .collect();
            let tree = QueryTree::new(&queries, spacing, size);
            // The order is a permutation of the queries.
            let mut seen = vec![false; n];
            for (k, &i) in tree.index.iter().enumerate() {
                assert_eq!(tree.points[k], queries[i as usize]);
                assert!(!std::mem::replace(&mut seen[i as usize], true));
            }
            let root = &tree.nodes[QueryTree::ROOT as usize];
            assert_eq!((root.start, root.end), (0, n));
            for node in &tree.nodes {
                let mut extent = Extent::EMPTY;
                for &p in &tree.points[node.start..node.end] {
                    extent.add(p);
                }
                assert_eq!((node.bounds.lo, node.bounds.hi), (extent.lo, extent.hi));
                match node.halves {
                    Some([low, high]) => {
                        let (low, high) = (&tree.nodes[low as usize], &tree.nodes[high as usize]);
                        assert_eq!(
                            (low.start, low.end, high.end),
                            (node.start, high.start, node.end)
                        );
                        assert!(low.start < low.end && high.start < high.end);
                    }
                    // Only equal positions stay together beyond a leaf's size.
                    None => assert!(
                        node.end - node.start <= LEAF_QUERIES || extent.lo == extent.hi,
                        "a leaf of {} queries",
                        node.end - node.start
                    ),
                }
            }
        }
    }

    #[test]
    fn the_radix_sort_orders_keys_of_any_width() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for bits in [0, 1, 5, 13, 14, 26, 27, 40, 63, 64] {
            let mask = if bits == 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            };
            let mut keyed: Vec<(u64, u32)> = (0..5000)
                .map(|i| {
                    rng.below(2);
                    (rng.0 & mask, i)
                })
                .collect();
            let mut want = keyed.clone();
            want.sort_by_key(|&(k, i)| (k, i));
            // Packed above 13 index bits, the sort skips the indices.
            if bits + 13 < 64 {
                let mut packed: Vec<u64> =
                    keyed.iter().map(|&(k, i)| k << 13 | u64::from(i)).collect();
                radix_sort(&mut packed, 13..13 + bits, |&r| r);
                let unpacked: Vec<(u64, u32)> = packed
                    .iter()
                    .map(|&r| (r >> 13, (r & 8191) as u32))
                    .collect();
                assert_eq!(unpacked, want, "{bits} bits, packed");
            }
            radix_sort(&mut keyed, 0..bits, |&(k, _)| k);
            // Stable: equal keys keep the order of their indices.
            assert_eq!(keyed, want, "{bits} bits");
        }
    }

    #[test]
    fn the_eight_lane_pruning_keeps_what_the_test_keeps_in_order() {
        // Integer coordinates and slopes of a few bits make the test's
        // values exact, so that some features lie exactly on the threshold.
        let pruning = Pruning {
            frame: Frame {
                centre2: [0.0; 3],
                weights: [1.0; 3],
            },
            slopes: [1.0, 2.0, 0.5],
        };
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let (mut ties, mut kept_some) = (0, 0);
        for n in 0..40usize {
            for _ in 0..20 {
                let axis =
                    |rng: &mut Rng| (0..n).map(|_| rng.below(9) as f32).collect::<Vec<f32>>();
                let (x, y, z) = (axis(&mut rng), axis(&mut rng), axis(&mut rng));
                let to_centre: Vec<f32> = (0..n).map(|_| rng.below(40) as f32).collect();
                let pivot = ([4.0, 4.0, 4.0], 0.0);
                let margin = 10.0;
                let mut keep = vec![0; n];
                pruning.keep([&x, &y, &z], &to_centre, pivot, margin, &mut keep);
                let kept_positions: Vec<usize> = (0..n).filter(|&k| keep[k] == 1).collect();
                for k in 0..n {
                    let slack =
                        (x[k] - 4.0).abs() + 2.0 * (y[k] - 4.0).abs() + 0.5 * (z[k] - 4.0).abs();
                    ties += usize::from(to_centre[k] - slack == margin);
                }
                kept_some += usize::from(!kept_positions.is_empty() && kept_positions.len() < n);
                let narrow = {
                    let mut to = [vec![9.0; n], vec![9.0; n], vec![9.0; n]];
                    let [a, b, c] = &mut to;
                    let kept = compact([&x, &y, &z], &keep, [a, b, c]);
                    (kept, to)
                };
                let mut results = vec![narrow];
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    let mut to = [vec![9.0; n], vec![9.0; n], vec![9.0; n]];
                    let [a, b, c] = &mut to;
                    // SAFETY: the processor has AVX2.
                    let kept = unsafe {
                        let from = [&x[..], &y[..], &z[..]];
                        prune_avx2::<false>(&pruning, from, &to_centre, pivot, margin, [a, b, c])
                    };
                    results.push((kept, to));
                }
                for (kept, to) in results {
                    assert_eq!(kept, kept_positions.len(), "{n} values");
                    for (axis, from) in to.iter().zip([&x, &y, &z]) {
                        let want: Vec<f32> = kept_positions.iter().map(|&k| from[k]).collect();
                        assert_eq!(&axis[..kept], &want[..], "{n} values");
                    }
                }
            }
        }
        assert!(
            ties > 10 && kept_some > 100,
            "{ties} ties, {kept_some} mixed lists"
        );
    }

    #[test]
    fn the_eight_lane_distances_to_the_centre_are_those_of_the_narrow_loop() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            let pruning = Pruning {
                frame: Frame {
                    centre2: [9.0, 7.0, 8.0],
                    weights: [1.0, 0.7, 2.3],
                },
                slopes: [1.0, 2.0, 0.5],
            };
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
            let mut mixed = 0;
            for n in 1..40usize {
                let axis =
                    |rng: &mut Rng| (0..n).map(|_| rng.below(9) as f32).collect::<Vec<f32>>();
                let (x, y, z) = (axis(&mut rng), axis(&mut rng), axis(&mut rng));
                let d = |f: f32, a: usize| 2.0 * f - pruning.frame.centre2[a];
                let want: Vec<f32> = (0..n)
                    .map(|k| pruning.frame.weighted([d(x[k], 0), d(y[k], 1), d(z[k], 2)]))
                    .collect();
                let mut got = vec![0.0; n];
                // SAFETY: the processor has AVX2.
                let smallest = unsafe { to_centre_avx2(&pruning.frame, [&x, &y, &z], &mut got) };
                assert_eq!(got, want, "{n} values");
                assert_eq!(smallest, want[first_smallest(&want)], "{n} values");
                // Measured in the pruning pass, the same features are kept.
                let (pivot, margin) = (([4.0, 4.0, 4.0], want[first_smallest(&want)]), 3.0);
                let mut keep = vec![0; n];
                pruning.keep([&x, &y, &z], &want, pivot, margin, &mut keep);
                let kept: Vec<f32> = (0..n).filter(|&k| keep[k] == 1).map(|k| x[k]).collect();
                let mut to = [vec![0.0; n], vec![0.0; n], vec![0.0; n]];
                let [a, b, c] = &mut to;
                // SAFETY: the processor has AVX2.
                let count = unsafe {
                    prune_avx2::<true>(&pruning, [&x, &y, &z], &[], pivot, margin, [a, b, c])
                };
                assert_eq!(&to[0][..count], &kept[..], "{n} values");
                mixed += usize::from(count > 0 && count < n);
            }
            assert!(mixed > 20, "{mixed} lists partly kept");
        }
    }

    #[test]
    fn the_first_smallest_value_is_found() {
        for n in [1, 7, 8, 9, 100] {
            for at in [0, n / 2, n - 1] {
                let mut values: Vec<f32> = (0..n).map(|v| 1000.0 - v as f32).collect();
                values[at] = -1.0;
                values[n - 1 - (n - 1 - at) / 2] = -1.0;
                let first = values.iter().position(|&v| v == -1.0).unwrap();
                assert_eq!(first_smallest(&values), first);
            }
        }
    }

    #[test]
    fn the_narrow_and_the_wide_loops_give_the_same_distances() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let spacing = [0.7, 0.8, 2.5];
        let features: Vec<Point> = (0..4000)
            .map(|_| [rng.below(60), rng.below(60), rng.below(30)])
            .collect();
        let queries: Vec<Point> = (0..4000)
            .map(|_| [rng.below(60) + 100, rng.below(60), rng.below(30)])
            .collect();
        let run = || {
            let budget = WorkBudget::unlimited();
            let d = nearest_distances(&features, &queries, spacing, [200, 100, 50], &budget);
            (d, budget.spent())
        };
        let wide = run();
        NARROW.store(true, std::sync::atomic::Ordering::Relaxed);
        let narrow = run();
        NARROW.store(false, std::sync::atomic::Ordering::Relaxed);
        for (k, &q) in queries.iter().enumerate() {
            let want = brute(&features, q, spacing).to_bits();
            assert_eq!(wide.0[k].to_bits(), want);
            assert_eq!(narrow.0[k].to_bits(), want);
        }
        assert_eq!(wide.1, narrow.1, "the same work either way");
    }

    #[test]
    fn crops_wider_than_exact_f32_squares_and_extreme_spacings_stay_exact() {
        let mut rng = Rng(0xdead_beef_1234_5678);
        // Offsets beyond 4096 voxels, whose squares `f32` rounds: clusters
        // are not pruned there, features still are.
        let features: Vec<Point> = (0..1500)
            .map(|_| [4000 + rng.below(200), 600 + rng.below(50), rng.below(3)])
            .collect();
        let queries: Vec<Point> = (0..500)
            .map(|_| [rng.below(50), 950 + rng.below(100), rng.below(3)])
            .collect();
        check(&features, &queries, [1.0, 1.0, 1.0], [5000, 1100, 3]);
        check(&features, &queries, [0.7, 0.9, 3.0], [5000, 1100, 3]);
        // Squared spacings far beyond the range of `f32`, and far below it.
        let features: Vec<Point> = (0..800)
            .map(|_| [rng.below(40), rng.below(40), 0])
            .collect();
        let queries: Vec<Point> = (0..300)
            .map(|_| [100 + rng.below(40), rng.below(40), rng.below(5)])
            .collect();
        for spacing in [[1e20, 1e20, 3e20], [1e-25, 2e-25, 1e-25], [1e-3, 1e3, 1.0]] {
            check(&features, &queries, spacing, [200, 50, 10]);
        }
    }

    #[test]
    fn keys_too_wide_to_pack_with_their_index_sort_apart() {
        // 2²⁰ voxels a side take 60 bits of key, and 40 queries 6 bits of
        // index: more than a word, so the keys are sorted beside their
        // indices instead.
        let size = [1 << 20; 3];
        let spread = spread_tables([1.0; 3], size);
        let used = spread.iter().flatten().fold(0u64, |acc, &k| acc | k);
        assert_eq!(u64::BITS - used.leading_zeros(), 60);
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        let mut spot = |base: i32| [0; 3].map(|_: i32| base + rng.below(1 << 12));
        let features: Vec<Point> = (0..300).map(|_| spot(1 << 19)).collect();
        let queries: Vec<Point> = (0..40).map(|_| spot(900_000)).collect();
        check(&features, &queries, [1.0; 3], size);
        check(&features, &queries, [0.8, 0.8, 2.5], size);
        // The tree still keeps its runs in key order, each box bounding its run.
        let tree = QueryTree::new(&queries, [1.0; 3], size);
        let mut seen: Vec<u32> = tree.index.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..40).collect::<Vec<u32>>());
        for node in &tree.nodes {
            for p in &tree.points[node.start..node.end] {
                assert!((0..3).all(|a| node.bounds.lo[a] <= p[a] && p[a] <= node.bounds.hi[a]));
            }
        }
    }
}
