"""`kgalign features` end to end: real dataset directories, real HTTP server, tiny CLIP."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from test_features_bags import make_dataset
from test_features_clip import make_tiny_clip
from test_features_fetch import ImageServer, jpeg_bytes, png_bytes
from typer.testing import CliRunner

from kgalign.cli import app
from kgalign.data.store import write_dataset
from kgalign.features.store import load_features, read_manifest

runner = CliRunner()


def run(*args):
    res = runner.invoke(app, ["features", *map(str, args)])
    return res


def statuses(res) -> dict:
    assert res.exit_code == 0, res.output
    return {r["feature"]: r["status"] for r in json.loads(res.stdout)["features"]}


def test_dataset_without_images_then_reuse_and_recompute(tmp_path):
    ds = write_dataset(make_dataset(), tmp_path / "ds")
    cache = tmp_path / "cache"
    res = run(ds, "--json", "--cache-dir", cache)
    st = statuses(res)
    assert st == {
        "relation": "computed",
        "attribute": "computed",
        "numeric": "computed",
        "numeric_present": "computed",
        "name": "computed",
        "image": "skipped",
    }
    summary = json.loads(res.stdout)
    img = [r for r in summary["features"] if r["feature"] == "image"][0]
    assert "no image sources" in img["reason"]
    feats = load_features(ds)
    assert set(feats) == {"relation", "attribute", "numeric", "numeric_present", "name"}
    assert feats["relation"][0].shape == (9, 3) and feats["attribute"][0].shape == (9, 4)
    assert feats["numeric"][0].shape == feats["numeric_present"][0].shape == (9, 3)
    name, name_mask = feats["name"]
    assert name.shape == (9, 384) and name_mask.tolist() == [True, True, False, False, False, True, True, False, False]
    np.testing.assert_allclose(name[0], name[5], atol=1e-6)  # same text "Alice Smith"
    man = read_manifest(ds)
    assert man["relation"]["params"] == {"topk": 1000} and len(man["relation"]["fingerprint"]) == 64
    assert man["name"]["coverage"] == {"kg1": [2, 5], "kg2": [2, 4]}

    # same inputs and parameters: everything reused, nothing rewritten
    mtime = (ds / "features" / "name.npy").stat().st_mtime_ns
    st = statuses(run(ds, "--json", "--cache-dir", cache))
    assert set(st.values()) == {"reused", "skipped"}
    assert (ds / "features" / "name.npy").stat().st_mtime_ns == mtime
    # a changed parameter recomputes only that feature
    st = statuses(run(ds, "--json", "--relation-topk", "1", "--cache-dir", cache))
    assert st["relation"] == "computed" and st["attribute"] == "reused" and st["name"] == "reused"
    assert load_features(ds, ["relation"])["relation"][0].shape == (9, 1)
    st = statuses(run(ds, "--json", "--modalities", "relation", "--relation-topk", "1", "--force"))
    assert st == {"relation": "computed"}
    # a removed flag is an error, not silently ignored: IRI names come from ingest (--kgN-names-from-iri)
    assert run(ds, "--modalities", "name", "--name-from-iri").exit_code == 2

    # the text table
    res = run(ds, "--cache-dir", cache)
    assert res.exit_code == 0 and "KG1 coverage" in res.stdout and "relation" in res.stdout


def test_bad_requests_exit_codes(tmp_path):
    ds = write_dataset(make_dataset(), tmp_path / "ds")
    res = run(ds, "--modalities", "relation,colour")
    assert res.exit_code == 2 and "unknown modality 'colour'" in res.output
    res = run(ds, "--modalities", "image")
    assert res.exit_code == 2 and "no image sources" in res.output
    res = run(tmp_path / "nothing")
    assert res.exit_code == 3 and "not a kgalign dataset" in res.output
    assert not (ds / "features").exists()


@pytest.fixture()
def image_dataset(tmp_path):
    server = ImageServer()
    server.add("/red.png", png_bytes())
    server.add("/photo.jpg", jpeg_bytes(), ctype="image/jpeg")
    local_jpg = tmp_path / "local.jpg"
    local_jpg.write_bytes(jpeg_bytes((40, 30), (10, 200, 10)))
    fallback = tmp_path / "fallback.png"
    fallback.write_bytes(png_bytes((9, 9), (0, 0, 255)))
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(png_bytes()[:60])
    images = [
        (0, server.url("/red.png")),
        (1, server.url("/missing.png")),  # 404, then the entity's second source is used
        (1, str(fallback)),
        (2, str(corrupt)),
        (5, str(local_jpg)),
        (6, server.url("/photo.jpg")),
    ]
    ds = write_dataset(make_dataset(images), tmp_path / "ds")
    yield ds, server, tmp_path
    server.close()


def test_images_with_tiny_clip_coverage_report_and_cache(image_dataset):
    ds, server, tmp = image_dataset
    clip_dir = make_tiny_clip(tmp / "clip")
    cache = tmp / "cache"
    args = [
        ds,
        "--json",
        "--image-model",
        "clip",
        "--weights",
        clip_dir,
        "--cache-dir",
        cache,
        "--allow-private-addresses",
        "--retries",
        "0",
        "--modalities",
        "name,image",
    ]
    res = run(*args)
    assert statuses(res) == {"name": "computed", "image": "computed"}
    feats = load_features(ds, ["image", "name"])
    mat, mask = feats["image"]
    assert mat.shape == (9, 16)
    assert mask.tolist() == [True, True, False, False, False, True, True, False, False]
    assert not mat[~mask].any()
    # entity 0's vector is the CLIP embedding of the served PNG
    from kgalign.features.clip import load_clip

    b = load_clip(str(clip_dir), "cpu")
    want = b.encode(b.preprocess(Image.open(io.BytesIO(png_bytes())))[None])[0]
    np.testing.assert_allclose(mat[0], want, rtol=1e-5, atol=1e-6)
    rep = json.loads((ds / "features" / "image_report.json").read_text())
    assert rep["coverage"]["kg1"] == {"entities": 5, "with_image_source": 3, "with_image_feature": 2}
    assert rep["coverage"]["kg2"] == {"entities": 4, "with_image_source": 2, "with_image_feature": 2}
    reasons = {(f["entity"], f["reason"].split(":")[0]) for f in rep["failures"]}
    assert reasons == {(1, "HTTP 404 Not Found"), (2, "cannot decode image")}
    tsv = (ds / "features" / "image_report.tsv").read_text().splitlines()
    assert tsv[0] == "entity\tkg\tterm\tsource\treason" and len(tsv) == 3
    assert "images: kg1 2/5 entities, kg2 2/4 entities" in res.stderr
    assert read_manifest(ds)["image"]["coverage"] == {"kg1": [2, 5], "kg2": [2, 4]}
    assert server.hits["/red.png"] == 1

    # re-run: failures are retried, but cached downloads and vectors are not redone
    vec_files = sorted((cache / "image-features").rglob("*.npy"))
    assert len(vec_files) == 4
    mtimes = [f.stat().st_mtime_ns for f in vec_files]
    st = statuses(run(*args))
    assert st["image"] == "computed" and st["name"] == "reused"
    assert server.hits["/red.png"] == 1 and server.hits["/photo.jpg"] == 1 and server.hits["/missing.png"] == 2
    assert [f.stat().st_mtime_ns for f in vec_files] == mtimes
    np.testing.assert_array_equal(load_features(ds, ["image"])["image"][0], mat)

    # without --allow-private-addresses the 127.0.0.1 URLs are refused, with the reason
    # (a fresh cache: cached entries need no network access, so they are not re-checked)
    args2 = [a for a in args if a != "--allow-private-addresses"]
    args2[args2.index(cache)] = tmp / "cache2"
    res = run(*args2, "--force")
    assert res.exit_code == 0
    rep = json.loads((ds / "features" / "image_report.json").read_text())
    refused = [f for f in rep["failures"] if "loopback" in f["reason"]]
    assert {f["entity"] for f in refused} == {0, 1, 6}
    assert all("--allow-private-addresses" in f["reason"] for f in refused)
    assert load_features(ds, ["image"])["image"][1].tolist() == [False, True, False, False, False, True, False, False, False]


def test_images_without_vgg_weights(image_dataset, monkeypatch):
    ds, server, tmp = image_dataset
    monkeypatch.setenv("TORCH_HOME", str(tmp / "torch-home"))
    monkeypatch.delenv("KGALIGN_ALLOW_DOWNLOAD", raising=False)
    res = run(ds, "--json", "--modalities", "relation,image")
    assert res.exit_code == 3 and "VGG-16 weights not found" in res.stderr
    res = run(ds, "--json", "--cache-dir", tmp / "cache")
    st = statuses(res)
    assert st["image"] == "skipped" and st["relation"] == "computed"
    assert "image features skipped" in res.stderr and "--weights" in res.stderr
    assert "image" not in read_manifest(ds)
    assert server.hits == {}


def test_the_library_checks_options_as_the_cli_does(tmp_path):
    """The Python API refuses what the CLI refuses, with the same message (one validator)."""
    from kgalign.errors import InputError
    from kgalign.features.pipeline import FeatureOptions, compute_features

    ds = write_dataset(make_dataset(), tmp_path / "ds")
    for opts, msg in [
        (FeatureOptions(numeric_transform="zscore"), "--numeric-transform must be one of quantile, robust"),
        (FeatureOptions(device="gpu"), "--device must be auto, cpu, cuda or cuda:N"),
        (FeatureOptions(total_timeout=float("nan")), "--total-timeout must be a positive number"),
        (FeatureOptions(relation_topk=0), "--relation-topk must be an integer >= 1"),
    ]:
        with pytest.raises(InputError, match=msg):
            compute_features(ds, ["relation"], opts)
    res = run(ds, "--modalities", "relation", "--device", "gpu")
    assert res.exit_code == 2 and "--device must be auto, cpu, cuda or cuda:N" in res.output
