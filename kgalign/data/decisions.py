"""The decisions file: a person's verdicts on predicted pairs (``kgalign review``).

Format (TSV, UTF-8, one header row)::

    kg1     kg2     decision    score       time
    <term>  <term>  accepted    0.412300    2026-11-28T08:15:02+00:00

``decision`` is ``accepted``, ``rejected`` or ``skipped``; ``score`` is the
pair's score when it was decided (may be empty); ``time`` is ISO 8601 UTC.
Terms are written exactly as ingested, escaped like the dataset store. There
is at most one row per pair, in the order the decisions were made: deciding a
pair again replaces its row (moved to the end) and undo drops the last row.
Every write replaces the whole file atomically, so an interrupted process
never leaves a half-written file.

Reading is tolerant where it is safe (blank lines, ``#`` comments, CRLF line
ends, extra columns after the fifth, a later row for the same pair wins) and
names ``file:line`` for anything else.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kgalign.data.store import escape, unescape
from kgalign.errors import InputError
from kgalign.fsutil import atomic_write_text
from kgalign.rundir import DECISIONS as DECISIONS_FILE

HEADER = ("kg1", "kg2", "decision", "score", "time")
DECISIONS = ("accepted", "rejected", "skipped")
FILENAME = DECISIONS_FILE  # the run directory's name for it (kgalign/rundir.py)


@dataclass(frozen=True)
class Decision:
    kg1: str
    kg2: str
    decision: str
    score: float | None = None
    time: str = ""

    @property
    def pair(self) -> tuple[str, str]:
        return (self.kg1, self.kg2)


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _score_text(x: float | None) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.6f}"


def format_decisions(decisions: list[Decision]) -> str:
    lines = ["\t".join(HEADER) + "\n"]
    for d in decisions:
        if d.decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}, got {d.decision!r}")
        lines.append(f"{escape(d.kg1)}\t{escape(d.kg2)}\t{d.decision}\t{_score_text(d.score)}\t{escape(d.time)}\n")
    return "".join(lines)


def write_decisions(path: str | os.PathLike, decisions: list[Decision]) -> Path:
    """Replace ``path`` atomically with ``decisions`` (one row per pair, the last one wins)."""
    path = Path(path)
    atomic_write_text(path, format_decisions(latest(decisions)))
    return path


def latest(decisions: list[Decision]) -> list[Decision]:
    """One decision per pair, the latest, in the order of those latest decisions."""
    last: dict[tuple[str, str], Decision] = {}
    for d in decisions:
        last.pop(d.pair, None)  # re-inserting moves the pair to the end
        last[d.pair] = d
    return list(last.values())


def read_decisions(path: str | os.PathLike) -> list[Decision]:
    """Decisions of ``path`` (one per pair, latest wins); a missing file is an empty list."""
    path = Path(path)
    if not path.exists():
        return []
    if not path.is_file():
        raise InputError("not a file", str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason})", str(path)) from None
    out: list[Decision] = []
    header_seen = False
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r")
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if not header_seen:
            header_seen = True
            if tuple(p.strip() for p in parts[:2]) == HEADER[:2]:
                missing = [h for h in HEADER[:3] if h not in [p.strip() for p in parts]]
                if missing:
                    raise InputError(f"header lacks the column(s) {', '.join(missing)}", str(path), lineno)
                continue
            raise InputError(f"expected the header {' '.join(HEADER)!r}, found {line[:80]!r}", str(path), lineno)
        out.append(_parse_row(parts, str(path), lineno))
    return latest(out)


def _parse_row(parts: list[str], path: str, lineno: int) -> Decision:
    if len(parts) < 3:
        raise InputError(f"expected at least 3 tab-separated fields (kg1, kg2, decision), found {len(parts)}", path, lineno)
    kg1, kg2, decision = unescape(parts[0]), unescape(parts[1]), parts[2].strip().lower()
    if not kg1 or not kg2:
        raise InputError("empty kg1 or kg2 term", path, lineno)
    if decision not in DECISIONS:
        raise InputError(f"unknown decision {parts[2]!r} (expected one of {', '.join(DECISIONS)})", path, lineno)
    score = None
    if len(parts) > 3 and parts[3].strip():
        try:
            score = float(parts[3])
        except ValueError:
            raise InputError(f"score {parts[3]!r} is not a number", path, lineno) from None
    when = unescape(parts[4].strip()) if len(parts) > 4 else ""
    return Decision(kg1, kg2, decision, score, when)


class DecisionLog:
    """The decisions of one file, kept in memory and written through on every change."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._set(read_decisions(self.path))

    def _set(self, items: list[Decision]) -> None:
        self.items = items
        self._by_pair = {d.pair: d for d in items}

    def get(self, kg1: str, kg2: str) -> Decision | None:
        return self._by_pair.get((kg1, kg2))

    def record(self, kg1: str, kg2: str, decision: str, score: float | None = None) -> Decision:
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {DECISIONS}, got {decision!r}")
        d = Decision(kg1, kg2, decision, score, now())
        items = latest([*self.items, d])
        write_decisions(self.path, items)  # file first: memory never runs ahead of the disk
        self._set(items)
        return d

    def undo(self) -> Decision | None:
        """Drop the last decision; returns it (None when there is none)."""
        if not self.items:
            return None
        items = self.items[:-1]
        write_decisions(self.path, items)
        last = self.items[-1]
        self._set(items)
        return last


# ---- feeding decisions back into training -------------------------------------


@dataclass
class SeedUpdate:
    """What a training run does with a decisions file.

    seeds: the training links to use, (S, 2) global ids: the given seeds minus
    rejected pairs, plus accepted pairs; extra: accepted pairs that were not
    seeds; negatives: rejected pairs, (N, 2), never to be used as positives
    (neither as seeds nor as bootstrapped pairs); removed: given seeds that a
    person rejected; unknown: decisions naming a term the dataset lacks."""

    seeds: np.ndarray
    extra: np.ndarray
    negatives: np.ndarray
    removed: np.ndarray
    unknown: list[Decision]


def _pairs(rows) -> np.ndarray:
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


def decision_ids(decisions: list[Decision], entities: list[str], entity_kg) -> tuple[np.ndarray, np.ndarray, list[Decision]]:
    """(accepted pairs, rejected pairs, unknown decisions) with terms turned into global ids."""
    kg = np.asarray(entity_kg).tolist()
    ids = ({}, {})
    for i, (t, k) in enumerate(zip(entities, kg, strict=True)):
        ids[int(k) - 1][t] = i
    acc, rej, unknown = [], [], []
    for d in latest(decisions):
        if d.decision == "skipped":
            continue
        a, b = ids[0].get(d.kg1), ids[1].get(d.kg2)
        if a is None or b is None:
            unknown.append(d)
        else:
            (acc if d.decision == "accepted" else rej).append((a, b))
    return _pairs(acc), _pairs(rej), unknown


def seed_update(seeds, accepted, rejected, unknown: list[Decision] | None = None) -> SeedUpdate:
    """Seeds after a review round (pure; order: kept seeds first, then extra pairs in decision order)."""
    seeds, accepted, rejected = _pairs(np.asarray(seeds)), _pairs(np.asarray(accepted)), _pairs(np.asarray(rejected))
    rej = {tuple(p) for p in rejected.tolist()}
    kept = [tuple(p) for p in seeds.tolist() if tuple(p) not in rej]
    removed = [tuple(p) for p in seeds.tolist() if tuple(p) in rej]
    have = set(kept)
    extra = []
    for p in map(tuple, accepted.tolist()):
        if p not in have and p not in rej:
            have.add(p)
            extra.append(p)
    return SeedUpdate(
        seeds=_pairs(kept + extra),
        extra=_pairs(extra),
        negatives=_pairs(sorted(rej)),
        removed=_pairs(removed),
        unknown=list(unknown or []),
    )


def seeds_from_decisions(seeds, decisions: list[Decision], entities: list[str], entity_kg) -> SeedUpdate:
    """:func:`decision_ids` then :func:`seed_update`: the one call a training loop needs."""
    acc, rej, unknown = decision_ids(decisions, entities, entity_kg)
    return seed_update(seeds, acc, rej, unknown)
