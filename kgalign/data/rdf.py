"""RDF readers: pyoxigraph (streaming) for N-Triples, N-Quads, Turtle and TriG;
rdflib for RDF/XML, JSON-LD and N3.

``read_rdf`` yields statements as ``(subject, predicate, object, is_literal,
datatype, lang)`` with terms in stored form (IRIs bare, blank nodes ``_:x``).
Graph names of quads are ignored. A syntax error names file and line; in
lenient mode the pyoxigraph formats skip the bad statement and go on
(rdflib formats are parsed as a whole and cannot skip).
"""

from __future__ import annotations

import lzma
import zlib
from typing import Iterator

from kgalign.data.sources import Problems, Source
from kgalign.errors import InputError

OXI_FORMATS = {"nt": "N_TRIPLES", "nq": "N_QUADS", "ttl": "TURTLE", "trig": "TRIG"}
RDFLIB_FORMATS = {"xml": "xml", "json-ld": "json-ld", "n3": "n3"}
_RDF_LANGSTRING = "http://www.w3.org/1999/02/22-rdf-syntax-ns#langString"
_MAX_ERRORS = 1_000_000  # lenient mode: stop a parser that never recovers

Statement = tuple  # (s, p, o, is_literal, datatype, lang)


def read_rdf(src: Source, fmt: str, problems: Problems) -> Iterator[Statement]:
    if fmt in OXI_FORMATS:
        yield from _read_oxigraph(src, fmt, problems)
    elif fmt in RDFLIB_FORMATS:
        yield from _read_rdflib(src, fmt)
    else:
        raise InputError(f"unknown RDF format {fmt!r}", src.label)


def _decompress_error(src: Source, exc: Exception) -> InputError:
    return InputError(f"cannot read the file ({type(exc).__name__}: {exc})", src.label)


def _convert(q, label: str, problems: Problems, line: int | None):
    """A pyoxigraph quad -> Statement, or None (RDF-star is reported as bad input)."""
    import pyoxigraph as ox

    s, o = q.subject, q.object
    ts, to = type(s), type(o)
    if ts is ox.NamedNode:
        s_term = s.value
    elif ts is ox.BlankNode:
        s_term = "_:" + s.value
    else:
        problems.bad("RDF-star quoted triples are not supported", label, line)
        return None
    if to is ox.Literal:
        lang = o.language or ""
        return s_term, q.predicate.value, o.value, True, ("" if lang else o.datatype.value), lang
    if to is ox.NamedNode:
        return s_term, q.predicate.value, o.value, False, "", ""
    if to is ox.BlankNode:
        return s_term, q.predicate.value, "_:" + o.value, False, "", ""
    problems.bad("RDF-star quoted triples are not supported", label, line)
    return None


def _problem(exc: SyntaxError) -> str:
    msg = str(exc.args[0]) if exc.args else str(exc)
    # "Parser error at line 3 between columns 23 and 26: problem" -> "column 23: problem"
    problem = msg.split(": ", 1)[1] if msg.startswith("Parser error") and ": " in msg else msg
    return (f"column {exc.offset}: " if exc.offset else "") + problem


_CHUNK_LINES = 20_000


def _read_line_based(src: Source, fmt: str, problems: Problems, fh) -> Iterator[Statement]:
    """N-Triples / N-Quads: parse chunks of lines at full speed; a chunk with an
    error is parsed again line by line, so the bad line is named exactly and
    lenient mode skips exactly the bad lines."""
    import pyoxigraph as ox

    rdf_format = getattr(ox.RdfFormat, OXI_FORMATS[fmt])
    label, count, first_line = src.label, 0, 1
    convert = _convert
    NamedNode, BlankNode, Literal = ox.NamedNode, ox.BlankNode, ox.Literal
    while True:
        chunk = [line for _, line in zip(range(_CHUNK_LINES), fh, strict=False)]
        if not chunk:
            break
        try:
            quads = list(ox.parse(input=b"".join(chunk), format=rdf_format))
        except SyntaxError:
            quads = None
        if quads is not None:
            for q in quads:  # the hot loop: inlined _convert
                s, o = q.subject, q.object
                ts, to = type(s), type(o)
                if ts is NamedNode:
                    s_term = s.value
                elif ts is BlankNode:
                    s_term = "_:" + s.value
                else:
                    convert(q, label, problems, None)
                    continue
                if to is NamedNode:
                    yield s_term, q.predicate.value, o.value, False, "", ""
                elif to is Literal:
                    lang = o.language or ""
                    yield s_term, q.predicate.value, o.value, True, ("" if lang else o.datatype.value), lang
                elif to is BlankNode:
                    yield s_term, q.predicate.value, "_:" + o.value, False, "", ""
                else:
                    convert(q, label, problems, None)
                    continue
                count += 1
        else:
            for i, line in enumerate(chunk):
                lineno = first_line + i
                try:
                    quads = list(ox.parse(input=line, format=rdf_format))
                except SyntaxError as exc:
                    problems.bad(_problem(exc), label, lineno)
                    continue
                for q in quads:
                    st = convert(q, label, problems, lineno)
                    if st is not None:
                        count += 1
                        yield st
        first_line += len(chunk)
    src.info["records"] = count


def _base_iri(src: Source) -> str | None:
    """``file:`` IRI of the input file, or None for stdin and archive members."""
    return None if src.path is None else src.path.resolve().as_uri()


def _read_oxigraph(src: Source, fmt: str, problems: Problems) -> Iterator[Statement]:
    import pyoxigraph as ox

    fh = src.open()
    try:
        if fmt in ("nt", "nq"):
            yield from _read_line_based(src, fmt, problems, fh)
            return
        errors = count = 0
        # Relative IRIs (e.g. <images/a.png>) resolve against the file's own location.
        it = ox.parse(input=fh, format=getattr(ox.RdfFormat, OXI_FORMATS[fmt]), base_iri=_base_iri(src))
        while True:
            try:
                q = next(it)
            except StopIteration:
                break
            except SyntaxError as exc:
                # Turtle/TriG: the position is where the parser noticed; lenient mode lets it resynchronise
                problems.bad(_problem(exc), src.label, exc.lineno)
                errors += 1
                if errors > _MAX_ERRORS:
                    raise InputError("too many syntax errors; is this the right format?", src.label) from None
                continue
            st = _convert(q, src.label, problems, None)
            if st is not None:
                count += 1
                yield st
        src.info["records"] = count
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
        raise _decompress_error(src, exc) from None
    finally:
        fh.close()


def _context_references(node, found: list) -> None:
    """Collect every ``@context`` / ``@import`` value that names another document (a string)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "@context":
                for ctx in value if isinstance(value, list) else [value]:
                    if isinstance(ctx, str):
                        found.append(ctx)
                    else:
                        _context_references(ctx, found)
            elif key == "@import" and isinstance(value, str):
                found.append(value)
            else:
                _context_references(value, found)
    elif isinstance(node, list):
        for item in node:
            _context_references(item, found)


def _refuse_remote_contexts(src: Source, data: bytes) -> None:
    """Ingest never fetches anything: JSON-LD that refers to another context document is refused
    (rdflib would download it). Inline contexts are fine."""
    import json

    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(f"not valid UTF-8 ({exc.reason} at byte {exc.start})", src.label) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"json-ld syntax error: {exc.msg}", src.label, exc.lineno) from None
    found: list = []
    _context_references(doc, found)
    if found:
        raise InputError(
            f"the JSON-LD @context refers to another document ({found[0]!r}); kgalign never fetches anything while "
            "ingesting: replace the reference by the context itself (inline JSON object), or convert the file to "
            "N-Triples with a tool you trust",
            src.label,
        )


def _read_rdflib(src: Source, fmt: str) -> Iterator[Statement]:
    import rdflib

    fh = src.open()
    try:
        data = fh.read()
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
        raise _decompress_error(src, exc) from None
    finally:
        fh.close()
    if fmt == "json-ld":
        _refuse_remote_contexts(src, data)
    graph = rdflib.Graph()
    base = _base_iri(src)
    try:
        graph.parse(data=data, format=RDFLIB_FORMATS[fmt], publicID=base)
    except Exception as exc:  # rdflib raises many types; all mean bad input here
        line = None
        get_line = getattr(exc, "getLineNumber", None)
        if callable(get_line):
            line = get_line()
        elif getattr(exc, "lines", None):
            line = exc.lines
        problem = exc.getMessage() if hasattr(exc, "getMessage") else str(exc)
        raise InputError(f"{fmt} syntax error: {problem}".strip(), src.label, line) from None
    count = 0
    for s, p, o in graph:
        s_term = "_:" + str(s) if isinstance(s, rdflib.BNode) else str(s)
        count += 1
        if isinstance(o, rdflib.Literal):
            lang = o.language or ""
            dt = "" if lang else str(o.datatype or "http://www.w3.org/2001/XMLSchema#string")
            yield s_term, str(p), str(o), True, dt, lang
        elif isinstance(o, rdflib.BNode):
            yield s_term, str(p), "_:" + str(o), False, "", ""
        else:
            yield s_term, str(p), str(o), False, "", ""
    src.info["records"] = count
