"""GUIDER (WSDM'25): AMSC partition, DBPR teacher, OT distillation, in-sync training;
``guider+``, its repaired variant (``plus``)."""
from . import plus
from .denoiser import (ABLATIONS, Guider, GuiderConfig, GuiderKLConfig, GuiderNoAMSCConfig, GuiderNoDBPRConfig,
                       GuiderNoKDConfig, build)

__all__ = ["ABLATIONS", "Guider", "GuiderConfig", "GuiderNoDBPRConfig", "GuiderNoKDConfig", "GuiderNoAMSCConfig",
           "GuiderKLConfig", "build", "plus"]
