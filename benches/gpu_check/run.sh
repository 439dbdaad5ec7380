#!/bin/bash
# podium's GPU check (issue 14) on a machine with an NVIDIA GPU and PyTorch: a real PyTorch
# submission through the sandbox and the process backend, per case and as a worker, then
# `podium check`. Run from the repository's root, with podium's release build and a bwrap
# binary (and, if that machine lacks them, bwrap's libraries in .dev/lib) in .dev/:
#   mkdir -p .dev && cp target/release/podium /usr/bin/bwrap .dev/ && bash benches/gpu_check/run.sh
# It writes /submission (the submission, with a venv holding the machine's torch) and .gpu/.
set -u
R=$(pwd); D=$R/.dev; O=${OUT:-/tmp/out}; mkdir -p "$O"
exec > >(tee "$O/log.txt") 2>&1
chmod +x "$D/podium" "$D/bwrap"
echo "== facts"; date -u; uname -r; nvidia-smi -L
nvidia-smi --query-gpu=index,uuid,pci.bus_id,memory.used --format=csv
ls -l /dev/nvidia*; echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH-unset}"
ldconfig -p | grep -E 'libcuda\.so|libnvidia-ml' ; ls /usr/local/nvidia/lib64 2>/dev/null | head -5
PYV=$(command -v python3); echo "python3=$PYV -> $(readlink -f "$PYV")"
python3 -c 'import sys,torch;print(sys.prefix,torch.__version__,torch.cuda.is_available())'
mkdir -p "$R/.bin"
if "$D/bwrap" --ro-bind / / true; then cp "$D/bwrap" "$R/.bin/bwrap"; else
  printf '#!/bin/sh\nexec /lib64/ld-linux-x86-64.so.2 --library-path %s/lib %s/bwrap "$@"\n' "$D" "$D" > "$R/.bin/bwrap"; chmod +x "$R/.bin/bwrap"; fi
export PATH="$R/.bin:$D:$PATH"
bwrap --ro-bind / / true && echo "bwrap works" || echo "bwrap FAILS"
echo "== the submission: a venv inside /submission (the same path on the host and in the sandbox)"
S=/submission; rm -rf $S; mkdir -p $S
cp submissions/python-worker/{worker.py,model.py,nifti.py,weights.json} "$R/benches/gpu_check/torch_worker.py" $S/
VENV=$(python3 -c 'import sys;print(sys.prefix)'); SP=$(python3 -c 'import sysconfig;print(sysconfig.get_paths()["purelib"])')
PYREAL=$(readlink -f "$VENV/bin/python3"); BASE=$(dirname "$(dirname "$PYREAL")"); echo "venv=$VENV base=$BASE"
case "$BASE" in /usr) PY=$PYREAL ;; *) cp -a "$BASE" $S/pybase; PY=$S/pybase/bin/$(basename "$PYREAL") ;; esac
time "$PY" -m venv --without-pip $S/venv
NSP=$($S/venv/bin/python3 -c 'import sysconfig;print(sysconfig.get_paths()["purelib"])')
time (cd "$SP" && for p in torch torch-* torchgen functorch nvidia nvidia_* triton triton-* typing_extensions* sympy sympy-* mpmath* filelock* jinja2* markupsafe* MarkupSafe* networkx* fsspec* numpy numpy-* numpy.libs cuda cuda_* cuda-*; do [ -e "$p" ] && cp -a "$p" "$NSP/"; done)
if ! $S/venv/bin/python3 -c 'import torch' ; then echo "partial copy failed: copying all"; time cp -a "$SP/." "$NSP/"; fi
du -sh $S
printf 'team = "gpu"\nname = "torch"\n[run]\nkind = "process"\nmode = "worker"\ncommand = ["venv/bin/python3", "-B", "torch_worker.py", "{input}", "{output}"]\n' > $S/submission.toml
echo "== the challenge"
C=$R/.gpu/ch; podium init --template covid19-ct "$C" --cases 8 | tail -1
sed -i 's/^memory_mb = .*/memory_mb = 32768\ngpus = 1/; s/^cpus = .*/cpus = 2/; s/^wall_time_per_case_s = .*/wall_time_per_case_s = 300/' "$C/challenge.toml"
grep -A8 '^\[limits\]' "$C/challenge.toml"
for backend in sandbox process; do for mode in worker per-case; do
  echo "== $backend, $mode"; sed -i "s/^mode = .*/mode = \"$mode\"/" $S/submission.toml
  out=$R/.gpu/out-$backend-$mode; s=$(date +%s.%N)
  podium run --challenge "$C" --phase test --submissions $S --out "$out" --jobs 1 --backend $backend --allow-unisolated 2>&1 | grep -v '^ *[0-9]  \|^---\|^rank'
  echo "round: $(python3 -c "print(round($(date +%s.%N) - $s, 2))") s"
  cat "$out/runs.csv"; grep -h -E 'torch |gpu_op' "$out"/logs/torch/*.stderr.log | head -12
done; done
echo "== podium check (sandbox, worker)"; sed -i 's/^mode = .*/mode = "worker"/' $S/submission.toml
podium check --challenge "$C" $S --backend sandbox 2>&1 | tail -8
tar czf "$O/results.tgz" -C "$R/.gpu" $(cd "$R/.gpu" && ls -d out-*/runs.csv out-*/logs out-*/run.json 2>/dev/null)
echo "== done"; date -u
