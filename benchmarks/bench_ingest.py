"""Benchmark `kgalign ingest` on synthetic N-Triples.

Generates two graphs with TOTAL statements between them (default 1,000,000:
70 % entity-to-entity, 15 % typed numeric literals, 8 % language-tagged
strings, 5 % rdfs:label, 2 % foaf:depiction), gzip-free N-Triples in a temporary
directory, plus a link TSV; then runs the CLI as a child process and reports
wall time and the child's peak RSS (resource.getrusage(RUSAGE_CHILDREN)).

    python benchmarks/bench_ingest.py [--triples 1000000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_graph(path: Path, kg: str, n_triples: int, n_entities: int, rng: np.random.Generator) -> None:
    base = f"http://example.org/{kg}/"
    kinds = rng.choice(5, size=n_triples, p=[0.70, 0.15, 0.08, 0.05, 0.02])
    heads = rng.integers(0, n_entities, n_triples)
    tails = rng.integers(0, n_entities, n_triples)
    rels = rng.integers(0, 200, n_triples)
    vals = rng.normal(size=n_triples)
    with open(path, "w", encoding="utf-8") as f:
        lines = []
        for k, h, t, r, v in zip(kinds.tolist(), heads.tolist(), tails.tolist(), rels.tolist(), vals.tolist(), strict=False):
            s = f"<{base}e{h}>"
            if k == 0:
                lines.append(f"{s} <{base}rel{r}> <{base}e{t}> .\n")
            elif k == 1:
                lines.append(f'{s} <{base}num{r % 40}> "{v:.6g}"^^<http://www.w3.org/2001/XMLSchema#double> .\n')
            elif k == 2:
                lines.append(f'{s} <{base}text{r % 30}> "some text {t}"@en .\n')
            elif k == 3:
                lines.append(f'{s} <http://www.w3.org/2000/01/rdf-schema#label> "Entity {h}"@en .\n')
            else:
                lines.append(f"{s} <http://xmlns.com/foaf/0.1/depiction> <http://img.example.org/{kg}/{h}.jpg> .\n")
            if len(lines) >= 100_000:
                f.writelines(lines)
                lines.clear()
        f.writelines(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--triples", type=int, default=1_000_000, help="statements in both graphs together")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n_ent = max(10, args.triples // 20)
    with tempfile.TemporaryDirectory(prefix="kgalign-bench-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        write_graph(tmp / "kg1.nt", "a", args.triples // 2, n_ent, rng)
        write_graph(tmp / "kg2.nt", "b", args.triples - args.triples // 2, n_ent, rng)
        # links between entities that surely exist: heads of relation triples are dense at this size
        with open(tmp / "links.tsv", "w") as f:
            for i in range(0, n_ent, 2):
                f.write(f"http://example.org/a/e{i}\thttp://example.org/b/e{i}\n")
        gen_s = time.perf_counter() - t0
        cmd = [
            sys.executable,
            "-m",
            "kgalign.cli",
            "ingest",
            "-q",
            "--json",
            "--lenient",
            "-o",
            str(tmp / "ds"),
            "--kg1",
            str(tmp / "kg1.nt"),
            "--kg2",
            str(tmp / "kg2.nt"),
            "--links",
            str(tmp / "links.tsv"),
        ]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            return proc.returncode
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_kib = usage.ru_maxrss  # KiB on Linux
        counts = json.loads(proc.stdout)["counts"]
    result = {
        "statements": args.triples,
        "generate_s": round(gen_s, 2),
        "ingest_wall_s": round(wall, 2),
        "ingest_cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "relation_triples": counts["kg1"]["relation_triples"] + counts["kg2"]["relation_triples"],
        "entities": counts["kg1"]["entities"] + counts["kg2"]["entities"],
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result.items():
            print(f"{k:18s} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
