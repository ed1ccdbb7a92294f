"""GUIDER (WSDM'25, §4 and Algorithm 1): an ID-only teacher trained with DBPR on the AMSC partition,
distilled into any multi-modal student through optimal transport, in sync.

Each epoch (Algorithm 1): one teacher pass (plain BPR for the
first ``warmup_epochs``, then DBPR), recalibration (AMSC, every
``recalibrate_every`` epochs), then the trainer's student pass with
L_student = L_Rec + w_kd · L_KD (Eq. 8) on every training interaction.

DBPR (Eq. 7) for the teacher: positives only from I_true, each paired with a
uniformly sampled unseen item (BPR) and, with weight β, with a random item of
the user's I_false (Eq. 7's noisy negatives); Eq. 7 alone would give no signal
to users without noisy items.

Variants (paper Table 3): ``guider-no-dbpr`` (teacher on plain BPR, KD only),
``guider-no-kd`` (no teacher: AMSC on the student's own losses, DBPR applied
to the student), ``guider-no-amsc`` (I_true = the loss split of Eq. 2 alone),
``guider-kl`` (KL instead of OT).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ...data.sampler import NegativeSampler
from ...config import Allowed, OneOf, Range, setting
from ...graphs import unit_rows
from ...losses import bpr_loss
from ...losses.transport import kl_distillation, ot_distillation, ranking_logits
from ...models import MODELS
from ...models.base import Backbone, Batch
from ...training.step import adam, optimizer_step
from ..base import Denoiser, StepState
from .amsc import Candidates, calibrate, candidate_pairs, grouped_by_user
from .hashing import SCALES, modality_confidence


class IDOnlyModel(Allowed):
    """A registered model that needs no item features and trains (entry capabilities): a teacher.

    Read from ``MODELS`` when checked, so a newly registered ID-only backbone is a teacher too.
    """

    def allows(self, value) -> bool:
        entry = MODELS.get(value) if isinstance(value, str) else None
        return entry is not None and not entry.needs_features and entry.trained

    def describe(self) -> str:
        return "one of " + ", ".join(sorted(n for n in MODELS if self.allows(n)))


@dataclass
class GuiderConfig:
    """S_thres ``threshold``, OT regulariser λ ``ot_reg``, β ``dbpr_weight``, w_kd ``kd_weight`` (Eq. 8).

    teacher: an ID-only model name (lightgcn or mf; any model whose entry needs no
        features and trains) with its default config.
    hash: cca | learned (the S_conf hash, Eq. 6); confidence_scale: relative |
    raw | rank (see ``hashing.modality_confidence``).
    teacher_pretrain_epochs: teacher epochs (with their recalibrations) run
    before the student's first (the design brief's pre-trained teacher option);
    0 = Algorithm 1's in-sync schedule from scratch. The teacher keeps
    training in sync afterwards.
    kd: ot | kl | none; ot_block: OT over blocks of this many triples (None:
    the whole batch); ot_gradient: envelope | unrolled.
    """

    teacher: str = setting("lightgcn", IDOnlyModel())
    teacher_lr: float = setting(1e-3, Range(above=0))
    teacher_batch_size: int = setting(2048, Range(min=1))
    warmup_epochs: int = setting(5, Range(min=0))
    recalibrate_every: int = setting(1, Range(min=1))
    teacher_pretrain_epochs: int = setting(0, Range(min=0))
    threshold: float = setting(0.9, Range(min=-1, max=1), symbol="S_thres")  # S = S_modal · S_conf is in [−1, 1]
    hash_bits: int = setting(64, Range(min=1))
    hash: str = setting("cca", OneOf("cca", "learned"))
    confidence_scale: str = setting("relative", OneOf(*SCALES))
    amsc: bool = True
    dbpr: bool = True
    dbpr_weight: float = setting(1.0, Range(min=0), symbol="β")
    kd: str = setting("ot", OneOf("ot", "kl", "none"))
    kd_weight: float = setting(1.0, Range(min=0), symbol="w_kd")
    ot_reg: float = setting(0.1, Range(above=0), symbol="λ")
    ot_block: int | None = setting(256, Range(min=1))  # None: the whole batch
    ot_iters: int = setting(50, Range(min=1))
    ot_gradient: str = setting("envelope", OneOf("envelope", "unrolled"))


@dataclass
class GuiderNoDBPRConfig(GuiderConfig):
    dbpr: bool = False


@dataclass
class GuiderNoKDConfig(GuiderConfig):
    kd: str = "none"


@dataclass
class GuiderNoAMSCConfig(GuiderConfig):
    amsc: bool = False


@dataclass
class GuiderKLConfig(GuiderConfig):
    kd: str = "kl"


#: the ablation study's variants (paper Table 3), each a registered denoiser name: label -> overrides
ABLATIONS = {name: (("denoiser", name),)
             for name in ("guider", "guider-no-dbpr", "guider-no-kd", "guider-no-amsc", "guider-kl")}


class Guider(Denoiser):
    """GUIDER around ``backbone`` (the student); ``teacher`` None for ``guider-no-kd``.

    train_users, train_items: int64 [E]; features: {modality: [I, d_m]} raw.
    The partition is a persistent buffer (``clean`` bool [E]), so a resumed
    run continues with the same judgement; the teacher's optimiser state
    travels in the module's extra state.
    """

    def __init__(self, backbone: Backbone, teacher: Backbone | None, train_users: np.ndarray,
                 train_items: np.ndarray, n_users: int, features: dict[str, np.ndarray],
                 sampler: NegativeSampler, config: GuiderConfig):
        super().__init__(backbone)
        self.teacher, self.config, self.sampler, self.n_users = teacher, config, sampler, n_users
        self.train_users, self.train_items = train_users, train_items
        self.features = {m: unit_rows(x) for m, x in features.items()}  # cosines by dot product (Eq. 5)
        self.confidence = modality_confidence(features, config.hash_bits, config.hash, config.confidence_scale)
        self.register_buffer("clean", torch.ones(len(train_users), dtype=torch.bool))
        self.register_buffer("calibrated", torch.zeros((), dtype=torch.bool))
        self.teacher_optimizer = adam(teacher.parameters(), lr=config.teacher_lr) if teacher is not None else None
        self._teacher_emb: tuple[torch.Tensor, torch.Tensor] | None = None
        self._candidates: Candidates | None = None  # found at the first recalibration
        # I_false grouped by user (:meth:`noisy_groups`), rebuilt after each recalibration or load
        self._noisy_groups: NoisyGroups | None = None
        self._calibrated = False  # the buffer ``calibrated`` on the host: read every batch, never synced
        self.register_load_state_dict_post_hook(_after_load)
        self.last_similarity = np.full(len(train_users), np.nan, dtype=np.float32)

    # -------------------------------------------------------------- state
    def trainable_parameters(self):
        return [p for p in self.backbone.parameters() if p.requires_grad]

    def get_extra_state(self):
        return {"teacher_optimizer": self.teacher_optimizer.state_dict() if self.teacher_optimizer else {}}

    def set_extra_state(self, state):
        if self.teacher_optimizer is not None and state["teacher_optimizer"]:
            # a copy, as for parameters: Adam would otherwise keep the given moment tensors and update them in place
            self.teacher_optimizer.load_state_dict(copy.deepcopy(state["teacher_optimizer"]))

    def interaction_scores(self) -> np.ndarray | None:
        """1 for I_true, 0 for I_false (the AMSC partition); None before the first recalibration."""
        return self.clean.cpu().numpy().astype(np.float32) if self._calibrated else None

    def epoch_stats(self) -> dict[str, float]:
        """The partition's shares of the training interactions: I_false and recovered (after calibration)."""
        if not self._calibrated:
            return {}
        return {"noisy_share": float((~self.clean).float().mean()),
                "recovered_share": float(np.isfinite(self.last_similarity).mean())}

    # ------------------------------------------------------------ teacher
    def _dbpr_ready(self) -> bool:
        return self.config.dbpr and self._calibrated

    def noisy_groups(self) -> NoisyGroups:
        """The I_false items grouped by user, on the host and on the partition's device; built once per
        partition (a recalibration or a loaded state forgets them), not per batch."""
        if self._noisy_groups is None:
            order, start, count = grouped_by_user(np.flatnonzero(~self.clean.cpu().numpy()), self.train_users,
                                                  self.n_users)
            self._noisy_groups = NoisyGroups(self.train_items[order], start, count, self.clean.device)
        return self._noisy_groups

    def _noisy_partner(self, users: np.ndarray, rng: np.random.Generator):
        """A random I_false item per entry of ``users`` (Eq. 7's noisy negative), and a bool mask of the
        entries whose user has one (elsewhere the item is a placeholder)."""
        groups = self.noisy_groups()
        has = groups.count[users] > 0
        if not has.any():
            return np.zeros_like(users), has
        pick = groups.start[users] + (rng.random(users.size) * groups.count[users]).astype(np.int64)
        return groups.items[np.minimum(pick, groups.items.size - 1)], has

    def _teacher_epoch(self, rng: np.random.Generator, position: int = 0) -> None:
        """One teacher pass (BPR, or DBPR once calibrated) through the trainer's optimiser step, so a
        non-finite teacher loss stops training as the student's does; ``position``: the teacher's epoch
        in the schedule, named in that error."""
        teacher, device = self.teacher, self.backbone.device
        dbpr = self._dbpr_ready()
        positives = np.flatnonzero(self.clean.cpu().numpy()) if dbpr else np.arange(self.train_users.size)
        order = rng.permutation(positives)
        users, items = self.train_users[order], self.train_items[order]
        negatives = self.sampler.sample(users, rng)
        noisy, has_noisy = self._noisy_partner(users, rng) if dbpr else (None, None)
        tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
        teacher.train()
        size = self.config.teacher_batch_size
        for b, start in enumerate(range(0, users.size, size)):
            sl = slice(start, start + size)
            batch = Batch(tensor(users[sl]), tensor(items[sl]), tensor(negatives[sl]), tensor(order[sl]))
            user_emb, item_emb = teacher()
            terms = {"rec": teacher.rec_loss(batch, user_emb, item_emb),
                     "reg": teacher.regularization(batch, user_emb, item_emb)}
            loss = terms["rec"] + terms["reg"]
            if dbpr and has_noisy[sl].any():
                keep = tensor(has_noisy[sl])
                pos = teacher.score(user_emb, item_emb, batch.users[keep], batch.pos_items[keep])
                neg = teacher.score(user_emb, item_emb, batch.users[keep], tensor(noisy[sl])[keep])
                terms["dbpr"] = self.config.dbpr_weight * bpr_loss(pos, neg)
                loss = loss + terms["dbpr"]
            optimizer_step(self.teacher_optimizer, loss, terms, where=f"GUIDER teacher epoch {position}, batch {b}")

    # -------------------------------------------------------- recalibrate
    @torch.no_grad()
    def pointwise_losses(self, model: Backbone) -> np.ndarray:
        """ℓ(u, i) = −log σ(s_ui) for every training interaction under ``model`` (eval mode): float [E]."""
        was_training = model.training
        model.train(False)
        user_emb, item_emb = model()
        device = model.device
        out = []
        for start in range(0, self.train_users.size, 1 << 16):
            u = torch.from_numpy(self.train_users[start:start + (1 << 16)]).to(device)
            i = torch.from_numpy(self.train_items[start:start + (1 << 16)]).to(device)
            out.append((-F.logsigmoid(model.score(user_emb, item_emb, u, i))).cpu())
        model.train(was_training)
        return torch.cat(out).double().numpy()

    def modal_features(self) -> dict[str, torch.Tensor]:
        """The unit rows whose products are S_modal's per-modality terms (Eq. 5): the cosines themselves."""
        return self.features

    def candidates(self) -> Candidates:
        """The pairs of one user's items that clear S_thres (fixed for the run; none without AMSC)."""
        if self._candidates is None:
            features = self.modal_features() if self.config.amsc else {}
            self._candidates = (candidate_pairs(self.train_users, self.train_items, self.n_users, features,
                                                self.confidence, self.config.threshold)
                                if features else Candidates.empty())
        return self._candidates

    def recalibrate(self) -> None:
        """AMSC (Eq. 2–6) on the judge's losses: the teacher's, or the student's without one."""
        judge = self.teacher if self.teacher is not None else self.backbone
        part = calibrate(self.train_users, self.pointwise_losses(judge), self.n_users, self.candidates())
        self.set_partition(part.clean)
        self.last_similarity = part.similarity

    def set_partition(self, clean: np.ndarray) -> None:
        """Make ``clean`` (bool [E], True = I_true) the partition that DBPR and the judgement use."""
        self.clean.copy_(torch.from_numpy(np.asarray(clean, dtype=bool)))
        self.calibrated.fill_(True)
        self._noisy_groups = None
        self._calibrated = True

    # ---------------------------------------------------------- schedule
    def epoch_start(self, epoch: int) -> None:
        super().epoch_start(epoch)
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ())))  # torch's RNG is seeded per epoch
        pretrain = self.config.teacher_pretrain_epochs if self.teacher is not None else 0
        steps = range(pretrain + 1) if epoch == 0 else [pretrain + epoch]  # teacher schedule positions
        for step in steps:
            if self.teacher is not None:
                self._teacher_epoch(rng, step)
            if step + 1 >= self.config.warmup_epochs and (step + 1) % self.config.recalibrate_every == 0:
                self.recalibrate()
        if self.teacher is not None:
            with torch.no_grad():
                self.teacher.train(False)
                self._teacher_emb = self.teacher()

    def loss(self, batch: Batch, state: StepState):
        backbone = self.backbone
        student_dbpr = self.teacher is None and self._dbpr_ready()  # guider-no-kd: DBPR on the student itself
        # DBPR on the student scores noisy partners outside the batch: all rows; otherwise the batch's
        user_emb, item_emb = backbone() if student_dbpr else backbone.batch_forward(batch)
        terms = {"extra": backbone.extra_loss(batch, user_emb, item_emb),
                 "reg": backbone.regularization(batch, user_emb, item_emb)}
        pos, neg = backbone.batch_scores(batch, user_emb, item_emb)
        teacher_logits = None
        if self.teacher is not None:
            t_user, t_item = self._teacher_emb
            teacher_logits = ranking_logits(self.teacher.score(t_user, t_item, batch.users, batch.pos_items),
                                            self.teacher.score(t_user, t_item, batch.users, batch.neg_items))
        if student_dbpr:
            terms["rec"] = self._student_dbpr(batch, user_emb, item_emb, pos, neg)
        else:
            terms["rec"] = self.student_rec(batch, user_emb, item_emb, pos, neg, teacher_logits, state)
        if teacher_logits is not None and self.config.kd != "none":
            student_logits = ranking_logits(pos, neg)
            if self.config.kd == "kl":
                kd = kl_distillation(teacher_logits, student_logits)
            else:
                kd = ot_distillation(teacher_logits, student_logits, self.config.ot_reg, block=self.config.ot_block,
                                     gradient=self.config.ot_gradient, max_iters=self.config.ot_iters, tol=1e-4)
            terms["kd"] = self.config.kd_weight * kd
        return sum(terms.values()), terms

    def student_rec(self, batch: Batch, user_emb, item_emb, pos: torch.Tensor, neg: torch.Tensor,
                    teacher_logits: torch.Tensor | None, state: StepState) -> torch.Tensor:
        """L_Rec of Eq. 8: the backbone's own loss (``guider+`` may weight it by the teacher's logits z^t [B],
        or truncate it on a ramp over ``state``'s global step)."""
        return self.backbone.rec_loss(batch, user_emb, item_emb)

    def _student_dbpr(self, batch, user_emb, item_emb, pos, neg) -> torch.Tensor:
        """Eq. 7 on the student (``guider-no-kd``): BPR over the batch's I_true pairs, plus β · BPR of each
        of them against a random I_false item of its user, where the user has one. On the device: masks
        weight the means (no boolean indexing, no copy to the host)."""
        clean = self.clean[batch.index]
        loss = bpr_loss(pos, neg, weights=_mean_over(clean))
        groups = self.noisy_groups()
        if groups.items.size == 0:
            return loss
        noisy, has = groups.draw(batch.users)
        noisy_scores = self.backbone.score(user_emb, item_emb, batch.users, noisy)
        return loss + self.config.dbpr_weight * bpr_loss(pos, noisy_scores, weights=_mean_over(clean & has))


def _mean_over(mask: torch.Tensor) -> torch.Tensor:
    """Weights [B] that turn ``bpr_loss``'s mean over the batch into the mean over ``mask``'s entries (0
    when there are none), without a host sync."""
    return mask.float() * (mask.numel() / mask.sum().clamp_min(1))


class NoisyGroups:
    """The I_false interactions' items grouped by user: ``items`` int64 [N] (user by user), ``start`` and
    ``count`` int64 [U] into it, as NumPy arrays (the teacher's epoch) and tensors on ``device`` (the
    student's batches)."""

    def __init__(self, items: np.ndarray, start: np.ndarray, count: np.ndarray, device: torch.device):
        self.items, self.start, self.count = items, start, count
        self._on_device = tuple(torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in (items, start, count))

    def draw(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A uniformly drawn I_false item per entry of ``users`` [B] (torch's RNG, on their device) and a
        bool mask [B] of the entries whose user has one (elsewhere the item is a placeholder)."""
        items, start, count = self._on_device
        n = count[users]
        offset = torch.minimum((torch.rand(users.shape, device=users.device) * n).long(), (n - 1).clamp_min(0))
        return items[(start[users] + offset).clamp(max=items.numel() - 1)], n > 0


def _after_load(module: Guider, incompatible_keys) -> None:
    """After a state is loaded the partition may have changed: regroup I_false on next use, and read
    whether it is calibrated (once, here)."""
    module._noisy_groups = None
    module._calibrated = bool(module.calibrated)


def build_teacher(dataset, config: GuiderConfig) -> Backbone | None:
    """The ID-only teacher ``config.teacher`` with its default config; None without distillation (kd none)."""
    if config.kd == "none":
        return None
    entry = MODELS[config.teacher]
    return entry.build(dataset, entry.config_cls())


def build(dataset, backbone: Backbone, config: GuiderConfig) -> Guider:
    """GUIDER around ``backbone`` on ``dataset`` (its entry needs item features, for AMSC)."""
    return Guider(backbone, build_teacher(dataset, config), dataset.train.users, dataset.train.items, dataset.n_users,
                  dict(dataset.features), NegativeSampler(dataset), config)
