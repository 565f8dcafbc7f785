"""``kgalign info``: dataset statistics from the manifest, as a table or JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

from kgalign.data.store import FORMAT_NAME, FORMAT_VERSION, SPLITS
from kgalign.errors import InputError, MissingResourceError

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


def read_manifest(path: str | os.PathLike) -> dict:
    path = Path(path)
    mpath = path / "manifest.json"
    if not mpath.is_file():
        raise MissingResourceError(f"{path}: not a kgalign dataset (no manifest.json); create one with `kgalign ingest`")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg}", str(mpath), exc.lineno) from None
    if manifest.get("format") != FORMAT_NAME:
        raise InputError(f"manifest format is {manifest.get('format')!r}, expected {FORMAT_NAME!r}", str(mpath))
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise InputError(
            f"dataset format version {manifest['format_version']} is newer than this kgalign supports ({FORMAT_VERSION}); upgrade kgalign",
            str(mpath),
        )
    return manifest


def info_dict(path: str | os.PathLike) -> dict:
    m = read_manifest(path)
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
