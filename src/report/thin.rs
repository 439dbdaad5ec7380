//! Reports at scale (issue 18): which of a large group's per-case marks a chart draws, and
//! which case runs the "Status of every case" tables list. Small rounds are drawn whole; above
//! the thresholds below, a chart draws every case that stands out (beyond the whiskers, outside
//! the limits of agreement, the worst few) and an even sample of the rest, and says so in one
//! line. The full data stay in `scores.csv`, `values.csv`, `runs.csv` and `report-data.json`.
//!
//! docs/report.md, "Reports at scale", gives the thresholds.

/// A dot-and-box plot or a Bland–Altman plot draws every case of a submission up to this many;
/// above, a sample ([`thin`]).
pub const MAX_DOTS: usize = 200;
/// The scatter of all submissions together draws about this many points in all: each
/// submission up to `MAX_SCATTER / submissions` (at most [`MAX_DOTS`], at least
/// [`MIN_SCATTER`]) before it is thinned.
pub const MAX_SCATTER: usize = 2000;
pub const MIN_SCATTER: usize = 20;
/// A thinned group always shows its worst this many cases.
pub const WORST: usize = 5;
/// The "Status of every case" squares and tables list every case run up to this many in the
/// round (all submissions together); above, only the runs that did not end `ok`.
pub const MAX_CASE_ROWS: usize = 2000;

/// The collapsed table of pairwise tests lists every test up to this many; above, the tests
/// between submissions next to each other in each task's ranking.
pub const MAX_TEST_ROWS: usize = 1000;

/// The most points one submission's series in the all-submissions scatter draws whole.
pub fn scatter_cap(series: usize) -> usize {
    (MAX_SCATTER / series.max(1)).clamp(MIN_SCATTER, MAX_DOTS)
}

/// Which items of a group a chart draws, as indices in the group's own order.
///
/// Up to `cap` items: all of them. Above: every item that `keep` marks, and an even sample of
/// the others by rank of `key` (the item at the middle of each of `m` equal slices of the
/// others sorted by `key`, ties in the group's order), so that the sample has the shape of the
/// whole. `m` is what is left of `cap` after the kept items, but at least `cap / 2`: the bulk of
/// the group is always seen, however many stand out.
pub fn thin(key: &[f64], keep: &[bool], cap: usize) -> Vec<usize> {
    let n = key.len();
    if n <= cap {
        return (0..n).collect();
    }
    let kept = keep.iter().filter(|&&k| k).count();
    let mut rest: Vec<usize> = (0..n)
        .filter(|&i| !keep.get(i).copied().unwrap_or(false))
        .collect();
    rest.sort_by(|&a, &b| key[a].total_cmp(&key[b]).then(a.cmp(&b)));
    let m = cap.saturating_sub(kept).max(cap / 2).min(rest.len());
    let mut drawn: Vec<usize> = (0..n)
        .filter(|&i| keep.get(i).copied().unwrap_or(false))
        .collect();
    drawn.extend((0..m).map(|j| rest[((2 * j + 1) * rest.len()) / (2 * m)]));
    drawn.sort_unstable();
    drawn.dedup();
    drawn
}

/// Marks the `count` items with the largest `badness` (ties: the earlier item).
pub fn mark_worst(badness: &[f64], count: usize, keep: &mut [bool]) {
    let mut order: Vec<usize> = (0..badness.len()).collect();
    order.sort_by(|&a, &b| badness[b].total_cmp(&badness[a]).then(a.cmp(&b)));
    for &i in order.iter().take(count) {
        keep[i] = true;
    }
}

/// Marks the items with the smallest and the largest `value`, so that a thinned chart keeps
/// the axes of the whole.
pub fn mark_extremes(value: &[f64], keep: &mut [bool]) {
    let first = |better: fn(f64, f64) -> bool| {
        (0..value.len()).fold(None, |best: Option<usize>, i| match best {
            Some(b) if !better(value[i], value[b]) => Some(b),
            _ => Some(i),
        })
    };
    for i in [first(|a, b| a < b), first(|a, b| a > b)]
        .into_iter()
        .flatten()
    {
        keep[i] = true;
    }
}

/// `12345` as `12,345`, for the notes.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_group_is_drawn_whole() {
        let key: Vec<f64> = (0..MAX_DOTS).map(|i| i as f64).collect();
        let keep = vec![false; key.len()];
        assert_eq!(
            thin(&key, &keep, MAX_DOTS),
            (0..MAX_DOTS).collect::<Vec<_>>()
        );
        assert!(thin(&[], &[], MAX_DOTS).is_empty());
    }

    #[test]
    fn a_large_group_keeps_every_marked_item_and_an_even_sample() {
        let n = 1000;
        // Values in a scrambled order, so that the sample has to follow the rank, not the index.
        let key: Vec<f64> = (0..n).map(|i| ((i * 7919) % n) as f64).collect();
        let mut keep = vec![false; n];
        for i in (0..n).step_by(50) {
            keep[i] = true;
        }
        let drawn = thin(&key, &keep, 200);
        assert_eq!(drawn.len(), 200);
        assert!(
            drawn.windows(2).all(|w| w[0] < w[1]),
            "in the group's order"
        );
        for i in (0..n).step_by(50) {
            assert!(drawn.contains(&i), "kept item {i}");
        }
        // The 180 sampled values spread evenly over the range: one in every slice of ~5.3.
        let mut sampled: Vec<f64> = drawn
            .iter()
            .filter(|&&i| !keep[i])
            .map(|&i| key[i])
            .collect();
        sampled.sort_by(f64::total_cmp);
        assert_eq!(sampled.len(), 180);
        assert!(sampled[0] < 10.0 && sampled[179] > 990.0, "{sampled:?}");
        assert!(
            sampled.windows(2).all(|w| w[1] - w[0] < 10.0),
            "{sampled:?}"
        );
        // The same every time.
        assert_eq!(drawn, thin(&key, &keep, 200));
    }

    #[test]
    fn many_marked_items_still_leave_half_the_cap_for_the_rest() {
        let key: Vec<f64> = (0..1000).map(f64::from).collect();
        let keep: Vec<bool> = (0..1000).map(|i| i % 3 == 0).collect();
        let drawn = thin(&key, &keep, 200);
        assert_eq!(drawn.len(), 334 + 100);
        assert!(keep
            .iter()
            .enumerate()
            .all(|(i, &k)| !k || drawn.contains(&i)));
    }

    #[test]
    fn worst_and_extremes_are_marked() {
        let values = [3.0, 9.0, -1.0, 9.0, 5.0];
        let mut keep = vec![false; 5];
        mark_worst(&values, 2, &mut keep);
        assert_eq!(keep, [false, true, false, true, false]);
        let mut keep = vec![false; 5];
        mark_extremes(&values, &mut keep);
        assert_eq!(keep, [false, true, true, false, false]);
    }

    #[test]
    fn counts_read_in_thousands() {
        assert_eq!(thousands(7), "7");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(30000), "30,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn the_scatter_shares_its_points_among_submissions() {
        assert_eq!(scatter_cap(3), MAX_DOTS);
        assert_eq!(scatter_cap(30), 66);
        assert_eq!(scatter_cap(500), MIN_SCATTER);
    }
}
