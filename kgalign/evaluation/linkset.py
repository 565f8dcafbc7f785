"""Scoring an exported link set against gold links: precision, recall, F1.

Readers accept every format ``kgalign export`` writes that holds pairs: TSV
(``kg1 kg2 [score [status]]``, header optional), N-Triples and Turtle (subject =
KG1, object = KG2, any predicate), Alignment API RDF/XML (entity1/entity2,
measure), SSSOM TSV (subject_id/object_id expanded with the curie_map,
``similarity_score`` or else ``confidence``) and JSON lines.

Scoring policy (docs/evaluation.md):

- gold = the links of one split (test by default); training links in the file
  are ignored (reported as ``seeds_ignored``);
- ``count="gold-entities"`` (default): a predicted pair counts when its KG1 term
  is a KG1 end of a gold link or its KG2 term a KG2 end of one; pairs about
  other entities (whose truth is unknown) are reported as ``outside``;
- ``count="all"``: every non-training pair counts (unknown = wrong);
- precision = TP / counted, recall = TP / |gold|, F1 their harmonic mean.
  Duplicate pairs count once; terms missing from the dataset count as wrong
  (reported as ``unknown_terms``).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kgalign.data.store import unescape
from kgalign.data.terms import bnode_term
from kgalign.errors import InputError, MissingResourceError
from kgalign.fsutil import read_text_file

ALIGN_NS = ("http://knowledgeweb.semanticweb.org/heterogeneity/alignment#", "http://knowledgeweb.semanticweb.org/heterogeneity/alignment")


@dataclass
class LinkSet:
    kg1: list[str]
    kg2: list[str]
    score: list[float]  # nan where the format holds none


def detect_format(path: Path, text: str | None = None) -> str:
    name = path.name.lower()
    for suffix, fmt in (
        (".sssom.tsv", "sssom"),
        (".nt", "nt"),
        (".ttl", "ttl"),
        (".rdf", "alignment"),
        (".xml", "alignment"),
        (".jsonl", "jsonl"),
        (".tsv", "tsv"),
        (".txt", "tsv"),
    ):
        if name.endswith(suffix):
            if fmt == "tsv":
                first = text if text is not None else read_text_file(path, "link file")
                if first.startswith("#"):
                    return "sssom"
            return fmt
    raise InputError("cannot tell the format from the file name; pass --links-format nt|ttl|tsv|alignment|sssom|jsonl", str(path))


_UCHAR = re.compile(r"\\u([0-9A-Fa-f]{4})|\\U([0-9A-Fa-f]{8})")
_NT_TERM = r"(<[^>]*>|_:\S+)"
_NT_LINE = re.compile(rf"^\s*{_NT_TERM}\s+(<[^>]*>|\S+)\s+{_NT_TERM}\s*\.\s*$")


def _nt_value(tok: str, side: int) -> str:
    if tok.startswith("_:"):
        return bnode_term(tok[2:], side)  # kgalign writes each graph's blank nodes apart
    return _UCHAR.sub(lambda m: chr(int(m.group(1) or m.group(2), 16)), tok[1:-1])


def _read_rdf_lines(text: str) -> LinkSet | None:
    """Line-based triples (N-Triples, and kgalign's one-triple-per-line Turtle); None if not line-based."""
    kg1, kg2 = [], []
    for line in text.split("\n"):  # not splitlines(): U+2028, U+0085 may stand unescaped inside an IRI
        s = line.strip()
        if not s or s.startswith("#") or s.startswith("@prefix") or s.upper().startswith("PREFIX"):
            continue
        m = _NT_LINE.match(s)
        if m is None:
            return None
        kg1.append(_nt_value(m.group(1), 1))
        kg2.append(_nt_value(m.group(3), 2))
    return LinkSet(kg1, kg2, [math.nan] * len(kg1))


def _read_rdflib(path: Path, text: str, fmt: str) -> LinkSet:
    import rdflib

    g = rdflib.Graph()
    try:
        g.parse(data=text, format={"nt": "nt", "ttl": "turtle"}[fmt], publicID=path.resolve().as_uri())
    except Exception as exc:  # rdflib raises several types
        raise InputError(f"not valid {fmt}: {exc}", str(path)) from None
    kg1, kg2 = [], []
    for s, _, o in sorted(g):
        kg1.append(bnode_term(str(s), 1) if isinstance(s, rdflib.BNode) else str(s))
        kg2.append(bnode_term(str(o), 2) if isinstance(o, rdflib.BNode) else str(o))
    return LinkSet(kg1, kg2, [math.nan] * len(kg1))


def _read_alignment(path: Path, text: str) -> LinkSet:
    import rdflib

    g = rdflib.Graph()
    try:
        g.parse(data=text, format="xml", publicID=path.resolve().as_uri())
    except Exception as exc:
        raise InputError(f"not valid RDF/XML: {exc}", str(path)) from None
    kg1, kg2, score = [], [], []
    for ns in ALIGN_NS:  # AML writes the namespace without '#', so its terms read ...alignmententity1
        e1, e2, me = rdflib.URIRef(ns + "entity1"), rdflib.URIRef(ns + "entity2"), rdflib.URIRef(ns + "measure")
        for cell in sorted(set(g.subjects(e1, None))):
            a, b = g.value(cell, e1), g.value(cell, e2)
            if a is None or b is None:
                continue
            m = g.value(cell, me)
            kg1.append(str(a))
            kg2.append(str(b))
            score.append(_number(str(m), path, None) if m is not None else math.nan)
    return LinkSet(kg1, kg2, score)


def _read_sssom(path: Path, text: str) -> LinkSet:
    import yaml

    head, body = [], []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for line in lines:
        (head if line.startswith("#") and not body else body).append(line + "\n")
    try:
        meta = yaml.safe_load("".join(h[1:] for h in head)) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML header: {exc}", str(path)) from None
    cmap = meta.get("curie_map") if isinstance(meta, dict) else None
    if not isinstance(cmap, dict):
        cmap = {}
    if not body:
        raise InputError("no table header row after the metadata", str(path), len(head) + 1)
    cols = body[0].rstrip("\n").split("\t")
    for c in ("subject_id", "object_id"):
        if c not in cols:
            raise InputError(f"missing column {c!r}", str(path), len(head) + 1)
    isub, iobj = cols.index("subject_id"), cols.index("object_id")
    isc = cols.index("similarity_score") if "similarity_score" in cols else (cols.index("confidence") if "confidence" in cols else None)

    def expand(x: str) -> str:
        p, sep, local = x.partition(":")
        return cmap[p] + local if sep and p in cmap and not local.startswith("//") else x

    kg1, kg2, score = [], [], []
    for lineno, line in enumerate(body[1:], start=len(head) + 2):
        parts = line.rstrip("\n").split("\t")
        if len(parts) != len(cols):
            raise InputError(f"expected {len(cols)} tab-separated fields, found {len(parts)}", str(path), lineno)
        kg1.append(expand(parts[isub]))
        kg2.append(expand(parts[iobj]))
        score.append(_number(parts[isc], path, lineno) if isc is not None and parts[isc] else math.nan)
    return LinkSet(kg1, kg2, score)


def _number(text, path: Path, lineno: int | None) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise InputError(f"score {text!r} is not a number", str(path), lineno) from None


def _read_tsv(path: Path, text: str) -> LinkSet:
    kg1, kg2, score = [], [], []
    for lineno, line in enumerate(text.split("\n"), start=1):
        parts = line.rstrip("\r").split("\t")
        if lineno == 1 and parts[:2] in (["kg1", "kg2"], ["subject", "object"]):
            continue
        if not line.strip():
            continue
        if len(parts) < 2:
            raise InputError(f"expected at least 2 tab-separated fields, found {len(parts)}", str(path), lineno)
        kg1.append(unescape(parts[0]))
        kg2.append(unescape(parts[1]))
        score.append(_number(parts[2], path, lineno) if len(parts) > 2 and parts[2] else math.nan)
    return LinkSet(kg1, kg2, score)


def _read_jsonl(path: Path, text: str) -> LinkSet:
    kg1, kg2, score = [], [], []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            kg1.append(str(obj["kg1"]))
            kg2.append(str(obj["kg2"]))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InputError(f"expected a JSON object with kg1 and kg2: {exc}", str(path), lineno) from None
        s = obj.get("score")
        score.append(_number(s, path, lineno) if s is not None else math.nan)
    return LinkSet(kg1, kg2, score)


def read_links(path: str | os.PathLike, fmt: str | None = None, base_kg1: str | None = None, base_kg2: str | None = None) -> LinkSet:
    """Read pairs of terms; ``base_kgN`` prefixes (as given to export) are stripped again."""
    path = Path(path)
    if not path.exists():
        raise MissingResourceError(f"{path}: no such link file")
    text = read_text_file(path, "link file (nt, ttl, tsv, alignment, sssom or jsonl)")  # binary, FIFO, bad UTF-8: one message
    fmt = fmt or detect_format(path, text)
    if fmt in ("nt", "ttl"):
        ls = _read_rdf_lines(text) or _read_rdflib(path, text, fmt)
    elif fmt == "alignment":
        ls = _read_alignment(path, text)
    elif fmt == "sssom":
        ls = _read_sssom(path, text)
    elif fmt == "tsv":
        ls = _read_tsv(path, text)
    elif fmt == "jsonl":
        ls = _read_jsonl(path, text)
    else:
        raise InputError(f"unknown link format {fmt!r}", str(path))
    for terms, base in ((ls.kg1, base_kg1), (ls.kg2, base_kg2)):
        if base:
            terms[:] = [t[len(base) :] if t.startswith(base) else t for t in terms]
    return ls


def _prf(tp: int, counted: int, gold: int) -> dict:
    p = tp / counted if counted else 0.0
    r = tp / gold if gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "true_positives": tp, "counted": counted, "gold": gold}


def score_links(
    links: LinkSet,
    entities: list[str],
    entity_kg: np.ndarray,
    gold: np.ndarray,
    train: np.ndarray,
    *,
    count: str = "gold-entities",
    thresholds=None,
) -> dict:
    """Precision/recall/F1 of ``links`` (terms) against ``gold`` (L, 2) global ids.

    With ``thresholds`` (and scores in the file) also one row per threshold:
    only pairs with score >= t are kept.
    """
    if count not in ("gold-entities", "all"):
        raise ValueError("count must be 'gold-entities' or 'all'")
    idx1 = {t: i for i, (t, k) in enumerate(zip(entities, entity_kg.tolist(), strict=False)) if k == 1}
    idx2 = {t: i for i, (t, k) in enumerate(zip(entities, entity_kg.tolist(), strict=False)) if k == 2}
    gold_set = {(int(a), int(b)) for a, b in np.asarray(gold).reshape(-1, 2)}
    train_set = {(int(a), int(b)) for a, b in np.asarray(train).reshape(-1, 2)}
    g1 = {a for a, _ in gold_set}
    g2 = {b for _, b in gold_set}
    best: dict[tuple, float] = {}
    unknown = seeds = outside = 0
    for a, b, s in zip(links.kg1, links.kg2, links.score, strict=False):
        i, j = idx1.get(a), idx2.get(b)
        key = (i if i is not None else ("?", a), j if j is not None else ("?", b))
        if i is None or j is None:
            unknown += 1
        elif key in train_set:
            seeds += 1
            continue
        if count == "gold-entities" and not (i in g1 or j in g2):
            outside += 1
            continue
        s = -math.inf if math.isnan(s) else s
        best[key] = max(best.get(key, -math.inf), s)
    tp = sum(1 for k in best if k in gold_set)
    out = _prf(tp, len(best), len(gold_set))
    out.update(
        pairs_in_file=len(links.kg1),
        unknown_terms=unknown,
        seeds_ignored=seeds,
        outside=outside,
        count=count,
    )
    if thresholds is not None:
        if all(math.isnan(x) for x in links.score):
            raise InputError(
                "the link file holds no scores, so no threshold sweep is possible (N-Triples and Turtle carry none); "
                "sweep on a tsv, jsonl, sssom or alignment export, or on RUN/predictions.tsv (--links-format tsv)"
            )
        rows = []
        for t in thresholds:
            kept = [k for k, v in best.items() if v >= t]
            row = _prf(sum(1 for k in kept if k in gold_set), len(kept), len(gold_set))
            row["threshold"] = float(t)
            rows.append(row)
        out["sweep"] = rows
    return out
