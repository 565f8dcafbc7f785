#!/usr/bin/env bash
# The training step's cost against the convergence issue's baseline (issue #10 §1), back-to-back runs of
# bench_noco_epoch.py: the baseline (GATConv, every per-row module on all rows) and main's default step from a
# checkout of the baseline commit, this tree's step in fp32 and bf16; NoCo and MEAformer alternating.
#
#   git archive <baseline commit> | tar -x -C /tmp/step-base
#   git archive HEAD | tar -x -C /tmp/step-new                  # optional: a snapshot, so edits during the runs do not leak in
#   benchmarks/bench_step_cost.sh /tmp/step-base [/tmp/step-new]   # JSON per run in benchmarks/out/step_cost/, table on stdout
#
# Each run holds /tmp/kgalign-bigrun.lock (they take up to 8 GB); LOCK_ONCE=1 holds it for the whole series instead, so
# no other job's run comes between two of these. EPOCHS (default 2) timed epochs after a warm-up; ONLY="label ..."
# runs those labels alone; THREADS (default 2) torch threads per run; PREV=<dir> adds this tree's predecessor
# (noco-prev, meaformer-prev and their bf16 runs) to isolate one change.
set -euo pipefail
if [ "${LOCK_ONCE:-0}" = 1 ] && [ -z "${STEP_COST_LOCKED:-}" ]; then
  exec env STEP_COST_LOCKED=1 flock /tmp/kgalign-bigrun.lock "$0" "$@"
fi
base=$(realpath "$1")
here=$(realpath "${2:-.}")
out=$(realpath -m "${OUT:-benchmarks/out/step_cost}")
py=$(realpath -s "${PYTHON:-.venv/bin/python}")  # -s: keep the venv link
epochs=${EPOCHS:-2}
threads=${THREADS:-2}
mkdir -p "$out"

run() { # label source-dir bench-args...
  local label=$1 src=$2
  shift 2
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $label "* ]]; then return 0; fi
  local lock=(flock /tmp/kgalign-bigrun.lock)
  [ -n "${STEP_COST_LOCKED:-}" ] && lock=()
  echo "$(date -u +%H:%M:%S) $label (load $(cut -d' ' -f1 /proc/loadavg))" >&2
  (cd "$src" && PYTHONPATH="$src" "${lock[@]}" "$py" benchmarks/bench_noco_epoch.py --epochs "$epochs" --threads "$threads" --json "$@") \
    >"$out/$label.json" 2>"$out/$label.log"
}

# Most telling first (the load can end a session early): new and baseline, fp32 then bf16, then main's default step.
pyg=(--step full --set gat_impl='"pyg"')
run noco-baseline "$base" --model noco "${pyg[@]}"
run noco-new "$here" --model noco
run meaformer-baseline "$base" --model meaformer "${pyg[@]}"
run meaformer-new "$here" --model meaformer
run noco-new-bf16 "$here" --model noco --amp bf16
run meaformer-new-bf16 "$here" --model meaformer --amp bf16
run noco-main "$base" --model noco
run meaformer-main "$base" --model meaformer
run noco-no-recompute "$here" --model noco --set joint_from_blocks=false # step 1 alone (with the one-product gram)
run noco-main-bf16 "$base" --model noco --amp bf16
run meaformer-main-bf16 "$base" --model meaformer --amp bf16
if [ -n "${PREV:-}" ]; then
  prev=$(realpath "$PREV")
  run noco-prev "$prev" --model noco
  run meaformer-prev "$prev" --model meaformer
  run noco-prev-bf16 "$prev" --model noco --amp bf16
  run meaformer-prev-bf16 "$prev" --model meaformer --amp bf16
fi

"$py" - "$out" <<'PY'
import json, pathlib, sys

files = sorted(pathlib.Path(sys.argv[1]).glob("*.json"))
rows = {p.stem: json.loads(p.read_text().strip().splitlines()[-1]) for p in files if p.stat().st_size}  # unfinished runs are empty
print("| run | amp | CPU s / epoch | wall s | fwd / loss / bwd / step s | peak RSS GB | load | CPU ratio vs baseline |")
print("|---|---|---|---|---|---|---|---|")
for label, r in rows.items():
    base = rows.get(r["model"] + "-baseline")
    ratio = f"{base['cpu_s_median'] / r['cpu_s_median']:.2f}" if base else "—"
    s = r["median_split_s"]
    fwd = f"{s['forward+loss']} (fwd + loss)" if "forward+loss" in s else f"{s.get('forward', '—')} / {s.get('loss', '—')}"
    split = " / ".join([fwd, *(str(s.get(k, "—")) for k in ("backward", "step"))])
    print(f"| {label} | {r['amp']} | {r['cpu_s_median']} | {r['epoch_s_median']} | {split} | {r['peak_rss_gb']} | {r['load_avg'][0]} | {ratio} |")
PY
