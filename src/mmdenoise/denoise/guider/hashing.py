"""Cross-modal hashing for GUIDER's confidence S_conf (WSDM'25 Eq. 6), fitted in closed form by CCA.

hash(x) = sign(Wᵀx + b): for the codes of an item's two modalities to be
comparable, W_m must map both spaces into one space where an item's views
agree. Canonical correlation analysis gives such maps in closed form: with
centred features X [I, d_x], Y [I, d_y] and covariances C_xx, C_yy, C_xy
(ridge ε·tr(C)/d added for stability), the whitened cross-covariance
C_xx^{-1/2} C_xy C_yy^{-1/2} = U Σ Vᵀ gives W_x = C_xx^{-1/2} U_h,
W_y = C_yy^{-1/2} V_h (the h most correlated directions) and b = −W_mᵀ mean_m.
Deterministic, and O(I·d² + d³) once per dataset.
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


def fit_cca_hash(x: np.ndarray, y: np.ndarray, bits: int = 64, ridge: float = 1e-3) -> CCAHash:
    """CCA hash maps for paired rows x [I, d_x], y [I, d_y]; h = min(bits, d_x, d_y) bits."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"paired features need the same rows, got {x.shape[0]} and {y.shape[0]}")
    mean_x, mean_y = x.mean(0), y.mean(0)
    xc, yc = x - mean_x, y - mean_y
    n = x.shape[0]
    wx, wy = _inverse_sqrt(xc.T @ xc / n, ridge), _inverse_sqrt(yc.T @ yc / n, ridge)
    u, _, vt = np.linalg.svd(wx @ (xc.T @ yc / n) @ wy, full_matrices=False)
    h = min(bits, x.shape[1], y.shape[1])
    return CCAHash(mean_x, wx @ u[:, :h], mean_y, wy @ vt[:h].T)


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
