"""MCLEA-specific behaviour and learning on a tiny aligned pair."""

import torch

from kgalign.models.fusion import GlobalWeightFusion
from kgalign.models.losses import ial_loss
from kgalign.models.mclea import MCLEA
from kgalign.models.registry import build_model, get_model
from kgalign.models.synthetic import aligned_pair

torch.set_num_threads(1)


def test_registry_builds_mclea_with_reference_defaults():
    spec = get_model("mclea")
    assert spec.cls is MCLEA
    d = spec.defaults
    assert (d["hidden"], d["feature_dim"], d["tau"], d["tau2"], d["ial_weight"]) == (300, 100, 0.1, 4.0, 0.01)


def test_global_weights_renormalise_over_present_modalities():
    fusion = GlobalWeightFusion(3)
    with torch.no_grad():
        fusion.theta.copy_(torch.tensor([0.0, 1.0, 2.0]))
    mask = torch.tensor([[True, True, True], [True, False, True]])
    w = fusion(mask)
    full = torch.softmax(torch.tensor([0.0, 1.0, 2.0]), 0)
    assert torch.allclose(w[0], full)
    assert w[1, 1] == 0 and torch.allclose(w[1, [0, 2]], full[[0, 2]] / full[[0, 2]].sum())


def test_ial_is_part_of_the_loss_and_teacher_is_detached():
    inputs, links = aligned_pair(40, feature_dims={"relation": 10, "image": 12}, seed=2)
    torch.manual_seed(0)
    model = build_model("mclea", inputs, hidden=16, feature_dim=8)
    out = model()
    loss, parts = model.loss(out, links)
    assert set(parts) == {"joint", "icl", "ial"} and parts["ial"] > 0
    no_ial = build_model("mclea", inputs, hidden=16, feature_dim=8, ial_weight=0.0)
    no_ial.load_state_dict(model.state_dict())
    loss0, _ = no_ial.loss(no_ial(), links)
    # Kendall weights start at s = 0, so the IAL adds ial_weight * sum of IAL terms.
    assert abs((loss - loss0).item() - 0.01 * parts["ial"]) < 1e-5
    # Gradient of the IAL alone reaches the modality encoders but not through the teacher.
    model.zero_grad()
    ial = model.ial_weights({m: ial_loss(out[m], out["joint"], links, 4.0, 0.5, model.present(m)) for m in model.names})
    ial.backward()
    assert model.encoder.proj["image"].linear.weight.grad.abs().sum() > 0
    assert model.fusion.theta.grad is None or model.fusion.theta.grad.abs().sum() == 0
