"""Backbones: nn.Modules that turn ids (+ features, graphs) into embeddings and scores (DESIGN §5)."""
from ..config import Entry
from . import freedom, lightgcn, mf, popularity, vbpr
from .base import Backbone, Batch

#: name -> Entry(config class, build(dataset, config) -> Backbone)
MODELS: dict[str, Entry] = {
    "pop": Entry(popularity.PopularityConfig, popularity.build),
    "mf": Entry(mf.MFConfig, mf.build),
    "lightgcn": Entry(lightgcn.LightGCNConfig, lightgcn.build),
    "vbpr": Entry(vbpr.VBPRConfig, vbpr.build),
    "freedom": Entry(freedom.FREEDOMConfig, freedom.build),
}

__all__ = ["MODELS", "Backbone", "Batch"]
