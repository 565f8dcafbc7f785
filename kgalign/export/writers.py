"""Link-set writers: nt, ttl, tsv, alignment (Alignment API RDF/XML), sssom, jsonl.

Each writer takes a :class:`~kgalign.export.predictions.LinkTable` (already in
its final order) and yields text chunks, so output can stream to stdout or go
to a file atomically. Plain writers (no graph objects): fast, and the escaping
is tested by parsing every format back.

Scores: ``tsv`` and ``jsonl`` carry the raw score (cosine or CSLS, as the
predictions say); ``alignment`` ``measure`` and SSSOM ``confidence`` must lie
in [0, 1], so they carry the score clipped to [0, 1], and SSSOM keeps the raw
value in ``similarity_score`` with ``similarity_measure``. ``nt``/``ttl`` carry
no score (plain triples; scores live in the other formats).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from dataclasses import dataclass, field
from typing import Iterator

from kgalign import __version__
from kgalign.data.terms import PREFIXES
from kgalign.errors import InputError
from kgalign.export.predictions import LinkTable, format_score, tsv_lines
from kgalign.export.rdfterms import EXTRA_PREFIXES, TermPolicy, all_plain_iris, nt_iri, nt_tokens, resolved_iris, xml_attr, xml_attrs

FORMATS = ("nt", "ttl", "tsv", "alignment", "sssom", "jsonl")
ALIGN_NS = "http://knowledgeweb.semanticweb.org/heterogeneity/alignment#"
SEMAPV_MATCHING = "semapv:SemanticSimilarityThresholdMatching"
SEMAPV_CURATION = "semapv:ManualMappingCuration"  # pairs a person accepted in `kgalign review`


@dataclass
class ExportOptions:
    predicate: str = PREFIXES["owl"] + "sameAs"
    kg1: TermPolicy = field(default_factory=lambda: TermPolicy(1))
    kg2: TermPolicy = field(default_factory=lambda: TermPolicy(2))
    similarity: str = "unknown"  # e.g. "csls(k=3)" or "cosine"
    onto1: str = "urn:kgalign:kg1"
    onto2: str = "urn:kgalign:kg2"
    mapping_set_id: str = "urn:kgalign:mappings"
    license: str = "https://creativecommons.org/publicdomain/zero/1.0/"
    date: str = field(default_factory=lambda: _dt.date.today().isoformat())


def _clip01(x: float) -> float:
    return 0.0 if x < 0 else (1.0 if x > 1 else x)


# ---- N-Triples / Turtle ---------------------------------------------------


def _nt_columns(table: LinkTable, opt: ExportOptions):
    """Tokens of both columns, or the raw terms plus bracket strings when all are plain IRIs."""
    cols = []
    for terms, pol in ((table.kg1, opt.kg1), (table.kg2, opt.kg2)):
        if all_plain_iris(terms):
            cols.append((terms, "<", ">"))
        else:
            cols.append((nt_tokens(terms, pol), "", ""))  # raises before any output
    return cols


def _nt_lines(table: LinkTable, opt: ExportOptions, pred: str) -> Iterator[str]:
    (t1, l1, r1), (t2, l2, r2) = _nt_columns(table, opt)
    mid = f"{r1} {pred} {l2}"
    end = f"{r2} .\n"
    return _lines(f"{l1}{a}{mid}{b}{end}" for a, b in zip(t1, t2, strict=False))


def write_nt(table: LinkTable, opt: ExportOptions) -> Iterator[str]:
    lines = _nt_lines(table, opt, nt_iri(opt.predicate))
    yield from lines


def write_ttl(table: LinkTable, opt: ExportOptions) -> Iterator[str]:
    # Full IRIs in <...> (always valid Turtle, no prefixed-name escaping pitfalls);
    # the predicate as a prefixed name when it is a known one.
    known = {**PREFIXES, **EXTRA_PREFIXES}
    pred, head = nt_iri(opt.predicate), ""
    for p, ns in sorted(known.items()):
        if opt.predicate.startswith(ns) and opt.predicate[len(ns) :].isidentifier():
            head = f"@prefix {p}: <{ns}> .\n\n"
            pred = f"{p}:{opt.predicate[len(ns) :]}"
            break
    lines = _nt_lines(table, opt, pred)  # converts every term first: errors before any output
    yield head
    yield from lines


def _lines(gen, size: int = 65536) -> Iterator[str]:
    """Group lines into large chunks (fewer write calls)."""
    buf = []
    for line in gen:
        buf.append(line)
        if len(buf) >= size:
            yield "".join(buf)
            buf.clear()
    yield "".join(buf)


# ---- TSV / JSON lines -----------------------------------------------------


def write_tsv(table: LinkTable, opt: ExportOptions) -> Iterator[str]:
    return _lines(tsv_lines(table))


_JSON_PLAIN = re.compile(r'^[^"\\\x00-\x1f\u2028\u2029]*\Z')  # \Z: "$" would let a final newline through


def _json_str(text: str) -> str:
    return f'"{text}"' if _JSON_PLAIN.match(text) else json.dumps(text, ensure_ascii=False)


def write_jsonl(table: LinkTable, opt: ExportOptions) -> Iterator[str]:
    pred = json.dumps(opt.predicate)
    yield from _lines(
        f'{{"kg1": {_json_str(a)}, "kg2": {_json_str(b)}, "predicate": {pred}, '
        f'"score": {"null" if c is None or math.isnan(c) else format_score(c)}, "status": "{s}"}}\n'
        for a, b, c, s in zip(table.kg1, table.kg2, table.score, table.status, strict=False)
    )


# ---- Alignment API (RDF/XML, level 0) -------------------------------------


def _alignment_type(table: LinkTable) -> str:
    one1 = len(set(table.kg1)) == len(table.kg1)
    one2 = len(set(table.kg2)) == len(table.kg2)
    # injective on each side -> "?" (totality is not known here), otherwise "*"
    return ("?" if one1 else "*") + ("?" if one2 else "*")


XSD_FLOAT = "http://www.w3.org/2001/XMLSchema#float"


def _measure(score: float | None) -> float:
    """Alignment API measure: the score clipped to [0, 1]; 1.0 where the predictions hold no score."""
    return 1.0 if score is None or math.isnan(score) else _clip01(score)


def write_alignment(table: LinkTable, opt: ExportOptions) -> Iterator[str]:
    if opt.predicate != PREFIXES["owl"] + "sameAs" and opt.predicate != PREFIXES["skos"] + "exactMatch":
        raise InputError(f"the alignment format writes equivalence (relation '='); predicate {opt.predicate} has no alignment relation")
    e1 = xml_attrs(resolved_iris(table.kg1, opt.kg1, "alignment", False), "KG1 IRI")
    e2 = xml_attrs(resolved_iris(table.kg2, opt.kg2, "alignment", False), "KG2 IRI")
    o1, o2 = xml_attr(opt.onto1, "ontology IRI"), xml_attr(opt.onto2, "ontology IRI")
    yield (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<rdf:RDF xmlns="{ALIGN_NS}"\n'
        '         xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"\n'
        '         xmlns:xsd="http://www.w3.org/2001/XMLSchema#">\n'
        "<Alignment>\n"
        "  <xml>yes</xml>\n"
        "  <level>0</level>\n"
        f"  <type>{_alignment_type(table)}</type>\n"
        f'  <onto1><Ontology rdf:about="{o1}"><location>{o1}</location></Ontology></onto1>\n'
        f'  <onto2><Ontology rdf:about="{o2}"><location>{o2}</location></Ontology></onto2>\n'
    )
    yield from _lines(
        "  <map>\n    <Cell>\n"
        f'      <entity1 rdf:resource="{a}"/>\n'
        f'      <entity2 rdf:resource="{b}"/>\n'
        "      <relation>=</relation>\n"
        f'      <measure rdf:datatype="{XSD_FLOAT}">{_measure(c):.6f}</measure>\n'
        "    </Cell>\n  </map>\n"
        for a, b, c in zip(e1, e2, table.score, strict=False)
    )
    yield "</Alignment>\n</rdf:RDF>\n"


# ---- SSSOM TSV --------------------------------------------------------------

SSSOM_COLUMNS = (
    "subject_id",
    "predicate_id",
    "object_id",
    "mapping_justification",
    "confidence",
    "similarity_score",
    "similarity_measure",
    "mapping_tool",
    "comment",
)


_NS_LOCAL = re.compile(r"(?m)^(.*[/#])?(.*)$")


def _split_iris(iris: list[str]) -> list[tuple[str, str]]:
    """(namespace, local) per IRI: namespace up to the last '/' or '#'. One regex pass
    over the joined text; a tab or line break in a term is an error (SSSOM TSV cannot hold it)."""
    joined = "\n".join(iris)
    if "\t" in joined or "\r" in joined or joined.count("\n") != max(0, len(iris) - 1):
        bad = next(x for x in iris if any(ch in x for ch in "\t\n\r"))
        raise InputError(f"term {bad!r} holds a tab or line break, which SSSOM TSV cannot hold; use nt, ttl or jsonl")
    return _NS_LOCAL.findall(joined) if iris else []


def _prefix_map(parts1, parts2) -> dict[str, str]:
    """curie_map: known prefixes that are used, plus ``kg1``/``kg2`` (``kg1_2``, ...) for other namespaces."""
    fixed = {**PREFIXES, **EXTRA_PREFIXES}
    by_ns = {v: p for p, v in fixed.items()}
    out: dict[str, str] = {}
    for side, parts in ((1, parts1), (2, parts2)):
        i = 0
        for ns in sorted({ns for ns, _ in parts if ns}):
            if ns in out.values():
                continue
            hit = by_ns.get(ns)
            if hit is None:
                i += 1
                hit = f"kg{side}" if i == 1 else f"kg{side}_{i}"
            out[hit] = ns
    for p in ("owl", "skos", "semapv"):
        out.setdefault(p, fixed[p])
    return dict(sorted(out.items()))


def sssom_prefixes(table: LinkTable, opt: ExportOptions) -> dict[str, str]:
    return _prefix_map(
        _split_iris(resolved_iris(table.kg1, opt.kg1, "sssom", False)),
        _split_iris(resolved_iris(table.kg2, opt.kg2, "sssom", False)),
    )


def _curies(parts: list[tuple[str, str]], cmap: dict[str, str]) -> list[str]:
    """CURIE where the namespace has a prefix and the local part is non-empty without spaces; else the IRI."""
    rev = {v: k for k, v in cmap.items()}
    return [f"{rev[ns]}:{loc}" if ns in rev and loc and " " not in loc else ns + loc for ns, loc in parts]


def _curie(iri: str, cmap: dict[str, str]) -> str:
    return _curies(_split_iris([iri]), cmap)[0]


def _as_date(text: str):
    try:
        return _dt.date.fromisoformat(text)  # YAML writes a date, unquoted
    except ValueError:
        return text


def write_sssom(table: LinkTable, opt: ExportOptions) -> Iterator[str]:
    import yaml

    p1 = _split_iris(resolved_iris(table.kg1, opt.kg1, "sssom", False))
    p2 = _split_iris(resolved_iris(table.kg2, opt.kg2, "sssom", False))
    cmap = _prefix_map(p1, p2)
    sub, obj = _curies(p1, cmap), _curies(p2, cmap)
    del p1, p2
    pred = _curie(opt.predicate, cmap)
    meta = {
        "curie_map": cmap,
        "mapping_set_id": opt.mapping_set_id,
        "license": opt.license,
        "mapping_tool": f"kgalign {__version__}",
        "mapping_date": _as_date(opt.date),
        "comment": f"confidence = score clipped to [0, 1]; similarity_score = raw {opt.similarity} score",
    }
    header = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=10_000)
    yield "".join(f"#{' ' if line else ''}{line}\n" for line in header.rstrip("\n").split("\n"))
    yield "\t".join(SSSOM_COLUMNS) + "\n"
    tail = f"\t{opt.similarity}\tkgalign {__version__}\t"
    just = {"seed": "semapv:UnspecifiedMatching\t", "review": SEMAPV_MATCHING + "\t", "accepted": SEMAPV_MATCHING + "\t"}
    just["reviewed"] = SEMAPV_CURATION + "\t"
    comment = {"seed": "training link", "review": "for review", "accepted": "", "reviewed": "accepted by a person (kgalign review)"}

    def score_cols(c):
        return "\t" if c is None or math.isnan(c) else f"{_clip01(c):.6f}\t{c:.6f}"

    yield from _lines(
        f"{a}\t{pred}\t{b}\t{just[s]}{score_cols(c)}{tail}{comment[s]}\n"
        for a, b, c, s in zip(sub, obj, table.score, table.status, strict=False)
    )


WRITERS = {"nt": write_nt, "ttl": write_ttl, "tsv": write_tsv, "alignment": write_alignment, "sssom": write_sssom, "jsonl": write_jsonl}


def render(table: LinkTable, fmt: str, opt: ExportOptions) -> Iterator[str]:
    if fmt not in WRITERS:
        raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return WRITERS[fmt](table, opt)
