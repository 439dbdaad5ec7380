"""Mean Dice of each submission at each site of a demo round, from podium's own files.

Usage: python3 benches/python/per_site_dice.py ROUND_DIR PHASE_DIR
ROUND_DIR holds scores.csv (a `podium demo` or `podium run` folder); PHASE_DIR is the phase's
folder, whose truth/metadata.csv names each case's site. Standard library only.
"""

import csv
import statistics
import sys
from collections import defaultdict


def main(round_dir: str, phase_dir: str) -> None:
    with open(f"{phase_dir}/truth/metadata.csv", newline="") as f:
        site_of = {r["case_id"]: r["site"] for r in csv.DictReader(f)}
    dice = defaultdict(list)
    with open(f"{round_dir}/scores.csv", newline="") as f:
        for r in csv.DictReader(f):
            if r["task"] == "segmentation" and r["metric"] == "dice" and r["value"]:
                dice[(r["submission"], site_of[r["case_id"]])].append(float(r["value"]))
    print("submission,site,cases,mean_dice")
    for (submission, site), values in sorted(dice.items()):
        print(f"{submission},{site},{len(values)},{statistics.mean(values):.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
