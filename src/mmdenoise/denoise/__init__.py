"""Denoisers: training objectives that wrap any backbone."""
from ..registry import Entry
from . import bod, damrs, guider, rce, tce, wbpr
from .base import Denoiser, NoDenoiser, NoDenoiserConfig, StepState, build_none

#: name -> Entry(config class, build(dataset, backbone, config) -> Denoiser, about, paper, capabilities)
_GUIDER = "Li et al., WSDM 2025"
DENOISERS: dict[str, Entry] = {
    "none": Entry(NoDenoiserConfig, build_none, "no denoising: the backbone's own loss (BPR unless it has another)",
                  "-"),
    "tce": Entry(tce.TCEConfig, tce.build, "truncated BCE: drops the largest-loss positives (ramped)",
                 "Wang et al., WSDM 2021"),
    "rce": Entry(rce.RCEConfig, rce.build, "reweighted BCE: down-weights hard positives", "Wang et al., WSDM 2021"),
    "wbpr": Entry(wbpr.WBPRConfig, wbpr.build, "BPR with popularity-weighted negatives", "Gantner et al., 2012"),
    "bod": Entry(bod.BODConfig, bod.build, "a generator of interaction weights, fitted by gradient matching",
                 "Wang et al., KDD 2023"),
    "damrs": Entry(damrs.DAMRSConfig, damrs.build,
                   "DA-MRS: denoised item-item graphs, denoising BPR, modality alignment",
                   "Xu et al., KDD 2024", needs_features=True, ablations=damrs.ABLATIONS),
    "guider": Entry(guider.GuiderConfig, guider.build,
                    "GUIDER: ID teacher on calibrated interactions, OT distillation into the backbone", _GUIDER,
                    needs_features=True, ablations=guider.ABLATIONS),
    "guider-no-dbpr": Entry(guider.GuiderNoDBPRConfig, guider.build, "GUIDER ablation: teacher on plain BPR",
                            _GUIDER, needs_features=True),
    "guider-no-kd": Entry(guider.GuiderNoKDConfig, guider.build,
                          "GUIDER ablation: calibration + DBPR on the backbone, no teacher", _GUIDER,
                          needs_features=True),
    "guider-no-amsc": Entry(guider.GuiderNoAMSCConfig, guider.build,
                            "GUIDER ablation: clean/noisy split by teacher loss only", _GUIDER, needs_features=True),
    "guider-kl": Entry(guider.GuiderKLConfig, guider.build, "GUIDER ablation: KL instead of OT distillation",
                       _GUIDER, needs_features=True),
    "guider+": Entry(guider.plus.GuiderPlusConfig, guider.plus.build,
                     "GUIDER repaired: reliable modalities, rank confidence, pre-trained teacher, weighted BPR",
                     "this package (after GUIDER)", needs_features=True, ablations=guider.plus.ABLATIONS),
}

__all__ = ["DENOISERS", "Denoiser", "NoDenoiser", "StepState"]
