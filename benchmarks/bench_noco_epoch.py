"""Time one NoCo training epoch at FB15K-DB15K scale on synthetic inputs.

One epoch = forward over all entities + loss over one batch of links +
backward + AdamW step (the reference runs' 20 % split has 2,570 training pairs,
all in one batch of at most 3,500), run by kgalign's TrainingLoop with profiling on. Reports the median of ``--epochs`` timed
epochs after one warm-up epoch, the forward/loss/backward split of the median
epoch, the median CPU seconds per epoch (both threads together; on an idle
machine the wall time is about half of it), and the process's peak RSS.

    python benchmarks/bench_noco_epoch.py                 # NoCo, 2 threads
    python benchmarks/bench_noco_epoch.py --model meaformer --json
    python benchmarks/bench_noco_epoch.py --device cuda --amp bf16 --epochs 10   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process (all threads): less sensitive to other jobs than wall time."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="noco")
    ap.add_argument("--entities", type=int, default=27_793)
    ap.add_argument("--edges", type=int, default=680_000, help="directed edges in edge_index (both directions)")
    ap.add_argument("--links", type=int, default=2_570)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--image", type=int, default=0, help="add an image modality of this width (e.g. 4096)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="model option override")
    ap.add_argument("--amp", choices=["off", "bf16"], default="off", help="torch.autocast for forward and loss")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    ap.add_argument(
        "--step", choices=["rows", "full"], default="rows", help="rows: per-row modules on the loss's rows (train default); full: all rows"
    )
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--torch-profile",
        metavar="FILE",
        help="profile one extra, untimed epoch; write torch.profiler's op tables here",
    )
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from kgalign.device import resolve_device, resolve_precision
    from kgalign.models.registry import build_model
    from kgalign.models.synthetic import random_inputs
    from kgalign.training.distributed import DistInfo, wrap_model
    from kgalign.training.loop import TrainingLoop
    from kgalign.training.rowstep import RowStep

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dims = {"relation": 1000, "attribute": 1000, "numeric": 100, "name": 384}
    if args.image:
        dims["image"] = args.image
    device = resolve_device(args.device)
    inputs = random_inputs(args.entities, args.edges, dims, seed=0, missing={"name": 0.05, "numeric": 0.3, "image": 0.05})
    inputs = inputs.to(device) if device.type != "cpu" else inputs
    overrides = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    model = build_model(args.model, inputs, **overrides)
    rows_ok = bool(model.supports_minibatch or getattr(model, "supports_row_step", False))
    rng = np.random.default_rng(1)
    n1 = args.entities // 2
    links = np.stack([rng.choice(n1, args.links, replace=False), n1 + rng.choice(args.entities - n1, args.links, replace=False)], 1)
    # The training loop every run uses, one step per epoch, timing the parts of each step.
    loop = TrainingLoop(
        model,
        wrap_model(model, DistInfo(), device, RowStep(model) if args.step == "rows" and rows_ok else None),
        links,
        epochs=args.epochs + 1,
        batch_size=None,
        lr=5e-4,
        warmup=0.0,
        schedule="constant",
        weight_decay=1e-4,
        betas=(0.9, 0.999),
        eps=1e-8,
        grad_clip=0.0,
        precision=resolve_precision("bf16" if args.amp == "bf16" else "off", device),
        device=device,
        dist=DistInfo(),
        seed=0,
        profile=True,
    )
    timings = []
    for epoch in range(args.epochs + 1):
        c0 = _cpu_seconds()
        t0 = time.perf_counter()
        record = loop.run_epoch()
        loop.epoch += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall = time.perf_counter() - t0
        cpu = _cpu_seconds() - c0
        if epoch > 0:
            timings.append({"epoch": wall, **record["profile"], "cpu": cpu})
        print(f"epoch {epoch}{' (warm-up)' if epoch == 0 else ''}: {wall:.2f} s", file=sys.stderr)
    if args.torch_profile:  # one more epoch, outside the timings: the profiler's overhead stays out of them
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
            loop.run_epoch()
            loop.epoch += 1
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=40)
        table += "\n" + prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=40)
        with open(args.torch_profile, "w", encoding="utf-8") as fh:
            fh.write(table)
    med = sorted(timings, key=lambda r: r["epoch"])[len(timings) // 2]
    result = {
        "model": args.model,
        "entities": args.entities,
        "edges": int(inputs.edge_index.shape[1]),
        "links": args.links,
        "features": dims,
        "threads": args.threads,
        "amp": args.amp,
        "step": args.step if rows_ok else "full",
        "overrides": overrides,
        "epoch_s_median": round(statistics.median(r["epoch"] for r in timings), 2),
        "epochs_s": [round(r["epoch"], 2) for r in timings],
        "cpu_s_median": round(statistics.median(r["cpu"] for r in timings), 2),
        "median_split_s": {k: round(v, 2) for k, v in med.items()},
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "peak_gpu_gb": round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None,
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__,
    }
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
