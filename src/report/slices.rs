//! What a segmentation looks like: for each submission, its worst, median and best case by the
//! task's primary metric, as an axial slice through the lesion in a lung window, the truth and
//! the prediction outlined in two colours, beside the truth alone.
//!
//! The pictures are drawn from the round's folder (the predicted masks) and the challenge it
//! names in its receipt (the image and the truth), so `podium report` draws them anew as long
//! as the challenge is where the round found it. They are small palette PNGs (at most
//! [`SIDE_PX`] a side, 256 colours) so that the report stays one small, self-contained file.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;
use std::rc::Rc;

use plotters::prelude::*;

use super::html::escape;
use crate::challenge::{Challenge, PhasePaths, TaskSpec};
use crate::io::nifti::{self, AxialSlice, Geometry, SparseLabels};
use crate::results::{Receipt, RoundScores};

/// The longer side of a slice picture, in pixels, whatever the scan's matrix: a 512 x 512 CT
/// is averaged down, a 64 x 64 one drawn up.
pub const SIDE_PX: u32 = 256;
/// The strip under the slice that holds the legend.
const LEGEND_PX: u32 = 18;
/// The lung window, in Hounsfield units.
const WINDOW_LEVEL: f32 = -600.0;
const WINDOW_WIDTH: f32 = 1500.0;

/// Palette entries 0..GRAYS are the gray ramp; the outline colours follow.
const GRAYS: u8 = 252;
const TRUTH: u8 = GRAYS;
const PREDICTION: u8 = GRAYS + 1;
const BOTH: u8 = GRAYS + 2;
/// Cyan and orange stay apart for the common colour-vision deficiencies and against any gray.
const OUTLINE_RGB: [(u8, [u8; 3], &str); 3] = [
    (TRUTH, [0, 215, 255], "truth"),
    (PREDICTION, [255, 140, 0], "prediction"),
    (BOTH, [255, 255, 255], "both"),
];

/// The metrics of segmentation tasks alone: without the challenge, they tell which tasks of a
/// round's results are segmentations.
const SEGMENTATION_METRICS: [&str; 6] = ["dice", "iou", "hd95", "nsd", "assd", "volume_error_ml"];

/// The slices of a round, or why there are none.
pub enum Gallery {
    /// The round has no segmentation task.
    Absent,
    /// The team view of a hidden phase: the truth outlined would be the hidden truth.
    Withheld,
    /// The challenge, its image or its truth could not be read: why, and what to do.
    Unavailable(String),
    Tasks(Vec<TaskSlices>),
}

pub struct TaskSlices {
    pub task: String,
    /// The per-case values the cases are chosen by (the primary metric, or its mean over labels).
    pub metric: String,
    pub submissions: Vec<SubmissionSlices>,
}

pub struct SubmissionSlices {
    pub submission: String,
    /// Worst first; a case that is both the median and the best (two cases) is shown once.
    pub cases: Vec<ShownCase>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Worst,
    Median,
    Best,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Worst => "worst",
            Role::Median => "median",
            Role::Best => "best",
        }
    }
}

pub struct ShownCase {
    pub roles: Vec<Role>,
    pub case_id: String,
    pub value: f64,
    /// The pictures, or why there are none (the image or the truth unreadable).
    pub pictures: Result<Pictures, String>,
}

/// Which mask chose the slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Through {
    /// The slice with the largest truth lesion area.
    Truth,
    /// The truth is empty: the slice with the largest predicted area.
    Prediction,
    /// Both masks are empty: the middle slice.
    Middle,
}

pub struct Pictures {
    pub z: usize,
    pub slices: usize,
    pub through: Through,
    /// The truth and the prediction outlined; `Err` says why there is no prediction to draw.
    pub overlay: Result<Png, String>,
    pub truth: Png,
}

pub struct Png {
    pub width: u32,
    pub height: u32,
    pub bytes: Vec<u8>,
}

/// Draws the slices of every segmentation task of the round in `run_dir`. `restricted`: the
/// team view of a hidden phase, which gets none and reads nothing.
pub fn gather(
    run_dir: &Path,
    scores: &RoundScores,
    receipt: &Receipt,
    restricted: bool,
) -> Gallery {
    let segmentation_results = scores.case_scores.iter().any(|c| {
        SEGMENTATION_METRICS
            .iter()
            .any(|m| c.metric == *m || c.metric.starts_with(&format!("{m}_")))
    });
    if !segmentation_results {
        return Gallery::Absent;
    }
    if restricted {
        return Gallery::Withheld;
    }
    let challenge = match Challenge::load(&receipt.challenge_dir) {
        Ok(c) => c,
        Err(e) => {
            return Gallery::Unavailable(format!(
                "The slices are drawn from the challenge's images and truth, which could not be read ({e}). Run `podium report` where the challenge folder {} is, as the round saw it.",
                receipt.challenge_dir.display()
            ))
        }
    };
    let phase = match challenge.phase_paths(&receipt.phase, Some(&receipt.truth_dir)) {
        Ok(p) => p,
        Err(e) => return Gallery::Unavailable(format!("The slices cannot be drawn: {e}")),
    };
    let mut reader = CaseReader::new(&phase);
    let mut tasks = Vec::new();
    for task in &challenge.tasks {
        let TaskSpec::Segmentation {
            prediction_dir,
            truth_dir,
            labels,
            ..
        } = &task.spec
        else {
            continue;
        };
        let Some((metric, values)) =
            super::html::primary_per_case(scores, &task.name, task.primary.name())
        else {
            continue;
        };
        let mut by_submission: BTreeMap<&str, Vec<(&str, f64)>> = BTreeMap::new();
        for ((submission, case), v) in values {
            by_submission.entry(submission).or_default().push((case, v));
        }
        let mut submissions = Vec::new();
        for info in &scores.submissions {
            let Some(cases) = by_submission.get_mut(info.name.as_str()) else {
                continue;
            };
            let masks = run_dir
                .join("predictions")
                .join(&info.name)
                .join(prediction_dir);
            let shown = pick(cases, task.primary.higher_is_better())
                .into_iter()
                .map(|(roles, case_id, value)| ShownCase {
                    roles,
                    case_id: case_id.to_string(),
                    value,
                    pictures: reader.pictures(
                        case_id,
                        truth_dir,
                        labels,
                        &masks.join(format!("{case_id}.nii.gz")),
                    ),
                })
                .collect();
            submissions.push(SubmissionSlices {
                submission: info.name.clone(),
                cases: shown,
            });
        }
        tasks.push(TaskSlices {
            task: task.name.clone(),
            metric,
            submissions,
        });
    }
    Gallery::Tasks(tasks)
}

/// The worst, median (the lower one of an even count) and best case, worst first, each case
/// once with every role it plays. Ties are broken by case id, so the choice is reproducible.
fn pick<'a>(
    cases: &mut [(&'a str, f64)],
    higher_is_better: bool,
) -> Vec<(Vec<Role>, &'a str, f64)> {
    cases.sort_by(|a, b| {
        let by_value = if higher_is_better {
            a.1.total_cmp(&b.1)
        } else {
            b.1.total_cmp(&a.1)
        };
        by_value.then_with(|| a.0.cmp(b.0))
    });
    let n = cases.len();
    let mut shown: Vec<(Vec<Role>, &str, f64)> = Vec::new();
    if n == 0 {
        return shown;
    }
    for (role, at) in [
        (Role::Worst, 0),
        (Role::Median, (n - 1) / 2),
        (Role::Best, n - 1),
    ] {
        let (case, value) = cases[at];
        match shown.last_mut() {
            Some(last) if last.1 == case => last.0.push(role),
            _ => shown.push((vec![role], case, value)),
        }
    }
    shown
}

/// What one case's pictures share across submissions, read once.
struct CaseTruth {
    geometry: Geometry,
    truth: SparseLabels,
}

struct CaseReader<'a> {
    phase: &'a PhasePaths,
    truths: BTreeMap<(String, String), Rc<Result<CaseTruth, String>>>,
    images: BTreeMap<(String, usize), Rc<Result<AxialSlice, String>>>,
}

impl<'a> CaseReader<'a> {
    fn new(phase: &'a PhasePaths) -> Self {
        CaseReader {
            phase,
            truths: BTreeMap::new(),
            images: BTreeMap::new(),
        }
    }

    fn truth(&mut self, case_id: &str, truth_dir: &str) -> Rc<Result<CaseTruth, String>> {
        let phase = self.phase;
        self.truths
            .entry((case_id.to_string(), truth_dir.to_string()))
            .or_insert_with(|| {
                Rc::new((|| {
                    let geometry =
                        nifti::read_geometry(&phase.image(case_id)).map_err(|e| e.to_string())?;
                    let truth = nifti::read_sparse_labels_expecting(
                        &phase.truth_mask(truth_dir, case_id),
                        geometry.shape,
                    )
                    .map_err(|e| e.to_string())?;
                    Ok(CaseTruth { geometry, truth })
                })())
            })
            .clone()
    }

    fn image(&mut self, case_id: &str, z: usize) -> Rc<Result<AxialSlice, String>> {
        let phase = self.phase;
        self.images
            .entry((case_id.to_string(), z))
            .or_insert_with(|| {
                Rc::new(
                    nifti::read_axial_slice(&phase.image(case_id), z).map_err(|e| e.to_string()),
                )
            })
            .clone()
    }

    fn pictures(
        &mut self,
        case_id: &str,
        truth_dir: &str,
        labels: &[u8],
        prediction: &Path,
    ) -> Result<Pictures, String> {
        let case = self.truth(case_id, truth_dir);
        let case = case.as_ref().as_ref().map_err(Clone::clone)?;
        let predicted = if prediction.is_file() {
            nifti::read_sparse_labels_expecting(prediction, case.geometry.shape)
                .map_err(|e| format!("the prediction mask cannot be drawn: {e}"))
        } else {
            // `podium score` rounds keep no predictions in their folder, so this is not
            // always a missing prediction: say where podium looked.
            Err(format!(
                "no prediction mask at {} in the round's folder",
                prediction
                    .components()
                    .rev()
                    .take(4)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<std::path::PathBuf>()
                    .display()
            ))
        };
        let slices = case.geometry.shape[2];
        let (z, through) = match (
            case.truth.largest_slice(labels),
            predicted
                .as_ref()
                .ok()
                .and_then(|p| p.largest_slice(labels)),
        ) {
            (Some((z, _)), _) => (z, Through::Truth),
            (None, Some((z, _))) => (z, Through::Prediction),
            (None, None) => (slices / 2, Through::Middle),
        };
        let image = self.image(case_id, z);
        let image = image.as_ref().as_ref().map_err(Clone::clone)?;
        let truth_mask = case.truth.slice_mask(z, labels);
        let overlay =
            predicted.and_then(|p| draw(image, &truth_mask, Some(&p.slice_mask(z, labels))));
        Ok(Pictures {
            z,
            slices,
            through,
            overlay,
            truth: draw(image, &truth_mask, None)?,
        })
    }
}

/// The source pixels `[start, end)` that output pixel `i` of `out` covers along an axis of
/// `n` pixels: several when drawing down, one when drawing up.
fn covered(i: usize, out: usize, n: usize) -> std::ops::Range<usize> {
    let start = i * n / out;
    let end = ((i + 1) * n).div_ceil(out).clamp(start + 1, n);
    start..end
}

/// The pixel size of a slice picture: the longer physical side gets [`SIDE_PX`], so that the
/// pixel spacing keeps its aspect ratio.
fn picture_size(geometry: &Geometry) -> (usize, usize) {
    let width_mm = geometry.shape[0] as f64 * geometry.spacing_mm[0];
    let height_mm = geometry.shape[1] as f64 * geometry.spacing_mm[1];
    let scale = SIDE_PX as f64 / width_mm.max(height_mm);
    let side = |mm: f64| ((mm * scale).round() as usize).clamp(1, SIDE_PX as usize);
    (side(width_mm), side(height_mm))
}

fn gray_of(hounsfield: f32) -> u8 {
    let low = WINDOW_LEVEL - WINDOW_WIDTH / 2.0;
    let t = ((hounsfield - low) / WINDOW_WIDTH).clamp(0.0, 1.0);
    if t.is_nan() {
        0
    } else {
        (t * (GRAYS - 1) as f32).round() as u8
    }
}

/// The slice in the lung window with the outlines of `truth` and, when given, `prediction`
/// (both `nx * ny`, x fastest), the legend under it, as a palette PNG.
///
/// The patient's front is at the top, as radiologists read an axial slice: rows are drawn
/// from the highest y down when the header puts the front towards high y (RAS), else from
/// the lowest.
fn draw(image: &AxialSlice, truth: &[bool], prediction: Option<&[bool]>) -> Result<Png, String> {
    let [nx, ny, _] = image.geometry.shape;
    let (w, h) = picture_size(&image.geometry);
    let columns: Vec<_> = (0..w).map(|u| covered(u, w, nx)).collect();
    let mut gray = vec![0u8; w * h];
    let mut in_truth = vec![false; w * h];
    let mut in_prediction = vec![false; w * h];
    for v in 0..h {
        // Display row v covers source rows counted from the top: from the front of the patient.
        let rows = covered(v, h, ny);
        let front = image.anterior_towards_high_y;
        for (u, cols) in columns.iter().enumerate() {
            let (mut sum, mut count) = (0.0f64, 0usize);
            let (mut t, mut p) = (false, false);
            for r in rows.clone() {
                let y = if front { ny - 1 - r } else { r };
                for x in cols.clone() {
                    let at = y * nx + x;
                    sum += image.values[at] as f64;
                    count += 1;
                    // Any voxel of a lesion marks the pixel, so a small lesion survives
                    // drawing a large matrix down.
                    t |= truth[at];
                    p |= prediction.is_some_and(|m| m[at]);
                }
            }
            gray[v * w + u] = gray_of((sum / count as f64) as f32);
            in_truth[v * w + u] = t;
            in_prediction[v * w + u] = p;
        }
    }
    let edge = |mask: &[bool], u: usize, v: usize| {
        mask[v * w + u]
            && (u == 0
                || v == 0
                || u + 1 == w
                || v + 1 == h
                || !mask[v * w + u - 1]
                || !mask[v * w + u + 1]
                || !mask[(v - 1) * w + u]
                || !mask[(v + 1) * w + u])
    };
    let mut pixels = Vec::with_capacity(w * (h + LEGEND_PX as usize));
    for v in 0..h {
        for u in 0..w {
            pixels.push(match (edge(&in_truth, u, v), edge(&in_prediction, u, v)) {
                (true, true) => BOTH,
                (true, false) => TRUTH,
                (false, true) => PREDICTION,
                (false, false) => gray[v * w + u],
            });
        }
    }
    let entries: &[(u8, [u8; 3], &str)] = if prediction.is_some() {
        &OUTLINE_RGB
    } else {
        &OUTLINE_RGB[..1]
    };
    pixels.extend(legend(w as u32, entries)?);
    let height = h as u32 + LEGEND_PX;
    Ok(Png {
        width: w as u32,
        height,
        bytes: encode(w as u32, height, &pixels)?,
    })
}

/// The legend strip: a swatch and a name per outline colour, white on black, as palette
/// indices (the text's anti-aliasing falls on the gray ramp).
fn legend(width: u32, entries: &[(u8, [u8; 3], &str)]) -> Result<Vec<u8>, String> {
    super::plots::ensure_font()?;
    let drawn = |e: &dyn std::fmt::Display| format!("drawing the legend failed: {e}");
    let mut rgb = vec![0u8; (width * LEGEND_PX * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, LEGEND_PX)).into_drawing_area();
        let font = (super::plots::FONT, 12).into_font().color(&WHITE);
        let mut x = 4i32;
        for (_, color, name) in entries {
            let [r, g, b] = *color;
            root.draw(&Rectangle::new(
                [(x, 4), (x + 10, 14)],
                RGBColor(r, g, b).filled(),
            ))
            .map_err(|e| drawn(&e))?;
            root.draw(&Text::new(*name, (x + 14, 3), font.clone()))
                .map_err(|e| drawn(&e))?;
            let (text_width, _) = root
                .estimate_text_size(name, &font)
                .map_err(|e| drawn(&e))?;
            x += 14 + text_width as i32 + 12;
        }
        root.present().map_err(|e| drawn(&e))?;
    }
    Ok(rgb
        .chunks_exact(3)
        .map(|px| {
            entries
                .iter()
                .find(|(_, color, _)| color == px)
                .map_or_else(
                    || {
                        let luma =
                            (px[0] as u32 * 299 + px[1] as u32 * 587 + px[2] as u32 * 114) / 1000;
                        ((luma * (GRAYS as u32 - 1) + 127) / 255) as u8
                    },
                    |(index, _, _)| *index,
                )
        })
        .collect())
}

/// An 8-bit palette PNG: the gray ramp, then the outline colours.
fn encode(width: u32, height: u32, pixels: &[u8]) -> Result<Vec<u8>, String> {
    let mut palette = Vec::with_capacity(3 * (GRAYS as usize + OUTLINE_RGB.len()));
    for i in 0..GRAYS as u32 {
        let g = ((i * 255 + (GRAYS as u32 - 1) / 2) / (GRAYS as u32 - 1)) as u8;
        palette.extend([g, g, g]);
    }
    for (_, rgb, _) in OUTLINE_RGB {
        palette.extend(rgb);
    }
    let mut out = Vec::new();
    {
        let failed = |e: png::EncodingError| format!("encoding a slice as PNG failed: {e}");
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Indexed);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_palette(palette);
        encoder.set_compression(png::Compression::High);
        let mut writer = encoder.write_header().map_err(failed)?;
        writer.write_image_data(pixels).map_err(failed)?;
    }
    Ok(out)
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn img(html: &mut String, png: &Png, alt: &str) {
    let _ = write!(
        html,
        "<img width=\"{}\" height=\"{}\" alt=\"{}\" src=\"data:image/png;base64,{}\">",
        png.width,
        png.height,
        escape(alt),
        base64(&png.bytes)
    );
}

fn roles(case: &ShownCase) -> String {
    let names: Vec<&str> = case.roles.iter().map(|r| r.as_str()).collect();
    names.join(" and ")
}

/// The "Segmentation slices" section; nothing for a round without a segmentation task.
pub fn section(html: &mut String, gallery: &Gallery) {
    let tasks = match gallery {
        Gallery::Absent => return,
        Gallery::Withheld => {
            html.push_str("<h2 id=\"slices\">Segmentation slices</h2>\n<p class=\"muted\">Not shown in the team view of a hidden phase: the truth outlined on a slice would give it away.</p>\n");
            return;
        }
        Gallery::Unavailable(why) => {
            let _ = writeln!(
                html,
                "<h2 id=\"slices\">Segmentation slices</h2>\n<p class=\"warn\">{}</p>",
                escape(why)
            );
            return;
        }
        Gallery::Tasks(tasks) => tasks,
    };
    let _ = writeln!(
        html,
        "<h2 id=\"slices\">Segmentation slices</h2>\n<p class=\"muted\">Each submission's worst, median and best case by the task's primary metric: an axial slice through the largest truth lesion area (through the prediction's when the truth is empty), in a lung window (W {WINDOW_WIDTH}, L {WINDOW_LEVEL}), the patient's front at the top as the image's header orients it. Left, the truth and the prediction outlined; right, the truth alone. Drawn at most {SIDE_PX} pixels a side, with the scan's pixel spacing.</p>"
    );
    for task in tasks {
        let _ = writeln!(
            html,
            "<h3>{}: by {}</h3>",
            escape(&task.task),
            escape(&task.metric)
        );
        for submission in &task.submissions {
            let _ = write!(
                html,
                "<h4>{}</h4><div class=\"figures\">",
                escape(&submission.submission)
            );
            for case in &submission.cases {
                let what = format!(
                    "{}: {}, {} {:.3}",
                    roles(case),
                    case.case_id,
                    task.metric,
                    case.value
                );
                html.push_str("<figure class=\"plot slice\">");
                let caption = match &case.pictures {
                    Err(why) => format!("{what}. No picture: {why}"),
                    Ok(p) => {
                        match &p.overlay {
                            Ok(png) => img(
                                html,
                                png,
                                &format!("{}, {what}: truth and prediction", submission.submission),
                            ),
                            Err(why) => {
                                let _ = write!(html, "<p class=\"warn\">{}</p>", escape(why));
                            }
                        }
                        img(html, &p.truth, &format!("{what}: truth alone"));
                        let through = match p.through {
                            Through::Truth => "the largest truth lesion area",
                            Through::Prediction => "the truth is empty: the largest predicted area",
                            Through::Middle => "both masks are empty: the middle slice",
                        };
                        format!("{what}; slice z = {} of {} ({through})", p.z, p.slices)
                    }
                };
                let _ = write!(
                    html,
                    "<figcaption>{}</figcaption></figure>",
                    escape(&caption)
                );
            }
            html.push_str("</div>\n");
        }
    }
}

/// Every picture of the gallery as `(file name, PNG)`, for `podium report --plots`:
/// `<task>-slice-<submission>-<role>-<case>.png` with the outlines of both masks, and
/// `…-truth.png` with the truth alone.
pub fn png_files(gallery: &Gallery) -> Vec<(String, &[u8])> {
    let Gallery::Tasks(tasks) = gallery else {
        return Vec::new();
    };
    let slug = super::figures::slug;
    let mut files = Vec::new();
    for task in tasks {
        for submission in &task.submissions {
            for case in &submission.cases {
                let Ok(pictures) = &case.pictures else {
                    continue;
                };
                let roles: Vec<&str> = case.roles.iter().map(|r| r.as_str()).collect();
                let stem = format!(
                    "{}-slice-{}-{}-{}",
                    slug(&task.task),
                    slug(&submission.submission),
                    roles.join("-"),
                    slug(&case.case_id)
                );
                if let Ok(overlay) = &pictures.overlay {
                    files.push((format!("{stem}.png"), overlay.bytes.as_slice()));
                }
                files.push((format!("{stem}-truth.png"), pictures.truth.bytes.as_slice()));
            }
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain}");
        }
    }

    #[test]
    fn worst_median_and_best_follow_the_metric_direction_and_merge_when_cases_are_few() {
        let mut cases = vec![("c", 0.9), ("a", 0.2), ("d", 0.5), ("b", 0.7)];
        let higher = pick(&mut cases, true);
        let names: Vec<(&str, Vec<Role>)> =
            higher.iter().map(|(r, c, _)| (*c, r.clone())).collect();
        assert_eq!(
            names,
            [
                ("a", vec![Role::Worst]),
                ("d", vec![Role::Median]),
                ("c", vec![Role::Best])
            ]
        );
        // A distance: the largest value is the worst.
        let lower = pick(&mut cases, false);
        assert_eq!((lower[0].1, lower[2].1), ("c", "a"));

        let mut two = vec![("x", 0.1), ("y", 0.3)];
        let merged = pick(&mut two, true);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].0, [Role::Worst, Role::Median]);
        assert_eq!(merged[1].0, [Role::Best]);
        assert!(pick(&mut [], true).is_empty());
    }

    #[test]
    fn pictures_keep_the_pixel_spacing_and_draw_a_large_matrix_down() {
        let ct = Geometry {
            shape: [512, 512, 300],
            spacing_mm: [0.7, 0.7, 1.5],
        };
        assert_eq!(picture_size(&ct), (256, 256));
        let anisotropic = Geometry {
            shape: [100, 50, 10],
            spacing_mm: [1.0, 4.0, 1.0],
        };
        // 100 mm wide, 200 mm high.
        assert_eq!(picture_size(&anisotropic), (128, 256));
        // Every source pixel is covered, drawing down or up.
        for (out, n) in [(256, 512), (256, 64), (128, 100), (7, 3)] {
            let mut seen = vec![false; n];
            for i in 0..out {
                let r = covered(i, out, n);
                assert!(!r.is_empty() && r.end <= n, "{i} of {out}: {r:?}");
                seen[r].iter_mut().for_each(|s| *s = true);
            }
            assert!(seen.iter().all(|&s| s), "{out} of {n}");
        }
    }

    /// A slice of `nx * ny` at -1000 HU (air, black in the window) with a square of soft
    /// tissue; the truth is that square, the prediction the square shifted right.
    fn phantom(nx: usize, ny: usize) -> (AxialSlice, Vec<bool>, Vec<bool>) {
        let square = |x: usize, y: usize, dx: usize| {
            (nx / 4 + dx..nx / 2 + dx).contains(&x) && (ny / 4..ny / 2).contains(&y)
        };
        let mut values = Vec::new();
        let (mut truth, mut prediction) = (Vec::new(), Vec::new());
        for y in 0..ny {
            for x in 0..nx {
                values.push(if square(x, y, 0) { 40.0 } else { -1000.0 });
                truth.push(square(x, y, 0));
                prediction.push(square(x, y, nx / 8));
            }
        }
        let image = AxialSlice {
            geometry: Geometry {
                shape: [nx, ny, 1],
                spacing_mm: [0.7, 0.7, 1.5],
            },
            z: 0,
            values,
            anterior_towards_high_y: true,
        };
        (image, truth, prediction)
    }

    /// Decodes a palette PNG back into its indices.
    fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let info = reader.info();
        assert_eq!(info.color_type, png::ColorType::Indexed);
        let (w, h) = (info.width, info.height);
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut buf).unwrap();
        (w, h, buf)
    }

    #[test]
    fn a_slice_is_drawn_in_the_lung_window_with_both_outlines_and_a_legend() {
        let (image, truth, prediction) = phantom(512, 512);
        let png = draw(&image, &truth, Some(&prediction)).unwrap();
        let (w, h, pixels) = decode_png(&png.bytes);
        assert_eq!((w, h), (SIDE_PX, SIDE_PX + LEGEND_PX));
        let count = |index: u8| pixels.iter().filter(|&&p| p == index).count();
        // Both outlines are drawn, and where they run together, in the third colour.
        assert!(count(TRUTH) > 0 && count(PREDICTION) > 0 && count(BOTH) > 0);
        // Air and soft tissue at their place in the lung window.
        // The square, x in [nx/4, nx/2) and y in [ny/4, ny/2), is drawn in columns
        // [w/4, w/2) and, the front (high y) on top, rows [h/2, 3h/4).
        let inside = pixels[(5 * SIDE_PX as usize / 8) * w as usize + 5 * w as usize / 16];
        assert_eq!(pixels[w as usize + 1], gray_of(-1000.0));
        assert_eq!(inside, gray_of(40.0));
        // The window spans L - W/2 to L + W/2: -1350 HU is black, 150 HU white.
        assert_eq!((gray_of(-1350.0), gray_of(150.0)), (0, GRAYS - 1));
        assert!(gray_of(-1000.0) < gray_of(40.0));
        // The square lies in the upper half of the array (y < ny / 2), so in the lower half of
        // the picture, the front of the patient (high y) on top.
        let row_of_first_truth = pixels.iter().position(|&p| p == TRUTH).unwrap() / w as usize;
        assert!(
            row_of_first_truth >= SIDE_PX as usize / 2,
            "{row_of_first_truth}"
        );
        // The legend strip is drawn: its swatches and some text.
        let legend = &pixels[(SIDE_PX * w) as usize..];
        for index in [TRUTH, PREDICTION, BOTH] {
            assert!(legend.contains(&index), "{index}");
        }
        assert!(legend.iter().any(|&p| p > 0 && p < GRAYS), "text");

        // Stored front to back, the same square is drawn in the upper half.
        let lps = AxialSlice {
            anterior_towards_high_y: false,
            ..image.clone()
        };
        let (_, _, flipped) = decode_png(&draw(&lps, &truth, None).unwrap().bytes);
        let first = flipped.iter().position(|&p| p == TRUTH).unwrap() / w as usize;
        assert!(first < SIDE_PX as usize / 2, "{first}");

        let alone = draw(&image, &truth, None).unwrap();
        let (_, _, pixels) = decode_png(&alone.bytes);
        assert!(
            pixels.contains(&TRUTH) && !pixels.contains(&PREDICTION) && !pixels.contains(&BOTH)
        );
    }

    #[test]
    fn a_one_voxel_lesion_survives_drawing_a_large_matrix_down() {
        let (mut image, _, _) = phantom(512, 512);
        image.values.iter_mut().for_each(|v| *v = -1000.0);
        let mut truth = vec![false; 512 * 512];
        truth[300 * 512 + 301] = true;
        let png = draw(&image, &truth, None).unwrap();
        let (_, _, pixels) = decode_png(&png.bytes);
        assert!(pixels[..(SIDE_PX * SIDE_PX) as usize].contains(&TRUTH));
    }
}
