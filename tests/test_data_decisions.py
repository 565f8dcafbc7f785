"""The decisions file (kgalign/data/decisions.py): round trips, tolerant reading, errors, seed updates."""

import numpy as np
import pytest

from kgalign.data.decisions import (
    Decision,
    DecisionLog,
    decision_ids,
    read_decisions,
    seed_update,
    seeds_from_decisions,
    write_decisions,
)
from kgalign.errors import InputError


def test_round_trip_keeps_hostile_terms(tmp_path):
    p = tmp_path / "d.tsv"
    items = [
        Decision("http://a/x\ty", "b\nline", "accepted", 0.5, "2026-01-01T00:00:00+00:00"),
        Decision("_:b0", 'http://b/"q"\\', "rejected", None, ""),
        Decision("m.01", "http://b/é", "skipped", -0.25, "t"),
    ]
    write_decisions(p, items)
    assert read_decisions(p) == items
    lines = p.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "kg1\tkg2\tdecision\tscore\ttime" and len(lines) == 4  # escaped: one row per decision


def test_later_rows_win_and_move_to_the_end(tmp_path):
    p = tmp_path / "d.tsv"
    p.write_text("kg1\tkg2\tdecision\tscore\ttime\na\tb\taccepted\t0.1\tt1\nc\td\trejected\t\tt2\na\tb\trejected\t0.1\tt3\n")
    got = read_decisions(p)
    assert [(d.pair, d.decision) for d in got] == [(("c", "d"), "rejected"), (("a", "b"), "rejected")]


def test_tolerant_reading(tmp_path):
    p = tmp_path / "d.tsv"
    p.write_bytes(b"# written by hand\r\nkg1\tkg2\tdecision\r\n\r\na\tb\tAccepted \r\nc\td\tskipped\t\t\textra\r\n")
    got = read_decisions(p)
    assert [(d.kg1, d.kg2, d.decision, d.score) for d in got] == [("a", "b", "accepted", None), ("c", "d", "skipped", None)]
    assert read_decisions(tmp_path / "missing.tsv") == []


@pytest.mark.parametrize(
    "body, line, words",
    [
        ("kg1\tkg2\tdecision\na\tb\tmaybe\n", 2, "unknown decision 'maybe'"),
        ("kg1\tkg2\tdecision\tscore\na\tb\taccepted\thigh\n", 2, "score 'high' is not a number"),
        ("kg1\tkg2\tdecision\n\na\tb\n", 3, "at least 3 tab-separated fields"),
        ("a\tb\taccepted\n", 1, "expected the header"),
        ("kg1\tkg2\tscore\n", 1, "lacks the column(s) decision"),
        ("kg1\tkg2\tdecision\n\tb\taccepted\n", 2, "empty kg1 or kg2"),
    ],
)
def test_errors_name_file_and_line(tmp_path, body, line, words):
    p = tmp_path / "d.tsv"
    p.write_text(body, encoding="utf-8")
    with pytest.raises(InputError) as e:
        read_decisions(p)
    assert str(e.value).startswith(f"{p}:{line}: ") and words in str(e.value)


def test_not_utf8(tmp_path):
    p = tmp_path / "d.tsv"
    p.write_bytes(b"kg1\tkg2\tdecision\n\xff\tb\taccepted\n")
    with pytest.raises(InputError, match="not UTF-8"):
        read_decisions(p)


def test_log_records_undoes_and_survives_reopening(tmp_path):
    p = tmp_path / "run" / "decisions.tsv"
    log = DecisionLog(p)
    log.record("a", "b", "accepted", 0.4)
    log.record("c", "d", "rejected", 0.35)
    log.record("a", "b", "skipped", 0.4)  # re-deciding replaces the row
    assert [(d.pair, d.decision) for d in DecisionLog(p).items] == [(("c", "d"), "rejected"), (("a", "b"), "skipped")]
    assert log.undo().pair == ("a", "b")
    again = DecisionLog(p)
    assert [d.pair for d in again.items] == [("c", "d")] and again.get("c", "d").decision == "rejected"
    assert again.get("a", "b") is None
    assert again.undo() is not None and again.undo() is None
    assert read_decisions(p) == []
    assert sorted(x.name for x in p.parent.iterdir()) == ["decisions.tsv"]  # no temporary files left
    with pytest.raises(ValueError):
        log.record("a", "b", "perhaps")


def test_seed_update_accepts_adds_and_rejects_remove():
    seeds = [(0, 10), (1, 11), (2, 12)]
    up = seed_update(seeds, accepted=[(3, 13), (0, 10), (3, 13)], rejected=[(1, 11), (4, 14)])
    assert up.seeds.tolist() == [[0, 10], [2, 12], [3, 13]]
    assert up.extra.tolist() == [[3, 13]]
    assert up.negatives.tolist() == [[1, 11], [4, 14]]
    assert up.removed.tolist() == [[1, 11]]
    assert up.seeds.dtype == np.int64 and seed_update(np.zeros((0, 2)), [], []).seeds.shape == (0, 2)


def test_decision_terms_become_ids_per_graph():
    # the same term in both graphs: ids are looked up in the right graph
    entities = ["x", "y", "x", "z"]
    kg = np.array([1, 1, 2, 2], np.int8)
    decisions = [
        Decision("x", "x", "accepted"),
        Decision("y", "z", "rejected"),
        Decision("y", "x", "skipped"),
        Decision("z", "x", "accepted"),  # z is a KG2 term only
    ]
    acc, rej, unknown = decision_ids(decisions, entities, kg)
    assert acc.tolist() == [[0, 2]] and rej.tolist() == [[1, 3]] and [d.kg1 for d in unknown] == ["z"]
    up = seeds_from_decisions([(1, 3)], decisions, entities, kg)
    assert up.seeds.tolist() == [[0, 2]] and up.removed.tolist() == [[1, 3]] and len(up.unknown) == 1
