"""Point-of-interest localisation by gradients (paper §3.4, Eq. 7–8).

The interest score of history item t is the global average over feature
dimensions of the gradient of the target's pre-softmax score ψ(u, i⁺) with
respect to the item activation i_t (Eq. 7); the interest score of modality m
of item t is the same with respect to the modality activation i^m_t (Eq. 8).

Choice where the paper is loose: with signed activations the average of a
gradient's components has no fixed sign: it ranks a sequence's items by the
magnitude of their attention times the sign of one user-wide constant, so a
user's ranking can come out reversed. ``kind="grad_input"`` weighs each
gradient component by its activation before averaging (Grad-CAM's weighting
of activations by gradients, i.e. gradient × input: the first-order
contribution of the activation to ψ), whose sign means "raises the target's
score". ``"grad"`` is Eq. 7–8 as printed. Both are detached.

Two ways to the same numbers. With per-position modality activations in the
graph (``Encoded.modality_act``), autograd gives both gradients directly.
When items were encoded once per distinct item (the fast path), ψ reaches
i^m_t only through i_t = Agg(i^1_t..i^M_t), so ∂ψ/∂i^m_t = J_tᵀ ∂ψ/∂i_t with J_t
the modality encoder's Jacobian at item t's modalities; the average over k is
then a dot product of ∂ψ/∂i_t with J_t τ_m (τ_m = 1/d, or i^m_t/d for
``grad_input``, on the block of modality m and 0 elsewhere), and the M
Jacobian-vector products J τ_m are taken once per distinct item (by double
reverse mode).
"""
from __future__ import annotations

import torch

from .encoders import ModalityEncoder
from .models import Encoded

INTEREST_KINDS = ("grad", "grad_input")


def interest_scores(score: torch.Tensor, encoded: Encoded, mask: torch.Tensor, kind: str = "grad",
                    retain_graph: bool = True, items: torch.Tensor | None = None,
                    encoder: ModalityEncoder | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Item- and modality-level interest scores of every history position.

    score: [B], ψ(u_b, i⁺_b) computed from ``encoded`` (rows independent).
    encoded: the pass that produced ``score`` (item_act [B, L, d]; modality_act
        [B, L, M, d], or None on the distinct-item path, which then needs
        ``items`` int64 [B, L] (PAD = −1) and the ``encoder``).
    mask: bool [B, L], True at real positions.
    Returns (α_item [B, L], α_modality [B, L, M]), detached, 0 at padding.
    ``retain_graph`` keeps the graph for a loss computed on the same pass.
    """
    if kind not in INTEREST_KINDS:
        raise ValueError(f"interest kind must be one of {INTEREST_KINDS}, got {kind!r}")
    if encoded.modality_act is None:
        if items is None or encoder is None:
            raise ValueError("without per-position modality activations, pass the items and the encoder")
        grad_item, = torch.autograd.grad(score.sum(), encoded.item_act, retain_graph=retain_graph)
        alpha_modality = _modality_scores(grad_item, items, encoder, kind)
    else:
        grad_item, grad_modality = torch.autograd.grad(score.sum(), (encoded.item_act, encoded.modality_act),
                                                       retain_graph=retain_graph)
        if kind == "grad_input":
            grad_modality = grad_modality * encoded.modality_act.detach()
        alpha_modality = grad_modality.mean(-1)                                          # Eq. 8
    if kind == "grad_input":
        grad_item = grad_item * encoded.item_act.detach()
    alpha_item = grad_item.mean(-1) * mask                                                # Eq. 7
    return alpha_item.detach(), (alpha_modality * mask.unsqueeze(-1)).detach()


def _modality_scores(grad_item: torch.Tensor, items: torch.Tensor, encoder: ModalityEncoder,
                     kind: str) -> torch.Tensor:
    """Eq. 8 by the chain rule: α_{t,m} = ∂ψ/∂i_t · J_t τ_m (see the module docstring) → [B, L, M]."""
    distinct, inverse = torch.unique(items.clamp_min(0), return_inverse=True)
    n_mod = encoder.n_modalities
    with torch.enable_grad():
        acts = encoder.activations(distinct.unsqueeze(-1).expand(-1, n_mod)).detach().requires_grad_()  # [D, M, d]
        item = encoder.aggregate(acts)[0]
        # J τ by double reverse mode: g(v) = Jᵀv is linear in v, so ∂(g·τ)/∂v = J τ
        probe = torch.zeros_like(item, requires_grad=True)
        transposed, = torch.autograd.grad(item, acts, grad_outputs=probe, create_graph=True)
        products = []
        for m in range(n_mod):
            tangent = torch.zeros_like(acts)
            tangent[:, m] = acts[:, m].detach() if kind == "grad_input" else 1.0
            product, = torch.autograd.grad(transposed, probe, grad_outputs=tangent / acts.shape[-1],
                                           retain_graph=m < n_mod - 1)
            products.append(product)
    products = torch.stack(products, dim=1).detach()                                    # [D, M, d]
    return torch.einsum("bld,blmd->blm", grad_item.detach(), products[inverse])
