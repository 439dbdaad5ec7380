//! Synthetic chest-CT phantoms for the COVID-19 demo challenge.
//!
//! [`generate`] renders a deterministic, anatomically plausible chest CT in
//! Hounsfield units together with its ground truth: a lung mask, a lesion mask,
//! the diagnosis, the lesion involvement and the severity stage.
//!
//! The anatomy is analytic. Every organ is a simple shape in millimetres
//! (ellipses, ellipsoids, tapered capsules, metaballs) around the centre of the
//! field of view, so the same `(diagnosis, seed)` describes the same patient at
//! any [`Geometry`]; only the sampling changes. Coordinates: `x` grows towards
//! the patient's left, `y` towards the back (posterior), `z` towards the head.
//! Voxel index `[z, y, x]` with `x` fastest in memory, which is the NIfTI order.
//!
//! Rendering is done slice by slice in parallel (rayon). Each slice is a pure
//! function of the patient description and the slice index (noise included:
//! every slice has its own seed), so the output is bit-identical whatever the
//! number of threads. Thin structures (vessels, airways) are capsules painted
//! through their bounding boxes only, and every organ is painted with an
//! approximate partial-volume coverage so edges look like a real scanner's.

use ndarray::Array3;
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::f64::consts::PI;

/// Ground-truth class of a phantom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Diagnosis {
    Covid,
    OtherPneumonia,
    Normal,
}

impl Diagnosis {
    /// Label used in CSV files: `covid`, `other_pneumonia` or `normal`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Diagnosis::Covid => "covid",
            Diagnosis::OtherPneumonia => "other_pneumonia",
            Diagnosis::Normal => "normal",
        }
    }
}

/// Voxel grid of a phantom.
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    /// `[nx, ny, nz]`.
    pub shape: [usize; 3],
    /// `[sx, sy, sz]` in millimetres.
    pub spacing_mm: [f64; 3],
}

impl Geometry {
    /// 64 x 64 x 48 voxels covering the same field of view as [`Geometry::ct`].
    pub fn small() -> Geometry {
        Geometry {
            shape: [64, 64, 48],
            spacing_mm: [5.6, 5.6, 6.25],
        }
    }

    /// A clinical-size chest CT: 512 x 512 x 200 at 0.7 x 0.7 x 1.5 mm.
    pub fn ct() -> Geometry {
        Geometry {
            shape: [512, 512, 200],
            spacing_mm: [0.7, 0.7, 1.5],
        }
    }
}

/// A rendered phantom and its ground truth.
pub struct Phantom {
    /// Hounsfield units, indexed `[z, y, x]`.
    pub ct: Array3<i16>,
    /// 1 = lesion voxel; always inside `lung`.
    pub lesion: Array3<u8>,
    /// 1 = lung voxel (parenchyma including lesions and intrapulmonary vessels).
    pub lung: Array3<u8>,
    pub diagnosis: Diagnosis,
    /// Lesion voxels / lung voxels * 100.
    pub involvement_pct: f64,
    /// [`stage_from_involvement`] of `involvement_pct`.
    pub stage: u8,
}

/// Documented severity bins: 0 -> 0 % (no lesion); 1 -> (0, 5]; 2 -> (5, 25];
/// 3 -> (25, 50]; 4 -> > 50.
pub fn stage_from_involvement(pct: f64) -> u8 {
    if pct.is_nan() || pct <= 0.0 {
        0
    } else if pct <= 5.0 {
        1
    } else if pct <= 25.0 {
        2
    } else if pct <= 50.0 {
        3
    } else {
        4
    }
}

/// How a scanner turns the patient's attenuation into stored values, beyond its voxel grid.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Acquisition {
    /// Multiplies the patient's own noise level (15 to 25 HU): dose and reconstruction kernel.
    pub noise_scale: f64,
    /// Added to every voxel before quantisation: a scanner whose water calibration drifted.
    pub hu_offset: f64,
}

impl Acquisition {
    /// A well-calibrated scanner at the patient's own noise level.
    pub const REFERENCE: Acquisition = Acquisition {
        noise_scale: 1.0,
        hu_offset: 0.0,
    };
}

/// Renders the phantom of patient `seed` with the given diagnosis, on the reference scanner.
///
/// Deterministic: the same `(geometry, diagnosis, seed)` gives bit-identical
/// output, independent of the number of rayon threads.
pub fn generate(geometry: Geometry, diagnosis: Diagnosis, seed: u64) -> Phantom {
    generate_with(geometry, Acquisition::REFERENCE, diagnosis, seed)
}

/// [`generate`] on the scanner `acquisition` describes: the same patient, differently imaged.
pub fn generate_with(
    geometry: Geometry,
    acquisition: Acquisition,
    diagnosis: Diagnosis,
    seed: u64,
) -> Phantom {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let anat = Anatomy::sample(&mut rng);
    let mut capsules = Capsules::default();
    anat.build_fixed_tubes(&mut capsules);
    anat.build_trees(&mut rng, &mut capsules);
    let lesions = Lesions::sample(diagnosis, &anat, &mut rng);
    let noise_seed: u64 = rng.random();

    let grid = Grid::new(geometry);
    let by_slice = capsules.bucket_by_slice(&grid);
    let scene = Scene {
        grid,
        anat,
        capsules,
        by_slice,
        lesions,
        noise_seed,
        acquisition,
    };

    let plane = grid.nx * grid.ny;
    let n = plane * grid.nz;
    let mut ct = vec![0i16; n];
    let mut lesion = vec![0u8; n];
    let mut lung = vec![0u8; n];
    let (lesion_count, lung_count) = if plane == 0 {
        (0, 0)
    } else {
        ct.par_chunks_mut(plane)
            .zip(lesion.par_chunks_mut(plane))
            .zip(lung.par_chunks_mut(plane))
            .enumerate()
            .map_init(
                || SliceBufs::new(plane),
                |bufs, (zi, ((c, le), lu))| scene.render_slice(zi, bufs, c, le, lu),
            )
            .reduce(|| (0u64, 0u64), |a, b| (a.0 + b.0, a.1 + b.1))
    };
    let involvement_pct = if lung_count == 0 {
        0.0
    } else {
        lesion_count as f64 / lung_count as f64 * 100.0
    };
    let shape = (grid.nz, grid.ny, grid.nx);
    Phantom {
        ct: Array3::from_shape_vec(shape, ct).expect("shape matches buffer"),
        lesion: Array3::from_shape_vec(shape, lesion).expect("shape matches buffer"),
        lung: Array3::from_shape_vec(shape, lung).expect("shape matches buffer"),
        diagnosis,
        involvement_pct,
        stage: stage_from_involvement(involvement_pct),
    }
}

// ---------------------------------------------------------------------------
// Small geometry helpers

type V3 = [f64; 3];

fn add(a: V3, b: V3) -> V3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}
fn sub(a: V3, b: V3) -> V3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
fn scale(a: V3, s: f64) -> V3 {
    [a[0] * s, a[1] * s, a[2] * s]
}
fn dot(a: V3, b: V3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
fn cross(a: V3, b: V3) -> V3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}
fn norm(a: V3) -> V3 {
    let l = dot(a, a).sqrt();
    if l < 1e-12 {
        [0.0, 0.0, 1.0]
    } else {
        scale(a, 1.0 / l)
    }
}

/// Approximate signed distance (mm, negative inside) to an axis-aligned
/// ellipse, measured along the ray from its centre. Exact for circles and good
/// enough for partial-volume edges.
#[inline]
fn ellipse_sd(dx: f64, dy: f64, a: f64, b: f64) -> f64 {
    let q = ((dx / a) * (dx / a) + (dy / b) * (dy / b)).sqrt();
    if q < 1e-9 {
        return -a.min(b);
    }
    (dx * dx + dy * dy).sqrt() * (1.0 - 1.0 / q)
}

/// Partial-volume coverage of a pixel of size `h` by a shape at signed distance `sd`.
#[inline]
fn coverage(sd: f64, h: f64) -> f64 {
    (0.5 - sd / h).clamp(0.0, 1.0)
}

#[inline]
fn mix(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Voxel grid in physical coordinates (mm from the volume centre).
#[derive(Clone, Copy)]
struct Grid {
    nx: usize,
    ny: usize,
    nz: usize,
    sx: f64,
    sy: f64,
    sz: f64,
    /// In-plane pixel size used for partial-volume edges.
    h: f64,
}

impl Grid {
    fn new(g: Geometry) -> Grid {
        let [nx, ny, nz] = g.shape;
        let [sx, sy, sz] = g.spacing_mm;
        Grid {
            nx,
            ny,
            nz,
            sx,
            sy,
            sz,
            h: sx.min(sy).max(1e-3),
        }
    }
    fn x(&self, i: usize) -> f64 {
        (i as f64 + 0.5 - self.nx as f64 / 2.0) * self.sx
    }
    fn y(&self, j: usize) -> f64 {
        (j as f64 + 0.5 - self.ny as f64 / 2.0) * self.sy
    }
    fn z(&self, k: usize) -> f64 {
        (k as f64 + 0.5 - self.nz as f64 / 2.0) * self.sz
    }
    /// Pixel columns whose centres lie in `[lo, hi]`.
    fn cols(&self, lo: f64, hi: f64) -> std::ops::Range<usize> {
        span(lo, hi, self.sx, self.nx)
    }
    fn rows(&self, lo: f64, hi: f64) -> std::ops::Range<usize> {
        span(lo, hi, self.sy, self.ny)
    }
}

fn span(lo: f64, hi: f64, s: f64, n: usize) -> std::ops::Range<usize> {
    if hi < lo || n == 0 {
        return 0..0;
    }
    let half = n as f64 / 2.0;
    let a = (lo / s + half - 0.5).ceil().max(0.0);
    let b = (hi / s + half - 0.5).floor() + 1.0;
    let b = b.min(n as f64);
    if b <= a {
        0..0
    } else {
        a as usize..b as usize
    }
}

// ---------------------------------------------------------------------------
// Patient anatomy

/// One lung: an ellipse in cross-section that tapers towards the apex, sits on
/// a diaphragm dome and is cut by the chest wall, the mediastinum, the heart
/// and the spine.
#[derive(Clone, Copy)]
struct Lung {
    /// -1 = right lung (x < 0), +1 = left lung.
    side: f64,
    cx: f64,
    cy: f64,
    ax: f64,
    ay: f64,
    /// Deepest point (costophrenic recess).
    z_base: f64,
    z_apex: f64,
    /// Height of the diaphragm dome above `z_base`.
    dome: f64,
}

#[derive(Clone, Copy)]
struct Section {
    cx: f64,
    cy: f64,
    a: f64,
    b: f64,
}

impl Lung {
    fn section(&self, z: f64, bcx: f64) -> Option<Section> {
        let t = (z - self.z_base) / (self.z_apex - self.z_base);
        if t >= 1.0 {
            return None;
        }
        let t = t.max(0.0);
        // Narrow, rounded apex; nearly constant width in the lower half.
        let s = (1.0 - t * t * t.sqrt()).max(0.0).powf(0.45);
        if s < 1e-3 {
            return None;
        }
        Some(Section {
            cx: bcx + (self.cx - bcx) * (1.0 - 0.25 * t * t),
            cy: self.cy + 12.0 * t * t,
            a: self.ax * s,
            b: self.ay * s,
        })
    }

    /// Height of this side's diaphragm at (x, y).
    fn diaphragm(&self, x: f64, y: f64) -> f64 {
        let u = 1.0
            - ((x - self.cx) / (self.ax * 0.9)).powi(2)
            - ((y - self.cy) / (self.ay * 0.9)).powi(2);
        self.z_base + self.dome * u.clamp(0.0, 1.0)
    }
}

#[derive(Clone, Copy)]
struct Anatomy {
    bcx: f64,
    bcy: f64,
    /// Body ellipse semi-axes.
    ba: f64,
    bb: f64,
    /// Inner (muscle) ellipse semi-axes, below the subcutaneous fat.
    ia: f64,
    ib: f64,
    /// Thoracic cavity ellipse, centre (bcx, ccy).
    ccy: f64,
    ca: f64,
    cb: f64,
    /// 0 = right, 1 = left.
    lungs: [Lung; 2],
    spine_y: f64,
    spine_a: f64,
    spine_b: f64,
    disc_phase: f64,
    heart: V3,
    heart_r: V3,
    /// (cos, sin) of the heart's long-axis angle in the axial plane.
    heart_rot: (f64, f64),
    /// Trachea centre line (x = bcx).
    ty: f64,
    trachea_r: f64,
    z_carina: f64,
    rib_phase: f64,
    noise_sigma: f64,
    /// Parenchyma attenuation (anterior) and its anterior-posterior gradient.
    lung_hu: f64,
    lung_grad: f64,
}

/// Per-slice quantities that do not depend on the pixel.
struct SliceCtx {
    z: f64,
    sec: [Option<Section>; 2],
    heart: Option<Section>,
}

impl Anatomy {
    fn sample(rng: &mut ChaCha8Rng) -> Anatomy {
        let ba = rng.random_range(152.0..176.0);
        let bb = ba * rng.random_range(0.66..0.75);
        let bcx = rng.random_range(-6.0..6.0);
        let bcy = rng.random_range(-2.0..10.0);
        let fat = rng.random_range(7.0..24.0);
        let ia = ba - fat * 1.1;
        let ib = bb - fat;
        let ca = ia - rng.random_range(11.0..16.0);
        let cb = ib - 20.0;
        let ccy = bcy - 8.0;
        let spine_a = rng.random_range(18.0..22.0);
        let spine_b = spine_a * 0.8;
        let spine_y = ccy + cb - 12.0;
        let ya = spine_y - spine_b;
        let ty = ya - 29.0;

        let zb = -150.0 + rng.random_range(16.0..32.0);
        let za = 150.0 - rng.random_range(10.0..24.0);
        let dome_r = rng.random_range(38.0..52.0);
        let mut lungs = [Lung {
            side: -1.0,
            cx: 0.0,
            cy: 0.0,
            ax: 0.0,
            ay: 0.0,
            z_base: 0.0,
            z_apex: 0.0,
            dome: 0.0,
        }; 2];
        for (i, lung) in lungs.iter_mut().enumerate() {
            let side = if i == 0 { -1.0 } else { 1.0 };
            // Slight per-patient left/right asymmetry (+-5 %).
            let sx = 1.0 + rng.random_range(-0.05..0.05);
            let sy = 1.0 + rng.random_range(-0.05..0.05);
            *lung = Lung {
                side,
                cx: bcx + side * ca * 0.5,
                cy: ccy + 4.0,
                ax: ca * 0.6 * sx,
                ay: cb * 1.02 * sy,
                // The right dome sits a little higher (liver).
                z_base: zb
                    + if i == 0 {
                        rng.random_range(0.0..6.0)
                    } else {
                        0.0
                    },
                z_apex: za + rng.random_range(-4.0..4.0),
                dome: if i == 0 {
                    dome_r
                } else {
                    dome_r - rng.random_range(0.0..6.0)
                },
            };
        }
        let heart_r = [
            rng.random_range(48.0..58.0),
            rng.random_range(38.0..46.0),
            rng.random_range(42.0..52.0),
        ];
        let heart = [
            bcx + rng.random_range(6.0..12.0),
            ccy - rng.random_range(14.0..24.0),
            zb + dome_r + heart_r[2] - 8.0,
        ];
        Anatomy {
            bcx,
            bcy,
            ba,
            bb,
            ia,
            ib,
            ccy,
            ca,
            cb,
            lungs,
            spine_y,
            spine_a,
            spine_b,
            disc_phase: rng.random_range(0.0..28.0),
            heart,
            heart_r,
            heart_rot: {
                let ang = rng.random_range(-40.0f64..-25.0).to_radians();
                (ang.cos(), ang.sin())
            },
            ty,
            trachea_r: rng.random_range(7.5..10.0),
            z_carina: zb + 0.6 * (za - zb),
            rib_phase: rng.random_range(0.0..26.0),
            noise_sigma: rng.random_range(15.0..25.0),
            lung_hu: rng.random_range(-905.0..-875.0),
            lung_grad: rng.random_range(15.0..35.0),
        }
    }

    fn slice_ctx(&self, z: f64) -> SliceCtx {
        let mut ctx = self.slice_ctx_heart(z);
        ctx.sec = [
            self.lungs[0].section(z, self.bcx),
            self.lungs[1].section(z, self.bcx),
        ];
        ctx
    }

    /// Slice context with the heart only (no lung sections).
    fn slice_ctx_heart(&self, z: f64) -> SliceCtx {
        let w = 1.0 - ((z - self.heart[2]) / self.heart_r[2]).powi(2);
        let heart = (w > 0.0).then(|| {
            let s = w.sqrt();
            Section {
                cx: self.heart[0],
                cy: self.heart[1],
                a: self.heart_r[0] * s,
                b: self.heart_r[1] * s,
            }
        });
        SliceCtx {
            z,
            sec: [None, None],
            heart,
        }
    }

    /// Half-width of the mediastinum (mm from the midline) at row `y`: wide at
    /// the great vessels and around the aorta/oesophagus next to the spine,
    /// narrow at the anterior junction line.
    fn mediastinum(&self, y: f64) -> f64 {
        let ya = self.spine_y - self.spine_b;
        let ym = self.ty - 25.0;
        9.0 + 26.0 * (-((y - ym) / 30.0).powi(2)).exp()
            + 24.0 * (-((y - (ya - 12.0)) / 16.0).powi(2)).exp()
    }

    /// Signed distance (mm, negative inside) to lung `i`, given the slice
    /// context and the row's mediastinal half-width.
    #[inline]
    fn lung_sd_fast(&self, ctx: &SliceCtx, med: f64, i: usize, x: f64, y: f64) -> f64 {
        let Some(sec) = ctx.sec[i] else {
            return f64::INFINITY;
        };
        let lung = &self.lungs[i];
        let mut sd = ellipse_sd(x - sec.cx, y - sec.cy, sec.a, sec.b);
        // Inside the rib cage, 1.5 mm from it.
        sd = sd.max(ellipse_sd(x - self.bcx, y - self.ccy, self.ca, self.cb) + 1.5);
        // Above the diaphragm.
        sd = sd.max(lung.diaphragm(x, y) - ctx.z);
        // Lateral to the mediastinum.
        sd = sd.max(med - lung.side * (x - self.bcx));
        // Away from the heart and the spine.
        if let Some(h) = ctx.heart {
            sd = sd.max(3.0 - self.heart_sd(&h, x, y));
        }
        sd = sd.max(-ellipse_sd(
            x - self.bcx,
            y - self.spine_y,
            self.spine_a + 6.0,
            self.spine_b + 6.0,
        ));
        sd
    }

    /// Signed distance to the heart's (oblique) cross-section.
    #[inline]
    fn heart_sd(&self, h: &Section, x: f64, y: f64) -> f64 {
        let (c, s) = self.heart_rot;
        let (dx, dy) = (x - h.cx, y - h.cy);
        ellipse_sd(c * dx + s * dy, -s * dx + c * dy, h.a, h.b)
    }

    fn lung_sd(&self, i: usize, p: V3) -> f64 {
        let mut ctx = self.slice_ctx_heart(p[2]);
        ctx.sec[i] = self.lungs[i].section(p[2], self.bcx);
        self.lung_sd_fast(&ctx, self.mediastinum(p[1]), i, p[0], p[1])
    }

    /// Diaphragm height under (x, y): the dome of the lung on that side.
    fn diaphragm(&self, x: f64, y: f64) -> f64 {
        let i = usize::from(x >= self.bcx);
        self.lungs[i].diaphragm(x, y)
    }

    /// Great vessels and airways that are not part of the bronchovascular trees.
    fn build_fixed_tubes(&self, c: &mut Capsules) {
        let ya = self.spine_y - self.spine_b;
        let ty = self.ty;
        let zc = self.z_carina;
        let top = 400.0;
        let bottom = -400.0;
        let bcx = self.bcx;
        // Aorta: ascending, arch over the left main bronchus, descending.
        let z_arch = zc + 22.0;
        let asc = [bcx + 4.0, ty - 33.0, z_arch];
        let mid = [bcx + 22.0, ty - 8.0, z_arch + 8.0];
        let desc = [bcx + 22.0, ya - 10.0, z_arch];
        let heart_top = self.heart[2] + self.heart_r[2] * 0.55;
        let blood = 42.0;
        c.push_bg([asc[0], asc[1], heart_top], asc, 13.0, 13.0, blood);
        c.push_bg(asc, mid, 12.5, 12.0, blood);
        c.push_bg(mid, desc, 12.0, 11.0, blood);
        c.push_bg(desc, [desc[0], desc[1], bottom], 11.0, 10.5, blood);
        // Superior vena cava.
        c.push_bg(
            [bcx - 22.0, ty - 26.0, heart_top],
            [bcx - 22.0, ty - 26.0, top],
            8.5,
            8.5,
            blood,
        );
        // Pulmonary trunk towards the left.
        c.push_bg(
            [bcx + 6.0, self.heart[1] - 10.0, heart_top - 5.0],
            [bcx + 22.0, ty - 20.0, zc - 8.0],
            11.0,
            9.0,
            blood,
        );
        // Oesophagus.
        c.push_bg(
            [bcx + 3.0, ya - 8.0, bottom],
            [bcx + 3.0, ya - 8.0, top],
            7.0,
            7.0,
            35.0,
        );
        // Trachea down to the carina.
        let carina = [bcx, ty, zc];
        c.push_airway(
            carina,
            [bcx, ty, top],
            self.trachea_r,
            self.trachea_r,
            false,
        );
    }

    /// Hilum of lung `i`: the first point inside the lung, marching laterally
    /// from the mediastinum at the level of the main bronchus.
    fn hilum(&self, i: usize) -> V3 {
        let lung = &self.lungs[i];
        let y = self.ty - 6.0;
        let z = self.z_carina - if i == 0 { 16.0 } else { 24.0 };
        let mut x = self.bcx + lung.side * self.mediastinum(y);
        for _ in 0..60 {
            if self.lung_sd(i, [x, y, z]) < -4.0 {
                break;
            }
            x += lung.side * 2.0;
        }
        [x, y, z]
    }

    /// Bronchovascular trees: from each hilum, five lobar arteries branch
    /// dichotomously and taper towards the pleura; the first generations are
    /// accompanied by bronchi.
    fn build_trees(&self, rng: &mut ChaCha8Rng, c: &mut Capsules) {
        let carina = [self.bcx, self.ty, self.z_carina];
        for i in 0..2 {
            let s = self.lungs[i].side;
            let h = self.hilum(i);
            let lg = &self.lungs[i];
            let centre = [
                lg.cx + s * 0.2 * lg.ax,
                lg.cy,
                lg.z_base + 0.4 * (lg.z_apex - lg.z_base),
            ];
            let boff = scale(norm([s * 0.6, 1.0, 0.0]), 7.0);
            let main_r = if i == 0 { 6.5 } else { 6.0 };
            c.push_airway(carina, add(h, boff), main_r, main_r * 0.9, false);
            // Segmental arteries fanning out in 3-D from the hilum: directions
            // spread evenly over the lateral hemisphere (Fibonacci lattice).
            let n_roots = 14;
            let roots: Vec<(V3, f64, f64)> = (0..n_roots)
                .map(|k| {
                    let u = (k as f64 + 0.5) / n_roots as f64;
                    let zz = 1.0 - 2.0 * u;
                    let rr = (1.0 - zz * zz).sqrt();
                    let ang = k as f64 * 2.399_963 + rng.random_range(-0.2..0.2);
                    // Hemisphere: lateral component always positive.
                    let d = [s * (0.25 + rr * ang.cos().abs()), rr * ang.sin(), zz];
                    let len = rng.random_range(28.0..40.0);
                    let r = rng.random_range(2.8..3.9);
                    (d, len, r)
                })
                .collect();
            // Long basal arteries of the lower lobe.
            let mut roots = roots;
            for d in [
                [0.5, 0.6, -1.0],
                [0.8, 0.0, -1.0],
                [0.4, -0.6, -1.0],
                [0.1, 0.3, -1.0],
            ] {
                let len = rng.random_range(45.0..55.0);
                roots.push(([s * d[0], d[1], d[2]], len, rng.random_range(3.2..4.0)));
            }
            for (dir, len, r) in roots {
                let mut g = Grower {
                    anat: self,
                    lung: i,
                    hilum: h,
                    centre,
                    boff: scale(boff, 0.8 + r / 10.0),
                    caps: c,
                };
                g.grow(rng, h, norm(dir), len, r, 0);
            }
        }
    }
}

struct Grower<'a> {
    anat: &'a Anatomy,
    lung: usize,
    hilum: V3,
    /// A point deep inside the lung, to steer branches back in.
    centre: V3,
    boff: V3,
    caps: &'a mut Capsules,
}

const MAX_DEPTH: u32 = 9;
const AIRWAY_DEPTH: u32 = 3;

impl Grower<'_> {
    fn grow(&mut self, rng: &mut ChaCha8Rng, p: V3, dir: V3, len: f64, r: f64, depth: u32) {
        // Keep the branch inside the lung and off the pleura (the outer centimetre is
        // nearly vessel-free): shorten it; large branches may also bend inwards; small
        // ones simply stop.
        let mut l = len;
        let mut dir = dir;
        let mut tries = 0;
        let end = loop {
            let e = add(p, scale(dir, l));
            if self.anat.lung_sd(self.lung, e) < -(r + 7.0) {
                break e;
            }
            l *= 0.75;
            if l < 0.5 * len {
                tries += 1;
                if tries > 2 || (depth > 3 && tries > 1) || len < 4.0 {
                    return;
                }
                l = len * 0.8;
                let inward = norm(sub(self.centre, p));
                dir = norm(add(dir, scale(inward, 0.6)));
            }
        };
        let r_end = r * 0.92;
        self.caps.push_vessel(p, end, r, r_end);
        if depth < AIRWAY_DEPTH {
            let rb = r * 0.72;
            self.caps
                .push_airway(add(p, self.boff), add(end, self.boff), rb, rb * 0.92, true);
        }
        let child_r = r_end * 0.77;
        if depth + 1 >= MAX_DEPTH || child_r < 0.3 {
            return;
        }
        // Random bifurcation plane containing `dir`.
        let any = if dir[2].abs() < 0.9 {
            [0.0, 0.0, 1.0]
        } else {
            [1.0, 0.0, 0.0]
        };
        let k0 = norm(cross(dir, any));
        let phi = rng.random_range(0.0..(2.0 * PI));
        let k1 = cross(dir, k0);
        let k = add(scale(k0, phi.cos()), scale(k1, phi.sin()));
        let outward = norm(sub(end, self.hilum));
        let n_children = if depth < 2 && rng.random_bool(0.4) {
            3
        } else {
            2
        };
        for j in 0..n_children {
            let sign = if j % 2 == 0 { 1.0 } else { -1.0 };
            let ang: f64 = sign * rng.random_range(0.3..0.65) * if j == 2 { 1.6 } else { 1.0 };
            let kk = if j == 2 { cross(dir, k) } else { k };
            // Rodrigues with an axis perpendicular to `dir`.
            let d = add(scale(dir, ang.cos()), scale(cross(kk, dir), ang.sin()));
            let d = norm(add(d, scale(outward, 0.15)));
            let cl = l * rng.random_range(0.7..0.95);
            let cr = child_r * rng.random_range(0.9..1.1);
            self.grow(rng, end, d, cl, cr, depth + 1);
        }
    }
}

// ---------------------------------------------------------------------------
// Tubes

#[derive(Clone, Copy, PartialEq, Eq)]
enum TubeKind {
    /// Solid soft tissue painted onto the background (great vessels).
    Background,
    /// Pulmonary vessel: painted into the lung parenchyma only.
    Vessel,
    /// Airway wall, then lumen.
    Airway,
}

#[derive(Clone, Copy)]
struct Capsule {
    a: V3,
    b: V3,
    ra: f64,
    rb: f64,
    zlo: f64,
    zhi: f64,
    hu: f32,
    kind: TubeKind,
    /// Clip to the lung (intrapulmonary airways).
    lung_only: bool,
}

#[derive(Default)]
struct Capsules {
    list: Vec<Capsule>,
}

impl Capsules {
    fn push(&mut self, mut c: Capsule) {
        let rmax = c.ra.max(c.rb);
        c.zlo = c.a[2].min(c.b[2]) - rmax;
        c.zhi = c.a[2].max(c.b[2]) + rmax;
        self.list.push(c);
    }
    fn push_bg(&mut self, a: V3, b: V3, ra: f64, rb: f64, hu: f64) {
        self.push(Capsule {
            a,
            b,
            ra,
            rb,
            zlo: 0.0,
            zhi: 0.0,
            hu: hu as f32,
            kind: TubeKind::Background,
            lung_only: false,
        });
    }
    fn push_vessel(&mut self, a: V3, b: V3, ra: f64, rb: f64) {
        self.push(Capsule {
            a,
            b,
            ra,
            rb,
            zlo: 0.0,
            zhi: 0.0,
            hu: 40.0,
            kind: TubeKind::Vessel,
            lung_only: true,
        });
    }
    /// Slices each capsule may touch (airways with their wall).
    fn bucket_by_slice(&self, g: &Grid) -> Vec<Vec<u32>> {
        let mut by_slice = vec![Vec::new(); g.nz];
        for (i, c) in self.list.iter().enumerate() {
            let extra = if c.kind == TubeKind::Airway {
                c.wall()
            } else {
                0.0
            };
            let (_, _, reach) = c.footprint(g, extra);
            let lo = c.a[2].min(c.b[2]) - reach;
            let hi = c.a[2].max(c.b[2]) + reach;
            for k in span(lo, hi, g.sz, g.nz) {
                by_slice[k].push(i as u32);
            }
        }
        by_slice
    }

    /// Airway with lumen radii `ra`..`rb`; the wall is added around it.
    fn push_airway(&mut self, a: V3, b: V3, ra: f64, rb: f64, lung_only: bool) {
        self.push(Capsule {
            a,
            b,
            ra,
            rb,
            zlo: 0.0,
            zhi: 0.0,
            hu: -1000.0,
            kind: TubeKind::Airway,
            lung_only,
        });
    }
}

impl Capsule {
    fn wall(&self) -> f64 {
        0.6 + 0.15 * self.ra.max(self.rb)
    }

    /// How the capsule grown by `extra` is rendered on grid `g`: whether it is thin
    /// (partial-volume profile), the profile's variance, and how far from the axis it
    /// reaches.
    fn footprint(&self, g: &Grid, extra: f64) -> (bool, f64, f64) {
        let h = g.h;
        let rmax = self.ra.max(self.rb) + extra;
        // Tubes thinner than a pixel are rendered by their partial volume: the tube's
        // cross-section spread by the voxel's extent perpendicular to the tube (a Gaussian
        // with the same second moments), so that the attenuation they add is conserved
        // whatever the voxel size. Thicker tubes get an anti-aliased hard edge.
        let thin = rmax < h;
        let u = norm(sub(self.b, self.a));
        let s2 = ((2.0 * h * h + g.sz * g.sz)
            - ((u[0] * u[0] + u[1] * u[1]) * h * h + u[2] * u[2] * g.sz * g.sz))
            / 24.0;
        let reach = if thin {
            rmax + 3.0 * (s2 + rmax * rmax / 4.0).sqrt()
        } else {
            rmax + h
        };
        (thin, s2, reach)
    }

    /// Calls `f(pixel index, coverage)` for every pixel of slice `z` touched
    /// by this capsule grown by `extra` mm. Only the capsule's bounding box in
    /// the slice is visited.
    fn for_each_pixel(&self, g: &Grid, z: f64, extra: f64, mut f: impl FnMut(usize, f32)) {
        let ra = self.ra + extra;
        let rb = self.rb + extra;
        let rmax = ra.max(rb);
        let h = g.h;
        let ab = sub(self.b, self.a);
        let (thin, s2, reach) = self.footprint(g, extra);
        if z < self.zlo - extra - reach + rmax || z > self.zhi + extra + reach - rmax {
            return;
        }
        // Parameter range where the axis is within `reach` of the slice plane.
        let (t0, t1) = if ab[2].abs() < 1e-9 {
            (0.0, 1.0)
        } else {
            let u = (z - reach - self.a[2]) / ab[2];
            let v = (z + reach - self.a[2]) / ab[2];
            (u.min(v).max(0.0), u.max(v).min(1.0))
        };
        if t0 > t1 {
            return;
        }
        let p0 = add(self.a, scale(ab, t0));
        let p1 = add(self.a, scale(ab, t1));
        let xs = g.cols(p0[0].min(p1[0]) - reach, p0[0].max(p1[0]) + reach);
        let ys = g.rows(p0[1].min(p1[1]) - reach, p0[1].max(p1[1]) + reach);
        let ll = dot(ab, ab).max(1e-12);
        for j in ys {
            let y = g.y(j);
            for i in xs.clone() {
                let x = g.x(i);
                let ap = [x - self.a[0], y - self.a[1], z - self.a[2]];
                let t = (dot(ap, ab) / ll).clamp(0.0, 1.0);
                let d = sub(ap, scale(ab, t));
                let d2 = dot(d, d);
                if d2 > reach * reach {
                    continue;
                }
                let r = ra + (rb - ra) * t;
                let cov = if thin {
                    let v = s2 + r * r / 4.0;
                    let c = r * r / (2.0 * v) * (-d2 / (2.0 * v)).exp();
                    if c < 0.004 {
                        0.0
                    } else {
                        c.min(1.0)
                    }
                } else {
                    coverage(d2.sqrt() - r, h)
                };
                if cov > 0.0 {
                    f(j * g.nx + i, cov as f32);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Lesions

#[derive(Clone, Copy)]
struct Ball {
    c: V3,
    r: f64,
}

/// A subpleural ground-glass patch: a few metaballs around a point near the
/// pleura, elongated along it. Offsets are in units of the patch radius.
#[derive(Clone, Copy)]
struct Patch {
    boundary: V3,
    normal: V3,
    tangent: V3,
    radius: f64,
    depth: f64,
    balls: [(V3, f64); 5],
    n_balls: usize,
}

struct Ggo {
    balls: Vec<Ball>,
    density: f64,
    phase: [f64; 6],
}

struct Lobar {
    lung: usize,
    /// Unit normal of the fissure-like plane and its offset; lesion where
    /// `sign * (n . p - off) < 0`.
    n: V3,
    off: f64,
    sign: f64,
    density: f64,
    phase: [f64; 6],
}

enum Lesions {
    None,
    Ggo(Ggo),
    Lobar(Lobar),
}

const GGO_TAU: f64 = 0.3;

/// Smooth pseudo-random texture in about [-1, 1].
#[inline]
fn texture(p: V3, ph: &[f64; 6]) -> f64 {
    0.7 * (0.071 * p[0] + ph[0]).sin() * (0.063 * p[1] + ph[1]).sin() * (0.081 * p[2] + ph[2]).sin()
        + 0.5
            * (0.19 * p[0] + 0.11 * p[2] + ph[3]).sin()
            * (0.17 * p[1] - 0.07 * p[0] + ph[4]).sin()
            * (0.15 * p[2] + ph[5]).sin()
}

/// Lung sample points on a coarse grid, used to calibrate lesion sizes.
fn coarse_lung_points(anat: &Anatomy) -> Vec<(V3, usize)> {
    let step = 10.0;
    let mut pts = Vec::new();
    let zlo = anat.lungs[0].z_base.min(anat.lungs[1].z_base);
    let zhi = anat.lungs[0].z_apex.max(anat.lungs[1].z_apex);
    let mut z = zlo + step * 0.5;
    while z < zhi {
        let ctx = anat.slice_ctx(z);
        let mut y = anat.ccy - anat.cb + step * 0.5;
        while y < anat.ccy + anat.cb {
            let med = anat.mediastinum(y);
            let mut x = anat.bcx - anat.ca + step * 0.5;
            while x < anat.bcx + anat.ca {
                let i = usize::from(x >= anat.bcx);
                if anat.lung_sd_fast(&ctx, med, i, x, y) < 0.0 {
                    pts.push(([x, y, z], i));
                }
                x += step;
            }
            y += step;
        }
        z += step;
    }
    pts
}

fn ggo_field(balls: &[Ball], p: V3) -> f64 {
    let mut f = 0.0;
    for b in balls {
        let d = sub(p, b.c);
        let q = dot(d, d) / (b.r * b.r);
        if q < 1.0 {
            let w = 1.0 - q;
            f += w * w * w;
        }
    }
    f
}

impl Patch {
    fn materialise(&self, kappa: f64, out: &mut Vec<Ball>) {
        let r = self.radius * kappa;
        let up = [0.0, 0.0, 1.0];
        let centre = sub(self.boundary, scale(self.normal, self.depth * r));
        for &(o, rr) in &self.balls[..self.n_balls] {
            let off = add(
                add(scale(self.tangent, o[0]), scale(up, o[1])),
                scale(self.normal, o[2]),
            );
            out.push(Ball {
                c: add(centre, scale(off, r)),
                r: r * rr,
            });
        }
    }
}

impl Lesions {
    fn sample(diagnosis: Diagnosis, anat: &Anatomy, rng: &mut ChaCha8Rng) -> Lesions {
        let phase: [f64; 6] = std::array::from_fn(|_| rng.random_range(0.0..(2.0 * PI)));
        match diagnosis {
            Diagnosis::Normal => Lesions::None,
            Diagnosis::Covid => Lesions::Ggo(Self::sample_ggo(anat, rng, phase)),
            Diagnosis::OtherPneumonia => Lesions::Lobar(Self::sample_lobar(anat, rng, phase)),
        }
    }

    fn sample_ggo(anat: &Anatomy, rng: &mut ChaCha8Rng, phase: [f64; 6]) -> Ggo {
        let pts = coarse_lung_points(anat);
        let lung_volume = pts.len() as f64 * 1000.0;
        // Severity: one of stages 1..4, then a target inside that bin.
        let stage = rng.random_range(1..=4u8);
        let target = match stage {
            1 => rng.random_range(1.5..4.5),
            2 => rng.random_range(7.0..23.0),
            3 => rng.random_range(28.0..47.0),
            _ => rng.random_range(53.0..65.0),
        };
        let n = rng.random_range(3..=10usize);
        let weights: Vec<f64> = (0..n).map(|_| rng.random_range(0.35..1.0)).collect();
        let wsum: f64 = weights.iter().sum();
        let mut patches = Vec::with_capacity(n);
        for (k, w) in weights.iter().enumerate() {
            // Both lungs are always involved.
            let i = match k {
                0 => 0,
                1 => 1,
                _ => usize::from(rng.random_bool(0.5)),
            };
            let lung = &anat.lungs[i];
            let s = lung.side;
            // Basal and posterior predominance.
            let t = 0.08 + 0.75 * rng.random_range(0.0f64..1.0).powf(1.4);
            let z = lung.z_base + t * (lung.z_apex - lung.z_base);
            let phi = rng.random_range(-75.0f64..115.0).to_radians();
            let vol = lung_volume * target / 100.0 * w / wsum;
            // About half of a subpleural patch falls outside the lung.
            let r_eff = (2.0 * vol * 3.0 / (4.0 * PI)).cbrt();
            let mut balls = [([0.0; 3], 0.0); 5];
            let n_balls = rng.random_range(2..=5usize);
            for b in balls.iter_mut().take(n_balls) {
                *b = (
                    [
                        rng.random_range(-0.7..0.7),
                        rng.random_range(-0.5..0.5),
                        rng.random_range(-0.3..0.0),
                    ],
                    rng.random_range(0.6..1.0),
                );
            }
            let depth = rng.random_range(0.05..0.35);
            let ctx = anat.slice_ctx(z);
            let Some(sec) = ctx.sec[i] else { continue };
            let dir = [s * phi.cos(), phi.sin(), 0.0];
            let far = [sec.cx + dir[0] * sec.a, sec.cy + dir[1] * sec.b];
            // March from the section centre to the ellipse: last inside point
            // is the pleural surface in that direction.
            let mut boundary = None;
            for step in 0..=60 {
                let f = step as f64 / 60.0 * 1.1;
                let p = [
                    sec.cx + (far[0] - sec.cx) * f,
                    sec.cy + (far[1] - sec.cy) * f,
                    z,
                ];
                if anat.lung_sd(i, p) < 0.0 {
                    boundary = Some(p);
                }
            }
            let Some(boundary) = boundary else { continue };
            let normal = norm([far[0] - sec.cx, far[1] - sec.cy, 0.0]);
            patches.push(Patch {
                boundary,
                normal,
                tangent: [-normal[1], normal[0], 0.0],
                radius: r_eff / 0.55,
                depth,
                balls,
                n_balls,
            });
        }
        // Calibrate a common size factor on the coarse grid so that the
        // involvement lands near the target.
        let mut kappa = 1.0;
        let mut balls = Vec::new();
        for _ in 0..4 {
            balls.clear();
            for p in &patches {
                p.materialise(kappa, &mut balls);
            }
            let hit = pts
                .iter()
                .filter(|(p, _)| ggo_field(&balls, *p) + 0.12 * texture(*p, &phase) > GGO_TAU)
                .count();
            let got = hit as f64 / pts.len().max(1) as f64 * 100.0;
            let ratio = (target / got.max(0.05)).cbrt();
            kappa = (kappa * ratio).clamp(0.3, 4.0);
        }
        balls.clear();
        for p in &patches {
            p.materialise(kappa, &mut balls);
        }
        Ggo {
            balls,
            density: rng.random_range(-620.0..-470.0),
            phase,
        }
    }

    fn sample_lobar(anat: &Anatomy, rng: &mut ChaCha8Rng, phase: [f64; 6]) -> Lobar {
        let pts = coarse_lung_points(anat);
        let lung = usize::from(rng.random_bool(0.5));
        let upper = rng.random_bool(0.3);
        let target = rng.random_range(8.0..38.0);
        // Oblique fissure: rises towards the back at 35..55 degrees, slightly
        // tilted laterally. Lower lobe = below it, upper lobe = above it.
        let beta = rng.random_range(35.0f64..55.0).to_radians();
        let tilt = rng.random_range(-0.15..0.15);
        let n = norm([tilt, -beta.sin(), beta.cos()]);
        let sign = if upper { -1.0 } else { 1.0 };
        let side: Vec<V3> = pts
            .iter()
            .filter(|(_, i)| *i == lung)
            .map(|(p, _)| *p)
            .collect();
        let total = pts.len().max(1) as f64;
        let frac = |off: f64| {
            side.iter()
                .filter(|p| sign * (dot(n, **p) - off) < 0.0)
                .count() as f64
                / total
                * 100.0
        };
        // Bisection on the plane offset (the involvement is monotonic in it).
        let (mut lo, mut hi) = (-400.0, 400.0);
        for _ in 0..40 {
            let mid = 0.5 * (lo + hi);
            let f = frac(mid);
            // For the lower lobe the involvement grows with the offset.
            if (f < target) == (sign > 0.0) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Lobar {
            lung,
            n,
            off: 0.5 * (lo + hi),
            sign,
            density: rng.random_range(-45.0..25.0),
            phase,
        }
    }
}

// ---------------------------------------------------------------------------
// Rendering

struct SliceBufs {
    hu: Vec<f32>,
    par: Vec<f32>,
    lung_a: Vec<f32>,
    /// 0 = none, 1 = right lung, 2 = left lung.
    side: Vec<u8>,
    les_a: Vec<f32>,
    field: Vec<f32>,
}

impl SliceBufs {
    fn new(n: usize) -> SliceBufs {
        SliceBufs {
            hu: vec![0.0; n],
            par: vec![0.0; n],
            lung_a: vec![0.0; n],
            side: vec![0; n],
            les_a: vec![0.0; n],
            field: vec![0.0; n],
        }
    }
}

struct Scene {
    grid: Grid,
    anat: Anatomy,
    capsules: Capsules,
    /// Indices of the capsules that may touch each slice.
    by_slice: Vec<Vec<u32>>,
    lesions: Lesions,
    noise_seed: u64,
    acquisition: Acquisition,
}

/// Paints an axis-aligned ellipse onto one row with partial-volume edges.
struct RowPainter<'a> {
    g: &'a Grid,
    y: f64,
    row: &'a mut [f32],
}

impl RowPainter<'_> {
    /// Calls `f(x, coverage)` for every pixel of the row covered by the ellipse.
    fn ellipse(&mut self, cx: f64, cy: f64, a: f64, b: f64, mut f: impl FnMut(f64, f64, &mut f32)) {
        let h = self.g.h;
        let dy = self.y - cy;
        let ady = dy.abs();
        if a <= 0.0 || b <= 0.0 || ady >= b + h {
            return;
        }
        let outer = {
            let q = ((ady - h).max(0.0) / b).min(1.0);
            a * (1.0 - q * q).sqrt() + h
        };
        let inner = {
            let q = (ady + h) / b;
            if q < 1.0 {
                a * (1.0 - q * q).sqrt() - h
            } else {
                -1.0
            }
        };
        for i in self.g.cols(cx - outer, cx + outer) {
            let x = self.g.x(i);
            let dx = x - cx;
            let cov = if dx.abs() < inner {
                1.0
            } else {
                coverage(ellipse_sd(dx, dy, a, b), h)
            };
            if cov > 0.0 {
                f(x, cov, &mut self.row[i]);
            }
        }
    }

    fn fill_ellipse(&mut self, cx: f64, cy: f64, a: f64, b: f64, hu: f64) {
        self.ellipse(cx, cy, a, b, |_, c, v| *v = mix(*v, hu as f32, c as f32));
    }

    /// 2-D segment (in-plane) of radius `r`.
    fn segment(&mut self, p: [f64; 2], q: [f64; 2], r: f64, hu: f64) {
        let h = self.g.h;
        let (ylo, yhi) = (p[1].min(q[1]) - r - h, p[1].max(q[1]) + r + h);
        if self.y < ylo || self.y > yhi {
            return;
        }
        let d = [q[0] - p[0], q[1] - p[1]];
        let ll = (d[0] * d[0] + d[1] * d[1]).max(1e-12);
        for i in self.g.cols(p[0].min(q[0]) - r - h, p[0].max(q[0]) + r + h) {
            let x = self.g.x(i);
            let ap = [x - p[0], self.y - p[1]];
            let t = ((ap[0] * d[0] + ap[1] * d[1]) / ll).clamp(0.0, 1.0);
            let (ex, ey) = (ap[0] - t * d[0], ap[1] - t * d[1]);
            let dist = (ex * ex + ey * ey).sqrt();
            let c = coverage(dist - r, h);
            if c > 0.0 {
                self.row[i] = mix(self.row[i], hu as f32, c as f32);
            }
        }
    }
}

const FAT: f64 = -95.0;
const MUSCLE: f64 = 42.0;
const CORTEX: f64 = 820.0;
const MARROW: f64 = 280.0;

impl Scene {
    fn capsules_at(&self, zi: usize) -> impl Iterator<Item = &Capsule> + '_ {
        self.by_slice[zi]
            .iter()
            .map(move |&i| &self.capsules.list[i as usize])
    }

    fn render_slice(
        &self,
        zi: usize,
        b: &mut SliceBufs,
        ct: &mut [i16],
        les_out: &mut [u8],
        lung_out: &mut [u8],
    ) -> (u64, u64) {
        let g = &self.grid;
        let a = &self.anat;
        let z = g.z(zi);
        let ctx = a.slice_ctx(z);
        let nx = g.nx;

        // 1. Body wall, mediastinum, bones, heart, abdomen.
        for j in 0..g.ny {
            let row = &mut b.hu[j * nx..(j + 1) * nx];
            row.fill(-1000.0);
            self.background_row(&ctx, g.y(j), row);
        }
        // 2. Great vessels.
        for c in self.capsules_at(zi) {
            if c.kind == TubeKind::Background {
                c.for_each_pixel(g, z, 0.0, |k, cov| {
                    b.hu[k] = mix(b.hu[k], c.hu, cov);
                });
            }
        }
        // 3. Lungs: coverage and parenchyma.
        b.lung_a.fill(0.0);
        b.side.fill(0);
        for j in 0..g.ny {
            let y = g.y(j);
            let med = a.mediastinum(y);
            for (i, sec) in ctx.sec.iter().enumerate() {
                let Some(sec) = sec else { continue };
                if (y - sec.cy).abs() > sec.b + g.h {
                    continue;
                }
                let par_hu =
                    a.lung_hu + a.lung_grad * ((y - (a.ccy - a.cb)) / (2.0 * a.cb)).clamp(0.0, 1.0);
                // Only lateral to the mediastinum.
                let (lo, hi) = if i == 0 {
                    (sec.cx - sec.a - g.h, a.bcx - med + g.h)
                } else {
                    (a.bcx + med - g.h, sec.cx + sec.a + g.h)
                };
                for k in g.cols(lo, hi) {
                    let x = g.x(k);
                    let sd = a.lung_sd_fast(&ctx, med, i, x, y);
                    let cov = coverage(sd, g.h) as f32;
                    let idx = j * nx + k;
                    if cov > b.lung_a[idx] {
                        b.lung_a[idx] = cov;
                        b.side[idx] = i as u8 + 1;
                        b.par[idx] = par_hu as f32;
                    }
                }
            }
        }
        // 4. Lesions modify the parenchyma.
        self.paint_lesions(&ctx, b);
        // 5. Pulmonary vessels (they may cross lesions).
        for c in self.capsules_at(zi) {
            if c.kind == TubeKind::Vessel {
                c.for_each_pixel(g, z, 0.0, |k, cov| {
                    if b.lung_a[k] > 0.0 {
                        b.par[k] = mix(b.par[k], c.hu, cov);
                    }
                });
            }
        }
        // 6. Compose.
        for k in 0..b.hu.len() {
            let la = b.lung_a[k];
            if la > 0.0 {
                b.hu[k] = mix(b.hu[k], b.par[k], la);
            }
        }
        // 7. Airways: all walls first, then all lumens.
        for pass in 0..2 {
            for c in self.capsules_at(zi) {
                if c.kind != TubeKind::Airway {
                    continue;
                }
                let (extra, hu) = if pass == 0 {
                    (c.wall(), 30.0f32)
                } else {
                    (0.0, -1000.0f32)
                };
                c.for_each_pixel(g, z, extra, |k, cov| {
                    let cov = if c.lung_only { cov * b.lung_a[k] } else { cov };
                    b.hu[k] = mix(b.hu[k], hu, cov);
                });
            }
        }
        // 8. Noise, quantisation, masks.
        let mut rng = ChaCha8Rng::seed_from_u64(splitmix(
            self.noise_seed ^ (zi as u64).wrapping_mul(0xA076_1D64_78BD_642F),
        ));
        // Sum of four uniforms (Irwin-Hall): close to Gaussian, one u64 per voxel.
        let k_noise = (a.noise_sigma * self.acquisition.noise_scale / 37837.0) as f32;
        let offset = self.acquisition.hu_offset as f32;
        let mut n_les = 0u64;
        let mut n_lung = 0u64;
        for k in 0..ct.len() {
            let r = rng.next_u64();
            let s = (r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48);
            let noise = (s as f32 - 131070.0) * k_noise;
            ct[k] = (b.hu[k] + noise + offset).round().clamp(-1024.0, 3071.0) as i16;
            let in_lung = b.lung_a[k] >= 0.5;
            let in_les = in_lung && b.les_a[k] >= 0.5;
            lung_out[k] = u8::from(in_lung);
            les_out[k] = u8::from(in_les);
            n_lung += u64::from(in_lung);
            n_les += u64::from(in_les);
        }
        (n_les, n_lung)
    }

    fn background_row(&self, ctx: &SliceCtx, y: f64, row: &mut [f32]) {
        let a = &self.anat;
        let g = &self.grid;
        let z = ctx.z;
        let mut p = RowPainter { g, y, row };
        // Skin + subcutaneous fat, then muscle.
        p.fill_ellipse(a.bcx, a.bcy, a.ba, a.bb, FAT);
        p.fill_ellipse(a.bcx, a.bcy, a.ia, a.ib, MUSCLE);
        // Thoracic cavity: mediastinal fat above the diaphragm, liver/spleen below.
        p.ellipse(a.bcx, a.ccy, a.ca, a.cb, |x, c, v| {
            let dz = a.diaphragm(x, y);
            let hu = if z < dz - 4.0 {
                if x < a.bcx + 25.0 {
                    58.0
                } else {
                    45.0
                }
            } else if z < dz {
                MUSCLE
            } else {
                FAT
            };
            *v = mix(*v, hu as f32, c as f32);
        });
        // Ribs: sloping bands just outside the cavity.
        let zl = a.lungs[0].z_base.min(a.lungs[1].z_base) - 45.0;
        let zh = a.lungs[0].z_apex.max(a.lungs[1].z_apex) + 5.0;
        if z > zl && z < zh {
            self.ribs_row(&mut p, z);
        }
        // Sternum.
        let zc = a.z_carina;
        if z > a.heart[2] - a.heart_r[2] * 0.9 && z < zc + 70.0 {
            let sy = a.ccy - a.cb - 6.0;
            p.fill_ellipse(a.bcx, sy, 15.0, 7.0, CORTEX);
            p.fill_ellipse(a.bcx, sy, 12.5, 4.8, MARROW);
        }
        // Spine: vertebral body (or disc), posterior arch, spinous and
        // transverse processes, spinal canal.
        let disc = (z - a.disc_phase).rem_euclid(28.0) < 6.0;
        if disc {
            p.fill_ellipse(a.bcx, a.spine_y, a.spine_a, a.spine_b, 85.0);
        } else {
            p.fill_ellipse(a.bcx, a.spine_y, a.spine_a, a.spine_b, CORTEX);
            p.fill_ellipse(a.bcx, a.spine_y, a.spine_a - 2.5, a.spine_b - 2.5, MARROW);
        }
        let canal_y = a.spine_y + a.spine_b + 9.0;
        p.fill_ellipse(a.bcx, canal_y, 14.0, 12.0, 650.0);
        let spin_len = (a.bcy + a.ib - canal_y - 4.0).clamp(8.0, 28.0);
        p.segment(
            [a.bcx, canal_y + 8.0],
            [a.bcx, canal_y + spin_len],
            4.0,
            600.0,
        );
        for s in [-1.0, 1.0] {
            p.segment(
                [a.bcx + s * 10.0, canal_y - 2.0],
                [a.bcx + s * 30.0, canal_y + 4.0],
                4.5,
                600.0,
            );
        }
        p.fill_ellipse(a.bcx, canal_y, 8.5, 7.5, 20.0);
        // Heart (with the pericardial fat around it from the mediastinum).
        if let Some(h) = ctx.heart {
            let r = h.a.max(h.b) + g.h;
            if (y - h.cy).abs() < r {
                for i in g.cols(h.cx - r, h.cx + r) {
                    let c = coverage(a.heart_sd(&h, g.x(i), y), g.h);
                    if c > 0.0 {
                        p.row[i] = mix(p.row[i], 40.0, c as f32);
                    }
                }
            }
        }
    }

    fn ribs_row(&self, p: &mut RowPainter, z: f64) {
        let a = &self.anat;
        let h = self.grid.h;
        const PITCH: f64 = 26.0;
        const DROP: f64 = 120.0;
        const HALF_H: f64 = 5.5;
        const HALF_T: f64 = 4.0;
        const MID: f64 = 5.5;
        let y = p.y;
        let (oa, ob) = (a.ca + 2.0 * MID + h, a.cb + 2.0 * MID + h);
        let dy = y - a.ccy;
        if dy.abs() > ob {
            return;
        }
        let half = oa * (1.0 - (dy / ob).powi(2)).max(0.0).sqrt();
        let cols = self.grid.cols(a.bcx - half, a.bcx + half);
        for i in cols {
            let x = self.grid.x(i);
            let dx = x - a.bcx;
            let q = ((dx / a.ca).powi(2) + (dy / a.cb).powi(2)).sqrt();
            if q < 1.0 {
                continue;
            }
            let rr = (dx * dx + dy * dy).sqrt() * (1.0 - 1.0 / q);
            let radial = (rr - MID).abs() / HALF_T;
            if radial > 1.0 + h / HALF_T {
                continue;
            }
            // 0 = posterior midline, pi = anterior midline.
            let theta = dx.abs().atan2(dy);
            if !(0.12 * PI..0.9 * PI).contains(&theta) {
                continue;
            }
            let k = (z + DROP * theta / PI - a.rib_phase).rem_euclid(PITCH) - PITCH / 2.0;
            let e = radial.max(k.abs() / HALF_H);
            let cov = ((1.0 - e) * HALF_T / h + 0.5).clamp(0.0, 1.0);
            if cov <= 0.0 {
                continue;
            }
            let hu = if theta > 0.78 * PI {
                110.0 // costal cartilage
            } else if e > 0.6 {
                CORTEX
            } else {
                MARROW
            };
            p.row[i] = mix(p.row[i], hu as f32, cov as f32);
        }
    }

    fn paint_lesions(&self, ctx: &SliceCtx, b: &mut SliceBufs) {
        let g = &self.grid;
        let z = ctx.z;
        b.les_a.fill(0.0);
        match &self.lesions {
            Lesions::None => {}
            Lesions::Ggo(m) => {
                b.field.fill(0.0);
                let mut any = false;
                for ball in &m.balls {
                    let dz = z - ball.c[2];
                    if dz.abs() >= ball.r {
                        continue;
                    }
                    any = true;
                    let rs = (ball.r * ball.r - dz * dz).sqrt();
                    let inv = 1.0 / (ball.r * ball.r);
                    for j in g.rows(ball.c[1] - rs, ball.c[1] + rs) {
                        let y = g.y(j);
                        for i in g.cols(ball.c[0] - rs, ball.c[0] + rs) {
                            let k = j * g.nx + i;
                            if b.lung_a[k] <= 0.0 {
                                continue;
                            }
                            let x = g.x(i);
                            let q =
                                ((x - ball.c[0]).powi(2) + (y - ball.c[1]).powi(2) + dz * dz) * inv;
                            if q < 1.0 {
                                let w = 1.0 - q;
                                b.field[k] += (w * w * w) as f32;
                            }
                        }
                    }
                }
                if !any {
                    return;
                }
                for k in 0..b.field.len() {
                    let f = b.field[k] as f64;
                    if f <= 0.0 {
                        continue;
                    }
                    let p = [g.x(k % g.nx), g.y(k / g.nx), z];
                    let t = texture(p, &m.phase);
                    let v = f + 0.12 * t - GGO_TAU;
                    // Ill-defined (soft) margins, as ground glass has.
                    let alpha = (v / 0.08 + 0.5).clamp(0.0, 1.0);
                    if alpha <= 0.0 {
                        continue;
                    }
                    let hu =
                        (m.density + 150.0 * v.clamp(0.0, 0.6) + 45.0 * t).clamp(-690.0, -310.0);
                    b.les_a[k] = alpha as f32;
                    b.par[k] = mix(b.par[k], hu as f32, alpha as f32);
                }
            }
            Lesions::Lobar(m) => {
                let want = m.lung as u8 + 1;
                for k in 0..b.lung_a.len() {
                    if b.lung_a[k] <= 0.0 || b.side[k] != want {
                        continue;
                    }
                    let p = [g.x(k % g.nx), g.y(k / g.nx), z];
                    let t = texture(p, &m.phase);
                    // Fissure-bounded, slightly undulating margin.
                    let sd = m.sign * (dot(m.n, p) - m.off) + 3.0 * t;
                    let alpha = coverage(sd, g.h);
                    if alpha <= 0.0 {
                        continue;
                    }
                    let hu = (m.density + 22.0 * t).clamp(-95.0, 45.0);
                    b.les_a[k] = alpha as f32;
                    b.par[k] = mix(b.par[k], hu as f32, alpha as f32);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side_counts(m: &Array3<u8>) -> (usize, usize) {
        let nx = m.shape()[2];
        let mut l = (0, 0);
        for ((_, _, x), &v) in m.indexed_iter() {
            if v != 0 {
                if x < nx / 2 {
                    l.0 += 1;
                } else {
                    l.1 += 1;
                }
            }
        }
        l
    }

    fn median(mut v: Vec<i16>) -> i16 {
        assert!(!v.is_empty());
        v.sort_unstable();
        v[v.len() / 2]
    }

    fn hu_where(p: &Phantom, lesion: bool) -> Vec<i16> {
        p.ct.iter()
            .zip(p.lung.iter())
            .zip(p.lesion.iter())
            .filter(|((_, &lu), &le)| lu == 1 && (le == 1) == lesion)
            .map(|((&c, _), _)| c)
            .collect()
    }

    #[test]
    fn deterministic_and_thread_independent() {
        let a = generate(Geometry::small(), Diagnosis::Covid, 7);
        let b = generate(Geometry::small(), Diagnosis::Covid, 7);
        assert_eq!(a.ct, b.ct);
        assert_eq!(a.lesion, b.lesion);
        assert_eq!(a.lung, b.lung);
        assert_eq!(a.involvement_pct, b.involvement_pct);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let c = pool.install(|| generate(Geometry::small(), Diagnosis::Covid, 7));
        assert_eq!(a.ct, c.ct);
        assert_eq!(a.lesion, c.lesion);
        let d = generate(Geometry::small(), Diagnosis::Covid, 8);
        assert_ne!(a.ct, d.ct);
    }

    #[test]
    fn shapes_and_air_outside() {
        let g = Geometry::small();
        let p = generate(g, Diagnosis::Normal, 3);
        assert_eq!(p.ct.shape(), &[48, 64, 64]);
        assert_eq!(p.lung.shape(), &[48, 64, 64]);
        // Corners are air.
        for &(z, y, x) in &[(0, 0, 0), (47, 63, 63), (24, 0, 63)] {
            assert!(p.ct[[z, y, x]] < -900, "corner {:?}", p.ct[[z, y, x]]);
        }
        // Bone exists (spine), soft tissue exists.
        assert!(p.ct.iter().any(|&v| v > 300));
        assert!(p.ct.iter().filter(|&&v| (0..=80).contains(&v)).count() > 1000);
    }

    #[test]
    fn lesion_inside_lung_and_involvement_formula() {
        for (d, seed) in [
            (Diagnosis::Covid, 1),
            (Diagnosis::Covid, 2),
            (Diagnosis::OtherPneumonia, 3),
            (Diagnosis::OtherPneumonia, 4),
            (Diagnosis::Normal, 5),
        ] {
            let p = generate(Geometry::small(), d, seed);
            assert!(p
                .lesion
                .iter()
                .zip(p.lung.iter())
                .all(|(&le, &lu)| le <= lu && le <= 1 && lu <= 1));
            let nl = p.lung.iter().filter(|&&v| v == 1).count() as f64;
            let ne = p.lesion.iter().filter(|&&v| v == 1).count() as f64;
            assert!(nl > 1000.0);
            assert!((p.involvement_pct - ne / nl * 100.0).abs() < 1e-9);
            assert_eq!(p.stage, stage_from_involvement(p.involvement_pct));
            assert_eq!(p.diagnosis, d);
        }
    }

    #[test]
    fn normal_has_no_lesion() {
        for seed in 0..4 {
            let p = generate(Geometry::small(), Diagnosis::Normal, seed);
            assert!(p.lesion.iter().all(|&v| v == 0));
            assert_eq!(p.involvement_pct, 0.0);
            assert_eq!(p.stage, 0);
            let m = median(hu_where(&p, false));
            assert!((-920..=-780).contains(&m), "lung median {m}");
        }
    }

    #[test]
    fn covid_is_bilateral_ground_glass() {
        let mut stages = Vec::new();
        for seed in 0..12 {
            let p = generate(Geometry::small(), Diagnosis::Covid, seed);
            let (r, l) = side_counts(&p.lesion);
            assert!(r > 0 && l > 0, "seed {seed}: right {r} left {l}");
            let m = median(hu_where(&p, true));
            assert!((-700..=-300).contains(&m), "seed {seed}: lesion median {m}");
            let m = median(hu_where(&p, false));
            assert!((-920..=-760).contains(&m), "seed {seed}: lung median {m}");
            assert!(p.involvement_pct > 0.5 && p.involvement_pct < 75.0);
            stages.push(p.stage);
        }
        stages.sort_unstable();
        stages.dedup();
        assert!(stages.len() >= 3, "stages {stages:?}");
        assert!(stages.iter().all(|&s| (1..=4).contains(&s)));
    }

    #[test]
    fn other_pneumonia_is_unilateral_consolidation() {
        for seed in 0..8 {
            let p = generate(Geometry::small(), Diagnosis::OtherPneumonia, seed);
            let (r, l) = side_counts(&p.lesion);
            assert!(r.min(l) == 0 && r.max(l) > 0, "seed {seed}: {r} {l}");
            let m = median(hu_where(&p, true));
            assert!((-100..=50).contains(&m), "seed {seed}: lesion median {m}");
            assert!(
                p.involvement_pct > 4.0 && p.involvement_pct < 45.0,
                "seed {seed}: {}",
                p.involvement_pct
            );
        }
    }

    #[test]
    fn stage_bins() {
        assert_eq!(stage_from_involvement(0.0), 0);
        assert_eq!(stage_from_involvement(-1.0), 0);
        assert_eq!(stage_from_involvement(f64::NAN), 0);
        assert_eq!(stage_from_involvement(1e-9), 1);
        assert_eq!(stage_from_involvement(5.0), 1);
        assert_eq!(stage_from_involvement(5.0001), 2);
        assert_eq!(stage_from_involvement(25.0), 2);
        assert_eq!(stage_from_involvement(25.0001), 3);
        assert_eq!(stage_from_involvement(50.0), 3);
        assert_eq!(stage_from_involvement(50.0001), 4);
        assert_eq!(stage_from_involvement(100.0), 4);
    }

    #[test]
    fn labels() {
        assert_eq!(Diagnosis::Covid.as_str(), "covid");
        assert_eq!(Diagnosis::OtherPneumonia.as_str(), "other_pneumonia");
        assert_eq!(Diagnosis::Normal.as_str(), "normal");
    }
}
