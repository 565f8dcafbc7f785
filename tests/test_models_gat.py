"""The sparse GAT against torch_geometric's GATConv and against a dense reference of the MCLEA/MEAformer layer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch_geometric.nn import GATConv

from kgalign.models.gat import CSRGraph, SparseGATConv, block_spmm, segment_softmax
from kgalign.models.layers import GraphEncoder

TOL = {"rtol": 1e-9, "atol": 1e-11}  # float64: only summation order differs


def random_edges(n: int, e: int, gen: torch.Generator, unique: bool = True, loops: bool = False) -> torch.Tensor:
    ei = torch.randint(0, n, (2, e), generator=gen)
    if not loops:
        ei = ei[:, ei[0] != ei[1]]
    if unique:
        key = torch.unique(ei[0] * n + ei[1])
        ei = torch.stack([key // n, key % n])
        ei = ei[:, torch.randperm(ei.shape[1], generator=gen)]  # any order, not sorted
    return ei


def grads(out: torch.Tensor, inputs: list[torch.Tensor], weight: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad((out * weight).sum(), inputs))


def assert_same_as_gatconv(n, edges, in_dim, out_dim, heads, concat, seed=0, dropout=0.0, train=False):
    torch.manual_seed(seed)
    ref = GATConv(in_dim, out_dim, heads=heads, concat=concat, dropout=dropout).double()
    torch.manual_seed(seed)
    mine = SparseGATConv(in_dim, out_dim, heads=heads, concat=concat, dropout=dropout).double()
    # Same seed, same initial parameters, same names.
    assert list(ref.state_dict()) == ["att_src", "att_dst", "bias", "lin.weight"]
    for (k1, v1), (k2, v2) in zip(ref.state_dict().items(), mine.state_dict().items(), strict=True):
        assert k1 == k2 and torch.equal(v1, v2), k1
    with torch.no_grad():  # a non-zero bias so its broadcast is checked too
        ref.bias.normal_()
        mine.bias.copy_(ref.bias)
    ref.train(train)
    mine.train(train)
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(n, in_dim, generator=gen, dtype=torch.float64, requires_grad=True)
    graph = CSRGraph(edges, n)
    torch.manual_seed(seed + 2)
    o_ref = ref(x, edges)
    torch.manual_seed(seed + 2)
    o_mine = mine(x, graph)
    torch.testing.assert_close(o_mine, o_ref, **TOL)
    w = torch.randn(o_ref.shape, generator=gen, dtype=torch.float64)
    g_ref = grads(o_ref, [x, *ref.parameters()], w)
    g_mine = grads(o_mine, [x, *mine.parameters()], w)
    names = ["x"] + [k for k, _ in ref.named_parameters()]
    for name, a, b in zip(names, g_mine, g_ref, strict=True):
        torch.testing.assert_close(a, b, **TOL, msg=lambda m, name=name: f"grad {name}: {m}")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 40),
    density=st.floats(0.0, 4.0),
    heads=st.integers(1, 3),
    out_dim=st.integers(1, 6),
    concat=st.booleans(),
    unique=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_matches_gatconv_values_and_gradients(n, density, heads, out_dim, concat, unique, seed):
    # Duplicate edges count twice in the softmax, as in GATConv.
    gen = torch.Generator().manual_seed(seed)
    edges = random_edges(n, int(density * n), gen, unique=unique)
    assert_same_as_gatconv(n, edges, 5, out_dim, heads, concat, seed=seed)


@pytest.mark.parametrize("concat", [True, False])
def test_matches_gatconv_with_isolated_nodes_and_given_self_loops(concat):
    # Nodes 30..59 have no edge at all; GATConv drops given self loops and adds one per node.
    edges = random_edges(30, 120, torch.Generator().manual_seed(3), loops=True)
    assert (edges[0] == edges[1]).any()
    assert_same_as_gatconv(60, edges, 8, 4, 2, concat)


def test_matches_gatconv_without_edges():
    assert_same_as_gatconv(7, torch.zeros(2, 0, dtype=torch.long), 4, 3, 2, True)


@pytest.mark.parametrize("concat", [True, False])
def test_attention_dropout_draws_gatconvs_mask(concat):
    # In training mode the same seed gives the same dropped edges as GATConv.
    edges = random_edges(50, 300, torch.Generator().manual_seed(4))
    assert_same_as_gatconv(50, edges, 6, 4, 3, concat, dropout=0.4, train=True)


def test_dropout_is_off_in_eval_mode():
    edges = random_edges(20, 60, torch.Generator().manual_seed(5))
    layer = SparseGATConv(4, 4, heads=2, dropout=0.9).eval()
    graph = CSRGraph(edges, 20)
    x = torch.randn(20, 4)
    assert torch.equal(layer(x, graph), layer(x, graph))


def test_a_tiny_graph_with_more_edges_than_cells_matches_gatconv():
    # 0 -> 1 twice plus the self loops: 5 stored entries in a 2 x 2 matrix (torch's SDDMM refuses nnz > cells)
    assert_same_as_gatconv(2, torch.tensor([[0, 0, 1], [1, 1, 0]]), 5, 1, 1, False, seed=0)
    assert_same_as_gatconv(2, torch.tensor([[0, 0, 1, 1], [1, 1, 0, 0]]), 4, 3, 2, True, seed=1)


def test_block_spmm_gradcheck():
    edges = random_edges(9, 25, torch.Generator().manual_seed(6))
    graph = CSRGraph(edges, 9)
    index = graph.blocks(2)
    values = torch.rand(2 * graph.num_edges, dtype=torch.float64, requires_grad=True)
    dense = torch.randn(18, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, d: block_spmm(v, d, index), (values, dense))


def test_segment_softmax_sums_to_one_per_target_and_survives_large_scores():
    edges = random_edges(15, 40, torch.Generator().manual_seed(7))
    graph = CSRGraph(edges, 15)
    scores = torch.randn(2, graph.num_edges) * 500  # exp() alone would overflow
    alpha = segment_softmax(scores, graph.row, 15)
    assert torch.isfinite(alpha).all()
    sums = torch.zeros(2, 15).index_add(1, graph.row, alpha)
    torch.testing.assert_close(sums, torch.ones(2, 15))


# --- the reference codes' diagonal layer ---------------------------------------------------------


def dense_reference_layer(x, diag, att_dst, att_src, edges, n):
    """MCLEA/MEAformer ``MultiHeadGraphAttention(diag=True)``, written with a dense n x n matrix.

    Per head k: h = x ⊙ w_k; for every edge (i <- j) of the graph plus all self loops,
    e_ij = exp(-LeakyReLU_0.2(a_k·[h_i ‖ h_j])); h'_i = Σ_j e_ij h_j / Σ_j e_ij; heads averaged.
    """
    adj = torch.zeros(n, n, dtype=torch.bool)
    adj[edges[1], edges[0]] = True  # row = target i, column = source j
    adj |= torch.eye(n, dtype=torch.bool)
    outs = []
    for k in range(diag.shape[0]):
        h = x * diag[k]
        a = torch.cat([att_dst[0, k], att_src[0, k]])
        pair = torch.cat([h.unsqueeze(1).expand(n, n, -1), h.unsqueeze(0).expand(n, n, -1)], dim=-1)  # [h_i ‖ h_j]
        e = torch.exp(-F.leaky_relu(pair @ a, 0.2)) * adj
        outs.append((e @ h) / e.sum(1, keepdim=True))
    return torch.stack(outs).mean(0)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 25), density=st.floats(0.0, 4.0), heads=st.integers(1, 3), dim=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_diagonal_layer_matches_dense_reference(n, density, heads, dim, seed):
    gen = torch.Generator().manual_seed(seed)
    edges = random_edges(n, int(density * n), gen)
    layer = SparseGATConv(dim, dim, heads=heads, concat=False, weight="diagonal", negative_score=True, bias=False).double()
    with torch.no_grad():  # move off the all-ones start so the weight's effect is visible
        layer.diag.copy_(torch.rand(heads, dim, generator=gen, dtype=torch.float64) + 0.5)
    x = torch.randn(n, dim, generator=gen, dtype=torch.float64, requires_grad=True)
    params = [layer.diag, layer.att_dst, layer.att_src]
    out = layer(x, CSRGraph(edges, n))
    ref = dense_reference_layer(x, *params, edges, n)
    torch.testing.assert_close(out, ref, **TOL)
    w = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    for a, b in zip(grads(out, [x, *params], w), grads(ref, [x, *params], w), strict=True):
        torch.testing.assert_close(a, b, **TOL)


def test_diagonal_layer_initialisation_is_the_references():
    layer = SparseGATConv(300, 300, heads=2, concat=False, weight="diagonal", negative_score=True, bias=False)
    assert torch.equal(layer.diag, torch.ones(2, 300))
    bound = 1 / 600**0.5
    for att in (layer.att_src, layer.att_dst):
        assert att.abs().max() <= bound and att.abs().max() > 0.9 * bound
    assert layer.bias is None and not hasattr(layer, "lin")


# --- GraphEncoder ------------------------------------------------------------------------------


@pytest.mark.parametrize("concat", [True, False])
def test_graph_encoder_sparse_equals_pyg_under_one_seed(concat):
    n = 80
    edges = random_edges(n, 300, torch.Generator().manual_seed(8))
    encoders = []
    for impl in ("pyg", "sparse"):
        torch.manual_seed(11)
        encoders.append(GraphEncoder(n, dim=12, heads=2, layers=2, concat=concat, impl=impl).double())
    pyg, sparse = encoders
    assert list(pyg.state_dict()) == list(sparse.state_dict())
    for a, b in zip(pyg.state_dict().values(), sparse.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    o_pyg, o_sparse = pyg(edges), sparse(edges)
    torch.testing.assert_close(o_sparse, o_pyg, **TOL)
    w = torch.randn_like(o_pyg)
    for a, b in zip(grads(o_sparse, list(sparse.parameters()), w), grads(o_pyg, list(pyg.parameters()), w), strict=True):
        torch.testing.assert_close(a, b, **TOL)
    # A pyg checkpoint loads into the sparse encoder (and back).
    sparse.load_state_dict(pyg.state_dict())
    pyg.load_state_dict(sparse.state_dict())


@pytest.mark.parametrize("weight", ["full", "diagonal"])
def test_graph_encoder_bias_option(weight):
    n = 40
    edges = random_edges(n, 120, torch.Generator().manual_seed(15))
    default = GraphEncoder(n, dim=6, heads=2, concat=False, weight=weight)
    assert any(k.endswith("bias") for k in default.state_dict()) == (weight == "full")
    flipped = GraphEncoder(n, dim=6, heads=2, concat=False, weight=weight, bias=weight != "full")
    assert any(k.endswith("bias") for k in flipped.state_dict()) == (weight != "full")
    if weight == "full":  # without bias, both implementations still agree
        encoders = []
        for impl in ("pyg", "sparse"):
            torch.manual_seed(3)
            encoders.append(GraphEncoder(n, dim=6, heads=2, concat=False, impl=impl, bias=False).double())
        assert list(encoders[0].state_dict()) == list(encoders[1].state_dict())
        torch.testing.assert_close(encoders[1](edges), encoders[0](edges), **TOL)


@pytest.mark.parametrize("concat", [True, False])
def test_identity_init_passes_the_entity_table_through(concat):
    # No edges: each node attends only to itself, so with W = I and no bias the
    # layers reduce to ELU(x) then x (mean of identical heads, or concatenated slices).
    n = 12
    for impl in ("pyg", "sparse"):
        enc = GraphEncoder(n, dim=6, heads=2, concat=concat, impl=impl, bias=False, identity_init=True)
        out = enc(torch.zeros(2, 0, dtype=torch.long))
        torch.testing.assert_close(out, F.elu(enc.entity))


def test_graph_encoder_diagonal_is_two_reference_layers_with_elu_between():
    n, d = 30, 8
    edges = random_edges(n, 90, torch.Generator().manual_seed(9))
    enc = GraphEncoder(n, dim=d, heads=2, layers=2, concat=False, weight="diagonal").double()
    out = enc(edges)
    assert out.shape == (n, d)
    c1, c2 = enc.convs
    hidden = F.elu(dense_reference_layer(enc.entity, c1.diag, c1.att_dst, c1.att_src, edges, n))
    ref = dense_reference_layer(hidden, c2.diag, c2.att_dst, c2.att_src, edges, n)
    torch.testing.assert_close(out, ref, **TOL)
    assert sorted(enc.state_dict()) == sorted(["entity"] + [f"convs.{i}.{p}" for i in range(2) for p in ("diag", "att_src", "att_dst")])


def test_graph_encoder_rebuilds_its_graph_when_the_edges_change():
    n = 40
    enc = GraphEncoder(n, dim=6, heads=2).eval()
    e1 = random_edges(n, 100, torch.Generator().manual_seed(10))
    e2 = random_edges(n, 100, torch.Generator().manual_seed(11))
    with torch.no_grad():
        a1, b, a2 = enc(e1), enc(e2), enc(e1)
        assert not torch.allclose(a1, b)
        assert torch.equal(a1, a2)
        e1[:, :50] = e2[:, :50]  # edited in place: the cached graph must not be reused
        edited = enc(e1)
        assert torch.equal(edited, enc(e1.clone()))  # a fresh tensor always builds a fresh graph
        assert not torch.equal(edited, a1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"impl": "dgl"}, "impl must be"),
        ({"weight": "low-rank"}, "weight must be"),
        ({"impl": "pyg", "weight": "diagonal", "concat": False}, "needs impl='sparse'"),
        ({"weight": "diagonal", "concat": True}, "set concat=False"),
        ({"dim": 10, "heads": 3, "concat": True}, "not divisible"),
    ],
)
def test_graph_encoder_rejects_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GraphEncoder(10, **{"dim": 6, **kwargs})


def test_csr_graph_rejects_bad_edges():
    with pytest.raises(ValueError, match="outside 0..4"):
        CSRGraph(torch.tensor([[0, 5], [1, 2]]), 5)
    with pytest.raises(ValueError, match=r"shape \(2, E\)"):
        CSRGraph(torch.zeros(3, 4, dtype=torch.long), 5)
    with pytest.raises(ValueError, match="integer"):
        CSRGraph(torch.zeros(2, 4), 5)


def test_bf16_autocast_runs_and_stays_close_to_fp32():
    n = 200
    edges = random_edges(n, 1000, torch.Generator().manual_seed(12))
    enc = GraphEncoder(n, dim=32, heads=2)
    with torch.no_grad():
        enc.entity.normal_()
    ref = enc(edges)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = enc(edges)
    out.float().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in enc.parameters())
    assert (out.float() - ref).abs().max() < 0.05 * ref.abs().max()


def test_training_steps_lower_a_loss():
    # End to end: the sparse encoder learns (gradients flow through scores and values).
    n = 60
    edges = random_edges(n, 240, torch.Generator().manual_seed(13))
    torch.manual_seed(0)
    enc = GraphEncoder(n, dim=16, heads=2, layers=2, concat=False, weight="diagonal")
    target = torch.randn(n, 16, generator=torch.Generator().manual_seed(14))
    opt = torch.optim.Adam(enc.parameters(), lr=0.05)
    losses = []
    for _ in range(30):
        loss = F.mse_loss(enc(edges), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
