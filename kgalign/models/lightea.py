"""LightEA-style training-free alignment: random seed labels propagated over the graph (docs/models/lightea.md).

No parameters are trained. :meth:`LightEA.fit` computes the embeddings from the training links in
one pass per round; later rounds add confident mutual pairs (sparse Sinkhorn over top-k candidates
of the entities without a link) as new seeds. Everything is sparse-dense products and chunked
gathers, so memory is ``O(n * (ent_dim + rel_dim * mini_dim + views))`` plus the graph.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from kgalign.models.base import AlignmentModel, ModelOutput, modality_order
from kgalign.models.inputs import ModelInputs

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_CHUNK_ELEMS = 1 << 24  # elements of one chunk of per-triple messages (64 MiB in float32)


def csr(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple[int, int]) -> Tensor:
    """float32 torch sparse CSR tensor; repeated (row, col) entries are summed (by scipy, which builds it)."""
    import scipy.sparse as sp

    a = sp.csr_array((vals.astype(np.float32), (rows, cols)), shape=shape)
    a.sum_duplicates()
    crow, col = (torch.from_numpy(v.astype(np.int64)) for v in (a.indptr, a.indices))
    with warnings.catch_warnings():  # torch's one-time "sparse CSR support is in beta" notice, not the user's concern
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, torch.from_numpy(a.data), shape)


def spmm(a: Tensor, x: Tensor) -> Tensor:
    """(r, c) sparse CSR @ (c, d) dense -> (r, d) float32.

    torch's CSR product, not scipy's: at 100k entities per side (2.2M non-zeros x 512 columns) it was
    2.1x faster on the 2 contended cores (3.7 s vs 7.7 s; scipy's product is single-threaded) and as
    fast at low load (1.02 s vs 0.98 s). scipy won at 10k, where a product takes well under a second.
    """
    return torch.sparse.mm(a, x.float())


def gaussian(rows: int, cols: int, gen: torch.Generator) -> Tensor:
    """(rows, cols) random matrix with unit-norm columns: a Johnson-Lindenstrauss projection."""
    return F.normalize(torch.randn(rows, cols, generator=gen), dim=0)


class Graph:
    """The sparse operators of the propagation, built once from the relation triples.

    Every triple (h, r, t) is used in both directions: (h, 2r, t) and its inverse (t, 2r+1, h).
    Attributes:
        adj: (n, n) CSR, entity-entity counts of triples between two entities, degree on the diagonal.
        rel_from_head: (2R, n) CSR, 1 where the relation has the entity as head.
        ent_from_rel: (n, 2R) CSR, 1 where the entity is the tail of the relation.
        head, rel, tail: LongTensor (T,), the unique directed triples sorted by head.
    """

    def __init__(self, triples: Tensor, num_entities: int):
        tri = triples.cpu().numpy().astype(np.int64).reshape(-1, 3)
        h, r, t = tri[:, 0], tri[:, 1], tri[:, 2]
        directed = np.stack([np.concatenate([h, t]), np.concatenate([2 * r, 2 * r + 1]), np.concatenate([t, h])], 1)
        directed = np.unique(directed, axis=0) if len(directed) else directed.reshape(0, 3)
        n = num_entities
        self.num_relations = 2 * (int(r.max(initial=-1)) + 1)
        dh, dr, dt = directed[:, 0], directed[:, 1], directed[:, 2]
        deg = np.bincount(dh, minlength=n) + np.bincount(dt, minlength=n)
        diag = np.arange(n)
        self.adj = csr(np.concatenate([dh, diag]), np.concatenate([dt, diag]), np.concatenate([np.ones(len(dh)), deg]), (n, n))
        R = max(self.num_relations, 1)
        hr = np.unique(np.stack([dr, dh], 1), axis=0) if len(dh) else np.zeros((0, 2), np.int64)
        tr = np.unique(np.stack([dt, dr], 1), axis=0) if len(dh) else np.zeros((0, 2), np.int64)
        self.rel_from_head = csr(hr[:, 0], hr[:, 1], np.ones(len(hr)), (R, n))
        self.ent_from_rel = csr(tr[:, 0], tr[:, 1], np.ones(len(tr)), (n, R))
        self.head, self.rel, self.tail = (torch.from_numpy(np.ascontiguousarray(c)) for c in (dh, dr, dt))


class LightEA(AlignmentModel):
    """Training-free aligner (LightEA, Mao et al., Findings of EMNLP 2022), written for kgalign.

    Options:
        ent_dim: width of the random seed labels (near-orthogonal in high dimension).
        rel_dim, mini_dim: relation-specific view = ``rel_dim`` relation channels x ``mini_dim``
            random projections of the entity labels; its width is ``rel_dim * mini_dim``.
        entity_dim: width of the entity view, a random projection of the propagated labels of rounds
            1..rounds (0: no entity view, as the reference, whose output is the relation-specific view only).
        rounds: propagation depth (hops).
        iterations: bootstrapping rounds after the first (0: seeds only).
        threshold: a mutual pair becomes a seed when its Sinkhorn score exceeds this.
        top_k: candidates per entity for the Sinkhorn normalisation.
        search_dim: the candidate search runs on a random projection of the embeddings to this width.
        sinkhorn_steps, sinkhorn_tau: alternating row/column normalisations of ``exp(sim / tau)``.
        features: append the loaded feature modalities (names, attributes, images, ...) as views.
        feature_dim: feature views wider than this are randomly projected to it.
        feature_weight: scale of the feature views' weights; view m gets ``feature_weight`` times its
            chance-corrected Hits@1 on (a sample of) the seed pairs (:func:`seed_accuracy`): views
            that do not align (renamed vocabularies) get about 0. The structural view has weight 1.
        dtype: storage of the kept embeddings: float32, float16 or bfloat16 (products run in float32).
        block_size: query rows per block of the candidate search.
    Shapes:
        fit(links (B, 2)) yields per round; then forward() -> {"graph": (n, rel_dim*mini_dim),
        <modality>: (n, d_m), "joint": (n, D)}.
    """

    trainable = False

    def __init__(
        self,
        inputs: ModelInputs,
        ent_dim: int = 512,
        rel_dim: int = 32,
        mini_dim: int = 8,
        entity_dim: int = 256,
        rounds: int = 2,
        iterations: int = 1,
        threshold: float = 0.9,
        top_k: int = 20,
        search_dim: int = 256,
        sinkhorn_steps: int = 15,
        sinkhorn_tau: float = 0.02,
        features: bool = True,
        feature_dim: int = 128,
        feature_weight: float = 1.0,
        dtype: str = "float32",
        block_size: int = 4096,
    ):
        super().__init__(inputs)
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if inputs.kg is None:
            raise ValueError("the inputs carry no KG membership (inputs.kg)")
        self.ent_dim, self.rel_dim, self.mini_dim, self.rounds = ent_dim, rel_dim, mini_dim, rounds
        self.entity_dim = entity_dim
        self.iterations, self.threshold, self.top_k, self.search_dim = iterations, threshold, top_k, search_dim
        self.sinkhorn_steps, self.sinkhorn_tau = sinkhorn_steps, sinkhorn_tau
        self.use_features, self.feature_dim, self.feature_weight = features, feature_dim, feature_weight
        self.dtype = DTYPES[dtype]
        self.block_size = block_size
        self.num_entities = inputs.num_entities
        self.kg = inputs.kg.cpu()
        self.graph = Graph(inputs.rel_triples, inputs.num_entities)
        self.names = modality_order(inputs.features) if features else ["graph"]
        # the seed of every random draw, from the global RNG (seeded by the run's seed): deterministic runs
        self.register_buffer("seed", torch.randint(0, 2**62, (1,)))
        self.views: dict[str, Tensor] = {}
        self.view_weights: dict[str, float] = {}
        self.device_ = inputs.edge_index.device

    def reset_parameters(self) -> None:
        self.seed.copy_(torch.randint(0, 2**62, (1,)))
        self.views, self.view_weights = {}, {}

    def generator(self, salt: int) -> torch.Generator:
        return torch.Generator().manual_seed(int(self.seed) + salt)

    # ------------------------------------------------------------ views
    def labels(self, links: Tensor, gen: torch.Generator) -> Tensor:
        """(n, ent_dim): one random unit vector per seed pair, on both of its entities; zero elsewhere."""
        lab = torch.zeros(self.num_entities, self.ent_dim)
        vec = F.normalize(torch.randn(len(links), self.ent_dim, generator=gen), dim=1)
        lab.index_add_(0, links[:, 0].cpu(), vec)
        lab.index_add_(0, links[:, 1].cpu(), vec)
        return F.normalize(lab, dim=1)

    def structure(self, links: Tensor, gen: torch.Generator) -> Tensor:
        """(n, rel_dim * mini_dim + entity_dim): relation-specific view | entity view, each L2-normalised, row norm 1."""
        g = self.graph
        ent = self.labels(links, gen)
        width = self.rel_dim * self.mini_dim
        # Y = [E_0 | ... | E_rounds] @ G accumulated round by round: the rounds are never stacked
        y = ent @ gaussian(self.ent_dim, width, gen)
        count = (ent.abs().sum(1) > 0).float()
        z = torch.zeros(self.num_entities, self.entity_dim)  # the entity view: [E_1 | ... | E_rounds] @ G'

        rel = torch.zeros(max(g.num_relations, 1), self.ent_dim)
        rels = [rel]
        for _ in range(self.rounds):
            new_rel = F.normalize(spmm(g.rel_from_head, ent), dim=1)
            new = spmm(g.adj, ent)
            new.addmm_(g.ent_from_rel, rel)  # accumulate in place: no (n, d) temporary
            ent = new.div_(new.norm(dim=1, keepdim=True).clamp_(min=1e-12))  # in place: one n x d buffer less
            rel = new_rel
            rels.append(rel)
            y.addmm_(ent, gaussian(self.ent_dim, width, gen))  # no (n, width) temporary per round
            count += (ent.abs().sum(1) > 0).float()
            if self.entity_dim:
                z.addmm_(ent, gaussian(self.ent_dim, self.entity_dim, gen))
        del ent
        y /= count.clamp(min=1).sqrt()[:, None]  # as if the rounds' concatenation had been normalised first
        rel_all = F.normalize(torch.cat(rels, 1), dim=1)
        rel_feat = rel_all @ gaussian(rel_all.shape[1], self.rel_dim, gen)  # (2R, rel_dim)
        # one (n, width + entity_dim) buffer, normalised and scaled in place: no concatenated or normalised copies
        out = torch.empty(self.num_entities, width + self.entity_dim)
        rs = self._relation_messages(y, rel_feat, out[:, :width])
        del y
        rs.div_(rs.norm(dim=1, keepdim=True).clamp_(min=1e-12))
        if self.entity_dim:
            zs = out[:, width:].copy_(z)
            del z
            zs.div_(zs.norm(dim=1, keepdim=True).clamp_(min=1e-12))
            out.mul_(1 / math.sqrt(2))
        return out

    def _relation_messages(self, y: Tensor, rel_feat: Tensor, out: Tensor) -> Tensor:
        """out[h, c, :] = sum over triples (h, r, t) of rel_feat[r, c] * y[t, c, :], in chunks of triples; out (n, rd*md) is overwritten."""
        g = self.graph
        rd, md = self.rel_dim, self.mini_dim
        out.zero_()
        chunk = max(1, _CHUNK_ELEMS // (rd * md))
        for s in range(0, len(g.head), chunk):
            h, r, t = g.head[s : s + chunk], g.rel[s : s + chunk], g.tail[s : s + chunk]
            msg = rel_feat[r].unsqueeze(2) * y[t].view(-1, rd, md)
            out.index_add_(0, h, msg.view(-1, rd * md))
        return out

    def feature_views(self, gen: torch.Generator) -> dict[str, Tensor]:
        """``{modality: (n, <= feature_dim)}``: each stored feature, randomly projected when wider, rows normalised."""
        out = {}
        for m in self.names[1:]:
            x = self.features()[m].float().cpu()
            if x.shape[1] > self.feature_dim:
                x = x @ gaussian(x.shape[1], self.feature_dim, gen)
            x = F.normalize(x, dim=1) * self.masks()[m].cpu().float()[:, None]
            out[m] = x
        return out

    # ------------------------------------------------------------ fit
    @torch.no_grad()
    def fit(self, links: Tensor, excluded: Tensor | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Compute the views from the seed ``links`` (B, 2); one round per ``next()``.

        Yields ``(links (B', 2), source (B',))`` after each round: the links the round used, with
        source 0 for seeds and ``i`` for pairs bootstrapped before round ``i``. :meth:`embed` then gives
        that round's embeddings. ``excluded`` (E, 2): known non-matches, never added.
        """
        links = torch.as_tensor(links, dtype=torch.long).cpu().reshape(-1, 2)
        source = torch.zeros(len(links), dtype=torch.long)
        feats = self.feature_views(self.generator(1)) if self.use_features else {}
        self.view_weights = {m: self.feature_weight * seed_accuracy(x, links, self.generator(2)) for m, x in feats.items()}
        for it in range(self.iterations + 1):
            self.views = {}  # the previous round's views go before the next propagation (peak memory)
            views = {"graph": self.structure(links, self.generator(100 + it)), **feats}
            self.views = {k: v.to(self.dtype) for k, v in views.items()}
            yield links.numpy().copy(), source.numpy().copy()
            if it == self.iterations:
                break
            new = self.propose(self.joint(), links, excluded)
            if len(new) == 0:
                break
            links = torch.cat([links, new])
            source = torch.cat([source, torch.full((len(new),), it + 1, dtype=torch.long)])

    def joint(self) -> Tensor:
        """(n, D) concatenation of the views: structure weight 1, feature view m ``view_weights[m]``."""
        # a view with weight 0 adds nothing to any similarity: left out, which keeps D (and memory) small
        parts = [("graph", 1.0)] + [(m, self.view_weights[m]) for m in self.names[1:] if self.view_weights.get(m, 0.0) > 0]
        out = torch.empty(self.num_entities, sum(self.views[m].shape[1] for m, _ in parts))  # one buffer, filled in place
        start = 0
        for m, w in parts:
            block = out[:, start : start + self.views[m].shape[1]]
            block.copy_(self.views[m])
            if w != 1.0:
                block.mul_(w)
            start += block.shape[1]
        return out

    def propose(self, emb: Tensor, links: Tensor, excluded: Tensor | None) -> Tensor:
        """(k, 2) new pairs among the entities without a link: mutual best under sparse Sinkhorn, score > threshold.

        Candidates: each unlinked entity's ``top_k`` unlinked entities of the other graph, both ways,
        searched on a random projection of the embeddings to ``search_dim`` (cost 2 |left| |right|
        search_dim) and rescored with the full embeddings.
        """
        emb = F.normalize(emb, dim=1)
        linked = torch.zeros(self.num_entities, dtype=torch.bool)
        linked[links.reshape(-1)] = True
        left = torch.nonzero((self.kg == 1) & ~linked).flatten()
        right = torch.nonzero((self.kg == 2) & ~linked).flatten()
        if len(left) == 0 or len(right) == 0:
            return torch.zeros((0, 2), dtype=torch.long)
        low = emb if emb.shape[1] <= self.search_dim else emb @ gaussian(emb.shape[1], self.search_dim, self.generator(3))
        rows, cols = [], []
        for qs, cs, flip in ((left, right, False), (right, left, True)):
            k = min(self.top_k, len(cs))
            target = low[cs].T.contiguous()
            for s in range(0, len(qs), self.block_size):
                q = qs[s : s + self.block_size]
                a, b = q.repeat_interleave(k), cs[(low[q] @ target).topk(k, dim=1).indices.flatten()]
                rows.append(b if flip else a)
                cols.append(a if flip else b)
        key = np.unique((torch.cat(rows) * self.num_entities + torch.cat(cols)).numpy())
        i, j = torch.from_numpy(key // self.num_entities), torch.from_numpy(key % self.num_entities)
        if excluded is not None and len(excluded):
            bad = np.isin((i * self.num_entities + j).numpy(), (excluded[:, 0].long() * self.num_entities + excluded[:, 1].long()).numpy())
            keep = torch.from_numpy(~bad)
            i, j = i[keep], j[keep]
        step = max(1, _CHUNK_ELEMS // emb.shape[1])  # rescoring in chunks: m pairs x D at once would be GBs
        sim = torch.cat([(emb[i[s : s + step]] * emb[j[s : s + step]]).sum(1) for s in range(0, len(i), step)])
        p = sparse_sinkhorn(i, j, sim, self.num_entities, self.sinkhorn_steps, self.sinkhorn_tau)
        return mutual_above(i, j, p, self.num_entities, self.threshold)

    # ------------------------------------------------------------ the contract
    def forward(self) -> ModelOutput:
        if not self.views:
            raise RuntimeError("LightEA is training-free: call fit(links) before forward()/embed()")
        out = ModelOutput({m: self.views[m].float() for m in self.names})
        out["joint"] = self.joint()
        return out

    @torch.no_grad()
    def embed(self) -> Tensor:
        """(n, D) L2-normalised joint embeddings: one (n, D) float32 buffer (``forward`` would also copy every view)."""
        if not self.views:
            raise RuntimeError("LightEA is training-free: call fit(links) before forward()/embed()")
        joint = self.joint()
        return joint.div_(joint.norm(dim=1, keepdim=True).clamp_(min=1e-12))

    def loss(self, out: ModelOutput, links: Tensor) -> tuple[Tensor, dict[str, float]]:
        raise RuntimeError("LightEA is training-free: it has no loss (the trainer calls fit instead of the training loop)")


def seed_accuracy(x: Tensor, links: Tensor, gen: torch.Generator, sample: int = 4096) -> float:
    """Chance-corrected Hits@1 of view ``x`` (n, d), rows unit or zero, on up to ``sample`` seed pairs.

    Each sampled KG1 end is ranked against the sampled KG2 ends (ties pessimistic); returns
    ``max(0, (h1 - 1/m) / (1 - 1/m))`` for m sampled pairs, 0 when fewer than 2 pairs.
    """
    if len(links) > sample:
        links = links[torch.randperm(len(links), generator=gen)[:sample]]
    m = len(links)
    if m < 2:
        return 0.0
    sims = x[links[:, 0]] @ x[links[:, 1]].T
    hit = (sims >= sims.diagonal()[:, None]).sum(1) == 1
    hit &= x[links[:, 0]].abs().sum(1) > 0
    h1 = float(hit.double().mean())
    return max(0.0, (h1 - 1 / m) / (1 - 1 / m))


def sparse_sinkhorn(i: Tensor, j: Tensor, sim: Tensor, n: int, steps: int, tau: float) -> Tensor:
    """Sinkhorn on the sparse matrix ``exp(sim / tau)`` at (i, j): alternately rows then columns sum to 1.

    i, j: LongTensor (m,) row/column ids (< n); sim: (m,) cosine similarities. Returns (m,) scores.
    """
    p = torch.exp((sim.double() - sim.max().double()) / tau)  # shifted: exp would overflow at tau 0.02
    for _ in range(steps):
        p = p / torch.zeros(n, dtype=p.dtype).index_add_(0, i, p)[i]
        p = p / torch.zeros(n, dtype=p.dtype).index_add_(0, j, p)[j]
    return p.float()


def mutual_above(i: Tensor, j: Tensor, p: Tensor, n: int, threshold: float) -> Tensor:
    """(k, 2) pairs (i, j) whose score is the maximum of both its row and its column and exceeds ``threshold``."""
    row_max = torch.full((n,), -math.inf).scatter_reduce(0, i, p, "amax")
    col_max = torch.full((n,), -math.inf).scatter_reduce(0, j, p, "amax")
    keep = (p >= row_max[i]) & (p >= col_max[j]) & (p > threshold)
    pairs = torch.stack([i[keep], j[keep]], 1)
    # ties could give a row two winners: keep the first per row and per column
    _, first_row = np.unique(pairs[:, 0].numpy(), return_index=True)
    pairs = pairs[torch.from_numpy(np.sort(first_row))]
    _, first_col = np.unique(pairs[:, 1].numpy(), return_index=True)
    return pairs[torch.from_numpy(np.sort(first_col))]
