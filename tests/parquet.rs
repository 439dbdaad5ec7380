//! With `--features parquet`, every round also writes Parquet copies of its long tables, with
//! the CSVs' rows and columns. `tests/run.sh` runs this test with the feature.
#![cfg(feature = "parquet")]

mod common;

use common::*;
use polars::prelude::*;

#[test]
fn the_parquet_tables_hold_the_csv_rows() {
    let (dir, challenge) = small_challenge(6);
    let subs = dir.path().join("subs");
    binary_submission(
        &subs,
        "threshold-baseline",
        &workspace_binary("threshold-baseline"),
    );
    binary_submission(&subs, "random-guess", &workspace_binary("random-guess"));
    let out = dir.path().join("out");
    process_round(&challenge, &subs, &out);
    for table in [
        "scores",
        "metrics",
        "ranking/methods",
        "ranking/significance",
        "ranking/rank_intervals",
        "ranking/bootstrap_ranks",
        "ranking/kendall_tau",
    ] {
        let csv = read_csv(&out.join(format!("{table}.csv")));
        let file = std::fs::File::open(out.join(format!("{table}.parquet"))).unwrap();
        let frame = ParquetReader::new(file).finish().unwrap();
        assert_eq!(frame.height(), csv.len(), "{table}");
        let columns: Vec<String> = frame
            .get_column_names()
            .iter()
            .map(|c| c.to_string())
            .collect();
        let mut expected: Vec<String> = csv[0].keys().cloned().collect();
        expected.sort();
        let mut got = columns.clone();
        got.sort();
        assert_eq!(got, expected, "{table}");
    }
    let metrics = ParquetReader::new(std::fs::File::open(out.join("metrics.parquet")).unwrap())
        .finish()
        .unwrap();
    let csv = read_csv(&out.join("metrics.csv"));
    let values = metrics.column("value").unwrap().f64().unwrap().clone();
    for (i, row) in csv.iter().enumerate() {
        match (row["value"].parse::<f64>().ok(), values.get(i)) {
            (Some(a), Some(b)) => assert!((a - b).abs() < 1e-6, "{row:?}"),
            (None, None) => {}
            other => panic!("row {i}: {other:?}"),
        }
    }
}
