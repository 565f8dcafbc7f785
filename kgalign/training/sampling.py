"""Neighbour sampling for mini-batch training: the subgraph a batch of links needs.

For a batch of links, the seeds are the links' entities; hop ``h`` (1..L) takes, for
every node of the previous frontier, at most ``fanout[h-1]`` of its neighbours
(uniformly without replacement; all of them when it has no more, or when the
fan-out is -1) and adds the edges neighbour -> node. With ``L`` = the GAT's layer count
every seed's output depends only on sampled nodes, so with fan-outs that cover
every neighbour the seeds' embeddings equal the full-graph ones (the subgraph holds
every incoming edge of every node within ``L - 1`` hops). This is what
torch_geometric's ``NeighborLoader`` does (directed sampled edges); it is written here
with NumPy because the CPU path needs no compiled extension
(benchmarks/scale_minibatch.py measures it).

Memory per batch: O(B * prod(fanout)) nodes and edges, plus one int64 array of n
(the global -> local map, reused).
"""

from __future__ import annotations

import numpy as np
import torch

from kgalign.models.subgraph import Subgraph


class Adjacency:
    """The undirected entity graph as CSR: ``indices[indptr[v]:indptr[v+1]]`` are v's neighbours.

    Args:
        edge_index: (2, E) int array/tensor with both directions of every edge (as
            ``ModelInputs.edge_index``); messages flow ``edge_index[0] -> edge_index[1]``, so a
            node's incoming neighbours are the sources of the edges whose target it is.
        num_nodes: n.
    """

    def __init__(self, edge_index, num_nodes: int):
        ei = edge_index.numpy() if isinstance(edge_index, torch.Tensor) else np.asarray(edge_index)
        src, dst = ei[0].astype(np.int64), ei[1].astype(np.int64)
        order = np.argsort(dst * num_nodes + src, kind="stable")
        self.indices = src[order]
        self.indptr = np.zeros(num_nodes + 1, dtype=np.int64)
        np.cumsum(np.bincount(dst, minlength=num_nodes), out=self.indptr[1:])
        self.num_nodes = num_nodes
        self._local = np.full(num_nodes, -1, dtype=np.int64)  # global -> local, reset after each batch

    def degree(self, nodes: np.ndarray) -> np.ndarray:
        return self.indptr[nodes + 1] - self.indptr[nodes]

    def in_edges(self, nodes: np.ndarray, fanout: int, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
        """(sources, targets) of at most ``fanout`` incoming edges per node (-1 or None rng with -1: all)."""
        start, deg = self.indptr[nodes], self.degree(nodes)
        take = deg if fanout < 0 else np.minimum(deg, fanout)
        full = take == deg
        # every edge of the nodes that keep all of theirs
        f_start, f_deg = start[full], deg[full]
        tgt_full = np.repeat(nodes[full], f_deg)
        pos_full = _ranges(f_start, f_deg)
        if full.all():
            return self.indices[pos_full], tgt_full
        # the others: k of d without replacement (random keys, the k smallest per node)
        p_nodes, p_start, p_deg = nodes[~full], start[~full], deg[~full]
        seg = np.repeat(np.arange(len(p_nodes)), p_deg)
        keys = rng.random(len(seg))
        order = np.lexsort((keys, seg))
        offset = np.arange(len(seg)) - np.repeat(np.cumsum(p_deg) - p_deg, p_deg)
        chosen = order[offset < fanout]  # positions, within the concatenated ranges, of the kept edges
        pos_part = _ranges(p_start, p_deg)[chosen]
        src = np.concatenate([self.indices[pos_full], self.indices[pos_part]])
        tgt = np.concatenate([tgt_full, p_nodes[seg[chosen]]])
        return src, tgt

    def sample(self, seeds: np.ndarray, fanouts: list[int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Nodes (global ids, ``seeds`` first in the given order) and local (2, E) edges of the sampled subgraph.

        ``seeds`` must be unique.
        """
        local = self._local
        nodes = [np.asarray(seeds, dtype=np.int64)]
        local[nodes[0]] = np.arange(len(nodes[0]))
        count = len(nodes[0])
        frontier = nodes[0]
        srcs, dsts = [], []
        try:
            for fanout in fanouts:
                if len(frontier) == 0:
                    break
                src, dst = self.in_edges(frontier, fanout, rng)
                new = np.unique(src[local[src] < 0])
                local[new] = np.arange(count, count + len(new))
                count += len(new)
                nodes.append(new)
                srcs.append(local[src])
                dsts.append(local[dst])
                frontier = new
            all_nodes = np.concatenate(nodes)
        finally:
            for part in nodes:
                local[part] = -1
        edges = np.stack([np.concatenate(srcs), np.concatenate(dsts)]) if srcs else np.zeros((2, 0), dtype=np.int64)
        return all_nodes, edges


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """concat(arange(s, s + l) for s, l in zip(starts, lengths)), vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return np.arange(total, dtype=np.int64) + shift


class FeatureSource:
    """The feature rows outside the model: dense arrays (also memory-mapped or float16) or
    ``scipy.sparse`` CSR matrices, gathered per batch.

    Args:
        features: ``{modality: (n, d) ndarray | csr_array | Tensor}``.
        masks: ``{modality: (n,) bool}``.
    """

    def __init__(self, features: dict, masks: dict):
        self.features = {m: f.numpy() if isinstance(f, torch.Tensor) else f for m, f in features.items()}
        self.masks = {m: np.asarray(k.numpy() if isinstance(k, torch.Tensor) else k, dtype=bool) for m, k in masks.items()}

    @property
    def dims(self) -> dict[str, int]:
        return {m: int(f.shape[1]) for m, f in self.features.items()}

    def gather(self, rows: np.ndarray) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """float32 (k, d) feature rows and bool (k,) masks of the global ids ``rows``."""
        feats, masks = {}, {}
        for m, f in self.features.items():
            part = f[rows]
            if hasattr(part, "toarray"):  # scipy.sparse rows
                part = part.toarray()
            feats[m] = torch.from_numpy(np.ascontiguousarray(part, dtype=np.float32))
            masks[m] = torch.from_numpy(self.masks[m][rows])
        return feats, masks


def batch_subgraph(
    adjacency: Adjacency,
    source: FeatureSource,
    links: np.ndarray,
    fanouts: list[int],
    rng: np.random.Generator,
    seed_features: bool = False,
) -> Subgraph:
    """The :class:`Subgraph` of a batch of links (B, 2) global ids: seeds = the links' entities
    (unique, in order of first appearance; ``sub.seeds`` of them, local ids ``0..seeds-1``),
    ``fanouts`` per hop, and the links in local ids.

    ``seed_features``: gather feature rows and masks for the seeds alone (``(seeds, d)``), for a
    step that runs the per-row modules on the seeds only (the GAT reads the entity table, not
    features); False: for every node (``(k, d)``).
    """
    flat = np.asarray(links, dtype=np.int64).reshape(-1)
    uniq, first = np.unique(flat, return_index=True)
    order = np.argsort(first, kind="stable")
    seeds = uniq[order]
    nodes, edges = adjacency.sample(seeds, fanouts, rng)
    # a link entity's local id is its position in ``seeds`` (= ``uniq`` position mapped through ``order``)
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[order] = np.arange(len(uniq))
    link_local = rank[np.searchsorted(uniq, flat)].reshape(-1, 2)
    feats, masks = source.gather(seeds if seed_features else nodes)
    return Subgraph(torch.from_numpy(nodes), torch.from_numpy(edges), feats, masks, torch.from_numpy(link_local), seeds=len(seeds))
