"""Property-based: readers never crash on malformed input except with InputError,
and lenient mode counts exactly the bad lines."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kgalign.data.ingest import GraphSpec, IngestOptions, ingest
from kgalign.errors import InputError

RDF = Path(__file__).parent / "data" / "rdf"
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# fragments of N-Triples and TSV, so generated lines are often almost valid
FRAGMENTS = st.sampled_from(
    [
        "<http://a/x>",
        "<http://a/p>",
        "_:b",
        '"lit"',
        '"1"^^<http://www.w3.org/2001/XMLSchema#int>',
        "@en",
        " ",
        "\t",
        ".",
        "<",
        ">",
        '"',
        "\\",
        "^^",
        "x",
        "\u00e9",
        "#",
    ]
)
LINE = st.lists(FRAGMENTS, max_size=8).map("".join)


def _run(suffix: str, data: bytes, lenient: bool):
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / f"g{suffix}"
        p.write_bytes(data)
        opts = IngestOptions(kg1=GraphSpec([str(p)]), kg2=GraphSpec([str(RDF / "kg2.nt")]), lenient=lenient)
        return ingest(opts)


@SETTINGS
@given(
    lines=st.lists(LINE, max_size=12),
    raw=st.binary(max_size=40),
    lenient=st.booleans(),
    suffix=st.sampled_from([".nt", ".nq", ".ttl", ".tsv", ".nt.gz", ".rdf", ".jsonld"]),
)
def test_malformed_input_raises_only_input_error(lines, raw, lenient, suffix):
    data = ("\n".join(lines) + "\n").encode("utf-8") + raw
    try:
        _run(suffix, data, lenient)
    except InputError as exc:
        assert str(exc)  # a message for the user


VALID_NT = st.integers(0, 50).map(lambda i: f"<http://a/e{i}> <http://a/p{i % 3}> <http://a/e{i + 1}> .")
VALID_TSV = st.integers(0, 50).map(lambda i: f"e{i}\tp{i % 3}\te{i + 1}")
BAD_NT = st.sampled_from(
    [
        "<http://a/x> <http://a/p> .",
        "junk",
        "<http://a/x> <http://a/p> <http://a/y>",
        '_:b <http://a/p> "open',
        '<http://a/x> "lit" <http://a/y> .',
    ]
)
BAD_TSV = st.sampled_from(["only\ttwo", "one", "a\tb\tc\td", "a\t\tc", "\t\t"])


@SETTINGS
@given(data=st.data(), fmt=st.sampled_from(["nt", "tsv"]))
def test_lenient_counts_exactly_the_bad_lines(data, fmt):
    good = VALID_NT if fmt == "nt" else VALID_TSV
    bad = BAD_NT if fmt == "nt" else BAD_TSV
    kinds = data.draw(st.lists(st.booleans(), min_size=1, max_size=20))
    lines = [data.draw(good) if k else data.draw(bad) for k in kinds]
    if not any(kinds):
        lines.append(data.draw(good))
        kinds.append(True)
    ds, rep = _run(f".{fmt}", ("\n".join(lines) + "\n").encode(), lenient=True)
    assert rep["skipped_lines"] == kinds.count(False)
    assert ds.manifest["problems"]["skipped_lines"] == kinds.count(False)
    unique = {line for line, k in zip(lines, kinds, strict=False) if k}
    assert ds.counts()["kg1"]["relation_triples"] == len(unique)
    if kinds.count(False):
        try:
            _run(f".{fmt}", ("\n".join(lines) + "\n").encode(), lenient=False)
            raise AssertionError("strict mode accepted a bad line")
        except InputError as exc:
            assert exc.line == kinds.index(False) + 1
