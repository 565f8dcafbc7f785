"""`kgalign export`: predictions -> a link file in one format, plus a provenance sidecar."""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path
from typing import TextIO

from kgalign.errors import InputError
from kgalign.export.predictions import LinkTable
from kgalign.export.provenance import ProvenanceInfo, provenance_turtle
from kgalign.export.writers import ExportOptions, render
from kgalign.fsutil import atomic_write_text, write_output

SUFFIX = {"nt": ".nt", "ttl": ".ttl", "tsv": ".tsv", "alignment": ".rdf", "sssom": ".sssom.tsv", "jsonl": ".jsonl"}


def select_links(table: LinkTable, include_seeds: bool = False, include_review: bool = False) -> LinkTable:
    """Accepted and reviewed predictions (+ review band, + training links on request), in a deterministic order."""
    keep = {"accepted", "reviewed"} | ({"review"} if include_review else set()) | ({"seed"} if include_seeds else set())
    return table.select(keep).sorted()


def write_links(
    table: LinkTable,
    fmt: str,
    opt: ExportOptions,
    out: str | os.PathLike | None = None,
    stream: TextIO | None = None,
) -> None:
    """Write to ``out`` (atomically when it is a regular file, in place when it is a FIFO
    or a device), or stream to ``stream`` (stdout by default).

    Every term is checked first, so a bad term stops the export before any output.
    """
    chunks = render(table, fmt, opt)
    first = next(chunks)  # writers convert every term before their first chunk: errors come here
    if out is None:
        s = stream or sys.stdout
        s.write(first)
        for c in chunks:
            s.write(c)
        s.flush()
        return
    write_output(out, itertools.chain([first], chunks))


def write_provenance(path: str | os.PathLike, info: ProvenanceInfo) -> Path:
    path = Path(path)
    atomic_write_text(path, provenance_turtle(info))
    return path


def default_provenance_path(out: str | os.PathLike) -> Path:
    return Path(str(out) + ".prov.ttl")


def dataset_iri(dataset_path: Path | None, side: int) -> str:
    if dataset_path is None:
        return f"urn:kgalign:kg{side}"
    return Path(dataset_path).resolve().as_uri() + f"#kg{side}"


def require_format(fmt: str) -> str:
    if fmt not in SUFFIX:
        raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(SUFFIX)}")
    return fmt
