"""Denoisers: training objectives that wrap any backbone (DESIGN §6)."""
from ..config import Entry
from .base import Denoiser, NoDenoiser, NoDenoiserConfig, StepState, build_none

#: name -> Entry(config class, build(dataset, backbone, config) -> Denoiser)
DENOISERS: dict[str, Entry] = {
    "none": Entry(NoDenoiserConfig, build_none),
}

__all__ = ["DENOISERS", "Denoiser", "NoDenoiser", "StepState"]
