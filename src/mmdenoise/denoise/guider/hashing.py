"""Cross-modal hashing for GUIDER's confidence S_conf (WSDM'25 Eq. 6), fitted in closed form by CCA.

hash(x) = sign(Wᵀx + b): for the codes of an item's two modalities to be
comparable, W_m must map both spaces into one space where an item's views
agree. Canonical correlation analysis gives such maps in closed form: with
centred features X [I, d_x], Y [I, d_y] and covariances C_xx, C_yy, C_xy
(ridge ε·tr(C)/d added for stability), the whitened cross-covariance
C_xx^{-1/2} C_xy C_yy^{-1/2} = U Σ Vᵀ gives W_x = C_xx^{-1/2} U_h,
W_y = C_yy^{-1/2} V_h (the h most correlated directions) and b = −W_mᵀ mean_m.
Wide modalities (d > ``reduce_to``, e.g. 4096-d image features) are first
reduced to their top ``reduce_to`` principal components by a seeded
randomised SVD (PCA-CCA), so a fit costs O(I·d·reduce_to) instead of O(d³);
the reduction is folded into W, so codes are still sign(Wᵀx + b) on the raw
features. Deterministic, once per dataset.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import torch


@dataclass
class CCAHash:
    """The fitted maps of one modality pair: codes = sign((x − mean) @ W) ∈ {−1, +1}^h."""

    mean_x: np.ndarray  # [d_x]
    w_x: np.ndarray     # [d_x, h]
    mean_y: np.ndarray  # [d_y]
    w_y: np.ndarray     # [d_y, h]

    @property
    def bits(self) -> int:
        return self.w_x.shape[1]

    def codes(self, x: np.ndarray, side: str) -> np.ndarray:
        """±1 float32 codes [n, h] of rows of ``x`` from modality ``side`` ("x" or "y")."""
        mean, w = (self.mean_x, self.w_x) if side == "x" else (self.mean_y, self.w_y)
        projected = (np.asarray(x, dtype=np.float64) - mean) @ w
        return np.where(projected >= 0, 1.0, -1.0).astype(np.float32)


def _inverse_sqrt(cov: np.ndarray, ridge: float) -> np.ndarray:
    cov = cov + ridge * np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])
    values, vectors = np.linalg.eigh(cov)
    return (vectors / np.sqrt(np.maximum(values, 1e-12))) @ vectors.T


def principal_directions(x: np.ndarray, k: int, *, power_iters: int = 2, seed: int = 0) -> np.ndarray:
    """The top-k principal directions of x [I, d] (columns of [d, k]) by a seeded randomised SVD.

    Centring is applied implicitly (X − 1μᵀ is never formed); memory O(I·k + d·k).
    """
    x = np.asarray(x, dtype=np.float32)
    mean = x.mean(0, dtype=np.float64).astype(np.float32)
    times = lambda m: x @ m - mean @ m  # (X − 1μᵀ) m  # noqa: E731
    times_t = lambda m: x.T @ m - np.outer(mean, m.sum(0))  # (X − 1μᵀ)ᵀ m  # noqa: E731
    basis = np.linalg.qr(times(np.random.default_rng(seed).normal(size=(x.shape[1], k + 10))
                               .astype(np.float32)))[0]
    for _ in range(power_iters):
        basis = np.linalg.qr(times(np.linalg.qr(times_t(basis))[0]))[0]
    _, _, vt = np.linalg.svd(times_t(basis).T, full_matrices=False)
    return vt[:k].T.astype(np.float64)


def _reduced_views(x: np.ndarray, y: np.ndarray, reduce_to: int):
    """Centred (and, when wider than ``reduce_to``, PCA-reduced) float64 views, with their maps and means."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"paired features need the same rows, got {x.shape[0]} and {y.shape[0]}")
    reduce_to = max(1, min(reduce_to, x.shape[0] // 8))  # canonical correlations overfit unless I ≫ dimensions
    centred, maps, means = [], [], []
    for view in (x, y):
        mean = np.asarray(view, dtype=np.float64).mean(0)
        reduce = (principal_directions(view, reduce_to) if view.shape[1] > reduce_to
                  else np.eye(view.shape[1]))
        centred.append((np.asarray(view, dtype=np.float64) @ reduce) - mean @ reduce)
        maps.append(reduce)
        means.append(mean)
    return centred, maps, means


def _cca(xc: np.ndarray, yc: np.ndarray, bits: int, ridge: float) -> tuple[np.ndarray, np.ndarray]:
    """The h = min(bits, d_x, d_y) most correlated canonical directions of centred xc, yc: ([d_x, h], [d_y, h])."""
    n = xc.shape[0]
    wx, wy = _inverse_sqrt(xc.T @ xc / n, ridge), _inverse_sqrt(yc.T @ yc / n, ridge)
    u, _, vt = np.linalg.svd(wx @ (xc.T @ yc / n) @ wy, full_matrices=False)
    h = min(bits, xc.shape[1], yc.shape[1])
    return wx @ u[:, :h], wy @ vt[:h].T


def fit_cca_hash(x: np.ndarray, y: np.ndarray, bits: int = 64, ridge: float = 1e-3,
                 reduce_to: int = 256) -> CCAHash:
    """CCA hash maps for paired rows x [I, d_x], y [I, d_y]; h = min(bits, d_x, d_y, reduce_to, I/8) bits."""
    (xc, yc), (rx, ry), (mean_x, mean_y) = _reduced_views(x, y, reduce_to)
    wx, wy = _cca(xc, yc, bits, ridge)
    return CCAHash(mean_x, rx @ wx, mean_y, ry @ wy)


def fit_learned_hash(x: np.ndarray, y: np.ndarray, bits: int = 64, *, steps: int = 300, lr: float = 1e-2,
                     temperature: float = 0.1, batch_size: int = 1024, ridge: float = 1e-3,
                     reduce_to: int = 256, seed: int = 0) -> CCAHash:
    """A linear cross-modal hash trained so that an item's two codes agree and other items' do not.

    The option the paper's citation (co-regularised hashing) points to: the
    CCA maps are the starting point, then W_x, W_y are trained on the relaxed
    codes c = tanh(x̃ W) with a symmetric in-batch contrastive loss (InfoNCE
    on code cosines at ``temperature``: item i's text code must be closer to
    its own image code than to the batch's others'), full-precision Adam,
    seeded. Codes are still sign(Wᵀx + b). Fits the code scale S_thres
    assumes: an item whose views tell the same story gets S_conf near 1.
    """
    (xc, yc), (rx, ry), (mean_x, mean_y) = _reduced_views(x, y, reduce_to)
    wx0, wy0 = _cca(xc, yc, bits, ridge)
    generator = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(xc).float(), torch.from_numpy(yc).float()
    wx = torch.nn.Parameter(torch.from_numpy(wx0).float())
    wy = torch.nn.Parameter(torch.from_numpy(wy0).float())
    optimizer = torch.optim.Adam([wx, wy], lr=lr)
    n = xt.shape[0]
    for _ in range(steps):
        rows = torch.randperm(n, generator=generator)[:batch_size]
        cx = torch.nn.functional.normalize(torch.tanh(xt[rows] @ wx), dim=1)
        cy = torch.nn.functional.normalize(torch.tanh(yt[rows] @ wy), dim=1)
        logits = cx @ cy.T / temperature
        target = torch.arange(rows.numel())
        loss = (torch.nn.functional.cross_entropy(logits, target)
                + torch.nn.functional.cross_entropy(logits.T, target)) / 2
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return CCAHash(mean_x, rx @ wx.detach().double().numpy(), mean_y, ry @ wy.detach().double().numpy())


HASHES = {"cca": fit_cca_hash, "learned": fit_learned_hash}
#: how a pair's code cosine becomes S_conf (``modality_confidence``)
SCALES = ("relative", "raw", "rank")


def modality_confidence(features: dict[str, np.ndarray], bits: int = 64, method: str = "cca",
                        scale: str = "relative") -> np.ndarray:
    """S_conf(i) (Eq. 6): cosine of item i's cross-modal hash codes, averaged over modality pairs.

    features: {modality: [I, d_m]}; returns float32 [I] in [−1, 1]. With a
    single modality there is nothing to cross-check and every item gets 1.
    Cosine of ±1 codes = 2·(share of agreeing bits) − 1. method: ``cca``
    (closed form) or ``learned`` (``fit_learned_hash``).

    scale: ``raw`` is Eq. 6 as written. ``relative`` (default) divides each
    pair's cosine by its mean over all items and clips to [−1, 1], so an item
    whose views agree as well as a typical item's has confidence 1 and one
    whose views disagree (a swapped image) proportionally less. The reason:
    a linear hash between real modalities agrees on only 55–80% of bits
    (raw S_conf ≤ 0.9 for every item of ml-100k and of the synthetic
    presets), so with the raw scale S = S_modal · S_conf never clears the
    paper's S_thres = 0.9 and AMSC would recover nothing. A pair whose mean
    agreement is not positive carries no evidence and gives 0.

    ``rank`` (``guider+``) replaces each pair's cosine by the item's
    percentile among all items, (average rank − ½) / I in (0, 1): ``relative``
    clips every item at least as consistent as the mean to 1 (57.6% of ml-100k's
    items), so it hardly ranks them; the percentile spreads S_conf evenly over
    (0, 1) whatever the hash's scale, ties sharing their mean rank.
    """
    if method not in HASHES:
        raise ValueError(f"hash must be one of {sorted(HASHES)}, got {method!r}")
    if scale not in SCALES:
        raise ValueError(f"confidence scale must be one of {', '.join(SCALES)}, got {scale!r}")
    names = list(features)
    n_items = next(iter(features.values())).shape[0]
    if len(names) < 2:
        return np.ones(n_items, dtype=np.float32)
    total = np.zeros(n_items, dtype=np.float64)
    pairs = list(combinations(names, 2))
    for a, b in pairs:
        fitted = HASHES[method](features[a], features[b], bits)
        cosine = (fitted.codes(features[a], "x") * fitted.codes(features[b], "y")).mean(1, dtype=np.float64)
        if scale == "relative":
            typical = cosine.mean()
            cosine = np.clip(cosine / typical, -1, 1) if typical > 0 else np.zeros_like(cosine)
        elif scale == "rank":
            from scipy.stats import rankdata  # here: importing scipy.stats costs ~0.7 s at CLI start
            cosine = (rankdata(cosine, method="average") - 0.5) / n_items
        total += cosine
    return (total / len(pairs)).astype(np.float32)
