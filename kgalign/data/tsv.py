"""Tab-separated readers: relation triples, attribute triples, names, images, links.

A field ``<iri>`` loses its angle brackets (stored form); everything else is
kept as it is. Blank lines are skipped; a line with the wrong number of
fields or an empty field is bad input (file and line in the message).
"""

from __future__ import annotations

import lzma
import zlib
from typing import Iterator

import numpy as np

from kgalign.data.sources import Problems, Source, read_lines
from kgalign.data.terms import plain_term, split_tsv_literal
from kgalign.errors import InputError


def _want(min_cols: int, max_cols: int | None) -> str:
    return str(min_cols) if max_cols == min_cols else (f"{min_cols}-{max_cols}" if max_cols else f"at least {min_cols}")


def _checked(lines, src: Source, problems: Problems, min_cols: int, max_cols: int | None, what: str) -> Iterator[tuple[int, list[str]]]:
    """``(lineno, fields)`` of the good rows among ``(lineno, text)`` lines; bad ones go to ``problems``."""
    for lineno, text in lines:
        if not text.strip(" "):  # blank line; a line of tabs is a row of empty fields
            continue
        fields = text.split("\t")
        n = len(fields)
        if n < min_cols or (max_cols is not None and n > max_cols):
            problems.bad(f"expected {_want(min_cols, max_cols)} tab-separated fields{what}, found {n}", src.label, lineno)
            continue
        if any(not f.strip() for f in fields[:min_cols]):
            problems.bad(f"empty field{what}", src.label, lineno)
            continue
        yield lineno, fields


def tsv_rows(
    src: Source, problems: Problems, min_cols: int, max_cols: int | None = None, what: str = ""
) -> Iterator[tuple[int, list[str]]]:
    """``(lineno, fields)`` for each non-empty line with ``min_cols..max_cols`` non-empty fields.

    ``max_cols=None``: any number of fields from ``min_cols`` on.
    """
    fh = src.open()
    count = 0
    try:
        for row in _checked(read_lines(src, fh, problems), src, problems, min_cols, max_cols, what):
            count += 1
            yield row
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
        raise InputError(f"cannot read the file ({type(exc).__name__}: {exc})", src.label) from None
    finally:
        fh.close()
    src.info["records"] = count
    src.info["lines"] = count


def _raw_blocks(fh, size: int) -> Iterator[tuple[int, bytes]]:
    """``(first line number, bytes of whole lines without the last newline)`` blocks of about ``size`` bytes."""
    carry, lineno = b"", 1
    while True:
        chunk = fh.read(size)
        if not chunk:
            break
        buf = carry + chunk
        cut = buf.rfind(b"\n")
        if cut < 0:
            carry = buf
            continue
        carry = buf[cut + 1 :]
        yield lineno, buf[:cut]
        lineno += buf.count(b"\n", 0, cut) + 1
    if carry:
        yield lineno, carry


# bytes str.strip() removes at a field's edge, among ASCII (the fast path takes ASCII blocks only)
_ASCII_SPACE = np.zeros(256, bool)
_ASCII_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True


def _fast_columns(raw: bytes, ncols: int, plain: tuple[int, ...] | None = None) -> list[list[str]] | None:
    """The columns of a clean block, else None (the caller reads it line by line).

    Clean: ASCII, every line ``ncols`` fields, no field empty or with whitespace at its
    edges (so stripping would change nothing). Checked on the bytes with numpy, then
    split once: no per-line Python objects.
    """
    if not raw or not raw.isascii():
        return None
    arr = np.frombuffer(raw, np.uint8)
    newline, tab = np.flatnonzero(arr == 10), np.flatnonzero(arr == 9)
    tabs_before = np.searchsorted(tab, np.concatenate([newline, [len(arr)]]))
    if (np.diff(tabs_before, prepend=0) != ncols - 1).any():
        return None
    delim = np.concatenate([newline, tab])
    # a field's first and last byte must not be whitespace (a delimiter there means an empty field)
    edges = np.concatenate([[0, len(arr) - 1], delim - 1, delim + 1])
    edges = edges[(edges >= 0) & (edges < len(arr))]
    if _ASCII_SPACE[arr[edges]].any() or _ASCII_SPACE[arr[0]] or _ASCII_SPACE[arr[-1]]:
        return None
    text = raw.decode("ascii")
    flat = text.replace("\n", "\t").split("\t")
    cols = [flat[c::ncols] for c in range(ncols)]
    if "<" in text:  # the columns that hold terms (``plain``, default all) lose their angle brackets
        cols = [[plain_term(t) for t in col] if plain is None or c in plain else col for c, col in enumerate(cols)]
    return cols


def relation_blocks(src: Source, problems: Problems, block_bytes: int = 1 << 22) -> Iterator[tuple[list[str], list[str], list[str]]]:
    """Relation triples ``(heads, relations, tails)`` in blocks, with exactly the checks of ``read_relation_triples``.

    A clean block is split in bulk; a block with anything unusual (a blank or bad line, CR, bad
    UTF-8, an empty field) is read line by line, so messages and line numbers are the same.
    """
    fh = src.open()
    count = 0
    what = " (head, relation, tail)"
    try:
        for start, raw in _raw_blocks(fh, block_bytes):
            cols = _fast_columns(raw, 3)
            if cols is None:
                rows = _checked(read_lines(src, raw.split(b"\n"), problems, start), src, problems, 3, 3, what)
                cols = [[], [], []]
                for _, f in rows:
                    for c in range(3):
                        cols[c].append(plain_term(f[c].strip()))
            count += len(cols[0])
            yield cols[0], cols[1], cols[2]
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
        raise InputError(f"cannot read the file ({type(exc).__name__}: {exc})", src.label) from None
    finally:
        fh.close()
    src.info["records"] = count
    src.info["lines"] = count


def attribute_blocks(src: Source, problems: Problems, block_bytes: int = 1 << 22) -> Iterator[tuple]:
    """Attribute triples ``(entities, attributes, lexicals, datatypes, langs)`` in blocks, with exactly the checks of
    ``read_attribute_triples``; ``datatypes``/``langs`` are None for a block where every value is plain."""
    fh = src.open()
    count = 0
    what = " (entity, attribute, value)"
    try:
        for start, raw in _raw_blocks(fh, block_bytes):
            cols = _fast_columns(raw, 3, plain=(0, 1))
            if cols is None:
                rows = _checked(read_lines(src, raw.split(b"\n"), problems, start), src, problems, 3, 3, what)
                cols = [[], [], []]
                for _, f in rows:
                    cols[0].append(plain_term(f[0].strip()))
                    cols[1].append(plain_term(f[1].strip()))
                    cols[2].append(f[2])
            count += len(cols[0])
            values = cols[2]
            if any('"' in v or "^^<" in v for v in values):
                lex, dts, langs = (list(c) for c in zip(*map(split_tsv_literal, values), strict=True))
                yield cols[0], cols[1], lex, dts, langs
            else:
                yield cols[0], cols[1], values, None, None
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
