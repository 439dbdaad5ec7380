//! The report's charts, drawn with plotters. A [`Figure`] holds its own data, so the same chart
//! is drawn as SVG text to inline in `report.html` and as a PNG for slides (`--plots DIR`).
//! Labels, team names included, are SVG `<text>` that plotters escapes; control and bidi
//! characters become visible escapes ([`crate::text::shown_lines`]).
//!
//! Text is laid out with DejaVu Sans, bundled in the binary, so that a PNG looks the same on
//! every machine and no font is looked up on the host.

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;

type Plane<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(120, 120, 120),
    RGBColor(0, 0, 0),
];

const GRID: RGBColor = RGBColor(200, 200, 200);
pub(super) const FONT: &str = "sans-serif";

/// The colour of the i-th submission, the same in every chart.
pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Beyond the palette's eight colours, the line style and the marker tell submissions apart:
/// solid lines and discs, then dashed lines and triangles, then dotted lines and crosses.
fn variant(i: usize) -> usize {
    (i / PALETTE.len()) % 3
}

/// Up to this many series the legend sits inside the plot; beyond, in a column on its right.
pub const LEGEND_INSIDE: usize = 6;

fn longest(names: &[String]) -> u32 {
    names.iter().map(|n| n.chars().count()).max().unwrap_or(0) as u32
}

/// The width (SVG pixels) of the legend column that a chart of these series needs; 0 when the
/// legend fits inside the plot.
pub fn legend_width(names: &[String]) -> u32 {
    if names.len() <= LEGEND_INSIDE {
        0
    } else {
        (48 + 7 * longest(names)).min(300)
    }
}

/// More than this many categories on an x axis are labelled vertically.
const HORIZONTAL_LABELS: usize = 4;

/// The height (SVG pixels) of a categorical x axis' label area.
pub fn category_axis_height(names: &[String]) -> u32 {
    if names.len() <= HORIZONTAL_LABELS {
        40
    } else {
        (24 + 7 * longest(names)).clamp(40, 220)
    }
}

/// Registers the bundled font once; plotters needs it to measure and draw text.
pub(super) fn ensure_font() -> Result<(), String> {
    static REGISTERED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(
                FONT,
                FontStyle::Normal,
                include_bytes!("../../assets/fonts/DejaVuSans.ttf"),
            )
            .map_err(|_| "the bundled font could not be loaded".to_string())
        })
        .clone()
}

/// Turns any drawing error into text.
trait Drawn<T> {
    fn drawn(self) -> Result<T, String>;
}

impl<T, E: std::fmt::Display> Drawn<T> for Result<T, E> {
    fn drawn(self) -> Result<T, String> {
        self.map_err(|e| format!("drawing failed: {e}"))
    }
}

/// One chart with its data.
#[derive(Clone, Debug)]
pub struct Figure {
    /// The file name without extension for `--plots DIR`: `[a-z0-9-]` only.
    pub stem: String,
    /// A sentence under the chart saying how to read it.
    pub caption: String,
    pub width: u32,
    pub height: u32,
    pub chart: Chart,
    /// What a thinned chart leaves out, in one line ([`crate::report::thin`]): report.html
    /// puts it under the caption, and the files of `--plots` under the chart.
    pub note: Option<String>,
}

/// A labelled series of points.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    /// Index into the palette, so that a submission keeps its colour across charts.
    pub color: usize,
    pub points: Vec<(f64, f64)>,
}

#[derive(Clone, Debug)]
pub enum Chart {
    /// ROC curves overlaid (x = 1 − specificity, y = sensitivity), with each submission's
    /// operating point at the declared threshold as a filled disc.
    Roc {
        title: String,
        curves: Vec<Series>,
        operating_points: Vec<Series>,
    },
    /// Per-case values of one metric per submission: a box (quartiles, median, whiskers to the
    /// farthest value within 1.5 IQR) over the individual cases as jittered dots.
    DotBox {
        title: String,
        metric: String,
        /// The dots drawn: every case, or for a large round a sample that keeps every case
        /// beyond the whiskers ([`crate::report::thin`]).
        groups: Vec<Series>,
        /// Each group's box from all of its cases, drawn or not ([`box_stats`]): low whisker,
        /// first quartile, median, third quartile, high whisker.
        boxes: Vec<Option<[f64; 5]>>,
    },
    /// Bland–Altman: x = mean of prediction and truth, y = prediction − truth, with the bias
    /// and the 95 % limits of agreement.
    BlandAltman {
        title: String,
        points: Series,
        bias: f64,
        limits: (f64, f64),
    },
    /// Predicted against true values, with the identity line.
    Scatter {
        title: String,
        x_label: String,
        y_label: String,
        series: Vec<Series>,
    },
    /// challengeR's blob plot: a disc per (submission, bootstrap rank), its area the share of
    /// resamples; a cross at the rank on all cases.
    Blob {
        title: String,
        submissions: Vec<String>,
        /// Each submission's colour.
        colors: Vec<usize>,
        /// (column, rank, share of resamples)
        blobs: Vec<(usize, usize, f64)>,
        /// (column, rank on all cases)
        full: Vec<(usize, usize)>,
    },
    /// Pairwise significance: a filled cell where the row's submission is significantly better
    /// than the column's. Submissions in rank order.
    SignificanceMap {
        title: String,
        submissions: Vec<String>,
        /// (row, column) pairs where the row wins.
        wins: Vec<(usize, usize)>,
    },
    /// One line per submission through its consensus rank under each ranking method.
    MethodRanks {
        title: String,
        methods: Vec<String>,
        /// Per submission: the rank under each method, in `methods` order.
        ranks: Vec<(String, usize, Vec<Option<usize>>)>,
    },
}

impl Figure {
    /// The chart as SVG text for inlining in HTML (no namespace attribute, so the report holds
    /// no URL at all).
    pub fn svg(&self) -> Result<String, String> {
        self.svg_drawn(None)
    }

    fn svg_drawn(&self, note: Option<&[String]>) -> Result<String, String> {
        ensure_font()?;
        let mut svg = String::new();
        {
            let size = (self.width, self.height + note_height(note, 1.0));
            let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
            self.draw_scaled(&root, 1.0, note, true)?;
            root.present().drawn()?;
        }
        // A name's bidi override would reorder the labels around it in a browser, and a control
        // character makes the SVG invalid XML: both become visible escapes, like in every
        // other format (the markup itself holds only line breaks).
        let svg = crate::text::shown_lines(&svg);
        // plotters spells out SVG's defaults on every shape; a dot-and-box plot of 200 cases
        // × 30 submissions holds 6000 dots, so saying each style once keeps it half as long.
        Ok(super::svg::compact(
            &svg.replace(" xmlns=\"http://www.w3.org/2000/svg\"", ""),
        ))
    }

    /// The note of a thinned chart, in lines that fit its width.
    fn note_lines(&self) -> Option<Vec<String>> {
        self.note.as_deref().map(|n| wrap(n, self.width))
    }

    /// The chart as a standalone SVG file, namespace included, with its note under it.
    pub fn svg_file(&self) -> Result<String, String> {
        Ok(self.svg_drawn(self.note_lines().as_deref())?.replacen(
            "<svg",
            "<svg xmlns=\"http://www.w3.org/2000/svg\"",
            1,
        ))
    }

    /// The chart as a PNG at twice the SVG's size, for slides, with its note under it.
    pub fn png(&self) -> Result<Vec<u8>, String> {
        ensure_font()?;
        const SCALE: u32 = 2;
        let note = self.note_lines();
        let note = note.as_deref();
        let (w, h) = (
            self.width * SCALE,
            (self.height + note_height(note, 1.0)) * SCALE,
        );
        let mut rgb = vec![255u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
            self.draw_scaled(&root, SCALE as f64, note, false)?;
            root.present().drawn()?;
        }
        let mut out = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut out, w, h);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().drawn()?;
            writer.write_image_data(&rgb).drawn()?;
        }
        Ok(out)
    }

    fn draw_scaled<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        scale: f64,
        note: Option<&[String]>,
        vector: bool,
    ) -> Result<(), String> {
        root.fill(&WHITE).drawn()?;
        let s = Scale(scale, vector);
        let root = &match note {
            Some(lines) => {
                let (_, height) = root.dim_in_pixel();
                let (chart, strip) =
                    root.split_vertically(height.saturating_sub(note_height(note, scale)));
                let style = TextStyle::from((FONT, 11.0 * scale).into_font()).color(&NOTE_INK);
                for (i, line) in lines.iter().enumerate() {
                    strip
                        .draw_text(line, &style, (s.i(8), s.i(2 + NOTE_LINE_PX * i as i32)))
                        .drawn()?;
                }
                chart
            }
            None => root.clone(),
        };
        match &self.chart {
            Chart::Roc {
                title,
                curves,
                operating_points,
            } => roc(root, s, title, curves, operating_points),
            Chart::DotBox {
                title,
                metric,
                groups,
                boxes,
            } => dot_box(root, s, title, metric, groups, boxes),
            Chart::BlandAltman {
                title,
                points,
                bias,
                limits,
            } => bland_altman(root, s, title, points, *bias, *limits),
            Chart::Scatter {
                title,
                x_label,
                y_label,
                series,
            } => scatter(root, s, title, x_label, y_label, series),
            Chart::Blob {
                title,
                submissions,
                colors,
                blobs,
                full,
            } => blob(root, s, title, submissions, colors, blobs, full),
            Chart::SignificanceMap {
                title,
                submissions,
                wins,
            } => significance_map(root, s, title, submissions, wins),
            Chart::MethodRanks {
                title,
                methods,
                ranks,
            } => method_ranks(root, s, title, methods, ranks),
        }
    }
}

const NOTE_INK: RGBColor = RGBColor(87, 96, 106);
/// The height of a line of a chart's note, and the characters that fit its width per pixel
/// (DejaVu Sans at 11 px averages about 6.5 px a character).
const NOTE_LINE_PX: i32 = 15;
const NOTE_CHAR_PX: u32 = 7;

/// The height (unscaled pixels) of the strip under a chart that holds its note.
fn note_height(note: Option<&[String]>, scale: f64) -> u32 {
    note.map_or(0, |lines| {
        ((f64::from(NOTE_LINE_PX as u32 * lines.len() as u32 + 6)) * scale).round() as u32
    })
}

/// A note in lines that fit `width` pixels, broken between words.
fn wrap(note: &str, width: u32) -> Vec<String> {
    let fit = (width.saturating_sub(16) / NOTE_CHAR_PX).max(20) as usize;
    let mut lines: Vec<String> = Vec::new();
    for word in note.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= fit => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// Pixel sizes scaled for the output (1 for SVG, 2 for PNG), and whether the output is SVG,
/// where a dashed line is one path with a dash pattern ([`super::svg::DASHES`]) rather than a
/// path per dash.
#[derive(Clone, Copy)]
struct Scale(f64, bool);

impl Scale {
    fn px(self, v: u32) -> u32 {
        (f64::from(v) * self.0).round() as u32
    }
    fn i(self, v: i32) -> i32 {
        (f64::from(v) * self.0).round() as i32
    }
    fn title(self) -> TextStyle<'static> {
        TextStyle::from((FONT, 17.0 * self.0).into_font())
    }
    fn label(self) -> TextStyle<'static> {
        TextStyle::from((FONT, 12.0 * self.0).into_font())
    }
}

/// The labels of a categorical x axis, one under each category, drawn here rather than by the
/// mesh: plotters picks "nice" tick values that need not land on every category, and centres
/// a vertical label on its tick, half of it above the axis. Many names are written downwards
/// from just under the axis at `bottom` (the lowest y value of the plot).
fn category_labels<'a, DB: DrawingBackend + 'a>(
    root: &DrawingArea<DB, Shift>,
    chart: &Plane<'a, DB>,
    s: Scale,
    names: &[String],
    bottom: f64,
) -> Result<(), String> {
    let style = if names.len() <= HORIZONTAL_LABELS {
        s.label().pos(Pos::new(HPos::Center, VPos::Top))
    } else {
        s.label()
            .transform(FontTransform::Rotate90)
            .pos(Pos::new(HPos::Left, VPos::Center))
    };
    let (bx, by) = root.get_base_pixel();
    for (i, name) in names.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(i as f64, bottom));
        root.draw_text(name, &style, (px - bx, py - by + s.i(8)))
            .drawn()?;
    }
    Ok(())
}

/// The name at an integer coordinate; nothing between them.
fn name_at(names: &[String], x: f64) -> String {
    let i = x.round();
    if (x - i).abs() < 1e-9 && i >= 0.0 && (i as usize) < names.len() {
        names[i as usize].clone()
    } else {
        String::new()
    }
}

/// One submission's line, in its colour and line style.
fn line<'a, DB: DrawingBackend + 'a>(
    chart: &mut Plane<'a, DB>,
    s: Scale,
    series: &Series,
) -> Result<(), String> {
    let style = color(series.color).stroke_width(s.px(2));
    let points = series.points.iter().copied();
    let anno = match variant(series.color) {
        0 => chart.draw_series(LineSeries::new(points, style)).drawn()?,
        // In SVG, one path that `svg::compact` gives the dash pattern of its sentinel opacity.
        v if s.1 => {
            let (alpha, _) = super::svg::DASHES[v - 1];
            let dashed = color(series.color).mix(alpha).stroke_width(s.px(2));
            chart.draw_series(LineSeries::new(points, dashed)).drawn()?
        }
        1 => chart
            .draw_series(DashedLineSeries::new(points, s.i(9), s.i(5), style))
            .drawn()?,
        _ => chart
            .draw_series(DashedLineSeries::new(points, s.i(2), s.i(4), style))
            .drawn()?,
    };
    anno.label(series.name.as_str())
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], style));
    Ok(())
}

/// One submission's points, in its colour and marker.
fn markers<'a, DB: DrawingBackend + 'a>(
    chart: &mut Plane<'a, DB>,
    s: Scale,
    series: &Series,
    radius: i32,
    opacity: f64,
) -> Result<(), String> {
    let fill = color(series.color).mix(opacity).filled();
    let points = series.points.iter().copied();
    let anno = match variant(series.color) {
        0 => chart
            .draw_series(points.map(|p| Circle::new(p, radius, fill)))
            .drawn()?,
        1 => chart
            .draw_series(points.map(|p| TriangleMarker::new(p, radius + 1, fill)))
            .drawn()?,
        _ => chart
            .draw_series(points.map(|p| Cross::new(p, radius, fill.stroke_width(s.px(2)))))
            .drawn()?,
    };
    anno.label(series.name.as_str())
        .legend(move |(x, y)| Circle::new((x + 8, y), radius, fill));
    Ok(())
}

/// The legend inside the plot, when the series are few enough ([`LEGEND_INSIDE`]).
fn inside_legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut Plane<'a, DB>,
    s: Scale,
    count: usize,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    if count > LEGEND_INSIDE {
        return Ok(());
    }
    chart
        .configure_series_labels()
        .label_font(s.label())
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .drawn()
}

/// For many series, splits a legend column off the right of `root` and draws it there; returns
/// the area left for the plot.
fn legend_column<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: Scale,
    series: &[Series],
    lines: bool,
) -> Result<DrawingArea<DB, Shift>, String> {
    let names: Vec<String> = series.iter().map(|x| x.name.clone()).collect();
    let width = legend_width(&names);
    if width == 0 {
        return Ok(root.clone());
    }
    let (total, _) = root.dim_in_pixel();
    let (plot, legend) = root.split_horizontally(total.saturating_sub(s.px(width)));
    for (j, x) in series.iter().enumerate() {
        let y = s.i(48 + 18 * j as i32);
        let x0 = s.i(4);
        let c = color(x.color);
        let style = c.stroke_width(s.px(2));
        let segments: Vec<(i32, i32)> = match (lines, variant(x.color)) {
            (true, 0) => vec![(0, 22)],
            (true, 1) => vec![(0, 9), (13, 22)],
            (true, _) => vec![(0, 2), (6, 8), (12, 14), (18, 20)],
            (false, _) => Vec::new(),
        };
        for (a, b) in segments {
            legend
                .draw(&PathElement::new(
                    [(x0 + s.i(a), y), (x0 + s.i(b), y)],
                    style,
                ))
                .drawn()?;
        }
        if !lines {
            let at = (x0 + s.i(10), y);
            match variant(x.color) {
                0 => legend.draw(&Circle::new(at, s.i(4), c.filled())).drawn()?,
                1 => legend
                    .draw(&TriangleMarker::new(at, s.i(5), c.filled()))
                    .drawn()?,
                _ => legend
                    .draw(&Cross::new(at, s.i(4), c.stroke_width(s.px(2))))
                    .drawn()?,
            }
        }
        legend
            .draw(&Text::new(
                x.name.clone(),
                (x0 + s.i(28), y),
                s.label().pos(Pos::new(HPos::Left, VPos::Center)),
            ))
            .drawn()?;
    }
    Ok(plot)
}

fn padded(lo: f64, hi: f64) -> std::ops::Range<f64> {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() && hi > lo {
        (lo, hi)
    } else if lo.is_finite() {
        (lo - 1.0, lo + 1.0)
    } else {
        (0.0, 1.0)
    };
    let pad = (hi - lo) * 0.05;
    (lo - pad)..(hi + pad)
}

fn roc<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: Scale,
    title: &str,
    curves: &[Series],
    operating_points: &[Series],
) -> Result<(), String> {
    let root = &legend_column(root, s, curves, true)?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, s.title())
        .margin(s.px(12))
        .x_label_area_size(s.px(40))
        .y_label_area_size(s.px(48))
        .build_cartesian_2d(0f64..1f64, 0f64..1f64)
        .drawn()?;
    chart
        .configure_mesh()
        .label_style(s.label())
        .max_light_lines(0)
        .x_desc("1 - specificity")
        .y_desc("sensitivity")
        .draw()
        .drawn()?;
    chart
        .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], GRID))
        .drawn()?;
    for c in curves {
        line(&mut chart, s, c)?;
    }
    for p in operating_points {
        let color = color(p.color);
        chart
            .draw_series(p.points.iter().map(|&xy| {
                EmptyElement::at(xy)
                    + Circle::new((0, 0), s.i(5), color.filled())
                    + Circle::new((0, 0), s.i(5), BLACK.stroke_width(1))
            }))
            .drawn()?;
    }
    inside_legend(&mut chart, s, curves.len(), SeriesLabelPosition::LowerRight)
}

/// Tukey's box of sorted values: quartiles by linear interpolation, whiskers to the farthest
/// values within 1.5 IQR of the box.
pub fn box_stats(sorted: &[f64]) -> Option<[f64; 5]> {
    if sorted.is_empty() {
        return None;
    }
    let q = |p: f64| {
        let h = (sorted.len() - 1) as f64 * p;
        let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
        sorted[lo] + (sorted[hi] - sorted[lo]) * (h - lo as f64)
    };
    let (q1, median, q3) = (q(0.25), q(0.5), q(0.75));
    let iqr = q3 - q1;
    let low = sorted
        .iter()
        .copied()
        .find(|&v| v >= q1 - 1.5 * iqr)
        .unwrap_or(q1);
    let high = sorted
        .iter()
        .rev()
        .copied()
        .find(|&v| v <= q3 + 1.5 * iqr)
        .unwrap_or(q3);
    Some([low, q1, median, q3, high])
}

fn dot_box<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: Scale,
    title: &str,
    metric: &str,
    groups: &[Series],
    boxes: &[Option<[f64; 5]>],
) -> Result<(), String> {
    // The whiskers reach the farthest case within 1.5 IQR, which a thinned group may not draw.
    let values = || {
        groups
            .iter()
            .flat_map(|g| g.points.iter().map(|p| p.1))
            .chain(boxes.iter().flatten().flat_map(|b| [b[0], b[4]]))
    };
    let lo = values().fold(f64::INFINITY, f64::min);
    let hi = values().fold(f64::NEG_INFINITY, f64::max);
    let k = groups.len();
    let names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
    let mut chart = ChartBuilder::on(root)
        .caption(title, s.title())
        .margin(s.px(12))
        .x_label_area_size(s.px(category_axis_height(&names)))
        .y_label_area_size(s.px(56))
        .build_cartesian_2d(-0.5f64..(k as f64 - 0.5), padded(lo, hi))
        .drawn()?;
    let bottom = padded(lo, hi).start;
    chart
        .configure_mesh()
        .label_style(s.label())
        .max_light_lines(0)
        .x_labels(0)
        .disable_x_mesh()
        .y_desc(metric)
        .draw()
        .drawn()?;
    category_labels(root, &chart, s, &names, bottom)?;
    for (i, g) in groups.iter().enumerate() {
        let color = color(g.color);
        let x = i as f64;
        // Dots first, so the box's outline stays readable on top of them. The jitter is the
        // golden-ratio sequence: spread evenly and the same on every run.
        chart
            .draw_series(g.points.iter().enumerate().map(|(j, p)| {
                let jitter = ((j as f64 * 0.618_034).fract() - 0.5) * 0.5;
                Circle::new((x + jitter, p.1), s.i(3), color.mix(0.55).filled())
            }))
            .drawn()?;
        let Some([low, q1, median, q3, high]) = boxes.get(i).copied().flatten() else {
            continue;
        };
        let stroke = BLACK.stroke_width(s.px(1));
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x - 0.3, q1), (x + 0.3, q3)],
                stroke,
            )))
            .drawn()?;
        chart
            .draw_series([
                PathElement::new(
                    [(x - 0.3, median), (x + 0.3, median)],
                    BLACK.stroke_width(s.px(3)),
                ),
                PathElement::new([(x, q3), (x, high)], stroke),
                PathElement::new([(x, q1), (x, low)], stroke),
                PathElement::new([(x - 0.12, high), (x + 0.12, high)], stroke),
                PathElement::new([(x - 0.12, low), (x + 0.12, low)], stroke),
            ])
            .drawn()?;
    }
    Ok(())
}

fn bland_altman<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: Scale,
    title: &str,
    points: &Series,
    bias: f64,
    (lower, upper): (f64, f64),
) -> Result<(), String> {
    let xs = points.points.iter().map(|p| p.0);
    let ys = points.points.iter().map(|p| p.1).chain([lower, upper, 0.0]);
    let x_range = padded(
        xs.clone().fold(f64::INFINITY, f64::min),
        xs.fold(f64::NEG_INFINITY, f64::max),
    );
    let y_range = padded(
        ys.clone().fold(f64::INFINITY, f64::min),
        ys.fold(f64::NEG_INFINITY, f64::max),
    );
    let (x0, x1) = (x_range.start, x_range.end);
    let lift = (y_range.end - y_range.start) * 0.045;
    let mut chart = ChartBuilder::on(root)
        .caption(title, s.title())
        .margin(s.px(12))
        .x_label_area_size(s.px(40))
        .y_label_area_size(s.px(52))
        .build_cartesian_2d(x_range, y_range)
        .drawn()?;
    chart
        .configure_mesh()
        .label_style(s.label())
        .max_light_lines(0)
        .x_desc("mean of predicted and true")
        .y_desc("predicted - true")
        .draw()
        .drawn()?;
    markers(&mut chart, s, points, s.i(3), 0.7)?;
    chart
        .draw_series(LineSeries::new(
            [(x0, 0.0), (x1, 0.0)],
            GRID.stroke_width(s.px(1)),
        ))
        .drawn()?;
    for (y, name, dashed) in [
        (bias, format!("bias {bias:.2}"), false),
        (lower, format!("-1.96 SD {lower:.2}"), true),
        (upper, format!("+1.96 SD {upper:.2}"), true),
    ] {
        let style = if dashed {
            BLACK.mix(0.6).stroke_width(s.px(1))
        } else {
            BLACK.stroke_width(s.px(2))
        };
        chart
            .draw_series(LineSeries::new([(x0, y), (x1, y)], style))
            .drawn()?;
        chart
            .draw_series(std::iter::once(Text::new(
                name,
                (x0 + (x1 - x0) * 0.01, y + lift),
                s.label(),
            )))
            .drawn()?;
    }
    Ok(())
}

fn scatter<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: Scale,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<(), String> {
    let root = &legend_column(root, s, series, false)?;
    let all = || {
        series
            .iter()
            .flat_map(|c| c.points.iter().flat_map(|p| [p.0, p.1]))
    };
    let range = padded(
        all().fold(f64::INFINITY, f64::min),
        all().fold(f64::NEG_INFINITY, f64::max),
    );
    let (lo, hi) = (range.start, range.end);
    let mut chart = ChartBuilder::on(root)
        .caption(title, s.title())
        .margin(s.px(12))
        .x_label_area_size(s.px(40))
        .y_label_area_size(s.px(52))
        .build_cartesian_2d(range.clone(), range)
        .drawn()?;
    chart
        .configure_mesh()
        .label_style(s.label())
        .max_light_lines(0)
        .x_desc(x_label)
        .y_desc(y_label)
        .draw()
        .drawn()?;
    chart
        .draw_series(LineSeries::new(
            [(lo, lo), (hi, hi)],
            GRID.stroke_width(s.px(1)),
        ))
        .drawn()?;
    for c in series {
        markers(&mut chart, s, c, s.i(3), 0.7)?;
    }
    inside_legend(&mut chart, s, series.len(), SeriesLabelPosition::UpperLeft)
}

fn blob<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: Scale,
    title: &str,
    names: &[String],
    colors: &[usize],
    blobs: &[(usize, usize, f64)],
    full: &[(usize, usize)],
) -> Result<(), String> {
    let k = names.len();
    let axis = category_axis_height(names);
    // A disc never reaches the next rank's: its radius stays under half the row pitch.
    let (_, height) = root.dim_in_pixel();
    let pitch = (f64::from(height) - f64::from(s.px(axis + 60))) / k.max(1) as f64;
    let max_radius = (0.45 * pitch).max(2.0);
    let mut chart = ChartBuilder::on(root)
        .caption(title, s.title())
        .margin(s.px(12))
        .x_label_area_size(s.px(axis))
        .y_label_area_size(s.px(40))
        .build_cartesian_2d(-0.5f64..(k as f64 - 0.5), (k as f64 + 0.5)..0.5f64)
        .drawn()?;
    chart
        .configure_mesh()
        .label_style(s.label())
        .max_light_lines(0)
        .x_labels(0)
        .y_labels(k.clamp(1, 10))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .y_desc("rank")
        .disable_x_mesh()
        .draw()
        .drawn()?;
    category_labels(root, &chart, s, names, k as f64 + 0.5)?;
    chart
        .draw_series(blobs.iter().map(|&(x, rank, share)| {
            let radius =
                (share.sqrt() * f64::from(s.i(16))).clamp(f64::from(s.i(2)), max_radius) as i32;
            let c = color(colors.get(x).copied().unwrap_or(x));
            Circle::new((x as f64, rank as f64), radius, c.mix(0.7).filled())
        }))
        .drawn()?;
    chart
        .draw_series(full.iter().map(|&(x, rank)| {
            Cross::new((x as f64, rank as f64), s.i(5), BLACK.stroke_width(s.px(2)))
        }))
        .drawn()?;
    Ok(())
}

fn significance_map<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: Scale,
    title: &str,
    names: &[String],
    wins: &[(usize, usize)],
) -> Result<(), String> {
    let k = names.len();
    let mut chart = ChartBuilder::on(root)
        .caption(title, s.title())
        .margin(s.px(12))
        .x_label_area_size(s.px(category_axis_height(names)))
        .y_label_area_size(s.px((30 + 7 * longest(names)).min(240)))
        .build_cartesian_2d(-0.5f64..(k as f64 - 0.5), (k as f64 - 0.5)..-0.5f64)
        .drawn()?;
    chart
        .configure_mesh()
        .label_style(s.label())
        .max_light_lines(0)
        .x_labels(0)
        .y_labels(k.max(1))
        .y_label_formatter(&|y| name_at(names, *y))
        .x_desc("opponent")
        .y_desc("submission")
        .disable_mesh()
        .draw()
        .drawn()?;
    category_labels(root, &chart, s, names, k as f64 - 0.5)?;
    let win = RGBColor(0, 114, 178);
    let cells = (0..k).flat_map(|row| (0..k).map(move |col| (row, col)));
    chart
        .draw_series(cells.map(|(row, col)| {
            let fill = if row == col {
                WHITE.filled()
            } else if wins.contains(&(row, col)) {
                win.filled()
            } else {
                RGBColor(235, 237, 240).filled()
            };
            let (x, y) = (col as f64, row as f64);
            Rectangle::new([(x - 0.48, y - 0.48), (x + 0.48, y + 0.48)], fill)
        }))
        .drawn()?;
    chart
        .draw_series((0..k).map(|i| {
            let d = i as f64;
            Rectangle::new(
                [(d - 0.48, d - 0.48), (d + 0.48, d + 0.48)],
                GRID.stroke_width(s.px(1)),
            )
        }))
        .drawn()?;
    Ok(())
}

fn method_ranks<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    s: Scale,
    title: &str,
    methods: &[String],
    ranks: &[(String, usize, Vec<Option<usize>>)],
) -> Result<(), String> {
    let k = ranks.len();
    let m = methods.len();
    let series: Vec<Series> = ranks
        .iter()
        .map(|(name, color_index, per_method)| Series {
            name: name.clone(),
            color: *color_index,
            points: per_method
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.map(|r| (i as f64, r as f64)))
                .collect(),
        })
        .collect();
    let root = &legend_column(root, s, &series, true)?;
    // Room on the right for a legend inside the plot.
    let right = m as f64 - 0.6
        + if series.len() <= LEGEND_INSIDE {
            1.0
        } else {
            0.0
        };
    let mut chart = ChartBuilder::on(root)
        .caption(title, s.title())
        .margin(s.px(12))
        .margin_right(s.px(24))
        .x_label_area_size(s.px(40))
        .y_label_area_size(s.px(40))
        .build_cartesian_2d(-0.4f64..right, (k as f64 + 0.5)..0.5f64)
        .drawn()?;
    chart
        .configure_mesh()
        .label_style(s.label())
        .max_light_lines(0)
        .x_labels(0)
        .y_labels(k.clamp(1, 10))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .y_desc("consensus rank")
        .disable_x_mesh()
        .draw()
        .drawn()?;
    category_labels(root, &chart, s, methods, k as f64 + 0.5)?;
    for x in &series {
        line(&mut chart, s, x)?;
        markers(&mut chart, s, x, s.i(4), 1.0)?;
    }
    inside_legend(&mut chart, s, series.len(), SeriesLabelPosition::UpperRight)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_stats_use_interpolated_quartiles_and_tukey_whiskers() {
        // numpy.percentile([1, 2, 3, 4, 100], [25, 50, 75]) = 2, 3, 4; 100 lies beyond
        // 4 + 1.5 * 2, so the upper whisker stops at 4.
        assert_eq!(
            box_stats(&[1.0, 2.0, 3.0, 4.0, 100.0]),
            Some([1.0, 2.0, 3.0, 4.0, 4.0])
        );
        assert_eq!(box_stats(&[]), None);
        assert_eq!(box_stats(&[7.0]), Some([7.0; 5]));
    }

    #[test]
    fn a_figure_renders_as_svg_and_png() {
        let figure = Figure {
            stem: "roc".into(),
            caption: String::new(),
            width: 300,
            height: 200,
            chart: Chart::Roc {
                title: "<b>ROC</b>".into(),
                curves: vec![Series {
                    name: "a & b".into(),
                    color: 0,
                    points: vec![(0.0, 0.0), (0.2, 0.8), (1.0, 1.0)],
                }],
                operating_points: vec![],
            },
            note: None,
        };
        let svg = figure.svg().unwrap();
        assert!(svg.starts_with("<svg") && !svg.contains("xmlns"));
        assert!(svg.contains("&lt;b&gt;ROC&lt;/b&gt;") && svg.contains("a &amp; b"));
        assert!(figure.svg_file().unwrap().contains("xmlns"));
        let png = figure.png().unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR: width and height at twice the SVG's size.
        assert_eq!(&png[16..24], &[0, 0, 2, 88, 0, 0, 1, 144]);
    }

    #[test]
    fn a_thinned_chart_carries_its_note_under_it_in_the_files() {
        let mut figure = Figure {
            stem: "dots".into(),
            caption: String::new(),
            width: 600,
            height: 200,
            chart: Chart::DotBox {
                title: "dice".into(),
                metric: "dice".into(),
                groups: vec![Series {
                    name: "a".into(),
                    color: 9,
                    points: vec![(0.0, 0.2), (0.0, 0.5), (0.0, 0.9)],
                }],
                boxes: vec![Some([0.1, 0.3, 0.5, 0.7, 0.95])],
            },
            note: None,
        };
        let plain = figure.png().unwrap();
        figure.note = Some("Thinned: 3 of the 1,000 per-case values drawn, and a note long enough to take two lines.".into());
        // report.html says it under the caption; the files of --plots under the chart.
        assert!(!figure.svg().unwrap().contains("Thinned"));
        let file = figure.svg_file().unwrap();
        assert!(
            file.contains("Thinned: 3 of the 1,000") && file.contains("\nlines.\n"),
            "{file}"
        );
        assert!(
            file.contains("height=\"236\""),
            "two lines of 15 px and 6 px of margin"
        );
        let png = figure.png().unwrap();
        let height = |png: &[u8]| u32::from_be_bytes(png[20..24].try_into().unwrap());
        assert_eq!(height(&png), height(&plain) + 2 * 36);
        // The whiskers come from the box of all values, beyond the dots drawn.
        let svg = figure.svg().unwrap();
        assert!(svg.contains("<polyline") || svg.contains("<line"), "{svg}");
    }

    #[test]
    fn dashed_lines_are_one_path_in_svg() {
        let series = |color: usize| Series {
            name: format!("s{color}"),
            color,
            points: (0..50)
                .map(|i| (i as f64 / 49.0, (i as f64 / 49.0).sqrt()))
                .collect(),
        };
        let figure = Figure {
            stem: "roc".into(),
            caption: String::new(),
            width: 480,
            height: 420,
            chart: Chart::Roc {
                title: "ROC".into(),
                curves: vec![series(0), series(8), series(16)],
                operating_points: vec![],
            },
            note: None,
        };
        let svg = figure.svg().unwrap();
        assert_eq!(svg.matches("stroke-dasharray=\"9 5\"").count(), 1, "{svg}");
        assert_eq!(svg.matches("stroke-dasharray=\"2 4\"").count(), 1, "{svg}");
        assert!(!svg.contains("0.999"), "no sentinel opacity is left");
        // The PNG draws the dashes itself.
        assert!(figure.png().is_ok());
    }
}
