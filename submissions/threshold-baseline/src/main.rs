//! threshold-baseline: a transparent, training-free reference method for the COVID-19
//! chest-CT challenge.
//!
//! For every case it
//! 1. segments the lungs itself (air-like voxels inside the body),
//! 2. finds ground-glass opacities (lung voxels whose 3x3x3 aerated neighbourhood is denser
//!    than normal lung; small clusters away from the chest wall, which on coarse grids are
//!    the crowded vessels around the hila, are dropped),
//! 3. finds dense consolidation by comparing each hemithorax with the mirrored other one
//!    (a consolidated lobe has the density of soft tissue, so thresholds alone cannot tell
//!    it from the chest wall; the healthy contralateral lung says where lung should be),
//! 4. measures involvement and stage, and turns the lesion pattern (extent, bilaterality,
//!    density, distance to the pleura) into smooth class probabilities.
//!
//! Usage: `threshold-baseline INPUT OUTPUT`, `--input DIR --output DIR`, or the environment
//! variables `PODIUM_INPUT` and `PODIUM_OUTPUT`. See docs/contract.md of podium.
//! `TB_DEBUG=1` prints the time of each pass and the lesion counts on stderr.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use ndarray::Array3;
use nifti::writer::WriterOptions;
use nifti::{IntoNdArray, NiftiHeader, NiftiObject, ReaderOptions};

/// Below this (HU) a voxel holds air: aerated lung, airway or the room.
const AIR_HU: i16 = -250;
/// Aerated lung is about -850 HU; a lung voxel whose neighbourhood is denser than this is
/// ground glass (partially filled alveoli). Set a little above the textbook -750 because on
/// coarse grids the partial volume of small vessels lifts normal lung towards it.
const GGO_HU: i16 = -700;
/// Consolidation and soft tissue range.
const DENSE_LO: i16 = -200;
const DENSE_HI: i16 = 100;
/// Left/right differences narrower than this (mm) are anatomy (heart, diaphragm domes,
/// patient position), not disease: a consolidation must be at least twice as wide.
const ASYMMETRY_TOLERANCE_MM: f64 = 15.0;
/// Lesion voxels within this distance of the chest wall count as peripheral.
const PERIPHERAL_MM: f64 = 20.0;
/// Less lesion than this (% of the lung) is treated as noise: no lesion.
const MIN_INVOLVEMENT_PCT: f64 = 0.25;

// Bits of the per-voxel flag volume.
const BODY: u8 = 1;
const AIR_IN: u8 = 2;
const LUNG: u8 = 4;
const GGO: u8 = 8;
const CAND: u8 = 16;
/// Aerated lung in every slice within `ASYMMETRY_TOLERANCE_MM` above and below.
const AIR_Z: u8 = 32;
const CONS: u8 = 64;
const LESION: u8 = 128;
/// Within `PERIPHERAL_MM` of the chest wall. Reuses the BODY bit, which is not needed after
/// pass 2.
const PERIPH: u8 = BODY;
/// Central ground-glass clusters smaller than this (ml) are taken for crowded vessels
/// around the hila, not disease.
const MIN_CENTRAL_GGO_ML: f64 = 100.0;

fn main() -> ExitCode {
    let (input, output) = match parse_args() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("threshold-baseline: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&input, &output) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("threshold-baseline: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args() -> Result<(PathBuf, PathBuf), String> {
    let mut positional = Vec::new();
    let (mut input, mut output) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--input" {
            input = args.next();
        } else if a == "--output" {
            output = args.next();
        } else if let Some(v) = a.strip_prefix("--input=") {
            input = Some(v.to_string());
        } else if let Some(v) = a.strip_prefix("--output=") {
            output = Some(v.to_string());
        } else {
            positional.push(a);
        }
    }
    let mut positional = positional.into_iter();
    let input = input
        .or_else(|| positional.next())
        .or_else(|| std::env::var("PODIUM_INPUT").ok())
        .ok_or("no input folder (first argument, --input or PODIUM_INPUT)")?;
    let output = output
        .or_else(|| positional.next())
        .or_else(|| std::env::var("PODIUM_OUTPUT").ok())
        .ok_or("no output folder (second argument, --output or PODIUM_OUTPUT)")?;
    Ok((input.into(), output.into()))
}

fn run(input: &Path, output: &Path) -> Result<(), String> {
    let ids = read_case_ids(&input.join("cases.csv"))?;
    let masks = output.join("masks");
    std::fs::create_dir_all(&masks)
        .map_err(|e| format!("cannot create {}: {e}", masks.display()))?;
    let threads = thread_count();
    let mut csv =
        String::from("case_id,p_covid,p_other_pneumonia,p_normal,involvement_pct,stage\n");
    let mut failed = 0;
    for id in &ids {
        let image = input.join("images").join(format!("{id}.nii.gz"));
        let result = read_volume(&image).and_then(|v| {
            let r = analyse(&v, threads);
            write_mask(&masks.join(format!("{id}.nii.gz")), &v, r.mask)?;
            Ok(r.prediction)
        });
        match result {
            Ok(p) => {
                let _ = writeln!(
                    csv,
                    "{id},{:.6},{:.6},{:.6},{:.4},{}",
                    p.p[0], p.p[1], p.p[2], p.involvement_pct, p.stage
                );
            }
            Err(e) => {
                failed += 1;
                eprintln!("case {id}: {e}");
            }
        }
    }
    let path = output.join("predictions.csv");
    std::fs::write(&path, csv).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    if !ids.is_empty() && failed == ids.len() {
        return Err(format!("all {failed} case(s) failed"));
    }
    Ok(())
}

fn thread_count() -> usize {
    let hw = std::thread::available_parallelism().map_or(1, |n| n.get());
    let limit = std::env::var("PODIUM_CPUS")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|c| *c >= 1.0)
        .map_or(hw, |c| c.floor() as usize);
    hw.min(limit).max(1)
}

/// Case ids from the `case_id` column (the first one if no header names it). Tolerates a
/// UTF-8 byte-order mark, CRLF line ends, quotes and spaces around fields.
fn read_case_ids(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let field = |s: &str| s.trim().trim_matches('"').trim().to_string();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines
        .next()
        .ok_or_else(|| format!("{} is empty", path.display()))?;
    let col = header
        .split(',')
        .position(|h| field(h).eq_ignore_ascii_case("case_id"))
        .unwrap_or(0);
    let mut seen = HashSet::new();
    let mut ids = Vec::new();
    for line in lines {
        let id = line.split(',').nth(col).map(field).unwrap_or_default();
        // A case id can never form a path (contract); skip anything else.
        let valid = !id.is_empty()
            && !id.starts_with('.')
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid {
            eprintln!("skipping invalid case id {id:?}");
        } else if seen.insert(id.clone()) {
            ids.push(id);
        }
    }
    Ok(ids)
}

struct Volume {
    nx: usize,
    ny: usize,
    nz: usize,
    /// Voxel size in mm.
    spacing: [f64; 3],
    /// HU, x fastest, then y, then z (NIfTI order).
    hu: Vec<i16>,
    header: NiftiHeader,
}

fn read_volume(path: &Path) -> Result<Volume, String> {
    let obj = ReaderOptions::new()
        .read_file(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let header = obj.header().clone();
    let arr = obj
        .into_volume()
        .into_ndarray::<i16>()
        .map_err(|e| format!("cannot decode {}: {e}", path.display()))?;
    let shape = arr.shape().to_vec();
    if shape.len() < 3 || shape[3..].iter().any(|&d| d != 1) || shape[..3].contains(&0) {
        return Err(format!(
            "{}: expected a 3-D volume, got shape {shape:?}",
            path.display()
        ));
    }
    let (nx, ny, nz) = (shape[0], shape[1], shape[2]);
    // The reader returns a Fortran-ordered array: its buffer is already x-fastest.
    let hu = if arr.t().is_standard_layout() {
        arr.into_raw_vec_and_offset().0
    } else {
        arr.t().iter().copied().collect()
    };
    let spacing = std::array::from_fn(|i| {
        let s = f64::from(header.pixdim[i + 1]).abs();
        if s.is_finite() && s > 1e-3 {
            s
        } else {
            1.0
        }
    });
    Ok(Volume {
        nx,
        ny,
        nz,
        spacing,
        hu,
        header,
    })
}

fn write_mask(path: &Path, v: &Volume, mask: Vec<u8>) -> Result<(), String> {
    let arr = Array3::from_shape_vec((v.nz, v.ny, v.nx), mask).map_err(|e| e.to_string())?;
    // The writer takes [x, y, z] indexing; the transposed view of our [z, y, x] array.
    WriterOptions::new(path)
        .reference_header(&v.header)
        .write_nifti(&arr.t())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

struct Prediction {
    /// covid, other_pneumonia, normal.
    p: [f64; 3],
    involvement_pct: f64,
    stage: u8,
}

struct Analysis {
    mask: Vec<u8>,
    prediction: Prediction,
}

/// Runs `f(z, slice)` on every axial slice of `data`, on `threads` threads.
fn par_slices<T, R>(
    data: &mut [T],
    plane: usize,
    threads: usize,
    f: impl Fn(usize, &mut [T]) -> R + Sync,
) -> Vec<R>
where
    T: Send,
    R: Send + Default + Clone,
{
    let nz = data.len() / plane;
    let results = Mutex::new(vec![R::default(); nz]);
    let next = AtomicUsize::new(0);
    let chunks: Vec<Mutex<Option<&mut [T]>>> = data
        .chunks_mut(plane)
        .map(|c| Mutex::new(Some(c)))
        .collect();
    std::thread::scope(|s| {
        for _ in 0..threads.min(nz).max(1) {
            s.spawn(|| loop {
                let z = next.fetch_add(1, Ordering::Relaxed);
                if z >= nz {
                    break;
                }
                let slice = chunks[z]
                    .lock()
                    .unwrap()
                    .take()
                    .expect("each slice is taken once");
                let r = f(z, slice);
                results.lock().unwrap()[z] = r;
            });
        }
    });
    results.into_inner().unwrap()
}

/// 4-connected flood fill over pixels where `passable` holds, from every border pixel.
/// Returns the reached pixels.
fn flood_from_border(nx: usize, ny: usize, passable: impl Fn(usize) -> bool) -> Vec<bool> {
    let mut reached = vec![false; nx * ny];
    let mut stack = Vec::new();
    let push = |k: usize, reached: &mut Vec<bool>, stack: &mut Vec<usize>| {
        if !reached[k] && passable(k) {
            reached[k] = true;
            stack.push(k);
        }
    };
    for x in 0..nx {
        push(x, &mut reached, &mut stack);
        push((ny - 1) * nx + x, &mut reached, &mut stack);
    }
    for y in 0..ny {
        push(y * nx, &mut reached, &mut stack);
        push(y * nx + nx - 1, &mut reached, &mut stack);
    }
    while let Some(k) = stack.pop() {
        let (x, y) = (k % nx, k / nx);
        if x > 0 {
            push(k - 1, &mut reached, &mut stack);
        }
        if x + 1 < nx {
            push(k + 1, &mut reached, &mut stack);
        }
        if y > 0 {
            push(k - nx, &mut reached, &mut stack);
        }
        if y + 1 < ny {
            push(k + nx, &mut reached, &mut stack);
        }
    }
    reached
}

/// Number of set pixels in the (2r+1)^2 window around each pixel (outside = unset),
/// by two separable running sums: O(pixels) whatever r.
fn window_count(src: &[bool], nx: usize, ny: usize, r: usize) -> Vec<u32> {
    let mut rows = vec![0u32; nx * ny];
    for y in 0..ny {
        let line = &src[y * nx..(y + 1) * nx];
        let out = &mut rows[y * nx..(y + 1) * nx];
        let mut acc = 0u32;
        acc += line[..r.min(nx)].iter().map(|&b| u32::from(b)).sum::<u32>();
        for x in 0..nx {
            if x + r < nx {
                acc += u32::from(line[x + r]);
            }
            out[x] = acc;
            if x >= r {
                acc -= u32::from(line[x - r]);
            }
        }
    }
    // Column sums, row by row (cache friendly): `acc` holds the window of every column.
    let mut out = vec![0u32; nx * ny];
    let mut acc = vec![0u32; nx];
    for y in 0..r.min(ny) {
        for (a, &v) in acc.iter_mut().zip(&rows[y * nx..(y + 1) * nx]) {
            *a += v;
        }
    }
    for y in 0..ny {
        if y + r < ny {
            for (a, &v) in acc.iter_mut().zip(&rows[(y + r) * nx..(y + r + 1) * nx]) {
                *a += v;
            }
        }
        out[y * nx..(y + 1) * nx].copy_from_slice(&acc);
        if y >= r {
            for (a, &v) in acc.iter_mut().zip(&rows[(y - r) * nx..(y - r + 1) * nx]) {
                *a -= v;
            }
        }
    }
    out
}

fn erode(src: &[bool], nx: usize, ny: usize, r: usize) -> Vec<bool> {
    let full = ((2 * r + 1) * (2 * r + 1)) as u32;
    window_count(src, nx, ny, r)
        .into_iter()
        .map(|c| c == full)
        .collect()
}

fn dilate(src: &[bool], nx: usize, ny: usize, r: usize) -> Vec<bool> {
    window_count(src, nx, ny, r)
        .into_iter()
        .map(|c| c > 0)
        .collect()
}

/// Two-pass 3-4 chamfer distance (in pixels) to the nearest pixel where `inside` is false.
fn chamfer(inside: &[bool], nx: usize, ny: usize) -> Vec<f32> {
    let big = 1e9f32;
    let mut d: Vec<f32> = inside.iter().map(|&i| if i { big } else { 0.0 }).collect();
    for y in 0..ny {
        for x in 0..nx {
            let k = y * nx + x;
            if d[k] == 0.0 {
                continue;
            }
            let mut v = d[k];
            if x > 0 {
                v = v.min(d[k - 1] + 3.0);
            }
            if y > 0 {
                v = v.min(d[k - nx] + 3.0);
                if x > 0 {
                    v = v.min(d[k - nx - 1] + 4.0);
                }
                if x + 1 < nx {
                    v = v.min(d[k - nx + 1] + 4.0);
                }
            }
            d[k] = v;
        }
    }
    for y in (0..ny).rev() {
        for x in (0..nx).rev() {
            let k = y * nx + x;
            let mut v = d[k];
            if x + 1 < nx {
                v = v.min(d[k + 1] + 3.0);
            }
            if y + 1 < ny {
                v = v.min(d[k + nx] + 3.0);
                if x + 1 < nx {
                    v = v.min(d[k + nx + 1] + 4.0);
                }
                if x > 0 {
                    v = v.min(d[k + nx - 1] + 4.0);
                }
            }
            d[k] = v;
        }
    }
    d.iter_mut().for_each(|v| *v /= 3.0);
    d
}

/// Per-slice counts gathered in the last pass.
#[derive(Clone, Default)]
struct Counts {
    lung: u64,
    lesion: u64,
    ggo: u64,
    cons: u64,
    right: u64,
    left: u64,
    peripheral: u64,
}

fn analyse(v: &Volume, threads: usize) -> Analysis {
    let (nx, ny, nz) = (v.nx, v.ny, v.nz);
    let plane = nx * ny;
    let hu = &v.hu;
    let mut flags = vec![0u8; plane * nz];

    // Pass 1, per axial slice: the room is the air connected to the slice border. Doing
    // this in 2-D keeps the lungs closed even where the trachea opens at the top of the
    // volume. Air not connected to the border is lung or airway. Also estimate the body's
    // midline from the left and right edges of every row.
    let clock = std::time::Instant::now();
    let lap = |what: &str| {
        if std::env::var_os("TB_DEBUG").is_some() {
            eprintln!("{what}: {:.3}s", clock.elapsed().as_secs_f64());
        }
    };
    let midlines = par_slices(&mut flags, plane, threads, |z, f| {
        let s = &hu[z * plane..(z + 1) * plane];
        let room = flood_from_border(nx, ny, |k| s[k] < AIR_HU);
        let mut sum = 0.0;
        let mut weight = 0.0;
        for y in 0..ny {
            let mut first = None;
            let mut last = 0;
            for x in 0..nx {
                let k = y * nx + x;
                if !room[k] {
                    f[k] |= BODY;
                    if s[k] < AIR_HU {
                        f[k] |= AIR_IN;
                    }
                    first.get_or_insert(x);
                    last = x;
                }
            }
            if let Some(first) = first {
                let w = (last - first + 1) as f64;
                sum += w * (first + last) as f64 / 2.0;
                weight += w;
            }
        }
        (sum, weight)
    });
    let mut centres: Vec<f64> = midlines
        .iter()
        .filter(|m| m.1 > 0.0)
        .map(|m| m.0 / m.1)
        .collect();
    centres.sort_by(f64::total_cmp);
    let cx = centres
        .get(centres.len() / 2)
        .copied()
        .unwrap_or(nx as f64 / 2.0 - 0.5);

    let px = v.spacing[0].min(v.spacing[1]);
    let tol = (ASYMMETRY_TOLERANCE_MM / px).round().max(1.0) as usize;

    // Lung that stays lung for `tol_z` slices up and down: the reference for seeds must not
    // depend on small differences in height between the left and right diaphragm domes.
    let tol_z = (ASYMMETRY_TOLERANCE_MM / v.spacing[2]).round().max(1.0) as usize;
    let full = (2 * tol_z + 1) as u16;
    let mut count = vec![0u16; plane];
    for z in 0..nz + tol_z {
        if z < nz {
            let f = &flags[z * plane..(z + 1) * plane];
            for (c, &b) in count.iter_mut().zip(f) {
                *c += u16::from(b & AIR_IN != 0);
            }
        }
        // The window [z - 2 tol_z, z] is centred on zc.
        if z >= 2 * tol_z {
            let zc = z - tol_z;
            if zc < nz {
                let f = &mut flags[zc * plane..(zc + 1) * plane];
                for (b, &c) in f.iter_mut().zip(&count) {
                    if c == full {
                        *b |= AIR_Z;
                    }
                }
            }
            let zo = z - 2 * tol_z;
            let f = &flags[zo * plane..(zo + 1) * plane];
            for (c, &b) in count.iter_mut().zip(f) {
                *c -= u16::from(b & AIR_IN != 0);
            }
        }
    }

    lap("pass 1 (room, midline)");
    // Pass 2, per slice: lung mask, ground glass, consolidation candidates.
    par_slices(&mut flags, plane, threads, |z, f| {
        let s = &hu[z * plane..(z + 1) * plane];
        let air: Vec<bool> = f.iter().map(|&b| b & AIR_IN != 0).collect();
        if !air.iter().any(|&a| a) {
            return;
        }
        // Lung = air inside the body plus what it encloses (vessels, enclosed lesions):
        // fill the holes of the air mask.
        let outside = flood_from_border(nx, ny, |k| !air[k]);
        // Ground glass: the median of the aerated 3x3 neighbourhood (vessels and chest wall
        // excluded, and robust to the partial-volume voxels of small vessels) is denser
        // than normal lung.
        let mut ggo = vec![false; plane];
        let zs = z.saturating_sub(1)..(z + 2).min(nz);
        for y in 0..ny {
            for x in 0..nx {
                let k = y * nx + x;
                if !air[k] {
                    continue;
                }
                // The median exceeds the threshold iff more than half of the values do:
                // counting is enough, no sorting.
                let (mut n, mut above) = (0u32, 0u32);
                for zz in zs.clone() {
                    let sz = &hu[zz * plane..(zz + 1) * plane];
                    for yy in y.saturating_sub(1)..(y + 2).min(ny) {
                        for &v in &sz[yy * nx + x.saturating_sub(1)..yy * nx + (x + 2).min(nx)] {
                            // Next to a lung voxel, air is lung air (the chest wall
                            // separates it from the room).
                            if v < AIR_HU {
                                n += 1;
                                above += u32::from(v > GGO_HU);
                            }
                        }
                    }
                }
                ggo[k] = 2 * above > n;
            }
        }
        // Opening removes the one-pixel partial-volume rims along the pleura and around
        // vessels; closing fills the vessels crossing a lesion.
        let ggo = erode(
            &dilate(&dilate(&erode(&ggo, nx, ny, 1), nx, ny, 1), nx, ny, 1),
            nx,
            ny,
            1,
        );
        // Consolidation candidates: soft-tissue density where the mirrored hemithorax is
        // aerated lung (dilated by one pixel so that its vessels do not punch holes).
        let air_d = dilate(&air, nx, ny, 1);
        let mut cand = vec![false; plane];
        for y in 0..ny {
            for x in 0..nx {
                let k = y * nx + x;
                if f[k] & BODY == 0 || air[k] || !(DENSE_LO..=DENSE_HI).contains(&s[k]) {
                    continue;
                }
                let xm = (2.0 * cx - x as f64).round();
                if xm >= 0.0 && (xm as usize) < nx && air_d[y * nx + xm as usize] {
                    cand[k] = true;
                }
            }
        }
        // Partial-volume rims along the pleura and small left/right differences give thin
        // candidate lines: open them away so that the 3-D growth cannot follow them.
        let cand = dilate(&erode(&cand, nx, ny, 1), nx, ny, 1);
        // Seeds: candidates wider than the tolerated anatomical asymmetry, whose mirror is
        // lung also a little above and below.
        let air_z: Vec<bool> = f.iter().map(|&b| b & AIR_Z != 0).collect();
        let air_z = dilate(&air_z, nx, ny, 1);
        let mut seed = erode(&cand, nx, ny, tol);
        for y in 0..ny {
            for x in 0..nx {
                let xm = (2.0 * cx - x as f64).round();
                let k = y * nx + x;
                seed[k] &= xm >= 0.0 && (xm as usize) < nx && air_z[y * nx + xm as usize];
            }
        }
        // Distance to the chest wall: to the outside of the thoracic envelope (each row filled
        // between its outermost lung pixels, so the mediastinum and hila are inside).
        let mut envelope = vec![false; plane];
        for y in 0..ny {
            let row = &outside[y * nx..(y + 1) * nx];
            if let (Some(a), Some(b)) = (row.iter().position(|o| !o), row.iter().rposition(|o| !o))
            {
                envelope[y * nx + a..=y * nx + b].fill(true);
            }
        }
        let wall = chamfer(&envelope, nx, ny);
        for k in 0..plane {
            f[k] &= !BODY;
            if f64::from(wall[k]) * px <= PERIPHERAL_MM {
                f[k] |= PERIPH;
            }
            if !outside[k] {
                f[k] |= LUNG;
            }
            if ggo[k] && !outside[k] && air[k] {
                f[k] |= GGO;
            }
            if cand[k] {
                f[k] |= CAND;
            }
            if seed[k] {
                f[k] |= CONS;
            }
        }
    });

    lap("pass 2 (lung, ground glass, candidates)");
    // Pass 3, in 3-D: consolidation = candidate regions (6-connected) holding a seed.
    let mut stack: Vec<usize> = (0..flags.len()).filter(|&k| flags[k] & CONS != 0).collect();
    while let Some(k) = stack.pop() {
        let (x, y, z) = (k % nx, (k / nx) % ny, k / plane);
        let mut visit = |kk: usize| {
            if flags[kk] & (CAND | CONS) == CAND {
                flags[kk] |= CONS;
                stack.push(kk);
            }
        };
        if x > 0 {
            visit(k - 1);
        }
        if x + 1 < nx {
            visit(k + 1);
        }
        if y > 0 {
            visit(k - nx);
        }
        if y + 1 < ny {
            visit(k + nx);
        }
        if z > 0 {
            visit(k - plane);
        }
        if z + 1 < nz {
            visit(k + plane);
        }
    }

    lap("pass 3 (consolidation growth)");
    // Pass 3b, in 3-D: drop small ground-glass clusters that stay away from the chest wall.
    // Lung vessels crowd around the hila, and their partial-volume voxels look like faint
    // ground glass on coarse grids; COVID-19 opacities start under the pleura.
    let voxel_ml = v.spacing.iter().product::<f64>() / 1000.0;
    let mut seen = vec![false; flags.len()];
    let mut component = Vec::new();
    for start in 0..flags.len() {
        if flags[start] & GGO == 0 || seen[start] {
            continue;
        }
        seen[start] = true;
        component.clear();
        component.push(start);
        let mut i = 0;
        while i < component.len() {
            let k = component[i];
            i += 1;
            let (x, y, z) = (k % nx, (k / nx) % ny, k / plane);
            let mut visit = |kk: usize| {
                if flags[kk] & GGO != 0 && !seen[kk] {
                    seen[kk] = true;
                    component.push(kk);
                }
            };
            if x > 0 {
                visit(k - 1);
            }
            if x + 1 < nx {
                visit(k + 1);
            }
            if y > 0 {
                visit(k - nx);
            }
            if y + 1 < ny {
                visit(k + nx);
            }
            if z > 0 {
                visit(k - plane);
            }
            if z + 1 < nz {
                visit(k + plane);
            }
        }
        let peripheral = component
            .iter()
            .filter(|&&k| flags[k] & PERIPH != 0)
            .count();
        let central = (peripheral as f64) < 0.5 * component.len() as f64;
        if central && component.len() as f64 * voxel_ml < MIN_CENTRAL_GGO_ML {
            for &k in &component {
                flags[k] &= !GGO;
            }
        }
    }
    drop(seen);

    lap("pass 3b (central clusters)");
    // Pass 4, per slice: lesion = ground glass + consolidation, closed to take in air
    // bronchograms; counts for the features.
    let counts = par_slices(&mut flags, plane, threads, |_, f| {
        let lung: Vec<bool> = f.iter().map(|&b| b & (LUNG | CONS) != 0).collect();
        let raw: Vec<bool> = f.iter().map(|&b| b & (GGO | CONS) != 0).collect();
        let mut c = Counts::default();
        if !raw.iter().any(|&r| r) {
            c.lung = lung.iter().filter(|&&l| l).count() as u64;
            return c;
        }
        let closed = erode(&dilate(&raw, nx, ny, 1), nx, ny, 1);
        for k in 0..plane {
            if !lung[k] {
                continue;
            }
            c.lung += 1;
            if !closed[k] {
                continue;
            }
            f[k] |= LESION;
            c.lesion += 1;
            c.ggo += u64::from(f[k] & GGO != 0);
            c.cons += u64::from(f[k] & CONS != 0);
            if ((k % nx) as f64) < cx {
                c.right += 1;
            } else {
                c.left += 1;
            }
            if f[k] & PERIPH != 0 {
                c.peripheral += 1;
            }
        }
        c
    });
    lap("pass 4 (lesion, counts)");
    let t = counts.iter().fold(Counts::default(), |a, c| Counts {
        lung: a.lung + c.lung,
        lesion: a.lesion + c.lesion,
        ggo: a.ggo + c.ggo,
        cons: a.cons + c.cons,
        right: a.right + c.right,
        left: a.left + c.left,
        peripheral: a.peripheral + c.peripheral,
    });

    let mut involvement = if t.lung == 0 {
        0.0
    } else {
        100.0 * t.lesion as f64 / t.lung as f64
    };
    let lesion_found = involvement >= MIN_INVOLVEMENT_PCT;
    if !lesion_found {
        involvement = 0.0;
    }
    let mask: Vec<u8> = flags
        .into_iter()
        .map(|b| u8::from(lesion_found && b & LESION != 0))
        .collect();

    if std::env::var_os("TB_DEBUG").is_some() {
        eprintln!(
            "lung {} lesion {} ggo {} cons {} right {} left {} peripheral {}",
            t.lung, t.lesion, t.ggo, t.cons, t.right, t.left, t.peripheral
        );
    }
    let prediction = classify(&t, involvement);
    Analysis { mask, prediction }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Smooth class probabilities from the lesion pattern.
fn classify(t: &Counts, involvement: f64) -> Prediction {
    // Abnormal when there is more than about half a percent of lesion, on a log scale.
    let p_abnormal = sigmoid(3.0 * ((involvement + 0.05).ln() - 0.6f64.ln()));
    let lesion = t.lesion.max(1) as f64;
    // Typical COVID-19: ground glass (not consolidation), both lungs, along the pleura.
    // Typical bacterial pneumonia: dense, one lung (one lobe).
    let ggo_frac = t.ggo as f64 / (t.ggo + t.cons).max(1) as f64;
    let bilateral = t.right.min(t.left) as f64 / t.right.max(t.left).max(1) as f64;
    let peripheral = t.peripheral as f64 / lesion;
    let score = 4.0 * (ggo_frac - 0.5) + 4.0 * (bilateral - 0.2) + 1.5 * (peripheral - 0.5);
    let p_covid_if_abnormal = sigmoid(score);
    let p_covid = round6(p_abnormal * p_covid_if_abnormal);
    let p_other = round6(p_abnormal * (1.0 - p_covid_if_abnormal));
    let p_normal = round6((1.0 - p_covid - p_other).max(0.0));
    let involvement_pct = (involvement * 1e4).round() / 1e4;
    Prediction {
        p: [p_covid, p_other, p_normal],
        involvement_pct,
        stage: stage_from_involvement(involvement_pct),
    }
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// The challenge's severity bins: 0 -> 0 %; 1 -> (0, 5]; 2 -> (5, 25]; 3 -> (25, 50]; 4 -> > 50.
fn stage_from_involvement(pct: f64) -> u8 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_ops() {
        let (nx, ny) = (7, 5);
        let mut m = vec![false; nx * ny];
        for y in 1..4 {
            for x in 1..4 {
                m[y * nx + x] = true;
            }
        }
        let e = erode(&m, nx, ny, 1);
        assert_eq!(e.iter().filter(|&&b| b).count(), 1);
        assert!(e[2 * nx + 2]);
        let d = dilate(&e, nx, ny, 1);
        assert_eq!(d, m);
    }

    #[test]
    fn flood_and_chamfer() {
        let (nx, ny) = (5, 5);
        // A ring of walls around the centre pixel.
        let wall = |k: usize| {
            let (x, y) = (k % nx, k / nx);
            (1..=3).contains(&x) && (1..=3).contains(&y) && !(x == 2 && y == 2)
        };
        let reached = flood_from_border(nx, ny, |k| !wall(k));
        assert!(!reached[2 * nx + 2]);
        assert!(reached[0]);
        let inside: Vec<bool> = (0..nx * ny)
            .map(|k| k % nx > 0 && k % nx < 4 && k / nx > 0 && k / nx < 4)
            .collect();
        let d = chamfer(&inside, nx, ny);
        assert_eq!(d[2 * nx + 2], 2.0);
        assert_eq!(d[nx + 1], 1.0);
    }

    #[test]
    fn probabilities_are_valid() {
        for (inv, ggo, cons, r, l) in [
            (0.0, 0, 0, 0, 0),
            (30.0, 900, 100, 500, 500),
            (20.0, 10, 990, 1000, 0),
        ] {
            let c = Counts {
                lung: 10_000,
                lesion: ggo + cons,
                ggo,
                cons,
                right: r,
                left: l,
                peripheral: (ggo + cons) / 2,
            };
            let p = classify(&c, inv);
            assert!(p.p.iter().all(|&x| (0.0..=1.0).contains(&x)));
            assert!((p.p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
        let normal = classify(&Counts::default(), 0.0);
        assert!(normal.p[2] > 0.9 && normal.stage == 0);
    }

    #[test]
    fn csv_tolerance() {
        let dir = std::env::temp_dir().join(format!("tb-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("cases.csv");
        std::fs::write(&p, "\u{feff}site, case_id \r\nA,c1\r\nB,\"c2\"\r\n\r\n").unwrap();
        assert_eq!(read_case_ids(&p).unwrap(), vec!["c1", "c2"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
