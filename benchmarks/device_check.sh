#!/usr/bin/env bash
# One prepared run for a borrowed GPU machine (its own python3 with CUDA torch and opencv, no registry):
#   benchmarks/device_check.sh [--device cuda|cpu] [--quick] [--out DIR]
# Runs the package from the tree with PYTHONPATH (pure-Python wheels it lacks go in ./wheels, carried along),
# the tests that exercise the networks, then benchmarks/device_check.py; everything lands in DIR (default
# $OUT, else runs/device-check). CPU dry run: benchmarks/device_check.sh --device cpu --quick
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=cuda QUICK="" DIR="${OUT:-runs/device-check}"
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --quick) QUICK="--quick"; shift ;;
    --out) DIR="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$DIR"
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -d wheels ]; then
  for w in wheels/*.whl; do PYTHONPATH="$PYTHONPATH:$PWD/$w"; done
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee "$DIR/env.txt"
# The tests that exercise the networks and the search (LFW-dependent ones skip where the data is absent).
timeout 300 "$PY" -m pytest -q -p no:cacheprovider tests/engine/recognizers/test_recognizers.py \
  tests/engine/upsamplers/test_face_sr.py tests/engine/test_probe.py tests/engine/test_batching.py \
  tests/engine/test_cache.py tests/engine/test_gallery.py tests/engine/test_fusion.py 2>&1 | tail -5 | tee "$DIR/tests.txt" || true
timeout 420 "$PY" benchmarks/device_check.py --device "$DEVICE" $QUICK --out "$DIR"
