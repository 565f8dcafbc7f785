"""Resolving reference links to entity ids, with checks.

- A file whose pairs are KG2 -> KG1 (e.g. MMKB SameAsLink, owl:sameAs written
  from the other side) is detected by majority and swapped, with a warning.
- A link naming an entity that is in neither graph is an error (lenient: dropped
  and counted).
- Duplicate links are dropped with a warning; an entity linked to more than
  one partner (not one-to-one) is kept and warned about.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from kgalign.data.builder import GraphBuilder
from kgalign.data.sources import Problems
from kgalign.errors import InputError

SHOW = 3


def _orient(links: list, g1: GraphBuilder, g2: GraphBuilder, problems: Problems) -> list:
    """Swap the pairs of a file whose majority is KG2 -> KG1."""
    by_file: dict[str, list] = {}
    for lk in links:
        by_file.setdefault(lk[2], []).append(lk)
    out = []
    for label, items in by_file.items():
        fwd = sum(1 for a, b, *_ in items if a in g1.ent and b in g2.ent)
        rev = sum(1 for a, b, *_ in items if a in g2.ent and b in g1.ent)
        if rev > fwd:
            problems.warn(f"{label}: pairs are written KG2 -> KG1; read them the other way round")
            items = [(b, a, lab, line) for a, b, lab, line in items]
        out.extend(items)
    return out


def resolve_links(links: list, g1: GraphBuilder, g2: GraphBuilder, problems: Problems, what: str = "links") -> tuple[np.ndarray, list]:
    """Term pairs ``(t1, t2, file, line)`` -> local id pairs (L, 2) and the kept pairs, file order kept."""
    links = _orient(links, g1, g2, problems)
    unknown = [lk for lk in links if lk[0] not in g1.ent or lk[1] not in g2.ent]
    if unknown:

        def why(lk):
            if lk[0] not in g1.ent:
                return f"KG1 entity {lk[0]!r} is not in KG1"
            return f"KG2 entity {lk[1]!r} is not in KG2"

        first = unknown[0]
        examples = "; ".join(f"{lk[2]}:{lk[3]}: {why(lk)}" for lk in unknown[:SHOW])
        if not problems.lenient:
            raise InputError(
                f"{len(unknown)} of {len(links)} {what} name unknown entities ({examples}); "
                "check the graph files, or pass --lenient to drop them",
                first[2],
                None,
            )
        for lk in unknown:
            problems.skipped[lk[2]] = problems.skipped.get(lk[2], 0) + 1
        problems.warn(f"dropped {len(unknown)} {what} to unknown entities ({examples})")
        links = [lk for lk in links if lk[0] in g1.ent and lk[1] in g2.ent]
    seen: set = set()
    kept = []
    dups = []
    for lk in links:
        key = (lk[0], lk[1])
        if key in seen:
            dups.append(lk)
            continue
        seen.add(key)
        kept.append(lk)
    if dups:
        problems.warn(f"dropped {len(dups)} duplicate {what} (first: {dups[0][2]}:{dups[0][3]})")
    c1 = Counter(lk[0] for lk in kept)
    c2 = Counter(lk[1] for lk in kept)
    multi1 = [t for t, c in c1.items() if c > 1]
    multi2 = [t for t, c in c2.items() if c > 1]
    if multi1 or multi2:
        ex = ", ".join(repr(t) for t in (multi1 + multi2)[:SHOW])
        problems.warn(
            f"{what} are not one-to-one: {len(multi1)} KG1 and {len(multi2)} KG2 entities have several partners (e.g. {ex}); all are kept"
        )
    arr = np.array([(g1.ent[a], g2.ent[b]) for a, b, *_ in kept], np.int64).reshape(-1, 2)
    return arr, kept
