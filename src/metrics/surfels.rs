//! Surface elements ("surfels") on the voxel corners, and their areas: the surface
//! representation of DeepMind's `surface-distance` (Nikolov et al. 2021), which the Metrics
//! Reloaded paper recommends for the normalized surface distance.
//!
//! Every corner of the voxel grid is the centre of a 2 × 2 × 2 block of voxels. Where the block
//! holds voxels both inside and outside a mask, the corner carries a surfel: the piece of the
//! marching-cubes surface that crosses the cube spanned by the eight voxel centres. Its area
//! depends on which of the eight voxels are inside (256 configurations, the *code* of the
//! corner) and on the spacing. A corner's code has bit `dx + 2·dy + 4·dz` set when the voxel
//! `(x − 1 + dx, y − 1 + dy, z − 1 + dz)` is inside, for the corner `(x, y, z)`.
//!
//! # How the areas are derived
//!
//! DeepMind ships its areas as a hand-made table of triangle normals. podium derives the same
//! areas from the geometry, so that the rule is stated, not copied:
//!
//! 1. Work on the *minority* side: the inside voxels if there are at most four, else the
//!    outside ones (the surface is the same; classic marching cubes triangulates the
//!    configurations of at most four corners and takes the complement for the others).
//! 2. The surface crosses each cube edge whose two corners differ, at its midpoint. On each
//!    face of the cube, the crossing points are joined in pairs: two crossings give one
//!    segment; four (two minority corners on a diagonal) give two segments, each cutting
//!    one minority corner off, so that minority corners meeting only diagonally stay apart
//!    (Lorensen and Cline's choice for the ambiguous faces).
//! 3. The segments close into polygons (a triangle to a hexagon). Each polygon is cut into
//!    triangles along its diagonals; a polygon that is not planar has several areas, one per
//!    triangulation, and the one taken is the triangulation of **largest area at unit
//!    spacing** (the first such in a fixed order; every tie has the same area at every spacing).
//! 4. At spacing `(sx, sy, sz)` the area is the sum of the areas of those triangles with their
//!    vertices scaled by the spacing.
//!
//! This reproduces DeepMind's `create_table_neighbour_code_to_surface_area` for all 256
//! configurations at every spacing the fixtures hold (`tests/fixtures/boundary/surfel_areas.dat`,
//! written from DeepMind's library by `make_fixtures.py`), to rounding.

use std::sync::OnceLock;

/// A triangle's vertices in half-voxel units: each coordinate is 0, 1 or 2 (a corner of the
/// cube or the midpoint of an edge).
type Triangle = [[u8; 3]; 3];

/// The cube corner of bit `i`: `(i & 1, (i >> 1) & 1, (i >> 2) & 1)`.
fn corner(i: usize) -> [u8; 3] {
    [(i & 1) as u8, ((i >> 1) & 1) as u8, ((i >> 2) & 1) as u8]
}

fn bit_of(c: [u8; 3]) -> usize {
    usize::from(c[0]) + 2 * usize::from(c[1]) + 4 * usize::from(c[2])
}

/// The four corners of each cube face, in cyclic order.
fn faces() -> Vec<[usize; 4]> {
    let mut faces = Vec::with_capacity(6);
    for axis in 0..3 {
        let (u, v) = ((axis + 1) % 3, (axis + 2) % 3);
        for side in 0..2u8 {
            let at = |a: u8, b: u8| {
                let mut c = [0u8; 3];
                c[axis] = side;
                c[u] = a;
                c[v] = b;
                bit_of(c)
            };
            faces.push([at(0, 0), at(1, 0), at(1, 1), at(0, 1)]);
        }
    }
    faces
}

/// The midpoint of the edge between corners `a` and `b`, in half-voxel units.
fn midpoint(a: usize, b: usize) -> [u8; 3] {
    let (p, q) = (corner(a), corner(b));
    [p[0] + q[0], p[1] + q[1], p[2] + q[2]]
}

/// The polygons of configuration `code` (steps 1 to 3 of the module documentation), each as
/// its vertices in order.
fn polygons(code: u8) -> Vec<Vec<[u8; 3]>> {
    let minority = if code.count_ones() <= 4 { code } else { !code };
    let inside = |c: usize| minority & (1 << c) != 0;
    let mut segments: Vec<([u8; 3], [u8; 3])> = Vec::new();
    for face in faces() {
        let crossings: Vec<usize> = (0..4)
            .filter(|&k| inside(face[k]) != inside(face[(k + 1) % 4]))
            .collect();
        let edge_mid = |k: usize| midpoint(face[k], face[(k + 1) % 4]);
        match crossings.len() {
            2 => segments.push((edge_mid(crossings[0]), edge_mid(crossings[1]))),
            4 => {
                // Cut off each minority corner: the edges before and after it.
                for k in (0..4).filter(|&k| inside(face[k])) {
                    segments.push((edge_mid((k + 3) % 4), edge_mid(k)));
                }
            }
            _ => {}
        }
    }
    let mut polygons = Vec::new();
    while let Some((start, mut current)) = segments.pop() {
        let mut polygon = vec![start];
        while current != start {
            polygon.push(current);
            let next = segments
                .iter()
                .position(|&(a, b)| a == current || b == current)
                .expect("every crossing point lies on exactly two faces");
            let (a, b) = segments.swap_remove(next);
            current = if a == current { b } else { a };
        }
        polygons.push(polygon);
    }
    polygons
}

fn triangle_area(t: &[[f64; 3]; 3]) -> f64 {
    let u = [0, 1, 2].map(|i| t[1][i] - t[0][i]);
    let v = [0, 1, 2].map(|i| t[2][i] - t[0][i]);
    let cross = [
        u[1] * v[2] - u[2] * v[1],
        u[2] * v[0] - u[0] * v[2],
        u[0] * v[1] - u[1] * v[0],
    ];
    0.5 * (cross[0] * cross[0] + cross[1] * cross[1] + cross[2] * cross[2]).sqrt()
}

fn area_at(triangles: &[Triangle], spacing_mm: [f64; 3]) -> f64 {
    triangles
        .iter()
        .map(|t| {
            triangle_area(&t.map(|p| [0, 1, 2].map(|i| f64::from(p[i]) * 0.5 * spacing_mm[i])))
        })
        .sum()
}

/// Every triangulation of the convex polygon `first..=last` (vertex indices), as lists of
/// index triples: the triangle on the edge `(first, last)` with apex `k`, then the two sides.
fn triangulations(first: usize, last: usize) -> Vec<Vec<[usize; 3]>> {
    if last - first < 2 {
        return vec![Vec::new()];
    }
    let mut all = Vec::new();
    for apex in first + 1..last {
        for left in triangulations(first, apex) {
            for right in triangulations(apex, last) {
                let mut t = left.clone();
                t.extend(right);
                t.push([first, apex, last]);
                all.push(t);
            }
        }
    }
    all
}

/// The triangles of configuration `code`: each polygon split by its triangulation of largest
/// area at unit spacing.
fn triangles(code: u8) -> Vec<Triangle> {
    let mut out = Vec::new();
    for polygon in polygons(code) {
        let mut candidates: Vec<Vec<Triangle>> = triangulations(0, polygon.len() - 1)
            .into_iter()
            .map(|t| {
                t.iter()
                    .map(|&[a, b, c]| [polygon[a], polygon[b], polygon[c]])
                    .collect()
            })
            .collect();
        let areas: Vec<f64> = candidates.iter().map(|t| area_at(t, [1.0; 3])).collect();
        let largest = areas.iter().copied().fold(0.0, f64::max);
        // Areas are sums of a few square roots of small integers over 8; distinct
        // triangulations differ by far more than this.
        let best = areas
            .iter()
            .position(|&a| a >= largest - 1e-9)
            .expect("a polygon has at least one triangulation");
        out.extend(candidates.swap_remove(best));
    }
    out
}

fn all_triangles() -> &'static [Vec<Triangle>; 256] {
    static TABLE: OnceLock<[Vec<Triangle>; 256]> = OnceLock::new();
    TABLE.get_or_init(|| std::array::from_fn(|code| triangles(code as u8)))
}

/// The area in mm² of the surfel of each of the 256 corner codes at `spacing_mm`; 0 for the
/// codes 0 and 255 (no surface).
pub fn surfel_areas(spacing_mm: [f64; 3]) -> [f64; 256] {
    let table = all_triangles();
    std::array::from_fn(|code| area_at(&table[code], spacing_mm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_configurations_have_their_textbook_areas() {
        let a = surfel_areas([1.0; 3]);
        assert_eq!(a[0], 0.0);
        assert_eq!(a[255], 0.0);
        // One corner: an equilateral triangle of side √2/2.
        assert!((a[1] - 3f64.sqrt() / 8.0).abs() < 1e-15);
        // Two corners along x: a rectangle 1 × √2/2.
        assert!((a[0b11] - 0.5f64.sqrt()).abs() < 1e-15);
        // A face of four corners: the unit square halfway through the cube.
        assert!((a[0b1111] - 1.0).abs() < 1e-15);
        // Two corners on a face diagonal stay apart: two triangles.
        assert!((a[0b1001] - 2.0 * a[1]).abs() < 1e-15);
        // The surface is the same seen from either side.
        let b = surfel_areas([0.7, 1.3, 4.0]);
        for code in 0..256 {
            assert!((b[code] - b[255 - code]).abs() < 1e-12, "code {code}");
        }
    }

    #[test]
    fn a_plane_scales_with_the_spacing_of_its_own_axes() {
        // Four corners with z = 0: the plane z = ½ of area sx·sy.
        let a = surfel_areas([0.5, 2.0, 7.0]);
        assert!((a[0b1111] - 1.0).abs() < 1e-15);
        let b = surfel_areas([0.5, 2.0, 1.0]);
        assert!((b[0b0101_0101] - 2.0).abs() < 1e-15, "x = 0 side: sy·sz");
    }

    #[test]
    fn areas_equal_deepmind_table_at_every_fixture_spacing() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/boundary/surfel_areas.dat"
        );
        let text = std::fs::read_to_string(path).expect("the surfel area fixture");
        let mut spacings = 0;
        for line in text.lines().filter(|l| l.starts_with("areas ")) {
            let v: Vec<f64> = line[6..].split(' ').map(|f| f.parse().unwrap()).collect();
            assert_eq!(v.len(), 3 + 256, "{line}");
            let spacing = [v[0], v[1], v[2]];
            let ours = surfel_areas(spacing);
            for code in 0..256 {
                let want = v[3 + code];
                assert!(
                    (ours[code] - want).abs() <= 1e-12 * want.max(1.0),
                    "code {code:#010b} at {spacing:?}: podium {} DeepMind {want}",
                    ours[code]
                );
            }
            spacings += 1;
        }
        assert_eq!(spacings, 6);
    }
}
