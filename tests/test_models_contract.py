"""The model contract (docs/architecture.md) for every registered model, on tiny graphs."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from kgalign.models.base import AlignmentModel
from kgalign.models.registry import build_model, get_model, list_models
from kgalign.models.synthetic import aligned_pair

torch.set_num_threads(1)


def small(name: str) -> dict:
    """Width options (ints defaulting to 64 or more) at 40, divisible by 2, 4, 5 and 8 heads."""
    return {k: 40 for k, v in get_model(name).defaults.items() if isinstance(v, int) and not isinstance(v, bool) and v >= 64}


DIMS = {"relation": 20, "attribute": 12, "name": 16, "image": 24}


@pytest.fixture(scope="module")
def data():
    inputs, links = aligned_pair(60, feature_dims=DIMS, missing={"image": 0.3, "name": 0.2}, seed=5)
    return inputs, links


def _model(name, inputs, seed=0, **kw):
    torch.manual_seed(seed)
    return build_model(name, inputs, **{**small(name), **kw})


@pytest.mark.parametrize("name", list_models(trainable=True))
def test_forward_shapes_and_keys(name, data):
    inputs, _ = data
    model = _model(name, inputs)
    out = model()
    assert set(out) == {"graph", *DIMS, "joint"}
    n = inputs.num_entities
    dims = {m: out[m].shape[1] for m in out if m != "joint"}
    assert all(out[m].shape[0] == n for m in out)
    assert out["joint"].shape == (n, sum(dims.values()))
    assert out["joint"].dtype == torch.float32
    assert dims["graph"] == small(name)["hidden"]


@pytest.mark.parametrize("name", list_models(trainable=True))
def test_every_trainable_parameter_gets_gradient(name, data):
    inputs, links = data
    model = _model(name, inputs)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    # Two steps: zero-initialised output maps (NoCo's noise refinement) only pass
    # gradient to the layers before them once they have moved.
    for _ in range(2):
        opt.zero_grad()
        loss, parts = model.loss(model(), links[:40])
        loss.backward()
        opt.step()
    assert torch.isfinite(loss) and all(isinstance(v, float) for v in parts.values())
    missing = [k for k, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert missing == []


@pytest.mark.parametrize("name", list_models(trainable=True))
def test_embed_normalised_deterministic_restores_mode(name, data):
    inputs, _ = data
    model = _model(name, inputs)
    model.train()
    e1 = model.embed()
    assert model.training
    e2 = model.embed()
    assert e1.shape[0] == inputs.num_entities and not e1.requires_grad
    assert torch.allclose(e1.norm(dim=1), torch.ones(len(e1)), atol=1e-5)
    assert torch.equal(e1, e2)
    model.eval()
    model.embed()
    assert not model.training


@pytest.mark.parametrize("name", list_models(trainable=True))
def test_missing_modality_gets_zero_weight_and_finite_embedding(name, data):
    inputs, _ = data
    model = _model(name, inputs)
    out = model()
    img = model.names.index("image")
    absent = ~inputs.masks["image"]
    assert absent.any() and (~absent).any()
    w = out.aux["weights"]
    assert torch.allclose(w.sum(1), torch.ones(len(w)), atol=1e-5)
    assert (w[absent, img] == 0).all()
    assert (w[~absent, img] > 0).all()
    assert torch.isfinite(out["joint"]).all() and torch.isfinite(model.embed()).all()
    # The image block of the joint embedding is zero for entities without an image.
    start = sum(out[m].shape[1] for m in model.names[:img])
    block = out["joint"][:, start : start + out["image"].shape[1]]
    assert (block[absent] == 0).all() and (block[~absent].abs().sum(1) > 0).all()


@pytest.mark.parametrize("name", list_models(trainable=True))
def test_graph_only_inputs(name):
    inputs, links = aligned_pair(30, feature_dims={}, seed=1)
    model = _model(name, inputs)
    out = model()
    assert set(out) == {"graph", "joint"}
    loss, _ = model.loss(out, links)
    loss.backward()
    assert torch.isfinite(model.embed()).all()


@pytest.mark.parametrize("name", list_models(trainable=True))
def test_state_dict_roundtrip_through_safetensors(name, data, tmp_path):
    inputs, links = data
    model = _model(name, inputs, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        model.loss(model(), links[:40])[0].backward()
        opt.step()
    state = model.state_dict()
    assert not any(k.startswith(("feat_", "mask_", "edge_index")) for k in state)  # inputs are not saved
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "m.safetensors")
    other = _model(name, inputs, seed=123)
    assert not torch.equal(other.embed(), model.embed())
    other.load_state_dict(load_file(tmp_path / "m.safetensors"))
    assert torch.equal(other.embed(), model.embed())


@pytest.mark.parametrize("name", list_models(trainable=True))
def test_bf16_autocast_forward_backward(name, data):
    inputs, links = data
    model = _model(name, inputs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model()
        loss, _ = model.loss(out, links[:40])
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", list_models(trainable=True))
def test_runs_on_cuda(name, data):
    inputs, links = data
    model = _model(name, inputs.to("cuda"))
    loss, _ = model.loss(model(), links[:40].cuda())
    loss.backward()
    assert model.embed().device.type == "cuda"
    cpu = _model(name, inputs).to("cuda")  # built on CPU, moved after: buffers follow
    assert cpu.embed().device.type == "cuda"


@pytest.mark.parametrize("name", list_models(trainable=True))
def test_contract_methods_reset_and_report(name, data):
    inputs, links = data
    model = _model(name, inputs)
    assert isinstance(model, AlignmentModel)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(2):
        out = model()
        loss, parts = model.loss(out, links[:24])
        loss.backward()
        opt.step()
        opt.zero_grad()
        model.after_step(out)
        metrics = model.step_metrics(out)
        assert all(isinstance(v, float) for v in metrics.values())
    assert all(isinstance(v, float) for v in model.epoch_metrics().values())
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(123)
    model.reset_parameters()
    first = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(123)
    model.reset_parameters()
    # every trained value is re-initialised, reproducibly under a seed, to a state of the same kind as a fresh model's
    for k, v in model.state_dict().items():
        assert torch.equal(v, first[k]), k
        if v.is_floating_point() and v.numel() > 1 and not torch.equal(trained[k], fresh[k]):
            assert not torch.equal(v, trained[k]), k
    groups = model.optimizer_groups()
    grouped = {id(p) for g in groups for p in g["params"]}
    assert all(id(p) in grouped for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", list_models(trainable=True))
def test_fusion_models_report_modality_weights(name, data):
    inputs, links = data
    model = _model(name, inputs)
    model.train()
    metrics = model.step_metrics(model())
    weights = {k: v for k, v in metrics.items() if k.startswith("weight.")}
    if weights:  # the per-entity weights of the modalities an entity has sum to 1; their means lie in [0, 1]
        assert set(weights) == {f"weight.{m}" for m in model.names}
        assert all(0.0 <= v <= 1.0 for v in weights.values())


@pytest.mark.parametrize("name", list_models(trainable=True))
def test_gat_implementations_compute_the_same_model(name, data):
    """``gat_impl=pyg`` (the previous GATConv path) and the default sparse GAT: same seeded model, same outputs."""
    if "gat_impl" not in get_model(name).defaults:
        pytest.skip("no gat_impl option")
    inputs, _ = data
    a = _model(name, inputs, gat_impl="sparse").eval()
    b = _model(name, inputs, gat_impl="pyg").eval()
    with torch.no_grad():
        assert torch.allclose(a()["joint"], b()["joint"], atol=1e-5)
