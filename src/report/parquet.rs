//! Parquet copies of the long tables (`scores`, `metrics` and `ranking/*`), for analysis in
//! polars, pandas, arrow or DuckDB without CSV parsing. Built only with `--features parquet`:
//! polars takes minutes to compile, which the default build must not pay.

use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::error::{Error, Result};
use crate::ranking::analysis::RankingAnalysis;
use crate::results::RoundScores;

fn text<T>(rows: &[T], f: impl Fn(&T) -> String) -> Vec<String> {
    rows.iter().map(f).collect()
}

fn write(path: PathBuf, height: usize, columns: Vec<Column>) -> Result<PathBuf> {
    let failed = |e: PolarsError| Error::msg(format!("{}: {e}", path.display()));
    let mut frame = DataFrame::new(height, columns).map_err(failed)?;
    let file = std::fs::File::create(&path).map_err(|e| Error::io("create", &path, e))?;
    ParquetWriter::new(file)
        .finish(&mut frame)
        .map_err(failed)?;
    Ok(path)
}

/// Writes `scores.parquet`, `metrics.parquet` and `ranking/*.parquet` beside their CSVs, with
/// the same columns; an empty cell of the CSV is a null.
pub fn write_all(
    dir: &Path,
    round: &RoundScores,
    analysis: &RankingAnalysis,
) -> Result<Vec<PathBuf>> {
    let c = |name: &str, values: Vec<String>| Column::new(name.into(), values);
    let f = |name: &str, values: Vec<Option<f64>>| Column::new(name.into(), values);
    let u = |name: &str, values: Vec<u64>| Column::new(name.into(), values);
    let s = &round.case_scores;
    let a = &round.aggregates;
    let ranking = dir.join("ranking");
    std::fs::create_dir_all(&ranking).map_err(|e| Error::io("create", &ranking, e))?;
    let (m, sig, iv, rc, k) = (
        &analysis.methods,
        &analysis.significance,
        &analysis.intervals,
        &analysis.rank_counts,
        &analysis.kendall,
    );
    Ok(vec![
        write(
            dir.join("scores.parquet"),
            s.len(),
            vec![
                c("submission", text(s, |r| r.submission.clone())),
                c("task", text(s, |r| r.task.clone())),
                c("case_id", text(s, |r| r.case_id.clone())),
                c("metric", text(s, |r| r.metric.clone())),
                f("value", s.iter().map(|r| r.value).collect()),
                c("status", text(s, |r| r.status.as_str().to_string())),
            ],
        )?,
        write(
            dir.join("metrics.parquet"),
            a.len(),
            vec![
                c("submission", text(a, |r| r.submission.clone())),
                c("task", text(a, |r| r.task.clone())),
                c("metric", text(a, |r| r.metric.clone())),
                f("value", a.iter().map(|r| r.value).collect()),
                f("ci_lower", a.iter().map(|r| r.ci_lower).collect()),
                f("ci_upper", a.iter().map(|r| r.ci_upper).collect()),
                u("n", a.iter().map(|r| r.n as u64).collect()),
                c("ci_method", text(a, |r| r.ci_method.to_string())),
                c("note", text(a, |r| r.note.clone())),
            ],
        )?,
        write(
            ranking.join("methods.parquet"),
            m.len(),
            vec![
                c("method", text(m, |r| r.method.to_string())),
                c("scope", text(m, |r| r.scope.clone())),
                c("submission", text(m, |r| r.submission.clone())),
                u("rank", m.iter().map(|r| r.rank as u64).collect()),
            ],
        )?,
        write(
            ranking.join("significance.parquet"),
            sig.len(),
            vec![
                c("task", text(sig, |r| r.task.clone())),
                c("metric", text(sig, |r| r.metric.clone())),
                c("submission", text(sig, |r| r.submission.clone())),
                c("opponent", text(sig, |r| r.opponent.clone())),
                c("test", text(sig, |r| r.test.to_string())),
                f("statistic", sig.iter().map(|r| Some(r.statistic)).collect()),
                f("p_value", sig.iter().map(|r| Some(r.p_value)).collect()),
                f("p_holm", sig.iter().map(|r| Some(r.p_holm)).collect()),
                Column::new(
                    "significant".into(),
                    sig.iter().map(|r| r.significant).collect::<Vec<bool>>(),
                ),
            ],
        )?,
        write(
            ranking.join("rank_intervals.parquet"),
            iv.len(),
            vec![
                c("scope", text(iv, |r| r.scope.clone())),
                c("submission", text(iv, |r| r.submission.clone())),
                u("rank", iv.iter().map(|r| r.rank as u64).collect()),
                f(
                    "median_rank",
                    iv.iter().map(|r| Some(r.median_rank)).collect(),
                ),
                u(
                    "rank_lower",
                    iv.iter().map(|r| r.rank_lower as u64).collect(),
                ),
                u(
                    "rank_upper",
                    iv.iter().map(|r| r.rank_upper as u64).collect(),
                ),
                f("first", iv.iter().map(|r| Some(r.first)).collect()),
            ],
        )?,
        write(
            ranking.join("bootstrap_ranks.parquet"),
            rc.len(),
            vec![
                c("scope", text(rc, |r| r.scope.clone())),
                c("submission", text(rc, |r| r.submission.clone())),
                u("rank", rc.iter().map(|r| r.rank as u64).collect()),
                u("resamples", rc.iter().map(|r| r.resamples as u64).collect()),
            ],
        )?,
        write(
            ranking.join("kendall_tau.parquet"),
            k.len(),
            vec![
                c("scope", text(k, |r| r.scope.clone())),
                u("resample", k.iter().map(|r| r.resample as u64).collect()),
                f("tau", k.iter().map(|r| r.tau).collect()),
            ],
        )?,
    ])
}
