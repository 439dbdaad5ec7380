#!/usr/bin/env bash
# Runs podium's benchmarks and the Python stack's on the same files, in one session, for
# docs/benchmarks.md. Needs: pip install numpy nibabel scikit-learn medpy SimpleITK
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --bench scoring
python3 benches/python/bench.py target/bench-data auc dice read hd95
# Separately, so that its peak RSS is the scoring's alone.
python3 benches/python/bench.py target/bench-data score
