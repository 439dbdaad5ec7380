//! Forest plots of a metric per subgroup level (docs/report.md, "Subgroups"): one row per
//! level, its estimate as a square and its 95% interval as a line, and the value on all cases
//! (pooled) as a dashed vertical line. A level the honesty rules withhold has a row but no mark.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::plots::{ensure_font, FONT};

/// One row of a forest plot.
pub struct ForestRow {
    /// The level and its n, e.g. `hospital-a (n = 40)`.
    pub label: String,
    /// (estimate, interval) when shown; None when withheld or undefined.
    pub value: Option<(f64, Option<(f64, f64)>)>,
}

const ROW_PX: u32 = 22;
const WIDTH: u32 = 460;

/// The plot as SVG text to inline in report.html (no namespace attribute, no URL).
pub fn forest_svg(
    title: &str,
    metric: &str,
    rows: &[ForestRow],
    pooled: Option<f64>,
) -> Result<String, String> {
    ensure_font()?;
    let drawn = |e: &dyn std::fmt::Display| format!("drawing failed: {e}");
    let mut bounds: Vec<f64> = rows
        .iter()
        .filter_map(|r| r.value)
        .flat_map(|(v, ci)| [Some(v), ci.map(|c| c.0), ci.map(|c| c.1)])
        .flatten()
        .chain(pooled)
        .filter(|v| v.is_finite())
        .collect();
    bounds.sort_by(f64::total_cmp);
    let (lo, hi) = match (bounds.first(), bounds.last()) {
        (Some(&lo), Some(&hi)) if hi > lo => (lo, hi),
        (Some(&v), _) => (v - 0.5, v + 0.5),
        _ => (0.0, 1.0),
    };
    let pad = (hi - lo) * 0.05;
    let (x0, x1) = (lo - pad, hi + pad);
    let label_px = rows
        .iter()
        .map(|r| r.label.chars().count() as u32)
        .max()
        .unwrap_or(0)
        .clamp(6, 40)
        * 7
        + 12;
    let height = 70 + ROW_PX * rows.len().max(1) as u32;
    let k = rows.len() as f64;
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (WIDTH + label_px, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| drawn(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 15.0).into_font())
            .margin(8)
            .margin_right(16)
            .x_label_area_size(30)
            .y_label_area_size(label_px)
            .build_cartesian_2d(x0..x1, (k + 0.5)..0.5f64)
            .map_err(|e| drawn(&e))?;
        let labels: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
        chart
            .configure_mesh()
            .label_style((FONT, 12.0).into_font())
            .disable_y_mesh()
            .max_light_lines(0)
            .y_labels(rows.len().max(1))
            .y_label_formatter(&|y| {
                let i = y.round();
                if (y - i).abs() < 1e-9 && i >= 1.0 && (i as usize) <= labels.len() {
                    labels[i as usize - 1].clone()
                } else {
                    String::new()
                }
            })
            .x_desc(metric)
            .draw()
            .map_err(|e| drawn(&e))?;
        let ink = RGBColor(0, 114, 178);
        if let Some(p) = pooled.filter(|p| p.is_finite()) {
            // One path, dashed by `svg::compact` (its sentinel opacity), not a path per dash.
            let dashed = BLACK.mix(super::svg::DASHES[2].0).stroke_width(1);
            chart
                .draw_series([PathElement::new(vec![(p, 0.5), (p, k + 0.5)], dashed)])
                .map_err(|e| drawn(&e))?;
        }
        for (i, row) in rows.iter().enumerate() {
            let y = i as f64 + 1.0;
            match row.value {
                Some((v, ci)) => {
                    if let Some((a, b)) = ci {
                        chart
                            .draw_series([PathElement::new(
                                vec![(a, y), (b, y)],
                                ink.stroke_width(2),
                            )])
                            .map_err(|e| drawn(&e))?;
                    }
                    chart
                        .draw_series([EmptyElement::at((v, y))
                            + Rectangle::new([(-4, -4), (4, 4)], ink.filled())])
                        .map_err(|e| drawn(&e))?;
                }
                None => {
                    let style = TextStyle::from((FONT, 11.0).into_font())
                        .color(&RGBColor(120, 120, 120))
                        .pos(Pos::new(HPos::Left, VPos::Center));
                    chart
                        .draw_series([Text::new("no value (see the table)", (x0, y), style)])
                        .map_err(|e| drawn(&e))?;
                }
            }
        }
        root.present().map_err(|e| drawn(&e))?;
    }
    Ok(super::svg::compact(
        &crate::text::shown_lines(&svg).replace(" xmlns=\"http://www.w3.org/2000/svg\"", ""),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forest_plot_has_a_row_per_level_and_escapes_its_labels() {
        let rows = vec![
            ForestRow {
                label: "<b>a</b> (n = 12)".into(),
                value: Some((0.8, Some((0.7, 0.9)))),
            },
            ForestRow {
                label: "c (n = 4)".into(),
                value: None,
            },
        ];
        let svg = forest_svg("team", "auc", &rows, Some(0.75)).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("&lt;b&gt;a&lt;/b&gt; (n = 12)"));
        assert!(svg.contains("c (n = 4)") && svg.contains("no value"));
        assert!(!svg.contains("<b>"));
        // The value on all cases is one dashed line, not a path per dash.
        assert_eq!(svg.matches("stroke-dasharray=").count(), 1, "{svg}");
    }
}
