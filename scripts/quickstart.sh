#!/usr/bin/env bash
# The main job, end to end on the bundled example, on a fresh machine:
# creates .venv, installs the pinned CPU environment, then
# ingest -> features -> train -> evaluate -> align -> export (owl:sameAs Turtle).
# Output goes to ${OUT:-out/quickstart}; the final links are in $OUT/links.ttl.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
OUT=${OUT:-out/quickstart}
EPOCHS=${EPOCHS:-60}
mkdir -p "$OUT"

# Serve the example's http image URLs locally (KG2 references http://127.0.0.1:8765/...).
python -m http.server 8765 --bind 127.0.0.1 -d examples >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT

set -x
kgalign ingest --force -o "$OUT/dataset" \
  --kg1 examples/kg1.ttl --kg2 examples/kg2.ttl --links examples/links.tsv --seed 0
kgalign info "$OUT/dataset"
kgalign features "$OUT/dataset" --allow-private-addresses --image-model pixels --cache-dir "$OUT/cache"
kgalign train "$OUT/dataset" --model noco --epochs "$EPOCHS" --device cpu -o "$OUT/run" --force
kgalign evaluate "$OUT/run"
kgalign align "$OUT/run" --strategy greedy --threshold 0.5 --review-threshold 0.3
kgalign export "$OUT/run" --format ttl -o "$OUT/links.ttl"
kgalign evaluate --links "$OUT/links.ttl" "$OUT/run"    # precision / recall / F1 against the test links
set +x
echo "wrote $OUT/links.ttl ($(grep -c 'sameAs' "$OUT/links.ttl" || true) owl:sameAs lines)" >&2
