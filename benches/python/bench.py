"""The Python stack on the same work as `cargo bench --bench scoring`, for docs/benchmarks.md.

Run after the Rust bench, which writes the shared files:

    pip install numpy nibabel scikit-learn medpy SimpleITK
    python3 benches/python/bench.py target/bench-data [--skip-slow]

Each figure is the median of several runs after one warm-up run (files in the page cache).
"""

import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

RUNS = 5


def timed(name, f, runs=RUNS):
    f()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    show = lambda s: f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"
    print(f"| {name} | {show(statistics.median(times))} | {show(min(times))} |", flush=True)


def main():
    data = Path(sys.argv[1])
    skip_slow = "--skip-slow" in sys.argv
    only = [a for a in sys.argv[2:] if not a.startswith("--")]
    wanted = lambda name: not only or any(o in name for o in only)
    print(f"| benchmark | Python (median of {RUNS}) | min |")
    print("|---|---|---|")

    if wanted("auc"):
        from sklearn.metrics import roc_auc_score

        rng = np.random.default_rng(1)
        positive = rng.random(10_000_000) < 0.3
        scores = rng.random(10_000_000) * 0.8 + np.where(positive, 0.2, 0.0)
        timed("auc: scikit-learn roc_auc_score of 1e7 scores", lambda: roc_auc_score(positive, scores), runs=3)

    import nibabel as nib

    truth_file, pred_file = data / "lung_truth.nii.gz", data / "lung_pred.nii.gz"
    truth = np.asarray(nib.load(truth_file).dataobj)
    pred = np.asarray(nib.load(pred_file).dataobj)

    if wanted("dice"):

        def numpy_dice():
            for label in (1, 2):
                a, b = pred == label, truth == label
                2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))

        timed("dice: numpy, 2 labels", numpy_dice)
        from medpy.metric.binary import dc

        timed("dice: medpy dc, 2 labels", lambda: [dc(pred == l, truth == l) for l in (1, 2)])

    if wanted("read"):
        timed("read: nibabel", lambda: np.asarray(nib.load(truth_file).dataobj))
        import SimpleITK as sitk

        timed("read: SimpleITK", lambda: sitk.GetArrayFromImage(sitk.ReadImage(str(truth_file))))

    if wanted("hd95") and not skip_slow:
        from medpy.metric.binary import hd95

        spacing = nib.load(truth_file).header.get_zooms()[:3]
        a, b = pred == 1, truth == 1
        timed("hd95: medpy hd95, lung-sized label 1, full volume", lambda: hd95(a, b, voxelspacing=spacing), runs=1)
        idx = np.argwhere(a | b)
        lo, hi = idx.min(0), idx.max(0) + 1
        crop = tuple(slice(l, h) for l, h in zip(lo, hi))
        timed("hd95: medpy hd95, cropped to the masks' bounding box", lambda: hd95(a[crop], b[crop], voxelspacing=spacing), runs=1)

    if wanted("score"):
        root = data / "score20"
        ids = [l.strip() for l in (root / "phases/test/input/cases.csv").read_text().splitlines()[1:] if l.strip()]

        def score20():
            for case in ids:
                t = np.asarray(nib.load(root / "phases/test/truth/masks" / f"{case}.nii.gz").dataobj)
                p = np.asarray(nib.load(root / "predictions/masks" / f"{case}.nii.gz").dataobj)
                for label in (1, 2):
                    a, b = p == label, t == label
                    2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))

        timed("score: nibabel + numpy Dice of the 20 cases (no HD95, no NSD)", score20, runs=3)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"| score: peak RSS of this Python process | {peak:.0f} MiB | |")


if __name__ == "__main__":
    main()
