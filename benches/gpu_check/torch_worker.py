"""A PyTorch submission for podium's GPU check: python-worker's method, with the image moved
to the GPU and a lung count computed there, so that the case really uses CUDA. Starts once
(imports torch, creates the CUDA context) in worker mode; per case otherwise."""
import os
import sys
import time

t0 = time.monotonic()
import torch  # noqa: E402

import model  # noqa: E402
import nifti  # noqa: E402
from worker import HEADER, write_predictions  # noqa: E402

protocol, sys.stdout = sys.stdout, sys.stderr


def start():
    cuda = torch.cuda.is_available()
    why = ""
    if not cuda:
        try:
            torch.cuda.init()
        except Exception as e:  # the reason CUDA is missing, for the log
            why = repr(e)
    name = torch.cuda.get_device_name(0) if cuda else "-"
    if cuda:
        torch.zeros(1 << 26, device="cuda")  # a context and 256 MiB, as a model would hold
    print(f"torch {torch.__version__} cuda={cuda} device={name} count={torch.cuda.device_count() if cuda else 0} "
          f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')} "
          f"NVIDIA_VISIBLE_DEVICES={os.environ.get('NVIDIA_VISIBLE_DEVICES', 'unset')} "
          f"start={time.monotonic() - t0:.2f}s {why}", flush=True)
    return cuda


def case(weights, cuda, input_dir, output_dir, case_id):
    t = time.monotonic()
    image = nifti.read(os.path.join(input_dir, "images", f"{case_id}.nii.gz"))
    lungs = -1
    if cuda:
        x = torch.randn(256, 256, 64, device="cuda")
        lungs = int((x < -1.0).sum().item())
        torch.cuda.synchronize()
    mask, (p_covid, p_other, p_normal), involvement, stage = model.predict(image, weights)
    os.makedirs(os.path.join(output_dir, "masks"), exist_ok=True)
    nifti.write_mask(os.path.join(output_dir, "masks", f"{case_id}.nii.gz"), image, mask)
    print(f"{case_id}: gpu_op={lungs} {time.monotonic() - t:.2f}s", flush=True)
    return f"{case_id},{p_covid:.6f},{p_other:.6f},{p_normal:.6f},{involvement:.4f},{stage}\n"


def main():
    input_dir, output_dir = sys.argv[1], sys.argv[2]
    here = os.path.dirname(os.path.abspath(__file__))
    weights = model.load(os.path.join(here, "weights.json"))
    cuda = start()
    if os.environ.get("PODIUM_MODE") != "worker":
        with open(os.path.join(input_dir, "cases.csv")) as f:
            ids = [l.strip() for l in f.read().splitlines()[1:] if l.strip()]
        write_predictions(output_dir, [case(weights, cuda, input_dir, output_dir, i) for i in ids])
        return
    print("ready", file=protocol, flush=True)
    for line in sys.stdin:
        case_id = line.strip()
        if case_id:
            row = case(weights, cuda, input_dir, output_dir, case_id)
            write_predictions(output_dir, [row])
            print(f"done {case_id}", file=protocol, flush=True)


main()
