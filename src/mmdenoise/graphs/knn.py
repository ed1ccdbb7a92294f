"""Item–item kNN graphs from feature matrices, built in row chunks (never an items × items matrix).

Cosine similarity of raw features, the top-k neighbours of every row (the
item itself included or not), as a sparse matrix; cached on disk
(``cache.cached_graphs``), keyed on the dataset fingerprint, the modality
and every parameter. Two backends: ``torch`` (exact, chunked matrix
products; the default) and ``faiss`` (inner product on L2-normalised rows,
exact with IndexFlatIP or approximate with HNSW; for very large catalogues,
``pip install faiss-cpu``).

The masked variant keeps, per row, the top-k among the entries a mask
allows; the mask is computed chunk by chunk from the similarities of every
modality at once. DA-MRS's denoised item–item semantic graphs (DIIG, Eq. 1)
are that variant: ``denoised_knn_graphs``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from ..data.info import mean_pairwise_cosine
from ..errors import ConfigError
from .cache import cached_graphs
from .normalize import unit_rows

DEFAULT_CHUNK_ROWS = 2048
BACKENDS = ("torch", "faiss")
FAISS_INDEXES = ("flat", "hnsw")
#: elements of one chunk of similarities of the masked top-k (all modalities together): 2^24 floats = 64 MiB
CHUNK_ELEMENTS = 1 << 24
#: (similarities of a chunk of rows [rows, I], one per modality) -> the entries each modality may keep
Mask = Callable[[list[torch.Tensor]], list[torch.Tensor]]


@torch.no_grad()
def masked_topk_cosine(units: Sequence[torch.Tensor], k: int, allowed: Mask | None = None, *,
                       include_self: bool = True,
                       chunk_rows: int = DEFAULT_CHUNK_ROWS) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Top-k neighbours of every row of each S^m = X̂_m X̂_mᵀ among the entries ``allowed`` keeps.

    units: X̂_m [I, d_m] per modality, rows of unit norm (or zero), same I,
    same device. allowed: called once per chunk with [S^m[rows]] (float32
    [rows, I] each) and returning one bool mask per modality (True = may be
    a neighbour); None allows every entry. With ``include_self`` the row
    itself is always in position 0 (value: its own cosine, 1 for a non-zero
    row, whether the mask allows it or not); otherwise it is excluded.
    Returns [(values [I, k], indices int64 [I, k])] per modality, best
    first, without gradient; a row with fewer than k allowed entries is
    padded with value -inf at arbitrary indices. Peak memory
    O(chunk_rows · I · M), never O(I²).
    """
    n = units[0].shape[0]
    out: list[tuple[list, list]] = [([], []) for _ in units]
    for start in range(0, n, chunk_rows):
        sims = [x[start:start + chunk_rows] @ x.T for x in units]
        masks = allowed(sims) if allowed is not None else [None] * len(sims)
        rows = torch.arange(sims[0].shape[0], device=sims[0].device)
        for (values, indices), s, mask in zip(out, sims, masks):
            own = s[rows, rows + start].clone()
            if mask is not None:
                s.masked_fill_(~mask, -torch.inf)
            s[rows, rows + start] = torch.inf if include_self else -torch.inf
            top = torch.topk(s, k, dim=1)
            if include_self:
                top.values[:, 0] = own  # the item itself ranks first
            values.append(top.values)
            indices.append(top.indices)
    return [(torch.cat(values), torch.cat(indices)) for values, indices in out]


def topk_cosine(normalized: torch.Tensor, k: int, *, include_self: bool = True,
                chunk_rows: int = DEFAULT_CHUNK_ROWS) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k neighbours of every row by inner product of L2-normalised rows (cosine).

    normalized: [I, d] rows of unit norm (or zero), on any device.
    Returns (values [I, k], indices int64 [I, k]) on the same device, best
    first, without gradient. With ``include_self`` the row itself is always
    in position 0 (its value is its own cosine, 1 for a non-zero row);
    otherwise it is excluded. Peak memory O(chunk_rows · I).
    """
    return masked_topk_cosine([normalized], k, include_self=include_self, chunk_rows=chunk_rows)[0]


def _faiss_topk(normalized: np.ndarray, k: int, include_self: bool, index: str,
                chunk_rows: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        import faiss
    except ImportError:
        raise ConfigError("the faiss kNN backend needs faiss: pip install faiss-cpu") from None
    n, d = normalized.shape
    if index == "flat":
        searcher = faiss.IndexFlatIP(d)
    else:
        searcher = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
    searcher.add(normalized)
    values, indices = [], []
    for start in range(0, n, chunk_rows):
        block = normalized[start:start + chunk_rows]
        sims, ids = searcher.search(block, min(k + 1, n))
        own = ids == np.arange(start, start + block.shape[0])[:, None]
        # the row itself (wherever faiss ranked it, if at all) and missing results (-1) go last
        order = np.argsort(own | (ids < 0), axis=1, kind="stable")
        sims, ids = np.take_along_axis(sims, order, 1), np.take_along_axis(ids, order, 1)
        if include_self:
            self_ids = np.arange(start, start + block.shape[0])[:, None]
            ids = np.concatenate([self_ids, ids[:, :k - 1]], axis=1)
            sims = np.concatenate([(block * block).sum(1, keepdims=True), sims[:, :k - 1]], axis=1)
        values.append(sims[:, :k])
        indices.append(ids[:, :k])
    return np.concatenate(values), np.concatenate(indices)


def knn_graph(features: np.ndarray, k: int, *, include_self: bool = True, weighted: bool = False,
              backend: str = "torch", faiss_index: str = "flat",
              chunk_rows: int = DEFAULT_CHUNK_ROWS) -> sp.csr_matrix:
    """kNN adjacency by cosine similarity: float32 CSR [I, I] with k entries per row.

    features: [I, d] (may be a memory map; read once, into one float32 copy).
    include_self: the item counts as its own nearest neighbour (FREEDOM,
        LATTICE); otherwise it is excluded before the top-k.
    weighted: entries are the cosine similarities (LATTICE's Eq. 2) instead of 1.
    backend: ``torch`` (exact) or ``faiss`` (``faiss_index`` ``flat``: exact
        inner product, same graph up to ties; ``hnsw``: approximate).
    Peak memory is O(chunk_rows · I + I · d), never O(I²).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown kNN backend {backend!r}; backends: {', '.join(BACKENDS)}")
    if faiss_index not in FAISS_INDEXES:
        raise ConfigError(f"unknown faiss index {faiss_index!r}; indexes: {', '.join(FAISS_INDEXES)}")
    n = features.shape[0]
    k = min(k, n if include_self else n - 1)
    normalized = unit_rows(features)
    if backend == "torch":
        values, indices = (t.numpy() for t in topk_cosine(normalized, k, include_self=include_self,
                                                          chunk_rows=chunk_rows))
    else:
        values, indices = _faiss_topk(normalized.numpy(), k, include_self, faiss_index, chunk_rows)
    return _topk_csr(values, indices, weighted)


def _topk_csr(values: np.ndarray, indices: np.ndarray, weighted: bool) -> sp.csr_matrix:
    """Top-k lists (values, indices [I, k]) as float32 CSR [I, I]: row i holds indices[i], slots of value
    -inf dropped; entries are the values (``weighted``) or 1."""
    n = values.shape[0]
    kept = values > -np.inf
    rows = np.broadcast_to(np.arange(n)[:, None], kept.shape)[kept]
    data = values[kept].astype(np.float32) if weighted else np.ones(rows.size, dtype=np.float32)
    return sp.csr_matrix((data, (rows, indices[kept])), shape=(n, n))


def consistency_mask(thresholds: Sequence[float]) -> Mask:
    """DA-MRS's DIIG mask (Eq. 1, steps 2–4) for ``masked_topk_cosine``, one threshold S̄^m per modality.

    Entry (i, j) is consistent if S^m_ij ≥ S̄^m and S^m_ij ≠ 0 in every
    modality m (below the mean in one modality, it is zeroed in all);
    modality m may keep a consistent entry where S^m_ij > 0.
    """
    def allowed(sims: list[torch.Tensor]) -> list[torch.Tensor]:
        consistent = torch.ones_like(sims[0], dtype=torch.bool)
        for s, threshold in zip(sims, thresholds):
            consistent &= (s >= threshold) & (s != 0)
        return [consistent & (s > 0) for s in sims]
    return allowed


def denoised_knn_graphs(features: Mapping[str, np.ndarray], k: int, *,
                        chunk_rows: int | None = None) -> dict[str, sp.csr_matrix]:
    """DA-MRS's denoised item–item semantic graphs (DIIG, §3.2.1, Eq. 1): {modality: binary float32 CSR [I, I]}.

    features: {modality: [I, d_m]} (rows may be memory maps; every modality
    has the same I). Per modality m, with S^m the cosine similarities of the
    raw features:
      1. S̄^m = Σ_ij S^m_ij / |I|², the diagonal included (exact, without S:
         ``data.info.mean_pairwise_cosine``);
      2.–3. (i, j) survives if S^m_ij ≥ S̄^m and S^m_ij ≠ 0 in every
         modality (cross-modal consistency, ``consistency_mask``) and
         S^m_ij > 0 in its own;
      4. A^m_ij = 1 for the k largest survivors of row i.
    The item itself is always kept as its own first neighbour (S_ii = 1 is
    the row maximum anyway; forcing it makes the result robust to rounding
    and makes DIIG without the mask equal to ``knn_graph(include_self=True)``,
    the ``iig`` ablation). Rows hold at most min(k, I) entries. chunk_rows:
    rows per block (default: as many as fit in ``CHUNK_ELEMENTS``
    similarities over all modalities), so memory is O(chunk · I · M).
    """
    names = list(features)
    units = [unit_rows(features[m]) for m in names]
    n = units[0].shape[0]
    # the mean of exactly the float32 matrix that is thresholded
    thresholds = [mean_pairwise_cosine(x.numpy(), include_self=True, normalized=True) for x in units]
    if chunk_rows is None:
        chunk_rows = min(n, CHUNK_ELEMENTS // max(1, n * len(names)))
    top = masked_topk_cosine(units, min(k, n), consistency_mask(thresholds), include_self=True,
                             chunk_rows=max(1, chunk_rows))
    return {m: _topk_csr(values.numpy(), indices.numpy(), weighted=False) for m, (values, indices) in zip(names, top)}


def cached_knn_graph(fingerprint: str, modality: str, features: np.ndarray, k: int, *,
                     include_self: bool = True, weighted: bool = False, backend: str = "torch",
                     faiss_index: str = "flat", cache_dir: Path | None = None) -> sp.csr_matrix:
    """``knn_graph`` with an on-disk cache keyed on the fingerprint, the modality and every parameter."""
    params = {"modality": modality, "k": k, "include_self": include_self, "weighted": weighted,
              "backend": backend, "faiss_index": faiss_index, "shape": list(features.shape)}
    graphs = cached_graphs(f"knn-{modality}", fingerprint, params, version=2, cache_dir=cache_dir,
                           build=lambda: {modality: knn_graph(features, k, include_self=include_self,
                                                              weighted=weighted, backend=backend,
                                                              faiss_index=faiss_index)})
    return graphs[modality]


def cached_denoised_knn_graphs(fingerprint: str, features: Mapping[str, np.ndarray], k: int, *,
                               cache_dir: Path | None = None) -> dict[str, sp.csr_matrix]:
    """``denoised_knn_graphs`` (DIIG, Eq. 1) with the on-disk cache, keyed on the fingerprint, the ordered
    modality names and shapes, and k."""
    names = list(features)
    params = {"modalities": names, "shapes": [list(features[m].shape) for m in names], "k": k}
    return cached_graphs("diig", fingerprint, params, lambda: denoised_knn_graphs(features, k), version=1,
                         cache_dir=cache_dir)
