"""A person's review decisions applied to predictions before export.

Accepted pairs get status ``reviewed`` (exported by default, whatever their
predicted status: a review-band pair, a pair that became a training link in
the next round, or a pair the predictions no longer hold, with the score it had
when it was decided). Rejected pairs are left out. Skipped pairs are unchanged.
When the predictions are one-to-one (``one_to_one`` in their settings, as
greedy, mutual, stable and Hungarian matching are), a person's pair wins over
other predicted pairs of its two entities, so the export stays one-to-one.
"""

from __future__ import annotations

import math

from kgalign.data.decisions import Decision, latest
from kgalign.export.predictions import LinkTable

REVIEWED = "reviewed"


def apply_decisions(table: LinkTable, decisions: list[Decision]) -> LinkTable:
    """A new table: rejected pairs dropped, accepted pairs marked (and added when absent)."""
    verdict = {d.pair: d for d in latest(decisions) if d.decision != "skipped"}
    if not verdict:
        return table
    kg1, kg2, score, status = [], [], [], []
    seen = set()
    taken1 = taken2 = set()
    if table.meta.get("one_to_one"):
        taken1 = {p[0] for p, d in verdict.items() if d.decision == "accepted"}
        taken2 = {p[1] for p, d in verdict.items() if d.decision == "accepted"}
    for a, b, c, s in zip(table.kg1, table.kg2, table.score, table.status, strict=True):
        d = verdict.get((a, b))
        if d is not None:
            if d.decision == "rejected" or (a, b) in seen:
                continue
            seen.add((a, b))
            s = REVIEWED
        elif s != "seed" and (a in taken1 or b in taken2):
            continue  # another partner was accepted by a person
        kg1.append(a)
        kg2.append(b)
        score.append(c)
        status.append(s)
    for pair, d in verdict.items():
        if d.decision == "accepted" and pair not in seen:
            kg1.append(pair[0])
            kg2.append(pair[1])
            score.append(math.nan if d.score is None else d.score)
            status.append(REVIEWED)
    meta = dict(table.meta)
    meta["reviewed"] = sum(1 for d in verdict.values() if d.decision == "accepted")
    meta["rejected"] = sum(1 for d in verdict.values() if d.decision == "rejected")
    return LinkTable(kg1, kg2, score, status, meta)
