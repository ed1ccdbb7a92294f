"""Gradient interest scores (Eq. 7–8) on toy models whose answer is known."""
from __future__ import annotations

import pytest
import torch

from mmdenoise.sequential.encoders import ModalityEncoder
from mmdenoise.sequential.interest import interest_scores
from mmdenoise.sequential.models import AttentionBase, Encoded


def _toy(position_weights: torch.Tensor, read: int, n_mod: int = 3, dim: int = 4):
    """A "model" whose item activation is modality ``read`` and whose user is Σ_t w_t · item_t.

    ψ = Σ_k target_k Σ_t w_t a_{t,read,k} with target = 1, so ∂ψ/∂a_{t,m,k} = w_t·1[m = read]
    and ∂ψ/∂i_{t,k} = w_t: both interest scores are known in closed form.
    """
    batch, length = position_weights.shape
    modality_act = torch.randn(batch, length, n_mod, dim, requires_grad=True)
    item_act = modality_act[:, :, read, :]
    user = (position_weights.unsqueeze(-1) * item_act).sum(1)
    score = (user * torch.ones(dim)).sum(-1)
    return Encoded(user, item_act, modality_act), score


def test_a_model_that_reads_one_modality_ranks_it_first():
    torch.manual_seed(0)
    weights = torch.tensor([[0.5, 2.0, 1.0, 0.0], [1.0, 1.0, 3.0, 0.0]])
    mask = torch.tensor([[True, True, True, False], [True, True, True, False]])
    encoded, score = _toy(weights, read=1)
    alpha_item, alpha_mod = interest_scores(score, encoded, mask, "grad")
    assert torch.allclose(alpha_item, weights * mask)                                   # Eq. 7: mean_k w_t = w_t
    expected = torch.zeros(2, 4, 3)
    expected[:, :, 1] = weights * mask
    assert torch.allclose(alpha_mod, expected)                                          # Eq. 8
    per_modality = alpha_mod.sum(1)
    assert (per_modality.argmax(1) == 1).all()
    assert alpha_item[0].argmax() == 1 and alpha_item[1].argmax() == 2
    assert not alpha_item.requires_grad and not alpha_mod.requires_grad


def test_grad_input_weighs_the_gradient_by_the_activation():
    torch.manual_seed(1)
    weights = torch.tensor([[1.0, 2.0]])
    encoded, score = _toy(weights, read=0, n_mod=2)
    alpha_item, alpha_mod = interest_scores(score, encoded, torch.ones(1, 2, dtype=torch.bool), "grad_input")
    act = encoded.modality_act.detach()
    assert torch.allclose(alpha_item, weights * act[:, :, 0].mean(-1))
    assert torch.allclose(alpha_mod[..., 0], weights * act[:, :, 0].mean(-1)) and (alpha_mod[..., 1] == 0).all()
    with pytest.raises(ValueError, match="interest kind"):
        interest_scores(score, encoded, torch.ones(1, 2, dtype=torch.bool), "cam")


def test_real_base_model_ignores_a_modality_it_cannot_see():
    """A base model whose text projection is zero: the text activations are a constant bias, and a
    target scored only through the image modality gives the text slot no item-level interest."""
    torch.manual_seed(2)
    encoder = ModalityEncoder({"image": torch.randn(10, 6), "text": torch.randn(10, 6)}, 8)
    with torch.no_grad():
        encoder.projections[1].weight.zero_()
    model = AttentionBase(encoder, max_len=5)
    history = torch.tensor([[1, 2, 3, -1, -1], [4, 5, 6, 7, 8]])
    encoded = model.encode_history(history, per_position=True)
    score = model.target_scores(encoded.user, encoder(torch.tensor([0, 9])))
    alpha_item, alpha_mod = interest_scores(score, encoded, history >= 0, "grad_input")
    assert alpha_item.shape == (2, 5) and alpha_mod.shape == (2, 5, 2)
    assert (alpha_item[0, 3:] == 0).all() and (alpha_mod[0, 3:] == 0).all()              # padding: 0
    # every text activation is the same bias vector in every position: identical across items
    text = encoded.modality_act[..., 1, :]
    assert torch.allclose(text, text[0, 0].expand_as(text))
