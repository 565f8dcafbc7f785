"""Terms, predicates and literal values: how a triple is classified.

- IRIs are stored without angle brackets; blank nodes as ``_:label``; other
  identifiers (Freebase mids) exactly as given.
- Numeric values: xsd numeric types, ``xsd:gYear``/``gYearMonth``/``date``/``dateTime``
  (as fractional years), DBpedia unit datatypes, PathFusion's short type tags,
  and plain numbers where the source has no datatypes (TSV).
"""

from __future__ import annotations

import calendar
import math
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

XSD = "http://www.w3.org/2001/XMLSchema#"
RDF_LANGSTRING = "http://www.w3.org/1999/02/22-rdf-syntax-ns#langString"
PREFIXES = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "owl": "http://www.w3.org/2002/07/owl#",
    "xsd": XSD,
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "schema": "http://schema.org/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "dbo": "http://dbpedia.org/ontology/",
    "wdt": "http://www.wikidata.org/prop/direct/",
}
DEFAULT_NAME_PREDICATES = ("rdfs:label", "skos:prefLabel", "schema:name", "foaf:name")
DEFAULT_IMAGE_PREDICATES = ("foaf:depiction", "foaf:img", "schema:image", "dbo:thumbnail", "wdt:P18")
SAME_AS = {PREFIXES["owl"] + "sameAs", "SameAs"}  # "SameAs": the MMKG pseudo-predicate

_INT_TYPES = {
    "integer",
    "int",
    "long",
    "short",
    "byte",
    "nonNegativeInteger",
    "positiveInteger",
    "negativeInteger",
    "nonPositiveInteger",
    "unsignedLong",
    "unsignedInt",
    "unsignedShort",
    "unsignedByte",
}
_FLOAT_TYPES = {"decimal", "double", "float"}
_DATE_TYPES = {"date", "dateTime", "dateTimeStamp", "gYear", "gYearMonth"}
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)$")
# YAGO writes unknown parts with # (1991-##-##, 197#-##-##): unknown year digits count
# as 0 (the start of the decade/century), unknown month/day as January / the 1st
_DATE = re.compile(r"^(-?\d[\d#]{0,5})(?:-(\d{1,2}|##)(?:-(\d{1,2}|##))?)?(?:[T ].*|Z|[+-]\d\d:\d\d)?$")


def expand(term: str) -> str:
    """``rdfs:label`` -> full IRI; ``<iri>`` -> iri; full IRIs unchanged."""
    term = term.strip()
    if term.startswith("<") and term.endswith(">"):
        return term[1:-1]
    prefix, sep, local = term.partition(":")
    if sep and prefix in PREFIXES and not local.startswith("//"):
        return PREFIXES[prefix] + local
    return term


def predicate_set(preds) -> frozenset[str]:
    out = set()
    for p in preds:
        full = expand(p)
        out.add(full)
        if full.startswith("http://schema.org/"):  # schema.org is used with both schemes
            out.add("https://" + full[len("http://") :])
    return frozenset(out)


def plain_term(text: str) -> str:
    """A term from a TSV field: ``<iri>`` loses its brackets, anything else stays."""
    if len(text) > 1 and text[0] == "<" and text[-1] == ">":
        return text[1:-1]
    return text


def _datatype_local(datatype: str) -> str:
    if datatype.startswith(XSD):
        return datatype[len(XSD) :]
    return datatype


def fractional_year(year: int, month: int = 1, day: int = 1) -> float:
    """1982-05-03 -> 1982.33...; month/day clamped into range (sources have 1956-9-12 and 0-days)."""
    month = min(max(month, 1), 12)
    leap = calendar.isleap(year) if year > 0 else False
    dim = calendar.monthrange(2000 if leap else 2001, month)[1]
    day = min(max(day, 1), dim)
    days = 366 if leap else 365
    before = sum(calendar.monthrange(2000 if leap else 2001, m)[1] for m in range(1, month))
    return year + (before + day - 1) / days


def parse_date(lexical: str) -> float | None:
    m = _DATE.match(lexical.strip())
    if not m:
        return None
    year = int(m.group(1).replace("#", "0"))
    month = int(m.group(2)) if m.group(2) and m.group(2) != "##" else 1
    day = int(m.group(3)) if m.group(3) and m.group(3) != "##" else 1
    return fractional_year(year, month, day)


def parse_number(lexical: str) -> float | None:
    text = lexical.strip()
    if not _NUMBER.match(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def numeric_value(lexical: str, datatype: str, plain_numbers: bool = False) -> float | None:
    """The float value of a literal, or None when it is not numeric.

    ``datatype`` is a full IRI, a short tag (``integer``, ``gYear``) or "".
    ``plain_numbers``: untyped values that look like numbers count (TSV sources).
    """
    if not datatype or datatype == XSD + "string":
        return parse_number(lexical) if plain_numbers else None
    local = _datatype_local(datatype)
    if local in _INT_TYPES or local in _FLOAT_TYPES:
        return parse_number(lexical)
    if local in _DATE_TYPES:
        return parse_date(lexical)
    if datatype.startswith("http://dbpedia.org/datatype/") or "/" not in datatype:
        # DBpedia units (km, usDollar, ...) and short tags (PathFusion's "degrees")
        value = parse_number(lexical)
        return value if value is not None else parse_date(lexical)
    return None


def is_ill_typed(lexical: str, datatype: str) -> bool:
    """True when an XSD numeric or date literal's value does not fit its datatype (``"abc"^^xsd:integer``).

    ``INF``/``NaN`` doubles and numbers too large for a float are well-typed (they are just not kept as numbers).
    """
    if not datatype.startswith(XSD):
        return False
    local, text = datatype[len(XSD) :], lexical.strip()
    if local in _INT_TYPES or local in _FLOAT_TYPES:
        if _NUMBER.match(text):
            return False
        return not (local in ("double", "float") and text in ("INF", "+INF", "-INF", "NaN"))
    return local in _DATE_TYPES and parse_date(text) is None


_TYPED = re.compile(r'^"?(.*?)"?\^\^<([^<>]*)>$', re.S)
_LANG = re.compile(r'^"(.*)"@([A-Za-z]+(?:-[A-Za-z0-9]+)*)$', re.S)


def split_tsv_literal(value: str) -> tuple[str, str, str]:
    """``6480.0^^<xsd#double>`` / ``"x"^^<dt>`` / ``"x"@en`` / ``x`` -> (lexical, datatype, lang)."""
    if value.endswith(">") and "^^<" in value:
        m = _TYPED.match(value)
        if m:
            return m.group(1), m.group(2), ""
    if value.startswith('"') and "@" in value:
        m = _LANG.match(value)
        if m:
            return m.group(1), "", m.group(2).lower()
    if len(value) > 1 and value[0] == '"' and value[-1] == '"':
        return value[1:-1], "", ""
    return value, "", ""


def image_source(value: str, base_dir: Path | None = None) -> str:
    """http(s) URLs stay; ``file:`` IRIs and relative paths become absolute local paths."""
    if value.startswith(("http://", "https://")):
        return value
    if value.startswith("file:"):
        parsed = urlparse(value)
        return os.path.abspath(url2pathname(unquote(parsed.path)))
    if "://" in value:
        return value
    path = Path(value).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return os.path.abspath(path)


def name_from_iri(term: str) -> str | None:
    """A readable name from an IRI's local part: ``.../Rebecca_Hall`` -> ``Rebecca Hall``.

    The part after the last ``#`` or ``/`` (for a URN, the last ``:``), percent-decoded,
    underscores as spaces. None for terms that are not IRIs (Freebase mids such as
    ``/m/01m4kpp``, blank nodes) or whose local part is empty.
    """
    t = term.strip().removeprefix("<").removesuffix(">").rstrip("/")
    if t.startswith("_:") or not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", t):
        return None
    local = re.split(r"[/#]", t)[-1] if ("/" in t or "#" in t) else t.rsplit(":", 1)[-1]
    local = unquote(local).replace("_", " ").strip()
    return local or None


# ---- blank nodes in files kgalign writes (export) and reads back (evaluate --links) ----

_BNODE_OK = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.\-]*[A-Za-z0-9_\-])?\Z")  # \Z: "$" would accept a final newline


def nt_bnode(label: str, side: int) -> str:
    """KG ``side``'s blank node ``_:label`` as written in N-Triples/Turtle.

    Labels are local to their graph, so the graph goes into the written label:
    ``_:k1b`` + label, or ``_:k1x`` + hex of the UTF-8 label when the label is not
    a valid N-Triples label. Injective: the two graphs' nodes never merge in one file.
    """
    if _BNODE_OK.match(label):
        return f"_:k{side}b{label}"
    return f"_:k{side}x" + label.encode("utf-8").hex()


def bnode_term(label: str, side: int) -> str:
    """Inverse of :func:`nt_bnode` for KG ``side``: the stored term ``_:label``.

    Labels of earlier kgalign exports (``kgx`` + hex) are decoded too; any other label is kept.
    """
    for head, coded in ((f"k{side}b", False), (f"k{side}x", True), ("kgx", True)):
        if label.startswith(head):
            rest = label[len(head) :]
            if not coded:
                return "_:" + rest
            try:
                return "_:" + bytes.fromhex(rest).decode("utf-8")
            except ValueError:
                break
    return "_:" + label
