"""The part of a mini-batch step that grows with the graph: the entity table's dense gradient and AdamW update.

    .venv/bin/python benchmarks/bench_entity_table.py --n 10000 100000 1000000

For each ``n`` per side: a ``(2n, hidden)`` table, a backward through ``table[rows]`` for ``--rows``
random rows (what the GAT's input gather does on a sampled subgraph) and one AdamW step; median CPU
seconds (all threads) and wall seconds of ``--steps`` steps after one warm-up. Peak memory is about
``4 * 2n * hidden * 4`` bytes (table, gradient, two moments).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch


def measure(n: int, hidden: int, rows: int, steps: int) -> dict:
    table = torch.nn.Parameter(torch.randn(2 * n, hidden) * 0.01)
    opt = torch.optim.AdamW([table], lr=1e-3)
    idx = torch.randint(0, 2 * n, (rows,), generator=torch.Generator().manual_seed(0))
    cpu, wall = [], []
    for i in range(steps + 1):
        c, t = time.process_time(), time.perf_counter()
        (table[idx] ** 2).sum().backward()
        opt.step()
        opt.zero_grad()
        if i:  # the first step creates the moments
            cpu.append(time.process_time() - c)
            wall.append(time.perf_counter() - t)
    return {"n_per_side": n, "cpu_s": round(float(np.median(cpu)), 3), "wall_s": round(float(np.median(wall)), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--rows", type=int, default=60_000, help="subgraph nodes per step")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for n in args.n:
        res = measure(n, args.hidden, args.rows, args.steps)
        res["threads"] = torch.get_num_threads()
        res["load"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(json.dumps(res))


if __name__ == "__main__":
    main()
