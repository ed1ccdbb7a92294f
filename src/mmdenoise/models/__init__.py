"""Backbones: nn.Modules that turn ids (+ features, graphs) into embeddings and scores."""
from ..registry import Entry
from . import bm3, dragon, freedom, lattice, lightgcn, mf, mgcn, popularity, vbpr
from .base import Backbone, Batch

#: name -> Entry(config class, build(dataset, config) -> Backbone, about, paper, capabilities)
MODELS: dict[str, Entry] = {
    "pop": Entry(popularity.PopularityConfig, popularity.build,
                 "the most popular training items for everyone (no training)", "-", trained=False),
    "mf": Entry(mf.MFConfig, mf.build, "matrix factorisation trained with BPR", "Rendle et al., UAI 2009"),
    "lightgcn": Entry(lightgcn.LightGCNConfig, lightgcn.build,
                      "linear graph convolution on the user-item graph", "He et al., SIGIR 2020"),
    "vbpr": Entry(vbpr.VBPRConfig, vbpr.build, "MF plus projected item content", "He & McAuley, AAAI 2016",
                  needs_features=True),
    "freedom": Entry(freedom.FREEDOMConfig, freedom.build,
                     "LightGCN plus frozen item-item kNN graphs from content, edge pruning",
                     "Zhou & Shen, MM 2023", needs_features=True),
    "bm3": Entry(bm3.BM3Config, bm3.build, "bootstrapped self-supervision without negatives",
                 "Zhou et al., WWW 2023", needs_features=True),
    "mgcn": Entry(mgcn.MGCNConfig, mgcn.build, "ID-gated modality features, per-modality graphs, attention fusion",
                  "Yu et al., MM 2023", needs_features=True),
    "dragon": Entry(dragon.DRAGONConfig, dragon.build,
                    "per-modality user-item graphs plus item kNN and user co-occurrence graphs",
                    "Zhou et al., ECAI 2023", needs_features=True),
    "lattice": Entry(lattice.LATTICEConfig, lattice.build, "learned item-item graphs from content",
                     "Zhang et al., MM 2021", needs_features=True),
}

__all__ = ["MODELS", "Backbone", "Batch"]
