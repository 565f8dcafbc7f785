"""The dataset directory format: round trip, escaping, atomicity, version checks."""

import json

import numpy as np
import pytest

from kgalign.data.store import Dataset, escape, load_dataset, unescape, write_dataset
from kgalign.errors import InputError, MissingResourceError
from kgalign.fsutil import atomic_directory, atomic_path


def _small() -> Dataset:
    return Dataset(
        entities=["http://a.org/x", "_:b0", "http://b.org/y", "/m/01xyz"],
        entity_kg=np.array([1, 1, 2, 2], np.int8),
        relations=["http://a.org/r", "http://b.org/s"],
        relation_kg=np.array([1, 2], np.int8),
        relation_triples=np.array([[0, 0, 1], [2, 1, 3]], np.int64),
        attributes=["http://a.org/desc"],
        attribute_kg=np.array([1], np.int8),
        attr_entity=np.array([0], np.int64),
        attr_key=np.array([0], np.int64),
        attr_value=["tab\there\nnew line \\ backslash"],
        attr_datatype=["http://www.w3.org/2001/XMLSchema#string"],
        attr_lang=[""],
        num_entity=np.array([1], np.int64),
        num_key=np.array([0], np.int64),
        num_value=np.array([1987.5]),
        name_entity=np.array([0, 2], np.int64),
        name_text=["Zoë", "Zoe"],
        name_lang=["fr", ""],
        image_entity=np.array([3], np.int64),
        image_source=["http://img.example/1.png"],
        links=np.array([[0, 2], [1, 3]], np.int64),
        link_split=["train", "test"],
        manifest={"sources": []},
    )


@pytest.mark.parametrize("text", ["", "plain", "a\tb", "a\\tb", "x\ny\r\\", "\\\\n"])
def test_escape_round_trip(text):
    assert unescape(escape(text)) == text
    assert "\t" not in escape(text) and "\n" not in escape(text)


def test_write_then_load_round_trips_every_field(tmp_path):
    ds = _small()
    write_dataset(ds, tmp_path / "ds")
    back = load_dataset(tmp_path / "ds")
    assert back.entities == ds.entities
    assert back.entity_kg.tolist() == [1, 1, 2, 2]
    assert back.relation_triples.tolist() == ds.relation_triples.tolist()
    assert back.attr_value == ds.attr_value
    assert back.num_value.tolist() == [1987.5]
    assert back.name_text == ["Zoë", "Zoe"] and back.name_lang == ["fr", ""]
    assert back.links_for("test").tolist() == [[1, 3]]
    counts = back.manifest["counts"]
    assert counts["kg1"]["entities"] == 2 and counts["kg2"]["relation_triples"] == 1
    assert counts["links"]["total"] == 2


def test_existing_directory_is_not_replaced_without_overwrite(tmp_path):
    write_dataset(_small(), tmp_path / "ds")
    with pytest.raises(FileExistsError):
        write_dataset(_small(), tmp_path / "ds")
    write_dataset(_small(), tmp_path / "ds", overwrite=True)
    assert load_dataset(tmp_path / "ds").num_entities == 4


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_directory(tmp_path / "out") as tmp:
            (tmp / "half.tsv").write_text("x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "f.txt") as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_load_rejects_missing_and_newer_formats(tmp_path):
    with pytest.raises(MissingResourceError):
        load_dataset(tmp_path)
    write_dataset(_small(), tmp_path / "ds")
    m = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    m["format_version"] = 99
    (tmp_path / "ds" / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(InputError, match="newer"):
        load_dataset(tmp_path / "ds")


def test_corrupt_table_names_file_and_line(tmp_path):
    write_dataset(_small(), tmp_path / "ds")
    with open(tmp_path / "ds" / "links.tsv", "a") as f:
        f.write("1\t2\n")
    with pytest.raises(InputError) as err:
        load_dataset(tmp_path / "ds")
    assert "links.tsv:4" in str(err.value)


def test_atomic_outputs_get_normal_permissions(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "f.txt") as tmp:
            tmp.write_text("x")
        assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
        write_dataset(_small(), tmp_path / "ds")
        assert (tmp_path / "ds").stat().st_mode & 0o777 == 0o755
    finally:
        os.umask(umask)
