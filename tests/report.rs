//! The judges' report (issue 7) as a judge and a team receive it: one self-contained HTML file
//! with every section, chart and team, hostile names and log lines shown as text, redrawn
//! identically from the round's folder alone, and a team view that keeps a hidden phase hidden.
//! tests/browser.rs loads it in a real browser.

mod common;

use std::path::Path;

use common::*;
use podium::report::{figures, ReportData, ReportOptions, View};

const HOSTILE_TEAM: &str = "<script>alert(1)</script>";
/// What the failing submission writes to stderr: markup that would run or break out of the
/// `<pre>` it is quoted in.
const HOSTILE_LOG: &str =
    "</pre><img src=x onerror=alert(2)><a href=\"https://evil.example\">x</a>";

/// A round of the two examples (random-guess renamed to a hostile team, no longer a baseline)
/// and a submission that fails every case with a hostile stderr line, on `phase`.
fn hostile_round(dir: &Path, phase: &str) -> std::path::PathBuf {
    let root = dir.join("covid19-ct");
    podium::demo::init_covid19_ct(
        &root,
        &podium::demo::GenerationStamp::new(6, podium::demo::Size::Small, 11),
        &|_| {},
    )
    .unwrap();
    let challenge = podium::challenge::Challenge::load(&root).unwrap();
    let subs = dir.join("subs");
    binary_submission(
        &subs,
        "threshold-baseline",
        &workspace_binary("threshold-baseline"),
    );
    let team = binary_submission(&subs, "random-guess", &workspace_binary("random-guess"));
    make_team_submission(&team);
    let toml = team.join("submission.toml");
    let text = std::fs::read_to_string(&toml)
        .unwrap()
        .replace("team = \"examples\"", &format!("team = {HOSTILE_TEAM:?}"));
    std::fs::write(&toml, text).unwrap();
    script_submission(
        &subs,
        "crasher",
        &format!("echo {:?} >&2\nexit 3", HOSTILE_LOG),
    );
    let out = dir.join(format!("round-{phase}"));
    let options = podium::runner::RoundOptions {
        jobs: 2,
        out_dir: out.clone(),
        resume: false,
        gpus: None,
    };
    let paths = challenge.phase_paths(phase, None).unwrap();
    let submissions = podium::submission::Submission::discover(&subs).unwrap();
    podium::pipeline::run_and_score(
        &challenge,
        &paths,
        &submissions,
        &podium::runner::process::ProcessBackend,
        &options,
        &mut |_| {},
    )
    .unwrap();
    out
}

/// The markup of the page: every tag, without the text between tags (where escaped team text
/// may say anything).
/// The charts of the report, less the forest plots of its Subgroups section (the demo
/// challenge declares sites and scanners), which `figures::all` does not make.
fn svg_outside_subgroups(html: &str) -> usize {
    let all = html.matches("<svg").count();
    let Some(start) = html.find("<h2 id=\"subgroups\">") else {
        return all;
    };
    let rest = &html[start + 1..];
    let section = &rest[..rest.find("<h2 ").unwrap_or(rest.len())];
    all - section.matches("<svg").count()
}

fn tags(html: &str) -> Vec<&str> {
    html.match_indices('<')
        .map(|(i, _)| &html[i..i + html[i..].find('>').map_or(html.len() - i, |e| e + 1)])
        .collect()
}

fn between<'a>(html: &'a str, open: &str, close: &str) -> &'a str {
    let start = html.find(open).unwrap() + open.len();
    &html[start..start + html[start..].find(close).unwrap()]
}

fn assert_self_contained(html: &str) {
    for tag in tags(html) {
        let lower = tag.to_ascii_lowercase();
        // The segmentation slices are images carried in the page itself, and nothing else is.
        if lower.starts_with("<img ") {
            let src = lower.find(" src=\"").expect("an image with its data") + 6;
            assert!(
                lower[src..].starts_with("data:image/png;base64,")
                    && lower.matches("src=").count() == 1
                    && !lower.contains("url("),
                "an image loading a file: {tag}"
            );
            continue;
        }
        assert!(!lower.contains("src="), "a tag loading a file: {tag}");
        assert!(!lower.contains("url("), "a tag loading a file: {tag}");
        if let Some(i) = lower.find("href=\"") {
            assert!(
                lower[i + 6..].starts_with('#'),
                "a link out of the page: {tag}"
            );
        }
        for name in ["<link", "<iframe", "<object", "<embed", "<img", "<base"] {
            assert!(!lower.starts_with(name), "{tag}");
        }
    }
    let style = between(html, "<style>", "</style>");
    assert!(!style.contains("url(") && !style.contains("@import"));
    let script = between(html, "<script>", "</script>");
    for call in ["fetch(", "XMLHttpRequest", "import(", "http"] {
        assert!(!script.contains(call), "{call}");
    }
    assert_eq!(
        html.matches("<script").count(),
        1,
        "only podium's own sorting script"
    );
}

#[test]
fn the_report_holds_every_section_chart_and_team_and_nothing_external() {
    let dir = tempfile::tempdir().unwrap();
    let out = hostile_round(dir.path(), "test");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for section in [
        "summary",
        "leaderboard",
        "tasks",
        "ranking",
        "runs",
        "receipt",
    ] {
        assert!(
            html.contains(&format!("<h2 id=\"{section}\">")),
            "{section}"
        );
    }
    assert_self_contained(&html);
    assert!(html.len() < 2_000_000, "{} bytes", html.len());

    // Every chart of the round is inlined, once.
    let data = ReportData::read(&out).unwrap();
    let charts = figures::all(&data.scores, &data.analysis, figures::Detail::PerCase);
    assert_eq!(svg_outside_subgroups(&html), charts.len());
    for title in [
        "detection: ROC (covid positive)",
        "differential: ROC, other_pneumonia vs rest",
        "segmentation: dice per case",
        "segmentation: nsd per case",
        "segmentation: hd95 per case",
        "quantification: predicted vs true",
        "quantification: Bland-Altman, threshold-baseline",
        "Bootstrap ranks: consensus",
        "Significance: staging",
        "Consensus rank under each method",
    ] {
        assert!(html.contains(title), "no chart {title:?}");
    }
    // Each boundary number says which reference's definition it follows.
    assert!(
        html.contains("<b>hd95</b>: the larger of the two directed 95th percentiles")
            && html.contains(
                "<b>nsd</b>: the share of the surface area of both masks within the tolerance"
            ),
        "no definition of the boundary metrics"
    );
    // Operating points at the threshold: a disc per submission on the detection ROC.
    let roc = charts
        .iter()
        .find(|f| f.stem == "detection-roc-covid")
        .unwrap();
    let podium::report::plots::Chart::Roc {
        operating_points, ..
    } = &roc.chart
    else {
        panic!("{:?}", roc.chart)
    };
    assert_eq!(operating_points.len(), 3);
    // Each disc sits at (1 - specificity, sensitivity), the aggregates at the threshold.
    for point in operating_points {
        let value = |metric: &str| {
            data.scores
                .aggregate(&point.name, "detection", metric)
                .and_then(|a| a.value)
                .unwrap()
        };
        let (x, y) = point.points[0];
        assert!(
            (x - (1.0 - value("specificity"))).abs() < 1e-12,
            "{}",
            point.name
        );
        assert!((y - value("sensitivity")).abs() < 1e-12, "{}", point.name);
    }
    // A confusion matrix per submission for detection, differential and staging.
    assert_eq!(html.matches("class=\"confusion\"").count(), 3 * 3);

    // The segmentation slices: each submission's worst, median and best case by dice (six
    // cases, so three distinct ones), the truth with the prediction, and the truth alone.
    // The crasher wrote no mask, and says so instead of showing one.
    let slices = between(&html, "<h2 id=\"slices\">", "<h2 id=\"ranking\">");
    let by_dice = |submission: &str| {
        let mut cases: Vec<(f64, &str)> = data
            .scores
            .case_scores
            .iter()
            .filter(|c| c.submission == submission && c.metric == "dice")
            .filter_map(|c| Some((c.value?, c.case_id.as_str())))
            .collect();
        cases.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        cases
    };
    for name in ["threshold-baseline", "random-guess"] {
        let cases = by_dice(name);
        let (worst, median, best) = (
            cases[0],
            cases[(cases.len() - 1) / 2],
            cases[cases.len() - 1],
        );
        for (role, (value, case)) in [("worst", worst), ("median", median), ("best", best)] {
            let caption = format!("{role}: {case}, dice {value:.3}");
            assert!(slices.contains(&caption), "{name}: {caption}");
        }
    }
    assert_eq!(
        slices.matches("<img ").count(),
        2 * 3 * 2 + 3,
        "two pictures per case shown of each example, the truth alone for the crasher's"
    );
    assert!(
        slices.contains("no prediction mask at predictions/crasher/masks/"),
        "{slices}"
    );
    assert!(html.contains("<a href=\"#slices\">"));

    // Every submission and team; hostile text only as text.
    for name in ["threshold-baseline", "random-guess", "crasher"] {
        assert!(html.contains(name), "{name}");
    }
    assert!(!html.contains(HOSTILE_TEAM));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!html.contains("<img src=x") && !html.contains("onerror=alert(2)>"));
    assert!(!html.contains("<a href=\"https://evil.example\">"));
    // The organizers' view quotes the failing program's stderr, escaped.
    assert!(
        html.contains("&lt;/pre&gt;&lt;img src=x onerror=alert(2)&gt;"),
        "the log excerpt of the failed cases"
    );
    assert!(html.contains("<h3>Failed cases</h3>"));

    // report.md beside it, the hostile team escaped for Markdown.
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    // The baseline takes no rank, but the team beating the crasher is no plain winner
    // while it does not beat the baseline.
    assert!(
        md.contains("No winner above the baseline: the best team, **random-guess**")
            && md.contains("NO TEAM BEATS THE BEST BASELINE, threshold-baseline")
            && !md.contains("Winner:"),
        "{md}"
    );
    assert!(!md.contains(HOSTILE_TEAM), "{md}");
}

/// `podium report RUN_DIR --out FILE --plots DIR`, which must succeed.
fn podium_report(out: &Path, html: &Path, plots: &Path) {
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_podium"))
        .arg("report")
        .arg(out)
        .arg("--out")
        .arg(html)
        .arg("--plots")
        .arg(plots)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(stdout.contains("Report for the judges:"), "{stdout}");
}

/// The report without its segmentation slices.
fn without_slices(html: &str) -> String {
    let start = html.find("<h2 id=\"slices\">").unwrap();
    let end = html.find("<h2 id=\"ranking\">").unwrap();
    format!("{}{}", &html[..start], &html[end..])
}

#[test]
fn podium_report_redraws_the_same_report_and_writes_every_chart() {
    let dir = tempfile::tempdir().unwrap();
    let out = hostile_round(dir.path(), "test");
    let plots = dir.path().join("plots");
    let redrawn = dir.path().join("copy/report.html");
    podium_report(&out, &redrawn, &plots);
    let original = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(
        std::fs::read_to_string(&redrawn).unwrap(),
        original,
        "the report redrawn from report-data.json is the one the round wrote"
    );
    assert!(dir.path().join("copy/report.md").is_file());

    // Without the challenge and its truth, everything but the slices is drawn from the
    // round's folder alone, and the slices say what they miss.
    std::fs::remove_dir_all(dir.path().join("covid19-ct")).unwrap();
    let orphan = dir.path().join("orphan/report.html");
    podium_report(&out, &orphan, &dir.path().join("orphan-plots"));
    let orphan = std::fs::read_to_string(&orphan).unwrap();
    assert_eq!(without_slices(&orphan), without_slices(&original));
    let slices = between(&orphan, "<h2 id=\"slices\">", "<h2 id=\"ranking\">");
    assert!(
        slices.contains("could not be read")
            && slices.contains("covid19-ct")
            && !slices.contains("<img"),
        "{slices}"
    );

    let data = ReportData::read(&out).unwrap();
    let charts = figures::all(&data.scores, &data.analysis, figures::Detail::PerCase);
    for chart in &charts {
        let svg = std::fs::read_to_string(plots.join(format!("{}.svg", chart.stem))).unwrap();
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{}",
            chart.stem
        );
        let png = std::fs::read(plots.join(format!("{}.png", chart.stem))).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{}", chart.stem);
        // Twice the SVG's size, and not blank: drawn text and lines compress worse than white.
        let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
        assert_eq!(width, chart.width * 2, "{}", chart.stem);
        assert!(png.len() > 8_000, "{}: {} bytes", chart.stem, png.len());
    }
    // The slices as PNG: per example submission three cases, with both masks and with the
    // truth alone; the crasher's three cases with the truth alone.
    let slice_pngs: Vec<String> = std::fs::read_dir(&plots)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("segmentation-slice-"))
        .collect();
    assert_eq!(slice_pngs.len(), 2 * 3 * 2 + 3, "{slice_pngs:?}");
    for name in &slice_pngs {
        let png = std::fs::read(plots.join(name)).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{name}");
    }
    for role in ["worst", "median", "best"] {
        let prefix = format!("segmentation-slice-threshold-baseline-{role}-");
        assert!(
            slice_pngs
                .iter()
                .any(|n| n.starts_with(&prefix) && n.ends_with("-truth.png")),
            "{prefix}"
        );
    }
    assert_eq!(
        std::fs::read_dir(&plots).unwrap().count(),
        2 * charts.len() + slice_pngs.len(),
        "every chart as SVG and PNG, the slices as PNG, nothing else"
    );
    // Stems are unique and file-name safe, even for the hostile team's charts.
    for chart in &charts {
        assert!(chart
            .stem
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    }

    // A folder without report data gets a message that says what to do.
    let failed = std::process::Command::new(env!("CARGO_BIN_EXE_podium"))
        .arg("report")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("report-data.json") && stderr.contains("podium rescore"),
        "{stderr}"
    );
}

/// The team view of the round in `out`, written beside it; `hidden` is what its phase must be.
fn team_view(out: &Path, hidden: bool) -> String {
    let data = ReportData::read(out).unwrap();
    assert_eq!(data.receipt.hidden, hidden);
    let html = out.with_file_name("team").join("report.html");
    podium::report::write_report(
        out,
        &data.refs(),
        &ReportOptions {
            view: View::Team,
            html: html.clone(),
            plots: None,
        },
    )
    .unwrap();
    std::fs::read_to_string(&html).unwrap()
}

#[test]
fn the_team_view_of_a_hidden_phase_shows_no_program_output_and_no_per_case_value() {
    let dir = tempfile::tempdir().unwrap();
    let out = hostile_round(dir.path(), "test");
    let html = team_view(&out, true);
    assert_self_contained(&html);
    assert!(html.contains("team view"));
    // podium's own message for the failed cases, never the program's output.
    assert!(html.contains("exit code 3"), "team-safe message");
    assert!(
        !html.contains("onerror=alert(2)"),
        "no log line of the program"
    );
    assert!(!html.contains("end of stderr"));
    // No per-case value: no worst cases, no per-case chart; the aggregates stay.
    assert!(!html.contains("Worst cases"));
    for per_case in ["dice per case", "predicted vs true", "Bland-Altman"] {
        assert!(!html.contains(per_case), "{per_case}");
    }
    // Not even a ROC curve: read in the order of the team's own scores, each step of it is one
    // case's hidden label.
    assert!(!html.contains("ROC ("));
    assert!(html.contains("Bootstrap ranks: consensus"));
    assert!(
        html.contains("<table class=\"confusion\">"),
        "aggregate confusion matrices stay"
    );
    // No segmentation slice: the truth outlined is the hidden truth.
    assert!(!html.contains("<img"), "no image at all");
    assert!(html.contains("Not shown in the team view of a hidden phase"));
}

#[test]
fn the_team_view_of_a_public_phase_quotes_the_program_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = hostile_round(dir.path(), "dev");
    let html = team_view(&out, false);
    assert!(html.contains("&lt;/pre&gt;&lt;img src=x onerror=alert(2)&gt;"));
    assert!(html.contains("Worst cases") && html.contains("dice per case"));
    // A public phase's truth is the teams' already: its slices are shown.
    assert!(html.contains("data:image/png;base64,"));
}

/// A round with nothing to draw case by case must still get its report: one baseline and a
/// submission that fails every case, no bootstrap, and failed cases excluded, not scored worst.
#[test]
fn a_degenerate_round_still_gets_a_whole_report() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("covid19-ct");
    podium::demo::init_covid19_ct(
        &root,
        &podium::demo::GenerationStamp::new(3, podium::demo::Size::Small, 11),
        &|_| {},
    )
    .unwrap();
    let toml = root.join("challenge.toml");
    let text = std::fs::read_to_string(&toml)
        .unwrap()
        .replace("bootstrap_resamples = 1000", "bootstrap_resamples = 0")
        .replace("missing = \"worst\"", "missing = \"exclude\"");
    std::fs::write(&toml, text).unwrap();
    let challenge = podium::challenge::Challenge::load(&root).unwrap();
    assert_eq!(challenge.ranking.bootstrap_resamples, 0);
    let subs = dir.path().join("subs");
    binary_submission(&subs, "random-guess", &workspace_binary("random-guess"));
    script_submission(&subs, "crasher", "exit 3");
    let out = dir.path().join("out");
    process_round(&challenge, &subs, &out);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_self_contained(&html);
    for section in [
        "summary",
        "leaderboard",
        "tasks",
        "ranking",
        "runs",
        "receipt",
    ] {
        assert!(
            html.contains(&format!("<h2 id=\"{section}\">")),
            "{section}"
        );
    }
    // Only the baseline has values; the crasher, ranked alone, still shows in every table.
    let data = ReportData::read(&out).unwrap();
    let charts = figures::all(&data.scores, &data.analysis, figures::Detail::PerCase);
    assert_eq!(svg_outside_subgroups(&html), charts.len());
    assert!(
        !charts.iter().any(|f| f.stem.starts_with("ranking-blob")),
        "no bootstrap, no blob"
    );
    assert!(html.contains("crasher") && html.contains("Failed cases"));
}
