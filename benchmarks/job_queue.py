"""A resumable queue of ``kgalign train`` runs, shared by the benchmark drivers.

A job is a ``kgalign train`` command line (with ``-o RUN``) and its run directory. A run with a
``results.json`` is finished and skipped; one with checkpoints is resumed (``--resume``); any other
starts afresh (``--force``). So re-running a driver after an interruption (a session's end, a
SIGTERM) continues where it stopped and loses nothing. The command is written beside the run as
``RUN.cmd`` and its output appended to ``RUN.log``.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def run_job(cmd: list[str], run: Path, threads: int, cwd: Path) -> str:
    """Run, resume or skip one job; returns a one-line summary. ``cmd[0]`` is ``kgalign``."""
    if (run / "results.json").exists():
        return f"done already: {run.name}"
    resume = (run / "checkpoints").is_dir()
    # this interpreter's kgalign (PYTHONPATH decides which source tree it imports)
    full = [sys.executable, "-m", "kgalign.cli", *cmd[1:], "--resume" if resume else "--force"]
    run.parent.mkdir(parents=True, exist_ok=True)
    (run.parent / f"{run.name}.cmd").write_text(shlex.join(cmd) + "\n")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    t0 = time.time()
    with open(run.parent / f"{run.name}.log", "a") as log:
        rc = subprocess.run(full, cwd=cwd, env=env, stdout=log, stderr=log).returncode
    return f"{run.name}: exit {rc} after {time.time() - t0:.0f} s" + (" (resumed)" if resume else "")


def run_jobs(jobs: list[tuple[list[str], Path]], n_jobs: int, cwd: Path) -> list[str]:
    """Run ``jobs`` ``n_jobs`` at a time, the machine's cores split between them; prints each summary."""
    threads = max(1, (os.cpu_count() or 2) // max(1, n_jobs))
    messages = []
    with ThreadPoolExecutor(max(1, n_jobs)) as pool:
        for msg in pool.map(lambda job: run_job(job[0], job[1], threads, cwd), jobs):
            print(msg, file=sys.stderr, flush=True)
            messages.append(msg)
    return messages
