"""CLIP image and text features through transformers, with a tiny random model saved to disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kgalign.errors import MissingResourceError


def _byte_chars() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for bytes (GPT-2 / CLIP convention)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    out, extra = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return [out[b] for b in range(256)]


def make_tiny_clip(path: Path, seed: int = 0) -> Path:
    """A randomly initialised CLIP (width 32, 2 layers, 32x32 images, 16-d projection) with a
    character-level tokenizer and image processor, written with save_pretrained."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    path.mkdir(parents=True, exist_ok=True)
    vocab: dict[str, int] = {}
    for c in _byte_chars():
        vocab[c] = len(vocab)
    for c in _byte_chars():
        vocab[c + "</w>"] = len(vocab)
    for s in ("<|startoftext|>", "<|endoftext|>"):
        vocab[s] = len(vocab)
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt"))
    torch.manual_seed(seed)
    eos = vocab["<|endoftext|>"]
    cfg = CLIPConfig(
        text_config=dict(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=40,
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=eos,
            pad_token_id=eos,
        ),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8),
        projection_dim=16,
    )
    CLIPModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


def test_clip_image_and_text_features_match_direct_model(tiny_clip):
    from transformers import CLIPModel

    from kgalign.features.clip import load_clip

    bundle = load_clip(str(tiny_clip), "cpu", batch_size=2)
    assert bundle.dim == 16 and bundle.key.startswith("clip-")
    rng = np.random.default_rng(0)
    imgs = [Image.fromarray(rng.integers(0, 256, (40 + 7 * i, 50, 3), dtype=np.uint8)) for i in range(3)]
    batch = torch.stack([bundle.preprocess(im) for im in imgs])
    assert batch.shape == (3, 3, 32, 32)
    got = bundle.encode(batch)
    assert got.shape == (3, 16) and np.isfinite(got).all()
    assert not np.allclose(got[0], got[1])
    # independent reference: the model's own modules applied by hand
    ref_model = CLIPModel.from_pretrained(str(tiny_clip), local_files_only=True).eval()
    with torch.no_grad():
        pooled = ref_model.vision_model(pixel_values=batch).pooler_output
        want = ref_model.visual_projection(pooled).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    texts = ["Rebecca Hall", "Paris", "Rebecca Hall", "a much longer entity name " * 5]
    tv = bundle.text_encoder().encode(texts)
    assert tv.shape == (4, 16)
    np.testing.assert_allclose(tv[0], tv[2], atol=1e-6)
    assert not np.allclose(tv[0], tv[1])


def test_clip_missing_weights(tmp_path):
    from kgalign.features.clip import load_clip

    with pytest.raises(MissingResourceError):
        load_clip(str(tmp_path / "no-such-dir"), "cpu")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MissingResourceError) as ei:
        load_clip(str(empty), "cpu")
    assert "--weights" in str(ei.value)


class _Interrupting:
    """Delegates to a real encoder; raises KeyboardInterrupt (Ctrl-C) at batch ``stop_at``."""

    def __init__(self, inner, stop_at=None):
        self.inner, self.stop_at, self.calls, self.images = inner, stop_at, 0, 0
        self.dim, self.key = inner.dim, inner.key

    def preprocess(self, img):
        return self.inner.preprocess(img)

    def encode(self, batch):
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        self.images += len(batch)
        return self.inner.encode(batch)


def test_interrupted_image_encoding_resumes_from_cache(tiny_clip, tmp_path):
    import hashlib

    from kgalign.features.clip import load_clip
    from kgalign.features.image import FeatureCache, encode_images

    items = []
    for i in range(5):
        p = tmp_path / f"{i}.png"
        Image.new("RGB", (20 + i, 20), (40 * i, 10, 10)).save(p)
        items.append((hashlib.sha256(p.read_bytes()).hexdigest(), str(p)))
    bundle = load_clip(str(tiny_clip), "cpu")
    cache = FeatureCache(tmp_path / "cache", bundle.key)
    enc = _Interrupting(bundle, stop_at=2)
    with pytest.raises(KeyboardInterrupt):
        encode_images(items, enc, cache, batch_size=2, workers=2)
    assert [cache.get(s) is not None for s, _ in items] == [True, True, False, False, False]
    enc = _Interrupting(bundle)
    assert encode_images(items, enc, cache, batch_size=2, workers=2) == {}
    assert enc.images == 3  # only what the interrupted run had not finished
    direct = bundle.encode(torch.stack([bundle.preprocess(Image.open(p)) for _, p in items]))
    np.testing.assert_allclose(np.stack([cache.get(s) for s, _ in items]), direct, rtol=1e-5, atol=1e-6)
