"""CLIP through open_clip (the kgalign[clip] extra) and the backend choice.

The open_clip tests need torchvision/open_clip/timm, which must never be in the
project venv; they are skipped there and run in a throwaway venv (docs/features.md,
"CLIP"). A tiny open_clip config is registered and a random checkpoint saved to disk,
so the real loading path (the one the CLI uses) reads real files.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from kgalign.errors import InputError, MissingResourceError

TINY = "kgalign-tiny-openclip"
# environment notes §5.3: embed 64, 2 layers of width 64, 64x64 images, patch 16 (~3.4 M params)
TINY_CFG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
HAS_OPEN_CLIP = importlib.util.find_spec("open_clip") is not None


@pytest.fixture(scope="module")
def oc(tmp_path_factory):
    """open_clip (shim first: importing it without the shim fails with the CPU torch)."""
    from kgalign.features import torchvision_shim

    torchvision_shim.apply()
    open_clip = pytest.importorskip("open_clip")
    cfg = tmp_path_factory.mktemp("cfg") / f"{TINY}.json"
    cfg.write_text(json.dumps(TINY_CFG))
    open_clip.add_model_config(cfg)
    return open_clip


@pytest.fixture(scope="module")
def tiny_ckpt(oc, tmp_path_factory):
    """(model in memory, .pt checkpoint, .safetensors checkpoint) of one random tiny model."""
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model, _, _ = oc.create_model_and_transforms(TINY, pretrained=None)
    model.eval()
    d = tmp_path_factory.mktemp("ckpt")
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    torch.save(sd, d / "tiny.pt")
    save_file(sd, str(d / "tiny.safetensors"))
    return model, d / "tiny.pt", d / "tiny.safetensors"


def _images():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (40 + 9 * i, 70, 3), dtype=np.uint8)) for i in range(3)]


def test_image_and_text_features_match_the_model(oc, tiny_ckpt):
    import torch

    from kgalign.features.clip import clip_model_key, load_clip_backend
    from kgalign.features.openclip import OpenClipBundle

    model, pt, st = tiny_ckpt
    enc = load_clip_backend(str(pt), "cpu", batch_size=2, backend="auto", arch=TINY)
    assert isinstance(enc, OpenClipBundle)
    assert enc.dim == 64
    assert enc.key == clip_model_key(str(pt), "auto", TINY) and enc.key.startswith(f"openclip-{TINY}-")
    batch = torch.stack([enc.preprocess(im) for im in _images()])
    assert batch.shape == (3, 3, 64, 64) and batch.dtype == torch.float32
    got = enc.encode(batch)
    assert got.shape == (3, 64) and got.dtype == np.float32 and np.isfinite(got).all()
    assert not np.allclose(got[0], got[1])
    np.testing.assert_array_equal(got, enc.encode(batch))  # deterministic
    with torch.no_grad():
        want = model.encode_image(batch).numpy()  # the model that wrote the checkpoint
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # the same weights as safetensors: same features, different cache identity only by file
    enc_st = load_clip_backend(str(st), "cpu", backend="open_clip", arch=TINY)
    np.testing.assert_allclose(enc_st.encode(batch), want, rtol=1e-5, atol=1e-6)
    assert enc_st.key != enc.key

    texts = ["Rebecca Hall", "Paris", "Rebecca Hall", "a much longer entity name " * 30]
    tenc = enc.text_encoder()
    tv = tenc.encode(texts)
    assert tv.shape == (4, 64) and tenc.dim == 64 and tenc.key == enc.key + "-text"
    np.testing.assert_array_equal(tv[0], tv[2])
    assert not np.allclose(tv[0], tv[1])
    with torch.no_grad():
        want_t = model.encode_text(oc.get_tokenizer(TINY)(texts)).numpy()
    np.testing.assert_allclose(tv, want_t, rtol=1e-5, atol=1e-6)


def test_cli_image_and_name_features_with_open_clip(oc, tiny_ckpt, tmp_path):
    from test_features_bags import make_dataset
    from typer.testing import CliRunner

    from kgalign.cli import app
    from kgalign.data.store import write_dataset
    from kgalign.features.store import load_features, read_manifest

    model, pt, _ = tiny_ckpt
    a, b = tmp_path / "a.png", tmp_path / "b.jpg"
    Image.new("RGB", (30, 20), (200, 10, 10)).save(a)
    Image.new("RGB", (25, 40), (10, 10, 200)).save(b)
    ds = write_dataset(make_dataset([(0, str(a)), (5, str(b))]), tmp_path / "ds")
    res = CliRunner().invoke(
        app,
        [
            "features",
            str(ds),
            "--json",
            "--modalities",
            "name,image",
            "--image-model",
            "clip",
            "--name-model",
            "clip",
            "--weights",
            str(pt),
            "--clip-arch",
            TINY,
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert {r["feature"]: r["status"] for r in json.loads(res.stdout)["features"]} == {"name": "computed", "image": "computed"}
    feats = load_features(ds, ["image", "name"])
    img, img_mask = feats["image"]
    assert img.shape == (9, 64) and img_mask.tolist() == [True] + [False] * 4 + [True] + [False] * 3
    import torch

    _, _, pre = oc.create_model_and_transforms(TINY, pretrained=None)
    with torch.no_grad():
        want = model.encode_image(pre(Image.open(a).convert("RGB"))[None]).numpy()[0]
    np.testing.assert_allclose(img[0], want, rtol=1e-5, atol=1e-6)
    name, name_mask = feats["name"]
    assert name.shape == (9, 64) and name_mask[0] and name_mask[5]
    np.testing.assert_array_equal(name[0], name[5])  # both "Alice Smith"
    man = read_manifest(ds)
    assert man["image"]["model_key"].startswith(f"openclip-{TINY}-")
    assert man["name"]["model_key"].startswith(f"clip-text:openclip-{TINY}-")
    # the backend is part of the identity, so features and caches never mix across backends
    from kgalign.features.clip import clip_model_key

    assert clip_model_key(str(pt), "transformers") != man["image"]["model_key"]
    res2 = CliRunner().invoke(
        app,
        [
            "features",
            str(ds),
            "--json",
            "--modalities",
            "image",
            "--image-model",
            "clip",
            "--clip-backend",
            "transformers",
            "--weights",
            str(pt),
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
    )
    assert res2.exit_code == 3, res2.output  # a .pt file is not a Hugging Face CLIP directory


def test_open_clip_missing_or_wrong_weights_fail_fast(oc, tmp_path):
    from kgalign.features.openclip import load_openclip

    with pytest.raises(MissingResourceError, match="not found"):
        load_openclip(str(tmp_path / "nope.pt"), TINY, "cpu")
    with pytest.raises(MissingResourceError, match="tags"):
        load_openclip("no-such-tag", "ViT-B-32", "cpu")
    with pytest.raises(InputError, match="--clip-arch"):
        load_openclip(str(tmp_path / "nope.pt"), "No-Such-Arch", "cpu")
    # HF_HUB_OFFLINE=1 (conftest): a real tag that is not cached fails at once
    with pytest.raises(MissingResourceError, match="ViT-B-32/openai"):
        load_openclip("openai", "ViT-B-32", "cpu")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(MissingResourceError, match="cannot load open_clip"):
        load_openclip(str(bad), TINY, "cpu")


def test_shim_is_what_makes_torchvision_importable(oc):
    """In a fresh interpreter: without the shim the CUDA torchvision build fails to import
    (if it imports, this torchvision works and the shim stays out of the way)."""
    plain = subprocess.run([sys.executable, "-c", "import torchvision"], capture_output=True, text=True)
    code = (
        "from kgalign.features import torchvision_shim as s; applied = s.apply(); "
        "import torchvision, open_clip, transformers; from transformers import CLIPModel; print(applied)"
    )
    shimmed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert shimmed.returncode == 0, shimmed.stderr
    if plain.returncode == 0:
        assert shimmed.stdout.strip() == "False"
    else:
        assert "torchvision::nms" in plain.stderr
        assert shimmed.stdout.strip() == "True"


# ---- runs in the normal environment (no open_clip) ----


@pytest.mark.skipif(HAS_OPEN_CLIP, reason="open_clip is installed here")
def test_auto_backend_without_open_clip_is_transformers(tmp_path):
    from test_features_clip import make_tiny_clip

    from kgalign.features.clip import ClipBundle, clip_model_key, load_clip_backend, resolve_backend

    assert resolve_backend("auto") == "transformers"
    d = make_tiny_clip(tmp_path / "clip")
    enc = load_clip_backend(str(d), "cpu", batch_size=2, backend="auto")
    assert isinstance(enc, ClipBundle) and enc.dim == 16
    assert clip_model_key(str(d), "auto") == enc.key
    with pytest.raises(MissingResourceError, match="kgalign\\[clip\\]"):
        load_clip_backend(str(d), "cpu", backend="open_clip")
    with pytest.raises(InputError, match="--clip-backend"):
        resolve_backend("openclip")
