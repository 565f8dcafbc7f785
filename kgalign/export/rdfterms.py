"""Entity terms as RDF: IRIs, blank nodes, the policy for plain identifiers, escaping.

Terms are stored as ingested (docs/dataset-format.md): IRIs without brackets,
blank nodes as ``_:label``, anything else (e.g. Freebase mids ``/m/01xyz``) as is.

- An absolute IRI (``scheme:...``) is written as it is, escaped for the syntax.
- ``_:label`` is a blank node. Blank node labels are local to their graph, so KG1's
  ``_:b0`` and KG2's ``_:b0`` are different nodes: written, they get the graph in
  their label, ``_:k1b`` + label / ``_:k2b`` + label, and labels that are not valid
  N-Triples/Turtle labels become ``_:k1x`` / ``_:k2x`` + hex of the UTF-8 label
  (deterministic and injective, so the two graphs' nodes never merge in one file
  and ``kgalign evaluate --links`` decodes them back).
- Any other term needs a base IRI for its graph (``--base-kg1`` / ``--base-kg2``):
  the written IRI is base + term. Without one, writing RDF stops with an error
  naming the term; TSV and JSON lines write terms as they are.
"""

from __future__ import annotations

import re

from kgalign.data.terms import PREFIXES, nt_bnode
from kgalign.errors import InputError

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
# characters N-Triples / Turtle IRIREF cannot hold literally: write them as \\uXXXX
_IRI_BAD = re.compile(r'[\x00-\x20<>"{}|^`\\]')
# XML 1.0 forbids these characters entirely (even as character references)
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

EXTRA_PREFIXES = {
    "semapv": "https://w3id.org/semapv/vocab/",
    "sssom": "https://w3id.org/sssom/",
    "void": "http://rdfs.org/ns/void#",
    "prov": "http://www.w3.org/ns/prov#",
}


def is_blank(term: str) -> bool:
    return term.startswith("_:")


def is_absolute_iri(term: str) -> bool:
    return not term.startswith("_:") and bool(_SCHEME.match(term))


def expand_predicate(text: str) -> str:
    """``owl:sameAs`` / ``skos:exactMatch`` / ``<iri>`` / ``iri`` -> full IRI."""
    t = text.strip()
    if t.startswith("<") and t.endswith(">"):
        t = t[1:-1]
    prefix, sep, local = t.partition(":")
    known = {**PREFIXES, **EXTRA_PREFIXES}
    if sep and prefix in known and not local.startswith("//"):
        return known[prefix] + local
    if not is_absolute_iri(t) or _IRI_BAD.search(t):
        raise InputError(f"predicate {text!r} is neither a known CURIE ({', '.join(sorted(known))}) nor an absolute IRI")
    return t


class TermPolicy:
    """Turns the terms of one graph into RDF terms: ``("iri", iri)`` or ``("bnode", label)``."""

    def __init__(self, side: int, base: str | None = None):
        self.side = side
        self.base = base
        if base is not None and not is_absolute_iri(base):
            raise InputError(f"--base-kg{side} {base!r} is not an absolute IRI")

    def resolve(self, term: str) -> tuple[str, str]:
        if term.startswith("_:"):
            return "bnode", term[2:]
        if is_absolute_iri(term):
            return "iri", term
        if self.base is not None:
            return "iri", self.base + term
        raise InputError(
            f"KG{self.side} term {term!r} is not an absolute IRI; pass --base-kg{self.side} IRI to prefix such terms "
            "(e.g. --base-kg2 http://rdf.freebase.com/ns for Freebase mids), or export --format tsv/jsonl"
        )

    def iri(self, term: str, fmt: str) -> str:
        """An IRI for formats that cannot hold blank nodes (alignment, sssom)."""
        kind, value = self.resolve(term)
        if kind == "bnode":
            raise InputError(f"KG{self.side} term {term!r} is a blank node, which the {fmt} format cannot hold; use nt, ttl, tsv or jsonl")
        return value


def nt_iri(iri: str) -> str:
    """``<iri>`` with the characters IRIREF excludes written as ``\\uXXXX``."""
    if _IRI_BAD.search(iri) is None:
        return f"<{iri}>"
    return "<" + _IRI_BAD.sub(lambda m: f"\\u{ord(m.group()):04X}", iri) + ">"


def nt_term(kind_value: tuple[str, str], side: int) -> str:
    kind, value = kind_value
    return nt_iri(value) if kind == "iri" else nt_bnode(value, side)


def xml_attr(text: str, what: str) -> str:
    """Escape for a double-quoted XML attribute; refuse characters XML cannot hold."""
    if _XML_FORBIDDEN.search(text):
        raise InputError(f"{what} {text!r} contains a control character that XML 1.0 cannot represent; use nt, ttl, tsv or jsonl")
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("\t", "&#9;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
    )


def xml_attrs(texts: list[str], what: str) -> list[str]:
    """:func:`xml_attr` for many values: replacements on the joined text (C speed)."""
    joined = "\n".join(texts)
    if joined.count("\n") != max(0, len(texts) - 1) or "\t" in joined or "\r" in joined or _XML_FORBIDDEN.search(joined):
        return [xml_attr(t, what) for t in texts]  # rare: per value
    esc = joined.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    return esc.split("\n") if texts else []


def turtle_string(text: str) -> str:
    """A Turtle/N-Triples string literal body with quotes."""
    out = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{out}"'


# ---- bulk conversion (one pass per column; errors before any output) --------


def all_plain_iris(terms: list[str]) -> bool:
    """True when every term is an absolute IRI that N-Triples can hold literally
    (C-speed checks: one regex call per term, one scan of the joined text)."""
    return all(map(_SCHEME.match, terms)) and _IRI_BAD.search("".join(terms)) is None


def all_absolute(terms: list[str]) -> bool:
    """True when every term is an absolute IRI (any characters)."""
    return all(map(_SCHEME.match, terms))


def resolved_iris(terms: list[str], policy: TermPolicy, fmt: str, allow_bnodes: bool) -> list[str]:
    """Each term as a full IRI (``_:label`` kept as is when ``allow_bnodes``)."""
    if all_absolute(terms):
        return terms
    scheme = _SCHEME.match
    base = policy.base
    out = []
    append = out.append
    for t in terms:
        if t.startswith("_:"):
            if not allow_bnodes:
                policy.iri(t, fmt)  # raises the blank-node error
            append(t)
        elif scheme(t):
            append(t)
        elif base is not None:
            append(base + t)
        else:
            policy.resolve(t)  # raises the no-base error
    return out


def nt_tokens(terms: list[str], policy: TermPolicy) -> list[str]:
    """Each term as an N-Triples/Turtle token: ``<iri>`` (escaped) or ``_:label``."""
    bad = _IRI_BAD.search
    out = []
    append = out.append
    for t in resolved_iris(terms, policy, "nt", True):
        if t.startswith("_:"):
            append(nt_bnode(t[2:], policy.side))
        elif bad(t) is None:
            append(f"<{t}>")
        else:
            append(nt_iri(t))
    return out
