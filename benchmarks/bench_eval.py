"""Ranking evaluation speed: N x N test pairs, cosine + CSLS, both directions, CPU.

Runs ``kgalign.evaluation.ranking.evaluate_embeddings`` (the code behind
`kgalign evaluate` and the trainer's evaluation) on synthetic L2-normalisable
embeddings: N linked pairs (KG1 row i matches KG2 row i, plus noise), the
benchmark protocol (candidates = the test entities of the other side). Reports
the best and median of ``--repeat`` wall timings, the CPU seconds (all threads;
less sensitive to other jobs on shared cores) and the load average.

    python benchmarks/bench_eval.py [--pairs 10000] [--dim 300] [--threads 2] [--repeat 3] [--json]

Target (docs/benchmarks.md): 10k x 10k with CSLS in both directions under 3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--block-size", type=int, default=4096)
    ap.add_argument("--csls-k", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch

    from kgalign.evaluation.ranking import evaluate_embeddings

    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    n = args.pairs
    z = torch.randn(n, args.dim, generator=g)
    emb = torch.cat([z + 0.8 * torch.randn(n, args.dim, generator=g), z + 0.8 * torch.randn(n, args.dim, generator=g)])
    links = torch.stack([torch.arange(n), n + torch.arange(n)], 1)
    load_before = os.getloadavg()
    evaluate_embeddings(emb[:2000], torch.stack([torch.arange(1000), 1000 + torch.arange(1000)], 1))  # warm-up
    times, cpu = [], []
    for _ in range(args.repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        res = evaluate_embeddings(emb, links, csls_k=args.csls_k, block_size=args.block_size)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    out = {
        "pairs": n,
        "dim": args.dim,
        "threads": args.threads,
        "seconds_best": round(min(times), 3),
        "seconds_median": round(statistics.median(times), 3),
        "seconds_all": [round(t, 3) for t in times],
        # CPU seconds of this process (all threads): wall x threads on an idle machine
        "cpu_seconds_best": round(min(cpu), 3),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "csls_l2r_hits@1": res["csls"]["l2r"]["hits@1"],
        "cosine_l2r_hits@1": res["cosine"]["l2r"]["hits@1"],
        "protocol": res["protocol"],
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k}: {v}")


if __name__ == "__main__":
    main()
