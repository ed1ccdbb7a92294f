"""DA-MRS (Xv et al., "Improving Multi-modal Recommender Systems by Denoising and Aligning
Multi-modal Content and User Feedback", KDD'24, §3) as a denoiser that composes any backbone.

- the item graphs come from ``mmdenoise.graphs``: the denoised item–item
  semantic graphs (DIIG, Eq. 1; ``graphs.knn.denoised_knn_graphs``) and the
  behaviour graph (IIB, Eq. 2; ``graphs.cooccurrence.behaviour_graph``);
- ``model``: :class:`DAMRSBackbone`, the backbone with items t (Eq. 3);
- ``denoiser``: :class:`DAMRS`, the objective of Eq. 12 (losses in
  ``mmdenoise.losses.damrs``).
"""
from __future__ import annotations

from dataclasses import dataclass

from ...config import OneOf, Range, setting
from ...graphs import (behaviour_graph, cached_denoised_knn_graphs, cached_knn_graph, symmetric_normalize,
                       to_torch_csr)
from ...graphs.cooccurrence import BEHAVIOUR_WEIGHTS
from ...losses.damrs import AI_STRATEGIES
from ...models.base import Backbone
from .denoiser import DAMRS
from .model import DAMRSBackbone, ItemViews

GRAPH_VARIANTS = ("diig", "iig")
AI_REFRESH = ("batch", "epoch")
#: the DAMRSConfig fields that are DAMRS's constructor arguments (the rest build the graphs)
DENOISER_SETTINGS = ("alpha", "beta", "gamma", "dbpr", "use_f", "use_g", "fg_gradient", "au", "ai", "ai_strategy",
                     "ai_k", "ai_tau", "ai_refresh", "lambda_au", "lambda_ai", "au_users", "ai_anchors")


@dataclass
class DAMRSConfig:
    """DA-MRS settings; defaults from the paper's Appendix A.2.2 (Baby) unless noted.

    graph: ``diig`` (denoised, Eq. 1) or ``iig`` (plain kNN per modality; Table 3 ablation).
    topk: k of every kNN step (10). min_cooccurrence: ξ_B (2).
    cooccurrence_weights: IIB edge weights, ``count`` (Eq. 2) or ``binary``.
    graph_layers: propagation layers L on the item graphs (1; the paper stacks
        "l" layers without giving l; one layer is the design brief's choice).
    alpha, beta: exponents of f (Eq. 6), 1.5 on Baby and Clothing (3 on Sports).
    gamma: exponent of g (Eq. 7), which the paper tunes in {1, 2}; 2, chosen on
        ml-100k validation Recall@20 (LightGCN + 20% added: 0.3464 vs 0.3431; MF:
        0.3415 vs 0.3332; VBPR: 0.3258 vs 0.2996). Where g > f, Eq. 8 trains the
        observed item below the negative ("flip_share" in the metrics); at
        γ = 1 that is every interaction with g active, 40% of VBPR's first
        epoch, at γ = 2 about 1% (docs/results/damrs-ml100k.md).
    dbpr: D-BPR (Eq. 8); off = the backbone's own loss on t (BPR), Table 3's DIIG rows.
    use_f / use_g: off = f ≡ 1 / g ≡ 0 (Table 3, "−f(u,i)" / "−g(u,i)").
    fg_gradient: differentiate D-BPR through f and g as well (their view scores
        and ŷ_n depend on the parameters, and Eq. 13 is a likelihood in them);
        off (default, the design brief's; the paper does not say): f and g are weights computed without
        gradient. Off, g ≡ 0 leaves −ln f, a constant, beside BPR's term, so
        "−g(u,i)" trains exactly as DIIG + AUI does; the paper's Table 3
        reports the two apart (0.0992 vs 0.0977 Recall@20 on Baby).
    au / ai: the alignment terms (Eq. 10 / Eq. 11); AU is off by default (see λ1 below).
    ai_strategy: ``full`` (graded, Eq. 11), ``sp`` or ``mp`` (Table 4).
    ai_k: size of each similar set (the paper's k, 10). ai_tau: τ of φ (0.2).
    ai_refresh: when the similar sets are chosen from the current views:
        ``batch`` (every batch, as Eq. 11 reads) or ``epoch`` (once per epoch
        for all items, then reused: about half the cost of AI, sets up to an
        epoch old).
    au_users, ai_anchors: AU / AI averaged over this many of the batch's
        distinct users / items drawn at random each batch (an unbiased estimate
        of the batch mean; the whole batch stays AI's dissimilar pool); 0 = all
        of them, as in the paper. A user or an anchor costs a row of I logits
        (BPR: one score per pair); 64 each keeps DA-MRS near 2× its backbone's
        epoch time on the baby preset on CPU (all of them: 25×).
    lambda_au, lambda_ai: λ1, λ2 of Eq. 12. The paper tunes them on validation
        (λ1 ∈ {10, 1, 0.1, 0.01}, λ2 ∈ {1, 0.1, 0.01, 1e-3, 1e-4}) and does not
        report the chosen values. Chosen here on ml-100k validation Recall@20
        (LightGCN, 20% added interactions, lr 5e-3; docs/results/damrs-ml100k.md):
        λ2 = 1e-3 (0.3445 vs 0.3430 without AI; 0.01 collapses training to
        0.106), and AU off by default (``au: false``) because every λ1 tried
        lowered it (0.01: 0.3283, 0.1: 0.2962); with ``au: true`` λ1 = 0.01, the
        smallest value of the paper's grid.
    """

    graph: str = setting("diig", OneOf(*GRAPH_VARIANTS))
    topk: int = setting(10, Range(min=1))
    min_cooccurrence: int = setting(2, Range(min=1), symbol="ξ_B")
    cooccurrence_weights: str = setting("count", OneOf(*BEHAVIOUR_WEIGHTS))
    graph_layers: int = setting(1, Range(min=1))
    alpha: float = setting(1.5, Range(above=0), symbol="α")
    beta: float = setting(1.5, Range(above=0), symbol="β")
    gamma: float = setting(2.0, Range(above=0), symbol="γ")
    dbpr: bool = True
    use_f: bool = True
    use_g: bool = True
    fg_gradient: bool = False
    au: bool = False
    ai: bool = True
    ai_strategy: str = setting("full", OneOf(*AI_STRATEGIES))
    ai_k: int = setting(10, Range(min=1))
    ai_tau: float = setting(0.2, Range(above=0), symbol="τ")
    ai_refresh: str = setting("batch", OneOf(*AI_REFRESH))
    lambda_au: float = setting(0.01, Range(min=0), symbol="λ1")
    lambda_ai: float = setting(1e-3, Range(min=0), symbol="λ2")
    au_users: int = setting(64, Range(min=0))  # 0 = the whole batch
    ai_anchors: int = setting(64, Range(min=0))


#: the ablation study's variants (paper Table 3 and Table 4; LightGCN backbone in the paper) as switches
#: of DAMRSConfig. The DIIG/IIG rows train with the plain BPR loss (dbpr off); ``damrs`` is the default
#: (AU off), ``damrs+au`` the paper's full objective.
ABLATION_SWITCHES: dict[str, dict] = {
    "iig": {"graph": "iig", "dbpr": False, "au": False, "ai": False},
    "diig": {"dbpr": False, "au": False, "ai": False},
    "diig+dbpr": {"au": False, "ai": False},
    "diig+au": {"dbpr": False, "au": True, "ai": False},
    "diig+ai": {"dbpr": False, "au": False},
    "diig+aui": {"dbpr": False, "au": True},
    "diig+sp": {"dbpr": False, "au": False, "ai_strategy": "sp"},
    "diig+mp": {"dbpr": False, "au": False, "ai_strategy": "mp"},
    "damrs-f": {"use_f": False},
    "damrs-g": {"use_g": False},
    "damrs": {},
    "damrs+au": {"au": True},
}
#: the same variants as the registry entry declares them: label -> overrides
ABLATIONS = {label: (("denoiser", "damrs"), *((f"denoiser_params.{k}", v) for k, v in switches.items()))
             for label, switches in ABLATION_SWITCHES.items()}


def semantic_graphs(dataset, config: DAMRSConfig) -> dict:
    """{modality: binary item–item graph [I, I]}: DIIG (Eq. 1) or, for ``graph: iig``, the plain kNN graph
    with the item itself (Table 3's ablation); both disk-cached."""
    if config.graph == "diig":
        return cached_denoised_knn_graphs(dataset.fingerprint, dataset.features, config.topk)
    return {m: cached_knn_graph(dataset.fingerprint, m, x, config.topk, include_self=True)
            for m, x in dataset.features.items()}


def build_backbone(dataset, backbone: Backbone, config: DAMRSConfig) -> DAMRSBackbone:
    """``backbone`` composed with the dataset's DIIG (or IIG) and IIB graphs, symmetric-normalised."""
    train = dataset.train
    behaviour = behaviour_graph(train.users, train.items, dataset.n_users, dataset.n_items, config.topk,
                                config.min_cooccurrence, weights=config.cooccurrence_weights)
    return DAMRSBackbone(backbone, {m: to_torch_csr(symmetric_normalize(g))
                                    for m, g in semantic_graphs(dataset, config).items()},
                         to_torch_csr(symmetric_normalize(behaviour)), config.graph_layers)


def build(dataset, backbone: Backbone, config: DAMRSConfig) -> DAMRS:
    """DA-MRS around ``backbone`` on ``dataset`` (its entry needs item features)."""
    settings = {name: getattr(config, name) for name in DENOISER_SETTINGS}
    return DAMRS(build_backbone(dataset, backbone, config), len(dataset.train), **settings)


__all__ = ["ABLATIONS", "ABLATION_SWITCHES", "DAMRS", "DAMRSBackbone", "DAMRSConfig", "ItemViews", "build",
           "build_backbone"]
