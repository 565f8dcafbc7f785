"""The weight-free pixel encoder on the example's real images."""

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from kgalign.features.pixels import PixelImageEncoder

EX = Path(__file__).resolve().parents[1] / "examples"


def _images(kg: int) -> dict[str, Path]:
    with open(EX / "tsv" / f"kg{kg}_images.tsv") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    out = {}
    for ent, src in rows:
        p = (EX / "tsv" / src) if kg == 1 else EX / src.split("127.0.0.1:8765/", 1)[1]
        out[ent] = p.resolve()
    return out


def _encode(enc, paths):
    import torch

    return enc.encode(torch.stack([enc.preprocess(Image.open(p)) for p in paths]))


def test_vectors_have_the_documented_layout():
    enc = PixelImageEncoder()
    img = Image.new("RGB", (40, 30), (200, 10, 10))
    v = _encode_pil(enc, [img, img])
    assert v.shape == (2, enc.dim) and np.array_equal(v[0], v[1])
    hist = v[0, 768:]
    assert np.isclose(hist.sum(), 8.0) and (hist > 0).sum() == 1  # one colour -> one bin


def _encode_pil(enc, imgs):
    import torch

    return enc.encode(torch.stack([enc.preprocess(i) for i in imgs]))


def test_perturbed_renderings_find_their_counterpart():
    links = [l.rstrip("\n").split("\t") for l in open(EX / "links.tsv")]
    i1, i2 = _images(1), _images(2)
    pairs = [(a, b) for a, b in links if a in i1 and b in i2]
    assert len(pairs) > 100
    enc = PixelImageEncoder()
    a = _encode(enc, [i1[x] for x, _ in pairs])
    b = _encode(enc, [i2[y] for _, y in pairs])
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    hits1 = float((np.argmax(a @ b.T, axis=1) == np.arange(len(pairs))).mean())
    assert hits1 > 10 / len(pairs), hits1  # far above chance (1/len)
