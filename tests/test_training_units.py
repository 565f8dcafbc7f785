"""Building blocks of the trainer: schedule, bootstrapping, selection, checkpoints, RNG state."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from kgalign.errors import InputError
from kgalign.training.bootstrap import ILSchedule, candidate_pools, intersect_pairs, mutual_nearest_neighbours
from kgalign.training.checkpoint import load_checkpoint, optimizer_from_flat, optimizer_to_flat, save_checkpoint
from kgalign.training.schedule import Phase, warmup_constant, warmup_cosine
from kgalign.training.seeding import capture_rng, restore_rng, seed_everything
from kgalign.training.selection import Selection, metric_value


def test_warmup_cosine_shape():
    assert warmup_cosine(0.0, 0.2) == 0.0
    assert warmup_cosine(0.1, 0.2) == pytest.approx(0.5)
    assert warmup_cosine(0.2, 0.2) == pytest.approx(1.0)
    assert warmup_cosine(0.6, 0.2) == pytest.approx(0.5)
    assert warmup_cosine(1.0, 0.2) == pytest.approx(0.0)
    xs = np.linspace(0.2, 1.0, 50)
    ys = [warmup_cosine(x, 0.2) for x in xs]
    assert all(a >= b for a, b in zip(ys, ys[1:], strict=False))
    assert warmup_cosine(0.5, 0.0) == pytest.approx(0.5)
    assert warmup_constant(0.05, 0.1) == pytest.approx(0.5) and warmup_constant(0.9, 0.1) == 1.0


def test_phase_progress_counts_epochs_not_steps():
    ph = Phase(start=10, end=20, lr=1.0, warmup=0.0)
    # halfway through the phase the factor is 0.5 whatever the number of batches per epoch
    assert ph.lr_at(14, 0, 1) == pytest.approx(0.5)
    assert ph.lr_at(14, 4, 5) == pytest.approx(0.5)
    assert ph.lr_at(10, 0, 3) > 0  # the first step of a phase trains
    assert ph.lr_at(19, 0, 1) == pytest.approx(0.0, abs=1e-12)


def test_mutual_nearest_neighbours():
    # left 0,1,2 and right 3,4,5: 0<->4 and 1<->3 are mutual; 2 points at 4 but 4 prefers 0.
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 1.0], [1.0, 0.05], [-1.0, 0.0]])
    emb = torch.nn.functional.normalize(emb, dim=1)
    got = mutual_nearest_neighbours(emb, torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5]))
    assert got.tolist() == [[0, 4], [1, 3]]
    assert mutual_nearest_neighbours(emb, torch.tensor([], dtype=torch.long), torch.tensor([3])).shape == (0, 2)


def test_candidate_pools_exclude_training_entities():
    kg = np.array([1, 1, 1, 2, 2, 2])
    left, right = candidate_pools(kg, np.array([[0, 4]]))
    assert left.tolist() == [1, 2] and right.tolist() == [3, 5]


def test_intersect_pairs():
    a = torch.tensor([[0, 4], [1, 3], [2, 5]])
    b = torch.tensor([[2, 5], [1, 4], [0, 4]])
    assert intersect_pairs(a, b, 6).tolist() == [[0, 4], [2, 5]]


def test_il_schedule_matches_meaformer_script_values():
    s = ILSchedule(start=500, step=5, reset_every=25, add_every=50)
    acts = {e: s.actions(e) for e in range(495, 561)}
    checks = [e for e, a in acts.items() if a[0]]
    assert checks == list(range(505, 561, 5))
    assert [e for e, a in acts.items() if a[1]] == [505, 530, 555]
    assert [e for e, a in acts.items() if a[2]] == [550]
    assert acts[500] == (False, False, False)


def test_selection_patience_and_direction():
    s = Selection("valid", "csls.l2r.mrr", patience=2)
    assert s.update(0.5, 1) and s.best_epoch == 1
    assert not s.update(0.4, 2) and not s.stopped
    assert s.update(0.6, 3) and s.bad_evals == 0
    assert not s.update(0.6, 4)
    assert not s.update(0.1, 5) and s.stopped and s.best_epoch == 3
    mr = Selection("valid", "cosine.l2r.mr", patience=0)
    assert mr.update(10.0, 1) and mr.update(5.0, 2) and not mr.update(7.0, 3) and mr.best_epoch == 2
    for _ in range(20):
        mr.update(100.0, 4)
    assert not mr.stopped  # patience 0 = never stop
    unarmed = Selection("valid", "csls.l2r.mrr", patience=1)
    unarmed.update(1.0, 1)
    assert not unarmed.update(0.0, 2, count_patience=False) and not unarmed.stopped
    st = Selection("valid", "x", 3)
    st.load_state_dict(s.state_dict())
    assert st == s


def test_metric_value_path():
    m = {"csls": {"l2r": {"mrr": 0.25}}}
    assert metric_value(m, "csls.l2r.mrr") == 0.25
    with pytest.raises(InputError, match="not found"):
        metric_value(m, "csls.l2r.hits@2")


def _steps(model, opt, x, n):
    for _ in range(n):
        loss = (model(x) ** 2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()


def test_optimizer_state_round_trips_through_safetensors(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(16, 5)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    _steps(model, opt, x, 3)
    tensors, js = optimizer_to_flat(opt)
    tensors.update({f"model.{k}": v for k, v in model.state_dict().items()})
    save_checkpoint(tmp_path, tensors, {"optimizer": js})
    loaded, meta = load_checkpoint(tmp_path)
    json.dumps(meta)  # plain JSON
    model2 = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 1))
    model2.load_state_dict({k[6:]: v for k, v in loaded.items() if k.startswith("model.")})
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1.0)
    opt2.load_state_dict(optimizer_from_flat(loaded, meta["optimizer"]))
    assert opt2.param_groups[0]["lr"] == 1e-2 and opt2.param_groups[0]["betas"] == (0.9, 0.999)
    _steps(model, opt, x, 4)
    _steps(model2, opt2, x, 4)
    for a, b in zip(model.parameters(), model2.parameters(), strict=False):
        assert torch.equal(a, b)


def test_checkpoint_token_mismatch_is_detected(tmp_path):
    save_checkpoint(tmp_path, {"a": torch.zeros(2)}, {"epoch": 1})
    first = (tmp_path / "last.json").read_text()
    save_checkpoint(tmp_path, {"a": torch.ones(2)}, {"epoch": 2})
    (tmp_path / "last.json").write_text(first)  # as if the second save died between the two files
    tensors, meta = load_checkpoint(tmp_path)  # the previous checkpoint is still intact: it is used
    assert meta["epoch"] == 1 and torch.equal(tensors["a"], torch.zeros(2))
    for f in ("prev.json", "prev.safetensors"):
        (tmp_path / f).unlink()
    with pytest.raises(InputError, match="different saves"):
        load_checkpoint(tmp_path)


def test_rng_capture_restore_all_generators():
    seed_everything(7)
    gen = torch.Generator().manual_seed(3)
    random.random(), np.random.rand(), torch.rand(1), torch.randperm(5, generator=gen)
    tensors, js = capture_rng(gen)
    json.dumps(js)
    first = (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist(), torch.randperm(9, generator=gen).tolist())
    seed_everything(99)
    gen2 = torch.Generator().manual_seed(0)
    restore_rng(tensors, js, gen2)
    again = (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist(), torch.randperm(9, generator=gen2).tolist())
    assert first == again


def test_progress_bar_shows_epoch_and_info_and_disabled_bar_is_silent():
    import io

    from kgalign.progress import Progress

    buf = io.StringIO()
    bar = Progress(10, "epoch", enabled=True, stream=buf)
    bar.set(4, "loss 1.0")
    bar.close()
    text = buf.getvalue()
    assert "epoch" in text and "4/10" in text and "loss 1.0" in text
    off = io.StringIO()
    quiet = Progress(10, enabled=False, stream=off)
    quiet.set(3)
    quiet.close()
    assert off.getvalue() == ""


def test_keeping_the_previous_checkpoint_twice_leaves_no_temporary(tmp_path):
    """A save killed after prev.* was kept but before last.* was written: the next save keeps prev.* again
    (the same files) and must not leave its temporaries behind."""
    import os

    from kgalign.training.checkpoint import _keep_previous, save_checkpoint

    save_checkpoint(tmp_path, {"a": torch.ones(2)}, {"epoch": 1})
    save_checkpoint(tmp_path, {"a": torch.ones(2) * 2}, {"epoch": 2})
    _keep_previous(tmp_path, "last")  # as the killed save did
    save_checkpoint(tmp_path, {"a": torch.ones(2) * 3}, {"epoch": 3})
    assert sorted(os.listdir(tmp_path)) == ["last.json", "last.safetensors", "prev.json", "prev.safetensors"]


def test_adamw_runs_fused_and_a_checkpoint_from_the_unfused_version_resumes_fused():
    from kgalign.training.optim import Optimizers

    def make():
        torch.manual_seed(0)
        lin = torch.nn.Linear(4, 3)
        return lin, Optimizers([{"params": list(lin.parameters())}], lr=1e-2, weight_decay=1e-4, betas=(0.9, 0.999), eps=1e-8)

    lin, opt = make()
    assert all(g["fused"] for g in opt.optimizers["main"].param_groups)
    lin(torch.ones(2, 4)).sum().backward()
    opt.step(torch.amp.GradScaler("cpu", enabled=False), grad_clip=1.0)
    tensors, meta = opt.state_dict()
    for g in meta["main"]["param_groups"]:  # what the multi-tensor version wrote
        g["fused"], g["foreach"] = None, None
    lin2, opt2 = make()
    opt2.load_state_dict(tensors, meta)
    group = opt2.optimizers["main"].param_groups[0]
    assert group["fused"] is True and not group["foreach"]
    st = opt2.optimizers["main"].state[group["params"][0]]
    assert torch.equal(st["exp_avg"], opt.optimizers["main"].state[opt.optimizers["main"].param_groups[0]["params"][0]]["exp_avg"])
    lin2(torch.ones(2, 4)).sum().backward()
    opt2.step(torch.amp.GradScaler("cpu", enabled=False), grad_clip=1.0)  # steps with the loaded state
