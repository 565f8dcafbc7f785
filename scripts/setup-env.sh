#!/usr/bin/env bash
# Create .venv and install kgalign with the pinned CPU test environment.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
# Skip the install when pyproject.toml and constraints.txt are unchanged since the last one.
stamp=.venv/.kgalign-install-stamp
extras="dev,multilingual,ann"   # multilingual: a numpy-only offline encoder; ann: faiss-cpu; so their tests run too
want=$( (cat pyproject.toml constraints.txt; echo "$extras") | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! python -c "import kgalign" 2>/dev/null; then
  python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  # torch first: with the pin, pip keeps the local CPU build (see docs/installation.md).
  python -m pip install -q -c constraints.txt "torch==2.13.0"
  python -m pip install -q -c constraints.txt -e ".[$extras]"
  echo "$want" > "$stamp"
fi
# torchvision must never be present: it breaks transformers with the CPU torch.
if python -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('torchvision') is None)"; then
  echo "error: torchvision is installed in .venv; remove it (pip uninstall torchvision)" >&2
  exit 1
fi
