#!/usr/bin/env bash
# The GPU suite (issue 10 §5): one run of at most ~8 minutes on one GPU machine.
#
# Only the repository travels to a GPU machine, so the raw inputs are staged into an ignored folder
# first (here, where ../shared/data exists), and the machine builds the dataset and its features itself:
#
#   bash benchmarks/gpu_suite.sh stage [SHARED_DATA]     # here: copies ~11 MB into .gpu_inputs/ (git-ignored)
#   bash benchmarks/gpu_suite.sh run [OUT_DIR]           # there: carry .gpu_inputs; writes OUT_DIR (default $OUT)
#
# `run` does, with a wall-clock budget (GPU_SUITE_SECONDS, default 450 s, for all of it):
#   1. ingest FB15K-DB15K 20 % (benchmarks/prepare_datasets.py) and compute relation/attribute/numeric features;
#   2. time training epochs of every model, fp32 and bf16, one process at a time (benchmarks/bench_noco_epoch.py
#      at FB15K-DB15K scale): seconds per epoch with the forward/loss/backward/step split -> epoch_timings.jsonl;
#   3. train every model x {fp32, bf16} on the dataset for 500 epochs (the papers' budget, the models' default
#      settings, selection on valid), all rows at once on the one GPU; a row still running when the budget
#      ends gets SIGINT, checkpoints and is reported with the epochs it reached (its last evaluation);
#   4. summary.json + summary.md: one line per row (epochs, s/epoch under the shared load, valid/test figures,
#      the papers' protocol from the same run, peak GPU memory).
# Knobs (environment): GPU_SUITE_MODELS ("mclea meaformer noco mpsea"), GPU_SUITE_PRECISIONS ("off bf16"),
# GPU_SUITE_EPOCHS (500), GPU_SUITE_DEVICE (cuda), GPU_SUITE_SECONDS (450), GPU_SUITE_WORK (/tmp/kgalign-gpu-suite),
# GPU_SUITE_TIMING_EPOCHS (5; 0 skips step 2).
set -euo pipefail
cd "$(dirname "$0")/.."

stage() {
  local shared=${1:-../shared/data} dst=.gpu_inputs
  [ -f "$shared/SOURCES.md" ] || { echo "error: $shared is not the shared data folder (no SOURCES.md)" >&2; exit 2; }
  grep -qx '/.gpu_inputs/' .git/info/exclude 2>/dev/null || grep -qx '/.gpu_inputs/' .gitignore || {
    echo "error: .gpu_inputs/ is not git-ignored" >&2; exit 2; }
  rm -rf "$dst.tmp" && mkdir -p "$dst.tmp/fb15k237" "$dst.tmp/fb15k_names" "$dst.tmp/mmkg_pathfusion"
  cp "$shared/SOURCES.md" "$dst.tmp/"
  cp "$shared/fb15k237/FB15k-237.tar.gz" "$dst.tmp/fb15k237/"
  cp "$shared/fb15k_names/FB15K_mid2name.txt" "$dst.tmp/fb15k_names/"
  cp -r "$shared/fb15k_openke_partial" "$dst.tmp/"
  cp -r "$shared/mmkg_pathfusion/DB15K-FB15K" "$dst.tmp/mmkg_pathfusion/"
  rm -rf "$dst" && mv "$dst.tmp" "$dst"
  du -sh "$dst"
  echo "staged; on the GPU machine: bash benchmarks/gpu_suite.sh run \$OUT   (carry: [\".gpu_inputs\"])"
}

run() {
  local out=${1:-${OUT:-benchmarks/out/gpu_suite}}
  local py=${PYTHON:-python3} work=${GPU_SUITE_WORK:-/tmp/kgalign-gpu-suite}
  local models=${GPU_SUITE_MODELS:-mclea meaformer noco mpsea} precisions=${GPU_SUITE_PRECISIONS:-off bf16}
  local epochs=${GPU_SUITE_EPOCHS:-500} device=${GPU_SUITE_DEVICE:-cuda} budget=${GPU_SUITE_SECONDS:-450}
  local timing_epochs=${GPU_SUITE_TIMING_EPOCHS:-5}
  local t0=$SECONDS
  [ -f .gpu_inputs/SOURCES.md ] || { echo "error: no .gpu_inputs/ (run 'stage' first and carry it)" >&2; exit 2; }
  mkdir -p "$out" "$work"
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
  local log=$out/suite.log
  : > "$log"
  { echo "== $(date -u +%FT%TZ) gpu suite: models [$models] precisions [$precisions] epochs $epochs budget ${budget}s"
    "$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
              torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true; } >> "$log" 2>&1

  # 1. dataset and features
  "$py" benchmarks/prepare_datasets.py --shared .gpu_inputs --only fb_db_20 -o "$work/datasets" >> "$log" 2>&1
  "$py" -m kgalign.cli features "$work/datasets/fb_db_20" --modalities relation,attribute,numeric --image-model none \
    >> "$log" 2>&1
  echo "== data ready after $((SECONDS - t0)) s" >> "$log"

  # 2. isolated epoch timings (one process at a time, so the GPU is not shared)
  : > "$out/epoch_timings.jsonl"
  if [ "$timing_epochs" -gt 0 ]; then
    for m in $models; do for p in $precisions; do
      timeout 60 "$py" benchmarks/bench_noco_epoch.py --model "$m" --device "$device" --amp "$p" --epochs "$timing_epochs" \
        --threads 2 --json >> "$out/epoch_timings.jsonl" 2>> "$log" || echo "timing $m $p failed (exit $?)" >> "$log"
    done; done
  fi
  echo "== timings done after $((SECONDS - t0)) s" >> "$log"

  # 3. the training rows, all at once, each stopped cleanly (SIGINT -> checkpoint) at the budget
  local left=$((budget - (SECONDS - t0) - 25))
  [ "$left" -gt 30 ] || left=30
  local pids=()
  mkdir -p "$work/runs"
  for m in $models; do for p in $precisions; do
    local run=$work/runs/${m}_$p
    OMP_NUM_THREADS=2 timeout -s INT -k 20 "$left" "$py" -m kgalign.cli train "$work/datasets/fb_db_20" --model "$m" \
      --epochs "$epochs" --device "$device" --amp "$p" --eval-every 10 -o "$run" --force -q --json \
      > "$work/runs/${m}_$p.stdout" 2> "$work/runs/${m}_$p.stderr" &
    pids+=($!)
  done; done
  for pid in "${pids[@]}"; do wait "$pid" || true; done
  echo "== training rows done after $((SECONDS - t0)) s" >> "$log"

  # 4. summary
  "$py" benchmarks/gpu_suite_summary.py --runs "$work/runs" --timings "$out/epoch_timings.jsonl" --out "$out" \
    --budget "$left" >> "$log" 2>&1
  cat "$out/summary.md"
  echo "== suite done after $((SECONDS - t0)) s" | tee -a "$log"
}

case "${1:-}" in
  stage) shift; stage "$@" ;;
  run) shift; run "$@" ;;
  *) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
