#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: creates .venv, installs the pinned
# CPU environment, lints with ruff, then runs pytest offline. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
bash scripts/setup-browser.sh   # headless Chromium + chromedriver for tests/test_review_browser.py
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONHASHSEED=0
# Lint first (config in pyproject.toml): pyflakes, pycodestyle, bugbear, import order, complexity, formatting.
.venv/bin/ruff check kgalign tests benchmarks scripts
.venv/bin/ruff format --check kgalign tests benchmarks scripts
exec .venv/bin/python -m pytest -q "$@"
