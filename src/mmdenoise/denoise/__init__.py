"""Denoisers: training objectives that wrap any backbone (DESIGN §6)."""
from ..config import Entry
from . import bod, damrs, guider, rce, tce, wbpr
from .base import Denoiser, NoDenoiser, NoDenoiserConfig, StepState, build_none

#: name -> Entry(config class, build(dataset, backbone, config) -> Denoiser)
DENOISERS: dict[str, Entry] = {
    "none": Entry(NoDenoiserConfig, build_none),
    "tce": Entry(tce.TCEConfig, tce.build),
    "rce": Entry(rce.RCEConfig, rce.build),
    "wbpr": Entry(wbpr.WBPRConfig, wbpr.build),
    "bod": Entry(bod.BODConfig, bod.build),
    "damrs": Entry(damrs.DAMRSConfig, damrs.build),
    "guider": Entry(guider.GuiderConfig, guider.build),
    "guider-no-dbpr": Entry(guider.GuiderNoDBPRConfig, guider.build),
    "guider-no-kd": Entry(guider.GuiderNoKDConfig, guider.build),
    "guider-no-amsc": Entry(guider.GuiderNoAMSCConfig, guider.build),
    "guider-kl": Entry(guider.GuiderKLConfig, guider.build),
}

__all__ = ["DENOISERS", "Denoiser", "NoDenoiser", "StepState"]
