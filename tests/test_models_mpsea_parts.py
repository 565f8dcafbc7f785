"""MPSEA's components, each on its own: multi-weight GAT, DNEF, Outlook/conv FFN, MI estimator, policy."""

import math

import pytest
import torch
from torch_geometric.nn import GATConv

from kgalign.models.mi import MutualInformationEstimator
from kgalign.models.numeric_encoder import DNEF
from kgalign.models.outlook import ConvModule1d, ImageFFN, OutlookAttention1d
from kgalign.models.policy import FusionPolicy, cprl_reward, reinforce_loss
from kgalign.models.relational_gat import MultiWeightGAT, MultiWeightGATConv, cardinality_groups

torch.set_num_threads(1)


def test_cardinality_groups_split_direction_and_band():
    # Relation 0 is functional (one neighbour per target), relation 1 many-valued (five per target).
    h = torch.tensor([0, 1, 2, 3] + [4] * 5 + [5] * 5)
    t = torch.tensor([10, 11, 12, 13] + [20, 21, 22, 23, 24] + [20, 21, 22, 23, 24])
    r = torch.tensor([0] * 4 + [1] * 10)
    index = torch.cat([torch.stack([h, t]), torch.stack([t, h])], 1)
    types = torch.cat([r, r + 2])
    group = cardinality_groups(index, types, 30, 2, bands=2)
    # Forward edges of relation 1 reach 5 targets from 2 heads (2 per target): the higher band.
    fwd0, fwd1, inv0, inv1 = (group[types == k].unique().tolist() for k in range(4))
    assert len({*fwd0, *fwd1, *inv0, *inv1}) == 4  # 2 directions x 2 bands, all distinct
    assert all(len(g) == 1 for g in (fwd0, fwd1, inv0, inv1))
    assert cardinality_groups(index, types, 30, 2, bands=1).unique().numel() == 2  # direction only


def test_multi_weight_conv_with_one_shared_matrix_is_pyg_gat():
    torch.manual_seed(0)
    n, e = 30, 120
    x = torch.randn(n, 16)
    src, dst = torch.randint(0, n, (2, e))
    keep = src != dst
    src, dst = src[keep], dst[keep]
    ref = GATConv(16, 8, heads=2, concat=True, add_self_loops=True)
    conv = MultiWeightGATConv(16, 16, heads=2, num_groups=1, num_types=1)
    with torch.no_grad():
        ref.bias.normal_()
        conv.weight.copy_(torch.cat([ref.lin.weight, ref.lin.weight]))
        conv.att_src.copy_(ref.att_src.expand(2, -1, -1))
        conv.att_dst.copy_(ref.att_dst[0])
        conv.bias.copy_(ref.bias)
    group = torch.zeros_like(src)
    got = conv(x, src, dst, group, group)
    assert torch.allclose(got, ref(x, torch.stack([src, dst])), atol=1e-5)
    # A second group with its own matrix changes exactly the targets of that group's edges.
    conv2 = MultiWeightGATConv(16, 16, heads=2, num_groups=2, num_types=2)
    with torch.no_grad():
        w = ref.lin.weight
        conv2.weight.copy_(torch.cat([w, w, w.flip(0)]))
        conv2.att_src.copy_(ref.att_src.expand(3, -1, -1))
        conv2.att_dst.copy_(ref.att_dst[0])
        conv2.bias.copy_(ref.bias)
    group2 = (torch.arange(len(src)) < 5).long()
    out2 = conv2(x, src, dst, group2, group2)
    changed = (out2 - got).abs().sum(1) > 1e-4
    assert set(changed.nonzero().squeeze(1).tolist()) == set(dst[:5].tolist())


def test_multi_weight_conv_starts_as_a_plain_gat():
    conv = MultiWeightGATConv(16, 16, heads=2, num_groups=3, num_types=5)
    w = conv.weight.view(4, 16, 16)
    assert all(torch.equal(w[0], w[s]) and torch.equal(conv.att_src[0], conv.att_src[s]) for s in range(1, 4))
    assert (conv.type_bias == 0).all()
    torch.manual_seed(1)
    x, src, dst = torch.randn(10, 16), torch.randint(0, 10, (40,)), torch.randint(0, 10, (40,))
    keep = src != dst
    src, dst = src[keep], dst[keep]
    a = conv(x, src, dst, torch.randint(0, 3, src.shape), torch.randint(0, 5, src.shape))
    b = conv(x, src, dst, torch.zeros_like(src), torch.zeros_like(src))
    assert torch.allclose(a, b, atol=1e-6)  # groups and types only matter once trained apart


@pytest.mark.parametrize("concat", [True, False])
def test_multi_weight_conv_identity_start_averages_neighbours(concat):
    # Identity weights, no bias: each node's output is an attention-weighted mean of its
    # neighbourhood's inputs (self loop included), so a constant input passes through unchanged
    # and every output row lies in the convex hull of its neighbourhood.
    torch.manual_seed(2)
    n = 12
    src, dst = torch.randint(0, n, (2, 50))
    keep = src != dst
    src, dst = src[keep], dst[keep]
    group = torch.randint(0, 2, src.shape)
    conv = MultiWeightGATConv(8, 8, heads=2, num_groups=2, num_types=2, concat=concat, bias=False, identity_init=True)
    assert conv.bias is None and "bias" not in conv.state_dict()
    const = torch.randn(1, 8).expand(n, 8)
    assert torch.allclose(conv(const, src, dst, group, group), const, atol=1e-6)
    x = torch.randn(n, 8)
    out = conv(x, src, dst, group, group)
    for i in range(n):
        hood = x[torch.cat([src[dst == i], torch.tensor([i])])]
        assert (out[i] <= hood.max(0).values + 1e-6).all() and (out[i] >= hood.min(0).values - 1e-6).all()
    plain = MultiWeightGATConv(8, 8, heads=2, num_groups=2, num_types=2, concat=concat)  # random start, with bias
    assert not torch.allclose(plain(const, src, dst, group, group), const, atol=1e-3)


def test_multi_weight_gat_learns_a_type_bias_and_keeps_shape():
    torch.manual_seed(0)
    n = 40
    h, t = torch.randint(0, n, (2, 200))
    keep = h != t
    h, t = h[keep], t[keep]
    r = torch.randint(0, 3, (len(h),))
    index, types = torch.cat([torch.stack([h, t]), torch.stack([t, h])], 1), torch.cat([r, r + 3])
    gat = MultiWeightGAT(n, 24, index, types, 3, heads=2, layers=2, bands=2)
    out = gat()
    assert out.shape == (n, 24)
    out.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gat.parameters())
    assert gat.convs[0].type_bias.shape == (7, 2)  # 6 edge types + the self loop


def test_dnef_pools_facts_and_reads_values():
    torch.manual_seed(0)
    enc = DNEF(num_attributes=3, dim=8, kernels=6, value_range=(0.0, 1.0))
    entity = torch.tensor([0, 0, 2, 3])
    attribute = torch.tensor([0, 1, 1, 2])
    value = torch.tensor([0.1, 0.9, 0.5, 0.3])
    out = enc(entity, attribute, value, 5)
    assert out.shape == (5, 8)
    assert (out[[1, 4]] == 0).all() and (out[[0, 2, 3]].abs().sum(1) > 0).all()  # no facts: zero row
    moved = enc(entity, attribute, torch.tensor([0.1, 0.9, 0.8, 0.3]), 5)
    diff = (moved - out).abs().sum(1) > 1e-7
    assert diff.tolist() == [False, False, True, False, False]  # only the entity whose value changed
    # The same value under another attribute key encodes differently.
    other_key = enc(entity, torch.tensor([0, 1, 2, 2]), value, 5)
    assert not torch.allclose(other_key[2], out[2])
    out.sum().backward()
    assert enc.centres.grad.abs().sum() > 0 and enc.log_width.grad.abs().sum() > 0


def test_outlook_attention_is_local_and_folds_back():
    torch.manual_seed(0)
    oa = OutlookAttention1d(channels=4, heads=2, kernel=3)
    x = torch.randn(2, 10, 4)
    y = oa(x)
    assert y.shape == x.shape
    x2 = x.clone()
    x2[:, 5] += 1.0
    changed = ((oa(x2) - y).abs().sum((0, 2)) > 1e-6).nonzero().squeeze(1).tolist()
    # Position 5 feeds the windows of 4..6, whose outputs fold onto 3..7.
    assert changed == [3, 4, 5, 6, 7]


def test_conv_module_and_image_ffn_switches():
    torch.manual_seed(0)
    conv = ConvModule1d(4, kernel=3)
    x = torch.randn(3, 10, 4)
    assert conv(x).shape == x.shape
    torch.manual_seed(0)
    full = ImageFFN(40, 40, grid=10, outlook=True, conv=True)
    assert full.oa is not None and full.conv is not None
    plain = ImageFFN(40, 40, grid=10, outlook=False, conv=False)
    plain.load_state_dict(full.state_dict(), strict=False)
    z = torch.randn(5, 40)
    assert full(z).shape == (5, 40) and not torch.allclose(full(z), plain(z))
    with pytest.raises(ValueError, match="not divisible"):
        ImageFFN(30, 30, grid=8)


def test_mi_estimator_separates_dependent_from_independent():
    torch.manual_seed(0)

    def fit(dependent: bool) -> float:
        est = MutualInformationEstimator(6, 6, hidden=32)
        opt = torch.optim.Adam(est.parameters(), lr=1e-2)
        for _ in range(150):
            u = torch.randn(128, 6)
            v = u + 0.3 * torch.randn(128, 6) if dependent else torch.randn(128, 6)
            opt.zero_grad()
            (-est.dv_bound(u, v)).backward()
            opt.step()
        u = torch.randn(256, 6)
        v = u + 0.3 * torch.randn(256, 6) if dependent else torch.randn(256, 6)
        with torch.no_grad():
            return float(est.dv_bound(u, v)), float(est.pointwise(u, v, v[:64]).mean())

    dep, indep = fit(True), fit(False)
    assert dep[0] > 1.0 and indep[0] < 0.3, (dep, indep)
    assert dep[1] > 1.0 and dep[1] <= math.log(64) + 1e-3 + 3.0


def test_reward_threshold_and_policy_gradient():
    cos = torch.tensor([0.2, 0.6, 0.8])
    r = cprl_reward(cos, torch.zeros(3), threshold=0.5, mi_weight=0.0, bonus=0.5, penalty=0.5)
    assert torch.allclose(r, torch.tensor([-0.3, 1.1, 1.3]))
    # The MI weight moves a pair across the threshold.
    r2 = cprl_reward(cos, torch.ones(3), threshold=0.5, mi_weight=0.4, bonus=0.5, penalty=0.5)
    assert r2[0] > 0.5 and torch.allclose(r2[1:], r[1:] + 0.4)
    torch.manual_seed(0)
    policy = FusionPolicy(5, hidden=16, num_actions=3)
    opt = torch.optim.Adam(policy.parameters(), lr=0.05)
    state = torch.randn(64, 5)
    before = torch.softmax(policy(state), -1)[:, 2].mean()
    for _ in range(40):
        logits = policy(state)
        actions = torch.distributions.Categorical(logits=logits.detach()).sample()
        reward = (actions == 2).float()  # action 2 is the rewarded one
        opt.zero_grad()
        reinforce_loss(logits, actions, reward, entropy_weight=0.0).backward()
        opt.step()
    after = torch.softmax(policy(state), -1)[:, 2].mean()
    assert after > 0.8 > before


def test_mi_estimator_is_blind_to_the_inputs_scale():
    # MPSEA's joint embedding has norm <= 1 over M*d entries: the critic must see it at a usable scale.
    torch.manual_seed(0)
    est = MutualInformationEstimator(40, 30, hidden=16)
    u, v = torch.randn(32, 40), torch.randn(32, 30)
    assert torch.allclose(est.scores(0.01 * u, v), est.scores(u, 7.0 * v), atol=1e-5)
    assert torch.allclose(est.pointwise(0.01 * u, v, v[:8]), est.pointwise(u, v, v[:8]), atol=1e-5)
    assert est.scores(u, v).std() > 0.01  # not a constant at the default initialisation
