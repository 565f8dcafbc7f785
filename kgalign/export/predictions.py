"""The predictions file: ``kg1 <TAB> kg2 <TAB> score <TAB> status`` with a header row.

Terms are written exactly as ingested, escaped like the dataset store
(backslash, tab, newline, carriage return). Scores have 6 decimals. Status is
``accepted``, ``review`` or ``seed`` (``reviewed`` in exports: accepted by a
person). A JSON sidecar ``FILE.json`` holds the align settings (for
provenance); it is optional when reading.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import operator
import os
from dataclasses import dataclass, field
from pathlib import Path

from kgalign.data.store import escape, unescape
from kgalign.errors import InputError
from kgalign.fsutil import atomic_write_text, read_text_file, write_output

HEADER = ("kg1", "kg2", "score", "status")
STATUSES = ("accepted", "review", "seed", "reviewed")  # reviewed: accepted by a person (export only)


@dataclass
class LinkTable:
    """Pairs of terms with scores: kg1[i], kg2[i], score[i] (float or nan), status[i]."""

    kg1: list[str]
    kg2: list[str]
    score: list[float]
    status: list[str]
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.kg1)

    def take(self, order) -> "LinkTable":
        if len(order) == 0:
            return LinkTable([], [], [], [], dict(self.meta))
        get = operator.itemgetter(*order)
        cols = [get(c) for c in (self.kg1, self.kg2, self.score, self.status)]
        if len(order) == 1:
            cols = [[c] for c in cols]
        return LinkTable(*(list(c) for c in cols), dict(self.meta))

    def select(self, statuses) -> "LinkTable":
        if set(self.status) <= set(statuses):
            return self
        return self.take([i for i, s in enumerate(self.status) if s in statuses])

    def sorted(self) -> "LinkTable":
        """Deterministic order: by kg1 term, then kg2 term (code points)."""
        # two stable passes with C-level keys: faster than a tuple key
        n = len(self.kg1)
        if len(set(self.kg1)) == n:  # KG1 terms unique (one-to-one): one pass suffices
            order = sorted(range(n), key=self.kg1.__getitem__)
        else:
            order = sorted(range(n), key=self.kg2.__getitem__)
            order.sort(key=self.kg1.__getitem__)
        return self.take(order)


@contextlib.contextmanager
def gc_paused():
    """Pause the cyclic garbage collector while building millions of small lists/strings.

    Nothing built here forms cycles; with the collector running, bulk list
    building is 3-5x slower (it rescans the young objects over and over)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def format_score(x: float) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.6f}"


def tsv_lines(table: LinkTable):
    yield "\t".join(HEADER) + "\n"
    for a, b, c, s in zip(table.kg1, table.kg2, table.score, table.status, strict=False):
        yield f"{escape(a)}\t{escape(b)}\t{format_score(c)}\t{s}\n"


def write_predictions(path: str | os.PathLike, table: LinkTable, meta: dict | None = None) -> Path:
    """Write atomically; ``meta`` goes to ``FILE.json`` (not beside a FIFO or device, which is written in place)."""
    path = Path(path)
    kind = write_output(path, tsv_lines(table))
    if meta is not None and kind == "file":
        atomic_write_text(str(path) + ".json", json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def read_predictions(path: str | os.PathLike) -> LinkTable:
    with gc_paused():
        return _read_predictions(Path(path))


def _read_predictions(path: Path) -> LinkTable:
    if not path.exists():
        from kgalign.errors import MissingResourceError

        raise MissingResourceError(f"{path}: no such predictions file")
    text = read_text_file(path, "predictions file (kg1, kg2, score, status)")
    first, _, text = text.partition("\n")
    head = first.rstrip("\r").split("\t")
    if tuple(head) != HEADER:
        raise InputError(f"expected the header {' '.join(HEADER)!r}, found {' '.join(head)!r}", str(path), 1)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    # column-wise list comprehensions: ~1 s per million lines
    rows = [line.split("\t") for line in lines]
    if any(len(r) != 4 for r in rows):
        lineno = next(i for i, r in enumerate(rows) if len(r) != 4)
        raise InputError(f"expected 4 tab-separated fields, found {len(rows[lineno])}", str(path), lineno + 2)
    if rows:
        kg1, kg2, sc, status = (list(c) for c in zip(*rows, strict=False))
    else:
        kg1, kg2, sc, status = [], [], [], []
    del rows
    if not set(status) <= set(STATUSES):
        lineno = next(i for i, x in enumerate(status) if x not in STATUSES)
        raise InputError(f"unknown status {status[lineno]!r} (expected one of {', '.join(STATUSES)})", str(path), lineno + 2)
    try:
        score = [float(c) if c else math.nan for c in sc]
    except ValueError:
        lineno = next(i for i, c in enumerate(sc) if c and not _is_float(c))
        raise InputError(f"score {sc[lineno]!r} is not a number", str(path), lineno + 2) from None
    kg1 = [unescape(x) if "\\" in x else x for x in kg1]
    kg2 = [unescape(x) if "\\" in x else x for x in kg2]
    meta = {}
    side = Path(str(path) + ".json")
    if side.is_file():
        try:
            meta = json.loads(read_text_file(side, "JSON file"))
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON: {exc.msg}", str(side), exc.lineno) from None
        if not isinstance(meta, dict):
            raise InputError("expected a JSON object (the align settings)", str(side))
    return LinkTable(kg1, kg2, score, status, meta)
