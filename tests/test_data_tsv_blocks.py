"""The bulk relation TSV reader gives what the line reader gives: same triples, same errors, same line numbers."""

from __future__ import annotations

import pytest

from kgalign.data.builder import GraphBuilder
from kgalign.data.sources import Problems, Source
from kgalign.data.tsv import _fast_columns, read_relation_triples, relation_blocks
from kgalign.errors import InputError

CLEAN = "".join(f"http://a/e{i}\thttp://a/r{i % 3}\thttp://a/e{(i * 7) % 11}\n" for i in range(40))
TRICKY = [
    CLEAN,
    CLEAN.rstrip("\n"),  # no newline at the end
    "<http://a/x>\t<http://a/r>\t<http://a/y>\n" + CLEAN,  # brackets go
    CLEAN.replace("\n", "\n\n   \n", 3),  # blank lines are skipped
    CLEAN.replace("\n", "\r\n"),  # CRLF
    " http://a/p \thttp://a/r\t http://a/q\n" + CLEAN,  # spaces at field edges are stripped
    "http://a/é\thttp://a/r\thttp://a/ü\n" + CLEAN,  # not ASCII
    "\ufeff" + CLEAN,  # byte order mark
]


def source(tmp_path, text: str, name: str = "g.tsv") -> Source:
    p = tmp_path / name
    p.write_bytes(text.encode("utf-8"))
    return Source.from_arg(str(p), None)


def bulk(src: Source, problems: Problems, block: int) -> list[tuple[str, str, str]]:
    out = []
    for h, r, t in relation_blocks(src, problems, block_bytes=block):
        out += list(zip(h, r, t, strict=True))
    return out


@pytest.mark.parametrize("text", TRICKY)
@pytest.mark.parametrize("block", [16, 100, 1 << 20])
def test_same_triples_as_the_line_reader(tmp_path, text, block):
    expect = list(read_relation_triples(source(tmp_path, text, "a.tsv"), Problems()))
    src = source(tmp_path, text, "b.tsv")
    assert bulk(src, Problems(), block) == expect
    assert src.info["records"] == len(expect)


@pytest.mark.parametrize(
    "bad, message",
    [
        ("http://a/x\thttp://a/r\n", "expected 3 tab-separated fields (head, relation, tail), found 2"),
        ("http://a/x\thttp://a/r\thttp://a/y\tz\n", "expected 3 tab-separated fields (head, relation, tail), found 4"),
        ("http://a/x\t \thttp://a/y\n", "empty field (head, relation, tail)"),
        ("http://a/x\t\thttp://a/y\n", "empty field (head, relation, tail)"),
    ],
)
@pytest.mark.parametrize("block", [64, 1 << 20])
def test_same_error_and_line(tmp_path, bad, message, block):
    text = CLEAN + bad + CLEAN  # the bad line is line 41
    with pytest.raises(InputError) as line_err:
        list(read_relation_triples(source(tmp_path, text, "a.tsv"), Problems()))
    with pytest.raises(InputError) as bulk_err:
        bulk(source(tmp_path, text, "a.tsv"), Problems(), block)
    assert str(bulk_err.value) == str(line_err.value)
    assert bulk_err.value.line == 41 and message in str(bulk_err.value)
    lenient = Problems(lenient=True)
    assert len(bulk(source(tmp_path, text, "c.tsv"), lenient, block)) == 80 and lenient.total_skipped == 1


def test_bad_utf8_names_its_line(tmp_path):
    p = tmp_path / "g.tsv"
    p.write_bytes(CLEAN.encode() + b"http://a/\xff\thttp://a/r\thttp://a/y\n")
    with pytest.raises(InputError, match=r"g\.tsv:41: not valid UTF-8"):
        bulk(Source.from_arg(str(p), None), Problems(), 1 << 20)


def test_fast_path_refuses_what_it_cannot_check():
    assert _fast_columns(b"a\tb\tc\nd\te\tf", 3) == [["a", "d"], ["b", "e"], ["c", "f"]]
    for raw in (b"a\tb\tc\nd\te", b"a\tb\tc\n\td\te", b"a\tb \tc", b"a\tb\tc\n", "a\tb\t\u00e9".encode(), b""):
        assert _fast_columns(raw, 3) is None


def test_block_ids_follow_first_appearance(tmp_path):
    rows = [("x", "r1", "y"), ("z", "r2", "x"), ("y", "r1", "w")]
    one, block = GraphBuilder(1), GraphBuilder(1)
    for h, r, t in rows:
        one.add_relation(h, r, t)
    block.add_relation_block(*map(list, zip(*rows, strict=True)))
    assert one.ent == block.ent and one.rel == block.rel
    assert list(one.heads) == list(block.heads) and list(one.tails) == list(block.tails) and list(one.rels) == list(block.rels)
