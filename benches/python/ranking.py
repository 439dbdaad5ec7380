"""podium's ranking analysis re-implemented in vectorized numpy: the benchmark comparator.

`benches/scale.rs` (`cargo bench --bench scale`) times `podium rescore` on a round of 30
submissions x 1000 cases and, beside it, this script on the folder that rescore wrote: the same
ranking analysis as a competent organizer would write it in Python. It is not part of podium; it
reads podium's outputs and recomputes the analysis of src/ranking/ (docs/ranking.md) from the
per-case values and the raw predictions, then (without --quiet) checks it against ranking/*.csv.

What it computes, per task's primary metric, over the ranked submissions (the teams; every
submission in a round of baselines only):

- the full-data ranks under every method, per task and for the consensus (competition ranks of
  the weighted mean of the competition task ranks): mean-then-rank, median-then-rank,
  rank-then-mean, test-then-rank, and the robustness methods `worst-<subgroup>` (each task ranked
  on the submission's worst eligible level, with podium's min_cases / min_class_support rules);
- the declared method's bootstrap over cases (`[ranking] bootstrap_resamples` and `seed`): rank
  counts per scope, rank intervals (2.5 / 97.5 % by nearest rank), median rank, share first, and
  Kendall's tau-b between the full-data ranking and every resample's ranking;
- every task's significance matrix over ordered pairs, Holm-corrected over the task: one-sided
  Wilcoxon signed-rank for per-case metrics (as scipy.stats.wilcoxon with zero_method="wilcox",
  method "auto": the tie-corrected normal approximation above 50 pairs, scipy itself below),
  the paired DeLong test for a binary AUC, and for other whole-set metrics (macro AUC, kappa)
  the paired bootstrap test on the same resamples, p = (1 + #not better) / (1 + #resamples).

Inputs. Dice (and any other per-case segmentation metric) comes from podium's scores.csv, where
the missing policy is already applied; scores.csv rounds values to 6 digits, which moves a few
Wilcoxon statistics slightly (--exact-values reads the full-precision copy in report-data.json
instead, slower). Everything else is rebuilt from each submission's predictions.csv, the truth
(labels.csv) and runs.csv, with the missing policy of src/scoring/tasks.rs: with "worst", a failed
run or an absent, empty, unparsable, out-of-range or duplicated prediction becomes probability 0
for a positive case and 1 for a negative one (binary), 0 for the true class and 1 for the others
(multiclass), the end of value_range farthest from the truth (regression, whose per-case
absolute error is recomputed at full precision), the farthest level (ordinal); with "exclude",
the case is dropped for that submission.

Resamples. By default numpy's PCG64 (seeded with `[ranking] seed`), what a Python organizer would
use: intervals, rank counts, tau and the bootstrap test then agree with podium only
statistically. --podium-rng draws podium's own resamples instead (ChaCha8Rng::seed_from_u64(seed)
on stream r, random_range(0..N), ported to numpy), and then every bootstrap output agrees exactly.

How it is vectorized. All B resamples are one B x N matrix C of draw counts (a bincount of the
B x N index matrix), N cases, S submissions:
- means of per-case values: C @ values.T / C @ present.T, one BLAS product per task (identical
  submissions are computed once, so that they stay exactly tied);
- medians: cumulative draw counts in each submission's sorted order, searched per resample;
- rank-then-mean: per-case competition ranks (N x S, computed once), then C @ ranks / N;
- binary AUC (Mann-Whitney, ties 1/2): where each positive falls among the sorted negatives is
  found once (searchsorted); a resample then costs a cumulative sum of its negative counts and
  two gathers, in integers (exact, the same value as podium's to the last bit);
- macro AUC: the same per class, averaged over the classes drawn and not alone;
- weighted kappa: C @ one-hot(truth, prediction) gives every resample's confusion matrix of
  every submission at once, then the kappa from its marginals (exact integers in float64);
- competition ranks, consensus, Kendall's tau-b and rank intervals: B x S (x S) arrays;
- Wilcoxon: all pairs' differences ranked at once (row-wise sort, average ranks of tied runs);
- DeLong: the structural components of all submissions at once; their covariance matrices give
  every pair's variance.
Python loops run over tasks, submissions, classes and subgroup levels, never over cases or
resamples, except under a declared test-then-rank: its bootstrap runs the (vectorized) tests
resample by resample, as podium does (about 2 minutes here; the demo declares mean-then-rank).

Run:
    pip install numpy scipy
    python3 benches/python/ranking.py RESCORED_DIR [--quiet] [--round ROUND_DIR]
        [--podium-rng] [--exact-values] [--seed N]

RESCORED_DIR is what `podium rescore ROUND --out DIR` (or `podium run`) wrote: run.json (the
ranking settings, truth_dir, challenge_dir), scores.csv, runs.csv, ranking/*.csv. The round folder
(predictions/<submission>/predictions.csv) is --round, else RESCORED_DIR itself when it holds
round.json, else the folder above the submission folders named in run.json, else
target/bench-scale/round-30x1000. Without --quiet it prints the comparison with podium's files
and the time of each step; with --quiet one summary line. On the bench round (30 x 1000, 5 tasks,
1000 resamples) it takes about 1.3 s wall on the 2-core machine, interpreter start included.
"""

import argparse
import csv
import json
import math
import sys
import time
import tomllib
from collections import defaultdict
from pathlib import Path

import numpy as np

# scipy.stats (0.5 s to import) is needed only for Wilcoxon tests on 50 pairs or fewer, and is
# imported there.

METHODS = ("mean-then-rank", "median-then-rank", "rank-then-mean", "test-then-rank")
CONSENSUS = "consensus"
RUN_FAILURES = {"failed", "timeout", "oom", "output_limit"}
# Metrics podium keeps per case (src/challenge/metric.rs, is_per_case), and MAE's per-case form.
PER_CASE = {"dice", "iou", "hd95", "hd95_medpy", "hd95_deepmind", "nsd", "nsd_voxels", "assd",
            "assd_deepmind", "volume_error_ml"}
LOWER_IS_BETTER = {"mae", "rmse", "hd95", "hd95_medpy", "hd95_deepmind", "assd", "assd_deepmind",
                   "volume_error_ml"}


# ---------------------------------------------------------------------------------------------
# Loading


def read_table(path):
    """podium's Table::read: BOM stripped, fields trimmed, blank rows skipped. Returns (header,
    rows) or raises ValueError on a row of the wrong length (podium: the file is unusable)."""
    with open(path, encoding="utf-8-sig") as f:
        text = f.read()
    if '"' in text:
        records = list(csv.reader(text.splitlines()))
    else:
        records = [line.split(",") for line in text.splitlines()]
    if not records:
        raise ValueError(f"{path}: empty")
    if " " in text or "\t" in text:
        records = [[x.strip() for x in r] for r in records]
    header, rows = records[0], []
    for row in records[1:]:
        if all(x == "" for x in row):
            continue
        if len(row) != len(header):
            raise ValueError(f"{path}: a row has {len(row)} fields, the header {len(header)}")
        rows.append(row)
    return header, rows


def rust_float(text):
    """Rust's f64::from_str, as podium parses a number: no surrounding spaces or underscores."""
    if not text or text != text.strip() or "_" in text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def level_index(levels, text):
    """src/scoring/tasks.rs level_index: the declared level, or an integer spelling of one."""
    if text in levels:
        return levels.index(text)
    x = rust_float(text)
    if x is None or not x.is_integer():
        return None
    for i, level in enumerate(levels):
        y = rust_float(level)
        if y is not None and y == x:
            return i
    return None


def read_scores(path, wanted):
    """The rows of scores.csv whose (task, metric) is in `wanted`:
    {(task, metric): [(submission, case_id, value_text, status), ...]}."""
    text = Path(path).read_text()
    out = defaultdict(list)
    if '"' in text:  # quoted fields: the slow, general reader
        _, rows = read_table(path)
        for sub, task, case, metric, value, status in rows:
            if (task, metric) in wanted:
                out[(task, metric)].append((sub, case, value, status))
        return out
    lines = text.split("\n")
    for metric in {m for _, m in wanted}:
        needle = f",{metric},"
        for line in lines:
            if needle in line:
                sub, task, case, m, value, status = line.split(",")
                if m == metric and (task, m) in wanted:
                    out[(task, m)].append((sub, case, value, status))
    return out


class Task:
    """One task as the analysis sees it. kind: "per-case", "binary-auc", "macro-auc", "kappa"."""

    def __init__(self, spec, weight):
        self.name = spec["name"]
        self.spec = spec
        self.metric = spec["primary"]
        self.higher_is_better = self.metric not in LOWER_IS_BETTER
        self.weight = weight
        self.has_values = None  # (S,) bool: podium has this submission's values at all


def load(rescored, round_arg, need_checks, exact_values=False):
    rescored = Path(rescored)
    run = json.loads((rescored / "run.json").read_text())
    toml = Path(run["challenge_dir"]) / "challenge.toml"
    if not toml.exists():
        raise SystemExit(f"{toml} (run.json's challenge_dir) is not there: the analysis needs the "
                         "challenge's tasks")
    challenge = tomllib.loads(toml.read_text())
    settings = run["ranking"]
    missing_policy = run["scoring"]["missing"]
    entries = run["submissions"]
    teams = [e["name"] for e in entries if not e.get("baseline")]
    submissions = teams or [e["name"] for e in entries]
    truth_dir = Path(run["truth_dir"])

    if round_arg:
        round_dir = Path(round_arg)
    elif (rescored / "round.json").exists():
        round_dir = rescored
    else:
        round_dir = Path(entries[0]["dir"]).parent.parent if entries else None
        if round_dir is None or not (round_dir / "predictions").is_dir():
            round_dir = Path(__file__).resolve().parents[2] / "target/bench-scale/round-30x1000"

    # Which per-case metrics to read from scores.csv.
    wanted = set()
    for spec in challenge["tasks"]:
        primary, kind = spec["primary"], spec["kind"]
        if primary in PER_CASE:
            labels = spec.get("labels", [1])
            names = [primary] if len(labels) <= 1 else [f"{primary}_{l}" for l in labels]
            wanted.update((spec["name"], n) for n in names)
        elif need_checks and kind in ("binary-classification", "multiclass-classification"):
            wanted.add((spec["name"], "correct"))
        elif need_checks and kind in ("ordinal", "regression"):
            wanted.add((spec["name"], "abs_error"))
    scores = read_scores(rescored / "scores.csv", wanted)
    if exact_values:  # full-precision per-case values (scores.csv rounds them to 6 digits)
        report = json.loads((rescored / "report-data.json").read_text())["scores"]
        for key in [k for k in wanted if k[1] in PER_CASE or k[1].rsplit("_", 1)[0] in PER_CASE]:
            scores[key] = [(r["submission"], r["case_id"],
                            "" if r["value"] is None else repr(float(r["value"])), r["status"])
                           for r in report["case_scores"] if (r["task"], r["metric"]) == key]

    # The round's cases, in the order every index refers to: the phase's cases.csv, restricted
    # to the cases scored (a public/private split scores only some).
    scored = set()
    for rows in scores.values():
        scored.update(r[1] for r in rows)
    if not scored and challenge["tasks"]:  # no per-case task read: the first task's cases
        spec = challenge["tasks"][0]
        metric = "correct" if "classification" in spec["kind"] else "abs_error"
        rows = read_scores(rescored / "scores.csv", {(spec["name"], metric)})
        scored.update(r[1] for v in rows.values() for r in v)
    cases_csv = truth_dir.parent / "input" / "cases.csv"
    if cases_csv.exists():
        header, rows = read_table(cases_csv)
        k = header.index("case_id")
        cases = [r[k] for r in rows if r[k] in scored or not scored]
    else:
        cases = sorted(scored)
    case_index = {c: i for i, c in enumerate(cases)}
    sub_index = {s: i for i, s in enumerate(submissions)}
    S, N = len(submissions), len(cases)

    header, rows = read_table(truth_dir / "labels.csv")
    truth = {r[header.index("case_id")]: dict(zip(header, r)) for r in rows}

    def truth_value(case, column):
        v = truth.get(case, {}).get(column, "")
        return v if v != "" else None

    # Run failures (src/results: failed, timeout, oom, output_limit): no output worth scoring.
    failed = np.zeros((S, N), bool)
    header, rows = read_table(rescored / "runs.csv")
    hs, hc, hst = header.index("submission"), header.index("case_id"), header.index("status")
    for r in rows:
        if r[hst] in RUN_FAILURES and r[hs] in sub_index and r[hc] in case_index:
            failed[sub_index[r[hs]], case_index[r[hc]]] = True

    columns_of = {}

    def column(sub, name):
        """The text of column `name` of every case for submission `sub` (None where podium's
        cell is missing: no row, an empty field, no such column, an unusable file; or invalid:
        a case written twice), and whether the run of the case failed."""
        if sub not in columns_of:
            path = round_dir / "predictions" / sub / "predictions.csv"
            table = {}
            try:
                header, rows = read_table(path)
                if "case_id" in header:
                    k = header.index("case_id")
                    at = [None] * N
                    for r in rows:
                        c = case_index.get(r[k])
                        if c is None:
                            continue  # unknown case id: ignored
                        at[c] = False if at[c] is not None else r  # False: written twice
                    for j, h in enumerate(header):
                        table[h] = [r[j] if r and r[j] != "" else None for r in at]
            except (OSError, ValueError):
                pass  # unusable: every cell missing
            columns_of[sub] = table
        texts = columns_of[sub].get(name, [None] * N)
        s = sub_index[sub]
        return [None if failed[s, c] else t for c, t in enumerate(texts)]

    def numbers(texts, low=-math.inf, high=math.inf):
        """Parsed finite numbers within [low, high]; NaN where podium finds none."""
        out = np.full(len(texts), np.nan)
        for c, t in enumerate(texts):
            if t is not None:
                x = rust_float(t)
                if x is not None and math.isfinite(x) and low <= x <= high:
                    out[c] = x
        return out

    tasks = []
    for spec in challenge["tasks"]:
        task = Task(spec, float(settings["weights"].get(spec["name"], 1.0)))
        kind, primary = spec["kind"], spec["primary"]
        worst_policy = missing_policy == "worst"
        truth_texts = [truth_value(c, spec["truth"]) for c in cases]
        if kind == "regression" and primary == "mae":
            # The absolute error of every case, as src/scoring/tasks.rs computes it (scores.csv
            # holds it rounded): a missing or out-of-range prediction is the end of the range
            # farthest from the truth.
            task.kind = "per-case"
            low, high = (float(x) for x in spec["value_range"])
            t = numbers(truth_texts)
            has_truth = ~np.isnan(t)
            worst = np.where(t - low > high - t, low, high)
            x = np.stack([numbers(column(sub, spec["prediction"]), low, high)
                          for sub in submissions])
            if worst_policy:
                x = np.where(np.isnan(x), worst, x)
            task.present = has_truth & ~np.isnan(x)
            task.values = np.where(task.present, np.abs(x - t), 0.0)
            task.has_values = np.ones(S, bool)
        elif primary in PER_CASE:
            task.kind = "per-case"
            labels = spec.get("labels", [1])
            names = [primary] if len(labels) <= 1 else [f"{primary}_{l}" for l in labels]
            sums = np.zeros((S, N))
            present = np.ones((S, N), bool)
            any_row = np.zeros((S, N), bool)
            for name in names:
                v = np.zeros((S, N))
                m = np.zeros((S, N), bool)
                for sub, case, value, _ in scores.get((spec["name"], name), ()):
                    s, c = sub_index.get(sub), case_index.get(case)
                    if s is None or c is None:
                        continue
                    any_row[s, c] = True
                    if value != "":
                        v[s, c] = float(value)
                        m[s, c] = True
                sums += v
                present &= m
            task.values = np.where(present, sums / len(names), 0.0)
            task.present = present
            task.has_values = any_row.any(axis=1)
        elif kind == "binary-classification" and primary == "auc":
            task.kind = "binary-auc"
            has_truth = np.array([v is not None for v in truth_texts])
            task.truth = np.array([v == spec["positive_class"] for v in truth_texts])
            p = np.stack([numbers(column(sub, spec["prediction"]), 0.0, 1.0)
                          for sub in submissions])
            if worst_policy:  # the most wrong probability: 0 for a positive, 1 for a negative
                p = np.where(np.isnan(p), np.where(task.truth, 0.0, 1.0), p)
            task.scores = np.where(has_truth, p, np.nan)
            task.kept = ~np.isnan(task.scores)
            task.has_values = np.ones(S, bool)
        elif kind == "multiclass-classification" and primary == "macro_auc":
            task.kind = "macro-auc"
            classes = spec["classes"]
            K = len(classes)
            task.truth = np.array([classes.index(v) if v in classes else -1 for v in truth_texts])
            p = np.stack([np.stack([numbers(column(sub, col), 0.0, 1.0)
                                    for col in spec["class_predictions"]], axis=1)
                          for sub in submissions])  # (S, N, K)
            unusable = np.isnan(p).any(axis=2, keepdims=True)  # any column wrong: the row
            if worst_policy:  # the true class scores 0, every other class 1
                worst = (np.arange(K)[None, :] != task.truth[:, None]).astype(float)
                p = np.where(unusable, worst[None], p)
            else:
                p = np.where(unusable, np.nan, p)
            task.scores = np.where((task.truth >= 0)[None, :, None], p, np.nan)
            task.kept = ~np.isnan(task.scores[:, :, 0])
            task.n_classes = K
            task.has_values = np.ones(S, bool)
        elif kind == "ordinal" and primary in ("quadratic_kappa", "linear_kappa"):
            task.kind = "kappa"
            levels = [str(l) for l in spec["levels"]]
            L = len(levels)
            index = lambda v: -1 if v is None else (lambda i: -1 if i is None else i)(
                level_index(levels, v))
            task.truth = np.array([index(v) for v in truth_texts])
            predicted = np.array([[index(v) for v in column(sub, spec["prediction"])]
                                  for sub in submissions]).reshape(S, N)
            if worst_policy:  # the farthest level
                worst = np.where(task.truth * 2 < L, L - 1, 0)
                predicted = np.where(predicted < 0, worst[None, :], predicted)
            task.predicted = np.where(task.truth[None, :] >= 0, predicted, -1)
            task.kept = task.predicted >= 0
            task.n_levels = L
            i, j = np.meshgrid(np.arange(L), np.arange(L), indexing="ij")
            d = np.abs(i - j).astype(float)
            task.kappa_weights = d * d if primary == "quadratic_kappa" else d
            task.has_values = np.ones(S, bool)
        else:
            raise SystemExit(f"task {spec['name']}: primary {primary} of a {kind} task is not "
                             "re-implemented here")
        tasks.append(task)

    # Subgroups for the robustness methods.
    analysis = challenge.get("analysis", {})
    subgroups = {}
    metadata_csv = truth_dir / "metadata.csv"
    if analysis.get("subgroups") and metadata_csv.exists():
        header, rows = read_table(metadata_csv)
        by_case = {r[header.index("case_id")]: dict(zip(header, r)) for r in rows}
        for column in analysis["subgroups"]:
            levels = defaultdict(list)
            for c, case in enumerate(cases):
                level = by_case.get(case, {}).get(column, "")
                if level != "":
                    levels[level].append(c)
            subgroups[column] = {k: levels[k] for k in sorted(levels)}

    return {
        "run": run, "settings": settings, "submissions": submissions, "cases": cases,
        "tasks": tasks, "scores": scores, "truth_value": truth_value, "subgroups": subgroups,
        "min_cases": analysis.get("min_cases", 10),
        "min_class_support": analysis.get("min_class_support", 5),
        "round_dir": round_dir,
    }


# ---------------------------------------------------------------------------------------------
# Ranks


def competition_ranks(values, higher_is_better):
    """Competition ("1224") ranks along the last axis; NaN (undefined) ranks after every defined
    value. values: (..., S)."""
    v = np.asarray(values, float)
    v = v if higher_is_better else -v
    defined = ~np.isnan(v)
    better = v[..., None, :] > v[..., :, None]  # [.., i, j]: j better than i (NaN: False)
    ranks = 1 + better.sum(axis=-1)
    return np.where(defined, ranks, 1 + defined.sum(axis=-1, keepdims=True))


def consensus(task_ranks, weights):
    """Competition ranks (lower is better) of the weighted mean of the task ranks, summed task by
    task in declaration order as podium does. task_ranks: list of (..., S)."""
    total = float(sum(weights))
    if total <= 0:
        return np.ones_like(task_ranks[0])
    acc = np.zeros(task_ranks[0].shape)
    for r, w in zip(task_ranks, weights):
        acc = acc + r * w
    return competition_ranks(acc / total, False)


def finite_or_nan(x):
    x = np.asarray(x, float)
    return np.where(np.isfinite(x), x, np.nan)


# ---------------------------------------------------------------------------------------------
# Aggregates on count matrices: C is (R, N), R rows of draw counts (all ones = the full data).


def unique_rows(task):
    """Distinct submissions of a per-case task (identical values stay exactly tied)."""
    key = np.concatenate([task.values, task.present.astype(float)], axis=1)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    return first, inverse.ravel()


def per_case_mean(task, C, exact=False):
    """(R, S) mean over the drawn present values; NaN where none (or a non-finite value) was
    drawn. exact: sum case by case in order (np.cumsum), as podium's full-data mean does."""
    first, inverse = unique_rows(task)
    values, present = task.values[first], task.present[first]
    finite = np.isfinite(values)
    bad = present & ~finite
    v = np.where(present & finite, values, 0.0)
    if exact:  # the full data, C a single row of ones: sequential sums, bit for bit podium's
        mask = C[0] > 0
        sums = np.cumsum(v[:, mask], axis=1)[:, -1:].T if mask.any() else np.zeros((1, len(v)))
        counts = present[:, mask].sum(axis=1)[None, :].astype(float)
        poisoned = bad[:, mask].any(axis=1)[None, :]
    else:
        sums = C @ v.T
        counts = C @ present.T.astype(float)
        poisoned = (C @ bad.T.astype(float)) > 0 if bad.any() else np.zeros(sums.shape, bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where((counts > 0) & ~poisoned, sums / counts, np.nan)
    return mean[:, inverse]


def per_case_median(task, C):
    """(R, S) median of the drawn present values, as podium's median_of."""
    first, inverse = unique_rows(task)
    out = np.full((C.shape[0], len(first)), np.nan)
    for u, s in enumerate(first):
        idx = np.flatnonzero(task.present[s])
        if idx.size == 0:
            continue
        order = idx[np.argsort(task.values[s, idx], kind="stable")]
        vals = task.values[s, order]
        cum = np.cumsum(C[:, order], axis=1)
        total = cum[:, -1]
        lo = np.minimum((cum <= ((total - 1) // 2)[:, None]).sum(axis=1), len(vals) - 1)
        hi = np.minimum((cum <= (total // 2)[:, None]).sum(axis=1), len(vals) - 1)
        med = np.where(total % 2 == 1, vals[hi], (vals[lo] + vals[hi]) / 2.0)
        out[:, u] = np.where(total > 0, med, np.nan)
    return out[:, inverse]


def case_ranks(task):
    """(N, S) competition ranks of the submissions on every case (undefined: last)."""
    v = np.where(task.present & np.isfinite(task.values), task.values, np.nan)
    return competition_ranks(v.T, task.higher_is_better).astype(float)


def binary_auc(scores, truth, kept, C):
    """(R,) Mann-Whitney AUC (ties count 1/2) of one score over the multisets C (integer draw
    counts); NaN unless both classes were drawn. Each positive case beats the drawn negatives
    scored below it and ties those scored equal: with the negatives sorted once, where each
    positive falls among them (searchsorted) does not depend on the resample, so a resample
    costs one cumulative sum of its negative counts and two gathers. Exact: integer sums, one
    final division (podium's BinaryAuc gives the same value to the last bit)."""
    idx = np.flatnonzero(kept)
    order = idx[np.argsort(scores[idx], kind="stable")]
    positive = truth[order]
    pos_cases, neg_cases = order[positive], order[~positive]
    neg_scores = scores[neg_cases]
    below = np.searchsorted(neg_scores, scores[pos_cases], "left")
    below_or_tied = np.searchsorted(neg_scores, scores[pos_cases], "right")
    wide = np.int64 if 4 * C.shape[1] ** 2 >= 2**31 else C.dtype
    drawn_pos = C[:, pos_cases].astype(wide, copy=False)
    cum = np.zeros((C.shape[0], len(neg_cases) + 1), wide)  # drawn negatives below position
    np.cumsum(C[:, neg_cases], axis=1, out=cum[:, 1:])
    twice = cum[:, below]
    twice += cum[:, below_or_tied]  # 2 x (negatives below) + (negatives tied)
    twice *= drawn_pos
    twice_u = twice.sum(axis=1, dtype=np.int64)
    m = drawn_pos.sum(axis=1, dtype=np.int64)
    n = cum[:, -1].astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((m > 0) & (n > 0), twice_u / (2.0 * m * n), np.nan)


def whole_set(task, C, keep=False):
    """(R, S) the whole-set primary metric of every submission on every row of C. The values on
    the bootstrap's count matrix are computed once and kept (the stability bootstrap and the
    paired bootstrap test share them)."""
    cached = getattr(task, "cached", None)
    if cached is not None and cached[0] is C:
        return cached[1]
    S = len(task.has_values)
    out = np.full((C.shape[0], S), np.nan)
    Ci = C.astype(np.int32)  # integer draw counts for the exact AUC sums
    if task.kind == "binary-auc":
        for s in range(S):
            out[:, s] = binary_auc(task.scores[s], task.truth, task.kept[s], Ci)
    elif task.kind == "macro-auc":
        K = task.n_classes
        for s in range(S):
            kept = task.kept[s]
            drawn = np.stack([Ci[:, kept & (task.truth == k)].sum(axis=1) for k in range(K)], 1)
            total = drawn.sum(axis=1, keepdims=True)
            included = (drawn > 0) & (drawn < total)
            acc = np.zeros(C.shape[0])
            for k in range(K):
                if not included[:, k].any():
                    continue
                auc = binary_auc(task.scores[s, :, k], task.truth == k, kept, Ci)
                acc = acc + np.where(included[:, k], auc, 0.0)
            n_inc = included.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[:, s] = np.where(n_inc > 0, acc / n_inc, np.nan)
    elif task.kind == "kappa":
        L = task.n_levels
        pair = np.where(task.kept, task.truth[None, :] * L + task.predicted, -1)  # (S, N)
        onehot = np.zeros((C.shape[1], S * L * L))
        cols = (np.arange(S)[:, None] * L * L + pair)
        rows = np.broadcast_to(np.arange(C.shape[1]), pair.shape)
        onehot[rows[task.kept], cols[task.kept]] = 1.0
        confusion = (C @ onehot).reshape(C.shape[0], S, L, L)  # exact integer counts
        n = confusion.sum(axis=(2, 3))
        observed = (confusion * task.kappa_weights).sum(axis=(2, 3))
        r, c = confusion.sum(axis=3), confusion.sum(axis=2)
        expected = np.einsum("bsi,ij,bsj->bs", r, task.kappa_weights, c)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where((n > 0) & (expected > 0), 1.0 - observed * n / expected, np.nan)
    if keep:
        task.cached = (C, out)
    return out


def aggregates(task, method, C, exact=False):
    """(R, S) values to rank and whether higher is better, under `method` (not test-then-rank).
    A submission without values is undefined (ranks last)."""
    if task.kind == "per-case":
        if method == "rank-then-mean" and task.has_values.all():
            ranks = task.case_ranks
            return (C @ ranks) / C.sum(axis=1, keepdims=True), False
        if method == "median-then-rank":
            values = per_case_median(task, C)
        else:
            values = per_case_mean(task, C, exact)
    else:
        values = whole_set(task, C)
    values = np.where(task.has_values[None, :], finite_or_nan(values), np.nan)
    return values, task.higher_is_better


# ---------------------------------------------------------------------------------------------
# Paired tests


_erfc = np.frompyfunc(math.erfc, 1, 1)


def normal_upper_tail(z):
    """P(Z > z), as podium's 0.5 * erfc(z / sqrt 2) (libm's erfc; math.erfc is the C library's)."""
    return _erfc(np.asarray(z, float) / math.sqrt(2.0)).astype(float) * 0.5


def rankdata_rows(x):
    """Average ranks (ties share the mean rank) along each row, as scipy.stats.rankdata."""
    x = np.atleast_2d(x)
    order, ranks, _, _ = row_average_ranks(x, np.full(len(x), x.shape[1]))
    out = np.empty_like(ranks)
    np.put_along_axis(out, order, ranks, axis=1)
    return out


def row_average_ranks(keys, n):
    """Average ranks 1..n of the n smallest keys of each row (rows padded with +inf beyond n),
    in sorted order, with the sum over positions of (t^2 - 1) = sum over tie groups of t^3 - t."""
    order = np.argsort(keys, axis=1, kind="stable")
    s = np.take_along_axis(keys, order, axis=1)
    P, W = s.shape
    pos = np.broadcast_to(np.arange(W), (P, W))
    start_flag = np.ones((P, W), bool)
    start_flag[:, 1:] = s[:, 1:] != s[:, :-1]
    start = np.maximum.accumulate(np.where(start_flag, pos, 0), axis=1)
    end_flag = np.ones((P, W), bool)
    end_flag[:, :-1] = start_flag[:, 1:]
    end = np.minimum.accumulate(np.where(end_flag, pos, W - 1)[:, ::-1], axis=1)[:, ::-1]
    ranks = (start + end) / 2.0 + 1.0
    inside = pos < n[:, None]
    t = (end - start + 1).astype(float)
    ties = np.where(inside, t * t - 1.0, 0.0).sum(axis=1)
    return order, ranks, inside, ties


def wilcoxon_pairs(x, y, valid, correction):
    """One-sided Wilcoxon signed-rank tests of "x > y", row by row (P pairs x W cases), as
    scipy.stats.wilcoxon(zero_method="wilcox", method="auto"): returns W+, p of x > y, p of
    y > x, and whether a test exists (some non-zero difference)."""
    d = np.where(valid, x - y, 0.0)
    nonzero = valid & (d != 0)
    n = nonzero.sum(axis=1)
    n_total = valid.sum(axis=1)
    keys = np.where(nonzero, np.abs(d), np.inf)
    order, ranks, inside, ties = row_average_ranks(keys, n)
    d_sorted = np.take_along_axis(d, order, axis=1)
    w_plus = np.where(inside & (d_sorted > 0), ranks, 0.0).sum(axis=1)
    w_minus = n * (n + 1) / 2.0 - w_plus
    nf = n.astype(float)
    mean = nf * (nf + 1) / 4.0
    var = nf * (nf + 1) * (2 * nf + 1) / 24.0 - ties / 48.0
    cc = 0.5 if correction else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(np.where(var > 0, var, 1.0))
        p_ab = np.where(var > 0, normal_upper_tail((w_plus - mean - cc) / sd), 1.0)
        p_ba = np.where(var > 0, normal_upper_tail((w_minus - mean - cc) / sd), 1.0)
    small = np.flatnonzero((n_total <= 50) & (n > 0))
    if len(small):
        from scipy import stats  # the reference podium follows: exact or sign-flip p-values
    for i in small:
        xi, yi = x[i][valid[i]], y[i][valid[i]]
        kw = dict(zero_method="wilcox", correction=correction, alternative="greater")
        p_ab[i] = stats.wilcoxon(xi, yi, **kw).pvalue
        p_ba[i] = stats.wilcoxon(yi, xi, **kw).pvalue
    return w_plus, w_minus, p_ab, p_ba, n > 0


def delong_components(scores, truth):
    """DeLong's structural components of every row of scores (S, n) on the cases of truth."""
    pos, neg = scores[:, truth], scores[:, ~truth]
    m, n = pos.shape[1], neg.shape[1]
    r_all = rankdata_rows(np.concatenate([pos, neg], axis=1))
    v10 = (r_all[:, :m] - rankdata_rows(pos)) / n
    v01 = 1.0 - (r_all[:, m:] - rankdata_rows(neg)) / m
    return v10, v01


def delong_matrix(scores, truth):
    """(S, S) z of "a's AUC > b's" by the paired DeLong test, all rows on the same cases."""
    if truth.all() or not truth.any():
        return None
    v10, v01 = delong_components(scores, truth)
    m, n = v10.shape[1], v01.shape[1]
    cov10 = np.atleast_2d(np.cov(v10)) if m > 1 else np.zeros((len(v10),) * 2)
    cov01 = np.atleast_2d(np.cov(v01)) if n > 1 else np.zeros((len(v01),) * 2)
    cov = cov10 / m + cov01 / n
    var_s = np.diag(cov)
    auc = v10.mean(axis=1)
    var = var_s[:, None] + var_s[None, :] - 2.0 * cov
    diff = auc[:, None] - auc[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(var > 1e-300, diff / np.sqrt(np.where(var > 1e-300, var, 1.0)),
                     np.where(diff == 0, 0.0, np.sign(diff) * np.inf))
    return z


def holm(p):
    """Holm's step-down adjustment, in input order (ties in input order, as podium)."""
    p = np.asarray(p, float)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum((m - np.arange(m)) * p[order], 1.0)
    adjusted = np.maximum.accumulate(adjusted)
    out = np.empty(m)
    out[order] = adjusted
    return out


def pairwise_tests(task, settings, idx=None, replicates=None, full_values=None):
    """Every ordered pair's one-sided test of "a better than b", Holm-corrected over the task:
    a list of (a, b, test, statistic, p, p_holm, significant) with a running over submissions,
    then b, as podium orders them. idx: the cases (with repeats), None for all. The bootstrap
    test runs only on the full data (replicates given)."""
    S = len(task.has_values)
    sign = 1.0 if task.higher_is_better else -1.0
    correction = bool(settings.get("wilcoxon_continuity_correction", False))
    stat = np.full((S, S), np.nan)
    p = np.full((S, S), np.nan)
    exists = np.zeros((S, S), bool)
    name = None
    ok = task.has_values
    if task.kind == "per-case":
        name = "wilcoxon"
        values = task.values if idx is None else task.values[:, idx]
        present = task.present if idx is None else task.present[:, idx]
        a, b = np.triu_indices(S, 1)
        w_ab, w_ba, p_ab, p_ba, has = wilcoxon_pairs(
            values[a] * sign, values[b] * sign, present[a] & present[b], correction)
        has &= ok[a] & ok[b]
        stat[a, b], stat[b, a] = w_ab, w_ba
        p[a, b], p[b, a] = p_ab, p_ba
        exists[a, b] = exists[b, a] = has
    elif task.kind == "binary-auc":
        name = "delong"
        scores = task.scores if idx is None else task.scores[:, idx]
        kept = task.kept if idx is None else task.kept[:, idx]
        truth = task.truth if idx is None else task.truth[idx]
        if (kept == kept[0]).all():  # every submission scored the same cases: all pairs at once
            z = delong_matrix(scores[:, kept[0]], truth[kept[0]])
            if z is not None:
                stat, exists = z * sign, np.ones((S, S), bool)
        else:
            for i in range(S):
                for j in range(i + 1, S):
                    both = kept[i] & kept[j]
                    z = delong_matrix(scores[[i, j]][:, both], truth[both])
                    if z is not None:
                        stat[i, j], stat[j, i] = z[0, 1] * sign, z[1, 0] * sign
                        exists[i, j] = exists[j, i] = True
        p = normal_upper_tail(stat)
    elif replicates is not None:
        name = "bootstrap"
        observed = (full_values[:, None] - full_values[None, :]) * sign
        diffs = (replicates[:, :, None] - replicates[:, None, :]) * sign  # (B, S, S)
        defined = ~np.isnan(diffs)
        count = defined.sum(axis=0)
        not_better = (defined & (diffs <= 0)).sum(axis=0)
        stat = observed
        p = (1.0 + not_better) / (1.0 + count)
        exists = (count > 0) & ~np.isnan(observed)
    np.fill_diagonal(exists, False)
    exists &= ok[:, None] & ok[None, :]
    a, b = np.nonzero(exists)  # row-major: a, then b, as podium's loops
    p_flat = p[a, b]
    p_holm = holm(p_flat)
    alpha = float(settings.get("alpha", 0.05))
    if settings.get("significant_if", "p < alpha") == "p <= alpha":
        significant = p_holm <= alpha
    else:
        significant = p_holm < alpha
    return name, a, b, stat[a, b], p_flat, p_holm, significant


# ---------------------------------------------------------------------------------------------
# podium's own resamples (--podium-rng): resample r is ChaCha8Rng::seed_from_u64(seed) on stream
# r drawing random_range(0..N) N times (rand 0.10 / rand_chacha 0.10), here for all r at once.

M64 = (1 << 64) - 1


def pcg32_key(seed):
    """rand_core's seed_from_u64: the 32-byte key as 8 PCG32 outputs."""
    state, key = seed & M64, []
    for _ in range(8):
        state = (state * 0x5851F42D4C957F2D + 0xA17654E46FBE17F3) & M64
        xs = (((state >> 18) ^ state) >> 27) & 0xFFFFFFFF
        rot = state >> 59
        key.append(((xs >> rot) | (xs << ((32 - rot) & 31))) & 0xFFFFFFFF)
    return key


def chacha8_words(seed, streams, blocks):
    """(len(streams), 16 * blocks) uint32 output words of ChaCha8 with the key of `seed`, the
    64-bit block counter from 0 and the 64-bit nonce = stream; all blocks computed at once."""
    shape = (len(streams), blocks)
    init = [np.full(shape, c, np.uint32) for c in (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)]
    init += [np.full(shape, k, np.uint32) for k in pcg32_key(seed)]
    counter = np.broadcast_to(np.arange(blocks, dtype=np.uint64), shape)
    stream = np.broadcast_to(np.asarray(streams, np.uint64)[:, None], shape)
    for v in (counter, stream):
        init += [(v & np.uint64(0xFFFFFFFF)).astype(np.uint32),
                 (v >> np.uint64(32)).astype(np.uint32)]
    x = [a.copy() for a in init]

    def quarter(a, b, c, d):
        for (p, q, r), k in zip(((a, b, d), (c, d, b), (a, b, d), (c, d, b)), (16, 12, 8, 7)):
            x[p] += x[q]
            v = x[r] ^ x[p]
            x[r] = (v << np.uint32(k)) | (v >> np.uint32(32 - k))

    for _ in range(4):  # 8 rounds: 4 column + 4 diagonal
        quarter(0, 4, 8, 12), quarter(1, 5, 9, 13), quarter(2, 6, 10, 14), quarter(3, 7, 11, 15)
        quarter(0, 5, 10, 15), quarter(1, 6, 11, 12), quarter(2, 7, 8, 13), quarter(3, 4, 9, 14)
    return np.stack([x[i] + init[i] for i in range(16)], axis=-1).reshape(len(streams), -1)


def podium_resamples(seed, B, N):
    """(B, N) case indices of podium's resamples. random_range(0..N) on a u32 word x is
    (x * N) >> 32 (Canon's method), with a second word only when the low half exceeds 2^32 - N
    (about once in 4 million draws), handled row by row."""
    words = chacha8_words(seed, np.arange(B), math.ceil((N + 64) / 16))
    product = words.astype(np.uint64) * np.uint64(N)
    hi = (product >> np.uint64(32)).astype(np.int64)
    lo = (product & np.uint64(0xFFFFFFFF)).astype(np.int64)
    thresh = (1 << 32) - N
    idx = hi[:, :N].copy()
    for r in np.flatnonzero((lo[:, :N] > thresh).any(axis=1)):
        i, row = 0, []
        while len(row) < N:
            h, l = int(hi[r, i]), int(lo[r, i])
            i += 1
            if l > thresh:
                h += l + int(hi[r, i]) > 0xFFFFFFFF
                i += 1
            row.append(h)
        idx[r] = row
    return idx


# ---------------------------------------------------------------------------------------------
# The analysis


def ranking_of(tasks, settings, method, C, exact=False, tests_of=None):
    """Task ranks (list of (R, S)) and consensus (R, S) under `method` on the rows of C."""
    per_task = []
    for task in tasks:
        if method == "test-then-rank":
            S = len(task.has_values)
            _, a, _, _, _, _, significant = tests_of(task)
            wins = np.bincount(a[significant], minlength=S).astype(float)
            per_task.append(competition_ranks(wins[None, :], True))
        else:
            values, higher = aggregates(task, method, C, exact)
            per_task.append(competition_ranks(values, higher))
    return per_task, consensus(per_task, [t.weight for t in tasks])


def kendall_tau_b(reference, ranks):
    """(R,) Kendall's tau-b between the reference ranking (S,) and every row of ranks (R, S);
    NaN where either ranking puts every item level."""
    i, j = np.triu_indices(len(reference), 1)
    dx = np.sign(reference[i] - reference[j])
    dy = np.sign(ranks[:, i] - ranks[:, j])
    concordant = ((dx * dy) > 0).sum(axis=1)
    discordant = ((dx * dy) < 0).sum(axis=1)
    ties_x = ((dx == 0) & (dy != 0)).sum(axis=1)
    ties_y = ((dx != 0) & (dy == 0)).sum(axis=1)
    n0 = (concordant + discordant + ties_x).astype(float)
    n1 = (concordant + discordant + ties_y).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n0 > 0) & (n1 > 0),
                        (concordant - discordant) / np.sqrt(n0 * n1), np.nan)


def worst_subgroup(data, task):
    """(n_subgroups, S) each submission's worst eligible level value of the task, per subgroup."""
    N = len(data["cases"])
    out = []
    for column, levels in data["subgroups"].items():
        names = list(levels)
        C = np.zeros((len(names), N))
        for k, level in enumerate(names):
            C[k, levels[level]] = 1.0
        if task.kind == "per-case":
            values = per_case_mean(task, C)
            n = C @ task.present.T.astype(float)
        else:
            values = whole_set(task, C)
            n = C @ task.kept.T.astype(float)
        values = finite_or_nan(values)
        eligible = n >= data["min_cases"]
        if task.kind in ("binary-auc", "macro-auc"):
            spec, tv = task.spec, data["truth_value"]
            min_cs = data["min_class_support"]
            for k, level in enumerate(names):
                truth = [tv(data["cases"][c], spec["truth"]) for c in levels[level]]
                if task.kind == "binary-auc":
                    pos = sum(t == spec["positive_class"] for t in truth)
                    neg = sum(t is not None and t != spec["positive_class"] for t in truth)
                    short = pos < min_cs or neg < min_cs
                else:
                    short = any(0 < sum(t == cl for t in truth) < min_cs for cl in spec["classes"])
                if short:
                    eligible[k] = False
        values = np.where(eligible & task.has_values[None, :], values, np.nan)
        with np.errstate(all="ignore"):
            pick = np.nanmin if task.higher_is_better else np.nanmax
            worst = pick(values, axis=0)
        out.append(worst)
    return out


def analyze(data, rng_seed=None, podium_rng=False):
    settings, tasks = data["settings"], data["tasks"]
    S, N = len(data["submissions"]), len(data["cases"])
    method = settings["method"]
    B = int(settings.get("bootstrap_resamples", 1000))
    seed = int(settings.get("seed", 0) if rng_seed is None else rng_seed)
    weights = [t.weight for t in tasks]
    timings = {}
    t0 = time.perf_counter()

    for task in tasks:
        if task.kind == "per-case":
            task.case_ranks = case_ranks(task)

    # The bootstrap resamples: B x N draw counts (each row sums to N).
    if B == 0 or N == 0:
        idx = np.zeros((0, N), int)
    elif podium_rng:
        idx = podium_resamples(seed, B, N)
    else:
        idx = np.random.default_rng(seed).integers(0, N, size=(B, N))
    counts = np.zeros((B, N))
    if B > 0 and N > 0:
        counts = np.bincount((idx + N * np.arange(B)[:, None]).ravel(),
                             minlength=B * N).reshape(B, N).astype(float)
    ones = np.ones((1, N))

    # Replicates of whole-set metrics without a paired test of their own (not a binary AUC).
    replicates, full_values = {}, {}
    for task in tasks:
        paired_bootstrap = task.kind in ("macro-auc", "kappa")
        if task.kind != "per-case" and B > 0 and (paired_bootstrap or method != "test-then-rank"):
            values = finite_or_nan(whole_set(task, counts, keep=True))
            if paired_bootstrap:
                replicates[task.name] = values
                full_values[task.name] = finite_or_nan(whole_set(task, ones))[0]
    timings["whole-set metrics on the resamples"] = time.perf_counter() - t0

    # Significance matrices (full data).
    t1 = time.perf_counter()
    significance = {}
    for task in tasks:
        significance[task.name] = pairwise_tests(
            task, settings, replicates=replicates.get(task.name),
            full_values=full_values.get(task.name))
    timings["significance"] = time.perf_counter() - t1

    # Every method on the full data.
    t2 = time.perf_counter()
    full = {}
    for m in METHODS:
        per_task, overall = ranking_of(tasks, settings, m, ones, exact=True,
                                       tests_of=lambda task: significance[task.name])
        full[m] = [r[0] for r in per_task] + [overall[0]]
    timings["methods"] = time.perf_counter() - t2

    # Robustness: the worst subgroup level.
    t3 = time.perf_counter()
    robustness = {}
    worst = {task.name: worst_subgroup(data, task) for task in tasks}
    for k, column in enumerate(data["subgroups"]):
        per_task = [competition_ranks(worst[t.name][k], t.higher_is_better) for t in tasks]
        robustness[f"worst-{column}"] = per_task + [consensus(per_task, weights)]
    timings["robustness"] = time.perf_counter() - t3

    # The declared method's bootstrap.
    t4 = time.perf_counter()
    boot = None
    if B > 0 and N > 0 and S > 0:
        if method == "test-then-rank":
            rows = []
            for r in range(B):
                per_task, overall = ranking_of(
                    tasks, settings, method, None,
                    tests_of=lambda task: pairwise_tests(task, settings, idx=idx[r]))
                rows.append([x[0] for x in per_task] + [overall[0]])
            boot = [np.stack([row[k] for row in rows]) for k in range(len(tasks) + 1)]
        else:
            per_task, overall = ranking_of(tasks, settings, method, counts)
            boot = per_task + [overall]
    timings["bootstrap"] = time.perf_counter() - t4

    # Stability summaries per scope.
    t5 = time.perf_counter()
    scopes = [t.name for t in tasks] + [CONSENSUS]
    stability = {}
    if boot is not None:
        for k, scope in enumerate(scopes):
            ranks = boot[k]
            reference = full[method][k].astype(float)
            tau = kendall_tau_b(reference, ranks.astype(float))
            drawn = np.sort(ranks, axis=0)
            nearest = lambda q: drawn[min(max(math.ceil(q * B), 1), B) - 1]
            median = (drawn[(B - 1) // 2] + drawn[B // 2]) / 2.0
            first = (ranks == 1).mean(axis=0)
            rank_counts = np.stack([(ranks == r).sum(axis=0) for r in range(1, S + 1)], 1)
            stability[scope] = {
                "tau": tau, "lower": nearest(0.025), "upper": nearest(0.975),
                "median": median, "first": first, "counts": rank_counts,
            }
    timings["stability"] = time.perf_counter() - t5
    return {
        "method": method, "resamples": B, "seed": seed, "scopes": scopes, "full": full,
        "podium_rng": podium_rng,
        "robustness": robustness, "significance": significance, "stability": stability,
        "timings": timings,
    }


# ---------------------------------------------------------------------------------------------
# Comparison with podium's ranking/*.csv


def compare(data, result, rescored):
    ranking = Path(rescored) / "ranking"
    subs = data["submissions"]
    S = len(subs)
    sub_index = {s: i for i, s in enumerate(subs)}
    scopes = result["scopes"]
    method = result["method"]
    lines = []
    say = lines.append

    # Every method's full-data ranks: exact agreement expected.
    _, rows = read_table(ranking / "methods.csv")
    podium_ranks = {(m, sc, s): int(r) for m, sc, s, r in rows}
    ours = dict(result["full"])
    ours.update(result["robustness"])
    say(f"{S} submissions x {len(data['cases'])} cases, {len(data['tasks'])} tasks; declared "
        f"method {method}, {result['resamples']} resamples")
    say("")
    say("full-data ranks, every method and scope (exact agreement expected):")
    for m, per_scope in ours.items():
        agree = total = 0
        differing = []
        for k, scope in enumerate(scopes):
            for s, name in enumerate(subs):
                theirs = podium_ranks.get((m, scope, name))
                if theirs is None:
                    continue
                total += 1
                if theirs == int(per_scope[k][s]):
                    agree += 1
                else:
                    differing.append(f"{scope}/{name} {int(per_scope[k][s])} vs {theirs}")
        extra = f"; differ: {', '.join(differing[:4])}" if differing else ""
        say(f"  {m:18s} {agree}/{total} ranks identical{extra}")

    # The declared ranking.
    k = scopes.index(CONSENSUS)
    mine = result["full"][method][k]
    theirs = np.array([podium_ranks[(method, CONSENSUS, s)] for s in subs])
    order = lambda ranks: [subs[i] for i in np.lexsort((np.array(subs), ranks))]
    winner_ok = order(mine)[0] == order(theirs)[0]
    say("")
    say(f"winner under {method}: {order(mine)[0]} (podium: {order(theirs)[0]})"
        f"{'' if winner_ok else '  DIFFERENT'}; full consensus ranking "
        f"{'identical' if (mine == theirs).all() else 'DIFFERENT'}")
    say("  " + " > ".join(f"{s}({int(mine[sub_index[s]])})" for s in order(mine)))

    # Rank intervals, rank counts and Kendall's tau: statistical agreement only with numpy's
    # draws, exact with podium's (--podium-rng).
    stab = result["stability"]
    exact = result["podium_rng"]
    if stab:
        B = result["resamples"]
        _, rows = read_table(ranking / "rank_intervals.csv")
        podium_iv = {(sc, s): (int(rk), float(md), int(lo), int(up), float(fi))
                     for sc, s, rk, md, lo, up, fi in rows}
        _, rows = read_table(ranking / "kendall_tau.csv")
        podium_tau = defaultdict(lambda: np.full(B, np.nan))
        for sc, r, tau in rows:
            podium_tau[sc][int(r)] = float(tau) if tau != "" else np.nan
        _, rows = read_table(ranking / "bootstrap_ranks.csv")
        podium_counts = defaultdict(lambda: np.zeros(S + 1))
        for sc, s, rk, n in rows:
            if int(rk) <= S:
                podium_counts[(sc, s)][int(rk)] = int(n)
        say("")
        if exact:
            say("bootstrap stability on podium's own resamples (--podium-rng: ChaCha8 streams "
                "ported to numpy), so exact agreement is expected:")
        else:
            say("bootstrap stability: these resamples come from numpy's PCG64, not podium's "
                "ChaCha8 streams, so intervals, rank counts and tau agree only statistically "
                "(--podium-rng draws podium's own resamples):")
        say(f"  {'scope':15s} {'max|d lower|':>12s} {'max|d upper|':>12s} {'max|d median|':>13s}"
            f" {'max|d first|':>12s} {'TV dist':>8s}  {'mean tau (podium)':>18s} "
            + ("max|d tau_r|" if exact else "  d/SE"))
        for scope in scopes:
            st = stab[scope]
            dl = du = dm = dfirst = 0.0
            tv = []
            for s, name in enumerate(subs):
                rk, md, lo, up, fi = podium_iv[(scope, name)]
                dl = max(dl, abs(lo - st["lower"][s]))
                du = max(du, abs(up - st["upper"][s]))
                dm = max(dm, abs(md - st["median"][s]))
                dfirst = max(dfirst, abs(fi - st["first"][s]))
                p = podium_counts[(scope, name)][1:] / B
                q = st["counts"][s] / B
                tv.append(0.5 * np.abs(p - q).sum())
            mine_all, theirs_all = st["tau"], podium_tau[scope]
            tau, pt = mine_all[~np.isnan(mine_all)], theirs_all[~np.isnan(theirs_all)]
            if len(tau) == 0 or len(pt) == 0:
                taus = f"{'undefined':>18s} " if len(tau) == len(pt) == 0 else f"{'DIFFER':>18s} "
                last = "(everyone level)" if len(tau) == len(pt) == 0 else ""
            else:
                taus = f"{tau.mean():.4f} ({pt.mean():.4f}) "
                if exact:  # podium writes tau with 6 decimals
                    same_nan = (np.isnan(mine_all) == np.isnan(theirs_all)).all()
                    d = np.nanmax(np.abs(np.round(mine_all, 6) - theirs_all))
                    last = f"{d:.1e}" + ("" if same_nan else " (undefined differ)")
                else:
                    se = math.sqrt(tau.var(ddof=1) / len(tau) + pt.var(ddof=1) / len(pt)) \
                        if len(tau) > 1 and len(pt) > 1 else float("nan")
                    last = f"{(tau.mean() - pt.mean()) / se if se > 0 else 0.0:6.2f}"
            say(f"  {scope:15s} {dl:12.0f} {du:12.0f} {dm:13.1f} {dfirst:12.3f} "
                f"{np.mean(tv):8.3f}  {taus}{last}")
        say("  (TV dist: mean over submissions of the total variation distance between the two "
            "bootstrap rank distributions; " + ("max|d tau_r|: largest difference of a "
                                                "resample's tau" if exact else
                                                "d/SE: difference of the mean taus in standard "
                                                "errors") + ")")

    # Significance.
    _, rows = read_table(ranking / "significance.csv")
    podium_sig = {(t, a, b): (test, float(st), float(p), float(ph), sig == "true")
                  for t, _, a, b, test, st, p, ph, sig in rows}
    say("")
    say("significance (ordered pairs; Wilcoxon and DeLong are deterministic, the bootstrap test "
        "depends on the draws):")
    for task in data["tasks"]:
        name, a, b, stat, p, p_holm, significant = result["significance"][task.name]
        same = n = 0
        dp = dstat = 0.0
        ours_sig = 0
        theirs_sig = sum(1 for (t, _, _), v in podium_sig.items() if t == task.name and v[4])
        podium_pairs = sum(1 for (t, _, _) in podium_sig if t == task.name)
        for i in range(len(a)):
            key = (task.name, subs[a[i]], subs[b[i]])
            ours_sig += bool(significant[i])
            if key not in podium_sig:
                continue
            test, pst, pp, pph, psig = podium_sig[key]
            n += 1
            same += psig == bool(significant[i])
            dp = max(dp, abs(pp - p[i]))
            if name != "bootstrap" and np.isfinite(stat[i]) and np.isfinite(pst):
                dstat = max(dstat, abs(pst - stat[i]))
        say(f"  {task.name:15s} {name:9s} pairs {len(a)} (podium {podium_pairs}), same verdict "
            f"{same}/{n} = {same / max(n, 1):.4f}; significant {ours_sig} (podium {theirs_sig}); "
            f"max|d p| {dp:.2e}" + (f", max|d statistic| {dstat:.2e}" if name != "bootstrap"
                                    else ""))
    return lines


def cross_check_inputs(data):
    """Whether the whole-set inputs rebuilt here (missing policy included) give podium's per-case
    `correct` / `abs_error` of scores.csv."""
    subs, cases = data["submissions"], data["cases"]
    sub_index = {s: i for i, s in enumerate(subs)}
    case_index = {c: i for i, c in enumerate(cases)}
    threshold = float(data["run"]["scoring"].get("threshold", 0.5))
    out = []
    for task in data["tasks"]:
        if task.kind == "per-case" and task.spec["kind"] != "regression":
            continue  # read from scores.csv itself
        metric = "correct" if task.kind in ("binary-auc", "macro-auc") else "abs_error"
        rows = data["scores"].get((task.name, metric), [])
        agree = total = 0
        for sub, case, value, _ in rows:
            s, c = sub_index.get(sub), case_index.get(case)
            if s is None or c is None:
                continue
            total += 1
            if task.kind == "binary-auc":
                mine = None if not task.kept[s, c] else \
                    float((task.scores[s, c] >= threshold) == task.truth[c])
            elif task.kind == "macro-auc":
                row = task.scores[s, c]
                mine = None if not task.kept[s, c] else float(int(np.argmax(row)) == task.truth[c])
            elif task.kind == "kappa":
                mine = None if not task.kept[s, c] else \
                    float(abs(task.predicted[s, c] - task.truth[c]))
            else:
                mine = float(task.values[s, c]) if task.present[s, c] else None
            theirs = float(value) if value != "" else None
            if mine is not None and theirs is not None:  # scores.csv rounds to 6 digits
                agree += abs(mine - theirs) <= 1e-6 * max(1.0, abs(theirs))
            else:
                agree += mine == theirs
        out.append(f"{task.name} {agree}/{total}")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("rescored", help="the folder `podium rescore ... --out DIR` wrote")
    parser.add_argument("--round", help="the round folder (predictions/); see the docstring")
    parser.add_argument("--quiet", action="store_true", help="one summary line, no comparison")
    parser.add_argument("--seed", type=int, help="the bootstrap seed (default: [ranking] seed)")
    parser.add_argument("--podium-rng", action="store_true",
                        help="draw podium's own resamples (ChaCha8 streams, ported to numpy) "
                             "instead of numpy's PCG64: the bootstrap outputs then agree exactly")
    parser.add_argument("--exact-values", action="store_true",
                        help="read the per-case values (Dice) at full precision from "
                             "report-data.json instead of scores.csv, which rounds them to 6 "
                             "digits: a check that the remaining Wilcoxon differences come from "
                             "that rounding (slower)")
    args = parser.parse_args()

    started = time.perf_counter()
    data = load(args.rescored, args.round, need_checks=not args.quiet,
                exact_values=args.exact_values)
    loaded = time.perf_counter() - started
    result = analyze(data, args.seed, args.podium_rng)
    elapsed = time.perf_counter() - started

    method = result["method"]
    consensus_ranks = result["full"][method][-1]
    subs = data["submissions"]
    winner = subs[int(np.lexsort((np.array(subs), consensus_ranks))[0])] if subs else "-"
    if args.quiet:
        stab = result["stability"].get(CONSENSUS)
        taus = stab["tau"][~np.isnan(stab["tau"])] if stab else []
        tau = f", median consensus tau {np.median(taus):.3f}" if len(taus) else ""
        n_sig = sum(int(v[6].sum()) for v in result["significance"].values())
        print(f"numpy ranking: {len(subs)} submissions x {len(data['cases'])} cases, "
              f"{len(data['tasks'])} tasks, {result['resamples']} resamples: winner {winner} "
              f"({method}){tau}, {n_sig} significant pairs; {elapsed:.2f} s")
        return
    for line in compare(data, result, args.rescored):
        print(line)
    print("")
    print("inputs rebuilt from predictions.csv + truth + runs.csv vs scores.csv (per-case "
          "correct / abs_error): " + ", ".join(cross_check_inputs(data)))
    t = result["timings"]
    print(f"time: {elapsed:.2f} s (loading {loaded:.2f} s; " +
          ", ".join(f"{k} {v:.2f} s" for k, v in t.items()) + ")")


if __name__ == "__main__":
    sys.exit(main())
