"""The query-sharded evaluation (kgalign/evaluation/sharded.py): the column top-k merge, the
one-rank code path, and a real 2-process gloo run under torchrun compared with one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from support.sharded_eval import N1, cases, embeddings, run_case

from kgalign.evaluation.sharded import QueryShard, block_owners, merge_column_topk, nearest_sharded
from kgalign.evaluation.similarity import blocked_topk, csls_neighbour_means, normalise, row_blocks


def _scores(rows: int, cols: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(rows, cols, generator=g) * 3).round() / 3  # many equal values


@pytest.mark.parametrize("k", [1, 3, 7])
def test_merging_slices_column_topk_gives_the_global_column_topk(k):
    S = _scores(40, 23, seed=k)
    bounds = [0, 3, 4, 17, 30, 40]  # uneven slices, one of a single row (fewer rows than k)
    run = None
    for s, e in zip(bounds[:-1], bounds[1:], strict=True):
        run = merge_column_topk(run, torch.topk(S[s:e], min(k, e - s), dim=0).values, k)
    want = torch.topk(S, k, dim=0).values
    assert run.shape == want.shape
    assert torch.equal(run.sort(0, descending=True).values, want)


def test_replaying_the_blocks_in_order_reproduces_the_one_process_means_bit_for_bit():
    A = normalise(torch.randn(57, 16, generator=torch.Generator().manual_seed(1)))
    B = normalise(torch.randn(31, 16, generator=torch.Generator().manual_seed(2)))
    _, r_b = csls_neighbour_means(A, B, 4, block_size=6)
    run = None
    for s, e in row_blocks(57, 31, 6):
        run = merge_column_topk(run, torch.topk(A[s:e] @ B.T, min(4, e - s), dim=0, sorted=False).values, 4)
    assert torch.equal(run.mean(0), r_b)


def test_block_owners_deal_blocks_round_robin():
    blocks = list(row_blocks(10, 5, block_size=3))
    assert block_owners(blocks, 10, QueryShard(1, 2)).tolist() == [0, 0, 0, 1, 1, 1, 0, 0, 0, 1]
    with pytest.raises(ValueError, match="rank 2"):
        QueryShard(2, 2)


@pytest.mark.parametrize("case", cases(), ids=lambda c: f"{c['candidates']}-{c['links']}-b{c['block_size']}")
def test_one_rank_runs_the_sharded_code_to_the_one_process_result(case):
    one = run_case(case)
    assert run_case(case, QueryShard(0, 1)) == one
    assert 0 < one["csls"]["l2r"]["hits@1"] < 1  # neither trivial nor hopeless: ranks really differ


def test_nearest_sharded_on_one_rank_is_blocked_topk():
    E = normalise(embeddings()[0])
    A, B = E[:N1], E[N1:]
    assert torch.equal(nearest_sharded(A, B, QueryShard(), block_size=4), blocked_topk(A, B, 1)[1][:, 0])
    with pytest.raises(ValueError, match="no targets"):
        nearest_sharded(A, B[:0], QueryShard())


def test_two_gloo_processes_give_exactly_the_one_process_ranks(tmp_path, single_thread):
    """Each rank ranks its share of the rows; both must end with the one-process ranks and metrics."""
    script = Path(__file__).parent / "support" / "sharded_eval.py"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", PYTHONPATH=str(Path(__file__).parent))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc_per_node", "2"]
    p = subprocess.run([*cmd, str(script), str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    got = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert got[0] == got[1]
    for case, res in zip(cases(), got[0]["cases"], strict=True):
        assert res == json.loads(json.dumps(run_case(case))), case
    E = normalise(embeddings()[0])
    A, B = E[:N1], E[N1:]
    assert got[0]["nearest"] == [blocked_topk(A, B, 1)[1][:, 0].tolist()] * 3
    assert got[0]["nearest_back"] == blocked_topk(B, A, 1)[1][:, 0].tolist()


def test_a_mutual_nearest_neighbour_search_is_the_same_with_a_shard():
    from kgalign.training.bootstrap import mutual_nearest_neighbours

    E = normalise(embeddings()[0])
    left, right = torch.arange(N1), torch.arange(N1, E.shape[0])
    plain = mutual_nearest_neighbours(E, left, right)
    assert len(plain) > 5 and torch.equal(mutual_nearest_neighbours(E, left, right, QueryShard()), plain)
