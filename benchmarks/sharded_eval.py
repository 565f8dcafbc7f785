"""One process vs W torchrun processes on the ranking evaluation of random embeddings.

``--size`` links (row i of KG1 is a noisy copy of row i of KG2), candidates = the links' ends
(``--size`` x ``--size`` scores), CSLS k=3, both directions. Run in one process it times
:func:`kgalign.evaluation.ranking.evaluate_embeddings`; under torchrun (gloo) it times
:func:`kgalign.evaluation.sharded.evaluate_embeddings_sharded`. Rank 0 writes
``--out/sharded_eval-W.json`` with the seconds, the metrics and a sha256 of the ranks, so
the two files show whether the ranks are equal; it prints the JSON.

    python benchmarks/sharded_eval.py --size 20000 --out benchmarks/out/sharded
    OMP_NUM_THREADS=1 python -m torch.distributed.run --standalone --nnodes 1 --nproc_per_node 2 \\
        benchmarks/sharded_eval.py --size 20000 --out benchmarks/out/sharded
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import resource
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=20000, help="links (candidates per side)")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--noise", type=float, default=4.0, help="std of the noise added to the KG1 copies (unit-variance latents)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--out", default="benchmarks/out/sharded")
    args = ap.parse_args()

    import torch

    from kgalign.evaluation.ranking import evaluate_embeddings
    from kgalign.evaluation.sharded import QueryShard, evaluate_embeddings_sharded

    torch.set_num_threads(args.threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    shard = None
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group("gloo")
        shard = QueryShard.from_process_group()
    g = torch.Generator().manual_seed(0)
    latent = torch.randn(args.size, args.dim, generator=g)
    emb = torch.cat([latent + args.noise * torch.randn(args.size, args.dim, generator=g), latent])
    ar = torch.arange(args.size)
    links = torch.stack([ar, ar + args.size], 1)
    t0 = time.perf_counter()
    if shard is None:
        res = evaluate_embeddings(emb, links, return_ranks=True)
    else:
        res = evaluate_embeddings_sharded(emb, links, shard=shard, return_ranks=True)
    seconds = time.perf_counter() - t0
    digest = hashlib.sha256()
    for m in ("cosine", "csls"):
        for d in ("l2r", "r2l"):
            digest.update(res["ranks"][m][d].numpy().tobytes())
    if shard is not None and shard.rank != 0:
        return
    out = {
        "world_size": world,
        "size": args.size,
        "dim": args.dim,
        "threads_per_process": args.threads,
        "seconds": round(seconds, 2),
        "peak_rss_mib_rank0": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "ranks_sha256": digest.hexdigest(),
        "csls_l2r": res["csls"]["l2r"],
        "cosine_l2r": res["cosine"]["l2r"],
        "load": os.getloadavg(),
        "date": datetime.date.today().isoformat(),
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.out, f"sharded_eval-{world}.json").write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
