"""Damaged dataset, feature and checkpoint files: `info` names them; loaders name them; resume falls back."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import kg, refused

from kgalign.errors import InputError, MissingResourceError
from kgalign.fsutil import _HOST, FOREIGN_STALE_S
from kgalign.training.checkpoint import load_checkpoint, save_checkpoint


@pytest.fixture
def ds(tmp_path, dataset_dir) -> Path:
    out = tmp_path / "ds"
    shutil.copytree(dataset_dir, out)
    return out


def _truncate(p: Path, keep: float = 0.5) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * keep)])


def test_info_names_a_deleted_or_truncated_file(ds):
    assert kg("info", ds).returncode == 0
    (ds / "names.tsv").unlink()
    refused(kg("info", ds), 2, ds / "names.tsv", "missing")
    refused(kg("features", ds, "--modalities", "relation"), 2, ds / "names.tsv")


@pytest.mark.parametrize("name", ["links.tsv", "relation_triples.npy", "entities.tsv", "manifest.json"])
def test_truncated_files_are_named_by_info_and_by_the_next_stage(ds, name):
    _truncate(ds / name)
    refused(kg("info", ds), 2, ds / name)
    refused(kg("train", ds, "-o", ds.parent / "run", "--model", "noco", "--epochs", "1"), 2, ds / name)


def test_info_check_finds_same_size_edits_and_bad_ids(ds):
    links = ds / "links.tsv"
    text = links.read_text(encoding="utf-8")
    edited = text.replace("\t", "\t", 1)
    lines = edited.splitlines(keepends=True)
    first = lines[1].split("\t")
    first[0] = str(int(first[0]) ^ 1)  # another id with the same number of digits: same size
    lines[1] = "\t".join(first)
    links.write_text("".join(lines), encoding="utf-8")
    assert kg("info", ds).returncode == 0  # sizes match: the quick check cannot see it
    refused(kg("info", ds, "--check"), 2, links)
    # an id out of range is named with its line even without checksums (sizes re-recorded)
    lines[1] = "999999\t" + "\t".join(first[1:])
    links.write_text("".join(lines), encoding="utf-8")
    m = json.loads((ds / "manifest.json").read_text(encoding="utf-8"))
    m["files"]["links.tsv"]["bytes"] = links.stat().st_size
    (ds / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    line = refused(kg("features", ds, "--modalities", "relation"), 2, links)
    assert "999999" in line


def test_wrong_shape_or_truncated_feature_files_are_named(ds):
    f = ds / "features" / "relation.npy"
    np.save(f, np.zeros((3, 2), np.float32))
    refused(kg("info", ds, "--check"), 2, f)
    refused(kg("train", ds, "-o", ds.parent / "run", "--model", "noco", "--epochs", "1"), 2, f)
    _truncate(ds / "features" / "attribute.mask.npy")
    refused(kg("info", ds, "--check"), 2, "features")


def test_info_check_passes_on_an_intact_dataset(ds):
    r = kg("info", ds, "--check", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["check"] == {"dataset": "ok", "features": {"relation": "ok", "attribute": "ok"}}


# ---- checkpoints -----------------------------------------------------------------------


def _save(d: Path, epoch: int) -> None:
    save_checkpoint(d, {"model.w": torch.full((4,), float(epoch))}, {"epoch": epoch})


@pytest.mark.parametrize("victim", ["last.safetensors", "last.json"])
@pytest.mark.parametrize("damage", ["truncate", "empty"])
def test_a_damaged_last_checkpoint_falls_back_to_the_previous_one(tmp_path, victim, damage, caplog):
    d = tmp_path / "checkpoints"
    _save(d, 5)
    _save(d, 10)
    p = d / victim
    if damage == "empty":
        p.write_bytes(b"")
    else:
        _truncate(p)
    tensors, meta = load_checkpoint(d)
    assert meta["epoch"] == 5 and tensors["model.w"][0].item() == 5.0
    assert any(victim in r.getMessage() and "previous checkpoint" in r.getMessage() for r in caplog.records)


def test_no_intact_checkpoint_names_the_damaged_file(tmp_path):
    d = tmp_path / "checkpoints"
    _save(d, 5)
    (d / "last.json").write_text("{", encoding="utf-8")
    with pytest.raises(InputError, match="last.json"):
        load_checkpoint(d)
    shutil.rmtree(d)
    d.mkdir()
    with pytest.raises(MissingResourceError):
        load_checkpoint(d)


def test_stale_save_temporaries_are_removed_and_live_ones_kept(tmp_path):
    d = tmp_path / "checkpoints"
    _save(d, 1)
    dead = d / f".last.safetensors.999999999-{_HOST}-abcdefgh.tmp"  # no such process on this host
    mine = d / f".last.safetensors.{os.getpid()}-{_HOST}-zzzzzzzz.tmp"  # a save still going
    old_legacy = d / ".last.safetensors.k2j4h5g6.tmp"  # named before temporaries carried a pid
    new_legacy = d / ".last.safetensors.q2j4h5g6.tmp"
    other_host = d / ".last.safetensors.1-ffffff-abcdefgh.tmp"  # its pid means nothing here: go by age
    for p in (dead, mine, old_legacy, new_legacy, other_host):
        p.write_bytes(b"")
    hours_ago = time.time() - 2 * FOREIGN_STALE_S
    os.utime(old_legacy, (hours_ago, hours_ago))
    load_checkpoint(d)
    assert not dead.exists() and not old_legacy.exists()
    assert mine.exists() and new_legacy.exists() and other_host.exists()
    for p in (mine, new_legacy, other_host):
        p.unlink()
    _save(d, 2)
    assert sorted(p.name for p in d.iterdir()) == ["last.json", "last.safetensors", "prev.json", "prev.safetensors"]


def test_a_damaged_features_manifest_is_named_and_force_recovers(ds):
    m = ds / "features" / "manifest.json"
    _truncate(m)
    refused(kg("features", ds, "--modalities", "relation"), 2, m, "--force")
    r = kg("features", ds, "--modalities", "relation,attribute", "--force", "-q")
    assert r.returncode == 0, r.stderr
    assert kg("info", ds, "--check").returncode == 0


def test_a_truncated_cached_image_vector_is_encoded_again(ds, tmp_path):
    from conftest import EXAMPLES

    from kgalign.data.store import file_record

    image = sorted((EXAMPLES / "images" / "kg1").iterdir())[0]
    (ds / "images.tsv").write_text(f"entity\tsource\n0\t{image}\n", encoding="utf-8")
    m = json.loads((ds / "manifest.json").read_text(encoding="utf-8"))
    m["files"]["images.tsv"] = file_record(ds / "images.tsv")
    (ds / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    cache = tmp_path / "cache"
    args = ("features", ds, "--modalities", "image", "--image-model", "pixels", "--cache-dir", cache, "-q", "--force")
    assert kg(*args).returncode == 0
    (vec,) = [p for p in (cache / "image-features").rglob("*.npy")]
    _truncate(vec)
    r = kg(*args)
    assert r.returncode == 0, r.stderr
    report = json.loads((ds / "features" / "image_report.json").read_text(encoding="utf-8"))
    assert report["failures"] == [] and report["coverage"]["kg1"]["with_image_feature"] == 1
    assert np.load(vec).shape == (832,)


def test_a_checkpoint_save_onto_a_full_disk_keeps_the_old_one(tmp_path):
    from test_hostile_paths import small_tmpfs

    with small_tmpfs(tmp_path / "small", "64k") as disk:
        _save(disk, 1)
        with pytest.raises(InputError, match="space"):
            save_checkpoint(disk, {"model.w": torch.zeros(40000)}, {"epoch": 2})
        tensors, meta = load_checkpoint(disk)
        assert meta["epoch"] == 1
        assert not [p for p in disk.iterdir() if p.name.endswith(".tmp")]
