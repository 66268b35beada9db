"""Training objectives as pure functions of per-sequence log-probabilities.

Notation. For a sequence (x, y), `logp` is log pi(y|x) = sum over completion tokens of
log pi(y_j | x, y_<j) (a sum, the DPO convention) and `n_tok` is |y|. Tensors of shape (n, k) hold the
k sequences of each of n training units, in the order a method's `unit_roles` names them.

    L_SFT  = - sum_i log pi(y_i|x_i) / sum_i |y_i|           (mean NLL per completion token over the
                                                               batch's SFT sequences, as TRL's CPO/ORPO)
    z      = beta * [(log pi(y_w|x) - log ref(y_w|x)) - (log pi(y_l|x) - log ref(y_l|x))]
    L_DPO  = - mean log sigma(z)                               (Rafailov et al., Eq. 1-2 of the paper)
    L_CL   = - mean_i [log sigma(z_en_i) + log sigma(z_t_i)]   (Eq. 10-12)
        z_en: prompt x_en, chosen y_en, rejected y_t;   z_t: prompt x_t, chosen y_t, rejected y_en
    L_CLO  = lambda * L_SFT(target only, or both languages) + (1 - lambda) * L_CL    (Eq. 3/8)

The paper's Eq. 9 writes L_SFT as a mean over sequences of summed NLL; on real lengths that sum is
hundreds of nats and would drown L_CL (about 1.4 at the start), so, like common implementations, we
average over tokens. Implicit rewards beta*(log pi - log ref) are returned for logging.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from langshift.train.encode import SIDE


def nll(logp: Tensor, n_tok: Tensor) -> Tensor:
    """Mean negative log-likelihood per completion token: -sum(logp) / sum(n_tok)."""
    return -logp.sum() / n_tok.sum().clamp(min=1)


def preference_logits(pi_w: Tensor, pi_l: Tensor, ref_w: Tensor, ref_l: Tensor, beta: float) -> Tensor:
    """z = beta * ((pi_w - ref_w) - (pi_l - ref_l))."""
    return beta * ((pi_w - ref_w) - (pi_l - ref_l))


def dpo_loss(pi_w: Tensor, pi_l: Tensor, ref_w: Tensor, ref_l: Tensor, beta: float = 0.1) -> Tensor:
    """Per-pair DPO loss -log sigma(z)."""
    return -F.logsigmoid(preference_logits(pi_w, pi_l, ref_w, ref_l, beta))


def pair_stats(pi_w, pi_l, ref_w, ref_l, beta: float) -> dict[str, Tensor]:
    """DPO-style implicit rewards of one side: chosen, rejected, margin, accuracy (means)."""
    r_w, r_l = beta * (pi_w - ref_w), beta * (pi_l - ref_l)
    return {"reward_chosen": r_w.mean(), "reward_rejected": r_l.mean(), "margin": (r_w - r_l).mean(),
            "accuracy": (r_w > r_l).float().mean()}


def clo_loss(policy: Tensor, ref: Tensor, n_tok: Tensor, *, lam: float = 0.5, beta: float = 0.1,
             nll_on: str = "target") -> tuple[Tensor, dict]:
    """Cross-Lingual Optimization (Eq. 8-12). Columns: en_chosen, en_rejected, tgt_chosen, tgt_rejected.

    `nll_on`: "target" (the paper's choice: NLL on y_t|x_t only) or "both" (adds y_en|x_en, Table 5).
    """
    en_w, en_l, t_w, t_l = policy.unbind(-1)
    ref_en_w, ref_en_l, ref_t_w, ref_t_l = ref.unbind(-1)
    z_en = preference_logits(en_w, en_l, ref_en_w, ref_en_l, beta)
    z_t = preference_logits(t_w, t_l, ref_t_w, ref_t_l, beta)
    l_cl = -(F.logsigmoid(z_en) + F.logsigmoid(z_t)).mean()
    if nll_on == "target":
        l_sft = nll(t_w, n_tok[:, 2])
    elif nll_on == "both":
        l_sft = nll(torch.cat([t_w, en_w]), torch.cat([n_tok[:, 2], n_tok[:, 0]]))
    else:
        raise ValueError(f"nll_on must be 'target' or 'both', not {nll_on!r}")
    loss = lam * l_sft + (1 - lam) * l_cl
    metrics = {"nll": l_sft.detach(), "cl": l_cl.detach(), "nll_en": nll(en_w, n_tok[:, 0]).detach()}
    with torch.no_grad():
        sides = {"en": (en_w, en_l, ref_en_w, ref_en_l), "tgt": (t_w, t_l, ref_t_w, ref_t_l)}
        for side, (chosen, rejected, ref_chosen, ref_rejected) in sides.items():
            stats = pair_stats(chosen, rejected, ref_chosen, ref_rejected, beta)
            metrics.update({f"{side}/{k}": v for k, v in stats.items()})
    return loss, metrics


# ------------------------------------------------------------------------------------ the methods
#
# A method's objective maps one batch of units to (loss, metrics). `policy`, `ref`, `n_tok` have shape
# (n_units, seqs_per_unit); `sides` names each unit's language side ("en" or "tgt").


@dataclass(frozen=True)
class Hyper:
    """The objective's hyper-parameters (TrainConfig's lam, beta, nll)."""

    lam: float = 0.5
    beta: float = 0.1
    nll_on: str = "target"


def clo_objective(policy: Tensor, ref: Tensor, n_tok: Tensor, sides: list[str], hp: Hyper) -> tuple[Tensor, dict]:
    """L_CLO over units of (en_chosen, en_rejected, tgt_chosen, tgt_rejected): see `clo_loss`."""
    return clo_loss(policy, ref, n_tok, lam=hp.lam, beta=hp.beta, nll_on=hp.nll_on)


def dpo_objective(policy: Tensor, ref: Tensor, n_tok: Tensor, sides: list[str], hp: Hyper) -> tuple[Tensor, dict]:
    """L_DPO over (chosen, rejected) units, each its own example; rewards logged per language side."""
    pi_w, pi_l = policy.unbind(-1)
    ref_w, ref_l = ref.unbind(-1)
    loss = dpo_loss(pi_w, pi_l, ref_w, ref_l, hp.beta).mean()
    metrics = {"nll": nll(pi_w, n_tok[:, 0]).detach()}
    for side, idx in _side_masks(sides, policy.device).items():
        stats = pair_stats(pi_w[idx], pi_l[idx], ref_w[idx], ref_l[idx], hp.beta)
        metrics.update({f"{side}/{k}": v.detach() for k, v in stats.items()})
    return loss, metrics


def sft_objective(policy: Tensor, ref: Tensor | None, n_tok: Tensor, sides: list[str], hp: Hyper) -> tuple[Tensor, dict]:
    """L_SFT over units of one chosen sequence; NLL logged per language side."""
    loss = nll(policy[:, 0], n_tok[:, 0])
    metrics = {"nll": loss.detach()}
    for side, idx in _side_masks(sides, policy.device).items():
        metrics[f"{side}/nll"] = nll(policy[idx, 0], n_tok[idx, 0]).detach() if idx.any() else policy.new_tensor(float("nan"))
    return loss, metrics


def _side_masks(sides: list[str], device) -> dict[str, Tensor]:
    """Boolean masks of the units of each language side. A side absent from a batch gives NaN metrics
    (means over nothing), so every process logs the same keys and DDP can gather them."""
    return {side: torch.tensor([s == side for s in sides], dtype=torch.bool, device=device) for side in ("en", "tgt")}


@dataclass(frozen=True)
class Method:
    """A training method = which sequences form one unit, and the objective over a batch of units.

    Units of one record are shuffled independently (DPO's "standard DPO on cross-lingual data", SFT's
    mixed-language pairs); CLO's single unit keeps a record's four sequences in the same batch.
    """

    name: str
    unit_roles: tuple[tuple[str, ...], ...]
    objective: Callable[[Tensor, Tensor | None, Tensor, list[str], Hyper], tuple[Tensor, dict]]
    needs_ref: bool

    @property
    def units_per_record(self) -> int:
        return len(self.unit_roles)

    @property
    def seqs_per_unit(self) -> int:
        return len(self.unit_roles[0])


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("clo", (("en_chosen", "en_rejected", "tgt_chosen", "tgt_rejected"),), clo_objective, needs_ref=True),
    Method("dpo", (("en_chosen", "en_rejected"), ("tgt_chosen", "tgt_rejected")), dpo_objective, needs_ref=True),
    Method("sft", (("en_chosen",), ("tgt_chosen",)), sft_objective, needs_ref=False),
    Method("sft-eng", (("en_chosen",),), sft_objective, needs_ref=False),
    Method("sft-tgt", (("tgt_chosen",),), sft_objective, needs_ref=False),
)}
# Two-stage: SFT on the chosen responses of both languages, then DPO with the SFT model as policy and
# reference (Hong et al. 2024 protocol, paper §4.1).
PIPELINES: dict[str, tuple[str, ...]] = {name: (name,) for name in METHODS} | {"sft+dpo": ("sft", "dpo")}


def unit_side(roles: tuple[str, ...]) -> str:
    return SIDE[roles[0]]
