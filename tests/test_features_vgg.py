"""The plain-torch VGG-16: torchvision key layout, checkpoint loading, fc7 against plain ops."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from kgalign.errors import InputError, MissingResourceError
from kgalign.features import vgg

CONVS = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
POOL_AFTER = {2, 7, 14, 21, 28}  # conv index followed (after ReLU) by a max pool


def torchvision_vgg16_keys() -> dict[str, tuple]:
    """Key -> shape of torchvision.models.vgg16().state_dict(), written out by hand."""
    chans = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    out, c_in = {}, 3
    for i, c in zip(CONVS, chans, strict=False):
        out[f"features.{i}.weight"] = (c, c_in, 3, 3)
        out[f"features.{i}.bias"] = (c,)
        c_in = c
    for i, (o, n_in) in zip([0, 3, 6], [(4096, 25088), (4096, 4096), (1000, 4096)], strict=False):
        out[f"classifier.{i}.weight"] = (o, n_in)
        out[f"classifier.{i}.bias"] = (o,)
    return out


def reference_fc7(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """fc7 (after ReLU) with functional ops applied directly to the state_dict tensors."""
    for i in CONVS:
        x = F.relu(F.conv2d(x, sd[f"features.{i}.weight"], sd[f"features.{i}.bias"], padding=1))
        if i in POOL_AFTER:
            x = F.max_pool2d(x, 2, 2)
    x = F.adaptive_avg_pool2d(x, (7, 7)).flatten(1)
    x = F.relu(F.linear(x, sd["classifier.0.weight"], sd["classifier.0.bias"]))
    return F.relu(F.linear(x, sd["classifier.3.weight"], sd["classifier.3.bias"]))


def test_state_dict_layout_matches_torchvision():
    with torch.device("meta"):
        model = vgg.VGG16()
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == torchvision_vgg16_keys()
    assert isinstance(model.avgpool, torch.nn.AdaptiveAvgPool2d)
    assert [type(m).__name__ for m in model.classifier] == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert [i for i, m in enumerate(model.features) if isinstance(m, torch.nn.MaxPool2d)] == [4, 9, 16, 23, 30]


def test_checkpoint_loads_via_weights_and_fc7_matches_plain_ops(tmp_path):
    """`kgalign features --weights CKPT` on a dataset with one image, against plain functional ops."""
    from test_features_bags import make_dataset
    from typer.testing import CliRunner

    from kgalign.cli import app
    from kgalign.data.store import write_dataset
    from kgalign.features.store import load_features, read_manifest

    torch.manual_seed(0)
    ckpt = tmp_path / "vgg16-random.pth"
    torch.save(vgg.VGG16().state_dict(), ckpt)
    rng = np.random.default_rng(1)
    img_path = tmp_path / "noise.png"
    Image.fromarray(rng.integers(0, 256, (300, 260, 3), dtype=np.uint8)).save(img_path)
    # entities 0 and 6 share the image: it is encoded once
    ds = write_dataset(make_dataset([(0, str(img_path)), (6, str(img_path))]), tmp_path / "ds")
    res = CliRunner().invoke(
        app,
        [
            "features",
            str(ds),
            "--modalities",
            "image",
            "--weights",
            str(ckpt),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--device",
            "cpu",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    mat, mask = load_features(ds, ["image"])["image"]
    assert mat.shape == (9, 4096) and mask.tolist() == [True] + [False] * 5 + [True, False, False]
    assert read_manifest(ds)["image"]["model_key"].startswith("vgg16-fc7-")
    assert len(list((tmp_path / "cache" / "image-features").rglob("*.npy"))) == 1

    sd = torch.load(ckpt, weights_only=True)
    x = vgg.preprocess(Image.open(img_path))
    assert x.shape == (3, 224, 224)
    with torch.no_grad():
        want = reference_fc7(sd, x[None]).numpy()[0]
    assert np.abs(want).max() > 0
    np.testing.assert_allclose(mat[0], want, rtol=1e-4, atol=1e-5 * np.abs(want).max())
    np.testing.assert_array_equal(mat[6], mat[0])


def test_preprocess_resize_crop_normalise():
    img = Image.new("RGB", (512, 300), (255, 0, 128))
    x = vgg.preprocess(img).numpy()
    assert x.shape == (3, 224, 224)
    want = (np.array([255, 0, 128], np.float32) / 255 - vgg.MEAN) / vgg.STD
    np.testing.assert_allclose(x.reshape(3, -1).mean(1), want, atol=1e-5)
    # a grey image with a white border on the long side: the centre crop removes it
    a = np.full((256, 400, 3), 100, np.uint8)
    a[:, :40] = 255
    x = vgg.preprocess(Image.fromarray(a)).numpy()
    np.testing.assert_allclose(x[0], (100 / 255 - vgg.MEAN[0]) / vgg.STD[0], atol=1e-5)


def test_missing_weights_offline_fails_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(vgg.DOWNLOAD_ENV, raising=False)
    t = time.monotonic()
    with pytest.raises(MissingResourceError) as ei:
        vgg.find_weights(None)
    assert time.monotonic() - t < 1.0
    assert "--weights" in str(ei.value) and "vgg16-397923af.pth" in str(ei.value)
    with pytest.raises(MissingResourceError):
        vgg.find_weights(str(tmp_path / "nope.pth"))
    # a file in torch.hub's cache is found without any network access
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / vgg.CHECKPOINT_NAME).write_bytes(b"x")
    assert vgg.find_weights(None) == hub / vgg.CHECKPOINT_NAME


def test_state_dict_files_safetensors_and_bad(tmp_path):
    from safetensors.torch import save_file

    save_file({"module.a": torch.ones(2)}, str(tmp_path / "w.safetensors"))
    sd = vgg.load_state_dict_file(tmp_path / "w.safetensors")
    assert list(sd) == ["a"]
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(InputError) as ei:
        vgg.load_vgg16(tmp_path / "wrong.pth")
    assert "wrong.pth" in str(ei.value) and "VGG-16" in str(ei.value)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError):
        vgg.load_state_dict_file(tmp_path / "junk.pth")
