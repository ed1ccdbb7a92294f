"""Item content features as model state, shared by every multi-modal backbone."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch import nn


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
            self.register_buffer(f"modality_{k}", x.to(torch.float32), persistent=False)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, name: str) -> torch.Tensor:
        return getattr(self, f"modality_{self.names.index(name)}")

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        for k, name in enumerate(self.names):
            yield name, getattr(self, f"modality_{k}")

    def dims(self) -> list[int]:
        """Feature width d_m of every modality, in order."""
        return [x.shape[1] for _, x in self.items()]

    def extra_repr(self) -> str:
        return ", ".join(f"{name}: {tuple(x.shape)}" for name, x in self.items())
