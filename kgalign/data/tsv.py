"""Tab-separated readers: relation triples, attribute triples, names, images, links.

A field ``<iri>`` loses its angle brackets (stored form); everything else is
kept as it is. Blank lines are skipped; a line with the wrong number of
fields or an empty field is bad input (file and line in the message).
"""

from __future__ import annotations

import lzma
import zlib
from typing import Iterator

from kgalign.data.sources import Problems, Source, read_lines
from kgalign.data.terms import plain_term, split_tsv_literal
from kgalign.errors import InputError


def tsv_rows(
    src: Source, problems: Problems, min_cols: int, max_cols: int | None = None, what: str = ""
) -> Iterator[tuple[int, list[str]]]:
    """``(lineno, fields)`` for each non-empty line with ``min_cols..max_cols`` non-empty fields.

    ``max_cols=None``: any number of fields from ``min_cols`` on.
    """
    fh = src.open()
    count = 0
    try:
        for lineno, text in read_lines(src, fh, problems):
            if not text.strip(" "):  # blank line; a line of tabs is a row of empty fields
                continue
            fields = text.split("\t")
            n = len(fields)
            if n < min_cols or (max_cols is not None and n > max_cols):
                want = str(min_cols) if max_cols == min_cols else (f"{min_cols}-{max_cols}" if max_cols else f"at least {min_cols}")
                problems.bad(f"expected {want} tab-separated fields{what}, found {n}", src.label, lineno)
                continue
            if any(not f.strip() for f in fields[:min_cols]):
                problems.bad(f"empty field{what}", src.label, lineno)
                continue
            count += 1
            yield lineno, fields
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
        raise InputError(f"cannot read the file ({type(exc).__name__}: {exc})", src.label) from None
    finally:
        fh.close()
    src.info["records"] = count
    src.info["lines"] = count


def read_relation_triples(src: Source, problems: Problems) -> Iterator[tuple[str, str, str]]:
    for _, f in tsv_rows(src, problems, 3, 3, " (head, relation, tail)"):
        yield plain_term(f[0].strip()), plain_term(f[1].strip()), plain_term(f[2].strip())


def read_attribute_triples(src: Source, problems: Problems) -> Iterator[tuple[str, str, str, str, str]]:
    """``(entity, attribute, lexical, datatype, lang)``; values may be ``6480.0^^<dt>`` or ``"x"@en``."""
    for _, f in tsv_rows(src, problems, 3, 3, " (entity, attribute, value)"):
        lex, dt, lang = split_tsv_literal(f[2])
        yield plain_term(f[0].strip()), plain_term(f[1].strip()), lex, dt, lang


def read_pairs(src: Source, problems: Problems, what: str, max_cols: int | None = 2) -> Iterator[tuple[int, list[str]]]:
    """Two-column files (entity -> name, entity -> image, kg1 -> kg2); extra columns allowed when max_cols is None."""
    yield from tsv_rows(src, problems, 2, max_cols, what)
