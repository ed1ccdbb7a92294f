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


def fit_cca_hash(x: np.ndarray, y: np.ndarray, bits: int = 64, ridge: float = 1e-3,
                 reduce_to: int = 256) -> CCAHash:
    """CCA hash maps for paired rows x [I, d_x], y [I, d_y]; h = min(bits, d_x, d_y, reduce_to, I/8) bits."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"paired features need the same rows, got {x.shape[0]} and {y.shape[0]}")
    n = x.shape[0]
    reduce_to = max(1, min(reduce_to, n // 8))  # canonical correlations overfit unless I ≫ dimensions
    maps, centred, means = [], [], []
    for view in (x, y):
        mean = np.asarray(view, dtype=np.float64).mean(0)
        reduce = (principal_directions(view, reduce_to) if view.shape[1] > reduce_to
                  else np.eye(view.shape[1]))
        centred.append((np.asarray(view, dtype=np.float64) @ reduce) - mean @ reduce)
        maps.append(reduce)
        means.append(mean)
    (xc, yc), (rx, ry) = centred, maps
    wx, wy = _inverse_sqrt(xc.T @ xc / n, ridge), _inverse_sqrt(yc.T @ yc / n, ridge)
    u, _, vt = np.linalg.svd(wx @ (xc.T @ yc / n) @ wy, full_matrices=False)
    h = min(bits, xc.shape[1], yc.shape[1])
    return CCAHash(means[0], rx @ wx @ u[:, :h], means[1], ry @ wy @ vt[:h].T)


def modality_confidence(features: dict[str, np.ndarray], bits: int = 64) -> np.ndarray:
    """S_conf(i) (Eq. 6): cosine of item i's cross-modal hash codes, averaged over modality pairs.

    features: {modality: [I, d_m]}; returns float32 [I] in [−1, 1]. With a
    single modality there is nothing to cross-check and every item gets 1.
    Cosine of ±1 codes = 2·(share of agreeing bits) − 1.
    """
    names = list(features)
    n_items = next(iter(features.values())).shape[0]
    if len(names) < 2:
        return np.ones(n_items, dtype=np.float32)
    total = np.zeros(n_items, dtype=np.float64)
    pairs = list(combinations(names, 2))
    for a, b in pairs:
        fitted = fit_cca_hash(features[a], features[b], bits)
        total += (fitted.codes(features[a], "x") * fitted.codes(features[b], "y")).mean(1)
    return (total / len(pairs)).astype(np.float32)


def normalized_features(features: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Row-L2-normalised float32 copies {modality: [I, d_m]}, for cosines by dot product (Eq. 5)."""
    return {m: torch.nn.functional.normalize(torch.from_numpy(np.array(x, dtype=np.float32)), dim=1)
            for m, x in features.items()}
