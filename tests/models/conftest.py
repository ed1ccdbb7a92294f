"""Helpers of the backbone contract suite: planted data, a minimal BPR training loop, Recall@K.

The loop and the metric are deliberately independent of ``mmdenoise.training``
and ``mmdenoise.eval``: a backbone's tests should not pass or fail with the
trainer. Fixtures that return functions follow ``make_dataset`` in
``tests/conftest.py``.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mmdenoise.models import MODELS
from mmdenoise.models.base import Backbone, Batch
from tests.planted import planted_dataset


def build_model(name: str, dataset, seed: int = 0, **params) -> Backbone:
    """MODELS[name] with its default config (fields overridden by ``params``), built under ``seed``."""
    entry = MODELS[name]
    torch.manual_seed(seed)
    return entry.build(dataset, entry.config_cls(**params))


def random_batch(dataset, size: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Batch:
    """``size`` training positives drawn uniformly with replacement, each with a uniform random negative.

    Drawn on the CPU from ``generator`` (same batch whatever the device), then moved to ``device``.
    """
    index = torch.randint(len(dataset.train), (size,), generator=generator)
    batch = (torch.from_numpy(dataset.train.users)[index], torch.from_numpy(dataset.train.items)[index],
             torch.randint(dataset.n_items, (size,), generator=generator), index)
    return Batch(*(t.to(device) for t in batch))


def fit_bpr(model: Backbone, dataset, *, steps: int = 100, batch_size: int = 256, lr: float = 0.01,
            seed: int = 0) -> list[float]:
    """Adam on rec_loss + extra_loss + regularization for ``steps`` batches; returns the losses.

    ``epoch_start`` is called every ⌈|train| / batch_size⌉ steps, as a trainer would.
    Leaves the model in eval mode.
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    steps_per_epoch = -(-len(dataset.train) // batch_size)
    losses = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny problems: extra threads only add synchronisation (and suffer on busy CI)
    try:
        model.train()
        for step in range(steps):
            if step % steps_per_epoch == 0:
                model.epoch_start(step // steps_per_epoch)
            batch = random_batch(dataset, batch_size, generator, model.device)
            user_emb, item_emb = model()
            loss = (model.rec_loss(batch, user_emb, item_emb) + model.extra_loss(batch, user_emb, item_emb)
                    + model.regularization(batch, user_emb, item_emb))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    finally:
        torch.set_num_threads(threads)
    model.eval()
    return losses


def recall_at_k(model: Backbone, dataset, k: int = 10, split: str = "test") -> float:
    """Mean over users with ``split`` items of |top-k ∩ held-out| / |held-out|, training items masked."""
    with torch.no_grad():
        user_emb, item_emb = model()
        users = torch.arange(dataset.n_users, device=user_emb.device)
        scores = model.full_scores(user_emb, item_emb, users).double().cpu().numpy()
    train = dataset.interaction_matrix("train").toarray() > 0
    held_out = dataset.interaction_matrix(split).toarray() > 0
    scores[train] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    hits = np.take_along_axis(held_out, top, axis=1).sum(1)
    evaluated = held_out.sum(1) > 0
    return float((hits[evaluated] / held_out.sum(1)[evaluated]).mean())


@pytest.fixture(scope="session")
def planted():
    """200 users, 120 items in 4 planted clusters; image (32-d) and text (16-d) = noisy cluster indicators."""
    return planted_dataset(n_users=200, n_items=120, seed=0)


@pytest.fixture
def make_model():
    """``build_model(name, dataset, seed=0, **config_fields)``."""
    return build_model


@pytest.fixture
def make_batch():
    """``random_batch(dataset, size, generator, device="cpu")``."""
    return random_batch


@pytest.fixture
def fit():
    """``fit_bpr(model, dataset, steps=100, batch_size=256, lr=0.01, seed=0)``."""
    return fit_bpr


@pytest.fixture
def recall():
    """``recall_at_k(model, dataset, k=10, split="test")``."""
    return recall_at_k
