"""Build the real benchmark datasets for the training benchmarks with `kgalign ingest`.

Every variant is one call of the ingest library with inputs combined from
several sources (see docs/benchmarks.md, section "Ingest"):

- fb_db_20, fb_db_80: FB15K-DB15K. KG1 = DB15K from PathFusion DB15K-FB15K
  (ent_ids_1, triples_1, attr with numeric values); KG2 = FB15K entities from
  ent_ids_2 (+ their attr values), relation triples rebuilt as FB15k-237 (all
  three splits, read from the .tar.gz with tarfile, nothing extracted) UNION the
  OpenKE FB15K valid+test triples (through entity2id/relation2id). Links =
  ref_ent_ids. Names: FB15K_mid2name (underscores as spaces) and DB15K URI local
  names. Split: legacy (RandomState(42)) at 20 % / 80 % train, each with
  --legacy-valid 0.1.
- fb_yg_20: FB15K-YAGO15K the same way (YAGO15K URI local names).
- en_fr_30: OpenEA EN-FR-15K-V1 (DH-MEA id conversion), legacy split at 30 %
  train plus --legacy-valid 0.1; names from the URIs of both graphs.

    python benchmarks/prepare_datasets.py [--shared ../shared/data] [-o benchmarks/out/datasets] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kgalign.data.info import counts_table  # noqa: E402
from kgalign.data.ingest import GraphSpec, IngestOptions, ingest_to  # noqa: E402
from kgalign.data.sources import Source  # noqa: E402
from kgalign.errors import KgalignError  # noqa: E402

VARIANTS = ("fb_db_20", "fb_db_80", "fb_yg_20", "en_fr_30")


def fb15k237_sources(tar: tarfile.TarFile, tar_path: Path) -> list[Source]:
    """The three FB15k-237 splits as TSV sources read straight from the archive."""
    out = []
    for name in ("train.txt", "valid.txt", "test.txt"):
        member = tar.getmember(f"./{name}")
        out.append(Source(f"{tar_path}!/{name}", opener=lambda m=member: tar.extractfile(m), format="tsv"))
    return out


def fb_options(shared: Path, pair: str, tar: tarfile.TarFile, rate: float) -> IngestOptions:
    tar_path = shared / "fb15k237" / "FB15k-237.tar.gz"
    return IngestOptions(
        layouts=[("mclea", shared / "mmkg_pathfusion" / pair)],
        kg1=GraphSpec(names_from_iri=True),
        kg2=GraphSpec(
            files=[*fb15k237_sources(tar, tar_path), f"openke:{shared / 'fb15k_openke_partial'}"],
            names=[str(shared / "fb15k_names" / "FB15K_mid2name.txt")],
        ),
        underscores_to_spaces=True,
        split="legacy",
        train_ratio=rate,
        legacy_valid=0.1,
        seed=0,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data", help="shared data folder (SOURCES.md)")
    ap.add_argument("-o", "--output", type=Path, default=REPO / "benchmarks" / "out" / "datasets")
    ap.add_argument("--only", nargs="+", choices=VARIANTS, help="build only these variants")
    ap.add_argument("--json", action="store_true", help="print all counts as JSON on stdout")
    args = ap.parse_args()
    shared = args.shared
    if not (shared / "SOURCES.md").is_file():
        print(f"error: {shared} is not the shared data folder (no SOURCES.md); pass --shared", file=sys.stderr)
        return 3
    wanted = args.only or list(VARIANTS)
    results = {}
    with tarfile.open(shared / "fb15k237" / "FB15k-237.tar.gz", "r:gz") as tar:
        plans = {
            "fb_db_20": lambda: fb_options(shared, "DB15K-FB15K", tar, 0.2),
            "fb_db_80": lambda: fb_options(shared, "DB15K-FB15K", tar, 0.8),
            "fb_yg_20": lambda: fb_options(shared, "YAGO15K-FB15K", tar, 0.2),
            "en_fr_30": lambda: IngestOptions(
                layouts=[("mclea", shared / "openea_en_fr_15k_v1")],
                kg1=GraphSpec(names_from_iri=True),
                kg2=GraphSpec(names_from_iri=True),
                split="legacy",
                train_ratio=0.3,
                legacy_valid=0.1,
                seed=0,
            ),
        }
        for name in wanted:
            t0 = time.perf_counter()
            try:
                ds, report = ingest_to(plans[name](), args.output / name, overwrite=True)
            except KgalignError as exc:
                print(f"error: {name}: {exc}", file=sys.stderr)
                return exc.exit_code
            results[name] = ds.manifest["counts"]
            print(f"== {name}: {args.output / name} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
            for w in report["warnings"]:
                print(f"   warning: {w}", file=sys.stderr)
            if not args.json:
                print(f"## {name}\n\n{counts_table(ds.manifest['counts'])}\n")
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
