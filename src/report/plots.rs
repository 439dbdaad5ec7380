//! The report's charts, drawn with plotters as SVG text to inline in `report.html`. Labels
//! (team names included) are SVG `<text>` that plotters escapes.

use plotters::prelude::*;

use crate::ranking::analysis::RankingAnalysis;
use crate::results::CurvePoint;

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

/// Drops the namespace attribute: HTML5 does not need it for inline SVG, and the report then
/// holds no URL at all.
fn inline(svg: String) -> String {
    svg.replace(" xmlns=\"http://www.w3.org/2000/svg\"", "")
}

/// ROC curves of one task's submissions, overlaid; `curves` holds one class's points.
pub fn roc_svg(title: &str, curves: &[(String, Vec<&CurvePoint>)]) -> Option<String> {
    if curves.is_empty() {
        return None;
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (520, 440)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)
            .ok()?;
        chart
            .configure_mesh()
            .x_desc("false positive rate (1 - specificity)")
            .y_desc("true positive rate (sensitivity)")
            .draw()
            .ok()?;
        chart
            .draw_series(LineSeries::new(
                [(0.0, 0.0), (1.0, 1.0)],
                RGBColor(200, 200, 200),
            ))
            .ok()?;
        for (i, (name, points)) in curves.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let mut line: Vec<(f64, f64)> = points.iter().map(|p| (p.fpr, p.tpr)).collect();
            line.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
            chart
                .draw_series(LineSeries::new(line, color.stroke_width(2)))
                .ok()?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .ok()?;
        root.present().ok()?;
    }
    Some(inline(svg))
}

/// challengeR's blob plot: for each submission, a disc at each bootstrap rank, its area
/// proportional to the share of resamples with that rank.
pub fn blob_svg(analysis: &RankingAnalysis, scope: &str) -> Option<String> {
    let names = &analysis.submissions;
    if names.is_empty() || analysis.resamples == 0 {
        return None;
    }
    let k = names.len();
    let mut svg = String::new();
    {
        let width = (160 + 70 * k as u32).min(1100);
        let root = SVGBackend::with_string(&mut svg, (width, 380)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("Bootstrap ranks: {scope}"), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(60)
            .y_label_area_size(40)
            .build_cartesian_2d(-0.5f64..(k as f64 - 0.5), (k as f64 + 0.5)..0.5f64)
            .ok()?;
        let label = |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-9 && i >= 0.0 && (i as usize) < k {
                names[i as usize].clone()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .x_labels(k)
            .x_label_formatter(&label)
            .y_labels(k.min(10))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .y_desc("rank")
            .disable_x_mesh()
            .draw()
            .ok()?;
        let total = analysis.resamples as f64;
        for c in analysis.rank_counts.iter().filter(|c| c.scope == scope) {
            let Some(x) = names.iter().position(|n| *n == c.submission) else {
                continue;
            };
            let share = c.resamples as f64 / total;
            let radius = (share.sqrt() * 16.0).max(2.0) as i32;
            let color = PALETTE[x % PALETTE.len()];
            chart
                .draw_series(std::iter::once(Circle::new(
                    (x as f64, c.rank as f64),
                    radius,
                    color.mix(0.7).filled(),
                )))
                .ok()?;
        }
        // The full-data rank, as a cross on each column.
        for i in analysis.intervals.iter().filter(|i| i.scope == scope) {
            if let Some(x) = names.iter().position(|n| *n == i.submission) {
                chart
                    .draw_series(std::iter::once(Cross::new(
                        (x as f64, i.rank as f64),
                        5,
                        BLACK.stroke_width(2),
                    )))
                    .ok()?;
            }
        }
        root.present().ok()?;
    }
    Some(inline(svg))
}
