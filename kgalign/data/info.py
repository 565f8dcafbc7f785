"""``kgalign info``: dataset statistics from the manifest, as a table or JSON."""

from __future__ import annotations

import os

from kgalign.data.store import SPLITS, check_files, load_dataset, read_manifest

ROWS = (
    "entities",
    "relations",
    "relation_triples",
    "attributes",
    "attribute_triples",
    "numeric_values",
    "entities_with_name",
    "entities_with_image",
)


def info_dict(path: str | os.PathLike, check: bool = False) -> dict:
    """The manifest's statistics. Always checks that every data file is there with its recorded
    size; ``check`` also compares sha256 checksums, parses every file and checks every id,
    so a damaged dataset is named here, not in `train` (the CLI checks the features too)."""
    m = read_manifest(path)
    check_files(path, m, checksums=check)
    if check:
        load_dataset(path, checksums=True)
    return {
        "path": os.path.abspath(path),
        "format_version": m.get("format_version"),
        "kgalign_version": m.get("kgalign_version"),
        "counts": m.get("counts", {}),
        "split": m.get("split", {}),
        "sources": m.get("sources", []),
        "problems": m.get("problems", {}),
    }


def counts_table(counts: dict) -> str:
    from tabulate import tabulate

    rows = [[key.replace("_", " "), counts.get("kg1", {}).get(key, 0), counts.get("kg2", {}).get(key, 0)] for key in ROWS]
    links = counts.get("links", {})
    link_rows = [[s, links.get(s, 0)] for s in SPLITS + ("total",)]
    return (
        tabulate(rows, headers=["", "KG1", "KG2"], tablefmt="github")
        + "\n\n"
        + tabulate(link_rows, headers=["links", "count"], tablefmt="github")
    )


def info_text(info: dict) -> str:
    split = info.get("split", {})
    settings = ", ".join(f"{k}={v}" for k, v in sorted(split.items()) if k not in ("counts", "files", "rng"))
    lines = [
        f"dataset {info['path']} (format version {info['format_version']})",
        "",
        counts_table(info["counts"]),
        "",
        f"split: {settings}",
    ]
    return "\n".join(lines)
