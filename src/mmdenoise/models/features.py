"""Item content features as model state, shared by every multi-modal backbone."""
from __future__ import annotations

from typing import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError


#: a modality whose distinct rows are at most this share of its rows is projected once per distinct row
DISTINCT_SHARE = 0.5


def distinct_rows(x: torch.Tensor, share: float | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(the distinct rows of x [n, d] → [k, d], where each row of x is among them [n]: x = distinct[index]) when
    k ≤ share · n (default ``DISTINCT_SHARE``, read at the call), else None.

    A categorical feature embedded per category (Book-Crossing's publisher: 7,310 distinct rows of
    36,041) repeats rows. A product with a fixed random vector, which equal rows share, rules out the
    rest cheaply before the exact (sorting) search.
    """
    n, share = x.shape[0], DISTINCT_SHARE if share is None else share
    probe = torch.rand(x.shape[1], generator=torch.Generator().manual_seed(0), dtype=x.dtype).to(x.device)
    if torch.unique(x @ probe).numel() > share * n:
        return None
    distinct, index = torch.unique(x, dim=0, return_inverse=True)
    return (distinct, index) if distinct.shape[0] <= share * n else None


def feature_tensors(dataset) -> dict[str, torch.Tensor]:
    """The dataset's modalities as float32 CPU tensors {modality: [I, d_m]} (copies, never memory maps)."""
    return {m: torch.from_numpy(np.array(x, dtype=np.float32)) for m, x in dataset.features.items()}


class ModalityFeatures(nn.Module):
    """Fixed per-modality item features {modality: float [I, d_m]}, in insertion order.

    Held as non-persistent buffers (they move with ``.to``, and stay out of
    ``state_dict``: features are data, rebuilt from the Dataset). Buffers are
    named by position, so any modality name works (``nn.Module`` attribute
    names may not contain '.').
    """

    def __init__(self, features: dict[str, torch.Tensor]):
        super().__init__()
        if not features:
            raise ValueError("at least one feature modality is needed")
        self.names = list(features)
        for k, x in enumerate(features.values()):
            if x.ndim != 2:
                raise ValueError(f"features must be [n_items, d], got shape {tuple(x.shape)}")
            x = x.to(torch.float32)
            self.register_buffer(f"modality_{k}", x, persistent=False)
            distinct, index = distinct_rows(x) or (None, None)
            self.register_buffer(f"distinct_{k}", distinct, persistent=False)
            self.register_buffer(f"index_{k}", index, persistent=False)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, name: str) -> torch.Tensor:
        return getattr(self, f"modality_{self.names.index(name)}")

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        for k, name in enumerate(self.names):
            yield name, getattr(self, f"modality_{k}")

    def map(self, fns: Iterable[Callable[[torch.Tensor], torch.Tensor]]) -> dict[str, torch.Tensor]:
        """{modality: fn(x^m) [I, ·]} for each modality's ``fn`` in order (its projection, encoder, ...),
        which must be row-wise: each output row a function of its input row alone.

        Where a modality repeats rows (``distinct_rows``), ``fn`` runs on its distinct rows and the
        output is gathered: the same rows, at that share of the cost forward and backward.
        """
        out = {}
        for k, (fn, (name, x)) in enumerate(zip(fns, self.items(), strict=True)):
            distinct = getattr(self, f"distinct_{k}")
            out[name] = fn(x) if distinct is None else fn(distinct)[getattr(self, f"index_{k}")]
        return out

    def to_precision(self, dtype: torch.dtype) -> None:
        """Store every modality's features in ``dtype`` (e.g. bfloat16: half the memory, and products in
        bfloat16 through ``FeatureLinear``)."""
        for k in range(len(self.names)):
            for prefix in ("modality", "distinct"):
                rows = getattr(self, f"{prefix}_{k}")
                setattr(self, f"{prefix}_{k}", None if rows is None else rows.to(dtype))

    def dims(self) -> list[int]:
        """Feature width d_m of every modality, in order."""
        return [x.shape[1] for _, x in self.items()]

    def extra_repr(self) -> str:
        return ", ".join(f"{name}: {tuple(x.shape)}" for name, x in self.items())


class FeatureLinear(nn.Linear):
    """The first layer over fixed item features x [n, d_m] -> [n, out] (an ``nn.Linear``: same parameters,
    same state_dict).

    With features stored in a lower precision than the weights (``train.feature_precision: bfloat16``) the
    product runs in the features' precision: the weights (and, in the backward pass, the gradient) are cast
    to it, so neither the [I, d_m] features nor their products are ever copied to float32; the output is
    cast back to the weights' dtype. With float32 features it is ``nn.Linear`` exactly.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == self.weight.dtype:
            return super().forward(x)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.weight.to(x.dtype), bias).to(self.weight.dtype)


def set_feature_precision(model: nn.Module, precision: str, name: str) -> None:
    """Store the item features of ``model`` (named ``name`` in errors) in ``precision``
    (``train.feature_precision``). float32 leaves the model as built; a lower precision needs a model
    that projects item features (a ConfigError otherwise, rather than a setting that silently does
    nothing)."""
    dtype = getattr(torch, precision)  # config.FEATURE_PRECISIONS are torch dtype names
    if dtype == torch.float32:
        return
    holders = [m for m in model.modules() if isinstance(m, ModalityFeatures)]
    if not holders:
        raise ConfigError(f"train.feature_precision={precision}: {name} projects no item features (only the "
                          "multi-modal backbones do, e.g. vbpr, freedom, dragon); use float32")
    for features in holders:
        features.to_precision(dtype)
