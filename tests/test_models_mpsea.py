"""The MPSEA model: every switch changes the computation and still learns; masks, gradient
routing between the main and the CPRL networks, reset, save/load, epoch metrics."""

import numpy as np
import pytest
import torch
from support.training import fit_steps

from kgalign.errors import InputError
from kgalign.models.inputs import NumericFacts, RelationEdges
from kgalign.models.losses import icl_loss
from kgalign.models.mpsea import MPSEA
from kgalign.models.registry import build_model, get_model
from kgalign.models.relational_gat import MultiWeightGAT
from kgalign.models.synthetic import aligned_pair, hits_at_1

torch.set_num_threads(1)

SMALL = {"hidden": 40, "fusion_ffn": 40, "outlook_grid": 10, "mi_negatives": 64, "policy_hidden": 16, "mi_hidden": 16}
SWITCHES = [
    {"multi_weight_gat": False},  # repl.GAT
    {"mmpf": False},
    {"mmpf_gph": False},
    {"mmpf_img": False},
    {"outlook": False},  # w/o OA
    {"outlook": False, "outlook_conv": False},  # w/o OC
    {"cprl": False},
    {"dnef": False},
    {"structure": False},
]


def _data(n_base=100, seed=7, relations=4):
    """:func:`aligned_pair` plus typed relation edges and numeric facts, both derived from the
    shared base entity, so that they carry alignment signal (KG2 has its own relation ids)."""
    inputs, links = aligned_pair(n_base, feature_dims={"relation": 20, "attribute": 12, "image": 30}, missing={"image": 0.3}, seed=seed)
    base = np.empty(inputs.num_entities, np.int64)
    base[links[:, 0].numpy()] = np.arange(n_base)
    base[links[:, 1].numpy()] = np.arange(n_base)
    tri = inputs.rel_triples.numpy().copy()
    rel = (base[tri[:, 0]] * 31 + base[tri[:, 2]] * 17) % relations
    tri[:, 1] = rel + relations * (tri[:, 0] >= n_base)
    inputs.relation_edges = RelationEdges.from_triples(tri, 2 * relations)
    rng = np.random.default_rng(seed)
    attrs = 5
    table = rng.random((n_base, attrs)).astype(np.float32)
    present = rng.random((inputs.num_entities, attrs)) < 0.6
    present[rng.random(inputs.num_entities) < 0.2] = False  # some entities have no numbers at all
    values = (table[base] + 0.05 * rng.normal(size=(inputs.num_entities, attrs))).astype(np.float32) * present
    inputs.numeric = NumericFacts.from_matrices(values, present)
    inputs.features["numeric"] = torch.from_numpy(values)
    inputs.masks["numeric"] = torch.from_numpy(present.any(1))
    return inputs, links


@pytest.fixture(scope="module")
def data():
    return _data()


@pytest.fixture(scope="module")
def small_data():
    return _data(60)


def _model(inputs, seed=0, **kw):
    torch.manual_seed(seed)
    return build_model("mpsea", inputs, **{**SMALL, **kw})


def test_registry_defaults_are_the_papers_and_the_signatures():
    spec = get_model("mpsea")
    assert spec.cls is MPSEA and spec.doc == "docs/models/mpsea.md"
    d = spec.defaults
    assert (d["hidden"], d["gat_heads"], d["gat_layers"], d["fusion_heads"]) == (300, 2, 2, 5)
    assert spec.train_defaults["lr"] == 5e-4 and spec.train_defaults["epochs"] == 500
    assert all(d[k] is True for k in ("multi_weight_gat", "mmpf", "mmpf_gph", "mmpf_img", "outlook", "outlook_conv", "cprl", "dnef"))


def test_shapes_modalities_and_inputs_used(data):
    inputs, _ = data
    model = _model(inputs)
    out = model()
    assert list(out) == ["graph", "relation", "attribute", "numeric", "image", "joint"]
    assert all(out[m].shape == (200, 40) for m in model.names) and out["joint"].shape == (200, 200)
    assert out.aux["hidden"].shape == (200, 5, 40) and out.aux["weights"].shape == (200, 5)
    assert out.aux["logits"].shape == (200, 3) and out.aux["action"].shape == (200,)
    # The multi-weight GAT reads the typed edges (default: one group per direction), DNEF the numeric facts.
    assert isinstance(model.graph, MultiWeightGAT) and model.graph.num_groups == 2
    assert _model(inputs, gat_bands=2).graph.num_groups == 4  # 2 directions x 2 cardinality bands
    assert model.graph.src.numel() == inputs.relation_edges.index.shape[1]
    assert model.dnef is not None and "numeric" not in model.proj
    assert model.num_value.numel() == inputs.numeric.value.numel()


def test_absent_modalities_are_zero_and_weightless(data):
    inputs, _ = data
    model = _model(inputs)
    model.eval()
    with torch.no_grad():
        out = model()
    w = out.aux["weights"]
    assert torch.allclose(w.sum(1), torch.ones(200), atol=1e-5)
    for m in ("numeric", "image"):
        i = model.names.index(m)
        absent = ~inputs.masks[m]
        assert absent.any()
        assert (out[m][absent] == 0).all() and (out.aux["hidden"][absent, i] == 0).all()
        assert (w[absent, i] == 0).all() and (w[~absent, i] > 0).all()
        block = out["joint"][:, i * 40 : (i + 1) * 40]
        assert (block[absent] == 0).all()
    assert torch.isfinite(out["joint"]).all()


@pytest.mark.parametrize("switch", SWITCHES, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_every_switch_changes_the_computation(data, switch):
    inputs, _ = data
    default = _model(inputs)
    if "cprl" in switch:
        with torch.no_grad():  # an untrained policy may pick base_level itself: make it choose another level
            default.policy.net[-1].bias.copy_(torch.tensor([0.0, 0.0, 10.0]))
    variant = _model(inputs, **switch)
    # Same weights wherever the variant has them: the difference is the switched component only.
    target = variant.state_dict()
    shared = {k: v for k, v in default.state_dict().items() if k in target and target[k].shape == v.shape}
    variant.load_state_dict(shared, strict=False)
    a, b = default.embed(), variant.embed()
    assert a.shape[0] == b.shape[0] and (a.shape != b.shape or not torch.allclose(a, b))
    n_params = sum(p.numel() for p in variant.parameters())
    assert n_params < sum(p.numel() for p in default.parameters())  # the component is really gone


def test_switches_remove_their_modules(data):
    inputs, _ = data
    assert _model(inputs, mmpf_img=False).mmpf.image_kv is None and _model(inputs, mmpf_img=False).mmpf.graph_kv is not None
    assert _model(inputs, mmpf_gph=False).mmpf.graph_kv is None and _model(inputs, mmpf_gph=False).mmpf.image_kv is not None
    off = _model(inputs, mmpf=False).mmpf
    assert off.graph_kv is None and off.image_kv is None and off.prefix_scale is None
    ffn = _model(inputs, outlook=False).mmpf.image_ffn
    assert ffn.oa is None and ffn.conv is not None
    ffn = _model(inputs, outlook=False, outlook_conv=False).mmpf.image_ffn
    assert ffn.oa is None and ffn.conv is None
    no_rl = _model(inputs, cprl=False)
    assert no_rl.policy is None and no_rl.mi is None and [g["name"] for g in no_rl.optimizer_groups()] == ["main"]
    assert "graph" not in _model(inputs, structure=False)()


# Switches of scale, not of components: no module goes away.
SCALE_SWITCHES = [{"fusion_input_norm": False}, {"unit_mix": False}]


@pytest.mark.parametrize("switch", SCALE_SWITCHES, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_scale_switches_change_the_computation_with_the_same_weights(data, switch):
    inputs, _ = data
    default = _model(inputs, cprl=False)  # level 0.5 for every entity: both parts enter the joint
    variant = _model(inputs, cprl=False, **switch)
    variant.load_state_dict(default.state_dict())
    a, b = default.embed(), variant.embed()
    assert a.shape == b.shape and not torch.allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("normed", [True, False])
def test_fusion_input_norm_makes_the_fused_tokens_blind_to_an_encoders_scale(data, normed):
    inputs, _ = data
    model = _model(inputs, cprl=False, fusion_input_norm=normed).eval()
    with torch.no_grad():
        before = model.forward().aux["hidden"]
        model.proj["relation"].linear.weight.mul_(100.0)  # the relation encoder's output, 100x larger
        model.proj["relation"].linear.bias.mul_(100.0)
        after = model.forward().aux["hidden"]
    assert torch.allclose(before, after, atol=1e-4) == normed


@pytest.mark.parametrize("switch", [{}, *SWITCHES, *SCALE_SWITCHES], ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "default")
def test_training_learns_with_every_switch(small_data, switch):
    inputs, links = small_data
    train, held = links[:30], links[30:]
    model = _model(inputs, **switch)
    before = hits_at_1(model.embed(), held)
    fit_steps(model, train, steps=30, lr=1e-2)
    after = hits_at_1(model.embed(), held)
    assert after >= 0.2 and after >= before + 0.1, (switch, before, after)  # chance: 1/30


def test_gradient_routing_between_main_and_cprl(data):
    inputs, links = data
    model = _model(inputs)
    aux = {id(p) for m in model.aux_modules() for p in m.parameters()}
    main = [p for p in model.parameters() if id(p) not in aux]
    groups = model.optimizer_groups()
    assert [g["name"] for g in groups] == ["main", "cprl"]
    assert {id(p) for p in groups[1]["params"]} == aux and len(groups[0]["params"]) == len(main)
    assert groups[1]["weight_decay"] == 0.0

    # Main terms alone: nothing reaches the policy or the MI estimator.
    out = model()
    l_main = icl_loss(out["joint"], links[:40]) + sum(icl_loss(out[m], links[:40], present=model.present(m)) for m in model.names)
    l_main.backward()
    assert all(p.grad is None for m in model.aux_modules() for p in m.parameters())
    model.zero_grad(set_to_none=True)
    # CPRL terms alone: only the policy and the MI estimator get gradients.
    out = model()
    l_policy, l_mi, _ = model.cprl_loss(out, links[:40])
    (l_policy + l_mi).backward()
    assert all(p.grad is None for p in main)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for m in model.aux_modules() for p in m.parameters())
    model.zero_grad(set_to_none=True)
    # The total includes both and names its parts.
    total, parts = model.loss(model(), links[:40])
    assert set(parts) == {"joint", "icl", "licl", "policy", "mi", "reward"}
    total.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_policy_samples_in_training_and_is_greedy_in_eval(data):
    inputs, _ = data
    model = _model(inputs)
    with torch.no_grad():
        model.policy.net[-1].weight.zero_()
        model.policy.net[-1].bias.zero_()  # uniform policy
    model.train()
    torch.manual_seed(1)
    actions = model()["joint"], model.forward().aux["action"]
    assert len(set(actions[1].tolist())) == 3
    model.eval()
    with torch.no_grad():
        a, b = model(), model()
    assert torch.equal(a.aux["action"], b.aux["action"]) and torch.equal(a["joint"], b["joint"])
    # The chosen level is what the joint embedding is built with.
    levels = model.levels[a.aux["action"]]
    assert torch.allclose(a.aux["level"], levels)


def test_sensitivity_parameters_change_the_reward(data):
    inputs, links = data
    torch.manual_seed(3)
    rewards = {}
    for thr, miw in ((0.5, 0.1), (-2.0, 0.1), (0.5, 5.0)):
        model = _model(inputs, reward_threshold=thr, mi_weight=miw)
        model.eval()  # greedy actions: the same embedding for all three
        with torch.no_grad():
            rewards[(thr, miw)] = model.loss(model(), links[:40])[1]["reward"]
    assert rewards[(-2.0, 0.1)] > rewards[(0.5, 0.1)]  # everything above the threshold earns the bonus
    assert rewards[(0.5, 5.0)] != rewards[(0.5, 0.1)]


def test_reset_parameters_is_reproducible(data):
    inputs, links = data
    model = _model(inputs)
    fit_steps(model, links[:40], steps=2)
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(11)
    model.reset_parameters()
    first = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(11)
    model.reset_parameters()
    second = model.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    changed = [k for k in first if not torch.equal(first[k], trained[k])]
    assert "graph.entity" in changed and "policy.net.0.weight" in changed and "dnef.centres" in changed
    assert (model.loss_weights.log_vars == 0).all() and (model.mmpf.prefix_scale == 1).all()
    # Components own their initialisation: the multi-weight GAT starts as the plain GAT again.
    w = model.graph.convs[0].weight.view(model.graph.num_groups + 1, -1, 40)
    assert all(torch.equal(w[0], w[s]) for s in range(1, len(w)))
    assert model.dnef.key.abs().max() < 1.0  # std 0.1, not nn.Embedding's N(0, 1)


def test_state_dict_round_trip(data, tmp_path):
    inputs, links = data
    model = _model(inputs)
    fit_steps(model, links[:40], steps=3)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    other = _model(inputs, seed=5)
    assert not torch.equal(other.embed(), model.embed())
    other.load_state_dict(torch.load(tmp_path / "m.pt"))
    assert torch.equal(other.embed(), model.embed())
    assert torch.equal(other.graph.group, model.graph.group)  # derived from the data, not saved


def test_epoch_metrics(data):
    inputs, _ = data
    model = _model(inputs)
    model.train()
    m = model.epoch_metrics()
    assert model.training
    assert {f"weight.{x}" for x in model.names} <= set(m)
    assert all(0 < m[f"weight.{x}"] < 1 for x in model.names)
    assert sum(m[k] for k in m if k.startswith("action.")) == pytest.approx(1.0)
    assert {"level.mean", "mi.state"} <= set(m) and all(isinstance(v, float) for v in m.values())
    assert set(_model(inputs, cprl=False).epoch_metrics()) == {f"weight.{x}" for x in model.names}


def test_bad_options_are_input_errors(data):
    inputs, _ = data
    with pytest.raises(InputError, match="fusion_heads"):
        build_model("mpsea", inputs, hidden=42)
    with pytest.raises(InputError, match="outlook_grid"):
        build_model("mpsea", inputs, hidden=40, fusion_ffn=8, outlook_grid=7)
    with pytest.raises(InputError, match="fusion_levels"):
        build_model("mpsea", inputs, **{**SMALL, "fusion_levels": [0.0, 2.0]})


def test_untyped_graph_and_dense_numeric_fallbacks():
    inputs, links = _data(40, seed=2)
    inputs.relation_edges = None
    facts = inputs.numeric
    inputs.numeric = None  # DNEF rebuilds the facts from the dense matrix
    model = _model(inputs)
    assert model.graph.num_groups == 1 and model.num_value.numel() == facts.value.numel()
    loss, _ = model.loss(model(), links)
    loss.backward()
    assert torch.isfinite(loss)


def test_one_link_batch_still_trains_every_network(data):
    # A data-parallel shard may hold a single pair; DDP's static graph needs the same parameters every step.
    inputs, links = data
    model = _model(inputs)
    loss, parts = model.loss(model(), links[:1])
    loss.backward()
    assert torch.isfinite(loss) and "policy" in parts
    assert all(p.grad is not None for m in model.aux_modules() for p in m.parameters())


def test_fusion_checkpoint_gives_the_same_loss_and_gradients(data):
    inputs, links = data
    plain, ckpt = _model(inputs), _model(inputs, fusion_checkpoint=True)
    ckpt.load_state_dict(plain.state_dict())
    grads = []
    for model in (plain, ckpt):
        model.train()
        torch.manual_seed(5)  # the same dropout masks and sampled actions
        loss, _ = model.loss(model(), links[:40])
        loss.backward()
        grads.append((loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}))
    assert torch.allclose(grads[0][0], grads[1][0])
    assert all(torch.allclose(grads[0][1][k], grads[1][1][k], atol=1e-6) for k in grads[0][1])


def test_without_structure_an_entity_with_no_modality_stays_finite():
    inputs, links = _data(40, seed=3)
    for m in inputs.masks:  # entity 0 has no feature at all, and w/o structure no graph either
        inputs.masks[m] = inputs.masks[m].clone()
        inputs.masks[m][0] = False
    keep = inputs.numeric.entity != 0
    inputs.numeric = NumericFacts(
        inputs.numeric.entity[keep], inputs.numeric.attribute[keep], inputs.numeric.value[keep], inputs.numeric.num_attributes
    )
    model = _model(inputs, structure=False)
    out = model()
    assert torch.isfinite(out["joint"]).all() and (out.aux["weights"][0] == 0).all()
    total, _ = model.loss(out, links[:20])
    total.backward()
    assert torch.isfinite(total) and all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
