"""Backbones: nn.Modules that turn ids (+ features, graphs) into embeddings and scores (DESIGN §5)."""
from ..config import Entry
from . import bm3, dragon, freedom, lattice, lightgcn, mf, mgcn, popularity, vbpr
from .base import Backbone, Batch

#: name -> Entry(config class, build(dataset, config) -> Backbone)
MODELS: dict[str, Entry] = {
    "pop": Entry(popularity.PopularityConfig, popularity.build),
    "mf": Entry(mf.MFConfig, mf.build),
    "lightgcn": Entry(lightgcn.LightGCNConfig, lightgcn.build),
    "vbpr": Entry(vbpr.VBPRConfig, vbpr.build),
    "freedom": Entry(freedom.FREEDOMConfig, freedom.build),
    "bm3": Entry(bm3.BM3Config, bm3.build),
    "mgcn": Entry(mgcn.MGCNConfig, mgcn.build),
    "dragon": Entry(dragon.DRAGONConfig, dragon.build),
    "lattice": Entry(lattice.LATTICEConfig, lattice.build),
}

__all__ = ["MODELS", "Backbone", "Batch"]
