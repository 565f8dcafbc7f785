"""NoCo-specific behaviour: noise only in training, persistent adaptive scale,
confidence networks trained, and learning on a tiny aligned pair."""

import pytest
import torch

from kgalign.errors import InputError
from kgalign.models.noco import NoCo
from kgalign.models.registry import build_model, get_model
from kgalign.models.synthetic import aligned_pair

torch.set_num_threads(1)

SMALL = {"hidden": 32, "noise_size": 16, "uni_conf_hidden": 16}


def _data(**kw):
    return aligned_pair(60, feature_dims={"relation": 20, "attribute": 12, "image": 24}, missing={"image": 0.3}, seed=7, **kw)


def test_registry_builds_noco_with_paper_defaults():
    spec = get_model("noco")
    assert spec.cls is NoCo
    d = spec.defaults
    assert (d["hidden"], d["tau"], d["noise_size"], d["icl_weighting"]) == (300, 0.1, 256, "sum")


def test_noise_only_in_training_mode():
    inputs, _ = _data()
    torch.manual_seed(0)
    model = build_model("noco", inputs, **SMALL)
    model.train()
    a, b = model()["joint"], model()["joint"]
    assert not torch.allclose(a, b)  # fresh noise every training call
    model.eval()
    with torch.no_grad():
        c, d = model()["joint"], model()["joint"]
    assert torch.equal(c, d)
    # Without noise the training forward is the eval forward.
    torch.manual_seed(0)
    quiet = build_model("noco", inputs, **SMALL, noise=False)
    quiet.train()
    with torch.no_grad():
        t = quiet()["joint"]
    quiet.eval()
    with torch.no_grad():
        assert torch.allclose(t, quiet()["joint"])


def test_noise_scale_adapts_persists_and_is_saved():
    inputs, links = _data()
    torch.manual_seed(0)
    model = build_model("noco", inputs, **SMALL)
    state = model.state_dict()
    assert "noise.scale" in state and "noise.initialised" in state
    assert not model.noise.initialised.any()
    model.eval()
    model()
    assert not model.noise.initialised.any()  # eval never touches the scale
    model.train()
    out = model()
    assert not model.noise.initialised.any()  # forward() leaves the state alone ...
    model.after_step(out)  # ... the step hook adopts it (identical DDP replicas)
    first = model.noise.scale.clone()
    assert model.noise.initialised.all() and (first > 0).all()
    # Modality-aware: scales differ between modalities (they follow each modality's scale).
    assert len(set(first.tolist())) == len(first)
    model.after_step(model())
    second = model.noise.scale.clone()
    assert not torch.equal(first, second)  # carried over and corrected, not reset to 1.0
    # The expected clean/noised cosine sits near the target.
    clean = model.encoder(model.features(), model.masks(), model.edge_index)["relation"].detach()
    i = model.noise.names.index("relation")
    noised = clean + torch.randn_like(clean) * model.noise.scale[i]
    cos = torch.nn.functional.cosine_similarity(clean, noised, dim=-1)[inputs.masks["relation"]].mean()
    assert abs(cos.item() - 0.9) < 0.1
    other = build_model("noco", inputs, **SMALL)
    other.load_state_dict(model.state_dict())
    assert torch.equal(other.noise.scale, second) and other.noise.initialised.all()


def test_confidence_networks_are_supervised():
    inputs, links = _data()
    torch.manual_seed(0)
    model = build_model("noco", inputs, **SMALL)
    out = model()
    probs = {}
    from kgalign.models.losses import pair_log_probs

    for m in model.names:
        ab, ba, valid = pair_log_probs(out[m], links, model.tau, model.present(m))
        probs[m] = (ab.detach().exp(), ba.detach().exp(), valid)
    conf = model.confidence_loss(out, links, probs)
    conf.backward()
    # The regression reaches Uni-Conf and Global-Conf networks, and nothing else.
    for name, p in model.named_parameters():
        touched = p.grad is not None and p.grad.abs().sum() > 0
        assert touched == name.startswith(("fusion.uni", "fusion.glob")), name
    # Global-Conf input is the concatenated Uni-Conf scores: one column per modality.
    assert model.fusion.glob[0].in_features == len(model.names)


def test_bad_options_are_input_errors():
    inputs, _ = _data()
    with pytest.raises(InputError, match="noise_modalities"):
        build_model("noco", inputs, **SMALL, noise_modalities=["name"])
    with pytest.raises(InputError, match="icl_weighting"):
        build_model("noco", inputs, **SMALL, icl_weighting="mean")
    only = build_model("noco", inputs, **SMALL, noise_modalities=["image"])
    assert only.noise.names == ["image"]


def test_kendall_option_adds_loss_weights():
    inputs, links = _data()
    model = build_model("noco", inputs, **SMALL, icl_weighting="kendall")
    loss, parts = model.loss(model(), links)
    loss.backward()
    assert model.loss_weights.log_vars.grad.abs().sum() > 0
    assert set(parts) == {"joint", "icl", "licl", "conf"}


def test_calibration_on_unit_embeddings_ignores_embedding_scale():
    """Default RC follows the paper (DU of softmax(h_m)), so a modality's weight grows with its embedding's
    scale; with calib_on_unit the weights depend on directions only."""
    from kgalign.models.fusion import ConfidenceFusion

    g = torch.Generator().manual_seed(0)
    embs = [torch.randn(50, 16, generator=g) for _ in range(3)]
    mask = torch.ones(50, 3, dtype=torch.bool)
    for unit in (False, True):
        torch.manual_seed(1)
        fusion = ConfidenceFusion([16] * 3, 8, 4, du_on_unit=unit)
        base = fusion(embs, mask)
        scaled = [embs[0] * 10.0, embs[1], embs[2]]
        # the confidence networks see the scaled input too; compare the calibration alone
        rc, rc_scaled = base["rc"], fusion(scaled, mask)["rc"]
        if unit:
            assert torch.allclose(rc, rc_scaled, atol=1e-6)
        else:
            assert float((rc_scaled[:, 0] / rc[:, 0]).median()) > 2.0
    inputs, links = _data()
    model = build_model("noco", inputs, **SMALL, calib_on_unit=True)
    total, _ = model.loss(model(), links[:20])
    total.backward()
    assert torch.isfinite(total) and model.fusion.du_on_unit
