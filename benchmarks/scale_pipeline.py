"""Scaling benchmark of the first stages: `kgalign synth` -> `kgalign ingest` -> `kgalign features`.

Each stage runs as a child process under ``/usr/bin/time -v`` (wall seconds, CPU seconds, peak RSS)
and writes one JSON per (stage, size) to ``OUT/<stage>-<n>.json`` in the scaling format of issue 12
(stage, n_per_side, triples_per_side, seconds, peak_rss_gib, threads, load, date, command, extra).
Stages whose output already exists are skipped unless --force; run the big sizes under the lock:

    flock /tmp/kgalign-bigrun.lock python benchmarks/scale_pipeline.py --n 100000 \\
        --work /work/scale-data --out benchmarks/out/scale

The generated TSV files go to WORK/tsv/synth-<size>, the dataset to WORK/synth-<size>.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

KGALIGN = [sys.executable, "-m", "kgalign.cli"]


def size_label(n: int) -> str:
    return f"{n // 1_000_000}m" if n % 1_000_000 == 0 else f"{n // 1000}k" if n % 1000 == 0 else str(n)


def timed(cmd: list[str]) -> dict:
    """Run ``cmd`` under /usr/bin/time -v; its wall and CPU seconds and peak RSS."""
    t = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-3000:]}")

    def field(name: str) -> float:
        m = re.search(rf"{re.escape(name)}: ([0-9.]+)", p.stderr)
        return float(m.group(1)) if m else float("nan")

    return {
        "seconds": round(wall, 2),
        "cpu_seconds": round(field("User time (seconds)") + field("System time (seconds)"), 2),
        "peak_rss_gib": round(field("Maximum resident set size (kbytes)") / 2**20, 3),
        "stdout": p.stdout,
    }


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def record(out: Path, stage: str, n: int, triples: int, run: dict, cmd: list[str], extra: dict) -> None:
    row = {
        "stage": stage,
        "n_per_side": n,
        "triples_per_side": triples,
        "seconds": run["seconds"],
        "peak_rss_gib": run["peak_rss_gib"],
        "threads": os.cpu_count(),
        "load": load_avg(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(cmd).replace(sys.executable + " -m kgalign.cli", "kgalign"),
        "extra": {"cpu_seconds": run["cpu_seconds"], **extra},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stage}-{n}.json").write_text(json.dumps(row, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(row))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, required=True, help="entities per side")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("benchmarks/out/scale-data"), help="where TSV files and datasets go")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/scale"), help="where the JSON rows go")
    ap.add_argument("--stages", default="synth,ingest,features", help="comma-separated subset of synth,ingest,features")
    ap.add_argument("--features-args", default="", help="extra arguments for `kgalign features` (e.g. '--sparse')")
    ap.add_argument("--force", action="store_true", help="redo stages whose output exists")
    args = ap.parse_args()
    label = size_label(args.n)
    tsv, ds = args.work / "tsv" / f"synth-{label}", args.work / f"synth-{label}"
    stages = args.stages.split(",")
    if "synth" in stages and (args.force or not (tsv / "synth.json").is_file()):
        cmd = [*KGALIGN, "synth", str(tsv), "--entities", str(args.n), "--seed", str(args.seed), "--force", "-q"]
        run = timed(cmd)
        summary = json.loads((tsv / "synth.json").read_text())
        record(args.out, "synth", args.n, summary["counts"]["kg1"]["relation_triples"], run, cmd, {"hardness": summary["hardness"]})
    summary = json.loads((tsv / "synth.json").read_text())
    triples = summary["counts"]["kg1"]["relation_triples"]
    if "ingest" in stages and (args.force or not (ds / "manifest.json").is_file()):
        cmd = [*KGALIGN, "ingest", "-q", "-o", str(ds), "--force"]
        for k in (1, 2):
            cmd += [f"--kg{k}", str(tsv / f"kg{k}.tsv"), f"--kg{k}-attributes", str(tsv / f"kg{k}_attributes.tsv")]
        cmd += ["--links", str(tsv / "links.tsv")]
        if ds.exists() and not (ds / "manifest.json").is_file():
            shutil.rmtree(ds)
        run = timed(cmd)
        counts = json.loads((ds / "manifest.json").read_text())["counts"]
        input_bytes = sum(f.stat().st_size for f in tsv.glob("*.tsv"))
        record(args.out, "ingest", args.n, triples, run, cmd, {"counts": counts, "input_mib": round(input_bytes / 2**20, 1)})
    if "features" in stages:
        cmd = [*KGALIGN, "features", str(ds), "--json", "-q", *args.features_args.split()]
        if args.force:
            cmd.append("--force")
        run = timed(cmd)
        rows = json.loads(run["stdout"])["features"]
        per = {r["feature"]: {"status": r["status"], "dim": r["dim"], "seconds": r["seconds"]} for r in rows if r["status"] != "skipped"}
        manifest = json.loads((ds / "features" / "manifest.json").read_text())
        for name, entry in manifest.items():
            if name in per:
                per[name]["storage"] = entry.get("storage", "dense")
                per[name]["featurizer"] = entry.get("featurizer")
                per[name]["mib"] = round(sum(f["bytes"] for f in entry["files"].values()) / 2**20, 1)
        record(args.out, "features", args.n, triples, run, cmd, {"features": per})


if __name__ == "__main__":
    main()
