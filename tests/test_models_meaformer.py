"""MEAformer-specific behaviour and learning on a tiny aligned pair."""

import math

import torch

from kgalign.models.fusion import CrossModalAttentionFusion
from kgalign.models.meaformer import MEAformer
from kgalign.models.registry import build_model, get_model
from kgalign.models.synthetic import aligned_pair

torch.set_num_threads(1)


def test_registry_builds_meaformer_with_reference_defaults():
    spec = get_model("meaformer")
    assert spec.cls is MEAformer
    d = spec.defaults
    assert (d["hidden"], d["fusion_heads"], d["fusion_layers"], d["fusion_dropout"], d["fusion_ffn"]) == (300, 1, 1, 0.1, 0)


def test_weights_are_column_sums_of_attention():
    torch.manual_seed(0)
    fusion = CrossModalAttentionFusion(8, heads=2, layers=1, dropout=0.0).eval()
    x = torch.randn(5, 3, 8)
    mask = torch.ones(5, 3, dtype=torch.bool)
    mask[0, 2] = False
    hidden, w = fusion(x, mask)
    _, attn = fusion.layers[0](x, mask)
    assert hidden.shape == (5, 3, 8) and attn.shape == (5, 2, 3, 3)
    assert torch.allclose(attn[0, :, :, 2], torch.zeros(2, 3))  # nobody attends to a missing token
    received = (attn * mask[:, None, :, None]).sum((1, 2)) / math.sqrt(3 * 2)
    expected = torch.softmax(received.masked_fill(~mask, float("-inf")), -1)
    assert torch.allclose(w, expected, atol=1e-6)
    assert w[0, 2] == 0


def test_ffn_option_and_dropout_only_in_training():
    inputs, links = aligned_pair(40, feature_dims={"relation": 10, "image": 12}, seed=2)
    torch.manual_seed(0)
    model = build_model("meaformer", inputs, hidden=16, fusion_ffn=24, fusion_heads=2)
    assert model.fusion.layers[0].ffn is not None
    model.train()
    a, b = model().aux["hidden"], model().aux["hidden"]
    assert not torch.allclose(a, b)  # attention dropout 0.1
    model.eval()
    with torch.no_grad():
        assert torch.equal(model().aux["hidden"], model().aux["hidden"])
