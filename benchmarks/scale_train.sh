#!/usr/bin/env bash
# Mini-batch NoCo training on a `kgalign synth` pair, the scaling table's training rows (issue 12 §3, §7): one torch
# thread, batch 1024, fan-out 5, 6 epochs, evaluation of 3,000 sampled links per split every 2 epochs (cosine),
# under /usr/bin/time -v (peak RSS, CPU seconds). Extra arguments go to `kgalign train` (e.g. --resume).
#
#   benchmarks/scale_train.sh /work/scale-data/synth-1m benchmarks/out/mbrows/train-1m 2>> train-1m.log   # append: a resumed run adds its own
#   python benchmarks/scale_train_record.py benchmarks/out/mbrows/train-1m --n 1000000 --time-log train-1m.log
set -euo pipefail
ds=$1 run=$2
shift 2
py=${PYTHON:-.venv/bin/python}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec /usr/bin/time -v "$py" -m kgalign.cli train "$ds" --model noco -o "$run" \
  --minibatch true --batch-size 1024 --epochs 6 --lr 5e-3 --warmup 0.05 --eval-every 2 --patience 2 \
  --checkpoint-every 1 --device cpu --set model.hidden=64 --set model.noise_size=64 --set train.fanout=5 \
  --set eval.sample=3000 --select-metric cosine.l2r.mrr "$@"
