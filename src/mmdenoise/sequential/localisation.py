"""How well gradient interest scores (Eq. 7–8) find planted points of interest.

For each held-out user of a planted sequential dataset (``data.seqsynth``):
the interest scores of the user's history window are taken for the
held-out targets, i.e. the gradient of the mean of ψ(u, i⁺) over the user's
targets (the next items; Eq. 7–8 use one target, the average keeps the
targets that noise drew from dominating). Then

- **modality**: the top-ranked modality is argmax_m Σ_t α_{t,m} over the
  window; its hit rate is the share of users for whom it is the planted
  driving modality. Chance: 1/M for a uniform guess, and the share of the most
  common driving modality for the best constant guess;
- **items**: precision@K of the K positions with the highest α_t against the
  planted points of interest in the window (K = min(k, window length));
  chance: the expected precision of K random positions, i.e. the mean share of
  points of interest in the windows.
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.seqsynth import SeqTruth
from .augment import top_ranked
from .interest import interest_scores
from .view import SequenceView


def _recommender(model: torch.nn.Module) -> torch.nn.Module:
    """The model whose encoder is read: Demure's base model, or the model itself."""
    return getattr(model, "base", model)


def interest_maps(model: torch.nn.Module, view: SequenceView, users: np.ndarray, kind: str = "grad_input",
                  batch_size: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interest scores of held-out users' history windows for their targets.

    users: int64 [n] validation/test users. Returns (history int64 [n, L],
    α_item float [n, L], α_modality float [n, L, M]; 0 at padding), M = the
    model encoder's modalities in order. The model's mode is left unchanged
    (evaluation mode is used).
    """
    model_ = _recommender(model)
    device = next(model_.parameters()).device
    begin, end = view.history_len[users], view.lengths[users]
    n_targets = end - begin
    width = int(n_targets.max()) if users.size else 0
    offsets = np.arange(width)
    target_valid = offsets[None, :] < n_targets[:, None]
    target_index = np.where(target_valid, (view.indptr[users] + begin)[:, None] + offsets[None, :], 0)
    targets = np.where(target_valid, view.items[target_index], 0)

    was_training = model.training
    model.train(False)
    histories, item_maps, modality_maps = [], [], []
    try:
        for start in range(0, users.size, batch_size):
            sl = slice(start, start + batch_size)
            history, _ = view.histories(users[sl])
            hist = torch.from_numpy(history).to(device)
            tgt = torch.from_numpy(targets[sl]).to(device)
            valid = torch.from_numpy(target_valid[sl]).to(device)
            with torch.enable_grad():
                encoded = model_.encode_history(hist, per_position=True)
                target_emb = model_.encoder(tgt)                                        # [b, T, d]
                b, t = tgt.shape
                shape = encoded.user.shape[1:]                                          # (d,) or (K, d)
                user = encoded.user.unsqueeze(1).expand(b, t, *shape).reshape(b * t, *shape)
                psi = model_.target_scores(user, target_emb.reshape(b * t, -1)).reshape(b, t)
                psi = (psi * valid).sum(1) / valid.sum(1)
                alpha_item, alpha_modality = interest_scores(psi, encoded, hist >= 0, kind, retain_graph=False)
            histories.append(history)
            item_maps.append(alpha_item.cpu().numpy())
            modality_maps.append(alpha_modality.cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(histories), np.concatenate(item_maps), np.concatenate(modality_maps)


def localisation_per_user(model: torch.nn.Module, view: SequenceView, truth: SeqTruth, split: str = "test",
                          k: int = 3, kind: str = "grad_input") -> dict[str, np.ndarray]:
    """Each held-out user's localisation outcomes (the module docstring's definitions).

    split: the held-out users to score: ``valid``, ``test`` or ``heldout`` (both). Returns ``users``
    int64 [n] (ascending), ``modality_hit`` bool [n] (the top-ranked modality is the planted driving
    one), ``driving`` int64 [n] (its index in ``truth.modalities``), ``item_precision`` float64 [n]
    (precision@min(k, window) of the highest-scored positions against the planted points of interest)
    and ``item_chance`` float64 [n] (the share of points of interest in the user's window: the expected
    precision of random positions).
    """
    if split == "heldout":
        users = np.sort(np.concatenate([view.users("valid"), view.users("test")]))
    else:
        users = view.users(split)
    history, alpha_item, alpha_modality = interest_maps(model, view, users, kind)
    encoder_modalities = list(_recommender(model).encoder.modalities)
    missing = [m for m in truth.modalities if m not in encoder_modalities]
    if missing:
        raise ValueError(f"the model has no modality {missing[0]!r}; its modalities: {encoder_modalities}")
    columns = [encoder_modalities.index(m) for m in truth.modalities]
    per_modality = alpha_modality[:, :, columns].sum(1)                                   # [n, M]
    driving = truth.driving_modality[users]

    mask = history >= 0
    keys = users[:, None] * np.int64(view.n_items) + np.where(mask, history, 0)
    poi_keys = truth.poi_keys(view.n_items)
    found = np.searchsorted(poi_keys, keys).clip(max=max(poi_keys.size - 1, 0))
    is_poi = mask & (poi_keys[found] == keys) if poi_keys.size else np.zeros_like(mask)
    length = mask.sum(1)
    top_k = np.minimum(k, length)
    chosen = top_ranked(torch.from_numpy(alpha_item), torch.from_numpy(mask), torch.from_numpy(top_k),
                        highest=True).numpy()
    return {"users": users, "modality_hit": per_modality.argmax(1) == driving, "driving": driving,
            "item_precision": (chosen & is_poi).sum(1) / np.maximum(top_k, 1),
            "item_chance": is_poi.sum(1) / np.maximum(length, 1)}


def localisation_accuracy(model: torch.nn.Module, view: SequenceView, truth: SeqTruth, split: str = "test",
                          k: int = 3, kind: str = "grad_input") -> dict[str, float]:
    """Modality hit rate and item precision@k of the interest scores, each with its chance rate.

    split: the held-out users to score: ``valid``, ``test`` or ``heldout`` (both).
    """
    return localisation_summary(localisation_per_user(model, view, truth, split, k, kind), len(truth.modalities),
                                k, kind)


def localisation_summary(found: dict[str, np.ndarray], n_modalities: int, k: int, kind: str) -> dict[str, float]:
    """The means over users of :func:`localisation_per_user`'s ``found``, with the chance rates."""
    n = found["users"].size
    share = np.bincount(found["driving"], minlength=n_modalities) / max(n, 1)
    return {"users": int(n), "interest": kind,
            "modality_hit_rate": float(found["modality_hit"].mean()),
            "modality_chance": 1.0 / n_modalities,
            "modality_majority_rate": float(share.max()),
            f"item_precision@{k}": float(found["item_precision"].mean()),
            "item_chance": float(found["item_chance"].mean())}
