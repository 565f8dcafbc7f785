#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: creates .venv, installs the pinned
# CPU environment, then runs pytest offline. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
bash scripts/setup-browser.sh   # headless Chromium + chromedriver for tests/test_review_browser.py
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONHASHSEED=0
exec .venv/bin/python -m pytest -q "$@"
