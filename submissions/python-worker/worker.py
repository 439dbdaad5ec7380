"""python-worker: an example podium submission in worker mode, standard library only.

podium starts this program once per slot (docs/contract.md, "Worker mode"). It loads its
model, says `ready`, then reads case ids from stdin, one a line: for each it reads the case
from the input folder, writes predictions.csv and masks/<case_id>.nii.gz to the output
folder and says `done <case_id>`. It exits 0 when stdin ends. Started without
PODIUM_MODE=worker (per-case mode: the Docker and Slurm backends), it predicts every case of
cases.csv once and exits.

Usage: python3 -B worker.py INPUT OUTPUT (or PODIUM_INPUT and PODIUM_OUTPUT).
"""

import os
import sys
import time

import model
import nifti

HEADER = "case_id,p_covid,p_other_pneumonia,p_normal,involvement_pct,stage\n"


def predict_case(weights, input_dir, output_dir, case_id):
    """Writes the case's mask and returns its predictions.csv row."""
    image = nifti.read(os.path.join(input_dir, "images", f"{case_id}.nii.gz"))
    mask, (p_covid, p_other, p_normal), involvement, stage = model.predict(image, weights)
    os.makedirs(os.path.join(output_dir, "masks"), exist_ok=True)
    nifti.write_mask(os.path.join(output_dir, "masks", f"{case_id}.nii.gz"), image, mask)
    return f"{case_id},{p_covid:.6f},{p_other:.6f},{p_normal:.6f},{involvement:.4f},{stage}\n"


def write_predictions(output_dir, rows):
    with open(os.path.join(output_dir, "predictions.csv"), "w") as f:
        f.write(HEADER + "".join(rows))


def main():
    input_dir = sys.argv[1] if len(sys.argv) > 1 else os.environ["PODIUM_INPUT"]
    output_dir = sys.argv[2] if len(sys.argv) > 2 else os.environ["PODIUM_OUTPUT"]
    # stdout carries the protocol; send our own prints (and any library's) to stderr.
    protocol, sys.stdout = sys.stdout, sys.stderr

    # Load once: here a small JSON file, in a real submission the network's weights.
    here = os.path.dirname(os.path.abspath(__file__))
    weights = model.load(os.path.join(here, "weights.json"))

    if os.environ.get("PODIUM_MODE") != "worker":
        with open(os.path.join(input_dir, "cases.csv")) as f:
            ids = [line.strip() for line in f.read().splitlines()[1:] if line.strip()]
        write_predictions(output_dir, [predict_case(weights, input_dir, output_dir, i)
                                       for i in ids])
        return

    print("ready", file=protocol, flush=True)
    for line in sys.stdin:
        case_id = line.strip()
        if not case_id:
            continue
        started = time.monotonic()
        # An exception ends the program with a traceback on stderr: podium fails this case
        # only and starts a new worker for the next one.
        row = predict_case(weights, input_dir, output_dir, case_id)
        write_predictions(output_dir, [row])
        print(f"{case_id}: {time.monotonic() - started:.2f} s")
        print(f"done {case_id}", file=protocol, flush=True)
    # stdin closed: no more cases; exit 0.


if __name__ == "__main__":
    main()
