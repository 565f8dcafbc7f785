#!/usr/bin/env bash
# The main job, end to end on the bundled example, on a fresh machine:
# creates .venv, installs the pinned CPU environment, then
# ingest -> features -> train -> evaluate -> align -> export (owl:sameAs Turtle) -> report.
# Output goes to ${OUT:-out/quickstart}; the final links are in $OUT/links.ttl, the report in
# $OUT/run/report/index.html; it ends by printing how to open the review page.
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
kgalign report "$OUT/run"                                # HTML report with plots: $OUT/run/report/index.html
set +x
echo "wrote $OUT/links.ttl ($(grep -c 'sameAs' "$OUT/links.ttl" || true) owl:sameAs lines)" >&2
echo "report: $OUT/run/report/index.html (open it in a browser)" >&2
echo "review the pairs between the thresholds in a browser (decisions go to $OUT/run/decisions.tsv):" >&2
echo "  . .venv/bin/activate && kgalign review $OUT/run --image-dir examples/images" >&2
